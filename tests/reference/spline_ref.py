"""Float64 reference for spline recalibration (Gupta, Rahimi, Ajanthan, Mensink, Sminchisescu,
Hartley, "Calibration of Neural Networks using Splines", ICLR 2021), ported from the authors' code
kartikgupta-at-anu/spline-calibration at commit b6a2f603033a3016609b858d3e517d50b703e0ca:
recalibrate.py `get_recalibration_function`, `interpolated_function`, `first_above`, the clip in
`do_plots` (lines 202-211), and utilities/spline.py `Spline` (`ky_to_M`, `my_to_y`, `my_to_dy`,
`evaluate_deriv`) with runout='natural' and 6 knots (recalibrate.py `main`: methods ['natural'],
range(6, 7)). Their code is not imported; the specification for a C++ port is /tmp/specs/spline.md.

Fit on the validation top-label confidences s and correctness a (0/1):
    order = argsort(s) (ascending); s, a permuted alike; N = len(s)
    t_i = linspace(0, 1, N)_i = i / (N - 1)                     (t = [0] when N = 1)
    r_i = cumsum(a)_i / N - cumsum(s)_i / N                     (cumulative accuracy - confidence)
    knots kx = linspace(0, 1, K), h = kx[1] - kx[0]
    natural cubic spline S with values ky at kx, second derivatives M = [0, A^-1 B ky, 0],
        A = tridiag(1, 4, 1) of size K - 2, B = (6 / h^2) * second differences [1, -2, 1]
    ky = argmin ||D ky - r||^2, D = the N x K matrix of S(t_i) as a linear map of ky
        (minimum-norm solution, singular values <= 2^-53 * largest dropped, as LAPACK gelsd
        with rcond = -1 does)
    node values y_i = s_i + S'(t_i)                             (not clipped, not monotone)
Apply to a confidence c, with x = the sorted validation s (ties kept):
    c >= x[-1] -> y[-1]; else c <= x[0] -> y[0]; else, ind = first index with x[ind] >= c,
    alpha = c - x[ind-1], beta = x[ind] - c,
    f(c) = (beta * y[ind] + alpha * y[ind-1]) / (alpha + beta)   (the authors' weights: swapped,
         so f(x[ind]) = y[ind-1]; interpolation="linear" gives the textbook weights instead)
    c' = clip(f(c), 0, 1)
Sorting: the authors call numpy's default argsort (not stable); sort_kind="stable" (default here,
ties in input order) is what a C++ port can reproduce; sort_kind="quicksort" reproduces their
permutation exactly. The order inside a tie group changes r, hence the fit.
"""
from __future__ import annotations

import numpy as np

DEFAULT_KNOTS = 6
LSTSQ_RCOND = 2.0 ** -53  # LAPACK dlamch('E'), what gelsd uses for rcond < 0


def sort_by_confidence(conf, correct, sort_kind: str = "stable"):
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    order = np.argsort(conf, kind=sort_kind)
    return conf[order], correct[order]


def cumulative_curve(s_sorted: np.ndarray, a_sorted: np.ndarray):
    """(t, r): t = linspace(0, 1, N), r = cumsum(a)/N - cumsum(s)/N (two divisions, then -)."""
    n = len(s_sorted)
    t = np.linspace(0.0, 1.0, n)
    return t, np.cumsum(a_sorted) / n - np.cumsum(s_sorted) / n


def knot_grid(knots: int):
    if knots < 2:
        raise ValueError("need at least 2 knots")
    kx = np.linspace(0.0, 1.0, knots)
    return kx, kx[1] - kx[0]


def second_derivative_map(knots: int, h: float) -> np.ndarray:
    """K x K matrix G with M = G ky for the natural spline (rows 0 and K-1 are zero)."""
    m = knots - 2
    a = 4.0 * np.eye(m) + np.eye(m, k=1) + np.eye(m, k=-1)
    b = np.zeros((m, knots))
    for i in range(m):
        b[i, i:i + 3] = (1.0, -2.0, 1.0)
    b = b * (6 / h**2)
    g = np.zeros((knots, knots))
    if m > 0:
        g[1:-1] = np.linalg.solve(a, b)
    return g


def _segments(x: np.ndarray, kx: np.ndarray, h: float):
    """Segment j = floor((x - kx0)/h) clamped to [0, K-2], local u = x - j h."""
    j = np.floor((x - kx[0]) / h)
    j = np.clip(j, 0, len(kx) - 2).astype(np.int64)
    return j, x - j * h


def _rows(j: np.ndarray, knots: int, cj, cj1) -> np.ndarray:
    out = np.zeros((len(j), knots))
    rows = np.arange(len(j))
    out[rows, j] = cj
    out[rows, j + 1] = cj1
    return out


def basis(x: np.ndarray, kx: np.ndarray, h: float, derivative: bool):
    """(P, Q) with S(x) or S'(x) = P @ M + Q @ ky, the authors' my_to_y / my_to_dy formulas."""
    j, u = _segments(np.asarray(x, dtype=np.float64), kx, h)
    k = len(kx)
    if derivative:
        p = _rows(j, k, -u**2 / (2.0 * h) + u - 2.0 * h / 6.0, u**2 / (2.0 * h) - h / 6.0)
        q = _rows(j, k, -1.0 / h, 1.0 / h)
    else:
        p = _rows(j, k, -u**3 / (6.0 * h) + u**2 / 2.0 - 2.0 * h * u / 6.0, u**3 / (6.0 * h) - h * u / 6.0)
        q = _rows(j, k, -u / h + 1.0, u / h)
    return p, q


def min_norm_lstsq(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    u, sv, vt = np.linalg.svd(d, full_matrices=False)
    if sv.size == 0 or sv[0] == 0.0:
        return np.zeros(d.shape[1])
    keep = sv > LSTSQ_RCOND * sv[0]
    return vt[keep].T @ ((u[:, keep].T @ r) / sv[keep])


def fit_spline(t: np.ndarray, r: np.ndarray, knots: int = DEFAULT_KNOTS):
    """(kx, ky, M) of the least-squares natural cubic spline through (t, r)."""
    kx, h = knot_grid(knots)
    g = second_derivative_map(knots, h)
    p, q = basis(t, kx, h, derivative=False)
    ky = min_norm_lstsq(p @ g + q, r)
    return kx, ky, g @ ky


def spline_derivative(x, kx, ky, m) -> np.ndarray:
    p, q = basis(x, kx, kx[1] - kx[0], derivative=True)
    return p @ m + q @ ky


def spline_value(x, kx, ky, m) -> np.ndarray:
    p, q = basis(x, kx, kx[1] - kx[0], derivative=False)
    return p @ m + q @ ky


def fit(conf_val, correct_val, knots: int = DEFAULT_KNOTS, sort_kind: str = "stable") -> dict:
    """The recalibration model: the spline (knots, knot_values, second_derivatives) and the
    interpolation nodes (x = sorted validation confidences, y = s + S'(t), unclipped)."""
    s, a = sort_by_confidence(conf_val, correct_val, sort_kind)
    if s.size == 0:
        raise ValueError("no validation samples")
    if not np.all(np.isfinite(s)):
        raise ValueError("non-finite confidence")
    t, r = cumulative_curve(s, a)
    kx, ky, m = fit_spline(t, r, knots)
    y = s + spline_derivative(t, kx, ky, m)
    return {"method": "spline", "runout": "natural", "knots": kx.tolist(),
            "knot_values": ky.tolist(), "second_derivatives": m.tolist(),
            "x": s.tolist(), "y": y.tolist()}


def interpolate(x: np.ndarray, y: np.ndarray, c: np.ndarray, interpolation: str = "authors"):
    """recalibrate.py interpolated_function.__call__, vectorised (first_above = searchsorted left)."""
    c = np.asarray(c, dtype=np.float64)
    if interpolation not in ("authors", "linear"):
        raise ValueError(interpolation)
    if len(x) == 1:
        return np.full(c.shape, y[0])
    ind = np.clip(np.searchsorted(x, c, side="left"), 1, len(x) - 1)  # used only where x0 < c < x[-1]
    alpha = c - x[ind - 1]
    beta = x[ind] - c
    with np.errstate(invalid="ignore", divide="ignore"):
        if interpolation == "authors":
            mid = (beta * y[ind] + alpha * y[ind - 1]) / (alpha + beta)
        else:
            mid = (alpha * y[ind] + beta * y[ind - 1]) / (alpha + beta)
    return np.where(c >= x[-1], y[-1], np.where(c <= x[0], y[0], mid))


def calibrate(model: dict, conf, interpolation: str = "authors") -> np.ndarray:
    """Calibrated top-label confidence clip(f(c), 0, 1)."""
    c = np.asarray(conf, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise ValueError("non-finite confidence")
    x = np.asarray(model["x"], dtype=np.float64)
    y = np.asarray(model["y"], dtype=np.float64)
    return np.clip(interpolate(x, y, c, interpolation), 0.0, 1.0)


def top_label(probs: np.ndarray, labels: np.ndarray):
    """(confidence, correct) of the top label; the prediction is the lowest index on ties (the
    authors' np.argpartition(row, -1)[-1] picks an unspecified one of tied maxima)."""
    pred = np.argmax(probs, axis=1)
    return probs[np.arange(len(probs)), pred], (pred == labels).astype(np.float64)


def within_top_k(probs: np.ndarray, labels: np.ndarray, k: int):
    """recalibrate.py get_top_results_inclusive: (sum of the k largest, label among them)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    inside = (order == labels[:, None]).any(axis=1).astype(np.float64)
    return np.take_along_axis(probs, order, axis=1).sum(axis=1), inside
