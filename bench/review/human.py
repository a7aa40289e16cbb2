"""Audit + human review against audit only: what B human decisions in ``clearset review`` are worth.

Workspace: CIFAR-10 train with the CIFAR-10N ``--labels`` (default ``worse``, 40.2% wrong), embedded and
audited exactly as bench/curate/cifar10n.py does (the audit sees the training labels only). A simulated
annotator stands in for the person at the app: it takes the findings of the label-issue queue in the app's
order (highest score first) and, for each, keeps the image when its given label is the CIFAR-10 label and
relabels it to the CIFAR-10 label when not (``--annotator-error p``: with probability p it answers a
random other class instead). The CIFAR-10 labels never reach the audit or the training of any arm except
through these decisions. Decisions go through the review's decision log (``DecisionLog.decide``, the call
the app's POST /api/decide makes) and ``apply_review`` (the Apply button) makes the version the
``reviewed`` strategy trains on.

Arms, every one at each ``--keep`` with the same recipe and seeds, tested on the clean test set:
- ``random``: a uniform sample, no audit;
- ``clean``: audit only (drop what the audit flags, fill at random from the rest);
- ``reviewed@B``: audit + B decisions on the audit's queue (``reviewed`` strategy);
- ``reviewed-random@B`` (with ``--random-order``): the same B decisions spent on random training images,
  to separate what the audit's ordering is worth from what B verified labels are worth;
- ``full``: every image with its given label.
Per arm: mean ± sd over seeds of test accuracy, the share of kept images whose label is still wrong, and
a Welch t-test of ``reviewed@B`` against ``clean`` at the same keep.

    .venv/bin/python bench/review/human.py [--labels worse] [--budgets 1000,3000,10000] [--keep 0.3,0.5,0.6]
        [--seeds 3] [--recipe linear-probe] [--annotator-error 0] [--random-order] [--no-full]

Writes bench/results/review_human_<labels>_<recipe>[_err<p>].json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clearset.leaderboard.runner import run_bench, summarise
from clearset.ops.stats import verdict
from clearset.review.apply import apply_review
from clearset.review.decisions import open_log
from clearset.review.findings import Findings, review_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "curate"))

from noisy import kept_label_noise, prepare  # noqa: E402

from common import ROOT, compare, write_result  # noqa: E402


def simulated_decisions(findings: list[str], order: np.ndarray, given: np.ndarray, truth: np.ndarray,
                        error: float, rng: np.random.Generator, n_classes: int) -> list[dict]:
    """One decision per finding (on image ``order[j]``): keep when the given label is the truth, else relabel
    to it (the app's decision records: old and new label); with probability ``error`` the annotator answers
    a uniformly drawn other class instead of the truth."""
    out = []
    for finding, i in zip(findings, order):
        answer = int(truth[i])
        if error > 0 and rng.random() < error:
            answer = int(rng.choice([c for c in range(n_classes) if c != answer]))
        action = "keep" if answer == given[i] else "relabel"
        out.append({"finding": finding, "action": action, "index": int(i), "old": int(given[i]), "new": answer})
    return out


def review(ws, decisions: list[dict]) -> dict:
    """A fresh review holding exactly ``decisions`` (the decision log and versions of earlier arms removed),
    applied; returns apply's summary."""
    folder = review_dir(ws)
    for name in ("decisions.jsonl", "decisions.lock", "versions"):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    log = open_log(folder)
    for start in range(0, len(decisions), 1000):  # the app's bulk route appends at most this many per request
        log.decide(decisions[start:start + 1000])
    return apply_review(ws, log=log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="worse")
    ap.add_argument("--recipe", default="linear-probe")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--budgets", default="1000,3000,10000", help="numbers of human decisions")
    ap.add_argument("--keep", default="0.3,0.5,0.6")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--annotator-error", type=float, default=0.0)
    ap.add_argument("--random-order", action="store_true", help="also spend each budget on random images")
    ap.add_argument("--no-full", action="store_true", help="skip the all-data reference rows")
    args = ap.parse_args()
    ws, train, clean = prepare(args.labels)
    keeps, seeds = [float(k) for k in args.keep.split(",")], list(range(args.seeds))
    budgets = [int(b) for b in args.budgets.split(",")]
    manifest_labels = ws.manifest()["label"].to_numpy()
    truth = manifest_labels.copy()
    truth[train["index"].to_numpy()] = clean  # per manifest row: the CIFAR-10 label (training rows only used)
    n_classes = len(ws.classes())
    queue = Findings(ws).queue("label_issues")
    queue = queue[queue["split"].astype(str) == "train"] if "split" in queue else queue
    audit_order = queue["index"].to_numpy(np.int64)  # the app's order: highest score first
    audit_findings = queue["finding"].tolist()
    print(f"{len(audit_order)} label-issue findings on the training split", flush=True)
    t0 = time.perf_counter()
    boards = []

    def arm(name: str, strategies: list[str], full: bool) -> None:
        board = run_bench(ws, strategies=strategies, keeps=keeps, seeds=seeds, recipe=args.recipe, epochs=args.epochs,
                          full=full)
        board["kept_label_noise"] = kept_label_noise(board, train, clean)  # now: the subset files change per arm
        board["arm"] = [name if s == "reviewed" else s for s in board["strategy"]]
        boards.append(board)
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)

    arm("audit only", ["random", "clean"], full=not args.no_full)
    orders = {"reviewed": (audit_findings, audit_order)}
    if args.random_order:  # the map's box selection opens images as findings named image:N
        shuffled = np.random.default_rng(7).permutation(train["index"].to_numpy(np.int64))
        orders["reviewed-random"] = ([f"image:{i}" for i in shuffled], shuffled)
    summaries = {}
    for prefix, (names, order) in orders.items():
        for b in budgets:
            chosen = order[:b]
            decisions = simulated_decisions(names[:b], chosen, manifest_labels, truth, args.annotator_error,
                                            np.random.default_rng(11), n_classes)
            applied = review(ws, decisions)
            name = f"{prefix}@{b}"
            summaries[name] = {"decisions": len(decisions), "relabelled": applied["relabelled"],
                               "given_label_wrong_among_reviewed": float((manifest_labels[chosen] != truth[chosen]).mean()),
                               "reviewed_label_wrong": float(np.mean([d["new"] != truth[d["index"]]
                                                                      for d in decisions]))}
            arm(name, ["reviewed"], full=False)
    board = pd.concat(boards, ignore_index=True)
    summary = summarise(board.assign(strategy=board["arm"]))
    for s in summary:
        cells = board[(board["arm"] == s["strategy"]) & (board["keep"] == s["keep"])]
        s["kept_label_noise"] = float(cells["kept_label_noise"].mean())
        s["train_images"] = float(cells["train_images"].mean())
        if s["strategy"].startswith("reviewed"):
            base = board[(board["arm"] == "clean") & (board["keep"] == s["keep"])]["test_acc"].to_numpy()
            mine = cells["test_acc"].to_numpy()
            s["vs_clean"] = compare(mine, base)
            s["vs_clean_points"] = round(100 * s["vs_clean"]["diff"], 2)
            s["vs_clean_p"] = s["vs_clean"]["p"]
            s.update(summaries[s["strategy"]])
    print(f"{args.labels} labels, recipe {args.recipe}, {len(seeds)} seeds, annotator error {args.annotator_error}; "
          f"{time.perf_counter() - t0:.0f} s")
    for s in sorted(summary, key=lambda s: (s["keep"], s["strategy"])):
        extra = f"  vs clean {verdict(s['vs_clean'], unit=100)} points" if "vs_clean" in s else ""
        print(f"  keep {s['keep']:.1f} {s['strategy']:22s} {s['test_acc_mean']:.4f} ± {s['test_acc_sd']:.4f}  "
              f"kept noise {s['kept_label_noise']:.3f}{extra}")
    tag = f"_err{args.annotator_error:g}" if args.annotator_error else ""
    out = ROOT / "bench" / "results" / f"review_human_{args.labels}_{args.recipe}{tag}.json"
    write_result(out, {"bench": "review_human", "date": time.strftime("%Y-%m-%d"), "labels": args.labels,
                       "recipe": args.recipe, "seeds": len(seeds), "annotator_error": args.annotator_error,
                       "budgets": budgets, "label_issue_findings": int(len(audit_order)),
                       "features": "efficientnet_lite0@128", "summary": summary,
                       "cells": board.drop(columns=["curve"]).to_dict("records")})
    print(f"-> {out}")


if __name__ == "__main__":
    main()
