"""The interface every engine implements (``local``, ``ray``); see the package docstring."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator


class Engine:
    """The interface every engine implements."""

    name = "?"

    def map(self, fn: Callable, items: Iterable, *, shared: Any = None, prepare: Callable | None = None,
            threads: int | None = None) -> Iterator:
        """Yield ``fn(item)`` (or ``fn(state, item)``) for each item, in input order, keeping a bounded
        number of items in flight. ``threads`` caps local parallelism (1 = one item at a time)."""
        raise NotImplementedError

    @property
    def parallel(self) -> bool:
        """True when items run somewhere other than this process (stage code may then split work finer)."""
        return False

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
