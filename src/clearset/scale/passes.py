"""Pass A and pass B of the partitioned path: a features file rewritten grouped by cluster, on disk.

1. Centroids: spherical k-means (clearset.ops.kmeans) on a seeded sample of at most
   max(``sample``, 16·k) rows, k = ceil(N / ``cluster_size``), ``kmeans_iterations`` iterations; up to
   ``exact_rows`` rows there is one cluster (the search is then exact). Clusters that leave more than
   ``guest_share`` of the sample on a border are coarsened (halved) while at most ``max_cluster_size`` rows.
2. Pass A, chunk by chunk: each row normalised as the audit does (signed square root, L2) and assigned to
   its most similar centroid exactly (scale/centroids.py); assignment and similarity go to disk. A row
   whose second-nearest centroid is within ``margin`` of the nearest is also a *guest* of that cluster.
3. Pass B, chunk by chunk: a counting sort on disk -- each row is written (float16) to its cluster's next
   free slot with ``pwrite``, with its row number and its similarity to the centroid; guests likewise.
Both passes checkpoint every ``checkpoint_seconds``; an interrupted run resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.arrays import RowFile, RowReader
from ..engines import using
from ..errors import WorkspaceError
from ..io import fingerprint_path, read_json, write_json, write_npz
from ..ops.kmeans import spherical_kmeans
from ..progress import bar
from ..vectors import normalise_features
from ..workspace import Step
from .centroids import CentroidIndex, assign, centroid_index
from .config import DEFAULT, PartitionConfig

log = logging.getLogger("clearset")
FILES = ("clusters.npz", "vectors.npy", "rows.npy", "sims.npy", "guest_vectors.npy", "guest_rows.npy")


@dataclass
class Partition:
    """A features file rewritten grouped by cluster, under ``root``."""

    root: Path
    centroids: np.ndarray  # (k, D) float32, L2-normalised
    sizes: np.ndarray  # (k,) rows per cluster
    sim_sums: np.ndarray  # (k,) sum of members' cosine to their centroid
    guest_sizes: np.ndarray  # (k,) rows whose second-nearest centroid this is, within margin of the first
    config: PartitionConfig = DEFAULT

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
    def open(cls, root: str | Path, config: PartitionConfig = DEFAULT) -> "Partition":
        root = Path(root)
        z = np.load(root / "clusters.npz")
        return cls(root, z["centroids"], z["sizes"], z["sim_sums"], z["guest_sizes"], config)

    def groups(self, max_rows: int | None = None) -> list[tuple[int, int]]:
        """Consecutive cluster ranges [c0, c1) of about ``max_rows`` rows (default ``config.group_rows``;
        one cluster may exceed it)."""
        max_rows = max_rows or self.config.group_rows
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


def partition(features: str | Path, root: str | Path, config: PartitionConfig | None = None, *, seed: int = 0,
              engine=None, **changes) -> Partition:
    """Partition the (N, D) ``.npy`` at ``features`` into clusters of about ``config.cluster_size`` rows under
    ``root`` (a cache: the same file and configuration reuse a finished partition). A row whose
    second-nearest centroid is within ``config.margin`` (cosine) of its nearest is also stored as a guest of
    that second cluster, where the members search it as a candidate neighbour. ``changes``: fields of the
    configuration to change (``cluster_size=500``). ``engine``: where pass A's chunks are assigned (a Ray
    engine spreads them over workers that read the file from shared storage).

    Resumable: the centroids are saved before pass A, and both passes record their progress every
    ``config.checkpoint_seconds``; a run killed part-way (Ctrl-C, a crash) goes on from its last checkpoint,
    with the files a run without the interruption writes."""
    cfg = (config or DEFAULT).replace(**changes) if changes else (config or DEFAULT)
    features, root = Path(features), Path(root)
    step = Step(sidecar=root / "partition.json", name="partition", params={"seed": seed, **cfg.key()},
                inputs={"features": fingerprint_path(features)}, outputs=[root / f for f in FILES])
    key = step.key
    if step.cached():
        log.info("partition: cached (%s)", root)
        return Partition.open(root, cfg)
    root.mkdir(parents=True, exist_ok=True)
    src = RowReader(features)
    n, d = src.shape
    index, state = _centroids(src, root, key, seed, cfg)
    t0 = time.perf_counter() - state.get("seconds", 0.0)
    if state["pass"] == "A":
        _pass_a(features, n, root, index, state, t0, cfg, engine)
    k = len(index[0])
    sizes, sim_sums, guest_sizes = _counts(root, n, k, cfg.chunk)
    _pass_b(src, root, state, t0, cfg, sizes, guest_sizes)
    write_npz(root / "clusters.npz", centroids=index[0], sizes=sizes, sim_sums=sim_sums, guest_sizes=guest_sizes)
    step.finish(n=n, dim=d, clusters=k, guests=int(guest_sizes.sum()), tried=state["tried"],
                coarse_groups=0 if index[1] is None else len(index[1]), probe=cfg.probe,
                kmeans_seconds=state["kmeans_seconds"], seconds=round(time.perf_counter() - t0, 2))
    for f in ("assign.npy", "row_sims.npy", "fill.npz", "centroids.npz", "progress.json"):
        (root / f).unlink(missing_ok=True)
    return Partition(root, index[0], sizes, sim_sums, guest_sizes, cfg)


def _centroids(src: RowReader, root: Path, key: str, seed: int, cfg: PartitionConfig) -> tuple[CentroidIndex, dict]:
    """The centroid index and the progress state: fitted and saved (a fresh start), or reloaded with the
    pass and row an interrupted run of the same key reached."""
    n, d = src.shape
    state_file = root / "progress.json"
    state = read_json(state_file) if state_file.exists() else {}
    if state.get("key") != key or not (root / "centroids.npz").exists():
        (root / "fill.npz").unlink(missing_ok=True)  # an earlier run's: never trusted by this one
        t0 = time.perf_counter()
        index, tried = _fit_centroids(src, seed, cfg)
        write_npz(root / "centroids.npz", *[np.zeros(0) if a is None else a for a in index])
        t_kmeans = round(time.perf_counter() - t0, 2)
        state = {"key": key, "pass": "A", "done": 0, "tried": tried, "kmeans_seconds": t_kmeans, "seconds": t_kmeans}
        write_json(state_file, state)
        return index, state
    z = np.load(root / "centroids.npz")
    index = tuple(z[f"arr_{i}"] if i == 0 or len(z[f"arr_{i}"]) else None for i in range(4))
    state = _resumable(state, root, n, d)
    log.info("partition: resuming pass %s at row %d of %d", state["pass"], state["done"], n)
    return index, state


def _pass_a(features: Path, n: int, root: Path, index: CentroidIndex, state: dict, t0: float,
            cfg: PartitionConfig, engine) -> None:
    """Exact assignment of every row (home cluster, guest cluster or -1; similarity), written to disk."""
    fresh = state["done"] == 0
    assign_file = _row_file(root / "assign.npy", (n, 2), np.int32, fresh)
    sim_file = _row_file(root / "row_sims.npy", (n, 1), np.float32, fresh)
    starts = list(range(state["done"], n, cfg.chunk))
    checkpoint = _Checkpoint(root / "progress.json", state, t0, [assign_file, sim_file], cfg.checkpoint_seconds)
    with bar(total=n, desc="partition: assign", unit="row", initial=state["done"]) as progress, \
            using(engine) as eng:
        work = _AssignChunk(str(features), cfg.chunk, cfg.margin, cfg.probe)
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


def _counts(root: Path, n: int, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster sizes, similarity sums and guest counts, from pass A's files."""
    sizes, sim_sums, guest_sizes = np.zeros(k, np.int64), np.zeros(k, np.float64), np.zeros(k, np.int64)
    assign_in, sim_in = RowReader(root / "assign.npy"), RowReader(root / "row_sims.npy")
    for s in range(0, n, chunk):
        a, sim = assign_in.read(s, s + chunk), sim_in.read(s, s + chunk)[:, 0]
        sizes += np.bincount(a[:, 0], minlength=k)
        sim_sums += np.bincount(a[:, 0], weights=sim, minlength=k)
        guest_sizes += np.bincount(a[a[:, 1] >= 0, 1], minlength=k)
    return sizes, sim_sums, guest_sizes


def _pass_b(src: RowReader, root: Path, state: dict, t0: float, cfg: PartitionConfig, sizes: np.ndarray,
            guest_sizes: np.ndarray) -> None:
    """Counting sort on disk: each chunk's rows (float16) to their clusters' next free slots."""
    n, d = src.shape
    chunk = cfg.chunk
    assign_in, sim_in = RowReader(root / "assign.npy"), RowReader(root / "row_sims.npy")
    fresh = state["done"] == 0
    home = _Grouped(root, "", sizes, d, with_sims=True, fresh=fresh)
    guests = _Grouped(root, "guest_", guest_sizes, d, with_sims=False, fresh=fresh)
    if not fresh:
        fill = np.load(root / "fill.npz")
        home.fill, guests.fill = fill["home"].copy(), fill["guests"].copy()
    checkpoint = _Checkpoint(root / "progress.json", state, t0, home.files + guests.files, cfg.checkpoint_seconds,
                             fill=(root / "fill.npz", home, guests))
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


def _fit_centroids(src: RowReader, seed: int, cfg: PartitionConfig) -> tuple[CentroidIndex, list[dict]]:
    """Spherical k-means on a seeded sample (k = ceil(N / cluster_size), one cluster up to exact_rows),
    coarsened while too much of the sample lies on a border; returns the centroid index and every k tried."""
    n = len(src)
    # up to exact_rows everything is one cluster: the neighbour search is exact, in bounded memory
    k = 1 if n <= cfg.exact_rows else math.ceil(n / cfg.cluster_size)
    rng = np.random.default_rng(seed)
    m = min(n, max(cfg.sample, 16 * k))
    sample = normalise_features(src.read(0, n) if m == n else src.rows(np.sort(rng.choice(n, m, replace=False))))
    centroids, _, _ = spherical_kmeans(sample, k, seed, niter=cfg.kmeans_iterations)
    tried = []
    # clusters that cut through dense groups leave many rows on a border (guests): coarsen while they do
    while len(centroids) > 1:
        index = centroid_index(centroids, seed, config=cfg)
        share = float((assign(index, sample, cfg.margin, cfg.probe)[0][:, 1] >= 0).mean())
        tried.append({"clusters": len(centroids), "guest_share": round(share, 4)})
        coarser = len(centroids) // 2
        if share <= cfg.guest_share or n / coarser > cfg.max_cluster_size:
            break
        log.info("partition: %.0f%% of the sample lies on a cluster border at k = %d; trying k = %d",
                 100 * share, len(centroids), coarser)
        centroids, _, _ = spherical_kmeans(sample, coarser, seed, niter=cfg.kmeans_iterations)
    return centroid_index(centroids, seed, sample=sample, config=cfg), tried


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
    if fresh:
        return RowFile.create(path, shape, dtype)
    f = RowFile.reopen(path)
    if f is None:
        raise WorkspaceError(f"{path}: a partial partition file is unreadable; delete {path.parent} and run again")
    return f


class _Checkpoint:
    """A pass's progress, saved at most every ``every`` seconds (and when asked to be final): the
    files' rows reach the disk first, then pass B's fill pointers, then the progress file."""

    def __init__(self, path: Path, state: dict, t0: float, files: list, every: float, fill=None):
        self.path, self.state, self.t0, self.files, self.fill, self.every = path, state, t0, files, fill, every
        self.last = time.monotonic()

    def save(self, *, final: bool = False, **update) -> None:
        self.state.update(update)
        if not final and time.monotonic() - self.last < self.every:
            return
        for f in self.files:
            f.sync()
        if self.fill is not None:  # pass B's own record of where it stands (written before progress.json)
            path, home, guests = self.fill
            write_npz(path, home=home.fill, guests=guests.fill, done=self.state["done"])
        self.state["seconds"] = round(time.perf_counter() - self.t0, 2)
        write_json(self.path, self.state)
        self.last = time.monotonic()


@dataclass(frozen=True)
class _AssignChunk:
    """Per worker: the features file and the centroid index, for pass A's chunks."""

    features: str
    chunk: int
    margin: float
    probe: int

    def __call__(self, index):
        return self, RowReader(self.features), index


def _assign_chunk(state, start: int):
    spec, src, index = state
    return assign(index, normalise_features(src.read(start, start + spec.chunk)), spec.margin, spec.probe)


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
        if sims is not None:
            sims = sims[order]
        starts = np.flatnonzero(np.r_[True, cluster[1:] != cluster[:-1]]) if len(cluster) else np.zeros(0, np.int64)
        for st, en in zip(starts, np.r_[starts[1:], len(cluster)]):
            c = cluster[st]
            self.vectors.write(self.fill[c], x[st:en])
            self.rows.write(self.fill[c], rows[st:en, None])
            if self.sims is not None and sims is not None:
                self.sims.write(self.fill[c], sims[st:en, None])
            self.fill[c] += en - st

    def close(self) -> None:
        for f in self.files:
            f.close()
