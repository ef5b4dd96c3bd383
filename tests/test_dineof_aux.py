"""Multivariate DINEOF: ``DINEOF.fit(da, aux=...)`` (Alvera-Azcarate et al. 2007).

A covariate that sees the days the field does not must fill them; the cross-validation and the
sigma calibration are the field's, whatever the covariate; ``aux_weight`` is checked and acts; a
fit with covariates transforms and saves with them (refused without them); the error map is the field's."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import blob_clouds
from scipy.ndimage import gaussian_filter

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.interp import DINEOF, interpolate

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              # a 40-day cube: the CV set is 8-9 squares, under the 10 the warning asks for
              pytest.mark.filterwarnings("ignore:.*the cross-validation set is:UserWarning")]

LAND = (slice(3, 8), slice(4, 10))


def _scene(nt=40, ny=24, nx=28, rank=4, seed=0, dark=8):
    """(field, covariate, truth, the fully clouded days): a rank-4 field whose amplitudes are white
    in time (a day's own pixels alone tell them), half clouded, and ``dark`` days clouded all over;
    the covariate sees every day: the truth smoothed (1.5 px), in kelvin and 1.5 times as large,
    0.1 K noise and 15 % random gaps of its own."""
    rng = np.random.default_rng(seed)
    y, x = np.linspace(0, 1, ny)[:, None], np.linspace(0, 1, nx)[None, :]
    truth = 20.0 + 4.0 * y + np.zeros((nt, 1, 1))
    for i in range(rank):
        pattern = np.sin(np.pi * (i + 1) * x + i) * np.cos(np.pi * (i + 0.5) * y)
        truth = truth + (2.0 / (i + 1) * rng.standard_normal(nt))[:, None, None] * pattern
    truth = truth + 0.05 * rng.standard_normal(truth.shape)
    truth[(slice(None), *LAND)] = np.nan
    cloud = blob_clouds(rng, nt, ny, nx, 0.5)
    days = rng.choice(nt, dark, replace=False)
    cloud[days] = True
    coords = {"time": np.datetime64("2020-01-01") + np.arange(nt).astype("timedelta64[D]"),
              "lat": np.linspace(40, 47, ny), "lon": np.linspace(-10, -3, nx)}
    dims = ("time", "lat", "lon")
    field = xr.DataArray(np.where(cloud, np.nan, truth), dims=dims, coords=coords, name="sst", attrs={"units": "degC"})
    cov = np.stack([gaussian_filter(np.nan_to_num(d, nan=20.0), 1.5) for d in truth]) * 1.5 + 273.15
    cov = cov + 0.1 * rng.standard_normal(cov.shape)
    cov[np.isnan(truth) | (rng.random(cov.shape) < 0.15)] = np.nan
    aux = xr.DataArray(cov.astype(np.float32), dims=dims, coords=coords, name="cov", attrs={"units": "K"})
    return field, aux, xr.DataArray(truth, dims=dims, coords=coords), np.sort(days)


@pytest.fixture(scope="module")
def scene():
    return _scene()


def _rmse(out, truth, where) -> float:
    return float(np.sqrt(np.mean((np.asarray(out) - truth.values)[where] ** 2)))


def test_a_covariate_that_sees_the_clouded_days_fills_them(scene):
    """Measured (seeds 0 / 1 / 2 of this scene): RMSE against the truth on the gaps 0.635 / 0.445 /
    0.623 alone, 0.072 / 0.065 / 0.065 with the covariate; on the fully clouded days 1.096 / 0.764 /
    1.078 -> 0.070 / 0.060 / 0.063 (their amplitudes are the covariate's to tell)."""
    da, aux, truth, days = scene
    gaps = (da.isnull() & truth.notnull()).values
    dark = np.zeros(gaps.shape, bool)
    dark[days] = True
    with pytest.warns(UserWarning, match=r"8 time step\(s\) with no observation"):
        alone = interpolate(da, "dineof", seed=0, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        helped = interpolate(da, "dineof", seed=0, device="cpu", aux=aux)
    # the covariate sees those days: no step is left without an observation to set its amplitudes
    assert not [w for w in caught if "with no observation" in str(w.message)]
    r_alone, r_helped = _rmse(alone, truth, gaps), _rmse(helped, truth, gaps)
    assert r_alone > 0.4 and r_helped < 0.1, (r_alone, r_helped)
    assert _rmse(helped, truth, gaps & dark) < 0.1 < 0.7 < _rmse(alone, truth, gaps & dark)
    assert helped.attrs["aux_variables"] == "cov" and "aux_variables" not in alone.attrs
    assert '"aux_weight": 1.0' in helped.attrs["options"]
    # the field's grid and observations as given: the covariate is not written, land stays land
    obs = np.isfinite(da.values)
    np.testing.assert_array_equal(helped.values[obs], da.values[obs])
    assert np.isnan(helped.values[(slice(None), *LAND)]).all()
    assert helped.shape == da.shape


def _spy(monkeypatch, name: str) -> list:
    """Record the arguments of DINEOF's method ``name`` at each call (and run it)."""
    calls: list = []
    real = getattr(DINEOF, name)

    def wrapper(self, *args, **kwargs):
        calls.append((self, args))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DINEOF, name, wrapper)
    return calls


def test_cv_points_are_the_fields_whatever_the_covariate(scene, monkeypatch):
    """The CV set is drawn among the field's observations only: the same with no covariate, with
    one, and with one far off (another sign, other gaps, 1e4 K); never on a covariate's column;
    the CV error is the field's, in its units (~ its 0.05 noise)."""
    da, aux, _, _ = scene
    calls = _spy(monkeypatch, "_fit_cv")
    rng = np.random.default_rng(3)
    # in no units: -5300 "K" is refused as degC said to be kelvin (check_units_values)
    far = (1e4 - 50 * aux).where(rng.random(aux.shape) > 0.4).rename("far")
    far.attrs.pop("units")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alone: the clouded days' warning
        fits = [DINEOF(seed=0, device="cpu").fit(da, **({} if a is None else {"aux": a})) for a in (None, aux, far)]
    cvs = []
    for (model, (X, M, CV, *_)), n_cols in zip(calls, (None, 2, 2)):
        nf = int(model.ocean_.sum())
        CV, M = CV.numpy(), M.numpy()
        assert CV.shape == M.shape == X.shape
        if n_cols:  # the covariate's block of columns: its ever-valid pixels
            assert X.shape[1] > nf and not CV[:, nf:].any() and M[:, nf:].any()
        assert not (CV & ~M).any()  # CV points are observations (of the field)
        cvs.append(CV[:, :nf])
    assert cvs[0].sum() > 100
    np.testing.assert_array_equal(cvs[1], cvs[0])
    np.testing.assert_array_equal(cvs[2], cvs[0])
    assert fits[1].cv_rmse_ < 0.1, fits[1].cv_rmse_


def test_aux_weight_is_checked_and_down_weights_a_covariate(scene):
    """A covariate of pure noise (no information) costs the fill at weight 1 and not at 0.05:
    measured gap RMSE 0.061 alone, 0.063 / 0.171 / 1.14 at weights 0.05 / 1 / 10 (this scene
    without its clouded days)."""
    for bad in (0, -1.0, float("inf"), float("nan"), "1", True, None):
        with pytest.raises(InputError, match=r"method 'dineof': option aux_weight must be a finite number > 0, got "):
            DINEOF(aux_weight=bad)
    assert DINEOF(aux_weight=np.float32(0.5)).options["aux_weight"] == 0.5
    da, aux, truth, _ = _scene(dark=0)
    with pytest.raises(InputError, match="option aux_weight has no effect without auxiliary variables"):
        DINEOF(aux_weight=0.5, device="cpu").fit(da)
    noise = aux.copy(data=np.where(np.isnan(aux.values), np.nan, np.random.default_rng(5).standard_normal(aux.shape)))
    gaps = (da.isnull() & truth.notnull()).values
    alone = _rmse(interpolate(da, "dineof", seed=0, device="cpu"), truth, gaps)
    noise = noise.rename("noise_anomaly")  # in K near 0: a departure, so named (check_units_values)
    low = _rmse(interpolate(da, "dineof", seed=0, device="cpu", aux=noise, aux_weight=0.05), truth, gaps)
    one = _rmse(interpolate(da, "dineof", seed=0, device="cpu", aux=noise), truth, gaps)
    assert low < 1.1 * alone and one > 2 * alone, (alone, low, one)


def test_a_fit_with_covariates_transforms_and_saves_with_them(scene, tmp_path):
    """transform() and save() take the covariates now (tests/test_dineof_fit_aux.py); without them
    a fit made with them refuses transform() in one line."""
    da, aux, _, _ = scene
    model = DINEOF(seed=0, device="cpu", n_modes=4).fit(da, aux=aux)
    with pytest.raises(InputError) as err:
        model.transform(da.isel(time=slice(0, 5)))
    msg = str(err.value)
    assert "the fit was made with auxiliary variables (cov); give them" in msg and "\n" not in msg
    with pytest.raises(InputError, match=r"the fit was made with auxiliary variables"):
        interpolate(da, "dineof", fit_on=model)
    out = model.transform(da.isel(time=slice(0, 5)), aux=aux.isel(time=slice(0, 5)))
    assert np.isfinite(out["sst"].values[:, ~np.isnan(da.values).all(0)]).all()
    model.save(tmp_path / "fit")
    assert (tmp_path / "fit").is_dir()
    # fitted again without them, the same model saves and transforms without
    model.fit(da)
    model.save(tmp_path / "fit0")
    assert np.isfinite(model.transform(da.isel(time=slice(0, 5)))["sst"].values[:, ~np.isnan(da.values).all(0)]).all()


def test_error_map_with_covariates_is_the_fields(scene, monkeypatch):
    """Sigma on the field's grid, finite over its ocean; on the fully clouded days the covariate's
    observations set the amplitudes, so sigma drops there (measured 1.35 -> 0.081 degC, seed 0) and
    stays calibrated (rms(error / sigma) at the gaps 0.85 on those days, 0.90 on the others). The
    calibration's held-out points are the field's: the same as without the covariate."""
    da, aux, truth, days = scene
    calls = _spy(monkeypatch, "_calibrate_on_clouds")
    with pytest.warns(UserWarning, match="with no observation"):
        alone = interpolate(da, "dineof", seed=0, device="cpu", error_map=True, return_dataset=True)
    helped = interpolate(da, "dineof", seed=0, device="cpu", error_map=True, return_dataset=True, aux=aux)
    sigma, err = helped["sigma"].values, helped["sst"].values - truth.values
    ocean = np.isfinite(truth.values[0])
    assert sigma.shape == da.shape and np.isfinite(sigma[:, ocean]).all() and np.isnan(sigma[:, ~ocean]).all()
    gaps = (da.isnull() & truth.notnull()).values
    dark = np.zeros(gaps.shape, bool)
    dark[days] = True
    assert sigma[gaps & dark].mean() < 0.15 < 1.0 < alone["sigma"].values[gaps & dark].mean()
    for where in (gaps & dark, gaps & ~dark):
        z = np.sqrt(np.mean((err / sigma)[where] ** 2))
        assert 0.6 < z < 1.3, z
    assert helped["sigma"].attrs["sigma_calibration"] == "cloud_transfer"
    (m0, (X0, M0, HO0, _)), (m1, (X1, M1, HO1, _)) = calls
    nf = int(m1.ocean_.sum())
    assert HO1.shape == X1.shape and X1.shape[1] > nf and not HO1[:, nf:].any()
    assert int(HO0.sum()) > 200
    np.testing.assert_array_equal(HO1[:, :nf].numpy(), HO0.numpy())


def test_cli_interpolate_dineof_with_aux(scene, tmp_path):
    da, aux, truth, days = scene
    path = tmp_path / "in.nc"
    xr.Dataset({"sst": da, "cov": aux}).to_netcdf(path)
    run = CliRunner().invoke
    res = run(cli, ["interpolate", str(path), "--var", "sst", "--method", "dineof", "--aux", "cov", "--device", "cpu",
                    "--quiet", "-o", str(tmp_path / "out.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "out.nc") as out:
        assert out["sst"].attrs["aux_variables"] == "cov"
        gaps = (da.isnull() & truth.notnull()).values
        assert _rmse(out["sst"].values, truth, gaps) < 0.1
    # fitted once to fill other files: saved with its covariates (tests/test_dineof_fit_aux.py)
    res = run(cli, ["train", "interpolator", str(path), "--var", "sst", "--method", "dineof", "--aux", "cov",
                    "--set", "n_modes=4", "--device", "cpu", "--quiet", "-o", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fit" / "config.json").is_file()
