"""Spline recalibration (`fit --method spline`, Gupta et al. ICLR 2021; docs/calibrators.md)
against tests/reference/spline_ref.py, the float64 port of the authors' code
(kartikgupta-at-anu/spline-calibration b6a2f60, checked against that code itself in
tests/reference/test_spline_ref.py): calibrated top-label confidences of the test split under
both interpolations, the knot values, the other classes' rescaling, ties, fewer samples than
knots, other knot counts, a real dump, `apply`, and the option errors."""
import sys

import h5py
import numpy as np
import pytest
from scipy.special import softmax

from conftest import REPO
from fit_helpers import run_cli, softmax_splits, write_dump  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import spline_ref  # noqa: E402

# The same float64 operations in another order (Eigen's complete orthogonal decomposition for
# numpy's lstsq, a tridiagonal solve for inv(A) B): seen below 2e-14.
TOL = 1e-12
# The real dump's confidences crowd below 1 (nodes 1e-16 apart): an ulp between calibench's
# softmax and scipy's moves a test confidence across a sliver of the interpolation (seen: 4.8e-12).
REAL_TOL = 1e-10
REAL = REPO.parent / "shared" / "data" / "real" / "h5" / "wasscal_cifar10_resnet20.h5"


def top(p, labels):
    pred = p.argmax(1)
    return p.max(1), (pred == labels).astype(np.float64), pred


def check(calibench, path, tmp_path, pv, yv, pt, *extra, knots=6, interpolation="linear", tol=TOL):
    out, ctx = run_cli(calibench, "fit", path, "--method", "spline", "--save", tmp_path / "cal.h5", *extra)
    cv, av, _ = top(pv, yv)
    model = spline_ref.fit(cv, av, knots=knots)
    ct, _, pred = top(pt, np.zeros(len(pt), dtype=np.int64))
    want = spline_ref.calibrate(model, ct, interpolation=interpolation)
    with h5py.File(tmp_path / "cal.h5") as f:
        q = f["test/probs"][:]
    rows = np.arange(len(pt))
    assert np.max(np.abs(q[rows, pred] - want)) < tol, (ctx, np.max(np.abs(q[rows, pred] - want)))
    params = out["params"]
    assert params["interpolation"] == interpolation and params["knots"] == knots, ctx
    assert np.max(np.abs(np.asarray(params["knot_values"]) - model["knot_values"])) < TOL, ctx
    # The other classes share the rest, 1 - c', in proportion to their probabilities; rows sum to 1.
    # (Rows whose other classes are all 0 follow the rule of docs/calibrators.md's "Apply (both)"
    # for hist / iso, tested in test_fit_hist_iso.py; here the sum to 1 only.)
    rest = pt.copy()
    rest[rows, pred] = 0
    live = rest.sum(1) > 0
    scale = np.where(live, 1 - q[rows, pred], 0.0) / np.where(live, rest.sum(1), 1.0)
    mask = np.ones_like(pt, dtype=bool)
    mask[rows, pred] = False
    mask &= live[:, None]
    assert np.allclose(q[mask], (rest * scale[:, None])[mask], rtol=1e-12, atol=1e-15), ctx
    assert np.max(np.abs(q.sum(1) - 1)) < 1e-12, ctx
    return out


@pytest.mark.parametrize("interpolation", ["linear", "authors"])
@pytest.mark.parametrize("seed, n, k, tau", [(1, 3000, 10, 2.0), (2, 800, 3, 0.6), (3, 10000, 5, 1.4)])
def test_random_dumps_equal_the_reference(calibench, tmp_path, seed, n, k, tau, interpolation):
    rng = np.random.default_rng(seed)
    val, test = make_split(rng, n, k, 2.5, np.full(k, tau)), make_split(rng, 1500, k, 2.5, np.full(k, tau))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    check(calibench, path, tmp_path, pv, val[1], pt, "--spline-interpolation", interpolation,
          interpolation=interpolation)


@pytest.mark.parametrize("interpolation", ["linear", "authors"])
def test_ties_and_test_points_on_the_nodes(calibench, tmp_path, interpolation):
    """Probabilities rounded to 2 decimals: tie groups, test confidences equal to nodes."""
    rng = np.random.default_rng(7)
    k, n = 4, 3000
    p = rng.dirichlet(np.full(k, 0.4), size=2 * n)
    p = np.round(p, 2)
    p[:, -1] = 1 - p[:, :-1].sum(1)
    p = p[(p[:, -1] > 0.005)]
    y = np.array([rng.choice(k, p=row / row.sum()) for row in p]).astype(np.int32)
    pv, yv, pt, yt = p[:n], y[:n], p[n:], y[n:]
    path = tmp_path / "ties.h5"
    write_dump(path, (pv, yv), (pt, yt), k, probs=True)
    out = check(calibench, path, tmp_path, pv, yv, pt, "--spline-interpolation", interpolation,
                interpolation=interpolation)
    distinct = np.unique(pv.max(1))
    assert len(distinct) < len(pv) // 5 and out["params"]["x"] == distinct.tolist()  # a node per distinct confidence


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_fewer_samples_than_knots(calibench, tmp_path, n):
    rng = np.random.default_rng(11 + n)
    val, test = make_split(rng, n, 3, 2.0, np.ones(3)), make_split(rng, 50, 3, 2.0, np.ones(3))
    path = tmp_path / "small.h5"
    write_dump(path, val, test, 3)
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    check(calibench, path, tmp_path, pv, val[1], pt)


@pytest.mark.parametrize("knots", [2, 3, 20])
def test_knots_option(calibench, tmp_path, knots):
    rng = np.random.default_rng(21)
    val, test = make_split(rng, 2000, 6, 2.5, np.full(6, 1.8)), make_split(rng, 900, 6, 2.5, np.full(6, 1.8))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 6)
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    check(calibench, path, tmp_path, pv, val[1], pt, "--spline-knots", knots, knots=knots)


def test_real_dump(calibench, tmp_path):
    if not REAL.exists():
        pytest.skip(f"{REAL} absent")
    pv, yv, pt = softmax_splits(REAL)
    out = check(calibench, REAL, tmp_path, pv, yv, pt, tol=REAL_TOL)
    uncal, _ = run_cli(calibench, "eval", REAL)
    assert out["test"]["ece"] < uncal["ece"]  # eval scores /test


def test_apply_gives_the_fit(calibench, tmp_path):
    rng = np.random.default_rng(31)
    val, test = make_split(rng, 1000, 5, 2.5, np.full(5, 2.0)), make_split(rng, 700, 5, 2.5, np.full(5, 2.0))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 5)
    fitted, _ = run_cli(calibench, "fit", path, "--method", "spline", "--spline-interpolation", "authors",
                        "--save", tmp_path / "cal.h5")
    applied, _ = run_cli(calibench, "apply", tmp_path / "cal.h5", path)
    assert applied["test"] == fitted["test"]


@pytest.mark.parametrize("args, needle", [
    (["--spline-knots", "1"], "--spline-knots"),
    (["--spline-interpolation", "cubic"], "--spline-interpolation"),
    (["--calib-bins", "5"], "--calib-bins applies to"),
])
def test_option_errors(calibench, tmp_path, args, needle):
    rng = np.random.default_rng(41)
    val = make_split(rng, 100, 3, 2.0, np.ones(3))
    path = tmp_path / "d.h5"
    write_dump(path, val, val, 3)
    proc = calibench("fit", path, "--method", "spline", *args)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
