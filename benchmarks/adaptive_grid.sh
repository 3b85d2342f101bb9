#!/usr/bin/env bash
# Runs (or resumes) the five blocks of the adaptive verdict grid, one after the other, into
# benchmarks/results/adaptive/grid-<block>/ : two cells side by side, one torch thread each.
# Usage: benchmarks/adaptive_grid.sh [DATA_ROOT]   (default ../shared/data)
set -euo pipefail
data_root="${1:-../shared/data}"
export OMP_NUM_THREADS=1
for block in mnist mnist-adam fashionmnist jbtop3 fashionmnist-adam; do
    stealguard grid "benchmarks/configs/adaptive-${block}.toml" --data-root "$data_root" \
        --out "benchmarks/results/adaptive/grid-${block}" --victim-cache runs/victims --device cpu --quiet --resume
done
