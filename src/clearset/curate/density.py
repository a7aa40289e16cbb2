"""DBP: density-based pruning of concept clusters (methods.md, DBP card), and ``semdedup+dbp``.

1. Spherical k-means (default 100 clusters, capped at N/10) on the normalised embeddings.
2. Per cluster j: d_intra = mean cosine distance of its members to the centroid; d_inter = mean of
   1 - <c_j, c_l> over its 20 nearest (normalised) centroids; complexity C_j = d_intra · d_inter.
3. Target shares p = softmax(C / T), T = 0.5.
4. Quotas x: minimise ||x - p·N_keep||² with sum(x) = N_keep, 0.5·N_keep/k <= x_j <= |cluster j| -- solved
   exactly as a Euclidean projection (bisection on the shift), then rounded with the remainder fixed.
5. Inside each cluster keep its quota of the least prototypical members (farthest from the centroid).
"""

from __future__ import annotations

import numpy as np

from ..ops.quotas import BALANCE, TEMPERATURE, complexity_quotas
from .base import CurateData, Subset, ones, register_strategy, spherical_kmeans
from .semdedup import semdedup_scores

NEAREST_CENTROIDS = 20


def cluster_complexity(centroids: np.ndarray, assign: np.ndarray, sim: np.ndarray, nearest: int = NEAREST_CENTROIDS):
    """(d_intra, d_inter) per cluster."""
    k = len(centroids)
    sizes = np.bincount(assign, minlength=k)
    d_intra = np.bincount(assign, weights=1 - sim, minlength=k) / np.maximum(sizes, 1)
    cc = centroids @ centroids.T
    np.fill_diagonal(cc, -np.inf)
    m = min(nearest, k - 1)
    if m == 0:
        return d_intra, np.ones(k)
    top = -np.sort(-cc, axis=1)[:, :m]
    return d_intra, (1 - top).mean(1)


def dbp_rows(x: np.ndarray, n_keep: int, seed: int, clusters: int | None, temperature: float = TEMPERATURE,
             balance: float = BALANCE, uniform: bool = False) -> tuple[np.ndarray, dict]:
    """DBP's selection; ``uniform``: every cluster the same complexity, so the QP's target shares are
    uniform -- the card's SSP baseline (same clusters, bounds and hard-first order)."""
    k = clusters or max(1, min(100, len(x) // 10))
    centroids, assign, sim = spherical_kmeans(x, k, seed)
    k = len(centroids)
    sizes = np.bincount(assign, minlength=k)
    if uniform:
        c = np.ones(k)
    else:
        d_intra, d_inter = cluster_complexity(centroids, assign, sim)
        c = d_intra * d_inter
    quota = complexity_quotas(c, sizes, n_keep, temperature, balance)
    keep = []
    for j in np.flatnonzero(quota):
        members = np.flatnonzero(assign == j)
        keep.append(members[np.argsort(sim[members], kind="stable")[: quota[j]]])  # least similar first
    return np.sort(np.concatenate(keep)), {"clusters": int(k), "complexity_min": float(c.min()),
                                           "complexity_max": float(c.max()), "temperature": temperature}


def dbp_partitioned(part, keep: float, seed: int, clusters: int | None = None,
                    temperature: float = TEMPERATURE) -> np.ndarray:
    """DBP over a partition on disk (clearset.scale.dbp_select): the clusters are the partition's
    (about PartitionConfig.cluster_size rows each), so ``clusters`` does not apply."""
    from ..errors import ParameterError
    from ..scale import dbp_select

    if clusters is not None:
        raise ParameterError("dbp on features above the in-memory limit clusters by partition; drop clusters=")
    return dbp_select(part, keep, temperature=temperature)


@register_strategy("dbp", needs=("features",), partitioned=dbp_partitioned,
                   description="density-based pruning: cluster quotas from complexity, least prototypical kept")
def dbp(data: CurateData, n_keep: int, seed: int, clusters: int | None = None,
        temperature: float = TEMPERATURE) -> Subset:
    rows, info = dbp_rows(data.normalised(), n_keep, seed, clusters, temperature)
    return Subset(rows, ones(len(rows)), info)


@register_strategy("ssp", needs=("features",),
                   description="self-supervised-prototype pruning as the DBP card's baseline: DBP's clusters "
                               "(k = 100) with uniform quotas, least prototypical kept")
def ssp(data: CurateData, n_keep: int, seed: int, clusters: int | None = None) -> Subset:
    """The DBP card: "the SSP baseline is the same pipeline with uniform quotas" (Sorscher et al.'s
    prototype metric, per cluster). ``prototypes`` is the global-ranking variant."""
    rows, info = dbp_rows(data.normalised(), n_keep, seed, clusters, uniform=True)
    info.pop("temperature", None)
    return Subset(rows, ones(len(rows)), info)


@register_strategy("semdedup+dbp", needs=("features",),
                   description="SemDeDup (cosine > 1 - eps, eps 0.05) first, then DBP on what remains")
def semdedup_dbp(data: CurateData, n_keep: int, seed: int, eps: float = 0.05, clusters: int | None = None) -> Subset:
    score, _ = semdedup_scores(data, seed, None)
    unique = np.flatnonzero(score <= 1 - eps)
    if len(unique) < n_keep:  # deduplication alone went below the budget: keep the least duplicated
        unique = np.sort(np.argsort(score, kind="stable")[:n_keep])
    rows, info = dbp_rows(data.normalised()[unique], n_keep, seed, clusters)
    info["removed_as_duplicates"] = int(data.n - len(unique))
    return Subset(unique[rows], ones(len(rows)), info)
