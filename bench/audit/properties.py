"""The intrinsic-properties card's reference checks on the shared data (pixels in [0, 1], 1,000 random
images per draw, 3 draws):

- d_data of CIFAR-10 classes {0, 1} (airplane, automobile) against the authors' README value, 19
  (mazurowski-lab/intrinsic-properties, estimator from ppope/dimensions, k = 20);
- d_data(MNIST) < d_data(CIFAR-10) (the card's small-scale check);
- label sharpness K_F of CIFAR-10 {0, 1} with the correct different-label numerator (the README's 0.106
  came from the official code's same-label bug, so it should *not* be reproduced).

The estimate grows with the number of images it is computed on (neighbours come closer), so the
sweep over 1,000 / 2,500 / 5,000 / all 10,000 images of classes {0, 1} says at which size the README's
19 is matched. Also what the k - 1 normaliser clearset used before 2026-12-07 would have reported (19/18 x). d_repr
(the README's 24 on ImageNet ResNet-18 `layer4`) is not checked: no ImageNet ResNet-18 weights here.

    .venv/bin/python bench/audit/properties.py

Writes bench/results/audit_properties.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from clearset.audit import intrinsic_dimension, label_sharpness

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import SHARED, write_result  # noqa: E402

SAMPLES, DRAWS, K = 1000, 3, 20
README_D_DATA_CIFAR01 = 19


def draws(x: np.ndarray, y: np.ndarray) -> list[dict]:
    out = []
    for seed in range(DRAWS):
        pick = np.random.default_rng(seed).choice(len(x), SAMPLES, replace=False)
        px = x[pick].reshape(SAMPLES, -1).astype(np.float64) / 255.0
        d = intrinsic_dimension(px, k=K)
        kf, _, _ = label_sharpness(px, y[pick])
        out.append({"seed": seed, "d_data": round(d, 3), "d_data_k_minus_1": round(d * (K - 1) / (K - 2), 3),
                    "label_sharpness": round(kf, 4)})
    return out


def describe(rows: list[dict], key: str) -> dict:
    v = [r[key] for r in rows]
    return {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)), "values": v}


def main() -> None:
    with np.load(SHARED / "cifar10.npz") as z:
        cx, cy = z["x_train"], z["y_train"]
    with np.load(SHARED / "mnist.npz") as z:
        mx, my = z["x_train"], z["y_train"]
    two = np.isin(cy, [0, 1])
    sets = {"cifar10_classes_0_1": draws(cx[two], cy[two]), "cifar10": draws(cx, cy), "mnist": draws(mx, my)}
    result: dict = {"bench": "audit_properties", "samples": SAMPLES, "draws": DRAWS, "k": K,
                    "data": "train splits; CIFAR-10 is the shared JPEG-q75 copy", "sets": {}}
    for name, rows in sets.items():
        result["sets"][name] = {"draws": rows, **{key: describe(rows, key) for key in
                                                 ("d_data", "d_data_k_minus_1", "label_sharpness")}}
        print(f"{name}: d_data {result['sets'][name]['d_data']['mean']:.2f} "
              f"± {result['sets'][name]['d_data']['sd']:.2f}", flush=True)
    sweep = []
    for n in (1000, 2500, 5000, int(two.sum())):
        pick = np.random.default_rng(0).choice(int(two.sum()), n, replace=False)
        d = intrinsic_dimension(cx[two][pick].reshape(n, -1).astype(np.float64) / 255.0, k=K)
        sweep.append({"images": n, "d_data": round(d, 3)})
        print(f"cifar10 classes 0-1, {n} images: d_data {d:.2f}", flush=True)
    result["cifar10_classes_0_1_by_images"] = sweep
    s = result["sets"]
    result["checks"] = {
        "cifar10_0_1_vs_readme": {"readme": README_D_DATA_CIFAR01, "measured": s["cifar10_classes_0_1"]["d_data"]["mean"],
                                  "with_k_minus_1": s["cifar10_classes_0_1"]["d_data_k_minus_1"]["mean"],
                                  "by_images": {r["images"]: r["d_data"] for r in sweep}},
        "mnist_below_cifar10": bool(s["mnist"]["d_data"]["mean"] < s["cifar10"]["d_data"]["mean"]),
    }
    print(write_result("audit_properties", result))


if __name__ == "__main__":
    main()
