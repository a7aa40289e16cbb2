"""Normalisations of feature vectors shared by the probe and the audit."""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


BLOCK_ROWS = 65536


def normalise_features(x: np.ndarray) -> np.ndarray:
    """Signed square root, then L2 normalisation per row (the CNN-features-off-the-shelf recipe):
    the representation the linear probe and every audit check compare. Works a block of rows at a time
    into one float32 output, so a memory-mapped input costs one copy, not four temporaries."""
    if len(x) <= BLOCK_ROWS:
        x = np.asarray(x, dtype=np.float32)
        return l2_normalise(np.sign(x) * np.sqrt(np.abs(x)))
    out = np.empty(np.shape(x), dtype=np.float32)
    for s in range(0, len(x), BLOCK_ROWS):
        b = np.asarray(x[s : s + BLOCK_ROWS], dtype=np.float32)
        out[s : s + BLOCK_ROWS] = l2_normalise(np.sign(b) * np.sqrt(np.abs(b)))
    return out
