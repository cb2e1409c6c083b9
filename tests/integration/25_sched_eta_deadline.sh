#!/usr/bin/env bash
# Estimates and deadlines through the whole pipeline: a job due in 20 s
# that needs minutes on one CPU worker is reported early: the scheduler
# publishes its ETA with an interval (cx:job:<job>:eta), announces
# DEADLINE_AT_RISK on cascade.job-events before the deadline, the
# indexer's Progress messages carry the estimate, `cascadectl watch` shows
# it, and once the deadline passes unmet, DEADLINE_MISSED follows.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 25_sched_eta_deadline)
cx_stack_up "$dir" 0 --no-services
cd "$CX_STACK_DIR" # see 20_sched_flow.sh
rc() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }
ctl() { "$CASCADE_BIN/cascadectl" --kafka.brokers "$CASCADE_KAFKA_BROKERS" \
            --redis.url "$CASCADE_REDIS_URL" "$@"; }
events() { cx_cxdev tail cascade.job-events --from-beginning --max 100 \
               --timeout-ms 1500 2>/dev/null || true; }

for s in planner validator committer indexer; do cx_service_start "$s"; done
cx_service_start scheduler --eta_ms 500 --jobs_ms 500
cx_service_start gpu-worker-1 --threads 1

job=job25
deadline=$(( $(date +%s) * 1000 + 20000 ))
cat >"$dir/job.yaml" <<YAML
job_id: $job
tenant: t25
priority: 5
deadline: $deadline
total: 600
classes:
  - {name: normal, proportion: 0.5}
  - {name: nodule, proportion: 0.5}
generation: {checkpoint: ref-cxr-v0, steps: 50, width: 512, height: 512}
unit_size: 8
YAML
ctl submit "$dir/job.yaml" >/dev/null || cx_fail "submit failed"

cx_wait_for "events | grep -q 'type=DEADLINE_AT_RISK job=$job'" 60 \
    || cx_fail "no DEADLINE_AT_RISK event: $(events)"
now=$(( $(date +%s) * 1000 ))
[ "$now" -lt "$deadline" ] || cx_fail "at-risk reported only after the deadline"
cx_assert_eq "$(rc HGET cx:job:$job:eta late)" 1 "late"
cx_assert_eq "$(rc HGET cx:job:$job:eta risk)" at_risk "risk"
eta=$(rc HGET cx:job:$job:eta eta_ms)
lo=$(rc HGET cx:job:$job:eta lo_ms)
hi=$(rc HGET cx:job:$job:eta hi_ms)
[ "$lo" -lt "$eta" ] && [ "$eta" -lt "$hi" ] || cx_fail "interval $lo $eta $hi"
[ "$eta" -gt "$deadline" ] || cx_fail "eta $eta before the deadline $deadline"
[ -n "$(rc HGET cx:job:$job:eta class:nodule)" ] || cx_fail "no class estimate"

# cascadectl watch (not a terminal: one line per refresh) shows it.
w=$(ctl watch "$job" --timeout 2 --interval 0.5 || true)
grep -q "ETA .*DEADLINE AT RISK" <<<"$w" || cx_fail "watch: $w"

# After a commit (units of 8, so the first comes soon), the indexer's
# Progress carries the estimate: field 760 (eta_unix_ms) is tagged 0xC0
# 0x2F on the wire.
cx_wait_for "cx_cxdev tail cascade.progress --from-beginning --max 1 --timeout-ms 2000 \
             | grep -qF 'key=$job value=' " 300 || cx_fail "no Progress"
p=$(cx_cxdev tail cascade.progress --from-beginning --max 1 --timeout-ms 5000)
grep -qiF '\xc0/' <<<"$p" || cx_fail "Progress without an ETA: $p"

cx_wait_for "events | grep -q 'type=DEADLINE_MISSED job=$job'" 60 \
    || cx_fail "no DEADLINE_MISSED event: $(events)"
ctl cancel "$job" >/dev/null
echo "25_sched_eta_deadline: ok"
