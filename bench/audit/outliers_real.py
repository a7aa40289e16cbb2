"""The outlier check on real out-of-distribution images planted into CIFAR-10 (issue 22, item 6): its
threshold (robust z 4.0) was set on synthetic Gaussians only.

Workspace: the 50,000 CIFAR-10 training images plus 600 planted ones, each given a random CIFAR-10 label
(junk that slipped into a labelled set): 200 MNIST digits (grey, padded 28 -> 32 px, RGB), 200 noise
images (100 uniform pixel noise, 100 smooth multi-octave noise), 200 fractals (clearset's builtin
renderer). Junk often comes in bulk, so two draws plant 200 of each kind (seeds 0 and 1: other images,
other positions; such a kind forms its own neighbourhood) and one draw plants 10 of each (seed 2, sparse
junk). Nothing is tuned here; every draw is reported at the check's defaults. Per draw: precision and recall of ``is_outlier`` against the
planted set, recall per kind, AUROC of ``outlier_score``, and the precision/recall at other thresholds
(the curve, to see where the default sits). Features: EfficientNet-Lite0@128 (the audit's default).

    .venv/bin/python bench/audit/outliers_real.py

Writes bench/results/audit_outliers_real.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import clearset
from clearset.audit import run_audit
from clearset.data.fractals import FractalConfig, render, smooth_noise
from clearset.io import atomic_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, SHARED, write_result  # noqa: E402

DRAWS = ((0, 200), (1, 200), (2, 10))  # (seed, images per kind)
THRESHOLDS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


def planted(seed: int, per_kind: int) -> tuple[np.ndarray, np.ndarray]:
    """(3 x per_kind, 32, 32, 3) uint8 out-of-distribution images and their kinds."""
    rng = np.random.default_rng([seed, 22])
    with np.load(SHARED / "mnist.npz") as z:
        digits = z["x_train"][rng.choice(len(z["x_train"]), per_kind, replace=False)]
    digits = np.repeat(np.pad(digits, ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=3)
    uniform = rng.integers(0, 256, (per_kind // 2, 32, 32, 3), dtype=np.uint8)
    smooth = np.stack([(smooth_noise(rng, 32) * 255).clip(0, 255).astype(np.uint8) for _ in range(per_kind // 2)])
    cfg = FractalConfig(classes=max(1, per_kind // 10), per_class=10, size=32, seed=100 + seed)
    fractals = np.stack([render(cfg, g) for g in range(per_kind)])
    kinds = np.array(["mnist"] * per_kind + ["noise"] * per_kind + ["fractal"] * per_kind)
    return np.concatenate([digits, uniform, smooth, fractals]).astype(np.uint8), kinds


def workspace(seed: int, per_kind: int):
    """CIFAR-10 train with the planted images at random positions (bench/.cache only) -> (ws, planted
    positions, their kinds)."""
    with np.load(SHARED / "cifar10.npz") as z:
        x, y, names = z["x_train"], z["y_train"], z["class_names"]
    extra, kinds = planted(seed, per_kind)
    rng = np.random.default_rng([seed, 23])
    order = rng.permutation(len(x) + len(extra))
    xs = np.concatenate([x, extra])[order]
    ys = np.concatenate([y, rng.integers(0, 10, len(extra))])[order]
    is_planted = np.concatenate([np.zeros(len(x), bool), np.ones(len(extra), bool)])[order]
    kind = np.concatenate([np.array([""] * len(x)), kinds])[order]
    path = CACHE / f"cifar10_planted_ood_s{seed}_n{per_kind}.npz"
    if not path.exists():
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, x_train=xs, y_train=ys, class_names=names)
    ws = clearset.ingest(str(path), CACHE / f"ws_cifar10_planted_ood_s{seed}_n{per_kind}")
    return ws, is_planted, kind


def one_draw(seed: int, per_kind: int) -> dict:
    ws, truth, kind = workspace(seed, per_kind)
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=128)
    summary = run_audit(ws, checks=["outliers"])["checks"]["outliers"]
    t = pd.read_parquet(ws.root / "audit" / "outliers.parquet").sort_values("index")
    score = np.zeros(len(truth))
    score[t["index"].to_numpy()] = t["outlier_score"].to_numpy()
    flags = np.zeros(len(truth), bool)
    flags[t["index"].to_numpy()] = t["is_outlier"].to_numpy()

    def pr(f: np.ndarray) -> dict:
        tp = int((f & truth).sum())
        return {"flagged": int(f.sum()), "precision": tp / max(1, int(f.sum())), "recall": tp / int(truth.sum())}

    out = {"seed": seed, "per_kind": per_kind, "planted": int(truth.sum()), "default": pr(flags), "auroc": float(roc_auc_score(truth, score)),
           "recall_by_kind": {k: float(flags[kind == k].mean()) for k in ("mnist", "noise", "fractal")},
           "curve": {str(th): pr(score > th) for th in THRESHOLDS}, "check_summary": summary}
    print(f"seed {seed}: default P {out['default']['precision']:.3f} R {out['default']['recall']:.3f} "
          f"({out['default']['flagged']} flagged), AUROC {out['auroc']:.3f}, by kind {out['recall_by_kind']}", flush=True)
    return out


def main() -> None:
    draws = [one_draw(seed, per_kind) for seed, per_kind in DRAWS]
    print(write_result("audit_outliers_real", {
        "bench": "audit_outliers_real", "base": "CIFAR-10 train (50,000), the shared JPEG-q75 copy",
        "kinds": ["mnist", "noise (half uniform, half smooth)", "fractal"],
        "features": "efficientnet_lite0@128", "threshold_default": 4.0, "draws": draws}))


if __name__ == "__main__":
    main()
