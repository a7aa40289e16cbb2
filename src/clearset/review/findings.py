"""The audit's findings as review queues: one table per kind, sorted by how suspicious each finding is.

Every finding has an id (``label:17``, ``duplicate:3-41``, ``outlier:9``, ``multilabel:5``), the image(s)
it is about, a ``score`` (higher = look first), the image's class and split for filtering, and the
details the page shows. Queues are built once from ``WS/audit/*.parquet`` (only the flagged rows, so a
queue of 10^5 findings is a few MB) and paged on request; no image is read until a page asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ParameterError, WorkspaceError
from ..io import read_parquet
from ..workspace import Workspace

QUEUES = ("label_issues", "duplicates", "outliers", "multilabel")
PREFIX = {"label_issues": "label", "duplicates": "duplicate", "outliers": "outlier", "multilabel": "multilabel"}


class NotFound(ParameterError):
    """A finding, queue or image the request names is not in this workspace's audit (HTTP 404)."""


@dataclass
class Page:
    queue: str
    rows: pd.DataFrame
    total: int  # findings that pass the filters
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


class Findings:
    """The queues of one workspace's audit, with the manifest's labels and splits beside them."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        ws.require_manifest()
        audit = ws.dir("audit")
        if not any(ws.is_current(audit / f"{q}.parquet") for q in QUEUES):
            raise WorkspaceError(f"{ws.root}: no current audit to review; run `clearset audit {ws.root}` first")
        m = ws.manifest(["index", "split", "label", "source"])
        self.n = len(m)
        self.labels = m["label"].to_numpy(np.int64)
        self.splits = m["split"].astype(str).to_numpy()
        self.sources = m["source"].astype(str).to_numpy()
        self.classes = ws.classes()
        probs = audit / "pred_probs.npy"
        self.pred_probs = np.load(probs, mmap_mode="r", allow_pickle=False) if ws.is_current(probs) else None
        self.queues: dict[str, pd.DataFrame] = {}
        for q in QUEUES:
            path = audit / f"{q}.parquet"
            if path.exists() and ws.is_current(path):
                self.queues[q] = getattr(self, f"_{q}")(read_parquet(path))
        self._where = {f: (q, i) for q, df in self.queues.items() for i, f in enumerate(df["finding"])}

    # -- one builder per queue: columns finding, index, score, label, split (+ the queue's own) ----------
    def _frame(self, kind: str, index: np.ndarray, score: np.ndarray, ids: list[str] | None = None,
               **extra) -> pd.DataFrame:
        index = index.astype(np.int64)
        df = pd.DataFrame({"finding": ids if ids is not None else [f"{PREFIX[kind]}:{i}" for i in index],
                           "index": index, "score": score.astype(np.float64),
                           "label": self.labels[index], "split": self.splits[index], **extra})
        return df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)

    def _label_issues(self, t: pd.DataFrame) -> pd.DataFrame:
        t = t[t["is_label_issue"].astype(bool)]
        idx = t["index"].to_numpy(np.int64)
        sug = t["suggested_label"].to_numpy(np.int64)
        prob = (np.asarray(self.pred_probs[idx, sug], dtype=np.float64) if self.pred_probs is not None
                else np.full(len(idx), np.nan))
        return self._frame("label_issues", idx, 1.0 - t["label_quality"].to_numpy(np.float64),
                           suggested=sug, suggested_prob=prob)

    def _duplicates(self, t: pd.DataFrame) -> pd.DataFrame:
        a = t["index"].to_numpy(np.int64)
        b = t["duplicate_index"].to_numpy(np.int64)
        ids = [f"duplicate:{x}-{y}" for x, y in zip(a, b)]
        return self._frame("duplicates", b, t["similarity"].to_numpy(np.float64), ids, partner=a,
                           partner_label=self.labels[a], partner_split=self.splits[a],
                           cross_split=t["cross_split"].astype(bool).to_numpy() if "cross_split" in t
                           else self.splits[a] != self.splits[b])

    def _outliers(self, t: pd.DataFrame) -> pd.DataFrame:
        t = t[t["is_outlier"].astype(bool)]
        return self._frame("outliers", t["index"].to_numpy(np.int64), t["outlier_score"].to_numpy(np.float64))

    def _multilabel(self, t: pd.DataFrame) -> pd.DataFrame:
        t = t[t["is_multilabel"].astype(bool)]
        cands = [", ".join(self.class_name(int(c)) for c in row) for row in t["candidate_labels"]]
        return self._frame("multilabel", t["index"].to_numpy(np.int64), t["score"].to_numpy(np.float64),
                           candidates=cands)

    # -- lookups -----------------------------------------------------------------------------------------
    def class_name(self, c: int) -> str:
        return self.classes[c] if 0 <= c < len(self.classes) else "unlabelled"

    def counts(self) -> dict[str, int]:
        return {q: len(df) for q, df in self.queues.items()}

    def queue(self, name: str) -> pd.DataFrame:
        if name not in self.queues:
            have = ", ".join(self.queues) or "none"
            raise NotFound(f"queue {name[:40]!r}: not in this audit (queues: {have})")
        return self.queues[name]

    def find(self, finding: str) -> pd.Series:
        """The row of one finding; ParameterError for an id that is not in the audit."""
        where = self._where.get(str(finding))
        if where is None and str(finding).startswith("image:") and str(finding)[6:].isdigit():
            return self.image_row(int(str(finding)[6:]))  # an image picked on the map, not an audit finding
        if where is None:
            raise NotFound(f"finding {str(finding)[:80]!r}: not in this audit (ids look like label:17 or "
                                 f"duplicate:3-41)")
        queue, row = where
        return self.queues[queue].iloc[row]

    def image_row(self, index: int) -> pd.Series:
        i = self.check_index(index)
        return pd.Series({"finding": f"image:{i}", "index": i, "score": 0.0, "label": int(self.labels[i]),
                          "split": str(self.splits[i])})

    def flags(self) -> np.ndarray:
        """Per image, the first queue that holds it (1 label_issues, 2 duplicates, 3 outliers, 4 multilabel)
        or 0: the map's colour by finding."""
        out = np.zeros(self.n, dtype=np.int8)
        for code, q in reversed(list(enumerate(QUEUES, start=1))):
            if q in self.queues:
                out[self.queues[q]["index"].to_numpy()] = code
        return out

    def select(self, name: str, *, label: int | None = None, split: str | None = None,
               min_score: float | None = None, max_score: float | None = None) -> pd.DataFrame:
        df = self.queue(name)
        keep = np.ones(len(df), dtype=bool)
        if label is not None:
            keep &= df["label"].to_numpy() == label
        if split:
            keep &= df["split"].to_numpy() == split
        if min_score is not None:
            keep &= df["score"].to_numpy() >= min_score
        if max_score is not None:
            keep &= df["score"].to_numpy() <= max_score
        return df[keep]

    def page(self, name: str, page: int = 1, per_page: int = 24, **filters) -> Page:
        if page < 1 or not 1 <= per_page <= 500:
            raise ParameterError("page must be >= 1 and per_page between 1 and 500")
        df = self.select(name, **filters)
        start = (page - 1) * per_page
        return Page(name, df.iloc[start:start + per_page], len(df), page, per_page)

    def check_index(self, index: int) -> int:
        if not 0 <= index < self.n:
            raise NotFound(f"image {index}: no such image (the workspace has {self.n})")
        return index

    def check_class(self, c) -> int:
        try:
            c = int(c)
        except (TypeError, ValueError):
            raise ParameterError(f"class {c!r}: not a class number") from None
        if not 0 <= c < len(self.classes):
            raise ParameterError(f"class {c}: no such class (0..{len(self.classes) - 1})")
        return c


def review_dir(ws: Workspace) -> Path:
    return ws.dir("review")
