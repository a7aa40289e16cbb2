"""Rows of a split and their pixels as tensors: what every stage that trains or predicts on images
loads (train, distill, evaluate, the audit's pixel models). Takes a Workspace; imports none."""

from __future__ import annotations

import numpy as np
import torch

from .. import progress
from ..errors import ParameterError
from .images import resize_center


def split_rows(ws, split: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) and manifest indices (N,) of ``split`` (None: all), from the manifest alone."""
    m = ws.manifest(["index", "split", "label"])
    rows = m if split is None else m[m["split"] == split]
    if rows.empty:
        have = sorted(set(m["split"]))
        raise ParameterError(f"{ws.root}: no images in split {split!r} (splits here: {', '.join(have)})")
    return rows["label"].to_numpy(np.int64), rows["index"].to_numpy(np.int64)


def load_images(ws, index: np.ndarray, size: int, desc: str = "load") -> torch.Tensor:
    """uint8 images (N, 3, size, size) of the manifest rows ``index``, centre-resized."""
    out = np.empty((len(index), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(progress.bar(ws.store().iter_images(index.tolist()), total=len(index), desc=desc)):
        out[i] = resize_center(img, size)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def load_split(ws, split: str | None, size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """uint8 images (N, 3, size, size), labels (N,) and manifest indices (N,) of ``split`` (None: all)."""
    labels, index = split_rows(ws, split)
    return load_images(ws, index, size, desc=f"load {split or 'all'}"), labels, index
