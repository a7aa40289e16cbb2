"""Pillow's separable resampling as a matrix: ``W @ row`` resizes one axis exactly as ``Image.resize`` does,
so a batch of images is resized (or a crop of it taken) by two matrix products. Used by the duplicate
check's aligned views and by the corruptions."""

from __future__ import annotations

import numpy as np


def resample_matrix(in_size: int, out_size: int, box: tuple[float, float] | None = None,
                    kind: str = "bilinear") -> np.ndarray:
    """(out_size, in_size) weights of Pillow's separable resampling of the interval ``box`` (default the
    whole axis) onto ``out_size`` samples: ``kind`` "bilinear" (triangle filter widened when shrinking,
    i.e. antialiased) or "box". ``W @ row`` resizes one axis as ``Image.resize(..., box=...)`` does."""
    lo, hi = box if box is not None else (0.0, float(in_size))
    scale = (hi - lo) / out_size
    widen = max(scale, 1.0)
    support = (1.0 if kind == "bilinear" else 0.5) * widen
    w = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        centre = lo + (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        t = (np.arange(first, last) - centre + 0.5) / widen
        w[i, first:last] = np.maximum(1.0 - np.abs(t), 0.0) if kind == "bilinear" else ((t >= -0.5) & (t < 0.5))
        w[i] /= max(w[i].sum(), 1e-12)
    return w.astype(np.float32)
