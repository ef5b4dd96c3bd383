"""Audit of the Python API's interpolation side against the CLI (audit109): dims read by position,
what ``withhold=`` records, and what becomes of a packed input's encoding."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import small_field

from oceandl.errors import InputError
from oceandl.interp import interpolate
from oceandl.io import open_field

NT, NY, NX = 6, 8, 10


def _field(seed: int = 0) -> xr.DataArray:
    """A (time, lat, lon) 6 x 8 x 10 field with a cycle in time, gradients in space, 30 % gaps and land."""
    return small_field(NT, NY, NX, seed=seed)


def _bare(da: xr.DataArray, names) -> xr.DataArray:
    """``da``'s values under dims ``names`` (its dims, in order), without any coordinate."""
    return xr.DataArray(da.values, dims=names, name=da.name)


def _position_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "dims read by position" in str(w.message)]


# ----------------------------------------------------------------------------- 1. dims read by position
def test_dims_read_by_position_are_said_once_naming_the_reading():
    """A (row, col, step) array built in Python (time last, names oceandl does not know, no
    coordinates) was read by position as (time, lat, lon), silently: fitted along its rows as time.
    It is still read so (the documented rule), but said once per field, naming the reading."""
    from oceandl.interp.eof import eof

    da = _field()
    last = _bare(da.transpose("lat", "lon", "time"), ("row", "col", "step"))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        interpolate(last, "climatology", withhold=0.1)  # its dims looked at twice: said once
    said = _position_warnings(rec)
    assert said == ["variable 'sst': dims read by position: row as time, col as lat, step as lon; rename "
                    "them (time, lat, lon) or give them coordinates (dates, CF axis or units) to say otherwise"]
    assert rec[[str(w.message) for w in rec].index(said[0])].filename == __file__  # the caller's line
    # two left to the order: one found by name (t), the two others by position
    with pytest.warns(UserWarning, match=r"dims read by position: eta as lat, xi as lon;"):
        interpolate(_bare(da.transpose("lat", "lon", "time"), ("eta", "xi", "t")), "climatology")
    with pytest.warns(UserWarning, match="dims read by position: step as time, row as lat"):
        eof(_bare(da.fillna(0.0), ("step", "row", "col")), n_modes=2, weights=None)


def test_arrays_whose_dims_say_their_roles_are_read_without_a_warning():
    """No warning where nothing was read by position, or where the order is the documented one of a bare
    array (dim_0, dim_1, dim_2), or one dim is left for one role (by elimination)."""
    da = _field()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dims read by position")
        ref = interpolate(da, "climatology")
        np.testing.assert_array_equal(interpolate(xr.DataArray(da.values), "climatology").values, ref.values)
        interpolate(da.values, "climatology")  # a NumPy array: labelled (time, lat, lon)
        interpolate(da.rename(time="step"), "climatology")  # one left over: time, by elimination
        interpolate(da.transpose("lon", "time", "lat"), "climatology")  # by name, in any order


def test_a_roms_array_is_placed_by_its_2d_coordinates():
    """A model's array of dims named nothing oceandl knows, (step, eta, xi), with lat_rho(eta, xi) and
    lon_rho beside it as in a ROMS file: open_field places its dims by them. interpolate() did not look
    at them: the array in (eta, xi, step) order was filled along eta as time. It is placed by them now,
    and filled as the same field time-first, without a warning. (ROMS' own eta_rho, xi_rho are known
    by name since audit112.)"""
    da = _field()
    lat2, lon2 = np.meshgrid(da.lat.values, da.lon.values, indexing="ij")
    roms = _bare(da, ("step", "eta", "xi")).assign_coords(
        step=da.time.values,
        lat_rho=(("eta", "xi"), lat2, {"units": "degree_north"}),
        lon_rho=(("eta", "xi"), lon2, {"units": "degree_east"}))
    ref = interpolate(roms, "climatology")
    last = roms.drop_vars("step").transpose("eta", "xi", "step")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dims read by position")
        got = interpolate(last, "climatology")
    assert got.dims == last.dims
    np.testing.assert_array_equal(got.transpose(*ref.dims).values, ref.values)


def test_open_field_and_the_cli_read_by_position_and_say_it(tmp_path):
    """open_field (what `oceandl interpolate` reads a file with) refused dims it could not tell apart
    ('cannot tell which of the dims ... is time / lat / lon'), where interpolate() read the same array
    by position: the two read it alike now, and both say it (the CLI as a warning line)."""
    from oceandl.cli.main import cli

    da = _field()
    bare = _bare(da, ("step", "row", "col"))
    with pytest.warns(UserWarning, match="dims read by position: step as time, row as lat, col as lon"):
        read = open_field(bare)
    np.testing.assert_array_equal(read.values, da.values)
    src, out = tmp_path / "model.nc", tmp_path / "filled.nc"
    bare.to_dataset().to_netcdf(src)
    res = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(out), "--method", "climatology", "--quiet"])
    assert res.exit_code == 0, res.output
    said = [line for line in res.stderr.splitlines() if "dims read by position" in line]
    assert said == [f"warning: {src}: variable 'sst': dims read by position: step as time, row as lat, "
                    "col as lon; rename them (time, lat, lon) or give them coordinates (dates, CF axis or units) "
                    "to say otherwise"]
    with pytest.warns(UserWarning, match="dims read by position"):
        py = interpolate(bare, "climatology", withhold=0.1)  # the CLI's default withholding, its seed
    seen = np.isfinite(da.values)
    with xr.open_dataset(out) as f:
        assert f["sst"].dims == ("step", "row", "col")
        np.testing.assert_array_equal(f["sst"].values[seen], da.values[seen])  # every observation, as given
        np.testing.assert_allclose(f["sst"].values[~seen], py.values[~seen], rtol=1e-12)  # the same fill
    # a dim left to be time that says it is something else is refused, as when it was the only one left
    levels = _bare(da, ("depth", "eta", "xi"))
    with pytest.raises(InputError, match="dim 'depth' is a vertical axis, not time"):
        open_field(levels)


# ----------------------------------------------------------------------------- 2. withhold= is recorded
def test_withhold_is_recorded_in_the_attrs_as_the_cli_writes_it(tmp_path):
    """interpolate(withhold=0.1) wrote the scores (val_*) but not what they were scored on: the fraction,
    the seed and the draw were in no attribute, from Python or in the CLI's file (whose history holds
    the command line, without the default --withhold 0.1). Both record them now, alike."""
    from oceandl.cli.main import cli

    da = _field()
    ds = interpolate(da, "climatology", withhold=0.2, seed=3, return_dataset=True)
    held = int((ds["missing_flag"] == 2).sum())
    want = {"val_withhold": 0.2, "val_withheld_fraction": held / int(np.isfinite(da.values).sum()),
            "val_withhold_method": "cloud-mask transfer", "val_withhold_seed": 3}
    assert held > 0
    for attrs in (ds["sst"].attrs, ds.attrs, interpolate(da, "climatology", withhold=0.2, seed=3).attrs):
        assert {k: attrs[k] for k in want} == pytest.approx(want)
    assert want["val_withheld_fraction"] >= 0.2  # whole cloud patterns: at least the share asked
    assert not any(k.startswith("val_") for k in interpolate(da, "climatology").attrs)  # nothing withheld
    # the CLI's file: the same pixels, scores and records for the same seed
    src, out = tmp_path / "sst.nc", tmp_path / "filled.nc"
    da.to_dataset().to_netcdf(src)
    res = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(out), "--method", "climatology",
                                   "--withhold", "0.2", "--seed", "3", "--quiet"])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as f:
        for attrs in (f["sst"].attrs, f.attrs):
            assert {k: attrs[k] for k in want} == pytest.approx(want)
        assert f["sst"].attrs["val_rmse"] == pytest.approx(ds["sst"].attrs["val_rmse"], rel=1e-12)


# ----------------------------------------------------------------------------- 3. a packed input's encoding
def test_a_packed_input_is_filled_to_floats_as_the_cli_writes_it(tmp_path):
    """A GHRSST-style packed input (int16, scale_factor, add_offset, _FillValue, chunked) opened with
    xarray: `oceandl interpolate` writes the fill as floats (its packing not kept: a filled value may
    lie outside the packed range, which xarray wraps on writing), and the Python result mirrors it:
    none of the input's encoding (packing, chunksizes, source, original_shape) is carried, and
    ``to_netcdf`` writes the dtype the CLI writes. (A test of the rule as it stands: no change.)"""
    import netCDF4

    from oceandl.cli.main import cli

    src = tmp_path / "packed.nc"
    _field().to_dataset().to_netcdf(src, encoding={"sst": {
        "dtype": "int16", "scale_factor": np.float32(0.01), "add_offset": np.float32(20.0),
        "_FillValue": np.int16(-32768), "zlib": True, "chunksizes": (1, NY, NX)}})
    res = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(tmp_path / "cli.nc"), "--method", "climatology",
                                   "--withhold", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(src) as ds:
        da = ds["sst"].load()
        assert da.encoding["dtype"] == np.int16 and "scale_factor" in da.encoding  # packed, as read
        results = [interpolate(da, "climatology"), da.oceandl.interpolate("climatology"),
                   ds.oceandl.interpolate("climatology"),
                   interpolate(da, "climatology", return_dataset=True)["sst"]]
    for k, out in enumerate(results):
        assert out.dtype == np.float32  # the decoded input's precision
        assert not set(out.encoding) & {"dtype", "scale_factor", "add_offset", "_FillValue", "missing_value",
                                        "source"}, out.encoding
        # the compression and day chunks the CLI writes (audit 120), not the input's
        assert out.encoding["chunksizes"] == (1, NY, NX) and out.encoding["original_shape"] == out.shape
        np.testing.assert_array_equal(out.values[np.isfinite(da.values)], da.values[np.isfinite(da.values)])
        out.to_netcdf(tmp_path / f"py{k}.nc")
    with netCDF4.Dataset(tmp_path / "cli.nc") as f_cli, netCDF4.Dataset(tmp_path / "py0.nc") as f_py:
        assert f_cli["sst"].dtype == f_py["sst"].dtype == np.float32
        assert not {"scale_factor", "add_offset"} & set(f_cli["sst"].ncattrs())
        f_cli.set_auto_mask(False)
        np.testing.assert_array_equal(f_cli["sst"][:], results[0].values)
