"""Beta calibration (`fit --method beta`, docs/calibrators.md) against the float64 reference of
tests/reference/beta_ref.py (the maximum-likelihood fit with betacal 1.1.0's rule for a negative
slope) on binary logits and probabilities, top-label K > 2 splits, both refit forms, `apply`,
refusals, the real dumps; and against betacal itself where it is installed (the peers'
environment): exactly its code path with its logistic regression converged (1e-8), and betacal
as shipped (lbfgs at tol 1e-4: within 1e-3, never a better likelihood than calibench's)."""
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
import beta_ref  # noqa: E402
import calib_ref  # noqa: E402
from conftest import REPO, calibench_bin  # noqa: E402
from fit_helpers import write_splits  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real" / "h5"


def binary(rng, n, flip=False):
    y = rng.integers(0, 2, n)
    s = (2.0 * y - 1.0) * rng.uniform(0.5, 2.0) + rng.normal(size=n) * rng.uniform(0.7, 2.0)
    return (-s if flip else s), y


def write(path, splits, kind="logits"):
    return write_splits(path, splits, kind)


def fit_json(path, *extra):
    proc = subprocess.run([calibench_bin(), "fit", str(path), "--method", "beta", "--format", "json", *extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def p_of(values, kind):
    """P(class 1) as calibench computes it from a binary split."""
    return values if kind == "probs" else expit(values)


CASES = {  # name: (flip the scores, probabilities instead of logits, transform of the scores)
    "logits": (False, False, None),
    "probs": (False, True, None),
    "sharp": (False, False, lambda s: 4 * s),  # over-confident: a, b < 1
    "flipped": (True, False, None),  # anti-correlated: a < 0, betacal refits (b, c)
    "skewed": (False, True, None),  # over-confident at the top only: b < 0, betacal refits (a, c)
}


def skewed(rng, n):
    """P(class 1) uniform, calibrated below 0.52 and a constant 0.3 above: b < 0."""
    p = rng.uniform(0.01, 0.999, n)
    y = (rng.random(n) < np.where(p > 0.52, 0.3, p)).astype(np.int64)
    return p, y


@pytest.mark.parametrize("name", list(CASES))
def test_binary_fit_equals_the_reference(tmp_path, name):
    flip, probs, warp = CASES[name]
    rng = np.random.default_rng(list(CASES).index(name))
    (sv, yv), (st, yt) = binary(rng, 1500, flip), binary(rng, 1000, flip)
    if warp is not None:
        sv, st = warp(sv), warp(st)
    kind = "probs" if probs else "logits"
    vv, vt = (expit(sv), expit(st)) if probs else (sv, st)
    if name == "skewed":
        (vv, yv), (vt, yt) = skewed(rng, 1500), skewed(rng, 1000)
    path = write(tmp_path / "d.h5", {"val": (vv, yv), "test": (vt, yt)}, kind)
    got = fit_json(path, "--save", tmp_path / "cal.h5")
    w, form = beta_ref.fit(p_of(vv, kind), yv)
    params = got["params"]
    assert got["binary"] is True and params["multiclass"] == "binary" and params["stop"] == "converged"
    assert params["form"] == form
    assert np.allclose([params["a"], params["b"], params["c"]], w, rtol=1e-8, atol=1e-9), (params, w)
    if name == "flipped":
        assert form == "bc" and params["a"] == 0.0
    if name == "skewed":
        assert form == "ac" and params["b"] == 0.0
    # The calibrated test probabilities, through the saved file, equal the reference map's.
    with h5py.File(tmp_path / "cal.h5") as f:
        q = f["test/probs"][:, 1]
    assert np.max(np.abs(q - beta_ref.calibrate(p_of(vt, kind), w))) < 1e-9


def test_top_label_fit_equals_the_reference(tmp_path):
    rng = np.random.default_rng(5)
    k = 7
    z = rng.normal(size=(2400, k)) * 2.0
    y = rng.integers(0, k, 2400)
    z[np.arange(2400), y] += 2.0
    path = write(tmp_path / "k7.h5", {"val": (z[:1200], y[:1200]), "test": (z[1200:], y[1200:])})
    got = fit_json(path, "--save", tmp_path / "cal.h5")
    val = calib_ref.from_logits(z[:1200], y[:1200])
    w, form = beta_ref.fit(val.c, val.correct)
    params = got["params"]
    assert params["multiclass"] == "top-label" and params["form"] == form
    assert np.allclose([params["a"], params["b"], params["c"]], w, rtol=1e-8, atol=1e-9)
    test = calib_ref.from_logits(z[1200:], y[1200:])
    with h5py.File(tmp_path / "cal.h5") as f:
        p = f["test/probs"][:]
    # The prediction's probability is the map's; the others are rescaled so that rows sum to 1.
    assert np.max(np.abs(p[np.arange(1200), test.yhat] - beta_ref.calibrate(test.c, w))) < 1e-9
    assert np.max(np.abs(p.sum(1) - 1)) < 1e-12


def test_apply_gives_the_fit(tmp_path):
    rng = np.random.default_rng(9)
    (sv, yv), (st, yt) = binary(rng, 800), binary(rng, 800)
    path = write(tmp_path / "d.h5", {"val": (sv, yv), "test": (st, yt)})
    fitted = fit_json(path, "--save", tmp_path / "cal.h5")
    proc = subprocess.run([calibench_bin(), "apply", str(tmp_path / "cal.h5"), str(path), "--format", "json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test"] == fitted["test"]


@pytest.mark.parametrize("case, needle", [
    ("one_target", "the fit needs both outcomes"),
    ("constant", "the slopes are not identifiable"),
    ("separable", "the maximum-likelihood fit does not exist"),
])
def test_refusals(tmp_path, case, needle):
    rng = np.random.default_rng(2)
    s, y = binary(rng, 300)
    if case == "one_target":
        y[:] = 1
    elif case == "constant":
        s[:] = 0.3
    else:
        s = np.where(y == 1, 1.0 + rng.random(300), -1.0 - rng.random(300))
    path = write(tmp_path / "d.h5", {"val": (s, y), "test": (s, y)})
    proc = subprocess.run([calibench_bin(), "fit", str(path), "--method", "beta"], capture_output=True, text=True)
    assert proc.returncode == 2 and needle in proc.stderr and "/val/logits" in proc.stderr, proc.stderr


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} absent (the real dumps)")
def test_real_dumps():
    paths = sorted(REAL.glob("*.h5"))[:6]
    assert paths
    for path in paths:
        got = fit_json(path)
        val = calib_ref.load_split(str(path), "val")
        p_val, target = (val.p[:, 1], val.y == 1) if val.k == 2 else (val.c, val.correct)
        w, form = beta_ref.fit(p_val, target.astype(np.float64))
        p = got["params"]
        assert p["form"] == form and np.allclose([p["a"], p["b"], p["c"]], w, rtol=1e-7, atol=1e-8), path.name


# ------------------------------------------------------------------ betacal itself (peers' venv)


def _nll(q, y):
    return float(np.mean(-(y * np.log(q) + (1 - y) * np.log1p(-q))))


@pytest.mark.parametrize("name", list(CASES))
def test_betacal(monkeypatch, name):
    betacal = pytest.importorskip("betacal", reason="betacal 1.1.0 is in the peers' environment (scripts/setup_peers.sh)")
    calibench = pytest.importorskip("calibench")
    flip, _, warp = CASES[name]
    rng = np.random.default_rng(100 + list(CASES).index(name))
    s, y = binary(rng, 2000, flip)
    if warp is not None:
        s = warp(s)
    p = expit(s)
    if name == "skewed":
        p, y = skewed(rng, 2000)
    ours = calibench.fit("beta", p, y, probs=True).transform(p)[:, 1]
    # As shipped: its lbfgs stops at tol 1e-4, short of the maximum of the likelihood.
    shipped = betacal.BetaCalibration(parameters="abm").fit(p, y).predict(p)
    assert np.max(np.abs(ours - shipped)) < 1e-3
    assert _nll(ours, y) <= _nll(shipped, y) + 1e-12
    # Its own code path with the logistic regression converged: the same map.
    import betacal.beta_calibration as module
    from sklearn.linear_model import LogisticRegression

    class Converged(LogisticRegression):
        def __init__(self, C=1.0, **kw):
            super().__init__(C=C, tol=1e-12, max_iter=100000, **kw)

    monkeypatch.setattr(module, "LogisticRegression", Converged)
    tight = betacal.BetaCalibration(parameters="abm").fit(p, y).predict(p)
    assert np.max(np.abs(ours - tight)) < 1e-8
