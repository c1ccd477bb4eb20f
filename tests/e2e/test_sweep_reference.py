# `calibench sweep-candidates` (the batch sweep engine) against the float64 numpy reference:
# every family, every candidate, on random and adversarial dumps. Each candidate's
# probabilities are built here from the formulas and scored by tests/reference/calib_ref.py.
import json
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "reference"))
import calib_ref as ref  # noqa: E402

# Both sides are float64 from the same float32 logits; the engine reassociates softmax sums
# (SIMD lanes) and multiplies exp(x b) forward on arithmetic grids (<= ~16 ulps), so the
# per-candidate metrics agree to well below this.
TOL = 1e-9


def write_dump(path, z, y):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "calibench-logits"
        f.attrs["version"] = 1
        f.attrs["num_classes"] = z.shape[1]
        for split in ("val", "test"):
            f[f"{split}/logits"] = z.astype(np.float32)
            f[f"{split}/labels"] = y.astype(np.int32)


def make_logits(seed, n, k, ties=False, scale=3.0):
    rng = np.random.default_rng(seed)
    z = (scale * rng.normal(size=(n, k))).astype(np.float32)
    y = rng.integers(0, k, size=n)
    if ties:
        z[::3, -1] = z[::3, 0]
        z[1::7] = 0.5
        z[3::5] = z[2:-1:5][: len(z[3::5])]
    return z, y


def run_sweep(calibench, path, *args):
    proc = calibench("sweep-candidates", path, "--split", "val", "--per-bin", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check(out, g, s, bins, binning, what):
    m = ref.compute_metrics(s, bins, binning)
    rel = ref.reliability(s, bins, binning)
    counts = out["bin_count"][g * bins:(g + 1) * bins]
    assert counts == [b["count"] for b in rel], f"{what} candidate {g}: bin counts"
    for key in ("ece", "mce", "adaece", "nll", "brier", "accuracy"):
        got, want = out[key][g], m[key]
        assert got == pytest.approx(want, abs=TOL, rel=TOL), f"{what} candidate {g} {key}: {got} vs {want}"


def scaled_split(z, y, inv):
    """Split of logits z * inv (inv broadcast over rows and classes)."""
    return ref.from_logits(z.astype(np.float64) * inv, y)


CASES = [(1, 2, False), (14, 3, True), (500, 10, True), (2000, 100, False), (200, 1000, False)]


@pytest.mark.parametrize("n,k,ties", CASES)
@pytest.mark.parametrize("binning,bins", [("right-closed", 15), ("left-closed", 10)])
def test_temperature_families(calibench, tmp_path, n, k, ties, binning, bins):
    seed = 1000 + n + k
    z, y = make_logits(seed, n, k, ties)
    path = tmp_path / "d.h5"
    write_dump(path, z, y)
    temps = [0.25, 0.8, 1.0, 1.3, 2.0, 6.0]
    out = run_sweep(calibench, path, "--family", "temperature", "--grid", ",".join(map(str, temps)),
                    "--bins", bins, "--binning", binning)
    for g, t in enumerate(temps):
        check(out, g, scaled_split(z, y, 1.0 / t), bins, binning, f"temperature seed={seed}")
    # 300 inverse temperatures: crosses a re-anchoring of the multiply recurrence.
    out = run_sweep(calibench, path, "--family", "inverse-temperature", "--grid", "0.1:3.09:0.01",
                    "--bins", bins, "--binning", binning)
    assert len(out["candidates"]) == 300
    for g in range(0, 300, 23):
        check(out, g, scaled_split(z, y, out["candidates"][g]), bins, binning, f"inverse temperature seed={seed}")


@pytest.mark.parametrize("n,k,ties", CASES)
def test_weight_family(calibench, tmp_path, n, k, ties):
    seed = 2000 + n + k
    z, y = make_logits(seed, n, k, ties)
    path = tmp_path / "d.h5"
    write_dump(path, z, y)
    weights = [0.0, 0.2, 0.5, 0.999, 1.0]
    out = run_sweep(calibench, path, "--family", "weight", "--grid", ",".join(map(str, weights)))
    base = ref.from_logits(z, y)
    for g, a in enumerate(weights):
        u = (1 - a) / k
        p = a * base.p + u
        # Weight scaling keeps the uncalibrated prediction (docs/sweeps.md).
        s = ref.Split("probs", p, p[np.arange(n), base.yhat], base.yhat, y, np.log(p[np.arange(n), y]), k)
        check(out, g, s, 15, "right-closed", f"weight seed={seed}")


@pytest.mark.parametrize("n,k,ties", CASES)
def test_class_temperature_family(calibench, tmp_path, n, k, ties):
    seed = 3000 + n + k
    z, y = make_logits(seed, n, k, ties)
    path = tmp_path / "d.h5"
    write_dump(path, z, y)
    cls, base_t = k - 1, 1.7
    cands = [0.1, 0.5, 1.7, 3.0, 10.0]
    out = run_sweep(calibench, path, "--family", "class-temperature", "--class", cls, "--base-temperature", base_t,
                    "--grid", ",".join(map(str, cands)))
    for g, t in enumerate(cands):
        inv = np.full(k, 1.0 / base_t)
        inv[cls] = 1.0 / t
        check(out, g, scaled_split(z, y, inv[None, :]), 15, "right-closed", f"class temperature seed={seed}")


@pytest.mark.parametrize("n,k,ties", CASES)
def test_bin_temperature_family(calibench, tmp_path, n, k, ties):
    seed = 4000 + n + k
    z, y = make_logits(seed, n, k, ties)
    path = tmp_path / "d.h5"
    write_dump(path, z, y)
    calib_bins, target, base_t = 4, 2, 1.4
    cands = [0.3, 1.0, 2.5]
    out = run_sweep(calibench, path, "--family", "bin-temperature", "--calib-bins", calib_bins, "--target-bin",
                    target, "--base-temperature", base_t, "--grid", ",".join(map(str, cands)))
    conf = ref.from_logits(z, y).c
    order = np.argsort(conf, kind="stable")
    sample_bin = np.empty(n, dtype=int)
    for b, idx in enumerate(np.array_split(order, calib_bins)):
        sample_bin[idx] = b
    for g, t in enumerate(cands):
        inv = np.where(sample_bin == target, 1.0 / t, 1.0 / base_t)[:, None]
        check(out, g, scaled_split(z, y, inv), 15, "right-closed", f"bin temperature seed={seed}")


def test_sweep_rejects_bad_candidates(calibench, tmp_path):
    z, y = make_logits(1, 20, 3)
    path = tmp_path / "d.h5"
    write_dump(path, z, y)
    for args in (["--family", "temperature", "--grid", "0,1"], ["--family", "weight", "--grid", "0.5,1.5"],
                 ["--family", "temperature", "--grid", "1:0.5:0.1"], ["--family", "temperature", "--grid", "a:b:c"],
                 ["--family", "class-temperature", "--class", 3], ["--backend", "gpu"]):
        proc = calibench("sweep-candidates", path, *args)
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stderr)
        assert proc.stderr.startswith("calibench: error: ") and proc.stderr.count("\n") == 1, proc.stderr
