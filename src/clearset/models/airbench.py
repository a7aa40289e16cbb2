"""The airbench network (Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024), written here
from the paper's description:

- a fixed 2x2 *whitening* convolution first: its 24 filters are the eigenvectors of the covariance of
  2x2x3 patches of the training images, scaled by 1/sqrt(eigenvalue + 5e-4), each with its negation
  (``init_from_data``); only its bias trains, and only for the first epochs (the recipe says how many);
- GELU, then three conv groups (widths 64 / 256 / 256 by default): conv 3x3 -> max-pool 2 -> batch norm ->
  GELU -> conv 3x3 -> batch norm -> GELU; convolutions without bias, initialised as identity on their
  first input-many filters (Dirac) over PyTorch's default; batch norm with a fixed scale of 1 (only the
  shift trains), eps 1e-12 and running statistics updated with momentum 0.4 (the paper's 0.6 "decay");
- 3x3 max-pool, a linear layer without bias, and the logits scaled by 1/9.

Batch size, learning rates, label smoothing, the lookahead average of the weights and test-time flips are
the recipe's (``cifar-airbench`` in train/recipes.py).
"""

from __future__ import annotations

import torch
from torch import nn

WHITEN_EPS = 5e-4


class _BatchNorm(nn.BatchNorm2d):
    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad = False  # scale fixed at 1: only the shift trains


class _Conv(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        torch.nn.init.dirac_(w[: w.size(1)])  # the first c_in filters pass their input channel through


class _Group(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.pool, self.norm1 = _Conv(c_in, c_out), nn.MaxPool2d(2), _BatchNorm(c_out)
        self.conv2, self.norm2, self.act = _Conv(c_out, c_out), _BatchNorm(c_out), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class Airbench(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, int, int] = (64, 256, 256), scale: float = 1 / 9):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        self.act = nn.GELU()
        self.groups = nn.Sequential(_Group(24, widths[0]), _Group(widths[0], widths[1]), _Group(widths[1], widths[2]))
        self.pool = nn.AdaptiveMaxPool2d(1)  # the paper's MaxPool2d(3) on the 3x3 map of 32-px inputs
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = scale

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.groups(self.act(self.whiten(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)) * self.scale

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the whitening filters from normalised training images ``x`` (N, 3, H, W): the eigenvectors
        of the 2x2-patch covariance over every position, scaled to unit variance, and their negations."""
        patches = x.float().unfold(2, 2, 1).unfold(3, 2, 1)  # (N, 3, H-1, W-1, 2, 2)
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)  # one row per patch, (c, kh, kw) order
        cov = flat.T @ flat / len(flat)
        values, vectors = torch.linalg.eigh(cov)  # ascending
        values, vectors = values.flip(0), vectors.T.flip(0)  # largest first, one eigenvector per row
        filters = (vectors / torch.sqrt(values + WHITEN_EPS)[:, None]).reshape(12, 3, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight.dtype))

    def bias_parameters(self) -> list[nn.Parameter]:
        """The batch-norm shifts: the recipe trains them at a higher learning rate."""
        return [m.bias for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
