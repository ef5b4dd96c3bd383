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


#: dim names (lower case) read as an image's rows, columns and channels in a DataArray
_ROW_DIMS = ("y", "lat", "latitude", "row", "rows", "line", "height")
_COL_DIMS = ("x", "lon", "longitude", "col", "cols", "column", "columns", "width")
_CHANNEL_DIMS = ("channel", "channels", "band", "bands", "c")


def _images_order(images):
    """``images`` with its row and column dims (found by name) last and a channel dim before
    them, so that the first dim is the sample; unchanged when the names say nothing."""
    def find(names):
        hits = [d for d in images.dims if str(d).lower() in names]
        return hits[0] if len(hits) == 1 else None

    row, col = find(_ROW_DIMS), find(_COL_DIMS)
    if row is None or col is None:
        return images
    rest = [d for d in images.dims if d not in (row, col)]
    chan = find(_CHANNEL_DIMS) if len(rest) == 2 else None
    if chan is not None:
        rest = [d for d in rest if d != chan] + [chan]
    return images.transpose(*rest, row, col)


def _pixels(a):
    """A float32 tensor of raw pixels by the image readers' rule (:func:`oceandl.preprocess.pixels_to_float`:
    unsigned integers to [0, 1]), as for the files a model is trained on; tensors by the same rule."""
    import torch

    if isinstance(a, torch.Tensor):
        if a.dtype == torch.bool:
            return a.float()
        if a.dtype.is_complex:  # as pixels_to_float: the intensity |z|^2, not the real part
            return a.abs().float() ** 2
        if not (a.dtype.is_floating_point or a.dtype.is_signed):  # unsigned integers
            return a.float() / float(torch.iinfo(a.dtype).max)
        return a.float()
    from .preprocess import pixels_to_float

    return torch.from_numpy(np.array(pixels_to_float(np.asarray(a)), dtype=np.float32))  # a writable copy


def _fill_nonfinite(x):
    """Non-finite pixels to their image's finite median, as the image readers do (a NaN pixel made
    the whole image's probabilities NaN: 'unassigned' with no reason given)."""
    import torch

    bad = ~torch.isfinite(x)
    if not bad.any():
        return x
    flat = x.detach().cpu().numpy().reshape(len(x), -1)
    nan = ~np.isfinite(flat)
    for i in np.flatnonzero(nan.all(axis=1))[:1]:
        raise InputError(f"images[{i}] has no finite pixel (all NaN/inf)")
    med = np.nanmedian(np.where(nan, np.nan, flat), axis=1).astype(np.float32)
    filled = np.where(nan, med[:, None], flat).reshape(x.shape)
    return torch.from_numpy(filled).to(x.device)


def _as_images(images):
    """(N, C, H, W) float tensor, sample coordinate, paths, sample dim and the other coords on it.

    A dataset of samples is returned as it is, unread: :func:`_predict_dataset` reads it batch by
    batch."""
    import torch
    import xarray as xr

    if isinstance(images, (str, os.PathLike)):
        # else a bare TypeError (a str) or AttributeError (a path) from the dataset reader
        raise InputError(f"images={str(images)!r} is a path: pass oceandl.datasets.ImageFilesDataset(path, "
                         "size=..., channels=...) (a folder, a file or a list of them), or the arrays")
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, (np.ndarray, torch.Tensor)) for i in images):
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) > 1:
            raise InputError(f"images of different shapes {sorted(shapes)[:2]}: resize them to one size first")
        images = torch.stack([_pixels(i) for i in images])
    if isinstance(images, xr.Dataset):
        # an xarray Dataset has __getitem__ and __len__: it was read as a dataset of samples and
        # failed as a bare KeyError ('No variable named 0'); one variable is that DataArray
        names = list(images.data_vars)
        if len(names) != 1:
            raise InputError(f"images: an xarray.Dataset with variables {names}; pass one DataArray"
                             + (f", e.g. ds[{names[0]!r}]" if names else ""))
        images = images[names[0]]
    if isinstance(images, xr.DataArray):
        if images.ndim not in (3, 4):
            raise InputError(f"DataArray {images.name!r} has dims {images.dims}: expected (sample, y, x)")
        # dims named y/x (lat/lon, row/col) are the image's wherever they are: (y, x, time) was read as
        # 32 images of 32 x 30 along y, a silent wrong answer
        images = _images_order(images)
        dim = images.dims[0]
        # per-image coords (time, lat, lon of each vignette) go to the predictions; they were dropped
        extra = {c: v.variable for c, v in images.coords.items()
                 if c != dim and v.dims == (dim,) and c not in _OUTPUT_NAMES}
        return _fill_nonfinite(_pixels(images.values)), images[dim].values, None, dim, extra
    if isinstance(images, (np.ndarray, torch.Tensor)):
        x = _pixels(images)
        if x.ndim == 2:
            x = x[None]
        return _fill_nonfinite(x), np.arange(len(x)), None, "sample", {}
    if hasattr(images, "__getitem__") and hasattr(images, "__len__"):
        paths = [str(p) for p in getattr(images, "files", [])] or None
        # a netCDF stack's sample coordinate and per-image coords (NetCDFImageDataset.sample_coords)
        dim = getattr(images, "sample_dim", None) or "sample"
        n = len(images)
        coords = {k: v for k, v in (getattr(images, "sample_coords", None) or {}).items() if len(v) == n}
        sample = coords.pop(dim).values if dim in coords else np.arange(n)
        return images, sample, paths, dim, {k: v for k, v in coords.items() if k not in _OUTPUT_NAMES}
    raise InputError(f"cannot classify a {type(images).__name__}: pass an array, DataArray or dataset")


def _predict_dataset(net, dataset, spec: dict | None, batch_size: int | None, device: str, tta: bool,
                     progress: bool) -> np.ndarray:
    """Class probabilities of a dataset's images, read, preprocessed and classified ``batch_size``
    at a time: memory holds a batch, not the folder. Read whole, then preprocessed whole (copies),
    a folder took memory in proportion to its size (3000 128 x 128 GeoTIFFs at batch 16, one
    thread: a peak of 2024 MB above the loaded model, 765 MB batch by batch). The batches are the
    ones :func:`~oceandl.training.predict` made of the whole: the same probabilities (``None``: the
    size :func:`~oceandl.training.inference_batch_size` chooses for the first batch's images)."""
    import torch
    from tqdm.auto import tqdm

    from .preprocess import preprocess_batch
    from .training.engine import inference_batch_size, predict, read_batches
    from .utils import resolve_device

    out, held, n_held = [], [], 0
    bar = tqdm(total=len(dataset), desc="classifying", disable=not progress, leave=False)

    def classify_held(n: int) -> None:
        nonlocal held, n_held
        x = torch.cat(held) if len(held) > 1 else held[0]
        held, n_held = ([x[n:]], len(x) - n) if len(x) > n else ([], 0)
        out.append(predict(net, preprocess_batch(x[:n], spec), batch_size=batch_size, device=device, tta=tta))
        bar.update(n)

    for imgs, _ in read_batches(dataset):
        if batch_size is None:  # the model's input is the preprocessed image (resized, channels)
            first = preprocess_batch(imgs[:1], spec)
            batch_size = inference_batch_size(net, first.shape[1:], resolve_device(device))
        held.append(imgs)
        n_held += len(imgs)
        while n_held >= batch_size:
            classify_held(batch_size)
    if n_held:
        classify_held(n_held)
    bar.close()
    return np.concatenate(out)


def classify(images, model: str | os.PathLike, *, batch_size: int | None = None, device: str = "auto",
             min_confidence: float = 0.0, tta: bool = False, progress: bool = False):
    """Predict classes with the checkpoint folder ``model``.

    Parameters
    ----------
    images : array (N, H, W) / (N, C, H, W), torch tensor, a list of same-shape arrays,
        ``xarray.DataArray`` (sample, y, x) or (sample, channel, y, x), or a dataset of ``{"image"}``
        dicts (e.g. :class:`oceandl.datasets.ImageFilesDataset`, which reads a folder or files),
        read and classified ``batch_size`` images at a time (memory does not grow with it).
    batch_size : images per forward pass. ``None`` (default): on the CPU as many as keep the
        model's largest activation under 8 MB (:func:`oceandl.training.inference_batch_size`: 4
        images of 128 x 128 for the course CNN), at most 256; on a GPU 256. Large CPU batches were
        2-3x slower (fresh memory faulted in at every batch). Predictions do not depend on it
        beyond float rounding (batch norm is in eval mode).
        A DataArray's dims named ``y``/``x`` (``lat``/``lon``, ``row``/``col``) and
        ``channel``/``band`` are found by name; otherwise the first dim is the sample.
        Pixels follow the image readers' rules, so that arrays get the predictions their files
        get: unsigned integers are divided by their type's maximum (uint8 to [0, 1]) and
        non-finite pixels take their image's finite median (an all-NaN image is an error).
    model : str or path
        Checkpoint folder written by ``oceandl train classifier`` (or its ``-o`` path). A model
        in memory goes to :func:`oceandl.training.predict` instead.
    min_confidence : images whose top probability is below it are labelled ``"unassigned"``.
        The network runs in float32, in channels-last layout unless it was trained without it
        (``--no-channels-last``).
    tta : average over flips and 90-degree rotations.

    Returns
    -------
    xarray.Dataset on ``sample`` with ``predicted`` (class name), ``label`` (index, -1 unassigned),
    ``probability`` (top class) and ``probabilities`` (sample, class); ``path`` when known. A
    DataArray's sample dim and its other coordinates along it (e.g. each image's time) are kept, and
    so are a :class:`~oceandl.datasets.NetCDFImageDataset`'s (its ``sample_coords``).

    Raises
    ------
    InputError
        Bad ``images``, ``model`` not a path, ``min_confidence`` or ``batch_size`` out of range, CUDA
        asked for and absent.
    CheckpointError
        ``model`` missing, corrupt, not a classifier, or with another number of class names than
        outputs.
    """
    import torch
    import xarray as xr

    from .preprocess import preprocess_batch
    from .training.checkpoint import load_checkpoint
    from .training.engine import inference_batch_size, predict
    from .utils import resolve_device

    if not isinstance(model, (str, os.PathLike)):  # a module or None failed as a bare TypeError in Path()
        raise InputError(f"model: expected a checkpoint folder (str or path), got {type(model).__name__}; "
                         "for a model in memory use oceandl.training.predict(model, images)")
    if (isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float, np.number))
            or not 0 <= min_confidence <= 1):
        raise InputError(f"min_confidence={min_confidence!r}: must be a number within [0, 1]")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        # else predict's range(0, n, 0) raised a bare ValueError
        raise InputError(f"batch_size={batch_size!r}: must be a positive integer or None")
    net, cfg = load_checkpoint(model, device=resolve_device(device), expect_task="classification")
    if (cfg.get("training") or {}).get("channels_last", True):
        # the layout it was trained in (weights are saved contiguous): fp32 inference on the CPU
        # 1.9x faster for the course CNN at 128 x 128, 1.1x ResNet, 1.6x VGG; the same to float rounding
        net = net.to(memory_format=torch.channels_last)
    x, sample, paths, dim, extra = _as_images(images)
    if len(x) == 0:
        raise InputError("no images to classify")
    if isinstance(x, torch.Tensor):
        x = preprocess_batch(x, cfg.get("preprocessing"))
        if batch_size is None:
            batch_size = inference_batch_size(net, x.shape[1:], resolve_device(device))
        probs = predict(net, x, batch_size=batch_size, device=device, tta=tta, progress=progress)
    else:
        probs = _predict_dataset(net, x, cfg.get("preprocessing"), batch_size, device, tta, progress)
    classes = list(cfg.get("classes") or range(probs.shape[1]))
    if len(classes) != probs.shape[1]:  # else a bare IndexError, or names shifted onto the wrong outputs
        from .errors import CheckpointError

        raise CheckpointError(f"{model}: config.json names {len(classes)} classes but the model has "
                              f"{probs.shape[1]} outputs")
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
    # a netCDF of predictions read without this code: what each variable is, and what -1 means
    ds["predicted"].attrs = {"long_name": "predicted class name",
                             "comment": f"'{UNASSIGNED}' where the top probability is below min_confidence"}
    ds["label"].attrs = {"long_name": "predicted class index into the class coordinate",
                         "flag_values": np.int64(-1), "flag_meanings": UNASSIGNED}
    ds["probability"].attrs = {"long_name": "probability of the most probable class", "units": "1"}
    ds["probabilities"].attrs = {"long_name": "probability of each class", "units": "1"}
    if "path" in ds:
        ds["path"].attrs = {"long_name": "image file"}
    from . import __version__

    ds.attrs["oceandl_version"] = __version__
    return ds
