"""The 1,797 real 8x8 handwritten digits bundled with scikit-learn, with a fixed stratified 80/20
train/test split (seed 0): data that needs no file and no network (``builtin:digits``, ``clearset demo``)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DIGITS_TEST_SHARE = 0.2


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as (1797, 8, 8) uint8 (0..16 scaled to 0..255) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    return images, d.target.astype(np.int64)


def digits_split() -> dict[str, np.ndarray]:
    """A stratified split fixed by seed 0: the same on every machine."""
    _, y = digits_arrays()
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        test[rng.permutation(members)[: int(round(DIGITS_TEST_SHARE * len(members)))]] = True
    return {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}
