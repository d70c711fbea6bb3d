"""Real-terminal smoke test: `reflow tui` in tmux on a run of the local executor.

Starts a run, opens the TUI on it, watches it finish (FAILED: ``work[1]`` has no flag file),
fixes the cause, retries with ``r``, watches the run succeed and quits with ``q``, checking
the exit code. It uses a private tmux server socket, so it never touches a user's sessions.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reflow.store import Store

HERE = Path(__file__).resolve().parent
REFLOW = Path(sys.executable).with_name("reflow")

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux)")


class Pane:
    def __init__(self, socket: str, session: str) -> None:
        self.base = ["tmux", "-L", socket]
        self.session = session

    def text(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-S", "-200", "-t",
                               self.session], capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.session, *keys], check=True)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{text}")
            time.sleep(0.1)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Callable[[str], Pane]]:
    socket = f"reflow-tui-{os.getpid()}"
    base = ["tmux", "-L", socket]

    def start(command: str) -> Pane:
        subprocess.run([*base, "new-session", "-d", "-s", "smoke", "-x", "100", "-y", "30",
                        command], check=True)
        return Pane(socket, "smoke")

    yield start
    subprocess.run([*base, "kill-server"], capture_output=True)


def poll(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_watch_retry_and_quit_in_a_real_terminal(tmp_path: Path, sqlite_url: str,
                                                 pane: Callable[[str], Pane]) -> None:
    flag = tmp_path / "flag"
    env = {**os.environ, "REFLOW_TUI_FLAG": str(flag)}
    made = subprocess.run([sys.executable, str(HERE / "tui_pipeline.py"), str(tmp_path / "r"),
                           sqlite_url], env=env, capture_output=True, text=True, check=True)
    run_id = made.stdout.split()[0]
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                       if k.startswith(("REFLOW", "XDG")))
    tui = pane(f"env {exports} {shlex.quote(str(REFLOW))} tui {run_id} "
               f"--store {shlex.quote(sqlite_url)}; echo EXIT=$?; sleep 60")

    tui.wait_for(lambda t: f"{run_id} FAILED" in t and "work[]" in t and "Retry" in t,
                 "the run to finish as FAILED (title, task table and footer painted)")

    flag.write_text("fixed")
    tui.keys("Down")
    tui.wait_for(lambda t: "work instances 1-3 of 3" in t, "task 'work' to be selected")
    tui.keys("r")
    tui.wait_for(lambda t: "got a new attempt" in t or "retry:" in t, "the retry message")
    with Store.open(sqlite_url) as store:
        poll(lambda: store.get_run(run_id).status == "SUCCESS", "the retried run to succeed")
        work = store.latest_instances(run_id, "work")
        assert [(w.attempt, w.state) for w in work] == [
            (1, "SUCCESS"), (2, "SUCCESS"), (1, "SUCCESS")]
    tui.wait_for(lambda t: f"{run_id} SUCCESS" in t, "the TUI to show the run succeeded")

    tui.keys("q")
    final = tui.wait_for(lambda t: "EXIT=" in t, "the TUI to exit", timeout=20)
    assert "EXIT=0" in final and "Traceback" not in final
