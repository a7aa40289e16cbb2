"""Does torch.compile pay on this machine? clearset's trainer with ``compile="off"`` and ``"on"``, same
recipe, images and seed, in one run: training images/s per epoch (the first epoch includes compilation)
and the whole run's wall time, with the ratio. The trainer's ``compile="auto"`` follows the answer.

    .venv/bin/python bench/train/compile.py [--epochs 3] [--train-images 10000]

Writes bench/results/train_compile.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import clearset
from clearset.train import get_recipe, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=10000)
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    subset = CACHE / f"train_first_{args.train_images}.parquet"
    pd.DataFrame({"index": np.arange(args.train_images)}).to_parquet(subset)
    rec = get_recipe(args.recipe).with_overrides(epochs=args.epochs)
    out = {"bench": "train_compile", "date": time.strftime("%Y-%m-%d"), "device": "cpu",
           "threads": torch.get_num_threads(), "recipe": rec.name, "epochs": args.epochs,
           "train_images": args.train_images, "arms": {}}
    for arm in ("off", "on"):
        t = time.perf_counter()
        run = train(ws, recipe=rec, subset=subset, seed=0, compile=arm, name=f"compile-{arm}", force=True)
        wall = time.perf_counter() - t
        out["arms"][arm] = {"wall_seconds": round(wall, 1), "images_per_s": [m["images_per_s"] for m in run.metrics],
                            "test_acc": run.metrics[-1]["eval_acc"]}
        print(arm, json.dumps(out["arms"][arm]), flush=True)
    off, on = out["arms"]["off"], out["arms"]["on"]
    out["wall_ratio_off_over_on"] = off["wall_seconds"] / on["wall_seconds"]
    out["steady_epoch_ratio_on_over_off"] = on["images_per_s"][-1] / off["images_per_s"][-1]
    print(f"wall off/on {out['wall_ratio_off_over_on']:.2f}x; last-epoch speed on/off "
          f"{out['steady_epoch_ratio_on_over_off']:.2f}x")
    path = ROOT / "bench" / "results" / "train_compile.json"
    write_result(path, out)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
