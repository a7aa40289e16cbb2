"""Open-set recognition as Vaze et al. (ICLR 2022) measure it: the five standard CIFAR-10 6/4 splits,
MSP, MLS and energy scores, AUROC and OSCR, and the paper's central claim -- a better closed-set
classifier is a better open-set detector (AUROC rises with closed-set accuracy).

For every split (six known classes, the four others unknown; the splits of the paper's code,
data/open_set_splits/osr_splits.py 'cifar-10-10') and every ``--recipes`` entry (``recipe[:epochs]``,
weaker and stronger closed-set models), a model is trained on the known classes' training images only
and tested on the whole CIFAR-10 test set. Reported per recipe: closed-set accuracy, AUROC and OSCR of
each score, mean ± sd over the splits; MLS against MSP paired over the (split, recipe) models
(clearset.ops.stats); and the Pearson and Spearman correlation of closed-set accuracy with MLS AUROC over
all models, with a plot.

    .venv/bin/python bench/evaluate/openset_splits.py [--recipes linear-probe,cifar-resnet8-fast:2,cifar-resnet8-fast:10]
        [--splits 0,1,2,3,4] [--seed 0]

Writes bench/results/openset_splits.json and openset_splits.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scipy import stats

import clearset
from clearset.evaluate.evaluation import evaluate_run
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, compare, describe, write_result  # noqa: E402

# the known classes of the five CIFAR-10 6/4 splits (Neal et al. 2018, as in Vaze et al.'s code)
SPLITS = [[0, 6, 4, 9, 1, 7], [7, 6, 4, 9, 0, 1], [1, 5, 7, 3, 9, 4], [8, 6, 1, 9, 0, 7], [2, 4, 1, 7, 9, 6]]
SCORES = ("max_softmax", "max_logit", "energy")


def parse_recipes(spec: str) -> list[tuple[str, int | None]]:
    out = []
    for item in spec.split(","):
        name, _, epochs = item.partition(":")
        out.append((name, int(epochs) if epochs else None))
    return out


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for label in sorted({p["recipe"] for p in points}):
        mine = [p for p in points if p["recipe"] == label]
        ax.scatter([p["closed_set_accuracy"] for p in mine], [p["max_logit"]["auroc"] for p in mine], label=label)
    ax.set_xlabel("closed-set accuracy (known classes)")
    ax.set_ylabel("open-set AUROC (max logit)")
    ax.set_title("CIFAR-10 6/4, five splits")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="linear-probe,cifar-resnet8-fast:2,cifar-resnet8-fast:10")
    ap.add_argument("--splits", default="0,1,2,3,4")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    recipes = parse_recipes(args.recipes)
    t0 = time.perf_counter()
    points = []
    for s in (int(v) for v in args.splits.split(",")):
        for name, epochs in recipes:
            run = train(ws, recipe=name, epochs=epochs, seed=args.seed, known_classes=SPLITS[s])
            m = evaluate_run(run.root)
            o = m["openset"]
            label = name + (f":{epochs}" if epochs else "")
            points.append({"split": s, "recipe": label, "closed_set_accuracy": o["closed_set_accuracy"],
                           **{k: o[k] for k in SCORES}, "train_seconds": round(sum(x["seconds"] for x in run.metrics), 1)})
            print(f"split {s} {label:24s} closed-set {o['closed_set_accuracy']:.4f}  AUROC MSP "
                  f"{o['max_softmax']['auroc']:.4f} MLS {o['max_logit']['auroc']:.4f} energy {o['energy']['auroc']:.4f}  "
                  f"OSCR MLS {o['max_logit']['oscr']:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    per_recipe = {}
    for label in dict.fromkeys(p["recipe"] for p in points):
        mine = [p for p in points if p["recipe"] == label]
        per_recipe[label] = {"splits": len(mine), "closed_set_accuracy": describe([p["closed_set_accuracy"] for p in mine]),
                             **{f"{k}_{m}": describe([p[k][m] for p in mine]) for k in SCORES for m in ("auroc", "oscr")}}
    acc = [p["closed_set_accuracy"] for p in points]
    mls = [p["max_logit"]["auroc"] for p in points]
    result = {"bench": "openset_splits", "date": time.strftime("%Y-%m-%d"), "splits": [SPLITS[p] for p in
                                                                                     sorted({q["split"] for q in points})],
              "seed": args.seed, "per_recipe": per_recipe, "points": points,
              "mls_vs_msp_auroc": compare(mls, [p["max_softmax"]["auroc"] for p in points], paired=True),
              "energy_vs_msp_auroc": compare([p["energy"]["auroc"] for p in points],
                                             [p["max_softmax"]["auroc"] for p in points], paired=True)}
    if len(points) > 2:
        result["accuracy_vs_mls_auroc"] = {"pearson": float(stats.pearsonr(acc, mls).statistic),
                                           "spearman": float(stats.spearmanr(acc, mls).statistic), "models": len(points)}
    png = ROOT / "bench" / "results" / "openset_splits.png"
    plot(points, png)
    for label, r in per_recipe.items():
        print(f"{label:24s} closed-set {r['closed_set_accuracy']['mean']:.4f} ± {r['closed_set_accuracy']['sd']:.4f}  "
              f"AUROC MSP {r['max_softmax_auroc']['mean']:.4f} MLS {r['max_logit_auroc']['mean']:.4f} "
              f"energy {r['energy_auroc']['mean']:.4f}  OSCR MLS {r['max_logit_oscr']['mean']:.4f}")
    print("accuracy vs MLS AUROC:", result.get("accuracy_vs_mls_auroc"))
    print(f"-> {write_result('openset_splits', result)}, {png}")


if __name__ == "__main__":
    main()
