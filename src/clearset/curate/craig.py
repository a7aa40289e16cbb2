"""CRAIG coresets (methods.md, Data-efficient augmentation card): per class, a weighted facility-location
coreset of the per-example gradient proxies g_i = softmax(f(x_i)) - onehot(y_i), from an un-augmented
pass of a model (here: a short linear-probe run on the embeddings).

Per class, greedy maximisation of F(S) = sum_i max_{j in S} (d_max - ||g_i - g_j||) by stochastic greedy
("lazier than lazy greedy": each step evaluates a seeded random sample of n/q·ln(100) candidates), with
the class quota proportional to its size. Each medoid's weight is the number of class members closest to
it, normalised so the kept weights average 1.

``craig-augment`` is the card's training mode: every image stays (weight 1) and the coreset is appended
again as strongly augmented copies (the subset file's ``augment`` column; the trainer applies crop, flip,
two RandAugment operations and random erase to those copies). ``keep`` is the coreset's share.
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


@register_strategy("craig-probe", needs=("features",),
                   description="per-class facility-location coresets of gradient proxies, weighted by cluster size",
                   differs="the gradient proxies come from a 2-epoch linear probe on frozen embeddings, not from "
                           "the network being trained, and the coreset is chosen once, not every R epochs")
def craig_probe(data: CurateData, n_keep: int, seed: int, epochs: int = 2) -> Subset:
    probs = probe_trajectory(data.normalised(), data.labels, data.n_classes, epochs=epochs, seed=seed)[-1]
    g = probs - np.eye(data.n_classes, dtype=np.float32)[data.labels]
    rows, weights = [], []
    for c, q in enumerate(quotas_by_class(data.labels, data.n_classes, n_keep)):
        if q == 0:
            continue
        members = np.flatnonzero(data.labels == c)
        picks, w = facility_location(g[members], int(q), seed + c)
        rows.append(members[picks])
        weights.append(w)
    kept, weight = np.concatenate(rows), np.concatenate(weights)
    return Subset(kept, weight / weight.mean(), {"epochs": epochs, "model": "linear probe on embeddings"})


@register_strategy("craig-augment-probe", needs=("features",), exact=False,
                   description="all images, plus strongly augmented copies of a CRAIG coreset of keep·N "
                               "(the data-efficient augmentation card's training mode)",
                   differs="the coreset is craig-probe's (linear-probe gradient proxies, chosen once), not one "
                           "re-selected from the training network's gradients")
def craig_augment_probe(data: CurateData, n_keep: int, seed: int, epochs: int = 2) -> Subset:
    core = craig_probe(data, n_keep, seed, epochs=epochs)
    return Subset(np.arange(data.n), np.ones(data.n, np.float32), {"augment_rows": np.sort(core.rows),
                                                                     "model": "linear probe on embeddings"})


STRATEGIES.rename("craig", "craig-probe", "CRAIG on linear-probe gradient proxies")
STRATEGIES.rename("craig-augment", "craig-augment-probe", "CRAIG-augment on linear-probe gradient proxies")
