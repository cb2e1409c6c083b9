#!/usr/bin/env bash
# Builds the S3-compatible server the s3:// store tests run against:
# SeaweedFS, from its Go module (the Go module proxy), into
# .deps/seaweedfs/weed. Idempotent: the marker holds the version, so a
# second run with the same version does nothing.
#
# Why SeaweedFS: its conditional PUT (If-None-Match: *) is a real
# compare-and-swap, which the manifest commit relies on; versitygw's is racy
# under concurrent writers in released versions.
#
# `go install` refuses the module (replace directives in its go.mod), so the
# module is downloaded and built as the main module inside its own directory.
# SeaweedFS tags are not semver; the pin is the proxy's pseudo-version.
#
# The build takes minutes (measured on the 2-core machine: 8.7 min from an
# empty Go module and build cache), so the binary is also kept in a per-user
# cache keyed by the version ($CASCADE_CACHE, default ~/.cache/cascade): a
# fresh clone on the same machine copies it instead of building again.
#
# Environment: CASCADE_SEAWEEDFS_VERSION overrides the pin; GO (default: go
# on PATH, else /usr/local/go/bin/go); CASCADE_CACHE.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

version=${CASCADE_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}
dest="$here/.deps/seaweedfs"
bin="$dest/weed"
cache="${CASCADE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cascade}/seaweedfs-$version"

# Keeps a verified copy of a binary in the per-user cache (best effort).
to_cache() {
    mkdir -p "$cache" 2>/dev/null || return 0
    cp -f "$1" "$cache/weed.tmp.$$" 2>/dev/null && mv -f "$cache/weed.tmp.$$" "$cache/weed" || true
}

if [ -x "$bin" ] && [ "$(cat "$dest/.complete" 2>/dev/null)" = "$version" ]; then
    [ -x "$cache/weed" ] || to_cache "$bin"
    exit 0
fi
mkdir -p "$dest"
if [ -x "$cache/weed" ] && "$cache/weed" version >/dev/null 2>&1; then
    cp -f "$cache/weed" "$bin.tmp" && mv -f "$bin.tmp" "$bin"
    echo "$version" >"$dest/.complete"
    echo "deps-s3: SeaweedFS $version from $cache" >&2
    exit 0
fi

go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$go" ] || { echo "deps-s3: Go toolchain not found (set GO=/path/to/go)" >&2; exit 1; }

echo "deps-s3: building SeaweedFS $version (cached in $dest)" >&2
t0=$(date +%s)
json=$("$go" mod download -json "github.com/seaweedfs/seaweedfs@$version")
src=$(printf '%s' "$json" | python3 -c 'import json, sys
d = json.load(sys.stdin)
if d.get("Error"): sys.exit("deps-s3: " + d["Error"])
print(d["Dir"])')
tmp=$(mktemp -d "$dest/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# CGO off: a static binary that needs nothing from the host; -trimpath and
# no VCS stamping because the module cache is not a repository.
(cd "$src" && CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false \
    -ldflags='-s -w' -o "$tmp/weed" ./weed)
"$tmp/weed" version >/dev/null
mv -f "$tmp/weed" "$bin"
echo "$version" >"$dest/.complete"
to_cache "$bin"
echo "deps-s3: SeaweedFS built in $(( $(date +%s) - t0 ))s" >&2
