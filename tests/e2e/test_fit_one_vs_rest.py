"""`--multiclass one-vs-rest` of platt, beta, hist, iso and cir (bbq and enir: tests/e2e/test_fit_bbq_enir.py) (docs/calibrators.md): one calibrator
per class on that class's score against [label == j] (class 1 alone for K = 2), rows divided by
their sums (uniform where every value is 0), as scikit-learn's CalibratedClassifierCV does.
`iso` equals CalibratedClassifierCV(method="isotonic") itself on the same probabilities;
platt, beta, hist and cir equal per-class references (platt_ref, beta_ref, a numpy histogram,
hist_iso_ref.cir_knots);
`--multiclass top-label` on K = 2; apply; refusals."""
import json
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy.special import expit, logsumexp

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import beta_ref  # noqa: E402
import calib_ref  # noqa: E402
import hist_iso_ref  # noqa: E402
import platt_ref  # noqa: E402
from conftest import calibench_bin  # noqa: E402
from fit_helpers import write_splits  # noqa: E402


def data(rng, n, k):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 1.5
    z[np.arange(n), y] += 1.5
    return z * 1.7, y


def write(path, val, test):
    return write_splits(path, {"val": val, "test": test})


def run(*args):
    return subprocess.run([calibench_bin(), *map(str, args)], capture_output=True, text=True, timeout=600)


def fit(path, method, save, *extra):
    proc = run("fit", path, "--method", method, "--multiclass", "one-vs-rest", "--format", "json", "--save", save,
               *extra)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(save) as f:
        return json.loads(proc.stdout), f["test/probs"][:]


def log_odds(z):
    """z_j - logsumexp of the other logits, per class."""
    k = z.shape[1]
    out = np.empty_like(z)
    for j in range(k):
        out[:, j] = z[:, j] - logsumexp(np.delete(z, j, axis=1), axis=1)
    return out


def renormalise(q, k):
    if k == 2:
        return np.stack([1.0 - q[:, 1], q[:, 1]], axis=1)
    s = q.sum(axis=1, keepdims=True)
    out = np.where(s != 0, q / np.where(s == 0, 1, s), 1.0 / k)
    out[(out > 1.0) & (out <= 1.0 + 1e-5)] = 1.0
    return out


def per_class(fit_one, score_v, score_t, yv, k):
    """Each mapped class's calibrated test scores (class 1 only for K = 2), renormalised."""
    q = np.zeros_like(score_t)
    for j in ([1] if k == 2 else range(k)):
        q[:, j] = fit_one(score_v[:, j], (yv == j).astype(np.float64), score_t[:, j])
    return renormalise(q, k)


def ref_platt(sv, tv, st):
    p = platt_ref.fit(sv, tv)
    return expit(p["a"] * st + p["b"])


def ref_beta(pv, tv, pt):
    w, _ = beta_ref.fit(pv, tv)
    return beta_ref.calibrate(pt, w)


def ref_hist(m):
    def fit_one(pv, tv, pt):
        bins = lambda p: np.clip(np.ceil(p * m).astype(int) - 1, 0, m - 1)  # noqa: E731  right-closed, 0 in bin 0
        bv = bins(pv)
        counts = np.bincount(bv, minlength=m)
        hits = np.bincount(bv, weights=tv, minlength=m)
        values = np.where(counts > 0, hits / np.maximum(counts, 1), 0.0)
        return values[bins(pt)]
    return fit_one


def ref_cir(pv, tv, pt):
    knots = hist_iso_ref.cir_knots(pv, tv)
    return hist_iso_ref.isotonic_at(knots["x"], knots["y"], pt)


@pytest.mark.parametrize("k", [2, 4, 10])
@pytest.mark.parametrize("method", ["platt", "beta", "hist", "cir"])
def test_equals_the_per_class_reference(tmp_path, method, k):
    rng = np.random.default_rng(10 * k + len(method))
    (zv, yv), (zt, yt) = data(rng, 1500, k), data(rng, 1200, k)
    path = write(tmp_path / "d.h5", (zv, yv), (zt, yt))
    extra = ("--calib-bins", 12) if method == "hist" else ()
    got, p = fit(path, method, tmp_path / "cal.h5", *extra)
    assert got["params"]["multiclass"] == "one-vs-rest" and len(got["params"]["classes"]) == (1 if k == 2 else k)
    assert got["options"]["multiclass"] == "one-vs-rest"
    pv, pt = calib_ref.from_logits(zv, yv).p, calib_ref.from_logits(zt, yt).p
    if method == "platt":
        want = per_class(ref_platt, log_odds(zv), log_odds(zt), yv, k)
    elif method == "beta":
        want = per_class(ref_beta, pv, pt, yv, k)
    elif method == "cir":
        want = per_class(ref_cir, pv, pt, yv, k)
    else:
        want = per_class(ref_hist(12), pv, pt, yv, k)
    assert np.max(np.abs(p - want)) <= 1e-9
    # The prediction is the calibrated argmax.
    assert got["test"]["accuracy"] == np.mean(p.argmax(axis=1) == yt)


@pytest.mark.parametrize("k", [2, 5])
def test_iso_equals_scikit_learn(tmp_path, k):
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    rng = np.random.default_rng(k)
    (zv, yv), (zt, yt) = data(rng, 1500, k), data(rng, 1000, k)
    pv, pt = calib_ref.from_logits(zv, yv).p, calib_ref.from_logits(zt, yt).p

    class Stored(ClassifierMixin, BaseEstimator):
        """A fitted classifier whose predict_proba returns the stored probabilities of row X[i, 0]."""

        def fit(self, X, y):
            self.classes_ = np.arange(k)
            return self

        def predict_proba(self, X):
            rows = X[:, 0].astype(int)
            return np.where(X[:, 1:2] > 0, pt[rows % len(pt)], pv[rows % len(pv)])

        def predict(self, X):
            return self.predict_proba(X).argmax(axis=1)

    clf = Stored().fit(None, None)
    xv = np.stack([np.arange(len(pv)), np.zeros(len(pv))], axis=1)
    xt = np.stack([np.arange(len(pt)), np.ones(len(pt))], axis=1)
    sk = CalibratedClassifierCV(FrozenEstimator(clf), method="isotonic").fit(xv, yv).predict_proba(xt)
    path = write(tmp_path / "d.h5", (zv, yv), (zt, yt))
    _, p = fit(path, "iso", tmp_path / "cal.h5")
    assert np.max(np.abs(p - sk)) <= 1e-12


def test_rows_of_zeros_become_uniform(tmp_path):
    """Validation probabilities where, for every class, the positives have p_j >= 0.5 and the
    negatives reach 0.3: each class's isotonic map is 0 on [0, 0.3], so the test row
    (0.25, 0.25, 0.25, 0.25) calibrates to all zeros and becomes uniform, as in scikit-learn."""
    rng = np.random.default_rng(3)
    k, n = 4, 400
    y = np.arange(n) % k
    p = np.full((n, k), 0.0)
    for i in range(n):
        other = (y[i] + 1 + i % 3) % k
        p[i, y[i]] = 0.6
        p[i, other] = 0.3
        rest = [j for j in range(k) if j not in (y[i], other)]
        p[i, rest] = 0.05
    pt = np.vstack([np.full((2, k), 0.25), p[:10]])
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        for name, (values, labels) in (("val", (p, y)), ("test", (pt, y[:12]))):
            f[f"{name}/probs"] = values
            f[f"{name}/labels"] = labels.astype(np.int32)
    _, q = fit(tmp_path / "p.h5", "iso", tmp_path / "cal.h5")
    assert np.array_equal(q[:2], np.full((2, k), 1 / k))
    assert np.max(np.abs(q.sum(axis=1) - 1)) <= 1e-12


@pytest.mark.parametrize("method", ["platt", "beta", "hist", "iso", "cir"])
def test_apply_gives_the_fit_and_checks_k(tmp_path, method):
    rng = np.random.default_rng(7)
    path = write(tmp_path / "d.h5", data(rng, 900, 5), data(rng, 900, 5))
    fitted, _ = fit(path, method, tmp_path / "cal.h5")
    proc = run("apply", tmp_path / "cal.h5", path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test"] == fitted["test"]
    other = write(tmp_path / "k3.h5", data(rng, 100, 3), data(rng, 100, 3))
    proc = run("apply", tmp_path / "cal.h5", other)
    assert proc.returncode == 2 and "has 5 class map(s) (K = 5) but the split has K = 3" in proc.stderr, proc.stderr


@pytest.mark.parametrize("method", ["platt", "beta"])
def test_top_label_on_k2(tmp_path, method):
    rng = np.random.default_rng(11)
    (zv, yv), (zt, yt) = data(rng, 1000, 2), data(rng, 1000, 2)
    path = write(tmp_path / "d.h5", (zv, yv), (zt, yt))
    proc = run("fit", path, "--method", method, "--multiclass", "top-label", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["params"]["multiclass"] == "top-label"
    v = calib_ref.from_logits(zv, yv)
    if method == "beta":
        w, _ = beta_ref.fit(v.c, v.correct)
        assert np.allclose([got["params"][x] for x in "abc"], w, rtol=1e-8, atol=1e-9)
    else:
        want = platt_ref.fit(np.log(v.c) - np.log1p(-v.c), v.correct)
        assert np.allclose([got["params"]["a"], got["params"]["b"]], [want["a"], want["b"]], rtol=1e-8, atol=1e-9)


def test_refusals(tmp_path):
    rng = np.random.default_rng(2)
    z, y = data(rng, 300, 4)
    y[y == 3] = 0  # class 3 never occurs in the validation split: its platt fit does not exist
    path = write(tmp_path / "d.h5", (z, y), (z, y))
    proc = run("fit", path, "--method", "platt", "--multiclass", "one-vs-rest")
    assert proc.returncode == 2 and "platt (one-vs-rest), class 3" in proc.stderr, proc.stderr
    assert "the fit needs both outcomes" in proc.stderr
    proc = run("fit", path, "--method", "ts", "--multiclass", "one-vs-rest")
    assert proc.returncode == 2 and "--multiclass applies to platt, beta, bbq, enir, hist, iso and cir, not ts" in proc.stderr
    proc = run("fit", path, "--method", "iso", "--multiclass", "each")
    assert proc.returncode == 2 and "--multiclass" in proc.stderr and "one-vs-rest" in proc.stderr
