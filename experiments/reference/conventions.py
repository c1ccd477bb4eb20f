#!/usr/bin/env python3
"""Every real dump's test split under every conventions preset, with `calibench eval`.

For each dump in ../shared/data/real/h5 runs
  calibench eval DUMP --split test --bins M --compare-conventions --conventions P --format json
for every preset P (the extra estimators rmsce, rmsce_debiased, ace_unweighted, smece and
kde_ece depend on the preset's binning only through rmsce*/ace_unweighted) and writes
results/reference/conventions.md (tables, x100) and conventions.json (the raw CLI JSON).
Usage: python3 experiments/reference/conventions.py [--data DIR] [--bin build/calibench] [--bins 15]
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
PRESETS = ["calibench", "torchmetrics", "netcal", "focal", "guo", "dirichlet", "verified-calibration", "mixnmatch"]
PER_PRESET = [("ece", True), ("mce", True), ("adaece", True), ("sce", True), ("rmsce", True),
              ("rmsce_debiased", True), ("ace_unweighted", True), ("brier", False), ("nll", False)]
ESTIMATORS = ["smece", "kde_ece"]


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"conventions.py: {' '.join(cmd)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def fmt(v, percent):
    if v is None:
        return "n/a"
    return f"{100 * v:.2f}" if percent else f"{v:.4f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "real", "h5"))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--out", default=os.path.join(REPO, "results", "reference"))
    ap.add_argument("--bins", type=int, default=15)
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.data, "*.h5")))
    if not files:
        sys.exit(f"conventions.py: no *.h5 dumps in {args.data}")
    rows = []
    for path in files:
        name = os.path.basename(path)[:-3]
        per = {}
        for preset in PRESETS:
            cmd = [args.bin, "eval", path, "--split", "test", "--bins", str(args.bins), "--conventions", preset,
                   "--format", "json"]
            if preset == "calibench":
                cmd.append("--compare-conventions")
            per[preset] = run(cmd)
        rows.append({"dump": name, "n": per["calibench"]["n"], "k": per["calibench"]["k"], "presets": per})

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    version = subprocess.run([args.bin, "version"], capture_output=True, text=True).stdout.splitlines()[0]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "conventions.json"), "w") as f:
        json.dump(rows, f, indent=1)

    lines = [
        "# The real dumps under every library's conventions",
        "",
        f"Produced by `python3 experiments/reference/conventions.py`, which runs "
        f"`calibench eval DUMP --split test --bins {args.bins} --conventions PRESET --format json` for every "
        f"preset and every dump in `../shared/data/real/h5/` ({len(rows)} dumps); {version}, commit `{commit}`, "
        f"{datetime.date.today().isoformat()}, {platform.machine()} CPU. The presets are defined in "
        "`docs/metrics.md` (\"Conventions of other libraries\"); every preset uses the same M = "
        f"{args.bins} here, although netcal's own default is 10. Fractions x100. Raw JSON: `conventions.json`.",
        "",
        "How to read it: a column that changes across presets on the same dump is a number that differs "
        "between papers only because of the code that computed it. ECE and MCE differ only where a "
        "confidence sits exactly on a bin edge, is exactly 1.0 (torchmetrics' extra bin) or where the bins "
        "themselves differ (digitize-linspace); adaECE differs by the equal-mass rule; SCE by the classwise "
        "binning and the sum over classes (dirichlet); Brier by /K (dirichlet); NLL by clipping.",
        "",
        "## Summary: ECE / adaECE / SCE / Brier per preset (`--compare-conventions`)",
        "",
    ]
    head = ["dump", "N", "K"] + [f"{p}" for p in PRESETS] + ["spread"]
    for metric, percent in (("ece", True), ("adaece", True), ("sce", True), ("brier", False)):
        lines += [f"### {metric}{' %' if percent else ''}", "",
                  "`spread` = largest minus smallest value across the presets"
                  f"{' (percentage points, 4 decimals)' if percent else ''}.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        worst = (0.0, "")
        for r in rows:
            cmp = {c["preset"]: c for c in r["presets"]["calibench"]["compare_conventions"]}
            values = [cmp[p][metric] for p in PRESETS if cmp[p][metric] is not None]
            spread = (max(values) - min(values)) * (100 if percent else 1)
            worst = max(worst, (spread, r["dump"]))
            lines.append("| " + " | ".join([r["dump"], str(r["n"]), str(r["k"])] +
                                           [fmt(cmp[p][metric], percent) for p in PRESETS] +
                                           [f"{spread:.4f}"]) + " |")
        lines += ["", f"Largest spread of {metric}: {worst[0]:.4f}{' points' if percent else ''} ({worst[1]}).", ""]

    lines += ["## Every metric that depends on the conventions, per dump", ""]
    head = ["preset"] + [f"{k}{' %' if p else ''}" for k, p in PER_PRESET]
    for r in rows:
        d0 = r["presets"]["calibench"]
        lines += [f"### {r['dump']} (test, N = {r['n']}, K = {r['k']})", "",
                  "Estimators that do not depend on the preset: " +
                  ", ".join(f"{e} {fmt(d0[e], True)} %" for e in ESTIMATORS) +
                  f"; accuracy {fmt(d0['accuracy'], True)} %.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for p in PRESETS:
            d = r["presets"][p]
            lines.append("| " + " | ".join([p] + [fmt(d[k], pc) for k, pc in PER_PRESET]) + " |")
        lines.append("")
    with open(os.path.join(args.out, "conventions.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"conventions.py: wrote {args.out}/conventions.md and conventions.json ({len(rows)} dumps)")


if __name__ == "__main__":
    main()
