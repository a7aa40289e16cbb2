"""All-rows k-nearest neighbours (k = 10), like for like: clearset's partitioned search against FAISS
IVF-Flat and HNSW at equal recall@10, and exact search against exact search (issue 24, item 7).

The task is the audit's: every row's 10 nearest other rows by cosine, over N synthetic embeddings
(bench/synthetic.py: 1,000 concepts, 256 dimensions, float16 on disk), normalised as the audit does
(signed square root, L2). Times are build + search of all N rows on this machine's cores (FAISS and
torch both use every core); recall@10 is measured on 2,000 sampled rows against FAISS's exact search.

- ``clearset``: ``scale.partition`` (k-means clusters of about 2,000 rows, rows near a boundary as
  guests) then ``scale.cluster_neighbours``; up to 100,000 rows one cluster, so the search is exact.
- ``faiss-flat``: ``IndexFlatIP`` (exact; the algorithm baseline), only where N <= ``--exact-max``.
- ``faiss-ivf``: ``IndexIVFFlat`` with as many lists as clearset has clusters, trained on the same
  sample size, ``nprobe`` swept; the reported setting is the cheapest whose recall@10 is at least
  clearset's.
- ``faiss-hnsw``: ``IndexHNSWFlat`` (M 32), ``efSearch`` swept likewise.

Headline: clearset's time over the best FAISS approximate index at equal recall (the implementation
gain, same algorithm family); separately, exact over approximate (the algorithmic gain).

    .venv/bin/python bench/scale/knn_faiss.py [--sizes 100000,500000] [--exact-max 100000]

Writes bench/results/scale_knn_faiss.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import ROOT, write_result  # noqa: E402
from synthetic import make_embeddings  # noqa: E402

K = 10
SAMPLE = 2_000


def normalised(feats: Path) -> np.ndarray:
    from clearset.vectors import normalise_features

    x = np.load(feats, mmap_mode="r")
    return np.concatenate([normalise_features(np.asarray(x[i : i + 65536], np.float32))
                           for i in range(0, len(x), 65536)])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / K for a, b in zip(found, truth)]))


def search_all(index, x: np.ndarray, sample: np.ndarray) -> tuple[float, np.ndarray]:
    """Seconds to search every row (k + 1: the row itself comes back first), and the sample's neighbours."""
    t0 = time.perf_counter()
    out = np.empty((len(x), K), np.int64)
    for s in range(0, len(x), 65536):
        _, ids = index.search(x[s : s + 65536], K + 1)
        out[s : s + 65536] = ids[:, 1:]
    return time.perf_counter() - t0, out[sample]


def main() -> None:
    import faiss
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,500000")
    ap.add_argument("--exact-max", type=int, default=100_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale_knn_faiss.json"))
    args = ap.parse_args()
    from clearset import scale

    threads = torch.get_num_threads()
    faiss.omp_set_num_threads(threads)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        feats, _ = make_embeddings(n, 256)
        x = normalised(feats)
        sample = np.sort(np.random.default_rng(1).choice(n, SAMPLE, replace=False))
        exact = faiss.IndexFlatIP(x.shape[1])
        exact.add(x)
        _, truth = exact.search(x[sample], K + 1)
        truth = truth[:, 1:]
        row: dict = {"n": n, "dim": int(x.shape[1]), "threads": threads}

        work = Path(tempfile.mkdtemp(prefix="knn_"))
        try:
            t0 = time.perf_counter()
            part = scale.partition(feats, work / "part")
            t1 = time.perf_counter()
            nbr = np.full((n, K), -1, np.int64)
            for r, _, ids in scale.cluster_neighbours(part, K):
                nbr[r, : ids.shape[1]] = ids
            t2 = time.perf_counter()
            clusters = len(part.sizes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        ours = {"seconds": round(t2 - t0, 1), "partition_s": round(t1 - t0, 1), "search_s": round(t2 - t1, 1),
                "clusters": int(clusters), "recall_at_10": recall(nbr[sample], truth)}
        row["clearset"] = ours
        print(f"n {n}: clearset {ours['seconds']} s, recall {ours['recall_at_10']:.4f} ({clusters} clusters)",
              flush=True)

        if n <= args.exact_max:
            secs, found = search_all(exact, x, sample)
            row["faiss-flat"] = {"seconds": round(secs, 1), "recall_at_10": recall(found, truth)}
            print(f"  faiss-flat {secs:.1f} s", flush=True)
        del exact

        nlist = max(1, clusters if clusters > 1 else int(4 * np.sqrt(n)))
        t0 = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        train = x[np.random.default_rng(0).choice(n, min(n, max(200_000, 16 * nlist)), replace=False)]
        ivf.train(train)
        ivf.add(x)
        build = time.perf_counter() - t0
        sweep = []
        for nprobe in sorted({min(nlist, 2 ** i) for i in range(int(np.log2(nlist)) + 2)}):
            ivf.nprobe = nprobe
            secs, found = search_all(ivf, x, sample)
            sweep.append({"nprobe": nprobe, "seconds": round(build + secs, 1), "search_s": round(secs, 1),
                          "recall_at_10": recall(found, truth)})
            print(f"  faiss-ivf nlist {nlist} nprobe {nprobe}: {build + secs:.1f} s, "
                  f"recall {sweep[-1]['recall_at_10']:.4f}", flush=True)
            if sweep[-1]["recall_at_10"] >= ours["recall_at_10"]:
                break
        row["faiss-ivf"] = {"nlist": nlist, "build_s": round(build, 1), "sweep": sweep}
        del ivf

        t0 = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.add(x)
        build = time.perf_counter() - t0
        sweep = []
        for ef in (16, 32, 64, 128, 256, 512):
            hnsw.hnsw.efSearch = ef
            secs, found = search_all(hnsw, x, sample)
            sweep.append({"efSearch": ef, "seconds": round(build + secs, 1), "search_s": round(secs, 1),
                          "recall_at_10": recall(found, truth)})
            print(f"  faiss-hnsw ef {ef}: {build + secs:.1f} s, recall {sweep[-1]['recall_at_10']:.4f}", flush=True)
            if sweep[-1]["recall_at_10"] >= ours["recall_at_10"]:
                break
        row["faiss-hnsw"] = {"M": 32, "build_s": round(build, 1), "sweep": sweep}
        del hnsw

        if clusters == 1 and "faiss-flat" in row:  # one cluster: clearset searches exactly, so does the baseline
            matched = [("faiss-flat", row["faiss-flat"])]
        else:
            matched = []
        matched = matched or [(name, s) for name in ("faiss-ivf", "faiss-hnsw") for s in row[name]["sweep"]
                   if s["recall_at_10"] >= ours["recall_at_10"]]
        if matched:
            name, best = min(matched, key=lambda t: t[1]["seconds"])
            row["headline"] = {"baseline": name,
                               "setting": {k: v for k, v in best.items() if k in ("nprobe", "efSearch")},
                               "baseline_seconds": best["seconds"], "baseline_recall": best["recall_at_10"],
                               "speedup": round(best["seconds"] / max(ours["seconds"], 1e-9), 2)}
        else:
            row["headline"] = {"baseline": None, "note": "no FAISS setting in the sweep reached clearset's recall"}
        if "faiss-flat" in row:
            row["exact_vs_exact"] = round(row["faiss-flat"]["seconds"] / max(ours["seconds"], 1e-9), 2)
        print(f"  headline: {row['headline']}", flush=True)
        rows.append(row)
    write_result(args.out, {"bench": "scale_knn_faiss", "date": time.strftime("%Y-%m-%d"), "k": K,
                            "faiss": faiss.__version__, "rows": rows})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
