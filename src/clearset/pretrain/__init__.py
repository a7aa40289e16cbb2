"""``clearset pretrain WS --method simclr``: a backbone learned on the workspace's own images, no labels.

Methods (methods.md, SimCLRv2 card):
- ``simclr``: NT-Xent (temperature ``temperature``, CIFAR recipe 0.5) over two views of each image
  (pretrain/views.py), a 2-layer projection head, LARS, linear warm-up then cosine decay; the embedding is
  the trunk's pooled output.
- ``simclrv2``: the same with SimCLRv2's 3-layer head (128 out); the embedding is the output of the head's
  first layer (SimCLRv2 fine-tunes from there, ``ft_proj_selector=1``).
- ``gsimclr``: ``simclr`` with G-SimCLR's batches (pretrain/gsimclr.py): one image per pseudo-class of a
  denoising autoencoder's k-means with K = the batch size, in the same order every epoch. The G-SimCLR
  notebook trains with temperature 0.1, jitter 0.2 and batch 64 (pass them to follow it).
Defaults follow the SimCLRv2 CIFAR-10 single-GPU recipe where a CPU allows (lr 1.0 at batch 512 scaled
linearly with the batch, weight decay 1e-4, jitter 0.5, no blur) with far fewer epochs; batch norm is
per batch (one device: there is no cross-device BN to need).

The training never reads labels. If the split has labelled images of at least two classes, a kNN
monitor (20 neighbours, cosine, on un-augmented images: 1,000 held-out queries against a bank of 5,000
other images) reports accuracy after every epoch; only the monitor reads those labels.

Writes ``WS/pretrained/<name>/`` (artifacts/pretrained.py), checkpointed every epoch and on Ctrl-C (the
same command resumes; every epoch's random draws come from (seed, epoch), so a resumed run ends with the
weights of one that never stopped); a finished one with the same settings is a cache hit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from .. import progress
from ..artifacts.pretrained import SIDECAR, build_encoder, pretrained_root, save_pretrained
from ..data.loading import load_images
from ..device import resolve_device
from ..errors import ParameterError, WorkspaceError, check_seed, param
from ..io import atomic_path
from ..models.encoder import Encoder, pooled, trunk_width
from ..registry import Registry
from ..workspace import Workspace
from .simclr import LARS, nt_xent, optimise
from .views import CROP_MIN, view

log = logging.getLogger("clearset")
# method -> (projection head layers, head layers the embedding keeps, batch order)
METHODS: Registry = Registry("pre-training method", listing="pretrainers")
METHODS.register("simclr", description="SimCLR: NT-Xent, 2-layer projection head, embed the trunk")(
    (2, 0, "random"))
METHODS.register("simclrv2", description="SimCLRv2: NT-Xent, 3-layer projection head, embed its first layer")(
    (3, 1, "random"))
METHODS.register("gsimclr", description="G-SimCLR: simclr with batches of one image per pseudo-class (denoising "
                 "autoencoder + k-means with K = batch size), the same order every epoch",
                 differs="the head, optimiser and augmentations are simclr's (LARS, 2 layers), not the notebook's "
                         "(SGD with cosine restarts, 256-128-50), so G-SimCLR vs simclr changes the batching only")(
    (2, 0, "pseudo-class"))
METHODS.register("distill", description="a small student trained on unlabelled images to reproduce a "
                 "pre-trained teacher's embedding (--teacher ws:NAME): the fast embedder to run on many images",
                 differs="SimCLRv2 distils the fine-tuned classifier's softmax at temperature 1; this matches the "
                         "teacher's embedding (cosine) through a 1-layer head, so it needs no labels at all")(
    (1, 1, "distill"))
METHODS.register("fractal", description="fractal pre-training: multi-instance fractal images (1-5 per image), "
                 "BCE with per-image pos_weight; no real image is read")((0, 0, "fractal-multi"))
METHODS.register("fractal-single", description="fractal pre-training with one fractal per image and "
                 "cross-entropy (the card's single-instance arm)")((0, 0, "fractal-single"))
MIN_IMAGES = 16
MIN_SIZE = 16
KNN_K, KNN_QUERIES, KNN_BANK = 20, 1000, 5000


def pretrain(workspace: str | Path | Workspace, *, method: str = "simclr", model: str = "resnet18_cifar",
             image_size: int | None = None, epochs: int = 20, batch_size: int = 256, lr: float | None = None,
             temperature: float = 0.5, weight_decay: float = 1e-4, jitter: float = 0.5, warmup_epochs: float = 1.0,
             split: str = "train", seed: int = 0, name: str | None = None, device: str = "auto",
             force: bool = False, monitor: bool = True, autoencoder_epochs: int = 20, fractal_classes: int = 100,
             fractal_per_class: int = 100, teacher: str | None = None, crop_min: float = CROP_MIN,
             flip: bool = True) -> Path:
    """Pre-train ``model`` (a clearset.models name) on the ``split`` images of the workspace with ``method``;
    returns ``WS/pretrained/<name>``. lr: default 1.0 · batch / 512 (the CIFAR recipe, scaled linearly).
    autoencoder_epochs: gsimclr's autoencoder trains at most this many epochs (early stopping ends it sooner).
    fractal_classes, fractal_per_class: the fractal methods' data (lr default 0.1, image size 32).
    teacher: for ``distill``, ``ws:NAME`` of a finished pre-training whose embedding the student learns.
    crop_min: the smallest random crop, as a share of the image area (SimCLR 0.08); flip: horizontal flips
    in the views (off for data whose mirror image means something else, such as digits or text)."""
    ws = Workspace.of(workspace)
    ws.require_manifest()
    check_seed(seed)
    head_layers, embed_from, batching = METHODS.get(method)
    if batching.startswith("fractal"):
        return _fractal(ws, method=method, model=model, image_size=image_size or 32, epochs=epochs,
                        batch_size=batch_size, lr=0.1 if lr is None else lr, weight_decay=weight_decay, seed=seed,
                        name=name, device=device, force=force, classes=fractal_classes,
                        per_class=fractal_per_class, multi=batching == "fractal-multi")
    teacher_bb = None
    if batching == "distill":
        if teacher is None:
            raise ParameterError(f"the distill method learns a teacher's embedding: pass {param('teacher')} ws:NAME")
        from ..artifacts.pretrained import load_backbone

        teacher_bb = load_backbone(ws, teacher)
        image_size = image_size or teacher_bb.default_size
    elif teacher is not None:
        raise ParameterError(f"{param('teacher')} is for the distill method only")
    m = ws.manifest(["index", "split", "label", "height", "width"])
    rows = m[m["split"] == split]
    if len(rows) < MIN_IMAGES:
        raise ParameterError(f"{ws.root}: {len(rows)} images in split {split!r}; contrastive pre-training needs at "
                             f"least {MIN_IMAGES} (each batch contrasts an image with the others)")
    size = int(image_size or min(int(rows[["height", "width"]].max(axis=1).median()), 64))
    if size < MIN_SIZE:
        raise ParameterError(f"{param('image_size')} {size}: the random crops need at least {MIN_SIZE} px")
    if not 0 < crop_min <= 1:
        raise ParameterError(f"{param('crop_min')} {crop_min}: a share of the image area, in (0, 1]")
    if epochs < 1 or batch_size < 2 or temperature <= 0:
        raise ParameterError(f"{param('epochs')} >= 1, {param('batch_size')} >= 2 and {param('temperature')} > 0 needed")
    batch = min(batch_size, len(rows))
    lr = 1.0 * batch / 512 if lr is None else lr
    config = {"method": method, "model": model, "image_size": size, "epochs": epochs, "batch_size": batch, "lr": lr,
              "temperature": temperature, "weight_decay": weight_decay, "jitter": jitter,
              "warmup_epochs": warmup_epochs, "split": split, "seed": seed, "optimizer": "lars",
              "head": {"hidden": 512, "out": 128, "layers": head_layers}, "embed_from": embed_from,
              "batching": batching}
    if batching == "pseudo-class":
        config["autoencoder_epochs"] = autoencoder_epochs
    if crop_min != CROP_MIN or not flip:  # recorded only when changed: runs made before keep their cache keys
        config["views"] = {"crop_min": crop_min, "flip": flip}
    inputs = {"manifest": ws.fingerprint(ws.manifest_path)}
    if teacher_bb is not None:
        from ..io import fingerprint_path

        assert teacher is not None
        config["teacher"] = teacher
        config["head"]["out"] = teacher_bb.feature_dim
        inputs["teacher"] = fingerprint_path(pretrained_root(ws, teacher[3:]) / "model.safetensors")
    torch.manual_seed(seed)
    probe = build_encoder({**config, "trunk_width": 1})[0].trunk  # an unknown model fails before any work
    config["trunk_width"] = trunk_width(probe, size)
    config["head"]["hidden"] = max(config["trunk_width"], 128)
    step, root = _open_step(ws, config, inputs, name, force)
    if step is None:
        return root
    index = rows["index"].to_numpy(np.int64)
    images = load_images(ws, index, size, desc=f"load {split}")
    seen = images.float() / 255.0
    mean = seen.mean((0, 2, 3)).view(1, 3, 1, 1)
    std = seen.std((0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1)
    del seen
    config["normalisation"] = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    dev = resolve_device(device)
    torch.manual_seed(seed)
    encoder, head = build_encoder({**config, "embed_from": 0})
    trunk = encoder.trunk.to(dev).train()
    head = head.to(dev).train()
    params = list(trunk.parameters()) + list(head.parameters())
    opt = LARS(params, lr=lr, weight_decay=weight_decay)
    monitor_rows = _monitor_rows(rows, seed) if monitor else None
    steps_per_epoch = len(index) // batch
    total, warm = steps_per_epoch * epochs, int(warmup_epochs * steps_per_epoch)
    root.mkdir(parents=True, exist_ok=True)
    fixed = (_pseudo_class_order(root, step.key, images, batch, seed, dev, autoencoder_epochs)
             if batching == "pseudo-class" else None)
    mean_d, std_d = mean.to(dev), std.to(dev)
    zero, one = torch.zeros(1, 3, 1, 1, device=dev), torch.ones(1, 3, 1, 1, device=dev)
    teacher_net = None
    if teacher_bb is not None:
        teacher_net = teacher_bb.model.to(dev).eval().requires_grad_(False)
        t_mean, t_std = (torch.tensor(v, device=dev).view(1, 3, 1, 1) for v in (teacher_bb.mean, teacher_bb.std))

    def one_epoch(epoch: int) -> dict:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(index), generator=gen) if fixed is None else fixed
        trunk.train()
        head.train()
        losses: list[float] = []
        bar = progress.bar(total=steps_per_epoch, desc=f"pretrain {epoch + 1}/{epochs}", unit="batch")
        try:
            for b in range(steps_per_epoch):
                s = epoch * steps_per_epoch + b
                factor = ((s + 1) / max(1, warm) if s < warm
                          else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
                for group in opt.param_groups:
                    group["lr"] = lr * factor
                x = images[order[b * batch : (b + 1) * batch]].to(dev)
                if teacher_net is not None:  # one view, seen by both in their own normalisation
                    v = view(x, size, gen, zero, one, jitter, crop_min, flip)
                    with torch.no_grad():
                        target = pooled(teacher_net, (v - t_mean) / t_std).float()
                    z = head(pooled(trunk, ((v - mean_d) / std_d).contiguous(memory_format=torch.channels_last)))
                    loss = 1 - torch.nn.functional.cosine_similarity(z.float(), target, dim=1).mean()
                else:
                    v1, v2 = (view(x, size, gen, mean_d, std_d, jitter, crop_min, flip) for _ in range(2))
                    z = head(pooled(trunk, torch.cat([v1, v2]).contiguous(memory_format=torch.channels_last)))
                    loss = nt_xent(z[: len(x)], z[len(x):], temperature)
                optimise(opt, loss, losses, bar)
        finally:
            bar.close()
        row = {"loss": float(np.mean(losses))}
        if monitor_rows is not None:  # of the embedding this method keeps (the student's: its head's output)
            embedder = Encoder(trunk, head, 0) if teacher_net is not None else trunk
            row["knn_acc"] = knn_monitor(embedder, images, rows["label"].to_numpy(), monitor_rows, mean_d, std_d,
                                         dev)
        return row

    return run_epochs(root, step, trunk, head, opt, epochs, one_epoch, config, force)


def _open_step(ws: Workspace, config: dict, inputs: dict, name: str | None, force: bool):
    """(step, folder) of this pre-training, or (None, folder) when it is a cache hit. A name the user chose
    that holds a finished pre-training of other settings is not overwritten without --force (its
    embeddings and the runs started from it would change meaning)."""
    step = ws.step("pretrain", params=json.loads(json.dumps(config)), inputs=inputs, outputs=[], sidecar=Path())
    root = pretrained_root(ws, name or f"{config['method']}-{config['model']}-s{config['seed']}-{step.key[:8]}")
    step.sidecar, step.outputs = root / SIDECAR, [root / "model.safetensors"]
    if step.cached() and not force:
        log.info("pretrain: cached %s", root)
        return None, root
    if name is not None and not force and (root / SIDECAR).exists():
        raise WorkspaceError(f"{root} holds a finished pre-training with other settings; choose another "
                             f"{param('name')} or pass {param('force')}")
    return step, root


def run_epochs(root: Path, step, trunk: torch.nn.Module, head: torch.nn.Module, opt: torch.optim.Optimizer,
               epochs: int, one_epoch, config: dict, force: bool) -> Path:
    """The epochs of a pre-training, resumed from ``root/checkpoint.pt`` when it holds this step's key and
    checkpointed after each; then the backbone written and the step finished. ``one_epoch(epoch)`` trains
    one epoch and returns its metrics (``loss`` and any monitor)."""
    ckpt = root / "checkpoint.pt"
    start, history = 0, []
    if ckpt.exists() and not force:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == step.key:
            trunk.load_state_dict(state["trunk"])
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["optimizer"])
            start, history = state["epoch"], state["history"]
            log.info("pretrain: resuming %s at epoch %d", root.name, start + 1)
    root.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        try:
            metrics = one_epoch(epoch)
        except KeyboardInterrupt:
            log.warning("pretrain: interrupted in epoch %d; the same command resumes at its start", epoch + 1)
            raise
        row = {"epoch": epoch + 1, **metrics, "seconds": round(time.perf_counter() - t0, 2)}
        history.append(row)
        log.info("pretrain epoch %d/%d: %s", epoch + 1, epochs,
                 ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        with atomic_path(ckpt) as tmp:
            torch.save({"key": step.key, "trunk": trunk.state_dict(), "head": head.state_dict(),
                        "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history}, tmp)
    save_pretrained(root, trunk, head, config, history)
    last = history[-1]
    step.finish(epochs=epochs, **{k: v for k, v in last.items() if k not in ("epoch", "seconds")},
                seconds=round(sum(r["seconds"] for r in history), 1))
    ckpt.unlink(missing_ok=True)
    return root


def _fractal(ws: Workspace, *, method: str, model: str, image_size: int, epochs: int, batch_size: int, lr: float,
             weight_decay: float, seed: int, name: str | None, device: str, force: bool, classes: int,
             per_class: int, multi: bool) -> Path:
    """Fractal pre-training (pretrain/fractal.py): the trunk learns on rendered fractals, not the workspace."""
    from ..models.cifar import create_model
    from .fractal import fractal_images, held_out_hit_rate, train_epoch

    if image_size < MIN_SIZE or classes < 2 or per_class < 2 or epochs < 1:
        raise ParameterError(f"fractal pre-training needs {param('image_size')} >= {MIN_SIZE}, at least 2 classes of "
                             f"2 images and 1 epoch")
    config = {"method": method, "model": model, "image_size": image_size, "epochs": epochs,
              "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed, "optimizer": "sgd",
              "schedule": "one-cycle", "classes": classes, "per_class": per_class, "head": None, "embed_from": 0}
    torch.manual_seed(seed)
    net = create_model(model, classes, image_size=image_size)
    config["trunk_width"] = trunk_width(net, image_size)
    step, root = _open_step(ws, config, {}, name, force)
    if step is None:
        return root
    images, targets = fractal_images(classes, per_class, image_size, seed, multi)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 5))
    held, train_rows = perm[: len(perm) // 10], perm[len(perm) // 10 :]
    seen = images.float() / 255.0
    mean, std = seen.mean((0, 2, 3)).view(1, 3, 1, 1), seen.std((0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1)
    del seen
    config["normalisation"] = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    dev = resolve_device(device)
    net = net.to(dev).to(memory_format=torch.channels_last)
    head = torch.nn.Sequential()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    batch = min(batch_size, len(train_rows))
    mean_d, std_d = mean.to(dev), std.to(dev)

    def one_epoch(epoch: int) -> dict:
        loss = train_epoch(net, opt, images, targets, train_rows, epoch=epoch, epochs=epochs, batch=batch, lr=lr,
                           seed=seed, multi=multi, mean=mean_d, std=std_d, dev=dev)
        return {"loss": loss, "held_out_hit": held_out_hit_rate(net, images, targets, held, mean_d, std_d, dev)}

    return run_epochs(root, step, net, head, opt, epochs, one_epoch, config, force)


def _pseudo_class_order(root: Path, key: str, images: torch.Tensor, batch: int, seed: int,
                        dev: torch.device, max_epochs: int) -> torch.Tensor:
    """G-SimCLR's fixed order, computed once per run (saved beside the checkpoint for a resume)."""
    from ..io import read_json, write_json, write_npz
    from .gsimclr import gsimclr_order

    path = root / "pseudo_classes.npz"
    if path.exists() and read_json(root / "pseudo_classes.json").get("key") == key:
        with np.load(path) as z:
            return torch.from_numpy(z["order"])
    order, info = gsimclr_order(images, batch, seed, dev, max_epochs)
    write_npz(path, order=order)
    write_json(root / "pseudo_classes.json", {"key": key, **info})
    return torch.from_numpy(order)


def _monitor_rows(rows, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(query positions, bank positions) among the split's labelled images, or None (fewer than two classes)."""
    labels = rows["label"].to_numpy()
    labelled = np.flatnonzero(labels >= 0)
    if len(np.unique(labels[labelled])) < 2 or len(labelled) < 2 * KNN_K:
        log.info("pretrain: no kNN monitor (it needs labelled images of at least two classes)")
        return None
    pick = np.random.default_rng(seed + 17).permutation(labelled)
    n_query = min(KNN_QUERIES, len(pick) // 4)
    return pick[:n_query], pick[n_query : n_query + KNN_BANK]


@torch.no_grad()
def knn_monitor(trunk: torch.nn.Module, images: torch.Tensor, labels: np.ndarray,
                monitor_rows: tuple[np.ndarray, np.ndarray], mean: torch.Tensor, std: torch.Tensor,
                dev: torch.device) -> float:
    """Accuracy of a similarity-weighted 20-NN vote (cosine, temperature 0.07 as in the kNN monitors of
    self-supervised training) of held-out queries against the bank, on un-augmented images."""
    was = trunk.training
    trunk.eval()

    def feats(pos: np.ndarray) -> torch.Tensor:
        out = [pooled(trunk, ((images[pos[s : s + 512]].to(dev).float() / 255.0 - mean) / std)).float()
               for s in range(0, len(pos), 512)]
        return torch.nn.functional.normalize(torch.cat(out), dim=1)

    q_pos, b_pos = monitor_rows
    q, bank = feats(q_pos), feats(b_pos)
    sims, idx = (q @ bank.T).topk(min(KNN_K, len(b_pos)), dim=1)
    bank_labels = torch.from_numpy(labels[b_pos]).to(dev)
    votes = torch.zeros(len(q), int(labels.max()) + 1, device=dev)
    votes.scatter_add_(1, bank_labels[idx], (sims / 0.07).exp())
    trunk.train(was)
    return float((votes.argmax(1).cpu().numpy() == labels[q_pos]).mean())
