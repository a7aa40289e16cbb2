"""Noise-robust refits of the label-issue models (issue 22's "better out-of-fold probabilities"): after a
first out-of-fold pass, the models are fitted again on what that pass finds trustworthy, and every
held-out row is predicted again by the refit. The row's own label still never reaches the model that
predicts it. Each mode adapts a published method to fixed features and carries its own name:

- ``clean-refit``: confident learning's "then train on the cleaned data" step (Northcutt et al., 2021;
  cleanlab's CleanLearning): the rows the first pass flags get weight 0 in the refit.
- ``divide-refit``: DivideMix's split (Li et al., 2020): a two-component Gaussian mixture on each row's
  first-pass loss gives the probability ``w`` that its label is clean (the low-loss component), and the
  refit's target is ``w * onehot(label) + (1 - w) * p`` (DivideMix's label refinement, without
  sharpening). Left out: the two co-divided networks, MixMatch and the unlabelled side, which guard a
  deep network against memorising; a convex model on fixed features has nothing to memorise.
- ``progressive``: ProMix-style progressive clean-sample selection (Xiao et al., 2023): ``rounds``
  refits; in round r each class keeps the r / rounds share of its estimated clean rows (class size minus
  its first-pass flags) whose out-of-fold probability of their own label is highest, class by class so
  that no class is starved. Left out: ProMix's two networks, debiasing and mixup.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

ROBUST_MODES = ("none", "clean-refit", "divide-refit", "progressive")
PROGRESSIVE_ROUNDS = 3


def check_mode(mode: str) -> str:
    if mode not in ROBUST_MODES:
        raise ParameterError(f"label_issues option robust={mode!r}: choose from {', '.join(ROBUST_MODES)}")
    return mode


def own_probability(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs, dtype=np.float64)[np.arange(len(labels)), labels]


def divide_targets(labels: np.ndarray, probs: np.ndarray, n_classes: int, *, seed: int = 0) -> np.ndarray:
    """The refined soft targets w * onehot(label) + (1 - w) * p, w the clean probability of each row from
    a 2-component GMM on its loss. With fewer than 4 rows or one loss value, w = 1 (nothing to split)."""
    from sklearn.mixture import GaussianMixture

    loss = -np.log(np.clip(own_probability(labels, probs), 1e-12, 1.0))
    w = np.ones(len(labels))
    if len(labels) >= 4 and np.ptp(loss) > 1e-9:
        span = loss.max() - loss.min()
        z = ((loss - loss.min()) / span).reshape(-1, 1)  # DivideMix min-max normalises the losses
        gmm = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed).fit(z)
        w = gmm.predict_proba(z)[:, int(np.argmin(gmm.means_[:, 0]))]
    onehot = np.eye(n_classes)[labels]
    targets = w[:, None] * onehot + (1 - w[:, None]) * np.asarray(probs, dtype=np.float64)
    return targets.astype(np.float32)


def progressive_keep(labels: np.ndarray, probs: np.ndarray, flags: np.ndarray, share: float) -> np.ndarray:
    """(N,) bool: in each class, the ``share`` of its estimated clean count (size minus flags) with the
    highest probability of their own label (at least one row per class)."""
    own = own_probability(labels, probs)
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        clean = len(rows) - int(flags[rows].sum())
        take = max(1, int(round(share * clean)))
        keep[rows[np.argsort(-own[rows], kind="stable")[:take]]] = True
    return keep
