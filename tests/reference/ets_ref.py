"""Naive float64 reference of calibench's ensemble temperature scaling `ets` (docs/calibrators.md):
p = w1 softmax(z/T) + w2 softmax(z) + w3/K, the weights minimising the validation NLL (or
Mix-n-Match's MSE, mean over samples of sum over classes of (p - onehot)^2) on the simplex
w >= 0, sum w = 1, by scipy's SLSQP from (1, 0, 0) as Mix-n-Match's code does, with tolerances
far tighter than its own. The temperature is given (the CLI's, from the `ts` NLL fit).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def components(z: np.ndarray, t: float):
    """softmax(z/T), softmax(z), uniform: three N x K arrays."""
    n, k = z.shape
    return softmax(z / t), softmax(z), np.full((n, k), 1.0 / k)


def mixture(z: np.ndarray, t: float, w) -> np.ndarray:
    c = components(z, t)
    return w[0] * c[0] + w[1] * c[1] + w[2] * c[2]


def objective(objective_name: str, w, comps, y: np.ndarray):
    """The objective and its gradient in w."""
    n = len(y)
    rows = np.arange(n)
    if objective_name == "nll":
        v = np.stack([c[rows, y] for c in comps], axis=1)  # N x 3
        s = v @ w
        return float(-np.mean(np.log(s))), -(v / s[:, None]).mean(axis=0)
    onehot = np.zeros_like(comps[0])
    onehot[rows, y] = 1.0
    r = w[0] * comps[0] + w[1] * comps[1] + w[2] * comps[2] - onehot
    value = float(np.mean(np.sum(r * r, axis=1)))
    grad = np.array([2.0 * np.mean(np.sum(r * c, axis=1)) for c in comps])
    return value, grad


@dataclasses.dataclass
class Fit:
    w: np.ndarray
    value: float
    kkt: float  # max over j of (w.g - g_j)+: 0 at an optimum of the simplex problem


def kkt_violation(objective_name, w, comps, y) -> float:
    _, g = objective(objective_name, w, comps, y)
    return float(max(0.0, np.max(w @ g - g)))


def fit(z: np.ndarray, y: np.ndarray, t: float, objective_name: str = "nll") -> Fit:
    comps = components(z, t)
    y = np.asarray(y, dtype=np.int64)
    res = minimize(lambda w: objective(objective_name, w, comps, y), np.array([1.0, 0.0, 0.0]), jac=True,
                   method="SLSQP", bounds=[(0.0, 1.0)] * 3,
                   constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones(3)}],
                   options={"ftol": 1e-16, "maxiter": 10000})
    w = np.clip(res.x, 0.0, None)
    w /= w.sum()
    value, _ = objective(objective_name, w, comps, y)
    return Fit(w, value, kkt_violation(objective_name, w, comps, y))
