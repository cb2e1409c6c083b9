#!/usr/bin/env bash
# The planner against a real broker and Redis (no other services):
# - cascadectl submit -> ACCEPTED; the units arrive on cascade.units with the
#   ids cx_unit_id gives (job\0class\0ordinal\0generation) and exact counts;
#   the planner's Redis state records what it issued; nothing more is issued.
# - a shortfall (a unit committed short, as the indexer would count it) gets a
#   replacement unit of generation 1 and a REPLACEMENT_ISSUED event.
# - every quota met -> dataset.json, DONE, state DONE, removed from cx:jobs.
# - an invalid spec -> REJECTED naming the reason; the same id with another
#   spec -> "job id already in use"; garbage -> cascade.deadletter.
# - cancel -> CANCELLED.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
here=$(cd "$(dirname "$0")/../.." && pwd)

dir=$(cx_tmpdir 10_planner_units)
cx_stack_up "$dir" 0 --no-services
cx_service_start planner --reconcile-ms 300
ctl() { "$CASCADE_BIN/cascadectl" "$@"; }
rcli() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }
uid() { printf '%s\0%s\0%s\0%s' "$1" "$2" "$3" "$4" | sha256sum | cut -c1-32; }
events() { cx_cxdev tail cascade.job-events --from-beginning --timeout-ms 1500 || true; }

job=it10-small
{ echo "job_id: $job"; cat "$here/examples/jobs/small.yaml"; } >"$dir/small.yaml"
got=$(ctl submit "$dir/small.yaml") || cx_fail "submit failed"
cx_assert_eq "$got" "$job" "submit prints the job id"

cx_wait_for "events | grep -q 'type=ACCEPTED job=$job'" 60 || cx_fail "$job not accepted"

# quotas 120/105/75 in units of 32: 4 + 4 + 3 units
cx_wait_for "[ \"\$(rcli hget cx:job:$job:next_ordinal nodule)\" = 3 ]" 60 \
    || cx_fail "issued units not recorded"
units=$(cx_cxdev tail cascade.units --from-beginning --max 11 --timeout-ms 30000) \
    || cx_fail "fewer than 11 units on cascade.units"
cx_assert_eq "$(grep -c " key=$job " <<<"$units")" 11 "units keyed by job id"
for spec in normal:4 effusion:4 nodule:3; do
    cls=${spec%:*} n=${spec#*:}
    for ((o = 0; o < n; o++)); do
        id=$(uid "$job" "$cls" "$o" 0)
        grep -q "$id" <<<"$units" || cx_fail "unit $cls/$o ($id) missing"
    done
    cx_assert_eq "$(rcli hget cx:job:$job:next_ordinal "$cls")" "$n" "$cls next_ordinal"
done
cx_assert_eq "$(rcli hget cx:job:$job:issued normal)" 120 "normal issued"
cx_assert_eq "$(rcli hget cx:job:$job:issued effusion)" 105 "effusion issued"
cx_assert_eq "$(rcli hget cx:job:$job:issued nodule)" 75 "nodule issued"
cx_assert_eq "$(rcli hget cx:job:$job:quota effusion)" 105 "effusion quota"
cx_assert_eq "$(rcli sismember cx:jobs $job)" 1 "job active"
# The first unit of each class comes before any second unit (interleaved).
first3=$(head -3 <<<"$units")
for cls in normal effusion nodule; do
    grep -q "$(uid "$job" "$cls" 0 0)" <<<"$first3" || cx_fail "units not interleaved"
done
# Several reconciles later, still exactly 11 units (level-triggered, idempotent).
if cx_cxdev tail cascade.units --from-beginning --max 12 --timeout-ms 2500 >/dev/null; then
    cx_fail "units issued twice"
fi
ctl status "$job" | grep -Eq '^normal +0 +120 ' || cx_fail "status output: $(ctl status "$job")"
# The same JobSpec bytes delivered again (a crash between storing the job
# and sending its event) are accepted again, never duplicated: a second
# ACCEPTED event and still exactly 11 units.
rcli --raw hget cx:job:$job spec | head -c -1 >"$dir/spec.bin"
cx_cxdev produce cascade.jobs --key "$job" --file "$dir/spec.bin" >/dev/null
cx_wait_for "[ \"\$(events | grep -c 'type=ACCEPTED job=$job')\" = 2 ]" 60 \
    || cx_fail "replayed spec not accepted again: $(events)"
if cx_cxdev tail cascade.units --from-beginning --max 12 --timeout-ms 2500 >/dev/null; then
    cx_fail "replayed spec issued units twice"
fi

# The indexer counts normal's unit 0 committed with 30 of 32: 2 short.
rcli hset cx:job:$job:resolved "$(uid "$job" normal 0 0)" c >/dev/null
rcli hincrby cx:job:$job:committed normal 30 >/dev/null
rcli hincrby cx:job:$job:resolved_n normal 32 >/dev/null
repl=$(uid "$job" normal 4 1)
cx_wait_for "cx_cxdev tail cascade.units --from-beginning --max 12 --timeout-ms 2000 | grep -q $repl" 30 \
    || cx_fail "no replacement unit $repl"
cx_wait_for "events | grep -q 'type=REPLACEMENT_ISSUED job=$job message=\"1 replacement units, 2 samples'" 30 \
    || cx_fail "no REPLACEMENT_ISSUED event: $(events)"
cx_assert_eq "$(rcli hget cx:job:$job:round normal)" 1 "normal round"
cx_assert_eq "$(rcli hget cx:job:$job:issued normal)" 122 "normal issued after replacement"

# Every quota met: DONE with dataset.json.
rcli hset cx:job:$job:committed normal 120 effusion 105 nodule 75 >/dev/null
cx_wait_for "[ \"\$(rcli hget cx:job:$job state)\" = DONE ]" 30 || cx_fail "job not DONE"
ds="${CASCADE_STORE_URI#file://}/$job/dataset.json"
[ -f "$ds" ] || cx_fail "no $ds"
grep -q '"total":[[:space:]]*300' "$ds" || cx_fail "dataset.json total: $(cat "$ds")"
grep -q '"job_id":[[:space:]]*"'"$job"'"' "$ds" || cx_fail "dataset.json job_id"
events | grep -q "type=DONE job=$job" || cx_fail "no DONE event"
cx_assert_eq "$(rcli sismember cx:jobs $job)" 0 "done job inactive"
ctl status "$job" --json | grep -q '"state":[[:space:]]*"DONE"' || cx_fail "status --json"

# The same id with another spec is refused without touching the job.
sed 's/^total: 300/total: 600/' "$dir/small.yaml" >"$dir/other.yaml"
ctl submit "$dir/other.yaml" >/dev/null
cx_wait_for "events | grep -q 'type=REJECTED job=$job message=\"job id already in use\"'" 30 \
    || cx_fail "reused id not rejected: $(events)"
cx_assert_eq "$(rcli hget cx:job:$job state)" DONE "reused id left the job alone"

# An invalid spec sent by a raw producer (cascadectl would refuse it):
# job_id it10-bad, total 10, one class "pneumothorax" (not in ref-cxr-v0).
printf '\xaa\x06\x08it10-bad\xd0\x06\x0a\xda\x06\x17\x0a\x0cpneumothorax\x19\x00\x00\x00\x00\x00\x00\xf0\x3f\xe2\x06\x0c\x0a\x0aref-cxr-v0' \
    >"$dir/bad.bin"
cx_cxdev produce cascade.jobs --key it10-bad --file "$dir/bad.bin"
cx_wait_for "events | grep 'type=REJECTED job=it10-bad' | grep -q pneumothorax" 30 \
    || cx_fail "bad spec not rejected with a reason: $(events)"
cx_assert_eq "$(rcli hget cx:job:it10-bad state)" REJECTED "rejected state"
rcli hget cx:job:it10-bad reason | grep -q pneumothorax || cx_fail "reason not recorded"
[ ! -e "${CASCADE_STORE_URI#file://}/it10-bad" ] || cx_fail "rejected job wrote to the store"
ctl status it10-bad | grep -q '^reason: .*pneumothorax' || cx_fail "status shows no reason"

# Garbage goes to the dead letter topic; the planner goes on.
printf 'not a protobuf \xff\xff' | cx_cxdev produce cascade.jobs --key junk
cx_wait_for "cx_cxdev tail cascade.deadletter --from-beginning --timeout-ms 1500 | grep -q 'service=planner'" 30 \
    || cx_fail "garbage not dead-lettered"

# Cancel.
{ echo "job_id: it10-cancel"; cat "$here/examples/jobs/small.yaml"; } >"$dir/c.yaml"
ctl submit "$dir/c.yaml" >/dev/null
cx_wait_for "[ \"\$(rcli hget cx:job:it10-cancel state)\" = ACCEPTED ]" 30 || cx_fail "it10-cancel not accepted"
ctl cancel it10-cancel | grep -q "cancel requested" || cx_fail "cancel output"
cx_wait_for "[ \"\$(rcli hget cx:job:it10-cancel state)\" = CANCELLED ]" 30 || cx_fail "not cancelled"
events | grep -q "type=CANCELLED job=it10-cancel" || cx_fail "no CANCELLED event"
out=$(ctl watch it10-cancel --timeout 10) && cx_fail "watch of a cancelled job exits 0"
grep -q CANCELLED <<<"$out" || cx_fail "watch summary: $out"
rc=0; ctl status no-such-job 2>/dev/null || rc=$?
cx_assert_eq "$rc" 1 "status of an unknown job"

"$CX_STACK_SH" status "$dir" >/dev/null || cx_fail "a process died"
echo "10_planner_units: ok"
