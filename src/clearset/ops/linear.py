"""The one logistic-regression solver: weighted soft cross-entropy + ||W||² / (2·C·n) (scikit-learn's
LogisticRegression(C) objective for hard labels), full-batch L-BFGS, deterministic. Used by the
linear-probe recipe and the ``filter`` strategy."""

from __future__ import annotations

import numpy as np
import torch

PROBE_C = 1.0


def fit_linear(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, *, c: float = PROBE_C,
               max_iter: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (D, K), b (K,)) minimising weighted mean soft cross-entropy + ||W||² / (2·C·sum(weights))."""
    xt, tt = torch.from_numpy(x), torch.from_numpy(targets)
    wt = torch.from_numpy(weights)
    total = wt.sum().clamp_min(1e-12)
    w = torch.zeros(x.shape[1], targets.shape[1], requires_grad=True)
    b = torch.zeros(targets.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        ce = -(tt * torch.log_softmax(xt @ w + b, 1)).sum(1)
        loss = (ce * wt).sum() / total + (w ** 2).sum() / (2.0 * c * total)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy over the labelled rows (label >= 0); nan when none is labelled."""
    ok = labels >= 0
    return float((logits[ok].argmax(1) == labels[ok]).mean()) if ok.any() else float("nan")
