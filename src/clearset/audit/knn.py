"""k-nearest neighbours by inner product, searched in query chunks: memory O(N·D + chunk·N), never N×N.

Up to ``EXACT_MAX`` vectors the search is exact. Where the hardware multiplies bf16 natively (AMX /
avx512_bf16 CPUs, GPUs) it scores candidates with a bf16 matrix product, keeps the best k + 16 per
query and re-ranks those in fp32: the result equals the fp32 search (checked in the tests and in
bench/audit_knn.py) at several times its speed. Elsewhere FAISS IndexFlatIP. Above ``EXACT_MAX``: a FAISS
IVF index with ``nlist = 4·sqrt(N)`` lists trained (10 k-means iterations) on a 100,000-vector sample and
``nprobe = 16``: approximate, its recall is measured in bench/audit_scale.py.
"""

from __future__ import annotations

import numpy as np


EXACT_MAX = 300_000
CHUNK = 8192
RERANK_EXTRA = 16
TRAIN_ITERATIONS = 10  # k-means iterations for the IVF lists (FAISS default 25: 2.5x the build time)
SCORE_BUDGET = 50_000_000  # query x base scores held at once in the bf16 path (about 100 MB)


def build_index(vectors: np.ndarray, *, seed: int = 0):
    """An inner-product index over (N, D) float32 vectors (normalise them first for cosine)."""
    import faiss

    n, d = vectors.shape
    if n <= EXACT_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = TRAIN_ITERATIONS
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, size=min(n, 100_000), replace=False))]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.nprobe = 16
    for start in range(0, n, CHUNK * 8):
        index.add(np.ascontiguousarray(vectors[start : start + CHUNK * 8], dtype=np.float32))
    return index


def knn(vectors: np.ndarray, k: int, *, queries: np.ndarray | None = None, index=None,
        exclude_self: bool = True, method: str = "auto", rerank: int = RERANK_EXTRA) -> tuple[np.ndarray, np.ndarray]:
    """Similarities (N, k) and indices (N, k) of each query's k nearest vectors by inner product.

    With ``queries=None`` the vectors query themselves and, with ``exclude_self``, each row leaves out
    its own index (exact duplicates of it stay). Missing neighbours are index -1, similarity -inf.
    ``method``: ``auto``, ``bf16`` (bf16 scores + fp32 re-rank of the best k + ``rerank``), ``faiss``.
    """
    if method not in ("auto", "bf16", "faiss"):
        raise ValueError(f"unknown kNN method {method!r}")
    n = len(vectors)
    if index is None and n <= EXACT_MAX and (method == "bf16" or (method == "auto" and bf16_native())):
        return _knn_bf16(np.asarray(vectors, dtype=np.float32), k, queries, exclude_self, rerank)
    return _knn_faiss(vectors, k, queries, index, exclude_self)


def bf16_native() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _knn_bf16(vectors, k, queries, exclude_self, rerank):
    import torch

    base = torch.from_numpy(np.ascontiguousarray(vectors))
    base16 = base.to(torch.bfloat16)
    q_all = base if queries is None else torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    self_search = queries is None and exclude_self
    n, m = len(q_all), len(base)
    k_eff = min(k, m - (1 if self_search else 0))
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    if k_eff <= 0:
        return sims, ids
    chunk = int(np.clip(SCORE_BUDGET // max(m, 1), 64, 4096))
    n_cand = min(k_eff + rerank, m)
    # buffers reused by every chunk: fresh 100 MB score matrices cost page faults, not arithmetic
    score_buf = torch.empty(chunk, m, dtype=torch.bfloat16)
    cand_buf = torch.empty(chunk * n_cand, base.shape[1])
    with torch.inference_mode():
        for start in range(0, n, chunk):
            q = q_all[start : start + chunk]
            scores = torch.matmul(q.to(torch.bfloat16), base16.T, out=score_buf[: len(q)])
            if self_search:
                rows = torch.arange(len(q))
                scores[rows, rows + start] = -torch.inf
            cand = scores.topk(n_cand, dim=1).indices
            vectors = torch.index_select(base, 0, cand.reshape(-1), out=cand_buf[: cand.numel()])
            exact = torch.einsum("qd,qkd->qk", q, vectors.view(len(q), n_cand, -1))
            if self_search:
                exact[cand == (torch.arange(len(q))[:, None] + start)] = -torch.inf
            top = exact.topk(k_eff, dim=1)
            sims[start : start + len(q), :k_eff] = top.values.numpy()
            ids[start : start + len(q), :k_eff] = torch.gather(cand, 1, top.indices).numpy()
    return sims, ids


def _knn_faiss(vectors, k, queries, index, exclude_self):
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
    ids[~np.isfinite(sims) | (sims < -1e30)] = -1
    return sims, ids
