"""Auxiliary variables (covariates) of the neural gap fillers (DINEOF's: test_dineof_aux.py): ``fit(da, aux=...)``,
``interpolate(..., aux=)``, ``oceandl interpolate|train interpolator --aux``.

A covariate that knows the field under the clouds (a passive-microwave SST) must lower the gap
error; checkpoints keep the variables and their statistics and take them back by name; every
misuse is one line naming the variable, and a resumed run stays bit-identical."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error
from test_interp_resume import _same_weights
from test_neural_interp import TINY

from oceandl.cli.main import cli
from oceandl.errors import CheckpointError, InputError
from oceandl.interp import METHODS, interpolate
from oceandl.interp.neural import UNetInterpolator

OPTS = {"steps": 150, "batch_size": 8, "patch": 32, "model_options": TINY["unet"], "seasonal": False}


def _scene(n_time=30, ny=32, nx=32, cover=0.6, seed=0):
    """(field with clouds and noise, covariate, truth): the covariate is the truth seen coarsely
    (0.1 noise) with its own 15 % random gaps, on the field's grid."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time)[:, None, None]
    y = np.linspace(0, 1, ny)[None, :, None]
    x = np.linspace(0, 1, nx)[None, None, :]
    truth = 20 + 4 * y + 1.5 * np.sin(2 * np.pi * (2 * x + 0.07 * t)) * np.cos(3 * np.pi * y + 0.2 * t) \
        + np.zeros((n_time, 1, 1))
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for k in range(n_time):  # warm and cold patches of a day: the other days do not tell where they are
        for _ in range(4):
            cy, cx, amp = rng.uniform(0, ny), rng.uniform(0, nx), rng.choice([-1.5, 1.5])
            truth[k] += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0 ** 2))
    field = truth + 0.1 * rng.standard_normal(truth.shape)
    cloud = np.zeros(truth.shape, bool)
    for k in range(n_time):
        while cloud[k].mean() < cover:
            cy, cx, r = rng.integers(0, ny), rng.integers(0, nx), rng.integers(3, 9)
            cloud[k] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    coords = {"time": np.datetime64("2020-01-01") + np.arange(n_time).astype("timedelta64[D]"),
              "lat": np.linspace(30, 40, ny), "lon": np.linspace(-60, -50, nx)}
    dims = ("time", "lat", "lon")
    da = xr.DataArray(np.where(cloud, np.nan, field).astype(np.float32), dims=dims, coords=coords, name="sst",
                      attrs={"units": "degree_Celsius"})
    cov = truth + 0.1 * rng.standard_normal(truth.shape)
    cov[rng.random(truth.shape) < 0.15] = np.nan
    aux = xr.DataArray(cov.astype(np.float32), dims=dims, coords=coords, name="sst_mw", attrs={"units": "degC"})
    return da, aux, xr.DataArray(truth, dims=dims, coords=coords)


@pytest.fixture(scope="module")
def scene():
    return _scene()


def _gap_rmse(out, da, truth) -> float:
    gap = np.isnan(da.values) & np.isfinite(out.values)  # a pixel never observed is land to the methods
    return float(np.sqrt(np.mean((out.values[gap] - truth.values[gap]) ** 2)))


def test_a_covariate_that_sees_under_the_clouds_lowers_the_gap_error(scene):
    """Same seed, steps and network: the U-Net given the covariate fills the gaps closer to the
    truth (measured 0.40 against 0.72 degC on this scene, CPU), and says what it took."""
    da, aux, truth = scene
    alone = interpolate(da, "unet", seed=0, device="cpu", **OPTS)
    helped = interpolate(da, "unet", seed=0, device="cpu", aux=aux, **OPTS)
    r_alone, r_helped = _gap_rmse(alone, da, truth), _gap_rmse(helped, da, truth)
    assert r_helped < 0.75 * r_alone, (r_helped, r_alone)
    assert helped.attrs["aux_variables"] == "sst_mw" and "aux_variables" not in alone.attrs
    # 1 day (neighbours=1: 3 days) x (field + 1 covariate) x (value, mask) + 2 position channels
    assert alone.attrs["input_channels"] == 3 * 2 + 2 and helped.attrs["input_channels"] == 3 * 2 * 2 + 2
    # observations are kept as given, the covariate is not written anywhere
    obs = np.isfinite(da.values)
    np.testing.assert_array_equal(helped.values[obs], da.values[obs])


def test_aux_forms_and_coordinate_order_give_one_fill(scene):
    """A DataArray, a list, a dict and a Dataset are the same covariate; one stored with latitudes
    descending is matched by coordinate, not by position."""
    da, aux, _ = scene
    opts = {**OPTS, "steps": 3}
    ref = interpolate(da, "unet", seed=0, device="cpu", aux=aux, **opts).values
    for form in ([aux], {"sst_mw": aux.values}, aux.to_dataset(), aux.isel(lat=slice(None, None, -1))):
        np.testing.assert_array_equal(interpolate(da, "unet", seed=0, device="cpu", aux=form, **opts).values, ref)
    # the values are used (a static offset or a global factor would not change them: each
    # covariate is normalised by its per-pixel mean and one scale)
    shifted = aux.copy(data=np.roll(aux.values, 1, axis=0))
    other = interpolate(da, "unet", seed=0, device="cpu", aux=shifted, **opts).values
    assert not np.array_equal(other, ref)
    same = interpolate(da, "unet", seed=0, device="cpu", aux=(2 * aux + np.cos(aux.lat)).rename("sst_mw"), **opts).values
    np.testing.assert_allclose(same, ref, atol=1e-4)


def test_checkpoint_keeps_the_covariates_and_takes_them_back_by_name(scene, tmp_path):
    da, aux, truth = scene
    wind = (aux * 0 + np.random.default_rng(1).standard_normal(aux.shape)).rename("wind")
    net = UNetInterpolator(seed=0, device="cpu", **{**OPTS, "steps": 20}).fit(da, aux=[aux, wind])
    net.save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())["interpolator"]
    assert [st["name"] for st in meta["aux"]] == ["sst_mw", "wind"]
    assert meta["aux"][0]["units"] == "degC" and meta["aux"][0]["scale"] > 0
    filled = net.reconstruct()["sst"].values
    # given in another order, as a dict: matched by name
    again = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da, aux={"wind": wind, "sst_mw": aux})
    np.testing.assert_array_equal(again.reconstruct()["sst"].values, filled)
    # one day, normalised with the training statistics: the covariate's per-pixel means are the
    # checkpoint's (its own would be the day itself, an anomaly of 0 everywhere)
    day = {"time": slice(10, 11)}
    one = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck"))
    a = one.fit(da.isel(day), aux=[aux.isel(day), wind.isel(day)]).reconstruct()["sst"]
    assert a.attrs["normalisation"] == "training"
    np.testing.assert_allclose(one._aux_means[0], net._aux_means[0])
    b = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(
        da.isel(day), aux=[aux.isel(day) + 1.0, wind.isel(day)]).reconstruct()["sst"]
    gap = np.isnan(da.isel(day).values)
    assert float(np.abs(a.values - b.values)[gap].mean()) > 0.05  # a warmer covariate moves the fill
    with pytest.raises(InputError, match=r"trained with auxiliary variables 'sst_mw', 'wind'; give 'wind'"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da, aux=aux)
    with pytest.raises(InputError, match="drop 'extra'"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(
            da, aux=[aux, wind, wind.rename("extra")])
    # in kelvin (GHRSST and AMSR2 files are) for a network trained in degC: converted, as the field is
    kelvin = (aux.isel(day) + 273.15).assign_attrs(units="K")
    k = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(
        da.isel(day), aux=[kelvin, wind.isel(day)]).reconstruct()["sst"]
    np.testing.assert_allclose(k.values, a.values, atol=1e-3)
    with pytest.raises(InputError, match=r"aux 'sst_mw' is in 'm s-1', checkpoint .* in 'degC'"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(
            da.isel(day), aux=[aux.isel(day).assign_attrs(units="m s-1"), wind.isel(day)])
    # a network trained without covariates refuses them
    plain = UNetInterpolator(seed=0, device="cpu", **{**OPTS, "steps": 2}).fit(da)
    plain.save(tmp_path / "plain")
    with pytest.raises(InputError, match="trained with no auxiliary variable; drop 'sst_mw'"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "plain")).fit(da, aux=aux)


@pytest.mark.parametrize("edit", [
    lambda m: m["aux"][0].update(scale=0),
    lambda m: m["aux"][0].pop("name"),
    lambda m: m.update(aux=[m["aux"][0], m["aux"][0]]),
    lambda m: m.update(aux="sst_mw"),
])
def test_an_edited_aux_record_is_a_checkpoint_error(scene, tmp_path, edit):
    da, aux, _ = scene
    UNetInterpolator(seed=0, device="cpu", **{**OPTS, "steps": 2}).fit(da, aux=aux).save(tmp_path / "ck")
    cfg_path = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    edit(cfg["interpolator"])
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="interpolator.aux must be"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da, aux=aux)


def test_bad_covariates_are_refused_naming_them(scene):
    da, aux, _ = scene
    fit = UNetInterpolator(seed=0, device="cpu", **{**OPTS, "steps": 1}).fit
    cases = [
        (aux.isel(lat=slice(1, None)), "aux 'sst_mw' has 31 points along 'lat', the field 32"),
        (aux.assign_coords(lat=aux.lat + 0.5), "aux 'sst_mw' and the field have other 'lat' coordinates"),
        (aux.rename(lat="y"), "aux 'sst_mw' has dims ('time', 'y', 'lon')"),
        (aux * np.nan, "aux 'sst_mw': all values are NaN"),
        (aux * 0 + 3.0, "aux 'sst_mw': all values are equal"),
        (aux.where(aux.time != aux.time[0], np.inf), "aux 'sst_mw' contains infinite values"),
        ([aux, aux], "aux 'sst_mw' is given twice"),
        (aux.rename(None), "an auxiliary variable has no name"),
        (da, "aux 'sst' is the field being filled"),
        ("sst_mw", "aux must be a DataArray"),
        ({"x": np.zeros((2, 2))}, "aux 'x' has shape (2, 2)"),
    ]
    for bad, said in cases:
        with pytest.raises(InputError) as err:
            fit(da, aux=bad)
        assert said in str(err.value), (said, str(err.value))
    refusing = [name for name, cls in METHODS.items() if not cls.takes_aux]
    assert {"climatology", "eof"} <= set(refusing) and "dineof" not in refusing  # multivariate DINEOF takes them
    for name in refusing:
        with pytest.raises(InputError, match=f"method '{name}': takes no auxiliary variables"):
            interpolate(da, name, aux=aux)
    # multivariate DINEOF fitted on another period takes that period's covariates too (fit_aux)
    with pytest.raises(InputError, match="aux: with fit_on a field, give the same covariates on its days as fit_aux"):
        interpolate(da, "dineof", fit_on=da, aux=aux)


def test_resume_with_covariates_is_bit_identical_and_checks_them(scene, tmp_path):
    da, aux, _ = scene
    opts = {**OPTS, "steps": 6, "checkpoint_every": 2}
    whole = UNetInterpolator(seed=0, device="cpu", save_to=str(tmp_path / "whole"), **opts).fit(da, aux=aux)
    whole.save(tmp_path / "whole")
    net = UNetInterpolator(seed=0, device="cpu", save_to=str(tmp_path / "cut"), **opts)
    net._stop_after_step = 3
    with pytest.raises(Exception, match="stop"):  # the test hook's _TrainingStopped
        net.fit(da, aux=aux)
    with pytest.raises(InputError, match="give 'sst_mw' as aux"):
        UNetInterpolator(seed=0, device="cpu", resume=str(tmp_path / "cut"), **opts).fit(da)
    with pytest.raises(InputError, match="other values than the run"):
        UNetInterpolator(seed=0, device="cpu", resume=str(tmp_path / "cut"), **opts).fit(da, aux=aux + 0.5)
    resumed = UNetInterpolator(seed=0, device="cpu", resume=str(tmp_path / "cut"), **opts).fit(da, aux=aux)
    resumed.save(tmp_path / "cut")
    assert _same_weights(tmp_path / "whole", tmp_path / "cut")


@pytest.fixture(scope="module")
def aux_file(tmp_path_factory, scene):
    da, aux, _ = scene
    path = tmp_path_factory.mktemp("aux") / "sst_mw.nc"
    xr.Dataset({"sst": da, "sst_mw": aux}).to_netcdf(path)
    return path


def test_cli_aux_round_trip_and_refusals(aux_file, tmp_path):
    run = CliRunner().invoke
    ck = tmp_path / "ck"
    res = run(cli, ["train", "interpolator", str(aux_file), "--var", "sst", "--aux", "sst_mw", "--set", "steps=3",
                    "--set", "patch=16", "--device", "cpu", "--quiet", "-o", str(ck)])
    assert res.exit_code == 0, res.output
    # --model without --aux: the checkpoint's covariates, read from the file, and said
    res = run(cli, ["interpolate", str(aux_file), "--var", "sst", "--method", "unet", "--model", str(ck),
                    "--device", "cpu", "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    assert f"auxiliary variables of {ck}: sst_mw" in res.output
    with xr.open_dataset(tmp_path / "a.nc") as out:
        assert out["sst"].attrs["aux_variables"] == "sst_mw"
    res = run(cli, ["info", str(ck)])
    assert res.exit_code == 0 and "auxiliary variables:   sst_mw (degC)" in res.output
    unet = ["--method", "unet", "--set", "steps=1"]
    refusals = [
        (["--method", "eof", "--aux", "sst_mw"], "--aux: method 'eof' takes no auxiliary variables"),
        ([*unet, "--aux", "sst"], "--aux sst: the variable being filled"),
        ([*unet, "--aux", "wind"], "variable 'wind' not found"),
        ([*unet, "--aux", "sst_mw", "--aux", "sst_mw"], "--aux: sst_mw given twice"),
        (["--method", "eof", "--aux", "sst_mw", "--chunks", "time=-1,lat=16,lon=16"],
         "--aux: method 'eof' takes no auxiliary variables"),
        # dineof --fit-on FILE --aux works (tests/test_dineof_fit_aux.py); a method without covariates still refuses
        (["--method", "eof", "--fit-on", str(aux_file), "--aux", "sst_mw"], "--aux: method 'eof' takes no auxiliary"),
        (["--method", "climatology", "--aux", "sst_mw"], "--aux: method 'climatology'"),
    ]
    out = tmp_path / "refused.nc"
    for extra, said in refusals:
        res = run(cli, ["interpolate", str(aux_file), "--var", "sst", *extra, "--quiet", "-o", str(out)])
        assert_cli_error(res, 2, said)
        assert not out.exists()
    # (a dineof fit with covariates is saved since audit98: tests/test_dineof_fit_aux.py)
    for method, said in (("climatology", "--aux: method 'climatology' takes no auxiliary variables"),
                         ("eof", "--aux: method 'eof' takes no auxiliary variables")):
        res = run(cli, ["train", "interpolator", str(aux_file), "--var", "sst", "--method", method, "--aux", "sst_mw",
                        "-o", str(tmp_path / "fit")])
        assert_cli_error(res, 2, said)
        assert not (tmp_path / "fit").exists()


def test_dataset_accessor_takes_aux_by_name():
    """``ds.oceandl.interpolate(var=, aux="name")`` reads the covariate from the Dataset, as ``--aux``
    reads it from the file: the same fill as passing the DataArray; a wrong name suggests close ones."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=12, ny=16, nx=16, seed=0, microwave=True)
    opts = {"steps": 2, "patch": 16, "model_options": TINY["unet"], "device": "cpu"}
    by_name = ds.oceandl.interpolate("unet", var="sst", aux=["sst_mw"], **opts)
    given = ds["sst"].oceandl.interpolate("unet", aux=ds["sst_mw"], **opts)
    assert by_name.attrs["aux_variables"] == "sst_mw"
    np.testing.assert_array_equal(by_name.values, given.values)
    with pytest.raises(InputError, match="'sst_mv' not found; did you mean 'sst_mw'"):
        ds.oceandl.interpolate("unet", var="sst", aux="sst_mv", **opts)


def test_cli_resume_takes_the_runs_covariates_back(aux_file, tmp_path, monkeypatch):
    """A `train interpolator --aux` run killed after step 2, then the same command plus --resume
    without --aux: the run's covariates are read again (and said), to the uninterrupted weights."""
    from oceandl.interp.neural import NeuralInterpolator

    run = CliRunner().invoke
    small = ["train", "interpolator", str(aux_file), "--var", "sst", "--set", "steps=4", "--set", "patch=16",
             "--set", "checkpoint_every=1", "--batch-size", "4", "--device", "cpu"]
    assert run(cli, [*small, "--aux", "sst_mw", "--quiet", "-o", str(tmp_path / "whole")]).exit_code == 0
    with monkeypatch.context() as mp:
        mp.setattr(NeuralInterpolator, "_stop_after_step", 2)
        res = run(cli, [*small, "--aux", "sst_mw", "--quiet", "-o", str(tmp_path / "cut")])
    assert res.exit_code != 0
    res = run(cli, [*small, "--resume", "-o", str(tmp_path / "cut")])
    assert res.exit_code == 0, res.output
    assert f"auxiliary variables of {tmp_path / 'cut'}: sst_mw" in res.output and "resumed at step 2" in res.output
    assert _same_weights(tmp_path / "whole", tmp_path / "cut")


def test_to_field_grid_puts_another_products_covariate_on_the_fields_days_and_grid():
    """A covariate on a 3x coarser grid, at noon instead of midnight and in 0..360 longitudes:
    matched day by day and interpolated to the field's grid (what was done is said); a finer one is
    block-averaged first; another region or other days are refused; one on the grid is returned as is."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field, to_field_grid

    ds = synthetic_sst(n_time=10, ny=48, nx=48, seed=0, microwave=True)
    field, mw = open_field(ds, "sst"), open_field(ds, "sst_mw")
    coarse = mw.coarsen(lat=3, lon=3, boundary="trim").mean()
    coarse = coarse.assign_coords(time=coarse.time + np.timedelta64(12, "h"), lon=coarse.lon % 360)
    on, done = to_field_grid(coarse, field)
    assert done == ["times matched to the field's 10 (nearest within half its step)",
                    "its 16 x 16 grid interpolated (linear) to the field's 48 x 48"]
    assert on.dims == ("time", "lat", "lon") and on.shape == field.shape
    np.testing.assert_array_equal(on.lon.values, field.lon.values)
    np.testing.assert_array_equal(on.time.values, field.time.values)
    # at the coarse cells' centres the value is the coarse one (bilinear interpolation passes through them)
    i, j = 3 * 5 + 1, 3 * 7 + 1
    assert float(on[4, i, j]) == pytest.approx(float(coarse[4, 5, 7]), abs=1e-5)
    # close to the truth still: the footprint is wider, not misplaced (0.78 degC RMS, the native 0.45 here)
    truth = ds["sst_true"].values
    err = on.values - truth
    assert 0.6 < float(np.sqrt(np.nanmean(err ** 2))) < 0.9
    fine = mw.interp(lat=np.linspace(float(mw.lat[0]), float(mw.lat[-1]), 192),
                     lon=np.linspace(float(mw.lon[0]), float(mw.lon[-1]), 192))
    assert to_field_grid(fine, field)[1] == [
        "its 192 x 192 grid block-averaged (lat x 4, lon x 4) and interpolated (linear) to the field's 48 x 48"]
    same, nothing = to_field_grid(mw, field)
    assert same is mw and nothing == []
    with pytest.raises(InputError, match="no value on the field's grid"):
        to_field_grid(coarse.assign_coords(lat=coarse.lat + 60), field)
    with pytest.raises(InputError, match="none of its time steps is within half a step"):
        to_field_grid(coarse.assign_coords(time=coarse.time + np.timedelta64(100, "D")), field)


def test_cli_aux_from_another_file_on_another_grid(tmp_path):
    """``--aux FILE:VAR``: the covariate of another file, on a coarser grid and other times, is put
    on the field's (said on stderr) and named VAR in the output; a missing file is one line."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=10, ny=24, nx=24, seed=0, microwave=True)
    ds[["sst"]].to_netcdf(tmp_path / "ir.nc")
    coarse = ds[["sst_mw"]].coarsen(lat=2, lon=2, boundary="trim").mean()
    coarse.assign_coords(time=coarse.time + np.timedelta64(6, "h")).to_netcdf(tmp_path / "mw.nc")
    out = tmp_path / "out.nc"
    base = ["interpolate", str(tmp_path / "ir.nc"), "--method", "unet", "--set", "steps=2", "--set", "patch=16",
            "--device", "cpu", "-o", str(out)]
    res = CliRunner().invoke(cli, [*base, "--aux", f"{tmp_path / 'mw.nc'}:sst_mw"])
    assert res.exit_code == 0, res.output
    assert "its 12 x 12 grid interpolated (linear) to the field's 24 x 24" in res.stderr
    with xr.open_dataset(out) as filled:
        assert filled["sst"].attrs["aux_variables"] == "sst_mw"
    res = CliRunner().invoke(cli, [*base, "--overwrite", "--aux", f"{tmp_path / 'none.nc'}:sst_mw"])
    assert_cli_error(res, 2, "no such file", "none.nc")


@pytest.mark.parametrize("lazy", [False, True])
def test_a_finer_grid_not_a_whole_multiple_is_averaged_by_the_whole_cells_that_fit(lazy):
    """A covariate 1.5x finer than the field was block-averaged by round(1.5) = 2, coarser than the
    field's own grid before the interpolation: now not averaged (1 cell fits), 2.55x by 2, 3x by 3.
    On a wave 4 field cells long the fill's error at the field's points falls by half."""
    from oceandl.io import to_field_grid

    t = np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]")
    lat_f, lon_f = np.arange(24) * 0.25, np.arange(24) * 0.25

    def wave(lat, lon):
        return np.broadcast_to(np.sin(2 * np.pi * lat[:, None] / 1.0) + np.cos(2 * np.pi * lon[None, :] / 1.0),
                               (2, lat.size, lon.size)).astype("f8")

    field = xr.DataArray(wave(lat_f, lon_f), dims=("time", "lat", "lon"), coords={"time": t, "lat": lat_f, "lon": lon_f})
    chunks = {"time": 1, "lat": 12, "lon": 12} if lazy else None
    truth = field.values
    for ratio, said in ((1.5, None), (2.55, "(lat x 2, lon x 2)"), (3, "(lat x 3, lon x 3)")):
        step = 0.25 / ratio
        lat_c = (np.arange(-2, int(6 / step) + 3) + 0.5) * step  # between the field's points: no cut
        cov = xr.DataArray(wave(lat_c, lat_c), dims=("time", "lat", "lon"),
                           coords={"time": t, "lat": lat_c, "lon": lat_c})
        if lazy:
            cov = cov.chunk({"time": 1, "lat": 16, "lon": 16})
        on, done = to_field_grid(cov, field, chunks=chunks)
        assert ("block-averaged" in done[-1]) == (said is not None), done
        if said:
            assert said in done[-1]
        if ratio == 1.5:
            err = np.sqrt(np.nanmean((np.asarray(on.values) - truth) ** 2))
            old = cov.coarsen(lat=2, lon=2, boundary="trim").mean().interp(lat=lat_f, lon=lon_f)
            err_old = np.sqrt(np.nanmean((np.asarray(old.values) - truth) ** 2))
            assert err < 0.5 * err_old, (err, err_old)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_coarser_covariate_fills_the_fields_edge_pixels_inside_its_outer_cells(lazy):
    """A 0.25 degree covariate over the field's 0.05 degree box: the field's points between its outer
    cell centres and the cells' edges were NaN (a ring round the field: linear interpolation does not
    extrapolate). They lie inside the outer cells and now take their value; a point beyond half a
    cell (outside the covariate's box) is still missing."""
    from oceandl.io import to_field_grid

    t = np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]")
    lat_f = (np.arange(20) + 0.5) * 0.05            # 0.025 .. 0.975
    lon_f = (np.arange(-2, 20) + 0.5) * 0.05        # 2 columns west of the covariate's box
    lat_c = (np.arange(4) + 0.5) * 0.25             # 0.125 .. 0.875
    vals = np.arange(2 * 4 * 4, dtype="f8").reshape(2, 4, 4)
    cov = xr.DataArray(vals, dims=("time", "lat", "lon"), coords={"time": t, "lat": lat_c, "lon": lat_c})
    field = xr.DataArray(np.zeros((2, lat_f.size, lon_f.size)), dims=("time", "lat", "lon"),
                         coords={"time": t, "lat": lat_f, "lon": lon_f})
    if lazy:
        cov = cov.chunk({"time": 1, "lat": 2, "lon": 2})
    on, _ = to_field_grid(cov, field, chunks={"time": 1, "lat": 8, "lon": 8} if lazy else None)
    got = np.asarray(on.values)
    inside = lon_f >= 0
    assert np.isfinite(got[:, :, inside]).all()             # no ring: 144 of 400 points were NaN before
    assert np.isnan(got[:, :, ~inside]).all()               # beyond the covariate's box: missing still
    # the corner point (0.025, 0.025) is inside cell (0, 0): its value, as is every point of that cell's
    # outer quarter
    np.testing.assert_array_equal(got[:, 0, 2], vals[:, 0, 0])
    np.testing.assert_array_equal(got[:, -1, -1], vals[:, -1, -1])
    # between the centres, linear as before
    assert got[1, 4, 6] == pytest.approx(float(cov.isel(time=1).interp(lat=lat_f[4], lon=lon_f[6])))


def test_a_covariate_of_a_longer_period_says_its_days_were_taken_not_matched():
    """The field a period of the covariate's (``--dates`` on the field, the covariate's whole year):
    no day moves, and the message said "times matched ... nearest within half its step" as if one
    had; it now says the field's days were taken from the covariate's, and the values are those days'."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field, to_field_grid

    ds = synthetic_sst(n_time=10, ny=16, nx=16, seed=0, microwave=True)
    field, mw = open_field(ds, "sst").isel(time=slice(3, 8)), open_field(ds, "sst_mw")
    on, done = to_field_grid(mw, field)
    assert done == ["the field's 5 time steps taken from its 10"]
    np.testing.assert_array_equal(on.values, mw.isel(time=slice(3, 8)).values)
    shifted = mw.assign_coords(time=mw.time + np.timedelta64(6, "h"))
    assert to_field_grid(shifted, field)[1] == ["times matched to the field's 5 (nearest within half its step)"]
