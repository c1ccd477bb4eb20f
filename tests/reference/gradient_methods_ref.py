"""Naive float64 reference of calibench's gradient-trained calibrators vs, ms, cts_nll
(docs/calibrators.md): the mean validation NLL of an affine map of the logits, its analytic
gradient, and its minimisation from the identity by scipy's L-BFGS-B with tolerances far
tighter than the engine's, so that the result stands for the optimum.

Flat parameter layouts (those of host/calibrators/logit_map_fit.hpp):
  vs       q_j = w_j z_j + b_j   x = [w (K), b (K)]
  ms       q = W z + b           x = [W row-major (K x K), b (K)]
  cts_nll  q_j = z_j b_j         x = [b (K)], b_j = 1 / T_j
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

METHODS = ("vs", "ms", "cts_nll")


def size(method: str, k: int) -> int:
    return {"vs": 2 * k, "ms": k * k + k, "cts_nll": k}[method]


def identity(method: str, k: int) -> np.ndarray:
    if method == "vs":
        return np.concatenate([np.ones(k), np.zeros(k)])
    if method == "ms":
        return np.concatenate([np.eye(k).ravel(), np.zeros(k)])
    return np.ones(k)


def mapped(method: str, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The mapped logits q (N x K) of logits z under flat parameters x."""
    k = z.shape[1]
    if method == "vs":
        return z * x[:k] + x[k:]
    if method == "ms":
        return z @ x[: k * k].reshape(k, k).T + x[k * k:]
    return z * x


def nll_and_grad(method: str, x: np.ndarray, z: np.ndarray, y: np.ndarray):
    """Mean NLL of softmax(q) at the labels and its gradient in x."""
    n, k = z.shape
    q = mapped(method, x, z)
    lse = logsumexp(q, axis=1)
    rows = np.arange(n)
    value = float(np.mean(lse - q[rows, y]))
    g = np.exp(q - lse[:, None])
    g[rows, y] -= 1.0
    g /= n
    if method == "vs":
        grad = np.concatenate([(g * z).sum(axis=0), g.sum(axis=0)])
    elif method == "ms":
        grad = np.concatenate([(g.T @ z).ravel(), g.sum(axis=0)])
    else:
        grad = (g * z).sum(axis=0)
    return value, grad


@dataclasses.dataclass
class Fit:
    method: str
    x: np.ndarray
    nll: float
    grad_norm: float
    iterations: int


def fit(method: str, z: np.ndarray, y: np.ndarray) -> Fit:
    """argmin of the NLL from the identity: L-BFGS-B without bounds, memory 30, stopping only
    when no step lowers the NLL (ftol 0) or the largest gradient entry is below 1e-13."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    x0 = identity(method, z.shape[1])
    res = minimize(lambda x: nll_and_grad(method, x, z, y), x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 100000, "maxfun": 200000, "maxcor": 30, "ftol": 0.0,
                            "gtol": 1e-13, "maxls": 100})
    value, grad = nll_and_grad(method, res.x, z, y)
    return Fit(method, res.x, value, float(np.linalg.norm(grad)), int(res.nit))


def params_to_flat(method: str, params: dict, k: int) -> np.ndarray:
    """The CLI's JSON params as flat parameters (cts_nll: b = 1 / T)."""
    if method == "vs":
        return np.concatenate([np.asarray(params["weights"], float), np.asarray(params["biases"], float)])
    if method == "ms":
        return np.concatenate([np.asarray(params["matrix"], float), np.asarray(params["biases"], float)])
    return 1.0 / np.asarray(params["temperatures"], float)


def probabilities(method: str, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    q = mapped(method, x, np.asarray(z, dtype=np.float64))
    return np.exp(q - logsumexp(q, axis=1)[:, None])
