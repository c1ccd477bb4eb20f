"""Checks of tests/reference/venn_abers_ref.py (inductive Venn-ABERS, venn-abers 1.5.4).

Part 1 needs only numpy/scipy: the fast tables against a brute-force isotonic value (the
max-min block-average formula in exact fractions) on every label pattern of tiny inputs, the
literal definition (`binary_direct`, scipy PAVA), closed forms for one-class calibration sets,
hand-worked cases, monotonicity, rounding, the pairwise coupling.
Part 2 compares with the package itself (VennAbers, VennAbersCalibrator with p_cal/y_cal/p_test)
and skips where venn_abers is not importable (plain python3 in CI).

Tolerances. With 0/1 labels both codes produce each p0, p1 as one division of two integers (the
package as a slope between points of the cumulative-sum diagram, the reference as a block sum over
a block count), so they agree exactly: measured 0.0 on every case here, and the merged and coupled
probabilities use the same float operations in the same order (0.0 too). ATOL = 1e-12 only leaves
room for a different libm/summation order; a wrong tie rule or insertion side moves values by at
least 1/(N + 1) >= 3e-4 at N = 3000. `binary_direct` goes through scipy's running weighted means,
so it is held to 1e-14 (measured 2.2e-16).
"""
from __future__ import annotations

import itertools
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import venn_abers_ref as ref  # noqa: E402

ATOL = 1e-12


# ----------------------------------------------------------------------------- part 1: no package

def brute_iso_at(c, y, t, h):
    """Isotonic value at t of data + (t, h): max over blocks [a..] min over [..b] of the average,
    blocks taken over distinct scores (ties pooled), in exact fractions."""
    xs = sorted(set(c) | {t})
    W = [sum(1 for v in c if v == x) + (x == t) for x in xs]
    S = [sum(int(l) for v, l in zip(c, y) if v == x) + (h if x == t else 0) for x in xs]
    k = xs.index(t)
    return max(min(Fraction(sum(S[a:b + 1]), sum(W[a:b + 1])) for b in range(k, len(xs)))
               for a in range(k + 1))


def test_tables_equal_bruteforce_exhaustive():
    n_cases = 0
    for n in range(1, 7):
        for ties in ((1,) * n, (2,) * (n // 2) + (1,) * (n % 2), (n,)):
            c = [float(g) / 8 + 0.0625 for g, m in enumerate(ties) for _ in range(m)]
            grid = sorted(set(c)) + [x + 0.03125 for x in sorted(set(c))] + [0.0]  # ties, between, out
            for y in itertools.product((0, 1), repeat=n):
                y = np.array(y)
                p0, p1, p = ref.binary(np.array(c), y, np.array(grid))
                d0, d1, dp = ref.binary_direct(np.array(c), y, np.array(grid))
                for i, t in enumerate(grid):
                    b0, b1 = brute_iso_at(c, y, t, 0), brute_iso_at(c, y, t, 1)
                    assert p0[i] == float(b0) and p1[i] == float(b1), (c, y, t)  # both exact roundings
                    assert p[i] == pytest.approx(float(b1 / (1 - b0 + b1)), abs=1e-15)
                assert np.abs(d0 - p0).max() <= 1e-14 and np.abs(d1 - p1).max() <= 1e-14
                assert np.abs(dp - p).max() <= 1e-14
                n_cases += 1
    assert n_cases == 3 * sum(2 ** n for n in range(1, 7))


def test_hand_cases():
    # 0,1,[t],0,1: with t labelled 0 PAVA pools (1, 0, 0) -> 1/3; labelled 1 pools (1, 1, 0) -> 2/3
    p0, p1, p = ref.binary([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], [0.25])
    assert (p0[0], p1[0]) == (1 / 3, 2 / 3) and p[0] == pytest.approx(0.5, abs=1e-15)
    # tie group {0.2: labels 1, 0}; t = 0.2 joins it: (1+0)/3 and (1+1)/3; t above all: p0 pools
    # the test point into the last group {0.5: 1} -> 1/2 = mean of {0.2 group}, so p0 = 1/2, p1 = 1
    p0, p1, p = ref.binary([0.2, 0.5, 0.2], [1, 1, 0], [0.2, 0.9, 0.1])
    np.testing.assert_array_equal(p0, [1 / 3, 0.5, 0.0])
    np.testing.assert_array_equal(p1, [2 / 3, 1.0, 2 / 3])
    np.testing.assert_allclose(p, [0.5, 1 / 1.5, 0.4], atol=1e-15, rtol=0)  # p = p1 / (1 - p0 + p1)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_class_closed_forms(seed):
    rng = np.random.default_rng(seed)
    c = np.round(rng.random(200), 2)
    t = np.r_[rng.random(300), c[:50], -1.0, 2.0]
    n_ge = (c[None, :] >= t[:, None]).sum(1)
    n_le = (c[None, :] <= t[:, None]).sum(1)
    p0, p1, p = ref.binary(c, np.zeros(200, int), t)  # all 0: p0 = 0, p1 = 1/(1 + #{s >= t})
    np.testing.assert_array_equal(p0, 0.0)
    np.testing.assert_array_equal(p1, 1 / (1 + n_ge))
    p0, p1, p = ref.binary(c, np.ones(200, int), t)  # all 1: p1 = 1, p0 = #{s <= t}/(#{s <= t} + 1)
    np.testing.assert_array_equal(p1, 1.0)
    np.testing.assert_array_equal(p0, n_le / (n_le + 1))
    np.testing.assert_array_equal(p, 1 / (2 - p0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monotone_and_ordered(seed):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 20, 500) / 20
    y = (rng.random(500) < c).astype(int)
    t = np.sort(np.r_[rng.random(1000), c, -1.0, 2.0])
    p0, p1, p = ref.binary(c, y, t)
    for v in (p0, p1, p):
        assert np.all(np.diff(v) >= 0)
    assert np.all(p0 <= p1) and np.all(p0 >= 0) and np.all(p1 <= 1) and np.all(p0 < 1) and np.all(p1 > 0)
    assert p0[0] == 0.0 and p1[-1] == 1.0


def test_precision_rounds_calibration_only():
    rng = np.random.default_rng(3)
    c = rng.random(400)
    y = (rng.random(400) < c).astype(int)
    t = np.r_[rng.random(300), 0.5, 0.504, 0.496]
    a = ref.binary(c, y, t, precision=2)
    b = ref.binary(np.rint(c * 100.0) / 100.0, y, t)  # np.round(x, 2) == rint(x * 100) / 100
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    # test scores are not rounded: 0.504 sits strictly between groups 0.50 and 0.51
    c2, w2, S2 = ref.groups(c, y, 2)
    F0, F1 = ref.f_tables(w2, S2)
    j = int(np.searchsorted(c2, 0.5))
    assert c2[j] == 0.5 and a[0][-2] == F0[j + 1] and a[1][-2] == F1[j + 1]


def test_coupling_recovers_consistent_pairwise():
    rng = np.random.default_rng(4)
    for K in (3, 5, 10):
        q = rng.dirichlet(np.ones(K), 50)
        classes = np.arange(K)
        r = {(a, b): q[:, b] / (q[:, a] + q[:, b]) for a in classes for b in classes if a < b}
        np.testing.assert_allclose(ref.couple_pairwise(r, classes), q, rtol=1e-12, atol=0)


def test_multiclass_k2_is_binary_and_absent_class_drops_column():
    rng = np.random.default_rng(5)
    s = rng.integers(0, 1025, 300) / 1024.0  # dyadic: 1 - s and s / ((1 - s) + s) are exact
    y = (rng.random(300) < s).astype(int)
    st = rng.integers(0, 1025, 200) / 1024.0
    P, Pt = np.c_[1 - s, s], np.c_[1 - st, st]
    m0, m1, mp = ref.multiclass(P, y, Pt)
    b0, b1, bp = ref.binary(s, y, st)
    np.testing.assert_array_equal(m0[:, 0], b0)
    np.testing.assert_array_equal(m1[:, 0], b1)
    np.testing.assert_allclose(mp, np.c_[1 - bp, bp], atol=1e-15, rtol=0)
    np.testing.assert_allclose(ref.calibrator(P, y, Pt), np.c_[1 - bp, bp], atol=1e-15, rtol=0)
    # K = 4 with class 2 absent == the 3-class problem on columns (0, 1, 3), relabelled
    p = rng.dirichlet(np.ones(4), 400)
    y = rng.choice([0, 1, 3], 400)
    pt = rng.dirichlet(np.ones(4), 100)
    a = ref.multiclass(p, y, pt)
    b = ref.multiclass(p[:, [0, 1, 3]], np.searchsorted([0, 1, 3], y), pt[:, [0, 1, 3]])
    assert a[2].shape == (100, 3) and a[0].shape == (100, 3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# ----------------------------------------------------------------------------- part 2: the package

@pytest.fixture(scope="module")
def va():
    mod = pytest.importorskip("venn_abers.venn_abers")
    return mod


def _pkg_binary(va, s, y, t, precision=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its nanmin of an all-NaN slice at the last point
        m = va.VennAbers()
        m.fit(np.c_[1 - s, s], y, precision=precision)
        pp, p01 = m.predict_proba(np.c_[1 - t, t])
    return p01[:, 0], p01[:, 1], pp


def _binary_case(rng, n, m, kind):
    s = rng.random(n)
    if kind == "ties":
        s = np.round(s, 2)
    elif kind == "few":
        s = rng.integers(0, 4, n) / 3.0
    y = (rng.random(n) < s).astype(int)
    if kind == "zeros":
        y[:] = 0
    elif kind == "ones":
        y[:] = 1
    t = rng.random(m)
    k = m // 3
    t[:k] = rng.choice(s, k)  # exact ties with calibration scores
    t[k:k + 4] = [s.min(), s.max(), -0.5, 1.5][: max(0, min(4, m - k))]
    return s, y, t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["plain", "ties", "few", "zeros", "ones"])
def test_binary_vs_package(va, seed, kind):
    rng = np.random.default_rng(100 * seed + len(kind))
    for n, m in ((10, 7), (37, 500), (500, 2000), (3000, 1500)):
        s, y, t = _binary_case(rng, n, m, kind)
        q0, q1, pp = _pkg_binary(va, s, y, t)
        p0, p1, p = ref.binary(s, y, t)
        assert np.abs(p0 - q0).max() <= ATOL and np.abs(p1 - q1).max() <= ATOL
        assert np.abs(p - pp[:, 1]).max() <= ATOL and np.abs((1 - p) - pp[:, 0]).max() <= ATOL


def test_binary_direct_vs_package(va):
    rng = np.random.default_rng(7)
    for kind in ("plain", "ties", "zeros"):
        s, y, t = _binary_case(rng, 800, 300, kind)
        q0, q1, pp = _pkg_binary(va, s, y, t)
        d0, d1, dp = ref.binary_direct(s, y, t)
        assert np.abs(d0 - q0).max() <= 1e-14 and np.abs(d1 - q1).max() <= 1e-14
        assert np.abs(dp - pp[:, 1]).max() <= 1e-14


@pytest.mark.parametrize("precision", [1, 2, 4])
def test_binary_precision_vs_package(va, precision):
    rng = np.random.default_rng(precision)
    s, y, t = _binary_case(rng, 2000, 1000, "plain")
    q0, q1, pp = _pkg_binary(va, s, y, t, precision)
    p0, p1, p = ref.binary(s, y, t, precision)
    assert np.abs(p0 - q0).max() <= ATOL and np.abs(p1 - q1).max() <= ATOL
    assert np.abs(p - pp[:, 1]).max() <= ATOL
    # the rounding matters (else this test would not test it)
    assert np.abs(p - ref.binary(s, y, t)[2]).max() > 1e-3


def _softmax_case(rng, n, m, K, ties=False):
    def draw(k):
        z = np.exp(2 * rng.normal(size=(k, K)))
        z /= z.sum(1, keepdims=True)
        return np.round(z, 2) + 1e-3 if ties else z  # ties: many repeated pairwise ratios
    p, pt = draw(n), draw(m)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    pt[: m // 4] = p[rng.integers(0, n, m // 4)]  # test rows equal to calibration rows
    return p, y, pt


def _pkg_calibrator(va, p, y, pt, precision=None, va_type="one_vs_one"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = va.VennAbersCalibrator(precision=precision)
        return c.predict_proba(p_cal=p, y_cal=y, p_test=pt, p0_p1_output=True, va_type=va_type)


@pytest.mark.parametrize("K,n,m,seed", [(3, 30, 50, 0), (3, 3000, 2000, 1), (5, 200, 500, 2),
                                        (5, 1500, 1000, 3), (10, 600, 300, 4), (10, 3000, 1000, 5)])
@pytest.mark.parametrize("va_type", ["one_vs_one", "one_vs_rest"])
def test_multiclass_vs_package(va, K, n, m, seed, va_type):
    rng = np.random.default_rng(seed)
    p, y, pt = _softmax_case(rng, n, m, K, ties=seed % 2 == 0)
    assert len(np.unique(y)) == K
    pp, p01 = _pkg_calibrator(va, p, y, pt, va_type=va_type)
    r0, r1, rp = ref.multiclass(p, y, pt, va_type=va_type)
    assert r0.shape == (m, len(p01)) and rp.shape == pp.shape == (m, K)
    assert max(np.abs(r0[:, i] - q[:, 0]).max() for i, q in enumerate(p01)) <= ATOL
    assert max(np.abs(r1[:, i] - q[:, 1]).max() for i, q in enumerate(p01)) <= ATOL
    assert np.abs(rp - pp).max() <= ATOL


def test_multiclass_absent_class_and_precision_vs_package(va):
    rng = np.random.default_rng(11)
    p, y, pt = _softmax_case(rng, 1000, 400, 5)
    y[y == 2] = 4  # class 2 absent: the package returns 4 columns (classes 0, 1, 3, 4)
    for precision in (None, 2):
        pp, p01 = _pkg_calibrator(va, p, y, pt, precision)
        r0, r1, rp = ref.multiclass(p, y, pt, precision)
        assert pp.shape == rp.shape == (400, 4) and len(p01) == 6
        assert np.abs(rp - pp).max() <= ATOL
        assert max(np.abs(np.c_[r0[:, i], r1[:, i]] - q).max() for i, q in enumerate(p01)) <= ATOL


@pytest.mark.parametrize("kind", ["plain", "ties", "zeros", "ones"])
def test_k2_calibrator_is_binary_vs_package(va, kind):
    rng = np.random.default_rng(len(kind))
    s, y, t = _binary_case(rng, 1200, 900, kind)
    P, Pt = np.c_[1 - s, s], np.c_[1 - t, t]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp = va.VennAbersCalibrator().predict_proba(p_cal=P, y_cal=y, p_test=Pt)
    assert pp.shape == (900, 2)
    assert np.abs(ref.calibrator(P, y, Pt) - pp).max() <= ATOL


def test_zero_pair_sums_vs_package(va):
    """Rows with p_a = p_b = 0 give the pairwise score 0/0 = NaN; numpy sorts NaN above every
    number and np.unique keeps one NaN group, so such calibration rows form a top group and such
    test rows take p0 = F0[k'], p1 = F1[k' - 1] (NaN group present) or 1.0 (absent)."""
    rng = np.random.default_rng(12)
    p = rng.dirichlet(np.ones(3), 300)
    y = rng.integers(0, 3, 300)
    p[:10], y[:10] = [0.0, 0.0, 1.0], rng.integers(0, 2, 10)
    pt = rng.dirichlet(np.ones(3), 60)
    pt[:5], pt[5:8] = [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]
    pp, p01 = _pkg_calibrator(va, p, y, pt)
    r0, r1, rp = ref.multiclass(p, y, pt)
    assert np.isfinite(pp).all() and np.abs(rp - pp).max() <= ATOL
    assert max(np.abs(np.c_[r0[:, i], r1[:, i]] - q).max() for i, q in enumerate(p01)) <= ATOL
