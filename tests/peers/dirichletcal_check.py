"""calibench's dir_l2 / dir_diag against dirichletcal itself, run by hand (docs/calibrators.md).

dirichletcal does not install from PyPI (its sdist's requirements are malformed), so this is not
a CTest suite. To run it: fetch github dirichletcal/dirichlet_python (b03f65f) into /tmp/dirsrc,
`python3 -m venv --system-site-packages /tmp/venv-dir && /tmp/venv-dir/bin/pip install jax`,
build calibench, then `/tmp/venv-dir/bin/python tests/peers/dirichletcal_check.py`. It prints
the largest difference in test probabilities per (K, method, lambda).
"""
import pathlib
import subprocess
import sys

import h5py
import numpy as np
from scipy.special import softmax

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, "/tmp/dirsrc")
sys.path.insert(0, str(REPO / "tests" / "support"))
from dirichletcal.calib.diagdirichlet import DiagonalDirichletCalibrator  # noqa: E402
from dirichletcal.calib.fulldirichlet import FullDirichletCalibrator  # noqa: E402
from fit_helpers import tempered_split, write_dump  # noqa: E402

for name, (seed, n, k) in {"k3": (1, 800, 3), "k5": (2, 1000, 5), "k10": (3, 1500, 10)}.items():
    rng = np.random.default_rng(seed); tau = 1.6 * np.exp(0.3 * rng.normal(size=k))
    val, test = tempered_split(rng, n, k, 2.5, tau), tempered_split(rng, n, k, 2.5, tau)
    path = f'/tmp/dc_{name}.h5'; write_dump(path, val, test, k)
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    for method, cls in (("dir_l2", FullDirichletCalibrator), ("dir_diag", DiagonalDirichletCalibrator)):
        for lam in (0.1, 3.0):
            c = cls(reg_lambda=lam, reg_norm=True).fit(pv, val[1])
            want = c.predict_proba(pt)
            subprocess.run([str(REPO / 'build' / 'calibench'), 'fit', path, '--method', method, '--l2-lambda', str(lam),
                            '--save', '/tmp/dc_cal.h5', '--format', 'json'], check=True, capture_output=True)
            with h5py.File('/tmp/dc_cal.h5') as f: got = f['test/probs'][:]
            d = float(np.max(np.abs(got - want)))
            print(name, method, lam, f"max|dp| = {d:.2e}", flush=True)
