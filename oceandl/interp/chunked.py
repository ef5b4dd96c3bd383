"""Gap filling of cubes larger than memory: block by block on dask, written chunk by chunk to netCDF.

:func:`interpolate_chunked` opens the input lazily (dask), cuts the (time, lat, lon) cube into
*core* blocks of ``chunks``, reads each core widened by a ``halo`` on every side (clipped at the
cube's edges), fills it on a dask worker (any :mod:`dask` scheduler: threads by default, or the
active :class:`distributed.Client`), and writes the core into a netCDF file created up front.
At most ``max_in_flight`` blocks are in flight, so the memory held is a few blocks, never the
cube. The statistics that must be global are dask reductions over the whole cube first.

Strategies by method
--------------------
``climatology``
    Exact: the per-pixel mean (and std) are dask reductions over all time steps; each block
    then only fills its gaps with them (no halo). The seasonal fit (``harmonics``) too: its
    per-pixel normal equations are sums over time, taken in the same pass as the std, and its
    shrinkage toward the neighbours' works on the whole grid of them, as in memory.
neural methods (``unet``, ``resae``, ``convae``, ``smp_unet``)
    One network for the whole cube: loaded from ``checkpoint=`` or trained in memory on
    ``train_region`` (default: the first time chunk of a central spatial block; where that has
    fewer than 2 observed days, the block and time chunk with the most observations). Its input
    is normalised with the *global* per-pixel mean and scale (dask reductions) and gets the
    global grid position, so a block sees what the in-memory path sees. Halo: ``neighbours``
    days in time (exact: day t only reads days t-n..t+n) and the inference ``overlap`` in space,
    where each block's lower halo is blended into the already written neighbour (below).
``dineof`` (and ``eof``)
    The global SVD becomes *per-region fits on overlapping blocks*: each block (default: the
    whole time series over a 128 x 128 px core plus a 32 px halo) is filled by its own DINEOF
    (its own modes and cross-validated number of modes), and neighbouring blocks are blended
    over the halo. Trade-off: modes are local (basin-scale patterns wider than a block are
    represented only piecewise, and a block too small or too cloudy to fit falls back to the
    climatology, counted in ``fallback_blocks``). Each block chooses its own number of modes (or
    shrinkage) by its own cross-validation; on small blocks that choice is noisier (warned), but
    costs little since a rank fit ``max_iter`` stopped yields to the threshold path (DINEOF's
    ``_fit_cv``): gap RMSE against the truth at pixels observed more than 5 times, synthetic 40 x 24
    x 24, 50 / 70 % cloud, seeds 0-2, chunked minus in memory: ``time=20`` -0.03..+0.01 degC,
    ``time=10`` -0.07..+0.07, 12 x 12 px blocks -0.01..+0.04 (before that rule, ``time=20`` at 70 %
    cloud, seed 0: 1.59 against 1.30, fills to 31.5 degC; tests/test_audit129.py). Memory per task
    is bounded by one block (time x (core + 2 halo)^2) and blocks run in parallel; the halo costs
    ((core + 2 halo) / core)^2 more work. A randomised SVD accumulated over time chunks would keep
    global modes but needs the full spatial field per iteration (many passes over the cube per
    DINEOF iteration), which is I/O-bound at the global scale.
    The seasonal cycle these methods remove first with ``harmonics`` (default 0, as in memory: the
    time mean; ``"auto"`` or k fits one) is *global*:
    each pixel's harmonic fit from the whole record's normal equations, summed in the statistics
    pass as for the climatology (exact, whatever the time chunks: a block of a few months could
    not fit an annual cycle), and shrunk toward its neighbours' over the whole grid, as in memory
    (the two folds' sums of :func:`~oceandl.interp.climatology.shrink_harmonics` join the pass). Every block fits its modes to the anomalies from it and adds it back;
    a pixel seen fewer than twice in the block keeps it as its centre (``_record_anomalies``), so one
    block over the cube is the in-memory fill, bit for bit;
    a block that cannot be fitted takes it, i.e. the seasonal climatology. A pixel seen once in the record
    is centred on its neighbours' record means (:func:`~oceandl.interp.base.rare_centre`), in every block
    as in memory, not on the global mean. The output has the
    in-memory attributes ``harmonics`` (and ``harmonics_fallback_pixels``).
    DINEOF's ``error_map=True``: each block's own ``sigma`` (its modes, its CV calibration), blended
    over the halo as the field is; a block that takes the climatology gets each pixel's std about it
    in that block. ``sigma`` has the blocks' median ``cv_sigma_scale`` and their
    ``cv_sigma_scale_range``.

Covariates (``aux``)
    The neural methods and DINEOF take auxiliary variables as in memory (``--aux``; a
    checkpoint's own by name): each is read lazily on the field's grid, block by block over the
    same core + halo as the field (never whole), and normalised with *global* statistics: its
    per-pixel count and sum (its mean, the global mean where a pixel has fewer than 2 values) join
    the field's first dask pass and its squared anomalies (its one scale) the second, as
    :func:`~oceandl.interp.base.aux_anomaly` makes them in memory; its values are refused there as
    :func:`~oceandl.interp.base.read_aux` refuses them (all NaN, constant, infinite; constant in
    time at every pixel). A network loaded from ``checkpoint`` takes its training means and scales
    where the field takes its training statistics (kelvin converted for a degC network, as in
    memory), else the cube's (and so does the region it is loaded or fine-tuned (``init``) on); one
    trained from scratch on ``train_region`` is trained with the region's own, as the field's. A DINEOF block is a multivariate DINEOF with the block's covariates, each
    normalised with the cube's mean and scale times the block's field scale over the cube's: the
    block's state matrix is the in-memory one's over the block, times one factor (one block over
    the cube is the in-memory fit). A covariate of another file on other days or another grid is
    put on the field's lazily (:func:`oceandl.io.to_field_grid` with ``chunks``), each block reading
    only its window of it; its statistics are the regridded cube's. The output has ``aux_variables``.

Land-sea mask (``mask``)
    As in memory (:mod:`oceandl.interp.mask`), read whole (2-D) on the field's grid: the statistics
    pass leaves out the observations on its land (per-pixel counts and sums zeroed there before the
    second pass, whose anomalies and seasonal sums run over its ocean only); each block drops its
    land's observations before the fill (NaN, ``missing_flag`` 3) and flags 4 the mask's ocean
    pixels never observed, which climatology, eof and dineof leave NaN (one warning for the cube)
    and the networks fill (each such pixel's mean the nearest observed one's, or with a
    checkpoint's training statistics its training mean). A ``checkpoint`` trained with a mask
    applies its own when none is given and its training statistics fit the cube. The mask drops
    the field's observations only: a covariate's statistics are taken over every pixel it has
    values at, its land included, as in memory (:func:`~oceandl.interp.base.aux_anomaly`; the
    same fill, tests/test_chunked_mask_aux.py). The output has ``land_sea_mask`` and the flag values 0-4.

A fit applied (``fit_on``)
    A fit made (an Interpolator, or the folder its ``save()`` wrote) or one made here, in memory, on
    another field (the smaller one) fills the series by its ``transform``, streamed by time blocks of
    whole days over the whole grid (a day's mode amplitudes are solved on its whole grid: ``lat``
    and ``lon`` chunks are not used, said). DINEOF's smoother couples the days: the input is read
    twice, each step's information first, the whole series smoothed once, then each block filled
    with its own amplitudes. The in-memory ``transform``'s values, flags and sigma. DINEOF's sigma
    (``error_map``) is calibrated on the new field as in memory (``transform_calibration``): the
    first pass keeps each step's observed pixels as bits (with the hidden ones, 2 bits a pixel, 1/16
    of the float32 field, in an unlinked file beside the output, its room taken at once: a full disk
    is an error, not a SIGBUS; the hidden observations' error / sigma in a second one, read back
    2 MiB at a time to fit the scale: memory stays a block's), the
    observations the in-memory transform hides are found from them (the whole series' clouds pasted
    on its cleanest days, the same seed), the series' amplitudes smoothed without them, the steps
    that hold them read again (6-25 % of the steps on the synthetic cube at 70-30 % cloud cover),
    and the scale fitted once on all: sigma rescaled in the file, the in-memory sigma whatever the
    blocks (1-day blocks too). A field without units is tested against the fit's units (kelvin
    against degC) on the whole series once the first pass has read it, as in memory; so are the
    field's and covariates' values against their temperature units (degC said, kelvin values, or the
    reverse: the median of their pixel means).

Blending
    Blocks are committed in raster order (time, lat, lon). A block writes its core, then, over
    its *lower* halo (the part of its read region that lies in earlier blocks' cores, already
    written), replaces the written reconstruction by ``(1 - r) * old + r * new`` with ``r`` a
    sin^2 ramp rising from ~0 at the halo's outer edge to ~1 at the core: no seam at the core
    edge, and the earlier block's values at the halo's outer edge. Observed pixels keep their
    values (``keep_observed``). Out-of-order results wait (at most ``max_in_flight``).

The output has the variables of :meth:`Interpolator.reconstruct` (the filled field, ``missing_flag``,
``sigma`` when the method gives one) and the attributes ``method``, ``options``, ``chunked``
(chunks, halo, blend, blocks) and, with covariates, ``aux_variables``; with a mask, ``land_sea_mask``.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import os
import tempfile
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import xarray as xr

from oceandl.errors import InputError, OceanDLError, one_line, warn
from oceandl.utils import software_versions

from .base import (_MIN_PIXEL_OBS, SIGMA_MIN_POINTS, _input_attrs, _json_default, _netcdf_safe, append_history,
                   check_units_files, check_units_shift, check_units_values, filled_comment, oceandl_version,
                   output_coord_name, rare_centre, sigma_attrs, step_counts)
from .dineof import _MIN_CV_SQUARES, ERROR_MAP_TEXT
from .mask import MASK_FLAG_MEANINGS, MASK_FLAG_VALUES, mask_text
from .neural import _unit, hann_ramp

__all__ = ["Block", "ChunkedResult", "plan_blocks", "open_lazy", "parse_chunks", "interpolate_chunked"]

_AXES = ("time", "lat", "lon")
_NEURAL = ("convae", "unet", "resae", "smp_unet")
#: default core chunk sizes (-1: the whole axis) and halos by strategy
_DEFAULT_CHUNKS = {"climatology": {"time": 64, "lat": 256, "lon": 256},
                   "neural": {"time": 64, "lat": 256, "lon": 256},
                   "fit": {"time": -1, "lat": 128, "lon": 128}}


@dataclass(frozen=True)
class Block:
    """One block of the plan: ``core`` is written by it, ``ext`` (core + halo, clipped) is read.

    Slices are in (time, lat, lon) order; ``index`` is the block's chunk index along each axis.
    """

    index: tuple[int, int, int]
    core: tuple[slice, slice, slice]
    ext: tuple[slice, slice, slice]

    @property
    def ext_shape(self) -> tuple[int, int, int]:
        """(time, lat, lon) size of the block read: core plus halo, clipped to the cube."""
        return tuple(s.stop - s.start for s in self.ext)  # type: ignore[return-value]

    def core_in_ext(self) -> tuple[slice, slice, slice]:
        """The core as slices into the ext array."""
        return tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(self.core, self.ext))  # type: ignore


@dataclass
class ChunkedResult:
    """What :func:`interpolate_chunked` did: output, plan, time and memory figures."""

    path: Path
    method: str
    shape: tuple[int, int, int]
    chunks: dict[str, int]
    halo: dict[str, int]
    n_blocks: int
    seconds: float
    stats_seconds: float
    max_block_bytes: int        # float32 bytes of the largest block read (core + halo), covariates included
    max_in_flight: int
    fallback_blocks: int = 0
    # out of the repr: the output's provenance (options JSON, history) made it 800 characters
    attrs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def mpx_per_s(self) -> float:
        """Throughput in millions of (time x lat x lon) pixels per second, statistics included."""
        return float(np.prod(self.shape)) / 1e6 / max(self.seconds, 1e-9)


def parse_chunks(spec: str | Mapping[str, int] | None, what: str = "--chunks") -> dict[str, int]:
    """``"time=100,lat=256,lon=256"`` (or a dict) -> ``{"time": 100, "lat": 256, "lon": 256}``.

    Axes not given are left out; ``-1`` (or ``all``) means the whole axis. An int (or ``"16"``) is
    taken as both spatial axes (``halo=16``).

    Raises
    ------
    InputError
        Unknown axis names, non-integers or negative values other than -1.
    """
    if spec is None:
        return {}
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        spec = {"lat": int(spec), "lon": int(spec)}
    if isinstance(spec, str) and spec.strip().lstrip("-").isdigit():
        spec = {"lat": int(spec), "lon": int(spec)}
    if isinstance(spec, str):
        out: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise InputError(f"{what} {spec!r}: expected axis=size pairs like time=100,lat=256,lon=256")
            k, v = (s.strip() for s in part.split("=", 1))
            out[k] = -1 if v.lower() in ("all", "-1") else v
        spec = out
    if not isinstance(spec, Mapping):
        raise InputError(f"{what}: expected axis=size pairs or a dict, got {type(spec).__name__}")
    res = {}
    for k, v in spec.items():
        key = {"latitude": "lat", "longitude": "lon", "t": "time"}.get(str(k).lower(), str(k).lower())
        if key not in _AXES:
            raise InputError(f"{what}: unknown axis {k!r} (use time, lat, lon)")
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise InputError(f"{what}: {k}={v!r} is not an integer") from None
        if what.startswith("--chunks") and (n < -1 or n == 0):
            raise InputError(f"{what}: {k}={n} must be a positive integer (or -1 for the whole axis)")
        if not what.startswith("--chunks") and n < 0:
            # a halo of -1 or 'all' was taken as 0 (no halo: seams), and reported as -1
            raise InputError(f"{what}: {k}={n} must be an integer >= 0 (the pixels or days read beyond a block)")
        res[key] = n
    return res


def plan_blocks(shape: tuple[int, int, int], chunks: Mapping[str, int], halo: Mapping[str, int]) -> list[Block]:
    """Cut a (time, lat, lon) cube into core blocks with halos, in raster order.

    Parameters
    ----------
    shape : (time, lat, lon) sizes.
    chunks : core size per axis (-1 or absent: the whole axis).
    halo : halo per axis (absent: 0), clipped at the cube's edges.

    Returns
    -------
    list of :class:`Block`, time slowest, lon fastest.
    """
    cores, halos = [], []
    for ax, n in zip(_AXES, shape):
        c = chunks.get(ax, -1)
        c = n if c is None or c < 0 else min(int(c), n)
        cores.append(c)
        halos.append(max(0, int(halo.get(ax, 0))))
    blocks = []
    for idx in np.ndindex(*[math.ceil(n / c) for n, c in zip(shape, cores)]):
        core, ext = [], []
        for i, n, c, h in zip(idx, shape, cores, halos):
            a, b = i * c, min((i + 1) * c, n)
            core.append(slice(a, b))
            ext.append(slice(max(a - h, 0), min(b + h, n)))
        blocks.append(Block(tuple(int(i) for i in idx), tuple(core), tuple(ext)))  # type: ignore[arg-type]
    return blocks


# ------------------------------------------------------------------------------------------ input
def _read_chunk(core: int, halo: int) -> int:
    """Input chunk along an axis: a divisor of the core, >= the halo and >= core/4.

    dask reads whole input chunks, so a block reading core + 2 halo touches neighbouring chunks;
    chunks of a quarter core bound that over-read to 1.5x per axis.
    """
    if halo <= 0:
        return core
    low = max(halo, math.ceil(core / 4))
    return next((d for d in range(low, core + 1) if core % d == 0), core)


def _file_chunks(path: Path, var: str | None, sizes: Mapping[str, int]) -> tuple[str, dict]:
    """Open ``path`` lazily (no data read) and map ``sizes`` (by role) onto the variable's dims."""
    from oceandl.io import _check_input_path, check_groups, find_variable, open_netcdf

    from .base import canonical_dims

    _check_input_path(path)  # an empty file said "not a readable netCDF file (ValueError: did not find...)"
    try:
        ds = open_netcdf(path)  # lazy, nothing read (a time xarray cannot decode: its numbers, with a warning)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
        raise InputError(f"{path}: not a readable netCDF file ({one_line(exc)})") from exc
    try:
        check_groups(ds, path)
        name = find_variable(ds, var, label=str(path))
        v = ds[name]
        v3 = v.isel({d: 0 for d in v.dims if v.sizes[d] == 1}) if v.ndim > 3 else v
        if v3.ndim != 3:  # open_field gives the full message
            return name, {}
        try:
            dims = canonical_dims(v3)
        except InputError as exc:  # a (mode, lat, lon) eof output: said as open_field says it, naming the file
            raise InputError(f"{path}: {exc}") from None
        return name, {d: sizes[ax] for d, ax in zip(dims, _AXES)}
    finally:
        ds.close()


def open_lazy(source, var: str | None = None, chunks: Mapping[str, int] | None = None,
              min_quality: int | None = None, check_values: bool = True, bbox=None, dates=None,
              allow_static: bool = False, pad: int = 0) -> xr.DataArray:
    """The (time, lat, lon) field of ``source`` as a dask-backed DataArray (nothing loaded).

    Parameters
    ----------
    source : path of a netCDF file, several (a list, a folder, a glob pattern; :func:`oceandl.io.open_files`),
        or an xarray Dataset/DataArray (NumPy or dask backed).
    var : variable name (found from CF attributes when omitted).
    chunks : dask chunk size per axis (``time``/``lat``/``lon``; -1 = whole axis).
    min_quality : GHRSST ``quality_level`` below which values are missing (see :func:`oceandl.io.open_field`).
    check_values : refuse an all-missing or constant field, in one pass over the values (False:
        the caller checks them, as :func:`interpolate_chunked` does in its statistics pass).
    bbox, dates : the region and period read (see :func:`oceandl.io.open_field`); nothing else is.
    allow_static : a (lat, lon) variable too, as one time step (see :func:`oceandl.io.open_field`).
    pad : grid points and time steps read beyond each side of ``bbox`` and ``dates`` (a covariate
        of another grid, to be interpolated onto the field's; see :func:`oceandl.io.open_field`).

    Returns
    -------
    xarray.DataArray (time, lat, lon), cleaned like :func:`oceandl.io.open_field` (CF decoding,
    ascending lat, lon as open_field gives it), backed by dask.

    Raises
    ------
    InputError
        As :func:`oceandl.io.open_field` (missing file or variable, bad dims, all NaN...).
    """
    from oceandl.io import describe_source, input_files, open_field, open_files, open_netcdf, static_in_series

    sizes = {ax: -1 for ax in _AXES}
    sizes.update(chunks or {})
    files = input_files(source)
    if allow_static and files is not None and len(files) > 1 and static_in_series(files, var):
        files = files[:1]  # a (lat, lon) map beside a file per day's field: the first file's
        source = files[0]
    if files is not None and len(files) > 1:
        # a file per day: a dask chunk per file, rechunked into the blocks' cores below
        label = describe_source(source, files)
        ds = open_files(files, var, label=label)
        da = open_field(ds, var, label=label, min_quality=min_quality, check_values=check_values, bbox=bbox,
                        dates=dates, allow_static=allow_static, pad=pad)
        return da.chunk({ax: sizes[ax] for ax in _AXES})
    if files is not None:
        source = files[0]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        name, dim_chunks = _file_chunks(path, var, sizes)
        with warnings.catch_warnings():  # "chunks separate the stored chunks": chosen on purpose (halos)
            warnings.simplefilter("ignore", UserWarning)
            ds = open_netcdf(path, warn=False, chunks=dim_chunks)
        # stays lazy: one streaming min/max pass checks the values; errors name the file
        da = open_field(ds, name, label=str(path), min_quality=min_quality, check_values=check_values, bbox=bbox,
                        dates=dates, allow_static=allow_static, pad=pad)
    else:
        da = open_field(source, var, min_quality=min_quality, check_values=check_values, bbox=bbox, dates=dates,
                        allow_static=allow_static, pad=pad)
    # a region cut out of the file's chunks: rechunked so that the blocks' cores line up with them again
    subset = bbox is not None or dates is not None
    return da.chunk({ax: sizes[ax] for ax in _AXES}) if da.chunks is None or subset else da


def _aux_entries(aux) -> list[tuple[str | None, Any]]:
    """``aux`` of :func:`interpolate_chunked` as (name, entry) pairs: an entry is a variable name
    (``"VAR"``, ``"FILE:VAR"``) or an array; a DataArray's name, a dict's or a Dataset's keys."""
    if aux is None:
        return []
    if isinstance(aux, (str, xr.DataArray)):
        aux = [aux]
    if isinstance(aux, xr.Dataset):
        return list(aux.data_vars.items())
    if isinstance(aux, Mapping):
        return list(aux.items())
    if isinstance(aux, (list, tuple)):
        return [(None, a) if isinstance(a, str) else (getattr(a, "name", None), a) for a in aux]
    raise InputError(f"aux must be variable names, DataArrays (a list or dict of them) or a Dataset; "
                     f"got {type(aux).__name__}")


def _open_aux(aux, source, da: xr.DataArray, chunks: Mapping[str, int], where: str,
              taken: str | None = None, bbox=None, dates=None,
              log=None) -> list[tuple[str, xr.DataArray, str | None, bool]]:
    """The covariates, lazily on the field's grid: ``(name, dask array (time, lat, lon), units, static)``.

    A static one (a (lat, lon) variable, or one of a single time step while the field has more) is
    small: read whole, put on the field's grid when it is another's (:func:`oceandl.io.to_field_grid`),
    and broadcast over the days (each block reads its window, halo included).

    One of another file on other days or another grid (``FILE:VAR``) is put on the field's lazily
    (:func:`oceandl.io.to_field_grid` with ``chunks``: the nearest day, a finer grid block-averaged,
    linear interpolation), read over the field's region and period with two points and days to
    spare as in memory: each chunk reads only the covariate's window around it. What was done is
    said with ``log`` (a callable; None: nothing said).

    A name (``"VAR"``) is a variable of ``source`` (a file or Dataset), ``"FILE:VAR"`` one of
    another file, read as :func:`open_lazy` reads the field (CF decoded, grid sorted), chunked as
    ``chunks``; a DataArray is taken as it is (a NumPy one cut into ``chunks``). Each is checked against the field's
    dims, sizes and coordinates as in memory (:func:`~oceandl.interp.base.aux_arrays`); its values
    are checked in the statistics pass. ``taken``: the checkpoint they come from, said when one is
    missing. Nothing is read.
    """
    from oceandl.io import aux_key, is_static_map, split_file_var, to_field_grid

    from .base import aux_arrays

    items: dict[str, Any] = {}
    label = f"{where}variable {da.name!r}"
    for key, entry in _aux_entries(aux):
        if not isinstance(entry, str):
            items[key] = entry  # aux_arrays names an unnamed one
            continue
        src, name = split_file_var(entry, source)
        # the name the method knows it by: a dict's key, NAME of NAME=FILE:VAR, else VAR
        key = key if key is not None else aux_key(entry, source)
        other = src is not source
        if not other and not isinstance(source, (str, os.PathLike, xr.Dataset)):
            raise InputError(f"{label}: aux {entry!r} is a name, but the field is a DataArray: pass the covariate "
                             "itself (a DataArray on the field's grid)")
        if not other and name == da.name:
            raise InputError(f"{label}: aux {name!r} is the field being filled; give other variables as aux")
        if key in items:
            raise InputError(f"{label}: aux {key!r} is given twice")
        try:
            with warnings.catch_warnings():  # 'chunks separate the stored chunks': chosen on purpose (halos)
                warnings.simplefilter("ignore", UserWarning)
                # its values: checked in the stats pass; the field's region and period, on its grid
                # another product: two points and days to spare for the interpolation, as in memory
                a = open_lazy(src, name, chunks, check_values=False, bbox=bbox, dates=dates, allow_static=True,
                              pad=2 if other and (bbox is not None or dates is not None) else 0)
        except InputError as exc:
            if taken is None or type(exc) is not InputError:
                raise
            raise InputError(f"{exc}; {taken} was trained with it as an auxiliary variable (the network takes it "
                             f"as input: give a file that has it; named otherwise: --aux {key}=VAR)") from None
        if is_static_map(a, da):
            # a static map: loaded (lat x lon values), on the field's grid; aux_arrays broadcasts it
            a = a.isel(time=0, drop=True).load()
            if other:
                a, done = to_field_grid(a, da, label=f"--aux {entry}")
                if done and log is not None:
                    log(f"--aux {entry}: {'; '.join(done)}")
            items[key] = a.rename(key)
            continue
        if other:  # lazily: each chunk on the field's grid reads its own window of the covariate
            a, done = to_field_grid(a, da, label=f"--aux {entry}", chunks=dict(chunks))
            if done and log is not None:  # said as in memory: it changes what the method is given
                log(f"--aux {entry}: {'; '.join(done)}")
        items[key] = a.rename(key)
    out = []
    for name, a, units, static in aux_arrays(items, da, _AXES, label):
        a = a.rename({d: ax for d, ax in zip(a.dims, _AXES)})
        # a dask-backed one keeps its chunks, as the field does (open_lazy); a NumPy one is cut into them
        out.append((name, a if a.chunks is not None else a.chunk({ax: chunks.get(ax, -1) for ax in _AXES}), units,
                    static))
    return out


# ------------------------------------------------------------------------------------------ stats
@dataclass
class _AuxStats:
    """A covariate's global statistics, as :func:`~oceandl.interp.base.aux_anomaly` makes them in memory."""

    name: str
    units: str | None
    count: np.ndarray   # (lat, lon) values per pixel
    total: np.ndarray   # (lat, lon) float64 sum of the values
    mean: np.ndarray    # (lat, lon) float64 per-pixel mean, the global mean where count < 2
    global_mean: float
    scale: float = 0.0  # rms of the anomaly from ``mean``; 0: constant in time at every pixel
    static: bool = False  # a (lat, lon) map: ``mean`` is its global mean everywhere, ``scale`` its std


@dataclass
class _Stats:
    """Global per-pixel statistics of the observations, as the in-memory base class computes them."""

    count: np.ndarray      # (lat, lon) observations per pixel
    mean: np.ndarray       # (lat, lon) float64, NaN on land; where count < 2 rare_centre's (the global mean without neighbours)
    global_mean: float
    scale: float = 1.0
    sq: np.ndarray | None = None  # (lat, lon) sum of squared anomalies
    known: np.ndarray | None = None  # (lat, lon) ocean of a checkpoint's training statistics
    total: np.ndarray | None = None  # (lat, lon) float64 sum of the observations
    gram: np.ndarray | None = None  # (p * p, lat, lon) harmonic normal matrices (climatology with harmonics)
    rhs: np.ndarray | None = None   # (p, lat, lon) their right-hand sides
    gram_a: np.ndarray | None = None  # the same over the steps of fold A (the shrunk fit of DINEOF / EOF)
    rhs_a: np.ndarray | None = None
    aux: list[_AuxStats] = field(default_factory=list)  # the covariates', in the order given
    train_aux: dict | None = None  # a checkpoint's training per-pixel means of its covariates (grid order)
    land_obs: int = 0  # observations on a land-sea mask's land, dropped
    pos: tuple | None = None  # a box of a checkpoint's training grid: its rows' and columns' position values

    @property
    def ocean(self) -> np.ndarray:
        return self.count > 0 if self.known is None else (self.count > 0) | self.known


def _training_normalisation(da: xr.DataArray, stats: _Stats, options: Mapping[str, Any],
                            where: str = "", sea: np.ndarray | None = None) -> tuple[_Stats | None, np.ndarray | None]:
    """The global statistics replaced by a checkpoint's training ones, when ``normalisation`` asks
    for them and they fit the whole cube (as the in-memory path decides); else None. And the
    land-sea mask the fill takes: ``sea`` (given) or, without one, the checkpoint's own where it
    stores one (its land's observations then dropped from ``stats``' counts, as in memory).

    With a mask the ocean is the mask's, its pixels without a training mean taking the training
    global mean (:meth:`~oceandl.interp.base.Interpolator._normalise_given`)."""
    from .neural import fitting_training_stats

    ckpt, mode = options.get("checkpoint"), options.get("normalisation", "auto")
    if ckpt is None or mode == "input":
        return None, sea
    train, problem = fitting_training_stats(ckpt, da, stats.count, stats.total)  # the statistics pass's sums
    if problem is not None:
        if mode == "training":
            raise InputError(f"{where}variable {da.name!r}: normalisation='training': checkpoint {ckpt} {problem}")
        return None, sea
    count, total = stats.count, stats.total
    if sea is None and train.get("sea") is not None:  # the mask it was trained with (same grid: the stats fit)
        sea = np.asarray(train["sea"], dtype=bool)
        count, total, _ = _drop_land_counts(count, total, sea, f"{where}variable {da.name!r}")
    known = np.isfinite(train["mean"])
    mean = np.where(known, train["mean"], train["global_mean"])
    out = _Stats(count, mean, train["global_mean"], train["scale"], stats.sq, known if sea is None else sea.copy(),
                 total, aux=stats.aux, train_aux=train.get("aux_mean") or {}, pos=train.get("pos"))
    out.mean[~out.ocean] = np.nan
    return out, sea


def _drop_land_counts(count: np.ndarray, total: np.ndarray | None, sea: np.ndarray,
                      label: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Per-pixel ``count`` and ``total`` without the observations on the mask's land (0 there), and
    how many those were; refused as :func:`~oceandl.interp.base._drop_land` refuses a mask upside down."""
    from .base import check_mask_orientation

    n_land = int(count[~sea].sum())
    count = np.where(sea, count, 0)
    total = None if total is None else np.where(sea, total, 0.0)
    check_mask_orientation(n_land, int(count.sum()), label)
    return count, total, n_land


def _compute(*arrays):
    import dask

    return dask.compute(*arrays)


def _global_stats(da: xr.DataArray, second_pass: bool, design: np.ndarray | None = None,
                  fold: np.ndarray | None = None, label: str | None = None,
                  aux: list[tuple[str, xr.DataArray, str | None]] = (), sea: np.ndarray | None = None,
                  neighbours: bool = False) -> _Stats:
    """Per-pixel count and mean (and the sum of squared anomalies) by dask reductions.

    ``neighbours``: the mean of a pixel seen fewer than ``_MIN_PIXEL_OBS`` times is its neighbours' means
    (:func:`~oceandl.interp.base.rare_centre`, as DINEOF's and EOF's in-memory fit centres it), else the
    global mean; before the second pass, whose anomalies (and scale) are then the in-memory ones.

    ``sea``: a land-sea mask (lat, lon), True = ocean: the observations on its land are left out
    of every statistic of the field (counted in ``stats.land_obs``), as the in-memory fit drops them;
    the covariates' keep their land, as in memory (:func:`~oceandl.interp.base.aux_anomaly`).

    The first pass also refuses an all-missing or constant field (:func:`oceandl.io.check_extremes`,
    ``label`` naming it): :func:`open_lazy` then needs no pass of its own to check the values.

    With a harmonic ``design`` (time, p) (see :func:`~oceandl.interp.climatology.harmonic_design`),
    the second pass also sums each pixel's normal equations over time: ``gram`` (p * p, lat, lon)
    ``X^T X`` over the observed steps and ``rhs`` (p, lat, lon) ``X^T (v - mean)``; exact, as in memory.
    With a ``fold`` (time,) bool (:func:`~oceandl.interp.climatology.harmonic_folds`), also
    ``gram_a`` and ``rhs_a``, the same sums over the fold's steps.

    ``aux``: covariates ``(name, lazy array on the field's grid, units, static)``; their per-pixel count and
    sum, extremes and infinities join the first pass (refused as :func:`~oceandl.interp.base.read_aux`
    refuses them), the sums of their squared anomalies the second (which they imply): ``stats.aux``.
    """
    import dask.array as dsa

    from oceandl.io import check_extremes

    from .base import _DEGC_OR_KELVIN, _DEGF_OR_KELVIN, _KELVIN_FLOOR, check_aux_values, check_units_files, check_units_values

    v = da.data
    obs = dsa.isfinite(v)
    lazy = [obs.sum(axis=0), dsa.where(obs, v, 0).astype(np.float64).sum(axis=0), dsa.nanmin(v), dsa.nanmax(v)]
    spans = da.encoding.get("file_spans")
    many = bool(spans) and len(spans) > 1 and v.ndim == 3
    if many:  # a series of files: each file's side of 100 (kelvin or degC) from counts of the same pass
        lazy.append(dsa.stack([obs.sum(axis=(1, 2)), (v < _KELVIN_FLOOR).sum(axis=(1, 2)),
                               (v < _DEGC_OR_KELVIN).sum(axis=(1, 2)), (v > _DEGC_OR_KELVIN).sum(axis=(1, 2)),
                               (v > _DEGF_OR_KELVIN).sum(axis=(1, 2))], axis=1))
    for _, a, *_ in aux:  # each covariate's sums, extremes and infinities in the same pass
        seen = dsa.isfinite(a.data)
        lazy += [seen.sum(axis=0), dsa.where(seen, a.data, 0).astype(np.float64).sum(axis=0),
                 dsa.nanmin(dsa.where(seen, a.data, np.nan)), dsa.nanmax(dsa.where(seen, a.data, np.nan)),
                 dsa.isinf(a.data).any()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        count, total, lo, hi, *aux_sums = _compute(*lazy)
    counts = aux_sums.pop(0) if many else None
    check_extremes(lo, hi, label or f"variable {da.name!r}")
    # degC values said to be kelvin (or the reverse), from the pixel means as in memory: once for the cube,
    # before the second pass and anything written
    with np.errstate(invalid="ignore", divide="ignore"):
        check_units_values(label or f"variable {da.name!r}", da, da.attrs.get("units"),
                           np.where(count > 0, total / np.maximum(count, 1), np.nan))
        if counts is not None:  # then each file of a series (one kelvin file among degC ones)
            check_units_files(label or f"variable {da.name!r}", da, da.attrs.get("units"), counts, spans)
        for i, (name, a, units, _) in enumerate(aux):
            a_count, a_total = aux_sums[5 * i], aux_sums[5 * i + 1]
            check_units_values(f"{label or f'variable {da.name!r}'}: aux {name!r}", a, units,
                               np.where(a_count > 0, a_total / np.maximum(a_count, 1), np.nan))
    n_land = 0
    if sea is not None:  # the mask's land: its observations dropped from every statistic
        count, total, n_land = _drop_land_counts(np.asarray(count), np.asarray(total), sea,
                                                 label or f"variable {da.name!r}")
        obs = obs & dsa.from_array(sea, chunks=v.chunks[1:])[None]
    aux_stats = []
    for i, (name, _, units, static) in enumerate(aux):
        a_count, a_total, a_lo, a_hi, a_inf = aux_sums[5 * i:5 * i + 5]
        check_aux_values(f"aux {name!r}", float(a_lo), float(a_hi), bool(a_inf), label or f"variable {da.name!r}")
        a_count, a_total = np.asarray(a_count), np.asarray(a_total)
        gmean = float(a_total.sum() / a_count.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            a_mean = np.where(a_count >= _MIN_PIXEL_OBS, a_total / np.maximum(a_count, 1), gmean)
        if static:  # its per-pixel mean would be the map itself: the anomaly from its global mean (its std)
            a_mean = np.full(a_count.shape, gmean)
        aux_stats.append(_AuxStats(name, units, a_count, a_total, a_mean, gmean, static=static))
    second_pass = second_pass or bool(aux)
    count = np.asarray(count)
    n_obs = int(count.sum())
    global_mean = float(np.asarray(total).sum() / n_obs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count >= _MIN_PIXEL_OBS, total / np.maximum(count, 1), global_mean)
    if neighbours:
        mean = rare_centre(mean, count, count > 0)
    mean[count == 0] = np.nan
    st = _Stats(count, mean, global_mean, total=np.asarray(total), aux=aux_stats, land_obs=n_land)
    if second_pass:
        m = np.nan_to_num(mean)
        anom = dsa.where(obs, v.astype(np.float64) - m, 0.0)
        # the covariates' squared anomalies from their per-pixel means (their scales), in the same pass
        aux_sq = [dsa.where(dsa.isfinite(a.data), a.data.astype(np.float64) - st_a.mean, 0.0).__pow__(2).sum()
                  for (_, a, *_), st_a in zip(aux, aux_stats)]
        if design is None:
            sq, *aux_sq = _compute(anom.__pow__(2).sum(axis=0), *aux_sq)
        else:  # the same pass: sums over time of the design's products with the mask and the anomaly
            p = design.shape[1]
            outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), p * p)
            tchunks = (v.chunks[0], -1)
            mats = [outer, design] + ([] if fold is None else [outer * fold[:, None], design * fold[:, None]])
            sq, *sums = _compute(
                anom.__pow__(2).sum(axis=0),
                *(dsa.tensordot(dsa.from_array(m, chunks=tchunks), obs.astype(np.float64) if i % 2 == 0 else anom,
                                axes=([0], [0])) for i, m in enumerate(mats)), *aux_sq)
            sums, aux_sq = sums[:len(mats)], sums[len(mats):]
            st.gram, st.rhs = np.asarray(sums[0]), np.asarray(sums[1])
            if fold is not None:
                st.gram_a, st.rhs_a = np.asarray(sums[2]), np.asarray(sums[3])
        for st_a, q in zip(aux_stats, aux_sq):
            st_a.scale = float(np.sqrt(float(q) / st_a.count.sum()))
        st.sq = np.asarray(sq)
        scale = float(np.sqrt(st.sq.sum() / n_obs))
        vmax = float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0
        st.scale = scale if np.isfinite(scale) and scale > 1e-12 * max(vmax, 1.0) else 1.0
    return st


# ------------------------------------------------------------------------------------------ blocks
def _finish(filled: np.ndarray, values: np.ndarray, mean: np.ndarray, ocean: np.ndarray,
            keep_observed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Land NaN, the global mean where a block gave nothing, observations kept; and the gap flag."""
    obs = np.isfinite(values)
    filled = np.where(np.isfinite(filled), filled, mean[None])
    if keep_observed:
        filled = np.where(obs, values, filled)
    filled[:, ~ocean] = np.nan
    flag = (~obs & ocean[None]).astype(np.int8)
    return filled, flag


def _global_harmonics(stats: _Stats, design: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's seasonal fit from the global normal equations of the statistics pass.

    Returns ``coef`` (p, lat, lon) in the data's units about the pixel's mean (0 on land),
    ``levels`` (lat, lon) the harmonics each pixel fitted (-1 on land) and ``sigma`` (lat, lon)
    the residual std about the fit (the global scale where a pixel has too few observations):
    the in-memory fit, pixel by pixel, shrunk toward the neighbours' fits
    (:func:`~oceandl.interp.climatology.shrink_harmonics`, from the fold sums ``gram_a``, ``rhs_a``)."""
    from .climatology import harmonic_rss, harmonic_sigma, shrink_harmonics

    p = design.shape[1]
    sea = stats.count > 0
    gram = np.moveaxis(stats.gram[:, sea], -1, 0).reshape(-1, p, p)
    gram_a = np.moveaxis(stats.gram_a[:, sea], -1, 0).reshape(-1, p, p)
    rhs, yy, count = stats.rhs[:, sea].T, stats.sq[sea], stats.count[sea]
    coef, level, _ = shrink_harmonics(gram, rhs, yy, count, gram_a, stats.rhs_a[:, sea].T, stats.mean[sea], sea,
                                      (p - 1) // 2)
    sigma = np.full(sea.shape, stats.scale)
    sigma[sea] = harmonic_sigma(harmonic_rss(gram, rhs, yy, coef), count, level, stats.scale)
    out = np.zeros((p,) + sea.shape)
    out[:, sea] = coef.T
    levels = np.full(sea.shape, -1)
    levels[sea] = level
    return out, levels, sigma


class _ClimatologyBlock:
    """Gaps <- the global per-pixel mean, or its seasonal fit; sigma <- the per-pixel std about it
    (the in-memory method, from the global normal equations)."""

    def __init__(self, stats: _Stats, keep_observed: bool, design: np.ndarray | None = None):
        self.keep_observed = keep_observed
        self.design, self.coef, self.levels = design, None, np.where(stats.count > 0, 0, -1)
        if design is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                self.sigma = np.where(stats.count >= 2, np.sqrt(stats.sq / (stats.count - 1)), stats.scale)
            return
        self.coef, self.levels, self.sigma = _global_harmonics(stats, design)

    def fit_attrs(self, label: str) -> dict[str, Any]:
        """``harmonics`` (and ``harmonics_fallback_pixels``), as the in-memory method gives them."""
        from .climatology import harmonic_attrs

        return harmonic_attrs(0 if self.design is None else (self.design.shape[1] - 1) // 2, self.levels, label)

    def __call__(self, values, ext, coords, mean, ocean, aux=()):
        fit = np.broadcast_to(mean, values.shape)
        if self.design is not None:  # (time, p) x (p, lat, lon) of this block
            fit = mean[None] + np.tensordot(self.design[ext[0]], self.coef[:, ext[1], ext[2]], axes=1)
        filled, flag = _finish(fit, values, mean, ocean, self.keep_observed)
        sigma = np.broadcast_to(self.sigma[ext[1], ext[2]], values.shape).copy()
        sigma[:, ~ocean] = np.nan
        return {"filled": filled, "flag": flag, "sigma": sigma, "fallback": False}


class _FitBlock:
    """A fresh in-memory method fitted on each block (DINEOF, EOF): per-region fits.

    Each block fits its modes to the anomalies from the whole record's per-pixel mean (the
    statistics pass's) or, with a seasonal ``design`` (time, p) and global ``coef`` (p, lat, lon)
    (see :func:`_global_harmonics`), from its seasonal cycle (its own ``harmonics=0``), and the
    mean or cycle is added back: it is the whole record's, as in memory, whatever the time chunks;
    a block that cannot be fitted takes it (the climatology).

    Where the block's modes do not reach a pixel (never observed in the block, or a block that took the
    climatology), the fill is the record's mean or cycle: at a pixel seen once in the record, about its
    neighbours' means (:func:`~oceandl.interp.base.rare_centre`, the statistics pass's ``mean``).

    With covariates (``aux``: their :class:`_AuxStats`, in the order the blocks read them, and the
    field's global ``scale``), each block is a multivariate DINEOF with the block's covariates,
    normalised with the whole cube's per-pixel means and scales (``DINEOF._aux_norm``): its state
    matrix is the in-memory one's over the block, times one factor. A covariate with no value in
    a block adds no column there and is left out of it."""

    def __init__(self, cls, seed, device, keep_observed, options, dims, design=None, coef=None,
                 aux: list[_AuxStats] = (), scale: float = 1.0):
        self.cls, self.seed, self.device, self.keep_observed, self.options = cls, seed, device, keep_observed, options
        self.dims = dims
        self.design, self.coef = design, coef
        self.aux, self.scale = list(aux), scale
        if "harmonics" in cls.option_defaults:
            self.options = {**options, "harmonics": 0}  # removed here, globally

    def _model(self, ext, coords, aux):
        """The block's fresh model and its covariates (a dict for ``fit``, or None)."""
        given = {st.name: a for st, a in zip(self.aux, aux) if np.isfinite(a).any()}
        options = self.options if given or not self.aux else {k: v for k, v in self.options.items()
                                                                 if k != "aux_weight"}
        model = self.cls(seed=self.seed, device=self.device, keep_observed=self.keep_observed, **options)
        model._warn_small_cv = False  # DINEOF: one warning for all blocks, from interpolate_chunked
        model._warn_empty_steps = False  # DINEOF: not one warning per block
        model._warn_no_repeat = False  # EOF: said once for the cube, from interpolate_chunked
        model._record_anomalies = True  # anomalies from the record's means: a pixel seen once stays on its record's centre
        if not given:
            return model, None
        model._check_aux_values = False  # checked on the whole cube (a block's may be constant)
        model._aux_norm = {st.name: (st.mean[ext[1], ext[2]], st.scale) for st in self.aux if st.name in given}
        model._aux_field_scale = self.scale
        return model, {k: xr.DataArray(a, dims=self.dims, coords=coords) for k, a in given.items()}

    def __call__(self, values, ext, coords, mean, ocean, aux=()):
        if not ocean.any():
            # all land (no pixel observed in the whole record): nothing to fit. Its failed fit was
            # counted as a block that "could not be fitted (too few observations)", which a global
            # cube's continents made hundreds of
            filled, flag = _finish(np.full(values.shape, np.nan), values, mean, ocean, self.keep_observed)
            return {"filled": filled, "flag": flag, "fallback": False, "cv_squares": None}
        season = np.broadcast_to(np.nan_to_num(mean), values.shape)
        if self.design is not None:  # (time, p) x (p, lat, lon) of this block, about the pixel means
            season = season + np.tensordot(self.design[ext[0]], self.coef[:, ext[1], ext[2]], axes=1)
        # anomalies from the record's mean too, not only from its cycle: a time chunk's own mean (and,
        # at a pixel seen once in the chunk, the block's spatial mean) put degrees of error in the fill
        da = xr.DataArray(values - season, dims=self.dims, coords=coords)
        fallback, squares, sigma, sigma_scale = False, None, None, None
        try:
            model, covariates = self._model(ext, coords, aux)
            ds = model.fit(da, aux=covariates).reconstruct()
            filled = np.asarray(ds[model.output_name_].values, dtype=np.float64) + season
            squares = getattr(model, "cv_squares_", None)
            if "sigma" in ds:  # DINEOF's error_map
                sigma = np.asarray(ds["sigma"].values, dtype=np.float64)
                sigma_scale = ds["sigma"].attrs.get("cv_sigma_scale")
        except InputError:  # a block too small or too cloudy to fit (options were checked up front)
            filled, fallback = np.array(season, dtype=np.float64), True
            if self.options.get("error_map"):
                # the climatology's sigma: each pixel's std about the record's mean (or cycle) in the block
                anom = values - season
                with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    sd = np.nanstd(anom, axis=0)
                    glob = np.nanstd(anom) if np.isfinite(anom).any() else np.nan
                sd = np.where(np.isfinite(sd) & (np.sum(np.isfinite(anom), axis=0) >= 2), sd, glob)
                sigma = np.broadcast_to(sd, values.shape).copy()
        if not fallback:  # pixels the block's modes do not reach: the record's cycle, not only its mean
            filled = np.where(~np.isfinite(filled) & ocean[None], season, filled)
        filled, flag = _finish(filled, values, mean, ocean, self.keep_observed)
        out = {"filled": filled, "flag": flag, "fallback": fallback, "cv_squares": squares}
        if self.options.get("error_map"):
            if sigma is None:  # an all-land block
                sigma = np.full(values.shape, np.nan)
            sigma[:, ~ocean] = np.nan
            out["sigma"], out["cv_sigma_scale"] = sigma, sigma_scale
        return out


class _NeuralBlock:
    """Inference of one trained network on a block, normalised with the global statistics.

    Uses the network's own tiled inference (``NeuralInterpolator._predict``) on a shallow copy
    of the fitted interpolator whose inputs are replaced by the block's.
    """

    def __init__(self, fitted, stats: _Stats, grid: tuple[int, int], keep_observed: bool,
                 da: xr.DataArray | None = None, aux: list[tuple[np.ndarray, dict]] = ()):
        self.fitted, self.scale, self.keep_observed = fitted, stats.scale, keep_observed
        self.ny, self.nx = grid
        self.pos = stats.pos  # a box of the checkpoint's training grid: the positions that grid gives it
        # the covariates' whole-grid per-pixel means (float32) and statistics, in the network's channel order
        self.aux = list(aux)
        if da is not None and fitted._cfg["neighbours"]:
            # irregular time steps warned about once, for the whole cube: each block that saw the
            # missing day warned again (18 lines for one missing day in 36 blocks)
            whole = copy.copy(fitted)
            whole.da_, whole._warn_time_steps = da, True
            whole._check_time_order()

    def __call__(self, values, ext, coords, mean, ocean, aux=()):
        m = copy.copy(self.fitted)  # shares the network; the per-block inputs live on the copy
        m._cfg = dict(self.fitted._cfg)
        m.progress = False
        m.da_ = xr.DataArray(values, dims=("time", "lat", "lon"), coords=coords)
        if self.aux:  # the block's covariates, normalised with the whole cube's statistics (_setup_inputs)
            m._aux_inputs = [np.asarray(a, dtype=np.float32) for a in aux]
            m._aux_means = [mu[ext[1], ext[2]] for mu, _ in self.aux]
            m._aux_stats = [st for _, st in self.aux]
        obs = np.isfinite(values)
        x = np.where(obs, (values - np.nan_to_num(mean)[None]) / self.scale, 0.0).astype(np.float32)
        m._setup_inputs(x, obs)
        if m._cfg["latlon"]:  # positions on the whole grid, as the in-memory path gives them
            yy, xx = self.pos if self.pos is not None else (np.linspace(-1, 1, self.ny, dtype=np.float32),
                                                           np.linspace(-1, 1, self.nx, dtype=np.float32))
            yy, xx = yy[ext[1]], xx[ext[2]]
            m._pos = np.stack(np.meshgrid(yy, xx, indexing="ij"))
        mean_n, sigma_n = m._predict()
        filled = mean_n.astype(np.float64) * self.scale + np.nan_to_num(mean)[None]
        filled, flag = _finish(filled, values, mean, ocean, self.keep_observed)
        out = {"filled": filled, "flag": flag, "fallback": False}
        if sigma_n is not None:
            sigma = sigma_n.astype(np.float64) * self.scale
            sigma[:, ~ocean] = np.nan
            out["sigma"] = sigma
        return out


class _Reader:
    """Reads one block of the lazy input inside the task (dask's synchronous scheduler, only the
    chunks the block touches), so that no task graph of the whole cube travels with each block.
    The covariates (``aux``, lazy on the field's grid) are read over the same region.

    ``aux_labels``: how a failed read of each covariate names it (its file and variable, see
    :func:`_aux_labels`); default: ``where`` and its name."""

    def __init__(self, da: xr.DataArray, aux: list[xr.DataArray] = (), where: str = "",
                 aux_labels: list[str] | None = None):
        self.data = da.data
        self.aux = [a.data for a in aux]
        self.where, self.name = where, da.name
        self.aux_labels = list(aux_labels) if aux_labels is not None else [f"{where}aux {a.name!r}" for a in aux]

    def __call__(self, ext: tuple[slice, slice, slice]) -> tuple[np.ndarray, list[np.ndarray]]:
        import dask

        rows = ", ".join(f"{ax} {s.start}:{s.stop}" for ax, s in zip(_AXES, ext))
        label = f"{self.where}variable {self.name!r}"
        try:
            with _reading(label, rows):
                values, *aux = dask.compute(self.data[ext], *(a[ext] for a in self.aux), scheduler="synchronous")
        except InputError as exc:
            if not self.aux or not isinstance(exc.__cause__, (OSError, RuntimeError)):
                raise
            # one read of them all failed: which one, read again alone (a covariate of another file was
            # said to be the field's variable, naming the wrong file)
            for data, what in zip(self.aux, self.aux_labels):
                with _reading(what, rows):
                    dask.compute(data[ext], scheduler="synchronous")
            raise
        return np.asarray(values), [np.asarray(a, dtype=np.float32) for a in aux]


def _aux_labels(aux, source, where: str) -> dict[str, str]:
    """How a failed read names each covariate given by name: ``"other.nc: variable 'sst_mw' (aux 'mw')"``
    for one of another file, ``where`` (the field's file) for one of the field's; none for an array."""
    from oceandl.io import aux_key, describe_source, split_file_var

    out = {}
    for key, entry in _aux_entries(aux):
        if isinstance(entry, str):
            src, name = split_file_var(entry, source)
            key = key if key is not None else aux_key(entry, source)
            file = f"{describe_source(src)}: " if src is not source else where
            out[key] = f"{file}variable {name!r}" + (f" (aux {key!r})" if key != name else " (aux)")
    return out


@contextlib.contextmanager
def _reading(label: str, rows: str) -> Iterator[None]:
    """Say a read's failure in the block as the input's: an OSError or RuntimeError (a corrupt input read
    lazily said only "NetCDF: HDF error", naming no file) raised again as an :class:`InputError` (exit 2)
    naming ``label`` (the file and variable) and ``rows`` (where it was read). An out-of-memory error and
    oceandl's own errors pass as they are. The one rule of the blocks' reader (:class:`_Reader`) and of
    ``--fit-on``'s time blocks (:func:`_transform_chunked`)."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OceanDLError) or "out of memory" in str(exc).lower():
            raise
        raise InputError(f"{label}: cannot read its values at {rows} ({one_line(exc)}): a corrupt or unreadable "
                         "input file") from exc


def _time_rows(t: slice | np.ndarray) -> str:
    """The time steps ``t`` (a slice or positions) as a read's failure names them."""
    if isinstance(t, slice):
        return f"time {t.start}:{t.stop}"
    t = np.atleast_1d(np.asarray(t))
    return f"time step(s) {', '.join(map(str, t[:5].tolist()))}{', ...' if t.size > 5 else ''}"


def _run_block(fn, reader: _Reader, ext, coords, mean, ocean, sea=None):
    """The task a worker runs: read the block (core + halo), fill it (results in the output dtype).

    ``sea``: the block's part of a land-sea mask (lat, lon): its land's observations dropped before
    the fill (``missing_flag`` 3), its ocean pixels off ``ocean`` (never observed, not filled) flagged 4."""
    values, aux = reader(ext)
    land_obs = None
    if sea is not None:
        land_obs = np.isfinite(values) & ~sea[None]
        if land_obs.any():
            values = np.array(values, dtype=np.result_type(values.dtype, np.float32))
            values[land_obs] = np.nan
    out = fn(values, ext, coords, mean, ocean, aux)
    if sea is not None:  # as Interpolator._dataset flags them
        flag = out["flag"]
        flag[land_obs] = 3
        flag[np.isnan(values) & (sea & ~ocean)[None]] = 4
    dtype = np.result_type(values.dtype, np.float32)  # float32 data: half the bytes held and sent
    for key in ("filled", "sigma"):
        if key in out:
            out[key] = out[key].astype(dtype, copy=False)
    return out


# ------------------------------------------------------------------------------------------ writer
def _hdf5_lock():
    """xarray's lock around the netCDF-C/HDF5 library: dask threads read the input through it, and
    HDF5 is not thread-safe, so the writes here take it too."""
    try:
        from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

        return NETCDF4_PYTHON_LOCK
    except ImportError:  # pragma: no cover - other xarray layouts
        import threading

        return threading.Lock()


class _Writer:
    """Region writes into a netCDF file whose variables were created up front."""

    def __init__(self, path: Path, names: dict[str, str], keep_observed: bool, blend: Mapping[str, bool],
                 shown: Path | None = None):
        import netCDF4

        from oceandl.utils import writing

        # netCDF's failures ("NetCDF: HDF error", naming no file) said as the output's, ``shown``, not the .part's
        self.writing = lambda: writing(shown if shown is not None else path)
        self.lock = _hdf5_lock()
        with self.lock, self.writing():
            self.nc = netCDF4.Dataset(path, "r+")
            self.nc.set_auto_maskandscale(False)  # raw values: NaN stays NaN, flags stay int8
        self.names, self.keep_observed = names, keep_observed
        self.blend = [bool(blend.get(ax, False)) for ax in _AXES]

    def commit(self, block: Block, res: dict) -> None:
        with self.lock, self.writing():
            self._commit(block, res)

    def setattr(self, key: str, value, var: str | None = None) -> None:
        """A global attribute, or one of variable ``var``."""
        with self.lock, self.writing():
            (self.nc if var is None else self.nc[var]).setncattr(key, value)

    def _commit(self, block: Block, res: dict) -> None:
        ci = block.core_in_ext()
        var = self.nc[self.names["filled"]]
        var[block.core] = res["filled"][ci].astype(var.dtype)
        self.nc[self.names["flag"]][block.core] = res["flag"][ci]
        if "sigma" in res and "sigma" in self.names:
            self.nc[self.names["sigma"]][block.core] = res["sigma"][ci].astype(var.dtype)
        # lower halo: the part of the read region inside earlier (already written) cores
        lo = [c.start - e.start if b else 0 for c, e, b in zip(block.core, block.ext, self.blend)]
        if not any(lo):
            return
        region = tuple(slice(c.start - n, c.stop) for c, n in zip(block.core, lo))
        sub = tuple(slice(ci_.start - n, ci_.stop) for ci_, n in zip(ci, lo))
        r = np.ones(1)
        for n, c in zip(lo, block.core):
            w = np.concatenate([hann_ramp(n), np.ones(c.stop - c.start)]) if n else np.ones(c.stop - c.start)
            r = np.multiply.outer(r, w)
        r = r[0]
        # pixels whose value is a reconstruction (all ocean ones without keep_observed)
        upd = (res["flag"][sub] == 1) if self.keep_observed else np.isfinite(res["filled"][sub])
        upd &= r < 1
        for key in ("filled", "sigma"):
            if key not in res or key not in self.names:
                continue
            v = self.nc[self.names[key]]
            old = np.asarray(v[region], dtype=np.float64)
            new = res[key][sub]
            ok = upd & np.isfinite(old) & np.isfinite(new)
            old[ok] = (1 - r[ok]) * old[ok] + r[ok] * new[ok]
            v[region] = old.astype(v.dtype)

    def close(self) -> None:
        with self.lock, self.writing():
            self.nc.close()


def _skeleton(da: xr.DataArray, path: Path, name: str, with_sigma: bool, attrs: dict, var_attrs: dict,
              chunksizes: tuple[int, int, int], dtype, complevel: int = 4, grid=None,
              sigma_extra: dict | None = None, masked: bool = False) -> None:
    """Create ``path`` with the coords (xarray encodes the time) and empty, compressed, chunked variables."""
    coords = {ax: da[ax].variable.to_base_variable() for ax in _AXES}
    if grid is not None and grid.is_clean:
        # the file's own coordinate variables (their dtype, attributes and time encoding): a clean
        # grid gets no rewrite pass, and the clean ones wrote a GHRSST 'seconds since 1981-01-01'
        # time as 'days since <first day>' and float32 latitudes as float64, unlike the in-memory path
        coords = {ax: grid.coords[ax] for ax in _AXES}
    # scalar coordinates (the depth of a level read from (time, depth=1, lat, lon)) stay with the field
    scalars = {str(k): v.variable.to_base_variable() for k, v in da.coords.items() if v.ndim == 0}
    # one named like an output variable (a 'sigma' level) failed as netCDF's 'name in use': renamed as in memory
    outputs = {"missing_flag", *(("sigma",) if with_sigma else ())}
    renamed = {k: output_coord_name(k, [*scalars, *_AXES]) for k in sorted(outputs & set(scalars))}
    scalars = {renamed.get(k, k): v for k, v in scalars.items()}
    if renamed:
        warn(f"variable {da.name!r}: coordinate(s) {', '.join(map(repr, renamed))} named like output "
                      f"variables; kept as {', '.join(map(repr, renamed.values()))}", UserWarning)
    from oceandl.io import no_coordinate_fill

    # CF: no _FillValue on coordinates (xarray gives float ones NaN)
    # time unlimited, the record dimension, as the in-memory path writes it (write_netcdf): ncrcat appends
    no_coordinate_fill(xr.Dataset(coords={**coords, **scalars}, attrs=attrs)).to_netcdf(
        path, engine="netcdf4", format="NETCDF4", unlimited_dims=[_AXES[0]])
    with _hdf5_lock():
        _add_variables(path, name, with_sigma, var_attrs, chunksizes, dtype, da.attrs.get("units"), complevel,
                       sigma_extra=sigma_extra, coordinates=" ".join(scalars), masked=masked)


def _add_variables(path, name, with_sigma, var_attrs, chunksizes, dtype, units, complevel: int = 4,
                   coordinates: str = "", sigma_extra: dict | None = None, masked: bool = False) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "r+") as nc:
        specs = [(name, dtype, np.nan, var_attrs), ("missing_flag", np.int8, None, {
            "long_name": "gap-filling flag", "flag_values": np.array([0, 1, 2], dtype=np.int8),
            "flag_meanings": "observed_or_land originally_missing withheld_for_validation"} if not masked else {
            "long_name": "gap-filling flag", "flag_values": MASK_FLAG_VALUES, "flag_meanings": MASK_FLAG_MEANINGS})]
        if with_sigma:
            specs.append(("sigma", dtype, np.nan, {**sigma_attrs(name, units, var_attrs.get("standard_name")),
                                                    **{k: _netcdf_safe(v) for k, v in (sigma_extra or {}).items()}}))
        for vname, dt, fill, vattrs in specs:
            v = nc.createVariable(vname, dt, _AXES, zlib=complevel > 0, complevel=complevel, chunksizes=chunksizes,
                                  fill_value=fill if fill is not None else False)
            v.setncatts({k: val for k, val in vattrs.items() if k not in ("_FillValue", "coordinates")})
            if coordinates:
                v.setncattr("coordinates", coordinates)


def _drop_dangling_references(path: Path) -> None:
    """Delete the attributes of ``path``'s variables that name variables it lacks (the input's
    ``time_bnds``, ``crs``...; :func:`oceandl.io.dangling_references`), as ``write_netcdf`` does."""
    import netCDF4

    from oceandl.io import dangling_references

    with _hdf5_lock(), netCDF4.Dataset(path, "r+") as nc:
        for v in nc.variables.values():
            for key in dangling_references({k: v.getncattr(k) for k in v.ncattrs()}, nc.variables):
                v.delncattr(key)


def _to_source_grid_file(path: Path, grid, chunks: tuple[int, int, int]) -> None:
    """Rewrite the finished output ``path`` on the input's grid (:func:`oceandl.io.to_source_grid`).

    The blocks are written on the clean grid (ascending latitude, one longitude convention),
    where their cores and halos are contiguous. The input's names, order and coordinates come
    back in one more pass: xarray writes the coordinates (small) and netCDF4 copies each data
    variable a day and a band of ``chunks[1]`` rows at a time, with the same compression and
    chunks. Memory is one band; nothing grows with the number of days or blocks (a dask graph
    over the whole output did: 29 MiB against 7.7 MiB for a 10.5 MiB cube, millions of tasks
    for a decade of global days). It runs in this process, also under a
    :class:`distributed.Client` (the workers wrote the file there, each chunk reopening it).
    """
    import netCDF4

    from oceandl.io import _file_dim_order, no_coordinate_fill, open_netcdf, to_source_grid

    # a temporary name clean_stale_parts recognises (a SIGKILL mid-pass leaves nothing for good)
    other = path.with_name(path.name.removesuffix(".part") + "g.part")
    try:
        with open_netcdf(path, warn=False) as ds:  # the input's time units, undecodable ones too
            coords = no_coordinate_fill(to_source_grid(ds.coords.to_dataset(), grid).load())  # the file closes below
            coords.attrs = dict(ds.attrs)
            names = list(ds.data_vars)
            renamed = {n: tuple(grid.dims.get(str(d), d) for d in ds[n].dims) for n in names}
            # the file's dim order too ((lon, lat, time) for some files): perm[n][k] = clean axis of file axis k
            perm = {n: _file_dim_order(renamed[n], grid) for n in names}
            new_dims = {n: tuple(renamed[n][i] for i in perm[n]) for n in names}
        # takes xarray's HDF5 lock itself; time stays the unlimited (record) dimension under its file name
        coords.to_netcdf(other, engine="netcdf4", format="NETCDF4", unlimited_dims=[grid.dims.get("time", "time")])
        take_lat, take_lon = grid.take["lat"], grid.take["lon"]
        band = max(1, int(chunks[1]))
        with _hdf5_lock(), netCDF4.Dataset(path) as src, netCDF4.Dataset(other, "r+") as dst:
            src.set_auto_maskandscale(False)
            dst.set_auto_maskandscale(False)
            extra = [str(n) for n in coords.coords if n not in coords.dims]
            for n in names:
                v = src[n]
                filt = v.filters() or {}
                p = perm[n]
                chunking = v.chunking()
                w = dst.createVariable(n, v.dtype, new_dims[n], zlib=bool(filt.get("zlib")),
                                       complevel=int(filt.get("complevel") or 4), shuffle=bool(filt.get("shuffle")),
                                       chunksizes=[chunking[i] for i in p] if chunking != "contiguous" else None,
                                       fill_value=v.getncattr("_FillValue") if "_FillValue" in v.ncattrs() else False)
                w.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k not in ("_FillValue", "coordinates")})
                # the coordinates xarray should attach (a scalar depth, nav_lat/nav_lon)
                on = [c for c in extra if set(coords[c].dims) <= set(new_dims[n])]
                if on:
                    w.setncattr("coordinates", " ".join(on))
                nt, ny = v.shape[0], len(take_lat) if take_lat is not None else v.shape[1]
                for t in range(nt):
                    for r0 in range(0, ny, band):
                        rows = take_lat[r0:r0 + band] if take_lat is not None else np.arange(r0, min(ny, r0 + band))
                        lo, hi = int(rows.min()), int(rows.max()) + 1
                        block = np.asarray(v[t, lo:hi, :])[rows - lo]
                        block = block[:, take_lon] if take_lon is not None else block
                        where = (t, slice(r0, r0 + len(rows)), slice(None))  # clean (time, lat, lon) axes
                        # on the file's axes: the day's (lat, lon) block transposed if lon comes first there
                        w[tuple(where[i] for i in p)] = block.T if p.index(1) > p.index(2) else block
        os.replace(other, path)
    finally:
        other.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ scheduling
def _client():
    """The active :class:`distributed.Client`, or None."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def _stream(fn, reader: _Reader, args: list[tuple], window: int) -> Iterator[tuple[int, Any]]:
    """Run ``_run_block(fn, reader, *args[i])`` with at most ``window`` blocks in flight.

    Yields ``(i, result)`` as blocks complete: on the active :class:`distributed.Client` when there
    is one (``fn`` and ``reader`` scattered once to every worker), else on a local thread pool.
    """
    todo = iter(enumerate(args))
    client = _client()
    if client is None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=max(1, min(window, os.cpu_count() or 1))) as ex:
            running = {ex.submit(_run_block, fn, reader, *a): i for i, a in itertools.islice(todo, window)}
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    yield running.pop(f), f.result()
                    for i, a in itertools.islice(todo, 1):
                        running[ex.submit(_run_block, fn, reader, *a)] = i
        return
    from distributed import as_completed

    fn_f, reader_f = client.scatter([fn, reader], broadcast=True, hash=False)
    keys: dict = {}

    def submit(i, a):
        fut = client.submit(_run_block, fn_f, reader_f, *a, pure=False)
        keys[fut.key] = i
        return fut

    ac = as_completed([submit(i, a) for i, a in itertools.islice(todo, window)], with_results=True)
    for fut, res in ac:
        # the result is here: free the worker's copy before handing it on (released after the
        # yield, it stayed on the worker while the block was written, one result set too many)
        i = keys.pop(fut.key)
        fut.release()
        del fut
        for j, a in itertools.islice(todo, 1):
            ac.add(submit(j, a))
        yield i, res


def _default_window() -> int:
    try:
        from distributed import get_client

        return 2 * max(1, sum(get_client().nthreads().values()))
    except (ImportError, ValueError):
        return 2 * max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------ main
def _chunked_per_file(source, folder: Path, kwargs: dict, overwrite: bool) -> ChunkedResult:
    """:func:`interpolate_chunked` with ``per_file``: the series is filled into a hidden file of
    ``folder``, then split into a file per input file (:func:`oceandl.io.write_per_file`).

    The input files' headers are read once (:func:`oceandl.io.reusing_opened`, active over the
    whole call: the times opened here are those the fill reads). The disk is not spared: at the
    end the folder holds the whole series and every day file (under temporary names, renamed
    together), a peak of 1.53x the output on 60 daily 128 x 128 files (DINEOF, ``time=16``).
    Writing the day files from the blocks instead needs a writer over the files (``_Writer``
    commits a block's ``core`` into one netCDF, then blends its lower halo into cores already
    written, reading them back): a block's time range split by the plan's steps into each file's
    local indices, the halo's read-back gathered across files (a time halo crosses a file
    boundary at every block); the end-of-run attributes (``chunked_fallback_blocks``,
    ``cv_sigma_scale``...), the source-grid pass (``_to_source_grid_file``) and
    ``_drop_dangling_references`` run per file; each file created as ``write_per_file`` encodes
    it (``_netcdf_ready``: its time units and coordinate encodings, ``_span_attrs``' global
    attributes), and at most a few files open at once (a decade of days is past the open-file
    limit). Until then, the disk must hold the series beside the output."""
    import tempfile

    from oceandl.io import check_complevel, entry_paths, plan_per_file, series_spans, source_paths, write_per_file
    from oceandl.utils import _tmp_tag, clean_stale_series

    check_complevel(kwargs["complevel"])  # refused before the folder is made
    inputs = source_paths(source) + entry_paths(kwargs.get("aux"), kwargs.get("fit_aux"), kwargs.get("mask"))
    fit_on = kwargs.get("fit_on")
    if isinstance(fit_on, (str, os.PathLike)):
        from .fitted import refuse_fit_folder_output

        if _is_fit_folder(fit_on):  # the filled files are not put among the fit's own
            refuse_fit_folder_output(folder, fit_on)
        else:  # the file fitted on is never overwritten by a file of the fill, as in memory
            inputs = inputs + source_paths(fit_on)
    with warnings.catch_warnings():  # the fill opens it again and says them ('using variable ...' was said twice)
        warnings.simplefilter("ignore", UserWarning)
        da = open_lazy(source, kwargs["var"], None, kwargs["min_quality"], check_values=False, bbox=kwargs["bbox"],
                       dates=kwargs["dates"])  # its times only: nothing is read
    plan = plan_per_file(folder, series_spans(source, da.name, field=da), da["time"].values, overwrite=overwrite,
                         inputs=inputs)
    created = not folder.exists()
    folder.mkdir(exist_ok=True)
    # a run killed (SIGKILL, out of memory) left its series (as large as the output) in the folder for good
    clean_stale_series(folder)
    fd, name = tempfile.mkstemp(prefix=f".oceandl-series.{_tmp_tag()}-", suffix=".nc", dir=folder)
    os.close(fd)
    os.unlink(name)
    series = Path(name)
    try:
        try:
            res = interpolate_chunked(source, series, overwrite=False, per_file=False, **kwargs)
        except OceanDLError as exc:
            if not str(exc).startswith(f"{series}: "):
                raise
            # a write of the hidden series (a full disk) named it alone: the user asked for the folder
            raise type(exc)(f"{folder}{os.sep}: {str(exc)[len(str(series)) + 2:].rstrip('.')} (writing the whole "
                            f"filled series first, as {series.name}, to split it into a file per input "
                            "file)") from exc
        with xr.open_dataset(series, engine="netcdf4", chunks={}) as ds:
            write_per_file(ds, plan, overwrite=overwrite, complevel=kwargs["complevel"],
                           progress=kwargs["progress"])
    finally:
        if series.exists():
            series.unlink()
        if created and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
    res.path = folder
    return res


def _reusing_opened(fn: Callable) -> Callable:
    """``fn`` run within :func:`oceandl.io.reusing_opened`: a series of files opened once per call
    (its times, the statistics pass, the blocks' reads), each file's header read once."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        from oceandl.io import reusing_opened

        with reusing_opened():
            return fn(*args, **kwargs)

    return run


@_reusing_opened
def interpolate_chunked(source, output: str | os.PathLike, method: str = "dineof", *, var: str | None = None,
                        chunks: str | Mapping[str, int] | None = None,
                        halo: str | int | Mapping[str, int] | None = None,
                        blend: bool = True, seed: int = 0, device: str = "auto", keep_observed: bool = True,
                        train_region: Mapping[str, slice] | None = None, max_in_flight: int | None = None,
                        overwrite: bool = False, progress: bool = False, complevel: int = 4,
                        log: Callable[[str], None] | None = None, command: str | None = None,
                        min_quality: int | None = None, aux=None, bbox=None, dates=None, mask=None,
                        per_file: bool | None = None, fit_on=None, fit_aux=None, **options) -> ChunkedResult:
    """Fill the gaps of a (time, lat, lon) cube block by block and write it chunk by chunk to netCDF.

    Parameters
    ----------
    source : netCDF path (opened lazily with dask); several (a list, a folder or a glob pattern: a file per
        day, see :func:`oceandl.io.open_files`); or an xarray Dataset/DataArray (NumPy or dask).
    output : the netCDF file to write (atomically: a temporary beside it, renamed at the end).
    method : ``"climatology"``, ``"dineof"``, ``"eof"`` or a neural method (``"unet"``, ``"resae"``,
        ``"convae"``, ``"smp_unet"``); see the module docstring for each strategy.
    var : the variable (found from CF attributes when omitted).
    chunks : core block size per axis, ``"time=100,lat=256,lon=256"`` or a dict (-1: whole axis).
        Defaults: climatology and neural ``time=64,lat=256,lon=256``; DINEOF/EOF
        ``time=-1,lat=128,lon=128``.
    halo : halo per axis (an int: both spatial axes). Defaults: climatology 0; neural
        ``time=neighbours`` and ``overlap`` px in space; DINEOF/EOF a quarter of the spatial core
        (and of the time core when time is chunked).
    blend : blend each block's lower halo into the neighbours already written (see the module
        docstring); False crops every block to its core. The neural time halo is never blended
        (it is exact).
    seed, device, keep_observed : as for :class:`~oceandl.interp.base.Interpolator`.
    train_region : neural methods without ``checkpoint``: ``{"time": slice, "lat": slice, "lon":
        slice}`` (index slices) loaded in memory to train the network.
    max_in_flight : blocks computed at once (default: twice the worker threads).
    overwrite, progress, log : replace ``output``; a progress bar; a callable for one-line notes.
    per_file : ``output`` is a folder, and the fill is written into it as a file per input file
        (each named as its input, with its time steps: :func:`oceandl.io.write_per_file`), from a
        hidden series file in that folder, removed at the end (meanwhile the disk holds both: a peak
        of 1.4x the output measured on 60 daily 64 x 64 files, 1.5-1.7x on 128 x 128, nearer 2x
        as grids grow; the files are not written from the blocks directly, as the series' last
        passes (blending, sigma's scale, the source grid's order) rewrite it: see
        ``_chunked_per_file``). Each input file's header is read once. Default: when ``output`` is
        an existing folder or a string ending in ``/``.
    command : the command line, put in front of the input file's ``history`` (default: the method and
        its options); the file's other global attributes are kept (:func:`oceandl.io.file_attrs`).
    complevel : zlib level of the written variables, 0 (uncompressed) to 9; see
        :func:`oceandl.io.write_netcdf`.
    min_quality : GHRSST L2P/L3: values whose ``quality_level`` is below it are missing
        (:func:`oceandl.io.open_field`).
    bbox, dates : only this region ``(west, south, east, north)`` and period ``(start, end)`` of
        ``source`` are read and filled (:func:`oceandl.io.open_field`); covariates named as
        variables of the file are cut the same way.
    aux : auxiliary variables (covariates) for the neural methods and DINEOF: names of variables of
        ``source`` (``"sst_mw"``; ``"FILE:VAR"`` for another file, put on the field's days and grid
        lazily when on others, as in memory), and/or DataArrays on the field's grid (lazily opened: each block reads its part),
        as a list, a dict or a Dataset. With a ``checkpoint`` (or ``init``) whose network takes
        covariates and no ``aux``, those it was trained with, by name from ``source``. Normalised
        with the whole cube's statistics (see the module docstring).
    mask : a land-sea mask, True/1 = ocean (:mod:`oceandl.interp.mask`'s conventions): a (lat, lon)
        DataArray on the field's grid (matched by coordinate; a larger grid is cut to it) or the name
        of a variable of ``source`` (``"FILE:VAR"`` of another file). Loaded whole (it is 2-D). As in
        memory: the observations on its land are dropped (from the global statistics too; NaN,
        ``missing_flag`` 3), its ocean pixels never observed are filled by the neural methods and
        left NaN, with one warning, by the others (``missing_flag`` 4); the output has
        ``land_sea_mask``. Without one, a ``checkpoint`` that stores a mask applies its own where its
        training statistics fit the cube (as in memory).
    fit_on : a fit to apply instead of fitting the blocks (climatology, ``eof``, ``dineof``), as
        :func:`~oceandl.interp.interpolate`'s ``fit_on``: a fitted Interpolator, the folder its
        ``save()`` wrote (``oceandl train interpolator``), or a field to fit in memory first (a
        netCDF path or a DataArray, on ``source``'s grid, read whole over ``bbox``; with ``aux``, its
        covariates by the same names, and ``mask`` applied to it). ``source`` is then filled by
        the fit's ``transform`` in blocks of ``chunks["time"]`` days (default 64) over the whole grid
        (see the module docstring): the in-memory ``interpolate(..., fit_on=)`` values, flags and
        sigma (DINEOF's calibration on the observations the in-memory fill hides, whatever the
        blocks); no ``halo`` or ``train_region``.
        A saved fit's covariates are read from ``source`` by name when ``aux`` is not given.
    fit_aux : with ``fit_on`` a field to fit and ``aux``, the fitted period's covariates, where they
        are not ``aux``'s names in the ``fit_on`` file (as ``oceandl interpolate --fit-aux``): one entry
        per ``aux`` entry, in its order, ``"VAR"`` of the ``fit_on`` file or ``"FILE:VAR"`` of another
        (put on the fitted days and grid), each taken as the covariate of its ``aux`` name; or, as
        :func:`~oceandl.interp.interpolate`'s ``fit_aux``, DataArrays (a list, a dict or a Dataset)
        named as ``aux``'s on the fitted field's grid. Read whole, as the fitted field is; one with
        values on fewer than 75 % of the fitted days is warned of, as in memory
        (:func:`~oceandl.interp.base.warn_partial_fit_aux`).
    **options : the method's options (e.g. ``n_modes=8``, ``checkpoint="unet_model"``); with a fit
        already made, only its transform options (``transform_smoother``).

    Returns
    -------
    ChunkedResult

    Raises
    ------
    InputError
        Bad input (see :func:`open_lazy`), unknown method or option, bad chunks or halo, output
        that exists without ``overwrite``; covariates given to a method that takes none, missing,
        on another grid, all NaN, constant, or (neural methods, DINEOF) constant in time at every
        pixel; not the ones a checkpoint was trained with; a field or covariate whose values contradict
        its temperature units (:func:`~oceandl.interp.base.check_units_values`, from the statistics
        pass's pixel means, once for the cube); a bad ``mask``
        (:func:`~oceandl.interp.mask.read_mask`), or more observations on its land than on its ocean.
    """
    from oceandl.utils import atomic_path, check_output_path, writing

    from . import get_method

    t_start = _time.perf_counter()
    say = log or (lambda _msg: None)
    if per_file is None:
        from oceandl.io import names_folder

        per_file = names_folder(output)
    if per_file:
        return _chunked_per_file(source, Path(output), dict(
            method=method, var=var, chunks=chunks, halo=halo, blend=blend, seed=seed, device=device,
            keep_observed=keep_observed, train_region=train_region, max_in_flight=max_in_flight, progress=progress,
            complevel=complevel, log=log, command=command, min_quality=min_quality, aux=aux, bbox=bbox, dates=dates,
            mask=mask, fit_on=fit_on, fit_aux=fit_aux, **options), overwrite=overwrite)
    output = Path(output)
    if output.suffix.lower() not in (".nc", ".nc4"):
        raise InputError(f"{output}: the output must be a netCDF file (.nc), or a folder (an existing one, or "
                         f"{output}/ with a trailing slash) for a file per input file")
    from oceandl.io import check_complevel, describe_source, output_dtype, entry_paths, source_grid, source_paths

    inputs = source_paths(source) + entry_paths(aux, fit_aux, mask)  # a covariate's or a mask's file too
    if isinstance(fit_on, (str, os.PathLike)) and not _is_fit_folder(fit_on):
        inputs = inputs + source_paths(fit_on)  # the file fitted on is never overwritten by the fill
    check_output_path(output, overwrite, inputs=inputs, kind="file", what="filled netCDF")

    check_complevel(complevel)
    if fit_aux is not None and fit_on is None:  # as interpolate(fit_aux=) refuses it
        raise InputError("fit_aux: only with fit_on (a field to fit)")
    if fit_on is not None:  # a fit (made, saved, or of another field) applied block by block
        refused = [k for k, v in (("halo", halo), ("train_region", train_region)) if v is not None]
        if refused:
            raise InputError(f"{refused[0]}: not with fit_on (a fit is applied to whole days over the whole grid, "
                             "without halos or a network to train)")
        return _transform_chunked(source, output, method, fit_on, var=var, chunks=chunks, seed=seed, device=device,
                                  keep_observed=keep_observed, overwrite=overwrite, progress=progress,
                                  complevel=complevel, say=say, command=command, min_quality=min_quality, aux=aux,
                                  bbox=bbox, dates=dates, mask=mask, options=options, t_start=t_start,
                                  fit_aux=fit_aux)
    cls = get_method(method)
    cls(seed=seed, device=device, keep_observed=keep_observed, **options)  # options checked before reading
    from .neural import NeuralInterpolator

    kind = "climatology" if method == "climatology" else "neural" if issubclass(cls, NeuralInterpolator) else "fit"
    start = (options.get("checkpoint") or options.get("init")) if kind == "neural" else None
    saved_aux, taken = None, None
    if start is not None:
        from .neural import checkpoint_aux

        saved_aux = checkpoint_aux(start)  # the covariates the network takes, in channel order
        if aux is None and saved_aux:  # as `oceandl interpolate --model` takes them: by name, from the file
            aux, taken = list(saved_aux), f"{'checkpoint' if options.get('checkpoint') else 'init'} {start}"
            say(f"auxiliary variables of {start}: {', '.join(saved_aux)} (--aux)")
    if aux is not None and not cls.takes_aux:
        from .base import _aux_takers

        takers = ", ".join(sorted(_aux_takers())) or "none"
        raise InputError(f"method {method!r}: takes no auxiliary variables (aux); the methods that do: {takers}")
    if aux is None and "aux_weight" in options:  # else every block failed on it, and took the climatology
        raise InputError("method 'dineof': option aux_weight has no effect without auxiliary variables (aux): "
                         "give aux, or drop aux_weight")
    core = {**_DEFAULT_CHUNKS[kind], **parse_chunks(chunks)}
    user_halo = parse_chunks(halo, "--halo")
    if max_in_flight is not None and max_in_flight < 1:
        raise InputError(f"max_in_flight={max_in_flight}: must be >= 1")

    # stats pass chunks: the cores; the values are checked in that pass (a pass of its own read the cube once more)
    da = open_lazy(source, var, core, min_quality, check_values=False, bbox=bbox, dates=dates)
    shape = tuple(int(n) for n in da.shape)
    # named by the file, as every other refusal of its content (and the in-memory fill's) is
    where = f"{describe_source(source)}: " if isinstance(source, (str, os.PathLike, list, tuple)) else ""
    if options.get("checkpoint") is not None and kind == "neural":
        from .neural import check_box_grid

        check_box_grid(options["checkpoint"], options, bbox, da, where)
    core = {ax: (n if core[ax] < 0 else min(core[ax], n)) for ax, n in zip(_AXES, shape)}
    sea, sea_how = _open_mask(mask, source, da, where)  # whole: (lat, lon) bool on the field's (clean) grid
    # lazy, checked against the field's grid (another's put on it, said)
    covariates = _open_aux(aux, source, da, core, where, taken, bbox, dates, log=say)
    if not cls.takes_static_aux:  # before the statistics pass, as in memory before the fit
        from .base import refuse_static_aux

        refuse_static_aux(method, [c[0] for c in covariates if c[3]], f"{where}variable {da.name!r}")
    if saved_aux is not None and kind == "neural":
        from .base import aux_naming_hint

        given = [c[0] for c in covariates]
        what = "checkpoint" if options.get("checkpoint") else "init checkpoint"
        missing, extra = [k for k in saved_aux if k not in given], [k for k in given if k not in saved_aux]
        if missing or extra:  # said before the statistics pass, as the in-memory fit says it
            had = f"auxiliary variables {', '.join(map(repr, saved_aux))}" if saved_aux else "no auxiliary variable"
            fix = " and ".join(([f"give {', '.join(map(repr, missing))} as aux (--aux)"] if missing else [])
                               + ([f"drop {', '.join(map(repr, extra))}"] if extra else []))
            raise InputError(f"method {method!r}: {what} {start} was trained with {had}; {fix}"
                             f"{aux_naming_hint(missing, extra)}")
        covariates.sort(key=lambda c: saved_aux.index(c[0]))  # the network's channel order

    design, k, fold = None, 0, None
    if kind == "climatology" or "harmonics" in cls.option_defaults:
        # the seasonal fit's design (climatology, and the cycle DINEOF/EOF remove): its normal
        # equations join the statistics pass, over the whole record whatever the time chunks
        from .climatology import harmonic_design, harmonic_folds, resolve_harmonics

        # the method's own default (DINEOF and eof: 0, the classic time mean; climatology: auto): an
        # "auto" here fitted a seasonal cycle under --chunks that the same call without it did not
        k, frac = resolve_harmonics(options.get("harmonics", cls.option_defaults["harmonics"]),
                                    da["time"] if "time" in da.coords else None, f"{where}variable {da.name!r}")
        design = harmonic_design(frac, k) if k else None
        # each pixel's cycle is shrunk toward its neighbours' (as in memory): the fold sums too
        fold = harmonic_folds(frac, k) if k else None
    t0 = _time.perf_counter()
    stats = _global_stats(da, second_pass=kind != "fit" or design is not None, design=design,
                          fold=fold if design is not None else None, label=f"{where}variable {da.name!r}",
                          aux=covariates, sea=sea, neighbours=cls._rare_neighbours)
    stats_seconds = _time.perf_counter() - t0
    # a checkpoint's training statistics, where they fit: a single day is then enough
    train = None
    if kind == "neural":
        train, ckpt_sea = _training_normalisation(da, stats, options, where, sea)
        if sea is None and ckpt_sea is not None:  # the mask the network was trained with, as in memory
            sea, sea_how = ckpt_sea, f"the mask checkpoint {options['checkpoint']} was trained with"
            stats.land_obs = int(stats.count[~sea].sum())
    if sea is not None:
        say(f"land-sea mask ({sea_how}): {stats.land_obs:,} observations on its land dropped")
    label = f"{where}variable {da.name!r}"
    if sea is not None and kind == "neural" and train is None:  # the networks fill every ocean pixel of the mask
        from .base import _nearest_mean

        stats.mean, stats.known = _nearest_mean(stats.mean, stats.count > 0, sea)
    unfilled = None if sea is None or kind == "neural" else sea & ~stats.ocean
    if unfilled is not None and unfilled.any():  # one warning for the cube, as the in-memory fit's
        warn(f"{label}: {int(unfilled.sum())} ocean pixels of the mask are never observed; method {method!r} "
             "cannot fill a pixel without observations: left missing (missing_flag 4; the neural methods fill "
             "them)", UserWarning)
    if shape[0] < 2 and train is None:
        raise InputError(f"{where}variable {da.name!r}: needs at least 2 time steps, got {shape[0]}")
    say(f"global statistics of {shape} in {stats_seconds:.1f} s "
        f"({int(stats.ocean.sum()):,} ocean pixels, scale {stats.scale:.4g})")

    # ---- the block function and the halos
    dims = ("time", "lat", "lon")
    blend_axes = {ax: blend for ax in _AXES}
    if kind == "climatology":
        fn: Callable = _ClimatologyBlock(stats, keep_observed, design)
        hal = {ax: 0 for ax in _AXES}
    elif kind == "fit":
        coef, season_attrs = None, {}
        if "harmonics" in cls.option_defaults:
            from .climatology import harmonic_attrs

            levels = np.where(stats.count > 0, 0, -1)
            if design is not None:
                coef, levels, _ = _global_harmonics(stats, design)
            season_attrs = harmonic_attrs(k, levels, f"{where}variable {da.name!r}")
        _constant_in_time(stats.aux, method, where, da.name)
        if getattr(cls, "_warn_no_repeat", False) and not (stats.count >= _MIN_PIXEL_OBS).any():
            from .eof import warn_no_repeat

            warn_no_repeat(label, int(stats.count.sum()))
        fn = _FitBlock(cls, seed, device, keep_observed, options, dims, design, coef, stats.aux, stats.scale)
        hal = {ax: (0 if core[ax] >= n else max(1, core[ax] // 4)) for ax, n in zip(_AXES, shape)}
    else:
        if train is not None:  # the region only loads the network; the cube is normalised as it was trained
            stats = train
            say(f"normalised with checkpoint {options['checkpoint']}'s training statistics (scale {stats.scale:.4g})")
        given = None if train is None else (stats.mean, stats.global_mean, stats.scale)
        aux_norm = _neural_aux_norm(stats, train is not None, options, start, method, where, da.name)
        fitted = _fit_network(cls, da, core, shape, train_region, seed, device, options, say, stats.count, given,
                              progress, covariates, aux_norm if start is not None else None, sea,
                              {st.name: aux_norm[st.name] for st in stats.aux if st.static})
        fn = _NeuralBlock(fitted, stats, shape[1:], keep_observed, da,
                          [aux_norm[st["name"]] for st in fitted._aux_stats])
        ov = int(fitted.options["overlap"])
        hal = {"time": int(fitted._cfg["neighbours"]), "lat": ov, "lon": ov}
        blend_axes["time"] = False  # day t depends on days t-n..t+n only: the time halo is exact
    hal.update(user_halo)
    if kind == "neural" and hal["time"] < int(fn.fitted._cfg["neighbours"]):
        warn(f"halo time={hal['time']} < neighbours={fn.fitted._cfg['neighbours']}: days at "
                      "time-chunk edges lose neighbour context")

    blocks = plan_blocks(shape, core, hal)
    read = {ax: _read_chunk(core[ax], hal[ax]) for ax in _AXES}
    if read == core:
        src = da
    else:  # finer input chunks: halos over-read less. The same file again: its warnings were given
        with warnings.catch_warnings():  # ('using variable ...' twice on stderr)
            warnings.simplefilter("ignore", UserWarning)
            src = open_lazy(source, var, read, min_quality, check_values=False, bbox=bbox, dates=dates)
            covariates = _open_aux(aux, source, da, read, where, taken, bbox, dates) if covariates else covariates
    if kind == "neural":  # the blocks read them in the network's channel order
        order = [st["name"] for st in fn.fitted._aux_stats]
        covariates.sort(key=lambda c: order.index(c[0]))
    window = max_in_flight or _default_window()
    # the field and each covariate over the block
    max_block = max(int(np.prod(b.ext_shape)) for b in blocks) * 4 * (1 + len(covariates))
    say(f"{len(blocks)} blocks of core {core}, halo {hal}, at most {window} in flight "
        f"(largest read {max_block / 2**20:.1f} MiB as float32)")

    # ---- output skeleton, then blocks streamed into it
    name = str(da.name) if da.name is not None and da.name not in ("sigma", "missing_flag") else "filled"
    dtype = output_dtype(da)  # float32 for an int16 field, whatever its scale_factor's type
    with_sigma = (kind == "climatology" or (kind == "neural" and bool(fn.fitted._cfg["nll"]))
                  or (kind == "fit" and bool({**cls.option_defaults, **options}.get("error_map", False))))
    # every option with its value, as the in-memory fill records them: the given ones alone (a DINEOF
    # file said {"keep_observed": true, "seed": 0}) did not say what filled it
    opts_json = json.dumps({**cls.option_defaults, **options, "seed": seed, "keep_observed": keep_observed},
                           sort_keys=True, default=_json_default)
    plan = {"chunks": core, "halo": hal, "blend": {k: int(v) for k, v in blend_axes.items()},
            "blocks": len(blocks), "strategy": {"climatology": "global per-pixel statistics",
                                                "fit": "per-region fits on overlapping blocks",
                                                "neural": "one network, tiled inference per block"}[kind]}
    attrs = {"oceandl_version": oceandl_version(), "oceandl_software": software_versions(*cls.libraries),
             "method": method, "options": opts_json,
             "chunked": json.dumps(plan, sort_keys=True),
             # the loaded network's identity (path, weights' SHA-256, how it was trained), as in memory
             **(getattr(fn.fitted, "checkpoint_attrs_", {}) if kind == "neural" else {}),
             **({"normalisation": fn.fitted.normalisation_} if kind == "neural" else {}),
             **(fn.fit_attrs(f"{where}variable {da.name!r}") if kind == "climatology" else {}),
             **(season_attrs if kind == "fit" else {}),
             **({"aux_variables": " ".join(c[0] for c in covariates)} if covariates else {}),
             **({"land_sea_mask": mask_text(sea, sea_how)} if sea is not None else {}),
             "history": append_history(da.attrs.get("history"), f"gaps filled with method {method} {opts_json} "
                                                                "(chunked)")}
    var_attrs = {k: _netcdf_safe(v) for k, v in {**_input_attrs(da.attrs), **attrs}.items()}
    # CF: the flag (and sigma) belong to the field; read back, the file is one field, not three
    var_attrs["ancillary_variables"] = "missing_flag sigma" if with_sigma else "missing_flag"
    var_attrs["comment"] = filled_comment(method, keep_observed, da.attrs.get("comment"), masked=sea is not None)
    from oceandl.io import file_attrs as _file_attrs

    # the input file's global attributes (title, institution...) and history were dropped
    file_attrs = {k: _netcdf_safe(v) for k, v in _file_attrs(
        da, attrs, command=command, what=f"gaps filled with method {method} {opts_json} (chunked)").items()}
    csize = (1, core["lat"], core["lon"])
    names = {"filled": name, "flag": "missing_flag", **({"sigma": "sigma"} if with_sigma else {})}

    coords_of = {ax: da[ax].values for ax in _AXES}

    def block_args(b: Block) -> tuple:
        ys, xs = b.ext[1], b.ext[2]
        coords = {"time": coords_of["time"][b.ext[0]], "lat": coords_of["lat"][ys], "lon": coords_of["lon"][xs]}
        return b.ext, coords, stats.mean[ys, xs], stats.ocean[ys, xs], None if sea is None else sea[ys, xs]

    fallback = 0
    squares: list[int] = []  # DINEOF: each block's CV squares
    sigma_scales: list[float] = []  # DINEOF error_map: each fitted block's cv_sigma_scale
    grid = source_grid(da)
    with atomic_path(output, overwrite=overwrite) as tmp:
        with writing(output):
            _skeleton(da, tmp, name, with_sigma, file_attrs, var_attrs, csize, dtype, complevel, grid=grid,
                      sigma_extra=(fn.fitted._sigma_attrs() if kind == "neural" and with_sigma else
                                   {"error_model": ERROR_MAP_TEXT + " (per block: each block's own modes and "
                                    "cv_sigma_scale)"} if kind == "fit" and with_sigma else None),
                      masked=sea is not None)
        writer = _Writer(tmp, names, keep_observed, blend_axes, shown=output)
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(blocks), desc=f"{method}: blocks", disable=not progress, leave=False)
            waiting: dict[int, dict] = {}
            nxt = 0
            try:
                labels = _aux_labels(aux, source, where)
            except InputError:  # a covariate's file was checked when opened: said by name alone then
                labels = {}
            reader = _Reader(src, [c[1] for c in covariates], where,
                             [labels.get(c[0], f"{where}aux {c[0]!r}") for c in covariates])
            for i, res in _stream(fn, reader, [block_args(b) for b in blocks], window):
                waiting[i] = res
                while nxt in waiting:  # commit in raster order: lower halos blend into written cores
                    r = waiting.pop(nxt)
                    fallback += bool(r.get("fallback"))
                    if r.get("cv_squares") is not None:
                        squares.append(int(r["cv_squares"]))
                    if r.get("cv_sigma_scale") is not None:
                        sigma_scales.append(float(r["cv_sigma_scale"]))
                    writer.commit(blocks[nxt], r)
                    nxt += 1
                    bar.update()
            bar.close()
            writer.setattr("chunked_fallback_blocks", fallback)
            small_cv = sum(q < _MIN_CV_SQUARES for q in squares)
            if squares:
                writer.setattr("chunked_small_cv_blocks", small_cv)
            if sigma_scales and "sigma" in names:  # the blocks' calibration factors, on sigma
                writer.setattr("cv_sigma_scale", float(np.median(sigma_scales)), var=names["sigma"])
                writer.setattr("cv_sigma_scale_range", np.array([min(sigma_scales), max(sigma_scales)]),
                               var=names["sigma"])
        finally:
            writer.close()
        if grid is not None and not grid.is_clean:
            say(f"putting the result on the input's grid (dims {tuple(grid.dims.values())}, its order and "
                "coordinates): one more pass over the output")
            with writing(output):
                _to_source_grid_file(tmp, grid, csize)
        with writing(output):
            _drop_dangling_references(tmp)
    if squares and small_cv:
        # Each block chooses its own mode count by CV: on small blocks (16 x 12 x 12 px cores with a
        # 3 px halo) the CV set was 1-2 squares on 1-2 days, the choice noise, and gap errors reached
        # 21 degC where the in-memory fit of the whole 16 x 24 x 24 cube had 8; this went unsaid.
        warn(f"{small_cv} of {len(squares)} blocks chose their number of modes on fewer than "
                      f"{_MIN_CV_SQUARES} cross-validation squares (the fewest: {min(squares)}): blocks of "
                      f"{max((b.ext_shape for b in blocks), key=np.prod)} (time, lat, lon) are too small for DINEOF's "
                      "cross-validation; use larger --chunks (default lat=128,lon=128) or fill in memory",
                      UserWarning)
    if fallback:
        warn(f"{fallback} of {len(blocks)} blocks could not be fitted (too few observations) and "
                      "took the climatology")
    seconds = _time.perf_counter() - t_start
    res = ChunkedResult(output, method, shape, core, hal, len(blocks), seconds, stats_seconds, max_block, window,
                        fallback, attrs)
    say(f"{method}: {np.prod(shape) / 1e6:.1f} Mpx in {seconds:.1f} s ({res.mpx_per_s:.2f} Mpx/s) -> {output}")
    return res


def _open_mask(mask, source, da: xr.DataArray, where: str) -> tuple[np.ndarray | None, str | None]:
    """The land-sea ``mask`` of :func:`interpolate_chunked` on the lazy field ``da``'s grid, read
    whole: ``(sea, how)`` (:func:`~oceandl.interp.mask.read_mask`), or ``(None, None)``."""
    if mask is None:
        return None, None
    if isinstance(mask, str):  # VAR of the source, or FILE:VAR, as `oceandl interpolate --mask` reads it
        if isinstance(source, xr.DataArray):
            raise InputError(f"{where}variable {da.name!r}: mask {mask!r} is a name, but the field is a DataArray: "
                             "pass the mask as a DataArray")
        from oceandl.pipelines.interpolate import _read_mask

        m = _read_mask(source, mask, da, where)
        return np.asarray(m.values, dtype=bool), str(m.attrs["oceandl_mask"])
    from .mask import read_mask

    return read_mask(mask, da, f"{where}variable {da.name!r}")


def _constant_in_time(aux: list[_AuxStats], method: str, where: str, var) -> None:
    """Refuse a covariate that does not change in time at any pixel (its scale is 0): minus its
    per-pixel mean, as each covariate is normalised, it is 0 everywhere."""
    for st in aux:
        if not st.scale > 0 and not st.static:
            raise InputError(f"{where}variable {var!r}: method {method!r}: aux {st.name!r} does not change in time "
                             "at any pixel: minus its per-pixel mean (as each covariate is normalised) it is 0 "
                             "everywhere and tells the method nothing; give covariates that vary from day to day (a "
                             "static one as a (lat, lon) variable: an input channel of the neural methods)")


def _neural_aux_norm(stats: _Stats, training: bool, options, start, method: str, where: str,
                     var) -> dict[str, tuple[np.ndarray, dict]]:
    """Each covariate's per-pixel mean (float32, (lat, lon), in its file's units) and statistics
    ``{name, units, scale, global_mean}`` for the network's input, as the in-memory fit takes them
    (:meth:`~oceandl.interp.neural.NeuralInterpolator._setup_aux`): a checkpoint's training ones
    when the field is normalised with its training statistics (``training``; a kelvin covariate for
    a degC network converted, values far from them refused), else the whole cube's, from the
    statistics pass. A static covariate (a (lat, lon) map): its global mean and standard deviation,
    a checkpoint's training ones whenever a network is loaded (as in memory)."""
    from .neural import _SHIFT_LIMIT, _unit, kelvin_offset

    saved = {}
    if start is not None:
        from oceandl.training.checkpoint import read_config

        saved = {st["name"]: st for st in (read_config(start).get("interpolator") or {}).get("aux") or []}
    out = {}
    for a in stats.aux:
        was = saved.get(a.name, {}).get("static", False)
        if a.static != was and a.name in saved:
            how = "static (a (lat, lon) map)" if was else "changing in time"
            raise InputError(f"method {method!r}: aux {a.name!r} is {'static' if a.static else 'given in time'}, "
                             f"checkpoint {start} was trained with it {how}")
        theirs = (stats.train_aux or {}).get(a.name) if training else None
        if a.static and a.name in saved:  # the training values, whatever the region filled
            theirs = np.full(a.count.shape, saved[a.name]["global_mean"])
        elif a.static:
            out[a.name] = (a.mean.astype(np.float32), {"name": a.name, "units": a.units, "scale": a.scale,
                                                       "global_mean": a.global_mean, "static": True})
            continue
        if theirs is None or a.name not in saved:
            _constant_in_time([a], method, where, var)
            out[a.name] = (a.mean.astype(np.float32),
                           {"name": a.name, "units": a.units, "scale": a.scale, "global_mean": a.global_mean})
            continue
        st = dict(saved[a.name])
        theirs_u, ours_u = _unit(st.get("units")), _unit(a.units)
        offset = kelvin_offset(ours_u, theirs_u)
        if offset is None and theirs_u is not None and ours_u is not None and theirs_u != ours_u:
            raise InputError(f"method {method!r}: aux {a.name!r} is in {a.units!r}, checkpoint {start} was "
                             f"trained with it in {st['units']!r} (convert it first)")
        # in memory the values are converted (+ offset); here the mean is (- offset): the same anomaly
        mean = np.asarray(theirs, dtype=np.float64) - (offset or 0.0)
        seen = a.count > 0
        shift = float((a.total[seen] - a.count[seen] * mean[seen]).sum() / a.count[seen].sum())
        if abs(shift) > _SHIFT_LIMIT * st["scale"]:
            raise InputError(f"method {method!r}: aux {a.name!r}: values {abs(shift) / st['scale']:.0f} training "
                             f"scales away from those checkpoint {start} was trained with (mean difference "
                             f"{shift:+.4g} per pixel: other units?)")
        out[a.name] = (mean.astype(np.float32), st)
    return out


def _default_region(da: xr.DataArray, core, shape, count: np.ndarray) -> dict[str, slice]:
    """The first time chunk of the central spatial block or, when that has fewer than 2 observed
    days (land there, or a cloudy start), the spatial block with the most observations over its
    time chunk with the most: the central block alone failed as 'all values are NaN' (even with a
    checkpoint, which only needs a region to load the network on), naming no region."""
    region = {"time": slice(0, core["time"])}
    for ax, n in zip(("lat", "lon"), shape[1:]):
        c = core[ax]
        start = max(0, min(n - c, (n // 2) // c * c))
        region[ax] = slice(start, start + c)
    if int(da.isel(region).notnull().any(("lat", "lon")).sum()) >= 2:
        return region
    spatial = plan_blocks((1, *shape[1:]), {"lat": core["lat"], "lon": core["lon"]}, {})
    best = max(spatial, key=lambda b: int(count[b.core[1], b.core[2]].sum()))
    region.update(lat=best.core[1], lon=best.core[2])
    per_day = np.asarray(da.isel(lat=best.core[1], lon=best.core[2]).notnull().sum(("lat", "lon")).values)
    starts = range(0, shape[0], core["time"])
    t0 = max(starts, key=lambda t: int(np.count_nonzero(per_day[t:t + core["time"]])))
    region["time"] = slice(t0, t0 + core["time"])
    return region


def _fit_network(cls, da: xr.DataArray, core, shape, train_region, seed, device, options, say,
                 count: np.ndarray | None = None, given: tuple | None = None, progress: bool = False,
                 covariates: list = (), aux_norm: dict | None = None, sea: np.ndarray | None = None,
                 static_norm: dict | None = None):
    """The network of a neural method: loaded (``checkpoint``) or trained on an in-memory region.

    ``given``: the whole grid's ``(mean, global_mean, scale)`` to normalise the region with (a
    checkpoint's training statistics; the region alone is not the grid they were checked on).
    ``covariates``: ``(name, lazy array, units)``, read over the region too; ``aux_norm``: their
    whole-grid normalisation (:func:`_neural_aux_norm`) for a loaded network (a region of one day
    cannot give a covariate's temporal statistics); without it the region's own, as the field's.
    ``sea``: the land-sea mask (lat, lon) of the whole grid, the region's part given to the fit.
    ``static_norm``: the static covariates' whole-grid normalisation, given without ``aux_norm`` too."""
    if train_region is None:
        train_region = _default_region(da, core, shape, count if count is not None else np.ones(shape[1:]))
    bad = set(train_region) - set(_AXES)
    if bad:
        raise InputError(f"train_region: unknown axis {sorted(bad)[0]!r} (use time, lat, lon)")
    region = da.isel(train_region).load()
    what = "loading the network" if options.get("checkpoint") else "training the network"
    where = ", ".join(f"{ax} {s.start}:{s.stop}" for ax, s in train_region.items() if isinstance(s, slice))
    say(f"{what} on region {dict(region.sizes)} ({where})")
    try:
        # the training bar, as in memory: minutes of training on the region went by without one
        model = cls(seed=seed, device=device, progress=progress, **options)
        model._warn_time_steps = False  # the region's and the blocks' steps: warned once for the cube (_NeuralBlock)
        ys, xs = train_region.get("lat", slice(None)), train_region.get("lon", slice(None))
        if given is not None:
            model._given_stats = (given[0][ys, xs], *given[1:])
        if aux_norm is not None:
            model._given_aux = {k: (mean[ys, xs], st) for k, (mean, st) in aux_norm.items()}
            model._check_aux_values = False  # checked on the whole cube
        elif static_norm:  # a static map's statistics are the whole grid's (a region's part of it may be flat)
            model._given_aux = {k: (mean[ys, xs], st) for k, (mean, st) in static_norm.items()}
            model._check_aux_values = False
        # a static one as its (lat, lon) map: taken as static by the fit
        aux = {name: (a.isel(time=0, drop=True) if static else a).isel(
            {k: v for k, v in train_region.items() if not static or k != "time"}).load()
            for name, a, _, static in covariates} or None
        return model.fit(region, aux=aux, **({} if sea is None else {"mask": sea[ys, xs]}))
    except InputError as exc:  # the region's fault, not the whole variable's: say which region
        if type(exc) is not InputError:
            raise
        raise InputError(f"{what} on region {where}: {exc}") from None


# ------------------------------------------------------------------------------------------ a fit applied
def _fit_for_chunks(fit_on, method: str, cls, options: dict, source, da: xr.DataArray, *, var, seed, device,
                    keep_observed, progress, min_quality, bbox, aux, mask, where: str, say,
                    fit_aux=None) -> tuple[Any, Any]:
    """The fitted method that :func:`interpolate_chunked` with ``fit_on`` applies, and the covariates
    to read from the input (``aux``, or a saved fit's own names).

    A fit already made (an Interpolator, or the folder its ``save()`` wrote) is loaded (and cut to
    ``bbox``'s block of its grid); a field (a file, or a DataArray) is read whole in memory over
    ``bbox`` and fitted there, with ``mask`` (on the input's grid) and, for DINEOF, the same
    covariates read from it by name, or from ``fit_aux`` (:func:`interpolate_chunked`). Errors about
    the fit start with ``"fit_on: "``, as :func:`~oceandl.interp.interpolate`'s."""
    from . import fitted_model
    from .base import Interpolator

    fitted = None
    # keep_observed=False is an option of the fit, refused for a fit made as in memory (not ignored)
    given = {**options, **({} if keep_observed else {"keep_observed": False})}
    if isinstance(fit_on, (str, os.PathLike)):
        from .fitted import fitted_folder

        fit_on = fitted_folder(fit_on) or fit_on
        if _is_fit_folder(fit_on):  # a saved fit's folder, as in memory
            fitted = fitted_model(fit_on, method, given, device=device, progress=progress)
    elif isinstance(fit_on, Interpolator):
        fitted = fitted_model(fit_on, method, given, device=device, progress=progress)
    label = f"{where}variable {da.name!r}"
    if fitted is not None:
        if fit_aux is not None:  # as interpolate(fit_aux=) refuses it
            raise InputError("fit_aux: the covariates of fit_on's days, for fit_on a field to fit (a fit already "
                             "made has its own)")
        if mask is not None:
            named = f" {fit_on}" if isinstance(fit_on, (str, os.PathLike)) else ""
            raise InputError(f"mask: not with fit_on{named}, a fit already made (it fills with the mask it was "
                             "fitted with, if any: give the mask when fitting, `train interpolator --mask`)")
        fit_aux = list(getattr(fitted, "aux_names_", None) or [])
        if aux is None and fit_aux:  # as in memory: a saved fit's covariates, read from the input
            aux = fit_aux
            say(f"auxiliary variables of the fit{_fit_name(fit_on)}: {', '.join(fit_aux)} (aux), read from the input")
        if bbox is not None:  # the fit's per-pixel state cut to the box's block of its grid, as in memory
            box = f"bbox {','.join(f'{b:g}' for b in bbox)}: the {da.shape[1]} x {da.shape[2]} box of {where or 'the input'}"
            fitted = fitted.cut(da, label=box)
        return fitted, aux
    # a field to fit: read whole (the smaller one, by assumption), over the input's region
    if isinstance(fit_on, (str, os.PathLike)):
        from oceandl.pipelines.interpolate import _has_variable

        fit_var = var if var is not None else (da.name if _has_variable(fit_on, da.name) else None)
    else:
        fit_var = var
    try:
        fit_lazy = open_lazy(fit_on, fit_var, None, min_quality, bbox=bbox)
        fit_da = fit_lazy.load()
        covs = None  # the fitted period's covariates
        if fit_aux is None and aux is not None:  # DINEOF's joint modes: the fit field's own covariates, by name
            # a dict's key is the covariate's name: NAME=ENTRY, as the command line's
            names = [e if k is None or not isinstance(e, str) else f"{k}={e}" for k, e in _aux_entries(aux)]
            if any(not isinstance(e, str) for e in names) or not isinstance(fit_on, (str, os.PathLike)):
                raise InputError("aux: with fit_on a field to fit, give the covariates by name (VAR, or FILE:VAR), "
                                 "read for the fitted field too, or give the fitted period's as fit_aux")
            from oceandl.pipelines.interpolate import _read_aux

            # as `oceandl interpolate --fit-on FILE --aux` reads them: FILE:VAR put on the fitted days and grid
            try:
                covs = _read_aux(fit_on, names, fit_da, _source_text(fit_on), log=say,
                                 cut={"bbox": bbox} if bbox is not None else None)
            except InputError as exc:
                if type(exc) is not InputError or not str(exc).startswith("--aux "):
                    raise
                raise InputError(f"{exc}; that is the field fitted on: a FILE:VAR covariate is read for the fitted "
                                 "period too, and must cover its days and grid (or give the fitted period's as "
                                 "fit_aux, --fit-aux FILE:VAR)") from None
    except InputError as exc:
        if type(exc) is not InputError:
            raise
        raise InputError(f"fit_on: {exc}") from None
    if fit_aux is not None:  # said as --fit-aux's, as in memory (not as the fit's)
        covs = _fit_aux(fit_aux, aux, fit_on, source, fit_da, bbox, say)
    sea = None
    if mask is not None:
        sea_arr, _ = _open_mask(mask, source, da, where)
        sea = xr.DataArray(sea_arr, dims=("lat", "lon"), coords={"lat": da["lat"].values, "lon": da["lon"].values})
    model = cls(seed=seed, device=device, keep_observed=keep_observed, progress=progress, **options)
    try:
        model.fit(fit_da, **({} if sea is None else {"mask": sea}), **({} if covs is None else {"aux": covs}))
    except InputError as exc:
        if type(exc) is not InputError:
            raise
        raise InputError(f"fit_on: {exc}") from None
    if covs is not None:  # as in memory: a covariate on part of the fitted days
        from .base import warn_partial_fit_aux

        warn_partial_fit_aux(model)
    say(f"{method}: fitted on {_source_text(fit_on)} ({fit_da.shape[0]} steps), filling {where.rstrip(': ') or label}")
    return model, aux


def _fit_aux(fit_aux, aux, fit_on, source, fit_da: xr.DataArray, bbox, say):
    """The fitted period's covariates (``fit_aux`` of :func:`interpolate_chunked`) for ``model.fit``:
    entries ``VAR`` / ``FILE:VAR`` read on ``fit_da``'s days and grid as ``oceandl interpolate
    --fit-aux`` reads them, each named as its ``aux`` entry; DataArrays passed on as they are."""
    from oceandl.io import aux_key, split_file_var

    entries = [fit_aux] if isinstance(fit_aux, str) else fit_aux
    if not isinstance(entries, (list, tuple)) or not all(isinstance(e, str) for e in entries):
        return fit_aux  # DataArrays (a list, dict or Dataset): checked by the fit, as in memory
    given = _aux_entries(aux)
    if len(entries) != len(given):
        raise InputError(f"fit_aux {' '.join(entries)}: one per aux entry, in its order (aux "
                         f"{' '.join(str(e) if isinstance(e, str) else str(k) for k, e in given) or 'not given'})")
    if not isinstance(fit_on, (str, os.PathLike)) and any(split_file_var(e, None, "--fit-aux")[0] is None
                                                             for e in entries):
        raise InputError("fit_aux: a name (VAR) is a variable of the fit_on file, but fit_on is a DataArray: give "
                         "FILE:VAR, or the covariates themselves")
    from oceandl.pipelines.interpolate import _read_fit_aux

    names = [aux_key(entry, source) if isinstance(entry, str) and key is None else
             str(key if key is not None else getattr(entry, "name", "")) for key, entry in given]
    return _read_fit_aux(fit_on, list(zip(names, entries)), fit_da, _source_text(fit_on), log=say,
                        cut={"bbox": bbox} if bbox is not None else None)


def _is_fit_folder(path) -> bool:
    """Whether ``fit_on`` path names a fit already made (a folder, or its config.json), not data to fit:
    as `oceandl interpolate --fit-on` tells them apart (a folder of netCDF files is data)."""
    from oceandl.pipelines.interpolate import _data_folder

    from .fitted import fitted_folder

    p = fitted_folder(path) or Path(path)
    return p.is_dir() and not _data_folder(p)


def _fit_name(fit_on) -> str:
    return f" saved in {fit_on}" if isinstance(fit_on, (str, os.PathLike)) else ""


def _source_text(src) -> str:
    from oceandl.io import describe_source

    return describe_source(src) if isinstance(src, (str, os.PathLike, list, tuple)) else "the field given"


def _reserve(f, size: int, where: Path) -> None:
    """Give the file ``f`` its ``size`` bytes on disk now (zeros), for a memory map of them: a map over a
    sparse file on a full disk died of SIGBUS at its first page that found no room (no message, exit
    135). A disk without room is then an OceanDLError naming ``where`` and the size."""
    try:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
            return
        except AttributeError:  # not on macOS: zeros written instead
            pass
        except OSError as exc:
            import errno

            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a filesystem without it
                raise
        zeros = bytes(min(size, 1 << 20))
        f.seek(0)
        for start in range(0, size, len(zeros) or 1):
            f.write(zeros[:size - start])
        f.flush()
        os.fsync(f.fileno())
    except OSError as exc:
        raise _no_room(where, f"the {size / 2**20:.3g} MiB", "each step's observed pixels, 2 bits a pixel", exc) from None


def _no_room(where: Path, what: str, kept: str, exc: OSError):
    """The error of a disk without room for what sigma's calibration keeps beside the output."""
    from oceandl.errors import OceanDLError

    return OceanDLError(f"{where}: no room for {what} that sigma's calibration keeps beside the output ({kept}): "
                        f"{exc.strerror or exc}; free some, write the output elsewhere, or set "
                        "transform_calibration=false (sigma with the fit's scale)")


#: values of :class:`_Spill` read back at a time (2 MiB)
_SPILL_CHUNK = 1 << 18


class _Spill:
    """Float64 values appended to an unlinked temporary file in ``folder``, read back in chunks
    (:meth:`chunks`): the error / sigma of sigma's calibration of a fill by time blocks, 8 % of the
    series' observations, which a list of arrays held in memory (5 bits per observed pixel, then twice
    that when joined to fit the scale: more than the bits' file on disk, and growing with the series)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.file = tempfile.TemporaryFile(prefix=".oceandl-z-", dir=folder)
        self.size = 0

    def _no_room(self, exc: OSError):
        return _no_room(self.folder, "the error / sigma of the hidden observations",
                        f"8 bytes each, {self.size * 8 / 2**20:.3g} MiB so far", exc)

    def append(self, values) -> None:
        a = np.ascontiguousarray(values, dtype=np.float64).ravel()
        try:
            self.file.write(memoryview(a).cast("B"))
        except OSError as exc:
            raise self._no_room(exc) from None
        self.size += a.size

    def __len__(self) -> int:
        return self.size

    def chunks(self):
        """The values appended, ``_SPILL_CHUNK`` at a time (a new pass from the start each call)."""
        try:
            self.file.flush()  # a full disk may say so only now
        except OSError as exc:
            raise self._no_room(exc) from None
        self.file.seek(0)
        while True:
            b = self.file.read(_SPILL_CHUNK * 8)
            if not b:
                return
            yield np.frombuffer(b, dtype=np.float64)


def _calibration_pass(model, block, pasted: np.ndarray, days: int, smoother, em: dict, bar) -> None:
    """DINEOF's sigma calibration of a fit applied by time blocks (:meth:`DINEOF.stream_held` has hidden the
    observations): the whole series' amplitudes without them smoothed (with ``smoother``), then the steps
    ``pasted`` that hold them read again, ``days`` at a time, and their error / sigma gathered by ``block``."""
    from .dineof import _smoothed_amplitudes

    stream = model._stream
    if smoother is not None:
        stream["aheld"], stream["Pheld"] = _smoothed_amplitudes(stream["Gheld"], stream["bheld"], em["lam"], smoother)
        stream["Gheld"] = stream["bheld"] = None
    stream["mode"], stream["first"] = "calibrate", False
    groups = [pasted[i:i + days] for i in range(0, pasted.size, days)]
    bar.total += len(groups)
    bar.refresh()
    for steps in groups:
        block(steps)
        bar.update()


def _transform_chunked(source, output: Path, method: str, fit_on, *, var, chunks, seed, device, keep_observed,
                       overwrite, progress, complevel, say, command, min_quality, aux, bbox, dates, mask,
                       options: dict, t_start: float, fit_aux=None) -> ChunkedResult:
    """:func:`interpolate_chunked` with ``fit_on``: the fit's ``transform`` streamed over time blocks.

    Each block is whole days over the whole grid (a day's mode amplitudes are solved on that day's
    pixels); DINEOF's smoother (``transform_smoother``) couples the days, so it reads the input twice:
    each step's information and projection first (k x k and k numbers), then the whole series'
    smoothed amplitudes, each block filled with its own. DINEOF's sigma is calibrated on the observations
    the in-memory transform hides (:meth:`DINEOF.stream_held`; the steps holding them read once more,
    :func:`_calibration_pass`). The result is the in-memory ``transform``'s; nothing is withheld (no
    ``val_*``)."""
    import torch

    from oceandl.io import describe_source, file_attrs, output_dtype, source_grid
    from oceandl.utils import atomic_path, writing

    from . import get_method
    from .dineof import DINEOF, _smoothed_amplitudes, _time_positions

    cls = get_method(method)
    if not cls.can_transform:
        raise InputError(f"fit_on: method {method!r} cannot fill one field with a fit on another; {cls._no_transform}")
    asked = parse_chunks(chunks)
    t_core = asked.get("time", _DEFAULT_CHUNKS["climatology"]["time"])
    da = open_lazy(source, var, {"time": t_core, "lat": -1, "lon": -1}, min_quality, check_values=False, bbox=bbox,
                   dates=dates)
    shape = tuple(int(n) for n in da.shape)
    t_core = shape[0] if t_core < 0 else min(t_core, shape[0])
    where = f"{describe_source(source)}: " if isinstance(source, (str, os.PathLike, list, tuple)) else ""
    if any(0 < asked.get(ax, -1) < n for ax, n in zip(_AXES[1:], shape[1:])):
        say(f"chunks {', '.join(f'{ax}={asked[ax]}' for ax in _AXES[1:] if ax in asked)}: a fit fills whole days "
            f"(each day's modes are solved on its whole grid): blocks of {t_core} days over the whole "
            f"{shape[1]} x {shape[2]} grid")
    given_aux = aux
    model, aux = _fit_for_chunks(fit_on, method, cls, dict(options), source, da, var=var, seed=seed, device=device,
                                 keep_observed=keep_observed, progress=progress, min_quality=min_quality, bbox=bbox,
                                 aux=aux, mask=mask, where=where, say=say, fit_aux=fit_aux)
    # an input on a box of the fit's grid (a file already cut, no bbox): the fit cut to it once, as transform()
    # cuts it in memory (warned once), not a cut copy per block that the stream's state never reaches
    model = model._auto_cut(da) or model
    model = copy.copy(model)  # the caller's fit is left as it was
    model._time_block, model._stream = True, None
    core = {"time": t_core, "lat": shape[1], "lon": shape[2]}
    try:
        covariates = _open_aux(aux, source, da, core, where, None, bbox, dates, log=say) if aux is not None else []
    except InputError as exc:
        if given_aux is not None or type(exc) is not InputError:
            raise
        # not given: the saved fit's own, read from the input by name (said as in memory)
        want = "give a file that has it" if "not found" in str(exc) else "give its values on the input's days"
        named = f"{aux[0]}=VAR" if isinstance(aux, (list, tuple)) and len(aux) == 1 else "NAME=VAR"
        raise InputError(f"{exc}; the fit{_fit_name(fit_on)} was fitted with it as an auxiliary variable (its modes "
                         f"take it: {want}, or aux FILE:VAR; named otherwise: aux {named})") from None
    blocks = plan_blocks(shape, core, {})
    try:  # a covariate's failed read names its own file, not the field's
        aux_labels = _aux_labels(aux, source, where) if aux is not None else {}
    except InputError:
        aux_labels = {}

    def block(b: Block | np.ndarray):
        """The block's field and covariates (or those of the steps given), in memory, and its filled Dataset."""
        t = b.core[0] if isinstance(b, Block) else b
        if model._stream is not None:
            model._stream["days"] = np.arange(t.start, t.stop) if isinstance(t, slice) else t
        # read through _reading, as _Reader reads: a corrupt input named (exit 2), not a bare "NetCDF: HDF error"
        with _reading(label, _time_rows(t)):
            field = da.isel(time=t).load()
        ax = {}
        for name, a, *_ in covariates:
            with _reading(aux_labels.get(name, f"{label}: aux {name!r}"), _time_rows(t)):
                ax[name] = a.isel(time=t).load()
        ds = model.transform(field, aux=ax or None)
        if first_pass:
            if model.shift_ is not None:  # a field without units: its shift from the fit, summed
                shift[0] += model.shift_[0]
                shift[1] += model.shift_[1]
            for key, a in (("", field), *ax.items()):  # the pixel sums the units are tested on
                v = np.asarray(a.transpose("time", "lat", "lon").values if key else a.values)
                seen = np.isfinite(v)
                sums[key][0] += np.where(seen, v, 0).sum(axis=0, dtype=np.float64)
                sums[key][1] += seen.sum(axis=0)
                if not key and step_n is not None:  # each step's side of 100, for each file's test
                    step_n[t] = step_counts(v, _unit(da.attrs.get("units")))
        return ds

    smoother = None
    if isinstance(model, DINEOF):
        em = model._fitted_modes()
        pos = _time_positions(da)
        if pos is not None and (np.diff(pos[0]) < 0).any() and model.options["transform_smoother"]:
            raise InputError(f"{where}variable {da.name!r}: time steps out of order; the smoother of a DINEOF fit "
                             "filled by time blocks reads them in time order (sort the files, or set "
                             "transform_smoother=false)")
        smoother = model._transition(da, em, pos)
    # the history line's, as in memory: the file fitted on, or the folder of the fit saved
    saved = isinstance(fit_on, (str, os.PathLike)) and _is_fit_folder(fit_on)
    fitted = f" fitted on {fit_on if saved else _source_text(fit_on)}"
    first_pass, shift = True, [0.0, 0]
    # per pixel, the sum and count of the field's (key "") and each covariate's observations over the first pass
    sums = {key: [np.zeros(shape[1:]), np.zeros(shape[1:])] for key in ("", *(c[0] for c in covariates))}
    label = f"{where}variable {da.name!r}"
    spans = da.encoding.get("file_spans")
    step_n = np.zeros((shape[0], 5), np.int64) if spans and len(spans) > 1 else None

    def check_units():
        """The tests of the units on the whole series once its first pass is read, as in memory (a block's
        alone was tested, and named no file): degC values said to be kelvin or the reverse (field and
        covariates, from their pixel means), and a field without units against the fit's (kelvin against degC)."""
        nonlocal first_pass
        first_pass = False
        with np.errstate(invalid="ignore", divide="ignore"):
            means = {key: np.where(n > 0, t / np.maximum(n, 1), np.nan) for key, (t, n) in sums.items()}
        check_units_values(label, da, da.attrs.get("units"), means[""])
        if step_n is not None:  # then each file of a series
            check_units_files(label, da, da.attrs.get("units"), step_n, spans)
        for name, a, units, _ in covariates:
            check_units_values(f"{label}: aux {name!r}", a, units, means[name])
        check_units_shift(label, shift[0], shift[1], model.scale_)

    bar = None
    bit_files: list = []  # sigma's calibration: the observed pixels kept as bits, in unlinked files beside the output

    def open_bits(shape):
        f = tempfile.TemporaryFile(prefix=".oceandl-observed-", dir=Path(output).parent)
        bit_files.append(f)
        _reserve(f, int(np.prod(shape)), Path(output).parent)
        return np.memmap(f, dtype=np.uint8, mode="r+", shape=shape)

    try:
        from tqdm.auto import tqdm

        n_pass = len(blocks) * (2 if smoother is not None else 1)
        bar = tqdm(total=n_pass, desc=f"{method}: blocks", disable=not progress, leave=False)
        calibrate = isinstance(model, DINEOF) and bool(model.options["error_map"]) and bool(
            model.options["transform_calibration"])
        if smoother is not None or calibrate:
            # DINEOF._stream: the blocks' steps smoothed over the whole series; sigma's calibration on the
            # observations the in-memory transform hides (the whole series' clouds pasted), found once the first
            # pass has read every step's observed pixels (bits, in a file: memory stays a block's)
            model._stream = {"mode": "collect" if smoother is not None else "apply", "smooth": smoother is not None,
                             "calibrate": calibrate, "first": True, "n_steps": shape[0], "open_bits": open_bits,
                             "G": [], "b": [], "z": [], "days": None}
            if calibrate:  # the hidden observations' error / sigma: in a file beside the output, as the bits
                model._stream["z"] = _Spill(Path(output).parent)
                bit_files.append(model._stream["z"].file)
        stream = model._stream
        if smoother is not None:  # pass 1: each step's information, the whole series smoothed once
            for b in blocks:
                block(b)
                bar.update()
            check_units()
            G, rhs = torch.cat(stream["G"]), torch.cat(stream["b"])
            stream["a"], stream["P"] = _smoothed_amplitudes(G, rhs, em["lam"], smoother)
            stream["G"] = stream["b"] = None
            if calibrate:  # the run without the hidden observations: theirs taken off their steps' in pass 2
                stream["Gheld"], stream["bheld"] = G, rhs
                model.stream_held(da)
            del G, rhs
            stream["mode"], stream["first"] = "apply", False
            say(f"{method}: the mode amplitudes of {shape[0]} steps smoothed over the whole series (the input read "
                "once for it, block by block)")
        n_obs = n_out = 0
        out_pix = np.zeros(shape[1:], bool)
        grid = source_grid(da)
        with atomic_path(output, overwrite=overwrite) as tmp:
            writer = None
            try:
                for b in blocks:
                    ds = block(b)
                    n_out += model.outside_[0]
                    out_pix |= model.outside_[1]
                    n_obs += model.outside_[2]
                    name = model.output_name_
                    if writer is None:  # the first block's attributes are the whole fill's
                        if model.units_note_:  # kelvin against a degC fit: one warning, not one per block
                            warn(f"{label}: {model.units_note_}", UserWarning)
                        with_sigma = "sigma" in ds
                        attrs = dict(ds[name].attrs)
                        opts = attrs.get("options", "")
                        plan = {"chunks": core, "blocks": len(blocks), "fit_on": True,
                                "strategy": "a fit applied by time blocks over the whole grid"}
                        attrs["chunked"] = json.dumps(plan, sort_keys=True)
                        var_attrs = {k: _netcdf_safe(v) for k, v in attrs.items()}
                        fattrs = {k: _netcdf_safe(v) for k, v in file_attrs(
                            da, {**dict(ds.attrs), "chunked": attrs["chunked"]}, command=command,
                            what=f"gaps filled with method {method} {opts}{fitted}").items()}
                        masked = int(np.asarray(ds["missing_flag"].attrs["flag_values"]).max()) > 2
                        with writing(output):
                            _skeleton(da, tmp, name, with_sigma, fattrs, var_attrs, (1, shape[1], shape[2]),
                                      output_dtype(da), complevel, grid=grid,
                                      sigma_extra=dict(ds["sigma"].attrs) if with_sigma else None, masked=masked)
                        writer = _Writer(tmp, {"filled": name, "flag": "missing_flag",
                                               **({"sigma": "sigma"} if with_sigma else {})}, keep_observed,
                                         {ax: False for ax in _AXES}, shown=output)
                    out = {"filled": ds[name].transpose("time", "lat", "lon").values,
                           "flag": ds["missing_flag"].transpose("time", "lat", "lon").values}
                    if "sigma" in ds:
                        out["sigma"] = ds["sigma"].transpose("time", "lat", "lon").values
                    writer.commit(b, out)
                    bar.update()
                if first_pass:
                    check_units()
                if calibrate and with_sigma:  # sigma was written unscaled: its scale fitted on the hidden observations
                    pasted = model.stream_held(da) if smoother is None else np.flatnonzero(stream["pasted"])
                    if stream["n_held"] >= SIGMA_MIN_POINTS:
                        _calibration_pass(model, block, pasted, t_core, smoother, em, bar)
                    scale, sattrs = model.stream_scale()
                    with writer.lock, writer.writing():
                        v = writer.nc["sigma"]
                        for t in range(shape[0]):  # a day at a time
                            v[t] = np.asarray(v[t], np.float64) * scale
                    for k, val in sattrs.items():
                        writer.setattr(k, _netcdf_safe(val), var="sigma")
                    say(f"{method}: sigma {sattrs['transform_sigma_calibration']}")
            finally:
                if writer is not None:
                    writer.close()
            if not n_obs:  # as in memory, for the whole field (a cloudy block alone is no error)
                raise InputError(f"{where}variable {da.name!r}: no observation over the ocean of the field fitted; "
                                 "nothing to fill from")
            if grid is not None and not grid.is_clean:
                say(f"putting the result on the input's grid (dims {tuple(grid.dims.values())}, its order and "
                    "coordinates): one more pass over the output")
                with writing(output):
                    _to_source_grid_file(tmp, grid, (1, shape[1], shape[2]))
            with writing(output):
                _drop_dangling_references(tmp)
    finally:
        if bar is not None:
            bar.close()
        model._stream = None  # its bits' memory maps, before their files close
        for f in bit_files:
            f.close()
    if n_out:  # one warning for the whole field, as in memory
        warn(f"{where}variable {da.name!r}: {n_out} observations at {int(out_pix.sum())} pixels the field fitted "
             "never observed (land to the fit): kept as given, nothing filled there", UserWarning)
    seconds = _time.perf_counter() - t_start
    max_block = t_core * shape[1] * shape[2] * 4 * (1 + len(covariates))
    res = ChunkedResult(output, method, shape, core, {ax: 0 for ax in _AXES}, len(blocks), seconds, 0.0, max_block, 1,
                        0, attrs)
    say(f"{method}: {np.prod(shape) / 1e6:.1f} Mpx in {seconds:.1f} s ({res.mpx_per_s:.2f} Mpx/s) -> {output}")
    return res
