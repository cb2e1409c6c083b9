#!/usr/bin/env bash
# kill -9 and restart the validator, the committer and the indexer mid-run:
# the job still ends with exact counts (at-least-once delivery, idempotent
# effects: nothing lost, nothing counted twice).
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 03_kill_services)
cx_stack_up "$dir" 2
# Generation stays the slowest stage (cx_kill_steps), so commits trickle
# in and each kill (at 60, 120, 180 of 360) lands mid-run.
cx_job_file "$dir/job.yaml" kill-svc 360 "normal:0.4 effusion:0.35 nodule:0.25" "$(cx_kill_steps)"
cx_ctl submit "$dir/job.yaml" >/dev/null

step=60
for svc in validator committer indexer; do
    cx_wait_for "[ \$(cx_committed_total kill-svc) -ge $step ]" 300 \
        || cx_fail "stalled before killing $svc"
    [ "$(cx_job_state kill-svc)" != DONE ] || cx_fail "job done before killing $svc"
    cx_log "kill -9 $svc at $(cx_committed_total kill-svc) committed"
    cx_service_kill "$svc" -9
    cx_service_start "$svc"
    step=$((step + 60))
done
cx_wait_state kill-svc DONE
cx_expect_counts kill-svc "normal=144 effusion=126 nodule=90"
echo "PASS 03_kill_services"
