"""Engines run a function over chunks of work and gather the results in input order.

Stage code (ingest, embed, audit, bench) asks for ``engine.map(fn, items, shared=..., prepare=...)`` and
never learns which engine runs it:

- ``local``: threads on this machine (decoding and BLAS release the GIL).
- ``ray``: tasks on a Ray cluster (``--engine ray [--address ADDR]``); a worker keeps what ``prepare``
  built (a model, an index) for every item of the map it runs, and a task whose worker dies is retried
  on another, so no item is lost or done twice in the results.

``fn`` must be a module-level function (or a ``functools.partial`` of one) so it can travel to other
machines; ``shared`` is data every item needs (sent to each machine once); ``prepare(shared)`` turns it
into per-worker state once per worker. With either, ``fn`` is called as ``fn(state, item)``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import ParameterError, param
from .base import Engine
from .local import LocalEngine

ENGINES = ("local", "ray")


def get_engine(name: str | Engine | None = "local", *, address: str | None = None, threads: int | None = None,
               cpus_per_task: float = 1, gpus_per_task: float = 0) -> Engine:
    """An engine by name: ``local`` (threads here) or ``ray`` (a Ray cluster at ``address``; none: start a
    local one, or join the one ``RAY_ADDRESS`` names)."""
    if isinstance(name, Engine):
        return name
    if name in (None, "local"):
        if address:
            raise ParameterError(f"{param('address')} is for {param('engine')} ray")
        return LocalEngine(threads)
    if name == "ray":
        from .ray import RayEngine

        return RayEngine(address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
    raise ParameterError(f"{param('engine')} must be one of {', '.join(ENGINES)}, not {name!r}")


@contextmanager
def using(engine: str | Engine | None, **options) -> Iterator[Engine]:
    """``get_engine`` for the length of a stage: an engine made here is closed after it, one passed in is
    left open for its owner."""
    eng = get_engine(engine, **options)
    try:
        yield eng
    finally:
        if eng is not engine:
            eng.close()


__all__ = ["ENGINES", "Engine", "get_engine", "using"]
