#!/usr/bin/env bash
# One command for a session with a GPU (the device tool's `run`): build with CUDA (or take the
# binaries scripts/gpu_pack.sh packed, CALIBENCH_GPU_BIN=.gpucarry), run the GPU tests, the GPU
# benchmarks, a CPU baseline on the same machine and the PyTorch comparison, and leave logs and
# JSON in $OUT (default results/gpu/run-<date>). Commit what it writes under results/gpu/ with
# the card, date and commit (CALIBENCH_COMMIT names it where the device's git cannot). Stages
# have timeouts so that the whole run fits one short call; the exit status is non-zero when the
# GPU tests or a sanitizer failed.
set -u
OUT=${OUT:-results/gpu/run-$(date +%Y%m%d)}
mkdir -p "$OUT"
{ date -u; echo "commit ${CALIBENCH_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}"; nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv; nproc; } \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
if [ -n "${CALIBENCH_GPU_BIN:-}" ]; then
  case $CALIBENCH_GPU_BIN in /*) B=$CALIBENCH_GPU_BIN ;; *) B=$PWD/$CALIBENCH_GPU_BIN ;; esac
  T=$B B2=$B
  # The packed libraries for calibench's binaries only (not for python3 and its torch).
  RUN=(env "LD_LIBRARY_PATH=$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
else
  G=$(command -v ninja >/dev/null && echo "-G Ninja")
  if ! { cmake -S . -B build-gpu $G -DCALIBENCH_CUDA=ON -DCMAKE_BUILD_TYPE=Release > "$OUT/configure.log" 2>&1 &&
         cmake --build build-gpu -j"$(nproc)" > "$OUT/build.log" 2>&1; }; then
    tail -40 "$OUT/configure.log" "$OUT/build.log"
    exit 1
  fi
  T=build-gpu/tests B2=build-gpu/bench
  RUN=(env)
fi
status=0
timeout "${GPU_TEST_S:-150}" "${RUN[@]}" "$T/calibench_gpu_tests" --gtest_brief=1 --gtest_output=json:"$OUT/gpu_tests.json" \
  > "$OUT/gpu_tests.log" 2>&1
rc=$?; echo "gpu tests rc=$rc"; [ $rc -eq 0 ] || status=1
tail -40 "$OUT/gpu_tests.log"
timeout "${GPU_BENCH_S:-180}" "${RUN[@]}" "$B2/calibench_bench_gpu" --benchmark_min_time=0.05 --benchmark_counters_tabular=true \
  --benchmark_out="$OUT/bench_sweep_gpu.json" --benchmark_out_format=json > "$OUT/bench.log" 2>&1
echo "bench rc=$?"
cut -c1-190 "$OUT/bench.log" | tail -95
timeout 40 "${RUN[@]}" "$B2/calibench_bench" --benchmark_filter=sctl_grid --benchmark_min_time=0.05 \
  --benchmark_out="$OUT/bench_sctl_grid.json" --benchmark_out_format=json > "$OUT/bench_sctl.log" 2>&1
echo "sctl grid bench rc=$?"
tail -20 "$OUT/bench_sctl.log"
# The CPU backend on this machine's cores, for speed-ups measured in one run.
timeout 60 "${RUN[@]}" "$B2/calibench_bench" --benchmark_min_time=0.05 --benchmark_counters_tabular=true \
  --benchmark_filter='BM_sweep_cpu_(temperature|inverse_temperature)/shape:[01]/G:1000/adaece:1|BM_sweep_cpu_(temperature|inverse_temperature)/shape:2/G:100/adaece:1' \
  --benchmark_out="$OUT/bench_sweep_cpu_same_machine.json" --benchmark_out_format=json > "$OUT/bench_cpu.log" 2>&1
echo "cpu bench rc=$?"
cut -c1-160 "$OUT/bench_cpu.log" | tail -8
timeout 45 python3 bench/python/torch_sweep.py > "$OUT/torch_sweep.json" 2> "$OUT/torch_sweep.log"
echo "torch rc=$?"
tail -15 "$OUT/torch_sweep.log"
# Memory errors and races in the kernels, on the small and edge-case tests (Firecracker machines).
if command -v compute-sanitizer >/dev/null; then
  # racecheck is far slower: the kernels with shared memory on two small shapes.
  for tool in memcheck racecheck; do
    filter='GpuSweepEdges.*:GpuSweepInterface.*:GpuSctl.*:Shapes/GpuSweep.*/n100_*'
    [ $tool = racecheck ] && filter='Shapes/GpuSweep.*/n100_k10:Shapes/GpuSweep.*/n100_k100_mixed'
    timeout 90 "${RUN[@]}" compute-sanitizer --tool $tool --error-exitcode 3 "$T/calibench_gpu_tests" --gtest_brief=1 \
      --gtest_filter="$filter" > "$OUT/sanitizer_$tool.log" 2>&1
    rc=$?; echo "compute-sanitizer $tool rc=$rc"; [ $rc -eq 0 ] || status=1
    tail -4 "$OUT/sanitizer_$tool.log"
  done
fi
exit $status
