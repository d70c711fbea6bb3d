"""Shared fixtures: real stores (SQLite file and PostgreSQL schema) and clean XDG dirs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str | None:
    """The test server's URL when it answers; fail instead of skip when CI requires it."""
    url = os.environ.get("REFLOW_TEST_POSTGRES_URL", PG_DEFAULT)
    try:
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=3):
            return url
    except Exception as exc:
        if os.environ.get("REFLOW_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but not reachable at {url}: {exc}")
        return None


@pytest.fixture(autouse=True)
def _isolated_xdg(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the developer's real config or default store."""
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    for var in ("REFLOW_STORE", "REFLOW_STORE_PATH", "REFLOW_MODE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL pointing at a fresh schema of its own (dropped afterwards)."""
    base = postgres_base_url()
    if base is None:
        pytest.skip("no PostgreSQL server answers (set REFLOW_TEST_POSTGRES_URL)")
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    raw = base.replace("+psycopg", "")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store-backed test runs on both supported databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'manifest.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'manifest.db'}"
