#!/usr/bin/env bash
# kill -9 the scheduler twice in the middle of a job (once right after it
# placed work, once while units are in flight) and start it again: it
# rebuilds its in-memory index from Redis (pending units, leases, workers,
# learned rates) and the job still ends exactly, with no unit leased to two
# workers at once and every lease accounted for.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 26_sched_restart)
cx_stack_up "$dir" 2
# Units take seconds (cx_kill_steps), so each kill finds units leased and
# in flight.
cx_job_file "$dir/job.yaml" sched-restart 360 "normal:0.4 effusion:0.35 nodule:0.25" "$(cx_kill_steps)"
cx_ctl submit "$dir/job.yaml" >/dev/null

rebuilds() { grep -c 'index rebuilt' "$CX_STACK_DIR/logs/scheduler.log" || true; }
for step in 60 180; do
    n=$(rebuilds)
    cx_wait_for "[ \$(cx_committed_total sched-restart) -ge $step ]" 300 \
        || cx_fail "stalled before killing the scheduler"
    [ "$(cx_job_state sched-restart)" != DONE ] || cx_fail "job done before the kill"
    cx_log "kill -9 scheduler at $(cx_committed_total sched-restart) committed," \
        "$(cx_rcli ZCARD cx:leases) leased"
    cx_service_kill scheduler -9
    cx_service_start scheduler
    cx_wait_for "[ \$(rebuilds) -gt $n ]" 60 \
        || cx_fail "scheduler did not rebuild its index"
done
grep 'index rebuilt' "$CX_STACK_DIR/logs/scheduler.log" | tail -n 1 >&2
cx_wait_state sched-restart DONE
cx_expect_counts sched-restart "normal=144 effusion=126 nodule=90"
# Every unit's lease ended: nothing left leased or pending for this job.
cx_assert_eq "$(cx_rcli ZCARD cx:leases)" 0 "leases left"
echo "PASS 26_sched_restart"
