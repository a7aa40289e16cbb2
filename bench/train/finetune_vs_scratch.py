"""Pretrained start against training from scratch at equal time, from two bench/train/airbench.py results
(no training here): EfficientNet-Lite0 fine-tuned from ImageNet (`cifar-efficientnet-lite0-ft`) against
`cifar-airbench`, on the same training images and the same evaluation set, seed for seed.

Equal time: T = the shorter of the two mean training times; each seed's accuracy at T is its last
evaluation at or before T (a recipe whose run is longer is judged before it finishes). Also the final
accuracies with their training seconds. Difference: Welch's t-test over seeds (scipy).

    .venv/bin/python bench/train/finetune_vs_scratch.py --suffix _n5000   # 5,000 training images
    .venv/bin/python bench/train/finetune_vs_scratch.py --suffix _validation

Writes bench/results/train_finetune_vs_scratch<suffix>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import ROOT, compare, describe, write_result  # noqa: E402

ARMS = {"finetune": "train_efficientnet-lite0-ft", "scratch": "train_airbench"}


def at(curve: list, seconds: float) -> float | None:
    within = [a for s, a in curve if s <= seconds + 0.051]  # curve seconds are rounded to 0.1
    return within[-1] if within else None



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suffix", default="", help="the result names' suffix, e.g. _n5000 or _validation")
    args = ap.parse_args()
    runs = {}
    for arm, name in ARMS.items():
        path = ROOT / "bench" / "results" / f"{name}{args.suffix}.json"
        if not path.exists():
            sys.exit(f"{path}: missing; run bench/train/airbench.py for it first")
        runs[arm] = json.loads(path.read_text())["clearset"]["runs"]
    t = min(float(np.mean([r["train_seconds"] for r in rs])) for rs in runs.values())
    out: dict = {"bench": f"train_finetune_vs_scratch{args.suffix}", "equal_time_seconds": round(t, 1),
                 "recipes": {"finetune": "cifar-efficientnet-lite0-ft", "scratch": "cifar-airbench"}}
    for what, value in (("at_equal_time", lambda r: at(r["curve"], t)), ("final", lambda r: r["final_acc"])):
        vals = {arm: [v for v in map(value, rs) if v is not None] for arm, rs in runs.items()}
        entry = {arm: describe(v) for arm, v in vals.items() if v}
        if all(len(v) > 1 for v in vals.values()):
            c = compare(vals["finetune"], vals["scratch"])  # Welch: independent runs
            entry.update({"difference": c["diff"], "difference_ci95": c["ci95"], "welch_p": c["p"],
                          "significant_at_0.05": c["significant"]})
        out[what] = entry
    out["train_seconds"] = {arm: describe([r["train_seconds"] for r in rs]) for arm, rs in runs.items()}
    print(json.dumps({k: out[k] for k in ("equal_time_seconds", "at_equal_time", "final")}, indent=1))
    print(write_result(f"train_finetune_vs_scratch{args.suffix}", out))


if __name__ == "__main__":
    main()
