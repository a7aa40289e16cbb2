"""Curation strategies side by side on CIFAR-10 with real human label noise (CIFAR-10N), one recipe.

Workspace: CIFAR-10 train (50,000) with ``--labels`` (default the CIFAR-10N ``worse`` labels, 40.2% wrong;
``clean`` for the original labels) and the clean test set (10,000). Inputs every strategy may use:
EfficientNet-Lite0@128 ImageNet features, the audit (label issues, duplicates, outliers), and -- for the
``filter`` strategy -- a trusted set of 500 training images (1%, seeded) with their verified (clean) labels.
Every (strategy, keep, seed) cell is curated, trained with ``--recipe`` and tested on the clean test set;
besides accuracy, the share of kept images whose given label is wrong is reported.

    .venv/bin/python bench/curate/cifar10n.py [--labels worse] [--recipe linear-probe] [--keep 0.1,0.3,0.5]
        [--seeds 2] [--strategies random,rs2,prototypes,dbp,semdedup+dbp,el2n-probe,craig-probe,filter,clean]
        [--tag _name] [--budget epochs|iterations]

Strategies that rank by networks trained on the pixels (el2n, forgetting, craig-pixel, craig-augment-pixel)
first run ``clearset score`` on the workspace with ``--score-recipe`` and each method's default epochs and
runs (cached; recorded under ``pixel_scores``).

Writes bench/results/curate_cifar10n_<labels>_<recipe>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clearset.curate.base import PIXEL_SCORES, STRATEGIES
from clearset.leaderboard.runner import leaderboard_table, run_bench, summarise
from clearset.scores import pixel_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from noisy import kept_label_noise, prepare  # noqa: E402

from common import CACHE, ROOT, write_result  # noqa: E402

ALL = "random,rs2,prototypes,dbp,semdedup+dbp,el2n-probe,craig-probe,filter,clean"


def parse_options(spec: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in filter(None, spec.split(";")):
        strategy, _, assignment = item.partition(":")
        name, _, value = assignment.partition("=")
        try:
            parsed = float(value) if "." in value else int(value)
        except ValueError:
            parsed = value
        out.setdefault(strategy, {})[name] = parsed
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="worse")
    ap.add_argument("--recipe", default="linear-probe")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--keep", default="0.1,0.3,0.5")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--strategies", default=ALL)
    ap.add_argument("--budget", default="epochs")
    ap.add_argument("--trusted", type=int, default=500)
    ap.add_argument("--no-full", action="store_true", help="skip the all-data reference rows")
    ap.add_argument("--options", default="", help="strategy options, e.g. 'filter:mode=agree;el2n:offset=0.4'")
    ap.add_argument("--tag", default="", help="suffix of the result file (for option variants)")
    ap.add_argument("--score-recipe", default="cifar-resnet8-fast",
                    help="recipe of the networks behind el2n / forgetting / craig-pixel scores (their defaults)")
    ap.add_argument("--eval-every", type=int, default=0, help="test every N epochs (time-to-accuracy curves)")
    args = ap.parse_args()
    ws, train, clean = prepare(args.labels)
    wrong = train["label"].to_numpy() != clean
    trusted_rows = np.sort(np.random.default_rng(12345).choice(len(train), args.trusted, replace=False))
    trusted = CACHE / f"trusted_{args.trusted}.parquet"
    pd.DataFrame({"index": train["index"].to_numpy()[trusted_rows], "label": clean[trusted_rows]}).to_parquet(trusted)
    strategies = args.strategies.split(",")
    if args.recipe == "linear-probe" and "rs2" in strategies:
        strategies.remove("rs2")  # RS2 samples per epoch; the probe is one full-batch fit
        print("rs2 skipped: the linear-probe recipe has no epochs to resample", flush=True)
    t = time.perf_counter()
    scores = {}
    for method, what in PIXEL_SCORES.items():  # el2n, forgetting, craig-pixel: networks trained on the pixels
        if any(f"{method}_{what}" in STRATEGIES.get(s).needs for s in strategies):
            scores[method] = str(pixel_scores(ws, method=method, recipe=args.score_recipe).relative_to(ws.root))
            print(f"{method} scores: {scores[method]}", flush=True)
    board = run_bench(ws, strategies=strategies, keeps=[float(k) for k in args.keep.split(",")],
                      seeds=list(range(args.seeds)), recipe=args.recipe, epochs=args.epochs, budget=args.budget,
                      trusted=trusted, full=not args.no_full, options=parse_options(args.options),
                      eval_every=args.eval_every)
    board["kept_label_noise"] = kept_label_noise(board, train, clean)
    summary = summarise(board)
    for s in summary:
        s["kept_label_noise"] = float(board[(board["strategy"] == s["strategy"]) & (board["keep"] == s["keep"])]
                                      ["kept_label_noise"].mean())
    print(f"{args.labels} labels ({wrong.mean():.1%} wrong), recipe {args.recipe}, budget {args.budget}; "
          f"{time.perf_counter() - t:.0f} s")
    print(leaderboard_table(summary).to_string())
    for s in summary:
        print(f"  {s['strategy']:14s} keep {s['keep']:.1f}: kept label noise {s['kept_label_noise']:.3f}")
    out = ROOT / "bench" / "results" / f"curate_cifar10n_{args.labels}_{args.recipe}{args.tag}.json"
    write_result(out, {"bench": "curate_cifar10n", "date": time.strftime("%Y-%m-%d"), "labels": args.labels,
                       "label_noise": float(wrong.mean()), "recipe": args.recipe, "budget": args.budget,
                       "trusted_images": args.trusted, "features": "efficientnet_lite0@128",
                       "options": parse_options(args.options), "pixel_scores": scores,
                       "summary": summary, "cells": board.drop(columns=["curve"]).to_dict("records")})
    print(f"-> {out}")


if __name__ == "__main__":
    main()
