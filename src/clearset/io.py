"""Files, written safely and read defensively: atomic writes, JSON and parquet tables, hashing,
fingerprints of user files, library versions. Floor 0: imports nothing of clearset but errors.

A workspace file that cannot be parsed (a damaged JSON or parquet file) raises ``DamagedFileError``,
a WorkspaceError naming the file, so every reader reports it in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .errors import WorkspaceError

if TYPE_CHECKING:
    import numpy as np


class DamagedFileError(WorkspaceError, ValueError):
    """A file clearset wrote (or expects in a known format) cannot be parsed."""


# ----------------------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed, ``path`` is untouched, and the
    folders created for it are removed again while empty: a failed write leaves no trace.
    """
    path = Path(path)
    created = []  # the folders this write makes, deepest first (up to the first that exists)
    for folder in [path.parent, *path.parent.parents]:
        if folder.exists():
            break
        created.append(folder)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    ok = False
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            ok = True
        except OSError as e:  # name the file the user asked for, not its temporary twin
            if e.errno is None or e.filename not in (None, str(tmp), tmp):
                raise
            raise OSError(e.errno, os.strerror(e.errno), str(path)) from e
    finally:
        if tmp.exists():
            tmp.unlink()
        if not ok:
            for folder in created:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_npz(path: str | os.PathLike, *positional: Any, **arrays: Any) -> None:
    """Write arrays to an uncompressed ``.npz``, atomically (``np.load`` reads them back by name, or as
    ``arr_0``... for ``positional``)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, *positional, **arrays)


def write_table(path: str | os.PathLike, table) -> None:
    """Write a pandas DataFrame or pyarrow Table as parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=1 << 17)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; DamagedFileError (one line, naming the file) if it is not valid JSON."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError as e:
        raise DamagedFileError(f"{path}: not valid JSON ({e}); re-run the step that writes it") from None


def is_cached(record: str | os.PathLike, key: str, outputs: list[Path] | tuple = ()) -> bool:
    """The one cache check of every step: ``record`` (a sidecar or result JSON) exists and holds ``key``,
    and every output exists. A damaged record is a miss, never an error."""
    record = Path(record)
    if not record.exists() or not all(Path(p).exists() for p in outputs):
        return False
    try:
        return read_json(record).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None):
    """A parquet file as a pandas DataFrame; DamagedFileError (naming the file) if it is not parquet."""
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(path, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DamagedFileError(f"{path}: not a readable parquet file ({e})") from None


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


