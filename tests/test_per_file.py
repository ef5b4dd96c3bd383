"""A folder of daily files filled into a folder of daily files: ``-o FOLDER/`` (or an existing folder)
writes a file per input file, named as it and holding its time steps, with its own time coverage
and history; all or nothing, never over an input or (without --overwrite) an existing file."""
from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, write_l3_days

import oceandl.io
from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.pipelines.interpolate import run_interpolation

VAR = "sea_surface_temperature"
NT = 12


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("perfile")
    write_l3_days(root / "days", nt=NT, ny=12, nx=14)
    return root / "days"


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


def _listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else None


def test_a_file_per_input_file_equals_the_one_file_fill(days, tmp_path):
    run_interpolation(days, tmp_path / "one.nc", var=VAR, method="climatology", progress=False, log=lambda m: None)
    out = tmp_path / "filled"
    summary = run_interpolation(days, f"{out}/", var=VAR, method="climatology", progress=False, log=lambda m: None)
    assert f"{out}/ ({NT} files)" in summary
    assert _listing(out) == _listing(days)  # the input's names, nothing hidden left behind
    one = xr.open_dataset(tmp_path / "one.nc")
    for k, name in enumerate(_listing(days)):
        with xr.open_dataset(out / name) as f, xr.open_dataset(days / name) as src:
            assert f.sizes["time"] == 1 and f["time"].values[0] == src["time"].values[0]
            for v in (VAR, "missing_flag", "sigma"):  # value for value the series' step k
                np.testing.assert_array_equal(f[v].values[0], one[v].values[k])
            # its own day's coverage, not the series' (which the one file has)
            assert f.attrs["time_coverage_start"] == src.attrs["time_coverage_start"]
            assert f.attrs["time_coverage_end"] == src.attrs["time_coverage_end"]
            assert f.attrs["time_coverage_duration"] == "P1D"
            assert f.attrs["title"] == "Test L3 SST" and f.attrs["method"] == "climatology"
            assert f.attrs["val_rmse"] == one.attrs["val_rmse"]  # the fill's scores, of the whole series
            assert "date_created" not in f.attrs  # the input file's instance attributes are not the output's
    assert one.attrs["time_coverage_end"] != one.attrs["time_coverage_start"][:10] + "T23:59:59Z"
    one.close()


def test_cli_trailing_slash_or_existing_folder_and_no_silent_replacement(days, tmp_path):
    out = tmp_path / "l4"
    res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--withhold", 0, "--quiet", "-o", f"{out}/")
    assert res.exit_code == 0, res.output
    assert f"-> {out}/ ({NT} files)" in res.stdout
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(before) == NT
    # again, to the existing folder (no slash): refused on the first existing file, before any fill
    res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--withhold", 0, "-o", out)
    assert_cli_error(res, 2, "already exists", "--overwrite")
    assert "filled" not in res.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--withhold", 0, "--quiet", "-o", out,
               "--overwrite")
    assert res.exit_code == 0, res.output
    assert all(p.stat().st_mtime_ns != before[p.name] for p in out.iterdir())


def test_other_files_of_the_folder_are_kept_and_dates_write_their_files_only(days, tmp_path):
    out = tmp_path / "l4"
    out.mkdir()
    (out / "README.txt").write_text("2019 files")
    res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--withhold", 0, "--quiet",
               "--dates", "2020-01-03:2020-01-05", "-o", out)
    assert res.exit_code == 0, res.output
    assert _listing(out) == ["20200103-L3.nc", "20200104-L3.nc", "20200105-L3.nc", "README.txt"]


def test_a_failed_write_leaves_nothing(days, tmp_path, monkeypatch):
    real = oceandl.io._to_netcdf  # what write_per_file writes each file's temporary with
    calls = []

    def failing(ds, dest, path, *a):
        calls.append(path)
        if len(calls) == 5:
            raise InputError(f"{path}: disk full")
        return real(ds, dest, path, *a)

    monkeypatch.setattr(oceandl.io, "_to_netcdf", failing)
    out = tmp_path / "new"
    with pytest.raises(InputError, match="disk full"):
        run_interpolation(days, f"{out}/", var=VAR, method="climatology", withhold=0, progress=False,
                          log=lambda m: None)
    assert len(calls) == 5 and not out.exists()  # the folder it made is gone with the 4 files written
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "20200102-L3.nc").write_text("yesterday's run")
    calls.clear()
    with pytest.raises(InputError, match="disk full"):
        run_interpolation(days, kept, var=VAR, method="climatology", withhold=0, progress=False, overwrite=True,
                          log=lambda m: None)
    assert _listing(kept) == ["20200102-L3.nc"]
    assert (kept / "20200102-L3.nc").read_text() == "yesterday's run"


def test_refusals_before_the_fill(days, tmp_path):
    base = ("interpolate", "--var", VAR, "--method", "climatology")
    # into the input folder: each output would be its input file, even with --overwrite
    res = _run(*base, days, "-o", days, "--overwrite")
    assert_cli_error(res, 2, "is the input file")
    # --demo has no input file to name the outputs after
    assert_cli_error(_run("interpolate", "--demo", "-o", f"{tmp_path / 'd'}/"), 2, "--demo")
    # a name without .nc that is no folder: one line saying both ways
    assert_cli_error(_run(*base, days, "-o", tmp_path / "filled"), 2, ".nc", "trailing slash")
    assert not (tmp_path / "filled").exists() and not (tmp_path / "d").exists()
    # a folder output whose parent is missing
    assert_cli_error(_run(*base, days, "-o", f"{tmp_path / 'no' / 'where'}/"), 2, "does not exist")


def test_two_input_files_with_one_name_are_refused(days, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    # 2020-01-02's file under the name of 2020-01-01's, in another folder
    os.link(days / "20200102-L3.nc", twin / "20200101-L3.nc")
    res = _run("interpolate", "--var", VAR, "--method", "climatology", days / "20200101-L3.nc",
               twin / "20200101-L3.nc", days / "20200103-L3.nc", "-o", f"{tmp_path / 'out'}/")
    assert_cli_error(res, 2, "have one name")
    assert not (tmp_path / "out").exists()


def test_chunked_fill_writes_the_same_files(days, tmp_path):
    one, out = tmp_path / "one.nc", tmp_path / "blocks"
    for o in (one, f"{out}/"):
        res = _run("interpolate", days, "--var", VAR, "--method", "climatology", "--chunks", "time=5,lat=6,lon=7",
                   "--quiet", "-o", o)
        assert res.exit_code == 0, res.output
    assert _listing(out) == _listing(days)  # the hidden series file is gone
    with xr.open_dataset(one) as whole:
        for k, name in enumerate(_listing(days)):
            with xr.open_dataset(out / name) as f, xr.open_dataset(days / name) as src:
                np.testing.assert_array_equal(f[VAR].values[0], whole[VAR].values[k])
                assert f.attrs["time_coverage_start"] == src.attrs["time_coverage_start"]
                assert f.attrs["history"].splitlines()[0].endswith(f"-o {out}/")


def test_one_input_file_into_a_folder(days, tmp_path):
    src = days / "20200104-L3.nc"
    out = tmp_path / "out"
    out.mkdir()
    res = _run("interpolate", src, days / "20200105-L3.nc", "--var", VAR, "--method", "climatology", "--withhold", 0,
               "--quiet", "-o", out)
    assert res.exit_code == 0, res.output
    assert _listing(out) == ["20200104-L3.nc", "20200105-L3.nc"]


def test_info_says_the_folder_is_a_fill_and_of_what(days, tmp_path):
    out = tmp_path / "l4"
    run_interpolation(days, f"{out}/", var=VAR, method="climatology", progress=False, log=lambda m: None)
    res = _run("info", out)
    assert res.exit_code == 0, res.output
    assert f"{NT} netCDF files written by oceandl (a file per input file)" in res.stdout
    assert "method:" in res.stdout and "climatology" in res.stdout
    assert "validation (withheld pixels): rmse" in res.stdout
    assert f"2020-01-01 to 2020-01-{NT:02d}, {NT} steps, daily" in res.stdout
    res = _run("info", days)  # the inputs: data, no run
    assert res.exit_code == 0 and "written by oceandl" not in res.stdout and "method:" not in res.stdout
