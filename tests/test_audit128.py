"""Audit 128: ``train interpolator`` and ``interpolate`` name the option typed (``--set harmonics``,
``--epochs 3``) in the methods' errors about it, where the library's messages name its fields."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import get_method


@pytest.fixture
def sst_file(tmp_path):
    path = tmp_path / "sst.nc"
    synthetic_sst(seed=0, n_time=4, ny=8, nx=8).to_netcdf(path)
    return path


@pytest.mark.parametrize("command, args, says", [
    ("interpolate", ["--method", "dineof", "--set", "harmonics=-1"],
     "method 'dineof': --set harmonics must be 'auto' or an integer from 0 to 6, got -1"),
    ("interpolate", ["--method", "eof", "--set", "n-modes=0"], "method 'eof': --set n-modes must be an integer >= 1, got 0"),
    ("interpolate", ["--method", "unet", "--set", "normalisation=training"],
     "method 'unet': --set normalisation=training needs a checkpoint"),
    ("interpolate", ["--method", "unet", "--epochs", "3", "--set", "steps=10"],
     "method 'unet': --epochs 3 and --set steps=10 are both set: give one"),
    ("interpolate", ["--method", "dineof", "--epochs", "3"], "--epochs 3: method 'dineof': unknown option 'epochs'"),
    ("interpolate", ["--method", "unet", "--set", "n-modes=3"], "--set n-modes=3: method 'unet': unknown option 'n_modes'"),
    ("train interpolator", ["--method", "unet", "--set", "steps=-1"],
     "method 'unet': --set steps=-1 must be an integer >= 0, or none for the method's default"),
    ("train interpolator", ["--method", "unet", "--set", "lr=-1"], "method 'unet': --set lr=-1 must be a finite number"),
    ("train interpolator", ["--method", "dineof", "--lr", "0.1"], "--lr 0.1: method 'dineof': unknown option 'lr'"),
    ("train interpolator", ["--method", "climatology", "--set", "harmonics=1.5"],
     "method 'climatology': --set harmonics must be 'auto' or an integer from 0 to 6, got 1.5"),
])
def test_method_option_errors_name_the_option_typed(tmp_path, sst_file, command, args, says):
    """They said "option harmonics must be ...", "option epochs=3 and steps=10 are both set", "unknown
    option 'epochs'" of --epochs: the option given, as typed, is named; nothing is written."""
    out = tmp_path / ("x.nc" if command == "interpolate" else "m")
    res = CliRunner().invoke(cli, [*command.split(), str(sst_file), *args, "--quiet", "-o", str(out)])
    assert_cli_error(res, 2, says)
    assert "option harmonics" not in res.output and not out.exists()


def test_library_messages_keep_the_field_names():
    """Python callers gave no --set: the method's own words are kept."""
    with pytest.raises(InputError, match="^method 'eof': option n_modes must be an integer >= 1, got 0$"):
        get_method("eof")(n_modes=0)


def test_info_of_an_empty_or_unknown_folder_says_what_it_describes(tmp_path):
    """An empty folder was "not an oceandl checkpoint folder (no config.json in it)"; a folder missing
    only its config.json (weights beside) is still said to be a checkpoint without one."""
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "empty")])
    assert_cli_error(res, 2, "empty: an empty folder; info describes a checkpoint folder, a saved fit, a benchmark "
                             "run folder, a netCDF field or image stack, a folder of daily netCDF files, a folder of "
                             "class images or an MNIST folder (IDX files)")
    (tmp_path / "junk").mkdir()
    for name in ("a.txt", "b.csv"):
        (tmp_path / "junk" / name).write_text("x")
    assert_cli_error(CliRunner().invoke(cli, ["info", str(tmp_path / "junk")]), 2,
                     "junk: holds nothing info knows (2 entries: a.txt, b.csv); info describes a checkpoint folder")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.safetensors").write_bytes(b"")
    assert_cli_error(CliRunner().invoke(cli, ["info", str(tmp_path / "ckpt")]), 2, "no config.json in it")


def _idx(path, shape, magic, gz):
    import gzip
    import struct

    import numpy as np

    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape) + np.zeros(shape, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_info_describes_an_mnist_folder_from_the_idx_headers(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _idx(raw / "t10k-images-idx3-ubyte.gz", (7, 28, 28), 2051, True)
    _idx(raw / "t10k-labels-idx1-ubyte", (7,), 2049, False)
    _idx(tmp_path / "train-images-idx3-ubyte", (12, 28, 28), 2051, False)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", (11,), 2049, True)
    from oceandl.describe import describe

    facts = describe(tmp_path)
    assert facts["kind"] == "MNIST folder (IDX files)"
    assert facts["test"] == "7 images of 28 x 28, 7 labels (MNIST/raw/t10k-images-idx3-ubyte.gz)"
    assert facts["train"].startswith("12 images of 28 x 28, 11 labels (train-images-idx3-ubyte); the counts differ")
    assert facts["use with"] == f"benchmark mnist --data-root {tmp_path}; train classifier --data {tmp_path}"


def _failing(shape):
    """A dask array whose read fails as a corrupt netCDF file's does."""
    import dask
    import dask.array as dsa
    import numpy as np

    def boom():
        raise OSError("NetCDF: HDF error")

    return dsa.from_delayed(dask.delayed(boom)(), shape=shape, dtype=np.float32)


def test_reader_names_the_covariate_whose_read_failed(tmp_path, sst_file):
    """The block reader said "f.nc: variable 'sst': cannot read its values" when a covariate of
    another file failed: the covariate and its file are named; a failed field read still names the field."""
    import dask.array as dsa
    import numpy as np
    import xarray as xr

    from oceandl.interp.chunked import _Reader, _aux_labels

    dims = ("time", "lat", "lon")
    good = xr.DataArray(dsa.zeros((2, 3, 4), chunks=-1), dims=dims, name="sst")
    bad = xr.DataArray(_failing((2, 3, 4)), dims=dims, name="mw")
    other = tmp_path / "other.nc"
    other.write_bytes(sst_file.read_bytes())
    labels = _aux_labels([f"mw={other}:sst_mw", "wind"], str(sst_file), "f.nc: ")
    assert labels == {"mw": f"{other}: variable 'sst_mw' (aux 'mw')", "wind": "f.nc: variable 'wind' (aux)"}
    ext = (slice(0, 2), slice(0, 3), slice(0, 4))
    reader = _Reader(good, [good.rename("wind"), bad], "f.nc: ", [labels["wind"], labels["mw"]])
    with pytest.raises(InputError, match=r"other\.nc: variable 'sst_mw' \(aux 'mw'\): cannot read its values at "
                                         r"time 0:2, lat 0:3, lon 0:4 \(OSError: NetCDF: HDF error\)"):
        reader(ext)
    with pytest.raises(InputError, match=r"^f\.nc: variable 'sst': cannot read its values"):
        _Reader(bad.rename("sst"), [good.rename("wind")], "f.nc: ", [labels["wind"]])(ext)
    values, aux = _Reader(good, [good.rename("wind")], "f.nc: ")(ext)
    assert values.shape == (2, 3, 4) and np.all(aux[0] == 0)


def test_eof_reconstruct_and_project_are_compressed_as_the_other_results(tmp_path):
    """reconstruct() and project() were written uncompressed by to_netcdf, eofs and pcs compressed."""
    import numpy as np
    import xarray as xr

    from oceandl.interp import eof

    field = synthetic_sst(seed=0, n_time=6, ny=8, nx=8)["sst_true"]
    res = eof(field, n_modes=2)
    rec, pp, one = res.reconstruct(), res.project(field), res.project(field.isel(time=0))
    assert rec.encoding["zlib"] and rec.encoding["complevel"] == 4 and rec.encoding["chunksizes"] == (1, 8, 8)
    assert pp.encoding["zlib"] and pp.encoding["chunksizes"] == (6, 2)
    assert one.encoding["zlib"] and one.encoding.get("chunksizes", (2,)) == (2,)
    for name, da in (("rec", rec), ("pp", pp), ("one", one)):
        da.to_netcdf(tmp_path / f"{name}.nc")
        with xr.open_dataarray(tmp_path / f"{name}.nc") as back:
            assert back.encoding["zlib"] and back.encoding["complevel"] == 4
            np.testing.assert_array_equal(back.values, da.values)
