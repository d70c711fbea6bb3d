"""Cache decisions for the expanded instances of one task (SPEC §3's rules).

Pure apart from the two lookups it is handed: the caller fetches cache hits and reference
pre-images in bulk, so deciding 10,000 instances is two queries, and the same decisions serve
``run_local``, the driver and ``submit(plan=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reflow.core.spec import TaskSpec
from reflow.engine import reasons
from reflow.engine.expand import Expanded
from reflow.engine.verify import VerifyProblem, verify_output
from reflow.store import CacheHit


@dataclass(slots=True)
class Decision:
    """Cached (``hit`` set) or to be computed (``reason`` says why)."""

    expanded: Expanded
    hit: CacheHit | None
    reason: str
    problems: Sequence[VerifyProblem] = ()


def bypass_reason(spec: TaskSpec, *, forced: bool) -> str:
    """Why no instance of ``spec`` may come from the cache, or "" when the cache decides."""
    return reasons.CACHE_DISABLED if not spec.cache else reasons.FORCED if forced else ""


def decide(
    spec: TaskSpec,
    expanded: Sequence[Expanded],
    lookup: Callable[[set[str]], Mapping[str, CacheHit]],
    *,
    forced: bool,
    verify: bool,
) -> list[Decision]:
    """Decide each instance; misses that need a pre-image diff get an empty reason."""
    use_cache = spec.cache and not forced
    hits = lookup({e.identity for e in expanded}) if use_cache and expanded else {}
    miss = bypass_reason(spec, forced=forced)
    if not verify:  # the common case, kept to one pass without per-instance checks
        get = hits.get
        return [Decision(e, None, miss) if (hit := get(e.identity)) is None
                else Decision(e, hit, reasons.CACHED) for e in expanded]
    out: list[Decision] = []
    for e in expanded:
        hit = hits.get(e.identity)
        problems = verify_output(spec, hit.output, hit.fingerprints) if hit is not None else []
        if hit is not None and not problems:
            out.append(Decision(e, hit, reasons.CACHED))
        elif problems:
            out.append(Decision(e, None, reasons.verify_failed(problems[0].kind), problems))
        else:
            out.append(Decision(e, None, miss))
    return out


# How many indices missing from the reference run are looked up one by one (``nearest``).
NEAREST_LOOKUPS = 100


def explain_misses(
    decisions: Sequence[Decision], references: Mapping[int | None, str],
    nearest: Callable[[int | None], str | None] | None = None,
) -> None:
    """Give every unexplained miss its reason by diffing with the nearest earlier instance.

    ``references`` maps array index to a stored pre-image from the latest earlier run, in id
    order. An index that did not exist then is compared with ``nearest(index)`` (the same
    index in any earlier run, else the latest instance: what ``why`` compares with, so the
    two agree), for the first ``NEAREST_LOOKUPS`` such indices; beyond those (an array grown
    a lot, new elements all), with the reference run's latest instance.
    """
    fallback = list(references)[-1] if references else None
    parsed: dict[int | None, dict[str, Any]] = {}
    looked_up: dict[int | None, dict[str, Any] | None] = {}
    for d in decisions:
        if d.reason:
            continue
        index = d.expanded.index
        if index not in references and nearest is not None and (
                index in looked_up or len(looked_up) < NEAREST_LOOKUPS):
            if index not in looked_up:
                text = nearest(index)
                looked_up[index] = None if text is None else json.loads(text)
            found = looked_up[index]
            d.reason = (reasons.NEW if found is None
                        else reasons.miss_reason(d.expanded.preimage, found))
            continue
        key = index if index in references else fallback
        if key not in references:
            d.reason = reasons.NEW
            continue
        if key not in parsed:
            parsed[key] = json.loads(references[key])
        d.reason = reasons.miss_reason(d.expanded.preimage, parsed[key])
