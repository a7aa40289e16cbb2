"""Data that ships with clearset and needs no files or network:

- ``builtin:digits``: the 1,797 real 8x8 handwritten digits bundled with scikit-learn (the offline
  default of ``clearset demo``), with a fixed stratified 80/20 train/test split (seed 0).
- ``builtin:fractals[?classes=10&per_class=100&size=64&seed=0&test=0.2]``: seeded IFS fractals.
"""

from __future__ import annotations

import numpy as np

from ...errors import SourceError
from ...io import hash_json
from ..digits import digits_arrays, digits_split
from ..fractals import FractalConfig, render
from .base import SOURCES, Record, Source


@SOURCES.register("builtin")
class BuiltinSource(Source):
    name = "builtin"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        self.which, _, query = target.partition("?")
        if self.which == "digits":
            if query:
                raise SourceError("builtin:digits takes no options")
            self.ids = {s: ids for s, ids in digits_split().items() if s in self.select_splits(["train", "test"])}
            self.classes = self.resolve_classes([str(i) for i in range(10)])
            self.spec = {"kind": "builtin", "name": "digits"}
        elif self.which == "fractals":
            self.cfg = FractalConfig.parse(query)
            by_split = self.cfg.ids_by_split()
            self.ids = {s: by_split[s] for s in self.select_splits(list(by_split))}
            self.classes = self.resolve_classes([f"fractal_{c}" for c in range(self.cfg.classes)])
            self.spec = {"kind": "builtin", "name": "fractals", "config": self.cfg.asdict()}
        else:
            raise SourceError(f"builtin:{self.which}: unknown builtin dataset; choose digits or fractals")

    def records(self):
        for split, ids in self.ids.items():
            for i in ids:
                i = int(i)
                if self.which == "digits":
                    images, labels = digits_arrays()
                    yield Record(split, int(labels[i]), f"digits:{i}", images[i])
                else:
                    yield Record(split, i // self.cfg.per_class, f"fractals:{i}", _FractalPayload(self.cfg, i))

    def counts(self):
        return {s: len(ids) for s, ids in self.ids.items()}

    def fingerprint(self):
        return hash_json(self.spec)

    def store_spec(self):
        return self.spec


class _FractalPayload:
    """Rendered lazily, on ingest's worker threads."""

    def __init__(self, cfg: FractalConfig, gid: int):
        self.cfg, self.gid = cfg, gid

    def __call__(self) -> np.ndarray:
        return render(self.cfg, self.gid)
