#!/usr/bin/env bash
# Installs what calibench needs on Debian 12 (apt packages, Python test packages) when it is
# missing, then configures and builds into build/. Safe to run again; prints what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(cmake ninja-build g++ pkg-config libhdf5-dev hdf5-tools libcli11-dev nlohmann-json3-dev libfmt-dev libtomlplusplus-dev
              libgtest-dev libgmock-dev libbenchmark-dev libomp-dev libopenmpi-dev openmpi-bin
              libeigen3-dev liblbfgspp-dev libnlopt-cxx-dev clang-format chromium)
PY_PACKAGES=(numpy h5py scipy scikit-learn pytest matplotlib pandas pyarrow scikit-build-core nanobind)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
  }
fi

if ! python3 -c "import numpy, h5py, scipy, sklearn, pytest, matplotlib, pandas, pyarrow, scikit_build_core, nanobind" 2>/dev/null; then
  echo "setup: installing Python packages: ${PY_PACKAGES[*]}" >&2
  python3 -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

# The peer libraries for tests/e2e/test_peer_parity.py (torchmetrics, netcal, ...) in the
# git-ignored .venv-peers/ (~80 s once; CALIBENCH_PEERS=0 skips them and those tests skip).
[ "${CALIBENCH_PEERS:-1}" = 0 ] || scripts/setup_peers.sh

BUILD_DIR=${CALIBENCH_BUILD_DIR:-build}
# CALIBENCH_CUDA=AUTO|ON|OFF (default AUTO: the CUDA backend is built when nvcc is found).
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBENCH_CUDA="${CALIBENCH_CUDA:-AUTO}" \
    >"$BUILD_DIR.configure.log" 2>&1 || { cat "$BUILD_DIR.configure.log" >&2; exit 1; }
  grep "calibench: CUDA backend" "$BUILD_DIR.configure.log" >&2 || true
fi
echo "setup: building in $BUILD_DIR" >&2
if ! cmake --build "$BUILD_DIR" -- -j"$(nproc)" >"$BUILD_DIR.build.log" 2>&1; then
  grep -E -A5 "error|FAILED" "$BUILD_DIR.build.log" | head -60 >&2
  echo "setup: build failed; full log in $BUILD_DIR.build.log" >&2
  exit 1
fi

# The Python package calibench (docs/python.md): incremental build in build-py/, installed into
# python3's site-packages (which .venv-peers also sees).
echo "setup: building and installing the Python package (pip install .)" >&2
if ! python3 -m pip install -q --disable-pip-version-check --no-build-isolation . >build-py.log 2>&1; then
  grep -E -A5 "error|FAILED" build-py.log | head -60 >&2
  echo "setup: Python package build failed; full log in build-py.log" >&2
  exit 1
fi
