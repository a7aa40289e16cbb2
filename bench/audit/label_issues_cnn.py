"""Does a CNN trained on the pixels improve label-issue detection on real human noise (CIFAR-10N)?

For each label set, 5-fold out-of-fold probabilities of ``--recipe`` (default cifar-resnet8-fast, 10
epochs) trained on the pixels of the other folds (``clearset oof``, through clearset's trainer); then
confident learning
(cleanlab find_label_issues, prune_by_class) on (a) the feature models alone (clearset's default:
logistic regression + kNN on EfficientNet-Lite0@128 features), (b) the CNN alone, (c) the mean of both;
with ``--clean`` also (d) the CNN trained per fold without the images the feature models flag within its
training folds (``clearset oof --clean``), alone and (e) averaged with the feature models.
Baselines: cleanlab's defaults on 5-fold logistic regression (scikit-learn's objective, C = 1) on the
same features, and, for every arm, cleanlab with its best ``filter_by`` on that arm's own probabilities
(the same CNN probabilities; issue 22). Reports precision, recall, F1, AUROC of label quality and the F1 gain over baseline.

    .venv/bin/python bench/audit/label_issues_cnn.py [--labels aggre,worse] [--folds 5] [--clean [--clean-epochs 20]]

Writes bench/results/label_issues_cnn.json (and caches the CNN OOF probabilities in bench/.cache).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import clearset
from clearset.audit.label_issues import oof_logreg, out_of_fold_probs
from clearset.oof import pixel_oof
from clearset.vectors import normalise_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402

sys.path.insert(0, str(ROOT / "bench" / "audit"))
from cifar10n import BACKBONE, SIZE, cleanlab_arms, scores  # noqa: E402  (bench/audit/cifar10n.py)


def main() -> None:
    from cleanlab.filter import find_label_issues

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="aggre,worse")
    ap.add_argument("--recipe", default="cifar-resnet8-fast")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean", action="store_true", help="also the CNN trained on cleaned training folds")
    ap.add_argument("--clean-epochs", type=int, default=None,
                    help="with --clean, also the cleaned-fold CNN trained this many epochs (arm cnn-clean-eN)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "label_issues_cnn.json")
    args = ap.parse_args()
    clean = np.load(SHARED / "labels" / "cifar10n_clean.npy")
    result = {"bench": "label_issues_cnn", "date": time.strftime("%Y-%m-%d"), "recipe": args.recipe,
              "folds": args.folds, "label_sets": {}}
    for name in args.labels.split(","):
        ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / f"ws_cifar10n_{name}", split="train",
                             labels=[str(SHARED / "labels" / f"cifar10n_{name}.npy")])
        labels = ws.manifest()["label"].to_numpy()
        truth = labels != clean
        x = normalise_features(np.asarray(clearset.embed(ws, backbone=BACKBONE, image_size=SIZE).load()))
        lr1 = oof_logreg(x, labels, 10, c=1.0, seed=args.seed)  # scikit-learn's objective at C = 1
        b_flags = find_label_issues(labels, lr1)  # cleanlab's defaults
        b_quality = lr1[np.arange(len(labels)), labels]
        feat = out_of_fold_probs(x, labels, 10, normalised=True)
        t = time.perf_counter()
        cnn = np.load(pixel_oof(ws, recipe=args.recipe, folds=args.folds, seed=args.seed))
        print(f"{name:6s} pixel OOF ({time.perf_counter() - t:.0f} s): agreement with the given labels "
              f"{(cnn.argmax(1) == labels).mean():.4f}", flush=True)
        arms = {"features": feat, "cnn": cnn, "features+cnn": (feat + cnn) / 2}
        if args.clean:
            t = time.perf_counter()
            cleaned = np.load(pixel_oof(ws, recipe=args.recipe, folds=args.folds, seed=args.seed, clean=True))
            print(f"{name:6s} pixel OOF, cleaned folds ({time.perf_counter() - t:.0f} s): accuracy vs clean labels "
                  f"{(cleaned.argmax(1) == clean).mean():.4f} (uncleaned {(cnn.argmax(1) == clean).mean():.4f})",
                  flush=True)
            arms.update({"cnn-clean": cleaned, "features+cnn-clean": (feat + cleaned) / 2})
        if args.clean and args.clean_epochs:
            e = args.clean_epochs
            t = time.perf_counter()
            longer = np.load(pixel_oof(ws, recipe=args.recipe, folds=args.folds, seed=args.seed, clean=True, epochs=e))
            print(f"{name:6s} pixel OOF, cleaned folds, {e} epochs ({time.perf_counter() - t:.0f} s): accuracy vs "
                  f"clean labels {(longer.argmax(1) == clean).mean():.4f}", flush=True)
            arms.update({f"cnn-clean-e{e}": longer, f"features+cnn-clean-e{e}": (feat + longer) / 2})
        row = {"noise": float(truth.mean()), "baseline": scores(b_flags, b_quality, truth)}
        for arm, p in arms.items():
            flags = find_label_issues(labels, p, filter_by="prune_by_class")
            row[arm] = scores(flags, p[np.arange(len(labels)), labels], truth)
            row[arm]["f1_gain"] = row[arm]["f1"] - row["baseline"]["f1"]
            # the fair baseline for this arm: cleanlab on the same probabilities, its best filter_by (chosen
            # on these labels: an advantage for the baseline)
            same = cleanlab_arms(labels, p, truth)
            best = max(same, key=lambda fb: same[fb]["f1"])
            row[arm]["cleanlab_best_same_probs"] = {"filter_by": best, **same[best]}
            row[arm]["f1_vs_cleanlab_best_same_probs"] = row[arm]["f1"] - same[best]["f1"]
            print(f"{name:6s} {arm:13s} P {row[arm]['precision']:.3f} R {row[arm]['recall']:.3f} "
                  f"F1 {row[arm]['f1']:.3f} (gain {row[arm]['f1_gain']:+.3f}) AUROC {row[arm]['auroc']:.3f}", flush=True)
        result["label_sets"][name] = row
        result["clean_epochs"] = args.clean_epochs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
