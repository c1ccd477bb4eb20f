#!/usr/bin/env bash
# The main job on the embedded default: set up, then run experiments/demo.toml (the seed papers'
# methods on `calibench synth` dumps, three re-splits, bootstrap intervals; no downloads) and
# print its table. Output in results/demo/ (table.md, table.tex, results.csv/json/h5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${CALIBENCH_BUILD_DIR:-build}
"$BUILD_DIR/calibench" sweep experiments/demo.toml --out results/demo
