"""Errors a user can cause and fix. Each message names the file or field, what is wrong, and what to do.

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from typing import Mapping

_MARK = "\x00"


def param(name: str) -> str:
    """A Python parameter named in an error message. ``str(error)`` shows ``name`` (what a Python caller
    passed); the CLI shows the command's flag for it (the name with dashes, unless spelled otherwise)."""
    return f"{_MARK}{name}{_MARK}"


def render(message: str, flags: Mapping[str, str] | None = None) -> str:
    """``message`` with its ``param`` marks as Python names, or as the flags in ``flags`` (the CLI)."""
    def name(m: re.Match) -> str:
        n = m.group(1)
        return n if flags is None else flags.get(n, "--" + n.replace("_", "-"))

    return re.sub(f"{_MARK}(\\w+){_MARK}", name, message)


class ClearsetError(Exception):
    """Base class of every user-facing error. Its message names Python parameters through ``param``;
    ``str()`` reads them as Python names, ``for_cli`` as the command's flags."""

    exit_code = 2

    def __str__(self) -> str:
        return render(super().__str__())

    def for_cli(self, flags: Mapping[str, str]) -> str:
        return render(super().__str__(), flags)


class SourceError(ClearsetError):
    """The data source cannot be read: missing path, unknown format, no images."""


class ImageError(ClearsetError):
    """An image cannot be decoded (corrupt, truncated, unsupported)."""


class LabelError(ClearsetError):
    """Labels are out of range, of the wrong length or the wrong type."""


class WorkspaceError(ClearsetError):
    """The workspace lacks an artifact a step needs, or holds an inconsistent one."""


class ParameterError(ClearsetError):
    """An option has a value that cannot work (unknown name, out of range)."""


class DownloadError(ClearsetError):
    """A download failed, typically because the machine is offline."""


def check_seed(seed: int, name: str = "seed") -> int:
    """A seed every generator accepts (numpy's need 0..2**32-1): the seed, else a ParameterError."""
    if not isinstance(seed, (int,)) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
        raise ParameterError(f"{param(name)} {seed!r}: give an integer from 0 to {2 ** 32 - 1}")
    return seed
