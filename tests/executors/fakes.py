"""Test helpers for the adapter tests: the recording fake scheduler and job builders.

PBS, LSF, Grid Engine and Flux cannot run on the test machine, so their adapters are tested
against ``fakebin/``: real executables, run through the adapters' real subprocess path, that
record their argv (and stdin) and print canned answers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflow.executors.base import JobResources, JobSpec
from reflow.executors.commands import CommandRunner, RetryPolicy

FAKEBIN = Path(__file__).parent / "fakebin"
TOOLS = sorted(p.name for p in FAKEBIN.iterdir() if p.is_symlink())


@dataclass
class Call:
    tool: str
    argv: list[str]
    stdin: str


class FakeScheduler:
    """Canned replies in, recorded calls out."""

    def __init__(self, root: Path) -> None:
        self.log = root / "calls.jsonl"
        self.replies = root / "replies"
        self.replies.mkdir()
        self.sleeps: list[float] = []

    def reply(self, tool: str, *replies: str | dict[str, Any]) -> None:
        """Queue replies for ``tool`` (or ``"flux-submit"``): a str is stdout with exit 0."""
        rows = [{"stdout": r} if isinstance(r, str) else r for r in replies]
        (self.replies / tool).write_text(json.dumps(rows), encoding="utf-8")

    def calls(self, tool: str | None = None) -> list[Call]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]
        return [Call(**row) for row in rows if tool is None or row["tool"] == tool]

    def argv(self, tool: str) -> list[str]:
        """The argv of the only call of ``tool``."""
        calls = self.calls(tool)
        assert len(calls) == 1, f"expected one {tool} call, got {calls}"
        return calls[0].argv

    def runner(self, attempts: int = 5) -> CommandRunner:
        return CommandRunner(
            {tool: str(FAKEBIN / tool) for tool in TOOLS},
            timeout=20,
            retry=RetryPolicy(attempts=attempts, base_delay=1.0, max_delay=8.0, jitter=0.25),
            sleep=self.sleeps.append,
            rng=random.Random(7),
        )


def make_job(
    workdir: Path,
    *,
    name: str = "wf-task",
    indices: tuple[int, ...] | None = None,
    parallelism: int | None = None,
    after: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    **resources: Any,
) -> JobSpec:
    """A job running ``/usr/bin/python3 -m reflow.engine.worker payload`` in ``workdir``."""
    suffix = "-{index}" if indices is not None else ""
    return JobSpec(
        name=name,
        command=("/usr/bin/python3", "-m", "reflow.engine.worker", "payload"),
        resources=JobResources.from_options(**resources),
        workdir=workdir,
        stdout=Path(f"logs/{name}{suffix}.out"),
        stderr=Path(f"logs/{name}{suffix}.err"),
        array_indices=indices,
        array_parallelism=parallelism,
        after_any=after,
        env=env or {},
    )


def wrapper_tail(workdir: Path, name: str) -> list[str]:
    """What an array element runs after the scheduler's own options: the index/log wrapper."""
    from reflow.executors.scheduler import ARRAY_WRAPPER

    logs = workdir / "logs"
    return [
        "/bin/sh", "-c", ARRAY_WRAPPER, "reflow-job", str(workdir),
        f"{logs}/{name}-", ".out", f"{logs}/{name}-", ".err",
        "/usr/bin/python3", "-m", "reflow.engine.worker", "payload",
    ]  # fmt: skip
