#!/usr/bin/env bash
# End-to-end throughput: samples/s through all six services (1 gpu-worker
# using every core, validator and committer sharing them), and in the same
# run the generator alone in one process on the same cores (bench_generate).
# Prints both and their ratio, the pipeline efficiency, plus where a
# sample's time goes according to the services' own logs.
#   bench/e2e/bench_e2e.sh [COUNT] [STEPS]     (defaults 1024, 50)
# The pipeline figure is submit -> DONE (everything a user waits for); the
# steady figure leaves out the first unit's latency (first commit -> DONE).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export CASCADE_BIN=${CASCADE_BIN:-$repo/build/bin}
count=${1:-1024}
steps=${2:-50}
cores=$(nproc)
dir=$(mktemp -d "${TMPDIR:-/tmp}/cascade-bench.XXXXXX")
trap '"$repo/tests/harness/stack.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

"$repo/tests/harness/stack.sh" start "$dir" --workers 1 >/dev/null
set -a; . "$dir/env"; set +a
cat >"$dir/job.yaml" <<JOB
job_id: bench-e2e
total: $count
unit_size: 32
classes:
  - {name: normal, proportion: 0.4}
  - {name: effusion, proportion: 0.35}
  - {name: nodule, proportion: 0.25}
generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: $steps, seed: 11, width: 512, height: 512, bit_depth: 16}
JOB
t0=$(date +%s.%N)
"$CASCADE_BIN/cascadectl" submit "$dir/job.yaml" >/dev/null
rcli() { redis-cli -u "$CASCADE_REDIS_URL" --raw "$@"; }
t_first=""
# Polls the job's state (a condition, not a stand-in for work).
until [ "$(rcli HGET cx:job:bench-e2e state)" = DONE ]; do
    if [ -z "$t_first" ] && [ "$(rcli HLEN cx:job:bench-e2e:committed)" != 0 ]; then
        t_first=$(date +%s.%N)
        first_n=$(rcli HVALS cx:job:bench-e2e:committed | awk '{n+=$1} END {print n}')
    fi
    sleep 0.1
done
t1=$(date +%s.%N)
"$CASCADE_BIN/cxverify" --store "$CASCADE_STORE_URI" --job bench-e2e \
    --redis "$CASCADE_REDIS_URL" --complete >/dev/null
pipe=$(awk -v n="$count" -v a="$t0" -v b="$t1" 'BEGIN {print n / (b - a)}')
steady=$(awk -v n="$count" -v f="${first_n:-0}" -v a="${t_first:-$t0}" -v b="$t1" 'BEGIN {print (n - f) / (b - a)}')
status=$("$CASCADE_BIN/cascadectl" status --json bench-e2e)

"$repo/tests/harness/stack.sh" stop "$dir" >/dev/null
gen=$("$CASCADE_BIN/bench_generate" --count 256 --steps "$steps" --threads "$cores" | sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p')
printf 'bench_e2e: samples=%d steps=%d cores=%d pipeline_samples_per_s=%.2f steady_samples_per_s=%.2f generator_alone_samples_per_s=%.2f efficiency=%.2f steady_efficiency=%.2f\n' \
    "$count" "$steps" "$cores" "$pipe" "$steady" "$gen" \
    "$(awk -v p="$pipe" -v g="$gen" 'BEGIN {print p / g}')" \
    "$(awk -v p="$steady" -v g="$gen" 'BEGIN {print p / g}')"
# Where a sample's time went, from the job's timing sums (cascadectl status).
python3 - "$status" "$cores" <<'PY'
import json, sys
t = json.loads(sys.argv[1])["timing"]
cores = int(sys.argv[2])
n, u = t["samples"], t["units"]
per = lambda k: t[k] / n
print("bench_e2e: gpu-worker thread-ms per sample (%d threads): generate"
      " %.1f  encode %.1f  write %.1f" % (cores, per("generate_ms"),
                                         per("encode_ms"), per("write_ms")))
print("bench_e2e: wall ms per unit of %.0f samples: staged->verdict %.1f"
      "  verdict->commit %.1f  (of which validate %.1f, commit %.1f; the"
      " rest is messaging and queueing)" % (
          n / u, t["staged_to_verdict_ms"] / u, t["verdict_to_commit_ms"] / u,
          t["validate_ms"] / u, t["commit_ms"] / u))
PY
