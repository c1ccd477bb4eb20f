# Readers for classifier outputs written by other tools: lm-evaluation-harness sample logs
# (multiple-choice log-likelihoods) and CSV / Parquet tables. numpy only at import, so that the
# standalone converter (experiments/convert/calibench_convert.py) loads this file by path without
# the compiled module; pyarrow is imported only to read Parquet. Documented in docs/python.md,
# "Inputs from other tools", and experiments/convert/README.md.
"""Read lm-evaluation-harness sample logs and CSV/Parquet tables into (values, labels, info).

    logits, labels, info = read_lm_eval("samples_hellaswag_2024-06-01T12-00-00.jsonl")
    values, labels, info = read_table("scores.parquet", logit_prefix="logit_", label_column="label")

Every problem raises InputError (a ValueError) with one line naming the file and the line or row.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings

import numpy as np

__all__ = ["InputError", "read_lm_eval", "read_table", "PAD_VALUE", "PAD_MARGIN"]

# Choices a row lacks are filled with PAD_VALUE: calibench dumps and calibench.evaluate refuse
# non-finite values (host/io/dump.cpp, "non-finite value"), so -inf cannot be stored. -1e4 is
# exact in float16, float32 and float64.
PAD_VALUE = -1.0e4
# In a padded row every real value must exceed the padding by more than this, so that
# exp(pad - max) underflows to exactly 0 in float64 (below about -745.13): a padded choice then
# has probability exactly 0 and is never the argmax.
PAD_MARGIN = 746.0

SPLIT_NAMES = {"val": "val", "valid": "val", "validation": "val", "test": "test"}
LABEL_COLUMNS = ["label", "labels", "target", "y"]
LIST_COLUMNS = ["logits", "probs", "scores"]
PREFIXES = ["logit_", "prob_"]


class InputError(ValueError):
    """Bad input: the message is one line naming the file and the line or row."""


def _brief(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- lm-eval samples
#
# The format, as lm-evaluation-harness writes it with --log_samples (EleutherAI/lm-evaluation-harness
# at commit 4e7e0d47f33bc71070c1d38394bafbb52b117163):
# - lm_eval/evaluator.py, evaluate(): one record per (doc, filter) with "doc_id", "doc", "target"
#   (task.doc_to_target(doc)), "arguments" ([req.args for req in requests]: one (context,
#   continuation) pair per request), "resps", "filtered_resps" ([req.filtered_resps[filter]]),
#   "filter", "metrics", the hashes and the metric values;
# - lm_eval/loggers/evaluation_tracker.py, save_results_samples(): appended to
#   samples_<task>_<date>.jsonl, one json.dumps per line, after "arguments" becomes
#   {"gen_args_<i>": {"arg_<j>": ...}}, "resps" and "filtered_resps" go through
#   lm_eval/utils.py sanitize_list (every leaf becomes str(): "-12.5", "False") and "target"
#   becomes str(target). Logs written before 2024-05-31 (f4f59251c) hold numbers and lists
#   instead; both are read;
# - lm_eval/api/task.py, ConfigurableTask.construct_requests(): a multiple_choice doc makes one
#   loglikelihood request per choice, (ctx, target_delimiter + choice), in choice order, then,
#   with acc_mutual_info, K more ("", target_delimiter + choice); the default filter "none" is
#   take_first, so filtered_resps[i] = (loglikelihood, is_greedy);
# - ConfigurableTask.process_results(): gold = the int target, or choices.index(target) for a
#   string; acc_norm = argmax(lls / len(choice)) (characters), acc_bytes = argmax(lls /
#   len(choice.encode("utf-8"))); multiple_input tasks (winogrande) put the choices in the
#   contexts and take gold from doc_to_text, which the log does not hold.


def _err(path, line, text):
    return InputError(f"{path}: line {line}: {text}")


def _number(value, path, line, what):
    """A log-likelihood: a JSON number or the str() of one (sanitize_list)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _err(path, line, f"{what} is {_brief(value)}, not a number")
    try:
        x = float(value)
    except ValueError:
        raise _err(path, line, f"{what} is {_brief(value)}, not a number") from None
    if not math.isfinite(x):
        raise _err(path, line, f"{what} is {_brief(value)}, not a finite log-likelihood")
    return x


def _arguments(record, path, line):
    """The (context, continuation) pairs, from {"gen_args_i": {"arg_j": ...}} or a list of pairs."""
    args = record["arguments"]
    if isinstance(args, dict):
        pairs = []
        for i in range(len(args)):
            a = args.get(f"gen_args_{i}")
            if not isinstance(a, dict):
                raise _err(path, line, f"arguments has no 'gen_args_{i}' object (keys {_brief(list(args))})")
            pairs.append((a.get("arg_0"), a.get("arg_1")))
    elif isinstance(args, list):
        pairs = [tuple(a) if isinstance(a, (list, tuple)) and len(a) >= 2 else (None, None) for a in args]
    else:
        raise _err(path, line, f"arguments is {_brief(args)}, expected an object or a list")
    for i, (ctx, cont) in enumerate(pairs):
        if not isinstance(ctx, str) or not isinstance(cont, str):
            raise _err(path, line, f"request {i}'s arguments are {_brief((ctx, cont))}, not (context, continuation) "
                       "strings: not a multiple-choice (loglikelihood) sample (generate_until?)")
    return pairs


def _log_likelihoods(record, path, line):
    resps = record["filtered_resps"]
    if not isinstance(resps, list):
        raise _err(path, line, f"filtered_resps is {_brief(resps)}, expected a list")
    lls = []
    for i, r in enumerate(resps):
        if not isinstance(r, (list, tuple)) or len(r) != 2:
            raise _err(path, line, f"filtered_resps[{i}] is {_brief(r)}, not a [log-likelihood, is_greedy] pair: "
                       "not a multiple-choice sample (generate_until or loglikelihood_rolling output?)")
        lls.append(_number(r[0], path, line, f"filtered_resps[{i}][0]"))
    return lls


def _strip_mutual_info(pairs, lls):
    """acc_mutual_info doubles the requests with unconditional ("", continuation) ones: drop them."""
    n = len(pairs)
    if n % 2 or n < 4:
        return pairs, lls, False
    k = n // 2
    if all(pairs[k + i][0] == "" and pairs[k + i][1] == pairs[i][1] for i in range(k)) and \
            any(pairs[i][0] != "" for i in range(k)):
        return pairs[:k], lls[:k], True
    return pairs, lls, False


def _label(target, choices, multiple_input, path, line):
    if isinstance(target, bool):
        raise _err(path, line, f"target is {target!r}, not a choice index")
    if isinstance(target, int):
        gold = target
    elif isinstance(target, str):
        text = target.strip()
        if re.fullmatch(r"[0-9]+", text):
            gold = int(text)  # as doc_to_target: a digit string with doc_to_choice set is an index
        elif text.startswith("[") and text.endswith("]"):
            raise _err(path, line, f"target {_brief(target)} names several gold choices; multi-target tasks "
                       "are not supported")
        elif multiple_input:
            raise _err(path, line, f"target {_brief(target)} is text, and every request has the same continuation "
                       "(a multiple-input task such as winogrande, whose gold index the log does not hold)")
        elif target in choices:
            gold = choices.index(target)
        else:
            raise _err(path, line, f"target {_brief(target)} is neither a choice index nor one of the "
                       f"{len(choices)} choices")
    else:
        raise _err(path, line, f"target is {_brief(target)}, expected a choice index or a choice")
    if not 0 <= gold < len(choices):
        raise _err(path, line, f"target {gold} outside the {len(choices)} choices [0, {len(choices)})")
    return gold


def _normaliser(choices, how, multiple_input, path, line):
    if multiple_input:
        raise _err(path, line, "length normalisation needs the choices, but every request has the same "
                   "continuation (a multiple-input task such as winogrande)")
    lengths = [len(c) if how == "chars" else len(c.encode("utf-8")) for c in choices]
    for j, n in enumerate(lengths):
        if n == 0:
            raise _err(path, line, f"choice {j} is empty: cannot normalise by its length")
    return np.array(lengths, dtype=np.float64)


def _read_lm_eval_file(path, filter_name, length_norm, target_delimiter):
    """Records of one samples file: [(line, doc_id, lls, gold, mutual_info)], and the filters seen."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    rows, filters, seen = [], {}, {}
    with f:
        try:
            lines = list(f)
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for line_no, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise _err(path, line_no, f"not valid JSON (truncated?): {e.msg} at column {e.colno}") from None
        if not isinstance(record, dict):
            raise _err(path, line_no, f"holds {type(record).__name__}, expected a JSON object")
        for key in ("doc_id", "target", "arguments", "filtered_resps"):
            if key not in record:
                raise _err(path, line_no, f"has no {key!r} field (keys {_brief(sorted(record), 120)})")
        filt = record.get("filter", "none")
        filters.setdefault(filt, line_no)
        if filter_name is not None and filt != filter_name:
            continue
        doc_id = record["doc_id"]
        if isinstance(doc_id, bool) or not isinstance(doc_id, int):
            raise _err(path, line_no, f"doc_id is {_brief(doc_id)}, expected an integer")
        if (filt, doc_id) in seen:
            raise _err(path, line_no, f"doc_id {doc_id} again (first at line {seen[(filt, doc_id)]})")
        seen[(filt, doc_id)] = line_no
        pairs = _arguments(record, path, line_no)
        lls = _log_likelihoods(record, path, line_no)
        if len(pairs) != len(lls):
            raise _err(path, line_no, f"wrong number of choices: arguments has {len(pairs)} requests but "
                       f"filtered_resps has {len(lls)}")
        pairs, lls, mutual = _strip_mutual_info(pairs, lls)
        if len(lls) < 2:
            raise _err(path, line_no, f"has {len(lls)} choice; a multiple-choice sample needs at least 2 "
                       "(a loglikelihood task?)")
        conts = [c for _, c in pairs]
        multiple_input = len(set(conts)) == 1
        if any(not c.startswith(target_delimiter) for c in conts):
            raise _err(path, line_no, f"a continuation does not start with the target delimiter "
                       f"{target_delimiter!r}; pass the task's target_delimiter (\"\" with a chat template)")
        choices = [c[len(target_delimiter):] for c in conts]
        gold = _label(record["target"], choices, multiple_input, path, line_no)
        values = np.array(lls, dtype=np.float64)
        if length_norm is not None:
            values = values / _normaliser(choices, length_norm, multiple_input, path, line_no)
        rows.append((line_no, doc_id, values, gold, mutual))
    return rows, filters


def read_lm_eval(paths, *, filter=None, length_norm=None, target_delimiter=" ", pad_value=PAD_VALUE):
    """Multiple-choice log-likelihoods from lm-evaluation-harness sample logs.

    paths: one samples_<task>_<date>.jsonl file or a list of them (rows are concatenated in the
    order given, each file in its line order). Returns (logits float64 [N, K], labels int64 [N],
    info): logits[n, j] is the log-likelihood of choice j (divided by its length in characters
    with length_norm="chars", acc_norm's choice, or in UTF-8 bytes with "bytes", acc_bytes'),
    labels[n] the gold choice (the logged "target": an index, or a choice's text).
    filter: which filter's records to read when a file holds several (default: its only one).
    target_delimiter: the prefix lm-eval put before each choice (" "; "" with a chat template).
    pad_value: rows with fewer than K = max choices are filled with it (default PAD_VALUE,
    finite because dumps hold no Inf; float("-inf") for NumPy use; None refuses such files).
    info: "num_choices" int64 [N], "padded_rows", "doc_id" int64 [N], "source" [(file, line)],
    "filter", "length_norm", "mutual_info_rows", "notes" (sentences for a dump's source).
    Padding also raises a UserWarning.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise InputError("read_lm_eval: no files given")
    if length_norm not in (None, "chars", "bytes"):
        raise InputError(f"length_norm must be None, 'chars' or 'bytes' (got {length_norm!r})")
    if pad_value is not None and (isinstance(pad_value, bool) or math.isnan(float(pad_value))):
        raise InputError(f"pad_value must be a number or None (got {pad_value!r})")
    rows, origins, used_filters = [], [], set()
    for path in paths:
        got, filters = _read_lm_eval_file(path, filter, length_norm, target_delimiter)
        if not filters:
            raise InputError(f"{path}: no samples (empty file)")
        if filter is None and len(filters) > 1:
            names = ", ".join(f"{k!r} (line {v})" for k, v in filters.items())
            raise InputError(f"{path}: holds records of several filters ({names}); choose one with filter=")
        if not got:
            raise InputError(f"{path}: no records of filter {filter!r} (filters: {', '.join(map(repr, filters))})")
        used_filters.update(filters if filter is None else [filter])
        rows.extend(got)
        origins.extend((path, r[0]) for r in got)
    counts = np.array([len(r[2]) for r in rows], dtype=np.int64)
    k = int(counts.max())
    logits = np.empty((len(rows), k), dtype=np.float64)
    notes = [f"lm-evaluation-harness samples: {len(rows)} multiple-choice records of filter "
             f"{', '.join(sorted(map(repr, used_filters)))}, logits = per-choice log-likelihoods from filtered_resps"
             + (f" divided by the choice length in {length_norm}" if length_norm else "")
             + ", labels = target"]
    padded = counts < k
    if padded.any():
        if pad_value is None:
            first = int(np.argmax(padded))
            f0, l0 = origins[first]
            raise InputError(f"{f0}: line {l0}: has {counts[first]} choices where others have {k}: varying "
                             "numbers of choices need a padding value, and padding is off")
        pad = float(pad_value)
        for n, (f0, l0) in enumerate(origins):
            if padded[n] and not rows[n][2].min() > pad + PAD_MARGIN:
                raise InputError(f"{f0}: line {l0}: log-likelihood {rows[n][2].min():.17g} is not more than "
                                 f"{PAD_MARGIN:g} above the padding value {pad:g}; pass a lower padding value")
    for n, r in enumerate(rows):
        logits[n, : len(r[2])] = r[2]
        logits[n, len(r[2]):] = pad_value if padded[n] else 0.0
    if padded.any():
        text = (f"{int(padded.sum())} of {len(rows)} records have fewer than K = {k} choices "
                f"(between {int(counts.min())} and {k}); their missing choices are padded with {float(pad_value):g}")
        notes.append(text)
        warnings.warn(text, UserWarning, stacklevel=2)
    mutual = int(sum(r[4] for r in rows))
    if mutual:
        notes.append(f"{mutual} records carry acc_mutual_info's unconditional requests; only the conditional "
                     "log-likelihoods (the first K) are used")
    labels = np.array([r[3] for r in rows], dtype=np.int64)
    info = {"num_choices": counts, "padded_rows": int(padded.sum()), "pad_value": pad_value,
            "doc_id": np.array([r[1] for r in rows], dtype=np.int64), "source": origins,
            "filter": sorted(used_filters), "length_norm": length_norm, "mutual_info_rows": mutual,
            "notes": notes}
    return logits, labels, info


# ----------------------------------------------------------------------------- tables


def _table_format(path, fmt):
    if fmt is not None:
        if fmt not in ("csv", "parquet"):
            raise InputError(f"format must be 'csv' or 'parquet' (got {fmt!r})")
        return fmt
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PAR1":
                return "parquet"
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".pq"):
        return "parquet"
    return "csv"


class _Column:
    """One column as Python values, with how to name a row in messages."""

    def __init__(self, name, values, where):
        self.name, self.values, self.where = name, values, where


def _read_csv(path, delimiter):
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file (no header line)")
            if header and header[0].startswith("\ufeff"):
                header[0] = header[0][1:]
            rows, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}: line {reader.line_num}: {len(row)} fields, but the header has "
                                     f"{len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as e:
            raise InputError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 text ({e.reason})") from None
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise InputError(f"{path}: column {dup!r} appears twice in the header")
    columns = {name: _Column(name, [r[i] for r in rows], [f"line {ln}" for ln in lines])
               for i, name in enumerate(header)}
    return columns, len(rows)


def _read_parquet(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow (python3 -m pip install pyarrow), which is "
                         "not installed") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds on damaged files
        raise InputError(f"{path}: cannot read it as Parquet: {type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0]}") from None
    n = table.num_rows
    where = [f"row {i}" for i in range(n)]
    columns = {name: _Column(name, table.column(name).to_pylist(), where) for name in table.column_names}
    return columns, n


def _cell_number(value, path, col, i, what="value"):
    if isinstance(value, str):
        text = value.strip()
        try:
            x = float(text) if text else None
        except ValueError:
            x = None
        if x is None:
            raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: {what} {_brief(value)} is not a number")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: {what} {_brief(value)} is not a number")
    else:
        x = float(value)
    if not math.isfinite(x):
        raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: {what} {_brief(value)} is not finite")
    return x


def _list_cell(value, path, col, i):
    """A list cell: a Parquet list, or CSV text "[a, b, c]" (Python lists) or "[a b c]" (NumPy)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        items = [t for t in re.split(r"[,\s]+", text) if t]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: {_brief(value)} is not a list of values")
    return [_cell_number(v, path, col, i) for v in items]


def _natural(columns, prefix):
    names = [c for c in columns if c.startswith(prefix)]
    suffixes = [c[len(prefix):] for c in names]
    if names and all(s.isdigit() for s in suffixes):
        return [c for _, c in sorted(zip(map(int, suffixes), names))]
    return names


def _choose_values(columns, path, logit_columns, logit_prefix, list_column):
    given = sum(x is not None for x in (logit_columns, logit_prefix, list_column))
    if given > 1:
        raise InputError("give one of logit_columns, logit_prefix and list_column")
    names = ", ".join(map(repr, list(columns)[:30]))
    if list_column is not None:
        if list_column not in columns:
            raise InputError(f"{path}: has no column {list_column!r} (columns: {names})")
        return "list", [list_column]
    if logit_columns is not None:
        missing = [c for c in logit_columns if c not in columns]
        if missing:
            raise InputError(f"{path}: has no column {missing[0]!r} (columns: {names})")
        return "columns", list(logit_columns)
    if logit_prefix is not None:
        chosen = _natural(columns, logit_prefix)
        if not chosen:
            raise InputError(f"{path}: no column starts with {logit_prefix!r} (columns: {names})")
        return "columns", chosen
    for c in LIST_COLUMNS:
        if c in columns:
            return "list", [c]
    for p in PREFIXES:
        if _natural(columns, p):
            return "columns", _natural(columns, p)
    raise InputError(f"{path}: cannot tell which columns hold the values (columns: {names}); name them "
                     "with a list of logit columns, a column prefix, or a list column")


def read_table(path, *, logit_columns=None, logit_prefix=None, list_column=None, label_column=None,
               split_column=None, format=None, delimiter=",", binary=False):
    """Values and labels from a CSV or Parquet table, one row per sample.

    The values are either one column per class (logit_columns, a list of names in class order;
    or logit_prefix, every column whose name starts with it, ordered by the number after it when
    all have one) or one list column (list_column: a Parquet list, or CSV text "[a, b, c]" / "[a b c]").
    Without any of these: a list column named logits/probs/scores, else columns logit_*/prob_*.
    label_column (default label/labels/target/y) holds class indices in [0, K). split_column
    (optional) says val/valid/validation or test per row. format: "csv" or "parquet" (default:
    Parquet's magic bytes or a .parquet/.pq extension, else CSV). Parquet needs pyarrow.
    binary=True accepts a single value per row (one value column, or lists of one value) as a
    binary score, the log-odds or P(class 1): values are then [N, 1] and labels lie in [0, 2).
    Returns (values float64 [N, K], labels int64 [N], info): info has "format", "value_columns",
    "label_column", "split" (a str array of "val"/"test" per row, or None), "layout", "notes",
    "binary".
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    fmt = _table_format(path, format)
    columns, n = _read_csv(path, delimiter) if fmt == "csv" else _read_parquet(path)
    layout, value_cols = _choose_values(columns, path, logit_columns, logit_prefix, list_column)
    if label_column is None:
        label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
        if label_column is None:
            raise InputError(f"{path}: no label column ({', '.join(LABEL_COLUMNS)}); name it (columns: "
                             f"{', '.join(map(repr, list(columns)[:30]))})")
    elif label_column not in columns:
        raise InputError(f"{path}: has no column {label_column!r}")
    if split_column is not None and split_column not in columns:
        raise InputError(f"{path}: has no column {split_column!r}")
    if n == 0:
        raise InputError(f"{path}: no rows")
    if layout == "list":
        col = columns[value_cols[0]]
        rows = [_list_cell(v, path, col, i) for i, v in enumerate(col.values)]
        k = len(rows[0])
        for i, r in enumerate(rows):
            if len(r) != k:
                raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: {len(r)} values, but the first "
                                 f"row has {k}")
        values = np.array(rows, dtype=np.float64).reshape(n, k)
    else:
        k = len(value_cols)
        values = np.empty((n, k), dtype=np.float64)
        for j, name in enumerate(value_cols):
            col = columns[name]
            values[:, j] = [_cell_number(v, path, col, i) for i, v in enumerate(col.values)]
    is_binary = binary and k == 1
    if k < 2 and not is_binary:
        raise InputError(f"{path}: {k} value column{'s' if k != 1 else ''} ({', '.join(value_cols)}); need K >= 2")
    num_classes = 2 if is_binary else k  # a binary score's labels are 0 and 1
    col = columns[label_column]
    labels = np.empty(n, dtype=np.int64)
    for i, v in enumerate(col.values):
        x = _cell_number(v, path, col, i, what="label")
        if x != round(x):
            raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: label {_brief(v)} is not an integer")
        if not 0 <= x < num_classes:
            raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: label {int(x)} outside "
                             f"[0, {num_classes})")
        labels[i] = int(x)
    split = None
    if split_column is not None:
        col = columns[split_column]
        split = np.empty(n, dtype=object)
        for i, v in enumerate(col.values):
            s = SPLIT_NAMES.get(str(v).strip().lower()) if v is not None else None
            if s is None:
                raise InputError(f"{path}: {col.where[i]}, column {col.name!r}: split {_brief(v)} is not val, "
                                 "valid, validation or test")
            split[i] = s
        split = split.astype(str)
        for s in ("val", "test"):
            if not (split == s).any():
                raise InputError(f"{path}: column {split_column!r} has no {s} rows")
    if is_binary:
        desc = f"{'list column' if layout == 'list' else 'one value column'} {value_cols[0]!r} (binary scores)"
    else:
        desc = (f"list column {value_cols[0]!r}" if layout == "list"
                else f"one column per class ({value_cols[0]!r} .. {value_cols[-1]!r})")
    layout_text = f"{fmt} table, {desc}, labels {label_column!r}" + \
        (f", split column {split_column!r}" if split_column else "")
    info = {"format": fmt, "value_columns": value_cols, "label_column": label_column, "split": split,
            "layout": layout_text, "notes": [], "binary": is_binary}
    return values, labels, info
