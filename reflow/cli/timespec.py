"""``--since``/``--until`` values: ISO dates and times, or ages such as ``90m``, ``12h``, ``7d``.

The store keeps timezone-aware UTC times; a date or time typed without a zone means the
user's local time, as on every other command line they use.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import typer

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, flag: str, *, end_of_day: bool, now: datetime | None = None) -> datetime:
    """An aware UTC datetime for a ``--since``/``--until`` value.

    ``end_of_day`` makes a bare date cover that whole day (``--until 2024-05-01`` includes
    runs created on May 1st).
    """
    try:
        return _parse(text, now or datetime.now(UTC), end_of_day=end_of_day)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date or an age; use 2024-05-01, 2024-05-01T12:00 or 12h / 7d",
            param_hint=flag,
        ) from None
    except OverflowError:
        raise typer.BadParameter(
            f"{text!r} is out of range; use a date between 0002-01-01 and 9998-12-31, or a "
            "shorter age",
            param_hint=flag,
        ) from None


def _parse(text: str, now: datetime, *, end_of_day: bool) -> datetime:
    """ValueError for text that is no date or age; OverflowError for one out of range."""
    age = _AGE.match(text)
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
    else:
        moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time())
    try:
        return moment.astimezone(UTC)
    except ValueError as exc:  # "year 0 is out of range" at the ends of the calendar
        raise OverflowError(str(exc)) from exc
