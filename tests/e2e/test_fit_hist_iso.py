# `calibench fit --method hist|iso|cir` and `calibench apply` of the saved calibrators against the
# naive reference tests/reference/hist_iso_ref.py (and sklearn's IsotonicRegression and
# cir-model's CenteredIsotonicRegression behind it, where they import):
# random logit dumps of several seeds and shapes, adversarial probability dumps (confidences
# exactly on bin edges and equal to 1, tied confidences, all or no predictions correct, N below
# the number of bins) and two real dumps when ../shared/data is present.  The CLI's parameters
# must equal the reference's, its val/test metrics the reference's metrics of those parameters,
# and the accuracy the uncalibrated one.  Seeds, shapes and the command are printed on failure.
import json
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO
from test_fit_reference import (Case, close, compare_inversions, compare_metrics, make_split, near_edge,
                                snapped, write_dump)

sys.path.insert(0, str(REPO / "tests" / "reference"))
import calib_ref as ref  # noqa: E402
import hist_iso_ref as hr  # noqa: E402

# Metrics of given parameters: float64 on both sides from the same inputs, sums in another order.
METRIC_TOL = 1e-9
# Fitted parameters: bin accuracies and block means are one division of two integer counts on
# both sides, knots are input confidences; they can differ only through the confidences of a
# logit dump (the CLI's softmax sums and exp against numpy's, a few ulps).
PARAM_TOL = 1e-9
# The reference's isotonic function against sklearn's predict: sklearn averages y per distinct
# x and pools blocks with sums of (weight x rounded mean), so its levels carry ~N ulps of rounding.
SKLEARN_TOL = 1e-10

REAL_DIR = REPO.parent / "shared" / "data" / "real" / "h5"
REAL_DUMPS = ["medmnist_pneumoniamnist_resnet50.h5", "nncal_densenet40_c10.h5"]

RANDOM = {c.name: c for c in [
    Case("n50_k2", 11, 50, 2, 2.0),
    Case("n500_k3", 12, 500, 3, 3.0),
    Case("n2000_k10", 13, 2000, 10, 4.0),
    Case("ties_n500_k10", 14, 500, 10, 3.0, "ties"),
    Case("small_n12_k3", 15, 12, 3, 3.0),        # N < M: empty bins
    Case("noise_n300_k3", 17, 300, 3, 2.5, "noise"),
]}


def probs_split(rng, variant, n, k):
    """Probability rows whose top value is chosen by `variant`; the rest split evenly over the
    other classes; the top class at a random index; labels by `variant`."""
    if variant == "edges":
        # Exactly on the edges i/15 and i/10 (bin edges of M = 15 and 10), and exactly 1.
        levels = np.array([i / 15.0 for i in range(6, 16)] + [i / 10.0 for i in range(4, 11)])
    elif variant in ("ties", "all_correct", "none_correct", "tiny"):
        levels = np.array([0.4, 0.5, 0.6, 0.75, 0.9, 0.9, 1.0])
    else:
        raise ValueError(variant)
    top = levels[rng.integers(0, len(levels), size=n)]
    pred = rng.integers(0, k, size=n)
    p = np.repeat(((1.0 - top) / (k - 1))[:, None], k, axis=1)
    p[np.arange(n), pred] = top
    hit = rng.random(n) < top
    if variant == "all_correct":
        hit[:] = True
    elif variant == "none_correct":
        hit[:] = False
    wrong = (pred + rng.integers(1, k, size=n)) % k
    y = np.where(hit, pred, wrong)
    return p, y.astype(np.int32)


PROB_CASES = {  # name -> (seed, variant, N, K)
    "edges_k3": (41, "edges", 600, 3),
    "ties_k4": (42, "ties", 400, 4),
    "all_correct_k3": (43, "all_correct", 200, 3),
    "none_correct_k5": (44, "none_correct", 200, 5),
    "tiny_n8_k3": (45, "tiny", 8, 3),                 # N < M = 15
}


def write_probs_dump(path, name):
    seed, variant, n, k = PROB_CASES[name]
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = k
        for split in ("val", "test"):
            p, y = probs_split(rng, variant, n, k)
            f[f"{split}/probs"] = p
            f[f"{split}/labels"] = y


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """name -> (path, description)."""
    root = tmp_path_factory.mktemp("hist_iso_dumps")
    out = {}
    for c in RANDOM.values():
        rng = np.random.default_rng(c.seed)
        tau = 1.5 * np.exp(0.3 * rng.normal(size=c.k))
        path = root / f"{c.name}.h5"
        write_dump(path, make_split(rng, c, tau), make_split(rng, c, tau), c.k)
        out[c.name] = (path, c.describe())
    for name, (seed, variant, n, k) in PROB_CASES.items():
        path = root / f"{name}.h5"
        write_probs_dump(path, name)
        out[name] = (path, f"case {name}: probabilities, seed={seed} variant={variant} N={n} K={k}")
    for name in REAL_DUMPS:
        if (REAL_DIR / name).exists():
            out[name] = (REAL_DIR / name, f"real dump {REAL_DIR / name}")
    return out


def dump_of(dumps, name):
    if name not in dumps:
        pytest.skip(f"{REAL_DIR / name} absent")
    return dumps[name]


def run_cli(calibench, describe, *args):
    cmd = [str(a) for a in args] + ["--format", "json"]
    ctx = f"{describe}\n  command: calibench {' '.join(cmd)}"
    proc = calibench(*cmd)
    assert proc.returncode == 0, f"{ctx}\n  exit {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout), ctx


def check_split(got, cal, bins, binning, ctx, what):
    """The CLI's metrics vs the reference's on calibrated split `cal`; a value within
    EDGE_NEAR of an evaluation bin edge may fall on either side (test_fit_reference.snapped)."""
    want = ref.compute_metrics(cal, bins, binning)
    if near_edge(cal, bins):
        for alt in [want] + [ref.compute_metrics(snapped(cal, bins, up), bins, binning) for up in (False, True)]:
            try:
                compare_metrics(got, alt, METRIC_TOL, ctx, what)
                return
            except AssertionError:
                continue
    compare_metrics(got, want, METRIC_TOL, ctx, what)


def check_report(out, method, params, path, ctx, bins=15, binning="right-closed"):
    """Metrics, order inversions and accuracy of both splits against the reference applying
    `params` (the CLI's own) to the dump at `path`."""
    assert out["method"] == method, ctx
    for split in ("val", "test"):
        base = ref.load_split(str(path), split)
        cal = hr.apply(method, params, base)
        check_split(out[split], cal, bins, binning, ctx, split)
        compare_inversions(out["order_inversions"][split], ref.order_inversions(base.c, cal.c), base.n, ctx, split)
        # Decisions are the uncalibrated ones.
        assert out[split]["accuracy"] == ref.accuracy(base), f"{ctx}\n  {split} accuracy changed"


def check_params(got, want, ctx):
    assert sorted(got) == sorted(want), f"{ctx}\n  params keys {sorted(got)} vs {sorted(want)}"
    for key, w in want.items():
        g = got[key]
        assert len(g) == len(w), f"{ctx}\n  {key}: {len(g)} values, reference {len(w)}\n  CLI {g}\n  ref {w}"
        if key == "counts":
            assert g == w, f"{ctx}\n  counts: CLI {g} vs reference {w}"
        else:
            bad = [i for i, (a, b) in enumerate(zip(g, w)) if not close(a, b, PARAM_TOL)]
            assert not bad, f"{ctx}\n  {key}[{bad[0]}]: CLI {g[bad[0]]!r} vs reference {w[bad[0]]!r}"


FIT_CASES = (
    [(name, m, []) for name in RANDOM for m in ("hist", "iso", "cir")]
    + [("n2000_k10", "hist", ["--calib-bins", 7]), ("n500_k3", "hist", ["--calib-bins", 1]),
       ("n500_k3", "hist", ["--calib-bins", 40])]
    + [(name, m, []) for name in PROB_CASES for m in ("hist", "iso", "cir")]
    + [("edges_k3", "hist", ["--calib-bins", 10])]
    + [(name, m, []) for name in REAL_DUMPS for m in ("hist", "iso", "cir")]
)


@pytest.mark.parametrize("name,method,args", FIT_CASES,
                         ids=[f"{n}-{m}{'-' + '-'.join(map(str, a)) if a else ''}" for n, m, a in FIT_CASES])
def test_fit_matches_reference(calibench, dumps, name, method, args):
    path, describe = dump_of(dumps, name)
    out, ctx = run_cli(calibench, describe, "fit", path, "--method", method, *args)
    bins = int(args[1]) if args else hr.DEFAULT_CALIB_BINS
    want = hr.fit(method, ref.load_split(str(path), "val"), bins)
    check_params(out["params"], want, ctx)
    check_report(out, method, out["params"], path, ctx)


@pytest.mark.parametrize("name", list(RANDOM) + list(PROB_CASES) + REAL_DUMPS)
def test_iso_reference_matches_sklearn(dumps, name):
    # The reference's fitted function is sklearn's: equal predictions on both splits and at
    # the knots, and the same knots where sklearn's rounded levels give the same blocks.
    path, describe = dump_of(dumps, name)
    val = ref.load_split(str(path), "val")
    params = hr.fit_iso(val)
    sk = hr.sklearn_isotonic(val)
    probe = np.concatenate([val.c, ref.load_split(str(path), "test").c, params["x"], [0.0, 1.0]])
    diff = np.max(np.abs(hr.isotonic_at(params["x"], params["y"], probe) - sk.predict(probe)))
    assert diff <= SKLEARN_TOL, f"{describe}\n  reference vs sklearn predict: max difference {diff:.3g}"
    if len(sk.X_thresholds_) == len(params["x"]):
        assert np.array_equal(sk.X_thresholds_, params["x"]), describe


@pytest.mark.parametrize("name", list(RANDOM) + list(PROB_CASES) + REAL_DUMPS)
def test_cir_reference_matches_cir_model(dumps, name):
    # The reference's centered isotonic function is cir-model's (clipped): equal predictions on
    # both splits, at the knots and between them, and the same knots. cir-model groups the
    # samples by sklearn's fitted values, whose block means are rounded float sums: two adjacent
    # blocks of exactly equal mean can stay unpooled there (0.5 beside 0.49999999999999994) and
    # then give two centre points where the exact fit has one block. Where sklearn's groups are
    # not the exact blocks, the peer's own point construction is run on the exact blocks instead
    # (its transform replaced by numpy's interp of the exact knots, exact at every knot).
    cir_model = pytest.importorskip("cir_model")
    path, describe = dump_of(dumps, name)
    val = ref.load_split(str(path), "val")
    params = hr.fit_cir(val)
    exact_blocks = len(hr.isotonic_blocks(val.c, val.correct))
    sklearn_groups = len(np.unique(hr.sklearn_isotonic(val).predict(val.c)))
    if sklearn_groups == exact_blocks:
        peer = hr.cir_model(val)
    else:
        assert sklearn_groups > exact_blocks, f"{describe}\n  sklearn {sklearn_groups} groups, exact {exact_blocks}"
        iso = hr.fit_iso(val)

        class ExactBlocks(cir_model.CenteredIsotonicRegression):
            def _build_cir_points(self, X, sample_weight):
                self.transform = lambda t: np.interp(t, iso["x"], iso["y"])
                try:
                    return super()._build_cir_points(X, sample_weight)
                finally:
                    del self.transform

        peer = ExactBlocks(out_of_bounds="clip").fit(val.c, val.correct)
    x = np.asarray(params["x"])
    probe = np.concatenate([val.c, ref.load_split(str(path), "test").c, x, (x[1:] + x[:-1]) / 2, [0.0, 1.0]])
    diff = np.max(np.abs(hr.isotonic_at(params["x"], params["y"], probe) - peer.predict(probe)))
    assert diff <= SKLEARN_TOL, f"{describe}\n  reference vs cir-model predict: max difference {diff:.3g}"
    assert len(peer.X_thresholds_) == len(x) and np.allclose(peer.X_thresholds_, x, rtol=0, atol=1e-15), \
        f"{describe}\n  knots {peer.X_thresholds_} vs {x}"


def test_cir_model_rounding_split_occurs(dumps):
    # The fallback above is not the rule: on the tie-free dumps sklearn's groups are the exact blocks.
    pytest.importorskip("cir_model")
    same = [name for name in list(RANDOM) + list(PROB_CASES)
            if len(np.unique(hr.sklearn_isotonic(ref.load_split(str(dumps[name][0]), "val")).predict(
                ref.load_split(str(dumps[name][0]), "val").c))) ==
            len(hr.isotonic_blocks(ref.load_split(str(dumps[name][0]), "val").c,
                                   ref.load_split(str(dumps[name][0]), "val").correct))]
    assert len(same) >= len(RANDOM) + len(PROB_CASES) - 2, same


def test_cir_centres_blocks(calibench, dumps):
    # Hand-checked case: confidences 0.5 (miss), 0.6, 0.7 (hit, miss: pooled to 1/2), 0.8 (hit).
    # The blocks are [0.5] mean 0 (kept whole), [0.6, 0.7] mean 1/2 collapsed to x = 0.65, [0.8]
    # mean 1: knots (0.5, 0), (0.65, 0.5), (0.8, 1); iso's are (0.5, 0), (0.6, .5), (0.7, .5), (0.8, 1).
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/cir.h5"
        c = np.array([0.5, 0.6, 0.7, 0.8])
        p = np.stack([c, 1 - c], axis=1)
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "calibench-logits"
            f.attrs["version"] = 1
            f.attrs["num_classes"] = 2
            for split in ("val", "test"):
                f[f"{split}/probs"] = p
                f[f"{split}/labels"] = np.array([1, 0, 1, 0], dtype=np.int32)
        out, ctx = run_cli(calibench, "hand case", "fit", path, "--method", "cir")
        assert out["params"]["x"] == pytest.approx([0.5, 0.65, 0.8], abs=1e-15), ctx
        assert out["params"]["y"] == [0.0, 0.5, 1.0], ctx


def test_hist_empty_bins_and_edges(calibench, dumps):
    # N = 8 < M = 15: empty bins get 0 and test confidences in them map to 0; confidences on
    # edges i/15 go to the bin below (right-closed), 1 to the last bin.
    path, describe = dumps["tiny_n8_k3"]
    out, ctx = run_cli(calibench, describe, "fit", path, "--method", "hist")
    p = out["params"]
    assert p["edges"] == [i / 15.0 for i in range(16)], ctx
    assert sum(p["counts"]) == 8 and all(v == 0.0 for v, c in zip(p["values"], p["counts"]) if c == 0), ctx
    path, describe = dumps["edges_k3"]
    out, ctx = run_cli(calibench, describe, "fit", path, "--method", "hist")
    val = ref.load_split(str(path), "val")
    for i in range(6, 16):
        on_edge = int(np.sum(val.c == i / 15.0)) + int(np.sum((val.c > (i - 1) / 15.0) & (val.c < i / 15.0)))
        assert out["params"]["counts"][i - 1] == on_edge, f"{ctx}\n  bin {i - 1}"


SAVE_CASES = [("n500_k3", "hist"), ("n500_k3", "iso"), ("edges_k3", "hist"), ("none_correct_k5", "iso"),
              ("n2000_k10", "cir"), ("ties_k4", "cir")]


@pytest.mark.parametrize("name,method", SAVE_CASES, ids=[f"{n}-{m}" for n, m in SAVE_CASES])
def test_save_apply_round_trip(calibench, dumps, tmp_path, name, method):
    path, describe = dumps[name]
    saved = tmp_path / "calibrated.h5"
    out, ctx = run_cli(calibench, describe, "fit", path, "--method", method, "--save", saved)
    with h5py.File(saved, "r") as h:
        meta = h.attrs["calibrator"]
        meta = json.loads(meta.decode() if isinstance(meta, bytes) else meta)
        assert meta == {"method": method, "params": out["params"]}, f"{ctx}\n  calibrator attr {meta}"
        for split in ("val", "test"):
            want = hr.apply(method, out["params"], ref.load_split(str(path), split)).p
            got = h[f"{split}/probs"][()]
            assert np.max(np.abs(got - want)) <= METRIC_TOL, f"{ctx}\n  /{split}/probs differ from the reference"
            assert np.allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12), f"{ctx}\n  /{split}/probs rows"
    # Applied to the dump it was fitted on: the fit's report.
    ap, ctx_a = run_cli(calibench, describe, "apply", saved, path)
    assert ap["params"] == out["params"], ctx_a
    for split in ("val", "test"):
        for key in ref.METRIC_KEYS:
            g, w = ap[split][key], out[split][key]
            assert (g is None and w is None) or close(g, w, METRIC_TOL), f"{ctx_a}\n  {split} {key}: {g} vs fit {w}"
    # Applied to another dump, with other evaluation bins.
    other, other_describe = dumps["ties_k4" if name == "none_correct_k5" else "noise_n300_k3"]
    ap, ctx_a = run_cli(calibench, other_describe, "apply", saved, other, "--bins", 10, "--binning", "left-closed")
    check_report(ap, method, out["params"], other, ctx_a, bins=10, binning="left-closed")


def test_hist_rejects_auto_bins(calibench, dumps):
    path, _ = dumps["n50_k2"]
    proc = calibench("fit", path, "--method", "hist", "--calib-bins", "auto")
    assert proc.returncode == 2 and "hist" in proc.stderr, proc.stderr
