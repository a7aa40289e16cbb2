"""Data sources, one file each, registered by name (see base.py)."""

from .base import SOURCES, Record, Source, open_source

_loaded = False


def load_all() -> None:
    """Import every source module so its registration runs (kept lazy: torchvision loads on demand)."""
    global _loaded
    if not _loaded:
        from . import builtin, download, fractals, imagefolder, npz, table, webdataset  # noqa: F401

        _loaded = True


__all__ = ["SOURCES", "Record", "Source", "open_source", "load_all"]
