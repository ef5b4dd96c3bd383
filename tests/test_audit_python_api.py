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


def _global_field(seed=0):
    rng = np.random.default_rng(seed)
    lon, lat = np.arange(0, 360, 30.0), np.arange(-60, 61, 30.0)
    f = xr.DataArray(rng.standard_normal((10, lat.size, lon.size)), dims=("time", "lat", "lon"), name="sst",
                     coords={"lat": ("lat", lat, {"units": "degrees_north"}),
                             "lon": ("lon", lon, {"units": "degrees_east"})})
    return f, f.assign_coords(lon=("lon", (lon + 180) % 360 - 180, f.lon.attrs)).sortby("lon")


def test_eof_weights_and_project_take_the_other_longitude_convention():
    """Area weights read from a grid file in 0..360 for a field open_field put in -180..180 (and a
    map projected from a product in the other convention) were refused: "the weights' coordinate
    'lon' differs from the field's". They are matched by value, as a mask or a covariate is."""
    from oceandl.interp.eof import eof

    f360, f180 = _global_field()
    w = np.cos(np.deg2rad(f360.lat)) * xr.DataArray(np.linspace(1, 2, 12), dims="lon", coords={"lon": f360.lon})
    ref = eof(f360, 3, weights=w)
    got = eof(f180, 3, weights=w)
    np.testing.assert_allclose(got.eigenvalues.values, ref.eigenvalues.values, rtol=1e-12)  # 14.53, ...
    # pixel by pixel: the first EOF at lon -150 is the reference's at 210
    np.testing.assert_allclose(got.eofs.sel(lon=-150.0).values, ref.eofs.sel(lon=210.0).values, atol=1e-12)
    np.testing.assert_allclose(ref.project(f180).values, ref.pcs.values, atol=1e-10)
    np.testing.assert_allclose(got.project(f360.isel(time=4)).values, got.pcs.isel(time=4).values, atol=1e-10)


def _gappy(nt=24, ny=8, nx=9, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(nt)
    truth = (15 + np.sin(2 * np.pi * t / 12)[:, None, None] * np.linspace(1, 2, nx)[None, None]
             + np.linspace(0, 3, ny)[None, :, None] + 0.05 * rng.standard_normal((nt, ny, nx)))
    gap = rng.random(truth.shape) < 0.3
    return xr.DataArray(np.where(gap, np.nan, truth), dims=("time", "lat", "lon"), name="sst",
                        coords={"time": np.datetime64("2020-01-01") + t.astype("timedelta64[D]"),
                                "lat": np.linspace(30, 40, ny), "lon": np.linspace(-20, -4, nx)},
                        attrs={"units": "degC"})


@pytest.mark.parametrize("method", ["dineof", "eof", "climatology"])
def test_fit_and_transform_take_a_depth_level_and_one_days_map(method):
    """README's ``DINEOF().fit(past["sst"])`` / ``.transform(new["sst"])`` refused a (time, depth=1,
    lat, lon) variable ('expected 3 dims') that interpolate() and eof() read, and one day's map
    (``new.sel(time=day)``, "today's image") had to be expanded by hand; interpolate(day, fit_on=...)
    gives the map back as a map, its time a scalar coordinate."""
    from oceandl.interp import get_method

    da = _gappy()
    past, new = da.isel(time=slice(0, 16)), da.isel(time=slice(16, None))
    opts = {"n_modes": 2} if method == "dineof" else {}
    ref_model = get_method(method)(**opts).fit(past)
    ref = ref_model.transform(new)["sst"]
    model = get_method(method)(**opts).fit(past.expand_dims(depth=[0.5], axis=1))
    np.testing.assert_allclose(model.reconstruct()["sst"].values, ref_model.reconstruct()["sst"].values, atol=1e-6)
    got = model.transform(new.expand_dims(depth=[0.5], axis=1))["sst"]
    assert got.dims == ("time", "lat", "lon") and float(got["depth"]) == 0.5  # kept as a scalar coordinate
    np.testing.assert_allclose(got.values, ref.values, atol=1e-6)
    day = new.isel(time=3)  # a 2-D map with its date as a scalar coordinate
    one = ref_model.transform(day)["sst"]
    assert one.dims == ("time", "lat", "lon") and one["time"].values[0] == day["time"].values
    expect = ref_model.transform(new.isel(time=[3]))["sst"]
    np.testing.assert_allclose(one.values, expect.values, atol=1e-6)
    filled = interpolate(day, method, fit_on=past, **opts)
    assert filled.dims == ("lat", "lon") and filled["time"].values == day["time"].values
    np.testing.assert_allclose(filled.values, expect.values[0], atol=1e-6)
    assert np.isfinite(filled.values).all() and filled.attrs["method"] == method


def test_eof_of_a_field_with_a_missing_day_names_the_day_and_the_remedy():
    """One all-NaN day (a satellite outage) makes every pixel 'missing at some times'; eof() said
    only "no pixel is observed at every time step". It names the day and how to drop it, and the
    analysis without it runs."""
    from oceandl.errors import InputError
    from oceandl.interp.eof import eof

    da = _gappy().fillna(15.0)
    da[5] = np.nan
    with pytest.warns(UserWarning, match="missing at some times only"), \
            pytest.raises(InputError, match=r"1 time step\(s\) have no value at all \(the first: 2020-01-06 "
                                            r"00:00:00\); drop them \(da.dropna\('time', how='all'\) in Python\)"):
        eof(da, 2)
    assert eof(da.dropna("time", how="all"), 2).pcs.sizes["time"] == 23


def test_withheld_mask_in_the_other_longitude_convention_is_matched_by_value():
    """A withheld mask (a cloud mask from another product) with longitudes in -180..180 for a field
    in 0..360 across the dateline was refused, with advice to pass .values: position by position,
    which for the sorted mask withholds pixels 180 degrees of columns away. Matched by value now."""
    da = _gappy().assign_coords(lon=("lon", np.linspace(170, 186, 9), {"units": "degrees_east"}))
    held = xr.zeros_like(da, dtype=bool)
    held[:, 3, 3] = held[:, 4, 7] = True  # lon 176 and 184 (-176)
    ref = interpolate(da, "climatology", withheld=held)
    other = held.assign_coords(lon=("lon", (da.lon.values + 180) % 360 - 180, da.lon.attrs))
    for w in (other, other.sortby("lon")):
        got = interpolate(da, "climatology", withheld=w)
        assert got.attrs["val_n"] == ref.attrs["val_n"] == int((held & da.notnull()).sum())
        assert got.attrs["val_rmse"] == ref.attrs["val_rmse"]
