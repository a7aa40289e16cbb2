"""Embedding files larger than memory: near-duplicates, outliers and DBP by cluster partitions.

The in-memory checks hold a float32 normalised copy of the features and a neighbour index: 10 GB at
10^7 x 256. Here every pass holds one chunk of rows, or one cluster:

1. Centroids: spherical k-means (clearset.ops.kmeans) on a seeded sample of at most
   max(200,000, 16·k) rows, k = ceil(N / ``cluster_size``) (default 2,000 rows per cluster), 10 iterations.
   Up to ``EXACT_ROWS`` (100,000) rows there is one cluster: the search below is then exact.
2. Pass A, chunk by chunk: each row normalised as the audit does (signed square root, L2) and assigned to
   its most similar centroid exactly (bf16 candidates, fp32 re-rank); assignment and similarity go to
   disk and the cluster sizes and similarity sums are counted. A row whose second-nearest centroid is
   within ``MARGIN`` (0.02) of the nearest is also a *guest* of that second cluster.
3. Pass B, chunk by chunk: a counting sort on disk -- each row is written (float16) to its cluster's next
   free slot with ``pwrite``, with its row number and its similarity to the centroid; guests likewise
   into a second set of files grouped by their second cluster.
4. Per cluster, one contiguous read: each member's exact k nearest among the members and the guests.
   Near-duplicate pairs (cosine >= 0.92 among the 5 nearest) and outlier scores (robust z of the mean
   cosine distance to the 10 nearest) -- the audit's embedding-only rules -- come from them; DBP fills
   its quotas from the same blocks (the similarities to the centroid only).

Memory: one chunk (131,072 rows: 130 MB as float32) or one group of clusters, the centroids, and
O(1) per cluster -- not O(N) floats in RAM: per-row results are written to files (bench/scale.py: peak
1.14 / 1.17 GB at 10^6 / 10^7 rows). Interrupted runs resume: the centroids are saved before pass A, and
passes A, B and the neighbour search checkpoint every ``CHECKPOINT_SECONDS``.
Time: pass A is N·k·D multiply-adds with a flat search (k grows with N: quadratic). Above ``TWO_LEVEL``
(20,000) centroids it is two-level: the centroids grouped by a second k-means into ceil(sqrt(k)) coarse
groups, each group's candidate list learned from the k-means sample (its own centroids plus the two
nearest centroids of every sample row that probes the group), and a row compared with the
coarse centroids and the candidates of its ``PROBE`` (2) nearest groups: about N·(sqrt(k) + 2c)·D for
lists of c centroids (a few times k / sqrt(k)). Pass B and the per-cluster searches are
N·cluster_size·D: linear.
Approximation: a neighbour that k-means put in another cluster, and not as a guest, is not seen.
bench/scale.py measures the neighbour lists' recall@10 against an exact search, and the recall of planted
near-copies and outliers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data.arrays import RowFile, RowReader
from .engines import using
from .progress import bar
from .vectors import normalise_features
from .workspace import atomic_path, fingerprint_path, hash_json, is_cached, read_json, write_json

log = logging.getLogger("clearset")
CHUNK = 131_072
IN_MEMORY_BYTES = 2 << 30  # features above this (N x D x 4 bytes) are audited and curated by partitions
CLUSTER_SIZE = 2_000
SAMPLE = 200_000
KMEANS_ITERATIONS = 10
GROUP_ROWS = 65_536  # clusters read together per task
LARGE_BLOCK = 20_000  # above: clearset.ops.knn's exact search (bf16 candidates, fp32 re-rank)
BLOCK_SCORES = 32_000_000  # fp32 scores held at once inside one cluster (128 MB)
EXACT_ROWS = 100_000  # up to this many rows: one cluster, the exact search (N^2, but cheaper than partitioning)
MARGIN = 0.02  # guest copies: second-nearest centroid within this cosine of the nearest
GUEST_SHARE = 0.25  # above this share of border rows in the sample, halve the cluster count...
MAX_CLUSTER_SIZE = 8_000  # ...while clusters stay at most this large on average (bounds the time per row)
# above this many centroids a row is compared with the candidates of its nearest coarse groups only
# (centroid_index: lists learned from the k-means sample). bench/scale_assign.py, rows not in the sample,
# 20,000 centroids: 1.48x faster than the flat search with 2 groups probed, the home centroid within MARGIN
# of the exact best for 99.995% of rows; 1 group: 8.1x faster but 1% of rows homed away from their
# neighbours, which end to end flagged 11x more outliers (bench/results/scale_assign.json, scale_two_level*.json)
TWO_LEVEL = 20_000
PROBE = 2  # coarse groups (k-means of the centroids into ceil(sqrt(k)) groups) searched per row
CHECKPOINT_SECONDS = 30.0  # a pass records its progress at most this often (rows are synced to disk first)
VERSION = 4  # 4: learned candidate lists above TWO_LEVEL centroids (partitions below it are unchanged)


@dataclass
class Partition:
    """A features file rewritten grouped by cluster, under ``root``."""

    root: Path
    centroids: np.ndarray  # (k, D) float32, L2-normalised
    sizes: np.ndarray  # (k,) rows per cluster
    sim_sums: np.ndarray  # (k,) sum of members' cosine to their centroid
    guest_sizes: np.ndarray  # (k,) rows whose second-nearest centroid this is, within MARGIN of the first

    @property
    def n(self) -> int:
        return int(self.sizes.sum())

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def guest_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.guest_sizes)]).astype(np.int64)

    @classmethod
    def open(cls, root: str | Path) -> "Partition":
        root = Path(root)
        z = np.load(root / "clusters.npz")
        return cls(root, z["centroids"], z["sizes"], z["sim_sums"], z["guest_sizes"])

    def groups(self, max_rows: int = GROUP_ROWS) -> list[tuple[int, int]]:
        """Consecutive cluster ranges [c0, c1) of about ``max_rows`` rows (one cluster may exceed it)."""
        out, start, rows = [], 0, 0
        for c, size in enumerate(self.sizes):
            if rows and rows + size > max_rows:
                out.append((start, c))
                start, rows = c, 0
            rows += int(size)
        if start < len(self.sizes):
            out.append((start, len(self.sizes)))
        return out

    def block(self, c0: int, c1: int, *, vectors: bool = True):
        """(rows (M,), vectors (M, D) float32 or None, similarity to the centroid (M,)) of clusters c0..c1-1."""
        a, b = self.offsets[c0], self.offsets[c1]
        rows = RowReader(self.root / "rows.npy").read(a, b)[:, 0]
        sims = RowReader(self.root / "sims.npy").read(a, b)[:, 0]
        vecs = RowReader(self.root / "vectors.npy").read(a, b).astype(np.float32) if vectors else None
        return rows, vecs, sims

    def guests(self, c0: int, c1: int):
        """(rows (G,), vectors (G, D) float32) of the guests of clusters c0..c1-1."""
        a, b = self.guest_offsets[c0], self.guest_offsets[c1]
        return (RowReader(self.root / "guest_rows.npy").read(a, b)[:, 0],
                RowReader(self.root / "guest_vectors.npy").read(a, b).astype(np.float32))


def partition(features: str | Path, root: str | Path, *, cluster_size: int = CLUSTER_SIZE, seed: int = 0,
              margin: float = MARGIN, chunk: int = CHUNK, guest_share: float = GUEST_SHARE,
              max_cluster_size: int = MAX_CLUSTER_SIZE, engine=None) -> Partition:
    """Partition the (N, D) ``.npy`` at ``features`` into clusters of about ``cluster_size`` rows under
    ``root`` (a cache: the same file and parameters reuse a finished partition). A row whose second-nearest
    centroid is within ``margin`` (cosine) of its nearest is also stored as a guest of that second cluster,
    where the members search it as a candidate neighbour. ``engine``: where pass A's chunks are assigned
    (a Ray engine spreads them over workers that read the file from shared storage).

    Resumable: the centroids are saved before pass A, and both passes record their progress every
    ``CHECKPOINT_SECONDS``; a run killed part-way (Ctrl-C, a crash) goes on from its last checkpoint, with
    the files a run without the interruption writes."""
    features, root = Path(features), Path(root)
    key = hash_json({"features": fingerprint_path(features), "cluster_size": cluster_size, "seed": seed,
                     "margin": margin, "guest_share": guest_share, "max_cluster_size": max_cluster_size,
                     "version": VERSION})
    done = root / "partition.json"
    files = [root / f for f in ("clusters.npz", "vectors.npy", "rows.npy", "sims.npy", "guest_vectors.npy",
                                "guest_rows.npy")]
    if is_cached(done, key, files):
        log.info("partition: cached (%s)", root)
        return Partition.open(root)
    root.mkdir(parents=True, exist_ok=True)
    src = RowReader(features)
    n, d = src.shape
    state_file = root / "progress.json"
    state = read_json(state_file) if state_file.exists() else {}
    if state.get("key") != key or not (root / "centroids.npz").exists():
        (root / "fill.npz").unlink(missing_ok=True)  # an earlier run's: never trusted by this one
        t0 = time.perf_counter()
        index, tried = _fit_centroids(src, cluster_size, seed, margin, guest_share, max_cluster_size)
        with atomic_path(root / "centroids.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, *[np.zeros(0) if a is None else a for a in index])
        t_kmeans = round(time.perf_counter() - t0, 2)
        state = {"key": key, "pass": "A", "done": 0, "tried": tried, "kmeans_seconds": t_kmeans, "seconds": t_kmeans}
        write_json(state_file, state)
    else:
        z = np.load(root / "centroids.npz")
        index = tuple(z[f"arr_{i}"] if i == 0 or len(z[f"arr_{i}"]) else None for i in range(4))
        state = _resumable(state, root, n, d)
        log.info("partition: resuming pass %s at row %d of %d", state["pass"], state["done"], n)
    t0 = time.perf_counter() - state.get("seconds", 0.0)
    centroids, k = index[0], len(index[0])

    # pass A: exact assignment of every row, written to disk
    if state["pass"] == "A":
        fresh = state["done"] == 0
        assign_file = _row_file(root / "assign.npy", (n, 2), np.int32, fresh)  # home cluster, guest cluster or -1
        sim_file = _row_file(root / "row_sims.npy", (n, 1), np.float32, fresh)
        starts = list(range(state["done"], n, chunk))
        checkpoint = _Checkpoint(state_file, state, t0, [assign_file, sim_file])
        with bar(total=n, desc="partition: assign", unit="row", initial=state["done"]) as progress, \
                using(engine) as eng:
            work = _AssignChunk(str(features), chunk, margin)
            for s, (a, sim) in zip(starts, eng.map(_assign_chunk, starts, shared=index, prepare=work, threads=1)):
                assign_file.write(s, a)
                sim_file.write(s, sim[:, None])
                progress.update(len(a))
                checkpoint.save(done=s + len(a), final=s + len(a) == n)
        assign_file.close()
        sim_file.close()
        (root / "fill.npz").unlink(missing_ok=True)
        checkpoint.files = []  # synced by the last save above
        checkpoint.save(**{"pass": "B", "done": 0}, final=True)

    # cluster sizes, similarity sums and guest counts, from pass A's files
    sizes, sim_sums, guest_sizes = np.zeros(k, np.int64), np.zeros(k, np.float64), np.zeros(k, np.int64)
    assign_in, sim_in = RowReader(root / "assign.npy"), RowReader(root / "row_sims.npy")
    for s in range(0, n, chunk):
        a, sim = assign_in.read(s, s + chunk), sim_in.read(s, s + chunk)[:, 0]
        sizes += np.bincount(a[:, 0], minlength=k)
        sim_sums += np.bincount(a[:, 0], weights=sim, minlength=k)
        guest_sizes += np.bincount(a[a[:, 1] >= 0, 1], minlength=k)

    # pass B: counting sort on disk, each chunk's rows to their clusters' next free slots
    fresh = state["done"] == 0
    home = _Grouped(root, "", sizes, d, with_sims=True, fresh=fresh)
    guests = _Grouped(root, "guest_", guest_sizes, d, with_sims=False, fresh=fresh)
    if not fresh:
        fill = np.load(root / "fill.npz")
        home.fill, guests.fill = fill["home"].copy(), fill["guests"].copy()
    checkpoint = _Checkpoint(state_file, state, t0, home.files + guests.files, fill=(root / "fill.npz", home, guests))
    with bar(total=n, desc="partition: group", unit="row", initial=state["done"]) as progress:
        for s in range(state["done"], n, chunk):
            x = normalise_features(src.read(s, s + chunk)).astype(np.float16)
            a, sim = assign_in.read(s, s + chunk), sim_in.read(s, s + chunk)[:, 0]
            rows = np.arange(s, s + len(a), dtype=np.int64)
            home.add(a[:, 0], x, rows, sim)
            g = a[:, 1] >= 0
            guests.add(a[g, 1], x[g], rows[g], None)
            progress.update(len(a))
            checkpoint.save(done=s + len(a), final=s + len(a) == n)
    for f in (home, guests, assign_in, sim_in):
        f.close()
    with atomic_path(root / "clusters.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, centroids=centroids, sizes=sizes, sim_sums=sim_sums, guest_sizes=guest_sizes)
    write_json(done, {"key": key, "n": n, "dim": d, "clusters": k, "guests": int(guest_sizes.sum()),
                      "tried": state["tried"], "coarse_groups": 0 if index[1] is None else len(index[1]),
                      "probe": PROBE, "kmeans_seconds": state["kmeans_seconds"],
                      "seconds": round(time.perf_counter() - t0, 2)})
    for f in ("assign.npy", "row_sims.npy", "fill.npz", "centroids.npz", "progress.json"):
        (root / f).unlink(missing_ok=True)
    return Partition(root, centroids, sizes, sim_sums, guest_sizes)


def _fit_centroids(src: "RowReader", cluster_size: int, seed: int, margin: float, guest_share: float,
                   max_cluster_size: int) -> tuple[CentroidIndex, list[dict]]:
    """Spherical k-means on a seeded sample (k = ceil(N / cluster_size), one cluster up to EXACT_ROWS),
    coarsened while too much of the sample lies on a border; returns the centroid index and every k tried."""
    from .ops.kmeans import spherical_kmeans

    n = len(src)
    # up to EXACT_ROWS everything is one cluster: the neighbour search is exact, in bounded memory
    k = 1 if n <= EXACT_ROWS else math.ceil(n / cluster_size)
    rng = np.random.default_rng(seed)
    m = min(n, max(SAMPLE, 16 * k))
    sample = normalise_features(src.read(0, n) if m == n else src.rows(np.sort(rng.choice(n, m, replace=False))))
    centroids, _, _ = spherical_kmeans(sample, k, seed, niter=KMEANS_ITERATIONS)
    tried = []
    # clusters that cut through dense groups leave many rows on a border (guests): coarsen while they do
    while len(centroids) > 1:
        share = float((_assign(centroid_index(centroids, seed), sample, margin)[0][:, 1] >= 0).mean())
        tried.append({"clusters": len(centroids), "guest_share": round(share, 4)})
        coarser = len(centroids) // 2
        if share <= guest_share or n / coarser > max_cluster_size:
            break
        log.info("partition: %.0f%% of the sample lies on a cluster border at k = %d; trying k = %d",
                 100 * share, len(centroids), coarser)
        centroids, _, _ = spherical_kmeans(sample, coarser, seed, niter=KMEANS_ITERATIONS)
    return centroid_index(centroids, seed, sample=sample), tried


def _resumable(state: dict, root: Path, n: int, d: int) -> dict:
    """Where an interrupted partition can go on from: its saved pass and row, checked against the files
    on disk (a pass whose files are missing or of another shape starts again; pass B trusts the row count
    saved with its fill pointers, which are written after the rows were synced)."""
    def shape(name):
        return _npy_shape(root / name)

    if shape("assign.npy") != (n, 2) or shape("row_sims.npy") != (n, 1):
        return {**state, "pass": "A", "done": 0}
    if state["pass"] == "B":
        try:
            done = int(np.load(root / "fill.npz")["done"])
        except (OSError, ValueError, KeyError):
            done = 0
        g = (shape("guest_rows.npy") or (None,))[0]
        if ([shape(f) for f in ("vectors.npy", "rows.npy", "sims.npy", "guest_vectors.npy", "guest_rows.npy")]
                != [(n, d), (n, 1), (n, 1), (g, d), (g, 1)]):
            done = 0
        return {**state, "done": done}
    return state


def _npy_shape(path: Path) -> tuple | None:
    """The shape of a ``.npy`` file (its header only), or None if it is missing or unreadable."""
    try:
        return np.load(path, mmap_mode="r").shape
    except (OSError, ValueError):
        return None


def _row_file(path: Path, shape: tuple[int, int], dtype, fresh: bool) -> RowFile:
    """A new row file, or (resuming) the existing one, whose shape ``_resumable`` checked."""
    return RowFile.create(path, shape, dtype) if fresh else RowFile.reopen(path)


class _Checkpoint:
    """A pass's progress, saved at most every ``CHECKPOINT_SECONDS`` (and when asked to be final): the
    files' rows reach the disk first, then pass B's fill pointers, then the progress file."""

    def __init__(self, path: Path, state: dict, t0: float, files: list, fill=None):
        self.path, self.state, self.t0, self.files, self.fill = path, state, t0, files, fill
        self.last = time.monotonic()

    def save(self, *, final: bool = False, **update) -> None:
        self.state.update(update)
        if not final and time.monotonic() - self.last < CHECKPOINT_SECONDS:
            return
        for f in self.files:
            f.sync()
        if self.fill is not None:  # pass B's own record of where it stands (written before progress.json)
            path, home, guests = self.fill
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, home=home.fill, guests=guests.fill, done=self.state["done"])
        self.state["seconds"] = round(time.perf_counter() - self.t0, 2)
        write_json(self.path, self.state)
        self.last = time.monotonic()


@dataclass(frozen=True)
class _AssignChunk:
    """Per worker: the features file and the centroid index, for pass A's chunks."""

    features: str
    chunk: int
    margin: float

    def __call__(self, index):
        return self, RowReader(self.features), index


def _assign_chunk(state, start: int):
    spec, src, index = state
    return _assign(index, normalise_features(src.read(start, start + spec.chunk)), spec.margin)


CentroidIndex = tuple  # (centroids (k, D), coarse (g, D) or None, centroid ids by coarse group, group offsets)


def centroid_index(centroids: np.ndarray, seed: int, sample: np.ndarray | None = None) -> CentroidIndex:
    """The centroids, grouped for pass A when there are more than ``TWO_LEVEL`` of them: spherical k-means
    of the centroids into ceil(sqrt(k)) coarse groups. A row is then scored against the g coarse
    centroids and the candidates of its ``PROBE`` nearest groups: N·(g + PROBE·c)·D for lists of c
    centroids, instead of N·k·D.

    A group's candidates are its own centroids and, with ``sample`` (rows, L2-normalised), the two
    nearest centroids (exact) of every sample row that probes this group: the lists are learned from
    where rows fall, so a row's nearest centroid is in a group it probes even when that centroid's own
    coarse group is not (bench/scale_assign.py measures how often it still misses)."""
    from .ops.kmeans import RERANK, spherical_kmeans
    from .ops.knn import knn

    centroids = np.asarray(centroids, np.float32)
    k = len(centroids)
    if k <= TWO_LEVEL:
        return centroids, None, None, None
    coarse, group, _ = spherical_kmeans(centroids, math.ceil(math.sqrt(k)), seed, niter=KMEANS_ITERATIONS)
    coarse = coarse.astype(np.float32)
    pairs = [np.stack([group, np.arange(k)], 1)]  # (group, centroid)
    if sample is not None and len(sample):
        p = min(PROBE, len(coarse))
        for s in range(0, len(sample), CHUNK):
            x = np.asarray(sample[s : s + CHUNK], np.float32)
            _, near_c = knn(centroids, min(2, k), queries=x, exclude_self=False, rerank=RERANK)
            _, near_g = knn(coarse, p, queries=x, exclude_self=False, rerank=RERANK)
            g = np.repeat(near_g, near_c.shape[1], axis=1).ravel()
            c = np.tile(near_c, (1, p)).ravel()
            pairs.append(np.unique(np.stack([g, c], 1), axis=0))
    pairs = np.unique(np.concatenate(pairs), axis=0)  # sorted by group, then centroid
    offsets = np.searchsorted(pairs[:, 0], np.arange(len(coarse) + 1))
    return centroids, coarse, pairs[:, 1].astype(np.int64), offsets


def _assign(index: CentroidIndex, x: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) [home cluster, guest cluster or -1] and the similarity to the home centroid."""
    sim, ids = _nearest_two(index, x)
    out = ids.astype(np.int32)
    if ids.shape[1] < 2:
        return np.concatenate([out, np.full_like(out, -1)], 1), sim[:, 0]
    out[(ids[:, 1] < 0) | (sim[:, 0] - sim[:, 1] > margin), 1] = -1
    return out, sim[:, 0]


def _nearest_two(index: CentroidIndex, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and ids (N, <=2) of each row's two most similar centroids (exactly, for a flat index;
    among the probed groups' members, for a grouped one)."""
    from .ops.kmeans import RERANK
    from .ops.knn import knn

    centroids, coarse, order, offsets = index
    if coarse is None:
        return knn(centroids, 2, queries=x, exclude_self=False, rerank=RERANK)
    n, p = len(x), min(PROBE, len(coarse))
    _, near = knn(coarse, p, queries=x, exclude_self=False, rerank=RERANK)
    flat = near.ravel()
    by_group = np.argsort(flat, kind="stable")
    rows_of = np.repeat(np.arange(n), p)[by_group]
    bounds = np.searchsorted(flat[by_group], np.arange(len(coarse) + 1))
    best_s, best_i = np.full((n, 2), -np.inf, np.float32), np.full((n, 2), -1, np.int64)
    for j in range(len(coarse)):
        rows = rows_of[bounds[j]:bounds[j + 1]]
        members = order[offsets[j]:offsets[j + 1]]
        if not len(rows) or not len(members):
            continue
        # a group holds ~sqrt(k) centroids: one fp32 product is exact and cheaper than an index search
        sims = x[rows] @ centroids[members].T
        top = (np.argpartition(-sims, 1, axis=1)[:, :2] if len(members) > 2
               else np.broadcast_to(np.arange(len(members)), (len(rows), len(members))))
        cand_s = np.concatenate([best_s[rows], np.take_along_axis(sims, top, 1)], 1)
        cand_i = np.concatenate([best_i[rows], members[top]], 1)
        # groups overlap: a centroid already among a row's best two does not count twice
        seen = (cand_i[:, 2:, None] == cand_i[:, None, :2]).any(2)
        cand_s[:, 2:][seen] = -np.inf
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :2]
        best_s[rows] = np.take_along_axis(cand_s, top, 1)
        best_i[rows] = np.take_along_axis(cand_i, top, 1)
    return best_s, best_i


class _Grouped:
    """Files of rows grouped by cluster, filled by a counting sort: each batch's rows go to their
    cluster's next free slots (``pwrite``)."""

    def __init__(self, root: Path, prefix: str, sizes: np.ndarray, dim: int, *, with_sims: bool, fresh: bool = True):
        n = int(sizes.sum())
        self.fill = np.concatenate([[0], np.cumsum(sizes)])[:-1].astype(np.int64)
        self.vectors = _row_file(root / f"{prefix}vectors.npy", (n, dim), np.float16, fresh)
        self.rows = _row_file(root / f"{prefix}rows.npy", (n, 1), np.int64, fresh)
        self.sims = _row_file(root / f"{prefix}sims.npy", (n, 1), np.float32, fresh) if with_sims else None
        self.files = [f for f in (self.vectors, self.rows, self.sims) if f is not None]

    def add(self, cluster: np.ndarray, x: np.ndarray, rows: np.ndarray, sims: np.ndarray | None) -> None:
        order = np.argsort(cluster, kind="stable")
        cluster, x, rows = cluster[order], x[order], rows[order]
        sims = sims[order] if sims is not None else None
        starts = np.flatnonzero(np.r_[True, cluster[1:] != cluster[:-1]]) if len(cluster) else []
        for st, en in zip(starts, np.r_[starts[1:], len(cluster)]):
            c = cluster[st]
            self.vectors.write(self.fill[c], x[st:en])
            self.rows.write(self.fill[c], rows[st:en, None])
            if self.sims is not None:
                self.sims.write(self.fill[c], sims[st:en, None])
            self.fill[c] += en - st

    def close(self) -> None:
        for f in self.files:
            f.close()


# ------------------------------------------------------------------------ per-cluster neighbours
@dataclass(frozen=True)
class _Open:
    root: str

    def __call__(self, _shared=None) -> Partition:
        return Partition.open(self.root)


def _group_neighbours(part: Partition, item: tuple[int, int, int]):
    """Within-cluster k nearest neighbours of clusters c0..c1-1: (rows (M,), sims (M, k), positions
    (M, k) of the neighbours within ``rows``, -1 where a cluster has fewer than k + 1 members)."""
    c0, c1, k = item
    rows, vecs, _ = part.block(c0, c1)
    g_rows, g_vecs = part.guests(c0, c1)
    sims = np.full((len(rows), k), -np.inf, np.float32)
    nbr = np.full((len(rows), k), -1, np.int64)
    base, g_base = part.offsets[c0], part.guest_offsets[c0]
    for c in range(c0, c1):
        a, b = part.offsets[c] - base, part.offsets[c + 1] - base
        ga, gb = part.guest_offsets[c] - g_base, part.guest_offsets[c + 1] - g_base
        if b - a + gb - ga < 2:
            continue
        s, i = block_knn(vecs[a:b], k, extra=g_vecs[ga:gb])
        sims[a:b, : s.shape[1]] = s
        nbr[a:b, : s.shape[1]] = np.concatenate([rows[a:b], g_rows[ga:gb]])[i]
    return rows, sims, nbr


def block_knn(x: np.ndarray, k: int, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other rows of a small block (a cluster) among the block and ``extra`` rows (its
    guests): one fp32 product and a top-k. Returns (M, min(k, M - 1 + E)) similarities and positions in
    [block; extra].

    For a cluster of 2,000 rows this is 2.8x faster than the general kNN's bf16 search with its fp32
    re-rank, whose candidate gathering costs more than the whole product at this size."""
    import torch

    if (extra is None or not len(extra)) and len(x) > LARGE_BLOCK:  # one big cluster: bf16 + fp32 re-rank
        from .ops.knn import knn

        return knn(np.ascontiguousarray(x, dtype=np.float32), min(k, len(x) - 1))
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    base = t if extra is None or not len(extra) else torch.cat([t, torch.from_numpy(np.asarray(extra, np.float32))])
    m = len(t)
    kk = min(k, len(base) - 1)
    sims, ids = np.empty((m, kk), np.float32), np.empty((m, kk), np.int64)
    step = max(1, BLOCK_SCORES // len(base))  # an oversized cluster goes in query blocks: memory stays bounded
    with torch.inference_mode():
        for s in range(0, m, step):
            scores = t[s : s + step] @ base.T
            rows = torch.arange(len(scores))
            scores[rows, rows + s] = -torch.inf
            top = scores.topk(kk, dim=1)
            sims[s : s + step], ids[s : s + step] = top.values.numpy(), top.indices.numpy()
    return sims, ids


def cluster_neighbours(part: Partition, k: int, *, engine=None, start: int = 0):
    """Yield (rows, sims (M, k), neighbour rows (M, k)) group by group (from group ``start`` of
    ``part.groups()``): each row's k nearest rows among its cluster's members and guests (missing: -1 / -inf)."""
    items = [(c0, c1, k) for c0, c1 in part.groups()[start:]]
    with using(engine) as eng:
        yield from eng.map(_group_neighbours, items, prepare=_Open(str(part.root)), threads=1)


def duplicates_and_outliers(part: Partition, *, k: int = 10, threshold: float = 0.92, z: float = 4.0,
                            pair_k: int = 5, engine=None, sample: int = 1_000_000,
                            keep_rows: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Near-duplicate pairs (``index, duplicate_index, similarity``, i < j, cosine >= ``threshold`` among
    each row's ``pair_k`` nearest) and outliers (``index, outlier_score``: robust z >= ``z`` of the mean
    cosine distance to the k nearest) -- the audit's embedding-only rules.

    The mean distances go to ``part.root/mean_distance.npy`` in cluster order; the median and MAD of the
    robust z come from an evenly strided sample of ``sample`` of them. ``keep_rows``: rows whose neighbour
    lists come back in ``info["neighbours"]`` (rows, k) for checks against an exact search.

    Resumable: every ``CHECKPOINT_SECONDS`` the pairs found since the last checkpoint go to a part file
    under ``part.root/neighbours/`` and the groups done to its progress file; an interrupted run goes on
    from there."""
    n = part.n
    keep = np.zeros(0, np.int64) if keep_rows is None else np.asarray(keep_rows, np.int64)
    work = part.root / "neighbours"
    key = hash_json({"partition": fingerprint_path(part.root / "clusters.npz"), "k": k, "threshold": threshold,
                     "pair_k": pair_k, "keep": hashlib.sha256(keep.tobytes()).hexdigest()})
    state, found, kept = _neighbour_state(work, key, n)
    dist_file = _row_file(part.root / "mean_distance.npy", (n, 1), np.float32, fresh=state["pos"] == 0)
    new_pairs, new_kept = [], {}
    last = time.monotonic()
    group, pos = state["groups"], state["pos"]
    with bar(total=n, desc="neighbours in clusters", unit="row", initial=pos) as progress:
        for rows, sims, nb in cluster_neighbours(part, k, engine=engine, start=group):
            finite = np.isfinite(sims)
            dist = np.ones(len(rows), np.float32)
            has = finite.any(1)
            dist[has] = np.nanmean(np.where(finite, 1 - sims, np.nan)[has], axis=1)
            dist_file.write(pos, dist[:, None])
            for r in np.flatnonzero(np.isin(rows, keep)):
                new_kept[int(rows[r])] = nb[r].copy()  # a view would keep the whole group alive
            hit = (nb[:, :pair_k] >= 0) & (sims[:, :pair_k] >= threshold)
            if hit.any():
                i = rows[np.nonzero(hit)[0]]
                j = nb[:, :pair_k][hit]
                new_pairs.append(pd.DataFrame({"index": np.minimum(i, j), "duplicate_index": np.maximum(i, j),
                                               "similarity": np.minimum(sims[:, :pair_k][hit], 1.0)}))
            pos += len(rows)
            group += 1
            progress.update(len(rows))
            if time.monotonic() - last >= CHECKPOINT_SECONDS or pos == n:
                dist_file.sync()
                _save_neighbour_part(work, key, group, pos, new_pairs, new_kept)
                found += new_pairs
                kept.update(new_kept)
                new_pairs, new_kept, last = [], {}, time.monotonic()
    dist_file.close()
    dups = (_pairs_table(found).sort_values("similarity", ascending=False, kind="stable")
            .drop_duplicates(["index", "duplicate_index"])
            .sort_values(["similarity", "index"], ascending=[False, True], kind="stable").reset_index(drop=True))
    outliers, med, mad, spread = _robust_outliers(part, z, sample)
    info = {"rows": n, "clusters": len(part.sizes), "k": k, "threshold": threshold, "z": z,
            "pairs": len(dups), "outliers": len(outliers), "median_distance": med, "mad": mad, "scale": spread}
    if keep_rows is not None:
        info["neighbours"] = np.stack([kept[int(r)] for r in keep]) if len(keep) else np.zeros((0, k))
    shutil.rmtree(work, ignore_errors=True)
    return dups, outliers, info


def _pairs_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Pair tables concatenated (``index, duplicate_index`` int64, ``similarity`` float32), empty if none."""
    t = (pd.concat(frames, ignore_index=True) if frames else
         pd.DataFrame({"index": [], "duplicate_index": [], "similarity": []}))
    return t.astype({"index": np.int64, "duplicate_index": np.int64, "similarity": np.float32})


def _neighbour_state(work: Path, key: str, n: int) -> tuple[dict, list, dict]:
    """(progress, pair tables, kept neighbour lists) of an interrupted neighbour pass with this ``key``,
    or a fresh start. Part files written after the last progress save (a crash between the two) are
    dropped: their groups run again."""
    state = read_json(work / "progress.json") if (work / "progress.json").exists() else {}
    if state.get("key") != key or _npy_shape(work.parent / "mean_distance.npy") != (n, 1):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return {"key": key, "groups": 0, "pos": 0}, [], {}
    found, kept = [], {}
    for f in sorted(work.glob("part-*.npz")):
        if int(f.stem.split("-")[1]) > state["pos"]:
            f.unlink()
            continue
        z = np.load(f)
        found.append(pd.DataFrame({"index": z["i"], "duplicate_index": z["j"], "similarity": z["s"]}))
        kept.update(zip(z["kept_rows"].tolist(), z["kept_lists"]))
    log.info("neighbours: resuming at row %d of %d", state["pos"], n)
    return state, found, kept


def _save_neighbour_part(work: Path, key: str, groups: int, pos: int, pairs: list, kept: dict) -> None:
    """The pairs and kept lists found since the last checkpoint (named by the row count reached), then the
    progress file that makes them count."""
    t = _pairs_table(pairs)
    k_rows = np.array(sorted(kept), np.int64)
    with atomic_path(work / f"part-{pos:012d}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, i=t["index"].to_numpy(), j=t["duplicate_index"].to_numpy(), s=t["similarity"].to_numpy(),
                 kept_rows=k_rows, kept_lists=np.stack([kept[r] for r in k_rows.tolist()]) if len(k_rows)
                 else np.zeros((0, 0), np.int64))
    write_json(work / "progress.json", {"key": key, "groups": groups, "pos": pos})


def row_scores(part: Partition, info: dict) -> np.ndarray:
    """The outlier z of every row, in row order (N float32: the one per-row array held in memory)."""
    out = np.empty(part.n, np.float32)
    dist, rows_in = RowReader(part.root / "mean_distance.npy"), RowReader(part.root / "rows.npy")
    for s in range(0, part.n, CHUNK):
        out[rows_in.read(s, s + CHUNK)[:, 0]] = (dist.read(s, s + CHUNK)[:, 0] - info["median_distance"]) / info["scale"]
    return out


def _robust_outliers(part: Partition, z: float, sample: int) -> tuple[pd.DataFrame, float, float, float]:
    n = part.n
    dist, rows_in = RowReader(part.root / "mean_distance.npy"), RowReader(part.root / "rows.npy")
    stride = max(1, n // sample)
    picked = np.concatenate([dist.read(s, s + CHUNK)[::stride, 0] for s in range(0, n, CHUNK)])
    med = float(np.median(picked))
    mad = float(np.median(np.abs(picked - med))) * 1.4826
    scale = mad if mad > 1e-12 else float(np.std(picked)) + 1e-12
    flagged, scores = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for s in range(0, n, CHUNK):
        score = (dist.read(s, s + CHUNK)[:, 0] - med) / scale
        hit = score >= z
        flagged.append(rows_in.read(s, s + CHUNK)[hit, 0])
        scores.append(score[hit].astype(np.float32))
    out = pd.DataFrame({"index": np.concatenate(flagged), "outlier_score": np.concatenate(scores)})
    return out.sort_values("index").reset_index(drop=True), med, mad, scale


# ------------------------------------------------------------------------------------------ DBP
def dbp_select(part: Partition, keep: float, *, temperature: float = 0.5, balance: float = 0.5,
               nearest: int = 20) -> np.ndarray:
    """DBP (clearset.curate.density) over the partition's clusters: quotas from complexity
    d_intra · d_inter, then each cluster's quota of its least prototypical members. Returns kept rows, sorted."""
    from .ops.knn import knn
    from .ops.quotas import complexity_quotas

    k, sizes = len(part.sizes), part.sizes
    n_keep = int(round(keep * part.n))
    d_intra = 1 - part.sim_sums / np.maximum(sizes, 1)
    m = min(nearest, k - 1)
    d_inter = (1 - knn(part.centroids, m)[0]).mean(1) if m > 0 else np.ones(k)  # k x m, not k x k
    quota = complexity_quotas(d_intra * d_inter, sizes, n_keep, temperature, balance)
    kept = []
    for c0, c1 in part.groups(max_rows=CHUNK):
        rows, _, sims = part.block(c0, c1, vectors=False)
        base = part.offsets[c0]
        for j in range(c0, c1):
            if quota[j]:
                a, b = part.offsets[j] - base, part.offsets[j + 1] - base
                kept.append(rows[a:b][np.argsort(sims[a:b], kind="stable")[: quota[j]]])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
