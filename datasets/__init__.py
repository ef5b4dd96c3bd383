"""Data sets of oceandl: synthetic generators, cloud masks, readers of real formats, torch Datasets.

Every torch Dataset returns dicts (``{"image", "label"}``; ``"path"`` when read from a file), has
``.classes`` and ``.targets``, and takes ``transform`` callables that map a dict to a dict.
"""
from __future__ import annotations

from . import transforms
from .clouds import cloud_masks, withhold_by_cloud_transfer
from .images import (IMAGE_EXTENSIONS, TENGEOP_CLASSES, ImageFilesDataset, ImageFolderDataset, NetCDFImageDataset,
                     TenGeoPDataset, is_tengeop_root, list_images, open_image_dataset, read_image)
from .mnist import MNIST_CLASSES, MNISTDataset, download_mnist, find_mnist_files, load_mnist, read_idx
from .sst import synthetic_sst
from .synthetic_images import (PLANKTON_CLASSES, make_plankton_images, make_sar_vignettes, plankton_arrays,
                               sar_arrays)

__all__ = [
    "cloud_masks", "synthetic_sst", "withhold_by_cloud_transfer",
    "MNIST_CLASSES", "MNISTDataset", "download_mnist", "find_mnist_files", "load_mnist", "read_idx",
    "IMAGE_EXTENSIONS", "TENGEOP_CLASSES", "ImageFilesDataset", "ImageFolderDataset", "NetCDFImageDataset",
    "TenGeoPDataset", "is_tengeop_root", "list_images", "open_image_dataset", "read_image",
    "PLANKTON_CLASSES", "make_plankton_images", "make_sar_vignettes", "plankton_arrays", "sar_arrays",
    "transforms",
]
