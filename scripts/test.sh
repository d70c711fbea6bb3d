#!/usr/bin/env bash
# test.sh - the project's one test command: `bash scripts/test.sh [pytest args]`.
#
# Works from any directory on a fresh machine: sets up .venv (see ensure-venv.sh), then runs
# pytest from the repository root. Exits with pytest's exit code.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/ensure-venv.sh
source "$ROOT/scripts/ensure-venv.sh"

exec "$VENV/bin/python" -m pytest "$@"
