#!/usr/bin/env bash
# One command for a session with a GPU (the device tool's `run`): build with CUDA, run the GPU
# tests, the GPU benchmarks and the PyTorch comparison, and leave logs and JSON in $OUT
# (default results/gpu/run-<date>). Commit what it writes under results/gpu/ with the card,
# date and commit. Stages have timeouts so that the whole run fits a 10-minute call.
set -u
OUT=${OUT:-results/gpu/run-$(date +%Y%m%d)}
mkdir -p "$OUT"
{ date -u; git rev-parse HEAD 2>/dev/null; nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
G=$(command -v ninja >/dev/null && echo "-G Ninja")
if ! { cmake -S . -B build-gpu $G -DCALIBENCH_CUDA=ON -DCMAKE_BUILD_TYPE=Release > "$OUT/configure.log" 2>&1 &&
       cmake --build build-gpu -j"$(nproc)" > "$OUT/build.log" 2>&1; }; then
  tail -40 "$OUT/configure.log" "$OUT/build.log"
  exit 1
fi
timeout 200 build-gpu/tests/calibench_gpu_tests --gtest_brief=1 --gtest_output=json:"$OUT/gpu_tests.json" \
  > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests rc=$?"
tail -40 "$OUT/gpu_tests.log"
build-gpu/tests/calibench_unit_tests --gtest_brief=1 2>&1 | tail -3
timeout 200 build-gpu/bench/calibench_bench_gpu --benchmark_min_time=0.05 --benchmark_counters_tabular=true \
  --benchmark_out="$OUT/bench_sweep_gpu.json" --benchmark_out_format=json > "$OUT/bench.log" 2>&1
echo "bench rc=$?"
cut -c1-190 "$OUT/bench.log" | tail -95
timeout 120 build-gpu/bench/calibench_bench --benchmark_filter=sctl_grid --benchmark_min_time=0.05 \
  --benchmark_out="$OUT/bench_sctl_grid.json" --benchmark_out_format=json > "$OUT/bench_sctl.log" 2>&1
echo "sctl grid bench rc=$?"
tail -20 "$OUT/bench_sctl.log"
timeout 90 python3 bench/torch_sweep.py > "$OUT/torch_sweep.json" 2> "$OUT/torch_sweep.log"
echo "torch rc=$?"
tail -15 "$OUT/torch_sweep.log"
