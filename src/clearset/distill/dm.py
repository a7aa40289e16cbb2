"""DM: distribution matching (Zhao & Bilen 2023; methods.md, DataDAM and FYI cards, which use it as the
baseline): per class, the squared distance between the mean embeddings of the real and the synthetic
batch, under a freshly initialised network every iteration."""

from __future__ import annotations

import torch

from .base import Probe, register_distiller


def mean_embedding_distance(real: Probe, syn: Probe) -> torch.Tensor:
    return (real.embedding.mean(0) - syn.embedding.mean(0)).pow(2).sum()


@register_distiller("dm", description="distribution matching of per-class mean embeddings")
def dm(real: Probe, syn: Probe) -> torch.Tensor:
    return mean_embedding_distance(real, syn)
