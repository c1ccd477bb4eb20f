#!/usr/bin/env bash
# All tests: set up, build, run CTest (GoogleTest unit and GPU tests, the Python reference
# cross-checks, malformed-input and converter suites). GPU tests skip without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${CALIBENCH_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
