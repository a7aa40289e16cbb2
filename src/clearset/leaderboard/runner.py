"""``clearset bench WS --strategies a,b --keep 0.1,0.3 --seeds 2 --recipe NAME``: every (strategy, keep,
seed) cell curated, trained with the same recipe and evaluated, as DataComp and SELECT do.

- Budgets, named in the output: ``epochs`` (every cell trains the recipe's epochs over its own subset, so
  smaller subsets cost less) and ``iterations`` (every cell trains as many iterations as the full data
  would: epochs / keep, the fair comparison of the RS2 card; for a strategy that appends augmented copies,
  epochs / (its rows plus copies over N)). RS2 draws keep·N fresh rows per epoch, so at
  either budget it sees as many images per epoch as a static subset of the same keep.
- A reference cell trains on all the data (strategy ``full``) per seed.
- Distilled sets (``clearset distill``) enter as strategies named ``distilled:<method>``, their keep being
  the synthetic image count over the training set size; the same recipe trains on them (the sets must be
  distilled at the recipe's image size).
- Every cell is cached by its curation and training keys: an interrupted bench resumes, a finished one
  is a cache hit. Cells run through an engine's ``map`` (local today; a Ray engine can run them in
  parallel without changing this code).
- Writes ``WS/bench/leaderboard.csv`` and ``.json`` (one row per cell plus a mean/sd summary per
  strategy and keep); the report draws accuracy against the share kept and against training time.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow.parquet as pq

from ..errors import ParameterError, param
from ..train.recipes import DEFAULT_RECIPE
from ..workspace import Workspace, atomic_path, write_json, write_table

log = logging.getLogger("clearset")
BUDGETS = ("epochs", "iterations")


@dataclass(frozen=True)
class Cell:
    strategy: str
    keep: float
    seed: int


def run_bench(workspace: str | Path | Workspace, *, strategies: list[str], keeps: list[float], seeds: list[int],
              recipe: str = DEFAULT_RECIPE, epochs: int | None = None, budget: str = "epochs",
              trusted: str | Path | None = None, features: str | None = None, eval_every: int = 0,
              options: dict[str, dict] | None = None, full: bool = True, engine=None,
              distilled: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """Run every cell (cached) and write the leaderboard; returns it (one row per cell)."""
    from ..curate import STRATEGIES, curate
    from ..train import get_recipe, train

    ws = Workspace.of(workspace)
    ws.require_manifest()
    if budget not in BUDGETS:
        raise ParameterError(f"{param('budget')} must be one of {', '.join(BUDGETS)}")
    for s in strategies:
        STRATEGIES.get(s)
    for k in keeps:
        if not 0 < k <= 1:
            raise ParameterError(f"{param('keep')} values must be fractions in (0, 1], got {k}")
    if not seeds:
        raise ParameterError(f"{param('seeds')} must name at least one seed")
    rec = get_recipe(recipe).with_overrides(epochs=epochs)
    cells = [Cell(s, k, seed) for s in strategies for k in keeps for seed in seeds]
    if full:
        cells += [Cell("full", 1.0, seed) for seed in seeds]
    synthetic = {}
    if distilled:
        from ..artifacts.distilled import load_distilled
        from ..data.loading import split_rows

        n_train = int((split_rows(ws, "train")[0] >= 0).sum())
        for path in distilled:
            d = load_distilled(path)
            label = f"distilled:{d.config.get('method', Path(path).stem)}"
            synthetic[label] = Path(path)
            cells += [Cell(label, len(d.labels) / n_train, seed) for seed in seeds]

    n_labelled = int((ws.manifest(["split", "label"]).query("split == 'train'")["label"] >= 0).sum())

    def run_cell(cell: Cell) -> dict:
        t0 = time.perf_counter()
        subset = None
        if cell.strategy != "full" and cell.strategy not in synthetic:
            subset = curate(ws, strategy=cell.strategy, keep=cell.keep, seed=cell.seed, trusted=trusted,
                            features=features, **(options or {}).get(cell.strategy, {})).path
        n_epochs = rec.epochs if budget == "epochs" else max(1, math.ceil(rec.epochs / _epoch_share(cell, subset)))
        run = train(ws, recipe=rec.with_overrides(epochs=n_epochs), seed=cell.seed, subset=subset,
                    eval_every=eval_every, distilled=synthetic.get(cell.strategy))
        seconds = sum(m.get("seconds", 0) for m in run.metrics)
        elapsed, curve = 0.0, []  # (training seconds so far, test accuracy): the time-to-accuracy view
        for m in run.metrics:
            elapsed += m.get("seconds", 0)
            if m.get("eval_acc") is not None:
                curve.append((round(elapsed, 3), m["eval_acc"]))
        row = {**asdict(cell), "budget": budget, "recipe": rec.name, "epochs": n_epochs,
               "options": json.dumps((options or {}).get(cell.strategy, {}), sort_keys=True),
               "subset": str(subset or synthetic.get(cell.strategy) or "") or None,
               "train_images": run.config["train_images"], "test_acc": run.metrics[-1].get("eval_acc"),
               "train_seconds": round(seconds, 1), "images_seen": _images_seen(run), "run": run.name,
               "curve": curve, "cell_seconds": round(time.perf_counter() - t0, 1)}
        log.info("bench: %-14s keep %.2f seed %d -> test accuracy %.4f", cell.strategy, cell.keep, cell.seed,
                 row["test_acc"] or float("nan"))
        return row

    def _epoch_share(cell: Cell, subset: Path | None) -> float:
        """Rows one epoch trains on, as a share of the training set: keep, or for a strategy that appends
        strongly augmented copies (craig-augment) all its rows plus the copies."""
        if subset is not None:
            columns = pq.read_schema(subset).names
            if "augment" in columns:
                table = pd.read_parquet(subset, columns=["augment"])
                return (len(table) + int(table["augment"].sum())) / n_labelled
        return cell.keep

    from ..engines.local import ordered_map

    mapper = engine.map if engine is not None else (lambda fn, items: ordered_map(fn, items, threads=1))
    rows = list(mapper(run_cell, cells))
    board = pd.DataFrame(rows)
    out = ws.dir("bench")
    write_table(out / "leaderboard.parquet", board.drop(columns=["curve"]))
    with atomic_path(out / "leaderboard.csv") as tmp:
        board.drop(columns=["curve"]).to_csv(tmp, index=False)
    write_json(out / "leaderboard.json", {"recipe": rec.as_dict(), "budget": budget, "cells": rows,
                                          "summary": summarise(board)})
    return board


def _images_seen(run) -> int:
    return int(sum(m.get("images_per_s", 0) * m.get("seconds", 0) for m in run.metrics))


def summarise(board: pd.DataFrame) -> list[dict]:
    """Per strategy and keep: mean, sample sd and 95% interval of test accuracy over seeds, mean training
    seconds, and -- where a ``random`` arm ran at the same keep -- the difference from it with its interval
    and Welch t-test (``vs_random``; clearset.ops.stats, the rule every bench uses)."""
    from ..ops.stats import compare, describe

    out = []
    for (s, k), g in board.groupby(["strategy", "keep"], sort=True):
        acc = g["test_acc"].astype(float).to_numpy()
        d = describe(acc)
        row = {"strategy": s, "keep": float(k), "seeds": int(len(g)), "test_acc_mean": float(acc.mean()),
               "test_acc_sd": d["sd"] or 0.0, "test_acc_ci95": d["ci95"],
               "train_seconds_mean": float(g["train_seconds"].mean())}
        base = board[(board["strategy"] == "random") & (board["keep"] == k)]["test_acc"].astype(float).to_numpy()
        if s != "random" and len(base):
            row["vs_random"] = compare(acc, base)
        out.append(row)
    return out


def leaderboard_table(summary: list[dict]) -> pd.DataFrame:
    """Strategies as rows, keep fractions as columns, 'mean ± sd' cells (for the report and notes), marked
    against random at the same keep (``TABLE_LEGEND``): ``*`` significantly different, ``n.s.`` not."""
    df = pd.DataFrame(summary)
    if df.empty:
        return df
    marks = [_mark(r.get("vs_random")) for r in summary]
    df["cell"] = [f"{m:.4f} ± {s:.4f}{mark}" for m, s, mark in zip(df["test_acc_mean"], df["test_acc_sd"], marks)]
    return df.pivot(index="strategy", columns="keep", values="cell").fillna("–")


TABLE_LEGEND = ("± is the sample sd over seeds; * differs from random at the same keep (Welch t-test, p < 0.05), "
                "n.s. does not, ? cannot be tested (fewer than 2 seeds)")


def _mark(c: dict | None) -> str:
    if not c:
        return ""
    return " ?" if c["p"] is None else " *" if c["significant"] else " n.s."
