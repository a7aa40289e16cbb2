"""clearset: make image-classification datasets, and the models trained on them, measurably better.

Pipeline: ingest -> embed -> audit -> curate / distill -> train -> evaluate -> bench -> report.
Every stage is a Python function and a ``clearset`` command that do the same thing::

    import clearset
    ws = clearset.ingest("builtin:digits", "ws")
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=64)
    clearset.report(ws)

Names load on first use, so ``import clearset`` stays fast (torch is imported only when needed).
"""

from .lazy import lazy_names

__version__ = "0.1.0"

_API = {
    "ingest": ("clearset.data.ingest", "ingest"),
    "embed": ("clearset.features", "embed"),
    "EmbedResult": ("clearset.features", "EmbedResult"),
    "report": ("clearset.reporting", "build_report"),
    "demo": ("clearset.pipeline", "run_demo"),
    "linear_probe": ("clearset.evaluate.probe", "linear_probe"),
    "reinforce": ("clearset.train", "reinforce"),
    "evaluate_run": ("clearset.evaluate.evaluation", "evaluate_run"),
    "open_source": ("clearset.data.sources", "open_source"),
    "Workspace": ("clearset.workspace", "Workspace"),
    "ClearsetError": ("clearset.errors", "ClearsetError"),
}


__getattr__, __dir__ = lazy_names(__name__, _API)

__all__ = sorted(_API) + ["__version__"]
