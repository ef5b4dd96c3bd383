"""--bbox / --dates (open_field's bbox= and dates=): only a region and period of a file (or of a
folder of daily files) is read, and every command fills, trains on or analyses it as it would the
same region cut out beforehand."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, write_l3_days

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.io import Subset, open_field, parse_bbox, parse_dates

BOX = (-66.0, 30.0, -56.0, 40.0)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """A 40-day synthetic cube with a microwave covariate, in one file, and the same box cut by xarray."""
    root = tmp_path_factory.mktemp("subset")
    ds = synthetic_sst(seed=0, n_time=40, ny=24, nx=32, microwave=True)
    ds.to_netcdf(root / "whole.nc")
    w, s, e, n = BOX
    cut = ds.sel(lat=slice(s, n), lon=slice(w, e), time=slice("2020-01-05", "2020-01-31"))
    cut.to_netcdf(root / "cut.nc")
    return root, ds, cut


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


def test_region_and_period_read_are_the_cut_ones(cube):
    root, ds, cut = cube
    da = open_field(root / "whole.nc", "sst", bbox=BOX, dates=("2020-01-05", "2020-01"))
    assert da.shape == (27, cut.sizes["lat"], cut.sizes["lon"]) and 0 < da.size < ds["sst"].size / 3
    np.testing.assert_array_equal(da["lat"].values, cut["lat"].values)
    np.testing.assert_array_equal(da["lon"].values, cut["lon"].values)
    np.testing.assert_array_equal(da["time"].values, cut["time"].values)
    np.testing.assert_array_equal(da.values, cut["sst"].values)
    # the box in 0..360 is the same box; open ends; a lazy (dask) Dataset is cut the same way
    east = open_field(root / "whole.nc", "sst", bbox=(294.0, 30.0, 304.0, 40.0), dates=("2020-01-05", None))
    np.testing.assert_array_equal(east.values[:27], da.values)
    assert str(east["time"].values[-1])[:10] == "2020-02-09"
    lazy = open_field(xr.open_dataset(root / "whole.nc", chunks={}), "sst", bbox=BOX, dates=(None, "2020-01-31"))
    np.testing.assert_array_equal(lazy.values[4:], da.values)
    # the source grid written back is the region's
    assert da.encoding["source_grid"].coords["lat"].shape == (cut.sizes["lat"],)


def test_a_folder_of_daily_files_is_cut_file_by_file(tmp_path):
    truth = write_l3_days(tmp_path / "days", nt=12, ny=16, nx=20)
    da = open_field(tmp_path / "days", "sea_surface_temperature", bbox=(-8, 41, -3, 45), dates=("2020-01-03", "2020-01-07"))
    full = open_field(tmp_path / "days", "sea_surface_temperature")
    assert da.shape[0] == 5 and 0 < da.shape[1] < 16 and 0 < da.shape[2] < 20
    np.testing.assert_array_equal(da.values, full.sel(time=da.time, lat=da.lat, lon=da.lon).values)
    assert np.isfinite(truth).any()


@pytest.mark.parametrize("convention", ["0..360", "-180..180"])
def test_a_box_across_the_dateline(tmp_path, convention):
    lon = np.arange(0, 360, 10.0) if convention == "0..360" else np.arange(-180, 180, 10.0)
    lat = np.arange(-30, 31, 10.0)
    t = np.arange("2020-01-01", "2020-01-04", dtype="datetime64[D]").astype("datetime64[ns]")
    vals = np.cos(np.deg2rad(lon))[None, None, :] + lat[None, :, None] / 100 + np.arange(3)[:, None, None]
    xr.Dataset({"sst": (("time", "lat", "lon"), vals)}, coords={"time": t, "lat": lat, "lon": lon}).to_netcdf(
        tmp_path / "g.nc")
    da = open_field(tmp_path / "g.nc", "sst", bbox=(160, -10, -170, 10))
    # 160, 170, 180, 190 (= -170) in the 0..360 convention a grid across the dateline is given in
    np.testing.assert_array_equal(da["lon"].values, [160, 170, 180, 190])
    np.testing.assert_array_equal(da["lat"].values, [-10, 0, 10])
    np.testing.assert_allclose(da.values[1, 1], np.cos(np.deg2rad([160, 170, 180, 190])) + 1)


def test_other_calendars_and_undated_times(tmp_path):
    import cftime

    t = [cftime.DatetimeNoLeap(2001, 2, d) for d in range(20, 29)] + [cftime.DatetimeNoLeap(2001, 3, 1)]
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), np.random.default_rng(0).random((10, 3, 4)))},
                    coords={"time": t, "lat": [0.0, 1, 2], "lon": [0.0, 1, 2, 3]})
    ds.to_netcdf(tmp_path / "noleap.nc")
    da = open_field(tmp_path / "noleap.nc", "sst", dates=("2001-02-25", "2001-02"))
    assert da.sizes["time"] == 4  # 25..28 February: no 29th in that calendar
    xr.Dataset({"sst": (("time", "lat", "lon"), ds["sst"].values)}, coords={"time": np.arange(10.0), "lat": ds.lat,
               "lon": ds.lon}).to_netcdf(tmp_path / "numbers.nc")
    with pytest.raises(InputError, match="holds no dates"):
        open_field(tmp_path / "numbers.nc", "sst", dates=("2001", None))


def test_parsing_and_refusals(cube):
    root, _, _ = cube
    assert parse_bbox("-10,40,0,48") == (-10.0, 40.0, 0.0, 48.0)
    assert parse_dates("2020-01-01:2020-03-31") == ("2020-01-01", "2020-03-31")
    assert parse_dates("2020-06:") == ("2020-06", None) and parse_dates(":2021") == (None, "2021")
    assert parse_dates("2020-02") == ("2020-02", "2020-02")
    assert parse_dates("2020-01-01T06:00:2020-01-02T18:30") == ("2020-01-01T06:00", "2020-01-02T18:30")
    for bad in ("1,2,3", "a,b,c,d", "0,50,10,40", "0,-95,10,0"):
        with pytest.raises(InputError):
            parse_bbox(bad)
    for bad in ("soon", "2021:2020", ":"):
        with pytest.raises(InputError):
            parse_dates(bad)
    with pytest.raises(InputError, match=r"holds no grid lat \(the file's lat spans 25.4167 to 44.5833\)"):
        open_field(root / "whole.nc", "sst", bbox=(10, 10, 20, 20))
    with pytest.raises(InputError, match="hold no time step .*2020-01-01 to 2020-02-09"):
        open_field(root / "whole.nc", "sst", dates=("2021", None))
    projected = xr.Dataset({"sst": (("time", "y", "x"), np.ones((2, 3, 4)))},
                           coords={"time": np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"),
                                   "y": ("y", [0.0, 1, 2], {"units": "km", "standard_name": "projection_y_coordinate"}),
                                   "x": ("x", [0.0, 1, 2, 3], {"units": "km", "standard_name": "projection_x_coordinate"})})
    with pytest.raises(InputError, match="not in degrees"):
        open_field(projected, "sst", bbox=(0, 0, 1, 1), lat="y", lon="x")
    with pytest.raises(InputError, match="south <= north"):
        Subset(bbox=(0, 10, 1, 5))
    out = root / "never.nc"
    for args, parts in ((["--bbox", "1,2,3"], ["--bbox", "W,S,E,N"]), (["--dates", "2019"], ["hold no time step"]),
                        (["--bbox=10,10,20,20"], ["holds no grid lat"])):
        res = _run("interpolate", root / "whole.nc", "--var", "sst", *args, "-o", out)
        assert_cli_error(res, 2, *parts)
        assert not out.exists()


def test_cli_fills_the_box_as_it_fills_the_box_cut_beforehand(cube, tmp_path):
    root, _, _ = cube
    cut_args = ["--bbox=%g,%g,%g,%g" % BOX, "--dates", "2020-01-05:2020-01"]
    runs = {
        "dineof": (["--method", "dineof"], []),
        "aux_other_file": (["--method", "unet", "--aux", f"{root / 'whole.nc'}:sst_mw", "--set", "steps=3"],
                           ["--method", "unet", "--aux", "sst_mw", "--set", "steps=3"]),
        "chunks": (["--method", "dineof", "--chunks", "time=-1,lat=8,lon=8"],
                   ["--method", "dineof", "--chunks", "time=-1,lat=8,lon=8"]),
    }
    for name, (args, ref_args) in runs.items():
        a, b = tmp_path / f"{name}_box.nc", tmp_path / f"{name}_cut.nc"
        res = _run("interpolate", root / "whole.nc", "--var", "sst", *args, *cut_args, "--quiet", "-o", a)
        assert res.exit_code == 0, (name, res.output)
        res = _run("interpolate", root / "cut.nc", "--var", "sst", *(ref_args or args), "--quiet", "-o", b)
        assert res.exit_code == 0, (name, res.output)
        fa, fb = xr.open_dataset(a), xr.open_dataset(b)
        assert dict(fa.sizes) == dict(fb.sizes), name
        # a covariate of another file, read with two points to spare and interpolated back onto the
        # field's grid, is the same covariate: the same fill
        np.testing.assert_array_equal(fa["sst"].values, fb["sst"].values, err_msg=name)
        np.testing.assert_array_equal(fa["lon"].values, fb["lon"].values)
    # train interpolator and eof take the box too
    res = _run("train", "interpolator", root / "whole.nc", "--var", "sst", "--method", "climatology", *cut_args,
               "--quiet", "-o", tmp_path / "clim")
    assert res.exit_code == 0, res.output
    from oceandl.describe import describe

    assert describe(tmp_path / "clim")["fitted on"].endswith("whole.nc --bbox=-66,30,-56,40 --dates 2020-01-05:2020-01")
    res = _run("eof", root / "whole.nc", "--var", "sst_true", "-n", "2", *cut_args, "-o", tmp_path / "e.nc")
    assert res.exit_code == 0, res.output
    assert xr.open_dataset(tmp_path / "e.nc").sizes["lat"] == xr.open_dataset(root / "cut.nc").sizes["lat"]


def test_min_quality_with_a_box_reads_the_box_only(tmp_path, monkeypatch):
    """--min-quality masked the field before the cut: xarray's where read the whole (lazily indexed)
    variable and its quality_level, so a region of a global L3 file loaded the file."""
    from xarray.backends.netCDF4_ import NetCDF4ArrayWrapper

    truth = write_l3_days(tmp_path / "days", nt=3, ny=16, nx=20, whole=tmp_path / "whole.nc")
    read = []
    original = NetCDF4ArrayWrapper._getitem

    def counting(self, key):
        out = original(self, key)
        read.append((self.variable_name, np.size(out)))
        return out

    monkeypatch.setattr(NetCDF4ArrayWrapper, "_getitem", counting)
    box = (-8, 41, -3, 45)
    da = open_field(tmp_path / "whole.nc", "sea_surface_temperature", bbox=box, min_quality=4)
    for name in ("sea_surface_temperature", "quality_level"):
        sizes = [n for v, n in read if v == name]
        assert sizes and max(sizes) == da.size < 3 * 16 * 20, (name, sizes)
    monkeypatch.undo()
    full = open_field(tmp_path / "whole.nc", "sea_surface_temperature", min_quality=4)
    np.testing.assert_array_equal(da.values, full.sel(lat=da.lat, lon=da.lon).values)
    assert np.isfinite(da.values).sum() < np.isfinite(truth).sum()


def test_bbox_with_a_saved_fit(cube, tmp_path):
    """--fit-on a saved fit's folder failed on every fill ('is a folder with no netCDF files', the
    many-file reader taking it for data); with --bbox, the full-grid fit fills the box (its state cut
    to it: tests/test_fit_box.py), a grid not part of it is refused naming --bbox, and a fit saved of
    the box fills the box."""
    root, _, _ = cube
    full, boxed = tmp_path / "fit_full", tmp_path / "fit_box"
    box = ",".join(f"{b:g}" for b in BOX)
    assert _run("train", "interpolator", root / "whole.nc", "--var", "sst", "--method", "eof", "--set", "n_modes=3",
                "--dates", ":2020-01-20", "-o", full, "--quiet").exit_code == 0
    assert _run("train", "interpolator", root / "whole.nc", "--var", "sst", "--method", "eof", "--set", "n_modes=3",
                "--dates", ":2020-01-20", f"--bbox={box}", "-o", boxed, "--quiet").exit_code == 0
    out = tmp_path / "out.nc"
    res = _run("interpolate", root / "whole.nc", "--var", "sst", "--fit-on", full, "--dates", "2020-01-21:",
               "--withhold", "0", "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    whole = xr.open_dataset(out)
    res = _run("interpolate", root / "whole.nc", "--var", "sst", "--fit-on", full, f"--bbox={box}",
               "--dates", "2020-01-21:", "--withhold", "0", "-o", tmp_path / "cut.nc", "--quiet")
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "cut.nc") as ds:
        assert ds["sst"].shape == (20, 12, 16) and "cut to the 12 x 16 box" in ds["sst"].attrs["fitted_on"]
    with xr.open_dataset(root / "whole.nc") as ds:
        ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2)).to_netcdf(tmp_path / "coarse.nc")
    res = _run("interpolate", tmp_path / "coarse.nc", "--var", "sst", "--fit-on", full, f"--bbox={box}", "-o",
               tmp_path / "never.nc", "--quiet")
    assert_cli_error(res, 2, f"--bbox {box}: the 6 x 8 box of", f"the fit saved in {full} is on a 24 x 32 grid")
    assert not (tmp_path / "never.nc").exists()
    res = _run("interpolate", root / "whole.nc", "--var", "sst", "--fit-on", boxed, f"--bbox={box}",
               "--dates", "2020-01-21:", "--withhold", "0", "-o", tmp_path / "box.nc", "--quiet")
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "box.nc") as ds:
        assert ds["sst"].shape == (20, 12, 16) and (ds["missing_flag"].values == 1).any()
        assert ds["sst"].shape[1:] != whole["sst"].shape[1:]
    whole.close()


@pytest.mark.usefixtures("one_torch_thread")
def test_bbox_with_a_model_trained_on_the_whole_grid(cube, tmp_path):
    """A checkpoint's training statistics are per pixel and its position channels span its grid: a
    box of that grid was normalised by its own statistics and filled otherwise than the whole grid
    is there (refused, before). A box whose grid is part of the training grid is filled with the
    statistics cut to its pixels and the training grid's positions there: as the whole grid's fill
    cut to the box, but for the network's receptive field at the box's edges (the box's fill cannot
    see outside it), in memory, under --chunks and in Python. A grid not part of it is refused."""
    from test_neural_interp import TINY

    import oceandl
    from oceandl.interp import get_method

    root, _, _ = cube
    ck = tmp_path / "ck"
    get_method("unet")(steps=2, patch=16, batch_size=2, model_options=TINY["unet"], seasonal=False,
                       device="cpu").fit(open_field(root / "whole.nc", "sst")).save(ck)
    box = ",".join(f"{b:g}" for b in BOX)
    net = ["--method", "unet", "--model", ck, "--device", "cpu", "--withhold", "0", "--quiet", "--set", "precision=fp32"]
    res = _run("interpolate", root / "whole.nc", "--var", "sst", *net, "-o", tmp_path / "all.nc")
    assert res.exit_code == 0, res.output
    whole = xr.open_dataset(tmp_path / "all.nc")["sst"]

    def gap(path, margin=0):
        with xr.open_dataset(path) as ds:
            d = np.abs(ds["sst"].values - whole.sel(lat=ds["lat"], lon=ds["lon"]).values)
            assert ds["sst"].shape == (40, 12, 16) and np.isfinite(d).sum() > 3000
            return float(np.nanmax(d[:, margin:d.shape[1] - margin, margin:d.shape[2] - margin]))

    runs = {"memory": [], "chunks": ["--chunks", "time=20,lat=6,lon=8"]}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.nc"
        res = _run("interpolate", root / "whole.nc", "--var", "sst", *net, f"--bbox={box}", *extra, "-o", out)
        assert res.exit_code == 0, (name, res.output)
        with xr.open_dataset(out) as ds:
            assert ds.attrs["normalisation"] == "training", name
        # measured (fp32, 1 thread): 0.012 degC at the box's edge, 0.0020 three pixels in, 0.0002 four in; the
        # U-Net's receptive field is wider than the 12 x 16 box, so the interior differs a little still
        assert gap(out) < 0.05 and gap(out, 3) < 0.01 and gap(out, 4) < 2e-3, (name, gap(out), gap(out, 4))
    # the box normalised by its own statistics (positions rescaled to it) is another fill: 0.097 degC apart
    # four pixels in (0.88 before its pixels seen once took their neighbours' centre, audit123), against
    # 2e-3 for the box normalised by the training statistics above
    res = _run("interpolate", root / "whole.nc", "--var", "sst", *net, f"--bbox={box}", "--set",
               "normalisation=input", "-o", tmp_path / "own.nc")
    assert res.exit_code == 0, res.output
    assert gap(tmp_path / "own.nc", 4) > 0.05
    # Python: a DataArray on a sub-grid of the training grid is that box (no bbox), as the CLI fills it
    da = open_field(root / "whole.nc", "sst", bbox=BOX)
    py = oceandl.interpolate(da, "unet", checkpoint=ck, device="cpu", precision="fp32")
    assert py.attrs["normalisation"] == "training"
    with xr.open_dataset(tmp_path / "memory.nc") as ds:
        np.testing.assert_allclose(py.values, ds["sst"].values, rtol=0, atol=1e-5)
    # a grid not part of the training grid (shifted by half a cell: another grid; every other point: another
    # resolution) is refused, in one line, in memory and under --chunks
    with xr.open_dataset(root / "whole.nc") as ds:
        ds.assign_coords(lon=ds["lon"] + 0.5 * float(ds["lon"][1] - ds["lon"][0])).to_netcdf(tmp_path / "shifted.nc")
        ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2)).to_netcdf(tmp_path / "coarse.nc")
    for other, size in (("shifted", "12 x 16"), ("coarse", "6 x 8")):
        for extra in ([], ["--chunks", "time=20"]):
            res = _run("interpolate", tmp_path / f"{other}.nc", "--var", "sst", *net, f"--bbox={box}", *extra,
                       "-o", tmp_path / "never.nc")
            assert_cli_error(res, 2, f"--bbox {box}: checkpoint {ck} was trained on a 24 x 32 grid, the box is "
                             f"{size} and not part of it", "normalisation=input")
            assert not (tmp_path / "never.nc").exists()
    res = _run("interpolate", root / "whole.nc", "--var", "sst", *net, "--bbox=-180,-90,180,90",
               "-o", tmp_path / "all2.nc")
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "all2.nc") as ds:
        assert ds["sst"].shape == (40, 24, 32) and ds.attrs["normalisation"] == "training"
        np.testing.assert_array_equal(ds["sst"].values, whole.values)
    whole.close()


def test_pad_holds_on_both_pieces_of_a_box_across_the_dateline(tmp_path):
    """pad (a covariate of another product, to be interpolated onto the field's grid) was ignored for a
    box across the dateline on a -180..180 grid (two pieces, an index array): no neighbour outside the box."""
    lon = np.arange(-180, 180, 10.0)
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), np.random.default_rng(0).random((2, 3, lon.size)))},
                    coords={"time": np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"),
                            "lat": [-10.0, 0, 10], "lon": lon})
    ds.to_netcdf(tmp_path / "g.nc")
    np.testing.assert_array_equal(open_field(tmp_path / "g.nc", "sst", bbox=(160, -10, -170, 10))["lon"].values,
                                  [160, 170, 180, 190])
    padded = open_field(tmp_path / "g.nc", "sst", bbox=(160, -10, -170, 10), pad=1)
    np.testing.assert_array_equal(padded["lon"].values, [150, 160, 170, 180, 190, 200])
    # a contiguous box is padded as before
    np.testing.assert_array_equal(open_field(tmp_path / "g.nc", "sst", bbox=(0, 0, 20, 0), pad=1)["lon"].values,
                                  [-10, 0, 10, 20, 30])
