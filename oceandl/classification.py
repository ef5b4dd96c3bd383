"""Classify images with a trained checkpoint: arrays, tensors, DataArrays or datasets in, labelled
``xarray.Dataset`` out."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError, warn

__all__ = ["classify", "open_images", "true_classes", "UNASSIGNED"]

UNASSIGNED = "unassigned"
#: names of the variables and coords of :func:`classify`'s Dataset (input coords of these names are not kept).
_OUTPUT_NAMES = ("predicted", "label", "probability", "probabilities", "error", "class", "path", "true_class")


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
    the whole image's probabilities NaN: 'unassigned' with no reason given); ``(x, bad)`` with
    ``bad`` the indices of the images without a finite pixel, which are zeroed (they have nothing
    to classify: :func:`classify` gives them no prediction)."""
    import torch

    bad = ~torch.isfinite(x)
    if not bad.any():
        return x, np.zeros(0, dtype=np.int64)
    flat = x.detach().cpu().numpy().reshape(len(x), -1)
    nan = ~np.isfinite(flat)
    empty = np.flatnonzero(nan.all(axis=1))
    med = np.zeros(len(flat), np.float32)
    some = np.flatnonzero(nan.any(axis=1) & ~nan.all(axis=1))
    med[some] = np.nanmedian(np.where(nan[some], np.nan, flat[some]), axis=1)
    filled = np.where(nan, med[:, None], flat).astype(np.float32).reshape(x.shape)
    return torch.from_numpy(filled).to(x.device), empty


def _bands_last(shape: tuple[int, ...], size) -> bool:
    """Whether an array of ``shape`` looks like images with their bands last, (N, H, W, C) or
    (H, W, C): a last dim of 4 or less below a longer one. Not when the last two dims are the
    image size ``size`` the checkpoint was trained on (its narrow images, 16 x 4 px), nor, 4-D,
    when the dim before them is 4 or less: (N, 1, 16, 4) is one band of 16 x 4 px, not images
    1 px high."""
    if len(shape) not in (3, 4) or not shape[-1] <= 4 < shape[-2]:
        return False
    if size is not None:
        size = [size, size] if isinstance(size, int) else list(size)
        if list(shape[-2:]) == size:
            return False
    return len(shape) == 3 or shape[1] > 4


def _as_images(images, size=None):
    """(N, C, H, W) float tensor, sample coordinate, paths, sample dim, the other coords on it and
    the indices of the images without a finite pixel (zeroed). ``size``: the checkpoint's image
    size (its ``preprocessing``), which tells a stack of narrow images from bands last.

    A dataset of samples is returned as it is, unread (and no index): :func:`_predict_dataset`
    reads it batch by batch."""
    import torch
    import xarray as xr

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
        x, empty = _fill_nonfinite(_pixels(images.values))
        return x, images[dim].values, None, dim, extra, empty
    if isinstance(images, (np.ndarray, torch.Tensor)):
        shape = tuple(images.shape)
        if _bands_last(shape, size):
            # channels last (np.asarray of PIL images, TensorFlow's layout): (N, 28, 28, 1) was read
            # as 28 bands of 28 x 1 px, converted and stretched to the model's size, no error
            layout, how = (("(N, H, W, C)", "np.moveaxis(images, -1, 1)") if len(shape) == 4
                           else ("(H, W, C)", "np.moveaxis(image, -1, 0)[None]"))
            raise InputError(f"images of shape {shape}: looks like {layout}, bands last; pass (N, H, W) or "
                             f"(N, C, H, W), e.g. {how}")
        x = _pixels(images)
        if x.ndim == 2:
            x = x[None]
        x, empty = _fill_nonfinite(x)
        return x, np.arange(len(x)), None, "sample", {}, empty
    if hasattr(images, "__getitem__") and hasattr(images, "__len__"):
        paths = [str(p) for p in getattr(images, "files", [])] or None
        # a netCDF stack's sample coordinate and per-image coords (NetCDFImageDataset.sample_coords)
        dim = getattr(images, "sample_dim", None) or "sample"
        n = len(images)
        coords = {k: v for k, v in (getattr(images, "sample_coords", None) or {}).items() if len(v) == n}
        sample = coords.pop(dim).values if dim in coords else np.arange(n)
        return images, sample, paths, dim, {k: v for k, v in coords.items() if k not in _OUTPUT_NAMES}, None
    raise InputError(f"cannot classify a {type(images).__name__}: pass an array, DataArray or dataset")


def _is_paths(images) -> bool:
    """Whether ``images`` names files: a path, or a non-empty list of them."""
    if isinstance(images, (str, os.PathLike)):
        return True
    return (isinstance(images, (list, tuple)) and len(images) > 0
            and all(isinstance(i, (str, os.PathLike)) for i in images))


def _as_listed(images):
    """``images`` with paths held as pandas and NumPy hold them, or as a generator yields them, as a
    list: ``df["file"]`` was read as a dataset of samples (a bare TypeError), ``df["file"].values`` as
    pixels ("could not convert string to float"), ``Path(d).glob("*.png")`` was "cannot classify a
    generator", an earlier predictions' ``ds["path"]`` "expected (sample, y, x)". Anything else is
    returned as it is (a generator as the list of what it yields)."""
    import sys
    from collections.abc import Iterator

    if isinstance(images, Iterator):  # Path.glob, map, a generator: read once, here
        return list(images)
    xr = sys.modules.get("xarray")  # a predictions file's `path` (1-D text): the files it names
    if xr is not None and isinstance(images, xr.DataArray) and images.ndim == 1 and images.dtype.kind in "UO":
        images = images.values
    if isinstance(images, np.ndarray) and images.ndim == 1 and images.size and (
            images.dtype.kind == "U" or (images.dtype == object
                                         and all(isinstance(i, (str, os.PathLike)) for i in images))):
        return images.tolist()
    pd = sys.modules.get("pandas")  # a Series or Index of paths: only if pandas is in use
    if pd is not None and isinstance(images, (pd.Series, pd.Index)) and len(images) and all(
            isinstance(i, (str, os.PathLike)) for i in images):
        return list(images)
    return images


def open_images(images, model: str | os.PathLike, *, var: str | None = None, on_error: str = "skip"):
    """Open image files as checkpoint ``model`` takes them, as ``oceandl classify`` does.

    Parameters
    ----------
    images : path or paths
        A folder (searched recursively), image files, quoted glob patterns
        (``"GeoTIFF/*/*.tiff"``; see :func:`~oceandl.datasets.list_images`), or one netCDF stack
        (``.nc``/``.nc4``); several in a list or tuple, a pandas Series or Index (``df["file"]``),
        a 1-D NumPy array or DataArray of them (an earlier predictions' ``path``), or a generator
        (``Path(d).glob("*.png")``).
    model : str or path
        Classifier checkpoint folder: the images are read at its size and band count, fitted to
        its size as it was trained (``fit``: stretch, crop or pad).
    var : str, optional
        The image variable of a netCDF stack (default ``"image"``); refused for image files.
    on_error : "skip" or "raise"
        An unreadable file: kept, for :func:`classify` to give it a row with the reason
        (``"skip"``, without the readers' own warning: classify gives one), or an InputError.

    Returns
    -------
    ImageFilesDataset or NetCDFImageDataset
        An ImageFilesDataset also has ``true_classes``: path -> class of the model, for the
        images in folders named as its classes (:func:`true_classes`), which :func:`classify`
        writes as ``true_class``. A NetCDFImageDataset has the stack's ``label`` variable, when
        it has one (``targets``, ``classes``; unlabelled, with a warning, when it cannot be read),
        which :func:`classify` writes as ``true_class`` too.

    Raises
    ------
    InputError
        A path that does not exist, no image found, ``var`` with image files.
    CheckpointError
        ``model`` missing, corrupt or not a classifier (before any image is read).
    """
    import warnings

    from oceandl.datasets.images import ImageFilesDataset

    from .errors import CheckpointError
    from .io import is_pattern
    from .training.checkpoint import read_config

    images = _as_listed(images)
    if not _is_paths(images):
        raise InputError(f"images: expected a path or a list of paths, got {type(images).__name__}")
    config = read_config(model)  # a wrong model fails before any image is read
    if config.get("task") != "classification":
        raise CheckpointError(f"{model}: a checkpoint of task {config.get('task')!r}, not a classifier "
                              "(train one with `oceandl train classifier`)")
    spec = config.get("preprocessing") or {}
    paths = [Path(images)] if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
    for p in paths:
        if not p.exists() and not is_pattern(p):  # a quoted pattern: ImageFilesDataset expands it
            raise InputError(f"{p}: no such file or folder")
    if len(paths) == 1 and paths[0].suffix.lower() in (".nc", ".nc4"):
        return _open_stack(paths[0], var or "image")
    if var is not None:  # it would be ignored: image files have no variables
        raise InputError(f"var={var!r}: names the image variable of a netCDF stack; these images are files")
    channels = spec.get("channels") if spec.get("channels") in (1, 3) else None  # else preprocessing converts
    # fit: a model trained on padded or cropped images (the readers' fit=) gets its images so
    with warnings.catch_warnings():
        # the unreadable files get their rows and one warning from classify, not a 'skipped' one too
        warnings.filterwarnings("ignore", message=r".*: skipped \d+ unreadable image")
        data = ImageFilesDataset(paths, size=spec.get("size"), channels=channels,
                                 fit=spec.get("fit") or "stretch", on_error=on_error)
    data.true_classes = true_classes(paths, data.inputs, config.get("classes") or [])
    return data


def _open_stack(path: Path, var: str):
    """A netCDF stack with its ``label`` variable read (``classes``/``targets``, which
    :func:`classify` writes as ``true_class``); unlabelled when it has none, and with a warning when
    its labels cannot be read (negative, non-integer): the images can still be classified."""
    from oceandl.datasets.images import NetCDFImageDataset

    try:
        return NetCDFImageDataset(path, var=var, label_var="label")
    except InputError as exc:
        msg = str(exc)
        # only a label problem falls back to no labels; the rest (no image variable, ...) stands
        if not msg.startswith((f"{path}: label 'label'", f"{path}: no label variable")):
            raise
        if not msg.startswith(f"{path}: no label variable"):
            warn(f"{msg}: classified without true_class (fix or drop the label variable)")
    return NetCDFImageDataset(path, var=var, label_var=None)


def _dataset_true_classes(data, model_classes, model) -> np.ndarray | None:
    """The true class of each sample of a labelled dataset without files (a netCDF stack's
    ``label``: its ``targets`` and ``classes``), as a class of the model, or ``None``.

    The stack's class names (its label's ``classes``/``flag_meanings``, its ``classes`` attribute)
    are matched to the model's by name. A stack that names none (``"0"``..) has its labels read as
    positions in the model's classes. Labels naming classes that the model lacks get an empty
    ``true_class`` (not scored), with a warning; none of them a model's class, or integers beyond
    the model's classes: no ``true_class``, with a warning."""
    targets, names = getattr(data, "targets", None), getattr(data, "classes", None)
    if targets is None or not names:
        return None
    targets = np.asarray(targets, dtype=np.int64)
    labelled = targets >= 0
    if not labelled.any():
        return None
    model_classes = [str(c) for c in model_classes]
    names = [str(c) for c in names]
    where = getattr(data, "source", "images")
    if names == [str(i) for i in range(len(names))] and not set(names) <= set(model_classes):
        # integer labels without names: the positions in the model's classes (as training numbers them)
        if targets.max() >= len(model_classes):
            warn(f"{where}: label value {int(targets.max())} but model {model} has {len(model_classes)} classes "
                 f"({', '.join(model_classes[:10])}): no true_class; name the stack's classes in the label's "
                 "'classes' attribute")
            return None
        names = model_classes
    out = np.array([names[t] if t >= 0 else "" for t in targets], dtype=object)
    given = sorted(set(out[labelled].tolist()))
    unknown = [c for c in given if c not in model_classes]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        known = ", ".join(model_classes[:10]) + (", ..." if len(model_classes) > 10 else "")
        if len(unknown) == len(given):
            warn(f"{where}: its labels name class(es) {shown}, none of model {model}'s ({known}): no true_class "
                 "and no accuracy (is it the model for these images?)")
            return None
        n = int(np.isin(out, unknown).sum())
        warn(f"{where}: {n} image(s) labelled {shown}, not a class of model {model} ({known}): their "
             "true_class is empty (not scored)")
        out[np.isin(out, unknown)] = ""
    return out.astype(str)


def _class_names(classes) -> tuple[dict[str, str], dict[str, str]]:
    """The model's class names (name -> name), and letter -> name of those that are TenGeoP-SARwv
    classes (``Pure Ocean Waves``), whose folders the TenGeoP reader also takes by other names."""
    from oceandl.datasets.images import TENGEOP_CLASSES

    names = {str(c): str(c) for c in classes}
    return names, {k: v for k, v in TENGEOP_CLASSES.items() if v in names}


def _folder_class(parts: tuple[str, ...], names: dict[str, str], tengeop: dict[str, str], given: bool = True) -> str:
    """The model's class that the folders ``parts`` (top down, from the folder given to classify)
    above an image name, or ``""``: a class path of several folders (``--class-folders leaf``:
    ``Protista/Diatoms/Chaetoceros``, year and date folders left out, as the reader names it)
    ending at the image's folder, the longest first; else the topmost folder below the one given
    named as a class, as ``--class-folders top`` reads ``<class>/<any sub-folders>/`` of the tree
    given; else the folder given itself (``given``: ``parts[0]`` is its name), a class folder given
    alone. A folder named otherwise is no label."""
    from oceandl.datasets.images import _DATE_FOLDER, tengeop_letter

    named = [p for p in parts if not _DATE_FOLDER.fullmatch(p)] or list(parts)
    for i in range(len(named) - 1):
        hit = names.get("/".join(named[i:]))
        if hit:
            return hit
    # the folder given last: `classify survey/front/` of front/{calm,eddy}/ labelled every image 'front',
    # where training on that folder reads calm and eddy
    order = [*parts[1:], parts[0]] if given and parts else list(parts)
    for p in order:
        if p in names:
            return names[p]
        letter = tengeop_letter(p) if tengeop else None
        if letter in tengeop:
            return tengeop[letter]
    return ""


def true_classes(inputs, files, classes) -> dict[str, str]:
    """The true class of each image file, read from its folders: path -> one of ``classes`` (the
    model's), for the files whose folder names one.

    Parameters
    ----------
    inputs : path or list of paths
        What was given to classify: folders, files, quoted patterns. Only the folders from the one
        given down to the image count, read as training reads that folder (``--class-folders top``:
        the topmost class-named folder below it); the folder's own name when none below it names a
        class (``classify tree/F/``). The folders above it name no class.
    files : list of paths
        The image files found in ``inputs`` (:func:`~oceandl.datasets.list_images`).
    classes : list of str
        The checkpoint's class names. A folder named otherwise (a class the model was not trained
        on, ``2014``, ``images``) gives no label. The TenGeoP-SARwv classes also match their
        letter folders (``F``..``O``) and the other names the TenGeoP reader takes.

    Returns
    -------
    dict
        ``str(path)`` -> class name, for the labelled files only.
    """
    from oceandl.io import is_pattern

    names, tengeop = _class_names(classes)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    scopes = []  # the folder each input is read from: its name and those below it count
    for p in map(Path, inputs):
        if not p.exists() and is_pattern(p):  # a quoted pattern: the folder before its first wildcard
            base = []
            for q in p.parts:
                if is_pattern(q):
                    break
                base.append(q)
            scopes.append(Path(*base) if base else Path("."))
        else:
            scopes.append(p if p.is_dir() else p.parent)
    tops = [Path(os.path.abspath(scope)).name for scope in scopes]
    out, seen = {}, {}
    for f in files:
        f = str(f) if isinstance(f, Path) else str(Path(f))  # as classify names its rows' files
        folder = os.path.dirname(f)
        if folder not in seen:  # a folder's images share their label: found once (37,553 TenGeoP files)
            seen[folder] = ""
            for scope, top in zip(scopes, tops):
                try:
                    rel = Path(folder).relative_to(scope)
                except ValueError:
                    continue
                seen[folder] = _folder_class(((top,) if top else ()) + rel.parts, names, tengeop, given=bool(top))
                break
        if seen[folder]:
            out[f] = seen[folder]
    return out


class _Unread:
    """``dataset[i]`` with an image that cannot be read (InputError) as a NaN image of ``shape``, so
    that one truncated file does not end the classification of a folder; picklable, for the
    reading worker processes. The main process tells such images by their NaN and asks the reason."""

    def __init__(self, dataset, shape: tuple[int, ...]):
        self.dataset, self.shape = dataset, shape

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        import torch

        try:
            return self.dataset[index]
        except InputError:
            return {"image": torch.full(self.shape, float("nan")), "label": -1}


def _sample_name(dim: str, value) -> str:
    """How a message names an image without a file: as the predictions' rows do, by its value of the
    sample coordinate (``obs='c'``, ``time=2020-01-03``, ``sample=2``), not its index into the input."""
    if isinstance(value, np.datetime64):  # .item() of nanoseconds is an int
        return f"{dim}={np.datetime_as_string(value, unit='auto')}"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return f"{dim}={value!r}" if isinstance(value, str) else f"{dim}={value}"


def _unreadable_reason(dataset, index: int, paths: list[str] | None) -> str:
    """Why sample ``index`` has no prediction: its read error (less the path, which is in the
    ``path`` column), or no finite pixel."""
    source = None if paths else getattr(dataset, "source", None)
    try:
        dataset[index]
    except InputError as exc:
        msg = str(exc)
        where = paths[index] if paths else source
        msg = msg[len(where) + 2:] if where and msg.startswith(f"{where}: ") else msg
        if source is None:
            return msg
        # a stack's image: 'image[2] has no finite pixel' named an index into nothing shown; now
        # the file (as the path column names a file's) and the image's index along its sample dim
        var = getattr(dataset, "var", None)
        for lead in (f"{var}[{index}] has ", f"{var}[{index}] ", f"{var}[{index}]: "):
            if var and msg.startswith(lead):
                msg = msg[len(lead):]
                break
    else:
        msg = "no finite pixel (all NaN/inf)"
    if source is None:
        return msg
    name = Path(source).name if source != "dataset" else (getattr(dataset, "var", None) or "images")
    return f"{name}[{index}]: {msg}"


def _check_bands(x, config: dict, model) -> None:
    """Refuse images ``x`` (N, C, H, W) or (N, H, W) whose band count after the checkpoint's
    preprocessing is not the one it was trained on.

    The count trained on is the first of ``config["model_args"]`` (``in_channels``). A 1-band
    model given RGB images failed in the first convolution with torch's RuntimeError ("expected
    input[1, 3, 16, 16] to have 1 channels"): exit 1, naming neither the images nor the checkpoint.
    """
    spec = config.get("preprocessing") or {}
    # from the spec, not by preprocessing: a batch is preprocessed once, when it is classified
    bands = spec.get("channels") or (x.shape[1] if x.ndim == 4 else 1)
    args = config.get("model_args") or []
    trained = args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None
    if trained is not None and bands != trained:
        # --channels 1 or 3 converts any image; a model without it takes the bands as they are
        how = ("" if spec.get("channels") else f" (give {trained}-band images"
               + (f", or train with --channels {trained}, which converts any image)" if trained in (1, 3) else ")"))
        raise InputError(f"the images have {bands} band(s), but checkpoint {model} was trained on {trained}-band "
                         f"images{how}")


def _predict_dataset(net, dataset, spec: dict | None, batch_size: int | None, device: str, tta: bool,
                     progress: bool, on_error: str = "skip", check=None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of a dataset's images, read, preprocessed and classified ``batch_size``
    at a time: memory holds a batch, not the folder. Read whole, then preprocessed whole (copies),
    a folder took memory in proportion to its size (3000 128 x 128 GeoTIFFs at batch 16, one
    thread: a peak of 2024 MB above the loaded model, 765 MB batch by batch). The batches are the
    ones :func:`~oceandl.training.predict` made of the whole: the same probabilities (``None``: the
    size :func:`~oceandl.training.inference_batch_size` chooses for the first batch's images).

    Returns the probabilities and the indices of the images that could not be read or have no
    finite pixel (``on_error="skip"``; their rows are meaningless); ``"raise"``: the first such
    image's InputError. ``check`` is called with the first batch read (as read, not preprocessed)
    before any image is classified."""
    import torch
    from tqdm.auto import tqdm

    from .preprocess import preprocess_batch
    from .training.engine import inference_batch_size, predict, read_batches
    from .utils import resolve_device

    if on_error == "skip":
        # a file that passes the header check and fails to decode (a JPEG truncated in its pixel
        # data, a float TIFF of NaN only) ended the whole run with no output: it gets no prediction
        shape = None
        for i in range(len(dataset)):
            try:
                shape = tuple(np.shape(dataset[i]["image"]))
                break
            except InputError:
                continue
        if shape is None:
            paths = [str(p) for p in getattr(dataset, "files", [])] or None
            shown = "; ".join(f"{paths[i] if paths else f'images[{i}]'} ({_unreadable_reason(dataset, i, paths)})"
                              for i in range(min(3, len(dataset))))
            raise InputError(f"no readable images: {len(dataset)} unreadable: {shown}"
                             f"{'; ...' if len(dataset) > 3 else ''}")
        dataset = _Unread(dataset, shape)
    out, held, n_held, empty, seen = [], [], 0, [], 0
    bar = tqdm(total=len(dataset), desc="classifying", disable=not progress, leave=False)

    def classify_held(n: int) -> None:
        nonlocal held, n_held
        x = torch.cat(held) if len(held) > 1 else held[0]
        held, n_held = ([x[n:]], len(x) - n) if len(x) > n else ([], 0)
        out.append(predict(net, preprocess_batch(x[:n], spec), batch_size=batch_size, device=device, tta=tta))
        bar.update(n)

    for imgs, _ in read_batches(dataset):
        imgs, bad = _fill_nonfinite(imgs)
        if len(bad) and on_error == "raise":
            raise InputError(f"images[{seen + bad[0]}] has no finite pixel (all NaN/inf)")
        empty += (bad + seen).tolist()
        seen += len(imgs)
        if check is not None:
            check(imgs)
            check = None
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
    return np.concatenate(out), np.asarray(empty, dtype=np.int64)


def classify(images, model: str | os.PathLike, *, batch_size: int | None = None, device: str = "auto",
             min_confidence: float = 0.0, tta: bool = False, progress: bool = False, on_error: str = "skip",
             var: str | None = None):
    """Predict classes with the checkpoint folder ``model``.

    Parameters
    ----------
    images : path(s), array (N, H, W) / (N, C, H, W), torch tensor, a list of same-shape arrays, DataArray or dataset
        A folder, image files, quoted patterns or a netCDF stack (a path, or several in a list,
        pandas Series, NumPy array of text or generator, as :func:`open_images` takes them) are
        read as ``oceandl classify`` reads them (:func:`open_images`: the checkpoint's size, bands
        and fit), with the same predictions; images in folders named as the model's classes
        get their ``true_class`` (:func:`true_classes`).
        An array whose last dim is 4 or less below a longer one (bands last, ``(N, H, W, C)``) is
        refused, unless its last two dims are the checkpoint's image size or (4-D) its second
        is 4 or less: pass it with its bands second.
        ``xarray.DataArray`` (sample, y, x) or (sample, channel, y, x), or a dataset of ``{"image"}``
        dicts (e.g. :class:`oceandl.datasets.ImageFilesDataset`, which reads a folder or files),
        read and classified ``batch_size`` images at a time (memory does not grow with it).
        A DataArray's dims named ``y``/``x`` (``lat``/``lon``, ``row``/``col``) and
        ``channel``/``band`` are found by name; otherwise the first dim is the sample.
        Pixels follow the image readers' rules, so that arrays get the predictions their files
        get: unsigned integers are divided by their type's maximum (uint8 to [0, 1]) and
        non-finite pixels take their image's finite median (an all-NaN image is unreadable, below).
    model : str or path
        Checkpoint folder written by ``oceandl train classifier`` (or its ``-o`` path). A model
        in memory goes to :func:`oceandl.training.predict` instead. The checkpoint an interrupted
        run keeps for ``--resume`` is used with a warning (its training stopped before the end).
        The network runs in float32, in channels-last layout unless it was trained without it
        (``--no-channels-last``).
    batch_size : int, optional
        Images per forward pass. ``None`` (default): on the CPU as many as keep the
        model's largest activation under 8 MB (:func:`oceandl.training.inference_batch_size`: 4
        images of 128 x 128 for the course CNN), at most 256; on a GPU 256. Large CPU batches were
        2-3x slower (fresh memory faulted in at every batch). Predictions do not depend on it
        beyond float rounding (batch norm is in eval mode).
    device : "auto", "cpu" or "cuda"
        Where to run the network.
    min_confidence : float
        Images whose top probability is below it are labelled ``"unassigned"`` (``label`` -1).
    tta : bool
        Average the probabilities over the 8 flips and 90-degree rotations (non-square images:
        the 4 flips and 180-degree rotations).
    progress : bool
        Show a progress bar.
    on_error : "skip" or "raise"
        ``"skip"`` (default): every input image has its row, so that predictions match
        back to the files; an image that cannot be read (a corrupt or truncated file, one the
        dataset left out as unreadable, listed in its ``skipped``) or has no finite pixel gets an
        empty ``predicted``, ``label`` -2, NaN probabilities and the reason in ``error``, with one
        warning giving their count. ``"raise"``: the first such image is an InputError. With no
        image readable at all, InputError either way.
    var : str, optional
        The image variable of a netCDF stack given by its path (default ``"image"``, as ``--var``).

    Returns
    -------
    xarray.Dataset on ``sample`` with ``predicted`` (class name), ``label`` (index, -1 unassigned,
    -2 unreadable), ``probability`` (top class), ``probabilities`` (sample, class) and ``error``
    (why an image has no prediction; empty for the others; a stack's image named
    ``stack.nc[i]: reason``); ``path`` when known; ``true_class``
    when some images lie in folders named as the model's classes (empty for the others), or from
    a labelled stack's labels, or a dataset without files that has ``targets`` and ``classes``
    (a :class:`~oceandl.datasets.NetCDFImageDataset`) (by class name; integer
    labels without names are positions in the model's classes; labels not of the model's classes
    are warned of and left empty);
    ``latitude``, ``longitude`` and ``time`` (text, as in the table) of TenGeoP-SARwv vignettes with
    a metadata table beside them. A DataArray's
    sample dim and its other coordinates along it (e.g. each image's time) are kept, and so are a
    :class:`~oceandl.datasets.NetCDFImageDataset`'s (its ``sample_coords``).

    Raises
    ------
    InputError
        Bad ``images``, ``model`` not a path, ``min_confidence`` or ``batch_size`` out of range, CUDA
        asked for and absent; no readable image (or, with ``on_error="raise"``, one unreadable).
    CheckpointError
        ``model`` missing, corrupt, not a classifier, or with another number of class names than
        outputs.
    """
    import torch
    import xarray as xr

    from .preprocess import preprocess_batch
    from .training.checkpoint import load_checkpoint, weights_sha256
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
    if on_error not in ("skip", "raise"):
        raise InputError(f"on_error={on_error!r}: use 'skip' or 'raise'")
    images = _as_listed(images)
    if _is_paths(images):  # read as `oceandl classify` reads them (a wrong model fails first)
        images = open_images(images, model, var=var, on_error=on_error)
    elif var is not None:
        raise InputError(f"var={var!r}: names the image variable of a netCDF stack given by its path; for a "
                         "Dataset use ds.oceandl.classify(model, var=...)")
    net, cfg = load_checkpoint(model, device=resolve_device(device), expect_task="classification")
    if cfg.get("finished") is False:
        # the checkpoint an interrupted run keeps for --resume was used without a word, as if trained
        warn(f"{model}: its training stopped at epoch {cfg.get('epochs_done')} of "
             f"{(cfg.get('training') or {}).get('epochs')} (interrupted) and was not tested: these are the "
             "best weights so far; finish it with `oceandl train classifier` and the same options plus --resume")
    if (cfg.get("training") or {}).get("channels_last", True):
        # the layout it was trained in (weights are saved contiguous): fp32 inference on the CPU
        # 1.9x faster for the course CNN at 128 x 128, 1.1x ResNet, 1.6x VGG; the same to float rounding
        net = net.to(memory_format=torch.channels_last)
    x, sample, paths, dim, extra, empty = _as_images(images, (cfg.get("preprocessing") or {}).get("size"))
    if len(x) == 0:
        raise InputError("no images to classify")
    if dim in _OUTPUT_NAMES:  # else a bare ValueError from xarray, building the predictions
        raise InputError(f"images: their sample dim is named {dim!r}, a name of the predictions' variables; "
                         f"rename it, e.g. .rename({{{dim!r}: 'sample'}})")
    errors: dict[int, str] = {}
    truth = getattr(x, "true_classes", None)  # path -> class, of images opened from class folders
    # a labelled stack's own labels (its `label` variable): it has no folders to name them
    stack_truth = (_dataset_true_classes(x, cfg.get("classes") or [], model)
                   if truth is None and paths is None and not isinstance(x, torch.Tensor) else None)
    if isinstance(x, torch.Tensor):
        if len(empty) and (on_error == "raise" or len(empty) == len(x)):
            raise InputError(f"images[{empty[0]}] has no finite pixel (all NaN/inf)"
                             + (f" (as have all {len(x)})" if len(empty) == len(x) > 1 else ""))
        errors = {int(i): "no finite pixel (all NaN/inf)" for i in empty}
        x = preprocess_batch(x, cfg.get("preprocessing"))
        _check_bands(x, cfg, model)
        if batch_size is None:
            batch_size = inference_batch_size(net, x.shape[1:], resolve_device(device))
        probs = predict(net, x, batch_size=batch_size, device=device, tta=tta, progress=progress)
    else:
        skipped = list(getattr(x, "skipped", None) or [])
        if skipped and on_error == "raise":  # the dataset left them out (its on_error="skip")
            reasons = getattr(x, "skip_reasons", {})
            raise InputError(f"{skipped[0]}: unreadable image ({reasons.get(str(skipped[0]), 'skipped')})")
        probs, empty = _predict_dataset(net, x, cfg.get("preprocessing"), batch_size, device, tta, progress,
                                        on_error, check=lambda imgs: _check_bands(imgs, cfg, model))
        errors = {int(i): _unreadable_reason(x, int(i), paths) for i in empty}
        if len(errors) == len(probs):
            shown = "; ".join(f"{paths[i] if paths else _sample_name(dim, sample[i])} ({r})"
                              for i, r in list(errors.items())[:3])
            raise InputError(f"no readable images: {len(errors)} unreadable: {shown}"
                             f"{'; ...' if len(errors) > 3 else ''}")
        if skipped and len(getattr(x, "inputs", ())) == len(probs) + len(skipped):
            # the files the dataset left out get their rows, in the order given
            probs, errors, paths = _with_skipped(x, probs, errors)
            sample = np.arange(len(probs))
    classes = list(cfg.get("classes") or range(probs.shape[1]))
    if len(classes) != probs.shape[1]:  # else a bare IndexError, or names shifted onto the wrong outputs
        from .errors import CheckpointError

        raise CheckpointError(f"{model}: config.json names {len(classes)} classes but the model has "
                              f"{probs.shape[1]} outputs")
    failed = np.zeros(len(probs), bool)
    failed[list(errors)] = True
    probs[failed] = np.nan
    top = np.where(failed, 0, np.nan_to_num(probs).argmax(1))
    conf = probs.max(1)
    keep = conf >= min_confidence
    names = np.array(["" if f else str(classes[i]) if k else UNASSIGNED for i, k, f in zip(top, keep, failed)],
                     dtype=object)
    error = np.array([errors.get(i, "") for i in range(len(probs))], dtype=object)
    ds = xr.Dataset(
        {"predicted": (dim, names.astype(str)), "label": (dim, np.where(failed, -2, np.where(keep, top, -1))),
         "probability": (dim, conf.astype(np.float32)),
         "probabilities": ((dim, "class"), probs.astype(np.float32)), "error": (dim, error.astype(str))},
        coords={dim: sample, **extra, "class": [str(c) for c in classes]},
        # which weights made the predictions: the path alone named a folder that a later run may replace;
        # absolute, as the CSV's JSON and --init's record name it ('model: m' said nothing once moved)
        attrs={"model": str(Path(model).resolve()), "model_sha256": weights_sha256(model), "architecture": cfg["model"],
               **({"model_git_commit": str(cfg["provenance"]["git_commit"])}
                  if isinstance(cfg.get("provenance"), dict) and cfg["provenance"].get("git_commit") else {}),
               "min_confidence": min_confidence, "tta": int(tta)},
    )
    if stack_truth is not None and len(stack_truth) == len(probs) and (stack_truth != "").any():
        ds["true_class"] = (dim, stack_truth, {"long_name": "true class, from the stack's label variable",
                                               "comment": "empty where the label is not a class of the model"})
    if paths is not None and len(paths) == len(sample):
        ds["path"] = (dim, np.array(paths, dtype=str))
        known = np.array([truth.get(str(p), "") for p in paths], dtype=str) if truth else None
        if known is not None and (known != "").any():
            ds["true_class"] = (dim, known, {"long_name": "true class, named by the image's folder",
                                             "comment": "empty where no folder names a class of the model"})
    # a netCDF of predictions read without this code: what each variable is, and what -1 means
    ds["predicted"].attrs = {"long_name": "predicted class name",
                             "comment": f"'{UNASSIGNED}' where the top probability is below min_confidence; "
                                        "empty where the image could not be read (see error)"}
    ds["label"].attrs = {"long_name": "predicted class index into the class coordinate",
                         "flag_values": np.array([-2, -1], np.int64), "flag_meanings": f"unreadable {UNASSIGNED}"}
    ds["error"].attrs = {"long_name": "why the image has no prediction (empty: classified)"}
    ds["probability"].attrs = {"long_name": "probability of the most probable class", "units": "1"}
    ds["probabilities"].attrs = {"long_name": "probability of each class", "units": "1"}
    if "path" in ds:
        ds["path"].attrs = {"long_name": "image file"}
        # of every row's file, the unreadable ones included
        meta = _image_metadata(ds["path"].values)
        for key, units in (("latitude", "degrees_north"), ("longitude", "degrees_east")) if meta else ():
            vals = [np.nan if m.get(key) is None else m[key] for m in meta]
            ds[key] = (dim, np.array(vals, dtype=np.float64), {"standard_name": key, "units": units})
        if meta:
            ds["time"] = (dim, np.array([m.get("time") or "" for m in meta], dtype=str))
    from . import __version__
    from .models.transfer import BACKBONES
    from .utils import software_versions

    ds.attrs["oceandl_version"] = __version__
    # the libraries whose code computed the probabilities (torchvision builds the transfer backbones)
    ds.attrs["oceandl_software"] = software_versions("torch", *(("torchvision",) if cfg["model"] in BACKBONES else ()))
    if errors:
        from oceandl.datasets.images import _display_names

        named = _display_names([paths[i] for i in errors]) if paths else {}
        # a stack's image by its row's name (obs='c'), not images[2]: its index, which no output shows
        shown = ", ".join(f"{named[Path(paths[i])] if paths else _sample_name(dim, sample[i])} ({r})"
                          for i, r in list(errors.items())[:5])
        warn(f"{len(errors)} of {len(probs)} image(s) unreadable, given an empty prediction and the "
                      f"reason in 'error': {shown}{', ...' if len(errors) > 5 else ''}")
    return ds


def _image_metadata(files) -> list[dict] | None:
    """Latitude, longitude and time of each file from a TenGeoP-SARwv metadata table beside it.

    Tables (CSV/TXT with a filename column) are looked for in the file's folder and, when that
    folder is a TenGeoP class folder, in the class root and its parent (the archive layout), as
    :class:`~oceandl.datasets.images.TenGeoPDataset` does. ``None`` when no file is found in one.
    """
    from oceandl.datasets.images import _read_metadata_table, is_tengeop_root

    tables: dict[Path, list[dict]] = {}
    roots: dict[Path, bool] = {}

    def tables_in(folder: Path) -> list[dict]:
        if folder not in tables:
            try:
                cands = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".txt"))
            except OSError:  # an unlistable folder just has no metadata
                cands = []
            tables[folder] = [t for t in map(_read_metadata_table, cands) if t]
        return tables[folder]

    out = []
    for f in map(Path, files):
        folders = [f.parent]
        up = f.parent.parent
        if up not in roots:
            roots[up] = is_tengeop_root(up)
        if roots[up]:
            folders += [up, up.parent]
        rec = next((t[f.stem] for d in folders for t in tables_in(d) if f.stem in t), {})
        out.append(rec)
    return out if any(out) else None


def _with_skipped(dataset, probs: np.ndarray, errors: dict[int, str]):
    """Probabilities, errors and paths over every file given to ``dataset`` (its ``inputs``), the
    ones it left out as unreadable (``skipped``) with NaN and their reason, in the order given."""
    files, reasons = dataset.files, getattr(dataset, "skip_reasons", {})
    full = np.full((len(dataset.inputs), probs.shape[1]), np.nan, probs.dtype)
    out_errors, k = {}, 0
    for i, p in enumerate(dataset.inputs):
        if k < len(files) and Path(files[k]) == Path(p):
            full[i] = probs[k]
            if k in errors:
                out_errors[i] = errors[k]
            k += 1
        else:
            out_errors[i] = reasons.get(str(p), "unreadable")
    return full, dict(sorted(out_errors.items())), [str(p) for p in dataset.inputs]
