#!/usr/bin/env bash
# kill -9 a gpu-worker in the middle of a unit: the unit is re-issued to
# another worker (attempt 2) and the final counts are still exact.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 02_kill_worker)
cx_stack_up "$dir" 3
cx_job_file "$dir/job.yaml" kill-worker 300 "normal:0.4 effusion:0.35 nodule:0.25" 40
cx_ctl submit "$dir/job.yaml" >/dev/null

# A worker that holds a lease right now, after the pipeline has committed
# something (so the kill lands mid-run, not before it).
cx_wait_for "[ \$(cx_committed_total kill-worker) -gt 0 ]" 300 || cx_fail "nothing committed"
victim=
busy_worker() {
    local w
    for w in $(cx_rcli ZRANGE cx:workers 0 -1); do
        if [ "$(cx_rcli SCARD "cx:worker:$w:inflight")" -gt 0 ]; then
            victim=$w; return 0
        fi
    done
    return 1
}
cx_wait_for busy_worker 120 || cx_fail "no worker with a unit in flight"
busy_worker
units=$(cx_rcli SMEMBERS "cx:worker:$victim:inflight")
name=$(grep -l -- "$victim" "$dir"/logs/gpu-worker-*.log | head -1 | xargs basename | sed 's/\.log$//')
[ -n "$name" ] || cx_fail "cannot map worker $victim to its process"
cx_log "killing $name ($victim) holding: $units"
cx_service_kill "$name" -9

cx_wait_state kill-worker DONE
cx_expect_counts kill-worker "normal=120 effusion=105 nodule=75"
# The units it held were finished by another worker in a later attempt.
for u in $units; do
    attempt=$(cx_rcli HGET "cx:unit:$u" attempt)
    worker=$(cx_rcli HGET "cx:unit:$u" worker)
    [ "${attempt:-0}" -ge 2 ] || cx_fail "unit $u was not re-issued (attempt $attempt)"
    [ "$worker" != "$victim" ] || cx_fail "unit $u went back to the dead worker"
done
echo "PASS 02_kill_worker"
