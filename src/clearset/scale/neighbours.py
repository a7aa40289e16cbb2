"""Per-cluster neighbours of a partition (scale/passes.py): each row's exact k nearest among its
cluster's members and guests, one contiguous read per group of clusters; from them the audit's
embedding-only rules -- near-duplicate pairs (cosine >= 0.92 among the 5 nearest) and outlier scores (robust
z of the mean cosine distance to the 10 nearest) -- in memory bounded by a group, not by N."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.arrays import RowReader
from ..engines import using
from ..io import fingerprint_path, hash_json, read_json, write_json, write_npz
from ..ops.knn import knn
from ..progress import bar
from .config import DEFAULT, PartitionConfig
from .passes import Partition, _npy_shape, _row_file

log = logging.getLogger("clearset")

@dataclass(frozen=True)
class _Open:
    root: str
    config: PartitionConfig

    def __call__(self, _shared=None) -> Partition:
        return Partition.open(self.root, self.config)


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
        s, i = block_knn(vecs[a:b], k, extra=g_vecs[ga:gb], large_block=part.config.large_block,
                         block_scores=part.config.block_scores)
        sims[a:b, : s.shape[1]] = s
        nbr[a:b, : s.shape[1]] = np.concatenate([rows[a:b], g_rows[ga:gb]])[i]
    return rows, sims, nbr


def block_knn(x: np.ndarray, k: int, extra: np.ndarray | None = None, *, large_block: int = DEFAULT.large_block,
              block_scores: int = DEFAULT.block_scores) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other rows of a small block (a cluster) among the block and ``extra`` rows (its
    guests): one fp32 product and a top-k. Returns (M, min(k, M - 1 + E)) similarities and positions in
    [block; extra].

    For a cluster of 2,000 rows this is 2.8x faster than the general kNN's bf16 search with its fp32
    re-rank, whose candidate gathering costs more than the whole product at this size."""
    if (extra is None or not len(extra)) and len(x) > large_block:  # one big cluster: bf16 + fp32 re-rank
        return knn(np.ascontiguousarray(x, dtype=np.float32), min(k, len(x) - 1))
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    base = t if extra is None or not len(extra) else torch.cat([t, torch.from_numpy(np.asarray(extra, np.float32))])
    m = len(t)
    kk = min(k, len(base) - 1)
    sims, ids = np.empty((m, kk), np.float32), np.empty((m, kk), np.int64)
    step = max(1, block_scores // len(base))  # an oversized cluster goes in query blocks: memory stays bounded
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
        yield from eng.map(_group_neighbours, items, prepare=_Open(str(part.root), part.config), threads=1)


def duplicates_and_outliers(part: Partition, *, k: int = 10, threshold: float = 0.92, z: float = 4.0,
                            pair_k: int = 5, engine=None, sample: int = 1_000_000,
                            keep_rows: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Near-duplicate pairs (``index, duplicate_index, similarity``, i < j, cosine >= ``threshold`` among
    each row's ``pair_k`` nearest) and outliers (``index, outlier_score``: robust z >= ``z`` of the mean
    cosine distance to the k nearest) -- the audit's embedding-only rules.

    The mean distances go to ``part.root/mean_distance.npy`` in cluster order; the median and MAD of the
    robust z come from an evenly strided sample of ``sample`` of them. ``keep_rows``: rows whose neighbour
    lists come back in ``info["neighbours"]`` (rows, k) for checks against an exact search.

    Resumable: every ``part.config.checkpoint_seconds`` the pairs found since the last checkpoint go to a part file
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
            if time.monotonic() - last >= part.config.checkpoint_seconds or pos == n:
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
    info: dict = {"rows": n, "clusters": len(part.sizes), "k": k, "threshold": threshold, "z": z,
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
    found: list[pd.DataFrame] = []
    kept: dict[int, np.ndarray] = {}
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
    write_npz(work / f"part-{pos:012d}.npz", i=t["index"].to_numpy(), j=t["duplicate_index"].to_numpy(), s=t["similarity"].to_numpy(),
                 kept_rows=k_rows, kept_lists=np.stack([kept[r] for r in k_rows.tolist()]) if len(k_rows)
                 else np.zeros((0, 0), np.int64))
    write_json(work / "progress.json", {"key": key, "groups": groups, "pos": pos})


def row_scores(part: Partition, info: dict) -> np.ndarray:
    """The outlier z of every row, in row order (N float32: the one per-row array held in memory)."""
    out, chunk = np.empty(part.n, np.float32), part.config.chunk
    dist, rows_in = RowReader(part.root / "mean_distance.npy"), RowReader(part.root / "rows.npy")
    for s in range(0, part.n, chunk):
        out[rows_in.read(s, s + chunk)[:, 0]] = (dist.read(s, s + chunk)[:, 0] - info["median_distance"]) / info["scale"]
    return out


def _robust_outliers(part: Partition, z: float, sample: int) -> tuple[pd.DataFrame, float, float, float]:
    n, chunk = part.n, part.config.chunk
    dist, rows_in = RowReader(part.root / "mean_distance.npy"), RowReader(part.root / "rows.npy")
    stride = max(1, n // sample)
    picked = np.concatenate([dist.read(s, s + chunk)[::stride, 0] for s in range(0, n, chunk)])
    med = float(np.median(picked))
    mad = float(np.median(np.abs(picked - med))) * 1.4826
    scale = mad if mad > 1e-12 else float(np.std(picked)) + 1e-12
    flagged, scores = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for s in range(0, n, chunk):
        score = (dist.read(s, s + chunk)[:, 0] - med) / scale
        hit = score >= z
        flagged.append(rows_in.read(s, s + chunk)[hit, 0])
        scores.append(score[hit].astype(np.float32))
    out = pd.DataFrame({"index": np.concatenate(flagged), "outlier_score": np.concatenate(scores)})
    return out.sort_values("index").reset_index(drop=True), med, mad, scale
