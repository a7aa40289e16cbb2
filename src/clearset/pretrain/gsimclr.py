"""G-SimCLR's pseudo-class batching (methods.md, G-SimCLR card).

1. A denoising convolutional autoencoder (Gaussian noise sigma 0.01 on the input, MSE, Adam, early
   stopping on a held-out tenth, patience 2) learns a 4x4x128 bottleneck of 32-px images (three stride-2
   convolutions; other sizes are resized to 32 for this step only).
2. The bottleneck, global-average-pooled, is clustered by k-means with K = the batch size.
3. The data is ordered by rank within its cluster (every cluster's first member, then every cluster's
   second, ...), so each consecutive batch of K holds one image per pseudo-class, and this order is kept
   for every epoch (no reshuffle: reshuffling undoes the method).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import progress

log = logging.getLogger("clearset")
NOISE = 0.01
SIDE = 32


class DenoisingAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                     nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _as32(images: torch.Tensor) -> torch.Tensor:
    x = images.float() / 255.0
    return x if x.shape[-1] == SIDE else F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)


def bottleneck_features(images: torch.Tensor, seed: int, *, max_epochs: int = 20, patience: int = 2,
                        batch: int = 256, device: torch.device | None = None) -> tuple[np.ndarray, dict]:
    """(N, 128) pooled bottleneck of a denoising autoencoder trained on ``images`` (uint8), and its log."""
    dev = device or torch.device("cpu")
    torch.manual_seed(seed)
    net = DenoisingAutoencoder().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)
    n_val = max(1, len(images) // 10)
    val, train = order[:n_val], order[n_val:]
    best, best_state, bad, history = float("inf"), None, 0, []
    for epoch in progress.bar(range(max_epochs), desc="G-SimCLR autoencoder", unit="epoch"):
        net.train()
        for idx in train[torch.randperm(len(train), generator=gen)].split(batch):
            x = _as32(images[idx]).to(dev)
            noisy = x + NOISE * torch.randn(x.shape, generator=gen).to(dev)
            loss = F.mse_loss(net(noisy), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            v = float(np.mean([F.mse_loss(net(_as32(images[i]).to(dev)), _as32(images[i]).to(dev)).item()
                               for i in val.split(1024)]))
        history.append(v)
        if v < best - 1e-6:
            best, bad = v, 0
            best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        feats = torch.cat([net.encoder(_as32(images[s : s + 1024]).to(dev)).mean((2, 3)).cpu()
                           for s in range(0, len(images), 1024)])
    return feats.numpy(), {"epochs": len(history), "val_mse": history, "best_val_mse": best}


def pseudo_class_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Positions ordered by (rank within the cluster, cluster): consecutive runs of K = number of clusters
    hold one position per cluster while every cluster still has members."""
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[rng.permutation(members)] = np.arange(len(members))
    return np.lexsort((labels, rank))


def gsimclr_order(images: torch.Tensor, k: int, seed: int, device: torch.device | None = None,
                  max_epochs: int = 20) -> tuple[np.ndarray, dict]:
    """The fixed epoch order of G-SimCLR: autoencoder bottleneck (at most ``max_epochs``, early stopping),
    k-means with K = ``k`` (the batch size)."""
    from sklearn.cluster import KMeans

    feats, info = bottleneck_features(images, seed, device=device, max_epochs=max_epochs)
    labels = KMeans(n_clusters=min(k, len(feats)), n_init=1, random_state=seed).fit_predict(feats)
    sizes = np.bincount(labels)
    log.info("G-SimCLR: %d pseudo-classes of %d-%d images (autoencoder: %d epochs, val MSE %.5f)", len(sizes),
             sizes.min(), sizes.max(), info["epochs"], info["best_val_mse"])
    return pseudo_class_order(labels, seed), {**info, "cluster_sizes": sizes.tolist()}
