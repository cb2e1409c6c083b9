#!/usr/bin/env bash
# The live scheduler's throughput: a Kafka + Redis stack on free ports
# (tests/harness/stack.sh, no services), 200,000 pending units and 1,000
# registered workers, placements/s and decision latency of the Cascade
# scheduler beside the previous scheduler's rounds on the same data.
#
#   bench/sched/bench_live.sh [--units N] [--workers W] [--legacy N]
#
# Binaries from $CASCADE_BIN (default <repo>/build/bin).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${CASCADE_BIN:-$repo/build/bin}
export CASCADE_BIN=$bin
dir=$(mktemp -d "${TMPDIR:-/tmp}/cascade-bench-sched.XXXXXX")
cleanup() {
    "$repo/tests/harness/stack.sh" stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
"$repo/tests/harness/stack.sh" start "$dir" --no-services >/dev/null
set -a
. "$dir/env"
set +a
echo "stack: redis $CASCADE_REDIS_URL, kafka $CASCADE_KAFKA_BROKERS"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/bench_sched_live" "$@"
