"""Audit of how dims are read (audit112): ocean-model grid dim names, known alike to the files' reader
(open_field, the CLI) and to arrays given in Python (canonical_dims); a dim left to be time that says it
is something else, refused in Python as the CLI refuses it; the chunked DINEOF fill against the
in-memory one at pixels observed once."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import small_field

from oceandl.errors import InputError
from oceandl.interp import interpolate
from oceandl.interp.base import canonical_dims
from oceandl.io import open_field

NT, NY, NX = 6, 5, 7


def _field(seed: int = 0) -> xr.DataArray:
    """A (time, lat, lon) 6 x 5 x 7 field: a cycle in time, gradients in space, 30 % gaps, one land pixel."""
    return small_field(NT, NY, NX, seed=seed, coords=False)


# the grid dims of ocean models' outputs, (time, lat-role, lon-role), none with a coordinate
MODEL_DIMS = [("ocean_time", "eta_rho", "xi_rho"), ("ocean_time", "eta_u", "xi_u"), ("ocean_time", "eta_v", "xi_v"),
              ("ocean_time", "eta_psi", "xi_psi"), ("time_counter", "y", "x"), ("time", "nj", "ni"),
              ("T", "YC", "XC"), ("T", "YG", "XG")]


@pytest.mark.parametrize("names", MODEL_DIMS, ids=["-".join(n) for n in MODEL_DIMS])
def test_model_grid_dims_are_read_by_name_in_files_and_in_python(tmp_path, names):
    """ROMS' (ocean_time, eta_rho, xi_rho), a GHRSST L2 swath's (time, nj, ni), MITgcm's (T, YC, XC): read
    by position with a warning, and a time-last (eta_rho, xi_rho, ocean_time) array fitted along eta_rho
    as time. Known by name now, by open_field (a file) and canonical_dims (an array) alike, in any order."""
    da = _field()
    first = xr.DataArray(da.values, dims=names, name="sst")
    last = first.transpose(names[1], names[2], names[0])
    path = tmp_path / "model.nc"
    last.to_dataset().to_netcdf(path)  # time last in the file
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dims read by position")
        read = open_field(path)
        assert read.encoding["source_grid"].dims == dict(zip(("time", "lat", "lon"), names))
        np.testing.assert_array_equal(read.values, da.values)
        assert canonical_dims(last) == names
        assert canonical_dims(first.transpose(names[2], names[0], names[1])) == names
        ref = interpolate(first, "climatology")
        got = interpolate(last, "climatology")
    assert got.dims == last.dims
    np.testing.assert_array_equal(got.transpose(*names).values, ref.values)
    # each pixel's mean over the days it was seen: the fill along time, not along a grid axis
    seen = np.isfinite(da.values)
    gap = ~seen & seen.any(axis=0)
    mean = np.where(seen, da.values, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    np.testing.assert_allclose(ref.values[gap], np.broadcast_to(mean, da.shape)[gap], rtol=1e-12)


def test_model_dims_in_the_cli_without_a_warning(tmp_path):
    """`oceandl interpolate` on a ROMS-style file of dims (eta_rho, xi_rho, ocean_time) without coordinates:
    no 'read by position' line, the file written on the input's dims, the same fill as from Python."""
    from oceandl.cli.main import cli

    da = _field()
    names = ("eta_rho", "xi_rho", "ocean_time")
    last = xr.DataArray(da.transpose("lat", "lon", "time").values, dims=names, name="temp")
    src, out = tmp_path / "roms.nc", tmp_path / "filled.nc"
    last.to_dataset().to_netcdf(src)
    res = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(out), "--method", "climatology",
                                   "--withhold", "0"])
    assert res.exit_code == 0, res.output
    assert "read by position" not in res.stderr
    with xr.open_dataset(out) as f:
        assert f["temp"].dims == names
        np.testing.assert_allclose(f["temp"].values, interpolate(last, "climatology").values, rtol=1e-6)


def test_ambiguous_names_are_still_read_by_position():
    """eta and xi alone (ROMS' zeta, MITgcm's Eta are sea surface heights) and i, j are not taken by name."""
    da = _field()
    for names in (("t", "eta", "xi"), ("t", "j", "i")):
        with pytest.warns(UserWarning, match=f"dims read by position: {names[1]} as lat, {names[2]} as lon"):
            canonical_dims(xr.DataArray(da.values, dims=names, name="sst"), say=True)


# ----------------------------------------------------------------------------- (b) not time, in Python
def _not_time_arrays():
    v = _field().fillna(0.0).values[:3]
    lat, lon = np.linspace(40, 44, NY), np.linspace(-10, -4, NX)
    eofs = xr.DataArray(v, dims=("mode", "lat", "lon"), name="eofs",
                        coords={"mode": [1, 2, 3], "lat": lat, "lon": lon})
    levels = xr.DataArray(v, dims=("level_no", "lat", "lon"), name="temp",
                          coords={"level_no": ("level_no", [5.0, 10.0, 20.0], {"positive": "down"}),
                                  "lat": lat, "lon": lon})
    return [(eofs, "mode", "an EOF mode index"), (levels, "level_no", "a vertical axis")]


@pytest.mark.parametrize("case", range(2), ids=["eof-modes", "positive-down-levels"])
def test_a_dim_left_to_be_time_that_is_not_is_refused_in_python(case):
    """An `eof` output's (mode, lat, lon) given to interpolate() had its modes filled as days, silently,
    where `oceandl interpolate` refuses it. Refused now, with open_field's message (one function)."""
    from oceandl.interp.eof import eof

    da, dim, what = _not_time_arrays()[case]
    tail = (f"dim '{dim}' is {what}, not time; the field needs a time axis (if it is one, name it time, "
            f"or pass time='{dim}' to open_field)")
    with pytest.raises(InputError) as e:
        open_field(da)
    assert str(e.value) == f"DataArray '{da.name}': {tail}"
    for call in (lambda: interpolate(da, "climatology"), lambda: interpolate(da, "dineof", withhold=0.2),
                 lambda: eof(da, n_modes=1, weights=None), lambda: canonical_dims(da)):
        with pytest.raises(InputError) as e:
            call()
        assert str(e.value) == f"variable '{da.name}': {tail}"
    # named time by the caller, it is read as time, as open_field(time=dim) reads it
    filled = interpolate(da.rename({dim: "time"}), "climatology")
    assert filled.sizes["time"] == 3
    assert open_field(da, time=dim).sizes["time"] == 3


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=2"]], ids=["in-memory", "chunked"])
def test_the_cli_names_the_file_in_the_refusal(tmp_path, chunks):
    """The chunked path looked at the dims first (to chunk the file) and said the refusal without the file's
    name; both paths say it naming the file, exit 2, and write nothing."""
    from oceandl.cli.main import cli

    da, dim, what = _not_time_arrays()[0]
    src, out = tmp_path / "e.nc", tmp_path / "out.nc"
    da.to_dataset().to_netcdf(src)
    res = CliRunner().invoke(cli, ["interpolate", str(src), "--var", "eofs", "-o", str(out),
                                   "--method", "climatology", *chunks])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [f"Error: {src}: variable 'eofs': dim 'mode' is {what}, not time; "
                                               "the field needs a time axis (if it is one, name it time, or pass "
                                               "time='mode' to open_field)"]
    assert not out.exists()


def test_time_by_elimination_still_reads_other_names():
    """Only names (or coordinates) that say "not time" are refused: a (step, lat, lon) array is filled."""
    da = _field().rename(time="step")
    assert interpolate(da, "climatology").sizes["step"] == NT
    assert canonical_dims(da) == ("step", "lat", "lon")


# ----------------------------------------------------------------------------- (c) chunked vs in memory
@pytest.mark.parametrize("method, opts", [("dineof", {"n_modes": 2}), ("eof", {})])
def test_one_chunked_block_is_the_in_memory_fill_at_pixels_seen_once(tmp_path, method, opts):
    """A block's input is the anomaly from the record's per-pixel mean (the global mean at a pixel seen
    once); the block's fit centred it again, on the mean of its anomalies, which is not 0 at the pixels
    seen once (their anomalies' sum over all the observations): one block over the whole cube differed
    from the in-memory fill there (before: DINEOF 0.208 degC, eof 0.911, on this cube). The same now,
    to float rounding (measured: bit for bit)."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.interp.chunked import interpolate_chunked
    from oceandl.io import write_netcdf

    ds = synthetic_sst(n_time=24, ny=12, nx=12, cloud_cover=0.8, seed=1)
    src, out = tmp_path / "sst.nc", tmp_path / "c.nc"
    write_netcdf(ds[["sst"]], src)
    da = open_field(src, "sst")
    seen = np.isfinite(da.values)
    once = (seen.sum(axis=0) == 1)[None] & ~seen
    assert np.count_nonzero(once.any(axis=0)) >= 10  # pixels seen once: their gaps
    ref = interpolate(da, method, device="cpu", **opts).values
    interpolate_chunked(src, out, method, chunks="time=-1,lat=-1,lon=-1", device="cpu", **opts)
    with xr.open_dataset(out) as f:
        got = f["sst"].values
    np.testing.assert_allclose(got[once], ref[once], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
