"""The committed sweep specs (experiments/**/*.toml) load, and the paper specs render.

Every spec under experiments/ must pass the spec checks (`calibench sweep SPEC --list` runs
them all without running a cell): a check added later must not leave a committed spec that no
longer runs (the paper specs' synthetic names broke that way once, caught by nobody).
"""

import pathlib

import pytest

from conftest import REPO

SPECS = sorted(p for p in (REPO / "experiments").rglob("*.toml") if "published" not in p.parts)


def test_specs_found():
    assert len(SPECS) >= 7, SPECS


@pytest.mark.parametrize("spec", SPECS, ids=[str(p.relative_to(REPO)) for p in SPECS])
def test_committed_spec_loads(calibench, spec, tmp_path):
    r = calibench("sweep", spec, "--out", tmp_path / "out", "--list", timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "a spec with no cells"
    # --list writes nothing but may generate nothing either: no synthetic dump under --out
    assert not (tmp_path / "out" / "cells").exists()


def test_synthetic_label_is_the_row_name(calibench, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "label test"\nbins = 10\n\n[[datasets]]\n'
        'synth = { name = "ham-like", label = "HAM10000 stand-in (synthetic, K=7)", classes = 7, n_val = 300, '
        'n_test = 300, seed = 7 }\n\n[[methods]]\nmethod = "uncalibrated"\n'
    )
    out = tmp_path / "out"
    r = calibench("sweep", spec, "--out", out, "--no-plots")
    assert r.returncode == 0, r.stderr
    assert "| HAM10000 stand-in (synthetic, K=7) |" in (out / "table.md").read_text()
    files = [p.name for p in (out / "data").iterdir()]
    assert len(files) == 1 and files[0].startswith("ham-like-") and files[0].endswith(".h5"), files


def test_synthetic_label_must_be_a_table_cell(calibench, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[[datasets]]\nsynth = { name = "ok", label = "a | b", classes = 3, n_val = 50, n_test = 50 }\n'
        '\n[[methods]]\nmethod = "uncalibrated"\n'
    )
    r = calibench("sweep", spec, "--out", tmp_path / "out", "--list")
    assert r.returncode == 2
    assert "'|'" in r.stderr or "table cell" in r.stderr, r.stderr
