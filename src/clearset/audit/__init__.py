"""``clearset audit``: what is wrong with a dataset.

Checks (each a registered pure function over arrays, see base.py): label_issues, duplicates, outliers,
multilabel, class_pairs, properties. ``run_audit`` loads the workspace, runs the checks in dependency
order, writes ``WS/audit/<check>.parquet`` with a sidecar each and ``WS/audit/summary.json``.

The algorithms are importable on their own::

    from clearset.audit import find_label_issues, find_duplicates, outlier_scores
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..artifacts.oof import stored_pixel_oof  # noqa: F401  (part of the API)
from ..engines import Engine, using
from ..errors import ParameterError, WorkspaceError, param
from ..registry import check_options, import_submodules
from ..scale.config import DEFAULT as DEFAULT_PARTITION, PartitionConfig
from ..vectors import check_probabilities
from ..workspace import Workspace, fingerprint_path, read_json, write_json, write_table
from .base import CHECKS, AuditData, CheckResult, dependency_order
from .duplicates import find_duplicates, near_duplicate_pairs
from .label_issues import find_label_issues, out_of_fold_probs
from .multilabel import multilabel_candidates
from .neighborhoods import class_pairs
from .outliers import outlier_scores
from .properties import intrinsic_dimension, label_sharpness

import_submodules(__name__)  # every file here registers its entries: adding one is a file and a decorator

log = logging.getLogger("clearset")


def run_audit(workspace: str | Path | Workspace, *, checks: Sequence[str] | None = None,
              features: str | None = None, pred_probs: str | Path | None = None,
              threshold: float | None = None, spatial: bool = False, combine: bool = False,
              stored_oof: bool = True, engine: str | Engine | None = None, force: bool = False,
              partition: PartitionConfig | None = None, options: dict[str, dict] | None = None,
              label_splits: Sequence[str] | None = None) -> dict:
    """Run ``checks`` (default: all) on the workspace; returns the summary written to audit/summary.json.

    Args:
        features: which embedding, ``backbone@size`` (default: the most recent one).
        pred_probs: an .npy of out-of-fold probabilities (N, C) to use instead of computing them.
        threshold: near-duplicate threshold on aligned similarity (default: duplicates.DEFAULT_THRESHOLD).
        spatial: the multilabel check also uses the backbone's spatial class maps (one more backbone pass).
        combine: average ``pred_probs`` with the embedding models' out-of-fold probabilities (label_issues).
        stored_oof: without ``pred_probs``, use the pixel networks' out-of-fold probabilities that
            ``clearset oof`` stored for this manifest (``--clean`` ones first), averaged with the embedding
            models: the most accurate label-issue ranking measured (docs/audit.md).
        engine: ``local`` (default), ``ray`` or an Engine: where the neighbour searches run (the results
            are the same).
        options: per-check options, ``{"outliers": {"k": 20}}`` (the flags above are shortcuts for some).
        partition: the partitioned path's configuration (default ``scale.DEFAULT``): features larger than
            ``partition.in_memory_bytes`` are audited for duplicates and outliers by cluster partitions.
        label_splits: read the labels of these splits only (e.g. ``["train"]``); the other rows count as
            unlabelled: no label-issue score, no vote, no part in any fold. For an audit that feeds curation
            or training, so that test labels cannot shape which training images are flagged. The pixel
            networks' stored out-of-fold probabilities are then left out (they were trained on every label).
    """
    ws = Workspace.of(workspace)
    m = ws.manifest(["label"])  # the columns the checks need; splits and hashes compact, below
    splits = ws.splits()
    labels = m["label"].to_numpy().copy()
    if label_splits is not None:
        known = sorted(set(map(str, splits))) if splits is not None else []
        unknown = sorted(set(label_splits) - set(known))
        if unknown or not label_splits:
            raise ParameterError(f"{param('label_splits')} {', '.join(unknown) or '(none)'}: the workspace's "
                                 f"splits are {', '.join(known) or '(none)'}")
        labels[~np.isin(splits, list(label_splits))] = -1
        stored_oof = False
    if pred_probs is None and stored_oof and (found := stored_pixel_oof(ws)) is not None:
        log.info("audit: label_issues averages the embedding models with the pixel networks' out-of-fold "
                 "probabilities in %s (`clearset oof`; --no-stored-oof to leave them out)", found)
        pred_probs, combine = found, True
    if threshold is not None and not 0 < threshold <= 1:
        raise ParameterError(f"{param('threshold')} {threshold}: the near-duplicate threshold is a similarity in (0, 1]")
    for name in checks or []:
        CHECKS.get(name)  # unknown names fail here, before any work
    names = dependency_order(checks or CHECKS.list())
    check_options = _options(options, threshold=threshold, spatial=spatial, combine=combine)
    fs = ws.resolve_features(features, required=False)
    feat_path, feat_key = (fs.path, fs.key) if fs is not None else (None, None)
    data = AuditData(
        labels=labels, n_classes=len(ws.classes()), class_names=ws.classes(),
        splits=splits, sha256=ws.hashes(),
        features=np.load(feat_path, mmap_mode="r") if feat_path else None,
        pred_probs=_load_pred_probs(pred_probs, len(m), len(ws.classes())),
        image_loader=ws.store().iter_images)
    data.extras["workspace"] = str(ws.root)
    if feat_path is not None:
        params = ws.meta(feat_path).get("params", {})
        if "backbone" in params and "image_size" in params:
            data.extras["embedding"] = {"backbone": params["backbone"], "image_size": params["image_size"]}
        # above partition.in_memory_bytes, duplicates and outliers work from a cluster partition on disk
        data.extras.update(features_path=feat_path, partition_dir=ws.partition_dir(feat_path),
                           partition_config=partition or DEFAULT_PARTITION)
    inputs = {"manifest": ws.fingerprint(ws.manifest_path), "features": feat_key,
              "pred_probs": fingerprint_path(pred_probs) if pred_probs else None}
    if data.partitioned():  # only present when used, so the keys of in-memory audits stay what they were
        inputs["partition"] = data.extras["partition_config"].key()
    if label_splits is not None:  # likewise
        inputs["label_splits"] = ",".join(sorted(label_splits))
    out = ws.dir("audit")
    summary = read_json(out / "summary.json") if (out / "summary.json").exists() else {}
    summary.setdefault("checks", {})
    with using(engine) as eng:
        data.engine = eng if eng.parallel else None
        _run_checks(ws, data, names, inputs, summary, options=check_options, pred_probs=pred_probs, force=force)
    summary["features"] = feat_path.name if feat_path else None
    summary.pop("label_splits", None)
    if label_splits is not None:
        summary["label_splits"] = sorted(label_splits)
    write_json(out / "summary.json", summary)
    return summary


def _options(given: dict[str, dict] | None, *, threshold, spatial: bool, combine: bool) -> dict[str, dict]:
    """Per-check options: the given ones, checked against each check's signature, with the shortcut flags."""
    out: dict[str, dict] = {name: dict(opts) for name, opts in (given or {}).items()}
    for name, opts in out.items():
        check_options("audit check", name, CHECKS.get(name).fn, opts, positional=("data",))
    shortcuts = {"duplicates": {"threshold": threshold} if threshold is not None else {},
                 "multilabel": {"spatial": True} if spatial else {},
                 "label_issues": {"combine": True} if combine else {}}
    for name, opts in shortcuts.items():
        out[name] = {**out.get(name, {}), **opts}
    return out


def _run_checks(ws: Workspace, data: AuditData, names: list[str], inputs: dict, summary: dict, *,
                options: dict[str, dict], pred_probs, force: bool) -> None:
    """Run ``names`` in order, each a cached step keyed by its options and inputs; the probabilities a check
    provides are saved for the checks that need or use them (and for later audits)."""
    out = ws.dir("audit")
    probs_path = out / "pred_probs.npy"
    for name in names:
        spec = CHECKS.get(name)
        check_options = options.get(name, {})
        step_inputs = dict(inputs)
        reads_probs = "pred_probs" in spec.needs + spec.uses
        if reads_probs and pred_probs is None and probs_path.exists():
            step_inputs["pred_probs"] = ws.fingerprint(probs_path)
            if data.pred_probs is None:
                data.pred_probs = np.load(probs_path)
        table_path = out / f"{name}.parquet"
        # the key holds the check's effective defaults too: changing a default recomputes
        params = {**(spec.fn.__kwdefaults__ or {}), **check_options}
        step = ws.step(f"audit.{name}", params=params, inputs=step_inputs, outputs=[table_path],
                       sidecar=ws.sidecar_of(table_path))
        if step.cached() and not force:
            log.info("audit %s: cached", name)
            summary["checks"][name] = read_json(step.sidecar)["summary"]
            continue
        t0 = time.perf_counter()
        result: CheckResult = spec.fn(data, **check_options)
        seconds = time.perf_counter() - t0
        table = result.table if result.table is not None else pd.DataFrame({"index": np.zeros(0, np.int64)})
        write_table(table_path, table)
        undeclared = set(result.provided) - set(spec.provides)
        if undeclared:
            raise RuntimeError(f"check {name!r} provided {sorted(undeclared)} without declaring them in provides")
        for field_name, value in result.provided.items():
            setattr(data, field_name, value)
        if "pred_probs" in result.provided:
            _save_probs(ws, probs_path, result.provided["pred_probs"], step.key)
        result.summary["seconds"] = round(seconds, 2)
        step.finish(summary=result.summary, rows=len(table))
        summary["checks"][name] = result.summary
        log.info("audit %s: %s (%.1f s)", name, _headline(name, result.summary), seconds)


def _load_pred_probs(path, n: int, c: int) -> np.ndarray | None:
    """An (N, C) array of class probabilities from a .npy (never unpickled), checked: shape, finite,
    rows non-negative and summing to 1."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"{p}: pred_probs file not found")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ParameterError(f"{p}: not a numeric .npy array ({e}); save the probabilities with np.save") from None
    if not isinstance(arr, np.ndarray) or arr.shape != (n, c) or not np.issubdtype(arr.dtype, np.number):
        raise ParameterError(f"{p}: pred_probs must be ({n}, {c}) numbers for this workspace, got "
                             f"{getattr(arr, 'shape', '?')} {getattr(arr, 'dtype', '')}")
    arr = arr.astype(np.float32)
    check_probabilities(arr, str(p), hint="give finite probabilities")
    return arr


def _save_probs(ws: Workspace, path: Path, probs: np.ndarray, key: str) -> None:
    from ..workspace import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, probs)
    write_json(ws.sidecar_of(path), {"step": "audit.pred_probs", "key": key})


def _headline(name: str, s: dict) -> str:
    keys = {"label_issues": "label_issues", "duplicates": "pairs", "outliers": "outliers",
            "multilabel": "multilabel_candidates"}
    return f"{s.get(keys.get(name, ''), 'done')} found" if name in keys else "done"


def export_clean_manifest(workspace: str | Path | Workspace, path: str | Path) -> Path:
    """Write a new manifest with the audit's suggestions as columns (the data is never touched).

    Columns added: ``suggested_label``, ``label_quality``, ``is_label_issue``, ``is_duplicate`` (the
    later member of each duplicate pair), ``is_outlier``, ``clean_label`` (suggested label where the
    audit flags the label, else the given one) and ``drop`` (duplicate copies and outliers).
    ``--labels FILE`` on later commands reads ``clean_label``.
    """
    ws = Workspace.of(workspace)
    m = ws.manifest().copy()
    out = ws.dir("audit")
    if not any(ws.is_current(p) for p in out.glob("*.parquet")):
        raise WorkspaceError(f"{ws.root}: no audit results; run `clearset audit {ws.root}` first")
    if (out / "label_issues.parquet").exists():
        li = pd.read_parquet(out / "label_issues.parquet").set_index("index")
        m["suggested_label"] = li["suggested_label"].reindex(m["index"]).fillna(-1).astype(np.int64).to_numpy()
        m["label_quality"] = li["label_quality"].reindex(m["index"]).to_numpy()
        m["is_label_issue"] = li["is_label_issue"].reindex(m["index"]).fillna(False).astype(bool).to_numpy()
    else:  # the label check did not run: nothing is flagged, every label kept
        m["suggested_label"], m["label_quality"], m["is_label_issue"] = -1, np.nan, False
    m["is_duplicate"] = False
    if (out / "duplicates.parquet").exists():
        d = pd.read_parquet(out / "duplicates.parquet")
        m.loc[m["index"].isin(d["duplicate_index"]), "is_duplicate"] = True
    m["is_outlier"] = False
    if (out / "outliers.parquet").exists():
        o = pd.read_parquet(out / "outliers.parquet")
        m.loc[m["index"].isin(o.loc[o["is_outlier"], "index"]), "is_outlier"] = True
    m["clean_label"] = np.where(m["is_label_issue"], m["suggested_label"], m["label"])
    m["drop"] = m["is_duplicate"] | m["is_outlier"]
    write_table(Path(path), m)
    return Path(path)


__all__ = ["AuditData", "CHECKS", "class_pairs", "export_clean_manifest", "find_duplicates",
           "find_label_issues", "intrinsic_dimension", "label_sharpness", "multilabel_candidates",
           "near_duplicate_pairs", "out_of_fold_probs", "outlier_scores", "run_audit"]
