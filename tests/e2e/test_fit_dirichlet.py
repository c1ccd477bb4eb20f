# `calibench fit --method dir_l2|dir_diag` (dirichletcal's FullDirichletCalibrator and
# DiagonalDirichletCalibrator with reg_norm = True: the L2 penalty on [W | b] in reference-row
# form; docs/calibrators.md) against the float64 port of dirichletcal's objective
# (tests/reference/dirichlet_ref.py, dirichletcal/dirichlet_python b03f65f) on seeded random dumps
# (K = 2, 3, 10), probability dumps, and a real dump (../shared/data/real/h5, skipped when absent);
# dir_l2's 5-fold cross-validation against the reference on the documented folds; `--save` /
# `apply`; option errors.
#
# The comparison: the CLI's penalised objective equals the reference's optimum to OBJ_RTOL; the
# calibrated test probabilities agree to PROB_TOL.
import json
import sys

import h5py
import numpy as np
import pytest
from scipy.special import softmax

from conftest import REPO
from fit_helpers import run_cli, write_dump  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import dirichlet_ref as dr  # noqa: E402
import odir_ref as od  # noqa: E402

# The objective at the two optima: both optimisers stop where float64 stops lowering it.
OBJ_RTOL = 1e-10
# Calibrated probabilities: the objective is flat to ~1e-14 around its optimum in directions
# where the probabilities move by ~1e-7 (seen: 8e-8 on n900_k5, lambda 0.3); the bound.
PROB_TOL = 1e-6
# Held-out NLLs of the fold fits: the same flatness, first order (seen below 1e-7).
CV_RTOL = 1e-5
FORMS = {"dir_l2": "full", "dir_diag": "diag"}
# name -> (seed, N, K, logit scale)
RANDOM = {"n500_k2": (61, 500, 2, 3.0), "n900_k5": (62, 900, 5, 2.5), "n1200_k10": (63, 1200, 10, 3.0)}
REAL = REPO.parent / "shared" / "data" / "real" / "h5" / "netcal_lenet_5_cifar_10.h5"


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """name -> (path, (z_val, y_val), (z_test, y_test)) with float64 logits."""
    root = tmp_path_factory.mktemp("dirichlet_dumps")
    out = {}
    for name, (seed, n, k, scale) in RANDOM.items():
        rng = np.random.default_rng(seed)
        tau = 1.6 * np.exp(0.3 * rng.normal(size=k))
        val, test = make_split(rng, n, k, scale, tau), make_split(rng, n, k, scale, tau)
        path = root / f"{name}.h5"
        write_dump(path, val, test, k)
        out[name] = (path, (val[0].astype(np.float64), val[1]), (test[0].astype(np.float64), test[1]))
    return out


def fitted(calibench, path, method, tmp_path, *extra):
    out, ctx = run_cli(calibench, "fit", path, "--method", method, "--save", tmp_path / "cal.h5", *extra)
    with h5py.File(tmp_path / "cal.h5") as f:
        probs = f["test/probs"][:]
    return out, probs, ctx


def check_fit(out, probs, form, p_val, y_val, p_test, lam, ctx):
    ref = dr.fit(form, p_val, y_val, lam)
    got = out["params"]["final_objective"]
    assert got == pytest.approx(ref["objective"], rel=OBJ_RTOL), ctx
    want = dr.probabilities(ref["E"], p_test)
    assert np.max(np.abs(probs - want)) < PROB_TOL, (ctx, np.max(np.abs(probs - want)))
    return ref


@pytest.mark.parametrize("name", list(RANDOM))
@pytest.mark.parametrize("method", list(FORMS))
@pytest.mark.parametrize("lam", [0.0, 0.3, 30.0])
def test_fixed_lambda_matches_reference(calibench, dumps, tmp_path, name, method, lam):
    path, (zv, yv), (zt, _) = dumps[name]
    if method == "dir_l2" and lam == 0.0 and RANDOM[name][2] > 2:
        pytest.skip("unregularised full Dirichlet: the optimum is not unique in E (flat directions)")
    out, probs, ctx = fitted(calibench, path, method, tmp_path, "--l2-lambda", lam)
    params = out["params"]
    assert params["penalty"] == "l2" and params["lambda"] == lam and params["cv"] == [], ctx
    ref = check_fit(out, probs, FORMS[method], softmax(zv, 1), yv, softmax(zt, 1), lam, ctx)
    if method == "dir_l2":
        k = RANDOM[name][2]
        w = np.asarray(params["matrix"]).reshape(k, k)
        # dirichletcal's weights_: the last row of [W | b] is 0 (reference-row form).
        assert np.all(w[-1] == 0) and params["biases"][-1] == 0, ctx
        if lam > 0:
            e = np.hstack([w, np.asarray(params["biases"])[:, None]])
            assert np.max(np.abs(e - ref["E"])) < 1e-4, ctx


def test_dir_diag_without_penalty_is_vector_scaling_of_log_p(calibench, dumps, tmp_path):
    path, (zv, yv), (zt, yt) = dumps["n900_k5"]
    logp = lambda z: np.log(softmax(z, 1))  # noqa: E731
    vs_path = tmp_path / "logp.h5"
    write_dump(vs_path, (logp(zv), yv), (logp(zt), yt), 5)
    diag, p_diag, _ = fitted(calibench, path, "dir_diag", tmp_path)
    vs, _ = run_cli(calibench, "fit", vs_path, "--method", "vs")
    assert diag["params"]["lambda"] == 0.0
    assert diag["params"]["final_nll"] == pytest.approx(vs["params"]["final_nll"], rel=1e-10)


def test_probability_dump(calibench, tmp_path):
    rng = np.random.default_rng(64)
    k = 4
    tau = 1.8 * np.ones(k)
    val, test = make_split(rng, 700, k, 2.0, tau), make_split(rng, 500, k, 2.0, tau)
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    path = tmp_path / "probs.h5"
    write_dump(path, (pv, val[1]), (pt, test[1]), k, probs=True)
    for method in FORMS:
        out, probs, ctx = fitted(calibench, path, method, tmp_path, "--l2-lambda", 0.1)
        check_fit(out, probs, FORMS[method], pv, val[1], pt, 0.1, ctx)


def reference_cv(p_val, y_val, grid):
    folds = od.folds(len(y_val))
    out = []
    for lam in grid:
        total = 0.0
        for f in range(od.FOLDS):
            fit_rows, held = folds != f, folds == f
            ref = dr.fit("full", p_val[fit_rows], y_val[fit_rows], lam)
            q = dr.probabilities(ref["E"], p_val[held])
            total += -np.mean(np.log(q[np.arange(held.sum()), y_val[held]]))
        out.append(total / od.FOLDS)
    return out


@pytest.mark.parametrize("name", ["n500_k2", "n900_k5"])
def test_cross_validation_matches_reference(calibench, dumps, tmp_path, name):
    path, (zv, yv), (zt, _) = dumps[name]
    k = RANDOM[name][2]
    out, probs, ctx = fitted(calibench, path, "dir_l2", tmp_path)
    cv = out["params"]["cv"]
    grid = [10.0 ** e * k * (k + 1) for e in (-4, -3, -2, -1, 0)]
    assert [c["lambda"] for c in cv] == pytest.approx(grid, rel=1e-15), ctx
    assert out["params"]["folds"] == {"k": 5, "seed": 15}
    want = reference_cv(softmax(zv, 1), yv, grid)
    for c, w in zip(cv, want):
        assert c["nll"] == pytest.approx(w, rel=CV_RTOL), (ctx, c, w)
    best = grid[int(np.argmin(want))]
    assert out["params"]["lambda"] == pytest.approx(best, rel=1e-15), (ctx, cv, want)
    check_fit(out, probs, "full", softmax(zv, 1), yv, softmax(zt, 1), best, ctx)


def test_real_dump(calibench, tmp_path):
    if not REAL.exists():
        pytest.skip(f"{REAL} absent")
    with h5py.File(REAL) as f:
        zv, yv = f["val/logits"][:].astype(np.float64), f["val/labels"][:].reshape(-1)
        zt = f["test/logits"][:].astype(np.float64)
    for method in FORMS:
        out, probs, ctx = fitted(calibench, REAL, method, tmp_path, "--l2-lambda", 1.0)
        check_fit(out, probs, FORMS[method], softmax(zv, 1), yv, softmax(zt, 1), 1.0, ctx)


@pytest.mark.parametrize("method", list(FORMS))
def test_save_and_apply(calibench, dumps, tmp_path, method):
    path = dumps["n900_k5"][0]
    out, _ = run_cli(calibench, "fit", path, "--method", method, "--l2-lambda", 0.2, "--save", tmp_path / "c.h5")
    applied, _ = run_cli(calibench, "apply", tmp_path / "c.h5", path)
    assert applied["test"] == out["test"]


@pytest.mark.parametrize("args, needle", [
    (["--method", "dir_diag", "--grid", "1,2"], "--grid applies to"),
    (["--method", "dir_l2", "--odir-lambda", "1", "--odir-mu", "1"], "--odir-lambda applies to"),
    (["--method", "dir_l2", "--l2-lambda", "-1"], "--l2-lambda"),
    (["--method", "ms_odir", "--l2-lambda", "1"], "--l2-lambda applies to dir_l2 and dir_diag"),
])
def test_option_errors(calibench, dumps, args, needle):
    proc = calibench("fit", dumps["n500_k2"][0], *args)
    assert proc.returncode != 0 and needle in proc.stderr, proc.stderr


def test_cross_validation_needs_five_samples(calibench, tmp_path):
    z = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.5], [0.1, 0.3]])
    path = tmp_path / "tiny.h5"
    write_dump(path, (z, np.array([0, 1, 0, 1])), (z, np.array([0, 1, 0, 1])), 2)
    proc = calibench("fit", path, "--method", "dir_l2")
    assert proc.returncode != 0 and "needs at least 5 validation samples" in proc.stderr and "--l2-lambda" in proc.stderr
