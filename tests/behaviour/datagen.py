"""Input data of the golden corpus, generated once into WORK/data.

Synthetic dumps come from the OLD binary (`calibench synth ...`); the special dumps (probability
dumps, exact ties, confidences on bin edges, one-hot rows, dtype variants, malformed dumps) are
written with h5py + numpy from fixed seeds, so they are the same on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np

# Bump when the generated data changes: a stale WORK/data is then regenerated.
DATA_VERSION = "golden-data-6"

# name -> calibench synth arguments (all small: N <= a few thousand, K <= 100)
SYNTH = {
    "s10": ["--classes", "10", "--n-val", "1000", "--n-test", "1000", "--seed", "1"],
    "s10t": ["--classes", "10", "--n-val", "1000", "--n-test", "1000", "--seed", "1", "--temperature", "3"],
    "s10b": ["--classes", "10", "--n-val", "600", "--n-test", "800", "--seed", "7"],
    "s10cal": ["--classes", "10", "--n-val", "800", "--n-test", "800", "--seed", "9", "--temperature", "1",
               "--class-distortion", "0", "--class-bias", "0"],
    "s10small": ["--classes", "10", "--n-val", "200", "--n-test", "200", "--seed", "11"],
    "s3": ["--classes", "3", "--n-val", "300", "--n-test", "300", "--seed", "2"],
    "s3b": ["--classes", "3", "--n-val", "200", "--n-test", "250", "--seed", "12", "--temperature", "2"],
    "s2": ["--classes", "2", "--n-val", "500", "--n-test", "500", "--seed", "3"],
    "s100": ["--classes", "100", "--n-val", "2000", "--n-test", "1000", "--seed", "5", "--temperature", "2",
             "--logit-scale", "5"],
    "seg": ["--segmentation", "--images", "2", "--height", "16", "--width", "16"],
    "seg3": ["--segmentation", "--classes", "3", "--images", "2", "--height", "16", "--width", "20",
             "--augmentations", "2", "--seed", "5"],
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _write(path: Path, splits: dict, num_classes=None, attrs=None, skip_default_attrs=False):
    """splits: {split: {dataset: array}}; the root attributes of DESIGN section 2."""
    with h5py.File(path, "w") as f:
        if not skip_default_attrs:
            f.attrs["format"] = "calibench-logits"
            f.attrs["version"] = 1
            f.attrs["dataset"] = path.stem
            f.attrs["model"] = "golden"
            if num_classes is not None:
                f.attrs["num_classes"] = num_classes
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        for split, datasets in splits.items():
            g = f.create_group(split)
            for name, arr in datasets.items():
                g.create_dataset(name, data=arr)


def _read_split(path: Path, split: str):
    with h5py.File(path, "r") as f:
        return np.asarray(f[split]["logits"]), np.asarray(f[split]["labels"])


def _edge_rows(rng, n, k, values):
    """Probability rows whose top value is one of `values` (exactly representable sums)."""
    rows = []
    for i in range(n):
        c = values[i % len(values)]
        row = np.zeros(k)
        top = int(rng.integers(0, k))
        row[top] = c
        rest = 1.0 - c
        others = [j for j in range(k) if j != top]
        if k == 2:
            row[others[0]] = rest
        else:
            row[others[0]] = rest
        rows.append(row)
    return np.array(rows)


def generate(data: Path, old_bin: str, log=print) -> None:
    data.mkdir(parents=True, exist_ok=True)
    stamp_path = data / "STAMP.json"
    stamp = {"version": DATA_VERSION, "old_bin_sha256": _sha256(Path(old_bin))}
    if stamp_path.exists():
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                return
        except ValueError:
            pass
    log(f"generating input data into {data}")
    for p in data.iterdir():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()

    for name, args in SYNTH.items():
        subprocess.run([old_bin, "synth", "--out", str(data / f"{name}.h5"), *args], check=True,
                       stdout=subprocess.DEVNULL)

    rng = np.random.default_rng(20240601)

    # Probability dumps from synth logits (float64 and float32 probabilities).
    z10v, y10v = _read_split(data / "s10.h5", "val")
    z10t, y10t = _read_split(data / "s10.h5", "test")
    _write(data / "p10.h5", {"val": {"probs": _softmax(z10v), "labels": y10v},
                             "test": {"probs": _softmax(z10t), "labels": y10t}}, num_classes=10)
    z3v, y3v = _read_split(data / "s3.h5", "val")
    z3t, y3t = _read_split(data / "s3.h5", "test")
    _write(data / "p3f32.h5", {"val": {"probs": _softmax(z3v).astype(np.float32), "labels": y3v},
                               "test": {"probs": _softmax(z3t).astype(np.float32), "labels": y3t}}, num_classes=3)
    z100v, y100v = _read_split(data / "s100.h5", "val")
    z100t, y100t = _read_split(data / "s100.h5", "test")
    _write(data / "p100.h5", {"val": {"probs": _softmax(z100v[:1000]), "labels": y100v[:1000]},
                              "test": {"probs": _softmax(z100t), "labels": y100t}}, num_classes=100)

    # Exact ties: small-integer logits (tied top logits, many identical confidences).
    def ties(n):
        z = rng.integers(0, 3, size=(n, 5)).astype(np.float32)
        z[: n // 4] = z[0]  # a block of identical rows
        y = rng.integers(0, 5, size=n).astype(np.int32)
        return z, y
    tv, tvy = ties(400)
    tt, tty = ties(400)
    _write(data / "ties.h5", {"val": {"logits": tv, "labels": tvy}, "test": {"logits": tt, "labels": tty}},
           num_classes=5)

    # Confidences exactly on the edges of 10 bins (0.6/0.4 rows, ...), K = 2 and K = 3.
    v10 = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    def edges2(n):
        p = _edge_rows(rng, n, 2, v10)
        y = rng.integers(0, 2, size=n).astype(np.int32)
        return p, y
    a, ay = edges2(600)
    b, by = edges2(600)
    _write(data / "edges.h5", {"val": {"probs": a, "labels": ay}, "test": {"probs": b, "labels": by}},
           num_classes=2)
    # the same edges without the 1.0 / 0.0 rows (finite logits: every fit applies)
    v10 = [0.5, 0.6, 0.7, 0.8, 0.9]
    a, ay = edges2(500)
    b, by = edges2(500)
    _write(data / "edges_nz.h5", {"val": {"probs": a, "labels": ay}, "test": {"probs": b, "labels": by}},
           num_classes=2)
    base3 = np.array([[0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0],
                      [0.4, 0.3, 0.3], [0.9, 0.1, 0.0], [1.0, 0.0, 0.0], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8]])
    def edges3(n):
        idx = rng.integers(0, len(base3), size=n)
        p = base3[idx][:, rng.permutation(3)]
        y = rng.integers(0, 3, size=n).astype(np.int32)
        return p, y
    a, ay = edges3(500)
    b, by = edges3(500)
    _write(data / "edges3.h5", {"val": {"probs": a, "labels": ay}, "test": {"probs": b, "labels": by}},
           num_classes=3)
    v15 = [k / 15 for k in range(8, 16)]
    def edges15(n):
        c = np.array([v15[i % len(v15)] for i in range(n)])
        p = np.stack([c, 1.0 - c], axis=1)
        flip = rng.integers(0, 2, size=n).astype(bool)
        p[flip] = p[flip][:, ::-1]
        y = rng.integers(0, 2, size=n).astype(np.int32)
        return p, y
    a, ay = edges15(480)
    b, by = edges15(480)
    _write(data / "edges15.h5", {"val": {"probs": a, "labels": ay}, "test": {"probs": b, "labels": by}},
           num_classes=2)

    # One-hot probability rows mixed with ordinary rows (K = 4); some one-hot rows are wrong.
    def onehot(n, wrong=True):
        z = 2.0 * rng.normal(size=(n, 4))
        p = _softmax(z)
        y = rng.integers(0, 4, size=n).astype(np.int32)
        hot = rng.random(n) < 0.3
        for i in np.flatnonzero(hot):
            p[i] = 0.0
            p[i, y[i] if (not wrong or rng.random() < 0.8) else (y[i] + 1) % 4] = 1.0
        return p, y
    a, ay = onehot(400)
    b, by = onehot(400)
    _write(data / "onehot.h5", {"val": {"probs": a, "labels": ay}, "test": {"probs": b, "labels": by}},
           num_classes=4)
    a, ay = onehot(300, wrong=False)
    b, by = onehot(300, wrong=False)
    _write(data / "onehot_ok.h5", {"val": {"probs": a, "labels": ay}, "test": {"probs": b, "labels": by}},
           num_classes=4)

    # Value and label dtype variants, and a /train split.
    _write(data / "f16.h5", {"val": {"logits": z10v[:500].astype(np.float16), "labels": y10v[:500].astype(np.uint8)},
                             "test": {"logits": z10t[:500].astype(np.float16), "labels": y10t[:500].astype(np.uint8)}},
           num_classes=10)
    _write(data / "f64col.h5", {"val": {"logits": z10v[:700].astype(np.float64) * 1.1,
                                        "labels": y10v[:700].astype(np.int64)[:, None]},
                                "test": {"logits": z10t[:700].astype(np.float64) * 1.1,
                                         "labels": y10t[:700].astype(np.int64)[:, None]}}, num_classes=10)
    _write(data / "train.h5", {"train": {"logits": z10v[500:], "labels": y10v[500:]},
                               "val": {"logits": z10v[:500], "labels": y10v[:500]},
                               "test": {"logits": z10t, "labels": y10t}}, num_classes=10)
    # K = 5 logits: class 0 always predicted right on val, class 4 absent from val (LS+ priors).
    def perfect(n, absent):
        z = 1.5 * rng.normal(size=(n, 5)).astype(np.float32)
        y = rng.integers(0, 4 if absent else 5, size=n).astype(np.int32)
        z[y == 0, 0] += 20.0
        return z.astype(np.float32), y
    a, ay = perfect(300, True)
    b, by = perfect(300, False)
    _write(data / "perfect.h5", {"val": {"logits": a, "labels": ay}, "test": {"logits": b, "labels": by}},
           num_classes=5)

    # Malformed dumps (N = 10, K = 3 unless said otherwise).
    def good(n=10, k=3, seed=0):
        r = np.random.default_rng(seed)
        return {"logits": (3.0 * r.normal(size=(n, k))).astype(np.float32),
                "labels": r.integers(0, k, size=n).astype(np.int32)}
    _write(data / "bad_missing_test.h5", {"val": good(seed=1)}, num_classes=3)
    d = good(seed=2); d["logits"][3, 1] = np.nan
    _write(data / "bad_nan.h5", {"val": good(seed=1), "test": d}, num_classes=3)
    d = good(seed=2); d["logits"][5, 2] = np.inf
    _write(data / "bad_inf.h5", {"val": d, "test": good(seed=3)}, num_classes=3)
    d = good(seed=2); d["labels"][7] = 12
    _write(data / "bad_label.h5", {"val": good(seed=1), "test": d}, num_classes=3)
    d = good(seed=2); d["labels"][4] = -1
    _write(data / "bad_neglabel.h5", {"val": d, "test": good(seed=3)}, num_classes=3)
    p = _softmax(good(seed=2)["logits"]); p[6] *= 0.9
    _write(data / "bad_rowsum.h5", {"val": {"probs": _softmax(good(seed=1)["logits"]), "labels": good(seed=1)["labels"]},
                                    "test": {"probs": p, "labels": good(seed=2)["labels"]}}, num_classes=3)
    p = _softmax(good(seed=2)["logits"]); p[2, 0] = -0.25; p[2, 1] += 0.25
    _write(data / "bad_negprob.h5", {"val": {"probs": p, "labels": good(seed=2)["labels"]},
                                     "test": {"probs": _softmax(good(seed=3)["logits"]), "labels": good(seed=3)["labels"]}},
           num_classes=3)
    d = good(seed=2); d["labels"] = d["labels"][:8]
    _write(data / "bad_len.h5", {"val": good(seed=1), "test": d}, num_classes=3)
    _write(data / "bad_k1.h5", {"val": good(k=1, seed=1), "test": good(k=1, seed=2)}, num_classes=1)
    _write(data / "bad_numclasses.h5", {"val": good(seed=1), "test": good(seed=2)}, num_classes=4)
    d = good(seed=2); d["labels"] = d["labels"].astype(np.float32)
    _write(data / "bad_floatlabels.h5", {"val": good(seed=1), "test": d}, num_classes=3)
    d = good(seed=2); d["logits"] = d["logits"][:, 0]
    _write(data / "bad_rank.h5", {"val": good(seed=1), "test": d}, num_classes=3)
    _write(data / "bad_nolabels.h5", {"val": good(seed=1), "test": {"logits": good(seed=2)["logits"]}},
           num_classes=3)
    (data / "bad_text.h5").write_text("this is not an HDF5 file\n")
    # A segmentation dump with a label out of range and one with a NaN logit.
    shutil.copy(data / "seg.h5", data / "bad_seg_label.h5")
    with h5py.File(data / "bad_seg_label.h5", "a") as f:
        lab = f["test/labels"]
        arr = lab[...]
        arr[1, 3, 5] = 9
        lab[...] = arr
    shutil.copy(data / "seg.h5", data / "bad_seg_nan.h5")
    with h5py.File(data / "bad_seg_nan.h5", "a") as f:
        ds = f["val/logits"]
        arr = ds[...]
        arr[0, 2, 4, 4] = np.nan
        ds[...] = arr

    # A segmentation dump with stored ROI masks (--roi stored).
    shutil.copy(data / "seg.h5", data / "seg_roi.h5")
    with h5py.File(data / "seg_roi.h5", "a") as f:
        for gname in list(f.keys()):
            g = f[gname]
            if isinstance(g, h5py.Group) and "labels" in g:
                shape = g["labels"].shape
                roi = (rng.random(shape) < 0.6).astype(np.uint8)
                roi[0, :4, :4] = 0
                g.create_dataset("roi", data=roi)

    # pts --pts-init: a network for --pts-top-k 3 --pts-layers 1 --pts-nodes 2.
    init = {"layers": [{"weight": [[0.5, -0.25, 0.125], [-0.5, 0.75, 0.25]], "bias": [0.0, 0.1]},
                       {"weight": [[0.3, -0.2]], "bias": [0.05]}]}
    (data / "pts_init.json").write_text(json.dumps(init))

    stamp_path.write_text(json.dumps(stamp))


def real_dumps(limit_names=("medmnist_adrenalmnist_resnet50", "medmnist_pneumoniamnist_resnet50",
                            "medmnist_pathmnist_resnet50", "cleanlab_cv_cifar10")):
    """A handful of the real dumps, when they exist (else none)."""
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "h5"
    out = []
    for name in limit_names:
        p = root / f"{name}.h5"
        if p.is_file() and os.access(p, os.R_OK):
            out.append(p)
    return out
