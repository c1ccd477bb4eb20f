#!/usr/bin/env bash
# The sanitizer job (issue 15): builds the CLI with AddressSanitizer and UndefinedBehaviorSanitizer
# (CUDA, Python, tests and benchmarks off) into build-asan/, then runs the hostile-input suite
# (tests/hostile) and the malformed-input suite (tests/e2e/test_malformed.py) against it. Any
# sanitizer report fails the run. The memory-limit scans are skipped under ASan (its shadow
# memory does not fit an address-space limit). Run after scripts/setup.sh (CI: .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${CALIBENCH_ASAN_DIR:-build-asan}
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCALIBENCH_CUDA=OFF -DCALIBENCH_TESTS=OFF \
  -DCALIBENCH_BENCH=OFF -DCALIBENCH_PYTHON=OFF -DCALIBENCH_MPI=OFF -DCALIBENCH_NATIVE=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  >"$BUILD.configure.log"
cmake --build "$BUILD" -j"$(nproc)" --target calibench >"$BUILD.build.log"
fault="$BUILD/fault_write.so"
cc -shared -fPIC -O1 -o "$fault" tests/hostile/fault_write.c -ldl
# The fault layer is preloaded before the ASan runtime in its tests: allow that order.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99:verify_asan_link_order=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
export CALIBENCH_BIN="$PWD/$BUILD/calibench" CALIBENCH_FAULT_LIB="$PWD/$fault" CALIBENCH_SANITIZED=1
status=0
for suite in tests/hostile/test_*.py tests/e2e/test_malformed.py; do
  echo "sanitize: $suite"
  python3 -m pytest -q -p no:cacheprovider "$suite" || status=1
done
exit $status
