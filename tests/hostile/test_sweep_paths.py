# Sweep specs that try to write outside --out or to merge datasets (issue 15, items 1 and 2):
# synthetic dataset names are one path component; a glob that matches a folder is refused;
# identical files and same-named files in two folders stay distinct rows and cells.
import csv
import json
import os

import pytest

from conftest import failed_cleanly

SPEC = """
name = "hostile"
{datasets}
[[methods]]
method = "ts"
"""


def write(tmp_path, datasets):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(datasets=datasets))
    return spec


def tree_files(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


@pytest.mark.parametrize("name", ["../../escaped", "../escaped", "{tmp}/escaped-abs", "a/b", ".hidden",
                                  "-dash", "", "x" * 101, "new\nline", "semi;colon", "sp ace"])
@pytest.mark.parametrize("kind", ["classes = 3, n_val = 50, n_test = 50",
                                  "segmentation = true, classes = 3, images = 2, height = 8, width = 8"])
def test_synth_name_that_is_not_one_file_name_is_refused(calibench, tmp_path, name, kind):
    work = tmp_path / "work"
    work.mkdir()
    name = name.replace("{tmp}", str(tmp_path))
    # json.dumps writes a TOML basic string (the same escapes).
    spec = write(work, f"[[datasets]]\nsynth = {{ {kind}, name = {json.dumps(name)} }}")
    before = tree_files(tmp_path)
    line = failed_cleanly(calibench("sweep", spec, "--out", work / "out", "--no-plots"))
    assert "datasets[0].synth.name" in line and "file name under OUT/data" in line
    assert tree_files(tmp_path) == before
    assert not os.path.exists(tmp_path / "escaped") and not os.path.exists(work / "escaped")


def test_safe_synth_name_stays_under_out(calibench, tmp_path):
    spec = write(tmp_path, '[[datasets]]\nsynth = { classes = 3, n_val = 200, n_test = 200, name = "cifar.v2_a+b-1" }')
    proc = calibench("sweep", spec, "--out", tmp_path / "out", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    dumps = [p for p in tree_files(tmp_path) if p.endswith(".h5") and "/data/" in p]
    assert len(dumps) == 1 and dumps[0].startswith(str(tmp_path / "out" / "data" / "cifar.v2_a+b-1-"))


def make_dump(calibench, path, seed=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = calibench("synth", "--out", path, "--classes", 3, "--n-val", 300, "--n-test", 300, "--seed", seed)
    assert proc.returncode == 0, proc.stderr


def rows(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_identical_files_are_distinct_rows_and_cells(calibench, tmp_path):
    make_dump(calibench, tmp_path / "d" / "x.h5")
    (tmp_path / "d" / "y.h5").write_bytes((tmp_path / "d" / "x.h5").read_bytes())
    spec = write(tmp_path, '[[datasets]]\npath = "d/*.h5"')
    proc = calibench("sweep", spec, "--out", tmp_path / "out", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    r = [row for row in rows(tmp_path / "out") if row["split"] == "test"]
    assert sorted(row["dataset"] for row in r) == ["x", "y"]
    assert len({row["id"] for row in r}) == 2
    assert r[0]["ece"] == r[1]["ece"]
    assert len(os.listdir(tmp_path / "out" / "cells")) == 2
    assert (tmp_path / "out" / "results.h5").exists() and (tmp_path / "out" / "table.md").exists()


def test_same_stem_in_two_folders_named_by_relative_path(calibench, tmp_path):
    make_dump(calibench, tmp_path / "a" / "model.h5", seed=1)
    make_dump(calibench, tmp_path / "b" / "model.h5", seed=2)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model.h5").write_bytes((tmp_path / "a" / "model.h5").read_bytes())
    spec = write(tmp_path, '[[datasets]]\npath = "*/model.h5"')
    proc = calibench("sweep", spec, "--out", tmp_path / "out", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    r = [row for row in rows(tmp_path / "out") if row["split"] == "test"]
    assert sorted(row["dataset"] for row in r) == ["a/model", "b/model", "c/model"]
    assert len({row["id"] for row in r}) == 3


def test_explicit_names_that_clash_are_refused(calibench, tmp_path):
    make_dump(calibench, tmp_path / "x.h5", seed=1)
    make_dump(calibench, tmp_path / "y.h5", seed=2)
    spec = write(tmp_path, '[[datasets]]\npath = "x.h5"\nname = "m"\n[[datasets]]\npath = "y.h5"\nname = "m"')
    line = failed_cleanly(calibench("sweep", spec, "--out", tmp_path / "out", "--no-plots"))
    assert "both named 'm'" in line and "x.h5" in line and "y.h5" in line


def test_glob_matching_a_folder_is_refused(calibench, tmp_path):
    make_dump(calibench, tmp_path / "d1" / "x.h5")
    (tmp_path / "d2.h5").mkdir()
    spec = write(tmp_path, '[[datasets]]\npath = "*.h5"')
    line = failed_cleanly(calibench("sweep", spec, "--out", tmp_path / "out", "--no-plots"))
    assert "d2.h5, which is not a file" in line
