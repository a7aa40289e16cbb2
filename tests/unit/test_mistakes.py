"""The mistake taxonomy: precedence of kinds, class-graph neighbours, the run-level file, the report."""

import numpy as np
import pandas as pd
import pytest

import clearset
from clearset.errors import ParameterError
from clearset.evaluate.mistakes import class_neighbours, classify_mistakes, mistake_taxonomy


def test_each_error_takes_the_first_kind_that_explains_it():
    labels = np.array([0, 0, 0, 0, 0, 1, -1])
    preds = np.array([1, 1, 1, 2, 0, 1, 2])
    flagged = np.array([1, 0, 0, 0, 1, 0, 0], bool)
    human = np.array([[9, 1, 0], [8, 2, 0], [10, 0, 0], [10, 0, 0], [0, 10, 0], [0, 10, 0], [1, 1, 1]], float)
    neighbour = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], bool)
    kind = classify_mistakes(labels, preds, flagged=flagged, neighbour=neighbour, share=0.15)
    assert kind[0] == "label_error"  # the audit's flag decides without human labels
    kind = classify_mistakes(labels, preds, flagged=flagged, human=human, neighbour=neighbour, share=0.15)
    # 0: humans back the label, so the audit flag is overruled (10% < 15%: not ambiguous; class 1 neighbours
    # class 0); 1: humans gave the prediction 20%; 2: class 1 neighbours class 0; 3: nothing explains it;
    # 4 and 5: right; 6: no label
    assert kind.tolist() == ["confusable", "ambiguous", "confusable", "other", "", "", ""]
    human[3] = [0, 0, 10]  # the human plurality disagrees with the label -> a label error
    assert classify_mistakes(labels, preds, human=human)[3] == "label_error"
    cands = [[], [0, 1], [], [0, 2], [], [], []]
    assert classify_mistakes(labels, preds, candidates=cands)[[1, 3]].tolist() == ["ambiguous", "ambiguous"]


def test_class_neighbours_are_the_strongest_neural_gas_weights():
    pairs = pd.DataFrame({"class_a": [0, 0, 1, 0, 1, 2], "class_b": [1, 2, 2, 3, 3, 3],
                          "neighbour_weight": [0.9, 0.1, 0.5, 0.0, 0.2, 0.8]})
    nb = class_neighbours(pairs, 4, 1)
    assert nb[0].tolist() == [False, True, False, False] and nb[3].tolist() == [False, False, True, False]
    assert nb.sum(1).tolist() == [1, 1, 1, 1]


def test_taxonomy_of_a_run_with_audit_files_and_report(tmp_path):
    from clearset.train import train
    from clearset.train.recipes import Recipe

    rng = np.random.default_rng(0)
    y = np.tile(np.arange(3), 20)
    x = rng.integers(0, 256, (60, 16, 16, 3)).astype(np.uint8)  # unlearnable: plenty of errors
    np.savez(tmp_path / "d.npz", x_train=x[:45], y_train=y[:45], x_test=x[45:], y_test=y[45:])
    ws = clearset.ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    run = train(ws, recipe=Recipe("tiny", "t", model="convnet3", epochs=1, batch_size=16, lr=0.05, image_size=16),
                name="r")
    with pytest.raises(ParameterError, match="human labels must be"):
        mistake_taxonomy(run.root, human_labels=_save(tmp_path / "bad.npy", np.ones((3, 3))))
    assert not (run.root / "mistakes.json").exists()
    audit = ws.root / "audit"
    audit.mkdir()
    test_idx = np.arange(45, 60)
    pd.DataFrame({"index": test_idx, "given_label": y[45:], "suggested_label": y[45:], "label_quality": 0.5,
                  "is_label_issue": test_idx % 5 == 0}).to_parquet(audit / "label_issues.parquet")
    pd.DataFrame({"class_a": [0, 0, 1], "class_b": [1, 2, 2], "overlap": 0.1,
                  "neighbour_weight": [0.9, 0.2, 0.1]}).to_parquet(audit / "class_pairs.parquet")
    human = np.eye(3)[y[45:]] * 40 + 5
    t = mistake_taxonomy(run.root, human_labels=_save(tmp_path / "h.npy", human), neighbours=1)
    preds = run.predictions()["logits"].argmax(1)
    errors = preds != y[45:]
    assert t["errors"] == int(errors.sum()) and sum(t["counts"].values()) == t["errors"]
    table = pd.read_parquet(run.root / "mistakes.parquet")
    assert (table["kind"] != "label_error").all()  # humans agree with every label here: audit flags overruled
    t = mistake_taxonomy(run.root, neighbours=1)
    table = pd.read_parquet(run.root / "mistakes.parquet")
    flagged_errors = set(test_idx[errors & (test_idx % 5 == 0)])
    assert set(table.loc[table["kind"] == "label_error", "index"]) == flagged_errors
    assert "audit label issues" in t["evidence"] and "audit class graph" in t["evidence"]
    html = clearset.report(ws).read_text()
    assert "Remaining mistakes" in html and "label error" in html


def _save(path, arr):
    np.save(path, arr)
    return path
