"""Pass A of clearset.scale at large k: flat search of every centroid vs the two-level search, same run.

At 10^8 rows and 2,000-row clusters the partition has 50,000 centroids; comparing every row with every
centroid (N·k·D) is what made the assignment quadratic. Above ``TWO_LEVEL`` centroids clearset groups the
centroids by a second k-means into ceil(sqrt(k)) coarse groups and compares a row only with the members
of its ``PROBE`` nearest groups. This bench draws rows from the generator of bench/scale/partition.py (1,000
Gaussian concepts on the sphere, 256-d), fits k centroids on them, then assigns ``--rows`` rows both
ways and reports the time of each, the ratio, and how often the two-level search finds the same home
centroid and the same guest (second centroid within the margin) as the flat, exact one.

    .venv/bin/python bench/scale/assign.py [--clusters 5000,20000] [--rows 131072]

Writes bench/results/scale_assign.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import ROOT, write_result  # noqa: E402
from synthetic import concept_centres, concept_rows  # noqa: E402


def main() -> None:
    from clearset import scale
    from clearset.ops.kmeans import spherical_kmeans
    from clearset.vectors import normalise_features

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", default="5000,20000")
    ap.add_argument("--rows", type=int, default=131_072, help="rows assigned (one pass-A chunk by default)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale_assign.json")
    args = ap.parse_args()
    base = scale.PartitionConfig(two_level=0)  # the grouped index whatever the default (off while it is being measured)
    rng = np.random.default_rng(0)
    centres = concept_centres(1000, args.dim, rng)
    variants = [("own", 8), ("learned", 1), ("learned", 2)]  # (candidate lists, groups probed per row)
    result = {"bench": "scale_assign", "date": time.strftime("%Y-%m-%d"), "rows": args.rows, "dim": args.dim,
              "margin": base.margin, "runs": []}
    for k in map(int, args.clusters.split(",")):
        fit = normalise_features(concept_rows(max(200_000, 16 * k), centres, rng))
        centroids, _, _ = spherical_kmeans(fit, k, 0, niter=base.kmeans_iterations)
        x = normalise_features(concept_rows(args.rows, centres, rng))  # not in the fitted sample
        t = time.perf_counter()
        flat, flat_sim = scale.assign((centroids, None, None, None), x, base.margin, base.probe)
        t_flat = time.perf_counter() - t
        for lists, probe in variants:
            cfg = base.replace(probe=probe)
            t = time.perf_counter()
            index = scale.centroid_index(centroids, 0, sample=fit if lists == "learned" else None, config=cfg)
            t_index = time.perf_counter() - t
            t = time.perf_counter()
            grouped, grouped_sim = scale.assign(index, x, cfg.margin, probe)
            t_grouped = time.perf_counter() - t
            run = {"clusters": k, "lists": lists, "probe": probe, "coarse_groups": len(index[1]),
                   "candidates_per_group": round(len(index[2]) / len(index[1]), 1),
                   "flat_s": round(t_flat, 2), "two_level_s": round(t_grouped, 2),
                   "index_build_s": round(t_index, 2), "speedup": round(t_flat / t_grouped, 2),
                   "same_home": float((flat[:, 0] == grouped[:, 0]).mean()),
                   "same_guest": float((flat[:, 1] == grouped[:, 1]).mean()),
                   "guest_share_flat": float((flat[:, 1] >= 0).mean()),
                   "home_similarity_lost_max": float((flat_sim - grouped_sim).max()),
                   "home_similarity_lost_mean": float((flat_sim - grouped_sim).mean()),
                   # a home within MARGIN of the best is as good as the guest copy the flat search would make
                   "home_within_margin": float((flat_sim - grouped_sim <= base.margin).mean())}
            print(json.dumps(run), flush=True)
            result["runs"].append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
