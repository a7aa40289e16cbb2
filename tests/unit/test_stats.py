"""clearset.ops.stats: the one rule for "A beats B" -- checked against scipy's tests and by coverage."""

import numpy as np
import pytest
from scipy import stats

from clearset.ops.stats import compare, describe, verdict


def test_welch_and_paired_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.75, 0.01, 5), rng.normal(0.74, 0.02, 4)
    c = compare(a, b)
    assert c["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert c["diff"] == pytest.approx(a.mean() - b.mean())
    assert c["ci95"][0] < c["diff"] < c["ci95"][1]
    b5 = rng.normal(0.74, 0.02, 5)
    p = compare(a, b5, paired=True)
    assert p["p"] == pytest.approx(stats.ttest_rel(a, b5).pvalue, rel=1e-9) and p["test"] == "paired t"
    with pytest.raises(ValueError, match="aligned"):
        compare(a, b, paired=True)


def test_the_interval_excludes_zero_exactly_when_significant():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = rng.normal(0, 1, 3), rng.normal(rng.uniform(0, 3), 1, 3)
        c = compare(a, b)
        assert c["significant"] == (c["ci95"][0] > 0 or c["ci95"][1] < 0)


def test_the_mean_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(2000):
        lo, hi = describe(rng.normal(10.0, 2.0, 3))["ci95"]
        hits += lo <= 10.0 <= hi
    assert 0.93 < hits / 2000 < 0.97


def test_too_few_values_are_not_testable_and_say_so():
    assert describe([0.5]) == {"n": 1, "mean": 0.5, "sd": 0.0, "ci95": None}
    assert describe([])["mean"] is None
    c = compare([0.7], [0.6, 0.61])
    assert c["p"] is None and not c["significant"] and "not testable" in verdict(c)
    same = compare([0.5, 0.5], [0.5, 0.5])
    assert same["p"] is None and not same["significant"]
    assert compare([0.6, 0.6], [0.5, 0.5])["significant"]  # no spread, different: the gap is certain
    assert "not significant" in verdict(compare([0.70, 0.72, 0.71], [0.70, 0.73, 0.69]), unit=100)
