"""DataDAM vs DM in two harnesses, side by side, with whole-pipeline seeds (issue 24, item 3).

- ``clearset``: the default harness (bench/distill/distill.py): InstanceNorm ConvNet-3 for matching and
  evaluation, one forward per class, evaluation 300 epochs at batch 256.
- ``reference``: the DataDAM reference code's protocol: BatchNorm ConvNet-3 for matching and evaluation,
  all classes' real and synthetic batches in one forward each, evaluation 1800 epochs at batch 64, the
  final network (no best-of-checkpoints).

Both: real-image initialisation, DSA (siamese), 64 real images per class, SGD on the pixels (lr 1,
momentum 0.5), datadam with p = 1 and the card's loss weights. Every arm runs ``--seeds`` whole
pipelines (distillation seed s, evaluation network seed s), so the spread covers both. Reported per arm:
mean ± sd, datadam - dm with its 95% interval (Welch), the paper's number where the card gives one, and
DataDAM's attention / MMD gradient-norm ratio on the pixels (every 10th iteration).

The papers run 8,000-20,000 iterations on GPUs; on 2 CPU cores ``--iterations`` (default 100) is far
fewer, so absolute numbers sit below theirs and the comparison is of the two losses at equal iterations.

    .venv/bin/python bench/distill/protocols.py [--datasets mnist] [--ipc 1] [--iterations 100] [--seeds 3]

Writes bench/results/distill_protocols.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from clearset.distill import distill, evaluate_distilled
from clearset.workspace import Workspace, read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, compare, describe, write_result  # noqa: E402
from distill import PAPER, workspace  # noqa: E402

HARNESSES = {
    "clearset": {"distill": {"norm": "instance", "batching": "class"},
                 "evaluate": {"epochs": 300, "batch_size": 256, "norm": "instance"}},
    "reference": {"distill": {"norm": "batch", "batching": "all"},
                  "evaluate": {"epochs": 1800, "batch_size": 64, "norm": "batch"}},
}
METHODS = ("dm", "datadam")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mnist")
    ap.add_argument("--ipc", default="1")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--harnesses", default="clearset,reference")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "distill_protocols.json"))
    args = ap.parse_args()
    out = Path(args.out)
    cells, arms = [], []
    for dataset in args.datasets.split(","):
        ws = workspace(dataset)
        for ipc in (int(i) for i in args.ipc.split(",")):
            for harness in args.harnesses.split(","):
                h = HARNESSES[harness]
                for method in METHODS:
                    for seed in range(args.seeds):
                        t0 = time.perf_counter()
                        d = distill(ws, method=method, ipc=ipc, iterations=args.iterations, seed=seed, **h["distill"])
                        meta = read_json(Workspace.sidecar_of(d.path))
                        ev = evaluate_distilled(ws, d, seeds=1, epochs=h["evaluate"]["epochs"],
                                                batch_size=h["evaluate"]["batch_size"], norm=h["evaluate"]["norm"],
                                                first_seed=seed)
                        ratio = None
                        g = meta.get("gradient_norm_mean")
                        if g and g.get("mmd"):
                            ratio = g["attention"] / g["mmd"]
                        cells.append({"dataset": dataset, "ipc": ipc, "harness": harness, "method": method,
                                      "seed": seed, "test_acc": ev["test_acc"][0], "iterations": args.iterations,
                                      "attention_mmd_gradient_ratio": ratio,
                                      "distill_seconds": meta.get("seconds"), "eval_seconds": ev["seconds"],
                                      "seconds": round(time.perf_counter() - t0, 1)})
                        print(f"{dataset} ipc {ipc} {harness:9s} {method:8s} seed {seed}: "
                              f"{100 * ev['test_acc'][0]:.2f}%"
                              + (f", attention/MMD gradient {ratio:.3f}" if ratio is not None else ""), flush=True)
                for method in METHODS:
                    mine = [c for c in cells if (c["dataset"], c["ipc"], c["harness"], c["method"])
                            == (dataset, ipc, harness, method)]
                    ratios = [c["attention_mmd_gradient_ratio"] for c in mine if c["attention_mmd_gradient_ratio"]]
                    paper = PAPER.get((dataset, ipc, method))
                    arms.append({"dataset": dataset, "ipc": ipc, "harness": harness, "method": method,
                                 **{f"test_acc_{k}": v for k, v in describe([c["test_acc"] for c in mine]).items()},
                                 "attention_mmd_gradient_ratio": float(np.mean(ratios)) if ratios else None,
                                 "paper": paper[0] if paper else None})
                acc = {m: [c["test_acc"] for c in cells if (c["dataset"], c["ipc"], c["harness"], c["method"])
                           == (dataset, ipc, harness, m)] for m in METHODS}
                arms[-1]["datadam_vs_dm"] = compare(acc["datadam"], acc["dm"])
    result = {"bench": "distill_protocols", "date": time.strftime("%Y-%m-%d"), "iterations": args.iterations,
              "seeds": args.seeds, "harnesses": HARNESSES, "arms": arms, "cells": cells,
              "note": "whole-pipeline seeds: distillation seed s and evaluation network seed s per cell"}
    write_result(out, result)
    for a in arms:
        line = (f"{a['dataset']} ipc {a['ipc']} {a['harness']:9s} {a['method']:8s} "
                f"{100 * a['test_acc_mean']:.2f} ± {100 * a['test_acc_sd']:.2f}")
        if "datadam_vs_dm" in a:
            c = a["datadam_vs_dm"]
            line += f"   datadam - dm {100 * c['diff']:+.2f} (p {c['p'] if c['p'] is None else round(c['p'], 3)})"
        print(line)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
