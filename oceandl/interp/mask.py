"""An explicit land-sea mask for the gap fillers (``mask=``, ``--mask``), as DINEOF and DINCAE take one.

Without a mask, a pixel never observed in the cube is land. That leaves ocean pixels under cloud
for a whole short period or small region unfilled, and fits spurious retrievals over land, lakes
or the coast as sea. With a mask (``True`` = ocean):

* observations on mask-land are dropped: not fitted, written NaN (``missing_flag`` 3);
* ocean pixels never observed are filled by the methods that can (the neural ones: the network
  sees their neighbours; their pixel mean is the nearest observed ocean pixel's), and left NaN,
  with one warning, by those that cannot (climatology, eof, dineof: no observation, no value of
  the pixel's modes or cycle) (``missing_flag`` 4).

What a mask's values mean (:func:`read_mask`), in this order:

1. boolean: True = ocean;
2. a CF flag variable (``flag_values`` or ``flag_masks`` with ``flag_meanings``): values whose
   meaning names land, a lake or a river are land, the others (sea, ocean, water, ice) ocean;
3. a land variable (CF ``standard_name`` ``land_binary_mask`` or ``land_area_fraction``, or a
   name ``land``, ``lsm``, ``landmask``, ``land_mask``, ``land_sea_mask``, ``land_fraction``...):
   a land fraction in [0, 1] (0/1 included), ocean where it is below 0.5 (ERA5's ``lsm``);
   likewise ``sea_binary_mask``/``sea_area_fraction`` (or a name ``sea_fraction``), ocean at 0.5
   and above;
4. other numbers: 1 = ocean, 0 = land (NaN = land too: a mask written NaN on land); any other value
   is refused.
"""
from __future__ import annotations

import re

import numpy as np
import xarray as xr

from oceandl.errors import InputError

__all__ = ["read_mask", "MASK_FLAG_VALUES", "MASK_FLAG_MEANINGS", "mask_text"]

#: ``missing_flag`` of a fill with a mask: the three values of every fill, then two more
MASK_FLAG_VALUES = np.array([0, 1, 2, 3, 4], dtype=np.int8)
MASK_FLAG_MEANINGS = ("observed_or_land originally_missing withheld_for_validation "
                      "land_observation_removed ocean_never_observed_not_filled")

_LAND_WORDS = re.compile(r"land|lake|river", re.IGNORECASE)
_LAND_NAMES = {"land", "lsm", "landmask", "land_mask", "land_sea_mask", "landsea", "land_sea", "landseamask",
               "land_fraction", "landfrac", "land_binary_mask", "land_area_fraction"}
_SEA_NAMES = {"sea_fraction", "seafrac", "sea_binary_mask", "sea_area_fraction", "ocean_fraction"}


def mask_text(sea: np.ndarray, how: str) -> str:
    """The ``land_sea_mask`` attribute of a fill: where the mask came from and its ocean pixels."""
    return f"{how}; {int(sea.sum())} ocean and {int((~sea).sum())} land pixels"


def _ocean_from_values(m: xr.DataArray, what: str) -> tuple[np.ndarray, str]:
    """(lat, lon)-shaped ocean bool of the values of ``m`` by the conventions above, and which one."""
    v = np.asarray(m.values)
    attrs = m.attrs
    if v.dtype == bool:  # (a mask read already says how, e.g. by --mask: kept for the output's attribute)
        return v, str(attrs.get("oceandl_mask", "True = ocean"))
    if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
        raise InputError(f"{what}: values must be booleans or numbers, got dtype {v.dtype}")
    meanings = str(attrs.get("flag_meanings", "")).split()
    for key in ("flag_values", "flag_masks"):
        flags = np.atleast_1d(np.asarray(attrs.get(key, []))).ravel()
        if not meanings or flags.size == 0:
            continue
        if flags.size != len(meanings):
            raise InputError(f"{what}: {flags.size} {key} but {len(meanings)} flag_meanings")
        land_flags = [f for f, name in zip(flags, meanings) if _LAND_WORDS.search(name)]
        if not land_flags:
            raise InputError(f"{what}: no flag of {' '.join(meanings)!r} names land (land, lake, river)")
        finite = np.isfinite(v) if np.issubdtype(v.dtype, np.floating) else np.ones(v.shape, bool)
        if key == "flag_values" and not np.isin(v[finite], flags).all():
            bad = v[finite & ~np.isin(v, flags)].ravel()[0].item()
            raise InputError(f"{what}: value {bad:g} is none of its flag_values {flags.tolist()}")
        if key == "flag_values":
            land = np.isin(v, land_flags) | ~finite
        else:
            bits = int(np.bitwise_or.reduce(np.asarray(land_flags, dtype=np.int64)))
            land = ~finite | ((np.where(finite, v, 0).astype(np.int64) & bits) != 0)
        return ~land, f"land where {key} mean {'/'.join(n for n in meanings if _LAND_WORDS.search(n))}"
    std = str(attrs.get("standard_name", "")).strip().lower()
    name = str(m.name if m.name is not None else "").strip().lower()
    land_frac = std in ("land_binary_mask", "land_area_fraction") or name in _LAND_NAMES
    sea_frac = std in ("sea_binary_mask", "sea_area_fraction") or name in _SEA_NAMES
    if land_frac or sea_frac:
        finite = v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v.ravel()
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise InputError(f"{what}: a {'land' if land_frac else 'sea'} fraction must be in [0, 1], got values "
                             f"from {finite.min():g} to {finite.max():g}")
        with np.errstate(invalid="ignore"):
            ocean = (v < 0.5) if land_frac else (v >= 0.5)  # NaN: land either way
        return ocean, ("ocean where the land fraction is below 0.5" if land_frac
                       else "ocean where the sea fraction is 0.5 or more")
    with np.errstate(invalid="ignore"):
        odd = np.isfinite(v) & (v != 0) & (v != 1) if np.issubdtype(v.dtype, np.floating) else (v != 0) & (v != 1)
    if odd.any():
        bad = v[odd].ravel()[0].item()
        raise InputError(f"{what}: values must be 1 (ocean) and 0 (land), got {bad:g}; a land fraction needs a "
                         "land name or standard_name (land_area_fraction), a flag variable its flag_values and "
                         "flag_meanings")
    return v == 1, "1 = ocean, 0 = land"


def _axis_take(mcoord: np.ndarray, fcoord: np.ndarray, lon: bool) -> np.ndarray | None:
    """Positions in the mask's coordinate ``mcoord`` of each of the field's ``fcoord`` (within a
    thousandth of the field's spacing; longitudes modulo 360), or None when one is not there."""
    a, b = np.asarray(mcoord, np.float64), np.asarray(fcoord, np.float64)
    if lon:
        a, b = np.mod(a, 360.0), np.mod(b, 360.0)
    step = np.min(np.abs(np.diff(np.sort(np.asarray(fcoord, np.float64))))) if b.size > 1 else 1.0
    tol = 1e-3 * step if step > 0 else 1e-6
    diff = np.abs(a[None, :] - b[:, None])
    if lon:
        diff = np.minimum(diff, 360.0 - diff)
    pos = np.argmin(diff, axis=1)
    return pos if bool((diff[np.arange(b.size), pos] <= tol).all()) else None


def read_mask(mask, da: xr.DataArray, label: str, name_hint: str | None = None) -> tuple[np.ndarray, str]:
    """The land-sea mask ``mask`` on the grid of the field ``da``.

    Parameters
    ----------
    mask : xarray.DataArray (lat, lon), or array-like of shape (lat, lon)
        A DataArray is matched to the field by its lat/lon dims (found by name or coordinate, as
        the field's) and coordinate values: in any order, longitudes in either convention, and a
        larger grid (a global mask for a regional field, a file cut with ``--bbox``) is cut to the
        field's points. Size-1 extra dims (a time of one step) are dropped. A plain array is the
        field's (lat, lon) grid as ``da`` holds it. Values: see the module docstring.
    da : xarray.DataArray (time, lat, lon), in that dim order (the field transposed)
    label : str, the field's label for messages
    name_hint : the mask's name for messages and the name convention, when it has none

    Returns
    -------
    sea : bool ndarray (lat, lon), True = ocean, in ``da``'s order
    how : str, the convention read (for the ``land_sea_mask`` attribute)

    Raises
    ------
    InputError
        Not 2-D, other dims, sizes or coordinates than the field's grid, values that follow no
        convention, or no ocean pixel at all.
    """
    from oceandl.io import _role_from_attrs, _role_from_name, in_degrees

    ylat, xlon = da.dims[1], da.dims[2]
    shape = (da.sizes[ylat], da.sizes[xlon])
    if isinstance(mask, xr.Dataset):
        raise InputError(f"{label}: mask is a Dataset; pass one variable (ds['land']), or its name to "
                         "ds.oceandl.interpolate(mask=...)")
    if isinstance(mask, str):
        raise InputError(f"{label}: mask {mask!r} is a name; pass the variable (ds[{mask!r}]), or name it to a "
                         "Dataset's ds.oceandl.interpolate(mask=...)")
    nm = getattr(mask, "name", None) or name_hint
    what = f"{label}: mask{'' if nm is None else f' {str(nm)!r}'}"
    if not isinstance(mask, xr.DataArray):
        try:
            arr = np.asarray(mask)
        except Exception:  # noqa: BLE001 - anything that is not an array is the caller's mistake
            raise InputError(f"{what}: must be a DataArray or an array, got {type(mask).__name__}") from None
        if arr.shape != shape:
            raise InputError(f"{what}: shape {arr.shape}, the field's grid is {shape} ({ylat}, {xlon})")
        m = xr.DataArray(arr, dims=(ylat, xlon), name=nm)
    else:
        m = mask if mask.name is not None or nm is None else mask.rename(nm)
        extra = [d for d in m.dims if m.sizes[d] == 1 and d not in (ylat, xlon)
                 and _role_from_name(d) not in ("lat", "lon")]
        m = m.isel({d: 0 for d in extra}, drop=False) if extra else m
        if m.ndim != 2:
            raise InputError(f"{what}: expected 2 dims (lat, lon), got {m.ndim} dims {tuple(m.dims)}")
        roles = {}
        for d in m.dims:
            r = "lat" if d == ylat else "lon" if d == xlon else _role_from_name(d)
            if r is None and d in m.coords:
                r = _role_from_attrs(m[d].variable)
            roles[d] = r
        if sorted(map(str, roles.values())) != ["lat", "lon"]:
            raise InputError(f"{what}: dims {tuple(m.dims)} are not the field's latitude and longitude "
                             f"({ylat}, {xlon})")
        m = m.transpose(*[d for r in ("lat", "lon") for d in m.dims if roles[d] == r])
        take = []
        for k, (md, fd) in enumerate(zip(m.dims, (ylat, xlon))):
            what_axis = ("latitude", "longitude")[k]
            if md in m.coords and fd in da.coords and np.issubdtype(m[md].dtype, np.number) \
                    and np.issubdtype(da[fd].dtype, np.number):
                lon = k == 1 and in_degrees(m[md].attrs) and in_degrees(da[fd].attrs)
                pos = _axis_take(m[md].values, da[fd].values, lon)
                if pos is None:
                    raise InputError(f"{what}: its {what_axis}s ({md!r}, {m[md].values.min():g} to "
                                     f"{m[md].values.max():g}) do not hold the field's ({da[fd].values.min():g} to "
                                     f"{da[fd].values.max():g}); give a mask on the field's grid")
                take.append(pos)
            elif m.sizes[md] != da.sizes[fd]:
                raise InputError(f"{what}: {m.sizes[md]} {what_axis}s ({md!r}), the field {da.sizes[fd]}")
            else:
                take.append(np.arange(da.sizes[fd]))
        m = m.isel({m.dims[0]: take[0], m.dims[1]: take[1]})
    sea, how = _ocean_from_values(m, what)
    sea = np.asarray(sea, dtype=bool)
    if not sea.any():
        raise InputError(f"{what}: every pixel is land ({how}); nothing to fill")
    return sea, how
