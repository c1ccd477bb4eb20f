"""Probe of the calibench Python package: prints everything it computes, exactly.

    python3 py_probe.py SECTION DATA_DIR

Run once with the old package and once with the new one (PYTHONPATH or site-packages); the
harness compares the output text byte for byte. Floats are printed with repr (shortest
round-trip form), arrays as dtype, shape, sha256 of their bytes, repr of their sum and the
first values, so any difference in any bit shows. Every call is wrapped: an exception prints
its type name and message and the probe carries on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import traceback

import h5py
import numpy as np

import calibench

SECTION = sys.argv[1]
DATA = sys.argv[2]


def D(name):
    return os.path.join(DATA, f"{name}.h5")


def load(name, split, key=None):
    with h5py.File(D(name), "r") as f:
        g = f[split]
        if key is None:
            key = "logits" if "logits" in g else "probs"
        return np.asarray(g[key]), np.asarray(g["labels"])


def arr_summary(a):
    a = np.asarray(a)
    flat = a.ravel()
    if a.dtype.kind == "f":
        s = repr(float(np.sum(a, dtype=np.float64)))
        w = repr(float(np.sum(flat.astype(np.float64) * (1 + np.arange(flat.size) % 7))))
    elif a.dtype.kind in "iub":
        s = repr(int(np.sum(a, dtype=np.int64)))
        w = repr(int(np.sum(flat.astype(np.int64) * (1 + np.arange(flat.size) % 7))))
    else:
        s = w = "-"
    head = [repr(x.item()) for x in flat[:6]]
    digest = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:24]
    return f"array(dtype={a.dtype}, shape={a.shape}, sha256={digest}, sum={s}, wsum={w}, head=[{', '.join(head)}])"


def fmt(x, indent=0):
    """Deterministic exact text of nested results."""
    pad = "  " * indent
    if isinstance(x, dict):
        if not x:
            return "{}"
        lines = ["{"]
        for k, v in x.items():
            lines.append(f"{pad}  {k!r}: {fmt(v, indent + 1)}")
        lines.append(pad + "}")
        return "\n".join(lines)
    if isinstance(x, (list, tuple)):
        if len(x) > 12 and all(isinstance(v, (int, float, bool, type(None))) for v in x):
            return f"{type(x).__name__}[{len(x)}] " + arr_summary(np.array([math.nan if v is None else v for v in x],
                                                                             dtype=np.float64)) + \
                " values=" + ",".join(repr(v) for v in x)
        if not x:
            return "[]" if isinstance(x, list) else "()"
        inner = [fmt(v, indent + 1) for v in x]
        if all("\n" not in s for s in inner) and sum(len(s) for s in inner) < 200:
            o, c = ("[", "]") if isinstance(x, list) else ("(", ")")
            return o + ", ".join(inner) + c
        return "[\n" + "\n".join(f"{pad}  {s}" for s in inner) + f"\n{pad}]"
    if isinstance(x, np.ndarray):
        return arr_summary(x)
    if isinstance(x, (np.floating, float)):
        return f"float({float(x)!r})"
    if isinstance(x, (np.integer,)):
        return f"{type(x).__name__}({int(x)})"
    return repr(x)


def show(label, fn):
    print(f"--- {label}")
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001
        print(f"EXCEPTION {type(e).__name__}: {e}")
        return None
    print(fmt(out))
    return out


def is_trained(m):
    return "+" in m or m in ("ets_sctl", "pts", "pts_sctl")


def fast_kwargs(m):
    return {"iterations": 20} if is_trained(m) else {}


# ---------------------------------------------------------------------------------------- sections


def sec_misc():
    show("version", lambda: calibench.__version__)
    show("methods", lambda: list(calibench.methods))
    show("presets", lambda: list(calibench.presets))
    show("__all__", lambda: sorted(calibench.__all__))
    show("device_info", lambda: calibench.device_info())
    show("sweep family error", lambda: calibench.sweep(*load("s3", "val"), family="class-temperature",
                                                       candidates=[1.0]))


def sec_evaluate():
    z, y = load("s10", "test")
    p, py = load("p10", "test")
    show("evaluate s10 default", lambda: calibench.evaluate(z, y))
    show("evaluate p10 probs", lambda: calibench.evaluate(p, py, probs=True))
    show("evaluate s10 bins10", lambda: calibench.evaluate(z, y, bins=10))
    for preset in calibench.presets:
        show(f"evaluate s10 conventions={preset}", lambda: calibench.evaluate(z, y, conventions=preset))
        show(f"evaluate p10 conventions={preset}", lambda: calibench.evaluate(p, py, probs=True, conventions=preset))
    for b in ["right-closed", "guo-strict", "left-closed", "torchmetrics", "digitize-linspace"]:
        e, ey = load("edges", "test")
        show(f"evaluate edges binning={b}", lambda: calibench.evaluate(e, ey, probs=True, bins=10, binning=b))
        show(f"evaluate s10 classwise_binning={b}", lambda: calibench.evaluate(z, y, classwise_binning=b))
    for a in ["split", "interp", "quantile", "midpoint", "floor-count"]:
        t, ty = load("ties", "test")
        show(f"evaluate ties adaptive={a}", lambda: calibench.evaluate(t, ty, adaptive=a))
    show("evaluate s10 reduction sum brier top-label nll_clip", lambda: calibench.evaluate(
        z, y, classwise_reduction="sum", brier="top-label", nll_clip=1e-15))
    show("evaluate s10 brier per-class-mean", lambda: calibench.evaluate(z, y, brier="per-class-mean"))
    show("evaluate s10 bootstrap 50 seed 3", lambda: calibench.evaluate(z, y, bootstrap=50, seed=3))
    show("evaluate s10 bootstrap level 0.8", lambda: calibench.evaluate(z, y, bootstrap=30, seed=1, level=0.8))
    show("evaluate s10 reliability", lambda: calibench.evaluate(z, y, reliability=True))
    o, oy = load("onehot", "test")
    show("evaluate onehot", lambda: calibench.evaluate(o, oy, probs=True))
    show("evaluate onehot nll_clip", lambda: calibench.evaluate(o, oy, probs=True, nll_clip=1e-15))
    s1, s1y = load("s100", "test")
    show("evaluate s100", lambda: calibench.evaluate(s1, s1y))
    s2, s2y = load("s2", "val")
    show("evaluate s2 netcal", lambda: calibench.evaluate(s2, s2y, conventions="netcal", binning="left-closed"))


def sec_evaluate_inputs():
    z, y = load("s10", "test")
    variants = {
        "float32": (z, y),
        "float64": (z.astype(np.float64), y),
        "float16": (z.astype(np.float16), y),
        "fortran": (np.asfortranarray(z), y),
        "sliced": (np.ascontiguousarray(np.repeat(z, 2, axis=0))[::2], y),
        "reversed-cols": (z[:, ::-1], y),
        "uint8 labels": (z, y.astype(np.uint8)),
        "int64 [N,1] labels": (z, y.astype(np.int64)[:, None]),
        "list": (z[:50].tolist(), y[:50].tolist()),
        "readonly": (np.frombuffer(z.tobytes(), dtype=np.float32).reshape(z.shape), y),
        "big-endian": (z.astype(">f4"), y.astype(">i4")),
    }
    for name, (v, t) in variants.items():
        show(f"evaluate input {name}", lambda: calibench.evaluate(v, t))
        show(f"top_label_metrics input {name}", lambda: calibench.top_label_metrics(v, t, adaece=True))
    try:
        from calibench import _core
        show("_input_copies", lambda: _core._input_copies())
    except Exception as e:  # noqa: BLE001
        print(f"EXCEPTION {type(e).__name__}: {e}")


def fit_report(m, zv, yv, zt, yt, **kw):
    cal = show(f"fit {m} {kw}", lambda: calibench.fit(m, zv, yv, **kw))
    if cal is None:
        return
    show(f"  method/is_probs/backend", lambda: (cal.method, cal.is_probs, cal.backend))
    show(f"  params", lambda: cal.params)
    show(f"  transform(test)", lambda: cal.transform(zt))
    show(f"  transform(val)", lambda: cal.transform(zv))
    show(f"  evaluate(test)", lambda: cal.evaluate(zt, yt))
    show(f"  evaluate(val, bins=10, netcal)", lambda: cal.evaluate(zv, yv, bins=10, conventions="netcal"))
    text = show(f"  to_json", lambda: cal.to_json())
    if text is not None:
        back = show(f"  from_json(to_json).params", lambda: calibench.Calibrator.from_json(text, probs=cal.is_probs)
                    .params)
        if back is not None:
            show(f"  from_json(to_json).transform(test)",
                 lambda: calibench.Calibrator.from_json(text, probs=cal.is_probs).transform(zt))
    show(f"  repr", lambda: repr(cal))


def sec_fit(part):
    ms = list(calibench.methods)
    chunk = ms[part::4]
    zv, yv = load("s10", "val")
    zt, yt = load("s10", "test")
    z3v, y3v = load("s3", "val")
    z3t, y3t = load("s3", "test")
    for m in chunk:
        if m in ("ms_odir", "dir_odir"):
            fit_report(m, z3v, y3v, z3t, y3t)
            fit_report(m, z3v, y3v, z3t, y3t, odir_lambda=1, odir_mu=1)
        else:
            fit_report(m, zv, yv, zt, yt, **fast_kwargs(m))


def sec_fit_options():
    zv, yv = load("s10", "val")
    zt, yt = load("s10", "test")
    z3v, y3v = load("s3", "val")
    z3t, y3t = load("s3", "test")
    fit_report("ts", zv, yv, zt, yt, objective="ece")
    fit_report("ts", zv, yv, zt, yt, objective="adaece", grid="0.5:3:0.01")
    fit_report("ts", zv, yv, zt, yt, objective="ece", grid=[0.8, 1.2, 1.6, 2.0])
    fit_report("ts", zv, yv, zt, yt, objective="ece", grid=np.linspace(0.5, 3.0, 26))
    fit_report("ts", zv, yv, zt, yt, objective="ece", bins=10, binning="left-closed")
    fit_report("ts", zv, yv, zt, yt, conventions="netcal")
    fit_report("ws", zv, yv, zt, yt, grid="0:1:0.01")
    for cb in [5, "auto"]:
        for m in ["cws", "cts_conf", "bts"]:
            fit_report(m, zv, yv, zt, yt, calib_bins=cb)
    fit_report("hist", zv, yv, zt, yt, calib_bins=10)
    for search in ["grid", "nudge"]:
        for ac in [True, False, "on", "off"]:
            fit_report("cts_greedy", z3v, y3v, z3t, y3t, cts_search=search, accuracy_constraint=ac)
    fit_report("cts_greedy", zv, yv, zt, yt, iterations=2, grid="0.5:3:0.25")
    fit_report("ets", zv, yv, zt, yt, objective="mse")
    fit_report("vs", zv, yv, zt, yt, iterations=5)
    fit_report("ms", zv, yv, zt, yt, iterations=0)
    fit_report("ms_odir", z3v, y3v, z3t, y3t, odir_lambda=0.5, odir_mu=2.0)
    fit_report("dir_odir", z3v, y3v, z3t, y3t, grid=[0.1, 1, 10])
    fit_report("ts+sctl", zv, yv, zt, yt, iterations=20, train={"sctl_norm": "mm"})
    fit_report("ts+sctl", zv, yv, zt, yt, iterations=20, train={"sctl_solver": "slsqp", "sctl_grid": 16})
    fit_report("ts+fl", zv, yv, zt, yt, iterations=20, train={"focal_gradient": "detached", "fl_gamma": 2})
    fit_report("ts+ls", zv, yv, zt, yt, train={"schedule": "on"})
    fit_report("ts+lsplus", zv, yv, zt, yt, iterations=20, train={"lsplus_perfect": "half", "lsplus_weight": 0.3})
    fit_report("pts", zv, yv, zt, yt, iterations=20, train={"seed": 3, "pts_top_k": 5, "pts_layers": 1,
                                                             "pts_nodes": 3, "weight_decay": 0, "lr": 0.01})
    fit_report("pts", z3v, y3v, z3t, y3t, iterations=20,
               train={"pts_init": os.path.join(DATA, "pts_init.json"), "pts_top_k": 3, "pts_layers": 1,
                      "pts_nodes": 2})
    fit_report("pts_sctl", zv, yv, zt, yt, iterations=20, train={"seed": 5})
    fit_report("ts+ce", zv, yv, zt, yt, iterations=20, train={"tolerance_change": 0, "lr": 0.1})
    fit_report("ts", zv, yv, zt, yt, backend="cpu")
    fit_report("cts_greedy", zv, yv, zt, yt, backend="cpu", iterations=1)
    # inputs of other dtypes and layouts
    fit_report("vs", zv.astype(np.float64), yv.astype(np.int64), np.asfortranarray(zt), yt.astype(np.uint8))
    fit_report("ts", zv.astype(np.float16), yv, zt.astype(np.float16), yt)


def sec_fit_probs():
    pv, pyv = load("p10", "val")
    pt, pyt = load("p10", "test")
    for m in ["ts", "ws", "cws", "cts_conf", "bts", "cts_greedy", "vs", "ms", "cts_nll", "hist", "iso", "ets",
              "ts+sctl", "pts"]:
        kw = fast_kwargs(m)
        if m == "cts_greedy":
            kw = {"iterations": 2}
        fit_report(m, pv, pyv, pt, pyt, probs=True, **kw)
    ev, eyv = load("edges", "val")
    et, eyt = load("edges", "test")
    for m in ["hist", "iso", "ts", "cws"]:
        fit_report(m, ev, eyv, et, eyt, probs=True, bins=10)
    ov, oyv = load("onehot", "val")
    ot, oyt = load("onehot", "test")
    for m in ["ts", "iso", "hist", "ets"]:
        fit_report(m, ov, oyv, ot, oyt, probs=True)


def sec_sweeps():
    z, y = load("s10", "val")
    p, py = load("p10", "val")
    show("sweep_temperatures list", lambda: calibench.sweep_temperatures(z, y, temperatures=[0.5, 1.0, 1.5, 2.0]))
    show("sweep_temperatures range", lambda: calibench.sweep_temperatures(z, y, temperatures="0.1:5:0.1"))
    show("sweep_temperatures text list", lambda: calibench.sweep_temperatures(z, y, temperatures="0.7,1.3,2.9"))
    show("sweep_temperatures linspace", lambda: calibench.sweep_temperatures(
        z, y, temperatures=np.linspace(0.5, 5, 1000)))
    show("sweep_temperatures inverse linspace", lambda: calibench.sweep_temperatures(
        z, y, inverse_temperatures=np.linspace(0.2, 2, 100)))
    show("sweep_temperatures inverse range", lambda: calibench.sweep_temperatures(
        z, y, inverse_temperatures="0.2:2:0.05"))
    show("sweep_temperatures per_bin bins10", lambda: calibench.sweep_temperatures(
        z, y, temperatures=[1.0, 1.5], bins=10, per_bin=True))
    show("sweep_temperatures adaece False", lambda: calibench.sweep_temperatures(
        z, y, temperatures=[1.0, 1.5], adaece=False))
    for b in ["right-closed", "guo-strict", "left-closed", "torchmetrics", "digitize-linspace"]:
        show(f"sweep_temperatures binning={b}", lambda: calibench.sweep_temperatures(
            z, y, temperatures="0.5:3:0.5", binning=b, bins=10))
    show("sweep_temperatures probs", lambda: calibench.sweep_temperatures(p, py, temperatures="0.5:3:0.5", probs=True))
    show("sweep_weights", lambda: calibench.sweep_weights(z, y, weights="0:1:0.1"))
    show("sweep_weights per_bin", lambda: calibench.sweep_weights(z, y, weights=[0.0, 0.5, 1.0], per_bin=True))
    show("sweep_weights probs", lambda: calibench.sweep_weights(p, py, weights=[0.25, 0.75], probs=True))
    show("sweep family temperature", lambda: calibench.sweep(z, y, "temperature", [1.0, 2.0]))
    show("sweep family inverse", lambda: calibench.sweep(z, y, "inverse-temperature", "0.5:1.5:0.25"))
    show("sweep family weight", lambda: calibench.sweep(z, y, "weight", [0.1, 0.9], bins=5))
    show("sweep backend cpu", lambda: calibench.sweep(z, y, "temperature", [1.0], backend="cpu"))
    show("top_label_metrics", lambda: calibench.top_label_metrics(z, y))
    show("top_label_metrics adaece bins10", lambda: calibench.top_label_metrics(z, y, bins=10, adaece=True,
                                                                                binning="left-closed"))
    show("top_label_metrics probs", lambda: calibench.top_label_metrics(p, py, probs=True))
    e, ey = load("edges", "val")
    show("top_label_metrics edges", lambda: calibench.top_label_metrics(e, ey, probs=True, bins=10))
    t, ty = load("ties", "val")
    show("sweep_temperatures ties", lambda: calibench.sweep_temperatures(t, ty, temperatures="0.5:2:0.5"))
    z1, y1 = load("s100", "val")
    show("sweep_temperatures s100", lambda: calibench.sweep_temperatures(z1, y1, temperatures="0.5:3:0.25"))


def sec_dumps():
    for name, split in [("s10", "test"), ("s10", "val"), ("p10", "test"), ("f16", "val"), ("f64col", "test"),
                        ("train", "train"), ("edges", "val"), ("p3f32", "val")]:
        show(f"read_dump {name} {split}", lambda: calibench.read_dump(D(name), split))
    for name in ["s10", "p10", "train", "seg"]:
        show(f"dump_info {name}", lambda: calibench.dump_info(D(name)))
    zv, yv = load("s10", "val")
    zt, yt = load("s10", "test")
    show("write_dump logits", lambda: calibench.write_dump("w1.h5", {"val": (zv, yv), "test": (zt, yt)}))
    show("read back w1 val", lambda: calibench.read_dump("w1.h5", "val"))
    show("dump_info w1", lambda: calibench.dump_info("w1.h5"))
    show("evaluate read back", lambda: calibench.evaluate(*calibench.read_dump("w1.h5", "test")[:2]))
    pv, pyv = load("p10", "val")
    pt, pyt = load("p10", "test")
    show("write_dump probs attrs", lambda: calibench.write_dump(
        "w2.h5", {"val": (pv, pyv), "test": (pt, pyt), "train": (pv[:10], pyv[:10])}, probs=True,
        attributes={"dataset": "golden", "model": "probe", "answer": 42, "ratio": 0.25, "flag": True}))
    show("read back w2", lambda: calibench.read_dump("w2.h5", "train"))
    show("dump_info w2", lambda: calibench.dump_info("w2.h5"))
    show("write_dump float64 fortran int64", lambda: calibench.write_dump(
        "w3.h5", {"val": (np.asfortranarray(zv.astype(np.float64)), yv.astype(np.int64)),
                  "test": (zt.astype(np.float16), yt.astype(np.uint8))}))
    show("read back w3", lambda: calibench.read_dump("w3.h5", "val"))
    show("write_dump missing test", lambda: calibench.write_dump("w4.h5", {"val": (zv, yv)}))
    show("write_dump nan", lambda: calibench.write_dump("w5.h5", {"val": (np.full((3, 2), np.nan), [0, 1, 0]),
                                                                  "test": (zt, yt)}))
    show("write_dump bad pair", lambda: calibench.write_dump("w6.h5", {"val": zv, "test": (zt, yt)}))
    show("read_dump missing", lambda: calibench.read_dump(D("nope")))
    show("read_dump missing split", lambda: calibench.read_dump(D("s10"), "train"))
    for b in ["bad_nan", "bad_label", "bad_rowsum", "bad_missing_test", "bad_text", "bad_k1", "bad_len"]:
        show(f"read_dump {b}", lambda: calibench.read_dump(D(b), "test"))
    print("--- files written")
    for fn in sorted(os.listdir(".")):
        print(fn)


def sec_json():
    zt, yt = load("s10", "test")
    pt, pyt = load("p10", "test")
    specs = [
        {"method": "ts", "params": {"temperature": 1.5}},
        {"method": "ws", "params": {"weight": 0.7}},
        {"method": "vs", "params": {"weights": [1.0 + 0.1 * i for i in range(10)], "biases": [0.01 * i for i in range(10)]}},
        {"method": "cts_greedy", "params": {"temperatures": [1.0 + 0.05 * i for i in range(10)]}},
        {"method": "hist", "params": {"edges": [i / 4 for i in range(5)], "values": [0.1, 0.3, 0.6, 0.9],
                                      "counts": [1, 2, 3, 4]}},
        {"method": "iso", "params": {"x": [0.2, 0.5, 0.9], "y": [0.1, 0.6, 0.95]}},
        {"method": "ets", "params": {"temperature": 1.4, "weights": [0.6, 0.3, 0.1]}},
    ]
    for spec in specs:
        for probs in (False, True):
            cal = show(f"from_json {spec['method']} probs={probs}",
                       lambda: calibench.Calibrator.from_json(spec, probs=probs))
            if cal is not None:
                show("  params", lambda: cal.params)
                show("  is_probs/method", lambda: (cal.is_probs, cal.method))
                show("  transform", lambda: cal.transform(pt if probs else zt))
                show("  evaluate", lambda: cal.evaluate(pt if probs else zt, pyt if probs else yt))
                show("  to_json", lambda: cal.to_json())
    show("from_json text", lambda: calibench.Calibrator.from_json('{"method": "ts", "params": {"temperature": 2}}')
         .transform(zt[:5]))
    show("from_json bad text", lambda: calibench.Calibrator.from_json("{bad"))
    show("from_json unknown method", lambda: calibench.Calibrator.from_json({"method": "no_such_method", "params": {}}))
    show("from_json missing params", lambda: calibench.Calibrator.from_json({"method": "ts"}))
    show("from_json K mismatch transform", lambda: calibench.Calibrator.from_json(specs[2]).transform(
        load("s3", "test")[0]))


def sec_errors():
    z, y = load("s10", "val")
    z3, y3 = load("s3", "val")
    bad = z.copy()
    bad[3, 1] = np.nan
    yb = y.copy()
    yb[7] = 12
    p = np.full((4, 3), 1 / 3)
    p[2] = [0.5, 0.2, 0.2]
    calls = {
        "fit unknown method": lambda: calibench.fit("no_such_method", z, y),
        "fit unknown loss": lambda: calibench.fit("ts+mse", z, y),
        "evaluate nan": lambda: calibench.evaluate(bad, y),
        "evaluate label out of range": lambda: calibench.evaluate(z, yb),
        "evaluate rank 1": lambda: calibench.evaluate(z[:, 0], y),
        "evaluate rank 3": lambda: calibench.evaluate(z[None], y),
        "evaluate length mismatch": lambda: calibench.evaluate(z, y[:-1]),
        "evaluate K=1": lambda: calibench.evaluate(z[:, :1], np.zeros(len(y), dtype=np.int32)),
        "evaluate N=0": lambda: calibench.evaluate(z[:0], y[:0]),
        "evaluate probs row sum": lambda: calibench.evaluate(p, [0, 1, 2, 0], probs=True),
        "evaluate probs negative": lambda: calibench.evaluate(np.array([[1.2, -0.2], [0.5, 0.5]]), [0, 1], probs=True),
        "evaluate integer values": lambda: calibench.evaluate(np.ones((3, 2), dtype=np.int32), [0, 1, 0]),
        "evaluate string values": lambda: calibench.evaluate(np.array([["a", "b"]]), [0]),
        "evaluate float labels": lambda: calibench.evaluate(z, y.astype(np.float32)),
        "evaluate bins 0": lambda: calibench.evaluate(z, y, bins=0),
        "evaluate conventions nonsense": lambda: calibench.evaluate(z, y, conventions="sklearn"),
        "evaluate binning nonsense": lambda: calibench.evaluate(z, y, binning="nonsense"),
        "evaluate level 1.5": lambda: calibench.evaluate(z, y, bootstrap=5, level=1.5),
        "evaluate nll_clip 0.7": lambda: calibench.evaluate(z, y, nll_clip=0.7),
        "fit objective brier": lambda: calibench.fit("ts", z, y, objective="brier"),
        "fit objective ece vs": lambda: calibench.fit("vs", z, y, objective="ece"),
        "fit odir lambda only": lambda: calibench.fit("ms_odir", z3, y3, odir_lambda=1.0),
        "fit odir negative": lambda: calibench.fit("ms_odir", z3, y3, odir_lambda=-1.0, odir_mu=1.0),
        "fit train unknown key": lambda: calibench.fit("ts+ce", z, y, train={"frob": 1}),
        "fit train sctl_norm on ts+ce": lambda: calibench.fit("ts+ce", z, y, train={"sctl_norm": "mm"}),
        "fit train on ts": lambda: calibench.fit("ts", z, y, train={"lr": 0.1}),
        "fit train bad value": lambda: calibench.fit("ts+sctl", z, y, train={"sctl_norm": "xx"}),
        "fit accuracy_constraint maybe": lambda: calibench.fit("cts_greedy", z, y, accuracy_constraint="maybe"),
        "fit cts_search random": lambda: calibench.fit("cts_greedy", z, y, cts_search="random"),
        "fit calib_bins auto hist": lambda: calibench.fit("hist", z, y, calib_bins="auto"),
        "fit calib_bins 0": lambda: calibench.fit("cws", z, y, calib_bins=0),
        "fit grid empty": lambda: calibench.fit("ts", z, y, objective="ece", grid=[]),
        "fit grid bad text": lambda: calibench.fit("ts", z, y, objective="ece", grid="a:b"),
        "fit ws grid out of range": lambda: calibench.fit("ws", z, y, grid=[0.0, 1.5]),
        "fit backend cuda vs": lambda: calibench.fit("vs", z, y, backend="cuda"),
        "fit backend cuda ts ece": lambda: calibench.fit("ts", z, y, objective="ece", backend="cuda"),
        "fit backend tpu": lambda: calibench.fit("ts", z, y, backend="tpu"),
        "fit probs zero on label": lambda: calibench.fit("ts", np.array([[1.0, 0.0], [0.5, 0.5]]), [1, 0], probs=True),
        "fit nan": lambda: calibench.fit("ts", bad, y),
        "fit iterations negative": lambda: calibench.fit("vs", z, y, iterations=-5),
        "transform K mismatch": lambda: calibench.fit("vs", z, y, iterations=2).transform(z3),
        "transform nan": lambda: calibench.fit("ts", z, y).transform(bad),
        "cal.evaluate label range": lambda: calibench.fit("ts", z, y).evaluate(z, yb),
        "sweep both grids": lambda: calibench.sweep_temperatures(z, y, temperatures=[1.0], inverse_temperatures=[1.0]),
        "sweep no grid": lambda: calibench.sweep_temperatures(z, y),
        "sweep non-arithmetic": lambda: calibench.sweep_temperatures(z, y, inverse_temperatures=[0.5, 0.7, 2.0]),
        "sweep negative temperature": lambda: calibench.sweep_temperatures(z, y, temperatures=[-1.0, 1.0]),
        "sweep empty": lambda: calibench.sweep_temperatures(z, y, temperatures=[]),
        "sweep weights out of range": lambda: calibench.sweep_weights(z, y, weights=[0.5, 1.5]),
        "sweep binning bad": lambda: calibench.sweep_temperatures(z, y, temperatures=[1.0], binning="nonsense"),
        "sweep backend bad": lambda: calibench.sweep_temperatures(z, y, temperatures=[1.0], backend="tpu"),
        "sweep backend cuda": lambda: calibench.sweep_temperatures(z, y, temperatures=[1.0], backend="cuda"),
        "sweep family bogus": lambda: calibench.sweep(z, y, "matrix", [1.0]),
        "sweep nan": lambda: calibench.sweep_temperatures(bad, y, temperatures=[1.0]),
        "top_label_metrics labels range": lambda: calibench.top_label_metrics(z, yb),
        "from_json bad": lambda: calibench.Calibrator.from_json("not json"),
        "read_dump missing": lambda: calibench.read_dump(D("nope")),
        "read_dump nan": lambda: calibench.read_dump(D("bad_nan"), "test"),
        "write_dump missing val": lambda: calibench.write_dump("x.h5", {"test": (z, y)}),
        "write_dump label range": lambda: calibench.write_dump("x.h5", {"val": (z, yb), "test": (z, y)}),
    }
    for name, fn in calls.items():
        print(f"--- {name}")
        try:
            r = fn()
            print("NO EXCEPTION:", fmt(r)[:2000])
        except Exception as e:  # noqa: BLE001
            print(f"{type(e).__name__}: {e}")
    print("--- files written")
    for fn in sorted(os.listdir(".")):
        print(fn)


SECTIONS = {
    "misc": sec_misc,
    "evaluate": sec_evaluate,
    "evaluate_inputs": sec_evaluate_inputs,
    "fit0": lambda: sec_fit(0),
    "fit1": lambda: sec_fit(1),
    "fit2": lambda: sec_fit(2),
    "fit3": lambda: sec_fit(3),
    "fit_options": sec_fit_options,
    "fit_probs": sec_fit_probs,
    "sweeps": sec_sweeps,
    "dumps": sec_dumps,
    "json": sec_json,
    "errors": sec_errors,
}

if __name__ == "__main__":
    np.set_printoptions(precision=17)
    try:
        SECTIONS[SECTION]()
    except Exception:  # noqa: BLE001
        print("PROBE CRASHED")
        traceback.print_exc(file=sys.stdout)
        sys.exit(3)
