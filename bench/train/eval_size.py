"""At which input size a fine-tuned EfficientNet-Lite0 should be *evaluated*, chosen on the validation split
(the test labels never choose it). Touvron et al. 2019 (FixRes) found that a network trained on random crops
sees objects at a different apparent size than at test time, and that testing at a larger size than the one
trained at recovers accuracy; whether that holds for the pad-and-crop augmentation of CIFAR is what this
measures.

Models: the finished validation-pilot runs of bench/train/finetune_size.py (the first 5,000 training images,
`cifar-efficientnet-lite0-ft` at 96 and 128 px), read from bench/.cache (run that script first). Each is
evaluated on train[45,000:] at several sizes (the images resized from 32 px by the same resampler training
used), with the recipe's mirror test-time augmentation and its precision. One model per size: a pilot, as
the size pilot was; the chosen ratio (evaluation size / training size) is the best mean over the models.

    .venv/bin/python bench/train/eval_size.py

Writes bench/results/train_eval_size_validation.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/train/: airbench.py
import torch  # noqa: E402
from airbench import workspace  # noqa: E402

from clearset.artifacts.runs import load_run  # noqa: E402
from clearset.data.loading import load_split  # noqa: E402
from clearset.io import read_json  # noqa: E402
from clearset.models.inference import predict  # noqa: E402
from clearset.ops.linear import accuracy  # noqa: E402
from common import write_result  # noqa: E402

RECIPE = "cifar-efficientnet-lite0-ft"
RATIOS = (1.0, 1.125, 1.25, 1.5)


def pilot_runs(ws) -> list:
    """The finished validation pilots of RECIPE at 96 px and above, oldest first."""
    runs = []
    for root in sorted((ws.root / "runs").glob(f"{RECIPE}-*")):
        if not (root / "run.meta.json").exists():
            continue
        run = load_run(root)
        if run.config["recipe"]["name"] == RECIPE and run.config["recipe"]["image_size"] >= 96:
            runs.append(run)
    return runs


def main() -> None:
    ws, _, _ = workspace(0, validation=True)
    runs = pilot_runs(ws)
    if not runs:
        sys.exit("no validation pilot runs in bench/.cache: run bench/train/finetune_size.py first")
    rows = []
    for run in runs:
        rec, cfg = run.config["recipe"], run.config
        net = run.load_model()
        mean, std = (torch.tensor(cfg["normalisation"][k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        bf16 = read_json(run.root / "run.meta.json").get("precision") == "bf16"
        for ratio in RATIOS:
            size = int(round(rec["image_size"] * ratio))
            images, labels, _ = load_split(ws, "test", size)
            t0 = time.perf_counter()
            logits = predict(net, images, mean, std, rec["eval_batch_size"], bf16, rec.get("tta", 0))
            seconds = time.perf_counter() - t0
            acc = accuracy(logits, labels)
            rows.append({"run": run.name, "train_size": rec["image_size"], "epochs": rec["epochs"],
                         "eval_size": size, "ratio": ratio, "validation_acc": round(acc, 4),
                         "eval_seconds": round(seconds, 1), "stored_acc": run.metrics[-1].get("eval_acc")})
            print(f"{run.name}: train {rec['image_size']} px x {rec['epochs']}, eval {size} px: {acc:.4f} "
                  f"({seconds:.0f} s)", flush=True)
    gain = {}
    for ratio in RATIOS:
        per = [r for r in rows if r["ratio"] == ratio]
        base = {r["run"]: r["validation_acc"] for r in rows if r["ratio"] == 1.0}
        gain[ratio] = float(np.mean([r["validation_acc"] - base[r["run"]] for r in per]))
    chosen = max(RATIOS, key=lambda r: gain[r])
    result = {"bench": "train_eval_size_validation", "recipe": RECIPE, "train_images": 5000,
              "evaluated_on": "training images 45,000-49,999 (validation)", "models": len(runs), "arms": rows,
              "mean_gain_over_train_size": {str(k): round(v, 4) for k, v in gain.items()},
              "chosen_ratio": chosen}
    print(write_result("train_eval_size_validation", result))


if __name__ == "__main__":
    main()
