# Helpers for the deploy checks (tests/deploy/*_check.sh, ctest label
# `deploy`): where the tools are, and the list of environment variables
# each service binary reads.
set -euo pipefail
DC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DC_BIN=${CASCADE_BIN:-$DC_REPO/build/bin}
DC_HELM=$DC_REPO/.deps/bin/helm
DC_CHECK=$DC_REPO/.deps/bin/deploycheck
DC_HADOLINT=$DC_REPO/.deps/hadolint/bin/hadolint
DC_CHART=$DC_REPO/deploy/helm/cascade
DC_SERVICES=(planner scheduler gpu-worker validator committer indexer)
DC_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cx-deploy.XXXXXX")
trap 'rm -rf "$DC_TMP"' EXIT

dc_fail() { echo "FAIL: $*" >&2; exit 1; }

# dc_need PATH: the tool must be installed (make deps).
dc_need() {
    [ -x "$1" ] || dc_fail "$1 missing: run scripts/deps-helm.sh (make deps)"
}

# Writes "BINARY NAME" lines: each service's settings from its own
# --help-markdown table, and (binary "*") what every binary reads besides:
# the config file variable and the s3:// store's settings, as listed in
# common/src/store_s3.h.
dc_known_names() {
    local out=$1 svc names
    : >"$out"
    for svc in "${DC_SERVICES[@]}"; do
        [ -x "$DC_BIN/cascade-$svc" ] || dc_fail "$DC_BIN/cascade-$svc not built (set CASCADE_BIN)"
        names=$("$DC_BIN/cascade-$svc" --help-markdown |
            sed -n 's/^| `--[^`]*` | `\(CASCADE_[A-Z0-9_]*\)` |.*/\1/p')
        [ "$(wc -w <<<"$names")" -ge 5 ] ||
            dc_fail "cascade-$svc --help-markdown lists too few settings: table format changed?"
        sed "s/^/cascade-$svc /" <<<"$names" >>"$out"
    done
    echo "* CASCADE_CONFIG" >>"$out"
    grep -o '\(CASCADE_S3\|AWS\)_[A-Z0-9_]*[A-Z0-9]' "$DC_REPO/common/src/store_s3.h" |
        sort -u | sed 's/^/* /' >>"$out"
    grep -q '^\* CASCADE_S3_SECRET_ACCESS_KEY$' "$out" || dc_fail "no S3 settings found in store_s3.h"
}
