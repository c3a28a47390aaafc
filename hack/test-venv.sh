#!/usr/bin/env bash
# The Python of the tests: a virtual environment of the project's own (target/test-venv, under
# the git-ignored target/), holding the wheels at the pins below, so nothing is installed into
# the machine's Python: helm-python-sdk drives Helm's Go library for tests/external/helm_chart.rs, and
# standardwebhooks verifies webhook signatures in tests/integration/webhooks.rs (an implementation of the
# scheme independent of the operator's). Created on first
# use (python3 -m venv, then pip, quietly: when one fails, one line says what could not be
# installed and why, and where pip's whole output is); a changed pin reinstalls. Concurrent
# callers wait on one lock. The last line printed is the venv's python.
#
#   PARTNER_OPERATOR_TEST_VENV  where the venv lives (default: target/test-venv in the project)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PARTNER_OPERATOR_TEST_VENV:-$root/target/test-venv}"
# Helm v4.2.3's Go library; the Standard Webhooks reference library.
wheels=(helm-python-sdk==0.2.2 standardwebhooks==1.1.0)
python="$venv/bin/python"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# Runs a command with its output kept; if it fails, prints one line to stderr: `what` could not
# be done, and the last line the command printed (pip's own error), then returns 1. The whole
# output is left in $venv.log.
quietly() {
  local what="$1"
  shift
  if ! "$@" >"$venv.log" 2>&1; then
    local last
    last="$(grep -v '^\s*$' "$venv.log" | tail -n 1)"
    echo "test-venv: could not install $what: ${last:-no output} (the whole output: $venv.log)" >&2
    return 1
  fi
}

if [[ "$(cat "$venv/wheels" 2>/dev/null)" != "${wheels[*]}" ]] || ! "$python" -c "import helm_python, standardwebhooks" >/dev/null 2>&1; then
  if [[ ! -x "$python" ]]; then
    quietly "a virtual environment (python3 -m venv $venv; on Debian, apt-get install python3-venv)" \
      python3 -m venv "$venv"
  fi
  # One wheel at a time, so the line says which could not be installed.
  for wheel in "${wheels[@]}"; do
    quietly "$wheel" "$python" -m pip install --quiet --disable-pip-version-check --no-input "$wheel"
  done
  echo "${wheels[*]}" >"$venv/wheels"
fi
echo "$python"
