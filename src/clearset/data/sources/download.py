"""``download:cifar10|cifar100|mnist|fashion-mnist``: fetched once through torchvision into a cache folder
(``$CLEARSET_CACHE`` or ``~/.cache/clearset``). The only source that uses the network; offline it fails
with one line that says what to do instead."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np

from ...errors import DownloadError, SourceError
from ...workspace import hash_json
from ..images import decode
from ..store import STORES, ImageStore, split_locator
from .base import SOURCES, Record, Source

DATASETS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
TIMEOUT_S = 20


def cache_root() -> Path:
    return Path(os.environ.get("CLEARSET_CACHE", Path.home() / ".cache" / "clearset")) / "downloads"


def load_torchvision(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    cls = getattr(tvd, DATASETS[name])
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT_S)  # a dead network fails in seconds, not minutes
    try:
        return cls(str(root / name), train=train, download=download)
    except (OSError, RuntimeError) as e:
        if not download:
            raise SourceError(f"{root / name}: the downloaded {name} files are gone or damaged ({e}); "
                              f"ingest download:{name} again") from None
        raise DownloadError(
            f"download:{name}: could not fetch it ({type(e).__name__}: {str(e)[:120]}). This machine looks "
            f"offline: download {name} on a machine with network access and ingest the folder or .npz here"
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def arrays_of(ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
    return data, np.asarray(ds.targets, dtype=np.int64)


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


@STORES.register("torchvision")
class TorchvisionStore(ImageStore):
    def __init__(self, spec, locators):
        super().__init__(spec, locators)
        self._data: dict[str, np.ndarray] = {}

    def read(self, locator):
        split, i = split_locator(locator)
        if split not in self._data:
            ds = load_torchvision(self.spec["name"], Path(self.spec["root"]), split == "train", download=False)
            self._data[split] = arrays_of(ds)[0]
        return decode(self._data[split][i])
