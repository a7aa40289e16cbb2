"""What every audit check shares: the registry, the validated inputs, the result shape.

A check is a registered function ``(data: AuditData, **options) -> CheckResult``. It reads arrays only
(no files); ``run_audit`` in __init__.py does the workspace I/O. The algorithms themselves are public
functions over plain arrays in each check's module (e.g. ``near_duplicate_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from ..errors import ParameterError, WorkspaceError
from ..registry import Registry
from ..vectors import check_finite, check_probabilities


@dataclass
class CheckResult:
    table: pd.DataFrame | None  # keyed by `index` (None for checks with only dataset-level figures)
    summary: dict[str, Any] = field(default_factory=dict)
    # AuditData fields the check computed for the checks after it (only names in its ``provides``); the
    # audit sets them, a check never assigns to the data it was given
    provided: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportInputs:
    """What a check's report hook sees: its own table and summary, and the workspace's class names and
    split of every image."""

    table: pd.DataFrame | None
    summary: dict[str, Any]
    classes: list[str]
    splits: np.ndarray

    def name(self, label: int) -> str:
        return self.classes[int(label)] if 0 <= int(label) < len(self.classes) else "–"


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[..., CheckResult]
    needs: tuple[str, ...]  # AuditData fields that must be present
    description: str
    provides: tuple[str, ...] = ()  # AuditData fields it fills for later checks (label_issues: pred_probs)
    uses: tuple[str, ...] = ()  # fields it reads when present (so it runs after whatever provides them)
    # its part of the report: ReportInputs -> views (clearset.views); the report renders them in order
    report: Callable[[ReportInputs], list] | None = None


CHECKS: Registry[Check] = Registry("audit check", listing="checks")
NEIGHBOURS_SHARED = 20  # one search serves label_issues (20), outliers (10) and duplicates (5)
EMBEDDING_THRESHOLD = 0.92  # near-duplicate cosine of embeddings, used only without pixels (docs/audit.md)


def register_check(name: str, *, needs: Iterable[str] = (), description: str = "", keyed_by: str = "index",
                   provides: Iterable[str] = (), uses: Iterable[str] = (),
                   report: Callable[[ReportInputs], list] | None = None, report_order: int = 100):
    """Register a check. ``needs``: AuditData fields it cannot run without; ``uses``: fields it reads when
    present; ``provides``: fields it fills for the checks after it. The audit orders checks by these
    (dependency_order), never by a list of names. ``keyed_by`` names the column its table is keyed by.
    ``report``: its part of ``clearset report``, a function of ReportInputs returning views
    (``clearset.views``: cards, tiles, tables, facts, plots); checks appear in ``report_order``."""
    def decorator(fn):
        CHECKS.register(name, keyed_by=keyed_by, report_order=report_order)(
            Check(name, fn, tuple(needs), description or (fn.__doc__ or "").strip().split("\n")[0],
                  tuple(provides), tuple(uses), report))
        return fn

    return decorator


def dependency_order(names: Iterable[str]) -> list[str]:
    """``names`` ordered so that every check comes after the checks that provide what it needs or uses
    (a stable topological order: otherwise alphabetical)."""
    todo, done = sorted(set(names)), []
    while todo:
        ready = [n for n in todo if not any(set(CHECKS.get(n).needs + CHECKS.get(n).uses)
                                            & set(CHECKS.get(m).provides) for m in todo if m != n)]
        if not ready:
            raise RuntimeError(f"audit checks depend on each other in a circle: {todo}")
        done.append(ready[0])
        todo.remove(ready[0])
    return done


@dataclass
class AuditData:
    """The arrays checks read, all of length N and aligned with the manifest's ``index``."""

    labels: np.ndarray  # (N,) int64, -1 = unlabelled
    n_classes: int
    class_names: list[str]
    splits: np.ndarray | None = None  # (N,) str
    sha256: np.ndarray | None = None  # (N,) str: hash of decoded pixels
    features: np.ndarray | None = None  # (N, D) float32
    pred_probs: np.ndarray | None = None  # (N, C) out-of-fold class probabilities
    # pixels by index, in order: ImageStore.iter_images(indices, transform=None)
    image_loader: Callable[..., Iterator[np.ndarray]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    engine: Any = None  # a parallel engine (Ray) runs the neighbour searches on its workers

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.labels)
        if self.n_classes < 1:
            raise ParameterError("the dataset needs at least one class")
        if len(self.labels) and (self.labels.max() >= self.n_classes or self.labels.min() < -1):
            raise ParameterError(f"labels must lie in -1..{self.n_classes - 1}")
        for name in ("splits", "sha256", "features", "pred_probs"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise WorkspaceError(f"{name} has {len(value)} rows but the manifest has {n} images; "
                                     f"recompute it for this workspace")
        if self.features is not None:
            check_finite(self.features, "features")
        if self.pred_probs is not None:
            p = np.asarray(self.pred_probs)
            if p.ndim != 2 or p.shape[1] != self.n_classes:
                raise ParameterError(f"pred_probs must be (N, {self.n_classes}), got {p.shape}")
            check_probabilities(p, "pred_probs", hint="recompute them (e.g. `clearset embed --force --precision fp32`)")

    @property
    def n(self) -> int:
        return len(self.labels)

    def normalised_features(self) -> np.ndarray:
        """Signed-square-root + L2-normalised features (computed once, shared by the checks)."""
        if "normalised" not in self.extras:
            from ..vectors import normalise_features

            self.require("features", check="this check")
            assert self.features is not None
            self.extras["normalised"] = normalise_features(self.features)
        return self.extras["normalised"]

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest other images of each image (cosine of normalised features), searched once
        with the largest k any check asked for and shared."""
        from ..ops.knn import knn

        have = self.extras.get("neighbours")
        if have is None or have[0].shape[1] < k:
            self.extras["neighbours"] = knn(self.normalised_features(), max(k, NEIGHBOURS_SHARED), engine=self.engine)
        sims, ids = self.extras["neighbours"]
        return sims[:, :k], ids[:, :k]

    def partitioned(self) -> bool:
        """True when the features are too large for the in-memory checks (N x D x 4 bytes above the
        partition configuration's ``in_memory_bytes``) and a features file and a work folder are known:
        duplicates and outliers then come from clearset.scale's cluster partition."""
        cfg = self.extras.get("partition_config")
        return (self.features is not None and cfg is not None and "features_path" in self.extras
                and "partition_dir" in self.extras
                and self.features.shape[0] * self.features.shape[1] * 4 > cfg.in_memory_bytes)

    def partition_results(self, threshold: float | None = None):
        """(near-duplicate pairs at cosine ``threshold``, per-row outlier z in row order, info), computed
        once and shared by the checks (``threshold=None``: whichever pass already ran, else the default)."""
        done = [k for k in self.extras if isinstance(k, tuple) and k[0] == "partition_results"]
        if threshold is None:
            threshold = float(done[0][1]) if done else EMBEDDING_THRESHOLD
        key: Any = ("partition_results", threshold)
        if key not in self.extras:
            from .. import scale

            part = scale.partition(self.extras["features_path"], self.extras["partition_dir"],
                                   self.extras["partition_config"], engine=self.engine)
            dups, _, info = scale.duplicates_and_outliers(part, threshold=threshold, engine=self.engine)
            self.extras[key] = (dups, scale.row_scores(part, info), info)
        return self.extras[key]

    def require(self, *names: str, check: str) -> None:
        missing = [n for n in names if getattr(self, n, None) is None]
        if missing:
            hint = {"features": f"run `clearset embed {self.extras.get('workspace', 'WS')}` first",
                    "pred_probs": "run the label_issues check (it computes them) or pass pred_probs",
                    "image_loader": "audit a workspace (pixels are read from its image store)"}
            raise WorkspaceError(f"check {check!r} needs {', '.join(missing)}: "
                                 + "; ".join(hint.get(m, "") for m in missing))


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 · MAD): a z-score that outliers themselves do not inflate."""
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    return (x - med) / (mad if mad > 1e-12 else (np.std(x) + 1e-12))


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of up to ``size`` items."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
