"""Cross-check the conventions of other libraries in `calibench eval` (docs/metrics.md,
"Conventions of other libraries") against the float64 reference tests/reference/conventions_ref.py:
every binning rule, classwise binning, adaptive rule, classwise reduction, Brier variant and NLL
clip separately, every preset, explicit options over a preset, --compare-conventions, the
`conventions` JSON object, --reliability and --classwise under every rule, the extra estimators (rmsce,
rmsce_debiased, ace_unweighted, smece, kde_ece), usage errors, and the real dumps in
../shared/data/real/h5 (skipped when absent).

Every dump is written from a seeded numpy Generator; every failure message repeats the data
case (seed, shape, kind, dtype) and the exact command."""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys

import h5py
import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "reference"))
sys.path.insert(0, str(HERE))
import calib_ref as ref  # noqa: E402
import conventions_ref as cr  # noqa: E402
from test_eval_reference import (  # noqa: E402  (data generators and the CLI runner)
    gen_all_equal, gen_dup_rows, gen_probs_softmax, gen_row_ties, gen_standard, run_json)

# Both sides compute in float64; they differ by summation order (~N ulp).  A bin membership
# or bandwidth mistake moves a value by ~1/N or more.  |cli - ref| <= TOL (1 + max(|cli|, |ref|)).
TOL = 1e-9
REAL_DIR = (REPO / ".." / "shared" / "data" / "real" / "h5").resolve()


# ------------------------------------------------------------------------------ comparison


def close(a, b, tol=TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tol * (1.0 + max(abs(a), abs(b)))


def compare_classwise(cc: dict, cw: dict, tol=TOL) -> list[str]:
    """Disagreements in the `classwise` object of `eval --classwise` (counts exact)."""
    bad = []
    if set(cc) != set(cw):
        return [f"classwise keys: cli={sorted(cc)} ref={sorted(cw)}"]
    for part, exact, fields in (("classes", ("class", "count"), ("accuracy", "ece", "under", "over")),
                                ("bins", (), ("lo", "hi", "under", "over"))):
        if len(cc[part]) != len(cw[part]):
            bad.append(f"classwise.{part}: cli has {len(cc[part])} entries, ref {len(cw[part])}")
            continue
        for i, (ec, ew) in enumerate(zip(cc[part], cw[part])):
            if set(ec) != set(ew):
                bad.append(f"classwise.{part}[{i}] keys: cli={sorted(ec)} ref={sorted(ew)}")
                continue
            bad += [f"classwise.{part}[{i}].{f}: cli={ec[f]!r} ref={ew[f]!r} (exact)"
                    for f in exact if ec[f] != ew[f]]
            bad += [f"classwise.{part}[{i}].{f}: cli={ec[f]!r} ref={ew[f]!r}"
                    for f in fields if not close(ec[f], ew[f], tol)]
    return bad


def compare(cli: dict, want: dict, tol=TOL) -> list[str]:
    """Disagreements between the CLI JSON object and the reference object (empty if none)."""
    bad = []
    if set(cli) != set(want):
        bad.append(f"keys: cli extra {sorted(set(cli) - set(want))}, "
                   f"missing {sorted(set(want) - set(cli))}")
    for key in cr.METRIC_KEYS:
        if key not in cli or key not in want:
            continue
        if key in ("n", "k"):
            if cli[key] != want[key]:
                bad.append(f"{key}: cli={cli[key]!r} ref={want[key]!r}")
        elif not close(cli[key], want[key], tol):
            bad.append(f"{key}: cli={cli[key]!r} ref={want[key]!r}")
    if "conventions" in want and "conventions" in cli:
        cc, cw = cli["conventions"], want["conventions"]
        if not isinstance(cc, dict) or set(cc) != set(cw):
            bad.append(f"conventions: cli={cc!r} ref={cw!r}")
        else:
            for f, v in cw.items():
                if not close(cc[f], v, 1e-15):
                    bad.append(f"conventions.{f}: cli={cc[f]!r} ref={v!r}")
    if "reliability" in want and "reliability" in cli:
        rc, rw = cli["reliability"], want["reliability"]
        if len(rc) != len(rw):
            bad.append(f"reliability: cli has {len(rc)} entries, ref {len(rw)}")
        for i, (ec, ew) in enumerate(zip(rc, rw)):
            if set(ec) != set(ew):
                bad.append(f"reliability[{i}] keys: cli={sorted(ec)} ref={sorted(ew)}")
                continue
            if ec["count"] != ew["count"]:
                bad.append(f"reliability[{i}].count: cli={ec['count']} ref={ew['count']}")
            for f in ("lo", "hi", "accuracy", "confidence"):
                if not close(ec[f], ew[f], tol):
                    bad.append(f"reliability[{i}].{f}: cli={ec[f]!r} ref={ew[f]!r}")
    if "classwise" in want and "classwise" in cli:
        bad += compare_classwise(cli["classwise"], want["classwise"], tol)
    if "compare_conventions" in want and "compare_conventions" in cli:
        rc, rw = cli["compare_conventions"], want["compare_conventions"]
        if [r.get("preset") for r in rc] != [r["preset"] for r in rw]:
            bad.append(f"compare_conventions presets: cli={[r.get('preset') for r in rc]}")
        for ec, ew in zip(rc, rw):
            if set(ec) != set(ew):
                bad.append(f"compare_conventions[{ew['preset']}] keys: cli={sorted(ec)}")
                continue
            for f in ("ece", "adaece", "sce", "brier"):
                if not close(ec[f], ew[f], tol):
                    bad.append(f"compare_conventions[{ew['preset']}].{f}: cli={ec[f]!r} "
                               f"ref={ew[f]!r}")
    if "bootstrap" in want and "bootstrap" in cli:
        if cli["bootstrap"] != want["bootstrap"]:
            bad.append(f"bootstrap: cli={cli['bootstrap']!r} ref={want['bootstrap']!r}")
    if "ci" in want and "ci" in cli:
        cc, cw = cli["ci"], want["ci"]
        if set(cc) != set(cw):
            bad.append(f"ci keys: cli extra {sorted(set(cc) - set(cw))}, "
                       f"missing {sorted(set(cw) - set(cc))}")
        for key in cr.CI_KEYS:
            if key not in cc:
                continue
            a, b = cc[key], cw[key]
            if a is None or b is None:
                if not (a is None and b is None):
                    bad.append(f"ci.{key}: cli={a!r} ref={b!r}")
                continue
            for f in ("low", "high"):
                if not close(a.get(f), b[f], tol):
                    bad.append(f"ci.{key}.{f}: cli={a.get(f)!r} ref={b[f]!r}")
    return bad


# ------------------------------------------------------------------------ data generators
# Each returns (x float64 [N, K], y int64 [N], kind); the writer casts x to the case dtype.


def _logits(gen):
    def g(rng, n, k, arg):
        x, y = gen(rng, n, k)
        return x, y, "logits"
    return g


def gen_probs(rng, n, k, arg):
    x, y = gen_probs_softmax(rng, n, k)
    return x, y, "probs"


def _labels_for(rng, p, zero_label_rate=0.0):
    """argmax 60% of the time, else a class with p > 0 (or any class at `zero_label_rate`)."""
    n = p.shape[0]
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        u = rng.random()
        if u < 0.6:
            y[i] = int(np.argmax(p[i]))
        elif u < 0.6 + zero_label_rate:
            y[i] = int(rng.integers(0, p.shape[1]))
        else:
            y[i] = int(rng.choice(np.flatnonzero(p[i] > 0)))
    return y


def gen_grid(rng, n, k, q):
    """Probability rows whose entries are counts / q (the doubles i/q: edges e_i of M = q and of
    every M dividing... multiple of q): a random composition of q units into at most 3 of the K
    classes, so rows like [1, 0, ...] (c = 1.0) and many p = 0 entries occur."""
    p = np.zeros((n, k))
    for i in range(n):
        parts = int(rng.integers(1, min(3, k) + 1))
        cuts = np.sort(rng.integers(0, q + 1, parts - 1))
        counts = np.diff(np.concatenate([[0], cuts, [q]]))
        cols = rng.choice(k, parts, replace=False)
        for c, cnt in zip(cols, counts):
            p[i, c] += cnt / float(q)
    return p, _labels_for(rng, p), "probs"


def gen_linspace_grid(rng, n, k, m):
    """Entries a * (1/(M-1)) and b * (1/(M-1)) (numpy linspace(0, 1, M) edges d_a, d_b, the
    digitize-linspace edges), the rest 1 - d_a - d_b on a third class (0 if tiny); K >= 3."""
    assert k >= 3 and m >= 2
    step = 1.0 / (m - 1)
    p = np.zeros((n, k))
    for i in range(n):
        a = int(rng.integers(0, m))
        b = int(rng.integers(0, m - a))
        cols = rng.choice(k, 3, replace=False)
        p[i, cols[0]] = a * step if a < m - 1 else 1.0
        p[i, cols[1]] = b * step
        rest = 1.0 - p[i, cols[0]] - p[i, cols[1]]
        p[i, cols[2]] = rest if rest > 1e-12 else 0.0
    return p, _labels_for(rng, p), "probs"


def gen_grid_zero_label(rng, n, k, q):
    """As gen_grid, but 20% of the labels fall on any class, often one with p = 0 (NLL inf)."""
    p, _, kind = gen_grid(rng, n, k, q)
    return p, _labels_for(rng, p, zero_label_rate=0.2), kind


def gen_confident(rng, n, k, arg):
    """Logits with margins up to 60: many confidences are exactly 1.0 (exp(-40) < 2^-53)."""
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    margin = rng.choice([0.0, 2.0, 10.0, 40.0, 60.0], n)
    pred = np.where(rng.random(n) < 0.8, y, rng.integers(0, k, n))
    z[np.arange(n), pred] += margin
    return z, y, "logits"


def gen_two_classes(rng, n, k, arg):
    """Only labels 0 and 1 occur (K classes predicted)."""
    z, _ = gen_standard(rng, n, k)
    y = rng.integers(0, 2, n)
    z[np.arange(n), y] += 1.0
    return z, y, "logits"


def gen_class_absent(rng, n, k, arg):
    """Class K-1 never occurs as a label (it is still predicted sometimes)."""
    z, y = gen_standard(rng, n, k)
    y = np.where(y == k - 1, 0, y)
    return z, y, "logits"


GENERATORS = {
    "logits": _logits(gen_standard),
    "probs": gen_probs,
    "row_ties": _logits(gen_row_ties),
    "dup_rows": _logits(gen_dup_rows),
    "all_equal": _logits(gen_all_equal),
    "grid": gen_grid,
    "linspace_grid": gen_linspace_grid,
    "grid_zero_label": gen_grid_zero_label,
    "confident": gen_confident,
    "two_classes": gen_two_classes,
    "class_absent": gen_class_absent,
}


@dataclasses.dataclass(frozen=True)
class Data:
    name: str
    seed: int
    n: int
    k: int
    gen: str = "logits"
    dtype: str = "float32"
    arg: int = 0        # q of the grid generators, M of linspace_grid

    def describe(self) -> str:
        return (f"data={self.name} seed={self.seed} shape=[{self.n}, {self.k}] gen={self.gen}"
                f"{'(' + str(self.arg) + ')' if self.arg else ''} dtype={self.dtype}")


def write_data(d: Data, path: pathlib.Path) -> None:
    rng = np.random.default_rng(d.seed)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = d.k
        for split, n in (("test", d.n), ("val", max(1, min(d.n, 300)))):
            x, y, kind = GENERATORS[d.gen](rng, n, d.k, d.arg)
            f[f"{split}/{kind}"] = x.astype(d.dtype)
            f[f"{split}/labels"] = y.astype(np.int32)


class Reference:
    """Loaded splits and the convention-independent metrics of each (dump, split, M), once."""

    def __init__(self):
        self.splits, self.indep = {}, {}

    def split(self, path, split):
        key = (str(path), split)
        if key not in self.splits:
            self.splits[key] = ref.load_split(str(path), split)
        return self.splits[key]

    def evaluate(self, path, split, m, conv, reliability=False, compare_presets=False, classwise=False,
                 **boot):
        s = self.split(path, split)
        key = (str(path), split, m)
        if key not in self.indep:
            smooth = None
            for (p2, sp2, _), v in self.indep.items():   # smece, kde_ece do not depend on M
                if (p2, sp2) == key[:2]:
                    smooth = (v["smece"], v["kde_ece"])
                    break
            if smooth is None:
                self.indep[key] = cr.independent_metrics(s, m)
            else:
                base = cr.compute_metrics(s, m, cr.PRESETS["calibench"], top_label_smooth=smooth)
                self.indep[key] = {k: base[k] for k in ("n", "k", "accuracy", "ace", "auroc",
                                                        "precision", "recall", "f1", "r_auc",
                                                        "smece", "kde_ece", "ks_error", "ece_sweep", "aurc",
                                                        "eaurc")}
        return cr.evaluate_split(s, m, conv, reliability, compare_presets,
                                 independent=self.indep[key], classwise=classwise, **boot)


REFERENCE = Reference()


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("conventions_reference")
    cache = {}

    def get(d: Data) -> pathlib.Path:
        if d not in cache:
            path = root / f"{d.name}_{d.seed}.h5"
            write_data(d, path)
            cache[d] = path
        return cache[d]

    return get


# ------------------------------------------------------------------------------- runs
# A run: (Data, M, options) with options a tuple of (flag, value-or-None) pairs.

OPTION_KW = {"--conventions": "conventions", "--binning": "binning",
             "--classwise-binning": "classwise_binning", "--adaptive": "adaptive",
             "--classwise-reduction": "classwise_reduction", "--brier": "brier",
             "--nll-clip": "nll_clip"}


def cli_args(path, m, options, split="test"):
    args = ["eval", path, "--split", split, "--bins", m]
    for flag, value in options:
        args.append(flag)
        if value is not None:
            args.append(value)
    return args + ["--format", "json"]


def reference_for(path, m, options, split="test"):
    kw, flags = {}, set()
    boot = {}
    for flag, value in options:
        if flag in OPTION_KW:
            kw[OPTION_KW[flag]] = float(value) if flag == "--nll-clip" else value
        elif flag in ("--bootstrap", "--seed"):
            boot[flag[2:]] = int(value)
        elif flag == "--level":
            boot["level"] = float(value)
        else:
            flags.add(flag)
    conv = cr.resolve(**kw)
    return REFERENCE.evaluate(path, split, m, conv, reliability="--reliability" in flags,
                              compare_presets="--compare-conventions" in flags,
                              classwise="--classwise" in flags, **boot)


def check(calibench, dumps, d: Data, m, options, split="test"):
    path = dumps(d)
    args = cli_args(path, m, options, split)
    cli = run_json(calibench, args)
    want = reference_for(path, m, options, split)
    bad = compare(cli, want)
    assert not bad, (f"{d.describe()} split={split} M={m}\ncommand: calibench "
                     f"{' '.join(map(str, args))}\n" + "\n".join(bad))
    return cli


def _opt_id(options):
    return "_".join(f"{f[2:]}={v}" if v is not None else f[2:] for f, v in options) or "default"


def params(runs):
    return [pytest.param(d, m, opts, id=f"{d.name}-M{m}-{_opt_id(opts)}") for d, m, opts in runs]


PRESETS = cr.PRESET_ORDER
EXTRAS = (("--reliability", None), ("--compare-conventions", None), ("--classwise", None))

# 1. Shapes x kinds x dtypes: N in {1, 2, 7, 100, 1000}, K in {2, 3, 10, 100}; every preset,
#    M cycling through {1, 2, 3, 10, 15}, with --reliability, --compare-conventions and
#    --classwise.
SHAPE_RUNS = []
_MS = (1, 2, 3, 10, 15)
for _i, (_n, _k) in enumerate((n, k) for n in (1, 2, 7, 100, 1000) for k in (2, 3, 10, 100)):
    _d = Data(f"shape_N{_n}_K{_k}", 3000 + _i, _n, _k, gen=("probs" if _i % 2 else "logits"),
              dtype=("float64" if (_i // 2) % 2 else "float32"))
    for _j, _p in enumerate(PRESETS):
        SHAPE_RUNS.append((_d, _MS[(_i + _j) % len(_MS)], (("--conventions", _p),) + EXTRAS))


@pytest.mark.parametrize("d,m,options", params(SHAPE_RUNS))
def test_shapes_every_preset(calibench, dumps, d, m, options):
    check(calibench, dumps, d, m, options)


# 2. Every option separately (no preset) on data with generic values, values on the i/M edges,
#    values on the linspace(0, 1, M) edges, and confidences exactly 1.0.
D_STD = Data("std", 3101, 1000, 10)
D_GRID10 = Data("grid10", 3102, 400, 4, gen="grid", dtype="float64", arg=10)
D_LIN11 = Data("linspace11", 3103, 400, 4, gen="linspace_grid", dtype="float64", arg=11)
D_CONF = Data("confident", 3104, 600, 10, gen="confident", dtype="float64")
D_GRID8_F32 = Data("grid8_f32", 3105, 300, 5, gen="grid", dtype="float32", arg=8)

OPTION_RUNS = []
for _d, _ms in ((D_STD, (10, 15)), (D_GRID10, (10, 5)), (D_LIN11, (11, 10)), (D_CONF, (15, 10)),
                (D_GRID8_F32, (8, 9))):
    for _m in _ms:
        for _r in cr.BINNING_RULES:
            OPTION_RUNS.append((_d, _m, (("--binning", _r), ("--reliability", None))))
            OPTION_RUNS.append((_d, _m, (("--classwise-binning", _r), ("--classwise", None))))
        for _r in cr.ADAPTIVE_RULES:
            OPTION_RUNS.append((_d, _m, (("--adaptive", _r),)))
    _m = _ms[0]
    OPTION_RUNS.append((_d, _m, (("--classwise-reduction", "sum"), ("--classwise", None))))
    OPTION_RUNS.append((_d, _m, (("--classwise-reduction", "mean"), ("--classwise", None))))
    for _b in cr.BRIER_VARIANTS:
        OPTION_RUNS.append((_d, _m, (("--brier", _b),)))
    for _e in ("1e-15", "1e-20", "0.1", "0.4999"):
        OPTION_RUNS.append((_d, _m, (("--nll-clip", _e),)))
    OPTION_RUNS.append((_d, _m, ()))


@pytest.mark.parametrize("d,m,options", params(OPTION_RUNS))
def test_each_option(calibench, dumps, d, m, options):
    check(calibench, dumps, d, m, options)


# 3. Adversarial data under every preset.
ADVERSARIAL = [
    (Data("grid4_f32", 3201, 200, 4, gen="grid", dtype="float32", arg=4), (4, 5, 8)),
    (Data("grid5", 3202, 300, 5, gen="grid", dtype="float64", arg=5), (5, 6, 15)),
    (Data("grid10_K10", 3203, 500, 10, gen="grid", dtype="float64", arg=10), (10, 11)),
    (Data("grid15_K3", 3204, 300, 3, gen="grid", dtype="float64", arg=15), (15, 16)),
    (Data("linspace16", 3205, 300, 3, gen="linspace_grid", dtype="float64", arg=16), (16, 15)),
    (Data("linspace6_K5", 3206, 300, 5, gen="linspace_grid", dtype="float64", arg=6), (6, 5)),
    (Data("zero_label", 3207, 60, 3, gen="grid_zero_label", dtype="float64", arg=10), (10,)),
    (Data("confident_f32", 3208, 500, 10, gen="confident"), (15, 10)),
    (Data("dup_rows", 3209, 1000, 10, gen="dup_rows"), (15, 10)),
    (Data("row_ties_K2", 3210, 300, 2, gen="row_ties"), (15, 10)),
    (Data("all_equal_K10", 3211, 200, 10, gen="all_equal"), (10, 15)),
    (Data("all_equal_K4", 3212, 200, 4, gen="all_equal", dtype="float64"), (4, 8)),
    (Data("two_classes", 3213, 300, 10, gen="two_classes"), (15,)),
    (Data("class_absent", 3214, 300, 5, gen="class_absent", dtype="float64"), (15,)),
    (Data("N3_grid", 3215, 3, 5, gen="grid", dtype="float64", arg=5), (15, 5)),
    (Data("N1", 3216, 1, 3), (15, 1)),
    (Data("N2_K2", 3217, 2, 2, gen="probs", dtype="float64"), (15, 2)),
    (Data("N14_ties", 3218, 14, 4, gen="dup_rows"), (15,)),
    # (N-1) j / M lands on (or next to) integers: the quantile / interp / floor-count edges
    (Data("N101", 3219, 101, 10, gen="dup_rows"), (10, 20)),
    (Data("N11", 3220, 11, 10, gen="grid", dtype="float64", arg=10), (10, 5)),
    (Data("N16", 3221, 16, 3, gen="grid", dtype="float64", arg=5), (15, 3)),
    (Data("N31", 3222, 31, 6, gen="dup_rows"), (15, 6)),
    (Data("N150", 3223, 150, 10, gen="grid", dtype="float64", arg=20), (15, 10)),
    (Data("N1001_f64", 3224, 1001, 10, dtype="float64"), (10,)),
    (Data("float16", 3225, 500, 7, dtype="float16"), (15,)),
    (Data("K1000", 3226, 2000, 1000), (15,)),
    (Data("N25000", 3227, 25000, 10), (15,)),
]
ADVERSARIAL_RUNS = [(d, m, (("--conventions", p), ("--classwise", None))) for d, ms in ADVERSARIAL
                    for m in ms for p in PRESETS]


@pytest.mark.parametrize("d,m,options", params(ADVERSARIAL_RUNS))
def test_adversarial_every_preset(calibench, dumps, d, m, options):
    check(calibench, dumps, d, m, options)


# 4. --reliability under every rule on the edge-heavy data (torchmetrics: M + 1 slots, the last
#    [1, 1]; digitize-linspace: edges of linspace(0, 1, M)), and the val split.
RELIABILITY_RUNS = [(d, m, (("--binning", r), ("--reliability", None)))
                    for d, ms in ADVERSARIAL[:6] + [ADVERSARIAL[14], ADVERSARIAL[15]]
                    for m in ms for r in cr.BINNING_RULES]


@pytest.mark.parametrize("d,m,options", params(RELIABILITY_RUNS))
def test_reliability_every_rule(calibench, dumps, d, m, options):
    cli = check(calibench, dumps, d, m, options)
    rule = dict(options)["--binning"]
    rel = cli["reliability"]
    assert len(rel) == cr.slot_count(m, rule)
    assert sum(r["count"] for r in rel) == cli["n"]   # top-label c > 0: every sample in a slot
    if rule == "torchmetrics":
        assert (rel[-1]["lo"], rel[-1]["hi"]) == (1.0, 1.0)


@pytest.mark.parametrize("preset", PRESETS)
def test_val_split(calibench, dumps, preset):
    check(calibench, dumps, D_GRID10, 10, (("--conventions", preset), ("--reliability", None)),
          split="val")


# 5. Explicit options over a preset (the explicit value wins, the rest of the preset stays).
OVERRIDE_RUNS = [
    (D_GRID10, 10, (("--conventions", "dirichlet"), ("--brier", "sum"))),
    (D_GRID10, 10, (("--conventions", "dirichlet"), ("--classwise-binning", "right-closed"),
                    ("--classwise-reduction", "mean"))),
    (D_GRID10, 10, (("--conventions", "guo"), ("--nll-clip", "1e-20"))),
    (D_GRID10, 10, (("--conventions", "netcal"), ("--adaptive", "split"))),
    (D_GRID10, 10, (("--conventions", "mixnmatch"), ("--adaptive", "interp"), ("--brier", "top-label"))),
    (D_GRID10, 10, (("--conventions", "focal"), ("--binning", "left-closed"),
                    ("--classwise-binning", "torchmetrics"), ("--reliability", None))),
    (D_LIN11, 11, (("--conventions", "torchmetrics"), ("--binning", "digitize-linspace"),
                   ("--classwise-binning", "guo-strict"), ("--reliability", None))),
    (D_STD, 15, (("--conventions", "verified-calibration"), ("--classwise-reduction", "sum"),
                 ("--nll-clip", "0.01"))),
    (D_CONF, 15, (("--binning", "torchmetrics"), ("--reliability", None))),   # classwise follows
    (D_LIN11, 11, (("--binning", "digitize-linspace"), ("--adaptive", "quantile"),
                   ("--brier", "per-class-mean"), ("--classwise-reduction", "sum"))),
]


@pytest.mark.parametrize("d,m,options", params(OVERRIDE_RUNS))
def test_explicit_options_override_preset(calibench, dumps, d, m, options):
    cli = check(calibench, dumps, d, m, options)
    conv = cli["conventions"]
    given = dict(options)
    assert conv["preset"] == given.get("--conventions", "calibench")
    for flag, field in OPTION_KW.items():
        if flag in given and flag != "--conventions":
            want = float(given[flag]) if flag == "--nll-clip" else given[flag]
            assert conv[field] == want, (flag, conv)


# 6. The `conventions` object and the default (no convention option).
@pytest.mark.parametrize("preset", PRESETS)
def test_conventions_object(calibench, dumps, preset):
    path = dumps(D_STD)
    cli = run_json(calibench, ["eval", path, "--conventions", preset, "--format", "json"])
    assert cli["conventions"] == cr.PRESETS[preset].to_json()
    assert set(cli) == set(cr.METRIC_KEYS) | {"conventions"}


def test_default_is_calibench(calibench, dumps):
    path = dumps(D_STD)
    cli = run_json(calibench, ["eval", path, "--format", "json"])
    assert set(cli) == set(cr.METRIC_KEYS) | {"conventions"}
    assert cli["conventions"] == {"preset": "calibench", "binning": "right-closed",
                                  "classwise_binning": "right-closed", "adaptive": "split",
                                  "classwise_reduction": "mean", "brier": "sum", "nll_clip": None}
    want = REFERENCE.evaluate(path, "test", 15, cr.PRESETS["calibench"])
    bad = compare(cli, want)
    assert not bad, "\n".join(bad)
    # the pre-conventions metrics are unchanged by the new options' defaults
    old = ref.evaluate(str(path))
    for key in ref.METRIC_KEYS:
        assert close(cli[key], old[key]), key


# 7. --compare-conventions: each entry equals a separate --conventions NAME run.
@pytest.mark.parametrize("d,m", [(D_STD, 15), (D_GRID10, 10), (D_LIN11, 11), (D_CONF, 15),
                                 (ADVERSARIAL[0][0], 4), (ADVERSARIAL[15][0], 15)],
                         ids=lambda v: v.name if isinstance(v, Data) else f"M{v}")
def test_compare_conventions_equals_separate_runs(calibench, dumps, d, m):
    path = dumps(d)
    cli = run_json(calibench, cli_args(path, m, (("--compare-conventions", None),)))
    rows = cli["compare_conventions"]
    assert [r["preset"] for r in rows] == list(PRESETS)
    for row in rows:
        assert set(row) == {"preset", "ece", "adaece", "sce", "brier"}
        sep = run_json(calibench, cli_args(path, m, (("--conventions", row["preset"]),)))
        for f in ("ece", "adaece", "sce", "brier"):
            assert close(row[f], sep[f], 1e-12), (d.describe(), m, row["preset"], f, row[f], sep[f])
    # and the top-level metrics are those of the conventions in effect (calibench here)
    bad = compare(cli, reference_for(path, m, (("--compare-conventions", None),)))
    assert not bad, "\n".join(bad)


# 8. Bootstrap intervals of every metric (the new keys included) under a preset.
D_BOOT = Data("boot", 3301, 150, 5, gen="grid", dtype="float64", arg=10)


@pytest.mark.parametrize("preset", ["dirichlet", "focal", "netcal"])
def test_bootstrap_under_preset(calibench, dumps, preset):
    check(calibench, dumps, D_BOOT, 10, (("--conventions", preset), ("--bootstrap", "8"),
                                         ("--seed", "5")))


# 9. Usage errors: exit 2, nothing on stdout, one stderr line "calibench: error: ...".
BAD_ARGS = [
    ("--binning", "foo"), ("--binning", "right_closed"), ("--binning", "torchmetric"),
    ("--classwise-binning", "bar"), ("--adaptive", "equal-mass"), ("--adaptive", ""),
    ("--binning", ""), ("--conventions", ""), ("--brier", ""),
    ("--conventions", "sklearn"), ("--conventions", "Calibench"),
    ("--classwise-reduction", "max"), ("--brier", "mean"),
    ("--nll-clip", "0"), ("--nll-clip", "0.5"), ("--nll-clip", "-1e-15"), ("--nll-clip", "0.7"),
    ("--nll-clip", "abc"), ("--nll-clip", "nan"), ("--nll-clip", "inf"),
]


@pytest.mark.parametrize("flag,value", BAD_ARGS, ids=[f"{f[2:]}={v}" for f, v in BAD_ARGS])
def test_usage_errors(calibench, dumps, flag, value):
    path = dumps(D_STD)
    proc = calibench("eval", path, flag, value, "--format", "json")
    assert proc.returncode == 2 and proc.stdout == "", (flag, value, proc)
    assert proc.stderr.startswith("calibench: error: ") and proc.stderr.count("\n") == 1, \
        (flag, value, proc.stderr)


@pytest.mark.parametrize("value", ["1e-300", "0.49999"])
def test_nll_clip_accepts_the_open_interval(calibench, dumps, value):
    check(calibench, dumps, D_GRID10, 10, (("--nll-clip", value),))


# 10. kde_ece is null when the bandwidth std(c | correct) (2N)^(-1/5) is 0: every correct
#     prediction at the same confidence (here 0.1 from all-zero logits, K = 10).  The population
#     std of equal values is exactly 0 even where a summation order leaves rounding noise
#     (numpy's np.std of three 0.1 gives 1.4e-17), and that noise must not become a bandwidth.
@pytest.mark.parametrize("n_correct,n_wrong", [(3, 1), (20, 5), (2, 2), (6, 0), (7, 3)])
def test_kde_ece_null_for_equal_correct_confidences(calibench, tmp_path, n_correct, n_wrong):
    path = tmp_path / "equal.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = 10
        for split in ("val", "test"):
            z = np.zeros((n_correct + n_wrong, 10), dtype=np.float32)
            z[n_correct:, 3] = 1.0        # the wrong ones: another confidence, prediction 3
            f[f"{split}/logits"] = z
            f[f"{split}/labels"] = np.array([0] * n_correct + [1] * n_wrong, dtype=np.int32)
    args = ["eval", path, "--format", "json"]
    cli = run_json(calibench, args)
    want = REFERENCE.evaluate(path, "test", 15, cr.PRESETS["calibench"])
    assert want["kde_ece"] is None
    bad = compare(cli, want)
    assert not bad, f"command: calibench {' '.join(map(str, args))}\n" + "\n".join(bad)


# 11. netcal's quantile edges at q = j * (1/M) (numpy linspace), not j / M: with distinct
#     confidences, h = (N-1) j (1/M) can land just above an integer where (N-1) j / M is one,
#     and then the sample at s_h moves to the lower bin.  The guard keeps the case meaningful.
QUANTILE_CASES = [(Data("quantile_N51", 3406, 51, 10, dtype="float64"), (5, 20)),
                  (Data("quantile_N61", 3400, 61, 10, dtype="float64"), (10, 20))]


def _adaece_quantile_j_over_m(s, m):
    q = [float(np.quantile(s.c, j / m)) for j in range(m + 1)]
    q[0], q[m] = 0.0, 1.0
    b = np.searchsorted(np.array(q[1:m]), s.c, side="right")
    return cr._weighted_over_bins(s.c, s.correct, s.n, [b == j for j in range(m)])


@pytest.mark.parametrize("d,m", [(d, m) for d, ms in QUANTILE_CASES for m in ms],
                         ids=lambda v: v.name if isinstance(v, Data) else f"M{v}")
def test_quantile_edges_at_j_times_inverse_m(calibench, dumps, d, m):
    s = REFERENCE.split(dumps(d), "test")
    assert abs(cr.adaece(s, m, "quantile") - _adaece_quantile_j_over_m(s, m)) > 1e-6, \
        "guard: this case no longer tells j*(1/M) from j/M"
    check(calibench, dumps, d, m, (("--adaptive", "quantile"),))
    check(calibench, dumps, d, m, (("--conventions", "netcal"),))


# 12. The real dumps (../shared/data/real/h5): every preset on the test split (with --classwise
#     under calibench's).
REAL_DUMPS = sorted(REAL_DIR.glob("*.h5")) if REAL_DIR.is_dir() else []


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("dump", REAL_DUMPS or [None],
                         ids=[p.stem for p in REAL_DUMPS] or ["absent"])
def test_real_dumps_every_preset(calibench, dump, preset):
    if dump is None:
        pytest.skip(f"real dumps directory {REAL_DIR} is absent or empty")
    options = (("--conventions", preset),) + ((("--classwise", None),) if preset == "calibench" else ())
    args = cli_args(dump, 15, options)
    cli = run_json(calibench, args)
    want = reference_for(dump, 15, options)
    bad = compare(cli, want)
    assert not bad, (f"{dump.name} /test n={want['n']} k={want['k']}\ncommand: calibench "
                     f"{' '.join(map(str, args))}\n" + "\n".join(bad))


# 13. --classwise (docs/metrics.md "Classwise breakdown"): the per-class and per-bin split adds
#     up to SCE, and per class it carries what the aggregate could not: summed over classes and
#     bins the under and over parts are equal for rows that sum to 1 (sum_ij (y_ij - p_ij) = 0),
#     which is why eval has no sce_under / sce_over, while per class
#     under_j - over_j = (n_j - sum_n p_nj) / N.  Both sides of each identity come from the CLI.
def _adversarial(name):
    return next(d for d, _ in ADVERSARIAL if d.name == name)


CLASSWISE_CASES = [(D_STD, 15, "right-closed"), (D_GRID10, 10, "left-closed"), (D_LIN11, 11, "torchmetrics"),
                   (D_CONF, 15, "digitize-linspace"), (_adversarial("K1000"), 15, "right-closed"),
                   (_adversarial("class_absent"), 15, "right-closed")]


@pytest.mark.parametrize("d,m,rule", CLASSWISE_CASES, ids=lambda v: v.name if isinstance(v, Data) else str(v))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_classwise_split_adds_up(calibench, dumps, d, m, rule, reduction):
    path = dumps(d)
    cli = check(calibench, dumps, d, m, (("--classwise-binning", rule), ("--classwise-reduction", reduction),
                                         ("--classwise", None)))
    assert "sce_under" not in cli and "sce_over" not in cli
    split, k, n = cli["classwise"], cli["k"], cli["n"]
    classes, bins = split["classes"], split["bins"]
    assert [c["class"] for c in classes] == list(range(k))
    assert sum(c["count"] for c in classes) == n
    assert len(bins) == cr.slot_count(m, rule)
    scale = 1.0 / k if reduction == "mean" else 1.0
    assert math.isclose(sum(c["ece"] for c in classes) * scale, cli["sce"], rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(sum(b["under"] + b["over"] for b in bins), cli["sce"], rel_tol=1e-12, abs_tol=1e-15)
    for c in classes:
        assert math.isclose(c["under"] + c["over"], c["ece"], rel_tol=1e-12, abs_tol=1e-15), c
    s = REFERENCE.split(path, "test")
    mass = s.p.sum(axis=0)
    balance = [(c["count"] - mass[c["class"]]) / n for c in classes]
    for c, want in zip(classes, balance):
        assert abs(c["under"] - c["over"] - want) <= 1e-12, (c, want)
    # The aggregate is vacuous (up to rounding); the per-class split is not (the guard keeps
    # these cases meaningful: some class is off balance by more than rounding).
    assert abs(sum(c["under"] for c in classes) - sum(c["over"] for c in classes)) <= 1e-12
    assert max(abs(b) for b in balance) > 1e-3


def test_classwise_table(calibench, dumps):
    path = dumps(D_GRID10)
    proc = calibench("eval", path, "--bins", "10", "--classwise")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "classwise ECE per class" in out and "per bin of p_nj" in out
    cli = run_json(calibench, cli_args(path, 10, (("--classwise", None),)))
    table = out[out.index("classwise ECE per class"):].splitlines()
    rows = [line.split() for line in table[2:2 + cli["k"]]]
    for row, c in zip(rows, cli["classwise"]["classes"]):
        assert int(row[0]) == c["class"] and int(row[1]) == c["count"]
        assert row[3] == f"{100 * c['ece']:.2f}" and row[4] == f"{100 * c['under']:.2f}"
