"""The ``oceandl`` command line (click, in the style of rasterio's ``rio``)."""
from .main import cli, main

__all__ = ["cli", "main"]
