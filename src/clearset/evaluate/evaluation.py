"""``clearset eval RUN``: the metrics of a trained run on its evaluation split (or another workspace's
split), with human soft labels when given; writes ``RUN/metrics.json`` (or ``metrics-<split>.json``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ParameterError, param
from ..workspace import Workspace, write_json
from .metrics import evaluate_predictions


def load_human_labels(path: str | Path, n: int, k: int) -> np.ndarray:
    """(n, k) human label counts or probabilities from a .npy file, checked against the split's shape."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: human-labels file not found")
    try:
        human = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ParameterError(f"{path}: not a readable .npy array ({e})") from None
    if human.shape != (n, k):
        raise ParameterError(f"{path}: human labels must be ({n}, {k}) (one row per evaluation image, one "
                             f"column per class), got {human.shape}")
    return human


def evaluate_run(run_dir: str | Path, *, data: str | Path | None = None, split: str | None = None,
                 human_labels: str | Path | None = None) -> dict:
    """Metrics of the run at ``run_dir``; with ``data``/``split`` the model predicts that split afresh."""
    import torch

    from ..artifacts.runs import class_mapping, load_run, map_labels
    from ..data.loading import load_split
    from ..models.inference import predict

    run = load_run(run_dir)
    cfg = run.config
    if data is None and (split is None or split == cfg["eval_split"]):
        preds = run.predictions()
        if "logits" not in preds:
            raise ParameterError(f"{run.root}: the run stored no predictions; pass {param('split')}")
        logits, labels = preds["logits"], preds["labels"]
        known = preds.get("known")
        if known is None and cfg.get("known_classes") is not None and "index" in preds:
            # a run that stored no mask (linear-probe runs before 2026-12-07): from the manifest's labels
            home = Workspace(run.root.parents[1])
            given = home.manifest(["index", "label"]).set_index("index")["label"].loc[preds["index"]].to_numpy()
            _, known = map_labels(given, class_mapping(len(home.classes()), cfg["known_classes"]))
        split = cfg["eval_split"]
    else:
        ws = Workspace(data) if data is not None else Workspace(run.root.parents[1])
        if ws.classes() != cfg["classes"] and cfg.get("known_classes") is None:
            raise ParameterError(f"{ws.root}: its classes differ from the run's ({len(cfg['classes'])} classes)")
        split = split or cfg["eval_split"]
        images, labels, _ = load_split(ws, split, cfg["recipe"]["image_size"])
        known = None
        if cfg.get("known_classes") is not None:
            labels, known = map_labels(labels, class_mapping(len(ws.classes()), cfg["known_classes"]))
        norm = cfg["normalisation"]
        logits = predict(run.load_model(), images, torch.tensor(norm["mean"]).view(1, 3, 1, 1),
                         torch.tensor(norm["std"]).view(1, 3, 1, 1), autocast=cfg["precision"] == "bf16")
    human = load_human_labels(human_labels, *logits.shape) if human_labels is not None else None
    metrics = evaluate_predictions(logits, labels, human=human)
    metrics = {"run": run.name, "split": split, "images": int(len(labels)), **metrics}
    if known is not None:
        from .openset import openset_metrics

        metrics["openset"] = openset_metrics(logits, known, labels)
    out = run.root / ("metrics.json" if split == cfg["eval_split"] and data is None else f"metrics-{split}.json")
    write_json(out, metrics)
    metrics["path"] = str(out)
    return metrics

