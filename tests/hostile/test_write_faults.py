# A full disk (issue 15, item 3), through the fault-injecting write layer (fault_write.c:
# writes under one folder fail with ENOSPC after a byte budget): every write names the file and
# the system's reason, exits 1 without a crash (HDF5 used to segfault at exit with the failed
# file open), and leaves no temporary file; a rerun with space succeeds.
import json
import os
import subprocess
import sys

import pytest

from conftest import failed_cleanly

BUDGETS = [0, 100, 5000, 30000]


def temporaries(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if ".tmp." in f]


def assert_enospc(proc, path):
    line = failed_cleanly(proc, code=1)
    assert str(path) in line and "No space left on device" in line, line


@pytest.fixture
def dump(calibench, tmp_path):
    path = tmp_path / "in.h5"
    proc = calibench("synth", "--out", path, "--classes", 4, "--n-val", 400, "--n-test", 400, "--seed", 2)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.mark.parametrize("budget", BUDGETS)
def test_synth_on_a_full_disk(calibench, full_disk, tmp_path, budget):
    out = tmp_path / "full"
    out.mkdir()
    args = ["synth", "--out", out / "s.h5", "--classes", 4, "--n-val", 2000, "--n-test", 2000]
    assert_enospc(calibench(*args, env=full_disk(out, budget)), out / "s.h5")
    assert os.listdir(out) == []
    assert calibench(*args).returncode == 0 and os.listdir(out) == ["s.h5"]


@pytest.mark.parametrize("budget", BUDGETS)
def test_segmentation_synth_on_a_full_disk(calibench, full_disk, tmp_path, budget):
    out = tmp_path / "full"
    out.mkdir()
    assert_enospc(calibench("synth", "--segmentation", "--out", out / "seg.h5", env=full_disk(out, budget)),
                  out / "seg.h5")
    assert os.listdir(out) == []


@pytest.mark.parametrize("budget", BUDGETS)
def test_fit_save_on_a_full_disk(calibench, full_disk, tmp_path, dump, budget):
    out = tmp_path / "full"
    out.mkdir()
    proc = calibench("fit", dump, "--method", "ts", "--save", out / "cal.h5", env=full_disk(out, budget))
    assert_enospc(proc, out / "cal.h5")
    assert os.listdir(out) == [] and proc.stdout == ""


@pytest.mark.parametrize("budget", [0, 50])
def test_csv_outputs_on_a_full_disk(calibench, full_disk, tmp_path, dump, budget):
    out = tmp_path / "full"
    out.mkdir()
    proc = calibench("lsplus-priors", dump, "--out", out / "priors.csv", env=full_disk(out, budget))
    assert_enospc(proc, out / "priors.csv")
    proc = calibench("lsplus-priors", dump, "--out", tmp_path / "priors.csv", "--matrix", out / "matrix.csv",
                     env=full_disk(out, budget))
    assert_enospc(proc, out / "matrix.csv")
    assert os.listdir(out) == []


SPEC = """
name = "full disk"
[[datasets]]
synth = { classes = 3, n_val = 300, n_test = 300, name = "s1" }
[[methods]]
method = "uncalibrated"
[[methods]]
method = "ts"
"""


@pytest.mark.parametrize("stage,budget", [("data", 0), ("data", 4000), ("cells", 0), ("cells", 3000),
                                          ("results", 0), ("table", 0)])
def test_sweep_on_a_full_disk_then_resumed(calibench, full_disk, tmp_path, stage, budget):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "cells").mkdir()
    proc = calibench("sweep", spec, "--out", out, "--no-plots", env=full_disk(out / stage, budget))
    line = failed_cleanly(proc, code=1)
    assert f"{out.name}/{stage}" in line and "No space left on device" in line, line
    assert temporaries(out) == []
    proc = calibench("sweep", spec, "--out", out, "--no-plots")
    assert proc.returncode == 0, proc.stderr
    assert temporaries(out) == []
    assert len(os.listdir(out / "cells")) == 2 and (out / "table.md").exists()


def test_python_write_dump_raises_oserror(full_disk, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    code = ("import numpy as np, calibench, sys\n"
            "z = np.zeros((50, 3), np.float32); y = np.zeros(50, np.int32)\n"
            "try:\n"
            f"    calibench.write_dump({str(out / 'd.h5')!r}, {{'val': (z, y), 'test': (z, y)}})\n"
            "except OSError as e:\n"
            "    print(e.errno, e.strerror); sys.exit(0)\n"
            "sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_disk(out, 0))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    errno_text, message = proc.stdout.split(" ", 1)
    assert int(errno_text) == 28 and "d.h5" in message and "No space left on device" in message
    assert os.listdir(out) == []
