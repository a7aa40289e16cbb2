"""Out-of-fold probabilities from networks trained on the pixels (``clearset oof WS --recipe NAME``).

The label-issue check's default out-of-fold models work on the embeddings; a network trained on the
pixels makes different mistakes, and averaging both can rank label errors better (bench/audit/label_issues_cnn.py
measures it). Each of ``folds`` stratified folds of the labelled images is predicted by a ``recipe`` run
trained on the other folds through clearset's trainer (so every fold run is cached and resumable).
Writes ``WS/oof/<recipe>-f<folds>-s<seed>[-e<epochs>][-clean].npy`` (N, C) float32 (zeros for unlabelled rows) with a
sidecar; pass it to ``clearset audit --pred-probs FILE --combine`` to average it with the embedding models.
When the recipe names a test-time augmentation (``tta``: cifar-airbench's mirror + shifts), the held-out
images are predicted with it; otherwise, when the recipe trains with horizontal flips, each held-out image
is predicted as itself and mirrored and the two probabilities averaged.

``clean=True`` (``--clean``): before each fold's network is trained, the embedding models (the audit's
default label-issue check) are run on that fold's training images alone, and the images they flag are left
out of its training set. A network memorises wrong labels; one trained on the cleaner remainder predicts
the held-out fold better. The held-out fold's labels play no part in the cleaning, so its probabilities
stay out-of-fold. Needs stored features (``clearset embed``; ``features`` picks which).

Floor 5 (it runs two stages together: train's fold networks, audit's label finder); the audit reads the
result as an artifact (``artifacts/oof.py``), so neither stage imports the other.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .artifacts.oof import fold_subset_path, oof_path
from .audit.label_issues import find_label_issues, fold_indices, out_of_fold_probs
from .errors import ParameterError, check_seed, param
from .io import atomic_path
from .train.recipes import DEFAULT_RECIPE
from .workspace import Workspace

if TYPE_CHECKING:
    import torch

log = logging.getLogger("clearset")


def pixel_oof(workspace: str | Path | Workspace, *, recipe: str = DEFAULT_RECIPE, folds: int = 5,
              seed: int = 0, epochs: int | None = None, clean: bool = False, features: str | None = None,
              force: bool = False) -> Path:
    import pandas as pd
    import torch

    from .data.loading import load_images
    from .train import train

    ws = Workspace.of(workspace)
    ws.require_manifest()
    check_seed(seed)
    if folds < 2:
        raise ParameterError(f"{param('folds')} must be at least 2")
    m = ws.manifest(["index", "label"])
    labelled = m[m["label"] >= 0]
    if folds > labelled["label"].value_counts().max():
        raise ParameterError(f"{param('folds')} {folds}: more folds than images in the largest class "
                             f"({labelled['label'].value_counts().max()}); use fewer folds")
    if labelled["label"].nunique() < 2:
        raise ParameterError(f"{ws.root}: out-of-fold models need labelled images of at least two classes")
    index, labels = labelled["index"].to_numpy(np.int64), labelled["label"].to_numpy(np.int64)
    path = oof_path(ws, recipe=recipe, folds=folds, seed=seed, epochs=epochs, clean=clean)
    inputs = {"manifest": ws.fingerprint(ws.manifest_path)}
    x = None
    if clean:
        from .vectors import normalise_features

        if ws.resolve_features(features, required=False) is None:
            raise ParameterError(f"{param('clean')} needs stored features: run `clearset embed {ws.root}` first")
        fs, feats = ws.load_features(features)
        inputs["features"] = fs.key
        x = normalise_features(feats[index])
    step = ws.step("oof", params={"recipe": recipe, "folds": folds, "seed": seed, "epochs": epochs, "clean": clean,
                                  "views": "image+flip"},
                   inputs=inputs, outputs=[path], sidecar=ws.sidecar_of(path))
    if step.cached() and not force:
        log.info("oof: cached %s", path)
        return path
    probs = np.zeros((len(m), len(ws.classes())), np.float32)
    images, dropped = None, []
    for f, (tr, te) in enumerate(fold_indices(labels, folds, seed)):
        if x is not None:  # --clean
            keep = ~_flagged(x[tr], labels[tr], len(ws.classes()), seed)
            dropped.append(int((~keep).sum()))
            log.info("oof: fold %d/%d trains on %d images (%d flagged by the embedding models left out)",
                     f + 1, folds, int(keep.sum()), dropped[-1])
            tr = tr[keep]
        sub = fold_subset_path(ws, fold=f, folds=folds, seed=seed, epochs=epochs, clean=clean)
        sub.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"index": index[tr]}).to_parquet(sub)
        run = train(ws, recipe=recipe, epochs=epochs, seed=seed + f, subset=sub, train_split=None, eval_split=None,
                    force=force)
        if images is None:
            images = load_images(ws, index, run.config["recipe"]["image_size"], desc="load labelled")
        norm = run.config["normalisation"]
        mean, std = (torch.tensor(norm[key]).view(1, 3, 1, 1) for key in ("mean", "std"))
        net, held_out = run.load_model(), images[torch.from_numpy(te)]
        probs[index[te]] = _held_out_probs(net, held_out, mean, std, run.config)
        log.info("oof: fold %d/%d held-out agreement with the labels %.4f", f + 1, folds,
                 float((probs[index[te]].argmax(1) == labels[te]).mean()))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, probs)
    agree = float((probs[index].argmax(1) == labels).mean())
    step.finish(images=int(len(index)), agreement=agree, **({"left_out_per_fold": dropped} if clean else {}))
    return path


def _held_out_probs(net, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, config: dict) -> np.ndarray:
    """A recipe with test-time augmentation (``tta``, e.g. cifar-airbench) predicts with it, the softmax of the
    averaged logits; otherwise the mean softmax of each image and, where the recipe flips, its mirror."""
    import torch

    from .models.inference import predict

    rec, autocast = config["recipe"], config["precision"] == "bf16"
    if rec.get("tta"):
        return torch.softmax(torch.from_numpy(predict(net, images, mean, std, autocast=autocast, tta=rec["tta"])),
                             1).numpy()
    views = [images, images.flip(3)] if rec.get("flip") else [images]
    return np.mean([torch.softmax(torch.from_numpy(predict(net, v, mean, std, autocast=autocast)), 1).numpy()
                    for v in views], axis=0)


def _flagged(x: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """The default label-issue flags of normalised features ``x`` with ``labels``, from these rows alone."""
    probs = out_of_fold_probs(x, labels, n_classes, seed=seed, normalised=True)
    return find_label_issues(labels, probs)["is_label_issue"].to_numpy()
