"""What every distillation method shares: the registry, the network probe and the synthetic set.

A distiller is a registered per-class matching loss ``(real: Probe, syn: Probe, **options) -> scalar``
over what a frozen, freshly initialised ConvNet sees in a class's real and synthetic batches (both
augmented with the same DSA draw); the shared loop in ``matching.py`` does everything else. ``random``
has no loss: its "distilled" set is the real-image initialisation itself (the baseline every method
must beat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ParameterError
from ..registry import Registry


@dataclass(frozen=True)
class Distiller:
    name: str
    loss: Callable[..., torch.Tensor] | None  # None: no matching (the initialisation is the result)
    description: str
    probe: dict[str, Any] = field(default_factory=dict)  # what the loss needs: {"attention": True}
    # the loss as named terms {name: scalar} (summed = loss), for logging each term's pull on the pixels
    parts: Callable[..., dict[str, torch.Tensor]] | None = None


DISTILLERS: Registry[Distiller] = Registry("distillation method", listing="distillers")


def register_distiller(name: str, *, description: str = "", attention: bool = False, differs: str = "",
                       parts: Callable[..., dict[str, torch.Tensor]] | None = None):
    """``differs``: one line on how the method differs from its paper (``clearset list distillers``);
    ``parts``: the loss split into named terms with the loss's options (their sum is the loss)."""
    def decorator(fn):
        DISTILLERS.register(name, differs=differs)(Distiller(name, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                                            {"attention": attention}, parts))
        return fn

    return decorator


DISTILLERS.register("random")(Distiller("random", None, "random real images of the same count (the baseline)"))


def parse_method(method: str) -> tuple[Distiller, bool]:
    """``"datadam+fyi"`` -> (the datadam distiller, flip wrapper on)."""
    base, plus, wrapper = method.partition("+")
    if plus and wrapper != "fyi":
        raise ParameterError(f"unknown method wrapper {wrapper!r} in {method!r}: the only wrapper is +fyi")
    distiller = DISTILLERS.get(base)
    if plus and distiller.loss is None:
        raise ParameterError(f"{base!r} does no matching, so +fyi does not apply to it")
    return distiller, bool(plus)


@dataclass
class Probe:
    """What a network sees in a batch: the outputs of its ReLUs (all but the last) as attention maps,
    and the embedding (the flattened final feature map, not the logits)."""

    attention: list[torch.Tensor]  # per layer (B, H_l·W_l), L2-normalised per image
    embedding: torch.Tensor  # (B, D)


def rows_of(p: Probe, rows: torch.Tensor) -> Probe:
    """The probe of a sub-batch (one class of an all-class batch)."""
    return Probe([a[rows] for a in p.attention], p.embedding[rows])


def attention_map(f: torch.Tensor, power: float) -> torch.Tensor:
    """(B, C, H, W) activations -> (B, H·W): sum over channels of |f|^power, L2-normalised per image."""
    a = f.abs().pow(power).sum(1).flatten(1)
    return a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)


def probe(net: nn.Module, x: torch.Tensor, *, attention: bool = False, power: float = 1.0) -> Probe:
    """Run ``x`` through ``net.features`` layer by layer, keeping the attention maps of every ReLU output
    but the last when asked."""
    maps = []
    layers: Any = net.features  # an nn.Sequential of the ConvNet's blocks
    for layer in layers:
        x = layer(x)
        if attention and isinstance(layer, nn.ReLU):
            maps.append(x)
    return Probe([attention_map(m, power) for m in maps[:-1]], x.flatten(1))


