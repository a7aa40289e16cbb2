"""Pictures for the report: image grids (PIL) and charts (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..registry import Registry
from ..workspace import atomic_path


def thumbnail(rgb: np.ndarray, side: int) -> Image.Image:
    """Fit into side x side; tiny images are enlarged with nearest-neighbour so pixels stay visible."""
    im = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    im = im.resize(new, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (side, side), (245, 245, 245))
    canvas.paste(im, ((side - new[0]) // 2, (side - new[1]) // 2))
    return canvas


def image_row(images: Sequence[np.ndarray], path: Path, side: int = 72, gap: int = 4) -> Path:
    """Save images side by side as one PNG."""
    n = max(1, len(images))
    strip = Image.new("RGB", (n * side + (n - 1) * gap, side), (255, 255, 255))
    for k, rgb in enumerate(images):
        strip.paste(thumbnail(rgb, side), (k * (side + gap), 0))
    save_png(strip, path)
    return path


def image_grid(rows: Sequence[Sequence[np.ndarray]], path: Path, side: int = 48, gap: int = 3) -> Path:
    """Save rows of images (e.g. one row per class) as one PNG."""
    n_cols = max(1, max((len(r) for r in rows), default=1))
    grid = Image.new("RGB", (n_cols * side + (n_cols - 1) * gap, max(1, len(rows)) * (side + gap) - gap), (255, 255, 255))
    for i, row in enumerate(rows):
        for k, rgb in enumerate(row):
            grid.paste(thumbnail(rgb, side), (k * (side + gap), i * (side + gap)))
    save_png(grid, path)
    return path


def save_png(im: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG", optimize=True)


def _figure(width: float = 5.0, height: float = 3.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def size_histogram(heights: np.ndarray, widths: np.ndarray, path: Path) -> Path:
    fig, ax = _figure()
    lo = int(min(heights.min(), widths.min()))
    hi = int(max(heights.max(), widths.max()))
    bins = np.arange(lo, hi + 2) - 0.5 if hi - lo < 40 else 40
    ax.hist([heights, widths], bins=bins, label=["height", "width"], color=["#3b6ea5", "#e0a030"])
    ax.set_xlabel("pixels")
    ax.set_ylabel("images")
    ax.legend(frameon=False)
    return save_figure(fig, path)


def class_bars(names: Sequence[str], counts_by_split: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _figure(max(5.0, 0.3 * len(names) + 2), 3.2)
    bottom = np.zeros(len(names))
    colours = ["#3b6ea5", "#e0a030", "#5a9e5a", "#b0506a"]
    for k, (split, counts) in enumerate(counts_by_split.items()):
        ax.bar(range(len(names)), counts, bottom=bottom, label=split, color=colours[k % len(colours)])
        bottom += counts
    if len(names) <= 60:
        rotate = len(names) > 5
        ax.set_xticks(range(len(names)), names, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                      fontsize=8)
    else:
        ax.set_xlabel(f"{len(names)} classes")
    ax.set_ylabel("images")
    ax.legend(frameon=False, ncol=len(counts_by_split), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return save_figure(fig, path)


def thumbnail_png(rgb: np.ndarray, path: Path, side: int = 64) -> Path:
    save_png(thumbnail(rgb, side), path)
    return path


def confusion_graph(names: Sequence[str], pairs, path: Path, top: int = 25) -> Path:
    """Classes on a circle; an edge per confused pair (width: overlap, colour: neural-gas weight)."""
    fig, ax = _figure(5.5, 5.5)
    n = len(names)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    xy = np.stack([np.cos(angles), np.sin(angles)], 1)
    shown = pairs.head(top)
    peak = max(float(shown["overlap"].max()), 1e-12) if len(shown) else 1.0
    wpeak = max(float(shown["neighbour_weight"].max()), 1e-12) if len(shown) else 1.0
    import matplotlib.cm as cm

    for r in shown.itertuples():
        a, b = xy[r.class_a], xy[r.class_b]
        ax.plot([a[0], b[0]], [a[1], b[1]], color=cm.viridis(r.neighbour_weight / wpeak),
                linewidth=0.5 + 6 * r.overlap / peak, alpha=0.8, zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], s=40, color="#1d2330", zorder=2)
    if n <= 60:
        for (x, y), name in zip(xy, names):
            ax.annotate(name, (x * 1.12, y * 1.12), ha="center", va="center", fontsize=8)
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"top {len(shown)} confused pairs: width = overlap, colour = neighbour weight", fontsize=8)
    return save_figure(fig, path)


def reliability_diagram(bins: list[dict], path: Path) -> Path:
    """Accuracy against mean confidence per calibration bin (bar width = bin), with the diagonal."""
    fig, ax = _figure(3.4, 3.2)
    n = len(bins)
    xs = [(i + 0.5) / n for i in range(n)]
    acc = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins]
    conf = [b["confidence"] if b["confidence"] is not None else x for b, x in zip(bins, xs)]
    ax.bar(xs, acc, width=1 / n, color="#3b6ea5", edgecolor="white", label="accuracy")
    ax.bar(xs, [c - a for c, a in zip(conf, acc)], bottom=acc, width=1 / n, color="#e0a030", alpha=0.5,
           edgecolor="white", label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="#444", lw=1, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    return save_figure(fig, path)


def training_curves(metrics: list[dict], path: Path) -> Path:
    fig, ax = _figure(4.2, 3.0)
    epochs = [m["epoch"] for m in metrics]
    ax.plot(epochs, [m["train_acc"] for m in metrics], label="train (augmented)", color="#3b6ea5")
    evals = [(m["epoch"], m["eval_acc"]) for m in metrics if m.get("eval_acc") is not None]
    if evals:
        ax.plot(*zip(*evals), "o-", label="evaluation split", color="#e0a030")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize=7)
    return save_figure(fig, path)


def robustness_heatmap(result: dict, path: Path) -> Path:
    """Accuracy per corruption (rows) and severity (columns), with the clean accuracy in the title."""
    rows = list(result["corruptions"])
    sev = [k for k in next(iter(result["corruptions"].values())) if k != "mean"]
    acc = np.array([[result["corruptions"][r][s] for s in sev] for r in rows])
    fig, ax = _figure(3.8, 0.28 * len(rows) + 1.2)
    im = ax.imshow(acc, vmin=0, vmax=max(result["clean_acc"], 1e-6), cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(rows)), [r.replace("_", " ") for r in rows], fontsize=7)
    ax.set_xticks(range(len(sev)), sev, fontsize=7)
    ax.set_xlabel("severity", fontsize=8)
    for i in range(len(rows)):
        for j in range(len(sev)):
            ax.text(j, i, f"{acc[i, j] * 100:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if acc[i, j] < 0.6 * result["clean_acc"] else "black")
    ax.set_title(f"accuracy % under corruption (clean {result['clean_acc'] * 100:.1f}%)", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return save_figure(fig, path)


def accuracy_vs_keep(summary: list[dict], path: Path) -> Path:
    """Test accuracy (mean ± sd over seeds) against the fraction kept, one line per strategy."""
    fig, ax = _figure(5.0, 3.4)
    strategies = sorted({r["strategy"] for r in summary if r["strategy"] != "full"})
    for s in strategies:
        rows = sorted((r for r in summary if r["strategy"] == s), key=lambda r: r["keep"])
        ax.errorbar([r["keep"] for r in rows], [r["test_acc_mean"] for r in rows], yerr=[r["test_acc_sd"] for r in rows],
                    marker="o", ms=3, capsize=2, lw=1, label=s)
    full = [r for r in summary if r["strategy"] == "full"]
    if full:
        ax.axhline(full[0]["test_acc_mean"], color="#444", ls="--", lw=1, label="all data")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("fraction of training images kept")
    ax.set_ylabel("test accuracy")
    ax.legend(frameon=False, fontsize=6, ncol=2)
    return save_figure(fig, path)


def accuracy_vs_time(cells: list[dict], path: Path) -> Path:
    """Test accuracy of every cell against its training seconds (the cost side of curation)."""
    fig, ax = _figure(5.0, 3.4)
    for s in sorted({c["strategy"] for c in cells}):
        pts = [(c["train_seconds"], c["test_acc"]) for c in cells if c["strategy"] == s and c["test_acc"] is not None]
        if pts:
            ax.scatter(*zip(*pts), s=10, label=s)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test accuracy")
    ax.legend(frameon=False, fontsize=6, ncol=2)
    return save_figure(fig, path)


def runs_time_to_accuracy(curves: dict[str, list[tuple[float, float]]], path: Path,
                          targets: Sequence[float] = (0.90, 0.93)) -> Path:
    """Test accuracy against cumulative training seconds, one line per run (``clearset train
    --eval-every N``), with the ``targets`` dashed: the trainer's time-to-accuracy view."""
    fig, ax = _figure(5.0, 3.4)
    for name, curve in sorted(curves.items()):
        c = np.array(curve, dtype=float)
        ax.plot(c[:, 0] / 60, c[:, 1], marker="o", ms=2, lw=1, label=name)
    for t in targets:
        ax.axhline(t, color="0.6", lw=0.6, ls="--")
    ax.set_xlabel("training minutes")
    ax.set_ylabel("test accuracy")
    ax.legend(frameon=False, fontsize=6)
    return save_figure(fig, path)


def time_to_accuracy(cells: list[dict], path: Path) -> Path:
    """Test accuracy against training seconds along each cell's run (``clearset bench --eval-every N``),
    mean over seeds per (strategy, keep): RS2's time-to-accuracy view."""
    fig, ax = _figure(5.0, 3.4)
    groups: dict = {}
    for c in cells:
        if len(c.get("curve") or []) > 1:
            groups.setdefault((c["strategy"], c["keep"]), []).append(np.array(c["curve"], dtype=float))
    for (strategy, keep), curves in sorted(groups.items()):
        n = min(len(cv) for cv in curves)
        mean = np.mean([cv[:n] for cv in curves], axis=0)
        ax.plot(mean[:, 0], mean[:, 1], marker="o", ms=2, lw=1, label=f"{strategy} {keep:g}")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test accuracy")
    ax.legend(frameon=False, fontsize=6, ncol=2)
    return save_figure(fig, path)


# Plots a stage names in a view (clearset.views.Plot): kind -> (data, path) -> path
PLOTS: Registry[Callable[[dict, Path], Path]] = Registry("plot", listing="plots")
PLOTS.register("class_graph", description="classes on a circle, an edge per confused pair",
               example=lambda: {"classes": ["a", "b", "c"], "pairs": __import__("pandas").DataFrame(
                   {"class_a": [0, 0], "class_b": [1, 2], "overlap": [0.3, 0.1], "neighbour_weight": [0.5, 0.2]})})(
    lambda data, path: confusion_graph(data["classes"], data["pairs"], path))
