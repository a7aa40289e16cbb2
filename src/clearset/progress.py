"""Progress bars and logging that the CLI's --quiet silences; library code never prints."""

from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
log = logging.getLogger("clearset")
_quiet = os.environ.get("CLEARSET_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "img",
        initial: int = 0):
    """A tqdm bar on stderr, hidden when quiet or when stderr is not a terminal (logs stay readable)."""
    disable = _quiet or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, dynamic_ncols=True,
                smoothing=0.1, file=sys.stderr)


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    set_quiet(quiet)
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
