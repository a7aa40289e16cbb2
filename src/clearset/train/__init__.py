"""Training: recipes, the batch-augmenting loop, soft targets (distillation, reinforcement), TrAct.

Names load on first use (as in ``clearset``), so importing ``clearset.train.recipes`` for a default (the
CLI does) does not import torch.
"""

from ..lazy import lazy_names

_API = {
    "Run": "clearset.artifacts.runs", "load_run": "clearset.artifacts.runs", "train": "clearset.train.api",
    "RECIPES": "clearset.train.recipes", "Recipe": "clearset.train.recipes", "get_recipe": "clearset.train.recipes",
    "Reinforced": "clearset.train.reinforcement", "load_reinforced": "clearset.train.reinforcement",
    "reinforce": "clearset.train.reinforcement",
}


__getattr__, __dir__ = lazy_names(__name__, _API)

__all__ = sorted(_API)
