# Datasets whose values HDF5 would make up (issue 15, items 5 and 6): declared but never
# written, declared far larger than the file, labels with chunks missing, a virtual dataset
# whose source file is gone. HDF5 reads fill values (zeros) for all of them, which came out as
# "accuracy 100 %" with exit 0; each is now refused by eval, info, fit and seg-eval with one line
# naming the file and the dataset, exit 2.
import os

import h5py
import numpy as np
import pytest

from conftest import failed_cleanly

N, K = 200, 3


def header(f, k=K):
    f.attrs["format"] = "calibench-logits"
    f.attrs["version"] = 1
    f.attrs["num_classes"] = k


def good(n=N, k=K, seed=0):
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal((n, k))).astype(np.float32), rng.integers(0, k, n).astype(np.int32)


def write_split(f, name, logits=None, labels=None):
    z, y = good()
    if logits is None:
        f.create_dataset(f"{name}/logits", data=z)
    else:
        logits(f, f"{name}/logits")
    if labels is None:
        f.create_dataset(f"{name}/labels", data=y)
    else:
        labels(f, f"{name}/labels")


def declared(shape, dtype):
    return lambda f, path: f.create_dataset(path, shape=shape, dtype=dtype)


def half_chunks(f, path):
    _, y = good()
    d = f.create_dataset(path, shape=y.shape, dtype=y.dtype, chunks=(20,))
    d[: N // 2] = y[: N // 2]


def missing_source(tmp):
    def make(f, path):
        z, _ = good()
        src = tmp / "source.h5"
        with h5py.File(src, "w") as s:
            s.create_dataset("z", data=z)
        layout = h5py.VirtualLayout(shape=z.shape, dtype=z.dtype)
        layout[:] = h5py.VirtualSource(str(src), "z", shape=z.shape)
        f.create_virtual_dataset(path, layout)
    return make


CASES = {
    "logits never written": (dict(logits=declared((N, K), "f4")), "/test/logits", "never written"),
    "labels never written": (dict(labels=declared((N,), "i4")), "/test/labels", "never written"),
    "1e7 rows declared in a small file": (dict(logits=declared((10_000_000, K), "f4"),
                                           labels=declared((10_000_000,), "i4")), "/test/logits", "never written"),
    "1e9 x 2 declared": (dict(logits=declared((1_000_000_000, K), "f4"),
                           labels=declared((1_000_000_000,), "i4")), "/test/logits", ""),
    "labels with missing chunks": (dict(labels=half_chunks), "/test/labels", "5 of its 10 chunks were never written"),
}


def make_dump(tmp_path, case):
    kwargs, _, _ = CASES[case]
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        header(f)
        write_split(f, "val")
        write_split(f, "test", **kwargs)
    return path


@pytest.mark.parametrize("command", [["eval", "{}"], ["info", "{}"], ["eval", "{}", "--bootstrap", "10"]])
@pytest.mark.parametrize("case", sorted(CASES))
def test_unwritten_dataset_is_refused(calibench, tmp_path, case, command):
    path = make_dump(tmp_path, case)
    assert os.path.getsize(path) < 200_000
    _, dataset, words = CASES[case]
    line = failed_cleanly(calibench(*[a.format(path) for a in command], timeout=120))
    assert str(path) in line and dataset in line and words in line, line


@pytest.mark.parametrize("case", ["logits never written", "labels with missing chunks"])
def test_fit_refuses_unwritten_validation_data(calibench, tmp_path, case):
    kwargs, dataset, words = CASES[case]
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        header(f)
        write_split(f, "val", **kwargs)
        write_split(f, "test")
    line = failed_cleanly(calibench("fit", path, "--method", "ts"))
    assert str(path) in line and dataset.replace("test", "val") in line and words in line, line


def test_virtual_dataset_with_missing_source(calibench, tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        header(f)
        write_split(f, "val")
        write_split(f, "test", logits=missing_source(tmp_path))
    assert calibench("eval", path).returncode == 0  # the source is there: a virtual dataset is fine
    os.remove(tmp_path / "source.h5")
    line = failed_cleanly(calibench("eval", path))
    assert str(path) in line and "/test/logits" in line and "source.h5 is missing" in line, line


def test_chunked_and_compressed_data_that_was_written_is_read(calibench, tmp_path):
    path = tmp_path / "ok.h5"
    z, y = good()
    with h5py.File(path, "w") as f:
        header(f)
        for split in ("val", "test"):
            f.create_dataset(f"{split}/logits", data=z, chunks=(16, K), compression="gzip")
            f.create_dataset(f"{split}/labels", data=y, chunks=(7,), compression="gzip")
    proc = calibench("eval", path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
