"""``train()``: the one entry point of the training stage (``clearset train``).

It builds the inputs (``inputs.training_rows``: rows, weights, targets, each option checked against the
others), the configuration (``inputs.run_config``; its hash is the cache key), and then either answers from
the cache, fits the linear probe on stored features (``linear.py``), or loads the pixels and fits a network
(``loop.Fit``); the run is written by ``artifacts.runs.write_run``:
``WS/runs/<name>/`` with model.safetensors, config.json, metrics.jsonl (one line per epoch),
predictions.npz (evaluation-split logits), checkpoint.pt while unfinished (resume state), and a sidecar.
channels_last, and bf16 autocast where the hardware multiplies bf16 natively (``precision="auto"``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..artifacts.runs import Run, load_run, map_labels, run_step, write_run
from ..data.loading import load_images, load_split, split_rows
from ..device import choose_precision, resolve_device
from ..errors import ParameterError, WorkspaceError, check_seed, param
from ..io import fingerprint_path, read_json, write_json, write_npz
from ..models.inference import predict
from ..ops.linear import accuracy
from ..workspace import Step, Workspace
from .discriminator import OutputDiscriminator
from .inputs import TrainingRows, run_config, soft_targets, training_rows
from .loop import Fit, FitData, FitOptions, Sampler
from .recipes import DEFAULT_RECIPE, Recipe, get_recipe
from .teachers import load_teacher

log = logging.getLogger("clearset")


def train(workspace: str | Path | Workspace, *, recipe: str | Recipe = DEFAULT_RECIPE, model: str | None = None,
          epochs: int | None = None, seed: int = 0, subset: str | Path | None = None,
          targets: np.ndarray | None = None, targets_name: str | None = None, sampler: Sampler | None = None,
          sampler_name: str | None = None, name: str | None = None, train_split: str = "train",
          eval_split: str | None = "test", precision: str = "auto", force: bool = False,
          overrides: dict | None = None, known_classes: list[int] | None = None, tract: float | None = None,
          teachers: list[str | Path] | None = None, kd_temperature: float = 1.0, kd_hard_weight: float = 0.0,
          device: str = "auto", eval_every: int = 0, reinforced: str | Path | None = None,
          features: str | None = None, resume: bool = True, compile: str = "auto",
          distilled: str | Path | None = None, kd_discriminator: bool = False,
          record_presentations: bool = False, init: str | None = None) -> Run:
    """Train ``recipe`` on the workspace's ``train_split`` and write ``WS/runs/<name>/``.

    subset: a file of manifest ``index`` (+ ``weight``) rows to train on (what ``clearset curate`` writes).
    targets: (N_train, K) soft targets for the training rows in manifest order (``targets_name`` names
      them in the config, so a different source of targets is a different run).
    sampler: per-epoch choice of training rows (e.g. RS2); ``sampler_name`` identifies it for caching.
    known_classes: train only on these classes (open-set evaluation); the model has len(known) outputs.
    tract: TrAct's lambda (e.g. 0.1) for the first convolution; None = plain gradients.
    teachers: runs whose mean softmax (at ``kd_temperature``) on the same augmented batch is the target
      (plain knowledge distillation: soft targets as in MEAL V2, without its discriminator or its pretrained
      student); ``kd_hard_weight`` mixes in the hard labels (0 = none).
    kd_discriminator: with ``teachers``, add MEAL V2's discriminator of student vs teacher logits (its loss
      minimised jointly with the student's, train/discriminator.py). MEAL V2 as published = this, several
      teachers, ``kd_hard_weight`` 0 and the ``cifar-meal-v2`` recipe (pretrained student, its optimiser).
    device: auto (CUDA when visible), cpu, cuda[:N]. eval_every: also evaluate every N epochs (0 = only at
      the end), recording ``eval_acc`` per epoch (time-to-accuracy).
    reinforced: a ``clearset reinforce`` folder: replay its stored augmentations with their stored teacher
      targets (p 0.99; else the original image, one-hot) instead of the recipe's augmentations.
    features: for the ``linear-probe`` recipe, which stored embedding (backbone@size; default the latest).
    compile: torch.compile the model for training: "on", "off", or "auto" (on for CUDA, off on CPU, where
      compilation costs more than it saves on these small nets: bench/train/compile.py).
    distilled: a ``clearset distill`` set (.npz): train on its synthetic images and labels alone (kept in
      float, unclipped, normalised as distilled), evaluate on ``eval_split`` as usual.
    init: ``ws:NAME``, a ``clearset pretrain`` of this workspace with the recipe's model: the network starts
      from its pre-trained trunk (the classifier is new).
    record_presentations: also write ``presentations.npz`` in the run: ``index`` (manifest index of each
      training image) and ``correct`` (epochs, N) int8, whether each image was classified correctly when
      presented in its augmented minibatch (-1: not presented that epoch), for forgetting events.
    A finished run with the same configuration is a cache hit; an unfinished one resumes where it stopped
    (``resume=False`` discards its checkpoint and starts at epoch 1); ``force`` starts over in every case.
    """
    ws = Workspace.of(workspace)
    ws.require_manifest()
    check_seed(seed)
    dev = resolve_device(device)
    choice = choose_precision(precision, dev)
    if eval_every < 0:
        raise ParameterError(f"{param('eval_every')} must be 0 (only at the end) or a positive number of epochs")
    if compile not in ("auto", "on", "off"):
        raise ParameterError(f"{param('compile')} must be auto, on or off")
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    rec = rec.with_overrides(model=model, epochs=epochs, **(overrides or {}))
    labels, train_index = split_rows(ws, train_split)
    if eval_split is not None:
        split_rows(ws, eval_split)  # a missing evaluation split fails now, not after the training
    rows = training_rows(ws, rec, ws.classes(), labels, train_index, train_split=train_split, subset=subset,
                         distilled=distilled, targets=targets, targets_name=targets_name, sampler=sampler,
                         sampler_name=sampler_name, known_classes=known_classes, teachers=teachers,
                         kd_temperature=kd_temperature, kd_hard_weight=kd_hard_weight, reinforced=reinforced)
    if precision == "auto" and (probe := _precision_probe(rec, rows, dev)) is not None:
        choice = choose_precision(precision, dev, probe)
    config = run_config(ws, rec, rows, seed=seed, train_split=train_split, eval_split=eval_split,
                        precision=choice.precision, device_type=dev.type, subset=subset, tract=tract,
                        kd_temperature=kd_temperature, kd_hard_weight=kd_hard_weight)
    if kd_discriminator:
        if not rows.teacher_runs:
            raise ParameterError(f"{param('kd_discriminator')} tells the student's outputs from the teachers': "
                                 f"pass {param('teachers')}")
        config["kd"]["discriminator"] = "meal-v2"  # only present when used: other runs keep their keys
    if init is not None:
        from ..artifacts.pretrained import pretrained_config

        init_root, init_config = pretrained_config(ws, init)
        if init_config["model"] != rec.model:
            raise ParameterError(f"{param('init')} {init}: it pre-trained {init_config['model']}, the recipe trains "
                                 f"{rec.model}; pre-train that model or pass --model {init_config['model']}")
        config["init"] = {"pretrained": init, "model": fingerprint_path(init_root / "model.safetensors")}
    if record_presentations:
        if rec.model == "linear":
            raise ParameterError("record_presentations= records a network's minibatches; the linear-probe "
                                 "recipe has none")
        config["record"] = "presentations"  # only present when used: other runs keep their keys
    use_compile = compile == "on" or (compile == "auto" and dev.type == "cuda")
    if use_compile:
        config["compile"] = True
    if rec.model == "linear":  # the linear-probe recipe: stored features, no pixels
        return _linear_probe(ws, rec, rows, config, train_index, eval_split=eval_split, tract=tract,
                             features=features, force=force, name=name, seed=seed)
    step, root = run_step(config, lambda k: ws.named("runs", name or f"{rec.name}-{rec.model}-s{seed}-{k[:8]}"))
    key = config["key"] = step.key
    if not force and step.cached():
        log.info("train: cached %s", root)
        return load_run(root)
    if _holds_other_run(root, key) and name is not None and not force:
        raise WorkspaceError(f"{root} holds a different run; choose another {param('name')} or pass {param('force')}")
    return _fit_network(ws, rec, rows, config, step, train_index, train_split=train_split, eval_split=eval_split,
                        dev=dev, choice=choice, compile_=use_compile, seed=seed, tract=tract, force=force,
                        resume=resume, eval_every=eval_every, kd_temperature=kd_temperature,
                        kd_hard_weight=kd_hard_weight, kd_discriminator=kd_discriminator)


PRESENTATIONS = "presentations.npz"
PROBE_MIN_IMAGES = 20_000  # a run that sees this many images (a minute or more on a CPU) measures its own network


def _precision_probe(rec: Recipe, rows: TrainingRows, dev: torch.device):
    """For a long CPU run, (name, step) timing a forward and backward pass of the recipe's network at its
    batch size (at most 256) and image size, for ``choose_precision``: bf16's speed-up depends on the
    network (bench/train/cpu_choices.py), and the few seconds of measuring are cached per machine."""
    if dev.type != "cpu" or rec.model == "linear" or len(rows.positions) * rec.epochs < PROBE_MIN_IMAGES:
        return None
    batch, size = min(rec.batch_size, 256), rec.image_size
    made: dict = {}

    def step(bf16: bool) -> float:
        if not made:
            made["net"] = _network(rec, len(rows.classes), None).to(memory_format=torch.channels_last).train()
            made["x"] = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(
                memory_format=torch.channels_last)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = made["net"](made["x"]).float().logsumexp(1).mean()
        loss.backward()
        return time.perf_counter() - t0

    return f"{rec.model}@{size}px/b{batch}", step


def _fit_network(ws: Workspace, rec: Recipe, rows: TrainingRows, config: dict, step: Step, train_index: np.ndarray,
                 *, train_split: str, eval_split: str | None, dev: torch.device, choice, compile_: bool, seed: int,
                 tract: float | None, force: bool, resume: bool, eval_every: int, kd_temperature: float,
                 kd_hard_weight: float, kd_discriminator: bool = False) -> Run:
    """Fit a network on the pixels (resuming a checkpoint of the same key), predict the evaluation split,
    write the run."""
    key, root = config["key"], step.sidecar.parent
    torch.manual_seed(seed)
    net = _network(rec, len(rows.classes), tract)  # an unknown model fails before any write
    if config.get("init"):
        from ..artifacts.pretrained import load_trunk, pretrained_root

        fresh = load_trunk(net, pretrained_root(ws, config["init"]["pretrained"][3:]))
        log.info("train: trunk from %s (new: %s)", config["init"]["pretrained"], ", ".join(fresh) or "nothing")
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "config.json", config)
    net = net.to(dev, memory_format=torch.channels_last)  # type: ignore[call-overload]
    autocast = choice.precision == "bf16"
    opts = FitOptions(seed=seed, autocast=autocast, sampler=rows.sampler, kd_temperature=kd_temperature,
                      kd_hard_weight=kd_hard_weight, eval_every=eval_every,
                      record_presentations=config.get("record") == "presentations",
                      teachers=[load_teacher(t, dev) for t in rows.teacher_runs],
                      discriminator=OutputDiscriminator(len(rows.classes)).to(dev) if kd_discriminator else None)
    if rows.dist is None:
        _say_how_images_fit(ws, train_index, rec)
    d = _fit_data(ws, rec, rows, train_index, train_split, dev, getattr(net, "input_normalisation", None))
    if hasattr(net, "init_from_data"):  # e.g. airbench's whitening filters, from the first 5,000 training rows
        first = d.positions[:5000].to(dev)
        net.init_from_data(((d.images[first].float() / 255.0 - d.mean) / d.std))
    ckpt = root / "checkpoint.pt"
    fit = Fit(net, rec, d, opts, checkpoint=ckpt, key=key, forward=torch.compile(net) if compile_ else None)
    if ckpt.exists() and not force and not resume:
        log.info("train: discarding the checkpoint of %s (--no-resume)", root.name)
    if not force and resume:
        fit.resume()
    config["normalisation"] = {"mean": d.mean.flatten().tolist(), "std": d.std.flatten().tolist()}
    ev = None
    if eval_split is not None:
        ev_images, ev_labels, ev_index = load_split(ws, eval_split, rec.image_size)
        ev_mapped, ev_known = map_labels(ev_labels, rows.class_map)
        ev = (ev_images.to(dev), ev_mapped, ev_index, ev_known)
        opts.evaluate = lambda m: accuracy(predict(m, ev[0], d.mean, d.std, rec.eval_batch_size, autocast, rec.tta),
                                           ev[1])
    history = fit.run()
    preds: dict[str, np.ndarray] = {}
    if ev is not None:
        logits = predict(net, ev[0], d.mean, d.std, rec.eval_batch_size, autocast, rec.tta)
        preds = {"index": ev[2], "labels": ev[1], "logits": logits}
        if rows.known_classes is not None:  # for open-set evaluation: which test images show a trained class
            preds["known"] = ev[3]
        history[-1]["eval_acc"] = accuracy(logits, ev[1])
        log.info("%s accuracy %.4f", eval_split, history[-1]["eval_acc"])
    if fit.presentations is not None:
        write_npz(root / PRESENTATIONS, index=train_index, correct=fit.presentations.numpy())
    run = write_run(root, net.state_dict(), history, preds, config, step, **choice.record(), epochs=rec.epochs)
    ckpt.unlink(missing_ok=True)
    return run


def _network(rec: Recipe, n_out: int, tract: float | None) -> torch.nn.Module:
    from ..models.cifar import create_model

    net = create_model(rec.model, n_out, image_size=rec.image_size)
    if tract is not None:
        from ..models.tract import apply_tract

        apply_tract(net, tract)
    return net


def _fit_data(ws: Workspace, rec: Recipe, rows: TrainingRows, train_index: np.ndarray, train_split: str,
              dev: torch.device, fixed_normalisation: tuple | None = None) -> FitData:
    """The training tensors: pixels (or the distilled set), normalisation of the rows trained on (or the one
    a pretrained network declares), targets."""
    dist = rows.dist
    if dist is not None:  # float pixels x 255, unclipped: the augmentations then normalise them back exactly
        mean = torch.from_numpy(dist.mean).float().view(1, 3, 1, 1)
        std = torch.from_numpy(dist.std).float().view(1, 3, 1, 1)
        images = (torch.from_numpy(dist.images) * std + mean) * 255.0
    else:
        images = load_images(ws, train_index, rec.image_size, desc=f"load {train_split}")
        seen_pixels = images[torch.from_numpy(rows.positions)].float()  # one gather serves both statistics
        mean = seen_pixels.mean((0, 2, 3)).view(1, 3, 1, 1) / 255.0
        std = seen_pixels.std((0, 2, 3)).view(1, 3, 1, 1) / 255.0
        del seen_pixels
    if fixed_normalisation is not None:  # the pixels (float x 255 for a distilled set) as the weights expect them
        mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in fixed_normalisation)
    one_hot = soft_targets(rows.labels, rows.class_map, rows.targets, len(rows.classes), rec.label_smoothing)
    return FitData(images=images.to(dev), targets=one_hot.to(dev), mean=mean.to(dev), std=std.to(dev),
                   positions=torch.from_numpy(rows.positions), weights=torch.from_numpy(rows.weights).to(dev),
                   strong=torch.from_numpy(rows.strong) if rows.strong is not None else None,
                   rein=rows.rein, rein_rows=rows.rein_rows)


def _linear_probe(ws: Workspace, rec: Recipe, rows: TrainingRows, config: dict, train_index: np.ndarray, *,
                  eval_split: str | None, tract: float | None, features: str | None, force: bool,
                  name: str | None, seed: int) -> Run:
    from .linear import train_linear_probe

    if tract is not None or rows.teacher_runs or rows.rein is not None or rows.sampler is not None:
        raise ParameterError(f"the linear-probe recipe trains on stored features: {param('tract')}, {param('teachers')}, "
                             f"{param('reinforced')} and samplers do not apply")
    ev_rows = None
    if eval_split is not None:
        ev_labels, ev_index = split_rows(ws, eval_split)
        mapped, known = map_labels(ev_labels, rows.class_map)
        # open-set evaluation needs to know which test images show a trained class (as the network path)
        ev_rows = (mapped, ev_index, known if rows.known_classes is not None else None)
    n_out = len(rows.classes)
    return train_linear_probe(ws, config=config, positions=rows.positions, weights=rows.weights,
                              train_index=train_index, labels_eval=ev_rows, features=features, force=force,
                              targets=soft_targets(rows.labels, rows.class_map, rows.targets, n_out,
                                                   rec.label_smoothing),
                              root_for=lambda k: ws.named("runs", name or f"{rec.name}-s{seed}-{k[:8]}"))


def _say_how_images_fit(ws: Workspace, train_index: np.ndarray, rec: Recipe) -> None:
    """One line when the training images are not the recipe's size: they are resized (shorter side to
    ``image_size``, then centre-cropped), so a 28-px grey digit trains a 32-px RGB recipe as it is."""
    m = ws.manifest(["index", "height", "width"]).set_index("index").loc[train_index]
    sizes = m.groupby(["height", "width"]).size().sort_values(ascending=False)
    if len(sizes) == 1 and sizes.index[0] == (rec.image_size, rec.image_size):
        return
    h, w = sizes.index[0]
    more = f" ({len(sizes)} sizes in all)" if len(sizes) > 1 else ""
    log.info("train: the training images are %dx%d%s; recipe %s trains at %d px: each is resized (shorter side) "
             "and centre-cropped, grey images repeated to RGB", h, w, more, rec.name, rec.image_size)


def _holds_other_run(root: Path, key: str) -> bool:
    """Whether ``root`` holds work of another configuration worth keeping: a finished run or a checkpoint
    to resume. A folder left by a run that failed before its first epoch does not block a corrected one."""
    if not (root / "config.json").exists() or read_json(root / "config.json").get("key") == key:
        return False
    return (root / "run.meta.json").exists() or (root / "checkpoint.pt").exists()
