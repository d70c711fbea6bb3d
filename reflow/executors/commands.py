"""Running scheduler commands: argv lists only, a timeout, and bounded retries of the
failures that go away by themselves (a busy controller), plus the index-set helpers every
adapter needs.

Scheduler clients fail transiently under load ("Socket timed out", "Resource temporarily
unavailable"); a driver step that gave up at the first such error would leave work
unsubmitted until the next step, so transient errors are retried here with jittered
exponential backoff, while refusals (bad partition, over a limit) surface at once.
"""

from __future__ import annotations

import random
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from reflow.errors import ExecutorError
from reflow.executors.base import SCHEDULER_TOOLS


@dataclass(frozen=True)
class Command:
    """An argv (and optional stdin text) ready to run, or to log in dry-run mode."""

    argv: tuple[str, ...]
    stdin: str | None = None

    def __str__(self) -> str:
        text = shlex.join(self.argv)
        return text if self.stdin is None else f"{text} <<'EOF'\n{self.stdin}EOF"


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    ``delay(n)`` is the pause after the n-th failed attempt: ``base * 2**(n-1)`` capped at
    ``max_delay``, then spread by +-``jitter`` (a fraction) so that many drivers hitting one
    overloaded controller do not retry in lockstep.
    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, not {self.attempts}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"retry jitter must be in [0, 1), not {self.jitter}")

    def delay(self, failures: int, rng: random.Random) -> float:
        raw = min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
        return raw * (1 + rng.uniform(-self.jitter, self.jitter))


def error_line(result: CommandResult) -> str:
    """The scheduler's own one-line explanation of a failure.

    The last line that says "error" is usually the specific one (sbatch prints a generic
    line first); otherwise the last non-empty line of stderr, then of stdout.
    """
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    if errors:
        return errors[-1]
    if lines:
        return lines[-1]
    out = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
    return out[-1] if out else f"exit status {result.returncode} and no message"


class CommandRunner:
    """Runs scheduler tools by name, resolving each through configured paths.

    ``paths`` maps a tool name ("sbatch") to the executable to run, for sites where the
    clients are not on PATH. ``sleep`` and ``rng`` are injectable so backoff is testable
    without waiting.
    """

    def __init__(
        self,
        paths: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.paths = dict(paths or {})
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        transient: Iterable[str] = (),
        retry: bool = True,
        submits: bool = False,
    ) -> CommandResult:
        """Run ``tool args...`` and return its result, whatever the exit status.

        A result whose output matches one of the ``transient`` patterns (case-insensitive
        regular expressions), or a run past the timeout, is retried per the retry policy
        (tried once only with ``retry=False``); when attempts run out, ExecutorError names
        the tool and the last message. A command that ``submits`` work is never sent again
        after a timeout: the scheduler may have accepted it before the answer was lost, and
        a second send would run the work twice.
        """
        if tool not in SCHEDULER_TOOLS:
            raise ValueError(f"{tool!r} is not in SCHEDULER_TOOLS; add it there")
        attempts = self.retry.attempts if retry else 1
        patterns = [re.compile(p, re.IGNORECASE) for p in transient]
        argv = [self.paths.get(tool, tool), *args]
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                proc = subprocess.run(
                    argv,
                    input=stdin,
                    stdin=None if stdin is not None else subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                )
            except FileNotFoundError:
                raise ExecutorError(
                    f"scheduler command {argv[0]!r} was not found; install the scheduler's "
                    f"client tools or set its path in the [executor] config "
                    f'(commands = {{{tool} = "/path/to/{tool}"}})'
                ) from None
            except PermissionError:
                raise ExecutorError(
                    f"scheduler command {argv[0]!r} is not executable; fix its permissions or "
                    f"set another path for {tool!r} in the [executor] config"
                ) from None
            except subprocess.TimeoutExpired:
                if submits:
                    raise ExecutorError(
                        f"{tool} did not answer within {self.timeout:g} s and may still have "
                        "submitted the job, so it is not sent again; check the scheduler's "
                        "queue (cancel a stray job) before retrying the instance"
                    ) from None
                last = f"no answer within {self.timeout:g} s"
            else:
                result = CommandResult(proc.returncode, proc.stdout, proc.stderr)
                output = proc.stderr + "\n" + proc.stdout
                if proc.returncode == 0 or not any(p.search(output) for p in patterns):
                    return result
                last = error_line(result)
            if attempt < attempts:
                self._sleep(self.retry.delay(attempt, self._rng))
        raise ExecutorError(
            f"{tool} failed {attempts} time{'s' if attempts > 1 else ''} with a transient error "
            f"({last}); the scheduler is overloaded or down, try again later"
        )


# ---------------------------------------------------------------------------------------
# Index sets as schedulers write them: "0-9,12", "1-10:2", "2-5,9%2".


def compress_indices(indices: Iterable[int]) -> str:
    """'0-3,7,9-10' for [0, 1, 2, 3, 7, 9, 10]: the form Slurm, LSF, Torque and Flux read."""
    runs = contiguous_runs(sorted(set(indices)))
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def expand_indices(spec: str) -> list[int]:
    """Inverse of ``compress_indices``; also reads steps ('1-9:2') and drops a '%N' throttle."""
    spec = spec.split("%", 1)[0].strip()
    result: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if match is None:
            raise ValueError(f"index set {spec!r} has an unreadable part {part!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        step = int(match.group(3)) if match.group(3) else 1
        result.extend(range(first, last + 1, step))
    return result


def contiguous_runs(indices: Sequence[int]) -> list[tuple[int, ...]]:
    """Split sorted indices into maximal runs of consecutive values."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return [tuple(run) for run in runs]


def exit_code_from_wait_status(status: int) -> int:
    """A shell-style exit code (128 + signal for a killed process) from a raw wait status."""
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF
