"""Apply the review: the decisions in force become a new manifest version and the files other tools read.

``WS/review/versions/v<N>/`` (written in a staging folder and renamed, so it exists whole or not at all):

- ``manifest.parquet``: every row of the current manifest with ``given_label``, ``label`` (after review),
  ``clean_label`` (the same; ``--labels FILE`` reads it), ``drop``, ``ambiguous``, ``decision``.
- ``subset.parquet``: the training rows that are kept, with their reviewed labels (``index``, ``weight``,
  ``label``): ``clearset train WS --subset FILE`` trains on the reviewed dataset.
- ``changes.csv``: one row per image whose label or membership changed.
- ``label_issues.csv``: cleanlab's ``find_label_issues`` columns for the reviewed label-issue queue
  (``is_label_issue``, ``label_quality``, ``given_label``, ``predicted_label``) plus the human verdict.
- ``label_studio.json``: import tasks (Label Studio's JSON format) for the images marked ambiguous, for a
  second annotator.

The workspace's own manifest is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts.reviewed import next_version, versions_dir
from ..io import write_json
from ..workspace import Workspace
from .decisions import DecisionLog, open_log
from .findings import Findings, review_dir


def reviewed_state(findings: Findings, log: DecisionLog) -> pd.DataFrame:
    """Per image: the label after review, drop, ambiguous and the action of its latest decision. Decisions
    in force apply in the order they were made, so a later relabel of the same image wins."""
    n = findings.n
    label = findings.labels.copy()
    drop = np.zeros(n, dtype=bool)
    ambiguous = np.zeros(n, dtype=bool)
    decision = np.full(n, "", dtype=object)
    for rec in log.effective():
        i = int(rec["index"])
        if not 0 <= i < n:
            continue  # a decision about an image this manifest does not have (a log from another manifest)
        action = rec["action"]
        if action == "relabel":
            label[i] = int(rec["new"])
        elif action == "drop":
            drop[i] = True
        elif action == "ambiguous":
            ambiguous[i] = True
        decision[i] = action
    return pd.DataFrame({"index": np.arange(n), "given_label": findings.labels, "label": label, "drop": drop,
                         "ambiguous": ambiguous, "decision": decision})


def apply_review(workspace: str | Path | Workspace, findings: Findings | None = None,
                 log: DecisionLog | None = None) -> dict:
    ws = Workspace.of(workspace)
    findings = findings or Findings(ws)
    log = log or open_log(review_dir(ws))
    log.refresh()
    state = reviewed_state(findings, log)
    m = ws.manifest().copy()
    for col in ("given_label", "label", "drop", "ambiguous", "decision"):
        m[col] = state[col].to_numpy()
    m["clean_label"] = m["label"]
    versions = versions_dir(ws)
    versions.mkdir(parents=True, exist_ok=True)
    number = next_version(ws)
    final = versions / f"v{number}"
    stage = versions / f".v{number}.{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    m.to_parquet(stage / "manifest.parquet", index=False)
    train = m[(m["split"].astype(str) == "train") & ~m["drop"]]
    pd.DataFrame({"index": train["index"].to_numpy(np.int64), "weight": 1.0,
                  "label": train["label"].to_numpy(np.int64)}).to_parquet(stage / "subset.parquet", index=False)
    changed = m[(m["label"] != m["given_label"]) | m["drop"] | m["ambiguous"]]
    name = findings.class_name
    pd.DataFrame({"index": changed["index"], "source": changed["source"], "split": changed["split"],
                  "given_label": [name(int(c)) for c in changed["given_label"]],
                  "label": [name(int(c)) for c in changed["label"]], "drop": changed["drop"],
                  "ambiguous": changed["ambiguous"], "decision": changed["decision"]}
                 ).to_csv(stage / "changes.csv", index=False)
    if "label_issues" in findings.queues:
        q = findings.queues["label_issues"]
        idx = q["index"].to_numpy(np.int64)
        pd.DataFrame({"index": idx, "is_label_issue": True, "label_quality": 1.0 - q["score"].to_numpy(),
                      "given_label": findings.labels[idx], "predicted_label": q["suggested"].to_numpy(),
                      "reviewed_label": state["label"].to_numpy()[idx],
                      "verdict": state["decision"].to_numpy()[idx]}).to_csv(stage / "label_issues.csv", index=False)
    amb = m[m["ambiguous"]]
    tasks = [{"data": {"image": str(src), "clearset_index": int(i)},
              "meta": {"given_label": name(int(g)), "split": str(sp)}}
             for i, src, g, sp in zip(amb["index"], amb["source"], amb["given_label"], amb["split"])]
    (stage / "label_studio.json").write_text(json.dumps(tasks, indent=1))
    summary = {"version": number, "decisions": len(log), "in_force": len(log.effective()),
               "relabelled": int((m["label"] != m["given_label"]).sum()), "dropped": int(m["drop"].sum()),
               "ambiguous": int(m["ambiguous"].sum()), "train_rows_kept": len(train),
               "manifest_key": ws.manifest_key(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(stage / "summary.json", summary)
    os.replace(stage, final)
    return {**summary, "folder": str(final), "manifest": str(final / "manifest.parquet"),
            "subset": str(final / "subset.parquet")}
