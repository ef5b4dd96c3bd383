"""A fit of a whole grid (climatology, eof, dineof), saved or in memory, fills a box of it:
``oceandl interpolate NEW.nc --fit-on FOLDER --bbox W,S,E,N`` and ``fit.cut(box).transform(box)``.

The fit's per-pixel state is cut to the box; each new day is filled by the same least squares of
the cut modes on its observed pixels. So the box's fill is, to float precision, the whole grid's
fill of the same days with every observation outside the box hidden (the climatology's: the whole
grid's fill itself, which reads no observation). Against the whole grid's fill with all its
observations it differs by what those outside observations tell: measured here, on the synthetic
cube (eof: rms 1.47 degC at the 12 x 16 box's gaps, dineof 0.59; one row off, 2.39 and 2.87).
A grid that is not a block of consecutive rows and columns of the fit's is refused in one line."""
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
from oceandl.interp import DINEOF, Climatology, EOFInterpolator, load_fitted
from oceandl.interp.base import grid_block
from oceandl.io import open_field

# a pixel of the box observed in the new days but never in the 45 fitted: kept as given, warned
pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning")]

BOX = (-65.0, 30.0, -55.0, 40.0)  # rows 6-17, columns 8-23 of the 24 x 32 grid: 12 x 16, an island in it
ROWS, COLS = slice(6, 18), slice(8, 24)
BBOX = "--bbox=" + ",".join(f"{b:g}" for b in BOX)
FITS = {
    "climatology": lambda: Climatology(harmonics=0),
    "eof": lambda: EOFInterpolator(n_modes=3),
    "dineof": lambda: DINEOF(n_modes=3, error_map=True, seed=0),
}


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """past.nc (45 days) and new.nc (the next 15) of a 24 x 32 synthetic cube, each method fitted on
    the past and saved (FOLDER named as the method), the new field read back."""
    root = tmp_path_factory.mktemp("fit_box")
    ds = synthetic_sst(seed=0, n_time=60, ny=24, nx=32)
    ds.isel(time=slice(0, 45)).to_netcdf(root / "past.nc")
    ds.isel(time=slice(45, None)).to_netcdf(root / "new.nc")
    past = open_field(root / "past.nc", "sst")
    fits = {}
    # one torch thread (the test's own fixture comes after this module's): DINEOF's fit took 15 s, not 0.3
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")  # the small cube's calibration warnings
        for name, make in FITS.items():
            fits[name] = make().fit(past)
            fits[name].save(root / name)
    return root, open_field(root / "new.nc", "sst"), fits


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


def _outside_hidden(new, rows=ROWS, cols=COLS):
    """``new`` with every observation outside the box hidden."""
    v = np.full(new.shape, np.nan, np.float32)
    v[:, rows, cols] = new.values[:, rows, cols]
    return new.copy(data=v)


@pytest.mark.parametrize("name", sorted(FITS))
def test_the_box_is_filled_as_the_whole_grid_fills_a_day_observed_in_the_box_only(cube, name):
    """The cut is right (the same pixels' means, cycle and modes): the box's fill is the whole grid's fill
    with the observations outside the box hidden, to float precision; one row off, it is another field."""
    _, new, fits = cube
    box = new.isel(lat=ROWS, lon=COLS)
    got = fits[name].cut(box).transform(box)
    ref = fits[name].transform(_outside_hidden(new))
    gaps = np.isnan(box.values) & np.isfinite(got["sst"].values)
    assert gaps.sum() > 1000
    for v in got.data_vars:
        if v == "sigma" and name == "dineof":
            continue  # its scale is fitted on each field's own held-out observations: the box's are others
        np.testing.assert_allclose(got[v].values, ref[v].values[:, ROWS, COLS], rtol=0, atol=1e-4, err_msg=v)
    shifted = ref["sst"].values[:, 7:19, COLS]
    assert np.nanmax(np.abs(got["sst"].values - shifted)[gaps]) > 0.5
    # the saved fit cut to the box: the same values
    loaded = load_fitted(cube[0] / name).cut(box).transform(box)
    np.testing.assert_allclose(loaded["sst"].values, got["sst"].values, rtol=0, atol=1e-5)
    assert "cut to the 12 x 16 box at rows 6-17, columns 8-23 of its 24 x 32 grid" in loaded["sst"].attrs["fitted_on"]
    if name == "climatology":  # it reads no observation: the whole grid's fill itself, sigma too
        whole = fits[name].transform(new)
        for v in ("sst", "sigma"):
            np.testing.assert_allclose(got[v].values, whole[v].values[:, ROWS, COLS], rtol=0, atol=1e-5)


# eof 1.47 before a pixel seen once took its neighbours' centre in the fit's mean (audit118)
@pytest.mark.parametrize("name, rms", [("eof", 1.38), ("dineof", 0.59)])
def test_how_far_the_box_fill_is_from_the_whole_grids(cube, name, rms):
    """What the observations outside the box add to the whole grid's fill of it, measured at the box's
    gaps: well under the difference to the whole grid's fill one row off (a wrong cut)."""
    _, new, fits = cube
    box = new.isel(lat=ROWS, lon=COLS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 12 x 16 box of a 3-mode fit is no ill-conditioned projection
        cut = fits[name].cut(box)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # observations at a pixel the 45 days fitted never saw
        got = cut.transform(box)["sst"].values
        whole = fits[name].transform(new)["sst"].values
    gaps = np.isnan(box.values) & np.isfinite(got)

    def rms_to(rows):
        return float(np.sqrt(np.nanmean((got - whole[:, rows, COLS])[gaps] ** 2)))  # NaN: land one row off

    assert rms_to(ROWS) == pytest.approx(rms, abs=0.05)
    assert rms_to(slice(7, 19)) > rms_to(ROWS) + 0.5
    assert rms_to(slice(5, 17)) > rms_to(ROWS) + 0.5


@pytest.mark.parametrize("name", sorted(FITS))
def test_cli_fills_the_box_with_the_saved_fit(cube, tmp_path, name):
    root, new, fits = cube
    out = tmp_path / "box.nc"
    res = _run("interpolate", root / "new.nc", "--var", "sst", "--fit-on", root / name, BBOX, "--withhold", "0",
               "--quiet", "-o", out)
    assert res.exit_code == 0, res.output
    box = new.isel(lat=ROWS, lon=COLS)
    ref = fits[name].cut(box).transform(box)
    with xr.open_dataset(out) as ds:
        assert ds["sst"].shape == (15, 12, 16)
        np.testing.assert_allclose(ds["sst"].values, ref["sst"].values, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(ds["missing_flag"].values, ref["missing_flag"].values)
        assert "cut to the 12 x 16 box" in ds["sst"].attrs["fitted_on"]


def test_either_longitude_convention(cube, tmp_path):
    """The new file in 0..360 and the box given in either convention: the box's fill, as on the fit's -180..180."""
    root, new, fits = cube
    with xr.open_dataset(root / "new.nc") as ds:
        ds.assign_coords(lon=np.mod(ds["lon"], 360.0)).to_netcdf(tmp_path / "new360.nc")
    box = new.isel(lat=ROWS, lon=COLS)
    ref = fits["eof"].cut(box).transform(box)["sst"].values
    for bbox in (BBOX, "--bbox=295,30,305,40"):
        out = tmp_path / f"{bbox[-6:]}.nc"
        res = _run("interpolate", tmp_path / "new360.nc", "--var", "sst", "--fit-on", root / "eof", bbox,
                   "--withhold", "0", "--quiet", "-o", out)
        assert res.exit_code == 0, (bbox, res.output)
        with xr.open_dataset(out) as ds:
            assert float(ds["lon"].min()) > 180  # the file's own convention
            np.testing.assert_allclose(ds["sst"].values, ref, rtol=0, atol=1e-5)


def test_other_grids_are_refused_in_one_line(cube, tmp_path):
    """Half a cell shifted, every other point, partly outside the fit's grid, all land: exit 2, nothing written."""
    root, _, _ = cube
    with xr.open_dataset(root / "new.nc") as ds:
        ds.assign_coords(lon=ds["lon"] + 0.5 * float(ds["lon"][1] - ds["lon"][0])).to_netcdf(tmp_path / "shifted.nc")
        ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2)).to_netcdf(tmp_path / "coarse.nc")
    # a fit of the box, asked to fill a larger one
    res = _run("train", "interpolator", root / "past.nc", "--var", "sst", "--method", "eof", "--set", "n_modes=3",
               BBOX, "--quiet", "-o", tmp_path / "fit_box")
    assert res.exit_code == 0, res.output
    never = tmp_path / "never.nc"
    cases = [
        (tmp_path / "shifted.nc", root / "eof", BBOX,
         ["--bbox -65,30,-55,40: the 12 x 17 box of", "its longitudes are not points of the fit's grid",
          "0.312 degrees from the nearest", f"the fit saved in {root / 'eof'} is on a 24 x 32 grid"]),
        (tmp_path / "coarse.nc", root / "dineof", BBOX,
         ["the 6 x 8 box of", "its latitudes are one in 2 of the points of the fit's grid", "another resolution"]),
        (root / "new.nc", tmp_path / "fit_box", "--bbox=-67,30,-55,40",
         ["the 12 x 19 box of", "3 of its 19 longitudes (-66.5625 to -55.3125) lie outside the fit's grid "
          "(-64.6875 to -55.3125)", "is on a 12 x 16 grid"]),
    ]
    for path, fit, bbox, parts in cases:
        res = _run("interpolate", path, "--var", "sst", "--fit-on", fit, bbox, "--quiet", "-o", never)
        assert_cli_error(res, 2, *parts)
        assert not never.exists()


def test_grid_block_across_the_seam_of_a_global_grid():
    """A box across the seam of a fit's longitudes that go round the globe is consecutive columns of it."""
    def grid(lon, lat=(0.0, 10.0)):
        return xr.DataArray(np.zeros((1, len(lat), len(lon))), dims=("time", "lat", "lon"),
                            coords={"lat": list(lat), "lon": list(lon)})

    fit = grid(np.arange(0.0, 360.0, 30.0))
    (iy, ix), problem = grid_block(fit, grid([-30.0, 0.0, 30.0]))
    assert problem is None and ix.tolist() == [11, 0, 1] and iy.tolist() == [0, 1]
    (_, ix), _ = grid_block(fit, grid([330.0, 360.0, 390.0]))
    assert ix.tolist() == [11, 0, 1]
    block, problem = grid_block(fit, grid([0.0, 60.0, 120.0]))
    assert block is None and "one in 2 of the points" in problem
    # a regional fit (not round the globe): its two ends are no neighbours
    block, problem = grid_block(grid(np.arange(0.0, 100.0, 10.0)), grid([90.0, 100.0]))
    assert block is None and "1 of its 2 longitudes (90 to 100) lie outside" in problem


def test_a_box_the_modes_hardly_see_is_warned_of_and_a_cut_fit_only_transforms(cube):
    """A box far smaller than the modes' scale (they look alike over it), or with fewer pixels than
    modes, sees some combination of them hardly at all: eof (its amplitude solved on the box, the
    ridge 1 % of the observed share) warns; DINEOF's amplitudes keep their prior there (no warning).
    A box of land is refused. A cut fit is for transform() only."""
    from fakes import seasonal_anomaly_cube

    _, new, fits = cube
    smooth, _ = seasonal_anomaly_cube(nt=150, ny=24, nx=32, seed=3)  # large-scale modes
    fit = EOFInterpolator(n_modes=5).fit(smooth)
    with pytest.warns(UserWarning, match=r"the 6 x 6 box: the box's 36 ocean pixels see 1 of the 5 combinations of the "
                                         r"eof fit's modes at under 10% of their share of its grid \(the modes' "
                                         r"condition number there 15.2\): their amplitudes are poorly determined"):
        fit.cut(smooth.isel(lat=slice(14, 20), lon=slice(20, 26)), label="the 6 x 6 box")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.cut(smooth.isel(lat=slice(4, 20), lon=slice(10, 30)))  # 16 x 20 of 24 x 32: seen
    tiny = new.isel(lat=slice(14, 15), lon=slice(26, 28))  # 2 pixels, 3 modes
    with pytest.warns(UserWarning, match="see 1 of the 3 combinations .*fewer than the fit's 3 modes"):
        fits["eof"].cut(tiny)
    with pytest.raises(InputError, match="the 2 x 2 box holds no ocean pixel of the fit"):
        fits["climatology"].cut(new.isel(lat=slice(3, 5), lon=slice(0, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cut = fits["dineof"].cut(tiny)
        assert np.isfinite(cut.transform(tiny)["sst"].values).all()
    with pytest.raises(InputError, match="cut to a box of its grid: it fills other fields with transform"):
        cut.reconstruct()
    with pytest.raises(InputError, match="a fit cut to a box of its grid is not saved"):
        cut.save(cube[0] / "never")
    assert fits["eof"].cut(new) is fits["eof"]  # the whole grid: the fit itself


def test_the_saved_mask_is_cut_too(cube, tmp_path):
    """A fit saved with a land-sea mask: the box's land (observations dropped, flag 3) is the mask's there."""
    root, _, _ = cube
    with xr.open_dataset(root / "past.nc") as ds:
        land = ds["land"].values.copy()
    land[9:12, 10:13] = 1  # open ocean of the box called land: its observations are dropped
    for f in ("past", "new"):
        with xr.open_dataset(root / f"{f}.nc") as ds:
            ds.assign(land=(ds["land"].dims, land, ds["land"].attrs)).to_netcdf(tmp_path / f"{f}.nc")
    res = _run("train", "interpolator", tmp_path / "past.nc", "--var", "sst", "--method", "climatology", "--mask",
               "land", "--quiet", "-o", tmp_path / "fit")
    assert res.exit_code == 0, res.output
    for out, extra in (("whole.nc", []), ("box.nc", [BBOX])):
        res = _run("interpolate", tmp_path / "new.nc", "--var", "sst", "--fit-on", tmp_path / "fit", *extra,
                   "--withhold", "0", "--quiet", "-o", tmp_path / out)
        assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "whole.nc") as w, xr.open_dataset(tmp_path / "box.nc") as b:
        flag = b["missing_flag"].values
        assert (flag[:, 3:6, 2:5] == 3).any() and np.isnan(b["sst"].values[:, 3:6, 2:5]).all()
        np.testing.assert_array_equal(flag, w["missing_flag"].values[:, ROWS, COLS])
        np.testing.assert_allclose(b["sst"].values, w["sst"].values[:, ROWS, COLS], rtol=0, atol=1e-5)
        # the box's own count of the mask's pixels
        assert b["sst"].attrs["land_sea_mask"].startswith(f"the mask of the fit saved in {tmp_path / 'fit'}")


def test_fit_on_a_file_with_a_box_still_fits_the_box(cube, tmp_path):
    """--fit-on FILE.nc --bbox: the method fitted on the file's box, filling INPUT's box."""
    root, new, _ = cube
    res = _run("interpolate", root / "new.nc", "--var", "sst", "--method", "eof", "--set", "n_modes=3",
               "--fit-on", root / "past.nc", BBOX, "--withhold", "0", "--quiet", "-o", tmp_path / "out.nc")
    assert res.exit_code == 0, res.output
    ref = EOFInterpolator(n_modes=3).fit(open_field(root / "past.nc", "sst", bbox=BOX)).transform(
        new.isel(lat=ROWS, lon=COLS))
    with xr.open_dataset(tmp_path / "out.nc") as ds:
        np.testing.assert_allclose(ds["sst"].values, ref["sst"].values, rtol=0, atol=1e-5)
