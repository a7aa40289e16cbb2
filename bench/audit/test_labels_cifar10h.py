"""Test-split label errors, judged by CIFAR-10H (issue 22, item 2): the audit ranks all 60,000 CIFAR-10
images (train + test, original labels) by label quality; the proxy truth is the ~79 test images whose
CIFAR-10H plurality (about 50 people per image) disagrees with the given label. Human labels only judge;
nothing here reads them before scoring.

Per fold seed (3): average precision (AP) of the test rows' ranking, and recall at k = the number of
proxy-true rows, 100 and 500, for
- ``cleanlab``: logistic regression with scikit-learn's objective at C = 1 (clearset's solver), 5-fold
  out-of-fold on the same EfficientNet-Lite0@128 features, ranked by each of cleanlab's label-quality
  methods (self_confidence, normalized_margin, confidence_weighted_entropy); the best mean AP is the
  baseline (chosen on these labels: an advantage for the baseline, stated);
- ``clearset``: the label_issues check with its defaults (and each ``robust`` mode), ranked by its
  ``label_quality``.
The target: clearset's AP >= 2x the baseline's.

    .venv/bin/python bench/audit/test_labels_cifar10h.py [--seeds 3]

Writes bench/results/audit_test_labels_cifar10h.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

import clearset
from clearset.audit.base import NEIGHBOURS_SHARED
from clearset.audit.label_issues import label_issues_check, oof_logreg
from clearset.ops.knn import knn
from clearset.vectors import normalise_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/audit/: cifar10n.py
from cifar10n import audit_data  # noqa: E402

from common import CACHE, SHARED, describe, write_result  # noqa: E402

QUALITY = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
ROBUST = ("none", "clean-refit", "divide-refit", "progressive")


def ranking_scores(bad: np.ndarray, truth: np.ndarray) -> dict:
    """``bad``: higher = more likely mislabelled (test rows only)."""
    order = np.argsort(-bad, kind="stable")
    out = {"ap": float(average_precision_score(truth, bad))}
    for k in (int(truth.sum()), 100, 500):
        out[f"recall_at_{k}"] = float(truth[order[:k]].sum() / truth.sum())
    return out



def main() -> None:
    from cleanlab.rank import get_label_quality_scores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    feats = np.asarray(clearset.embed(ws, backbone="efficientnet_lite0", image_size=128).load())
    m = ws.manifest(["label", "split"])
    labels = m["label"].to_numpy().astype(np.int64)
    test = np.flatnonzero(m["split"].to_numpy() == "test")
    counts = np.load(SHARED / "labels" / "cifar10h_counts.npy")
    truth = counts.argmax(1) != labels[test]
    x = normalise_features(feats)
    neighbours = knn(x, NEIGHBOURS_SHARED)
    runs = []
    for seed in range(args.seeds):
        lr1 = oof_logreg(x, labels, 10, c=1.0, seed=seed)
        base = {q: ranking_scores(-get_label_quality_scores(labels[test], lr1[test], method=q), truth) for q in QUALITY}
        ours = {}
        for mode in ROBUST:
            t = label_issues_check(audit_data(labels, feats, ws.classes(), neighbours), seed=seed,
                                   robust=mode).table.set_index("index")
            ours[mode] = ranking_scores(-t.loc[test, "label_quality"].to_numpy(), truth)
        runs.append({"seed": seed, "cleanlab_by_quality": base, "clearset_by_robust": ours})
        modes = ", ".join(f"{k} {v['ap']:.4f}" for k, v in ours.items())
        print(f"seed {seed}: cleanlab AP {max(v['ap'] for v in base.values()):.4f}, clearset AP {modes}", flush=True)
    best = max(QUALITY, key=lambda q: np.mean([r["cleanlab_by_quality"][q]["ap"] for r in runs]))
    base_ap = describe([r["cleanlab_by_quality"][best]["ap"] for r in runs])
    summary = {mode: describe([r["clearset_by_robust"][mode]["ap"] for r in runs]) for mode in ROBUST}
    result = {"bench": "audit_test_labels_cifar10h", "features": "efficientnet_lite0@128",
              "proxy_truth": "CIFAR-10H plurality != given test label", "positives": int(truth.sum()),
              "test_images": len(test), "fold_seeds": args.seeds, "cleanlab_best_quality": best,
              "cleanlab_ap": base_ap, "clearset_ap": summary,
              "ratio_default": summary["none"]["mean"] / base_ap["mean"], "target_ratio": 2.0, "runs": runs}
    print(f"AP: clearset {summary['none']['mean']:.4f} vs cleanlab ({best}) {base_ap['mean']:.4f}: "
          f"{result['ratio_default']:.2f}x")
    print(write_result("audit_test_labels_cifar10h", result))


if __name__ == "__main__":
    main()
