"""Whole-batch augmentations as tensor operations (no per-image Python): random crop with zero padding,
horizontal flip, cutout, and Mixup/CutMix on soft targets. Every random draw comes from the generator
passed in, so a run is reproducible from its seed and an epoch can be replayed exactly on resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator, mode: str = "zeros") -> torch.Tensor:
    """(B, C, H, W) -> the same shape, each image shifted by up to ``pad`` pixels, zeros filling in
    (torchvision's RandomCrop(size, padding=pad)), or the image mirrored at its border (``mode="reflect"``)."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)) if mode == "zeros" else \
        F.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(x.dtype)
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
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


# ------------------------------------------------------------------------- replayable (stored) augmentations
# RandAugment-style operations with fixed magnitude, driven entirely by stored integer parameters, so an
# augmentation drawn once (dataset reinforcement) is re-applied bit-identically at training time.
RAND_OPS = ("identity", "brightness", "contrast", "color", "solarize", "posterize", "autocontrast", "rotate",
            "shear_x", "shear_y", "translate_x", "translate_y")
_GEOMETRIC = {"rotate", "shear_x", "shear_y", "translate_x", "translate_y"}


@dataclass(frozen=True)
class AugParams:
    """Parameters of B augmentations: integer crop offsets within ``2*pad`` (dy, dx), horizontal flip,
    RandAugment op ids and signs (B, n_ops), and a random-erase centre (B, 2; -1 = no erase)."""

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor
    ops: torch.Tensor
    signs: torch.Tensor
    erase: torch.Tensor

    def __getitem__(self, sel) -> "AugParams":
        return AugParams(*(getattr(self, f.name)[sel] for f in fields(self)))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name).numpy() for f in fields(self)}


def draw_params(shape: tuple[int, ...], gen: torch.Generator, *, pad: int = 4, n_ops: int = 2,
                erase_p: float = 0.25, size: int = 32) -> AugParams:
    """Draw ``shape`` (e.g. (N, NS)) augmentations: crop + flip + ``n_ops`` RandAugment ops + random erase
    with probability ``erase_p`` (the card's "+RA/RE")."""
    def ints(high, dtype, extra=()):
        return torch.randint(0, high, shape + extra, generator=gen).to(dtype)

    erase_on = torch.rand(shape, generator=gen) < erase_p
    centre = ints(size, torch.int16, (2,))
    return AugParams(dy=ints(2 * pad + 1, torch.uint8), dx=ints(2 * pad + 1, torch.uint8), flip=ints(2, torch.bool),
                     ops=ints(len(RAND_OPS), torch.uint8, (n_ops,)), signs=ints(2, torch.bool, (n_ops,)),
                     erase=torch.where(erase_on[..., None], centre, torch.full_like(centre, -1)))


def apply_params(x: torch.Tensor, p: AugParams, *, pad: int = 4, magnitude: float = 0.9,
                 erase_frac: float = 0.375) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float [0, 1] images with the stored augmentations ``p`` (B entries) applied:
    shift-crop, flip, the RandAugment ops in order, random erase of a square ``erase_frac`` of the side
    (12 px at 32). Pure function of (x, p), image by image: the batch it is computed in does not matter."""
    dev = x.device
    b, c, h, w = x.shape
    erase_size = round(erase_frac * h)
    xf = x.float() / 255.0
    if pad:
        padded = F.pad(xf, (pad, pad, pad, pad))
        rows = (p.dy.to(dev).long()[:, None] + torch.arange(h, device=dev))[:, None, :, None].expand(b, c, h, w)
        cols = (p.dx.to(dev).long()[:, None] + torch.arange(w, device=dev))[:, None, None, :].expand(b, c, h, w)
        xf = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                    rows, cols]
    xf = torch.where(p.flip.to(dev)[:, None, None, None], xf.flip(3), xf)
    for slot in range(p.ops.shape[1]):
        op_ids = p.ops[:, slot].to(dev).long()
        sign = torch.where(p.signs[:, slot].to(dev), 1.0, -1.0)
        xf = _rand_op(xf, op_ids, sign, magnitude)
    if erase_size:
        cy, cx = p.erase[:, 0].to(dev).long()[:, None], p.erase[:, 1].to(dev).long()[:, None]
        ys, xs = torch.arange(h, device=dev)[None], torch.arange(w, device=dev)[None]
        in_y = ((ys >= cy - erase_size // 2) & (ys < cy - erase_size // 2 + erase_size) & (cy >= 0))[:, :, None]
        in_x = ((xs >= cx - erase_size // 2) & (xs < cx - erase_size // 2 + erase_size))[:, None, :]
        xf = xf * ~(in_y & in_x)[:, None]
    return xf


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def _rand_op(x: torch.Tensor, op_ids: torch.Tensor, sign: torch.Tensor, m: float) -> torch.Tensor:
    """Apply op ``RAND_OPS[op_ids[i]]`` with signed magnitude to image i (every op computed only on its images)."""
    out = x.clone()
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    geometric = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for k, name in enumerate(RAND_OPS):
        sel = op_ids == k
        if name == "identity" or not bool(sel.any()):
            continue
        xs, s = x[sel], sign[sel][:, None, None, None]
        if name == "brightness":
            out[sel] = (xs * (1 + s * m)).clamp(0, 1)
        elif name == "contrast":
            mean = _grey(xs).mean((2, 3), keepdim=True)
            out[sel] = (mean + (1 + s * m) * (xs - mean)).clamp(0, 1)
        elif name == "color":
            g = _grey(xs)
            out[sel] = (g + (1 + s * m) * (xs - g)).clamp(0, 1)
        elif name == "solarize":
            out[sel] = torch.where(xs >= 1 - m, 1 - xs, xs)
        elif name == "posterize":
            levels = 2 ** max(1, round(8 - 4 * m))
            out[sel] = torch.floor(xs * (levels - 1e-6)) / (levels - 1)
        elif name == "autocontrast":
            lo, hi = xs.amin((2, 3), keepdim=True), xs.amax((2, 3), keepdim=True)
            out[sel] = torch.where(hi > lo, (xs - lo) / (hi - lo).clamp_min(1e-6), xs)
        else:
            geometric |= sel
            s1 = sign[sel]
            if name == "rotate":
                a = s1 * m * 30 * math.pi / 180
                theta[sel, 0, 0], theta[sel, 0, 1] = torch.cos(a), -torch.sin(a)
                theta[sel, 1, 0], theta[sel, 1, 1] = torch.sin(a), torch.cos(a)
            elif name == "shear_x":
                theta[sel, 0, 1] = s1 * m * 0.3
            elif name == "shear_y":
                theta[sel, 1, 0] = s1 * m * 0.3
            elif name == "translate_x":
                theta[sel, 0, 2] = s1 * m * 0.45  # normalised coordinates span 2: a shift of ~20% of the side
            else:
                theta[sel, 1, 2] = s1 * m * 0.45
    if bool(geometric.any()):
        xs = out[geometric]
        grid = F.affine_grid(theta[geometric], list(xs.shape), align_corners=False)
        out[geometric] = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out
