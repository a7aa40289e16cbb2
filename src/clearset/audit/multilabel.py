"""Images that plausibly show more than one class (ReLabel / multi-label ImageNet cards).

From the out-of-fold class probabilities: every class with probability >= ``min_prob`` is a candidate;
the score is the probability mass outside the top class (1 - p_top), high when a model trained without
the image's label cannot decide between classes. Images with two or more candidates are multi-label
candidates. (Spatial class maps of the backbone, the card's second signal, are not used yet.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import AuditData, CheckResult, register_check

MIN_PROB = 0.2


def multilabel_candidates(pred_probs: np.ndarray, *, min_prob: float = MIN_PROB) -> pd.DataFrame:
    """``index, candidate_labels (list, most probable first), score, is_multilabel``."""
    p = np.asarray(pred_probs, dtype=np.float32)
    order = np.argsort(-p, axis=1)
    candidates = [row[p[i, row] >= min_prob].tolist() for i, row in enumerate(order[:, :5])]
    score = 1.0 - p.max(1)
    return pd.DataFrame({"index": np.arange(len(p), dtype=np.int64), "candidate_labels": candidates,
                         "score": score.astype(np.float32),
                         "is_multilabel": np.array([len(c) >= 2 for c in candidates], dtype=bool)})


@register_check("multilabel", needs=("pred_probs",), description="images that may show several classes")
def multilabel_check(data: AuditData, *, min_prob: float = MIN_PROB) -> CheckResult:
    data.require("pred_probs", check="multilabel")
    labelled = np.flatnonzero(data.labels >= 0)
    df = multilabel_candidates(data.pred_probs[labelled], min_prob=min_prob)
    df["index"] = labelled
    return CheckResult(df, {"multilabel_candidates": int(df["is_multilabel"].sum()), "min_prob": min_prob})
