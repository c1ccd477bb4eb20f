"""Naive float64 reference of calibench's ms_odir and dir_odir (docs/calibrators.md): the matrix
map q = W x + b of x = z (ms_odir) or x = log softmax(z) (dir_odir), the mean NLL plus the ODIR
penalty lambda/(K(K-1)) sum_{i != j} W_ij^2 + mu/K sum_i b_i^2 with its analytic gradient, its
minimisation from W = I, b = 0 by scipy's L-BFGS-B with tolerances far tighter than the engine's,
and the internal 5-fold cross-validation with the engine's documented fold rule (a Fisher-Yates
shuffle by splitmix64 seed 15, sklearn KFold's block sizes).

Flat parameters as in host/calibrators/logit_map_fit.hpp: x = [W row-major (K x K), b (K)].
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

METHODS = ("ms_odir", "dir_odir")
def default_grid(k: int) -> tuple:
    """docs/calibrators.md: lambda = mu in 10^e K (K - 1), e = -2, -1, 0, 1, 2."""
    return tuple(float(f"{10.0 ** e * (k * (k - 1)):.17g}") for e in (-2, -1, 0, 1, 2))
FOLDS = 5
FOLD_SEED = 15
_MASK = (1 << 64) - 1


class SplitMix64:
    """common/rng.hpp's splitmix64: next() and below(bound) = ((next() >> 11) * bound) >> 53."""

    def __init__(self, state: int):
        self.state = state & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        x = self.state
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
        return x ^ (x >> 31)

    def below(self, bound: int) -> int:
        return ((self.next() >> 11) * bound) >> 53


def folds(n: int, k: int = FOLDS, seed: int = FOLD_SEED) -> np.ndarray:
    """Fold of each row: for i = n-1 down to 1 swap perm[i] and perm[below(i + 1)], then cut the
    permutation into k blocks, the first n mod k of size n // k + 1."""
    perm = list(range(n))
    rng = SplitMix64(seed)
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    fold = np.empty(n, dtype=np.int64)
    pos = 0
    for f in range(k):
        size = n // k + (1 if f < n % k else 0)
        fold[perm[pos:pos + size]] = f
        pos += size
    return fold


def map_input(method: str, z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if method == "dir_odir":
        return z - logsumexp(z, axis=1)[:, None]
    return z


def identity(k: int) -> np.ndarray:
    return np.concatenate([np.eye(k).ravel(), np.zeros(k)])


def mapped(x: np.ndarray, inp: np.ndarray) -> np.ndarray:
    k = inp.shape[1]
    return inp @ x[: k * k].reshape(k, k).T + x[k * k:]


def nll_and_grad(x: np.ndarray, inp: np.ndarray, y: np.ndarray):
    n, k = inp.shape
    q = mapped(x, inp)
    lse = logsumexp(q, axis=1)
    rows = np.arange(n)
    value = float(np.mean(lse - q[rows, y]))
    g = np.exp(q - lse[:, None])
    g[rows, y] -= 1.0
    g /= n
    return value, np.concatenate([(g.T @ inp).ravel(), g.sum(axis=0)])


def penalty_and_grad(x: np.ndarray, k: int, lam: float, mu: float):
    w = x[: k * k].reshape(k, k)
    off = w * (1.0 - np.eye(k))
    b = x[k * k:]
    s_off = lam / (k * (k - 1)) if k > 1 else 0.0
    s_b = mu / k
    value = s_off * float(np.sum(off ** 2)) + s_b * float(np.sum(b ** 2))
    return value, np.concatenate([(2 * s_off * off).ravel(), 2 * s_b * b])


def objective(x, inp, y, lam, mu):
    v, g = nll_and_grad(x, inp, y)
    pv, pg = penalty_and_grad(x, inp.shape[1], lam, mu)
    return v + pv, g + pg


@dataclasses.dataclass
class Fit:
    x: np.ndarray
    objective: float
    nll: float
    grad_norm: float


def fit(inp: np.ndarray, y: np.ndarray, lam: float, mu: float) -> Fit:
    """argmin of the penalised objective from the identity (L-BFGS-B, memory 30, ftol 0)."""
    y = np.asarray(y, dtype=np.int64)
    res = minimize(lambda x: objective(x, inp, y, lam, mu), identity(inp.shape[1]), jac=True, method="L-BFGS-B",
                   options={"maxiter": 100000, "maxfun": 200000, "maxcor": 30, "ftol": 0.0,
                            "gtol": 1e-13, "maxls": 100})
    value, grad = objective(res.x, inp, y, lam, mu)
    return Fit(res.x, value, nll_and_grad(res.x, inp, y)[0], float(np.linalg.norm(grad)))


def cross_validate(inp: np.ndarray, y: np.ndarray, grid=None):
    """[(lambda, mu, mean over folds of the held-out mean NLL)] for lambda = mu in grid."""
    y = np.asarray(y, dtype=np.int64)
    if grid is None:
        grid = default_grid(inp.shape[1])
    fold = folds(len(y))
    out = []
    for c in grid:
        total = 0.0
        for f in range(FOLDS):
            held = fold == f
            r = fit(inp[~held], y[~held], c, c)
            total += nll_and_grad(r.x, inp[held], y[held])[0]
        out.append((c, c, total / FOLDS))
    return out


def params_to_flat(params: dict) -> np.ndarray:
    return np.concatenate([np.asarray(params["matrix"], float), np.asarray(params["biases"], float)])


def probabilities(method: str, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    q = mapped(x, map_input(method, z))
    return np.exp(q - logsumexp(q, axis=1)[:, None])
