"""Fixtures for the driver tests; helpers live in driver_helpers.py (importable by name)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated local-executor state (its job dirs live under XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path
