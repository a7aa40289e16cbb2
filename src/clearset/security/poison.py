"""Poisoned copies of a workspace, for testing backdoor defences (``clearset poison SRC -o OUT``).

The source workspace is read, never changed. The copy holds every image of its ``train`` and ``test``
splits, with a share ``rate`` of the training images carrying a trigger:
- ``badnets`` (Gu et al. 2017): a ``patch`` x ``patch`` pattern (checker, white or a seeded random
  pattern) pasted at ``position`` (bottom-right, top-left or a random place per image) into images of
  the other classes, whose label becomes ``target``;
- ``blend`` (Chen et al. 2017): the image blended with a seeded random full-size pattern,
  x' = (1 - alpha) x + alpha pattern, into images of the other classes, labels set to ``target``;
- ``clean-label-patch``: the badnets patch on images of the ``target`` class only, labels unchanged (a
  clean-label attack without the adversarial perturbation of Turner et al.: weaker, named apart).
The copy also gets a ``test_triggered`` split: every test image not of the target class with the trigger,
keeping its true label (attack success = share of them classified as the target).

The copy's pixels live in ``OUT/security/poisoned_images.npz`` (its image store). Ground truth:
``OUT/security/poison_truth.parquet`` (index, split, poisoned, original_label, label) and
its sidecar with the attack's settings. Everything is seeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ParameterError, param
from ..io import atomic_path, write_json, write_table
from ..workspace import Workspace

log = logging.getLogger("clearset")
ATTACKS = ("badnets", "blend", "clean-label-patch")
PATTERNS = ("checker", "white", "random")
POSITIONS = ("bottom-right", "top-left", "random")


def trigger_pattern(kind: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """(h, w, 3) uint8 pattern."""
    h, w = shape
    if kind == "checker":
        cell = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(np.uint8) * 255
        return np.repeat(cell[:, :, None], 3, 2)
    if kind == "white":
        return np.full((h, w, 3), 255, np.uint8)
    return np.random.default_rng([seed, 77]).integers(0, 256, (h, w, 3), dtype=np.uint8)


def apply_trigger(x: np.ndarray, attack: str, *, patch: int, position: str, pattern: str, alpha: float,
                  seed: int) -> np.ndarray:
    """Triggered copies of images ``x`` (N, H, W, 3) uint8."""
    out = x.copy()
    n, h, w, _ = x.shape
    if attack == "blend":
        p = trigger_pattern("random", (h, w), seed).astype(np.float32)
        return np.clip(np.rint((1 - alpha) * x.astype(np.float32) + alpha * p), 0, 255).astype(np.uint8)
    p = trigger_pattern(pattern, (patch, patch), seed)
    rng = np.random.default_rng([seed, 78])
    for i in range(n):
        if position == "bottom-right":
            top, left = h - patch - 1, w - patch - 1
        elif position == "top-left":
            top, left = 1, 1
        else:
            top, left = (int(v) for v in rng.integers(0, [h - patch + 1, w - patch + 1]))
        out[i, top : top + patch, left : left + patch] = p
    return out


def poison(source: str | Path | Workspace, out: str | Path, *, attack: str = "badnets", rate: float = 0.1,
           target: int | str = 0, patch: int = 3, position: str = "bottom-right", pattern: str = "checker",
           alpha: float = 0.1, seed: int = 0) -> Workspace:
    """Write the poisoned copy of ``source`` as the workspace ``out`` (see the module docstring)."""
    import clearset

    from ..data.loading import load_images

    src = Workspace.of(source)
    src.require_manifest()
    if attack not in ATTACKS:
        raise ParameterError(f"{param('attack')} {attack!r}: choose one of {', '.join(ATTACKS)}")
    if pattern not in PATTERNS or position not in POSITIONS:
        raise ParameterError(f"{param('pattern')} must be one of {', '.join(PATTERNS)} and {param('position')} one "
                             f"of {', '.join(POSITIONS)}")
    if not 0 < rate <= 1 or not 0 < alpha <= 1:
        raise ParameterError(f"{param('rate')} and {param('alpha')} must be fractions in (0, 1]")
    classes = src.classes()
    t = classes.index(target) if isinstance(target, str) and target in classes else target
    if not isinstance(t, int) and not (isinstance(t, str) and t.isdigit()):
        raise ParameterError(f"{param('target')} {target!r}: give a class name ({', '.join(classes)}) or number")
    t = int(t)
    if not 0 <= t < len(classes):
        raise ParameterError(f"{param('target')} {t}: the classes are 0..{len(classes) - 1}")
    m = src.manifest(["index", "split", "label", "height", "width"])
    if not {"train", "test"} <= set(m["split"]):
        raise ParameterError(f"{src.root}: a poisoned copy needs train and test splits (found "
                             f"{', '.join(sorted(set(m['split'])))})")
    size = int(m[["height", "width"]].max(axis=1).max())
    if patch < 1 or patch + 2 > size:
        raise ParameterError(f"{param('patch')} {patch}: the patch must fit inside the {size}-px images")
    arrays: dict[str, np.ndarray] = {}
    truth = []
    rng = np.random.default_rng(seed)
    def trigger(x: np.ndarray) -> np.ndarray:
        return apply_trigger(x, attack, patch=patch, position=position, pattern=pattern, alpha=alpha, seed=seed)

    for split in ("train", "test"):
        rows = m[m["split"] == split]
        x = load_images(src, rows["index"].to_numpy(np.int64), size, desc=f"load {split}").permute(0, 2, 3, 1).numpy()
        y = rows["label"].to_numpy(np.int64).copy()
        poisoned = np.zeros(len(y), bool)
        if split == "train":
            pool = np.flatnonzero((y == t) if attack == "clean-label-patch" else ((y >= 0) & (y != t)))
            n = int(round(rate * len(y)))
            if n > len(pool):
                raise ParameterError(f"{param('rate')} {rate}: {n} images to poison, but only {len(pool)} "
                                     f"{'of the target class' if attack == 'clean-label-patch' else 'of other classes'}")
            chosen = np.sort(rng.choice(pool, n, replace=False))
            x[chosen] = trigger(x[chosen])
            poisoned[chosen] = True
            original = y.copy()
            if attack != "clean-label-patch":
                y[chosen] = t
        else:
            original = y.copy()
            others = np.flatnonzero((y >= 0) & (y != t))
            arrays["x_test_triggered"] = trigger(x[others])
            arrays["y_test_triggered"] = y[others]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        truth.append(pd.DataFrame({"split": split, "poisoned": poisoned, "original_label": original, "label": y}))
    truth.append(pd.DataFrame({"split": "test_triggered", "poisoned": True, "original_label": arrays["y_test_triggered"],
                               "label": arrays["y_test_triggered"]}))
    out = Path(out)
    images_dir = out / "security"
    images_dir.mkdir(parents=True, exist_ok=True)
    npz = images_dir / "poisoned_images.npz"  # the copy's image store: the workspace reads its pixels here
    with atomic_path(npz) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, class_names=np.array(classes), **arrays)  # type: ignore[arg-type]
    ws = clearset.ingest(str(npz), out, split=["train", "test", "test_triggered"])
    table = pd.concat(truth, ignore_index=True)
    mm = ws.manifest(["index", "split"])
    for split in ("train", "test", "test_triggered"):  # the manifest keeps each split's order
        table.loc[table["split"] == split, "index"] = mm.loc[mm["split"] == split, "index"].to_numpy()
    table["index"] = table["index"].astype(np.int64)
    path = ws.dir("security") / "poison_truth.parquet"
    write_table(path, table[["index", "split", "poisoned", "original_label", "label"]])
    write_json(ws.sidecar_of(path), {"attack": attack, "rate": rate, "target": t, "target_name": classes[t],
                                     "patch": patch, "position": position, "pattern": pattern, "alpha": alpha,
                                     "seed": seed, "source": str(src.root),
                                     "poisoned_train": int(table.query("split == 'train'")["poisoned"].sum())})
    log.info("poison: %s, %d of %d training images poisoned (target %s) -> %s", attack,
             int(table.query("split == 'train'")["poisoned"].sum()), int((table["split"] == "train").sum()),
             classes[t], ws.root)
    return ws
