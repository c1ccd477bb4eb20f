"""Self-checks of the float64 reference (calib_ref.py) against independent sources:
scikit-learn / scipy where they compute the same quantity, hand-worked tiny examples (the
arithmetic is in the comments), literal loop versions of the vectorised code, and known
splitmix64 outputs.  These tests do not need the calibench binary."""
import math
import pathlib
import sys

import h5py
import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref as ref  # noqa: E402

EXACT = 1e-12  # hand examples: a few roundings of short decimal sums


def probs_split(p, y):
    return ref.from_probs(np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.int64))


# The running hand example (K = 2, N = 4):
#   p = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]],  y = [0, 1, 1, 0]
#   c = [0.9, 0.6, 0.7, 0.5], yhat = [0, 0, 1, 0], correct = [1, 0, 1, 1]
HAND_P = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]]
HAND_Y = [0, 1, 1, 0]


@pytest.fixture
def hand():
    return probs_split(HAND_P, HAND_Y)


def test_hand_basics(hand):
    assert hand.c.tolist() == [0.9, 0.6, 0.7, 0.5]
    assert hand.yhat.tolist() == [0, 0, 1, 0]
    assert ref.accuracy(hand) == 0.75


def test_hand_ece_right_closed(hand):
    # M = 2, right-closed: bin 0 = [0, 0.5], bin 1 = (0.5, 1].  c = 0.5 -> bin 0.
    # bin 0: {3}: A = 1, C = 0.5, gap 0.5, weight 1/4 -> 0.125
    # bin 1: {0, 1, 2}: A = 2/3, C = 2.2/3, gap 0.2/3, weight 3/4 -> 0.05
    # ECE = 0.175, MCE = 0.5
    assert ref.ece(hand, 2, "right-closed") == pytest.approx(0.175, abs=EXACT)
    assert ref.mce(hand, 2, "right-closed") == pytest.approx(0.5, abs=EXACT)


def test_hand_ece_left_closed(hand):
    # M = 2, left-closed: bin 0 = [0, 0.5), bin 1 = [0.5, 1] -> all four in bin 1:
    # A = 3/4, C = 2.7/4 = 0.675, ECE = MCE = 0.075
    assert ref.ece(hand, 2, "left-closed") == pytest.approx(0.075, abs=EXACT)
    assert ref.mce(hand, 2, "left-closed") == pytest.approx(0.075, abs=EXACT)


def test_hand_ece_one_bin(hand):
    # M = 1: one bin, ECE = |accuracy - mean c| = |0.75 - 0.675| = 0.075 for both binnings
    for binning in ref.BINNINGS:
        assert ref.ece(hand, 1, binning) == pytest.approx(0.075, abs=EXACT)


def test_hand_adaece(hand):
    # sorted c ascending: 0.5 (3), 0.6 (1), 0.7 (2), 0.9 (0)
    # M = 2: {3, 1}: A = 0.5, C = 0.55 -> 0.05;  {2, 0}: A = 1, C = 0.8 -> 0.2;  mean 0.125
    assert ref.adaece(hand, 2) == pytest.approx(0.125, abs=EXACT)
    # M = 3, sizes [2, 1, 1]: {3, 1} -> 0.05, {2} -> |1 - 0.7| = 0.3, {0} -> 0.1;  mean 0.15
    assert ref.adaece(hand, 3) == pytest.approx(0.15, abs=EXACT)
    # M = 6 > N: sizes [1, 1, 1, 1, 0, 0]; empty groups skipped:
    # {3} 0.5, {1} 0.6, {2} 0.3, {0} 0.1 -> mean 1.5 / 4 = 0.375
    assert ref.adaece(hand, 6) == pytest.approx(0.375, abs=EXACT)


def test_adaece_ties_keep_index_order():
    # c = [0.6, 0.6, 0.6, 0.8], correct = [0, 1, 1, 1] (K = 2, y chosen accordingly).
    # Stable sort keeps 0, 1, 2, 3:  M = 2: {0, 1}: A = 0.5, C = 0.6 -> 0.1;
    # {2, 3}: A = 1, C = 0.7 -> 0.3;  adaECE = 0.2  (an unstable order {1, 2}, {0, 3} gives 0.3)
    s = probs_split([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.8, 0.2]], [1, 0, 0, 0])
    assert s.correct.tolist() == [0, 1, 1, 1]
    assert ref.adaece(s, 2) == pytest.approx(0.2, abs=EXACT)


def test_hand_sce(hand):
    # M = 2 right-closed.
    # class 0: p = [0.9, 0.6, 0.3, 0.5], y==0: [1, 0, 0, 1]
    #   bin 0 {2, 3}: A = 0.5, C = 0.4 -> A - C = +0.1, weight 1/2 -> 0.05 (under)
    #   bin 1 {0, 1}: A = 0.5, C = 0.75 -> -0.25, weight 1/2 -> 0.125 (over)
    #   ECE_0 = 0.175
    # class 1: p = [0.1, 0.4, 0.7, 0.5], y==1: [0, 1, 1, 0]
    #   bin 0 {0, 1, 3}: A = 1/3, C = 1/3 -> 0
    #   bin 1 {2}: A = 1, C = 0.7 -> +0.3, weight 1/4 -> 0.075 (under)
    #   ECE_1 = 0.075
    # SCE = 0.125; per class under (0.05, 0.075), over (0.125, 0)
    assert ref.sce(hand, 2, "right-closed") == pytest.approx(0.125, abs=EXACT)
    ece_j, under_j, over_j = ref.classwise_ece(hand, 2, "right-closed")
    assert ece_j.tolist() == pytest.approx([0.175, 0.075], abs=EXACT)
    assert under_j.tolist() == pytest.approx([0.05, 0.075], abs=EXACT)
    assert over_j.tolist() == pytest.approx([0.125, 0.0], abs=EXACT)


def test_hand_ace(hand):
    # M = 2.
    # class 0: sorted p: 0.3 (2), 0.5 (3), 0.6 (1), 0.9 (0); y==0: [1, 0, 0, 1]
    #   {2, 3}: A = 0.5, C = 0.4 -> 0.1;  {1, 0}: A = 0.5, C = 0.75 -> 0.25
    # class 1: sorted p: 0.1 (0), 0.4 (1), 0.5 (3), 0.7 (2); y==1: [0, 1, 1, 0]
    #   {0, 1}: A = 0.5, C = 0.25 -> 0.25;  {3, 2}: A = 0.5, C = 0.6 -> 0.1
    # ACE = (0.1 + 0.25 + 0.25 + 0.1) / 4 = 0.175
    assert ref.ace(hand, 2) == pytest.approx(0.175, abs=EXACT)


def test_hand_r_auc(hand):
    # descending c: 0 (0.9, correct), 2 (0.7, correct), 1 (0.6, wrong), 3 (0.5, correct)
    # acc_k = (correct among top k + N - k) / N: 1, 1, 1, 0.75, 0.75
    # trapezoid: (1 + 1 + 0.875 + 0.75) / 4 = 0.90625
    assert ref.retention_curve(hand).tolist() == [1.0, 1.0, 1.0, 0.75, 0.75]
    assert ref.r_auc(hand) == pytest.approx(0.90625, abs=EXACT)


def test_r_auc_ties_by_index():
    # c = [0.8, 0.8], correct = [0, 1]: index order keeps row 0 (wrong) first.
    # acc = 1, 0.5, 0.5 -> ((1 + 0.5)/2 + (0.5 + 0.5)/2) / 2 = 0.625  (reversed order: 0.875)
    s = probs_split([[0.8, 0.2], [0.8, 0.2]], [1, 0])
    assert ref.r_auc(s) == pytest.approx(0.625, abs=EXACT)


def test_r_auc_single_sample():
    # N = 1 correct: acc = 1, 1 -> 1;  wrong: acc = 1, 0 -> 0.5
    assert ref.r_auc(probs_split([[0.7, 0.3]], [0])) == 1.0
    assert ref.r_auc(probs_split([[0.7, 0.3]], [1])) == 0.5


def test_hand_nll_brier(hand):
    # NLL = -(log 0.9 + log 0.4 + log 0.7 + log 0.5) / 4
    want = -(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.5)) / 4
    assert ref.nll(hand) == pytest.approx(want, abs=EXACT)
    # Brier rows: 0.01+0.01, 0.36+0.36, 0.09+0.09, 0.25+0.25 -> 1.42 / 4 = 0.355
    assert ref.brier(hand) == pytest.approx(0.355, abs=EXACT)


def test_nll_inf_for_zero_probability():
    s = probs_split([[1.0, 0.0], [0.5, 0.5]], [1, 0])
    assert ref.nll(s) == math.inf
    out = {k: ref.to_json_value(v) for k, v in ref.compute_metrics(s, 15, "right-closed").items()}
    assert out["nll"] is None


# ---------------------------------------------------------------------------- bins


@pytest.mark.parametrize("m", [1, 2, 3, 5, 10, 15, 25])
def test_bin_index_matches_loop_on_edges(m):
    values = np.concatenate([ref.bin_edges(m), np.nextafter(ref.bin_edges(m), 2.0),
                             np.nextafter(ref.bin_edges(m), -1.0), [0.2, 0.4, 0.6, 0.8]])
    values = values[(values >= 0) & (values <= 1)]
    for binning in ref.BINNINGS:
        got = ref.bin_index(values, m, binning)
        want = [ref.bin_index_loop(v, m, binning) for v in values]
        assert got.tolist() == want
        assert got.min() >= 0 and got.max() <= m - 1


def test_bin_index_edges_semantics():
    # M = 5: 0 -> bin 0 both ways; 0.2 is the upper edge of bin 0 (right-closed) or the lower
    # edge of bin 1 (left-closed); 1.0 is in the last bin both ways.
    v = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert ref.bin_index(v, 5, "right-closed").tolist() == [0, 0, 1, 2, 3, 4]
    assert ref.bin_index(v, 5, "left-closed").tolist() == [0, 1, 2, 3, 4, 4]
    # same doubles on M = 15 edges (0.2 == 3/15 in double)
    assert 3 / 15 == 0.2 and 6 / 15 == 0.4 and 9 / 15 == 0.6 and 12 / 15 == 0.8
    assert ref.bin_index(v, 15, "right-closed").tolist() == [0, 2, 5, 8, 11, 14]
    assert ref.bin_index(v, 15, "left-closed").tolist() == [0, 3, 6, 9, 12, 14]


def test_left_closed_matches_numpy_histogram_and_right_closed_digitize():
    rng = np.random.default_rng(3)
    for m in (1, 4, 10, 15):
        v = np.concatenate([rng.random(500), ref.bin_edges(m)])
        e = ref.bin_edges(m)
        hist, _ = np.histogram(v, bins=e)
        assert np.bincount(ref.bin_index(v, m, "left-closed"), minlength=m).tolist() == hist.tolist()
        assert (ref.bin_index(v, m, "right-closed") == np.digitize(v, e[1:m], right=True)).all()


def test_group_sizes_like_array_split():
    for n in (0, 1, 4, 14, 15, 16, 100, 1001):
        for m in (1, 2, 7, 15, 25):
            assert ref.group_sizes(n, m) == [len(a) for a in np.array_split(np.arange(n), m)]


# ------------------------------------------------- loop versions of the vectorised metrics


def ece_loop(s, m, binning):
    total = 0.0
    for i in range(m):
        members = [n for n in range(s.n) if ref.bin_index_loop(s.c[n], m, binning) == i]
        if members:
            a = sum(float(s.yhat[n] == s.y[n]) for n in members) / len(members)
            c = sum(s.c[n] for n in members) / len(members)
            total += len(members) / s.n * abs(a - c)
    return total


def sce_loop(s, m, binning):
    eces, unders, overs = [], [], []
    for j in range(s.k):
        e = u = o = 0.0
        for i in range(m):
            members = [n for n in range(s.n) if ref.bin_index_loop(s.p[n, j], m, binning) == i]
            if members:
                a = sum(float(s.y[n] == j) for n in members) / len(members)
                c = sum(s.p[n, j] for n in members) / len(members)
                w = len(members) / s.n
                e += w * abs(a - c)
                u += w * max(0.0, a - c)
                o += w * max(0.0, c - a)
        eces.append(e)
        unders.append(u)
        overs.append(o)
    return np.array(eces), np.array(unders), np.array(overs)


def ace_loop(s, m):
    gaps = []
    for j in range(s.k):
        order = sorted(range(s.n), key=lambda n: (s.p[n, j], n))  # stable: ties by index
        start = 0
        for size in ref.group_sizes(s.n, m):
            g = order[start:start + size]
            start += size
            if g:
                a = sum(float(s.y[n] == j) for n in g) / len(g)
                c = sum(s.p[n, j] for n in g) / len(g)
                gaps.append(abs(a - c))
    return np.mean(gaps)


def random_split(seed, n, k, dtype=np.float32, scale=2.0, quantize=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * scale
    z[np.arange(n), y] += 1.5
    if quantize:
        z = np.round(z * quantize) / quantize  # many ties in p columns
    return ref.from_logits(z.astype(dtype).astype(np.float64), y)


@pytest.mark.parametrize("seed,n,k,m", [(1, 37, 3, 5), (2, 60, 4, 15), (3, 5, 3, 15),
                                        (4, 200, 2, 10), (5, 90, 6, 1)])
@pytest.mark.parametrize("quantize", [None, 1])
def test_vectorised_metrics_match_loops(seed, n, k, m, quantize):
    s = random_split(seed, n, k, quantize=quantize)
    for binning in ref.BINNINGS:
        assert ref.ece(s, m, binning) == pytest.approx(ece_loop(s, m, binning), abs=1e-13)
        got = ref.classwise_ece(s, m, binning)
        want = sce_loop(s, m, binning)
        for g, w in zip(got, want):
            assert g.tolist() == pytest.approx(w.tolist(), abs=1e-13)
        assert ref.sce(s, m, binning) == pytest.approx(np.mean(want[0]), abs=1e-13)
    assert ref.ace(s, m) == pytest.approx(ace_loop(s, m), abs=1e-13)


@pytest.mark.parametrize("seed,n,k", [(11, 500, 10), (12, 300, 2), (13, 50, 100)])
def test_classwise_split_is_under_plus_over(seed, n, k):
    s = random_split(seed, n, k)
    for m in (1, 10, 15):
        for binning in ref.BINNINGS:
            ece_j, under_j, over_j = ref.classwise_ece(s, m, binning)
            assert ece_j.tolist() == pytest.approx((under_j + over_j).tolist(), abs=1e-14)
            # rows of p sum to 1, so sum_i (pos_ij - sum p_ij) = n_j - sum_n p_nj per class, and
            # the mean over classes of (under_j - over_j) is (N - N) / (N K) = 0: the aggregate
            # split is vacuous (why eval reports it per class only), the per-class one is not
            balance = (np.bincount(s.y, minlength=k) - s.p.sum(axis=0)) / n
            assert (under_j - over_j).tolist() == pytest.approx(balance.tolist(), abs=1e-13)
            assert np.mean(under_j) == pytest.approx(np.mean(over_j), abs=1e-13)


# ------------------------------------------------------------- logits, NLL, sklearn


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_logit_quantities_against_scipy(dtype):
    rng = np.random.default_rng(21)
    n, k = 300, 7
    y = rng.integers(0, k, n)
    z = (rng.normal(size=(n, k)) * 3).astype(dtype).astype(np.float64)
    z[5] = z[5, 0]            # all-equal row: c = 1/K, prediction 0
    z[6, 3] = z[6].max()      # duplicated maximum: prediction is the lower index
    s = ref.from_logits(z, y)
    ls = log_softmax(z, axis=1)
    assert np.allclose(s.p, np.exp(ls), rtol=0, atol=1e-15)
    assert np.allclose(s.c, s.p.max(axis=1), rtol=0, atol=1e-15)
    assert np.allclose(s.logp_y, ls[np.arange(n), y], rtol=0, atol=1e-13)
    assert s.c[5] == 1.0 / k and s.yhat[5] == 0
    assert s.yhat[6] == int(np.flatnonzero(z[6] == z[6].max())[0])
    assert ref.nll(s) == pytest.approx(-np.mean(ls[np.arange(n), y]), abs=1e-13)


def test_large_logits_are_finite():
    rng = np.random.default_rng(22)
    z = (rng.normal(size=(100, 10)) * 1e4).astype(np.float32).astype(np.float64)
    y = rng.integers(0, 10, 100)
    s = ref.from_logits(z, y)
    assert np.isfinite(s.logp_y).all() and np.isfinite(s.p).all()
    assert ref.nll(s) == pytest.approx(-np.mean(log_softmax(z, axis=1)[np.arange(100), y]),
                                       rel=1e-14)


@pytest.mark.parametrize("seed,n,k", [(31, 400, 2), (32, 400, 10), (33, 150, 30), (34, 7, 3)])
@pytest.mark.parametrize("quantize", [None, 2])
def test_auroc_against_sklearn(seed, n, k, quantize):
    s = random_split(seed, n, k, quantize=quantize)
    aucs = []
    for j in range(k):
        pos = s.y == j
        if 0 < pos.sum() < n:
            want = roc_auc_score(pos.astype(int), s.p[:, j])
            assert ref.auroc_binary(s.p[:, j], pos) == pytest.approx(want, abs=1e-14)
            aucs.append(want)
    if aucs:
        assert ref.auroc(s) == pytest.approx(np.mean(aucs), abs=1e-14)
    else:
        assert math.isnan(ref.auroc(s))


def test_auroc_undefined_without_both_classes():
    s = probs_split([[0.7, 0.3], [0.2, 0.8]], [0, 0])
    # class 0: no negatives; class 1: no positives -> no class qualifies
    assert math.isnan(ref.auroc(s))
    assert ref.to_json_value(ref.auroc(s)) is None


@pytest.mark.parametrize("seed,n,k", [(41, 300, 5), (42, 40, 20), (43, 3, 10), (44, 1, 4),
                                      (45, 1000, 2)])
def test_precision_recall_f1_against_sklearn(seed, n, k):
    s = random_split(seed, n, k, scale=1.0)
    want = precision_recall_fscore_support(s.y, s.yhat, average="macro", zero_division=0)
    got = ref.precision_recall_f1(s)
    for g, w in zip(got, want[:3]):
        assert g == pytest.approx(w, abs=1e-14)


def test_brier_against_sklearn_style_formula():
    s = random_split(51, 200, 6)
    onehot = np.eye(6)[s.y]
    assert ref.brier(s) == pytest.approx(np.sum((s.p - onehot) ** 2) / 200, abs=1e-14)


# ----------------------------------------------------------------------- inversions


def test_inversions_hand():
    # all three pairs reverse order -> 3/3
    assert ref.order_inversions(np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.2, 0.1])) == 1.0
    # c = [0.1, 0.1, 0.3], c' = [0.2, 0.1, 0.0]
    # (0,1): c tie -> no;  (0,2): (-)(+) -> yes;  (1,2): (-)(+) -> yes  => 2/3
    got = ref.order_inversions(np.array([0.1, 0.1, 0.3]), np.array([0.2, 0.1, 0.0]))
    assert got == pytest.approx(2 / 3, abs=EXACT)
    # ties in c' are not inversions either: c = [1, 2, 3, 4], c' = [5, 5, 1, 6]
    # (0,1) tie; (0,2) (-)(+) yes; (0,3) (-)(-) no; (1,2) (-)(+) yes; (1,3) no; (2,3) no -> 2/6
    got = ref.order_inversions(np.array([1.0, 2, 3, 4]), np.array([5.0, 5, 1, 6]))
    assert got == pytest.approx(2 / 6, abs=EXACT)
    assert ref.order_inversions(np.array([0.5]), np.array([0.7])) == 0.0
    assert ref.order_inversions(np.array([0.5, 0.5]), np.array([0.7, 0.1])) == 0.0


def test_inversions_match_double_loop():
    rng = np.random.default_rng(61)
    c = np.round(rng.random(120), 1)
    c2 = np.round(c + rng.normal(size=120) * 0.2, 1)
    assert ref.order_inversions(c, c2) == ref.order_inversions_loop(c, c2)


# ------------------------------------------------------------------------ bootstrap


def test_splitmix64_known_outputs():
    # With state 0 the splitmix64 reference (Vigna) yields these first outputs.  Choose the seed
    # so that state0 = S + (b + 1) * 0xA0761D6478BD642F = 0 mod 2^64 for b = 0.
    seed = (-ref.SEED_STEP) & ref.MASK64
    g = ref.SplitMix64(seed, 0)
    assert g.state == 0
    assert [g.next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                            0x06C45D188009454F]


@pytest.mark.parametrize("seed", [0, 7, 123456789, (1 << 64) - 1])
@pytest.mark.parametrize("n", [1, 2, 7, 2047, 2048, 2049, 10000, 100003])
def test_bootstrap_indices_vectorised_equal_python_ints(seed, n):
    for b in (0, 1, 19):
        fast = ref.bootstrap_indices(seed, b, n)
        assert fast.min() >= 0 and fast.max() < n
        if n <= 10000 or b == 0:
            assert fast.tolist() == ref.bootstrap_indices_py(seed, b, n)


def test_bootstrap_indices_large_n_split_multiply():
    # N near 2^36: the split multiply must still be exact
    n = (1 << 36) - 5
    g = ref.SplitMix64(99, 3)
    want = [((g.next() >> 11) * n) >> 53 for _ in range(5)]
    u = np.uint64
    state0 = u((99 + 4 * ref.SEED_STEP) & ref.MASK64)
    x = state0 + np.arange(1, 6, dtype=np.uint64) * u(ref.GOLDEN)
    x = (x ^ (x >> u(30))) * u(ref.MIX1)
    x = (x ^ (x >> u(27))) * u(ref.MIX2)
    x = x ^ (x >> u(31))
    a = x >> u(11)
    idx = ((a >> u(26)) * u(n) + (((a & u((1 << 26) - 1)) * u(n)) >> u(26))) >> u(27)
    assert idx.tolist() == want


@pytest.mark.parametrize("count", [1, 2, 3, 19, 20, 1000])
def test_percentile_linear_matches_numpy(count):
    rng = np.random.default_rng(count)
    v = rng.normal(size=count)
    for q in (0.0, 0.025, (1 - 0.95) / 2, 1 - (1 - 0.95) / 2, 0.05, 0.5, 0.975, 1.0):
        assert ref.percentile_linear(v, q) == pytest.approx(np.quantile(v, q), abs=1e-14)


def test_bootstrap_ci_structure_and_undefined_auroc():
    # N = 1: every resample is the same single row; auroc is never defined -> null interval
    s = probs_split([[0.7, 0.3]], [0])
    ci = ref.bootstrap_ci(s, 15, "right-closed", 5, 7, 0.95)
    assert set(ci) == set(ref.CI_KEYS)
    assert ci["auroc"] is None
    assert ci["accuracy"] == {"low": 1.0, "high": 1.0}


# ------------------------------------------------------------------------ loading


def write_dump(path, x, y, kind="logits", num_classes=None):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = x.shape[1] if num_classes is None else num_classes
        for split in ("val", "test"):
            f[f"{split}/{kind}"] = x
            f[f"{split}/labels"] = y


def test_load_and_evaluate_roundtrip(tmp_path):
    rng = np.random.default_rng(71)
    z = rng.normal(size=(50, 4)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    path = tmp_path / "a.h5"
    write_dump(path, z, y.astype(np.uint8).reshape(-1, 1), num_classes="4")
    s = ref.load_split(str(path), "test")
    assert s.kind == "logits" and s.n == 50 and s.k == 4 and s.y.tolist() == y.tolist()
    out = ref.evaluate(str(path), "val", 10, "left-closed", bootstrap=3, seed=1,
                       reliability_bins=True, inversions_against=str(path))
    assert list(out)[:len(ref.METRIC_KEYS)] == list(ref.METRIC_KEYS)
    assert out["order_inversions"] == 0.0
    assert len(out["reliability"]) == 10
    assert sum(r["count"] for r in out["reliability"]) == 50
    assert out["bootstrap"] == {"resamples": 3, "seed": 1, "level": 0.95}


def test_probs_validation(tmp_path):
    path = tmp_path / "bad.h5"
    write_dump(path, np.array([[0.5, 0.6]]), np.array([0]), kind="probs")
    with pytest.raises(ValueError):
        ref.load_split(str(path), "test")
    path = tmp_path / "neg.h5"
    write_dump(path, np.array([[1.1, -0.1]]), np.array([0]), kind="probs")
    with pytest.raises(ValueError):
        ref.load_split(str(path), "test")
