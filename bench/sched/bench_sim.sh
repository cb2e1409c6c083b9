#!/usr/bin/env bash
# The headline simulation: 10,000,000 512x512 images in 4 classes as
# 200,000 units of 50 samples on 200 H100 + 220 A100 + 60 spot L40S
# (examples/pools/headline.json: 38/52/70 s per unit, 90 s cold load, 3 %
# batch failures, preemptions), with the Cascade scheduler and the naive
# baselines; prints makespan, lower bound, ratio, class drift, and the
# simulator's own wall time.
#
#   bench/sched/bench_sim.sh [--seed N] [extra cascade-sim flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${CASCADE_BIN:-$repo/build/bin}
start=$(date +%s.%N)
"$bin/cascade-sim" --pool "$repo/examples/pools/headline.json" \
    --job "$here/headline.yaml" "$@"
end=$(date +%s.%N)
echo "total wall time (three simulations): $(echo "$end - $start" | bc) s"
