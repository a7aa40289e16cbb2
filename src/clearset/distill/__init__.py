"""Dataset distillation (``clearset distill WS --method dm --ipc 10``): a few synthetic images per class
that train a network almost as well as the whole training set.

Methods are registered per-class matching losses (distill/base.py): ``dm`` (distribution matching),
``datadam`` (attention matching), ``random`` (real images, no matching: the baseline); ``+fyi`` wraps any
matcher with the flip trick (``dm+fyi``). One shared loop (matching.py) and one evaluation protocol
(evaluate.py) serve them all, so their numbers are comparable.

Writes ``WS/distilled/<name>.npz`` (images in normalised pixel space, labels, normalisation, classes) with a
sidecar holding the configuration and loop statistics; while running, ``<name>.partial.pt`` every
``save_every`` iterations (and on Ctrl-C), from which the same command resumes. Evaluation results go
to ``<name>.eval.json``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..artifacts.distilled import Distilled, load_distilled, save_distilled  # noqa: F401  (part of the API)
from ..device import resolve_device
from ..errors import ParameterError, WorkspaceError, check_seed, param
from ..registry import import_submodules
from ..workspace import Workspace, atomic_path, read_json, write_json
from . import dsa
from .base import DISTILLERS, Distiller, parse_method, register_distiller
from .evaluate import EvalConfig, evaluate_synthetic
from .matching import MatchConfig, flip_batch, match

import_submodules(__name__)  # every file here registers its entries: adding one is a file and a decorator

log = logging.getLogger("clearset")
__all__ = ["DISTILLERS", "Distilled", "Distiller", "EvalConfig", "MatchConfig", "distill", "evaluate_distilled",
           "flip_batch", "load_distilled", "register_distiller", "save_distilled"]
DEFAULT_ITERATIONS = 1000


PROTOCOL_SIZE = 32  # the ConvNet protocol of the distillation papers (CIFAR-size images)
MAX_NATIVE_SIZE = 64  # images of one size up to this are distilled at their own size (MNIST 28, CIFAR 32)


def default_image_size(ws: Workspace, split: str) -> int:
    """The split's own side when all its images share one size of at most 64 px; otherwise (photos of
    mixed or large sizes, where matching at full size costs minutes per iteration) 32 px, said in the log."""
    m = ws.manifest(["split", "height", "width"])
    rows = m[m["split"] == split]
    if rows.empty:
        raise ParameterError(f"{ws.root}: no images in split {split!r} to distil")
    sides = np.maximum(rows["height"].to_numpy(), rows["width"].to_numpy())
    if sides.min() == sides.max() and sides.max() <= MAX_NATIVE_SIZE:
        return int(sides.max())
    log.info("distill: the %s images are %s (median side %d px); synthesising at %d px, the ConvNet protocol "
             "(--image-size to change)", split, "of mixed sizes" if sides.min() != sides.max() else "large",
             int(np.median(sides)), PROTOCOL_SIZE)
    return PROTOCOL_SIZE


def normalised_split(ws: Workspace, split: str, size: int, mean=None, std=None):
    """(float images normalised per channel, labels, mean, std) of the labelled rows of ``split``."""
    from ..data.loading import load_images, split_rows

    labels, index = split_rows(ws, split)
    keep = labels >= 0
    labels, index = labels[keep], index[keep]
    if len(labels) == 0:
        raise ParameterError(f"{ws.root}: no labelled images in split {split!r}")
    x = load_images(ws, index, size, desc=f"load {split}").float().div_(255)
    if mean is None:
        mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3)).clamp_min(1e-6)
    mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
    x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return x, labels, mean.numpy(), std.numpy()


def _options_of(distiller: Distiller, options: dict) -> dict:
    if distiller.loss is None:
        if options:
            raise ParameterError(f"method {distiller.name!r} takes no options")
        return {}
    allowed = [p for p in inspect.signature(distiller.loss).parameters if p not in ("real", "syn")]
    unknown = set(options) - set(allowed)
    if unknown:
        raise ParameterError(f"method {distiller.name!r} has no option(s) {sorted(unknown)}; it takes "
                             f"{allowed or 'none'} (and the loop settings: {param('power')}, {param('real_batch')}, {param('lr')}, ...)")
    return dict(options)


def distill(workspace: str | Path | Workspace, *, method: str = "dm", ipc: int = 10,
            iterations: int | None = None, seed: int = 0, init: str = "real", lr: float = 1.0,
            real_batch: int = 64, strategy: str = dsa.DEFAULT_STRATEGY, image_size: int | None = None,
            depth: int = 3, width: int = 128, norm: str = "instance", power: float = 1.0, batching: str = "class",
            split: str = "train",
            name: str | None = None, out: str | Path | None = None, save_every: int = 100, force: bool = False,
            device: str = "auto", **options) -> Distilled:
    """Distil the workspace's ``split`` into ``ipc`` synthetic images per class with ``method`` (see the
    module docstring); a finished run with the same configuration is a cache hit, an interrupted one
    resumes from its last checkpoint. ``batching``: "class" (one forward per class) or "all" (the reference
    code's all-class batches; with ``norm="batch"`` the DataDAM reference protocol)."""

    ws = Workspace.of(workspace)
    ws.require_manifest()
    distiller, fyi = parse_method(method)
    options = _options_of(distiller, options)
    iterations = DEFAULT_ITERATIONS if iterations is None else iterations
    if iterations < 0 or real_batch < 1 or lr <= 0 or save_every < 1:
        raise ParameterError(f"{param('iterations')} must be >= 0, {param('real_batch')} >= 1, {param('lr')} > 0 (and save_every >= 1)")
    if depth < 1 or width < 1:
        raise ParameterError(f"{param('depth')} {depth} and {param('width')} {width}: a ConvNet needs at least one block and channel")
    check_seed(seed)
    dsa.parse_strategy(strategy)
    from ..models.cifar import make_norm

    make_norm(norm, 1)  # an unknown --norm fails before any work
    from .matching import BATCHINGS

    if batching not in BATCHINGS:
        raise ParameterError(f"{param('batching')} must be one of {', '.join(BATCHINGS)}, got {batching!r}")
    size = image_size or default_image_size(ws, split)
    from .matching import check_network_fits

    check_network_fits(size, depth)
    cfg = MatchConfig(ipc=ipc, iterations=0 if distiller.loss is None else iterations, seed=seed, fyi=fyi, init=init,
                      lr=lr, real_batch=real_batch, strategy=strategy, depth=depth, width=width, norm=norm, power=power,
                      batching=batching)
    params = {"method": method, "image_size": size, "split": split, **asdict(cfg), "options": options}
    if batching == "class":  # the default keeps the keys sets were cached under before the option existed
        params.pop("batching")
    step = ws.step("distill", params=params, inputs={"manifest": ws.fingerprint(ws.manifest_path)}, outputs=[],
                   sidecar=Path())
    key = step.key
    name = name or f"{method}-ipc{ipc}-s{seed}-{key[:8]}"
    path = ws.named("distilled", f"{name}.npz")
    sidecar = ws.sidecar_of(path)
    step.sidecar, step.outputs = sidecar, [path]
    existing = read_json(sidecar).get("key") if path.exists() and sidecar.exists() else None
    if not force and step.cached():
        log.info("distill: cached %s", path)
        result = load_distilled(path)
        if out is not None:
            save_distilled(result, out)
        return result
    if not force and existing not in (None, key):
        raise WorkspaceError(f"{path} holds a different distillation; choose another {param('name')} or pass {param('force')}")
    real, labels, mean, std = normalised_split(ws, split, size)
    partial = ws.dir("distilled") / f"{name}.partial.pt"
    state = None
    if partial.exists() and not force:
        saved = torch.load(partial, map_location="cpu", weights_only=False)
        if saved.get("key") == key:
            state = saved
            log.info("distill: resuming %s at iteration %d", name, state["iteration"] + 1)

    def checkpoint(snap: dict) -> None:
        with atomic_path(partial) as tmp:
            torch.save({"key": key, **snap}, tmp)

    dev = resolve_device(device)
    images, syn_labels, stats = match(distiller, real, labels, cfg, options=options, state=state,
                                      on_checkpoint=checkpoint, save_every=save_every, device=dev)
    result = Distilled(images.numpy().astype(np.float32), syn_labels.astype(np.int64), mean, std, ws.classes(),
                       {**params, "key": key, "workspace": str(ws.root)}, path)
    save_distilled(result, path)
    grads = stats.get("gradient_norms") or []
    if grads:  # how much of the pixels' update each loss term drives (DataDAM: attention vs MMD)
        names = [k for k in grads[0] if k != "iteration"]
        stats["gradient_norm_mean"] = {k: float(np.mean([g[k] for g in grads])) for k in names}
    step.finish(name=name, iterations_per_second=stats.get("iterations_per_second"), seconds=stats["seconds"],
                gradient_norms=grads, gradient_norm_mean=stats.get("gradient_norm_mean"),
                loss_first=stats["losses"][0] if stats["losses"] else None,
                loss_last=stats["losses"][-1] if stats["losses"] else None, losses_every_10=stats["losses"][::10])
    if partial.exists():
        partial.unlink()
    if out is not None:
        save_distilled(result, out)
    log.info("distill: %s -> %s", name, path)
    return result


def evaluate_distilled(workspace: str | Path | Workspace, distilled: str | Path | Distilled, *, seeds: int = 3,
                       epochs: int = 300, split: str = "test", force: bool = False, device: str = "auto",
                       first_seed: int = 0, **protocol) -> dict:
    """Train ``seeds`` fresh ConvNets on the distilled set and test them on ``split`` (evaluate.py);
    the result is written beside the set as ``<name>.eval.json`` (cached)."""

    ws = Workspace.of(workspace)
    d = distilled if isinstance(distilled, Distilled) else load_distilled(distilled)
    if d.classes != ws.classes():
        raise ParameterError(f"{d.path}: the distilled set has other classes than {ws.root}")
    unknown = set(protocol) - set(EvalConfig.__dataclass_fields__)
    if unknown:
        raise ParameterError(f"unknown evaluation setting(s) {sorted(unknown)}")
    cfg = EvalConfig(epochs=epochs, **{"depth": d.config.get("depth", 3), "width": d.config.get("width", 128),
                                       "norm": d.config.get("norm", "instance"), **protocol})
    if seeds < 1 or epochs < 1:
        raise ParameterError(f"{param('seeds')} and {param('epochs')} must be at least 1")
    check_seed(first_seed)
    params = {"protocol": cfg.as_dict(), "seeds": seeds, "split": split}
    if first_seed:  # the default keeps the keys evaluations were cached under before the option existed
        params["first_seed"] = first_seed
    step = ws.step("distill.eval", params=params,
                   inputs={"set": d.key, "manifest": ws.fingerprint(ws.manifest_path)}, outputs=[], sidecar=Path())
    key = step.key
    step.sidecar = target = (d.path.with_name(d.path.name[: -len(".npz")] + ".eval.json") if d.path is not None
                             else ws.dir("distilled") / f"eval-{key[:8]}.json")
    if not force and step.cached():  # the result is its own record
        return read_json(target)
    # finished seeds are kept in a partial file, so an interrupted evaluation resumes at the next seed
    partial = target.with_name(target.name[: -len(".json")] + ".partial.json")
    done = read_json(partial) if not force and partial.exists() else {}
    done = (done["test_acc"], done["seconds"]) if done.get("key") == key else ((), 0.0)
    test_x, test_y, _, _ = normalised_split(ws, split, d.images.shape[-1], d.mean, d.std)
    res = evaluate_synthetic(torch.from_numpy(d.images), torch.from_numpy(d.labels), test_x, torch.from_numpy(test_y),
                             len(d.classes), cfg, seeds, resolve_device(device), done=done,
                             on_seed=lambda accs, secs: write_json(partial, {"key": key, "test_acc": accs,
                                                                             "seconds": round(secs, 2)}),
                             first_seed=first_seed)
    res.update(split=split, images=int(len(d.labels)), ipc=d.ipc, method=d.config.get("method"))
    res = {**step.finish(**res), **res}
    partial.unlink(missing_ok=True)
    return res
