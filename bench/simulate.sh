#!/usr/bin/env bash
# How fast `usher simulate` runs: 1M requests over 100 servers, each algorithm on its own.
#   bash bench/simulate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
for algorithm in round-robin least-connections power-of-two least-response-time hash hash-bounded; do
  start=$(date +%s.%N)
  build/src/app/usher simulate --scenario bench/sim-scale.yaml --algorithms "$algorithm" | tail -1
  end=$(date +%s.%N)
  printf '  %s: %.2f s wall\n' "$algorithm" "$(echo "$end - $start" | bc)"
done
