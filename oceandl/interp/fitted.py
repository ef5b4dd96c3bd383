"""A fitted climatology, ``eof`` or DINEOF saved to a checkpoint folder, and loaded back to fill
other fields on its grid (:meth:`~oceandl.interp.base.Interpolator.transform`) without fitting again.

The folder is an oceandl checkpoint (``config.json`` + ``weights.safetensors``, never a pickle) of
task ``"interpolation-fitted"``: the arrays are the fitted pixel means, ocean mask, grid and the
method's state (modes, seasonal coefficients), the JSON the options, scale, units, and what the
fit was on. ``oceandl train interpolator PAST.nc --method dineof -o FOLDER`` writes one and
``oceandl interpolate NEW.nc --fit-on FOLDER`` fills with it: a decade's modes fitted once, each
new day filled in seconds.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from oceandl.errors import CheckpointError, InputError, one_line

from .base import Interpolator, _json_default, _netcdf_safe

__all__ = ["save_fitted", "load_fitted", "is_fitted_folder", "fitted_folder", "saved_method", "checkpoint_method",
           "refuse_fit_folder_output", "FITTED_TASK"]

FITTED_TASK = "interpolation-fitted"
_KEEP_ATTRS = ("units", "standard_name", "long_name")


def is_fitted_folder(path) -> bool:
    """Whether ``path`` is a checkpoint folder whose config.json says it holds a fitted method."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("task") == FITTED_TASK
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def fitted_folder(path) -> Path | None:
    """The saved fit's folder that ``path`` names (the folder, or its config.json or weights file),
    or None if it names none."""
    p = Path(path)
    for folder in (p, p.parent) if p.name in ("config.json", "weights.safetensors") else (p,):
        if folder.is_dir() and is_fitted_folder(folder):
            return folder
    return None


def refuse_fit_folder_output(folder, fit_on, option: str = "fit_on") -> None:
    """Refuse ``folder``, where a fill's files are to be written (a file per input file), when it is
    the folder of the saved fit ``fit_on`` (a path) that the fill applies: ``-o FIT`` for
    ``-o filled.nc`` mixed the day files into the fit's folder.

    Raises
    ------
    InputError
        ``folder`` is that fit's folder (the same folder by any path).
    """
    if not isinstance(fit_on, (str, os.PathLike)):
        return
    fit = fitted_folder(fit_on)
    if fit is not None and Path(folder).is_dir() and os.path.samefile(folder, fit):
        raise InputError(f"{folder}: is the folder of the fit applied ({option} {fit}); write the filled files to "
                         "another folder")


def saved_method(path) -> str | None:
    """The method of the fit saved in folder ``path`` (None if it is not one, or unreadable)."""
    if not is_fitted_folder(path):
        return None
    try:
        method = json.loads((Path(path) / "config.json").read_text()).get("interpolator", {}).get("method")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return method if isinstance(method, str) else None


def checkpoint_method(path) -> str | None:
    """The gap-filling method a network checkpoint folder ``path`` was trained for (its
    ``config.json``'s ``interpolator.method``), or None if it is not one or is unreadable (the
    loader then says why)."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
        method = cfg.get("interpolator", {}).get("method") if cfg.get("task") == "interpolation" else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return method if isinstance(method, str) else None


def save_fitted(model: Interpolator, path, overwrite: bool = False, source: str | os.PathLike | None = None) -> Path:
    """Write fitted ``model`` (climatology, ``eof`` or DINEOF) as a checkpoint folder ``path``.

    Returns the path. Raises :class:`InputError` before ``fit``, for a method without
    ``transform`` (a network is saved by its own ``save``), or if ``path`` exists and not
    ``overwrite`` (a folder that is not a checkpoint is never replaced).
    """
    import torch

    from oceandl.training.checkpoint import CONFIG, FORMAT, WEIGHTS, _save_tensors, is_checkpoint_folder
    from oceandl.utils import atomic_path, check_output_path, provenance

    if not model.can_transform:
        raise InputError(f"method {model.name!r}: save() of a fit is for the methods with transform(); "
                         f"{model._no_transform}")
    if not model._fitted:
        raise InputError(f"method {model.name!r}: call fit() before save()")
    if getattr(model, "_cut_from", None):
        # its ridge and fill are the whole grid's on the box: saved, it would read as a fit of the box
        raise InputError(f"method {model.name!r}: a fit cut to a box of its grid is not saved; save the fit it was cut "
                         "from (it fills the box with --bbox), or fit the box itself")
    check_output_path(path, overwrite, kind="folder", replaceable=is_checkpoint_folder, what="checkpoint")
    da = model.da_
    state, meta = model._state()
    arrays: dict[str, np.ndarray] = {"ocean": model.ocean_.astype(np.uint8), "mean": np.asarray(model.mean_, np.float64),
                                     **state}
    if getattr(model, "sea_", None) is not None:  # the land-sea mask fitted with: transform() drops its land
        arrays["sea"] = model.sea_.astype(np.uint8)
    coords = {}
    for role, dim in zip(("lat", "lon"), da.dims[1:]):
        if dim in da.coords and np.issubdtype(da[dim].dtype, np.number):
            arrays[f"coord_{role}"] = np.asarray(da[dim].values, np.float64)
            coords[role] = dim
    # a loaded fit has the attrs it was saved with, not the fit's own state (its CV curve, iterations)
    saved = getattr(model, "_saved_attrs", None)
    fit_attrs = {k: _netcdf_safe(v) for k, v in (saved[0] if saved else model._fit_attrs()).items()}
    sigma_attrs = (saved[1] if saved else model._sigma_attrs()) if model.gives_sigma else {}
    fitted_on = model._fitted_on_text()
    loaded = getattr(model, "_loaded_from", None)
    if loaded:  # what it was fitted on, not the chain of folders it was loaded from
        fitted_on = fitted_on.removesuffix(f" (saved in {loaded})")
    config = {
        "format": FORMAT, "model": model.name, "model_args": [], "model_options": {}, "task": FITTED_TASK,
        "interpolator": {"method": model.name, "seed": model.seed, "keep_observed": model.keep_observed,
                         # those given (the rest are defaults): DINEOF refuses some defaults given explicitly
                         "options": json.loads(json.dumps({k: model.options[k] for k in sorted(model._given_options)},
                                                          default=_json_default))},
        "fitted": {"scale": float(model.scale_), "dims": [str(d) for d in da.dims], "coords": coords,
                   "shape": [int(s) for s in model.ocean_.shape], "name": None if da.name is None else str(da.name),
                   "attrs": {k: str(da.attrs[k]) for k in _KEEP_ATTRS if k in da.attrs},
                   # a Path too; a loaded fit saved again keeps the source it was fitted from
                   "fitted_on": fitted_on, "source": str(source) if source is not None else getattr(model, "_source", None),
                   "fit_attrs": json.loads(json.dumps(fit_attrs, default=_json_default)),
                   "sigma_attrs": json.loads(json.dumps(sigma_attrs, default=_json_default)),
                   "state": meta},
        "provenance": provenance(),
    }
    text = json.dumps(config, indent=2)  # fails before touching the disk if something is not JSON-able
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.mkdir()
            # writable copies: a coordinate's values are read-only, which torch warns of as undefined behaviour
            _save_tensors({k: torch.from_numpy(np.require(v, requirements=("C", "W"))) for k, v in arrays.items()},
                          tmp / WEIGHTS)
            (tmp / CONFIG).write_text(text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the checkpoint ({one_line(exc, with_type=False)})") from exc
    return Path(path)


def load_fitted(path, *, device: str = "auto", progress: bool = False) -> Interpolator:
    """A fitted method loaded from a folder :func:`save_fitted` wrote: ready for ``transform``.

    Raises
    ------
    InputError
        ``device`` is not a device name, or names one this machine lacks.
    CheckpointError
        Not such a folder (missing, a pickle, a network's checkpoint, corrupt JSON or tensors),
        or a config or array that does not fit the rest (edited by hand).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from oceandl.training.checkpoint import WEIGHTS, read_config
    from oceandl.utils import resolve_device

    from . import METHODS

    # checked before the folder is read: a bogus device was accepted here and failed at the first transform
    resolve_device(device)
    config = read_config(path)
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    if config.get("task") != FITTED_TASK:
        raise CheckpointError(f"{folder}: a {config.get('task')!r} checkpoint, not a fitted climatology, eof or "
                              "dineof (a network's checkpoint fills a field with --model)")

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{folder}: {what} (a file edited or damaged: fit and save it again)")

    interp, fitted = config.get("interpolator"), config.get("fitted")
    if not isinstance(interp, dict) or not isinstance(fitted, dict):
        raise bad("config.json lacks its 'interpolator' or 'fitted' record")
    cls = METHODS.get(interp.get("method")) if isinstance(interp.get("method"), str) else None
    if cls is None or not cls.can_transform:
        raise bad(f"method {interp.get('method')!r} is not one that a fit is saved for")
    options = interp.get("options")
    if not isinstance(options, dict):
        raise bad("its options are not a JSON object")
    keep = interp.get("keep_observed", True)
    if not isinstance(keep, bool):  # bool("false") is True: the fill would keep what the file said not to
        raise bad(f"keep_observed {keep!r} is not true or false")
    try:
        model = cls(seed=interp.get("seed", 0), device=device, progress=progress, keep_observed=keep, **options)
    except InputError as exc:
        raise bad(f"config.json: {exc}") from None
    try:
        arrays = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:  # TypeError: a dtype NumPy has not (bfloat16)
        raise CheckpointError(f"{folder / WEIGHTS}: corrupt or unreadable ({one_line(exc, with_type=False)})") from None
    shape = fitted.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) and s > 0 for s in shape)):
        raise bad(f"grid shape {shape!r} is not two positive integers")
    ocean = _array(arrays, "ocean", tuple(shape), bad, kind="u")
    mean = _array(arrays, "mean", tuple(shape), bad, finite=False)
    ocean = ocean.astype(bool)
    if not ocean.any() or not np.isfinite(mean[ocean]).all():
        raise bad("its ocean mask is empty or its pixel means are not finite over it")
    scale = fitted.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise bad(f"scale {scale!r} is not a positive number")
    dims = fitted.get("dims")
    if not (isinstance(dims, list) and len(dims) == 3 and all(isinstance(d, str) for d in dims) and len(set(dims)) == 3):
        raise bad(f"dims {dims!r} are not three names")
    coords = {}
    for role, dim, n in zip(("lat", "lon"), dims[1:], shape):
        if f"coord_{role}" in arrays:
            coords[dim] = _array(arrays, f"coord_{role}", (n,), bad)
    attrs = fitted.get("attrs") if isinstance(fitted.get("attrs"), dict) else {}
    # the fitted field's grid, no steps: what transform() matches a new field's against
    model.da_ = xr.DataArray(np.empty((0, *shape), np.float32), dims=dims, coords=coords, name=fitted.get("name"),
                             attrs={k: str(v) for k, v in attrs.items() if k in _KEEP_ATTRS})
    model.ocean_, model.mean_, model.scale_ = ocean, mean, float(scale)
    model.sea_ = model.sea_how_ = None
    if "sea" in arrays:
        sea = _array(arrays, "sea", tuple(shape), bad, kind="u").astype(bool)
        if (ocean & ~sea).any():
            raise bad("its land-sea mask has land where the fit has ocean")
        model.sea_, model.sea_how_ = sea, f"the mask of the fit saved in {folder}"
    model.input_dims_ = tuple(dims)
    n_ocean = int(ocean.sum())
    state = fitted.get("state")
    if not isinstance(state, dict):
        raise bad("its method state is not a JSON object")
    try:
        model._restore({k: v for k, v in arrays.items() if k not in ("ocean", "mean", "coord_lat", "coord_lon", "sea")},
                       state, n_ocean, lambda key, shp, **kw: _array(arrays, key, shp, bad, **kw))
    except CheckpointError:  # an array's own (an InputError is a ValueError too)
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"its method state does not fit ({one_line(exc, with_type=False)})") from None
    fit_attrs = fitted.get("fit_attrs") if isinstance(fitted.get("fit_attrs"), dict) else {}
    # never in a fit's attrs: an edited one must not rename the method or rewrite the provenance
    fit_attrs = {k: v for k, v in fit_attrs.items()
                 if k not in ("oceandl_version", "oceandl_software", "method", "options", "history", "fitted_on", "comment")}
    sigma_attrs = fitted.get("sigma_attrs") if isinstance(fitted.get("sigma_attrs"), dict) else {}
    model._saved_attrs = (dict(fit_attrs), dict(sigma_attrs))  # what the output says of the fit
    text = fitted.get("fitted_on")
    model._fitted_on = f"{text} (saved in {folder})" if isinstance(text, str) else f"the fit saved in {folder}"
    model._loaded_from = str(folder)
    model._source = fitted.get("source") if isinstance(fitted.get("source"), str) else None
    model._fitted = True
    return model


def _array(arrays: dict, key: str, shape: tuple, bad, *, kind: str = "f", finite: bool = True) -> np.ndarray:
    """``arrays[key]`` checked: present, of ``shape``, of dtype kind ``kind`` (float: float64, finite)."""
    if key not in arrays:
        raise bad(f"weights.safetensors has no {key!r}")
    a = arrays[key]
    if a.shape != shape:
        raise bad(f"{key!r} has shape {a.shape}, {shape} expected")
    # save() writes float64: a float16 copy would fill otherwise, rounded, without a word
    if a.dtype.kind != kind or (kind == "f" and a.dtype != np.float64):
        raise bad(f"{key!r} is {a.dtype}, {'float64' if kind == 'f' else 'an integer mask'} expected")
    if kind == "f":
        a = a.astype(np.float64)
        if finite and not np.isfinite(a).all():
            raise bad(f"{key!r} holds NaN or infinite values")
    return a
