#!/usr/bin/env python3
"""Class-wise loss scaling: calibench's (alpha, beta) fit against SLSQP on every real dump.

For every dump in ../shared/data/real/h5, every normalisation (nd, mm, cm) and two first steps
of temperature scaling (L0 = per-class mean NLL of /val at T = 1, L1 at T = 1.1 or T = 0.9),
runs `calibench sctl-weights --format json` (grid 256 x 256 and golden-section refinement,
plus NLopt's LD_SLSQP from (1.0, 1.5)) and SciPy's SLSQP as the authors call it
(tests/reference/sctl_ref.py), and tabulates the three objectives. `--random N` adds N seeded
random class-loss pairs (K in {2, 3, 10, 100, 1000}) to the summary.
Writes results/reference/sctl_objective.md and results/reference/sctl_objective.json.
Usage: python3 experiments/reference/sctl_objective.py [--bin build/calibench] [--random 500]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shlex
import subprocess
import sys

import h5py
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import sctl_ref as ref  # noqa: E402

# A difference below this (relative to 1 + objective) is rounding, not one solver beating the other.
TIE = 1e-12


def class_loss_pair(path, t1):
    with h5py.File(path, "r") as f:
        g = f["val"]
        is_probs = "logits" not in g
        values = g["probs" if is_probs else "logits"][()].astype(np.float64)
        labels = g["labels"][()].reshape(-1).astype(np.int64)
    l0 = ref.class_losses(values, labels, 1.0, is_probs)
    l1 = ref.class_losses(values, labels, t1, is_probs)
    present = ~np.isnan(l0)
    return l0[present], l1[present]


def run_cli(exe, l0, l1, norm, grid):
    cmd = [exe, "sctl-weights", "--l0", ",".join(repr(float(v)) for v in l0), "--l1",
           ",".join(repr(float(v)) for v in l1), "--norm", norm, "--grid", str(grid), "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"sctl_objective.py: calibench sctl-weights failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def compare(exe, l0, l1, norm, grid):
    cli = run_cli(exe, l0, l1, norm, grid)
    sa, sb, sf = ref.slsqp(l0, l1, norm)
    return {"k": len(l0), "norm": norm, "alpha": cli["alpha"], "beta": cli["beta"], "objective": cli["objective"],
            "grid_objective": cli["grid"]["objective"], "nlopt_alpha": cli["slsqp"]["alpha"],
            "nlopt_beta": cli["slsqp"]["beta"], "nlopt_objective": cli["slsqp"]["objective"],
            "nlopt_status": cli["slsqp"]["status"], "scipy_alpha": sa, "scipy_beta": sb, "scipy_objective": sf,
            "seconds": cli["seconds"]}


def verdict(ours, theirs):
    """'better' | 'tie' | 'worse' for calibench's objective against another solver's."""
    slack = TIE * (1.0 + abs(theirs))
    return "better" if ours < theirs - slack else "worse" if ours > theirs + slack else "tie"


def summary(rows, key):
    gaps = np.array([r[key] - r["objective"] for r in rows])
    rel = np.array([(r[key] - r["objective"]) / max(r[key], 1e-300) for r in rows])
    v = [verdict(r["objective"], r[key]) for r in rows]
    better = gaps[np.array(v) == "better"]
    return (f"better in {v.count('better')}, tie in {v.count('tie')}, worse in {v.count('worse')} of {len(rows)}; "
            f"largest gain {gaps.max():.3e} ({100 * rel.max():.3g} % of the SLSQP objective)"
            + (f", median gain where better {np.median(better):.3e}" if len(better) else "")
            + f"; largest loss {max(0.0, -gaps.min()):.3e}")


def random_pairs(count, seed):
    rng = np.random.default_rng(seed)
    for i in range(count):
        k = int(rng.choice([2, 3, 10, 100, 1000]))
        spread = float(10 ** rng.uniform(-3, 0.5))
        l0 = np.abs(rng.normal(1.0, spread, size=k))
        mode = i % 3
        if mode == 0:
            l1 = l0 + 0.01 * spread * rng.normal(size=k)
        elif mode == 1:
            l1 = l0 + spread * rng.normal(size=k)
        else:
            l1 = np.abs(rng.normal(1.0, spread, size=k))
        yield l0, l1, ref.NORMS[i % 3]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "real", "h5"))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--out", default=os.path.join(REPO, "results", "reference"))
    ap.add_argument("--grid", type=int, default=256)
    ap.add_argument("--random", type=int, default=0, help="also compare on N seeded random class-loss pairs")
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.data, "*.h5")))
    if not files:
        sys.exit(f"sctl_objective.py: no *.h5 dumps in {args.data}")
    rows = []
    for path in files:
        for t1 in (1.1, 0.9):
            l0, l1 = class_loss_pair(path, t1)
            for norm in ref.NORMS:
                rows.append({"dump": os.path.basename(path)[:-3], "t1": t1, **compare(args.bin, l0, l1, norm, args.grid)})
    random_rows = [compare(args.bin, l0, l1, norm, args.grid) for l0, l1, norm in random_pairs(args.random, args.seed)]

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    version = subprocess.run([args.bin, "version"], capture_output=True, text=True).stdout.splitlines()[0]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sctl_objective.json"), "w") as f:
        json.dump({"dumps": rows, "random": random_rows}, f)
    command = "python3 " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "# Class-wise loss scaling: grid fit against SLSQP",
        "",
        f"Produced by `{command}` (which runs `calibench sctl-weights --l0 ... --l1 ... --norm NORM --grid "
        f"{args.grid} --format json` per row), {version}, commit `{commit}` plus the working tree, "
        f"{datetime.date.today().isoformat()}, {platform.machine()} CPU ({os.cpu_count()} cores), "
        f"SciPy {__import__('scipy').__version__}. Class losses: per-class mean NLL of `/val` in float64, "
        "L0 at T = 1 and L1 at T = t1 (a first step of temperature scaling in either direction). "
        "calibench = grid of 256 x 256 pairs over alpha in [0.1, ln(K)/2], beta in [1.5, 2], then golden "
        "section over alpha within one grid step with beta exact; NLopt = LD_SLSQP with the analytic gradient "
        "from (1.0, 1.5) clipped into the box, ftol_abs 1e-6; SciPy = `minimize(method='SLSQP')` from "
        "(1.0, 1.5) with the same bounds and finite-difference gradients, the authors' call. "
        f"Gain = SLSQP objective - calibench objective; differences within {TIE:g} x (1 + objective) count "
        "as ties. The raw numbers are in `sctl_objective.json`.",
        "",
        "## Summary",
        "",
        f"- Real dumps ({len(rows)} rows), against NLopt SLSQP: {summary(rows, 'nlopt_objective')}.",
        f"- Real dumps, against SciPy SLSQP: {summary(rows, 'scipy_objective')}.",
    ]
    if random_rows:
        lines += [
            f"- {len(random_rows)} random pairs (K in {{2, 3, 10, 100, 1000}}, spreads 1e-3..3, small, large and "
            f"unrelated second vectors, seed {args.seed}), against NLopt SLSQP: "
            f"{summary(random_rows, 'nlopt_objective')}.",
            f"- Random pairs, against SciPy SLSQP: {summary(random_rows, 'scipy_objective')}.",
        ]
    lines += [
        "",
        "## Per dump",
        "",
        "| dump | K | t1 | norm | calibench alpha | beta | objective | NLopt alpha | beta | objective | "
        "SciPy alpha | beta | objective | gain vs SciPy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dump']} | {r['k']} | {r['t1']} | {r['norm']} | {r['alpha']:.6f} | {r['beta']:.6f} | "
            f"{r['objective']:.10g} | {r['nlopt_alpha']:.6f} | {r['nlopt_beta']:.6f} | {r['nlopt_objective']:.10g} | "
            f"{r['scipy_alpha']:.6f} | {r['scipy_beta']:.6f} | {r['scipy_objective']:.10g} | "
            f"{r['scipy_objective'] - r['objective']:.3e} |")
    with open(os.path.join(args.out, "sctl_objective.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:12 if random_rows else 10]))


if __name__ == "__main__":
    main()
