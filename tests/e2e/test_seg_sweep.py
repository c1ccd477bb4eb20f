# `calibench sweep` on a segmentation spec (docs/segmentation.md, "Studies with calibench sweep"):
# one cell per (dataset, method) with every group, the paper-shaped table, resuming, the cells
# equal to `seg-eval` on the same dump, and spec errors.
import json
import pathlib

import pytest

SPEC = """
name = "seg study"
task = "segmentation"
bins = 10
roi_dilation = 3
methods = ["uncalibrated", "ts", "temperature-map", "augmented-mean"]

[[datasets]]
synth = {{ segmentation = true, classes = 3, images = 3, height = 24, width = 20, seed = {seed}, augmentations = 2 }}
"""


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def write_spec(tmp_path, text):
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    return spec


def test_cells_table_and_resume(calibench, tmp_path):
    spec = write_spec(tmp_path, SPEC.format(seed=5))
    out = tmp_path / "out"
    first = ok(calibench("sweep", spec, "--out", out, "--no-plots"))
    assert "4 cells: 4 run, 0 already done, 0 failed" in first.stdout
    table = (out / "table.md").read_text()
    for title in ("| ECE % | val | test | test_bias_field | test_noise | test_shift |", "| SCE % |", "| mean Dice % |"):
        assert title in table, table
    rows = [line for line in table.splitlines() if line.startswith("| ts |")]
    assert len(rows) == 3 and all(len(r.split("|")) == 8 for r in rows), rows
    assert (out / "table.tex").read_text().count("\\begin{tabular}") == 1

    # Each cell equals seg-eval on the generated dump with the same options.
    dump = next((out / "data").glob("*.h5"))
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 4
    for cell in results:
        d = json.loads(ok(calibench("seg-eval", dump, "--bins", 10, "--roi-dilation", 3, "--methods", cell["method"],
                                    "--format", "json")).stdout)
        for r in d["results"]:
            got = cell["groups"][r["group"]]
            for key in ("roi_pixels", "pixels", "accuracy", "ece", "mce", "sce", "nll", "brier", "mean_dice"):
                assert got[key] == pytest.approx(r[key], rel=1e-12, abs=1e-15), (cell["method"], r["group"], key)
        if cell["method"] == "ts":
            assert cell["params"]["temperature"] == pytest.approx(d["ts"]["temperature"], rel=1e-12)
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 4 * 5

    again = ok(calibench("sweep", spec, "--out", out, "--no-plots"))
    assert "4 cells: 0 run, 4 already done, 0 failed" in again.stdout
    assert (out / "table.md").read_text() == table


@pytest.mark.parametrize("extra, needle", [
    ("seeds = [0, 1]\n", "seeds"),
    ("bootstrap = 100\n", "bootstrap"),
    ('roi = "circle"\n', "roi"),
])
def test_spec_errors(calibench, tmp_path, extra, needle):
    text = SPEC.format(seed=1).replace('task = "segmentation"\n', 'task = "segmentation"\n' + extra)
    proc = calibench("sweep", write_spec(tmp_path, text), "--out", tmp_path / "out", "--no-plots")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("calibench: error: ") and needle in proc.stderr


def test_unknown_method_is_an_error(calibench, tmp_path):
    text = SPEC.format(seed=1).replace('"augmented-mean"]', '"lts"]')
    proc = calibench("sweep", write_spec(tmp_path, text), "--out", tmp_path / "out", "--no-plots")
    assert proc.returncode == 2 and "methods" in proc.stderr, proc.stderr
