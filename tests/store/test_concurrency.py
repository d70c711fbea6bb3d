"""Several writers on one store: compare-and-set races, locks, unreachable servers."""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url
from store_builders import add_run, instance

from reflow.errors import StoreError
from reflow.store import StateChange, Store
from reflow.store.migrate import HEAD_REVISION

PENDING = frozenset({"PENDING"})


def _together(*actions: Callable[[], object]) -> list[object]:
    """Run the actions in threads released at the same moment; re-raise their errors."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(slot: int, action: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[slot] = action()
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, a)) for n, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def _submit_in_batches(store: Store, order: list[int], who: str) -> list[int]:
    won: list[int] = []
    for start in range(0, len(order), 10):  # small batches interleave the two writers
        batch = order[start : start + 10]
        won += store.apply([StateChange(i, PENDING, "SUBMITTED", who) for i in batch])
    return won


def test_two_drivers_racing_for_the_same_instances_never_both_win(store_url: str) -> None:
    with Store.open(store_url) as first, Store.open(store_url) as second:
        add_run(first, "r1")
        for round_ in range(5):
            ids = first.insert_instances(
                [instance("r1", index=round_ * 100 + i) for i in range(100)]
            )
            a, b = _together(
                lambda ids=ids: _submit_in_batches(first, ids, "a"),
                lambda ids=ids: _submit_in_batches(second, ids[::-1], "b"),
            )
            assert isinstance(a, list) and isinstance(b, list)
            assert not set(a) & set(b)
            assert sorted(a + b) == sorted(ids)
        submitted = [t for t in first.transitions("r1") if t.to_state == "SUBMITTED"]
        assert len(submitted) == 500
        assert len({t.instance_id for t in submitted}) == 500


def test_two_processes_creating_one_store_at_once_both_succeed(store_url: str) -> None:
    def open_and_report() -> str:
        with Store.open(store_url) as store:
            return store.revision

    assert _together(open_and_report, open_and_report) == [HEAD_REVISION, HEAD_REVISION]


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE runs SET status = status")
    return holder


def test_a_sqlite_store_locked_past_the_deadline_raises_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "manifest.db"
    with Store.open(db, deadline=0.5) as store:
        add_run(store, "r1")
        (a,) = store.insert_instances([instance("r1")])
        holder = _hold_write_lock(db)
        try:
            start = time.monotonic()
            with pytest.raises(StoreError) as caught:
                store.apply([StateChange(a, PENDING, "RUNNING")])
            assert time.monotonic() - start >= 0.4
            message = str(caught.value)
            assert str(db) in message and "stayed locked for 0.5 s" in message
            assert "\n" not in message
            # Readers are never blocked by the writer (WAL).
            assert store.instance(a).state == "PENDING"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.apply([StateChange(a, PENDING, "RUNNING")]) == [a]


def test_a_postgres_store_locked_past_the_deadline_raises_a_clear_error(pg_url: str) -> None:
    """PostgreSQL waits for a lock forever by default; the store bounds it by its deadline."""
    import psycopg

    with Store.open(pg_url, deadline=0.5) as store:
        add_run(store, "r1")
        (a,) = store.insert_instances([instance("r1")])
        url = make_url(pg_url)
        raw = pg_url.replace("+psycopg", "")
        with psycopg.connect(raw) as holder:
            holder.execute("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE")
            start = time.monotonic()
            with pytest.raises(StoreError) as caught:
                store.apply([StateChange(a, PENDING, "RUNNING")])
            assert time.monotonic() - start < 10
            message = str(caught.value)
            assert "stayed locked for 0.5 s" in message and "pg_stat_activity" in message
            assert url.host in message and "\n" not in message
            holder.rollback()
        assert store.apply([StateChange(a, PENDING, "RUNNING")]) == [a]


def connection_parameters(url: str, **options: float) -> dict[str, str]:
    """What libpq says a store's connection was opened with."""
    with Store.open(url, **options) as store, store._db.engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        return dict(raw.info.get_parameters())


def test_postgres_connections_detect_a_silent_server_within_the_deadline(pg_url: str) -> None:
    """A partition drops packets instead of refusing them; without keepalives and
    tcp_user_timeout a query waited for ever on a connection nobody would ever answer.
    (Dropping packets needs a firewall rule this machine cannot set, so the test checks what
    the connection was opened with, and that options given in the URL win.)"""
    used = connection_parameters(pg_url, deadline=7)
    assert {k: used.get(k) for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                     "keepalives_count", "tcp_user_timeout")} == {
        "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
        "keepalives_count": "3", "tcp_user_timeout": "7000"}
    given = pg_url + ("&" if "?" in pg_url else "?") + "keepalives_idle=60"
    assert connection_parameters(given)["keepalives_idle"] == "60"


def test_a_sqlite_lock_released_before_the_deadline_is_waited_out(tmp_path: Path) -> None:
    db = tmp_path / "manifest.db"
    with Store.open(db, deadline=20) as store:
        add_run(store, "r1")
        (a,) = store.insert_instances([instance("r1")])
        holder = _hold_write_lock(db)
        releaser = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
        releaser.start()
        try:
            assert store.apply([StateChange(a, PENDING, "RUNNING")]) == [a]
        finally:
            releaser.join()
            holder.close()


def test_an_unreachable_server_is_retried_until_the_deadline() -> None:
    url = "postgresql+psycopg://reflow:secret@127.0.0.1:1/manifest"
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        Store.open(url, deadline=0.5)
    assert 0.4 <= time.monotonic() - start < 10
    message = str(caught.value)
    assert "unreachable for 0.5 s" in message and "127.0.0.1:1/manifest" in message
    assert "secret" not in message  # the password is masked


def test_a_refused_login_fails_at_once_without_retrying(pg_url: str) -> None:
    wrong = make_url(pg_url).set(database="reflow_no_such_database")
    start = time.monotonic()
    with pytest.raises(StoreError, match=r"refused the connection: .*does not exist"):
        Store.open(wrong.render_as_string(hide_password=False), deadline=30)
    assert time.monotonic() - start < 5


def test_a_dropped_postgres_connection_is_replaced_without_losing_anything(pg_url: str) -> None:
    import psycopg

    name = f"reflow-test-{secrets.token_hex(4)}"
    url = make_url(pg_url).update_query_dict({"application_name": name})
    with Store.open(url.render_as_string(hide_password=False)) as store:
        add_run(store, "r1")
        (a,) = store.insert_instances([instance("r1")])
        admin_url = make_url(pg_url).set(drivername="postgresql", query={})
        with psycopg.connect(admin_url.render_as_string(hide_password=False),
                             autocommit=True) as admin:  # fmt: skip
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        assert store.apply([StateChange(a, PENDING, "RUNNING", "after restart")]) == [a]
        assert store.instance(a).state == "RUNNING"
