#!/usr/bin/env bash
# End-to-end throughput: samples/s through all six services (1 gpu-worker
# using every core, validator and committer sharing them), and in the same
# run the generator alone in one process on the same cores (bench_generate).
# Prints both and their ratio, the pipeline efficiency, plus where a
# sample's time goes (the job's timing sums) and where the cores went (CPU
# seconds per process).
#   bench/e2e/bench_e2e.sh [COUNT] [STEPS] [WARMUP]   (defaults 1024, 50, 128)
# Two jobs run on one fresh stack:
#  - cold: WARMUP samples right after the stack starts. It pays the broker's
#    JVM warm-up, the first fetches of every consumer and the checkpoint's
#    cold load in the warm pool; its figures say what a first job costs.
#  - measured: COUNT samples on the now warm stack, submit -> DONE (all a
#    user waits for), and steady (first commit -> DONE).
# The warm pool's hit rate and cold-load time come from the worker's own
# /metrics and the jobs' timing sums.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export CASCADE_BIN=${CASCADE_BIN:-$repo/build/bin}
count=${1:-1024}
steps=${2:-50}
warmup=${3:-128}
cores=$(nproc)
dir=$(mktemp -d "${TMPDIR:-/tmp}/cascade-bench.XXXXXX")
trap '"$repo/tests/harness/stack.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

"$repo/tests/harness/stack.sh" start "$dir" --workers 1 >/dev/null
set -a; . "$dir/env"; set +a
rcli() { redis-cli -u "$CASCADE_REDIS_URL" --raw "$@"; }

# CPU seconds each process of the stack has used (user+system, all its
# threads): sampled at submit and at DONE, it says where the cores went.
cpu_report() {
    local f pid tck
    tck=$(getconf CLK_TCK)
    for f in "$dir"/pids/*.pid; do
        pid=$(cat "$f")
        [ -r "/proc/$pid/stat" ] || continue
        # Fields after the ")" so a process name with spaces cannot shift them.
        sed 's/.*) //' "/proc/$pid/stat" |
            awk -v n="$(basename "$f" .pid)" -v t="$tck" '{printf "%s %.2f\n", n, ($12 + $13) / t}'
    done
}

# run_job ID COUNT: submits, waits for DONE, checks the dataset; sets
# job_t0 job_t1 job_first (first commit) job_first_n cpu_start cpu_done.
run_job() {
    local id=$1 n=$2
    cat >"$dir/$id.yaml" <<JOB
job_id: $id
total: $n
unit_size: 32
classes:
  - {name: normal, proportion: 0.4}
  - {name: effusion, proportion: 0.35}
  - {name: nodule, proportion: 0.25}
generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: $steps, seed: 11, width: 512, height: 512, bit_depth: 16}
JOB
    cpu_start=$(cpu_report)
    job_t0=$(date +%s.%N)
    "$CASCADE_BIN/cascadectl" submit "$dir/$id.yaml" >/dev/null
    job_first=""
    job_first_n=0
    # Polls the job's state (a condition, not a stand-in for work).
    until [ "$(rcli HGET "cx:job:$id" state)" = DONE ]; do
        if [ -z "$job_first" ] && [ "$(rcli HLEN "cx:job:$id:committed")" != 0 ]; then
            job_first=$(date +%s.%N)
            job_first_n=$(rcli HVALS "cx:job:$id:committed" | awk '{n+=$1} END {print n}')
        fi
        sleep 0.1
    done
    job_t1=$(date +%s.%N)
    cpu_done=$(cpu_report)
    job_first=${job_first:-$job_t1}
    "$CASCADE_BIN/cxverify" --store "$CASCADE_STORE_URI" --job "$id" \
        --redis "$CASCADE_REDIS_URL" --complete >/dev/null
}

rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN {print n / (b - a)}'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }

run_job bench-cold "$warmup"
cold_pipe=$(rate "$warmup" "$job_t0" "$job_t1")
cold_first=$(secs "$job_t0" "$job_first")
cold_load_ms=$("$CASCADE_BIN/cascadectl" status --json bench-cold |
    python3 -c 'import json, sys; print("%.0f" % json.load(sys.stdin)["timing"]["load_ms"])')

run_job bench-e2e "$count"
pipe=$(rate "$count" "$job_t0" "$job_t1")
steady=$(rate "$((count - job_first_n))" "$job_first" "$job_t1")
first=$(secs "$job_t0" "$job_first")
wall=$(secs "$job_t0" "$job_t1")
status=$("$CASCADE_BIN/cascadectl" status --json bench-e2e)
port=$(sed -n 's/.*msg="http endpoint" port=\([0-9]*\).*/\1/p' "$dir/logs/gpu-worker-0.log" | head -1)
metric() { curl -fsS "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
hits=$(metric cascade_pool_hits_total)
misses=$(metric cascade_pool_misses_total)

"$repo/tests/harness/stack.sh" stop "$dir" >/dev/null
gen=$("$CASCADE_BIN/bench_generate" --count 256 --steps "$steps" --threads "$cores" | sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p')
printf 'bench_e2e: samples=%d steps=%d cores=%d pipeline_samples_per_s=%.2f steady_samples_per_s=%.2f generator_alone_samples_per_s=%.2f efficiency=%.2f steady_efficiency=%.2f first_commit_s=%s\n' \
    "$count" "$steps" "$cores" "$pipe" "$steady" "$gen" \
    "$(awk -v p="$pipe" -v g="$gen" 'BEGIN {print p / g}')" \
    "$(awk -v p="$steady" -v g="$gen" 'BEGIN {print p / g}')" "$first"
printf 'bench_e2e: cold first job on the fresh stack: samples=%d pipeline_samples_per_s=%.2f efficiency=%.2f first_commit_s=%s checkpoint_cold_load_ms=%s\n' \
    "$warmup" "$cold_pipe" "$(awk -v p="$cold_pipe" -v g="$gen" 'BEGIN {print p / g}')" \
    "$cold_first" "$cold_load_ms"
printf 'bench_e2e: warm pool: hits=%s misses=%s hit_rate=%.3f (units of both jobs)\n' \
    "$hits" "$misses" "$(awk -v h="$hits" -v m="$misses" 'BEGIN {print (h + m) ? h / (h + m) : 0}')"
# Core-seconds per process between submit and DONE of the measured job.
join <(echo "$cpu_start" | sort) <(echo "$cpu_done" | sort) |
    awk -v n="$count" -v w="$wall" -v c="$cores" '
        { d = $3 - $2; tot += d; line = line sprintf(" %s=%.1fs(%.1fms)", $1, d, 1000 * d / n) }
        END { printf "bench_e2e: cpu by process over %.1fs x %d cores (per sample):%s total=%.1fs idle=%.1fs\n", w, c, line, tot, w * c - tot }'
# Where a sample's time went, from the job's timing sums (cascadectl status).
python3 - "$status" "$cores" <<'PY'
import json, sys
t = json.loads(sys.argv[1])["timing"]
cores = int(sys.argv[2])
n, u = t["samples"], t["units"]
per = lambda k: t[k] / n
print("bench_e2e: gpu-worker ms per sample (%d threads): generate %.1f wall"
      "  encode %.1f  write %.1f thread-ms" % (cores, per("generate_ms"),
                                              per("encode_ms"), per("write_ms")))
print("bench_e2e: wall ms per unit of %.0f samples: staged->verdict %.1f"
      "  verdict->commit %.1f  (of which validate %.1f, commit %.1f; the"
      " rest is messaging and queueing)" % (
          n / u, t["staged_to_verdict_ms"] / u, t["verdict_to_commit_ms"] / u,
          t["validate_ms"] / u, t["commit_ms"] / u))
PY
