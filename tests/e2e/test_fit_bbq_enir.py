"""BBQ and ENIR (`fit --method bbq|enir`, netcal 1.4.0's defaults; docs/calibrators.md,
docs/ports/bbq_enir.md) against tests/reference/netcal_binning_ref.py, the float64 port of netcal
(equal to netcal itself with its float32 log-likelihood plugged in, in
tests/reference/test_netcal_binning_ref.py): the kept models and their weights, the calibrated
probabilities of the binary mode (K = 2, binary dumps), the top-label mode (K > 2) and
one-vs-rest (netcal's own multiclass mode, on rows whose calibrated values do not all vanish),
ties and scores on bin edges, a real dump, `apply`, and the refusals."""
import sys

import h5py
import numpy as np
import pytest
from scipy.special import softmax

from conftest import REPO
from fit_helpers import run_cli, softmax_splits, write_dump, write_splits  # noqa: E402
from fit_helpers import tempered_split as make_split  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "reference"))
import netcal_binning_ref as nb  # noqa: E402

# The models are the same (edges, groups, values: one division of integer counts on both sides);
# the weights go through exp of score differences, where glibc's and numpy's exp and log may
# differ by an ulp (seen: 6e-14 in the weights, 1e-14 in the probabilities).
TOL = 1e-12
REAL = REPO.parent / "shared" / "data" / "real" / "h5" / "wasscal_cifar10_resnet20.h5"


def fit_ref(method, p, y):
    if method == "bbq":
        return nb.bbq_fit(p, y)
    return nb.enir_fit(p, y, sort_kind="stable")


def predict_ref(method, model, p):
    return (nb.bbq_predict if method == "bbq" else nb.enir_predict)(model, p)


def saved(calibench, path, tmp_path, method, *extra):
    out, ctx = run_cli(calibench, "fit", path, "--method", method, "--save", tmp_path / "cal.h5", *extra)
    with h5py.File(tmp_path / "cal.h5") as f:
        return out, f["test/probs"][:], ctx


def check_model(got, want, ctx):
    assert len(got["models"]) == len(want["models"]), (ctx, len(got["models"]), len(want["models"]))
    for g, w in zip(got["models"], want["models"]):
        for key in w:
            assert np.allclose(g[key], w[key], rtol=0, atol=1e-15), (ctx, key)
    assert np.max(np.abs(np.asarray(got["weights"]) - want["weights"])) <= TOL, ctx


@pytest.mark.parametrize("method", ["bbq", "enir"])
@pytest.mark.parametrize("seed, n, tau", [(1, 2000, 2.0), (2, 300, 0.5), (3, 5000, 1.3)])
def test_binary_mode_equals_the_reference(calibench, tmp_path, method, seed, n, tau):
    rng = np.random.default_rng(seed)
    val, test = make_split(rng, n, 2, 2.5, np.full(2, tau)), make_split(rng, 800, 2, 2.5, np.full(2, tau))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 2)
    out, q, ctx = saved(calibench, path, tmp_path, method)
    pv, pt = softmax(val[0].astype(np.float64), 1)[:, 1], softmax(test[0].astype(np.float64), 1)[:, 1]
    want = fit_ref(method, pv, val[1])
    assert out["params"]["multiclass"] == "binary", ctx
    check_model(out["params"], want, ctx)
    assert np.max(np.abs(q[:, 1] - predict_ref(method, want, pt))) <= TOL, ctx
    assert np.max(np.abs(q.sum(1) - 1)) <= 1e-15, ctx


@pytest.mark.parametrize("method", ["bbq", "enir"])
def test_binary_dump(calibench, tmp_path, method):
    # /<split>/probs [N] = P(class 1): the score itself.
    rng = np.random.default_rng(4)
    p = np.round(rng.beta(2, 2, size=3000), 3)  # ties, and scores on the bin edges j / b
    p[:20] = [0.0, 1.0, 0.5, 0.25, 0.2, 0.1] * 3 + [0.0, 1.0]
    y = (rng.random(3000) < p ** 1.5).astype(np.int32)
    path = write_splits(tmp_path / "b.h5", {"val": (p[:2000], y[:2000]), "test": (p[2000:], y[2000:])}, kind="probs")
    out, q, ctx = saved(calibench, path, tmp_path, method)
    want = fit_ref(method, p[:2000], y[:2000])
    check_model(out["params"], want, ctx)
    assert np.max(np.abs(q[:, 1] - predict_ref(method, want, p[2000:]))) <= TOL, ctx


@pytest.mark.parametrize("method", ["bbq", "enir"])
@pytest.mark.parametrize("k", [3, 10])
def test_top_label_mode(calibench, tmp_path, method, k):
    rng = np.random.default_rng(10 + k)
    val, test = make_split(rng, 3000, k, 2.5, np.full(k, 2.0)), make_split(rng, 800, k, 2.5, np.full(k, 2.0))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    out, q, ctx = saved(calibench, path, tmp_path, method)
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    want = fit_ref(method, pv.max(1), (pv.argmax(1) == val[1]).astype(np.int64))
    assert out["params"]["multiclass"] == "top-label", ctx
    check_model(out["params"], want, ctx)
    rows, pred = np.arange(len(pt)), pt.argmax(1)
    assert np.max(np.abs(q[rows, pred] - predict_ref(method, want, pt.max(1)))) <= TOL, ctx
    uncal, _ = run_cli(calibench, "eval", path)
    assert out["test"]["accuracy"] == uncal["accuracy"], ctx


@pytest.mark.parametrize("method", ["bbq", "enir"])
def test_one_vs_rest_is_netcal_multiclass(calibench, tmp_path, method):
    rng = np.random.default_rng(21)
    k = 4
    val, test = make_split(rng, 3000, k, 2.5, np.full(k, 1.7)), make_split(rng, 800, k, 2.5, np.full(k, 1.7))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, k)
    out, q, ctx = saved(calibench, path, tmp_path, method, "--multiclass", "one-vs-rest")
    pv, pt = softmax(val[0].astype(np.float64), 1), softmax(test[0].astype(np.float64), 1)
    want, models = nb.one_vs_rest(nb.bbq_fit if method == "bbq" else
                                  (lambda p, y: nb.enir_fit(p, y, sort_kind="stable")),
                                  nb.bbq_predict if method == "bbq" else nb.enir_predict, pv, val[1], pt,
                                  floor=0.0 if method == "bbq" else nb.EPS, return_models=True)
    for c, m in models.items():
        check_model(out["params"]["classes"][c], m, f"{ctx} class {c}")
    live = np.isfinite(want).all(1) & (want.sum(1) > 0)
    assert live.mean() > 0.99, live.mean()
    assert np.max(np.abs(q[live] - want[live])) <= TOL, ctx
    # Rows whose calibrated values are all 0: uniform (scikit-learn's rule; netcal gives NaN for
    # BBQ and 0s for ENIR).
    assert np.allclose(q[~live], 1.0 / k), ctx


@pytest.mark.parametrize("method", ["bbq", "enir"])
def test_real_dump(calibench, tmp_path, method):
    if not REAL.exists():
        pytest.skip(f"{REAL} absent")
    pv, yv, pt = softmax_splits(REAL)
    out, q, ctx = saved(calibench, REAL, tmp_path, method)
    want = fit_ref(method, pv.max(1), (pv.argmax(1) == yv).astype(np.int64))
    check_model(out["params"], want, ctx)
    # The real dump's confidences crowd below 1: an ulp between calibench's softmax and scipy's can
    # move a test confidence across a bin edge or group bound.
    got = q[np.arange(len(pt)), pt.argmax(1)]
    far = np.abs(got - predict_ref(method, want, pt.max(1))) > TOL
    assert far.mean() < 1e-3, (ctx, far.sum())


@pytest.mark.parametrize("method", ["bbq", "enir"])
def test_apply_gives_the_fit(calibench, tmp_path, method):
    rng = np.random.default_rng(31)
    val, test = make_split(rng, 1000, 5, 2.5, np.full(5, 2.0)), make_split(rng, 700, 5, 2.5, np.full(5, 2.0))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 5)
    for extra in ([], ["--multiclass", "one-vs-rest"]):
        fit, _ = run_cli(calibench, "fit", path, "--method", method, "--save", tmp_path / "cal.h5", *extra)
        applied, _ = run_cli(calibench, "apply", tmp_path / "cal.h5", path)
        assert applied["test"] == fit["test"] and applied["params"] == fit["params"]


def test_enir_refuses_degenerate_data(calibench, tmp_path):
    # Every label equal: netcal's near-isotonic path pools everything into one group and raises.
    p = np.linspace(0.05, 0.95, 200)
    y = np.ones(200, dtype=np.int32)
    path = write_splits(tmp_path / "one.h5", {"val": (p, y), "test": (p, y)}, kind="probs")
    proc = calibench("fit", path, "--method", "enir")
    assert proc.returncode == 2 and "enir" in proc.stderr, proc.stderr
    # BBQ fits it: every bin's fraction is 1, so P(class 1) = 1 everywhere, all correct.
    out, _ = run_cli(calibench, "fit", path, "--method", "bbq")
    assert out["test"]["accuracy"] == 1.0 and out["test"]["ece"] <= 1e-15, out["test"]


def test_binary_fit_refuses_another_k(calibench, tmp_path):
    rng = np.random.default_rng(41)
    path = tmp_path / "k2.h5"
    write_dump(path, make_split(rng, 300, 2, 2.0, np.ones(2)), make_split(rng, 100, 2, 2.0, np.ones(2)), 2)
    run_cli(calibench, "fit", path, "--method", "bbq", "--save", tmp_path / "cal.h5")
    other = tmp_path / "k3.h5"
    write_dump(other, make_split(rng, 50, 3, 2.0, np.ones(3)), make_split(rng, 50, 3, 2.0, np.ones(3)), 3)
    proc = calibench("apply", tmp_path / "cal.h5", other)
    assert proc.returncode == 2 and "bbq was fitted binary (K = 2)" in proc.stderr, proc.stderr


def test_stock_netcal(calibench, tmp_path):
    # netcal itself (the peers' environment): its float32 log-likelihood moves the weights by up to
    # ~3e-6 (docs/ports/bbq_enir.md section 6); a threshold, not a bound, with a wide margin.
    netcal = pytest.importorskip("netcal.binning")
    rng = np.random.default_rng(51)
    val, test = make_split(rng, 2000, 2, 2.5, np.full(2, 1.6)), make_split(rng, 600, 2, 2.5, np.full(2, 1.6))
    path = tmp_path / "d.h5"
    write_dump(path, val, test, 2)
    pv, pt = softmax(val[0].astype(np.float64), 1)[:, 1], softmax(test[0].astype(np.float64), 1)[:, 1]
    for method, cls in (("bbq", netcal.BBQ), ("enir", netcal.ENIR)):
        _, q, ctx = saved(calibench, path, tmp_path, method)
        peer = cls()
        peer.fit(pv, val[1])
        got = np.asarray(peer.transform(pt)).reshape(-1)
        assert np.max(np.abs(q[:, 1] - got)) <= 1e-4, (ctx, np.max(np.abs(q[:, 1] - got)))

