"""Tar shards in the WebDataset convention: members ``<key>.<image ext>`` and ``<key>.cls`` (the class
index as text), grouped by key. Read as a stream, one shard after another, never listed up front."""

from __future__ import annotations

import tarfile
from pathlib import Path

from ...errors import LabelError, SourceError
from ..images import is_image_name
from .base import SOURCES, Record, Source, UnitLog, listing_fingerprint

LABEL_EXTENSIONS = (".cls", ".label")


def _key_and_ext(member: str) -> tuple[str, str]:
    head, _, base = member.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (dot + ext).lower()


@SOURCES.register("webdataset")
class WebDatasetSource(Source):
    name = "webdataset"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        path = Path(target)
        if path.is_dir():
            self.root, self.shards = path, sorted(p for p in path.iterdir() if p.suffix == ".tar")
        elif path.is_file():
            self.root, self.shards = path.parent, [path]
        else:
            self.root, self.shards = path.parent, sorted(path.parent.glob(path.name))
        if not self.shards:
            raise SourceError(f"{target}: no .tar shards found")
        compressed = [s for s in self.shards if s.name.endswith((".gz", ".tgz"))]
        if compressed:
            raise SourceError(f"{compressed[0]}: compressed shards cannot be read by byte range; "
                              f"decompress them (gunzip) and ingest the .tar files")
        self.split_name = self.single_split()
        if self.user_classes:
            self.classes = self.resolve_classes(None)

    def records(self):
        log = UnitLog(self.problems)
        for unit in self.units():
            yield from self.unit_records(unit, log)
        self.units_done([log])

    def units(self):
        return [str(shard.relative_to(self.root)) for shard in self.shards]

    def unit_records(self, unit, log):
        shard = self.root / unit
        try:
            yield from self._shard_records(shard, unit, log)
        except tarfile.TarError as e:
            raise SourceError(f"{shard}: not a readable tar file ({e})") from None

    def units_done(self, logs):
        self.classes = self.resolve_classes(None, max((log.max_label for log in logs), default=-1) + 1)

    def _shard_records(self, shard: Path, rel: str, log: UnitLog):
        with tarfile.open(shard, mode="r|") as tf:  # stream mode: sequential reads only
            key, image, label = None, None, -1
            for ti in tf:
                if not ti.isfile():
                    continue
                k, ext = _key_and_ext(ti.name)
                if k != key:
                    yield from self._emit(rel, key, image, label, log)
                    key, image, label = k, None, -1
                data = tf.extractfile(ti).read()
                if is_image_name(ti.name) and image is None:
                    image = (ti.name, ti.offset_data, ti.size, data)
                elif ext in LABEL_EXTENSIONS:
                    label = self._parse_label(data, f"{shard}:{ti.name}")
                    log.max_label = max(log.max_label, label)
            yield from self._emit(rel, key, image, label, log)

    def _emit(self, rel, key, image, label, log):
        if key is None:
            return
        if image is None:
            log.problems.append({"source": f"{rel}:{key}", "error": "sample has no image member"})
            return
        name, offset, size, data = image
        yield Record(self.split_name, label, f"{rel}:{name}@{offset}+{size}", data)

    def _parse_label(self, data: bytes, where: str) -> int:
        text = data.decode("utf-8", "replace").strip()
        try:
            label = int(text)
        except ValueError:
            raise LabelError(f"{where}: expected an integer class index, got {text[:40]!r}") from None
        if label < -1 or (self.user_classes and label >= len(self.user_classes)):
            raise LabelError(f"{where}: label {label} is out of range")
        return label

    def fingerprint(self):
        return listing_fingerprint(self.root, self.shards)

    def store_spec(self):
        return {"kind": "tar", "root": str(self.root.resolve())}
