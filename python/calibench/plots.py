# Calibration plots of one split (reliability diagram, retention curve, confidence densities),
# shared by the CLI (`calibench eval --plot`, `calibench fit --plot`, which write a plot-data JSON
# and run this file by path) and the Python package (`calibench.plot_reliability`,
# `calibench.plot_data`). numpy only at import: matplotlib is imported when a plot is drawn, and
# the package is imported only by plot_data / plot_reliability, so that
#     python3 python/calibench/plots.py DATA.json --out FILE [--kind reliability|retention|density]
# works without the package installed. The JSON schema (the contract with the C++ side) and its
# validation rules are in the docstring below; the look of the reliability diagram is that of
# experiments/plot_sweep.py.
"""Calibration plots: reliability diagrams, retention curves and confidence densities.

    fig = calibench.plot_reliability(logits, labels, bins=15)                  # one panel
    fig = calibench.plot_reliability(logits, labels, compare=cal, path="rel.png")  # before / after
    data = calibench.plot_data(logits, labels)                                 # the plot-data dict

Plot-data JSON (what `calibench eval --plot` / `fit --plot` write and this file's script reads):

    {"title": str,                      # the figure's suptitle
     "bins": M,                         # an integer >= 1: equal-width reliability bins on [0, 1]
     "bin_rule": "right-closed",        # or "left-closed", "guo-strict" (docs/metrics.md, "Bins")
     "panels": [                        # at least one (eval: 1; fit: before, after)
       {"label": str, "ece": x, "accuracy": x, "n": N,
        "reliability": [[count, accuracy | null, mean_confidence | null], ...],   # M entries
        "retention": [null, a_1, ..., a_100],   # 101 entries: a_i at retained fraction i / 100
        "r_auc": x | null,
        "density": {"edges": [0.0, 0.02, ..., 1.0],                 # 51 edges, edges[j] = j / 50
                    "correct": [c_0, ..., c_49], "incorrect": [c_0, ..., c_49]}}]}

Validation (PlotError, a ValueError, naming the key and the first bad index, e.g.
"panels[1].reliability[3][1]: accuracy 1.5 outside [0, 1]"): the top level, each panel and
"density" are objects holding every key above (other keys are ignored); strings are strings;
"bins", "n" and every count are integers (JSON booleans are not numbers), bins >= 1, n >= 1,
counts >= 0; every other number is finite (NaN and Infinity refused) and lies in [0, 1], where
null is allowed only for a bin's accuracy and mean confidence, a retention value and "r_auc"
(nulls are skipped when drawing); "reliability" has exactly "bins" entries of 3 values each and
its counts sum to n (at most n under guo-strict, which leaves c = 0 out of every bin);
"retention" has 101 entries and retention[0] is null (f = 0 retains nothing); "edges" has 51
entries with |edges[j] - j / 50| <= 1e-9; "correct" and "incorrect" have 50 counts each, summing
together to n. Empty bins (count 0) get no bar.

Script exit status: 0 (the written path printed on stdout), 2 for bad input or arguments (one
line `calibench plots: error: ...` on stderr), 4 when matplotlib is not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(
        os.path.abspath(__file__)):
    # Run by path: this folder holds sklearn.py, torchmetrics.py, ...: keep them from shadowing
    # the real packages of those names.
    del sys.path[0]

import numpy as np

__all__ = ["plot_reliability", "plot_data", "plot_json", "validate", "PlotError", "KINDS", "FORMATS",
           "RETENTION_POINTS", "DENSITY_BINS"]

PROG = "calibench plots"
KINDS = ("reliability", "retention", "density")
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
BIN_RULES = ("right-closed", "left-closed", "guo-strict")
RETENTION_POINTS = 101  # retained fractions f = i / 100, i = 0..100
DENSITY_BINS = 50       # equal-width confidence bins [j / 50, (j + 1) / 50)
PNG_DPI = 150
MATPLOTLIB_MISSING = "calibench plots need matplotlib: python3 -m pip install matplotlib"

# The look of experiments/plot_sweep.py (applied with rc_context: the user's rcParams are left alone).
STYLE = {
    "svg.hashsalt": "calibench",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
}
ACCURACY_COLOR, ACCURACY_EDGE = "#4C72B0", "#1f3b63"
GAP_COLOR, GAP_EDGE = "#DD8452", "#C44E52"
CORRECT_COLOR, INCORRECT_COLOR = "#2ca02c", "#d62728"  # LS+'s green and red
LINESTYLES = ("-", "--", "-.", ":")


class PlotError(ValueError):
    """Bad plot data or arguments: one line naming the key (and the first bad index)."""


# ---------------------------------------------------------------------------------------------
# Per-sample quantities and the numpy parts of a panel


def top_label(values, labels, probs=False):
    """(confidence c [N] float64, correct [N] bool) of values [N, K] (float64) as the engine
    defines them (docs/metrics.md, "Inputs"): from logits z, m = max_j z_j, S = sum_j exp(z_j - m)
    (summed over j = 0..K-1 in order), c = 1 / S; from probabilities c = max_j p_j; the
    prediction is the argmax of the values as given, lowest index on ties; correct = (prediction
    == label)."""
    v = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if v.ndim != 2 or v.shape[0] != y.shape[0]:
        raise ValueError(f"values of shape {list(v.shape)} and {y.shape[0]} labels do not match")
    pred = np.argmax(v, axis=1)
    if probs:
        conf = v[np.arange(v.shape[0]), pred]
    else:
        m = v[np.arange(v.shape[0]), pred]
        s = np.zeros(v.shape[0], dtype=np.float64)
        for j in range(v.shape[1]):
            s += np.exp(v[:, j] - m)
        conf = 1.0 / s
    return conf, pred == y.astype(np.int64)


def retention_curve(conf, correct):
    """The 101 retention values: order the samples by confidence descending with a stable sort
    (ties keep index order, the order of r_auc); for i = 1..100 keep the first k_i = ceil(i N /
    100) samples, computed exactly in integers as (i N + 99) // 100 (so k_i >= 1 and k_100 = N),
    and give their accuracy (correct among them) / k_i. Entry 0 (f = 0, nothing retained) is
    None."""
    conf = np.asarray(conf, dtype=np.float64).reshape(-1)
    n = conf.size
    if n == 0:
        raise ValueError("retention: N = 0 samples")
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(np.asarray(correct, dtype=np.int64).reshape(-1)[order])
    out = [None]
    for i in range(1, RETENTION_POINTS):
        k = (i * n + 99) // 100
        out.append(float(hits[k - 1]) / float(k))
    return out


def density_edges():
    """The 51 density edges j / 50 (j = 0..50), each computed in double as j / 50.0."""
    return np.arange(DENSITY_BINS + 1, dtype=np.float64) / float(DENSITY_BINS)


def density_counts(conf, correct):
    """{"edges", "correct", "incorrect"}: numpy.histogram of the confidences of the correct and
    of the incorrect predictions over the edges e_j = j / 50: bin j holds e_j <= c < e_{j+1},
    the last bin also c = 1 (numpy's rule: bin j = the number of e_1..e_49 with e_j <= c)."""
    conf = np.asarray(conf, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    edges = density_edges()
    good, _ = np.histogram(conf[correct], bins=edges)
    bad, _ = np.histogram(conf[~correct], bins=edges)
    return {"edges": [float(e) for e in edges], "correct": [int(c) for c in good],
            "incorrect": [int(c) for c in bad]}


def _host(x):
    """A NumPy view or copy of an array-like (NumPy, DLPack exporters, lists, bfloat16 tensors)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and callable(x.detach):
        x = x.detach()
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, BufferError, RuntimeError, ValueError):
            if hasattr(x, "float") and callable(x.float):  # bfloat16: exact in float32
                x = x.float()
    if hasattr(x, "numpy") and callable(x.numpy):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _panel(metrics, values, labels, probs, label):
    """One panel: the engine's metrics (an evaluate() result with reliability=True) and the
    numpy parts computed from values [N, K] (float64, as the engine reads them)."""
    rel = metrics.get("reliability")
    if not isinstance(rel, list):
        raise RuntimeError("the engine returned no reliability bins")
    conf, correct = top_label(values, labels, probs)
    return {
        "label": str(label),
        "ece": metrics["ece"],
        "accuracy": metrics["accuracy"],
        "n": int(metrics["n"]),
        "reliability": [[int(b["count"]), b["accuracy"], b["confidence"]] for b in rel],
        "retention": retention_curve(conf, correct),
        "r_auc": metrics.get("r_auc"),
        "density": density_counts(conf, correct),
    }


def _engine_values(calibench, x, probs):
    """What the engine reads of x as a float64 [N, K] NumPy array (binary [N] or [N, 1] scores
    become [0, s] or [1 - q, q], as evaluate() reads them)."""
    name = "probs" if probs else "logits"
    values, _binary = calibench._scores(x, name, bool(probs))
    return np.asarray(_host(values), dtype=np.float64)


METRIC_KEYS = ["ece", "accuracy", "r_auc"]


def plot_data(logits_or_probs, labels, bins=15, label="uncalibrated", probs=None, title=None) -> dict:
    """The plot-data dict (the JSON schema of this module's docstring) of one split: one panel.

    logits_or_probs: [N, K] logits, or probabilities with probs=True (probs=None is False), or
    binary scores [N] / [N, 1], read exactly as calibench.evaluate reads them; labels: [N].
    The reliability bins (right-closed equal-width bins i / M, [count, accuracy, mean
    confidence], None for an empty bin), "ece", "accuracy", "n" and "r_auc" are the engine's:
    calibench.evaluate(..., bins=bins, reliability=True). The rest is computed here, from the
    top-label confidence c and correctness of each sample as the engine defines them (logits:
    c = 1 / sum_j exp(z_j - max z); probabilities: c = max_j p_j; prediction = argmax of the
    values, lowest index on ties):

    - "retention" (101 values): sort the samples by c descending with a stable sort (ties keep
      index order); entry i (i = 1..100, retained fraction f = i / 100) is the accuracy of the
      first k_i = ceil(i N / 100) samples, k_i computed exactly in integers as (i N + 99) // 100
      (never from the float f N), so k_1 >= 1 and k_100 = N; entry 0 is None. This is the
      accuracy of the retained predictions only; the engine's "r_auc" (drawn in the legend) is
      the area under its own curve, which counts the rejected predictions as correct
      (docs/metrics.md), so it is not the area under this curve.
    - "density": numpy.histogram of c over the 51 edges e_j = j / 50.0 (j = 0..50, in double),
      separately for the correct and the incorrect predictions: bin j holds e_j <= c < e_{j+1},
      bin 49 also c = 1 (numpy's left-closed rule, unlike the right-closed reliability bins).

    title: the figure title (default "N = ..., K = ...").
    """
    import calibench

    is_probs = bool(probs) if probs is not None else False
    metrics = calibench.evaluate(logits_or_probs, labels, bins=bins, probs=is_probs, reliability=True,
                                 metrics=METRIC_KEYS)
    values = _engine_values(calibench, logits_or_probs, is_probs)
    y = np.asarray(_host(labels)).reshape(-1)
    panel = _panel(metrics, values, y, is_probs, label)
    return {"title": str(title) if title is not None else f"N = {panel['n']}, K = {int(metrics['k'])}",
            "bins": int(bins), "bin_rule": "right-closed", "panels": [panel]}


def _calibrator_label(cal):
    params = cal.params if isinstance(cal.params, dict) else {}
    for key, symbol in (("temperature", "T"), ("weight", "w")):
        v = params.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{cal.method} ({symbol} = {v:.3g})"
    return str(cal.method)


def _compare_data(calibench, compare, x, labels, bins, probs):
    """The plot-data dict of `compare` (see plot_reliability)."""
    if isinstance(compare, calibench.Calibrator):
        cal = compare
        is_probs = cal.is_probs if probs is None else bool(probs)
        calibrated = np.asarray(cal.transform(x, probs=is_probs), dtype=np.float64)
        metrics = cal.evaluate(x, labels, bins=bins, probs=is_probs, reliability=True, metrics=METRIC_KEYS)
        y = np.asarray(_host(labels)).reshape(-1)
        panel = _panel(metrics, calibrated, y, True, _calibrator_label(cal))
        return {"bins": int(bins), "bin_rule": "right-closed", "panels": [panel]}
    if isinstance(compare, dict):
        if compare.get("bins") != bins or compare.get("bin_rule") != "right-closed":
            raise ValueError(f"compare: a plot_data dict with bins = {compare.get('bins')!r} and bin_rule "
                             f"{compare.get('bin_rule')!r}; this figure has bins = {bins}, right-closed")
        validate(compare, "compare")
        return compare
    if isinstance(compare, tuple):
        if len(compare) not in (2, 3):
            raise ValueError(f"compare: a tuple must be (values, labels) or (values, labels, probs), got "
                             f"{len(compare)} items")
        values, y = compare[0], compare[1]
        cprobs = bool(compare[2]) if len(compare) == 3 else False
        return plot_data(values, y, bins=bins, label="compare", probs=cprobs)
    # Probabilities of the same samples (e.g. cal.transform(logits)).
    return plot_data(compare, labels, bins=bins, label="calibrated", probs=True)


def plot_reliability(logits_or_probs, labels, bins=15, kind="reliability", path=None, ax=None,
                     label="uncalibrated", probs=None, title=None, compare=None):
    """Draws a calibration figure of one split and returns the matplotlib Figure.

    logits_or_probs, labels, bins, label, probs, title: as plot_data (probs=None: logits, or
    probabilities when compare is a Calibrator fitted on probabilities). kind: "reliability"
    (per panel: accuracy per bin, the gap to the mean confidence shaded, the diagonal, ECE in
    the title, the share of samples per bin below), "retention" (accuracy of the most
    confident fraction, one line per panel, the engine's R-AUC in the legend) or "density"
    (LS+'s plot: the normalised confidence histograms of the correct and the incorrect
    predictions, per panel).

    compare adds a second panel (before / after) and accepts exactly:
    - a calibench.Calibrator: its transform of logits_or_probs, with the same labels; the
      panel's metrics are the Calibrator's evaluate() (the decision `calibench fit` scores),
      labelled e.g. "ts (T = 1.52)";
    - a tuple (values, labels) or (values, labels, probs): another split's logits (or
      probabilities with probs True), labelled "compare";
    - a dict returned by plot_data with the same bins (its panels and labels as they are);
    - anything else is taken as an array of probabilities [N, K] (or binary [N]) of the same
      samples, with the same labels, e.g. cal.transform(logits), labelled "calibrated".

    ax: None (a new figure through pyplot, the current backend unchanged), or one Axes, or a
    sequence of Axes: one per panel for "reliability" and "density" (the reliability's
    histogram is appended below its Axes), one for "retention"; the figure's suptitle is then
    left to the caller. path: also write the figure there (.png at 150 dpi, .svg or .pdf).
    """
    import calibench

    _check_kind(kind)
    if path is not None:
        _format_of(path)
    if probs is None and isinstance(compare, calibench.Calibrator):
        probs = compare.is_probs
    data = plot_data(logits_or_probs, labels, bins=bins, label=label, probs=probs, title=title)
    if compare is not None:
        other = _compare_data(calibench, compare, logits_or_probs, labels, int(bins), probs)
        data["panels"] = data["panels"] + list(other["panels"])
    return plot_json(data, kind=kind, path=path, ax=ax)


# ---------------------------------------------------------------------------------------------
# Validation


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_integer(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _kind_name(x):
    return "null" if x is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(x), "number" if _is_number(x) else type(x).__name__)


def _get(obj, key, where):
    if key not in obj:
        raise PlotError(f"{where}: missing key '{key}'" if where else f"missing key '{key}'")
    return obj[key]


def _join(where, key):
    return f"{where}.{key}" if where else key


def _unit(x, where, what, nullable=False):
    """A finite number in [0, 1] (or None when nullable)."""
    if x is None and nullable:
        return
    if not _is_number(x):
        raise PlotError(f"{where}: {what} must be a number{' or null' if nullable else ''}, found {_kind_name(x)}")
    if not math.isfinite(x):
        raise PlotError(f"{where}: {what} is {x} (not finite)")
    if not 0.0 <= x <= 1.0:
        raise PlotError(f"{where}: {what} {x!r} outside [0, 1]")


def _count(x, where, what="count"):
    if not _is_integer(x):
        if _is_number(x) and not math.isfinite(x):
            raise PlotError(f"{where}: {what} is {x} (not finite)")
        raise PlotError(f"{where}: {what} must be an integer, found {_kind_name(x)} {x!r}")
    if x < 0:
        raise PlotError(f"{where}: {what} {x} is negative")


def _array(obj, key, where, length):
    a = _get(obj, key, where)
    w = _join(where, key)
    if not isinstance(a, list):
        raise PlotError(f"{w}: expected an array, found {_kind_name(a)}")
    if len(a) != length:
        raise PlotError(f"{w}: {len(a)} entries, expected {length}")
    return a, w


def _validate_panel(p, where, bins, bin_rule):
    if not isinstance(p, dict):
        raise PlotError(f"{where}: expected an object, found {_kind_name(p)}")
    lab = _get(p, "label", where)
    if not isinstance(lab, str):
        raise PlotError(f"{where}.label: expected a string, found {_kind_name(lab)}")
    for key in ("ece", "accuracy"):
        _unit(_get(p, key, where), _join(where, key), key)
    n = _get(p, "n", where)
    _count(n, _join(where, "n"), "n")
    if n < 1:
        raise PlotError(f"{where}.n: n = {n}, expected at least 1 sample")
    _unit(_get(p, "r_auc", where), _join(where, "r_auc"), "r_auc", nullable=True)

    rel, w = _array(p, "reliability", where, bins)
    total = 0
    for i, b in enumerate(rel):
        wi = f"{w}[{i}]"
        if not isinstance(b, list) or len(b) != 3:
            found = f"{len(b)} values" if isinstance(b, list) else _kind_name(b)
            raise PlotError(f"{wi}: expected [count, accuracy, mean_confidence], found {found}")
        _count(b[0], f"{wi}[0]")
        _unit(b[1], f"{wi}[1]", "accuracy", nullable=True)
        _unit(b[2], f"{wi}[2]", "mean confidence", nullable=True)
        total += b[0]
    if bin_rule == "guo-strict" and total > n:
        raise PlotError(f"{w}: the counts sum to {total}, more than n = {n}")
    if bin_rule != "guo-strict" and total != n:
        raise PlotError(f"{w}: the counts sum to {total}, not n = {n}")

    ret, w = _array(p, "retention", where, RETENTION_POINTS)
    if ret[0] is not None:
        raise PlotError(f"{w}[0]: expected null (f = 0 retains no sample), found {ret[0]!r}")
    for i, v in enumerate(ret):
        _unit(v, f"{w}[{i}]", "accuracy", nullable=True)

    dens = _get(p, "density", where)
    wd = _join(where, "density")
    if not isinstance(dens, dict):
        raise PlotError(f"{wd}: expected an object, found {_kind_name(dens)}")
    edges, w = _array(dens, "edges", wd, DENSITY_BINS + 1)
    for j, e in enumerate(edges):
        _unit(e, f"{w}[{j}]", "edge")
        if abs(e - j / DENSITY_BINS) > 1e-9:
            raise PlotError(f"{w}[{j}]: edge {e!r} is not {j}/{DENSITY_BINS} (the edges are j / {DENSITY_BINS})")
    total = 0
    for key in ("correct", "incorrect"):
        counts, w = _array(dens, key, wd, DENSITY_BINS)
        for j, c in enumerate(counts):
            _count(c, f"{w}[{j}]")
        total += sum(counts)
    if total != n:
        raise PlotError(f"{wd}: correct and incorrect counts sum to {total}, not n = {n}")


def validate(data, where=""):
    """Checks plot data against the schema (the module docstring); raises PlotError naming the
    key and the first bad index. Returns data."""
    if not isinstance(data, dict):
        raise PlotError(f"{where or 'plot data'}: expected a JSON object, found {_kind_name(data)}")
    title = _get(data, "title", where)
    if not isinstance(title, str):
        raise PlotError(f"{_join(where, 'title')}: expected a string, found {_kind_name(title)}")
    bins = _get(data, "bins", where)
    _count(bins, _join(where, "bins"), "bins")
    if bins < 1:
        raise PlotError(f"{_join(where, 'bins')}: bins = {bins}, expected at least 1")
    rule = _get(data, "bin_rule", where)
    if rule not in BIN_RULES:
        raise PlotError(f"{_join(where, 'bin_rule')}: {rule!r} is not one of {', '.join(BIN_RULES)}")
    panels = _get(data, "panels", where)
    wp = _join(where, "panels")
    if not isinstance(panels, list):
        raise PlotError(f"{wp}: expected an array, found {_kind_name(panels)}")
    if not panels:
        raise PlotError(f"{wp}: no panels")
    for i, p in enumerate(panels):
        _validate_panel(p, f"{wp}[{i}]", bins, rule)
    return data


def _check_kind(kind):
    if kind not in KINDS:
        raise PlotError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")


def _format_of(path):
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise PlotError(f"--out: {str(path)!r} has extension {ext or '(none)'!r}; expected .png, .svg or .pdf")
    return FORMATS[ext]


# ---------------------------------------------------------------------------------------------
# Drawing


def _pyplot(script=False):
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(MATPLOTLIB_MISSING) from e
    if script:
        matplotlib.use("Agg")
        matplotlib.rcdefaults()  # independent of the user's matplotlibrc: the same files everywhere
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(f"{MATPLOTLIB_MISSING} ({e})") from e
    return matplotlib, plt


def _nan(x):
    return math.nan if x is None else float(x)


def _axes_list(ax, count, kind):
    if isinstance(ax, (list, tuple)) or (isinstance(ax, np.ndarray) and ax.dtype == object):
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
    else:
        axes = [ax]
    if len(axes) != count:
        raise ValueError(f"ax: kind '{kind}' with {count} panel{'s' if count != 1 else ''} needs {count} "
                         f"Axes, got {len(axes)}")
    return axes


def _grid(n):
    ncols = min(4, n)
    return ncols, (n + ncols - 1) // ncols


def _draw_reliability(ax, axc, panel, bins, first_col, legend):
    m = bins
    width = 1.0 / m
    lefts = [i / m for i in range(m)]
    rel = [(int(b[0]), _nan(b[1]), _nan(b[2])) for b in panel["reliability"]]
    filled = [(x, b) for x, b in zip(lefts, rel) if b[0] > 0 and not math.isnan(b[1])]
    ax.bar([x for x, _ in filled], [b[1] for _, b in filled], width=width, align="edge", color=ACCURACY_COLOR,
           edgecolor=ACCURACY_EDGE, linewidth=0.6, label="accuracy", zorder=2)
    gaps = [(x, b) for x, b in filled if not math.isnan(b[2])]
    ax.bar([x for x, _ in gaps], [abs(b[2] - b[1]) for _, b in gaps], width=width, align="edge",
           bottom=[min(b[1], b[2]) for _, b in gaps], color=GAP_COLOR, alpha=0.45, hatch="//", edgecolor=GAP_EDGE,
           linewidth=0.6, label="gap to confidence", zorder=3)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1.0, label="perfect calibration", zorder=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{panel['label']}\nECE {100 * panel['ece']:.2f}%, accuracy {100 * panel['accuracy']:.2f}%")
    if first_col:
        ax.set_ylabel("accuracy")
    ax.tick_params(labelbottom=False)
    if legend:
        ax.legend(loc="upper left", frameon=True)
    total = sum(b[0] for b in rel)
    shares = [b[0] / total if total else 0.0 for b in rel]
    axc.bar(lefts, shares, width=width, align="edge", color="0.55", edgecolor="0.35", linewidth=0.4)
    axc.set_xlim(0, 1)
    axc.set_ylim(0, max(shares) * 1.15 if max(shares) > 0 else 1)
    axc.set_xlabel("confidence")
    if first_col:
        axc.set_ylabel("share")
    from matplotlib.ticker import MaxNLocator

    axc.yaxis.set_major_locator(MaxNLocator(2))


def _draw_density(ax, panel, first_col, legend):
    dens = panel["density"]
    edges = np.asarray(dens["edges"], dtype=np.float64)
    widths = np.diff(edges)
    for key, color, name in (("correct", CORRECT_COLOR, "correct"), ("incorrect", INCORRECT_COLOR, "incorrect")):
        counts = np.asarray(dens[key], dtype=np.float64)
        total = counts.sum()
        if total == 0:
            ax.plot([], [], color=color, label=f"{name} (none)")
            continue
        values = counts / (total * widths)  # the area under each histogram is 1
        ax.stairs(values, edges, fill=True, color=color, alpha=0.3, zorder=2)
        ax.stairs(values, edges, color=color, linewidth=1.2, label=f"{name} ({int(total)})", zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("confidence")
    if first_col:
        ax.set_ylabel("density")
    ax.set_title(f"{panel['label']}\naccuracy {100 * panel['accuracy']:.2f}%")
    if legend:
        ax.legend(loc="upper left", frameon=True)


def _draw_retention(ax, panels):
    for i, panel in enumerate(panels):
        pts = [(k / (RETENTION_POINTS - 1), v) for k, v in enumerate(panel["retention"]) if v is not None]
        rauc = panel.get("r_auc")
        rtext = "n/a" if rauc is None else f"{rauc:.4f}"
        ax.plot([x for x, _ in pts], [v for _, v in pts], color=f"C{i % 10}",
                linestyle=LINESTYLES[(i // 10) % len(LINESTYLES)], linewidth=1.3,
                label=f"{panel['label']} (R-AUC {rtext})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("retained fraction (most confident predictions kept)")
    ax.set_ylabel("accuracy of the retained predictions")
    ax.set_title("accuracy vs retained fraction")
    ax.legend(loc="lower left")


def _draw(plt, data, kind, ax):
    panels, bins = data["panels"], data["bins"]
    n = len(panels)
    own = ax is None
    fig = None
    if kind == "reliability":
        if own:
            ncols, nrows = _grid(n)
            fig = plt.figure(figsize=(3.2 * ncols, 3.8 * nrows + 0.4))
            outer = fig.add_gridspec(nrows, ncols)
            pairs = []
            for idx in range(n):
                r, c = divmod(idx, ncols)
                inner = outer[r, c].subgridspec(2, 1, height_ratios=[4, 1], hspace=0.08)
                a = fig.add_subplot(inner[0])
                pairs.append((a, fig.add_subplot(inner[1], sharex=a), c == 0))
        else:
            from mpl_toolkits.axes_grid1 import make_axes_locatable

            pairs = []
            for a in _axes_list(ax, n, kind):
                axc = make_axes_locatable(a).append_axes("bottom", size="25%", pad=0.1, sharex=a)
                pairs.append((a, axc, True))
        for idx, ((a, axc, first_col), panel) in enumerate(zip(pairs, panels)):
            _draw_reliability(a, axc, panel, bins, first_col, legend=idx == 0)
        fig = fig or pairs[0][0].figure
    elif kind == "density":
        if own:
            ncols, nrows = _grid(n)
            fig, grid = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows + 0.4), squeeze=False)
            axes = list(grid.ravel())
            for a in axes[n:]:
                a.set_visible(False)
            cols = [i % ncols == 0 for i in range(n)]
        else:
            axes = _axes_list(ax, n, kind)
            cols = [True] * n
        for idx, panel in enumerate(panels):
            _draw_density(axes[idx], panel, cols[idx], legend=idx == 0)
        fig = fig or axes[0].figure
    else:
        if own:
            fig, a = plt.subplots(figsize=(6.4, 4.4))
        else:
            a = _axes_list(ax, 1, kind)[0]
            fig = a.figure
        _draw_retention(a, panels)
    if own:
        suffix = f", {bins} bins" if kind == "reliability" else ""
        title = f"{data['title']}{suffix}"
        width_chars = max(20, int(fig.get_figwidth() * 10))  # about 10 characters per inch at the suptitle's size
        fig.suptitle(_wrap(title, width_chars), fontsize="medium")
        fig.tight_layout()
    return fig


def _wrap(text, width):
    """Breaks a long title at spaces into lines of at most `width` characters (or one long word)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def _save(fig, path):
    fmt = _format_of(path)
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PlotError(f"--out: folder {folder} does not exist")
    temp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    # No dates or versions in the files: the same data give the same bytes.
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}[fmt]
    try:
        fig.savefig(temp, format=fmt, dpi=PNG_DPI, metadata=metadata)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def plot_json(data, kind="reliability", path=None, ax=None, _script=False):
    """Validates plot data (a dict of the JSON schema), draws it as `kind` and returns the
    matplotlib Figure; writes it to path (.png at 150 dpi, .svg, .pdf) when given. ax: as
    plot_reliability. Raises PlotError for bad data, kind or extension, ImportError (saying how
    to install it) without matplotlib."""
    _check_kind(kind)
    if path is not None:
        _format_of(path)
    validate(data)
    matplotlib, plt = _pyplot(script=_script)
    with matplotlib.rc_context(STYLE):
        fig = _draw(plt, data, kind, ax)
        if path is not None:
            _save(fig, path)
    return fig


# ---------------------------------------------------------------------------------------------
# Script


def _fail(message, status=2):
    print(f"{PROG}: error: {message}" if status == 2 else message, file=sys.stderr)
    sys.exit(status)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too)
        _fail(message.replace("\n", " "))


def main(argv=None):
    p = _Parser(prog=PROG, description="Draw a calibench plot-data JSON (eval --plot, fit --plot).")
    p.add_argument("data", metavar="DATA.json", help="plot-data JSON ('-' reads stdin)")
    p.add_argument("--out", required=True, metavar="FILE", help="output file: .png, .svg or .pdf")
    p.add_argument("--kind", default="reliability", choices=KINDS, help="reliability (default), retention, density")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        _format_of(args.out)
        try:
            if args.data == "-":
                text = sys.stdin.buffer.read()
            else:
                with open(args.data, "rb") as f:
                    text = f.read()
            data = json.loads(text.decode("utf-8"))
        except FileNotFoundError:
            raise PlotError(f"{args.data}: no such file")
        except OSError as e:
            raise PlotError(f"{args.data}: cannot read ({e.strerror or e})")
        except (UnicodeDecodeError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PlotError(f"{args.data}: not valid JSON ({first})")
        validate(data)
        folder = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(folder):
            raise PlotError(f"--out: folder {folder} does not exist")
    except PlotError as e:
        _fail(str(e))
    try:
        _matplotlib, plt = _pyplot(script=True)
    except ImportError as e:
        _fail(str(e), status=4)
    try:
        fig = plot_json(data, kind=args.kind, path=args.out, _script=True)
    except PlotError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"--out: cannot write {args.out} ({e.strerror or e})")
    plt.close(fig)
    print(args.out, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout closed early: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
