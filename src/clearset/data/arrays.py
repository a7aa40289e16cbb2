"""Row files: ``.npy`` arrays written a block of rows at a time with ``pwrite``.

Writing through a memory map would make every written page part of the process's resident memory;
writing through the file keeps memory flat however large the array grows. The result is a normal
``.npy`` that ``np.load(path, mmap_mode="r")`` opens without reading it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class _OpenFile:
    """An OS file descriptor closed once, explicitly or when collected."""

    fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        self.close()


class RowFile(_OpenFile):
    """A (rows, width) ``.npy`` file of ``dtype`` opened for writing rows at any position."""

    def __init__(self, path: Path, fd: int, offset: int, shape: tuple[int, int], dtype: np.dtype):
        self.path, self.fd, self.offset, self.shape, self.dtype = path, fd, offset, shape, np.dtype(dtype)
        self.row_bytes = shape[1] * self.dtype.itemsize

    @classmethod
    def create(cls, path: Path, shape: tuple[int, int], dtype) -> "RowFile":
        path.parent.mkdir(parents=True, exist_ok=True)
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # sparse file + header
        offset = header.offset
        del header
        return cls(path, os.open(path, os.O_RDWR), offset, shape, dtype)

    @classmethod
    def reopen(cls, path: Path) -> "RowFile | None":
        """Open an existing row file for more writes, or None if it is not a readable 2-D .npy."""
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if arr.ndim != 2:
            return None
        offset, shape, dtype = arr.offset, arr.shape, arr.dtype
        del arr
        return cls(path, os.open(path, os.O_RDWR), offset, shape, dtype)

    def write(self, start: int, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.shape[1] or start + len(rows) > self.shape[0]:
            raise ValueError(f"rows {rows.shape} at {start} do not fit {self.shape}")
        os.pwrite(self.fd, rows.tobytes(), self.offset + start * self.row_bytes)

    def sync(self) -> None:
        os.fsync(self.fd)


class RowReader(_OpenFile):
    """Rows of a 2-D ``.npy`` read with ``pread`` into fresh arrays: unlike a memory map, what has been
    read does not stay in the process's resident memory, so a pass over a file larger than RAM is flat."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        arr = np.load(self.path, mmap_mode="r")  # parses the header only
        if arr.ndim != 2:
            raise ValueError(f"{self.path}: expected a 2-D array, got shape {arr.shape}")
        self.offset, self.shape, self.dtype = arr.offset, arr.shape, arr.dtype
        del arr
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        """Contiguous rows ``[start:stop]`` (a block pass, e.g. vectors.check_finite), read like ``read``."""
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("RowReader takes contiguous row slices; use rows() for scattered rows")
        start, stop, _ = rows.indices(self.shape[0])
        return self.read(start, stop)

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.shape[0])
        want = max(0, stop - start) * self.row_bytes
        buf = bytearray(want)
        view, got = memoryview(buf), 0
        while got < want:  # pread may return short reads for large requests
            n = os.preadv(self.fd, [view[got:]], self.offset + start * self.row_bytes + got)
            if n <= 0:
                raise OSError(f"{self.path}: file ends before row {stop}")
            got += n
        return np.frombuffer(buf, dtype=self.dtype).reshape(-1, self.shape[1])

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows at sorted positions ``index`` (one read per row: for samples, not for passes)."""
        out = np.empty((len(index), self.shape[1]), self.dtype)
        for j, i in enumerate(index):
            out[j] = self.read(int(i), int(i) + 1)[0]
        return out

