"""OSCR, the open-set classification rate (Dhamija, Günther & Boult, NeurIPS 2018; the measure Vaze et al.
report beside AUROC): sweep a threshold over the score; at each, CCR = share of known-class images that
are both accepted (score >= threshold) and classified correctly, FPR = share of unknown-class images
accepted. OSCR is the area under CCR against FPR (FPR from 0 to 1), so it is at most the closed-set
accuracy, reached when the score separates known from unknown perfectly.
"""

from __future__ import annotations

import numpy as np

from . import register_openset_measure


@register_openset_measure("oscr", needs_correct=True, description="area under correct-classification rate vs "
                         "false-positive rate (Dhamija et al. 2018)")
def oscr(pos: np.ndarray, neg: np.ndarray, correct: np.ndarray) -> float:
    """``pos``: scores of the known-class images, ``correct`` whether each is classified correctly;
    ``neg``: scores of the unknown-class images. Ties of score move CCR and FPR together (one step)."""
    scores = np.concatenate([pos, neg])
    is_correct = np.concatenate([np.asarray(correct, bool), np.zeros(len(neg), bool)])
    is_neg = np.concatenate([np.zeros(len(pos), bool), np.ones(len(neg), bool)])
    order = np.argsort(-scores, kind="mergesort")
    s, c, u = scores[order], is_correct[order], is_neg[order]
    last = np.r_[s[1:] != s[:-1], True]  # the end of each group of equal scores: one threshold each
    ccr = np.r_[0.0, np.cumsum(c)[last] / max(len(pos), 1)]
    fpr = np.r_[0.0, np.cumsum(u)[last] / max(len(neg), 1)]
    return float(np.sum((fpr[1:] - fpr[:-1]) * (ccr[1:] + ccr[:-1]) / 2.0))
