#!/usr/bin/env bash
# Two jobs with different class mixes submitted together both finish
# exactly; a third cancelled mid-run stops, and what it committed stays
# intact and consistent.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 06_two_jobs)
cx_stack_up "$dir" 2
cx_job_file "$dir/a.yaml" job-a 96 "normal:0.75 nodule:0.25"
cx_job_file "$dir/b.yaml" job-b 80 "effusion:0.5 cardiomegaly:0.25 normal:0.25"
cx_job_file "$dir/c.yaml" job-c 3000 "normal:0.5 effusion:0.5"
cx_ctl submit "$dir/c.yaml" >/dev/null
cx_ctl submit "$dir/a.yaml" >/dev/null
cx_ctl submit "$dir/b.yaml" >/dev/null

cx_wait_for "[ \$(cx_committed_total job-c) -gt 0 ]" 300 || cx_fail "job-c never committed"
cx_ctl cancel job-c
cx_wait_state job-c CANCELLED 60

cx_wait_state job-a DONE
cx_wait_state job-b DONE
cx_expect_counts job-a "normal=72 nodule=24"
cx_expect_counts job-b "effusion=40 cardiomegaly=20 normal=20"

# job-c: once nothing of it is leased or pending any more, its dataset is
# consistent (files == manifests == index) and below its quota.
c_idle() {
    local u
    for u in $(cx_rcli ZRANGE cx:pending 0 -1) $(cx_rcli ZRANGE cx:leases 0 -1); do
        [ "$(cx_rcli HGET "cx:unit:$u" job)" = job-c ] && return 1
    done
    return 0
}
# Within 60 s, half the 120 s lease: a worker that skips a cancelled job's
# assignment ends its lease at once instead of letting it run out.
cx_wait_for c_idle 60 || cx_fail "job-c still has units pending or leased after cancel"
out=$(cx_verify job-c) || { echo "$out" >&2; cx_fail "job-c's committed data is not intact"; }
total=$(cx_committed_total job-c)
[ "$total" -gt 0 ] && [ "$total" -lt 3000 ] || cx_fail "job-c committed $total"
# Give any verdict still in flight its chance to commit: the committer must
# discard it, so the count stays put until every topic is drained.
drained() { cx_rcli ZCARD cx:leases | grep -qx 0; }
cx_wait_for drained 60 || true
[ "$(cx_committed_total job-c)" = "$total" ] || cx_fail "job-c kept committing after cancel"
cx_ctl status job-c | grep -qi cancel || cx_fail "status does not say cancelled"
echo "PASS 06_two_jobs_cancel"
