# Converter inputs with crafted dtypes (issue 15, item 8: "the converter exits 0 with numpy
# tracebacks on a crafted dtype pickle"). Every array dtype numpy can pickle, in the logits and in
# the labels, through a pickle, an .npz and a pair of .npy files: either a clean conversion of
# what the dtype holds (floats of any width or byte order; integer, boolean or integral float
# labels) or exit 2 with one line naming the file and what is wrong, never a traceback and never
# an output file.
import pathlib
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "convert" / "calibench_convert.py"
PREFIX = "calibench-convert: error: "
N, K = 40, 3


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def good(seed):
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal((N, K))).astype(np.float32), rng.integers(0, K, N)


def crafted(kind, base):
    """`base` (logits [N, K] float32 or labels [N] int) recast to a hostile dtype."""
    if kind == "complex":
        return base.astype(np.complex64) + 1j
    if kind == "datetime":
        return base.astype(np.int64).astype("datetime64[s]")
    if kind == "timedelta":
        return base.astype(np.int64).astype("timedelta64[ms]")
    if kind == "str":
        return base.astype(str)
    if kind == "bytes":
        return base.astype("S8")
    if kind == "bool":
        return base > 0
    if kind == "object":
        return base.astype(object)
    if kind == "void":
        return np.frombuffer(np.ascontiguousarray(base).tobytes(), dtype=f"V{base.dtype.itemsize}").reshape(base.shape)
    if kind == "structured":
        out = np.zeros(base.shape, dtype=[("a", "f4"), ("b", "i4")])
        out["a"] = base
        return out
    if kind == "longdouble":
        return base.astype(np.longdouble)
    if kind == "big_endian":
        return base.astype(base.dtype.newbyteorder(">"))
    if kind == "zero_dim":
        return np.array(base.ravel()[0])
    raise ValueError(kind)


KINDS = ["complex", "datetime", "timedelta", "str", "bytes", "bool", "object", "void", "structured", "longdouble",
         "big_endian", "zero_dim"]
# What converts: numbers in another byte order or width, and booleans as labels 0 / 1.
CONVERTS = {("logits", "big_endian"), ("labels", "big_endian"), ("logits", "longdouble"), ("labels", "longdouble"),
            ("labels", "bool")}


def write(fmt, folder, lv, yv, lt, yt):
    if fmt == "pickle":
        path = folder / "crafted.p"
        with open(path, "wb") as f:
            pickle.dump(((lv, yv), (lt, yt)), f, protocol=4)
        return [path]
    if fmt == "npz":
        path = folder / "crafted.npz"
        np.savez(path, val_logits=lv, val_labels=yv, test_logits=lt, test_labels=yt)
        return [path]
    paths = []
    for name, arr in (("logits", lt), ("labels", yt)):
        paths += [f"--{name}", folder / f"test_{name}.npy"]
        np.save(paths[-1], arr, allow_pickle=arr.dtype == object)
    return paths


@pytest.mark.parametrize("fmt", ["pickle", "npz", "npy"])
@pytest.mark.parametrize("which", ["logits", "labels"])
@pytest.mark.parametrize("kind", KINDS)
def test_crafted_dtype(tmp_path, fmt, which, kind):
    (lv, yv), (lt, yt) = good(1), good(2)
    if which == "logits":
        lv, lt = crafted(kind, lv), crafted(kind, lt)
    else:
        yv, yt = crafted(kind, yv), crafted(kind, yt)
    paths = write(fmt, tmp_path, lv, yv, lt, yt)
    out = tmp_path / "out.h5"
    extra = ["--split-seed", "0"] if fmt == "npy" else []
    proc = run(*paths, *extra, "-o", out)
    desc = f"{fmt} {which} {kind}: rc={proc.returncode}\nstdout={proc.stdout!r}\nstderr={proc.stderr!r}"
    assert "Traceback" not in proc.stderr, desc
    if (which, kind) in CONVERTS:
        assert proc.returncode == 0, desc
        with h5py.File(out) as f:
            z = f["test/logits"][()]
            y = f["test/labels"][()]
        want_z, want_y = good(2)
        if kind == "bool":
            want_y = want_y > 0
        if fmt != "npy":  # a single-set .npy pair is re-split by --split-seed
            assert np.array_equal(z, want_z) and np.array_equal(y, want_y), desc
        return
    assert proc.returncode == 2, desc
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(PREFIX), desc
    assert any(str(p) in proc.stderr for p in paths if isinstance(p, pathlib.Path)), desc
    assert not out.exists(), desc
