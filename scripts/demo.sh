#!/usr/bin/env bash
# The main job on the embedded default: set up, write a `calibench synth` dump (known truth,
# no downloads) and print every metric of its test split as a table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${CALIBENCH_BUILD_DIR:-build}
mkdir -p results/demo
"$BUILD_DIR/calibench" synth --out results/demo/synth.h5 --classes 10 --n-val 5000 --n-test 10000 --seed 0
"$BUILD_DIR/calibench" eval results/demo/synth.h5 --split test --bins 15 --bootstrap 200 --seed 0
