"""The workspace: where every artifact of a dataset lives, with its provenance.

Layout (all keyed by the manifest's ``index``)::

    WS/manifest.parquet  classes.json  source.json  ingest_errors.parquet
    WS/features/<backbone>@<size>.npy   (+ .logits.npy)           clearset embed
    WS/audit/<check>.parquet  summary.json  partition/<embedding>/  clearset audit
    WS/oof/<recipe>-f<folds>-s<seed>.npy                          clearset oof
    WS/probe/<backbone>@<size>.json                               clearset probe
    WS/subsets/<strategy>-k<keep>-s<seed>.parquet                 clearset curate
    WS/distilled/<name>.npz                                       clearset distill
    WS/reinforced/<name>/                                         clearset reinforce
    WS/runs/<name>/                                               clearset train (eval writes beside it)
    WS/bench/leaderboard.json                                     clearset bench
    WS/report/index.html                                          clearset report
    WS/stale/<time>/                    what an earlier manifest derived (set aside by a new ingest)
    WS/<artifact>.meta.json             sidecar of the step that wrote <artifact>

Stages ask ``ws.dir(kind)`` (or ``ws.named(kind, name)``) for these folders; no stage spells a path itself.

A sidecar records the command, parameters, versions, input fingerprints and seconds taken. Its ``key``
hashes the step name, parameters and input fingerprints: a step whose key matches the sidecar on disk
(and whose outputs exist) is a cache hit. Downstream steps use an upstream sidecar's key as the
fingerprint of that input, so a change anywhere upstream invalidates everything after it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import WorkspaceError, param
from .io import (  # noqa: F401
    CONTENT_HASH_LIMIT,
    DamagedFileError,
    atomic_path,
    compact_hashes,
    fingerprint_path,
    hash_json,
    is_cached,
    read_json,
    read_parquet,
    versions,
    write_bytes,
    write_json,
    write_table,
)

SIDECAR_SUFFIX = ".meta.json"
# Folders of artifacts derived from the manifest: a new manifest sets them aside (data.ingest.set_aside_stale).
DERIVED = ("features", "audit", "oof", "probe", "subsets", "distilled", "reinforced", "runs", "bench", "report",
           "review", "scores", "pretrained", "security", "explain")
LAZY_LOCATORS = 2_000_000  # above this many images the image store reads locators a row group at a time


# ----------------------------------------------------------------------------------------- steps
@dataclass
class Step:
    """One cached unit of work: its identity (name, params, inputs) and the files it writes."""

    sidecar: Path
    name: str
    params: dict[str, Any]
    inputs: dict[str, str]
    outputs: list[Path]
    started: float = field(default_factory=time.perf_counter)

    @property
    def key(self) -> str:
        return hash_json({"step": self.name, "params": self.params, "inputs": self.inputs})

    def cached(self) -> bool:
        return is_cached(self.sidecar, self.key, self.outputs)

    def finish(self, **results: Any) -> dict[str, Any]:
        meta = {
            "step": self.name,
            "key": self.key,
            "command": " ".join(sys.argv) if Path(sys.argv[0]).name == "clearset" else None,
            "params": self.params,
            "inputs": self.inputs,
            "outputs": [p.name for p in self.outputs],
            "versions": versions(),
            "seconds": round(time.perf_counter() - self.started, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **results,
        }
        write_json(self.sidecar, meta)
        return meta


# ----------------------------------------------------------------------------------------- workspace
class Workspace:
    """Paths and readers for the artifacts of one dataset. Cheap to construct; reads lazily."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._manifest = None
        self._pixels: str | None = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @classmethod
    def of(cls, workspace: "str | os.PathLike | Workspace") -> "Workspace":
        """The Workspace itself, or one at that path: what every stage's entry point takes."""
        return workspace if isinstance(workspace, Workspace) else cls(workspace)

    # paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def classes_path(self) -> Path:
        return self.root / "classes.json"

    @property
    def source_path(self) -> Path:
        return self.root / "source.json"

    @property
    def errors_path(self) -> Path:
        return self.root / "ingest_errors.parquet"

    @property
    def report_dir(self) -> Path:
        return self.dir("report")

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    def dir(self, kind: str) -> Path:
        """The folder of one kind of derived artifact (``DERIVED``: audit, runs, subsets...) or ``stale``."""
        if kind not in DERIVED and kind != "stale":
            raise ValueError(f"no artifact folder {kind!r} in a workspace (known: {', '.join(DERIVED)}, stale)")
        return self.root / kind

    def named(self, folder: str, name: str) -> Path:
        """``WS/<folder>/<name>`` for a name the user chose (a run, a distilled set...): one path component,
        so a name can never reach outside the workspace."""
        from .errors import ParameterError

        bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or len(name) > 200
               or name != name.strip())
        if bad:
            raise ParameterError(f"{param('name')} {name!r}: use a plain name (no '/', not '..', at most 200 characters)")
        return self.dir(folder) / name

    def partition_dir(self, features: Path) -> Path:
        """Where the clearset.scale partition of an embedding lives (shared by the audit and curate)."""
        return self.dir("audit") / "partition" / Path(features).stem

    def features_path(self, backbone: str, image_size: int) -> Path:
        """``features/<backbone>@<size>.npy`` (a workspace backbone ``ws:NAME`` is stored as ``ws-NAME``)."""
        return self.dir("features") / f"{backbone.replace(':', '-')}@{image_size}.npy"

    def logits_path(self, backbone: str, image_size: int) -> Path:
        return self.dir("features") / f"{backbone.replace(':', '-')}@{image_size}.logits.npy"

    @staticmethod
    def sidecar_of(artifact: Path) -> Path:
        name = artifact.name
        for suffix in (".logits.npy", ".npy", ".parquet", ".npz", ".json", ".html"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return artifact.with_name(name + SIDECAR_SUFFIX)

    def step(self, name: str, *, params: dict, inputs: dict, outputs: list[Path], sidecar: Path) -> Step:
        return Step(sidecar=sidecar, name=name, params=params, inputs=inputs, outputs=list(outputs))

    def meta(self, artifact: Path) -> dict[str, Any]:
        side = self.sidecar_of(artifact)
        if not side.exists():
            raise WorkspaceError(f"{side}: missing sidecar of {artifact.name}; re-run the step that makes it")
        return read_json(side)

    def fingerprint(self, artifact: Path) -> str:
        """The key of the step that wrote ``artifact``: fingerprint of it and of everything upstream."""
        return self.meta(artifact)["key"]

    # readers
    def require_manifest(self) -> None:
        if not self.manifest_path.exists():
            raise WorkspaceError(
                f"{self.root}: no manifest.parquet here; run `clearset ingest SOURCE -o {self.root}` first"
            )

    def manifest(self, columns: list[str] | None = None):
        """The manifest as a pandas DataFrame (index, split, label, source, sha256, height, width, ...).

        ``columns``: only those, read from disk (not kept) unless the whole manifest is already loaded;
        the path strings are most of a manifest's memory, and most stages do not need them."""

        self.require_manifest()
        if columns is not None:
            if self._manifest is not None:
                return self._manifest[list(columns)]
            return read_parquet(self.manifest_path, columns=list(columns))
        if self._manifest is None:
            self._manifest = read_parquet(self.manifest_path)
        return self._manifest

    def manifest_columns(self) -> list[str]:
        """The manifest's column names, from its schema (nothing else read)."""

        self.require_manifest()
        return self._manifest_file().schema_arrow.names

    def hashes(self):
        """The pixel hashes, one per row, as compact fixed-width bytes (compact_hashes), converted batch
        by batch: never a Python string per row for the whole manifest."""
        import numpy as np

        out, at = np.empty(self.manifest_rows(), "S32"), 0
        for batch in self.iter_manifest(["sha256"]):
            part = compact_hashes(batch.column(0).to_pylist())
            if part.dtype.kind != "S":
                return self.manifest(["sha256"])["sha256"].to_numpy()  # not hex digests: as they are
            out[at : at + len(part)], at = part, at + len(part)
        return out

    def splits(self):
        """The split of every row as a fixed-width unicode array (``<U5`` for train/test): 20 bytes a row
        instead of a Python string, built from each row group's dictionary (a handful of names)."""
        import numpy as np
        import pyarrow.compute as pc

        parts = []
        for batch in self.iter_manifest(["split"]):
            coded = pc.dictionary_encode(pc.fill_null(batch.column(0), ""))
            names = np.array(coded.dictionary.to_pylist(), dtype=str)
            parts.append(names[coded.indices.to_numpy()])
        return np.concatenate(parts) if parts else np.empty(0, str)

    def manifest_rows(self) -> int:
        """Number of images, from the manifest's metadata (nothing read)."""

        self.require_manifest()
        return self._manifest_file().metadata.num_rows

    def iter_manifest(self, columns: list[str], batch_rows: int = 1 << 17) -> Iterator[Any]:
        """The manifest's ``columns`` as pyarrow RecordBatches of at most ``batch_rows`` rows, in order:
        what stages that only scan it use, so a manifest larger than memory never is loaded whole."""

        self.require_manifest()
        yield from self._manifest_file().iter_batches(batch_size=batch_rows, columns=columns)

    def _manifest_file(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.require_manifest()
        try:
            return pq.ParquetFile(self.manifest_path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DamagedFileError(f"{self.manifest_path}: not a readable manifest ({e}); run `clearset ingest "
                                   f"SOURCE -o {self.root} --force` to write it again") from None

    def classes(self) -> list[str]:
        self.require_manifest()
        if not self.classes_path.is_file():
            raise WorkspaceError(f"{self.classes_path}: missing; run `clearset ingest SOURCE -o {self.root} "
                                 f"--force` to write it again")
        names = read_json(self.classes_path)
        if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
            raise DamagedFileError(f"{self.classes_path}: must be a JSON list of class names")
        return list(names)

    def store(self):
        """The ImageStore that yields this workspace's pixels by index. Above ``LAZY_LOCATORS`` images the
        locators are read from the manifest a row group at a time as they are asked for."""
        from .data.store import ParquetColumn, open_store

        self.require_manifest()
        if self._manifest is None and self.manifest_rows() > LAZY_LOCATORS:
            return open_store(read_json(self.source_path), ParquetColumn(self.manifest_path, "source"))
        return open_store(read_json(self.source_path), self.manifest()["source"].tolist())

    def feature_sets(self, *, stale: bool = False) -> list[dict[str, Any]]:
        """Sidecars of every completed embedding of the current images, newest first (an embedding of
        other pixels, left from an earlier manifest, is not listed; ``stale=True`` lists only those)."""
        out = []
        for side in sorted((self.root / "features").glob("*" + SIDECAR_SUFFIX)):
            meta = read_json(side)
            if meta.get("step") == "embed" and self._fits(side, meta) != stale:
                out.append(meta)
        return sorted(out, key=lambda m: m.get("finished", ""), reverse=True)

    def _fits(self, side: Path, meta: dict) -> bool:
        """Whether the embedding of ``side`` was made from this manifest's images (or, without a
        record of its pixels, at least has one row per image)."""
        pixels = meta.get("inputs", {}).get("pixels")
        if pixels is not None:
            return pixels == self.pixel_fingerprint()
        return self._rows_of(side) == self.manifest_rows()

    def _rows_of(self, sidecar: Path) -> int | None:
        import numpy as np

        p = sidecar.parent / f"{sidecar.name[: -len(SIDECAR_SUFFIX)]}.npy"
        try:
            return int(np.load(p, mmap_mode="r").shape[0])
        except (OSError, ValueError, IndexError):
            return None

    def manifest_key(self) -> str:
        """The fingerprint of the manifest (its step key): what artifacts derived from it record."""
        return self.fingerprint(self.manifest_path)

    def is_current(self, artifact: Path) -> bool:
        """Whether ``artifact`` (with a sidecar recording ``inputs.manifest``) was made from this manifest."""
        side = self.sidecar_of(artifact)
        if not side.exists():
            return False
        recorded = read_json(side).get("inputs", {}).get("manifest")
        return recorded is None or recorded == self.manifest_key()

    # features: the one place that says which embedding a stage reads, and that it fits this manifest
    def resolve_features(self, spec: str | None = None, *, required: bool = True) -> "FeatureSet | None":
        """The embedding ``spec`` (``backbone@size``; default: the newest one), checked against this
        manifest: it exists, has one row per image and was computed from these pixels. With
        ``required=False`` a workspace without any embedding gives None instead of an error."""
        import numpy as np

        from .errors import ParameterError

        if spec:
            backbone, _, digits = str(spec).rpartition("@")
            if not backbone or not digits.isdigit():
                raise ParameterError(f"{param('features')} {spec!r}: write it as backbone@size, e.g. efficientnet_lite0@128")
            size = int(digits)
            path = self.features_path(backbone, size)
            if not path.exists() or not self.sidecar_of(path).exists():
                known = ", ".join(f"{m['params']['backbone']}@{m['params']['image_size']}" for m in self.feature_sets())
                raise WorkspaceError(f"{path}: not embedded; run `clearset embed {self.root} --backbone {backbone} "
                                     f"--image-size {size}`" + (f" (embedded here: {known})" if known else ""))
            meta = self.meta(path)
        else:
            sets = self.feature_sets()
            old = [m["params"] for m in self.feature_sets(stale=True)] if not sets else []
            if old:
                names = ", ".join(f"{p['backbone']}@{p['image_size']}" for p in old)
                raise WorkspaceError(f"{self.root}: its embeddings ({names}) were made from other images than the "
                                     f"current manifest; run `clearset embed {self.root} --backbone "
                                     f"{old[0]['backbone']} --image-size {old[0]['image_size']} --force`")
            if not sets:
                if not required:
                    return None
                raise WorkspaceError(f"{self.root}: no features yet; run `clearset embed {self.root}` first")
            meta = sets[0]
            backbone, size = meta["params"]["backbone"], int(meta["params"]["image_size"])
            path = self.features_path(backbone, size)
        n = self.manifest_rows()
        redo = f"run `clearset embed {self.root} --backbone {backbone} --image-size {size} --force`"
        try:
            rows = np.load(path, mmap_mode="r").shape
        except ValueError as e:
            raise DamagedFileError(f"{path}: not a readable feature file ({e}); {redo}") from None
        if len(rows) != 2 or rows[0] != n:
            raise WorkspaceError(f"{path}: {rows[0] if rows else 0} rows but the manifest has {n} images "
                                 f"(features of another ingest?); {redo}")
        pixels = meta.get("inputs", {}).get("pixels")
        if pixels is not None and pixels != self.pixel_fingerprint():
            raise WorkspaceError(f"{path}: computed from other images than the current manifest (re-ingested "
                                 f"since?); {redo}")
        return FeatureSet(path, meta["key"], backbone, int(size))

    def load_features(self, spec: str | None = None) -> tuple["FeatureSet", Any]:
        """``resolve_features(spec)`` and the features memory-mapped, checked once for NaN/inf rows."""
        import numpy as np

        from .data.arrays import RowReader
        from .vectors import check_finite

        fs = self.resolve_features(spec)
        assert fs is not None  # required: resolve_features raised otherwise
        rows = RowReader(fs.path)  # pread, not the map: a pass over 10^7 rows leaves nothing resident
        try:
            check_finite(rows, str(fs.path), hint=f"embed again (`clearset embed {self.root} --backbone "
                         f"{fs.backbone} --image-size {fs.image_size} --force --precision fp32`) or drop those images")
        finally:
            rows.close()
        return fs, np.load(fs.path, mmap_mode="r")

    def pixel_fingerprint(self) -> str:
        """Identity of the images, in order, and nothing else (relabelling keeps the features): sha256 of
        the ``source`` column joined by newlines, then of the ``sha256`` column. Computed once at ingest
        and kept in the manifest's sidecar; computed again (in batches) for a manifest without it."""
        if self._pixels is None:
            side = self.sidecar_of(self.manifest_path)
            meta = read_json(side) if side.exists() else {}
            self._pixels = meta.get("pixels") or compute_pixel_fingerprint(self)
        return self._pixels


@dataclass(frozen=True)
class FeatureSet:
    """A stored embedding: its file, the key of the step that wrote it, and what it was made with."""

    path: Path
    key: str
    backbone: str
    image_size: int


def compute_pixel_fingerprint(ws: Workspace) -> str:
    import hashlib

    h = hashlib.sha256()
    for column in ("source", "sha256"):
        for b, batch in enumerate(ws.iter_manifest([column])):
            h.update(("\n" if b else "").encode() + "\n".join(batch.column(0).to_pylist()).encode())
    return h.hexdigest()
