"""Configuration: precedence, one-line errors, the example file, XDG paths, store location."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from reflow.config import (
    MODE_TO_EXECUTOR,
    Config,
    DefaultsConfig,
    DispatchConfig,
    ExecutorConfig,
    config_path,
    ensure_config_exists,
    load_config,
    normalise_executor_name,
    resolve_store_location,
    write_example_config,
)
from reflow.errors import ConfigError, StoreError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, text: str, env: dict[str, str] | None = None) -> str:
    """Load a file that must be rejected and return its (checked one-line) message."""
    write(path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- precedence


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "absent.toml", env={})
    assert config == Config()
    assert config.source is None
    assert config.executor.python == sys.executable
    assert config.executor.poll_interval == 5.0
    assert config.executor.max_poll_interval == 120.0
    assert (config.dispatch.cpus, config.dispatch.mem, config.dispatch.time) == (
        1,
        "1G",
        "00:10:00",
    )


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        """
[executor]
mode = "sbatch"
python = "/opt/py/bin/python"
submit_options = ["--qos=high", "--exclusive"]
max_submit_jobs = 500
poll_interval = 2
max_poll_interval = 60.5
commands = { sbatch = "/opt/slurm/bin/sbatch" }

[executor.caps]
mem = "256G"
cpus = 64

[dispatch]
cpus = 2
mem = "2G"
time = "00:20:00"
partition = "short"
account = "proj"
submit_options = ["--qos=low"]

[defaults]
store_path = "/data/manifest.db"
""",
    )
    config = load_config(path, env={})
    assert config.source == path
    assert config.executor == ExecutorConfig(
        mode="sbatch",
        python="/opt/py/bin/python",
        commands={"sbatch": "/opt/slurm/bin/sbatch"},
        submit_options=("--qos=high", "--exclusive"),
        max_submit_jobs=500,
        poll_interval=2.0,
        max_poll_interval=60.5,
        caps={"mem": "256G", "cpus": "64"},
    )
    assert config.dispatch == DispatchConfig(
        cpus=2,
        mem="2G",
        time="00:20:00",
        partition="short",
        account="proj",
        submit_options=("--qos=low",),
    )
    assert config.defaults == DefaultsConfig(store_path="/data/manifest.db")


def test_local_executor_workers_come_from_the_config(tmp_path: Path) -> None:
    from reflow.engine.driver_host import make_executor

    path = write(tmp_path / "config.toml", "[executor]\nmax_workers = 3\n")
    config = load_config(path, env={})
    assert config.executor.max_workers == 3
    assert make_executor("local", config).max_workers == 3  # type: ignore[attr-defined]
    assert make_executor("local", config, 2).max_workers == 2  # type: ignore[attr-defined]
    message = config_error(tmp_path / "bad.toml", "[executor]\nmax_workers = 0\n")
    assert "max_workers" in message


def test_env_beats_file_beats_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        '[executor]\npoll_interval = 10.0\nmode = "local"\n[dispatch]\naccount = "file"\n',
    )
    config = load_config(path, env={"REFLOW_POLL_INTERVAL": "20", "REFLOW_MODE": "dry-run"})
    assert config.executor.poll_interval == 20.0  # env over file
    assert config.executor.mode == "dry-run"
    assert config.dispatch.account == "file"  # file over default
    assert config.executor.max_poll_interval == 120.0  # default


@pytest.mark.parametrize(
    ("variable", "raw", "section", "key", "expected"),
    [
        ("REFLOW_MODE", "bsub", "executor", "mode", "bsub"),
        ("REFLOW_PYTHON", "/usr/bin/python3", "executor", "python", "/usr/bin/python3"),
        ("REFLOW_MAX_SUBMIT_JOBS", "250", "executor", "max_submit_jobs", 250),
        ("REFLOW_POLL_INTERVAL", "0.5", "executor", "poll_interval", 0.5),
        (
            "REFLOW_SUBMIT_OPTIONS",
            "--qos=high --comment 'two words'",
            "executor",
            "submit_options",
            ("--qos=high", "--comment", "two words"),
        ),
        ("REFLOW_PARTITION", "gpu", "dispatch", "partition", "gpu"),
        ("REFLOW_ACCOUNT", "abc123", "dispatch", "account", "abc123"),
        ("REFLOW_STORE", "sqlite:////x.db", "defaults", "store", "sqlite:////x.db"),
        ("REFLOW_STORE_PATH", "/x.db", "defaults", "store_path", "/x.db"),
    ],
)
def test_each_variable_sets_its_key(
    tmp_path: Path, variable: str, raw: str, section: str, key: str, expected: object
) -> None:
    config = load_config(tmp_path / "absent.toml", env={variable: raw})
    assert getattr(getattr(config, section), key) == expected


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", '[executor]\nmode = "local"\n')
    config = load_config(path, env={"REFLOW_MODE": "", "REFLOW_MAX_SUBMIT_JOBS": "  "})
    assert config.executor.mode == "local"
    assert config.executor.max_submit_jobs is None


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ("slurm", "sbatch"),
        ("PBS", "qsub-pbs"),
        ("lsf", "bsub"),
        ("sge", "qsub-sge"),
        ("flux", "flux"),
    ],
)
def test_executor_names_are_accepted_as_modes(tmp_path: Path, given: str, mode: str) -> None:
    path = write(tmp_path / "config.toml", f'[executor]\nmode = "{given}"\n')
    assert load_config(path, env={}).executor.mode == mode
    assert load_config(tmp_path / "absent.toml", env={"REFLOW_MODE": given}).executor.mode == mode


def test_partition_from_env_replaces_queue_from_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", '[dispatch]\nqueue = "batch"\n')
    config = load_config(path, env={"REFLOW_PARTITION": "gpu"})
    assert (config.dispatch.partition, config.dispatch.queue) == ("gpu", None)


def test_partition_and_queue_may_agree_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", '[dispatch]\nqueue = "q"\npartition = "q"\n')
    assert load_config(path, env={}).dispatch.queue == "q"


# --------------------------------------------------------------------------- errors


def test_unknown_mode_message(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = config_error(path, '[executor]\nmode = "slrum"\n')
    assert message.startswith(
        f"config {path}: [executor] mode = 'slrum' is not a known mode; use one of: "
        "sbatch, qsub-pbs, bsub, qsub-sge, flux, local, dry-run"
    )
    assert "Did you mean 'slurm'?" in message


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = config_error(path, '[executor]\nmode = "local"\npoll_interval = = 3\n')
    assert message.startswith(f"config {path}: invalid TOML:")
    assert "line 3" in message
    assert "reflow config init --force" in message


def test_syntax_error_at_end_of_document_names_a_line(tmp_path: Path) -> None:
    message = config_error(tmp_path / "config.toml", '[executor]\nmode = "local\n')
    assert re.search(r"line \d+", message), message


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[execuor]\n", ["[execuor] is not a known section", "[executor]", "Did you mean"]),
        (
            '[executor]\nmdoe = "local"\n',
            ["[executor] mdoe is not a known key", "mode, python", "Did you mean 'mode'?"],
        ),
        ('mode = "local"\n', ["mode is outside any section; move it under [executor]"]),
        ("executor = 3\n", ["executor = 3 must be a section"]),
        ('[executor]\nmax_submit_jobs = "lots"\n', ["[executor] max_submit_jobs = 'lots'"]),
        ("[executor]\nmax_submit_jobs = 0\n", ["max_submit_jobs = 0 must be a whole number"]),
        ("[executor]\npoll_interval = true\n", ["poll_interval = true must be a positive"]),
        ('[executor]\nsubmit_options = "--x"\n', ["submit_options = '--x' must be a list"]),
        ("[executor.commands]\nsbatch = 3\n", ["[executor] commands", "entry sbatch"]),
        (
            '[executor.commands]\nsbtach = "/opt/slurm/bin/sbatch"\n',
            ["names 'sbtach', which is not a scheduler command", "bsub", "Did you mean 'sbatch'?"],
        ),
        ("[executor.caps]\nmem = 1.5\n", ["[executor] caps", "entry mem"]),
        ("[dispatch]\ncpus = 1.5\n", ["[dispatch] cpus = 1.5"]),
        ('[dispatch]\nmem = ""\n', ["[dispatch] mem = ''", "memory size with a unit"]),
        ('[dispatch]\ntime = "soon"\n', ["[dispatch] time = 'soon'", "HH:MM:SS", "02:00:00"]),
        ('[executor.caps]\nmem = "lots"\n', ["[executor] caps", "entry mem", "e.g. \"16G\""]),
        ('[executor.caps]\nmemory = "1G"\n', ["unknown resource memory", "cpus, mem, time"]),
        ('[executor.caps]\ncpus = "x"\n', ["entry cpus must be a whole number"]),
        ('[executor.caps]\ntime = "forever"\n', ["entry time must be a time"]),
        ('[dispatch]\npartition = "a"\nqueue = "b"\n', ["partition = 'a' conflicts", "queue"]),
        ("[defaults]\nstore = 5\n", ["[defaults] store = 5"]),
        ("[executor]\npoll_interval = 200\n", ["poll_interval = 200.0 exceeds"]),
    ],
)
def test_file_errors_are_one_line_naming_file_and_key(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "config.toml"
    message = config_error(path, text)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_a_directory_in_place_of_the_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match=f"config {path}: is a directory; the configuration "
                       "is a TOML file"):
        load_config(path, env={})


def test_caps_keep_whole_numbers_as_the_scheduler_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[executor.caps]\nmem = 512\ncpus = 4\ntime = "1-00:00:00"\n')
    assert load_config(path, env={}).executor.caps == {"mem": "512", "cpus": "4",
                                                        "time": "1-00:00:00"}


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[executor]\nmode = "\xff"\n')
    with pytest.raises(ConfigError, match=r"is not UTF-8 text.*save it as UTF-8"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("variable", "raw", "fragment"),
    [
        ("REFLOW_MODE", "slrum", "is not a known mode"),
        ("REFLOW_MAX_SUBMIT_JOBS", "abc", "must be a whole number"),
        ("REFLOW_POLL_INTERVAL", "-1", "must be a positive number"),
        ("REFLOW_POLL_INTERVAL", "nan", "must be a positive number"),
        ("REFLOW_SUBMIT_OPTIONS", "--comment 'open", "is not valid shell syntax"),
    ],
)
def test_variable_errors_name_the_variable(
    tmp_path: Path, variable: str, raw: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml", env={variable: raw})
    message = str(caught.value)
    assert message.startswith(f"{variable}={raw!r} {fragment}")
    assert "\n" not in message


def test_poll_interval_above_the_cap_names_both_sources(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "[executor]\nmax_poll_interval = 30\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"REFLOW_POLL_INTERVAL": "60"})
    message = str(caught.value)
    assert message.startswith("REFLOW_POLL_INTERVAL = 60.0 exceeds config ")
    assert "max_poll_interval = 30.0" in message


# --------------------------------------------------------------------------- executor names


@pytest.mark.parametrize(("mode", "executor"), sorted(MODE_TO_EXECUTOR.items()))
def test_normalise_executor_name(mode: str, executor: str) -> None:
    assert normalise_executor_name(mode) == executor
    assert normalise_executor_name(executor) == executor
    assert normalise_executor_name(executor.upper()) == executor


def test_other_names_of_the_same_schedulers_are_accepted() -> None:
    assert normalise_executor_name("torque") == "pbs"
    assert normalise_executor_name("UGE") == "sge"


def test_unknown_executor_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        normalise_executor_name("slurn")
    message = str(caught.value)
    assert message.startswith(
        "unknown executor 'slurn'; use one of: slurm, pbs, lsf, sge, flux, local, dry-run"
    )
    assert "Did you mean 'slurm'?" in message


# --------------------------------------------------------------------------- example file


def uncommented(example: str) -> str:
    """The example with every setting switched on (explanations start with "# ")."""
    return re.sub(r"^#(?=\w)", "", example, flags=re.MULTILINE)


def test_example_loads_as_defaults(tmp_path: Path) -> None:
    path = write_example_config(tmp_path / "reflow" / "config.toml")
    config = load_config(path, env={})
    assert config == Config(source=path)


def test_example_with_every_key_uncommented_is_valid(tmp_path: Path) -> None:
    example = write_example_config(tmp_path / "example.toml").read_text(encoding="utf-8")
    path = write(tmp_path / "config.toml", uncommented(example))
    config = load_config(path, env={})
    assert config.executor.mode == "sbatch"
    assert config.executor.commands["sbatch"] == "/opt/slurm/bin/sbatch"
    assert config.executor.caps == {"mem": "256G", "time": "48:00:00"}
    assert config.dispatch.partition == config.dispatch.queue == "short"
    assert config.defaults.store is not None and "://" in config.defaults.store
    # every setting was switched on, so nothing may still equal an unset default
    for section in (config.executor, config.dispatch, config.defaults):
        for spec in fields(section):
            assert getattr(section, spec.name) not in (None, (), {}), spec.name


def test_example_documents_every_key(tmp_path: Path) -> None:
    lines = write_example_config(tmp_path / "config.toml").read_text(encoding="utf-8").splitlines()
    documented: set[str] = set()  # "section.key" for each commented setting or sub-table
    section = ""
    for number, line in enumerate(lines):
        setting = re.match(r"#(\w+) = ", line)
        if line.startswith("["):
            section = line.strip("[]")
            if "." not in section:
                continue
            documented.add(section)  # a table-valued key such as [executor.commands]
        elif setting and "." not in section:
            documented.add(f"{section}.{setting.group(1)}")
        else:
            continue
        assert lines[number - 1].startswith("# "), f"{line!r} has no explanation above it"
    for name, cls in (
        ("executor", ExecutorConfig),
        ("dispatch", DispatchConfig),
        ("defaults", DefaultsConfig),
    ):
        for spec in fields(cls):
            assert f"{name}.{spec.name}" in documented, f"{name}.{spec.name} is not in the example"


def test_write_example_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", '[executor]\nmode = "local"\n')
    with pytest.raises(ConfigError) as caught:
        write_example_config(path)
    assert str(path) in str(caught.value)
    assert "overwrite=True" in str(caught.value)
    assert path.read_text(encoding="utf-8") == '[executor]\nmode = "local"\n'
    write_example_config(path, overwrite=True)
    assert load_config(path, env={}).executor.mode is None
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temp file left


def test_write_example_into_unwritable_place_is_a_config_error(tmp_path: Path) -> None:
    blocker = write(tmp_path / "file", "")
    with pytest.raises(ConfigError, match=r"cannot be written"):
        write_example_config(blocker / "config.toml")


def test_ensure_config_exists_writes_only_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("REFLOW_MODE", raising=False)
    path = ensure_config_exists()
    assert path == tmp_path / "xdg" / "reflow" / "config.toml"
    assert "[executor]" in path.read_text(encoding="utf-8")
    write(path, '[executor]\nmode = "flux"\n')
    assert ensure_config_exists() == path
    assert load_config().executor.mode == "flux"


# --------------------------------------------------------------------------- locations


def test_config_path_honours_xdg_config_home(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path / "home")}
    assert config_path(env) == tmp_path / "cfg" / "reflow" / "config.toml"


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG fallback is Unix-only")
def test_config_path_falls_back_to_dot_config(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": "", "HOME": str(tmp_path)}
    assert config_path(env) == tmp_path / ".config" / "reflow" / "config.toml"


def test_load_config_reads_the_xdg_file(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = write(tmp_path / "reflow" / "config.toml", '[executor]\nmode = "local"\n')
    config = load_config(env=env)
    assert (config.executor.mode, config.source) == ("local", path)


def test_importing_and_loading_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("REFLOW_")}
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "cfg"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    script = (
        "import reflow.config as c; c.load_config(); "
        "print(c.resolve_store_location()); print(c.config_path())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    url, path = done.stdout.splitlines()
    assert url == f"sqlite:///{home}/cache/reflow/manifest.db"
    assert path == f"{home}/cfg/reflow/config.toml"
    assert list(home.iterdir()) == []


# --------------------------------------------------------------------------- store location


def test_store_resolution_order(tmp_path: Path) -> None:
    config = Config(defaults=DefaultsConfig(store="postgresql+psycopg://h/cfg", store_path="/c.db"))
    env = {
        "REFLOW_STORE": "postgresql+psycopg://h/env",
        "REFLOW_STORE_PATH": "/env.db",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    arguments: dict[str, str] = {"explicit": "sqlite:////explicit.db", "store_path": "/arg.db"}
    expected = [
        "sqlite:////explicit.db",
        "sqlite:////arg.db",
        "postgresql+psycopg://h/env",
        "sqlite:////env.db",
        "postgresql+psycopg://h/cfg",
        "sqlite:////c.db",
        f"sqlite:///{tmp_path}/cache/reflow/manifest.db",
    ]
    for want in expected:
        got = resolve_store_location(
            arguments.get("explicit"),
            store_path=arguments.get("store_path"),
            config=config,
            env=env,
        )
        assert got == want
        # take away the source that just won, so the next one must decide
        if arguments:
            arguments.pop(next(iter(arguments)))
        elif "REFLOW_STORE" in env:
            del env["REFLOW_STORE"]
        elif "REFLOW_STORE_PATH" in env:
            del env["REFLOW_STORE_PATH"]
        elif config.defaults.store is not None:
            config = Config(defaults=DefaultsConfig(store_path="/c.db"))
        else:
            config = Config()


@pytest.mark.parametrize(("given", "name"), [({"explicit": ""}, "--store"),
                                             ({"store_path": " "}, "--store-path")])
def test_an_empty_store_option_is_an_error_not_the_default_store(
    given: dict[str, str], name: str
) -> None:
    """``--store-path "$STORE"`` with the variable unset must not record in the default."""
    with pytest.raises(StoreError, match=f"{name} is empty"):
        resolve_store_location(given.get("explicit"), store_path=given.get("store_path"),
                               config=Config(), env={})


def test_store_paths_become_absolute_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"HOME": str(tmp_path / "home")}
    assert resolve_store_location("rel.db", env=env) == f"sqlite:///{tmp_path}/rel.db"
    assert resolve_store_location(tmp_path / "p.db", env=env) == f"sqlite:///{tmp_path}/p.db"
    assert (
        resolve_store_location(config=Config(defaults=DefaultsConfig(store_path="~/m.db")), env=env)
        == f"sqlite:///{tmp_path}/home/m.db"
    )
    assert not (tmp_path / "rel.db").exists()


def test_store_resolution_reads_the_config_file_only_when_needed(tmp_path: Path) -> None:
    write(tmp_path / "reflow" / "config.toml", "[defaults\n")  # malformed
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert resolve_store_location("sqlite:////a.db", env=env) == "sqlite:////a.db"
    with pytest.raises(ConfigError, match="invalid TOML"):
        resolve_store_location(env=env)
    write(tmp_path / "reflow" / "config.toml", '[defaults]\nstore = "postgresql://h/db"\n')
    assert resolve_store_location(env=env) == "postgresql://h/db"


def test_adapter_settings_reach_the_scheduler_adapters(tmp_path: Path) -> None:
    from reflow.engine.driver_host import make_executor
    from reflow.executors import DryRunExecutor, SGEExecutor, SlurmExecutor

    path = write(tmp_path / "config.toml", """
        [executor]
        command_timeout = 12.5
        submit_retries = 2
        max_array_size = 77
        sge_parallel_environment = "mpi"
        sge_memory_resource = "mem_free"
        dry_run_target = "qsub-sge"
        dry_run_log = "~/dry.log"
        [executor.commands]
        sbatch = "/opt/slurm/bin/sbatch"
    """)
    config = load_config(path, env={"HOME": str(tmp_path)})
    slurm = make_executor("slurm", config)
    assert isinstance(slurm, SlurmExecutor)
    assert (slurm.runner.timeout, slurm.runner.retry.attempts) == (12.5, 2)
    assert slurm.runner.paths["sbatch"] == "/opt/slurm/bin/sbatch"
    assert slurm.max_array_size() == 77  # configured: no scontrol call
    sge = make_executor("sge", config)
    assert isinstance(sge, SGEExecutor)
    assert (sge.parallel_environment, sge.memory_resource) == ("mpi", "mem_free")
    dry = make_executor("dry-run", config)
    assert isinstance(dry, DryRunExecutor) and isinstance(dry.target, SGEExecutor)
    assert dry.log_path == Path("~/dry.log").expanduser()


@pytest.mark.parametrize(("line", "expected"), [
    ('pbs_flavor = "openpbs"', "pbs_flavor"),
    ('dry_run_target = "local"', "dry_run_target"),
    ("max_array_size = 0", "max_array_size"),
])  # fmt: skip
def test_bad_adapter_settings_are_one_line_errors(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path / "config.toml", f"[executor]\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message


def test_a_mode_unlike_every_known_one_gets_no_suggestion() -> None:
    """``bogus`` shares half its letters with ``pbs``: "Did you mean 'pbs'?" misled."""
    with pytest.raises(ConfigError) as caught:
        load_config(env={"REFLOW_MODE": "bogus"})
    assert "Did you mean" not in str(caught.value)
    with pytest.raises(ConfigError, match="Did you mean 'sbatch'"):
        load_config(env={"REFLOW_MODE": "sbtch"})
