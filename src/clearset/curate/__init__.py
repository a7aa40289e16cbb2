"""Curation (``clearset curate WS --strategy NAME --keep 0.3``): every pruning strategy behind one interface.

Strategies are registered array functions (curate/base.py); this module builds their inputs from the
workspace (the labelled training rows, the newest embedding, the audit's tables) and writes the result
as ``WS/subsets/<strategy>-k<keep>-s<seed>[-<options hash>].parquet`` (``index``, ``weight`` [, ``label``]) with a sidecar
holding the strategy's details -- the file ``clearset train --subset`` reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts.reviewed import latest_version, read_version
from ..artifacts.scores import stored_score
from ..artifacts.subsets import rs2_sampler, subset_sampler  # noqa: F401  (part of the API)
from ..errors import ParameterError, check_seed
from ..registry import check_options, import_submodules
from ..scale.config import DEFAULT as DEFAULT_PARTITION, PartitionConfig
from ..workspace import Workspace, fingerprint_path, hash_json, read_json, write_table
from .base import PIXEL_SCORES, STRATEGIES, CurateData, Subset, register_strategy, select

import_submodules(__name__)  # every file here registers its entries: adding one is a file and a decorator

log = logging.getLogger("clearset")
__all__ = ["STRATEGIES", "CurateData", "Subset", "curate", "curate_data", "register_strategy", "rs2_sampler",
           "select", "subset_sampler", "CurateResult"]


@dataclass
class CurateResult:
    path: Path
    subset: Subset
    index: np.ndarray  # manifest indices kept
    cached: bool


def curate_data(ws: Workspace, *, split: str = "train", features: str | None = None,
                trusted: str | Path | None = None, need: tuple[str, ...] = ()) -> tuple[CurateData, np.ndarray, dict]:
    """The strategy inputs over the labelled rows of ``split``: (data, their manifest indices, input keys)."""
    m = ws.manifest(["index", "split", "label"])
    rows = m[(m["split"] == split) & (m["label"] >= 0)]
    if rows.empty:
        raise ParameterError(f"{ws.root}: no labelled images in split {split!r} to curate")
    index = rows["index"].to_numpy(np.int64)
    data = CurateData(labels=rows["label"].to_numpy(np.int64), n_classes=len(ws.classes()))
    inputs = {"manifest": ws.fingerprint(ws.manifest_path)}
    if "features" in need or features is not None:
        fs, x = ws.load_features(features)
        data.features = x[index]
        inputs["features"] = fs.key
    audit = ws.dir("audit")
    if (audit / "label_issues.parquet").exists():
        li = pd.read_parquet(audit / "label_issues.parquet").set_index("index").reindex(index)
        data.label_quality = li["label_quality"].fillna(1.0).to_numpy(np.float64)
        data.is_label_issue = li["is_label_issue"].fillna(False).to_numpy(bool)
        data.suggested_label = li["suggested_label"].fillna(-1).to_numpy(np.int64)
        inputs["label_issues"] = ws.fingerprint(audit / "label_issues.parquet")
    if (audit / "duplicates.parquet").exists():
        d = pd.read_parquet(audit / "duplicates.parquet", columns=["index", "duplicate_index"])
        a, b = d["index"].to_numpy(), d["duplicate_index"].to_numpy()
        later, first = np.maximum(a, b), np.minimum(a, b)  # the later copy of a pair goes
        pos = pd.Series(np.arange(len(index)), index=index).reindex(later).to_numpy()
        hit = ~np.isnan(pos)
        data.duplicate_of = np.full(len(index), -1, np.int64)
        data.duplicate_of[pos[hit].astype(np.int64)] = first[hit]
        inputs["duplicates"] = ws.fingerprint(audit / "duplicates.parquet")
    if (audit / "outliers.parquet").exists():
        o = pd.read_parquet(audit / "outliers.parquet", columns=["index", "is_outlier"]).set_index("index").reindex(index)
        data.is_outlier = o["is_outlier"].fillna(False).to_numpy(bool)
        inputs["outliers"] = ws.fingerprint(audit / "outliers.parquet")
    for method, what in PIXEL_SCORES.items():  # read only by the strategies that rank by them
        scored = stored_score(ws, method) if f"{method}_{what}" in need else None
        if scored is not None:
            setattr(data, f"{method}_{what}", np.load(scored)[index].astype(np.float64))
            inputs[method] = ws.fingerprint(scored)
    scans = sorted(ws.dir("security").glob("scan-*.parquet"), key=lambda q: q.stat().st_mtime) \
        if "poison_flag" in need else []
    if scans:  # the newest poisoned-row scan (clearset scan-poison)
        flags = pd.read_parquet(scans[-1], columns=["index", "flagged"]).set_index("index").reindex(index)
        data.poison_flag = flags["flagged"].fillna(False).to_numpy(bool)
        inputs["poison_scan"] = fingerprint_path(scans[-1])
    version = latest_version(ws) if "reviewed_label" in need else None  # read only by strategies that use it,
    if version is not None:  # so applying a review leaves every other strategy's subsets cached
        r = read_version(version).set_index("index").reindex(index)
        data.reviewed_label = r["label"].fillna(-1).to_numpy(np.int64)
        dropped = r["drop"].fillna(False).to_numpy(bool) | r["ambiguous"].fillna(False).to_numpy(bool)
        data.reviewed_drop = dropped
        data.reviewed_keep = r["decision"].isin(["keep", "relabel"]).to_numpy() & ~dropped
        inputs["review"] = fingerprint_path(version / "manifest.parquet")
    if trusted is not None:
        data.trusted = read_trusted(trusted, index, data.n_classes)
        inputs["trusted"] = fingerprint_path(trusted)
    return data, index, inputs


def read_trusted(path: str | Path, index: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) verified label per candidate row, -1 where unverified, from a file of ``index``, ``label`` rows."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: trusted-labels file not found")
    table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    if not {"index", "label"} <= set(table.columns):
        raise ParameterError(f"{path}: a trusted-labels file needs 'index' and 'label' columns (verified labels)")
    lab = table["label"].to_numpy()
    if len(lab) == 0 or lab.min() < 0 or lab.max() >= n_classes:
        raise ParameterError(f"{path}: labels must be class numbers 0..{n_classes - 1}")
    out = np.full(len(index), -1, np.int64)
    pos = pd.Series(np.arange(len(index)), index=index)
    hit = table["index"].isin(pos.index).to_numpy()
    if not hit.all():
        raise ParameterError(f"{path}: {int((~hit).sum())} indices are not labelled training images of this workspace")
    out[pos[table["index"].to_numpy()].to_numpy()] = lab
    return out


def curate(workspace: str | Path | Workspace, *, strategy: str, keep: float, seed: int = 0, split: str = "train",
           features: str | None = None, trusted: str | Path | None = None, out: str | Path | None = None,
           force: bool = False, partition: PartitionConfig | None = None, **options) -> CurateResult:
    """Select with ``strategy`` and write the subset file (cached by strategy, keep, seed, options, inputs).

    partition: the partitioned path's configuration (default ``scale.DEFAULT``): a strategy that has a
    partitioned form (dbp) selects from a cluster partition on disk when the embedding is larger than
    ``partition.in_memory_bytes`` and the selection covers all of it."""
    cfg = partition or DEFAULT_PARTITION
    ws = Workspace.of(workspace)
    ws.require_manifest()
    check_seed(seed)
    spec = STRATEGIES.get(strategy)
    check_options("strategy", strategy, spec.fn, options, positional=("data", "n_keep", "seed"))
    if spec.partitioned is not None and _above_memory(ws, features, split, cfg.in_memory_bytes):
        return _curate_partitioned(ws, spec, keep=keep, seed=seed, split=split, features=features, out=out,
                                   force=force, options=options, config=cfg)
    data, index, inputs = curate_data(ws, split=split, features=features, trusted=trusted, need=spec.needs)
    from .base import n_keep_of

    n_keep_of(keep, data.n)  # bad --keep fails before any work
    path, step = _subset_step(ws, strategy, keep=keep, seed=seed, split=split, options=options, inputs=inputs,
                              out=out)
    if step.cached() and not force:
        table = pd.read_parquet(path)
        meta = read_json(step.sidecar)
        pos = np.searchsorted(index, table["index"].to_numpy())
        return CurateResult(path, Subset(pos, table["weight"].to_numpy(np.float32), meta.get("info", {})),
                            table["index"].to_numpy(), cached=True)
    subset = select(strategy, data, keep, seed, **options)
    table = pd.DataFrame({"index": index[subset.rows], "weight": subset.weight})
    info = dict(subset.info)
    if "labels" in info:
        table["label"] = np.asarray(info.pop("labels"), dtype=np.int64)
    if "augment_rows" in info:  # rows the trainer appends again as strongly augmented copies
        table["augment"] = np.isin(subset.rows, info.pop("augment_rows"))
    write_table(path, table)
    step.finish(info=_jsonable(info), kept=int(len(table)), candidates=int(data.n))
    log.info("curate: %s kept %d of %d -> %s", strategy, len(table), data.n, path)
    return CurateResult(path, Subset(subset.rows, subset.weight, info), table["index"].to_numpy(), cached=False)


def _above_memory(ws: Workspace, features: str | None, split: str, limit: int) -> bool:
    """Whether the embedding is larger than ``limit`` bytes (as float32) and the selection is over all of
    it (every row labelled and in ``split``; the partition covers the whole file)."""
    fs = ws.resolve_features(features, required=False)
    if fs is None:
        return False
    rows, dim = np.load(fs.path, mmap_mode="r").shape
    if rows * dim * 4 <= limit:
        return False
    import pyarrow.compute as pc

    whole = all(pc.all(pc.and_(pc.equal(b.column(0), split), pc.greater_equal(b.column(1), 0))).as_py()
                for b in ws.iter_manifest(["split", "label"]))  # batch by batch: memory flat in N
    if not whole:
        log.warning("curate: %s holds %d rows (above the in-memory limit) but the selection is over part of "
                    "them (split %r, labelled only): running in memory", fs.path.name, rows, split)
    return whole


def _curate_partitioned(ws: Workspace, spec, *, keep: float, seed: int, split: str, features: str | None,
                        out, force: bool, options: dict, config: PartitionConfig) -> CurateResult:
    """The strategy from a clearset.scale partition of the embedding (built or reused from the audit's
    cache): memory bounded by the partition's blocks, not by N."""
    from .. import scale
    from .base import n_keep_of

    fs, x = ws.load_features(features)
    n = len(x)
    n_keep_of(keep, n)
    inputs = {"manifest": ws.fingerprint(ws.manifest_path), "features": fs.key}
    path, step = _subset_step(ws, spec.name, keep=keep, seed=seed, split=split, options=options, inputs=inputs,
                              out=out, partitioned=config.key())
    if step.cached() and not force:
        rows = pd.read_parquet(path, columns=["index"])["index"].to_numpy()
        return CurateResult(path, Subset(rows, np.ones(len(rows), np.float32), read_json(step.sidecar).get("info", {})),
                            rows, cached=True)
    part = scale.partition(fs.path, ws.partition_dir(fs.path), config)
    rows = np.asarray(spec.partitioned(part, keep, seed, **options), dtype=np.int64)
    write_table(path, pd.DataFrame({"index": rows, "weight": np.ones(len(rows), np.float32)}))
    info = {"partitioned": True, "clusters": int(len(part.sizes))}
    step.finish(info=info, kept=int(len(rows)), candidates=int(n))
    log.info("curate: %s (partitioned, %d clusters) kept %d of %d -> %s", spec.name, len(part.sizes), len(rows), n, path)
    return CurateResult(path, Subset(rows, np.ones(len(rows), np.float32), info), rows, cached=False)


def _subset_step(ws: Workspace, strategy: str, *, keep: float, seed: int, split: str, options: dict, inputs: dict,
                 out, partitioned: dict | None = None):
    """(subset file, cached step) of one selection; the partitioned path is a step of its own (keyed by the
    partition's configuration, ``partitioned``)."""
    name = f"{strategy}-k{keep:g}-s{seed}" + (f"-{hash_json(options)[:8]}" if options else "")
    path = Path(out) if out is not None else ws.dir("subsets") / f"{name}.parquet"
    params = {"strategy": strategy, "keep": keep, "seed": seed, "split": split, **options}
    if partitioned is not None:  # only present when used, so the keys of in-memory subsets stay what they were
        params["partitioned"] = partitioned
    return path, ws.step("curate", params=params, inputs=inputs, outputs=[path], sidecar=ws.sidecar_of(path))


def _jsonable(info: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info.items()}
