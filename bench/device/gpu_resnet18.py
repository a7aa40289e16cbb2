"""Time for cifar-resnet18 to reach a CIFAR-10 test accuracy (default 93%) with clearset's trainer on the
device at hand (meant for a GPU; torch.compile on CUDA), evaluated every epoch. Run by bench/device/gpu.sh.

    python bench/device/gpu_resnet18.py [--epochs 40] [--train-images N] [--target 0.93] [--out FILE]
    python bench/device/gpu_resnet18.py --from-checkpoint [--out FILE]   # after a time limit stopped the training

Writes the device name, the epoch and the training seconds at which the target was first reached (or the
best accuracy if never), and the per-epoch throughput and accuracy. A training stopped by a time limit (or
killed) leaves its per-epoch checkpoint; ``--from-checkpoint`` reports the epochs it holds, with
``stopped_at_epoch`` set, whatever signal ended the training.
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
from clearset.progress import setup_logging
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402

NAME = "gpu-resnet18"


def report(metrics: list[dict], config: dict, args, stopped: int | None, wall: float | None) -> dict:
    elapsed, reached = 0.0, None
    for m in metrics:
        elapsed += m["seconds"]
        if reached is None and m.get("eval_acc", 0) >= args.target:
            reached = {"epoch": m["epoch"], "train_seconds": round(elapsed, 1)}
    return {"bench": "gpu_resnet18", "date": time.strftime("%Y-%m-%d"),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "data": str(SHARED / "cifar10.npz"), "precision": config["precision"],
            "compile": config.get("compile", False), "epochs": config["recipe"]["epochs"],
            "stopped_at_epoch": stopped, "train_images": args.train_images or 50000, "target": args.target,
            "reached": reached, "best_acc": max((m.get("eval_acc", 0) for m in metrics), default=None),
            "per_epoch": [{k: m.get(k) for k in ("epoch", "seconds", "images_per_s", "eval_acc")} for m in metrics],
            "wall_seconds_including_compile_and_eval": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--train-images", type=int, default=0, help="the first N training images (0: all 50,000)")
    ap.add_argument("--target", type=float, default=0.93)
    ap.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--from-checkpoint", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_resnet18.json")
    args = ap.parse_args()
    setup_logging()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    root = ws.root / "runs" / NAME
    if args.from_checkpoint:
        ckpt = root / "checkpoint.pt"
        if not ckpt.exists():
            raise SystemExit(f"{ckpt}: no checkpoint (the training stopped before its first epoch ended)")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        config = json.loads((root / "config.json").read_text())
        result = report(state["history"], config, args, stopped=state["epoch"], wall=None)
    else:
        subset = None
        if args.train_images:
            subset = CACHE / f"gpu_first_{args.train_images}.parquet"
            pd.DataFrame({"index": np.arange(args.train_images)}).to_parquet(subset)
        t = time.perf_counter()
        run = train(ws, recipe="cifar-resnet18", epochs=args.epochs, subset=subset, eval_every=1, force=True,
                    name=NAME, compile=args.compile)
        result = report(run.metrics, run.config, args, stopped=None, wall=round(time.perf_counter() - t, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps({k: result[k] for k in ("device", "reached", "best_acc", "stopped_at_epoch")}))


if __name__ == "__main__":
    main()
