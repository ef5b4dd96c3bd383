"""oceandl: deep learning for ocean remote sensing.

Classify SAR wave-mode vignettes, plankton and MNIST images; fill gappy sea-surface-temperature
fields with EOF/DINEOF and U-Net / residual auto-encoders; from the shell (``oceandl ...``), from
Python on xarray objects (``da.oceandl.interpolate()``), and through reproducible benchmarks.

Heavy modules (torch, the models) load on first use, so ``import oceandl`` stays light.
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


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'oceandl' has no attribute {name!r}")


def _register_accessor() -> None:
    try:
        importlib.import_module("oceandl.accessor")
    except ImportError:  # xarray missing: the rest of oceandl still works
        pass


_register_accessor()
