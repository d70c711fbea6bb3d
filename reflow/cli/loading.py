"""Find the ``Workflow`` in a pipeline named on the global command line.

``reflow submit pipeline.py`` must not run the script as ``__main__`` (its ``wf.cli()`` would
parse our arguments), and the run it records must name the script by path, so that a driver
or a later ``reflow retry`` can import it again. The script therefore executes under a
private module name that is removed from ``sys.modules`` afterwards: ``Workflow.entrypoint()``
then falls back to the file path, exactly as for ``python pipeline.py submit``. A module of a
package that uses relative imports (written for ``python -m``) is imported by its module name
instead, as ``python -m`` would.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from reflow.core import script_modules
from reflow.engine.entrypoints import import_failure, import_module
from reflow.errors import ReflowError, suggestion

if TYPE_CHECKING:
    from reflow.core.flow import Workflow

_MODULE_NAME = "__reflow_pipeline__"


def _exec_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ReflowError(f"pipeline {path} cannot be imported; pass a Python (.py) file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as `python pipeline.py` would: sibling imports work
    sys.modules[_MODULE_NAME] = module  # dataclasses and typing look their module up
    script_modules.register(module, path)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        package = _package_module(path)
        if package is None or "relative import" not in str(exc):
            raise import_failure(path, exc) from exc
        # A module of a package, written for ``python -m``: import it as such, and the run
        # records it as ``package.module:attribute`` with the directory it was found in.
        return _import_module(package, search=str(path.parents[package.count(".")]))
    except Exception as exc:
        raise import_failure(path, exc) from exc
    finally:
        sys.modules.pop(_MODULE_NAME, None)
    return module


def _package_module(path: Path) -> str | None:
    """``package.module`` for a file inside a package (folders with ``__init__.py``)."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) if len(parts) > 1 else None


def _import_module(name: str, search: str | None = None) -> ModuleType:
    """Import ``name``; like ``python -m``, a package in ``search`` (by default the current
    directory) is found too, though a console script's ``sys.path`` does not hold it."""
    try:
        return import_module(name, search or os.getcwd())
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ReflowError(
                f"pipeline '{name}' is neither a file nor an importable module; pass the "
                "path of the pipeline script (pipeline.py) or module:attribute"
            ) from None
        raise import_failure(name, exc) from exc
    except Exception as exc:
        raise import_failure(name, exc) from exc


def load_pipeline(target: str) -> Workflow:
    """The workflow in ``pipeline.py``, ``pipeline.py:NAME`` or ``package.module:NAME``.

    ``NAME`` is the variable or the workflow's name; it is needed only when the file holds
    several workflows.
    """
    from reflow.core.flow import Workflow

    location, _, attr = target.rpartition(":") if ":" in target else (target, "", "")
    path = Path(location).expanduser()
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise ReflowError(f"pipeline file {path} does not exist; check the path")
        module = _exec_script(path.resolve())
    else:
        module = _import_module(location)
    found: dict[str, Workflow] = {}
    for name, value in vars(module).items():
        if isinstance(value, Workflow):
            found.setdefault(name, value)
    if attr:
        for name, wf in found.items():
            if attr in (name, wf.name):
                return wf
        known = sorted({*found, *(wf.name for wf in found.values())})
        hint = suggestion(attr, known) or (f" It has: {', '.join(known)}." if known else "")
        raise ReflowError(f"pipeline {location} has no workflow '{attr}'.{hint}")
    unique = list({id(wf): wf for wf in found.values()}.values())
    if not unique:
        raise ReflowError(
            f"pipeline {location} defines no Workflow at module level; create one there "
            "(wf = Workflow('name'))"
        )
    if len(unique) > 1:
        names = ", ".join(sorted(wf.name for wf in unique))
        raise ReflowError(
            f"pipeline {location} defines several workflows ({names}); choose one with "
            f"{location}:NAME"
        )
    return unique[0]
