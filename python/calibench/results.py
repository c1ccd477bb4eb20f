"""Sweep results as a pandas DataFrame: `calibench.load_results(DIR)` reads the `results.csv`
that `calibench sweep SPEC --out DIR` (or `--merge` after sharded runs) writes
(docs/experiments.md, "Output in DIR"). pandas is imported here only, when this is called."""

from __future__ import annotations

import json
import os
from typing import Any

# Columns holding JSON text (fitted parameters, a method's options): parsed into Python objects.
_JSON_COLUMNS = ("params", "options")


def _parsed(text: Any) -> Any:
    if not isinstance(text, str) or text == "":
        return None
    return json.loads(text)


def load_results(out_dir: str, split: str | None = None):
    """The rows of DIR/results.csv (one per cell and split; one per cell and group for
    segmentation studies) as a pandas DataFrame, metrics as float64 (an empty cell, such as
    a failed cell's metric or an undefined AUROC, is NaN), `params` and `options` parsed from
    JSON, `error` as a string ("" when the cell finished). `split="test"` keeps one split."""
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - exercised only without pandas
        raise ImportError("calibench.load_results needs pandas: python3 -m pip install pandas") from e
    path = os.path.join(os.fspath(out_dir), "results.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no such file (a sweep writes it when it ends; after sharded runs, "
            f"`calibench sweep SPEC --out {os.fspath(out_dir)} --merge` writes it)")
    # Identities, names and messages stay text ("1e5" must not become a number); the rest is parsed.
    text_columns = {"id", "dataset", "model", "file", "method", "label", "split", "group", "backend", "error"}
    text_columns.update(_JSON_COLUMNS)
    with open(path, newline="") as f:
        header = f.readline().rstrip("\r\n").split(",")
    frame = pd.read_csv(path, dtype={c: str for c in header if c in text_columns}, keep_default_na=False,
                        na_values={c: [""] for c in header if c not in text_columns})
    for column in _JSON_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].map(_parsed)
    if split is not None:
        if "split" not in frame.columns:
            raise ValueError(f"{path}: this study has no splits (a segmentation study: rows are groups)")
        known = sorted(set(frame["split"]))
        if split not in known:
            raise ValueError(f"split must be one of {', '.join(known)} (got {split!r})")
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame
