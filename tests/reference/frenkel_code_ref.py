"""Float64 ports of Frenkel & Goldberger's public code for weight scaling (WS, CWS; MICCAI 2022)
and temperature scaling per confidence bin / per class (CTS; EUSIPCO 2021), where that code
departs from the papers. Source: github.com/liorfrenkel1992/calibration at commit
01ea29b2b2b1408a56dd2b5af2d1fd826e534fa8 (2024-08-01), files `temperature_scaling.py` (TS.py
below) and `Metrics/metrics.py`. The medical-imaging runner of the MICCAI paper is `evaluate3.py`
(CXR14/HAM10000/COVID-19 logits pickles; `--method weight -single_weight` = WS, `--method weight`
= CWS, `--method bins` = the WS paper's "CTS" (per confidence bin); fits with `--num-bins 15`,
reports `ECELoss(n_bins=10)`); the CIFAR runner of the EUSIPCO paper is `evaluate.py`
(`ModelWithTemperature.set_temperature`, the class-based CTS).

Every fit below works on the raw softmax(z) of the validation logits: each function also fits
the code's global TS temperature first (grid 0.1, 0.2, ..., 10.0 on the 15-bin ECE) because the
code does, but returns it only for reporting; WS / CWS / CTS-per-bin are applied to softmax(z),
never to softmax(z / T).

Shared rules (all exact in the code, reproduced here):
  * ECE criterion `ECELoss(n_bins)` (metrics.py l.175-218): bounds = torch.linspace(0, 1, n+1) in
    float32 (torch's algorithm, `torch_linspace_f32`; e.g. the 4th of 16 is 0.20000001788...,
    not float32(0.2)); bin i holds b_i < c <= b_{i+1}; a confidence 0 is in no bin; for each
    non-empty bin: P = float32(count)/float32(N), A = float32(correct)/float32(count) (the code's
    `.float().mean()` of a boolean mask), C = mean confidence (float64 here); the sum
    ece = f32(ece + f32(|C - A| * P)) runs in bin order with a float32 accumulator
    (`torch.zeros(1)` is float32 even for float64 input), so every ECE the code compares is a
    float32 value. The port keeps that accumulator (`ece_code`): it decides ties of the strict
    "<" searches exactly as the code does.
  * adaECE `AdaptiveECELoss(n_bins)` (metrics.py l.221-251): edges `histedges_equal_n` (numpy
    interp of the sorted confidences at linspace(0, N, n+1), so e_0 = min, e_n = max), bins
    e_i < c <= e_{i+1} (the minimum is in no bin but counts in N), the same weighted sum.
  * Equal-mass edges are float64 (np.interp) but the code compares them with a torch tensor, so
    they are rounded to the tensor's dtype (`_bin_index` does the same: searchsorted(left) - 1 on
    the edges cast to the confidences' dtype). set_temperature3/4 and set_bins_dists also store
    them in a float32 numpy row (`torch.linspace(...).numpy()`). The authors ran float32 CUDA
    tensors, where that row changes nothing structural: e_0 and e_n are float32 confidences
    already, so the validation minimum is in no bin and the maximum is in the last one. Fed float64
    tensors, the code compares float64 confidences with float32-rounded e_0 / e_n, which puts the
    minimum into bin 0 (or the maximum out of the last bin) whenever the rounding goes down: one
    sample, which moved a CXR14 bin-0 CWS weight by 0.006. The default `edges_f32=False` keeps
    the edges in float64 (the authors' float32 structure; on the three CXR14 dumps its bins equal
    the float32 run's, sample for sample); `edges_f32=True` reproduces the code fed float64
    tensors bit for bit (used by the parity tests).
  * Grids are Python-float accumulations: T = 0.1; T += 0.1 (100 values, last
    9.99999999999998, leftover 10.09999999999998); WS grid T = 0.001; T += 0.001 (1000 values).
  * Temperatures / weights stored into torch tensors become float32 (`torch.ones` is float32).

Functions (one code path each; docstrings give file and lines):
  ts_grid_code, ws_code / ws_apply_code, ws_grid_code / ws_grid_apply_code, cws_code /
  cws_apply_code, cws_dists_code (apply = cws_apply_code), cts_conf_code / cts_conf_apply_code,
  cts_nudge_code / cts_nudge_apply_code.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


# ----------------------------------------------------------------------------- shared pieces

def torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace in float32 (CPU kernel): step = f32((end - start) / (steps - 1)); index i <
    steps // 2 gives start + step * i, the others end - step * (steps - 1 - i), each formed in
    double and rounded to float32 once. Checked equal to torch for steps 2..119."""
    a, b = F32(start), F32(end)
    if steps == 1:
        return np.array([a], dtype=F32)
    step = F32((b - a) / F32(steps - 1))
    half = steps // 2
    i = np.arange(steps, dtype=np.float64)
    lo = np.float64(a) + np.float64(step) * i
    hi = np.float64(b) - np.float64(step) * (steps - 1 - i)
    return np.where(i < half, lo, hi).astype(F32)


def grid_values(start: float, step: float, count: int) -> tuple[list[float], float]:
    """The code's `T = start; for _ in range(count): use T; T += step` grid and the leftover T."""
    t, out = start, []
    for _ in range(count):
        out.append(t)
        t += step
    return out, t


TS_GRID, TS_LEFTOVER = grid_values(0.1, 0.1, 100)   # leftover 10.09999999999998
WS_GRID, _ = grid_values(0.001, 0.001, 1000)


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def top_label(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) as torch.max(p, 1) then predictions.eq(labels) (first max on ties)."""
    return p.max(axis=1), p.argmax(axis=1) == y


def mean01_f32(count, n) -> np.ndarray:
    """The code's `mask.float().mean()`: float32(count) / float32(n), correctly rounded."""
    return np.asarray(count, dtype=F32) / np.asarray(n, dtype=F32)


def histedges_equal_n(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """TS.py l.1266-1270 / metrics.py l.229-233: np.interp(np.linspace(0, N, n+1), arange(N), sort(c)).
    Position x_j = j * N / n; value s_f + (x_j - f) (s_{f+1} - s_f), f = floor(x_j); x_j >= N - 1
    gives s_{N-1}; an integer x_j gives s_{x_j} exactly."""
    n = len(conf)
    return np.interp(np.linspace(0, n, n_bins + 1), np.arange(n), np.sort(conf))


def _bin_index(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin i for edges[i] < c <= edges[i+1] (the code's gt/le masks; edges rounded to conf's dtype
    as torch does with a Python-float scalar); -1 for a c in no bin (c <= e_0, c > e_n, NaN)."""
    e = np.asarray(edges).astype(conf.dtype)
    idx = np.searchsorted(e, conf, side="left") - 1
    idx[(idx < 0) | (idx >= len(e) - 1) | np.isnan(conf)] = -1
    return idx


def _binned_ece(conf: np.ndarray, correct: np.ndarray, edges: np.ndarray) -> float:
    n_bins, n = len(edges) - 1, len(conf)
    idx = _bin_index(conf, edges)
    ok = idx >= 0
    cnt = np.bincount(idx[ok], minlength=n_bins)
    hit = np.bincount(idx[ok], weights=correct[ok].astype(np.float64), minlength=n_bins)
    csum = np.bincount(idx[ok], weights=conf[ok].astype(np.float64), minlength=n_bins)
    acc = F32(0.0)
    for i in np.flatnonzero(cnt):
        p = np.float64(mean01_f32(cnt[i], n))
        a = np.float64(mean01_f32(hit[i], cnt[i]))
        c = csum[i] / cnt[i]
        acc = F32(acc + F32(abs(c - a) * p))
    return float(acc)


def ece_code(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECELoss(n_bins) of metrics.py l.175-218 (see the module docstring), a float32 value."""
    return _binned_ece(conf, correct, torch_linspace_f32(0.0, 1.0, n_bins + 1))


def ada_ece_code(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """AdaptiveECELoss(n_bins) of metrics.py l.221-251 (calibench `--adaptive interp`)."""
    return _binned_ece(conf, correct, histedges_equal_n(conf, n_bins))


def accuracy_code(z_or_p: np.ndarray, y: np.ndarray) -> float:
    """test_classification_net_logits (metrics.py l.120-145): sklearn accuracy_score of argmax."""
    return float(np.mean(np.argmax(z_or_p, axis=1) == y))


def _ece_of_logits(z: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    return ece_code(*top_label(softmax(z), y), n_bins)


def ts_grid_code(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> tuple[float, float]:
    """The global TS every fit starts with (e.g. TS.py l.282-292, l.2099-2121): T = 0.1, 0.2, ...,
    10.0 (Python accumulation), ECE(softmax(z / T)) with ECELoss(n_bins); best starts at 1e7 and
    T_opt at 1.0; T_opt = T when best > ECE (strict: the first minimum). Returns (T_opt, ECE)."""
    z = np.asarray(logits, dtype=np.float64)
    best, t_opt = 10.0**7, 1.0
    for t in TS_GRID:
        e = _ece_of_logits(z / t, labels, n_bins)
        if best > e:
            t_opt, best = t, e
    return t_opt, best


def _py_clip01(w: float) -> float:
    """`max(0, min(1, w))` with Python's min/max: NaN -> 1 (min(1, nan) is 1), -inf -> 0."""
    return max(0, min(1, w))


# ----------------------------------------------------------------------------- WS

def ws_code(val_logits: np.ndarray, val_labels: np.ndarray, n_bins: int = 15) -> dict:
    """WS as evaluate3.py runs it (`--method weight -single_weight`): TS.py l.2074-2167
    `set_temperature5(logits, labels, n_bins)`.

    1. T = ts_grid_code(z, y, n_bins) (ECELoss(n_bins), 15 in evaluate3) - returned, never applied.
    2. p = softmax(z) (raw logits); c, correct; n_bins is overwritten: 13 bins (l.2090) with
       edges histedges_equal_n(c, 13), bin e_i < c <= e_{i+1} (the smallest c is in no bin).
    3. Over non-empty bins, A = accuracy (float32 mean), C = mean confidence:
       w = sum (C - 1/K)(A - 1/K) / sum (C - 1/K)^2   (unweighted by bin counts, NOT clipped).
       That is the least-squares fit of A - 1/K = w (C - 1/K) over the 13 bins, not the paper's
       eq. 8 (minimise the L1 adaECE, "no closed form").
    Float32: the 13 numerator / denominator terms go through torch.Tensor(list) (float32) and
    float32 sums, so the code's w is the float64 w below to ~1e-7 relative.
    Returns {"weight", "temperature", "edges"}."""
    z = np.asarray(val_logits, dtype=np.float64)
    y = np.asarray(val_labels)
    k = z.shape[1]
    t, _ = ts_grid_code(z, y, n_bins)
    c, correct = top_label(softmax(z), y)
    edges = histedges_equal_n(c, 13)
    idx = _bin_index(c, edges)
    num = den = 0.0
    for b in range(13):
        m = idx == b
        if m.any():
            a = float(mean01_f32(correct[m].sum(), m.sum()))
            cb = c[m].mean()
            num += (cb - 1 / k) * (a - 1 / k)
            den += (cb - 1 / k) * (cb - 1 / k)
    return {"weight": num / den, "temperature": t, "edges": edges}


def ws_apply_code(logits: np.ndarray, weight: float) -> np.ndarray:
    """TS.py l.2036-2045 `bins_temperature_scale_test5`: w softmax(z) + (1 - w)/K, no T, no
    renormalisation (rows sum to 1 up to rounding; w > 1 makes entries p < (w - 1)/(w K)
    negative, w < 0 reverses the ranking: the code never clips w)."""
    p = softmax(logits)
    return weight * p + (1 - weight) * 1 / p.shape[1]


def ws_grid_code(val_logits: np.ndarray, val_labels: np.ndarray) -> dict:
    """WS as evaluate.py runs it (`-dists`; `-grid` is store_true with default True, so always the
    grid): TS.py l.835-936 `ModelWithTemperature.set_single_dists`, grid branch l.910-924.

    T = ts_grid_code(z, y, 15) first (stored as self.temperature, not applied). p = softmax(z);
    for w = 0.001, 0.002, ..., 1.0 (Python accumulation, 1000 values): q = w p + (1 - w)/K,
    q /= row sums, e = ECELoss(15)(q); accept when best > e + 1e-6 (best starts at 1e7, weight at
    1.0). So: 15 equal-width bins (not the paper's adaECE), and a later w must beat the best by
    more than 1e-6. Returns {"weight", "temperature"}."""
    z = np.asarray(val_logits, dtype=np.float64)
    y = np.asarray(val_labels)
    k = z.shape[1]
    t, _ = ts_grid_code(z, y, 15)
    p = softmax(z)
    best, w_opt = 10.0**7, 1.0
    for w in WS_GRID:
        q = w * p + (1 - w) * 1 / k
        q /= q.sum(axis=1, keepdims=True)
        e = ece_code(*top_label(q, y), 15)
        if best > e + 1e-6:
            w_opt, best = w, e
    return {"weight": w_opt, "temperature": t}


def ws_grid_apply_code(logits: np.ndarray, weight: float) -> np.ndarray:
    """TS.py l.170-188 `single_dists_test`: q = w softmax(z) + (1 - w)/K, q /= row sums."""
    p = softmax(logits)
    q = weight * p + (1 - weight) * 1 / p.shape[1]
    return q / q.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- CWS

def _equal_mass_edges(c: np.ndarray, n_bins: int, edges_f32: bool) -> np.ndarray:
    e = histedges_equal_n(c, n_bins)
    return e.astype(F32) if edges_f32 else e


def _high_acc_clip(c: np.ndarray, correct: np.ndarray, n_bins: int, cap: float,
                   edges_f32: bool = False) -> tuple[np.ndarray, bool]:
    """set_temperature3/4's `is_acc` rule (TS.py l.1510-1523, l.1865-1878): on the equal-mass
    edges of c, count the non-empty bins with accuracy > 0.99; if that count > int(n_bins / 2),
    clip c > cap to cap (0.9995 in set_temperature3, 0.9999 in set_temperature4)."""
    edges = _equal_mass_edges(c, n_bins, edges_f32)
    idx = _bin_index(c, edges)
    high = 0
    for b in range(n_bins):
        m = idx == b
        if m.any() and float(mean01_f32(correct[m].sum(), m.sum())) > 0.99:
            high += 1
    if high > int(n_bins / 2):
        return np.where(c > cap, cap, c), True
    return c, False


def cws_code(val_logits: np.ndarray, val_labels: np.ndarray, n_bins: int = 15,
             edges_f32: bool = False) -> dict:
    """CWS as evaluate3.py runs it (`--method weight`, `-iters 1` default): TS.py l.1756-2034
    `set_temperature4(logits, labels, iters=1, num_bins=n_bins)` (the closed form; the grid loop
    l.1927-1947 is a string, the >= 20-sample rule l.1904-1913 is commented out, so
    `few_examples` stays empty).

    1. T = ts_grid_code(z, y, n_bins) - returned as single_temp, never applied.
    2. p = softmax(z) (raw); c, correct; `_high_acc_clip` with cap 0.9999.
    3. edges = histedges_equal_n(c, n_bins) (float32 with edges_f32; see the module docstring).
    4. For each bin b (e_b < c <= e_{b+1}) that is non-empty: A = float32 accuracy (raw, not
       clipped), C = mean c (after the clip),
       w_b = max(0, min(1, (A - 1/K) / (C - 1/K))) (Python min/max: NaN -> 1), stored float32.
       Empty bins keep w_b = 0 (init_temp = 0, l.1848-1850): a test sample falling into one
       gets the uniform distribution. A bin is empty with e_b == e_{b+1} (no test sample can
       fall in it) but also with e_b < e_{b+1} when N < n_bins or confidences tie (e.g. sorted
       c = .1 .5 .5 .5 .9, 4 bins: edges .1 .5 .5 .8 .9, bin (.5, .8] is empty).
    The iteration bookkeeping after l.2000 changes nothing that is returned with iters = 1.
    Returns {"edges" (n_bins + 1), "weights" (float32, n_bins), "temperature", "is_acc"}."""
    z = np.asarray(val_logits, dtype=np.float64)
    y = np.asarray(val_labels)
    k = z.shape[1]
    t, _ = ts_grid_code(z, y, n_bins)
    c, correct = top_label(softmax(z), y)
    c, is_acc = _high_acc_clip(c, correct, n_bins, 0.9999, edges_f32)
    edges = _equal_mass_edges(c, n_bins, edges_f32)
    idx = _bin_index(c, edges)
    weights = np.zeros(n_bins, dtype=F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in range(n_bins):
            m = idx == b
            if m.any():
                a = float(mean01_f32(correct[m].sum(), m.sum()))
                w = float(np.float64(a - 1 / k) / np.float64(c[m].mean() - 1 / k))
                weights[b] = _py_clip01(w)
    return {"edges": edges, "weights": weights, "temperature": t, "is_acc": is_acc}


def cws_apply_code(logits: np.ndarray, edges: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """TS.py l.1708-1754 `bins_temperature_scale_test4` (best_iter 0) and l.126-168
    `bins_dists_scale_test` (the same formula): p = softmax(z), c = max p (raw); for each bin b
    with e_b < c <= e_{b+1} (the fitted edges): p <- w_b p + u_b with u_b = f32(f32(1 - w_b) / K)
    (the code's `(1 - weight) * 1 / n_classes` on a float32 0-dim tensor); then p /= row sums.
    A test confidence <= e_0 (the validation minimum) or > e_n (the validation maximum) is in no
    bin and keeps softmax(z) unchanged."""
    p = softmax(logits)
    k = p.shape[1]
    idx = _bin_index(p.max(axis=1), edges)
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            w = F32(weights[b])
            u = np.float64((F32(1.0) - w) / F32(k))
            p[m] = np.float64(w) * p[m] + u
    return p / p.sum(axis=1, keepdims=True)


def _fill_few(values: np.ndarray, few: list[int], n_bins: int) -> None:
    """set_bins_dists / set_bins_temperature2 neighbour rule (TS.py l.790-814), in place, bins in
    ascending order, each using the values as already filled: interior bin -> walk down / up past
    bins in `few` (stopping at 0 / n_bins - 1); if the upper walk reached n_bins - 1 take the lower
    value (even when the last bin is populated), else f32((lower + upper) / 2); bin 0 -> the upper
    value; last bin -> the lower value."""
    fs = set(few)
    for b in few:
        if 0 < b < n_bins - 1:
            lo, up = b - 1, b + 1
            while lo in fs and lo - 1 >= 0:
                lo -= 1
            while up in fs and up + 1 <= n_bins - 1:
                up += 1
            if up == n_bins - 1:
                values[b] = values[lo]
            else:
                values[b] = (F32(values[lo]) + F32(values[up])) / F32(2)
        elif b == 0:
            up = 1
            while up in fs and up + 1 <= n_bins - 1:
                up += 1
            values[0] = values[up]
        else:
            lo = b - 1
            while lo in fs and lo - 1 >= 0:
                lo -= 1
            values[b] = values[lo]


def cws_dists_code(val_logits: np.ndarray, val_labels: np.ndarray, n_bins: int = 15,
                   grid: bool = True, edges_f32: bool = False) -> dict:
    """CWS as the class method `ModelWithTemperature.set_bins_dists` (TS.py l.659-833; iters = 1;
    the constructor default grid=True). Called by evaluate.py `-dists` only until commit 5c29ca1
    (2021-09-30); at HEAD nothing calls it.

    1. T = ts_grid_code(z, y, 15) (self.temperature, not applied). p = softmax(z), c, correct.
    2. edges = histedges_equal_n(c, n_bins) (float32 with edges_f32); weights start at 1.
    3. Bin b (e_b < c <= e_{b+1}) with fewer than 20 samples (empty ones too): recorded in
       `few`, skipped. Otherwise A = float32 accuracy, C = mean c, a = max(min(A, 0.99), 0.01):
       grid=True: for w = 0.1, 0.2, ..., 10.0 (Python accumulation; weights above 1 allowed):
         q = w p + (1 - w)/K on the bin's rows, q /= row sums, d = |a - mean max q|;
         accept when best > d + 1e-6 (best starts at 1e7, so w = 0.1 is always taken first);
       grid=False: w = max(0, min(1, (A - 1/K) / (C - 1/K))) (raw A, not a).
       Stored float32.
    4. `_fill_few(weights, few)`.
    Apply with cws_apply_code (bins_dists_scale_test). Returns {"edges", "weights", "temperature",
    "few"}."""
    z = np.asarray(val_logits, dtype=np.float64)
    y = np.asarray(val_labels)
    k = z.shape[1]
    t, _ = ts_grid_code(z, y, 15)
    p = softmax(z)
    c, correct = top_label(p, y)
    edges = _equal_mass_edges(c, n_bins, edges_f32)
    idx = _bin_index(c, edges)
    weights = np.ones(n_bins, dtype=F32)
    few = []
    for b in range(n_bins):
        m = idx == b
        if m.sum() < 20:
            few.append(b)
            continue
        a_raw = float(mean01_f32(correct[m].sum(), m.sum()))
        if grid:
            a = max(min(a_raw, 0.99), 0.01)
            best, w_opt = 10.0**7, 1.0
            pb = p[m]
            for w in TS_GRID:
                q = w * pb + (1 - w) * 1 / k
                q /= q.sum(axis=1, keepdims=True)
                d = abs(a - q.max(axis=1).mean())
                if best > d + 1e-6:
                    w_opt, best = w, d
            weights[b] = w_opt
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                w = float(np.float64(a_raw - 1 / k) / np.float64(c[m].mean() - 1 / k))
            weights[b] = _py_clip01(w)
    _fill_few(weights, few, n_bins)
    return {"edges": edges, "weights": weights, "temperature": t, "few": few}


# ----------------------------------------------------------------------------- CTS per confidence bin

def cts_conf_code(val_logits: np.ndarray, val_labels: np.ndarray, n_bins: int = 15,
                  edges_f32: bool = False) -> dict:
    """The WS paper's "CTS" (confidence-based TS, eq. 5) as evaluate3.py runs it (`--method bins`,
    iters 1, cverror ece): TS.py l.1388-1696 `set_temperature3`.

    1. T = ts_grid_code(z, y, n_bins) (returned, not applied). p = softmax(z), c, correct.
    2. `_high_acc_clip` with cap 0.9995; edges = histedges_equal_n(c, n_bins) (float32 with
       edges_f32).
    3. Per non-empty bin b: A = float32 accuracy, C = mean c (after the clip),
       a = max(min(A, 0.99), 0.01) (a = A when is_acc); best = |a - C|; for T = 0.1, ..., 10.0
       (Python accumulation): the bin's logits / f32(T) (the candidate is stored in a float32
       tensor first), d = |a - mean max softmax|; accept when best > d + 1e-5. T_b = f32(last
       accepted T), or 1.0 when none beats the uncalibrated gap by more than 1e-5.
       Empty bins keep T_b = 1.
    Returns {"edges", "temperatures" (float32, n_bins), "temperature", "is_acc"}."""
    z = np.asarray(val_logits, dtype=np.float64)
    y = np.asarray(val_labels)
    t, _ = ts_grid_code(z, y, n_bins)
    c, correct = top_label(softmax(z), y)
    c, is_acc = _high_acc_clip(c, correct, n_bins, 0.9995, edges_f32)
    edges = _equal_mass_edges(c, n_bins, edges_f32)
    idx = _bin_index(c, edges)
    temps = np.ones(n_bins, dtype=F32)
    for b in range(n_bins):
        m = idx == b
        if not m.any():
            continue
        a_raw = float(mean01_f32(correct[m].sum(), m.sum()))
        a = a_raw if is_acc else max(min(a_raw, 0.99), 0.01)
        best = abs(a - c[m].mean())
        zb = z[m]
        t_opt = F32(1.0)
        for tg in TS_GRID:
            d = abs(a - softmax(zb / np.float64(F32(tg))).max(axis=1).mean())
            if best > d + 1e-5:
                t_opt, best = F32(tg), d
        temps[b] = t_opt
    return {"edges": edges, "temperatures": temps, "temperature": t, "is_acc": is_acc}


def cts_conf_apply_code(logits: np.ndarray, edges: np.ndarray, temps: np.ndarray) -> np.ndarray:
    """TS.py l.1318-1386 `bins_temperature_scale_test3` (best_iter 0): bin by the raw top-label
    confidence (the fitted edges, e_b < c <= e_{b+1}); z / T_b for the bin's rows; rows in no bin
    keep z. Returns logits."""
    z = np.array(logits, dtype=np.float64)
    idx = _bin_index(softmax(z).max(axis=1), edges)
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            z[m] = z[m] / np.float64(F32(temps[b]))
    return z


# ----------------------------------------------------------------------------- CTS per class (nudge)

NUDGE_STEPS = torch_linspace_f32(-0.2, 0.2, 5)   # float32 -0.2, -0.1, 0, 0.1, 0.2


def cts_nudge_code(logits: np.ndarray, labels: np.ndarray, acc_check: bool = False,
                   max_cycles: int = 100000) -> dict:
    """Class-based TS as evaluate.py runs it: TS.py l.198-363 `ModelWithTemperature.set_temperature`
    (non-const_temp branch, l.258-362), ECELoss() = 15 bins throughout.

    1. T0 = ts_grid_code(z, y, 15) (l.282-295); leftover grid variable T = 10.09999999999998.
       Class temperatures T_j = f32(T0) (float32 tensors T_csece, T_opt).
    2. acc = accuracy(z); with acc_check: acc = accuracy(z / T) if that is >= acc (l.312-316).
    3. best = 1e7 (one running value for the whole run). Repeat cycles until T_opt is unchanged
       over a whole cycle (`torch.all(T_opt.eq(prev))`; no cycle cap in the code):
         for class j = 0..K-1: v = T_j (float32);
           for s in (-0.2, -0.1, 0, 0.1, 0.2) (float32): T_j <- f32(v + s) (no guard: T_j <= 0 is
             evaluated too; z / 0 gives NaN rows that fall in no ECE bin), e = ECE(z / T),
             with acc_check also a = accuracy(z / T);
             no acc_check: if best > e: T_opt_j = f32(v + s), best = e;
             acc_check:    if best > e and a >= acc: T_opt_j = f32(10.09999999999998) = 10.100000381..
                           (l.346 stores the leftover grid T, not the candidate), best = e, acc = a;
           T_j <- T_opt_j.
       Without acc_check, best equals the ECE at the current T after class 0's first sweep (which
       includes step 0, so the ECE never rises above T0's); with acc_check, best is the ECE of a
       candidate that was never kept, and every accepted class jumps to 10.1 and stays there
       (later acceptances store 10.1 again): the result is T0 or 10.1 per class.
    Returns {"temperatures" (float32, K), "T0", "cycles", "best"}."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    k = z.shape[1]
    t0, _ = ts_grid_code(z, y, 15)
    cur = np.full(k, F32(t0), dtype=F32)
    opt = cur.copy()
    acc = accuracy_code(z, y)
    if acc_check:
        a0 = accuracy_code(z / cur.astype(np.float64), y)
        if a0 >= acc:
            acc = a0
    best = 10.0**7
    prev = opt.copy()
    cycles = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            cycles += 1
            if cycles > max_cycles:
                raise RuntimeError("cts_nudge_code: no convergence in %d cycles" % max_cycles)
            for j in range(k):
                v = F32(cur[j])
                for s in NUDGE_STEPS:
                    cur[j] = F32(v + s)
                    zt = z / cur.astype(np.float64)
                    e = _ece_of_logits(zt, y, 15)
                    if acc_check:
                        a = accuracy_code(zt, y)
                        if best > e and a >= acc:
                            opt[j] = F32(TS_LEFTOVER)
                            best, acc = e, a
                    elif best > e:
                        opt[j] = cur[j]
                        best = e
                cur[j] = opt[j]
            if np.array_equal(opt, prev):
                break
            prev = opt.copy()
    return {"temperatures": opt.copy(), "T0": t0, "cycles": cycles, "best": best}


def cts_nudge_apply_code(logits: np.ndarray, temps: np.ndarray) -> np.ndarray:
    """TS.py l.75-80 `class_temperature_scale`: z / T (column j divided by T_j). Returns logits."""
    return np.asarray(logits, dtype=np.float64) / np.asarray(temps, dtype=np.float64)
