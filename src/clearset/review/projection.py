"""The review's embedding map: a 2-D UMAP projection of the workspace's features, computed once and cached.

``WS/review/map/<backbone@size>.npy`` (N, 2) float32 with a sidecar recording the features' fingerprint, so a
new embedding (or a new manifest, which sets ``review/`` aside) recomputes it. UMAP (umap-learn: cosine
metric, 15 neighbours, min_dist 0.1, seed 0; the library's defaults apart from the metric and the seed) is
fitted on at most ``FIT_ROWS`` rows, and the other rows are placed by ``transform``, which keeps memory and
time bounded for large workspaces (about 2 minutes for 50,000 x 1,280 on 2 cores).
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import numpy as np

from ..workspace import Workspace, atomic_path

log = logging.getLogger("clearset")

FIT_ROWS = 100_000
SEED, NEIGHBOURS, MIN_DIST = 0, 15, 0.1
PARAMS: dict = {"method": "umap", "metric": "cosine", "n_neighbors": NEIGHBOURS, "min_dist": MIN_DIST, "seed": SEED,
                "fit_rows": FIT_ROWS}


def _paths(ws: Workspace, spec: str) -> Path:
    return ws.dir("review") / "map" / f"{spec}.npy"


def compute_map(ws: Workspace, features: np.ndarray, spec: str, fingerprint: str) -> np.ndarray:
    path = _paths(ws, spec)
    step = ws.step("review.map", params=PARAMS, inputs={"features": fingerprint}, outputs=[path],
                   sidecar=ws.sidecar_of(path))
    if step.cached():
        return np.load(path, allow_pickle=False)
    import umap

    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    rng = np.random.default_rng(SEED)
    fit = np.sort(rng.choice(n, FIT_ROWS, replace=False)) if n > FIT_ROWS else np.arange(n)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(NEIGHBOURS, max(2, len(fit) - 1)), min_dist=MIN_DIST,
                        metric="cosine", random_state=SEED, low_memory=True)
    out = np.empty((n, 2), dtype=np.float32)
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": the seed is the point
        warnings.simplefilter("ignore", UserWarning)
        out[fit] = reducer.fit_transform(x[fit])
        rest = np.setdiff1d(np.arange(n), fit)
        for start in range(0, len(rest), 50_000):
            chunk = rest[start:start + 50_000]
            out[chunk] = reducer.transform(x[chunk])
    with atomic_path(path) as tmp:  # makes the folder too
        with open(tmp, "wb") as fh:
            np.save(fh, out)
    step.finish(rows=n, fitted_rows=len(fit))
    return out


class MapJob:
    """The map of one workspace, computed once in a background thread while the app already answers."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.coords: np.ndarray | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="clearset-review-map", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            fs, x = self.ws.load_features()
            self.coords = compute_map(self.ws, x, f"{fs.backbone}@{fs.image_size}", fs.key)
        except Exception as e:  # shown on the map page; the rest of the app keeps working
            log.warning("review map: %s", e)
            self.error = str(e)

    def wait(self, timeout: float | None = None) -> bool:
        self.start()
        assert self._thread is not None
        self._thread.join(timeout)
        return self.coords is not None

    @property
    def state(self) -> str:
        return "ready" if self.coords is not None else "failed" if self.error else "computing"
