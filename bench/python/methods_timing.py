#!/usr/bin/env python3
"""Wall time of every `calibench fit` method on a CIFAR-100-shaped `calibench synth` dump.

Writes a dump with 100 classes, 5,000 validation and 10,000 test samples (the CIFAR-100 split
of the class-based TS paper), runs each method configuration of experiments/reference/methods.py
`--repeat` times as whole processes, and writes the best wall time, the engine's own `seconds`
and the test ECE to results/bench/methods-timing-<date>.json and .md.
Usage: python3 bench/python/methods_timing.py [--bin build/calibench] [--backend cpu] [--repeat 3]
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "experiments", "reference"))
from methods import METHODS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "synth_c100.h5")
        subprocess.run([args.bin, "synth", "--out", dump, "--classes", "100", "--n-val", "5000", "--n-test", "10000",
                        "--seed", "0"], check=True, capture_output=True)
        for name, options in METHODS:
            if options is None:
                continue
            cmd = [args.bin, "fit", dump, *options, "--backend", args.backend, "--format", "json"]
            best, out = None, None
            for _ in range(args.repeat):
                start = time.perf_counter()
                proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
                wall = time.perf_counter() - start
                if best is None or wall < best:
                    best, out = wall, json.loads(proc.stdout)
            rows.append({"method": name, "options": options, "process_s": best, "engine_s": out["seconds"],
                         "backend": out["backend"], "val_ece": out["val"]["ece"], "test_ece": out["test"]["ece"],
                         "test_accuracy": out["test"]["accuracy"]})
            print(f"{name:10s} {best:7.3f} s  test ECE {100 * out['test']['ece']:.2f} %", file=sys.stderr)
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    date = datetime.date.today().isoformat()
    meta = {"date": date, "commit": commit, "machine": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "backend": args.backend, "dump": "calibench synth --classes 100 --n-val 5000 "
            "--n-test 10000 --seed 0", "command": "python3 bench/python/methods_timing.py " + " ".join(sys.argv[1:])}
    out_base = os.path.join(REPO, "results", "bench", f"methods-timing-{date}")
    with open(out_base + ".json", "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=1)
    lines = [f"# `calibench fit` timings, CIFAR-100-shaped synthetic dump", "",
             f"{meta['dump']}; backend {args.backend}; best of {args.repeat} whole processes (start, HDF5 read, fit, "
             f"metrics on val and test, JSON out); commit `{commit}`, {date}, {meta['cpu']} ({meta['cores']} vCPUs). "
             f"Command: `{meta['command']}`.", "", "| method | options | process s | engine s | test ECE % | test acc % |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | `{' '.join(r['options'])}` | {r['process_s']:.3f} | {r['engine_s']:.3f} | "
                     f"{100 * r['test_ece']:.2f} | {100 * r['test_accuracy']:.2f} |")
    with open(out_base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out_base}.md")


if __name__ == "__main__":
    main()
