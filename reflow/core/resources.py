"""What a task may ask of a scheduler, in the words users write: resource strings, scheduler
options, retry states and escalation factors.

The decorator checks them where a task is defined (``spec.checked_job_config``) and the
executors build jobs from them (``executors.base.JobResources``), so both read one set of
rules: a value the decorator accepts is one every adapter can submit, and a mistake is
reported at the definition rather than by a driver at the first submission or retry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

# How a failed job ended, in the words recorded as an instance's ``scheduler_state`` and
# matched by ``retry_on``: the normalised states, Slurm's more specific words, the local
# executor's KILLED (ended by a signal), REFUSED (the scheduler would not take the job) and
# UNKNOWN (the scheduler lost it). Other schedulers' own words ("EXIT", "F") are recorded as
# the normalised state, so one ``retry_on`` works everywhere.
FAILURE_STATES = frozenset({
    "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "KILLED", "REFUSED", "UNKNOWN",
})


# ---------------------------------------------------------------------------------------
# Resource strings. Users write Slurm-style values everywhere; each adapter renders them in
# its scheduler's own units, so they are parsed once into MiB and seconds.

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}
_DURATION = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_memory(text: str) -> int:
    """Memory in MiB from '4G', '500M', '1.5G', '16GB' or a bare number of MiB (Slurm's rule)."""
    match = _MEMORY.match(str(text))
    if match is None:
        raise ValueError(
            f"memory {text!r} is not understood; write a number with a unit, e.g. '4G' or '500M'"
        )
    mib = math.ceil(float(match.group(1)) * _MEMORY_UNITS[match.group(2).upper()])
    if mib <= 0:
        raise ValueError(f"memory {text!r} must be more than zero; e.g. '4G'")
    return mib


def format_memory(mib: int) -> str:
    """'16G' when whole gibibytes, else '1500M': understood by every scheduler that takes units."""
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def parse_duration(text: str) -> int:
    """Seconds from Slurm's time forms: 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM[:SS]'."""
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise ValueError(
            f"time {text!r} is not understood; write 'HH:MM:SS' or 'D-HH:MM:SS', e.g. '02:00:00'"
        )
    days, first, second, third = match.groups()
    parts = [int(p) for p in (first, second, third) if p is not None]
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = [*parts, 0, 0][:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(parts) == 1:  # MM
        total = parts[0] * 60
    elif len(parts) == 2:  # MM:SS
        total = parts[0] * 60 + parts[1]
    else:  # HH:MM:SS
        total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    if total <= 0:
        raise ValueError(f"time {text!r} must be more than zero; e.g. '00:30:00'")
    return total


def format_duration(seconds: int) -> str:
    """'HH:MM:SS' (hours may exceed 24): the form PBS, SGE and Slurm all accept."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


# Fields of their own in ``JobResources``, not scheduler pass-through options.
RESERVED_OPTIONS = frozenset({"cpus", "mem", "time", "partition", "queue", "account"})
SCALABLE = ("cpus", "mem", "time")
_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def check_option(key: str, value: object) -> None:
    """A scheduler pass-through option (``qos="long"``) that every adapter can render."""
    if not _OPTION_NAME.fullmatch(key):
        raise ValueError(
            f"scheduler option {key!r} is not a valid option name; use letters, digits, "
            "'_' or '-', e.g. qos='long'"
        )
    if key in RESERVED_OPTIONS:
        raise ValueError(
            f"scheduler option {key!r} must be given as its own field, not in options; "
            "build resources with JobResources.from_options(...)"
        )
    if not isinstance(value, str | int | bool):
        raise ValueError(
            f"scheduler option {key}={value!r} must be a str, int or bool; "
            f"pass e.g. {key}={str(value)!r}"
        )


def chosen_partition(partition: object, queue: object) -> object:
    """``partition`` and ``queue`` are synonyms: the one given, refused when they disagree."""
    if partition is not None and queue is not None and partition != queue:
        raise ValueError(
            f"partition={partition!r} and queue={queue!r} disagree; they are synonyms, "
            "give only one of them"
        )
    return partition if partition is not None else queue


def check_factors(factors: Mapping[str, object],
                  caps: Mapping[str, object] | None = None) -> None:
    """``escalate`` factors (and configured caps): scalable resources, positive numbers."""
    for key in (*factors, *(caps or {})):
        if key not in SCALABLE:
            raise ValueError(
                f"cannot scale resource {key!r}; scalable resources are cpus, mem and time"
            )
    for key, factor in factors.items():
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
            raise ValueError(f"scale factor for {key} must be a positive number, not {factor!r}")


def retry_matches(retry_on: Sequence[str | int], state: str | None, code: int | None) -> bool:
    """Whether a failed attempt's scheduler state or exit code is one ``retry_on`` names (an
    empty ``retry_on``: any failure)."""
    if not retry_on:
        return True
    for item in retry_on:
        if isinstance(item, int) and code is not None and item == code:
            return True
        if isinstance(item, str) and state is not None and item.upper() == state.upper():
            return True
    return False
