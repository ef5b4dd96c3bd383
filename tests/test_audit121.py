"""Audit 121: the chunked write's failures name the output file; a disk quota is a full disk (exit 1), not
bad input; the "disk is full" note only for a write that found no room (not a corrupt input read inside
the write, nor a permission error); the latitude dim chosen alike by canonical_dims and open_field; a
bare (lat, lon, time) array from Python is warned of."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import xarray as xr
from fakes import cli_climatology, make_raise, set_free_disk, assert_cli_error

from oceandl import utils
from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import chunked

@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("audit121") / "c.nc"
    synthetic_sst(seed=3, n_time=10, ny=8, nx=8).to_netcdf(path)
    return path


_free, _fails, _interpolate = set_free_disk, make_raise, cli_climatology


# ------------------------------------------------------------ 1. a chunked write's failure names the output
@pytest.mark.parametrize("exc", [RuntimeError("NetCDF: HDF error"), OSError(errno.EIO, "Input/output error")],
                         ids=["hdf", "eio"])
def test_a_chunked_write_failure_with_room_names_the_output(cube, tmp_path, monkeypatch, exc):
    """`interpolate --chunks time=5` whose netCDF write failed with room on the disk said "RuntimeError:
    NetCDF: HDF error (set OCEANDL_DEBUG=1 for the traceback)", naming no file. It now names the output
    and what failed, exit 1, no disk note, nothing left behind."""
    _free(monkeypatch, 1 << 30)
    _fails(monkeypatch, (chunked._Writer, "_commit"), exc)
    out = tmp_path / "f.nc"
    line = assert_cli_error(_interpolate(cube, out, "--chunks", "time=5"), 1,
                            f"{out}: cannot write netCDF ({type(exc).__name__}: ")
    assert "is full" not in line and "OCEANDL_DEBUG" not in line, line
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 2. a quota is a full disk
@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]], ids=["memory", "chunks"])
def test_a_disk_quota_is_exit_1_and_said(cube, tmp_path, monkeypatch, chunks):
    """errno EDQUOT on a disk that reports room: in memory exit 2 ("cannot write netCDF", as bad input),
    with --chunks the bare OSError. Now exit 1, naming the output and the quota, in both."""
    _free(monkeypatch, 1 << 30)
    quota = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    _fails(monkeypatch, (chunked._Writer, "_commit") if chunks else (chunked.xr.Dataset, "to_netcdf"), quota)
    out = tmp_path / "f.nc"
    assert_cli_error(_interpolate(cube, out, *chunks), 1, f"{out}: cannot write", "Disk quota exceeded",
                     f"your disk quota on {tmp_path} is exceeded; nothing was written")
    assert os.listdir(tmp_path) == []


def test_no_space_with_room_reported_is_said(tmp_path, monkeypatch):
    """ENOSPC while the disk reports room (no inodes left): said as no space, exit 1; it returned unsaid."""
    _free(monkeypatch, 1 << 30)
    with pytest.raises(utils.OceanDLError, match=rf"no space left on the disk of {tmp_path} \(it is full\)") as got:
        with utils.atomic_path(tmp_path / "f.nc"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert not isinstance(got.value, utils.InputError)


# ------------------------------------------------------------ 3. the full-disk note only for a write that found no room
@pytest.mark.parametrize("exc", [RuntimeError("NetCDF: HDF error"), PermissionError(errno.EACCES, "Permission denied")],
                         ids=["corrupt", "eacces"])
def test_a_read_failure_on_a_nearly_full_disk_is_not_the_disk(cube, tmp_path, monkeypatch, exc):
    """With under 1 MiB free, a corrupt input read lazily inside the chunked write (netCDF's "HDF error")
    or an unreadable one (EACCES) was said as "...; the disk of DIR is full (0 bytes free)", exit 1. It is
    now the input's error, naming it (exit 2), without the disk; nothing written."""
    _free(monkeypatch, 0)
    real = chunked._Reader.__init__

    def corrupt(self, *a, **k):  # the blocks' reads fail, as netCDF-C reads a corrupt chunk (the stats pass read fine)
        real(self, *a, **k)
        self.data = self.data.map_blocks(lambda b: (_ for _ in ()).throw(exc), dtype=self.data.dtype)

    monkeypatch.setattr(chunked._Reader, "__init__", corrupt)
    out = tmp_path / "f.nc"
    line = assert_cli_error(_interpolate(cube, out, "--chunks", "time=5"), 2, str(cube), "variable 'sst': cannot read",
                            f"({type(exc).__name__}: ", "corrupt or unreadable")
    assert "is full" not in line, line
    assert os.listdir(tmp_path) == []


def test_only_a_write_on_a_nearly_full_disk_gets_the_note(tmp_path, monkeypatch):
    """Unit rules of _say_full_disk with 0 bytes free: a bare netCDF error or EACCES (may be a read) is
    not the disk's; the writer's (utils.writing), torch's "file write failed", ENOSPC and EDQUOT are."""
    _free(monkeypatch, 0)
    for exc in (RuntimeError("NetCDF: HDF error"), PermissionError(errno.EACCES, "Permission denied"),
                OSError(errno.EIO, "Input/output error")):
        with pytest.raises(type(exc)) as got:
            with utils.atomic_path(tmp_path / "f.nc"):
                raise exc
        assert got.value is exc
    for exc, said in ((RuntimeError("NetCDF: HDF error"), r"is full \(0 bytes free\)"),
                      (PermissionError(errno.EACCES, "Permission denied"), r"is full \(0 bytes free\)"),
                      (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota on")):
        with pytest.raises(utils.OceanDLError, match=rf"f.nc: cannot write netCDF \({type(exc).__name__}: .*{said}"):
            with utils.atomic_path(tmp_path / "f.nc"), utils.writing(tmp_path / "f.nc"):
                raise exc
    with pytest.raises(utils.OceanDLError, match=r"file write failed\); the disk of .* is full"):
        with utils.atomic_path(tmp_path / "f.nc"):
            raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 4. two dims with latitude coordinates
def _two_lat(a_attrs, b_attrs, names=("a", "b")):
    rng = np.random.default_rng(0)
    return xr.DataArray(15 + rng.random((4, 5, 6)).astype("f4"), dims=("time", *names), name="sst",
                        coords={"time": np.arange(4).astype("datetime64[D]"),
                                names[0]: (names[0], np.arange(5.0), a_attrs),
                                names[1]: (names[1], 10 + np.arange(6.0), b_attrs)}, attrs={"units": "degC"})


def _roles_both(da):
    """The (time, lat, lon) dims as canonical_dims (arrays from Python) and open_field (files, the CLI) read them."""
    from oceandl.interp.base import canonical_dims
    from oceandl.io import open_field

    grid = open_field(da.to_dataset()).encoding["source_grid"]
    return canonical_dims(da), tuple(grid.dims[r] for r in ("time", "lat", "lon"))


@pytest.mark.parametrize("a, b, names, lat", [
    ({"units": "degrees_north"}, {"standard_name": "latitude", "units": "degrees_north"}, ("a", "b"), "b"),
    ({"units": "degrees_north"}, {"units": "degrees_north"}, ("lat", "lon"), "lat"),
    ({"units": "degrees_north"}, {"axis": "Y"}, ("a", "b"), "b")], ids=["standard_name", "name", "axis"])
def test_two_latitude_dims_one_said_exactly(a, b, names, lat):
    """Two dims whose coordinates both say latitude: canonical_dims refused the array ("rename all but
    one") while open_field took the first in the file's order (units alone over standard_name latitude,
    the other read as lon). Both now take the one said exactly (standard_name, axis, or its own name)."""
    da = _two_lat(a, b, names)
    other = next(n for n in names if n != lat)
    assert _roles_both(da) == (("time", lat, other),) * 2


def test_two_latitude_dims_none_said_exactly_are_refused_alike():
    """Both in degrees_north only: open_field read the first as latitude, the second as longitude, without
    a word. Both now refuse, naming the dims and how to tell them apart."""
    from oceandl.errors import InputError
    from oceandl.interp.base import canonical_dims
    from oceandl.io import open_field

    da = _two_lat({"units": "degrees_north"}, {"units": "degrees_north"})
    for read in (canonical_dims, lambda d: open_field(d.to_dataset())):
        with pytest.raises(InputError, match=r"dims \['a', 'b'\] all have latitude coordinates \('a': units "
                                             r"'degrees_north'; 'b': units 'degrees_north'\).*rename that dim 'lat' "
                                             r"\(ncrename -d a,lat"):
            read(da)


# ------------------------------------------------------------ 5. a bare (lat, lon, time) array
@pytest.fixture(scope="module")
def sst_values():
    """A (time, lat, lon) cube with land (21% of its pixels never observed) and clouds."""
    return synthetic_sst(seed=3, n_time=30, ny=16, nx=20).sst.values


def test_a_lat_lon_time_array_is_warned_of(sst_values):
    """A NumPy array in (lat, lon, time) order was filled as (time, lat, lon), its 16 latitudes as days,
    without a word. Its land along the last axis now warns, naming the fix."""
    import warnings

    import oceandl
    from oceandl.interp.base import as_dataarray

    with pytest.warns(UserWarning, match=r"shape \(16, 20, 30\) is read as \(time, lat, lon\) \(16 steps\), but it "
                                         r"looks like \(lat, lon, time\): 21% .*np.moveaxis\(a, -1, 0\)"):
        oceandl.interpolate(np.moveaxis(sst_values, 0, -1), method="climatology", withhold=0)
    rng = np.random.default_rng(1)
    no_land = 15 + rng.random((30, 16, 20))
    no_land[rng.random(no_land.shape) < 0.3] = np.nan  # clouds, no land
    no_land[:3] = np.nan  # three fully cloudy days
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ok in (sst_values, no_land, np.nan_to_num(np.moveaxis(sst_values, 0, -1), nan=15.0),
                   sst_values[:, :, :6].copy()):  # (time, lat, lon) as documented; no gaps, no sign
            as_dataarray(ok)
