"""Training: recipes, the batch-augmenting loop, soft targets (distillation, reinforcement), TrAct.

Names load on first use (as in ``clearset``), so importing ``clearset.train.recipes`` for a default (the
CLI does) does not import torch.
"""

from importlib import import_module

_API = {
    "Run": "clearset.artifacts.runs", "load_run": "clearset.artifacts.runs", "train": "clearset.train.api",
    "RECIPES": "clearset.train.recipes", "Recipe": "clearset.train.recipes", "get_recipe": "clearset.train.recipes",
    "Reinforced": "clearset.train.reinforcement", "load_reinforced": "clearset.train.reinforcement",
    "reinforce": "clearset.train.reinforcement",
}


def __getattr__(name):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clearset.train' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))


__all__ = sorted(_API)
