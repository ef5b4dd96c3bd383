"""Data sets of oceandl: synthetic generators, cloud masks, readers of real formats, torch Datasets."""
from __future__ import annotations

from .clouds import cloud_masks, withhold_by_cloud_transfer
from .sst import synthetic_sst

__all__ = [
    "cloud_masks",
    "synthetic_sst",
    "withhold_by_cloud_transfer",
]
