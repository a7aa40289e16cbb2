"""How two sets of images differ (``clearset explain-diff WS --a SELECTOR --b SELECTOR``): a VisDiff-lite
without a language model (none is available offline). Every image of both sets gets interpretable
attributes; each attribute is ranked by how well it separates A from B, AUROC of "A scores higher"
(0.5: no difference), with a Mann-Whitney p-value.

Attributes (on the decoded image at its own size): brightness (mean luminance), contrast (sd of
luminance), colourfulness (Hasler & Suesstrunk 2003), saturation (mean HSV saturation), sharpness
(variance of the Laplacian of luminance), edge density (share of pixels with a gradient above 0.1), and
height, width and aspect ratio from the manifest. Concepts (CRAFT) and class-graph terms are issue 27's
next step.

Selectors: comma-joined ``key=value`` terms, all of which must hold: ``split=test``, ``class=cat`` (name
or number), ``source=PATH-PREFIX``, ``correct=true|false`` (needs ``run``: the run's predictions on its
evaluation split), or any manifest column (``height=32``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import progress
from ..errors import ParameterError, param
from ..io import write_json
from ..workspace import Workspace

log = logging.getLogger("clearset")
ATTRIBUTES = ("brightness", "contrast", "colourfulness", "saturation", "sharpness", "edge_density", "height",
              "width", "aspect")


def select(ws: Workspace, selector: str, run: str | Path | None = None) -> np.ndarray:
    """Manifest indices matching every ``key=value`` term of ``selector``."""
    m = ws.manifest()
    keep = np.ones(len(m), bool)
    classes = ws.classes()
    terms = [t.strip() for t in selector.split(",") if t.strip()]
    if not terms:
        raise ParameterError(f"selector {selector!r} is empty: write key=value terms, e.g. split=test,class=cat")
    for term in terms:
        key, eq, value = term.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ParameterError(f"selector term {term!r}: write it as key=value (e.g. class=cat)")
        if key == "class":
            c = classes.index(value) if value in classes else (int(value) if value.isdigit() else None)
            if c is None or not 0 <= c < len(classes):
                raise ParameterError(f"selector class={value!r}: not a class of this workspace "
                                     f"({', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''})")
            keep &= m["label"].to_numpy() == c
        elif key == "correct":
            if run is None:
                raise ParameterError(f"selector correct={value}: pass {param('run')} (whose predictions decide it)")
            if value not in ("true", "false"):
                raise ParameterError(f"selector correct={value!r}: true or false")
            keep &= _correct(ws, run, len(m)) == (value == "true")
        elif key == "source":
            keep &= m["source"].astype(str).str.startswith(value).to_numpy()
        elif key in m.columns:
            col = m[key]
            keep &= (col.astype(str) == value).to_numpy()
        else:
            raise ParameterError(f"selector key {key!r}: use class, correct, source or a manifest column "
                                 f"({', '.join(m.columns)})")
    index = m["index"].to_numpy(np.int64)[keep]
    if len(index) == 0:
        raise ParameterError(f"selector {selector!r} matches no image")
    return index


def _correct(ws: Workspace, run: str | Path, n: int) -> np.ndarray:
    """(N,) per manifest row: True / False where the run predicted it (its evaluation split) right / wrong,
    None elsewhere (so neither correct=true nor correct=false selects it)."""
    from ..artifacts.runs import load_run

    root = Path(run) if Path(run).is_dir() else ws.named("runs", str(run))
    r = load_run(root)
    p = r.predictions()
    if "logits" not in p:
        raise ParameterError(f"{root}: the run has no evaluation predictions (train it with an evaluation split)")
    out = np.full(n, None, object)
    out[p["index"]] = p["logits"].argmax(1) == p["labels"]
    return out


def attributes(img: np.ndarray) -> dict[str, float]:
    x = img.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    mx, mn = x.max(2), x.min(2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-12), 0.0)
    lap = (-4 * lum[1:-1, 1:-1] + lum[:-2, 1:-1] + lum[2:, 1:-1] + lum[1:-1, :-2] + lum[1:-1, 2:]) \
        if min(lum.shape) > 2 else np.zeros(1)
    gy, gx = np.gradient(lum) if min(lum.shape) > 1 else (np.zeros(1), np.zeros(1))
    return {"brightness": float(lum.mean()), "contrast": float(lum.std()), "colourfulness": float(colourful),
            "saturation": float(sat.mean()), "sharpness": float(lap.var()),
            "edge_density": float((np.hypot(gx, gy) > 0.1).mean())}


def table_of(ws: Workspace, index: np.ndarray, desc: str) -> pd.DataFrame:
    m = ws.manifest(["index", "height", "width"]).set_index("index").loc[index]
    rows = [attributes(img) for img in progress.bar(ws.store().iter_images(index.tolist()), total=len(index),
                                                    desc=desc)]
    t = pd.DataFrame(rows, index=index)
    t["height"], t["width"] = m["height"].to_numpy(), m["width"].to_numpy()
    t["aspect"] = t["width"] / t["height"]
    return t


def diff(workspace: str | Path | Workspace, a: str, b: str, *, run: str | Path | None = None,
         max_images: int = 5000, seed: int = 0) -> dict:
    """Rank the attributes by how well they separate the images of selector ``a`` from those of ``b``
    (at most ``max_images`` of each, sampled with ``seed``). Writes ``WS/explain/diff-*.json``."""
    from scipy.stats import mannwhitneyu

    ws = Workspace.of(workspace)
    ws.require_manifest()
    ia, ib = select(ws, a, run), select(ws, b, run)
    if len(ia) < 2 or len(ib) < 2:
        raise ParameterError(f"each set needs at least 2 images (A {len(ia)}, B {len(ib)})")
    rng = np.random.default_rng(seed)
    ia = np.sort(rng.choice(ia, min(len(ia), max_images), replace=False))
    ib = np.sort(rng.choice(ib, min(len(ib), max_images), replace=False))
    ta, tb = table_of(ws, ia, "attributes of A"), table_of(ws, ib, "attributes of B")
    ranked: list[dict[str, Any]] = []
    for att in ATTRIBUTES:
        xa, xb = ta[att].to_numpy(), tb[att].to_numpy()
        if np.ptp(np.concatenate([xa, xb])) == 0:
            ranked.append({"attribute": att, "auroc": 0.5, "p": 1.0, "mean_a": float(xa.mean()),
                           "mean_b": float(xb.mean())})
            continue
        u = mannwhitneyu(xa, xb, alternative="two-sided")
        ranked.append({"attribute": att, "auroc": float(u.statistic / (len(xa) * len(xb))), "p": float(u.pvalue),
                       "mean_a": float(xa.mean()), "mean_b": float(xb.mean())})
    ranked.sort(key=lambda r: -abs(r["auroc"] - 0.5))
    result = {"a": a, "b": b, "images_a": int(len(ia)), "images_b": int(len(ib)), "run": str(run) if run else None,
              "ranked": ranked,
              "note": "auroc > 0.5: A scores higher; 0.5: no difference; p: Mann-Whitney U, two-sided"}
    import hashlib

    key = hashlib.sha256(f"{a}|{b}|{run}|{max_images}|{seed}".encode()).hexdigest()[:10]
    out = ws.dir("explain") / f"diff-{key}.json"
    write_json(out, result)
    result["path"] = str(out)
    top = ranked[0]
    log.info("explain-diff: %s separates A from B most (AUROC %.3f; A %.3f vs B %.3f)", top["attribute"],
             top["auroc"], top["mean_a"], top["mean_b"])
    return result
