"""Ordered, bounded-memory parallel map on threads (decoding and resizing release the GIL)."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

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
