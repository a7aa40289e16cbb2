"""Normalisations of feature vectors shared by the probe and the audit."""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def normalise_features(x: np.ndarray) -> np.ndarray:
    """Signed square root, then L2 normalisation per row (the CNN-features-off-the-shelf recipe):
    the representation the linear probe and every audit check compare."""
    x = np.asarray(x, dtype=np.float32)
    return l2_normalise(np.sign(x) * np.sqrt(np.abs(x)))
