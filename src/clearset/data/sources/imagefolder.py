"""A folder of class subfolders (``root/<class>/**/<image>``), optionally under split folders
(``root/train/<class>/...``, ``root/test/<class>/...``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ...errors import SourceError, param
from ..images import is_image_name
from .base import SOURCES, SPLIT_DIRS, Record, Source, listing_fingerprint

log = logging.getLogger("clearset")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p.name)
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


@SOURCES.register("imagefolder")
class ImageFolderSource(Source):
    name = "imagefolder"

    def __init__(self, target, **kw):
        super().__init__(target, **kw)
        self.root = Path(target)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: not a folder")
        top = _subdirs(self.root)
        if not top:
            raise SourceError(f"{self.root}: no class folders; expected {self.root}/<class>/<image files>")
        split_layout = all(p.name.lower() in SPLIT_DIRS for p in top) and any(_subdirs(p) for p in top)
        if split_layout:
            order = list(dict.fromkeys(SPLIT_DIRS.values()))  # train, val, test
            by_split = dict(sorted(((SPLIT_DIRS[p.name.lower()], p) for p in top), key=lambda kv: order.index(kv[0])))
            chosen = self.select_splits(list(by_split))
            self._split_roots = [(s, by_split[s]) for s in chosen]
        else:
            self._split_roots = [(self.single_split(), self.root)]
        names = sorted({d.name for _, r in self._split_roots for d in _subdirs(r)})
        if self.user_classes and sorted(self.user_classes) != names:
            raise SourceError(f"{param('classes')} must list the class folders of {self.root} ({', '.join(names)}) "
                              f"in the order you want")
        self.classes = self.resolve_classes(list(self.user_classes) if self.user_classes else names)
        lookup = {c: i for i, c in enumerate(self.classes)}
        self._items: list[tuple[str, int, Path]] = []
        for split, root in self._split_roots:
            for d in _subdirs(root):
                files = _images_under(d)
                if not files:
                    self.problems.append({"source": str(d), "error": "empty class folder (no image files)"})
                self._items += [(split, lookup[d.name], f) for f in files]
            stray = [p for p in root.iterdir() if p.is_file() and is_image_name(p.name)]
            if stray:
                log.warning("%s: %d image(s) directly in the folder, outside any class folder, ignored",
                            root, len(stray))

    def records(self):
        for split, label, path in self._items:
            yield Record(split, label, str(path.relative_to(self.root)), path)

    def counts(self):
        out: dict[str, int] = {}
        for split, _, _ in self._items:
            out[split] = out.get(split, 0) + 1
        return out

    def fingerprint(self):
        return listing_fingerprint(self.root, [p for _, _, p in self._items])

    def store_spec(self):
        return {"kind": "files", "root": str(self.root.resolve())}
