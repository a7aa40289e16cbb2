"""A reviewed dataset version, as ``clearset review --apply`` writes it: ``WS/review/versions/v<N>/`` with
``manifest.parquet`` (every image: ``given_label``, ``label`` after review, ``drop``, ``ambiguous``,
``decision``) and ``summary.json`` (``manifest_key``: the workspace manifest it was made from).

Stages read a version through this module instead of importing the review app (stages read each other's
artifacts): ``clearset curate --strategy reviewed`` and ``clearset bench`` train on the newest version.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import read_json
from ..workspace import Workspace

DECISIONS = ("", "keep", "relabel", "drop", "ambiguous")  # "" = no decision in force on that image


def versions_dir(ws: Workspace) -> Path:
    return ws.dir("review") / "versions"


def version_folders(ws: Workspace) -> list[Path]:
    """The finished versions (v1, v2, ...), oldest first; staging folders (``.vN.*.tmp``) are not versions."""
    root = versions_dir(ws)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name[:1] == "v" and p.name[1:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[1:]))


def next_version(ws: Workspace) -> int:
    folders = version_folders(ws)
    return 1 + (int(folders[-1].name[1:]) if folders else 0)


def latest_version(ws: Workspace) -> Path | None:
    """The newest version made from the workspace's current manifest (an older manifest's versions describe
    other images and are ignored), or None."""
    key = ws.manifest_key()
    for folder in reversed(version_folders(ws)):
        summary = folder / "summary.json"
        if (folder / "manifest.parquet").exists() and summary.exists() and read_json(summary).get("manifest_key") == key:
            return folder
    return None


def read_version(folder: Path) -> pd.DataFrame:
    """``index``, ``label`` (after review), ``drop``, ``ambiguous``, ``decision`` of one version, checked."""
    path = folder / "manifest.parquet"
    table = pd.read_parquet(path, columns=["index", "label", "drop", "ambiguous", "decision"])
    bad = ~table["decision"].isin(DECISIONS)
    if bad.any():
        raise ValueError(f"{path}: unknown decision {table['decision'][bad].iloc[0]!r}")
    return table
