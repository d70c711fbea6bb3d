"""The collector helpers leave the collector as they found it, whatever the block does."""

from __future__ import annotations

import gc

import pytest

from reflow.engine.gc_pause import gc_frozen, gc_paused


def test_gc_frozen_freezes_for_the_block_and_releases_after_it() -> None:
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), gc_frozen():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("task failed")
    assert gc.get_freeze_count() == 0


def test_gc_frozen_keeps_a_freeze_made_by_the_program() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with gc_frozen():
            pass
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


def test_gc_paused_restores_a_disabled_collector() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
