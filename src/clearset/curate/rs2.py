"""RS2: repeated random sampling without replacement across rounds (methods.md, RS2 card).

Every epoch trains on a fresh r·N slice of one shuffled permutation of the whole dataset, so every
example is seen once before any repeats; when the permutation is used up a new one is drawn. The curated
"subset" is therefore every row plus a per-epoch sampler (``rs2_sampler``) that the trainer calls; the
learning-rate schedule spans epochs x r·N / batch iterations (the trainer sizes it from the sampler).
"""

from __future__ import annotations

import numpy as np

from .base import CurateData, Subset, ones, register_strategy


@register_strategy("rs2", exact=False, description="repeated random sampling: a fresh r·N slice every epoch, "
                   "without replacement across epochs (all rows returned, the trainer samples)")
def rs2(data: CurateData, n_keep: int, seed: int) -> Subset:
    return Subset(np.arange(data.n), ones(data.n), {"sampler": {"name": "rs2", "per_epoch": n_keep, "seed": seed}})
