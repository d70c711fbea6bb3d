#!/usr/bin/env bash
# ensure-venv.sh - sourced by test.sh and demo.sh: make sure .venv exists and holds reflow.
#
# Creates .venv in the repository if it is missing, installs reflow with its test extras
# under the pinned constraints, and skips the install while a stamp in .venv matches the
# hash of pyproject.toml + constraints.txt and the repository's path: editing either file,
# or using a venv made for another checkout (its editable install would import that
# checkout's code), triggers a reinstall. Expects ROOT to be set; sets VENV.
# Settings: PYTHON (interpreter that creates the venv, default python3).
VENV="$ROOT/.venv"
STAMP="$VENV/.reflow-install-stamp"
cd "$ROOT"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
  echo "reflow: creating $VENV" >&2
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi

want="$( { printf '%s\n' "$ROOT"; cat pyproject.toml constraints.txt; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  echo "reflow: installing reflow[test] into $VENV (pyproject.toml or constraints.txt changed)" >&2
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install -qq --disable-pip-version-check \
    -c constraints.txt -e '.[test]'
  echo "$want" > "$STAMP"
fi

