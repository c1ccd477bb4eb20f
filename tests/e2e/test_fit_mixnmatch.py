"""Mix-n-Match's multiclass isotonic calibrators (`irova`, `irm`, `irova_ts`; docs/calibrators.md)
against tests/reference/mixnmatch_ref.py (the authors' code ported with scikit-learn's
IsotonicRegression and scipy's L-BFGS-B): the calibrated test probabilities that `fit --save`
stores, the fitted temperature of irova_ts, `apply`, probability dumps, ties, the real dumps."""
import json
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import calib_ref  # noqa: E402
import mixnmatch_ref as ref  # noqa: E402
from conftest import REPO, calibench_bin  # noqa: E402
from fit_helpers import write_splits  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real" / "h5"


def data(rng, n, k, ties=False):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 1.5
    z[np.arange(n), y] += 2.0
    z *= 1.8  # over-confident
    if ties:
        z = np.round(z * 2) / 2  # many equal probabilities within and across rows
    return z, y


def write(path, val, test, kind="logits"):
    return write_splits(path, {"val": val, "test": test}, kind)


def fit(path, method, save):
    proc = subprocess.run([calibench_bin(), "fit", str(path), "--method", method, "--format", "json", "--save",
                           str(save)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(save) as f:
        return json.loads(proc.stdout), f["test/probs"][:]


def expected(method, zv, yv, zt, probs=False):
    pv, pt = (zv, zt) if probs else (ref.softmax(zv), ref.softmax(zt))
    if method == "irova":
        return ref.irova(pv, yv, pt), None
    if method == "irm":
        return ref.irm(pv, yv, pt), None
    return ref.irova_ts(zv, yv, zt)


@pytest.mark.parametrize("method", ["irova", "irm", "irova_ts"])
@pytest.mark.parametrize("shape", [(2000, 2), (1500, 10), (1200, 50)], ids=["k2", "k10", "k50"])
@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
def test_equals_the_reference(tmp_path, method, shape, ties):
    n, k = shape
    rng = np.random.default_rng(n + k + ties)
    (zv, yv), (zt, yt) = data(rng, n, k, ties), data(rng, n, k, ties)
    path = write(tmp_path / "d.h5", (zv, yv), (zt, yt))
    got, p = fit(path, method, tmp_path / "cal.h5")
    want, t = expected(method, zv, yv, zt)
    if t is not None:
        # The mean squared error is flat at its minimum (a change of 1e-7 in T moves it by
        # 1e-16), so two optimisers agree on T only to ~1e-7: calibench's T is no worse than
        # scipy's for the code's objective, and the isotonic layer is checked on calibench's T.
        ours = got["params"]["temperature"]
        onehot = np.eye(k)[yv]
        mse = lambda temp: np.mean((ref.softmax(zv, temp) - onehot) ** 2)  # noqa: E731
        assert abs(ours - t) <= 1e-6 * t and mse(ours) <= mse(t) + 1e-15, (ours, t)
        want = ref.irova(ref.softmax(zv, ours), yv, ref.softmax(zt, ours))
    assert np.max(np.abs(p - want)) <= 1e-9
    assert np.max(np.abs(p.sum(axis=1) - 1)) <= 1e-12
    assert got["test"]["accuracy"] == np.mean(p.argmax(axis=1) == yt)


@pytest.mark.parametrize("method", ["irova", "irm", "irova_ts"])
def test_probability_dumps(tmp_path, method):
    rng = np.random.default_rng(3)
    (zv, yv), (zt, yt) = data(rng, 1000, 6), data(rng, 1000, 6)
    pv, pt = ref.softmax(zv), ref.softmax(zt)
    pv[:5] = np.eye(6)[yv[:5]]  # exact zeros and ones
    path = write(tmp_path / "p.h5", (pv, yv), (pt, yt), "probs")
    got, p = fit(path, method, tmp_path / "cal.h5")
    if method == "irova_ts":  # log p, zeros as -inf, through softmax(. / T) at calibench's T
        t = got["params"]["temperature"]
        with np.errstate(divide="ignore"):
            lv, lt = np.log(pv), np.log(pt)
        want = ref.irova(ref.softmax(lv, t), yv, ref.softmax(lt, t))
    else:
        want, _ = expected(method, pv, yv, pt, probs=True)
    assert np.max(np.abs(p - want)) <= 1e-9


@pytest.mark.parametrize("method", ["irova", "irm", "irova_ts"])
def test_apply_gives_the_fit_and_checks_k(tmp_path, method):
    rng = np.random.default_rng(4)
    path = write(tmp_path / "d.h5", data(rng, 800, 5), data(rng, 800, 5))
    fitted, _ = fit(path, method, tmp_path / "cal.h5")
    run = lambda *a: subprocess.run([calibench_bin(), *map(str, a)], capture_output=True, text=True)  # noqa: E731
    proc = run("apply", tmp_path / "cal.h5", path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test"] == fitted["test"]
    other = write(tmp_path / "k7.h5", data(rng, 100, 7), data(rng, 100, 7))
    proc = run("apply", tmp_path / "cal.h5", other)
    if method == "irm":  # one pooled map: any K
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2 and "5 per-class maps but the split has K = 7" in proc.stderr, proc.stderr


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} absent (the real dumps)")
@pytest.mark.parametrize("method", ["irova", "irm"])
def test_real_dumps(tmp_path, method):
    for path in sorted(REAL.glob("*.h5"))[:4]:
        _, p = fit(path, method, tmp_path / "cal.h5")
        v, t = calib_ref.load_split(str(path), "val"), calib_ref.load_split(str(path), "test")
        want, _ = expected(method, v.p, v.y, t.p, probs=True)  # the probabilities calibench reads
        assert np.max(np.abs(p - want)) <= 1e-9, path.name
