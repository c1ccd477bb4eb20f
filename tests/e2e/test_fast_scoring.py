"""The scoring fast paths of issue 18 (host/metrics/scores.cpp): `calibench.evaluate` reads
float32 and float64 arrays in place, keeps the probabilities only when a classwise metric asks
for them, scores short rows in blocks of 8 and long rows one by one. Every path must give the
float64 reference's values (tests/reference/calib_ref.py), the same bits as every other path,
and the same bits for 1 and 2 threads, on ties, confidences exactly on bin edges, K = 2, huge K,
terms that underflow to 0 and N not a multiple of the block."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import calib_ref as ref  # noqa: E402

calibench = pytest.importorskip("calibench")

TOL = 1e-9  # as tests/e2e/test_eval_reference.py (its comment says why)
TOP_LABEL = ["accuracy", "ece", "mce", "adaece", "nll", "brier", "r_auc", "precision", "recall", "f1"]
REFERENCE_KEYS = ["accuracy", "ece", "mce", "adaece", "sce", "ace", "nll", "brier", "auroc", "precision", "recall",
                  "f1", "r_auc"]


def logits_of(kind, rng, n, k):
    """Logits of the adversarial kinds."""
    if kind == "random":
        z = 2.0 * rng.standard_normal((n, k))
    elif kind == "ties":  # whole rows repeated (tied confidences), and tied maxima within rows
        # (Rows that are permutations of each other would tie only up to the softmax's summation
        # order, a convention of each implementation, so the base rows are generic.)
        base = np.round(2.0 * rng.standard_normal((max(n // 4, 1), k)), 1)
        base[:, -1] = base.max(axis=1)
        z = base[rng.integers(0, len(base), n)]
    elif kind == "equal":  # every row equal: confidence 1/K exactly, a bin edge for M = K
        z = np.full((n, k), 0.75)
    elif kind == "underflow":  # terms exp(-800) = 0 and exp(-720) subnormal, beside ordinary ones
        z = rng.standard_normal((n, k))
        z[:, 0] = -800.0
        z[::2, 1] = -720.0
    else:
        raise ValueError(kind)
    return z


def check_against_reference(got, z, y, bins=15):
    s = ref.from_logits(np.asarray(z, dtype=np.float64), y)
    want = ref.compute_metrics(s, bins, "right-closed")
    for key in REFERENCE_KEYS:
        if key not in got:
            continue
        a, b = got[key], ref.to_json_value(want[key])
        if b is None:
            assert a is None, key
        else:
            assert a is not None and abs(a - b) <= TOL, (key, a, b)


CASES = [  # kind, n, k: blocks of 8 (K <= 160) with a tail of rows, and rows one by one
    ("random", 1003, 10), ("random", 509, 100), ("random", 333, 161), ("random", 77, 1000),
    ("ties", 403, 7), ("ties", 61, 300), ("equal", 45, 10), ("equal", 21, 200),
    ("underflow", 99, 5), ("underflow", 35, 400), ("random", 40, 2), ("ties", 17, 2),
]


@pytest.mark.parametrize("kind,n,k", CASES)
def test_every_path_equals_the_reference_and_each_other(kind, n, k):
    rng = np.random.default_rng(n * 31 + k)
    z = logits_of(kind, rng, n, k)
    y = rng.integers(0, k, n)
    full = calibench.evaluate(z, y)  # float64 in place, probabilities kept (classwise metrics)
    check_against_reference(full, z, y)
    for bins in (10, k):  # "equal" rows: confidence 1/K, exactly the edge 1/M of M = K bins
        check_against_reference(calibench.evaluate(z, y, bins=bins), z, y, bins=bins)
    top = calibench.evaluate(z, y, metrics=TOP_LABEL)  # no probabilities
    assert {key: full[key] for key in TOP_LABEL} == {key: top[key] for key in TOP_LABEL}
    # float32 in place, float32 converted (Fortran order), rows with a stride, int32 labels:
    # the same values as float64 holding the same numbers
    z32 = z.astype(np.float32)
    want32 = calibench.evaluate(z32.astype(np.float64), y)
    wide = np.zeros((n, k + 3), dtype=np.float32)
    wide[:, :k] = z32
    for variant in (z32, np.asfortranarray(z32), wide[:, :k]):
        assert calibench.evaluate(variant, y.astype(np.int32)) == want32


def test_a_block_and_single_rows_give_the_same_bits():
    """Rows scored inside a block of 8 (K <= 160) and the same rows scored alone agree exactly:
    the probabilities of `transform` (temperature 1: the softmax itself)."""
    identity = calibench.Calibrator.from_json({"method": "ts", "params": {"temperature": 1.0}})
    rng = np.random.default_rng(5)
    for k in (2, 3, 10, 64, 160, 161):
        z = 3.0 * rng.standard_normal((19, k))
        together = identity.transform(z)
        for i in range(19):
            np.testing.assert_array_equal(identity.transform(z[i:i + 1])[0], together[i], err_msg=f"K={k} row {i}")
        # block rows and single rows inside one call: rows 0-15 in blocks, 16-18 alone; the same
        # rows moved to the tail give the same bits
        shifted = identity.transform(np.vstack([z[3:], z[:3]]))
        np.testing.assert_array_equal(shifted[-3:], together[:3])


def test_huge_k_against_long_double_softmax():
    rng = np.random.default_rng(11)
    n, k = 12, 100_000
    z = 4.0 * rng.standard_normal((n, k)).astype(np.float32)
    y = rng.integers(0, k, n)
    got = calibench.evaluate(z, y, metrics=["nll", "ece", "brier"])
    zl = z.astype(np.longdouble)
    p = np.exp(zl - zl.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    nll = float(-np.log(p[np.arange(n), y]).mean())
    onehot = np.zeros((n, k), dtype=np.longdouble)
    onehot[np.arange(n), y] = 1
    brier = float(((p - onehot) ** 2).sum(axis=1).mean())
    assert got["nll"] == pytest.approx(nll, rel=1e-13)
    assert got["brier"] == pytest.approx(brier, rel=1e-13)
    check_against_reference(calibench.evaluate(z, y), z, y)


def test_underflowing_terms_are_exact_zeros():
    """A term exp(z_j - max) below exp(-745) is exactly 0 and one near exp(-720) is the
    subnormal std::exp gives (the fast exp clamps at -700; those terms take std::exp), so a
    class probability that underflows is 0 and falls in no right-closed classwise bin. NLL is
    taken in log space: (z_y - max) - log S, finite."""
    identity = calibench.Calibrator.from_json({"method": "ts", "params": {"temperature": 1.0}})
    for rows in (1, 9):  # one row alone, and inside a block of 8
        z = np.tile(np.array([[0.0, -800.0, -720.0, -746.0, -745.0]]), (rows, 1))
        p = identity.transform(z)
        assert p[0, 1] == 0.0 and p[0, 3] == 0.0
        assert p[0, 2] == np.exp(-720.0) > 0 and p[0, 4] == np.exp(-745.0) > 0
        assert p[0, 0] == 1.0
        np.testing.assert_array_equal(p, np.tile(p[:1], (rows, 1)))
    got = calibench.evaluate(np.array([[0.0, -800.0, -1.0]]), np.array([1]), metrics=["nll"])
    assert got["nll"] == pytest.approx(800.0 + np.log1p(np.exp(-1.0)), rel=1e-15)


def test_one_column_is_binary_and_no_column_is_refused():
    """A single score column is a binary input (K = 2, logits [0, s]: tests/e2e/test_binary.py);
    no column at all is refused, naming the argument and the shape."""
    got = calibench.evaluate(np.zeros((5, 1), dtype=np.float32), np.zeros(5, dtype=np.int64), metrics=["ece"])
    assert got["k"] == 2 and got["binary"] is True
    with pytest.raises(ValueError, match=r"logits: K = 0 class \(shape \[5, 0\]\); need at least 2 classes"):
        calibench.evaluate(np.zeros((5, 0), dtype=np.float32), np.zeros(5, dtype=np.int64), metrics=["ece"])


def test_bad_values_are_reported_as_before():
    z = np.zeros((20, 10), dtype=np.float32)
    z[13, 4] = np.nan
    with pytest.raises(ValueError, match=r"logits: non-finite value nan at index \[13, 4\]"):
        calibench.evaluate(z, np.zeros(20, dtype=np.int64), metrics=["ece"])
    z[13, 4] = 0
    z[17, 9] = np.inf
    with pytest.raises(ValueError, match=r"logits: non-finite value inf at index \[17, 9\]"):
        calibench.evaluate(z[:, :], np.zeros(20, dtype=np.int64))
    # a bad value is reported before a bad label, as make_split checks them
    with pytest.raises(ValueError, match=r"non-finite value inf at index \[17, 9\]"):
        calibench.evaluate(z, np.full(20, 99))


def test_contiguous_rows_are_not_copied():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((300, 12))
    y = rng.integers(0, 12, 300).astype(np.int32)
    before = calibench._core._input_copies()
    for v in (z, z.astype(np.float32), np.hstack([z, z])[:, :12]):
        calibench.evaluate(v, y, metrics=["ece"])
        calibench.evaluate(v, y)
    assert calibench._core._input_copies() == before
    calibench.evaluate(np.asfortranarray(z), y)  # columns strided: converted, and counted
    calibench.evaluate(z.astype(np.float16), y)
    assert calibench._core._input_copies() == before + 2


THREAD_SCRIPT = r"""
import json, sys
import numpy as np
import calibench
out = {}
for n, k in [(1003, 10), (509, 100), (333, 161), (120, 1000)]:
    rng = np.random.default_rng(n + k)
    z = (2.0 * rng.standard_normal((n, k))).astype(np.float32)
    y = rng.integers(0, k, n)
    out[f"{n}x{k}"] = [calibench.evaluate(z, y, bootstrap=5), calibench.evaluate(z, y, metrics=["ece", "nll", "brier"])]
print(json.dumps(out))
"""


def test_one_and_two_threads_give_identical_bits():
    runs = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        proc = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    assert runs[0] == runs[1]
