#!/usr/bin/env bash
# Garbage bytes, a valid protobuf of the wrong type and an empty message on
# every topic a service consumes: every service keeps running, each message
# lands in cascade.deadletter with its source and a reason, and a job sent
# in the middle of it all still completes exactly.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 04_deadletter)
cx_stack_up "$dir" 2
cx_job_file "$dir/job.yaml" dlq-job 96 "normal:0.5 nodule:0.5"
cx_ctl submit "$dir/job.yaml" >/dev/null

# Hand-built protobufs. Field numbers are per message type (cascade.proto):
# a CommitRecord (field 601, job_id) and a JobSpec (field 101, job_id).
printf '\xca\x25\x07dlq-job' >"$dir/commit.bin"
printf '\xaa\x06\x07dlq-job' >"$dir/jobspec.bin"
head -c 300 /dev/urandom >"$dir/garbage.bin"
# Garbage must not be a JobSpec by accident: start with an invalid tag.
printf '\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01' | cat - "$dir/garbage.bin" >"$dir/garbage2.bin"
: >"$dir/empty.bin"

# Which partition of cascade.dispatch does a live worker read?
w=$(cx_rcli ZRANGE cx:workers 0 0)
part=$(cx_rcli HGET "cx:worker:$w" partition)

inject() { # topic wrongtype [partition]
    local t=$1 wrong=$2 p=${3:-} f args=()
    [ -n "$p" ] && args=(--partition "$p")
    for f in garbage2 "$wrong" empty; do
        cx_cxdev produce "$t" --key dlq-job "${args[@]}" --file "$dir/$f.bin" \
            || cx_fail "cannot produce to $t"
    done
}
inject cascade.jobs commit
inject cascade.progress commit
inject cascade.units commit
inject cascade.dispatch commit "$part"
inject cascade.staged jobspec
inject cascade.verdicts jobspec
inject cascade.commits jobspec
topics="cascade.jobs cascade.progress cascade.units cascade.dispatch cascade.staged cascade.verdicts cascade.commits"

dl="$dir/deadletters.txt"
all_dead_lettered() {
    cx_cxdev tail cascade.deadletter --from-beginning --timeout-ms 3000 >"$dl" 2>/dev/null || true
    local t
    for t in $topics; do
        [ "$(grep -c "source=$t " "$dl")" -ge 3 ] || return 1
    done
}
cx_wait_for all_dead_lettered 120 || { cat "$dl" >&2; cx_fail "not every bad message was dead-lettered"; }
grep -v 'reason=""' "$dl" | grep -c reason= >/dev/null || cx_fail "dead letters without a reason"
# An empty message is named as such.
grep -q 'reason=".*empty' "$dl" || cx_fail "no dead letter says the message was empty"

cx_wait_state dlq-job DONE
cx_expect_counts dlq-job "normal=48 nodule=48"
for s in planner scheduler validator committer indexer gpu-worker-0 gpu-worker-1; do
    cx_alive "$s" || cx_fail "$s died"
done
echo "PASS 04_deadletter"
