"""Top-versus-All temperature scaling (`fit --method ts --objective tva`, Le Coz et al. NeurIPS
2024; docs/calibrators.md, docs/ports/tva.md) against tests/reference/tva_ref.py (the float64
port of the authors' TS_tva loss, allglc/tva-calibration b420bcf, checked against their PyTorch
loop in tests/reference/test_tva_ref.py): the temperature on random dumps of several shapes,
K = 2 (where the TvA loss is the NLL), the bounds (all correct, all wrong), constant rows,
probability dumps with zeros, a real dump, the decisions kept, and the refusals; then vs_tva and
ms_odir_tva (the authors' VS_reg_tva / Dir-ODIR_reg_tva Adam loop) against the reference's port of
that loop, with and without the penalty, other epochs, save / apply, a real dump."""
import sys

import numpy as np
import pytest

from conftest import REPO
from fit_helpers import run_cli, write_dump  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import tva_ref  # noqa: E402

# Both find the same sign change of dF/db on the same log grid and refine it with the same
# Brent steps to 4 eps; the derivative's float64 sums run in another order (a few ulps), which
# moves the root by about ulps / F'' (seen below 1e-13 relative).
T_TOL = 1e-9
REAL = REPO.parent / "shared" / "data" / "real" / "h5" / "wasscal_cifar100_resnet56.h5"


def fit_t(calibench, path):
    out, ctx = run_cli(calibench, "fit", path, "--method", "ts", "--objective", "tva")
    return out, out["params"]["temperature"], ctx


@pytest.mark.parametrize("seed, n, k, tau", [(1, 2000, 10, 2.0), (2, 800, 3, 0.6), (3, 3000, 30, 1.4),
                                             (4, 1500, 100, 2.5), (5, 300, 5, 4.0)])
def test_random_dumps_equal_the_reference(calibench, tmp_path, seed, n, k, tau):
    rng = np.random.default_rng(seed)
    val, test = make_split(rng, n, k, 2.5, np.full(k, tau)), make_split(rng, 500, k, 2.5, np.full(k, tau))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    out, t, ctx = fit_t(calibench, path)
    want = tva_ref.ts_tva_fit(val[0].astype(np.float64), val[1])
    assert abs(t / want - 1) <= T_TOL, (ctx, t, want)
    # The decisions are the uncalibrated ones.
    uncal, _ = run_cli(calibench, "eval", path)
    assert out["test"]["accuracy"] == uncal["accuracy"], ctx
    # The TvA temperature is not the NLL one (TvA ignores which wrong class is the label).
    nll, _ = run_cli(calibench, "fit", path, "--method", "ts")
    if k > 2:
        assert abs(nll["params"]["temperature"] / t - 1) > 1e-6, (t, nll["params"])


def test_k2_is_the_nll_temperature(calibench, tmp_path):
    # K = 2: the only other class is the label of every wrong row, so the loss is the NLL.
    rng = np.random.default_rng(6)
    val, test = make_split(rng, 1500, 2, 2.5, np.full(2, 1.8)), make_split(rng, 300, 2, 2.5, np.full(2, 1.8))
    path = tmp_path / "k2.h5"
    write_dump(path, val, test, 2)
    _, t, ctx = fit_t(calibench, path)
    nll, _ = run_cli(calibench, "fit", path, "--method", "ts")
    assert abs(t / nll["params"]["temperature"] - 1) <= 1e-9, (ctx, t, nll["params"])


@pytest.mark.parametrize("kind, want", [("all_correct", 1e-8), ("all_wrong", 1e8)])
def test_bounds(calibench, tmp_path, kind, want):
    # Every prediction right: F falls to 0 as T -> 0; every one wrong: F falls as T -> infinity.
    rng = np.random.default_rng(7)
    z = rng.normal(size=(200, 4)).astype(np.float32)
    top = z.argmax(1)
    y = top if kind == "all_correct" else (top + 1) % 4
    path = tmp_path / "b.h5"
    write_dump(path, (z, y.astype(np.int32)), (z, y.astype(np.int32)), 4)
    _, t, ctx = fit_t(calibench, path)
    assert abs(t / want - 1) <= 1e-12 and abs(tva_ref.ts_tva_fit(z.astype(np.float64), y) / want - 1) <= 1e-12, ctx


def test_constant_rows(calibench, tmp_path):
    # Equal logits in every row: F does not depend on T; the reference's rule returns 1.
    z = np.zeros((50, 3), dtype=np.float32)
    y = np.arange(50, dtype=np.int32) % 3
    path = tmp_path / "c.h5"
    write_dump(path, (z, y), (z, y), 3)
    _, t, ctx = fit_t(calibench, path)
    assert t == 1.0 and tva_ref.ts_tva_fit(z.astype(np.float64), y) == 1.0, ctx


def test_probability_dump_with_zeros(calibench, tmp_path):
    # A probability 0 on another class (log 0 = -inf) carries no mass; on the label it does not
    # matter either (unlike the NLL, which refuses it).
    rng = np.random.default_rng(8)
    k, n = 5, 1500
    p = rng.dirichlet(np.full(k, 0.4), size=2 * n)
    p[rng.random(p.shape) < 0.2] = 0.0
    top = p.argmax(1)
    p[np.arange(2 * n), top] += 0.05
    p[np.arange(2 * n), (top + 1) % k] += 0.01  # some mass beside the top in every row
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, k, 2 * n).astype(np.int32)
    hit = rng.random(2 * n) < p.max(1)
    y = np.where(hit, p.argmax(1), y).astype(np.int32)
    path = tmp_path / "p.h5"
    write_dump(path, (p[:n], y[:n]), (p[n:], y[n:]), k, probs=True)
    _, t, ctx = fit_t(calibench, path)
    # The reference has no rule for -inf (its chain rule forms 0 * -inf): a log-probability of
    # -1e4 carries no mass at the b = 1/T where the root lies (exp(-1e4 b) underflows for b > 0.08).
    with np.errstate(divide="ignore"):
        want = tva_ref.ts_tva_fit(np.maximum(np.log(p[:n]), -1e4), y[:n])
    assert 1 / t > 0.1, t
    assert abs(t / want - 1) <= T_TOL, (ctx, t, want)
    assert np.any(p[:n][np.arange(n), y[:n]] == 0)
    proc = calibench("fit", path, "--method", "ts")
    assert proc.returncode == 2 and "probability 0 on the label" in proc.stderr


def test_real_dump(calibench):
    import h5py
    if not REAL.exists():
        pytest.skip(f"{REAL} absent")
    with h5py.File(REAL) as f:
        zv, yv = f["val/logits"][:].astype(np.float64), f["val/labels"][:].reshape(-1)
    _, t, ctx = fit_t(calibench, REAL)
    want = tva_ref.ts_tva_fit(zv, yv)
    assert abs(t / want - 1) <= T_TOL, (ctx, t, want)


@pytest.mark.parametrize("args, needle", [
    (["--method", "ts", "--objective", "tva", "--grid", "1,2"], "--grid applies to ts --objective ece or adaece"),
    (["--method", "ets", "--objective", "tva"], "--objective tva does not apply to ets"),
    (["--method", "vs", "--objective", "tva"], "--objective tva does not apply to vs"),
    (["--method", "vs_tva", "--grid", "1,2"], "--grid applies to"),
    (["--method", "ts", "--tva-regularisation", "on"], "--tva-regularisation applies to vs_tva and ms_odir_tva"),
    (["--method", "ms_odir_tva", "--tva-regularisation", "maybe"], "--tva-regularisation"),
])
def test_refusals(calibench, tmp_path, args, needle):
    rng = np.random.default_rng(9)
    path = tmp_path / "d.h5"
    write_dump(path, make_split(rng, 100, 3, 2.0, np.ones(3)), make_split(rng, 100, 3, 2.0, np.ones(3)), 3)
    proc = calibench("fit", path, *args)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


def test_row_without_other_mass_is_refused(calibench, tmp_path):
    # A probability row (1, 0, 0): the top-label log-odds is infinite.
    p = np.full((20, 3), 1 / 3)
    p[7] = [1.0, 0.0, 0.0]
    y = np.zeros(20, dtype=np.int32)
    path = tmp_path / "one.h5"
    write_dump(path, (p, y), (p, y), 3, probs=True)
    proc = calibench("fit", path, "--method", "ts", "--objective", "tva")
    assert proc.returncode == 2 and "row 7" in proc.stderr and "finite top-label log-odds" in proc.stderr, proc.stderr


# vs_tva, ms_odir_tva: the authors' Adam loop from the TvA temperature, against the reference's
# port of the same loop (tva_ref.adam, which equals the authors' code run in float64 to 3e-11).
# The same float64 steps with the batch sums in another order: seen below 3e-16 after 200 epochs.
ADAM_TOL = 1e-12


def tva_map_cases():
    return [(1, 1500, 5, "vs_tva", "on"), (2, 2000, 10, "vs_tva", "off"), (3, 700, 3, "ms_odir_tva", "on"),
            (4, 1100, 6, "ms_odir_tva", "off"), (5, 600, 2, "vs_tva", "on")]


@pytest.mark.parametrize("seed, n, k, method, reg", tva_map_cases())
def test_tva_maps_equal_the_authors_loop(calibench, tmp_path, seed, n, k, method, reg):
    rng = np.random.default_rng(seed)
    val, test = make_split(rng, n, k, 2.5, np.full(k, 2.0)), make_split(rng, 400, k, 2.5, np.full(k, 2.0))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    out, ctx = run_cli(calibench, "fit", path, "--method", method, "--tva-regularisation", reg)
    z, y = val[0].astype(np.float64), val[1]
    t0 = tva_ref.ts_tva_fit(z, y)
    p = out["params"]
    if method == "vs_tva":
        w, b = tva_ref.vs_tva_fit(z, y, lam=tva_ref.VS_REG if reg == "on" else 0.0, start_T=t0)
        assert np.max(np.abs(np.asarray(p["weights"]) - w)) <= ADAM_TOL, ctx
        assert p["biases"] == [0.0] * k, ctx
        want = tva_ref.apply_vs((w, b), test[0].astype(np.float64))
    else:
        W, b = tva_ref.dir_tva_fit(z, y, regularization=reg == "on", start_T=t0)
        assert np.max(np.abs(np.asarray(p["matrix"]) - W.ravel())) <= ADAM_TOL, ctx
        assert np.max(np.abs(np.asarray(p["biases"]) - b)) <= ADAM_TOL, ctx
        want = tva_ref.apply_dir((W, b), test[0].astype(np.float64))
    assert p["iterations_run"] == 200 * -(-n // 512), ctx  # Adam steps: epochs x batches
    assert out["test"]["accuracy"] == pytest.approx(np.mean(want.argmax(1) == test[1]), abs=0), ctx


def test_tva_maps_epochs_save_and_apply(calibench, tmp_path):
    rng = np.random.default_rng(6)
    val, test = make_split(rng, 900, 4, 2.5, np.full(4, 1.8)), make_split(rng, 300, 4, 2.5, np.full(4, 1.8))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 4)
    out, ctx = run_cli(calibench, "fit", path, "--method", "vs_tva", "--iterations", 7, "--save", tmp_path / "c.h5")
    z, y = val[0].astype(np.float64), val[1]
    w, _ = tva_ref.vs_tva_fit(z, y, start_T=tva_ref.ts_tva_fit(z, y), epochs=7)
    assert np.max(np.abs(np.asarray(out["params"]["weights"]) - w)) <= ADAM_TOL, ctx
    applied, _ = run_cli(calibench, "apply", tmp_path / "c.h5", path)
    assert applied["test"] == out["test"] and applied["params"] == out["params"]
    # No epochs: the start, 1 / T_tva on every weight.
    zero, _ = run_cli(calibench, "fit", path, "--method", "vs_tva", "--iterations", 0)
    assert np.allclose(zero["params"]["weights"], 1 / tva_ref.ts_tva_fit(z, y), rtol=1e-9, atol=0)


def test_tva_maps_real_dump(calibench):
    import h5py
    real = REPO.parent / "shared" / "data" / "real" / "h5" / "wasscal_cifar10_resnet20.h5"
    if not real.exists():
        pytest.skip(f"{real} absent")
    with h5py.File(real) as f:
        z, y = f["val/logits"][:].astype(np.float64), f["val/labels"][:].reshape(-1)
    out, ctx = run_cli(calibench, "fit", real, "--method", "vs_tva")
    w, _ = tva_ref.vs_tva_fit(z, y, start_T=tva_ref.ts_tva_fit(z, y))
    assert np.max(np.abs(np.asarray(out["params"]["weights"]) - w)) <= ADAM_TOL, ctx
