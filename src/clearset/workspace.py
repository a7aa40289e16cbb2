"""The workspace: where every artifact of a dataset lives, with its provenance.

Layout (all keyed by the manifest's ``index``)::

    WS/manifest.parquet  classes.json  source.json  ingest_errors.parquet
    WS/features/<backbone>@<size>.npy   (+ .logits.npy)
    WS/report/index.html
    WS/<artifact>.meta.json             sidecar of the step that wrote <artifact>

A sidecar records the command, parameters, versions, input fingerprints and seconds taken. Its ``key``
hashes the step name, parameters and input fingerprints: a step whose key matches the sidecar on disk
(and whose outputs exist) is a cache hit. Downstream steps use an upstream sidecar's key as the
fingerprint of that input, so a change anywhere upstream invalidates everything after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .errors import WorkspaceError

if TYPE_CHECKING:
    import numpy as np

SIDECAR_SUFFIX = ".meta.json"
LAZY_LOCATORS = 2_000_000  # above this many images the image store reads locators a row group at a time


# ----------------------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_table(path: str | os.PathLike, table) -> None:
    """Write a pandas DataFrame or pyarrow Table as parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=1 << 17)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ----------------------------------------------------------------------------------------- fingerprints
def hash_json(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()


CONTENT_HASH_LIMIT = 1 << 30


def compact_hashes(values) -> np.ndarray:
    """Hex digests (SHA-256: 64 characters) as fixed-width bytes, ``S32``: 32 bytes a row instead of a
    ~120-byte Python string, and sortable without Python objects. Anything else comes back as an array
    unchanged (audit.duplicates.exact_duplicate_pairs takes both)."""
    import numpy as np

    values = list(values) if not isinstance(values, np.ndarray) else values
    if not len(values):
        return np.empty(0, "S32")
    if all(isinstance(v, str) and len(v) == 64 for v in values):
        try:
            return np.frombuffer(bytes.fromhex("".join(values)), dtype="S32").copy()
        except ValueError:  # not hex
            pass
    return np.asarray(values)


def fingerprint_path(path: str | os.PathLike) -> str:
    """Fingerprint of a user file: the SHA-256 of its bytes up to 1 GiB (under a second; a copied or
    re-provisioned file with the same bytes stays a cache hit), beyond that its path, size and mtime."""
    p = Path(path).resolve()
    st = p.stat()
    if st.st_size <= CONTENT_HASH_LIMIT:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        return "sha256:" + h.hexdigest()
    return hash_json([str(p), st.st_size, st.st_mtime_ns])


def versions() -> dict[str, str]:
    from . import __version__

    out = {"clearset": __version__, "python": platform.python_version()}
    for mod in ("numpy", "torch", "timm", "pyarrow", "PIL"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


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
        if not self.sidecar.exists() or not all(p.exists() for p in self.outputs):
            return False
        try:
            return read_json(self.sidecar).get("key") == self.key
        except (OSError, ValueError):
            return False

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

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

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
        return self.root / "report"

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    def features_path(self, backbone: str, image_size: int) -> Path:
        return self.root / "features" / f"{backbone}@{image_size}.npy"

    def logits_path(self, backbone: str, image_size: int) -> Path:
        return self.root / "features" / f"{backbone}@{image_size}.logits.npy"

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
        import pandas as pd

        self.require_manifest()
        if columns is not None:
            if self._manifest is not None:
                return self._manifest[list(columns)]
            return pd.read_parquet(self.manifest_path, columns=list(columns))
        if self._manifest is None:
            self._manifest = pd.read_parquet(self.manifest_path)
        return self._manifest

    def manifest_columns(self) -> list[str]:
        """The manifest's column names, from its schema (nothing else read)."""
        import pyarrow.parquet as pq

        self.require_manifest()
        return pq.read_schema(self.manifest_path).names

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
        import pyarrow.parquet as pq

        self.require_manifest()
        return pq.ParquetFile(self.manifest_path).metadata.num_rows

    def iter_manifest(self, columns: list[str], batch_rows: int = 1 << 17) -> Iterator[Any]:
        """The manifest's ``columns`` as pyarrow RecordBatches of at most ``batch_rows`` rows, in order:
        what stages that only scan it use, so a manifest larger than memory never is loaded whole."""
        import pyarrow.parquet as pq

        self.require_manifest()
        yield from pq.ParquetFile(self.manifest_path).iter_batches(batch_size=batch_rows, columns=columns)

    def classes(self) -> list[str]:
        self.require_manifest()
        return list(read_json(self.classes_path))

    def store(self):
        """The ImageStore that yields this workspace's pixels by index. Above ``LAZY_LOCATORS`` images the
        locators are read from the manifest a row group at a time as they are asked for."""
        from .data.store import ParquetColumn, open_store

        self.require_manifest()
        if self._manifest is None and self.manifest_rows() > LAZY_LOCATORS:
            return open_store(read_json(self.source_path), ParquetColumn(self.manifest_path, "source"))
        return open_store(read_json(self.source_path), self.manifest()["source"].tolist())

    def feature_sets(self) -> list[dict[str, Any]]:
        """Sidecars of every completed embedding, newest first."""
        out = []
        for side in sorted((self.root / "features").glob("*" + SIDECAR_SUFFIX)):
            meta = read_json(side)
            if meta.get("step") == "embed":
                out.append(meta)
        return sorted(out, key=lambda m: m.get("finished", ""), reverse=True)
