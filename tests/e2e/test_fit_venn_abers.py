"""Inductive Venn-ABERS (`fit --method venn_abers`, docs/calibrators.md) against
tests/reference/venn_abers_ref.py (the float64 port of venn-abers 1.5.4, equal to the package
bit for bit in tests/reference/test_venn_abers_ref.py) and, where it is installed (the peers'
environment), the package itself: calibrated probabilities and the (p0, p1) intervals `--save`
writes, on binary dumps, K = 2, 3, 10, tied probabilities, a class absent from /val, one class
present, `apply`, and the refusals."""
import sys

import h5py
import numpy as np
import pytest
from scipy.special import expit, softmax

from conftest import REPO
from fit_helpers import run_cli, write_dump, write_splits  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import venn_abers_ref as va  # noqa: E402

# Every table entry is one division of integers, as in the reference; the coupling's sums of
# reciprocals run in another order than numpy's (seen: 6.7e-16 at K = 10).
TOL = 1e-12


def saved(calibench, path, tmp_path, *extra):
    out, ctx = run_cli(calibench, "fit", path, "--method", "venn_abers", "--save", tmp_path / "cal.h5", *extra)
    with h5py.File(tmp_path / "cal.h5") as f:
        got = {name: f[f"test/{name}"][:] for name in ("probs", "venn_abers_p0", "venn_abers_p1")}
    return out, got, ctx


def check(got, want, ctx):
    for name, w in zip(("venn_abers_p0", "venn_abers_p1", "probs"), want):
        assert got[name].shape == w.shape, (ctx, name, got[name].shape, w.shape)
        assert np.max(np.abs(got[name] - w)) <= TOL, (ctx, name, np.max(np.abs(got[name] - w)))


def random_dump(tmp_path, seed, n, k, tau):
    rng = np.random.default_rng(seed)
    val, test = make_split(rng, n, k, 2.5, np.full(k, tau)), make_split(rng, 900, k, 2.5, np.full(k, tau))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    return path, softmax(val[0].astype(np.float64), 1), val[1], softmax(test[0].astype(np.float64), 1)


def reference(pv, yv, pt):
    if pv.shape[1] == 2:
        p0, p1, p = va.binary(pv[:, 1], yv, pt[:, 1])
        return p0, p1, np.stack([1 - p, p], 1)
    return va.multiclass(pv, yv, pt)


@pytest.mark.parametrize("seed, n, k, tau", [(1, 2000, 2, 2.0), (2, 300, 2, 0.5), (3, 2500, 3, 1.6), (4, 3000, 10, 2.2)])
def test_random_dumps_equal_the_reference(calibench, tmp_path, seed, n, k, tau):
    path, pv, yv, pt = random_dump(tmp_path, seed, n, k, tau)
    out, got, ctx = saved(calibench, path, tmp_path)
    check(got, reference(pv, yv, pt), ctx)
    params = out["params"]
    assert params["multiclass"] == ("binary" if k == 2 else "one-vs-one"), ctx
    if k > 2:
        assert len(params["pairs"]) == k * (k - 1) // 2 and params["classes"] == list(range(k))
    # The interval holds the merged probability of every pair (binary: P(class 1)).
    assert np.all(got["venn_abers_p0"] <= got["venn_abers_p1"])


def test_binary_dump(calibench, tmp_path):
    rng = np.random.default_rng(5)
    yv, yt = rng.integers(0, 2, 1500), rng.integers(0, 2, 800)
    sv, st = 3 * (2 * yv - 1) + 2 * rng.normal(size=1500), 3 * (2 * yt - 1) + 2 * rng.normal(size=800)
    path = write_splits(tmp_path / "b.h5", {"val": (sv, yv), "test": (st, yt)})
    out, got, ctx = saved(calibench, path, tmp_path)
    assert out["binary"] is True, ctx
    pv, pt = expit(sv), expit(st)
    p0, p1, p = va.binary(pv, yv, pt)
    # calibench's P(class 1) of a binary logit is softmax([0, s])_1, an ulp from expit(s):
    # the tables compare scores exactly, so this needs only that no score crosses a validation one.
    assert np.max(np.abs(got["probs"][:, 1] - p)) <= TOL and np.max(np.abs(got["venn_abers_p1"] - p1)) <= TOL, ctx


def test_ties_and_a_class_absent(calibench, tmp_path):
    """Probabilities rounded to 2 decimals (tied pair scores, test scores on validation ones), K = 5
    with class 3 absent from /val: its column is 0 and the rest is the package's 4-column output."""
    rng = np.random.default_rng(6)
    k, n = 5, 2400
    p = np.round(rng.dirichlet(np.full(k, 0.7), size=2 * n), 2) + 0.01
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p]).astype(np.int32)
    pv, yv, pt, yt = p[:n], y[:n].copy(), p[n:], y[n:]
    yv[yv == 3] = 4
    path = tmp_path / "t.h5"
    write_dump(path, (pv, yv), (pt, yt), k, probs=True)
    out, got, ctx = saved(calibench, path, tmp_path)
    p0, p1, want = va.multiclass(pv, yv, pt)
    assert out["params"]["classes"] == [0, 1, 2, 4], ctx
    full = np.zeros((len(pt), k))
    full[:, [0, 1, 2, 4]] = want
    check(got, (p0, p1, full), ctx)


def test_one_class_present(calibench, tmp_path):
    """K = 2, every validation label 0: p0 = 0 and p1 = 1 / (1 + #{s >= t}) (the closed form)."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(400, 2))
    path = tmp_path / "one.h5"
    write_dump(path, (z[:200].astype(np.float32), np.zeros(200, np.int32)),
               (z[200:].astype(np.float32), rng.integers(0, 2, 200).astype(np.int32)), 2)
    _, got, ctx = saved(calibench, path, tmp_path)
    s = softmax(z[:200].astype(np.float32).astype(np.float64), 1)[:, 1]
    t = softmax(z[200:].astype(np.float32).astype(np.float64), 1)[:, 1]
    assert np.all(got["venn_abers_p0"] == 0), ctx
    want = 1 / (1 + (s[None, :] >= t[:, None]).sum(1))
    assert np.max(np.abs(got["venn_abers_p1"] - want)) <= TOL, ctx


def test_apply_gives_the_fit(calibench, tmp_path):
    path, *_ = random_dump(tmp_path, 8, 1200, 4, 1.8)
    fitted, _ = run_cli(calibench, "fit", path, "--method", "venn_abers", "--save", tmp_path / "cal.h5")
    applied, _ = run_cli(calibench, "apply", tmp_path / "cal.h5", path)
    assert applied["test"] == fitted["test"]


def test_refusals(calibench, tmp_path):
    rng = np.random.default_rng(9)
    z = rng.normal(size=(100, 3)).astype(np.float32)
    path = tmp_path / "single.h5"
    write_dump(path, (z, np.full(100, 2, np.int32)), (z, np.zeros(100, np.int32)), 3)
    proc = calibench("fit", path, "--method", "venn_abers")
    assert proc.returncode == 2 and "at least two classes" in proc.stderr, proc.stderr
    p = np.tile([0.5, 0.5, 0.0, 0.0], (50, 1))
    y = np.tile([0, 1, 2, 3, 0], 10).astype(np.int32)
    p[y == 2] = [0.2, 0.2, 0.6, 0.0]
    p[y == 3] = [0.2, 0.2, 0.0, 0.6]
    path = tmp_path / "zero.h5"
    write_dump(path, (p, y), (p, y), 4, probs=True)
    proc = calibench("fit", path, "--method", "venn_abers")
    assert proc.returncode == 2 and "both have probability 0" in proc.stderr and "row" in proc.stderr, proc.stderr
    proc = calibench("fit", path, "--method", "venn_abers", "--calib-bins", "5")
    assert proc.returncode == 2 and "--calib-bins applies to" in proc.stderr


def test_venn_abers_package(calibench, tmp_path):
    """The package itself (peers' environment): VennAbersCalibrator's calibrator-only path."""
    pkg = pytest.importorskip("venn_abers")
    for seed, k in ((10, 2), (11, 4)):
        path, pv, yv, pt = random_dump(tmp_path, seed, 1500, k, 1.7)
        _, got, ctx = saved(calibench, path, tmp_path)
        want, p0p1 = pkg.VennAbersCalibrator(inductive=True).predict_proba(p_cal=pv, y_cal=yv, p_test=pt,
                                                                           p0_p1_output=True)
        assert np.max(np.abs(got["probs"] - want)) <= TOL, ctx
        if k == 2:
            assert np.max(np.abs(got["venn_abers_p0"] - p0p1[:, 0])) <= TOL, ctx
            assert np.max(np.abs(got["venn_abers_p1"] - p0p1[:, 1])) <= TOL, ctx


@pytest.mark.parametrize("k", [2, 4])
def test_python_outputs_are_the_saved_intervals(calibench, tmp_path, k):
    # calibench.fit("venn_abers", ...).outputs(logits): the (p0, p1) tables that `fit --save`
    # writes, [N] for K = 2 and [N, pairs] above; transform gives the merged probabilities.
    cb = pytest.importorskip("calibench")
    path, pv, yv, pt = random_dump(tmp_path, 20 + k, 1200, k, 1.8)
    _, got, ctx = saved(calibench, path, tmp_path)
    with h5py.File(path) as f:
        zv, zt = f["val/logits"][:], f["test/logits"][:]
    cal = cb.fit("venn_abers", zv, yv)
    out = cal.outputs(zt)
    assert sorted(out) == ["venn_abers_p0", "venn_abers_p1"], out.keys()
    for name in out:
        assert out[name].shape == got[name].shape and np.array_equal(out[name], got[name]), (ctx, name)
    assert np.array_equal(cal.transform(zt), got["probs"]), ctx
    check(got, reference(pv, yv, pt), ctx)
    # Methods without extra outputs give an empty dict.
    assert cb.fit("ts", zv, yv).outputs(zt) == {}
