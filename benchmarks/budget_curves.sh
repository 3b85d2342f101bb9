#!/usr/bin/env bash
# Budget curves on MNIST (issue 31's acceptance): one 50k-query Knockoff run per defense and seed gives the
# curve at 1k/5k/10k/50k (--budgets); separate runs at 1k, 5k and 10k are the reference. LeNet victim
# benchmarks/victims/mnist-lenet, Fashion-MNIST queries, the reference training schedule (SGD, momentum 0.5,
# lr 0.01) for 10 epochs, seeds 0 and 1. Resumable: a finished output is skipped. One lane per defense,
# each on one torch thread: `bash benchmarks/budget_curves.sh none & bash benchmarks/budget_curves.sh mad:epsilon=0.5`.
set -euo pipefail
cd "$(dirname "$0")/.."
defense="$1"
data="${STEALGUARD_DATA_ROOT:-../shared/data}"
out=benchmarks/results/budget_curves
tag="${defense%%:*}"
common=(--victim benchmarks/victims/mnist-lenet --attack knockoff --attack-param training=reference --epochs 10
        --queryset fashionmnist --data-root "$data" --defense "$defense" --threads 1 --quiet)
for seed in 0 1; do
  if [ ! -f "$out/curve-$tag-seed$seed/results.csv" ]; then
    OMP_NUM_THREADS=1 stealguard attack "${common[@]}" --seed "$seed" --budgets 1000,5000,10000,50000 \
      --out "$out/curve-$tag-seed$seed" --overwrite
  fi
  for budget in 1000 5000 10000; do
    if [ ! -f "$out/separate-$tag-seed$seed-$budget.json" ]; then
      OMP_NUM_THREADS=1 stealguard attack "${common[@]}" --seed "$seed" --budget "$budget" \
        --out "$out/separate-$tag-seed$seed-$budget.json"
    fi
  done
done
