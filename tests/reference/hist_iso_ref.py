"""Naive float64 reference of the top-label calibrators `hist`, `iso` and `cir` of `calibench fit`.

Written from docs/calibrators.md ("Top-label maps"): histogram binning as markus93's
HistogramBinning (equal-width right-closed bins, per-bin accuracy, empty bin -> 0) and isotonic
regression as sklearn.isotonic.IsotonicRegression(out_of_bounds='clip', increasing=True) of
correctness on confidence, and centered isotonic regression as cir-model 0.2.0
(pypi.org/project/cir-model, cir_model/cir_model.py, CenteredIsotonicRegression.fit and
_build_cir_points) builds its knots from that fit.  Counts are Python ints and pooling decisions compare exact
fractions; `sklearn_isotonic` fits sklearn itself so that the tests can check this reference
against it.  Every function takes the uncalibrated calib_ref.Split of a split (logits or
probabilities, as calib_ref.load_split reads a dump).

Usage as a script (debugging):

    python3 tests/reference/hist_iso_ref.py FILE --method hist|iso [--calib-bins 15]

prints {"method", "params", "val", "test"} (metrics at --bins 15, right-closed).
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction

import numpy as np

import calib_ref as ref

DEFAULT_CALIB_BINS = 15
# numpy's float64 resolution: sklearn's _make_unique starts a new distinct x only when
# x - (first x of the current one) >= this.
SKLEARN_RESOLUTION = float(np.finfo(np.float64).resolution)


def fit_hist(base: ref.Split, bins: int = DEFAULT_CALIB_BINS) -> dict:
    """edges i/M; counts and mean correctness of the validation samples whose confidence lies in
    ((b-1)/M, b/M] (0 in the first bin); an empty bin gets value 0."""
    b = ref.bin_index(base.c, bins, "right-closed")
    counts = [0] * bins
    correct = [0] * bins
    for i in range(base.n):
        counts[b[i]] += 1
        correct[b[i]] += int(base.yhat[i] == base.y[i])
    values = [correct[j] / counts[j] if counts[j] else 0.0 for j in range(bins)]
    return {"edges": [i / float(bins) for i in range(bins + 1)], "values": values, "counts": counts}


def isotonic_blocks(c, hit) -> list:
    """Pool-adjacent-violators on the distinct confidences (sklearn's grouping), each weighted
    by its sample count; a block pools with its left neighbour while the neighbour's mean is >=
    its own (exact fractions).  `c`: the scores, `hit`: their 0/1 targets.  Returns
    [first x, last x, correct, count, the samples' x] per block."""
    order = np.argsort(c, kind="stable")
    points = []  # [x, correct, count, samples' x] per distinct x
    for r in order:
        x, h = float(c[r]), int(hit[r])
        if points and x - points[-1][0] < SKLEARN_RESOLUTION:
            points[-1][1] += h
            points[-1][2] += 1
            points[-1][3].append(x)
        else:
            points.append([x, h, 1, [x]])
    blocks = []
    for x, hit, cnt, xs in points:
        blocks.append([x, x, hit, cnt, list(xs)])
        while len(blocks) > 1 and Fraction(blocks[-2][2], blocks[-2][3]) >= Fraction(blocks[-1][2], blocks[-1][3]):
            last = blocks.pop()
            blocks[-1][1] = last[1]
            blocks[-1][2] += last[2]
            blocks[-1][3] += last[3]
            blocks[-1][4] += last[4]
    return blocks


def fit_iso(base: ref.Split) -> dict:
    """Breakpoints: first and last distinct x of every isotonic block, with the block's mean."""
    xs, ys = [], []
    for first, last, hit, cnt, _ in isotonic_blocks(base.c, base.correct):
        xs.append(first)
        ys.append(hit / cnt)
        if last != first:
            xs.append(last)
            ys.append(hit / cnt)
    return {"x": xs, "y": ys}


def fit_cir(base: ref.Split) -> dict:
    """cir's top-label knots: cir_knots of correctness on confidence."""
    return cir_knots(base.c, base.correct)


def cir_knots(c, hit) -> dict:
    """cir-model's knots: every isotonic block becomes the point (mean of its samples' x, its
    mean); a block of mean exactly 0 or 1 (non_centered_points) keeps (first x, v) and (last x, v)
    instead, the first block keeps (first x, v) and the last (last x, v) beside their mean point.
    (cir-model groups the training samples by their fitted value; numpy's interp, which sklearn
    1.9 predicts with, is exact at the knots, so those groups are the blocks.)  Then sklearn's
    second fit of the distinct points with unit weights: sorted by x, x closer than the resolution
    merged, a point equal to both neighbours dropped (the values already increase)."""
    blocks = isotonic_blocks(c, hit)
    pts = []
    for n, (first, last, hit, cnt, xs) in enumerate(blocks):
        v = hit / cnt
        mean = float(np.average(np.asarray(xs)))
        if v in (0.0, 1.0):
            pts += [(first, v), (last, v)]
        elif n == 0:
            pts += [(first, v), (mean, v)]
        elif n == len(blocks) - 1:
            pts += [(mean, v), (last, v)]
        else:
            pts.append((mean, v))
    ux, uy, w = [], [], []
    for x, y in sorted(set(pts)):
        if ux and x - ux[-1] < SKLEARN_RESOLUTION:
            uy[-1] = (uy[-1] * w[-1] + y) / (w[-1] + 1)
            w[-1] += 1
        else:
            ux.append(x)
            uy.append(y)
            w.append(1)
    keep = [i for i in range(len(ux))
            if i in (0, len(ux) - 1) or not (uy[i] == uy[i - 1] == uy[i + 1])]
    return {"x": [ux[i] for i in keep], "y": [uy[i] for i in keep]}


def cir_model(base: ref.Split):
    """cir-model's own fit of correctness on confidence (for cross-checks; clipped outside the range)."""
    from cir_model import CenteredIsotonicRegression
    return CenteredIsotonicRegression(out_of_bounds="clip").fit(base.c, base.correct)


def isotonic_at(x, y, c) -> np.ndarray:
    """np.clip to [x_0, x_last], then scipy interp1d's linear formula (what sklearn's predict
    calls): segment hi = searchsorted(x, c, 'left') clipped to [1, len - 1]."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    if len(x) == 1:
        return np.full(c.shape, y[0])
    t = np.clip(c, x[0], x[-1])
    hi = np.clip(np.searchsorted(x, t, side="left"), 1, len(x) - 1)
    lo = hi - 1
    slope = (y[hi] - y[lo]) / (x[hi] - x[lo])
    return slope * (t - x[lo]) + y[lo]


def sklearn_isotonic(base: ref.Split):
    """sklearn's own fit of correctness on confidence (for cross-checks)."""
    from sklearn.isotonic import IsotonicRegression
    return IsotonicRegression(out_of_bounds="clip", increasing=True).fit(base.c, base.correct)


def rescale_top_label(base: ref.Split, top: np.ndarray) -> ref.Split:
    """c' = top; every other class j gets (p_j / r)(1 - c'), r the sum of the other classes'
    probabilities in class order (r = 0: (1 - c')/(K - 1) each); the prediction stays the
    uncalibrated argmax and the confidence is c' (hist, iso and platt for K > 2)."""
    top = np.asarray(top, dtype=np.float64)
    rest = np.zeros(base.n)
    for j in range(base.k):  # sequential over classes; adding the 0.0 of the prediction is exact
        rest += np.where(base.yhat == j, 0.0, base.p[:, j])
    # The prediction's column (overwritten below) overflows where r is subnormal.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = base.p / rest[:, None] * (1.0 - top)[:, None]
    even = np.broadcast_to(((1.0 - top) / (base.k - 1))[:, None], base.p.shape)
    p = np.where((rest > 0)[:, None], scaled, even)
    rows = np.arange(base.n)
    p[rows, base.yhat] = top
    with np.errstate(divide="ignore"):
        logp_y = np.log(p[rows, base.y])
    return ref.Split("probs", p, top.copy(), base.yhat.copy(), base.y, logp_y, base.k)


def apply(method: str, params: dict, base: ref.Split) -> ref.Split:
    """c' = f(c), the rest rescaled (rescale_top_label)."""
    if method == "hist":
        top = np.asarray(params["values"], dtype=np.float64)[
            ref.bin_index(base.c, len(params["values"]), "right-closed")]
    elif method in ("iso", "cir"):
        top = isotonic_at(params["x"], params["y"], base.c)
    else:
        raise ValueError(f"unknown method {method!r}")
    return rescale_top_label(base, top)


def fit(method: str, base: ref.Split, calib_bins: int = DEFAULT_CALIB_BINS) -> dict:
    if method == "hist":
        return fit_hist(base, calib_bins)
    if method == "iso":
        return fit_iso(base)
    if method == "cir":
        return fit_cir(base)
    raise ValueError(f"unknown method {method!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--method", choices=["hist", "iso", "cir"], required=True)
    ap.add_argument("--calib-bins", type=int, default=DEFAULT_CALIB_BINS)
    a = ap.parse_args(argv)
    val, test = ref.load_split(a.file, "val"), ref.load_split(a.file, "test")
    params = fit(a.method, val, a.calib_bins)
    out = {"method": a.method, "params": params}
    for name, s in (("val", val), ("test", test)):
        m = ref.compute_metrics(apply(a.method, params, s), 15, "right-closed")
        out[name] = {k: ref.to_json_value(v) for k, v in m.items() if k in ref.METRIC_KEYS}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
