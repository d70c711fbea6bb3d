"""Instances: bulk insert with transitions, compare-and-set changes, attempts and paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from store_builders import add_run, instance

from reflow.states import TaskState
from reflow.store import InstanceConflict, StateChange, Store, UnknownInstanceError

PENDING = frozenset({"PENDING"})


def test_insert_returns_ids_in_input_order_with_one_creation_transition_each(
    store: Store,
) -> None:
    add_run(store, "r1")
    rows = [instance("r1", "convert", i, detail=f"planned {i}") for i in (2, 0, 1)]
    ids = store.insert_instances(rows)

    assert len(set(ids)) == 3
    assert [store.instance(i).array_index for i in ids] == [2, 0, 1]
    first = store.instance(ids[0])
    assert (first.latest, first.attempt, first.state, first.cached) == (True, 1, "PENDING", False)
    assert (
        first.identity == "id-r1-convert-2" and first.preimage == '{"identity":"id-r1-convert-2"}'
    )
    assert first.created_at == first.updated_at and first.created_at.tzinfo is not None
    transitions = store.transitions("r1")
    assert [(t.instance_id, t.from_state, t.to_state, t.detail) for t in transitions] == [
        (ids[0], None, "PENDING", "planned 2"),
        (ids[1], None, "PENDING", "planned 0"),
        (ids[2], None, "PENDING", "planned 1"),
    ]
    assert transitions[0].at == first.created_at


def test_insert_keeps_given_values_and_enum_states(store: Store) -> None:
    add_run(store, "r1")
    done = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    (source,) = store.insert_instances(
        [instance("r1", "prepare", None, state="SUCCESS", output='["a"]', output_hash="oh")]
    )
    (new_id,) = store.insert_instances([instance(
        "r1", "convert", 0, state=TaskState.SUCCESS, cached=True, cache_source=source,
        output='"x"', output_hash="h" * 64, fingerprints='{"/x":[1,2]}', job_id="77",
        error_text=None, started_at=done, finished_at=done, submitted_at=done,
        created_at=done - timedelta(hours=1),
    )])  # fmt: skip
    row = store.instance(new_id)
    assert row.state == "SUCCESS" and type(row.state) is str
    assert (row.cached, row.cache_source, row.output, row.output_hash) == (
        True, source, '"x"', "h" * 64)  # fmt: skip
    assert (row.fingerprints, row.job_id) == ('{"/x":[1,2]}', "77")
    assert row.finished_at == row.started_at == row.submitted_at == done
    assert row.created_at == done - timedelta(hours=1)


def test_a_second_current_attempt_of_one_instance_is_refused(store: Store) -> None:
    add_run(store, "r1")
    store.insert_instances([instance("r1", "convert", 0), instance("r1", "prepare", None)])
    for duplicate in (instance("r1", "convert", 0), instance("r1", "prepare", None)):
        with pytest.raises(InstanceConflict, match="already has a current attempt"):
            store.insert_instances([instance("r1", "convert", 5), duplicate])
    assert store.count_latest("r1") == 2  # the whole failed batch was rolled back


def test_apply_moves_only_instances_in_the_expected_state(store: Store) -> None:
    add_run(store, "r1")
    a, b = store.insert_instances([instance("r1", index=0), instance("r1", index=1)])
    now = datetime.now(UTC)

    changed = store.apply([
        StateChange(a, PENDING, "SUBMITTED", "sbatch", {"job_id": "12_0", "submitted_at": now}),
        StateChange(b, frozenset({"RUNNING"}), "SUCCESS", "late result"),
    ])  # fmt: skip
    assert changed == [a]
    row_a, row_b = store.instance(a), store.instance(b)
    assert (row_a.state, row_a.job_id, row_a.submitted_at) == ("SUBMITTED", "12_0", now)
    assert row_a.updated_at > row_a.created_at
    assert row_b.state == "PENDING" and row_b.updated_at == row_b.created_at
    last = store.transitions("r1")[-1]
    assert (last.instance_id, last.from_state, last.to_state, last.detail) == (
        a, "PENDING", "SUBMITTED", "sbatch")  # fmt: skip
    assert len(store.transitions("r1")) == 3


def test_apply_chains_several_changes_to_one_instance_in_order(store: Store) -> None:
    add_run(store, "r1")
    (a,) = store.insert_instances([instance("r1")])
    t1 = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    changed = store.apply([
        StateChange(a, PENDING, TaskState.RUNNING, "started", {"started_at": t1}),
        StateChange(a, frozenset({TaskState.RUNNING}), TaskState.SUCCESS, "done",
                    {"output": "42", "output_hash": "o" * 64, "finished_at": t1, "exit_code": 0}),
        StateChange(a, PENDING, "FAILED", "stale: no longer PENDING"),
    ])  # fmt: skip
    assert changed == [a]
    row = store.instance(a)
    assert (row.state, row.output, row.exit_code, row.started_at, row.finished_at) == (
        "SUCCESS", "42", 0, t1, t1)  # fmt: skip
    assert [(t.from_state, t.to_state) for t in store.transitions("r1")] == [
        (None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCESS"),
    ]  # fmt: skip


def test_apply_groups_different_field_sets_in_one_batch(store: Store) -> None:
    add_run(store, "r1")
    ids = store.insert_instances([instance("r1", index=i) for i in range(4)])
    changes = [
        StateChange(ids[0], PENDING, "FAILED", "", {"error_text": "boom", "exit_code": 1}),
        StateChange(ids[1], PENDING, "RUNNING"),
        StateChange(ids[2], PENDING, "SUBMITTED", "", {"job_id": "9", "scheduler_state": "PD"}),
        StateChange(ids[3], PENDING, "FAILED", "", {"error_text": "bad", "exit_code": 2}),
    ]
    assert sorted(store.apply(changes)) == sorted(ids)
    rows = [store.instance(i) for i in ids]
    assert [(r.state, r.error_text, r.exit_code) for r in rows] == [
        ("FAILED", "boom", 1), ("RUNNING", None, None), ("SUBMITTED", None, None),
        ("FAILED", "bad", 2),
    ]  # fmt: skip
    assert (rows[2].job_id, rows[2].scheduler_state) == ("9", "PD")


def test_apply_refuses_columns_that_identify_an_attempt(store: Store) -> None:
    add_run(store, "r1")
    (a,) = store.insert_instances([instance("r1")])
    with pytest.raises(ValueError, match="cannot set instance column"):
        store.apply([StateChange(a, PENDING, "RUNNING", "", {"run_id": "r2"})])
    with pytest.raises(ValueError, match="naive datetime"):
        store.apply([StateChange(a, PENDING, "RUNNING", "", {"started_at": datetime(2025, 1, 1)})])
    assert store.instance(a).state == "PENDING"
    assert len(store.transitions("r1")) == 1


def test_new_attempts_keep_the_history_of_earlier_attempts(store: Store) -> None:
    add_run(store, "r1")
    a, b, c = store.insert_instances([instance("r1", index=i) for i in range(3)])
    store.apply([
        StateChange(a, PENDING, "FAILED", "exit 1", {"error_text": "Traceback", "job_id": "5",
                                                     "exit_code": 1}),
        StateChange(b, PENDING, "SUCCESS", "", {"output": "1", "output_hash": "x"}),
    ])  # fmt: skip

    new = store.new_attempts([a, b, c, a], detail="retry requested")
    assert len(new) == 1  # b succeeded, c is not terminal, a is listed twice
    retry = store.instance(new[0])
    assert (retry.attempt, retry.state, retry.reason, retry.latest) == (
        2,
        "RETRYING",
        "retry",
        True,
    )
    assert (retry.identity, retry.preimage, retry.input) == (
        "id-r1-convert-0", '{"identity":"id-r1-convert-0"}', '{"x":1}')  # fmt: skip
    assert (retry.error_text, retry.job_id, retry.exit_code, retry.output, retry.cached) == (
        None, None, None, None, False)  # fmt: skip
    old = store.instance(a)
    assert (old.latest, old.state, old.error_text) == (False, "FAILED", "Traceback")

    history = store.history("r1", "convert", 0)
    assert [(h.id, h.attempt, h.state) for h in history] == [
        (a, 1, "FAILED"),
        (new[0], 2, "RETRYING"),
    ]
    # Attempts, and an instance read without values, leave out the (maybe huge) payloads.
    assert [(h.input, h.output, h.preimage) for h in history][1] == (
        None, None, '{"identity":"id-r1-convert-0"}')
    light = store.instance(new[0], values=False)
    assert (light.input, light.identity) == (None, "id-r1-convert-0")
    last = store.transitions("r1")[-1]
    assert (last.instance_id, last.attempt, last.from_state, last.to_state, last.detail) == (
        new[0], 2, None, "RETRYING", "retry requested")  # fmt: skip
    # The old attempt is no longer latest: a second retry of it does nothing.
    assert store.new_attempts([a]) == []
    assert store.count_latest("r1") == 3


def test_forced_new_attempts_restart_successes(store: Store) -> None:
    add_run(store, "r1")
    (a,) = store.insert_instances([instance("r1", state="SUCCESS", output="1", output_hash="h")])
    assert store.new_attempts([a]) == []
    (new,) = store.new_attempts([a], force=True, reason="forced", detail="force-rerun")
    row = store.instance(new)
    assert (row.attempt, row.output, row.reason, row.state) == (2, None, "forced", "RETRYING")
    assert store.transitions("r1")[-1].detail == "force-rerun"


def test_supersede_drops_markers_from_the_current_view(store: Store) -> None:
    add_run(store, "r1")
    marker, kept = store.insert_instances([
        instance("r1", "publish", None, state="CANCELLED", reason="skipped"),
        instance("r1", "convert", 0),
    ])  # fmt: skip
    assert store.supersede([marker, marker]) == 1
    assert store.supersede([marker]) == 0
    assert [r.id for r in store.latest_instances("r1")] == [kept]
    # Its place is free for the real instance.
    (real,) = store.insert_instances([instance("r1", "publish", None)])
    assert [r.id for r in store.latest_instances("r1", "publish")] == [real]


def test_latest_instances_order_filters_and_pages(store: Store) -> None:
    add_run(store, "r1")
    store.insert_instances(
        [instance("r1", "publish", None)]
        + [instance("r1", "convert", i, state="FAILED" if i % 3 == 0 else "SUCCESS")
           for i in (5, 3, 1, 4, 0, 2)]
        + [instance("r1", "prepare", None)]
    )  # fmt: skip
    order = [(r.task_name, r.array_index) for r in store.latest_instances("r1")]
    assert order == [("prepare", None)] + [("convert", i) for i in range(6)] + [("publish", None)]

    page = store.latest_instances("r1", "convert", offset=2, limit=3)
    assert [r.array_index for r in page] == [2, 3, 4]
    whole = [(r.task_name, r.array_index) for r in store.latest_instances("r1", offset=1)]
    assert whole == order[1:]  # pages of the whole run keep its order
    assert [(r.task_name, r.array_index)
            for r in store.latest_instances("r1", offset=6, limit=5)] == order[6:]
    ids = store.latest_instance_ids("r1")
    assert [r.id for r in store.instances(ids[::-1])] == ids[::-1]  # in the order asked
    failed = store.latest_instances("r1", "convert", states=["FAILED"])
    assert [r.array_index for r in failed] == [0, 3]
    assert store.count_latest("r1") == 8
    assert store.count_latest("r1", "convert") == 6
    assert store.count_latest("r1", "convert", states=[TaskState.FAILED]) == 2
    assert store.latest_instances("nope") == []


def test_unknown_instance_id_raises_a_key_error(store: Store) -> None:
    with pytest.raises(UnknownInstanceError, match="no instance 12345") as caught:
        store.instance(12345)
    assert isinstance(caught.value, KeyError)


def test_instance_transitions_cover_every_attempt_of_one_instance_only(store: Store) -> None:
    add_run(store, "r1")
    a, b = store.insert_instances([instance("r1", "t", 0), instance("r1", "t", 1)])
    store.apply([StateChange(a, PENDING, "FAILED", "boom"), StateChange(b, PENDING, "SUCCESS")])
    (a2,) = store.new_attempts([a], detail="retry requested")
    store.apply([StateChange(a2, frozenset({"RETRYING"}), "SUCCESS", "ok")])

    history = store.instance_transitions([a, a2])
    assert [(t.attempt, t.from_state, t.to_state, t.detail) for t in history] == [
        (1, None, "PENDING", ""),
        (1, "PENDING", "FAILED", "boom"),
        (2, None, "RETRYING", "retry requested"),
        (2, "RETRYING", "SUCCESS", "ok"),
    ]
    assert store.instance_transitions([]) == []
