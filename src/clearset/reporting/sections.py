"""Report sections. Adding one = a function here (``@section(...)``) + ``templates/sections/<name>.html.j2``.

A section function takes the ReportContext and returns the template's variables, or None when the
workspace has nothing for it (the section is then left out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..registry import Registry
from ..workspace import Workspace
from .plots import (
    PLOTS,
    accuracy_vs_keep,
    accuracy_vs_time,
    class_bars,
    image_grid,
    image_row,
    reliability_diagram,
    robustness_heatmap,
    runs_time_to_accuracy,
    size_histogram,
    thumbnail_png,
    time_to_accuracy,
    training_curves,
)

log = logging.getLogger("clearset")


@dataclass
class ReportContext:
    ws: Workspace
    out_dir: Path

    def asset(self, name: str) -> Path:
        path = self.out_dir / "assets" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def rel(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    order: int
    build: Callable[[ReportContext], dict[str, Any] | None]


SECTIONS: Registry[Section] = Registry("report section", listing="sections")


def section(name: str, title: str, order: int):
    def decorator(fn):
        SECTIONS.register(name)(Section(name, title, order, fn))
        return fn

    return decorator


SAMPLES_PER_CLASS = 10
MAX_CLASSES_SHOWN = 100


@section("dataset", "Dataset card", order=10)
def dataset_card(ctx: ReportContext) -> dict[str, Any]:
    ws = ctx.ws
    optional = [c for c in ("original_label",) if c in ws.manifest_columns()]
    m = ws.manifest(["split", "label", "height", "width", *optional])  # no path strings
    classes = ws.classes()
    splits = list(dict.fromkeys(m["split"]))
    table = pd.crosstab(m["label"], m["split"]).reindex(index=range(-1, len(classes)), columns=splits,
                        fill_value=0)
    unlabelled = int(table.loc[-1].sum())
    table = table.drop(index=-1)
    rows: list[dict[str, Any]] = [{"label": i, "name": classes[i], "counts": [int(table.loc[i, s]) for s in splits],
             "total": int(table.loc[i].sum())} for i in range(len(classes))]
    counts = table.sum(axis=0).to_dict()
    balance = [r["total"] for r in rows if r["total"] > 0]
    bars = class_bars(classes, {s: table[s].to_numpy() for s in splits}, ctx.asset("class_counts.png"))
    sizes = m.groupby(["height", "width"]).size().sort_values(ascending=False)
    hist = None
    if len(sizes) > 1:  # one size needs a sentence, not a chart
        hist = size_histogram(m["height"].to_numpy(), m["width"].to_numpy(), ctx.asset("image_sizes.png"))
    grid = _sample_grid(ctx, m, classes)
    errors = pd.read_parquet(ws.errors_path) if ws.errors_path.exists() else None
    return {
        "n_images": len(m),
        "n_classes": len(classes),
        "splits": splits,
        "split_counts": {s: int(counts.get(s, 0)) for s in splits},
        "unlabelled": unlabelled,
        "rows": rows,
        "imbalance": (max(balance) / min(balance)) if balance else None,
        "common_sizes": [(int(h), int(w), int(c)) for (h, w), c in sizes.head(5).items()],
        "n_sizes": len(sizes),
        "duplicate_hashes": int(len(m) - len(np.unique(ws.hashes()))),
        "class_counts_png": ctx.rel(bars),
        "sizes_png": ctx.rel(hist) if hist else None,
        "grid": grid,
        "errors": errors.head(50).to_dict("records") if errors is not None else [],
        "n_errors": 0 if errors is None else len(errors),
        "relabelled": int((m["label"] != m["original_label"]).sum()) if "original_label" in m else None,
    }


def _sample_grid(ctx: ReportContext, m: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
    """A row of random images per class (seeded), from the first split."""
    rng = np.random.default_rng(0)
    store = ctx.ws.store()
    first = m[m["split"] == m["split"].iloc[0]]
    out = []
    for label, name in enumerate(classes[:MAX_CLASSES_SHOWN]):
        members = first.index[first["label"] == label].to_numpy()
        if len(members) == 0:
            continue
        pick = np.sort(rng.choice(members, size=min(SAMPLES_PER_CLASS, len(members)), replace=False))
        images = list(store.iter_images(pick.tolist()))
        png = image_row(images, ctx.asset(f"samples/class_{label:04d}.png"))
        out.append({"label": label, "name": name, "png": ctx.rel(png), "indices": pick.tolist()})
    return out


@section("embeddings", "Embeddings", order=20)
def embeddings(ctx: ReportContext) -> dict[str, Any] | None:
    from ..evaluate.probe import saved_probes

    sets = ctx.ws.feature_sets()
    if not sets:
        return None
    probes = {p["features"]: p for p in saved_probes(ctx.ws)}
    rows = []
    for meta in sets:
        name = f"{meta['params']['backbone']}@{meta['params']['image_size']}.npy"
        rows.append({"file": name, "backbone": meta["params"]["backbone"], "size": meta["params"]["image_size"],
                     "dim": meta.get("feature_dim"), "precision": meta["params"]["precision"],
                     "rate": meta.get("images_per_s"), "seconds": meta.get("seconds"),
                     "probe": probes.get(name, {}).get("accuracy")})
    return {"rows": rows}


@section("audit", "Audit", order=30)
def audit(ctx: ReportContext) -> dict[str, Any] | None:
    """Each check's views (its report hook, ``audit.base.Check.report``), checks in their ``report_order``:
    all the cards first, then every check's tiles, tables, facts and plots."""
    from ..audit.base import CHECKS, ReportInputs
    from ..workspace import read_json

    out = ctx.ws.dir("audit")
    if not (out / "summary.json").exists():
        return None
    stale = [p.stem for p in out.glob("*.parquet") if not ctx.ws.is_current(p)]
    if stale:
        log.warning("report: audit results %s were made from another manifest; left out (run `clearset audit "
                    "%s` again)", ", ".join(sorted(stale)), ctx.ws.root)
        return None
    summary = read_json(out / "summary.json")
    checks = summary.get("checks", {})
    classes, splits = ctx.ws.classes(), ctx.ws.splits()
    views: list = []
    for name in sorted((n for n in checks if n in CHECKS), key=lambda n: (CHECKS.meta(n)["report_order"], n)):
        spec = CHECKS.get(name)
        if spec.report is None:
            continue
        table_path = out / f"{name}.parquet"
        table = pd.read_parquet(table_path) if table_path.exists() else None
        views += spec.report(ReportInputs(table, checks[name], classes, splits))
    queues = [q for q in ("label_issues", "duplicates", "outliers", "multilabel") if (out / f"{q}.parquet").exists()]
    review: dict[str, Any] = {"command": f"clearset review {ctx.ws.root}", "base": "http://127.0.0.1:8765",
                              "queues": queues}
    decisions = ctx.ws.dir("review") / "decisions.jsonl"
    if decisions.exists():
        with open(decisions, "rb") as fh:
            review["decisions"] = sum(1 for _ in fh)
    return {"features": summary.get("features"), "review": review, **render_views(ctx, views, "audit")}


def render_views(ctx: ReportContext, views: list, prefix: str) -> dict[str, Any]:
    """Views made ready for templates/views.html.j2: thumbnails written for tiles, plots drawn, cards
    gathered in front (``cards``) and the rest in order (``blocks``: (kind, view, extra))."""
    from ..views import Card, Facts, Plot, Table, Tiles

    store = ctx.ws.store()

    def thumb(i: int) -> str:
        return ctx.rel(thumbnail_png(store.load(int(i)), ctx.asset(f"{prefix}/{int(i)}.png")))

    cards = [v for v in views if isinstance(v, Card)]
    blocks: list[tuple[str, Any, Any]] = []
    for v in views:
        if isinstance(v, Tiles) and v.tiles:
            blocks.append(("tiles", v, [[(thumb(i), int(i)) for i in (t.index if isinstance(t.index, tuple)
                                                                      else (t.index,))] for t in v.tiles]))
        elif isinstance(v, Table) and v.rows:
            blocks.append(("table", v, None))
        elif isinstance(v, Facts):
            blocks.append(("facts", v, None))
        elif isinstance(v, Plot):
            path = PLOTS.get(v.kind)(v.data, ctx.asset(f"{prefix}/{v.kind}-{len(blocks)}.png"))
            blocks.append(("plot", v, ctx.rel(path)))
    return {"cards": cards, "blocks": blocks}


@section("training", "Training runs", order=40)
def training(ctx: ReportContext) -> dict[str, Any] | None:
    """One row per finished run under WS/runs/, with its evaluation metrics (after `clearset eval`),
    training curve and reliability diagram."""
    from ..artifacts.runs import load_run
    from ..workspace import read_json

    runs_dir = ctx.ws.dir("runs")
    if not runs_dir.is_dir():
        return None
    rows = []
    for root in sorted(p for p in runs_dir.iterdir() if (p / "model.safetensors").exists()):
        run = load_run(root)
        if run.config.get("pixels") not in (None, ctx.ws.manifest_key()):
            log.warning("report: run %s was trained on another manifest; left out", run.name)
            continue
        m = read_json(root / "metrics.json") if (root / "metrics.json").exists() else {}
        row = {"name": run.name, "recipe": run.config["recipe"]["name"], "model": run.config["recipe"]["model"],
               "epochs": len(run.metrics), "images": run.config.get("train_images"),
               "seconds": sum(x.get("seconds", 0) for x in run.metrics),
               "acc": m.get("top1", run.metrics[-1].get("eval_acc") if run.metrics else None),
               "ece": m.get("ece"), "nll": m.get("nll"), "human": m.get("human_expected_agreement"),
               "openset": (m.get("openset") or {}).get("max_logit", {}).get("auroc"),
               "curve": ctx.rel(training_curves(run.metrics, ctx.asset(f"runs/{run.name}-curve.png"))),
               "metrics": run.metrics}
        if m.get("reliability"):
            row["reliability"] = ctx.rel(reliability_diagram(m["reliability"],
                                                                   ctx.asset(f"runs/{run.name}-reliability.png")))
        if (root / "robustness.json").exists():
            rob = read_json(root / "robustness.json")
            row["robustness"] = {"clean": rob["clean_acc"], "corrupt": rob.get("mean_corruption_acc"),
                                 "shift": rob.get("shift", {})}
            if rob.get("corruptions"):
                row["robustness"]["png"] = ctx.rel(robustness_heatmap(rob, ctx.asset(f"runs/{run.name}-robustness.png")))
        if (root / "mistakes.json").exists():
            row["mistakes"] = _mistake_grids(ctx, root, read_json(root / "mistakes.json"))
        rows.append(row)
    curves = {}
    for row in rows:  # runs evaluated along the way (--eval-every): accuracy against training time
        metrics = row.pop("metrics")
        points = [(float(s), float(m["eval_acc"])) for s, m in
                  zip(np.cumsum([x.get("seconds", 0) for x in metrics]), metrics) if m.get("eval_acc") is not None]
        if len(points) > 1:
            curves[row["name"]] = points
    tta = ctx.rel(runs_time_to_accuracy(curves, ctx.asset("runs/time_to_accuracy.png"))) if curves else None
    return {"rows": rows, "time_to_accuracy": tta} if rows else None


def _mistake_grids(ctx: ReportContext, root, summary: dict, per_kind: int = 12) -> dict[str, Any]:
    """Counts per kind of mistake and up to ``per_kind`` thumbnails of each (given -> predicted)."""
    classes = ctx.ws.classes()
    table = pd.read_parquet(root / "mistakes.parquet")
    store = ctx.ws.store()
    kinds = []
    for kind, count in summary["counts"].items():
        rows = table[table["kind"] == kind].head(per_kind)
        tiles = [{"index": int(r.index), "given": classes[int(r.label)], "pred": classes[int(r.prediction)],
                  "img": ctx.rel(thumbnail_png(store.load(int(r.index)), ctx.asset(f"mistakes/{int(r.index)}.png")))}
                 for r in rows.itertuples()]
        kinds.append({"kind": kind.replace("_", " "), "count": count, "share": summary["shares"][kind], "tiles": tiles})
    return {"errors": summary["errors"], "evidence": summary["evidence"], "kinds": kinds}


@section("distilled", "Distilled sets", order=45)
def distilled(ctx: ReportContext) -> dict[str, Any] | None:
    """Every synthetic set under WS/distilled/: method, images per class, iterations, the evaluation
    (after `clearset distill`, mean ± sd of test accuracy) and the images, one row per class."""
    from ..artifacts.distilled import load_distilled
    from ..workspace import read_json

    folder = ctx.ws.dir("distilled")
    if not folder.is_dir():
        return None
    classes, rows = ctx.ws.classes(), []
    for path in sorted(folder.glob("*.npz")):
        d = load_distilled(path)
        name = path.name[: -len(".npz")]
        meta_path, eval_path = ctx.ws.sidecar_of(path), path.with_name(name + ".eval.json")
        meta = read_json(meta_path) if meta_path.exists() else {}
        ev = read_json(eval_path) if eval_path.exists() else {}
        pixels, per_class = d.pixels(), 10
        grid = [[pixels[i] for i in np.flatnonzero(d.labels == c)[:per_class]] for c in np.unique(d.labels)[:20]]
        rows.append({"name": name, "method": d.config.get("method"), "ipc": d.ipc, "images": len(d.labels),
                     "iterations": d.config.get("iterations"), "speed": meta.get("iterations_per_second"),
                     "acc": ev.get("test_acc_mean"), "sd": ev.get("test_acc_sd"), "seeds": ev.get("seeds"),
                     "row_classes": [classes[int(c)] for c in np.unique(d.labels)[:20]],
                     "grid": ctx.rel(image_grid(grid, ctx.asset(f"distilled/{name}.png")))})
    return {"rows": rows} if rows else None


@section("instructions", "Labeling instructions", order=25)
def labeling_instructions(ctx: ReportContext) -> dict[str, Any] | None:
    """The newest ``clearset explain-instructions``: each class's exemplars and boundary examples."""
    from ..views import Column, Table, Tile, Tiles
    from ..workspace import read_json

    found = sorted(ctx.ws.dir("explain").glob("instructions-*.json"), key=lambda q: q.stat().st_mtime)
    if not found:
        return None
    r = read_json(found[-1])
    views: list = []
    if r.get("map"):
        views.append(Table("Exemplar rules scored as a proxy annotator (retrieval mAP on the held-out test split)",
                           (Column("rule", text=True), Column("map", "mAP", ".4f")),
                           tuple({"rule": k, "map": v} for k, v in r["map"].items()), open=True))
    for name, c in list(r["classes"].items())[:MAX_CLASSES_SHOWN]:
        tiles = [Tile(i, caption="exemplar") for i in c["exemplars"]]
        tiles += [Tile(b["index"], caption="boundary", note=f"near {b['near']}") for b in c["boundary"]]
        views.append(Tiles(f"{name}: exemplars ({r['rule']}), then boundary examples", tuple(tiles)))
    return {"features": r["features"], **render_views(ctx, views, "instructions")}


@section("security", "Security", order=45)
def security(ctx: ReportContext) -> dict[str, Any] | None:
    """Backdoor checks: ``clearset expose`` verdicts per run, ``clearset scan-poison`` flags, and the
    ground truth of a ``clearset poison`` copy."""
    from ..views import Card, Facts, Tile, Tiles
    from ..workspace import read_json

    folder = ctx.ws.dir("security")
    views: list = []
    truth = folder / "poison_truth.parquet"
    if truth.exists() and ctx.ws.sidecar_of(truth).exists():
        t = read_json(ctx.ws.sidecar_of(truth))
        views.append(Facts("This workspace is a poisoned copy (clearset poison)",
                           tuple((k, t[k]) for k in ("attack", "rate", "target_name", "poisoned_train", "source")
                                 if k in t)))
    for path in sorted(folder.glob("expose-*.json")):
        e = read_json(path)
        views.append(Card(e["verdict"], f"{e['run']}: clean unlearning"))
        views.append(Facts(f"{e['run']}: clean unlearning (EBYD)", (
            ("suspected target", e["suspected_target_name"]), ("share of predictions there", round(e["score"], 3)),
            ("margin over the runner-up", round(e["margin"], 3)),
            ("clean accuracy before / after", f"{e['clean_acc_before']:.3f} / {e['clean_acc_after']:.3f}"),
            ("reached chance", e["reached_chance"]),
            ("threshold", f"{e['threshold']} ({'calibrated' if e['threshold_calibrated'] else 'not calibrated'})"))))
    classes = ctx.ws.classes()
    for path in sorted(folder.glob("scan-*.parquet")):
        s = pd.read_parquet(path)
        top = s[s["flagged"]].sort_values("spectral_score", ascending=False).head(24)
        views.append(Facts(f"{path.stem}: poisoned-row scan", (("flagged by both detectors", int(s["flagged"].sum())),
                                                                 ("spectral signatures", int(s["spectral_flag"].sum())),
                                                                 ("activation clustering", int(s["ac_flag"].sum())))))
        if len(top):
            views.append(Tiles(f"{path.stem}: flagged images, highest spectral score first",
                               tuple(Tile(int(i), caption=classes[int(y)]) for i, y in zip(top["index"], top["label"]))))
    return render_views(ctx, views, "security") if views else None


@section("bench", "Curation bench", order=50)
def bench(ctx: ReportContext) -> dict[str, Any] | None:
    """The leaderboard of `clearset bench`: accuracy per strategy and fraction kept, mean ± sd over seeds."""
    from ..leaderboard.runner import TABLE_LEGEND, leaderboard_table
    from ..workspace import read_json

    path = ctx.ws.dir("bench") / "leaderboard.json"
    if not path.exists():
        return None
    board = read_json(path)
    table = leaderboard_table(board["summary"])
    return {"budget": board["budget"], "recipe": board["recipe"]["name"], "epochs": board["recipe"]["epochs"],
            "legend": TABLE_LEGEND,
            "columns": [f"{k:g}" for k in table.columns], "rows": [(s, list(r)) for s, r in table.iterrows()],
            "keep_png": ctx.rel(accuracy_vs_keep(board["summary"], ctx.asset("bench/accuracy_vs_keep.png"))),
            "time_png": ctx.rel(accuracy_vs_time(board["cells"], ctx.asset("bench/accuracy_vs_time.png"))),
            "tta_png": ctx.rel(time_to_accuracy(board["cells"], ctx.asset("bench/time_to_accuracy.png")))
            if any(len(c.get("curve") or []) > 1 for c in board["cells"]) else None}
