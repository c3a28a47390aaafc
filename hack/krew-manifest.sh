#!/usr/bin/env bash
# Fills in the krew manifest (plugins/krew/partner.yaml) for a release and prints it:
#   hack/krew-manifest.sh VERSION REPOSITORY_URL DIST_DIR
# VERSION is the release tag (v0.2.0); DIST_DIR holds the archives
# kubectl-partner_<VERSION>_<os>_<arch>.tar.gz for linux and darwin, amd64 and arm64, whose
# SHA-256 go into the manifest. A missing archive is an error.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 VERSION REPOSITORY_URL DIST_DIR" >&2
  exit 2
fi
version=$1 repository=$2 dist=$3
manifest="$(dirname "$0")/../plugins/krew/partner.yaml"
args=(-e "s|@VERSION@|${version}|g" -e "s|@REPOSITORY_URL@|${repository%/}|g")
for os in linux darwin; do
  for arch in amd64 arm64; do
    archive="$dist/kubectl-partner_${version}_${os}_${arch}.tar.gz"
    if [ ! -f "$archive" ]; then
      echo "$0: $archive is missing" >&2
      exit 1
    fi
    sum=$(sha256sum "$archive" | cut -d' ' -f1)
    key="SHA256_${os^^}_${arch^^}"
    args+=(-e "s|@${key}@|${sum}|g")
  done
done
# The template's leading comment is for the repository, not for the release.
sed "${args[@]}" "$manifest" | sed '/^#/d'
