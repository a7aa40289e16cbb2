"""The training engine behind ``clearset train``: fast on small images, exactly reproducible on CPU.

- The decoded split is one uint8 tensor (N, 3, H, W) in memory; a batch is gathered by index and
  augmented as a whole with tensor ops (train/augment.py); no per-image Python and no DataLoader.
- channels_last, and bf16 autocast where the hardware multiplies bf16 natively (``precision="auto"``).
- Targets are always soft (N, K) rows: one-hot (with label smoothing), or given (human soft labels,
  stored reinforced targets, a teacher's probabilities); per-sample weights come from a curated subset.
- Each epoch draws its permutation and augmentations from generators seeded by (seed, epoch): a run
  resumed from its per-epoch checkpoint continues exactly as if never stopped.
- Writes ``WS/runs/<name>/``: ``model.safetensors``, ``config.json``, ``metrics.jsonl`` (one line per
  epoch), ``predictions.npz`` (evaluation-split logits), ``checkpoint.pt`` (resume state), and a sidecar.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import progress
from ..artifacts.runs import Run, load_run, map_labels
from ..data.loading import load_images, load_split, split_rows
from ..device import choose_precision, resolve_device
from ..errors import ParameterError, WorkspaceError, check_seed
from ..models.inference import predict
from ..ops.linear import accuracy
from ..workspace import Workspace, atomic_path, hash_json, is_cached, read_json, write_bytes, write_json
from .augment import AugParams, apply_params, cutout, draw_params, mix, random_crop, random_flip
from .inputs import run_config, training_rows
from .recipes import DEFAULT_RECIPE, Recipe, get_recipe
from .reinforcement import P_REINFORCED, Reinforced
from .teachers import teacher_probs

log = logging.getLogger("clearset")
# An epoch sampler returns the training rows (positions into the subset) to visit this epoch, in order,
# given the epoch number and a seeded generator; RS2 draws a fresh subset here every epoch.
Sampler = Callable[[int, torch.Generator], torch.Tensor]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at iteration ``step`` of ``total`` (linear warm-up, then the schedule)."""
    if schedule == "onecycle":  # linear up for 30% of the run, then linear down to zero
        peak = max(1, int(0.3 * total))
        return step / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def train(workspace: str | Path | Workspace, *, recipe: str | Recipe = DEFAULT_RECIPE, model: str | None = None,
          epochs: int | None = None, seed: int = 0, subset: str | Path | None = None,
          targets: np.ndarray | None = None, targets_name: str | None = None, sampler: Sampler | None = None,
          sampler_name: str | None = None, name: str | None = None, train_split: str = "train",
          eval_split: str | None = "test", precision: str = "auto", force: bool = False,
          overrides: dict | None = None, known_classes: list[int] | None = None, tract: float | None = None,
          teachers: list[str | Path] | None = None, kd_temperature: float = 1.0, kd_hard_weight: float = 0.0,
          device: str = "auto", eval_every: int = 0, reinforced: str | Path | None = None,
          features: str | None = None, resume: bool = True, compile: str = "auto",
          distilled: str | Path | None = None) -> Run:
    """Train ``recipe`` on the workspace's ``train_split`` and write ``WS/runs/<name>/``.

    subset: a file of manifest ``index`` (+ ``weight``) rows to train on (what ``clearset curate`` writes).
    targets: (N_train, K) soft targets for the training rows in manifest order (``targets_name`` names
      them in the config, so a different source of targets is a different run).
    sampler: per-epoch choice of training rows (e.g. RS2); ``sampler_name`` identifies it for caching.
    known_classes: train only on these classes (open-set evaluation); the model has len(known) outputs.
    tract: TrAct's lambda (e.g. 0.1) for the first convolution; None = plain gradients.
    teachers: runs whose mean softmax (at ``kd_temperature``) on the same augmented batch is the target
      (knowledge distillation, MEAL V2); ``kd_hard_weight`` mixes in the hard labels (0 = none).
    device: auto (CUDA when visible), cpu, cuda[:N]. eval_every: also evaluate every N epochs (0 = only at
      the end), recording ``eval_acc`` per epoch (time-to-accuracy).
    reinforced: a ``clearset reinforce`` folder: replay its stored augmentations with their stored teacher
      targets (p 0.99; else the original image, one-hot) instead of the recipe's augmentations.
    features: for the ``linear-probe`` recipe, which stored embedding (backbone@size; default the latest).
    compile: torch.compile the model for training: "on", "off", or "auto" (on for CUDA, off on CPU, where
      compilation costs more than it saves on these small nets: bench/train_compile.py).
    distilled: a ``clearset distill`` set (.npz): train on its synthetic images and labels alone (kept in
      float, unclipped, normalised as distilled), evaluate on ``eval_split`` as usual.
    A finished run with the same configuration is a cache hit; an unfinished one resumes where it stopped
    (``resume=False`` discards its checkpoint and starts at epoch 1); ``force`` starts over in every case.
    """
    ws = Workspace.of(workspace)
    ws.require_manifest()

    check_seed(seed)
    dev = resolve_device(device)
    choice = choose_precision(precision, dev)
    if eval_every < 0:
        raise ParameterError("--eval-every must be 0 (only at the end) or a positive number of epochs")
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    rec = rec.with_overrides(model=model, epochs=epochs, **(overrides or {}))
    classes = ws.classes()
    labels, train_index = split_rows(ws, train_split)
    if eval_split is not None:
        split_rows(ws, eval_split)  # a missing evaluation split fails now, not after the training
    rows = training_rows(ws, rec, classes, labels, train_index, train_split=train_split, subset=subset,
                         distilled=distilled, targets=targets, targets_name=targets_name, sampler=sampler,
                         sampler_name=sampler_name, known_classes=known_classes, teachers=teachers,
                         kd_temperature=kd_temperature, kd_hard_weight=kd_hard_weight, reinforced=reinforced)
    labels, positions, weights, strong, dist = rows.labels, rows.positions, rows.weights, rows.strong, rows.dist
    classes, class_map, known_classes, n_out = rows.classes, rows.class_map, rows.known_classes, len(rows.classes)
    targets, targets_name, sampler, sampler_name = rows.targets, rows.targets_name, rows.sampler, rows.sampler_name
    teacher_runs, rein, rein_rows = rows.teacher_runs, rows.rein, rows.rein_rows

    config = run_config(ws, rec, rows, seed=seed, train_split=train_split, eval_split=eval_split,
                        precision=choice.precision, device_type=dev.type, subset=subset, tract=tract,
                        kd_temperature=kd_temperature, kd_hard_weight=kd_hard_weight)
    if compile not in ("auto", "on", "off"):
        raise ParameterError("--compile must be auto, on or off")
    use_compile = compile == "on" or (compile == "auto" and dev.type == "cuda")
    if use_compile:
        config["compile"] = True
    if rec.model == "linear":  # the linear-probe recipe: stored features, no pixels
        from .linear import train_linear_probe

        if tract is not None or teacher_runs or rein is not None or sampler is not None:
            raise ParameterError("the linear-probe recipe trains on stored features: --tract, --teacher, "
                                 "--reinforced and samplers do not apply")
        ev_rows = None
        if eval_split is not None:
            ev_labels, ev_index = split_rows(ws, eval_split)
            ev_rows = (map_labels(ev_labels, class_map)[0], ev_index)
        return train_linear_probe(ws, config=config, positions=positions, weights=weights, train_index=train_index,
                                  targets=soft_targets(labels, class_map, targets, n_out, rec.label_smoothing),
                                  labels_eval=ev_rows, features=features, force=force,
                                  root_for=lambda k: ws.named("runs", name or f"{rec.name}-s{seed}-{k[:8]}"))
    key = hash_json({k: v for k, v in config.items() if k != "subset_file"})
    config["key"] = key
    root = ws.named("runs", name or f"{rec.name}-{rec.model}-s{seed}-{key[:8]}")
    sidecar = root / "run.meta.json"
    if not force and is_cached(sidecar, key, [root / "model.safetensors"]):
        log.info("train: cached %s", root)
        run = load_run(root)
        return run
    if _holds_other_run(root, key) and name is not None and not force:
        raise WorkspaceError(f"{root} holds a different run; choose another --name or pass --force")
    t_start = time.perf_counter()
    torch.manual_seed(seed)
    from ..models.cifar import create_model

    net = create_model(rec.model, n_out, image_size=rec.image_size)  # an unknown model fails before any write
    if tract is not None:
        from ..models.tract import apply_tract

        apply_tract(net, tract)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "config.json", config)
    net = net.to(dev, memory_format=torch.channels_last)
    forward = torch.compile(net) if use_compile else net  # same parameters; state dicts come from ``net``
    teacher_nets = [(t.load_model().to(dev, memory_format=torch.channels_last),
                     torch.tensor(t.config["normalisation"]["mean"], device=dev).view(1, 3, 1, 1),
                     torch.tensor(t.config["normalisation"]["std"], device=dev).view(1, 3, 1, 1)) for t in teacher_runs]
    steps_per_epoch = math.ceil(len(positions) / rec.batch_size) if sampler is None else None
    total_steps = (steps_per_epoch or 0) * rec.epochs
    params = [p for p in net.parameters() if p.requires_grad]
    if rec.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=rec.lr, momentum=rec.momentum, nesterov=True, weight_decay=rec.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=rec.lr, weight_decay=rec.weight_decay)
    start_epoch, history, step, partial = 0, [], 0, None
    ckpt = root / "checkpoint.pt"
    if ckpt.exists() and not force and not resume:
        log.info("train: discarding the checkpoint of %s (--no-resume)", root.name)
    if ckpt.exists() and not force and resume:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start_epoch, history, step, partial = state["epoch"], state["history"], state["step"], state.get("partial")
            log.info("train: resuming %s at epoch %d%s", root.name, start_epoch + 1,
                     f", batch {partial['batch'] + 1}" if partial else "")

    if dist is not None:  # float pixels x 255, unclipped: the augmentations then normalise them back exactly
        mean = torch.from_numpy(dist.mean).float().view(1, 3, 1, 1)
        std = torch.from_numpy(dist.std).float().view(1, 3, 1, 1)
        images = (torch.from_numpy(dist.images) * std + mean) * 255.0
    else:
        images = load_images(ws, train_index, rec.image_size, desc=f"load {train_split}")
        seen_pixels = images[torch.from_numpy(positions)].float()  # one gather serves both statistics
        mean = seen_pixels.mean((0, 2, 3)).view(1, 3, 1, 1) / 255.0
        std = seen_pixels.std((0, 2, 3)).view(1, 3, 1, 1) / 255.0
        del seen_pixels
    config["normalisation"] = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    one_hot = soft_targets(labels, class_map, targets, n_out, rec.label_smoothing)
    pos_t, w_t = torch.from_numpy(positions), torch.from_numpy(weights).to(dev)
    strong_t = torch.from_numpy(strong) if strong is not None else None
    autocast = config["precision"] == "bf16"
    images, one_hot, mean, std = images.to(dev), one_hot.to(dev), mean.to(dev), std.to(dev)
    ev = None
    if eval_split is not None:
        ev_images, ev_labels, ev_index = load_split(ws, eval_split, rec.image_size)
        ev_mapped, ev_known = map_labels(ev_labels, class_map)
        ev = (ev_images.to(dev), ev_mapped, ev_index, ev_known)

    def train_batch(b: int, order: torch.Tensor, gen: torch.Generator, n_batches: int,
                    counters: tuple[int, float, float]) -> tuple[int, float, float]:
        """One optimisation step on the batch at offset ``b`` of ``order``; returns the updated counters."""
        nonlocal step
        seen, loss_sum, correct = counters
        sel = order[b : b + rec.batch_size]
        rows = pos_t[sel].to(dev)
        if rein is not None:
            x, t = replay_batch(rein, rein_rows[pos_t[sel]], images[rows], one_hot[rows], gen)
            x = (x - mean) / std
        else:
            x, t = augment_batch(images[rows], one_hot[rows], rec, gen, mean, std)
            if strong_t is not None and bool(strong_t[sel].any()):
                x, t = strong_copies(x, t, images[rows], one_hot[rows], strong_t[sel].to(dev), gen, mean, std)
        x = x.contiguous(memory_format=torch.channels_last)
        for group in opt.param_groups:
            group["lr"] = rec.lr * lr_factor(step, total_steps, int(rec.warmup_epochs * n_batches), rec.schedule)
        temp = 1.0
        if teacher_nets:
            t = (1 - kd_hard_weight) * teacher_probs(teacher_nets, x, mean, std, kd_temperature, autocast, dev) \
                + kd_hard_weight * t
            temp = kd_temperature
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            logits = forward(x)
        w = w_t[sel.to(dev)]
        per_sample = -(t * F.log_softmax(logits.float() / temp, 1)).sum(1) * temp ** 2
        loss = (per_sample * w).sum() / w.sum().clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        batch_loss, batch_correct = loss.item(), float((logits.argmax(1) == t.argmax(1)).sum())
        opt.step()
        step += 1  # from here on the batch counts as done (an interrupt saves after it)
        return seen + len(sel), loss_sum + batch_loss * len(sel), correct + batch_correct

    def save_checkpoint(epochs_done: int, partial_state: dict | None = None) -> None:
        with atomic_path(ckpt) as tmp:
            torch.save({"key": key, "model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epochs_done,
                        "history": history, "step": step, "partial": partial_state}, tmp)

    for epoch in range(start_epoch, rec.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        torch.manual_seed(seed * 1_000_003 + epoch)  # dropout and other global draws
        order = sampler(epoch, gen) if sampler is not None else torch.randperm(len(positions), generator=gen)
        if total_steps == 0:  # a sampler sets the epoch length; the schedule spans epochs x that length
            total_steps = math.ceil(len(order) / rec.batch_size) * rec.epochs
        net.train()
        seen, loss_sum, correct, first, earlier_seconds = 0, 0.0, 0.0, 0, 0.0
        if partial is not None:  # interrupted inside this epoch: continue at the batch it stopped before
            order, first, earlier_seconds = partial["order"], partial["batch"], partial["seconds"]
            gen.set_state(partial["gen"])
            torch.set_rng_state(partial["rng"])
            seen, loss_sum, correct = partial["seen"], partial["loss_sum"], partial["correct"]
            partial = None
        batches = range(0, len(order), rec.batch_size)
        bar = progress.bar(total=len(batches), desc=f"epoch {epoch + 1}/{rec.epochs}", unit="batch")
        bar.update(first)
        for bi in range(first, len(batches)):
            mark = {"batch": bi, "order": order, "gen": gen.get_state(), "rng": torch.get_rng_state(), "seen": seen,
                    "loss_sum": loss_sum, "correct": correct, "seconds": earlier_seconds + time.perf_counter() - t0}
            step_before = step
            try:
                seen, loss_sum, correct = train_batch(bi * rec.batch_size, order, gen, len(batches),
                                                     (seen, loss_sum, correct))
            except KeyboardInterrupt:  # Ctrl-C: keep the work up to the last finished batch, then stop
                if step > step_before:  # stopped just after the update: the batch is done, resume after it
                    n = len(order[bi * rec.batch_size : (bi + 1) * rec.batch_size])
                    mark.update(batch=bi + 1, gen=gen.get_state(), rng=torch.get_rng_state(), seen=seen + n)
                if epoch > 0 or mark["batch"] > 0:
                    save_checkpoint(epoch, mark)
                    log.warning("train: interrupted; saved at epoch %d, batch %d: run the same command to resume",
                                epoch + 1, bi + 1)
                bar.close()
                raise
            bar.update(1)
        bar.close()
        train_seconds = earlier_seconds + time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "lr": opt.param_groups[0]["lr"], "seconds": round(train_seconds, 2),
               "images_per_s": round(seen / train_seconds, 1)}
        if ev is not None and eval_every and (epoch + 1) % eval_every == 0 and epoch + 1 < rec.epochs:
            row["eval_acc"] = accuracy(predict(net, ev[0], mean, std, rec.eval_batch_size, autocast), ev[1])
            net.train()
        history.append(row)
        log.info("epoch %d/%d: loss %.4f, train acc %.4f, %.0f img/s", epoch + 1, rec.epochs, row["train_loss"],
                 row["train_acc"], row["images_per_s"])
        save_checkpoint(epoch + 1)

    net.eval()
    preds = {}
    if ev is not None:
        logits = predict(net, ev[0], mean, std, rec.eval_batch_size, autocast)
        preds = {"index": ev[2], "labels": ev[1], "logits": logits}
        if known_classes is not None:  # for open-set evaluation: which test images show a trained class
            preds["known"] = ev[3]
        history[-1]["eval_acc"] = accuracy(logits, ev[1])
        log.info("%s accuracy %.4f", eval_split, history[-1]["eval_acc"])
    from safetensors.torch import save_file

    with atomic_path(root / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    write_bytes(root / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode())
    with atomic_path(root / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **preds)
    write_json(root / "config.json", config)
    total = time.perf_counter() - t_start
    write_json(sidecar, {"step": "train", "key": key, **choice.record(), "seconds": round(total, 2), "epochs": rec.epochs,
                         "eval_acc": history[-1].get("eval_acc"),
                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    ckpt.unlink(missing_ok=True)
    return Run(root, config, history, cached=False)


def _holds_other_run(root: Path, key: str) -> bool:
    """Whether ``root`` holds work of another configuration worth keeping: a finished run or a checkpoint
    to resume. A folder left by a run that failed before its first epoch does not block a corrected one."""
    if not (root / "config.json").exists() or read_json(root / "config.json").get("key") == key:
        return False
    return (root / "run.meta.json").exists() or (root / "checkpoint.pt").exists()


def soft_targets(labels: np.ndarray, class_map: np.ndarray, targets: np.ndarray | None, n_out: int,
                 smoothing: float) -> torch.Tensor:
    """(N, n_out) training targets: the given soft targets, or one-hot labels with label smoothing
    (rows of unknown/unlabelled images stay zero)."""
    if targets is not None:
        return torch.from_numpy(targets)
    one_hot = torch.zeros(len(labels), n_out)
    mapped, ok = map_labels(labels, class_map)
    one_hot[torch.from_numpy(np.flatnonzero(ok)), torch.from_numpy(mapped[ok])] = 1.0
    if smoothing > 0:
        one_hot = one_hot * (1 - smoothing) + smoothing / n_out
    return one_hot


def augment_batch(x: torch.Tensor, t: torch.Tensor, rec: Recipe, gen: torch.Generator, mean: torch.Tensor,
                  std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's augmentations of a uint8 batch -> (normalised float batch, mixed soft targets)."""
    if rec.crop_pad:
        x = random_crop(x, rec.crop_pad, gen)
    if rec.flip:
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


