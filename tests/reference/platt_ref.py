"""Float64 reference of `calibench fit --method platt` (docs/calibrators.md, "platt").

Written from the definition, not from the C++: one score s per row, the 0/1 target t, and the
unregularised maximum-likelihood (a, b) of P(t = 1) = sigmoid(a s + b), Platt (1999) without
his smoothed targets.

- K = 2 ("binary"): s = z_1 - z_0, t = [label == 1]; the calibrated row is softmax([0, a s + b]).
- K > 2 ("top-label"): s = z_pred - logsumexp_{j != pred} z_j = log(c / (1 - c)) of the
  top-label confidence, t = [pred == label]; c' = sigmoid(a s + b), the other classes rescaled
  (hist_iso_ref.rescale_top_label), the prediction kept.

z are the stored logits, or log p of a probability dump.  The fit is plain Newton on the mean
NLL (np.logaddexp; exact gradient and Hessian in numpy's matrix form); `sklearn_fit` fits
sklearn's unregularised LogisticRegression (C = inf) on s, the library a user would otherwise
call, for the cross-check.

Usage as a script (debugging):

    python3 tests/reference/platt_ref.py FILE

prints {"params", "val", "test"} (metrics at --bins 15, right-closed).
"""
from __future__ import annotations

import argparse
import json
import sys

import h5py
import numpy as np
from scipy.special import expit, logsumexp

import calib_ref as ref
import hist_iso_ref as hr


def load(path: str, split: str) -> tuple[ref.Split, np.ndarray]:
    """The uncalibrated Split and the log-values z (logits, or log p) of a split."""
    base = ref.load_split(path, split)
    with h5py.File(path, "r") as f:
        g = f[split]
        is_logits = "logits" in g
        z = (g["logits"] if is_logits else g["probs"])[()].astype(np.float64)
    if not is_logits:
        with np.errstate(divide="ignore"):
            z = np.log(z)
    return base, z


def mode_of(k: int) -> str:
    return "binary" if k == 2 else "top-label"


def scores(base: ref.Split, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) of every row."""
    if base.k == 2:
        return z[:, 1] - z[:, 0], (base.y == 1).astype(np.float64)
    rows = np.arange(base.n)
    others = z.copy()
    others[rows, base.yhat] = -np.inf
    return z[rows, base.yhat] - logsumexp(others, axis=1), (base.yhat == base.y).astype(np.float64)


def identifiable(s: np.ndarray, t: np.ndarray) -> bool:
    """The MLE exists: both targets occur and neither side's scores lie all at or beyond the
    other side's (no complete or quasi-complete separation)."""
    s0, s1 = s[t == 0], s[t == 1]
    if len(s0) == 0 or len(s1) == 0:
        return False
    return not (s0.max() <= s1.min() or s1.max() <= s0.min())


def nll(theta, s, t):
    u = theta[0] * s + theta[1]
    return float(np.mean(np.logaddexp(0.0, u) - t * u))


def fit(s: np.ndarray, t: np.ndarray) -> dict:
    """Newton's method on the mean NLL from (1, 0), the step halved while it raises the NLL,
    until the step is below 1e-15 relative or 100 steps; the gradient at the result is
    asserted to be at rounding level."""
    theta = np.array([1.0, 0.0])
    x = np.stack([s, np.ones_like(s)], axis=1)
    for _ in range(100):
        p = expit(x @ theta)
        g = x.T @ (p - t) / len(s)
        h = (x * (p * (1.0 - p))[:, None]).T @ x / len(s)
        step = -np.linalg.solve(h, g)
        while nll(theta + step, s, t) > nll(theta, s, t) + 1e-15 and np.max(np.abs(step)) > 1e-300:
            step /= 2.0
        theta = theta + step
        if np.max(np.abs(step)) <= 1e-15 * max(1.0, np.max(np.abs(theta))):
            break
    g = x.T @ (expit(x @ theta) - t) / len(s)
    assert np.max(np.abs(g)) < 1e-12 * max(1.0, np.max(np.abs(s))), f"reference Newton did not converge: {g}"
    return {"a": float(theta[0]), "b": float(theta[1]), "nll": nll(theta, s, t)}


def sklearn_fit(s: np.ndarray, t: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression
    lr = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14, max_iter=1000)
    lr.fit(s[:, None], t.astype(int))
    return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def apply(params: dict, base: ref.Split, z: np.ndarray) -> ref.Split:
    s, _ = scores(base, z)
    u = params["a"] * s + params["b"]
    if base.k == 2:
        return ref.from_logits(np.stack([np.zeros(base.n), u], axis=1), base.y)
    return hr.rescale_top_label(base, expit(u))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    a = ap.parse_args(argv)
    val, zv = load(a.file, "val")
    params = fit(*scores(val, zv))
    out = {"params": params}
    for name in ("val", "test"):
        base, z = load(a.file, name)
        m = ref.compute_metrics(apply(params, base, z), 15, "right-closed")
        out[name] = {k: ref.to_json_value(v) for k, v in m.items() if k in ref.METRIC_KEYS}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
