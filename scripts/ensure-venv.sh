#!/usr/bin/env bash
# Create .venv with Python 3.11 (installing python3-venv with apt if the stdlib venv is missing)
# and install requirements-dev.txt into it. Re-runs pip only when the requirements changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
[[ -x .venv/bin/python && -f $stamp && $(cat $stamp) == "$wanted" ]] && exit 0

python=${PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[[ -n $python ]] || { apt_install python3.11 python3.11-venv; python=python3.11; }
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $($python --version)"
  "$python" -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3.11-venv; "$python" -m venv .venv; }
fi
log "installing requirements into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
echo "$wanted" > $stamp
