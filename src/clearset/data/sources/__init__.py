"""Data sources, one file each, registered by name when this package is imported (see base.py);
``open_source`` turns a spec into one."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import SourceError
from ...registry import import_submodules
from .base import BRACE, SOURCES, Record, Source, split_shard_folders

import_submodules(__name__)  # every file here registers its entries: adding one is a file and a decorator


def open_source(spec: str | os.PathLike, *, split: list[str] | str | None = None,
                classes: list[str] | None = None) -> Source:
    """Turn a spec into a Source.

    Specs: a folder (ImageFolder layout, or tar shards inside), a ``.csv``/``.parquet`` manifest, an
    ``.npz`` of arrays, a ``.tar`` shard, or ``name:target`` for any registered source, e.g.
    ``builtin:digits``, ``builtin:fractals?classes=10``, ``download:cifar10``, ``webdataset:shards/``.
    """
    if isinstance(split, str):
        split = [s.strip() for s in split.split(",") if s.strip()]
    spec = str(spec)
    name, sep, target = spec.partition(":")
    if sep and name in SOURCES and not Path(spec).exists():
        return SOURCES.get(name)(target, split=split, classes=classes)
    if not Path(spec).exists() and _is_shard_pattern(spec):
        return SOURCES.get("webdataset")(spec, split=split, classes=classes)
    return SOURCES.get(detect_kind(Path(spec)))(spec, split=split, classes=classes)


def _is_shard_pattern(spec: str) -> bool:
    """A glob or brace pattern of tar shards (``shards/*.tar``, ``shard-{000..009}.tar``)."""
    return ".tar" in spec and (any(c in spec for c in "*?[") or bool(BRACE.search(spec)))


def detect_kind(path: Path) -> str:
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder (or unknown source; known: "
                          f"{', '.join(n + ':' for n in SOURCES.names())})")
    suffix = "".join(path.suffixes[-2:]).lower() if path.is_file() else ""
    if path.is_dir():
        has_tars = any(p.suffix == ".tar" for p in path.iterdir())
        return "webdataset" if has_tars or split_shard_folders(path) else "imagefolder"
    if suffix.endswith(".npz"):
        return "npz"
    if suffix.endswith((".csv", ".parquet", ".tsv")):
        return "table"
    if suffix.endswith((".tar", ".tar.gz", ".tgz")):
        return "webdataset"
    raise SourceError(f"{path}: unknown source format; give a folder, .csv, .parquet, .npz or .tar")


__all__ = ["SOURCES", "Record", "Source", "detect_kind", "open_source"]
