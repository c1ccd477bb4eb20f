#!/usr/bin/env python3
"""Every calibration method of `calibench fit` on every real dump: one table.

Runs `calibench fit DUMP --method M [options] --format json` for each dump in
../shared/data/real/h5/ and each method configuration below, and writes
results/reference/methods.md (test ECE % / accuracy % per dump and method, plus fitted-parameter
summaries) and results/reference/methods.json (the raw fit outputs), with command, commit,
machine and date. Usage: python3 experiments/reference/methods.py [--data DIR] [--bin build/calibench]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (column name, fit options). Defaults follow docs/calibrators.md (the papers' settings).
METHODS = [
    ("uncal", None),
    ("ts-nll", ["--method", "ts", "--objective", "nll"]),
    ("ts-ece", ["--method", "ts", "--objective", "ece"]),
    ("ts-adaece", ["--method", "ts", "--objective", "adaece"]),
    ("ws", ["--method", "ws"]),
    ("cws", ["--method", "cws"]),
    ("cws-auto", ["--method", "cws", "--calib-bins", "auto"]),
    ("cts_conf", ["--method", "cts_conf"]),
    ("bts", ["--method", "bts"]),
    ("cts", ["--method", "cts_greedy"]),
    ("u-cts", ["--method", "cts_greedy", "--accuracy-constraint", "off"]),
    ("cts-nudge", ["--method", "cts_greedy", "--cts-search", "nudge"]),
]


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"methods.py: {' '.join(cmd)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "real", "h5"))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--out", default=os.path.join(REPO, "results", "reference"))
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args()
    dumps = sorted(glob.glob(os.path.join(args.data, "*.h5")))
    if not dumps:
        sys.exit(f"methods.py: no dumps in {args.data}")
    results = []
    started = time.time()
    for path in dumps:
        name = os.path.basename(path)[:-3]
        for column, options in METHODS:
            if options is None:
                d = run([args.bin, "eval", path, "--split", "test", "--format", "json"])
                results.append({"dump": name, "method": column, "test": d, "params": {}, "seconds": 0.0})
                continue
            d = run([args.bin, "fit", path, *options, "--backend", args.backend, "--format", "json"])
            results.append({**d, "dump": name, "method": column, "fit_method": d["method"], "options": options})
        print(f"{name}: done ({time.time() - started:.0f} s)", file=sys.stderr)

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "methods.json"), "w") as f:
        json.dump(results, f, indent=1)
    cols = [c for c, _ in METHODS]
    by = {(r["dump"], r["method"]): r for r in results}
    lines = [
        "# Calibration methods on the real dumps",
        "",
        f"Produced by `python3 experiments/reference/methods.py` (`calibench fit DUMP --method ... --format json`, "
        f"backend {args.backend}) on every dump of `../shared/data/real/h5/`; commit `{commit}`, "
        f"{datetime.date.today().isoformat()}, {platform.machine()} CPU ({os.cpu_count()} cores), "
        f"{time.time() - started:.0f} s in all. Fitted on `/val`, reported on `/test`: ECE % (15 equal-width "
        "bins, right-closed) with test accuracy % in parentheses. Options per column (docs/calibrators.md): "
        + "; ".join(f"`{c}` = `{' '.join(o)}`" for c, o in METHODS if o) + ". Raw outputs: `methods.json`.",
        "",
        "| dump | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for path in dumps:
        name = os.path.basename(path)[:-3]
        cells = []
        for c in cols:
            t = by[(name, c)]["test"]
            cells.append(f"{100 * t['ece']:.2f} ({100 * t['accuracy']:.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Fitted parameters (summary)", "", "| dump | ts-nll T | ts-ece T | ws weight | cts T0 | cts iterations | fit seconds (cts) |",
              "|---|---|---|---|---|---|---|"]
    for path in dumps:
        name = os.path.basename(path)[:-3]
        p = lambda m: by[(name, m)]["params"]
        lines.append(f"| {name} | {p('ts-nll')['temperature']:.4f} | {p('ts-ece')['temperature']:.2f} | "
                     f"{p('ws')['weight']:.3f} | {p('cts')['initial_temperature']:.1f} | {p('cts')['iterations_run']} | "
                     f"{by[(name, 'cts')]['seconds']:.2f} |")
    with open(os.path.join(args.out, "methods.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}/methods.md")


if __name__ == "__main__":
    main()
