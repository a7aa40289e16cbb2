"""Checks and normalisations of feature vectors shared by every consumer of features (probe, audit,
curate, train, distill)."""

from __future__ import annotations

from typing import Any

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


def non_finite_rows(x: Any, chunk: int = BLOCK_ROWS) -> np.ndarray:
    """Indices of the rows of ``x`` holding NaN or inf, read a block of rows at a time: ``x`` is anything
    with ``len`` and contiguous row slices (an array, a memmap, a data.arrays.RowReader)."""
    bad = []
    for start in range(0, len(x), chunk):
        block = np.asarray(x[start : start + chunk])
        ok = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if not ok.all():
            bad.append(start + np.flatnonzero(~ok))
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def check_finite(x: Any, what: str, hint: str = "recompute them (e.g. `clearset embed --force "
                 "--precision fp32`)") -> None:
    """Raise ParameterError naming the rows of ``x`` that hold NaN or inf (the first few and how many)."""
    from .errors import ParameterError

    bad = non_finite_rows(x)
    if len(bad):
        shown = ", ".join(str(int(r)) for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ParameterError(f"{what} holds NaN or inf in {len(bad)} row(s), at row {shown}; {hint}")


def check_probabilities(p: np.ndarray, what: str, hint: str = "recompute them") -> None:
    """Raise ParameterError unless every row of ``p`` is a probability vector: finite, non-negative,
    summing to 1 (within 1e-3)."""
    from .errors import ParameterError

    check_finite(p, what, hint=hint)
    if (p < 0).any() or not np.allclose(p.sum(1), 1, atol=1e-3):
        raise ParameterError(f"{what}: rows must be probabilities (non-negative, each summing to 1)")
