# The memory guard of dump reading (issue 15, item 6): a header may declare any shape, and the
# guard refuses one whose float64 values, labels and per-row scores (8 N K + 24 N bytes) exceed
# this machine's memory before anything is allocated. It used to count the values only
# (8 N K), so a K = 2 dump of N rows with 16 N < memory < 40 N got through and allocated until
# the OOM killer came. The test logits here are fully written (every chunk present, so the
# unwritten-data checks pass) yet tiny: float16 logits and uint8 labels, each chunk the same
# zlib-compressed block of zeros, written directly.
import os
import zlib

import h5py
import numpy as np
import pytest

from conftest import failed_cleanly

K = 2
CHUNK_ROWS = 1 << 24  # 16 Mi rows x 2 float16 = 64 MiB per chunk, about 65 KB compressed


def machine_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGESIZE")
    except (ValueError, OSError):
        return 0


def written_zeros(f, name, shape, dtype, chunk):
    """A chunked, deflated dataset whose every chunk is stored (zeros), written without building
    the array: one compressed chunk reused at every offset."""
    ds = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunk, compression="gzip")
    block = zlib.compress(np.zeros(chunk, dtype=dtype).tobytes())
    for row0 in range(0, shape[0], chunk[0]):
        ds.id.write_direct_chunk((row0,) + (0,) * (len(shape) - 1), block)


def test_guard_counts_labels_and_scores(calibench, tmp_path):
    memory = machine_memory()
    if memory <= 0:
        pytest.skip("this machine does not report its physical memory (sysconf SC_PHYS_PAGES)")
    # N in (memory / 40, memory / 16): over the limit with labels and scores counted, under it
    # with the values alone; N / memory = 1 / 28 sits well inside.
    n = -(-(memory // 28) // CHUNK_ROWS) * CHUNK_ROWS
    assert 16 * n < memory < 40 * n, (n, memory)
    path = tmp_path / "tall.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = K
        f["val/logits"] = np.zeros((10, K), dtype=np.float32)
        f["val/labels"] = np.zeros(10, dtype=np.int32)
        written_zeros(f, "test/logits", (n, K), "f2", (CHUNK_ROWS, K))
        written_zeros(f, "test/labels", (n,), "u1", (CHUNK_ROWS,))
    assert path.stat().st_size < 64 << 20
    proc = calibench("eval", path, timeout=120)
    failed_cleanly(proc)
    assert f"{path}: /test/logits: shape [{n}, {K}] needs" in proc.stderr, proc.stderr
    assert "float64 values, labels and scores" in proc.stderr and "more than this machine's" in proc.stderr
