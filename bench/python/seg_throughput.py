#!/usr/bin/env python3
"""Pixel throughput of `calibench seg-eval` on a 10^8-pixel segmentation test group.

Writes a dump (default /tmp/calibench-seg-1e8.h5, about 2 GB: /val 16 images and /test 1526
images of 256 x 256, K = 4, float32 logits from `calibench synth --segmentation`-like blobs,
tiled) once, then times `seg-eval --groups test` for each method set, best of --repeats runs,
and prints pixels per second. Usage:
  python3 bench/python/seg_throughput.py [--bin build/calibench] [--file PATH] [--repeats 3] [--out results/bench/...md]
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


def make_dump(bin_path, path, images, size):
    """Tiles the images of a small synthetic segmentation dump up to `images` test images."""
    with tempfile.TemporaryDirectory() as tmp:
        small = os.path.join(tmp, "small.h5")
        subprocess.run([bin_path, "synth", "--segmentation", "--out", small, "--images", "16", "--height", str(size),
                        "--width", str(size), "--augmentations", "0", "--seed", "7"], check=True, capture_output=True)
        with h5py.File(small, "r") as src, h5py.File(path + ".tmp", "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in ("logits", "labels"):
                dst.create_dataset(f"val/{name}", data=src[f"val/{name}"][:])
            logits, labels = src["test/logits"][:], src["test/labels"][:]
            k = logits.shape[1]
            out_l = dst.create_dataset("test/logits", (images, k, size, size), dtype="f4", chunks=(1, k, size, size))
            out_y = dst.create_dataset("test/labels", (images, size, size), dtype="i4", chunks=(1, size, size))
            for b0 in range(0, images, 16):
                n = min(16, images - b0)
                out_l[b0:b0 + n] = logits[:n]
                out_y[b0:b0 + n] = labels[:n]
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "calibench"))
    ap.add_argument("--file", default="/tmp/calibench-seg-1e8.h5")
    ap.add_argument("--images", type=int, default=1526)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if not os.path.exists(args.file):
        make_dump(args.bin, args.file, args.images, args.size)
    rows = []
    for methods, roi in (("uncalibrated", "dilate"), ("uncalibrated", "all"), ("uncalibrated,ts", "dilate")):
        best = None
        for _ in range(args.repeats):
            started = time.perf_counter()
            proc = subprocess.run([args.bin, "seg-eval", args.file, "--groups", "test", "--methods", methods, "--roi", roi,
                                   "--format", "json"], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - started
            best = wall if best is None else min(best, wall)
        d = json.loads(proc.stdout)
        pixels = d["results"][0]["pixels"]
        rows.append((methods, roi, pixels, best, pixels * len(methods.split(",")) / best))
        print(f"{methods:20s} roi {roi:7s} {pixels} pixels: {best:.2f} s wall (process), "
              f"{pixels * len(methods.split(',')) / best:.3g} pixel-evaluations/s")
    if args.out:
        cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"], capture_output=True,
                             text=True).stdout.strip()
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        lines = [f"# seg-eval throughput, {datetime.date.today().isoformat()}", "",
                 f"`python3 bench/python/seg_throughput.py --out {args.out}`; commit `{commit}`; {cpu}, "
                 f"{os.cpu_count()} vCPUs ({platform.machine()}); test group of {args.images} images of "
                 f"{args.size} x {args.size}, K = 4, float32 logits; whole process, best of {args.repeats}.", "",
                 "| methods | ROI | pixels | seconds | pixel-evaluations / s |", "|---|---|---|---|---|"]
        lines += [f"| {m} | {r} | {p} | {s:.2f} | {v:.3g} |" for m, r, p, s, v in rows]
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
