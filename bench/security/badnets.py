"""Backdoor checks on CIFAR-10 (issue 26): BadNets 3x3 (checker, bottom-right) at 10% poisoning for
``--targets`` target labels, and clean models for the false-alarm side.

Per target: `clearset poison` the CIFAR-10 workspace, train ``--recipe`` (default cifar-resnet8-fast) on
the poisoned copy, measure clean test accuracy and attack success (share of the triggered test images of
other classes predicted as the target); then `clearset expose` (clean unlearning on 1% of the training
images) and the same two numbers for the exposed model plus the suspected target; then `clearset
scan-poison` and the precision / recall of its flags against the ground truth. Clean models: the same
recipe on the unpoisoned workspace with ``--clean-seeds`` seeds, exposed likewise (their scores are the
data a verdict threshold is calibrated on).

    .venv/bin/python bench/security/badnets.py [--targets 0,1,2] [--clean-seeds 3] [--attack badnets]

Writes bench/results/security_<attack>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import clearset
from clearset.data.loading import load_images
from clearset.models.inference import predict
from clearset.security.expose import expose
from clearset.security.poison import poison
from clearset.security.scan import scan
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402


def split_predictions(ws, run, split: str, state: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, true label) of the run's model (or of ``state``'s weights) on a split."""
    m = ws.manifest(["index", "split", "label"])
    rows = m[m["split"] == split]
    net = run.load_model()
    if state is not None:
        net.load_state_dict(state)
    norm = run.config["normalisation"]
    mean, std = (torch.tensor(norm[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    x = load_images(ws, rows["index"].to_numpy(), run.config["recipe"]["image_size"], desc=f"load {split}")
    return predict(net, x, mean, std).argmax(1), rows["label"].to_numpy()


def measure(ws, run, target: int | None, state: dict | None = None) -> dict:
    pred, y = split_predictions(ws, run, "test", state)
    out = {"clean_acc": float((pred == y).mean())}
    if target is not None:
        tp, _ = split_predictions(ws, run, "test_triggered", state)
        out["attack_success"] = float((tp == target).mean())
    return out


def exposed_state(result: dict) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(result["path"]).with_suffix(".safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="0,1,2")
    ap.add_argument("--clean-seeds", type=int, default=3)
    ap.add_argument("--attack", default="badnets")
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    args = ap.parse_args()
    base = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    rows = []
    for target in (int(t) for t in args.targets.split(",")):
        t0 = time.perf_counter()
        ws_path = CACHE / f"ws_cifar10_{args.attack}_r{args.rate:g}_t{target}"
        ws = clearset.Workspace(ws_path) if (ws_path / "security" / "poison_truth.parquet").exists() else \
            poison(base, ws_path, attack=args.attack, rate=args.rate, target=target)
        run = train(ws, recipe=args.recipe, seed=0)
        before = measure(ws, run, target)
        ex = expose(ws, run.root)
        after = measure(ws, run, target, exposed_state(ex))
        truth = pd.read_parquet(ws.dir("security") / "poison_truth.parquet").query("split == 'train'")
        flags = pd.read_parquet(scan(ws, run.root)).set_index("index").loc[truth["index"]]
        poisoned = truth["poisoned"].to_numpy()
        found = {}
        for col in ("flagged", "spectral_flag", "ac_flag"):
            f = flags[col].to_numpy()
            found[col] = {"precision": float(poisoned[f].mean()) if f.any() else None,
                          "recall": float(f[poisoned].mean()), "flagged": int(f.sum())}
        rows.append({"kind": "poisoned", "target": target, "before": before, "after_unlearning": after,
                     "suspected_target": ex["suspected_target"], "score": ex["score"], "margin": ex["margin"],
                     "reached_chance": ex["reached_chance"], "steps": ex["steps"], "scan": found,
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(f"target {target}: clean {before['clean_acc']:.3f} ASR {before['attack_success']:.3f} -> exposed "
              f"clean {after['clean_acc']:.3f} ASR {after['attack_success']:.3f}, suspected "
              f"{ex['suspected_target']} (score {ex['score']:.2f}); scan recall {found['flagged']['recall']:.2f}",
              flush=True)
    for seed in range(args.clean_seeds):
        run = train(base, recipe=args.recipe, seed=seed)
        ex = expose(base, run.root, seed=seed)
        rows.append({"kind": "clean", "seed": seed, "before": measure(base, run, None),
                     "after_unlearning": measure(base, run, None, exposed_state(ex)),
                     "suspected_target": ex["suspected_target"], "score": ex["score"], "margin": ex["margin"],
                     "reached_chance": ex["reached_chance"]})
        print(f"clean seed {seed}: score {ex['score']:.2f} on {ex['suspected_target']}", flush=True)
    poisoned_scores = [r["score"] for r in rows if r["kind"] == "poisoned"]
    clean_scores = [r["score"] for r in rows if r["kind"] == "clean"]
    write_result(ROOT / "bench" / "results" / f"security_{args.attack}.json",
                 {"bench": "security_badnets", "date": time.strftime("%Y-%m-%d"), "attack": args.attack,
                  "rate": args.rate, "recipe": args.recipe, "rows": rows,
                  "targets_found": sum(r["suspected_target"] == r["target"] for r in rows if r["kind"] == "poisoned"),
                  "score_gap": (min(poisoned_scores) - max(clean_scores)) if poisoned_scores and clean_scores
                  else None})


if __name__ == "__main__":
    main()
