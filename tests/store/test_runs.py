"""Runs and task specs: recording, lookup with suggestions, listing, compare-and-set status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from store_builders import SPECS, T0, add_run, new_run

from reflow.errors import StoreError, UnknownRunError
from reflow.store import RunIdTaken, Store


def test_created_run_reads_back_with_its_specs_in_position_order(store: Store) -> None:
    shuffled = [SPECS[2], SPECS[0], SPECS[1]]
    store.create_run(new_run("wf-20250301-aaaa0001"), shuffled)

    run = store.get_run("wf-20250301-aaaa0001")
    assert (run.workflow, run.user, run.host, run.entrypoint) == (
        "wf",
        "alice",
        "login1",
        "pipeline.py",
    )
    assert run.parameters == '{"start":"2024-01-01"}'
    assert run.options == '{"force":false}'
    assert run.created_at == T0
    assert run.created_at.tzinfo is not None and run.updated_at.tzinfo is not None
    specs = store.task_specs("wf-20250301-aaaa0001")
    assert [(s.name, s.position, s.is_array) for s in specs] == [
        ("prepare", 0, False), ("convert", 1, True), ("publish", 2, False),
    ]  # fmt: skip
    assert specs[1].dependencies == '["prepare"]' and specs[1].return_type == "str"


def test_timestamps_in_other_zones_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    local = datetime(2025, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    store.create_run(new_run("r1", created_at=local), [])
    got = store.get_run("r1").created_at
    assert got == local
    assert got.utcoffset() == timedelta(0)
    assert got.microsecond == 123456


def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.create_run(new_run("r1", created_at=datetime(2025, 1, 1)), [])


def test_taken_run_id_raises_run_id_taken_and_keeps_the_first_run(store: Store) -> None:
    add_run(store, "r1")
    with pytest.raises(RunIdTaken, match="'r1' is already recorded") as caught:
        store.create_run(new_run("r1", workflow="other"), SPECS)
    assert isinstance(caught.value, StoreError)
    assert store.get_run("r1").workflow == "wf"
    assert len(store.task_specs("r1")) == 3


def test_recording_the_same_run_again_is_no_error_and_records_it_once(store: Store) -> None:
    """What a retried transaction does when its commit reached the server but the answer was
    lost: the row found is this very run, not a collision (which chose a second run id and
    left the first RUNNING with nothing in it)."""
    add_run(store, "r1")
    add_run(store, "r1")
    assert [r.run_id for r in store.list_runs()] == ["r1"]
    assert len(store.task_specs("r1")) == 3


def test_unknown_run_names_it_the_store_and_the_closest_id(store: Store) -> None:
    add_run(store, "climate-20250301-3fa8b2c1")
    add_run(store, "genomics-20250301-00000000")
    with pytest.raises(UnknownRunError) as caught:
        store.get_run("climate-20250301-3fa8b2c2")
    message = str(caught.value)
    assert "no run 'climate-20250301-3fa8b2c2'" in message
    assert store.url in message
    assert message.endswith("Did you mean 'climate-20250301-3fa8b2c1'?")
    assert isinstance(caught.value, KeyError)


def test_list_runs_is_newest_first_and_filters(store: Store) -> None:
    add_run(store, "a", minutes=0, status="SUCCESS")
    add_run(store, "b", minutes=10, status="FAILED")
    add_run(store, "c", minutes=20, workflow="other", status="RUNNING")
    add_run(store, "d", minutes=30, status="SUCCESS")

    assert [r.run_id for r in store.list_runs()] == ["d", "c", "b", "a"]
    assert [r.run_id for r in store.list_runs(workflow="wf")] == ["d", "b", "a"]
    assert [r.run_id for r in store.list_runs(statuses=["SUCCESS", "FAILED"])] == ["d", "b", "a"]
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=20)
    assert [r.run_id for r in store.list_runs(since=since, until=until)] == ["c", "b"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["d", "c"]
    # A bound given in another zone means the same instant.
    berlin = since.astimezone(timezone(timedelta(hours=1)))
    assert [r.run_id for r in store.list_runs(since=berlin)] == ["d", "c", "b"]
    # Words of the TUI's filter, each somewhere in workflow, id, user or status, in any case;
    # LIKE's own wildcards are plain text.
    assert [r.run_id for r in store.list_runs(words=["OTHER"])] == ["c"]
    assert [r.run_id for r in store.list_runs(words=["wf", "success"])] == ["d", "a"]
    assert store.list_runs(words=["%"]) == [] and store.list_runs(words=["_"]) == []


def test_set_run_status_is_compare_and_set(store: Store) -> None:
    add_run(store, "r1")
    before = store.get_run("r1").updated_at

    assert store.set_run_status("r1", "SUCCESS", only_from={"RUNNING"}) is True
    after = store.get_run("r1")
    assert after.status == "SUCCESS" and after.updated_at >= before
    assert after.updated_at <= datetime.now(UTC)
    # Already moved: a second driver finalising the same run changes nothing.
    assert store.set_run_status("r1", "FAILED", only_from={"RUNNING"}) is False
    assert store.get_run("r1").status == "SUCCESS"
    assert store.set_run_status("r1", "RUNNING") is True
    assert store.get_run("r1").status == "RUNNING"


def test_set_run_status_of_an_unknown_run_raises(store: Store) -> None:
    add_run(store, "r1")
    with pytest.raises(UnknownRunError, match="Did you mean 'r1'"):
        store.set_run_status("r2", "SUCCESS", only_from={"RUNNING"})


def test_store_can_be_built_directly_from_a_location(tmp_path: Path) -> None:
    """``Store`` is public: ``Store(path)`` opens as ``Store.open(path)`` does."""
    with Store(tmp_path / "manifest.db") as store:
        add_run(store, "r1")
    with Store(f"sqlite:///{tmp_path / 'manifest.db'}", create=False) as again:
        assert again.get_run("r1").run_id == "r1"
        assert Store.open(again) is again
