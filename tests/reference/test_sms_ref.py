"""Checks of sms_ref.py (structured matrix scaling and fast temperature scaling, probmetrics 1.3.0).

Self-checks run everywhere (python3): the gradient and Hessian-vector product against central
finite differences, the TS derivative against finite differences of the TS NLL, exact fixed points
on calibrated data built from rational probabilities, and the reference's own optimality.

Peer parity runs where probmetrics imports (/work/main/.venv-peers/bin/python -m pytest; probmetrics
needs numba at import for its SAGA solvers, which the default "bfgs" path never calls, so a
pass-through `njit` stands in when numba is missing). Two comparisons:
  * strict: probmetrics' own pipeline with two things changed, both only numerical: the SMS input
    log-probabilities kept in float64 (utils.multiclass_probs_to_logits casts to float32) and
    torchmin's BFGS run to the float64 floor (gtol 1e-13, xtol 0, gtd_tol 1e-300 instead of
    1e-5, 1e-8, 1e-10).  The bisection temperature is then identical (same 30 sign tests) and the
    calibrated probabilities agree to STRICT_PROB = 1e-5: F is flat along directions of curvature
    ~2 K / N (the ridge), so F's float64 floor (~1e-15) leaves the parameters
    ~sqrt(1e-15 / 4e-3) ~ 5e-7 apart; observed <= 3e-6.  F at torchmin's point exceeds the
    reference's by <= STRICT_GAP (observed <= 7e-13) and never by less than -1e-13.
  * stock: probmetrics as shipped, float32 features and parameters, BFGS (L-BFGS beyond 1000
    parameters) with torchmin's defaults.  It stops when one iteration leaves the float32 objective
    unchanged (|dF| <= 1e-8 is below float32's spacing at F ~ 1) with max|grad| 1e-5..3e-3, so its
    F (evaluated in float64) is above the minimum by up to STOCK_GAP = 1e-4 (observed max 3.8e-5
    over 66 fits: K 2..100, N 200..5000, 3 seeds, two confidence regimes) and its probabilities
    differ by up to STOCK_PROB = 5e-2 (observed max 1.7e-2, K = 10, N = 5000): a measured envelope,
    not a bound; the reference must never be worse (F_ref <= F_pm + 1e-12).
"""
from __future__ import annotations

import functools
import math
import pathlib
import sys
import types

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sms_ref as ref  # noqa: E402

STRICT_PROB = 1e-5
STRICT_GAP = 1e-11
STOCK_PROB = 5e-2
STOCK_GAP = 1e-4
BISECTION_U = 2.0**-26  # half the final bisection interval in u = log beta: 32 / 2^30 / 2


def make_data(seed: int, k: int, n: int, scale: float, label_temp: float, n_test: int = 1000):
    """Logits z = scale * N(0, 1) + a class offset; labels drawn from softmax(label_temp * z)
    (label_temp < 1: the logits are overconfident; > 1: underconfident)."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=k)

    def draw(m):
        z = rng.normal(size=(m, k)) * scale + offset
        cdf = np.cumsum(softmax(label_temp * z, axis=1), axis=1)
        y = np.minimum((rng.random(m)[:, None] > cdf).sum(axis=1), k - 1)
        return z, y

    (z, y), (zt, _) = draw(n), draw(n_test)
    return z, y, zt


REGIMES = {"over": (3.0, 0.5), "under": (1.0, 2.0)}


@functools.lru_cache(maxsize=None)
def case(seed, k, n, regime):
    scale, lt = REGIMES[regime]
    z, y, zt = make_data(seed, k, n, scale, lt)
    return z, y, zt, ref.sms_fit(z, y)


# ============================================================================ self-checks


def test_defaults_and_constants():
    # probmetrics' floor is np.log(np.float32 tiny) computed in float32, not ln(2^-126) in float64
    assert ref.LOG_TINY32 == -87.3365478515625
    assert abs(ref.LOG_TINY32 - (-126 * math.log(2))) < 4e-6
    lb, ld, lo = ref.penalties(500, 10)
    assert (lb, ld, lo) == (10 / 500, 10 / 500, 90 / 500)
    assert ref.penalties(4, 2, 2.0, 3.0, 5.0, rho=2.0, tau=0.5) == (2 * 4 / 2, 3 * 4 / 2, 5 * 4 / 2)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_gradient_and_hessp_finite_differences(k):
    rng = np.random.default_rng(k)
    n = 40
    x = log_softmax(rng.normal(size=(n, k)) * 2, axis=1)
    y = rng.integers(0, k, n)
    lams = (0.3, 0.2, 0.7)
    theta = rng.normal(size=k * (k + 1)) * 0.3
    f, g = ref.objective(theta, x, y, lams)
    h = 1e-5
    fd = np.array([(ref.objective(theta + h * e, x, y, lams)[0] - ref.objective(theta - h * e, x, y, lams)[0]) / (2 * h)
                   for e in np.eye(theta.size)])
    # central differences: truncation ~h^2 |F'''| ~ 1e-10, rounding ~1e-16 / 1e-5 = 1e-11
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-8)
    v = rng.normal(size=theta.size)
    hv_fd = (ref.objective(theta + h * v, x, y, lams)[1] - ref.objective(theta - h * v, x, y, lams)[1]) / (2 * h)
    np.testing.assert_allclose(ref.hessp(theta, v, x, y, lams), hv_fd, rtol=0, atol=1e-8)
    # the Hessian diagonal is e_i' H e_i
    hd = ref.hessian_diagonal(theta, x, y, lams)
    np.testing.assert_allclose(hd, [ref.hessp(theta, e, x, y, lams) @ e for e in np.eye(theta.size)], rtol=1e-12, atol=1e-15)
    # the penalty as written in the docstring: lam_b |b|^2 + lam_d sum D_jj^2 + lam_o sum_{j!=l} D_jl^2
    d, b = theta[: k * k].reshape(k, k), theta[k * k:]
    nll = np.mean(-log_softmax(x + x @ d.T + b, axis=1)[np.arange(n), y])
    pen = lams[0] * b @ b + lams[1] * np.sum(np.diag(d) ** 2) + lams[2] * (np.sum(d * d) - np.sum(np.diag(d) ** 2))
    assert f == pytest.approx(nll + pen, abs=1e-13)


def test_ts_gradient_finite_differences():
    z, y, _ = make_data(3, 5, 300, 2.0, 0.7)
    l = ref.clipped_log_probs(z)

    def nll(beta):
        return np.mean(-log_softmax(beta * l, axis=1)[np.arange(len(y)), y])

    for u in (-1.0, -0.2, 0.4):
        beta, h = math.exp(u), 1e-6
        assert ref.ts_gradient(u, l, y) == pytest.approx((nll(beta + h) - nll(beta - h)) / (2 * h), abs=1e-8)


def calibrated_dataset(k: int, rows: int, seed: int):
    """Rows q with entries in multiples of 1/8, each repeated 8 times with labels in the exact
    proportions q: the empirical label frequencies equal q, so (in exact arithmetic) the TS NLL is
    stationary at beta = 1 and the SMS NLL on x = log q is stationary at D = 0, b = 0."""
    rng = np.random.default_rng(seed)
    qs, ys = [], []
    for _ in range(rows):
        counts = np.bincount(rng.integers(0, k, 8 - k), minlength=k) + 1  # every class >= 1/8
        q = counts / 8.0
        qs.append(np.repeat(q[None], 8, axis=0))
        ys.append(np.repeat(np.arange(k), counts))
    return np.log(np.concatenate(qs)), np.concatenate(ys)


@pytest.mark.parametrize("k,rows", [(2, 6), (3, 10), (5, 12)])
def test_identity_on_calibrated_input(k, rows):
    z, y = calibrated_dataset(k, rows, k)
    # TS: the exact root is 1 (to rounding); probmetrics' bisection to within 2^-26 in log beta
    assert ref.ts_fit(z, y) == pytest.approx(1.0, abs=1e-12)
    assert abs(math.log(ref.ts_fit_bisection(z, y))) <= BISECTION_U + 1e-15
    # SMS stage on x = log q: the minimiser is the identity map (gradient of F at 0 is ~1e-17)
    x = ref.clipped_log_probs(z)
    theta = ref.minimise_sms(x, y, ref.penalties(len(y), k))
    assert np.max(np.abs(theta)) <= 1e-12
    # The full pipeline is not exactly the identity: ts-mix mixes in c = 1 / (N + 1) of the uniform
    # vector, and the ridge pulls towards that mixture. It stays within O(K / N) of q.
    p = ref.sms_apply(ref.sms_fit(z, y), z)
    assert np.max(np.abs(p - np.exp(z))) <= 2.0 * k / len(y)
    assert np.max(np.abs(p - np.exp(z))) > 1e-6  # ... and visibly moves (the mixture is applied)


@pytest.mark.parametrize("seed,k,n,regime", [(0, 3, 1000, "under"), (1, 10, 500, "over"), (2, 100, 300, "over")])
def test_reference_is_optimal(seed, k, n, regime):
    z, y, zt, params = case(seed, k, n, regime)
    assert params["grad_max"] <= 1e-13
    # F is strictly convex: random nearby points are never lower
    rng = np.random.default_rng(seed)
    w, b = params["W"], params["b"]
    for _ in range(5):
        dw, db = rng.normal(size=w.shape) * 1e-4, rng.normal(size=b.shape) * 1e-4
        assert ref.sms_objective_at(params, z, y, w + dw, b + db) > params["objective"]
    p = ref.sms_apply(params, zt)
    assert np.all(p > 0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-14)
    # shift invariance: only log softmax(z) matters
    p2 = ref.sms_apply(params, zt + rng.normal(size=(len(zt), 1)) * 50)
    assert np.max(np.abs(p - p2)) <= 1e-12


def test_ts_bounds():
    # every label the top logit with margin: the NLL keeps falling, beta -> upper bound e^16
    z = np.array([[5.0, 0.0], [0.0, 5.0], [4.0, 1.0]])
    y = np.array([0, 1, 0])
    assert ref.ts_fit(z, y) == pytest.approx(math.exp(-16), rel=1e-15)
    assert ref.ts_fit_bisection(z, y) == pytest.approx(math.exp(16 - BISECTION_U), rel=1e-12)
    # every label the bottom logit: the NLL falls as beta -> 0, bound e^-16
    y_bad = np.array([1, 0, 1])
    assert ref.ts_fit(z, y_bad) == pytest.approx(math.exp(16), rel=1e-15)
    assert ref.ts_fit_bisection(z, y_bad) == pytest.approx(math.exp(-16 + BISECTION_U), rel=1e-12)


# ============================================================================ peer parity


@pytest.fixture(scope="module")
def pm():
    pytest.importorskip("torch")
    pytest.importorskip("torchmin")
    try:
        import numba  # noqa: F401
        stubbed = False
    except ImportError:
        stub = types.ModuleType("numba")
        stub.njit = lambda *a, **kw: a[0] if (len(a) == 1 and callable(a[0]) and not kw) else (lambda f: f)
        sys.modules["numba"] = stub
        stubbed = True
    try:
        calibrators = pytest.importorskip("probmetrics.calibrators")
        import probmetrics.calibrators.logistic as logistic
    finally:
        if stubbed:
            del sys.modules["numba"]
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic float32 sums, and far faster on 2 cores
    yield types.SimpleNamespace(get_calibrator=calibrators.get_calibrator, logistic=logistic)
    torch.set_num_threads(threads)


def _f64_logits(probs):
    return np.maximum(np.log(np.asarray(probs, dtype=np.float64)), ref.LOG_TINY32)


def _tight_torchmin(logistic):
    import torchmin

    opts = {"gtol": 1e-13, "xtol": 0.0, "gtd_tol": 1e-300}
    return types.SimpleNamespace(minimize=lambda fun, x0, method: torchmin.minimize(fun, x0, method=method, options=opts))


def peer_fit_predict(pm, z, y, zt, monkeypatch=None):
    cal = pm.get_calibrator("sms")
    if monkeypatch is not None:
        monkeypatch.setattr(pm.logistic, "multiclass_probs_to_logits", _f64_logits)
        monkeypatch.setattr(pm.logistic, "torchmin", _tight_torchmin(pm.logistic))
    cal.fit(softmax(z, axis=1), y)
    q = cal.predict_proba(softmax(zt, axis=1))
    if monkeypatch is not None:
        monkeypatch.undo()
    k = z.shape[1]
    w = np.asarray(cal.W_, dtype=np.float64)
    return cal, q, w[:, :k], w[:, k]


STOCK_CASES = [(s, k, n, r) for s in (0, 1) for (k, n) in ((2, 200), (2, 5000), (3, 1000), (10, 300), (10, 2000), (100, 500))
               for r in ("over", "under")]


def test_peer_entry_point(pm):
    cal = pm.get_calibrator("sms")
    assert type(cal).__name__ == "SMSCalibrator"
    assert (cal.penalty, cal.opt, cal.rho, cal.tau) == ("ridge", "bfgs", 1.0, 1.0)
    assert (cal.lambda_intercept, cal.lambda_diagonal, cal.lambda_off_diagonal) == (1.0, 1.0, 1.0)
    ts = pm.get_calibrator("ts-mix")
    assert type(ts).__name__ == "MixtureCalibrator" and ts.output_constant == 1.0 and ts.input_constant == 0.0
    inner = ts.calibrator
    assert (inner.opt, inner.max_bisection_steps) == ("bisection", 30)


@pytest.mark.parametrize("seed,k,n,regime", STOCK_CASES)
def test_stock_peer(pm, seed, k, n, regime):
    z, y, zt, params = case(seed, k, n, regime)
    cal, q, w, b = peer_fit_predict(pm, z, y, zt)
    assert cal.W_.dtype == np.float32  # probmetrics fits in float32
    beta_pm = float(cal.ts_.cal_.invtemp_)
    assert cal.ts_.n_samples_ == n
    # the reference's beta is the same 30-step bisection: same sign tests, same result
    assert beta_pm == pytest.approx(params["invtemp"], rel=1e-13)
    assert abs(math.log(beta_pm * ref.ts_fit(z, y))) <= BISECTION_U + 1e-13
    f_pm = ref.sms_objective_at(params, z, y, w, b)
    assert params["objective"] <= f_pm + 1e-12
    assert f_pm - params["objective"] <= STOCK_GAP
    assert np.max(np.abs(q - ref.sms_apply(params, zt))) <= STOCK_PROB


@pytest.mark.parametrize("seed,k,n,regime", [(0, 2, 300, "over"), (1, 10, 2000, "under"), (2, 100, 500, "over")])
def test_peer_temperature_scaling(pm, seed, k, n, regime):
    """probmetrics' TemperatureScalingCalibrator ('temp-scaling', no mixture): beta and its output."""
    scale, lt = REGIMES[regime]
    z, y, zt = make_data(seed, k, n, scale, lt)
    ts = pm.get_calibrator("temp-scaling")
    ts.fit(softmax(z, axis=1), y)
    beta = float(ts.invtemp_)
    # identical sign tests in float64: the same bisection result (observed: equal to the last bit)
    assert beta == pytest.approx(ref.ts_fit_bisection(z, y), rel=1e-13)
    # within the bisection's own tolerance of the exact minimiser
    assert abs(math.log(beta * ref.ts_fit(z, y))) <= BISECTION_U + 1e-13
    q = ts.predict_proba(softmax(zt, axis=1))
    assert np.max(np.abs(q - softmax(beta * ref.clipped_log_probs(zt), axis=1))) <= 1e-13


STRICT_CASES = [(0, 2, 1000, "over"), (1, 3, 5000, "under"), (0, 10, 1000, "under"), (1, 10, 300, "over"),
                (0, 100, 300, "under")]


@pytest.mark.parametrize("seed,k,n,regime", STRICT_CASES)
def test_strict_peer(pm, monkeypatch, seed, k, n, regime):
    z, y, zt, params = case(seed, k, n, regime)
    cal, q, w, b = peer_fit_predict(pm, z, y, zt, monkeypatch)
    assert float(cal.ts_.cal_.invtemp_) == pytest.approx(params["invtemp"], rel=1e-13)
    gap = ref.sms_objective_at(params, z, y, w, b) - params["objective"]
    assert -1e-13 <= gap <= STRICT_GAP
    np.testing.assert_allclose(w, params["W"], rtol=0, atol=1e-3)
    assert np.max(np.abs(q - ref.sms_apply(params, zt))) <= STRICT_PROB


def degenerate_inputs():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(60, 3)) * 2
    out = {
        "one_class": (z, np.zeros(60, dtype=int)),
        "tiny_n": (z[:5], np.array([0, 1, 2, 1, 0])),
        "constant_rows": (np.zeros((40, 4)), rng.integers(0, 4, 40)),
        "duplicated_rows": (np.repeat(z[:6], 10, axis=0), rng.integers(0, 3, 60)),
    }
    ze = rng.normal(size=(80, 3)) * 2
    ze[:20, 1] -= 250.0  # probabilities below float32 tiny: log clipped at ln(2^-126)
    out["extreme_logits"] = (ze, rng.integers(0, 3, 80))
    return out


@pytest.mark.parametrize("name", sorted(degenerate_inputs()))
def test_degenerate_peer(pm, monkeypatch, name):
    z, y = degenerate_inputs()[name]
    zt = np.concatenate([z[:7], np.full((1, z.shape[1]), 0.0), z[:1] * 40])
    params = ref.sms_fit(z, y)
    assert params["grad_max"] <= 1e-13
    cal, q, w, b = peer_fit_predict(pm, z, y, zt, monkeypatch)
    gap = ref.sms_objective_at(params, z, y, w, b) - params["objective"]
    assert -1e-13 <= gap <= STRICT_GAP
    assert np.max(np.abs(q - ref.sms_apply(params, zt))) <= STRICT_PROB
    cal, q, w, b = peer_fit_predict(pm, z, y, zt)
    assert params["objective"] <= ref.sms_objective_at(params, z, y, w, b) + 1e-12
    assert np.max(np.abs(q - ref.sms_apply(params, zt))) <= STOCK_PROB
