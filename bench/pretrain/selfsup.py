"""Self-supervised pre-training on the workspace's own images (issue 25): SimCLR on MNIST from scratch and
on CIFAR-10 (labels never read), measured by a linear probe on the learned embedding (train split ->
test split), beside the same trunk at random initialisation and the frozen ImageNet EfficientNet-Lite0
features at the same image size (the baselines get the same probe).

    .venv/bin/python bench/pretrain/selfsup.py --dataset mnist [--epochs 10] [--model resnet8] [--seeds 1]

Every pre-training is a cached `clearset pretrain` run in bench/.cache, so an interrupted bench resumes.
Wall time counts pre-training, embedding and the probe. Writes bench/results/pretrain_<dataset>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import clearset
from clearset.evaluate.probe import linear_probe
from clearset.features import embed
from clearset.pretrain import pretrain
from clearset.workspace import read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, describe, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10"])
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--crop-min", type=float, default=0.08, help="smallest crop area of a view (SimCLR 0.08)")
    ap.add_argument("--temperature", type=float, default=0.5, help="NT-Xent temperature (the CIFAR recipe 0.5)")
    ap.add_argument("--no-flip", action="store_true", help="no horizontal flips in the views")
    ap.add_argument("--baselines", default="random,efficientnet_lite0")
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / f"{args.dataset}.npz"), CACHE / f"ws_{args.dataset}")
    size = 28 if args.dataset == "mnist" else 32
    rows = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        root = pretrain(ws, method=args.method, model=args.model, image_size=size, epochs=args.epochs,
                        batch_size=args.batch_size, seed=seed, crop_min=args.crop_min, flip=not args.no_flip,
                        temperature=args.temperature,
                        name=f"{args.method}-{args.model}-e{args.epochs}-c{args.crop_min}{'-noflip' * args.no_flip}"
                             f"-t{args.temperature}-s{seed}")
        meta = read_json(root / "pretrain.meta.json")
        t1 = time.perf_counter()
        backbone = f"ws:{root.name}"
        embed(ws, backbone=backbone)
        acc = linear_probe(ws, features=f"{backbone}@{size}").accuracy
        history = [__import__("json").loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
        rows.append({"arm": args.method, "seed": seed, "probe_acc": acc, "pretrain_seconds": meta.get("seconds"),
                     "wall_seconds_this_run": round(time.perf_counter() - t0, 1), "embed_probe_seconds":
                     round(time.perf_counter() - t1, 1), "knn_acc_by_epoch": [h.get("knn_acc") for h in history],
                     "loss_by_epoch": [h["loss"] for h in history]})
        print(f"{args.method} seed {seed}: probe {acc:.4f}, pre-training {meta.get('seconds')} s", flush=True)
    for base in filter(None, args.baselines.split(",")):
        if base == "random":  # the same trunk, no pre-training: 0 epochs is refused, so 1 epoch at lr ~0
            root = pretrain(ws, method=args.method, model=args.model, image_size=size, epochs=1, lr=1e-12,
                            batch_size=args.batch_size, seed=0, name=f"random-{args.model}", monitor=False)
            backbone, bsize = f"ws:{root.name}", size
        else:
            backbone, bsize = base, size
        embed(ws, backbone=backbone, image_size=bsize)
        acc = linear_probe(ws, features=f"{backbone}@{bsize}").accuracy
        rows.append({"arm": base, "probe_acc": acc})
        print(f"{base}: probe {acc:.4f}", flush=True)
    ours = [r["probe_acc"] for r in rows if r["arm"] == args.method]
    write_result(ROOT / "bench" / "results" / f"pretrain_{args.dataset}.json",
                 {"bench": "pretrain_ssl", "date": time.strftime("%Y-%m-%d"), "dataset": args.dataset,
                  "method": args.method, "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
                  "image_size": size, "views": {"crop_min": args.crop_min, "flip": not args.no_flip},
                  "temperature": args.temperature,
                  "probe": describe(ours), "rows": rows})


if __name__ == "__main__":
    main()
