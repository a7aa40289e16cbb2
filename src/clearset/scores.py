"""Data-pruning scores from networks trained on the pixels (``clearset score WS --method el2n|forgetting|craig``).

Each method trains ``runs`` networks of ``recipe`` from different random initialisations on all the
labelled training images (cached runs of the train stage) and scores every training image:

- ``el2n`` (Paul et al., NeurIPS 2021, "Deep learning on a data diet"): the mean over the runs of the L2
  norm of (softmax output - one-hot label) after ``epochs`` epochs (the paper: 20 of 200 on CIFAR-10, 10
  initialisations). Default here: cifar-resnet8-fast, 2 of its 10 epochs, 4 runs.
- ``forgetting`` (Toneva et al., ICLR 2019): forgetting events counted over a whole training, summed over
  the runs: each time an image goes from correctly to wrongly classified between two consecutive
  presentations in its (augmented) minibatch; an image never classified correctly counts as forgotten at
  every presentation. Default: the recipe's full training (10 epochs of ResNet-8, the paper 200 epochs of
  ResNet-18) and 2 runs (the paper: 5 seeds).
- ``craig`` (Mirzasoleiman et al., ICML 2020): the per-example gradient proxy of the loss with respect to
  the last layer's input, softmax - one-hot (N, K), after ``epochs`` epochs (default 2, 1 run; averaged
  over runs when there are several). The ``craig-pixel`` strategies build their coresets on it. CRAIG
  re-selects from the training network every epoch; here the proxies are taken once (stated in the
  strategy's name and ``clearset list``).

Writes ``WS/scores/<method>-<recipe>-e<epochs>-r<runs>-s<seed>.npy`` over the manifest ((N,) float32, or
(N, K) for craig; NaN for images that are not labelled training images) with a sidecar; curate reads it
through ``artifacts/scores.py``. Floor 5: it runs the train stage for a score another stage reads.
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
# method -> (default epochs (None: the recipe's whole training), default runs)
DEFAULTS: dict[str, tuple[int | None, int]] = {"el2n": (2, 4), "forgetting": (None, 2), "craig": (2, 1)}
METHODS = tuple(DEFAULTS)


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """(N,) forgetting events from (presentations, N) correctness (1 correct, 0 wrong, -1 not presented):
    correct -> wrong transitions between consecutive presentations (the last presented state carries over
    epochs an image was not presented); never correct = forgotten at every presentation."""
    c = correct.astype(np.int8)
    last = np.full(c.shape[1], -1, np.int8)
    events = np.zeros(c.shape[1], np.float64)
    presented = np.zeros(c.shape[1], np.int64)
    ever = np.zeros(c.shape[1], bool)
    for row in c:
        seen = row >= 0
        events += seen & (last == 1) & (row == 0)
        last = np.where(seen, row, last)
        presented += seen
        ever |= row == 1
    return np.where(~ever & (presented > 0), presented, events)


def pixel_scores(workspace: str | Path | Workspace, *, method: str = "el2n", recipe: str = "cifar-resnet8-fast",
                 epochs: int | None = None, runs: int | None = None, seed: int = 0, force: bool = False) -> Path:
    import torch

    from .data.loading import load_images
    from .models.inference import predict
    from .train import train
    from .train.api import PRESENTATIONS
    from .train.recipes import get_recipe

    ws = Workspace.of(workspace)
    ws.require_manifest()
    check_seed(seed)
    if method not in METHODS:
        raise ParameterError(f"{param('method')} {method!r}: choose one of {', '.join(METHODS)}")
    default_epochs, default_runs = DEFAULTS[method]
    epochs = epochs if epochs is not None else default_epochs or get_recipe(recipe).epochs
    runs = runs if runs is not None else default_runs
    if epochs < 1 or runs < 1:
        raise ParameterError(f"{param('epochs')} and {param('runs')} must be at least 1")
    m = ws.manifest(["index", "split", "label"])
    rows = m[(m["split"] == "train") & (m["label"] >= 0)]
    if rows["label"].nunique() < 2:
        raise ParameterError(f"{ws.root}: {method} needs labelled training images of at least two classes")
    index, labels = rows["index"].to_numpy(np.int64), rows["label"].to_numpy(np.int64)
    path = score_path(ws, method=method, recipe=recipe, epochs=epochs, runs=runs, seed=seed)
    step = ws.step("score", params={"method": method, "recipe": recipe, "epochs": epochs, "runs": runs, "seed": seed},
                   inputs={"manifest": ws.fingerprint(ws.manifest_path)}, outputs=[path], sidecar=ws.sidecar_of(path))
    if step.cached() and not force:
        log.info("score: cached %s", path)
        return path
    n_classes = len(ws.classes())
    onehot = np.eye(n_classes, dtype=np.float32)[labels]
    total = np.zeros((len(index), n_classes) if method == "craig" else len(index), np.float64)
    images = None
    for r in range(runs):  # independent initialisations: the run seed differs, the data does not
        run = train(ws, recipe=recipe, epochs=epochs, seed=seed * 1000 + r, eval_split=None, force=force,
                    record_presentations=method == "forgetting")
        if method == "forgetting":
            with np.load(run.root / PRESENTATIONS) as z:
                pos = {int(i): p for p, i in enumerate(z["index"])}
                total += forgetting_events(z["correct"][:, [pos[int(i)] for i in index]])
        else:
            if images is None:
                images = load_images(ws, index, run.config["recipe"]["image_size"], desc="load training")
            norm = run.config["normalisation"]
            mean, std = (torch.tensor(norm[key]).view(1, 3, 1, 1) for key in ("mean", "std"))
            logits = predict(run.load_model(), images, mean, std, autocast=run.config["precision"] == "bf16")
            g = torch.softmax(torch.from_numpy(logits), 1).numpy() - onehot
            total += g if method == "craig" else np.linalg.norm(g, axis=1)
        log.info("score: %s run %d/%d (%s, %d epochs)", method, r + 1, runs, recipe, epochs)
    score = np.full((len(m),) + total.shape[1:], np.nan, np.float32)
    score[index] = total if method == "forgetting" else total / runs
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, score)
    step.finish(images=int(len(index)), mean=float(np.nanmean(score)))
    return path
