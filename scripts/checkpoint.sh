#!/usr/bin/env bash
# Builds the fitted reference checkpoint ref-cxr-v1: renders a phantom
# training set with cxphantom and fits it with cxfit (docs/CHECKPOINT.md).
#   scripts/checkpoint.sh [OUT_DIR]     (default .deps/checkpoints)
# Writes OUT_DIR/ref-cxr-v1.cxck and OUT_DIR/ref-cxr-v1.cxfeat (the training
# features for the privacy gate). Idempotent: does nothing when the
# checkpoint exists and is newer than both tools; otherwise renders into
# OUT_DIR/ref-cxr-v1.train/ (kept, reused when the renderer is older) and
# refits. Env: CASCADE_BIN (default build/bin), CKPT_NAME (ref-cxr-v1),
# CKPT_PER_CLASS (200), CKPT_SIZE (512), CKPT_COMPONENTS (2), CKPT_RANK (8),
# CKPT_SEED (1), CKPT_THREADS (0 = all CPUs), CKPT_FORCE=1 to rebuild.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${CASCADE_BIN:-$repo/build/bin}
out=${1:-$repo/.deps/checkpoints}
name=${CKPT_NAME:-ref-cxr-v1}
per_class=${CKPT_PER_CLASS:-200}
size=${CKPT_SIZE:-512}
threads=${CKPT_THREADS:-0}
ckpt=$out/$name.cxck
train=$out/$name.train

for t in cxphantom cxfit; do
    [ -x "$bin/$t" ] || { echo "checkpoint: $bin/$t not built (make build)" >&2; exit 1; }
done
if [ -z "${CKPT_FORCE:-}" ] && [ -f "$ckpt" ] &&
   [ "$ckpt" -nt "$bin/cxphantom" ] && [ "$ckpt" -nt "$bin/cxfit" ]; then
    echo "checkpoint: $ckpt is up to date"
    exit 0
fi
mkdir -p "$out"
start=$(date +%s)
# The training set is a pure function of (seed, size, count): re-render
# only when the renderer changed or the set is incomplete.
stamp=$train/.done-$per_class-$size-${CKPT_SEED:-1}
if [ -n "${CKPT_FORCE:-}" ] || [ ! -f "$stamp" ] || [ "$bin/cxphantom" -nt "$stamp" ]; then
    rm -rf "$train"
    "$bin/cxphantom" --out "$train" --per-class "$per_class" --size "$size" \
        --seed "${CKPT_SEED:-1}" --threads "$threads"
    touch "$stamp"
fi
"$bin/cxfit" --data "$train" --out "$ckpt" --name "$name" \
    --components "${CKPT_COMPONENTS:-2}" --rank "${CKPT_RANK:-8}" \
    --threads "$threads" --seed "${CKPT_SEED:-1}"
echo "checkpoint: $ckpt in $(( $(date +%s) - start )) s"
