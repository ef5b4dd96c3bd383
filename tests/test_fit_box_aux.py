"""Saved fits on regions and covariates: a multivariate DINEOF fit cut to a box of its grid (its
covariates' normalisation and columns too), ``transform()`` of a block of the fitted grid (cut
itself, warned), and ``interpolate --fit-on FILE --aux FILE:VAR --fit-aux FILE:VAR`` (the fitted
period's covariate in a file of its own).

The box's fill is the whole grid's fill with every observation outside the box hidden (the field's
and the covariate's), to float precision: the same cut modes, least squares on the same pixels.
Against the whole grid's fill with all its observations it differs by what those outside
observations tell the amplitudes (solved from the box's pixels only): measured here, rms 0.41
degC at the 12 x 16 box's gaps (one row off: 2.69)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, torch_threads

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import DINEOF, EOFInterpolator, interpolate, load_fitted

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*the cross-validation set is:UserWarning")]

BOX = "--bbox=-65,30,-55,40"  # rows 6-17, columns 8-23 of the 24 x 32 grid (as tests/test_fit_box.py)
ROWS, COLS = slice(6, 18), slice(8, 24)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """past.nc (45 days) and new.nc (the next 15) of a 24 x 32 synthetic cube with its microwave SST,
    DINEOF fitted on the past with it and saved in ``fit``."""
    root = tmp_path_factory.mktemp("fit_box_aux")
    ds = synthetic_sst(seed=0, n_time=60, ny=24, nx=32, microwave=True)
    past, new = ds.isel(time=slice(0, 45)), ds.isel(time=slice(45, None))
    past.to_netcdf(root / "past.nc")
    new.to_netcdf(root / "new.nc")
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")
        fit = DINEOF(n_modes=3, error_map=True, seed=0, device="cpu").fit(past["sst"], aux=past["sst_mw"])
        fit.save(root / "fit")
    return root, new, fit


def _inside_only(da):
    """``da`` with every value outside the box hidden."""
    v = np.full(da.shape, np.nan, np.float32)
    v[:, ROWS, COLS] = da.values[:, ROWS, COLS]
    return da.copy(data=v)


def test_a_fit_with_covariates_fills_a_box_of_its_grid(cube):
    root, new, fit = cube
    box, mw = new["sst"].isel(lat=ROWS, lon=COLS), new["sst_mw"].isel(lat=ROWS, lon=COLS)
    got = fit.cut(box).transform(box, aux=mw)
    assert got["sst"].attrs["aux_variables"] == "sst_mw"
    # the whole grid's fill with the observations outside the box hidden, the covariate's too
    ref = fit.transform(_inside_only(new["sst"]), aux=_inside_only(new["sst_mw"]))
    gaps = np.isnan(box.values) & np.isfinite(got["sst"].values)
    assert gaps.sum() > 1500
    np.testing.assert_allclose(got["sst"].values, ref["sst"].values[:, ROWS, COLS], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got["missing_flag"].values, ref["missing_flag"].values[:, ROWS, COLS])
    assert np.isfinite(got["sigma"].values[gaps]).all()
    # against the whole grid's fill with every observation: what those outside the box add (0.41),
    # far under a cut one row off
    whole = fit.transform(new["sst"], aux=new["sst_mw"])["sst"].values

    def rms_to(rows):
        return float(np.sqrt(np.nanmean((got["sst"].values - whole[:, rows, COLS])[gaps] ** 2)))

    assert rms_to(ROWS) == pytest.approx(0.41, abs=0.05)
    assert rms_to(slice(7, 19)) > rms_to(ROWS) + 1.0
    # the covariate's box counts: given the days in reverse order, the fill is another
    other = fit.cut(box).transform(box, aux=mw.copy(data=mw.values[::-1]))["sst"].values
    assert float(np.sqrt(np.mean((other - got["sst"].values)[gaps] ** 2))) > 0.1
    # the saved fit cut to the box: the same values
    loaded = load_fitted(root / "fit", device="cpu").cut(box).transform(box, aux={"sst_mw": mw})
    np.testing.assert_allclose(loaded["sst"].values, got["sst"].values, rtol=0, atol=1e-5)
    np.testing.assert_allclose(loaded["sigma"].values, got["sigma"].values, rtol=0, atol=1e-5)


def test_cli_fills_a_box_with_a_saved_fit_with_covariates(cube, tmp_path):
    """--fit-on FOLDER --bbox: the saved fit's covariates read from INPUT's box, the fit cut to it."""
    root, new, fit = cube
    res = CliRunner().invoke(cli, ["interpolate", str(root / "new.nc"), "--var", "sst", "--fit-on", str(root / "fit"),
                                   BOX, "--withhold", "0", "--device", "cpu", "-o", str(tmp_path / "box.nc")])
    assert res.exit_code == 0, res.output
    assert "auxiliary variables of the fit saved in" in res.output
    box, mw = new["sst"].isel(lat=ROWS, lon=COLS), new["sst_mw"].isel(lat=ROWS, lon=COLS)
    ref = fit.cut(box).transform(box, aux=mw)
    with xr.open_dataset(tmp_path / "box.nc") as ds:
        assert ds["sst"].shape == (15, 12, 16)
        np.testing.assert_allclose(ds["sst"].values, ref["sst"].values, rtol=0, atol=1e-5)
        assert "cut to the 12 x 16 box" in ds["sst"].attrs["fitted_on"]
        assert ds["sst"].attrs["aux_variables"] == "sst_mw"


def test_transform_of_a_block_of_the_grid_cuts_the_fit_and_says_so(cube):
    """fit.transform(box) without cut(): cut to it, warned; the same fill as cut(box).transform(box).
    A grid that is not a block of the fit's (every other point, shifted) is refused in one line."""
    _, new, fit = cube
    box, mw = new["sst"].isel(lat=ROWS, lon=COLS), new["sst_mw"].isel(lat=ROWS, lon=COLS)
    eof = EOFInterpolator(n_modes=3).fit(new["sst"])
    for model, aux in ((fit, mw), (eof, None)):
        with pytest.warns(UserWarning, match=r"variable 'sst': its 12 x 16 grid is a block of the fit's 24 x 32: "
                                             r"filled with the fit cut to it"):
            got = model.transform(box, aux=aux)
        ref = model.cut(box).transform(box, aux=aux)
        np.testing.assert_allclose(got["sst"].values, ref["sst"].values, rtol=0, atol=1e-6)
        assert "cut to the 12 x 16 box" in got["sst"].attrs["fitted_on"]
    # interpolate(fit_on=a fit) takes the box as well
    with pytest.warns(UserWarning, match="is a block of the fit's"):
        out = interpolate(box, "dineof", fit_on=fit, aux=mw, device="cpu")
    np.testing.assert_allclose(out.values, fit.cut(box).transform(box, aux=mw)["sst"].values, rtol=0, atol=1e-6)
    for bad, part in ((new["sst"].isel(lat=slice(0, None, 2), lon=COLS), "one in 2 of the points of the fit's grid"),
                      (box.assign_coords(lon=box["lon"] + 0.3), "its longitudes are not points of the fit's grid")):
        with pytest.raises(InputError) as err:
            eof.transform(bad)
        assert part in str(err.value) and "24 x 32 grid" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    """A 16 x 16 cube's SST and microwave SST, each period in its own files: sst_past.nc, sst_new.nc,
    mw_past.nc (the covariate named 'mw' there), mw_new.nc; and both variables in past.nc, new.nc."""
    root = tmp_path_factory.mktemp("fit_aux")
    ds = synthetic_sst(seed=1, n_time=40, ny=16, nx=16, microwave=True)
    past, new = ds.isel(time=slice(0, 30)), ds.isel(time=slice(30, None))
    for name, part in (("past", past), ("new", new)):
        part[["sst", "sst_mw"]].to_netcdf(root / f"{name}.nc")
        part[["sst"]].to_netcdf(root / f"sst_{name}.nc")
    past[["sst_mw"]].rename(sst_mw="mw").to_netcdf(root / "mw_past.nc")
    new[["sst_mw"]].to_netcdf(root / "mw_new.nc")
    return root


def _fill(root, out, *extra):
    return CliRunner().invoke(cli, ["interpolate", *map(str, extra), "--var", "sst", "--method", "dineof",
                                    "--set", "n_modes=3", "--withhold", "0", "--device", "cpu", "--quiet",
                                    "-o", str(out)])


def test_fit_aux_reads_the_fitted_periods_covariate_from_its_own_file(split_files, cube, tmp_path):
    """--aux mw_new.nc:sst_mw --fit-aux mw_past.nc:mw: the same fill as both periods' covariates in the
    field's files (--aux sst_mw); without --fit-aux, today's file is read for the fitted period too
    (refused: it does not cover it, and the error says --fit-aux)."""
    root = split_files
    res = _fill(root, tmp_path / "one.nc", root / "new.nc", "--fit-on", root / "past.nc", "--aux", "sst_mw")
    assert res.exit_code == 0, res.output
    res = _fill(root, tmp_path / "split.nc", root / "sst_new.nc", "--fit-on", root / "sst_past.nc",
                "--aux", f"{root / 'mw_new.nc'}:sst_mw", "--fit-aux", f"{root / 'mw_past.nc'}:mw")
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "one.nc") as a, xr.open_dataset(tmp_path / "split.nc") as b:
        np.testing.assert_allclose(b["sst"].values, a["sst"].values, rtol=0, atol=1e-5)
        assert b["sst"].attrs["aux_variables"] == "sst_mw"
    never = tmp_path / "never.nc"
    mw_new, mw_past = f"{root / 'mw_new.nc'}:sst_mw", f"{root / 'mw_past.nc'}:mw"
    cases = [
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new],
         ["none of its time steps is within half a step", "--fit-aux FILE:VAR"]),
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new, "--fit-aux", mw_past, "--fit-aux", mw_past],
         ["--fit-aux", "one per --aux, in its order"]),
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new, "--fit-aux", f"{root / 'mw_past.nc'}:nope"],
         ["nope"]),
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new, "--fit-aux", f"{root / 'nofile.nc'}:mw"],
         ["--fit-aux", "no such file"]),
        (["--aux", mw_new, "--fit-aux", mw_past], ["--fit-aux: the covariates of the fitted period, only with "
                                                   "--fit-on FILE"]),
    ]
    for extra, parts in cases:
        res = _fill(root, never, root / "sst_new.nc", *extra)
        assert_cli_error(res, 2, *parts)
        assert not never.exists()
    # a saved fit was made with its own covariates
    res = CliRunner().invoke(cli, ["interpolate", str(cube[0] / "new.nc"), "--var", "sst", "--fit-on",
                                   str(cube[0] / "fit"), "--fit-aux", "sst_mw", "--quiet", "-o", str(never)])
    assert_cli_error(res, 2, "--fit-aux: the covariates of the fitted period, only with --fit-on FILE",
                     f"the fit saved in {cube[0] / 'fit'} was made with its own")
    assert not never.exists()
