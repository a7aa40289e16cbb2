"""ImageStore: uint8 RGB pixels by manifest index, whatever the source.

A workspace's ``source.json`` holds a store spec (``{"kind": ..., ...}``) and the manifest's ``source``
column holds one locator per image. Stages never open files themselves: they ask the store.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..engines.local import ordered_map
from ..errors import WorkspaceError
from ..registry import Registry
from .digits import digits_arrays
from .fractals import FractalConfig, render
from .images import decode
from .torchvision_sets import arrays_of, load_torchvision

STORES: Registry[type["ImageStore"]] = Registry("image store", listing="stores")


class ImageStore:
    """Random access to decoded images. Subclasses implement ``read(locator)``."""

    def __init__(self, spec: dict, locators: Sequence[str]):
        self.spec = spec
        self.locators = locators

    def __len__(self) -> int:
        return len(self.locators)

    def read(self, locator: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> np.ndarray:
        """The RGB uint8 (H, W, 3) image at manifest ``index``."""
        return self.read(self.locators[int(index)])

    def iter_images(self, indices: Iterable[int], *, threads: int | None = None,
                    transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """Decode (and optionally transform) images on worker threads, yielding them in order."""
        def work(i: int) -> np.ndarray:
            img = self.load(i)
            return transform(img) if transform is not None else img

        return ordered_map(work, indices, threads=threads)


class ParquetColumn(Sequence):
    """One column of a parquet file as a read-only sequence, read one row group at a time as rows are
    asked for (the last ``keep`` groups cached): the locators of a manifest larger than memory. Cheap
    for the in-order access of embed and ingest; random access reads a row group per miss."""

    def __init__(self, path: str | Path, column: str, keep: int = 2):
        import pyarrow.parquet as pq

        self.column, self.keep = column, keep
        self._file = pq.ParquetFile(path)  # read under the lock only
        meta = self._file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._cache: OrderedDict[int, list] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        g = int(np.searchsorted(self._starts, i, side="right")) - 1
        with self._lock:
            rows = self._cache.get(g)
            if rows is None:
                rows = self._file.read_row_group(g, columns=[self.column]).column(0).to_pylist()
                self._cache[g] = rows
                while len(self._cache) > self.keep:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(g)
        return rows[i - self._starts[g]]


def open_store(spec: dict, locators: Sequence[str]) -> ImageStore:
    """The store of a workspace's ``source.json`` spec. Every kind lives in this file, so opening a store
    never imports the sources."""
    return STORES.get(spec["kind"])(spec, locators)


def split_locator(locator: str) -> tuple[str, int]:
    key, _, pos = locator.rpartition(":")
    return key, int(pos)


@STORES.register("npz")
class NpzStore(ImageStore):
    """Arrays in an .npz; locator ``<array name>:<row>`` (e.g. ``x_train:123``)."""

    def __init__(self, spec, locators):
        super().__init__(spec, locators)
        self._arrays: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def array(self, key: str) -> np.ndarray:
        with self._lock:
            if key not in self._arrays:
                path = Path(self.spec["path"])
                if not path.exists():
                    raise WorkspaceError(f"{path}: the .npz this workspace was ingested from is gone")
                with np.load(path, allow_pickle=False) as z:
                    self._arrays[key] = z[key]
            return self._arrays[key]

    def read(self, locator):
        key, pos = split_locator(locator)
        return decode(self.array(key)[pos], what=f"{self.spec['path']}[{locator}]")

    def iter_images(self, indices, *, threads=None, transform=None):
        # rows of an in-memory array: handing each to a thread costs more than reading it
        return super().iter_images(indices, threads=threads or 1, transform=transform)


@STORES.register("files")
class FileStore(ImageStore):
    """Image files; locator = path relative to ``root`` (or absolute)."""

    def read(self, locator):
        path = Path(self.spec["root"]) / locator
        return decode(path, what=str(path))


@STORES.register("tar")
class TarStore(ImageStore):
    """Members of uncompressed tar shards; locator ``<shard>:<member>@<offset>+<size>`` (byte range)."""

    def __init__(self, spec, locators):
        super().__init__(spec, locators)
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def _fd(self, shard: str) -> int:
        with self._lock:
            if shard not in self._fds:
                self._fds[shard] = os.open(Path(self.spec["root"]) / shard, os.O_RDONLY)
            return self._fds[shard]

    def read(self, locator):
        where, _, span = locator.rpartition("@")
        shard, _, member = where.partition(":")
        offset, size = (int(v) for v in span.split("+"))
        data = os.pread(self._fd(shard), size, offset)  # pread: safe from many threads at once
        return decode(data, what=f"{shard}:{member}")

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


@STORES.register("builtin")
class BuiltinStore(ImageStore):
    """Generated pixels: the bundled digits or seeded fractals; locator ``<name>:<id>``."""

    def __init__(self, spec, locators):
        super().__init__(spec, locators)
        self.cfg = FractalConfig(**spec["config"]) if spec["name"] == "fractals" else None

    def read(self, locator):
        _, i = split_locator(locator)
        if self.cfg is not None:
            return render(self.cfg, i)
        return decode(digits_arrays()[0][i])


@STORES.register("torchvision")
class TorchvisionStore(ImageStore):
    """Arrays of a dataset torchvision downloaded into the cache; locator ``<split>:<row>``."""

    def __init__(self, spec, locators):
        super().__init__(spec, locators)
        self._data: dict[str, np.ndarray] = {}

    def read(self, locator):
        split, i = split_locator(locator)
        if split not in self._data:
            ds = load_torchvision(self.spec["name"], Path(self.spec["root"]), split == "train", download=False)
            self._data[split] = arrays_of(ds)[0]
        return decode(self._data[split][i])
