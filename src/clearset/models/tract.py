"""TrAct (Petersen et al., NeurIPS 2024): train the first layer's pre-activations, not its weights.

Only the first convolution changes. With X (b x n) the unfolded input patches (b = batch x output
positions, n = C_in*k*k) and G = dL/dZ (b x C_out), the weight gradient G^T X is replaced by

    grad_W = G^T X (X^T X / b + lambda I)^-1          (lambda = 0.1 by default)

computed through the Woodbury identity when b < n. Bias and input gradients are unchanged; the result
feeds any optimiser. Convolutions with dilation or groups are refused (the reference wrapper silently
drops both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, param

DEFAULT_LAMBDA = 0.1


def tract_weight_grad(x_rows: torch.Tensor, g_rows: torch.Tensor, lam: float) -> torch.Tensor:
    """G^T X (X^T X / b + lam I)^-1 for X (b, n) and G (b, c_out), as (c_out, n), in float64."""
    x, g = x_rows.double(), g_rows.double()
    b, n = x.shape
    gx = g.T @ x
    if b >= n:
        a = x.T @ x / b + lam * torch.eye(n, dtype=x.dtype)
        return torch.linalg.solve(a, gx.T).T  # A is symmetric: (G^T X) A^-1 = (A^-1 (G^T X)^T)^T
    # Woodbury: (X^T X / b + lam I)^-1 = (1/lam) [I - X^T (b lam I + X X^T)^-1 X]
    inner = torch.linalg.solve(b * lam * torch.eye(b, dtype=x.dtype) + x @ x.T, x)
    return (gx - (gx @ x.T) @ inner) / lam


class _TrActConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, lam):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, lam, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, lam, has_bias = ctx.conf
        grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, stride, padding) \
            if ctx.needs_input_grad[0] else None
        cols = F.unfold(x, weight.shape[2:], padding=padding, stride=stride)  # (B, n, L)
        x_rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        g_rows = grad_out.permute(0, 2, 3, 1).reshape(-1, grad_out.shape[1])  # same (B, L) order as unfold
        grad_w = tract_weight_grad(x_rows, g_rows, lam).to(weight.dtype).view_as(weight)
        grad_b = grad_out.sum((0, 2, 3)) if has_bias else None
        return grad_x, grad_w, grad_b, None, None, None


class TrAct(nn.Module):
    """Wraps a Conv2d: the same forward, TrAct's weight gradient (computed in fp32/fp64 under autocast)."""

    def __init__(self, conv: nn.Conv2d, lam: float = DEFAULT_LAMBDA):
        super().__init__()
        if conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            raise ParameterError("TrAct wraps a plain first convolution (no dilation, groups, string or "
                                 "non-zero padding); this model's first layer is not one")
        if lam <= 0:
            raise ParameterError(f"{param('tract')} must be positive")
        self.conv, self.lam = conv, float(lam)

    @property
    def weight(self):
        return self.conv.weight

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            return _TrActConv2d.apply(x.float(), self.conv.weight, self.conv.bias, self.conv.stride,
                                      self.conv.padding, self.lam)


def apply_tract(model: nn.Module, lam: float = DEFAULT_LAMBDA) -> nn.Module:
    """Replace the model's first Conv2d (in module order) by its TrAct wrapper, in place."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent = model
            *path, leaf = name.split(".")
            for part in path:
                parent = getattr(parent, part)
            setattr(parent, leaf, TrAct(module, lam))
            return model
    raise ParameterError("TrAct needs a model whose first layer is a Conv2d")
