"""A CSV/TSV/Parquet manifest with ``path`` and ``label`` columns (optional ``split``). A path is absolute
or relative to the table file's folder (``..`` included: the files are the user's, only ever read).
Labels may be integers or class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import LabelError, SourceError, param
from .base import SOURCES, Record, Source, listing_fingerprint


@SOURCES.register("table")
class TableSource(Source):
    name = "table"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        self.file = Path(target)
        if not self.file.is_file():
            raise SourceError(f"{self.file}: no such file")
        self.root = self.file.parent
        try:
            if self.file.suffix.lower() == ".parquet":
                df = pd.read_parquet(self.file)
            else:
                df = pd.read_csv(self.file, sep="\t" if self.file.suffix.lower() == ".tsv" else ",",
                                 dtype={"path": str, "split": str}, keep_default_na=True)
        except Exception as e:  # pandas raises many types for malformed files
            raise SourceError(f"{self.file}: cannot read as a table ({e})") from None
        missing = [c for c in ("path", "label") if c not in df.columns]
        if missing:
            raise SourceError(f"{self.file}: no {' or '.join(map(repr, missing))} column (columns: "
                              f"{', '.join(map(str, df.columns))}); the table needs path,label")
        if len(df) == 0:
            raise SourceError(f"{self.file}: the table has no rows")
        if "split" in df.columns:
            splits = df["split"].fillna("train").astype(str)
            chosen = self.select_splits(list(dict.fromkeys(splits)))
            df = df[splits.isin(chosen)].assign(split=splits)
        else:
            df = df.assign(split=self.single_split())
        df = df.reset_index(drop=True)
        empty = df["path"].isna() | (df["path"].astype(str).str.strip() == "")
        if empty.any():
            raise SourceError(f"{self.file}: row {int(np.argmax(empty.to_numpy())) + 2}: the 'path' cell is empty; "
                              f"give every row an image path (absolute, or relative to {self.root})")
        df["path"] = df["path"].astype(str)
        self.labels, self.classes = self._labels(df["label"])
        self.df = df

    def _labels(self, col: pd.Series) -> tuple[np.ndarray, list[str]]:
        present = col.dropna()
        numeric = pd.to_numeric(present, errors="coerce")
        if len(present) and numeric.notna().all():
            if (numeric % 1 != 0).any():
                bad = present[numeric % 1 != 0].index[0]
                raise LabelError(f"{self.file}: row {bad + 2}: label {present[bad]!r} is not an integer")
            labels = pd.to_numeric(col, errors="coerce").fillna(-1).astype(np.int64).to_numpy()
            if (labels < -1).any():
                bad = int(np.argmax(labels < -1))
                raise LabelError(f"{self.file}: row {bad + 2}: label {labels[bad]} is negative")
            classes = self.resolve_classes(None, int(labels.max()) + 1)
            if labels.max() >= len(classes):
                bad = int(np.argmax(labels >= len(classes)))
                raise LabelError(f"{self.file}: row {bad + 2}: label {labels[bad]} is out of range for "
                                 f"{len(classes)} classes given by {param('classes')}")
            return labels, classes
        names = sorted(present.astype(str).unique())
        classes = self.resolve_classes(None) if self.user_classes else names
        lookup = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(names) - set(lookup))
        if unknown:
            raise LabelError(f"{self.file}: label(s) {', '.join(unknown[:5])} not among {param('classes')}")
        labels = np.array([lookup[str(v)] if pd.notna(v) else -1 for v in col], dtype=np.int64)
        return labels, classes

    def records(self):
        for path, split, label in zip(self.df["path"], self.df["split"], self.labels):
            yield Record(split, int(label), path, self.root / path)  # an absolute path stays itself

    def counts(self):
        return self.df["split"].value_counts(sort=False).to_dict()

    def fingerprint(self):
        existing = [self.root / p for p in self.df["path"] if (self.root / p).is_file()]
        return listing_fingerprint(self.root, [self.file] + existing)

    def store_spec(self):
        return {"kind": "files", "root": str(self.root.resolve())}
