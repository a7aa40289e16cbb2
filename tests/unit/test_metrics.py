"""Every evaluation metric against an independent computation on constructed inputs."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, top_k_accuracy_score

from clearset.errors import ParameterError
from clearset.evaluate.metrics import evaluate_predictions


def logits_of(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


def test_accuracy_nll_brier_match_scikit_learn_and_formulas():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=200)
    y = rng.integers(0, 7, 200)
    m = evaluate_predictions(logits_of(p), y)
    assert m["top1"] == pytest.approx(top_k_accuracy_score(y, p, k=1, labels=range(7)))
    assert m["top5"] == pytest.approx(top_k_accuracy_score(y, p, k=5, labels=range(7)))
    assert m["nll"] == pytest.approx(log_loss(y, p, labels=range(7)), rel=1e-6)
    assert m["brier"] == pytest.approx(np.mean([((p[i] - np.eye(7)[y[i]]) ** 2).sum() for i in range(200)]))
    per = [np.mean(p[y == c].argmax(1) == c) for c in range(7)]
    assert m["per_class_accuracy"] == pytest.approx(per)
    assert m["mean_per_class_accuracy"] == pytest.approx(np.mean(per))


def test_unlabelled_rows_are_skipped():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = evaluate_predictions(logits_of(p), np.array([0, -1, 1]))
    assert m["top1"] == pytest.approx(0.5)


def test_ece_on_a_hand_computed_example():
    # confidences 0.95, 0.95 (one right, one wrong) -> bin (14/15, 1]: |0.5 - 0.95| * 2/4
    # confidences 0.6, 0.6 (both right) -> bin (8/15, 9/15]: |1 - 0.6| * 2/4
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    m = evaluate_predictions(logits_of(p), y)
    assert m["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.4)
    # equal-mass bins over 4 images with 15 bins: every image its own bin -> mean |correct - conf|
    assert m["adaptive_ece"] == pytest.approx(np.mean([0.05, 0.95, 0.4, 0.4]))
    assert sum(b["count"] for b in m["reliability"]) == 4


def test_human_label_metrics_on_a_constructed_example():
    # 3 images, 3 classes; human distributions and model predictions chosen by hand
    human = np.array([[0.7, 0.3, 0.0], [0.05, 0.5, 0.45], [0.0, 0.0, 1.0]])
    p = np.array([[0.2, 0.7, 0.1],    # predicts 1: not plurality, valid (0.3 >= 0.1)
                  [0.1, 0.3, 0.6],    # predicts 2: not plurality, valid
                  [0.1, 0.1, 0.8]])   # predicts 2: plurality
    m = evaluate_predictions(logits_of(p), np.array([0, 1, 2]), human=human * 50)  # counts work too
    assert m["human_plurality_accuracy"] == pytest.approx(1 / 3)
    assert m["human_multilabel_accuracy"] == pytest.approx(1.0)
    assert m["human_expected_agreement"] == pytest.approx((0.3 + 0.45 + 1.0) / 3)
    assert m["human_cross_entropy"] == pytest.approx(-np.mean([(human[i] * np.log(p[i])).sum() for i in range(3)]))
    # valid sets: {0,1} (k=2), {1,2} (k=2), {2} (k=1); top-2 of image 0 = {1,0} ok, image 1 = {2,1} ok
    vt = m["variable_topk"]
    assert vt["accuracy"] == pytest.approx(1.0)
    assert vt["by_label_count"] == {1: {"images": 1, "accuracy": 1.0}, 2: {"images": 2, "accuracy": 1.0}}


def test_variable_topk_fails_when_one_of_k_is_invalid():
    human = np.array([[0.5, 0.5, 0.0]])
    p = np.array([[0.6, 0.1, 0.3]])  # top-2 = {0, 2}; 2 is not valid
    assert evaluate_predictions(logits_of(p), np.array([0]), human=human)["variable_topk"]["accuracy"] == 0.0


def test_bad_inputs_are_clear_errors():
    p = np.full((4, 3), 1 / 3)
    with pytest.raises(ParameterError, match="human labels must be"):
        evaluate_predictions(logits_of(p), np.zeros(4, int), human=np.ones((4, 2)))
    with pytest.raises(ParameterError, match="logits must be"):
        evaluate_predictions(logits_of(p), np.zeros(3, int))
    with pytest.raises(ParameterError, match="non-negative"):
        evaluate_predictions(logits_of(p), np.zeros(4, int), human=-np.ones((4, 3)))


def test_multilabel_accuracy_class_mean_differs_from_the_image_mean():
    # class 0 has 3 images (all right), class 1 has 1 image (wrong): image mean 3/4, class mean (1 + 0) / 2
    human = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    m = evaluate_predictions(logits_of(p), np.array([0, 0, 0, 1]), human=human)
    assert m["human_multilabel_accuracy"] == pytest.approx(0.75)
    assert m["human_multilabel_accuracy_class_mean"] == pytest.approx(0.5)
