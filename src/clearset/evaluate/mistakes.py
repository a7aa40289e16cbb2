"""What kind of mistakes remain (``clearset eval RUN --mistakes``), in the spirit of "When does dough
become a bagel?" (methods.md, ImageNet mistakes card): every evaluation error of a run is sorted into the
first kind that explains it:

1. ``label_error``: the given label is doubtful: the human plurality (``--human-labels``) disagrees with
   it, or -- without human labels -- the audit flagged it (``WS/audit/label_issues.parquet``; humans are
   the stronger evidence: on CIFAR-10 the audit flags far more test images than the 0.8% whose human
   plurality disagrees);
2. ``ambiguous``: the predicted class is a plausible label too: humans gave it at least ``share`` of their
   votes, or the audit's multi-label check lists it among the image's candidate labels;
3. ``confusable``: the predicted class is one of the given class's ``neighbours`` nearest classes in the
   audit's class graph (``class_pairs.parquet``, neural-gas neighbour weight);
4. ``other``: none of these (fine-grained, spurious or simply wrong: for a person to review).

Writes ``RUN/mistakes.parquet`` (index, label, prediction, kind, human share of the prediction) and
``RUN/mistakes.json`` (counts and which evidence was available).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..workspace import Workspace, write_json, write_table

KINDS = ("label_error", "ambiguous", "confusable", "other")


def class_neighbours(pairs: pd.DataFrame, n_classes: int, neighbours: int) -> np.ndarray:
    """(K, K) bool: b is among a's ``neighbours`` strongest neighbours by neural-gas weight."""
    w = np.zeros((n_classes, n_classes))
    a, b = pairs["class_a"].to_numpy(), pairs["class_b"].to_numpy()
    w[a, b] = w[b, a] = pairs["neighbour_weight"].to_numpy()
    np.fill_diagonal(w, -np.inf)
    top = np.argsort(-w, axis=1)[:, :neighbours]
    out = np.zeros((n_classes, n_classes), bool)
    out[np.repeat(np.arange(n_classes), top.shape[1]), top.ravel()] = True
    return out & (w > 0)


def classify_mistakes(labels: np.ndarray, preds: np.ndarray, *, flagged: np.ndarray | None = None,
                      human: np.ndarray | None = None, candidates: list | None = None,
                      neighbour: np.ndarray | None = None, share: float = 0.1) -> np.ndarray:
    """Kind of each image's mistake ("" where the prediction is right or the label unknown). Every input
    but labels/preds is optional evidence aligned with the images."""
    n = len(labels)
    wrong = (labels >= 0) & (preds != labels)
    kind = np.full(n, "", dtype=object)
    doubtful = np.zeros(n, bool) if flagged is None else flagged.astype(bool)
    plausible = np.zeros(n, bool)
    if human is not None:
        probs = human / np.clip(human.sum(1, keepdims=True), 1e-12, None)
        doubtful = probs.argmax(1) != np.maximum(labels, 0)  # humans replace the audit's label verdict
        plausible |= probs[np.arange(n), preds] >= share
    if candidates is not None:
        plausible |= np.array([p in set(np.asarray(c).tolist()) for p, c in zip(preds, candidates)])
    close = np.zeros(n, bool) if neighbour is None else neighbour[np.maximum(labels, 0), preds]
    for name, hit in zip(KINDS, (doubtful, plausible, close, np.ones(n, bool))):
        take = wrong & (kind == "") & hit
        kind[take] = name
    return kind


def check_mistakes(run_dir: str | Path, *, share: float = 0.1, neighbours: int = 2):
    """The run, if its mistakes can be sorted (a closed-set run with stored predictions); else one error."""
    from ..artifacts.runs import load_run

    run = load_run(run_dir)
    if not 0 < share <= 1 or neighbours < 1:
        raise ParameterError(f"share {share} must be within (0, 1] and neighbours {neighbours} at least 1")
    if run.config.get("known_classes") is not None:
        raise ParameterError(f"{run.root}: an open-set run; the taxonomy needs every class in the model")
    if "logits" not in run.predictions():
        raise ParameterError(f"{run.root}: the run stored no predictions (trained without an evaluation split)")
    return run


def mistake_taxonomy(run_dir: str | Path, *, human_labels: str | Path | None = None, share: float = 0.1,
                     neighbours: int = 2) -> dict:
    """Sort the run's evaluation errors into KINDS using the workspace's audit and optional human labels."""
    from .evaluation import load_human_labels

    run = check_mistakes(run_dir, share=share, neighbours=neighbours)
    preds_file = run.predictions()
    logits, labels, index = preds_file["logits"], preds_file["labels"], preds_file["index"]
    preds = logits.argmax(1)
    k = logits.shape[1]
    ws = Workspace(run.root.parents[1])
    audit = ws.dir("audit")
    evidence = []
    flagged = candidates = neighbour = None
    if (audit / "label_issues.parquet").exists():
        li = pd.read_parquet(audit / "label_issues.parquet", columns=["index", "is_label_issue"]).set_index("index")
        flagged = li["is_label_issue"].reindex(index, fill_value=False).to_numpy(bool)
        evidence.append("audit label issues" + (" (unused: human labels decide)" if human_labels else ""))
    if (audit / "multilabel.parquet").exists():
        ml = pd.read_parquet(audit / "multilabel.parquet", columns=["index", "candidate_labels"]).set_index("index")
        candidates = ml["candidate_labels"].reindex(index).apply(lambda c: [] if c is None or
                                                                 (np.isscalar(c) and pd.isna(c)) else c).tolist()
        evidence.append("audit multi-label candidates")
    if (audit / "class_pairs.parquet").exists():
        neighbour = class_neighbours(pd.read_parquet(audit / "class_pairs.parquet"), k, neighbours)
        evidence.append("audit class graph")
    human = None
    if human_labels is not None:
        human = load_human_labels(human_labels, len(labels), k)
        evidence.append(f"human labels ({Path(human_labels).name})")
    kind = classify_mistakes(labels, preds, flagged=flagged, human=human, candidates=candidates,
                             neighbour=neighbour, share=share)
    wrong = kind != ""
    table = pd.DataFrame({"index": index[wrong], "label": labels[wrong], "prediction": preds[wrong],
                          "kind": kind[wrong].astype(str)})
    if human is not None:
        probs = human / np.clip(human.sum(1, keepdims=True), 1e-12, None)
        table["human_share_prediction"] = probs[wrong, preds[wrong]]
    write_table(run.root / "mistakes.parquet", table)
    counts = {name: int((table["kind"] == name).sum()) for name in KINDS}
    summary = {"run": run.name, "errors": int(wrong.sum()), "images": int((labels >= 0).sum()), "counts": counts,
               "shares": {n: c / max(1, int(wrong.sum())) for n, c in counts.items()}, "evidence": evidence,
               "share": share, "neighbours": neighbours}
    write_json(run.root / "mistakes.json", summary)
    summary["path"] = str(run.root / "mistakes.json")
    return summary
