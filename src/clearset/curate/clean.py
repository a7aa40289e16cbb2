"""``clean``: keep what the audit trusts. Images flagged as label issues, later copies of duplicates and
outliers go last; everything is then ranked by the audit's label quality and the best kept. With
``relabel=True`` flagged label issues stay and take the audit's suggested label instead (the subset file
then carries a ``label`` column the trainer uses)."""

from __future__ import annotations

import numpy as np

from .base import CurateData, Subset, ones, register_strategy, take_top


@register_strategy("clean", needs=("label_quality",),
                   description="drop what the audit flagged (label issues, duplicate copies, outliers), "
                               "then keep the highest label quality; relabel=True fixes labels instead")
def clean(data: CurateData, n_keep: int, seed: int, relabel: bool = False) -> Subset:
    score = np.asarray(data.label_quality, dtype=np.float64).copy()
    flagged = np.zeros(data.n, bool)
    if data.duplicate_of is not None:
        flagged |= data.duplicate_of >= 0
    if data.is_outlier is not None:
        flagged |= data.is_outlier
    issue = data.is_label_issue if data.is_label_issue is not None else np.zeros(data.n, bool)
    labels = None
    if relabel and data.suggested_label is not None:
        labels = np.where(issue, data.suggested_label, data.labels)
        score = np.where(issue, 1.0, score)  # a fixed label is as good as a confident one
    else:
        flagged |= issue
    rows = take_top(score - 10.0 * flagged, n_keep, seed)
    info = {"flagged": int(flagged.sum()), "kept_flagged": int(flagged[rows].sum()), "relabelled": 0}
    if labels is not None:
        info["labels"] = labels[rows]
        info["relabelled"] = int((labels[rows] != data.labels[rows]).sum())
    return Subset(rows, ones(len(rows)), info)
