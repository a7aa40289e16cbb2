"""Calibrate and check near-duplicate detection on real images with planted edited copies.

1,000 random CIFAR-10 training images get one edited copy each (200 per edit: JPEG re-encoding at
quality 30-60, downscale to 20-26 px and back, a crop of 2-5 px per side resized back, a 2-3 px shift,
a colour change of brightness/contrast/saturation/hue). Copies go through clearset ingest + embed like
any dataset and are searched against all 50,000 originals. A planted copy counts as found when the
(copy, original) pair is flagged; precision counts every flagged pair that involves a copy.
Compared: embedding cosine alone, the pixel signature alone, and clearset's default (candidates from
both, verified by aligned similarity over shifts and zooms), with a threshold sweep. Also reports the CIFAR-10 train/test leakage at the chosen default.
The threshold and the candidate floors were chosen on this set (seed 0). ``--set fresh`` plants another
set (seed 1) with edits never used to choose a threshold (JPEG quality 15-29, downscale to 16-19 px, crops
of 6-7 px per side, shifts of 4-5 px, stronger colour changes, and mirrored copies); its misses (crops and
shifts beyond the search) led to the widened search of 2026-12-07, so it is a development set now.
``--set report`` (seed 2, looked at only after the default was frozen) draws every edit's strength from
the whole envelope of the two (JPEG 15-60, downscale to 16-26 px, crops of 2-7 px, shifts of 2-5 px, the
stronger colour changes, mirror) and adds pairs of edits neither had (crop + JPEG, shift + mirror, colour +
downscale). Real precision (pairs among the originals, looked at by a person): duplicates_real.py.
Writes bench/results/audit_duplicates{,_fresh,_report}.json.

    .venv/bin/python bench/audit/duplicates.py [--workspace bench/.cache/ws_cifar10] [--set calibration|fresh|report]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

import clearset
from clearset.audit.duplicates import (
    DEFAULT_THRESHOLD,
    EMBEDDING_FLOOR,
    NEIGHBOURS,
    PIXEL_FLOOR,
    aligned_similarity,
    find_duplicates,
    neighbour_pairs,
    pixel_representations,
)
from clearset.ops.knn import knn
from clearset.vectors import normalise_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402

EDITS = ["jpeg", "resize", "crop", "shift", "colour"]
FRESH_EDITS = EDITS + ["flip"]
# edit strengths: "calibration" (seed 0, what the threshold and floors were chosen on), "fresh" (seed 1,
# stronger or other edits, and mirrored copies) and "report" (seed 2)
STRENGTHS = {
    "calibration": {"jpeg": (30, 61), "resize": (20, 27), "crop": (2, 6), "shift": (2, 4), "brightness": 0.25,
                    "saturation": 0.5, "hue": 20},
    "fresh": {"jpeg": (15, 30), "resize": (16, 20), "crop": (6, 8), "shift": (4, 6), "brightness": 0.35,
              "saturation": 0.7, "hue": 35},
    # the whole envelope the two sets above span, drawn uniformly, and pairs of edits neither set had
    "report": {"jpeg": (15, 61), "resize": (16, 27), "crop": (2, 8), "shift": (2, 6), "brightness": 0.35,
               "saturation": 0.7, "hue": 35},
}
REPORT_EDITS = FRESH_EDITS + ["crop+jpeg", "shift+flip", "colour+resize"]
# which set is which: (seed, strength, edits, result file)
SETS = {"calibration": (0, "calibration", EDITS, "audit_duplicates.json"),
        "fresh": (1, "fresh", FRESH_EDITS, "audit_duplicates_fresh.json"),
        "report": (2, "report", REPORT_EDITS, "audit_duplicates_report.json")}
ROLES = {"calibration": "calibration (the thresholds and floors were chosen on it)",
         "fresh": "development: nothing was tuned on it, but its misses (crops, shifts) led to the widened "
                  "search of 2026-12-07",
         "report": "report (never looked at before the default was frozen)"}


def edit(img: np.ndarray, kind: str, rng: np.random.Generator, strength: str = "calibration") -> np.ndarray:
    if "+" in kind:  # a pair of edits, applied in the order named
        for part in kind.split("+"):
            img = edit(img, part, rng, strength)
        return img
    st = STRENGTHS[strength]
    im = Image.fromarray(img)
    h, w = img.shape[:2]
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.integers(*st["jpeg"])))
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "resize":
        s = int(rng.integers(*st["resize"]))
        return np.asarray(im.resize((s, s), Image.BILINEAR).resize((w, h), Image.BILINEAR))
    if kind == "crop":
        a, b, c, d = rng.integers(*st["crop"], 4)
        return np.asarray(im.crop((a, b, w - c, h - d)).resize((w, h), Image.BILINEAR))
    if kind == "shift":  # translate, filling the uncovered border by edge replication
        dx, dy = (int(v) for v in rng.integers(*st["shift"], 2) * rng.choice([-1, 1], 2))
        m = st["shift"][1]
        padded = np.pad(img, ((m, m), (m, m), (0, 0)), mode="edge")
        return padded[m - dy : m - dy + h, m - dx : m - dx + w]
    if kind == "colour":
        b = st["brightness"]
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(1 - b, 1 + b))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(1 - b, 1 + b))
        im = ImageEnhance.Color(im).enhance(rng.uniform(1 - st["saturation"], 1 + st["saturation"]))
        hsv = np.asarray(im.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.integers(-st["hue"], st["hue"] + 1))) % 256
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    if kind == "flip":
        return np.ascontiguousarray(img[:, ::-1])
    raise ValueError(kind)


def plant(x_train: np.ndarray, name: str, copies: int = 1000) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The planted set ``name`` (SETS): the originals' rows (sorted), each copy's edit, and the copies."""
    seed, strength, edits, _ = SETS[name]
    rng = np.random.default_rng(seed)
    originals = np.sort(rng.choice(len(x_train), copies, replace=False))
    kinds = [edits[i % len(edits)] for i in range(copies)]
    return originals, kinds, np.stack([edit(x_train[o], k, rng, strength) for o, k in zip(originals, kinds)])


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
            "recall_by_edit": {k: float(found[kinds == k].mean()) for k in sorted(set(kinds.tolist()))},
            "pairs_among_originals": int((~involves).sum())}


def _frame(pairs: np.ndarray):
    import pandas as pd

    return pd.DataFrame({"index": pairs[:, 0], "duplicate_index": pairs[:, 1]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=CACHE / "ws_cifar10",
                    help="a CIFAR-10 workspace embedded with efficientnet_lite0@128 (bench/embed/cifar10.py)")
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--set", choices=sorted(SETS), default="calibration",
                    help="calibration (seed 0: what the defaults were chosen on), fresh (seed 1: stronger and other "
                         "edits, incl. mirrored copies), report (seed 2: the whole envelope and pairs of edits)")
    ap.add_argument("--fresh", action="store_const", const="fresh", dest="set", help="same as --set fresh")
    ap.add_argument("--out", type=Path, default=None, help="result file (default: by --set)")
    args = ap.parse_args()
    seed, strength, edits, out_name = SETS[args.set]
    args.out = args.out or ROOT / "bench" / "results" / out_name
    t0 = time.perf_counter()
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), args.workspace)
    feats = clearset.embed(ws, backbone="efficientnet_lite0", image_size=128).load()
    m = ws.manifest()
    train = np.flatnonzero(m["split"].to_numpy() == "train")
    x_train = np.load(SHARED / "cifar10.npz")["x_train"]
    assert len(train) == len(x_train), "the workspace's train rows are the npz's x_train"
    originals, kinds, copies = plant(x_train, args.set, args.copies)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE / f"planted_{strength}.npz", x=copies, y=np.zeros(len(copies), np.int64))
    pws = clearset.ingest(str(CACHE / f"planted_{strength}.npz"), CACHE / f"ws_planted_{strength}", force=True)
    pfeats = clearset.embed(pws, backbone="efficientnet_lite0", image_size=128, force=True).load()

    n = len(train)
    all_feats = normalise_features(np.concatenate([np.asarray(feats[train]), pfeats]))
    t = time.perf_counter()
    signatures, views = pixel_representations(np.concatenate([x_train, copies]))
    emb_nb, pix_nb = knn(all_feats, NEIGHBOURS), knn(signatures, NEIGHBOURS)
    results = {}
    for f in (0.85, 0.90, 0.92, 0.94):
        results[f"embedding cosine >= {f}"] = evaluate(_frame(neighbour_pairs(emb_nb, f)), n, originals, kinds)
    for f in (0.90, 0.95):
        results[f"pixel signature >= {f}"] = evaluate(_frame(neighbour_pairs(pix_nb, f)), n, originals, kinds)
    cand = np.unique(np.concatenate([neighbour_pairs(emb_nb, EMBEDDING_FLOOR), neighbour_pairs(pix_nb, PIXEL_FLOOR)]),
                     axis=0)
    results["candidates (before verification)"] = evaluate(_frame(cand), n, originals, kinds)
    aligned = aligned_similarity(views, cand)
    for th in (0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98):
        results[f"aligned similarity >= {th}"] = evaluate(_frame(cand[aligned >= th]), n, originals, kinds)
    default = find_duplicates(all_feats, None, views=views, signatures=signatures, neighbours=emb_nb)
    results["default"] = evaluate(default, n, originals, kinds)
    near_seconds = time.perf_counter() - t
    for name, r in results.items():
        print(f"{name:34s} recall {r['recall']:.3f} precision {r['precision']:.3f} "
              f"(pairs among originals {r['pairs_among_originals']:6d}) "
              + " ".join(f"{k} {v:.2f}" for k, v in r["recall_by_edit"].items()), flush=True)

    # leakage on the real dataset at the default
    summary = clearset.audit.run_audit(ws, checks=["duplicates"], force=True)["checks"]["duplicates"]
    out = {"bench": args.out.stem, "date": time.strftime("%Y-%m-%d"), "copies": args.copies,
           "edits": edits, "strength": STRENGTHS[strength], "planted_seed": seed,
           "role": ROLES[args.set], "default_aligned_threshold": DEFAULT_THRESHOLD,
           "candidate_floors": {"embedding": EMBEDDING_FLOOR, "pixels": PIXEL_FLOOR}, "results": results,
           "sweep_seconds": round(near_seconds, 1),
           "cifar10_leakage": {k: summary[k] for k in summary if k.startswith(("leaked", "near", "exact",
                                                                                  "cross"))},
           "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, out)
    print(f"default: recall {results['default']['recall']:.3f} precision {results['default']['precision']:.3f}")
    print(f"CIFAR-10 test images with a near-duplicate in train: {summary.get('leaked_test_images')} "
          f"({100 * summary.get('leaked_test_share', 0):.2f}%) -> {args.out}")


if __name__ == "__main__":
    main()
