#!/usr/bin/env bash
# test.sh - the project's one test command: `bash scripts/test.sh [pytest args]`.
#
# Works from any directory on a fresh machine: creates .venv in the repository
# if it is missing, installs reflow with its test extras under the pinned
# constraints, then runs pytest from the repository root. Exits with pytest's
# exit code.
#
# The install is skipped while a stamp in .venv matches the hash of
# pyproject.toml + constraints.txt and the repository's path: editing either
# file, or using a venv made for another checkout (its editable install would
# import that checkout's code), triggers a reinstall.
#
# Settings: PYTHON (interpreter that creates the venv, default python3).
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.reflow-install-stamp"
cd "$ROOT"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
  echo "test.sh: creating $VENV" >&2
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi

want="$( { printf '%s\n' "$ROOT"; cat pyproject.toml constraints.txt; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  echo "test.sh: installing reflow[test] into $VENV (pyproject.toml or constraints.txt changed)" >&2
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install -qq --disable-pip-version-check \
    -c constraints.txt -e '.[test]'
  echo "$want" > "$STAMP"
fi

exec "$VENV/bin/python" -m pytest "$@"
