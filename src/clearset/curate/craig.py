"""CRAIG coresets (methods.md, Data-efficient augmentation card): per class, a weighted facility-location
coreset of the per-example gradient proxies g_i = softmax(f(x_i)) - onehot(y_i), from an un-augmented
pass of a model: a short linear-probe run on the embeddings (``-probe``), or networks trained on the
pixels (``-pixel``, ``clearset score --method craig``).

Per class, greedy maximisation of F(S) = sum_i max_{j in S} (d_max - ||g_i - g_j||) by stochastic greedy
("lazier than lazy greedy": each step evaluates a seeded random sample of n/q·ln(100) candidates), with
the class quota proportional to its size. Each medoid's weight is the number of class members closest to
it, normalised so the kept weights average 1.

``craig-augment`` is the card's training mode: every image stays (weight 1) and the coreset is appended
again as strongly augmented copies (the subset file's ``augment`` column; the trainer applies crop, flip,
two RandAugment operations and random erase to those copies). ``keep`` is the coreset's share.
``random-augment`` is the card's baseline: the same, with a random keep·N instead of the coreset.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import STRATEGIES, CurateData, Subset, quotas_by_class, register_strategy
from .scores import probe_trajectory


def facility_location(g: np.ndarray, q: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(medoid rows (q,), weights (q,) = members served) of a greedy facility-location coreset of g."""
    n = len(g)
    q = min(q, n)
    gt = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32))
    rng = np.random.default_rng(seed)
    norms = (gt ** 2).sum(1)
    d_max = float(2 * norms.max().sqrt()) + 1e-6  # an upper bound of every distance
    cur = torch.zeros(n)  # current best similarity of each point to the chosen set
    chosen = np.zeros(n, bool)
    picks = []
    sample = max(1, min(n, math.ceil(n / q * math.log(100))))
    for _ in range(q):
        free = np.flatnonzero(~chosen)
        cand = torch.from_numpy(rng.choice(free, min(sample, len(free)), replace=False))
        sim = d_max - torch.cdist(gt[cand], gt)  # (s, n)
        gains = (sim - cur).clamp_min(0).sum(1)
        best = int(cand[int(gains.argmax())])
        picks.append(best)
        chosen[best] = True
        cur = torch.maximum(cur, d_max - torch.cdist(gt[best : best + 1], gt)[0])
    chosen_rows = np.array(picks)
    nearest = torch.cdist(gt, gt[torch.from_numpy(chosen_rows)]).argmin(1).numpy()
    return chosen_rows, np.bincount(nearest, minlength=len(chosen_rows)).astype(np.float32)


def craig_coreset(g: np.ndarray, labels: np.ndarray, n_classes: int, n_keep: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class (quota proportional to its size), facility-location medoids of the gradient proxies ``g``;
    (rows, weights normalised to mean 1)."""
    rows, weights = [], []
    for c, q in enumerate(quotas_by_class(labels, n_classes, n_keep)):
        if q == 0:
            continue
        members = np.flatnonzero(labels == c)
        picks, w = facility_location(g[members], int(q), seed + c)
        rows.append(members[picks])
        weights.append(w)
    kept, weight = np.concatenate(rows), np.concatenate(weights)
    return kept, weight / weight.mean()


def probe_gradients(data: CurateData, seed: int, epochs: int) -> np.ndarray:
    probs = probe_trajectory(data.normalised(), data.labels, data.n_classes, epochs=epochs, seed=seed)[-1]
    return probs - np.eye(data.n_classes, dtype=np.float32)[data.labels]


def pixel_gradients(data: CurateData) -> np.ndarray:
    assert data.craig_gradients is not None
    return np.nan_to_num(data.craig_gradients).astype(np.float32)


def augment(data: CurateData, core: Subset) -> Subset:
    """All images (weight 1), plus the coreset again as strongly augmented copies."""
    return Subset(np.arange(data.n), np.ones(data.n, np.float32), {"augment_rows": np.sort(core.rows),
                                                                     "model": core.info["model"]})


@register_strategy("craig-probe", needs=("features",),
                   description="per-class facility-location coresets of gradient proxies, weighted by cluster size",
                   differs="the gradient proxies come from a 2-epoch linear probe on frozen embeddings, not from "
                           "the network being trained, and the coreset is chosen once, not every R epochs")
def craig_probe(data: CurateData, n_keep: int, seed: int, epochs: int = 2) -> Subset:
    kept, weight = craig_coreset(probe_gradients(data, seed, epochs), data.labels, data.n_classes, n_keep, seed)
    return Subset(kept, weight, {"epochs": epochs, "model": "linear probe on embeddings"})


@register_strategy("craig-pixel", needs=("craig_gradients",),
                   description="CRAIG coresets of the gradient proxies of networks trained on the pixels "
                               "(clearset score --method craig)",
                   differs="the coreset is chosen once, from networks trained for a few epochs on all the "
                           "images, not re-selected from the network being trained every epoch")
def craig_pixel(data: CurateData, n_keep: int, seed: int) -> Subset:
    kept, weight = craig_coreset(pixel_gradients(data), data.labels, data.n_classes, n_keep, seed)
    return Subset(kept, weight, {"model": "networks trained on the pixels"})


@register_strategy("craig-augment-probe", needs=("features",), exact=False,
                   description="all images, plus strongly augmented copies of a CRAIG coreset of keep·N "
                               "(the data-efficient augmentation card's training mode)",
                   differs="the coreset is craig-probe's (linear-probe gradient proxies, chosen once), not one "
                           "re-selected from the training network's gradients")
def craig_augment_probe(data: CurateData, n_keep: int, seed: int, epochs: int = 2) -> Subset:
    return augment(data, craig_probe(data, n_keep, seed, epochs=epochs))


@register_strategy("craig-augment-pixel", needs=("craig_gradients",), exact=False,
                   description="all images, plus strongly augmented copies of a craig-pixel coreset of keep·N",
                   differs="the coreset is chosen once, from networks trained for a few epochs on all the "
                           "images, not re-selected from the training network's gradients")
def craig_augment_pixel(data: CurateData, n_keep: int, seed: int) -> Subset:
    return augment(data, craig_pixel(data, n_keep, seed))


@register_strategy("random-augment", exact=False,
                   description="all images, plus strongly augmented copies of a random keep·N (the data-efficient "
                               "augmentation card's baseline for craig-augment)")
def random_augment(data: CurateData, n_keep: int, seed: int) -> Subset:
    core = np.random.default_rng(seed).choice(data.n, n_keep, replace=False)
    return augment(data, Subset(core, np.ones(n_keep, np.float32), {"model": "none (random rows)"}))


STRATEGIES.rename("craig", "craig-probe", "CRAIG on linear-probe gradient proxies")
STRATEGIES.rename("craig-augment", "craig-augment-probe", "CRAIG-augment on linear-probe gradient proxies")
