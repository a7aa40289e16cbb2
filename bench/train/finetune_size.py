"""Which input size the EfficientNet-Lite0 fine-tune should train at, chosen on a validation split (the
test labels never choose it): the first 5,000 CIFAR-10 training images, evaluated on train[45,000:].

Arms (one seed each: a pilot, to pick a size; the gaps it found, 6 and 2.5 points, are several times
the ~1.2-point seed spread measured at 5,000 images): `cifar-efficientnet-lite0-ft` at 64, 96 and 128 px
(crop padding size / 8) for its 5 epochs, and 128 px for 3 epochs, about the training time of 96 px for 5
(the equal-time check). The arms are kept with bench/train/airbench.py's (same names), so either script
reuses the other's.

    .venv/bin/python bench/train/finetune_size.py

Writes bench/results/train_finetune_size_validation.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/train/: airbench.py
from airbench import arm_tag, clearset_arm, remembered, workspace  # noqa: E402

import clearset  # noqa: E402
from common import write_result  # noqa: E402

RECIPE = "cifar-efficientnet-lite0-ft"
TRAIN_IMAGES = 5000
ARMS = ((64, 5), (96, 5), (128, 5), (128, 3))  # (px, epochs)


def main() -> None:
    ws, subset, _ = workspace(TRAIN_IMAGES, validation=True)
    base = clearset.train.get_recipe(RECIPE)
    rows = []
    for size, epochs in ARMS:
        overrides = {"crop_pad": size // 8, "image_size": size}
        recipe = base.with_overrides(**overrides)
        tag = arm_tag(RECIPE, overrides, epochs, TRAIN_IMAGES, True, epochs)  # one evaluation, at the end
        arm = remembered(f"{tag}-s0", lambda: clearset_arm(ws, subset, 0, recipe, epochs, epochs))
        rows.append({"image_size": size, "epochs": epochs, "validation_acc": arm["final_acc"],
                     "train_seconds": round(arm["train_seconds"], 1), "images_per_s": round(arm["images_per_s"], 1)})
        print(f"{size} px, {epochs} epochs: {arm['final_acc']:.4f} in {arm['train_seconds']:.0f} s", flush=True)
    best = max(rows, key=lambda r: r["validation_acc"])
    result = {"bench": "train_finetune_size_validation", "recipe": RECIPE, "train_images": TRAIN_IMAGES,
              "evaluated_on": "training images 45,000-49,999 (validation)", "seeds": 1, "arms": rows,
              "chosen": {"image_size": best["image_size"]},
              "equal_time": "128 px x 3 epochs against 96 px x 5 epochs (about the same training seconds)"}
    print(write_result("train_finetune_size_validation", result))


if __name__ == "__main__":
    main()
