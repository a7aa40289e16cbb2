"""A backbone pre-trained on the workspace's own images (``clearset pretrain``), ``WS/pretrained/<name>/``:
model.safetensors (trunk and projection head), config.json (method, trunk model, image size, head,
which head layers the embedding keeps, normalisation), metrics.jsonl (loss and kNN monitor per epoch), and
the step's sidecar ``pretrain.meta.json`` (written last: a folder without it is unfinished).

``clearset embed WS --backbone ws:NAME`` reads it through ``load_backbone``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ParameterError
from ..io import atomic_path, read_json, write_bytes, write_json
from ..workspace import Workspace

PREFIX = "ws:"
SIDECAR = "pretrain.meta.json"


def is_workspace_backbone(name: str) -> bool:
    return name.startswith(PREFIX)


def pretrained_root(ws: Workspace, name: str) -> Path:
    return ws.named("pretrained", name)


def build_encoder(config: dict, head_layers: int | None = None):
    """The trunk and projection head a config describes (random weights), as an ``Encoder`` whose output
    is the trunk's pooled features through the first ``head_layers`` head layers (default: the config's
    ``embed_from``); also returns the full head."""
    from ..models.cifar import create_model
    from ..models.encoder import Encoder, ProjectionHead

    h = config["head"]
    if h is None:  # a trunk trained with its own classifier (fractal pre-training): embed the pooled trunk
        trunk = create_model(config["model"], config["classes"], image_size=config["image_size"])
        return Encoder(trunk, None, config["trunk_width"]), torch.nn.Sequential()
    trunk = create_model(config["model"], 1, image_size=config["image_size"])
    head = ProjectionHead(config["trunk_width"], h["hidden"], h["out"], h["layers"])
    keep = config["embed_from"] if head_layers is None else head_layers
    width = config["trunk_width"] if keep == 0 else (h["out"] if keep == h["layers"] else h["hidden"])
    return Encoder(trunk, head.first_layers(keep) if keep else None, width), head


def save_pretrained(root: Path, trunk: torch.nn.Module, head: torch.nn.Module, config: dict, history: list[dict]) -> None:
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    state = {f"trunk.{k}": v for k, v in trunk.state_dict().items()}
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    with atomic_path(root / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    write_bytes(root / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode())
    write_json(root / "config.json", config)


def load_backbone(ws: Workspace, backbone: str):
    """``ws:NAME`` -> a Backbone (models/backbones.py) of the finished pre-training NAME."""
    from safetensors.torch import load_file

    from ..models.backbones import Backbone

    name = backbone[len(PREFIX):]
    root = pretrained_root(ws, name)
    if not (root / SIDECAR).exists():
        known = sorted(p.parent.name for p in ws.dir("pretrained").glob(f"*/{SIDECAR}"))
        raise ParameterError(f"backbone {backbone!r}: no finished `clearset pretrain` named {name!r} in {ws.root}"
                             + (f" (finished: {', '.join(known)})" if known else " (run `clearset pretrain WS` first)"))
    config = read_json(root / "config.json")
    encoder, head = build_encoder(config)
    state = load_file(root / "model.safetensors")
    encoder.trunk.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("trunk.")})
    head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
    norm = config["normalisation"]
    return Backbone(backbone, encoder.eval(), tuple(norm["mean"]), tuple(norm["std"]), int(config["image_size"]),
                    has_imagenet_head=False)


def pretrained_config(ws: Workspace, backbone: str) -> tuple[Path, dict]:
    """(folder, config) of the finished pre-training ``ws:NAME``; one line if there is none."""
    if not is_workspace_backbone(backbone):
        raise ParameterError(f"{backbone!r}: name a pre-training of this workspace as ws:NAME (`clearset pretrain`)")
    root = pretrained_root(ws, backbone[len(PREFIX):])
    if not (root / SIDECAR).exists():
        raise ParameterError(f"{backbone!r}: no finished `clearset pretrain` named {root.name!r} in {ws.root}")
    return root, read_json(root / "config.json")


def load_trunk(net: torch.nn.Module, root: Path) -> list[str]:
    """Copy a pre-trained trunk's weights into ``net`` (the same model; its own classifier stays freshly
    initialised). Returns the keys of ``net`` left as they were (the classifier)."""
    from safetensors.torch import load_file

    trunk = {k[6:]: v for k, v in load_file(root / "model.safetensors").items() if k.startswith("trunk.")}
    own = net.state_dict()
    fitting = {k: v for k, v in trunk.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))
