#!/usr/bin/env python3
"""calibench's Python package (CPU) against netcal, torchmetrics and a plain numpy loop, on the
same logits in the same process: top-label ECE evaluation, and a 1,000-temperature sweep.

Data: `calibench synth` dumps shaped like CIFAR-10 (10,000 x 10), CIFAR-100 (10,000 x 100) and
ImageNet (25,000 x 1,000) test sets, plus the real dumps in ../shared/data/real/h5 when present
(one per class count by default). Every timing is the median of --repeat runs after one warm-up;
every peer gets logits and does its own softmax, as a user's code would. Per-temperature loops
that would take long are timed on a subset of the temperatures and scaled to 1,000 (said in the
table). Writes results/bench/peers-<date>.md (and .json). Peers that do not import are reported
as "not installed": run it with the interpreter that has them (scripts/setup_peers.sh makes
.venv-peers, which also sees the base interpreter's calibench).

Usage: .venv-peers/bin/python bench/python/peers.py [--bin build/calibench] [--shapes 10000x10,10000x100,25000x1000]
                                             [--real first-per-k|all|none] [--repeat 5] [--threads 1] [--out FILE.md]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def _threads_argument(argv):
    """--threads, read before calibench and torch load their OpenMP runtimes (default 1)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "1"


# Passive OpenMP waiting for every library in the process (calibench's libgomp and torch's own):
# spinning threads of one library steal the cores of the next call (see docs/python.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
THREADS = _threads_argument(sys.argv[1:])
os.environ["OMP_NUM_THREADS"] = THREADS

import h5py  # noqa: E402
import numpy as np  # noqa: E402

import calibench  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL_DUMPS = REPO.parent / "shared" / "data" / "real" / "h5"
BINS = 15
CANDIDATES = 1000
TEMPERATURES = 0.5 + np.arange(CANDIDATES) * 0.005  # 0.5 .. 5.495
INVERSE_TEMPERATURES = 0.2 + np.arange(CANDIDATES) * 0.002  # 0.2 .. 2.198 (arithmetic: the recurrence)
# netcal treats two columns as a binary problem: the confidence is p(class 1), not the top label's.
NETCAL_BINARY = "; K = 2: netcal measures the binary ECE of p(class 1), so it differs from top-label ECE by design"


# ---- peers ---------------------------------------------------------------------------------------


def import_peers():
    peers = {}
    try:
        import torch
        import torchmetrics
        from torchmetrics.functional.classification import multiclass_calibration_error

        peers["torchmetrics"] = {"version": f"torchmetrics {torchmetrics.__version__}, torch {torch.__version__}",
                                 "torch": torch, "fn": multiclass_calibration_error}
    except Exception as e:  # noqa: BLE001 (any import failure means: not usable here)
        peers["torchmetrics"] = {"missing": f"not installed ({type(e).__name__}: {e})"}
    try:
        import netcal
        from netcal.metrics import ECE

        peers["netcal"] = {"version": f"netcal {netcal.__version__}", "ECE": ECE}
    except Exception as e:  # noqa: BLE001
        peers["netcal"] = {"missing": f"not installed ({type(e).__name__}: {e})"}
    return peers


def numpy_ece(logits, labels, bins=BINS):
    """The plain numpy top-label ECE (float64, right-closed bins as calibench's default)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    conf = 1.0 / e.sum(axis=1)
    correct = (logits.argmax(axis=1) == labels).astype(np.float64)
    edges = np.arange(bins + 1) / bins
    idx = np.searchsorted(edges[1:-1], conf, side="left")
    sum_conf = np.bincount(idx, weights=conf, minlength=bins)
    sum_acc = np.bincount(idx, weights=correct, minlength=bins)
    return float(np.abs(sum_acc - sum_conf).sum() / len(labels))


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p


# ---- timing --------------------------------------------------------------------------------------


def median_seconds(fn, repeat):
    """Median wall time of fn() over `repeat` runs after one warm-up; and fn()'s value."""
    value = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def loop_seconds(per_candidate, candidates, repeat, budget):
    """Median time of a per-candidate loop over all `candidates`: when one pass would exceed
    `budget` seconds, each run times the first g candidates (g >= 3) and scales by len/g."""
    per_candidate(candidates[0])  # warm-up
    start = time.perf_counter()
    per_candidate(candidates[0])
    one = time.perf_counter() - start
    g = int(min(len(candidates), max(3, budget / max(one, 1e-9))))
    subset = candidates[:g]
    totals = []
    values = None
    for _ in range(repeat):
        start = time.perf_counter()
        values = [per_candidate(c) for c in subset]
        totals.append((time.perf_counter() - start) * len(candidates) / g)
    return statistics.median(totals), g, np.array(values)


# ---- benchmark -----------------------------------------------------------------------------------


def bench_dataset(name, logits, labels, peers, repeat, budget):
    n, k = logits.shape
    z64 = logits.astype(np.float64)
    y64 = labels.astype(np.int64)
    rows = {"dataset": name, "n": n, "k": k, "ece": [], "sweep": []}

    def add(table, method, seconds, value=None, reference=None, note=""):
        rows[table].append({"method": method, "seconds": seconds, "value": value, "reference": reference,
                            "note": note})

    # ECE evaluation ----------------------------------------------------------------------------
    t, ece = median_seconds(lambda: calibench.top_label_metrics(logits, labels)["ece"], repeat)
    add("ece", "calibench.top_label_metrics", t, ece, ece, "ECE, MCE, NLL, Brier, accuracy (sweep engine at T = 1)")
    t, full = median_seconds(lambda: calibench.evaluate(logits, labels), max(1, repeat // 2))
    add("ece", "calibench.evaluate", t, full["ece"], ece, "all 22 metrics (classwise, AUROC, smECE, KDE-ECE, ...)")
    t, v = median_seconds(lambda: numpy_ece(z64, y64), repeat)
    add("ece", "numpy (float64)", t, v, ece)
    tm = peers["torchmetrics"]
    if "fn" in tm:
        torch = tm["torch"]
        zt, yt = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)), torch.from_numpy(y64)
        fn = tm["fn"]
        reference = calibench.top_label_metrics(logits, labels, binning="torchmetrics")["ece"]
        t, v = median_seconds(lambda: float(fn(zt, yt, num_classes=k, n_bins=BINS, norm="l1", validate_args=False)),
                              repeat)
        add("ece", "torchmetrics multiclass_calibration_error", t, v, reference,
            "float32 logits (it applies softmax); validate_args=False")
    else:
        add("ece", "torchmetrics multiclass_calibration_error", None, note=tm["missing"])
    nc = peers["netcal"]
    if "ECE" in nc:
        metric = nc["ECE"](bins=BINS)
        reference = calibench.top_label_metrics(logits, labels, binning="left-closed")["ece"]
        t, v = median_seconds(lambda: float(metric.measure(softmax(z64), y64)), repeat)
        add("ece", "netcal ECE", t, v, reference,
            "float64 softmax in numpy, then ECE(bins=15).measure" + NETCAL_BINARY * (k == 2))
    else:
        add("ece", "netcal ECE", None, note=nc["missing"])

    # 1,000-temperature sweep ---------------------------------------------------------------------
    t, r = median_seconds(lambda: calibench.sweep_temperatures(logits, labels, temperatures=TEMPERATURES,
                                                               adaece=False), repeat)
    sweep_ece = r["ece"]
    add("sweep", "calibench.sweep_temperatures (temperature list)", t, float(sweep_ece.min()), float(sweep_ece.min()),
        "ECE, MCE, NLL, Brier, accuracy per candidate")
    t, r_inv = median_seconds(lambda: calibench.sweep_temperatures(logits, labels,
                                                                   inverse_temperatures=INVERSE_TEMPERATURES,
                                                                   adaece=False), repeat)
    add("sweep", "calibench.sweep_temperatures (inverse grid, recurrence)", t, float(r_inv["ece"].min()),
        float(r_inv["ece"].min()), "ECE, MCE, NLL, Brier, accuracy per candidate")
    t, r_ada = median_seconds(lambda: calibench.sweep_temperatures(logits, labels, temperatures=TEMPERATURES),
                              max(1, repeat // 2))
    add("sweep", "calibench.sweep_temperatures (temperature list, + adaECE)", t, float(r_ada["ece"].min()),
        float(sweep_ece.min()), "also equal-mass adaECE (a sort per candidate)")

    t, g, values = loop_seconds(lambda temp: numpy_ece(z64 / temp, y64), TEMPERATURES, repeat, budget)
    add("sweep", "numpy loop (float64)", t, float(values.min()), float(sweep_ece[:g].min()),
        "" if g == CANDIDATES else f"timed on {g} of {CANDIDATES} temperatures, scaled")
    if "fn" in tm:
        ref_tm = calibench.sweep_temperatures(logits, labels, temperatures=TEMPERATURES, adaece=False,
                                              binning="torchmetrics")["ece"]
        t, g, values = loop_seconds(
            lambda temp: float(fn(zt / temp, yt, num_classes=k, n_bins=BINS, norm="l1", validate_args=False)),
            TEMPERATURES, repeat, budget)
        add("sweep", "torchmetrics loop", t, float(values.min()), float(ref_tm[:g].min()),
            "float32" + ("" if g == CANDIDATES else f"; timed on {g} of {CANDIDATES} temperatures, scaled"))
    else:
        add("sweep", "torchmetrics loop", None, note=tm["missing"])
    if "ECE" in nc:
        ref_nc = calibench.sweep_temperatures(logits, labels, temperatures=TEMPERATURES, adaece=False,
                                              binning="left-closed")["ece"]
        t, g, values = loop_seconds(lambda temp: float(metric.measure(softmax(z64 / temp), y64)), TEMPERATURES,
                                    repeat, budget)
        add("sweep", "netcal loop", t, float(values.min()), float(ref_nc[:g].min()),
            ("" if g == CANDIDATES else f"timed on {g} of {CANDIDATES} temperatures, scaled")
            + NETCAL_BINARY * (k == 2))
    else:
        add("sweep", "netcal loop", None, note=nc["missing"])
    return rows


def machine_info():
    model, cpus = platform.processor() or platform.machine(), os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
        cpus = f"{fields.get('CPU(s)', cpus).strip()} CPUs ({fields.get('Core(s) per socket', '?').strip()} cores " \
               f"per socket x {fields.get('Socket(s)', '?').strip()} sockets, " \
               f"{fields.get('Thread(s) per core', '?').strip()} thread(s) per core)"
    except (OSError, subprocess.CalledProcessError):
        pass
    return model, cpus


def interpreter_name():
    """The interpreter as the command would be typed in the repository (.venv-peers/bin/python)."""
    exe = pathlib.Path(sys.executable)
    try:
        return str(exe.relative_to(REPO))
    except ValueError:
        return "python3"


def fmt_seconds(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def markdown(report):
    out = [f"# calibench (Python, CPU) against its peers, {report['date']}", ""]
    out += [f"Command: `{report['command']}`", ""]
    out += [f"- Machine: {report['cpu_model']}, {report['cpus']}; {report['memory']}",
            f"- calibench {report['calibench']} (commit {report['commit']}), sweep backend `{report['backend']}`",
            f"- Python {report['python']}, numpy {report['numpy']}"]
    for name, version in report["peers"].items():
        out.append(f"- {name}: {version}")
    out += [
            f"- threads: calibench (OpenMP) {report['omp_num_threads']}, torch {report['torch_threads'] or '-'}; numpy and "
            "netcal run single-threaded",
            f"- OMP_WAIT_POLICY={report['omp_wait_policy']} (every OpenMP runtime in the process)",
            f"- 1-minute load average {report['load_before']:.2f} before, {report['load_after']:.2f} after "
            "(other processes on the machine make every number noisier)", ""]
    out += ["Medians of the runs after one warm-up, same process, same data. Every method starts from the same",
            "logits (float32 as stored; numpy and netcal convert to float64 first) and does its own softmax.",
            f"ECE: {BINS} equal-width bins. Ratio = method's time / calibench's (top_label_metrics for ECE,",
            "the temperature-list sweep for sweeps): how many times slower the peer is. 'ECE' is the value the",
            "method computed (for sweeps: the smallest ECE over the temperatures it ran); 'calibench' is",
            "calibench's value under that library's bin convention (torchmetrics: [lo, hi) plus a slot for 1.0;",
            "netcal: left-closed), so the two columns must agree.", ""]
    for rows in report["datasets"]:
        out.append(f"## {rows['dataset']} ({rows['n']:,} x {rows['k']:,})")
        out.append("")
        for table, title, base_name in (("ece", "ECE evaluation", "calibench.top_label_metrics"),
                                        ("sweep", f"{CANDIDATES:,}-temperature sweep",
                                         "calibench.sweep_temperatures (temperature list)")):
            base = next(r["seconds"] for r in rows[table] if r["method"] == base_name)
            out += [f"{title}:", "", "| method | time | ratio | ECE | calibench | note |", "|---|---|---|---|---|---|"]
            for r in rows[table]:
                ratio = "-" if r["seconds"] is None else f"{r['seconds'] / base:.1f}x"
                value = "-" if r["value"] is None else f"{r['value']:.6f}"
                ref = "-" if r["reference"] is None else f"{r['reference']:.6f}"
                out.append(f"| {r['method']} | {fmt_seconds(r['seconds'])} | {ratio} | {value} | {ref} | {r['note']} |")
            out.append("")
    return "\n".join(out) + "\n"


def datasets(args, tmp):
    for shape in filter(None, args.shapes.split(",")):
        n, k = (int(v) for v in shape.split("x"))
        path = os.path.join(tmp, f"synth_{n}x{k}.h5")
        subprocess.run([args.bin, "synth", "--out", path, "--classes", str(k), "--n-val", "100", "--n-test", str(n),
                        "--seed", "0"], check=True, capture_output=True)
        yield f"synthetic {shape}", path
    if args.real == "none" or not REAL_DUMPS.is_dir():
        return
    seen = set()
    for path in sorted(REAL_DUMPS.glob("*.h5")):
        k = calibench.dump_info(str(path))["splits"][1]["k"]
        if args.real == "first-per-k" and k in seen:
            continue
        seen.add(k)
        yield f"real {path.stem}", str(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(REPO / "build" / "calibench"), help="the CLI (for calibench synth)")
    ap.add_argument("--shapes", default="10000x10,10000x100,25000x1000", help="synthetic test sets, NxK,...")
    ap.add_argument("--real", choices=["first-per-k", "all", "none"], default="first-per-k")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--budget", type=float, default=4.0,
                    help="seconds one run of a per-temperature peer loop may take before it is subsampled")
    ap.add_argument("--threads", default="1",
                    help="threads of calibench and torch (read before they load); default 1: the "
                         "2-vCPU development VM delivers one core of throughput and single-threaded runs are "
                         "disturbed less by other processes")
    ap.add_argument("--out", default=None, help="Markdown output (default results/bench/peers-<date>.md)")
    args = ap.parse_args()

    peers = import_peers()
    if "torch" in peers["torchmetrics"]:
        peers["torchmetrics"]["torch"].set_num_threads(int(THREADS))
    for name, p in peers.items():
        print(f"{name}: {p.get('version', p.get('missing'))}", file=sys.stderr)
    report = {"date": datetime.date.today().isoformat(), "datasets": [], "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in datasets(args, tmp):
            with h5py.File(path, "r") as f:
                logits = f["test/logits"][()]
                labels = f["test/labels"][()].reshape(-1)
            print(f"{name}: {logits.shape[0]} x {logits.shape[1]} ...", file=sys.stderr, flush=True)
            rows = bench_dataset(name, logits, labels, peers, args.repeat, args.budget)
            for table in ("ece", "sweep"):
                for r in rows[table]:
                    print(f"  {table:5s} {r['method']:58s} {fmt_seconds(r['seconds']):>10s}", file=sys.stderr)
            report["datasets"].append(rows)

    model, cpus = machine_info()
    torch = peers["torchmetrics"].get("torch")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    report.update({
        "command": " ".join([interpreter_name(), "bench/python/peers.py", *sys.argv[1:]]),
        "cpu_model": model, "cpus": cpus, "memory": f"{memory:.0f} GiB memory",
        "calibench": calibench.__version__, "commit": commit + (" with local changes" if dirty else ""),
        "backend": calibench.sweep_temperatures(np.zeros((2, 2), np.float32), [0, 1], temperatures=[1.0])["backend"],
        "python": platform.python_version(), "numpy": np.__version__,
        "peers": {name: p.get("version", p.get("missing")) for name, p in peers.items()},
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_after": os.getloadavg()[0],
    })
    out = pathlib.Path(args.out or REPO / "results" / "bench" / f"peers-{report['date']}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(report))
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
