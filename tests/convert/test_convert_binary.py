# Tests for binary splits in experiments/convert/calibench_convert.py: one score per row ([N] or
# [N, 1], the log-odds or P(class 1)) from every kind of input is stored exactly as given, with
# num_classes = 2, and `calibench eval` reads it as K = 2 ([0, s] / [1 - p, p]); --probs-to-logits
# stores the log-odds; malformed binary input exits 2 with one line. Run: pytest tests/convert/test_convert_binary.py
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CONVERT_DIR = REPO / "experiments" / "convert"
SCRIPT = CONVERT_DIR / "calibench_convert.py"
PREFIX = "calibench-convert: error: "
CLI = pathlib.Path(os.environ.get("CALIBENCH_BIN") or REPO / "build" / "calibench")
LOG_CLIP = 1e-38  # the converter's clip of p and 1 - p before the log (README, "Binary splits")

sys.path.insert(0, str(CONVERT_DIR))
import calibench_convert  # noqa: E402

N_VAL, N_TEST = 30, 31  # different, so that a split read from the wrong group shows


# ============================================================================ inputs


def scores(n, seed, probs, dtype):
    """Binary scores with the edge cases: ties (s = 0, p = 0.5), +-100 logits, p = 0 and p = 1."""
    rng = np.random.default_rng(seed)
    if probs:
        v = rng.random(n)
        v[:4] = [0.5, 0.0, 1.0, 0.5]
    else:
        v = 3.0 * rng.normal(size=n)
        v[:4] = [0.0, 100.0, -100.0, 0.0]
    labels = rng.integers(0, 2, size=n)
    labels[:4] = [1, 0, 0, 0]  # a tie with label 1 is wrong, with label 0 right
    return v.astype(dtype), labels


def shaped(v, shape):
    return v[:, None] if shape == "n1" else v


def write_npz(d, val, test):
    path = d / "in.npz"
    np.savez(path, logits_val=val[0], y_val=val[1], logits_test=test[0], y_test=test[1])
    return [path]


def write_npy(d, val, test):
    args = []
    for split, (v, y) in (("val", val), ("test", test)):
        np.save(d / f"{split}_v.npy", v)
        np.save(d / f"{split}_y.npy", y)
        args += [f"--{split}-logits", d / f"{split}_v.npy", f"--{split}-labels", d / f"{split}_y.npy"]
    return args


def write_pickle(d, val, test):
    path = d / "in.p"
    with open(path, "wb") as f:
        pickle.dump((val, test), f, protocol=4)
    return [path]


SOURCES = {"npz": write_npz, "npy": write_npy, "pickle": write_pickle}


# ============================================================================ helpers


from convert_helpers import convert, convert_ok, read_dump  # noqa: E402,F401  (shared by the converter suites)


def expected_accuracy(v, labels, probs):
    """calibench's argmax of [0, s] or [1 - p, p]: class 1 only when strictly larger (ties: class 0)."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    predicted = (v > 1.0 - v) if probs else (v > 0)
    return float(np.mean(predicted.astype(int) == labels))


def check_eval(path, split, v, labels, probs):
    """`calibench eval` reads the split as binary, K = 2, with the accuracy of the score's sign."""
    if not CLI.is_file():
        pytest.skip(f"calibench CLI not found at {CLI} (build it, or set CALIBENCH_BIN)")
    res = subprocess.run([str(CLI), "eval", str(path), "--split", split, "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["binary"] is True and report["k"] == 2 and report["n"] == len(labels)
    assert report["accuracy"] == expected_accuracy(v, labels, probs)  # a count over N: exact


def check_binary_dump(path, splits, stored):
    """The dump holds every split's array exactly as given (shape, dtype, values)."""
    attrs, data = read_dump(path)
    assert attrs["num_classes"] == 2
    assert "binary split" in attrs["source"]
    for split, (v, y) in splits.items():
        got = data[f"{split}/{stored}"]
        assert got.shape == v.shape and got.dtype == v.dtype, (split, got.shape, got.dtype)
        np.testing.assert_array_equal(got, v)
        np.testing.assert_array_equal(data[f"{split}/labels"], y)
        assert data[f"{split}/labels"].dtype == np.int32
    other = "logits" if stored == "probs" else "probs"
    assert not any(name.endswith(other) for name in data)


def run_cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def check_rejected(res, path, *needles):
    """Exit 2, nothing on stdout, one line on stderr naming the file and saying what is wrong."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"{PREFIX}{path}: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ============================================================================ conversions


@pytest.mark.parametrize("kind", ["logits", "probs"])
@pytest.mark.parametrize("shape", ["n", "n1"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_val_test_inputs(tmp_path, source, shape, kind):
    probs = kind == "probs"
    dtype = np.float64 if probs else np.float32
    (v, yv), (t, yt) = scores(N_VAL, 1, probs, dtype), scores(N_TEST, 2, probs, dtype)
    val, test = (shaped(v, shape), yv), (shaped(t, shape), yt)
    args = SOURCES[source](tmp_path, val, test)
    out = tmp_path / "out.h5"
    stdout, stderr = convert_ok(*args, "-o", out, *(["--probs"] if probs else []))
    check_binary_dump(out, {"val": val, "test": test}, kind)
    assert "(binary)" in stdout
    assert "note: binary split" in stderr and ("[1 - p, p]" if probs else "[0, s]") in stderr
    check_eval(out, "val", v, yv, probs)
    check_eval(out, "test", t, yt, probs)


@pytest.mark.parametrize("kind", ["logits", "probs"])
@pytest.mark.parametrize("shape", ["n", "n1"])
def test_split_seed_single_set(tmp_path, shape, kind):
    probs = kind == "probs"
    v, y = scores(61, 3, probs, np.float32)
    src = tmp_path / "single.p"
    with open(src, "wb") as f:
        pickle.dump((shaped(v, shape), y), f, protocol=2)
    out = tmp_path / "out.h5"
    convert_ok(src, "--split-seed", "7", "-o", out, *(["--probs"] if probs else []))
    perm = np.random.RandomState(7).permutation(61)
    index = {"val": np.sort(perm[:30]), "test": np.sort(perm[30:])}
    check_binary_dump(out, {s: (shaped(v, shape)[i], y[i]) for s, i in index.items()}, kind)
    _, data = read_dump(out)
    for split, i in index.items():
        np.testing.assert_array_equal(data[f"{split}/index"], i)
    check_eval(out, "test", v[index["test"]], y[index["test"]], probs)


@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_csv_one_value_column(tmp_path, kind):
    probs = kind == "probs"
    v, y = scores(40, 4, probs, np.float64)
    split = np.where(np.arange(40) % 3 == 0, "test", "val")
    src = tmp_path / "scores.csv"
    src.write_text("id,score,label,split\n" + "".join(
        f"{i},{float(a)!r},{b},{s}\n" for i, (a, b, s) in enumerate(zip(v, y, split))))
    out = tmp_path / "out.h5"
    convert_ok(src, "--logit-columns", "score", "--split-column", "split", "-o", out,
               *(["--probs"] if probs else []))
    rows = {s: split == s for s in ("val", "test")}
    check_binary_dump(out, {s: (v[r][:, None], y[r]) for s, r in rows.items()}, kind)  # one column: [N, 1]
    check_eval(out, "test", v[rows["test"]], y[rows["test"]], probs)


@pytest.mark.parametrize("shape", ["n", "n1"])
def test_probs_to_logits_gives_log_odds(tmp_path, shape):
    p, y = scores(N_VAL, 5, True, np.float64)
    p[4:7] = [1e-40, 1.0 - 1e-12, 0.25]  # below the clip; near 1; exact quarter
    val = test = (shaped(p, shape), y)
    out = tmp_path / "out.h5"
    _, stderr = convert_ok(*write_npz(tmp_path, val, test), "--probs-to-logits", "-o", out)
    q = shaped(p, shape)
    expected = np.log(np.maximum(q, LOG_CLIP)) - np.log(np.maximum(1.0 - q, LOG_CLIP))
    check_binary_dump(out, {"val": (expected, y), "test": (expected, y)}, "logits")
    _, data = read_dump(out)
    s = data["val/logits"].reshape(-1)
    assert s[0] == 0.0 and s[3] == 0.0  # p = 0.5: a tie, predicted class 0
    assert s[1] == np.log(LOG_CLIP) and s[2] == -np.log(LOG_CLIP)  # p = 0, 1: -/+87.5
    assert s[6] == np.log(0.25) - np.log(0.75)
    assert "note: binary split" in stderr
    attrs, _ = read_dump(out)
    assert "log-odds" in attrs["source"]
    check_eval(out, "val", p, y, True)  # the log-odds predict as the probabilities do


def test_inspect_marks_binary(tmp_path):
    v, y = scores(N_VAL, 6, False, np.float32)
    (src,) = write_npz(tmp_path, (v, y), (v[:, None], y))
    res = run_cli(src, "--inspect")
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.startswith("binary: ")]
    assert len(lines) == 2 and "(30,)" in lines[0] and "(30, 1)" in lines[1] and "K = 2" in lines[0]


# ============================================================================ malformed input


def test_malformed_binary_inputs(tmp_path):
    v, y = scores(N_VAL, 8, False, np.float32)
    p, _ = scores(N_VAL, 8, True, np.float64)
    bad_p = p.copy()
    bad_p[5] = 1.5
    nan = v.copy()
    nan[9] = np.nan
    label2 = y.copy()
    label2[11] = 2
    big = v.copy()
    big[3] = 1e6  # finite in float32, Inf in float16
    k3 = np.random.default_rng(0).normal(size=(N_VAL, 3)).astype(np.float32)
    k2 = k3[:, :2].copy()
    cases = {  # name: (val, test, options, needles)
        "p_above_1": ((bad_p, y), (p, y), ["--probs"], ["val probabilities", "probability 1.5 outside [0, 1]",
                                                        "index 5"]),
        "p_above_1_to_logits": ((p, y), (bad_p[:, None], y), ["--probs-to-logits"],
                                ["test probabilities", "probability 1.5", "index [5, 0]"]),
        "nan": ((v, y), (nan[:, None], y), [], ["test logits", "NaN at index [9, 0]"]),
        "label_2": ((v, label2), (v, y), [], ["val labels", "label 2 outside [0, 2)", "index 11"]),
        "binary_val_k3_test": ((v, y), (k3, y), [], ["val logits", "binary", "test logits", "K = 3", "(30, 3)"]),
        "binary_test_k2_val": ((k2, y), (v[:, None], y), [], ["test logits", "binary", "K = 2", "mistake"]),
        "empty": ((v[:0], y[:0]), (v, y), [], ["val logits", "empty", "N = 0"]),
        "float16_overflow": ((big, y), (v, y), ["--dtype", "float16"],
                             ["val logits", "Inf after conversion to float16", "index 3"]),
    }
    for name, (val, test, options, needles) in cases.items():
        d = tmp_path / name
        d.mkdir()
        (src,) = write_npz(d, val, test)
        out = d / "never.h5"
        check_rejected(run_cli(src, "-o", out, *options), src, *needles)
        assert not out.exists() and not list(d.glob(".*.tmp")), name


def test_malformed_single_and_table(tmp_path):
    v, y = scores(N_VAL, 9, False, np.float64)
    empty = tmp_path / "empty.p"
    with open(empty, "wb") as f:
        pickle.dump((np.zeros(0, np.float32), np.zeros(0, np.int64)), f)
    check_rejected(run_cli(empty, "--split-seed", "0", "-o", tmp_path / "o.h5"), empty, "logits", "empty")
    csv = tmp_path / "label2.csv"
    csv.write_text("score,label\n" + "".join(f"{float(a)!r},{b}\n" for a, b in zip(v, y)) + "0.5,2\n")
    check_rejected(run_cli(csv, "--logit-columns", "score", "--split-seed", "0", "-o", tmp_path / "o.h5"), csv,
                   f"line {N_VAL + 2}, column 'label': label 2 outside [0, 2)")
    assert not (tmp_path / "o.h5").exists()

