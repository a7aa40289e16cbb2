"""``clearset ingest``: read a source once, validate and hash every image, write the manifest.

Outputs (atomic, the sidecar last): ``manifest.parquet``, ``classes.json``, ``source.json`` (how to
re-open the pixels) and, when images were skipped, ``ingest_errors.parquet``. Work is staged in chunks
under ``WS/.staging/`` so an interrupted ingest resumes; a re-run with the same inputs is a cache hit.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..engines import Engine, using
from ..errors import ClearsetError, ImageError, LabelError, ParameterError, SourceError, WorkspaceError, param
from ..progress import bar
from ..workspace import (
    DERIVED,
    Workspace,
    atomic_path,
    compute_pixel_fingerprint,
    fingerprint_path,
    read_json,
    write_json,
    write_table,
)
from .images import decode, pixel_sha256
from .labels import LabelOverride
from .sources import Record, Source, open_source
from .sources.base import UnitLog

log = logging.getLogger("clearset")
CHUNK = 8192  # records per staged part
ROW_GROUP = 1 << 17  # manifest rows per parquet row group
TASK = 128  # records per thread task (amortises scheduling over tiny images)
MANIFEST_SCHEMA = pa.schema([
    ("index", pa.int64()), ("split", pa.string()), ("label", pa.int64()), ("source", pa.string()),
    ("sha256", pa.string()), ("height", pa.int32()), ("width", pa.int32()),
])


def ingest(source: str, workspace: str | Path, *, split: str | Sequence[str] | None = None,
           labels: Sequence[str] | str | None = None, classes: Sequence[str] | None = None,
           on_error: str = "skip", threads: int | None = None, engine: str | Engine | None = None,
           force: bool = False) -> Workspace:
    """Ingest ``source`` into ``workspace`` and return the Workspace.

    Args:
        source: a folder (class subfolders), .csv/.parquet (path,label), .npz (x_train/y_train...),
            .tar shards, ``builtin:digits``, ``builtin:fractals?...`` or ``download:cifar10``.
        workspace: the folder to write into (created if needed).
        split: splits to take from a source that has them (``"train"``, ``["train", "test"]``); for a
            source without splits, the name of the one split its images form (default ``train``).
        labels: replacement label files, ``"FILE"`` (every image) or ``"SPLIT=FILE"`` (one split), in the
            source's order; the replaced labels are kept in the ``original_label`` column.
        classes: class names in label order.
        on_error: ``"skip"`` records unreadable images in ingest_errors.parquet and goes on;
            ``"fail"`` stops at the first one.
        threads: decoding threads of the local engine.
        engine: ``local`` (default), ``ray`` or an Engine: where images are decoded and hashed (the
            source is read here, in order, and streamed to the workers in batches).
        force: redo even if the same ingest already completed.
    """
    if on_error not in ("skip", "fail"):
        raise ParameterError(f"{param('on_error')} must be skip or fail, not {on_error!r}")
    if isinstance(labels, str):
        labels = [labels]
    overrides = [LabelOverride.parse(v) for v in labels or []]
    src = open_source(source, split=split if isinstance(split, str) or split is None else list(split),
                      classes=list(classes) if classes else None)
    ws = Workspace(workspace)
    if ws.root.exists() and not ws.root.is_dir():
        raise WorkspaceError(f"{ws.root}: exists and is not a folder; give -o a new or existing folder")
    created = not ws.root.exists()
    _check_override_lengths(overrides, src.counts(), str(source))
    step = ws.step(
        "ingest",
        params={"source": _spelled(source), "split": src.split, "classes": src.user_classes, "on_error": on_error,
                "labels": [[o.split, str(o.path)] for o in overrides]},
        inputs={"source": src.fingerprint(), **{f"labels[{i}]": fingerprint_path(o.path)
                                                for i, o in enumerate(overrides)}},
        outputs=[ws.manifest_path, ws.classes_path, ws.source_path],
        sidecar=ws.sidecar_of(ws.manifest_path),
    )
    if step.cached() and not force:
        log.info("ingest: cached (%s); --force to redo", ws.manifest_path)
        return ws
    staging = ws.staging_dir / f"ingest-{step.key[:16]}"
    previous = _previous_manifest(ws)
    try:
        if on_error == "fail" and src.problems:
            raise SourceError(f"{src.problems[0]['source']}: {src.problems[0]['error']}")
        with using(engine, threads=threads) as eng:
            parts = _stage(src, staging, on_error, eng)
        written = _write_manifest(staging, parts, src, overrides, str(source), ws.manifest_path)
    except Exception as e:
        # An error leaves nothing behind. An interruption (Ctrl-C, kill) or a full disk keeps the staged
        # parts (hidden in WS/.staging), so the same command resumes once it can go on.
        if not (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)):
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(ws.staging_dir, ws.root if created else None)
        raise
    ws = _publish(Workspace(ws.root), src, written, step, previous)  # nothing cached from the manifest it replaced
    shutil.rmtree(staging, ignore_errors=True)
    _remove_if_empty(None, ws.staging_dir)
    return ws


def _publish(ws: Workspace, src, written, step, previous: dict | None) -> Workspace:
    """After the manifest is in place: the pixel fingerprint, classes, store spec, error table, the sidecar
    (which makes the ingest finished), and what the previous manifest derived is set aside."""
    pixels = compute_pixel_fingerprint(ws)
    write_json(ws.classes_path, src.classes)
    write_json(ws.source_path, src.store_spec())
    errors = written.errors
    if len(errors):
        write_table(ws.errors_path, errors)
        log.warning("ingest: %d image(s) skipped, listed in %s", len(errors), ws.errors_path)
    elif ws.errors_path.exists():
        ws.errors_path.unlink()
    counts = written.splits
    assert src.classes is not None  # known once every record was read
    step.finish(images=written.images, skipped=len(errors), splits=counts, classes=len(src.classes), pixels=pixels)
    if previous is not None:
        set_aside_stale(ws, previous, pixels, step.key, compute_label_fingerprint(ws))
    log.info("ingest: %d images (%s), %d classes -> %s", written.images,
             ", ".join(f"{k} {v}" for k, v in counts.items()), len(src.classes), ws.manifest_path)
    return ws


# ------------------------------------------------------------------------------------------- stale artifacts
def _previous_manifest(ws: Workspace) -> dict | None:
    """The key and pixel fingerprint of the manifest this ingest replaces (None if there is none)."""
    side = ws.sidecar_of(ws.manifest_path)
    if not ws.manifest_path.exists() or not side.exists():
        return None
    meta = read_json(side)
    try:
        pixels = meta.get("pixels") or compute_pixel_fingerprint(ws)
        labels = compute_label_fingerprint(ws)
    except ClearsetError:  # a damaged old manifest: everything derived from it is stale
        pixels = labels = None
    return {"key": meta.get("key"), "pixels": pixels, "labels": labels}


def _spelled(source) -> str:
    """The source as the ingest's cache key records it: a local path resolved (symlinks, ``..``, the
    working folder), so the same file named another way is the same ingest; other specs as written."""
    text = str(source)
    path = Path(text)
    return str(path.resolve()) if path.exists() else text


def compute_label_fingerprint(ws: Workspace) -> str:
    """sha256 of what a manifest says about its images besides their pixels: the split and label of every
    row, in order, and the class names."""
    h = hashlib.sha256()
    m = ws.manifest(["split", "label"])
    h.update("\n".join(m["split"].astype(str)).encode())
    h.update(np.ascontiguousarray(m["label"].to_numpy(np.int64)).tobytes())
    h.update(ws.classes_path.read_bytes() if ws.classes_path.exists() else b"")
    return h.hexdigest()


def set_aside_stale(ws: Workspace, previous: dict, pixels: str, key: str, labels: str | None = None) -> list[str]:
    """Move what was derived from the replaced manifest to ``WS/stale/<time>/`` (never deleted): all of it
    when the images changed, everything but the features when only labels or splits did, nothing when
    the new manifest holds the same images, splits, labels and classes (the same source named anew)."""
    if previous["key"] == key or (previous["pixels"] == pixels and labels is not None
                                  and previous.get("labels") == labels):
        return []
    keep = {"features"} if previous["pixels"] == pixels else set()
    moved = [name for name in DERIVED if name not in keep and (ws.root / name).exists()]
    if not moved:
        return []
    dest = ws.dir("stale") / time.strftime("%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=True)
    for name in moved:
        os.replace(ws.root / name, dest / name)
    log.warning("ingest: the manifest changed; %s derived from the old one moved to %s (delete it when no "
                "longer needed)", ", ".join(moved), dest)
    return moved


# ------------------------------------------------------------------------------------------- stages
def _stage(src: Source, staging: Path, on_error: str, engine: Engine) -> int:
    """Decode and hash every record, CHUNK at a time, into ``staging/part-*.parquet`` (completed chunks
    survive a crash); returns the number of parts. Only one chunk of records is in memory at a time.
    On a parallel engine, a source that splits into units (tar shards) is staged one part per unit,
    each read, decoded and hashed by a worker: the driver never reads the records."""
    units = src.units() if engine.parallel else None
    done = _staged(staging, "units" if units is not None else "chunks")
    if done:
        log.info("ingest: resuming after %d staged part(s)", done)
    if units is not None:
        return _stage_units(src, units, staging, done, on_error, engine)
    counts = src.counts()
    progress = bar(total=sum(counts.values()) if counts else None, desc="ingest")
    records = enumerate(src.records())
    part = 0
    for chunk in _batched(records, CHUNK):
        if part >= done:
            tasks = list(_batched(iter(chunk), TASK))
            rows = [r for batch in engine.map(_inspect_batch, tasks) for r in batch]
            if on_error == "fail":
                _raise_first_error(rows)
            write_table(staging / f"part-{part:06d}.parquet", pa.Table.from_pylist(rows, schema=_ROW_SCHEMA))
        part += 1
        progress.update(len(chunk))
    progress.close()
    return part


def _staged(staging: Path, layout: str) -> int:
    """How many parts are staged already (a layout other than ``layout`` is cleared first)."""
    staging.mkdir(parents=True, exist_ok=True)
    marker = staging / "layout.json"
    if marker.exists() and read_json(marker).get("by") != layout:
        for f in staging.glob("part-*"):
            f.unlink()
    write_json(marker, {"by": layout})
    done = 0
    while (staging / f"part-{done:06d}.parquet").exists():
        done += 1
    return done


def _stage_units(src: Source, units: list[str], staging: Path, done: int, on_error: str, engine: Engine) -> int:
    """One staged part per unit, in unit order; each part's positions follow on from the previous parts'
    (so the manifest is the one the record stream gives), its UnitLog beside it."""
    parts = [staging / f"part-{i:06d}.parquet" for i in range(done)]
    offset = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    logs = [UnitLog(**read_json(p.with_suffix(".log.json"))) for p in parts]
    with bar(total=len(units) - done, desc="ingest: shards", unit="shard") as progress:
        for i, (rows, unit_log) in enumerate(engine.map(_inspect_unit, units[done:], shared=src), start=done):
            if on_error == "fail":
                _raise_first_error(rows)
            for r in rows:
                r["position"] += offset
            offset += len(rows)
            part = staging / f"part-{i:06d}.parquet"
            write_json(part.with_suffix(".log.json"), asdict(unit_log))  # before the part, which marks it done
            write_table(part, pa.Table.from_pylist(rows, schema=_ROW_SCHEMA))
            logs.append(unit_log)
            progress.update(1)
    src.problems.extend(p for unit_log in logs for p in unit_log.problems)
    src.units_done(logs)
    return len(units)


def _inspect_unit(src: Source, unit: str) -> tuple[list[dict], UnitLog]:
    """On a worker: every record of one unit decoded and hashed (positions from 0 within the unit)."""
    unit_log = UnitLog()
    return [_inspect(position, rec) for position, rec in enumerate(src.unit_records(unit, unit_log))], unit_log


_ROW_SCHEMA = pa.schema([
    ("position", pa.int64()), ("split", pa.string()), ("label", pa.int64()), ("source", pa.string()),
    ("sha256", pa.string()), ("height", pa.int32()), ("width", pa.int32()), ("error", pa.string()),
])


def _raise_first_error(rows: list[dict]) -> None:
    bad = next((r for r in rows if r["error"] is not None), None)
    if bad is not None:
        raise ImageError(bad["error"])


def _inspect_batch(batch: list[tuple[int, Record]]) -> list[dict]:
    return [_inspect(position, rec) for position, rec in batch]


def _inspect(position: int, rec: Record) -> dict:
    row = {"position": position, "split": rec.split, "label": rec.label, "source": rec.locator,
           "sha256": None, "height": None, "width": None, "error": None}
    try:
        payload = rec.payload() if callable(rec.payload) else rec.payload
        rgb = decode(payload, what=_where(rec))
        row.update(sha256=pixel_sha256(rgb), height=rgb.shape[0], width=rgb.shape[1])
    except ImageError as e:
        row["error"] = str(e)
    return row


def _where(rec: Record) -> str:
    return str(rec.payload) if isinstance(rec.payload, Path) else rec.locator


@dataclass
class _Written:
    images: int
    splits: dict[str, int]
    errors: pd.DataFrame


def _write_manifest(staging: Path, parts: int, src: Source, overrides: list[LabelOverride], source: str,
                    path: Path) -> _Written:
    """Stream the staged parts into the manifest, in row groups of ``ROW_GROUP`` rows (one staged part in
    memory at a time, whatever N): label overrides applied, unreadable images moved to the errors, labels
    checked against the classes. Atomic: on any error nothing is written."""
    files = [staging / f"part-{i:06d}.parquet" for i in range(parts)]
    counts: dict[str, int] = {}  # every record of each split, readable or not: what --labels files index
    for f in files:
        for item in pq.read_table(f, columns=["split"]).column("split").value_counts().to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    if not counts:
        raise SourceError(f"{source}: no images found")
    _check_override_lengths(overrides, counts, source)
    schema = MANIFEST_SCHEMA.append(pa.field("original_label", pa.int64())) if overrides else MANIFEST_SCHEMA
    assert src.classes is not None  # known once every record was read
    n_classes = len(src.classes)
    seen = dict.fromkeys(counts, 0)  # position within its split of the next record
    images, errors, pending = 0, [], []
    splits: dict[str, int] = {}
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for f in files:
            rows = pq.read_table(f).to_pandas().sort_values("position", kind="stable").reset_index(drop=True)
            labels, positions = rows["label"].to_numpy(np.int64).copy(), rows["position"].to_numpy()
            for name, idx in rows.groupby("split", sort=False).indices.items():
                for o in overrides:
                    if o.split is None or o.split == name:
                        at = positions[idx] if o.split is None else seen[name] + np.arange(len(idx))
                        labels[idx] = o.labels[at]
                seen[name] += len(idx)
            ok = rows["error"].isna().to_numpy()
            errors.append(rows.loc[~ok, ["source", "error"]])
            good, labels = rows[ok], labels[ok]
            bad = labels >= n_classes
            if bad.any():
                raise LabelError(f"{good['source'].iloc[int(np.argmax(bad))]}: label {labels[bad][0]} is out of range "
                                 f"for the {n_classes} classes ({', '.join(src.classes[:10])}); fix the labels or "
                                 f"pass {param('classes')}")
            chunk = good[["split", "source", "sha256", "height", "width"]].assign(
                index=np.arange(images, images + len(good), dtype=np.int64), label=labels)
            if overrides:
                chunk["original_label"] = good["label"]
            pending.append(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
            images += len(good)
            for name, c in good["split"].value_counts(sort=False).items():
                splits[name] = splits.get(name, 0) + int(c)
            if sum(len(t) for t in pending) >= ROW_GROUP:  # whole row groups out, the rest waits
                table = pa.concat_tables(pending)
                full = len(table) // ROW_GROUP * ROW_GROUP
                writer.write_table(table.slice(0, full), row_group_size=ROW_GROUP)
                pending = [table.slice(full)]
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
        errors = pd.concat(errors + [pd.DataFrame(src.problems, columns=["source", "error"])], ignore_index=True)
        if images == 0:
            raise SourceError(f"{source}: none of the {sum(counts.values())} images could be read; first error: "
                              f"{errors['error'].iloc[0]}")
    return _Written(images, splits, errors)


def _check_override_lengths(overrides: list[LabelOverride], counts: dict[str, int] | None, source: str):
    if not counts:
        return
    total = sum(counts.values())
    for o in overrides:
        if o.split is not None and o.split not in counts:
            raise LabelError(f"{param('labels')} {o.split}={o.path}: {source} has no split {o.split!r} "
                             f"(it has {', '.join(counts)})")
        want = total if o.split is None else counts[o.split]
        if len(o.labels) != want:
            per_split = ", ".join(f"{k} {v}" for k, v in counts.items())
            hint = f"; to relabel one split use --labels SPLIT={o.path}" if o.split is None and len(counts) > 1 else ""
            raise LabelError(f"{o.path}: {len(o.labels)} labels but {source} has {want} images "
                             f"({per_split}){hint}")


def _batched(it: Iterator, n: int) -> Iterator[list]:
    while True:
        chunk = []
        for item in it:
            chunk.append(item)
            if len(chunk) == n:
                break
        if not chunk:
            return
        yield chunk


def _remove_if_empty(*dirs: Path | None) -> None:
    for d in dirs:
        if d is not None and d.exists() and not any(d.iterdir()):
            d.rmdir()
