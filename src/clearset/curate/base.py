"""What every curation strategy shares: the registry, the inputs, the result and its contract.

A strategy is a registered function ``(data: CurateData, n_keep: int, seed: int, **options) -> Subset``
over arrays only (no files); ``clearset.curate.curate`` does the workspace I/O. ``select`` checks the
contract every strategy must meet: deterministic for a seed, exactly ``n_keep = round(keep * N)`` distinct
valid rows (a strategy that cannot, such as RS2, says so in its ``exact=False`` registration), finite
non-negative weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import ParameterError, param
from ..ops.kmeans import spherical_kmeans  # noqa: F401  (re-exported for the strategies)
from ..ops.quotas import bounded_quotas
from ..registry import Registry

# ``clearset score`` methods and the CurateData field each fills (``<method>_<what>``)
PIXEL_SCORES = {"el2n": "score", "forgetting": "score", "craig": "gradients"}


@dataclass
class Subset:
    """Rows (positions into the curated rows, ascending) with per-row training weights, and what the
    strategy wants recorded (e.g. RS2's per-epoch sampler, cluster statistics)."""

    rows: np.ndarray
    weight: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CurateData:
    """The arrays strategies read, all aligned with the N candidate rows (the labelled training images)."""

    labels: np.ndarray  # (N,) int64
    n_classes: int
    features: np.ndarray | None = None  # (N, D) embeddings (raw: strategies normalise)
    pred_probs: np.ndarray | None = None  # (N, C) out-of-fold probabilities (the audit's)
    label_quality: np.ndarray | None = None  # (N,) audit label quality (lower = more likely wrong)
    is_label_issue: np.ndarray | None = None  # (N,) bool
    suggested_label: np.ndarray | None = None  # (N,) int64
    duplicate_of: np.ndarray | None = None  # (N,) int64 row of an earlier copy, -1 if none
    is_outlier: np.ndarray | None = None  # (N,) bool
    trusted: np.ndarray | None = None  # (N,) bool: rows whose labels were verified (the filter strategy)
    # scores of networks trained on the pixels (``clearset score --method el2n|forgetting|craig``)
    el2n_score: np.ndarray | None = None  # (N,) EL2N
    forgetting_score: np.ndarray | None = None  # (N,) forgetting events
    craig_gradients: np.ndarray | None = None  # (N, K) last-layer gradient proxies, softmax - one-hot
    # the newest applied review (``clearset review --apply``): label after review, and what the human decided
    reviewed_label: np.ndarray | None = None  # (N,) int64
    reviewed_keep: np.ndarray | None = None  # (N,) bool: a person kept or relabelled the image
    reviewed_drop: np.ndarray | None = None  # (N,) bool: a person dropped it (or marked it ambiguous)
    poison_flag: np.ndarray | None = None  # (N,) bool: flagged by the newest `clearset scan-poison`
    _normalised: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.labels)

    def normalised(self) -> np.ndarray:
        """Power- and L2-normalised features (float32), computed once."""
        if self._normalised is None:
            self.require("features", "this strategy")
            from ..vectors import normalise_features

            assert self.features is not None
            self._normalised = normalise_features(self.features)
        return self._normalised

    def require(self, name: str, who: str) -> None:
        if getattr(self, name) is None:
            hint = {"features": "run `clearset embed WS` first",
                    "label_quality": "run `clearset audit WS --checks label_issues` first",
                    "is_label_issue": "run `clearset audit WS --checks label_issues` first",
                    "trusted": f"pass {param('trusted')} (a file of rows with verified labels)",
                    **{f"{method}_{what}": f"run `clearset score WS --method {method}` first (networks trained "
                                           "on the pixels)" for method, what in PIXEL_SCORES.items()},
                    "poison_flag": "run `clearset scan-poison WS --run NAME` first",
                    "reviewed_label": "review the findings and apply them first: `clearset review WS`, then "
                                      "the Apply button or `clearset review WS --apply`"}.get(name, "")
            raise ParameterError(f"{who} needs {name.replace('_', ' ')}; {hint}".rstrip("; "))


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: Callable[..., Subset]
    needs: tuple[str, ...]
    description: str
    exact: bool  # returns exactly n_keep rows
    # the same selection from a clearset.scale partition on disk, for features above in_memory_bytes:
    # fn(partition, keep, seed, **options) -> kept rows (sorted); None: the strategy runs in memory only
    partitioned: Callable[..., np.ndarray] | None = None


STRATEGIES: Registry[Strategy] = Registry("curation strategy", listing="strategies")


def register_strategy(name: str, *, needs: Iterable[str] = (), description: str = "", exact: bool = True,
                      partitioned: Callable[..., np.ndarray] | None = None, differs: str = ""):
    """``differs``: for an adaptation of a published method, one line on how it differs from the paper
    (``clearset list strategies`` shows it); the adaptation carries its own name."""
    def decorator(fn):
        STRATEGIES.register(name, differs=differs)(Strategy(name, fn, tuple(needs), description or (fn.__doc__ or "").strip().split("\n")[0],
                                           exact, partitioned))
        return fn

    return decorator


def n_keep_of(keep: float, n: int) -> int:
    if not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise ParameterError(f"{param('keep')} must be a fraction in (0, 1] (the share of images kept), got {keep!r}")
    if n == 0:
        raise ParameterError("nothing to curate: no labelled training images")
    return max(1, int(round(keep * n)))


def select(name: str, data: CurateData, keep: float, seed: int = 0, **options) -> Subset:
    """Run strategy ``name`` keeping ``round(keep * N)`` rows, and check its contract."""
    strategy = STRATEGIES.get(name)
    n_keep = n_keep_of(keep, data.n)
    for need in strategy.needs:
        data.require(need, f"strategy {name!r}")
    out = strategy.fn(data, n_keep, seed, **options)
    rows = np.asarray(out.rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    rows, weight = rows[order], np.asarray(out.weight, dtype=np.float32)[order]
    if len(rows) and (rows[0] < 0 or rows[-1] >= data.n or (np.diff(rows) == 0).any()):
        raise RuntimeError(f"strategy {name!r} returned invalid or repeated rows")  # a bug, not a user error
    if strategy.exact and len(rows) != n_keep:
        raise RuntimeError(f"strategy {name!r} returned {len(rows)} rows, not {n_keep}")
    if len(weight) != len(rows) or not np.isfinite(weight).all() or (weight < 0).any():
        raise RuntimeError(f"strategy {name!r} returned bad weights")
    return Subset(rows, weight, {"strategy": name, "keep": keep, "n_keep": n_keep, "seed": seed, **out.info})


def take_top(score: np.ndarray, n_keep: int, seed: int) -> np.ndarray:
    """Rows of the ``n_keep`` highest scores; ties broken by a seeded random order (deterministic)."""
    tiebreak = np.random.default_rng(seed).permutation(len(score))
    order = np.lexsort((tiebreak, -np.asarray(score, dtype=np.float64)))
    return np.sort(order[:n_keep])


def audit_flags(data: CurateData, label_issues: bool = True) -> np.ndarray:
    """(N,) bool: what the audit flagged -- the later copy of a duplicate pair, outliers, and label issues."""
    flagged = np.zeros(data.n, bool)
    if data.duplicate_of is not None:
        flagged |= data.duplicate_of >= 0
    if data.is_outlier is not None:
        flagged |= data.is_outlier
    if label_issues and data.is_label_issue is not None:
        flagged |= data.is_label_issue
    return flagged


def ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float32)


def quotas_by_class(labels: np.ndarray, n_classes: int, n_keep: int) -> np.ndarray:
    """Per-class counts summing to n_keep, proportional to class sizes (largest remainder), capped at size."""
    sizes = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return bounded_quotas(sizes / sizes.sum() * n_keep, np.zeros_like(sizes), sizes, n_keep)


