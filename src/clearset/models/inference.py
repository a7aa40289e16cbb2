"""Batched prediction of a trained network on uint8 images."""

from __future__ import annotations

import numpy as np
import torch


def predict(net: torch.nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch: int = 1024,
            autocast: bool = False) -> np.ndarray:
    """Logits (N, K) float32 of uint8 images (N, 3, H, W), in eval mode."""
    net.eval()
    out = []
    dev = next(net.parameters()).device
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
        for s in range(0, len(images), batch):
            x = images[s : s + batch].to(dev).float()
            x = ((x / 255.0 - mean.to(dev)) / std.to(dev)).contiguous(memory_format=torch.channels_last)
            out.append(net(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
