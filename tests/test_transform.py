"""Interpolator.transform: a fitted climatology / EOF / DINEOF fills another period on the same grid."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from oceandl.errors import InputError
from oceandl.interp import METHODS, DINEOF, Climatology, EOFInterpolator, get_method, interpolate

from fakes import lowrank_cube, seasonal_anomaly_cube

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSICAL = {"climatology": {}, "eof": {"n_modes": 3}, "dineof": {"n_modes": 3}}


def gap_rmse(ds, truth, gappy) -> float:
    t, g = np.asarray(truth.values), np.asarray(gappy.values)
    gap = ~np.isfinite(g) & np.isfinite(t)
    return float(np.sqrt(np.mean((ds["sst"].values[gap] - t[gap]) ** 2)))


def _transition(model, da):
    """The model's AR(1) factors for the new field ``da`` (as transform computes them)."""
    from oceandl.interp.dineof import _time_positions

    return model._transition(da, model._fitted_modes(), _time_positions(da))


@pytest.fixture(scope="module")
def seasonal():
    # fixed patterns with AR(1) amplitudes on a seasonal cycle: the later days' amplitudes are new
    gappy, truth = seasonal_anomaly_cube(seed=0)
    return gappy[:500], gappy[500:], truth[500:]


def test_registry_says_which_methods_transform():
    assert {m for m, c in METHODS.items() if c.can_transform} == set(CLASSICAL)


@pytest.mark.parametrize("method", sorted(CLASSICAL))
def test_transform_of_the_fitted_field_is_its_reconstruction(method):
    # the same steps, observations and dates: the fitted model gives back its own fill (EOF and the
    # climatology exactly; DINEOF's projection is its OI on the fitted modes, close to its fill)
    gappy, truth = lowrank_cube(40, 14, 16, cover=0.4, seed=3, dates=True, dtype=np.float32)
    m = get_method(method)(seed=0, **CLASSICAL[method], **({"harmonics": 0} if method != "dineof" else {})).fit(gappy)
    rec, tr = m.reconstruct(), m.transform(gappy)
    gap = np.isnan(gappy.values) & np.isfinite(truth.values)
    if method == "dineof":
        a, b = gap_rmse(rec, truth, gappy), gap_rmse(tr, truth, gappy)
        assert b < 1.15 * a and b < 0.3 * float(np.nanstd(truth.values)), (a, b)
    else:
        np.testing.assert_allclose(tr["sst"].values[gap], rec["sst"].values[gap], rtol=0, atol=2e-4)
    np.testing.assert_array_equal(tr["missing_flag"].values, rec["missing_flag"].values)
    obs = np.isfinite(gappy.values)
    np.testing.assert_array_equal(tr["sst"].values[obs], gappy.values[obs])  # observations kept


def test_dineof_modes_fill_a_later_period_far_better_than_its_climatology(seasonal):
    fit_on, new, truth = seasonal
    clim = gap_rmse(Climatology(harmonics=2).fit(fit_on).transform(new), truth, new)
    d = DINEOF(harmonics=2, seed=0, max_modes=6).fit(fit_on)
    out = d.transform(new)
    dineof = gap_rmse(out, truth, new)
    # measured 0.309 against 1.345 (the anomaly's patterns recur, its amplitudes are new)
    assert dineof < 0.4 * clim, (dineof, clim)
    assert out.sizes["time"] == 230 and "fitted_on" in out["sst"].attrs
    assert "2019-01-01 to 2020-05-14" in out["sst"].attrs["fitted_on"]
    assert "fitted on variable 'sst', 500 steps" in out.attrs["history"].splitlines()[0]
    assert out["sst"].attrs["n_modes"] == d.n_modes_


def test_dineof_error_map_transfers_to_the_new_period(seasonal):
    fit_on, new, truth = seasonal
    d = DINEOF(harmonics=2, seed=0, max_modes=6, error_map=True).fit(fit_on)
    out = d.transform(new)
    gap = np.isnan(new.values) & np.isfinite(truth.values)
    z = ((out["sst"].values - truth.values) / out["sigma"].values)[gap]
    # measured: 59 % within one sigma, rms(z) 1.38 (the fit's calibration, fitted on the fitted period)
    assert 0.45 < np.mean(np.abs(z) < 1) < 0.9
    assert 0.7 < np.sqrt(np.mean(z ** 2)) < 1.7
    assert np.isnan(out["sigma"].values[:, 4, 5]).all()  # land
    # the fitted field through transform: the same sigma as the fit's own error map
    rec, self_tr = d.reconstruct(), d.transform(fit_on)
    g2 = np.isnan(fit_on.values) & np.isfinite(rec["sigma"].values)
    ratio = self_tr["sigma"].values[g2] / rec["sigma"].values[g2]
    assert 0.9 < np.median(ratio) < 1.1


def test_withheld_pixels_are_scored_and_flagged(seasonal):
    fit_on, new, truth = seasonal
    rng = np.random.default_rng(0)
    held = np.isfinite(new.values) & (rng.random(new.shape) < 0.1)
    out = DINEOF(harmonics=2, seed=0, n_modes=3).fit(fit_on).transform(new, withheld=held)
    assert (out["missing_flag"].values == 2).sum() == held.sum()
    err = out["sst"].values[held] - new.values[held]
    assert out["sst"].attrs["val_n"] == held.sum()
    assert out["sst"].attrs["val_rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-5)


def test_grid_matched_by_coordinate_value():
    gappy, _ = lowrank_cube(30, 12, 14, cover=0.4, seed=1, dates=True)
    m = EOFInterpolator(n_modes=3).fit(gappy)
    ref = m.transform(gappy)
    flipped = m.transform(gappy.isel(lat=slice(None, None, -1)).transpose("lon", "time", "lat"))
    assert flipped["sst"].dims == ("lon", "time", "lat")
    xr.testing.assert_allclose(flipped["sst"].transpose(*ref["sst"].dims).sortby("lat"), ref["sst"], atol=1e-6)
    with pytest.raises(InputError, match="13 latitudes .* the field fitted has 12"):
        m.transform(gappy.isel(lat=slice(0, 13 - 1 + 1)).pad(lat=(0, 1)).assign_coords(lat=np.arange(13.0)))
    with pytest.raises(InputError, match="longitudes .* are not the fitted field's"):
        m.transform(gappy.assign_coords(lon=gappy.lon + 0.5))


def test_refusals():
    gappy, _ = lowrank_cube(30, 12, 14, cover=0.4, seed=1, dates=True)
    with pytest.raises(InputError, match="call fit\\(\\) before transform"):
        DINEOF().transform(gappy)
    m = DINEOF(n_modes=2).fit(gappy)
    with pytest.raises(InputError, match="all values are NaN"):
        m.transform(gappy * np.nan)
    land_only = xr.full_like(gappy, np.nan)
    land_only[:, 0, 0] = np.nan
    with pytest.raises(InputError, match="all values are NaN"):
        m.transform(land_only)
    with pytest.raises(InputError, match="values must be real numbers"):
        m.transform(gappy.astype(bool))
    with pytest.raises(InputError, match="expected 3|3 dims|dimension"):
        m.transform(gappy[:, 0])  # (time, lon); one day's (lat, lon) map is filled (test_audit_python_api)
    for name in ("unet", "resae", "convae", "smp_unet"):
        with pytest.raises(InputError, match="checkpoint"):
            get_method(name)().transform(gappy)  # before fit, too: nothing to train to know it


def test_seasonal_fit_needs_dates_to_fill():
    gappy, _ = seasonal_anomaly_cube(nt=400, seed=1)
    m = Climatology(harmonics=2).fit(gappy)
    with pytest.raises(InputError, match="seasonal cycle of 2 harmonic.* holds no dates"):
        m.transform(gappy.assign_coords(time=np.arange(400)))
    # a later year, same days of the year: the same cycle
    later = gappy[:365].assign_coords(time=xr.date_range("2022-01-01", periods=365, freq="D"))
    a = m.transform(gappy[:365])["sst"].values
    b = m.transform(later)["sst"].values
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)  # 2022's days of the year are 2019's
    c = m.transform(gappy[:365].assign_coords(time=xr.date_range("2022-01-02", periods=365, freq="D")))
    assert np.nanmax(np.abs(c["sst"].values - a)) > 0.01  # one day later in the year: another value


def test_observations_where_the_fit_saw_land_are_kept_not_filled_around():
    gappy, _ = lowrank_cube(30, 12, 14, cover=0.4, seed=2, dates=True)  # land at [3:9, 4:12]
    m = EOFInterpolator(n_modes=3).fit(gappy)
    new = gappy.copy()
    new[:, 5, 6] = 21.5
    with pytest.warns(UserWarning, match="30 observations at 1 pixels the field fitted never observed"):
        out = m.transform(new)
    assert (out["sst"].values[:, 5, 6] == 21.5).all()
    assert np.isnan(out["sst"].values[:, 5, 7]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(EOFInterpolator(n_modes=3, keep_observed=False).fit(gappy).transform(new)["sst"]
                        .values[:, 5, 6]).all()


def test_a_new_step_without_observations_alone_gets_the_fitted_mean_and_cycle(seasonal):
    fit_on, new, _ = seasonal
    m = DINEOF(harmonics=2, seed=0, n_modes=3, transform_smoother=False).fit(fit_on)
    empty = new.copy()
    empty[3] = np.nan
    out = m.transform(empty)["sst"].values[3]
    clim = Climatology(harmonics=2).fit(fit_on).transform(empty)["sst"].values[3]
    ocean = np.isfinite(clim)
    # the amplitudes' prior mean (0) plus the modes' centre: close to the seasonal cycle
    assert np.isfinite(out[ocean]).all()
    assert np.sqrt(np.mean((out[ocean] - clim[ocean]) ** 2)) < 0.5


@pytest.fixture(scope="module")
def smoothed_and_alone(seasonal):
    fit_on, new, truth = seasonal
    empty = new.copy()
    days = [40, 41, 42, 100]
    empty[days] = np.nan
    fits = {sm: DINEOF(harmonics=2, seed=0, n_modes=3, transform_smoother=sm).fit(fit_on) for sm in (True, False)}
    return fits, empty, days, truth


def test_the_smoother_fills_a_clouded_day_from_the_days_around_it(smoothed_and_alone):
    fits, empty, days, truth = smoothed_and_alone
    ocean = np.isfinite(truth.values[0])

    def day_rmse(model):
        out = model.transform(empty)["sst"].values
        return np.array([np.sqrt(np.mean((out[d] - truth.values[d])[ocean] ** 2)) for d in days])

    # measured 0.16-0.29 degC smoothed against 1.91-2.04 each day alone (the AR(1) amplitudes persist)
    smoothed, alone = day_rmse(fits[True]), day_rmse(fits[False])
    assert (smoothed < 0.3 * alone).all(), (smoothed, alone)
    # the fitted persistence of the amplitudes from one day to the next (the cube's: 0.95 a day)
    phi = fits[True]._fitted_modes()["phi"].numpy()
    assert phi.max() > 0.75 and (phi < 1).all()
    assert fits[True]._modes["step"] == (86400.0, "seconds:standard")


def test_the_smoother_lowers_the_error_on_every_gap_and_its_sigma_stays_calibrated(seasonal):
    fit_on, new, truth = seasonal
    gap = np.isnan(new.values) & np.isfinite(truth.values)
    rmse, within = {}, {}
    for sm in (True, False):
        out = DINEOF(harmonics=2, seed=0, n_modes=3, transform_smoother=sm, error_map=True).fit(fit_on).transform(new)
        err = (out["sst"].values - truth.values)[gap]
        rmse[sm] = float(np.sqrt(np.mean(err ** 2)))
        within[sm] = float(np.mean(np.abs(err) <= out["sigma"].values[gap]))
    # measured 0.198 against 0.253 degC
    assert rmse[True] < 0.9 * rmse[False], rmse
    assert 0.5 < within[True] < 0.9, within


def test_the_smoother_decays_over_missing_steps_and_sorts_the_steps(smoothed_and_alone, seasonal):
    fits, _, _, _ = smoothed_and_alone
    m = fits[True]
    phi = m._fitted_modes()["phi"].numpy()
    _, new, _ = seasonal
    f = _transition(m, new.isel(time=[0, 1, 3, 10])).numpy()
    np.testing.assert_allclose(f, [np.zeros_like(phi), phi, phi ** 2, phi ** 7])
    assert _transition(m, new.isel(time=[0])) is None  # one step: nothing to smooth across
    assert _transition(fits[False], new) is None
    # steps out of time order are smoothed in time order and returned in the order given
    perm = np.random.default_rng(1).permutation(new.sizes["time"])[:60]
    shuffled = m.transform(new.isel(time=perm))["sst"].values
    in_order = m.transform(new.isel(time=np.sort(perm)))["sst"].values
    np.testing.assert_array_equal(shuffled, in_order[np.argsort(np.argsort(perm))])


def test_a_fit_on_steps_out_of_time_order_has_the_persistence_of_the_sorted_one():
    # reversed: no fitted step (new dates ignored); shuffled: phi 0, the smoother silently off
    gappy, _ = lowrank_cube(40, 10, 12, cover=0.4, seed=3, dates=True)
    want = DINEOF(seed=0, n_modes=3).fit(gappy)._fitted_modes()
    assert want["phi"].numpy().min() > 0.8
    for perm in (np.arange(40)[::-1], np.random.default_rng(0).permutation(40)):
        got = DINEOF(seed=0, n_modes=3).fit(gappy.isel(time=perm))._fitted_modes()
        np.testing.assert_allclose(got["phi"].numpy(), want["phi"].numpy(), rtol=1e-6)
        assert got["step"] == want["step"] == (86400.0, "seconds:standard")


@pytest.mark.parametrize("fit_cal, new_cal", [("standard", "noleap"), ("noleap", "standard"), ("360_day", "noleap")])
def test_new_dates_in_another_calendar_decay_by_their_durations(fit_cal, new_cal):
    # the fit's step compared with the new steps only in the same calendar: other dates 2 and 5 days
    # apart were taken one fitted step apart (phi, not phi ** 2 and phi ** 5)
    gappy, _ = lowrank_cube(40, 10, 12, cover=0.4, seed=3)
    past = gappy.assign_coords(time=xr.date_range("2001-01-01", periods=40, calendar=fit_cal, use_cftime=True))
    m = DINEOF(seed=0, n_modes=3).fit(past)
    phi = m._fitted_modes()["phi"].numpy()
    new = gappy[:3].assign_coords(time=xr.date_range("2001-03-01", periods=8, calendar=new_cal, use_cftime=True)[[0, 2, 7]])
    np.testing.assert_allclose(_transition(m, new).numpy(), [np.zeros_like(phi), phi ** 2, phi ** 5])


def test_options_of_the_smoother_are_checked():
    with pytest.raises(InputError, match="transform_smoother must be True or False"):
        DINEOF(transform_smoother="yes")


def test_interpolate_fit_on(seasonal):
    fit_on, new, truth = seasonal
    out = interpolate(new, "dineof", fit_on=fit_on, harmonics=2, n_modes=3, seed=0)
    ref = DINEOF(harmonics=2, n_modes=3, seed=0).fit(fit_on).transform(new)["sst"]
    xr.testing.assert_identical(out.drop_attrs(), ref.drop_attrs())
    assert out.attrs["fitted_on"] == ref.attrs["fitted_on"]
    scored = interpolate(new, "dineof", fit_on=fit_on, withhold=0.1, harmonics=2, n_modes=3, seed=0)
    assert 0 < scored.attrs["val_rmse"] < 1.0
    with pytest.raises(InputError, match="fit_on.*checkpoint"):
        interpolate(new, "unet", fit_on=fit_on)


# ------------------------------------------------------------------------------- oceandl interpolate --fit-on
@pytest.fixture(scope="module")
def period_files(tmp_path_factory):
    gappy, truth = seasonal_anomaly_cube(seed=2)
    d = tmp_path_factory.mktemp("periods")
    gappy[:500].to_netcdf(d / "past.nc")
    gappy[500:].to_dataset().assign(sst_true=truth[500:]).to_netcdf(d / "new.nc")
    gappy[500:, :10].to_netcdf(d / "smaller.nc")
    return d


def test_cli_fit_on_fills_a_file_with_a_fit_on_another(period_files, tmp_path):
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    out = tmp_path / "filled.nc"
    opts = ["--set", "harmonics=2", "--set", "n_modes=3"]
    res = CliRunner().invoke(cli, ["interpolate", str(period_files / "new.nc"), "--var", "sst", "--method", "dineof",
                                   *opts, "--fit-on", str(period_files / "past.nc"), "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "withheld pixels: rmse" in res.output
    with xr.open_dataset(out) as ds, xr.open_dataset(period_files / "new.nc") as src, \
            xr.open_dataset(period_files / "past.nc") as past:
        assert ds.sizes["time"] == 230
        assert "variable 'sst', 500 steps" in ds["sst"].attrs["fitted_on"]
        assert "--fit-on" in ds.attrs["history"].splitlines()[0] and "past.nc" in ds.attrs["history"]
        # the file is the Python call's fill (same seed: the same 10 % withheld)
        ref = interpolate(src["sst"], "dineof", fit_on=past["sst"], withhold=0.1, seed=0, harmonics=2, n_modes=3)
        gap = ds["missing_flag"].values == 1
        np.testing.assert_allclose(ds["sst"].values[gap], ref.values[gap], rtol=0, atol=1e-5)
        obs = np.isfinite(src["sst"].values)
        np.testing.assert_array_equal(ds["sst"].values[obs], src["sst"].values[obs])  # withheld ones too
        clim = Climatology(harmonics=2).fit(past["sst"]).transform(src["sst"])["sst"].values
        t = src["sst_true"].values
        err, err_clim = ds["sst"].values[gap] - t[gap], clim[gap] - t[gap]
        assert np.sqrt(np.mean(err ** 2)) < 0.5 * np.sqrt(np.mean(err_clim ** 2))


@pytest.mark.parametrize("args, parts", [
    (["--method", "unet"], ["--fit-on: method 'unet'", "checkpoint"]),
    (["--method", "dineof", "--refit"], ["--fit-on: not with --refit"]),
    (["--method", "dineof", "--chunks", "time=5", "--halo", "lat=2"], ["--halo: not with --fit-on"]),
    (["--method", "dineof", "--chunks", "time=5", "--fit-on-other", "smaller.nc"], ["12 latitudes", "has 10"]),
    (["--method", "eof", "--fit-on-other", "smaller.nc"], ["12 latitudes", "the field fitted has 10"]),
    (["--method", "eof", "--fit-on-other", "missing.nc"], ["missing.nc"]),
    (["--method", "eof", "--out-is-fit"], ["is the input file"]),
])
def test_cli_fit_on_refusals(period_files, tmp_path, args, parts):
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    from fakes import assert_cli_error

    fit = period_files / "past.nc"
    out = tmp_path / "out.nc"
    if "--fit-on-other" in args:
        i = args.index("--fit-on-other")
        fit, args = period_files / args[i + 1], args[:i] + args[i + 2:]
    if "--out-is-fit" in args:
        args = [a for a in args if a != "--out-is-fit"]
        out = fit
    before = fit.read_bytes() if fit.exists() else None
    res = CliRunner().invoke(cli, ["interpolate", str(period_files / "new.nc"), "--var", "sst", *args,
                                   "--fit-on", str(fit), "--quiet", "-o", str(out), "--overwrite"])
    assert_cli_error(res, 2, *parts)
    assert not list(tmp_path.iterdir())
    if before is not None:
        assert fit.read_bytes() == before


@pytest.mark.filterwarnings("ignore:.*cross-validation set is 6 squares")  # 35 steps of 18 x 30 px
def test_dineof_modes_of_35_real_winters_fill_the_next_15():
    # the NDJFM SST anomalies shipped with eofs (real data), blob clouds over half of each winter
    eofs_examples = pytest.importorskip("eofs.examples")
    from scipy.ndimage import gaussian_filter

    da = xr.open_dataset(eofs_examples.example_data_path("sst_ndjfm_anom.nc"))["sst"].load()
    f = gaussian_filter(np.random.default_rng(0).standard_normal(da.shape), (0, 3, 3))
    cloud = f > np.quantile(f, 0.5, axis=(1, 2), keepdims=True)
    gappy = da.where(~cloud)
    fit, new, truth = gappy[:35], gappy[35:], da.values[35:]
    gap = cloud[35:] & np.isfinite(truth)

    def rmse(ds):
        return float(np.sqrt(np.mean((ds["sst"].values[gap] - truth[gap]) ** 2)))

    clim = rmse(Climatology(harmonics=0).fit(fit).transform(new))  # one winter a year: no cycle to fit
    dineof = rmse(DINEOF(seed=0).fit(fit).transform(new))
    assert dineof < 0.8 * clim, (dineof, clim)  # measured 0.450 against 0.620 degC


def test_accessors_take_fit_on(seasonal):
    fit_on, new, _ = seasonal
    ref = interpolate(new, "dineof", fit_on=fit_on, harmonics=2, n_modes=3, seed=0)
    a = new.oceandl.interpolate("dineof", fit_on=fit_on, harmonics=2, n_modes=3, seed=0)
    b = new.to_dataset().oceandl.interpolate("dineof", fit_on=fit_on.to_dataset().assign(other=fit_on * 2),
                                             var="sst", harmonics=2, n_modes=3, seed=0)
    for out in (a, b):
        np.testing.assert_array_equal(out.values, ref.values)
        assert out.attrs["fitted_on"] == ref.attrs["fitted_on"]


@pytest.mark.parametrize("names", [{"lat": "latitude", "lon": "longitude"}, {"lat": "y", "lon": "x", "time": "t"}])
def test_new_field_with_dims_named_otherwise(names):
    # the fitted field's (time, lat, lon), the new one's (time, latitude, longitude): the output
    # was transposed to the fitted field's dim names (xarray ValueError)
    gappy, _ = lowrank_cube(30, 12, 14, cover=0.4, seed=1, dates=True)
    m = EOFInterpolator(n_modes=3).fit(gappy)
    ref = m.transform(gappy)
    new = gappy.rename(names).transpose(names.get("time", "time"), names["lon"], names["lat"])
    out = m.transform(new)
    assert out["sst"].dims == new.dims and out["missing_flag"].dims == new.dims
    np.testing.assert_array_equal(out["sst"].transpose(*[names.get(d, d) for d in ref["sst"].dims]).values,
                                  ref["sst"].values)


@pytest.mark.filterwarnings("ignore:.*held-out points to calibrate sigma on")  # small cubes: not the point here
@pytest.mark.parametrize("error_map", [False, True])
def test_dineof_fitted_again_transforms_with_the_new_fit(error_map):
    # transform() caches the fit's modes (_fitted_modes): a second fit() on another period kept
    # filling with the first period's modes under the second period's means (48 degC off on
    # seasonal_anomaly_cube)
    gappy, _ = lowrank_cube(100, 12, 14, cover=0.4, seed=1, dates=True)
    new = gappy[80:]
    kw = dict(seed=0, n_modes=3, error_map=error_map)
    m = DINEOF(**kw).fit(gappy[:40] * 2)
    m.transform(new)
    m.fit(gappy[40:80])
    ref = DINEOF(**kw).fit(gappy[40:80]).transform(new)
    out = m.transform(new)
    for v in ref.data_vars:
        np.testing.assert_array_equal(out[v].values, ref[v].values)
    # another grid after that: the modes of this one, not a torch size error
    gappy, _ = lowrank_cube(30, 10, 11, cover=0.4, seed=2, dates=True)
    assert m.fit(gappy).transform(gappy)["sst"].shape == gappy.shape


def test_a_failed_fit_leaves_no_fit_to_transform_with():
    # a refit that failed part-way (here: dates not increasing, refused by temporal_filter) had
    # replaced the means and grid but not the modes: transform() filled with that mix, unsaid
    gappy, _ = lowrank_cube(40, 12, 14, cover=0.4, seed=1, dates=True)
    fit_on, new = gappy[:30], gappy[30:]
    m = DINEOF(seed=0, n_modes=3, temporal_filter=0.1).fit(fit_on)
    with pytest.raises(InputError, match="not increasing"):
        m.fit(fit_on[::-1])
    with pytest.raises(InputError, match="call fit\\(\\) before transform"):
        m.transform(new)
    with pytest.raises(InputError, match="call fit\\(\\) before reconstruct"):
        m.reconstruct()


def test_a_new_field_in_other_units_is_refused():
    # fitted in kelvin, filling degree_Fahrenheit: refused (kelvin against degC is converted:
    # tests/test_fit_units.py); units not said, with values 273 off the fit's: refused too, as the
    # fitted pixel means (~290) were taken from ~17 degC values, an anomaly of -273 that the modes
    # "filled" (gap RMSE 271 degC), unsaid
    gappy, _ = lowrank_cube(30, 12, 14, cover=0.4, seed=1, dates=True)
    kelvin = (gappy + 273.15).assign_attrs(units="K")
    for method in ("eof", "climatology", "dineof"):
        m = get_method(method)(**({"n_modes": 2} if method != "climatology" else {"harmonics": 0})).fit(kelvin)
        with pytest.raises(InputError, match="in units 'degree_Fahrenheit', the field fitted in 'K'"):
            m.transform(gappy.assign_attrs(units="degree_Fahrenheit"))
        with pytest.raises(InputError, match="-273.1 from the fitted pixel means.*other units"):  # units not said
            m.transform(gappy.assign_attrs(units=None))
    # the same unit spelled otherwise, or not said, with values where the fit's are: filled
    m = EOFInterpolator(n_modes=2).fit(gappy.assign_attrs(units="degC"))
    ref = m.transform(gappy)["sst"].values
    for units in ("degree_Celsius", "Celsius", None):
        np.testing.assert_array_equal(m.transform(gappy.assign_attrs(units=units))["sst"].values, ref)


def test_an_error_of_the_field_fitted_names_it(period_files, tmp_path):
    # both fields are 'sst': the fit's refusal named the field filled ("new.nc: variable 'sst':
    # needs at least 2 time steps") when the one-step file was the one given to --fit-on
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    from fakes import assert_cli_error

    with xr.open_dataset(period_files / "past.nc") as ds:
        past = ds["sst"].load()
    with pytest.raises(InputError, match="^fit_on: variable 'sst': needs at least 2 time steps"):
        interpolate(past, "eof", fit_on=past[:1])
    one = tmp_path / "one.nc"
    past[:1].to_netcdf(one)
    out = tmp_path / "out.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(period_files / "past.nc"), "--method", "eof", "--fit-on", str(one),
                                   "--quiet", "-o", str(out)])
    line = assert_cli_error(res, 2, f"--fit-on {one}: variable 'sst': needs at least 2 time steps")
    assert "past.nc" not in line and not out.exists()


def test_longitudes_in_the_other_convention_are_the_same_grid():
    # fitted on -10..0 E, the new field on 350..360 (0..360, sorted: 0 first): the same pixels,
    # refused as "not the fitted field's (regrid it first)" though the CLI (open_field) filled them
    gappy, _ = lowrank_cube(30, 12, 14, cover=0.4, seed=1, dates=True)
    m = DINEOF(n_modes=3, seed=0).fit(gappy)
    ref = m.transform(gappy)["sst"]
    east = gappy.assign_coords(lon=gappy.lon % 360).sortby("lon")
    assert east.lon.values[0] == 0 and east.lon.values[-1] > 350
    out = m.transform(east)["sst"]
    np.testing.assert_array_equal(out.lon.values, east.lon.values)
    np.testing.assert_array_equal(out.values, ref.assign_coords(lon=ref.lon % 360).sortby("lon").values)
    # a projected x (km) does not wrap: 360 km is not 0 km
    x = gappy.assign_coords(lon=np.arange(14) * 20.0).assign_coords(lon=lambda d: d.lon.assign_attrs(units="km"))
    m = EOFInterpolator(n_modes=3).fit(x)
    with pytest.raises(InputError, match="longitudes .* are not the fitted field's \\(point 0: 360.0 against 0.0\\)"):
        m.transform(x.assign_coords(lon=x.lon + 360))


def test_cli_fit_on_without_var_fits_inputs_variable(period_files, tmp_path):
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    # a fit file of two fields: without --var, INPUT's (sst), not an "ambiguous" refusal
    with xr.open_dataset(period_files / "past.nc") as past:
        both = past.assign(chl=(past["sst"] * 0 + 0.3).assign_attrs(units="mg m-3", long_name="chlorophyll"))
        both.to_netcdf(tmp_path / "both.nc")
    new = tmp_path / "new_sst.nc"
    with xr.open_dataset(period_files / "new.nc") as src:
        src[["sst"]].to_netcdf(new)
    out = tmp_path / "out.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(new), "--method", "eof", "--set", "n_modes=3",
                                   "--fit-on", str(tmp_path / "both.nc"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as ds:
        assert ds["sst"].attrs["fitted_on"].startswith("variable 'sst', 500 steps")


@pytest.fixture(scope="module")
def drifting():
    """A synthetic SST cube whose last 30 days the modes of its first 60 describe less well
    (advected eddies that do not recur, a season moving on)."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field

    ds = synthetic_sst(n_time=90, ny=24, nx=24, cloud_cover=0.5, seed=1)
    da = open_field(ds, "sst")
    truth = open_field(ds.assign(sst=ds["sst_true"]), "sst").values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small cube's CV warning
        model = DINEOF(seed=0, error_map=True, n_modes=5).fit(da[:60])
    return model, da, truth


def test_transform_fits_sigma_on_the_new_fields_own_held_out_observations(drifting):
    model, da, truth = drifting
    new = da[60:]
    gap = np.isnan(new.values) & np.isfinite(truth[60:])
    within = {}
    for cal in (True, False):
        out = interpolate(new, "dineof", fit_on=model, transform_calibration=cal, return_dataset=True)
        err = np.abs(out["sst"].values - truth[60:])[gap]
        within[cal] = float(np.mean(err <= out["sigma"].values[gap]))
        attrs = out["sigma"].attrs
        if cal:
            assert attrs["transform_sigma_scale"] > 1.5 * model.cv_sigma_scale_
            assert "fitted on this field" in attrs["transform_sigma_calibration"]
            assert attrs["transform_sigma_calibration_points"] >= 200
        else:
            assert attrs["transform_sigma_scale"] == pytest.approx(model.cv_sigma_scale_)
            assert "transform_calibration=False" in attrs["transform_sigma_calibration"]
    # measured 0.75 against 0.39 with the fit's scale (0.68 is a calibrated Gaussian's)
    assert 0.55 < within[True] < 0.85 and within[False] < 0.5, within


def test_transform_keeps_the_fits_scale_on_the_fitted_period_and_a_single_step(drifting):
    model, da, _ = drifting
    # the fitted steps: held out there, their observations were still the fit's (a scale 3-6x too small)
    own = model.transform(da[:60])["sigma"].attrs
    assert own["transform_sigma_scale"] == pytest.approx(model.cv_sigma_scale_)
    assert "lie in the fitted period" in own["transform_sigma_calibration"]
    # one step: no other day's cloud to paste
    one = model.transform(da[75:76])["sigma"].attrs
    assert one["transform_sigma_scale"] == pytest.approx(model.cv_sigma_scale_)
    assert "0 observations of this field could be hidden" in one["transform_sigma_calibration"]
    # straddling: only the steps after the fitted period are held out
    mixed = model.transform(da[30:90])["sigma"].attrs
    assert "fitted on this field" in mixed["transform_sigma_calibration"]
    assert mixed["transform_sigma_scale"] > 1.5 * model.cv_sigma_scale_


def test_too_few_held_out_points_left_by_the_clip_is_said_as_such(drifting, monkeypatch):
    # enough observations hidden but fewer than SIGMA_MIN_POINTS kept by the clip: the attr said
    # "N observations ... could be hidden (fewer than 200; one step, or no cloud to paste)", N >= 200
    import oceandl.interp.dineof as dineof_module

    model, da, _ = drifting
    monkeypatch.setattr(dineof_module, "calibration_z", lambda z: np.ravel(z)[:10])
    attrs = model.transform(da[60:])["sigma"].attrs
    assert attrs["transform_sigma_scale"] == pytest.approx(model.cv_sigma_scale_)
    text = attrs["transform_sigma_calibration"]
    assert "10 of the " in text and "are within 5 robust stds (fewer than 200)" in text, text
    assert "could be hidden" not in text


def test_a_saved_fit_keeps_its_fitted_period(drifting, tmp_path):
    from oceandl.interp import load_fitted

    model, da, _ = drifting
    model.save(tmp_path / "fit")
    loaded = load_fitted(tmp_path / "fit")
    for part in (da[:60], da[60:]):
        a, b = model.transform(part), loaded.transform(part)
        np.testing.assert_array_equal(a["sigma"].values, b["sigma"].values)
        assert a["sigma"].attrs["transform_sigma_calibration"] == b["sigma"].attrs["transform_sigma_calibration"]
