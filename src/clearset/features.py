"""``clearset embed``: batched feature extraction into ``features/<backbone>@<size>.npy``.

Row i is the embedding of manifest index i. Backbones with an ImageNet head also get
``features/<backbone>@<size>.logits.npy`` (1000-way logits, used by the multi-label audit).

Speed: images are decoded and resized on worker threads while the model runs; the model runs in
``inference_mode`` with channels_last tensors and, where the hardware has native bf16 (AMX / avx512_bf16
CPUs, recent GPUs), bf16 autocast (``precision="auto"``; ``"fp32"`` turns it off). Rows are written
into a preallocated memory-mapped file and a progress file is updated after each chunk, so a killed
run resumes at the last complete chunk.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .artifacts.pretrained import is_workspace_backbone, load_backbone, pretrained_root
from .data.arrays import RowFile
from .data.images import resize_center
from .device import choose_precision, resolve_device
from .engines import Engine, using
from .engines.local import default_threads, ordered_map
from .errors import ParameterError, param
from .io import fingerprint_path
from .models.backbones import Backbone, create_backbone
from .progress import bar
from .workspace import Workspace, read_json, write_json

log = logging.getLogger("clearset")
RESIZE_POLICY = "short-side-bilinear+center-crop"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MALLOC_THRESHOLD = 512 << 20


def keep_large_allocations_in_heap() -> bool:
    """Stop glibc from mmap-ing and unmapping every activation tensor above 32 MB.

    By default each forward pass maps fresh pages for its large activations and the kernel zero-fills
    them on first touch: on CPU inference that was 30% of the time (system time) at batch 128. Raising
    the mmap threshold lets freed activations be reused. Process-wide and glibc-only; a no-op elsewhere.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * MALLOC_THRESHOLD))
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class EmbedResult:
    features: Path
    logits: Path | None
    shape: tuple[int, int]
    images_per_s: float
    precision: str
    cached: bool

    def load(self, mmap: bool = True) -> np.ndarray:
        return np.load(self.features, mmap_mode="r" if mmap else None)


def embed(workspace: str | Path | Workspace, *, backbone: str = "efficientnet_lite0",
          image_size: int | None = None, batch_size: int = 128, threads: int | None = None,
          precision: str = "auto", dtype: str = "float32", chunk_size: int = 4096,
          device: str | None = None, engine: str | Engine | None = None, force: bool = False) -> EmbedResult:
    """Embed every image of the workspace with ``backbone`` at ``image_size`` x ``image_size``.

    Args:
        backbone: ``efficientnet_lite0|1|2`` (ImageNet weights, offline) or any timm model name
            (random weights).
        image_size: side of the square model input; default: the backbone's native size. Images are
            resized so the shorter side matches, then centre-cropped.
        batch_size: images per forward pass.
        threads: decoding threads (default: one per core, at most 8).
        precision: ``auto`` (bf16 where the hardware runs it natively, else fp32), ``fp32`` or ``bf16``.
        dtype: storage dtype of the features, ``float32`` or ``float16``.
        chunk_size: rows written between progress saves (the unit of resume).
        device: ``cpu``, ``cuda``...; default cuda when available (on each worker, for ``--engine ray``).
        engine: ``local`` (default), ``ray`` or an Engine. With Ray each task embeds one chunk of rows on
            a worker that keeps its model; the driver writes the rows in order and records progress.
    Returns:
        EmbedResult with the feature path, its shape and throughput.
    """
    ws = Workspace.of(workspace)
    n = ws.manifest_rows()
    if dtype not in ("float32", "float16"):
        raise ParameterError(f"{param('dtype')} must be float32 or float16, not {dtype!r}")
    if batch_size < 1:
        raise ParameterError(f"{param('batch_size')} {batch_size}: give at least 1 image per forward pass")
    if chunk_size < 1:
        raise ParameterError(f"chunk_size {chunk_size}: give at least 1 row between progress saves")
    dev = resolve_device(device)
    bb = backbone_of(ws, backbone)
    size = int(image_size or bb.default_size)
    if not 16 <= size <= 1024:
        raise ParameterError(f"{param('image_size')} {size}: use a size between 16 and 1024")
    choice = choose_precision(precision, dev)
    prec = choice.precision
    feat_path, logit_path = ws.features_path(backbone, size), ws.logits_path(backbone, size)
    inputs = {"pixels": ws.pixel_fingerprint()}
    if is_workspace_backbone(backbone):  # a new pre-training of the same name is a new embedding
        inputs["backbone"] = fingerprint_path(pretrained_root(ws, backbone[3:]) / "model.safetensors")
    outputs = [feat_path] + ([logit_path] if bb.has_imagenet_head else [])
    step = ws.step("embed", params={"backbone": backbone, "image_size": size, "precision": prec,
                                    "dtype": dtype, "resize": RESIZE_POLICY},
                   inputs=inputs, outputs=outputs,
                   sidecar=ws.sidecar_of(feat_path))
    if step.cached() and not force:
        meta = read_json(step.sidecar)
        log.info("embed: cached (%s); --force to redo", feat_path)
        return EmbedResult(feat_path, logit_path if bb.has_imagenet_head else None, (n, bb.feature_dim),
                           meta.get("images_per_s", 0.0), prec, cached=True)

    partials = [p.with_name(f".{p.name}.partial") for p in outputs]
    progress_file = feat_path.with_name(f".{feat_path.name}.progress.json")
    widths = [bb.feature_dim, 1000][: len(outputs)]
    files, done = _open_partials(partials, widths, n, dtype, progress_file, step.key, force)
    if done:
        log.info("embed: resuming at row %d of %d", done, n)

    worker = Embedder(str(ws.root), backbone, size, prec, batch_size, device, threads)
    rows, finite, seconds = _write_chunks(files, worker, engine, threads, n=n, done=done, batch_size=batch_size,
                                          chunk_size=chunk_size, progress_file=progress_file, key=step.key,
                                          desc=f"embed {backbone}@{size}")
    if not finite:
        log.warning("embed: the model produced non-finite values in %s", feat_path.name)
    for file in files:
        file.close()
    for part, final in zip(partials, outputs):
        os.replace(part, final)
    rate = rows / seconds if seconds > 0 else 0.0
    step.finish(**choice.record(), images=n, feature_dim=bb.feature_dim, images_per_s=round(rate, 2), device=str(dev),
                engine=getattr(engine, "name", engine or "local"), resumed_from=done)
    progress_file.unlink(missing_ok=True)
    log.info("embed: %d x %d features (%s, %.0f img/s) -> %s", n, bb.feature_dim, prec, rate, feat_path)
    return EmbedResult(feat_path, outputs[1] if len(outputs) > 1 else None, (n, bb.feature_dim), rate, prec,
                       cached=False)


def _write_chunks(files: list, worker: Embedder, engine, threads: int | None, *, n: int, done: int,
                  batch_size: int, chunk_size: int, progress_file: Path, key: str,
                  desc: str) -> tuple[int, bool, float]:
    """Embed rows ``done..n`` chunk by chunk (on the engine's workers), writing each chunk's rows in order
    and recording progress after it; returns (rows embedded, all finite, seconds)."""
    rows_per_chunk = max(1, -(-chunk_size // batch_size)) * batch_size  # whole batches: same batches anywhere
    chunks = [range(s, min(s + rows_per_chunk, n)) for s in range(done, n, rows_per_chunk)]
    progress = bar(total=n, desc=desc)
    progress.update(done)
    started, rows, finite = time.perf_counter(), 0, True
    with using(engine, threads=threads) as eng:
        for idx, outs in zip(chunks, eng.map(embed_rows, chunks, prepare=worker, threads=1)):
            for file, out in zip(files, outs):
                finite = finite and bool(np.isfinite(out).all())
                file.write(idx.start, out)
            rows += len(idx)
            progress.update(len(idx))
            _save_progress(files, progress_file, key, idx.stop)
    progress.close()
    return rows, finite, time.perf_counter() - started


def _load_batch(store, size: int, idx: range) -> np.ndarray:
    return np.stack([resize_center(store.load(i), size) for i in idx])


def backbone_of(ws: Workspace, name: str) -> Backbone:
    """A registered or timm backbone, or ``ws:NAME``: the workspace's own ``clearset pretrain NAME``."""
    return load_backbone(ws, name) if is_workspace_backbone(name) else create_backbone(name)


@dataclass(frozen=True)
class Embedder:
    """What a worker needs to embed rows of a workspace; calling it builds the model once per worker."""

    workspace: str
    backbone: str
    size: int
    precision: str
    batch_size: int
    device: str | None = None
    threads: int | None = None

    def __call__(self, _shared=None) -> "_EmbedState":
        dev = resolve_device(self.device)
        if dev.type == "cpu":
            keep_large_allocations_in_heap()
        bb = backbone_of(Workspace(self.workspace), self.backbone)
        bb.model.to(dev).to(memory_format=torch.channels_last)  # in place
        mean = torch.tensor(bb.mean, device=dev).view(1, 3, 1, 1) * 255
        std = torch.tensor(bb.std, device=dev).view(1, 3, 1, 1) * 255
        return _EmbedState(self, bb, dev, mean, std, Workspace(self.workspace).store())


@dataclass
class _EmbedState:
    spec: Embedder
    bb: Backbone
    dev: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    store: object


def embed_rows(state: _EmbedState, rows: range) -> list[np.ndarray]:
    """Features (and ImageNet logits, if the backbone has them) of manifest rows ``rows``, float32.

    Images are decoded and resized on threads, a few batches ahead of the model."""
    spec, dev = state.spec, state.dev
    batches = [range(s, min(s + spec.batch_size, rows.stop)) for s in range(rows.start, rows.stop, spec.batch_size)]
    load = partial(_load_batch, state.store, spec.size)
    autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if spec.precision == "bf16"
                else contextlib.nullcontext())
    parts: list[list[np.ndarray]] = []
    with torch.inference_mode(), autocast:
        for pixels in ordered_map(load, batches, threads=spec.threads or default_threads(), window=4):
            x = torch.from_numpy(pixels).to(dev, non_blocking=True).permute(0, 3, 1, 2)  # NHWC = channels_last
            x = (x.float() - state.mean) / state.std
            parts.append([out.float().cpu().numpy() for out in state.bb.features_and_logits(x) if out is not None])
    return [np.concatenate(col) for col in zip(*parts)]


def _open_partials(paths: list[Path], widths: list[int], n: int, dtype: str, progress_file: Path, key: str,
                   force: bool) -> tuple[list[RowFile], int]:
    """Reopen the partial files of an interrupted run with the same key, else start new ones."""
    if not force and progress_file.exists():
        state = read_json(progress_file)
        found = [RowFile.reopen(p) for p in paths] if state.get("key") == key else []
        ok = [f for f, w in zip(found, widths) if f is not None and f.shape == (n, w) and f.dtype == np.dtype(dtype)]
        if found and len(ok) == len(paths):
            return ok, int(state["done"])
        for f in found:
            if f is not None:
                f.close()
    files = [RowFile.create(p, (n, w), dtype) for p, w in zip(paths, widths)]
    write_json(progress_file, {"key": key, "done": 0})
    return files, 0


def _save_progress(files: list[RowFile], progress_file: Path, key: str, done: int) -> None:
    for f in files:
        f.sync()  # rows reach the disk before the progress file says they did
    write_json(progress_file, {"key": key, "done": done})
