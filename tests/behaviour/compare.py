#!/usr/bin/env python3
"""Golden comparison of two calibench builds (CLI binary + Python package).

    python3 tests/behaviour/compare.py --old OLDBIN --new NEWBIN \
        --old-py OLD_PYTHONPATH [--new-py DIR] --work WORKDIR [-k SUBSTRING] [--jobs 2]

Runs every case of cases.py with both binaries (and both Python packages) in separate scratch
folders, and compares exit codes, stdout, stderr and every file left behind, after normalising
only what legitimately differs from run to run (README.md). Exit status 0 when every case is
identical, 1 when some differ, 2 on a harness error.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import difflib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases as corpus  # noqa: E402
import datagen  # noqa: E402

PROBE = HERE / "py_probe.py"
SCRATCH_TOKEN = "<SCRATCH>"
MAX_DIFF_LINES = 24       # per artifact, in the terminal summary
MAX_ARTIFACTS_SHOWN = 3   # per case, in the terminal summary

# ------------------------------------------------------------------------------- normalisation

TIMING_KEYS = ("seconds", "pixels_per_second")
# "seconds": 0.0413  /  "pixels_per_second":7.6e5  (pretty or compact JSON, also JSON inside strings)
_JSON_TIMING = re.compile(r'("(?:%s)"\s*:\s*)(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|null|NaN|Infinity)'
                          % "|".join(TIMING_KEYS))
# \"seconds\":0.1 inside an escaped JSON string
_JSON_TIMING_ESC = re.compile(r'(\\"(?:%s)\\"\s*:\s*)(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|null)'
                              % "|".join(TIMING_KEYS))
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
# "0.027 s", "in 0.01 s (", "; 0.001 s" -- a number followed by the unit s (not "s" starting a word)
_TIME_S = re.compile(r"(?<![\w.])" + _NUM + r" s(?![\w/])")
# "28.6 cells/s", "1.03e+06 pixels/s"
_RATE = re.compile(r"(?<![\w.])" + _NUM + r" (cells|pixels)/s\b")
# atomic writes name their temporary file after the process id: "p.csv.tmp.32741"
_TMP_PID = re.compile(r"\.tmp\.\d+\b")


def normalise_text(text: str, scratch: str) -> str:
    for s in {scratch, os.path.realpath(scratch)}:
        text = text.replace(s, SCRATCH_TOKEN)
    text = _JSON_TIMING.sub(lambda m: m.group(1) + '"<T>"', text)
    text = _JSON_TIMING_ESC.sub(lambda m: m.group(1) + '\\"<T>\\"', text)
    text = _TIME_S.sub("<T> s", text)
    text = _RATE.sub(lambda m: "<R> " + m.group(1) + "/s", text)
    text = _TMP_PID.sub(".tmp.<PID>", text)
    text = _normalise_csv_columns(text)
    return text


def _csv_spans(line: str):
    """Field spans (start, end) of one CSV line (RFC 4180 quoting; no embedded newlines)."""
    spans, i, n = [], 0, len(line)
    while True:
        start = i
        if i < n and line[i] == '"':
            i += 1
            while i < n:
                if line[i] == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
        while i < n and line[i] != ",":
            i += 1
        spans.append((start, i))
        if i >= n:
            return spans
        i += 1


def _normalise_csv_columns(text: str) -> str:
    """In CSV text whose header names a timing column, replace that column's values."""
    nl = text.find("\n")
    header = text if nl < 0 else text[:nl]
    if "," not in header:
        return text
    names = [header[a:b].strip('"') for a, b in _csv_spans(header)]
    cols = [i for i, name in enumerate(names) if name in TIMING_KEYS]
    if not cols:
        return text
    out = []
    for li, line in enumerate(text.split("\n")):
        if li == 0 or not line:
            out.append(line)
            continue
        spans = _csv_spans(line)
        if len(spans) != len(names):  # a quoted field with an embedded newline etc.: leave it
            out.append(line)
            continue
        pieces, last = [], 0
        for ci in cols:
            a, b = spans[ci]
            pieces.append(line[last:a])
            pieces.append("<T>" if a != b else "")
            last = b
        pieces.append(line[last:])
        out.append("".join(pieces))
    return "\n".join(out)


# ------------------------------------------------------------------------------- file snapshots


def _h5_value_text(v, scratch):
    import numpy as np
    if isinstance(v, bytes):
        return "bytes " + repr(normalise_text(v.decode("utf-8", "surrogateescape"), scratch))
    if isinstance(v, str):
        return "str " + repr(normalise_text(v, scratch))
    a = np.asarray(v)
    if a.dtype.kind in "OSU":
        items = [x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else str(x) for x in a.ravel()]
        return f"{a.dtype.kind}{a.shape} " + repr([normalise_text(x, scratch) for x in items])
    return f"{a.dtype.str}{a.shape} {a.tobytes().hex() if a.size <= 64 else hashlib.sha256(a.tobytes()).hexdigest()}" \
           f" = {a.tolist() if a.size <= 16 else '...'}"


def h5_manifest(path: Path, scratch: str):
    """Lines describing an HDF5 file exactly (structure, dtypes, shapes, layout, values, attributes)
    and a dict dataset-name -> array loader for detailed diffs."""
    import h5py
    import numpy as np
    lines = []
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        return [f"<not readable by h5py: {type(e).__name__}: {e}>"]
    with f:
        def attrs(name, obj):
            for k in sorted(obj.attrs.keys()):
                try:
                    v = obj.attrs[k]
                    lines.append(f"{name} @{k} {obj.attrs.get_id(k).dtype} = {_h5_value_text(v, scratch)}")
                except Exception as e:  # noqa: BLE001
                    lines.append(f"{name} @{k} <unreadable {type(e).__name__}: {e}>")

        attrs("/", f)
        names = []
        f.visit(names.append)
        for n in sorted(names):
            obj = f[n]
            if isinstance(obj, h5py.Group):
                lines.append(f"/{n}/ group")
            elif isinstance(obj, h5py.Dataset):
                a = obj[()]
                a = np.asarray(a)
                layout = f"chunks={obj.chunks} compression={obj.compression} opts={obj.compression_opts} " \
                         f"shuffle={obj.shuffle} fill={obj.fillvalue!r}"
                if a.dtype.kind in "OSU":
                    lines.append(f"/{n} dataset {obj.dtype} {obj.shape} {layout} = {_h5_value_text(a, scratch)}")
                else:
                    digest = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
                    lines.append(f"/{n} dataset {obj.dtype} {obj.shape} {layout} sha256={digest}")
            else:
                lines.append(f"/{n} {type(obj).__name__}")
            attrs(f"/{n}", obj)
    return lines


def h5_dataset_detail(old: Path, new: Path, name: str, limit: int = 5):
    """First differing elements of dataset `name` (bit comparison)."""
    import h5py
    import numpy as np
    try:
        with h5py.File(old, "r") as fo, h5py.File(new, "r") as fn:
            a, b = np.asarray(fo[name][()]), np.asarray(fn[name][()])
    except Exception as e:  # noqa: BLE001
        return [f"  (detail unavailable: {e})"]
    if a.shape != b.shape or a.dtype != b.dtype:
        return [f"  {name}: old {a.dtype}{a.shape} new {b.dtype}{b.shape}"]
    av = a.reshape(-1).view(np.uint8).reshape(a.size, -1) if a.size else a.reshape(-1)
    bv = b.reshape(-1).view(np.uint8).reshape(b.size, -1) if b.size else b.reshape(-1)
    diff = np.flatnonzero((av != bv).any(axis=1)) if a.size else []
    out = [f"  {name}: {len(diff)} of {a.size} elements differ"]
    for i in diff[:limit]:
        idx = np.unravel_index(i, a.shape)
        out.append(f"    [{', '.join(map(str, idx))}] old {a.reshape(-1)[i]!r} new {b.reshape(-1)[i]!r}")
    return out


def snapshot_files(scratch: Path):
    """{relpath: ('h5'|'text'|'bin'|'dir', payload)} of everything under scratch."""
    out = {}
    s = str(scratch)
    for root, dirs, files in os.walk(scratch):
        dirs.sort()
        for d in dirs:
            rel = os.path.relpath(os.path.join(root, d), scratch)
            out[rel + "/"] = ("dir", [])
        for fn in sorted(files):
            p = Path(root) / fn
            rel = os.path.relpath(p, scratch)
            if rel.startswith(".golden-"):
                continue
            data = p.read_bytes()
            if data[:8] == b"\x89HDF\r\n\x1a\n":
                out[rel] = ("h5", h5_manifest(p, s))
            else:
                try:
                    text = data.decode("utf-8")
                    out[rel] = ("text", normalise_text(text, s).splitlines(keepends=True))
                except UnicodeDecodeError:
                    out[rel] = ("bin", [f"{len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}\n"])
    return out


# ------------------------------------------------------------------------------- running


def helper_action(args, cwd: Path) -> str:
    if args[0] == "delete-first-cell":
        d = cwd / args[1]
        files = sorted(d.glob("*.json")) if d.is_dir() else []
        if not files:
            return "no cell to delete\n"
        files[0].unlink()
        return f"deleted {files[0].name}\n"
    raise ValueError(f"unknown helper {args[0]}")


def run_side(case, side, cfg):
    """Runs every step of `case` for one side; returns (artifacts, seconds)."""
    scratch = cfg["work"] / "runs" / side / case_dirname(case.name)
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    if Path(str(scratch) + ".out").exists():
        Path(str(scratch) + ".out").unlink()
    s = str(scratch)
    arts = {}
    t0 = time.monotonic()
    for i, (kind, args) in enumerate(case.steps):
        key = f"step{i + 1}"
        env = dict(cfg["env"])
        if kind == "cli":
            argv = [cfg[side + "_bin"], *args]
        elif kind == "py":
            argv = [sys.executable, str(PROBE), *args]
            env.pop("PYTHONPATH", None)
            if cfg[side + "_py"]:
                env["PYTHONPATH"] = cfg[side + "_py"]
        elif kind == "helper":
            arts[f"{key}.helper"] = [helper_action(args, scratch)]
            continue
        else:
            raise ValueError(kind)
        arts[f"{key}.cmd"] = [" ".join([kind] + [a.replace(s, SCRATCH_TOKEN) for a in args]) + "\n"]
        try:
            r = subprocess.run(argv, cwd=scratch, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=case.timeout)
            rc, out, err = str(r.returncode), r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "TIMEOUT", e.stdout or b"", e.stderr or b""
        arts[f"{key}.rc"] = [rc + "\n"]
        arts[f"{key}.stdout"] = normalise_text(out.decode("utf-8", "surrogateescape"), s).splitlines(keepends=True)
        arts[f"{key}.stderr"] = normalise_text(err.decode("utf-8", "surrogateescape"), s).splitlines(keepends=True)
    files = snapshot_files(scratch)
    arts["files"] = [f"{k} {v[0]}\n" for k, v in sorted(files.items())]
    for k, (typ, payload) in files.items():
        if typ != "dir":
            arts[f"file:{k}"] = payload
    # The normalised artifacts, for inspection: WORK/runs/<side>/<case>.out
    with open(str(scratch) + ".out", "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(f"# case {case.name} ({side})\n")
        for k, lines in arts.items():
            f.write(f"===== {k}\n")
            f.writelines(l if l.endswith("\n") else l + "\n" for l in lines)
    return arts, scratch, time.monotonic() - t0


def case_dirname(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name)
    return safe[:100] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def compare_case(case, cfg):
    old, old_dir, t_old = run_side(case, "old", cfg)
    new, new_dir, t_new = run_side(case, "new", cfg)
    diffs = []
    for key in sorted(set(old) | set(new), key=lambda k: (not k.startswith("step"), k)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        a = a if a is not None else ["<absent>\n"]
        b = b if b is not None else ["<absent>\n"]
        d = list(difflib.unified_diff(a, b, f"old/{key}", f"new/{key}", n=2))
        d = [line if line.endswith("\n") else line + "\n" for line in d]
        if key.startswith("file:") and key in old and key in new:
            # HDF5 datasets that differ: the first differing elements
            for line in a:
                if " dataset " in line and "sha256=" in line and line not in b:
                    dname = line.split(" ", 1)[0]
                    d += [x + "\n" for x in h5_dataset_detail(old_dir / key[5:], new_dir / key[5:], dname)]
        diffs.append((key, d))
    return {"name": case.name, "diffs": diffs, "seconds": t_old + t_new, "t_old": t_old, "t_new": t_new}


# ------------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="the OLD calibench binary")
    ap.add_argument("--new", required=True, help="the NEW calibench binary")
    ap.add_argument("--old-py", required=True, help="PYTHONPATH of the OLD calibench package")
    ap.add_argument("--new-py", default=None,
                    help="PYTHONPATH of the NEW package (default: the calibench installed for this python3)")
    ap.add_argument("--work", required=True, help="work folder (data, specs, scratch runs, report)")
    ap.add_argument("-k", dest="filters", action="append", default=[],
                    help="run only cases whose name contains SUBSTRING (repeatable: any)")
    ap.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--regen", action="store_true", help="regenerate the input data")
    ap.add_argument("--no-python", action="store_true", help="skip the Python package cases")
    args = ap.parse_args(argv)

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    old_bin = str(Path(args.old).resolve())
    new_bin = str(Path(args.new).resolve())
    for b in (old_bin, new_bin):
        if not os.access(b, os.X_OK):
            print(f"compare.py: not an executable: {b}", file=sys.stderr)
            return 2
    t_start = time.monotonic()
    if args.regen and (work / "data" / "STAMP.json").exists():
        (work / "data" / "STAMP.json").unlink()
    datagen.generate(work / "data", old_bin)

    all_cases = corpus.build(work, old_bin, str(Path(args.old_py).resolve()))
    cases = [c for c in all_cases if not args.filters or any(f in c.name for f in args.filters)]
    if args.no_python:
        cases = [c for c in cases if not c.name.startswith("python/")]
    if args.list:
        for c in cases:
            print(c.name)
        print(f"{len(cases)} cases", file=sys.stderr)
        return 0

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    env.setdefault("LC_ALL", "C.UTF-8")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads competing between the 2 jobs
    cfg = {"work": work, "old_bin": old_bin, "new_bin": new_bin, "env": env,
           "old_py": str(Path(args.old_py).resolve()) if args.old_py else None,
           "new_py": str(Path(args.new_py).resolve()) if args.new_py else None}

    # Which packages the Python cases import (information only).
    for side in ("old", "new"):
        e = dict(env)
        if cfg[side + "_py"]:
            e["PYTHONPATH"] = cfg[side + "_py"]
        r = subprocess.run([sys.executable, "-c", "import calibench; print(calibench.__file__)"], env=e,
                           capture_output=True, text=True, cwd=work)
        where = r.stdout.strip() or ("import failed: " + r.stderr.strip().splitlines()[-1] if r.stderr.strip()
                                     else "import failed")
        print(f"{side}: binary {cfg[side + '_bin']}; python package {where}")

    report_dir = work / "report"
    if report_dir.exists():
        shutil.rmtree(report_dir)
    report_dir.mkdir()

    results = []
    done = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = {ex.submit(compare_case, c, cfg): c for c in cases}
        for fut in cf.as_completed(futs):
            c = futs[fut]
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001
                res = {"name": c.name, "diffs": [("harness", [f"harness error: {type(e).__name__}: {e}\n"])],
                       "seconds": 0.0}
            results.append(res)
            done += 1
            if res["diffs"]:
                print(f"[{done}/{len(cases)}] DIFF {c.name}", flush=True)
            elif done % 100 == 0:
                print(f"[{done}/{len(cases)}] ...", flush=True)

    order = {c.name: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order[r["name"]])
    differing = [r for r in results if r["diffs"]]

    for r in differing:
        full = []
        for key, d in r["diffs"]:
            full += d
        (report_dir / (case_dirname(r["name"]) + ".diff")).write_text(f"# case {r['name']}\n" + "".join(full))

    if differing:
        print("\n================ differences ================")
        for r in differing:
            print(f"\n### {r['name']}  ({len(r['diffs'])} artifact(s) differ: "
                  f"{', '.join(k for k, _ in r['diffs'][:8])}{', ...' if len(r['diffs']) > 8 else ''})")
            for key, d in r["diffs"][:MAX_ARTIFACTS_SHOWN]:
                shown = d[:MAX_DIFF_LINES]
                sys.stdout.write("".join(shown))
                if len(d) > MAX_DIFF_LINES:
                    print(f"... ({len(d) - MAX_DIFF_LINES} more diff lines)")
            if len(r["diffs"]) > MAX_ARTIFACTS_SHOWN:
                print(f"... ({len(r['diffs']) - MAX_ARTIFACTS_SHOWN} more artifacts differ)")
            print(f"full diff: {report_dir / (case_dirname(r['name']) + '.diff')}")

    elapsed = time.monotonic() - t_start
    slow = sorted(results, key=lambda r: -r["seconds"])[:5]
    summary = {"cases": len(results), "identical": len(results) - len(differing), "differing": len(differing),
               "differing_names": [r["name"] for r in differing], "seconds": round(elapsed, 1),
               "slowest": [[r["name"], round(r["seconds"], 2)] for r in slow],
               "old": cfg["old_bin"], "new": cfg["new_bin"], "old_py": cfg["old_py"], "new_py": cfg["new_py"]}
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n================ summary ================")
    print(f"cases run: {len(results)}")
    print(f"identical: {len(results) - len(differing)}")
    print(f"differing: {len(differing)}")
    for r in differing:
        print(f"  - {r['name']}")
    print(f"time: {elapsed:.1f} s (jobs {args.jobs}); report: {report_dir}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
