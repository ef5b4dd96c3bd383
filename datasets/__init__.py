"""Data sets of oceandl: synthetic generators, cloud masks, readers of real formats, torch Datasets.

Every torch Dataset returns dicts (``{"image", "label"}``; ``"path"`` when read from a file), has
``.classes`` and ``.targets``, and takes ``transform`` callables that map a dict to a dict.

The names below load their module on first use: cloud masks and netCDF work need neither torch nor
torchvision, which the image readers and transforms import (seconds on a cold start).
"""
from __future__ import annotations

import importlib

# name -> submodule that defines it
_LAZY = {
    "cloud_masks": "clouds", "withhold_by_cloud_transfer": "clouds",
    "IMAGE_EXTENSIONS": "images", "TENGEOP_CLASSES": "images", "ImageFilesDataset": "images",
    "ImageFolderDataset": "images", "NetCDFImageDataset": "images", "TenGeoPDataset": "images",
    "is_tengeop_root": "images", "list_images": "images", "open_image_dataset": "images", "read_image": "images",
    "MNIST_CLASSES": "mnist", "MNISTDataset": "mnist", "download_mnist": "mnist", "find_mnist_files": "mnist",
    "load_mnist": "mnist", "read_idx": "mnist",
    "synthetic_sst": "sst",
    "PLANKTON_CLASSES": "synthetic_images", "make_plankton_images": "synthetic_images",
    "make_sar_vignettes": "synthetic_images", "plankton_arrays": "synthetic_images", "sar_arrays": "synthetic_images",
}
_SUBMODULES = ("clouds", "images", "mnist", "sst", "synthetic_images", "transforms")

__all__ = [
    "cloud_masks", "synthetic_sst", "withhold_by_cloud_transfer",
    "MNIST_CLASSES", "MNISTDataset", "download_mnist", "find_mnist_files", "load_mnist", "read_idx",
    "IMAGE_EXTENSIONS", "TENGEOP_CLASSES", "ImageFilesDataset", "ImageFolderDataset", "NetCDFImageDataset",
    "TenGeoPDataset", "is_tengeop_root", "list_images", "open_image_dataset", "read_image",
    "PLANKTON_CLASSES", "make_plankton_images", "make_sar_vignettes", "plankton_arrays", "sar_arrays",
    "transforms",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
