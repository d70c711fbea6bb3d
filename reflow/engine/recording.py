"""Turning cache decisions into instance rows: shared by ``run_local`` and the driver.

Both paths decide a task's expanded instances the same way (bulk lookup, then a pre-image
diff for misses) and record a cache hit the same way, so that an instance looks identical in
the store whichever path produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reflow.core.spec import TaskSpec
from reflow.engine import reasons
from reflow.engine.expand import Expanded
from reflow.engine.planner import Decision, bypass_reason, decide, explain_misses
from reflow.states import TaskState
from reflow.store import CachedCopy, CopyBatch, NewInstance, NewVerifyFailure, Store
from reflow.store.cache import TaskHistory
from reflow.store.writes import RecordedInstance

# The error text of what a user's cancel stopped (and of the markers of tasks it kept from running).
CANCELLED_BY_USER = "cancelled by user"

# Above every instance id: "earlier than anything" for lookups made before the run's rows.
LAST_ID = 2**62


def plan_task(
    store: Store, workflow: str, run_id: str | None, spec: TaskSpec,
    expanded: Sequence[Expanded],
    *, forced: bool, verify: bool, history: TaskHistory | None = None,
) -> list[Decision]:
    """Decide every instance (bulk lookup) and give each miss its reason.

    ``history`` (from ``Store.task_history``) spares the queries whose answer it already
    holds: no lookup for a task that has no instance anywhere, no diff for one never seen.
    """
    if history is not None and spec.name not in history.recorded:
        # Never recorded anywhere: nothing to find, nothing to compare with, nothing to verify.
        reason = bypass_reason(spec, forced=forced) or reasons.NEW
        return [Decision(e, None, reason) for e in expanded]
    decisions = decide(spec, expanded, store.find_cached, forced=forced, verify=verify)
    misses = [d for d in decisions if d.hit is None]
    if any(not d.reason for d in misses):
        references: dict[int | None, str] = {}
        if run_id is not None:
            references = store.earlier_attempt_preimages(run_id, spec.name)
        seen = (spec.name in history.seen if history is not None
                else store.task_seen(workflow, spec.name, exclude_run=run_id))
        nearest = None
        if seen and not references:
            references = store.reference_preimages(workflow, spec.name, exclude_run=run_id)

            def nearest(index: int | None) -> str | None:
                return store.nearest_preimage(workflow, spec.name, index,
                                              before_instance_id=LAST_ID, exclude_run=run_id)

        explain_misses(misses, references, nearest)
    return decisions


def keep_shared(store: Store, expanded: Sequence[Expanded]) -> None:
    """Record the shared input texts a task's payloads refer to (``core.shared``), before the
    rows that refer to them; all elements of a task share one mapping."""
    texts = expanded[0].shared_texts if expanded else None
    if texts:
        store.put_shared(texts)


def copy_batch(run_id: str, workflow: str, task: str, decisions: Sequence[Decision],
               now: datetime) -> CopyBatch:
    """How a task's cache hits are recorded: each instance's identity and inputs with its
    source's output. The input hash is the source's too: equal identities mean equal inputs.
    """
    return CopyBatch(run_id, workflow, task, reasons.CACHED, now, [
        CachedCopy(d.expanded.index, d.expanded.identity, hit.input_hash,
                   d.expanded.preimage_json, d.expanded.input_json, hit)
        for d in decisions if (hit := d.hit) is not None
    ])


def fresh_row(run_id: str, workflow: str, task: str, e: Expanded, reason: str, state: str,
              detail: str, started_at: datetime | None = None) -> NewInstance:
    """A row for an instance that will be computed."""
    return NewInstance(
        run_id=run_id, workflow=workflow, task_name=task, array_index=e.index, attempt=1,
        state=state, identity=e.identity, input_hash=e.input_hash, preimage=e.preimage_json,
        input=e.input_json, reason=reason, started_at=started_at, detail=detail,
    )


def marker_row(run_id: str, workflow: str, task: str, text: str, at: datetime, *,
               skipped: bool = True) -> NewInstance:
    """The one row of a task that will not run: CANCELLED with reason ``skipped`` when an
    upstream task did not succeed or the run stopped first, else (a problem found while
    expanding it) FAILED. ``status`` shows the task with its reason instead of nothing."""
    return NewInstance(
        run_id=run_id, workflow=workflow, task_name=task, array_index=None, attempt=1,
        state=TaskState.CANCELLED if skipped else TaskState.FAILED, identity="",
        input_hash="", preimage="{}", input="{}",
        reason=reasons.SKIPPED if skipped else reasons.NEW, error_text=text, finished_at=at,
        detail=text[:500],
    )


def planned_instance(run_id: str, workflow: str, task: str, e: Expanded, reason: str,
                     state: str, detail: str, at: datetime) -> RecordedInstance:
    """The same row as ``fresh_row``, for an instance this process will compute."""
    return RecordedInstance.planned(run_id, workflow, task, e.index, e.identity, e.input_hash,
                                    e.preimage_json, e.input_json, reason, state, at, detail)


def verify_failure_rows(run_id: str, spec: TaskSpec, decisions: Sequence[Decision],
                        ids: Sequence[int]) -> list[NewVerifyFailure]:
    """Verify-failure rows for recomputed instances whose cached output failed its check."""
    return [
        NewVerifyFailure(i, run_id, spec.name, d.expanded.index, prob.check,
                         f"{prob.kind}: {prob.reason}")
        for d, i in zip(decisions, ids, strict=True)
        for prob in d.problems
    ]
