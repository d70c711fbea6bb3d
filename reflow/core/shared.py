"""Inputs shared by every element of an array task, recorded once instead of once per element.

A value broadcast to an array (a list of 10,000 file names, a large config) is the same for
each element; written into every element's input payload it made the store, the run's memory
and the workers' payload files grow with elements x value size (a 1 MB list and 200 elements:
200 MB). An element's payload holds a reference in its place instead, ``{"$t":"shared","v":
digest}``, and the text is kept once (the store's ``shared_values``, a payload's
``shared.json``). Only values of at least ``MIN_SHARED_CHARS`` are shared: a small value is
cheaper inline than a lookup, and most inputs stay as readable as before.

A reference is only ever a whole top-level member of a payload object, where the codec itself
never writes a ``"$t"`` object for user data (a user dict with that key is wrapped), so
finding one needs no guessing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping

from reflow.core.codec import TAG, canonical_json
from reflow.core.hashing import sha256_hex

SHARED_TAG = "shared"
MIN_SHARED_CHARS = 4096
_MARK = f'"{TAG}":"{SHARED_TAG}"'


def share(text: str) -> tuple[str, str]:
    """(the reference that stands for ``text`` in a payload, its digest)."""
    digest = sha256_hex(text)
    return canonical_json({TAG: SHARED_TAG, "v": digest}), digest


def references(data: Mapping[str, object]) -> dict[str, str]:
    """Member name -> digest, for the members of a parsed payload that are references."""
    return {
        name: str(value["v"]) for name, value in data.items()
        if isinstance(value, dict) and value.get(TAG) == SHARED_TAG and len(value) == 2
    }


def referenced(text: str) -> set[str]:
    """Digests a payload text refers to (none without parsing, for most payloads)."""
    if _MARK not in text:
        return set()
    return set(references(json.loads(text)).values())


def resolve(text: str, lookup: Callable[[Collection[str]], Mapping[str, str]]) -> str:
    """``text`` with every reference replaced by the text it stands for.

    ``lookup`` gives the texts of digests (from the store, or a payload's ``shared.json``);
    it is called only when there are references.
    """
    if _MARK not in text:
        return text
    data = json.loads(text)
    refs = references(data)
    if not refs:
        return text
    texts = lookup(set(refs.values()))
    missing = sorted(set(refs.values()) - texts.keys())
    if missing:
        raise LookupError(f"shared input {missing[0]} is not recorded")
    members = (
        json.dumps(name, ensure_ascii=False) + ":"
        + (texts[refs[name]] if name in refs else canonical_json(value))
        for name, value in data.items()
    )
    return "{" + ",".join(members) + "}"
