"""Verification of stored outputs before they are trusted (SPEC §3, "Verification").

A task's own ``verify(output)`` wins; otherwise ``Path`` outputs are checked against the size
and mtime recorded when they were produced. Each problem is returned as a (check, reason)
pair so that it can be stored as a verify-failure row and shown in the TUI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reflow.core import script_modules
from reflow.core.codec import loads, storable_text
from reflow.core.hashing import check_fingerprints
from reflow.core.spec import TaskSpec


@dataclass(frozen=True)
class VerifyProblem:
    check: str  # a file path, or the verify callable's name (``callable_name``)
    kind: str  # missing | changed | callable
    reason: str

    def __post_init__(self) -> None:
        # Stored as a verify-failure row: a file name's undecodable bytes must be escaped.
        object.__setattr__(self, "check", storable_text(self.check))
        object.__setattr__(self, "reason", storable_text(self.reason))


def callable_name(func: Any) -> str:
    """``module:qualname`` of a verify callable, with its line for a lambda: what a user
    needs to find the check that failed (SPEC §3: which file or which callable)."""
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    module = getattr(func, "__module__", None)
    text = f"{script_modules.stored_name(module)}:{name}" if module else name
    code = getattr(func, "__code__", None)
    if name.endswith("<lambda>") and code is not None:
        text += f" (line {code.co_firstlineno})"
    return str(text)


def verify_output(
    spec: TaskSpec, output_json: str | None, fingerprints_json: str | None
) -> list[VerifyProblem]:
    """Problems found with one stored output; empty when it can still be trusted."""
    if spec.verify is not None:
        value: Any = loads(output_json) if output_json is not None else None
        try:
            ok = bool(spec.verify(value))
        except Exception as exc:  # a crashing check is a failed check, reported with its error
            return [VerifyProblem(callable_name(spec.verify), "callable",
                                  f"raised {type(exc).__name__}: {exc}")]
        return [] if ok else [VerifyProblem(callable_name(spec.verify), "callable",
                                            "returned False")]
    if not fingerprints_json:
        return []
    fps = json.loads(fingerprints_json)
    return [VerifyProblem(p.path, p.problem, p.detail) for p in check_fingerprints(fps)]
