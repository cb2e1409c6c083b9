#!/usr/bin/env bash
# Scheduler and two gpu-workers without a planner: units produced to
# cascade.units are placed on both workers (distinct dispatch partitions),
# staged exactly once each with their samples in staging, and a duplicate
# unit (a planner retry) changes nothing; a malformed message is
# dead-lettered.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 20_sched_flow)
cx_stack_up "$dir" 0 --no-services
# stack.sh start-service checks the new process's cwd right after spawning
# it, possibly before its `cd DIR` ran: start from DIR so the check holds.
cd "$CX_STACK_DIR"
cx_service_start scheduler
cx_service_start gpu-worker-1 --threads 1
cx_service_start gpu-worker-2 --threads 1

rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }
store=${CASCADE_STORE_URI#file://}

cx_wait_for '[ "$(rc ZCARD cx:workers)" = 2 ]' 60 || cx_fail "workers did not register"
p1=$(rc HGET cx:worker:gpu-worker-1 partition)
p2=$(rc HGET cx:worker:gpu-worker-2 partition)
[ -n "$p1" ] && [ -n "$p2" ] && [ "$p1" != "$p2" ] || cx_fail "partitions '$p1' '$p2'"
cx_assert_eq "$(rc GET cx:dispatch:partition:$p1)" gpu-worker-1 "claim of $p1"

units=()
produce() { # class class_index ordinal samples
    local id
    id=$("$CASCADE_BIN/cx-unitgen" "$dir/u.bin" job20 "$1" "$2" "$3" "$4")
    cx_cxdev produce cascade.units --key job20 --file "$dir/u.bin" >/dev/null \
        || cx_fail "produce failed"
    echo "$id"
}
for ord in 0 1 2; do
    units+=("$(produce normal 0 $ord 3)")
    units+=("$(produce nodule 1 $ord 3)")
done
all_staged() {
    local u
    for u in "$@"; do [ "$(rc HGET cx:unit:$u state)" = staged ] || return 1; done
}
cx_wait_for 'all_staged "${units[@]}"' 180 || cx_fail "units not staged"

declare -A by_worker=()
for u in "${units[@]}"; do
    cx_assert_eq "$(rc HGET cx:unit:$u attempt)" 1 "attempt of $u"
    w=$(rc HGET cx:unit:$u worker)
    by_worker[$w]=1
    for i in 0 1 2; do
        [ -s "$store/job20/staging/$u/1/$i.png" ] || cx_fail "missing sample $u/$i"
    done
done
cx_assert_eq "${#by_worker[@]}" 2 "workers that ran units"
cx_assert_eq "$(rc ZCARD cx:pending)" 0 "pending"
cx_assert_eq "$(rc ZCARD cx:leases)" 0 "leases"

# A duplicate of the first unit, then a new one behind it on the same
# partition: once the new one is staged the duplicate has been seen.
printf 'not a work unit' | cx_cxdev produce cascade.units --key job20 >/dev/null
dup=$(produce normal 0 0 3)
cx_assert_eq "$dup" "${units[0]}" "duplicate id"
last=$(produce normal 0 3 3)
cx_wait_for "all_staged $last" 120 || cx_fail "last unit not staged"
cx_assert_eq "$(rc HGET cx:unit:$dup attempt)" 1 "duplicate re-ran"
# (tail exits non-zero when it read fewer than --max: expected here)
n=$({ cx_cxdev tail cascade.staged --from-beginning --max 100 \
        --timeout-ms 3000 2>/dev/null || true; } | wc -l)
cx_assert_eq "$n" 7 "staged batches"
# The malformed message was dead-lettered and the scheduler went on.
dl=$(cx_cxdev tail cascade.deadletter --from-beginning --max 1 --timeout-ms 30000)
case $dl in *"source=cascade.units"*"service=scheduler"*) ;;
    *) cx_fail "dead letter: $dl" ;;
esac
echo "20_sched_flow: ok"
