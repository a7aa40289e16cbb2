"""Paths every bench script shares: the repository root, the shared data (``CLEARSET_SHARED_DATA`` or
``../shared/data``) and the gitignored cache of workspaces and synthetic data."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLEARSET_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / ".cache"


def timed_child(argv: list[str], timeout: float | None = None) -> dict:
    """Run ``python ARGV`` under /usr/bin/time: the JSON object on its last stdout line, plus wall
    seconds and peak RSS (MB); exits with the child's stderr if it fails."""
    t = time.perf_counter()
    try:
        run = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, *argv],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out_after_s": timeout}
    if run.returncode:
        sys.exit(run.stderr[-3000:])
    out = json.loads(run.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(time.perf_counter() - t, 1)
    out["peak_rss_mb"] = round(int(run.stderr.strip().splitlines()[-1]) / 1024)
    return out
