"""Dataset reinforcement (``clearset reinforce``): store, once, NS augmentations per training image (their
parameters, not pixels) with a teacher ensemble's top-k probabilities; training then replays a stored
augmentation and uses its stored target, at no teacher cost (methods.md, Dataset Reinforcement card).

- Augmentations (``augment="strong"``, the card's "+RA/RE"): shift-crop + flip + two RandAugment ops
  (magnitude 9) + random erase with p 0.25; ``"light"``: shift-crop + flip only (what the plain recipes
  use, for short schedules where strong augmentation costs more than it gives). All
  integer parameters (train/augment.py ``draw_params`` / ``apply_params``): replay is bit-identical.
- Teacher = the mean of the members' softmaxes at T = 1 (not of their logits); top-k stored as float16.
- Training (``train(..., reinforced=DIR)``): with p = 0.99 a random stored augmentation of each image and
  its "smooth"-densified target (the k stored probabilities; the remaining mass spread evenly over the
  other classes), otherwise the original image with its one-hot label.

Writes ``WS/reinforced/<name>/``: ``params.npz`` (drawn up front from the seed), ``chunks/NNNNN.npz``
(teacher top-k per chunk of images, so an interrupted run resumes), then ``targets.npz`` and a sidecar.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import progress
from ..device import resolve_device, resolve_precision
from ..errors import ParameterError, WorkspaceError, param
from ..io import hash_json, read_json, write_json, write_npz
from ..workspace import Workspace
from .augment import AugParams, apply_params, draw_params
from .teachers import load_teacher, teacher_probs

log = logging.getLogger("clearset")
P_REINFORCED = 0.99
CHUNK = 2048


@dataclass
class Reinforced:
    """Stored augmentations and teacher targets of a workspace's training images."""

    root: Path
    index: np.ndarray  # (N,) manifest indices
    params: AugParams  # (N, NS)
    topk_idx: torch.Tensor  # (N, NS, k) int64
    topk_p: torch.Tensor  # (N, NS, k) float32
    meta: dict

    @property
    def ns(self) -> int:
        return self.topk_idx.shape[1]

    def densify(self, idx: torch.Tensor, p: torch.Tensor, n_classes: int) -> torch.Tensor:
        """(B, k) stored classes/probabilities -> (B, C) targets, the rest spread evenly ("smooth")."""
        k = idx.shape[1]
        rest = (1 - p.sum(1, keepdim=True)).clamp_min(0) / max(1, n_classes - k)
        out = rest.expand(len(idx), n_classes).clone()
        return out.scatter_(1, idx, p)


def load_reinforced(path: str | Path) -> Reinforced:
    root = Path(path)
    if not (root / "targets.npz").exists():
        raise WorkspaceError(f"{root}: no finished reinforcement here (targets.npz); run `clearset reinforce` first")
    with np.load(root / "targets.npz") as z:
        arrays = {k: z[k] for k in z.files}
    params = AugParams(**{f: torch.from_numpy(arrays[f]) for f in ("dy", "dx", "flip", "ops", "signs", "erase")})
    return Reinforced(root, arrays["index"], params, torch.from_numpy(arrays["topk_idx"].astype(np.int64)),
                      torch.from_numpy(arrays["topk_p"].astype(np.float32)), read_json(root / "reinforce.meta.json"))


AUGMENT: dict[str, dict[str, Any]] = {"strong": {"n_ops": 2, "erase_p": 0.25}, "light": {"n_ops": 0, "erase_p": 0.0}}


def reinforce(workspace: str | Path | Workspace, *, teachers: list[str | Path], ns: int = 10, topk: int = 10,
              seed: int = 0, augment: str = "strong", split: str = "train", subset: str | Path | None = None, name: str | None = None,
              batch_size: int = 1024, device: str = "auto", force: bool = False) -> Reinforced:
    """Draw ``ns`` augmentations per image of ``split`` (or of the ``subset`` file's rows) and store the
    teachers' top-``topk`` probabilities."""
    from ..data.loading import load_images

    ws = Workspace.of(workspace)
    ws.require_manifest()
    if ns < 1 or topk < 1:
        raise ParameterError(f"{param('ns')} and {param('topk')} must be at least 1")
    if augment not in AUGMENT:
        raise ParameterError(f"{param('augment')} must be one of {', '.join(AUGMENT)}")
    if not teachers:
        raise ParameterError(f"reinforcement needs at least one {param('teachers')} run")
    classes = ws.classes()
    runs, size = _teachers(teachers, classes)
    topk = min(topk, len(classes))
    dev = resolve_device(device)
    autocast = resolve_precision("auto", dev) == "bf16"
    index = _rows(ws, split, subset)
    params_key = {"ns": ns, "topk": topk, "seed": seed, "split": split, "size": size,
                  **({"augment": augment} if augment != "strong" else {}),
                  "subset": hash_json(index.tolist()) if subset is not None else None,
                  "teachers": [r.config["key"] for r in runs]}
    step = ws.step("reinforce", params=params_key, inputs={"manifest": ws.fingerprint(ws.manifest_path)},
                   outputs=[], sidecar=Path())
    root = ws.named("reinforced", name or f"ns{ns}-top{topk}-s{seed}-{step.key[:8]}")
    step.sidecar, step.outputs = root / "reinforce.meta.json", [root / "targets.npz"]
    if step.cached() and not force:
        log.info("reinforce: cached %s", root)
        return load_reinforced(root)
    if force and root.exists():
        shutil.rmtree(root)
    if root.exists() and (root / "params.meta.json").exists() and read_json(root / "params.meta.json").get("key") != step.key:
        raise WorkspaceError(f"{root} holds a different reinforcement; choose another {param('name')} or pass {param('force')}")

    images = load_images(ws, index, size, desc=f"load {split}")  # only the rows being reinforced
    n = len(index)
    params_path = root / "params.npz"
    if not params_path.exists():
        params = draw_params((n, ns), torch.Generator().manual_seed(seed), size=size, **AUGMENT[augment])
        write_npz(params_path, index=index, **params.arrays())
        write_json(root / "params.meta.json", {"key": step.key})
    with np.load(params_path) as z:
        params = AugParams(**{f: torch.from_numpy(z[f]) for f in ("dy", "dx", "flip", "ops", "signs", "erase")})

    nets = [load_teacher(r, dev) for r in runs]
    _label_chunks(root / "chunks", images, params, nets, ns=ns, topk=topk, batch_size=batch_size, dev=dev,
                  autocast=autocast)
    chunk_dir, starts = root / "chunks", range(0, n, CHUNK)
    parts = [np.load(chunk_dir / f"{s // CHUNK:05d}.npz") for s in starts]
    write_npz(root / "targets.npz", index=index, **params.arrays(), topk_idx=np.concatenate([p["topk_idx"] for p in parts]),
                 topk_p=np.concatenate([p["topk_p"] for p in parts]))
    step.finish(images=n, augmentations=n * ns, classes=classes, image_size=size,
                teacher_runs=[str(r.root) for r in runs])
    shutil.rmtree(chunk_dir)
    params_path.unlink()
    (root / "params.meta.json").unlink()
    return load_reinforced(root)


def _teachers(teachers: list[str | Path], classes: list[str]) -> tuple[list, int]:
    """The teacher runs (each trained on ``classes``) and their one image size."""
    from ..artifacts.runs import load_run

    if not teachers:
        raise ParameterError(f"reinforcement needs at least one {param('teachers')} run")
    runs = [load_run(t) for t in teachers]
    for r in runs:
        if r.config["classes"] != classes:
            raise ParameterError(f"teacher {r.root} was trained on {len(r.config['classes'])} classes "
                                 f"({', '.join(r.config['classes'][:4])}...), this workspace has {len(classes)}; "
                                 "use teachers trained on this workspace's classes")
    sizes = {r.config["recipe"]["image_size"] for r in runs}
    if len(sizes) > 1:
        raise ParameterError(f"teachers use different image sizes {sorted(sizes)}; reinforce with one size")
    return runs, sizes.pop()


def _rows(ws: Workspace, split: str, subset: str | Path | None) -> np.ndarray:
    """Manifest indices of the images to reinforce: the split, or the subset file's rows of it."""
    from ..artifacts.subsets import read_subset

    m = ws.manifest(["index", "split"])
    index = m.loc[m["split"] == split, "index"].to_numpy(np.int64)
    if not len(index):
        raise ParameterError(f"{param('split')} {split!r}: no images in that split (splits here: "
                             f"{', '.join(sorted(set(m['split'])))})")
    if subset is not None:
        index = index[np.unique(read_subset(subset, index)[0])]
    return index


def _label_chunks(chunk_dir: Path, images: torch.Tensor, params: AugParams, nets: list, *, ns: int, topk: int,
                  batch_size: int, dev: torch.device, autocast: bool) -> None:
    """The teachers' top-k probabilities of every stored augmentation, one file per CHUNK images (a chunk
    on disk is done: an interrupted run resumes at the first missing one)."""
    n = len(images)
    zero, one = torch.zeros(1, 3, 1, 1, device=dev), torch.ones(1, 3, 1, 1, device=dev)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    starts = range(0, n, CHUNK)
    todo = [s for s in starts if not (chunk_dir / f"{s // CHUNK:05d}.npz").exists()]
    if len(todo) < len(starts):
        log.info("reinforce: resuming, %d of %d chunks done", len(starts) - len(todo), len(starts))
    bar = progress.bar(total=len(todo) * CHUNK * ns, desc="reinforce", unit="aug")
    for s in todo:
        rows = torch.arange(s, min(s + CHUNK, n))
        flat_rows = rows.repeat_interleave(ns)
        flat_draw = torch.arange(ns).repeat(len(rows))
        top_i, top_p = [], []
        for b in range(0, len(flat_rows), batch_size):
            r, d = flat_rows[b : b + batch_size], flat_draw[b : b + batch_size]
            x = apply_params(images[r].to(dev), params[r, d])
            probs = teacher_probs(nets, x, zero, one, 1.0, autocast, dev)  # x in [0, 1]: mean 0, std 1
            p, i = probs.topk(topk, dim=1)
            top_i.append(i.to(torch.int16).cpu())
            top_p.append(p.to(torch.float16).cpu())
            bar.update(len(r))
        write_npz(chunk_dir / f"{s // CHUNK:05d}.npz", topk_idx=torch.cat(top_i).view(len(rows), ns, topk).numpy(),
                     topk_p=torch.cat(top_p).view(len(rows), ns, topk).numpy())
    bar.close()
