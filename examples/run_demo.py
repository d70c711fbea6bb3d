"""Run ``examples/fanout.py`` end to end and print its status (used by scripts/demo.sh).

Uses only the embedded defaults: the SQLite manifest in the XDG cache directory and the
local executor. Equivalent to ``python examples/fanout.py submit --run-dir DIR --executor
local --wait`` followed by ``python examples/fanout.py status RUN_ID``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import wf

from reflow import ManifestCodec


def main() -> None:
    run_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "reflow-demo")
    # verify=True: the cache may point at files of an earlier demo in a /tmp directory that
    # has been cleaned up since; those are made again instead of failing the run.
    run = wf.submit(run_dir, executor="local", wait=True, verify=True, samples=8)
    print(f"run_id   = {run.run_id}")
    print(f"run_dir  = {run.run_dir}")
    print(run.status())
    print()
    # A cached report is the file an earlier run wrote: print where it really is.
    (report,) = run.status(as_dict=True, task="report")["instances"]
    print(f"report: {ManifestCodec.decode(report['output'])}")
    if run.state != "SUCCESS":
        sys.exit(f"error: the demo run ended {run.state}; see `reflow status {run.run_id} "
                 "--errors`")


if __name__ == "__main__":
    main()
