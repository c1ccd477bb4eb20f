#!/usr/bin/env python3
"""Summarise one scripts/gpu_check.sh run (a results/gpu/<run>/ folder) as Markdown tables:
the GPU sweep per family, shape and candidate count beside PyTorch's batched float32 sweep
(bench/python/torch_sweep.py) and the CPU backend on the same machine's cores, all from that one run.
Usage: python3 scripts/gpu_summary.py results/gpu/<run>  (prints Markdown)."""
import json
import re
import sys
from pathlib import Path

SHAPES = ["cifar10 (10000 x 10)", "cifar100 (10000 x 100)", "imagenet (25000 x 1000)"]
TORCH_NAMES = ["cifar10", "cifar100", "imagenet"]


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def parse(name):
    """Family, shape index, candidate count and adaECE flag of a benchmark name."""
    fam = re.match(r"BM_sweep_(?:gpu|cpu)_([a-z_]+?)(?:_no_adaece)?/", name).group(1)
    shape = int(re.search(r"shape:(\d)", name).group(1))
    g = int(re.search(r"/[gG]:(\d+)", name).group(1))
    ada = int(re.search(r"adaece:(\d)", name).group(1))
    return fam, shape, g, ada


def ms(b):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * scale


def main():
    run = Path(sys.argv[1])
    gpu = load(run / "bench_sweep_gpu.json")
    cpu = load(run / "bench_sweep_cpu_same_machine.json")
    torch = load(run / "torch_sweep.json")
    gpu_ms = {parse(b["name"]): ms(b) for b in gpu["benchmarks"]} if gpu else {}
    cpu_ms = {parse(b["name"]): ms(b) for b in cpu["benchmarks"]} if cpu else {}
    torch_ms = {}
    if torch and "results" in torch:
        for r in torch["results"]:
            if r.get("dtype", "float32") == "float32":
                torch_ms[(TORCH_NAMES.index(r["shape"]), r["g"])] = r["ms"]
    families = sorted({k[0] for k in gpu_ms}, key=lambda f: list(k[0] for k in gpu_ms).index(f))
    print("Milliseconds per whole sweep (one call as a caller sees it, all metrics incl. adaECE unless marked).\n")
    print("| family | shape | G | GPU | GPU, no adaECE | CPU backend, same machine | PyTorch float32, ECE only |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for fam in families:
        for (f, shape, g, ada), t in sorted(gpu_ms.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if f != fam or ada != 1:
                continue
            no_ada = gpu_ms.get((f, shape, g, 0))
            c = cpu_ms.get((f, shape, g, 1))
            tt = torch_ms.get((shape, g)) if fam == "temperature" else None
            cell = lambda v: f"{v:.3g}" if v is not None else ""
            print(f"| {fam} | {SHAPES[shape]} | {g} | {cell(t)} | {cell(no_ada)} | {cell(c)} | {cell(tt)} |")


if __name__ == "__main__":
    main()
