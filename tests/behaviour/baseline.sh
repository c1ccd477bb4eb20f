#!/usr/bin/env bash
# Builds calibench at git revision REV (default: HEAD) into DIR (default /tmp/calibench-base-REV):
# the CLI at DIR/calibench and the Python package at DIR/pylib/calibench, for compare.py's --old
# and --old-py. Uses a temporary git worktree; the current checkout is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=${1:-HEAD}
SHA=$(git rev-parse --short "$REV")
DIR=${2:-/tmp/calibench-base-$SHA}
TREE=$DIR/tree
mkdir -p "$DIR"
[ -d "$TREE" ] || git worktree add --detach "$TREE" "$REV" >/dev/null
cmake -S "$TREE" -B "$DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBENCH_CUDA=OFF -DCALIBENCH_TESTS=OFF \
  -DCALIBENCH_BENCH=OFF -DCALIBENCH_PYTHON=ON >"$DIR/configure.log"
cmake --build "$DIR/build" -j"$(nproc)" --target calibench _core >"$DIR/build.log"
mkdir -p "$DIR/pylib/calibench"
cp "$TREE"/python/calibench/*.py "$DIR/pylib/calibench/"
cp "$(find "$DIR/build" -name '_core*.so' | head -1)" "$DIR/pylib/calibench/"
cp "$(find "$DIR/build" -maxdepth 2 -name calibench -type f -perm -u+x | head -1)" "$DIR/calibench"
echo "baseline $SHA: --old $DIR/calibench --old-py $DIR/pylib"
