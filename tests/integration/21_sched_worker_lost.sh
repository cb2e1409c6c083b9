#!/usr/bin/env bash
# A worker that stops heart-beating (SIGSTOP, so it cannot even exit
# cleanly) loses its lease within its alive TTL (4 s), far sooner than the lease
# itself would expire; the unit is re-leased to another worker with
# attempt+1 and a new epoch, excluding the lost one. When the frozen worker
# resumes, its old Assignment is stale and changes nothing.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 21_sched_worker_lost)
cx_stack_up "$dir" 0 --no-services
cd "$CX_STACK_DIR" # see 20_sched_flow.sh
rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }
fast=(--threads 1 --alive_ttl_ms 4000 --heartbeat_ms 300)

cx_service_start scheduler
cx_service_start gpu-worker-1 "${fast[@]}"
cx_wait_for '[ "$(rc EXISTS cx:worker:gpu-worker-1:alive)" = 1 ]' 60 \
    || cx_fail "gpu-worker-1 did not register"
pid1=$(cat "$CX_STACK_DIR/pids/gpu-worker-1.pid")
# A first unit runs normally: the scheduler's consumer group has joined
# and the worker is known, so the next unit is placed the moment it comes.
w=$("$CASCADE_BIN/cx-unitgen" "$dir/w.bin" job21 normal 0 9 2)
cx_cxdev produce cascade.units --key job21 --file "$dir/w.bin" >/dev/null
cx_wait_for '[ "$(rc HGET cx:unit:$w state)" = staged ]' 120 \
    || cx_fail "warm-up unit not staged"

u=$("$CASCADE_BIN/cx-unitgen" "$dir/u.bin" job21 normal 0 0 2)
kill -STOP "$pid1"
# Resume it on the way out, keeping the script's exit status for cleanup.
trap 'st=$?; set +e; kill -CONT "$pid1" 2>/dev/null; (exit $st); cx__cleanup' EXIT
cx_cxdev produce cascade.units --key job21 --file "$dir/u.bin" >/dev/null
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = leased ]' 60 || cx_fail "not leased"
cx_assert_eq "$(rc HGET cx:unit:$u worker)" gpu-worker-1 "first lease"
e1=$(rc HGET cx:unit:$u epoch)
t0=$(date +%s%N)
# Lease is 120 s; the alive key lasts 4 s.
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = pending ]' 20 \
    || cx_fail "lease of the frozen worker not failed"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 8000 ] || cx_fail "lost worker caught after ${ms} ms"
cx_assert_eq "$(rc HGET cx:unit:$u excluded)" gpu-worker-1 "excluded"
cx_log "lost worker caught after ${ms} ms"

cx_service_start gpu-worker-2 "${fast[@]}"
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = staged ]' 120 || cx_fail "not staged"
cx_assert_eq "$(rc HGET cx:unit:$u worker)" gpu-worker-2 "second lease"
cx_assert_eq "$(rc HGET cx:unit:$u attempt)" 2 "attempt"
e2=$(rc HGET cx:unit:$u epoch)
[ "$e2" -gt "$e1" ] || cx_fail "epoch $e2 not above $e1"

# The frozen worker resumes: either its partition went to gpu-worker-2 (it
# stops) or it reads its old Assignment and finds it stale.
kill -CONT "$pid1"
log1="$CX_STACK_DIR/logs/gpu-worker-1.log"
cx_wait_for "grep -Eq 'stale assignment skipped|partition claim lost' '$log1'" 30 \
    || cx_fail "resumed worker did not notice"
cx_assert_eq "$(rc HGET cx:unit:$u state)" staged "state after resume"
cx_assert_eq "$(rc HGET cx:unit:$u attempt)" 2 "attempt after resume"
[ ! -e "$(echo "$CASCADE_STORE_URI" | sed 's|^file://||')/job21/staging/$u/1" ] \
    || cx_fail "stale attempt wrote staging"
echo "21_sched_worker_lost: ok"
