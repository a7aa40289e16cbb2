"""Quota allocation: how many rows each cluster keeps (DBP's complexity quotas and the bounded rounding
under them), shared by the in-memory strategy (curate/density.py) and the partitioned one (scale)."""

from __future__ import annotations

import numpy as np

TEMPERATURE = 0.5  # DBP: softmax temperature over cluster complexity
BALANCE = 0.5  # DBP: every cluster keeps at least this share of an even split


def bounded_quotas(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: int) -> np.ndarray:
    """Integer x with lo <= x <= hi (hi integral), sum(x) = total, closest to ``target`` in L2: the
    Euclidean projection clip(target + lambda, lo, hi) (lambda by bisection: the QP's exact solution), then
    rounded down and the remainder handed to the largest fractional parts that have room."""
    target, lo, hi = (np.asarray(a, dtype=np.float64) for a in (target, lo, hi))
    lo = np.minimum(lo, hi)
    total = int(min(total, hi.sum()))
    a, b = -target.max() - hi.max() - 1, hi.max() + np.abs(target).max() + 1
    for _ in range(200):
        mid = (a + b) / 2
        if np.clip(target + mid, lo, hi).sum() < total:
            a = mid
        else:
            b = mid
    x = np.clip(target + b, lo, hi)
    out = np.floor(x + 1e-9).astype(np.int64)
    out = np.minimum(out, hi.astype(np.int64))
    short = total - int(out.sum())
    if short > 0:
        frac = np.where(out < hi, x - out, -np.inf)
        for j in np.argsort(-frac, kind="stable")[:short]:
            out[j] += 1
    elif short < 0:
        frac = np.where(out > 0, x - out, np.inf)
        for j in np.argsort(frac, kind="stable")[: -short]:
            out[j] -= 1
    return out


def complexity_quotas(c: np.ndarray, sizes: np.ndarray, n_keep: int, temperature: float = TEMPERATURE,
                      balance: float = BALANCE) -> np.ndarray:
    """Rows to keep per cluster: shares softmax(C / T) of ``n_keep`` (empty clusters none), at least
    ``balance`` of an even share and at most the cluster's size (steps 3-4 above)."""
    k = len(c)
    p = np.where(sizes > 0, np.exp((c - c.max()) / temperature), 0)
    p /= p.sum()
    return bounded_quotas(p * n_keep, np.full(k, balance * n_keep / k), sizes, n_keep)
