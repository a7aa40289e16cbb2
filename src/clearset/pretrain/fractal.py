"""Fractal pre-training (methods.md, fractal pre-training card; Anderson & Farrell, WACV 2022): a trunk
learned on rendered fractals alone -- no real image is read -- that then initialises ``clearset train
--init ws:NAME`` (or embeds with ``--backbone ws:NAME``).

Data: ``classes`` iterated function systems sampled under the SVD sigma-factor constraint
(data/fractals.py), one system per class (the card's erratum), ``per_class`` images per class at
``image_size`` px on random backgrounds.
- ``fractal`` (multi-instance): each image holds 1-5 fractals of distinct classes (the image's class
  first, the others drawn at random), each 0.15-0.6 of the image side; loss: BCE-with-logits on the
  multi-hot target with pos_weight = classes / positives of that image (per image, the card's trap).
- ``fractal-single``: one fractal per image, cross-entropy (the card's single-instance arm).
Training: SGD (momentum 0.9, weight decay 1e-4), a one-cycle schedule from lr / 25 up to ``lr`` (0.1) over
the first 30% then cosine down to lr / 25,000 (``final_div`` 1e3), horizontal flips. A held-out tenth
reports per epoch how often the top prediction is one of the image's fractals.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import progress
from ..data.fractals import render_instances, render_single, sample_system
from .simclr import optimise

log = logging.getLogger("clearset")
MAX_INSTANCES = 5


def fractal_images(classes: int, per_class: int, size: int, seed: int, multi: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, size, size) uint8 images and (N, classes) multi-hot targets; image i depends on (seed, i) only."""
    systems = [sample_system(np.random.default_rng([seed, 1, c])) for c in range(classes)]
    n = classes * per_class
    images = np.empty((n, size, size, 3), np.uint8)
    targets = np.zeros((n, classes), np.float32)
    for i in progress.bar(range(n), desc="render fractals", unit="img"):
        rng = np.random.default_rng([seed, 3, i])
        own = i // per_class
        k = int(rng.integers(1, min(MAX_INSTANCES, classes) + 1)) if multi else 1
        others = rng.choice(np.delete(np.arange(classes), own), k - 1, replace=False)
        chosen = np.concatenate([[own], others]).astype(np.int64)
        images[i] = render_instances(systems, chosen, rng, size) if multi else render_single(systems[own], rng, size)
        targets[i, chosen] = 1
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(targets)


def multi_instance_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits with each image's positives weighted classes / (its number of positives)."""
    c = targets.shape[1]
    pos_weight = (c / targets.sum(1, keepdim=True).clamp_min(1)).expand_as(targets)
    return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=pos_weight)


def one_cycle(step: int, total: int, warm_share: float = 0.3, div: float = 25.0, final_div: float = 1e3) -> float:
    """The learning-rate factor of a one-cycle schedule (linear up, cosine down)."""
    up = max(1, int(warm_share * total))
    if step < up:
        return 1 / div + (1 - 1 / div) * step / up
    t = (step - up) / max(1, total - up)
    low = 1 / (div * final_div)
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * t))


def train_epoch(net: torch.nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor,
                rows: torch.Tensor, *, epoch: int, epochs: int, batch: int, lr: float, seed: int, multi: bool,
                mean: torch.Tensor, std: torch.Tensor, dev: torch.device) -> float:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = rows[torch.randperm(len(rows), generator=gen)]
    steps = len(order) // batch
    net.train()
    losses: list[float] = []
    bar = progress.bar(total=steps, desc=f"fractal pretrain {epoch + 1}/{epochs}", unit="batch")
    try:
        for b in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * one_cycle(epoch * steps + b, epochs * steps)
            sel = order[b * batch : (b + 1) * batch]
            x = images[sel].to(dev).float() / 255.0
            flip = (torch.rand(len(x), generator=gen) < 0.5).to(dev).view(-1, 1, 1, 1)
            x = (torch.where(flip, x.flip(3), x) - mean) / std
            t = targets[sel].to(dev)
            logits = net(x.contiguous(memory_format=torch.channels_last))
            loss = multi_instance_loss(logits, t) if multi else F.cross_entropy(logits.float(), t.argmax(1))
            optimise(opt, loss, losses, bar)
    finally:
        bar.close()
    return float(np.mean(losses))


@torch.no_grad()
def held_out_hit_rate(net: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor,
                      mean: torch.Tensor, std: torch.Tensor, dev: torch.device) -> float:
    """Share of held-out images whose top prediction is one of their fractals."""
    net.eval()
    hits = 0
    for s in range(0, len(rows), 512):
        sel = rows[s : s + 512]
        top = net(((images[sel].to(dev).float() / 255.0) - mean) / std).argmax(1).cpu()
        hits += int(targets[sel][torch.arange(len(sel)), top].sum())
    return hits / max(1, len(rows))


