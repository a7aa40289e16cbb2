"""Multi-label candidates against human ambiguity: CIFAR-10 test images where the CIFAR-10H human label
distribution's top probability is below 0.7 count as ambiguous. Runs the label_issues and multilabel
checks on the CIFAR-10 workspace (train + test, clean labels; out-of-fold probabilities over all 60,000)
and reports the AUROC of the multilabel score on the 10,000 test images -- without and with the spatial
class maps (``--spatial``: per-location out-of-fold heads on EfficientNet-Lite0's 4 x 4 feature map),
and for the spatial run the AUROC of each signal alone.
Writes bench/results/audit_multilabel.json.

    .venv/bin/python bench/audit/multilabel.py [--workspace bench/.cache/ws_cifar10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import clearset
from clearset.audit import run_audit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import ROOT, SHARED, write_result  # noqa: E402

AMBIGUOUS_BELOW = 0.7


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=ROOT / "bench" / ".cache" / "ws_cifar10")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_multilabel.json")
    args = ap.parse_args()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), args.workspace)
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=128)
    run_audit(ws, checks=["label_issues", "multilabel"])
    m = ws.manifest()
    test_idx = m.loc[m["split"] == "test", "index"].to_numpy()
    ml = pd.read_parquet(ws.root / "audit" / "multilabel.parquet").set_index("index").loc[test_idx]
    human = np.load(SHARED / "labels" / "cifar10h_probs.npy")
    ambiguous = human.max(1) < AMBIGUOUS_BELOW
    auroc = roc_auc_score(ambiguous, ml["score"].to_numpy())
    t = time.perf_counter()
    run_audit(ws, checks=["multilabel"], spatial=True)
    spatial_seconds = time.perf_counter() - t
    sp = pd.read_parquet(ws.root / "audit" / "multilabel.parquet").set_index("index").loc[test_idx]
    spatial = {"seconds": round(spatial_seconds, 1),
               **{f"auroc_{k}": float(roc_auc_score(ambiguous, sp[k].to_numpy()))
                  for k in ("score", "oof_score", "spatial_score")},
               "flagged_multilabel": int(sp["is_multilabel"].sum()),
               "precision_of_flags": float(ambiguous[sp["is_multilabel"].to_numpy()].mean()),
               "recall_of_flags": float(sp["is_multilabel"].to_numpy()[ambiguous].mean())}
    print(f"spatial: {json.dumps(spatial)}")
    run_audit(ws, checks=["multilabel"])  # leave the default (non-spatial) table in the workspace
    flagged = ml["is_multilabel"].to_numpy()
    result = {"bench": "audit_multilabel", "date": time.strftime("%Y-%m-%d"), "features": "efficientnet_lite0@128",
              "ambiguous_definition": f"CIFAR-10H top probability < {AMBIGUOUS_BELOW}",
              "ambiguous_images": int(ambiguous.sum()), "test_images": len(test_idx), "auroc": float(auroc),
              "flagged_multilabel": int(flagged.sum()),
              "precision_of_flags": float(ambiguous[flagged].mean()) if flagged.any() else None,
              "recall_of_flags": float(flagged[ambiguous].mean()), "spatial": spatial}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"ambiguous test images: {ambiguous.sum()} of {len(test_idx)}; multilabel score AUROC {auroc:.3f}; "
          f"flags: {flagged.sum()} (precision {result['precision_of_flags']:.3f}, recall {result['recall_of_flags']:.3f})")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
