"""Audit 97: a file per input file, static covariates and a saved fit's box, broken as an ocean
scientist would (each test failed before its fix)."""
from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import write_l3_days

from oceandl.cli.main import cli

VAR = "sea_surface_temperature"


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit97")
    write_l3_days(root / "days", nt=6, ny=10, nx=12)
    return root / "days"


def test_each_output_file_has_its_own_inputs_attributes(days, tmp_path):
    """A series of L3 files from two satellites: each filled file says its own input's platform (and
    carries a comment only its input has); it said the first file's platform on every day."""
    names = sorted(p.name for p in days.iterdir())
    src = tmp_path / "days"
    src.mkdir()
    for k, name in enumerate(names):
        with xr.open_dataset(days / name, mask_and_scale=False) as ds:
            ds = ds.load()
        ds.attrs["platform"] = ["NOAA-20", "S-NPP"][k % 2]
        if k == 1:
            ds.attrs["comment"] = "sensor anomaly"
        ds.to_netcdf(src / name)
    out = tmp_path / "out"
    res = _run("interpolate", src, "--var", VAR, "--method", "climatology", "--quiet", "-o", f"{out}/")
    assert res.exit_code == 0, res.output
    for k, name in enumerate(names):
        with netCDF4.Dataset(out / name) as nc:
            attrs = {a: nc.getncattr(a) for a in nc.ncattrs()}
        assert attrs["platform"] == ["NOAA-20", "S-NPP"][k % 2], (name, attrs["platform"])
        assert ("comment" in attrs) == (k == 1)
        assert attrs["title"] == "Test L3 SST" and attrs["method"] == "climatology"


def _global_cube(path, nt=30):
    """A global 7.5-degree SST cube on 0..360 longitudes (48 columns), 40 % cloud."""
    rng = np.random.default_rng(0)
    lon = np.arange(0, 360, 7.5) + 3.75
    lat = np.arange(-30, 31, 7.5)
    t = np.arange(nt)[:, None, None]
    f = (15 + 10 * np.cos(np.deg2rad(lat))[None, :, None] + 2 * np.sin(np.deg2rad(lon)[None, None, :] + 0.1 * t)
         + 0.3 * rng.standard_normal((nt, lat.size, lon.size)))
    f = np.where(rng.random(f.shape) < 0.4, np.nan, f).astype("f4")
    xr.Dataset({"sst": (("time", "lat", "lon"), f, {"units": "degC", "standard_name": "sea_surface_temperature"})},
               coords={"time": np.datetime64("2020-01-01") + np.arange(nt).astype("timedelta64[D]"),
                       "lat": ("lat", lat, {"units": "degrees_north"}),
                       "lon": ("lon", lon, {"units": "degrees_east"})}).to_netcdf(path)
    return path


def test_a_two_column_box_across_the_dateline_is_filled_by_a_saved_fit(tmp_path):
    """--bbox 175,-20,185,20 on a 0..360 grid holds the columns 176.25 and 183.75: they were read as
    -176.25, 176.25 (swapped) and the saved global fit refused them as 'one in 47 of the points of
    the fit's grid ... another resolution'. The climatology's box fill is the whole grid's there."""
    cube = _global_cube(tmp_path / "glob.nc")
    res = _run("train", "interpolator", cube, "--method", "climatology", "--quiet", "-o", tmp_path / "fit")
    assert res.exit_code == 0, res.output
    fill = ["interpolate", cube, "--method", "climatology", "--fit-on", tmp_path / "fit", "--withhold", "0", "--quiet"]
    res = _run(*fill, "-o", tmp_path / "whole.nc")
    assert res.exit_code == 0, res.output
    for box in ("175,-20,185,20", "170,-20,-170,20"):
        out = tmp_path / f"box{box}.nc"
        res = _run(*fill, f"--bbox={box}", "-o", out)
        assert res.exit_code == 0, res.output
        with xr.open_dataset(out) as b, xr.open_dataset(tmp_path / "whole.nc") as w:
            np.testing.assert_array_equal(b["lon"].values, [176.25, 183.75])
            want = w["sst"].sel(lon=[176.25, 183.75], lat=b["lat"].values)
            np.testing.assert_allclose(b["sst"].values, want.values, rtol=0, atol=1e-5)
