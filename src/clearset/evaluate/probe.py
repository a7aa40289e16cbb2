"""Linear probe: logistic regression on stored features, train split -> test split.

The reference measure of how good an embedding is for a dataset (CNN-features-off-the-shelf card:
power normalisation, then L2 normalisation, then a linear classifier).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import WorkspaceError
from ..vectors import normalise_features
from ..workspace import Workspace, read_json, write_json

log = logging.getLogger("clearset")


@dataclass(frozen=True)
class ProbeResult:
    features: str
    train_images: int
    test_images: int
    accuracy: float
    seconds: float


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                   c: float = 1.0, max_iter: int = 1000, seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression fit on the normalised train features."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(normalise_features(train_x), train_y)
    return float((clf.predict(normalise_features(test_x)) == test_y).mean())


def linear_probe(workspace: str | Path | Workspace, *, features: str | None = None, backbone: str | None = None,
                 image_size: int | None = None, train_split: str = "train", test_split: str = "test",
                 c: float = 1.0) -> ProbeResult:
    """Fit on ``train_split``'s features, score on ``test_split``; saves ``probe/<backbone>@<size>.json``.

    Which features: ``features`` (``backbone@size``), else ``backbone`` (default efficientnet_lite0) at
    ``image_size``, else the newest embedding of ``backbone`` (or of any backbone) in the workspace."""
    ws = Workspace.of(workspace)
    m = ws.manifest(["split", "label"])
    if features is None and image_size is not None:
        features = f"{backbone or 'efficientnet_lite0'}@{image_size}"
    elif features is None and backbone is not None:
        sizes = [s["params"]["image_size"] for s in ws.feature_sets() if s["params"].get("backbone") == backbone]
        if not sizes:
            raise WorkspaceError(f"{ws.root}: no {backbone} features; run `clearset embed {ws.root} --backbone {backbone}`")
        features = f"{backbone}@{sizes[0]}"
    fs, feats = ws.load_features(features)
    path, backbone, image_size = fs.path, fs.backbone, fs.image_size
    tr = np.flatnonzero((m["split"] == train_split).to_numpy() & (m["label"] >= 0).to_numpy())
    te = np.flatnonzero((m["split"] == test_split).to_numpy() & (m["label"] >= 0).to_numpy())
    if len(tr) == 0 or len(te) == 0:
        raise WorkspaceError(f"{ws.root}: the probe needs labelled '{train_split}' and '{test_split}' images; "
                             f"splits here: {', '.join(m['split'].unique())}")
    y = m["label"].to_numpy()
    if len(np.unique(y[tr])) < 2:
        raise WorkspaceError(f"{ws.root}: the probe needs labelled '{train_split}' images of at least two classes")
    t0 = time.perf_counter()
    acc = probe_accuracy(feats[tr], y[tr], feats[te], y[te], c=c)
    result = ProbeResult(path.name, len(tr), len(te), acc, round(time.perf_counter() - t0, 2))
    write_json(ws.dir("probe") / f"{backbone}@{image_size}.json", asdict(result))
    log.info("probe: %s linear-probe accuracy %.4f (%d train -> %d test)", path.name, acc, len(tr), len(te))
    return result


def saved_probes(ws: Workspace) -> list[dict]:
    return [read_json(p) for p in sorted((ws.dir("probe")).glob("*.json"))]
