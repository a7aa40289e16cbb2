"""Packages whose names load on first use (PEP 562), so ``import clearset`` or a CLI default does not
import torch: ``__getattr__, __dir__ = lazy_names(__name__, {"name": "module", ...})``."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Callable, Mapping


def lazy_names(package: str, names: Mapping[str, str | tuple[str, str]]) -> tuple[Callable, Callable]:
    """(``__getattr__``, ``__dir__``) for ``package``: each public name maps to the module that defines it
    (or to (module, attribute) where the name differs); a name is imported once, then kept."""
    module = sys.modules[package]

    def __getattr__(name: str):
        if name in names:
            spec = names[name]
            where, attr = spec if isinstance(spec, tuple) else (spec, name)
            value = getattr(import_module(where), attr)
            setattr(module, name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(list(vars(module)) + list(names))

    return __getattr__, __dir__
