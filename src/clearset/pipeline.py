"""``clearset demo``: the pipeline on the bundled scikit-learn digits, offline, in under a minute.

The demo plants known problems in a copy of the digits (seeded): flipped labels, duplicates (exact
copies and brightness/contrast-changed copies) and outliers (colour fractal images labelled as
digits). It then ingests, embeds, probes and audits that copy, and scores what the audit found against
what was planted; trains a small ResNet-8 on it, and evaluates it beyond top-1 (calibration, the 15
corruptions at three severities, the taxonomy of its remaining mistakes); benches three curation
strategies at 30% of the data with the linear-probe recipe; and distils the digits into 3 images per
class (DM + FYI) against 3 random real ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audit import run_audit
from .data.digits import digits_arrays, digits_split
from .data.fractals import FractalConfig, render
from .data.ingest import ingest
from .evaluate.probe import linear_probe
from .features import embed
from .reporting import build_report
from .workspace import write_bytes

log = logging.getLogger("clearset")
DEMO_BACKBONE = "efficientnet_lite0"
DEMO_SIZE = 64
FLIP_SHARE, N_EXACT, N_EDITED, N_OUTLIERS = 0.05, 15, 15, 12
DEMO_EPOCHS = 15
DEMO_STRATEGIES = ["random", "dbp", "clean"]
DEMO_IPC = 3
DEMO_DISTILL_ITERATIONS = 40


@dataclass
class DemoResult:
    report: Path
    headline: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        width = max(len(k) for k in self.headline) if self.headline else 0
        lines = [f"  {k:<{width}}  {v}" for k, v in self.headline.items()]
        return "\n".join(["clearset demo on builtin:digits (with planted problems)", *lines,
                          f"report: {self.report.resolve()}"])


def planted_digits(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The digits as train/test arrays plus planted problems, and the truth about what was planted."""
    rng = np.random.default_rng(seed)
    images, labels = digits_arrays()
    split = digits_split()
    x_train, y_train = images[split["train"]], labels[split["train"]].copy()
    n = len(x_train)
    flips = np.sort(rng.choice(n, int(FLIP_SHARE * n), replace=False))
    y_train[flips] = (y_train[flips] + rng.integers(1, 10, len(flips))) % 10
    src = rng.choice(n, N_EXACT + N_EDITED, replace=False)
    exact = x_train[src[:N_EXACT]]
    edited = np.clip(x_train[src[N_EXACT:]].astype(np.float32) * rng.uniform(0.8, 0.9) + 20, 0, 255).astype(np.uint8)
    cfg = FractalConfig(classes=4, per_class=N_OUTLIERS, size=32, seed=seed + 7)
    from PIL import Image

    outliers = np.stack([np.asarray(Image.fromarray(render(cfg, i)).resize((8, 8), Image.Resampling.BOX).convert("L"))
                         for i in range(N_OUTLIERS)])
    x = np.concatenate([x_train, exact, edited, outliers])
    y = np.concatenate([y_train, y_train[src], rng.integers(0, 10, N_OUTLIERS)])
    arrays = {"x_train": x, "y_train": y, "x_test": images[split["test"]], "y_test": labels[split["test"]],
              "class_names": np.array([str(i) for i in range(10)])}
    truth = {"flipped": flips, "duplicate_of": src, "copies": np.arange(n, n + N_EXACT + N_EDITED),
             "outliers": np.arange(n + N_EXACT + N_EDITED, len(x))}
    return arrays, truth


def _precision_recall(found: set, planted: set) -> str:
    tp = len(found & planted)
    p = tp / len(found) if found else 1.0
    r = tp / len(planted) if planted else 1.0
    return f"precision {p:.0%}, recall {r:.0%} ({tp} of {len(planted)} planted, {len(found)} flagged)"


def _train_and_evaluate(ws, *, force: bool) -> str:
    """A short ResNet-8 run on the planted digits (16 px), its metrics, robustness and mistake taxonomy."""
    from .evaluate.evaluation import evaluate_run
    from .evaluate.mistakes import mistake_taxonomy
    from .evaluate.robustness import robustness
    from .train import get_recipe, train

    recipe = get_recipe("cifar-resnet8-fast").with_overrides(image_size=16, crop_pad=2, epochs=DEMO_EPOCHS)
    run = train(ws, recipe=recipe, seed=0, name="demo-resnet8", force=force)
    metrics = evaluate_run(run.root)
    rob = robustness(run.root, severities=[1, 3, 5])
    mistakes = mistake_taxonomy(run.root)
    kinds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in mistakes["counts"].items() if v)
    return (f"ResNet-8 x {DEMO_EPOCHS} epochs: test accuracy {metrics['top1']:.1%}, ECE {metrics['ece']:.3f}; "
            f"{rob['mean_corruption_acc']:.1%} under corruption; {mistakes['errors']} errors ({kinds or 'none'})")


def _small_bench(ws) -> str:
    """Random, DBP and audit-based cleaning at 30% against all the data, with the linear-probe recipe."""
    from .leaderboard.runner import run_bench, summarise

    board = run_bench(ws, strategies=DEMO_STRATEGIES, keeps=[0.3], seeds=[0], recipe="linear-probe")
    acc = {r["strategy"]: r["test_acc_mean"] for r in summarise(board)}
    return "linear probe on 30%: " + ", ".join(f"{s} {acc[s]:.1%}" for s in DEMO_STRATEGIES) + f"; all data {acc['full']:.1%}"


def _tiny_distillation(ws, *, force: bool) -> str:
    """3 synthetic images per class by DM + FYI (40 iterations, 16 px, a width-32 ConvNet) against 3 random
    real images per class, each evaluated by 2 fresh ConvNets trained on the set alone."""
    from .distill import distill, evaluate_distilled

    settings: dict[str, Any] = dict(ipc=DEMO_IPC, image_size=16, width=32, real_batch=32, force=force)
    acc = {}
    for method in ("random", "dm+fyi"):
        d = distill(ws, method=method, iterations=DEMO_DISTILL_ITERATIONS, **settings)
        acc[method] = evaluate_distilled(ws, d, seeds=2, epochs=100, force=force)["test_acc_mean"]
    return (f"{DEMO_IPC} images per class: dm+fyi ({DEMO_DISTILL_ITERATIONS} iterations) {acc['dm+fyi']:.1%}, "
            f"random real images {acc['random']:.1%} (ConvNets trained on the {10 * DEMO_IPC} images alone)")


def run_demo(workspace: str | Path = "demo-workspace", *, force: bool = False) -> DemoResult:
    import io

    import pandas as pd

    t0 = time.perf_counter()
    root = Path(workspace)
    arrays, truth = planted_digits()
    buf = io.BytesIO()
    contents: dict[str, Any] = dict(arrays)
    np.savez(buf, **contents)
    data_file = root / "data" / "digits_planted.npz"  # derived data; the bundled digits are untouched
    if force or not data_file.exists() or data_file.read_bytes() != buf.getvalue():
        write_bytes(data_file, buf.getvalue())
    ws = ingest(str(data_file), root, force=force)
    m = ws.manifest()
    emb = embed(ws, backbone=DEMO_BACKBONE, image_size=DEMO_SIZE, force=force)
    probe = linear_probe(ws, backbone=DEMO_BACKBONE, image_size=DEMO_SIZE)
    summary = run_audit(ws, force=force)
    trained = _train_and_evaluate(ws, force=force)
    curated = _small_bench(ws)
    distilled = _tiny_distillation(ws, force=force)
    report = build_report(ws)

    audit_dir = ws.dir("audit")
    li = pd.read_parquet(audit_dir / "label_issues.parquet")
    dup = pd.read_parquet(audit_dir / "duplicates.parquet")
    out = pd.read_parquet(audit_dir / "outliers.parquet")
    planted_pairs = {(int(a), int(b)) for a, b in zip(truth["duplicate_of"], truth["copies"])}
    copies = set(truth["copies"].tolist())
    involving = dup[dup["duplicate_index"].isin(copies) | dup["index"].isin(copies)]
    found_pairs = {(int(a), int(b)) for a, b in zip(involving["index"], involving["duplicate_index"])}
    counts = m["split"].value_counts(sort=False).to_dict()
    return DemoResult(report, {
        "images": f"{len(m):,} ({', '.join(f'{k} {v}' for k, v in counts.items())}), {len(ws.classes())} classes",
        "embedding": f"{emb.shape[1]}-d {DEMO_BACKBONE}@{DEMO_SIZE} ImageNet features"
                     + ("" if emb.cached else f", {emb.images_per_s:.0f} img/s ({emb.precision})"),
        "linear probe": f"{probe.accuracy:.1%} test accuracy ({probe.train_images} train -> {probe.test_images} test)",
        "label flips": _precision_recall(set(li.loc[li["is_label_issue"], "index"].tolist()),
                                         set(truth["flipped"].tolist())),
        "duplicates": _precision_recall(found_pairs, planted_pairs)
                      + f"; {summary['checks']['duplicates']['pairs'] - len(found_pairs)} other near pairs",
        "outliers": _precision_recall(set(out.loc[out["is_outlier"], "index"].tolist()),
                                      set(truth["outliers"].tolist())),
        "training": trained,
        "curation": curated,
        "distillation": distilled,
        "time": f"{time.perf_counter() - t0:.1f} s",
    })
