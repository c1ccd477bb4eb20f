"""Independent float64 reference for the conventions of other libraries in `calibench eval`
(docs/metrics.md, section "Conventions of other libraries": --binning, --classwise-binning,
--adaptive, --classwise-reduction, --brier, --nll-clip, the extra estimators rmsce,
rmsce_debiased, ace_unweighted, smece, kde_ece, the presets and --compare-conventions).

Written from the formulas of docs/metrics.md with plain numpy (no calibration library is
called; numpy's own linspace / interp / quantile are used where the doc names them).  The default
metrics (accuracy, ace, auroc, precision, recall, f1, r_auc, the input handling) come from
calib_ref.py.  Readability first: bins are assigned with np.searchsorted or literal masks, the
kde_ece accuracy loop is the library's loop; N = 25,000 x K = 1,000 takes a few seconds.

Usage as a script (debugging):

    python3 tests/reference/conventions_ref.py FILE [--split test] [--bins 15]
        [--conventions PRESET] [--binning R] [--classwise-binning R] [--adaptive R]
        [--classwise-reduction mean|sum] [--brier sum|per-class-mean|top-label]
        [--nll-clip EPS] [--compare-conventions] [--reliability] [--bootstrap B --seed S]

prints the object `calibench eval FILE ... --format json` should print.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref as ref  # noqa: E402
import estimators_ref as est  # noqa: E402

# docs/metrics.md "calibench eval": metric keys of the JSON object, in contract order.
METRIC_KEYS = ref.METRIC_KEYS + ("rmsce", "rmsce_debiased", "ace_unweighted", "smece", "kde_ece") + tuple(est.KEYS)
CI_KEYS = METRIC_KEYS[2:]  # every metric except n and k gets a bootstrap interval

BINNING_RULES = ("right-closed", "guo-strict", "left-closed", "torchmetrics", "digitize-linspace")
ADAPTIVE_RULES = ("split", "interp", "quantile", "midpoint", "floor-count")
REDUCTIONS = ("mean", "sum")
BRIER_VARIANTS = ("sum", "per-class-mean", "top-label")


# --------------------------------------------------------------------------------------------
# Conventions and presets (docs/metrics.md "Presets")
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Conventions:
    preset: str = "calibench"
    binning: str = "right-closed"
    classwise_binning: str = "right-closed"
    adaptive: str = "split"
    classwise_reduction: str = "mean"
    brier: str = "sum"
    nll_clip: float | None = None

    def to_json(self) -> dict:
        """The `conventions` JSON object (nll_clip null when off)."""
        return dataclasses.asdict(self)


def _preset(name, binning, cw, adaptive, red, brier, clip):
    return Conventions(name, binning, cw, adaptive, red, brier, clip)


# The presets table of docs/metrics.md, in its order (also the --compare-conventions order).
PRESETS = {p.preset: p for p in (
    _preset("calibench", "right-closed", "right-closed", "split", "mean", "sum", None),
    _preset("torchmetrics", "torchmetrics", "torchmetrics", "split", "mean", "sum", None),
    _preset("netcal", "left-closed", "left-closed", "quantile", "mean", "sum", None),
    _preset("focal", "guo-strict", "guo-strict", "interp", "mean", "sum", None),
    _preset("guo", "guo-strict", "guo-strict", "split", "mean", "sum", 1e-15),
    _preset("dirichlet", "right-closed", "digitize-linspace", "split", "sum", "per-class-mean",
            1e-15),
    _preset("verified-calibration", "right-closed", "right-closed", "midpoint", "mean", "sum",
            None),
    _preset("mixnmatch", "right-closed", "right-closed", "floor-count", "mean", "sum", 1e-20),
)}
PRESET_ORDER = tuple(PRESETS)


def resolve(conventions=None, binning=None, classwise_binning=None, adaptive=None,
            classwise_reduction=None, brier=None, nll_clip=None) -> Conventions:
    """Conventions in effect for the given CLI options (None = option not given).

    docs/metrics.md: a preset sets several options, explicit options override only themselves,
    except that an explicit --binning also sets the classwise binning when the preset bins both
    the same way (every preset but dirichlet) and --classwise-binning is not given."""
    base = PRESETS[conventions or "calibench"]
    if binning is not None and binning not in BINNING_RULES:
        raise ValueError(f"unknown binning {binning!r}")
    if classwise_binning is not None and classwise_binning not in BINNING_RULES:
        raise ValueError(f"unknown binning {classwise_binning!r}")
    if adaptive is not None and adaptive not in ADAPTIVE_RULES:
        raise ValueError(f"unknown adaptive rule {adaptive!r}")
    if classwise_reduction is not None and classwise_reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {classwise_reduction!r}")
    if brier is not None and brier not in BRIER_VARIANTS:
        raise ValueError(f"unknown brier {brier!r}")
    if nll_clip is not None and not (0.0 < nll_clip < 0.5):
        raise ValueError("nll clip outside (0, 0.5)")
    cw = classwise_binning
    if cw is None:
        cw = binning if (binning is not None and base.classwise_binning == base.binning) else base.classwise_binning
    return dataclasses.replace(
        base,
        binning=binning or base.binning,
        classwise_binning=cw,
        adaptive=adaptive or base.adaptive,
        classwise_reduction=classwise_reduction or base.classwise_reduction,
        brier=brier or base.brier,
        nll_clip=nll_clip if nll_clip is not None else base.nll_clip,
    )


# --------------------------------------------------------------------------------------------
# Slots of the equal-width binning rules (docs/metrics.md "--binning RULE" table)
# --------------------------------------------------------------------------------------------

def slot_count(m: int, rule: str) -> int:
    """S: M slots, M + 1 under torchmetrics."""
    if rule not in BINNING_RULES:
        raise ValueError(f"unknown binning {rule!r}")
    return m + 1 if rule == "torchmetrics" else m


def linspace_edges(m: int) -> np.ndarray:
    """d_i of digitize-linspace: numpy linspace(0, 1, M) (d_i = i * (1 / (M-1)), d_{M-1} = 1)."""
    return np.linspace(0.0, 1.0, m)


def slot_index(v: np.ndarray, m: int, rule: str) -> np.ndarray:
    """0-based slot of every value (any shape); -1 = in no slot (guo-strict, v <= 0).

    right-closed      #{e_1..e_{M-1} : e <  v}       (doc line "right-closed"; verified_calibration)
    guo-strict        as right-closed, v <= 0 -> -1 (doc line "guo-strict"; Guo et al. lo < v <= hi)
    left-closed       #{e_1..e_{M-1} : e <= v}       (numpy histogram, netcal)
    torchmetrics      #{e_1..e_M : e <= v}, S = M+1  (torchmetrics bucketize(right=True) - 1)
    digitize-linspace #{d_1..d_{M-1} : d <= v}       (Dirichlet code: digitize(p, linspace) - 1)
    """
    v = np.asarray(v, dtype=np.float64)
    e = ref.bin_edges(m)
    if rule == "right-closed":
        return np.searchsorted(e[1:m], v, side="left")
    if rule == "guo-strict":
        b = np.searchsorted(e[1:m], v, side="left")
        return np.where(v <= 0.0, -1, b)
    if rule == "left-closed":
        return np.searchsorted(e[1:m], v, side="right")
    if rule == "torchmetrics":
        return np.searchsorted(e[1:m + 1], v, side="right")
    if rule == "digitize-linspace":
        d = linspace_edges(m)
        return np.searchsorted(d[1:m], v, side="right")  # M = 1: empty -> slot 0
    raise ValueError(f"unknown binning {rule!r}")


def slot_index_loop(v: float, m: int, rule: str) -> int:
    """Scalar, literal version of slot_index (the doc's table read word by word)."""
    e = [i / float(m) for i in range(m + 1)]
    if rule in ("right-closed", "guo-strict"):
        if rule == "guo-strict" and v <= 0.0:
            return -1
        return sum(1 for i in range(1, m) if e[i] < v)
    if rule == "left-closed":
        return sum(1 for i in range(1, m) if e[i] <= v)
    if rule == "torchmetrics":
        return sum(1 for i in range(1, m + 1) if e[i] <= v)
    if rule == "digitize-linspace":
        if m == 1:
            return 0
        step = 1.0 / (m - 1)
        d = [i * step for i in range(m - 1)] + [1.0]
        return sum(1 for i in range(1, m) if d[i] <= v)
    raise ValueError(rule)


def slot_edges(m: int, rule: str) -> list[tuple[float, float]]:
    """(lo, hi) of each slot for the reliability diagram.

    right-closed / guo-strict / left-closed: (e_i, e_{i+1}).  torchmetrics: those M and the
    last slot (1, 1) (doc: "whose last slot is [1, 1]").  digitize-linspace (doc: "M-1 bins of
    width 1/(M-1), plus v = 1 alone in slot M-1"): (d_i, d_{i+1}) for i < M-1 and (1, 1); for
    M = 1 the single slot is (0, 1) -- the doc does not list these edges explicitly."""
    e = ref.bin_edges(m)
    if rule in ("right-closed", "guo-strict", "left-closed"):
        return [(float(e[i]), float(e[i + 1])) for i in range(m)]
    if rule == "torchmetrics":
        return [(float(e[i]), float(e[i + 1])) for i in range(m)] + [(1.0, 1.0)]
    if rule == "digitize-linspace":
        if m == 1:
            return [(0.0, 1.0)]
        d = linspace_edges(m)
        return [(float(d[i]), float(d[i + 1])) for i in range(m - 1)] + [(1.0, 1.0)]
    raise ValueError(rule)


def slot_stats(v: np.ndarray, hit: np.ndarray, m: int, rule: str):
    """count, sum of hit, sum of v per slot (length S); values in no slot are dropped."""
    s = slot_count(m, rule)
    b = slot_index(v, m, rule)
    keep = b >= 0
    count = np.bincount(b[keep], minlength=s).astype(np.float64)
    sum_hit = np.bincount(b[keep], weights=hit[keep], minlength=s)
    sum_v = np.bincount(b[keep], weights=v[keep], minlength=s)
    return count, sum_hit, sum_v


# --------------------------------------------------------------------------------------------
# Top-label binned metrics over the S slots of --binning
# --------------------------------------------------------------------------------------------

def _gaps(s: ref.Split, m: int, rule: str):
    """(count, A, C) of the non-empty top-label slots, in slot order."""
    count, sa, sc = slot_stats(s.c, s.correct, m, rule)
    ne = count > 0
    return count[ne], sa[ne] / count[ne], sc[ne] / count[ne]


def ece(s: ref.Split, m: int, rule: str) -> float:
    """sum_i |B_i|/N |A_i - C_i|, N all samples (doc: "Every binned metric ... over the S slots")."""
    cnt, a, c = _gaps(s, m, rule)
    return float(sum(cnt[i] / s.n * abs(a[i] - c[i]) for i in range(len(cnt))))


def mce(s: ref.Split, m: int, rule: str) -> float:
    """max over non-empty slots of |A_i - C_i| (nan if none)."""
    cnt, a, c = _gaps(s, m, rule)
    return float(np.max(np.abs(a - c))) if len(cnt) else math.nan


def rmsce(s: ref.Split, m: int, rule: str) -> float:
    """sqrt(sum_i |B_i|/N (A_i - C_i)^2) (doc "Extra estimators"; torchmetrics norm="l2")."""
    cnt, a, c = _gaps(s, m, rule)
    return math.sqrt(float(np.sum(cnt / s.n * (a - c) ** 2)))


def rmsce_debiased(s: ref.Split, m: int, rule: str) -> float:
    """sqrt(max(0, sum_i |B_i|/N [(A_i - C_i)^2 - A_i (1 - A_i) / (|B_i| - 1)])), slots with
    |B_i| < 2 add 0 (doc "Extra estimators"; verified_calibration unbiased_l2_ce)."""
    cnt, a, c = _gaps(s, m, rule)
    total = 0.0
    for i in range(len(cnt)):
        if cnt[i] >= 2:
            total += cnt[i] / s.n * ((a[i] - c[i]) ** 2 - a[i] * (1.0 - a[i]) / (cnt[i] - 1.0))
    return math.sqrt(max(0.0, total))


def brier_decomposition(s: ref.Split, m: int, rule: str) -> tuple[float, float, float]:
    """Murphy's reliability, resolution, uncertainty over the slots of --binning
    (estimators_ref.brier_decomposition for every binning rule)."""
    count, sa, sc = slot_stats(s.c, s.correct, m, rule)
    ne = count > 0
    a, cbar = sa[ne] / count[ne], sc[ne] / count[ne]
    base = sa.sum() / s.n
    return (float(np.sum(count[ne] * (cbar - a) ** 2) / s.n), float(np.sum(count[ne] * (a - base) ** 2) / s.n),
            float(base * (1.0 - base)))


def ace_unweighted(s: ref.Split, m: int, rule: str) -> float:
    """mean over non-empty slots of |A_i - C_i| (doc "Extra estimators"; netcal ACE)."""
    cnt, a, c = _gaps(s, m, rule)
    return float(np.mean(np.abs(a - c))) if len(cnt) else math.nan


def reliability(s: ref.Split, m: int, rule: str) -> list[dict]:
    """S entries {lo, hi, count, accuracy, confidence} in slot order (null for empty slots)."""
    count, sa, sc = slot_stats(s.c, s.correct, m, rule)
    out = []
    for i, (lo, hi) in enumerate(slot_edges(m, rule)):
        ne = count[i] > 0
        out.append({"lo": lo, "hi": hi, "count": int(count[i]),
                    "accuracy": float(sa[i] / count[i]) if ne else None,
                    "confidence": float(sc[i] / count[i]) if ne else None})
    return out


# --------------------------------------------------------------------------------------------
# Classwise ECE (sce) with --classwise-binning and --classwise-reduction, and its under/over
# split per class and per slot (eval --classwise)
# --------------------------------------------------------------------------------------------

def classwise_terms(s: ref.Split, m: int, rule: str) -> np.ndarray:
    """[K, S] signed terms |B_ij|/N (A_ij - C_ij) over the S slots of `rule` applied to p_.j
    (doc "Metrics" sce row, with the slots of "--classwise-binning RULE"); 0 for empty slots."""
    n, k = s.p.shape
    sn = slot_count(m, rule)
    b = slot_index(s.p, m, rule)                        # [N, K], -1 = no slot
    keep = b >= 0
    flat = (b + sn * np.arange(k)[None, :])[keep]       # (class j, slot i) -> j*S + i
    is_j = (s.y[:, None] == np.arange(k)[None, :]).astype(np.float64)[keep]
    count = np.bincount(flat, minlength=k * sn).reshape(k, sn)
    sum_pos = np.bincount(flat, weights=is_j, minlength=k * sn).reshape(k, sn)
    sum_p = np.bincount(flat, weights=s.p[keep], minlength=k * sn).reshape(k, sn)
    ne = count > 0
    safe = np.where(ne, count, 1)
    a, c = sum_pos / safe, sum_p / safe
    return np.where(ne, count / n, 0.0) * (a - c)


def _reduce(values: np.ndarray, reduction: str, axis=None):
    """Mean over the K classes, or the sum (doc "`sum`: ... sum_j ECE_j")."""
    if reduction == "mean":
        return np.mean(values, axis=axis)
    if reduction == "sum":
        return np.sum(values, axis=axis)
    raise ValueError(f"unknown reduction {reduction!r}")


def sce(s: ref.Split, m: int, rule: str, reduction: str) -> float:
    """SCE = the reduction over classes of ECE_j = sum_i |B_ij|/N |A_ij - C_ij|."""
    return float(_reduce(np.sum(np.abs(classwise_terms(s, m, rule)), axis=1), reduction))


def classwise_split(s: ref.Split, m: int, rule: str, reduction: str) -> dict:
    """`eval --classwise` (docs/metrics.md "Classwise breakdown"): per class j its count, accuracy
    (recall; null without samples), ECE_j and ECE_j^under / ECE_j^over (the class-based TS
    paper's equations 3-5); per slot i the under / over terms reduced over classes as sce is."""
    t = classwise_terms(s, m, rule)
    under, over = np.maximum(0.0, t), np.maximum(0.0, -t)
    classes = []
    for j in range(s.k):
        members = s.y == j
        count = int(np.sum(members))
        accuracy = float(np.mean(s.yhat[members] == j)) if count else None
        classes.append({"class": j, "count": count, "accuracy": accuracy,
                        "ece": float(np.sum(np.abs(t[j]))), "under": float(np.sum(under[j])),
                        "over": float(np.sum(over[j]))})
    bin_under, bin_over = _reduce(under, reduction, axis=0), _reduce(over, reduction, axis=0)
    bins = [{"lo": lo, "hi": hi, "under": float(bin_under[i]), "over": float(bin_over[i])}
            for i, (lo, hi) in enumerate(slot_edges(m, rule))]
    return {"classes": classes, "bins": bins}

# --------------------------------------------------------------------------------------------
# Adaptive (equal-mass) adaece rules (docs/metrics.md "--adaptive RULE" table)
# --------------------------------------------------------------------------------------------

def _weighted_over_bins(c, correct, n, members) -> float:
    """sum over non-empty bins of n_b/N |A_b - C_b|; `members` = boolean masks (one per bin)."""
    total = 0.0
    for mask in members:
        nb = int(np.sum(mask))
        if nb > 0:
            total += nb / n * abs(float(np.mean(correct[mask])) - float(np.mean(c[mask])))
    return total


def adaptive_edges(c: np.ndarray, m: int, rule: str) -> list[float]:
    """The bin edges the rule builds (used by adaece and by the self-checks)."""
    s = np.sort(c, kind="stable")
    n = len(s)
    if rule == "interp":
        # focal_calibration histedges_equalN: interp(linspace(0, N, M+1), arange(N), sort(c))
        x = np.linspace(0.0, n, m + 1)
        return [float(v) for v in np.interp(x, np.arange(n, dtype=np.float64), s)]
    if rule == "quantile":
        # netcal: numpy quantile at j * (1/M) (numpy linspace(0, 1, M+1)), then q_0 = 0, q_M = 1
        q = [float(np.quantile(c, j * (1.0 / m), method="linear")) for j in range(m + 1)]
        q[0], q[m] = 0.0, 1.0
        return q
    if rule == "midpoint":
        # verified_calibration get_equal_bins: M' = min(M, N) array_split groups of sorted c,
        # midpoints between groups, then 1.0, duplicates removed (sorted(set(...)))
        groups = np.array_split(s, min(m, n))
        ups = [(float(groups[g][-1]) + float(groups[g + 1][0])) / 2.0 for g in range(len(groups) - 1)]
        return sorted(set(ups + [1.0]))
    if rule == "floor-count":
        # Mix-n-Match ece_hist_binary: w = floor(N/M), e_{i+1} = s[min((i+1) w, N-1)], e_0 = 0, e_M = 1
        w = n // m
        e = [0.0] + [float(s[min((i + 1) * w, n - 1)]) for i in range(m - 1)] + [1.0]
        return e
    raise ValueError(f"no edges for adaptive rule {rule!r}")


def adaece(s: ref.Split, m: int, rule: str) -> float:
    c, correct, n = s.c, s.correct, s.n
    if rule == "split":
        return ref.adaece(s, m)  # calibench: unweighted mean over array_split groups
    e = adaptive_edges(c, m, rule)
    if rule in ("interp", "floor-count"):
        # bin j holds e_j < c <= e_{j+1} (torch gt/le masks in focal_calibration / Mix-n-Match)
        members = [(c > e[j]) & (c <= e[j + 1]) for j in range(m)]
    elif rule == "quantile":
        # numpy histogram membership: bin = #{q_1..q_{M-1} : q <= c}
        b = np.searchsorted(np.array(e[1:m]), c, side="right")
        members = [b == j for j in range(m)]
    elif rule == "midpoint":
        # verified_calibration fast_bin: searchsorted(bins, c) (left): #{upper edges < c}
        b = np.searchsorted(np.array(e), c, side="left")
        members = [b == j for j in range(len(e))]
    else:
        raise ValueError(f"unknown adaptive rule {rule!r}")
    return _weighted_over_bins(c, correct, n, members)


# --------------------------------------------------------------------------------------------
# Brier and NLL variants
# --------------------------------------------------------------------------------------------

def brier(s: ref.Split, variant: str) -> float:
    """sum (default) | per-class-mean (= sum / K) | top-label mean (c - correct)^2."""
    if variant == "sum":
        return ref.brier(s)
    if variant == "per-class-mean":
        return ref.brier(s) / s.k
    if variant == "top-label":
        return float(np.mean((s.c - s.correct) ** 2))
    raise ValueError(f"unknown brier {variant!r}")


def nll(s: ref.Split, clip: float | None) -> float:
    """-mean log(min(max(p_y, EPS), 1 - EPS)); unclipped: -mean log p_y.

    Clipping is monotone, so it is applied in the log domain to log p_y (exact for logits
    whose p_y underflows): log(min(max(p, e), 1-e)) = min(max(log p, log e), log(1-e))."""
    if clip is None:
        return ref.nll(s)
    lo, hi = math.log(clip), math.log(1.0 - clip)
    return float(-np.mean(np.minimum(np.maximum(s.logp_y, lo), hi)))


# --------------------------------------------------------------------------------------------
# smece: relplot 1.0.3 smECE (reflected Gaussian kernel), as docs/metrics.md states it
# --------------------------------------------------------------------------------------------

SMECE_EPS = 0.001    # relplot smECE(eps=0.001)
SMECE_DENS_EPS = 1e-4  # relplot BaseKernelMixin.smooth(eps=0.0001)


def smooth_grid_size(sigma: float) -> int:
    """G = max(2000, round(20 / sigma)) // 2 + 1 (relplot GaussianKernel.apply)."""
    return max(2000, round(20.0 / sigma)) // 2 + 1


def reflected_smooth(c: np.ndarray, w: np.ndarray, sigma: float, t: np.ndarray) -> np.ndarray:
    """R(w) of the doc: linear spreading onto G grid points, reflected Gaussian convolution,
    linear interpolation at the mesh t (relplot smooth_round_to_grid, ReflectedGaussianKernel.
    convolve, interpolate)."""
    g = smooth_grid_size(sigma)
    values = np.zeros(g)
    k = (c * (g - 1)).astype(np.int64).clip(0, g - 2)
    f = c * (g - 1) - k
    np.add.at(values, k, (1.0 - f) * w)
    np.add.at(values, k + 1, f * w)
    grid = np.linspace(0.0, 1.0, g)
    ker = np.exp(-(grid - 0.5) * (grid - 0.5) / (2.0 * sigma ** 2)) / (np.sqrt(2.0 * np.pi) * sigma)
    ext = np.concatenate([values[::-1][:-1], values, values[::-1][1:]])  # values[G-1..1], values, values[G-2..0]
    smoothed = np.convolve(ext, ker, "valid")[g // 2: g // 2 + g]
    # interpolate(t, smoothed)
    h = 1.0 / (g - 1)
    idx = (t * (g - 1)).astype(np.int64).clip(0, g - 2)
    resid = (t - idx * h) / h
    return smoothed[idx] * (1.0 - resid) + smoothed[idx + 1] * resid


def smooth_ece(c: np.ndarray, correct: np.ndarray, sigma: float) -> float:
    """smooth_ece(sigma): T = max(round(10/sigma), 200) mesh points, dens = R(1) + 1e-4,
    r = R(c - correct) / dens, sum |r| dens / sum dens (relplot metrics.smooth_ece)."""
    c = np.asarray(c, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    t = np.linspace(0.0, 1.0, max(round(10.0 / sigma), 200))
    num = reflected_smooth(c, c - correct, sigma, t)
    dens = reflected_smooth(c, np.ones_like(c), sigma, t) + SMECE_DENS_EPS
    r = num / dens
    return float(np.sum(np.abs(r) * dens) / np.sum(dens))


def smece_sigma(c: np.ndarray, correct: np.ndarray) -> float:
    """Bandwidth of relplot smECE: 1 if pass(1), else 10 bisection steps on [0, 1] keeping the
    failing end hi (relplot search_param returns `start`, the failing end)."""
    def passes(x):
        return x < SMECE_EPS or x < smooth_ece(c, correct, x)

    if passes(1.0):
        return 1.0
    hi, lo = 1.0, 0.0
    for _ in range(10):
        mid = (hi + lo) / 2.0
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return hi


def smece(c: np.ndarray, correct: np.ndarray) -> float:
    return smooth_ece(c, correct, smece_sigma(c, correct))


# --------------------------------------------------------------------------------------------
# kde_ece: Mix-n-Match ece_kde_binary (top-label, order 1) with KDEpy FFTKDE semantics
# --------------------------------------------------------------------------------------------

KDE_GRID = np.linspace(-0.6, 1.6, num=2 ** 14)  # Mix-n-Match x_int


def mirror(d: np.ndarray) -> np.ndarray:
    """Mix-n-Match mirror_1d(d, 0, 1): (-d for d < 0.5), d, (2 - d for d >= 0.5)."""
    return np.concatenate([2 * 0.0 - d[d < 0.5], d, 2 * 1.0 - d[d >= 0.5]])


def triweight_kde(data: np.ndarray, bw: float, x: np.ndarray = KDE_GRID) -> np.ndarray:
    """KDEpy FFTKDE(bw, 'triweight').fit(data).evaluate(x) on the equidistant grid x:
    linear binning (weights 1/len(data)), kernel 35/32 (1 - (u/(3bw))^2)^3 / (3bw) sampled at
    m*dx for |m| <= L = min(floor(3bw/dx), G), convolution centred like scipy mode="same"."""
    g = len(x)
    x0 = float(x[0])
    dx = (float(x[-1]) - x0) / (g - 1)
    t = (data - x0) / dx
    i = np.floor(t).astype(np.int64)
    f = t - i
    binned = np.zeros(g + 1)
    np.add.at(binned, i, 1.0 - f)
    np.add.at(binned, i + 1, f)
    binned = binned[:-1] / len(data)
    support = 3.0 * bw
    big_l = int(min(math.floor(support / dx), g))
    u = np.abs(np.arange(-big_l, big_l + 1) * dx) / support
    ker = np.where(u < 1.0, 35.0 / 32.0 * np.maximum(0.0, 1.0 - u * u) ** 3 / support, 0.0)
    full = np.convolve(binned, ker, "full")   # length G + 2L
    return full[big_l: big_l + g]              # scipy.signal.convolve(..., mode="same")


def kde_bandwidth(c: np.ndarray, correct: np.ndarray) -> float:
    """std(c | correct) (2N)^(-1/5), population std; 0 when all correct confidences are equal
    (exactly: np.std of equal values can leave rounding noise); nan when none is correct."""
    d = c[correct == 1]
    if len(d) == 0:
        return math.nan
    if np.all(d == d[0]):
        return 0.0
    return float(np.std(d)) * (len(c) * 2) ** -0.2


def kde_ece(c: np.ndarray, correct: np.ndarray) -> float:
    """Mix-n-Match ece_kde_binary(p, label, order=1) on the pairs (c, correct)."""
    c = np.asarray(c, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bw = kde_bandwidth(c, correct)
    if not (bw > 0):  # nan (none correct) or 0
        return math.nan
    x = KDE_GRID
    pp1 = triweight_kde(mirror(c[correct == 1]), bw)
    pp1[x <= 0.0] = 0
    pp1[x >= 1.0] = 0
    pp1 = pp1 * 2
    pp2 = triweight_kde(mirror(c), bw)
    pp2[x <= 0.0] = 0
    pp2[x >= 1.0] = 0
    pp2 = pp2 * 2
    perc = float(np.mean(correct))
    integral = np.zeros(x.shape)
    for i in range(x.shape[0]):  # the library loop; argmin |x - x_i| is i on this grid
        conf = x[i]
        if max(pp1[i], pp2[i]) > 1e-6:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.float64(perc) * pp1[i] / pp2[i]
            accu = min(ratio, 1.0)
            if not np.isnan(accu):
                integral[i] = abs(conf - accu) * pp2[i]
        elif i > 1:
            integral[i] = integral[i - 1]
    ind = (x >= 0.0) & (x <= 1.0)
    return trapezoid(integral[ind], x[ind]) / trapezoid(pp2[ind], x[ind])


def trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """np.trapz(y, x) = sum (x_{i+1} - x_i) (y_i + y_{i+1}) / 2."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


# --------------------------------------------------------------------------------------------
# All metrics under a set of conventions
# --------------------------------------------------------------------------------------------

def independent_metrics(s: ref.Split, m: int) -> dict:
    """The keys no convention option changes: accuracy, ace (always `split` groups), auroc,
    precision, recall, f1, r_auc (calib_ref) and the top-label smece, kde_ece."""
    out = {"n": s.n, "k": s.k, "accuracy": ref.accuracy(s), "ace": ref.ace(s, m),
           "auroc": ref.auroc(s), "r_auc": ref.r_auc(s),
           "smece": smece(s.c, s.correct), "kde_ece": kde_ece(s.c, s.correct)}
    out["precision"], out["recall"], out["f1"] = ref.precision_recall_f1(s)
    out.update(order_estimators(s))
    return out


def order_estimators(s: ref.Split) -> dict:
    """ks_error, ece_sweep, aurc, eaurc (estimators_ref; no convention changes them)."""
    out = {"ks_error": est.ks_error(s.c, s.correct), "ece_sweep": est.ece_sweep(s.c, s.correct)}
    out["aurc"], out["eaurc"] = est.aurc(s.c, s.correct)
    return out


def compute_metrics(s: ref.Split, m: int, conv: Conventions, top_label_smooth=None,
                    independent=None) -> dict:
    """Every metric key of the JSON object (floats may be nan/inf).  `independent` may carry
    independent_metrics(s, m) computed once; `top_label_smooth` = (smece, kde_ece) likewise
    (they depend on (c, correct) only, not on conventions or M)."""
    if independent is None:
        if top_label_smooth is None:
            independent = independent_metrics(s, m)
        else:
            out = {"n": s.n, "k": s.k, "accuracy": ref.accuracy(s), "ace": ref.ace(s, m),
                   "auroc": ref.auroc(s), "r_auc": ref.r_auc(s)}
            out["precision"], out["recall"], out["f1"] = ref.precision_recall_f1(s)
            out["smece"], out["kde_ece"] = top_label_smooth
            out.update(order_estimators(s))
            independent = out
    out = dict(independent)
    out["ece"] = ece(s, m, conv.binning)
    out["mce"] = mce(s, m, conv.binning)
    out["adaece"] = adaece(s, m, conv.adaptive)
    out["sce"] = sce(s, m, conv.classwise_binning, conv.classwise_reduction)
    out["nll"] = nll(s, conv.nll_clip)
    out["brier"] = brier(s, conv.brier)
    out["rmsce"] = rmsce(s, m, conv.binning)
    out["rmsce_debiased"] = rmsce_debiased(s, m, conv.binning)
    out["ace_unweighted"] = ace_unweighted(s, m, conv.binning)
    out["brier_reliability"], out["brier_resolution"], out["brier_uncertainty"] = brier_decomposition(
        s, m, conv.binning)
    return {key: out[key] for key in METRIC_KEYS}


def compare_conventions(s: ref.Split, m: int) -> list[dict]:
    """--compare-conventions: ece, adaece, sce, brier under every preset, preset order."""
    rows = []
    for name in PRESET_ORDER:
        p = PRESETS[name]
        rows.append({"preset": name, "ece": ece(s, m, p.binning), "adaece": adaece(s, m, p.adaptive),
                     "sce": sce(s, m, p.classwise_binning, p.classwise_reduction),
                     "brier": brier(s, p.brier)})
    return rows


def bootstrap_ci(s: ref.Split, m: int, conv: Conventions, resamples: int, seed: int,
                 level: float) -> dict:
    """Percentile intervals of every metric except n, k (docs/metrics.md "Bootstrap intervals")."""
    values = {key: [] for key in CI_KEYS}
    for b in range(resamples):
        r = compute_metrics(s.take(ref.bootstrap_indices(seed, b, s.n)), m, conv)
        for key in CI_KEYS:
            v = r[key]
            if v is not None and math.isfinite(v):
                values[key].append(v)
    q_low, q_high = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0
    return {key: ({"low": ref.percentile_linear(values[key], q_low),
                   "high": ref.percentile_linear(values[key], q_high)} if values[key] else None)
            for key in CI_KEYS}


def evaluate(path, split="test", bins=15, conv: Conventions | None = None, reliability_bins=False,
             compare=False, bootstrap=0, seed=0, level=0.95, classwise=False) -> dict:
    """What `calibench eval PATH --split SPLIT --bins BINS <conventions options> [--classwise]
    --format json` prints, with None where the CLI prints null."""
    conv = conv or PRESETS["calibench"]
    s = ref.load_split(path, split)
    return evaluate_split(s, bins, conv, reliability_bins, compare, bootstrap, seed, level,
                          classwise=classwise)


def evaluate_split(s: ref.Split, bins=15, conv: Conventions | None = None, reliability_bins=False,
                   compare=False, bootstrap=0, seed=0, level=0.95, independent=None,
                   classwise=False) -> dict:
    """evaluate() on a loaded split; `independent` = independent_metrics(s, bins) if known."""
    conv = conv or PRESETS["calibench"]
    metrics = compute_metrics(s, bins, conv, independent=independent)
    out = {key: ref.to_json_value(v) for key, v in metrics.items()}
    out["conventions"] = conv.to_json()
    if reliability_bins:
        out["reliability"] = reliability(s, bins, conv.binning)
    if classwise:
        out["classwise"] = classwise_split(s, bins, conv.classwise_binning, conv.classwise_reduction)
    if compare:
        out["compare_conventions"] = [
            {k: (v if k == "preset" else ref.to_json_value(v)) for k, v in row.items()}
            for row in compare_conventions(s, bins)]
    if bootstrap > 0:
        out["bootstrap"] = {"resamples": int(bootstrap), "seed": int(seed), "level": float(level)}
        out["ci"] = bootstrap_ci(s, bins, conv, bootstrap, seed, level)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--split", default="test")
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--conventions", choices=PRESET_ORDER)
    ap.add_argument("--binning", choices=BINNING_RULES)
    ap.add_argument("--classwise-binning", choices=BINNING_RULES)
    ap.add_argument("--adaptive", choices=ADAPTIVE_RULES)
    ap.add_argument("--classwise-reduction", choices=REDUCTIONS)
    ap.add_argument("--brier", choices=BRIER_VARIANTS)
    ap.add_argument("--nll-clip", type=float)
    ap.add_argument("--compare-conventions", action="store_true")
    ap.add_argument("--reliability", action="store_true")
    ap.add_argument("--classwise", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", type=float, default=0.95)
    a = ap.parse_args(argv)
    conv = resolve(a.conventions, a.binning, a.classwise_binning, a.adaptive,
                   a.classwise_reduction, a.brier, a.nll_clip)
    res = evaluate(a.file, a.split, a.bins, conv, a.reliability, a.compare_conventions,
                   a.bootstrap, a.seed, a.level, classwise=a.classwise)
    json.dump(res, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
