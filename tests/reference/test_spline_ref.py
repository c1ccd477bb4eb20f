"""Checks of tests/reference/spline_ref.py (spline recalibration, Gupta et al. ICLR 2021).

Part 1 runs the authors' code (kartikgupta-at-anu/spline-calibration at AUTHORS_COMMIT), imported
at test time from an extracted snapshot under /tmp: $SPLINE_CALIBRATION_SRC, else
/tmp/spline-calibration-b6a2f60, else a `git archive` of the fetched bare mirror into a pytest
temporary directory; nothing of theirs is copied into the project. Without any of these (CI), or
without matplotlib (their utilities/spline.py imports it), part 1 skips. Their log_utils imports
bokeh, used only for result tables in do_plots: a stub stands in for it when bokeh is missing.

Part 2 needs only numpy/scipy: the spline basis against scipy's natural CubicSpline, least-squares
optimality, exact cases derived by hand.

Tolerances. The design matrix D (N x K, the spline's values at t_i as a linear map of the knot
values) has condition number below 2.4 for every N >= K, K <= 20 (and full row rank with singular
values near 1 when N < K), so both codes solve the same well-posed least-squares problem and
differ only in rounding (LAPACK gelsd vs gesdd, inv(A) @ B vs solve(A, B), summation order):
measured at most 9e-15 on node values and calibrated confidences of magnitude <= ~2.
ATOL = 1e-13 leaves a 10x margin; a change of formula fails by orders of magnitude (a
t = (i+1)/N grid instead of i/(N-1) moves the nodes by up to 1.5e-2 on these inputs; the
textbook interpolation weights move calibrated values by up to 0.14).
"""
from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spline_ref as ref  # noqa: E402

AUTHORS_COMMIT = "b6a2f603033a3016609b858d3e517d50b703e0ca"
MIRROR = Path("/work/.mirror/kartikgupta-at-anu+spline-calibration/repo")
EXTRACTED = Path("/tmp/spline-calibration-b6a2f60")
ATOL = 1e-13
THEIR_MODULES = ("recalibrate", "utilities", "cal_metrics", "log_utils")


# ----------------------------------------------------------------------------- the authors' code

def _snapshot_dir(tmp_path_factory) -> Path | None:
    for cand in (os.environ.get("SPLINE_CALIBRATION_SRC"), str(EXTRACTED)):
        if cand and (Path(cand) / "recalibrate.py").is_file() and (Path(cand) / "utilities" / "spline.py").is_file():
            return Path(cand)
    if MIRROR.is_dir() and shutil.which("git"):
        out = tmp_path_factory.mktemp("spline-calibration")
        blob = subprocess.run(["git", f"--git-dir={MIRROR}", "archive", AUTHORS_COMMIT],
                              capture_output=True, check=False)
        if blob.returncode == 0:
            with tarfile.open(fileobj=io.BytesIO(blob.stdout)) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(out, filter="data")
                else:
                    tar.extractall(out)
            return out
    return None


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    src = _snapshot_dir(tmp_path_factory)
    if src is None:
        pytest.skip("authors' spline-calibration code not found: set SPLINE_CALIBRATION_SRC to an "
                    f"extracted checkout of kartikgupta-at-anu/spline-calibration@{AUTHORS_COMMIT[:7]}, "
                    f"extract it to {EXTRACTED}, or fetch the mirror to {MIRROR}")
    matplotlib = pytest.importorskip("matplotlib", reason="the authors' utilities/spline.py imports matplotlib")
    matplotlib.use("Agg")
    pytest.importorskip("yaml", reason="the authors' recalibrate.py imports yaml")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in THEIR_MODULES}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(src))
    try:
        try:
            importlib.import_module("bokeh")
        except ImportError:
            stub = types.ModuleType("log_utils")
            stub.ResultsLog = None  # only do_plots uses it
            sys.modules["log_utils"] = stub
        rec = importlib.import_module("recalibrate")
        spl = importlib.import_module("utilities.spline")
        ns = types.SimpleNamespace(rec=rec, Spline=spl.Spline, src=src)
    finally:
        sys.path.remove(str(src))
        for k in [k for k in sys.modules if k.split(".")[0] in THEIR_MODULES]:
            del sys.modules[k]
        sys.modules.update(saved)
    return ns


def their_calibrate(frecal, conf):
    """recalibrate.py do_plots lines 202-204 / 208-210: frecal per sample, then clip."""
    out = np.array([frecal(float(c)) for c in conf])
    out[out < 0.0] = 0.0
    out[out > 1.0] = 1.0
    return out


def their_fit(authors, conf, correct, knots):
    return authors.rec.get_recalibration_function(np.asarray(conf, float), np.asarray(correct, float),
                                                   "natural", knots)


def sample(n, seed, regime):
    rng = np.random.default_rng(seed)
    conf = rng.beta(5, 1.5, n) if regime != "spread" else rng.uniform(0.1, 1.0, n)
    p = {"over": conf**2, "under": np.sqrt(conf), "calibrated": conf, "spread": conf**1.5}[regime]
    return conf, (rng.uniform(size=n) < p).astype(np.float64), rng.uniform(0.0, 1.0, 500)


def assert_parity(authors, conf, correct, test, knots=ref.DEFAULT_KNOTS, sort_kind="quicksort"):
    frecal = their_fit(authors, conf, correct, knots)
    model = ref.fit(conf, correct, knots, sort_kind=sort_kind)
    np.testing.assert_array_equal(model["x"], frecal.x)
    np.testing.assert_allclose(model["y"], frecal.y, rtol=0, atol=ATOL)
    for c in (np.asarray(conf, float), np.asarray(test, float)):
        np.testing.assert_allclose(ref.calibrate(model, c), their_calibrate(frecal, c), rtol=0, atol=ATOL)
    return model, frecal


@pytest.mark.parametrize("regime", ["over", "under", "calibrated", "spread"])
@pytest.mark.parametrize("n", [100, 317, 1000, 3000, 10000])
def test_parity_random(authors, n, regime):
    for seed in range(3 if n <= 3000 else 1):
        conf, correct, test = sample(n, 1000 * n + seed, regime)
        assert_parity(authors, conf, correct, test)


@pytest.mark.parametrize("knots", [2, 3, 4, 10, 20])
def test_parity_knots(authors, knots):
    conf, correct, test = sample(2000, knots, "over")
    assert_parity(authors, conf, correct, test, knots)


def test_parity_spline_coefficients(authors):
    conf, correct, _ = sample(1500, 7, "under")
    s, a = ref.sort_by_confidence(conf, correct)
    t, r = ref.cumulative_curve(s, a)
    kx, ky, m = ref.fit_spline(t, r, 6)
    theirs = authors.Spline(t, r, np.linspace(0.0, 1.0, 6), runout="natural")
    np.testing.assert_allclose(ky, theirs.ky, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.concatenate([m, ky]), theirs.my, rtol=0, atol=1e-11)  # M ~ ky / h^2 = 25 ky
    np.testing.assert_allclose(ref.spline_value(t, kx, ky, m), theirs.evaluate(t), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ref.spline_derivative(t, kx, ky, m), theirs.evaluate_deriv(t), rtol=0, atol=ATOL)


def test_parity_ties(authors):
    """Rounded confidences, test values on the nodes. The fit depends on the order inside a tie
    group; numpy's default argsort (theirs) is not stable, sort_kind='quicksort' repeats it."""
    rng = np.random.default_rng(3)
    conf = np.round(rng.uniform(0.3, 1.0, 3000), 2)
    correct = (rng.uniform(size=3000) < conf**2).astype(float)
    test = np.concatenate([np.unique(conf), rng.choice(conf, 200), [0.0, 0.3, 1.0]])
    assert_parity(authors, conf, correct, test)
    all_tied = np.full(50, 0.7)
    assert_parity(authors, all_tied, (rng.uniform(size=50) < 0.5).astype(float), [0.5, 0.7, 0.9])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7])
def test_parity_tiny(authors, n):
    """N < K: rank-deficient least squares, both take the minimum-norm solution."""
    conf, correct, test = sample(n, n, "spread")
    assert_parity(authors, conf, correct, test)


def test_parity_one_class(authors):
    conf, _, test = sample(800, 11, "spread")
    assert_parity(authors, conf, np.ones(800), test)
    assert_parity(authors, conf, np.zeros(800), test)


def test_their_interpolation_is_swapped(authors):
    """interpolated_function weights y[ind] by beta = x[ind] - c: hand-derived values."""
    f = authors.rec.interpolated_function(np.array([0.2, 0.4, 0.6]), np.array([1.0, 2.0, 3.0]))
    assert f(0.25) == pytest.approx(1.75, abs=1e-15)   # textbook linear: 1.25
    assert f(0.4) == pytest.approx(1.0, abs=1e-15)     # at a node: the value of the previous node
    assert f(0.1) == 1.0 and f(0.6) == 3.0 and f(0.7) == 3.0
    model = {"x": [0.2, 0.4, 0.6], "y": [1.0, 2.0, 3.0]}
    np.testing.assert_allclose(ref.interpolate(np.array(model["x"]), np.array(model["y"]),
                                               np.array([0.1, 0.25, 0.4, 0.5, 0.6, 0.7])),
                               [1.0, 1.75, 1.0, 2.5, 3.0, 3.0], rtol=0, atol=1e-15)


def test_defaults_in_their_main(authors):
    import inspect
    main = inspect.getsource(authors.rec.main)
    assert "methods = ['natural']" in main and "range(6, 7)" in main
    assert ref.DEFAULT_KNOTS == 6


def test_parity_top_results(authors):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.full(7, 0.6), 400)
    labels = rng.integers(0, 7, 400)
    c, a = authors.rec.get_top_results(probs, labels, -1)
    mc, ma = ref.top_label(probs, labels)
    np.testing.assert_array_equal(mc, c)
    np.testing.assert_array_equal(ma, a)
    c2, a2 = authors.rec.get_top_results(probs, labels, -2, inclusive=True)
    m2, b2 = ref.within_top_k(probs, labels, 2)
    np.testing.assert_allclose(m2, c2, rtol=0, atol=4e-16)  # two-term sums in another order
    np.testing.assert_array_equal(b2, a2)


# ----------------------------------------------------------------------------- no authors' code

@pytest.mark.parametrize("knots", [2, 3, 6, 11])
def test_basis_is_scipy_natural_cubic_spline(knots):
    rng = np.random.default_rng(knots)
    kx, h = ref.knot_grid(knots)
    ky = rng.normal(size=knots)
    m = ref.second_derivative_map(knots, h) @ ky
    cs = CubicSpline(kx, ky, bc_type="natural")
    x = np.concatenate([rng.uniform(-0.1, 1.1, 400), kx])  # outside [0, 1]: end cubics continued
    np.testing.assert_allclose(ref.spline_value(x, kx, ky, m), cs(x), rtol=0, atol=1e-13)
    np.testing.assert_allclose(ref.spline_derivative(x, kx, ky, m), cs(x, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(m, cs(kx, 2), rtol=0, atol=1e-11)  # |M| up to ~6 |ky| / h^2


@pytest.mark.parametrize("n", [6, 100, 5000])
def test_exact_spline_target_is_recovered(n):
    """The cumulative curve is reproduced (at the knots and everywhere) when it is a spline."""
    rng = np.random.default_rng(n)
    kx = np.linspace(0, 1, 6)
    ky = rng.normal(scale=0.1, size=6)
    t = np.linspace(0, 1, n)
    _, fitted, m = ref.fit_spline(t, CubicSpline(kx, ky, bc_type="natural")(t), 6)
    np.testing.assert_allclose(fitted, ky, rtol=0, atol=1e-14)


def test_least_squares_normal_equations():
    conf, correct, _ = sample(4000, 2, "over")
    s, a = ref.sort_by_confidence(conf, correct)
    t, r = ref.cumulative_curve(s, a)
    kx, ky, m = ref.fit_spline(t, r, 6)
    resid = ref.spline_value(t, kx, ky, m) - r
    d = np.stack([CubicSpline(kx, e, bc_type="natural")(t) for e in np.eye(6)], axis=1)
    g = d.T @ resid
    assert np.max(np.abs(g)) < 1e-13 * np.linalg.norm(d) * np.linalg.norm(r)
    # perturbing any knot value raises the sum of squares
    base = resid @ resid
    for e in np.eye(6):
        for sgn in (1e-6, -1e-6):
            rr = d @ (ky + sgn * e) - r
            assert rr @ rr > base


def test_two_knots_is_a_straight_line():
    conf, correct, test = sample(700, 4, "under")
    model = ref.fit(conf, correct, knots=2)
    s, a = ref.sort_by_confidence(conf, correct)
    t, r = ref.cumulative_curve(s, a)
    slope = np.polyfit(t, r, 1)[0]
    np.testing.assert_allclose(np.array(model["y"]) - s, slope, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n", [6, 50, 2000])  # N >= K: full rank; N < K is min-norm, not exact
@pytest.mark.parametrize("shift", [0.0, 0.1, -0.25])
def test_constant_gap_gives_shrunk_shift(n, shift):
    """Soft correctness a = s + shift: r_i = shift (i + 1)/N is linear in t_i = i/(N - 1), so the
    fit is exact and S' = shift (N - 1)/N: the nodes are s + shift (N - 1)/N, not s + shift
    (t spans [0, 1] with N - 1 steps while the cumulative sums are divided by N). shift = 0 is
    input calibrated in expectation: the nodes are the confidences themselves."""
    rng = np.random.default_rng(n)
    conf = np.sort(rng.uniform(0.3, 0.7, n))
    model = ref.fit(conf, conf + shift)
    np.testing.assert_allclose(model["y"], conf + shift * (n - 1) / n, rtol=0, atol=1e-14)
    x = np.array(model["x"])
    if shift == 0.0:
        # the authors' interpolation maps a node to the previous node, the linear one to itself
        np.testing.assert_allclose(ref.calibrate(model, x[1:-1]), x[:-2], rtol=0, atol=1e-15)
        np.testing.assert_allclose(ref.calibrate(model, x, interpolation="linear"), x, rtol=0, atol=1e-15)
        mid = 0.25 * x[1:] + 0.75 * x[:-1]
        np.testing.assert_allclose(ref.calibrate(model, mid), x[1:] + x[:-1] - mid, rtol=0, atol=1e-15)


def test_permutation_invariance_without_ties():
    conf, correct, test = sample(1000, 9, "spread")
    perm = np.random.default_rng(0).permutation(1000)
    a, b = ref.fit(conf, correct), ref.fit(conf[perm], correct[perm])
    assert a == b
    np.testing.assert_array_equal(ref.calibrate(a, test), ref.calibrate(b, test))


def test_tie_order_changes_the_fit():
    """Documented dependence: the same tied data in another order gives another model (here
    the correct samples first vs last inside each tie group; stable sort keeps input order)."""
    conf = np.repeat(np.linspace(0.5, 0.95, 10), 30)
    a = ref.fit(conf, np.tile(np.r_[np.ones(20), np.zeros(10)], 10))
    c = ref.fit(conf, np.tile(np.r_[np.zeros(10), np.ones(20)], 10))
    assert a["x"] == c["x"]
    assert np.max(np.abs(np.array(a["y"]) - np.array(c["y"]))) > 1e-3


def test_output_range_and_json_roundtrip():
    conf, correct, test = sample(300, 1, "over")
    correct[np.argsort(conf)[:60]] = 0.0  # the 60 least confident all wrong: the nodes dip below 0
    model = ref.fit(conf, correct)
    raw = np.array(model["y"])
    assert raw.min() < 0.0
    np.testing.assert_array_equal(ref.calibrate(model, [conf.min()]), [0.0])
    back = json.loads(json.dumps(model))
    out = ref.calibrate(back, np.concatenate([test, [-1.0, 0.0, 1.0, 2.0]]))
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, ref.calibrate(model, np.concatenate([test, [-1.0, 0.0, 1.0, 2.0]])))
    small = ref.fit(conf[:1], correct[:1])  # N = 1: the first node value everywhere
    assert np.all(ref.calibrate(small, test) == np.clip(small["y"][0], 0, 1))


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        ref.fit(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        ref.fit(np.array([0.5, np.nan]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError):
        ref.fit(np.array([0.5, 0.6]), np.array([1.0, 0.0]), knots=1)
    model = ref.fit(np.array([0.5, 0.6, 0.7]), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError):
        ref.calibrate(model, np.array([np.nan]))
