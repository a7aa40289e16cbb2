"""The time-to-accuracy figure of docs/train.md, from the train_* results of bench/train/airbench.py: test
accuracy against training minutes, the mean curve of each recipe's seeds and of the plain ResNet-18 loop
given the same time, the 90% and 93% targets dashed. Reads bench/results only (no training).

    .venv/bin/python bench/train/plot_time_to_accuracy.py

Writes docs/img/train_time_to_accuracy.png (the full training set) and train_time_to_accuracy_n5000.png
(the first 5,000 training images: the pretrained start against airbench).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clearset.reporting.plots import runs_time_to_accuracy

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {"train_time_to_accuracy": ("train_airbench", "train_airbench95", "train_efficientnet-lite0-ft",
                                      "train_efficientnet-lite0-ft128"),
           "train_time_to_accuracy_n5000": ("train_airbench_n5000", "train_efficientnet-lite0-ft_n5000")}


def mean_curve(runs: list[dict]) -> list[tuple[float, float]]:
    """Point-wise mean over seeds (up to the shortest curve)."""
    n = min(len(r["curve"]) for r in runs)
    return [tuple(p) for p in np.mean([np.array(r["curve"][:n], dtype=float) for r in runs], axis=0)]


def figure(out: str, results: tuple[str, ...]) -> None:
    curves: dict[str, list[tuple[float, float]]] = {}
    for name in results:
        path = ROOT / "bench" / "results" / f"{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        ours = result["clearset"]["runs"]
        curves[f"{result['clearset']['recipe']} ({len(ours)} seed{'s' * (len(ours) > 1)})"] = mean_curve(ours)
        theirs = result["baseline"]["runs"]
        if theirs:
            label = f"ResNet-18 loop, {result['clearset']['recipe']}'s time ({len(theirs)} seed{'s' * (len(theirs) > 1)})"
            curves[label] = mean_curve(theirs)
    if curves:
        print(runs_time_to_accuracy(curves, ROOT / "docs" / "img" / f"{out}.png"))


def main() -> None:
    for out, results in FIGURES.items():
        figure(out, results)


if __name__ == "__main__":
    main()
