"""Saved fits on regions and covariates: a multivariate DINEOF fit cut to a box of its grid (its
covariates' normalisation and columns too) and ``transform()`` of a block of the fitted grid (cut
itself, warned).

The box's fill is the whole grid's fill with every observation outside the box hidden (the field's
and the covariate's), to float precision: the same cut modes, least squares on the same pixels.
Against the whole grid's fill with all its observations it differs by what those outside
observations tell the amplitudes (solved from the box's pixels only): measured here, rms 0.41
degC at the 12 x 16 box's gaps (one row off: 2.69)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from fakes import torch_threads

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
