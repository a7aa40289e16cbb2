"""Labeling instructions from the data (``clearset explain-instructions WS``; methods.md, labeling
instruction generation card): per class, a few exemplars an annotator can follow, chosen on the training
split's embeddings, and boundary examples (the class's images nearest to another class).

Exemplar rules (the card's small check compares them):
- ``medoids`` (default): k-means with k = ``per_class`` inside the class, each cluster's image nearest its
  centre (representative and diverse; the card's trap: nearest-the-mean picks near-duplicates);
- ``mean``: the ``per_class`` images nearest the class mean;
- ``random``: a seeded random choice.
Score (the card's proxy annotator), held out: the exemplars chosen on ``train`` are queries over the
``test`` split; each test image's score for a class is its best cosine similarity to that class's
exemplars, and the mean over classes of the average precision of retrieving the class's test images is
reported (``map``). Choosing and scoring on the same images would inflate it (the card's trap).

Boundary examples: the class's training images with the smallest margin between their similarity to
their own class mean and to the nearest other class mean (and which class that is).

Writes ``WS/explain/instructions-<features>.json``; the report's "Labeling instructions" section shows
the exemplars and boundary examples of each class.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError, param
from ..io import write_json
from ..workspace import Workspace

log = logging.getLogger("clearset")
RULES = ("medoids", "mean", "random")


def _centres(x: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    c = np.stack([x[labels == k].mean(0) if (labels == k).any() else np.zeros(x.shape[1]) for k in range(n_classes)])
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def exemplars(x: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int, rule: str,
              seed: int) -> dict[int, np.ndarray]:
    """Rows (into x) of each class's exemplars; ``x`` L2-normalised."""
    from sklearn.cluster import KMeans

    if rule not in RULES:
        raise ParameterError(f"{param('rule')} {rule!r}: choose one of {', '.join(RULES)}")
    rng = np.random.default_rng(seed)
    centres = _centres(x, labels, n_classes)
    out = {}
    for c in range(n_classes):
        rows = np.flatnonzero(labels == c)
        if len(rows) == 0:
            continue
        k = min(per_class, len(rows))
        if rule == "random":
            out[c] = np.sort(rng.choice(rows, k, replace=False))
        elif rule == "mean":
            out[c] = rows[np.argsort(-(x[rows] @ centres[c]))[:k]]
        else:
            km = KMeans(k, n_init=3, random_state=seed).fit(x[rows])
            picks = [rows[np.flatnonzero(km.labels_ == j)][np.argmin(np.linalg.norm(
                x[rows[km.labels_ == j]] - km.cluster_centers_[j], axis=1))] for j in range(k)]
            out[c] = np.array(picks)
    return out


def boundary(x: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int) -> dict[int, list[tuple[int, int]]]:
    """Per class, (row, nearest other class) of the images with the smallest own-vs-other margin."""
    centres = _centres(x, labels, n_classes)
    sims = x @ centres.T
    out = {}
    for c in range(n_classes):
        rows = np.flatnonzero(labels == c)
        if len(rows) == 0:
            continue
        other = sims[rows].copy()
        other[:, c] = -np.inf
        nearest = other.argmax(1)
        margin = sims[rows, c] - other.max(1)
        order = np.argsort(margin)[:per_class]
        out[c] = [(int(rows[i]), int(nearest[i])) for i in order]
    return out


def retrieval_map(queries: dict[int, np.ndarray], x_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Mean over classes of the average precision of ranking the test images by their best similarity to
    the class's exemplars."""
    from sklearn.metrics import average_precision_score

    aps = []
    for c, rows in queries.items():
        truth = y_test == c
        if not truth.any():
            continue
        score = (x_test @ x_train[rows].T).max(1)
        aps.append(average_precision_score(truth, score))
    return float(np.mean(aps))


def instructions(workspace: str | Path | Workspace, *, features: str | None = None, per_class: int = 5,
                 rule: str = "medoids", seed: int = 0) -> Path:
    """Choose the exemplars and boundary examples of every class and score the rules (module docstring)."""
    from ..vectors import normalise_features

    ws = Workspace.of(workspace)
    if per_class < 1:
        raise ParameterError(f"{param('per_class')} must be at least 1")
    fs, feats = ws.load_features(features)
    x = normalise_features(np.asarray(feats, dtype=np.float32))
    name = f"{fs.backbone}@{fs.image_size}"
    m = ws.manifest(["index", "split", "label"])
    train = np.flatnonzero((m["split"] == "train").to_numpy() & (m["label"] >= 0).to_numpy())
    test = np.flatnonzero((m["split"] == "test").to_numpy() & (m["label"] >= 0).to_numpy())
    if len(train) == 0 or len(np.unique(m["label"].to_numpy()[train])) < 2:
        raise ParameterError(f"{ws.root}: labeling instructions need labelled training images of two classes or more")
    classes = ws.classes()
    labels = m["label"].to_numpy()
    chosen = exemplars(x[train], labels[train], len(classes), per_class, rule, seed)
    edge = boundary(x[train], labels[train], len(classes), per_class)
    result: dict[str, Any] = {"features": name, "rule": rule, "per_class": per_class,
              "classes": {classes[c]: {"exemplars": [int(m["index"].iloc[train[r]]) for r in rows],
                                       "boundary": [{"index": int(m["index"].iloc[train[r]]), "near": classes[o]}
                                                    for r, o in edge.get(c, [])]}
                          for c, rows in chosen.items()}}
    if len(test):
        result["map"] = {r: retrieval_map(exemplars(x[train], labels[train], len(classes), per_class, r, seed),
                                          x[train], x[test], labels[test]) for r in RULES}
        result["map_note"] = "exemplars chosen on train, scored as queries over test (held out)"
    out = ws.dir("explain") / f"instructions-{name.replace(':', '-')}.json"
    write_json(out, result)
    if "map" in result:
        log.info("instructions: retrieval mAP on test: %s", ", ".join(f"{k} {v:.4f}" for k, v in result["map"].items()))
    return out
