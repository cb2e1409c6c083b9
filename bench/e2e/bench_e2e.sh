#!/usr/bin/env bash
# End-to-end throughput: samples/s through all six services (1 gpu-worker
# using every core, validator and committer sharing them), and in the same
# run the generator alone in one process on the same cores (bench_generate).
# Prints both and their ratio, the pipeline efficiency, plus where a
# sample's time goes according to the services' own logs.
#   bench/e2e/bench_e2e.sh [COUNT] [STEPS]     (defaults 384, 50)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export CASCADE_BIN=${CASCADE_BIN:-$repo/build/bin}
count=${1:-384}
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
until [ "$(redis-cli -u "$CASCADE_REDIS_URL" --raw HGET cx:job:bench-e2e state)" = DONE ]; do
    sleep 0.2
done
t1=$(date +%s.%N)
"$CASCADE_BIN/cxverify" --store "$CASCADE_STORE_URI" --job bench-e2e \
    --redis "$CASCADE_REDIS_URL" --complete >/dev/null
pipe=$(awk -v n="$count" -v a="$t0" -v b="$t1" 'BEGIN {print n / (b - a)}')

# Where the time went, per sample, from the services' logs.
# Where the time went, per sample, from the services' logs.
val_ms=$(grep -h "batch validated" "$dir/logs/validator.log" | sed 's/.*samples=\([0-9]*\) validate_ms=\([0-9.]*\).*/\1 \2/' | awk '{n+=$1;t+=$2} END {printf "%.1f", n?t/n:0}')
com_ms=$(grep -h "unit committed" "$dir/logs/committer.log" | sed 's/.*passed=\([0-9]*\) .*commit_ms=\([0-9.]*\).*/\1 \2/' | awk '{n+=$1;t+=$2} END {printf "%.1f", n?t/n:0}')
wrk_ms=$(grep -h "unit staged" "$dir/logs/gpu-worker-0.log" | sed 's/.* ms=\([0-9.]*\).*/\1/' | awk -v c="$count" '{t+=$1} END {printf "%.1f", t/c}')

"$repo/tests/harness/stack.sh" stop "$dir" >/dev/null
gen=$("$CASCADE_BIN/bench_generate" --count 32 --steps "$steps" --threads "$cores" | sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p')
printf 'bench_e2e: samples=%d steps=%d cores=%d pipeline_samples_per_s=%.2f generator_alone_samples_per_s=%.2f efficiency=%.2f\n' \
    "$count" "$steps" "$cores" "$pipe" "$gen" "$(awk -v p="$pipe" -v g="$gen" 'BEGIN {print p / g}')"
printf 'bench_e2e: wall ms per sample: gpu-worker (generate+encode+write, %d threads) %s, validator batch %s, committer %s\n' \
    "$cores" "$wrk_ms" "$val_ms" "$com_ms"
