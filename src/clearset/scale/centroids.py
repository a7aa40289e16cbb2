"""Centroids of a partition and the assignment of rows to them (pass A of clearset.scale.partition):
a flat exact search up to ``two_level`` centroids, above it a two-level search through coarse groups whose
candidate lists are learned from the k-means sample."""

from __future__ import annotations

import math

import numpy as np

from ..ops.kmeans import RERANK, spherical_kmeans
from ..ops.knn import knn
from .config import DEFAULT, PartitionConfig

CentroidIndex = tuple  # (centroids (k, D), coarse (g, D) or None, centroid ids by coarse group, group offsets)


def centroid_index(centroids: np.ndarray, seed: int, sample: np.ndarray | None = None, *,
                   config: PartitionConfig = DEFAULT) -> CentroidIndex:
    """The centroids, grouped for pass A when there are more than ``config.two_level`` of them: spherical k-means
    of the centroids into ceil(sqrt(k)) coarse groups. A row is then scored against the g coarse
    centroids and the candidates of its ``config.probe`` nearest groups: N·(g + probe·c)·D for lists of c
    centroids, instead of N·k·D.

    A group's candidates are its own centroids and, with ``sample`` (rows, L2-normalised), the two
    nearest centroids (exact) of every sample row that probes this group: the lists are learned from
    where rows fall, so a row's nearest centroid is in a group it probes even when that centroid's own
    coarse group is not (bench/scale/assign.py measures how often it still misses)."""
    centroids = np.asarray(centroids, np.float32)
    k = len(centroids)
    if k <= config.two_level:
        return centroids, None, None, None
    coarse, group, _ = spherical_kmeans(centroids, math.ceil(math.sqrt(k)), seed, niter=config.kmeans_iterations)
    coarse = coarse.astype(np.float32)
    found = [np.stack([group, np.arange(k)], 1)]  # (group, centroid)
    if sample is not None and len(sample):
        p = min(config.probe, len(coarse))
        for s in range(0, len(sample), config.chunk):
            x = np.asarray(sample[s : s + config.chunk], np.float32)
            _, near_c = knn(centroids, min(2, k), queries=x, exclude_self=False, rerank=RERANK)
            _, near_g = knn(coarse, p, queries=x, exclude_self=False, rerank=RERANK)
            g = np.repeat(near_g, near_c.shape[1], axis=1).ravel()
            c = np.tile(near_c, (1, p)).ravel()
            found.append(np.unique(np.stack([g, c], 1), axis=0))
    pairs = np.unique(np.concatenate(found), axis=0)  # sorted by group, then centroid
    offsets = np.searchsorted(pairs[:, 0], np.arange(len(coarse) + 1))
    return centroids, coarse, pairs[:, 1].astype(np.int64), offsets


def assign(index: CentroidIndex, x: np.ndarray, margin: float, probe: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) [home cluster, guest cluster or -1] and the similarity to the home centroid."""
    sim, ids = nearest_two(index, x, probe)
    out = ids.astype(np.int32)
    if ids.shape[1] < 2:
        return np.concatenate([out, np.full_like(out, -1)], 1), sim[:, 0]
    out[(ids[:, 1] < 0) | (sim[:, 0] - sim[:, 1] > margin), 1] = -1
    return out, sim[:, 0]


def nearest_two(index: CentroidIndex, x: np.ndarray, probe: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and ids (N, <=2) of each row's two most similar centroids (exactly, for a flat index;
    among the probed groups' members, for a grouped one)."""
    centroids, coarse, order, offsets = index
    if coarse is None:
        return knn(centroids, 2, queries=x, exclude_self=False, rerank=RERANK)
    n, p = len(x), min(probe, len(coarse))
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
