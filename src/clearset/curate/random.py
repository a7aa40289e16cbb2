"""Random baselines: ``random`` (uniform without replacement) and ``random-balanced`` (per-class quotas
proportional to class size, so rare classes keep their share exactly)."""

from __future__ import annotations

import numpy as np

from .base import CurateData, Subset, ones, quotas_by_class, register_strategy


@register_strategy("random", description="uniform random subset (the baseline every method must beat)")
def random_subset(data: CurateData, n_keep: int, seed: int) -> Subset:
    rows = np.sort(np.random.default_rng(seed).choice(data.n, n_keep, replace=False))
    return Subset(rows, ones(n_keep))


@register_strategy("random-balanced", description="random within each class, quotas proportional to class size")
def random_balanced(data: CurateData, n_keep: int, seed: int) -> Subset:
    rng = np.random.default_rng(seed)
    quotas = quotas_by_class(data.labels, data.n_classes, n_keep)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(data.labels == c), q, replace=False)
                                   for c, q in enumerate(quotas) if q]))
    return Subset(rows, ones(len(rows)))
