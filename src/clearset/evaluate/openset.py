"""Open-set recognition: how well a closed-set classifier's confidence separates known-class test images
from images of classes it never saw (Vaze et al., ICLR 2022: the maximum logit is a strong baseline).

Scores (higher = more likely known): ``max_logit`` (MLS), ``max_softmax`` (MSP), ``energy``
(T * logsumexp(z / T), T = 1, the negative free energy). Reported per score: AUROC (known = positive)
and FPR at 95% TPR (share of unknown images scoring above the threshold that keeps 95% of the known).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def openset_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
    return {"max_logit": z.max(1), "max_softmax": np.exp(z.max(1) - lse), "energy": lse}


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


def openset_metrics(logits: np.ndarray, known: np.ndarray) -> dict:
    """``known`` (N,) bool: the image's class was in training. Returns per score AUROC and FPR@95TPR."""
    known = np.asarray(known, dtype=bool)
    if known.all() or not known.any():
        raise ParameterError("open-set evaluation needs both known-class and unknown-class test images")
    out = {"known_images": int(known.sum()), "unknown_images": int((~known).sum())}
    for name, s in openset_scores(logits).items():
        out[name] = {"auroc": auroc(s[known], s[~known]), "fpr_at_95_tpr": fpr_at_tpr(s[known], s[~known])}
    return out
