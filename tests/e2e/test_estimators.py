"""The estimators on the confidence order (ks_error, ece_sweep, aurc, eaurc) and the Brier
decomposition (docs/metrics.md, "Estimators on the confidence order") against the float64
reference of tests/reference/estimators_ref.py, written from their definitions: random logits of
many shapes (K = 2 to 5,000), tied confidences, confidences exactly on bin edges, probabilities,
all-correct / all-wrong splits, a split whose accuracy rises all the way (ece_sweep uses N
groups), bootstrap intervals, `--metrics` selection, the Python package, and the real dumps."""
import json
import math
import pathlib
import sys

import h5py
import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "reference"))
import calib_ref as ref  # noqa: E402
import estimators_ref as est  # noqa: E402
from conftest import REPO  # noqa: E402
from fit_helpers import write_splits  # noqa: E402
from test_eval_reference import gen_dup_rows, gen_edges5, gen_probs_softmax, gen_row_ties, gen_standard  # noqa: E402

TOL = 1e-12  # sums in another order than NumPy's pairwise ones
REAL = REPO.parent / "shared" / "data" / "real" / "h5"


def write(path, x, y, probs=False):
    return write_splits(path, {"val": (x, y), "test": (x, y)}, "probs" if probs else "logits")


def eval_json(calibench, *args):
    proc = calibench("eval", *map(str, args), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check(cli, want, keys=est.KEYS):
    for key in keys:
        assert cli[key] is not None, key
        assert abs(cli[key] - want[key]) <= TOL * max(1.0, abs(want[key])), (key, cli[key], want[key])


def rising(rng, n, k):
    """Logits whose top-label accuracy rises with confidence all the way: the least confident
    half wrong, the rest right, so every number of equal-mass groups is monotone."""
    z = np.zeros((n, k))
    z[:, 0] = np.linspace(0.1, 6.0, n)
    y = np.where(np.arange(n) < n // 2, 1, 0)
    return z, y


def nearly_rising(rng, n, k):
    """`rising` with one right/wrong pair swapped near the middle: monotone for many b (the
    quadratic path of the sweep), then not."""
    z, y = rising(rng, n, k)
    m = n // 2
    y[m - 1], y[m] = 0, 1  # a right prediction just below a wrong one
    return z, y


CASES = {  # name: (generator, n, k, probs)
    "k2": (gen_standard, 700, 2, False),
    "k10": (gen_standard, 3000, 10, False),
    "k100": (gen_standard, 2000, 100, False),
    "k5000": (gen_standard, 150, 5000, False),
    "row_ties": (gen_row_ties, 900, 7, False),
    "dup_rows": (gen_dup_rows, 1200, 6, False),
    "edges5": (gen_edges5, 800, 5, True),
    "probs": (gen_probs_softmax, 500, 3, True),
    "n1": (gen_standard, 1, 4, False),
    "n2": (gen_standard, 2, 2, False),
    "rising": (rising, 1500, 3, False),
    "nearly_rising": (nearly_rising, 400, 3, False),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("bins, binning", [(15, "right-closed"), (10, "left-closed"), (1, "right-closed")])
def test_estimators_equal_the_reference(calibench, tmp_path, name, bins, binning):
    gen, n, k, probs = CASES[name]
    x, y = gen(np.random.default_rng(17 + n + k), n, k)
    path = write(tmp_path / f"{name}.h5", x.astype(np.float64), y, probs)
    cli = eval_json(calibench, path, "--bins", bins, "--binning", binning)
    split = ref.load_split(str(path), "test")
    check(cli, est.estimators(split, bins, binning))
    if name == "rising":
        assert est.sweep_bins(split.c, split.correct) == n  # every b monotone (the O(N) shortcut)
    if name == "nearly_rising":
        assert 20 < est.sweep_bins(split.c, split.correct) < n  # the long monotone stretch, then a stop


@pytest.mark.parametrize("correct", [True, False])
def test_all_correct_or_all_wrong(calibench, tmp_path, correct):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(400, 5))
    y = z.argmax(1) if correct else (z.argmax(1) + 1) % 5
    cli = eval_json(calibench, write(tmp_path / "d.h5", z, y))
    assert cli["aurc"] == (0.0 if correct else 1.0) and cli["eaurc"] == 0.0
    assert cli["brier_uncertainty"] == 0.0 and cli["brier_resolution"] == 0.0


def test_decomposition_identity_with_one_forecast_per_bin(calibench, tmp_path):
    """With one distinct confidence per bin, REL - RES + UNC is the top-label Brier score."""
    rng = np.random.default_rng(9)
    rows = np.array([[0.5, 0.25, 0.25], [0.75, 0.125, 0.125], [1.0, 0.0, 0.0]])
    p = rows[rng.integers(0, 3, 600)]
    y = np.where(rng.random(600) < 0.6, 0, 1 + rng.integers(0, 2, 600))
    path = write(tmp_path / "d.h5", p, y, probs=True)
    cli = eval_json(calibench, path, "--bins", 10, "--brier", "top-label")
    rel, res, unc = cli["brier_reliability"], cli["brier_resolution"], cli["brier_uncertainty"]
    assert abs(rel - res + unc - cli["brier"]) <= 1e-15


def test_bootstrap_intervals_equal_the_reference(calibench, tmp_path):
    x, y = gen_standard(np.random.default_rng(3), 300, 4)
    path = write(tmp_path / "b.h5", x, y)
    cli = eval_json(calibench, path, "--bootstrap", 25, "--seed", 7, "--level", 0.9)
    split = ref.load_split(str(path), "test")
    values = {key: [] for key in est.KEYS}
    for b in range(25):
        r = est.estimators(split.take(ref.bootstrap_indices(7, b, split.n)))
        for key in est.KEYS:
            values[key].append(r[key])
    for key in est.KEYS:
        for bound, q in (("low", 0.05), ("high", 0.95)):
            want = ref.percentile_linear(values[key], q)
            assert abs(cli["ci"][key][bound] - want) <= TOL, (key, bound)


@pytest.mark.parametrize("selection", [["ks_error"], ["ece_sweep"], ["aurc"], ["eaurc", "aurc"], ["brier_resolution"],
                                       ["brier_reliability", "brier_uncertainty", "ece"], ["ks_error", "nll"]])
def test_selection_gives_the_full_run_bits(calibench, tmp_path, selection):
    x, y = gen_dup_rows(np.random.default_rng(8), 500, 6)
    path = write(tmp_path / "s.h5", x, y)
    full = eval_json(calibench, path, "--bootstrap", 10)
    part = eval_json(calibench, path, "--bootstrap", 10, "--metrics", ",".join(selection))
    assert set(part) - {"n", "k", "conventions", "bootstrap", "ci"} == set(selection)
    for key in selection:
        assert part[key] == full[key] and part["ci"][key] == full["ci"][key]


def test_python_evaluate_gives_the_cli_values(calibench, tmp_path):
    calibench_py = pytest.importorskip("calibench")
    x, y = gen_standard(np.random.default_rng(4), 800, 10)
    cli = eval_json(calibench, write(tmp_path / "p.h5", x.astype(np.float32), y))
    got = calibench_py.evaluate(x.astype(np.float32), y)
    for key in est.KEYS:
        assert got[key] == cli[key], key


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} absent (the real dumps)")
def test_real_dumps(calibench):
    paths = sorted(REAL.glob("*.h5"))
    assert paths
    for path in paths:
        cli = eval_json(calibench, path)
        check(cli, est.estimators(ref.load_split(str(path), "test")))
