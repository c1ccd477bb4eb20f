"""Float64 reference for the squared kernel calibration error (SKCE) of Widmann, Lindsten and
Zachariah (NeurIPS 2019, "Calibration tests in multi-class classification: a unifying
framework") and its calibration tests, written from the authors' code without calibench's:

- devmotion/CalibrationErrors.jl 8dfa994 (v0.6.4), src/skce.jl: `unbiasedskce`, `biasedskce`,
  the block estimator `(skce::SKCE)(...)`, `unsafe_skce_eval_targets(::WhiteKernel, ...)`;
- devmotion/CalibrationTests.jl fa3fcac (v0.6.3), src/skce/asymptotic.jl
  (`estimate_statistic_kernelmatrix`, `bootstrap_ccdf`), src/skce/asymptotic_block.jl,
  src/skce/distribution_free.jl;
- devmotion/CalibrationPaper a164e8b, src/kernels.jl (`median_TV_kernel`): the paper's kernel.

Predictions p_i (rows of an [N, K] matrix), labels y_i in 0..K-1. The paper's kernel is
k((p, y), (p', y')) = exp(-d(p, p') / nu) * [y == y'] (matrix form exp(-d/nu) I_K), d the total
variation distance d(p, p') = sum_k |p_k - p'_k| / 2, nu the median heuristic: the median of the
full N x N matrix of d(p_i, p_j) (diagonal zeros and both triangles included), as
`median_TV_distance` computes it. For this kernel the SKCE term is

    h_ij = exp(-d(p_i, p_j) / nu) * ([y_i == y_j] - p_i[y_j] - p_j[y_i] + <p_i, p_j>)
         = (e_{y_i} - p_i)^T k(p_i, p_j) (e_{y_j} - p_j)

    SKCE_uq = (2 / (N (N - 1))) sum_{i<j} h_ij          (unbiased, default of SKCE(kernel))
    SKCE_b  = (1 / N^2) sum_{i,j} h_ij                  (biased, unbiased=false)
    SKCE_m  = mean over b < floor(N/m) of SKCE_uq of rows b*m .. b*m+m-1   (blocksize=m)

p-values: the asymptotic SKCE test (bootstrap of the degenerate U-statistic, Arcones & Gine
1992) with statistic  n/(n-1) SKCE_uq - SKCE_b  and, per resample with counts C,
T' = (1/n^2) sum_i C_i sum_j ((n/(n-1)) (C_j - [i==j]) - 2) h_ij;  p = #{T' >= statistic} / B.
The authors draw resamples from Julia's global RNG; here resample b uses calibench's SplitMix64
stream b of the seed (docs/metrics.md, calib_ref.bootstrap_indices). Also the block z-test
(normal tail of the mean of block estimates) and the distribution-free (Hoeffding) bound.
"""
from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from calib_ref import bootstrap_indices  # noqa: E402  (calibench's SplitMix64 resampling)

_CHUNK_ELEMS = 1 << 21  # rows x N x K doubles per temporary (16 MiB)
_DIRECT_PAIRS = 1 << 22  # up to this many pairs the median selects from all of them at once


def _inputs(probs, labels=None):
    p = np.ascontiguousarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError("probs must be [N, K]")
    if labels is None:
        return p, None
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (p.shape[0],) or (y.size and (y.min() < 0 or y.max() >= p.shape[1])):
        raise ValueError("labels must be [N] in 0..K-1")
    return p, y


def _rows_per_chunk(n: int, k: int) -> int:
    per_row = n * (k if k > 64 else 4)  # distances() holds [rows, N, K] only for K > 64
    return max(1, min(n, _CHUNK_ELEMS // max(1, per_row)))


def distances(a: np.ndarray, b: np.ndarray, metric: str = "tv") -> np.ndarray:
    """[len(a), len(b)] distances: tv = sum |a - b| / 2 (Distances.jl TotalVariation),
    euclidean = sqrt(sum (a - b)^2)."""
    if metric not in ("tv", "euclidean"):
        raise ValueError(f"unknown metric {metric!r}")
    k = a.shape[1]
    if k > 64:
        diff = a[:, None, :] - b[None, :, :]
        s = np.abs(diff).sum(axis=2) if metric == "tv" else (diff * diff).sum(axis=2)
    else:  # sum over classes in order 0..K-1, one [len(a), len(b)] plane at a time
        bt = np.ascontiguousarray(b.T)
        s = np.zeros((a.shape[0], b.shape[0]))
        t = np.empty_like(s)
        for c in range(k):
            np.subtract(a[:, c, None], bt[c][None, :], out=t)
            if metric == "tv":
                np.abs(t, out=t)
            else:
                np.multiply(t, t, out=t)
            s += t
    return s / 2 if metric == "tv" else np.sqrt(s)


def _upper_chunks(p: np.ndarray, metric: str):
    """Yield the distances d(p_i, p_j), i < j, row chunk by row chunk (1-D arrays)."""
    n, k = p.shape
    step = _rows_per_chunk(n, k)
    for a in range(0, n - 1, step):
        b = min(n, a + step)
        sq = distances(p[a:b], p[a:b], metric)
        yield sq[np.triu_indices(b - a, 1)]  # i < j inside the chunk
        if b < n:
            yield distances(p[a:b], p[b:], metric).ravel()  # j >= b > i


def _order_stats_upper(p: np.ndarray, metric: str, ranks: list[int]) -> list[float]:
    """Exact order statistics (0-based ranks) of the N(N-1)/2 upper-triangle distances in two
    passes and O(N K) memory: pass 1 counts the values per bin of the top 20 bits of their
    float64 pattern (monotone for values >= 0), pass 2 keeps the values in the bins that hold
    the ranks and selects there. Up to _DIRECT_PAIRS pairs: one pass and np.partition."""
    n = p.shape[0]
    if n * (n - 1) // 2 <= _DIRECT_PAIRS:
        d = np.concatenate(list(_upper_chunks(p, metric)))
        return [float(v) for v in np.partition(d, ranks)[ranks]]
    shift = np.uint64(44)
    counts = np.zeros(1 << 20, dtype=np.int64)
    for d in _upper_chunks(p, metric):
        counts += np.bincount((d.view(np.uint64) >> shift).astype(np.int64), minlength=1 << 20)
    cum = np.cumsum(counts)
    bins = [int(np.searchsorted(cum, r, side="right")) for r in ranks]
    keep = {bb: [] for bb in bins}
    for d in _upper_chunks(p, metric):
        key = (d.view(np.uint64) >> shift).astype(np.int64)
        for bb in keep:
            keep[bb].append(d[key == bb])
    out = []
    for r, bb in zip(ranks, bins):
        vals = np.sort(np.concatenate(keep[bb]))
        below = int(cum[bb - 1]) if bb > 0 else 0
        out.append(float(vals[r - below]))
    return out


def median_distance(probs, metric: str = "tv", pairs: str = "all") -> float:
    """Median of the pairwise distances. pairs="all": the N^2 entries of the full matrix, its N
    diagonal zeros included (CalibrationPaper src/kernels.jl `median_TV_distance`, Statistics.
    median: the mean of the two middle values when the count is even); pairs="upper": the
    N(N-1)/2 pairs i < j (the CalibrationErrors.jl classification example's rule)."""
    p, _ = _inputs(probs)
    n = p.shape[0]
    if pairs == "all":
        m = n * n
        # sorted full list = [0] * N + [u_0, u_0, u_1, u_1, ...] (u: sorted upper values >= 0)
        want = [(m - 1) // 2, m // 2]
        need = sorted({(r - n) // 2 for r in want if r >= n})
        stats = dict(zip(need, _order_stats_upper(p, metric, need))) if need else {}
        vals = [0.0 if r < n else stats[(r - n) // 2] for r in want]
    elif pairs == "upper":
        m = n * (n - 1) // 2
        if m == 0:
            return math.nan
        want = [(m - 1) // 2, m // 2]
        vals = _order_stats_upper(p, metric, sorted(set(want)))
        vals = vals * 2 if len(vals) == 1 else vals
    else:
        raise ValueError(f"unknown pairs {pairs!r}")
    return vals[0] / 2 + vals[1] / 2


def mean_distance(probs, metric: str = "tv", pairs: str = "all") -> float:
    p, _ = _inputs(probs)
    n = p.shape[0]
    total = math.fsum(float(d.sum()) for d in _upper_chunks(p, metric))
    cnt = n * n if pairs == "all" else n * (n - 1) // 2
    return (2 * total if pairs == "all" else total) / cnt if cnt else math.nan


def median_bandwidth(probs, metric: str = "tv", pairs: str = "all") -> float:
    """The paper's median heuristic nu (= median_distance), with calibench's fallback where the
    authors have none (their 1/nu would be inf and exp(-inf * 0) NaN): a zero median is
    replaced by the mean distance over the same entries, and a zero mean (all rows identical,
    every kernel value exp(0) = 1 whatever nu) or N < 2 by 1."""
    nu = median_distance(probs, metric, pairs)
    if not nu > 0:
        nu = mean_distance(probs, metric, pairs)
    if not nu > 0:
        nu = 1.0
    return nu


def kernel_values(d: np.ndarray, bandwidth: float, kernel: str = "laplacian") -> np.ndarray:
    """laplacian (KernelFunctions ExponentialKernel): exp(-d / nu), computed as exp(-(1/nu) d)
    like CalibrationErrors 0.3's ExponentialKernel(gamma = inv(nu)); gaussian
    (SqExponentialKernel with length scale nu): exp(-d^2 / (2 nu^2))."""
    if kernel == "laplacian":
        return np.exp(-(1.0 / bandwidth) * d)
    if kernel == "gaussian":
        return np.exp(-(d * d) / (2.0 * bandwidth * bandwidth))
    raise ValueError(f"unknown kernel {kernel!r}")


def h_block(pi, yi, pj, yj, bandwidth, metric="tv", kernel="laplacian") -> np.ndarray:
    """h(i, j) for the rows i of (pi, yi) and j of (pj, yj): kappa(p_i, p_j) times the white
    kernel term [y_i == y_j] - p_i[y_j] - p_j[y_i] + <p_i, p_j> (src/skce.jl:490)."""
    kap = kernel_values(distances(pi, pj, metric), bandwidth, kernel)
    white = (yi[:, None] == yj[None, :]) - pi[:, yj] - pj[:, yi].T + pi @ pj.T
    return kap * white


def _resolve(p, bandwidth, metric, pairs):
    return median_bandwidth(p, metric, pairs) if bandwidth is None else float(bandwidth)


def _sums(p, y, nu, metric, kernel):
    """(sum over i < j of h_ij, sum over i of h_ii), chunked over rows."""
    n, k = p.shape
    step = _rows_per_chunk(n, k)
    upper, diag = [], []
    for a in range(0, n, step):
        b = min(n, a + step)
        sq = h_block(p[a:b], y[a:b], p[a:b], y[a:b], nu, metric, kernel)
        upper.append(float(np.triu(sq, 1).sum()))  # i < j inside the chunk
        diag.append(float(np.trace(sq)))
        if b < n:
            upper.append(float(h_block(p[a:b], y[a:b], p[b:], y[b:], nu, metric, kernel).sum()))
    return math.fsum(upper), math.fsum(diag)


def skce_unbiased(probs, labels, bandwidth=None, metric="tv", kernel="laplacian", pairs="all"):
    """SKCE_uq = sum_{i<j} h_ij / (N (N-1) / 2); NaN for N < 2. bandwidth None: the median
    heuristic (median_bandwidth)."""
    p, y = _inputs(probs, labels)
    n = p.shape[0]
    if n < 2:
        return math.nan
    nu = _resolve(p, bandwidth, metric, pairs)
    upper, _ = _sums(p, y, nu, metric, kernel)
    return upper / (n * (n - 1) / 2)


def skce_biased(probs, labels, bandwidth=None, metric="tv", kernel="laplacian", pairs="all"):
    """SKCE_b = (2 sum_{i<j} h_ij + sum_i h_ii) / N^2; NaN for N < 1."""
    p, y = _inputs(probs, labels)
    n = p.shape[0]
    if n < 1:
        return math.nan
    nu = _resolve(p, bandwidth, metric, pairs)
    upper, diag = _sums(p, y, nu, metric, kernel)
    return (2 * upper + diag) / (n * n)


def block_estimates(probs, labels, blocksize=2, bandwidth=None, metric="tv", kernel="laplacian",
                    pairs="all") -> np.ndarray:
    """SKCE_uq of each complete block of `blocksize` consecutive rows (the last incomplete block
    is dropped), as SKCE(kernel; blocksize=m) averages them. One bandwidth for all blocks."""
    p, y = _inputs(probs, labels)
    n = p.shape[0]
    if blocksize < 2:
        raise ValueError("blocksize must be >= 2")
    nb = n // blocksize
    nu = _resolve(p, bandwidth, metric, pairs)
    out = np.empty(nb)
    for b in range(nb):
        s = slice(b * blocksize, (b + 1) * blocksize)
        u, _ = _sums(p[s], y[s], nu, metric, kernel)
        out[b] = u / (blocksize * (blocksize - 1) / 2)
    return out


def skce_block(probs, labels, blocksize=2, bandwidth=None, metric="tv", kernel="laplacian",
               pairs="all") -> float:
    """The block (blocksize 2: linear) unbiased estimator; NaN when N < blocksize."""
    est = block_estimates(probs, labels, blocksize, bandwidth, metric, kernel, pairs)
    return float(est.mean()) if est.size else math.nan


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[N, B] float64 counts C[i, b] = times row i is drawn in resample b (calibench SplitMix64
    stream b of `seed`, N draws of ((next() >> 11) * N) >> 53)."""
    c = np.empty((n, resamples))
    for b in range(resamples):
        c[:, b] = np.bincount(bootstrap_indices(seed, b, n), minlength=n)
    return c


def asymptotic_test(probs, labels, bandwidth=None, resamples=1000, seed=0, metric="tv",
                    kernel="laplacian", pairs="all") -> dict:
    """CalibrationTests.AsymptoticSKCETest + pvalue(; bootstrap_iters=B) with calibench's RNG.

    statistic = n/(n-1) SKCE_uq - SKCE_b; per resample b with counts c:
    T'_b = (1/n^2) [ (n/(n-1)) (c^T H c - c . diag H) - 2 c . (H 1) ];
    p = #{b : T'_b >= statistic} / B. H is streamed in row chunks (H[rows] @ C), never stored.
    N < 2: everything NaN."""
    p, y = _inputs(probs, labels)
    n = p.shape[0]
    if n < 2:
        return {"estimate": math.nan, "statistic": math.nan, "pvalue": math.nan, "bandwidth": math.nan}
    nu = _resolve(p, bandwidth, metric, pairs)
    c = resample_counts(n, resamples, seed)
    step = max(1, min(n, _rows_per_chunk(n, p.shape[1]), (1 << 22) // max(1, n)))
    hc = np.empty((n, resamples))
    rowsum = np.empty(n)
    diag = np.empty(n)
    for a in range(0, n, step):
        b = min(n, a + step)
        h = h_block(p[a:b], y[a:b], p, y, nu, metric, kernel)
        hc[a:b] = h @ c
        rowsum[a:b] = h.sum(axis=1)
        diag[a:b] = h[np.arange(b - a), np.arange(a, b)]
    total, dsum = math.fsum(rowsum), math.fsum(diag)
    u = (total - dsum) / (n * (n - 1))
    v = total / (n * n)
    statistic = n / (n - 1) * u - v
    alpha = n / (n - 1)
    t = (alpha * ((c * hc).sum(axis=0) - diag @ c) - 2 * (rowsum @ c)) / (n * n)
    return {"estimate": u, "statistic": statistic, "pvalue": float(np.mean(t >= statistic)),
            "bandwidth": nu, "bootstrap": t}


def skce_pvalue(probs, labels, bandwidth=None, resamples=1000, seed=0, **kw) -> float:
    """calibench's `skce_pvalue`: the asymptotic (bootstrap) test's p-value."""
    return asymptotic_test(probs, labels, bandwidth, resamples, seed, **kw)["pvalue"]


def block_test(probs, labels, blocksize=2, bandwidth=None, variance="sample", **kw) -> dict:
    """CalibrationTests.AsymptoticBlockSKCETest: z = mean / stderr of the block estimates x_b,
    stderr = sqrt(S / (nb (nb - 1))), S = sum (x_b - mean)^2 (v0.6; variance="population":
    sqrt(S) / nb, CalibrationTests 0.2's AsymptoticLinearTest used for the paper's CIFAR table);
    p = 1 - Phi(z). Needs nb >= 2 blocks (else NaN)."""
    x = block_estimates(probs, labels, blocksize, bandwidth, **kw)
    nb = x.size
    if nb < 2:
        return {"estimate": math.nan, "stderr": math.nan, "z": math.nan, "pvalue": math.nan}
    mean = float(x.mean())
    s = float(((x - mean) ** 2).sum())
    se = math.sqrt(s / (nb * (nb - 1))) if variance == "sample" else math.sqrt(s) / nb
    with np.errstate(divide="ignore", invalid="ignore"):
        z = float(np.float64(mean) / np.float64(se))
    return {"estimate": mean, "stderr": se, "z": z, "pvalue": float(ndtr(-z))}


def distribution_free_pvalue(estimate: float, n: int, unbiased: bool = True, bound: float = 2.0) -> float:
    """DistributionFreeSKCETest (Hoeffding): unbiased estimators exp(-floor(n/2) (t/B)^2 / 2),
    biased exp(-max(0, sqrt(n t / B) - 1)^2 / 2); B = 2 sup|kappa| = 2 for these kernels."""
    if unbiased:
        return math.exp(-(n // 2) * (estimate / bound) ** 2 / 2)
    s = math.sqrt(n * estimate / bound) - 1 if estimate > 0 else -1.0
    return math.exp(-max(s, 0.0) ** 2 / 2)
