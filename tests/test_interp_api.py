"""The interface every interpolation method shares (parametrised over METHODS), interp_metrics, the accessor."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr

from oceandl.errors import InputError
from oceandl.interp import METHODS, Interpolator, eof, get_method, interpolate
from oceandl.metrics.interpolation import interp_metrics

from fakes import cloud_transfer, lowrank_cube, torch_threads

# Options that keep each method fast on the tiny cube; methods not listed use their defaults.
FAST_OPTIONS: dict[str, dict] = {
    "dineof": {"max_modes": 6},
    # a few training steps: these tests check the interface, not the skill
    "convae": {"steps": 3, "patch": 16, "tile": 32, "overlap": 8},
    "unet": {"steps": 3, "patch": 16, "tile": 32, "overlap": 8},
    "resae": {"steps": 3, "patch": 16, "tile": 32, "overlap": 8},
    "smp_unet": {"steps": 3, "patch": 32, "tile": 32, "overlap": 8,
                 "model_options": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_cube(nt=24, ny=16, nx=20, rank=3, noise=0.05, cover=0.4, seed=0):
    """Gappy low-rank SST-like cube (float32, daily dates, CF attributes) with a land patch: (gappy, truth)."""
    return lowrank_cube(nt, ny, nx, rank=rank, noise=noise, cover=cover, seed=seed, land=(2, 6, 3, 8),
                        lat=(40.0, 47.5), dates=True, dtype=np.float32)


@pytest.fixture(scope="module")
def cube():
    return make_cube()


@pytest.fixture(scope="module")
def withheld(cube):
    # cloud-shaped: the clouds of another frame laid on a third of the frames
    return cloud_transfer(cube[0], fraction_of_frames=0.35, shift=5, seed=1)


def run(method, da, **kw):
    return interpolate(da, method, seed=0, device="cpu", **{**FAST_OPTIONS.get(method, {}), **kw})


@pytest.fixture(scope="module", params=sorted(METHODS))
def result(request, cube, withheld):
    with torch_threads(1):
        ds = run(request.param, cube[0], withheld=withheld, return_dataset=True)
    return request.param, ds


# ----------------------------------------------------------------------------- the shared interface
def test_registry_entries_are_interpolators():
    assert {"climatology", "eof", "dineof"} <= set(METHODS)
    for name, cls in METHODS.items():
        assert issubclass(cls, Interpolator) and cls.name == name
        assert get_method(name) is cls


def test_output_keeps_shape_coords_attrs(result, cube):
    method, ds = result
    gappy, _ = cube
    out = ds["sst"]
    assert out.dims == gappy.dims and out.shape == gappy.shape
    for c in gappy.coords:
        np.testing.assert_array_equal(out[c].values, gappy[c].values)
    assert out.attrs["units"] == "degC" and out.attrs["long_name"] == "sea surface temperature"
    assert out.dtype == np.float32
    for attrs in (out.attrs, ds.attrs):
        assert attrs["method"] == method
        assert attrs["oceandl_version"]
        opts = json.loads(attrs["options"])
        assert opts["seed"] == 0
        assert method in attrs["history"]
    assert ("sigma" in ds) == METHODS[method].gives_sigma


def test_filled_field_says_what_it_is_and_names_its_flag_and_sigma(cube, tmp_path):
    """Only `oceandl interpolate` linked the field to missing_flag/sigma (ancillary_variables); the
    accessor's Dataset, written with to_netcdf, had three unlinked variables, and no variable said
    that its values were partly a reconstruction (comment)."""
    import netCDF4

    gappy = cube[0].assign_attrs(comment="L3S collated")
    ds = gappy.oceandl.interpolate(method="climatology", return_dataset=True)
    ds.to_netcdf(tmp_path / "f.nc")
    with netCDF4.Dataset(tmp_path / "f.nc") as nc:
        field = nc["sst"]
        assert field.ancillary_variables == "missing_flag sigma"
        assert field.comment.splitlines() == [
            "gaps (missing_flag 1) filled by the oceandl climatology method; observed values kept as given "
            "(missing_flag 0); land (never observed) left missing", "L3S collated"]
        assert field.units == "degC" and nc["sigma"].units == "degC"
        assert list(nc["missing_flag"].flag_values) == [0, 1, 2] and len(nc["missing_flag"].flag_meanings.split()) == 3
    # filled again: the earlier fill's line goes, the input's comment stays
    again = ds["sst"].oceandl.interpolate(method="dineof", keep_observed=False)
    assert again.attrs["comment"].splitlines() == [
        "gaps (missing_flag 1) filled by the oceandl dineof method; every ocean value is the method's "
        "reconstruction; land (never observed) left missing", "L3S collated"]


def test_history_line_goes_in_front_of_the_inputs(cube, tmp_path):
    """NCO and CDO write the newest history line first; oceandl put its line after the input's, so
    a reader scanning the provenance from the top saw the oldest step as the last one. The accessor
    (in memory) and interpolate_chunked now put it in front."""
    import re

    from oceandl.interp import interpolate_chunked

    gappy = cube[0].copy()
    gappy.attrs["history"] = "2020-01-01T00:00:00Z regridded\n2019-06-01T00:00:00Z created"
    out = gappy.oceandl.interpolate(method="climatology").attrs["history"].splitlines()
    assert len(out) == 3 and out[1:] == ["2020-01-01T00:00:00Z regridded", "2019-06-01T00:00:00Z created"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ oceandl .*: gaps filled with method climatology", out[0])
    res = interpolate_chunked(gappy, tmp_path / "c.nc", "climatology", chunks="time=-1,lat=8,lon=10")
    assert res.attrs["history"].splitlines()[1:] == out[1:] and "chunked" in res.attrs["history"].splitlines()[0]
    assert eof(gappy.fillna(0.0), n_modes=2).to_dataset().attrs["history"].splitlines()[1:] == out[1:]


def test_land_nan_observed_kept_gaps_filled(result, cube, withheld):
    _, ds = result
    gappy, _ = cube
    out, g = ds["sst"].values, gappy.values
    land = np.isnan(g).all(axis=0)
    assert land.sum() == 20
    assert np.isnan(out[:, land]).all()
    assert np.isfinite(out[:, ~land]).all()
    kept = np.isfinite(g) & ~withheld
    np.testing.assert_array_equal(out[kept], g[kept])
    flag = ds["missing_flag"].values
    assert flag.dtype == np.int8
    np.testing.assert_array_equal(flag == 2, withheld)
    np.testing.assert_array_equal(flag == 1, np.isnan(g) & ~land[None])
    assert (flag[:, land] == 0).all()
    if "sigma" in ds:
        s = ds["sigma"].values
        assert np.isnan(s[:, land]).all() and (s[:, ~land] > 0).all()


def test_withheld_metrics_present_and_correct(result, cube, withheld):
    method, ds = result
    gappy, truth = cube
    for key in ("val_rmse", "val_mae", "val_bias", "val_corr", "val_std_ratio", "val_n"):
        assert key in ds.attrs and key in ds["sst"].attrs
    assert ds.attrs["val_n"] == withheld.sum()
    err = ds["sst"].values[withheld] - gappy.values[withheld]
    assert ds.attrs["val_rmse"] == pytest.approx(np.sqrt(np.mean(err.astype(np.float64) ** 2)), rel=1e-6)
    # Every method beats a constant guess of the global mean (std of the withheld values).
    assert ds.attrs["val_rmse"] < np.std(gappy.values[withheld])
    if METHODS[method].gives_sigma:
        assert 0.3 < ds.attrs["val_frac_within_2sigma"] <= 1.0


def test_withheld_dataarray_matched_by_coordinate(cube, withheld):
    # a mask with latitudes in the other order was applied position by position: mirrored pixels withheld
    gappy = cube[0]
    mask = xr.DataArray(withheld, dims=gappy.dims, coords=gappy.coords)
    flipped = mask.isel(lat=slice(None, None, -1)).transpose("lon", "lat", "time")
    ds = run("climatology", gappy, withheld=flipped, return_dataset=True)
    np.testing.assert_array_equal(ds["missing_flag"].values == 2, withheld)
    # a mask on other times is refused in the caller's words (it spoke of interp_metrics' truth and pred)
    shifted = mask.assign_coords(lat=mask["lat"] + 100.0)
    with pytest.raises(InputError, match=r"^variable 'sst': withheld and the field have other 'lat' coordinates"):
        run("climatology", gappy, withheld=shifted)


def test_coordinate_named_like_an_output_variable(cube):
    """A scalar 'sigma' coordinate (the model level of a (time, sigma=1, lat, lon) file, which
    open_field keeps) made reconstruct() fail as xarray's bare MergeError against the error-std
    variable 'sigma' (also 'missing_flag', with every method)."""
    gappy = cube[0].assign_coords(sigma=-0.5, missing_flag="x")
    with pytest.warns(UserWarning, match=r"'sigma', 'missing_flag' named like output variables; kept as "
                                         r"'sigma_coord', 'missing_flag_coord'"):
        ds = run("climatology", gappy, return_dataset=True)
    assert ds["sigma"].dims == gappy.dims and float(ds["sigma_coord"]) == -0.5 and ds["missing_flag"].dtype == np.int8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the DataArray gets its coordinates back under their own names
        out = run("climatology", gappy)
    assert float(out["sigma"]) == -0.5 and str(out["missing_flag"].values) == "x" and "sigma_coord" not in out.coords
    np.testing.assert_array_equal(out.values, ds["sst"].values)


def test_dataset_writes_to_netcdf(result, tmp_path):
    method, ds = result
    path = tmp_path / f"{method}.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as back:
        assert back.attrs["method"] == method
        np.testing.assert_array_equal(back["missing_flag"].values, ds["missing_flag"].values)
    import netCDF4

    # CF 5: no _FillValue on coordinates (xarray gives float ones NaN unless their encoding says not to)
    with netCDF4.Dataset(path) as nc:
        assert not {"_FillValue"} & {*nc["lat"].ncattrs(), *nc["lon"].ncattrs()}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_dask_and_transposed_input_give_the_same_result(method, cube):
    pytest.importorskip("dask")
    from dask.callbacks import Callback

    gappy, _ = cube
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        ref = run(method, gappy)
    computes = []
    # documented (interpolate, README): a dask field is read once, into memory, with nothing more said
    with warnings.catch_warnings(record=True) as said_lazy, Callback(start=lambda dsk: computes.append(1)):
        warnings.simplefilter("always")
        lazy = run(method, gappy.chunk({"time": 5}))
    assert len(computes) == 1 and isinstance(lazy.data, np.ndarray)
    assert [str(w.message) for w in said_lazy] == [str(w.message) for w in said]
    np.testing.assert_allclose(lazy.values, ref.values, rtol=1e-6, atol=1e-6)
    renamed = gappy.rename(lat="latitude", lon="longitude").transpose("longitude", "time", "latitude")
    out = run(method, renamed)
    assert out.dims == ("longitude", "time", "latitude")
    np.testing.assert_allclose(out.transpose("time", "latitude", "longitude").values, ref.values, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_return_types(method, cube):
    gappy, _ = cube
    da = run(method, gappy)
    assert isinstance(da, xr.DataArray) and da.name == "sst"
    unnamed = run(method, gappy.rename(None), return_dataset=True)
    assert isinstance(unnamed, xr.Dataset) and "filled" in unnamed


def test_variable_named_like_its_own_coordinate(cube):
    """A DataArray named like one of its coordinates (here a scalar depth) failed with xarray's
    MergeError when the result Dataset was built; it is now written as 'filled'."""
    gappy, _ = cube
    da = gappy.assign_coords(depth=0.5).rename("depth")
    out = run("climatology", da, return_dataset=True)
    assert {"filled", "missing_flag"} <= set(out.data_vars) and float(out["depth"]) == 0.5
    assert np.isfinite(out["filled"].values[:, np.isfinite(gappy.values).any(0)]).all()
    assert run("climatology", gappy.rename("time")).name == "filled"  # a dim's name too


def test_keep_observed_false_changes_observed_values(cube):
    gappy, _ = cube
    out = run("eof", gappy, keep_observed=False).values
    obs = np.isfinite(gappy.values)
    assert not np.array_equal(out[obs], gappy.values[obs])
    assert np.sqrt(np.mean((out[obs] - gappy.values[obs]) ** 2)) < 0.3  # still a close fit
    assert np.isnan(out[:, np.isnan(gappy.values).all(axis=0)]).all()


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_climatology_is_the_pixel_mean(cube):
    gappy, _ = cube
    out = run("climatology", gappy).values
    g = gappy.values.astype(np.float64)
    mean = np.nanmean(g, axis=0)
    gap = np.isnan(g) & np.isfinite(mean)[None]
    np.testing.assert_allclose(out[gap], np.broadcast_to(mean, g.shape)[gap], rtol=1e-5)


def test_pixel_with_one_observation_uses_its_neighbours_mean(cube):
    """A pixel seen once is filled with the mean of its 8 neighbours' means (those seen twice or more),
    not the record's global mean (audit123: gap RMSE at such pixels 6.3 -> 1.0 degC)."""
    gappy, _ = cube
    g = gappy.copy()
    g[:, 10, 15] = np.nan
    g[0, 10, 15] = 30.0
    out = run("climatology", g).values
    v = g.values.astype(np.float64)
    around = v[:, 9:12, 14:17].copy()
    around[:, 1, 1] = np.nan  # the pixel itself
    seen = np.isfinite(around).sum(axis=0) >= 2
    assert seen.sum() >= 3
    expected = np.nanmean(around, axis=0)[seen].mean()
    np.testing.assert_allclose(out[1:, 10, 15], expected, rtol=1e-5)
    assert abs(expected - np.nanmean(v)) > 0.1  # the test tells the two apart
    assert out[0, 10, 15] == 30.0


def seasonal_cube(times, frac, noise=0.0, seed=0):
    """A (time, 3, 4) field of known harmonics on ``times`` (``frac``: their fraction of the year),
    6 of the 12 values a day hidden at random, one pixel land: (gappy, truth, coefficients)."""
    rng = np.random.default_rng(seed)
    coef = np.stack([15 + rng.random((3, 4)) * 5, *(rng.standard_normal((4, 3, 4)) * [[[3]], [[2]], [[1]], [[0.5]]])])
    arg = 2 * np.pi * np.asarray(frac)[:, None, None]
    truth = (coef[0] + coef[1] * np.cos(arg) + coef[2] * np.sin(arg) + coef[3] * np.cos(2 * arg)
             + coef[4] * np.sin(2 * arg) + noise * rng.standard_normal((len(frac), 3, 4)))
    truth[:, 2, 3] = np.nan
    gappy = truth.copy()
    gappy[rng.random(truth.shape) < 0.5] = np.nan
    return (xr.DataArray(gappy, dims=("time", "lat", "lon"), name="sst",
                         coords={"time": times, "lat": [40.0, 41.0, 42.0], "lon": [0.0, 1.0, 2.0, 3.0]}), truth, coef)


def test_climatology_recovers_known_harmonics_from_a_gappy_field():
    """Two years of a noise-free annual + semi-annual cycle with half the values hidden: the fit gives
    the coefficients, the gaps get the truth, and sigma (the residual std) is 0."""
    times = xr.date_range("2019-01-01", periods=730, freq="D")
    frac = (times.dayofyear - 1) / np.where(times.is_leap_year, 366, 365)
    gappy, truth, coef = seasonal_cube(times, frac)
    model = get_method("climatology")(harmonics=2).fit(gappy)
    ds = model.reconstruct()
    assert model.harmonics_ == 2 and ds["sst"].attrs["harmonics"] == 2 and ds["sst"].attrs["harmonics_fallback_pixels"] == 0
    np.testing.assert_allclose(model.coefficients_[:, :2], coef[:, :2], atol=1e-4)
    gap = np.isnan(gappy.values) & np.isfinite(truth)
    np.testing.assert_allclose(ds["sst"].values[gap], truth[gap], atol=1e-4)
    assert np.nanmax(ds["sigma"].values) < 1e-3
    # the time mean misses the seasonal cycle by degrees; "auto" on two years of dates is the seasonal fit
    mean_fill = run("climatology", gappy, harmonics=0).values
    assert np.sqrt(np.mean((mean_fill[gap] - truth[gap]) ** 2)) > 1.0
    np.testing.assert_array_equal(run("climatology", gappy).values, ds["sst"].values)


def test_climatology_sigma_is_the_residual_std_with_ddof_the_parameters():
    times = xr.date_range("2019-01-01", periods=730, freq="D")
    frac = (times.dayofyear - 1) / np.where(times.is_leap_year, 366, 365)
    gappy, _, _ = seasonal_cube(times, frac, noise=0.3)
    ds = run("climatology", gappy, harmonics=1, return_dataset=True)
    y = gappy.values[:, 1, 2]
    ok = np.isfinite(y)
    arg = 2 * np.pi * np.asarray(frac)[ok]
    X = np.stack([np.ones(ok.sum()), np.cos(arg), np.sin(arg)], axis=1)
    c, *_ = np.linalg.lstsq(X, y[ok], rcond=None)
    resid = y[ok] - X @ c
    np.testing.assert_allclose(float(ds["sigma"][0, 1, 2]), np.sqrt(resid @ resid / (ok.sum() - 3)), rtol=1e-4)
    gap = ~ok
    np.testing.assert_allclose(ds["sst"].values[gap, 1, 2], (np.stack([np.ones(len(y)), np.cos(2 * np.pi * frac),
                               np.sin(2 * np.pi * frac)], axis=1) @ c)[gap], rtol=1e-5)


def test_climatology_harmonics_fall_back_where_the_observed_days_do_not_span_the_year():
    """The rule: j harmonics need 3 observations per parameter and a normal matrix (normalised) of
    condition number <= 10: a pixel seen only in summer takes its mean, one with a 4-month gap the
    annual harmonic alone, one seen 12 times through the year the annual alone (15 needed for 2)."""
    times = xr.date_range("2019-01-01", periods=730, freq="D")
    frac = np.asarray((times.dayofyear - 1) / np.where(times.is_leap_year, 366, 365))
    gappy, truth, _ = seasonal_cube(times, frac)
    g = np.where(np.isfinite(truth), truth, np.nan)
    doy = np.asarray(times.dayofyear)
    g[(doy < 152) | (doy > 243), 0, 0] = np.nan         # June-August only
    g[(doy > 200) & (doy < 321), 0, 1] = np.nan         # 4 months never seen
    g[:, 0, 2] = np.nan
    g[::61, 0, 2] = truth[::61, 0, 2]                   # 12 observations over two years
    model = get_method("climatology")(harmonics=2).fit(gappy.copy(data=g))
    ds = model.reconstruct()
    assert model.levels_[0, 0] == 0 and model.levels_[0, 1] == 1 and model.levels_[0, 2] == 1
    assert model.levels_[1, 1] == 2 and model.levels_[2, 3] == -1  # a full pixel; land
    assert ds["sst"].attrs["harmonics_fallback_pixels"] == 3
    summer = g[:, 0, 0]
    # nothing shrunk (too few pixels): the summer pixel takes its neighbours' harmonics (audit131), its
    # level refitted to its observations; the winter gaps 7.47 degC off, 8.78 with its mean before
    assert not model.shrinkage_["shrunk"]
    fill, gap = ds["sst"].values[:, 0, 0].astype(np.float64), np.isnan(summer)
    assert np.sqrt(np.mean((fill[gap] - truth[gap, 0, 0]) ** 2)) < 7.6
    assert np.sqrt(np.mean((np.nanmean(summer) - truth[gap, 0, 0]) ** 2)) > 8.7
    coef = model.coefficients_[:, 0, 0]
    design = np.stack([np.ones_like(frac)] + [f(2 * np.pi * j * frac) for j in (1, 2) for f in (np.cos, np.sin)], 1)
    np.testing.assert_allclose(np.mean(design[~gap] @ coef), np.nanmean(summer), rtol=1e-6)
    assert float(ds["sigma"][0, 0, 0]) < 0.75 < np.nanstd(summer, ddof=1)
    # and none at all on a short record: the time mean, said in a warning
    with pytest.warns(UserWarning, match="harmonics=2: no pixel"):
        short = run("climatology", gappy.isel(time=slice(0, 40)), harmonics=2, return_dataset=True)
    assert short["sst"].attrs["harmonics_fallback_pixels"] == 11
    np.testing.assert_array_equal(short["sst"].values,
                                  run("climatology", gappy.isel(time=slice(0, 40)), harmonics=0).values)


def _own_and_oracle_cycles(n_time, size, cover, seed=0, clear=False):
    """A synthetic SST cube (the truth as the observations with ``clear``), its gaps, the
    climatology's (shrunk) cycle, each pixel's own 2-harmonic fit of its observations and the same
    fit of the truth over every day (the oracle), all (time, lat, lon) in degC."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.interp.climatology import fit_harmonics, harmonic_design, year_fraction

    ds = synthetic_sst(n_time=n_time, ny=size, nx=size, cloud_cover=cover, seed=seed)
    da = ds["sst_true"].rename("sst") if clear else ds["sst"]
    truth = ds["sst_true"].values.astype(np.float64)
    design = harmonic_design(year_fraction(da["time"]), 2)

    def per_pixel(values, mask):
        count = mask.sum(axis=0)
        mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(count, 1)
        ocean = count > 0
        cycle = np.broadcast_to(mean, values.shape).copy()
        cycle[:, ocean] += design @ fit_harmonics(np.where(mask, values - mean, 0.0), mask, ocean, design)[0].T
        return cycle

    obs, sea = da.notnull().values, np.isfinite(truth)
    model = get_method("climatology")(harmonics=2, keep_observed=False).fit(da)
    shrunk = model.reconstruct()["sst"].values
    return (model, ~obs & sea, sea, shrunk, per_pixel(np.nan_to_num(da.values.astype(np.float64)), obs),
            per_pixel(np.where(sea, truth, 0.0), sea), truth)


def test_shrunk_seasonal_cycle_beats_each_pixels_own_fit_at_high_cloud():
    """A year at 80 % cloud (24 x 24 px): each pixel's own least-squares cycle is 1.18 degC (RMS, all
    ocean pixels and days) off the same fit of the truth, the cycle shrunk toward the neighbours'
    0.42 (measured); at the gaps the climatology is 1.71 -> 1.19 degC off the truth (273 of its
    pixels are too cloudy for their own 2 harmonics)."""
    model, gap, sea, shrunk, own, oracle, truth = _own_and_oracle_cycles(365, 24, 0.8)
    info = model.shrinkage_
    assert info["shrunk"] and info["pairs"] >= 20 and info["noise_factor"] > 1
    err = lambda a, b, m: float(np.sqrt(np.mean((a - b)[m] ** 2)))  # noqa: E731
    e_own, e_shrunk = err(own, oracle, sea), err(shrunk, oracle, sea)
    assert e_shrunk < 0.5 * e_own, (e_shrunk, e_own)
    assert err(shrunk, truth, gap) < 0.75 * err(own, truth, gap), (err(shrunk, truth, gap), err(own, truth, gap))
    # pixels too cloudy for their own 2 harmonics (the fallback pixels) get their neighbours' cycle
    assert model.reconstruct()["sst"].attrs["harmonics_fallback_pixels"] > 100
    fb = (model.levels_ < 2) & (model.levels_ >= 0)
    assert np.all(np.abs(model.coefficients_[1:3][:, fb]).max(axis=0) > 0)


def test_shrinkage_vanishes_where_every_pixel_is_well_observed():
    """Noise-free cycles that differ from pixel to pixel (half the days hidden): the shrunk fit is
    each pixel's own, exactly; and on the cloud-free synthetic truth, where the eddies are the only
    noise, the pull to the neighbours fades as the record grows: 0.21 degC (RMS) from the own fit
    on 2 years, 0.08 on 10 (measured), against a cycle of 2.8 degC RMS."""
    times = xr.date_range("2019-01-01", periods=730, freq="D")
    frac = np.asarray((times.dayofyear - 1) / np.where(times.is_leap_year, 366, 365))
    rng = np.random.default_rng(0)
    coef = rng.standard_normal((5, 12, 12)) * np.array([3.0, 3.0, 2.0, 1.0, 0.5])[:, None, None]
    coef[0] += 15
    arg = 2 * np.pi * frac[:, None, None]
    truth = (coef[0] + coef[1] * np.cos(arg) + coef[2] * np.sin(arg) + coef[3] * np.cos(2 * arg)
             + coef[4] * np.sin(2 * arg))
    gappy = np.where(rng.random(truth.shape) < 0.5, np.nan, truth)
    da = xr.DataArray(gappy, dims=("time", "lat", "lon"), name="sst",
                      coords={"time": times, "lat": np.arange(12.0), "lon": np.arange(12.0)})
    model = get_method("climatology")(harmonics=2).fit(da)
    assert model.shrinkage_["shrunk"]
    np.testing.assert_allclose(model.coefficients_, coef, atol=1e-4)
    shift = {}
    for years in (2, 10):
        _, _, sea, shrunk, own, _, _ = _own_and_oracle_cycles(365 * years, 12, 0.5, clear=True)
        shift[years] = float(np.sqrt(np.mean((shrunk - own)[sea] ** 2)))
    assert shift[10] < 0.5 * shift[2] and shift[10] < 0.1, shift


def test_climatology_on_a_360_day_calendar_turns_once_in_360_days():
    pytest.importorskip("cftime")
    times = xr.date_range("2001-01-01", periods=720, freq="D", calendar="360_day", use_cftime=True)
    frac = (np.asarray(times.dayofyear) - 1) / 360.0
    gappy, truth, coef = seasonal_cube(times, frac)
    model = get_method("climatology")().fit(gappy)  # auto: 720 days of a 360-day calendar are 2 years
    assert model.harmonics_ == 2
    gap = np.isnan(gappy.values) & np.isfinite(truth)
    np.testing.assert_allclose(model.reconstruct()["sst"].values[gap], truth[gap], atol=1e-4)
    np.testing.assert_allclose(model.coefficients_[:, :2], coef[:, :2], atol=1e-4)


def test_climatology_harmonics_need_dates(cube):
    gappy, _ = cube
    undated = gappy.assign_coords(time=np.arange(gappy.sizes["time"]))
    with pytest.raises(InputError, match=r"variable 'sst': harmonics=2 needs the day of year .* not dates"):
        run("climatology", undated, harmonics=2)
    with pytest.raises(InputError, match="no time coordinate"):
        run("climatology", undated.drop_vars("time"), harmonics=1)
    # auto, and a dated record shorter than a year: the time mean, as before
    ref = run("climatology", gappy, harmonics=0, return_dataset=True)
    assert ref["sst"].attrs["harmonics"] == 0 and "harmonics_fallback_pixels" not in ref["sst"].attrs
    for da in (undated, gappy):
        out = run("climatology", da, return_dataset=True)
        assert out["sst"].attrs["harmonics"] == 0
        np.testing.assert_array_equal(out["sst"].values, ref["sst"].values)
    for bad in (-1, 7, 1.5, True, "yes"):
        with pytest.raises(InputError, match="option harmonics must be 'auto' or an integer from 0 to 6"):
            run("climatology", gappy, harmonics=bad)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("method", sorted(METHODS))
def test_bad_inputs_raise_input_error(method, cube):
    gappy, _ = cube
    with pytest.raises(InputError, match="needs at least 2 time steps along 'time', got 1"):
        run(method, gappy.isel(time=0))  # one day's map: a field of one step (audit103), too short to fit
    with pytest.raises(InputError, match="3 dims"):
        run(method, gappy.isel(lat=0))
    with pytest.raises(InputError, match="all values are NaN"):
        run(method, xr.full_like(gappy, np.nan))
    with pytest.raises(InputError, match="equal"):
        run(method, xr.full_like(gappy, 3.0).where(gappy.notnull()))
    with pytest.raises(InputError, match="2 time steps"):
        run(method, gappy.isel(time=slice(0, 1)))
    with pytest.raises(InputError, match="infinite"):
        run(method, gappy.where(gappy.notnull(), np.inf))
    with pytest.raises(InputError, match="withheld has shape"):
        run(method, gappy, withheld=np.zeros((2, 3, 4), bool))
    with pytest.raises(InputError, match="not_an_option"):
        run(method, gappy, not_an_option=1)


def test_unknown_method_lists_valid_names(cube):
    with pytest.raises(InputError, match="kriging") as err:
        interpolate(cube[0], "kriging")
    for name in METHODS:
        assert name in str(err.value)


def test_reconstruct_before_fit_and_bad_option_values():
    with pytest.raises(InputError, match="fit"):
        METHODS["dineof"]().reconstruct()
    with pytest.raises(InputError, match="n_modes"):
        METHODS["eof"](n_modes=0)
    with pytest.raises(InputError, match="tol"):
        METHODS["dineof"](tol=-1)
    with pytest.raises(InputError, match="Dataset with variables"):
        interpolate(xr.Dataset({"a": ("t", [1.0]), "b": ("t", [2.0])}), "climatology")


def test_numpy_scalars_are_numbers_for_the_options(cube):
    """A NumPy float32 (a value from an array one sweeps) was refused as not a number: "option tol
    must be a number in (0.0, inf], got np.float32(0.001)", also for cv_fraction, temporal_filter,
    shrink and eof's ridge, while ridge=True was taken as ridge 1. They are now taken (as floats:
    the options attribute stays JSON numbers) and True refused."""
    opts = {"tol": np.float32(1e-3), "cv_fraction": np.float32(0.05), "temporal_filter": np.float32(0.01),
            "shrink": np.float32(0.0)}
    out = interpolate(cube[0], "dineof", max_modes=3, **opts)
    assert {k: v for k, v in json.loads(out.attrs["options"]).items() if k in opts} == \
        {k: float(v) for k, v in opts.items()}
    assert json.loads(interpolate(cube[0], "eof", ridge=np.float32(0.5)).attrs["options"])["ridge"] == 0.5
    with pytest.raises(InputError, match="ridge must be a number"):
        METHODS["eof"](ridge=True)


def test_unlabelled_numpy_input_and_ambiguous_dims(cube):
    gappy, _ = cube
    out = interpolate(gappy.values, "climatology")
    assert out.dims == ("time", "lat", "lon") and out.name == "filled"
    aliased = gappy.rename(time="t", lon="longitude").transpose("longitude", "lat", "t")
    np.testing.assert_array_equal(interpolate(aliased, "climatology").transpose("t", "lat", "longitude").values,
                                  interpolate(gappy, "climatology").values)
    with pytest.raises(InputError, match="read as lat"):
        interpolate(gappy.rename(lon="y"), "climatology")


def test_dims_recognised_by_their_coordinates(cube):
    """A time-last NEMO-style array (nj, ni, time_counter), or (row, col, when) with dates, was
    read by position as (time, lat, lon): the climatology of each pixel was the mean over rows,
    with land and gaps in other places (a different NaN pattern from the same field time-first).
    Dims are now also found by the names open_field knows and by their coordinate (dates, CF
    units or axis)."""
    from oceandl.interp.base import canonical_dims

    gappy, _ = cube
    ref = interpolate(gappy, "climatology")
    lat_units = {"units": "degrees_north"}
    for names in (("time_counter", "nj", "ni"), ("when", "row", "col"), ("time_counter", "r", "c")):
        named = gappy.rename(dict(zip(gappy.dims, names)))
        named[names[1]].attrs = lat_units if names[0] == "when" else {}
        last = named.transpose(*names[1:], names[0])
        assert canonical_dims(last) == names
        if names[1] != "r":  # every dim found (nj, ni by name, a GHRSST L2 swath's): nothing said
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=".*dims read by position")
                filled = interpolate(last, "climatology")
        else:  # r, c: neither named nor coordinated as lat, lon: read by position, and said
            with pytest.warns(UserWarning, match="dims read by position: r as lat, c as lon"):
                filled = interpolate(last, "climatology")
        np.testing.assert_array_equal(filled.transpose(*names).values, ref.values)
    # a CF axis on the coordinate decides too; unrecognised dims still go by position
    axes = gappy.rename(lat="a", lon="b", time="c").assign_coords(a=gappy.lat.values, b=gappy.lon.values)
    axes["a"].attrs, axes["b"].attrs = {"axis": "Y"}, {"axis": "X"}
    assert canonical_dims(axes.transpose("b", "a", "c")) == ("c", "a", "b")
    assert canonical_dims(xr.DataArray(np.zeros((2, 3, 4)), dims=("p", "q", "r"))) == ("p", "q", "r")


# ----------------------------------------------------------------------------- metrics
def test_interp_metrics_numbers():
    pred = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    truth = np.array([1.5, 2.0, 2.0, 5.0, 1.0])
    m = interp_metrics(pred, truth)
    err = np.array([-0.5, 0.0, 1.0, -1.0])
    assert m["n"] == 4
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert m["mae"] == pytest.approx(0.625)
    assert m["bias"] == pytest.approx(-0.125)
    assert m["corr"] == pytest.approx(np.corrcoef(pred[:4], truth[:4])[0, 1])
    assert m["std_ratio"] == pytest.approx(np.std(pred[:4]) / np.std(truth[:4]))
    masked = interp_metrics(pred, truth, mask=np.array([1, 1, 0, 0, 1], bool))
    assert masked["n"] == 2 and masked["rmse"] == pytest.approx(np.sqrt(0.125))
    empty = interp_metrics(pred, truth, mask=np.zeros(5, bool))
    assert empty["n"] == 0 and np.isnan(empty["rmse"])
    with pytest.raises(InputError, match="shape"):
        interp_metrics(pred, truth[:3])


def test_interp_metrics_refuses_a_mask_that_is_not_boolean():
    """mask.astype(bool) read NaN as True: a cloud flag read from netCDF with a _FillValue (decoded
    as float NaN) scored its fill pixels, here 3 pixels and RMSE 3.367 instead of 1 pixel and 0."""
    pred, truth = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 5.0, 3.0, 9.0])
    with pytest.raises(InputError, match=r"mask must be boolean .* holds nan at 2 pixel\(s\)"):
        interp_metrics(pred, truth, mask=np.array([1.0, np.nan, 0.0, np.nan]))
    with pytest.raises(InputError, match="holds 2 at 1 pixel"):
        interp_metrics(pred, truth, mask=np.array([1, 2, 0, 0]))
    flag = xr.DataArray(np.array([1.0, np.nan, 0.0, np.nan]), dims="x")
    ok = interp_metrics(pred, truth, mask=flag.fillna(0))  # 0/1 numbers are a mask
    assert ok["n"] == 1 and ok["rmse"] == 0.0


def test_interp_metrics_refuses_a_negative_sigma():
    """A negative std counted as a miss at every k: sigma [1, -1, 1, 1] against errors of at most
    0.5 reported 0.75 of the pixels within 1, 2 and 3 sigma (1.0 with |sigma|)."""
    pred, truth = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.5, 3.0, 4.0])
    with pytest.raises(InputError, match=r"sigma .* holds 1 negative value\(s\) \(min -1\)"):
        interp_metrics(pred, truth, sigma=np.array([1.0, -1.0, 1.0, 1.0]))
    m = interp_metrics(pred, truth, sigma=np.array([1.0, 1.0, np.nan, 0.0]))  # NaN: no sigma, 0: exact
    assert m["n"] == 3 and m["frac_within_1sigma"] == 1.0


def test_interp_metrics_agrees_with_sklearn_and_sigma_calibration():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(20, 30, 40))
    sigma = rng.uniform(0.5, 2.0, size=truth.shape)
    pred = truth + sigma * rng.standard_normal(truth.shape)
    m = interp_metrics(pred, truth, sigma=sigma)
    assert m["rmse"] == pytest.approx(np.sqrt(sklearn_metrics.mean_squared_error(truth.ravel(), pred.ravel())))
    assert m["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(truth.ravel(), pred.ravel()))
    assert m["frac_within_1sigma"] == pytest.approx(0.6827, abs=0.01)
    assert m["frac_within_2sigma"] == pytest.approx(0.9545, abs=0.005)
    assert m["frac_within_3sigma"] == pytest.approx(0.9973, abs=0.002)
    smooth = interp_metrics(0.5 * truth, truth)
    assert smooth["std_ratio"] == pytest.approx(0.5) and smooth["corr"] == pytest.approx(1.0)


def test_interp_metrics_aligns_dataarrays_by_dim_name():
    rng = np.random.default_rng(0)
    truth = xr.DataArray(rng.normal(size=(3, 4, 5)), dims=("time", "lat", "lon"))
    pred = truth + 0.1
    m = interp_metrics(pred.transpose("lon", "time", "lat"), truth)
    assert m["bias"] == pytest.approx(0.1) and m["rmse"] == pytest.approx(0.1)


def test_interp_metrics_aligns_dataarrays_by_coordinate_order():
    """A truth with latitudes descending against oceandl's ascending output (open_field sorts them)
    used to be compared position by position: identical fields scored an RMSE of 3."""
    rng = np.random.default_rng(0)
    lat = np.linspace(-10.0, 10.0, 5)
    pred = xr.DataArray(rng.normal(size=(3, 5, 4)), dims=("time", "lat", "lon"),
                        coords={"time": [0, 1, 2], "lat": lat, "lon": np.arange(4.0)})
    truth = (pred - 0.1).isel(lat=slice(None, None, -1))
    m = interp_metrics(pred, truth.transpose("lon", "lat", "time"))
    assert m["bias"] == pytest.approx(0.1) and m["rmse"] == pytest.approx(0.1)
    # the same latitudes stored as float32 are the same grid
    m32 = interp_metrics(pred, truth.assign_coords(lat=truth.lat.astype(np.float32)))
    assert m32["rmse"] == pytest.approx(0.1)
    mask = (pred > 0).isel(lat=slice(None, None, -1))
    assert interp_metrics(pred, pred + 1, mask=mask)["n"] == int((pred > 0).sum())


def test_interp_metrics_constant_field_has_no_correlation():
    """The std of a constant 0.1 (or a sea-ice SST of 271.35 K) is ~1e-17 in floating point, not 0:
    corr came out 0.0 and std_ratio 1e17 instead of NaN."""
    pred = np.arange(7.0)
    for c in (0.1, 0.3, 271.35):
        m = interp_metrics(pred, np.full(7, c))
        assert np.isnan(m["corr"]) and np.isnan(m["std_ratio"]), (c, m)
        assert m["rmse"] == pytest.approx(np.sqrt(np.mean((pred - c) ** 2)))
    flat = interp_metrics(np.full(7, 0.1), pred)
    assert np.isnan(flat["corr"]) and flat["std_ratio"] == 0.0


def test_interp_metrics_refuses_other_coordinates():
    """A truth on a grid shifted by one row (or other times) was scored position by position: a
    field against its shifted copy scored RMSE 0."""
    rng = np.random.default_rng(0)
    pred = xr.DataArray(rng.normal(size=(2, 4, 3)), dims=("time", "lat", "lon"),
                        coords={"time": [0, 1], "lat": np.arange(4.0), "lon": np.arange(3.0)})
    with pytest.raises(InputError, match="'lat' coordinates .*lat=0.0 where truth has 1.0"):
        interp_metrics(pred, pred.assign_coords(lat=pred.lat + 1))
    with pytest.raises(InputError, match="mask and pred have other 'time'"):
        interp_metrics(pred, pred, mask=(pred > 0).assign_coords(time=[5, 6]))
    assert interp_metrics(pred, pred.values + 1)["rmse"] == pytest.approx(1.0)  # unlabelled: by position


# ----------------------------------------------------------------------------- accessor
def test_accessor_matches_functions(cube):
    import oceandl.accessor  # noqa: F401  (registers .oceandl)
    from oceandl.interp.eof import eof

    gappy, truth = cube
    via = gappy.oceandl.interpolate("climatology")
    np.testing.assert_array_equal(via.values, interpolate(gappy, "climatology").values)
    full = truth.fillna(0.0).where(truth.notnull())
    e = full.oceandl.eof(n_modes=3)
    np.testing.assert_allclose(e.eigenvalues.values, eof(full, n_modes=3).eigenvalues.values)
    assert vars(gappy.oceandl).keys() == {"_obj"}  # nothing fitted is kept on the accessor


def test_dataset_accessor_picks_the_variable_as_the_cli_does(cube):
    """A Dataset (an opened file) had no .oceandl (AttributeError): the variable is chosen as
    `oceandl interpolate` chooses it, by var= (--var) or from CF attributes."""
    import oceandl.accessor  # noqa: F401  (registers .oceandl)

    gappy, truth = cube
    ds = xr.Dataset({"sst": gappy, "sst_true": truth.astype(np.float32),
                     "quality": (gappy.dims, np.zeros(gappy.shape, np.int8), {"flag_values": [0, 1]})})
    with pytest.warns(UserWarning, match=r"^Dataset: using variable 'sst' \(a common SST name\); other "
                                         r"3-D variables: sst_true \(choose with var=") as caught:
        out = ds.oceandl.interpolate("climatology")
    assert caught[0].filename == __file__
    xr.testing.assert_equal(out, gappy.oceandl.interpolate("climatology"))
    assert out.name == "sst" and out.attrs["method"] == "climatology"
    full = ds.oceandl.interpolate("climatology", var="sst_true", return_dataset=True)
    assert set(full.data_vars) == {"sst_true", "missing_flag", "sigma"} and int(full["missing_flag"].max()) == 0
    e = ds.oceandl.eof(2, var="sst_true", weights=None)
    np.testing.assert_allclose(e.eigenvalues.values, eof(ds["sst_true"], 2, weights=None).eigenvalues.values)
    with pytest.raises(InputError, match=r"^Dataset: variable 'sst_tru' not found; did you mean 'sst_true'"):
        ds.oceandl.interpolate("climatology", var="sst_tru")
    with pytest.raises(InputError, match=r"several 3-D variables \(a, b\); choose one with var="):
        xr.Dataset({"a": gappy.rename(None), "b": gappy.rename(None)}).oceandl.eof(2)


@pytest.mark.parametrize("call", ["function", "accessor", "Interpolator"])
def test_warnings_name_the_callers_line(call, cube):
    """Warnings had fixed stacklevels, right for one call path only: the same warning named
    oceandl/interp/__init__.py, base.py, eof.py or accessor.py, never the user's line (a notebook
    cell showed library code, and a filter by module did not match). Each names this file now."""
    import oceandl.accessor  # noqa: F401  (registers .oceandl)

    gappy, truth = cube
    short = truth.isel(time=slice(0, 3)).fillna(0.0).where(truth.notnull().any("time"))
    fill = {"function": lambda da, **kw: interpolate(da, "climatology", return_dataset=True, **kw),
            "accessor": lambda da, **kw: da.oceandl.interpolate("climatology", return_dataset=True, **kw),
            "Interpolator": lambda da, **kw: get_method("climatology")(**kw).fit(da).reconstruct()}[call]
    analyse = {"function": lambda da: eof(da, n_modes=5), "accessor": lambda da: da.oceandl.eof(n_modes=5),
               "Interpolator": lambda da: eof(da, n_modes=5)}[call]
    cases = {
        "named like output variables": lambda: fill(gappy.assign_coords(sigma=-0.5)),
        "seasonal cycle": lambda: fill(gappy.where(gappy["time"].dt.day < 20), harmonics=2),  # 24 days, no year
        "give at most 2": lambda: analyse(short),  # 3 time steps (2 once centred), 5 modes asked for
        "missing at some times only": lambda: analyse(gappy.where(gappy["time"].dt.day > 1)),
    }
    for text, do in cases.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                do()
            except InputError:
                pass  # the partial-pixel analysis fails after warning: the warning is what is checked
        hits = [w for w in caught if text in str(w.message)]
        assert hits, (text, [str(w.message) for w in caught])
        assert {(w.filename, w.category) for w in hits} == {(__file__, UserWarning)}, (text, hits[0].filename)

def test_dir_lists_the_lazy_exports():
    """dir(oceandl), what a notebook's `oceandl.<Tab>` lists, missed interpolate, eof, classify,
    get_model and MODELS: they load on first use (module __getattr__) and had no __dir__."""
    import oceandl

    assert set(oceandl.__all__) <= set(dir(oceandl))
    assert {"__version__", "InputError"} <= set(dir(oceandl))



@pytest.mark.parametrize("order", ["oceandl first", "xarray first", "through oceandl.interpolate"])
def test_import_oceandl_is_light_and_the_accessor_still_registers(order):
    """`import oceandl` imported xarray (and pandas) to register the accessor: 95 % of its time, paid
    by `oceandl --help` too. It imports neither now, nor torch nor matplotlib, and DataArrays get
    `.oceandl` when xarray comes, in any order."""
    import subprocess
    import sys

    pytest.importorskip("wrapt", reason="the accessor waits for xarray through wrapt's post-import hook, "
                                        "used where wrapt is installed (not a dependency)")
    heavy = ("torch", "torchvision", "matplotlib", "xarray", "pandas", "netCDF4", "dask", "scipy")
    light = f"import sys, oceandl; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))"
    first, then = {"oceandl first": ("import oceandl", "import xarray as xr"),
                   "xarray first": ("import xarray as xr", "import oceandl"),
                   "through oceandl.interpolate": ("import oceandl", "oceandl.interpolate; import xarray as xr")}[order]
    code = (f"{light}\n{first}\n{then}\nimport numpy as np\n"
            "da = xr.DataArray(np.arange(24.0).reshape(2, 3, 4), dims=('time', 'lat', 'lon'))\n"
            "print(type(da.oceandl).__name__, da.oceandl.interpolate('climatology').shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["[]", "OceanDLAccessor (2, 3, 4)"]


def test_subpackages_reachable_after_a_bare_import():
    """README: `oceandl.interp.interpolate_chunked("sst.nc", "filled.nc", "dineof")` and
    `oceandl.interp.get_method("unet")` after `import oceandl`. In a fresh interpreter they failed with
    "module 'oceandl' has no attribute 'interp'" (models, training, io, datasets... the same) unless
    something had imported the sub-package first. They now load on first access, and only then."""
    import subprocess
    import sys

    code = ("import sys, oceandl\n"
            "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'xarray'})\n"
            "print(heavy())\n"
            "print(callable(oceandl.interp.interpolate_chunked), callable(oceandl.interp.get_method),\n"
            "      oceandl.models.__name__, oceandl.training.__name__, oceandl.io.__name__,\n"
            "      oceandl.datasets.__name__, oceandl.metrics.__name__, oceandl.utils.__name__,\n"
            "      oceandl.pipelines.__name__, {'interp', 'models'} <= set(dir(oceandl)))\n"
            "print(hasattr(oceandl, 'nope'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # without wrapt the accessor is registered at import, which loads xarray (oceandl/__init__.py)
    import importlib.util

    light = "[]" if importlib.util.find_spec("wrapt") else "['xarray']"
    assert out.stdout.splitlines() == [
        light, "True True oceandl.models oceandl.training oceandl.io oceandl.datasets oceandl.metrics "
        "oceandl.utils oceandl.pipelines True", "False"]


def test_refilling_a_result_does_not_carry_its_old_scores(cube, withheld, tmp_path):
    """A filled field carries its val_* scores; filled again without withholding (a complete field),
    the new result kept them from the input's attrs, and `oceandl interpolate` printed them as this
    run's 'withheld pixels: rmse ...' (with --chunks too, in the file). Scores are now this run's only."""
    from oceandl.cli.main import main

    first = run("climatology", cube[0], withheld=withheld)
    assert "val_rmse" in first.attrs
    again = run("climatology", first)
    assert not [k for k in again.attrs if k.startswith(("val_", "truth_"))]
    src = tmp_path / "filled.nc"
    first.to_dataset(name="sst").to_netcdf(src)
    for extra in ([], ["--chunks", "lat=8"]):
        out = tmp_path / f"again{len(extra)}.nc"
        assert main(["interpolate", str(src), "--method", "climatology", "--quiet", *extra, "-o", str(out)]) == 0
        with xr.open_dataset(out) as ds:
            assert not [k for k in ds["sst"].attrs if k.startswith("val_")], extra


def test_the_filled_dataarray_names_no_variable_it_does_not_hold(cube, tmp_path):
    """The DataArray of interpolate() (no return_dataset) said ancillary_variables = "missing_flag
    sigma": written alone with to_netcdf (a notebook's ``filled.to_netcdf(...)``), its file named two
    variables it did not hold, an error to CF checkers. Only the Dataset's field names them now."""
    import netCDF4

    gappy = cube[0].assign_attrs(ancillary_variables="quality_level")
    out = gappy.oceandl.interpolate("climatology")
    assert "ancillary_variables" not in out.attrs and out.attrs["method"] == "climatology"
    out.to_netcdf(tmp_path / "f.nc")
    with netCDF4.Dataset(tmp_path / "f.nc") as nc:
        assert "ancillary_variables" not in nc["sst"].ncattrs() and set(nc.variables) == {"sst", "time", "lat", "lon"}
    ds = gappy.oceandl.interpolate("climatology", return_dataset=True)
    assert ds["sst"].attrs["ancillary_variables"] == "missing_flag sigma"


def test_every_attribute_a_fill_adds_is_dropped_when_its_output_is_filled_again(result, cube):
    """Refilling an oceandl output dropped only its val_* scores: a climatology fill of a DINEOF
    result kept DINEOF's n_modes, n_iter, converged and cv_curve beside method 'climatology'.
    What each method adds to the input's attrs is a run attribute (RUN_ATTRS, its prefixes), so a
    method that grows a new one fails here until it is listed."""
    from oceandl.interp.base import RUN_ATTR_PREFIXES, RUN_ATTRS

    name, ds = result
    added = set(ds[cube[0].name].attrs) - set(cube[0].attrs) - {"comment", "ancillary_variables", "history"}
    assert {k for k in added if k not in RUN_ATTRS and not k.startswith(RUN_ATTR_PREFIXES)} == set(), name
    again = run("climatology", ds[cube[0].name])
    assert set(again.attrs) - set(cube[0].attrs) <= set(run("climatology", cube[0]).attrs), name


def test_packed_and_out_of_range_values_are_missing_from_python_too(cube, tmp_path):
    """`oceandl interpolate` decodes a GHRSST-style int16 variable (scale_factor, add_offset,
    _FillValue) and masks values beyond valid_min/valid_max; oceandl.interpolate and eof on the
    same variable opened with mask_and_scale=False fitted the -32768 fills as data (fills of
    -32768, means 355 K off), and a -999 sentinel below valid_min, opened normally, was kept
    and averaged in. Both now give what the file reader gives, without the valid range attrs."""
    from oceandl.interp.eof import eof
    from oceandl.io import open_field

    packing = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15, "_FillValue": -32768}

    def packed(da, name):  # written as GHRSST L4 does, read back undecoded
        da.to_dataset(name="analysed_sst").to_netcdf(tmp_path / name, encoding={"analysed_sst": packing})
        return xr.open_dataset(tmp_path / name, mask_and_scale=False)["analysed_sst"]

    gappy = (cube[0] + 273.15).assign_attrs(units="kelvin", valid_min=-2000, valid_max=4000)  # 253.15..313.15 K
    raw = packed(gappy, "gappy.nc")
    assert raw.dtype == np.int16 and (raw == -32768).any()
    ref = interpolate(open_field(tmp_path / "gappy.nc"), "climatology")
    for da in (raw, raw.to_dataset()):
        out = interpolate(da, "climatology")
        np.testing.assert_allclose(out.values, ref.values, atol=1e-9)
        assert not {"_FillValue", "scale_factor", "valid_min"} & set(out.attrs) and out.attrs["units"] == "kelvin"
    full = ref.fillna(300.0).where(ref.notnull())  # land stays missing: -32768 once packed
    np.testing.assert_allclose(eof(packed(full, "full.nc"), n_modes=2).eigenvalues.values,
                               eof(open_field(tmp_path / "full.nc"), n_modes=2).eigenvalues.values, rtol=1e-6)

    sentinel = cube[0].fillna(-999.0).assign_attrs(valid_min=-5.0, valid_max=45.0)
    out = interpolate(sentinel, "climatology")
    np.testing.assert_allclose(out.values, interpolate(cube[0], "climatology").values)
    assert "valid_min" not in out.attrs


def test_outputs_of_an_oceandl_file_do_not_carry_its_run_provenance(cube, tmp_path):
    """An oceandl output's global and variable attrs describe its run (method, options, n_modes,
    converged, cv_*, harmonics...). Filled again (climatology, --withhold 0) or analysed (`oceandl eof`),
    the new file kept them beside its own: a climatology refill of a DINEOF file said n_modes 3,
    converged 1, cv_rmse and harmonics 0 of the DINEOF. Now the new file has the attribute names it
    has from the original input, with this run's values; the earlier command is in history."""
    from oceandl.cli.main import main

    src = tmp_path / "sst.nc"
    cube[0].to_dataset(name="sst").assign_attrs(title="test cube").to_netcdf(src)
    dineof = tmp_path / "dineof.nc"
    assert main(["interpolate", str(src), "--method", "dineof", "--set", "max_modes=3", "--quiet",
                 "-o", str(dineof)]) == 0
    with xr.open_dataset(dineof) as ds:
        assert {"n_iter", "converged", "cv_rmse", "val_rmse"} <= set(ds.attrs) & set(ds["sst"].attrs)
    chunked = tmp_path / "chunked.nc"  # the block-by-block file's own: chunked, chunked_fallback_blocks
    assert main(["interpolate", str(src), "--method", "dineof", "--set", "max_modes=3", "--chunks", "lat=8",
                 "--quiet", "-o", str(chunked)]) == 0
    with xr.open_dataset(chunked) as ds:
        assert {"chunked", "chunked_fallback_blocks"} <= set(ds.attrs)

    def attrs_of(args, out):
        assert main([*args, "--quiet", "-o", str(out)]) == 0
        with xr.open_dataset(out) as ds:
            return ds.attrs, ds[list(ds.data_vars)[0]].attrs

    full = tmp_path / "full.nc"  # EOFs need a gap-free field
    cube[1].to_dataset(name="sst").assign_attrs(title="test cube").to_netcdf(full)
    for cmd, plain in ((["interpolate", "--method", "climatology", "--withhold", "0"], src), (["eof", "-n", "2"], full)):
        g0, v0 = attrs_of([cmd[0], str(plain), *cmd[1:]], tmp_path / f"{cmd[0]}_{plain.stem}.nc")
        for f in (dineof, chunked):
            g1, v1 = attrs_of([cmd[0], str(f), *cmd[1:]], tmp_path / f"{cmd[0]}_{f.stem}.nc")
            assert set(g1) == set(g0) and set(v1) == set(v0), (cmd[0], f.stem, set(g1) ^ set(g0), set(v1) ^ set(v0))
            assert g1["method"] == cmd[0].replace("interpolate", "climatology") and g1["title"] == g0["title"]
            assert "--method dineof" in g1["history"].splitlines()[1]
