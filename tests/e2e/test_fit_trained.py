# `calibench fit` with the loss-trained methods (BASE+LOSS, ets_sctl, pts, pts_sctl;
# docs/calibrators.md "Loss-trained calibrators") without PyTorch: every accepted name runs on a
# small dump and reports its parameters and training stages; accuracy is kept where the method
# promises it; `--save` / `apply` reproduce the fit's metrics; +sctl reports the fields the issue
# asks for and its L0 equals the class losses at the start computed here in float64; bad options
# and inputs exit with status 2 and one line. (The training itself is checked against PyTorch
# float64 in test_trained_parity.py, which needs the peers' environment.)
import json

import numpy as np
import pytest

from fit_helpers import run_cli, tempered_split, write_dump

# Metrics of the same parameters after save/apply: both float64 from the same stored values.
METRIC_TOL = 1e-12
# L0 against a float64 numpy evaluation at the start (T = 1): summed in another order.
L0_RTOL = 1e-12


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(42)
    out = {}
    for name, n, k in (("k3", 400, 3), ("k12", 900, 12)):
        tau = np.full(k, 2.5)
        val = tempered_split(rng, n, k, 2.0, tau)
        test = tempered_split(rng, n, k, 2.0, tau)
        write_dump(d / f"{name}.h5", val, test, k)
        out[name] = (d / f"{name}.h5", val, test, k)
    return out


ALL = ["ts+ce", "ts+ls", "ts+fl", "ts+lsplus", "ts+sctl", "ets+ce", "ets+ls", "ets+fl", "ets+lsplus", "ets+sctl",
       "ets_sctl", "ets_sctl+ls", "ets_sctl+fl", "ets_sctl+lsplus", "ets_sctl+sctl", "cts_nll+ce", "cts_nll+ls",
       "cts_nll+fl", "cts_nll+lsplus", "cts_nll+sctl", "pts", "pts+ce", "pts+ls", "pts+fl", "pts+lsplus", "pts+sctl",
       "pts_sctl", "pts_sctl+ls", "pts_sctl+fl", "pts_sctl+lsplus", "pts_sctl+sctl"]
KEEPS_ACCURACY = ("ts", "ets", "pts")  # bases whose maps keep the argmax (ets_sctl: w0/t + w1 > 0, checked below)


@pytest.mark.parametrize("method", ALL)
def test_every_method_runs_and_reports(calibench, dumps, method):
    path, val, test, k = dumps["k12"]
    out, ctx = run_cli(calibench, "fit", path, "--method", method, "--iterations", 40)
    p = out["params"]
    base = method.split("+")[0]
    loss = method.split("+")[1] if "+" in method else {"pts": "mse"}.get(method, "ce")
    assert p["base"] == base and p["loss"] == loss, ctx
    assert p["training"] and all(s["evaluations"] >= 1 for s in p["training"]), ctx
    assert np.isfinite(p["final_loss"]), ctx
    for split in ("val", "test"):
        assert 0 <= out[split]["ece"] <= 1 and np.isfinite(out[split]["nll"]), ctx
    uncal, _ = run_cli(calibench, "eval", path, "--split", "test")
    if base in KEEPS_ACCURACY or (base == "ets_sctl" and p["weights"][0] / p["temperature"] + p["weights"][1] > 0):
        assert out["test"]["accuracy"] == uncal["accuracy"], f"{ctx}: accuracy changed"
    if base in ("ts", "ets", "ets_sctl"):
        assert p["temperature"] > 0, ctx
    if base == "ets":
        w = np.asarray(p["weights"])
        assert np.all(w >= 0) and abs(w.sum() - 1) <= 1e-12, f"{ctx}: weights {w} off the simplex"
    if base == "cts_nll":
        assert len(p["temperatures"]) == k, ctx
    if base in ("pts", "pts_sctl"):
        assert p["top_k"] == 10 and p["network"]["layers"][0]["weight"] and len(p["network"]["layers"][0]["weight"][0]) == 10


def class_losses(z, y, k, t=1.0):
    q = z.astype(np.float64) / t
    q -= q.max(axis=1, keepdims=True)
    logp = q - np.log(np.exp(q).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(y)), y]
    return np.array([nll[y == c].mean() for c in range(k) if np.any(y == c)])


@pytest.mark.parametrize("norm", ["nd", "mm", "cm"])
def test_sctl_reports_the_fit(calibench, dumps, norm):
    path, (zv, yv), _, k = dumps["k12"]
    out, ctx = run_cli(calibench, "fit", path, "--method", "ts+sctl", "--sctl-norm", norm)
    p = out["params"]
    for key in ("alpha", "beta", "objective", "slsqp_alpha", "slsqp_beta", "slsqp_objective", "l0", "l1",
                "class_weights", "classes"):
        assert key in p, f"{ctx}: params lacks {key}"
    assert p["sctl_fitted"] and p["sctl_norm"] == norm and p["sctl_solver"] == "grid", ctx
    l0 = class_losses(zv, yv, k)
    assert np.allclose(p["l0"], l0, rtol=L0_RTOL, atol=0), f"{ctx}: L0 {p['l0']} vs {l0.tolist()}"
    # The grid fit is never worse than SLSQP's (both reported).
    assert p["grid_objective"] <= p["slsqp_objective"] + 1e-12 * (1 + p["slsqp_objective"]), ctx
    assert 0.1 <= p["alpha"] <= np.log(k) / 2 + 1e-15 and 1.5 <= p["beta"] <= 2.0, ctx
    assert len(p["class_weights"]) == len(p["classes"]) == k, ctx
    slsqp, ctx2 = run_cli(calibench, "fit", path, "--method", "ts+sctl", "--sctl-norm", norm, "--sctl-solver", "slsqp")
    assert slsqp["params"]["alpha"] == slsqp["params"]["slsqp_alpha"], ctx2


def test_sctl_leaves_absent_classes_out(calibench, tmp_path):
    rng = np.random.default_rng(3)
    k = 5
    val = tempered_split(rng, 500, k, 2.0, np.full(k, 2.0))
    keep = val[1] != 2  # class 2 absent from /val
    write_dump(tmp_path / "absent.h5", (val[0][keep], val[1][keep]), val, k)
    out, ctx = run_cli(calibench, "fit", tmp_path / "absent.h5", "--method", "cts_nll+sctl", "--iterations", 30)
    assert out["params"]["classes"] == [0, 1, 3, 4], ctx
    assert len(out["params"]["l0"]) == 4, ctx


@pytest.mark.parametrize("method", ["ts+sctl", "ets+fl", "ets_sctl+ls", "cts_nll+lsplus", "pts", "pts_sctl+sctl"])
def test_save_apply_round_trip(calibench, dumps, tmp_path, method):
    path = dumps["k3"][0]
    saved = tmp_path / "cal.h5"
    fit, ctx = run_cli(calibench, "fit", path, "--method", method, "--iterations", 60, "--save", saved)
    applied, ctx2 = run_cli(calibench, "apply", saved, path)
    assert applied["method"] == method, ctx2
    for key in ("ece", "nll", "brier", "accuracy", "adaece"):
        assert abs(applied["test"][key] - fit["test"][key]) <= METRIC_TOL, f"{ctx2}: {key}"


def test_pts_init_is_used(calibench, dumps, tmp_path):
    path, _, _, k = dumps["k12"]
    layers = [{"weight": [[0.01] * 10, [0.02] * 10], "bias": [0.1, 0.2]}]
    layers += [{"weight": [[0.5, 0.1], [0.2, 0.4]], "bias": [0.1, 0.1]} for _ in range(3)]
    layers += [{"weight": [[0.3, 0.3]], "bias": [1.5]}]
    init = tmp_path / "init.json"
    init.write_text(json.dumps({"layers": layers}))
    out, ctx = run_cli(calibench, "fit", path, "--method", "pts_sctl", "--pts-init", init, "--iterations", 0)
    assert out["params"]["network"]["layers"] == layers, f"{ctx}: zero steps must keep the initial network"
    seeded, _ = run_cli(calibench, "fit", path, "--method", "pts_sctl", "--iterations", 0, "--seed", 5)
    again, _ = run_cli(calibench, "fit", path, "--method", "pts_sctl", "--iterations", 0, "--seed", 5)
    other, _ = run_cli(calibench, "fit", path, "--method", "pts_sctl", "--iterations", 0, "--seed", 6)
    assert seeded["params"]["network"] == again["params"]["network"] != other["params"]["network"]


@pytest.mark.parametrize("args,needle", [
    (["--method", "ts+ls", "--schedule", "on", "--lr", "0.1"], "--schedule off"),
    (["--method", "ts+ce", "--weight-decay", "0.1"], "applies to pts and pts_sctl"),
    (["--method", "ts+ce", "--pts-init", "x.json"], "applies to pts and pts_sctl"),
    (["--method", "pts_sctl", "--pts-init", "/nonexistent/init.json"], "cannot open"),
    (["--method", "ts+fl", "--fl-gamma", "-1"], "--fl-gamma"),
    (["--method", "ts+ls", "--ls-alpha", "2"], "--ls-alpha"),
    (["--method", "ts+sctll"], "--method"),
    (["--method", "ts+ce", "--sctl-norm", "mm"], "applies to +sctl"),
    (["--method", "ts+sctl", "--focal-gradient", "detached"], "applies to +fl"),
    (["--method", "pts_sctl", "--pts-layers", "3"], "applies to pts, not pts_sctl"),
    (["--method", "pts", "--tolerance-change", "0"], "applies to the L-BFGS methods"),
    (["--method", "ts", "--seed", "3"], "applies to the loss-trained methods"),
    (["--method", "ts+ls", "--lr", "-3"], "must be a number > 0"),
    (["--method", "ts+sctl", "--objective", "ece"], "does not apply to ts+sctl"),
    (["--method", "ts+sctl", "--backend", "cuda"], "fitted on the host"),
])
def test_bad_options(calibench, dumps, args, needle):
    proc = calibench("fit", dumps["k3"][0], *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and proc.stdout == "", proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bad_pts_init_and_zero_probability(calibench, dumps, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": [{"weight": [[1.0]], "bias": [0.0]}]}))
    proc = calibench("fit", dumps["k3"][0], "--method", "pts_sctl", "--pts-init", bad)
    assert proc.returncode == 2 and "expected 5 layers" in proc.stderr, proc.stderr
    # A probability dump with an exact zero: log p = -inf has no gradient.
    p = np.full((20, 3), 1 / 3)
    p[7] = [0.5, 0.5, 0.0]
    y = np.zeros(20, dtype=np.int32)
    write_dump(tmp_path / "zero.h5", (p, y), (p, y), 3, probs=True)
    proc = calibench("fit", tmp_path / "zero.h5", "--method", "ts+ce")
    assert proc.returncode == 2, proc.stderr
    assert "zero.h5" in proc.stderr and "/val/probs" in proc.stderr and "[7, 2]" in proc.stderr, proc.stderr


def test_convergence_criterion_option(calibench, dumps):
    path = dumps["k12"][0]
    default, ctx = run_cli(calibench, "fit", path, "--method", "ts+ce")
    strict, ctx2 = run_cli(calibench, "fit", path, "--method", "ts+ce", "--tolerance-change", 0, "--tolerance-grad", 0)
    loose, ctx3 = run_cli(calibench, "fit", path, "--method", "ts+ce", "--tolerance-change", 1e-3)
    runs = [r["params"]["training"][0]["iterations_run"] for r in (loose, default, strict)]
    assert runs[0] <= runs[1] <= runs[2], f"{ctx}: iterations {runs}"
    assert strict["params"]["training"][0]["stop"] in ("max_iter", "directional_derivative"), ctx2
    assert strict["params"]["final_loss"] <= default["params"]["final_loss"] + 1e-12, ctx2
    assert loose["options"]["train"]["tolerance_change"] == 1e-3, ctx3


def test_divergence_is_an_error(calibench, tmp_path):
    """A step that drives t through 0 (lr 1 on a steep loss) or a network temperature of 0 gives
    exit status 2 and one line, never NaN metrics (torch would return them silently)."""
    made = calibench("synth", "--out", tmp_path / "steep.h5", "--classes", 300, "--n-val", 500, "--n-test", 500,
                     "--seed", 3, "--temperature", 0.3, "--logit-scale", 4)
    assert made.returncode == 0, made.stderr
    proc = calibench("fit", tmp_path / "steep.h5", "--method", "ts+ce", "--lr", "1")
    assert proc.returncode == 2 and "<= 0" in proc.stderr and "--lr" in proc.stderr, proc.stderr
    rng = np.random.default_rng(8)
    k = 5
    val = tempered_split(rng, 200, k, 2.0, np.full(k, 2.0))
    write_dump(tmp_path / "k5.h5", val, val, k)
    zero = [{"weight": [[0.0] * 5] * 2, "bias": [0.0, 0.0]}]
    zero += [{"weight": [[0.0, 0.0], [0.0, 0.0]], "bias": [0.0, 0.0]} for _ in range(3)]
    zero += [{"weight": [[0.0, 0.0]], "bias": [0.0]}]
    init = tmp_path / "zero.json"
    init.write_text(json.dumps({"layers": zero}))
    proc = calibench("fit", tmp_path / "k5.h5", "--method", "pts_sctl", "--pts-init", init)
    assert proc.returncode == 2 and "diverged" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
