#!/usr/bin/env bash
# SIGTERM drains a gpu-worker: it finishes the unit in hand (staged on its
# first attempt, never re-issued), then deregisters (no alive key, no
# cx:workers entry, partition claim released) and exits 0.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 23_worker_drain)
cx_stack_up "$dir" 0 --no-services
cd "$CX_STACK_DIR" # see 20_sched_flow.sh
rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }

cx_service_start scheduler
cx_service_start gpu-worker-1 --threads 1
cx_wait_for '[ "$(rc EXISTS cx:worker:gpu-worker-1:alive)" = 1 ]' 60 \
    || cx_fail "gpu-worker-1 did not register"
part=$(rc HGET cx:worker:gpu-worker-1 partition)

# A unit that takes a moment: 16 samples of 128x128 with 30 steps.
u=$("$CASCADE_BIN/cx-unitgen" "$dir/u.bin" job23 normal 0 0 16 ref-cxr-v0 128 30)
cx_cxdev produce cascade.units --key job23 --file "$dir/u.bin" >/dev/null
log1="$CX_STACK_DIR/logs/gpu-worker-1.log"
cx_wait_for "grep -q 'unit started.*$u' '$log1'" 60 || cx_fail "unit not started"
cx_service_kill gpu-worker-1

grep -q "worker stopped worker=gpu-worker-1 rc=0" "$log1" || cx_fail "no clean exit"
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = staged ]' 30 || cx_fail "unit in hand not staged"
cx_assert_eq "$(rc HGET cx:unit:$u attempt)" 1 "attempt"
cx_assert_eq "$(rc EXISTS cx:worker:gpu-worker-1:alive)" 0 "alive key"
cx_assert_eq "$(rc ZSCORE cx:workers gpu-worker-1)" "" "cx:workers entry"
cx_assert_eq "$(rc EXISTS cx:dispatch:partition:$part)" 0 "partition claim"
echo "23_worker_drain: ok"
