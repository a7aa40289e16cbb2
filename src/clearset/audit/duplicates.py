"""Exact and near duplicates, and train/test leakage.

Exact: equal hashes of the decoded pixels. Near, in three steps:
1. Candidates: each image's 5 nearest neighbours in two representations, kept above loose floors —
   the embedding (cosine >= 0.75) and a pixel signature (grey 16x16, zero mean, unit norm: blind to
   brightness/contrast; cosine >= 0.85) — and, for crops, the 5 images whose signature is nearest to
   the signature of each image's centre zoomed 1.4x and 1.76x (a 6-7 px crop per side is such a zoom).
   Embeddings of tiny images alone are not robust to re-encoding or resizing; pixel signatures alone
   miss crops and shifts; together they reach ~97% of planted copies.
2. Verification: the best normalised correlation between the two images' grey 32x32 versions over
   shifts of up to +-4 px and centre zooms of 1.0 to 1.76 (six steps of about 1.12x), in both directions
   and mirrored ("aligned similarity").
3. Pairs with aligned similarity >= ``threshold`` (0.94) at zooms up to 1.25 whose high-passed views
   align at >= 0.8 at those zooms, or with >= 0.96 and >= 0.85 at the larger zooms, are near duplicates.
Without pixels (arrays of features only) near pairs are embedding cosine >= ``embedding_threshold``.
The defaults were calibrated on real CIFAR-10 images with 1,000 planted edited copies (re-encoding,
resizing, small crops, shifts, colour changes): bench/audit/duplicates.py, docs/audit.md.
"""

from __future__ import annotations

import functools
from typing import Iterable

import numpy as np
import pandas as pd

from ..ops.knn import knn
from ..ops.resample import resample_matrix
from ..vectors import l2_normalise, normalise_features
from ..views import Card, Column, Table, Tile, Tiles
from .base import EMBEDDING_THRESHOLD, AuditData, CheckResult, ReportInputs, batched, register_check

DEFAULT_THRESHOLD = 0.94  # aligned similarity
# ... and the same alignment on high-passed views (grey minus its Gaussian blur, sigma 2 px): smooth
# scenes (sea and sky, a plane against the sky) correlate highly in grey but not in structure. 0.7 was
# chosen on the planted copies of seed 0 (recall unchanged) and on 391 blind-judged real CIFAR-10 pairs
# (bench/audit/duplicates_real.py: precision at >= 0.94 from 0.70 to 0.91, 98% of the true pairs kept).
# Raised to 0.8, and measured at the zooms the grey test passed at, on 2026-12-08 (with the widened search
# the sample of 2026-12-07 had precision 0.745): on that sample (the dev sample now) estimated precision
# 0.80 -> 0.89; of the pairs judged before it that the old rule flagged, 309 of 324 true kept, 13 of 38 false; the planted
# copies of seeds 0 and 1 verified 0.955 -> 0.953 and 0.949 -> 0.947 (bench/audit/duplicates_real.py rules)
STRUCTURE_THRESHOLD = 0.8
EXTENDED_STRUCTURE_THRESHOLD = 0.85  # the structure bar of a pair that passes only at zooms >= 1.4
STRUCTURE_SIGMA = 2.0
EMBEDDING_FLOOR, PIXEL_FLOOR = 0.75, 0.85
NEIGHBOURS = 5
SIGNATURE_SIDE, GREY_SIDE, VIEW_SIDE, CORE_SIDE = 16, 32, 28, 20
# centre zooms the alignment searches; up to 1.25 until 2026-12-07, when crops of 6-7 px per side (a zoom
# of ~1.7) were found missed on the second planted set (the "fresh" set of bench/audit/duplicates.py)
ZOOMS = (1.0, 1.12, 1.25, 1.4, 1.57, 1.76)
SIGNATURE_ZOOMS = (1.4, 1.76)  # zoomed views whose signatures also search for candidates (crops)
BASE_ZOOMS = 3  # the first three (up to 1.25) pass at ``threshold``; a pair that aligns only at a larger
# zoom needs EXTENDED_THRESHOLD: on the 585 pairs judged before the widening (bench/audit/duplicates_real.py),
# pairs passing only at zooms >= 1.4 were all different photographs below 0.96
EXTENDED_THRESHOLD = 0.96
# zooms that differ between the axes (zoom_y, zoom_x): a crop of unequal sides (2 px off one side, 7 off
# the other) is one. Opt-in (``stretch=True``), tried 2026-12-08 on the misses of the planted set of seed
# 2 (now development): recall there 0.789 -> 0.863, but the near search took 371 s instead of ~60 s and
# flagged 3,004 pairs among the originals instead of 1,845, none of them judged yet, so not the default.
# Pairs of ZOOMS at most two steps apart, made per batch from each image's unzoomed view.
STRETCHES = tuple((a, b) for i, a in enumerate(ZOOMS) for j, b in enumerate(ZOOMS) if i != j and abs(i - j) <= 2)
# ... and the stretched views whose signatures also search for candidates (the four that found the most
# unequal crops of the seed-2 planted set not found otherwise)
SIGNATURE_STRETCHES = ((1.12, 1.4), (1.4, 1.12), (1.25, 1.57), (1.57, 1.25))
COLUMNS = ["index", "duplicate_index", "similarity", "kind", "cross_split"]


def grey_square(img: np.ndarray, side: int = GREY_SIDE) -> np.ndarray:
    """An (H, W, 3) uint8 image as grey (ITU-R 601 luma, as Pillow's "L") resized to side x side (box filter)."""
    img = np.asarray(img)
    if img.shape[:2] == (side, side):
        return luma(img[None])[0]
    from PIL import Image

    grey = Image.fromarray(img).convert("L").resize((side, side), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)


def luma(batch: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, H, W) float32 grey levels, rounded as Pillow's convert("L")."""
    b = batch.astype(np.uint32)
    return ((b[..., 0] * 19595 + b[..., 1] * 38470 + b[..., 2] * 7471 + 0x8000) >> 16).astype(np.float32)


@functools.lru_cache(maxsize=1)
def representation_weights() -> tuple[np.ndarray, np.ndarray]:
    """Resampling matrices: grey 32 -> signature 16 (box), and grey 32 -> each centre-zoomed 28 view."""
    sig = resample_matrix(GREY_SIDE, SIGNATURE_SIDE, kind="box")
    views = []
    for z in ZOOMS:
        side = GREY_SIDE / z
        lo = (GREY_SIDE - side) / 2
        views.append(resample_matrix(GREY_SIDE, VIEW_SIDE, (lo, lo + side)))
    return sig, np.stack(views)


def represent_batch(greys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 32, 32) grey -> raw signatures (B, 256) float32 and zoomed views (B, len(ZOOMS), 28, 28) float16."""
    sig_w, view_w = representation_weights()
    greys = np.ascontiguousarray(greys, dtype=np.float32)
    sig = (sig_w @ greys @ sig_w.T).reshape(len(greys), -1)
    views = view_w[None] @ greys[:, None] @ view_w.transpose(0, 2, 1)[None]
    return sig.astype(np.float32), views.astype(np.float16)


def pixel_representations(images: Iterable[np.ndarray], *, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Pixel signatures (N, 256) float32 (zero mean, unit norm) and alignment views (N, len(ZOOMS), 28, 28)
    float16 (grey 0..255) from one pass over ``images`` ((H, W, 3) uint8 arrays), a batch at a time:
    the resampling is two small matrix products per batch, not per-image Python."""
    sigs, views = [], []
    for chunk in batched(images, batch):
        same = len({im.shape for im in chunk}) == 1 and chunk[0].shape[:2] == (GREY_SIDE, GREY_SIDE)
        greys = luma(np.stack(chunk)) if same else np.stack([grey_square(im) for im in chunk])
        s, v = represent_batch(greys)
        sigs.append(s)
        views.append(v)
    if not sigs:
        return (np.zeros((0, SIGNATURE_SIDE ** 2), np.float32),
                np.zeros((0, len(ZOOMS), VIEW_SIDE, VIEW_SIDE), np.float16))
    sig = np.concatenate(sigs)
    sig -= sig.mean(1, keepdims=True)
    return l2_normalise(sig), np.concatenate(views)


def _view_signatures(n: int, make, batch: int) -> np.ndarray:
    """Signatures (n, 256) of the (B, 28, 28) views ``make(start, stop)`` returns, made as the plain
    signatures are (box filter to 16 x 16, zero mean, unit norm)."""
    w = resample_matrix(VIEW_SIDE, SIGNATURE_SIDE, kind="box")
    out = np.empty((n, SIGNATURE_SIDE ** 2), np.float32)
    for start in range(0, n, batch):
        v = make(start, min(start + batch, n))
        out[start : start + len(v)] = (w @ v @ w.T).reshape(len(v), -1)
    out -= out.mean(1, keepdims=True)
    return l2_normalise(out)


def zoomed_signatures(views: np.ndarray, zoom_index: int, *, batch: int = 8192) -> np.ndarray:
    """Signatures (N, 256) of the alignment view ``zoom_index`` of every image (a centre zoom): the
    signature a crop of the image would have."""
    return _view_signatures(len(views), lambda a, b: views[a:b, zoom_index].astype(np.float32), batch)


@functools.lru_cache(maxsize=8)
def stretch_weights(stretches: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(S, 28, 28) row and column resampling matrices: the unzoomed view's centre zoomed by
    (zoom_y, zoom_x), back to 28 x 28."""
    def zoom(z: float) -> np.ndarray:
        side = VIEW_SIDE / z
        lo = (VIEW_SIDE - side) / 2
        return resample_matrix(VIEW_SIDE, VIEW_SIDE, (lo, lo + side))

    return np.stack([zoom(a) for a, _ in stretches]), np.stack([zoom(b) for _, b in stretches])


def stretched_views(base: np.ndarray, stretches: tuple[tuple[float, float], ...]) -> np.ndarray:
    """(B, 28, 28) unzoomed views -> (B, S, 28, 28) float32, each zoomed by one (zoom_y, zoom_x)."""
    rows, cols = stretch_weights(tuple(stretches))
    return rows[None] @ np.asarray(base, np.float32)[:, None] @ cols.transpose(0, 2, 1)[None]


def zoom_is_large(stretches: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """Per column of ``aligned_similarity(..., by_zoom=True)``: whether its zoom exceeds the base zooms
    (on either axis) and so needs the stricter bars."""
    base = ZOOMS[BASE_ZOOMS - 1]
    return np.array([z > base for z in ZOOMS] + [max(s) > base for s in stretches])


def stretched_signatures(views: np.ndarray, stretch: tuple[float, float], *, batch: int = 8192) -> np.ndarray:
    """zoomed_signatures of each image's unzoomed view zoomed by (zoom_y, zoom_x): the signature a crop of
    unequal sides would have."""
    pair = ((float(stretch[0]), float(stretch[1])),)
    return _view_signatures(len(views), lambda a, b: stretched_views(views[a:b, 0], pair)[:, 0], batch)


def aligned_similarity(views: np.ndarray, pairs: np.ndarray, *, batch: int = 2048, mirror: bool = True,
                       by_zoom: bool = False, stretches: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """Best normalised correlation of each pair over shifts and zooms, in both directions: the 20x20
    centre of one image's unzoomed view slides over every position of the other's zoomed views (and,
    with ``mirror``, of their mirror images: a flipped copy is a copy).

    Computed as one grouped convolution per batch (the template against every window) divided by the
    windows' energies from box sums, so the cost does not grow with a Python loop over offsets.
    ``by_zoom``: (M, Z), the best per zoom of the views, instead of the best over all of them.
    ``stretches``: (zoom_y, zoom_x) pairs searched too, made per batch from the unzoomed views
    (stretched_views); by_zoom then has Z + S columns.
    """
    import torch
    import torch.nn.functional as F

    out = np.zeros((len(pairs), views.shape[1] + len(stretches)), dtype=np.float32)
    lo = (VIEW_SIDE - CORE_SIDE) // 2
    area = CORE_SIDE * CORE_SIDE
    with torch.inference_mode():
        for start in range(0, len(pairs), batch):
            a, b = (views[pairs[start : start + batch, k]].astype(np.float32) for k in (0, 1))
            if stretches:
                a, b = (np.concatenate([v, stretched_views(v[:, 0], stretches)], 1) for v in (a, b))
            a, b = torch.from_numpy(a), torch.from_numpy(b)
            best = torch.full(a.shape[:2], -1.0)
            for src, dst in ((a, b), (b, a)) + (((a, b.flip(-1)), (b, a.flip(-1))) if mirror else ()):
                n, z = dst.shape[:2]
                core = src[:, 0, lo : lo + CORE_SIDE, lo : lo + CORE_SIDE]
                core = core - core.mean((1, 2), keepdim=True)
                core = core / (core.pow(2).sum((1, 2), keepdim=True).sqrt() + 1e-6)
                weight = core.repeat_interleave(z, 0).unsqueeze(1)  # (n*z, 1, 20, 20)
                image = dst.reshape(1, n * z, VIEW_SIDE, VIEW_SIDE)
                num = F.conv2d(image, weight, groups=n * z)  # template is zero-mean: no window mean needed
                s1, s2 = window_sums(image[0], CORE_SIDE)
                energy = (s2 - s1 * s1 / area).clamp_min(0).sqrt().unsqueeze(0) + 1e-6
                best = torch.maximum(best, (num / energy).reshape(n, z, -1).amax(2))
            out[start : start + len(a)] = best.numpy()
    return out if by_zoom else out.max(1)


def structure_views(views: np.ndarray, sigma: float = STRUCTURE_SIGMA) -> np.ndarray:
    """High-passed alignment views: each view minus its Gaussian blur (separable, replicated borders), so
    that only edges and texture are left to correlate."""
    import torch
    import torch.nn.functional as F

    k = 2 * int(3 * sigma) + 1
    g = torch.exp(-((torch.arange(k) - k // 2) ** 2) / (2 * sigma * sigma))
    g = g / g.sum()
    t = torch.from_numpy(np.asarray(views, dtype=np.float32))
    flat = t.reshape(-1, 1, *t.shape[-2:])
    blur = F.conv2d(F.pad(flat, (k // 2,) * 4, mode="replicate"), g.view(1, 1, 1, k))
    blur = F.conv2d(blur, g.view(1, 1, k, 1))
    return (flat - blur).reshape(t.shape).numpy().astype(np.float16)


def structure_similarity(views: np.ndarray, pairs: np.ndarray, *, by_zoom: bool = False,
                         stretches: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """aligned_similarity of the high-passed views of each pair (only the views the pairs involve are
    filtered); ``by_zoom`` and ``stretches`` as there."""
    if not len(pairs):
        return np.zeros((0, views.shape[1] + len(stretches)) if by_zoom else 0, np.float32)
    rows, inverse = np.unique(pairs, return_inverse=True)
    return aligned_similarity(structure_views(views[rows]), inverse.reshape(pairs.shape), by_zoom=by_zoom,
                              stretches=stretches)


def window_sums(images, side: int):
    """Sums of values and of squares over every side x side window of (C, H, W) images, as one
    convolution with a ones kernel. Values are centred on each image's mean first (correlation does not
    change) so that float32 keeps the energies, differences of large sums, accurate."""
    import torch
    import torch.nn.functional as F

    centred = images - images.mean((1, 2), keepdim=True)
    ones = torch.ones(1, 1, side, side, dtype=images.dtype)
    both = torch.stack([centred, centred * centred], 1).reshape(-1, 1, *images.shape[1:])
    sums = F.conv2d(both, ones).reshape(len(images), 2, images.shape[1] - side + 1, -1)
    return sums[:, 0], sums[:, 1]


def exact_duplicate_pairs(hashes: np.ndarray) -> pd.DataFrame:
    """Pairs (i, j), i < j, of images with equal pixel hashes; each group linked to its first member.
    Vectorised (one stable sort, no Python per group): 10^7 hashes take seconds."""
    h = np.asarray(hashes)
    if not len(h):
        return pd.DataFrame({"index": [], "duplicate_index": []}, dtype=np.int64)
    if h.dtype.kind != "S":  # strings / objects: dense codes by a hash table (a missing hash: -1, unique)
        codes = pd.factorize(h)[0]
        h = np.where(codes >= 0, codes, -np.arange(1, len(h) + 1))
    order = np.argsort(h, kind="stable")  # equal hashes adjacent, each run in row order
    ordered = h[order]
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])  # a run of equal hashes starts here
    del ordered
    later = np.flatnonzero(~first)  # positions after the first of their run
    heads = order[np.flatnonzero(first)[np.cumsum(first)[later] - 1]]  # the first row of each one's run
    rows = order[later]
    by_row = np.argsort(rows, kind="stable")
    return pd.DataFrame({"index": heads[by_row].astype(np.int64), "duplicate_index": rows[by_row].astype(np.int64)})


def neighbour_pairs(neighbours: tuple[np.ndarray, np.ndarray], floor: float) -> np.ndarray:
    """Unique (i, j), i < j, pairs among neighbour lists with similarity >= floor, as an (M, 2) array."""
    sims, ids = neighbours
    rows = np.repeat(np.arange(len(sims)), sims.shape[1])
    cols, vals = ids.ravel(), sims.ravel()
    keep = (cols >= 0) & (vals >= floor) & (cols != rows)
    pairs = np.stack([np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep]], 1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def near_duplicate_pairs(features: np.ndarray | None, *, views: np.ndarray | None = None,
                         signatures: np.ndarray | None = None, threshold: float = DEFAULT_THRESHOLD,
                         embedding_threshold: float = EMBEDDING_THRESHOLD, k: int = NEIGHBOURS,
                         neighbours: tuple[np.ndarray, np.ndarray] | None = None, engine=None,
                         structure_threshold: float = STRUCTURE_THRESHOLD, stretch: bool = False) -> pd.DataFrame:
    """``index, duplicate_index, similarity`` of near-duplicate pairs (i < j), most similar first.

    With ``views`` and ``signatures`` (pixel_representations) candidates are verified by aligned
    similarity >= threshold (mirror images included) at zooms up to 1.25 and the same alignment of their
    high-passed views >= structure_threshold at those zooms, or both at the larger zooms with the stricter
    EXTENDED_THRESHOLD and EXTENDED_STRUCTURE_THRESHOLD (structure_threshold 0 turns the structure test
    off); with features only, embedding cosine >= embedding_threshold decides. ``stretch``: also zooms
    that differ between the axes (STRETCHES, SIGNATURE_STRETCHES: crops of unequal sides; ~6x slower).
    ``neighbours``: a precomputed self-search of normalise_features(features); ``engine``: where the
    neighbour searches run (see knn).
    """
    if features is not None and neighbours is None:
        neighbours = knn(normalise_features(features), k, engine=engine)
    emb_nb = (neighbours[0][:, :k], neighbours[1][:, :k]) if neighbours is not None else None
    if views is None or signatures is None:
        if emb_nb is None:
            raise ValueError("near duplicates need features or pixel representations")
        assert features is not None  # emb_nb comes from them
        pairs = neighbour_pairs(emb_nb, embedding_threshold)
        sims = (normalise_features(features[pairs[:, 0]]) * normalise_features(features[pairs[:, 1]])).sum(1) \
            if len(pairs) else np.zeros(0, np.float32)
        keep = sims >= embedding_threshold
    else:
        parts = [neighbour_pairs(knn(signatures, k, engine=engine), PIXEL_FLOOR)]
        zoomed = [functools.partial(zoomed_signatures, views, ZOOMS.index(z)) for z in SIGNATURE_ZOOMS]
        zoomed += [functools.partial(stretched_signatures, views, s) for s in SIGNATURE_STRETCHES if stretch]
        for make in zoomed:  # crops: an image's zoomed centre against every image as it is
            parts.append(neighbour_pairs(knn(signatures, k, queries=make(), exclude_self=False, engine=engine),
                                         PIXEL_FLOOR))
        if emb_nb is not None:
            parts.append(neighbour_pairs(emb_nb, EMBEDDING_FLOOR))
        pairs = np.unique(np.concatenate(parts), axis=0) if sum(map(len, parts)) else np.zeros((0, 2), np.int64)
        stretches = STRETCHES if stretch else ()
        by_zoom = aligned_similarity(views, pairs, by_zoom=True, stretches=stretches)
        large = zoom_is_large(stretches)
        sims = by_zoom.max(1)
        bars = (threshold, max(threshold, EXTENDED_THRESHOLD))  # larger zooms (crops) at the stricter bar
        keep = by_zoom[:, ~large].max(1) >= bars[0]
        if large.any():
            keep |= by_zoom[:, large].max(1) >= bars[1]
        if structure_threshold > 0 and keep.any():  # each path's structure at its own zooms
            passed = np.flatnonzero(keep)
            grey = by_zoom[passed]
            structure = structure_similarity(views, pairs[passed], by_zoom=True, stretches=stretches)
            keep[passed] = (grey[:, ~large].max(1) >= bars[0]) & (structure[:, ~large].max(1) >= structure_threshold)
            if large.any():
                keep[passed] |= ((grey[:, large].max(1) >= bars[1])
                                 & (structure[:, large].max(1) >= max(structure_threshold, EXTENDED_STRUCTURE_THRESHOLD)))
    df = pd.DataFrame({"index": pairs[keep, 0].astype(np.int64), "duplicate_index": pairs[keep, 1].astype(np.int64),
                       "similarity": np.minimum(sims[keep], 1.0).astype(np.float32)})
    return df.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)


def find_duplicates(features: np.ndarray | None, hashes: np.ndarray | None, splits: np.ndarray | None = None, *,
                    views: np.ndarray | None = None, signatures: np.ndarray | None = None,
                    threshold: float = DEFAULT_THRESHOLD, embedding_threshold: float = EMBEDDING_THRESHOLD,
                    k: int = NEIGHBOURS, neighbours: tuple[np.ndarray, np.ndarray] | None = None,
                    engine=None, near: pd.DataFrame | None = None,
                    structure_threshold: float = STRUCTURE_THRESHOLD, stretch: bool = False) -> pd.DataFrame:
    """All duplicate pairs: ``index, duplicate_index, similarity, kind (exact|near), cross_split``.
    ``near``: near-duplicate pairs found elsewhere (clearset.scale), used instead of searching here."""
    parts = []
    if hashes is not None:
        parts.append(exact_duplicate_pairs(hashes).assign(similarity=1.0, kind="exact"))
    if near is not None or features is not None or views is not None:
        if near is None:
            near = near_duplicate_pairs(features, views=views, signatures=signatures, threshold=threshold,
                                        embedding_threshold=embedding_threshold, k=k, neighbours=neighbours,
                                        engine=engine, structure_threshold=structure_threshold, stretch=stretch)
        near = near.assign(kind="near")
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


def duplicates_views(r: ReportInputs) -> list:
    """Cards (pairs, leaked test images), pairs across splits, pairs within one, the table of the first 200."""
    s, d = r.summary, r.table
    views: list = [Card(s.get("pairs", 0), f"duplicate pairs ({s.get('exact_pairs', 0)} exact)")]
    if "leaked_test_images" in s:
        views.append(Card(s["leaked_test_images"], f"test images with a train copy "
                                                   f"({100 * s.get('leaked_test_share', 0):.2f}%)"))
    if d is None or not len(d):
        return views

    def pairs(frame) -> tuple[Tile, ...]:
        return tuple(Tile((int(x.index), int(x.duplicate_index)),
                          f"{r.splits[x.index]} / {r.splits[x.duplicate_index]} · {x.kind} {x.similarity:.3f}")
                     for x in frame.itertuples())

    views.append(Tiles("Train/test leakage — pairs across splits", pairs(d[d["cross_split"]].head(12))))
    views.append(Tiles("Duplicates within a split", pairs(d[~d["cross_split"]].head(12))))
    views.append(Table("Duplicates", (Column("index"), Column("duplicate_index", "duplicate"),
                                      Column("similarity", fmt=".4f"), Column("kind", text=True),
                                      Column("cross_split", "cross split", text=True)),
                       tuple(d.head(200).to_dict("records")), total=len(d)))
    return views


@register_check("duplicates", description="exact and near-duplicate pairs, and train/test leakage",
                report=duplicates_views, report_order=20)
def duplicates_check(data: AuditData, *, threshold: float = DEFAULT_THRESHOLD,
                     embedding_threshold: float = EMBEDDING_THRESHOLD,
                     structure_threshold: float = STRUCTURE_THRESHOLD, stretch: bool = False) -> CheckResult:
    if data.features is None and data.sha256 is None and data.image_loader is None:
        data.require("features", check="duplicates")
    signatures = views = None
    if data.partitioned():  # features too large for memory: embedding-only pairs from the partition
        df = find_duplicates(None, data.sha256, data.splits, near=data.partition_results(embedding_threshold)[0])
        return CheckResult(df, _summary(data, df, "embedding cosine, cluster partition", embedding_threshold))
    if data.image_loader is not None:
        signatures, views = pixel_representations(data.image_loader(range(data.n)))
    df = find_duplicates(data.features, data.sha256, data.splits, views=views, signatures=signatures,
                         threshold=threshold, embedding_threshold=embedding_threshold,
                         neighbours=data.neighbours(NEIGHBOURS) if data.features is not None else None,
                         engine=data.engine, structure_threshold=structure_threshold, stretch=stretch)
    return CheckResult(df, _summary(data, df, "aligned similarity" if views is not None else "embedding cosine",
                                    threshold if views is not None else embedding_threshold))


def _summary(data: AuditData, df: pd.DataFrame, rule: str, threshold: float) -> dict:
    summary = {"pairs": len(df), "exact_pairs": int((df["kind"] == "exact").sum()),
               "near_pairs": int((df["kind"] == "near").sum()), "rule": rule, "threshold": threshold,
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
    return summary
