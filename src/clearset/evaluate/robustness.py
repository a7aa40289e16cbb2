"""Robustness of a trained run (``clearset eval RUN --corruptions``): accuracy under the 15 common
corruptions at 5 severities, generated on the fly from the evaluation split (evaluate/corruptions.py), and
on named distribution-shift test sets (``--shift FILE.npz``, e.g. CINIC-10's ImageNet images for CIFAR-10).

Writes ``RUN/robustness.json``: clean accuracy on the same images, accuracy per corruption and severity,
the mean over corruptions per severity and overall, and per shift set its accuracy and image count.
"""

from __future__ import annotations

import logging
import time
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import progress
from ..errors import ParameterError, param
from ..workspace import Workspace, write_json
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_names

log = logging.getLogger("clearset")


def load_shift_set(path: str | Path, classes: list[str], size: int) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 (N, 3, size, size) images and labels from an .npz with ``x_test``/``y_test`` (+ ``class_names``,
    which must equal the run's classes when present)."""
    from ..data.images import resize_center

    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: shift test set not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x_test" not in z.files or "y_test" not in z.files:
                raise ParameterError(f"{path}: a shift set needs x_test (N, H, W, 3) and y_test (N,) arrays")
            x, y = z["x_test"], z["y_test"]
            names = [str(c) for c in z["class_names"]] if "class_names" in z.files else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # pickled members included: never loaded
        raise ParameterError(f"{path}: not a readable .npz of numeric arrays ({e})") from None
    if not np.issubdtype(y.dtype, np.integer):
        raise ParameterError(f"{path}: y_test must hold integer labels, got {y.dtype}")
    y = y.astype(np.int64)
    if names is not None and names != classes:
        raise ParameterError(f"{path}: its class_names {names[:4]}... differ from the run's classes {classes[:4]}...")
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) != len(y) or y.min() < 0 or y.max() >= len(classes):
        raise ParameterError(f"{path}: x_test must be (N, H, W, 3) uint8 and y_test (N,) labels within "
                             f"0..{len(classes) - 1}; got {x.shape} and {y.shape}")
    if x.shape[1:3] != (size, size):
        x = np.stack([resize_center(img, size) for img in x])
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous(), y


def robustness(run_dir: str | Path, *, corruptions: list[str] | None = None, severities: list[int] | None = None,
               images: int | None = None, shift: Sequence[str | Path] | None = None, seed: int = 0,
               batch: int = 1000, checked: tuple | None = None) -> dict:
    """Accuracy of the run on corrupted copies of its evaluation split (``images``: a seeded random sample
    of that many, default all) and on each ``shift`` set. ``checked``: what check_robustness returned for
    these arguments (so a caller that checked first does not read the shift sets twice)."""
    from ..artifacts.runs import class_mapping, map_labels
    from ..data.loading import load_split
    from ..models.inference import predict

    run, names, sev, shift_sets = checked or check_robustness(run_dir, corruptions=corruptions,
                                                              severities=severities, images=images, shift=shift)
    cfg = run.config
    ws = Workspace(run.root.parents[1])
    x, labels, _ = load_split(ws, cfg["eval_split"], cfg["recipe"]["image_size"])
    labels, _ = map_labels(labels, class_mapping(len(cfg["classes"]), None))
    keep = np.flatnonzero(labels >= 0)
    if images is not None and images < len(keep):
        keep = np.sort(np.random.default_rng(seed).choice(keep, images, replace=False))
    x, labels = x[torch.from_numpy(keep)], labels[keep]
    net = run.load_model()
    norm = cfg["normalisation"]
    mean, std = torch.tensor(norm["mean"]).view(1, 3, 1, 1), torch.tensor(norm["std"]).view(1, 3, 1, 1)
    autocast = cfg["precision"] == "bf16"

    def acc(imgs: torch.Tensor, y: np.ndarray) -> float:
        return float((predict(net, imgs, mean, std, batch, autocast).argmax(1) == y).mean())

    t0 = time.perf_counter()
    out = {"run": run.name, "split": cfg["eval_split"], "images": int(len(keep)), "seed": seed,
           "clean_acc": acc(x, labels), "corruptions": {}}
    bar = progress.bar(total=len(names) * len(sev), desc="corruptions", unit="set")
    for name in names:
        row = {}
        for s in sev:
            parts = [corrupt(x[b : b + batch], name, s, seed=seed * 1_000_003 + b) for b in range(0, len(x), batch)]
            row[str(s)] = acc(torch.cat(parts), labels)
            bar.update(1)
        row["mean"] = float(np.mean([row[str(s)] for s in sev]))
        out["corruptions"][name] = row
        log.info("corruption %-18s mean accuracy %.4f", name, row["mean"])
    bar.close()
    if names:
        out["per_severity"] = {str(s): float(np.mean([out["corruptions"][c][str(s)] for c in names])) for s in sev}
        out["mean_corruption_acc"] = float(np.mean([out["corruptions"][c]["mean"] for c in names]))
        out["relative_drop"] = 1 - out["mean_corruption_acc"] / max(out["clean_acc"], 1e-12)
    out["shift"] = {k: {"acc": acc(xs, ys), "images": int(len(ys))} for k, (xs, ys) in shift_sets.items()}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    path = run.root / "robustness.json"
    write_json(path, out)
    out["path"] = str(path)
    return out


def check_robustness(run_dir: str | Path, *, corruptions: list[str] | None = None,
                     severities: list[int] | None = None, images: int | None = None,
                     shift: Sequence[str | Path] | None = None):
    """Every check of ``robustness`` before any work or write (the shift sets are read here):
    (run, corruption names, severities, shift sets)."""
    from ..artifacts.runs import load_run

    run = load_run(run_dir)
    cfg = run.config
    names = corruption_names() if corruptions is None else corruptions
    unknown = [c for c in names if c not in CORRUPTIONS]
    if unknown:
        raise ParameterError(f"{param('corruptions')}: unknown corruption(s) {', '.join(unknown)}; choose from "
                             f"{', '.join(corruption_names())}")
    sev = list(SEVERITIES) if severities is None else severities
    if any(s not in SEVERITIES for s in sev):
        raise ParameterError(f"{param('severities')} {','.join(map(str, sev))}: severities are 1..5")
    if images is not None and images < 1:
        raise ParameterError(f"{param('corruption_images')} must be at least 1")
    shift_sets = {Path(p).stem: load_shift_set(p, cfg["classes"], cfg["recipe"]["image_size"]) for p in shift or []}
    if cfg.get("known_classes") is not None:
        raise ParameterError(f"{run.root}: an open-set run; robustness is measured on closed-set runs")
    if cfg["eval_split"] is None:
        raise ParameterError(f"{run.root}: the run has no evaluation split")
    if cfg["recipe"].get("model") == "linear":
        raise ParameterError(f"{run.root}: a linear probe on stored features; robustness needs a model of the pixels")
    return run, names, sev, shift_sets
