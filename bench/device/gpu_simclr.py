"""SimCLR on CIFAR-10 at the SimCLRv2 card's single-GPU recipe (ResNet-18, batch 512, lr 1.0, wd 1e-4,
temperature 0.5, jitter 0.5, no blur), with the per-epoch kNN monitor, then the linear probe of the
learned embedding -- meant for a lent GPU (issue 25). The card's 1,000 epochs are hours on one GPU;
``--epochs`` (default 100) and the device call's time limit bound it, and the result records both.

    python bench/device/gpu_simclr.py [--epochs 100] [--method simclrv2] [--out FILE]

Not yet run on a GPU (no device was lent when it was written).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import clearset
from clearset.evaluate.probe import linear_probe
from clearset.features import embed
from clearset.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--method", default="simclrv2")
    ap.add_argument("--model", default="resnet18_cifar")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_simclr.json"))
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    t0 = time.perf_counter()
    root = pretrain(ws, method=args.method, model=args.model, image_size=32, epochs=args.epochs,
                    batch_size=args.batch_size, name=f"gpu-{args.method}-{args.model}-e{args.epochs}")
    seconds = time.perf_counter() - t0
    backbone = f"ws:{root.name}"
    embed(ws, backbone=backbone)
    acc = linear_probe(ws, features=f"{backbone}@32").accuracy
    history = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    write_result(args.out, {"bench": "gpu_simclr", "date": time.strftime("%Y-%m-%d"),
                            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                            "method": args.method, "model": args.model, "epochs": args.epochs,
                            "batch_size": args.batch_size, "pretrain_seconds": round(seconds, 1),
                            "probe_acc": acc, "knn_acc_by_epoch": [h.get("knn_acc") for h in history]})
    print(f"{args.method} {args.model} {args.epochs} epochs: probe {acc:.4f} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
