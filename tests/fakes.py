"""Tiny fake data shared by the tests (torchgeo style: made here, deterministic from a seed).

Gappy low-rank SST-like cubes with blob clouds and a land patch, cloud-mask transfer, and a
context manager for the torch thread count.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import xarray as xr

__all__ = ["blob_clouds", "lowrank_cube", "seasonal_anomaly_cube", "cloud_transfer", "torch_threads", "synthetic_case",
           "write_l4_sst", "L4_GLOBAL_ATTRS", "write_l3_days", "CountedArray", "small_field", "saved_dineof_fit", "assert_one_line_error",
           "set_free_disk", "make_raise", "cli_climatology", "once_seen_cube", "rmse", "tiny_classifier"]


def blob_clouds(rng: np.random.Generator, nt: int, ny: int, nx: int, cover: float, width: float = 2.5) -> np.ndarray:
    """Smooth random field thresholded at its ``cover`` quantile per frame: blob-shaped clouds (nt, ny, nx) bool."""
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    kernel = np.exp(-2 * (np.pi * width) ** 2 * (ky**2 + kx**2))
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((nt, ny, nx))) * kernel, s=(ny, nx))
    thr = np.quantile(field.reshape(nt, -1), cover, axis=1)[:, None, None]
    return field < thr


def lowrank_cube(nt: int, ny: int, nx: int, *, rank: int = 3, noise: float = 0.1, cover: float = 0.5, seed: int = 0,
                 land: tuple[int, int, int, int] = (3, 9, 4, 12), lat: tuple[float, float] = (40.0, 47.75),
                 dates: bool = False, dtype=np.float64) -> tuple[xr.DataArray, xr.DataArray]:
    """Rank-``rank`` field + meridional gradient + white noise, a land patch, blob clouds.

    Returns ``(gappy, truth)``, DataArrays on (time, lat, lon); ``land`` = (y0, y1, x0, x1), ``lat`` the first and last latitudes;
    ``dates`` gives daily datetime64 times (else integers) and, with them, CF-style attributes.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, ny)[:, None]
    x = np.linspace(0, 1, nx)[None, :]
    t = np.arange(nt)
    truth = 20.0 + 4.0 * y + np.zeros((nt, 1, 1))
    for i in range(rank):
        pattern = (np.sin(np.pi * (i + 1) * x) * np.cos(np.pi * (i + 0.5) * y)
                   + 0.3 * np.cos(2 * np.pi * (i + 1) * (x + y)))
        amp = 3.0 / (i + 1) * np.sin(2 * np.pi * t / (nt / (i + 1.5)) + i)
        truth = truth + amp[:, None, None] * pattern
    truth = truth + noise * rng.standard_normal(truth.shape)
    y0, y1, x0, x1 = land
    truth[:, y0:y1, x0:x1] = np.nan
    gappy = np.where(blob_clouds(rng, nt, ny, nx, cover), np.nan, truth)
    time = np.datetime64("2020-01-01") + t.astype("timedelta64[D]") if dates else t
    coords = {"time": time, "lat": np.linspace(lat[0], lat[1], ny), "lon": np.linspace(-10.0, 0.0, nx)}
    attrs = {"units": "degC", "long_name": "sea surface temperature"} if dates else {}
    return (xr.DataArray(gappy.astype(dtype), dims=("time", "lat", "lon"), coords=coords, name="sst", attrs=attrs),
            xr.DataArray(truth, dims=("time", "lat", "lon"), coords=coords, name="sst"))


def seasonal_anomaly_cube(nt: int = 730, ny: int = 12, nx: int = 16, *, rank: int = 2, noise: float = 0.1,
                          cover: float = 0.75, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """Daily (from 2019-01-01) per-pixel seasonal cycle + rank-``rank`` anomaly + white noise, blob clouds.

    The cycle: a mean rising northward, an annual harmonic of 3-5 degC whose amplitude and phase
    vary from pixel to pixel, a semi-annual one of ~0.8 degC; the anomaly: fixed patterns times
    AR(1) amplitudes (0.95 a day, std 1.5 / (i + 1)), not periodic. Clouds cover ``cover`` of a
    frame on average, ``cover + 0.2`` in January and ``cover - 0.2`` in July (winters are
    cloudier, which biases a time mean of the observations), land at [3:7, 4:9].
    Returns ``(gappy, truth)`` on (time, lat, lon).
    """
    rng = np.random.default_rng(seed)
    times = xr.date_range("2019-01-01", periods=nt, freq="D")
    frac = ((np.asarray(times.dayofyear) - 1) / np.where(np.asarray(times.is_leap_year), 366, 365))[:, None, None]
    y = np.linspace(0, 1, ny)[:, None]
    x = np.linspace(0, 1, nx)[None, :]
    amp1 = 3 + 2 * y + 0.5 * rng.standard_normal((ny, nx))
    ph1 = 0.8 * x + 0.3 * rng.standard_normal((ny, nx))
    amp2 = 0.8 + 0.3 * rng.standard_normal((ny, nx))
    ph2 = 2 * y + 0.5 * rng.standard_normal((ny, nx))
    truth = 18 + 4 * y + amp1 * np.cos(2 * np.pi * frac - ph1) + amp2 * np.cos(4 * np.pi * frac - ph2)
    for i in range(rank):
        pattern = np.sin(np.pi * (i + 1) * x) * np.cos(np.pi * (i + 0.5) * y)
        a, e = np.zeros(nt), rng.standard_normal(nt)
        for t in range(1, nt):
            a[t] = 0.95 * a[t - 1] + np.sqrt(1 - 0.95**2) * e[t]
        truth = truth + 1.5 / (i + 1) * a[:, None, None] * pattern
    truth = truth + noise * rng.standard_normal(truth.shape)
    truth[:, 3:7, 4:9] = np.nan
    winter = 0.5 + 0.5 * np.cos(2 * np.pi * frac[:, 0, 0])
    covers = np.clip(cover - 0.2 + 0.4 * winter, 0.05, 0.97)
    clouds = np.stack([blob_clouds(rng, 1, ny, nx, c)[0] for c in covers])
    coords = {"time": times, "lat": np.linspace(40.0, 47.5, ny), "lon": np.linspace(-10.0, 0.0, nx)}

    def label(v):
        return xr.DataArray(v, dims=("time", "lat", "lon"), coords=coords, name="sst")

    return label(np.where(clouds, np.nan, truth)), label(truth)


def cloud_transfer(gappy: xr.DataArray, fraction_of_frames: float = 0.35, shift: int = 7, seed: int = 1) -> np.ndarray:
    """Withhold observed pixels under the clouds of the frame ``shift`` days earlier, on a random subset of frames."""
    rng = np.random.default_rng(seed)
    obs = gappy.notnull().values
    frames = rng.random(obs.shape[0]) < fraction_of_frames
    return obs & np.roll(~obs, shift, axis=0) & frames[:, None, None]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (tiny matrices: OpenMP synchronisation would dominate)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synthetic_case(n_time: int, size: int, cloud_cover: float, seed: int = 0, withhold: float = 0.1):
    """The project's synthetic SST as the pipelines score it: ``(da, truth, valid, withheld, gaps)``.

    ``da`` the gappy field read by ``open_field``, ``truth`` its cloud-free values (time, lat, lon),
    ``valid`` the observed pixels, ``withheld`` the ones hidden by cloud-mask transfer
    (``fraction=withhold``, seeded like the pipelines) and ``gaps`` every gap with a true value.
    """
    from oceandl.datasets.clouds import withhold_by_cloud_transfer
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field

    ds = synthetic_sst(n_time=n_time, ny=size, nx=size, cloud_cover=cloud_cover, seed=seed)
    da = open_field(ds, "sst")
    truth = open_field(ds.assign(sst=ds["sst_true"]), "sst").values
    valid = np.isfinite(da.values)
    withheld = withhold_by_cloud_transfer(valid, fraction=withhold, seed=seed)
    return da, truth, valid, withheld, (~valid | withheld) & np.isfinite(truth)


#: global attributes of :func:`write_l4_sst`'s file, as a GHRSST L4 product has them
L4_GLOBAL_ATTRS = {"title": "Test L4 analysed SST", "institution": "Test Institute", "Conventions": "CF-1.7, ACDD-1.3",
                   "history": "2020-01-01T00:00:00Z created by the test", "summary": "a small GHRSST-like cube"}


def write_l4_sst(path, nt: int = 12, ny: int = 16, nx: int = 20, seed: int = 0) -> None:
    """A small file laid out like a GHRSST L4 product, written with netCDF4 (not xarray): packed int16
    ``analysed_sst`` in kelvin (scale_factor, add_offset, _FillValue, valid_min/max), an unlimited
    int32 ``time`` in 'seconds since 1981-01-01 00:00:00' with a calendar, float32 lat/lon with
    units/axis/standard_name, CF-1.7 and ACDD-1.3 global attributes; 30 % of the pixels cloudy, a 2 x 3 land corner."""
    import netCDF4

    rng = np.random.default_rng(seed)
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts(L4_GLOBAL_ATTRS)
        nc.createDimension("time", None)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        t = nc.createVariable("time", "i4", ("time",))
        t.setncatts({"units": "seconds since 1981-01-01 00:00:00", "calendar": "gregorian", "standard_name": "time",
                     "axis": "T", "long_name": "reference time of sst field"})
        t[:] = 1230768000 + 86400 * np.arange(nt)
        for name, vals, std, units, axis in (("lat", np.linspace(40, 47.5, ny), "latitude", "degrees_north", "Y"),
                                             ("lon", np.linspace(-10, -0.5, nx), "longitude", "degrees_east", "X")):
            v = nc.createVariable(name, "f4", (name,))
            v.setncatts({"units": units, "axis": axis, "standard_name": std, "long_name": std})
            v[:] = vals
        v = nc.createVariable("analysed_sst", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32768))
        v.setncatts({"scale_factor": np.float32(0.01), "add_offset": np.float32(273.15), "units": "kelvin",
                     "standard_name": "sea_surface_foundation_temperature",
                     "long_name": "analysed sea surface temperature", "valid_min": np.int16(-300),
                     "valid_max": np.int16(4500)})
        tt, yy, xx = np.ogrid[:nt, :ny, :nx]
        sst = 288 + 0.3 * yy - 0.1 * xx + np.sin(tt / 3) + 0.2 * rng.standard_normal((nt, ny, nx))
        mask = rng.random((nt, ny, nx)) < 0.3
        mask[:, :2, :3] = True  # land
        v[:] = np.ma.masked_array(sst, mask)


def write_l3_days(folder, nt: int = 20, ny: int = 16, nx: int = 20, seed: int = 0, whole=None,
                  names=None) -> np.ndarray:
    """A file per day laid out like a GHRSST L3 product, written with netCDF4: a length-1 unlimited
    ``time`` in seconds since 1981, packed int16 ``sea_surface_temperature`` in kelvin with a
    ``quality_level`` (int8, 0-5; 20 % below 4) beside it, a ``microwave`` field (another variable of
    the same files), ACDD time coverage per file. ``whole``: also this one file holding every day.
    ``names``: the file names (default ``YYYYMMDD-L3.nc``). Returns the stored kelvin values, NaN where
    missing (nt, ny, nx)."""
    import netCDF4
    from pathlib import Path

    rng = np.random.default_rng(seed)
    tt, yy, xx = np.ogrid[:nt, :ny, :nx]
    sst = 288 + 0.3 * yy - 0.1 * xx + 1.5 * np.sin(2 * np.pi * tt / 15 + xx / 6) + 0.2 * rng.standard_normal((nt, ny, nx))
    mw = sst + 0.3 * rng.standard_normal((nt, ny, nx))
    mask = blob_clouds(rng, nt, ny, nx, 0.4)
    mask[:, :2, :3] = True  # land
    quality = np.where(rng.random((nt, ny, nx)) < 0.2, 2, 5).astype(np.int8)
    seconds = 1230681600 + 86400 * np.arange(nt)  # from 2020-01-01
    days = np.datetime64("1981-01-01") + seconds.astype("timedelta64[s]")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def write(path, sl):
        with netCDF4.Dataset(path, "w") as nc:
            day0, day1 = str(days[sl][0])[:10], str(days[sl][-1])[:10]
            nc.setncatts({**L4_GLOBAL_ATTRS, "title": "Test L3 SST", "time_coverage_start": f"{day0}T00:00:00Z",
                          "time_coverage_end": f"{day1}T23:59:59Z", "time_coverage_duration": "P1D",
                          "date_created": "2021-01-01T00:00:00Z"})
            nc.createDimension("time", None)
            nc.createDimension("lat", ny)
            nc.createDimension("lon", nx)
            t = nc.createVariable("time", "i4", ("time",))
            t.setncatts({"units": "seconds since 1981-01-01 00:00:00", "calendar": "gregorian",
                         "standard_name": "time", "axis": "T"})
            t[:] = seconds[sl]
            for name, vals, std, units in (("lat", np.linspace(40, 47.5, ny), "latitude", "degrees_north"),
                                           ("lon", np.linspace(-10, -0.5, nx), "longitude", "degrees_east")):
                v = nc.createVariable(name, "f4", (name,))
                v.setncatts({"units": units, "standard_name": std})
                v[:] = vals
            v = nc.createVariable("sea_surface_temperature", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32768))
            v.setncatts({"scale_factor": np.float32(0.01), "add_offset": np.float32(273.15), "units": "kelvin",
                         "standard_name": "sea_surface_skin_temperature"})
            v[:] = np.ma.masked_array(sst[sl], mask[sl])
            q = nc.createVariable("quality_level", "i1", ("time", "lat", "lon"))
            q.setncatts({"flag_values": np.arange(6, dtype=np.int8),
                         "flag_meanings": "no_data bad_data worst_quality low_quality acceptable_quality best_quality"})
            q[:] = quality[sl]
            m = nc.createVariable("microwave", "f4", ("time", "lat", "lon"))
            m.setncatts({"units": "kelvin", "long_name": "passive microwave SST"})
            m[:] = mw[sl]

    for i in range(nt):
        name = names[i] if names is not None else f"{str(days[i])[:10].replace('-', '')}-L3.nc"
        write(folder / name, slice(i, i + 1))
    if whole is not None:
        write(whole, slice(0, nt))
    stored = np.round((sst - 273.15) / 0.01) * 0.01 + 273.15  # as packed (int16, 0.01 K)
    return np.where(mask, np.nan, stored)


def edit_checkpoint_config(src, dst, **changes):
    """A copy of checkpoint folder ``src`` at ``dst`` with ``changes`` set in its config.json;
    returns ``dst`` (the edited checkpoints the refusal tests load)."""
    import json
    import shutil
    from pathlib import Path

    shutil.copytree(src, dst)
    cfg = json.loads((Path(dst) / "config.json").read_text())
    cfg.update(changes)
    (Path(dst) / "config.json").write_text(json.dumps(cfg))
    return dst


def assert_cli_error(res, code: int, *parts) -> str:
    """A click ``CliRunner`` result that exited ``code`` with no traceback, its last stderr line
    ``Error: ...`` holding every part (the CLI's error contract); returns that line."""
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), res.stderr
    for p in parts:
        assert str(p) in lines[-1], (p, lines[-1])
    return lines[-1]


def assert_one_line_error(res, *words):
    """Exit code 2, one 'Error:' line (in stdout and stderr together) naming ``words``, no traceback."""
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    for w in words:
        assert w in errors[0], errors[0]


class CountedArray:
    """An array that dask reads chunk by chunk (``dask.array.from_array``), counting the values it
    hands out in ``read``: what a lazy path loads, measured without a timing or memory threshold."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.ndim, self.read = a, a.shape, a.dtype, a.ndim, 0

    def __getitem__(self, key):
        out = self.a[key]
        self.read += out.size
        return out


def small_field(nt: int = 6, ny: int = 8, nx: int = 10, *, seed: int = 0, land: bool = True,
                coords: bool = True) -> xr.DataArray:
    """A tiny (time, lat, lon) SST-like field in degC named ``sst``: a cycle in time, gradients in space,
    30 % gaps and (``land``) one land pixel at (0, 0); with ``coords``, daily dates from 2020-01-01 and
    degree coordinates (lat 40..47, lon -10..-1), else no coordinates at all."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t, y, x = np.ogrid[:nt, :ny, :nx]
    v = 15 + np.sin(t / 2.0) + 0.3 * y + 0.1 * x + 0.05 * rng.standard_normal((nt, ny, nx))
    v[rng.random(v.shape) < 0.3] = np.nan
    if land:
        v[:, 0, 0] = np.nan
    if not coords:
        return xr.DataArray(v, dims=("time", "lat", "lon"), name="sst")
    return xr.DataArray(v, dims=("time", "lat", "lon"), name="sst",
                        coords={"time": pd.date_range("2020-01-01", periods=nt),
                                "lat": ("lat", np.linspace(40, 47, ny), {"units": "degrees_north"}),
                                "lon": ("lon", np.linspace(-10, -1, nx), {"units": "degrees_east"})})


def saved_dineof_fit(root, n_time: int, past: int = 24, size: int = 16, seed: int = 3):
    """``root``/past.nc (the first ``past`` days) and ``root``/new.nc (the rest) of a ``size`` x ``size``
    synthetic cube of ``n_time`` days, and ``root``/dineof: a 3-mode DINEOF with its error map fitted on
    the past and saved. Returns ``root``."""
    import warnings

    from oceandl.datasets.sst import synthetic_sst
    from oceandl.interp import DINEOF
    from oceandl.io import open_field

    ds = synthetic_sst(seed=seed, n_time=n_time, ny=size, nx=size)
    ds.isel(time=slice(0, past)).to_netcdf(root / "past.nc")
    ds.isel(time=slice(past, None)).to_netcdf(root / "new.nc")
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")  # the small cube's calibration warnings
        DINEOF(n_modes=3, error_map=True, seed=0).fit(open_field(root / "past.nc", "sst")).save(root / "dineof")
    return root


def set_free_disk(monkeypatch, free: int) -> None:
    """Make every disk report ``free`` bytes free (of 1 GiB), as oceandl's full-disk checks read it."""
    from collections import namedtuple

    from oceandl import utils

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: usage(1 << 30, (1 << 30) - free, free))


def make_raise(monkeypatch, where: tuple, exc: BaseException) -> None:
    """Replace ``getattr(*where)`` by a function raising ``exc``."""
    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(*where, fail)


def cli_climatology(src, out, *extra):
    """``oceandl interpolate SRC --method climatology --withhold 0 ... -o OUT`` through click's runner."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    return CliRunner().invoke(cli, ["interpolate", str(src), "--var", "sst", "--method", "climatology", "--quiet",
                                    "--withhold", "0", *extra, "-o", str(out)])


def once_seen_cube():
    """24 days of a 12 x 12 box under 80 % cloud: 12 pixels seen once, 276 gaps at them, 1282 in all.

    Returns ``(ds, da, once, truth)``: the synthetic Dataset, its field, the gaps at once-seen pixels
    (time, lat, lon bool) and the true field."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field

    ds = synthetic_sst(n_time=24, ny=12, nx=12, cloud_cover=0.8, seed=1)
    da = open_field(ds, "sst")
    seen = np.isfinite(da.values)
    once = ~seen & (seen.sum(axis=0) == 1)[None]
    assert once.sum() == 276
    return ds, da, once, ds["sst_true"].values


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def tiny_classifier(path):
    """An untrained 3-class classifier checkpoint of 16 x 16 grey images at ``path`` (its predictions are
    not what is tested)."""
    from oceandl.models import get_model
    from oceandl.training import save_checkpoint

    opts = {"channels": [4, 8], "hidden": 8}
    return save_checkpoint(path, get_model("cnn", 1, 3, **opts), model_name="cnn",
                           model_options=opts, model_args=[1, 3], task="classification",
                           classes=["calm", "eddy", "front"],
                           preprocessing={"size": [16, 16], "channels": 1, "intensity": "linear",
                                          "normalize": "per_image"})
