#!/usr/bin/env python3
"""calibench versus a plain numpy per-candidate loop, on the same data, in the same run.

For each shape it writes a `calibench synth` dump, then times
  (a) the whole `calibench sweep-candidates` process (start, HDF5 read, sweep, JSON out), and
  (b) the way most researchers sweep a temperature: for each T, softmax(logits / T) in float64,
      confidence, accuracy, 15 equal-width bins, ECE (numpy, vectorised over samples),
and prints both times, the ratio and the best-ECE candidate of each (they must agree).
Usage: python3 bench/python/numpy_sweep.py [--bin build/calibench] [--shapes 10000x100] [--grid 0.5:5.495:0.005]
                                    [--out results/bench/numpy-vs-calibench-DATE.json]
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import tempfile
import time

import h5py
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def numpy_temperature_sweep(logits, labels, temps, bins=15):
    """The per-candidate loop: float64, one softmax per temperature."""
    edges = np.arange(bins + 1) / bins
    eces = []
    for t in temps:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        conf = p.max(axis=1)
        correct = (p.argmax(axis=1) == labels).astype(np.float64)
        idx = np.clip(np.searchsorted(edges[1:-1], conf, side="left"), 0, bins - 1)
        count = np.bincount(idx, minlength=bins)
        sum_conf = np.bincount(idx, weights=conf, minlength=bins)
        sum_acc = np.bincount(idx, weights=correct, minlength=bins)
        eces.append(np.abs(sum_acc - sum_conf).sum() / len(labels))
        del count
    return np.array(eces)


def grid_values(text):
    a, b, s = (float(v) for v in text.split(":"))
    n = int(np.floor((b - a) / s + 1e-9)) + 1
    return a + np.arange(n) * s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--shapes", default="10000x10,10000x100", help="comma-separated NxK")
    ap.add_argument("--grid", default="0.5:5.495:0.005", help="temperatures start:stop:step (1,000 by default)")
    ap.add_argument("--inverse-grid", default="0.2:2.1981:0.002",
                    help="inverse temperatures start:stop:step for the recurrence path (1,000 by default)")
    ap.add_argument("--repeat", type=int, default=3, help="calibench runs per shape (best is reported)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            n, k = (int(v) for v in shape.split("x"))
            dump = os.path.join(tmp, f"synth_{n}x{k}.h5")
            subprocess.run([args.bin, "synth", "--out", dump, "--classes", str(k), "--n-val", str(n), "--n-test", "1",
                            "--seed", "0"], check=True, capture_output=True)
            with h5py.File(dump) as f:
                logits = f["val/logits"][()].astype(np.float64)
                labels = f["val/labels"][()]
            # The same candidates for both: temperatures T, or inverse temperatures b (numpy uses T = 1/b).
            for family, grid, temps in (("temperature", args.grid, grid_values(args.grid)),
                                        ("inverse-temperature", args.inverse_grid, 1.0 / grid_values(args.inverse_grid))):
                cmd = [args.bin, "sweep-candidates", dump, "--split", "val", "--family", family, "--grid", grid,
                       "--bins", "15", "--no-adaece"]
                best_wall, out = None, None
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    wall = time.perf_counter() - start
                    if best_wall is None or wall < best_wall:
                        best_wall, out = wall, json.loads(proc.stdout)
                start = time.perf_counter()
                eces = numpy_temperature_sweep(logits, labels, temps)
                numpy_wall = time.perf_counter() - start
                best = int(np.argmin(eces))
                row = {
                    "shape": f"{n}x{k}", "family": family, "grid": grid, "candidates": len(temps), "bins": 15,
                    "calibench_process_s": best_wall, "calibench_sweep_s": out["seconds"],
                    "calibench_backend": out["backend"], "numpy_loop_s": numpy_wall,
                    "ratio_process": numpy_wall / best_wall,
                    "calibench_logit_candidates_per_s": n * k * len(temps) / out["seconds"],
                    "best_index_calibench": out["best_ece"]["index"], "best_ece_calibench": out["best_ece"]["ece"],
                    "best_index_numpy": best, "best_ece_numpy": float(eces[best]),
                    "max_abs_ece_difference": float(np.max(np.abs(np.array(out["ece"]) - eces))),
                }
                rows.append(row)
                print(f"{row['shape']} {family}: G={len(temps)}  calibench {best_wall:.3f} s (sweep {out['seconds']:.3f} s, "
                      f"{row['calibench_logit_candidates_per_s']:.3g} logit-candidates/s)  numpy {numpy_wall:.2f} s  "
                      f"ratio {row['ratio_process']:.1f}x  best index {best} / {row['best_index_calibench']}  "
                      f"max |dECE| {row['max_abs_ece_difference']:.2e}")
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"date": datetime.date.today().isoformat(), "commit": commit, "machine": platform.node(),
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "numpy": np.__version__,
              "command": "python3 bench/python/numpy_sweep.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                                    if k in ("shapes", "grid", "inverse_grid")),
              "rows": rows}
    out_path = args.out or os.path.join(REPO, "results", "bench", f"numpy-vs-calibench-{report['date']}.json")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
