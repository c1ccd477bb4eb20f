# `calibench fit --method vs|ms|cts_nll` (L-BFGS on the validation NLL; docs/calibrators.md)
# against the float64 scipy reference (tests/reference/gradient_methods_ref.py) on seeded random
# dumps of several shapes, a probability dump, and up to three real dumps (../shared/data/real/h5,
# skipped when absent); `--save` / `apply` round trips; `--iterations`; input errors.
#
# The comparison: the CLI's final NLL must equal the reference optimum to NLL_RTOL; where the
# minimiser is unique (cts_nll; vs up to the softmax-invariant constant in the biases, which
# both optimisers keep at its initial sum 0) the parameters must agree to PARAM_TOL; ms is
# compared by its objective only (its minimiser can be ill-conditioned).  The metrics the CLI
# reports are recomputed by tests/reference/calib_ref.py from the CLI's own parameters.
import json
import math
import pathlib
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO
from fit_helpers import close, run_cli, write_dump  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import calib_ref as ref  # noqa: E402
import gradient_methods_ref as gr  # noqa: E402

# The brief's acceptance bound: the engine stops at ||g|| <= 1e-8 max(1, ||x||); the NLL is
# within ~||g||^2 / (2 lambda_min) of the optimum, far below 1e-7 relative.
NLL_RTOL = 1e-7
# The CLI's reported final_nll against the reference's NLL at the CLI's parameters: the same
# float64 objective summed in a different order (N <= 5000 terms of size ~1).
NLL_EVAL_RTOL = 1e-12
# Parameters of a unique minimiser: the engine's gradient tolerance 1e-8 max(1, ||x||) moves the
# minimiser by ~||g|| / lambda_min; the Hessian's smallest eigenvalue on these data is >~ 1e-3.
PARAM_TOL = 1e-4
# The reference stops when no step lowers the NLL in float64 (ftol 0), at |g| ~ 1e-11..1e-8
# on these data; its NLL is then within ~|g|^2 / lambda_min of the optimum.
REF_GRAD_NORM = 1e-7
# Metrics of the same parameters: both sides float64 from the same stored logits.
METRIC_TOL = 1e-9
# Saved probabilities against the reference's softmax of the CLI's parameters.
PROB_TOL = 1e-12

REAL_DIR = REPO.parent / "shared" / "data" / "real" / "h5"
# Real dumps whose NLL minimisers are finite. Not pathmnist: one class is separable along its
# own logit, so the vs weight and cts_nll 1/T of that class run to infinity (no optimum to
# compare; the engine's relative gradient rule then stops early, ~1e-3 above the infimum).
REAL_DUMPS = ("netcal_lenet_5_cifar_10.h5", "wasscal_cifar10_resnet20.h5",
              "medmnist_pneumoniamnist_resnet50.h5")

# name -> (seed, N, K, logit scale, stored as probabilities)
RANDOM = {
    "n60_k2": (41, 60, 2, 2.0, False),
    "n500_k3": (42, 500, 3, 3.0, False),
    "n2000_k10": (43, 2000, 10, 4.0, False),
    "probs_n800_k4": (44, 800, 4, 2.5, True),
}


def softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """name -> (path, (z_val, y_val), (z_test, y_test)); z float64 logits as the CLI reads them
    (log p for probability dumps)."""
    root = tmp_path_factory.mktemp("gradient_dumps")
    out = {}
    for name, (seed, n, k, scale, probs) in RANDOM.items():
        rng = np.random.default_rng(seed)
        tau = 1.5 * np.exp(0.3 * rng.normal(size=k))
        val, test = make_split(rng, n, k, scale, tau), make_split(rng, n, k, scale, tau)
        path = root / f"{name}.h5"
        if probs:
            val, test = (softmax64(val[0]), val[1]), (softmax64(test[0]), test[1])
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


def check_metrics(out, method, x, val, test, ctx):
    """The reported metrics of both splits are those of softmax(map(z)) under the CLI's params."""
    for split, (z, y) in (("val", val), ("test", test)):
        want = ref.compute_metrics(ref.from_logits(gr.mapped(method, x, z), y), 15, "right-closed")
        for key in ref.METRIC_KEYS:
            g, w = out[split][key], ref.to_json_value(want[key])
            if g is None or w is None:
                assert g is None and w is None, f"{ctx}\n  {split} {key}: CLI {g} vs reference {w}"
            else:
                assert close(g, w, METRIC_TOL), f"{ctx}\n  {split} {key}: CLI {g!r} vs reference {w!r}"


@pytest.fixture(scope="module")
def reference_fits():
    cache = {}

    def get(name, method, val):
        if (name, method) not in cache:
            cache[(name, method)] = gr.fit(method, *val)
        return cache[(name, method)]

    return get


# ms on wasscal_cifar10_resnet20 has a minimiser with entries ~1e4 (nearly at infinity): no
# objective to compare at 1e-7, so that pair is left out.
FIT_CASES = [(n, m) for n in list(RANDOM) + list(REAL_DUMPS) for m in gr.METHODS
             if (n, m) != ("wasscal_cifar10_resnet20.h5", "ms")]


@pytest.mark.parametrize("name,method", FIT_CASES, ids=[f"{n}-{m}" for n, m in FIT_CASES])
def test_fit_matches_reference(calibench, dumps, reference_fits, name, method):
    if name not in dumps:
        pytest.skip(f"{REAL_DIR / name} absent")
    path, val, test = dumps[name]
    k = val[0].shape[1]
    out, ctx = run_cli(calibench, "fit", path, "--method", method)
    ctx = f"{name} (N={len(val[1])}, K={k})\n  {ctx}"
    p = out["params"]
    x = gr.params_to_flat(method, p, k)
    assert len(x) == gr.size(method, k), ctx
    want = reference_fits(name, method, val)
    assert want.grad_norm <= REF_GRAD_NORM, f"{ctx}\n  the reference did not converge (|g| = {want.grad_norm})"
    # The CLI's NLL is the reference objective at the CLI's parameters, and it is the optimum.
    at_cli, _ = gr.nll_and_grad(method, x, *val)
    assert close(p["final_nll"], at_cli, NLL_EVAL_RTOL), f"{ctx}\n  final_nll {p['final_nll']!r} vs {at_cli!r}"
    assert abs(p["final_nll"] - want.nll) <= NLL_RTOL * want.nll, \
        f"{ctx}\n  final_nll {p['final_nll']!r} vs reference optimum {want.nll!r} (stop {p['stop']})"
    # "line_search": no step changes the NLL beyond rounding any more (checked by NLL_RTOL above).
    assert p["stop"] in ("gradient", "objective", "line_search"), \
        f"{ctx}\n  stopped by {p['stop']} after {p['iterations_run']} iterations"
    assert 0 < p["iterations_run"] <= 1000, ctx
    assert math.isclose(out["val"]["nll"], p["final_nll"], rel_tol=1e-12), ctx
    if method == "cts_nll":
        assert np.allclose(x, want.x, rtol=PARAM_TOL, atol=PARAM_TOL), f"{ctx}\n  1/T {x} vs {want.x}"
    elif method == "vs":
        w_cli, b_cli = x[:k], x[k:]
        w_ref, b_ref = want.x[:k], want.x[k:]
        assert np.allclose(w_cli, w_ref, rtol=PARAM_TOL, atol=PARAM_TOL), f"{ctx}\n  weights {w_cli} vs {w_ref}"
        assert np.allclose(b_cli - b_cli.mean(), b_ref - b_ref.mean(), rtol=PARAM_TOL, atol=PARAM_TOL), \
            f"{ctx}\n  centred biases {b_cli} vs {b_ref}"
    check_metrics(out, method, x, val, test, ctx)


@pytest.mark.parametrize("method", gr.METHODS)
def test_save_and_apply(calibench, dumps, tmp_path, method):
    path, val, test = dumps["n500_k3"]
    saved = tmp_path / f"{method}.h5"
    out, ctx = run_cli(calibench, "fit", path, "--method", method, "--save", saved)
    x = gr.params_to_flat(method, out["params"], 3)
    with h5py.File(saved, "r") as h:
        meta = h.attrs["calibrator"]
        meta = json.loads(meta.decode() if isinstance(meta, bytes) else meta)
        assert meta == {"method": method, "params": out["params"]}, f"{ctx}\n  calibrator attr {meta}"
        for split, (z, y) in (("val", val), ("test", test)):
            probs = h[f"{split}/probs"][()]
            assert np.max(np.abs(probs - gr.probabilities(method, x, z))) <= PROB_TOL, f"{ctx}\n  /{split}/probs"
    # The same dump: the fit's report again.
    ap, ctx_a = run_cli(calibench, "apply", saved, path)
    assert ap["method"] == method and ap["params"] == out["params"], ctx_a
    for split in ("val", "test"):
        for key in ref.METRIC_KEYS:
            g, w = ap[split][key], out[split][key]
            assert (g is None and w is None) or close(g, w, METRIC_TOL), f"{ctx_a}\n  {split} {key}: {g} vs {w}"
    # Another dump with the same K (the probability dump has K = 4; build a K = 3 one).
    rng = np.random.default_rng(7)
    tau = np.array([1.2, 2.0, 0.8])
    other_val, other_test = make_split(rng, 300, 3, 3.0, tau), make_split(rng, 300, 3, 3.0, tau)
    other = tmp_path / "other.h5"
    write_dump(other, other_val, other_test, 3)
    ap, ctx_a = run_cli(calibench, "apply", saved, other)
    as64 = lambda s: (s[0].astype(np.float64), s[1].astype(np.int64))  # noqa: E731
    check_metrics(ap, method, x, as64(other_val), as64(other_test), ctx_a)
    # A dump with another K is an input error.
    wrong = calibench("apply", saved, dumps["n2000_k10"][0])
    assert wrong.returncode == 2 and "K = 10" in wrong.stderr, wrong


def test_iteration_limit(calibench, dumps):
    path, val, test = dumps["n2000_k10"]
    out, ctx = run_cli(calibench, "fit", path, "--method", "vs", "--iterations", "2")
    assert out["params"]["iterations_run"] == 2 and out["params"]["stop"] == "iterations", ctx
    out, ctx = run_cli(calibench, "fit", path, "--method", "ms", "--iterations", "0")
    p = out["params"]
    assert p["iterations_run"] == 0 and p["stop"] == "iterations", ctx
    assert p["matrix"] == np.eye(10).ravel().tolist() and p["biases"] == [0.0] * 10, ctx
    uncal = ref.compute_metrics(ref.from_logits(*val), 15, "right-closed")
    assert close(p["final_nll"], uncal["nll"], NLL_EVAL_RTOL), ctx


def test_deterministic(calibench, dumps):
    path = dumps["n2000_k10"][0]
    first, _ = run_cli(calibench, "fit", path, "--method", "ms")
    again, ctx = run_cli(calibench, "fit", path, "--method", "ms")
    assert first["params"] == again["params"], ctx


def test_unknown_method(calibench, dumps, tmp_path):
    path = dumps["n500_k3"][0]
    proc = calibench("fit", path, "--method", "vector_scaling")
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert "vector_scaling" in proc.stderr and "cts_nll" in proc.stderr, proc.stderr
    # A saved calibrator naming an unknown method.
    saved = tmp_path / "vs.h5"
    assert calibench("fit", path, "--method", "vs", "--save", saved).returncode == 0
    with h5py.File(saved, "a") as h:
        h.attrs["calibrator"] = json.dumps({"method": "vector_scaling", "params": {}})
    proc = calibench("apply", saved, path)
    assert proc.returncode == 2 and "unknown calibration method 'vector_scaling'" in proc.stderr, proc.stderr


def test_zero_probability_is_an_input_error(calibench, tmp_path):
    rng = np.random.default_rng(3)
    p = softmax64(rng.normal(size=(50, 3)))
    p[5] = [0.0, 0.4, 0.6]
    y = rng.integers(0, 3, size=50).astype(np.int32)
    path = tmp_path / "zeros.h5"
    write_dump(path, (p, y), (p, y), 3, probs=True)
    for method in gr.METHODS:
        proc = calibench("fit", path, "--method", method)
        assert proc.returncode == 2 and "non-finite logit" in proc.stderr, (method, proc.stderr)


@pytest.mark.parametrize("method", gr.METHODS)
def test_reference_gradient(method):
    # The reference's own analytic gradient against central differences.
    rng = np.random.default_rng(5)
    z = 3 * rng.normal(size=(40, 4))
    y = rng.integers(0, 4, size=40)
    x = gr.identity(method, 4) + 0.3 * rng.normal(size=gr.size(method, 4))
    _, grad = gr.nll_and_grad(method, x, z, y)
    fd = np.empty_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = 1e-6
        fd[i] = (gr.nll_and_grad(method, x + e, z, y)[0] - gr.nll_and_grad(method, x - e, z, y)[0]) / 2e-6
    assert np.linalg.norm(fd - grad) <= 1e-7 * np.linalg.norm(grad)
