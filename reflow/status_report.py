"""The status of a run as a document (``--json``, ``as_dict``) and as stable text.

Both forms come from the same aggregate queries; the text keeps the line shapes of SPEC §6
because users' scripts parse them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from reflow.core.shared import referenced, references
from reflow.engine.reasons import SKIPPED
from reflow.states import TaskState
from reflow.store import InstanceRecord, RunRecord, Store, TransitionRecord

STATE_ORDER = [s.value for s in TaskState]
ERROR_LINES = 15


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json_or_none(text: str | None) -> Any:
    return json.loads(text) if text else None


def run_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "graph_name": run.workflow,
        "user_id": run.user,
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "status": run.status,
        "parameters": _json_or_none(run.parameters),
        "run_dir": run.run_dir,
        "entrypoint": run.entrypoint,
        "host": run.host,
        "options": _json_or_none(run.options),
        "reflow_version": run.reflow_version,
    }


class _SharedInputs:
    """The values of shared inputs (``core.shared``) as the documents show them: in place of
    each reference, as the instance received it. Each is read and parsed once, and every
    instance holds that one object, so a document of 10,000 elements sharing a large list
    holds the list once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._values: dict[str, Any] = {}

    def load(self, rows: Iterable[InstanceRecord]) -> None:
        wanted = set().union(*(referenced(r.input) for r in rows if r.input)) - self._values.keys()
        for digest, text in self._store.shared_values(wanted).items() if wanted else ():
            self._values[digest] = json.loads(text)

    def input_of(self, row: InstanceRecord) -> Any:
        data = _json_or_none(row.input)
        if isinstance(data, dict):
            for name, digest in references(data).items():
                data[name] = self._values.get(digest, data[name])
        return data


def instance_dict(row: InstanceRecord, shared: _SharedInputs | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "task_name": row.task_name,
        "array_index": row.array_index,
        "attempt": row.attempt,
        "state": row.state,
        "job_id": row.job_id,
        "input": shared.input_of(row) if shared is not None else _json_or_none(row.input),
        "output": _json_or_none(row.output),
        "error_text": row.error_text,
        # A skipped task's marker has no identity: null, as the spec wants every hash in
        # these documents to be a full 64-character hex digest.
        "identity": row.identity or None,
        "input_hash": row.input_hash or None,
        "output_hash": row.output_hash,
        "cached": row.cached,
        "cache_source": row.cache_source,
        "reason": row.reason,
        "exit_code": row.exit_code,
        "scheduler_state": row.scheduler_state,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "submitted_at": _iso(row.submitted_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
    }


def transition_dict(t: TransitionRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "instance_id": t.instance_id,
        "task_name": t.task_name,
        "array_index": t.array_index,
        "attempt": t.attempt,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "at": _iso(t.at),
        "detail": t.detail,
    }


def ordered_summary(store: Store, run_id: str) -> dict[str, dict[str, int]]:
    """State counts per task, tasks in topological order, states in lifecycle order."""
    counts = store.status_counts(run_id)
    order = [s.name for s in store.task_specs(run_id)]
    return {
        task: {s: counts[task][s] for s in STATE_ORDER if counts.get(task, {}).get(s)}
        for task in order + [t for t in counts if t not in order]
    }


def failed_instances(store: Store, run_id: str, summary: Mapping[str, Mapping[str, int]],
                     task: str | None = None) -> list[InstanceRecord]:
    """Current FAILED attempts, asked only of the tasks whose counts have any.

    Per task the state is part of the index key, so each question is a seek; asking the whole
    run for one state would step through every instance of it (25 ms on 100,000).
    """
    failed = TaskState.FAILED.value
    return [
        row
        for name, states in summary.items()
        if states.get(failed) and (task is None or name == task)
        for row in store.latest_instances(run_id, name, states=[failed])
    ]


def skip_notes(store: Store, run_id: str,
               summary: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """Why each skipped task was skipped ("skipped: upstream task 'x' failed"), by task.

    A skipped task is recorded as one CANCELLED instance with reason ``skipped`` (SPEC §4:
    "shown as such"); only tasks whose counts are exactly that one instance are asked.
    """
    cancelled = TaskState.CANCELLED.value
    notes = {name: skip_note(store, run_id, name) for name, states in summary.items()
             if dict(states) == {cancelled: 1}}
    return {name: note for name, note in notes.items() if note}


def skip_note(store: Store, run_id: str, task: str) -> str | None:
    """Why ``task`` was skipped, or None when it was not (one seek, whatever its size)."""
    for row in store.latest_instances(run_id, task, states=[TaskState.CANCELLED.value],
                                      limit=1):
        if row.reason == SKIPPED and row.error_text:
            return row.error_text
    return None


def status_document(store: Store, run_id: str, task: str | None = None) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, Iterator) else value
            for name, value in _status_sections(store, run_id, task).items()}


def write_status_json(store: Store, run_id: str, task: str | None,
                      write: Callable[[str], object]) -> None:
    """``status_document`` as indented JSON, written piece by piece with the same bytes as
    ``json.dumps(document, indent=2)``.

    A run of 100,000 instances has a document of hundreds of megabytes; built whole, it
    (and its text) took 1.6 GB, more than a login node may give. Written a page at a time,
    memory stays near one page.
    """
    sections = _status_sections(store, run_id, task)
    write("{")
    for n, (name, value) in enumerate(sections.items()):
        write(("," if n else "") + "\n  " + json.dumps(name) + ": ")
        if not isinstance(value, Iterator):
            write(_indented(value, "  "))
            continue
        empty = True
        for item in value:
            write(("[" if empty else ",") + "\n    " + _indented(item, "    "))
            empty = False
        write("[]" if empty else "\n  ]")
    write("\n}")


def _indented(value: Any, prefix: str) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + prefix)


_PAGE = 5_000  # instances or transitions read and converted at a time


def _status_sections(store: Store, run_id: str, task: str | None) -> dict[str, Any]:
    """The document's members in order; the long lists as iterators reading page by page."""
    from reflow.actions import stalled_reason, waiting_reports

    run = store.get_run(run_id)
    summary = ordered_summary(store, run_id)
    failed = failed_instances(store, run_id, summary, task)
    if task is not None:
        summary = {task: summary.get(task, {})}
    reports = waiting_reports(run)
    shared = _SharedInputs(store)
    shared.load(failed)
    return {
        "run": {**run_dict(run), "stalled": stalled_reason(store, run_id),
                "unrecorded": {"started": reports.started, "finished": reports.finished}},
        "summary": summary,
        "cache": {t: {"cached": c, "recomputed": r}
                  for t, (c, r) in store.cache_counts(run_id).items()
                  if task is None or t == task},
        "instances": _instances(store, store.latest_instance_ids(run_id, task), shared),
        "failed_instances": (instance_dict(r, shared) for r in failed),
        "transitions": _transitions(store, run_id, task),
    }


def _instances(store: Store, ids: list[int],
               shared: _SharedInputs) -> Iterator[dict[str, Any]]:
    for start in range(0, len(ids), _PAGE):
        rows = store.instances(ids[start:start + _PAGE])
        shared.load(rows)
        yield from (instance_dict(r, shared) for r in rows)


def _transitions(store: Store, run_id: str, task: str | None) -> Iterator[dict[str, Any]]:
    since = 0
    while True:
        page = store.transitions(run_id, since_id=since, limit=_PAGE, task_name=task)
        yield from map(transition_dict, page)
        if len(page) < _PAGE:
            return
        since = page[-1].id


def status_text(store: Store, run_id: str, task: str | None = None,
                errors: bool = False) -> str:
    run = store.get_run(run_id)
    summary = ordered_summary(store, run_id)
    cache = store.cache_counts(run_id)
    failed = failed_instances(store, run_id, summary, task)
    skipped = skip_notes(store, run_id, summary)
    lines = [
        f"Run {run.run_id}",
        f"Workflow {run.workflow}",
        f"Status {run.status}",
        f"Created {_iso(run.created_at)}",
    ]
    from reflow.actions import stalled_reason, waiting_reports

    stalled = stalled_reason(store, run_id)
    if stalled:
        lines.append(f"Stalled {stalled}; `reflow resume {run_id}{store.cli_option()}` "
                     "restarts it")
    reports = waiting_reports(run)
    if reports:
        lines.append(f"Workers {reports.text()}")
    for name, states in summary.items():
        if task is not None and name != task:
            continue
        text = ", ".join(f"{s}={n}" for s, n in states.items()) or "no instances"
        cached, recomputed = cache.get(name, (0, 0))
        note = f"  ({skipped[name]})" if name in skipped else ""
        lines.append(f"  {name}  {text}  (cached={cached}, recomputed={recomputed}){note}")
        for row in (r for r in failed if r.task_name == name):
            index = "-" if row.array_index is None else row.array_index
            lines.append(f"    [{index}]  FAILED  job={row.job_id or '-'}")
            if errors and row.error_text:
                for err in row.error_text.rstrip().splitlines()[-ERROR_LINES:]:
                    lines.append(f"        {err}")
    return "\n".join(lines)
