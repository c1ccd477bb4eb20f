"""Float64 reference for inductive Venn-ABERS calibration (calibench `--method venn_abers`), as
venn-abers 1.5.4 computes it on pre-computed probabilities (site-packages/venn_abers/venn_abers.py,
`calc_p0p1`, `calc_probs`, `predict_proba_prefitted_va`, `VennAbersCalibrator.predict_proba`;
upstream ip200/venn-abers, whose snapshot HEAD c122e5328021a0ad4270093a4016053d2499a27e is 1.5.3 and
lacks 1.5.4's `p1[-1, 1] = 1.0`), written from Vovk, Petej & Fedorova (NeurIPS 2015, arXiv
1511.00213) without calibench's or the package's code.

Binary.  Calibration scores s_i (= P(class 1), rounded with np.round(s, precision) when precision is
not None; default None; test scores are never rounded) and labels y_i in {0, 1}.  Pool ties:
c_1 < ... < c_k' the distinct scores, w_j the count and S_j the label sum of group j.  For a test
score t and a hypothetical label h in {0, 1}:

    F_h(t) = value at t of the weighted isotonic (non-decreasing) regression of the groups plus the
             point (t, h), where t joins group j when t == c_j and is its own group otherwise.
    p0 = F_0(t),  p1 = F_1(t),  p = p1 / (1 - p0 + p1)            (package calc_probs, line 275)

F_h depends on t only through a position: p0 = F0[#{c_j <= t}], p1 = F1[#{c_j < t}] with
    F0[0] = 0 (t below every score),  F0[j] = F_0 with the test point pooled into group j (j >= 1);
    F1[k'] = 1 (t above every score), F1[j] = F_1 with the test point pooled into group j+1 (j < k').
(Pooling into the left neighbour for h = 0 and into the right one for h = 1 gives the same value as
a separate group, so this is exact also for t strictly between two scores.)  `f_tables` computes
F0, F1 in O(k') amortised: one PAVA stack per prefix and per suffix (persistent, as parent links),
then the modified group absorbs adjacent prefix/suffix blocks while they violate monotonicity.
Sums are integers, so every comparison is exact and each value is one exact division S/W, which is
also what the package's slopes are: p0, p1 agree with the package bit for bit in practice.
`binary_direct` is the literal definition (one isotonic regression per distinct test position).

Multiclass (K >= 3 labels present), one-vs-one (package default va_type='one_vs_one'): classes
= np.unique(y_cal) (columns are indexed by the label value); for each pair a < b (lexicographic):
calibration rows with y in {a, b}, score p[:, b] / (p[:, a] + p[:, b]), label y == b; test score the
same ratio on every test row; binary Venn-ABERS gives p_ab = P(b | a or b), and P(a | a or b) is
taken as 1 - p_ab.  Coupling (Price et al. 1995):  q_a = 1 / (sum_{b != a} 1 / P(a | a or b) - (K - 2)),
then p = q / sum(q).  One-vs-rest (va_type other): score p[:, k] unnormalised, label y == k, all rows;
p = p_k / sum_k p_k.  `calibrator` mirrors VennAbersCalibrator's dispatch (<= 2 distinct labels:
binary on column 1).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import isotonic_regression


def _score(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p[:, 1] if p.ndim == 2 else p


def _labels01(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("binary Venn-ABERS needs labels in {0, 1}")
    return y.astype(np.int64)


def groups(s: np.ndarray, y: np.ndarray, precision: int | None = None):
    """Distinct calibration scores c (ascending), counts w and label sums S (integer arrays)."""
    s = np.asarray(s, dtype=np.float64)
    if precision is not None:
        s = np.round(s, precision)
    c, inv = np.unique(s, return_inverse=True)
    w = np.bincount(inv, minlength=len(c))
    S = np.bincount(inv, weights=_labels01(y), minlength=len(c)).astype(np.int64)
    return c, w, S


def _pava_stacks(S: list[int], W: list[int], reverse: bool):
    """Persistent PAVA stacks of the prefixes (reverse=False) or suffixes (reverse=True).

    Returns block sums bs, bw, the link to the next block away from the new end, and top, where
    top[i] is the newest block after groups [0, i) (prefix) or [i, k') (suffix); -1 = empty."""
    k = len(S)
    bs, bw, link = [], [], []
    order = range(k - 1, -1, -1) if reverse else range(k)
    top = [-1] * (k + 1)
    t = -1
    for j in order:
        cs, cw = S[j], W[j]
        # prefix: pool while mean(older, left) >= mean(new); suffix: while mean(new) >= mean(older, right)
        while t >= 0 and ((cs * bw[t] >= bs[t] * cw) if reverse else (bs[t] * cw >= cs * bw[t])):
            cs, cw, t = cs + bs[t], cw + bw[t], link[t]
        bs.append(cs)
        bw.append(cw)
        link.append(t)
        t = len(bs) - 1
        top[j if reverse else j + 1] = t
    return bs, bw, link, top


def f_tables(w: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F0[0..k'], F1[0..k'] (see the module docstring) by prefix/suffix PAVA and absorption."""
    W, Sl = [int(v) for v in w], [int(v) for v in S]
    k = len(W)
    ls, lw, ll, ltop = _pava_stacks(Sl, W, reverse=False)
    rs, rw, rl, rtop = _pava_stacks(Sl, W, reverse=True)
    rtop = rtop[1:] + [-1]  # rtop[m] = suffix stack of groups (m, k'), i.e. right of group m

    def value(m: int, h: int) -> float:
        ms, mw = Sl[m] + h, W[m] + 1  # group m with the test point (label h) pooled in
        a, b = ltop[m], rtop[m]
        while True:
            if a >= 0 and ls[a] * mw >= ms * lw[a]:  # left block not below: pool
                ms, mw, a = ms + ls[a], mw + lw[a], ll[a]
            elif b >= 0 and rs[b] * mw <= ms * rw[b]:  # right block not above: pool
                ms, mw, b = ms + rs[b], mw + rw[b], rl[b]
            else:
                return ms / mw

    F0 = np.array([0.0] + [value(m, 0) for m in range(k)])
    F1 = np.array([value(m, 1) for m in range(k)] + [1.0])
    return F0, F1


def merge(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Package merge (calc_probs): p = p1 / (1 - p0 + p1)."""
    return p1 / (1 - p0 + p1)


def binary(p_cal, y_cal, p_test, precision: int | None = None):
    """(p0, p1, p) for test scores; p_cal/p_test are P(class 1) as [N] or [N, 2] (column 1 used)."""
    c, w, S = groups(_score(p_cal), y_cal, precision)
    t = _score(p_test)
    F0, F1 = f_tables(w, S)
    p0 = F0[np.searchsorted(c, t, "right")]
    p1 = F1[np.searchsorted(c, t, "left")]
    return p0, p1, merge(p0, p1)


def binary_direct(p_cal, y_cal, p_test, precision: int | None = None):
    """Literal definition: one weighted isotonic regression (scipy PAVA) per distinct test position."""
    c, w, S = groups(_score(p_cal), y_cal, precision)
    t = _score(p_test)
    w, S = w.astype(np.float64), S.astype(np.float64)
    out = np.empty((2, len(t)))
    cache = {}
    for i, x in enumerate(t):
        j = int(np.searchsorted(c, x, "left"))
        tie = j < len(c) and c[j] == x
        if (j, tie) not in cache:
            vals = []
            for h in (0, 1):
                if tie:
                    ww, ss = w.copy(), S.copy()
                    ww[j] += 1
                    ss[j] += h
                else:
                    ww, ss = np.insert(w, j, 1.0), np.insert(S, j, float(h))
                vals.append(isotonic_regression(ss / ww, weights=ww).x[j])
            cache[(j, tie)] = vals
        out[:, i] = cache[(j, tie)]
    return out[0], out[1], merge(out[0], out[1])


def couple_pairwise(r: dict, classes: np.ndarray) -> np.ndarray:
    """PKPD coupling as the package writes it: r[(a, b)] = P(b | a or b) on the test rows (a < b).

    For class a the terms are 1 / (1 - r[(a, b)]) for b > a (pair order), then 1 / r[(b, a)] for
    b < a; q_a = 1 / (sum - (K - 2)); returns q / sum(q)."""
    K = len(classes)
    q = []
    for a in classes:
        terms = [1 - r[(a, b)] for b in classes if b > a] + [r[(b, a)] for b in classes if b < a]
        q.append(1 / (np.sum(np.stack([1 / v for v in terms], axis=1), axis=1) - (K - 2)))
    q = np.stack(q, axis=1)
    return q / np.sum(q, axis=1).reshape(-1, 1)


def multiclass(p_cal, y_cal, p_test, precision: int | None = None, va_type: str = "one_vs_one"):
    """(p0 [M, P], p1 [M, P], p [M, K']) with K' = len(np.unique(y_cal)) and P = K'(K'-1)/2 pairs
    (one_vs_one, lexicographic order) or K' (one_vs_rest); columns of p follow np.unique(y_cal)."""
    p_cal = np.asarray(p_cal, dtype=np.float64)
    p_test = np.asarray(p_test, dtype=np.float64)
    y_cal = np.asarray(y_cal)
    classes = np.unique(y_cal)
    p0s, p1s = [], []
    if va_type == "one_vs_one":
        r = {}
        for i, a in enumerate(classes):
            for b in classes[i + 1:]:
                rows = (y_cal == a) | (y_cal == b)
                sc = p_cal[rows][:, b] / (p_cal[rows][:, a] + p_cal[rows][:, b])
                st = p_test[:, b] / (p_test[:, a] + p_test[:, b])
                p0, p1, pm = binary(sc, y_cal[rows] == b, st, precision)
                p0s.append(p0)
                p1s.append(p1)
                r[(a, b)] = pm
        p = couple_pairwise(r, classes)
    else:
        q = []
        for k in classes:
            p0, p1, pm = binary(p_cal[:, k], y_cal == k, p_test[:, k], precision)
            p0s.append(p0)
            p1s.append(p1)
            q.append(pm)
        q = np.stack(q, axis=1)
        p = q / np.sum(q, axis=1).reshape(-1, 1)
    return np.stack(p0s, axis=1), np.stack(p1s, axis=1), p


def calibrator(p_cal, y_cal, p_test, precision: int | None = None, va_type: str = "one_vs_one"):
    """VennAbersCalibrator().predict_proba(p_cal=, y_cal=, p_test=): [M, 2] when y_cal has <= 2
    distinct values (binary on column 1; labels must be 0/1 here), else multiclass p."""
    if len(np.unique(y_cal)) <= 2:
        _, _, p = binary(np.asarray(p_cal)[:, 1], y_cal, np.asarray(p_test)[:, 1], precision)
        return np.stack([1 - p, p], axis=1)
    return multiclass(p_cal, y_cal, p_test, precision, va_type)[2]
