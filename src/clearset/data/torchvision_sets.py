"""The datasets torchvision can download (``download:cifar10`` ...): fetching them once into the cache, and
reading their arrays back (the source and the image store share this)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np

from ..errors import DownloadError, SourceError

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
