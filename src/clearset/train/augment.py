"""Whole-batch augmentations as tensor operations (no per-image Python): random crop with zero padding,
horizontal flip, cutout, and Mixup/CutMix on soft targets. Every random draw comes from the generator
passed in, so a run is reproducible from its seed and an epoch can be replayed exactly on resume."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> the same shape, each image shifted by up to ``pad`` pixels, zeros filling in
    (torchvision's RandomCrop(size, padding=pad))."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)  # draws on the CPU generator: same on any device
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None].expand(b, c, h, w)
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :].expand(b, c, h, w)
    return padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    flip = (torch.rand(len(x), generator=gen) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a size x size square (clipped at the border) at a uniformly random centre of each image."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=gen)[:, None].to(x.device)
    cx = torch.randint(0, w, (b,), generator=gen)[:, None].to(x.device)
    ys, xs = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    in_y = ((ys >= cy - size // 2) & (ys < cy - size // 2 + size))[:, :, None]
    in_x = ((xs >= cx - size // 2) & (xs < cx - size // 2 + size))[:, None, :]
    return x * ~(in_y & in_x)[:, None]


def mix(x: torch.Tensor, targets: torch.Tensor, gen: torch.Generator, *, mixup: float = 0.0,
        cutmix: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (alpha ``mixup``) or CutMix (alpha ``cutmix``; when both are set each batch picks one at
    random) with the batch reversed as partner; soft ``targets`` (B, K) are mixed in the same proportion."""
    if mixup <= 0 and cutmix <= 0:
        return x, targets
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(1, generator=gen).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = beta_draw(alpha, gen)
    partner = x.flip(0)
    if use_cutmix:
        h, w = x.shape[2:]
        ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy = int(torch.randint(0, h, (1,), generator=gen))
        cx = int(torch.randint(0, w, (1,), generator=gen))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = partner[:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the share actually kept
    else:
        x = lam * x + (1 - lam) * partner
    return x, lam * targets + (1 - lam) * targets.flip(0)


def beta_draw(alpha: float, gen: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw, seeded from ``gen`` (torch has no generator-aware Beta sampler)."""
    import numpy as np

    seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))
