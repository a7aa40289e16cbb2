"""Data filtering (methods.md, DFN card, adapted from captions to labels): a filter model trained on a
small trusted subset -- images whose labels were verified -- scores every image by how well its image
and its given label agree (the filter's probability of the given label); the top share is kept.

The filter is a logistic regression on the normalised embeddings of the trusted rows with their verified
labels. ``mode="top"`` (default, the card's operator): the cut is a rank (top x%), not an absolute score.
``mode="agree"``: a uniform random sample of the images whose given label is the filter's top class (the
rest only if these do not fill the budget) -- the top-x% cut keeps the easiest, most prototypical images,
which on CIFAR-10N costs more accuracy than the noise it removes (docs/curate.md).
"""

from __future__ import annotations

import numpy as np

from .base import CurateData, Subset, ones, register_strategy, take_top


@register_strategy("filter", needs=("features", "trusted"),
                   description="a filter trained on a small trusted (verified) subset keeps the images whose "
                               "label it agrees with most")
def filter_strategy(data: CurateData, n_keep: int, seed: int, c: float = 1.0, mode: str = "top") -> Subset:
    from ..ops.linear import fit_linear

    x = data.normalised()
    data.require("trusted", "filter")
    assert data.trusted is not None
    trusted = np.flatnonzero(data.trusted >= 0)
    if len(np.unique(data.trusted[trusted])) < 2:
        from ..errors import ParameterError

        raise ParameterError("the filter strategy needs trusted labels of at least two classes")
    targets = np.eye(data.n_classes, dtype=np.float32)[data.trusted[trusted]]
    w, b = fit_linear(x[trusted], targets, np.ones(len(trusted), np.float32), c=c)
    import torch

    with torch.no_grad():
        p = torch.softmax(torch.from_numpy(x) @ w + b, 1).numpy()
    agree = p[np.arange(data.n), data.labels]
    if mode == "top":
        rows = take_top(agree, n_keep, seed)
    elif mode == "agree":
        rows = take_top(np.where(p.argmax(1) == data.labels, 1.0 + np.random.default_rng(seed).random(data.n), agree),
                        n_keep, seed)
    else:
        from ..errors import ParameterError

        raise ParameterError(f"filter mode must be top or agree, not {mode!r}")
    return Subset(rows, ones(len(rows)), {"trusted": int(len(trusted)), "mode": mode,
                                          "agreeing": int((p.argmax(1) == data.labels).sum()),
                                          "kept_agreement_min": float(agree[rows].min())})
