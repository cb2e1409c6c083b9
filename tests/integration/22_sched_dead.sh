#!/usr/bin/env bash
# A unit that fails on every worker (a class its checkpoint does not know)
# is retried on the other worker, then on any, and after max_attempts (3)
# is dead: marked 'd' in cx:job:<job>:resolved with its samples counted in
# resolved_n, sent to cascade.deadletter and announced as UNIT_DEADLETTERED.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 22_sched_dead)
cx_stack_up "$dir" 0 --no-services
cd "$CX_STACK_DIR" # see 20_sched_flow.sh
rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }

cx_service_start scheduler
cx_service_start gpu-worker-1 --threads 1
cx_service_start gpu-worker-2 --threads 1
cx_wait_for '[ "$(rc ZCARD cx:workers)" = 2 ]' 60 || cx_fail "workers did not register"

u=$("$CASCADE_BIN/cx-unitgen" "$dir/u.bin" job22 no-such-class 0 0 5)
cx_cxdev produce cascade.units --key job22 --file "$dir/u.bin" >/dev/null
cx_wait_for '[ "$(rc HGET cx:unit:$u state)" = dead ]' 120 || cx_fail "not dead"
cx_assert_eq "$(rc HGET cx:unit:$u attempt)" 3 "attempts"
ex=$(rc HGET cx:unit:$u excluded)
case $ex in gpu-worker-1,gpu-worker-2|gpu-worker-2,gpu-worker-1) ;;
    *) cx_fail "excluded '$ex': the second attempt should use the other worker" ;;
esac
cx_assert_eq "$(rc HGET cx:job:job22:resolved $u)" d "resolved"
cx_assert_eq "$(rc HGET cx:job:job22:resolved_n no-such-class)" 5 "resolved_n"
cx_assert_eq "$(rc ZCARD cx:pending)" 0 "pending"
cx_assert_eq "$(rc ZCARD cx:leases)" 0 "leases"

dl=$(cx_cxdev tail cascade.deadletter --from-beginning --max 1 --timeout-ms 30000)
case $dl in *"source=cascade.units"*"service=scheduler"*"unit=$u"*) ;;
    *) cx_fail "dead letter: $dl" ;;
esac
ev=$(cx_cxdev tail cascade.job-events --from-beginning --max 1 --timeout-ms 30000)
case $ev in *UNIT_DEADLETTERED*"$u"*) ;; *) cx_fail "job event: $ev" ;; esac
echo "22_sched_dead: ok"
