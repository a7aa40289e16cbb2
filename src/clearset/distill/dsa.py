"""Differentiable siamese augmentation (DSA; Zhao & Bilen 2021), the augmentation every matcher shares.

A strategy is a list of operation groups joined by ``_``; the default is the distillation papers'
``color_crop_cutout_flip_scale_rotate``. Each call picks **one** group at random and applies it:

- ``color``: brightness x + (r - 0.5), then saturation (x - grey)·2r + grey, then contrast
  (x - mean)·(r + 0.5) + mean (all on normalised pixels, as the reference code);
- ``crop``: a translation by up to 1/8 of the side, zeros filling in;
- ``cutout``: a square of half the side set to zero at a random centre;
- ``flip``: horizontal flip with probability 0.5;
- ``scale``: x and y scaled by factors in [1/1.2, 1.2] (affine resampling);
- ``rotate``: a rotation by up to ±15 degrees (affine resampling).

Every operation is differentiable in the pixels, so gradients reach the synthetic images. **Siamese**:
``draw(..., n=1)`` draws one parameter set that ``apply`` uses for every image of a batch; applying the
same parameters to the real and the synthetic batch is what makes their statistics comparable (with
different draws the matching breaks -- DataDAM card, Traps). ``n = len(batch)`` draws per image (used
when training an evaluation network). Draws come from the generator passed in: reproducible from a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ParameterError

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
CROP_RATIO, CUTOUT_RATIO, SCALE_RATIO, ROTATE_DEGREES = 0.125, 0.5, 1.2, 15.0


@dataclass(frozen=True)
class DSAParams:
    """One draw: the chosen group and its uniform random numbers, shape (n, 3) (n = 1: one set for all)."""

    group: str
    r: torch.Tensor


def parse_strategy(strategy: str) -> tuple[str, ...]:
    groups = tuple(g for g in strategy.split("_") if g) if strategy not in ("", "none") else ()
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ParameterError(f"unknown DSA operation {unknown[0]!r} in {strategy!r}: use {', '.join(GROUPS)} "
                             "joined by '_', or 'none'")
    return groups


def draw(gen: torch.Generator, strategy: str = DEFAULT_STRATEGY, n: int = 1) -> DSAParams | None:
    """One random group of ``strategy`` and its random numbers (``None`` for the strategy ``none``)."""
    groups = parse_strategy(strategy)
    if not groups:
        return None
    group = groups[int(torch.randint(len(groups), (1,), generator=gen))]
    return DSAParams(group, torch.rand(n, 3, generator=gen))


def apply(x: torch.Tensor, p: DSAParams | None) -> torch.Tensor:
    """``x`` (B, C, H, W) augmented with the parameters ``p`` (broadcast over the batch when drawn once)."""
    if p is None:
        return x
    r = p.r.to(x.device, x.dtype)
    if len(r) == 1:
        r = r.expand(len(x), 3)
    elif len(r) != len(x):
        raise ValueError(f"DSA parameters drawn for {len(r)} images applied to {len(x)}")
    col = r[:, :, None, None, None]  # (B, 3, 1, 1, 1): one column per random number
    if p.group == "color":
        x = x + (col[:, 0] - 0.5)
        grey = x.mean(1, keepdim=True)
        x = (x - grey) * (col[:, 1] * 2.0) + grey
        mean = x.mean((1, 2, 3), keepdim=True)
        return (x - mean) * (col[:, 2] + 0.5) + mean
    b, _, h, w = x.shape
    if p.group == "crop":
        return _translate(x, r[:, 0], r[:, 1], CROP_RATIO)
    if p.group == "cutout":
        return x * _cutout_mask(b, h, w, r[:, 0], r[:, 1], x.device, x.dtype)
    if p.group == "flip":
        return torch.where((r[:, 0] < 0.5)[:, None, None, None], x.flip(3), x)
    if p.group == "scale":
        sx = r[:, 0] * (SCALE_RATIO - 1 / SCALE_RATIO) + 1 / SCALE_RATIO
        sy = r[:, 1] * (SCALE_RATIO - 1 / SCALE_RATIO) + 1 / SCALE_RATIO
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
        return _resample(x, theta)
    if p.group == "rotate":
        a = (r[:, 0] - 0.5) * 2 * ROTATE_DEGREES / 180 * math.pi
        zero = torch.zeros_like(a)
        theta = torch.stack([torch.stack([a.cos(), a.sin(), zero], 1), torch.stack([-a.sin(), a.cos(), zero], 1)], 1)
        return _resample(x, theta)
    raise ValueError(f"unknown DSA group {p.group!r}")


def _resample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _translate(x: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shift each image by round-to-integer offsets in [-ratio·side, ratio·side], zeros filling in."""
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (uy * (2 * sh + 1)).long().clamp(max=2 * sh) - sh
    dx = (ux * (2 * sw + 1)).long().clamp(max=2 * sw) - sw
    padded = F.pad(x, (sw, sw, sh, sh))
    rows = (torch.arange(h, device=x.device)[None, :] + sh - dy[:, None])[:, None, :, None].expand(b, c, h, w)
    cols = (torch.arange(w, device=x.device)[None, :] + sw - dx[:, None])[:, None, None, :].expand(b, c, h, w)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def _cutout_mask(b: int, h: int, w: int, uy: torch.Tensor, ux: torch.Tensor, device, dtype) -> torch.Tensor:
    """(B, 1, H, W) ones with a (side/2)-square of zeros centred at a random pixel (clipped at the border)."""
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    cy = (uy * h).long().clamp(max=h - 1)
    cx = (ux * w).long().clamp(max=w - 1)
    ys = torch.arange(h, device=device)[None, :]
    xs = torch.arange(w, device=device)[None, :]
    in_y = (ys >= (cy - ch // 2)[:, None]) & (ys < (cy - ch // 2 + ch)[:, None])
    in_x = (xs >= (cx - cw // 2)[:, None]) & (xs < (cx - cw // 2 + cw)[:, None])
    return (~(in_y[:, :, None] & in_x[:, None, :]))[:, None].to(dtype)
