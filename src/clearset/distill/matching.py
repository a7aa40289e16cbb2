"""The matching loop every distiller shares (methods.md, DISTILL: one harness for DM, DataDAM and FYI).

Each iteration:
1. sample a freshly initialised ConvNet (seeded by the iteration) and freeze it;
2. per class: draw a batch of real images of that class, take the class's synthetic images (with FYI:
   the synthetic batch concatenated with its horizontal flip -- the real batch is never flipped), draw
   one DSA parameter set and apply it to both (siamese), and add the distiller's loss between what the
   network sees in the two (``batching="all"``: every class's batches in one forward each, as the
   reference code, the loss still per class);
3. one SGD step on the synthetic pixels (lr 1, momentum 0.5: the cards' image optimiser).

Synthetic images start from random real images of their class (``init="real"``) or Gaussian noise. All
random draws come from generators seeded by (seed, iteration), so a run resumed from a checkpoint
finishes with the same pixels as one that never stopped.

For a distiller whose loss has named terms (DataDAM: attention and MMD), every ``GRADIENT_EVERY``-th
iteration also records each term's gradient norm on the synthetic pixels (``stats["gradient_norms"]``):
how much of the update each term drives.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import progress
from ..errors import ParameterError, param
from .base import Distiller, probe, rows_of
from .dsa import DEFAULT_STRATEGY, apply as dsa_apply, draw as dsa_draw

log = logging.getLogger("clearset")
GRADIENT_EVERY = 10
BATCHINGS = ("class", "all")


@dataclass(frozen=True)
class MatchConfig:
    ipc: int
    iterations: int
    seed: int = 0
    fyi: bool = False
    init: str = "real"
    lr: float = 1.0
    momentum: float = 0.5
    real_batch: int = 64
    strategy: str = DEFAULT_STRATEGY
    depth: int = 3
    width: int = 128
    norm: str = "instance"
    power: float = 1.0  # attention power (distillers that match attention)
    # "class": one forward per class (real batch and synthetic images of that class, one DSA draw each);
    # "all": the reference code's -- all classes' real batches in one forward, all synthetic images in
    # another, one DSA draw for both, the loss summed over classes (matters with BatchNorm nets)
    batching: str = "class"


def flip_batch(x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """FYI's BatchAug: [x; flip_h(x)] with the labels repeated (applied to the synthetic side only)."""
    return torch.cat([x, x.flip(3)]), (None if labels is None else torch.cat([labels, labels]))


def check_network_fits(side: int, depth: int) -> None:
    if side < 2 ** depth:
        raise ParameterError(f"images of {side} px are too small for a ConvNet of depth {depth} (it halves the "
                             f"side {depth} times): use images of at least {2 ** depth} px or a smaller {param('depth')}")


def initial_images(real: torch.Tensor, labels: np.ndarray, ipc: int, init: str, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """(n_classes·ipc, C, H, W) starting images and their labels: ``ipc`` distinct random real images of each
    class (``init="real"``) or standard-normal noise (``"noise"``)."""
    if init not in ("real", "noise"):
        raise ParameterError(f"{param('init')} must be real or noise, got {init!r}")
    classes = np.unique(labels)
    counts = np.bincount(labels)[classes]
    if ipc < 1:
        raise ParameterError(f"{param('ipc')} must be at least 1")
    if ipc > counts.min():
        worst = int(classes[counts.argmin()])
        raise ParameterError(f"{param('ipc')} {ipc} is more than the {int(counts.min())} images of class {worst}: "
                             "choose an ipc no larger than the smallest class")
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), ipc, replace=False) for c in classes])
    syn_labels = np.repeat(classes, ipc)
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.randn((len(rows), *real.shape[1:]), generator=g), syn_labels
    return real[torch.from_numpy(rows)].clone(), syn_labels


def match(distiller: Distiller, real: torch.Tensor, labels: np.ndarray, cfg: MatchConfig, *, options: dict | None = None,
          state: dict | None = None, on_checkpoint: Callable[[dict], None] | None = None, save_every: int = 100,
          device: torch.device | None = None) -> tuple[torch.Tensor, np.ndarray, dict]:
    """Distil ``real`` (normalised float images (N, C, H, W)) with ``labels`` (N,) into ``cfg.ipc`` images per
    class. ``state`` resumes from a checkpoint dict; ``on_checkpoint(state)`` is called every ``save_every``
    iterations and on Ctrl-C (then the KeyboardInterrupt propagates). Returns (images, labels, stats)."""
    from ..models.cifar import ConvNet

    device = device or torch.device("cpu")
    check_network_fits(real.shape[-1], cfg.depth)
    syn_init, syn_labels = initial_images(real, labels, cfg.ipc, cfg.init, cfg.seed)
    syn = (state["images"] if state else syn_init).to(device).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=cfg.lr, momentum=cfg.momentum)
    start, losses, seconds = 0, [], 0.0
    if state:
        opt.load_state_dict(state["optimizer"])
        start, losses, seconds = state["iteration"], list(state["losses"]), state["seconds"]
    if distiller.loss is None or cfg.iterations == 0:
        return syn.detach().cpu(), syn_labels, {"iterations": 0, "seconds": 0.0, "losses": []}
    classes = np.unique(syn_labels)
    by_class = {int(c): torch.from_numpy(np.flatnonzero(labels == c)) for c in classes}
    syn_rows = {int(c): torch.from_numpy(np.flatnonzero(syn_labels == c)) for c in classes}
    attention = distiller.probe.get("attention", False)
    options = options or {}
    n_classes = int(labels.max()) + 1

    gradient_norms: list[dict] = list(state.get("gradient_norms", [])) if state else []

    def snapshot(done: int) -> dict:
        return {"images": syn.detach().cpu().clone(), "optimizer": opt.state_dict(), "iteration": done,
                "losses": losses, "seconds": seconds, "gradient_norms": gradient_norms}

    bar = progress.bar(total=cfg.iterations, desc=f"distil {distiller.name}{'+fyi' if cfg.fyi else ''}", unit="it")
    bar.update(start)
    try:
        for it in range(start, cfg.iterations):
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + it)  # the network's initialisation
            net = ConvNet(n_classes, depth=cfg.depth, width=cfg.width, norm=cfg.norm, image_size=real.shape[-1]).to(device)
            net.requires_grad_(False)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)
            terms = _terms(distiller, net, real, syn, classes, by_class, syn_rows, cfg, gen, device, attention,
                           options)
            loss = sum(terms.values(), torch.zeros((), device=device))
            if len(terms) > 1 and it % GRADIENT_EVERY == 0:
                norms = {k: float(torch.autograd.grad(v, syn, retain_graph=True)[0].norm()) for k, v in terms.items()}
                gradient_norms.append({"iteration": it, **norms})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))  # len(losses) = iterations done (a checkpoint resumes after them)
            seconds += time.perf_counter() - t0
            bar.update(1)
            if on_checkpoint and (it + 1) % save_every == 0 and it + 1 < cfg.iterations:
                on_checkpoint(snapshot(it + 1))
    except KeyboardInterrupt:
        if on_checkpoint and len(losses) > start:
            on_checkpoint(snapshot(len(losses)))
        raise
    finally:
        bar.close()
    return syn.detach().cpu(), syn_labels, {"iterations": cfg.iterations, "seconds": round(seconds, 2),
                                            "iterations_per_second": round(len(losses) / max(seconds, 1e-9), 3),
                                            "losses": losses, "gradient_norms": gradient_norms}


def _terms(distiller: Distiller, net, real: torch.Tensor, syn: torch.Tensor, classes, by_class: dict, syn_rows: dict,
           cfg: MatchConfig, gen: torch.Generator, device: torch.device, attention: bool,
           options: dict) -> dict[str, torch.Tensor]:
    """The iteration's loss summed over classes, as the distiller's named terms ({"loss": ...} without)."""
    def loss_of(seen_real, seen_syn) -> dict[str, torch.Tensor]:
        if distiller.parts is not None:
            return distiller.parts(seen_real, seen_syn, **options)
        assert distiller.loss is not None
        return {"loss": distiller.loss(seen_real, seen_syn, **options)}

    def add(total: dict, more: dict) -> dict:
        return {k: total.get(k, 0) + v for k, v in more.items()}

    def pick(c) -> torch.Tensor:
        pool = by_class[int(c)]
        return pool[torch.randperm(len(pool), generator=gen)[: cfg.real_batch]]

    total: dict = {}
    if cfg.batching == "class":  # draws in the order: class 0's real batch, its DSA draw, class 1's, ...
        for c in classes:
            rows = pick(c)
            xs = syn[syn_rows[int(c)]]
            if cfg.fyi:
                xs, _ = flip_batch(xs)
            params = dsa_draw(gen, cfg.strategy)
            with torch.no_grad():
                seen_real = probe(net, dsa_apply(real[rows].to(device), params), attention=attention,
                                  power=cfg.power)
            seen_syn = probe(net, dsa_apply(xs, params), attention=attention, power=cfg.power)
            total = add(total, loss_of(seen_real, seen_syn))
        return total
    # all classes at once: row ranges of each class in the two batches
    picks = {int(c): pick(c) for c in classes}
    real_rows = torch.cat([picks[int(c)] for c in classes])
    syn_order = torch.cat([syn_rows[int(c)] for c in classes])
    xs = syn[syn_order]
    sizes_real = [len(picks[int(c)]) for c in classes]
    sizes_syn = [len(syn_rows[int(c)]) for c in classes]
    if cfg.fyi:  # each class's images followed by their flips, kept together per class
        parts = xs.split(sizes_syn)
        xs = torch.cat([torch.cat([p, p.flip(3)]) for p in parts])
        sizes_syn = [2 * n for n in sizes_syn]
    params = dsa_draw(gen, cfg.strategy)
    with torch.no_grad():
        seen_real = probe(net, dsa_apply(real[real_rows].to(device), params), attention=attention, power=cfg.power)
    seen_syn = probe(net, dsa_apply(xs, params), attention=attention, power=cfg.power)
    r0 = s0 = 0
    for nr, ns in zip(sizes_real, sizes_syn):
        rr = torch.arange(r0, r0 + nr, device=seen_real.embedding.device)
        ss = torch.arange(s0, s0 + ns, device=seen_syn.embedding.device)
        total = add(total, loss_of(rows_of(seen_real, rr), rows_of(seen_syn, ss)))
        r0, s0 = r0 + nr, s0 + ns
    return total
