"""Out-of-fold probabilities on disk (``clearset oof``): ``WS/oof/<recipe>-f<folds>-s<seed>[-e<epochs>][-clean].npy``
(N, C) float32 with a sidecar, and the fold subsets its runs trained on. Written by ``clearset.oof``,
read by the audit's label-issue check."""

from __future__ import annotations

from pathlib import Path

from ..io import read_json
from ..workspace import Workspace


def _suffix(epochs: int | None, clean: bool) -> str:
    return ("" if epochs is None else f"-e{epochs}") + ("-clean" if clean else "")


def oof_path(ws: Workspace, *, recipe: str, folds: int, seed: int, epochs: int | None, clean: bool) -> Path:
    return ws.dir("oof") / f"{recipe}-f{folds}-s{seed}{_suffix(epochs, clean)}.npy"


def fold_subset_path(ws: Workspace, *, fold: int, folds: int, seed: int, epochs: int | None, clean: bool) -> Path:
    return ws.dir("oof") / f"fold{fold}-of{folds}-s{seed}{_suffix(epochs, clean)}.parquet"


def stored_pixel_oof(ws: Workspace) -> Path | None:
    """The newest ``clearset oof`` output made for this very manifest (labels included), ``--clean``
    ones first; None if there is none."""
    found = [(bool(meta.get("params", {}).get("clean")), meta.get("finished", ""), npy)
             for npy, meta in made_for_manifest(ws, ws.dir("oof").glob("*.npy"), step="oof")]
    return max(found)[2] if found else None


def made_for_manifest(ws: Workspace, paths, step: str) -> list[tuple[Path, dict]]:
    """(artifact, sidecar) of each of ``paths`` that ``step`` finished for the workspace's current manifest."""
    key = ws.fingerprint(ws.manifest_path)
    out = []
    for path in paths:
        side = ws.sidecar_of(path)
        meta = read_json(side) if side.exists() else {}
        if meta.get("step") == step and meta.get("inputs", {}).get("manifest") == key:
            out.append((path, meta))
    return out
