"""Checks of netcal_binning_ref.py (BBQ and ENIR as netcal 1.4.0 computes them).

Hand-worked tiny cases run everywhere; the parity tests need netcal (and torch), i.e. run under
/work/main/.venv-peers/bin/python -m pytest, and compare with netcal's own BBQ / ENIR:
  * `loglik=torch_ll` (netcal's exact float32 torch expression for the log-likelihood) with
    everything else the reference's numpy: the outputs agree to 1e-12 (observed: bit for bit);
  * the default float64 log-likelihood against netcal patched to compute its BCE in float64:
    1e-12 (only torch's summation order / libm differ, ~1e-16 relative in the scores);
  * the default against stock netcal: netcal's float32 log-likelihood moves the relative
    likelihoods by ~N * 6e-8 relative (for N = 5000, ~3e-4), so the calibrated probabilities differ
    by up to a few 1e-6 on these inputs; asserted below 1e-4 (measured, not a bound: an elbow cut
    can flip when two scores are within float32 noise).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import netcal_binning_ref as ref  # noqa: E402

EXACT = 1e-12  # hand examples: a handful of roundings of short decimal expressions
PARITY = 1e-12  # same float64 operations in the same order as netcal; observed differences are 0


# ============================================================================ hand-worked cases


def test_bin_range_hand():
    # N = 20: c = 2.714, min = max(1, floor(0.27)) = 1, max = min(ceil(4), ceil(27.1)) = 4
    assert list(ref.bbq_bin_range(20)) == [1, 2, 3, 4]
    # N = 4: max = min(ceil(0.8), ceil(15.9)) = 1
    assert list(ref.bbq_bin_range(4)) == [1]
    # N = 5000: c = 17.0998, max = min(1000, ceil(170.998)) = 171
    assert ref.bbq_bin_range(5000) == range(1, 172)
    # N = 8000: pow gives 19.999999999999996, so min = floor(1.9999999999999996) = 1 (cbrt: 2),
    # max = ceil(199.99999999999997) = 200
    assert ref.bbq_bin_range(8000) == range(1, 201)
    # N = 1000: pow gives 9.999999999999998: min 1, max ceil(99.99999999999997) = 100
    assert ref.bbq_bin_range(1000) == range(1, 101)


def test_histogram_edge_rules_hand():
    # 2 bins, edges [0, .5, 1].  Fit: [0, .5) and [.5, 1]  ->  bin 0 = {0.1}: 0, bin 1 = {.5, .9}: 1.
    h = ref.histogram_fit(np.array([0.1, 0.5, 0.9]), np.array([0, 1, 1]), 2)
    assert h["edges"] == [0.0, 0.5, 1.0] and h["values"] == [0.0, 1.0]
    # Predict: (0, .5] -> bin 0 (0 also), (.5, 1] -> bin 1, so the training point 0.5 gets bin 0.
    out = ref.histogram_predict(h, np.array([0.0, 0.1, 0.5, 0.5000001, 1.0]))
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    # 4 bins, edges 0, .25, .5, .75, 1: empty bins 1 and 2 get their midpoints .375 and .625.
    h = ref.histogram_fit(np.array([0.1, 0.9]), np.array([0, 1]), 4)
    assert h["values"] == [0.0, 0.375, 0.625, 1.0]
    # p = 0 and 1 are clipped to [eps, 1 - eps] in the fit: first and last bin.
    h = ref.histogram_fit(np.array([0.0, 0.0, 1.0]), np.array([1, 0, 1]), 3)
    assert h["values"] == [0.5, 0.5, 1.0]


def test_linspace_edges_are_j_times_step():
    # numpy's linspace: edge_j = j * (1/b), last edge set to 1 (not j / b): b = 49, j = 3 differs
    b = 49
    e = np.linspace(0.0, 1.0, b + 1)
    assert all(e[j] == j * (1.0 / b) for j in range(b)) and e[-1] == 1.0
    assert any(j * (1.0 / b) != j / b for j in range(b))


def test_loglik_hand():
    # e = [0, .5, 1], y = [0, 1, 1]: 0 + ln .5 + 0
    assert abs(ref.loglik_float64(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 1])) + math.log(2)) < EXACT
    # log clamped at -100 (torch): e = 0 with y = 1, e = 1 with y = 0
    assert ref.loglik_float64(np.array([0.0, 1.0]), np.array([1, 0])) == -200.0


def test_scores_hand():
    # BIC, N = 100: s = [20 + ln100, 16 + 3 ln100]; r_1 = exp(-(2 ln100 - 4)/2) = e^2 / 100
    r = ref.relative_likelihoods(np.array([-10.0, -8.0]), np.array([1, 3]), 100, "BIC")
    assert r[0] == 1.0 and abs(r[1] - math.e ** 2 / 100) < EXACT
    # AIC: s = [2 + 20, 6 + 16]: equal
    assert ref.relative_likelihoods(np.array([-10.0, -8.0]), np.array([1, 3]), 100, "aic").tolist() == [1.0, 1.0]


def test_elbow_hand():
    # r = [1, .5, .5]: var = 1/18; gaps 0.5 / var = 9 > alpha (keep), then 0 (stop): 2 kept
    kept, w = ref.elbow(np.array([0.5, 1.0, 0.5]))
    assert len(kept) == 2 and kept[0] == 1 and abs(w[0] - 2 / 3) < EXACT and abs(w[1] - 1 / 3) < EXACT
    # all equal: the first loop keeps all
    kept, w = ref.elbow(np.array([1.0, 1.0, 1.0]))
    assert sorted(kept.tolist()) == [0, 1, 2] and np.allclose(w, 1 / 3, rtol=0, atol=EXACT)
    # tiny tail: r = [1, .9, 1e-30, 1e-31]; var ~ 0.2: gap .1/var > alpha, .9/var > alpha,
    # 9e-31 / var < alpha -> 3 kept
    kept, _ = ref.elbow(np.array([1.0, 0.9, 1e-30, 1e-31]))
    assert kept.tolist() == [0, 1, 2]
    # one model: weight 1
    kept, w = ref.elbow(np.array([1.0]))
    assert kept.tolist() == [0] and w.tolist() == [1.0]
    # netcal's cut stops at the FIRST small gap: a near-tie at the top keeps one model only,
    # r = [1, 1 - 1e-6, .5]: var = .0556, gap 1e-6 / var = 1.8e-5 < alpha
    kept, w = ref.elbow(np.array([1.0, 1.0 - 1e-6, 0.5]))
    assert kept.tolist() == [0] and w.tolist() == [1.0]


def test_nir_isotonic_hand():
    # sorted y = [0, 1, 0, 1], x = .1 .. .4.  Quick init: 4 runs, bounds at .15, .25, .35.
    # Step 1: s = [0, -1, 1, 0], t = [1, .5, 1] -> lam = .5, V = [0, .5, .5, 1], groups 1, 2 merge.
    # Step 2: V = [0, .5, 1] is monotone, s = 0, t = inf: stop.  Models after dropping the first:
    # only the isotonic fit, weight 1.
    m = ref.enir_fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
    assert m["weights"] == [1.0] and len(m["models"]) == 1
    g = m["models"][0]
    assert g["values"] == [0.0, 0.5, 1.0] and g["lambda"] == 0.5
    assert g["lower"] == [0.0, 0.15000000000000002, 0.35] and g["upper"] == [0.15000000000000002, 0.35, 1.0]
    out = ref.enir_predict(m, np.array([0.0, 0.15, 0.2, 0.35, 0.36, 1.0]))
    assert out.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]


def test_nir_chain_merge_leaves_a_gap_hand():
    # Alternating labels 0 1 0 1 0 1 at x = .1 .. .6: s = [0, -1, 1, -1, 1, 0], t = [1, .5, .5, .5, 1]:
    # groups 1..4 collide at lam = .5 together.  netcal merges pairwise in ascending order:
    # B[1,1] = B[2,1] (.35), B[2,1] = B[3,1] (.45), B[3,1] = B[4,1] (.55), then deletes rows 2, 3, 4,
    # so the merged group keeps (.15, .35] and (.35, .55] belongs to no group: prediction 0 there
    # (netcal does the same, see test_gap_bug_in_netcal).  Its size counts 2 samples, not 4.
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    m = ref.enir_fit(x, np.array([0, 1, 0, 1, 0, 1]))
    g = m["models"][0]
    assert len(m["models"]) == 1 and g["values"] == [0.0, 0.5, 1.0]
    assert g["lower"] == [0.0, 0.15000000000000002, 0.55] and g["upper"] == [0.15000000000000002, 0.35, 1.0]
    out = ref.enir_predict(m, np.array([0.3, 0.35, 0.4, 0.5, 0.55, 0.56]))
    assert out.tolist() == [0.5, 0.5, 0.0, 0.0, 0.0, 1.0]


def test_enir_tie_order_matters_hand():
    # x = [.2, .5, .5, .7].  Labels in sorted order 0 1 0 1: runs 0|1|0|1, bounds .35, .5, .6;
    # group (.5, .5] is empty.  Step 1 (as in test_nir_isotonic_hand): groups 1 and 2 merge at
    # lam = .5 -> values [0, .5, 1] on [0, .35], (.35, .5], (.5, 1]; p = .5 gets .5.
    x = np.array([0.2, 0.5, 0.5, 0.7])
    m = ref.enir_fit(x, np.array([0, 1, 0, 1]), sort_kind="stable")
    assert ref.enir_predict(m, np.array([0.5])).tolist() == [0.5]
    # the same data with the tied pair in the other order, 0 0 1 1: already isotonic, empty path
    with pytest.raises(ValueError):
        ref.enir_fit(x, np.array([0, 0, 1, 1]), sort_kind="stable")


@pytest.mark.parametrize("y", [[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [1, 1, 0, 1, 0, 0]])
def test_enir_raises_like_netcal_hand(y):
    # all equal: one group from the start; separable: already isotonic, empty path;
    # anti-correlated: the path ends in one group.  netcal raises ValueError (np.min of empty).
    with pytest.raises(ValueError):
        ref.enir_fit(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), np.array(y))


def _paint(g, x):
    # literal netcal NearIsotonicRegression.transform
    out = np.zeros_like(x)
    for lo, hi, v in zip(g["lower"], g["upper"], g["values"]):
        mask = ((x >= lo) if lo == 0.0 else (x > lo)) & (x <= hi)
        out[mask] = v
    return out


class _LiteralNIR:
    """netcal's NearIsotonicRegression path state, written the way netcal writes it: the next
    model takes the previous model's arrays by reference and updates them in place."""

    def __init__(self, sizes, values, bounds, lam=0.0, copy=False):
        self.items = [int(s) for s in sizes]
        self.values, self.bounds, self.lam = values, bounds, lam
        self.copy = copy  # True: an unaliased path (for the "predicts like model k+1" check)

    def next(self):
        items = self.items if not self.copy else list(self.items)
        values = self.values if not self.copy else self.values.copy()
        bounds = self.bounds if not self.copy else self.bounds.copy()
        n = len(values)
        ind = [0.0] + [float(values[i] > values[i + 1]) for i in range(n - 1)] + [0.0]
        slopes = np.array([(ind[i] - ind[i + 1]) / items[i] for i in range(n)])
        t = np.array([(values[i + 1] - values[i]) / (slopes[i] - slopes[i + 1])
                      if slopes[i] != slopes[i + 1] else np.inf for i in range(n - 1)]) + self.lam
        nl = np.min(t)
        if nl < self.lam or nl == np.inf:
            return None
        for i in range(n):
            values[i] += slopes[i] * (nl - self.lam)
        joined = np.where(t == nl)[0]
        for i in joined:
            items[i] = items[i] + items[i + 1]
            bounds[i, 1] = bounds[i + 1, 1]
        up = set((joined + 1).tolist())
        return _LiteralNIR([items[i] for i in range(n) if i not in up], np.delete(values, list(up)),
                           np.delete(bounds, list(up), axis=0), float(nl), self.copy)

    def model(self):
        return {"lower": self.bounds[:, 0], "upper": self.bounds[:, 1], "values": self.values}


def _literal_path(sizes, values, bounds, copy):
    m = _LiteralNIR(sizes, values.copy(), bounds.copy(), copy=copy)
    out = [m]
    while (m := m.next()) is not None:
        out.append(m)
    return [x.model() for x in out]


@pytest.mark.parametrize("seed", range(4))
def test_nir_path_properties(seed):
    rng = np.random.default_rng(seed)
    n = 300
    p = np.round(rng.uniform(size=n), 2) if seed % 2 else rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(np.int64)
    o = np.argsort(p, kind="stable")
    init = ref.nir_init(p[o], y[o])
    path = ref._nir_path(*init)
    models = [{"lower": a, "upper": b, "values": v} for a, b, v, _ in path]
    x = np.concatenate([rng.uniform(size=500), p, [0.0, 1.0]])
    dfs = [len(m["values"]) for m in models]
    assert len(dfs) > 5 and all(a > b for a, b in zip(dfs, dfs[1:]))  # each step merges >= 1 group
    preds = [ref.nir_predict(m, x) for m in models]
    for m, pr in zip(models, preds):
        assert np.array_equal(pr, _paint(m, x))  # fast rule == netcal's painter
    literal = _literal_path(*init, copy=False)
    assert len(literal) == len(models)
    for a, b in zip(models, literal):
        for key in a:
            assert np.array_equal(a[key], b[key])
    # the aliasing: model k predicts like the unaliased model k + 1 (merged groups are equal to
    # rounding) wherever that one has a group (a chain merge leaves gaps in k + 1, not in the
    # aliased k); the last model is the unaliased last one, non-decreasing (isotonic end)
    clean_models = _literal_path(*init, copy=True)
    clean = [ref.nir_predict(m, x) for m in clean_models]
    gaps = 0
    for k in range(len(models) - 1):
        ones = dict(models[k], values=np.ones(len(models[k]["values"])))
        cover_k = _paint(ones, x) == 1
        ones = dict(clean_models[k + 1], values=np.ones(len(clean_models[k + 1]["values"])))
        cover = _paint(ones, x) == 1
        assert np.all(cover_k[cover])
        gaps += np.count_nonzero(cover_k & ~cover)
        assert np.max(np.abs(preds[k] - clean[k + 1])[cover]) < 1e-12
    assert np.array_equal(preds[-1], clean[-1])
    assert gaps > 0  # chain merges happen on these inputs
    assert np.all(np.diff(models[-1]["values"]) >= 0)


def _stub_fit(p, y):
    return {"a": float(np.mean(y))}


def _stub_predict(m, p):
    return np.where(p > 0.5, m["a"], 0.0)


def test_one_vs_rest_rules_hand():
    pv = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    yv = np.array([0, 1, 0, 0])  # class 2 absent: no model, column 0
    pt = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    out, models = ref.one_vs_rest(_stub_fit, _stub_predict, pv, yv, pt, return_models=True)
    assert sorted(models) == [0, 1]
    # class 0 model a = .75, class 1 a = .25; row 0: [.75, 0, 0] -> [1, 0, 0]; row 1 -> [0, 1, 0];
    # row 2: all 0 -> 0/0 = NaN (BBQ's rule, floor 0)
    assert out[:2].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] and np.isnan(out[2]).all()
    out = ref.one_vs_rest(_stub_fit, _stub_predict, pv, yv, pt, floor=ref.EPS)  # ENIR's rule
    assert out[2].tolist() == [0.0, 0.0, 0.0]
    # K = 2 columns: binary on column -1, 1-D result
    out = ref.one_vs_rest(_stub_fit, _stub_predict, pv[:, :2], yv, pt[:, :2])
    assert out.shape == (3,)


def test_models_are_json():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p).astype(np.int64)
    pt = rng.uniform(size=100)
    for fit, pred in ((ref.bbq_fit, ref.bbq_predict), (ref.enir_fit, ref.enir_predict)):
        m = fit(p, y)
        m2 = json.loads(json.dumps(m))
        assert np.array_equal(pred(m, pt), pred(m2, pt))
        assert abs(sum(m["weights"]) - 1.0) < EXACT


# ============================================================================ netcal parity


def _netcal():
    pytest.importorskip("torch")
    return pytest.importorskip("netcal.binning")


def torch_ll(e, y):
    """netcal AbstractCalibration._calc_model_scores' log-likelihood, verbatim."""
    import torch
    import torch.nn.functional as F

    return -F.binary_cross_entropy(torch.from_numpy(e).type(torch.FloatTensor),
                                   torch.from_numpy(np.asarray(y)).type(torch.FloatTensor),
                                   reduction="sum").item()


def net(name, p, y, pt, **kw):
    cls = getattr(_netcal(), name)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        m = cls(**kw)
        m.fit(p, y)
        return m.transform(pt)


REF = {"BBQ": (ref.bbq_fit, ref.bbq_predict), "ENIR": (ref.enir_fit, ref.enir_predict)}


def both(name, p, y, pt, score="BIC", loglik=torch_ll, **kw):
    """(netcal, reference); if netcal raises, the reference must raise the same type."""
    fit, pred = REF[name]
    try:
        a = net(name, p, y, pt, score_function=score, **kw)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            fit(p, y, score, loglik=loglik, **kw)
        return None, None
    return a, pred(fit(p, y, score, loglik=loglik, **kw), pt)


def data(n, seed, kind):
    rng = np.random.default_rng(1000 * seed + n)
    p = rng.uniform(size=n)
    if kind == "calibrated":
        q = p
    elif kind == "overconfident":  # true probability flatter than p
        q = 0.5 + 0.4 * (p - 0.5)
    else:  # "underconfident": true probability sharper than p
        q = p ** 3 / (p ** 3 + (1 - p) ** 3)
    y = (rng.uniform(size=n) < q).astype(np.int64)
    pt = np.concatenate([rng.uniform(size=400), p[:50], [0.0, 1.0]])
    return p, y, pt


CASES = [(n, s, k) for n in (20, 60, 300, 1500) for s in ((0, 1) if n < 1500 else (0,))
         for k in ("calibrated", "overconfident", "underconfident")] + [(5000, 0, "calibrated"),
                                                                         (5000, 1, "underconfident")]


@pytest.mark.parametrize("name,n,seed,kind", [(m, *c) for m in ("BBQ", "ENIR") for c in CASES
                                               if not (m == "ENIR" and c == (5000, 0, "calibrated"))])
def test_binary_parity(name, n, seed, kind):  # ENIR at N = 5000 once: netcal needs ~4 s for it
    p, y, pt = data(n, seed, kind)
    a, b = both(name, p, y, pt)
    if a is not None:
        assert np.max(np.abs(a - b)) <= PARITY


@pytest.mark.parametrize("n,seed", [(60, 0), (300, 1), (1500, 2)])
@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_binary_parity_aic(name, n, seed):
    p, y, pt = data(n, seed, "underconfident")
    a, b = both(name, p, y, pt, score="AIC")
    if a is not None:
        assert np.max(np.abs(a - b)) <= PARITY


def test_enir_ran_on_most_cases():
    # guard against the parity tests passing vacuously through the both-raise branch
    small = [c for c in CASES if c[0] <= 300]
    ran = sum(both("ENIR", *data(*c))[0] is not None for c in small)
    assert ran >= len(small) - 2


@pytest.mark.parametrize("n,seed,grid", [(200, 0, 20), (1000, 1, 20), (1500, 2, 8), (80, 3, 4)])
@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_ties_and_edges(name, n, seed, grid):
    # p on a k/grid lattice: many ties, values exactly on BBQ bin edges, p = 0 and 1 included
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(size=n) * grid) / grid
    y = (rng.uniform(size=n) < 0.1 + 0.8 * p).astype(np.int64)
    pt = np.concatenate([np.arange(grid + 1) / grid, rng.uniform(size=200)])
    a, b = both(name, p, y, pt)
    if a is not None:
        assert np.max(np.abs(a - b)) <= PARITY


@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_zero_one_inputs(name):
    rng = np.random.default_rng(7)
    p = rng.uniform(size=300)
    p[:40] = 0.0
    p[40:80] = 1.0
    y = (rng.uniform(size=300) < p).astype(np.int64)
    y[[0, 1, 41, 42]] = [1, 1, 0, 0]  # mistakes at the extremes: log clamp at -100 matters
    a, b = both(name, p, y, np.array([0.0, 1.0, 0.5, 1e-300, 1 - 1e-16]))
    assert a is not None and np.max(np.abs(a - b)) <= PARITY


@pytest.mark.parametrize("label", [0, 1])
def test_all_labels_equal(label):
    p = np.random.default_rng(label).uniform(size=100)
    y = np.full(100, label, dtype=np.int64)
    a, b = both("BBQ", p, y, np.linspace(0, 1, 21))
    assert np.max(np.abs(a - b)) <= PARITY
    assert both("ENIR", p, y, p) == (None, None)  # netcal raises; the reference raises too


@pytest.mark.parametrize("n,seed", [(15, 0), (40, 1), (120, 2)])
def test_enir_standard_init(n, seed):
    p, y, pt = data(n, seed, "calibrated")
    a, b = both("ENIR", p, y, pt, quick_init=False)
    if a is not None:
        assert np.max(np.abs(a - b)) <= PARITY


def test_gap_bug_in_netcal():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    out = net("ENIR", x, np.array([0, 1, 0, 1, 0, 1]), np.array([0.3, 0.4, 0.5, 0.56]))
    assert out.tolist() == [0.5, 0.0, 0.0, 1.0]


def mc_data(n, k, seed, absent=None):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n + 300, k)) * 2.0
    pr = np.exp(z - z.max(1, keepdims=True))
    pr /= pr.sum(1, keepdims=True)
    q = pr ** 1.5
    q /= q.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=r) for r in q])
    if absent is not None:
        y[y == absent] = (absent + 1) % k
    return pr[:n], y[:n], pr[n:]


@pytest.mark.parametrize("n,k,seed,absent", [(300, 3, 0, None), (600, 3, 1, 2), (1000, 10, 2, None),
                                             (500, 10, 3, 4)])
@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_multiclass_parity(name, n, k, seed, absent):
    pv, yv, pt = mc_data(n, k, seed, absent)
    fit, pred = REF[name]
    try:
        a = net(name, pv, yv, pt)
    except ValueError:
        with pytest.raises(ValueError):
            ref.one_vs_rest(fit, pred, pv, yv, pt, loglik=torch_ll)
        return
    b = ref.one_vs_rest(fit, pred, pv, yv, pt, loglik=torch_ll)
    assert a.shape == b.shape == pt.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= PARITY
    if absent is not None:
        assert np.all(b[:, absent] == 0)


def zero_row_data():
    # class 2 absent; class 0 true for t < .5 (p0 = .9 (1 - t) high), class 1 for t >= .5
    # (p1 = .9 t high), label noise only for t in (.4, .6).  Below p = .36 both one-vs-all
    # problems are clean negatives, so a test row with p0 = p1 = .05 gets 0 from both models.
    rng = np.random.default_rng(11)
    n = 1000
    t = rng.uniform(size=n)
    yv = np.where(t < 0.5, 0, 1)
    mid = np.nonzero((t > 0.4) & (t < 0.6))[0]
    flip = rng.choice(mid, len(mid) // 3, replace=False)
    yv[flip] = 1 - yv[flip]
    pv = np.stack([0.9 * (1 - t), 0.9 * t, np.full(n, 0.1)], 1)
    pt = np.array([[0.05, 0.05, 0.9], [0.8, 0.15, 0.05], [0.1, 0.85, 0.05], [0.45, 0.45, 0.1]])
    return pv, yv, pt


@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_multiclass_zero_rows(name):
    pv, yv, pt = zero_row_data()
    fit, pred = REF[name]
    a = net(name, pv, yv, pt)
    b = ref.one_vs_rest(fit, pred, pv, yv, pt, loglik=torch_ll)
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.nanmax(np.abs(a - b)) <= PARITY
    if name == "BBQ":
        assert np.isnan(b[0]).all()  # 0 / 0
    else:
        assert b[0].tolist() == [0.0, 0.0, 0.0]  # 0 / eps
    assert np.allclose(b[1:].sum(1), 1.0, rtol=0, atol=EXACT)


@pytest.fixture
def netcal_float64(monkeypatch):
    """netcal with its BCE log-likelihood in float64 (FloatTensor -> DoubleTensor)."""
    _netcal()
    import types

    import torch

    mod = sys.modules["netcal.AbstractCalibration"]
    shim = types.SimpleNamespace(from_numpy=torch.from_numpy, FloatTensor=torch.DoubleTensor,
                                 dtype=torch.dtype, finfo=torch.finfo)
    monkeypatch.setattr(mod, "torch", shim)


@pytest.mark.parametrize("n,seed,kind", [(60, 0, "calibrated"), (300, 1, "underconfident"),
                                         (1500, 0, "overconfident"), (2500, 1, "calibrated")])
@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_float64_default_vs_netcal_float64(netcal_float64, name, n, seed, kind):
    p, y, pt = data(n, seed, kind)
    a, b = both(name, p, y, pt, loglik="float64")
    if a is not None:
        assert np.max(np.abs(a - b)) <= PARITY


@pytest.mark.parametrize("n,seed,kind", [(60, 0, "calibrated"), (300, 1, "underconfident"),
                                         (1500, 0, "overconfident"), (3000, 0, "calibrated")])
@pytest.mark.parametrize("name", ["BBQ", "ENIR"])
def test_float64_default_vs_stock_netcal(name, n, seed, kind):
    # netcal's float32 log-likelihood: see the module docstring for the 1e-4
    p, y, pt = data(n, seed, kind)
    a, b = both(name, p, y, pt, loglik="float64")
    if a is not None:
        assert np.max(np.abs(a - b)) <= 1e-4
