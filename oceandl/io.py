"""netCDF field I/O: read any gridded SST-like file into a clean ``(time, lat, lon)`` DataArray.

:func:`open_field` finds the variable and its coordinates from CF attributes or common names,
decodes fill values and packed integers (xarray's CF decoding), turns longitudes into
-180..180 (0..360 for a regional grid across the dateline), sorts latitudes and longitudes
ascending and checks the things that would otherwise break a reconstruction later (dims, time
order, all-missing or constant data). Every problem is an :class:`~oceandl.errors.InputError`
whose one-line message names the file and the variable.

The methods work on that clean grid; :func:`to_source_grid` puts their results back on the
file's own grid (dim names, order, coordinate variables) with the :class:`SourceGrid` that
:func:`open_field` records in ``encoding["source_grid"]``, so written results line up with their
input.
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import glob
import itertools
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputError, one_line
from .errors import warn as _warn  # open_netcdf's `warn` argument would shadow it
from .utils import WRITE_ERRORS, atomic_path, check_output_path, write_error

__all__ = ["open_field", "write_netcdf", "check_complevel", "find_variable", "normalize_longitude", "in_degrees", "DIMS",
           "SourceGrid", "source_grid", "to_source_grid", "no_coordinate_fill", "file_attrs", "day_chunks",
           "dangling_references", "to_field_grid", "open_files", "input_files", "describe_source",
           "source_paths", "NETCDF_SUFFIXES", "aux_mapping", "aux_key", "Subset", "parse_bbox", "parse_dates", "is_pattern", "split_file_var",
           "FileSpan", "names_folder", "series_spans", "PerFilePlan", "plan_per_file",
           "write_per_file"]

DIMS = ("time", "lat", "lon")

# Common names of coordinates and dims, lower case: the one table open_field (files) and
# canonical_dims (Python arrays) read dims by. Ocean models' grid dims too (ROMS' ocean_time,
# eta_*/xi_* at its rho, u, v and psi points; NEMO's time_counter, y, x; GHRSST L2 swaths' nj, ni;
# MITgcm's YC/XC and YG/XG), which were read by position and warned about; not the ambiguous ones
# (i, j, k, eta, xi: ROMS' zeta and MITgcm's Eta are sea surface heights).
_COORD_NAMES = {
    "time": ("time", "t", "times", "date", "time_counter", "ocean_time"),
    "lat": ("lat", "latitude", "nav_lat", "lats", "y", "nj", "yc", "yg",
            "eta_rho", "eta_u", "eta_v", "eta_psi"),
    "lon": ("lon", "longitude", "nav_lon", "lons", "long", "x", "ni", "xc", "xg",
            "xi_rho", "xi_u", "xi_v", "xi_psi"),
}
_AXIS = {"T": "time", "Y": "lat", "X": "lon"}
_STANDARD_NAMES = {
    "time": "time",
    "latitude": "lat",
    "grid_latitude": "lat",
    "longitude": "lon",
    "grid_longitude": "lon",
}
_LAT_UNITS = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}
_LON_UNITS = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}
# sea_surface_temperature and its skin / subskin / foundation variants.
_SST_STANDARD_NAME = re.compile(r"^sea_surface(_[a-z]+)?_temperature$")
_SST_NAMES = ("sst", "analysed_sst", "sea_surface_temperature", "sst_obs", "sst_observed", "tos")


def _dims_text(obj) -> str:
    return "(" + ", ".join(map(str, obj.dims)) + ")"


# --------------------------------------------------------------------------------------------
# Variable and coordinate discovery
# --------------------------------------------------------------------------------------------


def find_variable(ds: xr.Dataset, var: str | None = None, *, label: str = "dataset", warn: bool = True) -> str:
    """Name of the field variable of ``ds``.

    ``warn``: say which variable was taken when several could be (False: the caller says it).

    With ``var`` given, that variable (an :class:`InputError` suggesting close names if absent).
    Otherwise, in order: a variable whose CF ``standard_name`` is ``sea_surface_temperature``
    (or its skin/subskin/foundation variants), then any ``sea_surface_*`` standard name, then the
    only 3-D data variable (counting dims of size 1, such as a single depth level, out). Ties are
    broken by common SST names (``sst``, ``analysed_sst``...).

    Parameters
    ----------
    ds : xarray.Dataset
    var : str, optional
    label : str
        How error messages name the source (a file path).

    Returns
    -------
    str
    """
    names = [str(n) for n in ds.data_vars]
    if var is not None:
        if var in ds.variables:
            return var
        lower = {n.lower(): n for n in names}
        close = difflib.get_close_matches(var.lower(), list(lower), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(lower[c]) for c in close)}?" if close else ""
        raise InputError(
            f"{label}: variable '{var}' not found{hint} (variables: {', '.join(names) or 'none'})"
        )

    def pick(cands: list[str], why: str) -> str | None:
        if len(cands) <= 1:
            return cands[0] if cands else None
        preferred = [c for c in cands if c.lower() in _SST_NAMES]
        if preferred:
            return min(preferred, key=lambda c: _SST_NAMES.index(c.lower()))
        raise InputError(
            f"{label}: several {why} variables ({', '.join(cands)}); choose one with var= (--var)"
        )

    def chosen(name: str, why: str) -> str:
        # a silent choice among several fields (sst and sst_true, analysed_sst and its error) read
        # as if the file had one: say which and why, and how to take another
        others = [n for n in three_d if n != name]
        if others and warn:
            _warn(f"{label}: using variable '{name}' ({why}); other 3-D variables: "
                          f"{', '.join(others)} (choose with var= / --var)", UserWarning)
        return name

    std = {n: str(ds[n].attrs.get("standard_name", "")).lower() for n in names}
    # 3-D once singleton dims are dropped: open_field drops a depth level or band of size 1
    three_d = [n for n in names if ds[n].ndim >= 3 and ds[n].ndim - ds[n].shape.count(1) <= 3]
    # CF flag variables (flag_values / flag_masks: a GHRSST mask or quality_level, oceandl's own
    # missing_flag) and the ancillary variables a field names (its sigma) are not fields: counted,
    # they made oceandl's own output unreadable without --var ('several 3-D variables (temp,
    # missing_flag, sigma)'). Kept only when nothing else is 3-D
    ancillary = {a for n in names for a in str(ds[n].attrs.get("ancillary_variables", "")).split()}
    fields = [n for n in three_d if n not in ancillary
              and not {"flag_values", "flag_masks"} & set(ds[n].attrs)]
    three_d = fields or three_d
    for cands, why, because in (
        ([n for n in names if _SST_STANDARD_NAME.match(std[n])], "sea_surface_temperature",
         "its standard_name is {std}"),
        ([n for n in names if std[n].startswith("sea_surface_")], "sea_surface_*", "its standard_name is {std}"),
        (three_d, "3-D", "the only 3-D variable"),
    ):
        found = pick(cands, why)
        if found is not None:
            if len(cands) > 1:
                because = "a common SST name"
            return chosen(found, because.format(std=std[found]))
    listing = ", ".join(f"{n} {_dims_text(ds[n])}" for n in names) or "none"
    raise InputError(f"{label}: no 3-D (time, lat, lon) variable (variables: {listing})")


def _role_from_attrs(v: xr.Variable) -> str | None:
    """time / lat / lon from CF attributes or a datetime dtype, else None."""
    attrs = v.attrs
    axis = str(attrs.get("axis", "")).upper()
    if axis in _AXIS:
        return _AXIS[axis]
    std = str(attrs.get("standard_name", "")).lower()
    if std in _STANDARD_NAMES:
        return _STANDARD_NAMES[std]
    units = str(attrs.get("units", "")).lower().replace(" ", "")
    if units in _LAT_UNITS:
        return "lat"
    if units in _LON_UNITS:
        return "lon"
    if " since " in str(attrs.get("units", "")).lower() or np.issubdtype(v.dtype, np.datetime64):
        return "time"
    if v.dtype == object and v.size and hasattr(v.values.flat[0], "calendar"):  # cftime dates
        return "time"
    return None


# dims that are not time, by name: EOF outputs, vertical levels, bands, ensemble members
_NOT_TIME = {"mode": "an EOF mode index", "modes": "an EOF mode index", "eof": "an EOF mode index",
             "pc": "an EOF mode index", "component": "a component index", "band": "an image band",
             "depth": "a vertical axis", "deptht": "a vertical axis", "z": "a vertical axis",
             "lev": "a vertical axis", "level": "a vertical axis", "plev": "a vertical axis",
             "member": "an ensemble member index", "realization": "an ensemble member index"}


def _not_time(dim: Hashable, v: xr.Variable | None) -> str | None:
    """What ``dim`` is when its name or its coordinate ``v`` says it is not time (None when it may be)."""
    if v is not None and (str(v.attrs.get("axis", "")).upper() == "Z" or "positive" in v.attrs):
        return "a vertical axis"
    return _NOT_TIME.get(str(dim).lower())


def refuse_not_time(dim: Hashable, v: xr.Variable | None, where: str) -> None:
    """Refuse ``dim``, left over to be read as time by position, when its name or its coordinate ``v``
    says it is something else: `interpolate --var eofs` on an `oceandl eof` output filled its modes as
    days, and a (depth, lat, lon) field its levels. One message for open_field (files, the CLI) and
    :func:`~oceandl.interp.base.canonical_dims` (arrays given in Python).

    Raises
    ------
    InputError
        Naming the dim, what it is and how to have it read as time if it is one.
    """
    why = _not_time(dim, v)
    if why:
        raise InputError(f"{where}: dim {str(dim)!r} is {why}, not time; the field needs a time axis "
                         f"(if it is one, name it time, or pass time={str(dim)!r} to open_field)")


#: the names xarray gives the dims of an array given none (``xr.DataArray(values)``): a NumPy array's
#: dims, read as (time, lat, lon) by position as documented, without a word
_DEFAULT_DIM = re.compile(r"dim_\d+")


def _say_by_position(pairs: Sequence[tuple[Hashable, str]], where: str) -> None:
    """Warn that the dims of ``pairs`` (``(dim, role)``, in the array's order) were given their roles
    by position, none of them recognised by name or coordinate: a (y, x, time) array of other names
    was fitted along its rows as time, silently. Said only when the order decided (two dims or more)
    and one of them has a name of its own (``dim_0``... of a bare NumPy array go as documented)."""
    if len(pairs) > 1 and any(not _DEFAULT_DIM.fullmatch(str(d)) for d, _ in pairs):
        _warn(f"{where}: dims read by position: {', '.join(f'{d} as {r}' for d, r in pairs)}; rename them "
              "(time, lat, lon) or give them coordinates (dates, CF axis or units) to say otherwise", UserWarning)


def refuse_against_name(pairs: Sequence[tuple[Hashable, str]], dims: Sequence[Hashable], where: str) -> None:
    """Refuse the reading by position ``pairs`` (``(dim, role)``) when it gives a dim a role other
    than the one its name says, which another dim of ``dims`` took: ``(time, lat, y)`` without
    coordinates (``lat`` and ``y`` both latitude names) had ``y`` read as lon in a file
    (:func:`open_field`) and was refused as an array (:func:`~oceandl.interp.base.canonical_dims`).
    Nothing tells which of the two is the latitude: the one rule, for both, is to refuse.

    Raises
    ------
    InputError
        Naming the dims that claim one role and how to tell them apart.
    """
    for dim, role in pairs:
        named = _role_from_name(dim)
        if named is not None and named != role:
            same = [str(d) for d in dims if _role_from_name(d) == named]
            raise InputError(f"{where}: dims {same} are all read as {named} by their names, and {str(dim)!r} is "
                             f"left to be {role}; rename it {role} if it is one, or give the dims coordinates "
                             "(CF axis or units) to tell them apart")


def _role_from_name(name: Hashable) -> str | None:
    low = str(name).lower()
    for role, names in _COORD_NAMES.items():
        if low in names:
            return role
    return None


def _coordinate_values(v: xr.Variable, dim: Hashable, role: str, where: str) -> np.ndarray:
    """1-D values of coordinate ``v`` along ``dim`` (a 2-D lat/lon must be a regular grid)."""
    if v.ndim == 1:
        return np.asarray(v.values)
    other = [d for d in v.dims if d != dim]
    vals = np.asarray(v.transpose(dim, *other).values, dtype=float).reshape(v.sizes[dim], -1)
    # compared with each row's median, not its first value: models write fill values (NaN once
    # decoded) into nav_lat/nav_lon over land, which is no reason to call the grid curvilinear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row of fill values only
        ref = np.nanmedian(vals, axis=1)
    finite = np.isfinite(vals)
    if not np.allclose(vals[finite], np.broadcast_to(ref[:, None], vals.shape)[finite]):
        raise InputError(
            f"{where}: {role} varies in 2-D (a curvilinear grid); regrid to a regular lat/lon grid first"
        )
    return ref


def _varying_dim(v: xr.Variable) -> Hashable:
    """The dim along which a 2-D coordinate (``nav_lat(y, x)``) varies most."""
    vals = np.asarray(v.values, dtype=float)
    spread = [np.nanmax(np.abs(np.diff(vals, axis=i)), initial=0.0) for i in (0, 1)]
    return v.dims[0] if spread[0] >= spread[1] else v.dims[1]


#: the CF ``standard_name`` that says exactly a role (not ``grid_latitude``, not units alone)
_EXACT_STANDARD = {"time": "time", "lat": "latitude", "lon": "longitude"}
_ROLE_WORD = {"time": "time", "lat": "latitude", "lon": "longitude"}


def pick_by_coordinate(role: str, hits: Sequence[tuple[Hashable, xr.Variable | None]], where: str) -> Hashable:
    """The one of several dims whose coordinates' CF attributes all say ``role`` to take as it: the
    only one said so exactly, by its coordinate's ``standard_name`` (``latitude``) or ``axis`` (``Y``)
    or by its own name (``lat``), beside ones said so by units alone (``degrees_north``). The one rule of
    :func:`open_field` and :func:`~oceandl.interp.base.canonical_dims`: a file read the first such dim as
    the latitude (the other, its coordinate in degrees_north, as the longitude), and the same array
    given from Python was refused.

    Raises
    ------
    InputError
        When no one of them, or more than one, is said exactly: naming the dims and how to tell them apart.
    """
    def exact(dim, v) -> bool:
        attrs = v.attrs if v is not None else {}
        return (str(attrs.get("standard_name", "")).lower() == _EXACT_STANDARD[role]
                or _AXIS.get(str(attrs.get("axis", "")).upper()) == role or _role_from_name(dim) == role)

    best = [d for d, v in hits if exact(d, v)]
    if len(best) == 1:
        return best[0]
    said = "; ".join(f"{str(d)!r}: " + ", ".join(f"{k} {str(v.attrs[k])!r}" for k in ("standard_name", "axis", "units")
                                                   if v is not None and k in v.attrs) for d, v in hits)
    names = [str(d) for d, _ in hits]
    other = "other's" if len(names) == 2 else "others'"
    fix = (f"correct the standard_name, axis and units of the one{'s' if len(names) > 2 else ''} that "
           f"{'are' if len(names) > 2 else 'is'} not" if best else
           f"rename that dim {role!r} (ncrename -d {names[0]},{role} in a file, da.rename({{{names[0]!r}: {role!r}}}) "
           f"in Python), or correct the {other} standard_name, axis and units")
    raise InputError(f"{where}: dims {names} all have {_ROLE_WORD[role]} coordinates ({said}), and nothing tells which "
                     f"is the {_ROLE_WORD[role]}; {fix}")


def _exactly_by(role: str, dim: Hashable, v: xr.Variable | None) -> str:
    """How ``dim`` (its coordinate ``v``) says ``role`` exactly, as :func:`pick_by_coordinate` takes it."""
    attrs = v.attrs if v is not None else {}
    if str(attrs.get("standard_name", "")).lower() == _EXACT_STANDARD[role]:
        return f"its standard_name {str(attrs['standard_name'])!r}"
    if _AXIS.get(str(attrs.get("axis", "")).upper()) == role:
        return f"its axis {str(attrs['axis'])!r}"
    return "its name"


def say_not_taken(role: str, winner: tuple[Hashable, xr.Variable | None],
                  losers: Sequence[tuple[Hashable, xr.Variable | None]],
                  final: Mapping[Hashable, str | None], where: str) -> None:
    """Warn that the dims ``losers`` (``(dim, coordinate)``), whose coordinates also say ``role`` (units
    ``degrees_north``), were not taken as it (:func:`pick_by_coordinate` took ``winner``, said so
    exactly), and what each was read as (``final``: dim -> its role, or None when not known here).

    A (time, a, b) file with ``b`` of standard_name latitude and ``a`` in degrees_north read ``a`` as
    the longitude by position, without a word. Its units (or the winner's standard_name) are wrong, and
    which of them only the user can tell: the loser's range of values is said (beyond +-90: a longitude
    whose units are wrong). Warned rather than refused: the file's own exact attribute decides, as CF reads it."""
    for dim, v in losers:
        attrs = v.attrs if v is not None else {}
        said = ", ".join(f"{k} {str(attrs[k])!r}" for k in ("standard_name", "axis", "units") if k in attrs)
        span = ""
        if v is not None and v.ndim == 1 and v.size and np.issubdtype(v.dtype, np.number):
            vals = np.asarray(v.values, dtype=np.float64)
            if np.isfinite(vals).any():
                span = f", values {np.nanmin(vals):g} to {np.nanmax(vals):g}"
        got = final.get(dim)
        as_what = f"read as the {_ROLE_WORD[got]}" if got else "left to be read by its position"
        _warn(f"{where}: dim {str(dim)!r} has {_ROLE_WORD[role]} coordinates ({said}{span}), but {str(winner[0])!r} "
              f"is the {_ROLE_WORD[role]} ({_exactly_by(role, *winner)}): {str(dim)!r} is {as_what}; if it is one, "
              f"correct its units{' (degrees_east)' if role == 'lat' else ' (degrees_north)' if role == 'lon' else ''}"
              f", else the standard_name, axis and units of {str(winner[0])!r}", UserWarning)


def _assign_roles(ds: xr.Dataset, da: xr.DataArray, overrides: dict, where: str, say: bool = True) -> dict:
    """Map each role (time, lat, lon) to ``(dim, coordinate Variable or None)``. ``say``: warn of a dim
    whose coordinates say a role another dim took (:func:`say_not_taken`), once per field (not per file)."""
    dims = list(da.dims)
    found: dict[str, tuple[Hashable, xr.Variable | None]] = {}
    for role, name in overrides.items():
        if name is None:
            continue
        if name in dims:
            found[role] = (name, ds.variables.get(name))
            continue
        if name not in ds.variables:
            raise InputError(f"{where}: {role} coordinate '{name}' not found")
        v = ds.variables[name]
        along = [d for d in v.dims if d in dims]
        if v.ndim == 2 and len(along) == 2 and np.issubdtype(v.dtype, np.number):
            along = [_varying_dim(v)]
        if len(along) != 1:
            raise InputError(f"{where}: {role} coordinate '{name}' {_dims_text(v)} does not match {_dims_text(da)}")
        found[role] = (along[0], v)

    # Candidates: (priority, role, dim, variable). Priority 0 = CF attributes, 1 = variable
    # name, 2 = dim name only. Assigned greedily so each dim gets one role.
    cands = []
    for name, v in ds.variables.items():
        if not set(v.dims) <= set(dims) or v.ndim not in (1, 2):
            continue
        if v.ndim == 2:
            # Only lat/lon come in 2-D (nav_lat(y, x)); a regular grid's ones vary along one dim.
            role = _role_from_attrs(v) or _role_from_name(name)
            if role not in ("lat", "lon") or not np.issubdtype(v.dtype, np.number):
                continue
            dim = _varying_dim(v)
        else:
            dim = v.dims[0]
        by_attrs, by_name = _role_from_attrs(v), _role_from_name(name)
        if by_attrs:
            cands.append((0, by_attrs, dim, name))
        elif by_name:
            cands.append((1, by_name, dim, name))
    for d in dims:
        role = _role_from_name(d)
        if role:
            cands.append((2, role, d, None))
    # two dims whose own coordinates' attributes say one role (both in degrees_north): the first in the
    # file's order took it, the other read as lon without a word, where canonical_dims refused the array
    not_taken = []  # (role, the dim taken, the others)
    for role in DIMS:
        hits = [d for d in dims if role not in found and (0, role, d, d) in cands]
        if len(hits) > 1:
            keep = pick_by_coordinate(role, [(d, ds.variables.get(d)) for d in hits], where)
            cands = [c for c in cands if not (c[0] == 0 and c[1] == role and c[2] == c[3] and c[2] != keep)]
            not_taken.append((role, (keep, ds.variables.get(keep)),
                              [(d, ds.variables.get(d)) for d in hits if d != keep]))
    taken = {dim for dim, _ in found.values()}
    # Within a priority, a dim's own coordinate goes before other 1-D variables along it.
    for _, role, dim, name in sorted(cands, key=lambda c: (c[0], c[3] != c[2])):
        if role in found or dim in taken:
            continue
        found[role] = (dim, ds.variables[name] if name is not None else ds.variables.get(dim))
        taken.add(dim)
    if say and not_taken:
        final: dict[Hashable, str | None] = {dim: r for r, (dim, _) in found.items()}
        rest, left = [d for d in dims if d not in final], [r for r in DIMS if r not in found]
        if len(rest) == len(left):  # the dims left take the roles left in their order (open_field)
            final.update(zip(rest, left))
        for role, keep, others in not_taken:
            say_not_taken(role, keep, others, final, where)
    return found


# --------------------------------------------------------------------------------------------
# The input's grid, to write results on
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceGrid:
    """How a field read by :func:`open_field` lay in its file, to put results back on that grid.

    Attributes
    ----------
    dims : dict
        Role (``time``, ``lat``, ``lon``) -> the file's dim name.
    take : dict
        Role -> positions along the clean axis of each position along the file's axis (``None``
        where the order is the same): the file's order, duplicated columns (0 and 360) included.
    coords : dict
        Name -> the file's coordinate variables along those dims (values, dtype, attrs), loaded.
    order : tuple
        The roles in the order of the file variable's dims (``("time", "lat", "lon")`` mostly).
    """

    dims: dict
    take: dict
    coords: dict
    order: tuple = DIMS  # the roles in the file variable's dim order: ("lon", "lat", "time") for some files
    lon_wrapped: bool = True  # longitudes in degrees, put in open_field's convention (not a projection's x)

    @property
    def is_clean(self) -> bool:
        """Whether the file's layout is the clean one: the same names, dim order, coordinate order and values
        (only the coordinates' dtype or attributes may differ)."""
        return (self.order == DIMS and all(self.dims[r] == r for r in DIMS)
                and all(t is None for t in self.take.values()) and set(self.coords) == set(DIMS) and all(self.coords[r].dims == (r,) for r in DIMS)
                and self.lon_values_kept)

    @property
    def lon_values_kept(self) -> bool:
        """Whether the file's 1-D longitudes are already in the convention :func:`open_field` gives them
        (-180..180, or 0..360 for a grid across the dateline), so that they come back unchanged."""
        lon = self.coords.get("lon")
        if lon is None or lon.ndim != 1:
            return False
        vals = np.asarray(lon.values, dtype=float)
        return bool(not self.lon_wrapped or np.array_equal(_lon_convention(vals), vals))


def _source_grid(ds: xr.Dataset, roles: dict, coords: dict, out: xr.DataArray, file_dims: tuple,
                 wrap_lon: bool = True) -> SourceGrid:
    """The :class:`SourceGrid` of ``out`` (the clean field) read from variable dims ``roles`` of ``ds``
    (``file_dims``: that variable's dims, in the file's order; ``wrap_lon``: longitudes in degrees,
    put in :func:`open_field`'s convention)."""
    take = {"time": None}
    for role in ("lat", "lon"):
        vals = np.asarray(coords[role][1], dtype=float)  # the file's order, as floats
        if role == "lon" and wrap_lon:
            vals = _lon_convention(vals)
        idx = out.indexes[role].get_indexer(vals)
        take[role] = None if np.array_equal(idx, np.arange(out.sizes[role])) else idx
    dims = {role: roles[role][0] for role in DIMS}
    names = set()
    for dim, v in roles.values():
        names |= {n for n, w in ds.variables.items() if w is v or n == dim}
    # coordinates along the grid's dims only (lat(lat), nav_lat(y, x), time(time)), loaded: the file closes
    grid_dims = set(dims.values())
    keep = {n: ds.variables[n].load().copy() for n in sorted(names, key=str)
            if ds.variables[n].dims and set(ds.variables[n].dims) <= grid_dims}
    role_of = {dim: role for role, dim in dims.items()}
    order = tuple(role_of[d] for d in file_dims if d in role_of)
    return SourceGrid(dims=dims, take=take, coords=keep, order=order if len(order) == 3 else DIMS, lon_wrapped=wrap_lon)


def source_grid(da: xr.DataArray) -> SourceGrid | None:
    """The :class:`SourceGrid` :func:`open_field` recorded on ``da`` (``None`` for other arrays)."""
    grid = da.encoding.get("source_grid")
    return grid if isinstance(grid, SourceGrid) else None


def to_source_grid(obj, grid: SourceGrid | None):
    """Put a result on the clean ``(time, lat, lon)`` grid back on the grid of the file it came from.

    The file's dim names and dim order, its order along each axis (a descending latitude, longitudes in
    0..360) and its coordinate variables (values, dtype, attributes; 2-D ``nav_lat``/``nav_lon``
    too) come back, so ``result - input`` aligns in xarray. Works on a Dataset or DataArray
    holding any of the three dims (a filled field, its flags, EOFs with a ``mode`` dim); lazy
    (dask) data stay lazy.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        On the grid :func:`open_field` gave.
    grid : SourceGrid or None
        From :func:`source_grid`; ``None`` returns ``obj`` as it is.

    Returns
    -------
    Same type as ``obj``.
    """
    if grid is None:
        return obj
    present = [r for r in DIMS if r in obj.dims]
    obj = obj.isel({r: grid.take[r] for r in present if grid.take[r] is not None})
    obj = obj.rename({r: grid.dims[r] for r in present if grid.dims[r] != r})  # dims and their coordinates
    here = set(obj.dims)
    # the clean coordinates go (now under the file's dim names), the file's own come back: values,
    # dtype, attrs, 2-D nav_lat/nav_lon; a dim the file had no coordinate for keeps none
    # obj.coords, not obj.variables: a DataArray (what oceandl.interpolate returns) has no .variables
    obj = obj.drop_vars([grid.dims[r] for r in present if grid.dims[r] in obj.coords])
    obj = obj.assign_coords({n: v for n, v in grid.coords.items() if set(v.dims) <= here})
    if grid.order == DIMS:
        return obj
    if isinstance(obj, xr.DataArray):
        return _in_file_order(obj, grid)
    return obj.assign({n: _in_file_order(obj[n], grid) for n in obj.data_vars})


def _in_file_order(da: xr.DataArray, grid: SourceGrid) -> xr.DataArray:
    """``da`` with the grid's dims it holds in the file's order (a tool that reads by position, MATLAB's
    ``ncread``, sees the input's layout); other dims (``mode``) stay where they are."""
    perm = _file_dim_order(da.dims, grid)
    return da.transpose(*[da.dims[i] for i in perm]) if perm != tuple(range(da.ndim)) else da


def _file_dim_order(dims: tuple, grid: SourceGrid) -> tuple[int, ...]:
    """Positions into ``dims`` (a variable's dims, on the file's names) that put the grid's dims in
    the file's order, leaving the others in place."""
    names = [grid.dims[r] for r in grid.order]
    held = iter([d for d in names if d in dims])
    new = [next(held) if d in names else d for d in dims]
    return tuple(dims.index(d) for d in new)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _check_input_path(path: Path) -> None:
    """The refusals before a netCDF file is opened (also for the lazy reader of ``--chunks``)."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a netCDF file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def static_in_series(files: Sequence[Path], var) -> bool:
    """Whether variable ``var`` of the first of ``files`` (a file per day) is a static (lat, lon)
    map: two dims, neither of them time, and no scalar time coordinate dating the file (a 2-D field
    of one day). Each daily file of some products carries the same bathymetry or distance to the
    coast; read as a series, each file's was refused as 'has no time axis'."""
    if var is None:
        return False
    try:
        ds = _open_path(Path(files[0]), chunks={})
    except (InputError, OSError, ValueError):
        return False  # said where the files are opened as a series
    try:
        v = ds.variables.get(var)
        if v is None or v.ndim != 2 or any(_is_time_dim(ds, d) for d in v.dims):
            return False
        return not any(c.ndim == 0 and (_role_from_attrs(c) == "time" or _role_from_name(n) == "time")
                       for n, c in ds.variables.items())
    finally:
        ds.close()


def _open_path(path: Path, **kwargs) -> xr.Dataset:
    _check_input_path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    magic = head[:4]
    # netCDF-3 starts with "CDF" + version; netCDF-4 is HDF5 (signature at 0, or after a user block).
    signed = magic in (b"CDF\x01", b"CDF\x02", b"CDF\x05") or _has_hdf5_signature(path, head)
    engines: list[str | None] = [None]
    if magic in (b"CDF\x01", b"CDF\x02"):
        # netCDF-C reads past the end of a truncated classic file as fill values; scipy's
        # reader checks the sizes, so it goes first when installed (without mmap, which would
        # warn when a failed open is collected).
        engines.insert(0, "scipy")
    for engine in engines:
        try:
            extra = {"mmap": False} if engine == "scipy" else {}
            return open_netcdf(path, engine=engine, **extra, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
            scipy_missing = isinstance(exc, ImportError) or "unrecognized engine" in str(exc)
            if engine == "scipy" and scipy_missing:
                continue
            if not signed:
                raise InputError(f"{path}: not a readable netCDF file (no netCDF-3 or netCDF-4/HDF5 "
                                 f"signature; it starts with {head[:8]!r})") from exc
            raise InputError(f"{path}: not a readable netCDF file, truncated or corrupt ({one_line(exc)})") from exc
    raise InputError(f"{path}: not a readable netCDF file")


def open_netcdf(path, *, warn: bool = True, **kwargs) -> xr.Dataset:
    """``xr.open_dataset(path, **kwargs)``; a time whose units xarray cannot decode ('months since
    2000-01-01' on a standard calendar, as monthly products write it) is read as its numbers.

    Such a file was refused as 'not a readable netCDF file, truncated or corrupt', with no way to
    pass decode_times=False from the command line. Its time is still recognised (the units say
    'since'), checked for order, and written back as the same numbers with the same units.
    """
    try:
        return xr.open_dataset(path, **kwargs)
    except ValueError as exc:
        if "decode time" not in str(exc):
            raise
        ds = xr.open_dataset(path, decode_times=False, **kwargs)
        if warn:
            _warn(f"{path}: {str(exc).split('. ')[0]}; time is read as plain numbers in those units "
                          "(and written back so)", UserWarning)
        return ds


def check_groups(ds: xr.Dataset, path: Path) -> None:
    """Refuse a netCDF-4 file whose variables all lie in groups (only the root group is read),
    naming the groups: it was 'no 3-D (time, lat, lon) variable (variables: none)'."""
    if ds.data_vars:
        return
    try:
        import netCDF4

        with netCDF4.Dataset(path) as nc:
            groups = [g.path for g in _walk_groups(nc) if g.variables]
    except Exception:  # noqa: BLE001 - not netCDF-4, or unreadable: the usual message follows
        return
    if groups:
        raise InputError(f"{path}: no variables in the root group, only in group(s) {', '.join(groups)}, "
                         "which are not read; open one with xarray.open_dataset(path, group=...) and pass "
                         "the variable to oceandl from Python")


def _walk_groups(group):
    for g in group.groups.values():
        yield g
        yield from _walk_groups(g)


def _has_hdf5_signature(path: Path, head: bytes) -> bool:
    sig = b"\x89HDF\r\n\x1a\n"
    if head.startswith(sig):
        return True
    with open(path, "rb") as fh:  # user blocks of 512, 1024, 2048... bytes
        for off in (512, 1024, 2048, 4096):
            fh.seek(off)
            if fh.read(8) == sig:
                return True
    return False


# --------------------------------------------------------------------------------------------
# Many files: a time series kept as a file per day (GHRSST L3, CMEMS and OSI SAF daily products)
# --------------------------------------------------------------------------------------------

#: what a folder of data files is read for
NETCDF_SUFFIXES = (".nc", ".nc4")


def input_files(source) -> list[Path] | None:
    """The files a many-file input names, or None when ``source`` is one file (or not a path).

    ``source`` names several files as a list or tuple of paths, a folder (its ``*.nc`` and
    ``*.nc4`` files, hidden ones left out) or a glob pattern (``"l3s/2020*.nc"``; quoted in a
    shell, which would otherwise expand it itself). The files come sorted by name, each once;
    :func:`open_files` puts them in time order. A pattern or folder of one file gives that file.

    Raises
    ------
    InputError
        An empty list, a folder without netCDF files, a pattern that matches no file.
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise InputError("no input file given")
        files = [Path(p).expanduser() for p in source]
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.suffix.lower() in NETCDF_SUFFIXES
                           and not f.name.startswith(".") and not f.is_dir())
            if not files:
                raise InputError(f"{path}: is a folder with no netCDF files (*.nc, *.nc4) in it; give a file, "
                                 f"a folder of them or a quoted pattern such as '{path}/*.nc'")
        elif not path.exists() and is_pattern(path):
            files = sorted(Path(f) for f in glob.glob(str(path)) if not Path(f).is_dir())
            if not files:
                raise InputError(f"{path}: no file matches this pattern")
        else:
            return None
    else:
        return None
    seen: set[str] = set()
    unique = []
    for f in files:  # 'a.nc a.nc' or a pattern and a list naming one file twice: read once
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def is_pattern(text) -> bool:
    """Whether a path is a glob pattern (``*``, ``?`` or ``[``): files to expand, not a file's name."""
    return any(c in str(text) for c in "*?[")


def split_file_var(entry: str, source, option: str = "--aux"):
    """``(source, variable)`` of a ``VAR`` or ``FILE:VAR`` entry (``--aux``, ``--mask``): ``VAR`` is a
    variable of ``source`` (the field's file(s) or Dataset); ``FILE:VAR`` one of another file, a folder
    of them or a glob pattern, split at the last colon when FILE names one.

    Raises
    ------
    InputError
        ``FILE`` looks like a path (a ``/`` or a netCDF suffix) and there is no such file.
    """
    entry = aux_mapping(entry)[1]  # NAME=VAR, NAME=FILE:VAR: VAR is read (named NAME by aux_key)
    if ":" in entry:
        path, var = entry.rsplit(":", 1)
        p = Path(path).expanduser()
        if path and var:
            if is_pattern(path) and glob.glob(str(p)):
                return str(p), var
            if p.is_file() or (p.is_dir() and any(f.suffix.lower() in NETCDF_SUFFIXES for f in p.iterdir())):
                return p, var
            if not p.exists() and ("/" in path or path.lower().endswith(NETCDF_SUFFIXES)):
                raise InputError(f"{option} {entry}: no such file {path!r} (FILE:VAR reads VAR from FILE)")
    return source, entry


#: ``NAME=`` before an entry: the covariate's name (the one a model was trained or fitted with), the
#: rest the VAR or FILE:VAR it is read from
_AUX_NAME = re.compile(r"^([A-Za-z_][\w.\-]*)=(.+)$")


def aux_mapping(entry: str) -> tuple[str | None, str]:
    """``(NAME, rest)`` of an ``--aux NAME=VAR`` / ``NAME=FILE:VAR`` entry (the covariate a model knows
    as NAME, read from VAR: next year's file calls it otherwise), ``(None, entry)`` without ``NAME=``
    (or where the whole entry is a file's path that holds a ``=``)."""
    m = _AUX_NAME.match(entry)
    if m is None or Path(entry.rsplit(":", 1)[0]).expanduser().exists():
        return None, entry
    return m.group(1), m.group(2)


def aux_key(entry: str, source) -> str:
    """The name a covariate ``entry`` (``VAR``, ``FILE:VAR``, ``NAME=VAR``, ``NAME=FILE:VAR``) is given
    to the method by: NAME where said, else VAR."""
    name, _ = aux_mapping(entry)
    return name if name is not None else split_file_var(entry, source)[1]


def describe_source(source, files: list[Path] | None = None) -> str:
    """How messages and provenance name an input: the path, or for several files the folder or
    pattern (or the first and last file) with their number."""
    if files is None:
        try:
            files = input_files(source)
        except InputError:  # a saved fit's folder, or a source the reader refuses with the reason
            files = None
    if not files or len(files) == 1:
        return str(files[0] if files else source)
    if isinstance(source, (list, tuple)):
        return f"{files[0]} ... {files[-1]} ({len(files)} files)"
    return f"{Path(source).expanduser()} ({len(files)} files)"


def entry_paths(*entries) -> tuple:
    """The files of other files' ``FILE:VAR`` entries (``--aux``, ``--fit-aux``, ``--mask``; each an
    entry, a list of them or None; a ``VAR`` of the field's own file and an array add none), for the
    checks that an output does not replace an input: ``-o mw.nc --overwrite`` beside ``--aux
    mw.nc:sst_mw`` replaced the covariate's file with the fill."""
    out: tuple = ()
    for group in entries:
        # one entry, a list or tuple of them; an array (aux=, mask= from Python) names no file
        for entry in ([group] if isinstance(group, str) else group if isinstance(group, (list, tuple)) else ()):
            if isinstance(entry, str):
                try:
                    src, _ = split_file_var(entry, None)
                except InputError:  # no such file: said by the reader, with the option
                    continue
                out += source_paths(src) if src is not None else ()
    return out


def source_paths(source) -> tuple:
    """The files ``source`` reads (one path, or those of a many-file input), for the checks that
    an output does not replace an input."""
    if source is None or not isinstance(source, (str, os.PathLike, list, tuple)):
        return ()
    try:
        return tuple(input_files(source) or (source,))
    except InputError:  # a saved fit's folder (--fit-on), or what the reader refuses later with the reason
        return (source,)


class _Part:
    """One file of a many-file input: its dataset (the field along a time dim), the name of that
    dim, and the file's first and last time."""

    def __init__(self, path: Path, ds: xr.Dataset, name: str, tdim: Hashable):
        self.path, self.ds, self.name, self.tdim = path, ds, name, tdim
        t = ds[tdim].values
        self.first, self.last = t[0], t[-1]


def _same_units(parts: list[_Part], label: str) -> None:
    """Refuse files whose variables along time (the field, its covariates) say different units: a
    year of daily files in degC with one in kelvin was put together as they were, the first file's
    units kept, and filled (its median 21.7 degC from 15 degC and 288 K), without a word. Units that
    name the same unit (degC, Celsius, degree_Celsius) are the same; a file without any is not compared.
    Only a temperature's units (degC against kelvin) are refused: other spellings (``m s-1`` and
    ``m/s`` across a product's versions, of a variable the fill may not even read) are not told apart."""
    from oceandl.interp.neural import _unit

    for name in parts[0].ds.data_vars:
        seen: dict[str, tuple[str, Path]] = {}
        for p in parts:
            v = p.ds.variables.get(name)
            if v is None or p.tdim not in v.dims or v.attrs.get("units") is None:
                continue
            seen.setdefault(str(_unit(v.attrs["units"])), (str(v.attrs["units"]), p.path))
        if len(seen) > 1 and {"degC", "K"} & set(seen):
            said = ", ".join(f"{u!r} ({path})" for u, path in seen.values())
            raise InputError(f"{label}: variable {str(name)!r} is in different units in its files: {said}; the files "
                             "are put together as they are, in one unit: convert them to one first")


def _part(path: Path, ds: xr.Dataset, var: str | None, time: str | None) -> _Part:
    # the choice among several variables is said once, for the series (open_field), not again for its first file
    name = find_variable(ds, var, label=str(path), warn=False)
    where = f"{path}: variable '{name}'"
    v = ds[name]
    if time is not None and time not in v.dims and time in ds.variables and ds.variables[time].ndim == 0:
        ds = ds.set_coords(time).expand_dims(time)  # a 2-D file whose date is a scalar coordinate
        v = ds[name]
    roles = _assign_roles(ds, v, {"time": time}, where, say=False)  # said once, for the series (open_field)
    if "time" in roles:
        tdim = roles["time"][0]
    else:
        scalar = [n for n, c in ds.variables.items() if c.ndim == 0 and n not in v.dims
                  and (_role_from_attrs(c) == "time" or _role_from_name(n) == "time")]
        taken = {roles[r][0] for r in ("lat", "lon") if r in roles}
        left = [d for d in v.dims if d not in taken]
        if len(left) == 1 and v.ndim >= 3:
            tdim = left[0]
        elif scalar and v.ndim == 2:
            ds = ds.set_coords(scalar[0]).expand_dims(scalar[0])
            tdim = scalar[0]
        else:
            raise InputError(f"{where}: has no time axis {_dims_text(v)} and no time coordinate giving the file's "
                             "date; each file of a many-file input holds one or more time steps")
    if tdim not in ds.variables:
        raise InputError(f"{where}: dim {str(tdim)!r} has no coordinate values; the files of a many-file input "
                         "are put in time order by them")
    if ds.sizes[tdim] == 0:
        raise InputError(f"{where}: no time steps (dim {str(tdim)!r} has length 0)")
    return _Part(path, ds, name, tdim)


def _same_grid(part: _Part, ref: _Part) -> None:
    """Refuse a file whose grid (every coordinate of the field without time) is not the first file's."""
    v, r = part.ds[part.name], ref.ds[ref.name]
    dims = [d for d in r.dims if d != ref.tdim]
    other = [d for d in v.dims if d != part.tdim]
    if other != dims:
        raise InputError(f"{part.path}: variable '{part.name}' has dims {_dims_text(v)}, the first file's "
                         f"{ref.path} {_dims_text(r)}; the files of one product share one grid")
    for n, c in r.coords.items():
        if ref.tdim in c.dims or c.ndim == 0:
            continue
        mine = v.coords.get(n)
        a = np.asarray(c.values)
        b = None if mine is None else np.asarray(mine.values)
        if b is None or a.shape != b.shape:
            size = "none" if b is None else f"{b.size} values"
            raise InputError(f"{part.path}: coordinate {str(n)!r} has {size} against {a.size} in the first file "
                             f"{ref.path}; the files of one product share one grid")
        if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f"):
            diff = (f" (largest difference {np.nanmax(np.abs(a.astype(float) - b.astype(float))):.3g})"
                    if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number) else "")
            raise InputError(f"{part.path}: coordinate {str(n)!r} differs from the first file's {ref.path}{diff}; "
                             "the files of one product share one grid (regrid them first)")


#: while :func:`reusing_opened` is active (in this thread): the series :func:`open_files` opened, by
#: (files, var, time); a context variable, so that two fills in two threads do not share (nor close) one
_OPENED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("oceandl_opened_series", default=None)


@contextlib.contextmanager
def reusing_opened():
    """Within it, :func:`open_files` gives a series it already opened (the same files, variable and
    time coordinate) again, as a shallow copy, without reading every file's header once more.

    A chunked fill of a folder opened the series two or three times (its times for a file per
    input file, the statistics pass's chunks, the blocks' read chunks): as many header reads of
    every file (seconds over a year of daily L3 files on a network disk). The files are closed
    when the outermost block ends. Nested blocks share the outer one's cache."""
    if _OPENED.get() is not None:
        yield
        return
    token = _OPENED.set({})
    try:
        yield
    finally:
        opened = _OPENED.get()
        _OPENED.reset(token)
        for ds in opened.values():
            ds.close()


def open_files(files, var: str | None = None, *, time: str | None = None, label: str | None = None) -> xr.Dataset:
    """Open several netCDF files, each one or more time steps of one field on one grid, as one
    lazy Dataset along time (a file per day, as GHRSST L3 and CMEMS products come).

    Parameters
    ----------
    files : sequence of paths (or anything :func:`input_files` takes)
        In any order: they are put in time order by their time coordinate.
    var : str, optional
        The field's name (found from CF attributes in the first file when omitted), looked for
        in every file.
    time : str, optional
        Name of the time coordinate when it cannot be recognised; also a scalar (0-d) coordinate
        that dates a 2-D ``(lat, lon)`` file.
    label : str, optional
        How messages about the whole name it (default: :func:`describe_source`).

    Returns
    -------
    xarray.Dataset
        The files' variables that have the time dim, concatenated along it (dask-backed: a
        chunk per file, nothing read), the others and the global attributes from the first
        file in time. ``close()`` closes every file.

    Raises
    ------
    InputError
        A file that is missing, unreadable, without the variable or a time coordinate (named);
        a file on another grid than the first's; files whose times overlap (two versions of a day).
    """
    files = input_files(files) or [Path(files)]
    key = (tuple(str(Path(f).resolve()) for f in files), var, time)
    cache = _OPENED.get()
    if cache is not None and key in cache:  # checked when first opened; its headers are not read again
        return cache[key].copy(deep=False)
    label = label or describe_source(files, files)
    opened: list[xr.Dataset] = []
    try:
        parts = []
        for path in files:
            ds = _open_path(path, chunks={})  # dask, a chunk per file: nothing read before it is used
            opened.append(ds)
            check_groups(ds, path)
            parts.append(_part(path, ds, var if var is not None else (parts[0].name if parts else None), time))
        parts.sort(key=lambda p: p.first)
        ref = parts[0]
        for prev, part in itertools.pairwise(parts):
            _same_grid(part, ref)
            if part.tdim != ref.tdim:
                raise InputError(f"{part.path}: time dim {str(part.tdim)!r}, the first file's {str(ref.tdim)!r}")
            if not part.first > prev.last:
                raise InputError(f"{part.path}: its first time {_when(part.first)} is not after the last of "
                                 f"{prev.path} ({_when(prev.last)}): the files overlap in time (two versions of one "
                                 "day?); give each once")
        _same_units(parts, label)
        units = {str(p.ds[p.tdim].attrs.get("units")) for p in parts if p.ds[p.tdim].dtype.kind in "iuf"}
        if len(units) > 1:  # times left as numbers (units xarray cannot decode) in different units: no order
            raise InputError(f"{label}: the files' times are numbers in different units ({', '.join(sorted(units))})")
        try:
            out = xr.concat([p.ds for p in parts], dim=ref.tdim, data_vars="minimal", coords="minimal",
                            compat="override", join="override", combine_attrs="override")
        except Exception as exc:  # noqa: BLE001 - a variable in some files only, clashing types...
            raise InputError(f"{label}: the files cannot be put together along {str(ref.tdim)!r} "
                             f"({one_line(exc)})") from exc
    except BaseException:
        for ds in opened:
            ds.close()
        raise
    out.set_close(lambda: [ds.close() for ds in opened])
    # which file holds which times, and its own global attributes: what a file-per-input output is split by
    # (series_spans, without opening every file once more)
    out.encoding["file_spans"] = [FileSpan(p.path, p.first, p.last, dict(p.ds.attrs)) for p in parts]
    # the first file's global attributes, but the time covered is the whole series' (ACDD, GHRSST)
    last = parts[-1].ds.attrs
    out.attrs.update({k: last[k] for k in ("time_coverage_end", "stop_time", "stop_date", "end_time") if k in last})
    out.attrs.pop("time_coverage_duration", None)
    if cache is not None:
        cache[key] = out
        return out.copy(deep=False)  # a caller's close() or edits leave the cached one as it is
    return out


# --------------------------------------------------------------------------------------------
# A file per input file: the output of a many-file input written as it came (a file per day)
# --------------------------------------------------------------------------------------------

#: global attributes that say which times one file covers: each output file takes its input's own
_COVERAGE_ATTRS = ("time_coverage_start", "time_coverage_end", "time_coverage_duration", "start_time", "stop_time",
                   "start_date", "stop_date", "end_time")


_START_ATTRS = ("time_coverage_start", "start_time", "start_date")
_END_ATTRS = ("time_coverage_end", "stop_time", "stop_date", "end_time")
#: ACDD and GHRSST (GDS 2.0) names of a file's southern, northern, western and eastern limits
_EXTENT_ATTRS = {"lat": (("geospatial_lat_min", "southernmost_latitude"), ("geospatial_lat_max", "northernmost_latitude")),
                 "lon": (("geospatial_lon_min", "westernmost_longitude"), ("geospatial_lon_max", "easternmost_longitude"))}


def _coverage_moved(attrs: dict, start: bool, end: bool) -> dict:
    """``attrs`` less the time coverage at the ends a cut moved (``start``, ``end``): a file's
    coverage no longer says when the steps kept begin or end (the duration goes with either)."""
    drop = (_START_ATTRS if start else ()) + (_END_ATTRS if end else ()) + (("time_coverage_duration",)
                                                                          if start or end else ())
    return {k: v for k, v in attrs.items() if k not in drop}


def _cut_attrs(attrs: dict, whole: dict, cut: dict, spans=None) -> dict:
    """Global attributes of a file (or series) cut to a region and period (``--bbox``, ``--dates``).

    Its extents (ACDD ``geospatial_lat_min``..., GHRSST ``southernmost_latitude``...) are set to
    the cut grid's cells (a box of a global L3 file said -90..90); its time coverage is that of
    the first and last file kept (``spans``, a series' files) where the cut starts or ends with one,
    else dropped at an end the cut moved (a period of one file, or part of a file). ``whole`` and
    ``cut``: the time, lat and lon coordinate values (by role) before and after the cut."""
    out = dict(attrs)
    t0, t1 = whole.get("time"), cut.get("time")
    if t0 is not None and t1 is not None and t1.size and t1.size < t0.size:
        moved = [bool(t1[0] != t0[0]), bool(t1[-1] != t0[-1])]
        for i, (keys, t) in enumerate(((_START_ATTRS, t1[0]), (_END_ATTRS, t1[-1]))):
            span = next((sp for sp in spans or () if sp.first <= t <= sp.last), None)
            if moved[i] and span is not None and t == (span.first if i == 0 else span.last):
                for k in keys:  # the series starts (ends) with this file: its own coverage
                    out.pop(k, None)
                    if k in span.attrs:
                        out[k] = span.attrs[k]
                moved[i] = False
        out = _coverage_moved(out, *moved) if any(moved) else out
    for role, (lows, highs) in _EXTENT_ATTRS.items():
        v0, v1 = whole.get(role), cut.get(role)
        if v0 is None or v1 is None or not v1.size or v1.size >= v0.size or v1.ndim != 1:
            continue
        vals = np.asarray(v1, dtype=float)
        half = _step(np.sort(vals)) / 2
        if role == "lat":
            lo, hi = max(vals.min() - half, -90.0), min(vals.max() + half, 90.0)
        else:  # the box runs east from the column after the widest gap: across the dateline min > max (ACDD)
            ring = np.sort(vals % 360.0)
            j = int(np.argmax(np.diff(np.append(ring, ring[0] + 360.0))))
            west, east = ring[(j + 1) % ring.size], ring[j]
            lo, hi = (float(x) for x in lon_convention_of(np.array([west - half, east + half]) % 360.0,
                                                          np.asarray(v0, dtype=float)))
        for keys, value in ((lows, lo), (highs, hi)):
            for k in keys:
                if k in out:
                    # a float32 attribute stays one; an integer one (-90) would round the cells' edges
                    out[k] = type(out[k])(value) if isinstance(out[k], (float, np.floating)) else float(value)
    if any(r in cut and cut[r] is not None and whole.get(r) is not None and cut[r].size < whole[r].size
           for r in ("lat", "lon")):
        out.pop("geospatial_bounds", None)  # a WKT polygon of the whole file's
    return out


class FileSpan(NamedTuple):
    """One input file of a series: its path, first and last time, and global attributes."""

    path: Path
    first: object
    last: object
    attrs: dict


def names_folder(output) -> bool:
    """Whether an output path names a folder for a file per input file: a string written with a
    trailing slash (``"l4_2020/"``; a Path has forgotten it), or a folder that exists, unless its
    name ends in .nc (``-o filled.nc`` where a folder of that name is in the way is refused as such,
    not filled into)."""
    path = Path(output)
    return str(output).endswith(("/", os.sep)) or (path.is_dir() and path.suffix.lower() not in NETCDF_SUFFIXES)


def series_spans(source, var: str | None = None, *, time: str | None = None, field=None) -> list[FileSpan]:
    """The input files of ``source`` (one file, a list, a folder or a pattern) in time order, each
    with the times it covers and its global attributes: what :func:`write_per_file` splits an
    output by. Only headers and time coordinates are read; nothing when ``field`` (the series
    :func:`open_field` read from ``source``) recorded them as it opened the files.

    Raises
    ------
    InputError
        As :func:`open_files` (a file without the variable or a time coordinate...).
    """
    if field is not None and field.encoding.get("file_spans"):
        return list(field.encoding["file_spans"])
    files = input_files(source) or [Path(source).expanduser()]
    spans = []
    for path in files:
        ds = _open_path(path, chunks={})
        try:
            part = _part(path, ds, var, time)
            var = part.name  # the first file's field, looked for in the others (as open_files does)
            spans.append(FileSpan(path, part.first, part.last, dict(ds.attrs)))
        finally:
            ds.close()
    return sorted(spans, key=lambda s: s.first)


def _span_attrs(attrs: dict, first: dict, own: dict) -> dict:
    """Global attributes of one output file of a series: the series output's ``attrs`` (which took
    the first input file's, :func:`file_attrs`), with this input file's time coverage and history,
    and this file's own value of every other attribute the output took from the first file (its
    ``platform``, ``sensor``, ``comment``...: a day of S-NPP said NOAA-20, the first day's)."""
    from .interp.base import _input_attrs

    out = dict(attrs)
    mine = {k: v for k, v in _input_attrs(own).items() if k not in _INSTANCE_ATTRS}
    skip = {"history", "Conventions", *_COVERAGE_ATTRS}
    for k, v in _input_attrs(first).items():
        if k in skip or k in _INSTANCE_ATTRS or k not in out or not _same_attr(out[k], v):
            continue  # not taken from the first file (the fill's own, or the file has no such attribute)
        if k in mine:
            out[k] = mine[k]
        else:
            del out[k]
    out.update({k: v for k, v in mine.items() if k not in skip and k not in first and k not in out})
    for k in _COVERAGE_ATTRS:
        out.pop(k, None)
        if k in own:
            out[k] = own[k]
    history, old = str(out.get("history", "")), str(first.get("history", "") or "")
    if old and history.endswith(old):  # the fill's line in front of this file's own history
        mine = str(own.get("history", "") or "")
        out["history"] = history[: len(history) - len(old)].rstrip("\n") + (f"\n{mine}" if mine else "")
    return out


def _same_attr(a, b) -> bool:
    """Whether two attribute values are equal (strings, numbers or arrays)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False


class PerFilePlan(NamedTuple):
    """Which time steps (indices along time) of a series go to which output file."""

    folder: Path
    files: list[tuple[FileSpan, np.ndarray, Path]]  # (input file, its steps, output file)
    first_attrs: dict  # the first input file's global attributes (the series output took them)


def plan_per_file(folder: str | os.PathLike, spans: Sequence[FileSpan], times, *, overwrite: bool = False,
                  inputs=()) -> PerFilePlan:
    """Check, before any work, that a series with time coordinate ``times`` can be written as a
    file per input file into ``folder`` (:func:`write_per_file`), and say which steps go where.

    A file none of whose times are in ``times`` (cut away by ``--dates``) gives no output file.
    ``inputs``: files read by the run; an output that is one of them is refused even with
    ``overwrite``.

    Raises
    ------
    InputError
        ``folder`` is a file or its parent is missing (or, the folder to be made, not writable); two
        input files with one name; an output
        that exists (without ``overwrite``) or is an input; a time in no input file's period.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file; a file per input file is written into a folder (give a folder, or "
                         "a file name ending in .nc for one file)")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not folder.exists() and not parent.is_dir():
        raise InputError(f"{folder}: its folder {parent} does not exist")
    if not folder.exists() and not os.access(parent, os.W_OK | os.X_OK):
        # else "OSError: [Errno 30] Read-only file system" (exit 1) once the whole fill was done
        raise InputError(f"{folder}: its folder {parent} is not writable (the folder cannot be made there)")
    times = np.asarray(times)
    files, used, names = [], np.zeros(times.size, dtype=bool), {}
    for span in spans:
        idx = np.flatnonzero((times >= span.first) & (times <= span.last))
        if not idx.size:
            continue
        used[idx] = True
        if span.path.name in names:
            raise InputError(f"{folder}: the input files {names[span.path.name]} and {span.path} have one name; a file "
                             "per input file needs different names (or write one file: -o NAME.nc)")
        names[span.path.name] = span.path
        moved = bool(times[idx[0]] != span.first), bool(times[idx[-1]] != span.last)
        if any(moved):  # part of the file's steps (--dates): its coverage no longer says theirs
            span = span._replace(attrs=_coverage_moved(span.attrs, *moved))
        target = folder / span.path.name
        if folder.exists():  # (a folder to be made holds nothing yet)
            check_output_path(target, overwrite, inputs=inputs, kind="file", what="filled netCDF")
        files.append((span, idx, target))
    if not used.all():
        raise InputError(f"{folder}: time {_when(times[np.argmin(used)])} is in no input file's period; cannot tell "
                         "which file it goes to")
    return PerFilePlan(folder, files, spans[0].attrs if spans else {})


def write_per_file(ds: xr.Dataset, plan: PerFilePlan, *, overwrite: bool = False, complevel: int = 4,
                   progress: bool = False) -> list[Path]:
    """Write ``ds`` (a series along time) as a file per input file, as ``plan`` says
    (:func:`plan_per_file`): each named as its input file, holding that file's time steps, with its
    time coverage and history (a year of daily L3 files filled into a year of daily files).

    Every file is written under a temporary name first and all are renamed together at the end
    (:func:`~oceandl.utils.atomic_paths`): a failure leaves no new file, and no existing one is
    replaced without ``overwrite``. A missing folder is created (its parent must exist) and
    removed again if the writing fails.

    Each file is encoded as the series is (a time step per chunk, the same zlib level and shuffle,
    its time axis in one chunk of its own steps), but carries its own netCDF-4/HDF5 header: the
    global and variable attributes (held in HDF5's dense storage past 8 of them, about 5 KB an
    object) and a chunk index per variable, some 20-30 KB a file. A day of 128 x 128 holding
    35 KB of data takes 69 KB: 60 such day files are 1.9x the bytes of the one series file.

    Parameters
    ----------
    ds : xarray.Dataset
        The output, with one time dim (found by name or by its coordinate's attributes) whose
        values are the ``times`` the plan was made for; in memory or dask-backed (each file's steps
        are then read in turn).
    plan : PerFilePlan
    overwrite, complevel
        As :func:`write_netcdf`.
    progress : bool
        A progress bar over the files.

    Returns
    -------
    list of pathlib.Path
        The files written, in time order.
    """
    from tqdm.auto import tqdm

    from .utils import atomic_paths

    tdims = [d for d in ds.dims if _is_time_dim(ds, d)]
    if len(tdims) != 1:
        raise InputError(f"{plan.folder}: the output has {'no' if not tdims else 'several'} time dims; a file per "
                         "input file splits it along one")
    tdim = tdims[0]
    targets = [target for _, _, target in plan.files]
    created = not plan.folder.exists()
    plan.folder.mkdir(exist_ok=True)
    try:
        with atomic_paths(targets, overwrite=overwrite) as tmps:
            for (span, idx, target), tmp in tqdm(list(zip(plan.files, tmps)), desc="files", unit="file",
                                                 disable=not progress):
                part = ds.isel({tdim: idx})
                part.attrs = _span_attrs(ds.attrs, plan.first_attrs, span.attrs)
                # written straight to atomic_paths' temporary, a failure naming the file asked for:
                # write_netcdf(part, tmp) named the hidden .part, and wrote under a second temporary
                ready, enc, unlimited = _netcdf_ready(part, target, None, complevel)
                _to_netcdf(ready, tmp, target, enc, unlimited)
    except BaseException:
        if created and not any(plan.folder.iterdir()):
            plan.folder.rmdir()
        raise
    return targets

def _when(t) -> str:
    """A time for a message: '2020-01-02' or '2020-01-02 06:00:00', not numpy's nanoseconds."""
    if isinstance(t, np.datetime64):
        ts = pd.Timestamp(t)
        return str(ts.date()) if ts == ts.normalize() else str(ts)
    return str(t)


def _splits_grid(lon: np.ndarray) -> bool:
    """Whether sorted longitudes ``lon`` have a hole much wider than their spacing (a regional grid
    cut in two, its halves at either end of the axis)."""
    s = np.unique(lon[np.isfinite(lon)])
    if s.size < 3:
        return False
    step = np.diff(s)
    return bool(step.max() > 2.0 * np.median(step))


def _lon_convention(lon: np.ndarray) -> np.ndarray:
    """``lon`` (degrees east) in -180..180, or in 0..360 where -180..180 would cut the grid in two."""
    wrapped = np.where(lon > 180.0, lon - 360.0, np.where(lon < -180.0, lon + 360.0, lon))
    east = np.mod(lon, 360.0)
    pair = np.unique(wrapped[np.isfinite(wrapped)])
    if pair.size == 2:  # two columns (a --bbox 175,S,185,N): no spacing to tell a hole by; the closer pair
        # 176.25 and 183.75 were -176.25, 176.25: the box's columns swapped, refused as 'one in 47 of the
        # points' of a saved global fit's grid
        return east if np.ptp(np.mod(pair, 360.0)) < np.ptp(pair) else wrapped
    return east if _splits_grid(wrapped) and not _splits_grid(east) else wrapped


def lon_convention_of(lon: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Longitudes ``lon`` (degrees) written in the convention of ``ref``'s: -180..180 when ``ref``
    holds negative values, else 0..360 (a covariate's grid matched to the field's)."""
    lon = np.asarray(lon, dtype=np.float64)
    lo = -180.0 if np.min(ref) < 0 else 0.0
    # values already in range kept as they are, to the bit (np.mod(lon + 180, 360) - 180 rounds them)
    return np.where(lon < lo, lon + 360.0, np.where(lon >= lo + 360.0, lon - 360.0, lon))


def in_degrees(attrs) -> bool:
    """Whether a lat/lon coordinate with attributes ``attrs`` holds degrees (so longitudes wrap at
    360): units starting with ``deg`` or ``°``, or no units (files often leave them out), and not a
    projection's ``projection_x/y_coordinate``.

    A projected grid's x in km (0, 10, ... 490) was wrapped as longitudes: columns 370..490 became
    10..130, duplicates of existing ones, and were dropped, the rest reordered; the fill then
    wrote other columns' values over the file's observations, with exit 0.
    """
    std = str(attrs.get("standard_name", "")).lower()
    if std.startswith("projection_"):
        return False
    units = str(attrs.get("units", "")).strip().lower()
    return not units or units.startswith(("deg", "\u00b0"))


def normalize_longitude(da: xr.DataArray, dim: Hashable = "lon") -> xr.DataArray:
    """Longitudes in -180..180, sorted ascending (duplicates, e.g. 0 and 360, kept once).

    A regional grid that crosses the dateline (160..200 E, or 160..180 then -180..-160) would be
    cut in two by that: its eastern half would come first, away from its western half. Such a
    grid gets longitudes in 0..360 instead, so neighbouring columns stay neighbours (what the
    spatial methods and the ``--chunks`` blocks rely on).

    Parameters
    ----------
    da : xarray.DataArray
        With a 1-D coordinate ``dim`` in degrees east (0..360 or -180..180).
    dim : str

    Returns
    -------
    xarray.DataArray
        Same data, reordered along ``dim`` (lazy for dask arrays).
    """
    lon = np.asarray(da[dim].values, dtype=float)
    new = _lon_convention(lon)
    if not np.array_equal(new, lon, equal_nan=True):
        da = da.assign_coords({dim: (dim, new, da[dim].attrs)})
    if not da.indexes[dim].is_monotonic_increasing:
        da = da.sortby(dim)
    if da.indexes[dim].has_duplicates:
        da = da.drop_duplicates(dim)
    return da


def open_field(
    source,
    var: str | None = None,
    *,
    lat: str | None = None,
    lon: str | None = None,
    time: str | None = None,
    label: str | None = None,
    min_quality: int | None = None,
    check_values: bool = True,
    bbox: tuple[float, float, float, float] | None = None,
    dates: tuple[str | None, str | None] | None = None,
    pad: int = 0,
    allow_static: bool = False,
) -> xr.DataArray:
    """Read a gridded field as a clean DataArray with dims ``("time", "lat", "lon")``.

    Parameters
    ----------
    source : str, pathlib.Path, list of paths, xarray.Dataset or xarray.DataArray
        A netCDF file; several, as a list, a folder or a glob pattern (a file per day: put in
        time order and read as one field, see :func:`open_files`); or an in-memory object (a
        dask-backed one stays lazy, apart from one pass that checks the values).
    var : str, optional
        Variable name; found from CF attributes when omitted (see :func:`find_variable`).
    lat, lon, time : str, optional
        Names of the coordinates (variables or dims) when they cannot be recognised from CF
        attributes (``axis``, ``standard_name``, ``units``) or common names. Dims still not
        recognised take the roles left in their order (time, lat, lon, as CF orders them), as
        :func:`oceandl.interpolate` reads an array; when that order decided for two dims or more
        with names of their own (``(ocean_time, eta_rho, xi_rho)`` without coordinates), a warning
        names the reading (``dim_0``... of a bare array go silently).
    label : str, optional
        How error messages name an in-memory source (default ``Dataset`` / ``DataArray 'name'``):
        the file it was opened from, when the caller opened it (lazily, with dask).
    min_quality : int, optional
        GHRSST L2P/L3 products: values whose ``quality_level`` (the variable of that name beside
        the field, on its dims) is below ``min_quality`` (or missing) are missing. GDS 2.0 grades
        0 (no data) to 5 (best); 4 and 5 are the levels advised for analysis, the lower ones are
        mostly cloud-contaminated retrievals that a fill would otherwise take as observations.
    check_values : bool
        Refuse an all-missing or constant field (default). ``False`` skips that pass over the
        values, for a caller that checks them in a pass of its own (:func:`check_extremes`): on a
        lazy cube each pass reads the whole file.
    bbox : (west, south, east, north), optional
        Only the grid points inside this box (degrees; either longitude convention; west > east
        crosses the dateline) are read: a region of a global product, loaded alone.
    dates : (start, end), optional
        Only the time steps from ``start`` to ``end`` (ISO dates, inclusive to the end of their
        precision: ``("2020-01", "2020-03")`` is the first quarter; ``None`` leaves a side open).
    pad : int
        Grid points and time steps kept beyond each side of ``bbox`` and ``dates`` (a covariate to be
        interpolated onto the field's grid needs its neighbours outside the box).
    allow_static : bool
        Also read a 2-D (lat, lon) variable (a static covariate: bathymetry, distance to the coast),
        as a field of one time step (index 0) with ``encoding["oceandl_static"]`` True; ``dates``
        does not apply to it. Of a many-file input, a (lat, lon) variable is read from the first
        file (as ``--mask``): the same map in each daily file.

    Returns
    -------
    xarray.DataArray, shape ``(time, lat, lon)``
        Float32/64 with NaN where missing (fill values and packed integers decoded, values beyond
        ``valid_min``/``valid_max``/``valid_range`` masked), latitude and longitude ascending with
        longitude in -180..180 (in 0..360 for a regional grid across the dateline, which -180..180
        would cut in two), the original attributes (less the fill values and valid range),
        ``name`` = the variable's name, a dropped singleton dim (a depth level) as a scalar
        coordinate, and ``encoding["source_grid"]``: the file's grid (:func:`source_grid`,
        :func:`to_source_grid`).

    Raises
    ------
    InputError
        Missing, empty or unreadable file; missing variable (close names suggested); wrong
        number of dims (a 2-D one without ``allow_static``, or whose dims are not lat and lon); a
        dim left to be time that says it is not (``depth``, ``mode``...); time not increasing or
        duplicated; all values missing; constant field.
    """
    subset = Subset(bbox, dates, pad) if bbox is not None or dates is not None else None
    files = input_files(source)
    if files is not None or isinstance(source, (str, os.PathLike)):
        if allow_static and files is not None and len(files) > 1 and static_in_series(files, var):
            files = files[:1]  # a (lat, lon) map beside a file per day's field: the first file's
        if files is not None and len(files) > 1:  # a file per day: one series (each file checked as it opens)
            label = label or describe_source(source, files)
            ds = open_files(files, var, time=time, label=label)
        else:
            path = Path(files[0] if files else source).expanduser()
            label = str(path)
            ds = _open_path(path)
        try:
            if files is None or len(files) == 1:
                check_groups(ds, path)
            return _field_from_dataset(ds, var, label, {"time": time, "lat": lat, "lon": lon}, load=True,
                                       min_quality=min_quality, check_values=check_values, subset=subset,
                                       allow_static=allow_static)
        finally:
            ds.close()
    if isinstance(source, xr.DataArray):
        name = source.name
        label = label or (f"DataArray '{name}'" if name is not None else "DataArray")
        key = name if name is not None and name not in source.coords else "__oceandl_field__"
        ds = source.to_dataset(name=key)
        if "file_spans" in source.encoding:  # to_dataset drops them: each file's units test needs them
            ds.encoding["file_spans"] = source.encoding["file_spans"]
        out = _field_from_dataset(_decode(ds, label), key, label, {"time": time, "lat": lat, "lon": lon},
                                  min_quality=min_quality, check_values=check_values, subset=subset,
                                  allow_static=allow_static)
        out.name = name
        return out
    if isinstance(source, xr.Dataset):
        label = label or "Dataset"
        return _field_from_dataset(_decode(source, label), var, label, {"time": time, "lat": lat, "lon": lon},
                                   min_quality=min_quality, check_values=check_values, subset=subset,
                                   allow_static=allow_static)
    raise InputError(
        f"open_field: source of type {type(source).__name__}; expected a path, xarray.Dataset or DataArray"
    )


def _decode(ds: xr.Dataset, label: str) -> xr.Dataset:
    """CF-decode an in-memory Dataset: fill values and scale/offset left as attributes."""
    try:
        try:
            return xr.decode_cf(ds)
        except ValueError as exc:
            if "decode time" not in str(exc):
                raise
            # a time left as numbers (open_dataset(decode_times=False), as xarray advises for
            # 'months since ...'; the --chunks reader): it stays numbers, as in open_netcdf
            return xr.decode_cf(ds, decode_times=False)
    except Exception as exc:  # noqa: BLE001 - inconsistent CF attributes are the input's fault
        raise InputError(f"{label}: cannot decode CF attributes ({one_line(exc)})") from exc


def _quality_masked(ds: xr.Dataset, da: xr.DataArray, min_quality, where: str,
                    check_only: bool = False) -> xr.DataArray | None:
    """``da`` missing where the ``quality_level`` beside it is below ``min_quality`` or missing
    (GHRSST GDS 2.0; see :func:`open_field`). Lazy input stays lazy. ``check_only``: only the
    refusals (no quality_level, other dims), nothing read; a singleton dim of quality_level that
    ``da`` no longer has (a depth level dropped) is dropped from it too."""
    if isinstance(min_quality, bool) or not isinstance(min_quality, (int, np.integer)):
        raise InputError(f"min_quality must be an integer (GHRSST quality_level, 0 to 5), got {min_quality!r}")
    q = ds.variables.get("quality_level")
    if q is None:
        raise InputError(f"{where}: min_quality (--min-quality) needs a 'quality_level' variable beside it, as in GHRSST "
                         f"L2P/L3 files; there is none (variables: {', '.join(map(str, ds.data_vars))})")
    if any(d not in da.dims and q.sizes[d] != 1 for d in q.dims):  # (one of size 1: the field's dropped level)
        raise InputError(f"{where}: quality_level has dims {tuple(q.dims)}, not the field's {tuple(da.dims)}")
    if check_only:
        return None
    q = ds["quality_level"]
    q = q.isel({d: 0 for d in q.dims if d not in da.dims and q.sizes[d] == 1}, drop=True)
    masked = da.where(q >= int(min_quality))
    masked.attrs, masked.encoding = da.attrs, da.encoding  # the valid range is unpacked from them below
    return masked


@dataclass(frozen=True)
class Subset:
    """A region and period to read of a field (:func:`open_field`'s ``bbox`` and ``dates``).

    ``bbox``: ``(west, south, east, north)`` in degrees, either longitude convention; west > east
    crosses the dateline (``(170, -10, -170, 10)``). ``dates``: ``(start, end)``, each an ISO date
    or ``None`` (open), inclusive to the end of its precision: ``("2020-01", "2020-03")`` is the
    first quarter. ``pad``: grid points (and time steps) kept beyond each side, for a covariate of
    another product that is then interpolated onto the field's grid and days.
    """

    bbox: tuple[float, float, float, float] | None = None
    dates: tuple[str | None, str | None] | None = None
    pad: int = 0

    def __post_init__(self):
        if self.bbox is not None:
            w, s, e, n = (float(v) for v in self.bbox)
            if not all(np.isfinite([w, s, e, n])) or not -90 <= s <= n <= 90:
                raise InputError(f"bbox {self.bbox}: west, south, east, north in degrees, -90 <= south <= north <= 90")
            object.__setattr__(self, "bbox", (w, s, e, n))
        if self.dates is not None:
            lo, hi = (_period(d, "start") if d not in (None, "") else None for d in self.dates)
            if lo is not None and hi is not None and _period(self.dates[1], "end") < lo:
                raise InputError(f"dates {self.dates[0]}:{self.dates[1]}: the end is before the start")

    def indices(self, roles: dict, where: str) -> dict:
        """``{dim: slice or index array}`` of the field's time, lat and lon dims (``roles``:
        :func:`_assign_roles`' mapping) inside the region and period."""
        sel = {}
        if self.dates is not None:
            dim, v = roles["time"]
            sel[dim] = self._pad(self._time_index(v, where), v.sizes[dim] if v is not None else 0)
        if self.bbox is not None:
            w, s, e, n = self.bbox
            for role in ("lat", "lon"):
                dim, v = roles[role]
                if v is None or not in_degrees(v.attrs):
                    raise InputError(f"{where}: bbox: the grid's {role} is not in degrees (a projection's x/y or an index "
                                     "has no longitude-latitude box); cut it with xarray first")
                vals = np.asarray(_coordinate_values(v, dim, role, where), dtype=float)
                if role == "lat":
                    inside = (vals >= s) & (vals <= n)
                else:
                    lon, west, east = (((x + 180.0) % 360.0) - 180.0 for x in (vals, w, e))
                    if e - w >= 360:
                        inside = np.ones(vals.shape, bool)
                    else:  # west > east once in -180..180: across the dateline
                        inside = (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)
                idx = np.flatnonzero(inside)
                if not idx.size:
                    lo_, hi_ = np.nanmin(vals), np.nanmax(vals)
                    raise InputError(f"{where}: bbox {w:g},{s:g},{e:g},{n:g} holds no grid {role} (the file's {role} "
                                     f"spans {lo_:g} to {hi_:g})")
                sel[dim] = self._pad(idx, vals.size)
        return sel

    def _time_index(self, v, where: str) -> np.ndarray:
        start, end = self.dates
        span = f"{start or ''}:{end or ''}"
        t = None if v is None else np.asarray(v.values)
        if t is None or not (np.issubdtype(t.dtype, np.datetime64) or t.dtype == object):
            raise InputError(f"{where}: dates {span}: the time coordinate holds no dates (numbers in units xarray "
                             "cannot decode, or none); select the steps with xarray first")
        ok = np.ones(t.shape, bool)
        for bound, side in ((start, "start"), (end, "end")):
            if bound in (None, ""):
                continue
            b = _period(bound, side)
            if t.dtype == object:  # cftime dates (a model calendar): the same instant in it
                b = type(t[0])(b.year, b.month, b.day, b.hour, b.minute, b.second, calendar=t[0].calendar)
            else:
                b = np.datetime64(b.to_datetime64())
            ok &= (t >= b) if side == "start" else (t <= b)
        idx = np.flatnonzero(ok)
        if not idx.size:
            raise InputError(f"{where}: dates {span} hold no time step (the file's time spans {_when(t[0])} to "
                             f"{_when(t[-1])})")
        return idx

    def _pad(self, idx: np.ndarray, size: int):
        """A slice where the indices are contiguous (a hyperslab read), padded by ``pad`` each side."""
        if idx.size and np.all(np.diff(idx) == 1):
            return slice(max(0, int(idx[0]) - self.pad), min(size, int(idx[-1]) + 1 + self.pad))
        if self.pad and idx.size:  # each piece padded too: a covariate across the dateline had no neighbours
            idx = np.unique(np.clip((idx[:, None] + np.arange(-self.pad, self.pad + 1)).ravel(), 0, size - 1))
        return idx  # across the dateline on a -180..180 grid: two pieces, joined by normalize_longitude


def _period(text: str, side: str) -> pd.Timestamp:
    """The first (``side="start"``) or last instant of the period an ISO date names ('2020',
    '2020-03', '2020-03-01', '2020-03-01T06:00')."""
    try:
        p = pd.Period(str(text))
    except (ValueError, TypeError) as exc:
        raise InputError(f"dates: {text!r} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from exc
    return p.start_time if side == "start" else p.end_time


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"W,S,E,N"`` (the ``--bbox`` option) as four floats, checked."""
    try:
        vals = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise InputError(f"--bbox {text}: give W,S,E,N in degrees (e.g. -10,40,0,48; W > E crosses the dateline)")
    Subset(bbox=vals)  # the range checks
    return vals  # type: ignore[return-value]


def parse_dates(text: str) -> tuple[str | None, str | None]:
    """``"START:END"`` (the ``--dates`` option; either side may be empty), or one period
    (``"2020-02"``: February, ``"2021"``: the year), as a ``(start, end)`` pair, checked."""
    text = str(text).strip()
    if re.fullmatch(r"\d{4}(-\d\d(-\d\d([T ]\d\d(:\d\d(:\d\d)?)?)?)?)?", text):
        Subset(dates=(text, text))  # a real date (no 2020-13)
        return text, text
    if ":" not in text:
        raise InputError(f"--dates {text}: give START:END or one period (e.g. 2020-01-01:2020-03-31, 2020-06:, "
                         ":2021, 2020-02)")
    # split at the colon between the dates, not one inside a time of day (2020-01-01T06:00)
    m = re.fullmatch(r"\s*([^:]*?(?:T\d\d(?::\d\d){0,2})?)\s*:\s*([^:]*?(?:T\d\d(?::\d\d){0,2})?)\s*", str(text))
    if m is None:
        raise InputError(f"--dates {text}: give START:END or one period (e.g. 2020-01-01:2020-03-31, 2020-06:, "
                         ":2021, 2020-02)")
    start, end = (g or None for g in m.groups())
    if start is None and end is None:
        raise InputError(f"--dates {text}: give a start, an end or both")
    Subset(dates=(start, end))
    return start, end


def _field_from_dataset(ds: xr.Dataset, var, label: str, overrides: dict, load: bool = False,
                        min_quality: int | None = None, check_values: bool = True,
                        subset: Subset | None = None, allow_static: bool = False) -> xr.DataArray:
    name = find_variable(ds, var, label=label)
    da = ds[name]
    where = f"{label}: variable '{name}'" if not label.startswith("DataArray") else label
    if min_quality is not None:
        _quality_masked(ds, da, min_quality, where, check_only=True)  # refused before anything is read
    static = allow_static and da.ndim == 2
    if static:
        da, ds, subset = _as_one_step(ds, da, name, overrides, where, subset)
    if da.ndim < 3:
        raise InputError(f"{where}: has {da.ndim} dims {_dims_text(da)}; expected 3 (time, lat, lon)")
    roles = _assign_roles(ds, da, overrides, where)
    # Singleton extra dims (a depth level, a band) are dropped; their coordinate stays, as a
    # scalar, so the result still says which level it is
    extra = [d for d in da.dims if d not in {dim for dim, _ in roles.values()}]
    squeeze = [d for d in extra if da.sizes[d] == 1]
    # the variable's own scalar coordinates (a DataArray's depth=5.0) stay with it too: they were
    # dropped, so the chunked fill of a DataArray lost what the in-memory fill kept
    scalars = {k: v.variable.load() for k, v in da.coords.items() if v.ndim == 0 and k not in DIMS and k != name}
    if squeeze and da.ndim - len(squeeze) >= 3:
        scalars.update({d: ds.variables[d].isel({d: 0}).load() for d in squeeze if d in ds.variables})
        da = da.isel({d: 0 for d in squeeze}, drop=True)
        extra = [d for d in extra if d not in squeeze]
    if da.ndim != 3:
        raise InputError(f"{where}: has {da.ndim} dims {_dims_text(da)}; expected 3 (time, lat, lon)")
    missing = [r for r in DIMS if r not in roles]
    # the dims left take the roles left in their order (CF's T, Y, X), as interpolate() reads an array
    # (canonical_dims): (ocean_time, eta_rho, xi_rho) without coordinates was refused here and read so there
    by_position = list(zip(extra, missing)) if missing and len(missing) == len(extra) else []
    refuse_against_name(by_position, da.dims, where)  # (time, lat, y): y was read as lon, silently
    tdim = next((d for d, r in by_position if r == "time"), None)
    if tdim is not None:
        refuse_not_time(tdim, ds.variables.get(tdim), where)
    if by_position:
        _say_by_position(by_position, where)
        roles.update({r: (d, ds.variables.get(d)) for d, r in by_position})
    elif missing:
        raise InputError(
            f"{where}: cannot tell which of the dims {_dims_text(da)} is {' / '.join(missing)}; "
            f"name them time, lat, lon or pass {', '.join(m + '=' for m in missing)}"
        )
    if allow_static and subset is not None and subset.dates is not None and da.sizes[roles["time"][0]] == 1:
        # a map of one time step (a bathymetry dated 1990-01-01) is a static covariate whatever its date:
        # --dates cut it to nothing ('dates ... hold no time step'), so the same map given with --dates
        # was refused and without them taken
        subset = Subset(bbox=subset.bbox, pad=subset.pad)
    if subset is not None and (subset.bbox is not None or subset.dates is not None):
        # before anything is read: of a global L3 file (or a year of them) only the region is loaded
        sel = subset.indices(roles, where)
        # the roles' coordinates by name, so that the source grid (written back) is the region's too
        named = {r: next((n for n, w in ds.variables.items() if w is v), None) for r, (_, v) in roles.items()}
        whole = {r: None if v is None else np.asarray(v.values) for r, (_, v) in roles.items()}
        ds = ds.isel({d: i for d, i in sel.items() if d in ds.dims})
        da = da.isel({d: i for d, i in sel.items() if d in da.dims})
        roles = {r: (d, None if v is None else ds.variables[named[r]] if named[r] is not None
                     else v.isel({k: i for k, i in sel.items() if k in v.dims})) for r, (d, v) in roles.items()}
        ds.attrs = _cut_attrs(ds.attrs, whole, {r: None if v is None else np.asarray(v.values)
                                                for r, (_, v) in roles.items()}, ds.encoding.get("file_spans"))
    if min_quality is not None:
        # after the cut: masked before it, a region of a global file loaded the whole file (xarray's where
        # reads a lazily indexed netCDF variable in full), and its quality_level with it
        da = _quality_masked(ds, da, min_quality, where)
    if not np.issubdtype(da.dtype, np.number) and da.dtype != bool:
        raise InputError(f"{where}: dtype {da.dtype} is not numeric")

    coords = {}
    for role in DIMS:
        dim, v = roles[role]
        if v is None:
            # a row or column index, not a latitude or longitude: labelled so (units "1"), never as degrees
            vals = np.arange(da.sizes[dim], dtype=float)
            attrs = {} if role == "time" else {"long_name": f"{role} index (the file has no coordinate along "
                                                             f"{str(dim)!r})", "units": "1"}
        else:
            vals, attrs = _coordinate_values(v, dim, role, where), dict(v.attrs)
        if role != "time":
            vals = np.asarray(vals, dtype=float)
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:  # sorting would move that row or column to the end of the grid, silently
                raise InputError(f"{where}: {role} coordinate has {bad.size} missing (NaN) value(s), "
                                 f"the first at index {bad[0]} of {vals.size}; the grid cannot be placed")
        coords[role] = (role, vals, attrs)
    _check_time(coords["time"][1], where)

    if load:
        try:
            da = da.load()
        except Exception as exc:  # noqa: BLE001 - a truncated file fails only when read
            raise InputError(f"{where}: cannot read the data ({one_line(exc)})") from exc
    data = da.transpose(roles["time"][0], roles["lat"][0], roles["lon"][0]).variable.data
    if not np.issubdtype(data.dtype, np.floating) or data.dtype == np.float16:
        data = data.astype(np.float32 if data.dtype.itemsize <= 2 else np.float64)
    elif data.dtype != output_dtype(da):
        # an int16 packed with a float64 scale_factor, decoded float64 by xarray: its 16 bits fit in
        # float32, as the same int16 unpacked (above) or packed with a float32 scale_factor is read
        data = data.astype(output_dtype(da))
    # the valid range is applied here and not carried on: on the float output, packed-unit bounds
    # mean nothing, and readers that apply them would hide filled values beyond them
    attrs = {k: v for k, v in da.attrs.items() if k not in ("_FillValue", "missing_value", *_VALID_ATTRS)}
    valid = _valid_range(da, where)
    out = xr.DataArray(data, dims=DIMS, coords=coords, attrs=attrs, name=name)
    degrees = {role: in_degrees(coords[role][2]) and roles[role][1] is not None for role in ("lat", "lon")}
    for role, std, units, axis in (("lat", "latitude", "degrees_north", "Y"), ("lon", "longitude", "degrees_east", "X")):
        # a projection's x/y (metres, km) or an index keeps its own labels: called degrees_north,
        # it was weighted by cos(y) and its columns wrapped at 360
        out[role].attrs.update({"standard_name": std, "units": units, "axis": axis} if degrees[role] else {"axis": axis})
    out["time"].attrs.setdefault("axis", "T")
    ok = np.isfinite(out)  # inf is as good as missing
    if valid is not None:  # so is a value outside valid_min/valid_max/valid_range (CF)
        ok &= (out >= valid[0]) & (out <= valid[1])
    out = out.where(ok)
    if not out.indexes["lat"].is_monotonic_increasing:
        out = out.sortby("lat")
    if degrees["lon"]:
        out = normalize_longitude(out)
    elif not out.indexes["lon"].is_monotonic_increasing:
        out = out.sortby("lon")
    _check_values(out, where, compute=check_values)
    for d, v in scalars.items():
        out = out.assign_coords({d: v})
    out.encoding["source_grid"] = _source_grid(ds, roles, coords, out, tuple(da.dims), wrap_lon=degrees["lon"])
    out.encoding["source_attrs"] = dict(ds.attrs)  # the file's global attributes, for file_attrs
    if "file_spans" in ds.encoding:  # a many-file input's files (open_files)
        out.encoding["file_spans"] = ds.encoding["file_spans"]
    if static:
        out.encoding["oceandl_static"] = True
    return out


_STATIC_DIM = "__oceandl_static_step__"


def _as_one_step(ds: xr.Dataset, da: xr.DataArray, name: Hashable, overrides: dict, where: str,
                 subset: Subset | None) -> tuple[xr.DataArray, xr.Dataset, Subset | None]:
    """A 2-D (lat, lon) variable as a field of one time step (:func:`open_field`'s ``allow_static``),
    its two dims checked to be latitude and longitude; ``subset`` without its dates.

    Raises
    ------
    InputError
        One of its dims is not recognised as latitude or longitude (a (depth, lat) section, or an
        index grid without coordinates).
    """
    roles = _assign_roles(ds, da, {k: v for k, v in overrides.items() if k != "time"}, where)
    if {roles[r][0] for r in ("lat", "lon") if r in roles} != set(da.dims):
        raise InputError(f"{where}: has 2 dims {_dims_text(da)}, not recognised as (lat, lon); a static "
                         "covariate is a (lat, lon) variable (name the dims lat and lon, or give their "
                         "coordinates CF units)")
    da = da.expand_dims(_STATIC_DIM)
    ds = ds.drop_vars(name).assign({name: da})
    if subset is not None and subset.dates is not None:
        subset = Subset(subset.bbox, None, subset.pad) if subset.bbox is not None else None
    return da, ds, subset


_VALID_ATTRS = ("valid_min", "valid_max", "valid_range")


def _valid_range(da: xr.DataArray, where: str) -> tuple[float, float] | None:
    """The CF valid range of decoded ``da`` in its decoded units, or None.

    ``valid_min``/``valid_max``/``valid_range`` are in the stored (packed) units when the variable
    is packed (netCDF User Guide, CF 8.1): they are unpacked with its ``scale_factor`` and
    ``add_offset``, which xarray's decoding moved to ``encoding``.
    """
    a = da.attrs
    if not any(k in a for k in _VALID_ATTRS):
        return None
    try:
        lo, hi = -np.inf, np.inf
        if "valid_range" in a:
            lo, hi = (float(x) for x in np.ravel(a["valid_range"])[:2])
        lo = float(np.ravel(a["valid_min"])[0]) if "valid_min" in a else lo
        hi = float(np.ravel(a["valid_max"])[0]) if "valid_max" in a else hi
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{where}: valid_min/valid_max/valid_range are not numbers "
                         f"({', '.join(f'{k}={a[k]!r}' for k in _VALID_ATTRS if k in a)})") from None
    enc = da.encoding
    scale, offset = float(enc.get("scale_factor", 1.0)), float(enc.get("add_offset", 0.0))
    lo, hi = sorted((lo * scale + offset, hi * scale + offset))
    return lo, hi


def _check_time(values: np.ndarray, where: str) -> None:
    idx = pd.Index(values)
    if idx.hasnans:
        i = int(np.flatnonzero(np.asarray(idx.isna()))[0])
        raise InputError(f"{where}: time has missing values (NaT at step {i} of {len(idx)})")
    if idx.has_duplicates:
        dup = idx[idx.duplicated()][0]
        raise InputError(f"{where}: time has duplicate values (e.g. {dup})")
    if not idx.is_monotonic_increasing:
        i = int(np.flatnonzero(~np.asarray(idx[1:] > idx[:-1]))[0]) + 1
        raise InputError(f"{where}: time is not increasing (step {i}: {idx[i - 1]} then {idx[i]})")


def _check_values(da: xr.DataArray, where: str, compute: bool = True) -> None:
    """All-missing and constant fields are refused (one pass, also for dask; with ``compute=False``
    only the empty one: the caller checks the values in a pass of its own, :func:`check_extremes`)."""
    if da.size == 0:
        raise InputError(f"{where}: is empty (shape {da.shape})")
    if not compute:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        lo, hi = da.min(skipna=True), da.max(skipna=True)
        if da.chunks is not None:
            import dask

            lo, hi = dask.compute(lo, hi)
    check_extremes(lo, hi, where)


def check_extremes(lo, hi, where: str) -> None:
    """Refuse a field whose valid values' minimum ``lo`` and maximum ``hi`` (NaN: none) say it is
    all missing or constant (the messages of :func:`open_field`)."""
    lo, hi = float(lo), float(hi)
    if np.isnan(lo):
        raise InputError(f"{where}: all values are missing (NaN or fill value)")
    if lo == hi:
        raise InputError(f"{where}: constant field (every valid value is {lo:g})")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _attr_value(v):
    """An attribute value netCDF can store: bools as ints, mappings and mixed lists as JSON."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (str, int, float, np.number, np.ndarray)):
        return v
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return list(v)
    return json.dumps(v, default=str)


def _clean_attrs(attrs: dict) -> dict:
    return {k: _attr_value(v) for k, v in attrs.items() if v is not None}


def no_coordinate_fill(obj):
    """``obj`` (a shallow copy) whose coordinates ``to_netcdf`` writes without a ``_FillValue``.

    CF (section 5) says coordinate variables hold no missing values, yet xarray gives every float
    coordinate a ``_FillValue = NaN`` unless its encoding says otherwise: the lat/lon of every
    output carried one, which CF checkers flag and some tools (CDO) read as a gappy axis. An
    auxiliary coordinate whose encoding already names a ``_FillValue`` (a ``nav_lat`` read from a
    file that had one, with fills over land) keeps it; a dimension's own coordinate never does (the
    lat/lon of a file written by xarray have ``_FillValue = NaN``, which the outputs kept).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray

    Returns
    -------
    Same type as ``obj``.
    """
    obj = obj.copy(deep=False)
    for name in obj.coords:
        v = obj.coords[name].variable if isinstance(obj, xr.DataArray) else obj.variables[name]
        v.encoding = {**v.encoding}
        if v.dims == (name,):
            v.encoding["_FillValue"] = None
        else:
            v.encoding.setdefault("_FillValue", None)
    return obj


def dangling_references(attrs: dict, names) -> list[str]:
    """The attributes in ``attrs`` that name variables missing from ``names`` (those of the file written).

    ``bounds`` (CF 7.1), ``grid_mapping`` (5.6; ``crs`` or ``crs: lat lon``) and ``cell_measures``
    (7.2; ``area: cell_area``) carried from the input onto the coordinates and the field named
    ``time_bnds``, ``lat_bnds``, ``crs``... that oceandl does not write: CF checkers report each as an
    error and readers that follow them (CDO's remapping, xarray's ``decode_coords="all"``) fail or warn.
    """
    names = {str(n) for n in names}
    out = []
    for key in ("bounds", "grid_mapping", "cell_measures"):
        value = attrs.get(key)
        if not isinstance(value, str):
            continue
        words = value.split()
        if key == "cell_measures":  # 'area: cell_area': the names follow the measures
            refs = [w for w in words if not w.endswith(":")]
        elif any(w.endswith(":") for w in words):  # 'crs: lat lon': the grid mappings end in ':'
            refs = [w[:-1] for w in words if w.endswith(":")]
        else:
            refs = words
        if any(r not in names for r in refs):
            out.append(key)
    return out


#: global attributes that name an input file itself, not its data: not carried onto what is written from it
_INSTANCE_ATTRS = frozenset({"id", "uuid", "tracking_id", "date_created", "date_modified", "date_issued",
                             "date_metadata_modified", "_NCProperties", "NCO", "CDI", "CDO", "history_of_appended_files"})
#: the CF version oceandl's outputs follow
CONVENTIONS = "CF-1.8"


def conventions(old=None) -> str:
    """The ``Conventions`` of a file written from one that declared ``old``: ``CF-1.8``, then the
    input's other conventions (``ACDD-1.3`` of GHRSST and CMEMS products), whose attributes are kept.

    ``"CF-1.7, ACDD-1.3"`` gives ``"CF-1.8, ACDD-1.3"``: outputs said ``CF-1.8`` alone, so an ACDD
    checker or catalogue (ERDDAP, THREDDS) no longer read the ``title``, ``summary``... they carry.
    """
    old = str(old or "")
    # CF 2.6.1: a comma-separated list when a name has blanks ("Unidata Dataset Discovery v1.0"), else blanks
    names = [c.strip() for c in (old.split(",") if "," in old else old.split())]
    others = [c for c in names if c and not c.upper().startswith(("CF-", "COARDS"))]
    return ", ".join(dict.fromkeys([CONVENTIONS, *others]))


def file_attrs(field: xr.DataArray, attrs: dict, *, command: str | None = None, what: str = "") -> dict:
    """Global attributes of a file written from ``field`` (read by :func:`open_field`).

    The input file's global attributes are kept where they still hold (``title``,
    ``institution``, ``source``, ``references``, ``summary``, the geospatial and time coverage...;
    not the ones naming the input file itself: ``id``, ``uuid``, ``date_created``..., nor, in an
    earlier oceandl output, those of its run: ``method``, ``val_rmse``...), ``attrs``
    (the output's own provenance) go over them, ``Conventions`` is ``CF-1.8`` (with the input's
    other conventions, :func:`conventions`) and ``history`` is
    the input file's with a line in front (newest first, as NCO and CDO write it): the command
    line when given, else ``what``.

    Parameters
    ----------
    field : xarray.DataArray
        As :func:`open_field` returned it (it records the file's attributes in ``encoding``); other
        arrays give no input attributes.
    attrs : dict
        The output's own global attributes (their ``history``, that of the variable, is replaced).
    command : str, optional
        The command line that writes the file (``oceandl interpolate sst.nc -o filled.nc``).
    what : str
        What was done, for the history line when there is no command line.

    Returns
    -------
    dict
    """
    from .interp.base import _input_attrs, append_history

    source = dict(field.encoding.get("source_attrs") or {})
    # an earlier oceandl output's run attributes (its method, scores, DINEOF's n_iter...) describe that
    # run: kept, a climatology fill of a DINEOF file said method climatology beside DINEOF's n_iter
    kept = {k: v for k, v in _input_attrs(source).items() if k not in _INSTANCE_ATTRS and k != "history"}
    own = {k: v for k, v in attrs.items() if k != "history"}
    return {**kept, **own, "Conventions": conventions(source.get("Conventions")),
            "history": append_history(source.get("history") or None, what, command=command)}


#: largest chunk written for a (time, lat, lon) variable: netCDF-C's own target chunk size
_CHUNK_BYTES = 4 * 2**20


def _is_time_dim(ds: xr.Dataset, dim: Hashable) -> bool:
    """Whether ``dim`` is a time axis: its coordinate says so (axis T, 'since' units, dates) or its name does."""
    v = ds.variables.get(dim)
    return (_role_from_attrs(v) if v is not None else None) == "time" or _role_from_name(dim) == "time"


def day_chunks(ds: xr.Dataset, name: Hashable) -> tuple[int, ...] | None:
    """Chunk shape of variable ``name`` for reading one time step at a time, or None (no time dim,
    or fewer than 3 dims).

    1 along time and the whole of each other axis, the longest one halved while a chunk is over
    4 MiB. netCDF-C's default chunks a fixed-size (365, 720, 1440) cube as (73, 144, 288): one day
    (what ncview, Panoply and most analyses read) then decompressed 73 days of 25 chunks.
    """
    v = ds.variables[name]
    if v.ndim < 3 or not any(_is_time_dim(ds, d) for d in v.dims):
        return None
    shape = [1 if _is_time_dim(ds, d) else int(n) for d, n in zip(v.dims, v.shape)]
    while int(np.prod(shape)) * v.dtype.itemsize > _CHUNK_BYTES and max(shape) > 1:
        i = int(np.argmax(shape))
        shape[i] = -(-shape[i] // 2)
    return tuple(max(1, n) for n in shape)


def record_chunks(ds: xr.Dataset, name: Hashable) -> tuple[int, ...] | None:
    """Chunk shape of variable ``name`` along an unlimited (record) time dim, or None (no time dim).

    :func:`day_chunks` for a field with 2 other dims; the whole variable, up to 4 MiB along time,
    for the others (PCs (time, mode)): netCDF-C's default on a record dim is 1 step per chunk, which
    cut a (3650, 5) PC table into 3650 chunks of 20 bytes.
    """
    v = ds.variables[name]
    if not any(_is_time_dim(ds, d) for d in v.dims):
        return None
    day = day_chunks(ds, name)
    if day is not None:
        return day
    other = int(np.prod([1 if _is_time_dim(ds, d) else n for d, n in zip(v.dims, v.shape)])) * v.dtype.itemsize
    along = max(1, min(max((int(n) for d, n in zip(v.dims, v.shape) if _is_time_dim(ds, d)), default=1),
                       _CHUNK_BYTES // max(other, 1)))
    return tuple(along if _is_time_dim(ds, d) else max(1, int(n)) for d, n in zip(v.dims, v.shape))


def output_dtype(da) -> np.dtype:
    """The float type a field ``da`` (decoded) is filled and written in: its own float precision,
    float32 at least, and float32 for a field packed in 8- or 16-bit integers.

    xarray decodes an int16 with a float64 ``scale_factor`` (the netCDF default of many writers) to
    float64: its filled field was written float64, twice the bytes of the float32 its 16 bits hold
    (float32 has 24 bits of mantissa). The packed type is the ``dtype`` in ``da.encoding``.
    """
    dtype = np.dtype(np.result_type(getattr(da, "dtype", np.float32), np.float32))
    packed = (getattr(da, "encoding", None) or {}).get("dtype")
    try:
        packed = np.dtype(packed) if packed is not None else None
    except TypeError:
        packed = None
    if dtype == np.float64 and packed is not None and packed.kind in "iu" and packed.itemsize <= 2:
        return np.dtype(np.float32)
    return dtype


def check_complevel(complevel) -> int:
    """``complevel`` if it is a zlib level 0-9 (0: uncompressed), else :class:`InputError`."""
    if isinstance(complevel, bool) or not isinstance(complevel, (int, np.integer)) or not 0 <= complevel <= 9:
        raise InputError(f"complevel={complevel!r}: must be an integer from 0 (uncompressed) to 9")
    return int(complevel)


def write_netcdf(
    obj: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    encoding: dict | None = None,
    complevel: int = 4,
) -> Path:
    """Write ``obj`` to a netCDF-4 file atomically, numeric variables zlib-compressed.

    The file is written under a temporary name in the target folder and renamed at the end, so
    a failure leaves no partial file and an existing file is only replaced with ``overwrite``.
    Attributes netCDF cannot store (bools, dicts, None) are converted (int, JSON) or dropped.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A DataArray is written as a variable named after it (``field`` if unnamed).
    path : str or pathlib.Path
    overwrite : bool
    encoding : dict, optional
        Per-variable netCDF encoding, merged over the defaults (``zlib=True, complevel=complevel``;
        a variable with a time dim and 2 others is chunked one time step per chunk,
        :func:`day_chunks`; other variables along time, whole up to 4 MiB: :func:`record_chunks`).
    complevel : int, default 4
        zlib level (1-9) of the numeric data variables (the float fields and their integer flags);
        0 writes them uncompressed. A filled (64, 256,
        256) float32 SST field with its int8 flag, on a 2-core CPU: 13.9 MB written in 0.22 s at
        level 4, 21.0 MB in 0.03 s at 0. Level 0 is for when writing bounds the run (GPU
        inference runs at hundreds of Mpx/s).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If ``path`` exists (without ``overwrite``), its folder is missing, or netCDF cannot store
        what ``obj`` holds (a name, an attribute, complex data: :func:`oceandl.utils.write_error`).
    OceanDLError
        If writing fails for I/O (an HDF error, EIO, a permission, a full disk: exit 1 on the
        command line, not the input's fault).

    Notes
    -----
    The time dimension (named so, or whose coordinate is a time axis) is written unlimited, the
    record dimension of CF/NCO practice for daily products, whatever the input's: written
    fixed-size, outputs could not be appended with ``ncrcat``. Its variables are then chunked
    even uncompressed (netCDF-4 has no contiguous storage along an unlimited dim): one time step
    per chunk for the fields, the layout a contiguous day had.
    """
    path = Path(path)
    ds, enc, unlimited = _netcdf_ready(obj, path, encoding, complevel)
    check_output_path(path, overwrite, kind="file", what="netCDF file")  # never replaces a folder
    with atomic_path(path, overwrite=overwrite) as tmp:
        _to_netcdf(ds, tmp, path, enc, unlimited)
    return path


def compression_encoding(ds: xr.Dataset, complevel: int = 4) -> dict[Hashable, dict]:
    """The netCDF encoding :func:`write_netcdf` gives the numeric data variables of ``ds``:
    ``zlib`` at ``complevel`` (0: ``zlib=False``) and, along time, :func:`record_chunks` (one time
    step per chunk for a (time, lat, lon) field)."""
    # integer data too: the int8 missing_flag, written uncompressed, was 1.05 of the 6.7 MB of a
    # filled (64, 128, 128) cube; compressed it is 0.07
    enc: dict[Hashable, dict] = {
        n: {"zlib": True, "complevel": complevel} if complevel else {"zlib": False}
        for n, v in ds.data_vars.items()
        if np.issubdtype(v.dtype, np.number) or v.dtype == bool
    }
    for n, e in enc.items():  # (time, lat, lon) data are read a day at a time: one time step per chunk
        chunks = record_chunks(ds, n)
        if chunks is not None and 0 not in ds.variables[n].shape:
            e["chunksizes"] = chunks
    return enc


def with_compression_encoding(ds: xr.Dataset, complevel: int = 4) -> xr.Dataset:
    """``ds`` with the ``encoding`` of its numeric data variables set as :func:`write_netcdf` writes
    them (:func:`compression_encoding`), so that ``ds.to_netcdf(path)`` of a result made from Python
    is compressed as ``oceandl interpolate``'s file is (it was written uncompressed: a (64, 256, 256)
    float32 fill and its flag 21.0 MB against 13.9). In place; returned for chaining.

    ``original_shape`` is set beside the chunks: xarray drops the chunks (and keeps the
    compression) of a variable cut to another shape (``ds.isel(lat=slice(0, 8))``), where chunks
    larger than the variable would fail to write. Keys set by :func:`write_netcdf`'s own
    ``encoding`` replace these; other encoding keys of the variables are kept. The time dim is
    made the record (unlimited) dim (``ds.encoding['unlimited_dims']``), as in the CLI's file.
    """
    for n, e in compression_encoding(ds, complevel).items():
        v = ds.variables[n]
        v.encoding = {**v.encoding, **e, **({"original_shape": v.shape} if "chunksizes" in e else {})}
    # time the record (unlimited) dim, as write_netcdf writes it: a file from Python could not be
    # appended to with ncrcat/ncks as the CLI's could (to_netcdf reads this when given no unlimited_dims)
    time = [str(d) for d in ds.dims if _is_time_dim(ds, d)]
    if time:
        had = ds.encoding.get("unlimited_dims") or ()
        ds.encoding = {**ds.encoding, "unlimited_dims": {*([had] if isinstance(had, str) else had), *time}}
    return ds


def _netcdf_ready(obj: xr.Dataset | xr.DataArray, path: Path, encoding: dict | None,
                  complevel: int) -> tuple[xr.Dataset, dict, list[str]]:
    """``obj`` as :func:`write_netcdf` writes it to ``path``: the Dataset, its encoding and its
    unlimited dims."""
    check_complevel(complevel)
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None and obj.name not in obj.coords else "field"
        ds = obj.to_dataset(name=name)
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy()
    else:
        raise InputError(f"{path}: cannot write a {type(obj).__name__}; expected an xarray Dataset or DataArray")
    ds = no_coordinate_fill(ds)
    ds.attrs = _clean_attrs(ds.attrs)
    for v in ds.variables.values():
        v.attrs = _clean_attrs(v.attrs)
        # the input's time_bnds, crs... are not written: no attribute names them
        for key in dangling_references(v.attrs, ds.variables):
            del v.attrs[key]
    enc = compression_encoding(ds, complevel)
    for n, v in ds.coords.items():  # the time axis (and other coordinates along it) in one chunk
        # netCDF-C chunks a 1-D record variable by 1024 steps: 4 KB for the 4-byte time of a day file
        # (-o FOLDER/), 6 % of a filled 128 x 128 day. Set in the variable's encoding, not ``enc``:
        # to_netcdf's encoding= replaces a variable's, and the time units, calendar and dtype went
        chunks = record_chunks(ds, n) if v.dtype.kind in "biufcmMO" else None
        if n not in enc and chunks is not None and 0 not in v.shape:
            var = ds.variables[n]
            var.encoding = {**var.encoding, "chunksizes": chunks, "original_shape": var.shape}
    # time is the record (unlimited) dimension, as NCO (ncrcat) and CF daily products have it
    unlimited = [str(d) for d in ds.dims if _is_time_dim(ds, d)]
    for n, e in (encoding or {}).items():
        enc[n] = {**enc.get(n, {}), **e}
    return ds, enc, unlimited


def _to_netcdf(ds: xr.Dataset, dest: Path, path: Path, enc: dict, unlimited: list[str]) -> None:
    """Write ``ds`` (as :func:`_netcdf_ready` made it) to ``dest``, the temporary of ``path``: a
    failure names ``path``, the file asked for, not the hidden ``.part`` (the -o FOLDER/ files)."""
    try:
        ds.to_netcdf(dest, engine="netcdf4", format="NETCDF4", encoding=enc, unlimited_dims=unlimited)
    except WRITE_ERRORS as exc:
        # the chunked writer's rule (utils.writing): exit 2 for what netCDF cannot store, 1 for an I/O failure
        raise write_error(path, exc) from exc


def _step(values: np.ndarray) -> float:
    """Median spacing of sorted 1-D coordinate values (0 for fewer than 2)."""
    return float(np.median(np.diff(values))) if values.size > 1 else 0.0


def is_static_map(cov: xr.DataArray, field: xr.DataArray) -> bool:
    """Whether covariate ``cov`` (time, lat, lon; as :func:`open_field` reads it with ``allow_static``)
    is a static map of ``field``'s: a (lat, lon) variable, or one of a single time step while the
    field has more, or while the field's one day is more than a day from it (a bathymetry dated
    1990-01-01 beside one day's fill: it was refused as on none of the field's days)."""
    if cov.encoding.get("oceandl_static"):
        return True
    return cov.sizes["time"] == 1 and one_step_is_static(
        cov["time"].values if "time" in cov.coords else None,
        field["time"].values if "time" in field.coords else None, field.sizes["time"])


def one_step_is_static(cov_time: np.ndarray | None, field_time: np.ndarray | None, n_field: int) -> bool:
    """Whether a covariate of one time step (dated ``cov_time``, or undated: None) is a static map
    beside a field of ``n_field`` steps dated ``field_time``: the field has more steps, or its one day
    is more than a day from the covariate's. The one rule for files (:func:`is_static_map`) and for
    arrays given from Python (``aux=``)."""
    if n_field > 1:
        return True
    if cov_time is None or field_time is None or not np.size(cov_time) or not np.size(field_time):
        return False
    # seconds in the field's calendar: a model's cftime one (noleap, 360_day) too, where a bathymetry dated
    # 1990-01-01 beside one day was taken as a covariate of that day (and refused as on none of its days)
    nc, nf = _date_numbers(np.asarray(cov_time).ravel()[:1], np.asarray(field_time).ravel()[:1])
    if nc is None:
        return False
    return bool(not np.isfinite(nc[0]) or abs(nc[0] - nf[0]) > 86400.0)  # NaN: no date of the field's calendar


def to_field_grid(cov: xr.DataArray, field: xr.DataArray, *, label: str | None = None,
                  chunks: dict[str, int] | None = None) -> tuple[xr.DataArray, list[str]]:
    """A covariate put on a field's days and grid, as an auxiliary variable is needed
    (``oceandl interpolate --aux FILE:VAR`` does it for a covariate of another file or grid).

    A microwave SST comes on a 0.25 degree grid at its own times, the infrared field on a finer
    one: the covariate's days are matched to the field's (the nearest within half the field's
    step; a field day without one is a missing day of the covariate), a finer grid is first
    block-averaged to about the field's spacing (linear interpolation alone would alias it), and
    the grid is then interpolated linearly to the field's latitudes and longitudes (a field pixel
    next to a missing covariate value, or outside its box, is missing; one between its outer cells'
    centres and their edges takes the outer cell's value); a grid the field's is part
    of (the same product over a wider region) is cut to it, its values kept as they are. Longitudes
    are taken in the field's convention (-180..180 or 0..360); a covariate's grid that goes round
    the globe wraps (a field point between its last and first longitudes is interpolated between them).

    A static covariate (``cov`` of dims (lat, lon): bathymetry) has no days to match: its grid
    alone is put on the field's, the same way.

    Parameters
    ----------
    cov, field : xarray.DataArray (time, lat, lon)
        As :func:`open_field` gives them (dims so named, latitudes and longitudes ascending);
        ``cov`` may be (lat, lon).
    label : str, optional
        How messages name the covariate (default ``aux 'NAME'``).
    chunks : dict, optional
        Lazily (``interpolate --chunks``): nothing is read, the result is a dask array of these
        chunk sizes per dim (``time``/``lat``/``lon``; -1: whole) whose every chunk reads only its
        own window of ``cov`` (the bracketing points of its latitudes and longitudes, its days):
        the same values as without, read block by block. The checks that need the values (a field
        day whose matched covariate day is all missing; no value left on the field's grid) are
        then made on the coordinates alone, the values being checked when they are read.

    Returns
    -------
    (xarray.DataArray, list of str)
        The covariate on ``field``'s coordinates, and what was done to it (empty when it was on
        them already, and then returned as it is; with ``chunks``, chunked so).

    Raises
    ------
    InputError
        No dates to match other time steps by, none of its days near the field's, or no value
        left on the field's grid (another region).
    """
    label = label or f"aux {cov.name!r}"
    done: list[str] = []
    static = cov.dims == DIMS[1:]
    if static:  # a (lat, lon) map is small: put on the grid at once
        chunks = None
    for d in DIMS:
        if (d not in cov.dims and not (static and d == "time")) or d not in field.dims:
            raise InputError(f"{label}: needs dims {DIMS} or {DIMS[1:]} (as open_field gives them), "
                             f"got {tuple(cov.dims)}")
    tc, tf = cov["time"].values if "time" in cov.coords else None, field["time"].values if "time" in field.coords else None
    same_days = static or (tc is not None and tf is not None and tc.shape == tf.shape and bool(np.all(tc == tf)))
    if not same_days:
        nc, nf = (None, None) if tc is None or tf is None else _date_numbers(tc, tf)
        if nc is None:
            if cov.sizes["time"] == field.sizes["time"] and (tc is None or tf is None):
                pass  # no dates on one side: the steps are taken position by position, as the field's own
            else:
                raise InputError(f"{label}: {cov.sizes['time']} time steps, not the field's {field.sizes['time']}, "
                                 "and no dates on both to match them by")
        else:
            # seconds in the field's calendar (a model's cftime one, noleap or 360_day, too); a covariate
            # date that does not exist in it (29 February in noleap) is dropped
            keep = np.isfinite(nc)
            order = np.argsort(np.where(keep, nc, np.inf), kind="stable")[:int(keep.sum())]
            order = order[~pd.Index(nc[order]).duplicated()]
            cov, nc = cov.isel(time=order), nc[order]
            half = (np.median(np.diff(nf)) if nf.size > 1 else 86400.0) / 2
            idx = pd.Index(nc).get_indexer(nf, method="nearest", tolerance=half) if nc.size else np.full(nf.size, -1)
            if not (idx >= 0).any():
                raise InputError(f"{label}: none of its time steps is within half a step of the field's "
                                 f"({_when(tf[0])} to {_when(tf[-1])})")
            cov = cov.isel(time=np.maximum(idx, 0)).where(xr.DataArray(idx >= 0, dims="time"))
            has = idx >= 0 if chunks is not None else np.isfinite(np.asarray(cov.values)).any(axis=(1, 2))
            if not has.any():
                raise InputError(f"{label}: none of its time steps is within half a step of the field's "
                                 f"({_when(tf[0])} to {_when(tf[-1])})")
            n_cov = int(order.size)
            if (idx >= 0).all() and np.array_equal(nc[idx], nf):  # no day moved: say so, not "matched"
                done.append(f"the field's {tf.size} time steps taken from its {n_cov}"
                            + (f" ({int((~has).sum())} of them all missing)" if (~has).any() else ""))
            else:
                done.append(f"times matched to the field's {tf.size} (nearest within half its step"
                            + (f"; {int((~has).sum())} without one" if (~has).any() else "") + ")")
    lat_f, lon_f = field["lat"].values, field["lon"].values
    lat_c, lon_c = cov["lat"].values, cov["lon"].values
    degrees = in_degrees(cov["lon"].attrs) and in_degrees(field["lon"].attrs)
    if degrees:
        new = lon_convention_of(lon_c, lon_f)
        if not np.array_equal(new, lon_c):
            cov = cov.assign_coords(lon=new).sortby("lon")
            lon_c = cov["lon"].values

    def same(a, b):
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-4))

    def within(c, f):
        """Positions of ``f``'s values in ascending ``c`` (to 1e-4 degree), or None if one is not there."""
        i = np.minimum(np.searchsorted(c, f - 1e-4), c.size - 1)
        return i if c.size and np.all(np.abs(c[i] - f) <= 1e-4) else None

    rows, cols = within(lat_c, lat_f), within(lon_c, lon_f)
    if not (same(lat_c, lat_f) and same(lon_c, lon_f)) and rows is not None and cols is not None:
        # the field's grid is part of the covariate's (one product, a wider region read): its values as
        # they are, not interpolated (which rounds them, and changes their dtype)
        done.append(f"cut from its {lat_c.size} x {lon_c.size} grid to the field's {lat_f.size} x {lon_f.size}")
        cov = cov.isel(lat=rows, lon=cols)
    elif not (same(lat_c, lat_f) and same(lon_c, lon_f)):
        shape = f"{lat_c.size} x {lon_c.size}"
        factors = {}
        for d, c, f in (("lat", lat_c, lat_f), ("lon", lon_c, lon_f)):
            # the whole cells of the covariate's that fit in one of the field's (2.97 is 3: float steps): a
            # 1.5x finer grid averaged by round(1.5) = 2 came out coarser than the field's, smoothed twice
            k = int(np.floor(_step(f) / _step(c) + 0.05)) if _step(c) > 0 and _step(f) > 0 else 1
            if k >= 2:
                factors[d] = k
        if factors:  # a finer grid block-averaged first: linear interpolation alone samples it
            if chunks is not None and cov.chunks is not None:  # whole blocks of the average in each dask chunk
                cov = cov.chunk({d: k * max(1, -(-max(cov.chunksizes[d]) // k)) for d, k in factors.items()})
            cov = cov.coarsen(factors, boundary="trim").mean()
        if degrees:
            cov = _lon_wrapped(cov)
        lat_k, lon_k = cov["lat"].values, cov["lon"].values
        # a coarser grid's outer cells cover half a cell beyond their centres: the field's points there
        # take the edge cell's value (linear interpolation alone left a NaN ring round the field)
        lat_q, lon_q = _edge_clamped(lat_f, lat_k), _edge_clamped(lon_f, lon_k)
        if chunks is not None:
            # no value can come out of a grid that does not reach the field's (the values: checked when read)
            empty = lat_k.size < 2 or lon_k.size < 2 or not (
                ((lat_q >= lat_k[0]) & (lat_q <= lat_k[-1])).any() and ((lon_q >= lon_k[0]) & (lon_q <= lon_k[-1])).any())
            cov = None if empty else _interp_lazy(cov, lat_q, lon_q, chunks)
        else:
            cov = cov.interp(lat=lat_q, lon=lon_q, method="linear")
            empty = not np.isfinite(np.asarray(cov.values)).any()
        if empty:
            raise InputError(f"{label}: no value on the field's grid (latitudes {lat_f[0]:g} to {lat_f[-1]:g}, "
                             f"longitudes {lon_f[0]:g} to {lon_f[-1]:g}): another region?")
        done.append(f"its {shape} grid" + (f" block-averaged ({', '.join(f'{k} x {v}' for k, v in factors.items())}) and"
                                           if factors else "")
                    + f" interpolated (linear) to the field's {lat_f.size} x {lon_f.size}")
    if chunks is not None:
        cov = cov.chunk({d: chunks.get(d, -1) for d in cov.dims})
    if not done:
        return cov, done
    if static:
        return cov.assign_coords(lat=field["lat"], lon=field["lon"]).transpose(*DIMS[1:]), done
    cov = cov.assign_coords(time=field["time"], lat=field["lat"], lon=field["lon"]) if "time" in field.coords \
        else cov.assign_coords(lat=field["lat"], lon=field["lon"])
    return cov.transpose(*DIMS), done

def _lon_wrapped(cov: xr.DataArray) -> xr.DataArray:
    """``cov`` with its last longitude repeated 360 degrees below its first and its first 360 above
    its last when its grid goes round the globe (ERA5's 0..359.75), so that a field's points across
    its seam (179.9 beside a covariate ending at 179.75) are interpolated, not missing; else as it is."""
    lon = cov["lon"].values
    step = _step(lon)
    if lon.size < 2 or not step > 0 or abs(lon.size * step - 360.0) > step / 2 or lon[-1] - lon[0] >= 360.0:
        return cov
    ends = [cov.isel(lon=[-1]).assign_coords(lon=[lon[-1] - 360.0]), cov,
            cov.isel(lon=[0]).assign_coords(lon=[lon[0] + 360.0])]
    return xr.concat(ends, dim="lon", coords="minimal", compat="override", join="override")


def _edge_clamped(f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Field coordinates ``f`` with those outside ascending grid ``c`` by at most half its step moved
    onto its edge point (inside its outer cells), the others as they are."""
    h = _step(c) / 2
    if c.size < 2 or h <= 0:
        return f
    out = np.where((f < c[0]) & (f >= c[0] - h - 1e-9), c[0], f)
    return np.where((out > c[-1]) & (out <= c[-1] + h + 1e-9), c[-1], out)


def _date_numbers(tc: np.ndarray, tf: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Dates ``tc`` (a covariate's) and ``tf`` (the field's) as seconds in the field's calendar
    (datetime64, or cftime dates of a model calendar; either side may be either), NaN for a ``tc``
    date that does not exist in it (29 February in noleap, 30 February in the standard one);
    (None, None) when one side holds no dates."""
    def kind(v):
        if np.issubdtype(v.dtype, np.datetime64):
            return "np"
        if v.dtype == object and v.size and all(hasattr(x, "calendar") for x in v.flat):
            return "cf"
        return None

    kc, kf = kind(tc), kind(tf)
    if kc is None or kf is None:
        return None, None
    if kf == "np":
        nf = tf.astype("datetime64[ns]").astype(np.int64) / 1e9
        if kc == "np":
            return tc.astype("datetime64[ns]").astype(np.int64) / 1e9, nf
        fields = [(x.year, x.month, x.day, x.hour, x.minute, x.second) for x in tc]
        out = np.full(len(fields), np.nan)
        for i, f in enumerate(fields):
            try:
                out[i] = pd.Timestamp(*f).value / 1e9
            except ValueError:  # not a date of the standard calendar (30 February)
                pass
        return out, nf
    import cftime

    cal, units = tf.flat[0].calendar, "seconds since 1970-01-01"
    nf = np.asarray(cftime.date2num(list(tf), units, calendar=cal), float)
    if kc == "cf" and all(x.calendar == cal for x in tc):
        return np.asarray(cftime.date2num(list(tc), units, calendar=cal), float), nf
    out = np.full(tc.size, np.nan)
    for i, x in enumerate(tc):
        x = pd.Timestamp(x) if kc == "np" else x
        try:
            d = cftime.datetime(x.year, x.month, x.day, x.hour, x.minute, x.second, calendar=cal)
        except ValueError:  # not a date of the field's calendar
            continue
        out[i] = cftime.date2num(d, units, calendar=cal)
    return out, nf



def _interp_window(block: np.ndarray, lat_c: np.ndarray, lon_c: np.ndarray, lat_f: np.ndarray,
                   lon_f: np.ndarray) -> np.ndarray:
    """A window (time, lat, lon) of a covariate interpolated (linear) to ``lat_f`` x ``lon_f``, by the
    call :func:`to_field_grid` makes on the whole grid (a linear value needs only its bracketing points)."""
    a = xr.DataArray(block, dims=DIMS, coords={"lat": lat_c, "lon": lon_c})
    return np.asarray(a.interp(lat=lat_f, lon=lon_f, method="linear").values)


def _interp_lazy(cov: xr.DataArray, lat_f: np.ndarray, lon_f: np.ndarray, chunks: dict[str, int]) -> xr.DataArray:
    """``cov.interp(lat=lat_f, lon=lon_f, method="linear")`` as a dask array of ``chunks``, each chunk
    computed from the window of ``cov`` that brackets its latitudes and longitudes (and its days).

    xarray's own interp on dask puts each interpolated dim in one chunk: every block would read and
    interpolate the whole (lat, lon) grid of its days."""
    import dask.array as dsa
    from functools import partial

    c = cov.transpose(*DIMS)
    lat_c, lon_c = c["lat"].values, c["lon"].values
    data = c.data if c.chunks is not None else dsa.from_array(c.values, chunks=-1)

    def spans(n: int, size: int) -> list[tuple[int, int]]:
        size = n if size is None or size < 0 else max(1, size)
        return [(i, min(i + size, n)) for i in range(0, n, size)]

    def window(src: np.ndarray, lo: float, hi: float) -> slice:
        """The points of ``src`` bracketing ``lo``..``hi``, with one to spare each side."""
        return slice(max(int(np.searchsorted(src, lo, "right")) - 2, 0),
                     min(int(np.searchsorted(src, hi, "left")) + 2, src.size))

    nt = c.sizes["time"]
    data = data.rechunk({0: tuple(b - a for a, b in spans(nt, chunks.get("time", -1)))})
    dtype = _interp_window(np.zeros((1, 2, 2), c.dtype), np.arange(2.0), np.arange(2.0), np.array([0.5]),
                           np.array([0.5])).dtype
    rows = []
    for y0, y1 in spans(lat_f.size, chunks.get("lat", -1)):
        ys = window(lat_c, lat_f[y0], lat_f[y1 - 1])
        row = []
        for x0, x1 in spans(lon_f.size, chunks.get("lon", -1)):
            xs = window(lon_c, lon_f[x0], lon_f[x1 - 1])
            piece = data[:, ys, xs].rechunk({1: -1, 2: -1})  # the window: a few of the covariate's chunks
            fn = partial(_interp_window, lat_c=lat_c[ys], lon_c=lon_c[xs], lat_f=lat_f[y0:y1], lon_f=lon_f[x0:x1])
            row.append(piece.map_blocks(fn, chunks=(piece.chunks[0], (y1 - y0,), (x1 - x0,)), dtype=dtype))
        rows.append(row)
    out = dsa.block([rows])
    return xr.DataArray(out, dims=DIMS, coords={"time": c["time"], "lat": lat_f, "lon": lon_f},
                        name=cov.name, attrs=cov.attrs)
