"""Calibrate and check near-duplicate detection on real images with planted edited copies.

1,000 random CIFAR-10 training images get one edited copy each (200 per edit: JPEG re-encoding at
quality 30-60, downscale to 20-26 px and back, a crop of 2-5 px per side resized back, a 2-3 px shift,
a colour change of brightness/contrast/saturation/hue). Copies go through clearset ingest + embed like
any dataset and are searched against all 50,000 originals. A planted copy counts as found when the
(copy, original) pair is flagged; precision counts every flagged pair that involves a copy.
Representations compared: embedding cosine, normalised low-resolution pixels, and both (the pair must
pass both thresholds). Also reports the CIFAR-10 train/test leakage at the chosen default.
Writes bench/results/audit_duplicates.json.

    .venv/bin/python bench/audit_duplicates.py [--workspace bench/.cache/ws_cifar10]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

import clearset
from clearset.audit.duplicates import DEFAULT_THRESHOLD, find_duplicates, pixel_signature, PIXEL_THRESHOLD
from clearset.audit.knn import knn, l2_normalise

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLEARSET_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / ".cache"
EDITS = ["jpeg", "resize", "crop", "shift", "colour"]


def edit(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    im = Image.fromarray(img)
    h, w = img.shape[:2]
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.integers(30, 61)))
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "resize":
        s = int(rng.integers(20, 27))
        return np.asarray(im.resize((s, s), Image.BILINEAR).resize((w, h), Image.BILINEAR))
    if kind == "crop":
        a, b, c, d = rng.integers(2, 6, 4)
        return np.asarray(im.crop((a, b, w - c, h - d)).resize((w, h), Image.BILINEAR))
    if kind == "shift":
        dx, dy = rng.integers(2, 4, 2) * rng.choice([-1, 1], 2)
        return np.roll(img, (int(dy), int(dx)), axis=(0, 1))
    if kind == "colour":
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.75, 1.25))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.75, 1.25))
        im = ImageEnhance.Color(im).enhance(rng.uniform(0.5, 1.5))
        hsv = np.asarray(im.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.integers(-20, 21))) % 256
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    raise ValueError(kind)


def evaluate(pairs, n_orig: int, originals: np.ndarray, kinds: list[str]) -> dict:
    """Recall per edit and precision over flagged pairs involving a planted copy."""
    a, b = pairs["index"].to_numpy(), pairs["duplicate_index"].to_numpy()
    involves = b >= n_orig  # copies are indexed after the originals, so they are always the larger index
    copy_pos = b[involves] - n_orig
    correct = a[involves] == originals[copy_pos]
    found = np.zeros(len(originals), bool)
    found[copy_pos[correct]] = True
    kinds = np.array(kinds)
    return {"recall": float(found.mean()), "precision": float(correct.mean()) if involves.any() else 1.0,
            "flagged_pairs_with_copies": int(involves.sum()),
            "recall_by_edit": {k: float(found[kinds == k].mean()) for k in EDITS},
            "pairs_among_originals": int((~involves).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=CACHE / "ws_cifar10",
                    help="a CIFAR-10 workspace embedded with efficientnet_lite0@128 (bench/embed_cifar10.py)")
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_duplicates.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), args.workspace)
    feats = clearset.embed(ws, backbone="efficientnet_lite0", image_size=128).load()
    m = ws.manifest()
    train = np.flatnonzero(m["split"].to_numpy() == "train")
    x_train = np.load(SHARED / "cifar10.npz")["x_train"]
    rng = np.random.default_rng(0)
    originals = np.sort(rng.choice(len(train), args.copies, replace=False))
    kinds = [EDITS[i % len(EDITS)] for i in range(args.copies)]
    copies = np.stack([edit(x_train[o], k, rng) for o, k in zip(originals, kinds)])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE / "planted.npz", x=copies, y=np.zeros(len(copies), np.int64))
    pws = clearset.ingest(str(CACHE / "planted.npz"), CACHE / "ws_planted", force=True)
    pfeats = clearset.embed(pws, backbone="efficientnet_lite0", image_size=128, force=True).load()

    n = len(train)
    all_feats = np.concatenate([np.asarray(feats[train]), pfeats])
    all_pix = np.concatenate([pixel_signature(x_train), pixel_signature(copies)])
    results = {}
    # sweep each representation alone, then the default combination
    for t in (0.85, 0.88, 0.90, 0.92, 0.94, 0.96):
        pairs = find_duplicates(all_feats, None, threshold=t, pixel_signatures=None)
        results[f"embedding>={t}"] = evaluate(pairs, n, originals, kinds)
    for t in (0.80, 0.85, 0.90, 0.93, 0.95):
        pairs = find_duplicates(all_pix, None, threshold=t, pixel_signatures=None)
        results[f"pixels>={t}"] = evaluate(pairs, n, originals, kinds)
    default = find_duplicates(all_feats, None, pixel_signatures=all_pix)
    results["default"] = evaluate(default, n, originals, kinds)
    for name, r in results.items():
        print(f"{name:18s} recall {r['recall']:.3f} precision {r['precision']:.3f} "
              f"(pairs among originals {r['pairs_among_originals']}) "
              + " ".join(f"{k} {v:.2f}" for k, v in r["recall_by_edit"].items()), flush=True)

    # leakage on the real dataset at the default
    summary = clearset.audit.run_audit(ws, checks=["duplicates"], force=True)["checks"]["duplicates"]
    out = {"bench": "audit_duplicates", "date": time.strftime("%Y-%m-%d"), "copies": args.copies,
           "edits": EDITS, "default_threshold_embedding": DEFAULT_THRESHOLD,
           "default_threshold_pixels": PIXEL_THRESHOLD, "results": results,
           "cifar10_leakage": {k: summary[k] for k in summary if k.startswith(("leaked", "near", "exact",
                                                                                  "cross"))},
           "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"default: recall {results['default']['recall']:.3f} precision {results['default']['precision']:.3f}")
    print(f"CIFAR-10 test images with a near-duplicate in train: {summary.get('leaked_test_images')} "
          f"({100 * summary.get('leaked_test_share', 0):.2f}%) -> {args.out}")


if __name__ == "__main__":
    main()
