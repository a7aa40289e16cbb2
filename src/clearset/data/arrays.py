"""Row files: ``.npy`` arrays written a block of rows at a time with ``pwrite``.

Writing through a memory map would make every written page part of the process's resident memory;
writing through the file keeps memory flat however large the array grows. The result is a normal
``.npy`` that ``np.load(path, mmap_mode="r")`` opens without reading it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class RowFile:
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

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        self.close()
