"""Multivariate DINEOF fitted on one period fills another with that period's covariates.

``DINEOF.fit(past, aux=past_mw).transform(today, aux=today_mw)``: the joint modes of the field and
the covariate, each new day's amplitudes solved on its observed field pixels and its covariate's
values normalised with the fit's statistics; ``interpolate(fit_on=, fit_aux=, aux=)``, saved fits
(``save``/``load_fitted``, older ones without covariates), and the CLI's ``--fit-on --aux``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import DINEOF, interpolate, load_fitted

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the cross-validation set is:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning")]


@pytest.fixture(scope="module")
def cube():
    """The synthetic 90-day 32 x 32 cube with its microwave SST (``oceandl synth sst --n 90 --size 32
    --microwave``): days 1-60 to fit, 61-90 to fill."""
    ds = synthetic_sst(n_time=90, ny=32, nx=32, microwave=True, seed=0)
    return ds.isel(time=slice(0, 60)), ds.isel(time=slice(60, 90))


def _gap_rmse(out, new) -> float:
    gaps = (new["sst"].isnull() & new["sst_true"].notnull()).values
    # nan: the pixels the fit never observed (land to it), left unfilled
    return float(np.sqrt(np.nanmean((out.values - new["sst_true"].values)[gaps] ** 2)))


def test_the_covariate_helps_on_the_new_period(cube):
    """Gap RMSE against the truth on days 61-90, fit on days 1-60 (seed 0): 1.321 without the
    covariate, 1.255 with it (the fit on the same 60 days with ``sst_mw``). The microwave SST alone
    is 0.40 at those gaps: the rank-k joint modes carry its large scales into the field, not its
    small ones (as the in-memory multivariate fit, see DINEOF's docstring)."""
    past, new = cube
    alone = _gap_rmse(interpolate(new["sst"], "dineof", fit_on=past["sst"], device="cpu"), new)
    helped = _gap_rmse(interpolate(new["sst"], "dineof", fit_on=past["sst"], fit_aux=past["sst_mw"],
                                   aux=new["sst_mw"], device="cpu"), new)
    assert helped < 0.97 * alone, (alone, helped)
    assert alone == pytest.approx(1.321, abs=0.02) and helped == pytest.approx(1.255, abs=0.02)


def test_a_fully_clouded_day_is_filled_from_the_covariate(cube):
    """A day with no SST observation gets its amplitudes from the microwave SST alone. Measured (seed
    0, each step alone): on a day of the fitted period 0.77 degC against the truth (the pixel means:
    1.32; the truth's own projection on the modes, the best they can do: 0.73); on day 71, outside
    it, 1.33 (plain fit, no observation: 1.36), because the 60 days' modes hardly span that day
    (their best: 1.28): the covariate reaches what the modes can hold, no more."""
    past, new = cube
    model = DINEOF(device="cpu", transform_smoother=False).fit(past["sst"], aux=past["sst_mw"])
    em = model._fitted_modes()
    nf = int(model.ocean_.sum())
    V, mu = em["V"][:nf].numpy(), em["mu"][:nf].numpy()
    for ds, t, bound in ((past, 30, 0.8), (new, 10, 1.4)):
        day = ds["sst"].copy()
        day[t] = np.nan
        truth = ds["sst_true"].values[t]
        out = model.transform(day, aux=ds["sst_mw"])["sst"].values[t]
        err = float(np.sqrt(np.nanmean((out - truth)[model.ocean_] ** 2)))
        x = ((truth - model.mean_) / model.scale_)[model.ocean_] - mu
        best = float(np.sqrt(np.mean((V @ np.linalg.lstsq(V, x, rcond=None)[0] - x) ** 2))) * model.scale_
        means = float(np.sqrt(np.mean((truth - model.mean_)[model.ocean_] ** 2)))
        assert best <= err < min(1.1 * best, bound) < means, (t, err, best, means)


def test_saved_fit_with_covariates_round_trips(cube, tmp_path):
    past, new = cube
    model = DINEOF(device="cpu", n_modes=8, error_map=True).fit(past["sst"], aux=past["sst_mw"])
    a = model.transform(new["sst"], aux=new["sst_mw"])
    model.save(tmp_path / "fit")
    loaded = load_fitted(tmp_path / "fit", device="cpu")
    assert loaded.aux_names_ == ["sst_mw"]
    b = loaded.transform(new["sst"], aux={"sst_mw": new["sst_mw"]})
    np.testing.assert_allclose(b["sst"].values, a["sst"].values, atol=1e-5)
    np.testing.assert_allclose(b["sigma"].values, a["sigma"].values, atol=1e-5)
    assert b["sst"].attrs["aux_variables"] == "sst_mw"
    # the same through interpolate(fit_on=FOLDER, aux=), and on the grid in another order
    flip = interpolate(new["sst"].isel(lat=slice(None, None, -1)), "dineof", fit_on=tmp_path / "fit",
                       aux=new["sst_mw"].isel(lat=slice(None, None, -1)), device="cpu")
    np.testing.assert_allclose(flip.isel(lat=slice(None, None, -1)).values, a["sst"].values, atol=1e-5)


def test_refusals_each_in_one_line(cube):
    past, new = cube
    model = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=past["sst_mw"])
    plain = DINEOF(device="cpu", n_modes=4).fit(past["sst"])
    mw = new["sst_mw"]
    cases = [
        (lambda: model.transform(new["sst"]), "the fit was made with auxiliary variables (sst_mw); give them"),
        (lambda: model.transform(new["sst"], aux={"sst_mw": mw, "wind": mw}), "(not the fit's: wind)"),
        (lambda: model.transform(new["sst"], aux={"wind": mw}), "(missing: sst_mw; not the fit's: wind)"),
        (lambda: model.transform(new["sst"], aux={"sst_mw": mw.assign_attrs(units="degree_Fahrenheit")}),
         "in units 'degree_Fahrenheit'"),
        (lambda: plain.transform(new["sst"], aux=mw), "the fit takes no auxiliary variables"),
        (lambda: interpolate(new["sst"], "dineof", fit_on=past["sst"], aux=mw), "give the same covariates"),
        (lambda: interpolate(new["sst"], "dineof", fit_on=model, fit_aux=mw, aux=mw), "fit_aux: the covariates"),
        (lambda: interpolate(new["sst"], "eof", fit_on=past["sst"], fit_aux=past["sst_mw"], aux=mw),
         "takes no auxiliary variables"),
    ]
    for call, part in cases:
        with pytest.raises(InputError) as err:
            call()
        assert part in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_older_saved_fit_without_covariates_loads(cube, tmp_path):
    """A fit saved before covariates could be (no ``aux`` in its state) loads and fills as before."""
    past, new = cube
    model = DINEOF(device="cpu", n_modes=4).fit(past["sst"])
    model.save(tmp_path / "fit")
    state = json.loads((tmp_path / "fit" / "config.json").read_text())["fitted"]["state"]
    assert "aux" not in state
    out = load_fitted(tmp_path / "fit", device="cpu").transform(new["sst"])
    np.testing.assert_allclose(out["sst"].values, model.transform(new["sst"])["sst"].values, atol=1e-5)


def test_cli_fit_on_file_and_saved_fit(cube, tmp_path):
    past, new = cube
    past.to_netcdf(tmp_path / "decade.nc")
    new.to_netcdf(tmp_path / "today.nc")
    new.drop_vars("sst_mw").to_netcdf(tmp_path / "nomw.nc")
    run = CliRunner().invoke
    common = ["--var", "sst", "--device", "cpu", "--withhold", "0"]
    res = run(cli, ["interpolate", str(tmp_path / "today.nc"), *common, "--method", "dineof", "--aux", "sst_mw",
                    "--fit-on", str(tmp_path / "decade.nc"), "--quiet", "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["train", "interpolator", str(tmp_path / "decade.nc"), "--var", "sst", "--method", "dineof",
                    "--aux", "sst_mw", "--device", "cpu", "--quiet", "-o", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    info = run(cli, ["info", str(tmp_path / "fit")])
    assert "auxiliary variables: sst_mw" in info.output, info.output
    # no --aux: the saved fit's covariates, read from INPUT, said in one log line
    res = run(cli, ["interpolate", str(tmp_path / "today.nc"), *common, "--fit-on", str(tmp_path / "fit"),
                    "-o", str(tmp_path / "b.nc")])
    assert res.exit_code == 0, res.output
    assert "auxiliary variables of the fit saved in" in res.output
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        np.testing.assert_allclose(a["sst"].values, b["sst"].values, atol=1e-5)  # the same fit, the same fill
        assert b["sst"].attrs["aux_variables"] == "sst_mw"
    res = run(cli, ["interpolate", str(tmp_path / "nomw.nc"), *common, "--fit-on", str(tmp_path / "fit"), "--quiet",
                    "-o", str(tmp_path / "c.nc")])
    assert_cli_error(res, 2, "sst_mw", "was fitted with it as an auxiliary variable")
    res = run(cli, ["interpolate", str(tmp_path / "today.nc"), *common, "--fit-on", str(tmp_path / "fit"),
                    "--aux", "sst_true", "--quiet", "-o", str(tmp_path / "c.nc")])
    assert_cli_error(res, 2, "--aux sst_true: the fit saved in", "was fitted with sst_mw")
    res = run(cli, ["interpolate", str(tmp_path / "today.nc"), *common, "--fit-on", str(tmp_path / "fit"),
                    "--bbox=-66,30,-60,36", "--quiet", "-o", str(tmp_path / "box.nc")])
    assert res.exit_code == 0, res.output  # the fit and its covariates cut to the box (tests/test_fit_box_aux.py)
    res = run(cli, ["train", "interpolator", str(tmp_path / "decade.nc"), "--var", "sst", "--method", "dineof",
                    "--device", "cpu", "--quiet", "-o", str(tmp_path / "fit0")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["interpolate", str(tmp_path / "today.nc"), *common, "--fit-on", str(tmp_path / "fit0"),
                    "--aux", "sst_mw", "--quiet", "-o", str(tmp_path / "c.nc")])
    assert_cli_error(res, 2, "--aux: the fit saved in", "takes no auxiliary variables")
