# `calibench fit --method platt`, `calibench apply` of the saved calibrator, Python's
# calibench.fit("platt") and a sweep spec against the float64 reference
# tests/reference/platt_ref.py and sklearn's unregularised LogisticRegression on the same scores:
# random logit dumps (K = 2 binary, K > 2 top-label, tied rows, labels independent of the logits,
# logits in the hundreds), probability dumps, the binary and two multiclass real dumps when
# ../shared/data is present, and the inputs whose maximum-likelihood fit does not exist.  Seeds,
# shapes and the command are printed on failure.
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO, calibench_bin
from test_fit_hist_iso import check_split, dump_of, run_cli
from test_fit_reference import Case, close, compare_inversions, make_split, write_dump

sys.path.insert(0, str(REPO / "tests" / "reference"))
import calib_ref as ref  # noqa: E402
import platt_ref as pr  # noqa: E402

# (a, b): both sides run Newton to rounding level on the same float64 scores, summed in another
# order; the conditioning of the 2 x 2 Hessian (at most ~1e4 here) scales the rounding.
PARAM_TOL = 1e-9
# Calibrated probabilities of the CLI's parameters, applied by the CLI and by the reference.
PROB_TOL = 1e-12
# Against sklearn's fit (newton-cholesky, tol 1e-14): issue 21's criterion for platt.
SKLEARN_PROB_TOL = 1e-6

REAL_DIR = REPO.parent / "shared" / "data" / "real" / "h5"
REAL_DUMPS = ["medmnist_pneumoniamnist_resnet50.h5", "medmnist_adrenalmnist_resnet50.h5",
              "nncal_densenet40_c10.h5", "netcal_densenet_bc_100_cifar_100.h5"]

RANDOM = {c.name: c for c in [
    Case("n60_k2", 21, 60, 2, 1.0),
    Case("n2000_k2", 22, 2000, 2, 3.0),
    Case("n500_k3", 23, 500, 3, 3.0),
    Case("n2000_k10", 24, 2000, 10, 4.0),
    Case("ties_n500_k10", 25, 500, 10, 3.0, "ties"),   # tied top logits, constant and repeated rows
    Case("ties_n500_k2", 26, 500, 2, 2.0, "ties"),
    Case("noise_n400_k2", 27, 400, 2, 2.0, "noise"),   # labels independent of the logits: a ~ 0
    Case("noise_n300_k4", 28, 300, 4, 2.5, "noise"),
    Case("huge_n800_k2", 29, 800, 2, 150.0),           # |s| in the hundreds: sigmoid saturates
    Case("huge_n800_k5", 30, 800, 5, 150.0),
]}


def probs_case(rng, n, k):
    """Probability rows of a Dirichlet with labels drawn from a sharpened copy: every entry in
    (0, 1), so every score is finite."""
    p = rng.dirichlet(np.full(k, 0.7), size=n)
    p = np.clip(p, 1e-6, None)
    p /= p.sum(axis=1, keepdims=True)
    q = p ** 0.7
    q /= q.sum(axis=1, keepdims=True)
    y = np.minimum((q.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), k - 1)
    return p, y.astype(np.int32)


PROB_CASES = {"probs_n600_k2": (41, 600, 2), "probs_n600_k4": (42, 600, 4)}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """name -> (path, description)."""
    root = tmp_path_factory.mktemp("platt_dumps")
    out = {}
    for c in RANDOM.values():
        rng = np.random.default_rng(c.seed)
        tau = 1.5 * np.exp(0.3 * rng.normal(size=c.k))
        path = root / f"{c.name}.h5"
        write_dump(path, make_split(rng, c, tau), make_split(rng, c, tau), c.k)
        out[c.name] = (path, c.describe())
    for name, (seed, n, k) in PROB_CASES.items():
        rng = np.random.default_rng(seed)
        path = root / f"{name}.h5"
        write_dump(path, probs_case(rng, n, k), probs_case(rng, n, k), k, probs=True)
        out[name] = (path, f"case {name}: probabilities, seed={seed} N={n} K={k}")
    for name in REAL_DUMPS:
        if (REAL_DIR / name).exists():
            out[name] = (REAL_DIR / name, f"real dump {REAL_DIR / name}")
    return out


def saved_probs(path, split):
    with h5py.File(path, "r") as f:
        return f[f"{split}/probs"][()]


ALL = list(RANDOM) + list(PROB_CASES) + REAL_DUMPS


@pytest.mark.parametrize("name", ALL)
def test_fit_matches_reference(calibench, dumps, tmp_path, name):
    path, describe = dump_of(dumps, name)
    saved = tmp_path / "platt.h5"
    out, ctx = run_cli(calibench, describe, "fit", path, "--method", "platt", "--save", saved)
    val, zv = pr.load(str(path), "val")
    s, t = pr.scores(val, zv)
    want = pr.fit(s, t)
    got = out["params"]
    assert got["multiclass"] == pr.mode_of(val.k), ctx
    assert got["stop"] == "converged", f"{ctx}\n  stop {got['stop']} after {got['iterations_run']} steps"
    for key in ("a", "b"):
        assert close(got[key], want[key], PARAM_TOL), f"{ctx}\n  {key}: CLI {got[key]!r} vs reference {want[key]!r}"
    assert close(got["final_nll"], want["nll"], 1e-12), f"{ctx}\n  final_nll {got['final_nll']} vs {want['nll']}"
    for split in ("val", "test"):
        base, z = pr.load(str(path), split)
        cal = pr.apply(got, base, z)
        diff = np.max(np.abs(saved_probs(saved, split) - cal.p))
        assert diff <= PROB_TOL, f"{ctx}\n  {split}: calibrated probabilities differ by {diff:.3g}"
        check_split(out[split], cal, 15, "right-closed", ctx, split)
        compare_inversions(out["order_inversions"][split], ref.order_inversions(base.c, cal.c), base.n, ctx, split)
        if base.k > 2:  # top-label: the decisions are the uncalibrated ones
            assert out[split]["accuracy"] == ref.accuracy(base), f"{ctx}\n  {split} accuracy changed"


@pytest.mark.parametrize("name", ALL)
def test_reference_matches_sklearn(dumps, name):
    path, describe = dump_of(dumps, name)
    val, zv = pr.load(str(path), "val")
    ours = pr.fit(*pr.scores(val, zv))
    theirs = pr.sklearn_fit(*pr.scores(val, zv))
    for split in ("val", "test"):
        base, z = pr.load(str(path), split)
        diff = np.max(np.abs(pr.apply(ours, base, z).p - pr.apply(theirs, base, z).p))
        assert diff <= SKLEARN_PROB_TOL, f"{describe}\n  {split}: reference vs sklearn probabilities differ by {diff:.3g}"


@pytest.mark.parametrize("name", ["n2000_k2", "n2000_k10", "probs_n600_k4"])
def test_apply_and_python_equal_fit(calibench, dumps, tmp_path, name):
    import calibench as cb
    path, describe = dump_of(dumps, name)
    saved = tmp_path / "platt.h5"
    out, ctx = run_cli(calibench, describe, "fit", path, "--method", "platt", "--save", saved)
    applied, actx = run_cli(calibench, describe, "apply", saved, path)
    assert applied["params"] == out["params"], actx
    for split in ("val", "test"):
        for key, value in out[split].items():
            assert applied[split][key] == value, f"{actx}\n  {split} {key}: apply {applied[split][key]} vs fit {value}"
    with h5py.File(path, "r") as f:
        kind = "logits" if "logits" in f["val"] else "probs"
        values, labels = f[f"val/{kind}"][()], f["val/labels"][()]
    fitted = cb.fit("platt", values, labels, probs=kind == "probs")
    assert fitted.params == out["params"], f"{describe}\n  Python {fitted.params} vs CLI {out['params']}"
    again = cb.Calibrator.from_json(fitted.to_json())
    assert again.params == fitted.params, describe


def test_sweep_spec_equals_fit(calibench, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text("""
name = "platt"
bins = 15
seeds = [0]
[[datasets]]
synth = { name = "b2", classes = 2, n_val = 800, n_test = 800, seed = 5 }
[[datasets]]
synth = { name = "m6", classes = 6, n_val = 800, n_test = 800, seed = 6 }
[[methods]]
method = "platt"
""")
    out_dir = tmp_path / "out"
    proc = subprocess.run([calibench_bin(), "sweep", str(spec), "--out", str(out_dir), "--no-plots"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out_dir / "results.json").read_text())
    assert sorted(r["dataset"] for r in rows) == ["b2", "m6"]
    for r in rows:
        out, ctx = run_cli(calibench, f"sweep cell {r['id']}", "fit", tmp_path / r["file"], "--method", "platt",
                           "--bins", 15)
        assert r["params"] == out["params"], ctx
        for split in ("val", "test"):
            assert r[split] == out[split], f"{ctx}\n  {split}: sweep {r[split]} vs fit {out[split]}"


ERROR_CASES = {
    # name -> (values, labels, kind, K, expected message)
    "separable_k2": (np.stack([np.zeros(6), [-3., -2, -1, 1, 2, 3]], 1), [0, 0, 0, 1, 1, 1], "logits", 2,
                     "the validation scores separate the targets"),
    "quasi_separable_k2": (np.stack([np.zeros(6), [-3., -2, 0, 0, 2, 3]], 1), [0, 0, 0, 1, 1, 1], "logits", 2,
                           "the validation scores separate the targets"),
    "one_label_k2": (np.stack([np.zeros(4), [-1., 0, 1, 2]], 1), [1, 1, 1, 1], "logits", 2,
                     "has target 1 (label 1): the fit needs both outcomes"),
    "all_correct_k3": (np.array([[3., 0, 0], [0, 2, 0], [0, 0, 1], [4, 1, 0]]), [0, 1, 2, 0], "logits", 3,
                       "has target 1 (a correct prediction)"),
    "constant_k2": (np.zeros((4, 2)), [0, 1, 0, 1], "logits", 2, "every validation score is 0"),
    "probability_one_k2": (np.array([[0.2, 0.8], [0.0, 1.0], [0.6, 0.4], [0.5, 0.5]]), [1, 1, 0, 1], "probs", 2,
                           "row 1: platt (binary) needs a finite log-odds score"),
    # Every other class 0: the top-label log-odds is +inf (printed as such, not as NaN).
    "probability_one_k3": (np.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]]),
                           [1, 0, 0, 2], "probs", 3, "row 1: platt (top-label) needs a finite log-odds score (got inf"),
}


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_no_maximum_likelihood_fit_is_refused(calibench, tmp_path, name):
    values, labels, kind, k, needle = ERROR_CASES[name]
    path = tmp_path / f"{name}.h5"
    v, y = np.asarray(values), np.asarray(labels, dtype=np.int32)
    write_dump(path, (v, y), (v, y), k, probs=kind == "probs")
    proc = calibench("fit", path, "--method", "platt")
    assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert needle in proc.stderr and str(path) in proc.stderr, f"{name}: {proc.stderr}"
    assert proc.stdout == "", name


def test_apply_to_other_class_count_is_refused(calibench, dumps, tmp_path):
    saved = tmp_path / "binary.h5"
    assert calibench("fit", dumps["n2000_k2"][0], "--method", "platt", "--save", saved).returncode == 0
    proc = calibench("apply", saved, dumps["n500_k3"][0])
    assert proc.returncode == 2
    assert "platt was fitted binary (K = 2) but this split has K = 3" in proc.stderr, proc.stderr


def test_options_are_refused(calibench, dumps):
    proc = calibench("fit", dumps["n500_k3"][0], "--method", "platt", "--iterations", "5")
    assert proc.returncode == 2
    assert "--iterations applies to" in proc.stderr and "not platt" in proc.stderr, proc.stderr


def _binary_logits(rng, n):
    y = rng.integers(0, 2, n)
    s = (2.0 * y - 1.0) * 1.3 + rng.normal(size=n) * 1.6
    return np.stack([np.zeros(n), s], axis=1), y


def test_smoothed_targets_equal_the_reference_and_scikit_learn(calibench, tmp_path):
    """--platt-targets smoothed: Platt's (N+ + 1)/(N+ + 2) and 1/(N- + 2) targets; on binary logits
    this is scikit-learn's CalibratedClassifierCV(method="sigmoid") on the decision function."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    rng = np.random.default_rng(12)
    (zv, yv), (zt, yt) = _binary_logits(rng, 1500), _binary_logits(rng, 1000)
    path = tmp_path / "b.h5"
    write_dump(path, (zv, yv.astype(np.int32)), (zt, yt.astype(np.int32)), 2)
    saved = tmp_path / "cal.h5"
    got, _ = run_cli(calibench, "smoothed", "fit", path, "--method", "platt", "--platt-targets", "smoothed", "--save",
                     saved)
    assert got["options"]["platt_targets"] == "smoothed"
    sv = zv[:, 1]
    n1 = float(yv.sum())
    t = np.where(yv == 1, (n1 + 1) / (n1 + 2), 1 / (len(yv) - n1 + 2))
    want = pr.fit(sv, t)
    assert close(got["params"]["a"], want["a"], 1e-9) and close(got["params"]["b"], want["b"], 1e-9)

    class Decision(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, X):
            return X[:, 0]

        def predict(self, X):
            return (X[:, 0] > 0).astype(int)

    sk = CalibratedClassifierCV(FrozenEstimator(Decision().fit(None, None)), method="sigmoid")
    sk.fit(sv.reshape(-1, 1), yv)
    with h5py.File(saved) as f:
        ours = f["test/probs"][:, 1]
    # scikit-learn's L-BFGS stops at gtol 1e-6 on the summed loss.
    assert np.max(np.abs(ours - sk.predict_proba(zt[:, 1:2])[:, 1])) < 1e-7
    # Separable scores have a fit with smoothed targets; 0/1 targets are refused.
    sep = np.stack([np.zeros(40), np.r_[-1 - np.arange(20.0), 1 + np.arange(20.0)]], axis=1)
    ysep = np.r_[np.zeros(20), np.ones(20)].astype(np.int32)
    write_dump(tmp_path / "sep.h5", (sep, ysep), (sep, ysep), 2)
    assert calibench("fit", tmp_path / "sep.h5", "--method", "platt", "--platt-targets", "smoothed").returncode == 0
    assert calibench("fit", tmp_path / "sep.h5", "--method", "platt").returncode == 2
