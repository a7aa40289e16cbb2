"""Scale: time and peak memory by N, local engine, against the straightforward in-RAM approach.

1. Embeddings: synthetic 256-d float16 files on disk at N = 10^5, 10^6, 10^7 (1,000 Gaussian concept
   clusters on the sphere, as bench/audit/scale.py; 2,000 planted near-copies and 200 planted outliers,
   appended at the end). For each N, in a child process under /usr/bin/time (wall seconds, peak RSS):
   clearset.scale -- partition into ~2,000-row k-means clusters (two passes over the file; up to 100,000
   rows one cluster, i.e. exact), near-duplicates (cosine >= 0.92 among the 5 nearest) and outliers (robust
   z >= 4 of the mean distance to the 10 nearest) from the within-cluster neighbours, and DBP keeping
   half -- with the recall of the planted pairs and outliers and the recall@10 of the neighbour lists
   of 2,000 sampled rows against an exact search.
2. Baseline, same run: what a user would write -- every embedding in RAM (np.load, normalise), then
   scikit-learn ``NearestNeighbors(n_neighbors=11, algorithm="brute")`` over all of them, the same pair
   and outlier rules -- at every N up to ``--baseline-max`` (default 10^5: its N^2 search needs about
   2 h at 10^6 on 2 cores), with the time ratio at each N both ran. Above that, ``--baseline-sample Q``
   loads and fits all N the same way (its peak memory is measured) but times the search for
   Q·10^6/N sampled queries only (Q at 10^6: the same search work at every N) and extrapolates it to N
   (brute force: the time is linear in the queries), reported as an estimate. The baseline normalises
   its one float32 copy in place, chunk by chunk, so what it needs is that copy and sklearn's working
   memory; a baseline killed (out of memory) is recorded as such.
3. Ingest: ``--ingest N`` synthetic 32x32 JPEG images in WebDataset tar shards of 10,000, then
   ``clearset ingest`` (local engine) in a child under /usr/bin/time: images per second and peak RSS.

    .venv/bin/python bench/scale/partition.py [--sizes 100000,1000000,10000000] [--baseline-max 100000]
        [--baseline-sample 50000] [--ingest 1000000] [--concepts 1000 | --rows-per-concept 10000]

With the default 1,000 concepts at every N the concepts grow denser with N (1,000 rows each at 10^6,
10,000 at 10^7), and so do the clusters and the work per row; ``--rows-per-concept`` keeps them the same
size (the equal-density curve: bench/results/scale_density.json).

Writes bench/results/scale.json and bench/results/scale.png (time and peak RSS against N).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from clearset.workspace import read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, machine, timed_child, write_result  # noqa: E402
from synthetic import CONCEPTS, N_DUPS, N_OUTLIERS, concept_centres, concept_rows, make_embeddings  # noqa: F401, E402

OURS = r"""
import json, sys, time
import numpy as np
from clearset import scale
config = scale.PartitionConfig(**({"two_level": int(sys.argv[3])} if len(sys.argv) > 3 else {}))
t0 = time.perf_counter()
part = scale.partition(sys.argv[1], sys.argv[2], config)
t1 = time.perf_counter()
sample = np.sort(np.random.default_rng(1).choice(part.n, 2000, replace=False))
dups, outliers, info = scale.duplicates_and_outliers(part, keep_rows=sample)
np.save(sys.argv[2] + "/sample_neighbours.npy", np.concatenate([sample[:, None], info.pop("neighbours")], 1))
t2 = time.perf_counter()
kept = scale.dbp_select(part, 0.5)
t3 = time.perf_counter()
dups.to_parquet(sys.argv[2] + "/duplicates.parquet"); outliers.to_parquet(sys.argv[2] + "/outliers.parquet")
print(json.dumps({"partition_s": round(t1 - t0, 1), "neighbours_s": round(t2 - t1, 1), "dbp_s": round(t3 - t2, 2),
                  "kept": int(len(kept)), **info}))
"""

BASELINE = r"""
import json, sys, time
import numpy as np, pandas as pd
from sklearn.neighbors import NearestNeighbors
t0 = time.perf_counter()
x = np.load(sys.argv[1], mmap_mode="r").astype(np.float32)       # everything in RAM (one float32 copy)
for i in range(0, len(x), 1 << 16):                               # normalised in place: no N-sized temporaries
    b = x[i : i + (1 << 16)]
    b[:] = np.sign(b) * np.sqrt(np.abs(b)); b /= np.linalg.norm(b, axis=1, keepdims=True)
nn = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(x)
if len(sys.argv) > 3:                                              # timed on a sample of the queries
    q = int(sys.argv[3]); load = time.perf_counter() - t0
    sel = np.random.default_rng(0).choice(len(x), q, replace=False)
    t1 = time.perf_counter(); nn.kneighbors(x[sel]); search = time.perf_counter() - t1
    print(json.dumps({"queries": q, "load_s": round(load, 1), "search_sample_s": round(search, 1),
                      "estimated_seconds": round(load + search * len(x) / q, 1)}))
    sys.exit()
dist, ids = nn.kneighbors(x)
sims = 1 - dist[:, 1:] ** 2 / 2                                    # unit vectors: cosine from euclidean
ids = ids[:, 1:]
rows = np.repeat(np.arange(len(x)), 5)                          # pairs: among the 5 nearest, as the audit
keep = sims[:, :5].ravel() >= 0.92
a, b = rows[keep], ids[:, :5].ravel()[keep]
pairs = pd.DataFrame({"index": np.minimum(a, b), "duplicate_index": np.maximum(a, b)}).drop_duplicates()
d = (1 - sims).mean(1)
med = np.median(d); mad = np.median(np.abs(d - med)) * 1.4826
outliers = np.flatnonzero((d - med) / mad >= 4)
pairs.to_parquet(sys.argv[2] + "/duplicates.parquet")
pd.DataFrame({"index": outliers}).to_parquet(sys.argv[2] + "/outliers.parquet")
print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "pairs": len(pairs), "outliers": len(outliers)}))
"""


def planted_recall(folder: Path, planted: Path) -> dict:
    import pandas as pd

    p = np.load(planted)
    pairs, outliers = p[: 2 * N_DUPS].reshape(-1, 2), p[2 * N_DUPS:]
    dups = pd.read_parquet(folder / "duplicates.parquet")
    found = set(zip(dups["index"].tolist(), dups["duplicate_index"].tolist()))
    flagged = set(pd.read_parquet(folder / "outliers.parquet")["index"].tolist())
    return {"duplicate_recall": float(np.mean([(min(a, b), max(a, b)) in found for a, b in pairs])),
            "outlier_recall": float(np.mean([o in flagged for o in outliers])),
            "outlier_precision": len(flagged & set(outliers.tolist())) / max(len(flagged), 1)}


def sample_recall(feats: Path, sample_file: Path, chunk: int = 32_768) -> float:
    """Recall@10 of the neighbour lists saved for 2,000 sampled rows against an exact fp32 search."""
    import torch

    from clearset.data.arrays import RowReader
    from clearset.vectors import normalise_features

    saved = np.load(sample_file)
    rows, found = saved[:, 0], saved[:, 1:]
    src = RowReader(feats)
    q = torch.from_numpy(normalise_features(src.rows(rows)))
    k = found.shape[1]
    best, best_ids = torch.full((len(rows), k), -np.inf), torch.zeros((len(rows), k), dtype=torch.int64)
    for s in range(0, len(src), chunk):
        scores = q @ torch.from_numpy(normalise_features(src.read(s, s + chunk))).T
        own = torch.from_numpy(rows - s)
        inside = (own >= 0) & (own < scores.shape[1])
        scores[torch.nonzero(inside)[:, 0], own[inside]] = -np.inf
        ids = torch.cat([best_ids, torch.arange(s, s + scores.shape[1]).expand(len(rows), -1)], 1)
        top = torch.cat([best, scores], 1).topk(k, dim=1)
        best, best_ids = top.values, torch.gather(ids, 1, top.indices)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(best_ids.numpy(), found)]))


def agreement(a: Path, b: Path) -> dict:
    """How far the cluster-restricted answer is from the exact one (the baseline's), at the same N."""
    import pandas as pd

    pa, pb = (set(zip(*(pd.read_parquet(f / "duplicates.parquet")[c].tolist() for c in ("index", "duplicate_index"))))
              for f in (a, b))
    oa, ob = (set(pd.read_parquet(f / "outliers.parquet")["index"].tolist()) for f in (a, b))
    return {"pairs_recall_vs_exact": len(pa & pb) / max(len(pb), 1),
            "outliers_jaccard_vs_exact": len(oa & ob) / max(len(oa | ob), 1)}


# --------------------------------------------------------------------------------------------- ingest
def make_shards(n: int, folder: Path, per_shard: int = 10_000, seed: int = 0) -> Path:
    """``n`` 32x32 JPEGs (smooth random colour fields, 10 classes) in WebDataset shards, cached."""
    from PIL import Image

    done = folder / "done.json"
    if done.exists() and json.loads(done.read_text()).get("n") == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for shard in range(0, n, per_shard):
        with tarfile.open(folder / f"shard-{shard // per_shard:05d}.tar", "w") as tf:
            small = rng.integers(0, 256, size=(min(per_shard, n - shard), 4, 4, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, len(small))
            for i, (img, label) in enumerate(zip(small, labels)):
                buf = io.BytesIO()
                Image.fromarray(img).resize((32, 32), Image.BILINEAR).save(buf, format="JPEG", quality=90)
                key = f"{shard + i:08d}"
                for name, data in ((f"{key}.jpg", buf.getvalue()), (f"{key}.cls", str(label).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    done.write_text(json.dumps({"n": n}))
    return folder


INGEST = r"""
import json, sys, time
import clearset
t = time.perf_counter()
ws = clearset.ingest(sys.argv[1], sys.argv[2], force=True)
print(json.dumps({"images": len(ws.manifest()), "seconds": round(time.perf_counter() - t, 1)}))
"""


def plot(rows: list[dict], path: Path, data: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for arm, style in (("clearset", "o-"), ("sklearn in RAM", "s--")):
        pts = [(r["n"], r[arm]) for r in rows if isinstance(r.get(arm), dict) and "wall_s" in r[arm]]
        if pts:
            a.loglog([p[0] for p in pts], [p[1]["wall_s"] for p in pts], style, label=arm)
            b.semilogx([p[0] for p in pts], [p[1]["peak_rss_mb"] for p in pts], style, label=arm)
    est = [(r["n"], r["sklearn in RAM, sampled queries"]) for r in rows if "sklearn in RAM, sampled queries" in r]
    if est:
        a.loglog([p[0] for p in est], [p[1]["estimated_seconds"] for p in est], "s", mfc="none", color="C1",
                 label="sklearn (estimated from sampled queries)")
        b.semilogx([p[0] for p in est], [p[1]["peak_rss_mb"] for p in est], "s", mfc="none", color="C1")
    ns = [r["n"] for r in rows]
    # the linear reference goes through the first partitioned N (up to 10^5 rows the search is exact, N^2)
    anchor = next((r for r in rows if r["clearset"].get("clusters", 1) > 1), rows[0] if rows else None)
    if anchor is not None and "wall_s" in anchor["clearset"]:
        base = anchor["clearset"]["wall_s"] / anchor["n"]
        a.loglog(ns, [base * n for n in ns], ":", color="grey", label=f"linear from {anchor['n']:,}")
    a.set(xlabel="N (embeddings, 256-d)", ylabel="wall seconds", title="near-dups + outliers + DBP")
    b.set(xlabel="N (embeddings, 256-d)", ylabel="peak RSS (MB)", title="peak memory", ylim=(0, None))
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"synthetic 256-d embeddings, {data}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--baseline-max", type=int, default=100_000)
    ap.add_argument("--baseline-sample", type=int, default=0,
                    help="above --baseline-max, time the baseline's search on this many sampled queries and "
                         "extrapolate its time to all N (its cost is linear in the queries); 0: skip")
    ap.add_argument("--ingest", type=int, default=1_000_000, help="images for the ingest bench (0: skip)")
    ap.add_argument("--concepts", type=int, default=CONCEPTS,
                    help="Gaussian concepts in the synthetic embeddings (rows per concept = N / concepts)")
    ap.add_argument("--rows-per-concept", type=int, default=0,
                    help="instead of --concepts: N / this many concepts at each N (equal density: the "
                         "clusters, and so the work per row, stay the same size as N grows)")
    ap.add_argument("--two-level", type=int, default=None,
                    help="override PartitionConfig.two_level (0: the two-level centroid search at any k)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = ap.parse_args()
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update({"bench": "scale", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                   "dim": args.dim, "dtype": "float16 on disk", "engine": "local"})
    if args.rows_per_concept:
        result["rows_per_concept"] = args.rows_per_concept
        result.pop("concepts", None)
    else:
        result["concepts"] = args.concepts
        result.pop("rows_per_concept", None)
    rows = {r["n"]: r for r in result.get("embeddings", [])}
    for n in [int(v) for v in args.sizes.split(",") if v]:
        t = time.perf_counter()
        concepts = max(1, n // args.rows_per_concept) if args.rows_per_concept else args.concepts
        feats, planted = make_embeddings(n, args.dim, concepts=concepts)
        print(f"N={n:,}: data ready ({time.perf_counter() - t:.0f} s)", flush=True)
        work = CACHE / f"scale_partition_{n}"
        shutil.rmtree(work, ignore_errors=True)
        ours = timed_child(["-c", OURS, str(feats), str(work)]
                           + ([str(args.two_level)] if args.two_level is not None else []))
        ours.update({k: v for k, v in read_json(work / "partition.json").items()
                     if k in ("guests", "coarse_groups", "probe", "kmeans_seconds", "tried")})
        ours.update(planted_recall(work, planted))
        ours["neighbour_recall_at_10"] = sample_recall(feats, work / "sample_neighbours.npy")
        row = {"n": n, "concepts": concepts, "machine": machine(), "file_mb": round(feats.stat().st_size / 2 ** 20),
               "clearset": ours}
        print(f"  clearset: {ours['wall_s']} s, peak {ours['peak_rss_mb']} MB, {ours['pairs']} pairs, "
              f"{ours['outliers']} outliers, planted recall {ours['duplicate_recall']:.3f} / "
              f"{ours['outlier_recall']:.3f}, recall@10 {ours['neighbour_recall_at_10']:.4f}", flush=True)
        if n <= args.baseline_max:
            bdir = CACHE / f"scale_baseline_{n}"
            bdir.mkdir(parents=True, exist_ok=True)
            base = timed_child(["-c", BASELINE, str(feats), str(bdir)])
            base.update(planted_recall(bdir, planted))
            row["sklearn in RAM"] = base
            row["speedup"] = round(base["wall_s"] / ours["wall_s"], 2)
            row.update(agreement(work, bdir))
            print(f"  sklearn:  {base['wall_s']} s, peak {base['peak_rss_mb']} MB -> clearset {row['speedup']}x; "
                  f"pairs recall vs exact {row['pairs_recall_vs_exact']:.4f}", flush=True)
        elif args.baseline_sample:
            queries = max(1_000, args.baseline_sample * 1_000_000 // n)  # the same search work at every N
            base = timed_child(["-c", BASELINE, str(feats), "", str(queries)], may_fail=True)
            row["sklearn in RAM, sampled queries"] = base
            if "failed" in base:
                print(f"  sklearn:  failed after {base['wall_s']} s at peak {base['peak_rss_mb']} MB: "
                      f"{base['failed']}", flush=True)
            else:
                row["speedup_estimated"] = round(base["estimated_seconds"] / ours["wall_s"], 2)
                print(f"  sklearn:  {base['search_sample_s']} s for {queries:,} queries, peak "
                      f"{base['peak_rss_mb']} MB -> all {n:,} about {base['estimated_seconds']} s; clearset "
                      f"{row['speedup_estimated']}x (estimated)", flush=True)
        (work / "vectors.npy").unlink(missing_ok=True)  # the grouped copy of the features: disk, not results
        rows[n] = row
        result["embeddings"] = [rows[k] for k in sorted(rows)]
        write_result(args.out, result)
    if args.ingest:
        t = time.perf_counter()
        shards = make_shards(args.ingest, CACHE / f"scale_shards_{args.ingest}")
        print(f"ingest: {args.ingest:,} images in shards ({time.perf_counter() - t:.0f} s)", flush=True)
        ing = timed_child(["-c", INGEST, str(shards), str(CACHE / f"scale_ingest_ws_{args.ingest}")])
        ing["images_per_s"] = round(ing["images"] / ing["seconds"])
        result["ingest"] = {"images": args.ingest, "format": "WebDataset tar shards of 10,000 32x32 JPEGs",
                            "machine": machine(), **ing}
        print(f"  ingest: {ing['images_per_s']} images/s, peak {ing['peak_rss_mb']} MB", flush=True)
    write_result(args.out, result)
    if result.get("embeddings"):
        plot(result["embeddings"], args.out.with_suffix(".png"),
             f"concepts of {args.rows_per_concept:,} rows (equal density)" if args.rows_per_concept
             else f"{args.concepts:,} concepts at every N")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
