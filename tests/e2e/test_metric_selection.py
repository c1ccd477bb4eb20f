"""`eval --metrics` and `calibench.evaluate(metrics=...)` (docs/metrics.md, "--metrics"): only the
selected metrics are computed and printed, each with exactly the value (and bootstrap interval) of
the full run, on random, tied, edge and probability inputs; unknown names are usage errors."""
import json
import pathlib
import sys

import h5py
import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_eval_reference import gen_dup_rows, gen_edges5, gen_probs_softmax, gen_standard  # noqa: E402

FIELDS = ["accuracy", "ece", "mce", "adaece", "sce", "ace", "nll", "brier", "auroc", "precision", "recall", "f1",
          "r_auc", "rmsce", "rmsce_debiased", "ace_unweighted", "smece", "kde_ece", "ks_error", "ece_sweep", "aurc",
          "eaurc", "brier_reliability", "brier_resolution", "brier_uncertainty"]
# Single metrics, each family's members apart and together, and mixtures across families.
SELECTIONS = [[f] for f in FIELDS] + [
    ["ece", "nll"], ["sce", "ace"], ["auroc", "sce"], ["precision", "f1"], ["brier", "accuracy", "r_auc"],
    ["kde_ece", "smece", "adaece", "ece"], ["rmsce", "mce", "ace_unweighted", "rmsce_debiased"],
    ["f1", "ece"],  # any order: printed in the metric order
    ["ks_error", "ece_sweep", "adaece"], ["eaurc", "r_auc"], ["brier_resolution", "brier", "mce"],
]
# Computed only when named (docs/metrics.md): never in the full run, tested in test_skce.py.
ON_REQUEST = ["skce", "skce_pvalue"]
DUMPS = {  # name: (generator, n, k, is_probs)
    "std": (gen_standard, 600, 10, False),
    "ties": (gen_dup_rows, 400, 7, False),
    "edges": (gen_edges5, 300, 5, True),
    "probs_k2": (gen_probs_softmax, 300, 2, True),
}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    out = {}
    for seed, (name, (gen, n, k, probs)) in enumerate(DUMPS.items()):
        x, y = gen(np.random.default_rng(4000 + seed), n, k)
        path = root / f"{name}.h5"
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "calibench-logits"
            f.attrs["version"] = 1
            f.attrs["num_classes"] = k
            for split in ("val", "test"):
                f[f"{split}/{'probs' if probs else 'logits'}"] = x.astype(np.float64)
                f[f"{split}/labels"] = y.astype(np.int32)
        out[name] = path
    return out


def eval_json(calibench, *args):
    proc = calibench("eval", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("dump", list(DUMPS))
def test_selected_metrics_equal_the_full_run(calibench, dumps, dump):
    path = dumps[dump]
    full = eval_json(calibench, path, "--bootstrap", 12, "--seed", 3)
    assert set(FIELDS) == set(full) - {"n", "k", "conventions", "bootstrap", "ci"}  # every metric is here
    for sel in SELECTIONS:
        got = eval_json(calibench, path, "--metrics", ",".join(sel), "--bootstrap", 12, "--seed", 3)
        assert set(got) == set(sel) | {"n", "k", "conventions", "bootstrap", "ci"}, (sel, sorted(got))
        for key in sel:
            assert got[key] == full[key], (dump, sel, key, got[key], full[key])  # the same bits
        assert got["ci"] == {key: full["ci"][key] for key in sel}, (dump, sel)
        assert list(got) == [k for k in full if k in got]  # the full run's key order


def test_all_and_the_default_are_the_same(calibench, dumps):
    path = dumps["std"]
    assert eval_json(calibench, path) == eval_json(calibench, path, "--metrics", "all")
    assert eval_json(calibench, path) == eval_json(calibench, path, "--metrics", ",".join(FIELDS))


def test_table_prints_only_the_selection(calibench, dumps):
    proc = calibench("eval", dumps["std"], "--metrics", "nll,ece")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split()[0] for line in proc.stdout.split("\nmetric ", 1)[1].splitlines()[1:] if line.strip()]
    assert rows == ["ece", "nll"], proc.stdout


def test_compare_conventions_does_not_depend_on_the_selection(calibench, dumps):
    path = dumps["ties"]
    full = eval_json(calibench, path, "--compare-conventions")
    for sel in ("ece", "nll", "sce,brier,adaece,ece"):
        got = eval_json(calibench, path, "--compare-conventions", "--metrics", sel)
        assert got["compare_conventions"] == full["compare_conventions"], sel


@pytest.mark.parametrize("value", ["", "ece,", "ECE", "ece,bogus", "sce_under", "all,ece", "n"])
def test_unknown_names_are_usage_errors(calibench, dumps, value):
    proc = calibench("eval", dumps["std"], "--metrics", value)
    assert proc.returncode == 2 and proc.stdout == "", (value, proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibench: error: unknown metric"), (value, proc.stderr)
    assert "metrics: accuracy, ece," in lines[0]


def test_python_selection_equals_the_cli(calibench, dumps):
    calibench_py = pytest.importorskip("calibench")
    path = dumps["std"]
    with h5py.File(path) as f:
        z, y = f["test/logits"][()], f["test/labels"][()]
    for sel in (["ece"], ["sce", "auroc"], "nll,brier", ("kde_ece",)):
        names = sel.split(",") if isinstance(sel, str) else list(sel)
        got = calibench_py.evaluate(z, y, metrics=sel)
        want = eval_json(calibench, path, "--metrics", ",".join(names))
        assert got == want, sel
    assert calibench_py.evaluate(z, y, metrics=None) == eval_json(calibench, path)
    for bad, words in (([], "an empty list selects nothing"), (["ece", 3], "expected metric names"),
                       ("ece,x", "unknown metric 'x'")):
        with pytest.raises(ValueError, match=words):
            calibench_py.evaluate(z, y, metrics=bad)
