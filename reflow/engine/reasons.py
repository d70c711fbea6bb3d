"""Why an instance was cached or recomputed: the reason vocabulary and pre-image diffs.

Reasons are one short token each (SPEC §3) so that status counts, the TUI and scripts can
group by them; ``why`` expands a token into the list of pre-image components that changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CACHED = "cached"
NEW = "new"
VERSION_CHANGED = "version-changed"
FORCED = "forced"
CACHE_DISABLED = "cache-disabled"
RETRY = "retry"
SKIPPED = "skipped"


def param_changed(name: str) -> str:
    return f"param-changed:{name}"


def upstream_changed(name: str) -> str:
    return f"upstream-changed:{name}"


def verify_failed(kind: str) -> str:
    return f"verify-failed:{kind}"


class _Absent:
    """A component one of two pre-images does not have (a parameter added or removed)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Change:
    """One pre-image component that differs from the reference instance."""

    component: str  # "version", "param:<name>", "input:<name>", "after:<task>"
    old: Any
    new: Any

    @property
    def reason(self) -> str:
        kind, _, name = self.component.partition(":")
        if kind == "version":
            return VERSION_CHANGED
        if kind == "param":
            return param_changed(name)
        return upstream_changed(name)


def diff_preimages(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Components of ``new`` that differ from ``old``, in pre-image order.

    Pre-image order is version, then parameters, then data inputs, then ordering
    dependencies; within each group by name, as the canonical (sorted-key) JSON stores it.
    """
    changes: list[Change] = []
    if _differ(old.get("version"), new.get("version")):
        changes.append(Change("version", old.get("version"), new.get("version")))
    for group, prefix in (("params", "param"), ("inputs", "input"), ("after", "after")):
        o, n = old.get(group) or {}, new.get(group) or {}
        for key in sorted(set(o) | set(n)):
            if key not in o or key not in n or _differ(o[key], n[key]):
                changes.append(Change(f"{prefix}:{key}", o.get(key, ABSENT), n.get(key, ABSENT)))
    return changes


def _differ(old: Any, new: Any) -> bool:
    """Compared as the identity hashes them: ``1``, ``1.0`` and ``true`` are three values."""
    return old != new or json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True)


def miss_reason(new: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """The reason token for a cache miss, given the nearest earlier pre-image (if any).

    A miss with nothing changed means the earlier instance with these very inputs did not
    succeed (else it would be a hit): running it again is a retry, whether the run's own
    ``retry`` planned it again or a new run asked for the same work.
    """
    if reference is None:
        return NEW
    changes = diff_preimages(reference, new)
    return changes[0].reason if changes else RETRY
