"""Re-importing a workflow from the entry point recorded with its run.

This is what lets ``reflow retry RUN_ID`` work from any directory, days later, without the
user naming the script again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from reflow.core import script_modules
from reflow.errors import ReflowError
from reflow.script_errors import users_frame

if TYPE_CHECKING:
    from reflow.core.flow import Workflow


def import_failure(pipeline: object, exc: Exception) -> ReflowError:
    """A pipeline whose own code fails while it is imported, as one line saying where.

    The user's code is at fault (a syntax error, a missing package, an exception at module
    level), so SPEC §9's rule holds: one line naming the place and the error, the traceback
    only under ``--debug`` (it stays chained to this error).
    """
    if isinstance(exc, SyntaxError):
        where, text = f"{exc.filename}:{exc.lineno}", str(exc.msg)
    else:
        frame = users_frame(traceback.extract_tb(exc.__traceback__))
        where = f"{frame.filename}:{frame.lineno}" if frame else str(pipeline)
        text = str(exc)
    return ReflowError(f"importing pipeline {pipeline} failed at {where}: "
                       f"{type(exc).__name__}: {text}; fix the pipeline and try again")


# Module name given to a pipeline script imported by path; being top-level, such a workflow
# records its file as entry point (Workflow.entrypoint), never this name.
SCRIPT_MODULE_PREFIX = "_reflow_entry_"


def load_workflow(entrypoint: str | None, name: str, import_root: str | None = None) -> Workflow:
    """Import the module or script and return its ``Workflow`` called ``name``.

    ``import_root`` (``Workflow.import_root``) is where a ``module:attribute`` entry point's
    package was found when the run was recorded; it is searched when the package is not
    importable from here, so an installed copy still takes precedence.
    """
    from reflow.core.flow import Workflow

    if not entrypoint:
        raise ReflowError(
            f"workflow '{name}' was started without a file (notebook or -c), so it cannot be "
            "re-imported; run the action from Python with the Workflow object"
        )
    if ":" in entrypoint and not Path(entrypoint).exists():
        module_name, _, attr = entrypoint.partition(":")
        try:
            module = import_module(module_name, import_root)
        except Exception as exc:
            raise import_failure(module_name, exc) from exc
        wf = getattr(module, attr, None)
    else:
        path = Path(entrypoint)
        if not path.exists():
            raise ReflowError(
                f"the pipeline file {path} of workflow '{name}' no longer exists; restore it "
                "there (the run's driver and workers import the workflow from it)"
            )
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        module_name = f"{SCRIPT_MODULE_PREFIX}{digest}"
        module = sys.modules.get(module_name)  # type: ignore[assignment]
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            script_modules.register(module, path)
            sys.path.insert(0, str(path.parent))
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise import_failure(path, exc) from exc
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            finally:
                sys.path.remove(str(path.parent))
        wf = next(
            (v for v in vars(module).values() if isinstance(v, Workflow) and v.name == name),
            None,
        )
    if not isinstance(wf, Workflow):
        raise ReflowError(f"entry point {entrypoint} has no Workflow named '{name}'")
    return wf


def import_module(module_name: str, import_root: str | None) -> ModuleType:
    """``importlib.import_module``, searching ``import_root`` too when the package itself is
    missing (so an installed copy wins).

    In a process started as ``python -m`` that module, the module is ``__main__`` already: a
    second copy would define its classes twice.
    """
    if module_name == script_modules.main_package_module():
        return sys.modules["__main__"]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing_package = exc.name is not None and (module_name + ".").startswith(exc.name + ".")
        if import_root is None or not missing_package or import_root in sys.path:
            raise
    sys.path.insert(0, import_root)
    return importlib.import_module(module_name)
