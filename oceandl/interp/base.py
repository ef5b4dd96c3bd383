"""The interface every gap-filling method shares (climatology, EOF, DINEOF, neural networks).

The base class :class:`Interpolator` owns everything that is not maths: it validates the
DataArray, finds its (time, lat, lon) dims by name, computes dask input, normalises the field
(per-pixel temporal mean of the observations, one global scale), hides the withheld pixels,
undoes the normalisation, keeps land NaN and the observed values, labels the result with the
input's coords and attrs, adds provenance, and scores the withheld pixels. A method implements
only :meth:`Interpolator._fit` and :meth:`Interpolator._reconstruct` on plain NumPy arrays.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import datetime as _dt
import json
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

import numpy as np
import xarray as xr

from oceandl.errors import InputError, OceanDLError, one_line, warn
from oceandl.utils import package_version, software_versions

from .mask import MASK_FLAG_MEANINGS, MASK_FLAG_VALUES

__all__ = ["Interpolator", "canonical_dims", "clean_axes", "as_dataarray", "cf_masked", "append_history", "oceandl_version",
           "read_aux", "aux_anomaly", "static_stats", "aux_arrays", "check_aux_values"]

_ROLES = ("time", "lat", "lon")
# Fewer observations than this at a pixel: its mean is too uncertain, use the global mean.
_MIN_PIXEL_OBS = 2


def append_history(old: str | None, text: str = "", *, command: str | None = None) -> str:
    """A CF ``history`` attribute: a new line in front of ``old`` (the input's, if any):
    ``"<UTC ISO time>: <command>"`` for a command line, else
    ``"<UTC ISO time> oceandl <version>: <text>"``.

    The newest line comes first, as NCO and CDO write it (a new line at the end was read as the
    oldest by whoever scanned the file's provenance from the top).
    """
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp}: {command}" if command else f"{stamp} oceandl {oceandl_version()}: {text}"
    return f"{line}\n{old}" if old else line


def oceandl_version() -> str:
    """Version string of oceandl (``"unknown"`` when it is neither imported nor installed)."""
    return package_version("oceandl") or "unknown"


def _label(da) -> str:
    name = getattr(da, "name", None)
    return f"variable {name!r}" if name is not None else "input"


def as_dataarray(obj, what: str = "input") -> xr.DataArray:
    """Return ``obj`` as a DataArray.

    A Dataset with one data variable gives that variable, one with several its field as
    :func:`oceandl.io.find_variable` finds it (a ``sea_surface_temperature`` standard name, then the
    only 3-D variable, with a warning naming the others when there is a choice), as
    ``ds.oceandl.interpolate()`` does; a NumPy or dask array of 3 dims is labelled (time, lat, lon).

    Raises
    ------
    InputError
        For other types, or a Dataset with several variables of which none is found to be the field.
    """
    if isinstance(obj, xr.DataArray):
        return cf_masked(obj, what)
    if isinstance(obj, xr.Dataset):
        names = list(obj.data_vars)
        if len(names) == 1:
            return cf_masked(obj[names[0]], what)
        from oceandl.io import find_variable

        # a file's Dataset (its sst beside time_bnds, lat_bnds...) was refused with "e.g. ds['time_bnds']":
        # its field is found as ds.oceandl.interpolate() and `oceandl interpolate` without --var find it
        try:
            name = find_variable(obj, None, label=f"{what}: a Dataset")
        except InputError:
            raise InputError(f"{what}: a Dataset with variables {names}; pass one DataArray (ds['name']), or "
                             "name it: ds.oceandl.interpolate(var=...)") from None
        return cf_masked(obj[name], what)
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array_function__"):
        ndim = getattr(obj, "ndim", None)
        if ndim != 3:
            raise InputError(f"{what}: expected 3 dims (time, lat, lon), got an array of {ndim} dims")
        if isinstance(obj, np.ndarray):
            _warn_time_last(obj, what)
        return xr.DataArray(obj, dims=("time", "lat", "lon"))
    raise InputError(f"{what}: expected an xarray.DataArray, got {type(obj).__name__}")


#: the least share of (axis 0, axis 1) positions NaN along the whole last axis (a land mask) taken as
#: a sign that the last axis is time, and how many times the share along either other axis it must be
_LAND_SHARE, _LAND_RATIO, _MIN_STEPS = 0.02, 2.0, 8


def _warn_time_last(values: np.ndarray, what: str) -> None:
    """Warn when a bare NumPy array, read as (time, lat, lon) as documented, looks like (lat, lon, time)
    (MATLAB's and many scripts' order): its land (pixels NaN at every step) lies along its last axis.

    The sign is the land mask, cheap and hard to fake: the share of positions NaN along the whole last
    axis is at least :data:`_LAND_SHARE` and :data:`_LAND_RATIO` times that along either other axis
    (whole cloudy days, fully-land rows). A (time, lat, lon) field with land has its never-observed
    pixels along axis 0 instead; one without land or gaps gives no sign and no warning. The last axis
    must have :data:`_MIN_STEPS` steps or more (a row of a few pixels is often all cloud)."""
    if values.ndim != 3 or values.shape[2] < _MIN_STEPS or not np.issubdtype(values.dtype, np.floating):
        return
    nan = np.isnan(values)
    if not nan.any():
        return
    share = [float(nan.all(axis=k).mean()) for k in range(3)]
    if share[2] >= _LAND_SHARE and share[2] >= _LAND_RATIO * max(share[0], share[1]):
        n = values.shape
        warn(f"{what}: a NumPy array of shape {n} is read as (time, lat, lon) ({n[0]} steps), but it looks like "
             f"(lat, lon, time): {share[2]:.0%} of its (axis 0, axis 1) positions are NaN at all {n[2]} positions "
             f"of its last axis, as land is at every time step; if time is last, pass np.moveaxis(a, -1, 0), or "
             "a DataArray with named dims", UserWarning)


#: attributes that a CF-decoded variable no longer holds (xarray moves them to ``encoding``)
_PACKING_ATTRS = ("_FillValue", "missing_value", "scale_factor", "add_offset")


def cf_masked(da: xr.DataArray, what: str = "input") -> xr.DataArray:
    """``da`` with its CF missing values as NaN, as :func:`oceandl.io.open_field` reads a file.

    A variable still holding ``_FillValue``/``missing_value``/``scale_factor``/``add_offset`` in
    its attrs (opened with ``mask_and_scale=False``, or built by hand) is decoded by xarray's CF
    decoder; values outside ``valid_min``/``valid_max``/``valid_range`` become NaN and those
    attrs are dropped (on a filled field they bound nothing, and readers applying them would hide
    filled values). Without such attrs ``da`` is returned as it is. Coordinates are left alone.

    Raises
    ------
    InputError
        If the attributes cannot be decoded or the valid range is not numbers.
    """
    from oceandl.io import _VALID_ATTRS, _valid_range

    # packed int16 kelvin with its -32768 fill was fitted as data: fills of -32768, means off by 355 K
    if any(k in da.attrs for k in _PACKING_ATTRS):
        _warn_unpacked(da, what)
        try:
            var = xr.conventions.decode_cf_variable(da.name, da.variable, decode_times=False,
                                                    decode_timedelta=False)
        except Exception as exc:  # noqa: BLE001 - inconsistent CF attributes are the input's fault
            raise InputError(f"{what}: cannot decode CF attributes ({one_line(exc)})") from exc
        decoded = da.copy(data=var.data)
        decoded.attrs, decoded.encoding = dict(var.attrs), {**da.encoding, **var.encoding}
        da = decoded
    # a -999 sentinel below valid_min was fitted as data, where `oceandl interpolate` masks it
    valid = _valid_range(da, what) if any(k in da.attrs for k in _VALID_ATTRS) else None
    if valid is not None:
        if not np.issubdtype(da.dtype, np.floating):
            da = da.astype(np.float32 if da.dtype.itemsize <= 2 else np.float64)
        attrs = {k: v for k, v in da.attrs.items() if k not in _VALID_ATTRS}
        da = da.where((da >= valid[0]) & (da <= valid[1]))
        da.attrs = attrs
    return da


def _warn_unpacked(da: xr.DataArray, what: str) -> None:
    """Warn when ``da`` holds floats with fractions beside ``scale_factor``/``add_offset`` attrs:
    values unpacked already (netCDF4-python's ``variables[...][:]`` scales by default) whose attrs
    were copied with them are unpacked a second time (288.4 K became 276.0 K), silently. Packed
    values are whole numbers; one time step (or the first 10^5 values) is looked at."""
    if not np.issubdtype(da.dtype, np.floating) or not any(k in da.attrs for k in ("scale_factor", "add_offset")):
        return
    first = da.isel({da.dims[0]: 0}) if da.ndim > 1 else da
    v = np.asarray(first.values).ravel()[:100_000]
    v = v[np.isfinite(v)]
    if v.size and not np.array_equal(v, np.round(v)):
        label = _label(da) if what == "input" else what
        warn(f"{label}: holds floats with fractions (e.g. {float(v[np.flatnonzero(v != np.round(v))[0]]):g}) but its "
             "attrs hold scale_factor/add_offset, which packed whole numbers carry: unpacked as CF says "
             "(value * scale_factor + add_offset); if the values are unpacked already (netCDF4-python scales by "
             "default), drop those attrs first", UserWarning)


def _squeeze_levels(da) -> tuple:
    """``da`` without its size-1 dims that are none of time, lat, lon (a depth level, a band), as
    :func:`oceandl.io.open_field` reads a file for ``oceandl interpolate``; their coordinate stays
    as a scalar. Also the input's dims (to put them back), or ``None`` when nothing was dropped."""
    if not isinstance(da, xr.DataArray) or da.ndim <= 3:
        return da, None
    from oceandl.io import _role_from_attrs, _role_from_name

    level = [d for d in da.dims if da.sizes[d] == 1 and _role_from_name(d) is None
             and (d not in da.coords or _role_from_attrs(da[d].variable) is None)]
    if not level or da.ndim - len(level) != 3:
        return da, None  # fit() refuses it, naming its dims
    return da.isel({d: 0 for d in level}), tuple(da.dims)


def _one_step(da):
    """A (lat, lon) map as a (time, lat, lon) field of one step, its scalar time coordinate (a day
    selected with ``.sel(time=...)``) the step's; other DataArrays as they are."""
    if not isinstance(da, xr.DataArray) or da.ndim != 2:
        return da
    from oceandl.io import _role_from_attrs, _role_from_name

    def is_time(name) -> bool:
        return _role_from_name(name) == "time" or (name in da.coords and _role_from_attrs(da[name].variable) == "time")

    if any(is_time(d) for d in da.dims):
        return da  # (time, lat) or the like: refused as not 3-D
    tname = next((c for c in da.coords if da[c].ndim == 0 and is_time(c)), "time")
    return da.expand_dims(tname)


def canonical_dims(da: xr.DataArray, say: bool = False) -> tuple[str, str, str]:
    """Names of the (time, lat, lon) dims of a 3-D DataArray.

    Dims are recognised by name (case-insensitive, the names :func:`oceandl.io.open_field`
    knows): ``time``/``t``/``times``/``date``/``time_counter``/``ocean_time``,
    ``lat``/``latitude``/``y``/``nj``/``eta_rho``/``YC``/..., ``lon``/``longitude``/``x``/``ni``/
    ``xi_rho``/``XC``/... (ROMS, NEMO, GHRSST L2 and MITgcm grid dims); then, for dims not named so, by their coordinate: dates
    (datetime64, cftime, numbers in "days since ..."), CF ``axis``, ``standard_name`` or
    ``units`` (``degrees_north``...), which go first; then by another coordinate along them (ROMS'
    ``lat_rho(eta_rho, xi_rho)``, a ``latitude`` along ``eta``), as open_field reads a file.
    Dims still not recognised take the remaining roles in their order, so an unlabelled array
    (``dim_0``, ``dim_1``, ``dim_2``) is read as (time, lat, lon); but not a dim left to be time
    whose name or coordinate says it is something else (``mode``, ``depth``, axis Z), nor a dim
    whose name says a role another dim took (``y`` of ``(time, lat, y)``, left to be lon), both
    refused as :func:`oceandl.io.open_field` refuses them.

    Parameters
    ----------
    da : xarray.DataArray, 3-D
    say : bool
        Warn when two dims or more with names of their own got their roles by position (the
        reading of a field: once per field, not at every look at its dims).

    Raises
    ------
    InputError
        If ``da`` is not 3-D, two dims claim one role by their coordinates, a dim named for one role is
        left to be another, or the dim left to be time is not one.
    """
    from oceandl.io import (_role_from_attrs, _role_from_name, _say_by_position, pick_by_coordinate,
                            refuse_against_name, refuse_not_time, say_not_taken)

    if da.ndim != 3:
        raise InputError(f"{_label(da)}: expected 3 dims (time, lat, lon), got {da.ndim} dims {tuple(da.dims)}")
    # (nj, ni, time_counter) was read by position as (time, lat, lon): a fit along the wrong axis, unsaid.
    # A dim's coordinate (CF attributes, dates) before its name, as open_field reads a file: (time, lat, y)
    # with y in degrees_east was read so there and refused here
    by_coord = {d: _role_from_attrs(da[d].variable) if d in da.coords else None for d in da.dims}
    by_name = {d: _role_from_name(d) for d in da.dims}
    found: dict[str, Any] = {}
    not_taken: list = []  # (role, the dim taken, the others whose coordinates said it too)
    for how in (by_coord, by_name):
        for role in _ROLES:
            hits = [d for d in da.dims if how[d] == role and d not in found.values()]
            if role in found or not hits:
                continue
            if len(hits) > 1 and how is by_coord:  # the one said exactly (standard_name latitude), as open_field
                keep = pick_by_coordinate(role, [(d, da[d].variable) for d in hits], _label(da))
                not_taken.append((role, (keep, da[keep].variable), [(d, da[d].variable) for d in hits if d != keep]))
                hits = [keep]
            # two dims of one role by name (lat and y): the first takes it, as open_field takes it, and
            # the other, left to the order, is refused below (refuse_against_name), as open_field refuses it
            found[role] = hits[0]
    # ROMS' (ocean_time, eta_rho, xi_rho) with lat_rho/lon_rho beside them: open_field places them so, and
    # a warning that they were read by position (rename them, or give coordinates) would be wrong
    for role, dim in (_roles_from_other_coords(da) if len(found) < 3 else {}).items():
        if role not in found and dim not in found.values():
            found[role] = dim
    rest = [d for d in da.dims if d not in found.values()]
    left = [r for r in _ROLES if r not in found]
    refuse_against_name(list(zip(rest, left)), da.dims, _label(da))
    tdim = dict(zip(left, rest)).get("time")
    if tdim is not None:  # an `eof` output's (mode, lat, lon) had its modes filled as days, silently
        refuse_not_time(tdim, da[tdim].variable if tdim in da.coords else None, _label(da))
    if say:
        _say_by_position(list(zip(rest, left)), _label(da))
    found.update(zip(left, rest))
    if say:  # a dim in degrees_north beside the latitude said exactly: what it was read as, said as open_field says it
        for role, keep, others in not_taken:
            say_not_taken(role, keep, others, {d: r for r, d in found.items()}, _label(da))
    return tuple(found[r] for r in _ROLES)  # type: ignore[return-value]


def _roles_from_other_coords(da: xr.DataArray) -> dict[str, Any]:
    """Roles the coordinates of ``da`` that are not dim coordinates give its dims: a 1-D one by its
    attributes or name (a ``latitude`` along ``eta``), a 2-D numeric lat or lon along the dim it
    varies most along (``lat_rho(eta_rho, xi_rho)``, as :func:`oceandl.io.open_field` reads it).
    A role claimed for two dims, or a dim for two roles, is left out."""
    from oceandl.io import _role_from_attrs, _role_from_name, _varying_dim

    claims: dict[str, set] = {}
    for name, c in da.coords.items():
        if name in da.dims or c.ndim not in (1, 2) or not set(c.dims) <= set(da.dims):
            continue
        role = _role_from_attrs(c.variable) or _role_from_name(name)
        if role is None or (c.ndim == 2 and (role == "time" or not np.issubdtype(c.dtype, np.number))):
            continue
        claims.setdefault(role, set()).add(_varying_dim(c.variable) if c.ndim == 2 else c.dims[0])
    one = {role: next(iter(dims)) for role, dims in claims.items() if len(dims) == 1}
    dims = list(one.values())
    return {role: dim for role, dim in one.items() if dims.count(dim) == 1}


def clean_axes(da) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(iy, ix)`` that put the (time, lat, lon) DataArray ``da``'s grid in the clean
    orientation open_field gives (latitude ascending, longitude ascending in -180..180, or 0..360
    across the dateline); ``arange`` along an axis without numeric 1-D coordinates."""
    return tuple(order for order, _ in _clean_grid(da))  # type: ignore[return-value]


def _clean_grid(da) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """For the lat and lon dims of (time, lat, lon) ``da``: the index array that puts the axis in the
    clean orientation (:func:`clean_axes`) and the coordinate's values in that order (longitudes in
    open_field's convention), None without a numeric 1-D coordinate."""
    from oceandl.io import _lon_convention, in_degrees

    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    for k, dim in enumerate(da.dims[1:]):
        idx = da.indexes.get(dim)
        if idx is None or not np.issubdtype(idx.dtype, np.number):
            out.append((np.arange(da.sizes[dim]), None))
            continue
        v = np.asarray(idx, dtype=np.float64)
        if k == 1 and in_degrees(da[dim].attrs):  # a projection's x (km) is not wrapped at 360
            v = _lon_convention(v)
        order = np.argsort(v, kind="stable")
        out.append((order, v[order]))
    return out


def time_steps(da: xr.DataArray) -> np.ndarray | None:
    """The steps between consecutive values of ``da``'s time coordinate (its first dim), when they
    all increase: timedelta64, ``datetime.timedelta`` (cftime) or numbers. None without such a
    coordinate, with fewer than 3 values, or values that cannot be subtracted and compared."""
    idx = da.indexes.get(da.dims[0])
    if idx is None or len(idx) < 3:
        return None
    try:
        steps = np.diff(np.asarray(idx.values))
        return steps if bool(np.all(steps > steps.min() * 0)) else None
    except (TypeError, ValueError):
        return None


def unordered_step(da: xr.DataArray) -> int | None:
    """The first position ``i`` where ``da``'s time coordinate (its first dim) does not increase
    (``time[i] <= time[i - 1]``: shuffled, reversed or repeated), or None when it increases, is
    absent or holds values that do not compare (labels)."""
    idx = da.indexes.get(da.dims[0])
    if idx is None:  # no coordinate: the array's order is the only order there is
        return None
    try:
        later = np.asarray(idx[1:] > idx[:-1], dtype=bool)
    except TypeError:
        return None
    return None if later.all() else int(np.flatnonzero(~later)[0]) + 1


def refuse_undated(da: xr.DataArray, label: str, need: str) -> None:
    """Refuse a time coordinate (``da``'s first dim) with a step that has no date (NaT, a time fill
    value in the file), which ``need`` (what uses the dates, for the message) cannot do without.

    Sorting does not help (NaT goes to the end, still "not increasing"), and a NaN day of year
    made the neural methods' seasonal channels NaN: "training diverged ... lower lr".

    Raises
    ------
    InputError
        Naming the first such step and how to drop the steps.
    """
    tdim = da.dims[0]
    idx = da.indexes.get(tdim)
    if idx is None:
        return
    try:
        bad = np.flatnonzero(np.asarray(idx.isna(), dtype=bool))
    except (TypeError, ValueError, NotImplementedError):
        return
    if bad.size:
        raise InputError(f"{label}: {bad.size} time step(s) have no date (NaT; the first: step {bad[0]}), which "
                         f"{need} cannot do without; drop them (da.isel({tdim}=da.{tdim}.notnull()))")


def step_text(step) -> str:
    """A time step for a message: '1 day', '5 days', '6 hours' (or the value as it is)."""
    try:
        seconds = float(step / np.timedelta64(1, "s")) if isinstance(step, np.timedelta64) else step.total_seconds()
    except (AttributeError, TypeError):
        return str(step)
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= n and seconds % n == 0:
            k = int(seconds // n)
            return f"{k} {unit}{'s' if k != 1 else ''}"
    return f"{seconds:g} s"


def output_coord_name(name, taken) -> str:
    """The name under which an input coordinate called like an output variable (``sigma``,
    ``missing_flag``) is kept: ``<name>_coord`` (with ``_`` added while that is taken too)."""
    new = f"{name}_coord"
    taken = set(map(str, taken))
    while new in taken:
        new += "_"
    return new


def _netcdf_safe(value):
    """Attribute values that netCDF can store: bool -> int, containers -> JSON."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=_json_default)
    if value is None:
        return "none"
    return value


#: attributes an oceandl run writes about itself (on the filled variable and the file): those of an
#: earlier run, read back from its output, describe that run, not the next one
RUN_ATTRS = frozenset({
    "oceandl_version", "oceandl_software", "method", "options", "seconds", "chunked", "harmonics", "harmonics_fallback_pixels",
    # DINEOF and eof
    "n_modes", "n_iter", "n_iter_total", "converged", "shrink", "shrink_curve",
    # neural methods
    "model", "model_options", "train_steps", "input_channels", "seasonal_channels", "precision",
    "normalisation", "final_train_loss", "checkpoint", "aux_variables", "land_sea_mask",
    # oceandl eof's file
    "solver", "variable", "total_variance", "n_modes_used",
})
#: prefixes of run attributes: scores (val_*, truth_*), DINEOF's cross-validation (cv_*), the
#: checkpoint used (checkpoint_*) or fine-tuned (init_checkpoint*), the block plan of --chunks (chunked_*)
RUN_ATTR_PREFIXES = ("val_", "truth_", "cv_", "checkpoint_", "chunked_", "init_checkpoint")


def _input_attrs(attrs: dict) -> dict:
    """The input's attrs to carry onto a result, less the scores of an earlier fill (``val_*``,
    ``truth_*``): refilling an oceandl output without withholding kept them, and `oceandl
    interpolate` reported them as this run's validation. The other attributes an earlier oceandl
    run wrote about itself (:data:`RUN_ATTRS`: DINEOF's ``n_iter``, ``cv_curve``...; recognised by
    the ``oceandl_version`` beside them) go too: a climatology fill of a DINEOF output said
    ``method: climatology`` beside DINEOF's ``n_modes: 4`` and ``converged: 0``."""
    earlier_run = "oceandl_version" in attrs
    return {k: v for k, v in attrs.items() if not str(k).startswith(("val_", "truth_"))
            and not (earlier_run and (k in RUN_ATTRS or str(k).startswith(RUN_ATTR_PREFIXES)))}


#: ``comment`` of the ``sigma`` output: sigma at observed pixels was undocumented; there the field holds
#: the observation (keep_observed) while sigma is the error std of the method's own reconstruction
#: (for the U-Net with nll, 0.35 degC at observed pixels against 0.53 at withheld ones)
SIGMA_COMMENT = ("error std of the method's reconstruction; at observed pixels (missing_flag 0) the field "
                 "keeps the observation (keep_observed, the default), whose error this is not")


def filled_comment(method: str, keep_observed: bool, old: str | None = None, masked: bool = False) -> str:
    """``comment`` of a filled field: what its values are (the input's own comment after it, less
    the line an earlier oceandl fill wrote, which the new flag no longer describes); ``masked``: a
    fill with a land-sea mask (land is the mask's, its observations dropped)."""
    head = "gaps (missing_flag 1) filled by the oceandl "
    text = (f"{head}{method} method"
            + ("; observed values kept as given (missing_flag 0)" if keep_observed
               else "; every ocean value is the method's reconstruction")
            + ("; land (never observed) left missing" if not masked else
               "; land of the land_sea_mask left missing, observations there dropped (missing_flag 3); ocean "
               "pixels never observed and not filled by the method left missing (missing_flag 4)"))
    old = "\n".join(line for line in str(old or "").splitlines() if not line.startswith(head))
    return f"{text}\n{old}" if old else text


#: the post-hoc sigma calibrations (neural ``calibrate``, DINEOF ``error_map``): held-out
#: |error / sigma| beyond this many robust stds (1.4826 x median) are left out of the scale, and
#: fewer points than ``SIGMA_MIN_POINTS`` kept leave sigma uncalibrated (warned by the caller)
SIGMA_CLIP = 5.0
SIGMA_MIN_POINTS = 200


def calibration_z(z) -> np.ndarray:
    """The standardised held-out errors ``z = error / sigma`` a calibration scale is fitted on.

    Parameters
    ----------
    z : array of float, any shape

    Returns
    -------
    ndarray, float64, 1-D
        The finite ``z`` within :data:`SIGMA_CLIP` robust stds (1.4826 x median |z|); empty when
        that median is 0. The scale is then ``sqrt(mean(kept ** 2))``.
    """
    z = np.asarray(z, dtype=np.float64).ravel()
    z = z[np.isfinite(z)]
    robust = 1.4826 * float(np.median(np.abs(z))) if z.size else 0.0
    return z[np.abs(z) <= SIGMA_CLIP * robust] if robust > 0 else z[:0]


def calibration_scale(chunks) -> tuple[int, float]:
    """:func:`calibration_z`'s number of kept z and their rms, from z read in chunks: the same numbers
    (to the rounding of the sum) with the memory of a chunk, for z too many to hold (the hidden
    observations of a long series filled by time blocks, 8 % of its observations).

    Parameters
    ----------
    chunks : callable
        ``chunks()``: a new iterator over the z, as float arrays (any shape), each time it is called
        (the z are read a few times: their count, their median by selection, the kept ones).

    Returns
    -------
    n_kept : int
    rms : float
        ``sqrt(mean(kept ** 2))``; NaN when none is kept.
    """
    def finite():
        for c in chunks():
            a = np.abs(np.asarray(c, dtype=np.float64).ravel())
            yield a[np.isfinite(a)]

    n = sum(a.size for a in finite())
    if not n:
        return 0, float("nan")
    if n % 2:
        median = _kth_smallest(finite, n // 2)
    else:  # as np.median: the mean of the two middle values
        median = (_kth_smallest(finite, n // 2 - 1) + _kth_smallest(finite, n // 2)) / 2
    limit = SIGMA_CLIP * 1.4826 * median
    if not limit > 0:
        return 0, float("nan")
    n_kept, total = 0, 0.0
    for a in finite():
        a = a[a <= limit]
        n_kept += a.size
        total += float(np.sum(a * a))
    return n_kept, (float(np.sqrt(total / n_kept)) if n_kept else float("nan"))


def _kth_smallest(finite, k: int, limit: int = 1 << 20) -> float:
    """The ``k``-th smallest (from 0) of the non-negative floats ``finite()`` yields, exactly: their
    float64 bit patterns order them, so a radix selection by 16 bits a pass narrows them to one bin,
    whose values (at most ``limit``, or all of a bin of one value) are partitioned in memory."""
    shift, prefix = 64, None
    while True:
        shift -= 16
        counts = np.zeros(1 << 16, np.int64)
        for a in finite():
            u = a.view(np.uint64)
            if prefix is not None:
                u = u[(u >> np.uint64(shift + 16)) == prefix]
            counts += np.bincount(((u >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.intp), minlength=1 << 16)
        cum = np.cumsum(counts)
        b = int(np.searchsorted(cum, k, side="right"))
        k -= int(cum[b - 1]) if b else 0
        prefix = np.uint64((int(prefix or 0) << 16) | b)
        if counts[b] <= limit or shift == 0:
            vals = np.concatenate([a[(a.view(np.uint64) >> np.uint64(shift)) == prefix] for a in finite()])
            return float(np.partition(vals, k)[k])


def check_units_shift(label: str, total: float, n: int, scale: float) -> None:
    """Refuse a field whose observations lie, on average, more than ``_SHIFT_LIMIT`` fitted scales from the
    fitted pixel means: in other units than the field fitted, not said (kelvin against degC).

    Parameters
    ----------
    label : names the field in the message (its file and variable).
    total, n : the sum of the observations' departures from the fitted means, in fitted scales, and
        their number (:attr:`Interpolator.shift_`, summed over the time blocks of a chunked fill).
    scale : the fitted scale, to say the mean departure in the field's units.

    Raises
    ------
    InputError
    """
    from .neural import _SHIFT_LIMIT

    shift = total / max(n, 1)
    if abs(shift) > _SHIFT_LIMIT:
        raise InputError(f"{label}: its observations are {shift * scale:+.4g} from the fitted pixel means on average "
                         f"({abs(shift):.0f} fitted scales: other units?); transform() fills a field in the units of "
                         "the field fitted")


#: a sea (or air) temperature in degC lies below it, one in kelvin above it: a field whose units say one
#: while the median of its values lies on the other side is mislabelled (289 "degC", 15 "K")
_DEGC_OR_KELVIN = 100.0
#: the same for degrees Fahrenheit: the hottest sea (95 degF) and air (135 degF) lie below it, the
#: coldest air in kelvin (184 K) above it
_DEGF_OR_KELVIN = 150.0
#: a name, standard_name or long_name with one of these is a departure (an anomaly, a difference, an
#: error) in kelvin: near 0 with its units right (GHRSST's dt_analysis, sses_bias, sses_standard_deviation),
#: not tested against 100 K
_DEPARTURE_WORDS = ("anom", "diff", "deviation", "departure", "delta", "minus", "bias", "error", "uncertaint",
                    "std", "variance", "increment", "dt_", "gradient", "trend", "warming", "spread", "sigma",
                    "amplitude", "range", "noise", "correction", "adjustment", "cool_skin", "warm_layer", "nonlinear",
                    "residual")
#: a name with one of these words (whole, between non-letters: ``sst_sd``, ``ssta``) is a departure too:
#: short abbreviations (spreads, errors, NEdT) that would match inside other words as substrings
_DEPARTURE_TOKENS = ("sd", "se", "rms", "rmsd", "rmse", "ssta", "sta", "nedt", "err", "unc", "mad", "iqr", "amp")
#: a field in kelvin whose median is below this is a departure (an anomaly, an uncertainty, a spread:
#: GHRSST's are 0.1 to 2 K) whatever its name, and not refused: a degC field mislabelled kelvin is caught
#: above it (most of the ocean), missed in polar seas (-1.9 to 5 degC) rather than refusing valid data
_KELVIN_FLOOR = 5.0
#: standard_names of a temperature itself (CF): in kelvin above 100, whatever the sea (271 K freezing);
#: their departures and errors have names of their own (``sea_surface_temperature_anomaly``, or a modifier
#: ``standard_error``), so a field named so in kelvin with values below 100 is in degC (a polar sea)
_ABSOLUTE_NAMES = ("sea_surface_temperature", "sea_water_temperature", "sea_surface_foundation_temperature",
                   "sea_surface_skin_temperature", "sea_surface_subskin_temperature", "sea_water_potential_temperature",
                   "sea_water_conservative_temperature", "air_temperature", "surface_temperature",
                   "sea_ice_surface_temperature", "sea_surface_bulk_temperature")


def pixel_means(values: np.ndarray, counts: np.ndarray | None = None, unit: str | None = None) -> np.ndarray:
    """Each pixel's temporal mean of its observations (float64 (lat, lon), NaN where never observed)
    of ``values`` (time, lat, lon; a (lat, lon) map: itself), summed a few steps at a time (no copy
    of the field): what :func:`check_units_values` takes, as the chunked fill's statistics pass gives it.
    ``counts`` (int64 (time, 5)), when given, gets :func:`step_counts` (for ``unit``) in the same pass."""
    if values.ndim == 2:
        return np.asarray(values, dtype=np.float64)
    total, count = np.zeros(values.shape[1:]), np.zeros(values.shape[1:])
    for i in range(0, values.shape[0], 16):
        block = values[i:i + 16]
        seen = np.isfinite(block)
        total += np.where(seen, block, 0).sum(axis=0, dtype=np.float64)
        count += seen.sum(axis=0)
        if counts is not None:
            counts[i:i + 16] = _count_steps(block, seen, unit)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _is_departure(da) -> bool:
    """Whether ``da``'s name, standard_name or long_name says it is a departure (an anomaly, a
    difference, an error or a spread): one of :data:`_DEPARTURE_WORDS` in it, or of
    :data:`_DEPARTURE_TOKENS` as a word of it."""
    import re

    names = [str(n).lower() for n in (getattr(da, "name", None),
                                       *(getattr(da, "attrs", {}).get(k) for k in ("standard_name", "long_name"))) if n]
    return any(w in n for n in names for w in _DEPARTURE_WORDS) or any(
        t in _DEPARTURE_TOKENS for n in names for t in re.split(r"[^a-z]+", n))


def check_units_values(label: str, da, units, means) -> None:
    """Refuse a temperature whose values contradict its units: the median over the pixels of their
    temporal means (``means``) above 100 in degC (kelvin values), or from 5 to 100 in kelvin (degC
    values; not a departure, :func:`_is_departure`; below :data:`_KELVIN_FLOOR` a departure's
    values, whatever its name, unless its standard_name is a temperature itself,
    :data:`_ABSOLUTE_NAMES`: a polar sea in degC), or above 150 in degrees Fahrenheit (kelvin
    values; a field in degF is filled in degF, as any unit: the fill is linear). The units' spellings
    are read by :func:`~oceandl.units._unit` ("C", "deg C", "Celsius", "K", "degF"...).
    Other units, or none (:func:`check_units_shift` tests those against a fit), are not tested
    here. A refusal of valid data costs more than a miss: a spread or an uncertainty in kelvin
    named ``sst_sd`` or ``ssta`` was refused as degC.

    A 289 K field said to be in degC was filled by a degC fit as degC, without a word (its fill's
    mean 175); a degC field said to be in kelvin was converted by 273 degrees.

    Parameters
    ----------
    label : names the field (its file and variable) or the covariate in the message.
    da : the variable (a DataArray, or anything with ``name`` and ``attrs``): its name in the fix said,
        and its names tell a departure.
    units : its ``units`` attribute (None: not tested).
    means : array-like (lat, lon), each pixel's temporal mean of its observations (NaN: never
        observed): :func:`pixel_means` in memory, the statistics pass's sums under ``--chunks``.

    Raises
    ------
    InputError
    """
    from .neural import _unit

    unit = _unit(units)
    name = getattr(da, "name", None) or "VAR"
    if unit not in ("degC", "K", "degF"):
        return
    s = np.asarray(means, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if not s.size:
        return
    median = float(np.median(s))
    _refuse_units(label, da, units, unit, median, name)


def check_units_field(label: str, da, values: np.ndarray) -> None:
    """:func:`check_units_values` on a field read in memory (``values`` (time, lat, lon) of ``da``), then
    on each of its files when it is a series of several (:func:`check_units_files`: one kelvin file
    among degC ones)."""
    from .neural import _unit

    units = da.attrs.get("units")
    spans = getattr(da, "encoding", {}).get("file_spans")
    many = bool(spans) and len(spans) > 1 and values.ndim == 3 and _unit(units) in ("degC", "K", "degF")
    # each step's numbers counted in the pixel means' pass (the values are read once)
    counts = np.zeros((values.shape[0], 5), np.int64) if many else None
    check_units_values(label, da, units, pixel_means(values, counts, _unit(units)))
    if many:
        check_units_files(label, da, units, counts, spans)


def _absolute_temperature(da) -> bool:
    """Whether ``da``'s standard_name is a temperature itself (``sea_surface_temperature``...: CF's
    names of a departure or an error say so, :data:`_ABSOLUTE_NAMES`) and none of its names a departure."""
    sname = str(getattr(da, "attrs", {}).get("standard_name") or "").strip().lower()
    return sname in _ABSOLUTE_NAMES and not _is_departure(da)


def _refuse_units(label: str, da, units, unit: str, median: float, name: str, path=None) -> None:
    """The test of :func:`check_units_values` on the ``median`` of a field (or of its file ``path``) in ``unit``."""
    if unit == "degC" and median > _DEGC_OR_KELVIN:
        looks, right, side, also = "kelvin", "K", f"above {_DEGC_OR_KELVIN:g}", ""
    elif unit == "degF" and median > _DEGF_OR_KELVIN:
        looks, right, side, also = "kelvin", "K", f"above {_DEGF_OR_KELVIN:g}", ""
    elif unit == "K" and _KELVIN_FLOOR <= median < _DEGC_OR_KELVIN and not _is_departure(da):
        looks, right, side = "degC", "degC", f"below {_DEGC_OR_KELVIN:g}"
        also = "; a departure in kelvin (an anomaly) is taken as one when its name, standard_name or long_name says so"
    elif unit == "K" and median < _DEGC_OR_KELVIN and _absolute_temperature(da):
        # a polar degC field (-1.9 to 5) said to be kelvin is below the floor, as departures are: its
        # standard_name says a temperature, which in kelvin is above 100 (sea water freezes at 271 K)
        sname = da.attrs["standard_name"]
        looks, right = "degC", "degC"
        side = f"below {_DEGC_OR_KELVIN:g}, while its standard_name {sname!r} is a temperature, not a departure"
        also = "; an anomaly or an error keeps a standard_name of its own (sea_surface_temperature_anomaly...)"
    else:
        return
    raise InputError(f"{label}: its units say {str(units)!r} but its values look like {looks} (median {median:.4g}, "
                     f"{side}): fix its units attribute (ncatted -a units,{name},o,c,{right} {path or 'FILE'}; "
                     f"in Python da.attrs['units'] = {right!r}){also}")


def step_counts(values: np.ndarray, unit: str | None = None) -> np.ndarray:
    """Per time step of ``values`` (time, lat, lon), the numbers of its observations: all of them, those
    below :data:`_KELVIN_FLOOR`, those below :data:`_DEGC_OR_KELVIN`, those above it, those above
    :data:`_DEGF_OR_KELVIN` (int64, (time, 5)): what :func:`check_units_files` tells each file's
    median's side from, without sorting anything. With ``unit`` (``_unit``'s), only the numbers its
    test reads are counted (the others 0)."""
    out = np.zeros((values.shape[0], 5), np.int64)
    for i in range(0, values.shape[0], 16):  # a few steps at a time: no (time, lat, lon) boolean copy
        block = values[i:i + 16]
        out[i:i + 16] = _count_steps(block, np.isfinite(block), unit)
    return out


def _count_steps(block: np.ndarray, seen: np.ndarray, unit: str | None) -> np.ndarray:
    """:func:`step_counts` of a few steps, ``seen`` their finite values."""
    v = block.reshape(block.shape[0], -1)
    out = np.zeros((v.shape[0], 5), np.int64)
    out[:, 0] = np.count_nonzero(seen.reshape(v.shape), axis=1)
    want = {"degC": (3,), "K": (1, 2), "degF": (4,)}.get(unit, (1, 2, 3, 4))
    limits = {1: (np.less, _KELVIN_FLOOR), 2: (np.less, _DEGC_OR_KELVIN), 3: (np.greater, _DEGC_OR_KELVIN),
              4: (np.greater, _DEGF_OR_KELVIN)}
    with np.errstate(invalid="ignore"):
        for k in want:
            op, limit = limits[k]
            out[:, k] = np.count_nonzero(op(v, limit), axis=1)
    return out


def check_units_files(label: str, da, units, counts: np.ndarray, spans=None) -> None:
    """:func:`check_units_values` on each file of a many-file series on its own, naming the file: one
    kelvin file labelled degC among a year of degC files moved the series' median by nothing, and was
    filled as degC (288 taken for 288 degC). A file's median is that of its observations (its pixels'
    means, for a file of one step), told from ``counts`` (:func:`step_counts` of the series); only a
    file refused has its values read again, for the median the message says.

    Parameters
    ----------
    label : names the series in the message.
    da : the series (time, lat, lon), lazy or not, with a coordinate of dates along its time dim
        (named ``time`` or not, :func:`canonical_dims`).
    units : its ``units`` attribute.
    counts : (time, 5) :func:`step_counts` of its values, as read for the fill.
    spans : the files' :class:`~oceandl.io.FileSpan` (default ``da.encoding["file_spans"]``, as
        :func:`~oceandl.io.open_files` records them); fewer than two files: nothing tested.

    Raises
    ------
    InputError
    """
    from .neural import _unit

    spans = spans if spans is not None else getattr(da, "encoding", {}).get("file_spans")
    unit = _unit(units)
    if not spans or len(spans) < 2 or unit not in ("degC", "K", "degF"):
        return
    # the time dim by its role, not its name: a series whose time was renamed ('t', 'date') skipped
    # every file's test (one kelvin file among degC ones filled as degC)
    try:
        tdim = canonical_dims(da)[0] if getattr(da, "ndim", 0) == 3 else "time"
    except InputError:
        return  # refused where the field is read; nothing to tell the files apart here
    if tdim not in getattr(da, "coords", {}):
        return  # no dates: the files' spans cannot be found in it
    times = np.asarray(da[tdim].values)
    counts = np.asarray(counts)
    for span in spans:
        idx = np.flatnonzero((times >= span.first) & (times <= span.last))
        if not idx.size:
            continue  # a file cut away by --dates
        n, below_floor, below, above, above_f = counts[idx].sum(axis=0)
        if not n:
            continue
        # the side of the median from the counts: above 100 when more than half are, and so on
        half = n / 2
        suspect = (unit == "degC" and above > half) or (unit == "degF" and above_f > half) or (
            unit == "K" and below > half and (
            below_floor <= half and not _is_departure(da) or _absolute_temperature(da)))
        if suspect:
            v = np.asarray(da.isel({tdim: idx}).values, dtype=np.float64)
            median = float(np.nanmedian(v))
            name = getattr(da, "name", None) or "VAR"
            _refuse_units(f"{label}: file {span.path}", da, units, unit, median, name, span.path)


def sigma_attrs(name, units=None, standard_name=None) -> dict:
    """Attrs of the ``sigma`` variable of a filled field ``name`` (with ``units`` when known).

    A field with a ``standard_name`` gives sigma that name with CF's ``standard_error`` modifier
    (``sea_surface_temperature standard_error``, CF Appendix C): sigma had none, so CF tools could
    not tell it was the field's uncertainty. A name that has a modifier already gives none.
    """
    sname = str(standard_name).strip() if standard_name is not None else ""
    return {"long_name": f"estimated error standard deviation of {name}", "comment": SIGMA_COMMENT,
            **({"standard_name": f"{sname} standard_error"} if sname and " " not in sname else {}),
            **({"units": units} if units is not None else {})}


def _fit_box_hint(old: xr.DataArray) -> str:
    """For a field on a larger grid than the fit's (a fit of a box filling a global file): the fit's
    box, edges half a step beyond its outer points, as ``--bbox`` takes it ('' without coordinates)."""
    from oceandl.io import _step

    edges = []
    for d in old.dims[1:3]:
        if d not in old.coords or old[d].dtype.kind not in "fiu" or old.sizes[d] < 1:
            return ""
        v = np.sort(np.asarray(old[d].values, dtype=float))
        if d == old.dims[2]:  # longitudes: the box runs east from the point after the widest gap (the dateline)
            v = np.sort(np.mod(v, 360.0))
            j = int(np.argmax(np.diff(np.append(v, v[0] + 360.0))))
            lo, hi = v[(j + 1) % v.size], v[j]
        else:
            lo, hi = v[0], v[-1]
        half = _step(v) / 2
        lo, hi = lo - half, hi + half
        if d == old.dims[2]:  # in -180..180, as --bbox writes a box (W > E across the dateline)
            lo, hi = ((lo + 180.0) % 360.0) - 180.0, ((hi + 180.0) % 360.0) - 180.0
        edges.append((lo, hi))
    (s, n), (w, e) = edges
    return (f": the fit's is a box (latitudes {s:.6g} to {n:.6g}, longitudes {w:.6g} to {e:.6g}), cut the field to it "
            f"first (oceandl interpolate --bbox={w:.6g},{s:.6g},{e:.6g},{n:.6g})")


def _axis_order(new: xr.DataArray, old: xr.DataArray, axis: int, label: str):
    """``(to_fit, to_input)`` index arrays that put axis ``axis`` (1: lat, 2: lon) of ``new`` in the
    order of ``old``'s and back (None, None when it already is), matched by coordinate value
    (longitudes in degrees modulo 360).

    Raises
    ------
    InputError
        Another number of points, or other coordinate values.
    """
    dn, do = new.dims[axis], old.dims[axis]
    what = ("latitude", "longitude")[axis - 1]
    if new.sizes[dn] != old.sizes[do]:
        # a smaller grid never gets here (transform() cuts the fit to a block of its grid, or refuses it); a fit
        # of a box given a larger (global) file is told which box to cut it to
        hint = (_fit_box_hint(old) if new.sizes[dn] > old.sizes[do] else "") or " (regrid it first)"
        raise InputError(f"{label}: {new.sizes[dn]} {what}s ({dn!r}), the field fitted has {old.sizes[do]}; "
                         f"transform() fills a field on the fitted grid{hint}")
    if dn not in new.coords or do not in old.coords:
        return None, None  # no coordinate to match: taken position by position
    from oceandl.io import in_degrees

    a, b = np.asarray(new[dn].values), np.asarray(old[do].values)
    shown = a.tolist(), b.tolist()  # the values as given, for the message
    if axis == 2 and in_degrees(new[dn].attrs) and in_degrees(old[do].attrs) and a.dtype.kind in "fiu" \
            and b.dtype.kind in "fiu":
        # 350 E is -10 E: a field in the other convention (0..360 against -180..180) is on the
        # fitted grid (refused as another grid, though `oceandl interpolate` filled the same files)
        a, b = np.mod(a, 360.0), np.mod(b, 360.0)
    if not (np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number)):
        same = lambda u, v: bool(np.array_equal(u, v))  # noqa: E731
    else:
        tol = 1e-6 * max(1.0, float(np.nanmax(np.abs(b))) if b.size else 1.0)
        same = lambda u, v: bool(np.allclose(u, v, rtol=0, atol=tol))  # noqa: E731
    if same(a, b):
        return None, None
    on, oo = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
    if not same(a[on], b[oo]):
        bad = int(np.argmax(~np.isclose(a, b))) if a.dtype.kind in "fiu" and b.dtype.kind in "fiu" else 0
        raise InputError(f"{label}: its {what}s ({dn!r}) are not the fitted field's (point {bad}: {shown[0][bad]!r} "
                         f"against {shown[1][bad]!r}); transform() fills a field on the fitted grid (regrid it first)")
    to_fit = np.empty_like(on)
    to_fit[oo] = on  # new[to_fit] is in old's order
    to_input = np.empty_like(to_fit)
    to_input[to_fit] = np.arange(len(to_fit))
    return to_fit, to_input


#: coordinates of a box and of the fit's grid closer than this (degrees) are the same point (as a checkpoint's box)
_BLOCK_TOL = 1e-4


def _distance_to_grid(ref: np.ndarray, c: np.ndarray, wrap: bool) -> np.ndarray:
    """The distance of each value of ``c`` to the nearest of ``ref`` (modulo 360 when ``wrap``)."""
    if wrap:
        ref, c = np.mod(ref, 360.0), np.mod(c, 360.0)
    s = np.sort(ref)
    j = np.clip(np.searchsorted(s, c), 1, max(s.size - 1, 1)) if s.size > 1 else np.zeros(c.size, np.int64)
    d = np.minimum(np.abs(s[j - 1] - c), np.abs(s[j] - c)) if s.size > 1 else np.abs(s[0] - c)
    if wrap:  # across 0/360
        d = np.minimum(d, np.minimum(np.abs(s[0] + 360.0 - c), np.abs(c + 360.0 - s[-1])))
    return d


def grid_block(fitted: xr.DataArray, da: xr.DataArray) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """Where the grid of ``da`` (time, lat, lon) lies in the grid of ``fitted`` (time, lat, lon): a
    block of consecutive rows and columns of it.

    Matched by coordinate value to 1e-4 degree, longitudes in either convention (modulo 360); a
    block may run across the seam of a fit's longitudes that go round the globe.

    Returns
    -------
    (block, problem)
        ``block``: for lat and lon, the index into ``fitted``'s axis of each of ``da``'s rows and
        columns, in ``da``'s order, and ``problem`` None; or ``block`` None and ``problem`` what is
        wrong, a phrase (a box partly outside the fit's grid, off its points, every other point).
    """
    from oceandl.io import _lon_convention, in_degrees, lon_convention_of

    from .neural import _find_values

    out = []
    for k, ((order, c), dim, what) in enumerate(zip(_clean_grid(da), fitted.dims[1:], ("latitude", "longitude"))):
        idx = fitted.indexes.get(dim)
        if idx is None or not np.issubdtype(idx.dtype, np.number):
            return None, f"the fit's grid has no {what} coordinate to place it by"
        if c is None:
            return None, f"it has no {what} coordinate to place it on the fit's grid by"
        ref = np.asarray(idx, dtype=np.float64)
        wrap = k == 1 and in_degrees(da[da.dims[2]].attrs)
        found = _find_values(ref, c, wrap)
        if found is None:
            d = _distance_to_grid(ref, c, wrap)
            off = d > _BLOCK_TOL
            if not off.any():
                return None, f"two of its {what}s are the same point of the fit's grid"
            clean = _lon_convention(ref) if wrap else ref
            cc = lon_convention_of(c, clean) if wrap else c
            lo, hi = float(clean.min()), float(clean.max())
            outside = (cc < lo - _BLOCK_TOL) | (cc > hi + _BLOCK_TOL)
            if not (off & ~outside).any():
                return None, (f"{int(off.sum())} of its {c.size} {what}s ({float(cc.min()):g} to {float(cc.max()):g}) "
                              f"lie outside the fit's grid ({lo:g} to {hi:g})")
            first = int(np.argmax(off & ~outside))
            return None, (f"its {what}s are not points of the fit's grid ({float(c[first]):g} is {float(d[first]):.3g} "
                          "degrees from the nearest: a shifted or another grid)")
        # consecutive in the fit's clean orientation (cyclic where its longitudes go round the globe)
        rank = np.empty(ref.size, np.int64)
        rank[np.argsort(_lon_convention(ref) if wrap else ref, kind="stable")] = np.arange(ref.size)
        steps = np.diff(rank[found])
        if wrap and ref.size > 2:
            s = np.sort(np.mod(ref, 360.0))
            gaps = np.diff(np.append(s, s[0] + 360.0))
            if np.allclose(gaps, gaps[0], rtol=1e-3):  # round the globe: the last column is next to the first
                steps = np.mod(steps, ref.size)
        if np.any(steps != 1):
            every = f"one in {int(steps[0])} of the points" if steps.size and np.all(steps == steps[0]) \
                and steps[0] > 1 else "scattered points"
            return None, (f"its {what}s are {every} of the fit's grid, not a block of consecutive ones "
                          "(another resolution, or a hole)")
        at = np.empty(c.size, np.int64)
        at[order] = found
        out.append(at)
    return (out[0], out[1]), None


def _take(a: np.ndarray, ys: np.ndarray | None, xs: np.ndarray | None) -> np.ndarray:
    """``a`` (..., lat, lon) with its last two axes taken in the orders ``ys``, ``xs`` (None: as is)."""
    if ys is not None:
        a = a[..., ys, :]
    return a if xs is None else a[..., xs]


def _period_text(da: xr.DataArray) -> str:
    """``"variable 'sst', 365 steps, 2001-01-01 to 2001-12-31"`` (the dates when it has them)."""
    tdim = da.dims[0]
    text = f"{_label(da)}, {da.sizes[tdim]} step{'s' if da.sizes[tdim] != 1 else ''}"
    if tdim in da.coords and da.sizes[tdim]:
        t = da[tdim].values
        if np.issubdtype(t.dtype, np.datetime64):
            first, last = (np.datetime_as_string(v, unit="D") for v in (t.min(), t.max()))
        elif t.dtype == object and hasattr(t[0], "strftime"):  # cftime dates
            first, last = (v.strftime("%Y-%m-%d") for v in (min(t), max(t)))
        else:
            first, last = t.min(), t.max()
        text += f", {tdim} {first} to {last}"
    return text


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _aux_takers() -> list[str]:
    """The registered methods that take auxiliary variables (for a message)."""
    from oceandl.interp import METHODS

    return [k for k, cls in METHODS.items() if cls.takes_aux]


#: dims of CF cell-bounds variables (the vertices of each cell), skipped in an aux Dataset
_BOUNDS_DIMS = frozenset({"nv", "bnds", "bounds", "bound", "nb2", "d2", "nvertex"})


def _aux_items(aux, label: str) -> list[tuple[Any, Any]]:
    """``aux`` as (name, array) pairs, in the order given."""
    if isinstance(aux, xr.DataArray):
        return [(aux.name, aux)]
    if isinstance(aux, xr.Dataset):
        # a file's cell bounds (time_bnds(time, nv), lat_bnds...) are no covariates: aux=ds was refused for them
        bounds = {str(v.attrs.get("bounds", v.encoding.get("bounds", ""))) for v in aux.variables.values()}
        items = [(n, v) for n, v in aux.data_vars.items()
                 if str(n) not in bounds and not any(str(d).lower() in _BOUNDS_DIMS for d in v.dims)]
        if aux.data_vars and not items:  # else no covariate at all, silently
            raise InputError(f"{label}: aux is a Dataset of cell bounds only ({', '.join(map(str, aux.data_vars))}); "
                             "pass the covariates")
        return items
    if isinstance(aux, dict):
        return list(aux.items())
    if isinstance(aux, (list, tuple)):
        for a in aux:
            if isinstance(a, str):  # was "an auxiliary variable has no name", for a name
                raise InputError(f"{label}: aux {a!r} is a name, not a DataArray: pass the variable (ds[{a!r}]), or "
                                 "name it to a Dataset's ds.oceandl.interpolate(aux=...)")
        return [(getattr(a, "name", None), a) for a in aux]
    raise InputError(f"{label}: aux must be a DataArray, a list or dict of DataArrays, or a Dataset; "
                     f"got {type(aux).__name__}")


def _lon_like(a: xr.DataArray, da: xr.DataArray, dim) -> xr.DataArray:
    """``a`` with its longitudes (dim ``dim``) written in ``da``'s convention (-180..180 or 0..360),
    sorted, when it holds other values than ``da`` there: then matched by value, as the rest.

    A covariate in 0..360 (ERA5 winds) for a field in -180..180 (GHRSST) was refused, with advice to
    pass .values, which lines the columns up by position: across Greenwich, 180 degrees apart. The
    CLI read both right (open_field puts every variable in one convention)."""
    from oceandl.io import in_degrees, lon_convention_of
    from oceandl.metrics.interpolation import match_axis

    ia, ir = a.indexes.get(dim), da.indexes.get(dim)
    if (ia is None or ir is None or len(ia) != len(ir) or len(ir) < 2 or not np.issubdtype(ia.dtype, np.number)
            or not np.issubdtype(ir.dtype, np.number) or not in_degrees(a[dim].attrs)
            or not in_degrees(da[dim].attrs) or match_axis(ia, ir) is not None):
        return a
    lon = np.asarray(ia, dtype=np.float64)
    mine = lon_convention_of(lon, np.asarray(ir, dtype=np.float64))
    if np.array_equal(mine, lon):
        return a  # the same convention: another grid, refused as such
    return a.assign_coords({dim: (dim, mine, a[dim].attrs)}).sortby(dim)


def aux_anomaly(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A covariate normalised as the field is: minus its per-pixel temporal mean (its global mean
    where a pixel has fewer than ``_MIN_PIXEL_OBS`` values), over one global rms scale.

    Parameters
    ----------
    values : float ndarray (time, lat, lon), NaN where missing

    Returns
    -------
    anom : float32 ndarray (time, lat, lon)
        The anomaly over ``scale``, 0 where missing.
    mean : float32 ndarray (lat, lon)
    scale : float
        0 when the covariate does not change in time at any pixel (``anom`` is then left unscaled,
        all 0): the caller decides what that means.
    global_mean : float
    """
    seen = np.isfinite(values)
    count = seen.sum(axis=0)
    total = values.sum(axis=0, where=seen, dtype=np.float64)
    gmean = float(total.sum() / count.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count >= _MIN_PIXEL_OBS, total / np.maximum(count, 1), gmean)
    anom = np.zeros(values.shape, np.float32)
    np.subtract(values, mean, out=anom, where=seen, casting="same_kind")  # in float64, stored as float32
    scale = float(np.sqrt(np.square(anom, dtype=np.float64).sum() / count.sum()))
    if scale > 0:
        anom /= np.float32(scale)
    return anom, mean.astype(np.float32), scale, gmean


def static_stats(values: np.ndarray) -> tuple[float, float]:
    """A static covariate's normalisation: the global mean and standard deviation of its (lat, lon)
    map over its finite pixels (NaN, land, left out), in float64. Its per-pixel temporal mean
    (:func:`aux_anomaly`) would be the map itself and its anomaly 0."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return float("nan"), 0.0
    return float(v.mean()), float(v.std())


def check_aux_values(what: str, lo: float, hi: float, has_inf: bool, label: str) -> None:
    """Refuse a covariate with infinities, no value, or one value everywhere (``lo``, ``hi``: its
    finite minimum and maximum, NaN when it has none): :func:`read_aux`'s checks, shared with the
    block-by-block fill (:mod:`oceandl.interp.chunked`), which takes them from a dask pass."""
    if has_inf:
        raise InputError(f"{label}: {what} contains infinite values; mark missing values with NaN")
    if not np.isfinite(lo):
        raise InputError(f"{label}: {what}: all values are NaN")
    if lo == hi:
        raise InputError(f"{label}: {what}: all values are equal ({lo}); it tells the method nothing")


def _static_aux(a, da: xr.DataArray, dims: tuple[str, str, str], what: str, label: str):
    """``a`` as a static covariate broadcast over ``da``'s time dim (float32, no copy), or None when it
    is not one: a (lat, lon) DataArray on ``da``'s spatial dims (in either order), a NumPy array of
    ``da``'s spatial shape, or a DataArray with a time dim of length 1 while the field has more or its one
    day is more than a day from it (:func:`oceandl.io.one_step_is_static`)."""
    t, y, x = dims
    if isinstance(a, xr.DataArray):
        a, _ = _squeeze_levels(a)
        if a.ndim == 3 and t in a.dims and a.sizes[t] == 1 and set(a.dims) == set(dims):
            from oceandl.io import one_step_is_static

            if one_step_is_static(a[t].values if t in a.coords else None,
                                  da[t].values if t in da.coords else None, da.sizes[t]):
                a = a.isel({t: 0}, drop=True)
        if a.ndim != 2:
            return None
        if set(a.dims) != {y, x}:
            raise InputError(f"{label}: {what} has dims {tuple(a.dims)}; a static covariate has the field's "
                             f"({y}, {x}) dims, a covariate in time its {tuple(da.dims)}")
    elif isinstance(a, np.ndarray) or hasattr(a, "__array_function__"):
        space = tuple(d for d in da.dims if d != t)
        if np.ndim(a) != 2:
            return None
        if np.shape(a) != tuple(da.sizes[d] for d in space):
            raise InputError(f"{label}: {what} has shape {np.shape(a)}, the field's grid "
                             f"{tuple(da.sizes[d] for d in space)} ({', '.join(space)})")
        a = xr.DataArray(a, dims=space, coords={d: da[d] for d in space if d in da.coords})
    else:
        return None
    a = cf_masked(a, what)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{label}: {what}: values must be real numbers, got dtype {a.dtype}")
    # float32 before the broadcast: one (lat, lon) map in memory, seen on every day
    a = a.astype(np.float32).expand_dims({t: da.sizes[t]})
    return a.assign_coords({t: da[t]}) if t in da.coords else a


def aux_arrays(aux, da: xr.DataArray, dims: tuple[str, str, str],
               label: str) -> list[tuple[str, xr.DataArray, str | None, bool]]:
    """Auxiliary variables checked against the field's dims, sizes and coordinates, not read.

    The part of :func:`read_aux` that needs no values: a dask-backed covariate stays lazy (the
    block-by-block fill reads it block by block). Returns ``(name, array in dims order, units,
    static)``: a static covariate (a (lat, lon) one, or one with a single time step while the field
    has more) is broadcast over the field's days, and ``static`` True.

    Raises
    ------
    InputError
        Unnamed or repeated names, the field itself, other dims, sizes or coordinates, not real
        numbers.
    """
    if aux is None:
        return []
    out: list[tuple[str, xr.DataArray, str | None, bool]] = []
    for name, a in _aux_items(aux, label):
        if name is None or not str(name).strip():
            raise InputError(f"{label}: an auxiliary variable has no name; name it (da.rename('wind')) or pass "
                             "aux as a dict {name: array}")
        name = str(name)
        what = f"aux {name!r}"
        if any(name == n for n, *_ in out):
            raise InputError(f"{label}: {what} is given twice")
        if da.name is not None and name == str(da.name):
            raise InputError(f"{label}: {what} is the field being filled; give other variables as aux")
        units = a.attrs.get("units") if isinstance(a, xr.DataArray) else None
        static = _static_aux(a, da, dims, what, label)
        if static is not None:
            a = static
        elif isinstance(a, xr.DataArray):
            a, _ = _squeeze_levels(a)
        elif isinstance(a, np.ndarray) or hasattr(a, "__array_function__"):
            if np.shape(a) != tuple(da.shape):
                raise InputError(f"{label}: {what} has shape {np.shape(a)}, the field {tuple(da.shape)}")
            a = xr.DataArray(a, dims=da.dims, coords={d: da[d] for d in da.dims if d in da.coords})
        else:
            raise InputError(f"{label}: {what} must be a DataArray, got {type(a).__name__}")
        if static is None:
            a = cf_masked(a, what)
        if set(a.dims) != set(da.dims):
            raise InputError(f"{label}: {what} has dims {tuple(a.dims)}, the field {tuple(da.dims)} (an auxiliary "
                             "variable is given on the field's days and grid, or as a static (lat, lon) map)")
        for d in da.dims:
            if a.sizes[d] != da.sizes[d]:
                raise InputError(f"{label}: {what} has {a.sizes[d]} points along {d!r}, the field "
                                 f"{da.sizes[d]} (an auxiliary variable is given on the field's days and grid: "
                                 "oceandl.io.to_field_grid(cov, field) puts it there)")
        from oceandl.metrics.interpolation import _reorder_like

        a = _lon_like(a, da, dims[2])
        a = _reorder_like(a, da, name=what, where=label, other="the field")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise InputError(f"{label}: {what}: values must be real numbers, got dtype {a.dtype}")
        units = a.attrs.get("units", units)
        out.append((name, a.transpose(*dims), None if units is None else str(units), static is not None))
    return out


def read_aux(aux, da: xr.DataArray, dims: tuple[str, str, str], label: str,
             check_values: bool = True) -> tuple[list[str], list[np.ndarray], list[str | None], list[bool]]:
    """Auxiliary variables (covariates) checked and read on the field's grid.

    Parameters
    ----------
    aux : DataArray, list or dict of DataArrays, Dataset, or None
        Each a named (time, lat, lon) DataArray on ``da``'s dims (a size-1 level dropped, as for
        the field), its coordinates ``da``'s (in any order: matched by value); a dict names them
        (its values may then be arrays of ``da``'s shape and dim order); of a Dataset, each data
        variable but the CF cell bounds (``time_bnds(time, nv)``...). NaN marks missing values
        (and CF fill values, as :func:`cf_masked` decodes them). A static covariate (bathymetry, a
        distance to the coast) is a (lat, lon) one on ``da``'s spatial dims (an array: of its
        spatial shape), or one with a time dim of length 1: it is broadcast over the days.
    da : DataArray
        The field, as given; ``dims`` its (time, lat, lon) dims.
    check_values : refuse infinities, all-NaN and constant covariates, and temperatures whose values
        contradict their units (:func:`check_units_values`) (False: the caller checked them on the
        whole cube, as the blocks of :mod:`oceandl.interp.chunked` are).

    Returns
    -------
    names : list of str
    values : list of float32 ndarray (time, lat, lon)
        In ``dims`` order, NaN where missing (a static one: a read-only broadcast of its map).
    units : list of str or None
    static : list of bool

    Raises
    ------
    InputError
        Unnamed or repeated names, the field itself, other dims, sizes or coordinates, not real
        numbers, infinities, all NaN, or constant; degC values said to be kelvin, or the reverse.
    """
    names: list[str] = []
    values: list[np.ndarray] = []
    units: list[str | None] = []
    statics: list[bool] = []
    for name, a, unit, static in aux_arrays(aux, da, dims, label):
        if static:  # one map, seen on every day: read once, broadcast without a copy
            v2 = np.asarray(a.isel({dims[0]: 0}).values, dtype=np.float32)
            v = np.broadcast_to(v2[None], a.shape)
        else:
            v = v2 = np.asarray(a.values, dtype=np.float32)
        if check_values:
            finite = v2[np.isfinite(v2)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
            check_aux_values(f"aux {name!r}", lo, hi, bool(np.isinf(v2).any()), label)
            check_units_values(f"{label}: aux {name!r}", a, unit, pixel_means(v2))
        names.append(name)
        values.append(v)
        units.append(unit)
        statics.append(static)
    return names, values, units, statics


#: a fitted period's covariate with values on fewer of its days than this share is warned of
#: (:func:`warn_partial_fit_aux`); at 75 % and more the fill was within 0.02 of that with it on every day
#: (and better than without it), at 50 % and less up to 0.47 worse than without it
PARTIAL_AUX_SHARE = 0.75


#: how the command line names each fitted-period covariate (aux name -> its option and entry), set around a
#: fill by :func:`fit_aux_words`; unset from Python, whose messages name the keyword arguments
_FIT_AUX_WORDS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("oceandl_fit_aux_words",
                                                                                         default=None)


@contextlib.contextmanager
def fit_aux_words(words: Mapping[str, str]) -> Iterator[None]:
    """Within the block, :func:`warn_partial_fit_aux` names each covariate as ``words`` do (aux name ->
    ``"--fit-aux FILE:VAR"``, the command line's words), not by the keyword arguments: `oceandl
    interpolate --fit-aux FILE:VAR` was told of ``fit_on: aux 'VAR' ... (fit_aux, --fit-aux)``."""
    token = _FIT_AUX_WORDS.set(dict(words))
    try:
        yield
    finally:
        _FIT_AUX_WORDS.reset(token)


def warn_partial_fit_aux(model: "Interpolator", label: str = "fit_on") -> None:
    """Warn, in one line each, of the covariates of ``model``'s fit (``fit(da, aux=...)``, the fitted
    period's: ``interpolate(fit_on=, fit_aux=)``, ``--fit-aux``) with values on fewer than
    :data:`PARTIAL_AUX_SHARE` of the fitted days. A multivariate DINEOF fits its joint modes with
    the covariate missing on the other days (its gaps iterated on, as any gap), and the fill of
    another period with it can then be worse than without it. A static one is never partial.
    Each is named ``{label}: aux 'VAR'`` (the keyword arguments), or as :func:`fit_aux_words` says
    around the call (the command line's ``--fit-aux FILE:VAR``).

    Measured (synthetic 90 x 32 x 32 cube, DINEOF fitted on days 1-60 with ``sst_mw`` on part of
    them, days 61-90 filled with theirs; gap RMSE against the truth, seeds 0 / 1): 1.321 / 1.253
    without the covariate, 1.255 / 1.185 with it on all 60 days; on the first or last 25 % of them
    1.401 or 1.764 / 1.721 or 1.281, 50 % 1.281 or 1.311 / 1.200 or 1.568, 75 % 1.257 or 1.265 /
    1.186 or 1.178, 90 % 1.254 or 1.262 / 1.182 or 1.170; on days drawn at random less harm (25 %:
    1.306 / 1.216). Neither fitting on the covered days only (25 / 50 / 75 %, first days, seed 0:
    1.738 / 1.562 / 1.300) nor an ``aux_weight`` of the share (1.320 / 1.279 / 1.381, and 1.568 at
    50 % last) was a better default; nor is the covariate's mean over the covered days the cause
    (today's shifted by its bias to the whole period's: 1.790 for 1.764)."""
    n_days = int(model.values_.shape[0])
    words = _FIT_AUX_WORDS.get() or {}
    for name, a, static in zip(model.aux_names_ or (), model.aux_ or (), model.aux_static_ or ()):
        if static:
            continue
        seen = int(np.isfinite(a).any(axis=(1, 2)).sum())
        if seen < PARTIAL_AUX_SHARE * n_days:
            # the command line's option and FILE:VAR (fit_aux_words), as its other --fit-aux messages; else
            # the keyword arguments
            head = (f"{words[name]}: the fitted period's covariate" if name in words
                    else f"{label}: aux {name!r}, the fitted period's covariate (fit_aux),")
            warn(f"{head} has values on {seen} of its {n_days} days ({seen / n_days:.0%}): the joint modes are "
                 "fitted without it on the others, "
                 "and the fill with it can be worse than without it (synthetic cube, fit on 60 days: gap RMSE 1.76 "
                 "with it on their last quarter, 1.32 without it, 1.26 with it on all): give it over the whole "
                 "fitted period, or fill without it", UserWarning)


def aux_naming_hint(missing: list[str], extra: list[str] = ()) -> str:
    """How to give covariates under the names a model knows them by, for its refusals: one given
    under another name (next year's file calls ``sst_mw`` ``analysed_sst``) is mapped by name, never
    guessed at (the truth ``sst_true`` is in the same units as ``sst_mw``)."""
    if not missing:
        return ""
    n = str(missing[0])
    v = str(extra[0]) if len(extra) == 1 and len(missing) == 1 else "VAR"
    return f" (to read {n!r} from a variable named otherwise: --aux {n}={v} or {n}=FILE:{v}; aux={{{n!r}: da}})"


def refuse_static_aux(method: str, static: list[str], label: str) -> None:
    """Refuse static covariates ``static`` (names) for ``method`` (DINEOF): a (lat, lon) map is the
    same every day, its temporal anomaly is 0, and it adds nothing to the modes."""
    if static:
        from . import METHODS

        takers = ", ".join(k for k, c in METHODS.items() if c.takes_aux and c.takes_static_aux)
        # a day's covariate given for another day is taken as such a map (io.one_step_is_static): say so
        raise InputError(f"{label}: method {method!r}: aux {static[0]!r} is static (a (lat, lon) map, the same every "
                         f"day): its temporal anomaly is 0 and adds nothing to multivariate DINEOF's modes; the "
                         f"neural methods take it as an input channel ({takers}). A single time step beside a field "
                         "of several, or more than a day from the field's one, is such a map: give a covariate "
                         "that changes in time on the field's days")


def check_mask_orientation(n_land: int, n_sea: int, label: str) -> None:
    """Refuse a mask with more observations on its land than on its ocean: spurious retrievals are a
    few; most of the field on 'land' is a mask upside down."""
    if n_land > n_sea:
        raise InputError(f"{label}: more observations on the mask's land ({n_land}) than on its ocean ({n_sea}); "
                         "is the mask's convention inverted (True/1 = ocean)?")


def _drop_land(values: np.ndarray, observed: np.ndarray, sea: np.ndarray,
               label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The observations on the mask's land dropped (spurious retrievals over land, lakes, the coast).

    Parameters
    ----------
    values : float ndarray (time, lat, lon); observed : its bool finite mask; sea : bool (lat, lon)

    Returns
    -------
    values : a copy with NaN on land where there were observations (``values`` itself when none)
    observed : ``observed & sea``
    land_obs : bool (time, lat, lon), the observations dropped, or None when there were none

    Raises
    ------
    InputError
        If fewer observations are left over the mask's ocean than fall on its land (none included).
    """
    land_obs = observed & ~sea[None]
    if not land_obs.any():
        return values, observed, None
    observed = observed & ~land_obs
    check_mask_orientation(int(land_obs.sum()), int(observed.sum()), label)
    values = values.copy()
    values[land_obs] = np.nan
    return values, observed, land_obs


def _nearest_mean(mean: np.ndarray, ocean: np.ndarray, sea: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel means over the whole ``sea`` of a mask: a pixel never observed takes the mean of the
    nearest observed one (grid distance). Its anomaly is then the network's estimate from its
    neighbours, around a mean close to theirs (the global mean stood 4 degC off across a basin).

    Parameters
    ----------
    mean : float64 (lat, lon), NaN off ``ocean``; ocean : bool (lat, lon), the observed pixels;
    sea : bool (lat, lon), the mask's ocean

    Returns
    -------
    mean : float64 (lat, lon), finite on ``sea``, NaN elsewhere
    ocean : ``sea``
    """
    from scipy.ndimage import distance_transform_edt

    have = ocean & sea
    idx = distance_transform_edt(~have, return_distances=False, return_indices=True)
    out = mean[idx[0], idx[1]]
    out[~sea] = np.nan
    return out, sea.copy()


def rare_centre(mean: np.ndarray, count: np.ndarray, ocean: np.ndarray,
                order: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``mean`` with each ``ocean`` pixel seen fewer than ``_MIN_PIXEL_OBS`` times centred on its
    neighbours' means: those of the pixels seen at least ``_MIN_PIXEL_OBS`` times in the smallest
    square window of 3, 5, 9, 17, 33 or 65 px that holds one (its own ``mean``, the global mean, beyond).

    The centre of DINEOF's and EOF's anomalies, in memory and in every block of interpolate_chunked
    (one function: one block over the whole cube stays the in-memory fill). The global mean put a pixel
    seen once at a domain's cold edge degrees off: gap RMSE there 5.0 (DINEOF) and 6.9 degC (EOF) on
    ``synthetic_sst(n_time=24, ny=12, nx=12, cloud_cover=0.8, seed=1)``, 0.8-1.1 with this centre.

    Parameters
    ----------
    mean : float64 (lat, lon), the pixel means (any value where ``count < _MIN_PIXEL_OBS``)
    count : int (lat, lon), observations per pixel
    ocean : bool (lat, lon), the pixels to centre (others keep ``mean``)
    order : (iy, ix) index arrays putting the grid in the clean orientation (:func:`clean_axes`), where
        neighbours in the array are neighbours on the earth (a 0..360 grid across Greenwich sorted puts
        9E beside 350E); None: the arrays' order is that one

    Returns
    -------
    float64 (lat, lon), a new array
    """
    from scipy.ndimage import uniform_filter

    if order is not None:
        grid = np.ix_(*order)
        out = np.array(mean, dtype=np.float64)
        out[grid] = rare_centre(out[grid], np.asarray(count)[grid], np.asarray(ocean)[grid])
        return out
    centre = np.array(mean, dtype=np.float64)
    todo = ocean & (count < _MIN_PIXEL_OBS)
    if not todo.any():
        return centre
    good = (count >= _MIN_PIXEL_OBS) & np.isfinite(centre)
    value, weight = np.where(good, centre, 0.0), good.astype(np.float64)
    for size in (3, 5, 9, 17, 33, 65):
        num = uniform_filter(value, size=size, mode="constant")
        den = uniform_filter(weight, size=size, mode="constant")
        hit = todo & (den > 1e-9)  # uniform_filter's float sums leave ~1e-17 where the window holds none
        centre[hit] = num[hit] / den[hit]
        todo &= ~hit
        if not todo.any():
            break
    return centre


class Interpolator:
    """Abstract gap-filling method, fitted on one gappy field (xeofs-style).

    Parameters
    ----------
    seed : int
        Seed of every random choice of the method (CV points, randomised SVD, weights init).
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for methods that use torch.
    progress : bool
        Show progress bars.
    keep_observed : bool
        Observed (not withheld) pixels keep their input values in the output (default); if False
        the output is the method's reconstruction everywhere on the ocean.
    **options
        Method options; the valid names and defaults are ``option_defaults``.

    Notes
    -----
    A subclass sets ``name``, ``option_defaults`` (and ``gives_sigma``) and implements
    :meth:`_fit` and :meth:`_reconstruct` on normalised NumPy arrays; it may override
    :meth:`_check_options` (raise :class:`InputError` on bad values) and :meth:`_fit_attrs`
    (extra output attrs). During ``_fit`` these are set: ``ocean_`` (lat, lon), ``scale_``,
    ``mean_`` (lat, lon), ``da_`` (the input, transposed to (time, lat, lon)).
    """

    name: ClassVar[str] = "base"
    gives_sigma: ClassVar[bool] = False
    #: the method takes auxiliary variables, ``fit(da, aux=...)``: covariates on the field's grid and days
    #: (a microwave SST, the wind) given to it beside the field; the others refuse them
    takes_aux: ClassVar[bool] = False
    #: of those, the method takes static (lat, lon) covariates too (a constant input channel); False:
    #: refused with why (:func:`refuse_static_aux`)
    takes_static_aux: ClassVar[bool] = True
    #: the method fills a pixel it never observed from its neighbours (the networks); with a land-sea
    #: mask, such ocean pixels are then filled, else left missing (no mode or cycle is known there)
    fills_unseen: ClassVar[bool] = False
    #: refuse all-NaN or constant covariates in fit(); off on the blocks of interpolate_chunked, whose
    #: covariates were checked on the whole cube (a constant one within a block is no error there)
    _check_aux_values: bool = True
    #: fit() is given anomalies from the whole record's per-pixel means (a block of interpolate_chunked):
    #: a pixel seen fewer than ``_MIN_PIXEL_OBS`` times in it is centred on 0, the record's centre for it,
    #: not on the mean of the block's anomalies. That mean (0.0021 degC on `oceandl synth sst --n 40 --size
    #: 24`: the once-seen pixels' own anomalies over all observations) shifted them off the in-memory fill
    _record_anomalies: bool = False
    #: a pixel seen fewer than ``_MIN_PIXEL_OBS`` times is centred on its neighbours' means
    #: (:func:`rare_centre`), not on the global mean (DINEOF, EOF, the climatology and the networks;
    #: interpolate_chunked's statistics too)
    _rare_neighbours: ClassVar[bool] = False
    #: transform() fills one time block of a longer field (interpolate_chunked with ``fit_on``): a block
    #: with no observation is no error there (the whole field's are counted), and the observations at
    #: pixels the fit never saw are counted in ``outside_`` instead of warned of block by block
    _time_block: bool = False
    #: :meth:`transform` of a field without units: the sum of its observations' departures from the fitted
    #: means, in fitted scales, and their number (None when both say their units); :func:`check_units_shift`
    shift_: tuple[float, int] | None = None
    option_defaults: ClassVar[dict[str, Any]] = {}
    #: distributions whose code computes the fill besides oceandl, numpy and xarray (``"torch"``):
    #: listed in the output's ``oceandl_software``, which a numpy-only method keeps free of torch
    libraries: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, seed: int = 0, device: str = "auto", progress: bool = False,
                 keep_observed: bool = True, **options):
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            valid = ", ".join(sorted(self.option_defaults)) or "none"
            # the sst benchmark's method option aux=NAME, tried as --set aux=NAME, did not point at --aux
            hint = ("; auxiliary variables are given to fit(da, aux=...), interpolate(..., aux=) or --aux"
                    if "aux" in unknown else "")
            raise InputError(f"method {self.name!r}: unknown option {unknown[0]!r} (valid options: {valid}){hint}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"method {self.name!r}: seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.device = device
        self.progress = bool(progress)
        self.keep_observed = bool(keep_observed)
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        self._given_options = frozenset(options)  # what the caller set, for options that conflict
        self._check_options()
        self._fitted = False

    # ----------------------------------------------------------------- hooks for subclasses
    def _check_options(self) -> None:
        """Validate ``self.options`` (raise :class:`InputError` naming the option)."""

    def _fit(self, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray) -> None:
        """Fit the method.

        Parameters
        ----------
        x : float32 ndarray (time, lat, lon)
            Normalised anomaly: input minus the per-pixel mean of the observations, divided by
            one global std; 0 where not observed.
        obs : bool ndarray (time, lat, lon)
            True where observed and not withheld.
        ocean : bool ndarray (lat, lon)
            True where the pixel is observed at some time (land is never observed).
        """
        raise NotImplementedError

    def _reconstruct(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Normalised filled anomaly (time, lat, lon) and its error std (same units) or None."""
        raise NotImplementedError

    def _fit_attrs(self) -> dict[str, Any]:
        """Extra attrs describing the fit (e.g. the number of modes); added to the output."""
        return {}

    def _sigma_attrs(self) -> dict[str, Any]:
        """Extra attrs of the ``sigma`` output (a neural method's ``calibration_scale``)."""
        return {}

    def _given_normalisation(self, da: xr.DataArray, values: np.ndarray,
                             label: str) -> tuple[np.ndarray, float, float] | None:
        """The statistics to normalise ``da`` (``values``: its data, read) with, when the method
        brings its own; else None.

        None (the default): the input's own per-pixel mean and scale. A method that returns
        ``(mean, global_mean, scale)`` (``mean``: float64 (lat, lon), NaN where unknown) is
        normalised with those instead (a neural checkpoint's training statistics), which also
        lets it fill a single time step and pixels this input never observes.
        """
        return None

    # ----------------------------------------------------------------- helpers for subclasses
    def _to_matrix(self, a: np.ndarray) -> np.ndarray:
        """(time, lat, lon) -> (time, n_ocean), the ocean pixels in C order."""
        return a[:, self.ocean_]

    def _from_matrix(self, m: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(time, n_ocean) -> (time, lat, lon), ``fill`` on land."""
        out = np.full((m.shape[0],) + self.ocean_.shape, fill, dtype=m.dtype)
        out[:, self.ocean_] = m
        return out

    def _progress(self, iterable: Iterable, desc: str, total: int | None = None):
        """Wrap ``iterable`` in a tqdm bar when ``progress`` is on."""
        if not self.progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=f"{self.name}: {desc}", total=total, leave=False)

    @property
    def torch_device(self):
        """The :class:`torch.device` of ``device`` (raises InputError if unavailable)."""
        from oceandl.utils import resolve_device

        return resolve_device(self.device)

    # ----------------------------------------------------------------- public API
    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(seed={self.seed}{', ' if opts else ''}{opts})"

    def fit(self, da: xr.DataArray, withheld=None, aux=None, mask=None) -> "Interpolator":
        """Fit the method on a gappy field.

        Parameters
        ----------
        da : xarray.DataArray (time, lat, lon), dims in any order, NumPy or dask backed
            The field; NaN marks missing values (and CF fill values and values outside the valid
            range, see :func:`cf_masked`); pixels never observed are land. A size-1 dim that is
            none of these (a depth level) is dropped, its coordinate kept as a scalar one, as
            :func:`~oceandl.io.open_field` reads it; a (lat, lon) map is a field of one step
            (its scalar time coordinate the step's).
        withheld : bool array-like, same shape (or a DataArray with the same dims, matched by coordinate
            where its coordinates are ``da``'s in another order), optional
            Observed pixels hidden from the method and used to score the result (``val_*`` attrs
            of :meth:`reconstruct`). Missing pixels in ``withheld`` are ignored.
        aux : DataArray, list or dict of DataArrays, or Dataset, optional
            Auxiliary variables (covariates) for the methods that take them (``takes_aux``: the
            neural ones and DINEOF): each (time, lat, lon) on ``da``'s dims, days and grid (matched by
            coordinate), NaN where missing, or static: a (lat, lon) map on its grid (bathymetry; the
            neural methods only, DINEOF refuses it); see :func:`read_aux`.
        mask : xarray.DataArray (lat, lon) or array-like (lat, lon), optional
            Land-sea mask, True/1 = ocean (a CF flag variable, or a land fraction named so, is read
            by its convention: :mod:`oceandl.interp.mask`), on ``da``'s grid (matched by coordinate
            value, either longitude convention; a larger grid is cut to the field's). Observations on
            its land are dropped (not fitted, NaN in the output, ``missing_flag`` 3); its ocean
            pixels never observed are filled by the methods that can (``fills_unseen``: the neural
            ones) and left NaN, warned, by the others (``missing_flag`` 4). Without a mask, pixels
            never observed are land. A neural checkpoint trained with a mask applies its own when
            none is given and its statistics fit the grid.

        Returns
        -------
        self

        Raises
        ------
        InputError
            If ``da`` is not 3-D, has fewer than 2 time steps, is all NaN, constant, contains
            infinities, holds values that contradict its temperature units (kelvin said to be
            degC, or the reverse: :func:`check_units_values`; so do the covariates), or
            ``withheld`` does not match it or hides every observation; ``aux`` given
            to a method that takes none, or bad (see :func:`read_aux`); a bad ``mask``
            (:func:`~oceandl.interp.mask.read_mask`), or no observation over its ocean.
        """
        da, da_c, dims, label, values, observed = self._read(da)
        # a degC field holding kelvin (or the reverse) refused before anything is fitted on it
        check_units_field(label, da_c, values)
        sea = sea_how = land_obs = None
        if mask is not None:
            from .mask import read_mask

            sea, sea_how = read_mask(mask, da_c, label)
            values, observed, land_obs = _drop_land(values, observed, sea, label)
        if aux is not None and not self.takes_aux:
            takers = ", ".join(sorted(_aux_takers())) or "none"
            raise InputError(f"method {self.name!r}: takes no auxiliary variables (aux); the methods that do: {takers}")
        aux_names, aux_values, aux_units, aux_static = read_aux(aux, da, dims, label,
                                                                check_values=self._check_aux_values)
        if not self.takes_static_aux:
            refuse_static_aux(self.name, [n for n, st in zip(aux_names, aux_static) if st], label)
        self.input_dims_ = tuple(da.dims)
        given = self._given_normalisation(da_c, values, label)
        if sea is None and given is not None and getattr(self, "_checkpoint_sea", None) is not None:
            # the mask the network was trained with, on this grid (the statistics fit it)
            sea, sea_how = self._checkpoint_sea
            values, observed, land_obs = _drop_land(values, observed, sea, label)
        if given is None and da_c.sizes[dims[0]] < 2:
            raise InputError(f"{label}: needs at least 2 time steps along {dims[0]!r}, got {da_c.sizes[dims[0]]}")
        vmin, vmax = float(values[observed].min()), float(values[observed].max())
        if vmin == vmax and given is None:
            raise InputError(f"{label}: all observed values are equal ({vmin}); nothing to interpolate from")

        held = self._withheld_mask(withheld, da, dims, label) & observed
        obs = observed & ~held
        if given is not None:
            if not obs.any():
                raise InputError(f"{label}: every observation is withheld; nothing is left to fill from")
            mean, scale, ocean = self._normalise_given(given, values, observed, sea)
            x = np.zeros(values.shape, np.float32)
            np.subtract(values, mean, out=x, where=obs, casting="same_kind")
            x /= np.float32(scale)
        else:
            if obs.sum() < 3 or np.count_nonzero(obs.any(axis=(1, 2))) < 2:
                raise InputError(f"{label}: too few observations left to fit (need observations at 2 time steps "
                                 "or more)")
            rare = 0.0 if self._record_anomalies else None
            x, mean, scale, ocean = self._normalise_own(values, obs, observed, vmin, vmax, rare=rare,
                                                        neighbours=self._rare_neighbours and clean_axes(da_c))
            if sea is not None and self.fills_unseen:
                mean, ocean = _nearest_mean(mean, ocean, sea)
        unfilled = None if sea is None else sea & ~ocean
        if unfilled is not None and unfilled.any():
            warn(f"{label}: {int(unfilled.sum())} ocean pixels of the mask are never observed; method {self.name!r} "
                 "cannot fill a pixel without observations: left missing (missing_flag 4; the neural methods fill "
                 "them)", UserWarning)

        # from here the previous fit's state is replaced: a fit failing part-way leaves no fit, not
        # this field's means and grid with the previous field's modes (which transform() filled with)
        self._fitted = False
        self._fitted_on = self._loaded_from = self._saved_attrs = self._source = None  # a loaded fit's, if any
        self.da_ = da_c
        self.aux_names_, self.aux_, self.aux_units_ = aux_names, aux_values, aux_units
        self.aux_static_ = aux_static  # which are static (lat, lon) maps, broadcast over the days
        self.values_ = values
        self.observed_ = observed
        self.withheld_ = held
        self.obs_ = obs
        self.ocean_ = ocean
        self.mean_ = mean
        self.scale_ = scale
        self.sea_, self.sea_how_ = sea, sea_how
        self.land_obs_ = land_obs
        self._fit(x, obs, ocean)
        self._fitted = True
        return self

    @staticmethod
    def _read(da, allow_empty: bool = False) -> tuple[xr.DataArray, xr.DataArray, tuple[str, str, str], str,
                                                      np.ndarray, np.ndarray]:
        """``da`` checked and read: itself (a DataArray), transposed to (time, lat, lon), those dims,
        its label, its values (float) and where they are observed (``allow_empty``: all NaN too, a
        cloudy time block of a longer field).

        Raises
        ------
        InputError
            Not 3-D, not real numbers, infinities, or all NaN.
        """
        # a (time, depth=1, lat, lon) level was refused ('expected 3 dims') where interpolate(), eof() and
        # open_field drop it; one map of a day (ds.sst.sel(time=day), "today's image" to transform) too
        da = _one_step(_squeeze_levels(as_dataarray(da))[0])
        label = _label(da)
        dims = canonical_dims(da, say=True)  # the field read: dims taken by position are said here, once
        da_c = da.transpose(*dims)
        if not np.issubdtype(da_c.dtype, np.number) or np.issubdtype(da_c.dtype, np.complexfloating):
            raise InputError(f"{label}: values must be real numbers, got dtype {da_c.dtype}")
        values = np.asarray(da_c.values)  # computes dask input
        if not np.issubdtype(values.dtype, np.floating):
            values = values.astype(np.float64)
        if np.isinf(values).any():
            raise InputError(f"{label}: contains infinite values; mark missing values with NaN")
        observed = np.isfinite(values)
        if not observed.any() and not allow_empty:
            raise InputError(f"{label}: all values are NaN")
        return da, da_c, dims, label, values, observed

    @staticmethod
    def _normalise_given(given, values: np.ndarray, observed: np.ndarray,
                         sea: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray]:
        """Per-pixel mean, scale and ocean mask from statistics the method brings (a checkpoint's).

        The ocean is where the statistics know the sea or this input observes it: a pixel under
        cloud for the whole of a short file is still filled. Where the statistics have no mean
        (a pixel never observed in training), their global mean stands in. With a land-sea mask
        ``sea`` (lat, lon), the ocean is the mask's."""
        mean_t, global_mean, scale = given
        known = np.isfinite(mean_t)
        ocean = observed.any(axis=0) | known if sea is None else sea.copy()
        mean = np.where(known, mean_t, float(global_mean)).astype(np.float64)
        mean[~ocean] = np.nan
        return mean, float(scale), ocean

    @staticmethod
    def _normalise_own(values: np.ndarray, obs: np.ndarray, observed: np.ndarray, vmin: float,
                       vmax: float, rare: float | None = None,
                       neighbours: bool | tuple = False) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """The normalised anomaly (float32), per-pixel mean, scale and ocean mask of the input itself;
        ``rare``: the centre of the pixels with fewer than ``_MIN_PIXEL_OBS`` observations (a block of
        interpolate_chunked: 0, its input being the anomaly from the record's centres). None: the global
        mean of the observations or, with ``neighbours``, their neighbours' means (:func:`rare_centre`;
        ``neighbours`` may be the (iy, ix) clean orientation of the grid, in which they are taken)."""
        ocean = observed.any(axis=0)

        # Normalisation: per-pixel mean of the fitting observations (where a pixel has fewer than 2: the
        # global mean, or with _rare_neighbours its neighbours' means), one global scale so that all methods see unit-variance anomalies.
        # Written without cube-sized float64 temporaries (``where=``, ``out=``, time chunks): on a
        # ten-year cube each one was 2 GB; the anomaly is made once, in the float32 every method takes.
        count = obs.sum(axis=0)
        total = values.sum(axis=0, where=obs, dtype=np.float64)
        global_mean = float(total.sum() / count.sum()) if rare is None else float(rare)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count >= _MIN_PIXEL_OBS, total / np.maximum(count, 1), global_mean)
        if rare is None and neighbours:
            mean = rare_centre(mean, count, ocean, None if neighbours is True else neighbours)
        mean[~ocean] = np.nan
        x = np.zeros(values.shape, np.float32)
        np.subtract(values, mean, out=x, where=obs, casting="same_kind")  # in float64, stored as float32
        step = max(1, 2**21 // max(x[0].size, 1))
        ss = sum(float(np.square(x[i:i + step], dtype=np.float64).sum()) for i in range(0, len(x), step))
        scale = float(np.sqrt(ss / obs.sum()))
        if not np.isfinite(scale) or scale <= 1e-12 * max(abs(vmin), abs(vmax), 1.0):
            scale = 1.0  # the observations equal their pixel means: anomalies are all zero
        x /= np.float32(scale)
        return x, mean, scale, ocean

    def _withheld_mask(self, withheld, da: xr.DataArray, dims, label: str) -> np.ndarray:
        """The withheld mask as a bool ndarray in (time, lat, lon) order."""
        shape = tuple(da.sizes[d] for d in dims)
        if withheld is None:
            return np.zeros(shape, dtype=bool)
        if isinstance(withheld, xr.DataArray):
            if set(withheld.dims) != set(da.dims):
                raise InputError(f"{label}: withheld has dims {tuple(withheld.dims)}, expected {tuple(da.dims)}")
            from oceandl.metrics.interpolation import _reorder_like

            # matched by coordinate too: a mask with latitudes in the other order withheld mirrored pixels
            # named as what it is: the message spoke of interp_metrics' 'truth and pred', which the caller never passed
            # longitudes in the other convention matched by value, as a mask's and aux's (refused, with advice to
            # pass .values: position by position, 180 degrees off once sorted)
            withheld = _lon_like(withheld, da, dims[2])
            w = np.asarray(_reorder_like(withheld, da, name="withheld", where=label, other="the field")
                           .transpose(*dims).values)
        else:
            w = np.asarray(withheld)
            if w.shape != tuple(da.shape):
                raise InputError(f"{label}: withheld has shape {w.shape}, expected {tuple(da.shape)}")
            w = np.transpose(w, [da.dims.index(d) for d in dims])
        if w.shape != shape:
            raise InputError(f"{label}: withheld has shape {w.shape}, expected {shape}")
        if w.dtype != bool:
            if not np.issubdtype(w.dtype, np.number) or not np.isin(w, (0, 1)).all():
                raise InputError(f"{label}: withheld must be a boolean mask (True = withheld)")
            w = w.astype(bool)
        return w

    def reconstruct(self) -> xr.Dataset:
        """The filled field, its flags (and error std), labelled like the input.

        Returns
        -------
        xarray.Dataset
            Dims and coords of the input (same dim order). Variables: the filled field (named like
            the input, or ``"filled"``), ``sigma`` (only if ``gives_sigma``), ``missing_flag``
            (int8: 0 observed or land, 1 originally missing ocean pixel, 2 withheld; with a ``mask``
            also 3, an observation on the mask's land dropped, and 4, an ocean pixel of the mask
            never observed, left missing by a method that cannot fill it). Land stays NaN.
            With a mask, the field's ``land_sea_mask`` attr says which and how it was read. Attrs of the filled variable: the input's attrs plus ``comment`` (what its values
            are, before the input's comment), ``ancillary_variables`` (``missing_flag sigma``), ``oceandl_version``,
            ``oceandl_software`` (:func:`~oceandl.utils.software_versions`), ``method``, ``options``
            (JSON), ``history``, the method's fit attrs and, when pixels were withheld, ``val_rmse``,
            ``val_mae``, ``val_bias``, ``val_corr``, ``val_std_ratio``, ``val_n`` (and ``val_frac_within_*sigma``). The Dataset's attrs:
            the same without the input's (its units and names describe the variable, not the file).
            An input coordinate named like one of these variables (a scalar ``sigma`` level) is
            kept as ``<name>_coord``, with a warning (:func:`~oceandl.interp.interpolate` gives the
            filled DataArray back its own name).

        Raises
        ------
        InputError
            If called before :meth:`fit`.
        """
        if not self._fitted:
            raise InputError(f"method {self.name!r}: call fit() before reconstruct()")
        if getattr(self, "_loaded_from", None):
            raise InputError(f"method {self.name!r} loaded from {self._loaded_from}: it fills other fields with "
                             "transform(); the field it was fitted on is not in the checkpoint")
        if getattr(self, "_cut_from", None):
            raise InputError(f"method {self.name!r} cut to a box of its grid: it fills other fields with transform(); "
                             "reconstruct() the fit it was cut from")
        filled_n, sigma_n = self._reconstruct()
        return self._dataset(filled_n, sigma_n, tmpl=self.da_, values=self.values_, observed=self.observed_,
                             obs=self.obs_, withheld=self.withheld_, ocean=self.ocean_, mean=self.mean_,
                             sea=getattr(self, "sea_", None), land_obs=getattr(self, "land_obs_", None))

    def transform(self, da: xr.DataArray, withheld=None, aux=None) -> xr.Dataset:
        """Fill another field on the fitted grid (a later period, today's image) with what
        :meth:`fit` learned, without fitting again.

        The new field is normalised with the fitted pixel means and scale; each of its time steps
        is filled from its own observations by the method's fitted model (the EOF methods: the
        fitted spatial modes, their amplitudes solved on the step's observed pixels; the
        climatology: the fitted seasonal cycle at the new dates). Fitting the modes of a decade once
        and filling each new day with them is how an operational gap-filling chain runs; a method
        fitted on the new field itself (:meth:`fit`) is what to use when it is long enough.

        Parameters
        ----------
        da : xarray.DataArray (time, lat, lon), dims in any order, NumPy or dask backed
            On the fitted grid: the same latitudes and longitudes (in either order, longitudes in
            either convention; matched by value), any number of time steps (dated when the fit
            removed a seasonal cycle): one day's (lat, lon) map (``new.sel(time=day)``) is a field
            of one step, and a size-1 depth level is dropped, as in :meth:`fit`. On fewer latitudes
            or longitudes, a block of consecutive rows and columns of the fitted grid: the fit is cut
            to it first (:meth:`cut`, warned; cut once to fill several fields of one box), another
            grid is refused.
            Observations at pixels the fitted field never observed (land to the fit) are kept as
            given (with ``keep_observed``, warned) and nothing is filled around them.
        withheld : bool array-like of ``da``'s shape, optional
            Observed pixels hidden from the fill and scored (``val_*`` attrs), as in :meth:`fit`.
        aux : DataArray, list or dict of DataArrays, or Dataset, optional
            The covariates of a fit made with them (DINEOF's multivariate fit), by the same names, on
            ``da``'s days and grid (see :meth:`fit`): normalised with the fit's statistics, they set
            each new step's amplitudes with the field's observations. Refused by a fit without them,
            and required by one with them.

        Returns
        -------
        xarray.Dataset
            As :meth:`reconstruct`'s, labelled like ``da``; attrs ``fitted_on`` (the field the
            model was fitted on: its name, steps and dates) and the fit's attrs.

        Raises
        ------
        InputError
            If called before :meth:`fit`, by a method that cannot (the neural methods fill a new
            field through their checkpoint), on another grid, in other units (said, or observations
            more than 10 fitted scales off the fitted means when not said), with values that
            contradict its units (:func:`check_units_values`), without dates where a
            seasonal cycle was fitted, or on bad input (see :meth:`fit`); no observation over the
            fitted ocean.
        """
        if not self.can_transform:
            raise InputError(f"method {self.name!r}: transform() is not available; {self._no_transform}")
        if not self._fitted:
            raise InputError(f"method {self.name!r}: call fit() before transform()")
        from oceandl.units import _unit, kelvin_offset

        box = self._auto_cut(da)
        if box is not None:
            out = box.transform(da, withheld=withheld, aux=aux)
            # what this read named, as a transform of its own sets it (interpolate(fit_on=model) reads it here)
            self.output_name_, self.renamed_coords_ = box.output_name_, box.renamed_coords_
            return out
        da, da_c, dims, label, values, observed = self._read(da, allow_empty=self._time_block)
        if not self._time_block:  # interpolate_chunked tests the whole series once, before its blocks
            check_units_field(label, da_c, values)
        fitted = self.da_
        # kelvin (GHRSST L3) filled with a fit in degC, or the reverse: the fit's pixel means are put in the
        # field's units (its scale, modes and cycle are of normalised anomalies, the same in both); other
        # units said are refused (anomalies of 273 were "filled" by the modes before the units were read)
        theirs, ours = _unit(fitted.attrs.get("units")), _unit(da_c.attrs.get("units"))
        offset = kelvin_offset(theirs, ours) or 0.0
        if theirs is not None and ours is not None and theirs != ours and not offset:
            raise InputError(f"{label}: in units {da_c.attrs['units']!r}, the field fitted in {fitted.attrs['units']!r}; "
                             "transform() fills a field in the fitted units (convert it first)")
        self.units_note_ = None
        if offset:  # a time block of interpolate_chunked: said once for the whole field, by it
            self.units_note_ = (f"in {da_c.attrs['units']!r}, the field fitted in {fitted.attrs['units']!r}: the fit's "
                                f"means converted to {da_c.attrs['units']!r}, the fill in them")
            if not self._time_block:
                warn(f"{label}: {self.units_note_}", UserWarning)
        (fy, iy), (fx, ix) = (_axis_order(da_c, fitted, i, label) for i in (1, 2))

        def to_input(a):  # (..., lat, lon) of the fit -> the new field's order
            return _take(a, iy, ix)

        def to_fit(a):
            return _take(a, fy, fx)

        aux_kw = self._transform_aux(aux, da, dims, label, to_fit)  # refused (or read) before the fill
        ocean, mean = to_input(self.ocean_), to_input(self.mean_)
        if offset:
            mean = (mean + offset).astype(mean.dtype)
        sea = land_obs = None
        if getattr(self, "sea_", None) is not None:  # the fit's land-sea mask: its land observations dropped
            sea = to_input(self.sea_)
            land_obs = observed & ~sea[None]
            if land_obs.any():
                values = np.where(land_obs, np.nan, values)
                observed = observed & ~land_obs
            else:
                land_obs = None
        held = self._withheld_mask(withheld, da, dims, label) & observed & ocean[None]
        kept = observed & ~held
        obs = kept & ocean[None]
        if not obs.any() and not self._time_block:
            raise InputError(f"{label}: no observation over the ocean of the field fitted"
                             f"{' left once the withheld pixels are hidden' if held.any() else ''}; nothing to fill from")
        outside = kept & ~ocean[None]
        self.outside_ = (int(outside.sum()), outside.any(axis=0), int(obs.sum()))
        if outside.any() and not self._time_block:
            warn(f"{label}: {int(outside.sum())} observations at {int(outside.any(axis=0).sum())} pixels the field "
                 "fitted never observed (land to the fit): kept as given, nothing filled there", UserWarning)
        x = np.zeros(values.shape, np.float32)
        np.subtract(values, mean, out=x, where=obs, casting="same_kind")
        x /= np.float32(self.scale_)
        # units not said: kelvin against degC is hundreds of fitted scales off (x is 0 off obs). A time block
        # of interpolate_chunked keeps its sums, added over the series there and tested once
        self.shift_ = (float(x.sum(dtype=np.float64)), int(obs.sum())) if theirs is None or ours is None else None
        if self.shift_ is not None and not self._time_block:
            check_units_shift(label, *self.shift_, self.scale_)
        filled_n, sigma_n, *extra = self._transform(to_fit(x), to_fit(obs), da_c, **aux_kw)
        filled_n = to_input(np.asarray(filled_n))
        sigma_n = None if sigma_n is None else to_input(np.asarray(sigma_n))
        return self._dataset(filled_n, sigma_n, tmpl=da_c, values=values, observed=observed, obs=kept,
                             withheld=held, ocean=ocean, mean=mean, fitted_on=self._fitted_on_text(),
                             out_dims=da.dims, sigma_extra=extra[0] if extra else None, sea=sea, land_obs=land_obs)

    def cut(self, da: xr.DataArray, label: str | None = None) -> "Interpolator":
        """This fit on the box of its grid that ``da`` (time, lat, lon) covers, to :meth:`transform` it.

        A fit of a whole (global) grid fills a region of it (``oceandl interpolate --fit-on FOLDER
        --bbox``): its per-pixel state (pixel means, ocean and land-sea masks, seasonal coefficients,
        the climatology's sigma, the spatial modes and their error model; a multivariate DINEOF's
        covariates' pixel means and columns of the modes) is cut to the box's pixels; the global ones
        (scale, mode variances, persistence, the covariates' scales and weight) are kept. Each new step is then filled as
        the whole grid's fill fills the box on a step whose observations all lie in the box (the same
        least squares of the cut modes on the observed pixels: ``eof``'s ridge stays relative to the
        whole grid's pixel count, DINEOF's optimal interpolation keeps its prior). The whole grid's
        fill of a step also sees the observations outside the box: there the two differ (the
        climatology: never, its fill reads no observation). Measured at the gaps of centred boxes of
        the 48 x 48 synthetic cube (docs/experiments/fit_box.py, docs/benchmarks.md): 0 from the whole
        grid's fill of the days observed in the box only; from its fill with all its observations, rms
        0.42-1.45 degC (``eof``, 5 modes) and 0.45-0.87 (DINEOF) for boxes of 24 down to 3 pixels a
        side. DINEOF's ``sigma`` scale is refitted on the box's own held-out observations (or is the
        fit's), so its sigma is the box's, not the whole grid's cut.

        Parameters
        ----------
        da : xarray.DataArray (time, lat, lon), dims in any order; only its grid is read
            Its latitudes and longitudes must be a block of consecutive rows and columns of the
            fitted grid (matched by value to 1e-4 degree, longitudes in either convention).
        label : str, optional
            What the box is, in front of an error or warning (default: ``da``'s variable).

        Returns
        -------
        Interpolator
            A copy on ``da``'s grid (this fit itself when ``da`` covers the whole grid), for
            :meth:`transform` only (not :meth:`reconstruct` or :meth:`save`).

        Raises
        ------
        InputError
            Before :meth:`fit`, for a method without ``transform``, a grid that is not such a block
            (partly outside, shifted, every other point), or a box with no ocean pixel of the fit.

        Warns
        -----
        UserWarning
            ``eof``: the box's pixels see a combination of the modes at under a tenth of its share
            of the grid (its amplitude, solved on the box, is then poorly determined).
        """
        if not self.can_transform:
            raise InputError(f"method {self.name!r}: cut() is for the methods with transform(); {self._no_transform}")
        if not self._fitted:
            raise InputError(f"method {self.name!r}: call fit() before cut()")
        da = as_dataarray(da)
        da_c = _squeeze_levels(da)[0]
        da_c = da_c.transpose(*canonical_dims(da_c))
        fitted = self.da_
        ny, nx = self.ocean_.shape
        label = _label(da) if label is None else label
        block, problem = grid_block(fitted, da_c)
        if block is None:
            what = f"the fit saved in {self._loaded_from}" if getattr(self, "_loaded_from", None) else "the fit"
            raise InputError(f"{label}: {problem}; {what} is on a {ny} x {nx} grid and fills a block of consecutive "
                             "rows and columns of it (fill the whole grid and cut the output, or fit the box itself)")
        iy, ix = block
        if np.unique(iy).size == ny and np.unique(ix).size == nx:
            return self  # the whole grid (in another order, or longitude convention: transform() matches it)
        pix = np.full(self.ocean_.shape, -1, np.int64)
        pix[self.ocean_] = np.arange(int(self.ocean_.sum()))
        sel = pix[np.ix_(iy, ix)]
        sel = sel[sel >= 0]  # the fit's ocean columns in the box, in the box's C order
        if not sel.size:
            raise InputError(f"{label}: the {iy.size} x {ix.size} box holds no ocean pixel of the fit (land, "
                             f"or never observed, on its {ny} x {nx} grid)")
        new = copy.copy(self)
        new.ocean_ = self.ocean_[np.ix_(iy, ix)]
        new.mean_ = self.mean_[np.ix_(iy, ix)]
        if getattr(self, "sea_", None) is not None:
            new.sea_ = self.sea_[np.ix_(iy, ix)]
        # the grid only (no steps, as a loaded fit's): transform() matches the box's coordinates against it
        dims = fitted.dims
        new.da_ = xr.DataArray(np.empty((0, iy.size, ix.size), np.float32), dims=dims, name=fitted.name,
                               attrs=dict(fitted.attrs),
                               coords={dims[1]: (dims[1], np.asarray(da_c[da_c.dims[1]].values), da_c[da_c.dims[1]].attrs),
                                       dims[2]: (dims[2], np.asarray(da_c[da_c.dims[2]].values), da_c[da_c.dims[2]].attrs)})
        new._cut_from = (ny, nx)
        new._fitted_on = (f"{self._fitted_on_text()}, cut to the {iy.size} x {ix.size} box at rows "
                          f"{int(iy.min())}-{int(iy.max())}, columns {int(ix.min())}-{int(ix.max())} of its {ny} x {nx} grid")
        self._cut_state(new, sel, iy, ix, label)
        return new

    def _auto_cut(self, da) -> "Interpolator | None":
        """:meth:`transform` of a field on fewer latitudes or longitudes than the fit's: this fit cut
        to its grid (:meth:`cut`, warned), as ``--bbox`` cuts a saved fit; refused in one line when
        that grid is not a block of the fit's. None for a field as large as the fit's grid (matched
        or refused by :meth:`transform` itself)."""
        try:
            d = _squeeze_levels(as_dataarray(da))[0]
            dims = canonical_dims(d)
        except Exception:  # noqa: BLE001 - not a field: _read says why, as before
            return None
        ny, nx = self.ocean_.shape
        n = (d.sizes[dims[1]], d.sizes[dims[2]])
        if n == (ny, nx) or n[0] > ny or n[1] > nx:
            return None
        label = _label(da)
        box = self.cut(d.transpose(*dims), label=label)  # a grid that is not a block of the fit's: refused here
        warn(f"{label}: its {n[0]} x {n[1]} grid is a block of the fit's {ny} x {nx}: filled with the fit cut to it "
             "(cut() it once to fill several fields of that box)", UserWarning)
        return box

    def _cut_state(self, new: "Interpolator", sel: np.ndarray, iy: np.ndarray, ix: np.ndarray, label: str) -> None:
        """Set on ``new`` (a shallow copy) the method's state cut to a box of the grid: ``sel`` the
        fitted ocean columns in the box (in its C order), ``iy``, ``ix`` the fitted grid's rows and
        columns; ``label`` names the box in a warning."""
        raise NotImplementedError

    can_transform: ClassVar[bool] = False
    _no_transform: ClassVar[str] = "fit it on the field to fill"
    #: options that act in :meth:`transform` only: a fit made (or saved) takes them anew
    transform_options: ClassVar[tuple[str, ...]] = ()

    def _fitted_on_text(self) -> str:
        """What the fit was on (``fitted_on``): the field's name, steps and dates (and the folder it
        was loaded from)."""
        return getattr(self, "_fitted_on", None) or _period_text(self.da_)

    def save(self, path, overwrite: bool = False, source: str | None = None):
        """Write the fit as a checkpoint folder that :func:`~oceandl.interp.fitted.load_fitted` (and
        ``oceandl interpolate --fit-on FOLDER``) takes back to :meth:`transform` other fields.

        Returns the path. Raises :class:`InputError` before :meth:`fit`, for a method without
        ``transform``, or if ``path`` exists and not ``overwrite``.
        """
        from .fitted import save_fitted

        return save_fitted(self, path, overwrite=overwrite, source=source)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The method's fitted state for :meth:`save`: arrays (n_ocean first where per pixel) and JSON."""
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], n_ocean: int, array) -> None:
        """Set the state :meth:`_state` saved; ``array(key, shape, kind="f", finite=True)`` reads one
        array checked (raises the loader's error); raise KeyError/TypeError/ValueError on a bad ``meta``."""
        raise NotImplementedError

    def _transform_aux(self, aux, da: xr.DataArray, dims: tuple[str, str, str], label: str,
                       to_fit: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        """The keyword arguments of :meth:`_transform` that carry the new field's covariates ``aux``
        (``to_fit``: a (..., lat, lon) array of ``da`` onto the fitted grid's order); ``{}`` without.
        Here (no method's fit but DINEOF's takes covariates into transform) any ``aux`` is refused."""
        if aux is not None:
            raise InputError(f"{label}: method {self.name!r}: transform() takes no auxiliary variables (aux); "
                             "a multivariate DINEOF fit does (fit it with aux)")
        return {}

    def _transform(self, x: np.ndarray, obs: np.ndarray, da: xr.DataArray) -> tuple:
        """Normalised fill (and error std or None; optionally a third item, attrs for sigma) of
        another field on the fitted grid.

        ``x``, ``obs``: as :meth:`_fit`'s (time, lat, lon), normalised with the fitted statistics,
        in the fitted grid's order; ``da``: the new field, (time, lat, lon), for its dates."""
        raise NotImplementedError

    def _dataset(self, filled_n, sigma_n, *, tmpl: xr.DataArray, values: np.ndarray, observed: np.ndarray,
                 obs: np.ndarray, withheld: np.ndarray, ocean: np.ndarray, mean: np.ndarray,
                 fitted_on: str | None = None, out_dims: tuple | None = None,
                 sigma_extra: dict | None = None, sea: np.ndarray | None = None,
                 land_obs: np.ndarray | None = None) -> xr.Dataset:
        """The output Dataset of a normalised fill ``filled_n`` (and ``sigma_n``) of ``tmpl``
        (:meth:`reconstruct` of the field fitted, :meth:`transform` of another one): all arrays in
        ``tmpl``'s (time, lat, lon) order; ``ocean`` (lat, lon), ``mean`` (lat, lon) its pixel means;
        ``fitted_on`` (transform) what the fit was on, in the attrs and the history line;
        ``out_dims`` the output's dim order (default: the fitted input's); ``sigma_extra`` attrs
        added to sigma's (transform: how its scale was fitted); ``sea`` (lat, lon) the land-sea mask
        (None without one), ``land_obs`` (time, lat, lon) the observations on its land dropped (or None)."""
        shape = values.shape
        if np.shape(filled_n) != shape or (sigma_n is not None and np.shape(sigma_n) != shape):
            raise RuntimeError(f"method {self.name!r} returned shape {np.shape(filled_n)}, expected {shape}")

        land = ~ocean
        filled = np.asarray(filled_n, dtype=np.float64) * self.scale_ + mean
        filled[:, land] = np.nan
        nonfinite = int((~np.isfinite(filled[:, ocean])).sum())
        if nonfinite:  # a diverged fit: never write NaN gaps as a successful fill
            raise OceanDLError(f"method {self.name!r} produced {nonfinite} non-finite values over the ocean "
                               "(a diverged fit)")
        if self.keep_observed:
            filled[obs] = values[obs]
        sigma = None
        if self.gives_sigma and sigma_n is not None:
            sigma = np.asarray(sigma_n, dtype=np.float64) * self.scale_
            sigma[:, land] = np.nan
        flag = np.zeros(shape, dtype=np.int8)
        flag[~observed & ocean[None]] = 1
        flag[withheld] = 2
        if sea is not None:  # values 3 and 4 only with a mask: the flags of a fill without one are unchanged
            if land_obs is not None:
                flag[land_obs] = 3
            flag[~observed & (sea & ~ocean)[None]] = 4

        from oceandl.metrics.interpolation import interp_metrics

        attrs: dict[str, Any] = {
            "oceandl_version": oceandl_version(),
            # the libraries' versions too: a fill reproduced a year later needs those its numbers came from
            "oceandl_software": software_versions(*self.libraries),
            "method": self.name,
            "options": json.dumps({**self.options, "seed": self.seed, "keep_observed": self.keep_observed},
                                  sort_keys=True, default=_json_default),
        }
        saved = getattr(self, "_saved_attrs", None)  # a loaded fit's (its modes, CV curve, harmonics)
        attrs.update({k: _netcdf_safe(v) for k, v in (saved[0] if saved else self._fit_attrs()).items()})
        if fitted_on is not None:
            attrs["fitted_on"] = fitted_on
        if sea is not None:
            from .mask import mask_text

            attrs["land_sea_mask"] = mask_text(sea, getattr(self, "sea_how_", None) or "given")
        self.val_metrics_: dict[str, Any] = {}
        if withheld.any():
            self.val_metrics_ = interp_metrics(filled, values, mask=withheld, sigma=sigma)
            attrs.update({f"val_{k}": v for k, v in self.val_metrics_.items()})
        attrs["history"] = append_history(tmpl.attrs.get("history"),
                                          f"gaps filled with method {self.name} {attrs['options']}"
                                          + ("" if fitted_on is None else f" fitted on {fitted_on}"))

        from oceandl.io import output_dtype

        dtype = output_dtype(tmpl)  # float32 for an int16 field, whatever its scale_factor's type
        dims = tmpl.dims
        # a coordinate named like one of the Dataset's own variables (the scalar 'sigma' of a
        # (time, sigma=1, lat, lon) model level, which open_field keeps) made xr.Dataset fail with
        # xarray's bare MergeError; it is kept under another name (interpolate() gives it back its own)
        outputs = {"missing_flag", *(("sigma",) if sigma is not None else ())}
        self.renamed_coords_ = {k: output_coord_name(k, [*tmpl.coords, *dims]) for k in tmpl.coords
                                if str(k) in outputs and k not in dims}
        if self.renamed_coords_:
            warn(f"{_label(tmpl)}: coordinate(s) {', '.join(map(repr, self.renamed_coords_))} named like "
                          f"output variables; kept as {', '.join(map(repr, self.renamed_coords_.values()))}",
                          UserWarning)
        coords = {self.renamed_coords_.get(k, k): v.variable for k, v in tmpl.coords.items()}
        # a DataArray may share its name with one of its own coordinates (da.rename("depth") with a
        # scalar depth coord); as a Dataset variable that name would clash (xarray MergeError)
        taken = {"sigma", "missing_flag", *map(str, coords), *map(str, dims)}
        name = tmpl.name if tmpl.name is not None and str(tmpl.name) not in taken else "filled"
        data_vars = {
            name: xr.DataArray(filled.astype(dtype), dims=dims, coords=coords, attrs={**_input_attrs(tmpl.attrs), **attrs}),
            "missing_flag": xr.DataArray(flag, dims=dims, coords=coords, attrs={
                "long_name": "gap-filling flag",
                "flag_values": np.array([0, 1, 2], dtype=np.int8),
                "flag_meanings": "observed_or_land originally_missing withheld_for_validation",
            } if sea is None else {"long_name": "gap-filling flag", "flag_values": MASK_FLAG_VALUES,
                                   "flag_meanings": MASK_FLAG_MEANINGS}),
        }
        if sigma is not None:
            sattrs = {**sigma_attrs(name, tmpl.attrs.get("units"), tmpl.attrs.get("standard_name")),
                      **(saved[1] if saved else self._sigma_attrs()), **(sigma_extra or {})}
            data_vars["sigma"] = xr.DataArray(sigma.astype(dtype), dims=dims, coords=coords, attrs=sattrs)
        # CF: the field says what it is and names its flag (and sigma); only `oceandl interpolate` did,
        # so the accessor's Dataset written with to_netcdf had three unlinked variables and no comment
        data_vars[name].attrs["comment"] = filled_comment(self.name, self.keep_observed, tmpl.attrs.get("comment"),
                                                          masked=sea is not None)
        data_vars[name].attrs["ancillary_variables"] = " ".join(v for v in ("missing_flag", "sigma") if v in data_vars)
        # transform(): the new field's dims, which may be named otherwise than the fitted field's
        ds = xr.Dataset(data_vars, attrs=attrs).transpose(*(self.input_dims_ if out_dims is None else out_dims))
        from oceandl.io import no_coordinate_fill, with_compression_encoding

        self.output_name_ = name
        # written with to_netcdf, lat/lon got a NaN _FillValue (CF: none), and the variables were
        # uncompressed where `oceandl interpolate` writes them zlib 4, one day per chunk
        return with_compression_encoding(no_coordinate_fill(ds))
