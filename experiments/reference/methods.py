#!/usr/bin/env python3
"""Every calibration method of `calibench fit` on every real dump: one table.

Runs `calibench fit DUMP --method M [options] --format json` for each dump in
../shared/data/real/h5/ and each method configuration of the chosen suite, and writes
results/reference/methods.md (test ECE % / accuracy % per dump and method, plus fitted-parameter
summaries) and results/reference/methods.json (the raw fit outputs), with command, commit,
machine and date. `--suite baselines` runs the baseline and loss-trained calibrators instead
(columns below) and writes results/reference/baselines.md and baselines.json, with the seconds of
every fit. A fit that fails (non-zero exit, unreadable output, `--timeout`) does not stop the run:
its cell reads "error", the JSON holds the error text, and the script exits with status 1 at the
end, listing the failures.
Usage: python3 experiments/reference/methods.py [--suite seed|baselines] [--data DIR] [--bin build/calibench]
       [--dumps SUBSTRING ...]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shlex
import statistics
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

# The baselines suite: converged fits, then the loss-trained maps (base+loss; docs/calibrators.md).
BASELINES = [
    ("uncal", None),
    ("ts-nll", ["--method", "ts", "--objective", "nll"]),
    ("vs", ["--method", "vs"]),
    ("ms", ["--method", "ms"]),
    ("ms_odir", ["--method", "ms_odir"]),
    ("dir_odir", ["--method", "dir_odir"]),
    ("ets", ["--method", "ets"]),
    ("ets-mse", ["--method", "ets", "--objective", "mse"]),
    ("hist", ["--method", "hist"]),
    ("iso", ["--method", "iso"]),
    ("cts_nll", ["--method", "cts_nll"]),
    ("pts", ["--method", "pts"]),
    ("ets_sctl", ["--method", "ets_sctl"]),
    ("pts_sctl", ["--method", "pts_sctl"]),
] + [(f"{base}+{loss}", ["--method", f"{base}+{loss}"])
     for base in ("ts", "ets", "cts_nll", "pts") for loss in ("ls", "fl", "lsplus", "sctl")] + [
    # The peers' methods (issue 21; docs/calibrators.md).
    ("ts-tva", ["--method", "ts", "--objective", "tva"]),
    ("vs_tva", ["--method", "vs_tva"]),
    ("ms_odir_tva", ["--method", "ms_odir_tva"]),
    ("dir_l2", ["--method", "dir_l2"]),
    ("dir_diag", ["--method", "dir_diag"]),
    ("sms", ["--method", "sms"]),
    ("platt", ["--method", "platt"]),
    ("beta", ["--method", "beta"]),
    ("bbq", ["--method", "bbq"]),
    ("enir", ["--method", "enir"]),
    ("cir", ["--method", "cir"]),
    ("iso-ovr", ["--method", "iso", "--multiclass", "one-vs-rest"]),
    ("irova", ["--method", "irova"]),
    ("irm", ["--method", "irm"]),
    ("irova_ts", ["--method", "irova_ts"]),
    ("spline", ["--method", "spline"]),
    ("scaling_binning", ["--method", "scaling_binning"]),
    ("venn_abers", ["--method", "venn_abers"]),
]

# Markdown tables of the baselines suite (rows = dumps), a few columns each.
BASELINE_GROUPS = [
    ("Converged fits", ["uncal", "ts-nll", "vs", "ms", "ms_odir", "dir_odir", "ets", "ets-mse"]),
    ("Binning and trained maps (cross-entropy)", ["hist", "iso", "cts_nll", "pts", "ets_sctl", "pts_sctl"]),
    ("ts and ets trained with ls, fl, lsplus, sctl", [f"{b}+{l}" for b in ("ts", "ets")
                                                     for l in ("ls", "fl", "lsplus", "sctl")]),
    ("cts_nll and pts trained with ls, fl, lsplus, sctl", [f"{b}+{l}" for b in ("cts_nll", "pts")
                                                          for l in ("ls", "fl", "lsplus", "sctl")]),
    ("The peers' scaling methods", ["uncal", "ts-nll", "ts-tva", "vs_tva", "ms_odir_tva", "dir_l2", "dir_diag", "sms",
                                    "platt", "beta"]),
    ("The peers' binning and isotonic methods", ["bbq", "enir", "cir", "iso-ovr", "irova", "irm", "irova_ts", "spline",
                                                 "scaling_binning", "venn_abers"]),
]

SUITES = {"seed": (METHODS, "methods"), "baselines": (BASELINES, "baselines")}


# A params list longer than this is left out of baselines.json (rerunning the record's command
# gives it back): venn_abers's per-pair tables (160 MB over the dumps at K = 100), spline's distinct
# validation confidences, the per-class knots of the one-vs-rest maps.
LONG_LIST = 64


def compact_params(value):
    """`value` with every list longer than LONG_LIST replaced by its length, recursively."""
    if isinstance(value, dict):
        return {k: compact_params(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > LONG_LIST:
            return {"left_out": "rerun the command for this list", "entries": len(value)}
        return [compact_params(v) for v in value]
    return value


def compact_matrix(record):
    """The record with a K x K `params.matrix` (ms, ms_odir, dir_odir) replaced by its shape and
    Frobenius norm (the matrices were most of the file: 2.8 MB of 6.5 at K = 100) and every other
    long params list by its length (compact_params); rerunning the record's command gives them back."""
    params = record.get("params") or {}
    m = params.get("matrix")
    if isinstance(m, list):
        params = {**params, "matrix": {"left_out": "rerun the command for the matrix", "entries": len(m),
                                       "frobenius_norm": sum(v * v for v in m) ** 0.5}}
    return {**record, "params": compact_params(params)} if params else record


def run(cmd, timeout=None):
    """(parsed JSON or None, error text or None, wall seconds) of one CLI call; never exits."""
    started = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s", time.time() - started
    except OSError as e:
        return None, f"could not run: {e}", time.time() - started
    wall = time.time() - started
    if proc.returncode != 0:
        return None, f"exit status {proc.returncode}: {proc.stderr.strip()}", wall
    try:
        return json.loads(proc.stdout), None, wall
    except json.JSONDecodeError as e:
        return None, f"output is not JSON ({e}): {proc.stdout[:200]!r}", wall


def cell(r):
    if r is None or "error" in r:
        return "error"
    t = r["test"]
    return f"{100 * t['ece']:.2f} ({100 * t['accuracy']:.2f})"


def seed_tables(dumps, by, args, commit, elapsed):
    """methods.md of the seed suite (unchanged layout)."""
    cols = [c for c, _ in METHODS]
    lines = [
        "# Calibration methods on the real dumps",
        "",
        f"Produced by `python3 experiments/reference/methods.py` (`calibench fit DUMP --method ... --format json`, "
        f"backend {args.backend}) on every dump of `../shared/data/real/h5/`; commit `{commit}`, "
        f"{datetime.date.today().isoformat()}, {platform.machine()} CPU ({os.cpu_count()} cores), "
        f"{elapsed:.0f} s in all. Fitted on `/val`, reported on `/test`: ECE % (15 equal-width "
        "bins, right-closed) with test accuracy % in parentheses. Options per column (docs/calibrators.md): "
        + "; ".join(f"`{c}` = `{' '.join(o)}`" for c, o in METHODS if o) + ". Raw outputs: `methods.json`.",
        "",
        "| dump | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name in dumps:
        lines.append(f"| {name} | " + " | ".join(cell(by.get((name, c))) for c in cols) + " |")
    lines += ["", "## Fitted parameters (summary)", "", "| dump | ts-nll T | ts-ece T | ws weight | cts T0 | cts iterations | fit seconds (cts) |",
              "|---|---|---|---|---|---|---|"]

    def param(name, method, key, fmt):
        r = by.get((name, method))
        if r is None or "error" in r:
            return "error"
        if key == "seconds":
            return format(r["seconds"], fmt)
        return format(r["params"][key], fmt)

    for name in dumps:
        lines.append(f"| {name} | {param(name, 'ts-nll', 'temperature', '.4f')} | "
                     f"{param(name, 'ts-ece', 'temperature', '.2f')} | {param(name, 'ws', 'weight', '.3f')} | "
                     f"{param(name, 'cts', 'initial_temperature', '.1f')} | {param(name, 'cts', 'iterations_run', '')} | "
                     f"{param(name, 'cts', 'seconds', '.2f')} |")
    return lines


def reuse_note(reused, args):
    """The sentence naming the cells taken from --reuse, or nothing."""
    if not reused:
        return ""
    cols = sorted({c for _, c in reused}, key=[c for c, _ in BASELINES].index)
    return (f" {len(reused)} cell(s) of the columns {', '.join(f'`{c}`' for c in cols)} were not recomputed but "
            f"taken from `{os.path.relpath(args.reuse, REPO)}` as it was before this run (its commit is in the "
            "previous version of this file's header; same dump, column and options); every other cell was computed "
            "by this run.")


def baseline_tables(dumps, by, args, commit, elapsed, version, reused=()):
    command = "python3 " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "# Baseline and loss-trained calibrators on the real dumps",
        "",
        f"Produced by `{command}` (`calibench fit DUMP --method ... --backend {args.backend} --format json` per "
        f"cell; `calibench eval DUMP --split test` for `uncal`) on {len(dumps)} dump(s) of "
        f"`{os.path.relpath(args.data, REPO)}`; "
        f"{version}, commit `{commit}` plus the working tree, {datetime.date.today().isoformat()}, "
        f"{platform.machine()} CPU ({os.cpu_count()} cores), {elapsed:.0f} s in all. Fitted on `/val`, reported "
        "on `/test`: ECE % (15 equal-width bins, right-closed) with test accuracy % in parentheses; \"error\" = "
        "the fit failed (see the failures below and `baselines.json`). Options per column (defaults of "
        "docs/calibrators.md): " + "; ".join(f"`{c}` = `{' '.join(o)}`" for c, o in BASELINES if o)
        + ". Raw outputs with the wall-clock seconds of every fit (`wall_seconds`; `seconds` is the fit's own "
        "timing): `baselines.json`." + reuse_note(reused, args) + (" " + args.note if args.note else ""),
    ]
    for title, cols in BASELINE_GROUPS:
        lines += ["", f"## {title}", "", "| dump | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for name in dumps:
            lines.append(f"| {name} | " + " | ".join(cell(by.get((name, c))) for c in cols) + " |")
    lines += ["", "## Fit time (wall-clock seconds per fit, over the dumps)", "",
              "| method | median | max | slowest dump |", "|---|---|---|---|"]
    for c, o in BASELINES:
        if o is None:
            continue
        runs = [(by[(n, c)]["wall_seconds"], n) for n in dumps if (n, c) in by and "error" not in by[(n, c)]]
        if runs:
            worst = max(runs)
            lines.append(f"| {c} | {statistics.median(s for s, _ in runs):.2f} | {worst[0]:.2f} | {worst[1]} |")
        else:
            lines.append(f"| {c} | error | error | |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "real", "h5"))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--out", default=os.path.join(REPO, "results", "reference"))
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--suite", choices=sorted(SUITES), default="seed",
                    help="seed: methods.md/json (default); baselines: baselines.md/json")
    ap.add_argument("--dumps", nargs="+", metavar="SUBSTRING",
                    help="only the dumps whose name contains one of these substrings")
    ap.add_argument("--timeout", type=float, default=None, help="seconds one CLI call may run (default: no limit)")
    ap.add_argument("--reuse", metavar="JSON", help="baselines suite: take the cells of these columns from this earlier "
                    "baselines.json instead of rerunning them (same dump, column and options; the tables say so)")
    ap.add_argument("--reuse-columns", nargs="+", default=[], metavar="COLUMN")
    ap.add_argument("--note", default="", help="a sentence appended to the baselines header (e.g. the machine's load)")
    args = ap.parse_args()
    previous = {}
    if args.reuse:
        with open(args.reuse) as f:
            previous = {(r["dump"], r["method"]): r for r in json.load(f)
                        if r["method"] in args.reuse_columns and "error" not in r}
    methods, stem = SUITES[args.suite]
    paths = sorted(glob.glob(os.path.join(args.data, "*.h5")))
    if args.dumps:
        paths = [p for p in paths if any(s in os.path.basename(p)[:-3] for s in args.dumps)]
    if not paths:
        sys.exit(f"methods.py: no dumps in {args.data}" + (f" matching {args.dumps}" if args.dumps else ""))
    dumps = [os.path.basename(p)[:-3] for p in paths]
    timed = args.suite != "seed"  # the seed suite's JSON records stay as they were
    results, failures, reused = [], [], []
    # The commit the run starts at (the binary was built there, plus the working tree).
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    started = time.time()
    for path, name in zip(paths, dumps):
        for column, options in methods:
            old = previous.get((name, column))
            if old is not None and old.get("options") == options:
                results.append(old)
                reused.append((name, column))
                continue
            if options is None:
                cmd = [args.bin, "eval", path, "--split", "test", "--format", "json"]
            else:
                cmd = [args.bin, "fit", path, *options, "--backend", args.backend, "--format", "json"]
            d, error, wall = run(cmd, args.timeout)
            if error is not None:
                failures.append(f"{name} {column}: {error}")
                print(f"methods.py: {' '.join(cmd)} failed: {error}", file=sys.stderr)
                results.append({"dump": name, "method": column, "options": options, "command": cmd, "error": error,
                                "wall_seconds": wall})
                continue
            if options is None:
                r = {"dump": name, "method": column, "test": d, "params": {}, "seconds": 0.0}
            else:
                r = {**d, "dump": name, "method": column, "fit_method": d["method"], "options": options}
            if timed:
                r["wall_seconds"] = wall
            results.append(r)
        print(f"{name}: done ({time.time() - started:.0f} s)", file=sys.stderr)
    elapsed = time.time() - started
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
        json.dump([compact_matrix(r) for r in results] if timed else results, f, indent=1)
    by = {(r["dump"], r["method"]): r for r in results}
    if args.suite == "seed":
        lines = seed_tables(dumps, by, args, commit, elapsed)
    else:
        version = subprocess.run([args.bin, "version"], capture_output=True, text=True).stdout.splitlines()
        lines = baseline_tables(dumps, by, args, commit, elapsed, version[0] if version else "calibench (no version)",
                                reused)
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in failures]
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}/{stem}.md")
    if failures:
        sys.exit(f"methods.py: {len(failures)} failed call(s):\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
