#!/usr/bin/env bash
# Builds promtool, Prometheus' own rule checker and rule unit tester, from its upstream Go module
# (github.com/prometheus/prometheus/cmd/promtool, the `tool` pinned in hack/promtool/go.mod), so
# the chart's alerting rules are tested by the same code Prometheus evaluates them with.
#
# Built with the tag remove_all_sd: without Prometheus' cloud service discoveries (AWS, Azure,
# GCE, ...), which rule checks and rule unit tests never use and which would double the build.
#
# The binary lands in DIR/promtool, DIR keyed on the pin (go.mod and go.sum) and the tags, so a
# build happens once per pin and machine and a changed pin builds anew. Concurrent callers wait
# on one lock. The last line printed is the path of the binary.
#
#   PARTNER_OPERATOR_PROMTOOL_CACHE  where DIRs live (default ~/.cache/partner-operator/promtool)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module="$here/promtool"
cache="${PARTNER_OPERATOR_PROMTOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/partner-operator/promtool}"

tags="remove_all_sd"
key="$( (cd "$module" && cat go.mod go.sum; echo "$tags") | sha256sum | cut -c1-16)"
version="$(awk '$1 == "github.com/prometheus/prometheus" { print $2 }' "$module/go.mod")"
dir="$cache/$version-$key"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

if [[ ! -x "$dir/promtool" ]]; then
  command -v go >/dev/null || { echo "promtool: Go is not installed (need Go >= 1.26)" >&2; exit 1; }
  echo "promtool: building promtool from github.com/prometheus/prometheus $version into $dir" >&2
  start=$SECONDS
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$module" && go build -mod=readonly -trimpath -tags "$tags" \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" \
    -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool)
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  echo "promtool: built in $((SECONDS - start)) s" >&2
fi
echo "$dir/promtool"
