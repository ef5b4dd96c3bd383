"""Classify images with a trained checkpoint: arrays, tensors, DataArrays or datasets in, labelled
``xarray.Dataset`` out."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["classify", "UNASSIGNED"]

UNASSIGNED = "unassigned"
#: names of the variables and coords of :func:`classify`'s Dataset (input coords of these names are not kept).
_OUTPUT_NAMES = ("predicted", "label", "probability", "probabilities", "class", "path")


def _as_images(images):
    """(N, C, H, W) float tensor, sample coordinate, paths, sample dim and the other coords on it."""
    import torch
    import xarray as xr

    if isinstance(images, xr.DataArray):
        if images.ndim not in (3, 4):
            raise InputError(f"DataArray {images.name!r} has dims {images.dims}: expected (sample, y, x)")
        dim = images.dims[0]
        # per-image coords (time, lat, lon of each vignette) go to the predictions; they were dropped
        extra = {c: v.variable for c, v in images.coords.items()
                 if c != dim and v.dims == (dim,) and c not in _OUTPUT_NAMES}
        return torch.as_tensor(np.asarray(images.values, np.float32)), images[dim].values, None, dim, extra
    if isinstance(images, (np.ndarray, torch.Tensor)):
        x = torch.as_tensor(np.asarray(images, np.float32) if isinstance(images, np.ndarray) else images).float()
        if x.ndim == 2:
            x = x[None]
        return x, np.arange(len(x)), None, "sample", {}
    if hasattr(images, "__getitem__") and hasattr(images, "__len__"):
        from .training.engine import materialize

        x, _ = materialize(images, desc="reading images")
        paths = [str(p) for p in getattr(images, "files", [])] or None
        return x, np.arange(len(x)), paths, "sample", {}
    raise InputError(f"cannot classify a {type(images).__name__}: pass an array, DataArray or dataset")


def classify(images, model: str | os.PathLike, *, batch_size: int = 256, device: str = "auto",
             min_confidence: float = 0.0, tta: bool = False, progress: bool = False):
    """Predict classes with the checkpoint folder ``model``.

    Parameters
    ----------
    images : array (N, H, W) / (N, C, H, W), torch tensor, ``xarray.DataArray`` (sample, y, x), or a
        dataset of ``{"image"}`` dicts (e.g. :class:`oceandl.datasets.ImageFilesDataset`).
    model : checkpoint folder written by ``oceandl train classifier`` (or its ``-o`` path).
    min_confidence : images whose top probability is below it are labelled ``"unassigned"``.
    tta : average over flips and 90-degree rotations.

    Returns
    -------
    xarray.Dataset on ``sample`` with ``predicted`` (class name), ``label`` (index, -1 unassigned),
    ``probability`` (top class) and ``probabilities`` (sample, class); ``path`` when known. A
    DataArray's other coordinates along its sample dim (e.g. each image's time) are kept.
    """
    import xarray as xr

    from .preprocess import preprocess_batch
    from .training.checkpoint import load_checkpoint
    from .training.engine import predict
    from .utils import resolve_device

    if not 0 <= min_confidence <= 1:
        raise InputError(f"min_confidence={min_confidence}: must be within [0, 1]")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        # else predict's range(0, n, 0) raised a bare ValueError
        raise InputError(f"batch_size={batch_size!r}: must be a positive integer")
    net, cfg = load_checkpoint(model, device=resolve_device(device), expect_task="classification")
    x, sample, paths, dim, extra = _as_images(images)
    if len(x) == 0:
        raise InputError("no images to classify")
    x = preprocess_batch(x, cfg.get("preprocessing"))
    probs = predict(net, x, batch_size=batch_size, device=device, tta=tta, progress=progress)
    classes = list(cfg.get("classes") or range(probs.shape[1]))
    top = probs.argmax(1)
    conf = probs.max(1)
    keep = conf >= min_confidence
    names = np.array([str(classes[i]) if k else UNASSIGNED for i, k in zip(top, keep)], dtype=object)
    ds = xr.Dataset(
        {"predicted": (dim, names.astype(str)), "label": (dim, np.where(keep, top, -1)),
         "probability": (dim, conf.astype(np.float32)),
         "probabilities": ((dim, "class"), probs.astype(np.float32))},
        coords={dim: sample, **extra, "class": [str(c) for c in classes]},
        attrs={"model": str(Path(model)), "architecture": cfg["model"], "min_confidence": min_confidence,
               "tta": int(tta)},
    )
    if paths is not None and len(paths) == len(sample):
        ds["path"] = (dim, np.array(paths, dtype=str))
    from . import __version__

    ds.attrs["oceandl_version"] = __version__
    return ds
