"""oceandl: deep learning for ocean remote sensing.

Classify SAR wave-mode vignettes, plankton and MNIST images; fill gappy sea-surface-temperature
fields with EOF/DINEOF and U-Net / residual auto-encoders; from the shell (``oceandl ...``), from
Python on xarray objects (``da.oceandl.interpolate()``), and through reproducible benchmarks.

Heavy modules (torch, the models, xarray) load on first use, so ``import oceandl`` stays light; the
``.oceandl`` accessor is registered when xarray is imported.
"""
from __future__ import annotations

import importlib
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("oceandl")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import CheckpointError, InputError, MissingResourceError, OceanDLError

__all__ = ["__version__", "interpolate", "eof", "classify", "get_model", "MODELS", "OceanDLError", "InputError",
           "CheckpointError", "MissingResourceError"]

_LAZY = {
    "interpolate": ("oceandl.interp", "interpolate"),
    "eof": ("oceandl.interp", "eof"),
    "classify": ("oceandl.classification", "classify"),
    "get_model": ("oceandl.models", "get_model"),
    "MODELS": ("oceandl.models", "MODELS"),
}


#: the public sub-packages, imported on first attribute access: the README's
#: ``oceandl.interp.interpolate_chunked(...)`` after a bare ``import oceandl`` failed with
#: "module 'oceandl' has no attribute 'interp'" unless something had imported it before
_SUBPACKAGES = frozenset({"interp", "io", "models", "training", "metrics", "datasets", "utils", "pipelines"})


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"oceandl.{name}")
    raise AttributeError(f"module 'oceandl' has no attribute {name!r}")


def __dir__() -> list[str]:
    # PEP 562's pair of __getattr__: without it dir(oceandl), and so a notebook's `oceandl.<Tab>`,
    # listed none of the lazy functions (interpolate, eof, classify, get_model, MODELS)
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


def _add_accessor(xarray=None) -> None:
    try:
        importlib.import_module("oceandl.accessor")
    except ImportError:  # xarray missing: the rest of oceandl still works
        pass


def _register_accessor() -> None:
    """Give DataArrays and Datasets their ``.oceandl`` accessor when xarray is imported, at once if it already is.

    A post-import hook (wrapt's), not ``import xarray`` here: xarray and pandas were 95 % of the
    time of ``import oceandl``, paid by ``oceandl --help``, shell completion and every command that
    reads no field. ``import oceandl`` then ``import xarray`` (either order) gives ``da.oceandl``.
    wrapt is used where it is installed (most scientific environments have it), not required: a
    start-up cost is not worth an install that can fail.
    """
    try:
        from wrapt import register_post_import_hook
    except ImportError:  # no wrapt: registered now (xarray imported with oceandl, as before)
        _add_accessor()
        return
    register_post_import_hook(_add_accessor, "xarray")


_register_accessor()
