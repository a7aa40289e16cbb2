"""Measures of open-set separation, registered by name: each takes the scores of known-class images, of
unknown-class images, and whether each known image is classified correctly (higher score = more likely
known). evaluate/openset.py reports every registered measure for every score."""

from __future__ import annotations

import numpy as np

from ...registry import Registry, import_submodules

OPENSET_MEASURES: Registry = Registry("open-set measure", listing="openset")


def register_openset_measure(name: str, *, description: str = "", needs_correct: bool = False):
    """Register ``fn(pos, neg, correct)``: scores of known-class images, of unknown-class images, and
    whether each known image is classified correctly; higher score = more likely known."""
    def decorator(fn):
        OPENSET_MEASURES.register(name, fn, description=description, needs_correct=needs_correct)
        return fn

    return decorator


@register_openset_measure("auroc", description="AUROC of known (positive) against unknown images")
def auroc_measure(pos: np.ndarray, neg: np.ndarray, correct: np.ndarray) -> float:
    return auroc(pos, neg)


@register_openset_measure("fpr_at_95_tpr", description="share of unknown images accepted at 95% of the known")
def fpr_measure(pos: np.ndarray, neg: np.ndarray, correct: np.ndarray) -> float:
    return fpr_at_tpr(pos, neg)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > that of a random negative), ties counted half (Mann-Whitney U)."""
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def fpr_at_tpr(pos: np.ndarray, neg: np.ndarray, tpr: float = 0.95) -> float:
    """Share of negatives at or above the threshold that keeps ``tpr`` of the positives."""
    threshold = np.sort(pos)[::-1][max(int(np.ceil(tpr * len(pos))) - 1, 0)]
    return float((neg >= threshold).mean())


import_submodules(__name__)  # every file here registers its entries: adding one is a file and a decorator
