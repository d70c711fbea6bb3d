"""User configuration: the TOML file, the REFLOW_* variables, and where the store lives.

Precedence is built-in defaults < ``config.toml`` < ``REFLOW_*`` variables (< decorator and
call arguments, which their callers apply). The file is never written implicitly (the older
package wrote one into ``$HOME`` on import, SPEC §13.14); only ``write_example_config`` and
``ensure_config_exists`` (behind ``reflow config init``) create it.

Workers import reflow, so this module imports only cheap stdlib at the top; ``tomllib`` (which
pulls in ``datetime`` and ``re``) and ``platformdirs`` load only when actually needed.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from reflow.core.resources import parse_duration, parse_memory
from reflow.errors import SHORT_WORD_CUTOFF, ConfigError, StoreError, suggestion
from reflow.executors.base import SCHEDULER_TOOLS

__all__ = [
    "EXECUTOR_TO_MODE",
    "MODES",
    "MODE_TO_EXECUTOR",
    "Config",
    "DefaultsConfig",
    "DispatchConfig",
    "ExecutorConfig",
    "config_path",
    "ensure_config_exists",
    "load_config",
    "normalise_executor_name",
    "resolve_store_location",
    "write_example_config",
]

MODE_TO_EXECUTOR: Final[Mapping[str, str]] = {
    "sbatch": "slurm",
    "qsub-pbs": "pbs",
    "bsub": "lsf",
    "qsub-sge": "sge",
    "flux": "flux",
    "local": "local",
    "dry-run": "dry-run",
}
EXECUTOR_TO_MODE: Final[Mapping[str, str]] = {ex: mode for mode, ex in MODE_TO_EXECUTOR.items()}
MODES: Final[tuple[str, ...]] = tuple(MODE_TO_EXECUTOR)
# Other names users know the same schedulers by (the adapters detect the flavour themselves).
EXECUTOR_ALIASES: Final[Mapping[str, str]] = {"torque": "pbs", "uge": "sge"}


@dataclass(frozen=True)
class ExecutorConfig:
    """How jobs reach the scheduler: which one, with which interpreter and commands."""

    mode: str | None = None
    python: str = field(default_factory=lambda: sys.executable)
    commands: Mapping[str, str] = field(default_factory=dict)
    submit_options: tuple[str, ...] = ()
    max_submit_jobs: int | None = None
    max_workers: int | None = None
    poll_interval: float = 5.0
    max_poll_interval: float = 120.0
    caps: Mapping[str, str] = field(default_factory=dict)
    # Adapter settings (see ``reflow.executors``); None leaves the adapter's own default.
    command_timeout: float | None = None
    submit_retries: int | None = None
    max_array_size: int | None = None
    pbs_flavor: str | None = None
    sge_parallel_environment: str | None = None
    sge_memory_resource: str | None = None
    dry_run_target: str | None = None
    dry_run_log: str | None = None

    def adapter_settings(self) -> dict[str, object]:
        """What the scheduler adapters read: command paths and the settings that are set."""
        settings: dict[str, object] = {"commands": dict(self.commands)}
        for name in _ADAPTER_KEYS:
            value = getattr(self, name)
            if value is not None:
                settings[name] = value
        return settings


_ADAPTER_KEYS: Final[tuple[str, ...]] = (
    "command_timeout", "submit_retries", "max_array_size", "pbs_flavor",
    "sge_parallel_environment", "sge_memory_resource", "dry_run_target", "dry_run_log",
)  # fmt: skip


@dataclass(frozen=True)
class DispatchConfig:
    """Resources of the small driver jobs that chain a run along on a cluster."""

    cpus: int = 1
    mem: str = "1G"
    time: str = "00:10:00"
    partition: str | None = None
    queue: str | None = None
    account: str | None = None
    submit_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class DefaultsConfig:
    """Defaults for call arguments; today only where the manifest store lives."""

    store: str | None = None
    store_path: str | None = None


@dataclass(frozen=True)
class Config:
    """The effective configuration; ``source`` is the file it was read from, if any."""

    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    source: Path | None = None


# --------------------------------------------------------------------------- locations


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME", "")
    return Path(home) if home else Path.home()


def _user_dir(env: Mapping[str, str], variable: str, kind: str) -> Path:
    """reflow's config or cache directory: the XDG variable when set, else the OS convention.

    platformdirs already follows XDG on Linux, but it reads ``os.environ`` only and costs an
    import, so the Linux/Unix case is computed here and platformdirs serves macOS/Windows.
    """
    value = env.get(variable, "").strip()
    if value:
        return Path(value) / "reflow"
    if sys.platform in ("darwin", "win32"):
        import platformdirs

        if kind == "config":
            return platformdirs.user_config_path("reflow", appauthor=False)
        return platformdirs.user_cache_path("reflow", appauthor=False)
    return _home(env) / f".{kind}" / "reflow"


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where the user's config file lives (it may not exist; nothing is created)."""
    return _user_dir(env, "XDG_CONFIG_HOME", "config") / "config.toml"


def _default_store_file(env: Mapping[str, str]) -> Path:
    return _user_dir(env, "XDG_CACHE_HOME", "cache") / "manifest.db"


def default_store_missing(url: str, env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``url`` is the default store and it has not been created yet (no run ever)."""
    path = _default_store_file(env)
    return url == _store_url(path, env) and not path.exists()


# --------------------------------------------------------------------------- value checks


class _Invalid(Exception):
    """A value failed its check; ``reason`` completes "<where> = <value> ..." in a message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mode(value: object) -> str:
    if isinstance(value, str):
        name = value.strip().lower()
        name = EXECUTOR_ALIASES.get(name, name)
        if name in MODE_TO_EXECUTOR:
            return name
        if name in EXECUTOR_TO_MODE:
            return EXECUTOR_TO_MODE[name]
    hint = suggestion(str(value).strip().lower(), [*MODES, *EXECUTOR_TO_MODE], SHORT_WORD_CUTOFF)
    raise _Invalid(
        f"is not a known mode; use one of: {', '.join(MODES)} "
        f"(or the executor names slurm, pbs, lsf, sge).{hint}"
    )


def _choice(*allowed: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in allowed:
            return value.strip().lower()
        raise _Invalid(f"must be one of {', '.join(repr(a) for a in allowed)}")

    return check


def _scheduler(value: object) -> str:
    """A cluster scheduler for the dry run to imitate (any ``mode`` spelling of one)."""
    name = _mode(value)
    if name in ("local", "dry-run"):
        raise _Invalid("must name a cluster scheduler: sbatch, qsub-pbs, bsub, qsub-sge or flux")
    return name


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid('must be a non-empty string, e.g. "value"')
    return value


def _text_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Invalid('must be a list of strings, e.g. ["--qos=normal"]')
    return tuple(value)


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("must be a whole number of at least 1, e.g. 500")
    return value


def _positive_seconds(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _Invalid("must be a positive number of seconds, e.g. 5.0")
    return float(value)


def _path_table(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid('must be a table of command paths, e.g. {sbatch = "/opt/slurm/bin/sbatch"}')
    for name, path in value.items():
        if name not in SCHEDULER_TOOLS:
            raise _Invalid(
                f"names {name!r}, which is not a scheduler command reflow runs; use one of: "
                + ", ".join(sorted(SCHEDULER_TOOLS)) + "." + suggestion(name, SCHEDULER_TOOLS))
        if not isinstance(path, str) or not path.strip():
            raise _Invalid(f'entry {name} must be a path string, e.g. "/opt/slurm/bin/{name}"')
    return dict(value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parsed_by(parse: Callable[[str], int], reason: str) -> Callable[[object], str]:
    """A check for a resource text that ``parse`` (the adapters' own parser) must accept."""
    def check(value: object) -> str:
        try:
            parse(str(value) if _whole(value) else _text(value))
        except (ValueError, _Invalid):
            raise _Invalid(reason) from None
        return str(value)

    return check


_memory = _parsed_by(parse_memory, 'must be a memory size with a unit, e.g. "16G" or "500M"')
_duration = _parsed_by(parse_duration, 'must be a time as HH:MM:SS or D-HH:MM:SS, e.g. "02:00:00"')


# What a cap may limit, each checked as the task option it caps (checked here, not mid-run).
_CAPS: Final[dict[str, Callable[[object], object]]] = {
    "cpus": _positive_int, "mem": _memory, "time": _duration,
}


def _cap_table(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid('must be a table of resource limits, e.g. {mem = "256G"}')
    caps: dict[str, str] = {}
    for name, limit in value.items():
        check = _CAPS.get(name)
        if check is None:
            raise _Invalid(f"has an unknown resource {name}; caps limit "
                           f"{', '.join(_CAPS)}, e.g. {{mem = \"256G\"}}")
        try:
            caps[name] = str(check(limit))
        except _Invalid as exc:
            raise _Invalid(f"entry {name} {exc.reason}") from None
    return caps


@dataclass(frozen=True)
class _Key:
    """One setting: how to check it, and how the example file explains and shows it."""

    name: str
    check: Callable[[object], object]
    help: str
    example: str
    table_entries: tuple[str, ...] = ()  # set for keys written as their own [section.key]


_SCHEMA: Final[Mapping[str, tuple[_Key, ...]]] = {
    "executor": (
        _Key(
            "mode",
            _mode,
            "Scheduler to use: " + ", ".join(MODES) + " (unset: detect from PATH).",
            '"sbatch"',
        ),
        _Key(
            "python",
            _text,
            "Python interpreter for workers and driver jobs (default: the one running reflow).",
            '"/usr/bin/python3"',
        ),
        _Key(
            "submit_options",
            _text_list,
            "Extra options added to every job submission, as a list of arguments.",
            '["--qos=normal"]',
        ),
        _Key(
            "max_submit_jobs",
            _positive_int,
            "Most array elements one driver step submits; the rest follow later (default: all).",
            "1000",
        ),
        _Key(
            "max_workers",
            _positive_int,
            "Processes the local executor runs at once on this machine (default: one per CPU).",
            "4",
        ),
        _Key(
            "poll_interval",
            _positive_seconds,
            "Seconds between scheduler status queries at first; polling backs off from here.",
            "5.0",
        ),
        _Key(
            "max_poll_interval",
            _positive_seconds,
            "Longest wait in seconds between status queries once polling has backed off.",
            "120.0",
        ),
        _Key(
            "commands",
            _path_table,
            "Full paths of scheduler commands that are not on PATH, by command name.",
            "",
            ('sbatch = "/opt/slurm/bin/sbatch"', 'sacct = "/opt/slurm/bin/sacct"'),
        ),
        _Key(
            "command_timeout",
            _positive_seconds,
            "Seconds before a scheduler command (sbatch, sacct, ...) counts as hung.",
            "60.0",
        ),
        _Key(
            "submit_retries",
            _positive_int,
            "Attempts for a scheduler command that fails transiently (with jittered backoff).",
            "5",
        ),
        _Key(
            "max_array_size",
            _positive_int,
            "Largest index one array job may use (default: Slurm asks scontrol; LSF 1000).",
            "1001",
        ),
        _Key("pbs_flavor", _choice("pro", "torque"),
             "PBS variant: pro or torque (default: detected from qstat --version).", '"pro"'),
        _Key("sge_parallel_environment", _text,
             "Grid Engine parallel environment that carries cpus (default smp).", '"smp"'),
        _Key("sge_memory_resource", _text,
             "Grid Engine resource that carries mem (default h_vmem).", '"h_vmem"'),
        _Key("dry_run_target", _scheduler,
             "Scheduler whose commands the dry-run executor prints (default sbatch).", '"sbatch"'),
        _Key("dry_run_log", _text,
             "File the dry-run executor appends its commands to.", '"~/reflow-dry-run.log"'),
        _Key(
            "caps",
            _cap_table,
            "Upper limits for resources that automatic retries scale up (escalate=...).",
            "",
            ('mem = "256G"', 'time = "48:00:00"'),
        ),
    ),
    "dispatch": (
        _Key("cpus", _positive_int, "CPUs for each driver job.", "1"),
        _Key("mem", _memory, "Memory for each driver job, in the scheduler's units.", '"1G"'),
        _Key("time", _duration, "Wall-clock limit for each driver job, as HH:MM:SS.",
             '"00:10:00"'),
        _Key("partition", _text, "Partition for driver jobs (same as queue).", '"short"'),
        _Key("queue", _text, "Queue for driver jobs (same as partition).", '"short"'),
        _Key("account", _text, "Account charged for driver jobs.", '"myproject"'),
        _Key(
            "submit_options",
            _text_list,
            "Extra options for driver job submissions only.",
            '["--qos=normal"]',
        ),
    ),
    "defaults": (
        _Key(
            "store",
            _text,
            "Manifest store as a SQLAlchemy URL (wins over store_path).",
            '"postgresql+psycopg://reflow@db.example.org/reflow"',
        ),
        _Key(
            "store_path",
            _text,
            "Manifest store as a SQLite file path (default: $XDG_CACHE_HOME/reflow/manifest.db).",
            '"~/.cache/reflow/manifest.db"',
        ),
    ),
}


def _number_text(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Convert a variable's text if it parses, else pass it on so the key's check explains."""

    def convert(raw: str) -> object:
        try:
            return parse(raw)
        except ValueError:
            return raw

    return convert


def _shell_words(raw: str) -> object:
    import shlex

    try:
        return shlex.split(raw)
    except ValueError as exc:
        raise _Invalid(f"is not valid shell syntax ({exc}); balance the quotes") from None


_ENV: Final[Mapping[str, tuple[str, str, Callable[[str], object]]]] = {
    "REFLOW_MODE": ("executor", "mode", str),
    "REFLOW_PYTHON": ("executor", "python", str),
    "REFLOW_MAX_SUBMIT_JOBS": ("executor", "max_submit_jobs", _number_text(int)),
    "REFLOW_POLL_INTERVAL": ("executor", "poll_interval", _number_text(float)),
    "REFLOW_SUBMIT_OPTIONS": ("executor", "submit_options", _shell_words),
    "REFLOW_PARTITION": ("dispatch", "partition", str),
    "REFLOW_ACCOUNT": ("dispatch", "account", str),
    "REFLOW_STORE": ("defaults", "store", str),
    "REFLOW_STORE_PATH": ("defaults", "store_path", str),
}


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


# --------------------------------------------------------------------------- loading

# (section, key) -> (checked value, where it came from, for messages)
_Layer = dict[tuple[str, str], tuple[object, str]]
_SYNONYMS: Final = {("dispatch", "partition"), ("dispatch", "queue")}


def _read_toml(path: Path) -> dict[str, object] | None:
    """The parsed file, or None when it does not exist (a missing file means defaults)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"config {path}: is a directory; the configuration is a TOML file "
                          "(`reflow config init` writes one once it is moved away)") from None
    except OSError as exc:
        raise ConfigError(
            f"config {path}: cannot be read ({exc.strerror}); fix its permissions or remove it"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config {path}: is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = str(exc).replace(
            "at end of document", f"at end of document, line {text.count(chr(10)) + 1}"
        )
        raise ConfigError(
            f"config {path}: invalid TOML: {where}; fix it, or regenerate the file with "
            "`reflow config init --force`"
        ) from None


def _file_layer(document: Mapping[str, object], path: Path) -> _Layer:
    prefix = f"config {path}:"
    layer: _Layer = {}
    for section, body in document.items():
        if section not in _SCHEMA:
            owner = next(
                (s for s, keys in _SCHEMA.items() if any(k.name == section for k in keys)), None
            )
            if owner is not None and not isinstance(body, dict):
                raise ConfigError(
                    f"{prefix} {section} is outside any section; move it under [{owner}]"
                )
            raise ConfigError(
                f"{prefix} [{section}] is not a known section; use one of: "
                + ", ".join(f"[{s}]" for s in _SCHEMA) + "."
                + suggestion(section, _SCHEMA)
            )
        if not isinstance(body, dict):
            raise ConfigError(
                f"{prefix} {section} = {_show(body)} must be a section; write [{section}]"
            )
        keys = {key.name: key for key in _SCHEMA[section]}
        for name, value in body.items():
            key = keys.get(name)
            if key is None:
                raise ConfigError(
                    f"{prefix} [{section}] {name} is not a known key; remove it or use one of: "
                    + ", ".join(keys) + "."
                    + suggestion(name, keys)
                )
            try:
                layer[(section, name)] = (key.check(value), f"{prefix} [{section}] {name}")
            except _Invalid as exc:
                raise ConfigError(
                    f"{prefix} [{section}] {name} = {_show(value)} {exc.reason}"
                ) from None
    return layer


def _env_layer(env: Mapping[str, str]) -> _Layer:
    layer: _Layer = {}
    for variable, (section, name, convert) in _ENV.items():
        raw = env.get(variable, "")
        if not raw.strip():  # an empty variable is how shell scripts unset things
            continue
        key = next(k for k in _SCHEMA[section] if k.name == name)
        try:
            layer[(section, name)] = (key.check(convert(raw)), variable)
        except _Invalid as exc:
            raise ConfigError(f"{variable}={raw!r} {exc.reason}") from None
    return layer


def _merge(layers: list[_Layer]) -> _Layer:
    """Apply layers in rising precedence; partition/queue count as one setting across layers."""
    merged: _Layer = {}
    for layer in layers:
        if _SYNONYMS & layer.keys():
            for synonym in _SYNONYMS:
                merged.pop(synonym, None)
        merged.update(layer)
    partition, queue = merged.get(("dispatch", "partition")), merged.get(("dispatch", "queue"))
    if partition and queue and partition[0] != queue[0]:
        raise ConfigError(
            f"{partition[1]} = {partition[0]!r} conflicts with {queue[1]} = {queue[0]!r}; "
            "partition and queue are synonyms, set only one"
        )
    return merged


def _check_polling(executor: ExecutorConfig, merged: _Layer) -> None:
    if executor.poll_interval <= executor.max_poll_interval:
        return
    poll = merged.get(("executor", "poll_interval"), (None, "default poll_interval"))[1]
    most = merged.get(("executor", "max_poll_interval"), (None, "default max_poll_interval"))[1]
    raise ConfigError(
        f"{poll} = {executor.poll_interval} exceeds {most} = {executor.max_poll_interval}; "
        "raise max_poll_interval or lower poll_interval"
    )


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] = os.environ
) -> Config:
    """Read the effective configuration: defaults < file (if it exists) < REFLOW_* variables.

    A missing file simply means defaults, so a laptop with no configuration works; anything
    present but wrong is a one-line ``ConfigError`` naming the file or variable and the fix.
    """
    file = Path(path) if path is not None else config_path(env)
    document = _read_toml(file)
    layers = [_file_layer(document, file)] if document is not None else []
    merged = _merge([*layers, _env_layer(env)])
    # Any: each value already passed its key's check, which is the real type guarantee.
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SCHEMA}
    for (section, name), (value, _) in merged.items():
        sections[section][name] = value
    executor = replace(ExecutorConfig(), **sections["executor"])
    _check_polling(executor, merged)
    return Config(
        executor=executor,
        dispatch=replace(DispatchConfig(), **sections["dispatch"]),
        defaults=replace(DefaultsConfig(), **sections["defaults"]),
        source=file if document is not None else None,
    )


def normalise_executor_name(name: str) -> str:
    """Executor name (slurm, pbs, lsf, sge, flux, local, dry-run) for an executor or mode name."""
    try:
        return MODE_TO_EXECUTOR[_mode(name)]
    except _Invalid:
        names = ", ".join(EXECUTOR_TO_MODE)
        hint = suggestion(str(name).strip().lower(), [*EXECUTOR_TO_MODE, *MODES],
                          SHORT_WORD_CUTOFF)
        raise ConfigError(
            f"unknown executor {name!r}; use one of: {names} "
            f"(or the modes {', '.join(MODES)}).{hint}"
        ) from None


# --------------------------------------------------------------------------- example file


def _example_text(settings: Mapping[tuple[str, str], str] | None = None) -> str:
    """The example file; ``settings`` ((section, key) -> value) are written uncommented."""
    chosen = dict(settings or {})
    lines = [
        "# reflow configuration, written by `reflow config init`.",
        "# Every setting is commented out and shows an example; delete the leading '#' to use it.",
        "# Precedence: built-in defaults < this file < REFLOW_* variables < call arguments.",
    ]
    variables = {(section, name): var for var, (section, name, _) in _ENV.items()}
    for section, keys in _SCHEMA.items():
        lines += ["", f"[{section}]"]
        for key in keys:
            if key.table_entries:
                continue
            variable = variables.get((section, key.name))
            lines.append(f"# {key.help}" + (f" Env: {variable}." if variable else ""))
            value = chosen.get((section, key.name))
            lines.append(f"#{key.name} = {key.example}" if value is None
                         else f"{key.name} = {json.dumps(value)}")
        for key in keys:
            if key.table_entries:
                lines += ["", f"# {key.help}", f"[{section}.{key.name}]"]
                lines += [f"#{entry}" for entry in key.table_entries]
    return "\n".join(lines) + "\n"


def write_example_config(
    path: str | os.PathLike[str] | None = None, *, overwrite: bool = False,
    store: str | None = None, store_path: str | None = None,
) -> Path:
    """Write the commented example config (every key commented out, except the ``[defaults]``
    store settings given here) and return its path."""
    target = Path(path) if path is not None else config_path()
    if store_path is not None:  # the file is read from anywhere: keep no relative path
        store_path = str(Path(store_path).expanduser().resolve())
    settings = {("defaults", "store"): store, ("defaults", "store_path"): store_path}
    text = _example_text({k: v for k, v in settings.items() if v is not None})
    if target.is_dir():
        raise ConfigError(
            f"config {target}: is a directory; pass the path of a file, e.g. "
            f"{target / 'config.toml'}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, target)  # never leave a half-written config behind
            return target
        try:
            with target.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise ConfigError(
                f"config {target}: already exists; edit it, or replace it with the example: "
                "`reflow config init --force` (overwrite=True in Python)"
            ) from None
    except OSError as exc:
        raise ConfigError(
            f"config {target}: cannot be written ({exc.strerror or exc}); "
            "check the directory's permissions or pass another path"
        ) from None
    return target


def ensure_config_exists(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the config path, writing the example there first if no file exists yet."""
    target = Path(path) if path is not None else config_path()
    if not target.exists():
        try:
            write_example_config(target)
        except ConfigError:
            if not target.exists():
                raise
            # another process wrote it between our check and our write: just as good
    return target


# --------------------------------------------------------------------------- store location


def _store_url(location: str | os.PathLike[str], env: Mapping[str, str]) -> str:
    text = os.fspath(location).strip()
    if "://" in text:
        return text
    if text == "~" or text.startswith("~/"):  # expand against env's HOME, like config_path
        text = str(_home(env)) + text[1:]
    return "sqlite:///" + os.path.abspath(os.path.expanduser(text))


def resolve_store_location(
    explicit: str | os.PathLike[str] | None = None,
    *,
    store_path: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    env: Mapping[str, str] = os.environ,
) -> str:
    """SQLAlchemy URL of the manifest store, by SPEC §4's first-match order.

    ``explicit`` is ``store=``/``--store``, ``store_path`` is ``--store-path``. A string with
    "://" is a URL, anything else a SQLite file path (made absolute, so a worker or driver
    started in another directory finds the same store). The config file is read only if no
    earlier source decides, so a broken config never blocks an explicit ``--store``.
    """
    for given, name in ((explicit, "store= / --store"), (store_path, "--store-path")):
        if given is not None and not os.fspath(given).strip():
            # An empty value is a script's unset variable, not a wish for the default store.
            raise StoreError(f"{name} is empty; give a SQLAlchemy URL or a SQLite file path, "
                             "or leave the option out for the default store")
    for candidate in (explicit, store_path, env.get("REFLOW_STORE"), env.get("REFLOW_STORE_PATH")):
        if candidate is not None and os.fspath(candidate).strip():
            return _store_url(candidate, env)
    defaults = (config if config is not None else load_config(env=env)).defaults
    for configured in (defaults.store, defaults.store_path):
        if configured:
            return _store_url(configured, env)
    return _store_url(_default_store_file(env), env)
