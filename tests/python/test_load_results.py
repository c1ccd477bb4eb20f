# calibench.load_results: a sweep's results.csv as a pandas DataFrame, value for value what the
# CSV holds (metrics as float64, NaN where the CSV is empty, params/options parsed from JSON).
import csv
import json
import math
import subprocess

import h5py
import numpy as np
import pytest

import calibench

pd = pytest.importorskip("pandas")

SPEC = """
name = "load_results test"
bins = 10
seeds = [0, 2]

[[datasets]]
synth = {{ name = "a", classes = 4, n_val = 600, n_test = 700, seed = 3 }}

[[datasets]]
path = "{bad}"

[[methods]]
method = "uncalibrated"

[[methods]]
method = "ts"
objective = "ece"
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    bad = root / "bad.h5"  # its test logits are NaN: every cell of it fails, with a message
    with h5py.File(bad, "w") as f:
        f["val/logits"] = np.zeros((10, 3), dtype=np.float32)
        f["val/labels"] = np.zeros(10, dtype=np.int32)
        f["test/logits"] = np.full((10, 3), np.nan, dtype=np.float32)
        f["test/labels"] = np.zeros(10, dtype=np.int32)
    spec = root / "spec.toml"
    spec.write_text(SPEC.format(bad=bad))
    out = root / "out"
    proc = subprocess.run([_bin(), "sweep", str(spec), "--out", str(out), "--no-plots"],
                          capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr  # the bad dataset's cells failed
    return out


def _bin():
    from conftest import calibench_bin
    return calibench_bin()


def test_frame_equals_the_csv(study):
    frame = calibench.load_results(study)
    with open(study / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(frame.columns) == list(rows[0].keys())
    assert len(frame) == len(rows) == 2 * 2 * 2 * 2  # datasets x methods x seeds x splits
    for column in ("ece", "nll", "brier", "accuracy", "auroc", "smece"):
        assert frame[column].dtype == np.float64
        for value, row in zip(frame[column], rows):
            if row[column] == "":
                assert math.isnan(value)
            else:
                assert value == float(row[column])
    for value, row in zip(frame["params"], rows):
        assert value == (json.loads(row["params"]) if row["params"] else None)
    assert list(frame["id"]) == [r["id"] for r in rows]  # identities stay text
    assert list(frame["error"]) == [r["error"] for r in rows]
    failed = frame[frame["dataset"] == "bad"]
    assert len(failed) == 8 and all("non-finite" in e for e in failed["error"]) and failed["ece"].isna().all()
    ts = frame[(frame["dataset"] == "a") & (frame["method"] == "ts")]
    assert all(p["temperature"] > 0 for p in ts["params"])


def test_one_split(study):
    test = calibench.load_results(study, split="test")
    assert len(test) == 8 and set(test["split"]) == {"test"}
    with pytest.raises(ValueError, match="split must be one of test, val"):
        calibench.load_results(study, split="train")


def test_missing_results_name_the_merge(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"results.csv: no such file .*--merge"):
        calibench.load_results(tmp_path)
