"""Independent float64 reference for `calibench seg-eval` (docs/segmentation.md).

Written from the definitions of docs/segmentation.md (and the metric definitions of
docs/metrics.md that it reuses), without looking at the C++ sources.  The ROI pixels of a group
are flattened (image b, then row i, then column j) to an N x K matrix and handed to the
classification references: calib_ref.py (input handling: softmax by log-sum-exp, confidence
1/S, prediction with the lowest index on ties, log p_y) and conventions_ref.py (ece, mce, sce,
nll, brier under every convention option).  Readability first; the dumps of the tests are tiny.

What this file adds:
  - reading a segmentation dump with h5py (groups whose scores have rank 4, ordered val, test,
    then the others by name);
  - the ROI: the foreground (label != background) dilated by a (2r+1) x (2r+1) square clipped
    at the image border -- once with scipy.ndimage.maximum_filter, once with explicit loops
    (`roi_dilate_loop`), cross-checked by `selftest()`; `--roi stored` / `--roi all`;
  - the methods: uncalibrated, ts (given T), temperature-map (z_k * (1/T_k(x)), one channel or
    K), augmented-mean (mean over A of the stored augmented logits);
  - Dice per class over all pixels and mean_dice (classes other than 0 with a defined Dice);
  - the classification dump of the val ROI pixels for `calibench fit --method ts`
    (`write_fit_dump`), whose T must equal seg-eval's `ts.temperature`.

Usage as a script (debugging):

    python3 tests/reference/seg_ref.py FILE [--methods uncalibrated,ts,...] [--ts-temperature T]
        [--bins M] [--conventions P] [--binning R] [--classwise-binning R]
        [--classwise-reduction mean|sum] [--brier V] [--nll-clip EPS]
        [--roi dilate|stored|all] [--roi-dilation r] [--background c] [--reliability]
    python3 tests/reference/seg_ref.py --selftest

prints the `results` list `calibench seg-eval FILE ... --format json` should print (the ts
method needs --ts-temperature: the reference does not fit T, the tests take it from the CLI and
check it separately against `calibench fit --method ts`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys

import h5py
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import calib_ref as ref  # noqa: E402
import conventions_ref as cr  # noqa: E402

METHODS = ("uncalibrated", "ts", "temperature-map", "augmented-mean")
ROI_RULES = ("dilate", "stored", "all")
# Keys of one entry of "results" (docs/segmentation.md "Output"), "reliability" optional.
RESULT_KEYS = ("method", "group", "roi_pixels", "pixels", "accuracy", "ece", "mce", "sce",
               "nll", "brier", "dice", "mean_dice")
METRIC_KEYS = ("accuracy", "ece", "mce", "sce", "nll", "brier")


# --------------------------------------------------------------------------------------------
# The dump
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SegGroup:
    """One group of a segmentation dump, converted to float64 / int64.

    kind         "logits" or "probs"
    scores       [B, K, H, W] logits or probabilities
    labels       [B, H, W]
    roi          [B, H, W] or None (stored ROI, non-zero = in)
    temperature  [B, 1|K, H, W] or None
    augmented    [B, A, K, H, W] or None
    """

    name: str
    kind: str
    scores: np.ndarray
    labels: np.ndarray
    roi: np.ndarray | None = None
    temperature: np.ndarray | None = None
    augmented: np.ndarray | None = None

    @property
    def shape(self):
        return self.scores.shape

    @property
    def k(self) -> int:
        return int(self.scores.shape[1])

    @property
    def pixels(self) -> int:
        b, _, h, w = self.scores.shape
        return int(b * h * w)


def group_order(names) -> list[str]:
    """val, test, then the others by name (docs/segmentation.md "The dump")."""
    first = [n for n in ("val", "test") if n in names]
    return first + sorted(n for n in names if n not in ("val", "test"))


def load_dump(path) -> dict[str, SegGroup]:
    """Every group whose scores (/logits or /probs) have rank 4, in group_order.

    Only the shape checks the reference needs are made; the validation contract is tested
    against the CLI directly."""
    groups = {}
    with h5py.File(path, "r") as f:
        for name in f:
            g = f[name]
            if not isinstance(g, h5py.Group):
                continue
            if "logits" in g:
                kind = "logits"
            elif "probs" in g:
                kind = "probs"
            else:
                continue
            scores = g[kind][()]
            if scores.ndim != 4:
                continue  # not a segmentation group
            labels = g["labels"][()]
            if not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"/{name}/labels is not integer")
            b, k, h, w = scores.shape
            if labels.shape != (b, h, w):
                raise ValueError(f"/{name}/labels has shape {labels.shape}")
            sg = SegGroup(name, kind, scores.astype(np.float64), labels.astype(np.int64))
            if "roi" in g:
                sg.roi = g["roi"][()].astype(np.int64)
            if "temperature" in g:
                sg.temperature = g["temperature"][()].astype(np.float64)
            if "augmented_logits" in g:
                sg.augmented = g["augmented_logits"][()].astype(np.float64)
            groups[name] = sg
    ks = {g.k for g in groups.values()}
    if len(ks) > 1:
        raise ValueError(f"groups disagree on K: {sorted(ks)}")
    return {n: groups[n] for n in group_order(groups)}


# --------------------------------------------------------------------------------------------
# Region of interest
# --------------------------------------------------------------------------------------------

def roi_dilate(labels: np.ndarray, r: int, background: int = 0) -> np.ndarray:
    """[B, H, W] bool: the foreground (label != background) of each image dilated by the
    (2r+1) x (2r+1) square, clipped at the image border (maximum filter, zero outside)."""
    fg = (labels != background).astype(np.uint8)
    size = 2 * int(r) + 1
    out = ndimage.maximum_filter(fg, size=(1, size, size), mode="constant", cval=0)
    return out.astype(bool)


def roi_dilate_loop(labels: np.ndarray, r: int, background: int = 0) -> np.ndarray:
    """The definition word by word: (i, j) is in when some (i', j') of the same image with
    |i - i'| <= r and |j - j'| <= r has a label other than the background."""
    b_, h, w = labels.shape
    out = np.zeros((b_, h, w), dtype=bool)
    for b in range(b_):
        fg = [(i2, j2) for i2 in range(h) for j2 in range(w) if labels[b, i2, j2] != background]
        for i in range(h):
            for j in range(w):
                out[b, i, j] = any(abs(i - i2) <= r and abs(j - j2) <= r for i2, j2 in fg)
    return out


def roi_mask(g: SegGroup, rule: str = "dilate", r: int = 10, background: int = 0) -> np.ndarray:
    if rule == "dilate":
        return roi_dilate(g.labels, r, background)
    if rule == "stored":
        if g.roi is None:
            raise ValueError(f"/{g.name}/roi missing")
        return g.roi != 0
    if rule == "all":
        return np.ones(g.labels.shape, dtype=bool)
    raise ValueError(f"unknown roi rule {rule!r}")


# --------------------------------------------------------------------------------------------
# Methods: per-pixel logits (or probabilities) of every method
# --------------------------------------------------------------------------------------------

def base_logits(g: SegGroup) -> np.ndarray:
    """z: the stored logits, or log p for probability dumps (doc: "z = log p for the other
    methods"); log 0 = -inf."""
    if g.kind == "logits":
        return g.scores
    with np.errstate(divide="ignore"):
        return np.log(g.scores)


def method_logits(g: SegGroup, method: str, temperature: float | None = None) -> np.ndarray:
    """[B, K, H, W] float64 logits whose softmax is the method's probabilities."""
    if method == "uncalibrated":
        return base_logits(g)
    if method == "ts":
        if temperature is None:
            raise ValueError("ts needs a temperature")
        return base_logits(g) * (1.0 / float(temperature))   # softmax(z * (1/T))
    if method == "temperature-map":
        if g.temperature is None:
            raise ValueError(f"/{g.name}/temperature missing")
        t = g.temperature
        if t.shape[1] not in (1, g.k):
            raise ValueError(f"/{g.name}/temperature has shape {t.shape}")
        return base_logits(g) * (1.0 / t)                     # broadcasts a single channel
    if method == "augmented-mean":
        if g.augmented is None:
            raise ValueError(f"/{g.name}/augmented_logits missing")
        a = g.augmented.shape[1]
        total = np.zeros(g.shape, dtype=np.float64)
        for i in range(a):                                    # mean over A of z_a
            total += g.augmented[:, i]
        return total / a
    raise ValueError(f"unknown method {method!r}")


def to_rows(x: np.ndarray) -> np.ndarray:
    """[B, K, H, W] -> [B*H*W, K], pixel order b, i, j."""
    b, k, h, w = x.shape
    return np.transpose(x, (0, 2, 3, 1)).reshape(b * h * w, k)


def pixel_split(g: SegGroup, method: str, mask: np.ndarray | None,
                temperature: float | None = None) -> ref.Split:
    """The method's per-pixel quantities of the pixels in `mask` (all pixels when None) as a
    classification split (calib_ref.Split), pixel order b, i, j."""
    keep = np.ones(g.labels.shape, bool) if mask is None else mask
    y = g.labels[keep]
    if method == "uncalibrated" and g.kind == "probs":
        return ref.from_probs(to_rows(g.scores)[keep.ravel()], y)  # p as stored
    z = to_rows(method_logits(g, method, temperature))[keep.ravel()]
    return ref.from_logits(z, y)


def prediction(g: SegGroup, method: str, temperature: float | None = None) -> np.ndarray:
    """[B, H, W] argmax over classes of the method's scores (lowest index on ties)."""
    if method == "uncalibrated" and g.kind == "probs":
        x = g.scores
    else:
        x = method_logits(g, method, temperature)
    return np.argmax(x, axis=1)


# --------------------------------------------------------------------------------------------
# Dice
# --------------------------------------------------------------------------------------------

def dice(pred: np.ndarray, labels: np.ndarray, k: int) -> list[float]:
    """Per class c over all pixels of the group: 2 TP / (2 TP + FP + FN), NaN when the class
    is neither present nor predicted."""
    out = []
    for c in range(k):
        p, t = pred == c, labels == c
        tp = int(np.sum(p & t))
        fp = int(np.sum(p & ~t))
        fn = int(np.sum(~p & t))
        den = 2 * tp + fp + fn
        out.append(2.0 * tp / den if den > 0 else math.nan)
    return out


def mean_dice(d: list[float]) -> float:
    """Mean over classes other than class 0 with a defined Dice (NaN if none)."""
    vals = [v for v in d[1:] if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


# --------------------------------------------------------------------------------------------
# Metrics of one (method, group)
# --------------------------------------------------------------------------------------------

def roi_metrics(s: ref.Split, bins: int, conv: cr.Conventions) -> dict:
    """accuracy, ece, mce, sce, nll, brier of the ROI pixels (floats may
    be nan/inf; all NaN when the ROI is empty)."""
    if s.n == 0:
        return {key: math.nan for key in METRIC_KEYS}
    out = {"accuracy": ref.accuracy(s),
           "ece": cr.ece(s, bins, conv.binning),
           "mce": cr.mce(s, bins, conv.binning)}
    out["sce"] = cr.sce(s, bins, conv.classwise_binning, conv.classwise_reduction)
    out["nll"] = cr.nll(s, conv.nll_clip)
    out["brier"] = cr.brier(s, conv.brier)
    return out


def evaluate_group(g: SegGroup, method: str, bins: int = 15, conv: cr.Conventions | None = None,
                   roi: str = "dilate", r: int = 10, background: int = 0,
                   temperature: float | None = None, reliability_bins: bool = False) -> dict:
    """One entry of "results" (floats may be nan/inf; see to_json for the CLI's nulls)."""
    conv = conv or cr.PRESETS["calibench"]
    mask = roi_mask(g, roi, r, background)
    s = pixel_split(g, method, mask, temperature)
    d = dice(prediction(g, method, temperature), g.labels, g.k)
    out = {"method": method, "group": g.name, "roi_pixels": int(mask.sum()), "pixels": g.pixels}
    out.update(roi_metrics(s, bins, conv))
    out["dice"] = d
    out["mean_dice"] = mean_dice(d)
    if reliability_bins:
        out["reliability"] = cr.reliability(s, bins, conv.binning)
    return out


def to_json(v):
    """None where the CLI prints null (non-finite floats), recursively."""
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, str):
        return v
    return ref.to_json_value(v)


def evaluate(path, methods=("uncalibrated",), bins: int = 15, conv: cr.Conventions | None = None,
             roi: str = "dilate", r: int = 10, background: int = 0,
             ts_temperature: float | None = None, reliability_bins: bool = False) -> list[dict]:
    """The "results" list: ordered by method (as given), then group (val, test, others)."""
    groups = load_dump(path)
    results = []
    for method in methods:
        for g in groups.values():
            results.append(to_json(evaluate_group(g, method, bins, conv, roi, r, background,
                                                  ts_temperature, reliability_bins)))
    return results


# --------------------------------------------------------------------------------------------
# The ts fit data: the val ROI pixels as a classification dump
# --------------------------------------------------------------------------------------------

def val_roi_rows(path, roi: str = "dilate", r: int = 10, background: int = 0):
    """(z [N, K] float64, y [N]) of the ROI pixels of /val: the data `ts` is fitted on
    (z = log p for probability dumps)."""
    g = load_dump(path)["val"]
    mask = roi_mask(g, roi, r, background)
    return to_rows(base_logits(g))[mask.ravel()], g.labels[mask]


def write_fit_dump(out_path, z: np.ndarray, y: np.ndarray):
    """/val and /test with logits [N, K] float64 and labels [N] int64 (test = val)."""
    with h5py.File(out_path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = int(z.shape[1])
        for split in ("val", "test"):
            grp = f.create_group(split)
            grp.create_dataset("logits", data=np.asarray(z, dtype=np.float64))
            grp.create_dataset("labels", data=np.asarray(y, dtype=np.int64))
    return out_path


# --------------------------------------------------------------------------------------------
# Self-test (no CLI involved)
# --------------------------------------------------------------------------------------------

def selftest(seed: int = 0) -> None:
    """Cross-checks of the reference against itself; raises AssertionError on a mismatch."""
    rng = np.random.default_rng(seed)
    # Dilation: maximum_filter vs the literal loops, random masks (sparse, dense, empty,
    # foreground on the borders) and r from 0 to beyond the image.
    for trial in range(12):
        b, h, w = 2, int(rng.integers(1, 9)), int(rng.integers(1, 10))
        density = [0.0, 0.03, 0.1, 0.5][trial % 4]
        labels = np.where(rng.random((b, h, w)) < density, rng.integers(1, 4, (b, h, w)), 0)
        if trial % 3 == 0:
            labels[0, 0, w - 1] = 2  # a corner
        for bg in (0, 2):
            for r in (0, 1, 2, 3, 100):
                a = roi_dilate(labels, r, bg)
                e = roi_dilate_loop(labels, r, bg)
                assert np.array_equal(a, e), (trial, bg, r, labels)
    # Hand-computed dilation: one foreground pixel in the corner of a 5 x 6 image.
    lab = np.zeros((1, 5, 6), np.int64)
    lab[0, 0, 5] = 1
    want = np.zeros((1, 5, 6), bool)
    want[0, 0:2, 4:6] = True
    assert np.array_equal(roi_dilate(lab, 1), want)
    assert roi_dilate(lab, 0).sum() == 1 and roi_dilate(lab, 100).all()
    assert not roi_dilate(np.zeros((1, 3, 3), np.int64), 5).any()
    # Dice by hand.
    pred = np.array([[[0, 1, 1], [2, 2, 0]]])
    lab = np.array([[[0, 1, 0], [2, 0, 0]]])
    d = dice(pred, lab, 4)
    assert d[0] == 2 * 2 / (2 * 2 + 0 + 2) and d[1] == 2 / 3 and d[2] == 2 / 3 and math.isnan(d[3])
    assert mean_dice(d) == 2 / 3 and math.isnan(mean_dice([0.5, math.nan]))
    # Methods: ts with T = 1, a constant temperature map and one augmentation equal to the
    # logits all give the uncalibrated probabilities; a K-channel map equal on every channel
    # is the one-channel map.
    z = rng.normal(size=(2, 3, 4, 5)) * 3
    g = SegGroup("val", "logits", z, rng.integers(0, 3, (2, 4, 5)),
                 temperature=np.full((2, 1, 4, 5), 2.0), augmented=z[:, None].copy())
    base = pixel_split(g, "uncalibrated", None)
    assert np.array_equal(pixel_split(g, "ts", None, 1.0).p, base.p)
    assert np.array_equal(pixel_split(g, "augmented-mean", None).p, base.p)
    assert np.allclose(pixel_split(g, "temperature-map", None).p, pixel_split(g, "ts", None, 2.0).p,
                       rtol=0, atol=1e-15)
    g2 = dataclasses.replace(g, temperature=np.repeat(g.temperature, 3, axis=1))
    assert np.array_equal(pixel_split(g2, "temperature-map", None).p,
                          pixel_split(g, "temperature-map", None).p)
    # Flattening order: pixel (b, i, j) is row b*H*W + i*W + j.
    rows = to_rows(z)
    assert np.array_equal(rows[1 * 20 + 2 * 5 + 3], z[1, :, 2, 3])


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--methods", default="uncalibrated")
    ap.add_argument("--ts-temperature", type=float)
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--conventions", choices=cr.PRESET_ORDER)
    ap.add_argument("--binning", choices=cr.BINNING_RULES)
    ap.add_argument("--classwise-binning", choices=cr.BINNING_RULES)
    ap.add_argument("--classwise-reduction", choices=cr.REDUCTIONS)
    ap.add_argument("--brier", choices=cr.BRIER_VARIANTS)
    ap.add_argument("--nll-clip", type=float)
    ap.add_argument("--roi", default="dilate", choices=ROI_RULES)
    ap.add_argument("--roi-dilation", type=int, default=10)
    ap.add_argument("--background", type=int, default=0)
    ap.add_argument("--reliability", action="store_true")
    a = ap.parse_args(argv)
    if a.selftest:
        selftest()
        print("seg_ref selftest: ok")
        return 0
    if a.file is None:
        ap.error("FILE is required")
    conv = cr.resolve(a.conventions, a.binning, a.classwise_binning, None,
                      a.classwise_reduction, a.brier, a.nll_clip)
    res = evaluate(a.file, a.methods.split(","), a.bins, conv, a.roi, a.roi_dilation,
                   a.background, a.ts_temperature, a.reliability)
    json.dump(res, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
