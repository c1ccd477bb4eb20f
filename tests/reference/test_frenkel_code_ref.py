"""Checks of frenkel_code_ref.py (float64 ports of liorfrenkel1992/calibration at 01ea29b).

Self-checks (plain python3, no torch): the grid constants and torch's float32 linspace values,
the (lower, upper] bin rule and the equal-mass edges, the float32 ECE accumulator against a
float64 sum, WS on data lying on a line, the CWS neighbour rule on hand cases, and the
acc_check outcome of the nudge search (each class T0 or 10.1).

Parity with the authors' code itself (torch from /work/main/.venv-peers; skipped where torch is
missing): the functions in _AUTHORS_METRICS / _AUTHORS_TS below are verbatim copies of
Metrics/metrics.py and temperature_scaling.py at 01ea29b (MIT License, Copyright (c) 2020 Torr
Vision Group, as the repository's LICENSE; test_authors_copy_is_verbatim checks
their ASTs against the snapshot when /work/.mirror holds it), run on CPU with
torch.Tensor.cuda and nn.Module.cuda monkeypatched to the identity; ClassECELoss and
posnegECELoss, which set_temperature builds but never uses, are stand-in modules.
  * float64 tensors, random logits (several N, K, seeds, tied confidences, tiny N): the ports
    with edges_f32=True must give the code's fitted parameters EXACTLY (temperatures, weights,
    edges: the same float32 values) and its ECE values exactly (both float32). The one tolerance
    is WS_REL = 1e-6 on the WS weight: the code stores the 13 numerator / denominator terms in a
    float32 torch.Tensor and sums them in float32 (13 terms, relative rounding <= 13 * 2^-24
    each side, ~1.6e-6 worst case, observed <= 2.2e-7 over 25 fits), the port sums in float64.
    Calibrated outputs: the apply functions fed the code's own parameters agree to APPLY_ABS =
    1e-12 (both float64; the code's float32 (1 - w)/K is reproduced).
  * the CXR14 dumps as the authors ran them, float32 tensors, against the ports' defaults
    (float64 confidences, float64 edges): fitted grid values must be identical (T0, nudge
    temperatures, CTS-per-bin temperatures); closed-form weights within W32_ABS = 5e-6
    (float32 softmax confidences differ from float64 ones by <= 2.2e-7, bin means by less, and
    the weight divides by C - 1/K >= ~0.09: observed <= 1.8e-7); test ECE / adaECE (10 bins) within
    ECE32_ABS = 1e-7 (observed <= 3.5e-8). The bins themselves match sample for sample.
WS and CWS run on all three dumps; the nudge and CTS-per-bin checks on ResNet-50 only, the WS
grid and CWS-dists checks not at all, unless FRENKEL_FULL=1 (each file stays under ~30 s).
"""
from __future__ import annotations

import ast
import contextlib
import io
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import softmax as sp_softmax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import frenkel_code_ref as ref  # noqa: E402

F32 = np.float32
WS_REL = 1e-6
APPLY_ABS = 1e-12
W32_ABS = 5e-6
ECE32_ABS = 1e-7
H5 = pathlib.Path("/work/shared/data/real/h5")
MIRROR = pathlib.Path("/work/.mirror/liorfrenkel1992+calibration/repo")
COMMIT = "01ea29b2b2b1408a56dd2b5af2d1fd826e534fa8"
FULL = os.environ.get("FRENKEL_FULL") == "1"


def make_data(seed: int, n: int, k: int, scale: float = 3.0, label_temp: float = 0.6, decimals=None):
    """Logits scale * N(0, 1) + a class offset, labels drawn from softmax(label_temp * z)
    (label_temp < 1: overconfident logits). decimals rounds the logits (tied confidences)."""
    rng = np.random.default_rng(seed)
    off = rng.normal(size=k)
    z = rng.normal(size=(n, k)) * scale + off
    if decimals is not None:
        z = np.round(z, decimals)
    cdf = np.cumsum(sp_softmax(label_temp * z, axis=1), axis=1)
    y = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), k - 1)
    return z, y


# ============================================================================ self-checks

def test_grid_constants():
    assert len(ref.TS_GRID) == 100 and ref.TS_GRID[0] == 0.1
    assert ref.TS_GRID[9] == 0.9999999999999999      # the "T = 1" the code finds on CXR14
    assert ref.TS_GRID[-1] == 9.99999999999998
    assert ref.TS_LEFTOVER == 10.09999999999998
    assert float(F32(ref.TS_LEFTOVER)) == 10.100000381469727
    assert len(ref.WS_GRID) == 1000 and ref.WS_GRID[0] == 0.001
    assert abs(ref.WS_GRID[-1] - 1.0) < 1e-12


def test_torch_linspace_values():
    b = ref.torch_linspace_f32(0.0, 1.0, 16)
    assert b.dtype == F32 and b[0] == 0 and b[-1] == 1
    assert float(b[3]) == 0.20000001788139343 and float(b[1]) == 0.06666667014360428
    assert float(b[9]) == 0.5999999642372131                # not float32(0.6) = 0.60000002384
    assert ref.NUDGE_STEPS.tolist() == [F32(-0.2), F32(-0.1), 0.0, F32(0.1), F32(0.2)]
    b10 = ref.torch_linspace_f32(0.0, 1.0, 11)
    assert np.array_equal(b10, (np.arange(11) / 10).astype(F32))


def test_bin_rule_and_equal_mass_edges():
    c = np.array([0.2, 0.3, 0.3, 0.5, 0.9])
    e = ref.histedges_equal_n(c, 2)                       # positions 0, 2.5, 5
    assert e.tolist() == [0.2, 0.4, 0.9]
    assert ref._bin_index(c, e).tolist() == [-1, 0, 0, 1, 1]   # min in no bin; (0.2, 0.4], (0.4, 0.9]
    e4 = ref.histedges_equal_n(np.arange(8.0), 4)          # integer positions: exact samples
    assert e4.tolist() == [0, 2, 4, 6, 7]
    assert ref._bin_index(np.arange(8.0), e4).tolist() == [-1, 0, 0, 1, 1, 2, 2, 3]
    assert ref._bin_index(np.array([np.nan, 1.5, 0.0]), np.array([0.0, 1.0])).tolist() == [-1, -1, -1]
    # ECE bounds: a confidence exactly on a float32 bound goes to the lower bin
    b = ref.torch_linspace_f32(0, 1, 16).astype(np.float64)
    assert ref._bin_index(np.array([b[3], np.nextafter(b[3], 1)]), b).tolist() == [2, 3]


def test_ece_float32_accumulator():
    for seed, n, k in [(0, 50, 3), (1, 4000, 10)]:
        z, y = make_data(seed, n, k)
        c, ok = ref.top_label(ref.softmax(z), y)
        idx = ref._bin_index(c, ref.torch_linspace_f32(0, 1, 16))
        direct = sum(np.mean(idx == i) * abs(c[idx == i].mean() - ok[idx == i].mean())
                     for i in range(15) if (idx == i).any())
        e = ref.ece_code(c, ok, 15)
        assert e == float(F32(e)) and abs(e - direct) < 1e-6   # float32 accumulator, 15 terms


def test_ws_on_a_line():
    """Groups on the line A - 1/K = w (C - 1/K): the least-squares weight is w exactly."""
    k, m, w_true = 4, 60, 0.8
    rows, labels = [], []
    for g in range(13):
        hits = 20 + 2 * g                                   # A = hits / m
        conf = 1 / k + (hits / m - 1 / k) / w_true          # C on the line
        other = (1 - conf) / (k - 1)
        for i in range(m):
            rows.append(np.log([conf, other, other, other]))
            labels.append(0 if i < hits else 1)
    z, y = np.array(rows), np.array(labels)
    r = ref.ws_code(z, y)
    assert abs(r["weight"] - w_true) < 1e-6                 # A is a float32 mean (1e-7)
    p = ref.ws_apply_code(z[:3], r["weight"])
    assert np.allclose(p.sum(axis=1), 1, atol=1e-15)


def test_fill_few_rule():
    w = np.array([1, 2, 3, 4, 5, 6], dtype=F32)
    v = w.copy(); ref._fill_few(v, [0], 6); assert v[0] == 2
    v = w.copy(); ref._fill_few(v, [1, 2], 6); assert v[1] == 2.5 and v[2] == 2.5   # (w0 + w3) / 2
    v = w.copy(); ref._fill_few(v, [4], 6); assert v[4] == 4      # upper walk hit the last bin
    v = w.copy(); ref._fill_few(v, [5], 6); assert v[5] == 5
    v = w.copy(); ref._fill_few(v, [0, 1, 5], 6)       # bin 1 averages the already filled bin 0
    assert v.tolist() == [3, 3, 3, 4, 5, 5]


def test_nudge_acc_check_gives_t0_or_10_1():
    for seed, n, k in [(3, 600, 4), (4, 900, 6)]:
        z, y = make_data(seed, n, k)
        r = ref.cts_nudge_code(z, y, acc_check=True)
        vals = set(r["temperatures"].tolist())
        assert vals <= {float(F32(r["T0"])), float(F32(10.09999999999998))}
        assert float(F32(10.09999999999998)) in vals        # class 0's first accepted step
        r0 = ref.cts_nudge_code(z, y, acc_check=False)
        e0 = ref._ece_of_logits(z / r0["temperatures"].astype(np.float64), y, 15)
        assert e0 == r0["best"] and e0 <= ref.ts_grid_code(z, y)[1]


def test_cws_closed_form_clip():
    z, y = make_data(5, 3000, 5)
    r = ref.cws_code(z, y)
    assert r["weights"].dtype == F32 and np.all((r["weights"] >= 0) & (r["weights"] <= 1))
    c, ok = ref.top_label(ref.softmax(z), y)
    idx = ref._bin_index(c, r["edges"])
    for b in range(15):
        m = idx == b
        w = (ok[m].mean() - 0.2) / (c[m].mean() - 0.2)
        assert abs(r["weights"][b] - min(1, max(0, w))) < 1e-6


# ============================================================================ the authors' code

@pytest.fixture(scope="module")
def authors():
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.nn import functional as F
    from sklearn.metrics import accuracy_score, confusion_matrix

    class _Unused(nn.Module):   # ClassECELoss / posnegECELoss: built by set_temperature, never used
        def __init__(self, *a, **k):
            super().__init__()

    ns = dict(torch=torch, np=np, nn=nn, F=F, math=math, accuracy_score=accuracy_score,
              confusion_matrix=confusion_matrix, ClassECELoss=_Unused, posnegECELoss=_Unused)
    exec(compile(_AUTHORS_METRICS, "Metrics/metrics.py@01ea29b", "exec"), ns)
    exec(compile(_AUTHORS_TS, "temperature_scaling.py@01ea29b", "exec"), ns)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
        mp.setattr(nn.Module, "cuda", lambda self, *a, **k: self)
        yield Authors(ns, torch, nn)
    torch.set_num_threads(threads)


class Authors:
    """The authors' namespace plus small call wrappers (stdout silenced: the code prints per bin)."""

    def __init__(self, ns, torch, nn):
        self.ns, self.torch, self.nn = ns, torch, nn

    def t(self, a, f64=True):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            return self.torch.tensor(a.astype(np.float64 if f64 else np.float32))
        return self.torch.tensor(a.astype(np.int64))

    def __call__(self, name, *args, **kw):
        with contextlib.redirect_stdout(io.StringIO()):
            return self.ns[name](*args, **kw)

    def model(self, **kw):
        return self.ns["ModelWithTemperature"](self.nn.Identity(), log=False, **kw)

    def quiet(self):
        return contextlib.redirect_stdout(io.StringIO())


RANDOM = [  # seed, N, K, logit scale, label temperature, rounding of the logits
    (0, 400, 2, 3.0, 0.6, None),
    (1, 800, 5, 3.0, 0.6, None),
    (2, 600, 10, 2.0, 0.8, None),
    (3, 500, 15, 3.0, 0.5, 1),      # tied confidences (logits to 1 decimal)
    (4, 60, 3, 4.0, 0.6, None),     # tiny: bins of 4, set_bins_dists' < 20 rule everywhere
]


def _rand(case):
    seed, n, k, scale, lt, dec = case
    return make_data(seed, n, k, scale, lt, dec)


@pytest.mark.parametrize("case", RANDOM + [(5, 7, 4, 3.0, 0.6, None), (6, 3000, 3, 8.0, 0.3, None)])
def test_ece_metrics_exact(authors, case):
    z, y = _rand(case)
    tz, ty = authors.t(z), authors.t(y)
    c, ok = ref.top_label(ref.softmax(z), y)
    for m in (10, 15, 25):
        assert ref.ece_code(c, ok, m) == authors.ns["ECELoss"](n_bins=m)(tz, ty).item()
        assert ref.ada_ece_code(c, ok, m) == authors.ns["AdaptiveECELoss"](n_bins=m)(tz, ty).item()


@pytest.mark.parametrize("case", RANDOM)
def test_ws_code(authors, case):
    z, y = _rand(case)
    tz, ty = authors.t(z), authors.t(y)
    w, t = authors("set_temperature5", tz, ty, 15, log=False)
    r = ref.ws_code(z, y)
    assert r["temperature"] == t
    assert abs(r["weight"] - float(w)) <= WS_REL * abs(float(w))
    p_code = authors("bins_temperature_scale_test5", tz, float(w)).numpy()
    assert np.abs(ref.ws_apply_code(z, float(w)) - p_code).max() < APPLY_ABS


@pytest.mark.parametrize("case", RANDOM)
def test_cws_code(authors, case):
    z, y = _rand(case)
    zs, _ = make_data(case[0] + 100, 300, case[2])
    tz, ty = authors.t(z), authors.t(y)
    bins_t, st, bb, bi, _ = authors("set_temperature4", tz, ty, 1, num_bins=15, log=False)
    r = ref.cws_code(z, y, 15, edges_f32=True)
    assert r["temperature"] == st and bi == 0
    assert np.array_equal(r["edges"], bb[0])
    assert np.array_equal(r["weights"], bins_t[:, 0].numpy())
    p_code, *_ = authors("bins_temperature_scale_test4", authors.t(zs), authors.t(np.zeros(300, int)),
                         bins_t, 1, bb, st, bi, 15)
    assert np.abs(ref.cws_apply_code(zs, bb[0], bins_t[:, 0].numpy()) - p_code.numpy()).max() < APPLY_ABS


@pytest.mark.parametrize("grid", [True, False])
@pytest.mark.parametrize("case", [RANDOM[1], RANDOM[3], RANDOM[4]])
def test_cws_dists_code(authors, case, grid):
    z, y = _rand(case)
    zs, _ = make_data(case[0] + 100, 300, case[2])
    tz, ty = authors.t(z), authors.t(y)
    m = authors.model(grid=grid)
    with authors.quiet():
        m.set_bins_dists([(tz, ty)])
        p_code = m.bins_dists_scale_test(authors.t(zs), authors.t(np.zeros(300, int))).numpy()
    r = ref.cws_dists_code(z, y, 15, grid=grid, edges_f32=True)
    assert r["temperature"] == m.temperature
    assert np.array_equal(r["edges"], m.bin_boundaries[0])
    assert np.array_equal(r["weights"], m.bins_T[:, 0].numpy())
    if case is RANDOM[4]:
        assert len(r["few"]) == 15            # every bin below 20 samples: all neighbour-filled
    assert np.abs(ref.cws_apply_code(zs, m.bin_boundaries[0], m.bins_T[:, 0].numpy()) - p_code).max() < APPLY_ABS


@pytest.mark.parametrize("case", [RANDOM[0], RANDOM[2]])
def test_ws_grid_code(authors, case):
    z, y = _rand(case)
    tz, ty = authors.t(z), authors.t(y)
    m = authors.model()
    with authors.quiet():
        m.set_single_dists([(tz, ty)], log=False)
        p_code = m.single_dists_test(tz).numpy()
    r = ref.ws_grid_code(z, y)
    assert r["weight"] == m.weight and r["temperature"] == m.temperature
    assert np.abs(ref.ws_grid_apply_code(z, m.weight) - p_code).max() < APPLY_ABS


@pytest.mark.parametrize("case", [RANDOM[0], RANDOM[3], RANDOM[4]])
def test_cts_conf_code(authors, case):
    z, y = _rand(case)
    zs, _ = make_data(case[0] + 100, 300, case[2])
    tz, ty = authors.t(z), authors.t(y)
    bins_t, st, bb, ms, bi = authors("set_temperature3", tz, ty, 1, num_bins=15, log=False)
    r = ref.cts_conf_code(z, y, 15, edges_f32=True)
    assert r["temperature"] == st
    assert np.array_equal(r["edges"], bb[0]) and np.array_equal(r["temperatures"], bins_t[:, 0].numpy())
    l_code, *_ = authors("bins_temperature_scale_test3", authors.t(zs), authors.t(np.zeros(300, int)),
                         bins_t, 1, bb, ms, st, bi, 15)
    assert np.abs(ref.cts_conf_apply_code(zs, bb[0], bins_t[:, 0].numpy()) - l_code.numpy()).max() < APPLY_ABS


@pytest.mark.parametrize("acc_check", [False, True])
@pytest.mark.parametrize("case", RANDOM[:4])
def test_cts_nudge_code(authors, case, acc_check):
    z, y = _rand(case)
    tz, ty = authors.t(z), authors.t(y)
    m = authors.model()
    with authors.quiet():
        m.set_temperature([(tz, ty)], acc_check=acc_check)
    r = ref.cts_nudge_code(z, y, acc_check=acc_check)
    assert r["T0"] == m.temperature
    assert np.array_equal(r["temperatures"], m.csece_temperature.numpy())
    assert np.abs(ref.cts_nudge_apply_code(z, r["temperatures"]) - m.class_temperature_scale(tz).numpy()).max() < APPLY_ABS


def test_authors_copy_is_verbatim():
    """The copied functions are the snapshot's (AST-equal), when the mirror is on this machine."""
    if not MIRROR.exists():
        pytest.skip("no snapshot of liorfrenkel1992/calibration")

    def show(path):
        try:
            return subprocess.run(["git", "-C", str(MIRROR), "show", f"{COMMIT}:{path}"], check=True,
                                  capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            pytest.skip("git show failed on the snapshot")

    def defs(src):
        tree = ast.parse(src)
        out = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == "ModelWithTemperature":
                for m in node.body:
                    if isinstance(m, ast.FunctionDef):
                        out["ModelWithTemperature." + m.name] = ast.dump(m)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out[node.name] = ast.dump(node)
        return out

    up = {**defs(show("Metrics/metrics.py")), **defs(show("temperature_scaling.py"))}
    mine = {**defs(_AUTHORS_METRICS), **defs(_AUTHORS_TS)}
    assert len(mine) == 24
    for name, dump in mine.items():
        assert up[name] == dump, name


# ---------------------------------------------------------------------------- CXR14, float32 as run

DUMPS = ["resnet50", "densenet121", "vgg_bn"]


def _load(arch):
    h5py = pytest.importorskip("h5py")
    path = H5 / f"cxr14_{arch}.h5"
    if not path.exists():
        pytest.skip(f"{path} absent")
    with h5py.File(path, "r") as f:
        return (f["val/logits"][:], f["val/labels"][:].astype(np.int64),
                f["test/logits"][:], f["test/labels"][:].astype(np.int64))


def _test_metrics(p, y):
    c, ok = ref.top_label(p, y)
    return np.array([ref.ece_code(c, ok, 10), ref.ada_ece_code(c, ok, 10)])


def _code_metrics(authors, out, ty, is_logits):
    e = authors.ns["ECELoss"](n_bins=10)(out, ty, is_logits=is_logits).item()
    a = authors.ns["AdaptiveECELoss"](n_bins=10)(out if is_logits else authors.torch.log(out), ty).item()
    return np.array([e, a])


@pytest.mark.parametrize("arch", DUMPS)
def test_cxr14_ws_cws(authors, arch):
    zv, yv, zs, ys = _load(arch)
    tzv, tyv, tzs, tys = authors.t(zv, False), authors.t(yv), authors.t(zs, False), authors.t(ys)
    # WS (set_temperature5)
    w, t = authors("set_temperature5", tzv, tyv, 15, log=False)
    r = ref.ws_code(zv, yv)
    assert r["temperature"] == t == 0.9999999999999999
    assert abs(r["weight"] - float(w)) < W32_ABS
    got = _test_metrics(ref.ws_apply_code(zs, r["weight"]), ys)
    assert np.abs(got - _code_metrics(authors, authors("bins_temperature_scale_test5", tzs, w), tys, False)).max() < ECE32_ABS
    # CWS (set_temperature4, 15 bins)
    bins_t, st, bb, bi, _ = authors("set_temperature4", tzv, tyv, 1, num_bins=15, log=False)
    r = ref.cws_code(zv, yv, 15)
    assert np.abs(r["edges"] - bb[0]).max() < 3e-7
    assert np.abs(r["weights"] - bins_t[:, 0].numpy()).max() < W32_ABS
    p_code, *_ = authors("bins_temperature_scale_test4", tzs, tys, bins_t, 1, bb, st, bi, 15)
    got = _test_metrics(ref.cws_apply_code(zs, r["edges"], r["weights"]), ys)
    assert np.abs(got - _code_metrics(authors, p_code, tys, False)).max() < ECE32_ABS


@pytest.mark.parametrize("acc_check", [False, True])
@pytest.mark.parametrize("arch", DUMPS if FULL else DUMPS[:1])
def test_cxr14_nudge(authors, arch, acc_check):
    zv, yv, zs, ys = _load(arch)
    tzv, tyv, tzs, tys = authors.t(zv, False), authors.t(yv), authors.t(zs, False), authors.t(ys)
    m = authors.model()
    with authors.quiet():
        m.set_temperature([(tzv, tyv)], acc_check=acc_check)
    r = ref.cts_nudge_code(zv, yv, acc_check=acc_check)
    assert r["T0"] == m.temperature == 0.9999999999999999
    assert np.array_equal(r["temperatures"], m.csece_temperature.numpy())
    got = _test_metrics(ref.softmax(ref.cts_nudge_apply_code(zs, r["temperatures"])), ys)
    assert np.abs(got - _code_metrics(authors, m.class_temperature_scale(tzs), tys, True)).max() < ECE32_ABS


@pytest.mark.parametrize("arch", DUMPS if FULL else DUMPS[:1])
def test_cxr14_cts_conf(authors, arch):
    zv, yv, zs, ys = _load(arch)
    tzv, tyv, tzs, tys = authors.t(zv, False), authors.t(yv), authors.t(zs, False), authors.t(ys)
    bins_t, st, bb, ms, bi = authors("set_temperature3", tzv, tyv, 1, num_bins=15, log=False)
    r = ref.cts_conf_code(zv, yv, 15)
    assert np.array_equal(r["temperatures"], bins_t[:, 0].numpy())
    l_code, *_ = authors("bins_temperature_scale_test3", tzs, tys, bins_t, 1, bb, ms, st, bi, 15)
    got = _test_metrics(ref.softmax(ref.cts_conf_apply_code(zs, r["edges"], r["temperatures"])), ys)
    assert np.abs(got - _code_metrics(authors, l_code, tys, True)).max() < ECE32_ABS


@pytest.mark.skipif(not FULL, reason="slow (set FRENKEL_FULL=1); exact on random data above")
@pytest.mark.parametrize("arch", DUMPS)
def test_cxr14_ws_grid_cws_dists(authors, arch):
    zv, yv, _, _ = _load(arch)
    tzv, tyv = authors.t(zv, False), authors.t(yv)
    m = authors.model()
    with authors.quiet():
        m.set_single_dists([(tzv, tyv)], log=False)
    assert ref.ws_grid_code(zv, yv)["weight"] == m.weight
    for grid in (True, False):
        m = authors.model(grid=grid)
        with authors.quiet():
            m.set_bins_dists([(tzv, tyv)])
        r = ref.cws_dists_code(zv, yv, 15, grid=grid)
        assert np.abs(r["weights"] - m.bins_T[:, 0].numpy()).max() <= (0 if grid else W32_ABS)


# ============================================================================ verbatim copies
# github.com/liorfrenkel1992/calibration @ 01ea29b2b2b1408a56dd2b5af2d1fd826e534fa8 (MIT licence,
# copyright Torr Vision Group / the authors). Copied unchanged (two raw strings, executed by the
# `authors` fixture); ModelWithTemperature keeps only the methods used here.

_AUTHORS_METRICS = r"""
# --- Metrics/metrics.py l.120-145
def test_classification_net_logits(logits, labels, is_logits=True, is_binary=False, accuracies=None, predictions=None):
    '''
    This function reports classification accuracy and confusion matrix given logits and labels
    from a model.
    '''
    labels_list = []
    predictions_list = []
    confidence_vals_list = []

    if is_logits:
        softmax = F.softmax(logits, dim=1)
        if is_binary:
            confidence_vals = softmax[:, 0]
        else:
            confidence_vals, predictions = torch.max(softmax, 1)
    else:
        confidence_vals, predictions = torch.max(logits, dim=1)
    labels_list.extend(labels.cpu().numpy().tolist())
    predictions_list.extend(predictions.cpu().numpy().tolist())
    confidence_vals_list.extend(confidence_vals.cpu().numpy().tolist())
    if accuracies is None:
        accuracy = accuracy_score(labels_list, predictions_list)
    else:
        accuracy = accuracies.float().mean()
    return confusion_matrix(labels_list, predictions_list), accuracy, labels_list,\
        predictions_list, confidence_vals_list


# --- Metrics/metrics.py l.175-218
class ECELoss(nn.Module):
    '''
    Compute ECE (Expected Calibration Error)
    '''
    def __init__(self, n_bins=15):
        super(ECELoss, self).__init__()
        bin_boundaries = torch.linspace(0, 1, n_bins + 1)
        self.bin_lowers = bin_boundaries[:-1]
        self.bin_uppers = bin_boundaries[1:]
        self.n_bins = n_bins

    def forward(self, logits, labels, is_logits=True, is_binary=False, accuracies=None, confidences=None):
        if confidences is None:
            if is_logits:
                softmaxes = F.softmax(logits, dim=1)
                if is_binary:
                    confidences = softmaxes[:, 0]
                else:
                    confidences, predictions = torch.max(softmaxes, 1)
            else:
                confidences, predictions = torch.max(logits, 1)
        if accuracies is None:
            accuracies = predictions.eq(labels)
        #counts_over = 0
        #counts_under = 0

        ece = torch.zeros(1, device=logits.device)
        for bin_lower, bin_upper in zip(self.bin_lowers, self.bin_uppers):
            # Calculated |confidence - accuracy| in each bin
            in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
            prop_in_bin = in_bin.float().mean()
            if prop_in_bin.item() > 0:
                accuracy_in_bin = accuracies[in_bin].float().mean()
                avg_confidence_in_bin = confidences[in_bin].mean()
                #if accuracy_in_bin < avg_confidence_in_bin:
                    #counts_over += 1
                #else:
                    #counts_under += 1
                ece += torch.abs(avg_confidence_in_bin - accuracy_in_bin) * prop_in_bin
        
        #print('ECE count of over-confidences bins: ', counts_over)
        #print('ECE count of under-confidences bins: ', counts_under)
                
        return ece


# --- Metrics/metrics.py l.221-251
class AdaptiveECELoss(nn.Module):
    '''
    Compute Adaptive ECE
    '''
    def __init__(self, n_bins=15):
        super(AdaptiveECELoss, self).__init__()
        self.nbins = n_bins

    def histedges_equalN(self, x):
        npt = len(x)
        return np.interp(np.linspace(0, npt, self.nbins + 1),
                     np.arange(npt),
                     np.sort(x))
    def forward(self, logits, labels):
        softmaxes = F.softmax(logits, dim=1)
        confidences, predictions = torch.max(softmaxes, 1)
        accuracies = predictions.eq(labels)
        n, bin_boundaries = np.histogram(confidences.cpu().detach(), self.histedges_equalN(confidences.cpu().detach()))
        #print(n,confidences,bin_boundaries)
        self.bin_lowers = bin_boundaries[:-1]
        self.bin_uppers = bin_boundaries[1:]
        ece = torch.zeros(1, device=logits.device)
        for bin_lower, bin_upper in zip(self.bin_lowers, self.bin_uppers):
            # Calculated |confidence - accuracy| in each bin
            in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
            prop_in_bin = in_bin.float().mean()
            if prop_in_bin.item() > 0:
                accuracy_in_bin = accuracies[in_bin].float().mean()
                avg_confidence_in_bin = confidences[in_bin].mean()
                ece += torch.abs(avg_confidence_in_bin - accuracy_in_bin) * prop_in_bin
        return ece
"""

_AUTHORS_TS = r'''
class ModelWithTemperature(nn.Module):
    """TS.py l.19-43: the methods below only (verbatim)."""


    # --- temperature_scaling.py l.27-42
    def __init__(self, model, log=True, const_temp=False, bins_temp=False, n_bins=15, iters=1, dists=False, grid=True):
        super(ModelWithTemperature, self).__init__()
        self.model = model
        self.temperature = 1.0
        self.log = log
        self.const_temp = const_temp
        self.ece_list = []
        self.ece = 0.0
        self.bins_temp = bins_temp
        self.dists = dists
        self.n_bins = n_bins
        self.iters = iters  # Number of maximum iterations
        self.bin_boundaries = torch.linspace(0, 1, n_bins + 1).unsqueeze(0).repeat((iters, 1)).numpy()
        self.best_iter = 0  # Best iteration for scaling
        self.temps_iters = torch.ones(iters).cuda()  # Temperatures fot iter single TS
        self.grid = grid  # Applying grid search to find optimal weight


    # --- temperature_scaling.py l.58-63
    def temperature_scale(self, logits):
        """
        Perform temperature scaling on logits
        """
        # Expand temperature to match the size of logits
        return logits / self.temperature


    # --- temperature_scaling.py l.75-80
    def class_temperature_scale(self, logits):
        """
        Perform temperature scaling on logits
        """
        # Expand temperature to match the size of logits
        return logits / self.csece_temperature


    # --- temperature_scaling.py l.126-168
    def bins_dists_scale_test(self, logits, labels, n_bins=15):
        """
        Perform temperature scaling on logits
        """
        ece_criterion = ECELoss(n_bins=n_bins).cuda()
        new_softmaxes = F.softmax(logits, dim=1)
        confidences, predictions = torch.max(new_softmaxes, 1)
        accuracies = predictions.eq(labels)
        # confidences[confidences > 0.99999] = 0.99999
        ece_list = []
        n_classes = logits.shape[1]
        for i in range(self.best_iter + 1):
            bin = 0
            bin_lowers = self.bin_boundaries[i][:-1]
            bin_uppers = self.bin_boundaries[i][1:]
            print('\n')
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                prop_in_bin = in_bin.float().mean()
                accuracies_temp = accuracies[in_bin]
                origin_accuracy_in_bin = accuracies_temp.float().mean().item()
                accuracy_in_bin = min(accuracies_temp.float().mean().item(), 0.99)
                accuracy_in_bin = max(accuracy_in_bin, 0.01)
                if any(in_bin):
                    weight = self.bins_T[bin, i]
                    new_softmaxes[in_bin] = weight * new_softmaxes[in_bin] + (1 - weight) * 1 / n_classes
                    confidences_temp, _ = torch.max(new_softmaxes[in_bin], 1)
                    avg_confidence_in_bin = confidences_temp.mean()
                    after_temperature = torch.abs(accuracy_in_bin - avg_confidence_in_bin)
                    samples = new_softmaxes[in_bin].shape[0]
                    print('ece in bin ', bin + 1, ' :', (prop_in_bin * after_temperature).item(),
                          ', number of samples: ', samples)
                    print('accuracy in bin ', bin + 1, ': ', origin_accuracy_in_bin)
                bin += 1

            new_softmaxes /= torch.sum(new_softmaxes, 1, keepdim=True)
            ece_list.append(ece_criterion(new_softmaxes, labels, is_logits=False).item())
            confidences, _ = torch.max(new_softmaxes, 1)

        print(ece_list)
        print('Number of iters: {}'.format(self.best_iter + 1))

        return new_softmaxes


    # --- temperature_scaling.py l.170-188
    def single_dists_test(self, logits):
        """
        Perform temperature scaling on logits
        """
        softmaxes = F.softmax(logits, 1)
        # confidence, predictions = torch.max(softmaxes, 1, keepdim=True)
        # sorted_conf, sorted_pred = torch.sort(softmaxes, 1, True)
        n_classes = logits.shape[1]
        
        # softmaxes = softmaxes - self.weight * dists
        softmaxes = self.weight * softmaxes + (1 - self.weight) * 1 / n_classes
        # conf = sorted_conf[:, 0]
        # second_conf = sorted_conf[:, 1]
        # new_values = (1 - self.weight) * conf + self.weight * second_conf
        # softmaxes.scatter_(1, predictions, new_values.unsqueeze(-1))
        # softmaxes = self.weight * softmaxes
        softmaxes /= torch.sum(softmaxes, 1, keepdim=True)
                                    
        return softmaxes


    # --- temperature_scaling.py l.190-195
    def bins_temperature_scale(self, logits):
        """
        Perform temperature scaling on logits
        """     
        # Expand temperature to match the size of logits
        return logits / torch.unsqueeze(self.bece_temperature, -1)


    # --- temperature_scaling.py l.198-363
    def set_temperature(self, valid_loader, cross_validate='ece', init_temp=2.5, acc_check=False):
        """
        Tune the tempearature of the model (using the validation set) with cross-validation on ECE or NLL
        """
        if self.const_temp:
            self.cuda()
            self.model.eval()
            nll_criterion = nn.CrossEntropyLoss().cuda()
            ece_criterion = ECELoss().cuda()

            # First: collect all the logits and labels for the validation set
            logits_list = []
            labels_list = []
            with torch.no_grad():
                for input, label in valid_loader:
                    input = input.cuda()
                    logits = self.model(input)
                    logits_list.append(logits)
                    labels_list.append(label)
                logits = torch.cat(logits_list).cuda()
                labels = torch.cat(labels_list).cuda()

            # Calculate NLL and ECE before temperature scaling
            before_temperature_nll = nll_criterion(logits, labels).item()
            before_temperature_ece = ece_criterion(logits, labels).item()
            if self.log:
                print('Before temperature - NLL: %.3f, ECE: %.3f' % (before_temperature_nll, before_temperature_ece))

            nll_val = 10 ** 7
            ece_val = 10 ** 7
            T_opt_nll = 1.0
            T_opt_ece = 1.0
            T = 0.1
            for i in range(100):
                self.temperature = T
                self.cuda()
                after_temperature_nll = nll_criterion(self.temperature_scale(logits), labels).item()
                after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
                if nll_val > after_temperature_nll:
                    T_opt_nll = T
                    nll_val = after_temperature_nll

                if ece_val > after_temperature_ece:
                    T_opt_ece = T
                    ece_val = after_temperature_ece
                T += 0.1

            if cross_validate == 'ece':
                self.temperature = T_opt_ece
            else:
                self.temperature = T_opt_nll
            self.cuda()

            # Calculate NLL and ECE after temperature scaling
            after_temperature_nll = nll_criterion(self.temperature_scale(logits), labels).item()
            after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
            if self.log:
                print('Optimal temperature: %.3f' % self.temperature)
                print('After temperature - NLL: %.3f, ECE: %.3f' % (after_temperature_nll, after_temperature_ece))
        
        else:
            self.cuda()
            self.model.eval()
            nll_criterion = nn.CrossEntropyLoss().cuda()
            ece_criterion = ECELoss().cuda()
            csece_criterion = ClassECELoss().cuda()
            posneg_csece_criterion = posnegECELoss().cuda()

            # First: collect all the logits and labels for the validation set
            logits_list = []
            labels_list = []
            with torch.no_grad():
                for input, label in valid_loader:
                    input = input.cuda()
                    logits = self.model(input)
                    logits_list.append(logits)
                    labels_list.append(label)
                logits = torch.cat(logits_list).cuda()
                labels = torch.cat(labels_list).cuda()

            before_temperature_ece = ece_criterion(logits, labels).item()
            if self.log:
                print('Before temperature - ECE: %.3f' % (before_temperature_ece))

            ece_val = 10 ** 7
            T_opt_ece = 1.0
            T = 0.1
            for i in range(100):
                self.temperature = T
                self.cuda()
                after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
                if ece_val > after_temperature_ece:
                    T_opt_ece = T
                    ece_val = after_temperature_ece
                T += 0.1

            init_temp = T_opt_ece
            self.temperature = T_opt_ece
            
            # Calculate NLL and ECE after temperature scaling
            after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
            if self.log:
                print('Optimal temperature: %.3f' % init_temp)
                print('After temperature - ECE: %.3f' % (after_temperature_ece))

            """
            Find tempearature vector for the model (using the validation set) with cross-validation on ECE
            """
            T_opt_nll = 1.0
            T_opt_ece = 1.0
            T_opt_csece = init_temp*torch.ones(logits.size()[1]).cuda()
            T_csece = init_temp*torch.ones(logits.size()[1]).cuda()
            self.csece_temperature = T_csece
            self.ece_list.append(ece_criterion(self.class_temperature_scale(logits), labels).item())
            _, accuracy, _, _, _ = test_classification_net_logits(logits, labels)
            if acc_check:
                _, temp_accuracy, _, _, _ = test_classification_net_logits(self.class_temperature_scale(logits), labels)
                if temp_accuracy >= accuracy:
                    accuracy = temp_accuracy
            
            steps_limit = 0.2
            temp_steps = torch.linspace(-steps_limit, steps_limit, int((2 * steps_limit) / 0.1 + 1))
            converged = False
            prev_temperatures = self.csece_temperature.clone()
            nll_val = 10 ** 7
            ece_val = 10 ** 7
            csece_val = 10 ** 7
                 
            #for iter in range(self.iters):
            while not converged:
                for label in range(logits.size()[1]):
                    init_temp_value = T_csece[label].item()
                    #T = 0.1
                    #for i in range(100):
                    for step in temp_steps:
                        #T_csece[label] = T
                        T_csece[label] = init_temp_value + step
                        self.csece_temperature = T_csece
                        #self.temperature = T
                        self.cuda()
                        #after_temperature_nll = nll_criterion(self.temperature_scale(logits), labels).item()
                        after_temperature_ece = ece_criterion(self.class_temperature_scale(logits), labels).item()
                        #after_temperature_ece_reg = ece_criterion(self.temperature_scale(logits), labels).item()
                        if acc_check:
                            _, temp_accuracy, _, _, _ = test_classification_net_logits(self.class_temperature_scale(logits), labels)

                        if acc_check:
                            if csece_val > after_temperature_ece and temp_accuracy >= accuracy:
                                T_opt_csece[label] = T
                                csece_val = after_temperature_ece
                                accuracy = temp_accuracy
                        else:
                            if csece_val > after_temperature_ece:
                                #T_opt_csece[label] = T
                                T_opt_csece[label] = init_temp_value + step
                                csece_val = after_temperature_ece
                        #T += 0.1
                    T_csece[label] = T_opt_csece[label]
                self.csece_temperature = T_opt_csece
                self.ece_list.append(ece_criterion(self.class_temperature_scale(logits), labels).item())
                converged = torch.all(self.csece_temperature.eq(prev_temperatures))
                prev_temperatures = self.csece_temperature.clone()

            self.csece_temperature = T_opt_csece
            self.cuda()
        return self


    # --- temperature_scaling.py l.498-502
    def histedges_equalN(self, x):
        npt = len(x)
        return np.interp(np.linspace(0, npt, self.n_bins + 1),
                     np.arange(npt),
                     np.sort(x))


    # --- temperature_scaling.py l.659-833
    def set_bins_dists(self, valid_loader, cross_validate='ece', init_temp=2.5, acc_check=False, top_temp=10):
            """
            Tune the tempearature of the model (using the validation set) with cross-validation on ECE or NLL
            """
            self.cuda()
            self.model.eval()
            nll_criterion = nn.CrossEntropyLoss().cuda()
            ece_criterion = ECELoss().cuda()

            # First: collect all the logits and labels for the validation set
            logits_list = []
            labels_list = []
            with torch.no_grad():
                for input, label in valid_loader:
                    input = input.cuda()
                    logits = self.model(input)
                    logits_list.append(logits)
                    labels_list.append(label)
                logits = torch.cat(logits_list).cuda()
                labels = torch.cat(labels_list).cuda()

            # Calculate NLL and ECE before temperature scaling
            before_temperature_nll = nll_criterion(logits, labels).item()
            before_temperature_ece = ece_criterion(logits, labels).item()
            if self.log:
                print('Before temperature - NLL: %.3f, ECE: %.3f' % (before_temperature_nll, before_temperature_ece))
                
            n_bins = self.n_bins
            eps = 1e-6
            ece_val = 10 ** 7
            T_opt_ece = 1.0
            T = 0.1
            for i in range(100):
                self.temperature = T
                self.cuda()
                after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
                if ece_val > after_temperature_ece:
                    T_opt_ece = T
                    ece_val = after_temperature_ece
                T += 0.1

            init_temp = T_opt_ece
            self.temperature = T_opt_ece
            
            # Calculate NLL and ECE after temperature scaling
            after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
            if self.log:
                print('Optimal temperature: %.3f' % init_temp)
                print('After temperature - ECE: %.3f' % (after_temperature_ece))

            init_temp = 1
            T_opt_bece = init_temp*torch.ones(logits.shape[0]).cuda()
            T_bece = init_temp*torch.ones(logits.shape[0]).cuda()
            self.bins_T = init_temp*torch.ones((n_bins, self.iters)).cuda()
            self.bece_temperature = T_bece
            
            self.ece_list.append(ece_criterion(self.temperature_scale(logits), labels).item())
                    
            softmaxes = F.softmax(logits, dim=1)
            confidences, predictions = torch.max(softmaxes, 1)
            # confidences[confidences > 0.99999] = 0.99999
            accuracies = predictions.eq(labels)
            n_classes = logits.shape[1]
                            
            for i in range(self.iters):
                ece_in_iter = 0
                print('iter num ', i+1)
                bin = 0
                few_examples = dict()
                n, self.bin_boundaries[i] = np.histogram(confidences.cpu().detach(), self.histedges_equalN(confidences.cpu().detach()))
                bin_lowers = self.bin_boundaries[i][:-1]
                bin_uppers = self.bin_boundaries[i][1:]
                
                for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                    bece_val = 10 ** 7
                    in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                    prop_in_bin = in_bin.float().mean()
                    if confidences[in_bin].shape[0] < 20:
                        samples = T_bece[in_bin].shape[0]
                        print('number of samples in bin {0}: {1}'.format(bin + 1, samples))
                        few_examples[bin] = samples
                        bin += 1
                        continue
                    if any(in_bin):
                        init_temp_value = T_bece[in_bin][0].item()
                        origin_avg_confidence_in_bin = confidences[in_bin].mean()
                        origin_accuracy_in_bin = accuracies[in_bin].float().mean().item()
                        accuracy_in_bin = min(origin_accuracy_in_bin, 0.99)
                        accuracy_in_bin = max(accuracy_in_bin, 0.01)
                        
                        if self.grid:
                            T = 0.1
                            for t in range(100):
                                temp_softmaxes = softmaxes.clone()
                                T_bece[in_bin] = T
                                temp_softmaxes[in_bin] = T * temp_softmaxes[in_bin] + (1 - T) * 1 / n_classes
                                temp_softmaxes /= torch.sum(temp_softmaxes, 1, keepdim=True)
                                confidences_temp, _ = torch.max(temp_softmaxes[in_bin], 1)
                                self.bece_temperature = T_bece
                                
                                avg_confidence_in_bin = confidences_temp.mean()
                                after_temperature = torch.abs(accuracy_in_bin - avg_confidence_in_bin)
                                
                                if bece_val > after_temperature + eps:
                                    T_opt_bece[in_bin] = T
                                    bece_val = after_temperature
                                    #print('conf-acc: ', (avg_confidence_in_bin - accuracy_in_bin).item())
                                    #print('temp: ', T)
                                T += 0.1
                        
                        else:    
                            weight_i = (origin_accuracy_in_bin - 1/n_classes) / (origin_avg_confidence_in_bin - 1/n_classes)
                            weight_i = max(0, min(1, weight_i.item()))
                            T_opt_bece[in_bin] = weight_i
                        
                            # Compute bin's updated ECE
                            temp_softmaxes = softmaxes.clone()
                            temp_softmaxes[in_bin] = weight_i * temp_softmaxes[in_bin] + (1 - weight_i) * 1 / n_classes
                            temp_softmaxes /= torch.sum(temp_softmaxes, 1, keepdim=True)
                            confidences_temp, _ = torch.max(temp_softmaxes[in_bin], 1)
                            avg_confidence_in_bin = confidences_temp.mean()
                            bece_val = torch.abs(origin_accuracy_in_bin - avg_confidence_in_bin)
                        
                        T_bece[in_bin] = T_opt_bece[in_bin]
                        self.bins_T[bin, i] = T_opt_bece[in_bin][0].item()
                        
                        samples = T_bece[in_bin].shape[0]
                        ece_in_iter += prop_in_bin * bece_val
                        print('ece in bin ', bin+1, ' :', (prop_in_bin * bece_val).item(), ', number of samples: ', samples)
                    bin += 1

                for bin in few_examples:
                    #bins_T[bin, i] = self.temperature

                    if bin > 0 and bin < n_bins - 1:
                        lower_bin = bin - 1
                        upper_bin = bin + 1
                        while lower_bin in few_examples and lower_bin - 1 >= 0:
                            lower_bin -= 1
                        while upper_bin in few_examples and upper_bin + 1 <= n_bins - 1:
                            upper_bin += 1
                        if upper_bin == n_bins - 1:
                            self.bins_T[bin, i] = self.bins_T[lower_bin, i]
                        else:
                            avg_temp = (self.bins_T[lower_bin, i] + self.bins_T[upper_bin, i]) / 2  # Mean temperature of neighbors
                            self.bins_T[bin, i] = avg_temp
                    elif bin == 0:
                        upper_bin = bin + 1
                        while upper_bin in few_examples and upper_bin + 1 <= n_bins - 1:
                            upper_bin += 1
                        self.bins_T[bin, i] = self.bins_T[upper_bin, i]
                    else:
                        lower_bin = bin - 1
                        while lower_bin in few_examples and lower_bin - 1 >= 0:
                            lower_bin -= 1
                        self.bins_T[bin, i] = self.bins_T[lower_bin, i]
                
                self.bece_temperature = T_opt_bece
                current_ece = ece_criterion(self.bins_temperature_scale(logits), labels).item()
                print('ece in iter ', i + 1, ' :', current_ece)
                if i > 0 and current_ece < self.ece_list[self.best_iter]:
                    self.best_iter = i
                if abs(self.ece_list[-1] - current_ece) > eps:
                    self.ece_list.append(current_ece)
                else:
                    self.iters = i + 1
                    break
                
                weight = self.bece_temperature.unsqueeze(-1).repeat(1, logits.shape[1])
                softmaxes = weight * softmaxes + (1 - weight) * 1 / n_classes
                confidences, predictions = torch.max(softmaxes, 1)
                
            self.bece_temperature = T_opt_bece

            return self


    # --- temperature_scaling.py l.835-936
    def set_single_dists(self, val_loader, log=True):
        """
        Tune the tempearature of the model (using the validation set) with cross-validation on ECE without bins
        """
        ece_criterion = ECELoss().cuda()
        
        # First: collect all the logits and labels for the validation set
        logits_list = []
        labels_list = []
        with torch.no_grad():
            for input, label in val_loader:
                input = input.cuda()
                logits = self.model(input)
                logits_list.append(logits)
                labels_list.append(label)
            logits = torch.cat(logits_list).cuda()
            labels = torch.cat(labels_list).cuda()

        # Calculate ECE before temperature scaling
        before_temperature_ece = ece_criterion(logits, labels).item()
        if log:
            print('Before temperature - ECE: %.3f' % before_temperature_ece)
            
        ece_val = 10 ** 7
        T_opt_ece = 1.0
        T = 0.1
        for i in range(100):
            self.temperature = T
            self.cuda()
            after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
            if ece_val > after_temperature_ece:
                T_opt_ece = T
                ece_val = after_temperature_ece
            T += 0.1

        init_temp = T_opt_ece
        self.temperature = T_opt_ece
        
        # Calculate NLL and ECE after temperature scaling
        after_temperature_ece = ece_criterion(self.temperature_scale(logits), labels).item()
        if self.log:
            print('Optimal temperature: %.3f' % init_temp)
            print('After temperature - ECE: %.3f' % (after_temperature_ece))
    
        softmaxes = F.softmax(logits, 1)
        n_classes = logits.shape[1]
        eps = 1e-6
        ece_val = 10 ** 7
        T_opt_ece = 1.0

        if not self.grid:
            confidences, predictions = torch.max(softmaxes, 1)
            accuracies = predictions.eq(labels)
            n_bins = 15
            
            n, bin_boundaries = np.histogram(confidences.cpu().detach(), histedges_equalN(confidences.cpu().detach(), n_bins=n_bins))
            bin_lowers = bin_boundaries[:-1]
            bin_uppers = bin_boundaries[1:]
            
            numerator = []
            dominator = []
            
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                if any(in_bin):
                    accuracies_temp = accuracies[in_bin]
                    accuracy_in_bin = accuracies_temp.float().mean().item()
                    confidence_in_bin = confidences[in_bin].mean()
                    numerator.append((confidence_in_bin - 1 / n_classes) * (accuracy_in_bin - 1 / n_classes))
                    dominator.append((confidence_in_bin - 1 / n_classes) * (confidence_in_bin - 1 / n_classes))
            
            numerator = torch.Tensor(numerator)
            dominator = torch.Tensor(dominator)
            self.weight = torch.sum(numerator) / torch.sum(dominator)
        
        else:
            T = 0.001
            for i in range(1000):
                temp_softmaxes = softmaxes.clone()
                self.weight = T
                temp_softmaxes = T * temp_softmaxes + (1 - T) * 1 / n_classes
                temp_softmaxes /= torch.sum(temp_softmaxes, 1, keepdim=True)
                after_temperature_ece = ece_criterion(temp_softmaxes, labels, is_logits=False).item()

                if ece_val > after_temperature_ece + eps:
                    T_opt_ece = T
                    ece_val = after_temperature_ece
                T += 0.001
            
            self.weight = T_opt_ece
        
        softmaxes = self.weight * softmaxes + (1 - self.weight) * 1 / n_classes
        softmaxes /= torch.sum(softmaxes, 1, keepdim=True)

        # Calculate ECE after temperature scaling
        after_temperature_ece = ece_criterion(softmaxes, labels, is_logits=False).item()
        if log:
            print('Optimal weight: %.3f' % self.weight)
            print('After temperature - ECE: %.3f' % after_temperature_ece)

        
        return self


# --- temperature_scaling.py l.939-944
def temperature_scale2(logits, temperature):
    """
    Perform temperature scaling on logits
    """
    # Expand temperature to match the size of logits
    return logits / temperature


# --- temperature_scaling.py l.946-951
def class_temperature_scale2(logits, csece_temperature):
    """
    Perform temperature scaling on logits
    """
    # Expand temperature to match the size of logits
    return logits / csece_temperature


# --- temperature_scaling.py l.1258-1263
def bins_temperature_scale2(logits, bece_temperature):
        """
        Perform temperature scaling on logits
        """     
        # Expand temperature to match the size of logits
        return logits / torch.unsqueeze(bece_temperature, -1)


# --- temperature_scaling.py l.1266-1270
def histedges_equalN(x, n_bins=15):
    npt = len(x)
    return np.interp(np.linspace(0, npt, n_bins + 1),
                    np.arange(npt),
                    np.sort(x))


# --- temperature_scaling.py l.1299-1315
def bin_ece(logits, accuracies, in_bin, is_logits=True):
    accuracies_temp = accuracies[in_bin]
    origin_accuracy_in_bin = accuracies_temp.float().mean().item()
    accuracy_in_bin = min(origin_accuracy_in_bin, 0.99)
    accuracy_in_bin = max(accuracy_in_bin, 0.01)
    prop_in_bin = in_bin.float().mean()
    if is_logits:
        softmaxes_temp = F.softmax(logits, dim=1)
        confidences_temp, _ = torch.max(softmaxes_temp, 1)
    else:
        confidences_temp, _ = torch.max(logits, 1)
    avg_confidence_in_bin = confidences_temp.mean()
    after_temperature = torch.abs(accuracy_in_bin - avg_confidence_in_bin)
    samples = logits.shape[0]
    ece = (prop_in_bin * after_temperature).item()

    return ece, samples, origin_accuracy_in_bin, avg_confidence_in_bin


# --- temperature_scaling.py l.1318-1386
def bins_temperature_scale_test3(logits, labels, bins_T, iters, bin_boundaries, many_samples, single_temp, best_iter, n_bins=15):
        """
        Perform temperature scaling on logits
        """
        ece_criterion = ECELoss(n_bins=25).cuda()
        softmaxes = F.softmax(logits, dim=1)
        confidences, predictions = torch.max(softmaxes, 1)
        accuracies = predictions.eq(labels)
        #confidences[confidences > 0.9995] = 0.9995
        logits_np = logits.cpu().detach().numpy()
        scaled_logits = logits.clone()
        ece_list = []
        ece_per_bin = []
        single_ece_per_bin = []
        original_ece_per_bin = []
        print(f'Number of iters: {best_iter + 1}')
        for i in range(best_iter + 1):
            bin = 0
            prev_bin = None
            print('\n')            
            bin_lowers = bin_boundaries[i][:-1]
            bin_uppers = bin_boundaries[i][1:]
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                if any(in_bin):
                    """
                    # Smoothing
                    bin_len = max(bin_upper - bin_lower, 1e-5)
                    conf_location = (confidences[in_bin] - bin_lower) / bin_len
                    high_conf = conf_location.gt(0.5)
                    low_conf = conf_location.le(0.5)
                    if bin > 0 and bin < n_bins - 1:
                        prev_avg = (bins_T[bin, i] + bins_T[bin - 1, i]) / 2
                        next_avg = (bins_T[bin + 1, i] + bins_T[bin, i]) / 2
                        temps_high = (2 * (conf_location[high_conf] - 0.5) * abs(bins_T[bin, i] - next_avg) + bins_T[bin, i]).unsqueeze(dim=-1)
                        temps_low = (2 * conf_location[low_conf] * abs(bins_T[bin, i] - prev_avg) + prev_avg).unsqueeze(dim=-1)
                    elif bin == 0:
                        next_avg = (bins_T[bin + 1, i] + bins_T[bin, i]) / 2
                        temps_high = (2 * (conf_location[high_conf] - 0.5) * abs(bins_T[bin, i] - next_avg) + bins_T[bin, i]).unsqueeze(dim=-1)
                        temps_low = bins_T[bin, i]
                    else:
                        prev_avg = abs(bins_T[bin, i] + bins_T[bin - 1, i]) / 2
                        temps_high = bins_T[bin, i]
                        temps_low = (2 * conf_location[low_conf] * abs(bins_T[bin, i] - prev_avg) + prev_avg).unsqueeze(dim=-1)
                    #temps[temps == 0] = 1e-5
                    #scaled_logits[in_bin][high_conf] = scaled_logits[in_bin][high_conf] / temps_high
                    #scaled_logits[in_bin][low_conf] = scaled_logits[in_bin][low_conf] / temps_low
                    """
                    original_ece, samples, accuracy_in_bin, origin_avg_confidence_in_bin = bin_ece(logits[in_bin], accuracies, in_bin)
                    original_ece_per_bin.append(original_ece)
                    scaled_logits[in_bin] = scaled_logits[in_bin] / bins_T[bin, i]
                    ece, _, _, _ = bin_ece(scaled_logits[in_bin], accuracies, in_bin)
                    ece_per_bin.append(ece)
                    single_logits = logits[in_bin] / single_temp
                    single_ece, _, _, _ = bin_ece(single_logits, accuracies, in_bin)
                    single_ece_per_bin.append(single_ece)
                    print('original average confidence in bin ', bin + 1, ' :', origin_avg_confidence_in_bin.item())
                    print('ece in bin ', bin + 1, ' :', ece,
                        ', number of samples: ', samples)
                    print('accuracy in bin ', bin + 1, ': ', accuracy_in_bin)
                bin += 1

            ece_list.append(ece_criterion(scaled_logits, labels).item())
            softmaxes = F.softmax(scaled_logits, dim=1)
            confidences, _ = torch.max(softmaxes, 1)
        
        print(ece_list)
                            
        return scaled_logits, ece_per_bin, single_ece_per_bin, original_ece_per_bin, ece_list


# --- temperature_scaling.py l.1388-1696
def set_temperature3(logits, labels, iters=1, cross_validate='ece',
                     init_temp=2.5, const_temp=False, log=True, num_bins=25):
    """
    Tune the tempearature of the model (using the validation set) with cross-validation on ECE or NLL
    """
    if const_temp:
        nll_criterion = nn.CrossEntropyLoss().cuda()
        ece_criterion = ECELoss().cuda()

        # Calculate NLL and ECE before temperature scaling
        before_temperature_nll = nll_criterion(logits, labels).item()
        before_temperature_ece = ece_criterion(logits, labels).item()
        if log:
            print('Before temperature - NLL: %.3f, ECE: %.3f' % (before_temperature_nll, before_temperature_ece))

        nll_val = 10 ** 7
        ece_val = 10 ** 7
        T_opt_nll = 1.0
        T_opt_ece = 1.0
        T = 0.1
        for i in range(100):
            temperature = T
            after_temperature_nll = nll_criterion(temperature_scale2(logits, temperature), labels).item()
            after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
            if nll_val > after_temperature_nll:
                T_opt_nll = T
                nll_val = after_temperature_nll

            if ece_val > after_temperature_ece:
                T_opt_ece = T
                ece_val = after_temperature_ece
            T += 0.1

        if cross_validate == 'ece':
            temperature = T_opt_ece
        else:
            temperature = T_opt_nll

        # Calculate NLL and ECE after temperature scaling
        after_temperature_nll = nll_criterion(temperature_scale2(logits, temperature), labels).item()
        after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
        if log:
            print('Optimal temperature: %.3f' % temperature)
            print('After temperature - NLL: %.3f, ECE: %.3f' % (after_temperature_nll, after_temperature_ece))

    else:
        """
        Tune single tempearature for the model (using the validation set) with cross-validation on ECE
        """
        # Calculate ECE before temperature scaling
        ece_criterion = ECELoss(n_bins=num_bins).cuda()
        nll_criterion = nn.CrossEntropyLoss().cuda()
        before_temperature_ece = ece_criterion(logits, labels).item()
        if log:
            print('Before temperature - ECE: %.3f' % (before_temperature_ece))
            
        n_bins = num_bins
        if cross_validate != 'ece':
            n_bins = 50
        eps = 1e-5
        nll_val = 10 ** 7
        ece_val = 10 ** 7
        T_opt_nll = 1.0
        T_opt_ece = 1.0
        T = 0.1
        labels = labels.type(torch.LongTensor).cuda()
        temps_iters = torch.ones(iters).cuda()
        for i in range(iters):
            temp_logits = logits.clone()
            for t in range(100):
                temperature = T
                after_temperature_ece = ece_criterion(temperature_scale2(temp_logits, temperature), labels).item()
                after_temperature_nll = nll_criterion(temperature_scale2(temp_logits, temperature), labels).item()
                if ece_val > after_temperature_ece:
                    T_opt_ece = T
                    ece_val = after_temperature_ece
                if nll_val > after_temperature_nll:
                    T_opt_nll = T
                    nll_val = after_temperature_nll
                T += 0.1
            if cross_validate == 'ece':
                temps_iters[i] = T_opt_ece
            else:
                temps_iters[i] = T_opt_nll
            temp_logits = temp_logits / T_opt_ece
            after_temperature_ece = ece_criterion(temperature_scale2(temp_logits, T_opt_ece), labels).item()
            print('Temperature for #{} iteration for single TS: {}'.format(i + 1, after_temperature_ece))
            
        if cross_validate == 'ece':
            temperature = T_opt_ece
        else:
            temperature = T_opt_nll

        init_temp = temperature
        
        # Calculate ECE after temperature scaling
        after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
        if log:
            print('Optimal temperature: %.3f' % init_temp)
            print('After temperature - ECE: %.3f' % (after_temperature_ece))

        init_temp = 1
        #top_temp = T_opt_ece
        
        bins_T = init_temp*torch.ones((n_bins, iters)).cuda()
        ece_list = []        
        ece_list.append(ece_criterion(temperature_scale2(logits, temperature), labels).item())
                
        softmaxes = F.softmax(logits, dim=1)
        confidences, predictions = torch.max(softmaxes, 1)
        # confidences[confidences > 0.9995] = 0.9995
        accuracies = predictions.eq(labels)
        
        bin_boundaries = torch.linspace(0, 1, n_bins + 1).unsqueeze(0).repeat((iters, 1)).numpy()
        
        #steps_limit = 0.2
        #temp_steps = torch.linspace(-steps_limit, steps_limit, int((2 * steps_limit) / 0.1 + 1)).cuda()
        many_samples = None
        original_bins = torch.zeros(confidences.shape)
        ece_ada_list = []
        count_high_acc = 0
        is_acc = False
        n, bin_boundaries[0] = np.histogram(confidences.cpu().detach(), histedges_equalN(confidences.cpu().detach(), n_bins=n_bins))
        bin_lowers = bin_boundaries[0][:-1]
        bin_uppers = bin_boundaries[0][1:]
        
        for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
            in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
            if any(in_bin):
                accuracies_temp = accuracies[in_bin]
                origin_accuracy_in_bin = accuracies_temp.float().mean().item()
                if origin_accuracy_in_bin > 0.99:
                    count_high_acc += 1
        if count_high_acc > int(n_bins/2):  # model is highly accurated
            is_acc = True
            confidences[confidences > 0.9995] = 0.9995

        for i in range(iters):
            if cross_validate == 'ece':
                T_opt_bece = init_temp*torch.ones(logits.shape[0]).cuda()
                T_bece = init_temp*torch.ones(logits.shape[0]).cuda()
                bece_temperature = T_bece
            else:
                T_opt_nll = init_temp*torch.ones(logits.shape[0]).cuda()
                T_nll = init_temp*torch.ones(logits.shape[0]).cuda()
                nll_temperature = T_nll
            
            ece_in_iter = 0
            print('iter num ', i+1)
            bin = 0
            few_examples = dict()
            if i == 0:
                n, bin_boundaries[i] = np.histogram(confidences.cpu().detach(), histedges_equalN(confidences.cpu().detach(), n_bins=n_bins))
            else:
                bin_boundaries[i] = bin_boundaries[i - 1]
            
            if cross_validate != 'ece':
                bin_boundaries[i][bin_boundaries[i] > 0.999] = 1
            
            #bin_boundaries = torch.linspace(0, 1, n_bins + 1)
            #bin_boundaries[i], many_samples = equal_bins(confidences.cpu().detach(), n_bins=n_bins)
            bin_lowers = bin_boundaries[i][:-1]
            bin_uppers = bin_boundaries[i][1:]

            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                prop_in_bin = in_bin.float().mean()
                # if confidences[in_bin].shape[0] < 20 and cross_validate == 'ece':
                #     samples = T_bece[in_bin].shape[0]
                #     print('number of samples in bin {0}: {1}'.format(bin + 1, samples))
                #     few_examples[bin] = samples
                #     bin += 1
                #     continue
                if any(in_bin):
                    #init_temp_value = T_bece[in_bin][0].item()
                    T = 0.1
                    accuracies_temp = accuracies[in_bin]
                    origin_accuracy_in_bin = accuracies_temp.float().mean().item()
                    origin_avg_confidence_in_bin = confidences[in_bin].mean()
                    accuracy_in_bin = min(origin_accuracy_in_bin, 0.99)
                    accuracy_in_bin = max(accuracy_in_bin, 0.01)
                    
                    if is_acc and cross_validate == 'ece':
                        accuracy_in_bin = origin_accuracy_in_bin
                        
                    if cross_validate == 'ece':
                        bece_val = torch.abs(accuracy_in_bin - origin_avg_confidence_in_bin)
                    else:
                        nll_val = nll_criterion(logits[in_bin] / bins_T[bin, i], labels[in_bin]).item()
                    for t in range(100):
                    #for step in temp_steps:
                        #T_bece[in_bin] = init_temp_value + step
                        
                        logits_temp = logits.clone()
                        if cross_validate == 'ece':
                            T_bece[in_bin] = T
                            bece_temperature = T_bece
                            logits_temp[in_bin] = logits[in_bin] / torch.unsqueeze(T_bece[in_bin], -1)
                            softmaxes_temp = F.softmax(logits_temp, dim=1)
                            confidences_temp, _ = torch.max(softmaxes_temp[in_bin], 1)
                            avg_confidence_in_bin = confidences_temp.mean()
                            after_temperature = torch.abs(accuracy_in_bin - avg_confidence_in_bin)
                            
                            if bece_val > after_temperature + eps:
                                #T_opt_bece[in_bin] = init_temp_value + step
                                T_opt_bece[in_bin] = T
                                bece_val = after_temperature                      
                        
                        else:
                            T_nll[in_bin] = T
                            nll_temperature = T_nll
                            after_temperature_nll = nll_criterion(logits[in_bin] / torch.unsqueeze(T_nll[in_bin], -1), labels[in_bin]).item() 
                            
                            if nll_val > after_temperature_nll:
                                T_opt_nll[in_bin] = T
                                nll_val = after_temperature_nll
                        
                        T += 0.1
                      
                    original_bins[in_bin] = bin
                    if cross_validate == 'ece':
                        T_bece[in_bin] = T_opt_bece[in_bin]
                        bins_T[bin, i] = T_opt_bece[in_bin][0].item()
                        samples = T_bece[in_bin].shape[0]
                        ece_in_iter += prop_in_bin * bece_val
                    else:
                        T_nll[in_bin] = T_opt_nll[in_bin]
                        bins_T[bin, i] = T_opt_nll[in_bin][0].item()
                        samples = T_nll[in_bin].shape[0]
                        ece_in_iter += prop_in_bin * nll_val
                                            
                    print('original average confidence in bin ', bin + 1, ' :', origin_avg_confidence_in_bin.item())
                    if cross_validate == 'ece':
                        print('ece in bin ', bin+1, ' :', (prop_in_bin * bece_val).item(), ', number of samples: ', samples)
                    else:
                        print('ece in bin ', bin+1, ' :', (prop_in_bin * nll_val).item(), ', number of samples: ', samples)
                    print('accuracy in bin ', bin+1, ': ', origin_accuracy_in_bin)

                bin += 1

            print(bins_T[:, i])
            if cross_validate == 'ece':
                for bin in few_examples:
                    #bins_T[bin, i] = temperature

                    if bin > 0 and bin < n_bins - 1:
                        lower_bin = bin - 1
                        upper_bin = bin + 1
                        while lower_bin in few_examples and lower_bin - 1 >= 0:
                            lower_bin -= 1
                        while upper_bin in few_examples and upper_bin + 1 <= n_bins - 1:
                            upper_bin += 1
                        if upper_bin == n_bins - 1:
                            bins_T[bin, i] = bins_T[lower_bin, i]
                        else:
                            avg_temp = (bins_T[lower_bin, i] + bins_T[upper_bin, i]) / 2  # Mean temperature of neighbors
                            bins_T[bin, i] = avg_temp
                    elif bin == 0:
                        upper_bin = bin + 1
                        while upper_bin in few_examples and upper_bin + 1 <= n_bins - 1:
                            upper_bin += 1
                        bins_T[bin, i] = bins_T[upper_bin, i]
                    else:
                        lower_bin = bin - 1
                        while lower_bin in few_examples and lower_bin - 1 >= 0:
                            lower_bin -= 1
                        bins_T[bin, i] = bins_T[lower_bin, i]
            
            if cross_validate == 'ece':
                bece_temperature = T_opt_bece
                current_ece = ece_criterion(bins_temperature_scale2(logits, bece_temperature), labels).item()
            else:
                nll_temperature = T_opt_nll
                current_ece = ece_criterion(bins_temperature_scale2(logits, nll_temperature), labels).item()
            print('ece in iter ', i+1, ' :', current_ece)
            if i > 0 and current_ece < ece_list[best_iter]:
                best_iter = i
            if i == 0:
                best_iter = 0
            if abs(ece_list[-1] - current_ece) > eps:
                ece_list.append(current_ece)
            else:
                iters = i + 1
                break

            if isinstance(ece_in_iter, int):
                ece_ada_list.append(ece_in_iter)
            else:
                ece_ada_list.append(ece_in_iter.item())
            if cross_validate == 'ece':
                logits = logits / torch.unsqueeze(bece_temperature, -1)
            else:
                logits = logits / torch.unsqueeze(nll_temperature, -1)
            softmaxes = F.softmax(logits, dim=1)
            confidences, _ = torch.max(softmaxes, 1)
            moved_bins = torch.zeros(confidences.shape)
            bin = 0
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                moved_bins[in_bin] = bin
                bin += 1
            bins_moved = torch.eq(original_bins, moved_bins)
            moved_precentage = bins_moved.float().mean()
            print('Precentage of moved bins after scaling: ', 100 - (moved_precentage * 100).item())
        
        if const_temp:
            return temperature
        else:
            return bins_T, temperature, bin_boundaries, many_samples, best_iter


# --- temperature_scaling.py l.1708-1754
def bins_temperature_scale_test4(logits, labels, bins_T, iters, bin_boundaries, single_temp, best_iter, n_bins=15):
        """
        Perform temperature scaling on logits
        """
        ece_criterion = ECELoss(n_bins=10).cuda()
        softmaxes = F.softmax(logits, dim=1)
        confidences, predictions = torch.max(softmaxes, 1)
        accuracies = predictions.eq(labels)
        # confidences[confidences > 0.99999] = 0.99999
        logits_np = logits.cpu().detach().numpy()
        n_classes = logits.shape[1]
        ece_list = []
        ece_per_bin = []
        single_ece_per_bin = []
        original_ece_per_bin = []
        print(f'Number of iters: {best_iter + 1}')
        for i in range(best_iter + 1):
            bin = 0
            prev_bin = None
            print('\n')            
            bin_lowers = bin_boundaries[i][:-1]
            bin_uppers = bin_boundaries[i][1:]
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                if any(in_bin):
                    original_ece, samples, accuracy_in_bin, origin_avg_confidence_in_bin = bin_ece(logits[in_bin], accuracies, in_bin)
                    original_ece_per_bin.append(original_ece)
                    weight = bins_T[bin, i]
                    softmaxes[in_bin] = weight * softmaxes[in_bin] + (1 - weight) * 1 / n_classes
                    ece, _, _, _ = bin_ece(softmaxes[in_bin], accuracies, in_bin, is_logits=False)
                    ece_per_bin.append(ece)
                    single_logits = logits[in_bin] / single_temp
                    single_ece, _, _, _ = bin_ece(single_logits, accuracies, in_bin)
                    single_ece_per_bin.append(single_ece)
                    print('original average confidence in bin ', bin + 1, ' :', origin_avg_confidence_in_bin.item())
                    print('ece in bin ', bin + 1, ' :', ece,
                        ', number of samples: ', samples)
                    print('accuracy in bin ', bin + 1, ': ', accuracy_in_bin)
                bin += 1

            softmaxes /= torch.sum(softmaxes, 1, keepdim=True)
            ece_list.append(ece_criterion(softmaxes, labels, is_logits=False).item())
            confidences, _ = torch.max(softmaxes, 1)
        
        print(ece_list)
                            
        return softmaxes, ece_per_bin, single_ece_per_bin, original_ece_per_bin, ece_list


# --- temperature_scaling.py l.1756-2034
def set_temperature4(logits, labels, iters=1, cross_validate='ece',
                     init_temp=2.5, acc_check=False, const_temp=False, log=True, num_bins=25, top_temp=10):
    """
    Tune the tempearature of the model (using the validation set) with cross-validation on ECE or NLL
    """
    if const_temp:
        nll_criterion = nn.CrossEntropyLoss().cuda()
        ece_criterion = ECELoss(n_bins=num_bins).cuda()

        # Calculate NLL and ECE before temperature scaling
        before_temperature_nll = nll_criterion(logits, labels).item()
        before_temperature_ece = ece_criterion(logits, labels).item()
        if log:
            print('Before temperature - NLL: %.3f, ECE: %.3f' % (before_temperature_nll, before_temperature_ece))

        nll_val = 10 ** 7
        ece_val = 10 ** 7
        T_opt_nll = 1.0
        T_opt_ece = 1.0
        T = 0.1
        for i in range(100):
            temperature = T
            after_temperature_nll = nll_criterion(temperature_scale2(logits, temperature), labels).item()
            after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
            if nll_val > after_temperature_nll:
                T_opt_nll = T
                nll_val = after_temperature_nll

            if ece_val > after_temperature_ece:
                T_opt_ece = T
                ece_val = after_temperature_ece
            T += 0.1

        if cross_validate == 'ece':
            temperature = T_opt_ece
        else:
            temperature = T_opt_nll

        # Calculate NLL and ECE after temperature scaling
        after_temperature_nll = nll_criterion(temperature_scale2(logits, temperature), labels).item()
        after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
        if log:
            print('Optimal temperature: %.3f' % temperature)
            print('After temperature - NLL: %.3f, ECE: %.3f' % (after_temperature_nll, after_temperature_ece))

    else:
        """
        Tune single tempearature for the model (using the validation set) with cross-validation on ECE
        """
        # Calculate ECE before temperature scaling
        ece_criterion = ECELoss(n_bins=num_bins).cuda()
        nll_criterion = nn.NLLLoss().cuda()
        before_temperature_ece = ece_criterion(logits, labels).item()
        if log:
            print('Before temperature - ECE: %.3f' % (before_temperature_ece))
            
        n_bins = num_bins
        eps = 1e-5
        nll_val = 10 ** 7
        ece_val = 10 ** 7
        T_opt_nll = 1.0
        T_opt_ece = 1.0
        T = 0.1
        labels = labels.type(torch.LongTensor).cuda()
        temps_iters = torch.ones(iters).cuda()
        for i in range(iters):
            temp_logits = logits.clone()
            for t in range(100):
                temperature = T
                after_temperature_ece = ece_criterion(temperature_scale2(temp_logits, temperature), labels).item()
                after_temperature_nll = nll_criterion(temperature_scale2(temp_logits, temperature), labels).item()
                if ece_val > after_temperature_ece:
                    T_opt_ece = T
                    ece_val = after_temperature_ece
                if nll_val > after_temperature_nll:
                    T_opt_nll = T
                    nll_val = after_temperature_nll
                T += 0.1
            temps_iters[i] = T_opt_ece
            temp_logits = temp_logits / T_opt_ece
            after_temperature_ece = ece_criterion(temperature_scale2(temp_logits, T_opt_ece), labels).item()
            print('Temperature for #{} iteration for single TS: {}'.format(i + 1, after_temperature_ece))
            
        temperature = T_opt_ece
        init_temp = temperature
        
        # Calculate ECE after temperature scaling
        after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
        if log:
            print('Optimal temperature: %.3f' % init_temp)
            print('After temperature - ECE: %.3f' % (after_temperature_ece))

        init_temp = 0
        
        bins_T = init_temp*torch.ones((n_bins, iters)).cuda()
        ece_list = []        
        ece_list.append(ece_criterion(temperature_scale2(logits, temperature), labels).item())
                
        softmaxes = F.softmax(logits, dim=1)
        confidences, predictions = torch.max(softmaxes, 1)
        # confidences[confidences > 0.99999] = 0.99999
        accuracies = predictions.eq(labels)
        
        bin_boundaries = torch.linspace(0, 1, n_bins + 1).unsqueeze(0).repeat((iters, 1)).numpy()
        
        original_bins = torch.zeros(confidences.shape)
        ece_ada_list = []
        count_high_acc = 0
        is_acc = False
        n, bin_boundaries[0] = np.histogram(confidences.cpu().detach(), histedges_equalN(confidences.cpu().detach(), n_bins=n_bins))
        bin_lowers = bin_boundaries[0][:-1]
        bin_uppers = bin_boundaries[0][1:]
        
        for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
            in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
            if any(in_bin):
                accuracies_temp = accuracies[in_bin]
                origin_accuracy_in_bin = accuracies_temp.float().mean().item()
                if origin_accuracy_in_bin > 0.99:
                    count_high_acc += 1
        if count_high_acc > int(n_bins/2):  # model is highly accurated
            is_acc = True
            confidences[confidences > 0.9999] = 0.9999

        n_classes = logits.shape[1]
        
        conf_acc_diff = []
        
        for i in range(iters):
            T_opt_bece = init_temp*torch.ones(logits.shape[0]).cuda()
            T_bece = init_temp*torch.ones(logits.shape[0]).cuda()
            bece_temperature = T_bece
            
            ece_in_iter = 0
            print('iter num ', i+1)
            bin = 0
            few_examples = dict()
            if i == 0:
                n, bin_boundaries[i] = np.histogram(confidences.cpu().detach(), histedges_equalN(confidences.cpu().detach(), n_bins=n_bins))
            else:
                bin_boundaries[i] = bin_boundaries[i - 1]
            
            bin_lowers = bin_boundaries[i][:-1]
            bin_uppers = bin_boundaries[i][1:]
            
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                prop_in_bin = in_bin.float().mean()
                # if confidences[in_bin].shape[0] < 20:
                #     samples = T_bece[in_bin].shape[0]
                #     print('number of samples in bin {0}: {1}'.format(bin + 1, samples))
                #     few_examples[bin] = samples
                #     if bin == 0:
                #         conf_acc_diff.append(0)
                #     else:
                #         conf_acc_diff.append(conf_acc_diff[-1])
                #     bin += 1
                #     continue
                if any(in_bin):
                    T = 0.0
                    accuracies_temp = accuracies[in_bin]
                    origin_accuracy_in_bin = accuracies_temp.float().mean().item()
                    origin_avg_confidence_in_bin = confidences[in_bin].mean()
                    accuracy_in_bin = min(origin_accuracy_in_bin, 0.99)
                    accuracy_in_bin = max(accuracy_in_bin, 0.01)
                    
                    conf_acc_diff.append(origin_avg_confidence_in_bin - origin_accuracy_in_bin)
                    
                    if is_acc:
                        accuracy_in_bin = origin_accuracy_in_bin
                        
                    """
                    bece_val = torch.abs(accuracy_in_bin - origin_avg_confidence_in_bin)
                    # bece_val = ece_criterion(logits, labels)
                    for t in range(100):
                        temp_softmaxes = softmaxes.clone()
                        T_bece[in_bin] = T
                        bece_temperature = T_bece
                        temp_softmaxes[in_bin] = T * temp_softmaxes[in_bin] + (1 - T) * 1 / n_classes
                        # temp_softmaxes[in_bin] = temp_softmaxes[in_bin] - T * dists[in_bin]
                        temp_softmaxes /= torch.sum(temp_softmaxes, 1, keepdim=True)
                        confidences_temp, _ = torch.max(temp_softmaxes[in_bin], 1)
                        avg_confidence_in_bin = confidences_temp.mean()
                        after_temperature = torch.abs(accuracy_in_bin - avg_confidence_in_bin)
                        # after_temperature = ece_criterion(temp_softmaxes, labels, is_logits=False)
                        
                        if bece_val > after_temperature + eps:
                            T_opt_bece[in_bin] = T
                            bece_val = after_temperature                      
                        
                        T += 0.01
                    """
                    
                    weight_i = (origin_accuracy_in_bin - 1/n_classes) / (origin_avg_confidence_in_bin - 1/n_classes)
                    weight_i = max(0, min(1, weight_i.item()))
                    T_opt_bece[in_bin] = weight_i
                    
                    # Compute bin's updated ECE
                    temp_softmaxes = softmaxes.clone()
                    temp_softmaxes[in_bin] = weight_i * temp_softmaxes[in_bin] + (1 - weight_i) * 1 / n_classes
                    temp_softmaxes /= torch.sum(temp_softmaxes, 1, keepdim=True)
                    confidences_temp, _ = torch.max(temp_softmaxes[in_bin], 1)
                    avg_confidence_in_bin = confidences_temp.mean()
                    bece_val = torch.abs(origin_accuracy_in_bin - avg_confidence_in_bin)
                    
                    original_bins[in_bin] = bin
                    T_bece[in_bin] = T_opt_bece[in_bin]
                    bins_T[bin, i] = T_opt_bece[in_bin][0].item()
                    samples = T_bece[in_bin].shape[0]
                    ece_in_iter += prop_in_bin * bece_val
                                            
                    print('original average confidence in bin ', bin + 1, ' :', origin_avg_confidence_in_bin.item())
                    print('ece in bin ', bin+1, ' :', (prop_in_bin * bece_val).item(), ', number of samples: ', samples)
                    print('accuracy in bin ', bin+1, ': ', origin_accuracy_in_bin)
                      

                bin += 1

            print(bins_T[:, i])
            for bin in few_examples:
                #bins_T[bin, i] = temperature

                if bin > 0 and bin < n_bins - 1:
                    lower_bin = bin - 1
                    upper_bin = bin + 1
                    while lower_bin in few_examples and lower_bin - 1 >= 0:
                        lower_bin -= 1
                    while upper_bin in few_examples and upper_bin + 1 <= n_bins - 1:
                        upper_bin += 1
                    if upper_bin == n_bins - 1:
                        bins_T[bin, i] = bins_T[lower_bin, i]
                    else:
                        avg_temp = (bins_T[lower_bin, i] + bins_T[upper_bin, i]) / 2  # Mean temperature of neighbors
                        bins_T[bin, i] = avg_temp
                elif bin == 0:
                    upper_bin = bin + 1
                    while upper_bin in few_examples and upper_bin + 1 <= n_bins - 1:
                        upper_bin += 1
                    bins_T[bin, i] = bins_T[upper_bin, i]
                else:
                    lower_bin = bin - 1
                    while lower_bin in few_examples and lower_bin - 1 >= 0:
                        lower_bin -= 1
                    bins_T[bin, i] = bins_T[lower_bin, i]
            
            bece_temperature = T_opt_bece

            ece_ada_list.append(ece_in_iter.item())
            weight = bece_temperature.unsqueeze(-1).repeat(1, logits.shape[1])
            softmaxes = weight * softmaxes + (1 - weight) * 1 / n_classes
            # softmaxes = softmaxes - bece_temperature.unsqueeze(-1).repeat(1, dists.shape[1]) * dists
            confidences, _ = torch.max(softmaxes, 1)
            current_ece = ece_criterion(softmaxes, labels, is_logits=False).item()
                
            print('ece in iter ', i+1, ' :', current_ece)
            if i > 0 and current_ece < ece_list[best_iter]:
                best_iter = i
            if i == 0:
                best_iter = 0
            if abs(ece_list[-1] - current_ece) > eps:
                ece_list.append(current_ece)
            else:
                iters = i + 1
                break
            
            moved_bins = torch.zeros(confidences.shape)
            bin = 0
            for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
                in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
                moved_bins[in_bin] = bin
                bin += 1
            bins_moved = torch.eq(original_bins, moved_bins)
            moved_precentage = bins_moved.float().mean()
            print('Precentage of moved bins after scaling: ', 100 - (moved_precentage * 100).item())
        
        if const_temp:
            return temperature
        else:
            return bins_T, temperature, bin_boundaries, best_iter, conf_acc_diff


# --- temperature_scaling.py l.2036-2045
def bins_temperature_scale_test5(logits, weight):
        """
        Perform weight scaling on logits
        """
        softmaxes = F.softmax(logits, 1)
        n_classes = logits.shape[1]
        
        softmaxes = weight * softmaxes + (1 - weight) * 1 / n_classes
                                    
        return softmaxes


# --- temperature_scaling.py l.2074-2167
def set_temperature5(logits, labels, n_bins, cross_validate='ece', log=True):
    """
    Tune the tempearature of the model (using the validation set) with cross-validation on ECE without bins
    """
    ece_criterion = ECELoss(n_bins=n_bins).cuda()
    nll_criterion = nn.CrossEntropyLoss().cuda()

    # Calculate ECE before temperature scaling
    before_weight_ece = ece_criterion(logits, labels).item()
    if log:
        print('Before weight scaling - ECE: %.3f' % before_weight_ece)
    
    softmaxes = F.softmax(logits, 1)
    confidences, predictions = torch.max(softmaxes, 1)
    accuracies = predictions.eq(labels)
    n_classes = logits.shape[1]
    n_bins = 13
    
    ece_val = 10 ** 7
    T_opt_ece = 1.0
    
    nll_val = 10 ** 7
    ece_val = 10 ** 7
    T_opt_nll = 1.0
    T_opt_ece = 1.0
    T = 0.1
    labels = labels.type(torch.LongTensor).cuda()
    for t in range(100):
        temperature = T
        after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
        after_temperature_nll = nll_criterion(temperature_scale2(logits, temperature), labels).item()
        if ece_val > after_temperature_ece:
            T_opt_ece = T
            ece_val = after_temperature_ece
        if nll_val > after_temperature_nll:
            T_opt_nll = T
            nll_val = after_temperature_nll
        T += 0.1
        
    if cross_validate == 'ece':
        temperature = T_opt_ece
    else:
        temperature = T_opt_nll
    
    after_temperature_ece = ece_criterion(temperature_scale2(logits, temperature), labels).item()
    print('Temperature for single TS: {}'.format(temperature))
        
    temperature = T_opt_ece
    
    n, bin_boundaries = np.histogram(confidences.cpu().detach(), histedges_equalN(confidences.cpu().detach(), n_bins=n_bins))
    bin_lowers = bin_boundaries[:-1]
    bin_uppers = bin_boundaries[1:]
    
    numerator = []
    dominator = []
    
    for bin_lower, bin_upper in zip(bin_lowers, bin_uppers):
        in_bin = confidences.gt(bin_lower.item()) * confidences.le(bin_upper.item())
        if any(in_bin):
            accuracies_temp = accuracies[in_bin]
            accuracy_in_bin = accuracies_temp.float().mean().item()
            confidence_in_bin = confidences[in_bin].mean()
            numerator.append((confidence_in_bin - 1 / n_classes) * (accuracy_in_bin - 1 / n_classes))
            dominator.append((confidence_in_bin - 1 / n_classes) * (confidence_in_bin - 1 / n_classes))
            
    """
    T = 0.01
    for i in range(100):
        temp_softmaxes = softmaxes.clone()
        weight = T
        temp_softmaxes = temp_softmaxes - T * dists
        temp_softmaxes /= torch.sum(temp_softmaxes, 1, keepdim=True)
        after_weight_ece = ece_criterion(temp_softmaxes, labels, is_logits=False).item()

        if ece_val > after_weight_ece:
            T_opt_ece = T
            ece_val = after_weight_ece
        T += 0.01
    """
    
    numerator = torch.Tensor(numerator)
    dominator = torch.Tensor(dominator)
    weight = torch.sum(numerator) / torch.sum(dominator)
    
    softmaxes = weight * softmaxes + (1 - weight) * 1 / n_classes

    # Calculate ECE after temperature scaling
    after_weight_ece = ece_criterion(softmaxes, labels, is_logits=False).item()
    if log:
        print('Optimal weight: %.3f' % weight)
        print('After weight scaling - ECE: %.3f' % after_weight_ece)

    
    return weight, temperature
'''
