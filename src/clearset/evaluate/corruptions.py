"""The 15 common corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, 2019) at 5 severities,
generated on the fly for a whole batch with tensor ops, at the data's own resolution.

Severity constants are those of the CIFAR-10-C generator (``make_cifar_c.py``), with lengths in pixels
scaled by (image side / 32) for images larger than 32 px. Differences from that generator, all deliberate:
- motion blur and the snow streaks use a one-sided Gaussian line kernel (what ImageMagick's motion blur
  computes) instead of calling ImageMagick;
- frost overlays a procedural ice texture (the original frost photographs are not redistributable here),
  so frost numbers are not comparable with published CIFAR-10-C frost accuracies;
- glass blur swaps pixels in the same sequential order, for the whole batch at once.
Every function maps float images (B, 3, H, W) in [0, 1] to the same, drawing randomness only from ``rng``
(a numpy Generator), so a (seed, corruption, severity) triple always gives the same images.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ..registry import Registry

Corruption = Callable[[torch.Tensor, int, np.random.Generator], torch.Tensor]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")
SEVERITIES = (1, 2, 3, 4, 5)
# Each corruption's random stream is numbered here, by name, in the ImageNet-C order: registering or
# removing one never changes another's images. A new corruption is appended (corruption() does it).
STREAMS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
           "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
           "jpeg_compression"]


GROUPS = {"noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
          "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
          "weather": ("snow", "frost", "fog", "brightness"),
          "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression")}


def corruption(name: str):
    def wrap(fn: Corruption) -> Corruption:
        group = next((g for g, names in GROUPS.items() if name in names), "other")
        doc = (fn.__doc__ or "").strip().splitlines()
        CORRUPTIONS.register(name, fn, description=f"{group}: {doc[0] if doc else name.replace('_', ' ')}, "
                                                   f"severities 1-5 (CIFAR-10-C parameters)")
        if name not in STREAMS:
            STREAMS.append(name)
        return fn

    return wrap


def corruption_names() -> list[str]:
    """Every registered corruption, in stream order (noise, blur, weather, digital)."""
    return [n for n in STREAMS if n in CORRUPTIONS]


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> uint8 corrupted copy (values truncated to integers, as CIFAR-10-C stores them)."""
    fn = CORRUPTIONS.get(name)
    if severity not in SEVERITIES:
        raise ParameterError(f"severity must be 1..5, got {severity}")
    rng = np.random.default_rng([seed, STREAMS.index(name), severity])
    out = fn(x.float() / 255.0, severity, rng)
    return (out.clamp(0, 1) * 255).to(torch.uint8)


def _scale(x: torch.Tensor) -> float:
    return max(1.0, x.shape[-1] / 32.0)  # CIFAR-10-C lengths hold at 32 px; only larger images scale up


def _randn(rng: np.random.Generator, shape, loc=0.0, scale=1.0) -> torch.Tensor:
    return torch.from_numpy(rng.normal(loc, scale, size=shape).astype(np.float32))


# ------------------------------------------------------------------------------------------------ helpers
def _conv_same(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Depthwise 2-D convolution with one (kh, kw) kernel for every channel, padded to keep the size."""
    kh, kw = kernel.shape
    b, c, h, w = x.shape
    ph, pw = kh // 2, kw // 2
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    xp = F.pad(x.reshape(b * c, 1, h, w), (pw, pw, ph, ph), mode=mode)
    return F.conv2d(xp, kernel[None, None].to(x)).reshape(b, c, h, w)


def _gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    radius = max(1, int(truncate * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "replicate", truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur (scikit-image's ``gaussian``: truncate 4, nearest-edge padding)."""
    k = _gaussian_kernel1d(sigma, truncate)
    return _conv_same(_conv_same(x, k[None, :], mode), k[:, None], mode)


def _sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Bilinear samples of x at pixel coordinates (B, H, W) (ys, xs)."""
    h, w = x.shape[2:]
    grid = torch.stack([xs / max(w - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1], -1)
    return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode=padding, align_corners=True)


def _zoom_matrix(n: int, factor: float) -> torch.Tensor:
    """(n, n) linear-interpolation weights of a zoom by ``factor`` about the centre (edges clamped)."""
    src = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) / factor + (n - 1) / 2
    lo = src.floor().clamp(0, n - 1)
    frac = (src - lo).clamp(0, 1)
    hi = (lo + 1).clamp(max=n - 1)
    m = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    m[rows, lo.long()] += 1 - frac
    m[rows, hi.long()] += frac
    return m.float()


def _zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by ``factor`` keeping the size (CIFAR-10-C's clipped_zoom, bilinear), as two
    small matrix products."""
    h, w = x.shape[2:]
    return _zoom_matrix(h, factor) @ x @ _zoom_matrix(w, factor).T


def motion_blur_kernel(x: torch.Tensor, radius: float, sigma: float, angles_deg: np.ndarray) -> torch.Tensor:
    """Blur each image along its own direction with a one-sided Gaussian line kernel (ImageMagick's
    MotionBlurImage: taps 0..2*radius at integer-rounded offsets, weights exp(-i^2 / 2 sigma^2)), edges
    replicated."""
    b, c, h, w = x.shape
    taps = int(2 * math.ceil(radius) + 1)
    weights = torch.exp(-torch.arange(taps, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    weights = weights / weights.sum()
    a = torch.from_numpy(np.deg2rad(angles_deg).astype(np.float32))
    out = torch.zeros_like(x).view(b, c, h * w)
    flat = x.reshape(b, c, h * w)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for i in range(taps):
        if float(weights[i]) < 1e-6:
            continue
        dy = torch.round(i * torch.sin(a)).long()[:, None, None]
        dx = torch.round(i * torch.cos(a)).long()[:, None, None]
        src = (yy[None] - dy).clamp(0, h - 1) * w + (xx[None] - dx).clamp(0, w - 1)  # (b, h, w)
        out += weights[i] * flat.gather(2, src.view(b, 1, h * w).expand(b, c, h * w))
    return out.view(b, c, h, w)


def plasma_fractal(n: int, size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size) diamond-square height maps in [0, 1] (CIFAR-10-C's fog), ``size`` a power of two."""
    m = np.zeros((n, size, size))
    step, wibble = size, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        corner = m[:, 0:size:step, 0:size:step]
        sq = corner + np.roll(corner, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, step // 2 : size : step, step // 2 : size : step] = wibbled(sq)
        dr = m[:, step // 2 : size : step, step // 2 : size : step]
        ul = m[:, 0:size:step, 0:size:step]
        m[:, 0:size:step, step // 2 : size : step] = wibbled(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2))
        m[:, step // 2 : size : step, 0:size:step] = wibbled(dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1))
        step //= 2
        wibble /= decay
    m -= m.min((1, 2), keepdims=True)
    return m / m.max((1, 2), keepdims=True)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


# ------------------------------------------------------------------------------------------------ noise
@corruption("gaussian_noise")
def _gaussian_noise(x, s, rng):
    return x + _randn(rng, x.shape, scale=[0.04, 0.06, 0.08, 0.09, 0.10][s - 1])


@corruption("shot_noise")
def _shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return torch.from_numpy(rng.poisson(x.numpy() * c).astype(np.float32)) / c


@corruption("impulse_noise")
def _impulse_noise(x, s, rng):
    amount = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    hit = torch.from_numpy(rng.random(x.shape) < amount)
    salt = torch.from_numpy(rng.random(x.shape) < 0.5).float()
    return torch.where(hit, salt, x)


# ------------------------------------------------------------------------------------------------ blur
@corruption("defocus_blur")
def _defocus_blur(x, s, rng):
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    radius *= _scale(x)
    half = 8 if radius <= 8 else int(math.ceil(radius))
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    disk = ((t[:, None] ** 2 + t[None] ** 2) <= radius ** 2).float()
    disk = disk / disk.sum()
    k = _gaussian_kernel1d(alias, truncate=1.0 / max(alias, 1e-6))  # cv2's 3x3 Gaussian
    disk = _conv_same(_conv_same(disk[None, None], k[None, :]), k[:, None])[0, 0]
    live = torch.nonzero(disk.abs().amax(0) > 1e-7).flatten()  # trim the all-zero border (a symmetric kernel)
    r = max(int(half - live.min()), 0)
    return _conv_same(x, disk[half - r : half + r + 1, half - r : half + r + 1])


@corruption("glass_blur")
def _glass_blur(x, s, rng):
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    h, w = x.shape[2:]
    x = torch.floor(gaussian_blur(x, sigma) * 255) / 255  # the generator quantises to uint8 here
    x = x.clone()
    bi = torch.arange(len(x))
    for _ in range(iterations):
        for r in range(h - delta, delta, -1):
            for c in range(w - delta, delta, -1):
                d = torch.from_numpy(rng.integers(-delta, delta, size=(len(x), 2)))
                r2, c2 = r + d[:, 1], c + d[:, 0]
                a, b = x[bi, :, r, c].clone(), x[bi, :, r2, c2].clone()
                x[bi, :, r, c], x[bi, :, r2, c2] = b, a
    return gaussian_blur(x, sigma)


@corruption("motion_blur")
def _motion_blur(x, s, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    k = _scale(x)
    return motion_blur_kernel(x, radius * k, sigma * k, rng.uniform(-45, 45, len(x)))


@corruption("zoom_blur")
def _zoom_blur(x, s, rng):
    top = [1.06, 1.11, 1.16, 1.21, 1.26][s - 1]
    factors = np.arange(1, top, 0.01)
    out = x.clone()
    for f in factors:
        out += _zoom(x, float(f))
    return out / (len(factors) + 1)


# ------------------------------------------------------------------------------------------------ weather
@corruption("snow")
def _snow(x, s, rng):
    loc, scale, zoom, thresh, radius, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    b, _, h, w = x.shape
    layer = _zoom(_randn(rng, (b, 1, h, w), loc, scale), zoom)
    layer = torch.where(layer < thresh, 0.0, layer).clamp(0, 1)
    layer = torch.floor(layer * 255) / 255
    k = _scale(x)
    layer = motion_blur_kernel(layer, radius * k, sigma * k, rng.uniform(-135, -45, b))
    x = keep * x + (1 - keep) * torch.maximum(x, _grey(x) * 1.5 + 0.5)
    return x + layer + layer.flip(2, 3)


@functools.lru_cache(maxsize=4)
def frost_bank(h: int, w: int, count: int = 8) -> torch.Tensor:
    """``count`` fixed frost textures at twice (h, w), from a fixed seed: the stand-in for the six frost
    photographs, from which each image gets a random crop."""
    return frost_texture(count, 2 * h, 2 * w, np.random.default_rng(20190101))


def frost_texture(n: int, h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """(n, 3, h, w) procedural frost in [0, 1]: bright crystal needles (sparse seeds streaked along random
    directions) over a cloudy fractal haze, tinted ice-blue."""
    size = 1 << max(5, (max(h, w) - 1).bit_length())
    haze = torch.from_numpy(plasma_fractal(n, size, 2.0, rng)[:, :h, :w].astype(np.float32))[:, None]
    seeds = torch.from_numpy((rng.random((n, 1, h, w)) < 0.08).astype(np.float32))
    needles = sum(motion_blur_kernel(seeds, 3 * h / 32, 2.5 * h / 32, rng.uniform(0, 360, n)) for _ in range(3))
    ice = (0.55 * haze + 1.6 * needles).clamp(0, 1)
    tint = torch.tensor([0.85, 0.93, 1.0]).view(1, 3, 1, 1)
    return ice * tint


@corruption("frost")
def _frost(x, s, rng):
    keep, amount = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    b, _, h, w = x.shape
    bank = frost_bank(h, w)
    pick = torch.from_numpy(rng.integers(0, len(bank), b))
    oy, ox = rng.integers(0, h + 1, b), rng.integers(0, w + 1, b)
    tex = torch.stack([bank[int(pick[i]), :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(b)])
    return keep * x + amount * tex


@corruption("fog")
def _fog(x, s, rng):
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    b, _, h, w = x.shape
    size = 1 << max(5, (max(h, w) - 1).bit_length())
    top = x.amax((1, 2, 3), keepdim=True)
    fog = torch.from_numpy(plasma_fractal(b, size, decay, rng)[:, :h, :w].astype(np.float32))[:, None]
    return (x + amount * fog) * top / (top + amount)


@corruption("brightness")
def _brightness(x, s, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    v = x.amax(1, keepdim=True)  # HSV value; raising it at fixed hue and saturation scales the pixel
    vn = (v + c).clamp(0, 1)
    return torch.where(v > 0, x * vn / v.clamp_min(1e-12), vn.expand_as(x))


# ------------------------------------------------------------------------------------------------ digital
@corruption("contrast")
def _contrast(x, s, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean) * c + mean


@corruption("elastic_transform")
def _elastic(x, s, rng):
    b, _, h, w = x.shape
    alpha, sigma, affine = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                            (0.1, 0.03, 0.03)][s - 1]
    alpha, sigma, affine = alpha * h, sigma * h, affine * h
    centre, side = np.array([w, h], np.float64) // 2, min(h, w) // 3
    src = np.array([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    dst = src + rng.uniform(-affine, affine, size=(b, 3, 2))
    # the affine map dst <- src, then sample the source at its inverse of each output pixel
    ones = np.ones((3, 1))
    inv = np.stack([np.linalg.solve(np.hstack([d, ones]), src) for d in dst])  # (b, 3, 2): [x y 1] @ inv
    noise = torch.from_numpy(rng.uniform(-1, 1, size=(b, 2, h, w)).astype(np.float32))
    disp = gaussian_blur(noise, max(sigma, 1e-3), mode="reflect", truncate=3.0) * alpha if alpha > 0 else noise * 0
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    py, px = yy[None] + disp[:, 1], xx[None] + disp[:, 0]
    m = torch.from_numpy(inv.astype(np.float32))
    sx = px * m[:, 0, 0, None, None] + py * m[:, 1, 0, None, None] + m[:, 2, 0, None, None]
    sy = px * m[:, 0, 1, None, None] + py * m[:, 1, 1, None, None] + m[:, 2, 1, None, None]
    return _sample(x, sy, sx, padding="reflection")


@corruption("pixelate")
def _pixelate(x, s, rng):
    from ..ops.resample import resample_matrix

    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[2:]
    sh, sw = int(h * c), int(w * c)
    down_h, down_w = torch.from_numpy(resample_matrix(h, sh, kind="box")), torch.from_numpy(resample_matrix(w, sw, kind="box"))
    up_h, up_w = torch.from_numpy(resample_matrix(sh, h, kind="box")), torch.from_numpy(resample_matrix(sw, w, kind="box"))
    small = down_h @ x @ down_w.T
    return up_h @ small @ up_w.T


@corruption("jpeg_compression")
def _jpeg(x, s, rng):
    from PIL import Image

    quality = [80, 65, 58, 50, 40][s - 1]
    arr = (x.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0
