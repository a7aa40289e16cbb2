"""Training: recipes, the batch-augmenting loop, soft targets (distillation, reinforcement), TrAct."""

from .loop import Run, load_run, train
from .recipes import RECIPES, Recipe, get_recipe

__all__ = ["RECIPES", "Recipe", "Run", "get_recipe", "load_run", "train"]
