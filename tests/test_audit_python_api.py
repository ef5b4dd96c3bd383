"""Audit of the Python API on xarray objects as a notebook user calls it (audit103)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from oceandl.interp import interpolate


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_climatology_of_an_exact_seasonal_cycle_is_not_a_linalg_error(calendar):
    """A field that a cycle of one harmonic fits to rounding (a synthetic or model SST on a cftime
    calendar, its year exactly the cycle's period) crashed the shrinkage of the harmonics with a
    bare ``LinAlgError: Singular matrix``: its residual variance was 0. It is filled exactly now."""
    pytest.importorskip("cftime")
    rng = np.random.default_rng(1)
    time = xr.date_range("2001-01-01", periods=2 * 365, freq="D", calendar=calendar, use_cftime=True)
    days = 360 if calendar == "360_day" else 365
    frac = np.array([t.dayofyr - 1 for t in time]) / days
    amp = rng.uniform(1, 3, (6, 7))
    truth = 20 + amp[None] * np.cos(2 * np.pi * frac)[:, None, None]
    gap = rng.random(truth.shape) < 0.5
    da = xr.DataArray(np.where(gap, np.nan, truth), dims=("time", "lat", "lon"), name="sst",
                      coords={"time": time, "lat": np.arange(6.0), "lon": np.arange(7.0)})
    out = interpolate(da, "climatology", harmonics=1)
    assert out.attrs["harmonics"] == 1
    assert float(np.abs(out.values[gap] - truth[gap]).max()) < 1e-6  # measured 2e-7
