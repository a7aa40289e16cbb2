"""The leaderboard (``clearset bench``): curation strategies side by side under one training recipe. It runs
other stages (curate, train) for each cell, so it sits above them (floor 5, beside the report); named
``leaderboard`` so it never clashes with the repository's ``bench/`` of speed and accuracy scripts."""

from .runner import Cell, run_bench

__all__ = ["Cell", "run_bench"]
