"""Store fixtures: an open store on each database (``store_url`` comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reflow.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened
