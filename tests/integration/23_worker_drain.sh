#!/usr/bin/env bash
# SIGTERM drains a gpu-worker: it finishes the unit in hand (staged on its
# first attempt, never re-issued), gives back at once the unit it was
# leased but had not started (pending again while the first still runs,
# its attempt undone and nobody excluded, so the next worker runs it as
# attempt 1), then deregisters (no alive key, no cx:workers entry,
# partition claim released) and exits 0.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 23_worker_drain)
cx_stack_up "$dir" 0 --no-services
cd "$CX_STACK_DIR" # see 20_sched_flow.sh
rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }

# Both of the worker's slots are filled at once (no prefetch window).
cx_service_start scheduler --prefetch_s 3600
cx_service_start gpu-worker-1 --threads 1
cx_wait_for '[ "$(rc EXISTS cx:worker:gpu-worker-1:alive)" = 1 ]' 60 \
    || cx_fail "gpu-worker-1 did not register"
part=$(rc HGET cx:worker:gpu-worker-1 partition)

# Units that take a while: 12 samples of 512x512 with 50 steps each on one
# thread, 14 s under ASan on a quiet VM (B comes back within a second).
a=$("$CASCADE_BIN/cx-unitgen" "$dir/a.bin" job23 normal 0 0 12 ref-cxr-v0 512 50)
b=$("$CASCADE_BIN/cx-unitgen" "$dir/b.bin" job23 normal 0 1 12 ref-cxr-v0 512 50)
cx_cxdev produce cascade.units --key job23 --file "$dir/a.bin" >/dev/null
cx_cxdev produce cascade.units --key job23 --file "$dir/b.bin" >/dev/null
log1="$CX_STACK_DIR/logs/gpu-worker-1.log"
cx_wait_for "grep -q 'unit started.*$a' '$log1'" 60 || cx_fail "unit A not started"
cx_wait_for '[ "$(rc HGET cx:unit:$b worker)" = gpu-worker-1 ]' 30 \
    || cx_fail "unit B not leased to gpu-worker-1"
cx_assert_eq "$(rc HGET cx:unit:$b state)" leased "B before the drain"

# SIGTERM by pid (stack.sh kill gives a drain only 10 s, less than A may
# take on a busy machine).
pid1=$(cat "$CX_STACK_DIR/pids/gpu-worker-1.pid")
kill -TERM "$pid1"
# B comes back at once, while A is still being generated.
cx_wait_for '[ "$(rc HGET cx:unit:$b state)" = pending ]' 10 \
    || cx_fail "unstarted unit B not released on drain"
cx_assert_eq "$(rc HGET cx:unit:$a state)" leased "A still running when B came back"
cx_assert_eq "$(rc HGET cx:unit:$b attempt)" 0 "B's attempt undone"
cx_assert_eq "$(rc HGET cx:unit:$b excluded)" "" "B excludes nobody"
cx_wait_for "! kill -0 $pid1" 300 || cx_fail "gpu-worker-1 did not exit"

grep -q "worker stopped worker=gpu-worker-1 rc=0" "$log1" || cx_fail "no clean exit"
cx_wait_for '[ "$(rc HGET cx:unit:$a state)" = staged ]' 30 || cx_fail "unit in hand not staged"
cx_assert_eq "$(rc HGET cx:unit:$a attempt)" 1 "A attempt"
cx_assert_eq "$(rc EXISTS cx:worker:gpu-worker-1:alive)" 0 "alive key"
cx_assert_eq "$(rc ZSCORE cx:workers gpu-worker-1)" "" "cx:workers entry"
cx_assert_eq "$(rc EXISTS cx:dispatch:partition:$part)" 0 "partition claim"

# The next worker runs B as its first attempt.
cx_service_start gpu-worker-2 --threads 1
cx_wait_for '[ "$(rc HGET cx:unit:$b state)" = staged ]' 120 || cx_fail "B not staged"
cx_assert_eq "$(rc HGET cx:unit:$b worker)" gpu-worker-2 "B ran on gpu-worker-2"
cx_assert_eq "$(rc HGET cx:unit:$b attempt)" 1 "B attempt"
echo "23_worker_drain: ok"
