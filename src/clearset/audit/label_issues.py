"""Label issues: images whose given label is probably wrong.

1. Out-of-fold class probabilities from models that never saw the image's own label:
   ``logreg`` — multinomial logistic regression on normalised features, k folds (torch, full-batch
   L-BFGS, the objective of scikit-learn's LogisticRegression(C), C = 4); ``knn`` — similarity-weighted vote of
   the k nearest other images (leave-one-out by construction). The default averages both.
2. Confident learning (cleanlab's ``find_label_issues``) on those probabilities; per-class pruning by
   default (``filter_by="prune_by_class"``), which was the most accurate on CIFAR-10N (docs/audit.md).
3. ``label_quality`` = cleanlab's self-confidence score (lower = more likely wrong);
   ``suggested_label`` = the most probable class.

Precomputed probabilities (``pred_probs``) skip step 1.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from ..errors import ParameterError, param
from ..ops.knn import knn
from ..vectors import normalise_features
from ..views import Card, Column, Table, Tile, Tiles
from .base import AuditData, CheckResult, ReportInputs, register_check
from .robust import PROGRESSIVE_ROUNDS, check_mode, divide_targets, progressive_keep

log = logging.getLogger("clearset")
DEFAULT_MODELS = ("logreg", "knn")
DEFAULT_FILTER = "prune_by_class"
DEFAULT_C = 4.0  # weaker regularisation than scikit-learn's C=1: +0.010 / +0.003 F1 on CIFAR-10N aggre / worse


def oof_logreg(x: np.ndarray, labels: np.ndarray, n_classes: int, *, folds: int = 5, c: float = DEFAULT_C,
               seed: int = 0, max_iter: int = 100, heads: dict | None = None, weights: np.ndarray | None = None,
               targets: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold probabilities (N, C): each row from a model trained on the other folds.

    Each fold's model is multinomial logistic regression, mean cross-entropy over its training rows +
    ||W||² / (2·C·n_train) (scikit-learn's LogisticRegression(C) objective). The folds' problems are
    independent, so they are solved as one: the sum of their objectives by full-batch L-BFGS, with one
    matrix product over the features per step serving every fold (1.7x faster than fold by fold on
    CIFAR-10N, equal flags). ``heads``, when given, receives each fold's weights ``W`` (F, D, C), ``b``
    (F, C) and ``fold`` (N,): the fold whose model did not see the row (for spatial class maps).
    ``weights`` (N,) >= 0 weigh the training rows (scikit-learn's ``sample_weight``: the mean and the
    regulariser run over the weight); ``targets`` (N, C) replace the one-hot labels by soft targets
    (cross-entropy to them). The folds are always drawn from ``labels``.
    """
    import torch

    n, d = x.shape
    splits = fold_indices(labels, folds, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.array(labels, dtype=np.int64)).view(n, 1, 1).expand(n, len(splits), 1)
    soft = None if targets is None else torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    train = torch.ones(n, len(splits))
    for f, (_, test) in enumerate(splits):
        train[torch.from_numpy(test), f] = 0
    if weights is not None:
        train = train * torch.from_numpy(np.asarray(weights, dtype=np.float32)).view(n, 1)
    n_train = train.sum(0).clamp_min(1e-12)
    w = torch.zeros(d, len(splits) * n_classes, requires_grad=True)
    b = torch.zeros(len(splits) * n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = (xt @ w + b).view(n, len(splits), n_classes)
        logp = torch.log_softmax(logits, 2)
        nll = -logp.gather(2, yt)[..., 0] if soft is None else -(logp * soft.view(n, 1, n_classes)).sum(2)
        reg = (w.view(d, len(splits), n_classes) ** 2).sum((0, 2)) / (2.0 * c * n_train)
        loss = ((nll * train).sum(0) / n_train + reg).sum()
        loss.backward()
        return loss

    opt.step(closure)
    probs = np.zeros((n, n_classes), dtype=np.float32)
    fold_of = np.zeros(n, dtype=np.int64)
    with torch.no_grad():
        logits = (xt @ w + b).view(n, len(splits), n_classes)
        for f, (_, test) in enumerate(splits):
            probs[test] = torch.softmax(logits[torch.from_numpy(test), f], 1).numpy()
            fold_of[test] = f
    if heads is not None:
        heads.update(W=w.detach().view(d, len(splits), n_classes).permute(1, 0, 2).contiguous(),
                     b=b.detach().view(len(splits), n_classes), fold=fold_of)
    return probs


def knn_probs(x: np.ndarray, labels: np.ndarray, n_classes: int, *, k: int = 20,
              temperature: float = 0.1, neighbours: tuple[np.ndarray, np.ndarray] | None = None,
              weights: np.ndarray | None = None, targets: np.ndarray | None = None) -> np.ndarray:
    """Leave-one-out kNN class probabilities: softmax(similarity / T)-weighted votes of k neighbours.
    ``weights`` (N,) scale each row's vote (0: it does not vote); ``targets`` (N, C): a row votes its soft
    target instead of its label."""
    sims, ids = neighbours if neighbours is not None else knn(x, k)
    sims, ids = sims[:, :k], ids[:, :k]
    valid = ids >= 0
    strength = np.where(valid, np.exp((np.where(valid, sims, 0) - 1.0) / temperature), 0.0)
    if weights is not None:
        strength = strength * np.asarray(weights, dtype=np.float64)[np.where(valid, ids, 0)]
    votes = np.zeros((len(x), n_classes), dtype=np.float64)
    if targets is None:
        rows = np.repeat(np.arange(len(x)), ids.shape[1])
        np.add.at(votes, (rows[valid.ravel()], labels[ids[valid]]), strength[valid])
    else:
        soft = np.asarray(targets, dtype=np.float64)
        for j in range(ids.shape[1]):  # k passes of (N, C): no (N, k, C) block
            votes += strength[:, j : j + 1] * soft[np.where(valid[:, j], ids[:, j], 0)]
    votes += 1e-6  # a point whose neighbours all vote elsewhere still gets a tiny non-zero probability
    return (votes / votes.sum(1, keepdims=True)).astype(np.float32)


def fold_indices(labels: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if counts.min() >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:  # a class smaller than the fold count: plain folds (that class may be absent from some)
        splitter = KFold(folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, n_classes: int, *,
                      models: tuple[str, ...] = DEFAULT_MODELS, folds: int = 5, seed: int = 0,
                      c: float = DEFAULT_C, normalised: bool = False,
                      neighbours: tuple[np.ndarray, np.ndarray] | None = None, robust: str = "none",
                      filter_by: str = DEFAULT_FILTER) -> np.ndarray:
    """Average of the out-of-fold probabilities of ``models`` (N, C); every label must be >= 0.

    ``normalised``: the features are already normalise_features()'d; ``neighbours``: a precomputed
    (sims, ids) self-search of those features with at least 20 columns. ``robust``: a refit after the
    first pass (audit/robust.py: clean-refit, divide-refit, progressive), whose flags use ``filter_by``.
    """
    unknown = set(models) - {"logreg", "knn"}
    if unknown or not models:
        raise ParameterError(f"unknown label-issue model(s) {sorted(unknown)}: choose from logreg, knn")
    check_mode(robust)
    x = np.asarray(features, dtype=np.float32) if normalised else normalise_features(features)
    folds = min(folds, len(labels))
    if neighbours is None and "knn" in models:
        neighbours = knn(x, min(20, max(1, len(labels) - 1)))  # searched once, reused by the refits

    def fit(weights: np.ndarray | None = None, targets: np.ndarray | None = None) -> np.ndarray:
        parts = []
        if "logreg" in models:
            parts.append(oof_logreg(x, labels, n_classes, folds=max(folds, 2), c=c, seed=seed, weights=weights,
                                    targets=targets))
        if "knn" in models:
            parts.append(knn_probs(x, labels, n_classes, k=min(20, max(1, len(labels) - 1)), neighbours=neighbours,
                                   weights=weights, targets=targets))
        return np.mean(parts, axis=0)

    probs = fit()
    if robust == "none" or len(labels) < 2:
        return probs
    if robust == "divide-refit":
        return fit(targets=divide_targets(labels, probs, n_classes, seed=seed))
    flags = find_label_issues(labels, probs, filter_by=filter_by)["is_label_issue"].to_numpy()
    if robust == "clean-refit":
        return fit(weights=(~flags).astype(np.float32))
    for r in range(1, PROGRESSIVE_ROUNDS + 1):  # progressive
        probs = fit(weights=progressive_keep(labels, probs, flags, r / PROGRESSIVE_ROUNDS).astype(np.float32))
    return probs


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray, *,
                      filter_by: str = DEFAULT_FILTER) -> pd.DataFrame:
    """``index, given_label, suggested_label, label_quality, is_label_issue`` from probabilities.

    ``labels`` (N,) in 0..C-1, ``pred_probs`` (N, C) out-of-fold probabilities. Works for any C >= 1.
    """
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    pred_probs = np.asarray(pred_probs, dtype=np.float32)
    n, c = pred_probs.shape
    if len(labels) != n:
        raise ParameterError(f"labels ({len(labels)}) and pred_probs ({n}) differ in length")
    present = np.unique(labels)
    if len(present) < 2:
        quality = np.ones(n, dtype=np.float32)
        flags = np.zeros(n, dtype=bool)  # one class: nothing to confuse it with
    else:
        # cleanlab needs every class to occur; restrict to the classes present and renormalise
        sub = pred_probs[:, present] + 1e-12
        sub = sub / sub.sum(1, keepdims=True)
        remap = np.searchsorted(present, labels)
        flags = cl_find(remap, sub, filter_by=filter_by)
        quality = get_label_quality_scores(remap, sub, method="self_confidence").astype(np.float32)
    return pd.DataFrame({"index": np.arange(n, dtype=np.int64), "given_label": labels,
                         "suggested_label": pred_probs.argmax(1).astype(np.int64), "label_quality": quality,
                         "is_label_issue": np.asarray(flags, dtype=bool)})


def label_issues_views(r: ReportInputs) -> list:
    """A card, the 24 lowest-quality flagged images (given -> suggested), the table of the first 200."""
    s, t = r.summary, r.table
    views: list = [Card(s.get("label_issues", 0), f"label issues ({100 * s.get('share', 0):.1f}%)")]
    if t is None or not len(t):
        return views
    flagged = t[t["is_label_issue"]].sort_values("label_quality", kind="stable")
    views.append(Tiles("Label issues — lowest label quality first (given → suggested)", tuple(
        Tile(int(x.index), struck=r.name(x.given_label), bold=r.name(x.suggested_label), note=f"q {x.label_quality:.3f}")
        for x in flagged.head(24).itertuples())))
    views.append(Table("Label issues", (Column("index"), Column("given_label", "given"),
                                        Column("suggested_label", "suggested"), Column("label_quality", fmt=".4f")),
                       tuple(flagged.head(200).to_dict("records")), total=len(flagged)))
    return views


@register_check("label_issues", provides=("pred_probs",), description="images whose label is probably wrong",
                report=label_issues_views, report_order=10)
def label_issues_check(data: AuditData, *, models: tuple[str, ...] = DEFAULT_MODELS, folds: int = 5,
                       filter_by: str = DEFAULT_FILTER, c: float = DEFAULT_C, seed: int = 0,
                       combine: bool = False, robust: str = "none") -> CheckResult:
    labelled = np.flatnonzero(data.labels >= 0)
    t0 = time.perf_counter()
    given = data.pred_probs if combine else None  # averaged with the embedding models' (e.g. pixel-CNN folds)
    if combine and given is None:
        raise ParameterError(f"{param('combine')} averages {param('pred_probs')} with the embedding models: "
                             f"pass {param('pred_probs')}")
    probs = None if combine else data.pred_probs
    provided = {}
    if probs is None:
        data.require("features", check="label_issues")
        probs = np.zeros((data.n, data.n_classes), dtype=np.float32)
        x = data.normalised_features()
        shared = data.neighbours(20) if len(labelled) == data.n else None  # unlabelled rows cannot vote
        probs[labelled] = out_of_fold_probs(x[labelled], data.labels[labelled], data.n_classes, models=models,
                                            folds=folds, seed=seed, c=c, normalised=True, neighbours=shared,
                                            robust=robust, filter_by=filter_by)
        if given is not None:
            probs[labelled] = (probs[labelled] + given[labelled]) / 2
        provided["pred_probs"] = probs  # later checks (multilabel, class_pairs) reuse them
    fit_seconds = time.perf_counter() - t0
    df = find_label_issues(data.labels[labelled], probs[labelled], filter_by=filter_by)
    df["index"] = labelled
    acc = float((probs[labelled].argmax(1) == data.labels[labelled]).mean()) if len(labelled) else 0.0
    summary = {"label_issues": int(df["is_label_issue"].sum()), "share": float(df["is_label_issue"].mean()),
               "models": (list(models) + (["given pred_probs"] if given is not None else []))
               if provided else "given pred_probs",
               "filter_by": filter_by, "out_of_fold_accuracy_vs_given": acc,
               "model_seconds": round(fit_seconds, 2)}
    return CheckResult(df, summary, provided)
