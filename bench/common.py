"""Paths every bench script shares: the repository root, the shared data (``CLEARSET_SHARED_DATA`` or
``../shared/data``) and the gitignored cache of workspaces and synthetic data."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLEARSET_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / ".cache"
