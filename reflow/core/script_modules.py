"""One module name for a pipeline script in every process that loads it.

A script is ``__main__`` when the user runs ``python pipeline.py submit``, a private module in
``reflow submit pipeline.py``, and another private module in the driver and the workers that
import it by path. An Enum or dataclass defined in the script would then be stored under a
different ``module:QualName`` by each, so values could not be decoded by the next process and
would hash differently on each path. Every one of those is named here by the script's file
stem (``pipeline:Color``), and a stem is looked up among the loaded scripts (and ``__main__``)
before it is imported. A module run as ``python -m package.pipeline`` is imported by that name
elsewhere, so its classes are stored under it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

_by_stem: dict[str, ModuleType] = {}
_stem_of: dict[str, str] = {}  # module __name__ -> stem


def register(module: ModuleType, path: Path) -> None:
    """Record that ``module`` was executed from the pipeline script at ``path``."""
    _by_stem[path.stem] = module
    _stem_of[module.__name__] = path.stem


def stored_name(module_name: str) -> str:
    """The module name to store for a class defined in ``module_name``."""
    stem = _stem_of.get(module_name)
    if stem is not None:
        return stem
    if module_name == "__main__":
        package_module = main_package_module()
        if package_module is not None:  # the name the driver and workers import it by
            return package_module
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            return Path(main_file).stem
    return module_name


def main_package_module() -> str | None:
    """The module name of ``__main__`` when it was started as ``python -m package.module``.

    ``package.__main__`` is left out: importing it again would run the command line.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    if not name or "." not in name or name.endswith(".__main__"):
        return None
    return str(name)


def resolve(module_name: str, qualname: str) -> object:
    """The object ``module_name:qualname`` names; raises ImportError or AttributeError."""
    for module in _candidates(module_name):
        try:
            return _attribute(module, qualname)
        except AttributeError:
            continue
    return _attribute(importlib.import_module(module_name), qualname)


def _candidates(module_name: str) -> list[ModuleType]:
    """Loaded scripts of that stem: one registered by a loader, and ``__main__`` (also when
    it is the module of that name, started with ``python -m``)."""
    script = _by_stem.get(module_name)
    found = [script] if script is not None else []
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main is not None and main_file and module_name in (Path(main_file).stem,
                                                          main_package_module()):
        found.append(main)
    return found


def _attribute(module: object, qualname: str) -> object:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
