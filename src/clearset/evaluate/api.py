"""``clearset eval``: metrics, robustness and the mistake taxonomy of one run, every option checked
before any work or write."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import ParameterError
from .evaluation import evaluate_run
from .mistakes import check_mistakes, mistake_taxonomy
from .robustness import check_robustness, robustness


def evaluate(run_dir: str | Path, *, data: str | Path | None = None, split: str | None = None,
             human_labels: str | Path | None = None, corruptions: list[str] | None = None,
             severities: list[int] | None = None, corruption_images: int | None = None,
             shift: Sequence[str | Path] | None = None, mistakes: bool = False) -> dict:
    """``clearset eval``: the run's metrics, and on request its robustness (``corruptions``: names, [] for
    none, None for all 15; ``shift`` sets) and mistake taxonomy. Every option is checked before any work
    or write, so a bad one leaves the run folder as it was. Returns {"metrics", "robustness", "mistakes"}."""
    wants_robustness = corruptions is None or bool(corruptions) or bool(shift)
    checked = check_robustness(run_dir, corruptions=corruptions, severities=severities, images=corruption_images,
                               shift=shift) if wants_robustness else None
    if mistakes:
        check_mistakes(run_dir)
    if human_labels is not None and not Path(human_labels).is_file():
        raise ParameterError(f"{human_labels}: human labels file not found")
    out = {"metrics": evaluate_run(run_dir, data=data, split=split, human_labels=human_labels),
           "robustness": None, "mistakes": None}
    if wants_robustness:
        out["robustness"] = robustness(run_dir, corruptions=corruptions, severities=severities,
                                       images=corruption_images, shift=shift, checked=checked)
    if mistakes:
        out["mistakes"] = mistake_taxonomy(run_dir, human_labels=human_labels)
    return out
