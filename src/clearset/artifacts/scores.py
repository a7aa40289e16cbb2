"""Per-image pruning scores on disk (``clearset score``): ``WS/scores/<method>-<recipe>-e<epochs>-r<runs>-s<seed>.npy``
(N,) float32 over the manifest, NaN where not scored, with a sidecar. Written by ``clearset.scores``, read by
curation strategies that rank by a network's view of the pixels (``el2n``)."""

from __future__ import annotations

from pathlib import Path

from ..workspace import Workspace
from .oof import made_for_manifest


def score_path(ws: Workspace, *, method: str, recipe: str, epochs: int, runs: int, seed: int) -> Path:
    return ws.dir("scores") / f"{method}-{recipe}-e{epochs}-r{runs}-s{seed}.npy"


def stored_score(ws: Workspace, method: str) -> Path | None:
    """The newest finished ``method`` score made for this very manifest, or None."""
    found = [(meta.get("finished", ""), npy)
             for npy, meta in made_for_manifest(ws, ws.dir("scores").glob(f"{method}-*.npy"), step="score")]
    return max(found)[1] if found else None
