"""SemDeDup: semantic deduplication inside k-means clusters of the embeddings (as used before density-based
pruning, methods.md DBP card).

Spherical k-means on the normalised embeddings; inside each cluster the members are ordered from the
least to the most prototypical (farthest from the centroid first, so of a group of near-copies the
least prototypical survives), and each member's duplicate score is its highest cosine similarity to a
member earlier in that order. SemDeDup drops every member whose score exceeds 1 - eps; ``keep`` picks eps
so that exactly round(keep·N) members remain (the eps used is recorded), ``eps=`` fixes it instead.
Cost: one similarity block per cluster, never N x N.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import CurateData, Subset, ones, register_strategy, spherical_kmeans, take_top

DEFAULT_CLUSTER_SIZE = 500  # k = N / 500 (CIFAR-10 train: 100 clusters)


def duplicate_scores(x: np.ndarray, assign: np.ndarray, centroid_sim: np.ndarray, block: int = 4096) -> np.ndarray:
    """(N,) highest cosine similarity of each row to an earlier row of its cluster, in the order
    farthest-from-centroid first (the first member of each cluster scores -1)."""
    score = np.full(len(x), -1.0, dtype=np.float32)
    order = np.lexsort((centroid_sim, assign))  # by cluster, then ascending similarity to the centroid
    bounds = np.flatnonzero(np.diff(assign[order])) + 1
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        v = xt[torch.from_numpy(members)]
        for s in range(0, len(members), block):  # rows s..e against all earlier members
            e = min(s + block, len(members))
            sims = v[s:e] @ v[:e].T
            sims = sims.masked_fill(torch.ones_like(sims, dtype=torch.bool).tril(s - 1).logical_not(), -1.0)
            score[members[s:e]] = sims.amax(1).numpy()
    return score


def semdedup_scores(data: CurateData, seed: int, clusters: int | None) -> tuple[np.ndarray, dict]:
    x = data.normalised()
    k = clusters or max(1, round(data.n / DEFAULT_CLUSTER_SIZE))
    _, assign, sim = spherical_kmeans(x, k, seed)
    return duplicate_scores(x, assign, sim), {"clusters": int(assign.max() + 1)}


@register_strategy("semdedup", needs=("features",),
                   description="drop semantic near-duplicates inside k-means clusters (eps chosen to keep the budget)")
def semdedup(data: CurateData, n_keep: int, seed: int, clusters: int | None = None) -> Subset:
    score, info = semdedup_scores(data, seed, clusters)
    rows = take_top(-score, n_keep, seed)
    info["eps"] = float(1 - np.sort(score)[n_keep - 1]) if n_keep <= len(score) else None
    info["duplicates_above_0.95"] = int((score > 0.95).sum())
    return Subset(rows, ones(len(rows)), info)
