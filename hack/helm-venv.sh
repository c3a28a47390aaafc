#!/usr/bin/env bash
# The Python that drives Helm's Go library for tests/helm_chart.rs: a virtual environment of the
# project's own (target/helm-venv, under the git-ignored target/), holding the helm-python-sdk
# wheel at the pin below, so nothing is installed into the machine's Python. Created on first
# use (python3 -m venv, then pip, quietly: their output shows only when they fail); a changed
# pin reinstalls. Concurrent callers wait on one lock. The last line printed is the venv's python.
#
#   PARTNER_OPERATOR_HELM_VENV  where the venv lives (default: target/helm-venv in the project)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PARTNER_OPERATOR_HELM_VENV:-$root/target/helm-venv}"
# Helm v4.2.3's Go library.
wheel="helm-python-sdk==0.2.2"
python="$venv/bin/python"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# Runs a command with its output kept, printed (to stderr) only if it fails.
quietly() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    echo "helm-venv: $* failed:" >&2
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if [[ "$(cat "$venv/wheel" 2>/dev/null)" != "$wheel" ]] || ! "$python" -c "import helm_python" >/dev/null 2>&1; then
  if [[ ! -x "$python" ]]; then
    quietly python3 -m venv "$venv"
  fi
  quietly "$python" -m pip install --quiet --disable-pip-version-check --no-input "$wheel"
  echo "$wheel" >"$venv/wheel"
fi
echo "$python"
