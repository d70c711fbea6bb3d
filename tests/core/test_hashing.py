"""Value hashes fold in real file fingerprints; verification reports missing and changed files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from reflow.core.codec import canonical_json, dumps
from reflow.core.hashing import (
    FileProblem,
    check_fingerprints,
    element_hashes,
    fingerprint,
    preimage_json_and_digest,
    sha256_hex,
    short,
    value_hash,
)
from reflow.errors import EncodeError

SECOND = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Product:
    name: str
    files: tuple[Path, ...]


def write(path: Path, text: str, mtime_ns: int | None = None) -> Path:
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_sha256_hex_is_full_and_short_is_twelve_chars() -> None:
    digest = sha256_hex("abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert short(digest) == "ba7816bf8f01"


def test_sha256_hex_accepts_lone_surrogates() -> None:
    assert len(sha256_hex("\udc80")) == 64


def test_value_without_paths_is_one_dumps_and_one_sha256() -> None:
    value = {"start": 3, "names": ["a", "b"], "pair": (1, 2)}
    result = value_hash(value, where="output of task 'x'")
    assert result.digest == sha256_hex(dumps(value))
    assert result.canonical == dumps(value)
    assert result.fingerprints == {}


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 1.0), ([1], (1,)), (Path("a"), "a"), (True, 1), ({"k": None}, {"k": "null"})],
    ids=["int-float", "list-tuple", "path-str", "bool-int", "none-str"],
)
def test_distinct_values_hash_differently(a: Any, b: Any) -> None:
    assert value_hash(a).digest != value_hash(b).digest


def test_str_that_looks_like_a_path_is_not_fingerprinted(tmp_path: Path) -> None:
    target = write(tmp_path / "data.csv", "x")
    assert value_hash(str(target)).fingerprints == {}
    assert value_hash(target).fingerprints == {target.as_posix(): list(fingerprint(target) or ())}


def test_fingerprint_is_size_and_mtime_ns_or_none(tmp_path: Path) -> None:
    target = write(tmp_path / "f.bin", "12345", mtime_ns=1_700_000_000 * SECOND + 7)
    assert fingerprint(target) == (5, 1_700_000_000 * SECOND + 7)
    assert fingerprint(str(target)) == (5, 1_700_000_000 * SECOND + 7)
    assert fingerprint(tmp_path / "absent") is None
    assert fingerprint(target / "below-a-file") is None


def test_rewriting_a_file_changes_the_hash(tmp_path: Path) -> None:
    target = write(tmp_path / "out.nc", "first", mtime_ns=1_000 * SECOND)
    before = value_hash(target)
    write(target, "second version", mtime_ns=1_000 * SECOND)  # same mtime, new size
    after = value_hash(target)
    assert after.digest != before.digest
    assert after.fingerprints == {target.as_posix(): [len("second version"), 1_000 * SECOND]}


def test_touching_a_file_changes_the_hash_and_restoring_it_restores_the_hash(
    tmp_path: Path,
) -> None:
    target = write(tmp_path / "out.nc", "same", mtime_ns=1_000 * SECOND)
    before = value_hash([target])
    os.utime(target, ns=(2_000 * SECOND, 2_000 * SECOND))
    touched = value_hash([target])
    assert touched.digest != before.digest
    os.utime(target, ns=(1_000 * SECOND, 1_000 * SECOND))
    assert value_hash([target]).digest == before.digest


def test_missing_file_is_recorded_and_creating_it_changes_the_hash(tmp_path: Path) -> None:
    target = tmp_path / "later.txt"
    missing = value_hash(target)
    assert missing.fingerprints == {target.as_posix(): None}
    assert missing.digest != value_hash(str(target)).digest
    write(target, "")
    assert value_hash(target).digest != missing.digest


def test_paths_are_found_anywhere_inside_the_value(tmp_path: Path) -> None:
    a = write(tmp_path / "a", "1")
    b = write(tmp_path / "b", "22")
    c = write(tmp_path / "c", "333")
    value = {"list": [a], "nested": {"product": Product("p", (b, c, a))}}
    result = value_hash(value)
    assert result.fingerprints == {
        a.as_posix(): [1, a.stat().st_mtime_ns],
        b.as_posix(): [2, b.stat().st_mtime_ns],
        c.as_posix(): [3, c.stat().st_mtime_ns],
    }
    assert result.canonical == dumps(value)
    write(c, "changed")
    assert value_hash(value).digest != result.digest


def test_value_hash_error_names_where(tmp_path: Path) -> None:
    with pytest.raises(
        EncodeError, match=r"^cannot encode output of task 'convert': .*'set' at \[1\]"
    ):
        value_hash([tmp_path, {1}], where="output of task 'convert'")


def test_identity_digest_is_sha256_of_canonical_json() -> None:
    preimage = {"task": "convert", "version": "1", "params": {"start": 3}}
    reordered = {"params": {"start": 3}, "version": "1", "task": "convert"}
    text, digest = preimage_json_and_digest(preimage)
    assert text == canonical_json(preimage)
    assert digest == sha256_hex(canonical_json(preimage))
    assert preimage_json_and_digest(reordered) == (text, digest)
    assert preimage_json_and_digest({**preimage, "version": "2"})[1] != digest


def test_check_fingerprints_accepts_unchanged_files(tmp_path: Path) -> None:
    target = write(tmp_path / "keep", "data")
    recorded = value_hash(target).fingerprints
    assert check_fingerprints(recorded) == []
    # Fingerprints read back from the store are lists again, and still-missing stays fine.
    assert check_fingerprints({str(target): list(fingerprint(target) or ())}) == []
    assert check_fingerprints({str(tmp_path / "never"): None}) == []


def test_check_fingerprints_reports_missing_file(tmp_path: Path) -> None:
    target = write(tmp_path / "gone", "12345")
    recorded = value_hash(target).fingerprints
    target.unlink()
    assert check_fingerprints(recorded) == [
        FileProblem(target.as_posix(), "missing", "no longer exists (recorded 5 bytes)")
    ]


def test_check_fingerprints_reports_size_change(tmp_path: Path) -> None:
    target = write(tmp_path / "grown", "12345", mtime_ns=1_000 * SECOND)
    recorded = value_hash(target).fingerprints
    write(target, "1234567", mtime_ns=1_000 * SECOND)
    [problem] = check_fingerprints(recorded)
    assert (problem.path, problem.problem) == (target.as_posix(), "changed")
    assert problem.detail == "size 5 -> 7 bytes"


def test_check_fingerprints_reports_mtime_change_to_the_nanosecond(tmp_path: Path) -> None:
    target = write(tmp_path / "touched", "x", mtime_ns=1_000 * SECOND)
    recorded = value_hash(target).fingerprints
    os.utime(target, ns=(1_000 * SECOND + 1, 1_000 * SECOND + 1))
    [problem] = check_fingerprints(recorded)
    assert problem.problem == "changed"
    assert problem.detail == (
        "mtime 1970-01-01T00:16:40.000000000Z -> 1970-01-01T00:16:40.000000001Z"
    )


def test_check_fingerprints_reports_file_that_appeared(tmp_path: Path) -> None:
    target = tmp_path / "appeared"
    recorded = value_hash(target).fingerprints
    write(target, "abc")
    assert check_fingerprints(recorded) == [
        FileProblem(target.as_posix(), "changed", "was missing when recorded, now exists (3 bytes)")
    ]


def test_element_hashes_equal_value_hash_for_every_kind(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    values: list[object] = [0, -7, 10**20, True, False, None, "a\"b\u00e9", 1.5, [1, "x"],
                            {"k": (1, 2)}, tmp_path / "f.txt"]
    digests, texts = element_hashes(values, where="input 'x' of task 't'")
    assert digests == [value_hash(v).digest for v in values]
    assert texts == [value_hash(v).canonical for v in values]
    assert digests[3] != digests[0] and digests[1] != digests[2]  # True is not 1
    with pytest.raises(EncodeError, match="input 'x' of task 't'"):
        element_hashes([1, {1, 2}], where="input 'x' of task 't'")


def test_a_relative_path_is_fingerprinted_where_it_points_so_verify_works_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("out.txt").write_text("data")
    result = value_hash(Path("out.txt"))
    assert list(result.fingerprints) == [(tmp_path / "out.txt").as_posix()]
    assert result.canonical == '{"$t":"path","v":"out.txt"}'  # the value itself is kept as given
    monkeypatch.chdir(tmp_path.parent)  # a driver or a later run elsewhere
    assert check_fingerprints(result.fingerprints) == []
