"""The fit loop: a network, tensors in memory, a recipe -> trained weights and one row of metrics per epoch.

- The decoded split is one uint8 tensor (N, 3, H, W) in memory; a batch is gathered by index and
  augmented as a whole with tensor ops (train/augment.py); no per-image Python and no DataLoader.
- Targets are always soft (N, K) rows; per-sample weights come from a curated subset.
- Each epoch draws its permutation and augmentations from generators seeded by (seed, epoch): a run
  resumed from its per-epoch (or, after Ctrl-C, per-batch) checkpoint continues exactly as if never stopped.

This module knows nothing of workspaces or run folders: ``train/api.py`` builds the tensors and writes the run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .. import progress
from ..io import atomic_path
from .augment import AugParams, apply_params, cutout, draw_params, mix, random_crop, random_flip
from .discriminator import discriminator_loss
from .recipes import Recipe
from .reinforcement import P_REINFORCED, Reinforced
from .teachers import teacher_outputs

log = logging.getLogger("clearset")
# An epoch sampler returns the training rows (positions into the subset) to visit this epoch, in order,
# given the epoch number and a seeded generator; RS2 draws a fresh subset here every epoch.
Sampler = Callable[[int, torch.Generator], torch.Tensor]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at iteration ``step`` of ``total`` (linear warm-up, then the schedule)."""
    if schedule == "onecycle":  # linear up for 30% of the run, then linear down to zero
        peak = max(1, int(0.3 * total))
        return step / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
    if schedule == "airbench":  # linear from 0.2 to 1 over 23% of the run, then linear down to 0.07
        peak = max(1, int(0.23 * total))
        if step < peak:
            return 0.2 + 0.8 * step / peak
        return 1.0 - 0.93 * min(1.0, (step - peak) / max(1, total - peak))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "step":  # MEAL V2: the rate for epochs 0-100 of 180, a tenth of it after
        return 1.0 if step < total * 100 / 180 else 0.1
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


@dataclass
class FitData:
    """What a fit reads, on the training device (``positions`` and ``strong`` stay on the CPU)."""

    images: torch.Tensor  # (N, 3, H, W) uint8, or float x 255 for a distilled set
    targets: torch.Tensor  # (N, K) soft targets
    mean: torch.Tensor  # (1, 3, 1, 1) normalisation, in [0, 1] units
    std: torch.Tensor
    positions: torch.Tensor  # (M,) rows trained on (repeated for strong copies)
    weights: torch.Tensor  # (M,) per-sample loss weights
    strong: torch.Tensor | None = None  # (M,) bool: strongly augmented copies
    rein: Reinforced | None = None  # stored augmentations and targets to replay instead of the recipe's
    rein_rows: torch.Tensor | None = None  # training row -> reinforcement row


@dataclass
class FitOptions:
    seed: int
    autocast: bool  # bf16 autocast of the forward pass
    sampler: Sampler | None = None
    teachers: list = field(default_factory=list)  # (net, mean, std) triples: knowledge distillation
    kd_temperature: float = 1.0
    kd_hard_weight: float = 0.0
    # MEAL V2: a discriminator of student vs teacher logits, trained with the student by the one optimiser
    discriminator: torch.nn.Module | None = None
    eval_every: int = 0  # evaluate every N epochs (0: never during the run)
    evaluate: Callable[[torch.nn.Module], float] | None = None  # the network -> evaluation accuracy
    # forgetting events (Toneva et al.): per epoch and image row, whether the image was classified correctly
    # when it was presented in its (augmented) minibatch; -1 where it was not presented that epoch
    record_presentations: bool = False


def make_optimizer(net: torch.nn.Module, rec: Recipe, extra: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW over the trainable parameters (the whitening bias included, frozen later);
    with ``bias_lr_scale`` the model's batch-norm shifts form a second group at lr x that scale, their
    weight decay divided by it (the same absolute decay per step). Each group's ``lr_scale`` multiplies
    the scheduled rate."""
    params = [p for p in net.parameters() if p.requires_grad]
    biases = getattr(net, "bias_parameters")() if rec.bias_lr_scale != 1.0 and hasattr(net, "bias_parameters") else []
    ids = {id(p) for p in biases}
    groups = [{"params": [p for p in params if id(p) not in ids], "lr_scale": 1.0, "weight_decay": rec.weight_decay}]
    if biases:
        groups.append({"params": biases, "lr_scale": rec.bias_lr_scale,
                       "weight_decay": rec.weight_decay / rec.bias_lr_scale})
    if extra is not None:  # trained alongside at the same scheduled rate (MEAL V2's discriminator)
        groups.append({"params": list(extra.parameters()), "lr_scale": 1.0, "weight_decay": rec.weight_decay})
    if rec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=rec.lr, momentum=rec.momentum, nesterov=rec.nesterov)
    return torch.optim.AdamW(groups, lr=rec.lr)


class Fit:
    """One training of ``net`` on ``data`` by ``rec``, checkpointed to ``checkpoint`` under ``key``.

    ``forward`` is the module called on batches (``net`` itself, or its torch.compile wrapper: same
    parameters; state dicts come from ``net``)."""

    def __init__(self, net: torch.nn.Module, rec: Recipe, data: FitData, opts: FitOptions, *,
                 checkpoint: Path, key: str, forward: Callable[..., torch.Tensor] | None = None):
        self.net, self.rec, self.data, self.opts = net, rec, data, opts
        self.forward = forward if forward is not None else net
        self.checkpoint, self.key = checkpoint, key
        self.opt = make_optimizer(net, rec, opts.discriminator)
        self.dev = data.images.device
        self.start_epoch, self.step = 0, 0
        self.history: list[dict] = []
        self.partial: dict | None = None
        # lookahead: the running average the weights are pulled back to (state-dict order, float entries)
        self.average = ({k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}
                        if rec.lookahead else None)
        # alternating flips: one coin per image row, the other side every other epoch
        self.flip_base = (torch.rand(len(data.images), generator=torch.Generator().manual_seed(opts.seed + 7919)) < 0.5
                          if rec.flip and rec.flip_mode == "alternating" else None)
        self.presentations = (torch.full((rec.epochs, len(data.images)), -1, dtype=torch.int8)
                              if opts.record_presentations else None)
        steps_per_epoch = math.ceil(len(data.positions) / rec.batch_size) if opts.sampler is None else 0
        self.total_steps = steps_per_epoch * rec.epochs  # a sampler sets it at its first epoch

    def resume(self) -> bool:
        """Continue from the checkpoint when it holds this configuration; whether it did."""
        if not self.checkpoint.exists():
            return False
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        if state.get("key") != self.key:
            return False
        self.net.load_state_dict(state["model"])
        if self.opts.discriminator is not None:
            self.opts.discriminator.load_state_dict(state["discriminator"])
        self.opt.load_state_dict(state["optimizer"])
        self.start_epoch, self.history, self.step = state["epoch"], state["history"], state["step"]
        self.partial = state.get("partial")
        if self.presentations is not None and state.get("presentations") is not None:
            self.presentations = state["presentations"]
        if self.average is not None and state.get("average") is not None:
            self.average = state["average"]
        log.info("train: resuming %s at epoch %d%s", self.checkpoint.parent.name, self.start_epoch + 1,
                 f", batch {self.partial['batch'] + 1}" if self.partial else "")
        return True

    def run(self) -> list[dict]:
        """Train the remaining epochs; returns the metrics history (one row per epoch)."""
        for epoch in range(self.start_epoch, self.rec.epochs):
            row = self._epoch(epoch)
            self.history.append(row)
            log.info("epoch %d/%d: loss %.4f, train acc %.4f, %.0f img/s", epoch + 1, self.rec.epochs,
                     row["train_loss"], row["train_acc"], row["images_per_s"])
            self._save(epoch + 1)
        if self.average is not None:  # the run ends on the average (airbench's final lookahead step)
            self._pull_to_average(1.0)
        self.net.eval()
        return self.history

    def _epoch(self, epoch: int) -> dict:
        rec, opts = self.rec, self.opts
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(opts.seed * 1_000_003 + epoch)
        torch.manual_seed(opts.seed * 1_000_003 + epoch)  # dropout and other global draws
        n = len(self.data.positions)
        order = opts.sampler(epoch, gen) if opts.sampler is not None else torch.randperm(n, generator=gen)
        if self.total_steps == 0:  # a sampler sets the epoch length; the schedule spans epochs x that length
            self.total_steps = math.ceil(len(order) / rec.batch_size) * rec.epochs
        self.net.train()
        whiten = getattr(self.net, "whiten", None)
        if whiten is not None and whiten.bias is not None:  # airbench trains its whitening bias for a few epochs
            whiten.bias.requires_grad = epoch < rec.whiten_bias_epochs
        counters, first, earlier_seconds = (0, 0.0, 0.0), 0, 0.0
        if self.partial is not None:  # interrupted inside this epoch: continue at the batch it stopped before
            p, self.partial = self.partial, None
            order, first, earlier_seconds = p["order"], p["batch"], p["seconds"]
            gen.set_state(p["gen"])
            torch.set_rng_state(p["rng"])
            counters = (p["seen"], p["loss_sum"], p["correct"])
        n_batches = math.ceil(len(order) / rec.batch_size)
        bar = progress.bar(total=n_batches, desc=f"epoch {epoch + 1}/{rec.epochs}", unit="batch")
        bar.update(first)
        try:
            for bi in range(first, n_batches):
                counters = self._guarded_batch(epoch, bi, order, gen, n_batches, counters,
                                               earlier_seconds + time.perf_counter() - t0)
                bar.update(1)
        finally:
            bar.close()
        seen, loss_sum, correct = counters
        seconds = earlier_seconds + time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "lr": self.opt.param_groups[0]["lr"], "seconds": round(seconds, 2),
               "images_per_s": round(seen / seconds, 1)}
        if opts.evaluate is not None and opts.eval_every and (epoch + 1) % opts.eval_every == 0 \
                and epoch + 1 < rec.epochs:
            row["eval_acc"] = opts.evaluate(self.net)
            self.net.train()
        return row

    def _guarded_batch(self, epoch: int, bi: int, order: torch.Tensor, gen: torch.Generator, n_batches: int,
                       counters: tuple[int, float, float], seconds: float) -> tuple[int, float, float]:
        """One batch; on Ctrl-C, save the work up to the last finished batch, then re-raise."""
        seen, loss_sum, correct = counters
        mark: dict[str, Any] = {"batch": bi, "order": order, "gen": gen.get_state(), "rng": torch.get_rng_state(), "seen": seen,
                "loss_sum": loss_sum, "correct": correct, "seconds": seconds}
        step_before = self.step
        try:
            return self._batch(epoch, bi * self.rec.batch_size, order, gen, n_batches, counters)
        except KeyboardInterrupt:
            if self.step > step_before:  # stopped just after the update: the batch is done, resume after it
                n = len(order[bi * self.rec.batch_size : (bi + 1) * self.rec.batch_size])
                mark.update(batch=bi + 1, gen=gen.get_state(), rng=torch.get_rng_state(), seen=seen + n)
            if epoch > 0 or mark["batch"] > 0:
                self._save(epoch, mark)
                log.warning("train: interrupted; saved at epoch %d, batch %d: run the same command to resume",
                            epoch + 1, bi + 1)
            raise

    def _batch(self, epoch: int, b: int, order: torch.Tensor, gen: torch.Generator, n_batches: int,
               counters: tuple[int, float, float]) -> tuple[int, float, float]:
        """One optimisation step on the batch at offset ``b`` of ``order``; returns the updated counters."""
        rec, opts, d, dev = self.rec, self.opts, self.data, self.dev
        seen, loss_sum, correct = counters
        sel = order[b : b + rec.batch_size]
        rows = d.positions[sel].to(dev)
        if d.rein is not None and d.rein_rows is not None:
            x, t = replay_batch(d.rein, d.rein_rows[d.positions[sel]], d.images[rows], d.targets[rows], gen)
            x = (x - d.mean) / d.std
        else:
            flips = None
            if self.flip_base is not None:
                flips = (self.flip_base[rows.cpu()] ^ bool(epoch % 2)).to(dev)
            x, t = augment_batch(d.images[rows], d.targets[rows], rec, gen, d.mean, d.std, flips=flips)
            if d.strong is not None and bool(d.strong[sel].any()):
                x, t = strong_copies(x, t, d.images[rows], d.targets[rows], d.strong[sel].to(dev), gen, d.mean, d.std)
        x = x.contiguous(memory_format=torch.channels_last)
        factor = lr_factor(self.step, self.total_steps, int(rec.warmup_epochs * n_batches), rec.schedule)
        for group in self.opt.param_groups:
            group["lr"] = rec.lr * group.get("lr_scale", 1.0) * factor
        temp = 1.0
        teacher_logits = None
        if opts.teachers:
            probs, teacher_logits = teacher_outputs(opts.teachers, x, d.mean, d.std, opts.kd_temperature,
                                                    opts.autocast, dev)
            t = (1 - opts.kd_hard_weight) * probs + opts.kd_hard_weight * t
            temp = opts.kd_temperature
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=opts.autocast):
            logits = self.forward(x)
        w = d.weights[sel.to(dev)]
        per_sample = -(t * F.log_softmax(logits.float() / temp, 1)).sum(1) * temp ** 2
        loss = (per_sample * w).sum() / w.sum().clamp_min(1e-12)
        if opts.discriminator is not None and teacher_logits is not None:  # MEAL V2: added, minimised jointly
            loss = loss + discriminator_loss(opts.discriminator, logits, teacher_logits)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        hit = logits.argmax(1) == t.argmax(1)
        batch_loss, batch_correct = loss.item(), float(hit.sum())
        if self.presentations is not None:  # the last presentation in an epoch wins (strong copies repeat rows)
            self.presentations[epoch, d.positions[sel]] = hit.to(torch.int8).cpu()
        self.opt.step()
        self.step += 1  # from here on the batch counts as done (an interrupt saves after it)
        if self.average is not None and self.step % rec.lookahead == 0:
            self._pull_to_average(0.95 ** 5 * (self.step / max(1, self.total_steps)) ** 3)
        return seen + len(sel), loss_sum + batch_loss * len(sel), correct + batch_correct

    @torch.no_grad()
    def _pull_to_average(self, decay: float) -> None:
        """Lookahead (airbench): average <- decay * average + (1 - decay) * weights, then weights <- average
        (batch-norm statistics included). The decay grows as (step / total)^3, to 0.95^5 at the end."""
        assert self.average is not None
        state = self.net.state_dict()
        for k, avg in self.average.items():
            avg.lerp_(state[k], 1 - decay)
            state[k].copy_(avg)

    def _save(self, epochs_done: int, partial: dict | None = None) -> None:
        with atomic_path(self.checkpoint) as tmp:
            torch.save({"key": self.key, "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                        "epoch": epochs_done, "history": self.history, "step": self.step, "partial": partial,
                        "average": self.average, "presentations": self.presentations, "discriminator": self.opts.discriminator.state_dict()
                        if self.opts.discriminator is not None else None}, tmp)

def augment_batch(x: torch.Tensor, t: torch.Tensor, rec: Recipe, gen: torch.Generator, mean: torch.Tensor,
                  std: torch.Tensor, flips: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's augmentations of a uint8 batch -> (normalised float batch, mixed soft targets).
    ``flips``: which images to mirror (alternating flips), instead of a fresh coin per image."""
    if rec.crop_pad:
        x = random_crop(x, rec.crop_pad, gen, mode=rec.pad_mode)
    if flips is not None:
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    elif rec.flip:
        x = random_flip(x, gen)
    x = (x.float() / 255.0 - mean) / std
    if rec.cutout:
        x = cutout(x, rec.cutout, gen)
    return mix(x, t, gen, mixup=rec.mixup, cutmix=rec.cutmix)


def strong_copies(x: torch.Tensor, t: torch.Tensor, raw: torch.Tensor, one_hot: torch.Tensor, which: torch.Tensor,
                  gen: torch.Generator, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the rows ``which`` of an augmented batch by strong augmentations of their raw images (crop,
    flip, two RandAugment operations, random erase) with their own unmixed targets."""
    k = int(which.sum())
    p = draw_params((k,), gen, size=raw.shape[-1])
    x, t = x.clone(), t.clone()
    x[which] = (apply_params(raw[which], p) - mean) / std
    t[which] = one_hot[which]
    return x, t


def replay_batch(rein: Reinforced, rows: torch.Tensor, x: torch.Tensor, one_hot: torch.Tensor,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Dataset reinforcement: per image, with p 0.99 one of its stored augmentations (replayed) and the
    densified stored target, else the original image and its one-hot target. Returns ([0, 1] batch, targets)."""
    b = len(rows)
    draw = torch.randint(0, rein.ns, (b,), generator=gen)
    use = torch.rand(b, generator=gen) < P_REINFORCED
    p = rein.params[rows, draw]
    pad = 4
    p = AugParams(dy=torch.where(use, p.dy, pad), dx=torch.where(use, p.dx, pad), flip=p.flip & use,
                  ops=torch.where(use[:, None], p.ops, 0), signs=p.signs,
                  erase=torch.where(use[:, None], p.erase, -1))
    x = apply_params(x, p, pad=pad)
    dense = rein.densify(rein.topk_idx[rows, draw], rein.topk_p[rows, draw], one_hot.shape[1]).to(one_hot.device)
    return x, torch.where(use.to(one_hot.device)[:, None], dense, one_hot)


