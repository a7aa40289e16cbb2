"""The ``linear-probe`` recipe: a linear classifier on stored features (``clearset embed``), written as a
run like any other (``WS/runs/<name>/`` with model.safetensors, config, metrics.jsonl, predictions.npz),
so ``clearset eval`` gives its calibration, human-label metrics and mistakes.

Features are power- and L2-normalised (the CNN-features-off-the-shelf recipe); the objective is the
weighted mean cross-entropy to the (soft) targets + ||W||² / (2·C·n), scikit-learn's
LogisticRegression(C) objective for hard labels, minimised by full-batch L-BFGS (deterministic).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..artifacts.runs import Run, load_run, run_step, write_run
from ..errors import WorkspaceError
from ..ops.linear import PROBE_C, accuracy, fit_linear  # noqa: F401  (PROBE_C: the recipe's C)
from ..vectors import normalise_features
from ..workspace import Workspace


def train_linear_probe(ws: Workspace, *, config: dict, positions: np.ndarray, weights: np.ndarray,
                       targets: torch.Tensor, train_index: np.ndarray, labels_eval, features: str | None,
                       root_for, force: bool) -> Run:
    """Fit the probe on the training rows (``positions`` into ``train_index``) and write the run."""

    if ws.resolve_features(features, required=False) is None:
        raise WorkspaceError(f"{ws.root}: the linear-probe recipe trains on stored features; run "
                             f"`clearset embed {ws.root}` first")
    fs, feats = ws.load_features(features)
    config["features"] = {"file": fs.path.name, "key": fs.key}
    step, root = run_step(config, root_for)
    config["key"] = step.key
    if not force and step.cached():
        return load_run(root)
    t0 = time.perf_counter()
    x = normalise_features(feats[train_index[positions]])
    w, b = fit_linear(x, targets[torch.from_numpy(positions)].numpy(), weights)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        train_logits = torch.from_numpy(x) @ w + b
    history = [{"epoch": 1, "train_loss": float(-(targets[torch.from_numpy(positions)] * torch.log_softmax(train_logits, 1)).sum(1).mean()),
                "train_acc": float((train_logits.argmax(1) == targets[torch.from_numpy(positions)].argmax(1)).float().mean()),
                "lr": None, "seconds": round(seconds, 2), "images_per_s": round(len(positions) / max(seconds, 1e-9), 1)}]
    preds = {}
    if labels_eval is not None:
        ev_labels, ev_index, ev_known = labels_eval
        logits = (torch.from_numpy(normalise_features(feats[ev_index])) @ w + b).numpy()
        preds = {"index": ev_index, "labels": ev_labels, "logits": logits}
        if ev_known is not None:  # trained on --known classes: which test images show one
            preds["known"] = ev_known
        history[-1]["eval_acc"] = accuracy(logits, ev_labels)
    return write_run(root, {"weight": w.T, "bias": b}, history, preds, config, step, epochs=1, fit_seconds=round(seconds, 2))
