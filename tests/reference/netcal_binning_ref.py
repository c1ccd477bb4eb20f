"""Float64 reference for netcal 1.4.0's BBQ and ENIR (defaults), ported from
EFS-OpenSource/calibration-framework at 2a3db8d7cb2a557f3b563c98ce00954f43dfe927 (identical to the
installed 1.4.0): netcal/binning/BBQ.py `BBQ.fit/transform`, HistogramBinning.py
`HistogramBinning.fit/transform`, ENIR.py `ENIR.fit/transform`, NearIsotonicRegression.py (quick and
standard init, `fit(last_model=...)`, `transform`), AbstractCalibration.py `_calc_model_scores`,
`_elbow`, `_create_one_vs_all_models`.  Written without netcal's code; netcal's quirks are kept.

Model score (both methods), on the training p in netcal's order, N = len(y), df = bins (BBQ) or
groups (ENIR):
    LL  = -sum_i [ (y_i - 1) max(log1p(-e_i), -100) - y_i max(log e_i, -100) ]   (torch BCE, sum)
    BIC = -2 LL + df ln N          AIC = 2 df - 2 LL
    r_m = exp((min_m score - score_m) / 2)
netcal computes LL in float32 (estimate and labels cast to torch.FloatTensor, torch's own sum
order); loglik="float64" (default) is the exact value; a callable(e, y) -> LL replaces it (the
tests pass netcal's torch expression to check everything else bit for bit).
Elbow (alpha = 0.001): sort r descending (np.argsort(r)[::-1]), v = np.var(r); k = 0;
    while k < M-1 and s[k] == s[k+1]: k += 1
    while k < M-1 and (s[k] - s[k+1]) / v > alpha: k += 1
keep the first k+1, weights w = r / sum(r) over the kept.  Prediction sum_m w_m f_m(x), clip [0,1].

BBQ: pow(N, 1/3) = c; bins b = max(1, floor(c/10)) .. min(ceil(N/5), ceil(10 c)).  Histogram b:
edges = linspace(0, 1, b+1) (edge_j = j * (1/b), last = 1); fit on clip(p, eps64, 1-eps64) with
bin j = [e_j, e_{j+1}) (last closed), value = mean(y == 1), empty bin -> (e_j + e_{j+1}) / 2;
predict bin j = (e_j, e_{j+1}] (x <= e_1 -> 0, x > e_{b-1} -> b-1).

ENIR: sort p (np.argsort, twice as netcal does), quick init: groups = runs of equal sorted labels,
value = the run's label, bounds at the midpoints (x_last + x_next)/2, first lower 0, last upper 1.
Modified PAVA path (Tibshirani et al. 2011) with netcal's in-place updates (see _nir_path).
The first (perfect-fit) model is dropped; each other model but the last predicts with its groups'
values as updated by the NEXT step (netcal's aliasing), piecewise (lo, hi], [0, hi] when lo == 0,
0 outside every group.  Tied p are not pooled: the result depends on the order within ties
(sort_kind=None is numpy's default, what netcal uses; "stable" keeps the input order).

Multiclass [N, K > 2]: one binary model per class present in y (absent classes give column 0),
rows divided by their sums (BBQ: 0/0 -> NaN; ENIR: sum floored at eps64), then clipped to [0, 1].
"""
from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float64).eps)
ALPHA = 0.001


# ----------------------------------------------------------------------------- scores, elbow


def loglik_float64(e: np.ndarray, y: np.ndarray) -> float:
    e = np.asarray(e, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = (y - 1.0) * np.maximum(np.log1p(-e), -100.0) - y * np.maximum(np.log(e), -100.0)
    return -float(np.sum(loss))


def _loglik_fn(loglik):
    if callable(loglik):
        return loglik
    if loglik != "float64":
        raise ValueError(f"unknown loglik {loglik!r}")
    return loglik_float64


def _check_range(e: np.ndarray) -> None:
    e32 = np.asarray(e).astype(np.float32)  # torch checks the float32 copy it is given
    if not ((e32 >= 0) & (e32 <= 1)).all():
        raise ValueError("all elements of input should be between 0 and 1 (torch BCE check)")


def relative_likelihoods(ll: np.ndarray, df: np.ndarray, n: int, score: str) -> np.ndarray:
    ll = np.asarray(ll, dtype=np.float64)
    df = np.asarray(df, dtype=np.int32)
    if score.lower() == "aic":
        s = 2.0 * df - 2.0 * ll
    elif score.lower() == "bic":
        s = -2.0 * ll + df * np.log(n)
    else:
        raise ValueError(f"unknown score {score!r}")
    return np.exp((np.min(s) - s) / 2.0)


def elbow(r: np.ndarray, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """(kept model indices in descending-score order, their normalised weights)."""
    m = len(r)
    var = np.var(r)
    order = np.argsort(r)[::-1]
    s = r[order]
    k = 0
    while k < m - 1 and s[k] == s[k + 1]:
        k += 1
    while k < m - 1 and (s[k] - s[k + 1]) / var > alpha:
        k += 1
    kept = order[: k + 1]
    w = r[kept]
    return kept, w / np.sum(w)


def _select(estimates, dfs, y, score, loglik):
    """estimates: one array per model on the training p (netcal's order)."""
    if len(estimates) == 0:
        raise ValueError("no candidate model (netcal: np.min of an empty score array)")
    f = _loglik_fn(loglik)
    ll = np.empty(len(estimates))
    for i, e in enumerate(estimates):
        _check_range(e)
        ll[i] = f(e, y)
    r = relative_likelihoods(ll, dfs, y.size, score)
    return elbow(r)


def _weighted(preds: list[np.ndarray], weights) -> np.ndarray:
    out = np.sum(np.array(preds) * np.expand_dims(np.asarray(weights, dtype=np.float64), 1), axis=0)
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- BBQ


def bbq_bin_range(n: int) -> range:
    c = np.power(n, 1.0 / 3.0)  # NOT cbrt: pow(8000, 1/3) = 19.999999999999996 -> min_bins 1
    lo = int(max(1, np.floor(c / 10.0)))
    hi = int(min(np.ceil(n / 5), np.ceil(c * 10.0)))
    return range(lo, hi + 1)


def histogram_fit(p: np.ndarray, y: np.ndarray, bins: int) -> dict:
    x = np.clip(p, EPS, 1.0 - EPS)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.searchsorted(edges, x, side="right") - 1  # scipy binned_statistic_dd: [e_j, e_j+1)
    idx[x >= edges[-1]] = bins - 1  # right edge into the last bin (unreachable after the clip)
    count = np.bincount(idx, minlength=bins)
    pos = np.bincount(idx, weights=(y == 1).astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = pos / count
    empty = count == 0
    values[empty] = 0.5 * (edges[:-1][empty] + edges[1:][empty])
    return {"bins": bins, "edges": edges.tolist(), "values": values.tolist()}


def histogram_predict(h: dict, p: np.ndarray) -> np.ndarray:
    edges = np.asarray(h["edges"])
    idx = np.searchsorted(edges, p, side="left") - 1  # np.digitize(right=True) - 1: (e_j, e_j+1]
    idx = np.clip(idx, 0, h["bins"] - 1)
    return np.clip(np.asarray(h["values"])[idx], 0.0, 1.0)


def bbq_fit(p, y, score: str = "BIC", loglik="float64") -> dict:
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    hists = [histogram_fit(p, y, b) for b in bbq_bin_range(y.size)]
    ests = [histogram_predict(h, p) for h in hists]
    kept, w = _select(ests, [h["bins"] for h in hists], y, score, loglik)
    return {"method": "bbq", "score": score.lower(), "n": int(y.size),
            "models": [hists[i] for i in kept], "weights": w.tolist()}


def bbq_predict(model: dict, p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return _weighted([histogram_predict(h, p) for h in model["models"]], model["weights"])


# ----------------------------------------------------------------------------- ENIR


def nir_init(x: np.ndarray, y: np.ndarray, quick: bool = True):
    """x, y sorted.  Returns (sizes, values, bounds[n, 2])."""
    y = y.astype(np.float64)
    if quick:
        d = y[1:] - y[:-1]
        v = np.nonzero(d != 0.0)[0]
        dv = d[v]
        dv[dv == -1.0] = 0.0
        values = np.insert(dv, 0, y[0])
        sizes = np.diff(np.concatenate(([0], v + 1, [y.size])))
        mid = (x[v] + x[v + 1]) / 2.0
    else:
        values = y.copy()
        sizes = np.ones(y.size, dtype=np.int64)
        mid = (x[:-1] + x[1:]) / 2.0
    bounds = np.stack((np.insert(mid, 0, 0.0), np.append(mid, 1.0)), axis=1)
    return sizes.astype(np.int64), values, bounds


def _nir_path(sizes, values, bounds):
    """netcal's mPAVA with its aliasing.  Step from (lam, sizes, V, B):
        ind  = [0, V[:-1] > V[1:], 0];  s_i = (ind_i - ind_{i+1}) / sizes_i
        t_i  = (V_{i+1} - V_i) / (s_i - s_{i+1}) + lam   (inf where s_i == s_{i+1})
        lam* = min t  (empty t: netcal raises);  stop if lam* < lam or lam* == inf
        V   += s (lam* - lam)                  <- in place: also the current model's values
        for i in where(t == lam*) ascending: sizes_i += sizes_{i+1}; B[i,1] = B[i+1,1]  (in place)
        delete rows i+1 of V, B, sizes; lam = lam*
    Returns every model as (lower, upper, values, lam) as netcal leaves them."""
    lam = 0.0
    models = []
    while True:
        if values.size < 2:
            raise ValueError("NIR path reached one group (netcal: np.min of empty collision times)")
        ind = np.concatenate(([False], values[:-1] > values[1:], [False])).astype(np.float64)
        slopes = (ind[:-1] - ind[1:]) / sizes.astype(np.float64)
        gd = values[1:] - values[:-1]
        sd = slopes[:-1] - slopes[1:]
        t = np.divide(gd, sd, out=np.full_like(gd, np.inf), where=sd != 0) + lam
        nxt = np.min(t)
        if nxt < lam or nxt == np.inf:
            models.append((bounds[:, 0].copy(), bounds[:, 1].copy(), values.copy(), lam))
            return models
        values = values + slopes * (nxt - lam)
        joined = np.nonzero(t == nxt)[0]
        sizes = sizes.copy()
        bounds = bounds.copy()
        for i in joined:
            sizes[i] += sizes[i + 1]
            bounds[i, 1] = bounds[i + 1, 1]
        models.append((bounds[:, 0].copy(), bounds[:, 1].copy(), values.copy(), lam))
        up = joined + 1
        values, bounds, sizes = np.delete(values, up), np.delete(bounds, up, axis=0), np.delete(sizes, up)
        lam = float(nxt)


def nir_predict(m: dict, x: np.ndarray) -> np.ndarray:
    """netcal paints groups in order: x in (lo, hi] ([lo, hi] if lo == 0.0) -> value, else 0.
    Lower and upper bounds are both non-decreasing in the group index, so the painter's winner is
    the last group with lo < x (lo <= x for lo == 0), if x <= its hi."""
    lo, hi, v = (np.asarray(m[k], dtype=np.float64) for k in ("lower", "upper", "values"))
    assert np.all(np.diff(lo) >= 0) and np.all(np.diff(hi) >= 0)
    i = np.searchsorted(lo, x, side="left") - 1
    zero = x == 0.0
    i[zero] = np.searchsorted(lo, 0.0, side="right") - 1
    ok = i >= 0
    ok[ok] = x[ok] <= hi[i[ok]]
    out = np.zeros_like(x)
    out[ok] = v[i[ok]]
    return out


def enir_fit(p, y, score: str = "BIC", quick_init: bool = True, loglik="float64",
             sort_kind: str | None = None) -> dict:
    """sort_kind None: np.argsort's default (netcal's; its order within ties of p is numpy's and
    may differ across numpy builds/CPUs); "stable": ties keep input order (portable)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    o = np.argsort(p, kind=sort_kind)  # ENIR._sort_arrays
    x, ys = p[o], y[o]
    o2 = np.argsort(x, kind=sort_kind)  # NearIsotonicRegression.__initial_model_*: sorts again
    path = _nir_path(*nir_init(x[o2], ys[o2], quick_init))[1:]  # drop the perfect fit
    models = [{"lower": a.tolist(), "upper": b.tolist(), "values": v.tolist(), "lambda": lam}
              for a, b, v, lam in path]
    ests = [nir_predict(m, x) for m in models]
    kept, w = _select(ests, [len(m["values"]) for m in models], ys, score, loglik)
    return {"method": "enir", "score": score.lower(), "quick_init": bool(quick_init), "n": int(y.size),
            "models": [models[i] for i in kept], "weights": w.tolist()}


def enir_predict(model: dict, p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return _weighted([nir_predict(m, p) for m in model["models"]], model["weights"])


# ----------------------------------------------------------------------------- one-vs-all


def one_vs_rest(fit, predict, probs_val, y_val, probs_test, floor=None, return_models=False, **kw):
    """netcal's multiclass procedure.  floor: lower clip of the row sums (None: BBQ's none, ENIR's
    eps64, chosen from `fit`).  K <= 2 columns: netcal's binary path on column -1 (1-D result)."""
    pv = np.asarray(probs_val, dtype=np.float64)
    pt = np.asarray(probs_test, dtype=np.float64)
    y = np.asarray(y_val)
    if y.ndim == 2:
        y = y[:, -1] if y.shape[1] <= 2 and pv.shape[1] <= 2 else np.argmax(y, axis=1)
    k = pv.shape[1]
    if k <= 2:
        m = fit(pv[:, -1], y, **kw)
        out = predict(m, pt[:, -1])
        return (out, {1: m}) if return_models else out
    if floor is None:
        floor = EPS if fit is enir_fit else 0.0
    models = {}
    for c in range(k):
        if np.count_nonzero(y == c) == 0:
            continue  # netcal: "no training data for label c" -> no model, column stays 0
        models[c] = fit(pv[:, c], (y == c).astype(np.int64), **kw)
    cal = np.zeros(pt.shape)
    for c, m in models.items():
        cal[:, c] = predict(m, pt[:, c])
    s = np.sum(cal, axis=1, keepdims=True)
    if floor > 0:
        s = np.clip(s, floor, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        cal = np.clip(cal / s, 0.0, 1.0)
    return (cal, models) if return_models else cal
