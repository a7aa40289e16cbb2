"""``reviewed``: train on what a person decided in ``clearset review``, the audit deciding the rest.

Reads the newest applied review version (``WS/review/versions/vN``, made from the current manifest).
Images a person dropped or marked ambiguous never enter. The budget is filled in three tiers, each in a
seeded random order: first the images a person kept or relabelled (verified, with the reviewed label), then
the undecided images the audit does not flag, then -- only if those do not fill it -- the undecided flagged
images with the highest label quality (the ``clean`` strategy's order). With ``unreviewed="keep"`` the
audit's flags are ignored for undecided images (the reviewed dataset exactly as applied, when keep covers it).
At ``keep=1`` the subset is every image not dropped: fewer than ``keep * N`` rows when a person dropped some.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from .base import CurateData, Subset, audit_flags, ones, register_strategy, take_top


@register_strategy("reviewed", needs=("reviewed_label",), exact=False,
                   description="the human review's decisions (clearset review --apply) first, then what the "
                               "audit trusts; dropped images never enter")
def reviewed(data: CurateData, n_keep: int, seed: int, unreviewed: str = "audit") -> Subset:
    if unreviewed not in ("audit", "keep"):
        raise ParameterError(f"reviewed: unreviewed must be 'audit' (the audit's flags decide undecided images) "
                             f"or 'keep', got {unreviewed!r}")
    assert data.reviewed_label is not None and data.reviewed_keep is not None and data.reviewed_drop is not None
    labels = np.where(data.reviewed_label >= 0, data.reviewed_label, data.labels)
    flagged = (audit_flags(data) if unreviewed == "audit" else np.zeros(data.n, bool)) & ~data.reviewed_keep
    quality = np.ones(data.n) if data.label_quality is None else np.clip(np.asarray(data.label_quality, float), 0, 1)
    draw = np.random.default_rng(seed).random(data.n)  # in [0, 1): the order inside a tier
    score = np.where(data.reviewed_keep, 2.0 + draw, np.where(flagged, -2.0 + quality, draw))
    score[data.reviewed_drop] = -np.inf
    rows = take_top(score, min(n_keep, int((~data.reviewed_drop).sum())), seed)
    info = {"reviewed_kept": int(data.reviewed_keep[rows].sum()), "dropped_by_review": int(data.reviewed_drop.sum()),
            "kept_flagged": int(flagged[rows].sum()), "labels": labels[rows],
            "relabelled": int((labels[rows] != data.labels[rows]).sum())}
    return Subset(rows, ones(len(rows)), info)


@register_strategy("unpoisoned", needs=("poison_flag",), exact=False,
                   description="drops the training images `clearset scan-poison` flagged as carrying a trigger, "
                               "then a random sample of the rest")
def unpoisoned(data: CurateData, n_keep: int, seed: int) -> Subset:
    """At keep 1: every image not flagged (fewer than N rows when some were)."""
    assert data.poison_flag is not None
    score = np.where(data.poison_flag, -np.inf, np.random.default_rng(seed).random(data.n))
    rows = take_top(score, min(n_keep, int((~data.poison_flag).sum())), seed)
    return Subset(rows, ones(len(rows)), {"dropped_as_poisoned": int(data.poison_flag.sum())})
