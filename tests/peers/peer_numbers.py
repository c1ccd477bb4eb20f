"""What the peer libraries themselves compute on one split of a calibench dump (or on arrays).

Each number comes from the installed library (scripts/setup_peers.sh puts torchmetrics, netcal,
uncertainty-calibration, relplot and KDEpy into .venv-peers/), or, for the paper code that is not
on PyPI, from a few-line reimplementation that keeps the arithmetic of the original (dtype
included) and names the file and commit it follows:

  torchmetrics 1.9.0   multiclass_calibration_error(probs, labels, num_classes=K, n_bins=M,
                       norm=l1|l2|max) (its public function: float32 confidences and edges), and
                       its own _ce_compute on float64 confidences (the same code, double precision)
  netcal 1.4.0         ECE(bins=M).measure, ECE(bins=M, equal_intervals=False).measure,
                       ACE(bins=M).measure on the probabilities (its multiclass path) and on
                       (confidence, correct) (its binary path = top-label, for any label count)
  uncertainty-calibration 0.1.4 (p-lambda/verified_calibration)
                       get_ece, get_ece_em, _get_ce(probs, labels, 2, True, M,
                       get_equal_prob_bins, 'top-label') (debiased RMSCE on equal-width bins),
                       marginal plugin L1 on equal-width bins (= classwise ECE, mean over
                       classes), and get_calibration_error with its defaults (no calibench
                       counterpart; reported only)
  relplot 1.0.3        smECE(confidence, correct)
  Mix-n-Match          zhang64-llnl/Mix-n-Match-Calibration e41afba util_evaluation.py:
                       ece_hist_binary and ece_kde_binary (KDEpy FFTKDE), reimplemented with
                       numpy; `*_f32` keeps the original's float32 confidence tensor
                       (torch.zeros(N, 1) is float32), the plain keys use float64
  focal_calibration    torrvision/focal_calibration 475422a Metrics/metrics.py: ECELoss,
                       AdaptiveECELoss, ClasswiseECELoss reimplemented with torch (float32 edges
                       from torch.linspace, float32 accumulator torch.zeros(1), as there) on the
                       probabilities (their F.softmax of the logits is the caller's softmax here)
  Dirichlet            dirichletcal/experiments_dnn scripts/utility/evaluation.py before 9a664bc:
                       classwise_ECE with np.digitize(p, np.linspace(0, 1, M)) - 1 and the SUM over
                       classes, Brier = sum (p - y)^2 / (N K)

Usage:  python tests/peers/peer_numbers.py FILE [--split test] [--bins 15]
prints one JSON object {"n", "k", "bins", "versions", "<library>": {"<name>": value}} where a
value is a float, null (not finite), or the string "raises <Error>: <message>".
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Callable

import numpy as np

# --------------------------------------------------------------------------------------- input


def load_split(path: str, split: str = "test") -> tuple[np.ndarray, np.ndarray, bool]:
    """(values float64 [N, K], labels int64 [N], is_probs) of /<split>/logits or /<split>/probs."""
    import h5py

    with h5py.File(path, "r") as f:
        g = f[split]
        is_probs = "probs" in g
        values = np.asarray(g["probs" if is_probs else "logits"][...], dtype=np.float64)
        labels = np.asarray(g["labels"][...]).astype(np.int64).reshape(-1)
    return values, labels, is_probs


def softmax64(z: np.ndarray) -> np.ndarray:
    """Row softmax in float64 exactly as calibench computes it (kernels/calib_math.hpp
    softmax_top_label): e_j = exp(z_j - max z), s = e_0 + e_1 + ... in column order,
    p_j = e_j / s. The order matters where s is within an ulp of 1: whether a confidence is
    exactly 1.0 decides torchmetrics' extra slot."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    s = np.zeros(len(z))
    for j in range(z.shape[1]):
        s += e[:, j]
    return e / s[:, None]


def top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) with the lowest index winning argmax ties (numpy, torch, calibench)."""
    pred = np.argmax(probs, axis=1)
    return probs[np.arange(len(probs)), pred], (pred == labels).astype(np.float64)


def _call(fn: Callable[[], float]):
    try:
        v = float(fn())
    except Exception as e:  # noqa: BLE001 - a library raising is a result here
        return f"raises {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
    return v if math.isfinite(v) else None


# -------------------------------------------------------------------------------- torchmetrics


def torchmetrics_ce(conf, correct, bins_or_edges, norm="l1") -> float:
    """torchmetrics' own _ce_compute (bucketize(right=True) - 1 into M + 1 accumulators) on
    the given confidences in their dtype; `bins_or_edges` is M (torch.linspace(0, 1, M + 1) in
    that dtype) or an explicit edge array."""
    import torch
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    c = torch.from_numpy(np.ascontiguousarray(conf))
    edges = bins_or_edges
    if not isinstance(edges, int):
        edges = torch.from_numpy(np.asarray(edges, dtype=c.numpy().dtype))
    return float(_ce_compute(c, torch.from_numpy(np.asarray(correct, dtype=c.numpy().dtype)),
                             edges, norm=norm))


def torchmetrics_numbers(probs, labels, bins):
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    k = probs.shape[1]
    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    conf, correct = top_label(probs, labels)
    out = {}
    for norm in ("l1", "l2", "max"):
        # The public function: confidences.float() -> float32, float32 linspace edges.
        out[norm] = _call(lambda: multiclass_calibration_error(
            p, y, num_classes=k, n_bins=bins, norm=norm))
        # The library's own binning and reduction, fed float64 confidences.
        out[f"{norm}_f64"] = _call(lambda: torchmetrics_ce(conf, correct, bins, norm))
    return out


# ------------------------------------------------------------------------------------- netcal


def netcal_binned(conf, correct, edges, metric="ece", counts=False):
    """netcal's own binning (np.histogramdd / binned_statistic_dd) and reduction (process) of
    (confidence, correct) on explicit edges, after its clip to [eps, 1 - eps]: what
    ECE(bins).measure computes, with other edges than np.linspace / np.quantile. With
    counts=True: the number of samples in each bin instead."""
    from netcal.metrics import ECE

    x = np.asarray(conf, dtype=np.float64).reshape(-1, 1)
    eps = np.finfo(x.dtype).eps
    x = np.clip(x, eps, 1.0 - eps)
    m = ECE(bins=len(edges) - 1)
    hists, hists_counts, _, _ = m.binning([np.asarray(edges, dtype=np.float64)], x,
                                          np.asarray(correct, dtype=np.float64), x[:, 0],
                                          np.zeros(len(x)))
    if counts:
        return hists_counts.astype(int).tolist()
    return float(m.process(metric, *hists, num_samples_hist=hists_counts)[0])


def netcal_equal_mass_distinct(conf, correct, bins) -> float:
    """ECE(bins, equal_intervals=False) computed by netcal's own binning on the DISTINCT
    quantile edges: its number where the edges are distinct, and what it would give where
    equal edges make scipy's binned_statistic_dd raise ("The smallest edge difference is
    numerically 0."; the empty bins between equal edges add nothing)."""
    x = np.asarray(conf, dtype=np.float64)
    eps = np.finfo(x.dtype).eps
    q = np.quantile(np.clip(x, eps, 1.0 - eps), q=np.linspace(0, 1, bins + 1))
    q[0], q[-1] = 0.0, 1.0
    return netcal_binned(x, correct, np.unique(q))


def netcal_numbers(probs, labels, bins):
    from netcal.metrics import ACE, ECE

    conf, correct = top_label(probs, labels)
    out = {}
    # Multiclass path: X = probabilities, y = labels. With <= 2 distinct labels netcal switches
    # to its binary path (positive-class reliability of column 1 when K == 2, RuntimeError when
    # K > 2).
    out["ece"] = _call(lambda: ECE(bins=bins).measure(probs, labels))
    out["ece_em"] = _call(lambda: ECE(bins=bins, equal_intervals=False).measure(probs, labels))
    out["ace"] = _call(lambda: ACE(bins=bins).measure(probs, labels))
    # Binary path on (confidence, correct): the same binning and reduction on the top label,
    # for any number of distinct labels.
    out["ece_top"] = _call(lambda: ECE(bins=bins).measure(conf, correct))
    out["ece_em_top"] = _call(lambda: ECE(bins=bins, equal_intervals=False).measure(conf, correct))
    out["ace_top"] = _call(lambda: ACE(bins=bins).measure(conf, correct))
    out["ece_em_distinct_edges"] = _call(lambda: netcal_equal_mass_distinct(conf, correct, bins))
    return out


# -------------------------------------------------------------------- uncertainty-calibration


def verified_calibration_numbers(probs, labels, bins, marginal_default=True):
    import calibration as cal

    out = {}
    out["get_ece"] = _call(lambda: cal.get_ece(probs, labels, num_bins=bins))
    out["get_ece_em"] = _call(lambda: cal.get_ece_em(probs, labels, num_bins=bins))
    out["debiased_l2"] = _call(lambda: cal.utils._get_ce(
        probs, labels, 2, True, bins, cal.get_equal_prob_bins, "top-label"))
    out["marginal_l1"] = _call(lambda: cal.lower_bound_scaling_ce(
        probs, labels, p=1, debias=False, num_bins=bins, binning_scheme=cal.get_equal_prob_bins,
        mode="marginal"))
    if marginal_default:
        # p=2, debias=True, mode='marginal', equal-mass bins (15): no calibench counterpart.
        out["get_calibration_error"] = _call(lambda: cal.get_calibration_error(probs, labels))
    return out


# ------------------------------------------------------------------------------------- relplot


def relplot_numbers(probs, labels):
    import relplot

    conf, correct = top_label(probs, labels)
    return {"smece": _call(lambda: relplot.smECE(conf, correct))}


# --------------------------------------------------------------------------------- Mix-n-Match
# zhang64-llnl/Mix-n-Match-Calibration e41afba util_evaluation.py, reimplemented with numpy.
# Their inputs are one-hot labels and probabilities clipped to [1e-256, 1 - 1e-256]; for K != 2
# the top-label confidence p[pred] / sum(p) is stored in torch.zeros(N, 1) (float32); for
# K == 2 they use column 1 against the label (positive-class, "joint calibration for binary").


def _mnm_top(probs, labels, f32, positive_if_binary=True):
    p = np.clip(probs, 1e-256, 1 - 1e-256)
    if p.shape[1] == 2 and positive_if_binary:
        conf = p[:, 1] / p.sum(axis=1)
        return conf, labels.astype(np.float64), True
    pred = np.argmax(p, axis=1)
    conf = p[np.arange(len(p)), pred] / p.sum(axis=1)
    if f32:
        conf = conf.astype(np.float32)
    return conf, (pred == labels).astype(np.float64), False


def mnm_ece_hist(probs, labels, n_bins=15, f32=False, positive_if_binary=True):
    conf, acc, _ = _mnm_top(probs, labels, f32, positive_if_binary)
    n = len(conf)
    x = np.sort(conf)
    count = int(n / n_bins)
    dt = np.float32 if f32 else np.float64
    edges = np.zeros(n_bins + 1, dtype=dt)  # torch.zeros(len(bins) + 1, 1): float32 there
    edges[1:] = [x[min((i + 1) * count, n - 1)] for i in range(n_bins)]
    edges[0], edges[-1] = 0.0, 1.0
    ece = dt(0)  # torch.zeros(1): float32 there
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        prop = np.mean(in_bin, dtype=dt)  # in_bin.float().mean()
        if prop > 0:
            a = np.mean(acc[in_bin].astype(dt), dtype=dt)  # accuracies[in_bin].float().mean()
            c = np.mean(conf[in_bin], dtype=conf.dtype)  # confidences[in_bin].mean()
            ece = dt(ece + abs(c - a) * prop)
    return float(ece)


def _mirror_1d(d, xmin, xmax):
    xmed = (xmin + xmax) / 2
    return np.concatenate(((2 * xmin - d[d < xmed]).reshape(-1, 1), d,
                           (2 * xmax - d[d >= xmed]).reshape(-1, 1)))


def mnm_ece_kde(probs, labels, order=1, f32=False, positive_if_binary=True):
    from KDEpy import FFTKDE

    conf, acc, binary = _mnm_top(probs, labels, f32, positive_if_binary)
    n = len(conf)
    x_int = np.linspace(-0.6, 1.6, num=2 ** 14)
    d1 = conf[acc == 1].reshape(-1, 1)
    kbw = np.std(d1) * (n * 2) ** -0.2
    pp1 = FFTKDE(bw=kbw, kernel="triweight").fit(_mirror_1d(d1, 0.0, 1.0)).evaluate(x_int)
    pp1[x_int <= 0.0] = 0
    pp1[x_int >= 1.0] = 0
    pp1 = pp1 * 2
    # p_int = p: the all-sample density uses the float64 confidence (np.zeros((N1, 1)) there).
    p = np.clip(probs, 1e-256, 1 - 1e-256)
    p = p / p.sum(axis=1)[:, None]
    if binary:
        conf_int = p[:, 1]
    else:
        conf_int = p[np.arange(n), np.argmax(p, axis=1)]
    pp2 = FFTKDE(bw=kbw, kernel="triweight").fit(
        _mirror_1d(conf_int.reshape(-1, 1), 0.0, 1.0)).evaluate(x_int)
    pp2[x_int <= 0.0] = 0
    pp2[x_int >= 1.0] = 0
    pp2 = pp2 * 2
    perc = np.mean(labels) if binary else np.mean(acc)
    integral = np.zeros(x_int.shape)
    # Their loop looks up pp[argmin |x_int - x_int[i]|], which is pp[i].
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(x_int.shape[0]):
            if max(pp1[i], pp2[i]) > 1e-6:
                accu = min(perc * pp1[i] / pp2[i], 1.0)
                if not np.isnan(accu):
                    integral[i] = abs(x_int[i] - accu) ** order * pp2[i]
            elif i > 1:
                integral[i] = integral[i - 1]
    ind = np.where((x_int >= 0.0) & (x_int <= 1.0))
    return float(np.trapezoid(integral[ind], x_int[ind]) / np.trapezoid(pp2[ind], x_int[ind]))


def mixnmatch_numbers(probs, labels, bins):
    out = {
        "ece_hist": _call(lambda: mnm_ece_hist(probs, labels, bins)),
        "ece_hist_f32": _call(lambda: mnm_ece_hist(probs, labels, bins, f32=True)),
        "ece_kde": _call(lambda: mnm_ece_kde(probs, labels)),
        "ece_kde_f32": _call(lambda: mnm_ece_kde(probs, labels, f32=True)),
    }
    # `*_top`: the top-label branch for every K (theirs takes it only for K != 2).
    for key in list(out):
        if probs.shape[1] != 2:
            out[key + "_top"] = out[key]
        else:
            fn = mnm_ece_hist if key.startswith("ece_hist") else mnm_ece_kde
            kw = {"f32": key.endswith("_f32"), "positive_if_binary": False}
            if fn is mnm_ece_hist:
                kw["n_bins"] = bins
            out[key + "_top"] = _call(lambda: fn(probs, labels, **kw))
    return out


# ---------------------------------------------------------------------------- focal_calibration
# torrvision/focal_calibration 475422a Metrics/metrics.py (ECELoss, AdaptiveECELoss,
# ClasswiseECELoss), reimplemented with torch on the probabilities. As there: edges
# torch.linspace(0, 1, M + 1) (float32) compared through .item(), membership lo < c <= hi,
# prop and accuracy as float32 means, the sum in a float32 torch.zeros(1).


def _focal_binned(conf, hit, lowers, uppers):
    import torch

    ece = torch.zeros(1)
    for lo, hi in zip(lowers, uppers):
        in_bin = conf.gt(float(lo)) * conf.le(float(hi))
        prop = in_bin.float().mean()
        if prop.item() > 0:
            acc = hit[in_bin].float().mean()
            avg = conf[in_bin].mean()
            ece += torch.abs(avg - acc) * prop
    return ece.item()


def focal_ece(probs, labels, n_bins=15, edges=None):
    """`edges`: other edges than their float32 torch.linspace(0, 1, M + 1) (for explaining)."""
    import torch

    b = torch.linspace(0, 1, n_bins + 1) if edges is None else torch.from_numpy(np.asarray(edges))
    conf, pred = torch.max(torch.from_numpy(probs), 1)
    return _focal_binned(conf, pred.eq(torch.from_numpy(labels)), b[:-1].tolist(), b[1:].tolist())


def focal_adaece(probs, labels, n_bins=15):
    import torch

    conf, pred = torch.max(torch.from_numpy(probs), 1)
    x = conf.numpy()
    edges = np.interp(np.linspace(0, len(x), n_bins + 1), np.arange(len(x)), np.sort(x))
    _, edges = np.histogram(x, edges)
    return _focal_binned(conf, pred.eq(torch.from_numpy(labels)), edges[:-1], edges[1:])


def focal_sce(probs, labels, n_bins=15, edges=None, num_classes=None):
    """`edges`, `num_classes`: other than theirs (float32 linspace, max(labels) + 1)."""
    import torch

    b = torch.linspace(0, 1, n_bins + 1) if edges is None else torch.from_numpy(np.asarray(edges))
    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    if num_classes is None:
        num_classes = int((torch.max(y) + 1).item())  # as there: a missing top class shrinks K
    per_class = [_focal_binned(p[:, i], y.eq(i), b[:-1].tolist(), b[1:].tolist())
                 for i in range(num_classes)]
    return float(torch.mean(torch.tensor(per_class, dtype=torch.float32)))


def focal_numbers(probs, labels, bins):
    return {
        "ece": _call(lambda: focal_ece(probs, labels, bins)),
        "adaece": _call(lambda: focal_adaece(probs, labels, bins)),
        "sce": _call(lambda: focal_sce(probs, labels, bins)),
    }


# ------------------------------------------------------------------------------------ Dirichlet
# dirichletcal/experiments_dnn scripts/utility/evaluation.py (binary_ECE, classwise_ECE, Brier),
# with the class SUM the NeurIPS'19 tables used (mean since 9a664bc). The original one-hot is
# sklearn label_binarize, which returns ONE column for K == 2 (then y_true[:, 1] fails): a plain
# one-hot is used here.


def dirichlet_binary_ece(p, y, power=1, bins=15):
    idx = np.digitize(p, np.linspace(0, 1, bins)) - 1
    ece = 0.0
    for i in np.unique(idx):
        m = idx == i
        ece += (np.abs(np.mean(p[m]) - np.mean(y[m])) ** power) * np.sum(m) / len(p)
    return ece


def dirichlet_numbers(probs, labels, bins):
    n, k = probs.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    per_class = [dirichlet_binary_ece(probs[:, c], onehot[:, c], bins=bins) for c in range(k)]
    return {
        "classwise_ece_sum": float(np.sum(per_class)),
        "classwise_ece_mean": float(np.mean(per_class)),
        "brier_over_k": float(np.sum((probs - onehot) ** 2) / n / k),
    }


# ------------------------------------------------------------------------------------ together


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "torchmetrics", "netcal", "uncertainty-calibration", "relplot", "KDEpy",
                 "numpy", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def peer_numbers(values, labels, is_probs, bins=15, marginal_default=True) -> dict:
    """Every library's numbers for one split. `values` are logits (softmax64 applied) or
    probabilities, used as given."""
    probs = np.asarray(values, dtype=np.float64) if is_probs else softmax64(values)
    labels = np.asarray(labels, dtype=np.int64)
    return {
        "n": int(probs.shape[0]), "k": int(probs.shape[1]), "bins": bins,
        "versions": versions(),
        "torchmetrics": torchmetrics_numbers(probs, labels, bins),
        "netcal": netcal_numbers(probs, labels, bins),
        "verified_calibration": verified_calibration_numbers(probs, labels, bins,
                                                             marginal_default),
        "relplot": relplot_numbers(probs, labels),
        "mixnmatch": mixnmatch_numbers(probs, labels, bins),
        "focal": focal_numbers(probs, labels, bins),
        "dirichlet": dirichlet_numbers(probs, labels, bins),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--split", default="test")
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--no-marginal-default", action="store_true",
                    help="skip uncertainty-calibration get_calibration_error (slow for large K)")
    args = ap.parse_args(argv)
    values, labels, is_probs = load_split(args.file, args.split)
    out = peer_numbers(values, labels, is_probs, args.bins, not args.no_marginal_default)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
