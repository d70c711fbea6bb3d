"""A detached process that carries on an in-process (``run_local``) run after a retry.

The TUI retries and force-reruns in-process runs through this: the work then belongs to a
process of its own, in its own session, so quitting the TUI or losing the SSH connection
stops nothing (SPEC §7). It logs to ``<run_dir>/logs/inline.log``.

    python -m reflow.engine.inline_host RUN_ID      (store in REFLOW_STORE)
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reflow.run import Run
    from reflow.store import Store

log = logging.getLogger(__name__)


def spawn(run: Run) -> int:
    """Start the process that executes ``run``'s pending work; returns its pid."""
    from reflow.engine.driver_host import store_location

    logs = Path(run.record().run_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REFLOW_STORE": store_location(run.store)}
    with open(logs / "inline.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reflow.engine.inline_host", run.run_id],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
            start_new_session=True, cwd=logs.parent,
        )
    # The run names its process at once, as a detached driver's heartbeat does: until the
    # child records itself, the run would name the process that ran it before, maybe gone.
    options = run.record().option_values
    run.store.set_run_options(run.run_id, {**options, "pid": proc.pid,
                                           "host": socket.gethostname()})
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m reflow.engine.inline_host RUN_ID\n")
        return 2
    from reflow.actions import continue_run
    from reflow.engine.driver_host import serve_run
    from reflow.run import Run

    (run_id,) = args

    def carry_on(store: Store) -> None:
        run = Run.load(run_id, store=store)
        continue_run(run)
        log.info("run %s ended %s", run_id, run.state)

    return serve_run(run_id, "in-process execution", carry_on)


if __name__ == "__main__":
    sys.exit(main())
