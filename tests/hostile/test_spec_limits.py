# Unbounded sweep-spec values (issue 15, item 7): every value has the CLI flag's bound, option
# lists and the datasets x configurations x seeds product are bounded, and all of it is checked
# before any file is written (synthetic dumps included), so a bad spec costs nothing.
import os

import pytest

from conftest import failed_cleanly

BASE = """
name = "limits"
{top}
[[datasets]]
synth = {{ {synth} }}
[[methods]]
method = "{method}"
{options}
"""


def spec(tmp_path, top="", synth="classes = 3, n_val = 100, n_test = 100", method="ts", options=""):
    path = tmp_path / "spec.toml"
    path.write_text(BASE.format(top=top, synth=synth, method=method, options=options))
    return path


def refused(calibench, tmp_path, words, **kwargs):
    out = tmp_path / "out"
    line = failed_cleanly(calibench("sweep", spec(tmp_path, **kwargs), "--out", out, "--no-plots", timeout=60))
    assert words in line, line
    assert not out.exists() or not any(files for _, _, files in os.walk(out)), "wrote files before refusing"


@pytest.mark.parametrize("top,words", [
    ("bootstrap = 1000000000000", "bootstrap = 1000000000000: must be at most 1000000"),
    ("bootstrap = 1000001", "must be at most 1000000"),
    ("bins = 10000000000", "bins = 10000000000: must be at most 1000000"),
    ("bins = 0", "bins = 0: must be at least 1"),
])
def test_top_level_bounds(calibench, tmp_path, top, words):
    refused(calibench, tmp_path, words, top=top)


@pytest.mark.parametrize("synth,words", [
    ("classes = 10000000, n_val = 10, n_test = 10", "classes = 10000000: must be at most 1048576"),
    ("classes = 3, n_val = 2199023255553, n_test = 10", "n_val = 2199023255553: must be at most 1099511627776"),
    ("segmentation = true, height = 1000000", "height = 1000000: must be at most 65536"),
    ("segmentation = true, images = 100000000", "images = 100000000: must be at most 1000000"),
])
def test_synth_bounds(calibench, tmp_path, synth, words):
    refused(calibench, tmp_path, words, synth=synth)


def test_option_lists_that_multiply_past_the_bound(calibench, tmp_path):
    grids = ", ".join(f'"0.1:{i}:0.1"' for i in range(2, 402))
    options = f'grid = [{grids}]\ncalib_bins = [{", ".join(map(str, range(1, 401)))}]'  # 400 x 400
    refused(calibench, tmp_path, "option lists make more than 100000 configurations", method="cws", options=options)


def test_cells_past_the_bound(calibench, tmp_path):
    top = "seeds = [%s]" % ",".join(map(str, range(2000)))
    options = "calib_bins = [%s]" % ",".join(map(str, range(1, 601)))
    refused(calibench, tmp_path, "make 1200000 cells, more than 1000000", top=top, method="cws", options=options)


def test_bad_method_option_writes_no_synthetic_data(calibench, tmp_path):
    refused(calibench, tmp_path, "unknown option 'nosuch'", options="nosuch = 1")
    refused(calibench, tmp_path, "--calib-bins applies to", options="calib_bins = 5")


def test_within_bounds_runs(calibench, tmp_path):
    proc = calibench("sweep", spec(tmp_path, top="bins = 1000000\nbootstrap = 2"), "--out", tmp_path / "out",
                     "--no-plots")
    assert proc.returncode == 0, proc.stderr
