"""Synthetic embeddings the scale benches share, written a chunk at a time and cached under bench/.cache:
``make_embeddings`` (float16 concept blobs with planted near-copies and outliers: bench/scale/partition.py,
bench/scale/assign.py, bench/curate/partitioned.py) and ``make_data`` (float32 clusters with labels:
bench/audit/scale.py, bench/curate/scale.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import CACHE

N_DUPS, N_OUTLIERS, CONCEPTS = 2000, 200, 1000
GEN_CHUNK = 262_144


def concept_centres(concepts: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-norm centres of the synthetic concepts (Gaussian directions on the sphere)."""
    centres = rng.normal(size=(concepts, dim)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def concept_rows(n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n rows, each a random concept's centre plus Gaussian noise (0.06 per dimension: wide blobs)."""
    return (centres[rng.integers(0, len(centres), n)]
            + rng.normal(size=(n, centres.shape[1])).astype(np.float32) * 0.06)


def make_embeddings(n: int, dim: int, seed: int = 0, concepts: int = CONCEPTS) -> tuple[Path, Path]:
    """(features .npy float16, planted .npy: 2,000 (source, copy) pairs then 200 outlier rows), written a
    chunk at a time (memory flat in N); cached under bench/.cache."""
    from clearset.data.arrays import RowFile, RowReader

    tag = f"scale16_{n}_{dim}" + (f"_c{concepts}" if concepts != CONCEPTS else "")
    feats, planted = CACHE / f"{tag}_x.npy", CACHE / f"{tag}_planted.npy"
    if feats.exists() and planted.exists():
        return feats, planted
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = concept_centres(concepts, dim, rng)
    n_base = n - N_DUPS - N_OUTLIERS
    tmp = feats.with_suffix(".tmp.npy")
    out = RowFile.create(tmp, (n, dim), np.float16)
    for s in range(0, n_base, GEN_CHUNK):
        out.write(s, concept_rows(min(GEN_CHUNK, n_base - s), centres, rng))
    sources = np.sort(rng.choice(n_base, N_DUPS, replace=False))
    src = RowReader(tmp).rows(sources).astype(np.float32)
    out.write(n_base, src + rng.normal(size=(N_DUPS, dim)).astype(np.float32) * 0.003)
    out.write(n_base + N_DUPS, rng.normal(size=(N_OUTLIERS, dim)).astype(np.float32) / np.sqrt(dim))
    out.close()
    tmp.rename(feats)
    np.save(planted, np.concatenate([np.stack([sources, np.arange(n_base, n_base + N_DUPS)], 1).ravel(),
                                     np.arange(n_base + N_DUPS, n)]))
    return feats, planted


AUDIT_CLUSTERS, AUDIT_CLASSES = 1000, 100


def make_data(n: int, dim: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """Features (memmap .npy), labels, planted (dup pairs, outlier rows), generated in chunks."""
    feats, labels_path, planted_path = (CACHE / f"scale_{n}_{dim}_{k}.npy" for k in ("x", "y", "planted"))
    if feats.exists() and labels_path.exists() and planted_path.exists():
        return feats, labels_path, planted_path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(AUDIT_CLUSTERS, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n_base = n - N_DUPS - N_OUTLIERS
    cluster = rng.integers(0, AUDIT_CLUSTERS, n)
    out = np.lib.format.open_memmap(feats.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n_base, 100_000):
        stop = min(start + 100_000, n_base)
        out[start:stop] = centres[cluster[start:stop]] + rng.normal(size=(stop - start, dim)).astype(np.float32) * 0.06
    sources = rng.choice(n_base, N_DUPS, replace=False)
    dups = np.arange(n_base, n_base + N_DUPS)
    out[dups] = out[sources] + rng.normal(size=(N_DUPS, dim)).astype(np.float32) * 0.003
    cluster[dups] = cluster[sources]
    outliers = np.arange(n_base + N_DUPS, n)
    out[outliers] = rng.normal(size=(N_OUTLIERS, dim)).astype(np.float32) / np.sqrt(dim)
    out.flush()
    del out
    feats.with_suffix(".tmp.npy").rename(feats)
    np.save(labels_path, (cluster % AUDIT_CLASSES).astype(np.int64))
    np.save(planted_path, np.concatenate([np.stack([sources, dups], 1).ravel(), outliers]))
    return feats, labels_path, planted_path
