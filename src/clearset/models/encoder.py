"""A trunk network as an embedding model: pooled features, optionally through the first layers of a
projection head (SimCLRv2 fine-tunes and embeds from the head's first layer, not the encoder output).

``Encoder`` has the interface ``clearset embed`` expects of a backbone (``forward_features``,
``forward_head(..., pre_logits=True)``, ``get_classifier``, ``num_features``), so a network pre-trained on
the user's images (``clearset pretrain``) embeds like any registered backbone.
"""

from __future__ import annotations

import torch
from torch import nn


def pooled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) pooled features of a trunk: a timm model's pre-logits, else the mean over the spatial map
    (or the flattened map of a net without pooling, such as the distillation ConvNet)."""
    if hasattr(net, "forward_head"):
        return getattr(net, "forward_head")(getattr(net, "forward_features")(x), pre_logits=True)
    f = getattr(net, "forward_features")(x)
    return f.mean((2, 3)) if f.dim() == 4 else f.flatten(1)


def trunk_width(net: nn.Module, image_size: int) -> int:
    """The pooled feature width of ``net`` at ``image_size`` (one forward of a blank image)."""
    was = net.training
    net.eval()
    with torch.no_grad():
        d = pooled(net, torch.zeros(1, 3, image_size, image_size)).shape[1]
    net.train(was)
    return int(d)


class ProjectionHead(nn.Sequential):
    """SimCLR's MLP head: ``layers`` linear layers, each but the last followed by batch norm and ReLU
    (SimCLR: 2; SimCLRv2: 3, output 128)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, layers: int):
        mods: list[nn.Module] = []
        d = d_in
        for i in range(layers):
            last = i == layers - 1
            mods.append(nn.Linear(d, d_out if last else hidden, bias=False))
            mods.append(nn.BatchNorm1d(d_out if last else hidden))
            if not last:
                mods.append(nn.ReLU(inplace=True))
            d = hidden
        super().__init__(*mods)

    def first_layers(self, n: int) -> nn.Sequential:
        """The first ``n`` layers (linear, BN, ReLU) of the head, for embedding from inside it."""
        return nn.Sequential(*list(self)[: 3 * n])


class Encoder(nn.Module):
    """``trunk`` pooled, then ``head`` (possibly empty): the embedding."""

    def __init__(self, trunk: nn.Module, head: nn.Module | None, num_features: int):
        super().__init__()
        self.trunk, self.head = trunk, head if head is not None else nn.Identity()
        self.num_features = num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(pooled(self.trunk, x))

    def forward_head(self, f: torch.Tensor, pre_logits: bool = True) -> torch.Tensor:
        return f

    def get_classifier(self) -> nn.Module:
        return nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
