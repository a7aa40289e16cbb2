"""k-nearest neighbours with FAISS, searched in query chunks: memory is O(N·D + chunk·k), never N×N.

Exact inner-product search (IndexFlatIP) up to ``EXACT_MAX`` vectors; above it an IVF index with
``nlist = 4·sqrt(N)`` lists trained on a 100,000-vector sample and ``nprobe = 16``.
"""

from __future__ import annotations

import numpy as np

EXACT_MAX = 300_000
CHUNK = 8192


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def build_index(vectors: np.ndarray, *, seed: int = 0):
    """An inner-product index over (N, D) float32 vectors (normalise them first for cosine)."""
    import faiss

    n, d = vectors.shape
    if n <= EXACT_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, size=min(n, 100_000), replace=False))]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.nprobe = 16
    for start in range(0, n, CHUNK * 8):
        index.add(np.ascontiguousarray(vectors[start : start + CHUNK * 8], dtype=np.float32))
    return index


def knn(vectors: np.ndarray, k: int, *, queries: np.ndarray | None = None, index=None,
        exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Similarities (N, k) and indices (N, k) of each query's k nearest vectors by inner product.

    With ``queries=None`` the vectors query themselves and, with ``exclude_self``, each row leaves out
    its own index (even when exact duplicates tie with it). Missing neighbours are index -1.
    """
    index = index if index is not None else build_index(vectors)
    q = vectors if queries is None else queries
    n = len(q)
    extra = 1 if (queries is None and exclude_self) else 0
    k_eff = min(k + extra, index.ntotal)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, CHUNK):
        block = np.ascontiguousarray(q[start : start + CHUNK], dtype=np.float32)
        s, i = index.search(block, k_eff)
        if extra:
            own = np.arange(start, start + len(block))[:, None]
            keep = i != own
            # drop the self match (or, if it fell outside the list, the last neighbour)
            keep[keep.all(1), -1] = False
            s = s[keep].reshape(len(block), -1)
            i = i[keep].reshape(len(block), -1)
        m = min(k, s.shape[1])
        sims[start : start + len(block), :m] = s[:, :m]
        ids[start : start + len(block), :m] = i[:, :m]
    return sims, ids
