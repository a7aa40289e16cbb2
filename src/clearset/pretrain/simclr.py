"""SimCLR's objective and optimiser (methods.md, SimCLRv2 card).

NT-Xent over a batch of B pairs: the 2B projections z are L2-normalised; for each of them the positive
is its pair and the 2B - 2 others are negatives: loss_i = -log exp(sim(z_i, z_i+) / tau) /
sum_{k != i} exp(sim(z_i, z_k) / tau), averaged over all 2B.

LARS (You et al.): SGD with momentum where each weight matrix's step is scaled by the trust ratio
eta·||w|| / ||grad + wd·w||; biases and batch-norm parameters get neither weight decay nor the ratio (as
SimCLR excludes them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4, eta: float = 0.001):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:  # weights: decay and the layer-wise trust ratio
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), g.norm()
                    ratio = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones((), device=p.device))
                    g = g * ratio
                buf = self.state[p].get("momentum")
                if buf is None:
                    buf = self.state[p]["momentum"] = g.clone()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return None


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor, losses: list[float], bar) -> None:
    """One step on ``loss``; the loss recorded and the bar showing the running mean of the last 20."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(float(loss.detach()))
    bar.update(1)
    bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
