"""The day files of ``oceandl interpolate FILES... --chunks ... -o FOLDER/`` take no needless bytes:
their time axis is one chunk of their own steps, not netCDF-C's default of 1024 steps (4 KB of a
one-day file, 6 % of a filled 128 x 128 day), with the values, attributes and time encoding of the
series file unchanged."""
from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import write_l3_days

from oceandl.cli.main import cli
from oceandl.io import write_netcdf

VAR = "sea_surface_temperature"
NT = 4


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """The same chunked fill of NT day files written as one series file and as a file per day."""
    root = tmp_path_factory.mktemp("a130")
    write_l3_days(root / "days", nt=NT, ny=10, nx=12)
    ins = [str(p) for p in sorted((root / "days").iterdir())]
    for out in (str(root / "series.nc"), f"{root / 'out'}/"):
        res = CliRunner().invoke(cli, ["interpolate", *ins, "--var", VAR, "--method", "climatology",
                                       "--chunks", "time=2", "-o", out])
        assert res.exit_code == 0, res.output
    return root


def test_day_files_time_axis_is_one_small_chunk(filled):
    files = sorted((filled / "out").iterdir())
    assert [p.name for p in files] == sorted(p.name for p in (filled / "days").iterdir())
    # the day files' bytes beyond the series': each file's netCDF-4/HDF5 header (its attributes,
    # each variable's chunk index), 22.5 KB a day on 10 x 12 (26.6 KB with the time's 4 KB chunk)
    series = (filled / "series.nc").stat().st_size
    extra = sum(p.stat().st_size for p in files) - series
    assert extra < NT * 24_000, (extra, series)
    for p in files:
        with netCDF4.Dataset(p) as nc:
            assert nc.dimensions["time"].isunlimited()  # the record dim kept (ncrcat)
            assert nc["time"].chunking() == [1], p.name  # was [1024]: 4 KB of int32 per file
            assert nc[VAR].chunking() == [1, 10, 12] and nc[VAR].filters()["complevel"] == 4
            assert nc["missing_flag"].filters()["zlib"] and nc[VAR].filters()["shuffle"]


def test_day_files_values_attributes_and_time_encoding_unchanged(filled):
    with xr.open_dataset(filled / "series.nc") as one, netCDF4.Dataset(filled / "series.nc") as raw:
        for k, p in enumerate(sorted((filled / "out").iterdir())):
            with xr.open_dataset(p) as f, netCDF4.Dataset(p) as nc:
                for v in (VAR, "missing_flag"):
                    np.testing.assert_array_equal(f[v].values[0], one[v].values[k])
                    assert f[v].attrs.keys() == one[v].attrs.keys(), v
                    for a, val in one[v].attrs.items():
                        if a == "history":  # its time stamp is the run's
                            assert f[v].attrs[a].split(" ", 1)[1] == val.split(" ", 1)[1]
                            continue
                        assert np.array_equal(f[v].attrs[a], val), (v, a)
                assert f["time"].values[0] == one["time"].values[k]
                # the time as the series stores it: its units, calendar and type (an encoding= entry
                # for time would have replaced them)
                for a in ("units", "calendar"):
                    assert nc["time"].getncattr(a) == raw["time"].getncattr(a)
                assert nc["time"].dtype == raw["time"].dtype == np.int32
                assert f.attrs["method"] == one.attrs["method"] == "climatology"


def test_write_netcdf_chunks_the_time_axis_whole_and_leaves_the_input_alone(tmp_path):
    t = np.datetime64("2020-01-01") + np.arange(5).astype("timedelta64[D]")
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), np.ones((5, 3, 4), np.float32))},
                    coords={"time": t, "lat": np.arange(3.0), "lon": np.arange(4.0)})
    ds["time"].encoding = {"units": "days since 2000-01-01", "dtype": "int32"}
    write_netcdf(ds, tmp_path / "a.nc")
    with netCDF4.Dataset(tmp_path / "a.nc") as nc:
        assert nc["time"].chunking() == [5] and nc["time"].units == "days since 2000-01-01"
        assert nc["time"].dtype == np.int32 and nc["lat"].chunking() == "contiguous"
    assert ds["time"].encoding == {"units": "days since 2000-01-01", "dtype": "int32"}  # a copy was changed
    write_netcdf(ds.isel(time=slice(0, 0)), tmp_path / "empty.nc")  # no time step: no chunk size to give
    with xr.open_dataset(tmp_path / "empty.nc") as e:
        assert e.sizes["time"] == 0
