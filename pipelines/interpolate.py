"""``oceandl interpolate``: read a gappy field, withhold validation pixels, fill, write, plot;
``oceandl train interpolator``: train a neural gap filler on a cube and write its checkpoint.

These are the file-to-file jobs behind the commands; from Python call
:func:`oceandl.interpolate` on a DataArray, or fit and ``save`` an interpolator, instead.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from oceandl.errors import InputError

__all__ = ["run_interpolation", "train_interpolator", "DEMO_SIZE", "plot_interpolation"]

#: the --demo cube: (time, lat, lon), cloud cover (a quarter year of a 64 x 64 basin: a minute on a laptop)
DEMO_SIZE = {"n_time": 90, "ny": 64, "nx": 64, "cloud_cover": 0.6}


@contextlib.contextmanager
def _naming(where: str, fit_on=None):
    """Put ``where`` (the input file, or --demo) in front of a method's InputError: the method names
    the variable, the user also needs the file (a checkpoint error, a subclass, names its own).
    An error of the fit on ``fit_on`` (``interpolate``'s "fit_on: ...") names that file instead."""
    try:
        yield
    except InputError as exc:
        if fit_on is not None and str(exc).startswith("fit_on: "):
            rest = str(exc)[len("fit_on: "):]  # a saved fit's checkpoint error starts with its folder already
            named = any(rest.startswith(f"{p}: ") for p in (Path(fit_on), Path(fit_on) / "config.json"))
            raise type(exc)(rest if named else f"--fit-on {fit_on}: {rest}") from None
        if type(exc) is InputError and where not in str(exc):
            raise InputError(f"{where}: {exc}") from None
        raise


def is_anomaly(da) -> bool:
    """Whether ``da`` is an anomaly (departure from a mean), by its name or CF ``standard_name`` /
    ``long_name`` (``sst_anom``, ``sea_surface_temperature_anomaly``, 'SST anomaly')."""
    names = (da.name, da.attrs.get("standard_name"), da.attrs.get("long_name"))
    return any("anom" in str(n).lower() for n in names if n)


def plot_interpolation(panels: dict, path: Path, title: str = "", fmt: str | None = None, *,
                       land=None, units: str | None = None, extent=None, anomaly: bool = False) -> None:
    """A row of maps of one day: each panel a (lat, lon) array on one colour scale, but for keys
    containing 'error' (diverging, centred on 0) or 'sigma' (their own scale from 0). ``land``
    (bool (lat, lon)) is drawn grey, apart from the missing (white) pixels; ``units`` labels the
    colour bars, ``title`` heads the figure, ``extent`` (lon0, lon1, lat0, lat1) gives the axes in
    degrees. ``anomaly``: the field is an anomaly, drawn like the errors on a diverging map
    centred on 0 (a sequential range put its white at the middle of the 1st..99th percentile,
    not at 0). ``fmt``: the image format (default: from ``path``'s suffix)."""
    from oceandl.plotting import plot_fields

    vals = [np.asarray(v) for k, v in panels.items() if "error" not in k and "sigma" not in k]
    finite = np.concatenate([v[np.isfinite(v)] for v in vals]) if vals else np.array([])
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0, 1)
    cmap = "RdYlBu_r"
    if anomaly:
        hi = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
        hi = hi if hi > 0 else 1.0
        lo, cmap = -hi, "RdBu_r"
    # sigma was drawn on the SST scale (lo..hi, e.g. 6..22 degC) although it is 0..2 degC: one flat colour
    plot_fields(panels, path, cmap=cmap, vmin=lo, vmax=hi, error_keys=[k for k in panels if "error" in k], fmt=fmt,
                own_scale_keys=[k for k in panels if "sigma" in k and "error" not in k], land=land, units=units,
                title=title, extent=extent)


def _map_extent(da) -> tuple[float, float, float, float] | None:
    """(lon0, lon1, lat0, lat1) of the cell edges of ``da``'s regular lat/lon grid, else None."""
    try:
        lat, lon = (np.asarray(da[c].values, dtype=float) for c in ("lat", "lon"))
    except (KeyError, TypeError, ValueError):
        return None
    if lat.ndim != 1 or lon.ndim != 1 or lat.size < 2 or lon.size < 2:
        return None
    dlat, dlon = (lat[-1] - lat[0]) / (lat.size - 1), (lon[-1] - lon[0]) / (lon.size - 1)
    return lon[0] - dlon / 2, lon[-1] + dlon / 2, lat[0] - dlat / 2, lat[-1] + dlat / 2


def _check_figure_format(path: Path) -> None:
    """Refuse a figure path whose extension matplotlib cannot write (none: matplotlib's default, PNG)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    ext = path.suffix[1:].lower()
    if ext and ext not in formats:
        raise InputError(f"{path}: cannot write a figure as '.{ext}' (use one of {', '.join(sorted(formats))})")


def _has_variable(path, name) -> bool:
    """Whether the netCDF file ``path`` (the first of a many-file input) has a variable ``name``
    (False if it cannot be read: the caller's :func:`~oceandl.io.open_field` says what is wrong
    with it)."""
    if name is None:
        return False
    import xarray as xr

    from oceandl.io import source_paths

    try:
        with xr.open_dataset(source_paths(path)[0], decode_cf=False, decode_times=False) as ds:
            return name in ds.variables
    except Exception:  # noqa: BLE001 - any unreadable file is open_field's to report
        return False


def _resolve_aux(aux, cls, options: dict, log: Callable[[str], None]) -> tuple[list[str], str | None]:
    """The auxiliary variables to read: ``aux`` as given, else those of the checkpoint the network
    is loaded from (``checkpoint``, ``init`` or ``resume`` in ``options``; logged); refused for a method that
    takes none. Also that checkpoint when they are its own (None when given)."""
    aux = [str(a) for a in (aux or ())]
    # --resume too: "the same command plus --resume" is what a killed run is told to give
    start = options.get("checkpoint") or options.get("init") or options.get("resume")
    taken = None
    if not aux and start is not None and cls.takes_aux:
        from oceandl.interp.neural import checkpoint_aux

        aux = checkpoint_aux(start)
        if aux:
            log(f"auxiliary variables of {start}: {', '.join(aux)} (--aux)")
            taken = (f"--model {start}" if options.get("checkpoint") else f"init checkpoint {start}"
                     if options.get("init") else f"the run in {start}")
    if aux and not cls.takes_aux:
        from oceandl.interp import METHODS

        takers = ", ".join(k for k, c in METHODS.items() if c.takes_aux)
        raise InputError(f"--aux: method {cls.name!r} takes no auxiliary variables (the ones that do: {takers})")
    return aux, taken


def _data_folder(path) -> bool:
    """Whether folder ``path`` holds netCDF files (a file per day to read), not a saved fit."""
    from oceandl.interp.fitted import is_fitted_folder
    from oceandl.io import NETCDF_SUFFIXES

    p = Path(path)
    return not is_fitted_folder(p) and any(f.suffix.lower() in NETCDF_SUFFIXES for f in p.iterdir())


def cli_fit_aux_words(aux: Sequence[str] | None, fit_aux: Sequence[str] | None, fit_on, source) -> dict[str, str]:
    """How the command line names each covariate of the fitted period (aux name -> words), for
    :func:`~oceandl.interp.base.warn_partial_fit_aux`: ``--fit-aux FILE:VAR`` as given, or without
    --fit-aux the ``--aux`` entry read for the fitted period (``--aux FILE:VAR``, ``FIT_ON: --aux VAR``),
    as :func:`_read_aux` names them in its messages."""
    from oceandl.io import aux_key, describe_source, split_file_var

    out = {}
    for i, entry in enumerate(aux or ()):
        try:
            name = aux_key(entry, source)
            own = split_file_var(entry, fit_on)[0] is not fit_on
        except InputError:  # a FILE that is not there: refused where it is read
            continue
        if fit_aux and i < len(fit_aux):
            out[name] = f"--fit-aux {fit_aux[i]}"
        else:
            out[name] = f"--aux {entry}" if own else f"{describe_source(fit_on)}: --aux {entry}"
    return out


def _read_fit_aux(fit_on, pairs, fit_da, where: str, log, cut=None) -> dict:
    """The fitted period's covariates of ``--fit-aux`` (in memory and under ``--chunks``): each
    ``(name, entry)`` of ``pairs`` read from ``entry`` (``VAR`` of the ``fit_on`` file or ``FILE:VAR``)
    on ``fit_da``'s days and grid, named as its ``--aux`` (the fit's covariates are today's by name)."""
    out = {}
    for name, own in pairs:
        got = _read_aux(fit_on, [own], fit_da, where, log=log, cut=cut, option="--fit-aux")
        out[name] = next(iter(got.values())).rename(name)
    return out


def _read_aux(source, names: list[str], da, where: str, taken: str | None = None,
              log: Callable[[str], None] = print, cut: dict | None = None, option: str = "--aux") -> dict | None:
    """The auxiliary variables ``names`` (``VAR`` of ``source``, a file or the demo Dataset, or
    ``FILE:VAR``), read as the field is (:func:`~oceandl.io.open_field`: grid sorted, CF decoded)
    and, when their days or grid are not the field's, put on them
    (:func:`~oceandl.io.to_field_grid`, logged); None without names. ``taken``: the checkpoint
    option they come from (not given as --aux), said when one is missing. ``cut``: the field's
    ``bbox`` and ``dates`` (read the same region and period of the same file; of another product,
    with two grid points and days to spare, for the interpolation onto the field's). A static
    covariate (a (lat, lon) variable, or one with a single time step while the field has more:
    bathymetry, a distance to the coast) comes back as a (lat, lon) map on the field's grid.
    ``option``: the option named in messages (``--fit-aux`` for the fitted period's covariates)."""
    from oceandl.interp.base import check_units_field
    from oceandl.io import aux_key, is_static_map, open_field, split_file_var, to_field_grid

    if not names:
        return None
    out = {}
    for entry in names:
        src, name = split_file_var(entry, source, option)
        key = aux_key(entry, source)  # NAME=FILE:VAR: the name the method knows it by
        if name == da.name and src is source:
            raise InputError(f"{option} {name}: the variable being filled (--var); give other variables as aux")
        if key in out:
            raise InputError(f"{option}: {key} given twice")
        try:
            cov = open_field(src, name, label=None if isinstance(src, (str, Path)) else where, allow_static=True,
                             **_cut(cut, pad=0 if src is source else 2))
        except InputError as exc:
            if taken is None or type(exc) is not InputError:
                raise
            # "variable 'sst_mw' not found; did you mean 'sst'?" alone (with --quiet) did not say why it was
            # looked for, in a command that never named it
            if taken.startswith("the fit saved in"):  # a multivariate DINEOF's covariates, read from INPUT
                # 'give a file that has it' misled where the file has it, all missing on INPUT's days
                want = "give a file that has it" if "not found" in str(exc) else "give its values on INPUT's days"
                raise InputError(f"{exc}; {taken} was fitted with it as an auxiliary variable (its modes take "
                                 f"it: {want}, or --aux FILE:VAR; named otherwise: --aux {name}=VAR)") from None
            # a bathymetry from its own file (--aux depth.nc:depth at training) is never in INPUT: say how
            raise InputError(f"{exc}; {taken} was trained with it as an auxiliary variable (the network takes "
                             "it as input: give a file that has it, or --aux FILE:VAR; named otherwise: "
                             f"--aux {name}=VAR)") from None
        if is_static_map(cov, da):
            # a static map (bathymetry): an input channel that is the same every day (neural methods)
            cov = cov.isel(time=0, drop=True)
        cov, done = to_field_grid(cov, da, label=f"{option} {entry}")
        if done:  # another product's grid and times: said, as they change what the network is given
            log(f"{option} {entry}: {'; '.join(done)}")
        # degC values said to be kelvin (or the reverse), named by the option and file they come from
        # (the fit's own check named --fit-on's file for a --fit-aux FILE:VAR)
        # (and each of its files, a many-file covariate on the field's grid and times)
        check_units_field(f"{option} {entry}" if src is not source else f"{where}: {option} {entry}", cov,
                          np.asarray(cov.values))
        out[key] = cov.rename(key)
    return out


def _read_mask(source, entry: str | None, da, where: str):
    """The land-sea mask of ``--mask``: ``VAR`` of ``source`` (the field's file, the first of a
    many-file input, or the demo Dataset) or ``FILE:VAR``, as a DataArray on the field ``da``'s
    grid (matched by coordinate value, either longitude convention; a larger grid, the file before
    ``--bbox``, cut to the field's). None without ``entry``.

    Raises
    ------
    InputError
        ``--mask ...``: no such file or variable, or a mask that does not fit the field
        (:func:`~oceandl.interp.mask.read_mask`).
    """
    if entry is None:
        return None
    import xarray as xr

    from oceandl.interp.base import canonical_dims
    from oceandl.interp.mask import read_mask
    from oceandl.io import find_variable, source_paths, split_file_var

    src, name = split_file_var(entry, source, "--mask")
    label = f"--mask {entry}"
    if isinstance(src, xr.Dataset):
        ds = src
    else:
        paths = source_paths(src)
        if not paths or not Path(paths[0]).is_file():
            raise InputError(f"{label}: no file to read it from")
        try:
            ds = xr.open_dataset(paths[0])
        except Exception as exc:  # noqa: BLE001 - an unreadable file is the input's fault
            raise InputError(f"{label}: cannot open {paths[0]} ({str(exc).splitlines()[0][:200]})") from None
    if name == da.name and src is source:
        raise InputError(f"{label}: the variable being filled (--var); give the land-sea mask variable")
    try:
        m = ds[find_variable(ds, name, label=label)].load()  # 2-D: loaded, and the file closed
    finally:
        if ds is not src:
            ds.close()
    try:
        sea, how = read_mask(m, da.transpose(*canonical_dims(da)), label)
    except InputError as exc:
        # the mask's own messages start with the field's label: said once, as the option
        raise InputError(f"{label}: {str(exc).split(': ', 2)[-1]}") from None
    dims = canonical_dims(da)[1:]
    out = xr.DataArray(sea, dims=dims, coords={d: da[d] for d in dims if d in da.coords}, name=name)
    out.attrs["oceandl_mask"] = f"--mask {entry}: {how}"  # said in the output's land_sea_mask attribute
    return out


def _cut_text(bbox, dates) -> str:
    """The options ``--bbox=W,S,E,N --dates START:END`` as given (empty without them)."""
    return " ".join(filter(None, (f"--bbox={','.join(f'{b:g}' for b in bbox)}" if bbox else "",
                                  f"--dates {dates[0] or ''}:{dates[1] or ''}" if dates else "")))


def _cut(cut: dict | None, pad: int = 0) -> dict:
    """open_field's keywords for the region and period ``cut`` (``bbox``, ``dates``; None values: all)."""
    cut = {k: v for k, v in (cut or {}).items() if v is not None}
    return {**cut, "pad": pad} if cut else {}


def run_interpolation(input_path: str | Path | None, output: str | Path, *, var: str | None = None,
                      method: str = "dineof", withhold: float = 0.1, options: dict | None = None, seed: int = 0,
                      device: str = "auto", overwrite: bool = False, figure: str | Path | None = None,
                      demo: bool = False, progress: bool = True, refit: bool = False, complevel: int = 4,
                      log: Callable[[str], None] = print, command: str | None = None,
                      min_quality: int | None = None, fit_on: str | Path | None = None,
                      aux: Sequence[str] | None = None, bbox=None, dates=None, mask: str | None = None,
                      per_file: bool | None = None, fit_aux: Sequence[str] | None = None) -> str:
    """Fill ``input_path`` (or the synthetic demo cube) with ``method`` and write ``output``
    (data variables at zlib level ``complevel``, 0: uncompressed).

    ``mask``: the land-sea mask, ``VAR`` of the input file (of its first file) or ``FILE:VAR``
    (see :func:`oceandl.interp.interpolate`'s ``mask`` and :mod:`oceandl.interp.mask`).

    ``aux``: names of auxiliary variables of the same file (covariates on the field's grid, for
    the neural methods and dineof); with a checkpoint (``options["checkpoint"]``) and no ``aux``, those it
    was trained with. The demo cube has ``sst_mw``, a synthetic passive-microwave SST.

    ``fit_on``: a file (an earlier period on the same grid, the same variable) the method is fitted
    on instead; ``input_path`` is then filled with what it learned
    (:meth:`~oceandl.interp.base.Interpolator.transform`).

    ``fit_aux``: with ``fit_on`` a file and ``aux``, where each covariate of ``aux`` is read for the
    fitted period, one entry per ``aux`` entry in its order (``VAR`` of ``fit_on``, or ``FILE:VAR``);
    default: each ``aux`` entry itself (``VAR`` of ``fit_on``, ``FILE:VAR`` the same file).

    The output's global attributes are the input file's where they still hold, the fill's
    provenance and ``history`` with a line in front: ``command`` (the command line) when given
    (:func:`oceandl.io.file_attrs`).
    ``min_quality``: GHRSST values whose ``quality_level`` is below it are missing
    (:func:`oceandl.io.open_field`).

    ``per_file``: ``output`` is a folder, and the fill is written into it as a file per input file,
    each named as its input and holding its time steps (:func:`oceandl.io.write_per_file`): a
    folder of daily L3 files gives a folder of daily filled files. Default: when ``output`` is an
    existing folder or a string ending in ``/``.

    Returns a one-paragraph summary (method, time, validation metrics).
    """
    from oceandl.interp import get_method, interpolate
    from oceandl.interp.base import fit_aux_words
    from oceandl.interp.withhold import withhold_attrs, withhold_for_validation
    from oceandl.io import (check_complevel, describe_source, entry_paths, file_attrs, names_folder, open_field,
                            plan_per_file, series_spans, source_grid, source_paths, to_source_grid, write_netcdf,
                            write_per_file)
    from oceandl.metrics.interpolation import interp_metrics
    from oceandl.utils import atomic_path, check_output_path

    if per_file is None:
        per_file = names_folder(output)
    output = Path(output)
    cut = _cut({"bbox": bbox, "dates": dates})
    if per_file and demo:
        raise InputError(f"{output}: a folder output holds a file per input file; --demo has no input file (give a "
                         "file name ending in .nc)")
    if not per_file and output.suffix.lower() not in (".nc", ".nc4"):
        raise InputError(f"{output}: the output must be a netCDF file (.nc), or a folder (an existing one, or "
                         f"{output}/ with a trailing slash) for a file per input file")
    # a saved fit's folder (config.json, weights) is no data to read: source_paths refused it as 'a folder with
    # no netCDF files', so --fit-on FOLDER of `train interpolator` failed before anything was done
    if fit_on is not None:
        from oceandl.interp.fitted import fitted_folder

        fit_on = fitted_folder(fit_on) or fit_on  # a saved fit's config.json (or weights) names its folder
    fit_saved = fit_on is not None and Path(fit_on).is_dir() and not _data_folder(fit_on)
    if per_file and fit_saved:  # the filled files are not put among the fit's own
        from oceandl.interp.fitted import refuse_fit_folder_output

        refuse_fit_folder_output(output, fit_on, "--fit-on")
    fit_data = fit_on is not None and not fit_saved
    inputs = (() if demo else source_paths(input_path)) + (source_paths(fit_on) if fit_data else ()) \
        + entry_paths(aux, fit_aux, mask)  # a covariate's or a mask's own file is never replaced either
    if not per_file:
        check_output_path(output, overwrite, inputs=inputs, kind="file", what="filled netCDF")
    check_complevel(complevel)
    if figure is not None:
        # checked before the fill: a figure that cannot be written failed after the netCDF was
        # (exit 1, the output left behind), and an existing one was replaced without --overwrite
        check_output_path(figure, overwrite, inputs=inputs, kind="file", what="figure")
        _check_figure_format(Path(figure))
    # a bad method name or option fails before anything is read, withheld or logged
    cls = get_method(method)
    cls(seed=seed, device=device, **(options or {}))
    if not 0 <= withhold < 0.9:
        raise InputError(f"--withhold {withhold}: must be in [0, 0.9)")
    aux, taken = _resolve_aux(aux, cls, options or {}, log)
    fit_aux_entries = [str(e) for e in (fit_aux or ())]
    if fit_aux_entries:  # the fitted period's covariates, where they are not in --fit-on's file (or today's)
        if not fit_data:
            raise InputError("--fit-aux: the covariates of the fitted period, only with --fit-on FILE (a fit on "
                             "another file's days)" + (f"; the fit saved in {fit_on} was made with its own"
                                                       if fit_saved else ""))
        if len(fit_aux_entries) != len(aux):
            raise InputError(f"--fit-aux {' '.join(fit_aux_entries)}: one per --aux, in its order (--aux "
                             f"{' '.join(aux) or 'not given'})")
    if fit_on is not None:
        if not cls.can_transform:
            raise InputError(f"--fit-on: method {method!r} cannot fill one file with a fit on another; "
                             f"{cls._no_transform}")
        if demo or refit:
            raise InputError(f"--fit-on: not with {'--demo' if demo else '--refit'} (it fills INPUT with a fit on "
                             "another file)")
    saved_fit = None
    if fit_saved and mask is not None:
        raise InputError(f"--mask: not with --fit-on {fit_on}, a fit already made (it fills with the mask it was "
                         "fitted with, if any: give --mask to `train interpolator`)")
    if fit_saved:
        from oceandl.interp import fitted_model

        # loaded (and checked) before INPUT is read and withheld: a damaged folder is said at once
        with _naming(describe_source(input_path), fit_on):
            saved_fit = fitted_model(str(fit_on), method, options or {}, device=device, progress=progress)
        fit_aux = list(getattr(saved_fit, "aux_names_", None) or [])
        if aux and not fit_aux:
            raise InputError(f"--aux: the fit saved in {fit_on} takes no auxiliary variables (it was fitted without "
                             "--aux); drop --aux, or fit it with them")
        from oceandl.io import aux_key, aux_mapping

        keys = [aux_key(e, input_path) for e in aux]
        if aux and sorted(keys) != sorted(fit_aux):
            # next year's file names sst_mw otherwise: mapped by name (NAME=VAR), never guessed
            missing = [n for n in fit_aux if n not in keys]
            one = len(aux) == 1 and len(missing) == 1 and aux_mapping(aux[0])[0] is None
            how = (f"--aux {missing[0]}={aux[0]}" if one else
                   f"--aux {missing[0]}=VAR or {missing[0]}=FILE:VAR" if missing else "")
            raise InputError(f"--aux {' '.join(aux)}: the fit saved in {fit_on} was fitted with "
                             f"{', '.join(fit_aux)}; give those (its covariates on INPUT's days)"
                             + (f", a variable named otherwise as {how}" if how else ""))
        if fit_aux and not aux:  # as --model does for a network: its covariates, read from INPUT
            aux, taken = fit_aux, f"the fit saved in {fit_on}"
            log(f"auxiliary variables of the fit saved in {fit_on}: {', '.join(aux)} (--aux), read from INPUT")
    truth = None
    if demo:
        from oceandl.datasets.sst import synthetic_sst

        ds = synthetic_sst(seed=seed, **DEMO_SIZE, microwave=bool(aux))
        log(f"--demo: synthetic SST cube {dict(ds.sizes)}, cloud cover {DEMO_SIZE['cloud_cover']:.0%}")
        da = open_field(ds, "sst", **cut)
        truth = open_field(ds.assign(sst=ds["sst_true"]), "sst", **cut).values
    else:
        da = open_field(input_path, var, min_quality=min_quality, **cut)
    where = "--demo" if demo else describe_source(input_path)
    plan = None
    if per_file:  # checked before the fill: an output file that exists is said now, not after it
        plan = plan_per_file(output, series_spans(input_path, da.name, field=da), da["time"].values,
                             overwrite=overwrite, inputs=inputs)
    if bbox is not None and saved_fit is not None:
        # the fit's per-pixel state (means, masks, cycle, modes) cut to the box's block of its grid; another grid
        # (shifted, every other point, partly outside) is refused here, naming --bbox, before anything is withheld
        box = f"--bbox {','.join(f'{b:g}' for b in bbox)}: the {da.shape[1]} x {da.shape[2]} box of {where}"
        saved_fit = saved_fit.cut(da, label=box)
    if (options or {}).get("checkpoint") is not None:
        from oceandl.interp.neural import check_box_grid

        check_box_grid(options["checkpoint"], options, bbox, da, f"{where}: ")
    aux_das = _read_aux(ds if demo else input_path, aux, da, where, taken, log=log, cut=cut)
    mask_da = _read_mask(ds if demo else input_path, mask, da, where)
    fit_da = fit_aux_das = None
    if saved_fit is not None:
        fit_da = saved_fit  # used as it is (no fitting)
        log(f"{method}: the fit saved in {fit_on}, filling {where}")
    elif fit_on is not None:
        # without --var: INPUT's variable where the fit file has it (found on its own, a file of sst and
        # chl was refused as ambiguous, and one of chl alone was fitted to fill sst)
        fit_var = var if var is not None else (da.name if _has_variable(fit_on, da.name) else None)
        fit_da = open_field(fit_on, fit_var, min_quality=min_quality, bbox=bbox)  # its own period, INPUT's region
        other = "" if fit_da.name == da.name else f" (its variable {fit_da.name!r}; INPUT's is {da.name!r})"
        log(f"{method}: fitted on {describe_source(fit_on)}{other} ({fit_da.sizes[fit_da.dims[0]]} steps), "
            f"filling {where}")
        # multivariate DINEOF: the joint modes are fitted on the fit file's covariates (the same names, or
        # FILE:VAR put on its days and grid), INPUT's are today's, projected on them with the field
        try:
            fit_cut = {"bbox": bbox} if bbox is not None else None
            if fit_aux_entries:  # each keyed by its --aux name: the fit's covariates are today's by name
                from oceandl.io import aux_key

                fit_aux_das = _read_fit_aux(fit_on, [(aux_key(e, input_path), own)
                                                    for e, own in zip(aux, fit_aux_entries)],
                                           fit_da, describe_source(fit_on), log=log, cut=fit_cut)
            else:
                fit_aux_das = _read_aux(fit_on, aux, fit_da, describe_source(fit_on), log=log, cut=fit_cut)
        except InputError as exc:
            if type(exc) is not InputError or not str(exc).startswith("--aux "):
                raise
            # "none of its time steps is within half a step of the field's (2020-01-01 to ...)": of which
            # field? INPUT's days were not those: the covariate was being put on --fit-on's
            raise InputError(f"{exc}; that is --fit-on {describe_source(fit_on)}'s field: a FILE:VAR covariate is "
                             "read for the fitted period too, and must cover its days and grid (or give the "
                             "fitted period's with --fit-aux FILE:VAR)") from None
    valid = np.isfinite(da.values)
    if mask_da is not None:  # observations on the mask's land are dropped: none is withheld (nor written back)
        valid &= np.asarray(mask_da.broadcast_like(da).transpose(*da.dims).values, dtype=bool)
    # one time step: the methods that fit the file refuse it (one Error line; a 'no gaps' warning before
    # it was noise); a checkpoint fills it, without validation (said after the fill). The same function
    # as oceandl.interpolate(withhold=...): the same file and seed withhold the same pixels from Python
    withheld = withhold_for_validation(valid, withhold, seed, where, log=log)

    # a covariate on part of the fitted days is warned of in the options' words (--fit-aux FILE:VAR), not fit_on's
    words = cli_fit_aux_words(aux, fit_aux_entries, fit_on, ds if demo else input_path) if fit_da is not None else {}

    def fill(**kw):
        with _naming(where, fit_on), fit_aux_words(words):
            return interpolate(da, method, return_dataset=True, seed=seed, device=device, progress=progress,
                               fit_on=fit_da, aux=aux_das, mask=mask_da,
                               **({} if fit_aux_das is None else {"fit_aux": fit_aux_das}), **kw, **(options or {}))

    t0 = time.perf_counter()
    res = fill(withheld=withheld)
    if withhold > 0 and valid.shape[0] < 2:
        log(f"{where}: one time step, no other day's clouds to copy: no pixels withheld for validation")
    seconds = time.perf_counter() - t0
    name = [v for v in res.data_vars if v not in ("sigma", "missing_flag")][0]
    if withheld is not None:  # what was withheld, how, with which seed (the default --withhold is on no command line)
        held = withhold_attrs(withheld, valid, withhold, seed)
        res[name].attrs.update(held)
        res.attrs.update(held)
    val = {k: v for k, v in res[name].attrs.items() if k.startswith("val_")}
    if refit and withheld is not None:
        log("refitting on every observation (the validation scores above stay in the attributes)")
        res = fill()
        res[name].attrs.update(val)
        res.attrs.update(val)
    elif withheld is not None and withheld.any() and json.loads(res[name].attrs["options"]).get("keep_observed", True):
        # (--set keep_observed=false asks for the reconstruction at every pixel: left so.) The file is a product: a pixel withheld to score the fill is an observation and is written as
        # observed (its flag, 2, says the fill did not use it; the method's values there gave val_*).
        # It held the method's estimate: 10 % of the observations (the default --withhold) were lost
        if res[name].dims != da.dims:
            raise RuntimeError(f"filled field has dims {res[name].dims}, expected {da.dims}")
        values = res[name].values.copy()
        values[withheld] = da.values[withheld]
        res[name].values = values
        res[name].attrs["comment"] = res[name].attrs.get("comment", "").replace(
            "(missing_flag 0)", "(missing_flag 0; 2: withheld from the fit to score it)", 1)
    res[name].attrs["seconds"] = round(seconds, 3)
    if truth is not None:
        # the gaps of the field written: every observation (withheld or not) is written as given,
        # so error 0 against the noise-free demo truth would make 'all gaps' RMSE look better
        miss = ~valid & np.isfinite(truth)
        m = interp_metrics(res[name].values, truth, mask=miss)
        res.attrs.update({f"truth_{k}": v for k, v in m.items()})
    # the figure is drawn to a temporary name first and renamed only once the netCDF is written:
    # a failure in either leaves neither (nor an old one replaced)
    with (atomic_path(figure, overwrite) if figure is not None else contextlib.nullcontext()) as fig_tmp:
        if figure is not None:
            cover = (~valid).mean(axis=(1, 2))
            day = int(np.argsort(cover)[len(cover) // 2])  # a typical day, not the cloudiest
            panels = {}
            if truth is not None:
                panels["truth"] = truth[day]
            # what the method saw: pixels withheld for validation (unless refitted on every one) are gaps to it
            seen = valid[day] & ~(withheld[day] if withheld is not None and not refit else False)
            panels["input (gappy)"] = np.where(seen, da.values[day], np.nan)
            panels[f"{method}"] = res[name].values[day]
            if truth is not None:
                panels[f"{method} error"] = res[name].values[day] - truth[day]
            if "sigma" in res:
                panels["sigma"] = res["sigma"].values[day]
            when = str(da["time"].values[day])[:10] if "time" in da.coords else f"step {day}"
            plot_interpolation(panels, fig_tmp, title=f"{method}: {da.name or 'field'} on {when}",
                               fmt=Path(figure).suffix[1:].lower() or "png",
                               # never observed: land to the methods (the mask's land, with one)
                               land=~valid.any(axis=0) if mask_da is None
                               else ~np.asarray(mask_da.transpose(*da.dims[1:]).values, dtype=bool),
                               units=da.attrs.get("units"), extent=_map_extent(da), anomaly=is_anomaly(da))
        # the input file's global attributes (title, institution...) were dropped, and its history
        fitted = "" if fit_on is None else f" fitted on {describe_source(fit_on) if fit_data else fit_on}"
        res.attrs = file_attrs(da, res.attrs, command=command,
                               what=f"gaps filled with method {method} {res[name].attrs['options']}{fitted}")
        # on the input's grid (its dim names, latitude order, longitude convention, coordinates):
        # `filled - observed` then lines up in xarray
        if plan is not None:
            write_per_file(to_source_grid(res, source_grid(da)), plan, overwrite=overwrite, complevel=complevel,
                           progress=progress)
        else:
            write_netcdf(to_source_grid(res, source_grid(da)), output, overwrite=overwrite, complevel=complevel)
    if figure is not None:
        log(f"figure of day {day} written to {figure}")
    how = f" ({res.attrs['precision']})" if "precision" in res.attrs else ""  # neural methods: bf16 or fp32
    # flag 2 (withheld) pixels are written as observed: not counted as filled
    written = f"{output}" if plan is None else f"{output}/ ({len(plan.files)} file{'s' if len(plan.files) != 1 else ''})"
    parts = [f"{method}{how}: filled {int((res['missing_flag'].values == 1).sum()):,} pixels in {seconds:.1f} s "
             f"-> {written}"]
    if mask_da is not None:
        flag = res["missing_flag"].values
        parts[0] += (f"; land-sea mask {mask}: {int((flag == 3).sum()):,} observations on its land dropped, "
                     f"{int((flag == 4).sum()):,} ocean values never observed left missing")
    if val:
        parts.append("withheld pixels: " + ", ".join(
            f"{k[4:]} {v:.4g}" for k, v in val.items() if k in ("val_rmse", "val_mae", "val_bias", "val_corr",
                                                                  "val_std_ratio")))
    if truth is not None:
        parts.append(f"all gaps vs synthetic truth: rmse {res.attrs['truth_rmse']:.4g}")
    return "\n".join(parts)


def train_interpolator(input_path: str | Path | None, output: str | Path, *, var: str | None = None,
                       method: str = "unet", options: dict | None = None, seed: int = 0, device: str = "auto",
                       overwrite: bool = False, demo: bool = False, progress: bool = True,
                       log: Callable[[str], None] = print, min_quality: int | None = None,
                       resume: bool = False, aux: Sequence[str] | None = None, bbox=None, dates=None,
                       mask: str | None = None) -> str:
    """Train a neural gap filler on every observation of ``input_path`` (or the demo cube) and
    write it as a checkpoint folder ``output``: what ``interpolate --model`` (or
    ``checkpoint=``) takes back to fill other files without training again. ``min_quality``: as
    for :func:`run_interpolation` (GHRSST values of a lower ``quality_level`` are missing).

    While a network trains, ``output`` holds its resumable state (an unfinished checkpoint,
    rewritten every ``checkpoint_every`` steps); ``resume=True`` goes on from it, with the same
    input, options and seed, to the weights an uninterrupted run gives. A resumed run is refused
    with ``overwrite`` (which starts over), an ``init`` checkpoint (the run's own is recorded in
    ``output``) or a method that does not train.

    ``aux``: names of auxiliary variables of the same file, covariates the network takes as input
    channels (see :func:`run_interpolation`); with ``init`` and no ``aux``, those it was trained with.

    ``mask``: the land-sea mask (``VAR`` or ``FILE:VAR``, as for :func:`run_interpolation`), kept in
    the checkpoint (a network's: applied to a file on its grid filled with ``--model`` and no
    ``--mask``; a saved fit's: applied by ``--fit-on``).

    Returns a one-line summary (method, precision, steps, time, loss).
    """
    from oceandl.interp import METHODS, get_method
    from oceandl.interp.neural import NeuralInterpolator
    from oceandl.io import describe_source, open_field, source_paths
    from oceandl.utils import check_output_path

    cls = get_method(method)
    if not issubclass(cls, NeuralInterpolator) and not cls.can_transform:
        usable = sorted(n for n, c in METHODS.items() if issubclass(c, NeuralInterpolator) or c.can_transform)
        raise InputError(f"--method {method}: cannot be saved to fill other files; a checkpoint is made for one "
                         f"of {', '.join(usable)}")
    options = dict(options or {})
    if "checkpoint" in options:
        raise InputError("checkpoint: `train interpolator` writes a checkpoint; to start training from one, "
                         "give it as --init (init=)")
    for key in ("save_to", "resume"):
        if key in options:  # the folder is -o's
            raise InputError(f"{key}: `train interpolator` writes its states to -o; go on with an interrupted run "
                             "with --resume")
    output = Path(output)
    cut = _cut({"bbox": bbox, "dates": dates})
    from oceandl.training.checkpoint import is_checkpoint_folder

    neural = issubclass(cls, NeuralInterpolator)
    if resume:
        if overwrite:
            raise InputError(f"{output}: --resume goes on with the run in that folder, --overwrite starts it over: "
                             "give one of them")
        if not neural:
            raise InputError(f"--resume: method {method!r} is fitted in one go, there is no training to resume "
                             f"(neural methods: {', '.join(n for n, c in METHODS.items() if issubclass(c, NeuralInterpolator))})")
        if options.get("init") is not None:
            raise InputError(f"--resume with --init: the run goes on from the weights saved in {output} (the init "
                             "checkpoint it was started from is recorded there): drop --init")
        if not output.exists():
            raise InputError(f"{output}: nothing to resume (no such folder); start the run without --resume")
        options["resume"] = str(output)
    else:
        check_output_path(output, overwrite, inputs=() if demo else source_paths(input_path), kind="folder",
                          replaceable=is_checkpoint_folder, what="checkpoint")
        if neural:  # the resumable state goes to -o while it trains
            options["save_to"] = str(output)
    interp = cls(seed=seed, device=device, progress=progress, **options)  # options checked before reading
    aux, taken = _resolve_aux(aux, cls, options, log)
    # --overwrite: the first state saved replaces the earlier checkpoint (as `train classifier`'s first epoch)
    interp._save_to_overwrite = overwrite
    if demo:
        from oceandl.datasets.sst import synthetic_sst

        log(f"--demo: synthetic SST cube {DEMO_SIZE}")
        ds = synthetic_sst(seed=seed, **DEMO_SIZE, microwave=bool(aux))
        da = open_field(ds, "sst", **cut)
    else:
        da = open_field(input_path, var, min_quality=min_quality, **cut)
    where = "--demo" if demo else describe_source(input_path)
    aux_das = _read_aux(ds if demo else input_path, aux, da, where, taken, log=log, cut=cut)
    mask_da = _read_mask(ds if demo else input_path, mask, da, where)
    t0 = time.perf_counter()
    with _naming(where):
        interp.fit(da, **({} if aux_das is None else {"aux": aux_das}), **({} if mask_da is None else {"mask": mask_da}))
    seconds = time.perf_counter() - t0
    with getattr(interp, "_trained_state_kept", contextlib.nullcontext)():  # a network's: the last step is saved
        # the region and period too: 'from sst.nc' did not say which part of it the network learnt
        interp.save(output, overwrite=overwrite, source=" ".join(filter(None, (where, _cut_text(bbox, dates)))))
    if not issubclass(cls, NeuralInterpolator):  # a fitted climatology, eof or dineof
        modes = f" ({interp.n_modes_} modes)" if hasattr(interp, "n_modes_") else ""
        return (f"{method}{modes}: fitted on {where} {dict(da.sizes)} in {seconds:.1f} s; written to {output} "
                f"(fill other files on its grid with --method {method} --fit-on {output})")
    loss = interp.loss_history_
    k = max(1, len(loss) // 10)  # first and last tenth of the steps: one step's loss is noisy
    trend = f", loss {np.mean(loss[:k]):.4g} -> {np.mean(loss[-k:]):.4g}" if loss else ""
    start = f" from {options['init']}" if options.get("init") is not None else ""
    run = getattr(interp, "_run", None) or {}
    took = f"{seconds:.1f} s"
    if run.get("resumed_at"):
        start += f" (resumed at step {run['resumed_at'][-1]})"
        # this call's time alone said nothing of the run's: the training loops of every call, summed
        took += f" ({interp.train_seconds_:.1f} s of training over the {len(run['resumed_at']) + 1} calls)"
    return (f"{method} ({interp.precision_}): {interp.steps_} steps{start} on {where} {dict(da.sizes)} in {took}"
            f"{trend}; checkpoint written to {output} (fill with --model {output})")
