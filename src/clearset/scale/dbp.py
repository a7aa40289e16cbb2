"""DBP (clearset.curate.density) over a partition's clusters, in memory bounded by a block of clusters."""

from __future__ import annotations

import numpy as np

from ..ops.knn import knn
from ..ops.quotas import complexity_quotas
from .passes import Partition


def dbp_select(part: Partition, keep: float, *, temperature: float = 0.5, balance: float = 0.5,
               nearest: int = 20) -> np.ndarray:
    """DBP (clearset.curate.density) over the partition's clusters: quotas from complexity
    d_intra · d_inter, then each cluster's quota of its least prototypical members. Returns kept rows, sorted."""
    k, sizes = len(part.sizes), part.sizes
    n_keep = int(round(keep * part.n))
    d_intra = 1 - part.sim_sums / np.maximum(sizes, 1)
    m = min(nearest, k - 1)
    d_inter = (1 - knn(part.centroids, m)[0]).mean(1) if m > 0 else np.ones(k)  # k x m, not k x k
    quota = complexity_quotas(d_intra * d_inter, sizes, n_keep, temperature, balance)
    kept = []
    for c0, c1 in part.groups(max_rows=part.config.chunk):
        rows, _, sims = part.block(c0, c1, vectors=False)
        base = part.offsets[c0]
        for j in range(c0, c1):
            if quota[j]:
                a, b = part.offsets[j] - base, part.offsets[j + 1] - base
                kept.append(rows[a:b][np.argsort(sims[a:b], kind="stable")[: quota[j]]])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
