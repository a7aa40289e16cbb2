"""k-nearest neighbours by inner product, searched in query chunks: memory O(N·D + chunk·N), never N×N.

Up to ``EXACT_MAX`` vectors the search is exact. Where the hardware multiplies bf16 natively (AMX /
avx512_bf16 CPUs, GPUs) it scores candidates with a bf16 matrix product, keeps the best k + 16 per
query and re-ranks those in fp32: the result equals the fp32 search (checked in the tests and in
bench/audit_knn.py) at several times its speed. Elsewhere FAISS IndexFlatIP. Above ``EXACT_MAX``: a FAISS
IVF index with ``nlist = 4·sqrt(N)`` lists trained (10 k-means iterations) on a 100,000-vector sample and
``nprobe = 16``: approximate, its recall is measured in bench/audit/scale.py.
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
    index: faiss.Index
    if n <= EXACT_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = TRAIN_ITERATIONS
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, size=min(n, 100_000), replace=False))]
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        ivf.nprobe = 16
        index = ivf
    for start in range(0, n, CHUNK * 8):
        index.add(np.ascontiguousarray(vectors[start : start + CHUNK * 8], dtype=np.float32))
    return index


def knn(vectors: np.ndarray, k: int, *, queries: np.ndarray | None = None, index=None,
        exclude_self: bool = True, method: str = "auto", rerank: int = RERANK_EXTRA,
        engine=None) -> tuple[np.ndarray, np.ndarray]:
    """Similarities (N, k) and indices (N, k) of each query's k nearest vectors by inner product.

    With ``queries=None`` the vectors query themselves and, with ``exclude_self``, each row leaves out
    its own index (exact duplicates of it stay). Missing neighbours are index -1, similarity -inf.
    ``method``: ``auto``, ``bf16`` (bf16 scores + fp32 re-rank of the best k + ``rerank``), ``faiss``.
    ``engine``: a parallel engine (Ray) searches blocks of queries on its workers, each holding the
    vectors (or the trained index) once; the answer is the same as here.
    """
    if method not in ("auto", "bf16", "faiss"):
        raise ValueError(f"unknown kNN method {method!r}")
    if engine is not None and engine.parallel:
        return _knn_engine(vectors, k, queries, index, exclude_self, method, rerank, engine)
    return _search(vectors, k, queries, index, exclude_self, method, rerank, 0 if queries is None else None)


def _search(vectors, k, queries, index, exclude_self, method, rerank, offset):
    """``offset``: the row of ``vectors`` that query 0 is when the queries are (a block of) the vectors
    themselves, None when they are other vectors."""
    if index is None and len(vectors) <= EXACT_MAX and (method == "bf16" or (method == "auto" and bf16_native())):
        return _knn_bf16(np.asarray(vectors, dtype=np.float32), k, queries, exclude_self, rerank, offset)
    return _knn_faiss(vectors, k, queries, index, exclude_self, offset)


ENGINE_BLOCK = 16_384  # queries per task on a parallel engine


def _knn_engine(vectors, k, queries, index, exclude_self, method, rerank, engine):
    """Blocks of queries as tasks. Up to EXACT_MAX the workers get the vectors; above, the index
    trained here (serialised), so every worker searches the same lists."""
    import faiss

    n_q = len(vectors if queries is None else queries)
    exact = index is None and len(vectors) <= EXACT_MAX
    if exact:
        shared = np.ascontiguousarray(vectors, dtype=np.float32)
    else:
        shared = faiss.serialize_index(index if index is not None else build_index(vectors))
    blocks = []
    for start in range(0, n_q, ENGINE_BLOCK):
        stop = min(start + ENGINE_BLOCK, n_q)
        block = None if (queries is None and exact) else np.ascontiguousarray(
            (vectors if queries is None else queries)[start:stop], dtype=np.float32)
        blocks.append((start, stop, block))
    search = _BlockSearch(k, exact, queries is None and exclude_self, method, rerank)
    sims = np.empty((n_q, k), np.float32)
    ids = np.empty((n_q, k), np.int64)
    for (start, stop, _), (s, i) in zip(blocks, engine.map(_search_block, blocks, shared=shared,
                                                           prepare=search)):
        sims[start:stop], ids[start:stop] = s, i
    return sims, ids


class _BlockSearch:
    """The per-worker state of a blocked search, built once per worker: the vectors (bf16 search), the
    vectors and their flat FAISS index, or the deserialised IVF index."""

    def __init__(self, k, exact, self_search, method, rerank):
        self.k, self.exact, self.self_search, self.method, self.rerank = k, exact, self_search, method, rerank

    def __call__(self, shared):
        if not self.exact:
            import faiss

            return self, None, faiss.deserialize_index(shared)
        if self.method == "bf16" or (self.method == "auto" and bf16_native()):
            return self, shared, None
        return self, shared, build_index(shared)


def _search_block(state, block):
    spec, vectors, index = state
    start, stop, queries = block
    q = vectors[start:stop] if queries is None else queries
    offset = start if spec.self_search else None
    if index is None:
        return _knn_bf16(vectors, spec.k, q, spec.self_search, spec.rerank, offset)
    return _knn_faiss(None, spec.k, q, index, spec.self_search, offset)


def bf16_native() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _knn_bf16(vectors, k, queries, exclude_self, rerank, offset=None):
    import torch

    base = torch.from_numpy(np.ascontiguousarray(vectors))
    base16 = base.to(torch.bfloat16)
    q_all = base if queries is None else torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    self_search = (queries is None or offset is not None) and exclude_self
    offset = offset or 0
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
                scores[rows, rows + start + offset] = -torch.inf
            cand = scores.topk(n_cand, dim=1).indices
            vectors = torch.index_select(base, 0, cand.reshape(-1), out=cand_buf[: cand.numel()])
            exact = torch.einsum("qd,qkd->qk", q, vectors.view(len(q), n_cand, -1))
            if self_search:
                exact[cand == (torch.arange(len(q))[:, None] + start + offset)] = -torch.inf
            top = exact.topk(k_eff, dim=1)
            sims[start : start + len(q), :k_eff] = top.values.numpy()
            ids[start : start + len(q), :k_eff] = torch.gather(cand, 1, top.indices).numpy()
    return sims, ids


def _knn_faiss(vectors, k, queries, index, exclude_self, offset=None):
    index = index if index is not None else build_index(vectors)
    q = vectors if queries is None else queries
    n = len(q)
    extra = 1 if ((queries is None or offset is not None) and exclude_self) else 0
    offset = offset or 0
    k_eff = min(k + extra, index.ntotal)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, CHUNK):
        block = np.ascontiguousarray(q[start : start + CHUNK], dtype=np.float32)
        s, i = index.search(block, k_eff)
        if extra:
            own = np.arange(start, start + len(block))[:, None] + offset
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
