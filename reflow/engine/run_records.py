"""Creating the run row and its task specs: the first thing every run path writes.

Run ids are ``<workflow>-<YYYYMMDD>-<hex>``; ten hex digits give 2**40 ids a day, and a
collision (checked by the store's primary key) is simply retried with a new id.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import socket
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring as quote
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.core.codec import dumps
from reflow.core.spec import JobConfig
from reflow.core.wiring import type_name
from reflow.errors import OptionError
from reflow.states import RunState
from reflow.store import NewRun, NewTaskSpec, RunIdTaken

if TYPE_CHECKING:
    from reflow.core.flow import Workflow
    from reflow.core.graph import TaskGraph
    from reflow.store import Store


def make_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """The run directory as an absolute path, created if needed."""
    if not os.fspath(run_dir).strip():  # Path("") is the current directory
        raise OptionError("run dir is empty; give the directory the run writes its logs and "
                          "state to (--run-dir DIR)")
    directory = Path(run_dir).expanduser().resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = ("is a file, not a directory" if directory.is_file()
                   else f"cannot be created ({exc.strerror})")
        raise OptionError(
            f"run dir {directory} {problem}; choose a directory you can write to"
        ) from exc
    try:  # before the run is recorded: one its driver cannot log to would stay RUNNING
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise OptionError(
            f"run dir {directory} cannot be written to ({exc.strerror}); choose a directory "
            "you can write to"
        ) from exc
    return directory


def new_run_id(workflow: str, now: datetime | None = None) -> str:
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"{workflow}-{day}-{secrets.token_hex(5)}"


def current_user() -> str:
    """The account running this process, from the password database, not ``$USER`` or
    ``$LOGNAME``: the TUI decides by it whose runs may be changed, and an environment
    variable is the user's to set."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (containers): fall back to the uid
        return str(os.getuid())


# Job configs may hold any value in ``extra``; ``default=str`` keeps them storable.
_CONFIG_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


class _ConfigTexts:
    """Encoded job configs (members only), one encoding per distinct config value.

    Tasks declared alike hold equal but separate ``JobConfig`` objects, so configs are
    matched by value: bucketed by their scalar fields, then compared.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[object, ...], list[tuple[JobConfig, str]]] = {}

    def __call__(self, config: JobConfig) -> str:
        bucket = self._known.setdefault(
            (config.cpus, config.time, config.mem, config.array_parallelism, config.backend,
             config.retries), [])
        for known, text in bucket:
            if known == config:
                return text
        text = _CONFIG_ENCODER.encode(config.as_dict())[1:-1]
        bucket.append((config, text))
        return text


def _names(names: Sequence[str]) -> str:
    """Canonical JSON of a list of task names, without a general encoder call per list."""
    return "[" + ",".join(map(quote, names)) + "]"


def task_spec_rows(graph: TaskGraph) -> list[NewTaskSpec]:
    """The stored task specs; ``config`` holds the job config plus the wiring of the task.

    Most tasks of a big workflow share one ``JobConfig``, so its text is encoded once per
    config and joined with each task's own members, written out directly (a 1,000-task chain
    records 1,000 of these per run; readers parse the JSON, so key order is free).
    """
    rows = []
    config_text = _ConfigTexts()
    type_names: dict[int, str] = {}  # by id(): return types are few and not always hashable
    for position, name in enumerate(graph.order):
        spec = graph.specs[name]
        wires = ",".join(
            f'{quote(w.param)}:{{"mode":{quote(w.mode)},"steps":{_names(w.steps)}}}'
            for w in graph.wires[name]
        )
        config = (
            f'{{{config_text(spec.config)},"after":{_names(spec.after)},'
            f'"cache":{"true" if spec.cache else "false"},'
            f'"has_verify":{"false" if spec.verify is None else "true"},"wires":{{{wires}}}}}'
        )
        returns = type_names.get(id(spec.return_type))
        if returns is None:
            returns = type_names[id(spec.return_type)] = type_name(spec.return_type)
        rows.append(NewTaskSpec(name, position, spec.is_array, spec.version, config,
                                _names(graph.dependencies(name)), returns))
    return rows


def record_run(
    store: Store,
    wf: Workflow,
    graph: TaskGraph,
    run_dir: Path,
    parameters: Mapping[str, Any],
    options: Mapping[str, Any],
) -> str:
    """Write the run and its task specs in one transaction; returns the new run id."""
    from reflow import __version__

    params_json = dumps(dict(parameters), where="run parameters")
    specs = task_spec_rows(graph)
    import_root = wf.import_root()
    if import_root is not None:  # where the driver, workers and retries import it from
        options = {**options, "import_root": import_root}
    for _ in range(20):
        now = datetime.now(UTC)
        run_id = new_run_id(wf.name, now)
        run = NewRun(
            run_id=run_id,
            workflow=wf.name,
            entrypoint=wf.entrypoint(),
            run_dir=str(run_dir),
            user=current_user(),
            host=socket.gethostname(),
            status=RunState.RUNNING,
            parameters=params_json,
            options=json.dumps(dict(options), sort_keys=True),
            reflow_version=__version__,
            created_at=now,
        )
        try:
            store.create_run(run, specs)
        except RunIdTaken:
            continue
        return run_id
    raise RuntimeError("could not find a free run id after 20 attempts")  # pragma: no cover


# Run option set by ``retry``: SPEC §3 verifies cache hits "by default on retry", so the hits
# taken by the work a retry sets going are checked as if the run had been started with verify.
RETRY_VERIFY = "retry_verify"


def verifies_cache_hits(options: Mapping[str, Any]) -> bool:
    """Whether planning under these run options checks a cache hit before reusing it."""
    return bool(options.get("verify") or options.get(RETRY_VERIFY))
