"""Binary inputs (docs/metrics.md, "Inputs"): /<split>/logits [N] or [N, 1] (the log-odds s of
class 1) or /<split>/probs [N] / [N, 1] (P(class 1)) behave as K = 2 with logits [0, s] or
probabilities [1 - p, p] in every command: eval, info, fit, apply, sweep-candidates, sweep specs
and the Python package give exactly the numbers of the equivalent two-column dump, and say
"binary"; malformed binary scores get one-line errors naming the first bad index."""
import csv
import json
import subprocess

import h5py
import numpy as np
import pytest

from conftest import calibench_bin
from fit_helpers import write_splits  # noqa: E402

N_VAL, N_TEST = 600, 900


def scores(rng, n, probs):
    y = rng.integers(0, 2, n)
    s = (2.0 * y - 1.0) * 1.2 + rng.normal(size=n) * 1.5
    s[:7] = 0.0  # ties at the decision boundary: class 0 (the lowest index) is predicted
    return (1.0 / (1.0 + np.exp(-s)) if probs else s), y


def write(path, splits, kind):
    return write_splits(path, splits, kind)


@pytest.fixture(scope="module", params=["logits", "probs"])
def pair(request, tmp_path_factory):
    """(binary [N] dump, binary [N, 1] dump, the equivalent K = 2 dump, kind)."""
    kind = request.param
    probs = kind == "probs"
    rng = np.random.default_rng(21 if probs else 12)
    root = tmp_path_factory.mktemp(f"binary_{kind}")
    raw = {"val": scores(rng, N_VAL, probs), "test": scores(rng, N_TEST, probs)}
    dtype = np.float64 if probs else np.float32
    flat = write(root / "flat.h5", {k: (v.astype(dtype), y) for k, (v, y) in raw.items()}, kind)
    column = write(root / "column.h5", {k: (v.astype(dtype).reshape(-1, 1), y) for k, (v, y) in raw.items()}, kind)

    def two(v):
        v = v.astype(dtype).astype(np.float64)
        return np.stack([1.0 - v, v], axis=1) if probs else np.stack([np.zeros_like(v), v], axis=1).astype(dtype)

    wide = write(root / "wide.h5", {k: (two(v), y) for k, (v, y) in raw.items()}, kind)
    return flat, column, wide, kind


def run(*args):
    return subprocess.run([calibench_bin(), *map(str, args)], capture_output=True, text=True, timeout=600)


def json_of(*args):
    proc = run(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_eval_equals_the_two_column_dump(pair):
    flat, column, wide, _ = pair
    want = json_of("eval", wide, "--bootstrap", 20, "--reliability", "--classwise")
    for path in (flat, column):
        got = json_of("eval", path, "--bootstrap", 20, "--reliability", "--classwise")
        assert got.pop("binary") is True and "binary" not in want
        assert got == want
    assert "binary" in run("eval", flat).stdout.splitlines()[0]
    # Ties at s = 0 (p = 0.5) predict class 0, the lowest index, as argmax does.
    accuracy = json_of("eval", flat, "--metrics", "accuracy")["accuracy"]
    with h5py.File(flat) as f:
        kind = "probs" if "probs" in f["test"] else "logits"
        s, y = f[f"test/{kind}"][:], f["test/labels"][:]
    predicted = (s > (0.5 if kind == "probs" else 0.0)).astype(int)
    assert accuracy == np.mean(predicted == y)


def test_info_says_binary(pair):
    flat, _, _, kind = pair
    info = json_of("info", flat)
    assert all(s["k"] == 2 and s["scores"].startswith(f"binary {kind}") for s in info["splits"])


@pytest.mark.parametrize("method", ["ts", "platt", "vs", "ms", "hist", "iso", "ws", "dir_odir"])
def test_fit_and_apply_equal_the_two_column_dump(pair, tmp_path, method):
    flat, column, wide, kind = pair
    if kind == "probs" and method in ("platt",):
        pytest.skip("platt takes logits")
    extra = ["--odir-lambda", "0.01", "--odir-mu", "0.01"] if method == "dir_odir" else []
    volatile = ("seconds",)
    want = json_of("fit", wide, "--method", method, *extra)
    for path in (flat, column):
        got = json_of("fit", path, "--method", method, *extra, "--save", tmp_path / "cal.h5")
        assert got.pop("binary") is True
        assert {k: v for k, v in got.items() if k not in volatile} == {
            k: v for k, v in want.items() if k not in volatile}
        applied = json_of("apply", tmp_path / "cal.h5", path)
        assert applied["binary"] is True and applied["test"] == got["test"]


def test_sweep_candidates_equal_the_two_column_dump(pair):
    flat, _, wide, _ = pair
    args = ["sweep-candidates", "--family", "temperature", "--grid", "0.5:3:0.25"]
    got, want = json_of(*args[:1], flat, *args[1:]), json_of(*args[:1], wide, *args[1:])
    for key in ("file", "seconds"):
        got.pop(key), want.pop(key)
    assert got == want


def test_sweep_spec_with_a_binary_dataset(pair, tmp_path):
    flat, _, wide, _ = pair
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
name = "binary"
bins = 10
seeds = [0, 1]
[[datasets]]
path = "{flat}"
name = "binary"
[[datasets]]
path = "{wide}"
name = "wide"
[[methods]]
method = "uncalibrated"
[[methods]]
method = "ts"
""")
    proc = run("sweep", spec, "--out", tmp_path / "out", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    volatile = {"id", "dataset", "file", "seconds"}
    by = {}
    for r in rows:
        by.setdefault(r["dataset"], []).append({k: v for k, v in r.items() if k not in volatile})
    assert by["binary"] == by["wide"] and all(r["k"] == "2" for r in rows)
    cells = json.loads((tmp_path / "out" / "results.json").read_text())  # one object per cell
    assert all(c.get("binary") is True for c in cells if c["dataset"] == "binary")
    assert all("binary" not in c for c in cells if c["dataset"] == "wide")


@pytest.mark.parametrize("bad, needle", [
    (np.nan, "non-finite value nan at index"),
    (1.5, "probability 1.5 at index"),
])
@pytest.mark.parametrize("shape", ["flat", "column"])
def test_bad_binary_scores(tmp_path, bad, needle, shape):
    probs = bad == 1.5
    rng = np.random.default_rng(3)
    v, y = scores(rng, 50, probs)
    v[17] = bad
    test_values = v.reshape(-1, 1) if shape == "column" else v
    good = scores(rng, 50, probs)
    path = write(tmp_path / "bad.h5", {"val": good, "test": (test_values, y)}, "probs" if probs else "logits")
    proc = run("eval", path)
    index = "[17, 0]" if shape == "column" else "[17]"
    assert proc.returncode == 2 and f"{needle} {index}" in proc.stderr and "/test/" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1


def test_labels_must_be_zero_or_one(tmp_path):
    rng = np.random.default_rng(4)
    v, y = scores(rng, 40, False)
    y[9] = 2
    path = write(tmp_path / "bad.h5", {"val": scores(rng, 40, False), "test": (v, y)}, "logits")
    proc = run("eval", path)
    assert proc.returncode == 2 and "label 2 at index 9 outside [0, 2)" in proc.stderr


def test_python_binary_inputs_equal_two_columns():
    calibench = pytest.importorskip("calibench")
    rng = np.random.default_rng(8)
    s, y = scores(rng, 700, False)
    s32 = s.astype(np.float32)
    two = np.stack([np.zeros_like(s32), s32], axis=1)
    want = calibench.evaluate(two, y, bootstrap=10)
    for values in (s32, s32.reshape(-1, 1), s32[::-1][::-1]):
        got = calibench.evaluate(values, y, bootstrap=10)
        assert got.pop("binary") is True and got == want
    p = 1.0 / (1.0 + np.exp(-s))
    got = calibench.evaluate(p, y, probs=True)
    assert got.pop("binary") is True and got == calibench.evaluate(np.stack([1.0 - p, p], axis=1), y, probs=True)
    for method in ("ts", "platt", "vs"):
        cal, cal2 = calibench.fit(method, s32, y), calibench.fit(method, two, y)
        assert cal.params == cal2.params
        assert np.array_equal(cal.transform(s32), cal2.transform(two))
        assert cal.evaluate(s32, y) == cal2.evaluate(two, y)
    sweep = calibench.sweep_temperatures(s32, y, temperatures=[0.5, 1.0, 2.0])
    sweep2 = calibench.sweep_temperatures(two, y, temperatures=[0.5, 1.0, 2.0])
    assert all(np.array_equal(sweep[k], sweep2[k]) for k in ("ece", "nll", "brier", "accuracy"))
    bad = s32.copy()
    bad[5] = np.inf
    with pytest.raises(ValueError, match=r"^logits: non-finite value inf at index \[5\]$"):
        calibench.evaluate(bad, y)
    with pytest.raises(ValueError, match=r"^probs: probability 1.5 at index \[3, 0\] outside \[0, 1\]"):
        calibench.evaluate(np.where(np.arange(700) == 3, 1.5, p).reshape(-1, 1), y, probs=True)
    with pytest.raises(ValueError, match=r"labels: label 2 at index 0 outside \[0, 2\)"):
        calibench.evaluate(s32, np.where(np.arange(700) == 0, 2, y))
