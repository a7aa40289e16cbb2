"""What a training run trains on, before any pixel is loaded: the training rows and their weights (a
subset file, its relabels and strongly augmented copies, a distilled set instead of the images), the
classes (all, or the known ones of an open-set run), soft targets, teachers and stored reinforcement,
each checked against the others (one table of what cannot be combined, in the errors below)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..artifacts.distilled import load_distilled
from ..artifacts.runs import Run, class_mapping, load_run, map_labels
from ..artifacts.subsets import read_subset, subset_column, subset_labels, subset_sampler
from ..errors import ParameterError, param
from ..io import hash_json
from .recipes import Recipe
from .reinforcement import Reinforced, load_reinforced


@dataclass
class TrainingRows:
    labels: np.ndarray  # (N_train,) labels of the training split (relabelled by a subset), or the distilled set's
    positions: np.ndarray  # rows trained on, as positions into the split (repeated for strong copies)
    weights: np.ndarray  # (len(positions),) float32
    strong: np.ndarray | None  # which positions are strongly augmented copies (craig-augment)
    dist: Any  # the distilled set trained on instead of the images, or None
    classes: list[str]  # the model's outputs
    class_map: np.ndarray  # workspace class -> output, -1 for classes left out (open set)
    known_classes: list[int] | None
    targets: np.ndarray | None
    targets_name: str | None
    sampler: Any
    sampler_name: str | None
    teacher_runs: list[Run]
    rein: Reinforced | None
    rein_rows: torch.Tensor | None


def training_rows(ws, rec: Recipe, classes: list[str], labels: np.ndarray, train_index: np.ndarray, *,
                  train_split: str, subset, distilled, targets, targets_name, sampler, sampler_name,
                  known_classes, teachers, kd_temperature: float, kd_hard_weight: float,
                  reinforced) -> TrainingRows:
    """The rows, weights and targets ``train`` trains on; every inconsistency is one ParameterError."""
    positions = np.arange(len(train_index))
    weights = np.ones(len(train_index), np.float32)
    strong = None
    dist = None
    if distilled is not None:
        dist = _distilled_set(distilled, classes, rec, subset=subset, targets=targets, reinforced=reinforced,
                              known_classes=known_classes, sampler=sampler)
        labels, positions, weights = dist.labels, np.arange(len(dist.labels)), np.ones(len(dist.labels), np.float32)
    if subset is not None:
        positions, weights = read_subset(subset, train_index)
        relabel = subset_labels(subset, len(classes))
        if relabel is not None:  # a curated subset that fixes labels (clean with --option relabel=true)
            labels = labels.copy()
            labels[positions] = relabel
            targets_name = targets_name or f"relabelled:{hash_json(relabel.tolist())[:16]}"
        flags = subset_column(subset, "augment")
        if flags is not None and flags.astype(bool).any():  # append strongly augmented copies (craig-augment)
            flags = flags.astype(bool)
            strong = np.r_[np.zeros(len(positions), bool), np.ones(int(flags.sum()), bool)]
            positions, weights = np.r_[positions, positions[flags]], np.r_[weights, np.ones(int(flags.sum()), np.float32)]
        if sampler is None:
            found = subset_sampler(subset, len(positions))
            if found is not None:
                sampler, sampler_name = found
    if known_classes is not None:
        known_classes = sorted(set(known_classes))
        if not known_classes or min(known_classes) < 0 or max(known_classes) >= len(classes):
            raise ParameterError(f"{param('known_classes')} must name classes of this workspace (0..{len(classes) - 1})")
    class_map = class_mapping(len(classes), known_classes)
    if known_classes is not None:
        keep = class_map[labels[positions]] >= 0
        positions, weights = positions[keep], weights[keep]
        strong = strong[keep] if strong is not None else None
        classes = [classes[c] for c in known_classes]
    n_out = len(classes)
    if targets is not None and dist is None:
        targets = np.asarray(targets, dtype=np.float32)
        if targets.shape != (len(train_index), n_out):
            raise ParameterError(f"soft targets must be ({len(train_index)}, {n_out}) for this workspace's "
                                 f"{train_split} split, got {targets.shape}")
    teacher_runs = [load_run(t) for t in teachers or []]
    for t in teacher_runs:
        if len(t.config["classes"]) != n_out:
            raise ParameterError(f"teacher {t.root} predicts {len(t.config['classes'])} classes, this training "
                                 f"has {n_out}; distil from a teacher trained on the same classes")
    if kd_temperature <= 0 or not 0 <= kd_hard_weight <= 1:
        raise ParameterError(f"{param('kd_temperature')} must be > 0 and {param('kd_hard_weight')} within [0, 1]")
    labelled = labels[positions] >= 0
    positions, weights = positions[labelled], weights[labelled]
    if strong is not None:
        strong = strong[labelled]
    if len(positions) == 0:
        raise ParameterError(f"{ws.root}: no labelled training images to train on")
    rein = rein_rows = None
    if reinforced is not None:
        rein, rein_rows = _reinforced_rows(reinforced, train_index, positions, classes, rec.image_size,
                                           combined=targets is not None or bool(teacher_runs) or known_classes is not None)
    return TrainingRows(labels, positions, weights, strong, dist, classes, class_map, known_classes, targets,
                        targets_name, sampler, sampler_name, teacher_runs, rein, rein_rows)


def run_config(ws, rec: Recipe, rows: TrainingRows, *, seed: int, train_split: str, eval_split: str | None,
               precision: str, device_type: str, subset, tract: float | None, kd_temperature: float,
               kd_hard_weight: float) -> dict:
    """The run's configuration: everything its result depends on (its hash is the run's cache key)."""
    config = {
        "recipe": rec.as_dict(), "seed": seed, "classes": rows.classes, "known_classes": rows.known_classes,
        "train_split": train_split, "eval_split": eval_split, "precision": precision, "device": device_type,
        "pixels": ws.fingerprint(ws.manifest_path),
        "subset": hash_json({"pos": rows.positions.tolist(), "w": rows.weights.tolist()}) if subset is not None else None,
        "subset_file": str(subset) if subset is not None else None, "train_images": int(len(rows.positions)),
        "targets": rows.targets_name or (hash_json(rows.targets.round(6).tolist()) if rows.targets is not None else None),
        "sampler": rows.sampler_name, "tract": tract,
        "teachers": [t.config["key"] for t in rows.teacher_runs] or None,
        "kd": {"temperature": kd_temperature, "hard_weight": kd_hard_weight} if rows.teacher_runs else None,
    }
    if rows.rein is not None:  # only present when used, so the keys of earlier runs stay valid
        config["reinforced"] = rows.rein.meta["key"]
    if rows.dist is not None:
        config["distilled"] = rows.dist.key
    if rows.strong is not None:
        config["strong_copies"] = int(rows.strong.sum())
    return config


def _distilled_set(path, classes: list[str], rec: Recipe, **others):
    """The distilled set at ``path``, checked against the workspace, the recipe and the other options."""
    used = [k for k, v in others.items() if v is not None]
    if used:
        raise ParameterError(f"{param('distilled')} trains on the synthetic set alone; {', '.join(used)} do not apply to it")
    if rec.model == "linear":
        raise ParameterError("the linear-probe recipe trains on stored features; a distilled set has none")
    d = load_distilled(path)
    if d.classes != classes:
        raise ParameterError(f"{path}: the distilled set has other classes than this workspace")
    if d.images.shape[-1] != rec.image_size or d.images.shape[1] != 3:
        raise ParameterError(f"{path}: synthetic images are {d.images.shape[-1]} px, the recipe {rec.name!r} trains at "
                             f"{rec.image_size} px; distil at {param('image_size')} {rec.image_size} or pick a recipe of that size")
    return d


def _reinforced_rows(path, train_index: np.ndarray, positions: np.ndarray, classes: list[str], size: int,
                     combined: bool):
    """Load a reinforcement and map training rows to its rows; every trained row must be reinforced."""
    if combined:
        raise ParameterError(f"{param('reinforced')} replaces the targets: it cannot be combined with {param('teachers')}, soft "
                             f"targets or {param('known_classes')}")
    rein = load_reinforced(path)
    if rein.meta.get("classes") != classes:
        raise ParameterError(f"{rein.root}: reinforced targets cover {len(rein.meta.get('classes', []))} classes, "
                             f"this training has {len(classes)}")
    if rein.meta.get("image_size") != size:
        raise ParameterError(f"{rein.root}: augmentations were drawn at {rein.meta.get('image_size')} px, the "
                             f"recipe trains at {size} px")
    lookup = np.full(int(max(train_index.max(), rein.index.max())) + 1, -1)
    lookup[rein.index] = np.arange(len(rein.index))
    rows = lookup[train_index]
    missing = int((rows[positions] < 0).sum())
    if missing:
        raise ParameterError(f"{rein.root}: {missing} training images have no reinforced targets; reinforce "
                             "the same split (and a superset of the subset) first")
    return rein, torch.from_numpy(rows)


def soft_targets(labels: np.ndarray, class_map: np.ndarray, targets: np.ndarray | None, n_out: int,
                 smoothing: float) -> torch.Tensor:
    """(N, n_out) training targets: the given soft targets, or one-hot labels with label smoothing
    (rows of unknown/unlabelled images stay zero)."""
    if targets is not None:
        return torch.from_numpy(targets)
    one_hot = torch.zeros(len(labels), n_out)
    mapped, ok = map_labels(labels, class_map)
    one_hot[torch.from_numpy(np.flatnonzero(ok)), torch.from_numpy(mapped[ok])] = 1.0
    if smoothing > 0:
        one_hot = one_hot * (1 - smoothing) + smoothing / n_out
    return one_hot
