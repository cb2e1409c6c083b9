#!/usr/bin/env bash
# Invalid job files are rejected with a message naming the problem and
# nothing is written to the store; a bad JobSpec sent straight to Kafka is
# rejected by the planner with a JobEvent that says why.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 05_invalid)
cx_stack_up "$dir" 0

gen='generation: {checkpoint: ref-cxr-v0, steps: 8, width: 512, height: 512, bit_depth: 16}'
reject() { # name expected-text body...
    local name=$1 want=$2 f="$dir/$1.yaml" rc=0 out
    shift 2
    printf '%s\n' "$@" >"$f"
    out=$(cx_ctl submit "$f" 2>&1) || rc=$?
    [ $rc -eq 2 ] || cx_fail "$name: exit code $rc, expected 2 ($out)"
    echo "$out" | grep -qiF -- "$want" || cx_fail "$name: message does not name the problem: $out"
    cx_log "$name rejected: $out"
}
reject zero-count "count" "job_id: bad-zero" "classes:" "  - {name: normal, count: 0}" "$gen"
reject negative "count" "job_id: bad-neg" "classes:" "  - {name: normal, count: -5}" "$gen"
reject sum "sum" "job_id: bad-sum" "total: 100" "classes:" \
    "  - {name: normal, proportion: 0.5}" "  - {name: nodule, proportion: 0.4}" "$gen"
reject unknown-field "colour" "job_id: bad-field" "colour: blue" "classes:" "  - {name: normal, count: 5}" "$gen"
reject unknown-class "pneumonia" "job_id: bad-class" "classes:" "  - {name: pneumonia, count: 5}" "$gen"
reject slash "/" "job_id: bad-slash" "classes:" "  - {name: a/b, count: 5}" "$gen"
reject dotdot ".." "job_id: bad-dots" "classes:" "  - {name: '..', count: 5}" "$gen"
reject control "control" "job_id: bad-ctl" "classes:" '  - {name: "no\x01rm", count: 5}' "$gen"
reject huge-width "width" "job_id: bad-width" "classes:" "  - {name: normal, count: 5}" \
    "generation: {checkpoint: ref-cxr-v0, width: 100000, height: 512}"
reject huge-total "total" "job_id: bad-total" "total: 99999999999999" "classes:" "  - {name: normal, proportion: 1}" "$gen"
reject json-bad "count" '{"job_id": "bad-json", "classes": [{"name": "normal", "count": -1}]}'

# Straight to Kafka: a JobSpec (job_id "raw-bad", field 101) asking for a
# class (field 107: name, count 5) that the checkpoint does not have.
printf '\xaa\x06\x07raw-bad\xda\x06\x10\x0a\x0cpneumothorax\x10\x05' >"$dir/raw.bin"
cx_cxdev produce cascade.jobs --key raw-bad --file "$dir/raw.bin"
cx_wait_for "cx_cxdev tail cascade.job-events --from-beginning --timeout-ms 2000 | grep raw-bad | grep -q REJECTED" 60 \
    || cx_fail "planner did not reject the raw spec"
reason=$(cx_rcli HGET cx:job:raw-bad reason)
echo "$reason" | grep -q pneumothorax || cx_fail "rejection reason does not name the problem: $reason"

# Nothing reached the store.
n=$(find "$(cx_store_dir)" -type f | wc -l)
cx_assert_eq "$n" 0 "files written for rejected jobs"
echo "PASS 05_invalid_jobs"
