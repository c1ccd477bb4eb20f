#!/usr/bin/env python3
"""Metric evaluation at the shapes of issue 18 (CIFAR-10 10,000 x 10, CIFAR-100 10,000 x 100,
ImageNet 50,000 x 1,000; float32 logits as a network writes them), in one process, on the same
arrays: `calibench.evaluate` with every metric, with ECE alone (`metrics=["ece"]`), with every
metric and 1,000 bootstrap resamples (10,000 x 10 only, or --bootstrap-all), beside a plain numpy
top-label ECE (on the float32 array, and on a float64 copy), torchmetrics'
multiclass_calibration_error and netcal's ECE where they import. Every timing is the median of
--repeat runs after one warm-up. Writes results/bench/metrics-scale-<date>.{md,json}.

Usage: .venv-peers/bin/python bench/python/metrics_scale.py [--shapes 10000x10,10000x100,50000x1000]
                                                           [--repeat 3] [--threads 1] [--out FILE.md]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402  (sets the OpenMP environment before numpy, calibench and torch load)

import numpy as np  # noqa: E402

import calibench  # noqa: E402

REPO = HERE.parents[1]
BINS = peers.BINS


def numpy_ece_native(logits, labels, bins=BINS):
    """peers.numpy_ece in the array's own dtype (float32 stays float32), as a user's script runs."""
    z = logits - logits.max(axis=1, keepdims=True)
    conf = 1.0 / np.exp(z).sum(axis=1)
    correct = (logits.argmax(axis=1) == labels).astype(conf.dtype)
    idx = np.searchsorted(np.arange(1, bins, dtype=np.float64) / bins, conf, side="left")
    sum_conf = np.bincount(idx, weights=conf, minlength=bins)
    sum_acc = np.bincount(idx, weights=correct, minlength=bins)
    return float(np.abs(sum_acc - sum_conf).sum() / len(labels))


def make_data(n, k, seed):
    """Logits of a CIFAR/ImageNet-like classifier: a label bump plus noise, float32."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = 2.0 * rng.standard_normal((n, k))
    z[np.arange(n), y] += 3.0
    return z.astype(np.float32), y.astype(np.int64)


def bench_shape(n, k, found, repeat, bootstrap):
    logits, labels = make_data(n, k, seed=n + k)
    rows = []

    def add(method, seconds, value, note=""):
        rows.append({"method": method, "seconds": seconds, "value": value, "note": note})

    t, v = peers.median_seconds(lambda: numpy_ece_native(logits, labels), repeat)
    add("numpy top-label ECE (float32 array)", t, v, "softmax sums and 15 bins in numpy, the array's dtype")
    z64 = logits.astype(np.float64)
    t, v = peers.median_seconds(lambda: peers.numpy_ece(z64, labels), repeat)
    add("numpy top-label ECE (float64 copy made beforehand)", t, v)
    t, v = peers.median_seconds(lambda: calibench.evaluate(logits, labels, metrics=["ece"])["ece"], repeat)
    add('calibench.evaluate(metrics=["ece"])', t, v)
    t, full = peers.median_seconds(lambda: calibench.evaluate(logits, labels), repeat)
    add("calibench.evaluate (every metric)", t, full["ece"], f"{len(full) - 3} metrics")
    if bootstrap:
        t, b = peers.median_seconds(lambda: calibench.evaluate(logits, labels, bootstrap=1000)["ci"]["ece"], 1)
        add("calibench.evaluate (every metric, bootstrap 1,000)", t, b["low"], "value: the ECE interval's low end")
    tm = found["torchmetrics"]
    if "fn" in tm:
        torch = tm["torch"]
        zt, yt = torch.from_numpy(logits), torch.from_numpy(labels)
        t, v = peers.median_seconds(
            lambda: float(tm["fn"](zt, yt, num_classes=k, n_bins=BINS, norm="l1", validate_args=False)), repeat)
        add("torchmetrics multiclass_calibration_error", t, v, "float32, its own softmax and bins")
    else:
        add("torchmetrics multiclass_calibration_error", None, None, tm["missing"])
    nc = found["netcal"]
    if "ECE" in nc:
        metric = nc["ECE"](bins=BINS)
        t, v = peers.median_seconds(lambda: float(metric.measure(peers.softmax(z64), labels)), repeat)
        add("netcal ECE", t, v, "numpy float64 softmax, then ECE(bins=15).measure")
    else:
        add("netcal ECE", None, None, nc["missing"])
    return {"n": n, "k": k, "rows": rows}


def commit():
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="10000x10,10000x100,50000x1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1", help="OMP_NUM_THREADS (read by peers.py at import)")
    ap.add_argument("--bootstrap-all", action="store_true", help="bootstrap 1,000 at every shape, not only the first")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    found = peers.import_peers()
    date = datetime.date.today().isoformat()
    results = []
    for i, shape in enumerate(a.shapes.split(",")):
        n, k = (int(x) for x in shape.split("x"))
        results.append(bench_shape(n, k, found, a.repeat, a.bootstrap_all or i == 0))
        print(f"{n} x {k}: done", file=sys.stderr)
    meta = {"date": date, "commit": commit(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "threads": os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version(),
            "numpy": np.__version__, "calibench": calibench.__version__,
            "command": "python3 bench/python/metrics_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = pathlib.Path(a.out) if a.out else REPO / "results" / "bench" / f"metrics-scale-{date}.md"
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [f"# Metric evaluation at scale ({date}, commit `{meta['commit']}`)", "",
             f"`{meta['command']}` on {meta['machine']}, OMP_NUM_THREADS={meta['threads']}, Python "
             f"{meta['python']}, numpy {meta['numpy']}. Median of the runs after a warm-up; float32 logits.", ""]
    for r in results:
        base = r["rows"][0]["seconds"]
        lines += [f"## {r['n']:,} x {r['k']:,}", "", "| method | seconds | vs numpy ECE (float32) | value | note |",
                  "|---|---:|---:|---:|---|"]
        for j, row in enumerate(r["rows"]):
            s = row["seconds"]
            ratio = f"{base / s:.2f}x faster" if s and s < base else (f"{s / base:.2f}x slower" if s else "")
            ratio = "baseline" if j == 0 else ratio
            seconds = "" if s is None else f"{s:.4f}"
            value = "" if row["value"] is None else f"{row['value']:.6f}"
            lines.append(f"| {row['method']} | {seconds} | {ratio} | {value} | {row['note']} |")
        lines.append("")
    out.write_text("\n".join(lines))
    print(out)


if __name__ == "__main__":
    main()
