"""An explicit land-sea mask: ``fit(da, mask=)``, ``interpolate(..., mask=)``, the accessor's
``mask="land"``, ``oceandl interpolate|train interpolator --mask VAR|FILE:VAR``.

Built on the synthetic cube (its ``land`` variable: CF flags "ocean land") with a 5 x 5 box of
ocean under cloud every day and spurious observations on land: without a mask the box is land
(NaN) and the land values are fitted; with it the land values are dropped (flag 3), the networks
fill the box (measured against ``sst_true``), DINEOF leaves it missing with one warning (flag 4)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error
from test_neural_interp import TINY

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import DINEOF, interpolate, load_fitted
from oceandl.interp.mask import read_mask

BOX = (slice(4, 9), slice(12, 17))  # open ocean, away from the synthetic coast (seed 1, 32 x 32)
NET = {"steps": 150, "batch_size": 8, "patch": 32, "model_options": TINY["unet"], "seasonal": False}
DINEOF_OPTS = {"max_modes": 5}


def _cube():
    """(dataset with `sst` cloudy in BOX every day and 35 degC on 8 land pixels every 3rd day, the
    land pixels given those values as (ys, xs))."""
    ds = synthetic_sst(n_time=40, ny=32, nx=32, cloud_cover=0.5, seed=1)
    land = ds["land"].values.astype(bool)
    assert not land[BOX].any()
    v = ds["sst"].values.copy()
    v[:, BOX[0], BOX[1]] = np.nan
    ys, xs = np.nonzero(land)
    ys, xs = ys[::20][:8], xs[::20][:8]
    v[::3, ys, xs] = 35.0  # a hot coastal artefact: no SST of this region
    return ds.assign(sst=(ds["sst"].dims, v, ds["sst"].attrs)), (ys, xs)


@pytest.fixture(scope="module")
def cube():
    return _cube()


def _rmse(a, b):
    return float(np.sqrt(np.nanmean((np.asarray(a) - np.asarray(b)) ** 2)))


# ------------------------------------------------------------------------------ the mask's values
def test_read_mask_conventions(cube):
    ds, _ = cube
    da = ds["sst"]
    sea = ~ds["land"].values.astype(bool)
    got, how = read_mask(ds["land"], da, "f")  # CF flags "ocean land"
    assert np.array_equal(got, sea) and "flag_values" in how
    plain = xr.DataArray(sea.astype(np.int8), dims=("lat", "lon"), coords={"lat": da.lat, "lon": da.lon})
    assert np.array_equal(read_mask(plain, da, "f")[0], sea)  # 1 = ocean
    assert np.array_equal(read_mask(sea, da, "f")[0], sea)  # a plain bool array on the grid
    frac = xr.DataArray(np.where(sea, 0.3, 0.8), dims=("lat", "lon"), name="lsm",
                        coords={"lat": da.lat, "lon": da.lon})  # ERA5-style land fraction
    assert np.array_equal(read_mask(frac, da, "f")[0], sea)
    nan_land = plain.where(plain == 1)  # 1 on sea, NaN on land
    assert np.array_equal(read_mask(nan_land, da, "f")[0], sea)
    # another longitude convention, latitudes reversed, on a larger grid: matched by value and cut
    big = plain.assign_coords(lon=np.mod(plain.lon.values, 360)).isel(lat=slice(None, None, -1))
    big.lon.attrs["units"], big.lat.attrs["units"] = "degrees_east", "degrees_north"
    extra = xr.DataArray(np.zeros((32, 3), np.int8), dims=("lat", "lon"),
                         coords={"lat": big.lat.values, "lon": big.lon.values.max() + [1.0, 2.0, 3.0]})
    big = xr.concat([big, extra], dim="lon")
    assert np.array_equal(read_mask(big, da, "f")[0], sea)


@pytest.mark.parametrize("mask, part", [
    (np.ones((31, 32), bool), "shape (31, 32)"),
    (np.full((32, 32), 2, np.int8), "got 2"),
    (np.zeros((32, 32), bool), "every pixel is land"),
    (np.ones((2, 32, 32), bool), "shape (2, 32, 32)"),
])
def test_read_mask_refusals(cube, mask, part):
    with pytest.raises(InputError, match=part.replace("(", r"\(").replace(")", r"\)")) as err:
        interpolate(cube[0]["sst"], "climatology", mask=mask)
    assert "\n" not in str(err.value) and "mask" in str(err.value)


def test_read_mask_flag_values_checked(cube):
    ds, _ = cube
    odd = ds["land"].astype(np.float32) * 0.9  # flag attrs kept, values no flag
    odd.attrs = dict(ds["land"].attrs)
    with pytest.raises(InputError, match=r"value 0.9 is none of its flag_values \[0, 1\]"):
        interpolate(ds["sst"], "climatology", mask=odd)


def test_read_mask_other_grid(cube):
    ds, _ = cube
    shifted = ds["land"].assign_coords(lat=ds.lat.values + 0.3)
    with pytest.raises(InputError, match="latitudes .* do not hold the field's"):
        interpolate(ds["sst"], "climatology", mask=shifted)
    with pytest.raises(InputError, match="more observations on the mask.s land .* inverted"):
        interpolate(ds["sst"], "climatology", mask=ds["land"] == 1)  # inverted: every observation on 'land'


# ------------------------------------------------------------------------------------ semantics
def test_no_mask_box_is_land_and_land_values_fitted(cube):
    ds, (ys, xs) = cube
    out = interpolate(ds["sst"], "dineof", return_dataset=True, **DINEOF_OPTS)
    assert np.isnan(out["sst"].values[:, BOX[0], BOX[1]]).all()
    assert (out["sst"].values[::3, ys, xs] == 35.0).all()  # kept as an observation
    assert list(out["missing_flag"].attrs["flag_values"]) == [0, 1, 2]
    assert "land_sea_mask" not in out["sst"].attrs


def test_dineof_mask_drops_land_and_warns_for_unseen_ocean(cube):
    ds, (ys, xs) = cube
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = interpolate(ds["sst"], "dineof", mask=ds["land"], return_dataset=True, **DINEOF_OPTS)
    unseen = ~np.isfinite(ds["sst"].values).any(axis=0) & (ds["land"].values == 0)
    said = [str(w.message) for w in caught if "never observed" in str(w.message)]
    assert len(said) == 1 and f"{int(unseen.sum())} ocean pixels" in said[0]
    flag = out["missing_flag"].values
    assert np.isnan(out["sst"].values[:, ys, xs]).all() and (flag[::3, ys, xs] == 3).all()
    assert (flag[:, unseen] == 4).all() and np.isnan(out["sst"].values[:, unseen]).all()
    assert list(out["missing_flag"].attrs["flag_values"]) == [0, 1, 2, 3, 4]
    assert "ocean_never_observed_not_filled" in out["missing_flag"].attrs["flag_meanings"]
    assert int((flag == 3).sum()) == len(ys) * len(range(0, 40, 3))
    # the land values are not fitted: the fill is the one of the cube without them
    clean = ds["sst"].where(ds["land"] == 0)
    ref = interpolate(clean, "dineof", return_dataset=True, **DINEOF_OPTS)
    sea = ds["land"].values == 0
    np.testing.assert_allclose(out["sst"].values[:, sea], ref["sst"].values[:, sea], rtol=0, atol=1e-5, equal_nan=True)
    assert "land_sea_mask" in out["sst"].attrs and "missing_flag 3" in out["sst"].attrs["comment"]


def test_mask_matching_observed_ocean_changes_nothing(cube):
    ds, _ = cube
    clean = ds["sst"].where(ds["land"] == 0)
    ocean = np.isfinite(clean.values).any(axis=0)
    a = interpolate(clean, "dineof", **DINEOF_OPTS)
    b = interpolate(clean, "dineof", mask=ocean, **DINEOF_OPTS)
    np.testing.assert_array_equal(a.values, b.values)


def test_unet_fills_ocean_cloudy_every_day(cube):
    ds, (ys, xs) = cube
    truth = ds["sst_true"].values
    out = interpolate(ds["sst"], "unet", mask=ds["land"], return_dataset=True, **NET)
    box = out["sst"].values[:, BOX[0], BOX[1]]
    assert np.isfinite(box).all() and (out["missing_flag"].values[:, BOX[0], BOX[1]] == 1).all()
    err = _rmse(box, truth[:, BOX[0], BOX[1]])
    # measured 0.81 degC (truth std over the box and its 40 days: 0.88)
    assert err < 1.2, err
    assert np.isnan(out["sst"].values[:, ys, xs]).all()
    sea = ds["land"].values == 0
    assert np.isfinite(out["sst"].values[:, sea]).all()  # every ocean pixel, never-observed ones too


def test_accessor_takes_a_mask_name(cube):
    ds, (ys, xs) = cube
    out = ds.oceandl.interpolate("climatology", var="sst", mask="land", return_dataset=True)
    assert (out["missing_flag"].values[::3, ys, xs] == 3).all()
    with pytest.raises(InputError, match="'lands' not found"):
        ds.oceandl.interpolate("climatology", var="sst", mask="lands")


def test_checkpoint_keeps_the_mask(cube, tmp_path):
    from oceandl.interp.neural import UNetInterpolator

    ds, (ys, xs) = cube
    net = UNetInterpolator(**NET).fit(ds["sst"], mask=ds["land"])
    net.save(tmp_path / "unet")
    from oceandl.describe import describe

    assert describe(tmp_path / "unet")["land-sea mask"].startswith(f"stored ({ds.sizes['lat']} x {ds.sizes['lon']})")
    out = interpolate(ds["sst"].isel(time=slice(0, 10)), "unet", checkpoint=str(tmp_path / "unet"),
                      return_dataset=True)  # no mask given: the checkpoint's
    assert out["sst"].attrs["normalisation"] == "training"
    assert (out["missing_flag"].values[::3, ys, xs] == 3).all()
    assert np.isfinite(out["sst"].values[:, BOX[0], BOX[1]]).all()
    assert "checkpoint" in out["sst"].attrs["land_sea_mask"]


def test_saved_dineof_fit_keeps_the_mask(cube, tmp_path):
    ds, (ys, xs) = cube
    fit = DINEOF(**DINEOF_OPTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.fit(ds["sst"], mask=ds["land"])
    fit.save(tmp_path / "fit")
    from oceandl.describe import describe

    assert describe(tmp_path / "fit")["land-sea mask"].startswith("stored (")
    fit_nomask = DINEOF(**DINEOF_OPTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_nomask.fit(ds["sst"])
    fit_nomask.save(tmp_path / "fit_nomask")
    assert "land-sea mask" not in describe(tmp_path / "fit_nomask")
    out = load_fitted(tmp_path / "fit").transform(ds["sst"].isel(time=slice(0, 7)))
    assert (out["missing_flag"].values[::3, ys, xs] == 3).all()
    assert np.isnan(out["sst"].values[:, ys, xs]).all()
    assert (out["missing_flag"].values[:, BOX[0], BOX[1]] == 4).all()
    with pytest.raises(InputError, match="mask: not with fit_on a fit already made"):
        interpolate(ds["sst"], "dineof", fit_on=str(tmp_path / "fit"), mask=ds["land"])


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(cube, tmp_path_factory):
    ds, _ = cube
    d = tmp_path_factory.mktemp("mask")
    ds[["sst", "land"]].to_netcdf(d / "sst.nc")
    # another file, the mask in 0..360 and on a grid with a column more
    lsm = (ds["land"].astype(np.float32) * 0.9).rename("lsm").assign_coords(lon=np.mod(ds.lon.values, 360))
    lsm.attrs = {"long_name": "land-sea mask (land fraction)"}  # as ERA5's lsm: no flags
    lsm.lon.attrs["units"] = "degrees_east"
    extra = lsm.isel(lon=[-1]).assign_coords(lon=[lsm.lon.values[-1] + 1.0])
    xr.concat([lsm, extra], dim="lon").to_dataset().to_netcdf(d / "lsm.nc")
    return d


def test_cli_interpolate_mask(files, cube):
    _, (ys, xs) = cube
    runner = CliRunner()
    out = files / "filled.nc"
    res = runner.invoke(cli, ["interpolate", str(files / "sst.nc"), "--method", "dineof", "--set", "max_modes=5",
                              "--mask", "land", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "observations on its land dropped" in res.output
    with xr.open_dataset(out) as r:
        assert (r["missing_flag"].values[::3, ys, xs] == 3).all()
        assert np.isnan(r["sst"].values[:, ys, xs]).all()
        assert (r["missing_flag"].values[:, BOX[0], BOX[1]] == 4).all()
    other = files / "filled_lsm.nc"
    res = runner.invoke(cli, ["interpolate", str(files / "sst.nc"), "--method", "climatology", "--mask",
                              f"{files / 'lsm.nc'}:lsm", "-o", str(other), "--quiet"])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(other) as r:
        assert (r["missing_flag"].values[::3, ys, xs] == 3).all()
        assert r["sst"].attrs["land_sea_mask"].startswith(f"--mask {files / 'lsm.nc'}:lsm: ocean where the land "
                                                          "fraction is below 0.5")


def test_cli_train_interpolator_mask(files, cube, tmp_path):
    _, (ys, xs) = cube
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "interpolator", str(files / "sst.nc"), "--method", "dineof", "--set",
                              "max_modes=5", "--mask", "land", "-o", str(tmp_path / "fit"), "--quiet"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "filled.nc"
    res = runner.invoke(cli, ["interpolate", str(files / "sst.nc"), "--fit-on", str(tmp_path / "fit"), "-o", str(out),
                              "--quiet", "--withhold", "0"])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as r:
        assert (r["missing_flag"].values[::3, ys, xs] == 3).all()


@pytest.mark.parametrize("args, parts", [
    (["--mask", "lands"], ["--mask lands", "'lands' not found"]),
    (["--mask", "sst"], ["--mask sst", "the variable being filled"]),
    (["--mask", "lands", "--chunks", "time=-1,lat=16,lon=16"], ["--mask lands", "'lands' not found"]),
    (["--mask", "LSM:lsm"], ["lsm_shifted.nc:lsm: its latitudes", "do not hold the field's"]),
])
def test_cli_mask_refusals(files, args, parts):
    out = files / "refused.nc"
    args = [a.replace("LSM", str(files / "lsm_shifted.nc")) for a in args]
    if any("lsm_shifted" in a for a in args) and not (files / "lsm_shifted.nc").exists():
        with xr.open_dataset(files / "lsm.nc") as m:
            m.assign_coords(lat=m.lat.values + 0.3).to_netcdf(files / "lsm_shifted.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(files / "sst.nc"), "--method", "climatology", *args,
                                   "-o", str(out), "--quiet"])
    assert_cli_error(res, 2, *parts)
    assert not out.exists()
