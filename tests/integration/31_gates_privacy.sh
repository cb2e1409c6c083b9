#!/usr/bin/env bash
# The privacy gate and the job's privacy budget, end to end, plus the ways a
# job's gates can be wrong:
# - job A runs with the built-in gates; its committed dataset becomes the
#   training set of profile "memo" (cxcalibrate --train);
# - job B asks for exactly A's samples (same seeds) under "memo": every
#   sample is a copy of a training record, the budget runs out, and the job
#   stops and says so (PRIVACY_BUDGET_EXCEEDED, state CANCELLED, reason);
# - thresholds out of range are refused by cascadectl (exit 2) and by the
#   planner (REJECTED event naming the threshold);
# - a job naming a malformed profile is stopped (GATES_HALTED) with the
#   loader's reason, and its batches are dead-lettered, not guessed at.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 31_gates_privacy)
mkdir -p "$dir/profiles"
export CASCADE_PROFILE_DIR="$dir/profiles"
cx_stack_up "$dir" 2
unset CASCADE_PROFILE_DIR

job_file() { # PATH JOB_ID VALIDATION
    cat >"$1" <<EOF
job_id: $2
tenant: tests
total: 160
unit_size: 16
classes:
  - {name: normal, proportion: 0.5}
  - {name: effusion, proportion: 0.5}
generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: 8, seed: 11, width: 128, height: 128, bit_depth: 16}
$3
EOF
}
events() { cx_cxdev tail cascade.job-events --from-beginning --timeout-ms 2000; }

# A: the training set.
job_file "$dir/a.yaml" it31-a ""
cx_ctl submit "$dir/a.yaml" >/dev/null
cx_wait_state it31-a DONE
store=$(cx_store_dir)
for c in normal effusion; do
    mkdir -p "$dir/train/$c"
    find "$store/it31-a/data/$c" -name '*.png' -exec ln -s {} "$dir/train/$c/" \;
done
"$CASCADE_BIN/cxcalibrate" --train "$dir/train" --out "$dir/profiles" \
    --name memo --log.level warn >"$dir/calibrate.log" \
    || { cat "$dir/calibrate.log" >&2; cx_fail "calibration failed"; }
grep -q "class normal: 80 rows" "$dir/calibrate.log" || cx_fail "training set: $(cat "$dir/calibrate.log")"

# B: A's samples again, under a profile that has them as training records.
job_file "$dir/b.yaml" it31-b "validation: {gate_profile: memo, privacy_budget: 0.05}"
cx_ctl submit "$dir/b.yaml" >/dev/null
cx_wait_state it31-b CANCELLED 300
reason=$(cx_rcli HGET cx:job:it31-b reason)
cx_log "it31-b stopped: $reason"
echo "$reason" | grep -q "privacy budget exceeded" || cx_fail "reason: $reason"
cx_wait_for "events | grep 'job=it31-b' | grep -q 'type=PRIVACY_BUDGET_EXCEEDED'" 60 \
    || cx_fail "no PRIVACY_BUDGET_EXCEEDED event"
near=$(cx_rcli HGET cx:job:it31-b:privacy near)
[ "${near:-0}" -gt 5 ] || cx_fail "near-copies counted: ${near:-0}"
# Nothing of B passed: every sample was a near-copy.
[ "$(cx_committed_total it31-b)" = 0 ] || cx_fail "it31-b committed copies"

# Thresholds out of range: cascadectl refuses locally...
for t in "max_clip: 2" "max_speed: 1" "min_hf_ratio: 0.5, max_hf_ratio: 0.1"; do
    job_file "$dir/t.yaml" it31-t "validation: {gate_profile: memo, thresholds: {$t}}"
    rc=0; out=$(cx_ctl submit "$dir/t.yaml" 2>&1) || rc=$?
    [ $rc -eq 2 ] || cx_fail "thresholds {$t}: exit $rc ($out)"
    echo "$out" | grep -q "threshold" || cx_fail "thresholds {$t}: $out"
    cx_log "rejected {$t}: $out"
done
# ...and so does the planner, for a JobSpec sent straight to Kafka: job
# "raw-thr" (field 101), class normal x 5 (107), validation (109) with
# thresholds {max_clip: 2.0}.
printf '\xaa\x06\x07raw-thr\xda\x06\x0a\x0a\x06normal\x10\x05\xea\x06\x15\x12\x13\x0a\x08max_clip\x11\x00\x00\x00\x00\x00\x00\x00\x40' >"$dir/raw.bin"
cx_cxdev produce cascade.jobs --key raw-thr --file "$dir/raw.bin"
cx_wait_for "events | grep 'job=raw-thr' | grep 'type=REJECTED' | grep -q max_clip" 60 \
    || cx_fail "planner did not reject raw-thr: $(events | grep raw-thr)"

# A malformed profile stops the job that names it, with the reason.
echo '{"format": "cascade-gate-profile", "version": 1, "name": "broken"}' >"$dir/profiles/broken.json"
job_file "$dir/c.yaml" it31-c "validation: {gate_profile: broken}"
cx_ctl submit "$dir/c.yaml" >/dev/null
cx_wait_state it31-c CANCELLED 300
reason=$(cx_rcli HGET cx:job:it31-c reason)
echo "$reason" | grep -q "gate profile broken" || cx_fail "reason: $reason"
cx_wait_for "events | grep 'job=it31-c' | grep -q 'type=GATES_HALTED'" 60 \
    || cx_fail "no GATES_HALTED event"
cx_wait_for "cx_cxdev tail cascade.deadletter --from-beginning --timeout-ms 2000 | grep -q 'gate profile broken'" 60 \
    || cx_fail "batches of it31-c not dead-lettered"
echo "PASS 31_gates_privacy"
