#!/usr/bin/env bash
# The browser of the tests: headless Chromium and its WebDriver. Prints two lines, the browser
# and the driver. PARTNER_OPERATOR_BROWSER and PARTNER_OPERATOR_WEBDRIVER name others (a Chrome
# and chromedriver the machine already has); else Debian's chromium and chromium-driver, which
# this script installs on first use when it runs as root (as hack/kube-assets.sh builds the
# control plane on first use). Otherwise it fails with one line giving the exact command.
# Concurrent callers wait on one lock.
set -euo pipefail
browser="${PARTNER_OPERATOR_BROWSER:-/usr/bin/chromium}"
driver="${PARTNER_OPERATOR_WEBDRIVER:-/usr/bin/chromedriver}"

if [[ ! -x "$browser" || ! -x "$driver" ]]; then
  if [[ -n "${PARTNER_OPERATOR_BROWSER:-}${PARTNER_OPERATOR_WEBDRIVER:-}" ]]; then
    echo "browser: $browser or $driver (PARTNER_OPERATOR_BROWSER, PARTNER_OPERATOR_WEBDRIVER) is not an executable" >&2
    exit 1
  fi
  if [[ "$(id -u)" != 0 ]]; then
    echo "browser: chromium and chromedriver are missing; install them with: sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  lock="${TMPDIR:-/tmp}/partner-operator-browser.lock"
  exec 9>"$lock"
  flock 9
  if [[ ! -x "$browser" || ! -x "$driver" ]]; then
    log="$(mktemp)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1; then
      echo "browser: apt-get install -y chromium chromium-driver failed: $(tail -n 1 "$log")" >&2
      rm -f "$log"
      exit 1
    fi
    rm -f "$log"
  fi
fi
echo "$browser"
echo "$driver"
