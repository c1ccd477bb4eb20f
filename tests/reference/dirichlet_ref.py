"""Float64 reference of dirichletcal's L2-regularised Dirichlet calibrators, ported from
dirichletcal/dirichlet_python commit b03f65f (dirichletcal/calib/multinomial.py: `_objective`,
`_get_weights`, `MultinomialRegression.fit`; calib/fulldirichlet.py, calib/diagdirichlet.py;
utils.py: `clip_for_log`, `clip_jax`), without calibench's code. calibench's `dir_l2` is
FullDirichletCalibrator(reg_lambda=lambda, reg_norm=True) and `dir_diag`
DiagonalDirichletCalibrator(reg_lambda=lambda, reg_norm=True) (reg_mu None, ref_row True):

    x = [log clip(p, tiny, 1 - tiny), 1]                       (N x (K+1))
    raw weights R (K x (K+1)): Full: free; Diag: [diag(w) | b]
    E = R - 1 R_{K-1}                                           (ref_row: subtract the last row)
    q = softmax(x E^T), clipped to [eps, 1 - eps] (float64 eps)
    objective = mean_i -log q_{i,y_i} + lambda / (K (K + 1)) * sum(E^2)   (reg_norm)

dirichletcal minimises it with its Newton method (K <= 36) or L-BFGS-B (K > 36) from the
identity; the minimum in E is unique for lambda > 0 (strictly convex in E), and for lambda = 0
in the probabilities, so this reference minimises the same objective by scipy's L-BFGS-B on the
exact gradient with far tighter tolerances than either. Full: the free rows 0..K-2 of E (row
K-1 of E is 0 by construction, and the objective depends on R only through E). Diag: (w, b).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

TINY = np.finfo(np.float64).tiny
EPS = np.finfo(np.float64).eps


def features(p: np.ndarray) -> np.ndarray:
    """[log clip(p, tiny, 1 - tiny), 1] (clip_for_log, then the bias column)."""
    lp = np.log(np.clip(np.asarray(p, dtype=np.float64), TINY, 1 - TINY))
    return np.hstack([lp, np.ones((lp.shape[0], 1))])


def effective(form: str, theta: np.ndarray, k: int) -> np.ndarray:
    """E (K x (K+1)) from the free parameters of `form`."""
    if form == "full":
        return np.vstack([theta.reshape(k - 1, k + 1), np.zeros((1, k + 1))])
    w, b = theta[:k], theta[k:]
    raw = np.hstack([np.diag(w), b[:, None]])
    return raw - raw[-1][None, :]


def _objective(form, theta, x, onehot, scale):
    n, k = onehot.shape
    e = effective(form, theta, k)
    logq = log_softmax(x @ e.T, axis=1)
    q = np.exp(logq)
    clipped = np.clip(q, EPS, 1 - EPS)
    value = -np.mean(np.log(np.sum(onehot * clipped, axis=1))) + scale * np.sum(e * e)
    # d/dq of the clipped log is 0 where the clip binds (dirichletcal's jax gradient too).
    live = (q >= EPS) & (q <= 1 - EPS)
    live_y = np.sum(onehot * live, axis=1) > 0
    g_logits = (q - onehot) * live_y[:, None]
    ge = g_logits.T @ x / n + 2 * scale * e
    if form == "full":
        grad = ge[:-1].ravel()
    else:
        gw = np.diag(ge[:, :k]).copy()
        gw[-1] -= ge[:, k - 1].sum()
        gb = ge[:, k].copy()
        gb[-1] -= ge[:, k].sum()
        grad = np.concatenate([gw, gb])
    return value, grad


def fit(form: str, p: np.ndarray, y: np.ndarray, lam: float) -> dict:
    """The minimiser: {"E": K x (K+1), "objective", "theta"}; `form` is "full" or "diag"."""
    x = features(p)
    k = x.shape[1] - 1
    onehot = np.eye(k)[np.asarray(y)]
    scale = lam / (k * (k + 1))
    if form == "full":
        theta0 = effective_identity_full(k)
    else:
        theta0 = np.concatenate([np.ones(k), np.zeros(k)])
    res = minimize(lambda t: _objective(form, t, x, onehot, scale), theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 100000, "maxfun": 200000, "ftol": 1e-16, "gtol": 1e-12, "maxcor": 30})
    return {"E": effective(form, res.x, k), "objective": float(res.fun), "theta": res.x}


def effective_identity_full(k: int) -> np.ndarray:
    """The identity start in E form: [I | 0] minus its last row, rows 0..K-2."""
    raw = np.hstack([np.eye(k), np.zeros((k, 1))])
    return (raw - raw[-1][None, :])[:-1].ravel()


def probabilities(e: np.ndarray, p: np.ndarray) -> np.ndarray:
    """softmax(x E^T) of probabilities p (predict_proba, without the loss's clip)."""
    return np.exp(log_softmax(features(p) @ e.T, axis=1))


def objective_at(form: str, theta: np.ndarray, p: np.ndarray, y: np.ndarray, lam: float) -> float:
    x = features(p)
    k = x.shape[1] - 1
    return _objective(form, theta, x, np.eye(k)[np.asarray(y)], lam / (k * (k + 1)))[0]
