"""Writes for batched recorders: instances with their history, dated changes, task history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store_builders import add_run, instance

from reflow.store import CachedCopy, CopyBatch, StateChange, Store
from reflow.store.writes import RecordedInstance

T = datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_record_inserts_final_state_with_every_transition_at_its_time(store: Store) -> None:
    add_run(store, "r1")
    done = instance("r1", index=0, state="SUCCESS", output="1", output_hash="h1",
                    started_at=T, finished_at=T + timedelta(seconds=2), detail="running")
    running = instance("r1", index=1, state="RUNNING", started_at=T, detail="running")
    ids = store.record([
        RecordedInstance.of(done, [(None, "RUNNING", T, "running"),
                                ("RUNNING", "SUCCESS", T + timedelta(seconds=2), "")], 0),
        RecordedInstance.of(running, [(None, "RUNNING", T, "running")]),
    ])
    first = store.instance(ids[0])
    assert (first.state, first.exit_code, first.output, first.latest) == ("SUCCESS", 0, "1", True)
    assert first.created_at == T and first.finished_at == T + timedelta(seconds=2)
    history = [(t.instance_id, t.from_state, t.to_state, t.at) for t in store.transitions("r1")]
    assert history == [  # chronological across instances
        (ids[0], None, "RUNNING", T), (ids[1], None, "RUNNING", T),
        (ids[0], "RUNNING", "SUCCESS", T + timedelta(seconds=2)),
    ]
    # A later batch: the running one finishes (compare-and-set, dated when it happened).
    later = T + timedelta(seconds=5)
    store.record([], [StateChange(ids[1], frozenset({"RUNNING"}), "FAILED", "boom",
                                  {"finished_at": later, "exit_code": 1}),
                      StateChange(ids[0], frozenset({"RUNNING"}), "CANCELLED", "too late")],
                 at=[later, later])
    assert store.instance(ids[1]).state == "FAILED"
    assert store.instance(ids[0]).state == "SUCCESS"  # not RUNNING any more: left alone
    last = store.transitions("r1")[-1]
    assert (last.instance_id, last.to_state, last.at) == (ids[1], "FAILED", later)


def test_task_history_answers_for_all_tasks_at_once(store: Store) -> None:
    add_run(store, "r1")
    add_run(store, "r2", minutes=5)
    add_run(store, "x1", workflow="other")
    store.insert_instances([instance("r1", "convert", 0)])
    store.insert_instances([instance("r2", "prepare", None)])
    store.insert_instances([instance("x1", "publish", None, workflow="other")])
    names = ["convert", "prepare", "publish", "never"]

    history = store.task_history("wf", names, exclude_run="r2")
    assert history.recorded == {"convert", "prepare"}
    assert history.seen == {"convert"}  # prepare only ran in the excluded run
    for name in names:
        assert (name in history.seen) == store.task_seen("wf", name, exclude_run="r2")
    assert store.task_history("wf", names).seen == {"convert", "prepare"}
    assert store.task_history("wf", []).recorded == frozenset()
    many = [f"t{i}" for i in range(1000)] + ["convert"]
    assert store.task_history("wf", many).recorded == {"convert"}


def test_record_leaves_out_columns_no_row_of_the_batch_sets(store: Store) -> None:
    # Batches of cache hits bind only the columns they fill; mixed batches bind the union.
    add_run(store, "r1")
    bare = instance("r1", index=0, state="SUCCESS", output="1", output_hash="h1")
    failed = instance("r1", index=1, state="FAILED", error_text="boom", finished_at=T)
    plain = instance("r1", index=2, state="SUCCESS", output="2", output_hash="h2")
    mixed = store.record([RecordedInstance.of(bare, [(None, "SUCCESS", T, "")]),
                          RecordedInstance.of(failed, [(None, "FAILED", T, "")], 3)])
    alone = store.record([RecordedInstance.of(plain, [(None, "SUCCESS", T, "")])])
    got = [store.instance(i) for i in (*mixed, *alone)]
    assert [(r.array_index, r.output, r.error_text, r.exit_code, r.finished_at) for r in got] == [
        (0, "1", None, None, None), (1, None, "boom", 3, T), (2, "2", None, None, None),
    ]
    assert all(r.created_at == T and r.job_id is None for r in got)


def test_cache_hits_are_recorded_as_linked_copies_in_time_order(store: Store) -> None:
    add_run(store, "src")
    add_run(store, "r1", minutes=5)
    (source_id,) = store.insert_instances([instance(
        "src", index=3, identity="same", state="SUCCESS", output="42", output_hash="h42",
        fingerprints='{"/data/x":[1,2]}', finished_at=T)])  # fmt: skip
    (hit,) = store.find_cached(["same"]).values()
    ran = instance("r1", "prepare", None, state="SUCCESS", output="1", output_hash="h1")
    copies = CopyBatch("r1", "wf", "convert", "cached", T + timedelta(seconds=1),
                       [CachedCopy(7, "same", hit.input_hash, '{"identity":"same"}',
                                   '{"x":1}', hit)])  # fmt: skip
    (ran_id,) = store.record(
        [RecordedInstance.of(ran, [(None, "RUNNING", T, "running"),
                                ("RUNNING", "SUCCESS", T + timedelta(seconds=2), "")])],
        copies=[copies],
    )

    (copy,) = store.latest_instances("r1", "convert")
    assert (copy.array_index, copy.state, copy.cached, copy.cache_source, copy.reason) == (
        7, "SUCCESS", True, source_id, "cached")
    assert (copy.output, copy.output_hash, copy.fingerprints, copy.input_hash) == (
        "42", "h42", '{"/data/x":[1,2]}', "in-same")
    assert copy.finished_at == T + timedelta(seconds=1)
    history = [(t.instance_id, t.to_state, t.detail) for t in store.transitions("r1")]
    assert history == [  # the copy's creation sits between the other instance's changes
        (ran_id, "RUNNING", "running"),
        (copy.id, "SUCCESS", f"cached from instance {source_id} of run src"),
        (ran_id, "SUCCESS", ""),
    ]
    # A copy is never a source itself: the lookup still names the instance that computed it.
    assert store.find_cached(["same"])["same"].instance_id == source_id
