"""TrAct's weight gradient against the card's formula computed explicitly."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clearset.errors import ParameterError
from clearset.models.tract import TrAct, apply_tract, tract_weight_grad


def explicit(conv, x, lam):
    """grad_W = G^T X inverse(X^T X / b + lam I), with G from plain autograd and X by hand-unfolding."""
    z = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding)
    z.retain_grad()
    (z * torch.linspace(-1, 1, z.numel()).view_as(z)).sum().backward()
    g = z.grad.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    k = conv.kernel_size[0]
    xp = F.pad(x, (conv.padding[1],) * 2 + (conv.padding[0],) * 2).double()
    rows = []
    for bi in range(x.shape[0]):
        for i in range(z.shape[2]):
            for j in range(z.shape[3]):
                s = conv.stride[0]
                rows.append(xp[bi, :, i * s:i * s + k, j * s:j * s + k].reshape(-1))
    xr = torch.stack(rows)
    b, n = xr.shape
    return (g.T @ xr @ torch.inverse(xr.T @ xr / b + lam * torch.eye(n, dtype=torch.float64))).view_as(conv.weight)


@pytest.mark.parametrize("batch,side,stride", [(3, 6, 1), (1, 3, 2)])  # b >= n, and b < n (Woodbury)
def test_tract_gradient_equals_the_formula(batch, side, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=1)
    x = torch.randn(batch, 3, side, side)
    ref = explicit(conv, x, 0.1)
    conv.zero_grad()
    wrapped = TrAct(conv, 0.1)
    z = wrapped(x)
    plain_bias_grad = torch.autograd.grad((z * torch.linspace(-1, 1, z.numel()).view_as(z)).sum(),
                                          [conv.weight, conv.bias])
    torch.testing.assert_close(plain_bias_grad[0].double(), ref, rtol=1e-4, atol=1e-5)
    zz = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding)
    bias_ref = torch.autograd.grad((zz * torch.linspace(-1, 1, zz.numel()).view_as(zz)).sum(), conv.bias)[0]
    torch.testing.assert_close(plain_bias_grad[1], bias_ref)  # bias gradient unchanged


def test_woodbury_and_direct_forms_agree():
    torch.manual_seed(1)
    x, g = torch.randn(5, 12), torch.randn(5, 4)
    direct = g.double().T @ x.double() @ torch.inverse(x.double().T @ x.double() / 5 + 0.1 * torch.eye(12, dtype=torch.float64))
    torch.testing.assert_close(tract_weight_grad(x, g, 0.1), direct)


def test_input_gradient_unchanged_and_only_the_first_conv_wrapped():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3))
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    ref = torch.autograd.grad(net(x).sum(), x)[0]
    apply_tract(net)
    assert isinstance(net[0], TrAct) and isinstance(net[2], nn.Conv2d)
    torch.testing.assert_close(torch.autograd.grad(net(x).sum(), x)[0], ref)
    with pytest.raises(ParameterError):
        TrAct(nn.Conv2d(4, 4, 3, groups=2))
