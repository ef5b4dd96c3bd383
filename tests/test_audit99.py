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
