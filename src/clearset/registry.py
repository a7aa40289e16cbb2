"""The one registry helper behind every extension point (sources, backbones, checks, strategies...).

A registry maps a name to a factory; ``register`` is a decorator, ``create``/``get`` look names up and fail
with the list of valid names, ``names`` lists them for ``--help`` and ``clearset list``.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from .errors import ParameterError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ParameterError(
                f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries
