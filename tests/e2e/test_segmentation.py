# End-to-end tests of `calibench seg-eval` and `calibench synth --segmentation`
# (docs/segmentation.md) against the independent float64 reference tests/reference/seg_ref.py.
#
# (a) hand-written small dumps (float16/32/64 logits and probabilities, several integer label
#     types, foreground touching the image borders, images and groups without foreground, groups
#     of different sizes, ties, confidences exactly on bin edges and exactly 1, probabilities
#     exactly 0) under r = 0, 1, 3, 100 and under the convention options: every number of
#     `seg-eval --format json` equals the reference to 1e-9; the ts temperature equals
#     `calibench fit --method ts` on a classification dump of the val ROI pixels to 1e-9;
# (b) `synth --segmentation` dumps: the same comparison with all four methods, and the synth
#     contract (groups, shapes, perturbed copies, temperature map, augmentations, bytes);
# (c) malformed dumps: status 2, nothing on stdout, one stderr line naming file, dataset, index;
# (d) determinism: identical output twice and with OMP_NUM_THREADS=1 vs 2.
import json
import math
import os
import pathlib
import re
import shlex
import subprocess
import sys

import h5py
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "reference"))
import conventions_ref as cr  # noqa: E402
import seg_ref as sr  # noqa: E402

PREFIX = "calibench: error: "
TOL = 1e-9
TIMEOUT = 120
ALL_METHODS = ("uncalibrated", "ts", "temperature-map", "augmented-mean")
TIMING_KEYS = ("seconds", "pixels_per_second")


# ----------------------------------------------------------------------------- helpers


def run(calibench, *args):
    args = [str(a) for a in args]
    res = calibench(*args, timeout=TIMEOUT)
    res.cmd = "calibench " + " ".join(shlex.quote(a) for a in args)
    return res


def describe(res):
    return (f"\n  command: {res.cmd}\n  returncode: {res.returncode}"
            f"\n  stdout: {res.stdout[:2000]!r}\n  stderr: {res.stderr!r}")


def run_json(calibench, *args):
    res = run(calibench, *args, "--format", "json")
    assert res.returncode == 0, describe(res)
    try:
        return json.loads(res.stdout), res.cmd
    except json.JSONDecodeError as e:  # pragma: no cover - a failure message
        raise AssertionError(f"not JSON ({e}){describe(res)}")


def compare_value(got, want, where):
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {got!r} vs {want!r}"
        for key in want:
            compare_value(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            compare_value(g, w, f"{where}[{i}]")
    elif want is None:
        assert got is None, f"{where}: expected null, got {got!r}"
    elif isinstance(want, str):
        assert got == want, f"{where}: {got!r} vs {want!r}"
    elif isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        assert isinstance(got, int) and got == want, f"{where}: expected {want}, got {got!r}"
    else:
        assert isinstance(got, (int, float)) and got is not None, f"{where}: expected {want!r}, got {got!r}"
        assert math.isclose(got, want, rel_tol=TOL, abs_tol=TOL), \
            f"{where}: expected {want!r}, got {got!r} (diff {got - want:.3g})"


def compare_results(cli_results, want, ctx):
    assert [(r["method"], r["group"]) for r in cli_results] == \
        [(r["method"], r["group"]) for r in want], f"{ctx}\n  results order / entries differ"
    for c, w in zip(cli_results, want):
        if w["roi_pixels"] == 0 and c.get("reliability") == [] and "reliability" in w:
            # Empty ROI: the doc does not say whether the diagram lists the S empty slots (as
            # `eval --reliability` does) or nothing; the CLI prints []. Accept both.
            assert all(s["count"] == 0 for s in w["reliability"])
            w = {key: v for key, v in w.items() if key != "reliability"}
            c = {key: v for key, v in c.items() if key != "reliability"}
        compare_value(c, w, f"{ctx}\n  {w['method']}/{w['group']}")


def write_dump(path, groups, num_classes=None):
    """groups: {name: {dataset: array}}."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["task"] = "segmentation"
        if num_classes is not None:
            f.attrs["num_classes"] = num_classes
        for name, datasets in groups.items():
            g = f.create_group(name)
            for dname, arr in datasets.items():
                g.create_dataset(dname, data=arr)
    return path


def softmax(z, axis=1):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- hand dumps


def hand_labels(b, h, w, pattern):
    """Label maps: 'borders' = foreground touching every border in image 0 and a blob with
    both classes in image 1; 'no-fg-1' = the same with image 1 all background; 'none' =
    background everywhere."""
    y = np.zeros((b, h, w), np.int64)
    if pattern == "none":
        return y
    y[0, 0:3, 0:2] = 1            # top-left corner
    y[0, 2:5, w - 2:w] = 2        # right border
    y[0, h - 1, 4] = 1            # a single pixel on the bottom border
    y[0, 4, 4] = 2
    if b > 1 and pattern == "borders":
        y[1, 3:5, 3:6] = 2
        y[1, 3, 3] = 1
        y[1, 1, 7 % w] = 1
    return y


def hand_group(rng, *, kind, dtype, label_dtype, roi_dtype, temp_channels, temp_dtype,
               aug_dtype, b=2, k=3, h=7, w=9, a=3, pattern="borders", specials=False):
    y = hand_labels(b, h, w, pattern)
    # Labels that a noisy network mostly gets right (a finite, moderate ts temperature).
    onehot = (y[:, None] == np.arange(k)[None, :, None, None]).astype(np.float64)
    z = 2.5 * onehot + rng.normal(0.0, 1.3, (b, k, h, w))
    if specials:
        # Ties (lowest index wins; confidence exactly 1/3 = the bin edge 5/15), a tie between
        # classes 1 and 2, confidence exactly 1 (40 over the rest), probabilities exactly 0
        # (also on the label). All on foreground pixels, so in the ROI for every r.
        z[0, :, 0, 0] = 0.5                      # all equal, label 1
        z[0, :, 4, 4] = (0.0, 1.25, 1.25)        # tie 1/2, label 2
        z[0, :, 2, 8] = (0.0, 0.0, 40.0)         # c == 1.0, label 2
        z[0, :, 3, 8] = (-800.0, 0.0, 0.0)       # p_0 == 0, tie, label 2
        z[0, :, 6, 4] = (0.0, 800.0, 0.0)        # p == (0, 1, 0), label 1
        z[0, :, 1, 0] = (0.0, 800.0, 0.0)        # p == (0, 1, 0), label 1 (corner blob)
        z[0, :, 4, 7] = (0.0, 800.0, 0.0)        # p_y == 0, label 2: probs nll = inf (null)
    z = z.astype(dtype)                          # float16 / float32 rounding, then as stored
    out = {"labels": y.astype(label_dtype)}
    if kind == "logits":
        out["logits"] = z
    else:
        p = softmax(z.astype(np.float64))
        if not specials:
            p = 0.98 * p + 0.02 / k              # no zero probability (ts fits on log p)
        p = p.astype(dtype)
        assert np.all(np.abs(p.astype(np.float64).sum(axis=1) - 1.0) <= 1e-3)
        out["probs"] = p
    out["roi"] = (rng.integers(0, 3, (b, h, w)) * (rng.random((b, h, w)) < 0.6)).astype(roi_dtype)
    out["temperature"] = rng.uniform(0.5, 3.0, (b, temp_channels, h, w)).astype(temp_dtype)
    aug = z.astype(np.float64)[:, None] + rng.normal(0.0, 0.8, (b, a, k, h, w))
    out["augmented_logits"] = aug.astype(aug_dtype)
    return out


HAND_KINDS = {
    "logits-f32": dict(kind="logits", dtype=np.float32, label_dtype=np.uint8, roi_dtype=np.uint8,
                       temp_channels=1, temp_dtype=np.float32, aug_dtype=np.float32),
    "logits-f16": dict(kind="logits", dtype=np.float16, label_dtype=np.int16, roi_dtype=np.int8,
                       temp_channels=3, temp_dtype=np.float16, aug_dtype=np.float16),
    "logits-f64": dict(kind="logits", dtype=np.float64, label_dtype=np.int64, roi_dtype=np.int64,
                       temp_channels=3, temp_dtype=np.float64, aug_dtype=np.float64),
    "probs-f32": dict(kind="probs", dtype=np.float32, label_dtype=np.uint16, roi_dtype=np.uint16,
                      temp_channels=1, temp_dtype=np.float64, aug_dtype=np.float32),
    "probs-f64": dict(kind="probs", dtype=np.float64, label_dtype=np.int32, roi_dtype=np.int32,
                      temp_channels=3, temp_dtype=np.float32, aug_dtype=np.float64),
    "probs-f16": dict(kind="probs", dtype=np.float16, label_dtype=np.uint32, roi_dtype=np.uint64,
                      temp_channels=1, temp_dtype=np.float16, aug_dtype=np.float16),
}


def make_hand_dump(path, name, seed=0):
    """Groups val (foreground in both images), test (image 1 without foreground, specials),
    test_b (no foreground at all), test_a (another size), and a classification group `cls`
    (rank-2 scores: not a segmentation group); B = 2, K = 3, H = 7, W = 9."""
    opts = HAND_KINDS[name]
    rng = np.random.default_rng(seed)
    groups = {
        "val": hand_group(rng, **opts),
        "test": hand_group(rng, **opts, pattern="no-fg-1", specials=True),
        "test_b": hand_group(rng, **opts, pattern="none"),
        "test_a": hand_group(rng, **opts, b=1, h=6, w=5, a=1),
        "cls": {"logits": rng.normal(size=(5, 3)), "labels": np.arange(5) % 3},
    }
    return write_dump(path, groups, num_classes=3)


@pytest.fixture(scope="module")
def hand_dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_hand")
    return {name: make_hand_dump(root / f"{name}.h5", name, seed=i)
            for i, name in enumerate(HAND_KINDS)}


# ----------------------------------------------------------------------------- the ts fit check

_fit_cache = {}


def fit_temperature(calibench, dump, tmp_dir, roi="dilate", r=10, background=0):
    """T of `calibench fit --method ts` on the classification dump of the val ROI pixels."""
    key = (str(dump), roi, r, background)
    if key not in _fit_cache:
        z, y = sr.val_roi_rows(dump, roi, r, background)
        path = sr.write_fit_dump(pathlib.Path(tmp_dir) / f"fit_{len(_fit_cache)}.h5", z, y)
        out, cmd = run_json(calibench, "fit", path, "--method", "ts")
        _fit_cache[key] = (out["params"]["temperature"], int(len(y)), cmd)
    return _fit_cache[key]


def check_seg_eval(calibench, dump, tmp_dir, methods=ALL_METHODS, extra=(), bins=15, conv=None,
                   roi="dilate", r=10, background=0, reliability=False):
    """Run seg-eval, compare every number with the reference; return the CLI's JSON."""
    out, cmd = run_json(calibench, "seg-eval", dump, "--methods", ",".join(methods), *extra)
    ctx = f"command: {cmd}"
    conv = conv or cr.PRESETS["calibench"]
    # options
    opts = out["options"]
    assert opts["bins"] == bins, ctx
    assert opts["roi"] == roi and opts["roi_dilation"] == r and opts["background"] == background, \
        f"{ctx}\n  options {opts}"
    assert opts["methods"] == list(methods), f"{ctx}\n  options {opts}"
    compare_value(opts["conventions"], conv.to_json(), f"{ctx}\n  options.conventions")
    assert out["file"] == str(dump), ctx
    for key in TIMING_KEYS:
        assert isinstance(out[key], (int, float)) and out[key] >= 0, f"{ctx}\n  {key}"
    # ts: T from the CLI, checked against `calibench fit --method ts` on the val ROI pixels
    t = None
    if "ts" in methods:
        ts = out["ts"]
        t = ts["temperature"]
        t_fit, n_fit, fit_cmd = fit_temperature(calibench, dump, tmp_dir, roi, r, background)
        assert ts["fit_group"] == "val" and ts["fit_pixels"] == n_fit, f"{ctx}\n  ts {ts}"
        assert isinstance(ts["backend"], str) and ts["backend"], f"{ctx}\n  ts {ts}"
        assert math.isclose(t, t_fit, rel_tol=TOL, abs_tol=TOL), \
            f"{ctx}\n  ts.temperature {t!r} vs {fit_cmd}: {t_fit!r}"
    else:
        assert "ts" not in out, f"{ctx}\n  'ts' present although ts did not run"
    want = sr.evaluate(dump, methods, bins, conv, roi, r, background, t, reliability)
    compare_results(out["results"], want, ctx)
    return out


# ----------------------------------------------------------------------------- reference self-test


def test_reference_selftest():
    """Dilation by maximum_filter == the literal loops; Dice by hand; method identities."""
    sr.selftest()


# ----------------------------------------------------------------------------- (a) hand dumps


@pytest.mark.parametrize("r", [0, 1, 3, 100])
@pytest.mark.parametrize("name", list(HAND_KINDS))
def test_hand_dumps_all_methods(calibench, hand_dumps, tmp_path, name, r):
    check_seg_eval(calibench, hand_dumps[name], tmp_path, extra=("--roi-dilation", r), r=r)


def test_hand_dump_default_dilation_and_groups(calibench, hand_dumps, tmp_path):
    """Default r = 10; groups val, test, test_a, test_b (the rank-2 group `cls` is not one);
    groups of different sizes; a group without foreground has no ROI pixel (null metrics)."""
    out = check_seg_eval(calibench, hand_dumps["logits-f32"], tmp_path,
                         methods=("uncalibrated", "ts"))
    groups = [r["group"] for r in out["results"]]
    assert groups == ["val", "test", "test_a", "test_b"] * 2
    by = {(r["method"], r["group"]): r for r in out["results"]}
    assert by["uncalibrated", "test_b"]["roi_pixels"] == 0
    assert by["uncalibrated", "test_b"]["ece"] is None
    assert by["uncalibrated", "test_a"]["pixels"] == 30
    assert by["uncalibrated", "test"]["pixels"] == 2 * 7 * 9


# Convention options: (CLI arguments, reference conventions, bins).
CONVENTION_CASES = [
    (("--bins", 7, "--binning", "left-closed"), cr.resolve(binning="left-closed"), 7),
    (("--binning", "torchmetrics"), cr.resolve(binning="torchmetrics"), 15),
    (("--binning", "guo-strict"), cr.resolve(binning="guo-strict"), 15),
    (("--bins", 10, "--classwise-binning", "digitize-linspace"),
     cr.resolve(classwise_binning="digitize-linspace"), 10),
    (("--classwise-reduction", "sum"), cr.resolve(classwise_reduction="sum"), 15),
    (("--brier", "per-class-mean"), cr.resolve(brier="per-class-mean"), 15),
    (("--brier", "top-label"), cr.resolve(brier="top-label"), 15),
    (("--nll-clip", "1e-3"), cr.resolve(nll_clip=1e-3), 15),
    (("--conventions", "dirichlet"), cr.resolve("dirichlet"), 15),
    (("--conventions", "netcal", "--bins", 5), cr.resolve("netcal"), 5),
]


@pytest.mark.parametrize("name", ["logits-f16", "probs-f32"])
@pytest.mark.parametrize("case", range(len(CONVENTION_CASES)))
def test_hand_dump_conventions(calibench, hand_dumps, tmp_path, name, case):
    args, conv, bins = CONVENTION_CASES[case]
    check_seg_eval(calibench, hand_dumps[name], tmp_path, extra=("--roi-dilation", 1, *args),
                   bins=bins, conv=conv, r=1)


ROI_CASES = [
    (("--roi", "all"), dict(roi="all")),
    (("--roi", "stored"), dict(roi="stored")),
    (("--background", 1, "--roi-dilation", 1), dict(background=1, r=1)),
    (("--background", 2, "--roi-dilation", 0), dict(background=2, r=0)),
    (("--roi", "stored", "--background", 2), dict(roi="stored", background=2)),
]


@pytest.mark.parametrize("name", ["logits-f64", "probs-f16"])
@pytest.mark.parametrize("case", range(len(ROI_CASES)))
def test_hand_dump_roi_rules(calibench, hand_dumps, tmp_path, name, case):
    args, kw = ROI_CASES[case]
    check_seg_eval(calibench, hand_dumps[name], tmp_path, extra=args, **kw)


@pytest.mark.parametrize("binning", ["right-closed", "torchmetrics"])
def test_hand_dump_reliability(calibench, hand_dumps, tmp_path, binning):
    check_seg_eval(calibench, hand_dumps["logits-f32"], tmp_path,
                   methods=("uncalibrated", "temperature-map"),
                   extra=("--roi-dilation", 3, "--binning", binning, "--reliability"), r=3,
                   conv=cr.resolve(binning=binning), reliability=True)


def test_hand_dump_single_methods_and_table(calibench, hand_dumps, tmp_path):
    """Each method alone gives the same entries as in the combined run; the table runs."""
    dump = hand_dumps["probs-f64"]
    both = check_seg_eval(calibench, dump, tmp_path, extra=("--roi-dilation", 3), r=3)
    for m in ALL_METHODS:
        one = check_seg_eval(calibench, dump, tmp_path, methods=(m,),
                             extra=("--roi-dilation", 3), r=3)
        assert one["results"] == [r for r in both["results"] if r["method"] == m]
    res = run(calibench, "seg-eval", dump, "--methods", ",".join(ALL_METHODS))
    assert res.returncode == 0 and res.stderr == "", describe(res)
    for g in ("val", "test", "test_a", "test_b", *ALL_METHODS):
        assert g in res.stdout, describe(res)


def test_dice_and_mean_dice_by_hand(calibench, tmp_path):
    """A 1 x 3 x 2 x 3 dump whose Dice is worked out by hand (independent of seg_ref)."""
    # labels       prediction (argmax of the logits)
    #  0 1 1        0 1 2
    #  0 0 0        0 0 0
    y = np.array([[[0, 1, 1], [0, 0, 0]]], np.int32)
    pred = np.array([[[0, 1, 2], [0, 0, 0]]])
    z = np.where(pred[:, None] == np.arange(3)[None, :, None, None], 2.0, 0.0).astype(np.float32)
    dump = write_dump(tmp_path / "dice.h5", {"val": {"logits": z, "labels": y}})
    out, cmd = run_json(calibench, "seg-eval", dump, "--methods", "uncalibrated", "--roi", "all")
    (r,) = out["results"]
    # class 0: TP 3, FP 0, FN 0 -> 1; class 1: TP 1, FN 1 -> 2/3; class 2: FP 1 -> 0
    compare_value(r["dice"], [1.0, 2.0 / 3.0, 0.0], cmd)
    compare_value(r["mean_dice"], 1.0 / 3.0, cmd)
    assert r["roi_pixels"] == 6 and r["pixels"] == 6
    compare_value(r["accuracy"], 5.0 / 6.0, cmd)
    # class 2 neither present nor predicted -> null, and mean_dice over class 1 only
    z2 = np.where(np.array([[[0, 1, 1], [0, 0, 0]]])[:, None] == np.arange(3)[None, :, None, None],
                  2.0, 0.0).astype(np.float32)
    dump2 = write_dump(tmp_path / "dice2.h5", {"val": {"logits": z2, "labels": y}})
    out2, cmd2 = run_json(calibench, "seg-eval", dump2, "--methods", "uncalibrated")
    compare_value(out2["results"][0]["dice"], [1.0, 1.0, None], cmd2)
    compare_value(out2["results"][0]["mean_dice"], 1.0, cmd2)


# ----------------------------------------------------------------------------- (b) synth


SYNTH_ARGS = ("--images", 3, "--height", 24, "--width", 28, "--classes", 3, "--augmentations", 2)
SYNTH_GROUPS = ["val", "test", "test_bias_field", "test_noise", "test_shift"]


def synth(calibench, path, *args):
    res = run(calibench, "synth", "--segmentation", "--out", path, *args)
    assert res.returncode == 0, describe(res)
    return path


@pytest.fixture(scope="module")
def synth_dump(calibench, tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_synth")
    return synth(calibench, root / "synth.h5", *SYNTH_ARGS, "--seed", 7)


@pytest.mark.parametrize("r", [2, 10])
def test_synth_all_methods(calibench, synth_dump, tmp_path, r):
    out = check_seg_eval(calibench, synth_dump, tmp_path, extra=("--roi-dilation", r), r=r)
    assert [x["group"] for x in out["results"]] == SYNTH_GROUPS * 4


def test_synth_conventions(calibench, synth_dump, tmp_path):
    check_seg_eval(calibench, synth_dump, tmp_path,
                   extra=("--conventions", "torchmetrics", "--roi", "all", "--bins", 10),
                   conv=cr.resolve("torchmetrics"), bins=10, roi="all")


def test_synth_contract(calibench, synth_dump, tmp_path):
    b, k, h, w, a = 3, 3, 24, 28, 2
    with h5py.File(synth_dump, "r") as f:
        assert sorted(f) == sorted(SYNTH_GROUPS)
        assert int(f.attrs["num_classes"]) == k
        for g in SYNTH_GROUPS:
            assert f[g]["logits"].shape == (b, k, h, w), g
            assert f[g]["labels"].shape == (b, h, w), g
            assert f[g]["temperature"].shape == (b, 1, h, w), g
            assert f[g]["augmented_logits"].shape == (b, a, k, h, w), g
            assert np.issubdtype(f[g]["labels"].dtype, np.integer)
            lab = f[g]["labels"][()]
            assert lab.min() >= 0 and lab.max() < k
            assert np.all(np.isfinite(f[g]["logits"][()]))
        d = {g: {n: f[g][n][()].astype(np.float64) for n in f[g]} for g in SYNTH_GROUPS}
    test = d["test"]["logits"]
    # the perturbed copies share the images and labels of test; val has other images
    for g in ("test_noise", "test_bias_field", "test_shift"):
        assert np.array_equal(d[g]["labels"], d["test"]["labels"]), g
        assert not np.array_equal(d[g]["logits"], test), g
    assert not np.array_equal(d["val"]["labels"], d["test"]["labels"])
    # test_noise: + N(0, 1.5^2) per logit (plus at most the network noise 0.3 redrawn)
    diff = d["test_noise"]["logits"] - test
    assert 1.3 < diff.std() < 1.8 and abs(diff.mean()) < 0.15, (diff.std(), diff.mean())
    # test_bias_field: logits x (1 + 0.6 sin(phase + 3 i / H) cos(2 j / W)), phase per image:
    # the best phase explains the copy up to the network noise, the identity does not
    ii, jj = np.arange(h)[:, None], np.arange(w)[None, :]
    for img in range(b):
        bf, t0 = d["test_bias_field"]["logits"][img], test[img]
        best = min((bf - (1 + 0.6 * np.sin(ph + 3 * ii / h) * np.cos(2 * jj / w)) * t0).std()
                   for ph in np.linspace(0, 2 * np.pi, 361))
        assert best < 0.7 and best < 0.4 * (bf - t0).std(), (img, best, (bf - t0).std())
    # test_shift: misregistered by 3 pixels (the best shift within 4 pixels has size 3)
    sh = d["test_shift"]["logits"]
    resid = {}
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            t_ = test[:, :, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            s_ = sh[:, :, max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            resid[dy, dx] = float(np.abs(t_ - s_).mean())
    (dy, dx) = min(resid, key=resid.get)
    assert max(abs(dy), abs(dx)) == 3 and resid[dy, dx] < 0.5 * resid[0, 0], (dy, dx, resid[dy, dx],
                                                                             resid[0, 0])
    # temperature map: T exp(N(0, 0.1^2)) per pixel, T = 2.5 by default
    for g in SYNTH_GROUPS:
        lt = np.log(d[g]["temperature"] / 2.5)
        assert np.all(d[g]["temperature"] > 0)
        assert abs(lt.mean()) < 0.03 and 0.08 < lt.std() < 0.12, (g, lt.mean(), lt.std())
        # augmented logits: logits + N(0, 0.8^2)
        ad = d[g]["augmented_logits"] - d[g]["logits"][:, None]
        assert abs(ad.mean()) < 0.05 and 0.72 < ad.std() < 0.88, (g, ad.mean(), ad.std())
    # over-confident by T: ts fitted on the val ROI pixels finds about T
    out, cmd = run_json(calibench, "seg-eval", synth_dump, "--methods", "ts")
    assert 1.8 < out["ts"]["temperature"] < 3.4, cmd


def test_synth_temperature_option_and_defaults(calibench, tmp_path):
    """--temperature T moves the map and the fitted ts; K defaults to 4, A to 4."""
    p = synth(calibench, tmp_path / "t4.h5", "--images", 2, "--height", 20, "--width", 20,
              "--temperature", 4, "--seed", 3)
    with h5py.File(p, "r") as f:
        assert f["val/logits"].shape == (2, 4, 20, 20)
        assert f["val/augmented_logits"].shape == (2, 4, 4, 20, 20)
        lt = np.log(f["val/temperature"][()].astype(np.float64) / 4.0)
        assert abs(lt.mean()) < 0.03
    out = check_seg_eval(calibench, p, tmp_path, methods=("ts", "temperature-map"))
    assert 2.8 < out["ts"]["temperature"] < 5.5, out["ts"]


def test_synth_reproducible(calibench, tmp_path):
    args = ("--images", 2, "--height", 12, "--width", 16, "--classes", 3, "--augmentations", 1)
    a = synth(calibench, tmp_path / "a.h5", *args, "--seed", 11)
    b = synth(calibench, tmp_path / "b.h5", *args, "--seed", 11)
    c = synth(calibench, tmp_path / "c.h5", *args, "--seed", 12)
    assert a.read_bytes() == b.read_bytes(), "same seed, different file bytes"
    with h5py.File(a, "r") as fa, h5py.File(c, "r") as fc:
        assert not np.array_equal(fa["test/logits"][()], fc["test/logits"][()])


# ----------------------------------------------------------------------------- (c) malformed


def base_groups(rng, **kw):
    opts = dict(HAND_KINDS["logits-f32"])
    opts.update(kw)
    return {"val": hand_group(rng, **opts), "test": hand_group(rng, **opts)}


def bad_nan_logit(g):
    z = g["test"]["logits"]
    z[0, 2, 4, 1] = np.nan        # first in pixel-major order
    z[0, 1, 4, 5] = np.nan        # first in [b, k, i, j] order
    z[1, 0, 0, 0] = np.nan
    return (), "/test/logits", "[0, 1, 4, 5]"


def bad_inf_logit_f16(g):
    z = g["val"]["logits"].astype(np.float16)
    z[1, 2, 6, 8] = np.inf
    g["val"]["logits"] = z
    return (), "/val/logits", "[1, 2, 6, 8]"


def bad_label_high(g):
    y = g["test"]["labels"]
    y[1, 5, 2] = 3
    y[1, 6, 0] = 200
    return (), "/test/labels", "[1, 5, 2]"


def bad_label_negative(g):
    y = g["test"]["labels"].astype(np.int16)
    y[0, 6, 8] = -1
    y[1, 0, 0] = 7
    g["test"]["labels"] = y
    return (), "/test/labels", "[0, 6, 8]"


def bad_temperature_zero(g):
    t = g["test"]["temperature"]
    t[1, 0, 2, 3] = 0.0
    t[1, 0, 5, 0] = -1.0
    return ("--methods", "temperature-map"), "/test/temperature", "[1, 0, 2, 3]"


def bad_temperature_negative_k(g):
    for s in ("val", "test"):
        g[s]["temperature"] = np.repeat(g[s]["temperature"], 3, axis=1)
    g["test"]["temperature"][0, 2, 1, 1] = -0.5
    return ("--methods", "temperature-map"), "/test/temperature", "[0, 2, 1, 1]"


def bad_temperature_nan(g):
    g["val"]["temperature"][1, 0, 3, 7] = np.nan
    return ("--methods", "uncalibrated,temperature-map"), "/val/temperature", "[1, 0, 3, 7]"


def bad_augmented_nan(g):
    aug = g["test"]["augmented_logits"]
    aug[1, 2, 0, 3, 4] = np.nan
    aug[1, 2, 1, 0, 0] = np.inf
    return ("--methods", "augmented-mean"), "/test/augmented_logits", "[1, 2, 0, 3, 4]"


def bad_prob_negative(g):
    for s in ("val", "test"):
        g[s]["probs"] = softmax(g[s].pop("logits")).astype(np.float32)
    g["test"]["probs"][1, 1, 2, 6] = -0.25
    g["test"]["probs"][1, 0, 2, 6] += 0.25
    return (), "/test/probs", "[1, 1, 2, 6]"


def bad_labels_shape(g):
    g["test"]["labels"] = g["test"]["labels"][:, :, :8]
    return (), "/test/labels", "[2, 7, 8]"


def bad_roi_shape(g):
    g["test"]["roi"] = g["test"]["roi"][:1]
    return ("--roi", "stored"), "/test/roi", "[1, 7, 9]"


def bad_temperature_channels(g):
    g["test"]["temperature"] = np.ones((2, 2, 7, 9), np.float32)
    return ("--methods", "temperature-map"), "/test/temperature", "[2, 2, 7, 9]"


def bad_augmented_shape(g):
    g["test"]["augmented_logits"] = g["test"]["augmented_logits"][:, :, :2]
    return ("--methods", "augmented-mean"), "/test/augmented_logits", "[2, 3, 2, 7, 9]"


def bad_k_across_groups(g):
    g["test_z"] = {"logits": np.zeros((1, 4, 3, 3), np.float32),
                   "labels": np.zeros((1, 3, 3), np.int32)}
    return ("--methods", "uncalibrated"), "/test_z/logits", None


def bad_roi_missing(g):
    del g["test"]["roi"]
    return ("--roi", "stored"), "/test/roi", None


def bad_temperature_missing(g):
    del g["test"]["temperature"]
    return ("--methods", "uncalibrated,temperature-map"), "/test/temperature", None


def bad_augmented_missing(g):
    del g["val"]["augmented_logits"]
    return ("--methods", "augmented-mean"), "/val/augmented_logits", None


def bad_float_labels(g):
    g["test"]["labels"] = g["test"]["labels"].astype(np.float32)
    return (), "/test/labels", None


MALFORMED = [bad_nan_logit, bad_inf_logit_f16, bad_label_high, bad_label_negative,
             bad_temperature_zero, bad_temperature_negative_k, bad_temperature_nan,
             bad_augmented_nan, bad_prob_negative, bad_labels_shape, bad_roi_shape,
             bad_temperature_channels, bad_augmented_shape, bad_k_across_groups,
             bad_roi_missing, bad_temperature_missing, bad_augmented_missing, bad_float_labels]


def check_error(res, *needles):
    assert res.returncode == 2, describe(res)
    assert res.stdout == "", describe(res)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), describe(res)
    for n in needles:
        assert n in lines[0], f"{n!r} not in the message{describe(res)}"


@pytest.mark.parametrize("fmt", ["json", "table"])
@pytest.mark.parametrize("bad", MALFORMED, ids=lambda f: f.__name__)
def test_malformed(calibench, tmp_path, bad, fmt):
    g = base_groups(np.random.default_rng(5))
    args, dataset, index = bad(g)
    if "--methods" not in args:
        args = (*args, "--methods", ",".join(ALL_METHODS))
    dump = write_dump(tmp_path / f"{bad.__name__}.h5", g)
    res = run(calibench, "seg-eval", dump, *args, "--format", fmt)
    check_error(res, dump.name, dataset, *([index] if index else []))


def test_usage_errors(calibench, tmp_path):
    dump = write_dump(tmp_path / "ok.h5", base_groups(np.random.default_rng(6)))
    res = run(calibench, "seg-eval", dump, "--methods", "uncalibrated,bogus-method")
    check_error(res, "bogus-method")
    # ts needs /val
    g = base_groups(np.random.default_rng(7))
    del g["val"]
    noval = write_dump(tmp_path / "noval.h5", g)
    check_error(run(calibench, "seg-eval", noval, "--methods", "ts"), "noval.h5", "/val")
    # a missing file
    check_error(run(calibench, "seg-eval", tmp_path / "absent.h5"), "absent.h5")


# ----------------------------------------------------------------------------- (d) determinism


def strip_timing(out):
    out = dict(out)
    for key in TIMING_KEYS:
        out.pop(key)
    if "ts" in out:
        out["ts"] = {k: v for k, v in out["ts"].items() if k != "backend"}
    return out


def test_deterministic_and_thread_independent(calibench, tmp_path):
    dump = synth(calibench, tmp_path / "det.h5", "--images", 4, "--height", 32, "--width", 40,
                 "--classes", 5, "--augmentations", 3, "--seed", 21)
    cmd = [calibench_path(), "seg-eval", str(dump), "--methods", ",".join(ALL_METHODS),
           "--roi-dilation", 4, "--reliability", "--format", "json"]
    outs = []
    for threads in ("2", "2", "1"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                             timeout=TIMEOUT)
        assert res.returncode == 0, res.stderr
        outs.append(strip_timing(json.loads(res.stdout)))
    assert outs[0] == outs[1], "two identical runs differ"
    assert outs[0] == outs[2], "OMP_NUM_THREADS=1 and 2 differ"


def calibench_path():
    """The binary the `calibench` fixture runs (conftest.py: $CALIBENCH_BIN or build/)."""
    return os.environ.get("CALIBENCH_BIN", str(REPO / "build" / "calibench"))
