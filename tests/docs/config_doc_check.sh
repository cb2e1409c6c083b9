#!/usr/bin/env bash
# docs/CONFIGURATION.md is what the binaries' config tables say now.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$repo/scripts/config-doc.sh" "${CASCADE_BIN:?}" "$tmp"
if ! diff -u "$repo/docs/CONFIGURATION.md" "$tmp"; then
    echo "FAIL: docs/CONFIGURATION.md is out of date: run scripts/config-doc.sh" >&2
    exit 1
fi
echo "PASS docs_configuration"
