"""Exact and near duplicates, and train/test leakage.

Exact: equal hashes of the decoded pixels. Near: cosine similarity of L2-normalised embeddings at or
above a threshold among each image's nearest neighbours (FAISS, chunked). The default threshold was
calibrated on real CIFAR-10 images with planted edited copies (re-encoding, resizing, small crops and
shifts, colour changes): see bench/audit_duplicates.py and docs/audit.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import AuditData, CheckResult, register_check
from .knn import knn, l2_normalise, normalise_features

DEFAULT_THRESHOLD = 0.92
PIXEL_THRESHOLD = 0.80
SIGNATURE_SIDE = 16
NEIGHBOURS = 5
COLUMNS = ["index", "duplicate_index", "similarity", "kind", "cross_split"]


def pixel_signature(images, side: int = SIGNATURE_SIDE) -> np.ndarray:
    """(N, side²) float32: grey, area-downsampled to side x side, zero mean, unit norm per image.

    Invariant to brightness and contrast changes; a second opinion on embedding matches.
    ``images`` is an (N, H, W, 3) uint8 array or an iterable of (H, W, 3) arrays.
    """
    from PIL import Image

    def one(img: np.ndarray) -> np.ndarray:
        grey = Image.fromarray(np.asarray(img)).convert("L").resize((side, side), Image.BOX)
        return np.asarray(grey, dtype=np.float32).ravel()

    rows = [one(img) for img in images]  # streams: only the small signatures are kept
    sig = np.stack(rows) if rows else np.zeros((0, side * side), np.float32)
    sig -= sig.mean(1, keepdims=True)
    return l2_normalise(sig)


def exact_duplicate_pairs(hashes: np.ndarray) -> pd.DataFrame:
    """Pairs (i, j), i < j, of images with equal pixel hashes; each group linked to its first member."""
    s = pd.Series(np.asarray(hashes))
    dup = s[s.duplicated(keep=False)]
    if dup.empty:
        return pd.DataFrame({"index": [], "duplicate_index": []}, dtype=np.int64)
    first = dup.groupby(dup).transform(lambda g: g.index[0])
    pairs = pd.DataFrame({"index": first.to_numpy(np.int64), "duplicate_index": dup.index.to_numpy(np.int64)})
    return pairs[pairs["index"] != pairs["duplicate_index"]].reset_index(drop=True)


def near_duplicate_pairs(features: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD, k: int = NEIGHBOURS,
                         neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Pairs (i, j), i < j, whose normalised embeddings have cosine >= threshold (among k neighbours).

    ``neighbours``: a precomputed (sims, ids) self-search of normalise_features(features).
    """
    if neighbours is None:
        neighbours = knn(normalise_features(features), k)
    sims, ids = neighbours[0][:, :k], neighbours[1][:, :k]
    rows = np.repeat(np.arange(len(sims)), sims.shape[1])
    cols, vals = ids.ravel(), sims.ravel()
    keep = (cols >= 0) & (vals >= threshold)
    a, b, v = rows[keep], cols[keep], vals[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    df = pd.DataFrame({"index": lo, "duplicate_index": hi, "similarity": np.minimum(v, 1.0)})
    return (df.sort_values("similarity", ascending=False).drop_duplicates(["index", "duplicate_index"])
              .reset_index(drop=True))


def find_duplicates(features: np.ndarray | None, hashes: np.ndarray | None, splits: np.ndarray | None = None, *,
                    threshold: float = DEFAULT_THRESHOLD, k: int = NEIGHBOURS,
                    pixel_signatures: np.ndarray | None = None, pixel_threshold: float = PIXEL_THRESHOLD,
                    neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """All duplicate pairs: ``index, duplicate_index, similarity, kind (exact|near), cross_split``.

    Near pairs are embedding neighbours with cosine >= ``threshold``; with ``pixel_signatures`` a pair
    must also have pixel-signature cosine >= ``pixel_threshold``.
    """
    parts = []
    if hashes is not None:
        ex = exact_duplicate_pairs(hashes).assign(similarity=1.0, kind="exact")
        parts.append(ex)
    if features is not None:
        near = near_duplicate_pairs(features, threshold=threshold, k=k, neighbours=neighbours).assign(kind="near")
        if pixel_signatures is not None and len(near):
            a, b = near["index"].to_numpy(), near["duplicate_index"].to_numpy()
            pix = (pixel_signatures[a] * pixel_signatures[b]).sum(1)
            near = near[pix >= pixel_threshold]
        if parts and len(parts[0]):
            known = set(zip(parts[0]["index"], parts[0]["duplicate_index"]))
            near = near[[(a, b) not in known for a, b in zip(near["index"], near["duplicate_index"])]]
        parts.append(near)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS[:-1])
    df = df.astype({"index": np.int64, "duplicate_index": np.int64, "similarity": np.float32})
    if splits is not None and len(df):
        s = np.asarray(splits)
        df["cross_split"] = s[df["index"].to_numpy()] != s[df["duplicate_index"].to_numpy()]
    else:
        df["cross_split"] = False
    return df[COLUMNS].sort_values(["similarity", "index"], ascending=[False, True]).reset_index(drop=True)


@register_check("duplicates", description="exact and near-duplicate pairs, and train/test leakage")
def duplicates_check(data: AuditData, *, threshold: float = DEFAULT_THRESHOLD,
                     pixel_threshold: float = PIXEL_THRESHOLD) -> CheckResult:
    if data.features is None and data.sha256 is None:
        data.require("features", check="duplicates")
    signatures = None
    if data.image_loader is not None and data.features is not None:
        signatures = pixel_signature(data.image_loader(range(data.n)))
    df = find_duplicates(data.features, data.sha256, data.splits, threshold=threshold,
                         pixel_signatures=signatures, pixel_threshold=pixel_threshold,
                         neighbours=data.neighbours(NEIGHBOURS) if data.features is not None else None)
    summary = {"pairs": len(df), "exact_pairs": int((df["kind"] == "exact").sum()),
               "near_pairs": int((df["kind"] == "near").sum()), "threshold": threshold,
               "pixel_threshold": pixel_threshold if signatures is not None else None,
               "images_involved": int(len(set(df["index"]) | set(df["duplicate_index"])))}
    if data.splits is not None:
        cross = df[df["cross_split"]]
        splits = np.asarray(data.splits)
        summary["cross_split_pairs"] = len(cross)
        # leakage: evaluation images with a (near-)copy in the training split
        for split in sorted(set(splits) - {"train"}):
            a, b = cross["index"].to_numpy(), cross["duplicate_index"].to_numpy()
            in_split = np.concatenate([a[(splits[a] == split) & (splits[b] == "train")],
                                       b[(splits[b] == split) & (splits[a] == "train")]])
            n_split = int((splits == split).sum())
            summary[f"leaked_{split}_images"] = int(len(np.unique(in_split)))
            summary[f"leaked_{split}_share"] = len(np.unique(in_split)) / max(n_split, 1)
    return CheckResult(df, summary)
