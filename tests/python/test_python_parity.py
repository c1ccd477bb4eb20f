# The Python package against the CLI on the same dumps: `calibench.evaluate` against
# `calibench eval --format json`, `calibench.fit` against `calibench fit --format json` (params,
# val and test metrics, saved probabilities), the sweeps against `calibench sweep-candidates`,
# and dump writing/reading against the CLI's reader. Both run the same engine code on the same
# float64 values, so every comparison is exact (no tolerance).
import json

import h5py
import numpy as np
import pytest

import calibench
from conftest import REAL_DUMPS


def load(path, split):
    with h5py.File(path, "r") as f:
        return f[f"{split}/logits"][()], f[f"{split}/labels"][()]


def same(a, b, where=""):
    """Exact equality of JSON-like values, NaN == NaN (sweep arrays) and None == None."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for key in a:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        pass
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


EVAL_OPTIONS = [
    ({}, []),
    ({"bins": 10, "binning": "left-closed"}, ["--bins", 10, "--binning", "left-closed"]),
    ({"bins": 20, "adaptive": "interp", "brier": "top-label", "nll_clip": 1e-15},
     ["--bins", 20, "--adaptive", "interp", "--brier", "top-label", "--nll-clip", "1e-15"]),
    ({"conventions": "dirichlet", "classwise_reduction": "mean"},
     ["--conventions", "dirichlet", "--classwise-reduction", "mean"]),
    ({"bootstrap": 25, "seed": 3, "level": 0.9}, ["--bootstrap", 25, "--seed", 3, "--level", 0.9]),
    ({"reliability": True, "conventions": "torchmetrics"}, ["--reliability", "--conventions", "torchmetrics"]),
    ({"classwise": True, "classwise_reduction": "sum"}, ["--classwise", "--classwise-reduction", "sum"]),
    ({"classwise": True, "conventions": "torchmetrics"}, ["--classwise", "--conventions", "torchmetrics"]),
]


@pytest.mark.parametrize("dump", ["k10", "k3", "k100"])
@pytest.mark.parametrize("options,flags", EVAL_OPTIONS)
def test_evaluate_matches_cli_eval(synth_dumps, cli, dump, options, flags):
    path = synth_dumps[dump]
    logits, labels = load(path, "test")
    same(calibench.evaluate(logits, labels, **options), cli("eval", path, "--format", "json", *flags), dump)


@pytest.mark.parametrize("preset", calibench.presets)
def test_every_preset_matches_cli(synth_dumps, cli, preset):
    path = synth_dumps["k10"]
    logits, labels = load(path, "test")
    got = calibench.evaluate(logits, labels, conventions=preset)
    same(got, cli("eval", path, "--format", "json", "--conventions", preset), preset)
    assert got["conventions"]["preset"] == preset


def test_read_dump_is_what_the_cli_evaluates(synth_dumps, cli):
    path = synth_dumps["k10"]
    values, labels, is_probs = calibench.read_dump(path, "val")
    assert values.dtype == np.float64 and labels.dtype == np.int32 and not is_probs
    raw, raw_labels = load(path, "val")
    np.testing.assert_array_equal(values, raw.astype(np.float64))
    np.testing.assert_array_equal(labels, raw_labels)
    same(calibench.evaluate(values, labels), cli("eval", path, "--split", "val", "--format", "json"))


FIT_CASES = [
    ("ts", {}, []),
    ("ts", {"objective": "ece", "grid": "0.5:3:0.01"}, ["--objective", "ece", "--grid", "0.5:3:0.01"]),
    ("ts", {"objective": "adaece", "grid": [0.8, 1.0, 1.25, 1.5, 2.0]},
     ["--objective", "adaece", "--grid", "0.8,1.0,1.25,1.5,2.0"]),
    ("ws", {}, []),
    ("cws", {"calib_bins": 8}, ["--calib-bins", 8]),
    ("cws", {"calib_bins": "auto"}, ["--calib-bins", "auto"]),
    ("cts_conf", {}, []),
    ("bts", {"calib_bins": 5}, ["--calib-bins", 5]),
    ("cts_greedy", {"iterations": 2}, ["--iterations", 2]),
    ("cts_greedy", {"cts_search": "nudge", "accuracy_constraint": False, "iterations": 3},
     ["--cts-search", "nudge", "--accuracy-constraint", "off", "--iterations", 3]),
    ("ts", {"bins": 10, "conventions": "netcal", "objective": "ece", "grid": "0.5:3:0.05"},
     ["--bins", 10, "--conventions", "netcal", "--objective", "ece", "--grid", "0.5:3:0.05"]),
    ("ms_odir", {"odir_lambda": 0.5, "odir_mu": 0.25, "iterations": 50},
     ["--odir-lambda", 0.5, "--odir-mu", 0.25, "--iterations", 50]),
    ("ts+sctl", {"train": {"sctl_norm": "mm", "lr": 0.05}, "iterations": 80},
     ["--sctl-norm", "mm", "--lr", 0.05, "--iterations", 80]),
    ("cts_nll+fl", {"train": {"focal_gradient": "detached"}}, ["--focal-gradient", "detached"]),
    ("pts_sctl", {"train": {"seed": 3, "weight_decay": 0.01}, "iterations": 40},
     ["--seed", 3, "--weight-decay", 0.01, "--iterations", 40]),
    ("beta", {}, []),
    ("beta", {"multiclass": "one-vs-rest"}, ["--multiclass", "one-vs-rest"]),
    ("platt", {"platt_targets": "smoothed"}, ["--platt-targets", "smoothed"]),
    ("iso", {"multiclass": "one-vs-rest"}, ["--multiclass", "one-vs-rest"]),
    ("hist", {"multiclass": "one-vs-rest", "calib_bins": 10}, ["--multiclass", "one-vs-rest", "--calib-bins", 10]),
    ("irova", {}, []),
    ("irm", {}, []),
    ("irova_ts", {}, []),
    ("scaling_binning", {"calib_bins": 10}, ["--calib-bins", 10]),
]


def test_fit_rejects_unknown_train_options_and_half_odir(synth_dumps):
    val_logits, val_labels = load(synth_dumps["k10"], "val")
    with pytest.raises(ValueError, match="unknown option 'lr_rate'"):
        calibench.fit("ts+ce", val_logits, val_labels, train={"lr_rate": 0.1})
    with pytest.raises(ValueError, match="go together"):
        calibench.fit("ms_odir", val_logits, val_labels, odir_lambda=1.0)
    # The request parser's one wording for every front end (host/calibrators/request.cpp).
    with pytest.raises(ValueError, match=r"--lr must be a number > 0 \(got 'fast'\)"):
        calibench.fit("ts+ce", val_logits, val_labels, train={"lr": "fast"})


@pytest.mark.parametrize("method,options,flags", FIT_CASES, ids=lambda x: str(x) if isinstance(x, str) else None)
def test_fit_matches_cli_fit(synth_dumps, cli, method, options, flags):
    path = synth_dumps["k10"]
    val_logits, val_labels = load(path, "val")
    test_logits, test_labels = load(path, "test")
    cal = calibench.fit(method, val_logits, val_labels, backend="cpu", **options)
    ref = cli("fit", path, "--method", method, "--backend", "cpu", "--format", "json", *flags)
    assert cal.method == ref["method"] == method
    same(cal.params, ref["params"], "params")
    eval_options = {k: options[k] for k in ("bins", "conventions") if k in options}
    for split, (x, y) in (("val", (val_logits, val_labels)), ("test", (test_logits, test_labels))):
        got = cal.evaluate(x, y, **eval_options)
        assert ref[split]["conventions"] == ref["options"]["conventions"]
        same(got, ref[split], split)


def test_transform_matches_saved_probabilities(synth_dumps, cli, tmp_path):
    path = synth_dumps["k10"]
    saved = tmp_path / "calibrated.h5"
    for method in ("ts", "cws", "cts_greedy"):
        cli("fit", path, "--method", method, "--backend", "cpu", "--format", "json", "--save", saved)
        cal = calibench.fit(method, *load(path, "val"), backend="cpu")
        with h5py.File(saved, "r") as f:
            assert json.loads(f.attrs["calibrator"]) == json.loads(cal.to_json())
            for split in ("val", "test"):
                probs = cal.transform(load(path, split)[0])
                assert probs.dtype == np.float64 and probs.flags.c_contiguous
                np.testing.assert_array_equal(probs, f[f"{split}/probs"][()])
        # The parameters round-trip through JSON to the same transform.
        again = calibench.Calibrator.from_json(cal.to_json())
        np.testing.assert_array_equal(again.transform(load(path, "test")[0]), cal.transform(load(path, "test")[0]))


def sweep_arrays(ref):
    return {k: np.array([np.nan if v is None else v for v in ref[k]]) for k in
            ("candidates", "ece", "mce", "adaece", "nll", "brier", "accuracy")}


@pytest.mark.parametrize("dump", ["k10", "k100"])
def test_sweeps_match_cli_sweep_candidates(synth_dumps, cli, dump):
    path = synth_dumps[dump]
    logits, labels = load(path, "val")
    cases = [
        ("temperature", "0.5:3:0.25", lambda: calibench.sweep_temperatures(logits, labels, temperatures="0.5:3:0.25")),
        ("inverse-temperature", "0.2:2:0.01",
         lambda: calibench.sweep_temperatures(logits, labels, inverse_temperatures="0.2:2:0.01")),
        ("weight", "0:1:0.05", lambda: calibench.sweep_weights(logits, labels, "0:1:0.05")),
    ]
    for family, grid, run in cases:
        ref = sweep_arrays(cli("sweep-candidates", path, "--family", family, "--grid", grid, "--format", "json"))
        got = run()
        for key, want in ref.items():
            np.testing.assert_array_equal(got[key], want, err_msg=f"{family} {key}")


def test_sweep_without_adaece_and_per_bin(synth_dumps, cli):
    path = synth_dumps["k10"]
    logits, labels = load(path, "val")
    ref = cli("sweep-candidates", path, "--family", "temperature", "--grid", "1,1.5,2", "--no-adaece", "--per-bin",
              "--bins", 12, "--binning", "left-closed", "--format", "json")
    got = calibench.sweep_temperatures(logits, labels, temperatures=[1, 1.5, 2], adaece=False, per_bin=True, bins=12,
                                       binning="left-closed")
    assert np.isnan(got["adaece"]).all()
    np.testing.assert_array_equal(got["ece"], ref["ece"])
    np.testing.assert_array_equal(got["bin_count"], np.array(ref["bin_count"]).reshape(3, 12))
    np.testing.assert_array_equal(got["bin_sum_confidence"], np.array(ref["bin_sum_confidence"]).reshape(3, 12))
    np.testing.assert_array_equal(got["bin_sum_correct"], np.array(ref["bin_sum_correct"]).reshape(3, 12))


def test_top_label_metrics_match_evaluate(synth_dumps):
    logits, labels = load(synth_dumps["k10"], "test")  # float32: the sweep reads the same values
    full = calibench.evaluate(logits, labels)
    top = calibench.top_label_metrics(logits, labels, adaece=True)
    for key in ("ece", "mce", "adaece", "nll", "brier", "accuracy"):
        # Different summation orders of the same float64 terms.
        assert top[key] == pytest.approx(full[key], abs=1e-12), key


@pytest.mark.parametrize("probs", [False, True])
def test_write_dump_reads_back_in_the_cli(synth_dumps, cli, tmp_path, probs):
    src = synth_dumps["k3"]
    splits = {s: load(src, s) for s in ("val", "test")}
    if probs:
        splits = {s: (calibench.fit("ts", *splits["val"]).transform(x), y) for s, (x, y) in splits.items()}
    out = tmp_path / "written.h5"
    calibench.write_dump(out, splits, probs=probs, attributes={"model": "unit test", "epochs": 3})
    info = calibench.dump_info(out)
    assert info["attributes"]["model"] == "unit test" and info["attributes"]["format"] == "calibench-logits"
    assert [s["is_probs"] for s in info["splits"]] == [probs, probs]
    for split, (x, y) in splits.items():
        values, labels, is_probs = calibench.read_dump(out, split)
        assert is_probs == probs
        np.testing.assert_array_equal(values, x)
        np.testing.assert_array_equal(labels, y)
        same(calibench.evaluate(x, y, probs=probs), cli("eval", out, "--split", split, "--format", "json"))


REAL = sorted(str(p) for p in REAL_DUMPS.glob("*.h5")) if REAL_DUMPS.is_dir() else []


@pytest.mark.skipif(not REAL, reason="no real dumps in ../shared/data/real/h5")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.rsplit("/", 1)[-1])
def test_real_dumps_match_cli(cli, path):
    logits, labels = load(path, "test")
    same(calibench.evaluate(logits, labels), cli("eval", path, "--format", "json"), "eval")
    cal = calibench.fit("ts", *load(path, "val"), backend="cpu")
    ref = cli("fit", path, "--method", "ts", "--backend", "cpu", "--format", "json")
    same(cal.params, ref["params"], "params")
    got = cal.evaluate(logits, labels)
    got.pop("conventions"), ref["test"].pop("conventions")
    same(got, ref["test"], "fit test")
