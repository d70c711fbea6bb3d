#!/usr/bin/env python3
"""A stand-in for any scheduler client (sbatch, qsub, bjobs, flux, ...), for tests.

Run through a symlink named after the tool. Appends {"tool", "argv", "stdin"} as one JSON
line to the file named by REFLOW_FAKE_LOG, then replies with the canned answer from the
directory REFLOW_FAKE_RESPONSES: the file "<tool>-<first arg>" or else "<tool>", holding a
JSON list of {"stdout", "stderr", "returncode"}; the n-th call of that tool gets the n-th
reply (the last one repeats). No reply file: exit 0 silently.
"""

import json
import os
import sys


def main() -> int:
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    log = os.environ["REFLOW_FAKE_LOG"]
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"tool": tool, "argv": args, "stdin": stdin}) + "\n")
    responses = os.environ.get("REFLOW_FAKE_RESPONSES", "")
    names = [f"{tool}-{args[0]}", tool] if args else [tool]
    for name in names:
        path = os.path.join(responses, name)
        if responses and os.path.exists(path):
            break
    else:
        return 0
    with open(log, encoding="utf-8") as handle:
        calls = [json.loads(line) for line in handle]
    same = [c for c in calls if c["tool"] == tool and (name == tool or c["argv"][:1] == args[:1])]
    with open(path, encoding="utf-8") as handle:
        replies = json.load(handle)
    reply = replies[min(len(same), len(replies)) - 1]
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply.get("stderr", ""))
    return int(reply.get("returncode", 0))


if __name__ == "__main__":
    sys.exit(main())
