"""Robustness and the taxonomy of remaining mistakes of a CIFAR-10 model, on the real data.

1. ``--recipe`` (default cifar-resnet8-fast, 10 epochs) on all 50,000 training images.
2. Corruptions: the 15 common corruptions x 5 severities generated on the fly from the 10,000 test images
   (``--images`` to sample fewer), accuracy per type and severity; shift: CINIC-10's ImageNet images of the
   ten classes (../shared/data/cinic10_imagenet_shift.npz), a real CIFAR -> ImageNet shift.
3. Mistakes: EfficientNet-Lite0@128 features, the audit's label_issues / multilabel / class_pairs checks
   on the workspace, then every test error sorted into label error / ambiguous / confusable / other with
   CIFAR-10H as the human labels.

    .venv/bin/python bench/evaluate/robustness_cifar10.py [--images 10000]

Writes bench/results/robustness_cifar10.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import clearset
from clearset.audit import run_audit
from clearset.evaluate.mistakes import mistake_taxonomy
from clearset.evaluate.robustness import robustness
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "robustness_cifar10.json")
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    run = train(ws, recipe=args.recipe, seed=args.seed)
    print(f"{run.name}: test accuracy {run.metrics[-1]['eval_acc']:.4f}", flush=True)
    t = time.perf_counter()
    rob = robustness(run.root, images=args.images, shift=[SHARED / "cinic10_imagenet_shift.npz"], seed=args.seed)
    print(f"robustness ({time.perf_counter() - t:.0f} s): clean {rob['clean_acc']:.4f}, mean corruption "
          f"{rob['mean_corruption_acc']:.4f}, per severity {json.dumps(rob['per_severity'])}, shift "
          f"{json.dumps(rob['shift'])}", flush=True)
    t = time.perf_counter()
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=128)
    run_audit(ws, checks=["label_issues", "multilabel", "class_pairs"])
    mistakes = mistake_taxonomy(run.root, human_labels=SHARED / "labels" / "cifar10h_probs.npy")
    print(f"mistakes ({time.perf_counter() - t:.0f} s incl. embed + audit): {mistakes['errors']} errors "
          f"{json.dumps(mistakes['counts'])}", flush=True)
    out = {"bench": "robustness_cifar10", "date": time.strftime("%Y-%m-%d"), "run": run.name,
           "recipe": run.config["recipe"]["name"], "test_acc": run.metrics[-1]["eval_acc"],
           "robustness": {k: v for k, v in rob.items() if k != "path"},
           "mistakes": {k: v for k, v in mistakes.items() if k != "path"}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
