"""Audit 111: units that lie (a degC field holding kelvin, and the reverse) refused in one line;
``train interpolator --init`` recorded by its absolute path; a fitted period's covariate that covers
part of its days warned of."""
from __future__ import annotations

import json

import numpy as np

import pytest
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import DINEOF, interpolate


@pytest.fixture(scope="module")
def sst_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sst") / "cube.nc"
    synthetic_sst(n_time=12, ny=16, nx=16, cloud_cover=0.5, seed=3).to_netcdf(path)
    return path


def test_train_interpolator_init_given_relative_is_recorded_absolute(sst_file, tmp_path, monkeypatch):
    """`--init first` was recorded as given in training.init.checkpoint and training.options.init:
    read from another folder, the checkpoint named a folder relative to wherever the run had been."""
    runner = CliRunner()
    small = [str(sst_file), "--var", "sst", "--batch-size", "4", "--quiet", "--device", "cpu", "--set", "patch=16",
             "--set", "steps=1"]
    first = tmp_path / "first"
    res = runner.invoke(cli, ["train", "interpolator", *small, "--set", "model_options={\"width\": 4, \"depth\": 1}",
                              "-o", str(first)])
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["train", "interpolator", *small, "--init", "first", "-o", "tuned"])
    assert res.exit_code == 0, res.output
    assert "1 steps from first on" in res.output  # the summary names it as given
    training = json.loads((tmp_path / "tuned" / "config.json").read_text())["training"]
    assert training["init"]["checkpoint"] == str(first.resolve()) and training["init"]["checkpoint"].startswith("/")
    assert training["options"]["init"] == str(first.resolve())


# ---- 1. units that lie
@pytest.fixture(scope="module")
def cube():
    """Days 1-12 to fit, 13-24 to fill, with the microwave SST (degC)."""
    ds = synthetic_sst(n_time=24, ny=16, nx=16, cloud_cover=0.5, seed=1, microwave=True)
    return ds.isel(time=slice(0, 12)), ds.isel(time=slice(12, 24))


def _said(units, values):
    return values.assign_attrs(units=units)


def test_a_degc_field_holding_kelvin_is_refused_in_one_line(cube):
    """A 289 K field said in degC was filled by a degC fit without a word (its fill's mean 175), and
    fitted as degC on its own; both are refused now, naming the fix; a field in kelvin said so is filled."""
    past, new = cube
    lying = _said("degC", new["sst"] + 273.15)
    for kw in ({"fit_on": past["sst"]}, {}):
        with pytest.raises(InputError) as exc:
            interpolate(lying, "dineof", device="cpu", n_modes=2, **kw)
        msg = str(exc.value)
        assert "\n" not in msg and msg.startswith("variable 'sst': its units say 'degC' but its values look like "
                                                  "kelvin (median 2")
        assert "ncatted -a units,sst,o,c,K FILE" in msg and "da.attrs['units'] = 'K'" in msg
    out = interpolate(_said("K", new["sst"] + 273.15), "dineof", device="cpu", n_modes=2, fit_on=past["sst"])
    assert 280 < float(out.mean()) < 300 and out.attrs["units"] == "K"


def test_a_kelvin_field_holding_degc_is_refused_but_a_kelvin_anomaly_is_not(cube):
    past, new = cube
    for units in ("K", "kelvin", "degrees_K"):
        with pytest.raises(InputError, match=rf"its units say '{units}' but its values look like degC \(median 1"):
            interpolate(_said(units, new["sst"]), "climatology")
    # a departure in kelvin is near 0 with its units right: taken when its names say what it is
    anomaly = _said("K", new["sst"] - new["sst"].mean("time"))
    for named in (anomaly.rename("sst_anomaly"), anomaly.assign_attrs(long_name="SST difference to OSTIA"),
                  anomaly.rename("dt_analysis")):
        assert abs(float(interpolate(named, "climatology").mean())) < 1
    # other units are not tested (a chlorophyll, a wind): no temperature to tell
    assert float(interpolate(_said("m s-1", new["sst"] + 273.15), "climatology").mean()) > 280


def test_a_covariate_whose_units_lie_is_refused_fitted_and_today(cube):
    past, new = cube
    lying = _said("degree_Celsius", new["sst_mw"] + 273.15)
    with pytest.raises(InputError, match=r"^variable 'sst': aux 'sst_mw': its units say 'degree_Celsius' but its "
                                         r"values look like kelvin \(median 2\d\d\.\d+, above 100\)"):
        interpolate(new["sst"], "dineof", device="cpu", n_modes=2, aux=lying)
    with pytest.raises(InputError, match=r"^fit_on: variable 'sst': aux 'sst_mw': its units say 'degree_Celsius'"):
        interpolate(past["sst"], "dineof", device="cpu", n_modes=2, fit_on=new["sst"], fit_aux=lying,
                    aux=past["sst_mw"])
    # in kelvin and said so: converted to the fit's degC, as before
    fit = DINEOF(device="cpu", n_modes=2).fit(past["sst"], aux=past["sst_mw"])
    a = fit.transform(new["sst"], aux={"sst_mw": new["sst_mw"]})["sst"].values
    b = fit.transform(new["sst"], aux={"sst_mw": _said("K", new["sst_mw"] + 273.15)})["sst"].values
    np.testing.assert_allclose(a, b, atol=2e-4)


@pytest.fixture(scope="module")
def files(cube, tmp_path_factory):
    folder = tmp_path_factory.mktemp("units")
    past, new = cube
    past.to_netcdf(folder / "past.nc")
    new.to_netcdf(folder / "new.nc")
    new.assign(sst=_said("degC", new["sst"] + 273.15)).to_netcdf(folder / "lie.nc")
    new.assign(sst_mw=_said("deg C", new["sst_mw"] + 273.15)).to_netcdf(folder / "lie_mw.nc")
    past.assign(sst_mw=_said("deg C", past["sst_mw"] + 273.15)).to_netcdf(folder / "past_lie_mw.nc")
    return folder


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]])
def test_cli_refuses_units_that_lie_in_one_line_writing_nothing(files, tmp_path, chunks):
    """In memory and by blocks (the statistics pass's pixel means; with --fit-on, the whole series'
    first pass), the file and variable named, exit 2, no output."""
    runner = CliRunner()
    out = tmp_path / "o.nc"
    base = ["interpolate", "--var", "sst", "--method", "dineof", "--set", "n_modes=2", "--device", "cpu", "--quiet",
            "-o", str(out), *chunks]
    today = ("lie_mw.nc: variable 'sst': aux 'sst_mw': its units say 'deg C'" if chunks
             else "lie_mw.nc: --aux sst_mw: its units say 'deg C'")
    cases = [
        ([str(files / "lie.nc")], "lie.nc: variable 'sst': its units say 'degC' but its values look like kelvin"),
        ([str(files / "lie.nc"), "--fit-on", str(files / "past.nc")],
         "lie.nc: variable 'sst': its units say 'degC' but its values look like kelvin"),
        # without the smoother, the chunked fill tests the series as it writes it: the file it wrote removed
        ([str(files / "lie.nc"), "--fit-on", str(files / "past.nc"), "--set", "transform_smoother=false"],
         "lie.nc: variable 'sst': its units say 'degC' but its values look like kelvin"),
        ([str(files / "new.nc"), "--fit-on", str(files / "lie.nc")],
         f"--fit-on {files / 'lie.nc'}: variable 'sst': its units say 'degC'"),
        # today's covariate: read whole (named as the option) or lazily (as the field's, by the chunked fill)
        ([str(files / "lie_mw.nc"), "--aux", "sst_mw"], today),
        ([str(files / "lie_mw.nc"), "--aux", "sst_mw", "--fit-on", str(files / "past.nc")], today),
        ([str(files / "new.nc"), "--aux", "sst_mw", "--fit-on", str(files / "past.nc"), "--fit-aux",
          f"{files / 'past_lie_mw.nc'}:sst_mw"], f"--fit-aux {files / 'past_lie_mw.nc'}:sst_mw: its units say 'deg C'"),
    ]
    for args, words in cases:
        res = runner.invoke(cli, [*base[:1], *args, *base[1:]])
        line = res.output.strip().splitlines()[-1]
        assert res.exit_code == 2 and words in line and "look like kelvin (median 2" in line, (args, res.output)
        assert "ncatted -a units," in line and not out.exists(), args
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary left beside it


# ---- 3. a fitted period's covariate on part of its days
def _partial(past, days):
    """``past``'s microwave SST with values on its first ``days`` days only."""
    mw = past["sst_mw"].copy()
    mw[days:] = np.nan
    return mw


def test_a_fitted_covariate_on_part_of_the_fitted_days_is_warned_of(cube):
    """It was an info line only (the days matched), though the fill gets worse: on the synthetic 90-day
    cube fitted on 60 days, gap RMSE 1.76 with it on their last quarter, 1.32 without it (see
    base.warn_partial_fit_aux). 3 of 12 days: warned, once, with the share; 9 of 12 (75 %) and all: not."""
    import warnings

    past, new = cube
    kw = dict(device="cpu", n_modes=2, fit_on=past["sst"], aux=new["sst_mw"])
    # named by the keyword arguments from Python (the CLI names its options: audit115)
    with pytest.warns(UserWarning, match=r"^fit_on: aux 'sst_mw', the fitted period's covariate \(fit_aux\), "
                                         r"has values on 3 of its 12 days \(25%\): the joint modes are "
                                         r"fitted without it on the others, and the fill with it can be worse") as rec:
        interpolate(new["sst"], "dineof", fit_aux=_partial(past, 3), **kw)
    assert sum("fitted period's covariate" in str(w.message) for w in rec) == 1
    for days in (9, 12):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            interpolate(new["sst"], "dineof", fit_aux=_partial(past, days), **kw)
        assert not [w for w in rec if "fitted period's covariate" in str(w.message)], days


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]])
@pytest.mark.parametrize("given", ["--fit-aux", "--fit-on's sst_mw"])
def test_cli_warns_of_a_fitted_covariate_on_part_of_the_fitted_days(files, cube, tmp_path, chunks, given):
    """Named as the command line gave it (audit115: it began 'fit_on: aux 'sst_mw' ... (fit_aux, --fit-aux)',
    the keyword arguments, while the other --fit-aux messages name the option and its FILE:VAR)."""
    past, _ = cube
    part = tmp_path / "mw_part.nc"
    if given == "--fit-aux":
        _partial(past, 4).to_dataset().to_netcdf(part)
        fit_on, extra, head = files / "past.nc", ["--fit-aux", f"{part}:sst_mw"], f"--fit-aux {part}:sst_mw"
    else:  # no --fit-aux: the fitted period's sst_mw, read from --fit-on's file by its --aux name
        fit_on, extra = tmp_path / "past_part.nc", []
        past.assign(sst_mw=_partial(past, 4)).to_netcdf(fit_on)
        head = f"{fit_on}: --aux sst_mw"
    res = CliRunner().invoke(cli, ["interpolate", str(files / "new.nc"), "--var", "sst", "--method", "dineof",
                                   "--set", "n_modes=2", "--device", "cpu", "--fit-on", str(fit_on),
                                   "--aux", "sst_mw", *extra, *chunks, "-o", str(tmp_path / "o.nc")])
    assert res.exit_code == 0, res.output
    said = [line for line in res.output.splitlines() if "fitted period's covariate" in line]
    assert len(said) == 1, res.output
    assert said[0].startswith(f"warning: {head}: the fitted period's covariate has values on 4 of its 12 days "
                              "(33%): the joint modes are fitted without it"), said[0]
    assert "fit_on" not in said[0] and "fit_aux" not in said[0] and "can be worse than without it" in said[0]
