"""Side-by-side comparison of curation strategies under one training recipe (``clearset bench``)."""

from .runner import Cell, run_bench

__all__ = ["Cell", "run_bench"]
