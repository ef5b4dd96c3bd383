"""The bad-input catalogue: every case through the CLI (``CliRunner``) and through the Python API.

Each refused case ends with one line naming the file (and the variable) and the problem, exit code
2, no output left behind and an existing output untouched. Each handled case checks the numbers of
the result. ``docs/robustness.md`` lists the same cases with what the user sees.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, edit_checkpoint_config
from PIL import Image

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import CheckpointError, InputError
from oceandl.interp import interpolate as oceandl_interpolate

NT, NY, NX = 10, 8, 10


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def invoke(*args):
    """Run ``oceandl ARGS`` in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line(exc_info, *parts: str) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert str(p) in msg, (p, msg)
    return msg


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes still in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".old")))


@pytest.fixture
def sst() -> xr.Dataset:
    return synthetic_sst(n_time=NT, ny=NY, nx=NX, cloud_cover=0.3, seed=0)


@pytest.fixture
def good_nc(tmp_path, sst) -> Path:
    path = tmp_path / "good.nc"
    sst.to_netcdf(path)
    return path


# ------------------------------------------------------------------------------------------------
# netCDF inputs that are refused
# ------------------------------------------------------------------------------------------------
def _truncated4(path, ds):
    ds.to_netcdf(path, format="NETCDF4")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated3(path, ds):
    ds[["sst"]].to_netcdf(path, format="NETCDF3_64BIT")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])


def _empty(path, ds):
    path.write_bytes(b"")


def _missing(path, ds):
    pass


def _folder(path, ds):
    path.mkdir()


def _text(path, ds):
    path.write_text("time,lat,lon,sst\n0,30,-60,15.2\n")


def _no_field(path, ds):
    ds[["land"]].to_netcdf(path)


def _two_dims(path, ds):
    ds.assign(sst=ds.sst.isel(time=0)).to_netcdf(path)


def _four_dims(path, ds):
    ds.assign(sst=ds.sst.expand_dims(depth=[0.0, 10.0], axis=1)).to_netcdf(path)


def _not_increasing(path, ds):
    t = ds.time.values.copy()
    t[[3, 4]] = t[[4, 3]]
    ds.assign_coords(time=t).to_netcdf(path)


def _duplicate(path, ds):
    t = ds.time.values.copy()
    t[4] = t[3]
    ds.assign_coords(time=t).to_netcdf(path)


def _all_nan(path, ds):
    ds.assign(sst=ds.sst * np.nan).to_netcdf(path)


def _constant(path, ds):
    ds.assign(sst=ds.sst * 0 + 3.5).to_netcdf(path)


# (case id, writer, --var, fragments of the one-line message besides the path)
NETCDF_REFUSED = [
    ("truncated-netcdf4", _truncated4, None, ["truncated or corrupt"]),
    ("truncated-netcdf3", _truncated3, None, ["truncated or corrupt"]),
    ("empty", _empty, None, ["empty file (0 bytes)"]),
    ("missing-file", _missing, None, ["file not found"]),
    ("a-folder", _folder, None, ["is a folder with no netCDF files"]),
    ("not-netcdf", _text, None, ["not a readable netCDF file", "no netCDF-3 or netCDF-4/HDF5 signature"]),
    ("misspelled-var", None, "sts", ["variable 'sts' not found", "did you mean 'sst'"]),
    ("no-field-var", _no_field, None, ["no 3-D (time, lat, lon) variable", "land (lat, lon)"]),
    ("two-dims", _two_dims, "sst", ["variable 'sst'", "has 2 dims (lat, lon)", "expected 3"]),
    ("four-dims", _four_dims, "sst", ["variable 'sst'", "has 4 dims (time, depth, lat, lon)", "expected 3"]),
    ("time-not-increasing", _not_increasing, "sst", ["variable 'sst'", "time is not increasing"]),
    ("duplicate-times", _duplicate, "sst", ["variable 'sst'", "time has duplicate values"]),
    ("all-nan", _all_nan, "sst", ["variable 'sst'", "all values are missing"]),
    ("constant", _constant, "sst", ["variable 'sst'", "constant field (every valid value is 3.5)"]),
]


@pytest.fixture(params=NETCDF_REFUSED, ids=[c[0] for c in NETCDF_REFUSED])
def refused_nc(request, tmp_path, sst, good_nc):
    case, write, var, parts = request.param
    if write is None:
        path = good_nc
    else:
        path = tmp_path / f"{case}.nc"
        write(path, sst)
    return path, var, parts


def test_netcdf_refused_cli(refused_nc, tmp_path):
    path, var, parts = refused_nc
    out = tmp_path / "out" / "filled.nc"
    out.parent.mkdir()
    args = ["interpolate", path, "--method", "climatology", "-o", out, "--quiet"] + (["--var", var] if var else [])
    assert_cli_error(invoke(*args), 2, str(path), *parts)
    assert not out.exists() and leftovers(out.parent) == []
    # an existing output, even with --overwrite, is left as it was
    out.write_bytes(b"previous result")
    assert_cli_error(invoke(*args, "--overwrite"), 2, str(path), *parts)
    assert out.read_bytes() == b"previous result" and leftovers(out.parent) == []


@pytest.mark.parametrize("case", ["empty", "missing-file", "a-folder", "truncated-netcdf4", "not-netcdf"])
def test_file_refused_with_chunks(case, tmp_path, sst):
    """--chunks opens the file its own (lazy) way: an empty file said 'not a readable netCDF file
    (ValueError: did not find a match in any of xarray's currently installed IO backends...)'
    instead of 'empty file (0 bytes)' as without --chunks."""
    _, write, _, parts = next(c for c in NETCDF_REFUSED if c[0] == case)
    path = tmp_path / f"{case}.nc"
    write(path, sst)
    if case in ("truncated-netcdf4", "not-netcdf"):
        parts = ["not a readable netCDF file"]
    out = tmp_path / "filled.nc"
    assert_cli_error(invoke("interpolate", path, "--method", "climatology", "--chunks", "time=-1,lat=8,lon=8",
                            "-o", out, "--quiet"), 2, str(path), *parts)
    assert not out.exists() and leftovers(tmp_path) == []


def test_netcdf_refused_api(refused_nc, tmp_path):
    from oceandl.io import open_field
    from oceandl.pipelines.interpolate import run_interpolation

    path, var, parts = refused_nc
    with pytest.raises(InputError) as info:
        open_field(path, var)
    assert_one_line(info, str(path), *parts)
    out = tmp_path / "filled.nc"
    with pytest.raises(InputError):
        run_interpolation(path, out, var=var, method="climatology", progress=False, log=lambda m: None)
    assert not out.exists() and leftovers(tmp_path) == []


def test_one_time_step(tmp_path, sst):
    """Readable, but nothing to interpolate from: refused by the method, the file named by the pipeline."""
    from oceandl import interpolate
    from oceandl.io import open_field
    from oceandl.pipelines.interpolate import run_interpolation

    path, out = tmp_path / "one_day.nc", tmp_path / "filled.nc"
    sst.isel(time=[0]).to_netcdf(path)
    for method in ("climatology", "dineof"):
        res = invoke("interpolate", path, "--method", method, "-o", out, "--quiet")
        assert_cli_error(res, 2, str(path), "variable 'sst'", "needs at least 2 time steps")
        assert "no gaps" not in res.stderr  # it said 'no gaps over the ocean to copy', then refused the day
        assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(InputError) as info:
        run_interpolation(path, out, method="climatology", progress=False, log=lambda m: None)
    assert_one_line(info, str(path), "variable 'sst'", "needs at least 2 time steps")
    with pytest.raises(InputError) as info:
        interpolate(open_field(path), "climatology")
    assert_one_line(info, "variable 'sst'", "needs at least 2 time steps")
    assert not out.exists()


def test_eof_refusals_name_the_file(tmp_path, sst):
    """The EOF analysis refuses a field (one day, a gap at every pixel) naming the variable only;
    `oceandl eof` printed `Error: variable 'sst': ...` with no file, unlike every other refusal."""
    one, cloudy, out = tmp_path / "one_day.nc", tmp_path / "cloudy.nc", tmp_path / "eofs.nc"
    sst.isel(time=[0]).to_netcdf(one)
    gappy = sst.sst.values.copy()
    day_missing = np.arange(NY * NX).reshape(NY, NX) % NT  # each pixel is cloudy on one day
    for t in range(NT):
        gappy[t][day_missing == t] = np.nan
    sst.assign(sst=(sst.sst.dims, gappy, sst.sst.attrs)).to_netcdf(cloudy)
    for path, why in ((one, "needs at least 2 time steps"), (cloudy, "no pixel is observed at every time step")):
        res = invoke("eof", path, "-n", "2", "-o", out)
        assert_cli_error(res, 2, str(path), "variable 'sst'", why)
        assert not out.exists() and leftovers(tmp_path) == []


def test_field_without_gaps(tmp_path, sst):
    """Nothing to copy for validation: filled without withholding (one line says so), not refused."""
    path, out = tmp_path / "complete.nc", tmp_path / "filled.nc"
    sst.assign(sst=sst.sst_true).to_netcdf(path)
    res = invoke("interpolate", path, "--var", "sst", "--method", "climatology", "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert f"warning: {path}: no gaps over the ocean to copy onto other days; no pixels withheld for validation" \
        in res.stderr.splitlines()
    filled = _filled(out)
    _check_filled(filled, sst.sst_true.values)
    assert not any(k.startswith("val_") for k in filled.attrs)


def test_field_with_too_few_gaps_to_withhold(tmp_path, sst):
    """A nearly clear field (one 2 x 2 cloud on 4 of 10 days of a 5 x 6 grid) cannot lend enough clouds
    for the default --withhold 0.1: `oceandl interpolate` failed, exit 2, with "Error: valid mask:
    cannot withhold 10% of valid pixels by cloud transfer (reached 8%)", naming no file (oceandl.interpolate
    with withhold=0.1 the same), though a field with no gap at all is filled with a warning. Now the
    pixels the transfer reaches are withheld (24 of 284, 8.5 %) and a warning names the file."""
    path, out = tmp_path / "clear.nc", tmp_path / "filled.nc"
    v = 15 + np.random.default_rng(0).normal(size=(10, 5, 6)).astype("float32")
    v[::3, 1:3, 2:4] = np.nan
    da = xr.DataArray(v, dims=("time", "lat", "lon"), name="sst", attrs={"units": "degree_Celsius"},
                      coords={"time": pd.date_range("2020-01-01", periods=10), "lat": np.arange(5.0),
                              "lon": np.arange(6.0)})
    da.to_dataset().to_netcdf(path)
    res = invoke("interpolate", path, "--method", "climatology", "-o", out)
    assert res.exit_code == 0, res.output
    assert (f"warning: {path}: its gaps are too few to withhold 10% of the valid pixels by cloud-mask transfer; "
            "8.5% withheld for validation") in res.stderr.splitlines()
    with xr.open_dataset(out) as ds:
        assert ds.attrs["val_n"] == 24 and int((ds["missing_flag"] == 2).sum()) == 24
    with pytest.warns(UserWarning, match="too few to withhold 10%"):
        assert oceandl_interpolate(da, "climatology", withhold=0.1).attrs["val_n"] == 24
    # the function itself still refuses a fraction it cannot reach, unless asked for what it reaches
    from oceandl.datasets import withhold_by_cloud_transfer

    with pytest.raises(InputError, match="cannot withhold 10% of valid pixels"):
        withhold_by_cloud_transfer(np.isfinite(v), 0.1)
    assert withhold_by_cloud_transfer(np.isfinite(v), 0.1, at_most=True).sum() == 24


def test_missing_variable_lists_names(good_nc):
    from oceandl.io import open_field

    with pytest.raises(InputError) as info:
        open_field(good_nc, "temperature")
    assert_one_line(info, str(good_nc), "'temperature' not found", "sst", "sst_true", "cloud", "land")


# ------------------------------------------------------------------------------------------------
# netCDF inputs that are handled
# ------------------------------------------------------------------------------------------------
def _filled(path: Path, name="sst") -> np.ndarray:
    with xr.open_dataset(path) as ds:
        return ds[name].load()


def _check_filled(res: xr.DataArray, inp: np.ndarray):
    """Same shape, land stays NaN, ocean finite, observations kept."""
    ocean = np.isfinite(inp).any(axis=0)
    assert res.shape == inp.shape
    assert np.isnan(res.values[:, ~ocean]).all()
    assert np.isfinite(res.values[:, ocean]).all()
    obs = np.isfinite(inp)
    np.testing.assert_allclose(res.values[obs], inp[obs], rtol=1e-6)


def test_latlon_as_data_variables(tmp_path, sst):
    path, out = tmp_path / "raw.nc", tmp_path / "filled.nc"
    xr.Dataset(
        {"sst": (("time", "y", "x"), sst.sst.values),
         "latitude": (("y",), sst.lat.values, {"units": "degrees_north"}),
         "longitude": (("x",), sst.lon.values, {"units": "degrees_east"})},
        coords={"time": sst.time.values},
    ).to_netcdf(path)
    res = invoke("interpolate", path, "--method", "climatology", "--withhold", "0", "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    filled = _filled(out)
    assert filled.dims == ("time", "y", "x")  # the input's grid: its dims, its lat/lon variables
    np.testing.assert_allclose(filled.latitude, sst.lat.values)
    np.testing.assert_allclose(filled.longitude, sst.lon.values)
    _check_filled(filled, sst.sst.values)

    from oceandl import interpolate
    from oceandl.io import open_field

    da = open_field(path)
    np.testing.assert_allclose(da.lat, sst.lat.values)
    _check_filled(interpolate(da, "climatology"), sst.sst.values)


def test_longitudes_0_360(tmp_path, sst):
    lon360 = np.arange(0.0, 360.0, 36.0)  # 0, 36, ..., 324: 180..324 become -180..-36
    path, out = tmp_path / "lon360.nc", tmp_path / "filled.nc"
    sst.assign_coords(lon=lon360).to_netcdf(path)
    res = invoke("interpolate", path, "--method", "climatology", "--withhold", "0", "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    filled = _filled(out)
    # the file is written on the input's grid: 0..360, in its order
    np.testing.assert_array_equal(filled.lon, lon360)
    _check_filled(filled, sst.sst.values)

    from oceandl.io import open_field

    # the methods see -180..180, sorted: the column at 216 E is at -144 E, values moved with it
    da = open_field(path)
    expected_lon = np.sort(np.where(lon360 > 180, lon360 - 360, lon360))
    np.testing.assert_allclose(da.lon, expected_lon)
    i_in, i_out = int(np.flatnonzero(lon360 == 216.0)[0]), int(np.flatnonzero(expected_lon == -144.0)[0])
    np.testing.assert_array_equal(da.values[:, :, i_out], sst.sst.values[:, :, i_in])


def _raw_nc(path: Path, sst: xr.Dataset, stored: np.ndarray, dtype: str, fill, **attrs) -> Path:
    """Write ``stored`` as variable sst with netCDF4 directly (no xarray encoding in the way)."""
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in zip(("time", "lat", "lon"), stored.shape):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t[:] = "days since 2020-01-01", np.arange(stored.shape[0])
        la = nc.createVariable("lat", "f8", ("lat",))
        la.units, la[:] = "degrees_north", sst.lat.values
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo.units, lo[:] = "degrees_east", sst.lon.values
        v = nc.createVariable("sst", dtype, ("time", "lat", "lon"), fill_value=fill)
        v.set_auto_maskandscale(False)
        for k, a in attrs.items():
            v.setncattr(k, a)
        v[:] = stored
    return path


@pytest.mark.parametrize("attr", ["_FillValue", "missing_value"])
def test_fill_values_instead_of_nan(tmp_path, sst, attr):
    inp = sst.sst.values
    stored = np.where(np.isfinite(inp), inp, -999.0).astype("f4")
    kw = {"fill": -999.0} if attr == "_FillValue" else {"fill": False, "missing_value": np.float32(-999.0)}
    path = _raw_nc(tmp_path / "fill.nc", sst, stored, "f4", **kw)
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", path, "--method", "climatology", "--withhold", "0", "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    filled = _filled(out)
    _check_filled(filled, inp)
    assert float(np.nanmin(filled)) > -50  # no -999 leaked into the fill

    from oceandl.io import open_field

    da = open_field(path)
    np.testing.assert_array_equal(np.isnan(da.values), np.isnan(inp))


def test_int16_scale_offset(tmp_path, sst):
    inp = sst.sst.values
    packed = np.where(np.isfinite(inp), np.round((inp - 20.0) / 0.01), -32768).astype(np.int16)
    path = _raw_nc(tmp_path / "packed.nc", sst, packed, "i2", fill=-32768, scale_factor=0.01, add_offset=20.0)
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", path, "--method", "climatology", "--withhold", "0", "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    filled = _filled(out)
    obs = np.isfinite(inp)
    assert np.abs(filled.values[obs] - inp[obs]).max() <= 0.0051  # half a packing step
    assert np.isnan(filled.values[:, ~obs.any(axis=0)]).all()

    from oceandl.io import open_field

    da = open_field(path)
    assert np.issubdtype(da.dtype, np.floating)
    assert np.abs(da.values[obs] - inp[obs]).max() <= 0.0051
    np.testing.assert_array_equal(np.isnan(da.values), ~obs)


def test_grid_smaller_than_patch_api():
    """A 5 x 6 grid under the U-Net's 64-pixel patch and 3 poolings: padded, filled, valid."""
    from oceandl.interp.neural import UNetInterpolator

    ds = synthetic_sst(n_time=6, ny=5, nx=6, cloud_cover=0.3, seed=0, land=False)
    res = UNetInterpolator(steps=2, device="cpu", seed=0).fit(ds.sst).reconstruct()
    _check_filled(res["sst"], ds.sst.values)


def test_grid_smaller_than_patch_cli(tmp_path):
    from oceandl.interp import METHODS

    if "unet" not in METHODS:
        pytest.skip("the neural methods are not registered in oceandl.interp.METHODS yet")
    ds = synthetic_sst(n_time=6, ny=5, nx=6, cloud_cover=0.3, seed=0, land=False)
    path, out = tmp_path / "small.nc", tmp_path / "filled.nc"
    ds.to_netcdf(path)
    res = invoke("interpolate", path, "--method", "unet", "--set", "steps=2", "--device", "cpu", "--withhold", "0",
                 "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    _check_filled(_filled(out), ds.sst.values)


def test_batch_of_one_on_a_grid_smaller_than_patch_cli(tmp_path):
    """The same grid with --set batch_size=1: one pixel per channel under the U-Net's 3 poolings,
    where batch norm needs two; torch's ValueError exited 1 after the set-up."""
    ds = synthetic_sst(n_time=6, ny=5, nx=6, cloud_cover=0.3, seed=0, land=False)
    path, out = tmp_path / "small.nc", tmp_path / "filled.nc"
    ds.to_netcdf(path)
    res = invoke("interpolate", path, "--method", "unet", "--set", "steps=2", "--set", "batch_size=1",
                 "--device", "cpu", "--withhold", "0", "-o", out, "--quiet")
    assert_cli_error(res, 2, "method 'unet'", "batch_size=1 with training patches of 5 x 6 px", "batch_size >= 2")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(tmp_path, good_nc, sst):
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", good_nc, "--method", "dineof", "--device", "cuda", "-o", out, "--quiet")
    assert_cli_error(res, 2, "--device cuda", "CUDA is not available")
    assert not out.exists()
    # refused before anything is made or read (no synthetic data written for --demo)
    res = invoke("train", "classifier", "--demo", "--device", "cuda", "-o", tmp_path / "model", "--quiet")
    assert_cli_error(res, 2, "--device cuda", "CUDA is not available")
    assert not (tmp_path / "model").exists()

    from oceandl import interpolate
    from oceandl.utils import resolve_device

    with pytest.raises(InputError) as info:
        resolve_device("cuda")
    assert_one_line(info, "CUDA is not available")
    with pytest.raises(InputError):
        interpolate(sst.sst, "dineof", device="cuda")


def test_device_cuda_index_beyond_the_gpus(monkeypatch, sst):
    """cuda:N past the machine's GPUs was accepted, and the first tensor moved there failed with
    torch's multi-line 'CUDA error: invalid device ordinal' after the data was read."""
    from oceandl import interpolate
    from oceandl.utils import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(InputError) as info:
        resolve_device("cuda:2")
    assert_one_line(info, "--device cuda:2", "has 2 GPU(s)", "cuda:0 to cuda:1")
    with pytest.raises(InputError, match="has 2 GPU"):
        interpolate(sst.sst, "dineof", device="cuda:5")


def test_unknown_method(tmp_path, good_nc, sst):
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", good_nc, "--method", "krigging", "-o", out, "--quiet")
    assert_cli_error(res, 2, "unknown interpolation method 'krigging'", "climatology", "dineof")
    assert not out.exists()

    from oceandl import interpolate

    with pytest.raises(InputError) as info:
        interpolate(sst.sst, "krigging")
    assert_one_line(info, "'krigging'", "dineof")


def test_unknown_set_option(tmp_path, good_nc, sst):
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", good_nc, "--method", "dineof", "--set", "n_mode=3", "-o", out, "--quiet")
    assert_cli_error(res, 2, "method 'dineof'", "unknown option 'n_mode'", "n_modes")
    assert not out.exists()
    res = invoke("interpolate", good_nc, "--method", "dineof", "--set", "n_modes", "-o", out, "--quiet")
    assert_cli_error(res, 2, "--set 'n_modes'", "expected key=value")

    from oceandl import interpolate

    with pytest.raises(InputError) as info:
        interpolate(sst.sst, "dineof", n_mode=3)
    assert_one_line(info, "unknown option 'n_mode'")


def test_output_folder_missing(tmp_path, good_nc, sst):
    out = tmp_path / "no_such_folder" / "filled.nc"
    res = invoke("interpolate", good_nc, "--method", "climatology", "-o", out, "--quiet")
    assert_cli_error(res, 2, str(out), "folder", "does not exist")
    assert not out.parent.exists()

    from oceandl.io import write_netcdf

    with pytest.raises(InputError) as info:
        write_netcdf(sst, out)
    assert_one_line(info, "does not exist")
    # a file where the folder should be: refused before the work (it was NotADirectoryError, exit 1,
    # at write time)
    (tmp_path / "a_file").write_text("not a folder")
    for args in (["interpolate", good_nc, "--method", "climatology"], ["synth", "sst", "--n", "3", "--size", "8"]):
        res = invoke(*args, "-o", tmp_path / "a_file" / "x.nc", "--quiet" if args[0] == "interpolate" else "--seed=0")
        assert_cli_error(res, 2, "a_file is a file, not a folder")
        assert "withheld" not in res.output
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_output_that_is_the_input_is_refused_even_with_overwrite(tmp_path, good_nc):
    # --overwrite replaced the input with the result (atomically, exit 0): the observations,
    # and the file any other run would read, were gone
    before = good_nc.read_bytes()
    link = tmp_path / "link.nc"
    link.symlink_to(good_nc)
    for args in (["interpolate", good_nc, "--method", "climatology", "--quiet"],
                 ["interpolate", good_nc, "--method", "climatology", "--quiet", "--chunks", "time=-1,lat=8,lon=8"],
                 ["interpolate", link, "--method", "climatology", "--quiet"],
                 ["eof", good_nc, "-n", "2"],
                 ["train", "interpolator", good_nc, "--set", "steps=1", "--quiet"]):
        res = invoke(*args, "-o", good_nc, "--overwrite")
        assert_cli_error(res, 2, str(good_nc), "is the input file", "another path")
        assert "withheld" not in res.output
    assert good_nc.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path, good_nc, sst):
    out = tmp_path / "filled.nc"
    out.write_bytes(b"previous result")
    res = invoke("interpolate", good_nc, "--method", "climatology", "-o", out, "--quiet")
    assert_cli_error(res, 2, str(out), "already exists", "--overwrite")
    assert out.read_bytes() == b"previous result"
    res = invoke("interpolate", good_nc, "--method", "climatology", "--withhold", "0", "-o", out, "--quiet",
                 "--overwrite")
    assert res.exit_code == 0, res.output
    _check_filled(_filled(out), sst.sst.values)
    assert leftovers(tmp_path) == []

    from oceandl.io import write_netcdf

    with pytest.raises(InputError) as info:
        write_netcdf(sst, out)
    assert_one_line(info, "already exists")


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
def _png(path: Path, size: int, value: int, rng) -> None:
    img = np.clip(rng.normal(value, 20, (size, size)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)


def make_tree(root: Path, classes=("a", "b", "c"), n=6, sizes=(16,), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            _png(root / c / f"{i}.png", sizes[i % len(sizes)], 60 + 60 * k, rng)
    return root


def _geotiff(path: Path, size: int = 64) -> None:
    import rasterio
    from rasterio.transform import from_origin

    arr = np.random.default_rng(0).random((size, size)).astype("float32")
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(0, 0, 1, 1)) as dst:
        dst.write(arr, 1)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def bad_png_truncated(folder: Path) -> Path:
    p = folder / "0.png"
    _truncate(p)
    return p


def bad_png_text(folder: Path) -> Path:
    p = folder / "0.png"
    p.write_text("this is not an image\n")
    return p


def bad_tiff_truncated(folder: Path) -> Path:
    p = folder / "0.tif"
    _geotiff(p)
    _truncate(p)
    return p


def bad_tiff_text(folder: Path) -> Path:
    p = folder / "0.tif"
    p.write_bytes(b"II*\x00" + b"garbage" * 20)
    return p


BAD_IMAGES = {"png-truncated": bad_png_truncated, "png-not-an-image": bad_png_text,
              "geotiff-truncated": bad_tiff_truncated, "tiff-not-an-image": bad_tiff_text}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_file(tmp_path, kind):
    from oceandl.datasets.images import ImageFolderDataset, read_image

    tree = make_tree(tmp_path / "tree")
    bad = BAD_IMAGES[kind](tree / "a")
    out = tmp_path / "model"
    res = invoke("train", "classifier", "--data", tree, "-o", out, "--on-error", "raise", "--epochs", "1",
                 "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, str(bad), "unreadable image")
    assert not out.exists() and leftovers(tmp_path) == []

    with pytest.raises(InputError) as info:
        read_image(bad)
    assert_one_line(info, str(bad), "cannot read image")
    with pytest.raises(InputError) as info:
        ImageFolderDataset(tree, on_error="raise", verify="full")
    assert_one_line(info, str(bad))
    n_files = sum(1 for p in tree.rglob("*") if p.is_file())
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = ImageFolderDataset(tree, verify="full")
    assert ds.skipped == [bad] and len(ds) == n_files - 1


def test_handled_image_tree(tmp_path):
    """Unreadable files skipped (default --on-error skip), an empty class dropped, mixed sizes resized
    with --size: training goes on and each event is one ``warning:`` line."""
    tree = make_tree(tmp_path / "tree", sizes=(16, 20, 24))
    bad_png_truncated(tree / "a")
    (tree / "b" / "1.png").write_text("not an image")
    (tree / "d_empty").mkdir()
    out = tmp_path / "model"
    res = invoke("train", "classifier", "--data", tree, "--size", "12", "-o", out, "--epochs", "1",
                 "--device", "cpu", "--quiet", "--batch-size", "8")
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warn) == 2, res.stderr
    assert "skipped 2 unreadable image(s)" in warn[1] and "0.png" in warn[1] and "1.png" in warn[1]
    assert "dropped empty class folder(s): d_empty" in warn[0]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["classes"] == ["a", "b", "c"] and cfg["preprocessing"]["size"] == [12, 12]
    assert sum(cfg["split_sizes"]) == 16


def test_seed_range(tmp_path, good_nc):
    """--seed 2**64 - 1 (torch's largest) trains; above it, a usage error (exit 2) before any work.
    The per-epoch seed (seed * 100003 + epoch) overflowed torch for any --seed above ~1.8e14, and
    --seed 2**64 failed as a bare 'ValueError: Overflow when unpacking long long' (exit 1)."""
    tree = make_tree(tmp_path / "tree")
    out = tmp_path / "model"
    res = invoke("train", "classifier", "--data", tree, "-o", out, "--epochs", "2", "--batch-size", "8",
                 "--device", "cpu", "--quiet", "--seed", 2**64 - 1)
    assert res.exit_code == 0, res.output
    for args in (["train", "classifier", "--data", tree, "--epochs", "1"], ["interpolate", good_nc],
                 ["eof", good_nc], ["synth", "sst", "--n", "4", "--size", "8"]):
        dst = tmp_path / ("x" if args[0] == "train" else "x.nc")
        res = invoke(*args, "-o", dst, "--seed", 2**64)
        assert_cli_error(res, 2, "--seed", "18446744073709551615")
        assert not dst.exists() and leftovers(tmp_path) == []


def test_infinite_lr_is_refused(tmp_path, good_nc):
    """--lr inf (nan was refused) trained on NaN weights and ended in 'training diverged' (exit 1)."""
    tree = make_tree(tmp_path / "tree")
    res = invoke("train", "classifier", "--data", tree, "-o", tmp_path / "model", "--epochs", "1", "--lr", "inf",
                 "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, "lr must be a finite number > 0, got inf")
    for cmd in (["interpolate", good_nc, "--method", "unet"], ["train", "interpolator", good_nc]):
        res = invoke(*cmd, "--var", "sst", "--set", "steps=1", "--lr", "inf", "-o", tmp_path / "o.nc",
                     "--device", "cpu", "--quiet")
        assert_cli_error(res, 2, "--lr inf must be a finite number > 0")
    assert not (tmp_path / "model").exists() and not (tmp_path / "o.nc").exists()


def test_only_unreadable_images_named(tmp_path):
    from oceandl.datasets.images import ImageFilesDataset
    from oceandl.training.checkpoint import save_checkpoint

    make_tree(tmp_path / "tree")
    bad = bad_png_text(tmp_path / "tree" / "a")
    with pytest.raises(InputError) as info:
        ImageFilesDataset([bad])
    assert_one_line(info, str(bad))
    ckpt = _checkpoint(tmp_path / "ckpt", save_checkpoint)
    res = invoke("classify", "--model", ckpt, bad, "-o", tmp_path / "p.csv", "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, str(bad))


def test_folder_without_class_folders(tmp_path):
    from oceandl.datasets.images import ImageFolderDataset

    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        _png(flat / f"{i}.png", 16, 100, rng)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, hint in ((flat, "images lie directly in it"), (empty, "expected <class>/")):
        res = invoke("train", "classifier", "--data", folder, "-o", tmp_path / "model", "--device", "cpu", "--quiet")
        assert_cli_error(res, 2, str(folder), "no class sub-folders with images", hint)
        assert not (tmp_path / "model").exists()
        with pytest.raises(InputError) as info:
            ImageFolderDataset(folder)
        assert_one_line(info, str(folder), "no class sub-folders")


def test_empty_class_is_dropped(tmp_path):
    from oceandl.datasets.images import ImageFolderDataset

    tree = make_tree(tmp_path / "tree")
    (tree / "d_empty").mkdir()
    with pytest.warns(UserWarning, match="dropped empty class folder.*d_empty"):
        ds = ImageFolderDataset(tree)
    assert ds.classes == ["a", "b", "c"] and len(ds) == 18 and sorted(set(ds.targets)) == [0, 1, 2]


def test_single_class_is_refused_for_training(tmp_path):
    # it trained a one-class model and reported test accuracy 1.0, log-loss 0 (exit 0)
    tree = make_tree(tmp_path / "tree", classes=("only",))
    out = tmp_path / "model"
    res = invoke("train", "classifier", "--data", tree, "-o", out, "--epochs", "1", "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, "'only'", "at least 2 classes")
    assert not out.exists() and leftovers(tmp_path) == []


def test_mixed_sizes(tmp_path):
    from oceandl.datasets.images import ImageFolderDataset

    tree = make_tree(tmp_path / "tree", sizes=(16, 20, 24))
    ds = ImageFolderDataset(tree, size=12)
    assert {tuple(ds[i]["image"].shape) for i in range(len(ds))} == {(1, 12, 12)}
    # without size: the most common size, with a warning saying so
    with pytest.warns(UserWarning, match="3 different sizes"):
        ds = ImageFolderDataset(tree)
    assert {tuple(ds[i]["image"].shape) for i in range(len(ds))} == {(1, 16, 16)}


# ------------------------------------------------------------------------------------------------
# IDX (MNIST)
# ------------------------------------------------------------------------------------------------
def _idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def make_mnist(root: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    for split, (img, lbl) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        _idx(root / img, rng.integers(0, 256, (n, 28, 28)), 2051)
        _idx(root / lbl, np.arange(n) % 10, 2049)
    return root


@pytest.mark.parametrize("kind", ["truncated", "not-idx"])
def test_bad_idx(tmp_path, kind):
    from oceandl.datasets.mnist import load_mnist, read_idx

    root = make_mnist(tmp_path / "mnist")
    bad = root / "train-images-idx3-ubyte"
    if kind == "truncated":
        _truncate(bad, 0.6)
        parts = [str(bad), "truncated IDX data"]
    else:
        bad.write_text("P5 28 28 255 not an IDX file")
        parts = [str(bad), "bad IDX magic number"]
    out = tmp_path / "model"
    # a broken training split is an error, never a silent fallback to the test split
    res = invoke("train", "classifier", "--data", root, "-o", out, "--epochs", "1", "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, *parts)
    assert not out.exists()
    with pytest.raises(InputError) as info:
        read_idx(bad, 2051)
    assert_one_line(info, *parts)
    with pytest.raises(InputError) as info:
        load_mnist(root, "train")
    assert_one_line(info, *parts)


def test_idx_with_only_the_train_split_is_mnist(tmp_path):
    root = make_mnist(tmp_path / "mnist")
    for p in root.glob("t10k-*"):
        p.unlink()
    out = tmp_path / "model"
    res = invoke("train", "classifier", "--data", root, "-o", out, "--epochs", "1", "--device", "cpu", "--quiet",
                 "--model", "mlp")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["preprocessing"]["size"] == [28, 28]


@pytest.mark.parametrize("keep, says", [
    (("train", "t10k"), "MNIST's training file only, split into training, validation and test by --split; the "
                        "official test file is not used, so the test accuracy is not MNIST's"),
    (("t10k",), "only MNIST's test file, split into training, validation and test by --split: the model trains on "
                "most of the official test set"),
    (("train",), None),
])
def test_train_on_an_mnist_folder_says_what_its_test_split_is(tmp_path, keep, says):
    """`train classifier --data mnist/` printed a 'test accuracy' on 15 % of the training file,
    with the official test file beside it unused (or, with only that file, of a model trained on
    most of MNIST's test set), without a word: read as MNIST's test accuracy it is not."""
    root = make_mnist(tmp_path / "mnist")
    for p in root.iterdir():
        if not p.name.startswith(keep):
            p.unlink()
    res = invoke("train", "classifier", "--data", root, "-o", tmp_path / "model", "--epochs", "1", "--device", "cpu",
                 "--quiet", "--model", "mlp")
    assert res.exit_code == 0, res.output
    said = [ln for ln in res.output.splitlines() if ln.startswith("warning:") and "MNIST" in ln]
    assert said == ([f"warning: {root}: {says} (`oceandl benchmark mnist` tests on it)"] if keep == ("train", "t10k")
                    else [f"warning: {root}: {says}, so its test accuracy does not compare with MNIST's"] if says
                    else []), res.output


def test_idx_header_overflow(tmp_path):
    from oceandl.datasets.mnist import read_idx

    bad = tmp_path / "huge-idx3-ubyte"
    bad.write_bytes(bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4)
    with pytest.raises(InputError) as info:
        read_idx(bad)
    assert_one_line(info, str(bad))


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------
def _checkpoint(path: Path, save_checkpoint=None) -> Path:
    from oceandl.models import get_model
    from oceandl.preprocess import check_spec
    from oceandl.training.checkpoint import save_checkpoint as save

    torch.manual_seed(0)
    net = get_model("cnn", 1, 3)
    (save_checkpoint or save)(path, net, model_name="cnn", model_args=[1, 3], model_options={},
                              task="classification", classes=["a", "b", "c"],
                              preprocessing=check_spec({"size": [16, 16], "channels": 1}))
    return path


def _torch_pickle(path: Path) -> Path:
    torch.save({"w": torch.zeros(3)}, path)
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    tree = make_tree(tmp_path / "imgs", classes=("x",), n=1)
    return tree / "x" / "0.png"


CHECKPOINT_CASES = {
    "other-architecture": (lambda good, d: edit_checkpoint_config(good, d / "vgg", model="vgg"),
                           ["weights do not fit model 'vgg'"]),
    "other-num-classes": (lambda good, d: edit_checkpoint_config(good, d / "five", model_args=[1, 5], classes=list("abcde")),
                          ["weights do not fit model 'cnn'", "has shape (3,)", "expects (5,)"]),
    "reconstruction-task": (lambda good, d: edit_checkpoint_config(good, d / "rec", task="reconstruction"),
                            ["task 'reconstruction'", "classif"]),
    "pickle-file": (lambda good, d: _torch_pickle(d / "model.pt"),
                    ["refused", "pickle-based", "arbitrary code"]),
    "pickle-file-no-suffix": (lambda good, d: (d / "model").write_bytes(pickle.dumps({"w": [1, 2]})) and d / "model",
                              ["refused", "pickle-based"]),
    "pickle-in-folder": (lambda good, d: (d / "pk").mkdir() or _torch_pickle(d / "pk" / "model.pth").parent,
                         ["model.pth is pickle-based", "refused", "arbitrary code"]),
    "pickle-as-safetensors": (lambda good, d: (shutil.copytree(good, d / "renamed"),
                                               _torch_pickle(d / "renamed" / "weights.safetensors"))[1].parent,
                              ["refused", "pickle-based file under a safetensors name"]),
    "truncated-weights": (lambda good, d: (shutil.copytree(good, d / "trunc"),
                                           _truncate(d / "trunc" / "weights.safetensors"))[0] and d / "trunc",
                          ["corrupt weights"]),
    "corrupt-config": (lambda good, d: (shutil.copytree(good, d / "cfg"),
                                        (d / "cfg" / "config.json").write_text("{not json"))[0] and d / "cfg",
                       ["config.json: corrupt JSON"]),
    "not-a-checkpoint": (lambda good, d: (d / "empty").mkdir() or d / "empty",
                         ["not an oceandl checkpoint", "config.json is missing"]),
    # an edited preprocessing spec: size "x" or 0 was a bare ValueError/RuntimeError (exit 1) in the
    # image reader; channels "x" said "images: cannot convert 1 bands to x", naming no checkpoint
    "preprocessing-size-text": (lambda good, d: edit_checkpoint_config(good, d / "sz", preprocessing={"size": "x"}),
                                ["config.json: preprocessing size='x'"]),
    "preprocessing-size-zero": (lambda good, d: edit_checkpoint_config(good, d / "sz0", preprocessing={"size": 0}),
                                ["config.json: preprocessing size=0"]),
    "preprocessing-channels-text": (lambda good, d: edit_checkpoint_config(good, d / "ch", preprocessing={"channels": "x"}),
                                    ["config.json: preprocessing channels='x'"]),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint(tmp_path, image, case):
    from oceandl.classification import classify
    from oceandl.training.checkpoint import load_checkpoint

    good = _checkpoint(tmp_path / "good")
    make, parts = CHECKPOINT_CASES[case]
    (tmp_path / "bad").mkdir()
    ckpt = make(good, tmp_path / "bad")
    out = tmp_path / "predictions.csv"
    res = invoke("classify", "--model", ckpt, image, "-o", out, "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, str(ckpt), *parts)
    assert not out.exists() and leftovers(tmp_path) == []

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt, expect_task="classification")
    assert_one_line(info, str(ckpt), *parts)
    with pytest.raises(CheckpointError):
        classify(torch.rand(2, 1, 16, 16), ckpt, device="cpu")


def test_classifier_checkpoint_given_to_interpolate(tmp_path, good_nc):
    """`interpolate --model` with a classifier checkpoint fails on its JSON, before the input is
    read (no 'withheld' line), with nothing written; likewise in Python at the method's construction."""
    from oceandl.interp import get_method

    ckpt = _checkpoint(tmp_path / "clf")
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", good_nc, "--method", "unet", "--model", ckpt, "-o", out, "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, str(ckpt), "task 'classification'", "interpolation")
    assert "withheld" not in res.output and not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(CheckpointError) as info:
        get_method("resae")(device="cpu", checkpoint=str(ckpt))
    assert_one_line(info, str(ckpt), "task 'classification'")


@pytest.mark.parametrize("key,value,parts", [
    ("neighbours", "2", ["interpolator.neighbours must be an integer in 0..10", "got '2'"]),
    ("neighbours", -3, ["interpolator.neighbours must be an integer in 0..10", "got -3"]),
    ("in_channels", "x", ["interpolator.in_channels must be a positive integer"]),
    ("seasonal", "no", ["interpolator.seasonal must be true or false", "got 'no'"]),
    ("latlon", None, ["interpolator.latlon must be true or false", "missing"]),
])
def test_edited_interpolation_checkpoint(tmp_path, good_nc, key, value, parts):
    """An interpolation checkpoint whose config.json 'interpolator' entry was edited: neighbours "2",
    -3, in_channels "x" or a missing key were a bare TypeError/ValueError/KeyError (exit 1, after the
    input was read), seasonal "no" was taken as true. Now one line naming the file and the key."""
    from oceandl.interp import get_method
    from oceandl.models import get_model
    from oceandl.training.checkpoint import save_checkpoint

    meta = {"method": "unet", "neighbours": 1, "nll": False, "seasonal": True, "latlon": True, "in_channels": 10}
    if value is None:
        meta.pop(key)
    else:
        meta[key] = value
    ckpt = save_checkpoint(tmp_path / "ck", get_model("unet", 10, 1, width=8, depth=2), model_name="unet",
                           model_args=[10, 1], model_options={"width": 8, "depth": 2}, task="interpolation",
                           extra={"interpolator": meta})
    out = tmp_path / "filled.nc"
    res = invoke("interpolate", good_nc, "--var", "sst", "--method", "unet", "--model", ckpt, "-o", out,
                 "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, str(ckpt / "config.json"), *parts)
    assert "withheld" not in res.output and not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(CheckpointError) as info:
        get_method("unet")(device="cpu", checkpoint=str(ckpt))
    assert_one_line(info, *parts)


def test_good_checkpoint_classifies(tmp_path, image):
    """The control of the cases above: the same checkpoint, untouched, works."""
    ckpt = _checkpoint(tmp_path / "good")
    out = tmp_path / "predictions.csv"
    res = invoke("classify", "--model", ckpt, image, "-o", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert len(df) == 1 and {"p_a", "p_b", "p_c"} <= set(df.columns)
    np.testing.assert_allclose(df[["p_a", "p_b", "p_c"]].sum(axis=1), 1.0, atol=1e-4)
