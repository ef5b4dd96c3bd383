"""Exceptions of oceandl.

Every error a user can cause is an :class:`InputError` (exit code 2 on the command line); everything
else that oceandl raises on purpose is an :class:`OceanDLError` (exit code 1). Messages are one line
and name the file, variable or option at fault.
"""
from __future__ import annotations

import sys
import warnings

__all__ = ["OceanDLError", "InputError", "CheckpointError", "MissingResourceError", "one_line", "warn"]


class OceanDLError(Exception):
    """Base class of oceandl's own errors (exit code 1 on the command line)."""

    exit_code = 1


class InputError(OceanDLError, ValueError):
    """Bad input from the user: file, variable, dimensions, values or options (exit code 2)."""

    exit_code = 2


class CheckpointError(InputError):
    """A checkpoint that is missing, corrupt, a pickle, or made for another model."""


class MissingResourceError(InputError):
    """A local file the user must provide (pretrained weights, a public data set) is absent.

    The message says where to put it.
    """


def one_line(exc: BaseException, limit: int = 160, with_type: bool = True) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters, for a one-line error that
    wraps it: ``"TypeName: text"`` (``with_type``), else the text; the type name when it is empty."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if with_type else text


def _internal(frame) -> bool:
    """Whether ``frame`` runs oceandl's own code (any of its modules, wherever their files lie)."""
    name = frame.f_globals.get("__name__") or ""
    return name == "oceandl" or name.startswith("oceandl.")


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue a warning attributed to the first caller outside oceandl: the user's line.

    A fixed ``stacklevel`` is right for one call path only: the same warning reached through
    ``da.oceandl.interpolate()``, :func:`oceandl.interpolate` or ``Interpolator.fit`` named
    ``oceandl/interp/base.py`` or ``accessor.py``, not the notebook cell or script that made the
    call. The level is counted here instead, as pandas' ``find_stack_level`` does, by module
    name (``warnings.warn``'s ``skip_file_prefixes`` needs Python 3.12, and oceandl's modules lie
    in four source folders).
    """
    level, frame = 2, sys._getframe(1)
    while frame is not None and _internal(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
