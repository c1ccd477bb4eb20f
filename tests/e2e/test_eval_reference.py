"""Cross-check `calibench eval FILE --split S --bins M --binning B --format json` against the
float64 reference in tests/reference/calib_ref.py on synthetic dumps.

Every case has a fixed seed that is printed (and repeated in every failure message together
with the shape, dtype and the exact command).  Dumps are written with h5py into a pytest temp
directory using the calibench-logits schema (both splits present)."""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reference"))
import calib_ref as ref  # noqa: E402

# Absolute tolerance for every floating value.  Both the CLI and the reference compute in
# float64 and accumulate in double, so they differ only by summation order and the last ulp of
# exp/log: at most ~N * 2^-52 ~ 2e-11 for N = 100,000 and usually ~1e-16.  1e-9 is far above
# that noise and far below any real bug (one sample moving between bins changes ece by ~1/N).
TOL = 1e-9


# ------------------------------------------------------------------------------ comparison


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= TOL


CONVENTIONS_KEYS = {"rmsce", "rmsce_debiased", "ace_unweighted", "smece", "kde_ece", "conventions"}
# The estimators on the confidence order and the Brier decomposition: test_estimators.py checks
# them against tests/reference/estimators_ref.py.
CONVENTIONS_KEYS |= {"ks_error", "ece_sweep", "aurc", "eaurc", "brier_reliability", "brier_resolution",
                     "brier_uncertainty"}


def compare(cli: dict, want: dict) -> list[str]:
    """List of disagreements ('' when none) between the CLI JSON and the reference dict."""
    bad = []
    # The convention-dependent estimators and the conventions object are checked against
    # tests/reference/conventions_ref.py in test_conventions_reference.py.
    keys = set(cli) - CONVENTIONS_KEYS
    if keys != set(want):
        bad.append(f"keys: cli has extra {sorted(keys - set(want))}, "
                   f"missing {sorted(set(want) - keys)}")
    for key in ref.METRIC_KEYS:
        if key not in cli:
            continue
        if key in ("n", "k"):
            if cli[key] != want[key]:
                bad.append(f"{key}: cli={cli[key]!r} ref={want[key]!r} (exact)")
        elif not _close(cli[key], want[key]):
            diff = (abs(cli[key] - want[key])
                    if cli[key] is not None and want[key] is not None else "n/a")
            bad.append(f"{key}: cli={cli[key]!r} ref={want[key]!r} |diff|={diff}")
    if "reliability" in want and "reliability" in cli:
        rc, rw = cli["reliability"], want["reliability"]
        if len(rc) != len(rw):
            bad.append(f"reliability: cli has {len(rc)} entries, ref {len(rw)}")
        for i, (ec, ew) in enumerate(zip(rc, rw)):
            if set(ec) != set(ew):
                bad.append(f"reliability[{i}] keys: cli={sorted(ec)} ref={sorted(ew)}")
                continue
            if ec["count"] != ew["count"]:
                bad.append(f"reliability[{i}].count: cli={ec['count']} ref={ew['count']} (exact)")
            for f in ("lo", "hi", "accuracy", "confidence"):
                if not _close(ec[f], ew[f]):
                    bad.append(f"reliability[{i}].{f}: cli={ec[f]!r} ref={ew[f]!r}")
    if "order_inversions" in want and "order_inversions" in cli:
        if not _close(cli["order_inversions"], want["order_inversions"]):
            bad.append(f"order_inversions: cli={cli['order_inversions']!r} "
                       f"ref={want['order_inversions']!r}")
    if "bootstrap" in want and "bootstrap" in cli:
        bc, bw = cli["bootstrap"], want["bootstrap"]
        if (set(bc) != set(bw) or bc.get("resamples") != bw["resamples"]
                or bc.get("seed") != bw["seed"] or not _close(bc.get("level"), bw["level"])):
            bad.append(f"bootstrap: cli={bc!r} ref={bw!r}")
    if "ci" in want and "ci" in cli:
        cc, cw = cli["ci"], want["ci"]
        ci_keys = set(cc) - CONVENTIONS_KEYS
        if ci_keys != set(cw):
            bad.append(f"ci keys: cli extra {sorted(ci_keys - set(cw))}, "
                       f"missing {sorted(set(cw) - ci_keys)}")
        for key in ref.CI_KEYS:
            if key not in cc:
                continue
            a, b = cc[key], cw[key]
            if a is None or b is None:
                if not (a is None and b is None):
                    bad.append(f"ci.{key}: cli={a!r} ref={b!r}")
                continue
            for f in ("low", "high"):
                if not _close(a.get(f), b[f]):
                    bad.append(f"ci.{key}.{f}: cli={a.get(f)!r} ref={b[f]!r}")
    return bad


def run_json(calibench, args: list) -> dict:
    proc = calibench(*args)
    cmd = "calibench " + " ".join(map(str, args))
    assert proc.returncode == 0, f"{cmd}\nexit {proc.returncode}\nstderr: {proc.stderr}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:  # pragma: no cover - reported as a failure
        pytest.fail(f"{cmd}\nstdout is not JSON ({e}):\n{proc.stdout[:2000]}")


# ------------------------------------------------------------------------ data generators
# Each returns (x float64 [N, K], y int64 [N]); the dump writer casts x to the case dtype.


def gen_standard(rng, n, k):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += 2.5 if k < 1000 else 6.0
    return z, y


def gen_row_ties(rng, n, k):
    """Equal logits inside rows: a duplicated maximum (rows n % 3 == 0) and the first half of
    the columns set equal (rows n % 3 == 1); the prediction is the lowest tied index."""
    z, y = gen_standard(rng, n, k)
    for i in range(n):
        if i % 3 == 0 and k >= 2:
            j = int(rng.integers(0, k))
            z[i, j] = z[i].max()
        elif i % 3 == 1 and k >= 2:
            z[i, : max(2, k // 2)] = z[i, 0]
    return z, y


def gen_dup_rows(rng, n, k):
    """Duplicated rows (ties in c and in every p column across samples), labels redrawn for
    a third of the copies."""
    n_unique = max(1, n // 3)
    zu, yu = gen_standard(rng, n_unique, k)
    src = rng.integers(0, n_unique, n)
    z, y = zu[src].copy(), yu[src].copy()
    flip = rng.random(n) < 1 / 3
    y[flip] = rng.integers(0, k, int(flip.sum()))
    return z, y


def gen_all_equal(rng, n, k):
    """Every row constant: p = 1/K everywhere, c = 1/K, prediction 0."""
    z = np.repeat(rng.normal(size=(n, 1)) * 3.0, k, axis=1)
    return z, rng.integers(0, k, n)


def gen_large(rng, n, k):
    """Logits of magnitude ~1e4 (within float16 range)."""
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 1e4
    boost = rng.random(n) < 0.5
    z[np.arange(n)[boost], y[boost]] += 1e4
    return np.clip(z, -6e4, 6e4), y


def gen_large_offset(rng, n, k):
    """A common offset of 1e4 plus O(1) noise: only the max subtraction keeps exp finite."""
    z, y = gen_standard(rng, n, k)
    return 1e4 + z, y


def gen_probs_softmax(rng, n, k):
    z, y = gen_standard(rng, n, k)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), y


def gen_probs_unnormalised(rng, n, k):
    """Softmax rows scaled by 1 + u, |u| < 9e-4: valid (sum within 1e-3) and used as stored,
    not renormalised, so e.g. the classwise under and over parts no longer balance."""
    p, y = gen_probs_softmax(rng, n, k)
    return p * (1.0 + rng.uniform(-9e-4, 9e-4, size=(n, 1))), y


# K = 5 probability rows whose maximum is exactly i/5 (0.2, 0.4, 0.6, 0.8, 1.0); these are also
# edges of M = 10 and M = 15 (3/15 == 0.2 in double, etc.), and most entries are edges too.
EDGE_ROWS_5 = [
    [0.2, 0.2, 0.2, 0.2, 0.2],
    [0.4, 0.3, 0.1, 0.1, 0.1],
    [0.6, 0.2, 0.1, 0.1, 0.0],
    [0.8, 0.2, 0.0, 0.0, 0.0],
    [1.0, 0.0, 0.0, 0.0, 0.0],
    [0.4, 0.4, 0.2, 0.0, 0.0],
]
# K = 4 rows exact in float32 too (multiples of 1/4), edges of M = 4 and M = 8.
EDGE_ROWS_4 = [
    [0.25, 0.25, 0.25, 0.25],
    [0.5, 0.25, 0.25, 0.0],
    [0.75, 0.25, 0.0, 0.0],
    [1.0, 0.0, 0.0, 0.0],
    [0.5, 0.5, 0.0, 0.0],
]

# K = 4 rows hitting the few edges where `ceil(M c) - 1` / `floor(M c)` arithmetic disagrees
# with comparing against the double edges i/M (docs/metrics.md "Bins"): 0.28 = 7/25 and
# 0.56 = 14/25 (M = 25, right-closed: bins 6 and 13, while ceil(25 * 0.28) - 1 = 7),
# 15/29 (M = 29, right-closed), 15/22, 13/23, 15/26 (M = 22, 23, 26, left-closed:
# e.g. 22 * (15/22) rounds below 15, so floor gives 14 instead of 15).
EDGE_ROWS_ODD = [
    [0.56, 0.28, 0.16, 0.0],
    [0.28, 0.28, 0.28, 0.16],
    [15 / 22, 7 / 22, 0.0, 0.0],
    [13 / 23, 10 / 23, 0.0, 0.0],
    [15 / 26, 11 / 26, 0.0, 0.0],
    [15 / 29, 14 / 29, 0.0, 0.0],
]


def _edge_rows(rows, rng, n, k):
    rows = np.array(rows, dtype=np.float64)
    assert rows.shape[1] == k
    p = rows[rng.integers(0, len(rows), n)]
    p = np.array([row[rng.permutation(k)] for row in p]).reshape(n, k)
    # label: a column with positive probability (NLL stays finite), the argmax 60% of the time
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        support = np.flatnonzero(p[i] > 0)
        y[i] = int(np.argmax(p[i])) if rng.random() < 0.6 else int(rng.choice(support))
    return p, y


def gen_edges5(rng, n, k):
    return _edge_rows(EDGE_ROWS_5, rng, n, k)


def gen_edges4(rng, n, k):
    return _edge_rows(EDGE_ROWS_4, rng, n, k)


def gen_edges_odd(rng, n, k):
    return _edge_rows(EDGE_ROWS_ODD, rng, n, k)


def gen_zero_prob(rng, n, k):
    """Probabilities where only row 0 has p_y = 0: NLL is inf (printed null) on the full set
    and on the bootstrap resamples that draw row 0 (about 64% of them for N = 50)."""
    assert k == 3
    rows = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    p = rows[rng.integers(0, 3, n)]
    y = np.array([int(rng.choice(np.flatnonzero(row > 0))) for row in p], dtype=np.int64)
    p[0], y[0] = rows[0], 1
    return p, y


GENERATORS = {f.__name__[4:]: f for f in (
    gen_standard, gen_row_ties, gen_dup_rows, gen_all_equal, gen_large, gen_large_offset,
    gen_probs_softmax, gen_probs_unnormalised, gen_edges5, gen_edges4, gen_edges_odd, gen_zero_prob)}
PROB_GENERATORS = {"probs_softmax", "probs_unnormalised", "edges5", "edges4", "edges_odd", "zero_prob"}


# ------------------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    seed: int
    n: int
    k: int
    gen: str = "standard"
    dtype: str = "float32"
    label_dtype: str = "int32"
    label_2d: bool = False

    @property
    def kind(self):
        return "probs" if self.gen in PROB_GENERATORS else "logits"

    def describe(self):
        return (f"case={self.name} seed={self.seed} shape=[{self.n}, {self.k}] gen={self.gen} "
                f"{self.kind} dtype={self.dtype} labels={self.label_dtype}"
                f"{'[N,1]' if self.label_2d else '[N]'}")


def write_case(case: Case, path: pathlib.Path) -> None:
    rng = np.random.default_rng(case.seed)
    gen = GENERATORS[case.gen]
    n_val = case.n if case.n <= 2000 else 1000
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = case.k
        for split, n in (("test", case.n), ("val", n_val)):
            x, y = gen(rng, n, case.k)
            x = x.astype(case.dtype)
            y = y.astype(case.label_dtype)
            if case.label_2d:
                y = y.reshape(-1, 1)
            f[f"{split}/{case.kind}"] = x
            f[f"{split}/labels"] = y


RC, LC = "right-closed", "left-closed"
BOTH = (RC, LC)

# (case, runs) with runs = [(split, bins, binning, extra CLI args), ...]
STD = Case("std", 1001, 1000, 10)
PLAN: list[tuple[Case, list]] = []


def plan(case, bins_binnings, split="test", extra=()):
    PLAN.append((case, [(split, m, b, tuple(extra)) for m, b in bins_binnings]))


def grid(bins, binnings=BOTH):
    return [(m, b) for m in bins for b in binnings]


# several M and both binnings on the standard set; also the val split
plan(STD, grid((1, 10, 15, 25)))
plan(STD, [(15, RC), (15, LC)], split="val")
# number of classes
for seed, k, n in ((1002, 2, 1000), (1003, 7, 1000), (1004, 100, 1000), (1005, 1000, 2000)):
    plan(Case(f"K{k}", seed, n, k), [(15, RC), (10, LC)])
# number of samples (N = 1, 2, 5, 14 are below M = 15)
for seed, n in ((1011, 1), (1012, 2), (1013, 5), (1014, 14)):
    plan(Case(f"N{n}", seed, n, 10), grid((15, 1, 10)))
for seed, n in ((1015, 100), (1016, 10000), (1017, 100000)):
    plan(Case(f"N{n}", seed, n, 10), grid((15,)))
# logit dtypes
for seed, dt in ((1021, "float16"), (1022, "float64")):
    plan(Case(f"{dt}", seed, 1000, 10, dtype=dt), grid((15, 10)))
plan(Case("float16_N10000_K100", 1023, 10000, 100, dtype="float16"), [(15, RC)])
# probability inputs
for seed, dt in ((1031, "float32"), (1032, "float64")):
    plan(Case(f"probs_{dt}", seed, 1000, 10, gen="probs_softmax", dtype=dt), grid((15, 10)))
plan(Case("probs_float16_K4", 1035, 1000, 4, gen="probs_softmax", dtype="float16"), grid((15,)))
plan(Case("probs_unnormalised", 1036, 1000, 10, gen="probs_unnormalised", dtype="float64"),
     grid((15,)))
plan(Case("probs_K2", 1033, 500, 2, gen="probs_softmax", dtype="float64"), grid((15,)))
plan(Case("probs_zero_p_y", 1034, 50, 3, gen="zero_prob", dtype="float64"), grid((15,)))
# large logits
for seed, dt in ((1041, "float32"), (1042, "float64"), (1043, "float16")):
    plan(Case(f"large_{dt}", seed, 1000, 10, gen="large", dtype=dt), grid((15,)))
plan(Case("large_offset_f32", 1044, 1000, 10, gen="large_offset"), grid((15,)))
plan(Case("large_offset_f64", 1045, 1000, 10, gen="large_offset", dtype="float64"), grid((15,)))
# ties
plan(Case("row_ties", 1051, 1000, 10, gen="row_ties"), grid((15,)))
plan(Case("row_ties_f16", 1052, 1000, 7, gen="row_ties", dtype="float16"), grid((15,)))
plan(Case("row_ties_K2", 1053, 500, 2, gen="row_ties"), grid((15, 10)))
plan(Case("dup_rows", 1054, 1000, 10, gen="dup_rows"), grid((15, 10)))
plan(Case("dup_rows_K100", 1055, 600, 100, gen="dup_rows"), grid((15,)))
# all-equal logits: c = 1/K exactly; chosen so that 1/K is a bin edge (0.1 = 1/10 for M = 10,
# 0.5 = 5/10, 0.25 = 1/4 = 2/8, 0.2 = 1/5 = 3/15)
plan(Case("all_equal_K10", 1061, 200, 10, gen="all_equal"), grid((10, 15)))
plan(Case("all_equal_K2", 1062, 200, 2, gen="all_equal"), grid((10, 15)))
plan(Case("all_equal_K4", 1063, 200, 4, gen="all_equal", dtype="float64"), grid((4, 8)))
plan(Case("all_equal_K5", 1064, 200, 5, gen="all_equal", dtype="float16"), grid((5, 15)))
# confidences (and class probabilities) exactly on bin edges
EDGES5 = Case("edges5_f64", 1071, 300, 5, gen="edges5", dtype="float64")
plan(EDGES5, grid((5, 10, 15)))
plan(EDGES5, grid((5, 15)), extra=("--reliability",))
EDGES4 = Case("edges4_f32", 1072, 200, 4, gen="edges4", dtype="float32")
plan(EDGES4, grid((4, 8)))
plan(EDGES4, grid((4, 8)), extra=("--reliability",))
EDGES_ODD = Case("edges_odd_f64", 1074, 300, 4, gen="edges_odd", dtype="float64")
plan(EDGES_ODD, grid((22, 23, 25, 26, 29)))
plan(EDGES_ODD, grid((25, 22)), extra=("--reliability",))
plan(Case("edges5_N3", 1073, 3, 5, gen="edges5", dtype="float64"), grid((5, 15)),
     extra=("--reliability",))
# label storage
for seed, ldt, two_d in ((1081, "uint8", False), (1082, "int64", False), (1083, "int64", True),
                         (1084, "uint8", True), (1085, "int16", False)):
    plan(Case(f"labels_{ldt}{'_2d' if two_d else ''}", seed, 300, 7, label_dtype=ldt,
              label_2d=two_d), [(15, RC)])
# reliability entries
plan(STD, grid((15, 10)), extra=("--reliability",))
plan(Case("N5_rel", 1091, 5, 10), grid((15,)), extra=("--reliability",))
plan(Case("K100_rel", 1092, 2000, 100), [(25, LC)], extra=("--reliability",))
# bootstrap intervals
BOOT = ("--bootstrap", "20", "--seed", "7")
plan(STD, [(15, RC), (10, LC)], extra=BOOT)
plan(Case("boot_K2", 1101, 50, 2), grid((15,)), extra=BOOT)
plan(Case("boot_N1", 1102, 1, 3), [(15, RC)], extra=BOOT)  # auroc interval is null
plan(Case("boot_N2_K2", 1103, 2, 2), [(15, RC)], extra=BOOT)
plan(Case("boot_K100", 1104, 300, 100), [(15, RC)], extra=BOOT)
plan(Case("boot_N2500", 1105, 2500, 10), [(15, RC)], extra=BOOT)  # N > 2^11: exact index math
plan(Case("boot_dup_rows", 1106, 400, 10, gen="dup_rows"), [(15, RC)], extra=BOOT)
plan(Case("boot_edges5", 1107, 300, 5, gen="edges5", dtype="float64"), grid((5,)),
     extra=BOOT + ("--reliability",))
# NLL is inf (null) on the full set and on resamples that draw a p_y = 0 row; the reference
# leaves non-finite (null) resample values out of the interval, as for undefined auroc.
plan(Case("boot_zero_p_y", 1108, 50, 3, gen="zero_prob", dtype="float64"), [(15, RC)],
     extra=BOOT)
plan(STD, [(15, RC)], extra=("--bootstrap", "20", "--seed", str(2**64 - 1), "--level", "0.8"))
plan(STD, [(15, RC)], extra=("--bootstrap", "1", "--seed", "0"))


def _param_id(case, run):
    split, m, binning, extra = run
    tail = "".join(extra).replace("--", "_").replace(" ", "")
    return f"{case.name}-{split}-M{m}-{'rc' if binning == RC else 'lc'}{tail}"


PARAMS = [pytest.param(case, run, id=_param_id(case, run)) for case, runs in PLAN for run in runs]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """Case -> dump path, each dump written once per module."""
    root = tmp_path_factory.mktemp("eval_reference")
    cache = {}

    def get(case: Case) -> pathlib.Path:
        if case not in cache:
            path = root / f"{case.name}_{case.seed}.h5"
            write_case(case, path)
            cache[case] = path
        return cache[case]

    return get


def _extra_to_kwargs(extra):
    kw = {}
    it = iter(extra)
    for flag in it:
        if flag == "--reliability":
            kw["reliability_bins"] = True
        elif flag == "--bootstrap":
            kw["bootstrap"] = int(next(it))
        elif flag == "--seed":
            kw["seed"] = int(next(it))
        elif flag == "--level":
            kw["level"] = float(next(it))
        else:
            raise ValueError(flag)
    return kw


@pytest.mark.parametrize("case,run", PARAMS)
def test_eval_matches_reference(calibench, dumps, case, run):
    split, m, binning, extra = run
    print(case.describe())
    path = dumps(case)
    args = ["eval", path, "--split", split, "--bins", m, "--binning", binning, *extra,
            "--format", "json"]
    cli = run_json(calibench, args)
    want = ref.evaluate(str(path), split, m, binning, **_extra_to_kwargs(extra))
    bad = compare(cli, want)
    assert not bad, (f"{case.describe()} split={split} M={m} binning={binning}\n"
                     f"command: calibench {' '.join(map(str, args))}\n" + "\n".join(bad))


# ------------------------------------------------------------------- order inversions


def _inversion_pair(seed, n, k, mode):
    """Two logit sets with the same N: (z, z2, y)."""
    rng = np.random.default_rng(seed)
    z, y = (gen_dup_rows(rng, n, k) if mode in ("dup", "half_ties")
            else gen_standard(rng, n, k))
    if mode == "temperature":
        # temperature scaling changes the confidence order only across rows (K > 2)
        z2 = z / 2.5
    elif mode == "dup":
        # duplicated rows are exact ties in both files; other rows get a class-wise scaling
        z2 = z * np.linspace(0.5, 2.0, k)[None, :]
    elif mode == "half_ties":
        # ties in exactly one of the two files (not inversions either): duplicated rows of z
        # get noise in z2 for a quarter of the rows (ties in c only), and another quarter of
        # the rows become all-equal in z2 (c' = 1/K ties, c distinct)
        z2 = z / 2.0
        pick = rng.random(n)
        noisy = pick < 0.25
        z2[noisy] += rng.normal(size=(int(noisy.sum()), k))
        flat = (pick >= 0.25) & (pick < 0.5)
        z2[flat] = 0.0
    elif mode == "independent":
        z2, _ = gen_standard(rng, n, k)
    else:
        raise ValueError(mode)
    return z, z2, y


def _write_logits(path, z, y, k):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = k
        for split in ("val", "test"):
            f[f"{split}/logits"] = z.astype(np.float32)
            f[f"{split}/labels"] = y.astype(np.int32)


INVERSION_CASES = [
    (2001, 1, 10, "independent"),
    (2002, 2, 10, "independent"),
    (2003, 10, 10, "temperature"),
    (2004, 500, 10, "temperature"),
    (2005, 2000, 10, "temperature"),
    (2006, 2000, 10, "dup"),
    (2007, 1000, 3, "independent"),
    (2008, 300, 2, "temperature"),
    (2009, 1500, 10, "half_ties"),
    (2010, 40, 4, "half_ties"),
]


@pytest.mark.parametrize("seed,n,k,mode", INVERSION_CASES,
                         ids=[f"inv_{m}_N{n}_K{k}" for _, n, k, m in INVERSION_CASES])
def test_order_inversions_match_reference(calibench, tmp_path, seed, n, k, mode):
    print(f"inversions seed={seed} shape=[{n}, {k}] mode={mode}")
    z, z2, y = _inversion_pair(seed, n, k, mode)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _write_logits(a, z, y, k)
    _write_logits(b, z2, y, k)
    args = ["eval", a, "--split", "test", "--bins", 15, "--inversions-against", b,
            "--format", "json"]
    cli = run_json(calibench, args)
    want = ref.evaluate(str(a), "test", 15, RC, inversions_against=str(b))
    bad = compare(cli, want)
    assert not bad, (f"seed={seed} shape=[{n}, {k}] mode={mode}\n"
                     f"command: calibench {' '.join(map(str, args))}\n" + "\n".join(bad))


# ------------------------------------------------------------------------------ defaults


@pytest.mark.parametrize("case", [STD, EDGES5], ids=lambda c: c.name)
def test_defaults_match_reference(calibench, dumps, case):
    """No --split/--bins/--binning: test split, 15 bins, right-closed (docs/metrics.md)."""
    print(case.describe())
    path = dumps(case)
    args = ["eval", path, "--format", "json"]
    cli = run_json(calibench, args)
    bad = compare(cli, ref.evaluate(str(path)))
    assert not bad, (f"{case.describe()} (defaults)\ncommand: calibench {' '.join(map(str, args))}"
                     "\n" + "\n".join(bad))
