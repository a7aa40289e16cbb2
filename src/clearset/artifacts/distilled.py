"""A distilled set, ``WS/distilled/<name>.npz`` (``clearset distill``): synthetic images in normalised
pixel space, their labels, the normalisation, the class names and the configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..io import hash_json, write_npz


@dataclass
class Distilled:
    """A synthetic training set: images in normalised pixel space (float32, (N, 3, H, W)), their labels,
    the normalisation that maps them back to pixels, the class names and the configuration."""

    images: np.ndarray
    labels: np.ndarray
    mean: np.ndarray  # (3,) in [0, 1] units
    std: np.ndarray
    classes: list[str]
    config: dict
    path: Path | None = None

    def pixels(self) -> np.ndarray:
        """uint8 (N, H, W, 3) images for viewing (values outside the valid range are clipped)."""
        x = self.images * self.std[None, :, None, None] + self.mean[None, :, None, None]
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)

    @property
    def key(self) -> str:
        """The distillation's cache key (a hash of the pixels for a set made outside ``clearset distill``)."""
        return self.config.get("key") or hash_json(self.images.round(5).tolist())

    @property
    def ipc(self) -> int:
        return int(np.bincount(self.labels).max())


def save_distilled(d: Distilled, path: str | Path) -> Path:
    """Write a distilled set as .npz (atomically); ``load_distilled`` reads it back unchanged."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ParameterError(f"{path}: a distilled set is written as .npz")
    write_npz(path, images=d.images, labels=d.labels, mean=d.mean, std=d.std,
                     classes=np.array(d.classes, dtype=str), config=np.array(json.dumps(d.config, sort_keys=True)))
    return path


def load_distilled(path: str | Path) -> Distilled:
    """A distilled set written by ``clearset distill`` (or ``save_distilled``)."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: distilled set not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return Distilled(z["images"], z["labels"], z["mean"], z["std"], [str(c) for c in z["classes"]],
                             json.loads(str(z["config"])), path)
    except (KeyError, ValueError, OSError) as exc:
        raise ParameterError(f"{path}: not a distilled set ({exc}); write one with `clearset distill`") from None
