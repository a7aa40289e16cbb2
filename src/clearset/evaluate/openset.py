"""Open-set recognition: how well a closed-set classifier's confidence separates known-class test images
from images of classes it never saw (Vaze et al., ICLR 2022: the maximum logit is a strong baseline).

Scores (higher = more likely known): ``max_logit`` (MLS), ``max_softmax`` (MSP), ``energy``
(T * logsumexp(z / T), T = 1, the negative free energy). Reported per score, by every registered measure
(``OPENSET_MEASURES``; adding one is a file and ``@register_openset_measure``): AUROC (known = positive),
FPR at 95% TPR (share of unknown images scoring above the threshold that keeps 95% of the known) and OSCR
(evaluate/measures/oscr.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from .measures import OPENSET_MEASURES, auroc, fpr_at_tpr  # noqa: F401  (auroc, fpr_at_tpr: part of the API)


def openset_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
    return {"max_logit": z.max(1), "max_softmax": np.exp(z.max(1) - lse), "energy": lse}


def openset_metrics(logits: np.ndarray, known: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """``known`` (N,) bool: the image's class was in training; ``labels`` (N,) the model-output label of
    each image (-1 for unknown), needed by measures of correct classification (OSCR). Returns per score
    every registered measure."""
    known = np.asarray(known, dtype=bool)
    if known.all() or not known.any():
        raise ParameterError("open-set evaluation needs both known-class and unknown-class test images")
    correct = (np.asarray(logits).argmax(1) == labels)[known] if labels is not None else None
    out: dict[str, Any] = {"known_images": int(known.sum()), "unknown_images": int((~known).sum())}
    if correct is not None:
        out["closed_set_accuracy"] = float(correct.mean())
    for name, s in openset_scores(logits).items():
        out[name] = {m: fn(s[known], s[~known], correct) for m, fn in OPENSET_MEASURES.items()
                     if correct is not None or not OPENSET_MEASURES.meta(m).get("needs_correct")}
    return out
