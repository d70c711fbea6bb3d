#!/usr/bin/env bash
# demo.sh - the README's first command: run the example pipeline end to end on the embedded
# defaults (SQLite store in $XDG_CACHE_HOME/reflow, local executor) and print its status.
#
# Usage: bash scripts/demo.sh [RUN_DIR]   (default: a fresh directory under /tmp)
# Run it twice: the second run is served entirely from the cache.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/ensure-venv.sh
source "$ROOT/scripts/ensure-venv.sh"

RUN_DIR="${1:-$(mktemp -d /tmp/reflow-demo.XXXXXX)}"
"$VENV/bin/python" examples/run_demo.py "$RUN_DIR"
