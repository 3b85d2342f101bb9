#!/usr/bin/env bash
# The README's Knockoff example (10,000 Fashion-MNIST queries, seed 0, the defaults: reference training, SGD for 50 epochs) against the committed
# MNIST LeNet victim, undefended and behind mad:epsilon=0.5; one torch thread each, one after the other.
# Usage (from the repository root): bash benchmarks/readme_knockoff.sh [DATA_ROOT]   (rows in benchmarks/results/readme/)
set -euo pipefail
data_root="${1:-../shared/data}"
out=benchmarks/results/readme
for defense in none mad:epsilon=0.5; do
    name="knockoff-${defense%%:*}"
    OMP_NUM_THREADS=1 stealguard attack --victim benchmarks/victims/mnist-lenet --attack knockoff --queryset fashionmnist \
        --data-root "$data_root" --budget 10000 --defense "$defense" --threads 1 --seed 0 --out "$out/$name.json"
done
