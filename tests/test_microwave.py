"""synthetic_sst(microwave=True): the passive-microwave SST covariate ``sst_mw``.

The numbers asserted here were measured on the cubes below (128 x 128 px over the default box, 40
days, seeds 0-5): RMS against the truth 0.50-0.52 degC, ocean coverage 0.68-0.72, 71-74 % of the
cloudy pixels beyond 75 km of land with a value, 16-18 % of the clear ones missing (the swath gaps).
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from scipy.ndimage import binary_dilation, distance_transform_edt

import oceandl.datasets.sst as sst_module
from oceandl.cli.main import cli
from oceandl.datasets import synthetic_sst
from oceandl.io import find_variable, open_field

OTHERS = ("sst", "sst_true", "cloud", "land")
KW = dict(n_time=40, ny=128, nx=128, seed=0)


@pytest.fixture(scope="module")
def mw() -> xr.Dataset:
    return synthetic_sst(**KW, microwave=True)


def _distance_to_land_km(ds: xr.Dataset) -> np.ndarray:
    """Distance of each pixel to the nearest land pixel, km (0 on land), as the module measures it."""
    dlat, dlon = float(ds.lat[1] - ds.lat[0]), float(ds.lon[1] - ds.lon[0])
    dy = sst_module.KM_PER_DEG * dlat
    dx = sst_module.KM_PER_DEG * dlon * np.cos(np.radians(float(ds.lat.mean())))
    return distance_transform_edt(ds.land.values == 0, sampling=(dy, dx))


def _far(ds: xr.Dataset) -> np.ndarray:
    """Ocean beyond the 75 km coastal band, (lat, lon) bool."""
    return _distance_to_land_km(ds) > sst_module.MW_COAST_KM


# ------------------------------------------------------------------------------------------------
# the other variables, determinism, attributes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(n_time=6, ny=24, nx=20, seed=3, cloud_cover=0.7),
                                dict(n_time=5, ny=16, nx=16, seed=11, land=False),
                                dict(n_time=4, ny=32, nx=40, seed=0, lat_range=(-40.0, -20.0), lon_range=(10.0, 30.0))])
def test_microwave_leaves_every_other_variable_bit_identical(kw):
    """sst_mw draws from its own stream (SeedSequence(seed).spawn(4)[3]): turning it on must not change
    one bit of the cube a user (or a benchmark result) already has."""
    plain, with_mw = synthetic_sst(**kw), synthetic_sst(**kw, microwave=True)
    assert "sst_mw" not in plain and "sst_mw" in with_mw
    for name in OTHERS:
        a, b = plain[name], with_mw[name]
        assert a.dtype == b.dtype and a.dims == b.dims and a.attrs.keys() == b.attrs.keys(), name
        assert a.values.tobytes() == b.values.tobytes(), name  # bit for bit, NaN payloads included
    for coord in ("time", "lat", "lon"):
        assert plain[coord].values.tobytes() == with_mw[coord].values.tobytes()
    assert {k: v for k, v in plain.attrs.items() if k != "summary"} == \
        {k: v for k, v in with_mw.attrs.items() if k != "summary"}


def test_microwave_is_deterministic_from_the_seed(mw):
    again = synthetic_sst(**KW, microwave=True)
    assert again.sst_mw.values.tobytes() == mw.sst_mw.values.tobytes()
    other = synthetic_sst(**{**KW, "seed": 1}, microwave=True)
    both = np.isfinite(other.sst_mw.values) & np.isfinite(mw.sst_mw.values)
    assert both.mean() > 0.3 and np.abs(other.sst_mw.values[both] - mw.sst_mw.values[both]).mean() > 0.3


def test_microwave_variable_and_attributes(mw):
    v = mw.sst_mw
    assert v.dims == ("time", "lat", "lon") and v.dtype == np.float32
    assert v.attrs["long_name"] == "passive microwave sea surface temperature (synthetic)"
    assert v.attrs["units"] == "degree_Celsius"
    # not sea_surface_temperature: the field to fill is found by that standard_name (see below)
    assert "standard_name" not in v.attrs
    for words in ("50 km", "0.4 degC", "75 km", "swaths", "rain"):
        assert words in v.attrs["comment"], words
    assert "sst_mw" in mw.attrs["summary"] and "sst_mw" not in synthetic_sst(n_time=2, ny=8, nx=8).attrs["summary"]


def test_memory_check_counts_the_microwave_cube(monkeypatch):
    """check_memory is the only guard before hours of work: it must ask for sst_mw's float32 cube too."""
    asked = []

    class Stop(Exception):
        pass

    def record(need, what, advice):
        asked.append(need)
        raise Stop

    monkeypatch.setattr(sst_module, "check_memory", record)
    for microwave in (False, True):
        with pytest.raises(Stop):
            synthetic_sst(n_time=50, ny=30, nx=20, microwave=microwave)
    assert asked[1] - asked[0] == 50 * 30 * 20 * 4


# ------------------------------------------------------------------------------------------------
# content: accuracy, coverage, coast, clouds, swaths, rain
# ------------------------------------------------------------------------------------------------


def test_error_against_the_truth(mw):
    """Noise of 0.4 degC alone, plus the 50 km footprint's smoothing of fronts and eddies (about 0.3 degC
    in quadrature, most of it along the Gulf-Stream-like front): 0.50-0.52 measured over seeds 0-5. The
    band catches a noise left out (< 0.45) or doubled, or a footprint several times too wide (> 0.58)."""
    mw_, truth = mw.sst_mw.values, mw.sst_true.values
    ok = np.isfinite(mw_)
    err = mw_[ok] - truth[ok]
    rms = float(np.sqrt(np.mean(err**2)))
    assert 0.45 < rms < 0.58, rms
    assert abs(float(err.mean())) < 0.05  # unbiased
    # the noise is correlated at the footprint scale (a gridded 50 km footprint), not pixel noise: white
    # noise of 0.4 degC would hold ~60 % of the residual variance and bring the lag-1 correlation to ~0.35
    r = np.where(ok, mw_ - truth, np.nan)
    lag1 = np.nanmean(r[:, :, 1:] * r[:, :, :-1]) / np.nanmean(r**2)
    assert 0.65 < lag1 < 0.95, lag1


def test_coverage_of_the_ocean(mw):
    """1 - the 75 km coastal band (~7 % of the ocean) - the swath gaps (~18 %) - rain (10 % of the
    cloudy half, less overlaps): 0.68-0.72 measured (0.70 over a year)."""
    ocean = mw.land.values == 0
    ok = np.isfinite(mw.sst_mw.values)
    assert not ok[:, ~ocean].any()
    daily = ok[:, ocean].mean(axis=1)
    assert 0.62 < daily.mean() < 0.78, daily.mean()
    assert daily.min() > 0.45  # no day is blank


def test_nothing_near_land(mw):
    ok = np.isfinite(mw.sst_mw.values)
    land = mw.land.values.astype(bool)
    near = binary_dilation(land, structure=np.ones((5, 5), bool))  # land and within 2 px of it
    assert not ok[:, near].any()
    dist = _distance_to_land_km(mw)
    assert not ok[:, dist <= 75.0].any()
    # but the band stops at 75 km: just beyond it, on clear days, values are there
    clear = mw.cloud.values == 0
    ring = clear & ((dist > 75.0) & (dist <= 110.0))[None]
    assert ring.sum() > 1000 and ok[ring].mean() > 0.6


def test_values_under_clouds(mw):
    """The point of the covariate: most cloudy ocean pixels (beyond the coastal band) have a value,
    where sst has none."""
    cloudy = (mw.cloud.values == 1) & _far(mw)[None]
    ok = np.isfinite(mw.sst_mw.values)
    assert np.isnan(mw.sst.values[cloudy]).all()
    assert 0.65 < ok[cloudy].mean() < 0.8, ok[cloudy].mean()


def test_rain_is_under_clouds_only(mw):
    """Beyond the coastal band, a clear pixel is missing only in a swath gap; a cloudy one also in rain
    (10 % of the cloudy ocean): the cloudy pixels miss about 10 points more (0.08-0.135 over seeds 0-5)."""
    far = _far(mw)[None]
    cloud = mw.cloud.values == 1
    missing = np.isnan(mw.sst_mw.values)
    clear_miss, cloud_miss = missing[~cloud & far].mean(), missing[cloud & far].mean()
    assert 0.12 < clear_miss < 0.24, clear_miss  # the swath gaps alone
    assert 0.05 < cloud_miss - clear_miss < 0.16, (clear_miss, cloud_miss)


def test_swath_gaps_move_each_day_and_repeat_after_16(mw):
    """On clear pixels beyond the coast a missing value is a swath gap: the gap mask of day 0 is not
    day 1's (each day the tracks move on by 0.5625 orbit spacings), and is day 16's again (GCOM-W's
    16-day repeat cycle)."""
    far, clear = _far(mw), mw.cloud.values == 0
    gap = np.isnan(mw.sst_mw.values)

    def common(a, b):
        both = clear[a] & clear[b] & far
        assert both.sum() > 500, (a, b)
        return gap[a][both], gap[b][both]

    g0, g1 = common(0, 1)
    assert not np.array_equal(g0, g1)
    moved = [np.not_equal(*common(t, t + 1)).mean() for t in range(15)]
    assert np.mean(moved) > 0.1, moved
    seen_gap = False
    for t in range(4):
        a, b = common(t, t + 16)
        assert np.array_equal(a, b), t
        seen_gap |= a.any()
    assert seen_gap  # there were gaps to repeat (else the equality said nothing)


def test_swath_gaps_follow_the_orbit():
    """The diamonds between the swaths: 18 % of the default box on average over the 16-day cycle (0-26 %
    on one day) whatever the seed's node, none at high latitudes where the swaths overlap."""
    lon = np.linspace(-70.0, -50.0, 64)

    def fraction(lat0, lat1, node=0.3):
        lat = np.linspace(lat0, lat1, 64)
        edges = sst_module._swath_edges(lat)
        return np.array([sst_module._swath_gaps(day, node, edges, lon).mean() for day in range(16)])

    default = fraction(25.0, 45.0)
    assert 0.15 < default.mean() < 0.22 and default.max() < 0.3 and default.min() < 0.1
    # the cycle visits the 16 shifts: the mean over it does not depend on where the first node fell
    assert abs(fraction(25.0, 45.0, node=0.85).mean() - default.mean()) < 0.01
    assert fraction(60.0, 75.0).max() == 0.0


def test_no_land_no_coastal_band():
    ds = synthetic_sst(n_time=10, ny=48, nx=48, seed=2, land=False, microwave=True)
    ok = np.isfinite(ds.sst_mw.values)
    clear = ds.cloud.values == 0
    # clear sky misses only the swath gaps: the edges of the box and every column keep values
    assert ok[clear].mean() > 0.7 and ok[:, :, 0].any() and ok[:, :, -1].any()


def test_high_latitude_box_has_no_swath_gaps():
    """At 60-75N the swaths of successive orbits overlap: with no land, only rain removes values."""
    ds = synthetic_sst(n_time=6, ny=32, nx=32, seed=1, land=False, microwave=True,
                       lat_range=(60.0, 75.0), lon_range=(-30.0, 0.0))
    ok = np.isfinite(ds.sst_mw.values)
    cloud = ds.cloud.values == 1
    assert ok[~cloud].all()
    assert 0.85 < ok[cloud].mean() < 0.95  # rain: 10 % of the cloudy pixels


# ------------------------------------------------------------------------------------------------
# the field to fill is still sst; the CLI flag
# ------------------------------------------------------------------------------------------------


def test_open_field_still_picks_sst(tmp_path):
    ds = synthetic_sst(n_time=5, ny=16, nx=16, seed=0, microwave=True)
    path = tmp_path / "synth.nc"
    ds.to_netcdf(path)
    with pytest.warns(UserWarning, match="using variable 'sst'.*sst_mw"):  # and says sst_mw is there
        da = open_field(path)
    assert da.name == "sst"
    np.testing.assert_array_equal(da.values, ds.sst.values)
    with pytest.warns(UserWarning, match="sst_mw"):
        assert find_variable(ds) == "sst"
    assert open_field(ds, "sst_mw").attrs["long_name"].startswith("passive microwave")


def test_cli_synth_microwave_writes_sst_mw(tmp_path):
    runner = CliRunner()
    out, plain = tmp_path / "mw.nc", tmp_path / "plain.nc"
    res = runner.invoke(cli, ["synth", "sst", "--n", "4", "--size", "16", "--microwave", "--seed", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["synth", "sst", "--n", "4", "--size", "16", "--seed", "2", "-o", str(plain)])
    assert res.exit_code == 0, res.output
    ref = synthetic_sst(n_time=4, ny=16, nx=16, seed=2, microwave=True)
    with xr.open_dataset(out) as ds, xr.open_dataset(plain) as p:
        assert "sst_mw" in ds and "sst_mw" not in p
        np.testing.assert_array_equal(ds.sst_mw.values, ref.sst_mw.values)
        assert ds.sst_mw.attrs["units"] == "degree_Celsius"
        for name in OTHERS:
            np.testing.assert_array_equal(ds[name].values, p[name].values)
        assert ds.attrs["history"].endswith("--microwave --seed 2 -o " + str(out))
    # `oceandl interpolate` on that file fills sst, not sst_mw
    filled = tmp_path / "filled.nc"
    res = runner.invoke(cli, ["interpolate", str(out), "--method", "climatology", "--quiet", "-o", str(filled)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(filled) as f:
        assert "sst" in f and f["sst"].attrs["method"] == "climatology" and "sst_mw" not in f


def test_cli_microwave_is_sst_only(tmp_path):
    res = CliRunner().invoke(cli, ["synth", "sar", "--n", "1", "--size", "16", "--microwave", "-o", str(tmp_path / "d")])
    assert res.exit_code == 2 and "--microwave" in res.output, res.output
    assert not list(tmp_path.iterdir())


def test_cli_help_shows_the_flag_and_an_example():
    res = CliRunner().invoke(cli, ["synth", "--help"])
    assert res.exit_code == 0 and "--microwave" in res.output
    assert "oceandl synth sst --microwave" in res.output
