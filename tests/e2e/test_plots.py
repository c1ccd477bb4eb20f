# experiments/plot_sweep.py on a tiny `calibench sweep`: every expected figure written, valid PNG and
# SVG files, byte-identical SVGs on a second run, sanitised file names, plots only where their data
# exist, and the one-line exit-2 errors. Skipped when matplotlib is not installed.
import json
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("matplotlib")

from conftest import REPO

SCRIPT = REPO / "experiments" / "plot_sweep.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_ROOT = "{http://www.w3.org/2000/svg}svg"
KINDS = ("reliability", "retention", "objective", "class-temperatures")

SPEC = """
name = "plot test"
bins = 10
seeds = [0]
bootstrap = 0

[[datasets]]
synth = { name = "plots", classes = 5, n_val = 500, n_test = 500, seed = 1 }

[[methods]]
method = "uncalibrated"

[[methods]]
label = "TS-{objective}"
method = "ts"
objective = ["nll", "ece"]

[[methods]]
method = "ws"

[[methods]]
method = "cts_greedy"
iterations = 1
"""


def plot(out_dir, *args):
    return subprocess.run([sys.executable, str(SCRIPT), str(out_dir), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def written(proc):
    return [pathlib.Path(line) for line in proc.stdout.splitlines() if line.strip()]


def check_png(path):
    data = path.read_bytes()
    assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE), path


def check_svg(path):
    assert path.stat().st_size > 0, path
    assert ET.parse(path).getroot().tag == SVG_ROOT, path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, calibench):
    """(sweep folder, first plot run, {svg name: bytes} of the first run)."""
    root = tmp_path_factory.mktemp("plots")
    spec = root / "spec.toml"
    spec.write_text(SPEC)
    out = root / "out"
    ok(calibench("sweep", spec, "--out", out))
    cells = json.loads((out / "results.json").read_text())
    assert len(cells) == 5 and not any("error" in c for c in cells)
    first = ok(plot(out))
    svgs = {p.name: p.read_bytes() for p in (out / "plots").glob("*.svg")}
    return out, first, svgs


def test_every_plot_written_and_valid(sweep):
    out, first, _ = sweep
    expected = {out / "plots" / f"plots-{kind}.{fmt}" for kind in KINDS for fmt in ("png", "svg")}
    listed = written(first)
    assert len(listed) == len(set(listed))
    assert set(listed) == expected
    assert set((out / "plots").iterdir()) == expected  # no temporaries left behind
    for path in expected:
        (check_png if path.suffix == ".png" else check_svg)(path)
    assert first.stderr == ""


def test_second_run_gives_identical_svgs(sweep):
    out, _, svgs = sweep
    again = ok(plot(out, "--formats", "svg"))
    assert {p.name for p in written(again)} == set(svgs)
    for name, data in svgs.items():
        assert (out / "plots" / name).read_bytes() == data, f"{name} differs between runs"


def test_names_sanitised_and_plots_only_with_their_data(sweep, tmp_path):
    out, _, _ = sweep
    cells = json.loads((out / "results.json").read_text())
    # Only methods without an objective curve and no cts_greedy: no objective or class plots.
    kept = [dict(c, dataset="../a b/c:d*?") for c in cells if c["method"] in ("uncalibrated", "ts")
            and "objective_curve" not in c]
    assert len(kept) == 2
    failed = dict(cells[0], dataset="broken", error="boom")  # failed cells are skipped
    (tmp_path / "results.json").write_text(json.dumps(kept + [failed]))
    proc = ok(plot(tmp_path, "--formats", "svg"))
    names = sorted(p.name for p in written(proc))
    assert names == ["a_b_c_d-reliability.svg", "a_b_c_d-retention.svg"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == names
    for name in names:
        check_svg(tmp_path / "plots" / name)


def one_error_line(proc):
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("plot_sweep: error: "), proc.stderr


def test_missing_results_exits_2_with_one_line(tmp_path):
    one_error_line(plot(tmp_path))
    assert not (tmp_path / "plots").exists()


def test_invalid_results_and_bad_seed_exit_2(sweep, tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    one_error_line(plot(tmp_path))
    (tmp_path / "results.json").write_text('{"cells": []}')
    one_error_line(plot(tmp_path))
    out, _, _ = sweep
    one_error_line(plot(out, "--seed", 7))
