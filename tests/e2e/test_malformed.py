# End-to-end tests: malformed input and usage errors must be rejected cleanly.
#
# Contract (docs/metrics.md "Inputs" and "Errors"): bad input exits with status 2, prints
# nothing on stdout and exactly one line on stderr starting with "calibench: error: ", naming the
# file, the dataset path and the first offending index ("index [row, col]" for matrices,
# "index i" for vectors) or the offending shape. Bad input never crashes and never yields a number.
import json
import re
import shlex

import h5py
import numpy as np
import pytest

PREFIX = "calibench: error: "
N, K = 10, 3
FORMATS = ("json", "table")
TIMEOUT = 120  # a hang on malformed input is a failure too


# ----------------------------------------------------------------------------- helpers


def run(calibench, *args):
    args = [str(a) for a in args]
    res = calibench(*args, timeout=TIMEOUT)
    res.cmd = "calibench " + " ".join(shlex.quote(a) for a in args)
    return res


def describe(res):
    return (
        f"\n  command: {res.cmd}\n  returncode: {res.returncode}"
        f"\n  stdout: {res.stdout!r}\n  stderr: {res.stderr!r}"
    )


def valid_split(n=N, k=K, seed=0):
    rng = np.random.default_rng(seed)
    logits = (3.0 * rng.normal(size=(n, k))).astype(np.float32)
    labels = rng.integers(0, k, size=n).astype(np.int32)
    return {"logits": logits, "labels": labels}


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def probs_split(n=N, k=K, seed=0):
    s = valid_split(n, k, seed)
    return {"probs": softmax(s["logits"]).astype(np.float32), "labels": s["labels"]}


def write_dump(path, splits, num_classes=K, extra_attrs=None):
    """splits: {"val": {"logits": arr, "labels": arr}, ...}; a value of None omits the group."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["dataset"] = "synthetic"
        f.attrs["model"] = "test_malformed"
        if num_classes is not None:
            f.attrs["num_classes"] = num_classes
        for key, value in (extra_attrs or {}).items():
            f.attrs[key] = value
        for name, datasets in splits.items():
            if datasets is None:
                continue
            g = f.create_group(name)
            for dname, arr in datasets.items():
                g.create_dataset(dname, data=arr)
    return path


def dump_with(tmp_path, split, bad, name="bad.h5", **kw):
    """A valid dump whose `split` group is replaced by `bad` (the other split stays valid)."""
    splits = {"val": valid_split(seed=1), "test": valid_split(seed=2)}
    splits[split] = bad
    return write_dump(tmp_path / name, splits, **kw)


def eval_cmds(path, split="test"):
    return [("eval", path, "--split", split, "--format", fmt) for fmt in FORMATS]


def check_error(res, path=None, needles=(), patterns=(), absent=(), option=None):
    """Return a list of problems with `res` as a rejection (empty list = correctly rejected)."""
    problems = []
    if res.returncode != 2:
        problems.append(f"exit status {res.returncode}, expected 2")
    if res.stdout != "":
        problems.append("stdout is not empty")
    lines = res.stderr.splitlines()
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, expected exactly 1")
    if not res.stderr.startswith(PREFIX):
        problems.append(f"stderr does not start with {PREFIX!r}")
    msg = res.stderr
    if path is not None:
        if str(path) not in msg:
            problems.append(f"stderr does not name the file {str(path)!r}")
        # numbers/brackets are checked with the file path removed so that digits in tmp_path
        # cannot satisfy them by accident
        msg = msg.replace(str(path), "<FILE>")
    for needle in needles:
        if needle not in msg:
            problems.append(f"stderr does not contain {needle!r}")
    for pattern in patterns:
        if not re.search(pattern, msg):
            problems.append(f"stderr does not match /{pattern}/")
    for needle in absent:
        if needle in msg:
            problems.append(f"stderr contains {needle!r} (not the first offending element)")
    if option is not None and option not in msg:
        problems.append(f"stderr does not name the offending option/value {option!r}")
    return problems


def assert_rejected(calibench, cmds, path=None, needles=(), patterns=(), absent=(), option=None):
    failures = []
    for args in cmds:
        res = run(calibench, *args)
        problems = check_error(res, path, needles, patterns, absent, option)
        if problems:
            failures.append("; ".join(problems) + describe(res))
    assert not failures, "input was not rejected as specified:\n" + "\n".join(failures)


def assert_ok(res):
    assert res.returncode == 0, "expected success" + describe(res)
    return res


def idx(i):
    """Regex for the vector index `index i` (not followed by another digit)."""
    return rf"index {i}(?!\d)"


# ----------------------------------------------------------------------------- positive controls


def test_valid_baseline_eval_ok(calibench, tmp_path):
    path = write_dump(tmp_path / "good.h5", {"val": valid_split(seed=1), "test": valid_split(seed=2)})
    for split in ("test", "val"):
        res = assert_ok(run(calibench, "eval", path, "--split", split, "--format", "json"))
        try:
            doc = json.loads(res.stdout)
        except json.JSONDecodeError as e:
            pytest.fail(f"stdout is not JSON ({e})" + describe(res))
        assert isinstance(doc, dict) and "ece" in doc, "JSON has no key 'ece'" + describe(res)
        assert doc.get("n") == N and doc.get("k") == K, "wrong n/k" + describe(res)
        assert_ok(run(calibench, "eval", path, "--split", split, "--format", "table"))


def test_valid_variants_accepted(calibench, tmp_path):
    """Controls for the malformed variants below: probs, uint8 labels, [N,1] labels, float16/64."""
    variants = {
        "probs": probs_split(seed=2),
        "uint8_labels": {**valid_split(seed=2), "labels": valid_split(seed=2)["labels"].astype(np.uint8)},
        "col_labels": {**valid_split(seed=2), "labels": valid_split(seed=2)["labels"].astype(np.int64)[:, None]},
        "float16": {**valid_split(seed=2), "logits": valid_split(seed=2)["logits"].astype(np.float16)},
        "float64": {**valid_split(seed=2), "logits": valid_split(seed=2)["logits"].astype(np.float64)},
    }
    failures = []
    for name, split in variants.items():
        path = write_dump(tmp_path / f"{name}.h5", {"val": valid_split(seed=1), "test": split})
        res = run(calibench, "eval", path, "--split", "test", "--format", "json")
        if res.returncode != 0:
            failures.append(f"{name}: rejected a valid dump" + describe(res))
            continue
        try:
            assert "ece" in json.loads(res.stdout)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: bad JSON ({e!r})" + describe(res))
    assert not failures, "\n".join(failures)


def test_info_valid_baseline(calibench, tmp_path):
    path = write_dump(tmp_path / "good.h5", {"val": valid_split(seed=1), "test": valid_split(seed=2)})
    res = assert_ok(run(calibench, "info", path))
    assert "val" in res.stdout and "test" in res.stdout, "info does not mention the splits" + describe(res)


# ----------------------------------------------------------------------------- 1. missing file


def test_missing_file(calibench, tmp_path):
    path = tmp_path / "does_not_exist.h5"
    assert_rejected(calibench, eval_cmds(path) + eval_cmds(path, "val"), path)


def test_directory_instead_of_file(calibench, tmp_path):
    path = tmp_path / "a_directory.h5"
    path.mkdir()
    assert_rejected(calibench, eval_cmds(path), path)


# ----------------------------------------------------------------------------- 2. not HDF5


@pytest.mark.parametrize("kind", ["text", "empty", "random", "hdf5_signature_then_garbage"])
def test_not_hdf5(calibench, tmp_path, kind):
    path = tmp_path / f"{kind}.h5"
    if kind == "text":
        path.write_text("this is not an HDF5 file\nlogits,labels\n1,2\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(8192))
    else:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(8192))
    assert_rejected(calibench, eval_cmds(path) + eval_cmds(path, "val"), path)


# ----------------------------------------------------------------------------- 3. truncated HDF5


@pytest.mark.parametrize("size", ["half", "1KiB"])
def test_truncated_hdf5(calibench, tmp_path, size):
    path = tmp_path / f"truncated_{size}.h5"
    big = valid_split(n=20000, k=10, seed=3)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = 10
        for name, split in (("val", valid_split(n=100, k=10, seed=4)), ("test", big)):
            g = f.create_group(name)
            g.create_dataset("logits", data=split["logits"], chunks=None)
            g.create_dataset("labels", data=split["labels"], chunks=None)
    full = path.stat().st_size
    assert full > 20000 * 10 * 4
    new_size = full // 2 if size == "half" else 1024
    with open(path, "r+b") as fh:
        fh.truncate(new_size)
    assert_rejected(calibench, eval_cmds(path) + eval_cmds(path, "val"), path)


# ----------------------------------------------------------------------------- 4. missing group


@pytest.mark.parametrize("split", ["test", "val"])
def test_missing_split_group(calibench, tmp_path, split):
    other = "val" if split == "test" else "test"
    path = write_dump(tmp_path / f"no_{split}.h5", {other: valid_split(seed=1)})
    assert_rejected(calibench, eval_cmds(path, split), path, needles=[f"/{split}"])


# ----------------------------------------------------------------------------- 5. logits rank


@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("shape", [(N, K, 2), (N, K, 2, 2, 1)], ids=["rank3", "rank5"])
def test_logits_not_rank2(calibench, tmp_path, split, shape):
    good = valid_split(seed=5)
    logits = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    path = dump_with(tmp_path, split, {"logits": logits, "labels": good["labels"]})
    shape_str = "[" + ", ".join(str(d) for d in shape) + "]"
    assert_rejected(calibench, eval_cmds(path, split), path, needles=[f"/{split}/logits", shape_str])


# One score per row ([N] or [N, 1]) is a binary split (K = 2): beside a K = 3 split it is refused,
# naming both splits and saying that it was read as binary.
@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("shape", [(N,), (N, 1)], ids=["rank1", "column"])
def test_binary_split_beside_k3(calibench, tmp_path, split, shape):
    logits = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    path = dump_with(tmp_path, split, {"logits": logits, "labels": np.zeros(N, dtype=np.int32)})
    # /val is read first, so the message names /test and compares it with /val.
    test_k, val_k = (2, K) if split == "test" else (K, 2)
    assert_rejected(calibench, eval_cmds(path, split), path,
                    needles=[f"/test/logits: K = {test_k} differs from /val K = {val_k}", "binary", "read as K = 2"])


# ----------------------------------------------------------------------------- 6. labels length


@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("n_labels", [7, 15])
def test_labels_length_mismatch(calibench, tmp_path, split, n_labels):
    good = valid_split(n=12, seed=6)
    labels = np.random.default_rng(6).integers(0, K, size=n_labels).astype(np.int32)
    path = dump_with(tmp_path, split, {"logits": good["logits"], "labels": labels})
    assert_rejected(
        calibench, eval_cmds(path, split), path,
        needles=[f"/{split}/labels"], patterns=[r"(?<!\d)12(?!\d)", rf"(?<!\d){n_labels}(?!\d)"],
    )


def test_labels_bad_rank(calibench, tmp_path):
    good = valid_split(seed=6)
    labels = np.zeros((N, 2), dtype=np.int32)
    path = dump_with(tmp_path, "test", {"logits": good["logits"], "labels": labels})
    assert_rejected(calibench, eval_cmds(path), path, needles=["/test/labels", f"[{N}, 2]"])


# ----------------------------------------------------------------------------- 7. K < 2


@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("k", [0])  # [N, 1] is a binary split (test_binary_split_beside_k3)
def test_too_few_classes(calibench, tmp_path, split, k):
    logits = np.random.default_rng(7).normal(size=(N, k)).astype(np.float32)
    labels = np.zeros(N, dtype=np.int32)
    path = dump_with(tmp_path, split, {"logits": logits, "labels": labels})
    assert_rejected(calibench, eval_cmds(path, split), path, needles=[f"/{split}/logits"])


# ----------------------------------------------------------------------------- 8. N = 0


@pytest.mark.parametrize("split", ["test", "val"])
def test_zero_samples(calibench, tmp_path, split):
    bad = {"logits": np.zeros((0, K), dtype=np.float32), "labels": np.zeros(0, dtype=np.int32)}
    path = dump_with(tmp_path, split, bad)
    assert_rejected(calibench, eval_cmds(path, split), path, needles=[f"/{split}/logits"])


# ----------------------------------------------------------------------------- 9. NaN / Inf logits


@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_logit_first_index(calibench, tmp_path, split, dtype):
    good = valid_split(seed=9)
    logits = good["logits"].astype(dtype)
    logits[3, 1] = np.nan
    logits[6, 0] = np.nan  # later offenders must not be the one reported
    logits[8, 2] = np.inf
    path = dump_with(tmp_path, split, {"logits": logits, "labels": good["labels"]})
    assert_rejected(
        calibench, eval_cmds(path, split), path,
        needles=[f"/{split}/logits", "index [3, 1]"], absent=["index [6, 0]", "index [8, 2]"],
    )


@pytest.mark.parametrize("split", ["test", "val"])
def test_posinf_logit_last_element(calibench, tmp_path, split):
    good = valid_split(seed=9)
    logits = good["logits"].copy()
    logits[N - 1, K - 1] = np.inf
    path = dump_with(tmp_path, split, {"logits": logits, "labels": good["labels"]})
    assert_rejected(
        calibench, eval_cmds(path, split), path, needles=[f"/{split}/logits", f"index [{N - 1}, {K - 1}]"]
    )


@pytest.mark.parametrize("split", ["test", "val"])
def test_neginf_logit(calibench, tmp_path, split):
    good = valid_split(seed=9)
    logits = good["logits"].copy()
    logits[2, 0] = -np.inf
    logits[7, 1] = -np.inf
    path = dump_with(tmp_path, split, {"logits": logits, "labels": good["labels"]})
    assert_rejected(
        calibench, eval_cmds(path, split), path,
        needles=[f"/{split}/logits", "index [2, 0]"], absent=["index [7, 1]"],
    )


# ----------------------------------------------------------------------------- 10. labels range


def _labels_case(kind):
    labels = valid_split(seed=10)["labels"].astype(np.int64)
    if kind == "negative_int32":
        labels[4], labels[8] = -1, -2
        return labels.astype(np.int32), 4
    if kind == "equal_k_int32":
        labels[7], labels[9] = K, K + 5
        return labels.astype(np.int32), 7
    if kind == "equal_k_uint8":
        labels[7] = K
        return labels.astype(np.uint8), 7
    if kind == "negative_int64_column":
        labels[4], labels[8] = -1, -3
        return labels.astype(np.int64)[:, None], 4
    if kind == "equal_k_int16_column":
        labels[7] = K
        return labels.astype(np.int16)[:, None], 7
    if kind == "huge_int64":  # 2**32 wraps to 0 in a careless int32 cast
        labels[7] = 2**32
        return labels, 7
    if kind == "huge_uint32":  # 2**32-1 wraps to -1 in a careless int32 cast
        labels[7] = 2**32 - 1
        return labels.astype(np.uint32), 7
    if kind == "huge_uint64":  # 2**64-1 is -1 as int64
        return np.where(np.arange(N) == 7, np.uint64(2**64 - 1), labels.astype(np.uint64)), 7
    raise AssertionError(kind)


LABEL_CASES = ["negative_int32", "equal_k_int32", "equal_k_uint8", "negative_int64_column",
               "equal_k_int16_column", "huge_int64", "huge_uint32", "huge_uint64"]


@pytest.mark.parametrize("split", ["test", "val"])
@pytest.mark.parametrize("kind", LABEL_CASES)
def test_label_out_of_range(calibench, tmp_path, split, kind):
    labels, first = _labels_case(kind)
    path = dump_with(tmp_path, split, {"logits": valid_split(seed=10)["logits"], "labels": labels})
    # vectors report `index i`; an [N, 1] label column may also be reported as `index [i, 0]`
    pattern = rf"(index {first}(?!\d)|index \[{first}, 0\])" if labels.ndim == 2 else idx(first)
    assert_rejected(calibench, eval_cmds(path, split), path, needles=[f"/{split}/labels"], patterns=[pattern])


# ----------------------------------------------------------------------------- 11. probabilities


@pytest.mark.parametrize("split", ["test", "val"])
def test_probs_negative_entry(calibench, tmp_path, split):
    good = probs_split(seed=11)
    probs = good["probs"].copy()
    probs[2] = [-0.1, 0.6, 0.5]  # sums to 1: only the sign is wrong
    probs[6] = [0.7, -0.2, 0.5]
    path = dump_with(tmp_path, split, {"probs": probs, "labels": good["labels"]})
    assert_rejected(
        calibench, eval_cmds(path, split), path,
        needles=[f"/{split}/probs", "index [2, 0]"], absent=["index [6, 1]"],
    )


@pytest.mark.parametrize("split", ["test", "val"])
def test_probs_row_sum(calibench, tmp_path, split):
    good = probs_split(seed=11)
    probs = good["probs"].copy()
    probs[5] = [0.3, 0.3, 0.3]  # sums to 0.9
    probs[8] = [0.5, 0.3, 0.3]  # sums to 1.1 (later offender)
    path = dump_with(tmp_path, split, {"probs": probs, "labels": good["labels"]})
    assert_rejected(
        calibench, eval_cmds(path, split), path, needles=[f"/{split}/probs"], patterns=[idx(5)],
        absent=["index 8"],
    )


@pytest.mark.parametrize("split", ["test", "val"])
def test_probs_nan(calibench, tmp_path, split):
    """NaN compares false with everything: a naive `p < 0` / `|sum - 1| > tol` check lets it through."""
    good = probs_split(seed=11)
    probs = good["probs"].copy()
    probs[3, 1] = np.nan
    path = dump_with(tmp_path, split, {"probs": probs, "labels": good["labels"]})
    assert_rejected(calibench, eval_cmds(path, split), path, needles=[f"/{split}/probs"],
                    patterns=[r"index (\[3, 1\]|3(?!\d))"])


# ----------------------------------------------------------------------------- 12. float labels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_labels(calibench, tmp_path, dtype):
    good = valid_split(seed=12)
    labels = good["labels"].astype(dtype)  # integer-valued, but not an integer type
    path = dump_with(tmp_path, "test", {"logits": good["logits"], "labels": labels})
    assert_rejected(calibench, eval_cmds(path), path, needles=["/test/labels"])


# ----------------------------------------------------------------------------- 13. no logits/probs


@pytest.mark.parametrize("contents", ["empty_group", "labels_only"])
def test_no_logits_or_probs(calibench, tmp_path, contents):
    bad = {} if contents == "empty_group" else {"labels": valid_split(seed=13)["labels"]}
    path = dump_with(tmp_path, "test", bad)
    assert_rejected(calibench, eval_cmds(path), path, needles=["/test"])


def test_missing_labels(calibench, tmp_path):
    path = dump_with(tmp_path, "test", {"logits": valid_split(seed=13)["logits"]})
    assert_rejected(calibench, eval_cmds(path), path, needles=["/test/labels"])


# ----------------------------------------------------------------------------- 14. string logits


@pytest.mark.parametrize("kind", ["fixed", "variable"])
def test_string_logits(calibench, tmp_path, kind):
    path = tmp_path / f"string_{kind}.h5"
    write_dump(path, {"val": valid_split(seed=1)})
    with h5py.File(path, "a") as f:
        g = f.create_group("test")
        if kind == "fixed":
            g.create_dataset("logits", data=np.full((N, K), b"1.5", dtype="S3"))
        else:
            g.create_dataset("logits", data=np.full((N, K), "1.5", dtype=object), dtype=h5py.string_dtype())
        g.create_dataset("labels", data=valid_split(seed=14)["labels"])
    assert_rejected(calibench, eval_cmds(path), path, needles=["/test/logits"])


# ----------------------------------------------------------------------------- 15. num_classes


@pytest.mark.parametrize("num_classes", [5, 2])
def test_num_classes_disagrees(calibench, tmp_path, num_classes):
    path = write_dump(tmp_path / "num_classes.h5", {"val": valid_split(seed=1), "test": valid_split(seed=2)},
                      num_classes=num_classes)
    assert_rejected(calibench, eval_cmds(path) + eval_cmds(path, "val"), path, needles=["num_classes"])


# ----------------------------------------------------------------------------- 16. usage errors


@pytest.fixture
def good_dump(tmp_path):
    return write_dump(tmp_path / "good.h5", {"val": valid_split(seed=1), "test": valid_split(seed=2)})


@pytest.mark.parametrize(
    "args,option",
    [
        (["--frobnicate"], "--frobnicate"),
        (["--bins", "0"], "--bins"),
        (["--bins", "-3"], "--bins"),
        (["--bins", "abc"], "--bins"),
        (["--split", "nonsense"], "nonsense"),
        (["--binning", "nonsense"], "nonsense"),
        (["--format", "xml"], "xml"),
        (["--bins"], "--bins"),
    ],
    ids=["unknown_option", "bins_0", "bins_-3", "bins_abc", "split_nonsense", "binning_nonsense",
         "format_xml", "bins_missing_value"],
)
def test_usage_errors(calibench, good_dump, args, option):
    cmds = [("eval", good_dump, "--format", "json", *args), ("eval", good_dump, "--format", "table", *args)]
    assert_rejected(calibench, cmds, option=option)


def test_usage_missing_file_argument(calibench):
    assert_rejected(calibench, [("eval",), ("eval", "--split", "test", "--format", "json")])


# ----------------------------------------------------------------------------- 17. info


def test_info_rejects_malformed(calibench, tmp_path):
    missing = tmp_path / "does_not_exist.h5"
    text = tmp_path / "text.h5"
    text.write_text("not hdf5\n")
    good = valid_split(seed=17)
    logits = good["logits"].copy()
    logits[3, 1] = np.nan
    nan = dump_with(tmp_path, "test", {"logits": logits, "labels": good["labels"]}, name="nan.h5")
    assert_rejected(calibench, [("info", missing)], missing)
    assert_rejected(calibench, [("info", text)], text)
    assert_rejected(calibench, [("info", nan)], nan, needles=["/test/logits", "index [3, 1]"])


# ----------------------------------------------------------------------------- additional probes
# Beyond the enumerated cases: same contract (exit 2, empty stdout, one line naming what is wrong).


def test_declared_huge_unwritten_dataset(calibench, tmp_path):
    """A tiny file declaring /test/logits [10^12, 3] (chunked, never written) must be refused with
    a message naming the file and dataset, not a bare allocation failure."""
    path = tmp_path / "huge.h5"
    write_dump(path, {"val": valid_split(seed=1)})
    with h5py.File(path, "a") as f:
        g = f.create_group("test")
        g.create_dataset("logits", shape=(10**12, K), dtype="f4", chunks=(1024, K))
        g.create_dataset("labels", shape=(10**12,), dtype="i4", chunks=(1024,))
    assert_rejected(calibench, [("eval", path, "--split", "test", "--format", "json")], path,
                    needles=["/test/logits"])


@pytest.mark.parametrize(
    "args,option",
    [
        (["eval", "{FILE}", "--binning", "1"], "--binning"),  # only right-closed|left-closed are documented
        (["eval", "{FILE}", "--binning", "0"], "--binning"),
        (["eval", "{FILE}", "--seed", "18446744073709551616"], "--seed"),  # 2^64 does not fit a uint64 seed
        (["eval", "{FILE}", "--level", "nan"], "--level"),
        (["frob", "{FILE}"], "frob"),  # unknown subcommand should be named
    ],
    ids=["binning_1", "binning_0", "seed_2^64", "level_nan", "unknown_subcommand"],
)
def test_usage_errors_extra(calibench, good_dump, args, option):
    args = [str(good_dump) if a == "{FILE}" else a for a in args]
    assert_rejected(calibench, [(*args, "--format", "json")] if args[0] == "eval" else [tuple(args)],
                    option=option)
