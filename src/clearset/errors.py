"""Errors a user can cause and fix. Each message names the file or field, what is wrong, and what to do.

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ClearsetError(Exception):
    """Base class of every user-facing error."""

    exit_code = 2


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


def check_seed(seed: int, name: str = "--seed") -> int:
    """A seed every generator accepts (numpy's need 0..2**32-1): the seed, else a ParameterError."""
    if not isinstance(seed, (int,)) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
        raise ParameterError(f"{name} {seed!r}: give an integer from 0 to {2 ** 32 - 1}")
    return seed
