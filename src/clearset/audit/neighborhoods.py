"""Which classes are confused with which.

- ``overlap``: cleanlab's estimate of the joint probability that an image of one class is labelled as
  the other, symmetrised (from the out-of-fold probabilities).
- ``neighbour_weight``: a neural-gas graph over class prototypes as in the NAPA-VQ card: each class
  gets ``per_class`` code vectors (k-means of its L2-normalised embeddings); every image, in a seeded
  random order, links its nearest code vector to the next ``k`` nearest (edge = 1) and decays that code
  vector's other edges by ``decay``, pruning edges below decay**10. The class-pair weight is the mean
  edge weight between the two classes' code vectors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..vectors import l2_normalise, normalise_features
from ..views import Column, Plot, Table
from .base import AuditData, CheckResult, ReportInputs, register_check

PER_CLASS = 4
EDGE_K = 15
DECAY = 0.9


def class_prototypes(x: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int = PER_CLASS,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(M, D) code vectors and their classes (M,): k-means per class (fewer for tiny classes)."""
    from sklearn.cluster import KMeans

    vecs, owners = [], []
    for c in range(n_classes):
        members = x[labels == c]
        if len(members) == 0:
            continue
        k = min(per_class, len(members))
        if k == 1:
            centres = members.mean(0, keepdims=True)
        else:
            centres = KMeans(k, n_init=1, random_state=seed).fit(members[: 20000]).cluster_centers_
        vecs.append(l2_normalise(centres))
        owners += [c] * k
    return np.concatenate(vecs).astype(np.float32), np.array(owners, dtype=np.int64)


def neural_gas_edges(x: np.ndarray, prototypes: np.ndarray, *, k: int = EDGE_K, decay: float = DECAY,
                     seed: int = 0, chunk: int = 8192) -> np.ndarray:
    """Edge weights (M, M) between prototypes after one pass of competitive Hebbian learning."""
    m = len(prototypes)
    k = min(k, m - 1)
    edges = np.zeros((m, m), dtype=np.float64)
    if k < 1:
        return edges
    order = np.random.default_rng(seed).permutation(len(x))
    prune = decay ** 10
    for start in range(0, len(order), chunk):
        sims = x[order[start : start + chunk]] @ prototypes.T
        ranks = np.argsort(-sims, axis=1)[:, : k + 1]
        for row in ranks:
            w, nbrs = row[0], row[1:]
            edges[w] *= decay
            edges[:, w] *= decay
            edges[w, nbrs] = 1.0
            edges[nbrs, w] = 1.0
            small = edges[w] < prune
            edges[w, small] = 0.0
            edges[small, w] = 0.0
    return edges


def class_pairs(features: np.ndarray | None, labels: np.ndarray, pred_probs: np.ndarray | None,
                n_classes: int, *, class_names: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """``class_a, class_b, name_a, name_b, overlap, neighbour_weight`` for every pair a < b."""
    a, b = np.triu_indices(n_classes, 1)
    overlap = np.zeros(len(a))
    if pred_probs is not None and len(np.unique(labels)) >= 2:
        from cleanlab.count import estimate_joint

        present = np.unique(labels)
        sub = pred_probs[:, present] + 1e-12
        joint = estimate_joint(np.searchsorted(present, labels), sub / sub.sum(1, keepdims=True))
        full = np.zeros((n_classes, n_classes))
        full[np.ix_(present, present)] = joint
        overlap = (full + full.T)[a, b]
    weight = np.zeros(len(a))
    if features is not None and n_classes >= 2:
        x = normalise_features(features)
        protos, owners = class_prototypes(x, labels, n_classes, seed=seed)
        edges = neural_gas_edges(x, protos, seed=seed)
        sums = np.zeros((n_classes, n_classes))
        np.add.at(sums, (owners[:, None], owners[None, :]), edges)
        counts = np.bincount(owners, minlength=n_classes).astype(np.float64)
        pairs = np.maximum(np.outer(counts, counts), 1)
        weight = (sums / pairs)[a, b]
    names = class_names or [str(i) for i in range(n_classes)]
    df = pd.DataFrame({"class_a": a.astype(np.int64), "class_b": b.astype(np.int64),
                       "name_a": [names[i] for i in a], "name_b": [names[i] for i in b],
                       "overlap": overlap.astype(np.float32), "neighbour_weight": weight.astype(np.float32)})
    return df.sort_values(["overlap", "neighbour_weight"], ascending=False).reset_index(drop=True)


def class_pairs_views(r: ReportInputs) -> list:
    """The class confusion graph and the 30 most confused pairs."""
    if r.table is None or not len(r.table):
        return []
    cp = r.table.head(30)
    views: list = []
    if len(r.classes) >= 2:
        views.append(Plot("Confused classes", "class_graph", {"classes": r.classes, "pairs": r.table}))
    views.append(Table("Confused class pairs", (Column("name_a", "class a", text=True),
                                                Column("name_b", "class b", text=True),
                                                Column("overlap", fmt=".4f"),
                                                Column("neighbour_weight", "neighbour weight", fmt=".3f")),
                       tuple(cp.to_dict("records")), total=len(r.table), open=True))
    return views


@register_check("class_pairs", uses=("pred_probs",), description="which classes are confused with which",
                keyed_by="class_a", report=class_pairs_views, report_order=50)
def class_pairs_check(data: AuditData, *, seed: int = 0) -> CheckResult:
    if data.features is None and data.pred_probs is None:
        data.require("features", check="class_pairs")
    labelled = data.labels >= 0
    feats = np.asarray(data.features[labelled]) if data.features is not None else None
    probs = data.pred_probs[labelled] if data.pred_probs is not None else None
    df = class_pairs(feats, data.labels[labelled], probs, data.n_classes, class_names=data.class_names, seed=seed)
    top = df.head(5)
    return CheckResult(df, {"most_confused": [[r.name_a, r.name_b, float(r.overlap)] for r in top.itertuples()]})
