"""An ``.npz`` of image arrays: ``x_<split>``/``y_<split>`` pairs (HW or HWC uint8), or plain ``x``/``y``;
optional ``class_names``. Example: ../shared/data/cifar10.npz."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...errors import LabelError, SourceError
from ...io import fingerprint_path
from .base import SOURCES, Record, Source


@SOURCES.register("npz")
class NpzSource(Source):
    name = "npz"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        self.path = Path(target)
        try:
            self.z = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise SourceError(f"{self.path}: cannot read as .npz ({e or 'empty file'})") from None
        keys = set(self.z.files)
        splits = [k[2:] for k in self.z.files if k.startswith("x_")]
        if splits:
            chosen = self.select_splits(splits)
            self.parts = [(s, f"x_{s}", f"y_{s}" if f"y_{s}" in keys else None) for s in chosen]
        elif "x" in keys:
            self.parts = [(self.single_split(), "x", "y" if "y" in keys else None)]
        else:
            raise SourceError(f"{self.path}: no image arrays; expected x_train/y_train (and x_test/y_test) "
                              f"or x/y, found {', '.join(sorted(keys)) or 'nothing'}")
        self._labels = {}
        self._x: dict[str, np.ndarray] = {}
        max_label = -1
        for split, xk, yk in self.parts:
            n = self._check_images(xk)
            if yk is None:
                self._labels[split] = np.full(n, -1, dtype=np.int64)
                continue
            y = self._member(yk)
            if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
                raise LabelError(f"{self.path}: {yk} must be {n} integers (one per image in {xk}), "
                                 f"got shape {y.shape} dtype {y.dtype}")
            y = y.astype(np.int64)
            if len(y) and y.min() < -1:
                raise LabelError(f"{self.path}: {yk} holds negative label {int(y.min())}")
            self._labels[split] = y
            max_label = max(max_label, int(y.max(initial=-1)))
        found = [str(c) for c in self._member("class_names")] if "class_names" in keys else None
        self.classes = self.resolve_classes(found, max_label + 1)
        if max_label >= len(self.classes):
            raise LabelError(f"{self.path}: label {max_label} is out of range for {len(self.classes)} classes")

    def _check_images(self, key: str) -> int:
        x = self._x[key] = self._member(key)  # read once: npz members are decompressed on every access
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3, 4)):
            raise SourceError(f"{self.path}: {key} must be (N, H, W) or (N, H, W, C) images, got {x.shape}; "
                              f"channels-first arrays need transposing to channels-last")
        return len(x)

    def _member(self, key: str) -> np.ndarray:
        """One array of the archive; never unpickled (object arrays are refused, naming the member)."""
        try:
            return self.z[key]
        except ValueError as e:
            if "allow_pickle" in str(e) or "pickled" in str(e):
                raise SourceError(f"{self.path}: {key} is an object (pickled) array, which clearset never loads; "
                                  f"save it as a numeric array (e.g. np.stack of uint8 images)") from None
            raise SourceError(f"{self.path}: cannot read {key} ({e})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise SourceError(f"{self.path}: cannot read {key} ({e})") from None

    def records(self):
        for split, xk, _ in self.parts:
            x = self._x[xk]
            labels = self._labels[split]
            for i in range(len(x)):
                yield Record(split, int(labels[i]), f"{xk}:{i}", x[i])

    def counts(self):
        return {split: len(self._labels[split]) for split, _, _ in self.parts}

    def fingerprint(self):
        return fingerprint_path(self.path)

    def store_spec(self):
        return {"kind": "npz", "path": str(self.path.resolve())}
