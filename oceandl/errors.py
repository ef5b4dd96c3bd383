"""Exceptions of oceandl.

Every error a user can cause is an :class:`InputError` (exit code 2 on the command line); everything
else that oceandl raises on purpose is an :class:`OceanDLError` (exit code 1). Messages are one line
and name the file, variable or option at fault.
"""
from __future__ import annotations

__all__ = ["OceanDLError", "InputError", "CheckpointError", "MissingResourceError"]


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
