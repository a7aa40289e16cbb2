"""The local engine: an ordered, bounded-memory parallel map on threads (decoding, resizing and BLAS
release the GIL)."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Callable, Iterable, Iterator, TypeVar

from .base import Engine

T = TypeVar("T")
R = TypeVar("R")


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, threads: int | None = None,
                window: int | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` in input order, running at most ``window`` items ahead on ``threads`` threads.

    Unlike ``Executor.map`` it never submits the whole iterable, so memory stays bounded for streams.
    Exceptions surface at the item that raised them.
    """
    threads = threads or default_threads()
    if threads <= 1:
        yield from map(fn, items)
        return
    window = window or threads * 4
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="clearset") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def with_state(fn: Callable, shared=None, prepare: Callable | None = None) -> Callable:
    """``fn`` with its per-worker state bound, as an engine calls it."""
    if prepare is None and shared is None:
        return fn
    state = prepare(shared) if prepare is not None else shared
    return partial(fn, state)


class LocalEngine(Engine):
    """Threads on this machine; ``prepare`` runs once and its state is shared by the threads."""

    name = "local"

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def map(self, fn, items, *, shared=None, prepare=None, threads=None):
        return ordered_map(with_state(fn, shared, prepare), items, threads=threads or self.threads)
