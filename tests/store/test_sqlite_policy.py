"""SQLite specifics: journal mode by filesystem, the network-filesystem warning."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_builders import add_run

from reflow.errors import StoreError
from reflow.store import NetworkFilesystemWarning, Store
from reflow.store import sqlite as sqlite_policy
from reflow.store.migrate import HEAD_REVISION


def _mounts(tmp_path: Path, *lines: str) -> Path:
    mounts = tmp_path / "mounts"
    mounts.write_text("".join(f"{line}\n" for line in lines))
    return mounts


def test_filesystem_type_uses_the_longest_matching_mount_point(tmp_path: Path) -> None:
    mounts = _mounts(
        tmp_path,
        "/dev/vda / ext4 rw 0 0",
        "server:/home /home nfs4 rw 0 0",
        "lfs@o2ib:/scratch /home/alice/scr\\040atch lustre rw 0 0",
        "broken-line",
    )
    assert sqlite_policy.filesystem_type(Path("/home/alice/x"), mounts) == "nfs4"
    assert sqlite_policy.filesystem_type(Path("/home/alice/scr atch/db"), mounts) == "lustre"
    assert sqlite_policy.filesystem_type(Path("/home2"), mounts) == "ext4"
    assert sqlite_policy.filesystem_type(Path("/x"), tmp_path / "missing") is None


def _journal_mode(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def test_a_local_store_uses_wal(tmp_path: Path) -> None:
    with Store.open(tmp_path / "manifest.db") as store:
        add_run(store, "r1")
    assert _journal_mode(tmp_path / "manifest.db") == "wal"


def test_a_store_on_a_network_filesystem_warns_once_and_avoids_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    mounts = _mounts(tmp_path, "/dev/vda / ext4 rw 0 0",
                     f"nas:/export {shared} nfs rw 0 0")  # fmt: skip
    monkeypatch.setattr(sqlite_policy, "MOUNTS_FILE", mounts)
    monkeypatch.setattr(sqlite_policy, "_warned", set())
    db = shared / "manifest.db"

    with (
        pytest.warns(NetworkFilesystemWarning, match=r"network filesystem \(nfs\)") as caught,
        Store.open(db) as store,
    ):
        add_run(store, "r1")
    assert len(caught) == 1 and "PostgreSQL" in str(caught[0].message)
    assert caught[0].filename == __file__  # the caller's line, not reflow's
    assert _journal_mode(db) == "delete"
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetworkFilesystemWarning)
        with Store.open(db) as again:  # the same file does not warn twice
            assert again.get_run("r1").run_id == "r1"


def test_a_symlink_to_a_store_on_a_network_filesystem_counts_as_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, local = tmp_path / "shared", tmp_path / "local"
    shared.mkdir()
    local.mkdir()
    monkeypatch.setattr(sqlite_policy, "MOUNTS_FILE", _mounts(tmp_path, "/dev/vda / ext4 rw 0 0",
                                                              f"nas:/export {shared} nfs4 rw"))
    monkeypatch.setattr(sqlite_policy, "_warned", set())
    (local / "manifest.db").symlink_to(shared / "manifest.db")
    with pytest.warns(NetworkFilesystemWarning), Store.open(local / "manifest.db") as store:
        add_run(store, "r1")
    assert _journal_mode(shared / "manifest.db") == "delete"


def test_the_cli_shows_the_network_filesystem_warning_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reflow.cli.main import app

    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setattr(sqlite_policy, "MOUNTS_FILE",
                        _mounts(tmp_path, f"nas:/export {shared} lustre rw 0 0"))
    monkeypatch.setattr(sqlite_policy, "_warned", set())
    with Store.open(tmp_path / "seed.db") as seed:  # created without the warning
        add_run(seed, "r1")
    (tmp_path / "seed.db").rename(shared / "manifest.db")
    with pytest.raises(SystemExit) as done:
        app(["runs", "--store-path", str(shared / "manifest.db")], standalone_mode=True)
    assert done.value.code == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: SQLite store ") and "(lustre)" in err
    assert err.count("\n") == 1, err


def test_an_in_memory_store_works_for_quick_experiments() -> None:
    with Store.open("sqlite://") as store:
        add_run(store, "r1")
        assert store.get_run("r1").run_id == "r1"


def test_new_stores_get_large_pages_and_old_ones_keep_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def page_size(db: Path) -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    Store.open(f"sqlite:///{tmp_path / 'new.db'}").close()
    assert page_size(tmp_path / "new.db") == sqlite_policy.PAGE_SIZE

    with monkeypatch.context() as patch:  # a store made before the page size was chosen
        patch.setattr(sqlite_policy, "PAGE_SIZE", 4096)
        Store.open(f"sqlite:///{tmp_path / 'old.db'}").close()
    with Store.open(f"sqlite:///{tmp_path / 'old.db'}") as store:
        add_run(store, "r1")  # still writable, page size untouched
        assert store.get_run("r1").run_id == "r1"
    assert page_size(tmp_path / "old.db") == 4096


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a writable directory, the same directory seen read-only).

    Root writes through file modes, so as root the view is a read-only bind mount (an
    archived store on a read-only filesystem); other users get a directory and files without
    write permission (a colleague's store).
    """
    real, view = tmp_path / "real", tmp_path / "view"
    real.mkdir()
    view.mkdir()
    if os.geteuid() != 0:
        yield real, real
        for path in (real, *real.iterdir()):
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(real), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount as root here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield real, view
    finally:
        subprocess.run(["umount", "--lazy", str(view)], check=True)  # the CLI keeps its engine


def _make_read_only(real: Path) -> None:
    if os.geteuid() != 0:
        for path in (*real.iterdir(), real):
            path.chmod(0o555 if path.is_dir() else 0o444)


@pytest.mark.parametrize("revision", ["0001", HEAD_REVISION])
def test_a_store_that_cannot_be_written_is_still_read(
    read_only_dir: tuple[Path, Path], capsys: pytest.CaptureFixture[str], revision: str
) -> None:
    """Also one an older reflow wrote: it cannot be upgraded, and is read as it is."""
    from reflow.cli.main import app

    real, view = read_only_dir
    with Store.open(real / "manifest.db") as store:
        add_run(store, "r1", status="SUCCESS")
    if revision == "0001":  # as the first release left it
        conn = sqlite3.connect(real / "manifest.db")
        with conn:
            conn.execute("DROP TABLE shared_values")
            conn.execute("UPDATE alembic_version SET version_num = '0001'")
        conn.close()  # the last connection: its log goes back into the file
    _make_read_only(real)
    with Store.open(view / "manifest.db", create=False) as store:
        assert store.read_only and store.revision == revision
        assert [run.run_id for run in store.list_runs()] == ["r1"]
        refused = r"read-only for you .* can be read .* but not changed"
        with pytest.raises(StoreError, match=refused):
            store.set_run_status("r1", "FAILED")
        assert store.get_run("r1").status == "SUCCESS"
    with pytest.raises(SystemExit) as done:
        app(["status", "r1", "--store-path", str(view / "manifest.db")], standalone_mode=True)
    assert done.value.code == 0
    assert "Status SUCCESS" in capsys.readouterr().out
    assert sorted(p.name for p in real.iterdir()) == ["manifest.db"]  # nothing written beside


def test_a_writable_store_is_not_read_only(tmp_path: Path) -> None:
    with Store.open(tmp_path / "manifest.db") as store:
        assert not store.read_only
