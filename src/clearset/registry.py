"""The one registry helper behind every extension point (sources, stores, backbones, models, recipes,
checks, strategies, distillers, metrics, corruptions, report sections).

A registry maps a name to an entry (a factory, a function or a spec) and optional metadata. The API is
the same everywhere, after timm's ``register_model`` / ``create_model`` / ``list_models``:

- ``register(name, **meta)``: a decorator (or ``register(name, obj, **meta)``);
- ``get(name)`` / ``create(name, *args, **kwargs)``: look up (an unknown name fails listing the valid ones);
- ``list(pattern="*")``: the names, sorted, filtered by a shell pattern (``"efficientnet*"``);
- ``describe(name)``: one line for ``--help`` and ``clearset list``: the ``description`` given at
  registration, else the entry's ``description`` attribute, else its docstring's first line.

Every registry is listed in ``REGISTRIES`` under its ``listing`` name, so ``clearset list`` and the
contract tests (clearset/testing.py) loop over all of them.
"""

from __future__ import annotations

import builtins
import fnmatch
import sys
from typing import Any, Callable, Generic, TypeVar

from .errors import ParameterError

T = TypeVar("T")
REGISTRIES: dict[str, "Registry"] = {}


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (a registry's home), so that a new entry is one file with one
    decorator: nothing else lists it. Modules whose name starts with ``_`` are left alone."""
    import importlib
    import pkgutil

    pkg = sys.modules[package]
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def options_of(fn: Callable, positional: tuple[str, ...] = ()) -> list[str]:
    """The options a registered function takes: its keyword-only parameters and those with a default,
    less the ``positional`` inputs every entry of its registry receives."""
    import inspect

    return [p.name for p in inspect.signature(fn).parameters.values()
            if (p.kind == p.KEYWORD_ONLY or p.default is not inspect.Parameter.empty) and p.name not in positional]


def check_options(kind: str, name: str, fn: Callable, options: dict, positional: tuple[str, ...] = ()) -> None:
    """A ParameterError naming the valid options when ``options`` has one ``fn`` does not take."""
    valid = options_of(fn, positional)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ParameterError(f"{kind} {name!r} has no option(s) {unknown}; it takes {sorted(valid) or 'none'}")


class Registry(Generic[T]):
    def __init__(self, kind: str, listing: str | None = None):
        """``kind`` names an entry in messages ("audit check"); ``listing`` is the plural ``clearset list``
        takes ("checks")."""
        self.kind = kind
        self.listing = listing or kind.split()[-1] + "s"
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._renamed: dict[str, str] = {}  # old name -> the message naming its successor
        if self.listing in REGISTRIES:
            raise RuntimeError(f"two registries are listed as {self.listing!r}")
        REGISTRIES[self.listing] = self

    def register(self, name: str, obj: T | None = None, **meta: Any) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            self._meta[name] = dict(meta)
            return entry

        if obj is not None:
            decorator(obj)
        return decorator

    def rename(self, old: str, new: str, why: str = "") -> None:
        """``old`` was renamed ``new`` (an adaptation taking its own name): asking for it says so."""
        self._renamed[old] = f"{self.kind} {old!r} is now named {new!r}" + (f": {why}" if why else "")

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            if name in self._renamed:
                raise ParameterError(self._renamed[name]) from None
            raise ParameterError(
                f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def list(self, pattern: str = "*") -> builtins.list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def names(self) -> builtins.list[str]:
        return self.list()

    def items(self) -> builtins.list[tuple[str, T]]:
        return sorted(self._entries.items())

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._meta.get(name, {}))

    def describe(self, name: str) -> str:
        entry, meta = self.get(name), self._meta.get(name, {})
        text = meta.get("description") or getattr(entry, "description", None) or _first_line(entry)
        return str(text or "")

    def differs(self, name: str) -> str:
        """How the entry differs from the method its name cites ("" when it follows it, or cites none)."""
        self.get(name)
        return str(self._meta.get(name, {}).get("differs") or "")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _first_line(entry: Any) -> str:
    """The entry's own docstring (a class without one: its module's), first line; instances: their title."""
    if not isinstance(entry, type) and not callable(entry) or hasattr(entry, "__dataclass_fields__"):
        return str(getattr(entry, "title", "") or "")
    doc = entry.__dict__.get("__doc__") if isinstance(entry, type) else getattr(entry, "__doc__", None)
    if not doc and isinstance(entry, type) and entry.__module__ in sys.modules:
        doc = sys.modules[entry.__module__].__doc__
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
