"""Training speed: clearset's trainer vs a plain PyTorch loop, same model, recipe and epochs, one run.

Baseline: the loop most people write — torchvision transforms (RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize) through a DataLoader (best of num_workers 0 and 2 on a short
probe), fp32, the recipe's SGD/one-cycle/label smoothing, batch size and epochs. clearset: `train()` with
the same recipe (uint8 tensor + whole-batch augmentation, channels_last, bf16 autocast where native),
and again in fp32, so the gain of the data path alone is visible too.
Both start from the same seed and are evaluated on the full CIFAR-10 test set.

    .venv/bin/python bench/train/cifar10.py [--recipe cifar-resnet8-fast] [--epochs 5] [--train-images 10000]

Writes bench/results/train_cifar10.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import clearset
from clearset.models.cifar import create_model
from clearset.train import get_recipe, train
from clearset.train.loop import lr_factor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402


def plain_loop(x_train, y_train, x_test, y_test, rec, seed: int, workers: int, max_batches: int | None = None):
    """The baseline; returns (images/s over the training epochs, test accuracy)."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    mean = (x_train / 255.0).mean((0, 1, 2))
    std = (x_train / 255.0).std((0, 1, 2))
    train_tf = T.Compose([T.ToPILImage(), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(mean, std)])
    test_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])

    class Arrays(Dataset):
        def __init__(self, x, y, tf):
            self.x, self.y, self.tf = x, y, tf

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.tf(self.x[i]), int(self.y[i])

    torch.manual_seed(seed)
    net = create_model(rec.model, 10)
    opt = torch.optim.SGD(net.parameters(), lr=rec.lr, momentum=rec.momentum, nesterov=True,
                          weight_decay=rec.weight_decay)
    loader = DataLoader(Arrays(x_train, y_train, train_tf), batch_size=rec.batch_size, shuffle=True,
                        num_workers=workers, persistent_workers=workers > 0)
    total = len(loader) * rec.epochs
    step, seen, t0 = 0, 0, time.perf_counter()
    for _ in range(rec.epochs):
        net.train()
        for xb, yb in loader:
            for g in opt.param_groups:
                g["lr"] = rec.lr * lr_factor(step, total, int(rec.warmup_epochs * len(loader)), rec.schedule)
            loss = F.cross_entropy(net(xb), yb, label_smoothing=rec.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            seen += len(xb)
            if max_batches and step >= max_batches:
                return seen / (time.perf_counter() - t0), None
    speed = seen / (time.perf_counter() - t0)
    net.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in DataLoader(Arrays(x_test, y_test, test_tf), batch_size=1024):
            correct += int((net(xb).argmax(1) == yb).sum())
    return speed, correct / len(x_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-images", type=int, default=10000, help="first N training images (0 = all 50,000)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_cifar10.json")
    args = ap.parse_args()
    rec = get_recipe(args.recipe).with_overrides(epochs=args.epochs)
    with np.load(SHARED / "cifar10.npz") as z:
        x_train, y_train, x_test, y_test = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    n = args.train_images or len(x_train)
    x_train, y_train = x_train[:n], y_train[:n]
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    subset = CACHE / f"train_first_{n}.parquet"
    pd.DataFrame({"index": np.arange(n)}).to_parquet(subset)  # the train split's first n rows are indices 0..n-1

    probe = {w: plain_loop(x_train, y_train, x_test, y_test, rec, 0, w, max_batches=8)[0] for w in (0, 2)}
    workers = max(probe, key=probe.get)
    print(f"baseline probe img/s by num_workers: {probe} -> {workers}", flush=True)
    rows = []
    for seed in map(int, args.seeds.split(",")):
        b_speed, b_acc = plain_loop(x_train, y_train, x_test, y_test, rec, seed, workers)
        print(f"seed {seed} baseline: {b_speed:.0f} img/s, test accuracy {b_acc:.4f}", flush=True)
        t = time.perf_counter()
        run = train(ws, recipe=rec, seed=seed, subset=subset, name=f"bench-{rec.name}-{n}-s{seed}", force=True)
        c_speed = sum(m["seconds"] * m["images_per_s"] for m in run.metrics) / sum(m["seconds"] for m in run.metrics)
        c_acc = run.metrics[-1]["eval_acc"]
        print(f"seed {seed} clearset: {c_speed:.0f} img/s, test accuracy {c_acc:.4f} "
              f"({time.perf_counter() - t:.0f} s with data loading)", flush=True)
        fp32 = train(ws, recipe=rec, seed=seed, subset=subset, name=f"bench-{rec.name}-{n}-s{seed}-fp32",
                     precision="fp32", force=True)
        f_speed = sum(m["seconds"] * m["images_per_s"] for m in fp32.metrics) / sum(m["seconds"] for m in fp32.metrics)
        print(f"seed {seed} clearset fp32: {f_speed:.0f} img/s, test accuracy {fp32.metrics[-1]['eval_acc']:.4f}",
              flush=True)
        rows.append({"seed": seed, "baseline_images_per_s": round(b_speed, 1), "baseline_test_acc": b_acc,
                     "clearset_images_per_s": round(c_speed, 1), "clearset_test_acc": c_acc,
                     "ratio": round(c_speed / b_speed, 2), "precision": run.config["precision"],
                     "clearset_fp32_images_per_s": round(f_speed, 1),
                     "clearset_fp32_test_acc": fp32.metrics[-1]["eval_acc"],
                     "ratio_fp32": round(f_speed / b_speed, 2)})
    result = {"bench": "train_cifar10", "date": time.strftime("%Y-%m-%d"), "recipe": rec.as_dict(),
              "train_images": n, "test_images": len(x_test), "baseline_num_workers": workers,
              "threads": torch.get_num_threads(), "runs": rows,
              "ratio_mean": round(float(np.mean([r["ratio"] for r in rows])), 2),
              "ratio_fp32_mean": round(float(np.mean([r["ratio_fp32"] for r in rows])), 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"ratio {result['ratio_mean']}x (fp32: {result['ratio_fp32_mean']}x) -> {args.out}")


if __name__ == "__main__":
    main()
