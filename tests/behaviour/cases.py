"""The golden corpus: every case is a list of steps run in one fresh scratch folder per side.

A step is ("cli", [args...]) (run as BIN args...) or ("py", [args...]) (run as python3
py_probe.py args... with the side's calibench package). Every file a case leaves in its scratch
folder is compared too (HDF5 by h5py, text exactly after normalisation, anything else by bytes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple

import datagen

Step = Tuple[str, List[str]]


@dataclass
class Case:
    name: str
    steps: List[Step]
    timeout: float = 120.0
    tags: List[str] = field(default_factory=list)


PRESETS = ["calibench", "torchmetrics", "netcal", "focal", "guo", "dirichlet", "verified-calibration", "mixnmatch"]
BINNINGS = ["right-closed", "guo-strict", "left-closed", "torchmetrics", "digitize-linspace"]
ADAPTIVE = ["split", "interp", "quantile", "midpoint", "floor-count"]
SUBCOMMANDS = ["eval", "info", "synth", "seg-eval", "version", "fit", "apply", "sweep-candidates", "sctl-weights",
               "lsplus-priors", "sweep"]
FAMILIES = ["temperature", "inverse-temperature", "weight", "class-temperature", "bin-temperature"]
PY_SECTIONS = ["misc", "evaluate", "evaluate_inputs", "fit0", "fit1", "fit2", "fit3", "fit_options", "fit_probs",
               "sweeps", "dumps", "json", "errors"]


def fit_method_names(old_bin: str, old_py: str = None) -> List[str]:
    """The methods `calibench fit --method` accepts: the old Python package's `calibench.methods`
    (when it imports) followed by any other name parsed from `calibench fit --help` of the old
    binary (the help does not list every name, e.g. pts+mse)."""
    names = []
    if old_py:
        env = dict(os.environ, PYTHONPATH=old_py)
        r = subprocess.run([sys.executable, "-c", "import calibench; print(' '.join(calibench.methods))"],
                           capture_output=True, text=True, env=env)
        if r.returncode == 0:
            names = r.stdout.split()
    help_text = subprocess.run([old_bin, "fit", "--help"], capture_output=True, text=True).stdout
    line = next(l for l in help_text.splitlines() if l.strip().startswith("--method"))
    # "ts | ws | ... | ets; loss-trained: ets_sctl | pts | pts_sctl | BASE+LOSS with BASE in ts, ... and LOSS in ce, ..."
    text = line.split("TEXT", 1)[1]
    plain, trained = text.split("; loss-trained:")
    names += [m.strip() for m in plain.split("|")]
    head, rest = trained.split("BASE+LOSS with BASE in")
    names += [m.strip() for m in head.split("|") if m.strip()]
    bases_text, rest = rest.split("and LOSS in")
    bases = [b.strip() for b in bases_text.split(",")]
    losses = [l.strip() for l in rest.split("(")[0].split(",")]
    for b in bases:
        for l in losses:
            names.append(f"{b}+{l}")
    seen = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return seen


def is_trained(m: str) -> bool:
    return "+" in m or m in ("ets_sctl", "pts", "pts_sctl")


def fast(m: str) -> List[str]:
    """Fast settings: few iterations for the loss-trained methods."""
    return ["--iterations", "20"] if is_trained(m) else []


SPECS = {
    "basic": '''name = "golden basic"
bins = 15
seeds = [0, 1]
bootstrap = 20

[[datasets]]
synth = { name = "syn10", classes = 10, n_val = 500, n_test = 500, seed = 1 }

[[methods]]
method = "uncalibrated"

[[methods]]
label = "TS-{objective}"
method = "ts"
objective = ["nll", "ece", "adaece"]

[[methods]]
method = "ws"

[[methods]]
method = "cws"
calib_bins = [5, "auto"]

[[methods]]
method = "cts_greedy"
iterations = 2
accuracy_constraint = ["on", "off"]
''',
    "methods": '''name = "golden methods"
bins = 10
binning = "left-closed"
backend = "cpu"
seeds = [0, 1]
bootstrap = 20
bootstrap_seed = 4

[[datasets]]
synth = { name = "syn10", classes = 10, n_val = 500, n_test = 500, seed = 1 }

[[datasets]]
synth = { name = "syn3", classes = 3, n_val = 300, n_test = 400, seed = 2, temperature = 2.0, logit_scale = 3.0, class_distortion = 0.1, class_bias = 0.2 }

[[methods]]
method = "uncalibrated"

[[methods]]
method = "hist"
calib_bins = [5, 15]

[[methods]]
method = "iso"

[[methods]]
method = "vs"

[[methods]]
method = "cts_nll"

[[methods]]
label = "ETS-{objective}"
method = "ets"
objective = ["nll", "mse"]

[[methods]]
method = "cts_conf"
calib_bins = 5
grid = "0.5:3:0.1"

[[methods]]
method = "bts"

[[methods]]
method = "cts_greedy"
cts_search = "nudge"
iterations = 3

[[methods]]
method = "ms_odir"
iterations = 50
''',
    "conv": '''name = "golden conventions"
bins = 10
conventions = "netcal"
adaptive = "quantile"
classwise_reduction = "sum"
brier = "top-label"
seeds = [0]
bootstrap = 0
table_metric = "adaece"
notes = ["first note", "second note"]

[[datasets]]
synth = { name = "syn10", classes = 10, n_val = 400, n_test = 600, seed = 3, temperature = 2.5 }

[[methods]]
method = "uncalibrated"

[[methods]]
label = "TS"
method = "ts"

[[methods]]
label = "WS"
method = "ws"
grid = "0:1:0.01"
''',
    "boot1": '''bins = 15
seeds = [0]
bootstrap = 30
bootstrap_seed = 2

[[datasets]]
synth = { name = "syn2", classes = 2, n_val = 400, n_test = 400, seed = 8 }

[[methods]]
method = "uncalibrated"

[[methods]]
method = "ts"

[[methods]]
method = "iso"
''',
    "trained": '''name = "golden trained"
bins = 15
seeds = [0]
bootstrap = 0

[[datasets]]
synth = { name = "syn10", classes = 10, n_val = 500, n_test = 500, seed = 1 }

[[methods]]
method = "ts+sctl"
iterations = 20

[[methods]]
method = "ets_sctl"
iterations = 20

[[methods]]
method = "pts"
iterations = 20
''',
    "files": '''name = "golden files"
bins = 15
seeds = [0]
bootstrap = 0

[[datasets]]
path = "{DATA}/s3.h5"

[[datasets]]
path = "{DATA}/bad_nan.h5"

[[datasets]]
path = "{DATA}/no_such_*.h5"
optional = true

[[methods]]
method = "uncalibrated"

[[methods]]
method = "ts"
''',
    "seg": '''name = "golden segmentation"
task = "segmentation"
bins = 15
roi = "dilate"
roi_dilation = 3
methods = ["uncalibrated", "ts", "temperature-map", "augmented-mean"]

[[datasets]]
synth = { segmentation = true, classes = 4, images = 2, height = 16, width = 16, seed = 0 }

[[datasets]]
path = "{DATA}/seg3.h5"
''',
    "seg_all": '''task = "segmentation"
bins = 10
binning = "left-closed"
roi = "all"
methods = ["uncalibrated", "ts"]

[[datasets]]
synth = { segmentation = true, classes = 3, images = 2, height = 16, width = 16, seed = 2, temperature = 2.0, augmentations = 1 }
''',
    # malformed specs (exit status 2)
    "bad_key": '''bins = 15
frobnicate = 3
[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "ts"
''',
    "bad_method": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "no_such_method"
''',
    "bad_option": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "ts"
frobnicate = [1, 2]
''',
    "bad_option_value": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "ts"
objective = "brier"
''',
    "bad_option_method": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "vs"
objective = "ece"
''',
    "bad_label_dup": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
label = "A"
method = "ts"
[[methods]]
label = "A"
method = "ws"
''',
    "bad_synth_key": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1, colour = "red" }
[[methods]]
method = "ts"
''',
    "bad_path": '''[[datasets]]
path = "{DATA}/no_such_file.h5"
[[methods]]
method = "ts"
''',
    "bad_toml": '''bins = = 15
[[datasets]
''',
    "bad_no_methods": '''[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
''',
    "bad_seg_seeds": '''task = "segmentation"
seeds = [0, 1]
methods = ["uncalibrated"]
[[datasets]]
synth = { segmentation = true, classes = 4, images = 2, height = 16, width = 16, seed = 0 }
''',
    "bad_seg_method": '''task = "segmentation"
methods = ["uncalibrated", "no_such_method"]
[[datasets]]
synth = { segmentation = true, classes = 4, images = 2, height = 16, width = 16, seed = 0 }
''',
    "bad_bins": '''bins = 0
[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "ts"
''',
    "bad_task": '''task = "detection"
[[datasets]]
synth = { classes = 10, n_val = 500, n_test = 500, seed = 1 }
[[methods]]
method = "ts"
''',
}


def write_specs(work: Path) -> Path:
    d = work / "specs"
    d.mkdir(parents=True, exist_ok=True)
    data = str(work / "data")
    for name, text in SPECS.items():
        p = d / f"{name}.toml"
        text = text.replace("{DATA}", data)
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
    return d


def build(work: Path, old_bin: str, old_py: str = None) -> List[Case]:
    data = work / "data"
    specs = write_specs(work)
    D = lambda name: str(data / f"{name}.h5")  # noqa: E731
    S = lambda name: str(specs / f"{name}.toml")  # noqa: E731
    cases: List[Case] = []

    def add(name, *steps, timeout=120.0):
        cases.append(Case(name, [s if isinstance(s, tuple) else ("cli", list(s)) for s in steps], timeout))

    methods = fit_method_names(old_bin, old_py)

    # ------------------------------------------------------------------ help, version
    add("help/top", ["--help"])
    add("help/all", ["--help-all"])
    add("help/none", [])
    for sub in SUBCOMMANDS:
        add(f"help/{sub}", [sub, "--help"])
    add("version", ["version"])

    # ------------------------------------------------------------------ info
    for d in ["s10", "p10", "s3", "s2", "s100", "ties", "edges", "edges3", "onehot", "f16", "f64col", "train",
              "perfect", "seg", "p3f32"]:
        for fmt in ["table", "json"]:
            add(f"info/{d}/{fmt}", ["info", D(d), "--format", fmt])
    for real in datagen.real_dumps():
        add(f"info/real/{real.stem}", ["info", str(real), "--format", "json"])

    # ------------------------------------------------------------------ eval
    for d in ["s10", "p10", "s3", "s2", "s100", "p100", "ties", "edges", "edges_nz", "edges3", "edges15", "onehot",
              "onehot_ok",
              "f16", "f64col", "p3f32", "perfect", "s10cal"]:
        add(f"eval/{d}/default", ["eval", D(d)])
        add(f"eval/{d}/json", ["eval", D(d), "--format", "json"])
        add(f"eval/{d}/val/json", ["eval", D(d), "--split", "val", "--format", "json"])
    add("eval/train/split-train", ["eval", D("train"), "--split", "train", "--format", "json"])
    add("eval/train/split-train/table", ["eval", D("train"), "--split", "train"])
    for p in PRESETS:
        for d in ["s10", "p10", "edges", "ties", "s2"]:
            add(f"eval/{d}/conventions-{p}/json", ["eval", D(d), "--conventions", p, "--format", "json"])
        add(f"eval/s10/conventions-{p}/table", ["eval", D("s10"), "--conventions", p])
        add(f"eval/edges/conventions-{p}/bins10", ["eval", D("edges"), "--conventions", p, "--bins", "10",
                                                   "--format", "json"])
    for b in BINNINGS:
        for d in ["s10", "edges", "edges15", "edges3", "ties"]:
            add(f"eval/{d}/binning-{b}/bins10", ["eval", D(d), "--binning", b, "--bins", "10", "--format", "json"])
        add(f"eval/edges15/binning-{b}", ["eval", D("edges15"), "--binning", b, "--format", "json"])
        add(f"eval/s10/classwise-binning-{b}", ["eval", D("s10"), "--classwise-binning", b, "--format", "json"])
        add(f"eval/edges/binning-{b}/reliability", ["eval", D("edges"), "--binning", b, "--bins", "10",
                                                    "--reliability"])
    for a in ADAPTIVE:
        for d in ["s10", "ties", "edges", "s2", "edges3"]:
            add(f"eval/{d}/adaptive-{a}", ["eval", D(d), "--adaptive", a, "--format", "json"])
        add(f"eval/s10/adaptive-{a}/bins7", ["eval", D("s10"), "--adaptive", a, "--bins", "7", "--format", "json"])
    for r in ["mean", "sum"]:
        add(f"eval/s10/classwise-reduction-{r}", ["eval", D("s10"), "--classwise-reduction", r, "--format", "json"])
    for br in ["sum", "per-class-mean", "top-label"]:
        add(f"eval/s10/brier-{br}", ["eval", D("s10"), "--brier", br, "--format", "json"])
        add(f"eval/p10/brier-{br}", ["eval", D("p10"), "--brier", br, "--format", "json"])
    for d in ["onehot", "s10", "edges3"]:
        add(f"eval/{d}/nll-clip", ["eval", D(d), "--nll-clip", "1e-15", "--format", "json"])
        add(f"eval/{d}/nll-clip-big", ["eval", D(d), "--nll-clip", "0.01"])
    for bins in ["1", "2", "10", "100", "1000"]:
        add(f"eval/s10/bins{bins}", ["eval", D("s10"), "--bins", bins, "--format", "json"])
    for d in ["s10", "p10", "edges", "s2"]:
        add(f"eval/{d}/bootstrap", ["eval", D(d), "--bootstrap", "50", "--seed", "3", "--format", "json"])
        add(f"eval/{d}/bootstrap/table", ["eval", D(d), "--bootstrap", "50", "--seed", "3"])
    add("eval/s10/bootstrap-level", ["eval", D("s10"), "--bootstrap", "40", "--seed", "7", "--level", "0.8",
                                     "--format", "json"])
    add("eval/s10/bootstrap-seed0", ["eval", D("s10"), "--bootstrap", "20", "--format", "json"])
    for d in ["s10", "edges", "ties", "p10"]:
        add(f"eval/{d}/reliability/json", ["eval", D(d), "--reliability", "--format", "json"])
        add(f"eval/{d}/reliability/table", ["eval", D(d), "--reliability"])
        add(f"eval/{d}/compare-conventions/table", ["eval", D(d), "--compare-conventions"])
        add(f"eval/{d}/compare-conventions/json", ["eval", D(d), "--compare-conventions", "--format", "json"])
    add("eval/s10/inversions/json", ["eval", D("s10"), "--inversions-against", D("s10t"), "--format", "json"])
    add("eval/s10/inversions/table", ["eval", D("s10"), "--inversions-against", D("s10t")])
    add("eval/s10/inversions-self", ["eval", D("s10"), "--inversions-against", D("s10"), "--format", "json"])
    add("eval/p10/inversions-s10", ["eval", D("p10"), "--inversions-against", D("s10t"), "--split", "val",
                                    "--format", "json"])
    add("eval/s10/inversions-mismatch", ["eval", D("s10"), "--inversions-against", D("s3")])
    add("eval/s10/everything", ["eval", D("s10"), "--conventions", "netcal", "--binning", "left-closed",
                                "--classwise-binning", "guo-strict", "--adaptive", "interp", "--classwise-reduction",
                                "sum", "--brier", "per-class-mean", "--nll-clip", "1e-7", "--bootstrap", "30",
                                "--seed", "5", "--level", "0.9", "--reliability", "--compare-conventions",
                                "--inversions-against", D("s10t"), "--bins", "12", "--format", "json"])
    add("eval/s10/everything/table", ["eval", D("s10"), "--conventions", "focal", "--bootstrap", "30", "--seed", "5",
                                      "--reliability", "--compare-conventions", "--inversions-against", D("s10t")])
    for real in datagen.real_dumps():
        add(f"eval/real/{real.stem}/json", ["eval", str(real), "--format", "json"])
        add(f"eval/real/{real.stem}/table", ["eval", str(real), "--conventions", "torchmetrics"])

    # ------------------------------------------------------------------ fit: every method
    for m in methods:
        odir = m in ("ms_odir", "dir_odir")
        for d in (["s3", "s10small"] if odir else ["s10", "p10", "s2", "ties"]):
            add(f"fit/{m}/{d}/json", ["fit", D(d), "--method", m, *fast(m), "--format", "json"])
        add(f"fit/{m}/{'s3' if odir else 's10'}/table", ["fit", D("s3" if odir else "s10"), "--method", m, *fast(m)])
        if not odir:
            add(f"fit/{m}/s3/json", ["fit", D("s3"), "--method", m, *fast(m), "--format", "json"])
    for m in methods:
        if m in ("ms_odir", "dir_odir"):
            continue
        if is_trained(m):
            continue
        add(f"fit/{m}/s100/json", ["fit", D("s100"), "--method", m, *(["--iterations", "1"] if m == "cts_greedy" else
                                                                       ["--iterations", "30"] if m in ("vs", "ms", "cts_nll") else []),
                                   "--format", "json"], timeout=240)
    for m in ["hist", "iso", "cws", "ws", "ts", "cts_conf", "bts", "ets", "vs"]:
        for d in ["edges", "edges_nz", "edges3", "edges15", "onehot_ok"]:
            add(f"fit/{m}/{d}/json", ["fit", D(d), "--method", m, "--format", "json"])
    for m in ["ts", "iso", "hist", "ets", "vs", "ms", "cts_nll", "ws"]:
        add(f"fit/{m}/onehot/json", ["fit", D("onehot"), "--method", m, "--format", "json"])
    for m in ["ts", "vs", "ts+sctl", "pts", "cws"]:
        add(f"fit/{m}/f16/json", ["fit", D("f16"), "--method", m, *fast(m), "--format", "json"])
        add(f"fit/{m}/f64col/json", ["fit", D("f64col"), "--method", m, *fast(m), "--format", "json"])
        add(f"fit/{m}/p3f32/json", ["fit", D("p3f32"), "--method", m, *fast(m), "--format", "json"])
        add(f"fit/{m}/perfect/json", ["fit", D("perfect"), "--method", m, *fast(m), "--format", "json"])
    # A few loss-trained methods with their default iterations on a small dump.
    for m in ["ts+ce", "ts+ls", "ts+fl", "cts_nll+sctl", "pts_sctl"]:
        add(f"fit/{m}/s3/default-iterations", ["fit", D("s3"), "--method", m, "--format", "json"])

    # ------------------------------------------------------------------ fit: options
    def fit(name, d, *args, fmt="json"):
        add(f"fit-opt/{name}", ["fit", D(d), *args, *(["--format", fmt] if fmt else [])])

    for obj in ["nll", "ece", "adaece"]:
        fit(f"ts/objective-{obj}", "s10", "--method", "ts", "--objective", obj)
        fit(f"ts/objective-{obj}/p10", "p10", "--method", "ts", "--objective", obj)
        fit(f"ts/objective-{obj}/edges", "edges", "--method", "ts", "--objective", obj, "--bins", "10")
        fit(f"ts/objective-{obj}/table", "s3", "--method", "ts", "--objective", obj, fmt=None)
    for g in ["0.5:3:0.01", "1,1.5,2", "0.1:10:0.1", "2"]:
        fit(f"ts/ece/grid-{g}", "s10", "--method", "ts", "--objective", "ece", "--grid", g)
        fit(f"ts/adaece/grid-{g}", "s10", "--method", "ts", "--objective", "adaece", "--grid", g)
    for b in BINNINGS:
        fit(f"ts/ece/binning-{b}", "s10", "--method", "ts", "--objective", "ece", "--binning", b, "--bins", "10")
        fit(f"cts_greedy/binning-{b}", "s3", "--method", "cts_greedy", "--binning", b, "--iterations", "2")
    for p in PRESETS:
        fit(f"ts/conventions-{p}", "s10", "--method", "ts", "--conventions", p)
        fit(f"ts/ece/conventions-{p}", "s10", "--method", "ts", "--objective", "ece", "--conventions", p)
    fit("ts/adaece/adaptive-split", "s10", "--method", "ts", "--objective", "adaece", "--adaptive", "split")
    fit("ts/nll/adaptive-interp", "s10", "--method", "ts", "--adaptive", "interp")
    fit("ts/nll/bins7/reduction-sum/brier", "s10", "--method", "ts", "--bins", "7", "--classwise-reduction", "sum",
        "--brier", "top-label", "--nll-clip", "1e-15", "--classwise-binning", "left-closed")
    for m in ["cws", "cts_conf", "bts"]:
        for cb in ["2", "5", "15", "50", "auto"]:
            fit(f"{m}/calib-bins-{cb}", "s10", "--method", m, "--calib-bins", cb)
        fit(f"{m}/calib-bins-auto/p10", "p10", "--method", m, "--calib-bins", "auto")
        fit(f"{m}/calib-bins-auto/table", "s3", "--method", m, "--calib-bins", "auto", fmt=None)
        fit(f"{m}/calib-bins-auto/adaptive-quantile", "s10", "--method", m, "--calib-bins", "auto", "--adaptive",
            "quantile")
        fit(f"{m}/calib-bins-300/small", "s10small", "--method", m, "--calib-bins", "300")
    fit("cts_conf/grid", "s10", "--method", "cts_conf", "--grid", "0.5:3:0.05")
    fit("cts_conf/grid-list", "s10", "--method", "cts_conf", "--grid", "0.8,1.2,1.6,2.0", "--calib-bins", "5")
    for cb in ["1", "5", "10", "15", "100"]:
        fit(f"hist/calib-bins-{cb}", "s10", "--method", "hist", "--calib-bins", cb)
    fit("hist/calib-bins-10/edges", "edges", "--method", "hist", "--calib-bins", "10")
    fit("hist/binning-left/edges", "edges", "--method", "hist", "--calib-bins", "10", "--binning", "left-closed",
        "--bins", "10")
    for search in ["grid", "nudge"]:
        for ac in ["on", "off"]:
            for d in ["s10", "s3"]:
                fit(f"cts_greedy/{search}/acc-{ac}/{d}", d, "--method", "cts_greedy", "--cts-search", search,
                    "--accuracy-constraint", ac)
            fit(f"cts_greedy/{search}/acc-{ac}/iterations2", "s10", "--method", "cts_greedy", "--cts-search", search,
                "--accuracy-constraint", ac, "--iterations", "2")
        fit(f"cts_greedy/{search}/grid", "s10", "--method", "cts_greedy", "--cts-search", search, "--grid",
            "0.5:3:0.25")
        fit(f"cts_greedy/{search}/iterations0", "s3", "--method", "cts_greedy", "--cts-search", search,
            "--iterations", "0")
    fit("cts_greedy/table", "s3", "--method", "cts_greedy", "--cts-search", "nudge", fmt=None)
    fit("ws/grid", "s10", "--method", "ws", "--grid", "0:1:0.01")
    fit("ws/grid-list", "s10", "--method", "ws", "--grid", "0,0.25,0.5,0.75,1")
    fit("ws/bins10", "edges", "--method", "ws", "--bins", "10")
    for obj in ["nll", "mse"]:
        for d in ["s10", "p10", "s3", "edges3", "s10cal"]:
            fit(f"ets/objective-{obj}/{d}", d, "--method", "ets", "--objective", obj)
    for it in ["0", "1", "5", "50"]:
        for m in ["vs", "ms", "cts_nll"]:
            fit(f"{m}/iterations-{it}", "s10", "--method", m, "--iterations", it)
    for m in ["ms_odir", "dir_odir"]:
        for d in ["s3", "s10small", "s3b"]:
            fit(f"{m}/fixed/{d}", d, "--method", m, "--odir-lambda", "1", "--odir-mu", "1")
        fit(f"{m}/fixed-0", "s3", "--method", m, "--odir-lambda", "0", "--odir-mu", "0", "--iterations", "50")
        fit(f"{m}/fixed-asym", "s3", "--method", m, "--odir-lambda", "0.5", "--odir-mu", "2")
        fit(f"{m}/grid", "s3", "--method", m, "--grid", "0.1,1,10")
        fit(f"{m}/grid-range", "s3b", "--method", m, "--grid", "0:2:1")
        fit(f"{m}/iterations20", "s10small", "--method", m, "--iterations", "20")
        fit(f"{m}/p3f32", "p3f32", "--method", m, "--odir-lambda", "1", "--odir-mu", "1")
        fit(f"{m}/table", "s3", "--method", m, "--odir-lambda", "1", "--odir-mu", "1", fmt=None)
        fit(f"{m}/k100-fixed", "s100", "--method", m, "--odir-lambda", "1", "--odir-mu", "1", "--iterations", "15")
    for backend in ["cpu", "auto"]:
        for m, extra in [("ts", []), ("ts", ["--objective", "ece"]), ("ws", []), ("cws", []), ("cts_conf", []),
                         ("bts", []), ("cts_greedy", ["--iterations", "2"]), ("vs", []), ("hist", []), ("iso", []),
                         ("ets", []), ("ts+sctl", ["--iterations", "20"])]:
            fit(f"{m}{'-'.join([''] + extra)}/backend-{backend}", "s10", "--method", m, *extra, "--backend", backend)
    # loss-trained options
    t = lambda m, *a: ["--method", m, "--iterations", "20", *a]  # noqa: E731
    fit("ts+sctl/norm-mm", "s10", *t("ts+sctl", "--sctl-norm", "mm"))
    fit("ts+sctl/norm-cm", "s10", *t("ts+sctl", "--sctl-norm", "cm"))
    fit("ts+sctl/norm-nd", "s10", *t("ts+sctl", "--sctl-norm", "nd"))
    fit("ts+sctl/slsqp", "s10", *t("ts+sctl", "--sctl-solver", "slsqp"))
    fit("ts+sctl/grid16", "s10", *t("ts+sctl", "--sctl-grid", "16"))
    fit("cts_nll+sctl/mm-slsqp", "s3", *t("cts_nll+sctl", "--sctl-norm", "mm", "--sctl-solver", "slsqp"))
    fit("ets+sctl/cm", "s10", *t("ets+sctl", "--sctl-norm", "cm"))
    fit("pts+sctl/grid8", "s10", *t("pts+sctl", "--sctl-grid", "8"))
    fit("ts+ls/alpha", "s10", *t("ts+ls", "--ls-alpha", "0.1"))
    fit("ts+ls/schedule-on", "s10", "--method", "ts+ls", "--schedule", "on")
    fit("ts+ls/schedule-off", "s10", "--method", "ts+ls", "--schedule", "off", "--iterations", "30")
    fit("ts+ce/schedule-on", "s3", "--method", "ts+ce", "--schedule", "on")
    fit("ts+fl/gamma-detached", "s10", *t("ts+fl", "--fl-gamma", "2", "--focal-gradient", "detached"))
    fit("ts+fl/full", "s10", *t("ts+fl", "--focal-gradient", "full"))
    fit("cts_nll+fl/detached", "s3", *t("cts_nll+fl", "--focal-gradient", "detached"))
    fit("ts+lsplus/half", "s10", *t("ts+lsplus", "--lsplus-perfect", "half", "--lsplus-weight", "0.3"))
    fit("ts+lsplus/keep", "perfect", *t("ts+lsplus", "--lsplus-perfect", "keep"))
    fit("ts+lsplus/uniform", "perfect", *t("ts+lsplus", "--lsplus-perfect", "uniform"))
    fit("ts+ce/lr", "s10", *t("ts+ce", "--lr", "0.1"))
    fit("ts+ce/tolerance-change0", "s10", *t("ts+ce", "--tolerance-change", "0"))
    fit("ts+ce/tolerance-grad", "s10", *t("ts+ce", "--tolerance-grad", "1e-3"))
    fit("ets_sctl/lr", "s10", *t("ets_sctl", "--lr", "0.05"))
    fit("pts/options", "s10", *t("pts", "--seed", "2", "--pts-top-k", "5", "--pts-layers", "1", "--pts-nodes", "3",
                                 "--weight-decay", "0", "--lr", "0.01"))
    fit("pts/seed7", "s10", *t("pts", "--seed", "7"))
    fit("pts/init", "s3", *t("pts", "--pts-init", str(data / "pts_init.json"), "--pts-top-k", "3",
                             "--pts-layers", "1", "--pts-nodes", "2"))
    fit("pts+mse/topk3", "s3", *t("pts+mse", "--pts-top-k", "3"))
    fit("pts_sctl/seed-topk", "s10", *t("pts_sctl", "--seed", "3", "--pts-top-k", "4", "--weight-decay", "0.01"))
    fit("pts_sctl+sctl/k3", "s3", *t("pts_sctl+sctl"))
    fit("ts+sctl/table", "s10", *t("ts+sctl"), fmt=None)
    fit("pts/table", "s10", *t("pts"), fmt=None)

    # ------------------------------------------------------------------ fit --save / apply
    save_methods = [("ts", []), ("ts-ece", ["--method", "ts", "--objective", "ece"]), ("ws", []), ("cws", []),
                    ("cts_conf", []), ("bts", []), ("cts_greedy", ["--iterations", "2"]), ("vs", []), ("ms", []),
                    ("cts_nll", []), ("hist", []), ("iso", []), ("ets", []), ("ets-mse", ["--method", "ets",
                                                                                      "--objective", "mse"]),
                    ("ts+sctl", ["--iterations", "20"]), ("ets_sctl", ["--iterations", "20"]),
                    ("pts", ["--iterations", "20"]), ("pts_sctl", ["--iterations", "20"]),
                    ("cts_nll+fl", ["--iterations", "20"])]
    for name, extra in save_methods:
        margs = extra if "--method" in extra else ["--method", name, *extra]
        add(f"save-apply/{name}",
            ["fit", D("s10"), *margs, "--save", "cal.h5", "--format", "json"],
            ["apply", "cal.h5", D("s10b")],
            ["apply", "cal.h5", D("s10b"), "--save", "applied.h5", "--format", "json"],
            ["apply", "cal.h5", D("s10"), "--conventions", "netcal", "--bins", "10", "--format", "json"],
            ["eval", "cal.h5", "--format", "json"],
            ["eval", "applied.h5"],
            ["info", "applied.h5"])
    for m in ["ms_odir", "dir_odir"]:
        add(f"save-apply/{m}",
            ["fit", D("s3"), "--method", m, "--odir-lambda", "1", "--odir-mu", "1", "--save", "cal.h5"],
            ["apply", "cal.h5", D("s3b"), "--save", "applied.h5", "--format", "json"],
            ["apply", "cal.h5", D("s10")],
            ["eval", "applied.h5", "--format", "json"])
    for m in ["ts", "hist", "iso", "vs", "cws"]:
        add(f"save-apply/probs/{m}",
            ["fit", D("p10"), "--method", m, "--save", "cal.h5", "--format", "json"],
            ["apply", "cal.h5", D("p10"), "--save", "applied.h5"],
            ["apply", "cal.h5", D("s10b"), "--format", "json"],
            ["eval", "applied.h5", "--format", "json"])
    add("save-apply/ts/edges",
        ["fit", D("edges"), "--method", "hist", "--calib-bins", "10", "--save", "cal.h5"],
        ["apply", "cal.h5", D("edges15"), "--save", "applied.h5", "--bins", "10", "--binning", "left-closed"])
    add("save-apply/vs/k-mismatch", ["fit", D("s10"), "--method", "vs", "--save", "cal.h5"],
        ["apply", "cal.h5", D("s3")])
    add("save-apply/not-a-calibrator", ["apply", D("s10"), D("s10b")])
    add("save-apply/missing-calibrator", ["apply", "nope.h5", D("s10b")])
    add("save-apply/bad-target", ["fit", D("s3"), "--method", "ts", "--save", "cal.h5"],
        ["apply", "cal.h5", D("bad_nan")], ["apply", "cal.h5", D("bad_missing_test")])
    add("save-apply/overwrite", ["fit", D("s10"), "--method", "ts", "--save", "cal.h5"],
        ["fit", D("s10"), "--method", "vs", "--save", "cal.h5"], ["apply", "cal.h5", D("s10b")])
    add("save-apply/subdir-missing", ["fit", D("s10"), "--method", "ts", "--save", "no/such/dir/cal.h5"])
    add("save-apply/table-save", ["fit", D("s3"), "--method", "iso", "--save", "c.h5"],
        ["apply", "c.h5", D("s3b"), "--save", "a.h5"])

    # ------------------------------------------------------------------ sweep-candidates
    for fam in FAMILIES:
        # the default grid (0.05:5:0.05) is a temperature grid: weights need their own
        g = ["--grid", "0:1:0.05"] if fam == "weight" else []
        for fmt in ["json", "csv"]:
            add(f"sc/{fam}/{fmt}", ["sweep-candidates", D("s10"), "--family", fam, *g, "--format", fmt])
            add(f"sc/{fam}/{fmt}/per-bin", ["sweep-candidates", D("s10"), "--family", fam, *g, "--per-bin",
                                            "--format", fmt])
            add(f"sc/{fam}/{fmt}/no-adaece", ["sweep-candidates", D("s10"), "--family", fam, *g, "--no-adaece",
                                              "--format", fmt])
        add(f"sc/{fam}/p10", ["sweep-candidates", D("p10"), "--family", fam, *g, "--format", "json"])
        add(f"sc/{fam}/s3/test", ["sweep-candidates", D("s3"), "--family", fam, *g, "--split", "test",
                                  "--format", "csv"])
        add(f"sc/{fam}/edges/bins10", ["sweep-candidates", D("edges"), "--family", fam, *g, "--bins", "10",
                                       "--per-bin", "--format", "json"])
        add(f"sc/{fam}/ties", ["sweep-candidates", D("ties"), "--family", fam, *g, "--format", "csv"])
        add(f"sc/{fam}/backend-cpu", ["sweep-candidates", D("s2"), "--family", fam, *g, "--backend", "cpu",
                                      "--format", "json"])
        add(f"sc/{fam}/default-format", ["sweep-candidates", D("s3"), "--family", fam, *g])
    add("sc/weight/default-grid", ["sweep-candidates", D("s3"), "--family", "weight"])
    for b in BINNINGS:
        add(f"sc/temperature/binning-{b}", ["sweep-candidates", D("s10"), "--family", "temperature", "--binning", b,
                                            "--bins", "10", "--per-bin", "--format", "json"])
        add(f"sc/weight/binning-{b}/edges", ["sweep-candidates", D("edges"), "--family", "weight", "--binning", b,
                                             "--bins", "10", "--grid", "0:1:0.1", "--format", "csv"])
    for g in ["0.5:3:0.5", "1", "0.7,1.3,2.9", "0.01:10:0.01"]:
        add(f"sc/temperature/grid-{g}", ["sweep-candidates", D("s10"), "--family", "temperature", "--grid", g,
                                         "--format", "csv"])
    add("sc/inverse-temperature/grid", ["sweep-candidates", D("s10"), "--family", "inverse-temperature", "--grid",
                                        "0.2:2:0.05", "--format", "json"])
    add("sc/weight/grid", ["sweep-candidates", D("s10"), "--family", "weight", "--grid", "0:1:0.125",
                           "--format", "csv", "--per-bin"])
    add("sc/class-temperature/class3", ["sweep-candidates", D("s10"), "--family", "class-temperature", "--class", "3",
                                        "--base-temperature", "1.5", "--grid", "0.5:3:0.5", "--format", "json"])
    add("sc/bin-temperature/target", ["sweep-candidates", D("s10"), "--family", "bin-temperature", "--calib-bins",
                                      "5", "--target-bin", "2", "--base-temperature", "1.2", "--grid", "0.5:3:0.5",
                                      "--per-bin", "--format", "json"])
    add("sc/temperature/s100", ["sweep-candidates", D("s100"), "--family", "temperature", "--format", "json"])
    add("sc/temperature/s100/bins1", ["sweep-candidates", D("s100"), "--family", "temperature", "--bins", "1",
                                      "--format", "csv", "--per-bin"])
    add("sc/temperature/f16", ["sweep-candidates", D("f16"), "--family", "temperature", "--format", "csv"])
    add("sc/temperature/f64col", ["sweep-candidates", D("f64col"), "--family", "temperature", "--format", "csv"])
    add("sc/temperature/onehot", ["sweep-candidates", D("onehot"), "--family", "temperature", "--format", "csv"])

    # ------------------------------------------------------------------ sweep
    for spec in ["basic", "methods", "conv", "boot1", "trained", "files", "seg", "seg_all"]:
        add(f"sweep/{spec}", ["sweep", S(spec), "--out", "out", "--no-plots"], timeout=300)
        add(f"sweep/{spec}/list", ["sweep", S(spec), "--out", "out", "--list"])
    add("sweep/basic/verbose-resume", ["sweep", S("basic"), "--out", "out", "--no-plots", "--verbose"],
        ["sweep", S("basic"), "--out", "out", "--no-plots", "--verbose"],
        ["sweep", S("basic"), "--out", "out", "--list"], timeout=300)
    add("sweep/seg/verbose", ["sweep", S("seg"), "--out", "o", "--no-plots", "--verbose"])
    add("sweep/conv/resume-after-delete", ["sweep", S("conv"), "--out", "out", "--no-plots"],
        ("helper", ["delete-first-cell", "out/cells"]),
        ["sweep", S("conv"), "--out", "out", "--no-plots", "--verbose"])
    for spec in [k for k in SPECS if k.startswith("bad_")]:
        add(f"sweep/error/{spec}", ["sweep", S(spec), "--out", "out", "--no-plots"])
        add(f"sweep/error/{spec}/list", ["sweep", S(spec), "--out", "out", "--list"])
    add("sweep/error/no-spec", ["sweep", str(specs / "does_not_exist.toml"), "--out", "out", "--no-plots"])
    add("sweep/error/no-out", ["sweep", S("basic")])

    # ------------------------------------------------------------------ seg-eval
    allm = "uncalibrated,ts,temperature-map,augmented-mean"
    for d in ["seg", "seg3"]:
        for fmt in ["table", "json"]:
            add(f"seg/{d}/{fmt}", ["seg-eval", D(d), "--methods", allm, "--format", fmt])
            add(f"seg/{d}/{fmt}/roi-all", ["seg-eval", D(d), "--methods", allm, "--roi", "all", "--format", fmt])
            add(f"seg/{d}/{fmt}/reliability", ["seg-eval", D(d), "--methods", allm, "--reliability",
                                               "--format", fmt])
        add(f"seg/{d}/default", ["seg-eval", D(d)])
        add(f"seg/{d}/roi-stored", ["seg-eval", D(d), "--roi", "stored", "--format", "json"])
    for fmt in ["table", "json"]:
        add(f"seg/seg_roi/roi-stored/{fmt}", ["seg-eval", D("seg_roi"), "--methods", allm, "--roi", "stored",
                                               "--format", fmt])
    add("seg/seg_roi/roi-stored/reliability", ["seg-eval", D("seg_roi"), "--roi", "stored", "--reliability",
                                               "--format", "json"])
    add("seg/seg_roi/default", ["seg-eval", D("seg_roi"), "--format", "json"])
    for r in ["0", "1", "3"]:
        add(f"seg/seg/roi-dilation-{r}", ["seg-eval", D("seg"), "--methods", allm, "--roi-dilation", r,
                                          "--format", "json"])
    add("seg/seg/groups", ["seg-eval", D("seg"), "--methods", "uncalibrated,ts", "--groups", "val,test_noise",
                           "--format", "json"])
    add("seg/seg/background1", ["seg-eval", D("seg"), "--methods", allm, "--background", "1", "--format", "json"])
    add("seg/seg/bins10-left", ["seg-eval", D("seg"), "--methods", allm, "--bins", "10", "--binning", "left-closed",
                                "--format", "json"])
    for p in ["torchmetrics", "netcal", "dirichlet"]:
        add(f"seg/seg/conventions-{p}", ["seg-eval", D("seg"), "--methods", allm, "--conventions", p,
                                         "--format", "json"])
    add("seg/seg/sum-brier", ["seg-eval", D("seg"), "--methods", allm, "--classwise-reduction", "sum", "--brier",
                              "per-class-mean", "--nll-clip", "1e-15", "--classwise-binning", "guo-strict",
                              "--adaptive", "interp", "--format", "json"])
    add("seg/seg/backend-cpu", ["seg-eval", D("seg"), "--methods", "ts", "--backend", "cpu", "--format", "json"])
    add("seg/seg/reliability-roi-all-table", ["seg-eval", D("seg"), "--roi", "all", "--reliability",
                                              "--methods", "ts,augmented-mean"])
    add("seg/error/unknown-method", ["seg-eval", D("seg"), "--methods", "uncalibrated,no_such_method"])
    add("seg/error/unknown-group", ["seg-eval", D("seg"), "--groups", "val,nope"])
    add("seg/error/bad-label", ["seg-eval", D("bad_seg_label"), "--methods", allm])
    add("seg/error/bad-label-other-groups", ["seg-eval", D("bad_seg_label"), "--groups", "val"])
    add("seg/error/nan", ["seg-eval", D("bad_seg_nan"), "--methods", allm])
    add("seg/error/not-seg", ["seg-eval", D("s10")])
    add("seg/error/missing", ["seg-eval", str(data / "nope.h5")])
    add("seg/error/background", ["seg-eval", D("seg"), "--background", "7"])

    # ------------------------------------------------------------------ sctl-weights
    L0, L1 = "1.2,0.5,0.9", "1.1,0.45,0.85"
    for fmt in ["table", "json"]:
        add(f"sctl/{fmt}", ["sctl-weights", "--l0", L0, "--l1", L1, "--format", fmt])
        add(f"sctl/{fmt}/at", ["sctl-weights", "--l0", L0, "--l1", L1, "--at", "0.3,1.7", "--format", fmt])
        for n in ["nd", "mm", "cm"]:
            add(f"sctl/{fmt}/norm-{n}", ["sctl-weights", "--l0", L0, "--l1", L1, "--norm", n, "--format", fmt])
    add("sctl/grid16", ["sctl-weights", "--l0", L0, "--l1", L1, "--grid", "16", "--format", "json"])
    add("sctl/backend-cpu", ["sctl-weights", "--l0", L0, "--l1", L1, "--backend", "cpu", "--format", "json"])
    add("sctl/k10", ["sctl-weights", "--l0", "2.1,0.3,1.5,0.9,0.05,3.2,1.1,0.7,0.4,2.2",
                     "--l1", "2.0,0.35,1.4,0.95,0.04,3.0,1.0,0.72,0.41,2.1", "--norm", "mm", "--at", "2,1.5",
                     "--format", "json"])
    add("sctl/equal", ["sctl-weights", "--l0", "1,1,1", "--l1", "1,1,1", "--format", "json"])
    add("sctl/at-outside", ["sctl-weights", "--l0", L0, "--l1", L1, "--at", "5,0.1"])
    add("sctl/error/lengths", ["sctl-weights", "--l0", "1,2,3", "--l1", "1,2"])
    add("sctl/error/single", ["sctl-weights", "--l0", "1", "--l1", "2"])
    add("sctl/error/nan", ["sctl-weights", "--l0", "1,nan,3", "--l1", "1,2,3"])
    add("sctl/error/text", ["sctl-weights", "--l0", "1,abc,3", "--l1", "1,2,3"])
    add("sctl/error/empty", ["sctl-weights", "--l0", "", "--l1", ""])
    add("sctl/error/at", ["sctl-weights", "--l0", L0, "--l1", L1, "--at", "-1,1"])
    add("sctl/error/grid1", ["sctl-weights", "--l0", L0, "--l1", L1, "--grid", "1"])
    add("sctl/error/missing-l1", ["sctl-weights", "--l0", L0])

    # ------------------------------------------------------------------ lsplus-priors
    for d in ["s10", "p10", "perfect", "s3", "ties"]:
        add(f"lsplus/{d}", ["lsplus-priors", D(d), "--out", "priors.csv"])
        add(f"lsplus/{d}/matrix", ["lsplus-priors", D(d), "--out", "priors.csv", "--matrix", "m.csv"])
    for pf in ["uniform", "half", "keep"]:
        add(f"lsplus/perfect/{pf}", ["lsplus-priors", D("perfect"), "--out", "p.csv", "--perfect", pf,
                                     "--matrix", "m.csv"])
        add(f"lsplus/perfect/{pf}/test", ["lsplus-priors", D("perfect"), "--out", "p.csv", "--perfect", pf,
                                          "--split", "test"])
    add("lsplus/train", ["lsplus-priors", D("train"), "--out", "p.csv", "--split", "train"])
    add("lsplus/error/bad-dump", ["lsplus-priors", D("bad_inf"), "--out", "p.csv", "--matrix", "m.csv"])
    add("lsplus/error/perfect", ["lsplus-priors", D("s10"), "--out", "p.csv", "--perfect", "always"])
    add("lsplus/error/no-out", ["lsplus-priors", D("s10")])
    add("lsplus/error/out-dir", ["lsplus-priors", D("s10"), "--out", "no/such/dir/p.csv"])

    # ------------------------------------------------------------------ synth (its own output)
    add("synth/small", ["synth", "--out", "a.h5", "--classes", "4", "--n-val", "50", "--n-test", "70", "--seed", "3"],
        ["info", "a.h5", "--format", "json"])
    add("synth/options", ["synth", "--out", "a.h5", "--classes", "7", "--n-val", "1100", "--n-test", "30",
                          "--seed", "42", "--logit-scale", "2.5", "--temperature", "0.7", "--class-distortion", "0.4",
                          "--class-bias", "1.2"])
    add("synth/calibrated", ["synth", "--out", "a.h5", "--classes", "2", "--n-val", "100", "--n-test", "100",
                             "--temperature", "1", "--class-distortion", "0", "--class-bias", "0"])
    add("synth/default", ["synth", "--out", "a.h5"])
    add("synth/segmentation", ["synth", "--segmentation", "--out", "s.h5", "--images", "1", "--height", "8",
                               "--width", "12", "--seed", "4", "--augmentations", "3"],
        ["seg-eval", "s.h5", "--roi", "all", "--format", "json"])
    add("synth/segmentation-k5", ["synth", "--segmentation", "--out", "s.h5", "--classes", "5", "--images", "2",
                                  "--height", "10", "--width", "10", "--temperature", "1.5", "--augmentations", "0"],
        ["seg-eval", "s.h5", "--methods", "uncalibrated,ts"])
    add("synth/error/classes1", ["synth", "--out", "a.h5", "--classes", "1"])
    add("synth/error/nval0", ["synth", "--out", "a.h5", "--n-val", "0"])
    add("synth/error/temperature0", ["synth", "--out", "a.h5", "--temperature", "0"])
    add("synth/error/no-out", ["synth"])
    add("synth/error/seg-height", ["synth", "--segmentation", "--out", "a.h5", "--height", "2"])
    add("synth/error/bad-dir", ["synth", "--out", "no/such/dir/a.h5", "--n-val", "5", "--n-test", "5"])

    # ------------------------------------------------------------------ errors: usage
    add("error/unknown-subcommand", ["frob", D("s10")])
    add("error/fit/unknown-method", ["fit", D("s10"), "--method", "no_such_method"])
    add("error/fit/unknown-loss", ["fit", D("s10"), "--method", "ts+mse"])
    add("error/fit/unknown-base", ["fit", D("s10"), "--method", "vs+ce"])
    add("error/fit/no-method", ["fit", D("s10")])
    add("error/fit/unknown-option", ["fit", D("s10"), "--method", "ts", "--frobnicate"])
    add("error/eval/unknown-option", ["eval", D("s10"), "--frobnicate"])
    add("error/fit/bins0", ["fit", D("s10"), "--method", "ts", "--bins", "0"])
    add("error/fit/iterations-neg", ["fit", D("s10"), "--method", "vs", "--iterations", "-1"])
    add("error/fit/calib-bins-0", ["fit", D("s10"), "--method", "cws", "--calib-bins", "0"])
    add("error/fit/calib-bins-abc", ["fit", D("s10"), "--method", "cws", "--calib-bins", "abc"])
    add("error/fit/calib-bins-auto-hist", ["fit", D("s10"), "--method", "hist", "--calib-bins", "auto"])
    add("error/fit/objective-ece-vs", ["fit", D("s10"), "--method", "vs", "--objective", "ece"])
    add("error/fit/objective-mse-ts", ["fit", D("s10"), "--method", "ts", "--objective", "mse"])
    add("error/fit/objective-brier", ["fit", D("s10"), "--method", "ts", "--objective", "brier"])
    add("error/fit/objective-adaece-interp", ["fit", D("s10"), "--method", "ts", "--objective", "adaece",
                                              "--adaptive", "interp"])
    add("error/fit/objective-ece-trained", ["fit", D("s10"), "--method", "ts+ce", "--objective", "ece"])
    add("error/fit/sctl-norm-ts+ce", ["fit", D("s10"), "--method", "ts+ce", "--sctl-norm", "mm"])
    add("error/fit/sctl-norm-ts", ["fit", D("s10"), "--method", "ts", "--sctl-norm", "mm"])
    add("error/fit/lr-vs", ["fit", D("s10"), "--method", "vs", "--lr", "0.1"])
    add("error/fit/odir-lambda-alone", ["fit", D("s3"), "--method", "ms_odir", "--odir-lambda", "1"])
    add("error/fit/odir-mu-alone", ["fit", D("s3"), "--method", "dir_odir", "--odir-mu", "1"])
    add("error/fit/odir-negative", ["fit", D("s3"), "--method", "ms_odir", "--odir-lambda", "-1", "--odir-mu", "1"])
    add("error/fit/odir-on-ts", ["fit", D("s3"), "--method", "ts", "--odir-lambda", "1", "--odir-mu", "1"])
    add("error/fit/pts-layers-pts_sctl", ["fit", D("s10"), "--method", "pts_sctl", "--pts-layers", "3"])
    add("error/fit/seed-ts+ce", ["fit", D("s10"), "--method", "ts+ce", "--seed", "3"])
    add("error/fit/tolerance-pts", ["fit", D("s10"), "--method", "pts", "--tolerance-grad", "1e-5"])
    add("error/fit/lr-zero", ["fit", D("s10"), "--method", "ts+ce", "--lr", "0"])
    add("error/fit/ls-alpha-on-fl", ["fit", D("s10"), "--method", "ts+fl", "--ls-alpha", "0.1"])
    add("error/fit/sctl-grid-1", ["fit", D("s10"), "--method", "ts+sctl", "--sctl-grid", "1"])
    add("error/fit/cts-search-bad", ["fit", D("s10"), "--method", "cts_greedy", "--cts-search", "random"])
    add("error/fit/accuracy-constraint-bad", ["fit", D("s10"), "--method", "cts_greedy", "--accuracy-constraint",
                                              "maybe"])
    add("error/fit/cts-search-on-ts", ["fit", D("s10"), "--method", "ts", "--cts-search", "nudge"])
    add("error/fit/grid-bad", ["fit", D("s10"), "--method", "ts", "--objective", "ece", "--grid", "a:b"])
    add("error/fit/grid-step0", ["fit", D("s10"), "--method", "ts", "--objective", "ece", "--grid", "0.1:1:0"])
    add("error/fit/grid-negative", ["fit", D("s10"), "--method", "ts", "--objective", "ece", "--grid", "-1,1"])
    add("error/fit/grid-ws-out-of-range", ["fit", D("s10"), "--method", "ws", "--grid", "0,1.5"])
    add("error/fit/grid-on-vs", ["fit", D("s10"), "--method", "vs", "--grid", "1,2"])
    add("error/fit/backend-cuda-vs", ["fit", D("s10"), "--method", "vs", "--backend", "cuda"])
    add("error/fit/backend-cuda-ts", ["fit", D("s10"), "--method", "ts", "--backend", "cuda"])
    add("error/fit/backend-cuda-iso", ["fit", D("s10"), "--method", "iso", "--backend", "cuda"])
    add("error/fit/backend-cuda-ts-ece", ["fit", D("s10"), "--method", "ts", "--objective", "ece", "--backend", "cuda"])
    add("error/fit/backend-bad", ["fit", D("s10"), "--method", "ts", "--backend", "tpu"])
    add("error/fit/odir-small-n", ["fit", D("bad_label"), "--method", "ms_odir"])
    add("error/fit/pts-init-missing", ["fit", D("s3"), "--method", "pts", "--pts-init", str(data / "nope.json")])
    add("error/fit/pts-init-shape", ["fit", D("s10"), "--method", "pts", "--iterations", "5", "--pts-init",
                                     str(data / "pts_init.json")])
    add("error/fit/onehot-ts", ["fit", D("onehot"), "--method", "ts+ce", "--iterations", "5"])
    add("error/fit/split", ["fit", D("s10"), "--method", "ts", "--split", "val"])
    add("error/eval/bins0", ["eval", D("s10"), "--bins", "0"])
    add("error/eval/bins-neg", ["eval", D("s10"), "--bins", "-3"])
    add("error/eval/bins-abc", ["eval", D("s10"), "--bins", "abc"])
    add("error/eval/bins-missing", ["eval", D("s10"), "--bins"])
    add("error/eval/split", ["eval", D("s10"), "--split", "nonsense"])
    add("error/eval/split-train-missing", ["eval", D("s10"), "--split", "train"])
    add("error/eval/binning", ["eval", D("s10"), "--binning", "nonsense"])
    add("error/eval/binning-1", ["eval", D("s10"), "--binning", "1"])
    add("error/eval/conventions", ["eval", D("s10"), "--conventions", "sklearn"])
    add("error/eval/adaptive", ["eval", D("s10"), "--adaptive", "nonsense"])
    add("error/eval/reduction", ["eval", D("s10"), "--classwise-reduction", "max"])
    add("error/eval/brier", ["eval", D("s10"), "--brier", "mean"])
    add("error/eval/format", ["eval", D("s10"), "--format", "xml"])
    add("error/eval/level-nan", ["eval", D("s10"), "--level", "nan", "--format", "json"])
    add("error/eval/level-1", ["eval", D("s10"), "--level", "1", "--bootstrap", "5"])
    add("error/eval/nll-clip", ["eval", D("s10"), "--nll-clip", "0.7"])
    add("error/eval/seed-2^64", ["eval", D("s10"), "--seed", "18446744073709551616", "--format", "json"])
    add("error/eval/bootstrap-neg", ["eval", D("s10"), "--bootstrap", "-1"])
    add("error/eval/no-file", ["eval"])
    add("error/eval/two-files", ["eval", D("s10"), D("s3")])
    add("error/eval/inversions-missing", ["eval", D("s10"), "--inversions-against", str(data / "nope.h5")])
    add("error/eval/inversions-nan", ["eval", D("s3"), "--inversions-against", D("bad_nan")])
    add("error/info/format", ["info", D("s10"), "--format", "csv"])
    add("error/sc/family", ["sweep-candidates", D("s10"), "--family", "matrix"])
    add("error/sc/weight-range", ["sweep-candidates", D("s10"), "--family", "weight", "--grid", "0:1.5:0.5"])
    add("error/sc/class", ["sweep-candidates", D("s10"), "--family", "class-temperature", "--class", "99"])
    add("error/sc/class-neg", ["sweep-candidates", D("s10"), "--family", "class-temperature", "--class", "-1"])
    add("error/sc/target-bin", ["sweep-candidates", D("s10"), "--family", "bin-temperature", "--calib-bins", "5",
                                "--target-bin", "9"])
    add("error/sc/grid", ["sweep-candidates", D("s10"), "--family", "temperature", "--grid", "1:0.5:0.1"])
    add("error/sc/grid-zero", ["sweep-candidates", D("s10"), "--family", "temperature", "--grid", "0,1"])
    add("error/sc/inverse-list", ["sweep-candidates", D("s10"), "--family", "inverse-temperature", "--grid",
                                  "0.5,0.7,2"])
    add("error/sc/format", ["sweep-candidates", D("s10"), "--format", "table"])
    add("error/sc/base-temperature", ["sweep-candidates", D("s10"), "--family", "class-temperature",
                                      "--base-temperature", "0"])
    add("error/sc/backend-cuda", ["sweep-candidates", D("s10"), "--backend", "cuda"])

    # ------------------------------------------------------------------ errors: malformed dumps
    bad = ["bad_missing_test", "bad_nan", "bad_inf", "bad_label", "bad_neglabel", "bad_rowsum", "bad_negprob",
           "bad_len", "bad_k1", "bad_numclasses", "bad_floatlabels", "bad_rank", "bad_nolabels", "bad_text"]
    for b in bad:
        add(f"malformed/{b}/eval/json", ["eval", D(b), "--format", "json"])
        add(f"malformed/{b}/eval/table", ["eval", D(b)])
        add(f"malformed/{b}/eval/val", ["eval", D(b), "--split", "val"])
        add(f"malformed/{b}/info", ["info", D(b)])
        add(f"malformed/{b}/fit-ts", ["fit", D(b), "--method", "ts", "--format", "json"])
        add(f"malformed/{b}/fit-vs", ["fit", D(b), "--method", "vs"])
        add(f"malformed/{b}/sc", ["sweep-candidates", D(b), "--split", "test"])
        add(f"malformed/{b}/lsplus", ["lsplus-priors", D(b), "--out", "p.csv"])
    add("malformed/missing-file/eval", ["eval", str(data / "does_not_exist.h5")])
    add("malformed/missing-file/info", ["info", str(data / "does_not_exist.h5")])
    add("malformed/missing-file/fit", ["fit", str(data / "does_not_exist.h5"), "--method", "ts"])
    add("malformed/directory/eval", ["eval", str(data)])
    add("malformed/seg-as-logits/eval", ["eval", D("seg")])
    add("malformed/seg-as-logits/fit", ["fit", D("seg"), "--method", "ts"])

    # ------------------------------------------------------------------ Python package
    for sec in PY_SECTIONS:
        cases.append(Case(f"python/{sec}", [("py", [sec, str(data)])], timeout=300))

    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit(f"duplicate case names: {sorted(dup)}")
    return cases
