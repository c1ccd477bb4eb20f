"""Float64 reference for structured matrix scaling (SMS; Berta, Holzmueller, Jordan, Bach,
"Structured matrix scaling for multi-class calibration", arXiv 2511.03685) and for the "fast"
temperature scaling it starts from, as probmetrics 1.3.0 computes them with its defaults
(`probmetrics.calibrators.get_calibrator("sms")` = `SMSCalibrator()`, opt "bfgs", penalty "ridge";
files probmetrics/calibrators/logistic.py `SMSCalibrator._fit_impl/_fit_bfgs/_predict_proba_impl`,
temperature_scaling.py `TemperatureScalingCalibrator._fit_bisection`, base.py `MixtureCalibrator`,
utils.py `multiclass_probs_to_logits`, distributions.py `CategoricalProbs.get_logits`).
Written without torch or probmetrics.

Input: logits z [N, K] (probmetrics takes p = softmax(z); everything below depends on z only
through log p, so any per-row shift of z gives the same result).

  l   = max(log_softmax(z), LOG_TINY32)                      LOG_TINY32 = -87.3365478515625
  TS  : beta = exp(u), u the root in [-16, 16] of
        g(u) = mean_i sum_k l_ik softmax(e^u l_i)_k - mean_i l_{i,y_i}   (dNLL/dbeta, increasing)
        (probmetrics: 30 bisection steps, `ts_fit_bisection`, used by sms_fit; the exact root: `ts_fit`)
  mix : m_i = (1 - c) softmax(beta l_i) + c / K,   c = 1 / (N_fit + 1)   ("ts-mix", Laplace-like)
  x_i = log m_i
  SMS : s_i = (I + D) x_i + b,  minimise over D (K x K, all K^2 entries free) and b (K):
        F = mean_i [logsumexp(s_i) - s_{i,y_i}]
            + lam_b sum_j b_j^2 + lam_d sum_j D_jj^2 + lam_o sum_{j != l} D_jl^2
        lam_b = lambda_intercept K^rho / N^tau, lam_d = lambda_diagonal K^rho / N^tau,
        lam_o = lambda_off_diagonal (K (K - 1))^rho / N^tau; defaults 1, 1, 1, rho = tau = 1,
        i.e. lam_b = lam_d = K / N, lam_o = K (K - 1) / N.  Start D = 0, b = 0.
  apply: the same l, the same beta and c (N_fit of the fit set), x = log m, p' = softmax(W x + b),
        W = I + D.

F is strictly convex (ridge on every parameter), so the minimiser is unique; it is found by
scipy's trust-ncg on the exact gradient and Hessian-vector product, then plain Newton steps
(preconditioned CG), to a gradient max-norm <= 1e-13 (observed ~1e-17). probmetrics minimises the
same F in float32 (features cast by utils.multiclass_probs_to_logits) with pytorch-minimize's BFGS
(L-BFGS, history 100, when K (K + 1) > 1000) at torchmin's defaults: stop at max|step| or
|F_new - F| <= 1e-8, max|grad| <= 1e-5, or g'd > -1e-10; it ends 1e-6..3e-3 from stationarity.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.sparse.linalg import LinearOperator, cg
from scipy.special import log_softmax, logsumexp, softmax

# ln(2^-126) = -87.336544750553... evaluated in float32 (np.log of the float32 tiny), as probmetrics
LOG_TINY32 = float(np.log(np.finfo(np.float32).tiny))  # -87.3365478515625 exactly
TS_BOUND = 16.0  # u = log(beta) in [-16, 16]
TS_STEPS = 30  # probmetrics' max_bisection_steps


# ------------------------------------------------------------------ temperature scaling ("fast TS")


def clipped_log_probs(logits: np.ndarray) -> np.ndarray:
    """log softmax(z) floored at ln(float32 tiny), as probmetrics' CategoricalProbs.get_logits."""
    return np.maximum(log_softmax(np.asarray(logits, dtype=np.float64), axis=1), LOG_TINY32)


def ts_gradient(u: float, l: np.ndarray, y: np.ndarray) -> float:
    """d mean NLL(softmax(beta l)) / d beta at beta = e^u (probmetrics `_get_loss_grad`)."""
    p = softmax(np.exp(u) * l, axis=1)
    return float(np.mean(np.sum(l * p, axis=1)) - np.mean(l[np.arange(len(y)), y]))


def ts_fit_bisection(logits: np.ndarray, y: np.ndarray, steps: int = TS_STEPS) -> float:
    """Inverse temperature exactly as probmetrics: bisection on the sign of the gradient in u."""
    l, y = clipped_log_probs(logits), np.asarray(y)
    a, b = -TS_BOUND, TS_BOUND
    for _ in range(steps):
        c = a + 0.5 * (b - a)
        if ts_gradient(c, l, y) > 0:
            b = c
        else:
            a = c
    return float(np.exp(0.5 * (a + b)))


def ts_fit_invtemp(logits: np.ndarray, y: np.ndarray) -> float:
    """The exact minimiser beta of the TS NLL over u = log beta in [-16, 16] (bound if none inside).

    g(-16) > 0: beta = e^-16; g(16) <= 0 (also g == 0 everywhere, e.g. constant rows): beta = e^16,
    the limits of the bisection (which returns them to within a factor e^(+-2^-26))."""
    l, y = clipped_log_probs(logits), np.asarray(y)
    g_lo, g_hi = ts_gradient(-TS_BOUND, l, y), ts_gradient(TS_BOUND, l, y)
    if g_lo > 0:
        return float(np.exp(-TS_BOUND))
    if g_hi <= 0:
        return float(np.exp(TS_BOUND))
    u = brentq(ts_gradient, -TS_BOUND, TS_BOUND, args=(l, y), xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    return float(np.exp(u))


def ts_fit(logits_val: np.ndarray, y_val: np.ndarray) -> float:
    """Temperature T = 1 / beta of probmetrics' TemperatureScalingCalibrator (exact root)."""
    return 1.0 / ts_fit_invtemp(logits_val, y_val)


# ------------------------------------------------------------------ SMS


def sms_features(logits: np.ndarray, invtemp: float, n_fit: int) -> np.ndarray:
    """x = log((1 - c) softmax(beta l) + c / K), c = 1 / (n_fit + 1): the ts-mix log-probabilities."""
    l = clipped_log_probs(logits)
    k = l.shape[1]
    c = 1.0 / (n_fit + 1)
    return np.logaddexp(np.log1p(-c) + log_softmax(invtemp * l, axis=1), np.log(c / k))


def penalties(n: int, k: int, lambda_intercept=1.0, lambda_diagonal=1.0, lambda_off_diagonal=1.0,
              rho=1.0, tau=1.0) -> tuple[float, float, float]:
    """(lam_b, lam_d, lam_o) of SMSCalibrator._fit_impl."""
    return (lambda_intercept * k**rho / n**tau, lambda_diagonal * k**rho / n**tau,
            lambda_off_diagonal * (k * (k - 1)) ** rho / n**tau)


def _unpack(theta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return theta[: k * k].reshape(k, k), theta[k * k:]


def _penalty_weights(k: int, lams) -> np.ndarray:
    lam_b, lam_d, lam_o = lams
    wd = np.full((k, k), lam_o)
    np.fill_diagonal(wd, lam_d)
    return np.concatenate([wd.ravel(), np.full(k, lam_b)])


def objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray, lams) -> tuple[float, np.ndarray]:
    """F and its gradient; theta = [D row-major (K x K), b] (probmetrics' `params`)."""
    n, k = x.shape
    d, b = _unpack(theta, k)
    s = x + x @ d.T + b
    lse = logsumexp(s, axis=1)
    r = np.exp(s - lse[:, None])
    r[np.arange(n), y] -= 1.0
    r /= n
    w = _penalty_weights(k, lams)
    f = float(np.mean(lse - s[np.arange(n), y]) + np.sum(w * theta * theta))
    grad = np.concatenate([(r.T @ x).ravel(), r.sum(axis=0)]) + 2.0 * w * theta
    return f, grad


def hessp(theta: np.ndarray, v: np.ndarray, x: np.ndarray, y: np.ndarray, lams) -> np.ndarray:
    """Exact Hessian of F times v: (1/N) sum_i [x_i; 1] (diag(p_i) - p_i p_i^T) ds_i + 2 w v."""
    n, k = x.shape
    d, b = _unpack(theta, k)
    vd, vb = _unpack(v, k)
    p = softmax(x + x @ d.T + b, axis=1)
    ds = x @ vd.T + vb
    hds = p * (ds - np.sum(p * ds, axis=1, keepdims=True)) / n
    return np.concatenate([(hds.T @ x).ravel(), hds.sum(axis=0)]) + 2.0 * _penalty_weights(k, lams) * v


def hessian_diagonal(theta: np.ndarray, x: np.ndarray, y: np.ndarray, lams) -> np.ndarray:
    """diag of the Hessian of F (the CG preconditioner)."""
    n, k = x.shape
    d, b = _unpack(theta, k)
    p = softmax(x + x @ d.T + b, axis=1)
    q = p * (1.0 - p) / n
    return np.concatenate([(q.T @ (x * x)).ravel(), q.sum(axis=0)]) + 2.0 * _penalty_weights(k, lams)


def minimise_sms(x: np.ndarray, y: np.ndarray, lams) -> np.ndarray:
    """argmin F from theta = 0: trust-region Newton-CG (exact Hessian products) to max|grad| 1e-9,
    then Newton steps, each solved by Jacobi-preconditioned CG to 1e-13 (a line search on F
    stalls near max|grad| ~ 1e-10, where F moves by less than its rounding); a step is kept while
    it lowers max|grad|."""
    k = x.shape[1]
    y = np.asarray(y)
    m = k * (k + 1)
    r = minimize(objective, np.zeros(m), args=(x, y, lams), jac=True, hessp=hessp,
                 method="trust-ncg", options={"gtol": 1e-9, "maxiter": 1000})
    theta = r.x
    g = objective(theta, x, y, lams)[1]
    for _ in range(4):
        h = LinearOperator((m, m), matvec=lambda v, t=theta: hessp(t, v, x, y, lams), dtype=np.float64)
        dinv = 1.0 / hessian_diagonal(theta, x, y, lams)
        pre = LinearOperator((m, m), matvec=lambda v, s=dinv: s * v, dtype=np.float64)
        step, _info = cg(h, -g, rtol=1e-13, atol=0.0, maxiter=20 * m, M=pre)
        g_new = objective(theta + step, x, y, lams)[1]
        if np.max(np.abs(g_new)) >= np.max(np.abs(g)):
            break
        theta, g = theta + step, g_new
    return theta


def sms_fit(logits_val: np.ndarray, y_val: np.ndarray, lambda_intercept=1.0, lambda_diagonal=1.0,
            lambda_off_diagonal=1.0, rho=1.0, tau=1.0, ts="bisection") -> dict:
    """SMS parameters: invtemp (beta), n_fit (for c), W = I + D (K x K), b (K), the penalties, F.

    ts = "bisection" (probmetrics' 30 steps, the default) or "exact" (the TS minimiser; differs
    by at most a factor e^(+-2^-26) in beta)."""
    z = np.asarray(logits_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    n, k = z.shape
    beta = ts_fit_invtemp(z, y) if ts == "exact" else ts_fit_bisection(z, y)
    x = sms_features(z, beta, n)
    lams = penalties(n, k, lambda_intercept, lambda_diagonal, lambda_off_diagonal, rho, tau)
    theta = minimise_sms(x, y, lams)
    d, b = _unpack(theta, k)
    f, g = objective(theta, x, y, lams)
    return {"invtemp": beta, "n_fit": n, "W": np.eye(k) + d, "b": b.copy(), "lams": lams,
            "objective": f, "grad_max": float(np.max(np.abs(g)))}


def sms_apply(params: dict, logits: np.ndarray) -> np.ndarray:
    """Calibrated probabilities softmax(W x + b), x the ts-mix log-probabilities of `logits`."""
    x = sms_features(logits, params["invtemp"], params["n_fit"])
    return softmax(x @ params["W"].T + params["b"], axis=1)


def sms_objective_at(params: dict, logits_val: np.ndarray, y_val: np.ndarray,
                     W: np.ndarray, b: np.ndarray) -> float:
    """F (float64) at an arbitrary (W, b), on the features of `params` (its beta and N_fit)."""
    x = sms_features(logits_val, params["invtemp"], params["n_fit"])
    k = x.shape[1]
    theta = np.concatenate([(np.asarray(W, dtype=np.float64) - np.eye(k)).ravel(), np.asarray(b, dtype=np.float64)])
    return objective(theta, x, np.asarray(y_val, dtype=np.int64), params["lams"])[0]
