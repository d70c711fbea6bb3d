"""The embedded default store: created by the first run, never by import or definition."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    from typing import Annotated
    from reflow import Workflow, Result
    wf = Workflow("defaults")

    @wf.job()
    def a() -> list[int]:
        return [1, 2]

    @wf.array_job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    wf.validate(); wf.describe()
    cache = Path(os.environ["XDG_CACHE_HOME"])
    print("before", sorted(p.name for p in cache.rglob("*")))
    run = wf.run_local(sys.argv[1])
    print("after", sorted(str(p.relative_to(cache)) for p in cache.rglob("*.db")))
    print("state", run.state.value)
''')


def test_defining_creates_nothing_and_the_first_run_uses_the_xdg_cache(tmp_path: Path) -> None:
    script = tmp_path / "pipe.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    (tmp_path / "cache").mkdir()
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "before []"
    assert out[1] == "after ['reflow/manifest.db']"
    assert out[2] == "state SUCCESS"
    assert not (tmp_path / "config").exists()  # no config file written implicitly
