"""Float64 NumPy reference for the estimators on the confidence order and the Brier
decomposition (docs/metrics.md, "Estimators on the confidence order"), written from their
definitions, independently of the C++ code:

- ks_error (Gupta et al., ICLR 2021, eq. 5): sort by top-label confidence ascending (stable);
  h_i = (1/N) sum_{j<=i} (correct_j - c_j); the maximum of |h_i|.
- ece_sweep (Roelofs et al., AISTATS 2022, "ECE_sweep" with equal-mass bins): array_split groups
  of the stable ascending order; for b = 1, 2, ... stop before the first b whose group accuracies
  are not monotone non-decreasing; sum_b n_b/N |A_b - C_b| at the last monotone b.
- aurc, eaurc (Geifman et al., ICLR 2019): order by confidence descending, ties by index;
  risk_k = errors among the first k / k; aurc = (1/N) sum_k risk_k; eaurc = aurc - (1/N)
  sum_k max(0, k - (N - E)) / k with E the number of errors.
- brier_reliability, brier_resolution, brier_uncertainty (Murphy 1973) of the top-label
  forecast c and outcome correct over the equal-width slots of the binning rule:
  sum_i n_i (C_i - A_i)^2 / N, sum_i n_i (A_i - Abar)^2 / N, Abar (1 - Abar), Abar = the binned
  fraction correct.
"""
from __future__ import annotations

import numpy as np

import calib_ref as ref

KEYS = ["ks_error", "ece_sweep", "aurc", "eaurc", "brier_reliability", "brier_resolution", "brier_uncertainty"]


def ks_error(c: np.ndarray, correct: np.ndarray) -> float:
    order = np.argsort(c, kind="stable")
    h = np.cumsum(correct[order] - c[order]) / len(c)
    return float(np.max(np.abs(h)))


def sweep_bins(c: np.ndarray, correct: np.ndarray) -> int:
    """The number of equal-mass groups ece_sweep uses (a literal loop over b)."""
    order = np.argsort(c, kind="stable")
    n = len(c)
    b = 1
    while b < n:
        acc = [correct[g].mean() for g in np.array_split(order, b + 1)]
        if any(acc[i + 1] < acc[i] for i in range(len(acc) - 1)):
            break
        b += 1
    return b


def ece_sweep(c: np.ndarray, correct: np.ndarray) -> float:
    order = np.argsort(c, kind="stable")
    n = len(c)
    total = 0.0
    for g in np.array_split(order, sweep_bins(c, correct)):
        total += len(g) / n * abs(correct[g].mean() - c[g].mean())
    return total


def aurc(c: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    n = len(c)
    order = np.argsort(-c, kind="stable")  # descending, ties by index ascending
    errors = np.cumsum(1.0 - correct[order])
    k = np.arange(1, n + 1, dtype=np.float64)
    area = float(np.mean(errors / k))
    e = errors[-1]
    optimal = float(np.mean(np.maximum(0.0, k - (n - e)) / k))
    return area, area - optimal


def brier_decomposition(s: ref.Split, m: int, binning: str) -> tuple[float, float, float]:
    count, sa, sc = ref._top_label_bins(s, m, binning)
    nonempty = count > 0
    a = sa[nonempty] / count[nonempty]
    cbar = sc[nonempty] / count[nonempty]
    base = sa.sum() / s.n
    rel = float(np.sum(count[nonempty] * (cbar - a) ** 2) / s.n)
    res = float(np.sum(count[nonempty] * (a - base) ** 2) / s.n)
    return rel, res, float(base * (1.0 - base))


def estimators(s: ref.Split, m: int = 15, binning: str = "right-closed") -> dict:
    c, correct = s.c, s.correct
    area, excess = aurc(c, correct)
    rel, res, unc = brier_decomposition(s, m, binning)
    return {"ks_error": ks_error(c, correct), "ece_sweep": ece_sweep(c, correct), "aurc": area, "eaurc": excess,
            "brier_reliability": rel, "brier_resolution": res, "brier_uncertainty": unc}
