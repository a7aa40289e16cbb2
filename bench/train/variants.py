"""Knowledge distillation, dataset reinforcement and TrAct vs plain training at equal epochs on CIFAR-10,
several seeds.

Setting (CPU-sized): the first ``--train-images`` CIFAR-10 training images, recipe ``--recipe`` for
``--epochs`` epochs, evaluated on the full test set. KD: the teacher is one ``--teacher-recipe`` run
(more epochs, a larger net) on the same images; the student's target is the teacher's softmax on the
same augmented batch (MEAL V2: no hard labels) — and, as a second variant, half hard labels.
Reinforcement: the same teacher's top-k probabilities on ``--ns`` stored augmentations per image, computed
once -- "strong" (crop, flip, 2 RandAugment ops, random erase: the card's +RA/RE) and "light" (crop and
flip, the recipe's own augmentations); the student replays them (top-10 = lossless for 10 classes; top-3
exercises the "smooth" densify). TrAct: lambda 0.1 on the first convolution, same recipe
and lr. Equal epochs = equal iterations for every arm. Reports mean and spread over seeds.

    .venv/bin/python bench/train/variants.py [--seeds 0,1,2] [--epochs 5] [--train-images 10000]

Writes bench/results/train_variants.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import clearset
from clearset.train import get_recipe, reinforce, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--teacher-recipe", default="cifar-resnet8-fast")
    ap.add_argument("--teacher-model", default="resnet20")
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ns", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_variants.json")
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    n = args.train_images
    subset = CACHE / f"train_first_{n}.parquet"
    pd.DataFrame({"index": np.arange(n)}).to_parquet(subset)
    t = time.perf_counter()
    teacher = train(ws, recipe=args.teacher_recipe, model=args.teacher_model, epochs=args.teacher_epochs,
                    subset=subset, seed=100)
    print(f"teacher {args.teacher_model} x {args.teacher_epochs} epochs: test accuracy "
          f"{teacher.metrics[-1]['eval_acc']:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    t = time.perf_counter()
    stored = {(aug, k): reinforce(ws, teachers=[teacher.root], ns=args.ns, topk=k, subset=subset, seed=0, augment=aug)
              for aug in ("strong", "light") for k in (10, 3)}
    reinforce_seconds = time.perf_counter() - t
    print(f"reinforce: {n} images x {args.ns} augmentations, strong and light, top-10 and top-3 "
          f"({reinforce_seconds:.0f} s)", flush=True)
    rec = get_recipe(args.recipe).with_overrides(epochs=args.epochs)
    variants = {"plain": {}, "kd": {"teachers": [teacher.root]},
                "kd+hard0.5": {"teachers": [teacher.root], "kd_hard_weight": 0.5}, "reinforced-top10": {"reinforced": stored["strong", 10].root},
                "reinforced-top3": {"reinforced": stored["strong", 3].root},
                "reinforced-light-top10": {"reinforced": stored["light", 10].root},
                "reinforced-light-top3": {"reinforced": stored["light", 3].root}, "tract": {"tract": 0.1}}
    results = {}
    for name, kw in variants.items():
        accs, secs = [], []
        for seed in map(int, args.seeds.split(",")):
            t = time.perf_counter()
            run = train(ws, recipe=rec, seed=seed, subset=subset, **kw)
            accs.append(run.metrics[-1]["eval_acc"])
            secs.append(sum(m["seconds"] for m in run.metrics))
            print(f"{name:16s} seed {seed}: test accuracy {accs[-1]:.4f} ({secs[-1]:.0f} s training)", flush=True)
        results[name] = {"test_acc": accs, "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                         "train_seconds_mean": float(np.mean(secs))}
    base = results["plain"]
    for name, r in results.items():
        r["delta_vs_plain"] = r["mean"] - base["mean"]
        r["helped"] = bool(r["delta_vs_plain"] > 2 * max(base["std"], r["std"]) / np.sqrt(len(r["test_acc"])))
        print(f"{name:16s} {r['mean']:.4f} +- {r['std']:.4f} (delta {r['delta_vs_plain']:+.4f}, helped: {r['helped']})")
    out = {"bench": "train_variants", "date": time.strftime("%Y-%m-%d"), "recipe": rec.as_dict(), "train_images": n,
           "teacher": {"model": args.teacher_model, "epochs": args.teacher_epochs,
                       "test_acc": teacher.metrics[-1]["eval_acc"]},
           "reinforcement": {"ns": args.ns, "topk": [10, 3], "augment": {"strong": "crop+flip+2 RandAugment ops (m9)+"
                             "random erase p0.25", "light": "crop+flip"}, "seconds_all": round(reinforce_seconds, 1)},
           "helped_rule": "mean gain > 2 standard errors of the noisier arm", "variants": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
