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
if ldd "${bins[@]}" | grep -q 'not found'; then
  ldd "${bins[@]}" | grep 'not found' >&2
  exit 1
fi
# The C and C++ runtimes come from the device machine, which must be at least as new as this
# one (binaries built on Debian 12 ran on the lent H200 machines, 2026-11-26); the rest travels.
ldd "${bins[@]}" | awk '/=> \//{print $3}' | sort -u |
  { grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' || true; } |
  while read -r lib; do cp -L "$lib" "$dest/lib/"; done
du -sh "$dest"; ls "$dest" "$dest/lib"
