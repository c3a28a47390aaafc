#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their upstream Go modules, at the versions pinned in
# hack/kube-assets/go.mod, into a directory laid out like KUBEBUILDER_ASSETS (the envtest
# convention): DIR/kube-apiserver, DIR/etcd, DIR/kubectl (a link to the stock one), and
# DIR/kube-controller-manager (namespace termination and garbage collection need it); and
# DIR/helm, the stock Helm CLI from helm.sh/helm/v4 at the version pinned in hack/helm/go.mod
# (a module of its own: Helm's client-go need not match the server's pins).
#
# DIR is keyed on the pins (go.mod, go.sum and the mains), so a build happens once per pin and
# a changed pin builds anew; DIR/helm is keyed the same way on hack/helm, by DIR/helm.key, so a
# changed Helm pin rebuilds Helm alone. Concurrent callers wait on one lock. The last line
# printed is DIR.
#
#   PARTNER_OPERATOR_ASSETS_CACHE  where DIRs live (default ~/.cache/partner-operator/kube-assets)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module="$here/kube-assets"
helm_module="$here/helm"
cache="${PARTNER_OPERATOR_ASSETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/partner-operator/kube-assets}"

key="$(cd "$module" && cat go.mod go.sum cmd/*/main.go | sha256sum | cut -c1-16)"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$module/go.mod")"
dir="$cache/$k8s_version-$key"
helm_key="$(cd "$helm_module" && cat go.mod go.sum cmd/*/main.go | sha256sum | cut -c1-16)"
helm_version="$(awk '$1 == "helm.sh/helm/v4" { print $2 }' "$helm_module/go.mod")"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

if [[ ! -x "$dir/kube-apiserver" || ! -x "$dir/etcd" || ! -x "$dir/kube-controller-manager" ]]; then
  command -v go >/dev/null || { echo "kube-assets: Go is not installed (need Go >= 1.26)" >&2; exit 1; }
  echo "kube-assets: building kube-apiserver, kube-controller-manager $k8s_version and etcd into $dir" >&2
  start=$SECONDS
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  major="${k8s_version#v}"; minor="${major#*.}"; major="${major%%.*}"; minor="${minor%%.*}"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$module" && go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp/" ./cmd/kube-apiserver ./cmd/kube-controller-manager)
  (cd "$module" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./cmd/etcd)
  if [[ -x /usr/bin/kubectl ]]; then ln -sf /usr/bin/kubectl "$tmp/kubectl"; fi
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  echo "kube-assets: built in $((SECONDS - start)) s" >&2
fi

if [[ ! -x "$dir/helm" || "$(cat "$dir/helm.key" 2>/dev/null)" != "$helm_key" ]]; then
  command -v go >/dev/null || { echo "kube-assets: Go is not installed (need Go >= 1.26)" >&2; exit 1; }
  echo "kube-assets: building helm $helm_version into $dir" >&2
  start=$SECONDS
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$helm_module" && go build -mod=readonly -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" -o "$tmp/helm" ./cmd/helm)
  rm -f "$dir/helm.key"
  mv "$tmp/helm" "$dir/helm"
  echo "$helm_key" > "$dir/helm.key"
  rm -rf "$tmp"
  trap - EXIT
  echo "kube-assets: built helm in $((SECONDS - start)) s" >&2
fi
echo "$dir"
