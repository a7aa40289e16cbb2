"""`clearset curate --strategy dbp` on embeddings larger than memory: the command a user runs, on
bench/scale/partition.py's synthetic 256-d float16 embeddings (1,000 concepts) at 10^6 and 10^7 rows, each in a
workspace of its own (a manifest of N rows, the embedding registered like `clearset embed` output). Above
--in-memory-gb the strategy selects from the cluster partition on disk (built here; the
audit would share it). Reports wall seconds and the peak RSS of the child process (/usr/bin/time), and
what was kept.

    .venv/bin/python bench/curate/partitioned.py [--sizes 1000000,10000000]   # -> bench/results/curate_partitioned.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clearset.io import write_json
from clearset.workspace import Workspace, compute_pixel_fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, timed_child, write_result
from synthetic import make_embeddings

CURATE = """
import json, sys, time
import pandas as pd
from clearset.cli import main
t, ws = time.perf_counter(), sys.argv[1]
sys.argv = ["clearset", "-q", "curate", ws, "--strategy", "dbp", "--keep", "0.3", "--force",
            "--in-memory-gb", str(int(sys.argv[2]) / 2 ** 30)]  # the in-memory limit of this run
try:
    main()
except SystemExit as e:
    if e.code:
        raise
rows = pd.read_parquet(ws + "/subsets/dbp-k0.3-s0.parquet", columns=["index"])["index"]
meta = json.load(open(ws + "/subsets/dbp-k0.3-s0.meta.json"))
print(json.dumps({"seconds": round(time.perf_counter() - t, 1), "kept": int(len(rows)),
                  "unique": int(rows.nunique()), "info": meta.get("info", {})}))
"""


def workspace_for(n: int) -> Workspace:
    """A workspace whose manifest has ``n`` rows (one split, labels from a fixed hash) and whose only
    embedding is the bench's (a hard link, no copy), registered with the manifest's pixel fingerprint."""
    feats, _ = make_embeddings(n, 256)
    ws = Workspace(CACHE / f"curate_partitioned_ws_{n}")
    if ws.manifest_path.exists():
        return ws
    ws.root.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("index", pa.int64()), ("split", pa.string()), ("label", pa.int64()), ("source", pa.string()),
                        ("sha256", pa.string()), ("height", pa.int32()), ("width", pa.int32())])
    with pq.ParquetWriter(ws.manifest_path, schema) as writer:
        for s in range(0, n, 1 << 20):
            idx = np.arange(s, min(n, s + (1 << 20)), dtype=np.int64)
            writer.write_table(pa.table({
                "index": idx, "split": pa.array(["train"] * len(idx)), "label": (idx * 2654435761 % 10).astype(np.int64),
                "source": pa.array([f"x:{i}" for i in idx]), "sha256": pa.array([f"{i:064x}" for i in idx]),
                "height": np.full(len(idx), 32, np.int32), "width": np.full(len(idx), 32, np.int32)}, schema=schema),
                row_group_size=1 << 17)
    write_json(ws.classes_path, [str(c) for c in range(10)])
    write_json(ws.source_path, {"kind": "npz", "path": "/nonexistent"})
    pixels = compute_pixel_fingerprint(ws)
    ws.step("ingest", params={"bench": n}, inputs={}, outputs=[ws.manifest_path],
            sidecar=ws.sidecar_of(ws.manifest_path)).finish(pixels=pixels)
    target = ws.features_path("bench", 256)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.hardlink_to(feats)
    ws.step("embed", params={"backbone": "bench", "image_size": 256, "precision": "fp16"},
            inputs={"pixels": pixels}, outputs=[target], sidecar=ws.sidecar_of(target)).finish()
    return Workspace(ws.root)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--out", default="curate_partitioned", help="result name under bench/results/")
    ap.add_argument("--limit", type=int, default=256 << 20,
                    help="in-memory limit (bytes of float32 features) for the partitioned runs: below every size")
    ap.add_argument("--in-memory-max", type=int, default=2 << 30,
                    help="largest features (float32 bytes) also run in memory, as the baseline")
    args = ap.parse_args()
    rows = []
    for n in [int(v) for v in args.sizes.split(",") if v]:
        t = time.perf_counter()
        ws = workspace_for(n)
        print(f"workspace of {n:,} rows ready ({time.perf_counter() - t:.0f} s)", flush=True)
        for path, limit in (("partitioned", args.limit), ("in memory", 1 << 50)):
            if path == "in memory" and n * 256 * 4 > args.in_memory_max:
                continue  # the in-memory baseline at this N would not fit comfortably in 24 GB
            shutil.rmtree(ws.root / "audit", ignore_errors=True)  # the partition is built in every run
            run = timed_child(["-c", CURATE, str(ws.root), str(limit)])
            rows.append({"rows": n, "path": path, "features_gb": round(n * 256 * 2 / 2 ** 30, 2), **run})
            print(json.dumps(rows[-1]), flush=True)
    path = write_result(args.out, {
        "command": "clearset curate WS --strategy dbp --keep 0.3 --in-memory-gb LIMIT (child process, /usr/bin/time)",
        "data": "bench/scale/partition.py embeddings: 256-d float16, 1,000 concepts, planted copies and outliers",
        "note": "partitioned: --in-memory-gb set below the features' size so the partition path runs at both N "
                "(at 10^7 the default 2 GiB takes it too); in memory: the same command with the limit lifted "
                "(10^6 only)",
        "rows": rows})
    print(path)


if __name__ == "__main__":
    main()
