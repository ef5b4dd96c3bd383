"""Gap filling of (time, lat, lon) fields: one interface, several methods.

``METHODS`` maps a method name to its :class:`~oceandl.interp.base.Interpolator` subclass;
:func:`interpolate` is the one-call entry point. :func:`~oceandl.interp.eof.eof` is the EOF
analysis of complete fields.
"""
from __future__ import annotations

import copy
import os

import numpy as np
import xarray as xr

from oceandl.errors import InputError

from .base import Interpolator, _label, _one_step, _squeeze_levels, as_dataarray, canonical_dims, warn_partial_fit_aux
from .chunked import interpolate_chunked
from .climatology import Climatology
from .dineof import DINEOF
from .eof import EOF, EOFInterpolator, eof
from .fitted import load_fitted
from .neural import ConvAEInterpolator, ResAEInterpolator, SMPUnetInterpolator, UNetInterpolator
from .withhold import check_withhold, withhold_attrs, withhold_for_validation

__all__ = [
    "Interpolator", "Climatology", "EOFInterpolator", "DINEOF", "EOF", "eof",
    "METHODS", "get_method", "interpolate", "interpolate_chunked", "load_fitted",
]

METHODS: dict[str, type[Interpolator]] = {
    "climatology": Climatology,
    "eof": EOFInterpolator,
    "dineof": DINEOF,
    "convae": ConvAEInterpolator,
    "unet": UNetInterpolator,
    "resae": ResAEInterpolator,
    "smp_unet": SMPUnetInterpolator,
}


def get_method(name: str) -> type[Interpolator]:
    """The Interpolator class registered as ``name`` in :data:`METHODS`.

    Raises
    ------
    InputError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown interpolation method {name!r} (valid: {', '.join(sorted(METHODS))})") from None


def _unsqueeze(obj, dims: tuple, renamed: dict):
    """``obj`` with the size-1 dims :func:`_squeeze_levels` dropped back, in the input's order
    (a scalar coordinate of a dropped dim becomes its coordinate again)."""
    dims = tuple(renamed.get(d, d) for d in dims)
    return obj.expand_dims([d for d in dims if d not in obj.dims]).transpose(*dims)


def fitted_model(fit_on, method: str, options: dict, *, device: str = "auto",
                 progress: bool = False) -> Interpolator | None:
    """The fit ``fit_on`` is when it is one already made (a fitted Interpolator, or the folder its
    ``save()`` wrote, loaded), checked to be ``method``'s and given no ``options``; None when
    ``fit_on`` is a field to fit (or None).

    Raises
    ------
    InputError
        Starting ``"fit_on: "``: another method, options given, not fitted, or the folder's
        :class:`~oceandl.errors.CheckpointError`.
    """
    if not isinstance(fit_on, (str, os.PathLike, Interpolator)):
        return None
    if isinstance(fit_on, Interpolator):
        fitted = fit_on
    else:
        try:
            fitted = load_fitted(fit_on, device=device, progress=progress)
        except InputError as exc:
            raise type(exc)(f"fit_on: {exc}") from None
    if fitted.name != method:
        raise InputError(f"fit_on: a fitted {fitted.name!r}, not the method {method!r} asked for")
    fit_opts = sorted(set(options) - set(fitted.transform_options))
    if fit_opts:
        allowed = f" but {', '.join(fitted.transform_options)}" if fitted.transform_options else ""
        raise InputError(f"fit_on: a fitted method takes no options{allowed} (got {', '.join(fit_opts)}); "
                         "its fit's are used")
    if fitted.can_transform and not fitted._fitted:
        raise InputError(f"fit_on: method {method!r} is not fitted (call fit() first)")
    if options:  # on a copy: the caller's fitted model keeps its own
        fitted = copy.copy(fitted)
        fitted.options = {**fitted.options, **options}
        fitted._check_options()
    return fitted


def interpolate(da: xr.DataArray, method: str = "dineof", *, withhold: float = 0.0, withheld=None,
                return_dataset: bool = False, seed: int = 0, device: str = "auto", progress: bool = False,
                fit_on: xr.DataArray | Interpolator | str | os.PathLike | None = None, aux=None, mask=None,
                fit_aux=None, **options):
    """Fill the gaps (NaN) of a (time, lat, lon) field.

    Parameters
    ----------
    da : xarray.DataArray (time, lat, lon), dims found by name or coordinate (see
        :func:`~oceandl.interp.base.canonical_dims`), NumPy or dask backed
        Size-1 dims that are none of these (a depth or band of ``(time, depth=1, lat, lon)``)
        are dropped for the fit, as ``oceandl interpolate`` reads a file, and put back in the result.
        One day's (lat, lon) map (``new.sel(time=day)``), filled with ``fit_on``, is given back as a
        map (its time a scalar coordinate).
        A dask-backed field (``xr.open_dataset(..., chunks=...)``) is computed into memory, at
        once and silently: every method fits the whole cube, and the result is NumPy-backed. A
        cube larger than memory is filled block by block into a netCDF file by
        :func:`interpolate_chunked` (``oceandl interpolate --chunks``) instead; here it would
        fail with MemoryError or be killed by the system. NaN marks gaps; pixels never observed are land and stay NaN. A variable not CF-decoded
        (``mask_and_scale=False``: packed integers, ``_FillValue``) is decoded, and values beyond
        ``valid_min``/``valid_max``/``valid_range`` are gaps, as ``oceandl interpolate`` reads a
        file (:func:`~oceandl.interp.base.cf_masked`).
    method : str
        A key of :data:`METHODS` (``"climatology"``, ``"eof"``, ``"dineof"``, ...).
    withhold : float
        Share of the valid pixels to hide from the method and score it on (``val_*`` attrs), drawn
        by cloud-mask transfer with ``seed``, in [0, 0.9). The default, 0, fits every observation:
        a call from Python is the fill itself, and the pixels to score a method on are the
        caller's choice. ``oceandl interpolate`` withholds 0.1 by default; ``withhold=0.1`` with
        the same ``seed`` withholds the same pixels and gives the same field and scores as its file,
        but at the withheld pixels (``missing_flag`` 2): the field returned holds the method's values
        there (what ``val_*`` scored), the file the observations.
        A field with a single time step or no gap over the ocean gets none (the latter warned);
        one whose gaps are too few to reach ``withhold`` gets what the transfer reaches (warned).
        The result's attrs say what was withheld, as the CLI's file does: ``val_withhold``,
        ``val_withheld_fraction``, ``val_withhold_method``, ``val_withhold_seed``
        (:func:`~oceandl.interp.withhold.withhold_attrs`).
    withheld : bool array-like of ``da``'s shape, optional
        Observed pixels hidden from the method and used for the ``val_*`` scores, chosen by the
        caller (instead of ``withhold``).
    fit_on : xarray.DataArray (time, lat, lon), a fitted Interpolator, or a folder path, optional
        Fit the method on this field (an earlier period on the same grid) and fill ``da`` with
        what it learned, without fitting on ``da`` (:meth:`~oceandl.interp.base.Interpolator.transform`;
        the climatology, ``eof`` and ``dineof``). ``withhold`` and ``withheld`` then apply to ``da``.
        A method already fitted, or the folder its ``save()`` wrote (:func:`load_fitted`), fills
        ``da`` as it is: ``method`` must be its method, and no method options are taken.
    aux : DataArray, list or dict of DataArrays, or Dataset, optional
        Auxiliary variables (covariates) on ``da``'s days and grid, for the neural methods and
        ``dineof`` (``takes_aux``): each becomes input channels of the network beside the field,
        or a block of columns of DINEOF's matrix (multivariate DINEOF) (a passive microwave SST
        that sees through clouds, the wind). NaN marks their own gaps. A network
        loaded with ``checkpoint=`` needs the variables it was trained with, by name. With
        ``fit_on`` (``dineof``): today's covariates of a multivariate fit on another period, by the
        names it was fitted with (``fit_aux``, or those of the fit already made): each new day's
        amplitudes of the joint modes are solved on its observed field pixels and its covariates'
        values, normalised with the fit's statistics. See :func:`~oceandl.interp.base.read_aux`.
    fit_aux : DataArray, list or dict of DataArrays, or Dataset, optional
        With ``fit_on`` a field and ``aux``: the same covariates on ``fit_on``'s days and grid,
        for its multivariate fit. One with values on fewer than 75 % of those days is warned of:
        the fill with it can be worse than without it
        (:func:`~oceandl.interp.base.warn_partial_fit_aux`).
    mask : xarray.DataArray (lat, lon) or array-like (lat, lon), optional
        Land-sea mask, True/1 = ocean, on ``da``'s grid (matched by coordinate value, either
        longitude convention; a larger grid is cut to the field's). A CF flag variable is read by
        its ``flag_meanings`` and a land fraction (named ``land``, ``lsm``..., or standard_name
        ``land_area_fraction``/``land_binary_mask``) is ocean below 0.5: see
        :mod:`oceandl.interp.mask`. Observations on its land are dropped (NaN in the result,
        ``missing_flag`` 3); its ocean pixels never observed are filled by the neural methods and
        left NaN, with a warning, by climatology, eof and dineof (``missing_flag`` 4). Without it,
        pixels never observed are land. With ``fit_on`` a field: the mask of that fit (and of the
        fill); not with ``fit_on`` a fit already made (it keeps the mask it was fitted with).
    return_dataset : bool
        Return the whole :class:`xarray.Dataset` (field, ``missing_flag``, ``sigma`` if the method
        gives one) instead of the filled DataArray.
    seed, device, progress
        See :class:`~oceandl.interp.base.Interpolator`.
    **options
        Method options (``keep_observed`` and the method's ``option_defaults``).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Same dims (a dropped size-1 dim put back), coords and attrs as ``da`` plus provenance (and
        ``val_*`` metrics) attrs. The DataArray has no ``ancillary_variables`` (the Dataset's field
        names its ``missing_flag`` and ``sigma`` there). Floats in ``da``'s decoded precision
        (float32 for 8- or 16-bit packed integers, whatever the type of their ``scale_factor``), as
        ``oceandl interpolate`` writes them: the packing of a packed input (int16 ``scale_factor``,
        ``add_offset``, ``_FillValue`` in ``da.encoding``) is not carried into the result's
        ``encoding``, nor its ``chunksizes``, ``source`` (a filled value may lie outside the packed
        range, which xarray wraps silently on writing); pass the packing to
        ``to_netcdf(encoding=...)`` to write it packed. The ``encoding`` is the CLI's instead
        (:func:`~oceandl.io.compression_encoding`: zlib level 4, one time step per chunk, with the
        ``original_shape`` that lets xarray drop the chunks of a result cut to another shape), so
        that ``to_netcdf(path)`` writes the file ``oceandl interpolate`` writes.

    Raises
    ------
    InputError
        Unknown method or option, ``withhold`` outside [0, 0.9) or given with ``withheld``, or bad
        input (see :meth:`Interpolator.fit`); one about ``fit_on`` starts with ``"fit_on: "``.
    """
    cls = get_method(method)
    check_withhold(withhold)
    fitted = fitted_model(fit_on, method, options, device=device, progress=progress)
    if fit_aux is not None and (fit_on is None or fitted is not None):
        raise InputError("fit_aux: the covariates of fit_on's days, for fit_on a field to fit (a fit already made "
                         "has its own)" if fit_on is not None else "fit_aux: only with fit_on (a field to fit)")
    if aux is not None and fit_on is not None and fitted is None and fit_aux is None:
        # today's covariates alone cannot fit the joint modes: the period fitted needs its own
        raise InputError("aux: with fit_on a field, give the same covariates on its days as fit_aux (the joint "
                         "modes are fitted on both)")
    if mask is not None and fitted is not None:
        raise InputError("mask: not with fit_on a fit already made (it fills with the mask it was fitted with, "
                         "if any)")
    model = fitted or cls(seed=seed, device=device, progress=progress, **options)
    if fit_on is not None and not cls.can_transform:
        raise InputError(f"fit_on: method {method!r} cannot fill one field with a fit on another; {cls._no_transform}")
    # a (time, depth=1, lat, lon) level was refused ('expected 3 dims') where the CLI reads it
    da, input_dims = _squeeze_levels(da)
    # one map (ds.sst.sel(time=day)) filled with a fit made: a field of one step, given back as a map
    one_map = _one_step(da) if isinstance(da, xr.DataArray) and da.ndim == 2 else None
    if one_map is not None and one_map.ndim == 3:
        step = next(d for d in one_map.dims if d not in da.dims)
        da = one_map
        if withheld is not None and np.ndim(withheld) == 2:
            withheld = withheld.expand_dims(step) if isinstance(withheld, xr.DataArray) else np.asarray(withheld)[None]
    else:
        step = None
    held_attrs: dict = {}
    if withhold > 0:
        da = as_dataarray(da).compute()  # a dask field read once, for the mask and the fit
        if withheld is not None:
            raise InputError(f"{_label(da)}: pass withhold (a fraction to draw) or withheld (a mask), not both")
        dims = canonical_dims(da)
        valid = np.isfinite(np.asarray(da.transpose(*dims).values))
        if mask is not None:  # observations on the mask's land are dropped: none of them is withheld
            from .mask import read_mask

            sea, _ = read_mask(mask, da.transpose(*dims), _label(da))
            valid &= sea[None]
        # drawn in (time, lat, lon) order, as `oceandl interpolate` draws it on the file's field
        # (pixel by pixel: a reversed latitude or another dim order gets the same pixels)
        held = withhold_for_validation(valid, withhold, seed, _label(da))
        if held is not None:
            withheld = np.transpose(held, [dims.index(d) for d in da.dims])
            # the fraction, seed and draw beside the scores, as `oceandl interpolate` writes them
            held_attrs = withhold_attrs(held, valid, withhold, seed)
    if input_dims is not None and withheld is not None and getattr(withheld, "ndim", np.ndim(withheld)) > 3:
        withheld = withheld.squeeze([d for d in input_dims if d not in da.dims]) if isinstance(withheld, xr.DataArray) \
            else np.squeeze(withheld, axis=tuple(i for i, d in enumerate(input_dims) if d not in da.dims))
    if fit_on is not None and fitted is None:
        try:
            model.fit(_squeeze_levels(fit_on)[0], **({} if mask is None else {"mask": mask}),
                      **({} if fit_aux is None else {"aux": fit_aux}))
        except InputError as exc:
            if type(exc) is not InputError:
                raise
            # both fields are often 'sst': "variable 'sst': all values are NaN" did not say which
            raise InputError(f"fit_on: {exc}") from None
        if fit_aux is not None:  # a covariate on part of the fitted days: said in an info line only, and it fills worse
            warn_partial_fit_aux(model)

    def output():
        if fit_on is None:
            ds = model.reconstruct()
        else:
            ds = model.transform(da, withheld=withheld, **({} if aux is None else {"aux": aux}))
        ds[model.output_name_].attrs.update(held_attrs)  # on the field and the Dataset, as the val_* scores
        ds.attrs.update(held_attrs)
        return ds

    if fit_on is None:
        model.fit(da, withheld=withheld, **({} if aux is None else {"aux": aux}),
                  **({} if mask is None else {"mask": mask}))
    if return_dataset:
        ds = output()
        if step is not None:
            return ds.isel({step: 0})
        return ds if input_dims is None else _unsqueeze(ds, input_dims, model.renamed_coords_)
    import warnings

    with warnings.catch_warnings():  # the renaming of a coordinate named like an output variable is undone here
        warnings.filterwarnings("ignore", message=".*named like output variables", category=UserWarning)
        ds = output()
    out = ds[model.output_name_]
    out = out.rename({new: old for old, new in model.renamed_coords_.items()}) if model.renamed_coords_ else out
    # the missing_flag and sigma it names come with return_dataset=True only: written alone with
    # to_netcdf, the field named two variables its file did not hold (a CF error)
    out.attrs.pop("ancillary_variables", None)
    if step is not None:
        return out.isel({step: 0})
    return out if input_dims is None else _unsqueeze(out, input_dims, {})
