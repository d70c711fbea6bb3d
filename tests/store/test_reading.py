"""Summaries for status and the TUI: counts of current attempts, the transition feed, checks."""

from __future__ import annotations

import pytest
from store_builders import add_run, instance

from reflow.store import NewVerifyFailure, StateChange, Store, counts
from reflow.store.migrate import HEAD_REVISION


def test_status_counts_only_count_the_latest_attempt(store: Store) -> None:
    add_run(store, "r1")
    add_run(store, "r2")
    ids = store.insert_instances(
        [instance("r1", "convert", i, state="FAILED") for i in range(3)]
        + [instance("r1", "prepare", None, state="SUCCESS", output="[]", output_hash="h")]
    )
    store.insert_instances([instance("r2", "convert", 0, state="FAILED")])
    retried = store.new_attempts(ids[:2])
    store.apply([StateChange(retried[0], frozenset({"RETRYING"}), "SUCCESS", "",
                             {"output": "1", "output_hash": "h1"})])  # fmt: skip

    assert store.status_counts("r1") == {
        "convert": {"SUCCESS": 1, "RETRYING": 1, "FAILED": 1},
        "prepare": {"SUCCESS": 1},
    }
    assert store.status_counts("missing") == {}


def test_cache_counts_split_current_successes_into_cached_and_recomputed(store: Store) -> None:
    add_run(store, "r1")
    store.insert_instances(
        [instance("r1", "convert", i, state="SUCCESS", cached=i < 3, output="1", output_hash="h")
         for i in range(5)]
        + [instance("r1", "convert", 5, state="FAILED")]
        + [instance("r1", "prepare", None, state="SUCCESS", output="1", output_hash="h")]
    )  # fmt: skip
    assert store.cache_counts("r1") == {"convert": (3, 2), "prepare": (0, 1)}


@pytest.mark.parametrize("max_tasks", [counts.SKIP_SCAN_MAX_TASKS, -1])
def test_counts_agree_whether_grouped_or_counted_group_by_group(
    store: Store, monkeypatch: pytest.MonkeyPatch, max_tasks: int
) -> None:
    # SQLite counts a run with few tasks group by group; -1 forces the GROUP BY everywhere.
    monkeypatch.setattr(counts, "SKIP_SCAN_MAX_TASKS", max_tasks)
    add_run(store, "r1")
    add_run(store, "r0")  # a neighbour in the index on both sides must not leak in
    add_run(store, "r2")
    store.insert_instances([instance("r0", "b", 0, state="FAILED"),
                            instance("r2", "z", 0, state="RUNNING")])
    rows = (
        [instance("r1", "b", i, state="SUCCESS", cached=i % 3 == 0, output="1", output_hash="h")
         for i in range(7)]
        + [instance("r1", "b", 7 + i, state=s) for i, s in enumerate(
            ["FAILED", "PENDING", "RUNNING", "SUBMITTED", "CANCELLED"])]
        + [instance("r1", "a", None, state="FAILED"),
           instance("r1", "c", 0, state="SUCCESS", cached=True, output="1", output_hash="h")]
    )  # fmt: skip
    ids = store.insert_instances(rows)
    store.new_attempts([ids[7]])  # b[7]: FAILED -> a RETRYING attempt; the old one no longer counts
    assert store.status_counts("r1") == {
        "a": {"FAILED": 1},
        "b": {"SUCCESS": 7, "RETRYING": 1, "PENDING": 1, "RUNNING": 1, "SUBMITTED": 1,
              "CANCELLED": 1},
        "c": {"SUCCESS": 1},
    }
    assert store.cache_counts("r1") == {"b": (3, 4), "c": (1, 0)}
    assert store.status_counts("nothing") == {} and store.cache_counts("nothing") == {}


def test_transitions_feed_pages_by_id(store: Store) -> None:
    add_run(store, "r1")
    add_run(store, "r2")
    ids = store.insert_instances([instance("r1", index=i) for i in range(3)])
    store.insert_instances([instance("r2")])
    store.apply([StateChange(i, frozenset({"PENDING"}), "SUBMITTED", "sbatch") for i in ids])

    feed = store.transitions("r1")
    assert len(feed) == 6 and all(t.run_id == "r1" for t in feed)
    assert [t.id for t in feed] == sorted(t.id for t in feed)
    seen = feed[2].id
    newer = store.transitions("r1", since_id=seen)
    assert [t.id for t in newer] == [t.id for t in feed[3:]]
    assert [t.id for t in store.transitions("r1", since_id=seen, limit=2)] == [
        t.id for t in feed[3:5]
    ]
    assert store.transitions("r1", since_id=feed[-1].id) == []
    first = feed[0]
    assert (first.task_name, first.array_index, first.attempt) == ("convert", 0, 1)


def test_verify_failures_round_trip(store: Store) -> None:
    add_run(store, "r1")
    a, b = store.insert_instances([instance("r1", index=0), instance("r1", index=1)])
    store.add_verify_failures([
        NewVerifyFailure(a, "r1", "convert", 0, "/data/out/0.zarr", "missing: no longer exists"),
        NewVerifyFailure(b, "r1", "convert", 1, "verify(output)", "callable: returned False"),
    ])  # fmt: skip
    store.add_verify_failures([])
    failures = store.verify_failures("r1")
    assert [(f.instance_id, f.array_index, f.check, f.reason) for f in failures] == [
        (a, 0, "/data/out/0.zarr", "missing: no longer exists"),
        (b, 1, "verify(output)", "callable: returned False"),
    ]
    assert failures[0].at.tzinfo is not None and failures[0].id < failures[1].id
    assert store.verify_failures("r2") == []


def test_info_describes_the_store(store: Store) -> None:
    add_run(store, "r1")
    store.insert_instances([instance("r1", index=i) for i in range(4)])
    info = store.info()
    assert (info.revision, info.head_revision) == (HEAD_REVISION, HEAD_REVISION)
    assert (info.runs, info.instances) == (1, 4)
    assert info.dialect == store.dialect and info.url == store.url
