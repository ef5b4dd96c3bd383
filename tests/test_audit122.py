"""Audit 122: defects found trying `oceandl eof`, `synth`, `info`, `train classifier` and `classify`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oceandl.interp.eof import eof


def _cube(nt: int = 6, ny: int = 4, nx: int = 5, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    return xr.DataArray(rng.normal(size=(nt, ny, nx)), dims=("time", "lat", "lon"),
                        coords={"time": pd.date_range("2020-01-01", periods=nt),
                                "lat": np.linspace(-10, 10, ny), "lon": np.linspace(0, 20, nx)},
                        name="sst", attrs={"units": "degC"})


def test_a_centred_analysis_keeps_no_null_mode():
    """-n 100 on 50 time steps kept 50 modes: the 50th, past the rank n_time - 1 of the centred
    field, had an eigenvalue of 1e-29 and a standardized PC of a constant 0.99 (pcs / sqrt(~0)),
    written to the file as an index. A centred field now gives at most n_time - 1 modes."""
    da = _cube(nt=6)
    with pytest.warns(UserWarning, match=r"give at most 5; keeping 5"):
        res = eof(da, n_modes=50)
    assert res.n_modes == 5
    assert res.eigenvalues.values.min() > 1e-6 * res.eigenvalues.values.max()
    np.testing.assert_allclose(res.variance_fraction.values.sum(), 1.0, rtol=1e-12)
    std = res.standardized_pcs().values
    np.testing.assert_allclose(std.std(axis=0, ddof=1), 1.0, rtol=1e-9)
    # without centring the rank is n_time: all 6 modes carry variance
    with pytest.warns(UserWarning, match=r"give at most 6"):
        raw = eof(da, n_modes=50, center=False)
    assert raw.n_modes == 6 and raw.eigenvalues.values.min() > 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert eof(da, n_modes=5).n_modes == 5  # exactly the rank: no warning


def test_info_on_a_file_that_is_not_netcdf_says_so_as_eof_does(tmp_path, capsys):
    """`oceandl info junk.nc` said "cannot read it as netCDF (ValueError: did not find a match in
    any of xarray's currently installed IO backends ['netcdf4', 'scipy']. Con...)", where `oceandl
    eof junk.nc` says the file has no netCDF signature and shows its first bytes."""
    from oceandl.cli.main import main

    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"garbage" * 10)
    assert main(["info", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no netCDF-3 or netCDF-4/HDF5 signature; it starts with b'garbageg'" in err
    assert "IO backends" not in err
