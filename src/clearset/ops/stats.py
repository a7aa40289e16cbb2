"""The statistics every comparison of arms uses: mean, sample sd and a 95% t-interval per arm, and the
difference of two arms with its interval and a t-test (Welch for independent runs, paired when both arms
ran on the same seeds, folds or label sets). One helper, so the leaderboard, the benches and the docs say
"A beats B" by the same rule: the difference's 95% interval excludes 0 (equivalently p < 0.05).

With one value an arm has no spread: sd 0, no interval, and a comparison says it is not testable instead
of printing a p-value.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

ALPHA = 0.05


def _t(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(1 - ALPHA / 2, df))


def describe(values: Sequence[float]) -> dict:
    """n, mean, sample sd, 95% t-interval of the mean (None with fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci95": None}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "sd": 0.0, "ci95": None}
    sd = float(x.std(ddof=1))
    half = _t(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def compare(a: Sequence[float], b: Sequence[float], *, paired: bool = False) -> dict:
    """a - b: the difference of means, its 95% interval, the two-sided p-value of a Welch t-test (paired:
    the t-test of the per-pair differences, a and b aligned), and ``significant`` (p < 0.05).
    Not testable (``p`` None, ``significant`` False) with fewer than 2 values in an arm, or when both arms
    are constant and equal."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if paired and len(x) != len(y):
        raise ValueError(f"a paired comparison needs aligned arms, got {len(x)} and {len(y)} values")
    diff = float(x.mean() - y.mean()) if len(x) and len(y) else None
    out: dict = {"diff": diff, "n": [len(x), len(y)], "test": "paired t" if paired else "Welch t",
                 "ci95": None, "p": None, "significant": False}
    if diff is None or len(x) < 2 or len(y) < 2:
        return {**out, "note": "not testable: an arm has fewer than 2 values"}
    if paired:
        d = x - y
        se, df = float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1.0
    else:
        vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        se = float(math.sqrt(vx + vy))
        df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1)) if se > 0 else 1.0
    if se == 0:
        if diff == 0:
            return {**out, "note": "not testable: both arms constant and equal"}
        return {**out, "ci95": [diff, diff], "p": 0.0, "significant": True, "note": "no spread in either arm"}
    half = _t(df) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return {**out, "ci95": [diff - half, diff + half], "p": p, "significant": p < ALPHA}


def verdict(c: dict, unit: float = 1.0, digits: int = 2, label: str = "") -> str:
    """One line for a comparison: '+2.31 [1.10, 3.52] (p 0.004)' or '... not significant'; ``unit`` scales
    the numbers (100 for points of accuracy)."""
    if c["diff"] is None:
        return "no values"
    text = f"{c['diff'] * unit:+.{digits}f}{label}"
    if c["ci95"] is not None:
        lo, hi = (v * unit for v in c["ci95"])
        text += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    if c["p"] is None:
        return text + f" ({c.get('note', 'not testable')})"
    return text + f" (p {c['p']:.2g}{'' if c['significant'] else ', not significant'})"
