"""Audit of three consistency gaps (audit115): a (time, lat, y) field without coordinates, read as
(time, lat, lon) by the files' reader and refused as an array; the EOF analysis's units check; and the
CLI's wording of the partial-covariate warning."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.interp import interpolate
from oceandl.interp.base import canonical_dims
from oceandl.io import open_field

NT, NY, NX = 6, 8, 10


def _field(seed: int = 0) -> xr.DataArray:
    """A (time, lat, lon) 6 x 8 x 10 SST-like field (degC) with 30 % gaps."""
    rng = np.random.default_rng(seed)
    t, y, x = np.ogrid[:NT, :NY, :NX]
    v = 15 + np.sin(t / 2.0) + 0.3 * y + 0.1 * x + 0.05 * rng.standard_normal((NT, NY, NX))
    v[rng.random(v.shape) < 0.3] = np.nan
    return xr.DataArray(v, dims=("time", "lat", "lon"), name="sst",
                        coords={"time": pd.date_range("2020-01-01", periods=NT),
                                "lat": ("lat", np.linspace(40, 47, NY), {"units": "degrees_north"}),
                                "lon": ("lon", np.linspace(-10, -1, NX), {"units": "degrees_east"})})


# ----------------------------------------------------------------------------- 1. (time, lat, y)
_CLASH = "dims ['lat', 'y'] are all read as lat by their names, and 'y' is left to be lon"


@pytest.mark.parametrize("chunks", [False, True])
def test_two_latitude_names_are_refused_by_the_cli_and_in_python_alike(tmp_path, chunks):
    """(time, lat, y) without coordinates: the in-memory CLI (open_field) read y as lon by position,
    silently, while canonical_dims (Python, --chunks) refused it. Both refuse it now, one message."""
    bare = xr.DataArray(_field().values, dims=("time", "lat", "y"), name="sst")
    src, out = tmp_path / "clash.nc", tmp_path / "filled.nc"
    bare.to_dataset().to_netcdf(src)
    args = ["interpolate", str(src), "-o", str(out), "--method", "climatology", "--quiet"]
    res = CliRunner().invoke(cli, args + (["--chunks", "time=-1,lat=4,lon=-1"] if chunks else []))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert f"{src}: variable 'sst': {_CLASH}; rename it lon if it is one" in res.stderr
    assert not out.exists()
    with pytest.raises(InputError, match=_CLASH.replace("[", r"\[").replace("]", r"\]")):
        interpolate(bare, "climatology")
    with pytest.raises(InputError, match=_CLASH.replace("[", r"\[").replace("]", r"\]")):
        open_field(bare)


def test_a_coordinate_tells_two_latitude_names_apart_in_both_readers():
    """y with a degrees_east coordinate is the longitude: open_field read it so, canonical_dims refused
    the array (names went before coordinates there). Coordinates go first in both now."""
    da = _field()
    named = xr.DataArray(da.values, dims=("time", "lat", "y"), name="sst",
                         coords={"lat": da.lat.values, "y": ("y", da.lon.values, {"units": "degrees_east"})})
    assert canonical_dims(named) == ("time", "lat", "y")
    read = open_field(named)
    np.testing.assert_array_equal(read.values, da.values)
    np.testing.assert_array_equal(read.lon.values, da.lon.values)
    got = interpolate(named, "climatology")
    ref = interpolate(da, "climatology")
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-12)
