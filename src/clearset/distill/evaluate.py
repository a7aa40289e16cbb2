"""The evaluation protocol that makes distilled sets comparable (methods.md, DataDAM card, Evaluation):
train a fresh ConvNet-3 on the synthetic set alone -- SGD lr 0.01, momentum 0.9, weight decay 5e-4,
batch 256, the learning rate divided by 10 half-way, DSA augmentation with a fresh draw per image -- then
test it; repeat over several seeds and report the mean and standard deviation of test accuracy. The
papers train 1,000-1,800 epochs; the default here is 300 (the cards' small-scale check), recorded with
every result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import progress
from .dsa import DEFAULT_STRATEGY, apply as dsa_apply, draw as dsa_draw


@dataclass(frozen=True)
class EvalConfig:
    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    strategy: str = DEFAULT_STRATEGY
    depth: int = 3
    width: int = 128
    norm: str = "instance"

    def as_dict(self) -> dict:
        return asdict(self)


def train_on_synthetic(images: torch.Tensor, labels: torch.Tensor, n_classes: int, cfg: EvalConfig, seed: int,
                       device: torch.device | None = None) -> torch.nn.Module:
    """A fresh ConvNet trained on (images, labels) with the protocol above."""
    from ..models.cifar import ConvNet

    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    net = ConvNet(n_classes, depth=cfg.depth, width=cfg.width, norm=cfg.norm, image_size=images.shape[-1]).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = images.to(device), labels.to(device)
    net.train()
    for epoch in range(cfg.epochs):
        if epoch == cfg.epochs // 2:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.1
        order = torch.randperm(len(x_all), generator=gen).to(device)
        for s in range(0, len(order), cfg.batch_size):
            sel = order[s : s + cfg.batch_size]
            x = dsa_apply(x_all[sel], dsa_draw(gen, cfg.strategy, n=len(sel)))
            loss = F.cross_entropy(net(x), y_all[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    dev = next(net.parameters()).device
    correct = 0
    for s in range(0, len(images), batch):
        correct += int((net(images[s : s + batch].to(dev)).argmax(1).cpu() == labels[s : s + batch]).sum())
    return correct / max(1, len(images))


def evaluate_synthetic(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                       n_classes: int, cfg: EvalConfig = EvalConfig(), seeds: int = 3,
                       device: torch.device | None = None, done: tuple[Sequence[float], float] = ((), 0.0),
                       on_seed: Callable[[list[float], float], None] | None = None, first_seed: int = 0) -> dict:
    """Test accuracy of ``seeds`` fresh networks trained on the synthetic set: per seed, mean, sd.

    ``done`` = (accuracies of seeds 0..k-1, their seconds) resumes after seed k-1 (seed i always trains
    the same network, so a resumed run equals an uninterrupted one); ``on_seed(accs, seconds)`` is called
    after every seed, for the caller to save them. The networks' seeds are first_seed .. first_seed + seeds - 1
    (a bench that varies the whole pipeline's seed passes its seed here)."""
    accs, spent = list(done[0]), float(done[1])
    for seed in progress.bar(range(len(accs), seeds), desc="evaluate distilled", unit="seed"):
        t0 = time.perf_counter()
        net = train_on_synthetic(images, labels, n_classes, cfg, first_seed + seed, device)
        accs.append(accuracy(net, test_images, test_labels))
        spent += time.perf_counter() - t0
        if on_seed is not None:
            on_seed(accs, spent)
    return {"test_acc": accs, "test_acc_mean": float(np.mean(accs)),
            "test_acc_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "seeds": seeds, "protocol": cfg.as_dict(), "seconds": round(spent, 2)}
