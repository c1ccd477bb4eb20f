"""Self-checks of tests/reference/conventions_ref.py (the conventions of other libraries,
docs/metrics.md "Conventions of other libraries"): tiny hand-worked cases (the arithmetic is in
the comments), literal loop versions, and -- where the package is installed -- agreement with
the libraries the doc names:

  relplot 1.0.3            smECE / smooth_ece                (pip install relplot)
  KDEpy 1.1.12             Mix-n-Match ece_kde_binary        (pip install KDEpy)
  uncertainty-calibration  get_ece, get_ece_em, _get_ce      (pip install uncertainty-calibration)

These tests do not need the calibench binary."""
import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref as ref  # noqa: E402
import conventions_ref as cr  # noqa: E402

EXACT = 1e-12  # hand examples: a few roundings of short decimal sums


def probs_split(p, y):
    return ref.from_probs(np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.int64))


def logits_split(seed, n, k, boost=2.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += boost
    return ref.from_logits(z, y)


# The running hand example (K = 2, N = 5), confidences on the M = 4 edges, 1.0 twice, p = 0:
#   p = [[0.5, 0.5], [0.75, 0.25], [0.0, 1.0], [0.4, 0.6], [1.0, 0.0]],  y = [0, 1, 1, 1, 1]
#   c = [0.5, 0.75, 1.0, 0.6, 1.0], yhat = [0, 0, 1, 1, 0] (tie -> 0), correct = [1, 0, 1, 1, 0]
HAND_P = [[0.5, 0.5], [0.75, 0.25], [0.0, 1.0], [0.4, 0.6], [1.0, 0.0]]
HAND_Y = [0, 1, 1, 1, 1]


@pytest.fixture
def hand():
    return probs_split(HAND_P, HAND_Y)


def test_hand_basics(hand):
    assert hand.c.tolist() == [0.5, 0.75, 1.0, 0.6, 1.0]
    assert hand.correct.tolist() == [1, 0, 1, 1, 0]


# ----------------------------------------------------------------------------- slots


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 10, 15, 25, 29])
@pytest.mark.parametrize("rule", cr.BINNING_RULES)
def test_slot_index_matches_literal_loop(rule, m):
    e = ref.bin_edges(m)
    d = cr.linspace_edges(m)
    v = np.concatenate([e, d, np.nextafter(e, 2.0), np.nextafter(e, -1.0), np.nextafter(d, 2.0),
                        np.nextafter(d, -1.0), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5]])
    v = v[(v >= 0) & (v <= 1)]
    got = cr.slot_index(v, m, rule)
    want = [cr.slot_index_loop(x, m, rule) for x in v]
    assert got.tolist() == want
    s = cr.slot_count(m, rule)
    assert got.max() == s - 1          # v = 1 is always in the last slot
    assert got.min() == (-1 if rule == "guo-strict" else 0)


def test_slot_semantics_on_m4_edges():
    v = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.3])
    assert cr.slot_index(v, 4, "right-closed").tolist() == [0, 0, 1, 2, 3, 1]
    assert cr.slot_index(v, 4, "guo-strict").tolist() == [-1, 0, 1, 2, 3, 1]
    assert cr.slot_index(v, 4, "left-closed").tolist() == [0, 1, 2, 3, 3, 1]
    assert cr.slot_index(v, 4, "torchmetrics").tolist() == [0, 1, 2, 3, 4, 1]
    # linspace(0, 1, 4) = [0, 1/3, 2/3, 1]: 0.25 -> 0, 0.5 -> 1, 0.75 -> 2, 1 -> 3, 0.3 -> 0
    assert cr.slot_index(v, 4, "digitize-linspace").tolist() == [0, 0, 1, 2, 3, 0]
    # M = 1: everything in slot 0 except 1.0 under torchmetrics (slot 1) and 0 under guo-strict
    assert cr.slot_index(v, 1, "digitize-linspace").tolist() == [0] * 6
    assert cr.slot_index(v, 1, "torchmetrics").tolist() == [0, 0, 0, 0, 1, 0]
    assert cr.slot_index(v, 1, "guo-strict").tolist() == [-1, 0, 0, 0, 0, 0]


def test_linspace_edges_are_i_times_step():
    # the doc: d_i = i * (1 / (M-1)) as numpy linspace computes it, d_{M-1} = 1
    for m in range(2, 60):
        d = cr.linspace_edges(m)
        step = 1.0 / (m - 1)
        assert d[:-1].tolist() == [i * step for i in range(m - 1)] and d[-1] == 1.0


def test_rules_match_the_library_idioms():
    rng = np.random.default_rng(5)
    for m in (1, 2, 4, 10, 15):
        e = ref.bin_edges(m)
        v = np.concatenate([rng.random(300), e, cr.linspace_edges(m)])
        # left-closed = numpy histogram counts
        hist, _ = np.histogram(v, bins=e)
        assert np.bincount(cr.slot_index(v, m, "left-closed"), minlength=m).tolist() == hist.tolist()
        # torchmetrics: bucketize(v, boundaries, right=True) - 1 == searchsorted right - 1, with
        # the doc's boundaries i/M (torch.linspace may differ from i/M in the last ulp, e.g.
        # numpy's linspace(0, 1, 11)[3] = 0.30000000000000004; the doc's rule uses i/M)
        tm = np.searchsorted(e, v, side="right") - 1
        assert (cr.slot_index(v, m, "torchmetrics") == tm).all()
        # Dirichlet: digitize(p, linspace(0, 1, M)) - 1
        dl = np.digitize(v, np.linspace(0, 1, m)) - 1
        assert (cr.slot_index(v, m, "digitize-linspace") == dl).all()
        # guo-strict: lo < v <= hi over the M bins
        for i in range(m):
            inside = (v > e[i]) & (v <= e[i + 1])
            assert (inside == (cr.slot_index(v, m, "guo-strict") == i)).all()


def test_slot_edges():
    assert cr.slot_edges(4, "torchmetrics") == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75),
                                                (0.75, 1.0), (1.0, 1.0)]
    assert cr.slot_edges(4, "digitize-linspace") == [(0.0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.0),
                                                     (1.0, 1.0)]
    assert cr.slot_edges(2, "guo-strict") == [(0.0, 0.5), (0.5, 1.0)]
    assert cr.slot_edges(1, "digitize-linspace") == [(0.0, 1.0)]


# ---------------------------------------------------------------- top-label hand values

# M = 4.  right-closed / guo-strict slots: 1 {r0}: A 1, C 0.5;  2 {r1, r3}: A 0.5, C 0.675;
#   3 {r2, r4}: A 0.5, C 1.
#   ece = 0.2*0.5 + 0.4*0.175 + 0.4*0.5 = 0.37, mce 0.5,
#   rmsce = sqrt(0.2*0.25 + 0.4*0.030625 + 0.4*0.25) = sqrt(0.16225),
#   debiased: slot 1 has one member (adds 0), slot 2: 0.4*(0.030625 - 0.25/1) < 0, slot 3:
#   0.4*(0.25 - 0.25) = 0 -> max(0, -0.08775) = 0;  ace_unweighted = (0.5+0.175+0.5)/3
# left-closed: 2 {r0, r3}: A 1, C 0.55;  3 {r1, r2, r4}: A 1/3, C 2.75/3 (gap 7/12)
#   ece = 0.4*0.45 + 0.6*7/12 = 0.53, mce 7/12, rmsce = sqrt(0.4*0.2025 + 0.6*49/144),
#   debiased: 0.4*(0.2025 - 0) + 0.6*(49/144 - (1/3)(2/3)/2) = 0.081 + 0.1375 = 0.2185
# torchmetrics (5 slots) and digitize-linspace (edges 0, 1/3, 2/3, 1) both give
#   {r0, r3}: A 1, C 0.55;  {r1}: A 0, C 0.75;  {r2, r4}: A 0.5, C 1
#   ece = 0.18 + 0.15 + 0.2 = 0.53, mce 0.75, rmsce = sqrt(0.081 + 0.1125 + 0.1),
#   debiased = sqrt(0.081 + 0 + 0.4*(0.25 - 0.25)), ace_unweighted = (0.45+0.75+0.5)/3
HAND_TOP = {
    "right-closed": (0.37, 0.5, math.sqrt(0.16225), 0.0, 1.175 / 3),
    "guo-strict": (0.37, 0.5, math.sqrt(0.16225), 0.0, 1.175 / 3),
    "left-closed": (0.53, 7 / 12, math.sqrt(0.081 + 0.6 * 49 / 144), math.sqrt(0.2185),
                    (0.45 + 7 / 12) / 2),
    "torchmetrics": (0.53, 0.75, math.sqrt(0.2935), math.sqrt(0.081), 1.7 / 3),
    "digitize-linspace": (0.53, 0.75, math.sqrt(0.2935), math.sqrt(0.081), 1.7 / 3),
}


@pytest.mark.parametrize("rule", cr.BINNING_RULES)
def test_hand_top_label(hand, rule):
    e, m_, r, rd, au = HAND_TOP[rule]
    assert cr.ece(hand, 4, rule) == pytest.approx(e, abs=EXACT)
    assert cr.mce(hand, 4, rule) == pytest.approx(m_, abs=EXACT)
    assert cr.rmsce(hand, 4, rule) == pytest.approx(r, abs=EXACT)
    assert cr.rmsce_debiased(hand, 4, rule) == pytest.approx(rd, abs=EXACT)
    assert cr.ace_unweighted(hand, 4, rule) == pytest.approx(au, abs=EXACT)


def test_default_rules_equal_calib_ref():
    s = logits_split(11, 500, 10)
    for rule in ("right-closed", "left-closed"):
        for m in (1, 7, 15):
            assert cr.ece(s, m, rule) == pytest.approx(ref.ece(s, m, rule), abs=1e-15)
            assert cr.mce(s, m, rule) == pytest.approx(ref.mce(s, m, rule), abs=1e-15)
            assert cr.sce(s, m, rule, "mean") == pytest.approx(ref.sce(s, m, rule), abs=1e-15)
            assert cr.reliability(s, m, rule) == ref.reliability(s, m, rule)


def test_hand_reliability(hand):
    # torchmetrics M = 4: five slots, the last [1, 1] holds the two c = 1.0
    rel = cr.reliability(hand, 4, "torchmetrics")
    assert [(r["lo"], r["hi"], r["count"]) for r in rel] == [
        (0.0, 0.25, 0), (0.25, 0.5, 0), (0.5, 0.75, 2), (0.75, 1.0, 1), (1.0, 1.0, 2)]
    assert rel[0]["accuracy"] is None and rel[0]["confidence"] is None
    assert rel[2]["accuracy"] == 1.0 and rel[2]["confidence"] == pytest.approx(0.55, abs=EXACT)
    assert (rel[3]["accuracy"], rel[3]["confidence"]) == (0.0, 0.75)
    assert (rel[4]["accuracy"], rel[4]["confidence"]) == (0.5, 1.0)
    rel = cr.reliability(hand, 4, "digitize-linspace")
    assert [r["count"] for r in rel] == [0, 2, 1, 2]
    assert [(r["lo"], r["hi"]) for r in rel][-1] == (1.0, 1.0)


# --------------------------------------------------------------------- classwise hand values

# M = 4, right-closed.
# class 0: p = [0.5, 0.75, 0, 0.4, 1], y==0: [1, 0, 0, 0, 0]
#   slot 0 {r2}: A 0 C 0 -> 0;  slot 1 {r0, r3}: A 0.5 C 0.45 -> under 0.05*0.4 = 0.02;
#   slot 2 {r1}: over 0.75*0.2 = 0.15;  slot 3 {r4}: over 1*0.2 = 0.2  -> ECE_0 = 0.37
# class 1: p = [0.5, 0.25, 1, 0.6, 0], y==1: [0, 1, 1, 1, 1]
#   slot 0 {r1, r4}: A 1 C 0.125 -> under 0.875*0.4 = 0.35;  slot 1 {r0}: over 0.5*0.2 = 0.1;
#   slot 2 {r3}: under 0.4*0.2 = 0.08;  slot 3 {r2}: 0  -> ECE_1 = 0.53 (under 0.43, over 0.1)
# guo-strict drops the zeros: class 0 slot 0 was 0 anyway; class 1 slot 0 = {r1}: A 1 C 0.25
#   -> under 0.75*0.2 = 0.15, ECE_1 = 0.33 (under 0.23)
# digitize-linspace (0, 1/3, 2/3, 1): class 0 as right-closed (0.37: under 0.02, over 0.35);
#   class 1: slot 0 {r1, r4} under 0.35, slot 1 {r0, r3}: A 0.5 C 0.55 -> over 0.02,
#   slot 3 {r2} 0 -> 0.37 (under 0.35, over 0.02)
# torchmetrics (5 slots): class 0: {r2} 0, {r3} over 0.08, {r0} under 0.1, {r1} over 0.15,
#   {r4} over 0.2 -> 0.53;  class 1: {r4} A 1 C 0 under 0.2, {r1} under 0.15, {r0, r3} over 0.02,
#   {r2} 0 -> 0.37
# left-closed: class 0: {r2} 0, {r3} over 0.08, {r0} under 0.1, {r1, r4} A 0 C 0.875 over 0.35
#   -> 0.53;  class 1 as torchmetrics but {r2} in slot 3 -> 0.37
HAND_CLASSWISE = {  # rule: ((ECE_0, under_0, over_0), (ECE_1, under_1, over_1))
    "right-closed": ((0.37, 0.02, 0.35), (0.53, 0.43, 0.1)),
    "guo-strict": ((0.37, 0.02, 0.35), (0.33, 0.23, 0.1)),
    "digitize-linspace": ((0.37, 0.02, 0.35), (0.37, 0.35, 0.02)),
    "torchmetrics": ((0.53, 0.1, 0.43), (0.37, 0.35, 0.02)),
    "left-closed": ((0.53, 0.1, 0.43), (0.37, 0.35, 0.02)),
}


@pytest.mark.parametrize("rule", cr.BINNING_RULES)
def test_hand_classwise(hand, rule):
    (e0, u0, o0), (e1, u1, o1) = HAND_CLASSWISE[rule]
    split = cr.classwise_split(hand, 4, rule, "mean")
    got = [(c["ece"], c["under"], c["over"]) for c in split["classes"]]
    assert got[0] == pytest.approx((e0, u0, o0), abs=EXACT)
    assert got[1] == pytest.approx((e1, u1, o1), abs=EXACT)
    assert cr.sce(hand, 4, rule, "mean") == pytest.approx((e0 + e1) / 2, abs=EXACT)
    assert cr.sce(hand, 4, rule, "sum") == pytest.approx(e0 + e1, abs=EXACT)
    # The slots hold the same terms: under the mean they sum to the means over classes.
    assert len(split["bins"]) == cr.slot_count(4, rule)
    assert sum(b["under"] for b in split["bins"]) == pytest.approx((u0 + u1) / 2, abs=EXACT)
    assert sum(b["over"] for b in split["bins"]) == pytest.approx((o0 + o1) / 2, abs=EXACT)
    summed = cr.classwise_split(hand, 4, rule, "sum")["bins"]
    assert sum(b["under"] + b["over"] for b in summed) == pytest.approx(e0 + e1, abs=EXACT)


def classwise_loop(s, m, rule):
    """Literal per-class, per-slot loop of the sce definition: [(ECE_j, under_j, over_j)] and the
    signed terms [K][S] |B_ij|/N (A_ij - C_ij)."""
    n, k = s.p.shape
    out, terms = [], []
    for j in range(k):
        total = under = over = 0.0
        row = []
        for i in range(cr.slot_count(m, rule)):
            members = [r for r in range(n) if cr.slot_index_loop(s.p[r, j], m, rule) == i]
            term = 0.0
            if members:
                a = sum(1.0 for r in members if s.y[r] == j) / len(members)
                c = sum(s.p[r, j] for r in members) / len(members)
                term = len(members) / n * (a - c)
                total += len(members) / n * abs(a - c)
                under += len(members) / n * max(0.0, a - c)
                over += len(members) / n * max(0.0, c - a)
            row.append(term)
        out.append((total, under, over))
        terms.append(row)
    return out, terms


@pytest.mark.parametrize("rule", cr.BINNING_RULES)
def test_classwise_matches_loop_with_edge_values(rule):
    # K = 5 probability rows with every entry a multiple of 0.2 (edges of M = 5 and 15),
    # zeros, ones, a class that never occurs as a label
    rows = np.array([[0.2] * 5, [0.4, 0.3, 0.1, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1, 0.0],
                     [0.8, 0.2, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    rng = np.random.default_rng(17)
    p = np.array([r[rng.permutation(5)] for r in rows[rng.integers(0, 5, 40)]])
    y = rng.choice([0, 1, 3, 4], 40)
    s = probs_split(p, y)
    for m in (1, 2, 5, 6, 15):
        per_class, terms = classwise_loop(s, m, rule)
        split = cr.classwise_split(s, m, rule, "mean")
        got = [(c["ece"], c["under"], c["over"]) for c in split["classes"]]
        assert np.array(got).ravel() == pytest.approx(np.array(per_class).ravel(), abs=1e-14)
        assert cr.classwise_terms(s, m, rule).ravel() == pytest.approx(np.array(terms).ravel(), abs=1e-14)
        assert [c["count"] for c in split["classes"]] == [int(np.sum(y == j)) for j in range(5)]
        assert split["classes"][2]["accuracy"] is None   # class 2 never occurs as a label


# ----------------------------------------------------------------------- adaptive rules

# sorted c = [0.5 (r0, 1), 0.6 (r3, 1), 0.75 (r1, 0), 1.0 (r2, 1), 1.0 (r4, 0)]
# M = 2:
#   split [3, 2]: {.5,.6,.75}: A 2/3 C 1.85/3 -> 0.05;  {1, 1}: 0.5  -> mean 0.275
#   interp: x = [0, 2.5, 5] -> e = [0.5, 0.875, 1]; (0.5, 0.875] = {.6, .75}: A .5 C .675 ->
#           0.175*2/5 = 0.07; (0.875, 1] = {1, 1}: 0.5*0.4 = 0.2 -> 0.27 (r0 in no bin)
#   quantile: q_1 = s_2 = 0.75 -> {.5, .6}: 0.45*0.4 = 0.18;  {.75, 1, 1}: (7/12)*0.6 = 0.35 -> 0.53
#   midpoint: edges {0.875, 1}: {.5, .6, .75}: 0.05*0.6 = 0.03;  {1, 1}: 0.2 -> 0.23
#   floor-count: w = 2, e = [0, s_2 = 0.75, 1] -> same bins as midpoint -> 0.23
# M = 3:
#   split [2, 2, 1]: 0.45, {.75 (0), 1 (1)}: 0.375, {1 (0)}: 1 -> 1.825/3
#   interp: x = [0, 5/3, 10/3, 5] -> e = [0.5, 0.7, 1, 1]: {.6}: 0.4*0.2 = 0.08;
#           {.75, 1, 1}: 0.35; (1, 1] empty -> 0.43
#   quantile: q_1 = 0.6 + (1/3)0.15 = 0.65, q_2 = 0.75 + (2/3)0.25 -> {.5,.6} 0.18,
#           {.75} 0.75*0.2 = 0.15, {1, 1} 0.2 -> 0.53
#   midpoint: groups [.5,.6], [.75, 1], [1] -> edges {0.675, 1}: {.5, .6} 0.18, {.75, 1, 1} 0.35 -> 0.53
#   floor-count: w = 1, e = [0, 0.6, 0.75, 1] -> 0.18 + 0.15 + 0.2 = 0.53
HAND_ADAPTIVE = {
    2: {"split": 0.275, "interp": 0.27, "quantile": 0.53, "midpoint": 0.23, "floor-count": 0.23},
    3: {"split": 1.825 / 3, "interp": 0.43, "quantile": 0.53, "midpoint": 0.53,
        "floor-count": 0.53},
}


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("rule", cr.ADAPTIVE_RULES)
def test_hand_adaptive(hand, rule, m):
    assert cr.adaece(hand, m, rule) == pytest.approx(HAND_ADAPTIVE[m][rule], abs=EXACT)


def test_hand_adaptive_edges(hand):
    assert cr.adaptive_edges(hand.c, 3, "interp") == pytest.approx([0.5, 0.7, 1.0, 1.0], abs=EXACT)
    assert cr.adaptive_edges(hand.c, 3, "quantile") == pytest.approx(
        [0.0, 0.65, 0.75 + 0.25 * 2 / 3, 1.0], abs=EXACT)
    assert cr.adaptive_edges(hand.c, 3, "midpoint") == [0.675, 1.0]
    assert cr.adaptive_edges(hand.c, 3, "floor-count") == [0.0, 0.6, 0.75, 1.0]


def test_adaptive_fewer_samples_than_bins():
    # c = [0.6, 0.9], correct = [1, 0], M = 3
    #   floor-count: w = 0, e = [0, .6, .6, 1]: (0, .6] {.6} 0.4*0.5, (.6, 1] {.9} 0.9*0.5 -> 0.65
    #   interp: e = [.6, .8, .9, .9]: only (.8, .9] = {.9} -> 0.45 (the smallest is in no bin)
    #   quantile: q = [0, .7, .8, 1] -> {.6}, {.9} -> 0.65;  midpoint: M' = 2, edges {.75, 1} -> 0.65
    #   split: sizes [1, 1, 0] -> mean(0.4, 0.9) = 0.65
    s = probs_split([[0.6, 0.4], [0.9, 0.1]], [0, 1])
    want = {"floor-count": 0.65, "interp": 0.45, "quantile": 0.65, "midpoint": 0.65, "split": 0.65}
    for rule, v in want.items():
        assert cr.adaece(s, 3, rule) == pytest.approx(v, abs=EXACT), rule


def test_adaptive_single_sample():
    # N = 1: interp puts the only sample in no bin (sum over no bin = 0); the others one bin
    s = probs_split([[0.7, 0.3]], [1])
    assert cr.adaece(s, 15, "interp") == 0.0
    for rule in ("split", "quantile", "midpoint", "floor-count"):
        assert cr.adaece(s, 15, rule) == pytest.approx(0.7, abs=EXACT), rule


def test_quantile_edges_are_the_doc_lerp():
    # q_j: h = (N-1) j/M, lerp of s_floor(h), s_floor(h)+1 (numpy 'linear')
    rng = np.random.default_rng(9)
    c = np.round(rng.random(37), 2)   # ties
    s = np.sort(c)
    for m in (1, 2, 5, 15, 40):
        q = cr.adaptive_edges(c, m, "quantile")
        assert q[0] == 0.0 and q[m] == 1.0
        for j in range(1, m):
            h = (len(c) - 1) * (j * (1.0 / m))
            lo = math.floor(h)
            want = s[lo] if lo + 1 >= len(s) else s[lo] + (h - lo) * (s[lo + 1] - s[lo])
            assert q[j] == pytest.approx(want, abs=1e-15)


def test_interp_edges_are_the_doc_interp():
    rng = np.random.default_rng(10)
    c = np.round(rng.random(23), 2)
    s = np.sort(c)
    n = len(c)
    for m in (1, 3, 15, 30):
        e = cr.adaptive_edges(c, m, "interp")
        for j in range(m + 1):
            x = j * (n / m)
            if x >= n - 1:
                want = s[-1]
            else:
                f = math.floor(x)
                want = s[f] + (x - f) * (s[f + 1] - s[f])
            assert e[j] == pytest.approx(want, abs=1e-15)


# -------------------------------------------------------------------- brier and nll

# K = 3: p = [[.5, .3, .2], [.2, .2, .6], [1, 0, 0]], y = [1, 2, 0]
#   brier sum: (.25 + .49 + .04) + (.04 + .04 + .16) + 0 = 1.02 -> 0.34;  per-class-mean 0.34/3
#   top-label: c = [.5, .6, 1], correct = [0, 1, 1] -> (.25 + .16 + 0)/3
BRIER_P = [[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]]
BRIER_Y = [1, 2, 0]


def test_hand_brier():
    s = probs_split(BRIER_P, BRIER_Y)
    assert cr.brier(s, "sum") == pytest.approx(0.34, abs=EXACT)
    assert cr.brier(s, "per-class-mean") == pytest.approx(0.34 / 3, abs=EXACT)
    assert cr.brier(s, "top-label") == pytest.approx(0.41 / 3, abs=EXACT)


def test_hand_nll_clip():
    s = probs_split(BRIER_P, BRIER_Y)
    # p_y = [.3, .6, 1]
    assert cr.nll(s, None) == pytest.approx(-(math.log(0.3) + math.log(0.6)) / 3, abs=EXACT)
    want = -(math.log(0.3) + math.log(0.6) + math.log(1 - 1e-15)) / 3
    assert cr.nll(s, 1e-15) == pytest.approx(want, abs=EXACT)
    # clip 0.35: .3 -> .35, .6 stays, 1 -> 0.65
    assert cr.nll(s, 0.35) == pytest.approx(-(math.log(0.35) + math.log(0.6) + math.log(0.65)) / 3,
                                            abs=EXACT)
    # p_y = 0 (NLL inf unclipped) becomes -log EPS
    z = probs_split([[1.0, 0.0], [0.5, 0.5]], [1, 0])
    assert cr.nll(z, None) == math.inf
    assert cr.nll(z, 0.01) == pytest.approx(-(math.log(0.01) + math.log(0.5)) / 2, abs=EXACT)
    assert cr.nll(z, 1e-20) == pytest.approx(-(math.log(1e-20) + math.log(0.5)) / 2, abs=EXACT)


def test_nll_clip_logits_underflow():
    # logits with p_y = exp(-2000): log p_y = -2000 exactly representable; clipping gives -log EPS
    s = ref.from_logits(np.array([[0.0, -2000.0]]), np.array([1]))
    assert cr.nll(s, None) == pytest.approx(2000.0, rel=1e-15)
    assert cr.nll(s, 1e-15) == pytest.approx(-math.log(1e-15), rel=1e-15)


# ------------------------------------------------------------------- presets and resolve


def test_presets_table():
    p = cr.PRESETS
    assert cr.PRESET_ORDER == ("calibench", "torchmetrics", "netcal", "focal", "guo", "dirichlet",
                               "verified-calibration", "mixnmatch")
    assert p["dirichlet"].to_json() == {
        "preset": "dirichlet", "binning": "right-closed", "classwise_binning": "digitize-linspace",
        "adaptive": "split", "classwise_reduction": "sum", "brier": "per-class-mean",
        "nll_clip": 1e-15}
    assert p["calibench"].nll_clip is None and p["mixnmatch"].nll_clip == 1e-20
    assert (p["focal"].binning, p["focal"].adaptive) == ("guo-strict", "interp")
    assert (p["netcal"].binning, p["netcal"].adaptive) == ("left-closed", "quantile")
    assert p["verified-calibration"].adaptive == "midpoint"
    assert p["mixnmatch"].adaptive == "floor-count"
    assert p["torchmetrics"].classwise_binning == "torchmetrics"
    assert p["guo"].nll_clip == 1e-15 and p["guo"].binning == "guo-strict"


def test_resolve():
    assert cr.resolve() == cr.PRESETS["calibench"]
    c = cr.resolve(binning="left-closed")          # classwise follows --binning without a preset
    assert (c.preset, c.binning, c.classwise_binning) == ("calibench", "left-closed", "left-closed")
    c = cr.resolve("dirichlet", brier="sum", nll_clip=0.01)
    assert (c.preset, c.brier, c.nll_clip, c.classwise_binning) == ("dirichlet", "sum", 0.01,
                                                                     "digitize-linspace")
    for bad in ({"binning": "foo"}, {"adaptive": "bar"}, {"nll_clip": 0.5}, {"nll_clip": 0.0}):
        with pytest.raises(ValueError):
            cr.resolve(**bad)
    with pytest.raises(KeyError):
        cr.resolve("nope")


def test_compare_conventions_rows_equal_separate_runs():
    s = logits_split(12, 300, 7)
    rows = cr.compare_conventions(s, 10)
    assert [r["preset"] for r in rows] == list(cr.PRESET_ORDER)
    for r in rows:
        full = cr.compute_metrics(s, 10, cr.PRESETS[r["preset"]], top_label_smooth=(0.0, 0.0))
        for key in ("ece", "adaece", "sce", "brier"):
            assert r[key] == full[key]


def test_conventions_change_the_numbers():
    """Each option moves at least one number on a generic set (else the tests could not tell
    an ignored option from an applied one)."""
    # half softmax rows, half rows with entries on the edges of M = 15 (multiples of 0.2, 1.0):
    # torchmetrics differs from right-closed only on edges and at 1.0
    t = logits_split(13, 1000, 5)
    rows = np.array([[0.2] * 5, [0.4, 0.4, 0.2, 0.0, 0.0], [0.6, 0.2, 0.2, 0.0, 0.0],
                     [0.8, 0.2, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    rng = np.random.default_rng(14)
    pe = np.array([r[rng.permutation(5)] for r in rows[rng.integers(0, 5, 1000)]])
    ye = np.where(rng.random(1000) < 0.7, pe.argmax(axis=1), rng.integers(0, 5, 1000))
    s = probs_split(np.concatenate([t.p, pe]), np.concatenate([t.y, ye]))
    base = cr.compute_metrics(s, 15, cr.PRESETS["calibench"], top_label_smooth=(0.0, 0.0))
    for name in cr.PRESET_ORDER[1:]:
        other = cr.compute_metrics(s, 15, cr.PRESETS[name], top_label_smooth=(0.0, 0.0))
        assert other != base, name
    for rule in cr.ADAPTIVE_RULES[1:]:
        assert cr.adaece(s, 15, rule) != base["adaece"], rule


# ---------------------------------------------------------------------------- smece


def reflected_smooth_literal(c, w, sigma, t):
    """R(w) written from the reflection: grid value i sits at positions i, -i (i >= 1) and
    2(G-1) - i (i <= G-2); the kernel is truncated to offsets |k - p| <= G//2."""
    g = cr.smooth_grid_size(sigma)
    values = np.zeros(g)
    for cn, wn in zip(c, w):
        k = min(max(int(cn * (g - 1)), 0), g - 2)
        f = cn * (g - 1) - k
        values[k] += (1 - f) * wn
        values[k + 1] += f * wn
    h = g // 2
    phi = lambda off: np.exp(-(off / (g - 1)) ** 2 / (2 * sigma ** 2)) / (math.sqrt(2 * math.pi) * sigma)
    i = np.arange(g)
    sm = np.zeros(g)
    for k in range(g):
        for pos, mask in ((i, np.ones(g, bool)), (-i, i >= 1), (2 * (g - 1) - i, i <= g - 2)):
            sel = mask & (np.abs(k - pos) <= h)
            sm[k] += np.sum(values[sel] * phi(k - pos[sel]))
    out = []
    for tj in t:
        k = min(max(int(tj * (g - 1)), 0), g - 2)
        r = (tj - k / (g - 1)) * (g - 1)
        out.append(sm[k] * (1 - r) + sm[k + 1] * r)
    return np.array(out)


@pytest.mark.parametrize("sigma", [1.0, 0.25, 0.05])
def test_reflected_smooth_matches_literal(sigma):
    rng = np.random.default_rng(21)
    c = np.concatenate([rng.random(30), [0.0, 1.0, 0.5]])
    w = rng.normal(size=len(c))
    t = np.linspace(0, 1, 37)
    assert cr.reflected_smooth(c, w, sigma, t) == pytest.approx(
        reflected_smooth_literal(c, w, sigma, t), rel=1e-9, abs=1e-12)


def test_smece_perfect_and_constant():
    # c = correct = 1 everywhere: the residual is 0, smECE = 0
    assert cr.smece(np.ones(10), np.ones(10)) == 0.0
    # all wrong at c = 1: residual 1 everywhere -> r = R(1)/(R(1) + 1e-4) < 1, close to 1
    v = cr.smece(np.ones(50), np.zeros(50))
    assert 0.99 < v < 1.0


def test_smece_sigma_search():
    rng = np.random.default_rng(22)
    c = rng.uniform(0.5, 1.0, 400)
    correct = (rng.random(400) < c).astype(float)   # calibrated: small sigma
    sig = cr.smece_sigma(c, correct)
    assert sig in [2.0 ** -k for k in range(0, 11)] or sig * 1024 == int(sig * 1024)
    # the returned end fails the predicate (or is 1 and passes)
    assert sig == 1.0 or not (sig < cr.smooth_ece(c, correct, sig))


SMECE_CASES = [(31, 200, 5, 2.5), (32, 1000, 10, 1.0), (33, 5, 3, 2.5), (34, 2, 2, 0.0),
               (35, 3000, 100, 4.0), (36, 1, 4, 1.0), (37, 500, 2, 0.5)]


@pytest.mark.parametrize("seed,n,k,boost", SMECE_CASES)
def test_smece_matches_relplot(seed, n, k, boost):
    relplot = pytest.importorskip("relplot")
    s = logits_split(seed, n, k, boost)
    want = relplot.smECE(s.c, s.correct)
    assert cr.smece(s.c, s.correct) == pytest.approx(want, rel=1e-12, abs=1e-14)
    from relplot.metrics import smooth_ece
    for sigma in (1.0, 0.3, 0.05, 2.0 ** -9):
        assert cr.smooth_ece(s.c, s.correct, sigma) == pytest.approx(
            smooth_ece(s.c, s.correct, sigma), rel=1e-12, abs=1e-14)


def test_smece_matches_relplot_edges_and_ties():
    relplot = pytest.importorskip("relplot")
    c = np.array([1.0, 1.0, 0.5, 0.5, 0.2, 0.2, 0.75, 0.999, 1.0, 0.5])
    correct = np.array([1, 0, 1, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    assert cr.smece(c, correct) == pytest.approx(relplot.smECE(c, correct), rel=1e-12)


# ----------------------------------------------------------------------------- kde_ece


def mixnmatch_ece_kde_binary(p, label, p_int=None, order=1):
    """zhang64-llnl/Mix-n-Match-Calibration util_calibration.py ece_kde_binary, K != 2 branch,
    with torch replaced by numpy: torch.argmax -> np.argmax (both return the first maximum),
    p_b kept in float64 (torch.zeros is float32 there), np.trapz -> np.trapezoid (same rule)."""
    from KDEpy import FFTKDE

    def mirror_1d(d, xmin=None, xmax=None):
        if xmin is not None and xmax is not None:
            xmed = (xmin + xmax) / 2
            return np.concatenate(((2 * xmin - d[d < xmed]).reshape(-1, 1), d,
                                   (2 * xmax - d[d >= xmed]).reshape(-1, 1)))

    if p_int is None:
        p_int = np.copy(p)
    p = np.clip(p, 1e-256, 1 - 1e-256)
    p_int = np.clip(p_int, 1e-256, 1 - 1e-256)
    x_int = np.linspace(-0.6, 1.6, num=2 ** 14)
    N = p.shape[0]
    label_index = np.array([np.where(r == 1)[0][0] for r in label])
    assert p.shape[1] != 2
    p_b = np.zeros((N, 1))
    label_binary = np.zeros((N, 1))
    for i in range(N):
        pred_label = int(np.argmax(p[i]))
        if pred_label == label_index[i]:
            label_binary[i] = 1
        p_b[i] = p[i, pred_label] / np.sum(p[i, :])
    method = "triweight"
    dconf_1 = (p_b[np.where(label_binary == 1)].reshape(-1, 1))
    kbw = np.std(dconf_1) * (N * 2) ** -0.2
    low_bound, up_bound = 0.0, 1.0
    dconf_1m = mirror_1d(dconf_1, low_bound, up_bound)
    pp1 = FFTKDE(bw=kbw, kernel=method).fit(dconf_1m).evaluate(x_int)
    pp1[x_int <= low_bound] = 0
    pp1[x_int >= up_bound] = 0
    pp1 = pp1 * 2
    p_int = p_int / np.sum(p_int, 1)[:, None]
    N1 = p_int.shape[0]
    pred_b_int = np.zeros((N1, 1))
    for i in range(N1):
        pred_label = int(np.argmax(p_int[i]))
        pred_b_int[i] = p_int[i, pred_label]
    pred_b_intm = mirror_1d(pred_b_int, low_bound, up_bound)
    pp2 = FFTKDE(bw=kbw, kernel=method).fit(pred_b_intm).evaluate(x_int)
    pp2[x_int <= low_bound] = 0
    pp2[x_int >= up_bound] = 0
    pp2 = pp2 * 2
    perc = np.mean(label_binary)
    integral = np.zeros(x_int.shape)
    reliability = np.zeros(x_int.shape)
    for i in range(x_int.shape[0]):
        conf = x_int[i]
        if np.max([pp1[np.abs(x_int - conf).argmin()], pp2[np.abs(x_int - conf).argmin()]]) > 1e-6:
            with np.errstate(divide="ignore", invalid="ignore"):
                accu = np.min([perc * pp1[np.abs(x_int - conf).argmin()]
                               / pp2[np.abs(x_int - conf).argmin()], 1.0])
            if np.isnan(accu) == False:  # noqa: E712  (as in the original)
                integral[i] = np.abs(conf - accu) ** order * pp2[i]
                reliability[i] = accu
        else:
            if i > 1:
                integral[i] = integral[i - 1]
    ind = np.where((x_int >= 0.0) & (x_int <= 1.0))
    return np.trapezoid(integral[ind], x_int[ind]) / np.trapezoid(pp2[ind], x_int[ind])


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


KDE_CASES = [(41, 300, 3, 2.5), (42, 1000, 10, 1.0), (43, 50, 5, 3.0), (44, 2000, 100, 5.0),
             (45, 8, 3, 1.0)]


@pytest.mark.parametrize("seed,n,k,boost", KDE_CASES)
def test_kde_ece_matches_mixnmatch_kdepy(seed, n, k, boost):
    pytest.importorskip("KDEpy")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += boost
    p = _softmax(z)
    want = mixnmatch_ece_kde_binary(p, np.eye(k)[y])
    s = probs_split(p, y)   # c = max p (the library divides by the row sum: ~1 ulp apart)
    assert cr.kde_ece(s.c, s.correct) == pytest.approx(float(want), rel=1e-9, abs=1e-12)


def test_triweight_kde_matches_kdepy():
    kdepy = pytest.importorskip("KDEpy")
    rng = np.random.default_rng(46)
    for n, bw in ((100, 0.02), (7, 0.3), (1000, 0.0004), (20, 1e-5)):
        d = cr.mirror(rng.uniform(0.1, 1.0, n))
        want = kdepy.FFTKDE(bw=bw, kernel="triweight").fit(d).evaluate(cr.KDE_GRID)
        got = cr.triweight_kde(d, bw)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9 * np.max(want))


def test_kde_ece_nan_cases():
    # none correct -> nan;  all correct at one confidence -> bandwidth 0 -> nan
    assert math.isnan(cr.kde_ece(np.array([0.6, 0.7]), np.array([0.0, 0.0])))
    assert math.isnan(cr.kde_ece(np.array([0.2, 0.2, 0.2, 0.9]), np.array([1.0, 1.0, 1.0, 0.0])))
    assert math.isnan(cr.kde_ece(np.array([0.7]), np.array([1.0])))
    assert cr.kde_bandwidth(np.array([0.5, 0.7, 0.9]), np.array([1.0, 1.0, 0.0])) == \
        pytest.approx(0.1 * 6 ** -0.2, rel=1e-15)


def test_kde_mirror():
    d = np.array([0.2, 0.5, 0.9, 1.0])
    assert cr.mirror(d).tolist() == [-0.2, 0.2, 0.5, 0.9, 1.0, 1.5, 2 - 0.9, 1.0]


def test_kde_grid():
    x = cr.KDE_GRID
    assert len(x) == 2 ** 14 and x[0] == -0.6 and x[-1] == 1.6 and np.all(np.diff(x) > 0)


# ------------------------------------------------------- uncertainty-calibration (Kumar et al.)


UC_CASES = [(51, 500, 10, 2.5, 15), (52, 2000, 3, 1.0, 10), (53, 40, 5, 2.0, 15),
            (54, 1000, 100, 4.0, 7), (55, 7, 4, 1.0, 15)]


@pytest.mark.parametrize("seed,n,k,boost,m", UC_CASES)
def test_matches_uncertainty_calibration(seed, n, k, boost, m):
    calibration = pytest.importorskip("calibration")
    from calibration.utils import _get_ce, get_equal_prob_bins
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += boost
    p = _softmax(z)
    s = probs_split(p, y)
    tol = dict(rel=1e-12, abs=1e-14)
    assert cr.ece(s, m, "right-closed") == pytest.approx(calibration.get_ece(p, y, num_bins=m), **tol)
    assert cr.adaece(s, m, "midpoint") == pytest.approx(calibration.get_ece_em(p, y, num_bins=m), **tol)
    assert cr.rmsce_debiased(s, m, "right-closed") == pytest.approx(
        _get_ce(p, y, p=2, debias=True, num_bins=m, binning_scheme=get_equal_prob_bins,
                mode="top-label"), **tol)
    assert cr.rmsce(s, m, "right-closed") == pytest.approx(
        _get_ce(p, y, p=2, debias=False, num_bins=m, binning_scheme=get_equal_prob_bins,
                mode="top-label"), **tol)
    # marginal (classwise) p = 1 is the mean of the per-class ECE_j: sce under right-closed
    assert cr.sce(s, m, "right-closed", "mean") == pytest.approx(
        _get_ce(p, y, p=1, debias=False, num_bins=m, binning_scheme=get_equal_prob_bins,
                mode="marginal"), **tol)


def test_matches_uncertainty_calibration_on_edges():
    calibration = pytest.importorskip("calibration")
    p = np.array(HAND_P * 3)
    y = np.array(HAND_Y * 3)
    s = probs_split(p, y)
    for m in (2, 3, 4, 5):
        assert cr.ece(s, m, "right-closed") == pytest.approx(calibration.get_ece(p, y, num_bins=m),
                                                             abs=1e-14)
        assert cr.adaece(s, m, "midpoint") == pytest.approx(calibration.get_ece_em(p, y, num_bins=m),
                                                            abs=1e-14)


# -------------------------------------------------------------------------- speed


def test_large_inputs_are_order_invariant():
    """At N = 25,000 (the e2e suites' largest splits) the vectorised reference estimators return
    values in [0, 1] that do not depend on the order of the samples (no ties here), i.e. the
    vectorised paths hold at scale. How long they take is measured nowhere in a test."""
    s = logits_split(61, 25000, 10)
    perm = np.random.default_rng(62).permutation(s.n)
    t = s.take(perm)
    assert len(np.unique(s.c)) == s.n  # no tied confidences: every order gives the same bins
    pairs = [(cr.smece(s.c, s.correct), cr.smece(t.c, t.correct)),
             (cr.kde_ece(s.c, s.correct), cr.kde_ece(t.c, t.correct))]
    pairs += [(cr.adaece(s, 15, rule), cr.adaece(t, 15, rule)) for rule in cr.ADAPTIVE_RULES]
    pairs += [(cr.sce(s, 15, rule, "mean"), cr.sce(t, 15, rule, "mean")) for rule in cr.BINNING_RULES]
    for a, b in pairs:
        assert 0.0 <= a <= 1.0 and abs(a - b) <= 1e-12, (a, b)
