"""CIFAR-10 with CIFAR-10N labels on the training split, embedded and audited: the workspace the curation
and human-review benches share (bench/curate/cifar10n.py, bench/review/human.py), and the kept-label-noise
measure both report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import clearset
from clearset.audit import run_audit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, SHARED  # noqa: E402


def prepare(labels: str):
    """(workspace, its training rows, their clean labels): CIFAR-10 with the CIFAR-10N ``labels`` on the
    training split, embedded with EfficientNet-Lite0@128 and audited (label issues, duplicates, outliers)."""
    label_file = SHARED / "labels" / f"cifar10n_{labels}.npy"
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / f"ws_curate_{labels}", labels=[f"train={label_file}"])
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=128)
    # the audit that feeds curation reads the training labels only: the clean test labels neither vote nor
    # take part in the folds that flag training images (before 2026-12-07 they did: issue 22's leak)
    run_audit(ws, checks=["label_issues", "duplicates", "outliers"], label_splits=["train"])
    m = ws.manifest()
    return ws, m[m["split"] == "train"], np.load(SHARED / "labels" / "cifar10n_clean.npy")


def kept_label_noise(board: pd.DataFrame, train: pd.DataFrame, clean: np.ndarray) -> list[float]:
    """Per bench row: the share of the images it trained on whose training label is not the clean one."""
    pos = pd.Series(np.arange(len(train)), index=train["index"].to_numpy())
    noise = []
    for r in board.itertuples():
        if r.strategy == "full":
            noise.append(float((train["label"].to_numpy() != clean).mean()))
            continue
        kept = pd.read_parquet(r.subset)
        rows = pos[kept["index"]].to_numpy()
        lab = kept["label"].to_numpy() if "label" in kept else train["label"].to_numpy()[rows]
        noise.append(float((lab != clean[rows]).mean()))
    return noise
