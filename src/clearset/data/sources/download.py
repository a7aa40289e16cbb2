"""``download:cifar10|cifar100|mnist|fashion-mnist``: fetched once through torchvision into a cache folder
(``$CLEARSET_CACHE`` or ``~/.cache/clearset``). The only source that uses the network; offline it fails
with one line that says what to do instead."""

from __future__ import annotations

from ...errors import SourceError
from ...io import hash_json
from ..torchvision_sets import DATASETS, arrays_of, cache_root, load_torchvision
from .base import SOURCES, Record, Source


@SOURCES.register("download")
class DownloadSource(Source):
    name = "download"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        if target not in DATASETS:
            raise SourceError(f"download:{target}: unknown dataset; choose one of {', '.join(DATASETS)}")
        self.dataset, self.root = target, cache_root()
        self.splits = self.select_splits(["train", "test"])
        self.parts = {s: load_torchvision(target, self.root, s == "train", download=True) for s in self.splits}
        self.classes = self.resolve_classes(list(self.parts[self.splits[0]].classes))

    def records(self):
        for split, ds in self.parts.items():
            data, labels = arrays_of(ds)
            for i in range(len(data)):
                yield Record(split, int(labels[i]), f"{split}:{i}", data[i])

    def counts(self):
        return {s: len(ds) for s, ds in self.parts.items()}

    def fingerprint(self):
        return hash_json({"download": self.dataset, "root": str(self.root)})

    def store_spec(self):
        return {"kind": "torchvision", "name": self.dataset, "root": str(self.root)}
