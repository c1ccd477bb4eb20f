"""The scaling-binning calibrator (`fit --method scaling_binning`, docs/calibrators.md) against a
NumPy reference written from uncertainty-calibration 0.1.4's PlattBinnerTopCalibrator
(calibrators.py; utils.get_platt_scaler, get_equal_bins, get_discrete_calibrator) with the exact
maximum-likelihood Platt fit of tests/reference/platt_ref.py, and against the library itself in
the peers' environment (its logistic regression converged)."""
import json
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy.special import expit

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import calib_ref  # noqa: E402
import platt_ref  # noqa: E402
from conftest import REPO, calibench_bin  # noqa: E402
from fit_helpers import write_splits  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real" / "h5"


def data(rng, n, k):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 1.5
    z[np.arange(n), y] += 1.5
    return z * 1.5, y


def equal_bins(probs, num_bins):
    """uncertainty-calibration's get_equal_bins."""
    s = sorted(probs)
    num_bins = min(num_bins, len(s))
    groups = [list(g) for g in np.array_split(s, num_bins)]
    bins = [(groups[i][-1] + groups[i + 1][0]) / 2.0 for i in range(len(groups) - 1)] + [1.0]
    return sorted(set(bins))


def reference(v, t, m):
    """(calibrated top-label test confidences, a, b): Platt on log(c / (1 - c)) of the top-label
    confidence against correctness, equal-mass bins of the Platt values, each bin's mean."""
    sv = np.log(v.c) - np.log1p(-v.c)
    st = np.log(t.c) - np.log1p(-t.c)
    p = platt_ref.fit(sv, v.correct)
    g = expit(p["a"] * sv + p["b"])
    bins = equal_bins(g, m)
    idx = np.searchsorted(bins, g)
    means = np.array([g[idx == b].mean() if np.any(idx == b) else
                      (bins[0] / 2 if b == 0 else (bins[b] + bins[b - 1]) / 2) for b in range(len(bins))])
    return means[np.searchsorted(bins, expit(p["a"] * st + p["b"]))], p["a"], p["b"]


def fit(path, save, m):
    proc = subprocess.run([calibench_bin(), "fit", str(path), "--method", "scaling_binning", "--calib-bins", str(m),
                           "--format", "json", "--save", str(save)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(save) as f:
        return json.loads(proc.stdout), f["test/probs"][:]


@pytest.mark.parametrize("k, m", [(2, 10), (5, 15), (20, 7), (10, 2000)])
def test_equals_the_reference(tmp_path, k, m):
    rng = np.random.default_rng(k * 100 + m)
    (zv, yv), (zt, yt) = data(rng, 1500, k), data(rng, 1000, k)
    path = write_splits(tmp_path / "d.h5", {"val": (zv, yv), "test": (zt, yt)})
    got, p = fit(path, tmp_path / "cal.h5", m)
    v, t = calib_ref.from_logits(zv, yv), calib_ref.from_logits(zt, yt)
    want, a, b = reference(v, t, m)
    assert abs(got["params"]["a"] - a) <= 1e-9 * abs(a) and abs(got["params"]["b"] - b) <= 1e-9 * max(1, abs(b))
    assert len(got["params"]["edges"]) <= min(m, 1500)  # ties merge edges
    assert np.max(np.abs(p[np.arange(len(yt)), t.yhat] - want)) <= 1e-12
    assert got["test"]["accuracy"] == t.correct.mean()  # the prediction is kept


def test_apply_gives_the_fit(tmp_path):
    rng = np.random.default_rng(1)
    path = write_splits(tmp_path / "d.h5", {"val": data(rng, 800, 4), "test": data(rng, 800, 4)})
    fitted, _ = fit(path, tmp_path / "cal.h5", 10)
    proc = subprocess.run([calibench_bin(), "apply", str(tmp_path / "cal.h5"), str(path), "--format", "json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test"] == fitted["test"]


def test_auto_bins_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    path = write_splits(tmp_path / "d.h5", {"val": data(rng, 100, 4), "test": data(rng, 100, 4)})
    proc = subprocess.run([calibench_bin(), "fit", str(path), "--method", "scaling_binning", "--calib-bins", "auto"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "scaling_binning needs M" in proc.stderr


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} absent (the real dumps)")
def test_real_dumps(tmp_path):
    for path in sorted(REAL.glob("*.h5"))[:4]:
        _, p = fit(path, tmp_path / "cal.h5", 15)
        v, t = calib_ref.load_split(str(path), "val"), calib_ref.load_split(str(path), "test")
        want, _, _ = reference(v, t, 15)
        assert np.max(np.abs(p[np.arange(t.n), t.yhat] - want)) <= 1e-9, path.name


def test_uncertainty_calibration_itself(tmp_path, monkeypatch):
    calibration = pytest.importorskip("calibration", reason="uncertainty-calibration is in the peers' environment")
    import calibration.utils as utils
    from sklearn.linear_model import LogisticRegression

    class Converged(LogisticRegression):  # the library's LogisticRegression(C=1e10), run to convergence
        def __init__(self, C=1.0, **kw):
            super().__init__(C=C, **{**kw, "tol": 1e-12, "max_iter": 100000})

    monkeypatch.setattr(utils, "LogisticRegression", Converged)
    rng = np.random.default_rng(5)
    (zv, yv), (zt, yt) = data(rng, 2000, 6), data(rng, 1000, 6)
    path = write_splits(tmp_path / "d.h5", {"val": (zv, yv), "test": (zt, yt)})
    _, p = fit(path, tmp_path / "cal.h5", 10)
    v, t = calib_ref.from_logits(zv, yv), calib_ref.from_logits(zt, yt)
    lib = calibration.PlattBinnerTopCalibrator(num_calibration=len(yv), num_bins=10)
    lib.train_calibration(v.p, yv)
    # C = 1e10 leaves a penalty of 5e-11 |a|^2: the slopes agree to ~1e-9.
    assert np.max(np.abs(p[np.arange(len(yt)), t.yhat] - lib.calibrate(t.p))) <= 1e-8


def test_probability_dumps_with_zero_classes(tmp_path):
    """A class that is always 0 leaves the top-label log-odds finite: the fit runs (as platt's)."""
    rng = np.random.default_rng(8)
    (zv, yv), (zt, yt) = data(rng, 900, 3), data(rng, 900, 3)
    pv, pt = calib_ref.from_logits(zv, yv).p, calib_ref.from_logits(zt, yt).p
    pv[:, 2], pt[:, 2] = 0.0, 0.0
    pv /= pv.sum(axis=1, keepdims=True)
    pt /= pt.sum(axis=1, keepdims=True)
    yv, yt = np.minimum(yv, 1), np.minimum(yt, 1)
    path = write_splits(tmp_path / "p.h5", {"val": (pv, yv), "test": (pt, yt)}, "probs")
    _, p = fit(path, tmp_path / "cal.h5", 10)
    v, t = calib_ref.from_probs(pv, yv), calib_ref.from_probs(pt, yt)
    want, _, _ = reference(v, t, 10)
    assert np.max(np.abs(p[np.arange(len(yt)), t.yhat] - want)) <= 1e-9
    pv[5] = [1.0, 0.0, 0.0]  # top-label probability 1: the log-odds is infinite
    write_splits(tmp_path / "one.h5", {"val": (pv, yv), "test": (pt, yt)}, "probs")
    proc = subprocess.run([calibench_bin(), "fit", str(tmp_path / "one.h5"), "--method", "scaling_binning"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "row 5: scaling_binning needs a finite top-label log-odds (got inf" in proc.stderr
