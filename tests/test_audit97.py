"""Audit 97: a file per input file, static covariates and a saved fit's box, broken as an ocean
scientist would (each test failed before its fix)."""
from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import write_l3_days

from oceandl.cli.main import cli

VAR = "sea_surface_temperature"


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit97")
    write_l3_days(root / "days", nt=6, ny=10, nx=12)
    return root / "days"


def test_each_output_file_has_its_own_inputs_attributes(days, tmp_path):
    """A series of L3 files from two satellites: each filled file says its own input's platform (and
    carries a comment only its input has); it said the first file's platform on every day."""
    names = sorted(p.name for p in days.iterdir())
    src = tmp_path / "days"
    src.mkdir()
    for k, name in enumerate(names):
        with xr.open_dataset(days / name, mask_and_scale=False) as ds:
            ds = ds.load()
        ds.attrs["platform"] = ["NOAA-20", "S-NPP"][k % 2]
        if k == 1:
            ds.attrs["comment"] = "sensor anomaly"
        ds.to_netcdf(src / name)
    out = tmp_path / "out"
    res = _run("interpolate", src, "--var", VAR, "--method", "climatology", "--quiet", "-o", f"{out}/")
    assert res.exit_code == 0, res.output
    for k, name in enumerate(names):
        with netCDF4.Dataset(out / name) as nc:
            attrs = {a: nc.getncattr(a) for a in nc.ncattrs()}
        assert attrs["platform"] == ["NOAA-20", "S-NPP"][k % 2], (name, attrs["platform"])
        assert ("comment" in attrs) == (k == 1)
        assert attrs["title"] == "Test L3 SST" and attrs["method"] == "climatology"


def _global_cube(path, nt=30):
    """A global 7.5-degree SST cube on 0..360 longitudes (48 columns), 40 % cloud."""
    rng = np.random.default_rng(0)
    lon = np.arange(0, 360, 7.5) + 3.75
    lat = np.arange(-30, 31, 7.5)
    t = np.arange(nt)[:, None, None]
    f = (15 + 10 * np.cos(np.deg2rad(lat))[None, :, None] + 2 * np.sin(np.deg2rad(lon)[None, None, :] + 0.1 * t)
         + 0.3 * rng.standard_normal((nt, lat.size, lon.size)))
    f = np.where(rng.random(f.shape) < 0.4, np.nan, f).astype("f4")
    xr.Dataset({"sst": (("time", "lat", "lon"), f, {"units": "degC", "standard_name": "sea_surface_temperature"})},
               coords={"time": np.datetime64("2020-01-01") + np.arange(nt).astype("timedelta64[D]"),
                       "lat": ("lat", lat, {"units": "degrees_north"}),
                       "lon": ("lon", lon, {"units": "degrees_east"})}).to_netcdf(path)
    return path


def test_a_two_column_box_across_the_dateline_is_filled_by_a_saved_fit(tmp_path):
    """--bbox 175,-20,185,20 on a 0..360 grid holds the columns 176.25 and 183.75: they were read as
    -176.25, 176.25 (swapped) and the saved global fit refused them as 'one in 47 of the points of
    the fit's grid ... another resolution'. The climatology's box fill is the whole grid's there."""
    cube = _global_cube(tmp_path / "glob.nc")
    res = _run("train", "interpolator", cube, "--method", "climatology", "--quiet", "-o", tmp_path / "fit")
    assert res.exit_code == 0, res.output
    fill = ["interpolate", cube, "--method", "climatology", "--fit-on", tmp_path / "fit", "--withhold", "0", "--quiet"]
    res = _run(*fill, "-o", tmp_path / "whole.nc")
    assert res.exit_code == 0, res.output
    for box in ("175,-20,185,20", "170,-20,-170,20"):
        out = tmp_path / f"box{box}.nc"
        res = _run(*fill, f"--bbox={box}", "-o", out)
        assert res.exit_code == 0, res.output
        with xr.open_dataset(out) as b, xr.open_dataset(tmp_path / "whole.nc") as w:
            np.testing.assert_array_equal(b["lon"].values, [176.25, 183.75])
            want = w["sst"].sel(lon=[176.25, 183.75], lat=b["lat"].values)
            np.testing.assert_allclose(b["sst"].values, want.values, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def depth_files(tmp_path_factory):
    """f.nc: sst (20 days) and depth (lat, lon); map.nc: that depth; dated.nc: it with a time dim
    of length 1 dated 1990-01-01 (as bathymetry products stamp it)."""
    from test_static_aux import _scene

    da, dep = _scene()
    root = tmp_path_factory.mktemp("depth")
    xr.Dataset({"sst": da, "depth": dep}).to_netcdf(root / "f.nc")
    dep.to_dataset().to_netcdf(root / "map.nc")
    dep.expand_dims(time=[np.datetime64("1990-01-01")]).to_dataset().to_netcdf(root / "dated.nc")
    return root


UNET = ["--var", "sst", "--method", "unet", "--set", "steps=2", "--set", "patch=16", "--device", "cpu",
        "--withhold", "0", "--quiet"]


def test_a_dated_static_map_is_taken_with_dates(depth_files, tmp_path):
    """--aux dated.nc:depth (one time step, 1990) is a static map: taken without --dates, it was refused
    with them ('dates 2020-01-03:2020-01-10 hold no time step'). The fill is the undated map's."""
    f = depth_files / "f.nc"
    for name in ("map", "dated"):
        for chunks in ((), ("--chunks", "time=4,lat=32,lon=32")):
            out = tmp_path / f"{name}{len(chunks)}.nc"
            res = _run("interpolate", f, *UNET, "--aux", f"{depth_files / name}.nc:depth", "--dates",
                       "2020-01-03:2020-01-10", *chunks, "-o", out)
            assert res.exit_code == 0, res.output
    for k in (0, 2):
        with xr.open_dataset(tmp_path / f"map{k}.nc") as a, xr.open_dataset(tmp_path / f"dated{k}.nc") as b:
            assert a.sizes["time"] == 8
            np.testing.assert_array_equal(a["sst"].values, b["sst"].values)


def test_one_day_filled_with_a_dated_static_map(depth_files, tmp_path):
    """A network trained with a static depth fills one day (--dates) with the map dated 1990 (time
    length 1): it was refused as 'none of its time steps is within half a step of the field's', and
    under --chunks as 'not on the field's days and grid ({'time': 1, ...} against {'time': 1, ...})'."""
    f, ck = depth_files / "f.nc", tmp_path / "ck"
    res = _run("train", "interpolator", f, "--var", "sst", "--aux", "depth", "--set", "steps=2", "--set", "patch=16",
               "--device", "cpu", "--quiet", "-o", ck)
    assert res.exit_code == 0, res.output
    fill = ["interpolate", f, "--var", "sst", "--method", "unet", "--model", ck, "--device", "cpu", "--quiet",
            "--dates", "2020-01-05:2020-01-05"]
    outs = []
    for name in ("map", "dated"):
        for chunks in ((), ("--chunks", "time=1,lat=32,lon=32")):
            outs.append(tmp_path / f"{name}{len(chunks)}.nc")
            res = _run(*fill, "--aux", f"{depth_files / name}.nc:depth", *chunks, "-o", outs[-1])
            assert res.exit_code == 0, res.output
    with xr.open_dataset(outs[0]) as ref:
        assert ref.sizes["time"] == 1
        for out in outs[1:]:
            with xr.open_dataset(out) as o:
                np.testing.assert_allclose(o["sst"].values, ref["sst"].values, rtol=0, atol=1e-4)


def test_a_static_map_in_each_daily_file_is_a_covariate(depth_files, tmp_path):
    """A file per day, each with sst (time=1) and the same depth (lat, lon): --aux depth was refused,
    exit 2, 'variable 'depth': has no time axis ... each file of a many-file input holds one or more
    time steps'. It is the first file's map: the fill is the one-file input's, in memory and under
    --chunks, into one file or a folder."""
    with xr.open_dataset(depth_files / "f.nc") as ds:
        ds = ds.load()
    days = tmp_path / "days"
    days.mkdir()
    for k in range(6):
        ds.isel(time=[k]).to_netcdf(days / f"d{k:02d}.nc")
    ds.isel(time=slice(0, 6)).to_netcdf(tmp_path / "one.nc")
    for chunks in ((), ("--chunks", "time=3,lat=32,lon=32")):
        tag = len(chunks)
        for src, out in ((tmp_path / "one.nc", tmp_path / f"one{tag}.nc"), (days, tmp_path / f"days{tag}.nc"),
                         (days, f"{tmp_path / f'folder{tag}'}/")):
            res = _run("interpolate", src, *UNET, "--aux", "depth", *chunks, "-o", out)
            assert res.exit_code == 0, res.output
        with xr.open_dataset(tmp_path / f"one{tag}.nc") as a, xr.open_dataset(tmp_path / f"days{tag}.nc") as b, \
                xr.open_mfdataset(sorted((tmp_path / f"folder{tag}").iterdir())) as c:
            assert b["sst"].attrs["aux_variables"] == "depth"
            np.testing.assert_array_equal(a["sst"].values, b["sst"].values)
            np.testing.assert_array_equal(a["sst"].values, c["sst"].values)


def test_info_says_a_folder_holds_files_of_two_runs(days, tmp_path):
    """A climatology fill of every day, then a DINEOF fill of the last four --overwrite into the same
    folder: `oceandl info out/` said 'method: climatology' and the climatology's scores for the whole
    folder. It now says the files come from two runs, which files and what each was."""
    out = tmp_path / "out"
    fill = ["interpolate", days, "--var", VAR, "--quiet", "-o", f"{out}/"]
    assert _run(*fill, "--method", "climatology").exit_code == 0
    res = _run(*fill, "--method", "dineof", "--dates", "2020-01-03:2020-01-06", "--overwrite")
    assert res.exit_code == 0, res.output
    res = _run("info", out)
    assert res.exit_code == 0, res.output
    assert "from 2 different runs (method climatology, dineof)" in res.output
    runs = next(line for line in res.output.splitlines() if line.startswith("runs:"))
    assert "2 files" in runs and "climatology" in runs and "4 files" in runs and "dineof" in runs
    assert "of the first file's run" in res.output
    res = _run("info", days)  # the input folder: no run said
    assert res.exit_code == 0 and "different runs" not in res.output and "runs:" not in res.output


def test_chunked_folder_output_says_each_warning_once(days, tmp_path):
    """--chunks with -o FOLDER/ opened the input twice and said its warnings twice ('using variable
    ...' on two lines); -o FILE.nc says them once."""
    lines = {}
    for out in (tmp_path / "one.nc", f"{tmp_path / 'folder'}/"):
        res = _run("interpolate", days, "--method", "climatology", "--chunks", "time=-1,lat=8,lon=8", "--quiet",
                   "-o", out)
        assert res.exit_code == 0, res.output
        lines[str(out)] = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    one, folder = lines.values()
    assert one and folder == one


def test_a_killed_chunked_folder_run_leaves_no_series_for_good(days, tmp_path):
    """A --chunks -o FOLDER/ run killed (SIGKILL, out of memory) left its hidden series file (its
    temporary '..oceandl-series.<host>-<pid>-*.nc.<host>-<pid>-*.part', as large as the output) in
    the folder: no later run removed it. The next run into the folder removes a dead writer's, and
    keeps a running one's."""
    import subprocess
    import sys

    from oceandl.utils import _tmp_tag

    host = _tmp_tag().rsplit("-", 1)[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    out = tmp_path / "out"
    out.mkdir()
    stale = [f"..oceandl-series.{host}-{dead}-abc.nc.{host}-{dead}-def.part", f".oceandl-series.{host}-{dead}-abc.nc"]
    running = f"..oceandl-series.{host}-{live.pid}-abc.nc.{host}-{live.pid}-def.part"
    try:
        for name in (*stale, running):
            (out / name).write_bytes(b"x" * 100)
        res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--chunks", "time=-1,lat=8,lon=8",
                   "--quiet", "-o", out)
        assert res.exit_code == 0, res.output
        hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
        assert hidden == [running]
    finally:
        live.kill()
        live.wait()
