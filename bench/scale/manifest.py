"""Manifest columns at scale: what the audit holds of a 10^7-row manifest, before and after.

A synthetic workspace (seeded, under bench/.cache): N rows with the columns ingest writes (index, split,
label, a 40-character source path, a SHA-256 hex digest, height, width), 1% of the rows exact copies of
another row's pixels. Two ways to get the audit's inputs (labels, splits, exact-duplicate pairs), each in
a child process under /usr/bin/time (peak RSS), in the same run:

- ``whole``: what the audit did before -- ``Workspace.manifest()`` (every column, path strings
  included), the digests as Python strings, pairs by a pandas groupby of the strings;
- ``columns``: what it does now -- ``Workspace.manifest(["label"])``, ``Workspace.splits()`` (fixed-width
  unicode from each row group's dictionary), ``Workspace.hashes()`` (32 bytes a row, converted row group
  by row group), pairs by clearset.audit.duplicates.exact_duplicate_pairs.

Both must give the same pairs. Reports seconds and peak RSS of each and the ratios.

    .venv/bin/python bench/scale/manifest.py [--n 10000000]

Writes bench/results/manifest_scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, timed_child, write_result  # noqa: E402

ROW_GROUP = 1 << 17


def make_workspace(n: int, seed: int = 0):
    """A workspace directory with a manifest.parquet of n rows and classes.json (cached)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = CACHE / f"manifest_scale_{n}"
    if (root / "manifest.parquet").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    copies = rng.random(n) < 0.01
    pixels = np.arange(n)
    pixels[copies] = rng.integers(0, n, int(copies.sum()))  # 1%: another row's pixels
    salt = rng.bytes(16)

    def digest_of(ids: np.ndarray) -> np.ndarray:  # a stand-in digest per pixel id: 32 pseudo-random bytes
        return np.frombuffer(b"".join(hashlib.blake2b(salt + i.tobytes(), digest_size=32).digest() for i in ids),
                             np.uint8).reshape(-1, 32)

    tmp = root / "manifest.tmp.parquet"
    with pq.ParquetWriter(tmp, pa.schema([("index", pa.int64()), ("split", pa.string()), ("label", pa.int64()),
                                          ("source", pa.string()), ("sha256", pa.string()),
                                          ("height", pa.int32()), ("width", pa.int32())])) as w:
        for s in range(0, n, ROW_GROUP):
            e = min(n, s + ROW_GROUP)
            idx = np.arange(s, e)
            w.write_table(pa.table({
                "index": idx, "split": np.where(idx % 6 == 0, "test", "train"),
                "label": rng.integers(0, 1000, e - s),
                "source": [f"shards/{i // 10000:05d}.tar#img_{i:012d}.jpg" for i in idx],
                "sha256": _hex_rows(digest_of(pixels[s:e])),
                "height": np.full(e - s, 32, np.int32), "width": np.full(e - s, 32, np.int32)}),
                row_group_size=ROW_GROUP)
    tmp.rename(root / "manifest.parquet")
    (root / "classes.json").write_text(json.dumps([f"c{i}" for i in range(1000)]))
    return root


def _hex_rows(d: np.ndarray) -> list[str]:
    h = d.tobytes().hex()
    return [h[i : i + 64] for i in range(0, len(h), 64)]


def child(mode: str, root: str) -> None:
    import pandas as pd

    from clearset.audit.duplicates import exact_duplicate_pairs
    from clearset.workspace import Workspace

    ws = Workspace(root)
    t0 = time.perf_counter()
    if mode == "whole":
        m = ws.manifest()
        labels, splits = m["label"].to_numpy(), m["split"].to_numpy()
        s = pd.Series(m["sha256"].to_numpy())
        dup = s[s.duplicated(keep=False)]
        first = dup.groupby(dup).transform(lambda g: g.index[0])
        pairs = pd.DataFrame({"index": first.to_numpy(np.int64), "duplicate_index": dup.index.to_numpy(np.int64)})
        pairs = pairs[pairs["index"] != pairs["duplicate_index"]]
    else:
        labels, splits = ws.manifest(["label"])["label"].to_numpy(), ws.splits()
        pairs = exact_duplicate_pairs(ws.hashes())
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256(pairs[["index", "duplicate_index"]].to_numpy(np.int64).tobytes()).hexdigest()
    print(json.dumps({"seconds": round(seconds, 2), "pairs": len(pairs), "pairs_sha256": digest,
                      "rows": len(labels), "test_rows": int((splits == "test").sum())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    t0 = time.perf_counter()
    root = make_workspace(args.n)
    print(f"workspace {root} ({time.perf_counter() - t0:.0f} s)", flush=True)
    runs = {mode: timed_child([__file__, "--child", mode, str(root)]) for mode in ("whole", "columns")}
    for mode, r in runs.items():
        print(f"{mode:8s} {r['seconds']:8.1f} s  {r['peak_rss_mb']:6d} MB  {r['pairs']} pairs", flush=True)
    same = runs["whole"]["pairs_sha256"] == runs["columns"]["pairs_sha256"]
    if not same:
        raise SystemExit("the two ways found different pairs")
    result = {"bench": "manifest_scale", "date": time.strftime("%Y-%m-%d"), "machine": "2-core CPU, 24 GB RAM",
              "n": args.n, "duplicate_share": 0.01, "runs": runs, "same_pairs": same,
              "same_test_rows": runs["whole"]["test_rows"] == runs["columns"]["test_rows"],
              "speedup": round(runs["whole"]["seconds"] / runs["columns"]["seconds"], 2),
              "memory_ratio": round(runs["whole"]["peak_rss_mb"] / runs["columns"]["peak_rss_mb"], 2)}
    out = ROOT / "bench" / "results" / "manifest_scale.json"
    write_result(out, result)
    print(f"speedup {result['speedup']}x, memory {result['memory_ratio']}x less -> {out}")


if __name__ == "__main__":
    main()
