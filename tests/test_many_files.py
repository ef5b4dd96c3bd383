"""A time series kept as a file per day (GHRSST L3, CMEMS daily products): a folder, a glob pattern
or a list of files is read as one field, in time order, by the library and by every command that
reads a field; files that do not belong together are refused naming the file."""
from __future__ import annotations

import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, write_l3_days

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.io import input_files, open_field, open_files

VAR = "sea_surface_temperature"
NT = 20


@pytest.fixture(scope="module")
def l3(tmp_path_factory):
    """20 daily files (names not in time order: a date-first and a reversed scheme), the same days in
    one file, and the stored values in kelvin."""
    root = tmp_path_factory.mktemp("l3")
    names = [f"L3_{NT - i:03d}.nc" for i in range(NT)]  # sorted by name: last day first
    truth = write_l3_days(root / "days", nt=NT, whole=root / "whole.nc", names=names)
    return root, truth


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


def test_folder_pattern_and_list_read_as_one_series_in_time_order(l3):
    root, truth = l3
    whole = open_field(root / "whole.nc", VAR)
    days = sorted((root / "days").iterdir())
    for source in (root / "days", str(root / "days" / "L3_0*.nc"), days[::-1], [str(p) for p in days]):
        da = open_field(source, VAR)
        assert da.dims == ("time", "lat", "lon") and da.shape == (NT, 16, 20)
        np.testing.assert_array_equal(da["time"].values, whole["time"].values)
        assert np.all(np.diff(da["time"].values) == np.timedelta64(1, "D"))
        np.testing.assert_array_equal(da.values, whole.values)  # the same decoding, value for value
        np.testing.assert_allclose(da.values, truth, atol=0.011, equal_nan=True)  # one packing step
        assert da.attrs["units"] == "kelvin"
        assert da.encoding["source_attrs"]["title"] == "Test L3 SST"


def test_global_attributes_cover_the_whole_series(l3):
    root, _ = l3
    with open_files(root / "days", VAR) as ds:
        assert ds.attrs["time_coverage_start"] == "2020-01-01T00:00:00Z"
        assert ds.attrs["time_coverage_end"] == f"2020-01-{NT:02d}T23:59:59Z"
        assert "time_coverage_duration" not in ds.attrs  # a day's 'P1D' is not the series'
        assert ds[VAR].chunks[0] == (1,) * NT  # lazy, a chunk per file: nothing read yet
        assert set(ds.data_vars) == {VAR, "quality_level", "microwave"}


def test_min_quality_masks_each_day(l3):
    root, _ = l3
    all_obs = np.isfinite(open_field(root / "days", VAR).values).sum()
    good = open_field(root / "days", VAR, min_quality=4)
    with netCDF4.Dataset(root / "whole.nc") as nc:
        q = np.asarray(nc["quality_level"][:])
    assert 0.7 * all_obs < np.isfinite(good.values).sum() < 0.9 * all_obs
    assert not np.isfinite(good.values[q < 4]).any()


def test_two_dimensional_files_dated_by_a_scalar_time(tmp_path):
    lat, lon = np.linspace(0, 5, 6), np.linspace(10, 16, 7)
    rng = np.random.default_rng(0)
    for k, day in enumerate(["2021-03-02", "2021-03-01", "2021-03-03"]):
        xr.Dataset({"sst": (("lat", "lon"), 15 + rng.standard_normal((6, 7)), {"units": "degC"})},
                   coords={"lat": lat, "lon": lon, "time": np.datetime64(day)}).to_netcdf(tmp_path / f"f{k}.nc")
    da = open_field(tmp_path, "sst")
    assert da.shape == (3, 6, 7)
    assert [str(t)[:10] for t in da["time"].values] == ["2021-03-01", "2021-03-02", "2021-03-03"]
    np.testing.assert_array_equal(da.values[0], xr.open_dataset(tmp_path / "f1.nc")["sst"].values)


def _other_grid(d):
    write_l3_days(d / "x", nt=1, ny=15)
    shutil.move(next((d / "x").iterdir()), d / "days" / "L3_999.nc")


def _overlap(d):
    shutil.copy(d / "days" / "L3_005.nc", d / "days" / "L3_005_v2.nc")


def _corrupt(d):
    (d / "days" / "L3_999.nc").write_bytes(b"garbage, not netCDF")


def _no_variable(d):
    xr.open_dataset(d / "days" / "L3_005.nc").drop_vars(VAR).to_netcdf(d / "days" / "L3_999.nc")
    (d / "days" / "L3_005.nc").unlink()


def _no_time(d):
    ds = xr.open_dataset(d / "days" / "L3_005.nc").isel(time=0).drop_vars("time")
    ds.encoding = {}
    ds.to_netcdf(d / "days" / "L3_999.nc")
    (d / "days" / "L3_005.nc").unlink()


@pytest.mark.parametrize("spoil, parts", [
    (_other_grid, ["L3_999.nc", "coordinate 'lat' has 15 values against 16", "share one grid"]),
    (_overlap, ["L3_005", "overlap in time", "2020-01-16", "give each once"]),
    (_corrupt, ["L3_999.nc", "not a readable netCDF file"]),
    (_no_variable, ["L3_999.nc", f"variable '{VAR}' not found"]),
    (_no_time, ["L3_999.nc", "no time axis"]),
], ids=["other-grid", "overlap", "corrupt", "no-variable", "no-time"])
def test_files_that_do_not_belong_together_are_refused_naming_the_file(l3, tmp_path, spoil, parts):
    root, _ = l3
    shutil.copytree(root / "days", tmp_path / "days")
    spoil(tmp_path)
    with pytest.raises(InputError) as err:
        open_field(tmp_path / "days", VAR)
    for p in parts:
        assert p in str(err.value), str(err.value)
    out = tmp_path / "filled.nc"
    res = _run("interpolate", tmp_path / "days", "--var", VAR, "--method", "climatology", "-o", out)
    assert_cli_error(res, 2, *parts)
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_what_names_no_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no data")
    with pytest.raises(InputError, match="is a folder with no netCDF files"):
        input_files(tmp_path / "empty")
    with pytest.raises(InputError, match="no file matches this pattern"):
        input_files(str(tmp_path / "nothing*.nc"))
    with pytest.raises(InputError, match="no input file given"):
        input_files([])


def test_cli_fills_a_folder_as_it_fills_the_same_days_in_one_file(l3, tmp_path):
    root, _ = l3
    outs = {}
    for name, src in (("one", [root / "whole.nc"]), ("folder", [root / "days"]),
                      ("shell", sorted((root / "days").iterdir()))):  # as the shell expands days/*.nc
        outs[name] = tmp_path / f"{name}.nc"
        res = _run("interpolate", *src, "--var", VAR, "--method", "dineof", "--seed", "3", "--quiet",
                   "-o", outs[name])
        assert res.exit_code == 0, res.output
    one = xr.open_dataset(outs["one"])
    for name in ("folder", "shell"):
        other = xr.open_dataset(outs[name])
        np.testing.assert_array_equal(other[VAR].values, one[VAR].values)
        np.testing.assert_array_equal(other["missing_flag"].values, one["missing_flag"].values)
        assert other[VAR].attrs["val_rmse"] == one[VAR].attrs["val_rmse"]
        assert other.attrs["title"] == "Test L3 SST"
        assert other.attrs["time_coverage_end"] == f"2020-01-{NT:02d}T23:59:59Z"
        assert "date_created" not in other.attrs


def test_cli_chunks_fit_on_aux_eof_and_train_take_many_files(l3, tmp_path):
    root, _ = l3
    days = root / "days"
    # --chunks: the block-by-block fill of the folder is that of the single file
    for name, src in (("one", root / "whole.nc"), ("many", str(days / "L3_*.nc"))):
        res = _run("interpolate", src, "--var", VAR, "--method", "climatology", "--chunks", "time=-1,lat=8,lon=8",
                   "--quiet", "-o", tmp_path / f"chunked_{name}.nc")
        assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(xr.open_dataset(tmp_path / "chunked_many.nc")[VAR].values,
                                  xr.open_dataset(tmp_path / "chunked_one.nc")[VAR].values)
    # --fit-on a folder of earlier days, a pattern of later ones filled
    early, late = tmp_path / "early", tmp_path / "late"
    early.mkdir(), late.mkdir()
    for p in sorted(days.iterdir()):
        shutil.copy(p, (late if p.name <= "L3_005.nc" else early) / p.name)  # the last 5 days are late
    res = _run("interpolate", str(late / "*.nc"), "--var", VAR, "--fit-on", early, "--method", "dineof",
               "--withhold", "0", "--quiet", "-o", tmp_path / "late_filled.nc")
    assert res.exit_code == 0, res.output
    filled = xr.open_dataset(tmp_path / "late_filled.nc")
    assert filled.sizes["time"] == 5 and np.isfinite(filled[VAR].values[:, 4:, 4:]).all()
    assert filled.attrs["fitted_on"].endswith("15 steps, time 2020-01-01 to 2020-01-15")
    assert filled.attrs["time_coverage_start"] == "2020-01-16T00:00:00Z"
    # --aux FILE:VAR where FILE is a folder of the same days: the network gets it as for VAR of the same files
    for name, aux in (("same", "microwave"), ("folder", f"{days}:microwave")):
        res = _run("interpolate", days, "--var", VAR, "--method", "unet", "--aux", aux, "--set", "steps=3",
                   "--quiet", "-o", tmp_path / f"aux_{name}.nc")
        assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(xr.open_dataset(tmp_path / "aux_same.nc")[VAR].values,
                                  xr.open_dataset(tmp_path / "aux_folder.nc")[VAR].values)
    # eof and train interpolator
    res = _run("eof", days, "--var", "microwave", "-n", "2", "-o", tmp_path / "eofs.nc")  # gap-free
    assert res.exit_code == 0, res.output
    ref = _run("eof", root / "whole.nc", "--var", "microwave", "-n", "2", "-o", tmp_path / "eofs_one.nc")
    assert ref.exit_code == 0, ref.output
    assert res.output.splitlines()[-1] == ref.output.splitlines()[-1]  # the same variance fractions
    assert f"{days} ({NT} files)" in xr.open_dataset(tmp_path / "eofs.nc").attrs["source"]
    res = _run("train", "interpolator", *sorted(early.iterdir()), "--var", VAR, "--method", "climatology",
               "--quiet", "-o", tmp_path / "clim")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "clim" / "config.json").exists()


def test_cli_output_among_the_inputs_is_refused_and_kept(l3, tmp_path):
    root, _ = l3
    days = tmp_path / "days"
    shutil.copytree(root / "days", days)
    target = days / "L3_010.nc"
    before = target.read_bytes()
    res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--overwrite", "-o", target)
    assert_cli_error(res, 2, "is the input file")
    assert target.read_bytes() == before


def test_synth_daily_writes_the_cube_as_a_file_per_day(tmp_path):
    res = _run("synth", "sst", "--daily", "--n", "6", "--size", "12", "--microwave", "-o", tmp_path / "days")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "days").iterdir()) == [f"sst_2020010{d}.nc" for d in range(1, 7)]
    res = _run("synth", "sst", "--n", "6", "--size", "12", "--microwave", "-o", tmp_path / "cube.nc")
    assert res.exit_code == 0, res.output
    for name in ("sst", "sst_mw", "sst_true"):
        np.testing.assert_array_equal(open_field(tmp_path / "days", name).values,
                                      open_field(tmp_path / "cube.nc", name).values)
    # a folder of other files is not replaced by --overwrite; an earlier daily set is
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.nc").write_bytes(b"x")
    assert_cli_error(_run("synth", "sst", "--daily", "--n", "2", "--size", "8", "--overwrite", "-o", tmp_path / "mine"),
                     2, "not an earlier")
    res = _run("synth", "sst", "--daily", "--n", "2", "--size", "8", "--overwrite", "-o", tmp_path / "days")
    assert res.exit_code == 0 and len(list((tmp_path / "days").iterdir())) == 2
    assert_cli_error(_run("synth", "sar", "--daily", "-o", tmp_path / "sar"), 2, "only synth sst writes daily files")
