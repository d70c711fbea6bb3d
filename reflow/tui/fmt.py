"""Short, stable text forms for times, ages and instance labels shown by the TUI.

Times are rendered in the time zone of the app's clock, so a test that pins the clock to UTC
gets the same screen on every machine.
"""

from __future__ import annotations

from datetime import datetime, tzinfo


def label(task: str, index: int | None) -> str:
    return task if index is None else f"{task}[{index}]"


def clock_time(at: datetime | None, tz: tzinfo | None) -> str:
    return "-" if at is None else at.astimezone(tz).strftime("%H:%M:%S")


def stamp(at: datetime | None, tz: tzinfo | None) -> str:
    return "-" if at is None else at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its cut marked with an ellipsis."""
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def count(n: int) -> str:
    """A count in at most 5 characters: ``9999``, ``19.9k``, ``250k``, ``1.2M``.

    Rounded down, so an array one element short of 20,000 never reads as done.
    """
    if n < 10_000:
        return str(n)
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            whole = n // size
            tenths = n * 10 // size % 10
            return f"{whole}{unit}" if whole >= 100 or not tenths else f"{whole}.{tenths}{unit}"
    return str(n)


def age(then: datetime, now: datetime) -> str:
    """Coarse age such as ``45s``, ``12m``, ``3h`` or ``2d``."""
    secs = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    secs = (end - start).total_seconds()
    return f"{secs:.1f}s" if secs < 120 else f"{secs / 60:.1f}m"
