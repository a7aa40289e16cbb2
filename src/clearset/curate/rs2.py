"""RS2: repeated random sampling without replacement across rounds (methods.md, RS2 card).

Every epoch trains on a fresh r·N slice of one shuffled permutation of the whole dataset, so every
example is seen once before any repeats; when the permutation is used up a new one is drawn. The curated
"subset" is therefore every row plus a per-epoch sampler (``rs2_sampler``) that the trainer calls; the
learning-rate schedule spans epochs x r·N / batch iterations (the trainer sizes it from the sampler).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import CurateData, Subset, ones, register_strategy


def rs2_sampler(n: int, n_per_epoch: int, seed: int):
    """A stateless sampler: epoch e takes items [e·m, (e+1)·m) of the stream of permutations p_0, p_1, ...,
    each p_k seeded by (seed, k) -- so a resumed run draws exactly what an uninterrupted one would."""
    m = max(1, min(n_per_epoch, n))

    def perm(k: int) -> torch.Tensor:
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + 7919 * k + 17))

    def sample(epoch: int, gen: torch.Generator) -> torch.Tensor:  # gen unused: the stream is the state
        start = epoch * m
        k, offset = divmod(start, n)
        out = perm(k)[offset : offset + m]
        if len(out) < m:
            out = torch.cat([out, perm(k + 1)[: m - len(out)]])
        return out

    return sample


@register_strategy("rs2", exact=False, description="repeated random sampling: a fresh r·N slice every epoch, "
                   "without replacement across epochs (all rows returned, the trainer samples)")
def rs2(data: CurateData, n_keep: int, seed: int) -> Subset:
    return Subset(np.arange(data.n), ones(data.n), {"sampler": {"name": "rs2", "per_epoch": n_keep, "seed": seed}})
