#!/usr/bin/env bash
# kill -9 a gpu-worker in the middle of a unit: the unit is re-issued to
# another worker (attempt 2) and the final counts are still exact.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 02_kill_worker)
cx_stack_up "$dir" 3
# Steps so that a unit of 16 takes seconds (cx_kill_steps); which units
# were cut short is read from the victim's log below.
cx_job_file "$dir/job.yaml" kill-worker 300 "normal:0.4 effusion:0.35 nodule:0.25" "$(cx_kill_steps)"
cx_ctl submit "$dir/job.yaml" >/dev/null

# Units of the job that worker NAME's log says it started and never staged.
cut_short() {
    awk '/ job_id=kill-worker / && match($0, / unit_id=[0-9a-f]+/) {
             u = substr($0, RSTART + 9, RLENGTH - 9)
             if (/ unit started /) open[u] = 1
             else if (/ unit staged /) delete open[u]
         }
         END { for (u in open) print u }' "$CX_STACK_DIR/logs/$1.log"
}
# A worker in the middle of a unit right now, once the pipeline has
# committed something (so the kill lands mid-run, not before it).
cx_wait_for "[ \$(cx_committed_total kill-worker) -gt 0 ]" 300 || cx_fail "nothing committed"
name=
busy_worker() {
    local w
    for w in gpu-worker-0 gpu-worker-1 gpu-worker-2; do
        if [ -n "$(cut_short "$w")" ]; then
            name=$w; return 0
        fi
    done
    return 1
}
# (cx_wait_for evaluates in this shell: busy_worker's $name stays set.)
cx_wait_for busy_worker 120 || cx_fail "no worker in the middle of a unit"
victim=$(grep -o -m1 'worker running worker=[^ ]*' "$CX_STACK_DIR/logs/$name.log" | cut -d= -f2 || true)
[ -n "$victim" ] || cx_fail "no worker id in $name's log"
cx_log "killing $name ($victim)"
cx_service_kill "$name" -9
# What it had started and not staged when it died (its log is complete
# now): those units were cut short mid-generation.
units=$(cut_short "$name")
[ -n "$units" ] || cx_fail "$name finished its unit before the kill landed"
cx_log "$name died in the middle of: $units"

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
