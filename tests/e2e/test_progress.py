"""Progress lines with an ETA on stderr (common/progress.hpp): what they say, where they go and
when they are silent; not their timing. CALIBENCH_PROGRESS_INTERVAL=0 makes every step print
(the default is a line at most every 5 s, the first after 1 s)."""

import json
import os
import re
import subprocess

import pytest

from conftest import REPO  # noqa: F401

LINE = re.compile(r"^progress: (.+)$")


@pytest.fixture(scope="module")
def dump(tmp_path_factory, calibench):
    path = tmp_path_factory.mktemp("progress") / "d.h5"
    r = calibench("synth", "--out", path, "--classes", 12, "--n-val", 3000, "--n-test", 500, "--seed", 4)
    assert r.returncode == 0, r.stderr
    return path


def run(*args, interval="0"):
    from paths import calibench_bin

    env = dict(os.environ, CALIBENCH_PROGRESS_INTERVAL=interval)
    return subprocess.run([calibench_bin(), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def progress_lines(stderr):
    return [m.group(1) for m in map(LINE.match, stderr.splitlines()) if m]


def test_fit_cts_greedy_reports_class_steps_with_an_eta(dump):
    r = run("fit", dump, "--method", "cts_greedy", "--progress", "--format", "json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)  # stdout stays clean JSON
    lines = progress_lines(r.stderr)
    assert len(lines) >= 3, r.stderr
    assert all(line.startswith("cts_greedy: ") for line in lines), lines
    # an upper bound: 5 cycles x 12 classes, the search may stop before
    assert any(re.search(r"\d+/60 class steps, cycle \d of at most 5, .* ETA at most \d+ s", x) for x in lines), lines
    assert re.search(r"done in \d+\.\d s$", lines[-1]), lines[-1]
    counts = [int(re.match(r"cts_greedy: (\d+)/", x).group(1)) for x in lines]
    assert counts == sorted(counts)


def test_quiet_and_non_terminal_defaults_print_nothing(dump):
    for extra in ([], ["--quiet"]):
        r = run("fit", dump, "--method", "cts_greedy", "--format", "json", *extra)
        assert r.returncode == 0, r.stderr
        assert progress_lines(r.stderr) == [] and "\r" not in r.stderr, r.stderr


def test_progress_and_quiet_exclude_each_other(dump):
    r = run("fit", dump, "--method", "ts", "--progress", "--quiet")
    assert r.returncode == 2 and "excludes" in r.stderr, r.stderr


def test_cross_validation_and_lbfgs_nest(dump):
    r = run("fit", dump, "--method", "dir_l2", "--grid", "0.001,0.1", "--iterations", "30", "--progress")
    assert r.returncode == 0, r.stderr
    lines = progress_lines(r.stderr)
    assert any(re.match(r"dir_l2 cross-validation: \d+/10 folds, penalty [0-9.e-]+, [^>]* > L-BFGS: \d+/30 iterations", x)
               for x in lines), lines


def test_sweep_reports_cells_and_inner_fits(tmp_path, dump):
    spec = tmp_path / "s.toml"
    spec.write_text(f'[[datasets]]\npath = "{dump}"\n\n[[methods]]\nmethod = "ts"\n\n'
                    '[[methods]]\nmethod = "cts_greedy"\n')
    r = run("sweep", spec, "--out", tmp_path / "out", "--progress", "--no-plots", "--no-report")
    assert r.returncode == 0, r.stderr
    lines = progress_lines(r.stderr)
    assert any(x.startswith("sweep: 1/2 cells") for x in lines), lines
    assert any(x.startswith("sweep: 1/2 cells") and " > cts_greedy: " in x for x in lines), lines
    assert "done in" in lines[-1] and lines[-1].startswith("sweep: 2/2 cells"), lines[-1]
    # a second run finds every cell done: the count still reaches the end
    r = run("sweep", spec, "--out", tmp_path / "out", "--progress", "--no-plots", "--no-report")
    assert progress_lines(r.stderr)[-1].startswith("sweep: 2/2 cells"), r.stderr
    # a resumed sweep: the cells found done give no rate, so no ETA is extrapolated from them
    spec.write_text(spec.read_text() + '\n[[methods]]\nlabel = "CTS-nudge"\nmethod = "cts_greedy"\ncts_search = "nudge"\n')
    r = run("sweep", spec, "--out", tmp_path / "out", "--progress", "--no-plots", "--no-report")
    lines = progress_lines(r.stderr)
    first = next(x for x in lines if x.startswith("sweep: 2/3 cells"))
    assert "ETA" not in first.split(" > ")[0], lines
    # --verbose: one line per cell, no progress lines (inner fits included)
    r = run("sweep", spec, "--out", tmp_path / "out2", "--progress", "--verbose", "--no-plots", "--no-report")
    assert r.returncode == 0 and progress_lines(r.stderr) == [] and r.stderr.count("] ") >= 3, r.stderr


def test_sweep_candidates_reports_candidates(dump):
    r = run("sweep-candidates", dump, "--grid", "0.5:5:0.01", "--progress")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
    lines = progress_lines(r.stderr)
    assert lines and all(re.match(r"sweep-candidates: \d+/451 candidates", x) for x in lines), lines
    assert lines[-1].startswith("sweep-candidates: 451/451 candidates, done in"), lines[-1]


def test_seg_eval_reports_images(tmp_path, calibench):
    seg = tmp_path / "seg.h5"
    r = calibench("synth", "--segmentation", "--out", seg)
    assert r.returncode == 0, r.stderr
    r = run("seg-eval", seg, "--progress", "--format", "json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
    lines = progress_lines(r.stderr)
    assert lines and all(re.match(r"seg-eval: \d+/\d+ images, group \S+", x) for x in lines), lines
    assert "done in" in lines[-1]
