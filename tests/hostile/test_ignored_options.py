# Options that were silently ignored or accepted where they mean nothing (issue 15, item 8):
# each is now an error naming what is wrong.
import subprocess
import sys

import numpy as np
import pytest

from conftest import failed_cleanly

SPEC = """
name = {name}
[[datasets]]
{dataset}
[[methods]]
method = "ts"
objective = ["nll", "ece"]
{label}
"""
SYNTH = 'synth = { classes = 3, n_val = 100, n_test = 100 }'


def sweep(calibench, tmp_path, name='"s"', dataset=SYNTH, label=""):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(name=name, dataset=dataset, label=label))
    return calibench("sweep", path, "--out", tmp_path / "out", "--no-plots")


def test_path_and_synth_in_one_dataset(calibench, tmp_path):
    line = failed_cleanly(sweep(calibench, tmp_path, dataset=f'path = "x.h5"\n{SYNTH}'))
    assert "datasets[0]: has both 'path' and 'synth'" in line


@pytest.mark.parametrize("label", ["TS-{nosuch}", "TS-{objective}-{grid}", "TS-{objective"])
def test_label_placeholder_naming_no_option(calibench, tmp_path, label):
    line = failed_cleanly(sweep(calibench, tmp_path, label=f'label = "{label}"'))
    assert "names no option of this entry" in line, line


def test_label_placeholder_that_exists(calibench, tmp_path):
    proc = sweep(calibench, tmp_path, label='label = "TS-{objective}"')
    assert proc.returncode == 0, proc.stderr
    assert "TS-nll" in (tmp_path / "out" / "table.md").read_text()


@pytest.mark.parametrize("field,value,words", [
    ("label", '"a|b-{objective}"', "label 'a|b-nll' has '|'"),
    ("label", '"a\\nb-{objective}"', "has character 0x0a"),
    ("name", '"two\\nlines"', "name has character 0x0a"),
])
def test_table_breaking_text(calibench, tmp_path, field, value, words):
    kwargs = {"label": f"label = {value}"} if field == "label" else {"name": value}
    line = failed_cleanly(sweep(calibench, tmp_path, **kwargs))
    assert words in line, line


def test_dataset_name_with_a_bar(calibench, tmp_path):
    line = failed_cleanly(sweep(calibench, tmp_path, dataset=SYNTH.replace("}", ', name = "a" }') +
                                '\n[[datasets]]\npath = "d.h5"\nname = "x|y"'))
    assert "no file matches" in line or "dataset name 'x|y'" in line


def test_fit_grid_on_ts_by_nll_and_cts_search_on_ts(calibench, tmp_path):
    dump = tmp_path / "d.h5"
    assert calibench("synth", "--out", dump, "--classes", 3, "--n-val", 100, "--n-test", 100).returncode == 0
    for args, words in ((["--grid", "abc"], "--grid applies to ts --objective ece or adaece"),
                        (["--grid", "nan:10:0.1"], "--grid applies to ts"),
                        (["--cts-search", "nudge"], "--cts-search applies to cts_greedy, not ts"),
                        (["--objective", "ece", "--grid", "nan:10:0.1"], "--grid")):
        line = failed_cleanly(calibench("fit", dump, "--method", "ts", *args))
        assert words in line, line


PY = """
import numpy as np, calibench
rng = np.random.default_rng(0)
z = rng.standard_normal((300, 4)).astype(np.float32)
y = rng.integers(0, 4, 300).astype(np.int32)
def check(what, f):
    try:
        f()
    except ValueError as e:
        print(what, "ValueError", e)
    else:
        print(what, "ACCEPTED")
check("bins=15.5", lambda: calibench.evaluate(z, y, bins=15.5))
check("bins=True", lambda: calibench.evaluate(z, y, bins=True))
check("bootstrap=2.5", lambda: calibench.evaluate(z, y, bootstrap=2.5))
check("fit bins", lambda: calibench.fit("ts", z, y, bins=10.5))
check("2-D temperatures", lambda: calibench.sweep_temperatures(z, y, np.ones((2, 3))))
mask = np.zeros(z.shape, bool); mask[5, 2] = True
check("masked", lambda: calibench.evaluate(np.ma.masked_array(z, mask=mask), y))
for m in ("ts", "hist", "cts_conf", "bts", "ets", "iso", "platt", "ws"):
    c = calibench.fit(m, z, y)
    check("transform " + m, lambda: c.transform(rng.standard_normal((10, 5)).astype(np.float32)))
print("unmasked", calibench.evaluate(np.ma.masked_array(z), y)["ece"] == calibench.evaluate(z, y)["ece"])
"""


def test_python_arguments_that_meant_nothing():
    proc = subprocess.run([sys.executable, "-c", PY], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for what in ("bins=15.5", "bins=True", "bootstrap=2.5", "fit bins", "2-D temperatures", "masked"):
        assert f"{what} ValueError" in out, out
    assert "expected an integer, got 15.5" in out and "masked entry at index [5, 2]" in out
    assert "expected a 1-D sequence of candidates, got shape [2, 3]" in out
    for m in ("ts", "hist", "cts_conf", "bts", "ets", "iso", "platt", "ws"):
        assert f"transform {m} ValueError" in out and "fitted on K = 4" in out, out
    assert "unmasked True" in out
