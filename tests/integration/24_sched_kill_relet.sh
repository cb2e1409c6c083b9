#!/usr/bin/env bash
# kill -9 of a gpu-worker in the middle of a unit: no goodbye, so the unit
# is caught when the worker's alive key lapses (2 s here, far sooner than
# its 120 s lease), failed with the killed worker excluded, re-leased to
# the other worker as attempt 2 with a new epoch, and staged there. The
# learned throughput of the finished unit is kept in cx:tput.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 24_sched_kill_relet)
cx_stack_up "$dir" 0 --no-services
cd "$CX_STACK_DIR" # see 20_sched_flow.sh
rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }
fast=(--threads 1 --alive_ttl_ms 2000 --heartbeat_ms 300)

cx_service_start scheduler --eta_ms 500
cx_service_start gpu-worker-1 "${fast[@]}"
cx_service_start gpu-worker-2 "${fast[@]}"
cx_wait_for '[ "$(rc ZCARD cx:workers)" = 2 ]' 60 || cx_fail "workers did not register"

# 8 samples of 512x512 at 50 steps: seconds of work on one thread, so
# the kill lands mid-unit, and the second attempt is soon done.
u=$("$CASCADE_BIN/cx-unitgen" "$dir/u.bin" job24 normal 0 0 8 ref-cxr-v0 512 50)
cx_cxdev produce cascade.units --key job24 --file "$dir/u.bin" >/dev/null
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = leased ]' 60 || cx_fail "not leased"
victim=$(rc HGET cx:unit:$u worker)
case $victim in gpu-worker-1) other=gpu-worker-2 ;; gpu-worker-2) other=gpu-worker-1 ;;
    *) cx_fail "leased to '$victim'" ;; esac
e1=$(rc HGET cx:unit:$u epoch)
cx_wait_for "grep -q 'unit started.*$u' '$CX_STACK_DIR/logs/$victim.log'" 60 \
    || cx_fail "unit not started on $victim"
t0=$(date +%s%N)
cx_service_kill "$victim" -9

cx_wait_for '[ "$(rc HGET cx:unit:$u worker)" = '"$other"' ]' 30 \
    || cx_fail "unit not re-leased to $other"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 10000 ] || cx_fail "re-leased only after ${ms} ms"
cx_log "re-leased to $other ${ms} ms after the kill"
cx_assert_eq "$(rc HGET cx:unit:$u attempt)" 2 "attempt"
cx_assert_eq "$(rc HGET cx:unit:$u excluded)" "$victim" "excluded"
e2=$(rc HGET cx:unit:$u epoch)
[ "$e2" -gt "$e1" ] || cx_fail "epoch $e2 not above $e1"
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = staged ]' 180 || cx_fail "not staged"
cx_assert_eq "$(rc HGET cx:unit:$u worker)" "$other" "staged by"
# The second attempt's run time was learned (unit type x GPU type "cpu").
cx_wait_for '[ -n "$(rc HGET cx:tput "ref-cxr-v0|512x512|50|cpu")" ]' 30 \
    || cx_fail "no learned rate in cx:tput: $(rc HGETALL cx:tput)"
n=$(rc HGET cx:tput "ref-cxr-v0|512x512|50|cpu" | awk '{print $3}')
cx_assert_eq "$n" 1 "observations"
echo "24_sched_kill_relet: ok"
