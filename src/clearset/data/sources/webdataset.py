"""Tar shards in the WebDataset convention: members ``<key>.<image ext>`` and ``<key>.cls`` (the class
index as text), grouped by key. Read as a stream, one shard after another, never listed up front.

The target is one shard, a folder of shards, a folder of split folders of shards (``train/*.tar``,
``test/*.tar``: the folder names become the splits), or a pattern: a glob (``shards/*.tar``) and/or
brace ranges and lists (``shard-{000..009}.tar``, ``{train,test}/*.tar``). Members are only ever read
by byte range from the shard: a member name (``../x``, ``/etc/x``) never becomes a path, and links are
skipped and listed."""

from __future__ import annotations

import glob
import re
import tarfile
from pathlib import Path

from ...errors import LabelError, SourceError
from ..images import is_image_name
from .base import BRACE, SOURCES, Record, Source, UnitLog, listing_fingerprint, shard_files, split_shard_folders

LABEL_EXTENSIONS = (".cls", ".label")


def expand_braces(pattern: str) -> list[str]:
    """``a{0..2}b`` -> a0b a1b a2b (zero padding kept: {000..009}); ``{x,y}`` -> x y; nested left to right."""
    m = BRACE.search(pattern)
    if m is None:
        return [pattern]
    body, head, tail = m.group(1), pattern[: m.start()], pattern[m.end() :]
    r = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
    if r:
        a, b = int(r.group(1)), int(r.group(2))
        width = len(r.group(1)) if r.group(1).startswith("0") else 0
        step = 1 if b >= a else -1
        items = [str(i).zfill(width) for i in range(a, b + step, step)]
    elif "," in body:
        items = body.split(",")
    else:
        return [head + "{" + body + "}" + t for t in expand_braces(tail)]
    return [head + item + t for item in items for t in expand_braces(tail)]


def _key_and_ext(member: str) -> tuple[str, str]:
    head, _, base = member.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (dot + ext).lower()


@SOURCES.register("webdataset")
class WebDatasetSource(Source):
    name = "webdataset"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        by_split = self._find_shards(str(target))
        if not any(shards for _, shards in by_split):
            raise SourceError(f"{target}: no .tar shards found")
        compressed = [s for _, shards in by_split for s in shards if s.name.endswith((".gz", ".tgz"))]
        if compressed:
            raise SourceError(f"{compressed[0]}: compressed shards cannot be read by byte range; "
                              f"decompress them (gunzip) and ingest the .tar files")
        if by_split[0][0] is None:  # no split folders: --split names the one split
            by_split = [(self.single_split(), by_split[0][1])]
        else:
            chosen = self.select_splits([name for name, _ in by_split])
            by_split = [(name, shards) for name, shards in by_split if name in chosen]
        self.shards = [shard for _, shards in by_split for shard in shards]
        self.root = Path(_common_folder(self.shards))
        self._split_of = {self._unit(shard): name for name, shards in by_split for shard in shards}
        if self.user_classes:
            self.classes = self.resolve_classes(None)

    @staticmethod
    def _find_shards(target: str) -> list[tuple[str | None, list[Path]]]:
        """[(split or None, shards)]: split folders of a folder, else the shards a path or pattern names."""
        path = Path(target)
        if path.is_dir():
            top = shard_files(path)
            if top:
                return [(None, top)]
            folders = split_shard_folders(path)
            return [(name, shard_files(folder)) for name, folder in folders] or [(None, [])]
        if path.is_file():
            return [(None, [path])]
        found = sorted({Path(p) for pattern in expand_braces(target) for p in glob.glob(pattern)
                        if Path(p).is_file()})
        return [(None, found)]

    def _unit(self, shard: Path) -> str:
        return str(shard.relative_to(self.root))

    def records(self):
        log = UnitLog(self.problems)
        for unit in self.units():
            yield from self.unit_records(unit, log)
        self.units_done([log])

    def units(self):
        return [self._unit(shard) for shard in self.shards]

    def unit_records(self, unit, log):
        shard = self.root / unit
        try:
            yield from self._shard_records(shard, unit, log)
        except tarfile.TarError as e:
            raise SourceError(f"{shard}: not a readable tar file ({e})") from None

    def units_done(self, logs):
        self.classes = self.resolve_classes(None, max((log.max_label for log in logs), default=-1) + 1)

    def _shard_records(self, shard: Path, rel: str, log: UnitLog):
        split = self._split_of[rel]
        with tarfile.open(shard, mode="r|") as tf:  # stream mode: sequential reads only
            key, image, label = None, None, -1
            for ti in tf:
                if ti.issym() or ti.islnk():
                    log.problems.append({"source": f"{rel}:{ti.name}", "error": "a link, not a file: skipped"})
                    continue
                if not ti.isfile():
                    continue
                k, ext = _key_and_ext(ti.name)
                if k != key:
                    yield from self._emit(rel, split, key, image, label, log)
                    key, image, label = k, None, -1
                member = tf.extractfile(ti)
                data = member.read() if member is not None else b""
                if is_image_name(ti.name) and image is None:
                    image = (ti.name, ti.offset_data, ti.size, data)
                elif ext in LABEL_EXTENSIONS:
                    label = self._parse_label(data, f"{shard}:{ti.name}")
                    log.max_label = max(log.max_label, label)
            yield from self._emit(rel, split, key, image, label, log)

    def _emit(self, rel, split, key, image, label, log):
        if key is None:
            return
        if image is None:
            log.problems.append({"source": f"{rel}:{key}", "error": "sample has no image member"})
            return
        name, offset, size, data = image
        yield Record(split, label, f"{rel}:{name}@{offset}+{size}", data)

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


def _common_folder(paths: list[Path]) -> str:
    import os

    parents = [str(p.resolve().parent) for p in paths]
    return os.path.commonpath(parents) if parents else "."
