"""Digests of values and identity pre-images, and the file fingerprints folded into them.

A ``Path`` in a value is a promise about a file's contents, so hashing only its text would let a
rewritten file look unchanged downstream.  Size plus ``st_mtime_ns`` is the proxy: cheap for
multi-gigabyte files, and any rewrite by a normal tool changes at least one of them.  Only real
``PurePath`` objects are fingerprinted; a ``str`` that happens to look like a path is just text.
Relative paths are looked up from the current directory of the process that hashes them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from reflow.core.codec import SCALAR_TYPES, canonical_json, encode_collecting_paths

SHORT_LENGTH = 12
# Canonical JSON escapes control characters, so NUL can never occur inside it: a safe separator
# between the value text and its fingerprints (no value without paths can collide with one with).
_SEPARATOR = b"\0"


class ValueHash(NamedTuple):
    """Digest of a value, the fingerprints folded into it, and its canonical text.

    ``canonical`` is kept because the engine stores the encoded value next to its hash; reusing
    it saves a second encoding per value. A named tuple: two are made per array element, and
    it builds several times faster than a frozen dataclass.
    """

    digest: str
    fingerprints: dict[str, list[int] | None]
    canonical: str


@dataclass(frozen=True)
class FileProblem:
    """Why a recorded file no longer backs a cached output (``verify``)."""

    path: str
    problem: Literal["missing", "changed"]
    detail: str


def sha256_hex(text: str) -> str:
    """Full SHA-256 hex of ``text`` as UTF-8 (lone surrogates pass through, never crash)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def short(digest: str) -> str:
    """The prefix interfaces show; the store always keeps the full digest."""
    return digest[:SHORT_LENGTH]


def fingerprint(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(size, st_mtime_ns)`` of the file, or ``None`` when it cannot be found."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path names no file either
        return None
    return st.st_size, st.st_mtime_ns


def value_hash(value: object, *, where: str = "value",
               known: Mapping[str, Sequence[int] | None] | None = None) -> ValueHash:
    """Hash the canonical encoding of ``value``, folding in the fingerprint of every Path in it.

    ``known``: fingerprints recorded with the output the value came from, used instead of
    the files as they are now (a stored identity is trusted; ``verify`` is what looks again).
    """
    kind = type(value)
    if kind in SCALAR_TYPES:  # most array elements and outputs: nothing to walk
        text = str(value) if kind is int else canonical_json(value)  # an int's JSON is its repr
        return ValueHash(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), {},
                         text)
    encoded, paths = encode_collecting_paths(value, where=where)
    text = canonical_json(encoded)
    if not paths:
        return ValueHash(sha256_hex(text), {}, text)
    fingerprints: dict[str, list[int] | None] = {}
    for path in paths:
        # A relative path is fingerprinted where it points now: verify may run in another
        # directory (a driver, a later run), where the same text names another file or none.
        key = path.as_posix() if not isinstance(path, Path) or path.is_absolute() else (
            os.path.abspath(path))
        if key not in fingerprints:
            found = known[key] if known is not None and key in known else fingerprint(key)
            fingerprints[key] = None if found is None else list(found)
    return ValueHash(output_digest(text, fingerprints), fingerprints, text)


def output_digest(canonical: str, fingerprints: Mapping[str, Sequence[int] | None]) -> str:
    """The hash of an output given its canonical text and its files' fingerprints.

    ``value_hash`` computes it; the driver computes it again from a worker's result file, so
    a file changed after it was written is not recorded with a hash of other contents.
    """
    h = hashlib.sha256(canonical.encode("utf-8", "surrogatepass"))
    if fingerprints:
        h.update(_SEPARATOR)
        h.update(canonical_json(fingerprints).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def element_hashes(
    values: Sequence[object], *, where: str = "value",
    known: Mapping[str, Sequence[int] | None] | None = None,
) -> tuple[list[str], list[str]]:
    """Digests and canonical texts of many values (the elements of a fan-out), in order.

    The same as ``value_hash`` per value, with its scalar case written into the loop: a fan-out
    over 10,000 numbers or names hashes each without a call or a record per element.
    """
    digests: list[str] = []
    texts: list[str] = []
    sha256 = hashlib.sha256
    for value in values:
        kind = type(value)
        if kind is int:
            text = str(value)
        elif kind in SCALAR_TYPES:
            text = canonical_json(value)
        else:
            h = value_hash(value, where=where, known=known)
            digests.append(h.digest)
            texts.append(h.canonical)
            continue
        digests.append(sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        texts.append(text)
    return digests, texts


def preimage_json_and_digest(preimage: Mapping[str, Any]) -> tuple[str, str]:
    """Canonical text of the pre-image and its digest, for callers that store both."""
    text = canonical_json(preimage)
    return text, sha256_hex(text)


def check_fingerprints(fingerprints: Mapping[str, Sequence[int] | None]) -> list[FileProblem]:
    """Compare recorded fingerprints with the files as they are now; empty when all still match."""
    problems: list[FileProblem] = []
    for path, recorded in fingerprints.items():
        current = fingerprint(path)
        if recorded is None:
            if current is not None:
                problems.append(
                    FileProblem(
                        path,
                        "changed",
                        f"was missing when recorded, now exists ({current[0]} bytes)",
                    )
                )
        elif current is None:
            problems.append(
                FileProblem(path, "missing", f"no longer exists (recorded {recorded[0]} bytes)")
            )
        elif (current[0], current[1]) != (recorded[0], recorded[1]):
            problems.append(FileProblem(path, "changed", _describe_change(recorded, current)))
    return problems


def _describe_change(old: Sequence[int], new: Sequence[int]) -> str:
    changes = []
    if old[0] != new[0]:
        changes.append(f"size {old[0]} -> {new[0]} bytes")
    if old[1] != new[1]:
        changes.append(f"mtime {_mtime_text(old[1])} -> {_mtime_text(new[1])}")
    return ", ".join(changes)


def _mtime_text(ns: int) -> str:
    """UTC timestamp with full nanoseconds, so two different mtimes never print alike."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"
