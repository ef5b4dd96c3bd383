"""Audit 99: ``--aux FILE:VAR`` on other days or grids (lazily with --chunks) and multivariate DINEOF
fitted on one period filling another."""
from __future__ import annotations

import datetime

import numpy as np
import pytest
import xarray as xr

from oceandl.io import to_field_grid


def _cube(times, ny=8, nx=10, seed=0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(rng.normal(20, 1, (len(times), ny, nx)).astype("float32"), dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": np.linspace(30, 37, ny), "lon": np.linspace(-60, -51, nx)},
                        name="sst")


@pytest.mark.parametrize("chunks", [None, {"time": 4, "lat": 4, "lon": 5}])
def test_cftime_calendars_are_matched_by_date(chunks):
    """A model's noleap field and its covariate at 06:00 (noleap too, or in the standard calendar):
    both have dates, so they are matched by them (was: '12 time steps, not the field's 12, and no
    dates on both to match them by'), in memory and lazily alike."""
    t = xr.date_range("2021-02-20", periods=12, freq="D", calendar="noleap", use_cftime=True)
    field = _cube(t.values)
    cov = field.copy(data=field.values + 1).rename("mw")
    shifted = cov.assign_coords(time=[x + datetime.timedelta(hours=6) for x in t.values])
    if chunks is not None:
        shifted = shifted.chunk({"time": 5})
    on, done = to_field_grid(shifted, field, chunks=chunks)
    assert done == ["times matched to the field's 12 (nearest within half its step)"]
    np.testing.assert_array_equal(on.values, cov.values)
    assert list(on.time.values) == list(field.time.values)
    # the standard calendar's dates on the noleap field: 2021 has no 29 February, so all 12 are there
    std = cov.assign_coords(time=np.arange("2021-02-20", "2021-03-04", dtype="datetime64[D]").astype("datetime64[ns]"))
    on, done = to_field_grid(std, field, chunks=chunks)
    np.testing.assert_array_equal(on.values, cov.values)
    # a standard-calendar field of a leap year: a noleap covariate has no 29 February (one day without)
    tf = np.arange("2020-02-25", "2020-03-05", dtype="datetime64[D]").astype("datetime64[ns]")
    f2 = _cube(tf)
    tc = xr.date_range("2020-02-25", periods=9, freq="D", calendar="noleap", use_cftime=True).values
    c2 = f2.isel(time=slice(0, 9)).copy().assign_coords(time=tc).rename("mw")
    on, done = to_field_grid(c2, f2, chunks=chunks)
    assert done == ["times matched to the field's 9 (nearest within half its step; 1 without one)"]
    v = on.values
    assert np.isnan(v[4]).all() and np.isfinite(v[[0, 1, 2, 3]]).all()
    np.testing.assert_array_equal(v[5], c2.values[4])  # noleap's 1 March is the field's 1 March


@pytest.fixture(scope="module")
def periods(tmp_path_factory):
    """dec.nc (days 1-16) and today.nc (17-24) of a small synthetic cube with sst_mw; mw_today.nc:
    today's covariate alone, 2x coarser and at 06:00 (another product, today's days only)."""
    from oceandl.datasets.sst import synthetic_sst

    folder = tmp_path_factory.mktemp("audit99")
    ds = synthetic_sst(n_time=24, ny=16, nx=16, seed=0, microwave=True)[["sst", "sst_mw"]]
    ds.isel(time=slice(0, 16)).to_netcdf(folder / "dec.nc")
    today = ds.isel(time=slice(16, 24))
    today.to_netcdf(folder / "today.nc")
    mw = today["sst_mw"].coarsen(lat=2, lon=2, boundary="trim").mean()
    mw.assign_coords(time=mw.time + np.timedelta64(6, "h")).to_dataset().to_netcdf(folder / "mw_today.nc")
    nan = today.copy()
    nan["sst_mw"] = today["sst_mw"] * np.nan
    nan.to_netcdf(folder / "today_nan.nc")
    return folder


def test_fit_on_with_a_file_var_covariate_of_inputs_days_only_says_which_field(periods, tmp_path):
    """--fit-on dec.nc --aux FILE:VAR: the covariate is put on dec.nc's days too; one of today's days
    only was refused with 'none of its time steps is within half a step of the field's (<dec.nc's
    dates>)', naming neither --fit-on nor why INPUT's covariate was matched to those dates."""
    from click.testing import CliRunner
    from fakes import assert_cli_error

    from oceandl.cli.main import cli

    f, out = periods, tmp_path / "o.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(f / "today.nc"), "--var", "sst", "--method", "dineof",
                                   "--fit-on", str(f / "dec.nc"), "--aux", f"{f / 'mw_today.nc'}:sst_mw",
                                   "--set", "n_modes=2", "--quiet", "-o", str(out)])
    assert_cli_error(res, 2, "none of its time steps is within half a step", "--fit-on", "dec.nc",
                     "read for the fitted period too")
    assert not out.exists()


def test_a_saved_fits_covariate_all_missing_on_inputs_days_is_not_said_absent(periods, tmp_path):
    """A saved multivariate fit, INPUT's sst_mw all NaN: the refusal told to 'give a file that has
    it', INPUT having it."""
    from click.testing import CliRunner
    from fakes import assert_cli_error

    from oceandl.cli.main import cli

    f, out = periods, tmp_path / "o.nc"
    run = CliRunner().invoke
    res = run(cli, ["train", "interpolator", str(f / "dec.nc"), "--var", "sst", "--method", "dineof", "--aux",
                    "sst_mw", "--set", "n_modes=2", "--quiet", "-o", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["interpolate", str(f / "today_nan.nc"), "--var", "sst", "--fit-on", str(tmp_path / "fit"),
                    "--quiet", "-o", str(out)])
    line = assert_cli_error(res, 2, "all values are missing", "give its values on INPUT's days")
    assert "give a file that has it" not in line and not out.exists()
