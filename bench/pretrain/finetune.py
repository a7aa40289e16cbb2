"""Pre-training arms fine-tuned on CIFAR-10 with 10% of the labels (issue 25; the G-SimCLR and fractal
cards' small checks): the same ResNet-8 recipe from scratch, from SimCLR, from G-SimCLR (simclr with
pseudo-class batches, everything else equal), from multi-instance and from single-instance fractal
pre-training. Each arm: ``--seeds`` whole pipelines (pre-training seed s, fine-tuning seed s), the
same 5,000 labelled training images (seeded, class-balanced), the clean test set; Welch t-test of each
arm against scratch.

    .venv/bin/python bench/pretrain/finetune.py [--arms scratch,simclr,gsimclr,fractal,fractal-single]
        [--pretrain-epochs 10] [--seeds 3] [--recipe cifar-resnet8-fast]

Writes bench/results/pretrain_finetune.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import clearset
from clearset.pretrain import pretrain
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, compare, describe, write_result  # noqa: E402

MODEL = "resnet8"


def labelled_subset(ws, share: float, path: Path) -> Path:
    m = ws.manifest(["index", "split", "label"])
    train_rows = m[(m["split"] == "train") & (m["label"] >= 0)]
    rng = np.random.default_rng(2024)
    keep = np.concatenate([rng.choice(g["index"].to_numpy(), int(round(share * len(g))), replace=False)
                           for _, g in train_rows.groupby("label")])
    pd.DataFrame({"index": np.sort(keep)}).to_parquet(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", default="scratch,simclr,gsimclr,fractal,fractal-single")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--share", type=float, default=0.1)
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    subset = labelled_subset(ws, args.share, CACHE / f"cifar10_labelled_{args.share:g}.parquet")
    cells = []
    for arm in args.arms.split(","):
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            init = None
            if arm != "scratch":
                root = pretrain(ws, method=arm, model=MODEL, image_size=32, epochs=args.pretrain_epochs, seed=seed,
                                name=f"ft-{arm}-e{args.pretrain_epochs}-s{seed}")
                init = f"ws:{root.name}"
            run = train(ws, recipe=args.recipe, seed=seed, subset=subset, init=init)
            acc = run.metrics[-1]["eval_acc"]
            cells.append({"arm": arm, "seed": seed, "test_acc": acc, "run": run.name,
                          "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{arm:15s} seed {seed}: {acc:.4f}", flush=True)
    base = [c["test_acc"] for c in cells if c["arm"] == "scratch"]
    summary = []
    for arm in dict.fromkeys(c["arm"] for c in cells):
        accs = [c["test_acc"] for c in cells if c["arm"] == arm]
        summary.append({"arm": arm, **{f"test_acc_{k}": v for k, v in describe(accs).items()},
                        "vs_scratch": compare(accs, base) if arm != "scratch" and base else None})
    write_result(ROOT / "bench" / "results" / "pretrain_finetune.json",
                 {"bench": "pretrain_finetune", "date": time.strftime("%Y-%m-%d"), "recipe": args.recipe,
                  "model": MODEL, "labelled_share": args.share, "pretrain_epochs": args.pretrain_epochs,
                  "seeds": args.seeds, "summary": summary, "cells": cells})
    for s in summary:
        print(s["arm"], round(s["test_acc_mean"], 4), s["vs_scratch"] and round(100 * s["vs_scratch"]["diff"], 2))


if __name__ == "__main__":
    main()
