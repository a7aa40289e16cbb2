"""Scale: the duplicates and outliers checks on 1,000,000 synthetic 256-d embeddings.

Synthetic data (seeded, written in chunks to a memory-mapped .npy under bench/.cache): 1,000 Gaussian
concept clusters on the sphere, 100 classes (10 clusters each); planted 2,000 near-duplicate copies
(a random image plus small noise) and 200 outliers (random directions far from every cluster).
The checks run in a child process (features memory-mapped, no pixels: the embedding-only rule) under
/usr/bin/time, which reports the peak RSS. The kNN lists' recall@10 is checked against an exact search
for 1,000 sampled rows. Above 300,000 vectors the kNN is a FAISS IVF index, so no
step holds an N x N matrix; memory is O(N * D).

    .venv/bin/python bench/audit/scale.py [--n 1000000] [--dim 256]

Writes bench/results/audit_scale.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, timed_child, write_result  # noqa: E402
from synthetic import N_DUPS, N_OUTLIERS, make_data  # noqa: F401, E402

CHILD = r"""
import json, sys, time
import numpy as np
from clearset.audit import AuditData
from clearset.audit.duplicates import duplicates_check
from clearset.audit.outliers import outliers_check
feats = np.load(sys.argv[1], mmap_mode="r")
labels = np.load(sys.argv[2])
data = AuditData(labels=labels, n_classes=int(labels.max()) + 1, class_names=[str(i) for i in range(labels.max() + 1)],
                 features=feats)
out = {}
for name, check in (("duplicates", duplicates_check), ("outliers", outliers_check)):
    t = time.perf_counter()
    res = check(data)
    out[name] = {"seconds": round(time.perf_counter() - t, 1), "summary": res.summary}
    res.table.to_parquet(sys.argv[3] + f".{name}.parquet")
rows = np.random.default_rng(1).choice(len(labels), 1000, replace=False)
np.save(sys.argv[3] + ".sample_neighbours.npy", np.stack([rows, *data.neighbours(10)[1][rows].T], 1))
print(json.dumps(out))
"""


def sample_recall(feats: Path, rows: np.ndarray, found: np.ndarray) -> float:
    """Recall@k of the approximate neighbour lists ``found`` of ``rows`` against an exact fp32 search."""
    import torch

    from clearset.vectors import normalise_features

    x = np.load(feats, mmap_mode="r")
    q = torch.from_numpy(normalise_features(x[rows]))
    best = torch.full((len(rows), found.shape[1]), -np.inf)
    best_ids = torch.zeros((len(rows), found.shape[1]), dtype=torch.int64)
    for start in range(0, len(x), 100_000):
        scores = q @ torch.from_numpy(normalise_features(x[start : start + 100_000])).T
        scores[torch.from_numpy(rows - start)[:, None] == torch.arange(scores.shape[1])] = -np.inf
        merged = torch.cat([best, scores], 1)
        ids = torch.cat([best_ids, torch.arange(start, start + scores.shape[1]).expand(len(rows), -1)], 1)
        top = merged.topk(found.shape[1], dim=1)
        best, best_ids = top.values, torch.gather(ids, 1, top.indices)
    return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(best_ids.numpy(), found)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_scale.json")
    args = ap.parse_args()
    t = time.perf_counter()
    feats, labels, planted = make_data(args.n, args.dim)
    print(f"synthetic data ready ({time.perf_counter() - t:.0f} s): {feats}", flush=True)
    tables = CACHE / f"scale_{args.n}"
    checks = timed_child(["-c", CHILD, str(feats), str(labels), str(tables)])
    wall, peak_mb = checks.pop("wall_s"), checks.pop("peak_rss_mb")

    import pandas as pd

    p = np.load(planted)
    pairs, outliers = p[: 2 * N_DUPS].reshape(-1, 2), p[2 * N_DUPS:]
    dups = pd.read_parquet(str(tables) + ".duplicates.parquet")
    found = set(zip(dups["index"], dups["duplicate_index"]))
    dup_recall = float(np.mean([(min(a, b), max(a, b)) in found for a, b in pairs]))
    flagged = pd.read_parquet(str(tables) + ".outliers.parquet")
    flagged = set(flagged.loc[flagged["is_outlier"], "index"])
    out_recall = float(np.mean([o in flagged for o in outliers]))
    out_precision = len(flagged & set(outliers)) / max(len(flagged), 1)
    sample = np.load(str(tables) + ".sample_neighbours.npy")
    knn_recall = sample_recall(feats, sample[:, 0], sample[:, 1:])
    result = {"bench": "audit_scale", "date": time.strftime("%Y-%m-%d"), "n": args.n, "dim": args.dim,
              "features_mb": round(args.n * args.dim * 4 / 2 ** 20), "wall_seconds": round(wall, 1),
              "peak_rss_mb": round(peak_mb), "checks": checks,
              "planted": {"near_duplicate_pairs": N_DUPS, "recall": dup_recall, "pairs_found": len(dups),
                          "outliers": N_OUTLIERS, "outlier_recall": out_recall, "outlier_precision": out_precision},
              "knn_recall_at_10": knn_recall}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
