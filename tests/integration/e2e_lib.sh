# Helpers for the end-to-end scenarios (0N_*.sh): job files, submission,
# waiting on a job's state, and the independent dataset check (cxverify).
# Source after tests/harness/lib.sh.

cx_rcli() { redis-cli -u "$CASCADE_REDIS_URL" --raw "$@"; }
cx_ctl() { "$CASCADE_BIN/cascadectl" "$@"; }
cx_store_dir() { echo "${CASCADE_STORE_URI#file://}"; }

# cx_job_file PATH JOB_ID TOTAL "class:proportion ..." [STEPS] [UNIT]
# A 512x512 16-bit job; few sampler steps keep the suite fast (the sampler's
# cost per step is what the benchmark measures, not these tests).
cx_job_file() {
    local path=$1 id=$2 total=$3 classes=$4 steps=${5:-8} unit=${6:-16} c
    {
        echo "job_id: $id"
        echo "tenant: tests"
        echo "total: $total"
        echo "unit_size: $unit"
        echo "classes:"
        for c in $classes; do
            echo "  - {name: ${c%%:*}, proportion: ${c##*:}}"
        done
        echo "generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: $steps, seed: 7, width: 512, height: 512, bit_depth: 16}"
    } >"$path"
}

# Sampler steps for scenarios that kill services mid-run: enough that the
# job still runs when the kills land. A sanitized build generates about
# ten times slower, so it needs fewer steps for the same run time.
cx_kill_steps() {
    if ldd "$CASCADE_BIN/cascade-gpu-worker" 2>/dev/null | grep -q libasan; then
        echo 8
    else
        echo 48
    fi
}

cx_job_state() { cx_rcli HGET "cx:job:$1" state; }

cx_committed_total() {
    cx_rcli HVALS "cx:job:$1:committed" | awk '{s+=$1} END {print s+0}'
}

# Waits for the job to reach state $2 (default DONE).
cx_wait_state() {
    local id=$1 want=${2:-DONE} secs=${3:-420}
    cx_wait_for "[ \"\$(cx_job_state $id)\" = $want ]" "$secs" \
        || cx_fail "job $id did not reach $want (state: $(cx_job_state "$id"), committed $(cx_committed_total "$id"))"
}

# Independent check: decode every PNG, hashes, manifests == files == index.
cx_verify() {
    local id=$1; shift
    "$CASCADE_BIN/cxverify" --store "$CASCADE_STORE_URI" --job "$id" \
        --redis "$CASCADE_REDIS_URL" "$@"
}

# Asserts the verified per-class counts: cx_expect_counts JOB "normal=120 ..."
cx_expect_counts() {
    local id=$1 want=$2 out kv
    out=$(cx_verify "$id" --complete) || { echo "$out" >&2; cx_fail "dataset of $id does not verify"; }
    echo "$out" >&2
    for kv in $want; do
        echo "$out" | grep -q "^class=${kv%%=*} files=${kv##*=} manifested=${kv##*=} index=${kv##*=} quota=${kv##*=}\$" \
            || cx_fail "class ${kv%%=*} of $id: expected exactly ${kv##*=}"
    done
    echo "$out" | grep -q "size=512x512 depth=16 problems=0" || cx_fail "not 512x512 16-bit"
}

# The pid of a stack process, and whether it is alive.
cx_pid() { cat "$CX_STACK_DIR/pids/$1.pid"; }
cx_alive() { kill -0 "$(cx_pid "$1")" 2>/dev/null; }
