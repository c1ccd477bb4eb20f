#!/usr/bin/env python3
"""Plots of a `calibench sweep` study: python3 experiments/plot_sweep.py DIR [--seed S] [--formats png,svg]

Reads DIR/results.json (written by `calibench sweep SPEC.toml --out DIR`) and writes, for every
dataset, into DIR/plots/:

  <dataset>-reliability.<fmt>         one reliability diagram per method label (test split):
                                      accuracy per bin, the gap to the mean confidence shaded,
                                      the diagonal, the share of samples per bin below; the test
                                      ECE in each panel's title
  <dataset>-retention.<fmt>           accuracy versus retention fraction of every method, R-AUC
                                      in the legend
  <dataset>-objective.<fmt>           (when a cell has an objective_curve) the validation
                                      objective over the fit's grid, temperatures and weights in
                                      separate panels, the chosen candidate marked
  <dataset>-class-temperatures.<fmt>  (when a cts_greedy cell exists) each class's fitted
                                      temperature versus its validation accuracy, the initial
                                      single temperature as a horizontal line

Every plot shows one seed: --seed, by default the smallest seed among the cells that did not
fail. Failed cells (with "error") are skipped. Dataset names are sanitised for file names.

The files written are printed to stdout, one per line. Exit status: 0 on success; 2 for a
missing or invalid results.json or a bad argument (one line `plot_sweep: error: ...` on
stderr); 4 when matplotlib is not installed.
"""

import argparse
import json
import math
import os
import re
import sys

PROG = "plot_sweep"
FORMATS = ("png", "svg", "pdf")
TEMPERATURE_METHODS = ("ts", "cts_greedy", "cts_conf", "bts")
WEIGHT_METHODS = ("ws", "cws")
METRIC_NAMES = {"ece": "ECE", "adaece": "AdaECE", "nll": "NLL", "sce": "SCE", "ace": "ACE", "mce": "MCE"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


class PlotError(Exception):
    """A problem with the input or the arguments: exit 2 with one line."""


def fail(message, status=2):
    print(f"{PROG}: error: {message}" if status == 2 else f"{PROG}: {message}", file=sys.stderr)
    sys.exit(status)


def note(message):
    print(f"{PROG}: note: {message}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too)
        fail(message.replace("\n", " "))


def parse_args(argv):
    p = Parser(prog=PROG, description="Plots of a calibench sweep (DIR/results.json) into DIR/plots.")
    p.add_argument("dir", metavar="DIR", help="output folder of `calibench sweep`")
    p.add_argument("--seed", type=int, default=None, help="seed to plot (default: the smallest seed present)")
    p.add_argument("--formats", default="png,svg", help="comma-separated file formats (png, svg, pdf)")
    args = p.parse_args(argv)
    formats = []
    for f in args.formats.split(","):
        f = f.strip().lower()
        if not f:
            continue
        if f not in FORMATS:
            fail(f"unknown format '{f}' in --formats (expected {', '.join(FORMATS)})")
        if f not in formats:
            formats.append(f)
    if not formats:
        fail("--formats names no format")
    args.formats = formats
    return args


# ---------------------------------------------------------------------------------------------
# Input


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def finite_or_nan(x):
    return float(x) if is_number(x) and math.isfinite(x) else math.nan


def load_cells(path):
    """Cells of results.json that did not fail; PlotError when the file is missing or invalid."""
    if not os.path.isfile(path):
        raise PlotError(f"{path}: no such file (run `calibench sweep SPEC --out DIR` first)")
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PlotError(f"{path}: not valid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
    if not isinstance(data, list):
        raise PlotError(f"{path}: expected a JSON array of cells, found {type(data).__name__}")
    cells = []
    for i, c in enumerate(data):
        if not isinstance(c, dict):
            raise PlotError(f"{path}: cell {i} is not an object")
        if c.get("error") not in (None, ""):
            continue
        for key, kind in (("dataset", str), ("label", str), ("method", str)):
            if not isinstance(c.get(key), kind):
                raise PlotError(f"{path}: cell {i} has no string '{key}'")
        if not isinstance(c.get("seed"), int) or isinstance(c.get("seed"), bool):
            raise PlotError(f"{path}: cell {i} has no integer 'seed'")
        cells.append(c)
    return cells


def plot_style():
    """The rcParams the figures share: python/calibench/plots.py's STYLE (loaded by its path, so
    the package need not be installed)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python", "calibench", "plots.py")
    spec = importlib.util.spec_from_file_location("calibench_plots_by_path", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STYLE


def ordered_unique(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def safe_name(name):
    """A file-name-safe form of a dataset name: [A-Za-z0-9._-] only, no leading dot or dash."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    return s or "dataset"


def file_stems(datasets):
    """Distinct file stems for the datasets (a numeric suffix where two names sanitise alike)."""
    stems, used = {}, set()
    for d in datasets:
        base = safe_name(d)
        stem, n = base, 2
        while stem.lower() in used:  # case-insensitive file systems
            stem = f"{base}-{n}"
            n += 1
        used.add(stem.lower())
        stems[d] = stem
    return stems


def reliability_bins(cell):
    """[(count, accuracy, confidence)] of the test split, or None when absent or malformed."""
    rel = cell.get("reliability")
    bins = rel.get("test") if isinstance(rel, dict) else None
    if not isinstance(bins, list) or not bins:
        return None
    out = []
    for b in bins:
        if not isinstance(b, list) or len(b) != 3 or not is_number(b[0]):
            return None
        out.append((int(b[0]), finite_or_nan(b[1]), finite_or_nan(b[2])))
    return out


def test_metric(cell, key):
    t = cell.get("test")
    return finite_or_nan(t.get(key)) if isinstance(t, dict) else math.nan


def retention(cell):
    r = cell.get("test_retention")
    if not isinstance(r, list) or len(r) < 2:
        return None
    return [finite_or_nan(v) for v in r]


def objective_curve(cell):
    """(metric, candidates, values) or None."""
    oc = cell.get("objective_curve")
    if not isinstance(oc, dict):
        return None
    cand, vals = oc.get("candidates"), oc.get("values")
    if not isinstance(cand, list) or not isinstance(vals, list) or len(cand) != len(vals) or not cand:
        return None
    if not all(is_number(x) for x in cand):
        return None
    return str(oc.get("metric", "objective")), [float(x) for x in cand], [finite_or_nan(v) for v in vals]


def curve_kind(cell):
    """'weight' or 'temperature': which axis an objective curve's candidates live on."""
    params = cell.get("params") if isinstance(cell.get("params"), dict) else {}
    if cell["method"] in WEIGHT_METHODS or "weight" in params:
        return "weight"
    return "temperature"


def chosen_candidate(cell, candidates, values):
    """The candidate the fit chose: from params, else the first minimum of the curve."""
    params = cell.get("params") if isinstance(cell.get("params"), dict) else {}
    for key in ("temperature", "weight", "initial_temperature"):
        if is_number(params.get(key)):
            return float(params[key])
    finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
    return candidates[min(finite)[1]] if finite else None


# ---------------------------------------------------------------------------------------------
# Plots


def setup_matplotlib():
    try:
        import matplotlib
    except ImportError:
        fail("matplotlib is not installed (pip install matplotlib)", status=4)
    matplotlib.use("Agg")
    matplotlib.rcdefaults()  # independent of the user's matplotlibrc: same files everywhere
    matplotlib.rcParams.update({**plot_style(), "savefig.dpi": 120})
    import matplotlib.pyplot as plt

    return plt


class Writer:
    def __init__(self, plt, out_dir, formats):
        self.plt, self.out_dir, self.formats = plt, out_dir, formats

    def save(self, fig, stem):
        """Saves fig in every format (atomically) and closes it; prints the files."""
        try:
            fig.tight_layout()
            for fmt in self.formats:
                path = os.path.join(self.out_dir, f"{stem}.{fmt}")
                temp = os.path.join(self.out_dir, f".{stem}.{fmt}.tmp{os.getpid()}")
                # No dates or versions in the files: the same results give the same bytes.
                metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                            "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}[fmt]
                try:
                    fig.savefig(temp, format=fmt, metadata=metadata)
                    os.replace(temp, path)
                finally:
                    if os.path.exists(temp):
                        os.remove(temp)
                print(path, flush=True)
        finally:
            self.plt.close(fig)


def plot_reliability(w, dataset, stem, seed, cells):
    panels = [(c, reliability_bins(c)) for c in cells]
    for c, bins in panels:
        if bins is None:
            note(f"{dataset} / {c['label']}: no test reliability bins; left out of the reliability diagram")
    panels = [(c, b) for c, b in panels if b is not None]
    if not panels:
        return
    plt = w.plt
    n = len(panels)
    ncols = min(4, n)
    nrows = (n + ncols - 1) // ncols
    fig = plt.figure(figsize=(2.9 * ncols, 3.4 * nrows + 0.4))
    outer = fig.add_gridspec(nrows, ncols)
    for idx, (cell, bins) in enumerate(panels):
        r, col = divmod(idx, ncols)
        inner = outer[r, col].subgridspec(2, 1, height_ratios=[4, 1], hspace=0.08)
        ax = fig.add_subplot(inner[0])
        axc = fig.add_subplot(inner[1], sharex=ax)
        m = len(bins)
        width = 1.0 / m
        lefts = [i * width for i in range(m)]
        filled = [(x, b) for x, b in zip(lefts, bins) if b[0] > 0 and not math.isnan(b[1])]
        ax.bar([x for x, _ in filled], [b[1] for _, b in filled], width=width, align="edge",
               color="#4C72B0", edgecolor="#1f3b63", linewidth=0.6, label="accuracy", zorder=2)
        gaps = [(x, b) for x, b in filled if not math.isnan(b[2])]
        ax.bar([x for x, _ in gaps], [abs(b[2] - b[1]) for _, b in gaps], width=width, align="edge",
               bottom=[min(b[1], b[2]) for _, b in gaps], color="#DD8452", alpha=0.45, hatch="//",
               edgecolor="#C44E52", linewidth=0.6, label="gap to confidence", zorder=3)
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1.0, label="perfect calibration", zorder=4)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("auto")
        ece = test_metric(cell, "ece")
        ece_text = "n/a" if math.isnan(ece) else f"{100 * ece:.2f}%"
        title = cell["label"] if cell["label"] == cell["method"] else f"{cell['label']} ({cell['method']})"
        ax.set_title(f"{title}\ntest ECE {ece_text}")
        if col == 0:
            ax.set_ylabel("accuracy")
        ax.tick_params(labelbottom=False)
        if idx == 0:
            ax.legend(loc="upper left", frameon=True)
        total = sum(b[0] for b in bins)
        shares = [b[0] / total if total else 0.0 for b in bins]
        axc.bar(lefts, shares, width=width, align="edge", color="0.55", edgecolor="0.35", linewidth=0.4)
        axc.set_ylim(0, max(shares) * 1.15 if max(shares) > 0 else 1)
        axc.set_xlabel("confidence")
        if col == 0:
            axc.set_ylabel("share")
        axc.yaxis.set_major_locator(plt.MaxNLocator(2))
    M = len(panels[0][1])
    fig.suptitle(f"{dataset}: reliability (test split, seed {seed}, {M} bins)")
    w.save(fig, f"{stem}-reliability")


def plot_retention(w, dataset, stem, seed, cells):
    plt = w.plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    drawn = 0
    for i, cell in enumerate(cells):
        r = retention(cell)
        if r is None:
            note(f"{dataset} / {cell['label']}: no test_retention; left out of the retention plot")
            continue
        x = [k / (len(r) - 1) for k in range(len(r))]
        rauc = test_metric(cell, "r_auc")
        if math.isnan(rauc):  # the trapezoid over the sampled curve
            rauc = sum((r[k] + r[k + 1]) / 2 * (x[k + 1] - x[k]) for k in range(len(r) - 1))
        ax.plot(x, r, color=f"C{i % 10}", linestyle=LINESTYLES[(i // 10) % len(LINESTYLES)], linewidth=1.3,
                label=f"{cell['label']} (R-AUC {rauc:.4f})")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return
    ax.set_xlim(0, 1)
    ax.set_xlabel("retention fraction (most confident predictions kept)")
    ax.set_ylabel("accuracy (rejected counted as correct)")
    ax.set_title(f"{dataset}: accuracy vs retention (test split, seed {seed})")
    ax.legend(loc="lower left")
    w.save(fig, f"{stem}-retention")


def plot_objective(w, dataset, stem, seed, cells):
    curves = {"temperature": [], "weight": []}
    for i, cell in enumerate(cells):
        oc = objective_curve(cell)
        if oc is not None:
            curves[curve_kind(cell)].append((i, cell, oc))
    kinds = [k for k in ("temperature", "weight") if curves[k]]
    if not kinds:
        return
    plt = w.plt
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        metrics = ordered_unique(oc[0] for _, _, oc in curves[kind])
        all_x = [x for _, _, oc in curves[kind] for x in oc[1]]
        for i, cell, (metric, cand, vals) in curves[kind]:
            color = f"C{i % 10}"
            chosen = chosen_candidate(cell, cand, vals)
            label = f"{cell['label']} ({METRIC_NAMES.get(metric, metric)})"
            if chosen is not None:
                label += f", chosen {chosen:.4g}"
            marker = MARKERS[i % len(MARKERS)]
            ax.plot(cand, [100 * v for v in vals], color=color, linewidth=1.2, label=label)
            if chosen is not None:
                j = min(range(len(cand)), key=lambda k: abs(cand[k] - chosen))
                ax.axvline(chosen, color=color, linestyle=":", linewidth=0.9)
                if not math.isnan(vals[j]):
                    ax.plot([chosen], [100 * vals[j]], marker=marker, markersize=7, color=color,
                            markeredgecolor="black", markeredgewidth=0.6, linestyle="none", zorder=5)
        if kind == "temperature":
            if all_x and min(all_x) > 0 and max(all_x) / min(all_x) >= 20:
                ax.set_xscale("log")
            ax.set_xlabel("temperature")
        else:
            ax.set_xlabel("weight")
        ax.set_ylabel(f"validation {' / '.join(METRIC_NAMES.get(m, m) for m in metrics)} (%)")
        ax.set_title(f"{kind}s")
        ax.legend(loc="best")
    fig.suptitle(f"{dataset}: fit objective over the grid (validation, seed {seed})")
    w.save(fig, f"{stem}-objective")


def plot_class_temperatures(w, dataset, stem, seed, cells):
    cts = [c for c in cells if c["method"] == "cts_greedy"]
    if not cts:
        return
    plt = w.plt
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    drawn = 0
    for i, cell in enumerate(cts):
        params = cell.get("params") if isinstance(cell.get("params"), dict) else {}
        temps, acc = params.get("temperatures"), cell.get("val_class_accuracy")
        if not isinstance(temps, list) or not isinstance(acc, list) or len(temps) != len(acc):
            note(f"{dataset} / {cell['label']}: no per-class temperatures and accuracies of equal length; "
                 "left out of the class-temperature plot")
            continue
        pts = [(finite_or_nan(a), finite_or_nan(t)) for a, t in zip(acc, temps)]
        pts = [(a, t) for a, t in pts if not math.isnan(a) and not math.isnan(t)]
        absent = len(temps) - len(pts)
        color = f"C{i % 10}"
        label = cell["label"] if cell["label"] == cell["method"] else f"{cell['label']} ({cell['method']})"
        if absent:
            label += f", {absent} class{'es' if absent != 1 else ''} without val samples left out"
        ax.scatter([a for a, _ in pts], [t for _, t in pts], marker=MARKERS[i % len(MARKERS)], s=22,
                   color=color, alpha=0.75, edgecolors="black", linewidths=0.4, label=label, zorder=3)
        t0 = finite_or_nan(params.get("initial_temperature"))
        if not math.isnan(t0):
            ax.axhline(t0, color=color, linestyle="--", linewidth=1.0, label=f"{cell['label']}: initial T = {t0:.4g}")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return
    ax.set_xlabel("class accuracy on validation (uncalibrated)")
    ax.set_ylabel("class temperature")
    ax.set_title(f"{dataset}: per-class temperatures (seed {seed})")
    ax.legend(loc="best")
    w.save(fig, f"{stem}-class-temperatures")


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results = os.path.join(args.dir, "results.json")
    try:
        cells = load_cells(results)
        seeds = sorted({c["seed"] for c in cells})
        if args.seed is not None and cells and args.seed not in seeds:
            raise PlotError(f"seed {args.seed} is not in {results} (seeds: {', '.join(map(str, seeds))})")
    except PlotError as e:
        fail(str(e))
    plt = setup_matplotlib()
    if not cells:
        note(f"{results} has no successful cells; nothing to plot")
        return 0
    seed = args.seed if args.seed is not None else seeds[0]
    out_dir = os.path.join(args.dir, "plots")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        fail(f"cannot create {out_dir}: {e.strerror or e}")
    w = Writer(plt, out_dir, args.formats)
    datasets = ordered_unique(c["dataset"] for c in cells)
    stems = file_stems(datasets)
    for d in datasets:
        chosen = [c for c in cells if c["dataset"] == d and c["seed"] == seed]
        if not chosen:
            note(f"{d}: no successful cell with seed {seed}; no plots")
            continue
        # One cell per label (the first, should a label repeat).
        by_label = {}
        for c in chosen:
            by_label.setdefault(c["label"], c)
        chosen = list(by_label.values())
        plot_reliability(w, d, stems[d], seed, chosen)
        plot_retention(w, d, stems[d], seed, chosen)
        plot_objective(w, d, stems[d], seed, chosen)
        plot_class_temperatures(w, d, stems[d], seed, chosen)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
