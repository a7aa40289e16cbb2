"""What a source is: a deterministic stream of records, the class names, and how to re-open pixels.

Each source file registers one name with ``@SOURCES.register``; ``open_source`` turns a spec string
(a path, or ``name:target``) into a Source. Ingest does the rest (decoding, hashing, validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ...errors import SourceError, param
from ...io import hash_json
from ...registry import Registry

SOURCES: Registry[type["Source"]] = Registry("source")
# Folder names read as splits in an ImageFolder tree, mapped to the split name we store.
BRACE = re.compile(r"\{([^{}]*)\}")  # a brace expression of a shard pattern: {000..009}, {train,test}
SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
              "test": "test", "testing": "test"}


@dataclass
class UnitLog:
    """What reading one unit of a source noted besides its records (sent back from a worker)."""

    problems: list[dict[str, str]] = field(default_factory=list)
    max_label: int = -1


@dataclass(frozen=True)
class Record:
    """One image before decoding. ``payload`` is bytes, a path or an array; ``label`` is -1 if none."""

    split: str
    label: int
    locator: str
    payload: Any


class Source:
    """Base class. Subclasses set ``name``, implement ``records``, ``fingerprint`` and ``store_spec``.

    ``problems`` collects structural issues found while listing (e.g. an empty class folder) as
    ``{"source": where, "error": what}`` rows; ingest records or raises them per ``--on-error``.
    """

    name = "?"

    def __init__(self, target: str, *, split: list[str] | None = None, classes: list[str] | None = None,
                 **options: Any):
        if options:
            raise SourceError(f"{self.name}: unknown option(s) {', '.join(sorted(options))}")
        self.target = target
        self.split = split
        self.user_classes = classes
        self.problems: list[dict[str, str]] = []
        self.classes: list[str] | None = None  # known after __init__ or after records() is exhausted

    def records(self) -> Iterator[Record]:  # pragma: no cover - abstract
        raise NotImplementedError

    def units(self) -> list[str] | None:
        """Pieces of the stream a worker can read on its own, in stream order (tar shards), or None.
        On a parallel engine ingest hands each unit to a worker (``unit_records``), so no single process
        reads every record."""
        return None

    def unit_records(self, unit: str, log: "UnitLog") -> Iterator[Record]:  # pragma: no cover
        """The records of one unit, exactly as ``records()`` yields them; what the source notes on the way
        (structural problems, the largest label) goes to ``log``."""
        raise NotImplementedError

    def units_done(self, logs: list["UnitLog"]) -> None:
        """After every unit was read (elsewhere): settle what ``records()`` settles at its end (the classes)."""

    def counts(self) -> dict[str, int] | None:
        """Images per split when known before reading them (None for streams): lets ingest check a
        --labels file's length before decoding anything."""
        return None

    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def store_spec(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # shared helpers -----------------------------------------------------------------------------------
    def select_splits(self, available: list[str]) -> list[str]:
        """The splits to ingest out of those the source has (in the source's order)."""
        if not self.split:
            return available
        unknown = [s for s in self.split if s not in available]
        if unknown:
            raise SourceError(f"{self.target}: no split {', '.join(map(repr, unknown))}; "
                              f"it has {', '.join(available)}")
        return [s for s in available if s in self.split]

    def single_split(self) -> str:
        """For sources without splits: the name given by --split (one), else 'train'."""
        if not self.split:
            return "train"
        if len(self.split) > 1:
            raise SourceError(f"{self.target} has no splits of its own; {param('split')} names the one split "
                              f"its images belong to, so give one name, not {','.join(self.split)}")
        return self.split[0]

    def resolve_classes(self, found: list[str] | None, n_from_labels: int = 0) -> list[str]:
        """Class names: --classes if given (checked against what the source shows), else ``found``,
        else '0'..'C-1' from the largest label."""
        if self.user_classes:
            if found is not None and len(found) != len(self.user_classes):
                raise SourceError(f"{param('classes')} names {len(self.user_classes)} classes but {self.target} has "
                                  f"{len(found)} ({', '.join(found[:10])}{'...' if len(found) > 10 else ''})")
            if len(set(self.user_classes)) != len(self.user_classes):
                raise SourceError(f"{param('classes')} lists a name twice")
            return list(self.user_classes)
        if found is not None:
            return [str(c) for c in found]
        return [str(i) for i in range(n_from_labels)]


def shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".tar", ".tar.gz", ".tgz")))


def split_shard_folders(folder: Path) -> list[tuple[str, Path]]:
    """(split, subfolder) for the split-named subfolders of ``folder`` that hold shards, in split order."""
    order = list(dict.fromkeys(SPLIT_DIRS.values()))
    found = [(SPLIT_DIRS[p.name.lower()], p) for p in folder.iterdir()
             if p.is_dir() and p.name.lower() in SPLIT_DIRS and shard_files(p)]
    return sorted(found, key=lambda sp: order.index(sp[0]))


def listing_fingerprint(root: Path, files: list[Path]) -> str:
    """Fingerprint of a set of files from their paths relative to ``root`` (as given where outside it),
    sizes and mtimes (not their bytes)."""
    rows = []
    for f in files:
        st = f.stat()
        try:
            rel = str(f.relative_to(root))
        except ValueError:  # an absolute path, or one through .., outside the root
            rel = str(f)
        rows.append((rel, st.st_size, st.st_mtime_ns))
    return hash_json([str(root.resolve()), rows])
