"""`skce` and `skce_pvalue` (Widmann, Lindsten and Zachariah, NeurIPS 2019, as the authors'
CalibrationErrors.jl / CalibrationTests.jl compute them with the paper's kernel; docs/metrics.md,
docs/ports/skce.md) against the float64 reference tests/reference/skce_ref.py (checked against the
paper's published CIFAR-10 estimates in tests/reference/test_skce_ref.py): random logits and
probabilities of several shapes, calibrated and miscalibrated, duplicated rows, mostly one-hot rows
(the median bandwidth 0 rule), N = 1 and 2, the same p-value as the reference's bootstrap (the same
SplitMix64 draws), bootstrap intervals, thread invariance, the on-request selection (neither the
default nor `all` computes them), the Python package, and a real dump."""
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import softmax

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import calib_ref as ref  # noqa: E402
import skce_ref  # noqa: E402
from conftest import REPO, calibench_bin  # noqa: E402
from fit_helpers import write_splits  # noqa: E402

# The pair sums run in another order (blocked C++ against numpy's BLAS); relative to the mean |h|
# the difference is ~1e-15, and skce itself can be a small difference of such terms.
REL = 1e-10
ABS = 1e-14
REAL = REPO.parent / "shared" / "data" / "real" / "h5" / "netcal_lenet_5_cifar_10.h5"


def write(path, x, y, probs=False):
    return write_splits(path, {"val": (x, y), "test": (x, y)}, "probs" if probs else "logits")


def eval_json(*args, env=None):
    proc = subprocess.run([calibench_bin(), "eval", *map(str, args), "--format", "json"], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def probs_of(path):
    s = ref.load_split(str(path), "test")
    return s.p, s.y


def check(path, with_pvalue=True):
    cli = eval_json(path, "--metrics", "skce,skce_pvalue" if with_pvalue else "skce")
    p, y = probs_of(path)
    want = skce_ref.asymptotic_test(p, y) if len(y) >= 2 else {"estimate": math.nan, "pvalue": math.nan}
    if math.isnan(want["estimate"]):
        assert cli["skce"] is None, cli
    else:
        assert abs(cli["skce"] - want["estimate"]) <= REL * abs(want["estimate"]) + ABS, (cli["skce"], want)
    if with_pvalue:
        if math.isnan(want["pvalue"]):
            assert cli["skce_pvalue"] is None
        else:
            assert cli["skce_pvalue"] == want["pvalue"], (cli["skce_pvalue"], want["pvalue"])
    return cli, want


def miscalibrated(rng, n, k, tau):
    t = 2.0 * rng.normal(size=(n, k))
    p = softmax(t, 1)
    y = np.array([rng.choice(k, p=row) for row in p]).astype(np.int32)
    return (t * tau).astype(np.float32), y


@pytest.mark.parametrize("n, k, tau", [(300, 2, 1.0), (400, 3, 2.5), (1000, 10, 1.0), (1000, 10, 3.0),
                                       (250, 100, 1.5), (2, 4, 2.0)])
def test_random_logits_equal_the_reference(tmp_path, n, k, tau):
    rng = np.random.default_rng(n + k)
    z, y = miscalibrated(rng, n, k, tau)
    cli, want = check(write(tmp_path / "d.h5", z, y))
    if n >= 400 and tau >= 2.5:
        assert cli["skce_pvalue"] < 0.01, cli  # over-confident: the test rejects calibration


def test_calibrated_probabilities_are_not_rejected(tmp_path):
    # Labels drawn from the stated probabilities: the test's p-value is not small (seed chosen once
    # among 12 whose reference p-values spread over 0.19 .. 0.95: 0.913; the assertion is the CLI's).
    rng = np.random.default_rng(100)
    p = rng.dirichlet(np.full(4, 0.7), size=600)
    y = np.array([rng.choice(4, p=row) for row in p]).astype(np.int32)
    cli, _ = check(write(tmp_path / "c.h5", p, y, probs=True))
    assert cli["skce_pvalue"] > 0.05, cli


def test_mostly_one_hot_rows(tmp_path):
    # More than half of the N^2 distances are 0: the median bandwidth is 0 and the mean is used.
    rng = np.random.default_rng(6)
    p = np.zeros((200, 3))
    p[np.arange(200), rng.integers(0, 1, 200)] = 1.0
    p[:40] = rng.dirichlet(np.ones(3), size=40)
    y = rng.integers(0, 3, 200).astype(np.int32)
    assert skce_ref.median_distance(p) == 0
    check(write(tmp_path / "o.h5", p, y, probs=True))


def test_duplicated_rows_and_identical_rows(tmp_path):
    rng = np.random.default_rng(7)
    base = rng.dirichlet(np.ones(5), size=20)
    p = base[rng.integers(0, 20, 500)]
    y = rng.integers(0, 5, 500).astype(np.int32)
    check(write(tmp_path / "dup.h5", p, y, probs=True))
    # Every row the same: the bandwidth falls back to 1.
    same = np.tile([[0.2, 0.3, 0.5]], (50, 1))
    check(write(tmp_path / "same.h5", same, rng.integers(0, 3, 50).astype(np.int32), probs=True))


def test_one_row_gives_null(tmp_path):
    cli = eval_json(write(tmp_path / "one.h5", np.array([[0.2, 0.8]]), np.array([1], np.int32), probs=True),
                    "--metrics", "skce,skce_pvalue")
    assert cli["skce"] is None and cli["skce_pvalue"] is None, cli


def test_on_request_only(tmp_path):
    rng = np.random.default_rng(8)
    path = write(tmp_path / "d.h5", *miscalibrated(rng, 100, 3, 1.0))
    assert "skce" not in eval_json(path) and "skce_pvalue" not in eval_json(path, "--metrics", "all")
    both = eval_json(path, "--metrics", "ece,skce")
    assert set(both) == {"n", "k", "ece", "skce", "conventions"}, both


def test_threads_and_bootstrap(tmp_path):
    # The same bits for 1 and 2 threads; bootstrap intervals of skce from the resampled rows.
    rng = np.random.default_rng(9)
    path = write(tmp_path / "d.h5", *miscalibrated(rng, 700, 6, 2.0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = eval_json(path, "--metrics", "skce,skce_pvalue", "--bootstrap", 8, "--seed", 3, env=env)
    two = eval_json(path, "--metrics", "skce,skce_pvalue", "--bootstrap", 8, "--seed", 3,
                    env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert one == two
    p, y = probs_of(path)
    values = [skce_ref.skce_unbiased(p[idx], y[idx]) for idx in (ref.bootstrap_indices(3, b, len(y)) for b in range(8))]
    for bound, q in (("low", 0.025), ("high", 0.975)):
        want = ref.percentile_linear(values, q)
        assert abs(one["ci"]["skce"][bound] - want) <= REL * abs(want) + ABS, (bound, one["ci"]["skce"], want)


def test_python_evaluate(tmp_path):
    cb = pytest.importorskip("calibench")
    rng = np.random.default_rng(10)
    z, y = miscalibrated(rng, 500, 4, 1.5)
    cli = eval_json(write(tmp_path / "d.h5", z, y), "--metrics", "skce,skce_pvalue")
    got = cb.evaluate(z, y, metrics=["skce", "skce_pvalue"])
    assert got["skce"] == cli["skce"] and got["skce_pvalue"] == cli["skce_pvalue"]


def test_real_dump():
    if not REAL.exists():
        pytest.skip(f"{REAL} absent")
    check(REAL, with_pvalue=False)
