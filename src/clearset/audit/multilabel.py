"""Images that plausibly show more than one class (ReLabel / multi-label ImageNet cards).

Two signals:
- out-of-fold class probabilities: every class with probability >= ``min_prob`` is a candidate, and
  ``oof_score`` = 1 - p_top, high when a model trained without the image's label cannot decide;
- with ``spatial=True`` (``clearset audit --spatial``), spatial class maps as in ReLabel: the backbone's
  pre-pooling feature map (e.g. 4 x 4 locations at 128 px), each location normalised like the pooled
  embedding and classified by the out-of-fold logistic-regression head of the image's own fold (a head
  that never saw the image's label); per class the maximum over locations. A class some region shows
  with probability >= ``spatial_min`` is a candidate too, and ``spatial_score`` is the second-highest
  class maximum (evidence that a second class is visible somewhere). This needs one more pass of the
  backbone over the images (about as long as ``clearset embed``), so it is off by default.
``score`` is ``oof_score``, or the mean of both scores with spatial maps. Images with two or more
candidates are multi-label candidates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import param
from ..views import Card, Tile, Tiles
from .base import AuditData, CheckResult, ReportInputs, register_check

MIN_PROB = 0.2
SPATIAL_MIN = 0.5


def multilabel_candidates(pred_probs: np.ndarray, *, min_prob: float = MIN_PROB) -> pd.DataFrame:
    """``index, candidate_labels (list, most probable first), score, is_multilabel``."""
    p = np.asarray(pred_probs, dtype=np.float32)
    order = np.argsort(-p, axis=1)
    candidates = [row[p[i, row] >= min_prob].tolist() for i, row in enumerate(order[:, :5])]
    score = 1.0 - p.max(1)
    return pd.DataFrame({"index": np.arange(len(p), dtype=np.int64), "candidate_labels": candidates,
                         "score": score.astype(np.float32),
                         "is_multilabel": np.array([len(c) >= 2 for c in candidates], dtype=bool)})


def spatial_class_maps(images, backbone: str, size: int, heads: dict, *, batch: int = 128) -> np.ndarray:
    """(N, C) per-class maximum over the backbone's feature-map locations of the softmax of each image's
    fold head. ``images`` yields uint8 HWC arrays in row order; ``heads`` as oof_logreg fills it."""
    import torch

    from .. import progress
    from ..data.images import resize_center
    from ..device import resolve_precision
    from ..models.backbones import create_backbone

    bb = create_backbone(backbone)
    net = bb.model.eval().to(memory_format=torch.channels_last)
    mean = torch.tensor(bb.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(bb.std).view(1, 3, 1, 1) * 255
    w, b, fold = heads["W"], heads["b"], torch.from_numpy(heads["fold"])
    out = np.zeros((len(heads["fold"]), w.shape[2]), dtype=np.float32)
    autocast = resolve_precision("auto", torch.device("cpu")) == "bf16"
    row = 0
    pending: list = []

    def flush():
        nonlocal row, pending
        x = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).float()
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            fmap = net.forward_features(x)
        f = fmap.float().flatten(2).transpose(1, 2)  # (B, L, D)
        f = torch.sign(f) * f.abs().sqrt()
        f = f / f.norm(dim=2, keepdim=True).clamp_min(1e-12)
        folds = fold[row : row + len(pending)]
        logits = torch.einsum("bld,bdc->blc", f, w[folds]) + b[folds][:, None, :]
        out[row : row + len(pending)] = torch.softmax(logits, 2).amax(1).numpy()
        row += len(pending)
        pending = []

    for img in progress.bar(images, total=len(out), desc="spatial class maps"):
        pending.append(resize_center(img, size))
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return out


def multilabel_views(r: ReportInputs) -> list:
    """A card and the 16 strongest candidates with their classes."""
    views: list = [Card(r.summary.get("multilabel_candidates", 0), "multi-label candidates")]
    if r.table is not None and len(r.table):
        ml = r.table[r.table["is_multilabel"]].sort_values("score", ascending=False, kind="stable").head(16)
        views.append(Tiles("Multi-label candidates", tuple(
            Tile(int(x.index), ", ".join(r.name(int(c)) for c in x.candidate_labels)) for x in ml.itertuples())))
    return views


@register_check("multilabel", needs=("pred_probs",), description="images that may show several classes",
                report=multilabel_views, report_order=40)
def multilabel_check(data: AuditData, *, min_prob: float = MIN_PROB, spatial: bool = False,
                     spatial_min: float = SPATIAL_MIN) -> CheckResult:
    data.require("pred_probs", check="multilabel")
    assert data.pred_probs is not None
    labelled = np.flatnonzero(data.labels >= 0)
    df = multilabel_candidates(data.pred_probs[labelled], min_prob=min_prob)
    df["index"] = labelled
    summary = {"min_prob": min_prob, "spatial": spatial}
    if spatial:
        maps = _spatial_maps(data, labelled)
        top2 = -np.sort(-maps, axis=1)[:, 1] if maps.shape[1] > 1 else np.zeros(len(maps))
        p = data.pred_probs[labelled]
        cands = []
        for i, c in enumerate(df["candidate_labels"]):
            extra = [int(k) for k in np.argsort(-maps[i]) if maps[i, k] >= spatial_min and int(k) not in c]
            cands.append(list(c) + extra)
        df["candidate_labels"] = cands
        df["oof_score"] = (1 - p.max(1)).astype(np.float32)
        df["spatial_score"] = top2.astype(np.float32)
        df["score"] = ((df["oof_score"] + df["spatial_score"]) / 2).astype(np.float32)
        df["is_multilabel"] = np.array([len(c) >= 2 for c in cands], dtype=bool)
        summary["spatial_min"] = spatial_min
    summary["multilabel_candidates"] = int(df["is_multilabel"].sum())
    return CheckResult(df, summary)


def _spatial_maps(data: AuditData, rows: np.ndarray) -> np.ndarray:
    from .label_issues import DEFAULT_C, oof_logreg

    data.require("features", check="multilabel (spatial)")
    data.require("image_loader", check="multilabel (spatial)")
    emb = data.extras.get("embedding")
    if not emb:
        from ..errors import ParameterError

        raise ParameterError(f"multilabel {param('spatial')} needs to know the embedding's backbone; audit a workspace "
                             "embedded with `clearset embed`")
    heads: dict = {}
    oof_logreg(data.normalised_features()[rows], data.labels[rows], data.n_classes, c=DEFAULT_C, heads=heads)
    data.require("image_loader", check="multilabel --spatial")
    assert data.image_loader is not None
    return spatial_class_maps(data.image_loader(rows.tolist()), emb["backbone"], emb["image_size"], heads)
