#!/usr/bin/env python3
# calibench-convert: bring saved classifier outputs (literature pickles, .npz, .npy pairs,
# PyTorch .pt files; lm-evaluation-harness sample logs and CSV/Parquet tables through
# python/calibench/inputs.py) into calibench's HDF5 logit dump (docs/metrics.md, "Inputs"),
# validating them on the way. Untrusted pickles and .pt files are read with a restricted
# unpickler (safe_unpickle.py) and never need torch. Usage: README.md beside this file, or --help.
"""Convert logit files into calibench HDF5 dumps.

Library use (the CLI is a thin wrapper):
    from calibench_convert import main
    status = main(["in.p", "-o", "out.h5", "--dataset", "CIFAR-10", "--model", "DenseNet-40"])
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import os
import reprlib
import shlex
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safe_unpickle  # noqa: E402  (lives beside this file)

PROG = "calibench-convert"
SCHEMA_FORMAT = "calibench-logits"
SCHEMA_VERSION = 1
PROB_TOLERANCE = 1e-3   # rows of probabilities must sum to 1 within this (docs/metrics.md, "Inputs")
LOG_CLIP = 1e-38        # --probs-to-logits stores log(max(p, LOG_CLIP)), as data/real/SOURCES.md did
RESERVED_ATTRS = {"format", "version", "dataset", "model", "num_classes", "source", "class_names"}

# Key names tried, in this order, when an .npz file or a pickled dict is given without --*-key
# options. The single-set names cover netcal (predictions/ground_truth), metacal (logits/targets)
# and the usual spellings.
CANDIDATE_KEYS = {
    "val_logits": ["logits_val", "val_logits", "logits_valid", "valid_logits", "val_outputs", "val_scores"],
    "val_labels": ["y_val", "labels_val", "val_labels", "targets_val", "val_targets", "y_valid", "val_y"],
    "test_logits": ["logits_test", "test_logits", "test_outputs", "test_scores"],
    "test_labels": ["y_test", "labels_test", "test_labels", "targets_test", "test_targets", "test_y"],
    "logits": ["logits", "scores", "outputs", "predictions", "preds", "probs", "probabilities"],
    "labels": ["labels", "targets", "y", "ground_truth", "y_true", "target", "label", "gt"],
}
NESTED_SPLIT_KEYS = {"val": ["val", "valid", "validation"], "test": ["test"]}
CLASS_NAME_KEYS = ["class_names", "classes"]
SPLIT_ROLES = ["val_logits", "val_labels", "test_logits", "test_labels"]
SINGLE_ROLES = ["logits", "labels"]
PICKLE_EXTS = {".p", ".pkl", ".pickle", ".dat"}
TORCH_EXTS = {".pt", ".pth"}
# Formats parsed by python/calibench/inputs.py (read_lm_eval, read_table), by extension.
READER_EXTS = {".jsonl": "lm-eval", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
READER_FORMATS = ("lm-eval", "csv", "parquet")
INPUTS_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "calibench", "inputs.py")


class ConvertError(Exception):
    """Bad input or bad usage: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- small helpers


@dataclass
class Origin:
    """Where an array came from, for messages and the `source` attribute."""

    file: str
    where: str = ""  # e.g. "key 'logits_val'" or "[0][1]"; empty for a file that is the array

    def paren(self):
        return f" ({self.where})" if self.where else ""

    def __str__(self):
        return f"{self.file} {self.where}" if self.where else self.file


@dataclass
class Found:
    """The arrays found in the input(s), before validation."""

    arrays: dict  # role -> np.ndarray   (roles: SPLIT_ROLES, or SINGLE_ROLES)
    origins: dict  # role -> Origin
    layout: str   # human description of the structure, for `source`
    class_names: list | None = None
    notes: list = field(default_factory=list)
    said: list = field(default_factory=list)  # notes also printed on stderr (e.g. padded choices)

    @property
    def single(self):
        return "logits" in self.arrays


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlevel = 2


def brief(value):
    """repr() bounded in length and depth: keys and values in messages come from untrusted files."""
    return _BRIEF.repr(value)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def as_array(obj):
    """An ndarray, or a list of numbers / list of lists of numbers turned into one; else None.
    (Deeper nesting is never logits or labels, and a crafted pickle could share one list many
    times over to make it enormous.)"""
    if isinstance(obj, np.ndarray):
        return obj
    if not isinstance(obj, list) or not obj:
        return None
    number = (int, float, np.integer, np.floating)
    if all(isinstance(v, number) for v in obj):
        pass
    elif not all(isinstance(v, list) and all(isinstance(x, number) for x in v) for v in obj):
        return None
    elif len({id(v) for v in obj}) != len(obj):
        return None  # rows shared by reference: never a real export, possibly a memory bomb
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError, MemoryError):
        return None
    return arr if arr.dtype.kind in "biuf" else None


def describe(obj):
    """A short description of a decoded object's structure (for --inspect), at most 200 lines."""
    lines = []

    def walk(o, depth, label):
        if len(lines) >= 200:
            return
        pad = "  " * depth + label
        if isinstance(o, np.ndarray):
            lines.append(f"{pad}array {o.dtype} {tuple(o.shape)}")
        elif isinstance(o, list) and as_array(o) is not None:
            lines.append(f"{pad}list of numbers, shape {tuple(as_array(o).shape)}")
        elif isinstance(o, dict) and depth < 8:
            lines.append(f"{pad}{type(o).__name__} with {len(o)} keys")
            for k, v in list(o.items())[:50]:
                walk(v, depth + 1, f"{brief(k)}: ")
        elif isinstance(o, (list, tuple)) and depth < 8:
            lines.append(f"{pad}{type(o).__name__} of {len(o)} items")
            for i, v in enumerate(o[:20]):
                walk(v, depth + 1, f"[{i}] ")
        elif isinstance(o, (list, tuple, dict, set, frozenset)):
            lines.append(f"{pad}{type(o).__name__} of {len(o)} items, nested deeper")  # no repr: may be huge
        elif isinstance(o, (bytes, bytearray)):
            lines.append(f"{pad}{type(o).__name__} of length {len(o)}")
        else:
            lines.append(f"{pad}{type(o).__name__}: {brief(o)}")

    walk(obj, 0, "")
    if len(lines) >= 200:
        lines.append("...")
    return "\n".join(lines)


def short_type(obj):
    if isinstance(obj, np.ndarray):
        return f"an array of shape {tuple(obj.shape)}"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    if isinstance(obj, dict):
        return f"a dict with keys {', '.join(map(brief, list(obj)[:12]))}"
    return f"a {type(obj).__name__}"


# ----------------------------------------------------------------------------- reading files


def resolve_format(path, forced):
    """Which reader to use: --format if given, else the file's first bytes, else its extension."""
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ConvertError(f"{path}: is a directory, not a file")
    if forced != "auto":
        return forced
    try:
        kind = safe_unpickle.sniff(path)
    except OSError as e:
        raise ConvertError(f"{path}: cannot read ({e.strerror or e})") from None
    if kind in ("torch", "torch-legacy", "torch-tar"):
        return "torch"
    if kind is not None:
        return kind
    ext = os.path.splitext(path)[1].lower()
    if ext in READER_EXTS:
        return READER_EXTS[ext]
    if ext in PICKLE_EXTS:
        return "pickle"  # protocol 0/1 pickles have no magic bytes
    if ext in TORCH_EXTS:
        return "torch"
    if ext in (".npz", ".npy"):
        return ext[1:]  # damaged: numpy's loader says what is wrong
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PAR1":
                return "parquet"
    except OSError as e:
        raise ConvertError(f"{path}: cannot read ({e.strerror or e})") from None
    raise ConvertError(f"{path}: cannot tell the file's format; pass --format pickle|npz|npy|torch|lm-eval|csv|parquet")


def first_line(exc):
    lines = str(exc).splitlines()
    return lines[0] if lines and lines[0] else type(exc).__name__


def read_file(path, fmt):
    """Decode one input file into Python objects (numpy arrays, lists, tuples, dicts)."""
    try:
        if fmt == "pickle":
            return safe_unpickle.load_pickle(path)
        if fmt == "torch":
            return safe_unpickle.load_torch(path)
        if fmt in ("npy", "npz"):
            loaded = np.load(path, allow_pickle=False)
            if fmt == "npy" and not isinstance(loaded, np.ndarray):
                loaded.close()
                raise ConvertError(f"{path}: is an .npz archive, not a .npy file; use --format npz")
            if fmt == "npz" and isinstance(loaded, np.ndarray):
                raise ConvertError(f"{path}: is a .npy file, not an .npz archive; use --format npy")
            if fmt == "npy":
                return loaded
            with loaded as z:
                return {k: z[k] for k in z.files}
    except safe_unpickle.DecodeError as e:
        raise ConvertError(str(e)) from None
    except ConvertError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ConvertError(f"{path}: holds an object array, which is never loaded (it would need "
                               "pickle); save plain numeric arrays") from None
        raise ConvertError(f"{path}: cannot read it as {fmt}: {first_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - zipfile/numpy raise a zoo of errors on malformed input
        raise ConvertError(f"{path}: cannot read it as {fmt}: {type(e).__name__}: {first_line(e)}") from None
    raise ConvertError(f"unknown format {fmt!r}")


# ----------------------------------------------------------------------------- finding arrays


def _class_names_from(mapping, path):
    for key in CLASS_NAME_KEYS:
        if key in mapping:
            value = mapping[key]
            if isinstance(value, np.ndarray) and value.dtype.kind in "US" and value.ndim == 1:
                return [str(v.decode() if isinstance(v, bytes) else v) for v in value]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
    return None


def find_in_mapping(mapping, path, keyopts):
    """Find logits/labels in a dict (npz archive, pickled dict, torch.save dict)."""
    str_keys = [k for k in mapping if isinstance(k, str)]
    keylist = ", ".join(map(brief, str_keys[:20])) or "none"

    def take(role, key):
        if key not in mapping:
            raise ConvertError(f"{path}: has no key {key!r} (for {role.replace('_', ' ')}); keys: {keylist}")
        arr = as_array(mapping[key])
        if arr is None:
            raise ConvertError(f"{path}: key {key!r} holds {short_type(mapping[key])}, not an array")
        return arr, Origin(path, f"key {key!r}")

    def auto(role, where=mapping):
        found = [k for k in CANDIDATE_KEYS[role] if k in where]
        if len(found) > 1:
            opt = "--" + role.replace("_", "-") + "-key"
            raise ConvertError(f"{path}: several keys could hold the {role.replace('_', ' ')} "
                               f"({', '.join(map(repr, found))}); choose one with {opt}")
        return found[0] if found else None

    explicit = {r: keyopts.get(r) for r in SPLIT_ROLES + SINGLE_ROLES if keyopts.get(r)}
    for role, key in explicit.items():  # a key the user named must exist, whatever else is missing
        if key not in mapping:
            raise ConvertError(f"{path}: has no key {key!r} (--{role.replace('_', '-')}-key); keys: {keylist}")
    names = _class_names_from(mapping, path)
    single_explicit = any(r in explicit for r in SINGLE_ROLES)
    split_explicit = any(r in explicit for r in SPLIT_ROLES)
    if single_explicit and split_explicit:
        raise ConvertError("use either --logits-key/--labels-key (one set) or the --val-*/--test-* key options")

    if not single_explicit:
        keys = {r: explicit.get(r) or auto(r) for r in SPLIT_ROLES}
        if all(keys.values()):
            arrays, origins = {}, {}
            for r in SPLIT_ROLES:
                arrays[r], origins[r] = take(r, keys[r])
            layout = "dict with keys " + ", ".join(f"{r.replace('_', ' ')}={keys[r]!r}" for r in SPLIT_ROLES)
            return Found(arrays, origins, layout, names)
        if any(keys.values()) or split_explicit:
            missing = [r for r in SPLIT_ROLES if not keys[r]]
            opts = ", ".join("--" + r.replace("_", "-") + "-key" for r in missing)
            raise ConvertError(f"{path}: found some of the val/test keys but not the "
                               f"{', '.join(m.replace('_', ' ') for m in missing)}; keys: {keylist}; name them with {opts}")
        # {"val": {"logits": ..., "labels": ...}, "test": {...}}
        groups = {}
        for split, candidates in NESTED_SPLIT_KEYS.items():
            hit = [k for k in candidates if isinstance(mapping.get(k), dict)]
            if hit:
                groups[split] = hit[0]
        if len(groups) == 2:
            arrays, origins = {}, {}
            for split, gkey in groups.items():
                sub = mapping[gkey]
                for what in ("logits", "labels"):
                    k = auto(what, sub)
                    if k is None:
                        raise ConvertError(f"{path}: group {gkey!r} has no {what} key "
                                           f"(keys: {', '.join(map(brief, list(sub)[:20]))})")
                    arr = as_array(sub[k])
                    if arr is None:
                        raise ConvertError(f"{path}: {gkey}/{k} holds {short_type(sub[k])}, not an array")
                    arrays[f"{split}_{what}"], origins[f"{split}_{what}"] = arr, Origin(path, f"key {gkey!r}/{k!r}")
            return Found(arrays, origins, "dict of val/test groups", names)

    keys = {r: explicit.get(r) or auto(r) for r in SINGLE_ROLES}
    if all(keys.values()):
        arrays, origins = {}, {}
        for r in SINGLE_ROLES:
            arrays[r], origins[r] = take(r, keys[r])
        return Found(arrays, origins, f"dict with one set: logits={keys['logits']!r}, labels={keys['labels']!r}", names)
    raise ConvertError(f"{path}: cannot find logits and labels (keys: {keylist}); name them with "
                       "--val-logits-key/--val-labels-key/--test-logits-key/--test-labels-key, "
                       "or --logits-key/--labels-key for a single set")


def find_in_sequence(seq, path):
    """((logits_val, y_val), (logits_test, y_test)) or (logits, labels)."""
    kind = type(seq).__name__
    if len(seq) == 2 and all(isinstance(s, (list, tuple)) and len(s) == 2 for s in seq):
        arrays, origins = {}, {}
        for i, split in enumerate(("val", "test")):
            for j, what in enumerate(("logits", "labels")):
                arr = as_array(seq[i][j])
                if arr is None:
                    raise ConvertError(f"{path}: item [{i}][{j}] ({split} {what}) is {short_type(seq[i][j])}, "
                                       "not an array")
                arrays[f"{split}_{what}"], origins[f"{split}_{what}"] = arr, Origin(path, f"[{i}][{j}]")
        return Found(arrays, origins, f"{kind} ((logits_val, y_val), (logits_test, y_test))")
    if len(seq) == 2 and all(as_array(s) is not None for s in seq):
        return Found({"logits": as_array(seq[0]), "labels": as_array(seq[1])},
                     {"logits": Origin(path, "[0]"), "labels": Origin(path, "[1]")}, f"{kind} (logits, labels)")
    raise ConvertError(f"{path}: holds {short_type(seq)}; expected ((logits_val, y_val), (logits_test, y_test)) "
                       "or (logits, labels) (see --inspect)")


def find_arrays(obj, path, keyopts):
    if isinstance(obj, dict):
        return find_in_mapping(obj, path, keyopts)
    if any(keyopts.values()):
        raise ConvertError(f"{path}: the --*-key options apply to .npz files and pickled dicts, but it holds "
                           f"{short_type(obj)}")
    if isinstance(obj, (list, tuple)):
        return find_in_sequence(obj, path)
    if isinstance(obj, np.ndarray):
        raise ConvertError(f"{path}: holds a single array {tuple(obj.shape)}; give logits and labels as separate "
                           "files with --val-logits/--val-labels/--test-logits/--test-labels or --logits/--labels")
    raise ConvertError(f"{path}: holds {short_type(obj)}; expected arrays of logits and labels")


def find_separate(files, fmt):
    """--val-logits A --val-labels B ... (or --logits A --labels B): one array per file."""
    arrays, origins, formats = {}, {}, {}
    for role, path in files.items():
        kind = resolve_format(path, fmt)
        formats[path] = kind
        obj = read_file(path, kind)
        where = ""
        if isinstance(obj, dict):  # an .npz (or dict) holding exactly one array is fine
            if len(obj) != 1:
                raise ConvertError(f"{path}: holds {short_type(obj)}; for --{role.replace('_', '-')} give a file "
                                   "with one array")
            (key, obj), = obj.items()
            where = f"key {brief(key)}"
        arr = as_array(obj)
        if arr is None:
            raise ConvertError(f"{path}: holds {short_type(obj)}; for --{role.replace('_', '-')} give a file "
                               "with one array")
        arrays[role], origins[role] = arr, Origin(path, where)
    roles = list(files)
    layout = "separate files: " + ", ".join(f"{r.replace('_', ' ')}={os.path.basename(files[r])}" for r in roles)
    return Found(arrays, origins, layout), formats


# ----------------------------------------------------------------------------- other tools' files


def load_inputs():
    """python/calibench/inputs.py, loaded by path (it needs only numpy, not the compiled module),
    else the installed calibench.inputs."""
    name = "calibench_inputs_for_convert"
    if name in sys.modules:
        return sys.modules[name]
    if os.path.isfile(INPUTS_PY):
        spec = importlib.util.spec_from_file_location(name, INPUTS_PY)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        from calibench import inputs as module
    except ImportError as e:
        raise ConvertError(f"cannot read lm-eval/CSV/Parquet files: neither {os.path.normpath(INPUTS_PY)} nor the "
                           f"calibench package is available ({e})") from None
    return module


def reader_options_used(opts):
    """The options that apply only to lm-eval or only to tables, as given."""
    lm = {"--lm-filter": opts.lm_filter, "--length-norm": opts.length_norm,
          "--target-delimiter": opts.target_delimiter, "--pad-value": opts.pad_value,
          "--no-pad": opts.no_pad or None}
    table = {"--logit-columns": opts.logit_columns, "--logit-prefix": opts.logit_prefix,
             "--list-column": opts.list_column, "--label-column": opts.label_column,
             "--split-column": opts.split_column, "--csv-delimiter": opts.csv_delimiter}
    return ({k for k, v in lm.items() if v is not None}, {k for k, v in table.items() if v is not None})


def check_reader_options(opts, fmt):
    lm, table = reader_options_used(opts)
    stray = (table if fmt == "lm-eval" else lm if fmt in ("csv", "parquet") else lm | table)
    if stray:
        raise ConvertError(f"{', '.join(sorted(stray))} do{'es' if len(stray) == 1 else ''} not apply to "
                           f"{fmt} input")


def find_with_reader(paths, fmt, opts):
    """lm-eval sample logs, CSV or Parquet tables, through calibench/inputs.py."""
    inputs = load_inputs()
    try:
        if fmt == "lm-eval":
            pad = None if opts.no_pad else (inputs.PAD_VALUE if opts.pad_value is None else opts.pad_value)
            if pad is not None and not np.isfinite(pad):
                raise ConvertError(f"--pad-value {opts.pad_value}: must be finite (calibench dumps hold no Inf or NaN)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the padding note is printed by run()
                logits, labels, info = inputs.read_lm_eval(
                    paths, filter=opts.lm_filter, length_norm=opts.length_norm,
                    target_delimiter=" " if opts.target_delimiter is None else opts.target_delimiter, pad_value=pad)
            found = Found({"logits": logits, "labels": labels},
                          {"logits": Origin(paths[0], "log-likelihoods"), "labels": Origin(paths[0], "targets")},
                          f"lm-evaluation-harness samples ({len(paths)} file{'s' if len(paths) > 1 else ''})",
                          notes=list(info["notes"]))
            if info["padded_rows"]:
                found.said = [info["notes"][1]]
            return found
        columns = opts.logit_columns.split(",") if opts.logit_columns else None
        # One value column is a binary score; an older installed calibench.inputs lacks the option.
        binary = {"binary": True} if "binary" in inspect.signature(inputs.read_table).parameters else {}
        values, labels, info = inputs.read_table(
            paths[0], logit_columns=columns, logit_prefix=opts.logit_prefix, list_column=opts.list_column,
            label_column=opts.label_column, split_column=opts.split_column, format=fmt,
            delimiter=opts.csv_delimiter or ",", **binary)
    except inputs.InputError as e:
        raise ConvertError(str(e)) from None
    path = paths[0]
    if info["split"] is None:
        return Found({"logits": values, "labels": labels},
                     {"logits": Origin(path, "values"), "labels": Origin(path, f"column {info['label_column']!r}")},
                     info["layout"], notes=list(info["notes"]))
    arrays, origins = {}, {}
    for split in ("val", "test"):
        rows = info["split"] == split
        arrays[f"{split}_logits"], arrays[f"{split}_labels"] = values[rows], labels[rows]
        origins[f"{split}_logits"] = Origin(path, f"{split} rows")
        origins[f"{split}_labels"] = Origin(path, f"column {info['label_column']!r}, {split} rows")
    return Found(arrays, origins, info["layout"], notes=list(info["notes"]))


# ----------------------------------------------------------------------------- validation


def first_true(mask):
    """Index (tuple) of the first True in row-major order, or None."""
    if not mask.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def fmt_index(idx):
    return f"index {idx[0]}" if len(idx) == 1 else f"index [{', '.join(map(str, idx))}]"


def is_binary(values):
    """One score per row, [N] or [N, 1]: a binary split, the log-odds (or P) of class 1, which
    calibench reads as K = 2 (docs/metrics.md, "Inputs"). [N, 1] as K = 1 has no other meaning."""
    return values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)


def num_classes_of(values):
    return 2 if is_binary(values) else int(values.shape[1])


def check_values(values, label, origin, probs, after=""):
    """NaN/Inf, and for probabilities negativity and row sums (binary: each value in [0, 1]).
    `label` e.g. 'val logits'."""
    where = f"{origin.file}: {label}{origin.paren()}"
    bad = first_true(np.isnan(values))
    if bad is not None:
        raise ConvertError(f"{where}: NaN{after} at {fmt_index(bad)}")
    bad = first_true(np.isinf(values))
    if bad is not None:
        raise ConvertError(f"{where}: {'-' if values[bad] < 0 else '+'}Inf{after} at {fmt_index(bad)}")
    if probs and is_binary(values):
        bad = first_true((values < 0) | (values > 1))
        if bad is not None:
            raise ConvertError(f"{where}: probability {float(values[bad]):.6g}{after} outside [0, 1] at "
                               f"{fmt_index(bad)} (a binary split holds P(class 1))")
    elif probs:
        bad = first_true(values < 0)
        if bad is not None:
            raise ConvertError(f"{where}: negative probability {float(values[bad]):.6g}{after} at {fmt_index(bad)}")
        sums = values.sum(axis=1, dtype=np.float64)
        bad = first_true(np.abs(sums - 1.0) > PROB_TOLERANCE)
        if bad is not None:
            raise ConvertError(f"{where}: row sums to {float(sums[bad]):.6g}{after}, not 1 within {PROB_TOLERANCE:g}, "
                               f"at {fmt_index(bad)}")


def check_logits_shape(values, label, origin):
    where = f"{origin.file}: {label}{origin.paren()}"
    if values.dtype.kind not in "f":
        hint = " (logits and labels swapped?)" if values.dtype.kind in "iub" else ""
        raise ConvertError(f"{where}: have type {values.dtype}, expected floating point{hint}")
    if values.ndim not in (1, 2):
        raise ConvertError(f"{where}: have shape {tuple(values.shape)}, expected [N, K] (or one score per row, "
                           "[N] or [N, 1], for a binary split)")
    if values.shape[0] == 0:
        raise ConvertError(f"{where}: are empty (N = 0, shape {tuple(values.shape)})")
    if values.ndim == 2 and values.shape[1] == 0:
        raise ConvertError(f"{where}: have K = 0 classes (shape {tuple(values.shape)}); need K >= 2 (or one score "
                           "per row for a binary split)")


def prepare_labels(labels, n, k, label, origin, logits_origin, notes):
    """Labels as int32 [N]: accepts integer [N] / [N, 1], integral floats, one-hot [N, K]."""
    where = f"{origin.file}: {label}{origin.paren()}"
    if labels.dtype.kind not in "biuf":
        raise ConvertError(f"{where}: have type {labels.dtype}, expected integers")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
        notes.append(f"{label} [N, 1] flattened")
    elif labels.ndim == 2 and labels.shape[1] == k and labels.shape[0] == n:
        ok = (labels == 0) | (labels == 1)
        ok_rows = ok.all(axis=1) & (np.count_nonzero(labels == 1, axis=1) == 1)
        bad = first_true(~ok_rows)
        if bad is not None:
            raise ConvertError(f"{where}: look one-hot (shape {tuple(labels.shape)}) but row {bad[0]} is not "
                               f"(needs exactly one 1 and zeros elsewhere), at {fmt_index(bad)}")
        labels = np.argmax(labels, axis=1)
        notes.append(f"{label} one-hot [N, K] converted with argmax")
    elif labels.ndim != 1:
        raise ConvertError(f"{where}: have shape {tuple(labels.shape)}; expected [N], [N, 1] or one-hot [N, K={k}]")
    if labels.shape[0] != n:
        raise ConvertError(f"{where}: shape mismatch: {labels.shape[0]} labels but the logits "
                           f"({logits_origin}) have N = {n} rows")
    if labels.dtype.kind == "f":
        bad = first_true(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad is not None:
            raise ConvertError(f"{where}: non-integer label {labels[bad]!r} at {fmt_index(bad)}")
        notes.append(f"{label} stored as float, converted to int32")
    bad = first_true((labels < 0) | (labels >= k))
    if bad is not None:
        value = labels[bad]
        value = int(value) if labels.dtype.kind in "biu" else float(value)
        raise ConvertError(f"{where}: label {value} outside [0, {k}) at {fmt_index(bad)}")
    return labels.astype(np.int32)


def keep_dtype(dtype):
    """--dtype keep: float16/32/64 stay (in native byte order); any other float becomes float32."""
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return dtype.newbyteorder("=")
    return np.dtype(np.float32)  # e.g. longdouble (bfloat16 tensors already arrive as float32)


def prepare_values(values, label, origin, opts, notes):
    """Validate logits (or probabilities) and return the array to store."""
    check_logits_shape(values, label, origin)
    check_values(values, label, origin, probs=opts.probs or opts.probs_to_logits)
    in_dtype = values.dtype
    if opts.probs_to_logits:
        # In float64, as data/real/SOURCES.md did, so that its log-probability copies reproduce exactly.
        # A binary P(class 1) becomes its log-odds, both sides clipped as the K-class log p is, so
        # that [0, s] is the K-class [log(1 - p), log p] shifted by a constant.
        p = values.astype(np.float64)
        values = np.log(np.maximum(p, LOG_CLIP))
        if is_binary(p):
            values = values - np.log(np.maximum(1.0 - p, LOG_CLIP))
    dtype = keep_dtype(in_dtype) if opts.dtype == "keep" else np.dtype(opts.dtype)
    out = np.ascontiguousarray(values, dtype=dtype)
    if dtype != in_dtype.newbyteorder("="):
        notes.append(f"{label}: input {in_dtype}, stored as {dtype}")
    if out.dtype != values.dtype:
        # A narrower type can overflow to Inf or move probability rows off 1: check what is stored.
        check_values(out, label, origin, probs=opts.probs, after=f" after conversion to {out.dtype}")
    return out


# ----------------------------------------------------------------------------- writing


def write_dump(out_path, attrs, splits, gzip_level):
    """Write the dump atomically: a temporary file in the same directory, then os.replace."""
    import h5py  # imported here so that --help and --inspect work without h5py

    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{out_path}: output directory {out_dir} does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out_path) + ".", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                if key == "class_names":
                    f.attrs.create(key, np.array(value, dtype=object), dtype=h5py.string_dtype("utf-8"))
                elif isinstance(value, int):
                    f.attrs.create(key, value, dtype=np.int64)
                else:
                    f.attrs[key] = str(value)  # variable-length UTF-8
            for split, datasets in splits.items():
                g = f.create_group(split)
                for name, arr in datasets.items():
                    kw = dict(compression="gzip", compression_opts=gzip_level, chunks=True) if gzip_level else {}
                    g.create_dataset(name, data=arr, **kw)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ----------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error of this tool
        raise ConvertError(f"{message} (see --help)")


def build_parser():
    p = _Parser(prog=PROG, description="Convert saved logits (pickle, .npz, .npy, PyTorch .pt, lm-evaluation-harness "
                "samples .jsonl, CSV, Parquet) into a calibench "
                "HDF5 dump. Pickles and .pt files are read with a restricted unpickler: only arrays, tensors, "
                "lists, tuples, dicts and scalars can be loaded, and torch is not needed.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="examples:\n"
                "  %(prog)s probs_densenet40_c10_logits.p -o densenet40_c10.h5 --dataset CIFAR-10 --model DenseNet-40\n"
                "  %(prog)s test-logits.npz --split-seed 0 -o mnist.h5 --dataset MNIST --model cnn\n"
                "  %(prog)s --val-logits vl.npy --val-labels vy.npy --test-logits tl.npy --test-labels ty.npy -o x.h5\n"
                "  %(prog)s --logits pyx.npy --labels y.npy --split-seed 0 --probs -o cleanlab.h5\n"
                "  %(prog)s samples_arc_easy_2024-06-01T12-00-00.000000.jsonl --split-seed 0 -o arc.h5\n"
                "  %(prog)s scores.parquet --list-column logits --label-column y --split-column split -o x.h5\n"
                "  %(prog)s outputs.pt --inspect")
    p.add_argument("input", nargs="*", help="input file holding logits and labels (pickle, .npz, .pt/.pth, "
                   "lm-eval samples .jsonl, .csv, .parquet); several lm-eval sample files are concatenated")
    p.add_argument("-o", "--output", help="output HDF5 file (written atomically)")
    p.add_argument("--format", default="auto", choices=["auto", "pickle", "npz", "npy", "torch", *READER_FORMATS],
                   help="input format (default: from the file's content, then its extension: .jsonl is lm-eval)")
    g = p.add_argument_group("lm-evaluation-harness sample logs (samples_<task>_<date>.jsonl of --log_samples)")
    g.add_argument("--lm-filter", metavar="NAME", help="the filter whose records to read when a file holds several")
    g.add_argument("--length-norm", choices=["chars", "bytes"],
                   help="divide each log-likelihood by its choice's length in characters (acc_norm) or UTF-8 bytes "
                   "(acc_bytes)")
    g.add_argument("--target-delimiter", metavar="TEXT",
                   help="the task's target_delimiter before each choice (default ' '; '' with a chat template)")
    g.add_argument("--pad-value", type=float, metavar="V",
                   help="value for the choices a record lacks when tasks have varying numbers of choices "
                   "(default -1e4; must be finite)")
    g.add_argument("--no-pad", action="store_true", help="refuse records with fewer choices than others")
    g = p.add_argument_group("CSV and Parquet tables (one row per sample)")
    g.add_argument("--logit-columns", metavar="A,B,...", help="the value columns, in class order")
    g.add_argument("--logit-prefix", metavar="PREFIX",
                   help="the value columns are those whose names start with PREFIX (ordered by the number after it)")
    g.add_argument("--list-column", metavar="NAME", help="one column holding the K values of a row as a list")
    g.add_argument("--label-column", metavar="NAME", help="the label column (default label, labels, target or y)")
    g.add_argument("--split-column", metavar="NAME",
                   help="a column saying val (valid, validation) or test per row (else pass --split-seed)")
    g.add_argument("--csv-delimiter", metavar="C", help="CSV field delimiter (default ',')")
    g = p.add_argument_group("separate files, one array each (.npy, or a pickle/.pt/.npz of one array)")
    for role in SPLIT_ROLES + SINGLE_ROLES:
        g.add_argument("--" + role.replace("_", "-"), metavar="FILE", dest="file_" + role)
    g = p.add_argument_group("key names in .npz files and pickled/torch.save dicts (default: common names)")
    for role in SPLIT_ROLES + SINGLE_ROLES:
        g.add_argument("--" + role.replace("_", "-") + "-key", metavar="KEY", dest="key_" + role)
    g = p.add_argument_group("what to store")
    g.add_argument("--dataset", default="unknown", help="dataset name (attribute 'dataset'; default: unknown)")
    g.add_argument("--model", help="model name (attribute 'model'; default: the input file's name)")
    g.add_argument("--class-names", metavar="A,B,...|@FILE",
                   help="class names, comma-separated, or @FILE with one name per line")
    g.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="extra string attribute on / (repeatable), e.g. --attr license=MIT")
    kind = g.add_mutually_exclusive_group()
    kind.add_argument("--probs", action="store_true",
                      help="the input holds probabilities: validate them and store /<split>/probs "
                      "(binary [N] / [N, 1]: P(class 1), each in [0, 1])")
    kind.add_argument("--probs-to-logits", action="store_true",
                      help=f"the input holds probabilities: validate them and store log(max(p, {LOG_CLIP:g})) "
                      "(computed in float64) as /<split>/logits; binary P(class 1): the log-odds "
                      f"log(max(p, {LOG_CLIP:g})) - log(max(1 - p, {LOG_CLIP:g}))")
    g.add_argument("--split-seed", type=int, metavar="SEED",
                   help="input holds one set: split it 50/50 into val/test with "
                   "np.random.RandomState(SEED).permutation(N) and store /val/index, /test/index")
    g.add_argument("--dtype", default="keep", choices=["keep", "float16", "float32", "float64"],
                   help="type of the stored values (default keep: float16/32/64 as in the input, others float32)")
    g.add_argument("--gzip", type=int, default=0, metavar="LEVEL", choices=range(0, 10),
                   help="gzip-compress the datasets at LEVEL 1-9 (default 0: uncompressed)")
    g = p.add_argument_group("behaviour")
    g.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    g.add_argument("--inspect", action="store_true", help="print what the input holds and exit (writes nothing)")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    g.add_argument("--debug", action="store_true", help="show a Python traceback for internal errors")
    return p


def parse_class_names(spec):
    if spec is None:
        return None
    if spec.startswith("@"):
        path = spec[1:]
        try:
            with open(path, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise ConvertError(f"{path}: cannot read class names ({e.strerror or e})") from None
    else:
        names = [s.strip() for s in spec.split(",")]
    if not names or any(not n for n in names):
        raise ConvertError(f"--class-names: empty class name in {spec!r}")
    return names


def gather(opts):
    """Read the input(s) and find the arrays. Returns (Found, [(path, format)])."""
    files = {r: getattr(opts, "file_" + r) for r in SPLIT_ROLES + SINGLE_ROLES if getattr(opts, "file_" + r)}
    keyopts = {r: getattr(opts, "key_" + r) for r in SPLIT_ROLES + SINGLE_ROLES}
    if files:
        check_reader_options(opts, "--val-logits/... files")
        if opts.input:
            raise ConvertError("give either an input file or --val-logits/--val-labels/... files, not both")
        if any(keyopts.values()):
            raise ConvertError("the --*-key options apply to one input file, not to --val-logits/... files")
        if opts.inspect:
            formats = {path: resolve_format(path, opts.format) for path in files.values()}
            return {f"--{r.replace('_', '-')} {p}": read_file(p, formats[p]) for r, p in files.items()}, \
                list(formats.items())
        if set(files) == set(SPLIT_ROLES) or set(files) == set(SINGLE_ROLES):
            found, formats = find_separate(files, opts.format)
            return found, list(formats.items())
        missing = sorted(set(SPLIT_ROLES) - set(files)) if set(files) & set(SPLIT_ROLES) else \
            sorted(set(SINGLE_ROLES) - set(files))
        if set(files) & set(SPLIT_ROLES) and set(files) & set(SINGLE_ROLES):
            raise ConvertError("use either --val-logits/--val-labels/--test-logits/--test-labels or "
                               "--logits/--labels, not both")
        raise ConvertError("missing " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if not opts.input:
        raise ConvertError("no input: give an input file, or --val-logits/--val-labels/--test-logits/--test-labels "
                           "(or --logits/--labels with --split-seed)")
    formats = [(path, resolve_format(path, opts.format)) for path in opts.inputs]
    fmt = formats[0][1]
    if len(formats) > 1 and any(f != "lm-eval" for _, f in formats):
        raise ConvertError("several input files are accepted only for lm-eval sample logs; "
                           + ", ".join(f"{p} is {f}" for p, f in formats if f != "lm-eval"))
    check_reader_options(opts, fmt)
    if fmt in READER_FORMATS:
        if any(keyopts.values()):
            raise ConvertError(f"the --*-key options apply to .npz files and pickled dicts, not to {fmt} input")
        return find_with_reader(opts.inputs, fmt, opts), formats
    obj = read_file(opts.input, fmt)
    if opts.inspect:
        return obj, [(opts.input, fmt)]
    return find_arrays(obj, opts.input, keyopts), [(opts.input, fmt)]


def run(argv):
    opts = build_parser().parse_args(argv)
    opts.inputs, opts.input = opts.input, (opts.input[0] if opts.input else None)
    if not opts.inspect and not opts.output:
        raise ConvertError("missing -o/--output")
    found, inputs = gather(opts)
    if opts.inspect:
        for path, fmt in inputs:
            print(f"{path}: {fmt}")
        if isinstance(found, Found):
            print(describe_found(found))
        else:
            print(describe(found))
            lines = binary_lines(found_for_inspect(opts))
            if lines:
                print("\n".join(lines))
        return 0

    out = opts.output
    if os.path.isdir(out):
        raise ConvertError(f"{out}: output is a directory")
    for path, _ in inputs:
        if os.path.exists(out) and os.path.samefile(path, out):
            raise ConvertError(f"{out}: output would overwrite the input")
    if os.path.exists(out) and not opts.force:
        raise ConvertError(f"{out}: exists; pass --force to overwrite it")
    extra = {}
    for item in opts.attr:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConvertError(f"--attr {item!r}: expected KEY=VALUE")
        if key in RESERVED_ATTRS:
            raise ConvertError(f"--attr {key}: reserved; use the dedicated option")
        extra[key] = value

    notes = list(found.notes)
    stored = "probs" if opts.probs else "logits"
    splits = {}
    if found.single:
        if opts.split_seed is None:
            o = found.origins["logits"]
            raise ConvertError(f"{o.file}: holds a single set (logits, labels); pass --split-seed SEED to split it "
                               "50/50 into val and test")
        if opts.split_seed < 0 or opts.split_seed > 2**32 - 1:
            raise ConvertError(f"--split-seed {opts.split_seed}: must be in [0, 2**32 - 1]")
        values = prepare_values(found.arrays["logits"], values_label("", opts), found.origins["logits"], opts, notes)
        n, k = values.shape[0], num_classes_of(values)
        labels = prepare_labels(found.arrays["labels"], n, k, "labels", found.origins["labels"],
                                found.origins["logits"], notes)
        if n < 2:
            raise ConvertError(f"{found.origins['logits'].file}: a single set of N = {n} cannot be split in two")
        # Exactly as data/real/SOURCES.md: the staged single-set copies used seed 0.
        perm = np.random.RandomState(opts.split_seed).permutation(n)
        index = {"val": np.sort(perm[: n // 2]), "test": np.sort(perm[n // 2:])}
        for split in ("val", "test"):
            idx = index[split]
            splits[split] = {stored: values[idx], "labels": labels[idx], "index": idx.astype(np.int32)}
        notes.append(f"single set of N = {n} split 50/50: perm = np.random.RandomState({opts.split_seed})"
                     ".permutation(N), val = sorted(perm[:N//2]), test = sorted(perm[N//2:]); "
                     "row indices into the input in /val/index and /test/index")
    else:
        if opts.split_seed is not None:
            raise ConvertError("--split-seed applies to a single set (logits, labels), but the input already has "
                               "val and test sets")
        for split in ("val", "test"):  # shapes first, so that a K mismatch is reported as such
            check_logits_shape(found.arrays[f"{split}_logits"], values_label(split, opts),
                               found.origins[f"{split}_logits"])
        check_binary_mix(found, opts)
        kv, kt = (num_classes_of(found.arrays[f"{s}_logits"]) for s in ("val", "test"))
        if kv != kt:
            raise ConvertError(f"{found.origins['test_logits'].file}: val logits have K = {kv} classes "
                               f"({found.origins['val_logits']}) but test logits have K = {kt} "
                               f"({found.origins['test_logits']})")
        for split in ("val", "test"):
            lo, yo = found.origins[f"{split}_logits"], found.origins[f"{split}_labels"]
            values = prepare_values(found.arrays[f"{split}_logits"], values_label(split, opts), lo, opts, notes)
            n, k = values.shape[0], num_classes_of(values)
            labels = prepare_labels(found.arrays[f"{split}_labels"], n, k, f"{split} labels", yo, lo, notes)
            splits[split] = {stored: values, "labels": labels}
    k = num_classes_of(splits["val"][stored])
    binary = is_binary(splits["val"][stored])
    said = list(found.said)
    if binary:
        said.append(binary_note(stored))
        notes.append(said[-1])

    class_names = parse_class_names(opts.class_names)
    if class_names is None and found.class_names is not None:
        class_names = found.class_names
        notes.append("class names from the input")
    if class_names is not None and len(class_names) != k:
        raise ConvertError(f"--class-names: {len(class_names)} names for K = {k} classes")

    if not (opts.probs or opts.probs_to_logits) and not opts.quiet:
        if all(looks_like_probs(s[stored]) for s in splits.values()):
            what = "all in [0, 1], like P(class 1)" if binary else "rows non-negative, summing to 1"
            print(f"{PROG}: warning: the values look like probabilities ({what}); "
                  "pass --probs (or --probs-to-logits) if they are", file=sys.stderr)
    if opts.probs_to_logits and binary:
        notes.append(f"input probabilities P(class 1) stored as logits = the log-odds log(max(p, {LOG_CLIP:g})) - "
                     f"log(max(1 - p, {LOG_CLIP:g})) computed in float64")
    elif opts.probs_to_logits:
        notes.append(f"input probabilities stored as logits = log(max(p, {LOG_CLIP:g})) computed in float64")

    first_input = inputs[0][0]
    model = opts.model or os.path.splitext(os.path.basename(first_input))[0]
    parts = [f"converted by {PROG} (experiments/convert/calibench_convert.py)"]
    for path, fmt in inputs:
        parts.append(f"input {os.path.abspath(path)} (format {fmt}, sha256 {sha256_of(path)})")
    parts.append(f"layout: {found.layout}")
    parts.extend(notes)
    parts.append("command: " + shlex.join([PROG] + list(argv)))
    attrs = {"format": SCHEMA_FORMAT, "version": SCHEMA_VERSION, "dataset": opts.dataset, "model": model,
             "num_classes": int(k), "source": "; ".join(parts)}
    if class_names is not None:
        attrs["class_names"] = class_names
    attrs.update(extra)
    try:
        write_dump(out, attrs, splits, opts.gzip)
    except OSError as e:
        raise ConvertError(f"{out}: cannot write ({e.strerror or e})") from None
    if not opts.quiet:
        for text in said:  # after the checks: an input that fails gets one line only
            print(f"{PROG}: note: {text}", file=sys.stderr)
        desc = ", ".join(f"{s} {' x '.join(map(str, d[stored].shape))} {d[stored].dtype} {stored}"
                         f"{' (binary)' if binary else ''}" for s, d in splits.items())
        print(f"{PROG}: wrote {out}: {desc}")
    return 0


def describe_found(found):
    lines = [f"layout: {found.layout}"]
    for role, arr in found.arrays.items():
        lines.append(f"{role.replace('_', ' ')}: array {arr.dtype} {tuple(arr.shape)}")
    lines.extend(found.notes)
    lines.extend(binary_lines(found))
    return "\n".join(lines)


def found_for_inspect(opts):
    """For --inspect of a pickle, .npz or separate files: the arrays a conversion would take, or
    None where it would find none (the structure printed above then says why)."""
    try:
        found, _ = gather(argparse.Namespace(**{**vars(opts), "inspect": False}))
    except ConvertError:
        return None
    return found


def binary_lines(found):
    """--inspect's lines for value arrays holding one score per row (a binary split)."""
    if found is None:
        return []
    lines = []
    for role in ("val_logits", "test_logits", "logits"):
        arr = found.arrays.get(role)
        if arr is not None and arr.dtype.kind == "f" and is_binary(arr) and arr.shape[0]:
            lines.append(f"binary: {role.replace('_', ' ')} ({found.origins[role]}) hold one score per row, shape "
                         f"{tuple(arr.shape)}: stored as given, read by calibench as K = 2 (logits [0, s]; "
                         "with --probs, P(class 1) as probabilities [1 - p, p])")
    return lines


def binary_note(stored):
    what = ("/<split>/probs hold P(class 1), which calibench reads as K = 2 probabilities [1 - p, p]"
            if stored == "probs" else
            "/<split>/logits hold the log-odds s of class 1, which calibench reads as K = 2 logits [0, s]")
    return f"binary split (one score per row, labels 0/1, num_classes = 2): {what}"


def check_binary_mix(found, opts):
    """val and test both binary or both [N, K]: calibench reads K = 2 either way, but a mix is
    almost surely two different exports (or the wrong file)."""
    arrays, origins = found.arrays, found.origins
    kinds = {s: is_binary(arrays[f"{s}_logits"]) for s in ("val", "test")}
    if kinds["val"] == kinds["test"]:
        return
    b, o = ("val", "test") if kinds["val"] else ("test", "val")
    what = "probabilities" if opts.probs or opts.probs_to_logits else "logits"
    k = arrays[f"{o}_logits"].shape[1]
    hint = ("calibench would read both as K = 2, but a mix is almost surely a mistake; " if k == 2 else "")
    raise ConvertError(f"{origins['test_logits'].file}: {b} {what} ({origins[f'{b}_logits']}) are binary, one score "
                       f"per row, shape {tuple(arrays[f'{b}_logits'].shape)}, but {o} {what} "
                       f"({origins[f'{o}_logits']}) are [N, K] with K = {k}, shape {tuple(arrays[f'{o}_logits'].shape)}; "
                       f"{hint}give both splits one score per row or both [N, K]")


def values_label(split, opts):
    what = "probabilities" if opts.probs or opts.probs_to_logits else "logits"
    return f"{split} {what}" if split else what


def looks_like_probs(values):
    v = np.asarray(values, dtype=np.float64)
    if is_binary(v):
        return bool(((v >= 0) & (v <= 1)).all())
    return bool((v >= 0).all() and (np.abs(v.sum(axis=1) - 1.0) <= PROB_TOLERANCE).all())


def one_line(text):
    """Messages quote names from untrusted files: escape anything that is not printable (a
    control character could start a new line or move the cursor)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text.replace("\n", " "))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # Every problem is checked explicitly and reported in one line; numpy's own warnings
        # (e.g. overflow when --dtype float16 narrows large values) would add stray lines.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return run(argv)
    except ConvertError as e:
        print(f"{PROG}: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug here, not bad input: say so in one line
        if "--debug" in argv:
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(e).__name__}: {one_line(str(e))} (please report; --debug shows the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
