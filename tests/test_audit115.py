"""Audit of three consistency gaps (audit115): a (time, lat, y) field without coordinates, read as
(time, lat, lon) by the files' reader and refused as an array; the EOF analysis's units check; and the
CLI's wording of the partial-covariate warning."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import small_field

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.interp import interpolate
from oceandl.interp.base import canonical_dims
from oceandl.io import open_field

NT, NY, NX = 6, 8, 10


def _field(seed: int = 0) -> xr.DataArray:
    """A (time, lat, lon) 6 x 8 x 10 SST-like field (degC) with 30 % gaps."""
    return small_field(NT, NY, NX, seed=seed, land=False)


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


# ----------------------------------------------------------------------------- 2. the EOF analysis's units
def _complete(units: str | None, offset: float = 0.0, name: str = "sst") -> xr.DataArray:
    da = _field().fillna(15.0) + offset
    da.name = name
    if units is not None:
        da.attrs["units"] = units
    return da


def test_the_eof_analysis_refuses_values_that_contradict_their_units(tmp_path):
    """oceandl.eof() / `oceandl eof` do not go through Interpolator.fit: a kelvin field said to be in degC
    was analysed, its EOFs labelled degC (squared). Refused now as interpolate() refuses it."""
    import oceandl

    with pytest.raises(InputError, match=r"variable 'sst': its units say 'degC' but its values look like kelvin "
                                         r"\(median 2\d\d\.\d"):
        oceandl.eof(_complete("degC", 273.15), n_modes=2)
    with pytest.raises(InputError, match="its units say 'K' but its values look like degC"):
        oceandl.eof(_complete("K"), n_modes=2)
    src, out = tmp_path / "k.nc", tmp_path / "eofs.nc"
    _complete("degC", 273.15).to_dataset().to_netcdf(src)
    res = CliRunner().invoke(cli, ["eof", str(src), "-n", "2", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(f"Error: {src}: variable 'sst': its units say 'degC' but its values look like kelvin")
    assert "Traceback" not in res.output and not out.exists()


def test_the_eof_analysis_takes_departures_and_fields_without_units():
    """What the check leaves alone: a field as its units say, an anomaly in kelvin (named so), no units."""
    import oceandl

    ref = oceandl.eof(_complete("degC"), n_modes=2).eigenvalues.values
    np.testing.assert_allclose(oceandl.eof(_complete("K", 273.15), n_modes=2).eigenvalues.values, ref, rtol=1e-9)
    anom = _complete("K", -15.0, name="sst_anom")
    np.testing.assert_allclose(oceandl.eof(anom, n_modes=2).eigenvalues.values, ref, rtol=1e-9)
    np.testing.assert_allclose(oceandl.eof(_complete(None), n_modes=2).eigenvalues.values, ref, rtol=1e-9)


def test_the_eofs_package_example_is_still_analysed(tmp_path):
    """eofs' sst_ndjfm_anom.nc (no units attribute) goes through `oceandl eof` as before."""
    eofs = pytest.importorskip("eofs")
    from pathlib import Path

    src = Path(eofs.__file__).parent / "examples" / "example_data" / "sst_ndjfm_anom.nc"
    if not src.exists():
        pytest.skip("eofs example data not installed")
    with xr.open_dataset(src) as f:
        assert "units" not in f["sst"].attrs
    out = tmp_path / "eofs.nc"
    res = CliRunner().invoke(cli, ["eof", str(src), "--var", "sst", "-n", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as f:
        assert f["eofs"].sizes["mode"] == 3
