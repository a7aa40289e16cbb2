"""MEAL V2's discriminator (Shen & Savvides 2020; methods.md, MEAL V2 card; reference code
``szq0214/MEAL-V2``, models/discriminator.py and loss.py).

A three-layer MLP (the reference writes it as 1x1 convolutions) on output *logits*, widths C -> C/8 ->
C/64 -> 2 with a ReLU after every layer, the last included, then ``BCEWithLogits`` against [1, 0] for the
student's outputs and [0, 1] for the teachers'. Its loss is added to the student's distillation loss and
both are minimised together by the one optimiser, at the student's learning rate (the reference's regime
overwrites every group's rate, so its discriminator-rate option ``d_lr`` never takes effect) -- no gradient reversal, no min-max
game. Differs from the reference only below 64 classes, where C/8 and C/64 would round to nothing: the
hidden widths are floored at 8 and 4 (1,000 classes give the reference's 125 and 15).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def hidden_widths(n_classes: int) -> tuple[int, int]:
    first = max(n_classes // 8, 8)
    return first, max(first // 8, 4)


class OutputDiscriminator(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        h1, h2 = hidden_widths(n_classes)
        self.layers = nn.ModuleList([nn.Linear(n_classes, h1), nn.Linear(h1, h2), nn.Linear(h2, 2)])

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        x = logits
        for layer in self.layers:
            x = F.relu(layer(x))  # the reference's final ReLU too, before BCEWithLogits
        return x


def discriminator_loss(d: nn.Module, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """BCEWithLogits of ``d`` telling the student's logits ([1, 0]) from the teachers' ([0, 1])."""
    z = torch.cat([student_logits.float(), teacher_logits.float()], 0)
    b = len(student_logits)
    target = torch.zeros(2 * b, 2, device=z.device)
    target[:b, 0] = 1.0
    target[b:, 1] = 1.0
    return F.binary_cross_entropy_with_logits(d(z), target)
