"""Full CIFAR-10 training runs and their evaluation beyond top-1.

1. ``--recipe`` (default cifar-resnet8-fast) on all 50,000 training images -> CIFAR-10 test accuracy,
   ECE, adaptive ECE, NLL and the CIFAR-10H metrics (human plurality / multi-label accuracy, expected
   agreement, cross-entropy, variable top-k) from ../shared/data/labels/cifar10h_probs.npy.
2. Open-set: the same recipe trained on 6 known classes (airplane, automobile, bird, cat, deer, dog;
   unknown: frog, horse, ship, truck), AUROC and FPR@95%TPR of max-logit, max-softmax and energy.
3. Optionally (``--resnet18-epochs N``) cifar-resnet18 for N epochs (N = what fits in 30 minutes).

    .venv/bin/python bench/train/eval_cifar10.py [--epochs 10] [--resnet18-epochs 0]

Writes bench/results/train_eval_cifar10.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import clearset
from clearset.evaluate.evaluation import evaluate_run
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402

KNOWN = [0, 1, 2, 3, 4, 5]
KEYS = ("top1", "top5", "mean_per_class_accuracy", "nll", "brier", "ece", "adaptive_ece",
        "human_plurality_accuracy", "human_multilabel_accuracy", "human_expected_agreement", "human_cross_entropy")


def summary(run, metrics) -> dict:
    out = {k: metrics.get(k) for k in KEYS}
    out["variable_topk"] = metrics.get("variable_topk", {}).get("accuracy")
    out["train_seconds"] = round(sum(m["seconds"] for m in run.metrics), 1)
    out["epochs"] = len(run.metrics)
    out["images_per_s"] = round(sum(m["images_per_s"] * m["seconds"] for m in run.metrics) / out["train_seconds"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--resnet18-epochs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_eval_cifar10.json")
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    human = SHARED / "labels" / "cifar10h_probs.npy"
    result = {"bench": "train_eval_cifar10", "date": time.strftime("%Y-%m-%d"), "runs": {}}
    if args.out.exists():  # keep runs this invocation does not redo (e.g. the 26-minute ResNet-18), marked
        earlier = json.loads(args.out.read_text())
        origin = {"date": earlier.get("date"), "commit": earlier.get("provenance", {}).get("commit")}
        result["runs"] = {name: {"carried_over": origin, **r} if "carried_over" not in r else r
                          for name, r in earlier.get("runs", {}).items()}
    run = train(ws, recipe=args.recipe, epochs=args.epochs, seed=args.seed)
    result["runs"][args.recipe] = summary(run, evaluate_run(run.root, human_labels=human))
    print(args.recipe, json.dumps(result["runs"][args.recipe]), flush=True)
    osr = train(ws, recipe=args.recipe, epochs=args.epochs, seed=args.seed, known_classes=KNOWN)
    m = evaluate_run(osr.root)
    result["openset"] = {"known": [ws.classes()[c] for c in KNOWN], "closed_set_top1": m["top1"], **m["openset"]}
    print("open-set", json.dumps(result["openset"]), flush=True)
    if args.resnet18_epochs:
        r18 = train(ws, recipe="cifar-resnet18", epochs=args.resnet18_epochs, seed=args.seed)
        result["runs"]["cifar-resnet18"] = summary(r18, evaluate_run(r18.root, human_labels=human))
        print("cifar-resnet18", json.dumps(result["runs"]["cifar-resnet18"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
