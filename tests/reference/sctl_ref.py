"""Float64 numpy/scipy reference of class-wise loss scaling (+sctl) and of the LS+ priors
(docs/calibrators.md), written from docs/calibrators.md and the authors' code
(SeungjinJung/SCTL models/lossfunction.py; abhisheksambyal/lsplus distiller.py), independent
of calibench. The authors compute in float32 torch tensors; this reference keeps float64.
"""
import math

import numpy as np
from scipy import optimize

NORMS = ("nd", "mm", "cm")


def normalise(losses, norm="nd"):
    """nd: (L - mean) / std (unbiased); mm: (L - min) / (max - min); cm: (L - mean) / (max - min).
    A zero denominator gives zeros (calibench's rule; the authors' code gives NaN)."""
    loss = np.asarray(losses, dtype=np.float64)
    if norm == "nd":
        centre, scale = loss.mean(), loss.std(ddof=1)
    elif norm == "mm":
        centre, scale = loss.min(), loss.max() - loss.min()
    elif norm == "cm":
        centre, scale = loss.mean(), loss.max() - loss.min()
    else:
        raise ValueError(norm)
    if not scale > 0:
        return np.zeros_like(loss)
    return (loss - centre) / scale


def weights(normalised, alpha, beta):
    """w_i = beta / (1 + exp(-n_i / alpha)) - beta / 2 (the scale of class i is 1 + w_i)."""
    n = np.asarray(normalised, dtype=np.float64)
    with np.errstate(over="ignore"):
        return beta / (1.0 + np.exp(-n / alpha)) - beta / 2.0


def objective(l0, l1, normalised1, alpha, beta):
    """sqrt(sum_i (L0_i - w_i (L1_i - L0_i) - mean(L1))^2), the authors' `func`."""
    l0 = np.asarray(l0, dtype=np.float64)
    l1 = np.asarray(l1, dtype=np.float64)
    w = weights(normalised1, alpha, beta)
    return float(np.sqrt(((l0 - w * (l1 - l0) - l1.mean()) ** 2).sum()))


def weighted_loss(losses, w):
    """sum_i (1 + w_i) L_i."""
    return float(((1.0 + np.asarray(w)) * np.asarray(losses, dtype=np.float64)).sum())


def box(num_classes):
    """((alpha_lo, alpha_hi), (beta_lo, beta_hi)) as the authors pass them to SLSQP."""
    return ((0.1, math.log(num_classes) / 2.0), (1.5, 2.0))


def slsqp(l0, l1, norm="nd"):
    """The authors' fit: scipy SLSQP from (1.0, 1.5) (SciPy clips the start into the box),
    finite-difference gradient, default tolerances. Returns (alpha, beta, objective)."""
    l0 = np.asarray(l0, dtype=np.float64)
    l1 = np.asarray(l1, dtype=np.float64)
    n1 = normalise(l1, norm)
    res = optimize.minimize(lambda x: objective(l0, l1, n1, x[0], x[1]), (1.0, 1.5), method="SLSQP",
                            bounds=box(len(l0)), options={"disp": False})
    a, b = float(res.x[0]), float(res.x[1])
    return a, b, objective(l0, l1, n1, a, b)


def class_losses(values, labels, temperature=1.0, is_probs=False):
    """Per-class mean NLL of softmax(z / T) over the samples of each class (z = log p for a
    probability dump); NaN for a class without samples."""
    z = np.asarray(values, dtype=np.float64)
    if is_probs:
        with np.errstate(divide="ignore"):
            z = np.log(z)
    z = z / temperature
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    labels = np.asarray(labels).reshape(-1)
    nll = -log_p[np.arange(len(labels)), labels]
    k = z.shape[1]
    out = np.full(k, np.nan)
    for c in range(k):
        sel = labels == c
        if sel.any():
            out[c] = nll[sel].mean()
    return out


def lsplus_priors(values, labels, perfect="uniform"):
    """LS+ priors from per-class accuracy (prediction = first argmax of the stored values).
    Returns (accuracy [K, NaN when absent], count [K], prior_true [K], prior_other [K]):
    prior_true = accuracy; accuracy 1 -> 1/K (uniform), 0.5 (half) or 1 (keep); absent -> 1/K;
    prior_other = (1 - prior_true) / (K - 1)."""
    v = np.asarray(values)
    labels = np.asarray(labels).reshape(-1)
    k = v.shape[1]
    pred = np.argmax(v, axis=1)
    count = np.bincount(labels, minlength=k)
    correct = np.bincount(labels[pred == labels], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(count > 0, correct / np.maximum(count, 1), np.nan)
    prior_true = accuracy.copy()
    perfect_class = (count > 0) & (correct == count)
    replacement = {"uniform": 1.0 / k, "half": 0.5, "keep": 1.0}[perfect]
    prior_true[perfect_class] = replacement
    prior_true[count == 0] = 1.0 / k
    prior_other = (1.0 - prior_true) / (k - 1)
    return accuracy, count, prior_true, prior_other


def lsplus_matrix(prior_true, prior_other):
    """The K x K prior vectors: row k is v^k."""
    k = len(prior_true)
    m = np.repeat(np.asarray(prior_other, dtype=np.float64)[:, None], k, axis=1)
    m[np.arange(k), np.arange(k)] = prior_true
    return m
