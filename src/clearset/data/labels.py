"""Replacement labels (``--labels FILE`` or ``--labels SPLIT=FILE``), e.g. the CIFAR-10N human labels.

A labels file holds one integer per image of the source (or of one split), in the source's order:
``.npy`` (1-D), ``.txt`` (one per line), or ``.csv``/``.parquet`` with a ``label`` column (and optionally
``index`` giving the order). A manifest exported by ``clearset audit --export`` works too: its
``clean_label`` column is used. -1 means unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LabelError


@dataclass(frozen=True)
class LabelOverride:
    split: str | None  # None: applies to every image of the source, in order
    path: Path
    labels: np.ndarray

    @classmethod
    def parse(cls, option: str) -> "LabelOverride":
        name, sep, path = option.partition("=")
        split: str | None = name
        if not sep or "/" in name or Path(option).exists():
            split, path = None, option
        return cls(split, Path(path), load_labels(Path(path)))


def load_labels(path: Path) -> np.ndarray:
    if not path.is_file():
        raise LabelError(f"{path}: labels file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix == ".txt":
            values = np.loadtxt(path, dtype=np.float64, ndmin=1)
        elif suffix in (".csv", ".tsv", ".parquet"):
            values = _labels_from_table(path)
        else:
            raise LabelError(f"{path}: unsupported labels file; use .npy, .txt, .csv or .parquet")
    except LabelError:
        raise
    except Exception as e:
        raise LabelError(f"{path}: cannot read labels ({e})") from None
    values = np.asarray(values)
    if values.ndim != 1:
        raise LabelError(f"{path}: labels must be one value per image (1-D), got shape {values.shape}")
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            at = int(np.argmax(~np.isfinite(values)))
            raise LabelError(f"{path}: label at position {at} is {values[at]} (NaN or inf); write -1 for an "
                             f"unlabelled image")
        if (values % 1 != 0).any():
            raise LabelError(f"{path}: labels must be integers; found {values[values % 1 != 0][0]}")
    elif not np.issubdtype(values.dtype, np.integer):
        raise LabelError(f"{path}: labels must be integers, got {values.dtype}")
    values = values.astype(np.int64)
    if len(values) and values.min() < -1:
        raise LabelError(f"{path}: label {int(values.min())} is negative (use -1 for unlabelled)")
    return values


def _labels_from_table(path: Path) -> np.ndarray:
    import pandas as pd

    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(
        path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    if path.suffix.lower() != ".parquet" and all(_is_number(c) for c in df.columns):
        df = pd.read_csv(path, header=None, sep="\t" if path.suffix.lower() == ".tsv" else ",")  # no header row
    # a clearset audit export carries clean_label (its suggestion) beside label (the given one)
    col = next((c for c in ("clean_label", "label", "suggested_label") if c in df.columns), None)
    if col is None:
        numeric = [c for c in df.columns if c != "index"]
        if len(numeric) != 1:
            raise LabelError(f"{path}: no 'label' column (columns: {', '.join(map(str, df.columns))})")
        col = numeric[0]
    if "index" in df.columns:
        df = df.sort_values("index")
        if not np.array_equal(df["index"].to_numpy(), np.arange(len(df))):
            raise LabelError(f"{path}: the 'index' column must hold each of 0..{len(df) - 1} once")
    return pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64)


def _is_number(text) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False
