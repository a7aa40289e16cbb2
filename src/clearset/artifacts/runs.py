"""A training run on disk, ``WS/runs/<name>/``: config.json, model.safetensors, metrics.jsonl,
predictions.npz (written by ``clearset train``), and how its outputs map to the workspace's classes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ParameterError, WorkspaceError
from ..io import atomic_path, read_json, write_bytes, write_json, write_npz
from ..workspace import Step


@dataclass
class Run:
    """A finished training run on disk."""

    root: Path
    config: dict
    metrics: list[dict]
    cached: bool

    @property
    def name(self) -> str:
        return self.root.name

    def predictions(self) -> dict[str, np.ndarray]:
        with np.load(self.root / "predictions.npz") as z:
            return {k: z[k] for k in z.files}

    def load_model(self) -> torch.nn.Module:
        from safetensors.torch import load_file

        from ..models.cifar import create_model

        c = self.config
        if c["recipe"]["model"] == "linear":
            raise ParameterError(f"{self.root}: a linear-probe run classifies stored features and has no model of "
                                 "the pixels (it cannot predict new images, corruptions or act as a teacher)")
        model = create_model(c["recipe"]["model"], len(c["classes"]), image_size=c["recipe"]["image_size"])
        if c.get("tract") is not None:  # the first conv is wrapped: same parameters, names under .conv
            from ..models.tract import apply_tract

            apply_tract(model, c["tract"])
        model.load_state_dict(load_file(self.root / "model.safetensors"))
        return model.eval()


def load_run(path: str | Path) -> Run:
    root = Path(path)
    if not (root / "config.json").exists() or not (root / "model.safetensors").exists():
        raise WorkspaceError(f"{root}: not a finished training run (no config.json / model.safetensors)")
    metrics = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return Run(root, read_json(root / "config.json"), metrics, cached=True)


def run_step(config: dict, root_for) -> tuple[Step, Path]:
    """The cached step of a run (the one caching mechanism, ``workspace.Step``), keyed by its configuration
    (the subset file's path aside: its rows are in the configuration), and its folder ``root_for(key)``."""
    step = Step(sidecar=Path(), name="train", params={k: v for k, v in config.items() if k not in ("subset_file", "key")},
                inputs={}, outputs=[])
    root = root_for(step.key)
    step.sidecar, step.outputs = root / "run.meta.json", [root / "model.safetensors"]
    return step, root


def write_run(root: Path, state: dict[str, torch.Tensor], history: list[dict], predictions: dict[str, np.ndarray],
              config: dict, step: Step, **results) -> Run:
    """Write a finished run into ``root`` (each file atomically; the step's sidecar ``run.meta.json`` last,
    so a run without it is unfinished): weights, one metrics line per epoch, evaluation predictions, config."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    with atomic_path(root / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    write_bytes(root / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode())
    write_npz(root / "predictions.npz", **predictions)
    write_json(root / "config.json", config)
    step.finish(eval_acc=history[-1].get("eval_acc"), **results)
    return Run(root, config, history, cached=False)


def class_mapping(n_classes: int, known: list[int] | None) -> np.ndarray:
    """Workspace class -> model output index; -1 for classes left out of training (open-set)."""
    if known is None:
        return np.arange(n_classes)
    mapping = np.full(n_classes, -1)
    mapping[known] = np.arange(len(known))
    return mapping


def map_labels(labels: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels in model outputs with -1 for unknown/unlabelled, mask of images of a trained class)."""
    mapped = mapping[np.maximum(labels, 0)]
    known = (labels >= 0) & (mapped >= 0)
    return np.where(known, mapped, -1), known
