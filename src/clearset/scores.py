"""Data-pruning scores from networks trained on the pixels (``clearset score WS --method el2n``).

EL2N (Paul et al., NeurIPS 2021, "Deep learning on a data diet"): train ``runs`` networks from different
random initialisations on all the labelled training images for ``epochs`` epochs (the paper: 20 of 200 on
CIFAR-10, 10 initialisations), and score each training image by the mean over the runs of the L2 norm of
(softmax output - one-hot label). The ``el2n`` curation strategy keeps the highest. Scaled down here: the
recipe, epochs and runs are the caller's (defaults: cifar-resnet8-fast, 2 of its 10 epochs, 4 runs), and
recorded with the score.

Writes ``WS/scores/el2n-<recipe>-e<epochs>-r<runs>-s<seed>.npy`` (N,) float32 over the manifest (NaN for
images that are not labelled training images) with a sidecar; curate reads it through ``artifacts/scores.py``.
Floor 5: it runs the train stage for a score another stage reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .artifacts.scores import score_path
from .errors import ParameterError, check_seed, param
from .io import atomic_path
from .workspace import Workspace

log = logging.getLogger("clearset")
METHODS = ("el2n",)


def pixel_scores(workspace: str | Path | Workspace, *, method: str = "el2n", recipe: str = "cifar-resnet8-fast",
                 epochs: int = 2, runs: int = 4, seed: int = 0, force: bool = False) -> Path:
    import torch

    from .data.loading import load_images
    from .models.inference import predict
    from .train import train

    ws = Workspace.of(workspace)
    ws.require_manifest()
    check_seed(seed)
    if method not in METHODS:
        raise ParameterError(f"{param('method')} {method!r}: choose one of {', '.join(METHODS)}")
    if epochs < 1 or runs < 1:
        raise ParameterError(f"{param('epochs')} and {param('runs')} must be at least 1")
    m = ws.manifest(["index", "split", "label"])
    rows = m[(m["split"] == "train") & (m["label"] >= 0)]
    if rows["label"].nunique() < 2:
        raise ParameterError(f"{ws.root}: EL2N needs labelled training images of at least two classes")
    index, labels = rows["index"].to_numpy(np.int64), rows["label"].to_numpy(np.int64)
    path = score_path(ws, method=method, recipe=recipe, epochs=epochs, runs=runs, seed=seed)
    step = ws.step("score", params={"method": method, "recipe": recipe, "epochs": epochs, "runs": runs, "seed": seed},
                   inputs={"manifest": ws.fingerprint(ws.manifest_path)}, outputs=[path], sidecar=ws.sidecar_of(path))
    if step.cached() and not force:
        log.info("score: cached %s", path)
        return path
    onehot = np.eye(len(ws.classes()), dtype=np.float32)[labels]
    total = np.zeros(len(index), np.float64)
    images = None
    for r in range(runs):  # independent initialisations: the run seed differs, the data does not
        run = train(ws, recipe=recipe, epochs=epochs, seed=seed * 1000 + r, eval_split=None, force=force)
        if images is None:
            images = load_images(ws, index, run.config["recipe"]["image_size"], desc="load training")
        norm = run.config["normalisation"]
        mean, std = (torch.tensor(norm[key]).view(1, 3, 1, 1) for key in ("mean", "std"))
        logits = predict(run.load_model(), images, mean, std, autocast=run.config["precision"] == "bf16")
        probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
        total += np.linalg.norm(probs - onehot, axis=1)
        log.info("score: EL2N run %d/%d (%s, %d epochs)", r + 1, runs, recipe, epochs)
    score = np.full(len(m), np.nan, np.float32)
    score[index] = total / runs
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, score)
    step.finish(images=int(len(index)), mean=float(np.nanmean(score)))
    return path
