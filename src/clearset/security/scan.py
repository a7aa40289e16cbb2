"""Which training images carry a trigger (``clearset scan-poison WS --run NAME``): two published detectors
on the suspect model's penultimate features of the training images, per given label.

- Spectral signatures (Tran et al., NeurIPS 2018): centre the class's features, take the top right
  singular vector v; score_i = <f_i - mean, v>^2. Poisoned images of a class share a direction that
  clean ones lack, so they score highest. The paper removes the 1.5·eps highest per class, eps an upper
  bound of the poisoning rate (``eps``, default 0.1).
- Activation clustering (Chen et al., 2018): the class's features reduced to 10 dimensions (PCA here; the
  paper uses ICA), split by 2-means; a class whose smaller cluster holds less than ``ac_size`` (0.35) of
  it and whose split is clear (silhouette >= ``ac_silhouette``, 0.15) is poisoned, and that cluster is
  the poison.

``flagged`` = both agree (in a poisoned class by activation clustering, and among the class's
1.5·eps highest spectral scores); ``spectral_flag`` and ``ac_flag`` are kept apart so a user (or the
review app) can choose. The thresholds are the papers' defaults, not tuned here; measuring them on
poisoned copies (``clearset poison``) is owed (issue 26).

Writes ``WS/security/scan-<run>.parquet`` (index, label, spectral_score, spectral_flag, ac_flag,
flagged) and a JSON summary per class beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.loading import load_images
from ..errors import ParameterError, param
from ..io import write_json, write_table
from ..workspace import Workspace
from .expose import suspect_run

log = logging.getLogger("clearset")


def spectral_scores(feats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) squared projection of each row's class-centred features on its class's top singular vector."""
    out = np.zeros(len(feats))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            continue
        centred = feats[rows] - feats[rows].mean(0)
        v = np.linalg.svd(centred, full_matrices=False)[2][0]
        out[rows] = (centred @ v) ** 2
    return out


def spectral_flags(scores: np.ndarray, labels: np.ndarray, eps: float) -> np.ndarray:
    """Per class, the ceil(1.5·eps·n) highest scores."""
    flag = np.zeros(len(scores), bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = int(np.ceil(round(1.5 * eps * len(rows), 9)))
        flag[rows[np.argsort(scores[rows])[::-1][:k]]] = True
    return flag


def activation_clusters(feats: np.ndarray, labels: np.ndarray, seed: int, *, size: float = 0.35,
                        silhouette: float = 0.15) -> tuple[np.ndarray, dict]:
    """(N,) rows in a poisoned class's smaller 2-means cluster, and per-class statistics."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    flag = np.zeros(len(feats), bool)
    stats = {}
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 12:
            continue
        z = PCA(n_components=min(10, feats.shape[1], len(rows) - 1), random_state=seed).fit_transform(feats[rows])
        assign = KMeans(2, n_init=4, random_state=seed).fit_predict(z)
        small = int(np.argmin(np.bincount(assign, minlength=2)))
        share = float((assign == small).mean())
        sil = float(silhouette_score(z, assign, sample_size=min(2000, len(rows)), random_state=seed))
        poisoned = share < size and sil >= silhouette
        stats[int(c)] = {"small_share": share, "silhouette": sil, "poisoned": bool(poisoned)}
        if poisoned:
            flag[rows[assign == small]] = True
    return flag, stats


@torch.no_grad()
def penultimate(net: torch.nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    from ..models.encoder import pooled

    net.eval()
    return torch.cat([pooled(net, (images[s : s + 512].float() / 255.0 - mean) / std).float()
                      for s in range(0, len(images), 512)]).numpy()


def scan(workspace: str | Path | Workspace, run: str | Path, *, eps: float = 0.1, seed: int = 0) -> Path:
    """Score every labelled training image of the workspace with both detectors (module docstring)."""
    ws = Workspace.of(workspace)
    if not 0 < eps < 0.5:
        raise ParameterError(f"{param('eps')} {eps}: an upper bound of the poisoning rate in (0, 0.5)")
    r = suspect_run(ws, run, "scan with")
    m = ws.manifest(["index", "split", "label"])
    rows = m[(m["split"] == "train") & (m["label"] >= 0)]
    index, labels = rows["index"].to_numpy(np.int64), rows["label"].to_numpy(np.int64)
    norm = r.config["normalisation"]
    mean, std = (torch.tensor(norm[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    feats = penultimate(r.load_model(), load_images(ws, index, r.config["recipe"]["image_size"],
                                                    desc="load training"), mean, std)
    score = spectral_scores(feats, labels)
    s_flag = spectral_flags(score, labels, eps)
    ac_flag, stats = activation_clusters(feats, labels, seed)
    table = pd.DataFrame({"index": index, "label": labels, "spectral_score": score, "spectral_flag": s_flag,
                          "ac_flag": ac_flag, "flagged": s_flag & ac_flag})
    out = ws.dir("security") / f"scan-{r.name}.parquet"
    write_table(out, table)
    write_json(out.with_suffix(".json"), {"run": r.name, "eps": eps, "seed": seed, "classes": stats,
                                          "flagged": int(table["flagged"].sum()),
                                          "spectral_flagged": int(s_flag.sum()), "ac_flagged": int(ac_flag.sum())})
    log.info("scan: %d images flagged by both detectors (spectral %d, activation clustering %d) -> %s",
             int(table["flagged"].sum()), int(s_flag.sum()), int(ac_flag.sum()), out)
    return out
