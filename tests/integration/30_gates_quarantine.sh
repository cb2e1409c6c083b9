#!/usr/bin/env bash
# Quality gates with a calibrated profile, and blaming the hardware: one of
# three workers emits noisy samples (CASCADE_FAULT_NOISE, as a failing GPU
# would). Its samples fail the artifact gates, it is quarantined
# automatically (cx:quarantine:<w>, a WORKER_QUARANTINED job event), the
# scheduler stops sending it work, and the job still completes with exact
# per-class counts. cascadectl lists and releases the quarantine.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 30_gates_quarantine)
mkdir -p "$dir/profiles"

# A profile of the reference generator at the job's size and steps.
"$CASCADE_BIN/cxcalibrate" --model ref-cxr-v0 --per-class 150 --width 128 \
    --height 128 --steps 8 --seed 3 --out "$dir/profiles" --name ref128 \
    --log.level warn >"$dir/calibrate.log" \
    || { cat "$dir/calibrate.log" >&2; cx_fail "calibration failed"; }
cx_log "$(grep -E 'thresholds' "$dir/calibrate.log" | cut -c1-200)"

export CASCADE_PROFILE_DIR="$dir/profiles"
export CASCADE_QUARANTINE_MIN_SAMPLES=32
cx_stack_up "$dir" 2
# The faulty worker: same binary, noise added to everything it stages.
CASCADE_FAULT_NOISE=0.05 cx_service_start gpu-worker-2
unset CASCADE_PROFILE_DIR CASCADE_QUARANTINE_MIN_SAMPLES

job=it30
cat >"$dir/job.yaml" <<EOF
job_id: $job
tenant: tests
total: 480
unit_size: 16
classes:
  - {name: normal, proportion: 0.5}
  - {name: effusion, proportion: 0.5}
generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: 8, seed: 7, width: 128, height: 128, bit_depth: 16}
validation: {gate_profile: ref128}
EOF
cx_ctl submit "$dir/job.yaml" >/dev/null

cx_wait_for "[ \"\$(cx_rcli EXISTS cx:quarantine:gpu-worker-2)\" = 1 ]" 300 \
    || cx_fail "the noisy worker was not quarantined ($(cx_rcli HGETALL cx:gatestats:gpu-worker-2 | tr '\n' ' '))"
reason=$(cx_rcli HGET cx:quarantine:gpu-worker-2 reason)
cx_log "quarantined: $reason"
echo "$reason" | grep -q "gate failure rate" || cx_fail "reason does not say why: $reason"
[ "$(cx_rcli SISMEMBER cx:quarantined gpu-worker-2)" = 1 ] || cx_fail "not in cx:quarantined"
rate=$(cx_rcli HGET cx:quarantine:gpu-worker-2 failure_rate)
awk -v r="$rate" 'BEGIN { exit !(r > 0.5) }' || cx_fail "failure rate $rate"
# The artifact gates caught the noise.
hfr=$(cx_rcli HGET cx:gatestats:gpu-worker-2 fail:hf_ratio)
[ "${hfr:-0}" -gt 0 ] || cx_fail "no hf_ratio failures recorded for the noisy worker"
for w in gpu-worker-0 gpu-worker-1; do
    [ "$(cx_rcli EXISTS "cx:quarantine:$w")" = 0 ] || cx_fail "healthy $w quarantined"
done
cx_wait_for "cx_cxdev tail cascade.job-events --from-beginning --timeout-ms 2000 | grep 'job=$job' | grep -q 'type=WORKER_QUARANTINED'" 60 \
    || cx_fail "no WORKER_QUARANTINED event"
# The scheduler places nothing more on it: what it holds drains away.
cx_wait_for "[ \"\$(cx_rcli SCARD cx:worker:gpu-worker-2:inflight)\" = 0 ]" 120 \
    || cx_fail "the quarantined worker still holds units"

cx_wait_state "$job" DONE
out=$(cx_verify "$job" --complete) || { echo "$out" >&2; cx_fail "dataset of $job does not verify"; }
echo "$out" >&2
for kv in normal=240 effusion=240; do
    echo "$out" | grep -q "^class=${kv%%=*} files=${kv##*=} manifested=${kv##*=} index=${kv##*=} quota=${kv##*=}\$" \
        || cx_fail "class ${kv%%=*}: expected exactly ${kv##*=}"
done
echo "$out" | grep -q "size=128x128 depth=16 problems=0" || cx_fail "not 128x128 16-bit"
# Failed samples were replaced, not committed.
[ "$(cx_rcli HGET "cx:job:$job:committed" normal)" = 240 ] || cx_fail "index count"

# Alignment and privacy figures exist for the progress events.
[ -n "$(cx_rcli HGET "cx:job:$job:quality" fd:normal)" ] || cx_fail "no Frechet figure"
checked=$(cx_rcli HGET "cx:job:$job:privacy" checked)
[ "${checked:-0}" -ge 480 ] || cx_fail "privacy checked only ${checked:-0} samples"
[ "$(cx_rcli HGET "cx:job:$job:privacy" near)" = 0 ] || cx_fail "near-copies among fresh samples"

# Operators see it and let it go.
list=$(cx_ctl quarantine list) || cx_fail "quarantine list failed"
echo "$list" | grep -q gpu-worker-2 || cx_fail "quarantine list: $list"
cx_ctl quarantine release gpu-worker-2 >/dev/null || cx_fail "release failed"
[ "$(cx_rcli EXISTS cx:quarantine:gpu-worker-2)" = 0 ] || cx_fail "still quarantined"
[ "$(cx_rcli EXISTS cx:gatestats:gpu-worker-2)" = 0 ] || cx_fail "statistics not reset"
rc=0; cx_ctl quarantine release gpu-worker-2 >/dev/null 2>&1 || rc=$?
[ $rc -eq 1 ] || cx_fail "releasing twice: exit $rc, expected 1"
cx_ctl quarantine list | grep -q "no worker is quarantined" || cx_fail "list after release"
echo "PASS 30_gates_quarantine"
