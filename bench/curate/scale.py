"""Scale: SemDeDup and DBP selection (no training) on 1,000,000 synthetic 256-d embeddings with 1,000
clusters -- clearset against a straightforward NumPy implementation of the same algorithms, in one run.

Data: bench/audit/scale.py's synthetic set (1,000 Gaussian concept clusters on the sphere, 2,000 planted
near-copies, 200 outliers), memory-mapped. Each arm runs in a child process under /usr/bin/time (wall
seconds, peak RSS):
- clearset: ``select("semdedup", keep=0.8, clusters=1000)`` and ``select("dbp", keep=0.5, clusters=1000)``
  (clearset.ops.kmeans: torch spherical k-means, 20 iterations on a sample of 256 points per centroid
  -- FAISS's rule -- with bf16 assignments where the CPU has them, then every point assigned exactly;
  per-cluster similarity blocks in torch);
- numpy: the same steps written directly: Lloyd's spherical k-means on every point (X @ C^T for all N
  at once, 20 iterations, centroids by sorted reduceat), then per cluster the full similarity matrix
  (SemDeDup) or the complexity and quotas (DBP; both arms share clearset's exact quota solver);
- numpy-sampled: the numpy arm trained on the same 256-points-per-centroid sample, so the ratio can be
  split into what sampling buys and what the implementation buys.
Also clearset at N = 250k / 500k / 1M to show how peak memory grows with N, and the overlap (Jaccard)
of the two arms' kept sets. Target from issue 5: clearset >= 5x faster.

    .venv/bin/python bench/curate/scale.py [--n 1000000]

Writes bench/results/curate_scale.json.
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
from synthetic import make_data  # noqa: E402

KEEP = {"semdedup": 0.8, "dbp": 0.5}
CLUSTERS = 1000


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.sign(x) * np.sqrt(np.abs(x))
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def numpy_kmeans(x: np.ndarray, k: int, iters: int = 20, seed: int = 0, sample: bool = False):
    rng = np.random.default_rng(seed)
    train = x[np.sort(rng.choice(len(x), min(len(x), 256 * k), replace=False))] if sample else x
    c = train[rng.choice(len(train), k, replace=False)].copy()
    for _ in range(iters):
        sims = train @ c.T
        assign = sims.argmax(1)
        order = np.argsort(assign, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(assign[order]) != 0])
        sums = np.add.reduceat(train[order], starts)
        c[assign[order][starts]] = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    sims = x @ c.T
    assign = sims.argmax(1)
    return c, assign, sims[np.arange(len(x)), assign]


def numpy_semdedup(x, n_keep, sample=False):
    _, assign, sim = numpy_kmeans(x, CLUSTERS, sample=sample)
    score = np.full(len(x), -1.0, np.float32)
    for j in range(CLUSTERS):
        members = np.flatnonzero(assign == j)
        members = members[np.argsort(sim[members], kind="stable")]
        if len(members) < 2:
            continue
        s = x[members] @ x[members].T
        s[np.triu_indices(len(members))] = -1.0
        score[members] = s.max(1)
    return np.sort(np.argsort(score, kind="stable")[:n_keep])


def numpy_dbp(x, n_keep, sample=False):
    from clearset.curate.base import bounded_quotas

    c, assign, sim = numpy_kmeans(x, CLUSTERS, sample=sample)
    sizes = np.bincount(assign, minlength=CLUSTERS)
    d_intra = np.array([(1 - sim[assign == j]).mean() if sizes[j] else 0 for j in range(CLUSTERS)])
    cc = c @ c.T
    np.fill_diagonal(cc, -np.inf)
    d_inter = (1 - np.sort(cc, axis=1)[:, ::-1][:, : min(20, CLUSTERS - 1)]).mean(1)
    comp = d_intra * d_inter
    p = np.where(sizes > 0, np.exp((comp - comp.max()) / 0.5), 0)
    p /= p.sum()
    quota = bounded_quotas(p * n_keep, np.full(CLUSTERS, 0.5 * n_keep / CLUSTERS), sizes, n_keep)
    keep = [np.flatnonzero(assign == j)[np.argsort(sim[assign == j], kind="stable")[: quota[j]]]
            for j in range(CLUSTERS) if quota[j]]
    return np.sort(np.concatenate(keep))


def child(arm: str, algo: str, n: int, feats: Path, out: Path) -> None:
    x = np.load(feats, mmap_mode="r")[:n]
    n_keep = int(round(KEEP[algo] * n))
    t = time.perf_counter()
    if arm == "clearset":
        from clearset.curate import CurateData, select

        data = CurateData(labels=np.zeros(n, np.int64), n_classes=1, features=x)
        rows = select(algo, data, KEEP[algo], seed=0, clusters=CLUSTERS).rows
    else:
        xn = normalise(np.asarray(x))
        fn = numpy_semdedup if algo == "semdedup" else numpy_dbp
        rows = fn(xn, n_keep, sample=arm == "numpy-sampled")
    np.save(out, rows)
    print(json.dumps({"seconds": time.perf_counter() - t, "kept": int(len(rows))}))


def run(arm: str, algo: str, n: int, feats: Path) -> dict:
    rows_path = CACHE / f"curate_scale_{arm}_{algo}_{n}.npy"
    res = timed_child([__file__, "--child", arm, "--algo", algo, "--n", str(n)])
    return {"wall_seconds": res["wall_s"], "select_seconds": round(res["seconds"], 1), "peak_rss_mb": res["peak_rss_mb"],
            "kept": res["kept"], "rows": rows_path}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--child")
    ap.add_argument("--algo")
    args = ap.parse_args()
    feats, _, _ = make_data(1_000_000, args.dim)
    if args.child:
        child(args.child, args.algo, args.n, feats, CACHE / f"curate_scale_{args.child}_{args.algo}_{args.n}.npy")
        return
    result = {"bench": "curate_scale", "date": time.strftime("%Y-%m-%d"), "n": args.n, "dim": args.dim,
              "clusters": CLUSTERS, "keep": KEEP, "algorithms": {}}
    for algo in ("semdedup", "dbp"):
        ours, base, samp = (run(arm, algo, args.n, feats) for arm in ("clearset", "numpy", "numpy-sampled"))
        a, b, c = (set(np.load(r.pop("rows")).tolist()) for r in (ours, base, samp))
        row = {"clearset": ours, "numpy": base, "numpy-sampled": samp,
               "speedup": base["wall_seconds"] / ours["wall_seconds"],
               "speedup_vs_numpy_sampled": samp["wall_seconds"] / ours["wall_seconds"],
               "kept_jaccard": len(a & b) / len(a | b), "kept_jaccard_numpy_vs_numpy_sampled": len(b & c) / len(b | c)}
        result["algorithms"][algo] = row
        print(f"{algo}: clearset {ours['wall_seconds']:.1f} s / {ours['peak_rss_mb']} MB, numpy "
              f"{base['wall_seconds']:.1f} s / {base['peak_rss_mb']} MB -> {row['speedup']:.2f}x; numpy on the "
              f"same sample {samp['wall_seconds']:.1f} s -> {row['speedup_vs_numpy_sampled']:.2f}x; kept-set "
              f"Jaccard clearset/numpy {row['kept_jaccard']:.3f}, numpy/numpy-sampled "
              f"{row['kept_jaccard_numpy_vs_numpy_sampled']:.3f}", flush=True)
    growth = {}
    for n in (250_000, 500_000):
        r = run("clearset", "semdedup", n, feats)
        r.pop("rows")
        growth[n] = r
    growth[args.n] = {k: v for k, v in result["algorithms"]["semdedup"]["clearset"].items()}
    result["clearset_semdedup_by_n"] = growth
    print("clearset semdedup peak RSS by N:", {n: g["peak_rss_mb"] for n, g in growth.items()})
    out = ROOT / "bench" / "results" / "curate_scale.json"
    write_result(out, result)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
