"""DINEOF: reconstruction quality, choice of the number of modes, determinism, options."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from oceandl.errors import InputError
from oceandl.interp import DINEOF, interpolate
from oceandl.interp.dineof import _laplacian_filter, cv_points
from oceandl.metrics.interpolation import interp_metrics

from fakes import cloud_transfer, lowrank_cube, seasonal_anomaly_cube, torch_threads


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_cube(nt=60, ny=32, nx=40, rank=3, noise=0.1, cover=0.5, seed=0):
    """Rank-``rank`` field + mean + white noise, land patch, blob clouds: (gappy, truth) (time, lat, lon)."""
    return lowrank_cube(nt, ny, nx, rank=rank, noise=noise, cover=cover, seed=seed)


@pytest.fixture(scope="module")
def rank3():
    return make_cube(rank=3)


@pytest.fixture(scope="module")
def rank3_result(rank3):
    with torch_threads(1):
        gappy, _ = rank3
        return interpolate(gappy, "dineof", withheld=cloud_transfer(gappy), return_dataset=True, seed=0, device="cpu")


def test_beats_climatology_on_withheld_clouds(rank3, rank3_result):
    gappy, truth = rank3
    held = cloud_transfer(gappy)
    assert held.sum() > 1000
    clim = interpolate(gappy, "climatology", withheld=held, return_dataset=True)
    ds = rank3_result
    assert ds.attrs["val_n"] == held.sum()
    # Rank-3 signal of std ~1.5 and white noise 0.1: DINEOF is limited by the noise only.
    assert ds.attrs["val_rmse"] < 0.3 * clim.attrs["val_rmse"]
    assert ds.attrs["val_rmse"] < 0.2
    assert ds.attrs["val_corr"] > 0.99
    assert 0.95 < ds.attrs["val_std_ratio"] < 1.05
    # Against the noisy truth on the real gaps (clouds), too.
    gaps = (gappy.isnull() & truth.notnull()).values
    m = interp_metrics(ds["sst"], truth, mask=gaps)
    assert m["rmse"] < 0.2 and m["n"] > 20000


def test_picks_the_rank_and_reports_convergence(rank3_result):
    attrs = rank3_result.attrs
    assert attrs["n_modes"] == 3
    assert attrs["converged"] == 1
    assert 1 <= attrs["n_iter"] <= 100 and attrs["n_iter_total"] > attrs["n_iter"]
    curve = json.loads(attrs["cv_curve"])
    ks = [k for k, _ in curve]
    errs = [e for _, e in curve]
    # Grown one mode at a time; stopped 3 modes after the best one.
    assert ks == list(range(1, len(ks) + 1)) and ks[-1] == 3 + 3
    assert int(np.argmin(errs)) + 1 == 3
    assert errs[0] > 2 * errs[2]  # each real mode lowers the CV error a lot
    assert attrs["cv_rmse"] == pytest.approx(min(errs), rel=1e-6)


@pytest.mark.parametrize("rank", [1, 5])
def test_picks_other_ranks(rank):
    gappy, _ = make_cube(rank=rank, seed=rank, nt=50, ny=24, nx=30)
    # the rank path (shrink="auto" keeps the threshold on rank 1: CV 0.1050 against 0.1047, not
    # clearly worse; truth RMSE 0.111 against 0.104)
    model = DINEOF(seed=0, device="cpu", shrink=0).fit(gappy)
    assert model.n_modes_ == rank
    assert len(model.cv_curve_) == rank + 3


def test_cv_squares_fit_small_grids():
    """The default 9 x 9 CV squares covered whole 4 x 5 frames: every k predicted the CV points by
    the pixel means, and the flat CV curve kept 1 mode of a rank-2 field (truth RMSE 0.66 on the
    gaps, 0.24 now). A radius given explicitly is used as is."""
    gappy, truth = lowrank_cube(200, 4, 5, rank=2, seed=1, land=(0, 1, 0, 1))
    gaps = (gappy.isnull() & truth.notnull()).values
    ds = interpolate(gappy, "dineof", return_dataset=True, seed=0, device="cpu")
    assert interp_metrics(ds["sst"], truth, mask=gaps)["rmse"] < 0.35
    assert ds.attrs["n_modes"] >= 2 and ds.attrs["cv_radius"] == 0
    assert DINEOF(seed=0, device="cpu", cv_radius=4).fit(gappy).cv_radius_ == 4
    assert DINEOF(seed=0, device="cpu").fit(make_cube(nt=20, ny=18, nx=20)[0]).cv_radius_ == 4  # unchanged


def test_same_seed_same_output_other_seed_other_cv_set(rank3):
    gappy, _ = rank3
    small = gappy.isel(time=slice(0, 30))
    a = interpolate(small, "dineof", seed=3, return_dataset=True)
    b = interpolate(small, "dineof", seed=3, return_dataset=True)
    c = interpolate(small, "dineof", seed=4, return_dataset=True)
    np.testing.assert_array_equal(a["sst"].values, b["sst"].values)
    assert a.attrs["cv_curve"] == b.attrs["cv_curve"]
    assert a.attrs["cv_curve"] != c.attrs["cv_curve"]


def test_cv_set_does_not_depend_on_the_grid_orientation():
    """The CV squares were drawn on the grid as given: the same field with latitudes descending (or
    longitudes in 0..360) got another CV set and another fit than with them ascending, which is
    what the CLI (open_field sorts the grid) gives (synthetic SST 16 x 24 x 24, seed 1: 15 modes,
    truth RMSE 1.05 ascending, 3 modes and 2.36 descending). They are drawn on the clean grid now."""
    gappy, _ = lowrank_cube(30, 20, 24, rank=3, seed=2)
    gappy = gappy.assign_coords(lon=np.linspace(-6.0, 6.0, 24))  # across Greenwich: 0..360 reorders it
    ref = interpolate(gappy, "dineof", seed=0, device="cpu", shrink=0)
    for other in (gappy.isel(lat=slice(None, None, -1)),
                  gappy.assign_coords(lon=gappy.lon % 360).sortby("lon").isel(lat=slice(None, None, -1))):
        out = interpolate(other, "dineof", seed=0, device="cpu", shrink=0)
        assert out.attrs["n_modes"] == ref.attrs["n_modes"]
        np.testing.assert_allclose(np.array(json.loads(out.attrs["cv_curve"])),
                                   np.array(json.loads(ref.attrs["cv_curve"])), rtol=1e-3)
        back = out.assign_coords(lon=(out.lon + 180) % 360 - 180).sortby("lon").sortby("lat")
        np.testing.assert_allclose(back.values, ref.values, atol=1e-3)


@pytest.mark.parametrize("cv_shape", ["squares", "clouds"])
def test_cv_set_does_not_depend_on_the_order_of_the_time_steps(cv_shape):
    """The CV set was drawn on the time steps as given: the same field with its days shuffled (or
    reversed), which oceandl.interpolate takes where `oceandl interpolate` refuses it, got another CV
    set and another fill than sorted (synthetic SST 40 x 24 x 24, seed 2: up to 2.34 degC apart, truth
    RMSE on the gaps 1.221 sorted, 1.240 shuffled). Drawn in time order now: the same fill."""
    gappy, _ = lowrank_cube(30, 20, 24, rank=3, seed=2)
    gappy = gappy.assign_coords(time=np.datetime64("2020-01-01") + np.arange(30).astype("timedelta64[D]"))
    ref = interpolate(gappy, "dineof", seed=0, device="cpu", shrink=0, cv_shape=cv_shape)
    for order in (np.random.default_rng(0).permutation(30), np.arange(30)[::-1]):
        out = interpolate(gappy.isel(time=order), "dineof", seed=0, device="cpu", shrink=0, cv_shape=cv_shape)
        assert out.attrs["n_modes"] == ref.attrs["n_modes"]
        np.testing.assert_allclose(np.array(json.loads(out.attrs["cv_curve"])),
                                   np.array(json.loads(ref.attrs["cv_curve"])), rtol=5e-3)  # float32 SVDs
        np.testing.assert_allclose(out.sortby("time").values, ref.values, atol=1e-2)  # float32 roundoff


def test_cv_shape_clouds_pastes_other_days_clouds(rank3):
    """DINEOF's own cloud-shaped CV set (dineof_cvp: other days' clouds pasted onto the cleanest
    days) was not available; the squares are kept as the default. On the synthetic SST (60 x 32 x
    32, 60 % cloud, shrink=0, seeds 0-2) it gave truth RMSE on the gaps 2.17 / 2.01 / 1.60 against
    2.35 / 1.95 / 2.04 with squares."""
    gappy, truth = rank3
    model = DINEOF(cv_shape="clouds", seed=0, shrink=0, device="cpu").fit(gappy)
    assert model.cv_shape_ == "clouds" and model.cv_radius_ is None and model.n_modes_ == 3
    assert model.cv_squares_ >= 10  # separate cloud patches
    ds = model.reconstruct()
    assert ds.attrs["cv_shape"] == "clouds" and "cv_radius" not in ds.attrs
    again = DINEOF(cv_shape="clouds", seed=0, shrink=0, device="cpu").fit(gappy).reconstruct()
    np.testing.assert_array_equal(again["sst"].values, ds["sst"].values)
    assert DINEOF(seed=0, shrink=0, device="cpu").fit(gappy).reconstruct().attrs["cv_shape"] == "squares"
    # no cloud to paste (a field without gaps over the ocean): squares, and said
    with pytest.warns(UserWarning, match="no cloud pattern to paste"):
        full = DINEOF(cv_shape="clouds", seed=0, max_modes=4, device="cpu").fit(truth.isel(time=slice(0, 20)))
    assert full.cv_shape_ == "squares"
    with pytest.raises(InputError, match="cv_shape must be 'squares' or 'clouds'"):
        DINEOF(cv_shape="blobs")
    with pytest.raises(InputError, match="cv_radius has no effect with cv_shape='clouds'"):
        DINEOF(cv_shape="clouds", cv_radius=2)


def test_a_cv_set_of_few_squares_is_reported(rank3):
    """On a short small cube the CV set was 2-3 squares on 2-3 days (16 x 24 x 24 synthetic SST): the
    mode count it picked was noise (1 to 15 modes by seed, truth RMSE 1.2 to 2.0), unsaid. The
    squares are counted (attrs cv_squares) and fewer than 10 are warned about."""
    gappy, _ = make_cube(nt=16, ny=24, nx=24, seed=1)
    with pytest.warns(UserWarning, match=r"cross-validation set is \d squares of 9 x 9 px .* too few"):
        small = interpolate(gappy, "dineof", seed=0, device="cpu", shrink=0)
    assert 1 <= small.attrs["cv_squares"] < 10
    # the usual cubes keep quiet: the rank-3 one (60 x 32 x 40) has 20-odd squares
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = DINEOF(seed=0, device="cpu", shrink=0, max_modes=4).fit(rank3[0])
    assert model.cv_squares_ >= 10 and model.reconstruct()["sst"].attrs["cv_squares"] == model.cv_squares_


def test_fixed_n_modes_skips_cross_validation(rank3):
    gappy, truth = rank3
    model = DINEOF(n_modes=3).fit(gappy)
    ds = model.reconstruct()
    assert model.n_modes_ == 3 and model.cv_curve_ == []
    assert "cv_curve" not in ds.attrs and ds.attrs["n_modes"] == 3
    gaps = (gappy.isnull() & truth.notnull()).values
    assert interp_metrics(ds["sst"], truth, mask=gaps)["rmse"] < 0.2
    # Too few modes is clearly worse: the CV curve measures something real.
    one = interpolate(gappy, "dineof", n_modes=1)
    assert interp_metrics(one, truth, mask=gaps)["rmse"] > 2 * interp_metrics(ds["sst"], truth, mask=gaps)["rmse"]


def test_svd_backends_and_float64_agree(rank3):
    gappy, _ = rank3
    small = gappy.isel(time=slice(0, 30))
    ref = interpolate(small, "dineof", n_modes=3, svd="gram").values
    for opts in ({"svd": "full"}, {"svd": "lowrank"}, {"svd": "subspace"}, {"dtype": "float64"}):
        out = interpolate(small, "dineof", n_modes=3, **opts).values
        np.testing.assert_allclose(out, ref, atol=5e-3, err_msg=str(opts))


def test_subspace_iteration_reaches_the_gram_fixed_point(rank3):
    """svd="subspace" (one warm-started subspace step per iteration) chooses what the exact Gram
    path chooses through cross-validation and converges to the same fill."""
    gappy, _ = rank3
    exact = DINEOF(seed=0, device="cpu", svd="gram").fit(gappy)
    warm = DINEOF(seed=0, device="cpu", svd="subspace").fit(gappy)
    assert (warm.n_modes_, warm.shrink_) == (exact.n_modes_, exact.shrink_) and warm.converged_
    assert warm.cv_rmse_ == pytest.approx(exact.cv_rmse_, rel=1e-5)
    a, b = exact.reconstruct()["sst"].values, warm.reconstruct()["sst"].values
    # measured: 2e-6 RMS, 2e-5 at most (the noise is 0.1, the convergence tolerance 1e-3)
    assert np.sqrt(np.nanmean((a - b) ** 2)) < 2e-5 and np.nanmax(np.abs(a - b)) < 2e-4
    assert warm._basis is None  # not kept after the fit


def test_iteration_limits(rank3):
    gappy, _ = rank3
    small = gappy.isel(time=slice(0, 30))
    m = DINEOF(n_modes=3, max_iter=2).fit(small)
    assert m.n_iter_ == 2 and not m.converged_
    assert m.reconstruct().attrs["converged"] == 0
    loose = DINEOF(n_modes=3, tol=0.5).fit(small)
    strict = DINEOF(n_modes=3, tol=1e-5).fit(small)
    assert loose.n_iter_total_ < strict.n_iter_total_


def test_unconverged_cv_fits_are_reported(rank3):
    """Only the final fit's convergence was reported: on the synthetic SST (120 x 24 x 32) the CV
    fits of 2-10 modes all stopped at max_iter=100 while the attrs said converged=1."""
    gappy, _ = rank3
    small = gappy.isel(time=slice(0, 30))
    ds = interpolate(small, "dineof", max_iter=1, shrink=0, return_dataset=True, seed=0, device="cpu")
    assert ds.attrs["cv_unconverged"] == len(json.loads(ds.attrs["cv_curve"])) and ds.attrs["converged"] == 0
    ok = interpolate(small, "dineof", return_dataset=True, seed=0, device="cpu")
    assert ok.attrs["cv_unconverged"] == 0 and ok.attrs["converged"] == 1


def test_keep_observed_false_gives_the_low_rank_fit(rank3):
    gappy, _ = rank3
    small = gappy.isel(time=slice(0, 30))
    out = interpolate(small, "dineof", n_modes=3, keep_observed=False).values
    obs = np.isfinite(small.values)
    resid = out[obs] - small.values[obs]
    assert 0.05 < np.sqrt(np.mean(resid**2)) < 0.15  # the noise (0.1) is what the 3 modes leave out


def test_temporal_filter_prefers_smooth_modes():
    # Two modes of nearly equal variance: a slow one and a rough (alternating) one, slightly stronger.
    nt, ny, nx = 40, 10, 12
    t = np.arange(nt)
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    p_slow, p_rough = np.sin(np.pi * xx), np.cos(np.pi * yy)
    slow = np.sin(2 * np.pi * t / nt)[:, None, None] * p_slow
    rough = 0.8 * (-1.0) ** t[:, None, None] * p_rough
    field = xr.DataArray(10 + slow + rough, dims=("time", "lat", "lon"))
    field[5, 2:5, 3:6] = np.nan  # a small gap so that the field is gappy at all

    def rank1(**opts):
        out = interpolate(field, "dineof", n_modes=1, keep_observed=False, **opts).values - 10
        return np.corrcoef(np.nan_to_num(out).ravel(), slow.ravel())[0, 1]

    assert abs(rank1()) < 0.3  # the rough mode wins without the filter
    assert rank1(temporal_filter=0.25, filter_iter=2) > 0.95


@pytest.mark.parametrize("svd", ["gram", "full"])
def test_temporal_filter_reconstruction_is_dineofs(svd):
    """With the filter, DINEOF (ssvd_lancz.F) takes v and s^2 from the filtered covariance
    F X X^T F^T and the spatial mode u = X^T v / |X^T v|: each mode is the projection of X on v
    scaled by s / |X^T v|. The bare projection was used (factor 1), which filled the synthetic SST's
    gaps worse (truth RMSE 1.76 -> 1.61 at filter 0.01, 1.68 -> 1.47 with filter_iter=3)."""
    import torch

    rng = np.random.default_rng(0)
    nt, n, k = 30, 50, 3
    A = rng.standard_normal((nt, 4)) @ rng.standard_normal((4, n)) + 0.3 * rng.standard_normal((nt, n))
    F = _laplacian_filter(nt, 0.2, 2)
    model = DINEOF(temporal_filter=0.2, filter_iter=2, center=False, shrink=0, svd=svd, dtype="float64")
    model._F, model._lam = torch.from_numpy(F), 0.0
    got = model._lowrank(torch.from_numpy(A), k).numpy()
    w, V = np.linalg.eigh(F @ A @ A.T @ F.T)
    V, s = V[:, -k:], np.sqrt(w[-k:])
    P = V.T @ A
    want = (V * s) @ (P / np.linalg.norm(P, axis=1, keepdims=True))
    np.testing.assert_allclose(got, want, atol=1e-8)
    assert not np.allclose(got, V @ P, atol=1e-3)  # not the bare projection


def test_a_step_with_no_observation_is_said_and_the_filter_fills_it():
    """An all-NaN day (a satellite outage) was filled with little more than each pixel's time mean
    (no data sets the modes' amplitudes there), unsaid: RMSE 1.92 there on a 24-day 20 x 22 cube,
    0.22 with temporal_filter=0.01 (here 0.70 and 0.23). The fill now says so."""
    import warnings

    gappy, truth = make_cube(nt=24, ny=16, nx=18, rank=2, cover=0.3, seed=2)
    gappy = gappy.copy()
    gappy[7] = np.nan
    day = np.isfinite(truth.values[7])

    def run(**opts):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = interpolate(gappy, "dineof", n_modes=2, seed=0, device="cpu", **opts)
        said = [str(w.message) for w in caught if "no observation" in str(w.message)]
        return out.values[7][day], said

    plain, said = run()
    assert len(said) == 1 and "1 time step(s) with no observation (the first: 7)" in said[0], said
    assert "temporal_filter" in said[0]
    # without re-centring, exactly the pixels' means: what the warning says
    np.testing.assert_allclose(run(center=False)[0], gappy.mean("time").values[day], atol=1e-4)
    smooth, said = run(temporal_filter=0.01)
    assert said == []
    rmse = lambda a: float(np.sqrt(np.mean((a - truth.values[7][day]) ** 2)))  # noqa: E731
    assert rmse(smooth) < 0.5 * rmse(plain), (rmse(smooth), rmse(plain))


@pytest.mark.parametrize("kind", ["datetime64", "cftime", "numbers"])
def test_temporal_filter_warns_on_uneven_time_steps(kind, recwarn):
    """The filter treats consecutive steps as equally spaced: on a series with dropped days it
    smoothed across the gap as if the days were adjacent, unsaid. It now says so; a regular
    series stays quiet."""
    import warnings

    rng = np.random.default_rng(0)
    nt = 24
    values = 10 + rng.standard_normal((nt, 8, 9))
    values[3, 2:5, 2:5] = np.nan
    days = np.arange(nt, dtype=float)
    uneven = np.concatenate([days[:10], days[10:] + 5.0])  # 5 days dropped after day 9

    def times(d):
        if kind == "datetime64":
            return np.datetime64("2020-01-01") + (d * 86400).astype("timedelta64[s]")
        if kind == "cftime":
            return xr.cftime_range("2020-01-01", periods=int(d[-1]) + 1, freq="D", calendar="noleap")[d.astype(int)]
        return d

    def run(d):
        field = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": times(d)})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            interpolate(field, "dineof", n_modes=2, temporal_filter=0.1)
        return [str(w.message) for w in caught if "temporal_filter" in str(w.message)]

    assert run(days) == []
    said = run(uneven)
    assert len(said) == 1 and "uneven (1 of 23" in said[0] and "6x the shortest" in said[0], said


@pytest.mark.parametrize("kind", ["datetime64", "cftime"])
def test_temporal_filter_refuses_unordered_time(kind):
    """The filter smooths each step with the array's neighbouring steps: on a shuffled series it
    smoothed unrelated days together without a word (gap RMSE against the truth 0.63 against
    0.059 for the same days in order, rank-2 field, temporal_filter=0.25). Out-of-order,
    reversed or repeated times are now refused; without the filter the order does not matter.
    (In order: 0.107 since each mode is scaled by its filtered singular value as DINEOF does, which
    damps this noiseless field's 17-day mode under the strongest filter.)"""
    rng = np.random.default_rng(1)
    nt = 40
    t = np.arange(nt)
    yy, xx = np.meshgrid(np.arange(8), np.arange(9), indexing="ij")
    truth = (np.sin(2 * np.pi * t / 30)[:, None, None] * np.cos(yy / 3)
             + np.cos(2 * np.pi * t / 17)[:, None, None] * np.sin(xx / 4))
    gaps = rng.random(truth.shape) < 0.4
    days = (xr.date_range("2001-01-01", periods=nt, calendar="360_day", use_cftime=True) if kind == "cftime"
            else np.datetime64("2001-01-01") + t.astype("timedelta64[D]"))
    field = xr.DataArray(np.where(gaps, np.nan, truth), dims=("time", "lat", "lon"), coords={"time": days})
    opts = dict(n_modes=2, temporal_filter=0.25, filter_iter=3)
    ordered = interpolate(field, "dineof", **opts)
    assert np.sqrt(np.mean((ordered.values - truth)[gaps] ** 2)) < 0.15
    for order in (rng.permutation(nt), t[::-1], np.r_[t[:5], t[4:-1]]):
        with pytest.raises(InputError, match=r"time is not increasing .*sortby\('time'\)"):
            interpolate(field.isel(time=order), "dineof", **opts)
    shuffled = interpolate(field.isel(time=rng.permutation(nt)), "dineof", n_modes=2).sortby("time")
    np.testing.assert_allclose(shuffled.values, interpolate(field, "dineof", n_modes=2).values, atol=1e-4)


def test_laplacian_filter_properties():
    F = _laplacian_filter(9, 0.2, 3)
    np.testing.assert_allclose(F.sum(axis=1), 1.0)  # constants pass unchanged
    np.testing.assert_allclose(F, F.T)
    alternating = (-1.0) ** np.arange(9)
    # Away from the ends the shortest period is damped by (1 - 4 alpha) per application.
    np.testing.assert_allclose((F @ alternating)[3:-3], (1 - 4 * 0.2) ** 3 * alternating[3:-3])


def test_cv_points_are_clustered_observed_subset():
    rng = np.random.default_rng(0)
    obs = rng.random((20, 30, 30)) < 0.6
    for radius in (0, 1, 2):
        cv = cv_points(obs, 0.03, radius, np.random.default_rng(1))
        assert not (cv & ~obs).any()
        assert cv.sum() == pytest.approx(0.03 * obs.sum(), rel=0.15)
    # Clustered: CV points have many CV neighbours; scattered: almost none.
    def neighbours(cv):
        pad = np.pad(cv, ((0, 0), (1, 1), (1, 1)))
        n = sum(np.roll(np.roll(pad, a, 1), b, 2) for a in (-1, 0, 1) for b in (-1, 0, 1))[:, 1:-1, 1:-1] - cv
        return n[cv].mean()

    assert neighbours(cv_points(obs, 0.03, 1, np.random.default_rng(1))) > 2.5
    assert neighbours(cv_points(obs, 0.03, 0, np.random.default_rng(1))) < 0.5


@pytest.mark.parametrize("opts,word", [
    ({"temporal_filter": 0.5}, "temporal_filter"),
    ({"max_modes": 0}, "max_modes"),
    ({"cv_fraction": 0.9}, "cv_fraction"),
    ({"dtype": "float16"}, "dtype"),
    ({"svd": "magic"}, "svd"),
    ({"modes": 3}, "modes"),
])
def test_bad_options(opts, word):
    with pytest.raises(InputError, match=word):
        DINEOF(**opts)


@pytest.mark.parametrize("opts,word", [
    ({"filter_iter": 3}, "filter_iter has no effect without temporal_filter"),
    ({"n_modes": 3, "max_modes": 10}, "max_modes has no effect with n_modes=3"),
    ({"n_modes": 3, "cv_fraction": 0.1}, "cv_fraction has no effect"),
    ({"n_modes": 3, "cv_radius": 1}, "cv_radius has no effect"),
    ({"n_modes": 3, "patience": 5}, "patience has no effect"),
    ({"n_modes": 3, "cv_shape": "clouds"}, "cv_shape has no effect"),
])
def test_options_without_effect_are_refused(opts, word):
    # they were accepted and the fill was the same as without them, bit for bit
    with pytest.raises(InputError, match=word):
        DINEOF(**opts)
    DINEOF(filter_iter=3, temporal_filter=0.01)  # together they act
    DINEOF(max_modes=10, patience=5)


def test_device_that_is_not_there(rank3):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(InputError, match="CUDA"):
        interpolate(rank3[0].isel(time=slice(0, 10)), "dineof", device="cuda")


# ------------------------------------------------------------------------------ shrinkage
def test_shrink_auto_fixes_overfitting_of_rarely_observed_pixels():
    """Realistic clouds (persistent, uneven): the classic DINEOF fits the loadings of pixels seen
    on a few days exactly and extrapolates wildly; CV picks the threshold path, which damps them."""
    from fakes import synthetic_case

    da, truth, valid, held, gaps = synthetic_case(60, 32, 0.6)
    classic = interpolate(da, "dineof", withheld=held, return_dataset=True, seed=0, device="cpu", shrink=0)
    auto = interpolate(da, "dineof", withheld=held, return_dataset=True, seed=0, device="cpu")
    assert classic.attrs["shrink"] == 0 and "shrink_curve" not in classic.attrs
    assert auto.attrs["shrink"] > 0
    lams = [lam for lam, _ in json.loads(auto.attrs["shrink_curve"])]
    assert auto.attrs["shrink"] in lams and lams == sorted(lams, reverse=True)
    # its CV error is the best of both paths
    errs = [e for _, e in json.loads(auto.attrs["shrink_curve"])] + [e for _, e in json.loads(auto.attrs["cv_curve"])]
    assert auto.attrs["cv_rmse"] == pytest.approx(min(errs))
    assert auto.attrs["val_rmse"] < 0.85 * classic.attrs["val_rmse"]
    t_classic = interp_metrics(classic["sst"], truth, mask=gaps)["rmse"]
    t_auto = interp_metrics(auto["sst"], truth, mask=gaps)["rmse"]
    assert t_auto < 0.7 * t_classic
    # the damage was on the rarely observed pixels (classic 2.76 there, 2.35 over all gaps, while pixels
    # seen once sat on the global mean; about their neighbours' means since audit118: 2.16 and 2.18)
    rare = gaps & (valid.mean(axis=0) < 0.2)[None]
    e_classic = interp_metrics(classic["sst"], truth, mask=rare)["rmse"]
    e_auto = interp_metrics(auto["sst"], truth, mask=rare)["rmse"]
    assert e_auto < 0.65 * e_classic, (e_classic, e_auto, t_classic, t_auto)


def test_shrink_auto_keeps_the_threshold_unless_the_rank_is_clearly_better():
    """The classic rank beat the threshold path by a CV error within the CV's noise (0.644 against
    0.658) and filled the gaps from -19 to 34 degC where the truth spans 4-24 (gap RMSE 2.23; the
    threshold's 1.06): one-standard-error rule (synthetic SST 44 x 40 x 40, 50 % cloud, seed 10)."""
    from oceandl.datasets import synthetic_sst

    ds = synthetic_sst(n_time=44, ny=40, nx=40, cloud_cover=0.5, seed=10)
    out = interpolate(ds.sst, "dineof", seed=10, device="cpu", return_dataset=True)
    rank = json.loads(out.sst.attrs["cv_curve"])
    assert min(e for _, e in rank) < out.sst.attrs["cv_rmse"]  # the rank's CV error was the lower
    assert out.sst.attrs["shrink"] > 0
    gaps = ds.sst.isnull().values & ds.sst_true.notnull().values & out.sst.notnull().values
    filled, truth = out.sst.values[gaps], ds.sst_true.values[gaps]
    lo, hi = float(ds.sst.min()), float(ds.sst.max())
    assert lo - 1 < filled.min() and filled.max() < hi + 1, (filled.min(), filled.max(), lo, hi)
    assert np.sqrt(np.mean((filled - truth) ** 2)) < 1.2


def test_shrink_factors_soft_threshold():
    import torch

    m = DINEOF(shrink=0.1)
    m._lam = 0.1
    s = torch.tensor([10.0, 4.0, 1.5, 0.5, 0.0])
    np.testing.assert_allclose((s * m._shrunk(s)).numpy(), [9.0, 3.0, 0.5, 0.0, 0.0], atol=1e-6)
    m._lam = 0.0
    assert torch.equal(m._shrunk(s), torch.ones(5))


@pytest.mark.parametrize("bad", [-0.1, 1.0, True, "yes", None])
def test_shrink_option_checked(bad):
    with pytest.raises(InputError, match="shrink"):
        DINEOF(shrink=bad)


def test_fixed_shrink_is_used_and_reported(rank3):
    gappy, _ = rank3
    ds = interpolate(gappy, "dineof", n_modes=4, shrink=0.05, return_dataset=True, seed=0, device="cpu")
    assert ds.attrs["shrink"] == 0.05 and ds.attrs["n_modes"] == 4
    plain = interpolate(gappy, "dineof", n_modes=4, return_dataset=True, seed=0, device="cpu")
    assert plain.attrs["shrink"] == 0.0  # "auto" with n_modes given is the classic fit
    # the threshold pulls the gap values towards the temporal mean
    gap = gappy.isnull().values & np.isfinite(plain["sst"].values)
    mean = gappy.mean("time").values
    dev = lambda d: np.abs(d["sst"].values - mean)[gap].mean()
    assert dev(ds) < dev(plain)


# ----------------------------------------------------------------------------- seasonal cycle (harmonics)
@pytest.fixture(scope="module")
def seasonal():
    return seasonal_anomaly_cube()  # 730 days x 12 x 16, cover 75 % (95 % in January)


def test_seasonal_cycle_removed_first_recovers_the_anomaly(seasonal):
    """Seasonal harmonics + a rank-2 anomaly under clouds that are thickest in winter: with the
    per-pixel cycle removed first (harmonics='auto' on two years of dates) DINEOF's gaps are 0.30 degC
    off the truth; from the time mean (harmonics=0) its modes spend themselves on the cycle, 0.73,
    and the seasonal climatology alone is 0.84 (measured, seed 0, max_modes 6, shrink 0)."""
    gappy, truth = seasonal
    gap = gappy.isnull().values & truth.notnull().values
    opts = {"max_modes": 6, "shrink": 0, "seed": 0, "device": "cpu"}

    def rmse(da):
        return float(np.sqrt(np.mean((da.values[gap] - truth.values[gap]) ** 2)))

    with torch_threads(1):
        auto = interpolate(gappy, "dineof", harmonics="auto", **opts)
        mean = interpolate(gappy, "dineof", harmonics=0, **opts)
    clim = interpolate(gappy, "climatology")
    # 2 pixels under the winter clouds see too little of the year for 2 harmonics: as in the climatology
    assert auto.attrs["harmonics"] == 2 and auto.attrs["harmonics_fallback_pixels"] == 2
    assert clim.attrs["harmonics_fallback_pixels"] == 2
    assert mean.attrs["harmonics"] == 0 and "harmonics_fallback_pixels" not in mean.attrs
    assert rmse(auto) < 0.4, rmse(auto)
    assert rmse(auto) < 0.6 * rmse(mean), (rmse(auto), rmse(mean))
    assert rmse(auto) < 0.45 * rmse(clim), (rmse(auto), rmse(clim))
    assert json.loads(auto.attrs["options"])["harmonics"] == "auto"


def test_withheld_pixels_never_enter_the_seasonal_fit(seasonal):
    """Withheld values set to 1000 change nothing: the fit (cycle, modes) is that of the field with
    them missing, and the cycle removed is the climatology's fit of the same observations."""
    from oceandl.interp import get_method

    gappy, _ = seasonal
    held = cloud_transfer(gappy)
    assert held.sum() > 1000
    with torch_threads(1):
        a = DINEOF(n_modes=3, seed=0, device="cpu", harmonics="auto").fit(gappy.where(~held, 1000.0), withheld=held)
        b = DINEOF(n_modes=3, seed=0, device="cpu", harmonics="auto").fit(gappy.where(~held))
        c = DINEOF(n_modes=3, seed=0, device="cpu", harmonics="auto").fit(gappy, withheld=held)
    for other in (b, c):
        np.testing.assert_array_equal(a.seasonal_.coef, other.seasonal_.coef)
        np.testing.assert_array_equal(a.reconstruct()["sst"].values[held], other.reconstruct()["sst"].values[held])
    clim = get_method("climatology")().fit(gappy, withheld=held)
    np.testing.assert_allclose(a.seasonal_.coef, clim._coef, rtol=1e-12, atol=1e-12)
    assert c.reconstruct().attrs["val_rmse"] < 0.5  # scored on the withheld pixels' true values


def test_harmonics_auto_follows_the_dates_and_is_checked(seasonal):
    gappy, _ = seasonal
    short = gappy.isel(time=slice(0, 200))  # under a year: a cycle cannot be told from a trend
    with torch_threads(1):
        ds = interpolate(short, "dineof", n_modes=2, harmonics="auto", device="cpu", return_dataset=True)
        assert ds["sst"].attrs["harmonics"] == 0
        np.testing.assert_array_equal(ds["sst"].values,
                                      interpolate(short, "dineof", n_modes=2, harmonics=0, device="cpu").values)
        undated = gappy.assign_coords(time=np.arange(gappy.sizes["time"]))
        assert interpolate(undated, "dineof", n_modes=2, harmonics="auto", device="cpu").attrs["harmonics"] == 0
        one = interpolate(gappy, "dineof", n_modes=2, harmonics=1, device="cpu")
        assert one.attrs["harmonics"] == 1 and one.attrs["harmonics_fallback_pixels"] == 0
        # the default stays the classic input (anomalies from the time mean), even on two dated years
        assert interpolate(gappy, "dineof", n_modes=2, device="cpu").attrs["harmonics"] == 0
    with pytest.raises(InputError, match=r"variable 'sst': harmonics=2 needs the day of year .* not dates"):
        interpolate(undated, "dineof", harmonics=2, device="cpu")
    for bad in (-1, 7, 1.5, True, "yes"):
        with pytest.raises(InputError, match="method 'dineof': option harmonics must be 'auto' or an integer from 0 to 6"):
            DINEOF(harmonics=bad)


# ------------------------------------------------------------------ error_map (sigma)
@pytest.mark.parametrize("bad", ["true", "yes", 1, None])
def test_error_map_option_checked(bad):
    with pytest.raises(InputError, match="error_map must be True or False"):
        DINEOF(error_map=bad)
    assert DINEOF(error_map=np.bool_(True)).options["error_map"] is True
    assert DINEOF(error_map=np.bool_(True)).gives_sigma and not DINEOF().gives_sigma and not DINEOF.gives_sigma


def test_error_map_sigma_on_a_low_rank_cube(rank3, rank3_result):
    """Rank 3 + white noise 0.1: the error is the noise, the same everywhere; sigma must say 0.1,
    so that the withheld errors fall within 1 and 2 sigma as a Gaussian's do (0.68, 0.95), and the
    fill is the one without the error map."""
    gappy, truth = rank3
    held = cloud_transfer(gappy)
    with torch_threads(1):
        out = interpolate(gappy, "dineof", withheld=held, return_dataset=True, seed=0, device="cpu", error_map=True)
    assert "sigma" not in rank3_result
    name = [v for v in out.data_vars if v not in ("sigma", "missing_flag")][0]
    np.testing.assert_array_equal(out[name].values, rank3_result[name].values)  # the fill is untouched
    sig = out.sigma.values
    land = gappy.isnull().all(gappy.dims[0]).values
    assert land.any() and np.isnan(sig[:, land]).all()
    assert np.isfinite(sig[:, ~land]).all() and (sig[:, ~land] > 0).all()
    z = np.abs(out[name].values[held] - gappy.values[held]) / sig[held]
    assert 0.6 < np.mean(z <= 1) < 0.78 and np.mean(z <= 2) > 0.92
    assert 0.05 < np.median(sig[:, ~land]) < 0.2  # the noise's 0.1
    assert out.sigma.attrs["cv_sigma_scale"] > 0 and "Beckers" in out.sigma.attrs["error_model"]
    assert json.loads(out[name].attrs["options"])["error_map"] is True
    assert out.attrs["val_frac_within_1sigma"] == pytest.approx(np.mean(z <= 1))


@pytest.fixture(scope="module")
def sst_error_map():
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field

    ds = synthetic_sst(seed=1, n_time=40, ny=32, nx=32, cloud_cover=0.5)
    gappy = open_field(ds, "sst")
    truth = open_field(ds.assign(sst=ds["sst_true"]), "sst")
    held = cloud_transfer(gappy)
    with torch_threads(1):
        out = interpolate(gappy, "dineof", withheld=held, return_dataset=True, seed=0, device="cpu", error_map=True)
    return gappy, truth, held, out


def test_error_map_follows_the_error_on_synthetic_sst(sst_error_map):
    """Synthetic SST (40 x 32 x 32, 50 % cloud, seed 1): the fraction of withheld errors within one
    sigma is in a sensible band (0.75 measured, 0.61 with the former square-CV scale; a sigma 10x too
    small gives 0.07, 3x too large 0.93), sigma follows |error| (corr 0.52; a constant sigma: 0) and
    is smaller at observed pixels than under the clouds (the loadings and amplitudes are seen there:
    0.37 of the gaps' mean); against the truth under the clouds 0.71 within 1 sigma."""
    gappy, truth, held, out = sst_error_map
    f, sig, flag = out.sst.values, out.sigma.values, out.missing_flag.values
    err = np.abs(f[held] - gappy.values[held])
    z = err / sig[held]
    assert 0.5 < np.mean(z <= 1) < 0.9 and np.mean(z <= 2) > 0.8
    assert np.corrcoef(sig[held], err)[0, 1] > 0.3
    gap, seen = flag == 1, (flag == 0) & np.isfinite(sig)
    assert sig[seen].mean() < 0.6 * sig[gap].mean()
    zt = np.abs(f[gap] - truth.values[gap]) / sig[gap]  # against the truth under the clouds
    assert 0.4 < np.mean(zt <= 1) < 0.9


def test_error_map_with_fixed_modes_is_calibrated_on_clouds(rank3):
    """n_modes fixed: no CV points, but the cloud-shaped held-out set calibrates sigma (the scale is no
    longer 1), the attrs say how, and the fill is the one without the error map."""
    gappy, _ = rank3
    with torch_threads(1):
        out = interpolate(gappy, "dineof", return_dataset=True, n_modes=3, error_map=True, device="cpu")
        plain = interpolate(gappy, "dineof", return_dataset=True, n_modes=3, device="cpu")
    np.testing.assert_array_equal(out.sst.values, plain.sst.values)
    attrs = out.sigma.attrs
    assert attrs["cv_sigma_scale"] != 1.0 and attrs["cv_sigma_scale"] > 0
    assert attrs["sigma_calibration"] == "cloud_transfer" and attrs["sigma_calibration_points"] >= 200
    assert 0.06 < attrs["sigma_calibration_fraction"] < 0.12
    assert "cloud-mask transfer" in attrs["error_model"] and "not calibrated" not in attrs["error_model"]
    sig = out.sigma.values[:, gappy.notnull().any(gappy.dims[0]).values]
    assert np.isfinite(sig).all() and (sig > 0).all()


@pytest.mark.filterwarnings("ignore:method .dineof.. the cross-validation set is")
@pytest.mark.parametrize("opts", [{}, {"shrink": 0.0}, {"shrink": 0.05, "max_modes": 6}, {"n_modes": 4, "shrink": 0.02},
                                  {"temporal_filter": 0.01}])
def test_error_map_leaves_the_fill_bit_identical(opts):
    """The calibration reruns the fill on other observations, after the fill: the filled field (and
    the fit's attrs) are those of error_map=False, whatever the path (rank, threshold, fixed, filter)."""
    gappy, _ = make_cube(nt=30, ny=20, nx=24, seed=3)
    with torch_threads(1):
        on = interpolate(gappy, "dineof", return_dataset=True, seed=5, device="cpu", error_map=True, **opts)
        off = interpolate(gappy, "dineof", return_dataset=True, seed=5, device="cpu", **opts)
    np.testing.assert_array_equal(on.sst.values, off.sst.values)
    for key in ("n_modes", "n_iter_total", "shrink", "cv_curve"):
        assert on.sst.attrs.get(key) == off.sst.attrs.get(key)
    assert on.sigma.attrs["sigma_calibration"] == "cloud_transfer"


@pytest.mark.filterwarnings("ignore:method .dineof.. the cross-validation set is")
def test_error_map_falls_back_to_the_cv_squares_with_few_held_out_points():
    """A small cube: under 200 cloud-shaped points, the square-CV scale, warned and said in the attrs;
    with n_modes fixed as well, no calibration at all (scale 1)."""
    gappy, _ = make_cube(nt=12, ny=10, nx=12, seed=2)
    with torch_threads(1), pytest.warns(UserWarning, match="to calibrate sigma on"):
        out = interpolate(gappy, "dineof", return_dataset=True, device="cpu", error_map=True, max_modes=4)
    assert out.sigma.attrs["sigma_calibration"] == "cv_squares" and out.sigma.attrs["cv_sigma_scale"] != 1.0
    assert "cross-validation points" in out.sigma.attrs["error_model"]
    with torch_threads(1), pytest.warns(UserWarning, match="to calibrate sigma on"):
        out = interpolate(gappy, "dineof", return_dataset=True, device="cpu", error_map=True, n_modes=2)
    assert out.sigma.attrs["sigma_calibration"] == "none" and out.sigma.attrs["cv_sigma_scale"] == 1.0
    assert "not calibrated" in out.sigma.attrs["error_model"]


def test_error_map_from_the_cli_and_with_chunks(rank3, tmp_path):
    from oceandl.cli.main import main
    from oceandl.interp.chunked import interpolate_chunked

    gappy, _ = rank3
    path = tmp_path / "in.nc"
    gappy.rename("sst").to_dataset().to_netcdf(path)
    out = tmp_path / "out.nc"
    with torch_threads(1):
        assert main(["interpolate", str(path), "--var", "sst", "--set", "error_map=true", "--set", "max_modes=5",
                     "--quiet", "-o", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert "sigma" in ds and ds.sigma.attrs["cv_sigma_scale"] > 0
        assert "sigma" in ds.sst.attrs["ancillary_variables"]
        land = ds.sst.isnull().all("time").values
        assert np.isnan(ds.sigma.values[:, land]).all() and (ds.sigma.values[:, ~land] > 0).all()
    with torch_threads(1):
        interpolate_chunked(path, tmp_path / "chunked.nc", "dineof", chunks="lat=16,lon=20", halo=6,
                            max_modes=5, error_map=True)
        interpolate_chunked(path, tmp_path / "plain.nc", "dineof", chunks="lat=16,lon=20", halo=6, max_modes=5)
    with xr.open_dataset(tmp_path / "chunked.nc") as ds, xr.open_dataset(tmp_path / "plain.nc") as plain:
        assert "sigma" not in plain and "sigma" not in plain.sst.attrs["ancillary_variables"]
        np.testing.assert_array_equal(ds.sst.values, plain.sst.values)
        land = ds.sst.isnull().all("time").values
        sig = ds.sigma.values
        assert np.isnan(sig[:, land]).all() and np.isfinite(sig[:, ~land]).all() and (sig[:, ~land] > 0).all()
        assert ds.sigma.attrs["cv_sigma_scale"] > 0 and len(ds.sigma.attrs["cv_sigma_scale_range"]) == 2
        assert json.loads(ds.sst.attrs["options"])["error_map"] is True
        assert 0.05 < np.median(sig[:, ~land]) < 0.2


def test_error_map_calibration_has_its_own_progress_bar(rank3, capsys):
    """The calibration's rerun fill showed a second bar labelled "modes", as if the fill started over."""
    gappy, _ = rank3
    with torch_threads(1):
        interpolate(gappy, "dineof", n_modes=3, error_map=True, device="cpu", progress=True)
    err = capsys.readouterr().err
    assert "dineof: modes" in err and "dineof: error map calibration, modes" in err
    with torch_threads(1):
        interpolate(gappy, "dineof", n_modes=3, device="cpu", progress=True)
    assert "error map calibration" not in capsys.readouterr().err
