"""Batched prediction of a trained network on uint8 images."""

from __future__ import annotations

import numpy as np
import torch


def predict(net: torch.nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch: int = 1024,
            autocast: bool = False, tta: int = 0) -> np.ndarray:
    """Logits (N, K) float32 of uint8 images (N, 3, H, W), in eval mode. ``tta``: 1 averages the logits of
    each image and its mirror; 2 also those of the image shifted by one pixel up-left and down-right
    (reflected at the border), weighted half and half as airbench does."""
    net.eval()
    out = []
    dev = next(net.parameters()).device
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
        for s in range(0, len(images), batch):
            x = images[s : s + batch].to(dev).float()
            x = ((x / 255.0 - mean.to(dev)) / std.to(dev)).contiguous(memory_format=torch.channels_last)
            out.append(_logits(net, x, tta).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def _logits(net: torch.nn.Module, x: torch.Tensor, tta: int) -> torch.Tensor:
    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * net(v).float() + 0.5 * net(v.flip(3)).float()

    if tta == 0:
        return net(x)
    if tta == 1:
        return mirrored(x)
    h, w = x.shape[2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :h, :w], padded[:, :, 2:, 2:]]
    return 0.5 * mirrored(x) + 0.25 * sum(mirrored(v.contiguous(memory_format=torch.channels_last)) for v in shifted)
