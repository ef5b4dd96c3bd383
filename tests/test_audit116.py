"""Audit 116: a full disk is exit 1 (not bad input) in every interpolate output mode; -o FOLDER/ write
errors name the output file, not its hidden .part; classify names a stack's unreadable images by their
rows' sample coordinate."""
from __future__ import annotations

import os
import warnings
from collections import namedtuple

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import tiny_classifier, assert_cli_error

from oceandl import utils
from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst

_usage = namedtuple("usage", "total used free")


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """A 20-day 12 x 12 synthetic cube as one file and as a folder of two 10-day files."""
    root = tmp_path_factory.mktemp("audit116")
    ds = synthetic_sst(seed=5, n_time=20, ny=12, nx=12)
    ds.to_netcdf(root / "all.nc")
    (root / "days").mkdir()
    for i in (0, 10):
        ds.isel(time=slice(i, i + 10)).to_netcdf(root / "days" / f"d{i:02d}.nc")
    return root


def _hdf_error(monkeypatch, series: bool = True):
    """Every netCDF write fails as HDF5 says a full disk (and a missing permission); with ``series``
    False, not --chunks' hidden series of -o FOLDER/ (written first, then split per file)."""
    real = xr.Dataset.to_netcdf

    def hdf_error(self, path=None, *a, **k):
        if not series and ".oceandl-series." in str(path):
            return real(self, path, *a, **k)
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)


def _interpolate(src, out, *extra):
    return CliRunner().invoke(cli, ["interpolate", str(src), "--var", "sst", "--method", "climatology", "--quiet",
                                    "--withhold", "0", *extra, "-o", out])


# ------------------------------------------------------------ 1. a full disk is exit 1 in every mode
@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]], ids=["memory", "chunks"])
@pytest.mark.parametrize("per_file", [False, True], ids=["file", "folder"])
def test_a_full_disk_is_exit_1_not_bad_input(days, tmp_path, monkeypatch, chunks, per_file):
    """write_netcdf's failures are InputErrors (exit 2), and the full-disk note kept the type it was
    added to: a filled field written in memory to a full disk exited 2, as bad input, while --chunks
    (a bare RuntimeError inside atomic_path) exited 1. A full disk is now exit 1 everywhere: in memory,
    --chunks, -o FOLDER/; the one line still names the file and the disk."""
    _hdf_error(monkeypatch)
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: _usage(1 << 30, 1 << 30, 0))
    out = tmp_path / ("out" if per_file else "f.nc")
    src, target = (days / "days", out / "d00.nc") if per_file else (days / "all.nc", out)
    if per_file and chunks:  # the filled series, written first into the folder, fails first
        target = f"{out}{os.sep}"
    res = _interpolate(src, str(out) + ("/" if per_file else ""), *chunks)
    line = assert_cli_error(res, 1, f"{target}: cannot write", "RuntimeError: NetCDF: HDF error",
                            f"the disk of {out if per_file else tmp_path} is full (0 bytes free); nothing was written")
    assert ".part" not in line, line
    assert os.listdir(tmp_path) == []


def test_a_write_error_with_room_is_still_said_as_it_was(days, tmp_path, monkeypatch):
    """With room on the disk, the failure is write_netcdf's, without the disk note; an HDF error is an
    I/O failure, exit 1 (it was 2, as bad input, until audit 124; --chunks said it exit 1)."""
    _hdf_error(monkeypatch)
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: _usage(1 << 30, 0, 1 << 30))
    line = assert_cli_error(_interpolate(days / "all.nc", str(tmp_path / "f.nc")), 1,
                            f"{tmp_path / 'f.nc'}: cannot write netCDF (RuntimeError: NetCDF: HDF error)")
    assert "is full" not in line
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 2. -o FOLDER/: the output file named, not its .part
@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]], ids=["memory", "chunks"])
def test_a_per_file_write_error_names_the_output_file(days, tmp_path, monkeypatch, chunks):
    """`interpolate DAYS/ -o OUT/` whose write failed said "OUT/.d00.nc.<host>-<pid>-<random>.part: cannot
    write netCDF (...)": a hidden temporary the user never asked for (and removed by then). It now names
    OUT/d00.nc; nothing is left in OUT (nor OUT itself, which the run made). Exit 1, an I/O failure
    (2 until audit 124)."""
    _hdf_error(monkeypatch, series=False)
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: _usage(1 << 30, 0, 1 << 30))
    out = tmp_path / "out"
    line = assert_cli_error(_interpolate(days / "days", str(out) + "/", *chunks), 1,
                            f"{out / 'd00.nc'}: cannot write netCDF (RuntimeError: NetCDF: HDF error)")
    assert ".part" not in line, line
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 3. classify a stack: unreadable images by their row's name
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_classifier(tmp_path_factory.mktemp("ck") / "tiny")


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("coord,named", [
    ({"obs": ["a", "b", "c", "d", "e"]}, ("obs='c'", "obs='e'")),
    ({"obs": [10, 11, 12, 13, 14]}, ("obs=12", "obs=14")),
    ({"time": np.array(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05"], "datetime64[ns]")},
     ("time=2020-01-03", "time=2020-01-05")),
    ({}, ("sample=2", "sample=4")),
], ids=["strings", "ints", "times", "none"])
def test_classify_names_a_stacks_unreadable_images_as_its_rows_do(tiny_model, tmp_path, coord, named):
    """`classify stack.nc` with images 2 and 4 all NaN warned "images[2] (...), images[4] (...)": an index
    into nothing the user gave (the rows are named by the stack's sample coordinate). The warning now
    names each by its row: the sample dim and its coordinate value, or its index along a dim without one."""
    rng = np.random.default_rng(0)
    img = rng.random((5, 16, 16)).astype(np.float32)
    img[[2, 4]] = np.nan
    dim = next(iter(coord), "sample")
    xr.Dataset({"image": ((dim, "y", "x"), img)}, coords=coord).to_netcdf(tmp_path / "s.nc")
    res = CliRunner().invoke(cli, ["classify", str(tmp_path / "s.nc"), "--model", str(tiny_model), "--device", "cpu",
                                   "--quiet", "-o", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    warning = next(ln for ln in res.stderr.splitlines() if "unreadable" in ln)
    assert "2 of 5 image(s) unreadable" in warning and "images[" not in warning, warning
    for n, i in zip(named, (2, 4)):
        assert f"{n} (s.nc[{i}]: no finite pixel (all NaN/inf))" in warning, warning
    # the rows the warning names are the ones with the error
    rows = xr.Dataset.from_dataframe(__import__("pandas").read_csv(tmp_path / "p.csv"))
    assert (rows["error"].fillna("").values != "").tolist() == [False, False, True, False, True]


@pytest.mark.usefixtures("one_torch_thread")
def test_classify_python_names_unreadable_images_of_a_dataarray_by_its_coordinate(tiny_model):
    """From Python too: a DataArray of vignettes along time warns with the times of its empty ones."""
    import oceandl

    img = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    img[1] = np.nan
    da = xr.DataArray(img, dims=("time", "y", "x"),
                      coords={"time": np.array(["2021-06-01", "2021-06-02", "2021-06-03"], "datetime64[ns]")})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = oceandl.classify(da, tiny_model, device="cpu")
    said = [str(w.message) for w in seen if "unreadable" in str(w.message)]
    assert len(said) == 1 and "time=2021-06-02 (no finite pixel (all NaN/inf))" in said[0], said
    assert got["label"].values.tolist()[1] == -2
