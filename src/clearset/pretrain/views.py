"""SimCLR's two random views of a batch, computed on whole uint8 tensors (no per-image Python loop):
random resized crop (area 8-100%, aspect 3/4-4/3) with a horizontal flip, colour jitter with probability
0.8 (brightness, contrast, saturation 0.8·s, hue 0.2·s, in that fixed order; SimCLR's torchvision
pipeline draws the order at random), greyscale with probability 0.2. No blur: the SimCLRv2 CIFAR recipe
has none (its ImageNet recipe does). ``s`` is the jitter strength (CIFAR recipe 0.5, ImageNet 1.0)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GREY = torch.tensor([0.299, 0.587, 0.114])
CROP_MIN = 0.08  # SimCLR's smallest crop area


def _u(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def resized_crop(x: torch.Tensor, size: int, gen: torch.Generator, scale: tuple[float, float] = (CROP_MIN, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1] -> (B, 3, size, size): a random crop of each image, resized, half flipped
    (with ``flip``; the random draws are the same either way)."""
    b = len(x)
    area = _u(b, scale[0], scale[1], gen)
    logr = _u(b, math.log(ratio[0]), math.log(ratio[1]), gen)
    w = torch.sqrt(area * logr.exp()).clamp(max=1.0)  # in units of the image side
    h = torch.sqrt(area / logr.exp()).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - w)  # the crop stays inside the image
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - h)
    coin = torch.rand(b, generator=gen)  # drawn either way: the same stream with and without flips
    mirror = torch.where(coin < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * mirror, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device), [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (x * GREY.to(x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def colour_jitter(x: torch.Tensor, strength: float, gen: torch.Generator, p: float = 0.8) -> torch.Tensor:
    b = len(x)
    on = (torch.rand(b, generator=gen) < p).to(x.device).view(b, 1, 1, 1)
    s = 0.8 * strength
    bri, con, sat = (_u(b, max(0.0, 1 - s), 1 + s, gen).to(x.device).view(b, 1, 1, 1) for _ in range(3))
    hue = _u(b, -0.2 * strength, 0.2 * strength, gen).to(x.device)
    y = x * bri
    y = (y - _grey(y).mean((2, 3), keepdim=True)) * con + _grey(y).mean((2, 3), keepdim=True)
    y = (y - _grey(y)) * sat + _grey(y)
    y = _rotate_hue(y.clamp(0, 1), hue)
    return torch.where(on, y.clamp(0, 1), x)


def _rotate_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Hue rotation by ``shift`` turns (in [-0.5, 0.5]) in YIQ space, per image."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
    from_yiq = torch.linalg.inv(to_yiq)
    a = 2 * math.pi * shift
    cos, sin = torch.cos(a), torch.sin(a)
    rot = torch.zeros(len(x), 3, 3, device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = from_yiq @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", m, x)


def random_grey(x: torch.Tensor, gen: torch.Generator, p: float = 0.2) -> torch.Tensor:
    on = (torch.rand(len(x), generator=gen) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(on, _grey(x).expand_as(x), x)


def view(x_uint8: torch.Tensor, size: int, gen: torch.Generator, mean: torch.Tensor, std: torch.Tensor,
         strength: float, crop_min: float = CROP_MIN, flip: bool = True) -> torch.Tensor:
    """One random view of a uint8 batch, normalised by ``mean`` / ``std`` ((1, 3, 1, 1), [0, 1] units);
    ``crop_min``: the smallest crop area (a share of the image); ``flip``: horizontal flips."""
    x = resized_crop(x_uint8.float() / 255.0, size, gen, scale=(crop_min, 1.0), flip=flip)
    x = random_grey(colour_jitter(x, strength, gen), gen)
    return (x - mean) / std
