"""Structured matrix scaling (`fit --method sms`, Berta et al. 2025 as probmetrics 1.3.0 computes
it; docs/calibrators.md, docs/ports/sms.md) against tests/reference/sms_ref.py, the float64 port
checked against probmetrics itself in tests/reference/test_sms_ref.py: the fast temperature
(equal to the reference's 30 bisection steps, and to calibench's own `ts` within the bisection's
width), the mixture weight, the penalty strengths, the objective (never above the reference's
minimum), the calibrated test probabilities, probability dumps with zeros (the float32-tiny clip),
one class present, K = 2, a binary dump, two real dumps, `apply`, and the refusals."""
import sys

import h5py
import numpy as np
import pytest
from scipy.special import log_softmax

from conftest import REPO
from fit_helpers import run_cli, write_dump, write_splits  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import sms_ref  # noqa: E402

# Calibrated probabilities: both minimise the same strictly convex float64 objective, the
# reference to max|grad| <= 1e-13, calibench's L-BFGS to ||g|| <= 1e-8 max(1, ||theta||) or the
# rounding-level stall; sqrt(F's float64 floor / ridge curvature 2K/N) ~ 5e-7 bounds the gap
# (docs/ports/sms.md section 9); seen below 1e-7.
PROB_TOL = 1e-5
# The objective at calibench's parameters may exceed the reference's minimum only by rounding.
OBJECTIVE_TOL = 1e-11
# The bisection makes the same 30 sign decisions on the same float64 sums (in another order):
# beta equal but for the last bits.
BETA_TOL = 1e-12
REAL_DIR = REPO.parent / "shared" / "data" / "real" / "h5"
REAL = ["wasscal_cifar10_resnet20.h5", "medmnist_pneumoniamnist_resnet50.h5"]


def fitted(calibench, path, tmp_path, *extra):
    out, ctx = run_cli(calibench, "fit", path, "--method", "sms", "--save", tmp_path / "cal.h5", *extra)
    with h5py.File(tmp_path / "cal.h5") as f:
        q = f["test/probs"][:]
    return out, q, ctx


def check(calibench, path, tmp_path, zv, yv, zt):
    """The CLI's fit of the dump at `path` against the reference's fit of (zv, yv), applied to zt
    (logits or log-probabilities: sms depends on log_softmax only)."""
    out, q, ctx = fitted(calibench, path, tmp_path)
    p = out["params"]
    n, k = zv.shape
    want = sms_ref.sms_fit(zv, yv)
    assert abs(p["inverse_temperature"] / want["invtemp"] - 1) <= BETA_TOL, (ctx, p["inverse_temperature"], want)
    assert p["mix_weight"] == 1.0 / (n + 1) and p["fit_rows"] == n, ctx
    lam_b, lam_d, lam_o = want["lams"]
    assert np.allclose([p["lambda_intercept"], p["lambda_diagonal"], p["lambda_off_diagonal"]], [lam_b, lam_d, lam_o],
                       rtol=1e-15, atol=0), ctx
    assert p["lambda_off_diagonal"] == k * (k - 1) / n and p["lambda_intercept"] == k / n, ctx
    w, b = np.asarray(p["matrix"]).reshape(k, k), np.asarray(p["biases"])
    f_cli = sms_ref.sms_objective_at(want, zv, yv, w, b)
    assert f_cli <= want["objective"] + OBJECTIVE_TOL, (ctx, f_cli, want["objective"])
    assert abs(p["final_objective"] - f_cli) <= 1e-12 * max(1, f_cli), (ctx, p["final_objective"], f_cli)
    ref_q = sms_ref.sms_apply(want, zt)
    gap = np.max(np.abs(q - ref_q))
    assert gap <= PROB_TOL, (ctx, gap)
    assert np.max(np.abs(q.sum(1) - 1)) < 1e-12, ctx
    return out, q


@pytest.mark.parametrize("seed, n, k, tau", [(1, 2000, 10, 2.0), (2, 800, 3, 0.6), (3, 3000, 5, 1.4),
                                             (4, 400, 2, 1.8), (5, 1500, 30, 1.5)])
def test_random_dumps_equal_the_reference(calibench, tmp_path, seed, n, k, tau):
    rng = np.random.default_rng(seed)
    val, test = make_split(rng, n, k, 2.5, np.full(k, tau)), make_split(rng, 1000, k, 2.5, np.full(k, tau))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    out, _ = check(calibench, path, tmp_path, val[0].astype(np.float64), val[1], test[0].astype(np.float64))
    assert out["test"]["nll"] <= run_cli(calibench, "eval", path)[0]["nll"] or tau < 1  # over-confident dumps improve


def test_fast_temperature_is_calibench_ts(calibench, tmp_path):
    # probmetrics' 30 bisection steps of log beta in [-16, 16] end 2^-25 wide: the temperature is
    # calibench's ts minimiser within a relative e^(2^-26) - 1 ~ 1.5e-8 (and its own tolerance).
    rng = np.random.default_rng(8)
    val, test = make_split(rng, 3000, 10, 2.5, np.full(10, 2.2)), make_split(rng, 500, 10, 2.5, np.full(10, 2.2))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 10)
    sms, _ = run_cli(calibench, "fit", path, "--method", "sms")
    ts, _ = run_cli(calibench, "fit", path, "--method", "ts")
    assert abs(sms["params"]["temperature"] / ts["params"]["temperature"] - 1) <= 5e-8, (sms["params"], ts["params"])


def test_probability_dump_with_zeros(calibench, tmp_path):
    # log 0 and probabilities below float32's tiny are clipped to log(tiny32) = -87.3365478515625
    # before the temperature: the features stay finite and the reference (same clip) agrees.
    rng = np.random.default_rng(9)
    k, n = 4, 1200
    p = rng.dirichlet(np.full(k, 0.3), size=2 * n)
    p[rng.random(p.shape) < 0.15] = 0.0
    p[:, 0] += 1e-3
    p[rng.random(len(p)) < 0.05, 1] = 1e-45
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p]).astype(np.int32)
    path = tmp_path / "p.h5"
    write_dump(path, (p[:n], y[:n]), (p[n:], y[n:]), k, probs=True)
    with np.errstate(divide="ignore"):
        lv, lt = np.log(p[:n]), np.log(p[n:])
    assert np.isinf(lv).any()
    check(calibench, path, tmp_path, lv, y[:n], lt)


def test_one_class_present(calibench, tmp_path):
    # The ridge keeps the minimiser unique and finite with every label the same.
    rng = np.random.default_rng(10)
    val, test = make_split(rng, 300, 5, 2.0, np.ones(5)), make_split(rng, 200, 5, 2.0, np.ones(5))
    val = (val[0], np.full_like(val[1], 3))
    path = tmp_path / "one.h5"
    write_dump(path, val, test, 5)
    out, q = check(calibench, path, tmp_path, val[0].astype(np.float64), val[1], test[0].astype(np.float64))
    assert np.all(q.argmax(1) == 3)


def test_binary_dump(calibench, tmp_path):
    # /<split>/logits [N]: the log-odds s as K = 2 logits [0, s].
    rng = np.random.default_rng(12)
    s = rng.normal(size=1800) * 3
    y = (rng.random(1800) < 1 / (1 + np.exp(-s / 2))).astype(np.int32)
    path = write_splits(tmp_path / "b.h5", {"val": (s[:1000], y[:1000]), "test": (s[1000:], y[1000:])})
    z = np.stack([np.zeros_like(s), s], axis=1)
    check(calibench, path, tmp_path, z[:1000], y[:1000], z[1000:])


@pytest.mark.parametrize("name", REAL)
def test_real_dumps(calibench, tmp_path, name):
    path = REAL_DIR / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    with h5py.File(path) as f:
        kind = "logits" if "logits" in f["val"] else "probs"
        zv, yv = f[f"val/{kind}"][:].astype(np.float64), f["val/labels"][:].reshape(-1)
        zt = f[f"test/{kind}"][:].astype(np.float64)
    if kind == "probs":
        with np.errstate(divide="ignore"):
            zv, zt = np.log(zv), np.log(zt)
    if zv.ndim == 1 or zv.shape[1] == 1:
        zv = np.stack([np.zeros(len(zv)), zv.reshape(-1)], axis=1)
        zt = np.stack([np.zeros(len(zt)), zt.reshape(-1)], axis=1)
    check(calibench, path, tmp_path, zv, yv, zt)


def test_apply_gives_the_fit(calibench, tmp_path):
    rng = np.random.default_rng(31)
    val, test = make_split(rng, 1000, 5, 2.5, np.full(5, 2.0)), make_split(rng, 700, 5, 2.5, np.full(5, 2.0))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 5)
    fit, _ = run_cli(calibench, "fit", path, "--method", "sms", "--save", tmp_path / "cal.h5")
    applied, _ = run_cli(calibench, "apply", tmp_path / "cal.h5", path)
    assert applied["test"] == fit["test"] and applied["params"] == fit["params"]
    # Another K: refused with the parameter count.
    other = tmp_path / "k3.h5"
    write_dump(other, make_split(rng, 50, 3, 2.0, np.ones(3)), make_split(rng, 50, 3, 2.0, np.ones(3)), 3)
    proc = calibench("apply", tmp_path / "cal.h5", other)
    assert proc.returncode == 2 and "sms was fitted with 30 parameters, K = 3 needs 12" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args, needle", [
    (["--grid", "1,2"], "--grid applies to"),
    (["--iterations", "0"], None),
])
def test_options(calibench, tmp_path, args, needle):
    rng = np.random.default_rng(41)
    path = tmp_path / "d.h5"
    write_dump(path, make_split(rng, 200, 3, 2.0, np.ones(3)), make_split(rng, 100, 3, 2.0, np.ones(3)), 3)
    proc = calibench("fit", path, "--method", "sms", *args)
    if needle is None:
        # No iterations: the identity map on the ts-mix features (the mixed temperature scaling).
        out, _ = run_cli(calibench, "fit", path, "--method", "sms", *args)
        assert out["params"]["matrix"] == np.eye(3).ravel().tolist() and out["params"]["biases"] == [0.0] * 3
        return
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
