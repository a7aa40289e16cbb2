"""Outliers: images far from their nearest neighbours in embedding space, relative to the whole set and
to their own class. Scores are robust z-scores of the mean cosine distance to the k nearest neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ops.knn import knn
from ..vectors import normalise_features
from ..views import Card, Tile, Tiles
from .base import AuditData, CheckResult, ReportInputs, register_check, robust_z

DEFAULT_K = 10
DEFAULT_THRESHOLD = 4.0


def outlier_scores(features: np.ndarray, labels: np.ndarray | None = None, *, k: int = DEFAULT_K,
                   threshold: float = DEFAULT_THRESHOLD, normalised: bool = False,
                   neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """``index, outlier_score, global_score, class_score, is_outlier``.

    global_score: robust z of the mean cosine distance to the k nearest images of the whole set.
    class_score: the same among images of the same label (classes with fewer than k + 1 images use
    what they have; a one-image class scores 0). outlier_score is the larger of the two.
    """
    x = np.asarray(features, dtype=np.float32) if normalised else normalise_features(features)
    n = len(x)
    sims = (neighbours if neighbours is not None else knn(x, k))[0][:, :k]
    dist = 1.0 - np.where(np.isfinite(sims), sims, np.nan)
    global_score = robust_z(np.nanmean(dist, axis=1))
    class_score = np.zeros(n, dtype=np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        for c in np.unique(labels[labels >= 0]):
            members = np.flatnonzero(labels == c)
            if len(members) < 3:
                continue
            s, _ = knn(x[members], min(k, len(members) - 1))
            d = np.nanmean(1.0 - np.where(np.isfinite(s), s, np.nan), axis=1)
            class_score[members] = robust_z(d)
    score = np.maximum(global_score, class_score)
    return pd.DataFrame({"index": np.arange(n, dtype=np.int64), "outlier_score": score.astype(np.float32),
                         "global_score": global_score.astype(np.float32),
                         "class_score": class_score.astype(np.float32), "is_outlier": score >= threshold})


def outliers_views(r: ReportInputs) -> list:
    """A card and the 16 highest-scoring images."""
    views: list = [Card(r.summary.get("outliers", 0), "outliers")]
    if r.table is not None and len(r.table):
        top = r.table.sort_values("outlier_score", ascending=False, kind="stable").head(16)
        views.append(Tiles("Outliers — highest score first",
                           tuple(Tile(int(x.index), f"score {x.outlier_score:.1f}") for x in top.itertuples())))
    return views


@register_check("outliers", needs=("features",), description="images far from their neighbours",
                report=outliers_views, report_order=30)
def outliers_check(data: AuditData, *, k: int = DEFAULT_K, threshold: float = DEFAULT_THRESHOLD) -> CheckResult:
    data.require("features", check="outliers")
    if data.partitioned():  # features too large for memory: the global score from the cluster partition
        z = data.partition_results()[1]
        df = pd.DataFrame({"index": np.arange(data.n, dtype=np.int64), "outlier_score": z, "global_score": z,
                           "class_score": np.zeros(data.n, np.float32), "is_outlier": z >= threshold})
        return CheckResult(df, {"outliers": int(df["is_outlier"].sum()), "k": DEFAULT_K, "threshold": threshold,
                                "method": "cluster partition (global score only)"})
    df = outlier_scores(data.normalised_features(), data.labels, k=k, threshold=threshold, normalised=True,
                        neighbours=data.neighbours(k))
    return CheckResult(df, {"outliers": int(df["is_outlier"].sum()), "k": k, "threshold": threshold})
