import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from clearset.errors import ParameterError
from clearset.evaluate.openset import auroc, fpr_at_tpr, openset_metrics, openset_scores


def test_auroc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 20, 300).astype(float), rng.integers(3, 25, 200).astype(float)
    ref = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(ref)


def test_fpr_at_95_tpr_matches_the_roc_curve():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(2, 1, 1000), rng.normal(0, 1, 1000)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(1000), np.zeros(1000)], np.r_[pos, neg])
    assert fpr_at_tpr(pos, neg) == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=2e-3)


def test_scores_and_metrics():
    z = np.array([[5.0, 0.0], [0.2, 0.1], [3.0, 3.0]])
    s = openset_scores(z)
    assert s["max_logit"].tolist() == [5.0, 0.2, 3.0]
    np.testing.assert_allclose(s["energy"], np.log(np.exp(z).sum(1)))
    np.testing.assert_allclose(s["max_softmax"], np.exp(z).max(1) / np.exp(z).sum(1))
    m = openset_metrics(z, np.array([True, False, True]))
    assert m["max_logit"]["auroc"] == 1.0 and m["known_images"] == 2
    with pytest.raises(ParameterError):
        openset_metrics(z, np.ones(3, bool))


def test_oscr_is_the_area_under_ccr_against_fpr():
    from clearset.evaluate.measures.oscr import oscr

    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 20, 300).astype(float), rng.integers(0, 20, 100).astype(float)  # many ties
    correct = rng.random(300) < 0.7
    # brute force: every threshold, accept score >= t
    ts = np.r_[np.inf, np.unique(np.r_[pos, neg])[::-1]]
    ccr = np.array([(correct & (pos >= t)).mean() for t in ts])
    fpr = np.array([(neg >= t).mean() for t in ts])
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it
    assert np.isclose(oscr(pos, neg, correct), trapezoid(ccr, fpr))
    # a perfect score reaches the closed-set accuracy; a score independent of the class about half of it
    assert np.isclose(oscr(pos + 100, neg, correct), correct.mean())
    big = rng.random(20000) < 0.8
    assert abs(oscr(rng.random(20000), rng.random(20000), big) - 0.4) < 0.01


def test_open_set_metrics_report_every_registered_measure():
    from clearset.evaluate.measures import OPENSET_MEASURES

    z = np.array([[5.0, 0.0], [0.2, 0.1], [0.0, 4.0], [0.1, 0.3]])
    known, labels = np.array([True, False, True, False]), np.array([0, -1, 1, -1])
    m = openset_metrics(z, known, labels)
    assert set(m["max_logit"]) == set(OPENSET_MEASURES.list()) and m["closed_set_accuracy"] == 1.0
    assert m["max_logit"]["oscr"] == 1.0 and "oscr" not in openset_metrics(z, known)["max_logit"]  # needs labels
