"""Distillation targets: the mean softmax of teacher networks on the student's batch."""

from __future__ import annotations

import torch


def teacher_probs(teachers, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, temperature: float,
                  autocast: bool, dev: torch.device) -> torch.Tensor:
    """Mean of the teachers' softmaxes (not of their logits) on the student's normalised batch ``x``,
    re-normalised for each teacher's own statistics."""
    return teacher_outputs(teachers, x, mean, std, temperature, autocast, dev)[0]


def teacher_outputs(teachers, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, temperature: float,
                    autocast: bool, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of the teachers' softmaxes at ``temperature``, mean of their logits): the distillation target
    and what MEAL V2's discriminator sees as the teachers' outputs."""
    probs, logits = [], []
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
        for net, t_mean, t_std in teachers:
            xt = ((x * std + mean - t_mean) / t_std).contiguous(memory_format=torch.channels_last)
            z = net(xt).float()
            logits.append(z)
            probs.append(torch.softmax(z / temperature, 1))
    return torch.stack(probs).mean(0).clone(), torch.stack(logits).mean(0).clone()


def load_teacher(run, dev: torch.device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A finished run as a teacher: (network on ``dev``, its normalisation mean, std)."""
    norm = run.config["normalisation"]
    return (run.load_model().to(dev, memory_format=torch.channels_last),
            torch.tensor(norm["mean"], device=dev).view(1, 3, 1, 1),
            torch.tensor(norm["std"], device=dev).view(1, 3, 1, 1))
