"""End-to-end checks of `calibench sctl-weights` and `calibench lsplus-priors` against the float64
reference tests/reference/sctl_ref.py (docs/calibrators.md).

sctl-weights, on random class-loss vectors (K in {2, 3, 10, 100}, several spreads, first steps
small and large, every normalisation) and on class losses of the real dumps in
../shared/data/real/h5 (skipped when absent; L0 = per-class mean NLL of /val at T = 1, L1 at
T = 1.1, a first temperature step):
  - the objective at the reported pairs (calibench's, the best grid pair, SLSQP's, the start,
    --at) equals the reference formula; normalised losses and weights equal the reference;
  - calibench's objective is never above its own SLSQP's nor above SciPy's SLSQP from the
    authors' call;
  - the gradient at --at agrees with central differences of the reference.
lsplus-priors: the CSV (and --matrix) equals a numpy computation on synthetic dumps with a
perfect and an absent class and on the real dumps. Malformed input exits 2 with one stderr line.
"""
import csv
import json
import math
import pathlib
import shlex
import sys

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL_DIR = (REPO / ".." / "shared" / "data" / "real" / "h5").resolve()
sys.path.insert(0, str(REPO / "tests" / "reference"))
import sctl_ref as ref  # noqa: E402

# The CLI and the reference evaluate the same formula in double; sums over K <= 100 terms in
# different orders (numpy sums pairwise) differ by a few ulp of the largest term.
FORMULA_TOL = 1e-12
# "Never worse than SLSQP": calibench's objective may exceed SLSQP's only by that rounding.
NEVER_WORSE_SLACK = 1e-12
# Central differences of the reference objective (step 1e-6): truncation and cancellation.
GRADIENT_TOL = 1e-6
PREFIX = "calibench: error: "
SEED = 20240611


def fmt_list(values):
    return ",".join(repr(float(v)) for v in values)


def run_weights(calibench, l0, l1, norm="nd", at=None, extra=()):
    args = ["sctl-weights", "--l0", fmt_list(l0), "--l1", fmt_list(l1), "--norm", norm, "--format", "json", *extra]
    if at is not None:
        args += ["--at", f"{at[0]!r},{at[1]!r}"]
    proc = calibench(*args)
    cmd = "calibench " + " ".join(shlex.quote(str(a)) for a in args)
    assert proc.returncode == 0, f"{cmd}\nexit {proc.returncode}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout), cmd


def close(a, b, tol):
    return abs(a - b) <= tol * max(1.0, abs(b))


def check_against_reference(cli, l0, l1, norm, at, where):
    l0 = np.asarray(l0, dtype=np.float64)
    l1 = np.asarray(l1, dtype=np.float64)
    k = len(l0)
    n1 = ref.normalise(l1, norm)
    (alo, ahi), (blo, bhi) = ref.box(k)
    assert cli["k"] == k and cli["normalisation"] == norm, where
    assert cli["box"]["alpha"] == [alo, ahi] and cli["box"]["beta"] == [blo, bhi], where
    np.testing.assert_allclose(cli["normalised"], n1, rtol=FORMULA_TOL, atol=FORMULA_TOL, err_msg=where)

    for name, pair in (("calibench", cli), ("grid", cli["grid"]), ("slsqp", cli["slsqp"]), ("start", cli["start"]),
                       ("at", cli["at"])):
        want = ref.objective(l0, l1, n1, pair["alpha"], pair["beta"])
        assert close(pair["objective"], want, FORMULA_TOL), \
            f"{where}: {name} objective {pair['objective']!r} != reference {want!r} at ({pair['alpha']}, {pair['beta']})"
    for name, pair in (("calibench", cli), ("grid", cli["grid"]), ("slsqp", cli["slsqp"])):
        assert alo <= pair["alpha"] <= ahi and blo <= pair["beta"] <= bhi, f"{where}: {name} pair outside the box"
    assert cli["start"]["alpha"] == min(max(1.0, alo), ahi) and cli["start"]["beta"] == 1.5, where

    w = ref.weights(n1, cli["alpha"], cli["beta"])
    np.testing.assert_allclose(cli["weights"], w, rtol=FORMULA_TOL, atol=FORMULA_TOL, err_msg=where)
    np.testing.assert_allclose(cli["at"]["weights"], ref.weights(n1, at[0], at[1]), rtol=FORMULA_TOL,
                               atol=FORMULA_TOL, err_msg=where)
    assert close(cli["weighted_loss"], ref.weighted_loss(l1, w), FORMULA_TOL), where

    h = 1e-6
    num = [(ref.objective(l0, l1, n1, at[0] + h, at[1]) - ref.objective(l0, l1, n1, at[0] - h, at[1])) / (2 * h),
           (ref.objective(l0, l1, n1, at[0], at[1] + h) - ref.objective(l0, l1, n1, at[0], at[1] - h)) / (2 * h)]
    for got, want in zip(cli["at"]["gradient"], num):
        assert abs(got - want) <= GRADIENT_TOL * (1.0 + abs(want)), f"{where}: gradient {cli['at']['gradient']} vs {num}"

    f = cli["objective"]
    assert f <= cli["grid"]["objective"], f"{where}: refined objective above the best grid pair"
    own = cli["slsqp"]["objective"]
    assert f <= own + NEVER_WORSE_SLACK * (1.0 + own), f"{where}: calibench {f!r} above NLopt SLSQP {own!r}"
    sa, sb, scipy_f = ref.slsqp(l0, l1, norm)
    assert f <= scipy_f + NEVER_WORSE_SLACK * (1.0 + scipy_f), \
        f"{where}: calibench {f!r} at ({cli['alpha']}, {cli['beta']}) above SciPy SLSQP {scipy_f!r} at ({sa}, {sb})"
    return f, own, scipy_f


# ----------------------------------------------------------------------------- random vectors


def random_case(seed, k, spread, mode):
    rng = np.random.default_rng(seed)
    l0 = np.abs(rng.normal(1.0, spread, size=k))
    if mode == "small-step":
        l1 = l0 + 0.01 * spread * rng.normal(size=k)
    elif mode == "large-step":
        l1 = l0 + spread * rng.normal(size=k)
    else:  # unrelated second vector
        l1 = np.abs(rng.normal(1.0, spread, size=k))
    at = (float(rng.uniform(0.05, 3.0)), float(rng.uniform(1.0, 2.5)))  # inside or outside the box
    return l0, l1, at


@pytest.mark.parametrize("norm", ref.NORMS)
@pytest.mark.parametrize("spread", [0.001, 0.3, 3.0])
@pytest.mark.parametrize("k", [2, 3, 10, 100])
def test_random_vectors_match_reference_and_beat_slsqp(calibench, k, spread, norm):
    for i, mode in enumerate(("small-step", "large-step", "unrelated")):
        seed = SEED + 1000 * k + 10 * i + int(1000 * spread)
        l0, l1, at = random_case(seed, k, spread, mode)
        cli, cmd = run_weights(calibench, l0, l1, norm, at)
        check_against_reference(cli, l0, l1, norm, at, f"seed {seed} k {k} spread {spread} {mode} {norm}\n{cmd}")


def test_equal_losses_give_zero_weights(calibench):
    cli, _ = run_weights(calibench, [0.7] * 5, [0.7] * 5, "nd", (1.0, 1.5))
    assert cli["normalised"] == [0.0] * 5 and cli["weights"] == [0.0] * 5
    assert cli["objective"] == 0.0


def test_grid_backends(calibench):
    """cpu is the default and says so; auto falls back to it without a device; cuda without a
    device (or without the CUDA build) is an input error, never a crash."""
    args = ["sctl-weights", "--l0", "0.2,0.9,1.4", "--l1", "0.25,0.8,1.3", "--grid", "64", "--format", "json"]
    cpu = json.loads(calibench(*args).stdout)
    assert cpu["grid"]["backend"] == "cpu"
    auto = calibench(*args, "--backend", "auto")
    assert auto.returncode == 0, auto.stderr
    got = json.loads(auto.stdout)
    if got["grid"]["backend"] == "cpu":
        assert got["alpha"] == cpu["alpha"] and got["objective"] == cpu["objective"]
        cuda = calibench(*args, "--backend", "cuda")
        assert cuda.returncode == 2, cuda.stderr
        assert "CUDA" in cuda.stderr and cuda.stdout == ""
    else:  # a device answered: the same fit within the device exp's rounding
        assert abs(got["objective"] - cpu["objective"]) <= 1e-12 * (1 + cpu["objective"])


def test_table_format(calibench):
    proc = calibench("sctl-weights", "--l0", "0.2,0.9,1.4", "--l1", "0.25,0.8,1.3", "--grid", "64")
    assert proc.returncode == 0, proc.stderr
    assert "calibench (grid 64 x 64 on cpu, refined)" in proc.stdout and "SLSQP (NLopt" in proc.stdout
    assert proc.stderr == ""


# ----------------------------------------------------------------------------- real dumps


def read_split(path, split="val"):
    with h5py.File(path, "r") as f:
        g = f[split]
        is_probs = "logits" not in g
        values = g["probs" if is_probs else "logits"][()].astype(np.float64)
        labels = g["labels"][()].reshape(-1).astype(np.int64)
    return values, labels, is_probs


REAL_DUMPS = sorted(REAL_DIR.glob("*.h5")) if REAL_DIR.is_dir() else []
needs_real = pytest.mark.skipif(not REAL_DUMPS, reason=f"real dumps absent ({REAL_DIR})")


@needs_real
@pytest.mark.parametrize("norm", ref.NORMS)
@pytest.mark.parametrize("dump", REAL_DUMPS, ids=[p.stem for p in REAL_DUMPS])
def test_real_dump_class_losses(calibench, dump, norm):
    values, labels, is_probs = read_split(dump)
    l0 = ref.class_losses(values, labels, 1.0, is_probs)
    l1 = ref.class_losses(values, labels, 1.1, is_probs)
    present = ~np.isnan(l0)  # classes absent from /val have no loss
    l0, l1 = l0[present], l1[present]
    at = (0.5, 1.75)
    cli, cmd = run_weights(calibench, l0, l1, norm, at)
    check_against_reference(cli, l0, l1, norm, at, f"{dump.name} {norm}\n{cmd}")


# ----------------------------------------------------------------------------- lsplus-priors


def read_priors_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class", "accuracy", "count", "prior_true", "prior_other"]
    body = rows[1:]
    assert [int(r[0]) for r in body] == list(range(len(body)))
    acc = np.array([float(r[1]) for r in body])
    count = np.array([int(r[2]) for r in body])
    return acc, count, np.array([float(r[3]) for r in body]), np.array([float(r[4]) for r in body])


def check_priors(calibench, dump, tmp_path, perfect="uniform", split="val"):
    out, matrix = tmp_path / "priors.csv", tmp_path / "matrix.csv"
    args = ["lsplus-priors", dump, "--out", out, "--matrix", matrix, "--perfect", perfect, "--split", split]
    proc = calibench(*args)
    assert proc.returncode == 0, f"{args}\n{proc.stderr}"
    assert proc.stdout.startswith(f"wrote {out}") and proc.stderr == ""
    values, labels, _ = read_split(dump, split)
    want = ref.lsplus_priors(values, labels, perfect)
    got = read_priors_csv(out)
    # The same IEEE operations in the same order, printed with 17 digits: equal to the last bit.
    for name, g, w in zip(("accuracy", "count", "prior_true", "prior_other"), got, want):
        np.testing.assert_array_equal(g, w, err_msg=f"{dump}: {name}")
    m = np.loadtxt(matrix, delimiter=",", ndmin=2)
    np.testing.assert_array_equal(m, ref.lsplus_matrix(want[2], want[3]))
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-12)  # each v^k is a distribution
    return want


def write_dump(path, values, labels, key="logits"):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = values.shape[1]
        for split in ("val", "test"):
            f[f"{split}/{key}"] = values
            f[f"{split}/labels"] = labels


@pytest.mark.parametrize("key", ["logits", "probs"])
@pytest.mark.parametrize("perfect", ["uniform", "half", "keep"])
def test_lsplus_priors_synthetic(calibench, tmp_path, perfect, key):
    rng = np.random.default_rng(SEED)
    k, n = 5, 400
    labels = rng.integers(0, 4, size=n).astype(np.int32)  # class 4 absent
    logits = rng.normal(size=(n, k))
    logits[labels == 1, 1] += 20.0  # class 1 always right: accuracy 1
    ties = np.arange(0, n, 7)
    logits[ties[labels[ties] != 1], :] = 0.0  # ties: the first index wins (right for label 0)
    values = logits if key == "logits" else np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    dump = tmp_path / "d.h5"
    write_dump(dump, values.astype(np.float64), labels, key)
    acc, count, prior_true, _ = check_priors(calibench, dump, tmp_path, perfect)
    assert count[4] == 0 and math.isnan(acc[4]) and prior_true[4] == 1.0 / k
    assert acc[1] == 1.0 and prior_true[1] == {"uniform": 1.0 / k, "half": 0.5, "keep": 1.0}[perfect]


@needs_real
@pytest.mark.parametrize("dump", REAL_DUMPS, ids=[p.stem for p in REAL_DUMPS])
def test_lsplus_priors_real(calibench, tmp_path, dump):
    check_priors(calibench, dump, tmp_path)


# ----------------------------------------------------------------------------- malformed input


MALFORMED_WEIGHTS = {
    "empty-l0": ["--l0", "", "--l1", "1,2"],
    "empty-l1": ["--l0", "1,2", "--l1", " "],
    "lengths-differ": ["--l0", "1,2,3", "--l1", "1,2"],
    "nan": ["--l0", "1,nan,2", "--l1", "1,2,3"],
    "inf": ["--l0", "1,2,3", "--l1", "1,inf,3"],
    "overflow": ["--l0", "1,2,3", "--l1", "1,1e400,3"],
    "not-a-number": ["--l0", "1,abc,3", "--l1", "1,2,3"],
    "empty-value": ["--l0", "1,,3", "--l1", "1,2,3"],
    "one-class": ["--l0", "1", "--l1", "2"],
    "missing-l1": ["--l0", "1,2"],
    "grid-too-small": ["--l0", "1,2", "--l1", "1,2", "--grid", "1"],
    "bad-norm": ["--l0", "1,2", "--l1", "1,2", "--norm", "gn"],
    "bad-at": ["--l0", "1,2", "--l1", "1,2", "--at", "0,1.5"],
    "at-one-value": ["--l0", "1,2", "--l1", "1,2", "--at", "1"],
}


def assert_usage_error(proc, what):
    assert proc.returncode == 2, f"{what}: exit {proc.returncode}, stderr {proc.stderr!r}"
    assert proc.stdout == "", what
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), f"{what}: stderr {proc.stderr!r}"


@pytest.mark.parametrize("case", sorted(MALFORMED_WEIGHTS))
def test_sctl_weights_malformed(calibench, case):
    assert_usage_error(calibench("sctl-weights", *MALFORMED_WEIGHTS[case]), case)


def test_lsplus_priors_malformed(calibench, tmp_path):
    good = tmp_path / "good.h5"
    write_dump(good, np.eye(3), np.arange(3, dtype=np.int32))
    bad = tmp_path / "bad.h5"
    nan_logits = np.eye(3)
    nan_logits[1, 2] = np.nan
    write_dump(bad, nan_logits, np.arange(3, dtype=np.int32))
    out = tmp_path / "p.csv"
    cases = {
        "missing-file": ["lsplus-priors", tmp_path / "nope.h5", "--out", out],
        "nan-logits": ["lsplus-priors", bad, "--out", out],
        "bad-perfect": ["lsplus-priors", good, "--out", out, "--perfect", "one"],
        "missing-out": ["lsplus-priors", good],
        "bad-split": ["lsplus-priors", good, "--out", out, "--split", "calib"],
    }
    for name, args in cases.items():
        assert_usage_error(calibench(*args), name)
    assert not out.exists()
