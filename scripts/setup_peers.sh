#!/usr/bin/env bash
# Installs the peer libraries that tests/e2e/test_peer_parity.py compares calibench with
# (torchmetrics, netcal, uncertainty-calibration, relplot, KDEpy, betacal, venn-abers, cir-model,
# probmetrics with pytorch-minimize, and a CPU-usable torch) into
# the git-ignored virtual environment .venv-peers/ (override: CALIBENCH_PEERS_VENV), from PyPI.
# Installs only what is missing; safe to run again; prints what it does. See tests/peers/README.md.
#
# The venv sees the base interpreter's packages (--system-site-packages: numpy, scipy, h5py,
# scikit-learn, pytest, matplotlib from scripts/setup.sh, and calibench's Python package where
# it is installed), so only the peers and what they import are added. Measured on the 2-core
# CI machine kind: ~80 s, 2.7 GB downloaded, 4.3 GB on disk (tests/peers/README.md).
# torch: PyPI has no CPU-only Linux wheel, and the x86_64 wheel links the CUDA libraries, so
# `import torch` needs the nvidia-* wheels even on a machine without a GPU. Everything torch
# declares is installed except triton (the torch.compile code generator, ~1 GB, never imported
# by eager CPU code). netcal is installed without its declared dependencies (pyro-ppl, gpytorch,
# tensorboard: used by its Bayesian/regression calibrators, not by netcal.metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CALIBENCH_PEERS_VENV:-.venv-peers}
BASE_PYTHON=${CALIBENCH_PEERS_BASE_PYTHON:-python3}
TORCH=torch==2.15.0
PEERS=(uncertainty-calibration==0.1.4 relplot==1.0.3 KDEpy==1.1.12 lightning-utilities packaging venn-abers==1.5.4
       cir-model==0.2.0)
# Installed with --no-deps: pip would otherwise pull triton back in through torch's metadata
# (torchmetrics) or pyro-ppl, gpytorch and tensorboard (netcal).
NO_DEPS=(torchmetrics==1.9.0 netcal==1.4.0 betacal==1.1.0 probmetrics==1.3.0 pytorch-minimize==0.1.0)
# What the tests and the peers import from the base interpreter; pip skips those already there.
BASE_PACKAGES=(numpy h5py scipy scikit-learn pytest matplotlib pandas seaborn deprecation tqdm)
PIP=(-m pip install -q --disable-pip-version-check --no-cache-dir)
CHECK="import torch, torchmetrics, netcal.metrics, calibration, relplot, KDEpy, betacal, venn_abers, cir_model, probmetrics, torchmin, h5py, pytest"

py="$VENV/bin/python"
if [ -x "$py" ] && "$py" -c "$CHECK" 2>/dev/null; then
  echo "setup_peers: peer libraries present in $VENV" >&2
  exit 0
fi

if ! { [ -x "$py" ] && "$py" -c "import sys" 2>/dev/null; }; then
  echo "setup_peers: creating $VENV (venv of $($BASE_PYTHON -c 'import sys; print(sys.executable)') with its site-packages)" >&2
  rm -rf "$VENV"
  "$BASE_PYTHON" -m venv --system-site-packages "$VENV"
fi

start=$SECONDS
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "setup_peers: installing $TORCH and the CUDA runtime wheels it links (no triton)" >&2
  "$py" "${PIP[@]}" --no-deps "$TORCH"
  mapfile -t torch_deps < <("$py" - <<'EOF'
from importlib.metadata import requires
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
for spec in requires("torch") or []:
    r = Requirement(spec)
    if r.name == "triton" or (r.marker is not None and not r.marker.evaluate({"extra": ""})):
        continue
    print(str(r).split(";")[0].strip())
EOF
  )
  # pip warns that triton is missing: that is intended.
  "$py" "${PIP[@]}" "${torch_deps[@]}" 2>&1 | { grep -v -E "dependency resolver does not|requires triton" || true; } >&2
fi

if ! "$py" -c "$CHECK" 2>/dev/null; then
  echo "setup_peers: installing ${NO_DEPS[*]} (no deps), ${PEERS[*]} and, where missing, ${BASE_PACKAGES[*]}" >&2
  "$py" "${PIP[@]}" "${BASE_PACKAGES[@]}" "${PEERS[@]}"
  "$py" "${PIP[@]}" --no-deps "${NO_DEPS[@]}"
fi

"$py" -c "$CHECK" || { echo "setup_peers: the peer libraries do not import in $VENV" >&2; exit 1; }
echo "setup_peers: peers installed in $VENV in $((SECONDS - start)) s ($(du -sh "$VENV" | cut -f1))" >&2
