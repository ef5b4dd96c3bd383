"""MNIST: a validating IDX reader and a torch Dataset of ``{"image", "label"}`` samples.

The IDX format (LeCun et al.) is a big-endian header — two zero bytes, a type code (``0x08`` =
unsigned byte), the number of dimensions — then one 32-bit size per dimension and the raw values.
MNIST images have the magic number 2051 (``0x00000803``: ubyte, 3 dims ``(N, 28, 28)``), labels 2049
(``0x00000801``: ubyte, 1 dim ``(N,)``). Files may be gzip-compressed (``.gz``) or raw.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from oceandl.errors import InputError, MissingResourceError

__all__ = [
    "MNIST_FILES",
    "MNIST_CLASSES",
    "read_idx",
    "find_mnist_files",
    "load_mnist",
    "download_mnist",
    "MNISTDataset",
]

#: File stems of each split (``.gz`` or no suffix), images first.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_CLASSES = [str(d) for d in range(10)]

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


def _search_dirs(root: Path) -> list[Path]:
    # Plain folder, a `mnist` sub-folder (shared/data), torchvision's `MNIST/raw`.
    return [root, root / "mnist", root / "MNIST" / "raw"]


def _read_bytes(path: Path) -> bytes:
    """Whole file content, gunzipped when it is gzip (detected by its magic, not its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    if path.suffix == ".gz":
        raise InputError(f"{path}: named .gz but is not gzip-compressed")
    return raw


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzip or raw) into a ``uint8`` array.

    Parameters
    ----------
    path
        The file.
    magic
        Expected magic number (2051 for MNIST images, 2049 for labels); ``None`` accepts any
        unsigned-byte IDX file.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array with the shape the header declares, e.g. ``(N, 28, 28)``.

    Raises
    ------
    InputError
        Bad magic number, non-ubyte type, truncated header or data, trailing bytes.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise InputError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise InputError(f"{path}: bad IDX magic number {found} (expected {magic})")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise InputError(f"{path}: bad IDX magic number {found} (not an unsigned-byte IDX file)")
    ndim = data[3]
    if ndim == 0:
        raise InputError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: truncated IDX header ({len(data)} bytes, {header} needed)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims)  # Python ints: a forged header cannot overflow to a small size
    got = len(data) - header
    if got < expected:
        raise InputError(
            f"{path}: truncated IDX data ({got} bytes after the header, {expected} needed for shape {dims})"
        )
    if got > expected:
        raise InputError(f"{path}: {got - expected} unexpected bytes after the IDX data of shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def find_mnist_files(root: str | os.PathLike, split: str = "test") -> tuple[Path, Path]:
    """Locate the images and labels files of ``split`` under ``root``.

    Looks in ``root``, ``root/mnist`` and ``root/MNIST/raw`` (torchvision's layout) for the official
    names, gzip-compressed (``.gz``) or raw; a folder must hold both files of the split.

    Returns
    -------
    (Path, Path)
        Images file, labels file.

    Raises
    ------
    InputError
        Unknown split.
    MissingResourceError
        The files are not there; the message lists the expected names and folders.
    """
    if split not in MNIST_FILES:
        raise InputError(f"MNIST split {split!r}: not one of {sorted(MNIST_FILES)}")
    root = Path(root)
    stems = MNIST_FILES[split]
    for folder in _search_dirs(root):
        found = []
        for stem in stems:
            for name in (stem + ".gz", stem):
                if (folder / name).is_file():
                    found.append(folder / name)
                    break
        if len(found) == 2:
            return found[0], found[1]
    names = " and ".join(f"{s}[.gz]" for s in stems)
    folders = ", ".join(str(d) for d in _search_dirs(root))
    raise MissingResourceError(
        f"MNIST {split} set not found: expected {names} in one of {folders}; "
        f"--download fetches them through torchvision when online, or copy the files there"
    )


def load_mnist(root: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Read the MNIST ``split`` ("train" or "test") found under ``root``.

    Returns
    -------
    images : numpy.ndarray
        ``uint8`` ``(N, 28, 28)``.
    labels : numpy.ndarray
        ``int64`` ``(N,)`` in 0..9.

    Raises
    ------
    InputError
        Missing files (:class:`MissingResourceError`), bad magic numbers, truncated files, image
        shape not ``(N, 28, 28)``, no image, label values outside 0..9, or image and label counts
        that differ.
    """
    img_path, lbl_path = find_mnist_files(root, split)
    images = read_idx(img_path, _IMAGES_MAGIC)
    labels = read_idx(lbl_path, _LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise InputError(f"{img_path}: images of shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise InputError(f"{lbl_path}: labels of shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise InputError(
            f"{img_path}: {len(images)} images but {lbl_path.name} has {len(labels)} labels"
        )
    if len(images) == 0:  # else the engine's anonymous "no samples to load" much later
        raise InputError(f"{img_path}: holds 0 images")
    if labels.max() > 9:
        raise InputError(f"{lbl_path}: label value {int(labels.max())} outside 0..9")
    return images, labels.astype(np.int64)


def download_mnist(root: str | os.PathLike) -> Path:
    """Download MNIST (train and test) into ``root/MNIST/raw`` through torchvision.

    Needs network access; :func:`load_mnist` finds the files there afterwards.

    Returns
    -------
    Path
        The folder holding the IDX files.

    Raises
    ------
    InputError
        The download failed (offline, mirror down); the message says where to put the files by hand.
    """
    from torchvision.datasets import MNIST

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        raise InputError(
            f"MNIST download into {root / 'MNIST' / 'raw'} failed ({exc}); copy the IDX files there by hand"
        ) from exc
    return root / "MNIST" / "raw"


class MNISTDataset(Dataset):
    """Digits as ``{"image": float32 (1, 28, 28) in [0, 1], "label": int64 scalar, "index": int}``.

    Parameters
    ----------
    images
        ``(N, 28, 28)`` (or ``(N, H, W)``) ``uint8`` in 0..255, or floats already in [0, 1].
    labels
        ``(N,)`` integer labels in 0..9.
    transform
        Called on each sample dict, returns a dict.

    Attributes
    ----------
    classes : list[str]
        ``["0", ..., "9"]``.
    targets : numpy.ndarray
        ``int64 (N,)`` labels (for splits and samplers without touching the images).
    """

    classes = MNIST_CLASSES

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: Callable[[dict], dict] | None = None,
    ) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3:
            raise InputError(f"MNIST images of shape {images.shape}: expected (N, H, W)")
        if labels.shape != (len(images),):
            raise InputError(f"MNIST labels of shape {labels.shape}: expected ({len(images)},)")
        if images.dtype == np.uint8:
            # Keep uint8 in memory (4x smaller); scale per sample.
            self._images = torch.from_numpy(np.ascontiguousarray(images))
            self._scale = 1.0 / 255.0
        else:
            self._images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
            self._scale = 1.0
        self.targets = labels.astype(np.int64)
        self.transform = transform

    @classmethod
    def from_root(
        cls,
        root: str | os.PathLike,
        split: str = "test",
        transform: Callable[[dict], dict] | None = None,
    ) -> "MNISTDataset":
        """Build from the IDX files of ``split`` under ``root`` (see :func:`load_mnist`)."""
        images, labels = load_mnist(root, split)
        return cls(images, labels, transform=transform)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict:
        image = self._images[index].to(torch.float32, copy=True).mul_(self._scale).unsqueeze(0)
        sample = {
            "image": image,
            "label": torch.tensor(self.targets[index], dtype=torch.int64),
            "index": int(index),
        }
        return self.transform(sample) if self.transform is not None else sample
