"""Label-issue detection on real human label noise: CIFAR-10 train (50,000) with CIFAR-10N labels.

Truth: the human label differs from the clean label (aggre 9.0% noise, worse 40.2%).
In one run, on the same features (EfficientNet-Lite0 ImageNet features at 128 px, signed-sqrt + L2
normalised for both methods):
- baseline: cleanlab.filter.find_label_issues (defaults) on 5-fold out-of-fold probabilities of
  scikit-learn LogisticRegression; label quality = self-confidence;
- clearset: the label_issues check with its defaults.
Reports precision, recall and F1 of the flags and AUROC of the label quality, then times the full
`clearset audit` (all checks) on the worse-label workspace with its peak memory.
Writes bench/results/audit_cifar10n.json.

    .venv/bin/python bench/audit/cifar10n.py [--labels aggre,worse] [--skip-full-audit]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from sklearn.model_selection import StratifiedKFold

import clearset
from clearset.audit import AuditData
from clearset.audit.label_issues import label_issues_check
from clearset.vectors import normalise_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, run_timed, write_result  # noqa: E402

BACKBONE, SIZE = "efficientnet_lite0", 128


def scores(flags: np.ndarray, quality: np.ndarray, truth: np.ndarray) -> dict:
    p, r, f, _ = precision_recall_fscore_support(truth, flags, average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "auroc": float(roc_auc_score(truth, -quality)),
            "flagged": int(flags.sum())}


def baseline(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from cleanlab.filter import find_label_issues

    probs = np.zeros((len(labels), labels.max() + 1))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, labels):
        probs[test] = LogisticRegression(max_iter=1000).fit(x[train], labels[train]).predict_proba(x[test])
    return find_label_issues(labels, probs), probs[np.arange(len(labels)), labels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="aggre,worse")
    ap.add_argument("--skip-full-audit", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_cifar10n.json")
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10n_worse", split="train",
                         labels=[str(SHARED / "labels" / "cifar10n_worse.npy")])
    feats = np.asarray(clearset.embed(ws, backbone=BACKBONE, image_size=SIZE).load())
    clean = np.load(SHARED / "labels" / "cifar10n_clean.npy")
    x = normalise_features(feats)
    result = {"bench": "audit_cifar10n", "date": time.strftime("%Y-%m-%d"), "features": f"{BACKBONE}@{SIZE}",
              "label_sets": {}}
    for name in args.labels.split(","):
        labels = np.load(SHARED / "labels" / f"cifar10n_{name}.npy")
        truth = labels != clean
        t = time.perf_counter()
        b_flags, b_quality = baseline(x, labels)
        b_time = time.perf_counter() - t
        t = time.perf_counter()
        data = AuditData(labels=labels, n_classes=10, class_names=ws.classes(), features=feats)
        ours = label_issues_check(data).table
        c_time = time.perf_counter() - t
        row = {"noise": float(truth.mean()),
               "baseline": {**scores(b_flags, b_quality, truth), "seconds": round(b_time, 1)},
               "clearset": {**scores(ours["is_label_issue"].to_numpy(), ours["label_quality"].to_numpy(), truth),
                            "seconds": round(c_time, 1)}}
        row["f1_gain"] = row["clearset"]["f1"] - row["baseline"]["f1"]
        result["label_sets"][name] = row
        for who in ("baseline", "clearset"):
            s = row[who]
            print(f"{name:6s} {who:9s} P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f} "
                  f"AUROC {s['auroc']:.3f} flagged {s['flagged']} ({s['seconds']} s)", flush=True)
        print(f"{name:6s} F1 gain {row['f1_gain']:+.3f}", flush=True)
    if not args.skip_full_audit:
        out = run_timed(["-c", "from clearset.cli import main; main()", "-q", "audit", str(ws.root), "--force"])
        summary = json.loads((ws.root / "audit" / "summary.json").read_text())
        result["full_audit"] = {"images": 50000, "wall_seconds": out["wall_s"], "peak_rss_mb": out["peak_rss_mb"],
                                "check_seconds": {k: v.get("seconds") for k, v in summary["checks"].items()}}
        print(f"full audit: {out['wall_s']} s, peak RSS {out['peak_rss_mb']} MB; per check: "
              f"{result['full_audit']['check_seconds']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
