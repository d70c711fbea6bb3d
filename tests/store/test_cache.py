"""Cache lookups across runs, and the lineage queries that explain misses."""

from __future__ import annotations

from datetime import UTC, datetime

from store_builders import add_run, instance

from reflow.store import StateChange, Store


def _succeeded(store: Store, run_id: str, identity: str, output: str, index: int = 0) -> int:
    (new_id,) = store.insert_instances([instance(
        run_id, index=index, identity=identity, state="SUCCESS", output=output,
        output_hash=f"hash-{output}", fingerprints=f'{{"{output}":[1,2]}}',
        finished_at=datetime(2025, 3, 1, 13, tzinfo=UTC),
    )])  # fmt: skip
    return new_id


def test_find_cached_picks_the_most_recent_success_in_any_run(store: Store) -> None:
    add_run(store, "old", minutes=0)
    add_run(store, "new", minutes=10)
    add_run(store, "newest", minutes=20)
    _succeeded(store, "old", "same", "first")
    winner = _succeeded(store, "new", "same", "second")
    # Newer attempts that did not succeed never shadow a success.
    (failed,) = store.insert_instances([instance("newest", index=0, identity="same")])
    store.apply([StateChange(failed, frozenset({"PENDING"}), "FAILED")])
    store.insert_instances([instance("newest", index=1, identity="same", state="RUNNING")])
    _succeeded(store, "old", "other", "third", index=1)

    # A cached copy repeats its source: the hit names the instance that computed the output.
    add_run(store, "copy", minutes=30)
    store.insert_instances([instance("copy", index=0, identity="same", state="SUCCESS",
                                     cached=True, cache_source=winner, output="second",
                                     output_hash="hash-second")])  # fmt: skip

    hits = store.find_cached(["same", "other", "never-seen"])
    assert set(hits) == {"same", "other"}
    hit = hits["same"]
    assert (hit.instance_id, hit.run_id, hit.identity) == (winner, "new", "same")
    assert (hit.output, hit.output_hash, hit.fingerprints) == (
        "second", "hash-second", '{"second":[1,2]}')  # fmt: skip
    assert hit.finished_at == datetime(2025, 3, 1, 13, tzinfo=UTC)


def test_a_success_reached_through_apply_becomes_a_cache_hit(store: Store) -> None:
    add_run(store, "r1")
    (a,) = store.insert_instances([instance("r1", identity="abc")])
    assert store.find_cached(["abc"]) == {}
    store.apply([StateChange(a, frozenset({"PENDING"}), "SUCCESS", "",
                             {"output": "7", "output_hash": "h7"})])  # fmt: skip
    assert store.find_cached(["abc"])["abc"].instance_id == a
    # ... and stops being one if a later change moves it away from SUCCESS.
    store.apply([StateChange(a, frozenset({"SUCCESS"}), "FAILED", "verify failed")])
    assert store.find_cached(["abc"]) == {}


def test_find_cached_answers_thousands_of_identities_at_once(store: Store) -> None:
    add_run(store, "r1")
    count = 2_500  # more than one SQLite parameter chunk
    store.insert_instances([
        instance("r1", index=i, identity=f"{i:064x}", state="SUCCESS", output=str(i),
                 output_hash=f"h{i}")
        for i in range(count)
    ])  # fmt: skip
    wanted = [f"{i:064x}" for i in range(0, count * 2, 2)]
    hits = store.find_cached(wanted)
    assert len(hits) == count // 2
    assert all(hits[f"{i:064x}"].output == str(i) for i in range(0, count, 2))
    assert store.find_cached([]) == {}


def test_task_seen_only_counts_other_runs_of_the_same_workflow(store: Store) -> None:
    add_run(store, "r1")
    add_run(store, "x1", workflow="other")
    store.insert_instances([instance("r1", "convert", 0)])
    store.insert_instances([instance("x1", "publish", None, workflow="other")])

    assert store.task_seen("wf", "convert") is True
    assert store.task_seen("wf", "convert", exclude_run="r1") is False
    assert store.task_seen("wf", "publish") is False  # same task name, other workflow
    add_run(store, "r2", minutes=5)
    assert store.task_seen("wf", "convert", exclude_run="r2") is True


def test_reference_preimages_come_from_the_most_recent_other_run(store: Store) -> None:
    for run_id, minutes in (("r1", 0), ("r2", 10), ("r3", 20), ("current", 30)):
        add_run(store, run_id, minutes=minutes)
    store.insert_instances([instance("r1", "convert", i) for i in range(3)])
    store.insert_instances([instance("r2", "convert", i) for i in range(2)])
    store.insert_instances([instance("r3", "publish", None)])  # newest, but not this task
    store.insert_instances([instance("current", "convert", i) for i in range(3)])

    refs = store.reference_preimages("wf", "convert", exclude_run="current")
    assert refs == {0: '{"identity":"id-r2-convert-0"}', 1: '{"identity":"id-r2-convert-1"}'}
    singleton = store.reference_preimages("wf", "publish", exclude_run="current")
    assert singleton == {None: '{"identity":"id-r3-publish-None"}'}
    assert store.reference_preimages("wf", "prepare", exclude_run="current") == {}


def test_nearest_preimage_prefers_the_same_index_then_any(store: Store) -> None:
    add_run(store, "r1")
    add_run(store, "r2", minutes=1)
    first = store.insert_instances([instance("r1", index=i) for i in range(2)])
    later = store.insert_instances([instance("r2", index=i) for i in range(3)])

    assert store.nearest_preimage("wf", "convert", 1, before_instance_id=later[1]) == (
        '{"identity":"id-r1-convert-1"}')  # fmt: skip
    # Index 2 never ran before: the latest earlier instance of any index stands in.
    assert store.nearest_preimage("wf", "convert", 2, before_instance_id=later[2]) == (
        '{"identity":"id-r2-convert-1"}')  # fmt: skip
    assert store.nearest_preimage("wf", "convert", 0, before_instance_id=first[0]) is None
    store.insert_instances([instance("r1", "publish", None)])
    (p2,) = store.insert_instances([instance("r2", "publish", None)])
    assert store.nearest_preimage("wf", "publish", None, before_instance_id=p2) == (
        '{"identity":"id-r1-publish-None"}')  # fmt: skip
