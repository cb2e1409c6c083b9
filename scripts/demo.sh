#!/usr/bin/env bash
# `make demo`: the whole system on this machine, end to end.
#   scripts/demo.sh [JOB_FILE]      (default examples/jobs/demo.yaml)
# Env: DEMO_DIR (default run/demo), DEMO_WORKERS (default 2),
#      CASCADE_BIN (default build/bin). Stop with: make stop
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CASCADE_BIN=${CASCADE_BIN:-$repo/build/bin}
dir=${DEMO_DIR:-$repo/run/demo}
workers=${DEMO_WORKERS:-2}
job=${1:-$repo/examples/jobs/demo.yaml}
step() { printf '\n== %s\n' "$*"; }

step "1. stack: Kafka (KRaft) + Redis + planner, scheduler, $workers gpu-workers, validator, committer, indexer in $dir"
scripts/stack.sh stop "$dir"
scripts/stack.sh start "$dir" --workers "$workers" >/dev/null
set -a
. "$dir/env"
set +a
scripts/stack.sh status "$dir"
echo "env: $dir/env   logs: $dir/logs/   store: ${CASCADE_STORE_URI}"

[ -x "$CASCADE_BIN/cascadectl" ] || { echo "demo: $CASCADE_BIN/cascadectl not built" >&2; exit 1; }
[ -f "$job" ] || { echo "demo: job file $job missing" >&2; exit 1; }

step "2. submit $job"
"$CASCADE_BIN/cascadectl" submit "$job" | tee "$dir/submit.out"
# cascadectl submit prints the job id (assigned unless the file sets one).
job_id=$(awk 'NF {id = $NF} END {print id}' "$dir/submit.out")
[ -n "$job_id" ] || { echo "demo: no job id in cascadectl's answer" >&2; exit 1; }

step "3. watch $job_id until it is done"
"$CASCADE_BIN/cascadectl" watch "$job_id"

step "4. summary"
"$CASCADE_BIN/cascadectl" status "$job_id"
# Independent check of what is on disk: every PNG decodes at the job's size
# and depth, counts per class equal the manifests and the index.
"$CASCADE_BIN/cxverify" --store "$CASCADE_STORE_URI" --job "$job_id" \
    --redis "$CASCADE_REDIS_URL" --complete
echo "dataset: ${CASCADE_STORE_URI#file://}/$job_id/  (data/<class>/<hh>/<sha256>.png, manifests/, dataset.json)"
echo "the stack keeps running; stop it with: make stop"
