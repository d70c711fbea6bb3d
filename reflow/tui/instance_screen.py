"""Instance detail: history, identity and pre-image, why, job facts, timings, log tails."""

from __future__ import annotations

import json
from datetime import tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from reflow.core.hashing import short
from reflow.states import STATE_STYLES
from reflow.store import InstanceRecord
from reflow.tui.base import ReflowScreen, Selection
from reflow.tui.data import InstanceDetail
from reflow.tui.fmt import clock_time, duration, label, stamp

PREIMAGE_LINES = 30


def _section(out: Text, title: str) -> None:
    out.append(f"\n{title}\n", style="bold underline")


def render_detail(d: InstanceDetail, tz: tzinfo | None) -> Text:
    """The whole detail page as one text, in the order a user debugging a failure reads it."""
    r = d.instance
    out = Text()
    out.append(label(r.task_name, r.array_index), style="bold")
    out.append(f"  attempt {r.attempt}  ")
    out.append(r.state, style=STATE_STYLES.get(r.state, ""))
    out.append(f"  reason {r.reason}")
    if r.cached:
        out.append(f"  cached from instance {r.cache_source}", style="cyan")
    out.append(f"\nidentity {short(r.identity)}  inputs {short(r.input_hash)}")
    if r.output_hash:
        out.append(f"  output {short(r.output_hash)}")
    out.append(f"\njob {r.job_id or '-'}  scheduler {r.scheduler_state or '-'}  "
               f"exit {'-' if r.exit_code is None else r.exit_code}")
    out.append(f"\ncreated {stamp(r.created_at, tz)}  submitted {clock_time(r.submitted_at, tz)}"
               f"  started {clock_time(r.started_at, tz)}  finished "
               f"{clock_time(r.finished_at, tz)}  took {duration(r.started_at, r.finished_at)}")
    _section(out, "Why")
    out.append(d.why)
    if r.error_text:
        _section(out, "Error")
        out.append("\n".join(r.error_text.rstrip().splitlines()[-10:]), style="red")
    _section(out, "State history (every attempt)")
    reasons = {a.attempt: a.reason for a in d.attempts}
    for t in d.transitions:
        out.append(f"{clock_time(t.at, tz)} #{t.attempt} ")
        out.append(t.from_state or "new", style=STATE_STYLES.get(t.from_state or "", "dim"))
        out.append(" → ")
        out.append(t.to_state, style=STATE_STYLES.get(t.to_state, ""))
        note = t.detail or (reasons.get(t.attempt, "") if t.from_state is None else "")
        out.append(f"  {note}\n" if note else "\n", style="dim")
    _section(out, "Identity pre-image")
    try:
        pretty = json.dumps(json.loads(r.preimage), indent=2, sort_keys=True)
    except ValueError:
        pretty = r.preimage
    lines = pretty.splitlines()
    out.append("\n".join(lines[:PREIMAGE_LINES]) + ("\n…" if len(lines) > PREIMAGE_LINES else ""))
    for name, path, lines in (("stdout", r.stdout_path, d.stdout_tail),
                              ("stderr", r.stderr_path, d.stderr_tail)):
        _section(out, f"{name} (tail; l opens the full log)")
        if lines:
            out.append("\n".join(lines))
        else:
            out.append("(empty)" if path else _no_log(r), style="dim")
    return out


def _no_log(r: InstanceRecord) -> str:
    """Why an instance has no log file, rather than a misleading "(empty)"."""
    if r.cached:
        return f"(no log: the output was reused from instance {r.cache_source}; see its logs)"
    if r.job_id is None:
        return "(no log file: run in-process, its output went to that process's terminal)"
    return "(no log file recorded)"


class InstanceScreen(ReflowScreen):
    """Detail of one attempt of one instance."""

    def __init__(self, instance_id: int) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.detail: InstanceDetail | None = None

    def compose(self) -> ComposeResult:
        yield self.banner()
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail")
        yield self.message_line()
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#detail-scroll").focus()

    def load(self) -> InstanceDetail:
        return self.rapp.reader.detail(self.instance_id)

    def show(self, data: InstanceDetail) -> None:
        self.detail = data
        self.query_one("#detail", Static).update(render_detail(data, self.rapp.clock().tzinfo))

    def selection(self) -> Selection:
        if self.detail is None:
            return Selection()
        r = self.detail.instance
        return Selection(r.run_id, r.task_name, r.array_index, r.id, has_index=True)
