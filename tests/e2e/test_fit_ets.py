# `calibench fit --method ets` (ensemble temperature scaling, docs/calibrators.md) against the
# float64 scipy reference (tests/reference/ets_ref.py: SLSQP on the simplex from (1, 0, 0), the
# CLI's temperature) on seeded random dumps, a probability dump and up to three real dumps
# (../shared/data/real/h5, skipped when absent); both weight objectives (nll, mse); the
# temperature is the `ts` NLL fit's; accuracy unchanged; `--save` / `apply` round trips; errors.
import json
import pathlib
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO
from fit_helpers import close, run_cli, write_dump  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import calib_ref as ref  # noqa: E402
import ets_ref as er  # noqa: E402

# The CLI solves each face to machine precision; SLSQP (ftol 1e-16) stops at least as close:
# the CLI may not be worse than the reference by more than rounding of a mean of N terms.
OBJECTIVE_SLACK = 1e-9
# The CLI's reported final_objective against the reference's objective at the CLI's weights:
# the same float64 objective summed in another order (N <= 10^4 terms of size ~1).
EVAL_RTOL = 1e-12
# Weights of a unique optimum: both sides within ~1e-8 of it where the curvature of the
# objective along the optimum's face is at least MIN_CURVATURE (the error is ~ sqrt(2 df / curvature)).
WEIGHT_TOL = 1e-6
MIN_CURVATURE = 1e-3
# The simplex: the CLI's weights are exactly >= 0 and sum to 1 up to one rounding per weight.
SUM_TOL = 1e-15
# Metrics of the same weights, both sides float64 from the same stored values.
METRIC_TOL = 1e-9
# Saved probabilities against the reference's mixture at the CLI's parameters.
PROB_TOL = 1e-12

REAL_DIR = REPO.parent / "shared" / "data" / "real" / "h5"
REAL_DUMPS = ("netcal_lenet_5_cifar_10.h5", "wasscal_cifar10_resnet20.h5", "sctl_densenet40_c10_LT.h5")

# name -> (seed, N, K, logit scale, stored as probabilities)
RANDOM = {
    "n80_k2": (51, 80, 2, 2.0, False),
    "n600_k3": (52, 600, 3, 3.0, False),
    "n2000_k10": (53, 2000, 10, 4.0, False),
    "n3000_k100": (54, 3000, 100, 2.0, False),
    "probs_n800_k4": (55, 800, 4, 2.5, True),
}


def make_split(rng, n, k, scale):
    """True logits t = scale N(0, I); y ~ softmax(t); observed z = t * tau with a per-sample
    tau (over- and under-confident samples mixed, so that the temperature alone falls short),
    plus 2% of labels drawn uniformly (mass the uniform component can explain)."""
    t = scale * rng.normal(size=(n, k))
    p = er.softmax(t)
    y = np.minimum((p.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), k - 1)
    flip = rng.random(n) < 0.02
    y[flip] = rng.integers(0, k, size=int(flip.sum()))
    tau = np.exp(0.5 * rng.normal(size=n)) * 1.5
    return (t * tau[:, None]).astype(np.float32), y.astype(np.int32)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """name -> (path, (z_val, y_val), (z_test, y_test)); z float64 logits as the CLI reads them
    (log p for probability dumps)."""
    root = tmp_path_factory.mktemp("ets_dumps")
    out = {}
    for name, (seed, n, k, scale, probs) in RANDOM.items():
        rng = np.random.default_rng(seed)
        val, test = make_split(rng, n, k, scale), make_split(rng, n, k, scale)
        path = root / f"{name}.h5"
        if probs:
            val, test = (er.softmax(val[0]), val[1]), (er.softmax(test[0]), test[1])
            write_dump(path, val, test, k, probs=True)
            as64 = lambda s: (np.log(s[0]), s[1].astype(np.int64))  # noqa: E731
        else:
            write_dump(path, val, test, k)
            as64 = lambda s: (s[0].astype(np.float64), s[1].astype(np.int64))  # noqa: E731
        out[name] = (path, as64(val), as64(test))
    for name in REAL_DUMPS:
        path = REAL_DIR / name
        if not path.exists():
            continue
        with h5py.File(path, "r") as f:
            splits = [(f[f"{s}/logits"][()].astype(np.float64), f[f"{s}/labels"][()].reshape(-1).astype(np.int64))
                      for s in ("val", "test")]
        out[name] = (path, splits[0], splits[1])
    return out


def face_curvature(objective, w, comps, y):
    """Smallest curvature of the objective along the face of the simplex that holds w (inf on a
    vertex): where it is positive the optimum is unique."""
    rows = np.arange(len(y))
    if objective == "nll":
        v = np.stack([c[rows, y] for c in comps], axis=1)
        s = v @ w
        h = (v / s[:, None]).T @ (v / s[:, None]) / len(y)
    else:
        h = 2.0 * np.array([[np.mean(np.sum(a * b, axis=1)) for b in comps] for a in comps])
    support = np.flatnonzero(w > 0)
    if len(support) < 2:
        return np.inf
    basis = np.zeros((3, len(support) - 1))  # e_s - e_first of the support: the face's directions
    for i, j in enumerate(support[1:]):
        basis[support[0], i], basis[j, i] = -1.0, 1.0
    q, _ = np.linalg.qr(basis)
    return float(np.linalg.eigvalsh(q.T @ h @ q).min())


def check_metrics(out, p, val, test, ctx):
    """The reported metrics of both splits are those of the mixture under the CLI's params."""
    for split, (z, y) in (("val", val), ("test", test)):
        want = ref.compute_metrics(ref.from_probs(er.mixture(z, p["temperature"], p["weights"]), y), 15,
                                   "right-closed")
        for key in ref.METRIC_KEYS:
            g, w = out[split][key], ref.to_json_value(want[key])
            if g is None or w is None:
                assert g is None and w is None, f"{ctx}\n  {split} {key}: CLI {g} vs reference {w}"
            else:
                assert close(g, w, METRIC_TOL), f"{ctx}\n  {split} {key}: CLI {g!r} vs reference {w!r}"


def unique_top(z):
    """Rows whose largest logit is unique, and their argmax."""
    top = np.sort(z, axis=1)
    return top[:, -1] > top[:, -2], np.argmax(z, axis=1)


FIT_CASES = [(n, o) for n in list(RANDOM) + list(REAL_DUMPS) for o in ("nll", "mse")]


@pytest.mark.parametrize("name,objective", FIT_CASES, ids=[f"{n}-{o}" for n, o in FIT_CASES])
def test_fit_matches_reference(calibench, dumps, name, objective):
    if name not in dumps:
        pytest.skip(f"{REAL_DIR / name} absent")
    path, val, test = dumps[name]
    k = val[0].shape[1]
    out, ctx = run_cli(calibench, "fit", path, "--method", "ets", "--objective", objective)
    ctx = f"{name} (N={len(val[1])}, K={k})\n  {ctx}"
    p = out["params"]
    assert set(p) == {"temperature", "weights", "objective", "final_objective"}, ctx
    assert p["objective"] == objective, ctx
    # The temperature is the ts NLL fit's, bit for bit.
    ts, _ = run_cli(calibench, "fit", path, "--method", "ts")
    assert p["temperature"] == ts["params"]["temperature"], f"{ctx}\n  T {p['temperature']} vs ts {ts['params']}"
    w = np.array(p["weights"])
    assert w.shape == (3,) and np.all(w >= 0) and abs(w.sum() - 1.0) <= SUM_TOL, f"{ctx}\n  weights {w}"
    comps = er.components(val[0], p["temperature"])
    at_cli, _ = er.objective(objective, w, comps, val[1])
    assert close(p["final_objective"], at_cli, EVAL_RTOL), f"{ctx}\n  final_objective {p['final_objective']!r} vs {at_cli!r}"
    want = er.fit(val[0], val[1], p["temperature"], objective)
    assert want.kkt <= 1e-8, f"{ctx}\n  the reference is not optimal (KKT violation {want.kkt}, w {want.w})"
    assert p["final_objective"] <= want.value + OBJECTIVE_SLACK, \
        f"{ctx}\n  final_objective {p['final_objective']!r} vs reference {want.value!r} (w {w} vs {want.w})"
    if face_curvature(objective, want.w, comps, val[1]) >= MIN_CURVATURE:
        assert np.allclose(w, want.w, rtol=0, atol=WEIGHT_TOL), f"{ctx}\n  weights {w} vs reference {want.w}"
    if objective == "nll":
        assert close(out["val"]["nll"], p["final_objective"], EVAL_RTOL), ctx
    # Accuracy unchanged: the mixture keeps the argmax of z (rows with a tied top logit aside).
    for split, (z, y) in (("val", val), ("test", test)):
        unique, top = unique_top(z)
        pred = np.argmax(er.mixture(z, p["temperature"], w), axis=1)
        if w[0] + w[1] > 0:
            assert np.array_equal(pred[unique], top[unique]), f"{ctx}\n  {split}: prediction changed"
        if unique.all():
            base = ref.compute_metrics(ref.from_logits(z, y), 15, "right-closed")["accuracy"]
            assert out[split]["accuracy"] == base, f"{ctx}\n  {split} accuracy {out[split]['accuracy']} vs {base}"
    check_metrics(out, p, val, test, ctx)


@pytest.mark.parametrize("objective", ("nll", "mse"))
def test_save_and_apply(calibench, dumps, tmp_path, objective):
    path, val, test = dumps["n600_k3"]
    saved = tmp_path / f"ets_{objective}.h5"
    out, ctx = run_cli(calibench, "fit", path, "--method", "ets", "--objective", objective, "--save", saved)
    p = out["params"]
    with h5py.File(saved, "r") as h:
        meta = h.attrs["calibrator"]
        meta = json.loads(meta.decode() if isinstance(meta, bytes) else meta)
        assert meta == {"method": "ets", "params": p}, f"{ctx}\n  calibrator attr {meta}"
        for split, (z, y) in (("val", val), ("test", test)):
            probs = h[f"{split}/probs"][()]
            want = er.mixture(z, p["temperature"], p["weights"])
            assert np.max(np.abs(probs - want)) <= PROB_TOL, f"{ctx}\n  /{split}/probs"
    # The same dump: the fit's report again.
    ap, ctx_a = run_cli(calibench, "apply", saved, path)
    assert ap["method"] == "ets" and ap["params"] == p, ctx_a
    for split in ("val", "test"):
        for key in ref.METRIC_KEYS:
            g, w = ap[split][key], out[split][key]
            assert (g is None and w is None) or close(g, w, METRIC_TOL), f"{ctx_a}\n  {split} {key}: {g} vs {w}"
    # The mixture does not depend on K: another dump, of another K, takes the same parameters.
    other_path, other_val, other_test = dumps["n2000_k10"]
    ap, ctx_a = run_cli(calibench, "apply", saved, other_path)
    check_metrics(ap, p, other_val, other_test, ctx_a)
    # Malformed parameters are an input error.
    with h5py.File(saved, "a") as h:
        h.attrs["calibrator"] = json.dumps({"method": "ets", "params": {**p, "weights": [1.0, 0.0]}})
    proc = calibench("apply", saved, path)
    assert proc.returncode == 2 and "3 weights" in proc.stderr, proc.stderr


def test_deterministic(calibench, dumps):
    path = dumps["n2000_k10"][0]
    first, _ = run_cli(calibench, "fit", path, "--method", "ets")
    again, ctx = run_cli(calibench, "fit", path, "--method", "ets")
    assert first["params"] == again["params"], ctx


def test_objective_errors(calibench, dumps):
    path = dumps["n600_k3"][0]
    for method, objective in (("ets", "ece"), ("ets", "adaece"), ("ts", "mse"), ("vs", "mse")):
        proc = calibench("fit", path, "--method", method, "--objective", objective)
        assert proc.returncode == 2 and f"--objective {objective} does not apply to {method}" in proc.stderr, \
            (method, objective, proc.stderr)


def test_zero_probability_is_an_input_error(calibench, tmp_path):
    rng = np.random.default_rng(3)
    p = er.softmax(rng.normal(size=(50, 3)))
    p[5] = [0.0, 0.4, 0.6]
    y = rng.integers(1, 3, size=50).astype(np.int32)
    y[5] = 0
    path = tmp_path / "zeros.h5"
    write_dump(path, (p, y), (p, y), 3, probs=True)
    proc = calibench("fit", path, "--method", "ets")
    assert proc.returncode == 2 and "probability 0 on the label at index 5" in proc.stderr, proc.stderr


@pytest.mark.parametrize("objective", ("nll", "mse"))
def test_reference_gradient(objective):
    # The reference's own analytic gradient against central differences.
    rng = np.random.default_rng(5)
    z = 3 * rng.normal(size=(40, 4))
    y = rng.integers(0, 4, size=40)
    comps = er.components(z, 1.7)
    w = np.array([0.5, 0.3, 0.2])
    _, grad = er.objective(objective, w, comps, y)
    fd = np.empty(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-6
        fd[i] = (er.objective(objective, w + e, comps, y)[0] - er.objective(objective, w - e, comps, y)[0]) / 2e-6
    assert np.linalg.norm(fd - grad) <= 1e-7 * np.linalg.norm(grad)
