"""The committed sweep specs (experiments/**/*.toml) load, and the paper specs render.

Every spec under experiments/ must pass the spec checks (`calibench sweep SPEC --list` runs
them all without running a cell): a check added later must not leave a committed spec that no
longer runs (the paper specs' synthetic names broke that way once, caught by nobody).
"""

import json
import pathlib
import re

import pytest

from conftest import REPO

SPECS = sorted(p for p in (REPO / "experiments").rglob("*.toml") if "published" not in p.parts)


def test_specs_found():
    assert len(SPECS) >= 7, SPECS


@pytest.mark.parametrize("spec", SPECS, ids=[str(p.relative_to(REPO)) for p in SPECS])
def test_committed_spec_loads(calibench, spec, tmp_path):
    r = calibench("sweep", spec, "--out", tmp_path / "out", "--list", timeout=300)
    assert r.returncode == 0, r.stderr
    if not r.stdout.strip():  # no cells: only when every dataset is an optional glob that matched nothing
        import tomllib

        datasets = tomllib.loads(spec.read_text()).get("datasets", [])
        assert datasets and all(d.get("optional") for d in datasets), "a spec with no cells"
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


# ------------------------------------------------------------------ published cells beside ours

SIDE = '''paper = "A test paper"
source = "nowhere.txt"

[[tables]]
table = "Table 9"
caption = "ECE in %"
metric = "ece"
unit = "%"
source_lines = "1-2"

[[tables.cells]]
row = "Synth / net"
column = "Uncal."
value = {uncal}
line = 1

[[tables.cells]]
row = "Synth / net"
column = "TS"
value = {ts_off}

[[tables.cells]]
row = "Synth / net"
column = "Acc"
metric = "accuracy"
value = {acc}

[[tables.cells]]
row = "Synth / net"
column = "Other method"
value = 1.0

[[tables.cells]]
row = "Elsewhere / net"
column = "TS"
value = 2.0

[[tables.cells]]
row = "Absent / net"
column = "TS"
value = 2.0

[[tables.cells]]
row = "Synth / net"
column = "Acc-diff"
metric = "accuracy_drop"
value = 0.1
'''

SPEC = '''name = "published test"
bins = 10

[[datasets]]
synth = {{ name = "synth-a", classes = 5, n_val = 800, n_test = 800, seed = 3, temperature = 2.0 }}

[[methods]]
label = "Uncalibrated"
method = "uncalibrated"

[[methods]]
label = "TS"
method = "ts"

[[published]]
file = "side.toml"
table = "Table 9"
tolerance = 0.05
rows = {{ "Synth / net" = "synth-a", "Absent / net" = "not-in-this-run" }}
columns = {{ "Uncal." = "Uncalibrated", "Acc" = "Uncalibrated" }}
reasons = {{ "TS" = "a {reason} departure" }}
'''


def ours(calibench, tmp_path):
    """The test ECE % and accuracy % of the two methods, from a run without published cells."""
    spec = tmp_path / "plain.toml"
    spec.write_text(SPEC.split("[[published]]")[0].format())
    out = tmp_path / "plain"
    r = calibench("sweep", spec, "--out", out, "--no-plots", "--no-report")
    assert r.returncode == 0, r.stderr
    cells = {c["label"]: c for c in json.loads((out / "results.json").read_text())}
    return {k: (100 * c["test"]["ece"], 100 * c["test"]["accuracy"]) for k, c in cells.items()}


def test_published_cells_beside_ours(calibench, tmp_path):
    v = ours(calibench, tmp_path)
    uncal = round(v["Uncalibrated"][0], 2)
    (tmp_path / "side.toml").write_text(SIDE.format(uncal=uncal, ts_off=round(v["TS"][0] + 1.0, 2),
                                                    acc=round(v["Uncalibrated"][1], 1)))
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(reason="known | documented"))
    out = tmp_path / "out"
    r = calibench("sweep", spec, "--out", out, "--no-plots", "--no-report")
    assert r.returncode == 0, r.stderr
    md = (out / "table.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| synth-a |"))
    assert f"<br>pub. {uncal:.2f} (Δ " in row
    assert "<br>pub. " in row.split("|")[3]  # the TS cell
    assert "## Published cells: Table 9, A test paper" in md
    assert "**Reproduced: 2 of 3 compared cells.** 1 mapped cells have no result in this run." in md
    assert "3 published cells have no counterpart here (rows without a dump: Elsewhere / net) " \
           "(columns without a method: Acc-diff; Other method)." in md
    assert "| Synth / net | TS | ece |" in md and "**no**: a known \\| documented departure |" in md
    assert "| Synth / net | Acc | accuracy |" in md
    acc_line = next(line for line in md.splitlines() if line.startswith("| Synth / net | Acc |"))
    assert acc_line.endswith("| yes |"), acc_line
    assert "| Absent / net | TS | ece | 2.00 | - | - | no result in this run (not-in-this-run / TS) |" in md
    tex = (out / "table.tex").read_text()
    assert f"\\textit{{{uncal:.2f}}}" in tex


def test_published_tolerance_uses_the_printed_precision(calibench, tmp_path):
    v = ours(calibench, tmp_path)
    ece = v["Uncalibrated"][0]
    # A published value 0.05 away from ours rounded to 2 decimals: reproduced at tolerance 0.05,
    # not at 0.04.
    (tmp_path / "side.toml").write_text(SIDE.format(uncal=round(round(ece, 2) + 0.05, 2), ts_off=50.0, acc=1.0))
    for tolerance, want in (("0.05", "| yes |"), ("0.04", "| **no** (no reason recorded) |")):
        spec = tmp_path / f"spec{tolerance}.toml"
        spec.write_text(SPEC.format(reason="x").replace("tolerance = 0.05", f"tolerance = {tolerance}")
                        .replace('reasons = { "TS" = "a x departure" }\n', ""))
        out = tmp_path / f"out{tolerance}"
        r = calibench("sweep", spec, "--out", out, "--no-plots", "--no-report")
        assert r.returncode == 0, r.stderr
        line = next(x for x in (out / "table.md").read_text().splitlines() if x.startswith("| Synth / net | Uncal. |"))
        assert line.endswith(want), (tolerance, line)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('"Acc" = "Uncalibrated"', '"Acc" = "Nope"'), "columns.\"Acc\" = 'Nope': no method has that label"),
    (lambda s: s.replace('file = "side.toml"', 'file = "missing.toml"'), "missing.toml: no such file"),
    (lambda s: s.replace('table = "Table 9"', 'table = "Table 8"'), "no [[tables]] entry with table = 'Table 8'"),
    (lambda s: s.replace("tolerance = 0.05", "tolerance = -1"), "published[0].tolerance: must be at least 0"),
    (lambda s: s.replace("tolerance = 0.05", "tolerance = 0.05\nfoo = 1"), "published[0]: unknown key 'foo'"),
    (lambda s: s.replace('"Acc" = "Uncalibrated"', '"Acc-diff" = "TS"'), "metric 'accuracy_drop' is not a metric"),
    (lambda s: s.replace('"Synth / net" = "synth-a"', '"Synth / nett" = "synth-a"'),
     'rows."Synth / nett": no cell of Table 9'),
    (lambda s: s.replace('"Uncal." = "Uncalibrated"', '"Uncal" = "Uncalibrated"'), 'columns."Uncal": no cell of Table 9'),
    (lambda s: s.replace('reasons = { "TS"', 'reasons = { "T S"'), "reasons.\"T S\": 'T S' is no method label"),
])
def test_published_spec_errors(calibench, tmp_path, edit, message):
    (tmp_path / "side.toml").write_text(SIDE.format(uncal=1.0, ts_off=1.0, acc=1.0))
    spec = tmp_path / "spec.toml"
    spec.write_text(edit(SPEC.format(reason="x")))
    r = calibench("sweep", spec, "--out", tmp_path / "out", "--list")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('value = "x"', 'value = "x"'), "tables[0].cells[4].value: expected a finite number"),
    (lambda s: s.replace("line = 1\n", 'line = "one"\n', 1), "tables[0].cells[0].line: expected a line number"),
    (lambda s: s + '\n[[tables]]\ntable = "Table 9"\nmetric = "ece"\n', "tables[0] and tables[1] are both table = 'Table 9'"),
])
def test_published_side_file_checks(calibench, tmp_path, edit, message):
    side = SIDE.format(uncal=1.0, ts_off=1.0, acc=1.0).replace("value = 2.0", 'value = "x"', 1)
    if "value" not in message:
        side = SIDE.format(uncal=1.0, ts_off=1.0, acc=1.0)
    (tmp_path / "side.toml").write_text(edit(side))
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(reason="x"))
    r = calibench("sweep", spec, "--out", tmp_path / "out", "--list")
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_published_side_file_errors(calibench, tmp_path):
    (tmp_path / "side.toml").write_text(SIDE.format(uncal=1.0, ts_off=1.0, acc=1.0).replace("value = 2.0", 'value = "x"', 1))
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(reason="x"))
    r = calibench("sweep", spec, "--out", tmp_path / "out", "--list")
    assert r.returncode == 2 and "side.toml: tables[0].cells[4].value: expected a finite number" in r.stderr, r.stderr


REAL = REPO.parent / "shared" / "data" / "real" / "h5"


@pytest.mark.skipif(not (REAL / "cxr14_resnet50.h5").exists(), reason="the real ChestX-ray14 dumps are not here")
def test_weight_scaling_table1_prints_the_published_cells(calibench, tmp_path):
    out = tmp_path / "ws"
    r = calibench("sweep", REPO / "experiments/papers/ws_cws_table1.toml", "--out", out, "--no-plots", "--no-report",
                  timeout=900)
    assert r.returncode == 0, r.stderr
    md = (out / "table.md").read_text()
    assert re.search(r"\*\*Reproduced: \d+ of 24 compared cells\.\*\*", md), md
    assert md.count("<br>pub. ") == 21  # 3 ChestX-ray14 rows x 7 methods
