"""Synthetic SST cube, cloud masks and cloud-transfer withholding."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from oceandl.datasets import cloud_masks, synthetic_sst, withhold_by_cloud_transfer
from oceandl.errors import InputError


@pytest.fixture(scope="module")
def cube() -> xr.Dataset:
    return synthetic_sst(n_time=8, ny=32, nx=32, seed=0)


@pytest.fixture(scope="module")
def year() -> xr.Dataset:
    return synthetic_sst(n_time=365, ny=32, nx=32, seed=1)


@pytest.fixture(scope="module")
def open_ocean() -> xr.Dataset:
    """No land, finer grid: for spectra and eddy scales."""
    return synthetic_sst(n_time=60, ny=64, nx=64, seed=2, land=False)


def _lag1(mask: np.ndarray, axis: int) -> float:
    """Lag-1 correlation of a 0/1 array along ``axis``."""
    f = mask.astype(float)
    n = f.shape[axis]
    a, b = np.take(f, range(1, n), axis=axis), np.take(f, range(n - 1), axis=axis)
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _anomaly(ds: xr.Dataset) -> np.ndarray:
    """sst_true minus its time mean and minus each row's zonal mean: eddies and meanders."""
    a = (ds.sst_true - ds.sst_true.mean("time")).values
    return a - np.nanmean(a, axis=2, keepdims=True)


# ------------------------------------------------------------------------------------------------
# synthetic_sst: structure
# ------------------------------------------------------------------------------------------------


def test_same_seed_same_arrays_other_seed_differs(cube):
    again = synthetic_sst(n_time=8, ny=32, nx=32, seed=0)
    for name in ("sst", "sst_true", "cloud", "land"):
        np.testing.assert_array_equal(cube[name].values, again[name].values)
    other = synthetic_sst(n_time=8, ny=32, nx=32, seed=1)
    assert not np.array_equal(cube.cloud.values, other.cloud.values)
    assert not np.array_equal(cube.land.values, other.land.values)
    diff = np.abs(cube.sst_true.values - other.sst_true.values)
    assert np.nanmean(diff) > 0.1


def test_shapes_dims_dtypes(cube):
    assert dict(cube.sizes) == {"time": 8, "lat": 32, "lon": 32}
    for name in ("sst", "sst_true", "cloud"):
        assert cube[name].dims == ("time", "lat", "lon")
    assert cube.land.dims == ("lat", "lon")
    assert cube.sst.dtype == np.float32 and cube.sst_true.dtype == np.float32
    assert cube.cloud.dtype == np.int8 and cube.land.dtype == np.int8
    assert np.all(np.diff(cube.lat) > 0) and np.all(np.diff(cube.lon) > 0)
    assert 25.0 < float(cube.lat[0]) < float(cube.lat[-1]) < 45.0
    assert -70.0 < float(cube.lon[0]) < float(cube.lon[-1]) < -50.0
    assert str(cube.time.values[0])[:10] == "2020-01-01"
    assert (np.diff(cube.time.values) == np.timedelta64(1, "D")).all()


def test_cf_attributes(cube):
    for name in ("sst", "sst_true"):
        assert cube[name].attrs["standard_name"] == "sea_surface_temperature"
        assert cube[name].attrs["units"] == "degree_Celsius"
        assert cube[name].attrs["long_name"]
    # a filled copy keeps the long_name: it must not say the field has gaps (that is in summary), nor
    # that it is observed ("observed sea surface temperature" named fields that were mostly estimates)
    assert "NaN" not in cube.sst.attrs["long_name"] and "NaN under cloud" in cube.attrs["summary"]
    assert "observed" not in cube.sst.attrs["long_name"]
    assert cube.lat.attrs["units"] == "degrees_north" and cube.lat.attrs["axis"] == "Y"
    assert cube.lon.attrs["units"] == "degrees_east" and cube.lon.attrs["axis"] == "X"
    assert cube.time.attrs["axis"] == "T"
    assert cube.attrs["source"] == "oceandl synthetic"
    assert cube.attrs["Conventions"] == "CF-1.8"
    assert cube.attrs["seed"] == 0 and cube.attrs["cloud_cover"] == 0.5
    assert cube.attrs["title"]


def test_gaps_are_exactly_cloud_and_land(cube):
    land = cube.land.values.astype(bool)
    cloud = cube.cloud.values.astype(bool)
    truth = cube.sst_true.values
    assert np.array_equal(np.isnan(truth), np.broadcast_to(land, truth.shape))
    assert np.array_equal(np.isnan(cube.sst.values), cloud | land)
    seen = ~np.isnan(cube.sst.values)
    np.testing.assert_array_equal(cube.sst.values[seen], truth[seen])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_land_fraction_and_west_coast(seed, size):
    land = synthetic_sst(n_time=1, ny=size, nx=size, seed=seed).land.values.astype(bool)
    assert 0.08 <= land.mean() <= 0.22
    quarter = size // 4
    assert land[:, :quarter].mean() > 3 * land[:, -quarter:].mean()  # the continent is west


def test_no_land_option():
    ds = synthetic_sst(n_time=2, ny=16, nx=16, land=False)
    assert int(ds.land.sum()) == 0
    assert not np.isnan(ds.sst_true.values).any()


@pytest.mark.parametrize("cover", [0.2, 0.5, 0.9])
def test_cube_cloud_cover_over_ocean(cover):
    ds = synthetic_sst(n_time=30, ny=32, nx=32, cloud_cover=cover, seed=4)
    ocean = ds.land.values == 0
    assert abs(ds.cloud.values[:, ocean].mean() - cover) < 0.03


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="cloud_cover"):
        synthetic_sst(n_time=2, ny=8, nx=8, cloud_cover=1.5)
    with pytest.raises(InputError, match="start"):
        synthetic_sst(n_time=2, ny=8, nx=8, start="not a date")
    with pytest.raises(InputError, match="lat_range"):
        synthetic_sst(n_time=2, ny=8, nx=8, lat_range=(45.0, 25.0))


# ------------------------------------------------------------------------------------------------
# synthetic_sst: physics
# ------------------------------------------------------------------------------------------------


def test_sst_range_and_meridional_gradient(year):
    truth = year.sst_true
    assert -1.8 <= float(truth.min()) and float(truth.max()) <= 32.0
    zonal = truth.mean(("time", "lon")).values
    assert 22.0 < zonal[0] < 28.0 and 7.0 < zonal[-1] < 14.0  # ~25 -> ~10 degC
    # Warm south, cold north: the mean decreases northward nearly everywhere.
    assert (np.diff(zonal) < 0).mean() > 0.9


def test_seasonal_cycle_peaks_late_summer_and_grows_poleward(year):
    monthly = year.sst_true.groupby("time.month").mean(("time", "lon"))
    basin = monthly.mean("lat").values
    assert int(np.argmax(basin)) + 1 in (7, 8, 9)
    assert int(np.argmin(basin)) + 1 in (1, 2, 3, 4)
    amplitude = (monthly.max("month") - monthly.min("month")).values  # per latitude
    assert 4.0 < amplitude.mean() < 12.0  # peak-to-trough of a 3-5 degC cycle
    assert amplitude[-4:].mean() > amplitude[:4].mean()


def test_eddies_have_mesoscale_size_and_amplitude(open_ocean):
    a = _anomaly(open_ocean)
    assert 0.4 < a.std() < 2.5  # degC
    # Zonal autocorrelation falls below 1/e at 30-250 km.
    dx_km = 111.32 * float(open_ocean.lon[1] - open_ocean.lon[0]) * np.cos(np.radians(35.0))
    for lag in range(1, a.shape[2] // 2):
        if np.corrcoef(a[:, :, lag:].ravel(), a[:, :, :-lag].ravel())[0, 1] < np.exp(-1):
            break
    assert 30.0 < lag * dx_km < 250.0


def test_anomaly_spectrum_is_steep(open_ocean):
    a = _anomaly(open_ocean)
    n = a.shape[2]
    power = (np.abs(np.fft.rfft(a * np.hanning(n), axis=2)) ** 2).mean(axis=(0, 1))
    k = np.arange(power.size)
    band = (k >= n // 8) & (k <= n // 2 - 2)
    slope = np.polyfit(np.log(k[band]), np.log(power[band]), 1)[0]
    assert -5.0 < slope < -2.0


def test_field_evolves_smoothly_day_to_day(open_ocean):
    a = _anomaly(open_ocean)
    r = np.corrcoef(a[1:].ravel(), a[:-1].ravel())[0, 1]
    assert 0.5 < r < 0.99  # moves and evolves, but is recognisably the same the next day


# ------------------------------------------------------------------------------------------------
# cloud_masks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cover", [0.2, 0.5, 0.9])
def test_cloud_cover_coherence_and_persistence(cover):
    m = cloud_masks(40, 64, 64, cover=cover, seed=3)
    assert m.dtype == bool and m.shape == (40, 64, 64)
    assert abs(m.mean() - cover) < 0.03
    assert _lag1(m, 2) > 0.8 and _lag1(m, 1) > 0.8  # coherent in space
    assert _lag1(m, 0) > 0.5  # persistent in time
    daily = m.mean(axis=(1, 2))
    assert daily.std() > 0.01  # covers vary from day to day
    assert 0.0 < daily.min() and daily.max() < 1.0


def test_cloud_masks_deterministic_and_persistence_matters():
    a = cloud_masks(20, 32, 32, seed=5)
    np.testing.assert_array_equal(a, cloud_masks(20, 32, 32, seed=5))
    assert not np.array_equal(a, cloud_masks(20, 32, 32, seed=6))
    assert _lag1(cloud_masks(40, 32, 32, seed=5, persistence_days=10.0), 0) > _lag1(
        cloud_masks(40, 32, 32, seed=5, persistence_days=0.5), 0
    ) + 0.3


def test_cloud_masks_bad_cover():
    with pytest.raises(InputError, match="cover"):
        cloud_masks(2, 8, 8, cover=0.0)


# ------------------------------------------------------------------------------------------------
# withhold_by_cloud_transfer
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gappy() -> xr.Dataset:
    return synthetic_sst(n_time=20, ny=32, nx=32, seed=7)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_withholding_fraction_subset_and_ocean_only(gappy, fraction):
    valid = np.isfinite(gappy.sst.values)
    w = withhold_by_cloud_transfer(valid, fraction=fraction, seed=0)
    assert w.shape == valid.shape and w.dtype == bool
    assert w.sum() >= fraction * valid.sum()
    assert w.sum() <= fraction * valid.sum() + valid.sum(axis=(1, 2)).max()  # stops right after
    assert not (w & ~valid).any()
    assert not w[:, gappy.land.values.astype(bool)].any()


def test_withholding_transfers_a_real_cloud_pattern_to_the_cleanest_days(gappy):
    valid = np.isfinite(gappy.sst.values)
    ocean = valid.any(axis=0)
    w = withhold_by_cloud_transfer(valid, fraction=0.1, seed=1)
    days = np.flatnonzero(w.any(axis=(1, 2)))
    counts = valid.sum(axis=(1, 2))
    others = np.setdiff1d(np.arange(len(counts)), days)
    assert counts[days].min() >= counts[others].max()
    for d in days:  # each withheld set is the valid part of another day's clouds
        assert any(
            np.array_equal(w[d], valid[d] & ~valid[e] & ocean) for e in range(len(counts)) if e != d
        )


def test_withholding_deterministic_and_dataarray(gappy):
    valid = np.isfinite(gappy.sst)
    a = withhold_by_cloud_transfer(valid.values, fraction=0.1, seed=3)
    np.testing.assert_array_equal(a, withhold_by_cloud_transfer(valid.values, fraction=0.1, seed=3))
    assert not np.array_equal(a, withhold_by_cloud_transfer(valid.values, fraction=0.1, seed=4))
    da = withhold_by_cloud_transfer(valid, fraction=0.1, seed=3)
    assert isinstance(da, xr.DataArray) and da.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(da.values, a)
    xr.testing.assert_equal(da.lat, gappy.lat)
    # A transposed DataArray comes back in its own dim order with the same pixels.
    t = withhold_by_cloud_transfer(valid.transpose("lat", "lon", "time"), fraction=0.1, seed=3)
    assert t.dims == ("lat", "lon", "time")
    np.testing.assert_array_equal(t.transpose("time", "lat", "lon").values, a)


def test_withholding_never_lends_the_pattern_of_a_day_without_observations(gappy):
    """A day with no observation (a satellite outage) was a donor like any other: its 'clouds' are
    the whole ocean, so a clean day drawn with it was withheld entirely, and `oceandl interpolate`
    wrote that day as the method's reconstruction (odd.nc, --seed 6: day 18's 273 observations
    replaced, RMSE 1.57 there; val_rmse 1.05, against 0.14 once such days lend nothing). Every
    other draw is unchanged."""
    valid = np.isfinite(gappy.sst.values).copy()
    valid[5] = False
    whole = [s for s in range(30)
             if any(valid[t].any() and np.array_equal(w[t], valid[t])
                    for w in [withhold_by_cloud_transfer(valid, fraction=0.1, seed=s)] for t in range(len(valid)))]
    assert whole == []
    # a single observed day has no donor left: nothing to withhold from it, the fraction cannot be met
    one = np.zeros_like(valid)
    one[0] = valid[0]
    with pytest.raises(InputError, match="cannot withhold 10% of valid pixels"):
        withhold_by_cloud_transfer(one, fraction=0.1)


def test_withholding_edge_cases(gappy):
    valid = np.isfinite(gappy.sst.values)
    assert not withhold_by_cloud_transfer(valid, fraction=0.0).any()
    with pytest.raises(InputError, match="fraction"):
        withhold_by_cloud_transfer(valid, fraction=1.0)
    with pytest.raises(InputError, match="no cloud pattern"):
        withhold_by_cloud_transfer(np.ones((4, 8, 8), bool), fraction=0.1)
    with pytest.raises(InputError, match="boolean"):
        withhold_by_cloud_transfer(gappy.sst.values, fraction=0.1)
