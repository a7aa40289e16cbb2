"""Labeling-instruction exemplars, the card's small check: per CIFAR-10 class choose ``--per-class``
exemplars on the training split by random choice, nearest the class mean, or k-means medoids; use them as
queries over the test split (held out) and report the retrieval mAP, over ``--seeds`` seeds (the mean
rule has no randomness), with Welch tests of medoids vs random and medoids vs mean. Features: the
workspace's EfficientNet-Lite0@128 ImageNet embedding (CLIP, the card's, is not available offline).

    .venv/bin/python bench/explain/instructions.py [--per-class 5] [--seeds 3]

Writes bench/results/explain_instructions.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import clearset
from clearset.explain.instructions import RULES, exemplars, retrieval_map
from clearset.vectors import normalise_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, compare, describe, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    feats = clearset.embed(ws, backbone="efficientnet_lite0", image_size=128).load()
    x = normalise_features(np.asarray(feats, dtype=np.float32))
    m = ws.manifest(["split", "label"])
    labels = m["label"].to_numpy()
    train, test = np.flatnonzero(m["split"].to_numpy() == "train"), np.flatnonzero(m["split"].to_numpy() == "test")
    runs = {r: [] for r in RULES}
    for seed in range(args.seeds):
        for rule in RULES:
            ex = exemplars(x[train], labels[train], 10, args.per_class, rule, seed)
            runs[rule].append(retrieval_map(ex, x[train], x[test], labels[test]))
        print(f"seed {seed}: " + ", ".join(f"{r} {runs[r][-1]:.4f}" for r in RULES), flush=True)
    write_result(ROOT / "bench" / "results" / "explain_instructions.json",
                 {"bench": "explain_instructions", "date": time.strftime("%Y-%m-%d"), "per_class": args.per_class,
                  "features": "efficientnet_lite0@128", "held_out": "exemplars from train, queries over test",
                  "map": {r: describe(v) for r, v in runs.items()}, "runs": runs,
                  "medoids_vs_random": compare(runs["medoids"], runs["random"]),
                  "medoids_vs_mean": compare(runs["medoids"], runs["mean"])})


if __name__ == "__main__":
    main()
