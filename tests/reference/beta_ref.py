"""Float64 reference for beta calibration (docs/calibrators.md, `beta`), written from Kull et
al. (AISTATS 2017) and betacal 1.1.0's fitting rule (betacal/python beta_calibration.py,
commit cfbe464, `_beta_calibration`), without calibench's code:

    p clipped to [eps, 1 - eps]; x0 = ln p, x1 = -ln(1 - p);
    (a, b, c) = argmin mean NLL of sigma(a x0 + b x1 + c)   (unregularised maximum likelihood)
    if a < 0: refit (b, c) with a = 0; elif b < 0: refit (a, c) with b = 0.

The minimum is found with scipy's trust-exact on the exact gradient and Hessian (gtol 1e-13),
then three plain Newton steps.
K = 2: p = P(class 1), target label == 1. K > 2: p = top-label confidence, target correct.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

EPS = np.finfo(np.float64).eps


def features(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.stack([np.log(p), -np.log(1 - p), np.ones_like(p)], axis=1)


def _mle(x: np.ndarray, y: np.ndarray, free: list[int]) -> np.ndarray:
    xf = x[:, free]

    def f(w):
        t = xf @ w
        return float(np.mean(np.logaddexp(0, t) - y * t))

    def g(w):
        return xf.T @ (expit(xf @ w) - y) / len(y)

    def h(w):
        s = expit(xf @ w)
        return (xf * (s * (1 - s))[:, None]).T @ xf / len(y)

    start = np.array([1.0 if i < 2 else 0.0 for i in free])
    r = minimize(f, start, jac=g, hess=h, method="trust-exact", options={"gtol": 1e-13, "maxiter": 1000})
    wf = r.x
    for _ in range(3):  # trust-exact may stop at gtol with a gradient near 1e-11: polish with Newton
        wf = wf - np.linalg.solve(h(wf), g(wf))
    w = np.zeros(3)
    w[free] = wf
    return w


def fit(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, str]:
    """(a, b, c) and the form ("abc", "bc" or "ac") of betacal's rule."""
    x = features(p)
    y = y.astype(np.float64)
    w = _mle(x, y, [0, 1, 2])
    if w[0] < 0:
        return _mle(x, y, [1, 2]), "bc"
    if w[1] < 0:
        return _mle(x, y, [0, 2]), "ac"
    return w, "abc"


def calibrate(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    return expit(features(p) @ w)
