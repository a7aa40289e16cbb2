"""``clean``: keep what the audit trusts. Images flagged as label issues, later copies of duplicates and
outliers are dropped; the budget is filled with a uniform random sample of the unflagged images (ranking
them by label quality instead would keep only the easiest, most prototypical ones: measured worse), and
only when the unflagged images do not fill it, the flagged ones with the highest label quality join.
With ``relabel=True`` flagged label issues stay and take the audit's suggested label instead (the subset
file then carries a ``label`` column the trainer uses)."""

from __future__ import annotations

import numpy as np

from .base import CurateData, Subset, audit_flags, ones, register_strategy, take_top


@register_strategy("clean", needs=("label_quality",),
                   description="drop what the audit flagged (label issues, duplicate copies, outliers), fill "
                               "the budget at random from the rest; relabel=True fixes labels instead")
def clean(data: CurateData, n_keep: int, seed: int, relabel: bool = False) -> Subset:
    quality = np.asarray(data.label_quality, dtype=np.float64)
    flagged = audit_flags(data, label_issues=False)
    issue = data.is_label_issue if data.is_label_issue is not None else np.zeros(data.n, bool)
    labels = None
    if relabel and data.suggested_label is not None:
        labels = np.where(issue, data.suggested_label, data.labels)
    else:
        flagged |= issue
    # unflagged: one random draw each (uniform sample); flagged: after all of them, best label quality first
    score = np.where(flagged, -2.0 + np.clip(quality, 0, 1), np.random.default_rng(seed).random(data.n))
    rows = take_top(score, n_keep, seed)
    info = {"flagged": int(flagged.sum()), "kept_flagged": int(flagged[rows].sum()), "relabelled": 0}
    if labels is not None:
        info["labels"] = labels[rows]
        info["relabelled"] = int((labels[rows] != data.labels[rows]).sum())
    return Subset(rows, ones(len(rows)), info)
