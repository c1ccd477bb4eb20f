#!/usr/bin/env bash
# The main job on the embedded default: set up, then run experiments/demo.toml (the seed papers'
# methods on `calibench synth` dumps, three re-splits, bootstrap intervals; no downloads) and
# print its table. Output in results/demo/ (table.md, table.tex, results.csv/json/h5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${CALIBENCH_BUILD_DIR:-build}
"$BUILD_DIR/calibench" sweep experiments/demo.toml --out results/demo
echo
echo "Every metric of one of the demo's synthetic dumps (test split, 95% bootstrap intervals):"
"$BUILD_DIR/calibench" eval "$(ls results/demo/data/synth-c10-*.h5 | head -1)" --split test --bins 15 --bootstrap 200
