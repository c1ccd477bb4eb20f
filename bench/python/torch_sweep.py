#!/usr/bin/env python3
"""Batched PyTorch temperature sweep on the GPU: the baseline for bench/cpp/bench_sweep_gpu.cpp.

For each shape (CIFAR-10 10000x10, CIFAR-100 10000x100, ImageNet 25000x1000) and candidate
count G, evaluates G temperatures (0.5..5, as BM_sweep_gpu_temperature) the way a PyTorch user
would batch it: logits / T for a chunk of temperatures at once (sized to fit in GPU memory),
softmax, max, bucketize into equal-width bins (right-closed, docs/metrics.md), bincount for the
per-candidate bin counts and sums, then ECE. Times each whole sweep with torch.cuda.Event and
prints one JSON document. The logits are the benchmark's own synthetic logits (SplitMix64
streams and Box-Muller normals of common/rng.hpp, scale 3), so ece_best is comparable.

Exits 0 with a message (and {"skipped": reason} on stdout) when torch or a CUDA device is
missing. Usage: python3 bench/python/torch_sweep.py [--dtype float32|float64] [--candidates 1,100,...]
"""
import argparse
import json
import math
import sys

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
STREAM_GAMMA = 0xA0761D6478BD642F

SHAPES = {"cifar10": (10000, 10), "cifar100": (10000, 100), "imagenet": (25000, 1000)}
SHAPE_INDEX = {"cifar10": 0, "cifar100": 1, "imagenet": 2}


def splitmix_draws(np, state, count):
    """The next `count` outputs of common/rng.hpp's splitmix64 from `state`; returns (draws, state)."""
    steps = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(state) + steps * np.uint64(GAMMA)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x, (state + count * GAMMA) & MASK64


def synthetic_logits(np, shape_index, n, k):
    """bench_sweep_gpu.cpp's data: make_stream(1 + shape, 0), N*K normals * 3 (float32), N labels."""
    state = (1 + shape_index + STREAM_GAMMA) & MASK64
    draws, state = splitmix_draws(np, state, 2 * n * k)
    uniform = (draws >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u1 = 1.0 - uniform[0::2]
    u2 = uniform[1::2]
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
    logits = (3.0 * normal).astype(np.float32).reshape(n, k)
    draws, state = splitmix_draws(np, state, n)
    labels = ((draws >> np.uint64(11)) * np.uint64(k)) >> np.uint64(53)  # exact: < 2^63
    return logits, labels.astype(np.int64)


def sweep(torch, logits, labels, temps, num_bins, dtype, budget_bytes):
    """ECE of every temperature in `temps` (a 1-D tensor on the device)."""
    n, k = logits.shape
    g_total = temps.numel()
    x = logits.to(dtype)
    edges = (torch.arange(1, num_bins, device=logits.device, dtype=torch.float64) / num_bins).to(dtype)
    elem = torch.finfo(dtype).bits // 8
    # scaled logits and probabilities both live at once, plus softmax's temporaries
    chunk = max(1, min(g_total, budget_bytes // (3 * n * k * elem)))
    ece = torch.empty(g_total, device=logits.device, dtype=torch.float64)
    for g0 in range(0, g_total, chunk):
        t = temps[g0 : g0 + chunk].to(dtype)
        gc = t.numel()
        probs = torch.softmax(x.unsqueeze(0) / t.view(gc, 1, 1), dim=-1)
        conf, pred = probs.max(dim=-1)  # gc x n
        del probs
        correct = (pred == labels.unsqueeze(0)).to(torch.float64)
        bins = torch.bucketize(conf, edges, right=False)  # right-closed bins ((i-1)/M, i/M]
        index = (bins + torch.arange(gc, device=logits.device).view(gc, 1) * num_bins).flatten()
        size = gc * num_bins
        sum_conf = torch.bincount(index, weights=conf.flatten().to(torch.float64), minlength=size)
        sum_correct = torch.bincount(index, weights=correct.flatten(), minlength=size)
        ece[g0 : g0 + gc] = (sum_correct - sum_conf).abs().view(gc, num_bins).sum(dim=1) / n
    return ece


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="cifar10,cifar100,imagenet")
    parser.add_argument("--candidates", default="1,100,1000,10000")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--bins", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-fraction", type=float, default=0.4,
                        help="share of free GPU memory one chunk may use")
    args = parser.parse_args()

    def skip(reason):
        print(f"torch_sweep: skipped: {reason}", file=sys.stderr)
        print(json.dumps({"skipped": reason}))
        return 0

    try:
        import numpy as np
        import torch
    except ImportError as e:
        return skip(f"{e.name or 'torch'} is not installed")
    if not torch.cuda.is_available():
        return skip("no CUDA device visible to torch")

    device = torch.device("cuda")
    dtype = getattr(torch, args.dtype)
    results = []
    for shape in args.shapes.split(","):
        n, k = SHAPES[shape]
        logits_np, labels_np = synthetic_logits(np, SHAPE_INDEX[shape], n, k)
        logits = torch.from_numpy(logits_np).to(device)
        labels = torch.from_numpy(labels_np).to(device)
        for g in (int(v) for v in args.candidates.split(",")):
            temps = torch.linspace(0.5, 5.0, g, dtype=torch.float64, device=device) if g > 1 else \
                torch.tensor([0.5], dtype=torch.float64, device=device)
            free, _ = torch.cuda.mem_get_info()
            budget = int(free * args.memory_fraction)
            sweep(torch, logits, labels, temps, args.bins, dtype, budget)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = torch.cuda.Event(enable_timing=True)
                stop = torch.cuda.Event(enable_timing=True)
                start.record()
                ece = sweep(torch, logits, labels, temps, args.bins, dtype, budget)
                best = ece.min().item()  # the result reaches the host, as the C++ sweep's does
                stop.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(stop))
            times.sort()
            ms = times[len(times) // 2]
            results.append({
                "shape": shape, "n": n, "k": k, "g": g, "dtype": args.dtype, "bins": args.bins,
                "ms": ms, "logit_candidates_per_s": n * k * g / (ms / 1e3), "ece_best": best,
            })
            print(f"torch_sweep: {shape} g={g}: {ms:.3f} ms", file=sys.stderr)
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
