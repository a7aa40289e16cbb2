"""Scores from training runs: ``el2n`` (Paul et al., "Deep learning on a data diet") and ``forgetting``
(Toneva et al.). Both keep the hardest examples.

``el2n`` and ``forgetting`` read the scores of networks trained on the pixels (``clearset score``). The
``-probe`` adaptations need no score, stated plainly: their short runs are softmax-regression probes on the
normalised embeddings (minibatch SGD, a few epochs, several seeds), not networks trained on the pixels.
- EL2N: ||softmax - onehot(label)||₂ after ``epochs`` epochs, averaged over ``runs`` seeds.
- forgetting: per example, how often it goes from correctly to incorrectly classified between
  consecutive epochs, summed over runs; examples never learned count as forgotten every epoch.
Under label noise both rank mislabelled images as the hardest and keep them (the papers' caveat).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import CurateData, Subset, ones, register_strategy, take_top


def probe_trajectory(x: np.ndarray, labels: np.ndarray, n_classes: int, *, epochs: int, seed: int,
                     lr: float = 0.5, batch: int = 256) -> list[np.ndarray]:
    """Softmax of every row after each epoch of minibatch SGD on a linear probe (one seed)."""
    g = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.array(labels, dtype=np.int64))
    w = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    torch.nn.init.normal_(w, std=0.01, generator=g)
    opt = torch.optim.SGD([w, b], lr=lr, momentum=0.9)
    out = []
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(batch):
            loss = torch.nn.functional.cross_entropy(xt[idx] @ w + b, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out.append(torch.softmax(xt @ w + b, 1).numpy())
    return out


def el2n_scores(data: CurateData, seed: int, epochs: int, runs: int) -> np.ndarray:
    onehot = np.eye(data.n_classes, dtype=np.float32)[data.labels]
    scores = [np.linalg.norm(probe_trajectory(data.normalised(), data.labels, data.n_classes, epochs=epochs,
                                              seed=seed * 101 + r)[-1] - onehot, axis=1) for r in range(runs)]
    return np.mean(scores, 0)


def highest_after_offset(score: np.ndarray, n_keep: int, seed: int, offset: float) -> np.ndarray:
    """The ``n_keep`` highest scores after skipping the ``offset`` share of the very highest."""
    skip = min(int(round(offset * len(score))), len(score) - n_keep)
    if skip > 0:
        score = np.where(np.isin(np.arange(len(score)), take_top(score, skip, seed)), -np.inf, score)
    return take_top(score, n_keep, seed)


@register_strategy("el2n-probe", needs=("features",),
                   description="keep the highest EL2N (error norm early in training; probe runs on the embeddings)",
                   differs="the error norms come from a linear probe on frozen embeddings (2 epochs, 4 runs), "
                           "not from networks trained on pixels for a few epochs (Paul et al.)")
def el2n_probe(data: CurateData, n_keep: int, seed: int, epochs: int = 2, runs: int = 4, offset: float = 0.0) -> Subset:
    """``offset``: skip this share of the very hardest first (Paul et al. do so at high pruning rates;
    under label noise the hardest are mostly mislabelled)."""
    rows = highest_after_offset(el2n_scores(data, seed, epochs, runs), n_keep, seed, offset)
    return Subset(rows, ones(len(rows)), {"epochs": epochs, "runs": runs, "offset": offset,
                                          "model": "linear probe on embeddings"})


@register_strategy("forgetting-probe", needs=("features",),
                   description="keep the most forgotten examples (forgetting events over short probe runs)",
                   differs="forgetting events are counted over 8 epochs of a linear probe on frozen embeddings "
                           "(2 runs), not over a full network training on pixels (Toneva et al.)")
def forgetting_probe(data: CurateData, n_keep: int, seed: int, epochs: int = 8, runs: int = 2) -> Subset:
    events = np.zeros(data.n)
    for r in range(runs):
        correct = np.stack([p.argmax(1) == data.labels for p in
                            probe_trajectory(data.normalised(), data.labels, data.n_classes, epochs=epochs,
                                             seed=seed * 101 + r)])
        events += (correct[:-1] & ~correct[1:]).sum(0)
        events += np.where(~correct.any(0), epochs, 0)  # never learned: forgotten at every epoch
    rows = take_top(events, n_keep, seed)
    return Subset(rows, ones(len(rows)), {"epochs": epochs, "runs": runs, "model": "linear probe on embeddings"})


@register_strategy("forgetting", needs=("forgetting_score",),
                   description="keep the most forgotten examples: forgetting events of networks trained on the "
                               "pixels (clearset score --method forgetting)")
def forgetting(data: CurateData, n_keep: int, seed: int) -> Subset:
    """Toneva et al.: unforgettable examples go first; never-learned ones count as the most forgotten."""
    assert data.forgetting_score is not None
    rows = take_top(np.nan_to_num(data.forgetting_score, nan=-np.inf), n_keep, seed)
    return Subset(rows, ones(len(rows)), {"model": "networks trained on the pixels"})


@register_strategy("el2n", needs=("el2n_score",),
                   description="keep the highest EL2N of networks trained on the pixels (clearset score --method el2n)")
def el2n(data: CurateData, n_keep: int, seed: int, offset: float = 0.0) -> Subset:
    """Paul et al.'s EL2N from ``clearset score`` (its recipe, epochs and runs are in the score's sidecar);
    ``offset`` as for ``el2n-probe``."""
    assert data.el2n_score is not None
    rows = highest_after_offset(np.nan_to_num(data.el2n_score, nan=-np.inf), n_keep, seed, offset)
    return Subset(rows, ones(len(rows)), {"offset": offset, "model": "networks trained on the pixels"})
