"""Independent float64 reference for `calibench eval`.

Written from the formulas in docs/metrics.md with plain numpy (and scipy's rankdata), without
looking at the C++ sources.  Correctness and readability come first; every metric is vectorised
over samples (and over classes/bins where that keeps it clear) so that N = 100,000 x K = 10 and
N = 2,000 x K = 1,000 take at most a few seconds.

Usage as a script (handy for debugging):

    python3 tests/reference/calib_ref.py FILE [--split test] [--bins 15]
        [--binning right-closed|left-closed] [--bootstrap B] [--seed S] [--level L]
        [--reliability] [--inversions-against OTHER]

prints the same JSON object as `calibench eval FILE ... --format json`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

import h5py
import numpy as np
from scipy.stats import rankdata

# Metric keys of the JSON object, in contract order (docs/metrics.md, "calibench eval").
METRIC_KEYS = (
    "n", "k", "accuracy", "ece", "mce", "adaece", "sce", "ace", "nll", "brier", "auroc", "precision", "recall", "f1", "r_auc",
)
# Keys that get a bootstrap interval: every metric except n and k.
CI_KEYS = METRIC_KEYS[2:]
BINNINGS = ("right-closed", "left-closed")

# Tolerance of the probability-input validation (docs/metrics.md, "Inputs").
PROB_SUM_TOL = 1e-3


# --------------------------------------------------------------------------------------------
# Loading and per-sample quantities
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Split:
    """Per-sample quantities of one split, all float64 / int64.

    p       [N, K] probabilities (softmax of the logits, or the stored probabilities)
    c       [N]    confidence (1/S for logits, max_j p_nj for probabilities)
    yhat    [N]    prediction, argmax with the lowest index on ties
    y       [N]    labels
    logp_y  [N]    log p_{n, y_n} (-inf allowed for probability inputs)
    """

    kind: str
    p: np.ndarray
    c: np.ndarray
    yhat: np.ndarray
    y: np.ndarray
    logp_y: np.ndarray
    k: int

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def correct(self) -> np.ndarray:
        return (self.yhat == self.y).astype(np.float64)

    def take(self, idx: np.ndarray) -> "Split":
        """Rows idx, in that order (a bootstrap resample)."""
        return Split(self.kind, self.p[idx], self.c[idx], self.yhat[idx], self.y[idx],
                     self.logp_y[idx], self.k)


def from_logits(z: np.ndarray, y: np.ndarray) -> Split:
    """m = max_j z, S = sum_j exp(z - m) (summed left to right over j), p = exp(z - m) / S,
    c = 1 / S, log p_y = z_y - m - log S, prediction = argmax z (first index on ties)."""
    z = np.asarray(z, dtype=np.float64)
    n, k = z.shape
    m = z.max(axis=1)
    e = np.exp(z - m[:, None])
    s = np.zeros(n, dtype=np.float64)
    for j in range(k):  # plain sequential sum over classes (not numpy's pairwise sum)
        s += e[:, j]
    p = e / s[:, None]
    c = 1.0 / s
    yhat = np.argmax(z, axis=1).astype(np.int64)  # numpy returns the first maximum
    rows = np.arange(n)
    logp_y = z[rows, y] - m - np.log(s)
    return Split("logits", p, c, yhat, y, logp_y, k)


def from_probs(p: np.ndarray, y: np.ndarray) -> Split:
    """p as stored (validated, not renormalised); c = max_j p; log p_y = log(p_y)."""
    p = np.asarray(p, dtype=np.float64)
    n, k = p.shape
    if not np.all(np.isfinite(p)):
        raise ValueError("non-finite probability")
    if np.any(p < 0):
        raise ValueError("negative probability")
    if np.any(np.abs(p.sum(axis=1) - 1.0) > PROB_SUM_TOL):
        raise ValueError("probability row does not sum to 1 within 1e-3")
    c = p.max(axis=1)
    yhat = np.argmax(p, axis=1).astype(np.int64)
    with np.errstate(divide="ignore"):
        logp_y = np.log(p[np.arange(n), y])
    return Split("probs", p, c, yhat, y, logp_y, k)


def load_split(path: str, split: str) -> Split:
    """Read /<split>/logits or /<split>/probs and /<split>/labels ([N] or [N, 1]) of a dump."""
    with h5py.File(path, "r") as f:
        g = f[split]
        if "logits" in g:
            kind, x = "logits", g["logits"][()]
        elif "probs" in g:
            kind, x = "probs", g["probs"][()]
        else:
            raise ValueError(f"{path}: /{split} has neither logits nor probs")
        labels = g["labels"][()]
        num_classes = f.attrs.get("num_classes", None)
    if x.ndim != 2:
        raise ValueError(f"{path}: /{split}/{kind} has shape {x.shape}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise ValueError(f"{path}: /{split}/labels has shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: /{split}/labels is not integer")
    k = x.shape[1]
    if num_classes is not None:
        if isinstance(num_classes, bytes):
            num_classes = num_classes.decode()
        if int(num_classes) != k:
            raise ValueError(f"{path}: num_classes={num_classes} but K={k}")
    y = labels.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"{path}: label out of range")
    x = x.astype(np.float64)  # float16/32 -> float64 is exact
    if kind == "logits":
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{path}: non-finite logit")
        return from_logits(x, y)
    return from_probs(x, y)


# --------------------------------------------------------------------------------------------
# Bins and equal-mass groups
# --------------------------------------------------------------------------------------------

def bin_edges(m: int) -> np.ndarray:
    """e_i = i / (double)M, i = 0..M (numpy true division is correctly rounded, like C++)."""
    return np.arange(m + 1, dtype=np.float64) / float(m)


def bin_index(v: np.ndarray, m: int, binning: str) -> np.ndarray:
    """0-based equal-width bin of each value.

    right-closed: number of interior edges e_1..e_{M-1} with e < v  (bins (lo, hi], 0 -> bin 0)
    left-closed:  number of interior edges with e <= v              (bins [lo, hi), last closed)
    """
    interior = bin_edges(m)[1:m]
    if binning == "right-closed":
        return np.searchsorted(interior, v, side="left")
    if binning == "left-closed":
        return np.searchsorted(interior, v, side="right")
    raise ValueError(f"unknown binning {binning!r}")


def bin_index_loop(v: float, m: int, binning: str) -> int:
    """Scalar, literal version of bin_index (used by the self-checks)."""
    count = 0
    for i in range(1, m):
        e = i / float(m)
        if (e < v) if binning == "right-closed" else (e <= v):
            count += 1
    return count


def group_sizes(n: int, m: int) -> list[int]:
    """numpy.array_split sizes: the first N mod M groups have floor(N/M) + 1 members."""
    q, r = divmod(n, m)
    return [q + 1] * r + [q] * (m - r)


def equal_mass_groups(v: np.ndarray, m: int) -> list[np.ndarray]:
    """Stable ascending sort of v, split into M contiguous array_split groups (some may be
    empty when N < M).  Returns the sample indices of each group."""
    order = np.argsort(v, kind="stable")
    groups = np.array_split(order, m)
    assert [len(g) for g in groups] == group_sizes(len(v), m)
    return groups


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

def accuracy(s: Split) -> float:
    return float(np.mean(s.correct))


def _top_label_bins(s: Split, m: int, binning: str):
    b = bin_index(s.c, m, binning)
    count = np.bincount(b, minlength=m)
    sum_correct = np.bincount(b, weights=s.correct, minlength=m)
    sum_conf = np.bincount(b, weights=s.c, minlength=m)
    return count, sum_correct, sum_conf


def ece(s: Split, m: int, binning: str) -> float:
    """sum_i |B_i|/N |A_i - C_i| over equal-width bins of c; empty bins add 0."""
    count, sa, sc = _top_label_bins(s, m, binning)
    total = 0.0
    for i in range(m):
        if count[i] > 0:
            a_i = sa[i] / count[i]
            c_i = sc[i] / count[i]
            total += count[i] / s.n * abs(a_i - c_i)
    return total


def mce(s: Split, m: int, binning: str) -> float:
    """max over non-empty bins of |A_i - C_i|."""
    count, sa, sc = _top_label_bins(s, m, binning)
    gaps = [abs(sa[i] / count[i] - sc[i] / count[i]) for i in range(m) if count[i] > 0]
    return max(gaps) if gaps else math.nan


def adaece(s: Split, m: int) -> float:
    """mean over non-empty equal-mass groups of c of |A_g - C_g|."""
    correct = s.correct
    gaps = [abs(np.mean(correct[g]) - np.mean(s.c[g]))
            for g in equal_mass_groups(s.c, m) if len(g) > 0]
    return float(np.mean(gaps)) if gaps else math.nan


def classwise_ece(s: Split, m: int, binning: str):
    """Per-class equal-width binned calibration errors.

    Returns (ece_j, under_j, over_j), each [K]:
      ECE_j   = sum_i |B_ij|/N |A_ij - C_ij|
      under_j = sum_i |B_ij|/N max(0, A_ij - C_ij)
      over_j  = sum_i |B_ij|/N max(0, C_ij - A_ij)
    with A_ij the fraction of bin i (of p_.j) with y = j and C_ij its mean p_.j.
    """
    n, k = s.p.shape
    b = bin_index(s.p, m, binning)                       # [N, K]
    flat = b + m * np.arange(k)[None, :]                 # (class j, bin i) -> j*M + i
    is_j = (s.y[:, None] == np.arange(k)[None, :]).astype(np.float64)
    count = np.bincount(flat.ravel(), minlength=k * m).reshape(k, m)
    sum_pos = np.bincount(flat.ravel(), weights=is_j.ravel(), minlength=k * m).reshape(k, m)
    sum_p = np.bincount(flat.ravel(), weights=s.p.ravel(), minlength=k * m).reshape(k, m)
    nonempty = count > 0
    safe = np.where(nonempty, count, 1)
    a = sum_pos / safe
    c = sum_p / safe
    w = np.where(nonempty, count / n, 0.0)
    ece_j = np.sum(w * np.abs(a - c), axis=1)
    under_j = np.sum(w * np.maximum(0.0, a - c), axis=1)
    over_j = np.sum(w * np.maximum(0.0, c - a), axis=1)
    return ece_j, under_j, over_j


def sce(s: Split, m: int, binning: str) -> float:
    """sce = mean over classes of the classwise errors ECE_j."""
    ece_j, _, _ = classwise_ece(s, m, binning)
    return float(np.mean(ece_j))


def ace(s: Split, m: int) -> float:
    """For each class j: equal-mass groups of p_.j (stable ascending sort, array_split sizes);
    mean over all non-empty (class, group) pairs of |A_gj - C_gj|."""
    n, k = s.p.shape
    order = np.argsort(s.p, axis=0, kind="stable")        # [N, K], column j sorts p_.j
    p_sorted = np.take_along_axis(s.p, order, axis=0)
    pos_sorted = (s.y[order] == np.arange(k)[None, :]).astype(np.float64)
    sizes = np.array(group_sizes(n, m))
    sizes = sizes[sizes > 0]                              # non-empty groups only
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    a = np.add.reduceat(pos_sorted, starts, axis=0) / sizes[:, None]   # [G, K]
    c = np.add.reduceat(p_sorted, starts, axis=0) / sizes[:, None]
    return float(np.mean(np.abs(a - c)))


def nll(s: Split) -> float:
    return float(-np.mean(s.logp_y))


def brier(s: Split) -> float:
    onehot = np.zeros_like(s.p)
    onehot[np.arange(s.n), s.y] = 1.0
    return float(np.mean(np.sum((s.p - onehot) ** 2, axis=1)))


def auroc_binary(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties: (R_pos - P(P+1)/2) / (P * Q)."""
    n_pos = int(np.sum(positive))
    n_neg = len(scores) - n_pos
    ranks = rankdata(scores, method="average")
    r_pos = float(np.sum(ranks[positive]))
    return (r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auroc(s: Split) -> float:
    """Macro one-vs-rest over classes with >= 1 positive and >= 1 negative; nan if none."""
    aucs = []
    for j in range(s.k):
        positive = s.y == j
        n_pos = int(positive.sum())
        if 0 < n_pos < s.n:
            aucs.append(auroc_binary(s.p[:, j], positive))
    return float(np.mean(aucs)) if aucs else math.nan


def precision_recall_f1(s: Split) -> tuple[float, float, float]:
    """Macro P/R/F1 over the sorted union of labels in y or yhat, 0 for a zero denominator."""
    labels = sorted(set(s.y.tolist()) | set(s.yhat.tolist()))
    ps, rs, fs = [], [], []
    for j in labels:
        tp = int(np.sum((s.yhat == j) & (s.y == j)))
        fp = int(np.sum((s.yhat == j) & (s.y != j)))
        fn = int(np.sum((s.yhat != j) & (s.y == j)))
        ps.append(tp / (tp + fp) if tp + fp > 0 else 0.0)
        rs.append(tp / (tp + fn) if tp + fn > 0 else 0.0)
        fs.append(2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else 0.0)
    return float(np.mean(ps)), float(np.mean(rs)), float(np.mean(fs))


def retention_curve(s: Split) -> np.ndarray:
    """acc_k, k = 0..N: keep the k most confident (ties by index), the rest count as correct."""
    n = s.n
    order = np.argsort(-s.c, kind="stable")   # descending confidence, ties by index ascending
    kept_correct = np.concatenate([[0.0], np.cumsum(s.correct[order])])
    k = np.arange(n + 1, dtype=np.float64)
    return (kept_correct + n - k) / n


def r_auc(s: Split) -> float:
    """sum_{k=1..N} (acc_{k-1} + acc_k) / 2 / N."""
    acc = retention_curve(s)
    return float(np.sum((acc[:-1] + acc[1:]) / 2.0 / s.n))


def reliability(s: Split, m: int, binning: str) -> list[dict]:
    e = bin_edges(m)
    count, sa, sc = _top_label_bins(s, m, binning)
    out = []
    for i in range(m):
        nonempty = count[i] > 0
        out.append({
            "lo": float(e[i]),
            "hi": float(e[i + 1]),
            "count": int(count[i]),
            "accuracy": float(sa[i] / count[i]) if nonempty else None,
            "confidence": float(sc[i] / count[i]) if nonempty else None,
        })
    return out


def order_inversions(c: np.ndarray, c2: np.ndarray) -> float:
    """Fraction of the N(N-1)/2 pairs i < j with (c_i - c_j)(c'_i - c'_j) < 0 (strictly
    discordant; ties are no inversion); 0 when N < 2.  O(N^2) brute force, one row at a time.
    The sign test uses signs, not the product, so tiny differences cannot underflow."""
    n = len(c)
    if len(c2) != n:
        raise ValueError("order_inversions: different N")
    if n < 2:
        return 0.0
    count = 0
    for i in range(n - 1):
        d1 = np.sign(c[i] - c[i + 1:])
        d2 = np.sign(c2[i] - c2[i + 1:])
        count += int(np.sum(d1 * d2 < 0))
    return count / (n * (n - 1) / 2)


def order_inversions_loop(c, c2) -> float:
    """Literal double loop of the definition (for tiny self-check inputs)."""
    n = len(c)
    if n < 2:
        return 0.0
    inv = 0
    for i in range(n):
        for j in range(i + 1, n):
            if (c[i] - c[j]) * (c2[i] - c2[j]) < 0:
                inv += 1
    return inv / (n * (n - 1) / 2)


def compute_metrics(s: Split, m: int, binning: str) -> dict:
    """All metric keys as Python floats/ints (may be nan/inf; see to_json_value)."""
    prec, rec, f1 = precision_recall_f1(s)
    return {
        "n": s.n,
        "k": s.k,
        "accuracy": accuracy(s),
        "ece": ece(s, m, binning),
        "mce": mce(s, m, binning),
        "adaece": adaece(s, m),
        "sce": sce(s, m, binning),
        "ace": ace(s, m),
        "nll": nll(s),
        "brier": brier(s),
        "auroc": auroc(s),
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "r_auc": r_auc(s),
    }


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
SEED_STEP = 0xA0761D6478BD642F
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


class SplitMix64:
    """The generator of docs/metrics.md with Python ints (exact)."""

    def __init__(self, seed: int, b: int):
        self.state = (seed + (b + 1) * SEED_STEP) & MASK64

    def next(self) -> int:
        self.state = (self.state + GOLDEN) & MASK64
        x = self.state
        x = ((x ^ (x >> 30)) * MIX1) & MASK64
        x = ((x ^ (x >> 27)) * MIX2) & MASK64
        return x ^ (x >> 31)


def bootstrap_indices_py(seed: int, b: int, n: int) -> list[int]:
    """index_i = ((next() >> 11) * N) >> 53 with Python ints (slow, exact)."""
    g = SplitMix64(seed, b)
    return [((g.next() >> 11) * n) >> 53 for _ in range(n)]


def bootstrap_indices(seed: int, b: int, n: int) -> np.ndarray:
    """Vectorised bootstrap_indices_py with numpy uint64 (arithmetic wraps mod 2^64).

    The i-th state (0-based) is state0 + (i + 1) * GOLDEN mod 2^64.  The final
    ((x >> 11) * N) >> 53 would overflow 64 bits for N >= 2^11, so with a = x >> 11 < 2^53,
    a = ah * 2^26 + al (al < 2^26, ah < 2^27):
        floor(a N / 2^53) = floor((ah N + floor(al N / 2^26)) / 2^27),
    all terms below 2^64 for N < 2^37.
    """
    if n >= 1 << 37:
        raise ValueError("N too large for the split multiply")
    u = np.uint64
    state0 = u((seed + (b + 1) * SEED_STEP) & MASK64)
    x = state0 + np.arange(1, n + 1, dtype=np.uint64) * u(GOLDEN)
    x = (x ^ (x >> u(30))) * u(MIX1)
    x = (x ^ (x >> u(27))) * u(MIX2)
    x = x ^ (x >> u(31))
    a = x >> u(11)
    ah = a >> u(26)
    al = a & u((1 << 26) - 1)
    nn = u(n)
    idx = (ah * nn + ((al * nn) >> u(26))) >> u(27)
    return idx.astype(np.int64)


def percentile_linear(values, q: float) -> float:
    """numpy's default ('linear') quantile: h = (B-1) q on the sorted values."""
    a = np.sort(np.asarray(values, dtype=np.float64))
    h = (len(a) - 1) * q
    lo = math.floor(h)
    if lo + 1 >= len(a):
        return float(a[lo])
    return float(a[lo] + (h - lo) * (a[lo + 1] - a[lo]))


def bootstrap_ci(s: Split, m: int, binning: str, resamples: int, seed: int, level: float):
    """{metric: {"low", "high"} or None}; non-finite (null) resample values are left out."""
    values = {key: [] for key in CI_KEYS}
    for b in range(resamples):
        r = compute_metrics(s.take(bootstrap_indices(seed, b, s.n)), m, binning)
        for key in CI_KEYS:
            v = r[key]
            if v is not None and math.isfinite(v):
                values[key].append(v)
    q_low = (1.0 - level) / 2.0
    q_high = 1.0 - (1.0 - level) / 2.0
    ci = {}
    for key in CI_KEYS:
        if values[key]:
            ci[key] = {"low": percentile_linear(values[key], q_low),
                       "high": percentile_linear(values[key], q_high)}
        else:
            ci[key] = None
    return ci


# --------------------------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------------------------

def to_json_value(v):
    """None for non-finite floats (the CLI prints null); ints and finite floats unchanged."""
    if v is None or isinstance(v, (bool, int, np.integer)):
        return None if v is None else int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def evaluate(path, split="test", bins=15, binning="right-closed", bootstrap=0, seed=0,
             level=0.95, reliability_bins=False, inversions_against=None) -> dict:
    """Same keys as `calibench eval PATH --split SPLIT --bins BINS --binning BINNING
    [--bootstrap B --seed S --level L] [--reliability] [--inversions-against OTHER]
    --format json`, with None where the CLI prints null."""
    if binning not in BINNINGS:
        raise ValueError(f"unknown binning {binning!r}")
    if bins < 1:
        raise ValueError("bins must be >= 1")
    s = load_split(path, split)
    out = {key: to_json_value(v) for key, v in compute_metrics(s, bins, binning).items()}
    if reliability_bins:
        out["reliability"] = reliability(s, bins, binning)
    if inversions_against is not None:
        other = load_split(inversions_against, split)
        out["order_inversions"] = order_inversions(s.c, other.c)
    if bootstrap > 0:
        out["bootstrap"] = {"resamples": int(bootstrap), "seed": int(seed), "level": float(level)}
        out["ci"] = bootstrap_ci(s, bins, binning, bootstrap, seed, level)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--split", default="test")
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--binning", default="right-closed", choices=BINNINGS)
    ap.add_argument("--bootstrap", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--reliability", action="store_true")
    ap.add_argument("--inversions-against", default=None)
    a = ap.parse_args(argv)
    res = evaluate(a.file, a.split, a.bins, a.binning, a.bootstrap, a.seed, a.level,
                   reliability_bins=a.reliability, inversions_against=a.inversions_against)
    json.dump(res, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
