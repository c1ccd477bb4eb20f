#!/usr/bin/env python3
"""Uncalibrated metrics of every real dump (val and test splits) with `calibench eval`.

Writes results/reference/uncalibrated.md (Markdown table, x100 for fractions) and
results/reference/uncalibrated.json (the raw CLI JSON), with the command, commit and machine.
Usage: python3 experiments/reference/uncalibrated.py [--data ../shared/data/real/h5] [--bin build/calibench]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PERCENT = ["accuracy", "ece", "mce", "adaece", "sce", "ace", "auroc", "f1", "r_auc"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "real", "h5"))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--out", default=os.path.join(REPO, "results", "reference"))
    ap.add_argument("--bins", type=int, default=15)
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.data, "*.h5")))
    if not files:
        sys.exit(f"uncalibrated.py: no *.h5 dumps in {args.data}")
    rows = []
    for path in files:
        for split in ("val", "test"):
            cmd = [args.bin, "eval", path, "--split", split, "--bins", str(args.bins), "--format", "json"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"uncalibrated.py: {' '.join(cmd)} failed: {proc.stderr.strip()}")
            rows.append({"dump": os.path.basename(path)[:-3], "split": split, **json.loads(proc.stdout)})

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    version = subprocess.run([args.bin, "version"], capture_output=True, text=True).stdout.splitlines()[0]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "uncalibrated.json"), "w") as f:
        json.dump(rows, f, indent=1)
    head = ["dump", "split", "n", "k"] + [f"{k} %" for k in PERCENT] + ["nll", "brier"]
    lines = [
        "# Uncalibrated metrics of the real dumps",
        "",
        f"Produced by `python3 experiments/reference/uncalibrated.py` (which runs "
        f"`calibench eval DUMP --split SPLIT --bins {args.bins} --format json` for every dump in "
        f"`../shared/data/real/h5/`), {version}, commit `{commit}`, "
        f"{datetime.date.today().isoformat()}, {platform.machine()} CPU ({os.cpu_count()} cores). "
        "Bins: 15 equal-width, right-closed ((i-1)/M, i/M]; adaECE and ACE with 15 equal-mass groups. "
        "Fractions are printed x100. Provenance of every dump: `../shared/data/real/SOURCES.md`. "
        "The raw JSON is in `uncalibrated.json`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [r["dump"], r["split"], str(r["n"]), str(r["k"])]
        cells += ["n/a" if r[k] is None else f"{100 * r[k]:.2f}" for k in PERCENT]
        cells += [f"{r['nll']:.4f}", f"{r['brier']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(args.out, "uncalibrated.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}/uncalibrated.md ({len(rows)} rows)")


if __name__ == "__main__":
    main()
