"""Evaluation metrics over predictions, registered by name (``@register_metric``).

Every metric takes an :class:`EvalInputs` (logits (N, K), labels (N,) with -1 = unlabelled rows
skipped, optional human label distributions (N, K)) and returns a number or a small dict. Metrics that
need human labels are skipped when there are none.

Definitions (each checked against an independent computation in tests/unit/test_metrics.py):
- ``ece``: 15 equal-width confidence bins, sum_b |B|/N * |acc(B) - conf(B)| with confidence = max softmax.
- ``adaptive_ece``: the same with 15 equal-mass bins (sorted confidences split into 15 equal counts).
- ``brier``: mean over images of sum_k (p_k - onehot_k)^2.
- ``human_*`` (with ``human`` = per-image label distributions, e.g. CIFAR-10H): plurality accuracy
  (prediction = the most chosen human label), multi-label accuracy (prediction among the labels given by
  at least ``share`` of annotators), expected agreement (human probability of the predicted class),
  cross-entropy to the human distribution, and variable top-k: an image with k valid labels (share >=
  ``share``) counts as correct when *all* of the model's top-k classes are valid ("all-valid" definition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import ParameterError
from ...registry import Registry, import_submodules

METRICS: Registry = Registry("metric")
ECE_BINS = 15
HUMAN_SHARE = 0.1  # a label is "valid" for an image when at least this share of annotators chose it


@dataclass(frozen=True)
class EvalInputs:
    logits: np.ndarray
    labels: np.ndarray
    human: np.ndarray | None = None

    @property
    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def register_metric(name: str, *, needs_human: bool = False) -> Callable:
    def decorator(fn):
        fn.needs_human = needs_human
        METRICS.register(name)(fn)
        return fn

    return decorator


def _labelled(e: EvalInputs) -> tuple[np.ndarray, np.ndarray]:
    keep = e.labels >= 0
    return e.probs[keep], e.labels[keep]


@register_metric("top1")
def top1(e: EvalInputs) -> float:
    """Top-1 accuracy over the labelled images."""
    p, y = _labelled(e)
    return float((p.argmax(1) == y).mean())


@register_metric("top5")
def top5(e: EvalInputs) -> float:
    """Top-5 accuracy (top-k with k = min(5, classes))."""
    p, y = _labelled(e)
    k = min(5, p.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float((top == y[:, None]).any(1).mean())


@register_metric("per_class_accuracy")
def per_class_accuracy(e: EvalInputs) -> list[float | None]:
    """Accuracy of each class (None for a class without images)."""
    p, y = _labelled(e)
    pred = p.argmax(1)
    return [float((pred[y == c] == c).mean()) if (y == c).any() else None for c in range(p.shape[1])]


@register_metric("mean_per_class_accuracy")
def mean_per_class_accuracy(e: EvalInputs) -> float:
    """Mean of the per-class accuracies (balanced accuracy)."""
    accs = [a for a in per_class_accuracy(e) if a is not None]
    return float(np.mean(accs))


@register_metric("nll")
def nll(e: EvalInputs) -> float:
    """Negative log-likelihood of the given labels."""
    p, y = _labelled(e)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


@register_metric("brier")
def brier(e: EvalInputs) -> float:
    """Brier score: squared distance of the probabilities to the one-hot label."""
    p, y = _labelled(e)
    onehot = np.eye(p.shape[1])[y]
    return float(((p - onehot) ** 2).sum(1).mean())


def calibration_bins(conf: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS,
                     adaptive: bool = False) -> list[dict]:
    """Per-bin count, mean confidence and accuracy; equal-width bins over [0, 1] or equal-mass bins."""
    if adaptive:
        order = np.argsort(conf, kind="stable")
        groups = [g for g in np.array_split(order, bins) if len(g)]
    else:
        which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # bin b holds (b/B, (b+1)/B]
        groups = [np.flatnonzero(which == b) for b in range(bins)]
    return [{"count": int(len(g)), "confidence": float(conf[g].mean()) if len(g) else None,
             "accuracy": float(correct[g].mean()) if len(g) else None} for g in groups]


def _ece(e: EvalInputs, adaptive: bool) -> float:
    p, y = _labelled(e)
    conf, correct = p.max(1), (p.argmax(1) == y).astype(np.float64)
    n = len(y)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"])
                     for b in calibration_bins(conf, correct, adaptive=adaptive) if b["count"]))


@register_metric("ece")
def ece(e: EvalInputs) -> float:
    """Expected calibration error, 15 equal-width confidence bins."""
    return _ece(e, adaptive=False)


@register_metric("adaptive_ece")
def adaptive_ece(e: EvalInputs) -> float:
    """Expected calibration error, 15 equal-mass confidence bins."""
    return _ece(e, adaptive=True)


def _human(e: EvalInputs) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(e.human, dtype=np.float64)
    return e.probs, h / np.clip(h.sum(1, keepdims=True), 1e-12, None)


@register_metric("human_plurality_accuracy", needs_human=True)
def human_plurality_accuracy(e: EvalInputs) -> float:
    """Agreement of the prediction with the human plurality label."""
    p, h = _human(e)
    return float((p.argmax(1) == h.argmax(1)).mean())


@register_metric("human_multilabel_accuracy", needs_human=True)
def human_multilabel_accuracy(e: EvalInputs, share: float = HUMAN_SHARE) -> float:
    """Share of predictions that at least ``share`` of the annotators chose (multi-label accuracy)."""
    p, h = _human(e)
    return float((h[np.arange(len(p)), p.argmax(1)] >= share).mean())


@register_metric("human_multilabel_accuracy_class_mean", needs_human=True)
def human_multilabel_accuracy_class_mean(e: EvalInputs, share: float = HUMAN_SHARE) -> float:
    """Multi-label accuracy as the ImageNet-M notebook computes it: the mean of the per-class accuracies
    (classes = the given labels), not the mean over images."""
    p, h = _human(e)
    ok = h[np.arange(len(p)), p.argmax(1)] >= share
    labels = np.asarray(e.labels)
    classes = [c for c in np.unique(labels) if c >= 0]
    return float(np.mean([ok[labels == c].mean() for c in classes])) if classes else float("nan")


@register_metric("human_expected_agreement", needs_human=True)
def human_expected_agreement(e: EvalInputs) -> float:
    """Mean share of annotators who agree with the prediction."""
    p, h = _human(e)
    return float(h[np.arange(len(p)), p.argmax(1)].mean())


@register_metric("human_cross_entropy", needs_human=True)
def human_cross_entropy(e: EvalInputs) -> float:
    """Cross-entropy of the predictions to the human label distribution."""
    p, h = _human(e)
    return float(-(h * np.log(np.clip(p, 1e-12, None))).sum(1).mean())


@register_metric("variable_topk", needs_human=True)
def variable_topk(e: EvalInputs, share: float = HUMAN_SHARE) -> dict:
    """Accuracy overall and per subgroup of images with k valid labels, with the subgroup sizes."""
    p, h = _human(e)
    valid = h >= share
    k = valid.sum(1)
    order = np.argsort(-p, axis=1, kind="stable")
    correct = np.array([valid[i, order[i, :ki]].all() if ki else False for i, ki in enumerate(k)])
    groups = {int(g): {"images": int((k == g).sum()), "accuracy": float(correct[k == g].mean())}
              for g in np.unique(k) if g > 0}
    return {"accuracy": float(correct.mean()), "by_label_count": groups, "definition": "all top-k valid",
            "share": share}


def evaluate_predictions(logits: np.ndarray, labels: np.ndarray, *, human: np.ndarray | None = None,
                         metrics: list[str] | None = None) -> dict:
    """Every registered metric (or ``metrics``) on these predictions; human-label metrics need ``human``."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ParameterError(f"logits must be (N, K) with N = {len(labels)} labels, got {logits.shape}")
    if human is not None:
        human = np.asarray(human, dtype=np.float64)
        if human.shape != logits.shape:
            raise ParameterError(f"human labels must be {logits.shape} (images x classes), got {human.shape}")
        if not np.isfinite(human).all() or (human < 0).any() or (human.sum(1) <= 0).any():
            raise ParameterError("human labels must be non-negative counts or probabilities, each row > 0")
    e = EvalInputs(logits, labels, human)
    out = {}
    for name in metrics or METRICS.names():
        fn = METRICS.get(name)
        if fn.needs_human and human is None:
            continue
        out[name] = fn(e)
    out["reliability"] = calibration_bins(e.probs.max(1)[labels >= 0],
                                          (e.probs.argmax(1) == labels)[labels >= 0].astype(float))
    return out


import_submodules(__name__)  # every file here registers its entries: adding one is a file and a decorator
