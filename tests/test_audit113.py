"""Audit 113: the chunked DINEOF sigma's bit file on a full disk; classify's true labels under a folder
named as a class, paths from Python as pandas and NumPy hold them, the .nc's model path."""
from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, saved_dineof_fit, torch_threads

from oceandl.cli.main import cli
from oceandl.interp import DINEOF, interpolate, interpolate_chunked
from oceandl.io import open_field

pytestmark = pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning")


# ------------------------------------------------------------ 1. the chunked sigma's bits on a full disk
@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    """past.nc (24 days) and new.nc (the next 20) of a 16 x 16 synthetic cube; a 3-mode DINEOF with its
    error map fitted on the past and saved."""
    return saved_dineof_fit(tmp_path_factory.mktemp("audit113"), 44)


def _in_memory_and_chunked(fit, out, days: int):
    """The saved fit's in-memory fill of new.nc (returned, a Dataset) and its chunked fill in blocks of
    ``days`` written to ``out``, the small cube's warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interpolate(open_field(fit / "new.nc", "sst"), "dineof", fit_on=fit / "dineof", return_dataset=True)
        interpolate_chunked(fit / "new.nc", out, "dineof", var="sst", fit_on=fit / "dineof", chunks={"time": days})
    return mem


def _no_room(fd, offset, size):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.usefixtures("one_torch_thread")
def test_no_room_for_the_bits_beside_the_output_is_one_line_not_a_bus_error(fit, tmp_path, monkeypatch):
    """The observed pixels' bits of sigma's calibration were memory-mapped over a sparse file beside the
    output: on a disk without room for them the process died of SIGBUS at the first page written (exit
    135, no message, measured on a 200 KiB tmpfs). Their room is now taken when the file is made: a full
    disk is one line naming the folder and the size, and nothing is written."""
    monkeypatch.setattr(os, "posix_fallocate", _no_room)
    res = CliRunner().invoke(cli, ["interpolate", str(fit / "new.nc"), "--var", "sst", "--fit-on",
                                   str(fit / "dineof"), "--withhold", "0", "--chunks", "time=5", "--quiet",
                                   "-o", str(tmp_path / "c.nc")])
    assert_cli_error(res, 1, f"{tmp_path}: no room for the ", "MiB", "No space left on device",
                     "transform_calibration=false")
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("one_torch_thread")
def test_bits_on_a_filesystem_without_fallocate_are_written_as_zeros(fit, tmp_path, monkeypatch):
    """A filesystem that cannot allocate (EOPNOTSUPP) gets the bits' room written as zeros: the same
    sigma as in memory."""
    def unsupported(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    mem = _in_memory_and_chunked(fit, tmp_path / "c.nc", 6)
    with xr.open_dataset(tmp_path / "c.nc") as out:
        assert out["sigma"].attrs["transform_sigma_calibration"] == mem["sigma"].attrs["transform_sigma_calibration"]
        np.testing.assert_allclose(out["sigma"].values, mem["sigma"].values, rtol=1e-6)
    assert os.listdir(tmp_path) == ["c.nc"]


# ------------------------------------------------------------ 2. classify: a folder given named as a class
def test_a_folder_given_named_as_a_class_is_read_as_training_reads_it(tmp_path):
    """`classify survey/front/` of front/{calm,eddy}/*.png gave every image the true class 'front' (the
    folder given, topmost), and the accuracy over them was of the wrong labels, where training on that
    folder reads calm and eddy. The class folders below the one given now come first; its own name
    labels only images with no class folder below it (a class folder given alone)."""
    from oceandl.classification import true_classes

    classes = ["calm", "eddy", "front"]
    given = tmp_path / "survey" / "front"
    files = [given / "calm" / "a.png", given / "eddy" / "2014" / "b.png", given / "c.png", given / "misc" / "d.png"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
    got = true_classes(given, files, classes)
    assert got == {str(files[0]): "calm", str(files[1]): "eddy", str(files[2]): "front", str(files[3]): "front"}
    # the same through a quoted pattern and a file given alone; a class folder given alone keeps its name
    assert true_classes(str(given / "*" / "*.png"), files[:1], classes) == {str(files[0]): "calm"}
    assert true_classes([files[0]], files[:1], classes) == {str(files[0]): "calm"}
    assert true_classes(given / "eddy", files[1:2], classes) == {str(files[1]): "eddy"}
    # digits (an MNIST model): the folder given '3' holds class folders of its own
    digits = [str(i) for i in range(10)]
    run = tmp_path / "runs" / "3"
    imgs = [run / "7" / "x.png", run / "y.png"]
    for f in imgs:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
    assert true_classes(run, imgs, digits) == {str(imgs[0]): "7", str(imgs[1]): "3"}


# ------------------------------------------------------------ 3. classify from Python: paths as pandas holds them
def _pngs(root, classes, n: int = 3, seed: int = 0):
    """``root/<class>/<i>.png``: 16 x 16 grey images, brighter for each class in turn."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.clip(rng.normal(40 + 60 * k, 20, (16, 16)), 0, 255).astype(np.uint8)).save(
                root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tree_model(tmp_path_factory):
    """An untrained tiny classifier of three classes (calm, eddy, front; the predictions' numbers are not
    what is tested) and a tree of images in folders named so."""
    from oceandl.models import get_model
    from oceandl.training import save_checkpoint

    root = _pngs(tmp_path_factory.mktemp("tree") / "train", ["calm", "eddy", "front"])
    opts = {"channels": [4, 8], "hidden": 8}
    out = save_checkpoint(tmp_path_factory.mktemp("ck") / "tree", get_model("cnn", 1, 3, **opts), model_name="cnn",
                          model_options=opts, model_args=[1, 3], task="classification",
                          classes=["calm", "eddy", "front"],
                          preprocessing={"size": [16, 16], "channels": 1, "intensity": "linear",
                                         "normalize": "per_image"})
    return root, out


def test_python_classify_takes_paths_in_a_series_an_array_or_a_generator(tree_model):
    """Paths from a table (``df["file"]``) failed as a bare TypeError (a Series read as a dataset of
    samples), ``df["file"].values`` as "could not convert string to float" (read as pixels), and
    ``Path(d).glob("*.png")`` as "cannot classify a generator". Each is now the list of its paths: the
    predictions and true classes of the list."""
    import pandas as pd

    import oceandl

    root, model = tree_model
    files = [str(root / "calm" / "0.png"), str(root / "front" / "1.png")]
    with torch_threads(1):
        want = oceandl.classify(files, model, device="cpu")
        for given in (pd.Series(files, name="file"), np.array(files, dtype=object), (f for f in files),
                      want["path"]):  # the files of earlier predictions
            got = oceandl.classify(given, model, device="cpu")
            assert list(got["path"].values) == files, type(given)
            assert list(got["true_class"].values) == ["calm", "front"]
            np.testing.assert_array_equal(got["probabilities"].values, want["probabilities"].values)
        globbed = oceandl.classify((root / "eddy").glob("*.png"), model, device="cpu")
    assert sorted(globbed["path"].values) == sorted(str(p) for p in (root / "eddy").glob("*.png"))
    assert set(globbed["true_class"].values) == {"eddy"}


def test_predictions_name_their_model_by_its_absolute_path(tree_model, tmp_path, monkeypatch):
    """`classify --model m -o p.nc` wrote ``model: m`` (as given: a folder relative to wherever the run
    was), while the CSV's JSON and --init's record name it absolute, and the help says the .nc holds the
    absolute path. Both, and the Dataset of oceandl.classify, now name it absolute."""
    import oceandl

    root, model = tree_model
    monkeypatch.chdir(model.parent)
    with torch_threads(1):
        res = CliRunner().invoke(cli, ["classify", "--model", model.name, str(root / "calm"), "-o",
                                       str(tmp_path / "p.nc"), "--quiet", "--device", "cpu"])
        assert res.exit_code == 0, res.output
        got = oceandl.classify(root / "calm", model.name, device="cpu")
    with xr.open_dataset(tmp_path / "p.nc") as ds:
        assert ds.attrs["model"] == str(model.resolve())
    assert got.attrs["model"] == str(model.resolve())


# ------------------------------------------------------------ 4. the chunked sigma's z out of memory
def test_calibration_scale_from_chunks_is_calibration_z_s_with_a_chunk_s_memory():
    """The error / sigma of the observations hidden to calibrate a chunked fill's sigma (8 % of the
    series' observations) were a list of arrays in memory, joined at the end to fit the scale: 5 bits per
    observed pixel, twice that joined, more than the bits' file on disk, growing with the series where
    `--chunks` promises a block's memory. They are now in a file, and the scale is fitted from chunks of
    it: the same kept count and rms as calibration_z of them all (NaN, inf, ties, an even count), with
    the memory of a chunk (a median found by radix selection, not by sorting them all)."""
    import tracemalloc

    from oceandl.interp.base import _kth_smallest, calibration_scale, calibration_z

    rng = np.random.default_rng(0)
    for trial in range(40):
        z = rng.standard_t(3, int(rng.integers(0, 2000))) * rng.uniform(0.1, 10)
        if trial % 3 == 0 and z.size:
            z[rng.integers(0, z.size, 4)] = [np.nan, np.inf, -np.inf, 0.0]
        if trial % 4 == 0:
            z = np.round(z)  # ties and zeros
        kept = calibration_z(z)
        parts = np.array_split(z, int(rng.integers(1, 7)))
        n, rms = calibration_scale(lambda parts=parts: iter(parts))
        assert n == kept.size
        if kept.size:
            assert rms == pytest.approx(float(np.sqrt(np.mean(kept ** 2))), rel=1e-13)
    a = np.abs(rng.normal(size=20000))
    parts = np.array_split(a, 5)
    for k in (0, 1, 9999, 10000, 19999):  # narrowed 16 bits at a time down to a bin of at most 10
        assert _kth_smallest(lambda: iter(parts), k, limit=10) == np.sort(a)[k]

    def chunks():  # 2**21 values (16 MiB), made a chunk at a time
        for i in range(32):
            yield np.random.default_rng(i).standard_t(3, 1 << 16)

    tracemalloc.start()
    try:
        n, rms = calibration_scale(chunks)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, peak  # joined, the z alone were 16 MiB
    kept = calibration_z(np.concatenate(list(chunks())))
    assert n == kept.size > 0.98 * 2**21  # t(3): about 1 % beyond 5 robust stds
    assert rms == pytest.approx(float(np.sqrt(np.mean(kept ** 2))), rel=1e-12)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_chunked_calibration_keeps_its_z_in_a_file(fit, tmp_path, monkeypatch):
    """The run's z go to a file beside the output, read back a chunk at a time (here 50 values): the
    in-memory sigma and its attrs; nothing is left beside the output."""
    from oceandl.interp import chunked

    monkeypatch.setattr(chunked, "_SPILL_CHUNK", 50)
    seen = []
    scale = DINEOF.stream_scale

    def spy(self):
        seen.append((type(self._stream["z"]).__name__, len(self._stream["z"]), self._stream["n_held"]))
        return scale(self)

    monkeypatch.setattr(DINEOF, "stream_scale", spy)
    mem = _in_memory_and_chunked(fit, tmp_path / "c.nc", 3)
    assert seen and seen[0][0] == "_Spill" and seen[0][1] == seen[0][2] > 200
    theirs = mem["sigma"].attrs
    assert theirs["transform_sigma_calibration"].startswith("x")  # calibrated on the field's own z
    with xr.open_dataset(tmp_path / "c.nc") as out:
        for key in ("transform_sigma_calibration", "transform_sigma_calibration_points"):
            assert out["sigma"].attrs[key] == theirs[key]
        assert out["sigma"].attrs["transform_sigma_scale"] == pytest.approx(theirs["transform_sigma_scale"], rel=1e-12)
        np.testing.assert_allclose(out["sigma"].values, mem["sigma"].values, rtol=1e-6)
    assert os.listdir(tmp_path) == ["c.nc"]


# ------------------------------------------------------------ 5. interpolate(): a dim left to be time that is not
def test_interpolate_refuses_levels_bands_or_modes_as_time_as_open_field_does():
    """A CMEMS (time, depth, lat, lon) profile cube with one day picked, ``thetao.isel(time=0)``, is
    (depth, lat, lon): interpolate() filled its levels as if they were days, without a word (depth was
    the one dim left, so not even the by-position warning), and so were a raster's bands and an EOF
    result's modes; open_field refuses the same file ('dim 'depth' is a vertical axis, not time'). Now
    interpolate() and eof() refuse them too, naming the dim and how to say it is time."""
    import oceandl
    from oceandl.errors import InputError

    rng = np.random.default_rng(0)
    vals = (15 + rng.normal(size=(5, 6, 8, 9))).astype("float32")
    vals[rng.random(vals.shape) < 0.3] = np.nan
    cube = xr.DataArray(vals, dims=("time", "depth", "lat", "lon"), name="thetao",
                        coords={"time": np.arange(5), "depth": [0.5, 10, 50, 100, 200, 500],
                                "lat": np.linspace(40, 45, 8), "lon": np.linspace(-10, -5, 9)})
    day = cube.isel(time=0)
    with pytest.raises(InputError, match=r"thetao.*dim 'depth' is a vertical axis, not time.*name it time"):
        interpolate(day, "climatology")
    with pytest.raises(InputError, match="dim 'depth' is a vertical axis, not time"):
        oceandl.eof(day, n_modes=2)
    lev = day.rename(depth="level_m").assign_coords(level_m=("level_m", day["depth"].values, {"axis": "Z"}))
    with pytest.raises(InputError, match="dim 'level_m' is a vertical axis, not time"):
        interpolate(lev, "climatology")  # said by its coordinate's CF axis
    for dims, why in ((("band", "y", "x"), "an image band"), (("lat", "lon", "mode"), "an EOF mode index")):
        arr = xr.DataArray(np.moveaxis(vals[0], 0, 0 if dims[0] == "band" else -1), dims=dims)
        with pytest.raises(InputError, match=f"dim '{dims[0] if dims[0] == 'band' else 'mode'}' is {why}"):
            interpolate(arr, "climatology")
    # a level picked (size 1) is dropped as before, and a time dim named otherwise still reads by position
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = interpolate(cube.isel(depth=[0]), "climatology")
        assert filled.dims == ("time", "depth", "lat", "lon")
        assert interpolate(cube.isel(depth=0).rename(time="step"), "climatology").dims == ("step", "lat", "lon")


# ------------------------------------------------------------ 6. -o FOLDER/ where the folder cannot be made
def test_per_file_output_under_a_read_only_folder_is_refused_before_the_fill(fit, tmp_path, monkeypatch):
    """`interpolate DAYS/ -o RO/out/` with RO read-only (a read-only mount) filled the whole series, then
    failed as "OSError: [Errno 30] Read-only file system: 'RO/out'" (exit 1); a single -o file there was
    refused at once. The folder to be made is now checked as a file's: one line, exit 2, before the work
    (os.access stands for the mount here: the tests may run as root)."""
    days = tmp_path / "days"
    days.mkdir()
    ds = xr.open_dataset(fit / "new.nc")
    for i in (0, 10):
        ds.isel(time=slice(i, i + 10)).to_netcdf(days / f"d{i:02d}.nc")
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    for chunks in ([], ["--chunks", "time=5"]):
        res = CliRunner().invoke(cli, ["interpolate", str(days), "--var", "sst", "--method", "climatology", "--quiet",
                                       "--withhold", "0", *chunks, "-o", str(ro / "out") + "/"])
        assert_cli_error(res, 2, f"{ro / 'out'}: its folder {ro} is not writable")
    assert os.listdir(ro) == []


@pytest.mark.usefixtures("one_torch_thread")
def test_no_room_for_the_z_file_is_one_line(fit, tmp_path, monkeypatch):
    """The hidden observations' error / sigma file beside the output, on a disk that fills while it is
    written: the same one line as the bits' (the folder, what, the ways out), exit 1, nothing left."""
    import tempfile

    from oceandl.interp import chunked

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    made = tempfile.TemporaryFile
    monkeypatch.setattr(chunked.tempfile, "TemporaryFile",
                        lambda *a, **k: Full(made(*a, **k)) if k.get("prefix") == ".oceandl-z-" else made(*a, **k))
    res = CliRunner().invoke(cli, ["interpolate", str(fit / "new.nc"), "--var", "sst", "--fit-on",
                                   str(fit / "dineof"), "--withhold", "0", "--chunks", "time=5", "--quiet",
                                   "-o", str(tmp_path / "c.nc")])
    assert_cli_error(res, 1, f"{tmp_path}: no room for the error / sigma of the hidden observations",
                     "No space left on device", "transform_calibration=false")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 7. a full disk said when writing fails
def test_a_write_failing_on_a_full_disk_says_the_disk_is_full(fit, tmp_path, monkeypatch):
    """A filled field written to a full disk failed as "cannot write netCDF (RuntimeError: NetCDF: HDF
    error)" in memory, and as "RuntimeError: NetCDF: HDF error" naming no file with --chunks (HDF5
    reports no room so, or as "Permission denied"; measured on a full tmpfs). A write that fails where
    the disk has less than 1 MiB free now says so, with the folder; with room the message is as it was."""
    import shutil
    from collections import namedtuple

    from oceandl import utils

    def hdf_error(self, *a, **k):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    usage = namedtuple("usage", "total used free")
    args = ["interpolate", str(fit / "new.nc"), "--var", "sst", "--method", "climatology", "--quiet", "--withhold", "0"]
    for free, said in ((0, True), (50 << 20, False)):
        monkeypatch.setattr(utils.shutil, "disk_usage", lambda p, free=free: usage(1 << 30, (1 << 30) - free, free))
        # a full disk is no bad input: exit 1 (it was 2 until audit 116); an HDF error with room is an I/O
        # failure, exit 1 too (2 until audit 124)
        line = assert_cli_error(CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "f.nc")]), 1,
                                f"{tmp_path / 'f.nc'}: cannot write netCDF (RuntimeError: NetCDF: HDF error)")
        assert (f"; the disk of {tmp_path} is full (0 bytes free); nothing was written" in line) == said, line
        assert os.listdir(tmp_path) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 0))
    with pytest.raises(Exception, match=r"f.nc: cannot write netCDF \(RuntimeError: NetCDF: HDF error\); the disk of .* is "
                                        r"full \(0 bytes free\)"):
        with utils.atomic_path(tmp_path / "f.nc"), utils.writing(tmp_path / "f.nc"):
            raise RuntimeError("NetCDF: HDF error")  # the chunked writer's, through utils.writing (audit 121)
