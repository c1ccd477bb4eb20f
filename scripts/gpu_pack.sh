#!/usr/bin/env bash
# Pack CUDA-built test and benchmark binaries (with the non-system shared libraries they need)
# into .gpucarry/ for a device machine that has CUDA but not this project's dependencies (the
# lent machines have no HDF5, NLopt, fmt, GoogleTest or Google Benchmark and cannot install).
# Usage: scripts/gpu_pack.sh [build-dir]; then run scripts/gpu_check.sh there with
# CALIBENCH_GPU_BIN=.gpucarry (carry .gpucarry). .gpucarry/ must be git-ignored
# (echo /.gpucarry/ >> .git/info/exclude).
set -euo pipefail
build=${1:-build-cuda}
dest=.gpucarry
rm -rf "$dest" && mkdir -p "$dest/lib"
bins=("$build/tests/calibench_gpu_tests" "$build/bench/calibench_bench_gpu" "$build/bench/calibench_bench")
cp "${bins[@]}" "$dest/"
# The C and C++ runtimes come from the device machine (newer there); everything else travels.
ldd "${bins[@]}" | awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' |
  while read -r lib; do cp -L "$lib" "$dest/lib/"; done
du -sh "$dest"; ls "$dest" "$dest/lib"
