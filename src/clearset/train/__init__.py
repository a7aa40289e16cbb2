"""Training: recipes, the batch-augmenting loop, soft targets (distillation, reinforcement), TrAct."""

from ..artifacts.runs import Run, load_run
from .loop import train
from .recipes import RECIPES, Recipe, get_recipe
from .reinforcement import Reinforced, load_reinforced, reinforce

__all__ = ["RECIPES", "Recipe", "Reinforced", "Run", "get_recipe", "load_reinforced", "load_run", "reinforce", "train"]
