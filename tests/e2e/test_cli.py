# End-to-end checks of the CLI surface that the reference cross-checks do not cover: the
# README's demo path, the exact JSON keys, info/version/help, synth determinism and truth.
import json

import h5py
import numpy as np
import pytest

METRIC_KEYS = {"n", "k", "accuracy", "ece", "mce", "adaece", "sce", "ace", "nll",
               "brier", "auroc", "precision", "recall", "f1", "r_auc", "rmsce", "rmsce_debiased", "ace_unweighted",
               "smece", "kde_ece", "ks_error", "ece_sweep", "aurc", "eaurc", "brier_reliability", "brier_resolution",
               "brier_uncertainty"}


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def synth_dump(tmp_path_factory, calibench):
    path = tmp_path_factory.mktemp("synth") / "synth.h5"
    ok(calibench("synth", "--out", path, "--classes", 10, "--n-val", 2000, "--n-test", 3000, "--seed", 3))
    return path


def test_demo_table_lists_every_metric(calibench, synth_dump):
    out = ok(calibench("eval", synth_dump, "--split", "test", "--bins", 15)).stdout
    for key in METRIC_KEYS - {"n", "k"}:
        assert key in out, key
    assert "N 3000" in out and "K 10" in out


def test_json_has_exactly_the_metric_keys(calibench, synth_dump):
    d = json.loads(ok(calibench("eval", synth_dump, "--format", "json")).stdout)
    assert set(d) == METRIC_KEYS | {"conventions"}
    assert d["n"] == 3000 and d["k"] == 10
    for key in METRIC_KEYS - {"n", "k", "nll", "brier"}:
        assert 0.0 <= d[key] <= 1.0, key


def test_json_extras_only_when_asked(calibench, synth_dump):
    d = json.loads(ok(calibench("eval", synth_dump, "--format", "json", "--bootstrap", 5, "--reliability",
                                "--inversions-against", synth_dump)).stdout)
    assert set(d) == METRIC_KEYS | {"conventions", "bootstrap", "ci", "reliability", "order_inversions"}
    assert set(d["ci"]) == METRIC_KEYS - {"n", "k"}
    assert d["bootstrap"] == {"resamples": 5, "seed": 0, "level": 0.95}
    assert len(d["reliability"]) == 15 and sum(b["count"] for b in d["reliability"]) == 3000
    assert d["order_inversions"] == 0.0  # a file against itself


def test_bootstrap_table_and_val_split(calibench, synth_dump):
    out = ok(calibench("eval", synth_dump, "--split", "val", "--bootstrap", 10, "--level", 0.9)).stdout
    assert "90% bootstrap interval" in out and "N 2000" in out


def test_info_and_version_and_help(calibench, synth_dump):
    info = json.loads(ok(calibench("info", synth_dump, "--format", "json")).stdout)
    assert [s["name"] for s in info["splits"]] == ["val", "test"]
    assert info["splits"][1]["other_datasets"] == ["true_probs"]
    assert info["attributes"]["format"] == "calibench-logits"
    assert "test" in ok(calibench("info", synth_dump)).stdout
    assert "CUDA backend" in ok(calibench("version")).stdout
    assert "eval" in ok(calibench("--help")).stdout
    assert "--bins" in ok(calibench("eval", "--help")).stdout


def test_synth_is_deterministic(calibench, tmp_path):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        ok(calibench("synth", "--out", path, "--classes", 4, "--n-val", 1500, "--n-test", 1100, "--seed", seed))
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        for ds in ("val/logits", "val/labels", "test/logits", "test/labels", "test/true_probs"):
            np.testing.assert_array_equal(fa[ds][()], fb[ds][()])
        assert not np.array_equal(fa["test/logits"][()], fc["test/logits"][()])


def test_synth_truth_is_consistent(calibench, tmp_path):
    """The stored truth explains the logits: z = tau * t + beta with softmax(t) = true_probs."""
    path = tmp_path / "t.h5"
    ok(calibench("synth", "--out", path, "--classes", 6, "--n-val", 10, "--n-test", 4000, "--seed", 1,
                 "--temperature", 2.0))
    with h5py.File(path) as f:
        z = f["test/logits"][()].astype(np.float64)
        p_true = f["test/true_probs"][()].astype(np.float64)
        tau, beta = f["truth/class_scale"][()], f["truth/class_bias"][()]
        assert f.attrs["synth_temperature"] == 2.0
    t = (z - beta) / tau
    p = np.exp(t - t.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # float32 storage of z and p_true: agreement to float32 precision.
    np.testing.assert_allclose(p, p_true, atol=1e-5)
    assert np.all(np.abs(np.log(tau / 2.0)) < 1.0)  # tau_j = T exp(0.2 u_j)


def test_synth_rejects_bad_options(calibench, tmp_path):
    for args in (["--classes", 1], ["--n-test", 0], ["--temperature", 0], ["--temperature", -1]):
        proc = calibench("synth", "--out", tmp_path / "x.h5", *args)
        assert proc.returncode == 2 and proc.stdout == "", (args, proc)
        assert proc.stderr.startswith("calibench: error: ") and proc.stderr.count("\n") == 1


def test_converter_output_reads_in_the_engine(calibench, tmp_path):
    """A dump written by experiments/convert is read by the C++ reader with the same values."""
    import subprocess
    import sys

    from conftest import REPO

    rng = np.random.default_rng(4)
    arrays = {}
    for split, n in (("val", 300), ("test", 200)):
        arrays[f"{split}_logits"] = rng.normal(size=(n, 5)).astype(np.float32)
        arrays[f"{split}_labels"] = rng.integers(0, 5, size=n)
    paths = {}
    for name, a in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], a)
    out = tmp_path / "converted.h5"
    proc = subprocess.run([sys.executable, str(REPO / "experiments/convert/calibench_convert.py"),
                           "--val-logits", paths["val_logits"], "--val-labels", paths["val_labels"],
                           "--test-logits", paths["test_logits"], "--test-labels", paths["test_labels"],
                           "-o", out, "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(ok(calibench("eval", out, "--format", "json")).stdout)
    z, y = arrays["test_logits"].astype(np.float64), arrays["test_labels"]
    assert d["n"] == 200 and d["k"] == 5
    assert d["accuracy"] == pytest.approx(np.mean(z.argmax(1) == y), abs=0)


def test_ts_nll_on_zero_label_probability_is_an_error(calibench, tmp_path):
    """A probability dump with p = 0 on a validation label has infinite NLL at every T."""
    path = tmp_path / "p.h5"
    p = np.full((6, 3), 1 / 3)
    p[4] = [0.5, 0.5, 0.0]
    with h5py.File(path, "w") as f:
        for split in ("val", "test"):
            f[f"{split}/probs"] = p
            f[f"{split}/labels"] = np.array([0, 1, 2, 0, 2, 1], dtype=np.int32)
    proc = calibench("fit", path, "--method", "ts", "--format", "json")
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert "index 4" in proc.stderr and "/val/probs" in proc.stderr and proc.stderr.count("\n") == 1
    ok(calibench("fit", path, "--method", "ts", "--objective", "ece", "--format", "json"))
