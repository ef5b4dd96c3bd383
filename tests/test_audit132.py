"""Audit 132: ``--set`` errors spell None as the command line types it; ``info`` reads a checkpoint's
training state; one wording for a failed netCDF write; results written from Python have an unlimited
time dimension; the per-file units check of a DataArray whose time is not named ``time``."""
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


@pytest.mark.parametrize("typed, says", [
    ("steps=-1", "--set steps=-1 must be an integer >= 0, or none for the method's default"),
    ("tile=4", "--set tile=4 must be an integer >= 8, or none for the whole grid in one pass"),
    ("checkpoint-every=0", "--set checkpoint-every=0 must be a positive integer (steps), or none for every tenth"),
    ("calibrate=2", "--set calibrate=2 must be True or False, or none for on when nll is"),
])
def test_set_errors_say_none_as_typed(tmp_path, sst_file, typed, says):
    """"--set steps=-1 must be None or an integer >= 0": None cannot be typed; --set spells it none."""
    out = tmp_path / "m"
    res = CliRunner().invoke(cli, ["train", "interpolator", str(sst_file), "--method", "unet", "--set", typed,
                                   "--quiet", "-o", str(out)])
    assert_cli_error(res, 2, f"method 'unet': {says}")
    assert "None" not in res.output and not out.exists()


def test_set_none_is_accepted_where_the_message_offers_it(tmp_path, sst_file):
    """The spelling the message offers is one --set takes: steps=none is the default (here epochs)."""
    from oceandl.cli.main import _kv

    assert _kv(("steps=none", "tile=None")) == {"steps": None, "tile": None}


def test_library_says_none_as_python_does():
    with pytest.raises(InputError, match=r"^method 'unet': option steps=-1 must be an integer >= 0, or None for "):
        get_method("unet")(steps=-1)


@pytest.fixture(scope="module")
def _ae(tmp_path_factory):
    """An auto-encoder checkpoint as an interrupted run leaves it (finished False), with its state."""
    import json

    import torch

    from oceandl.models import get_model
    from oceandl.training import TensorData, TrainConfig, fit

    tmp_path = tmp_path_factory.mktemp("ae")
    g = torch.Generator().manual_seed(0)
    fit(get_model("conv_ae", 1, width=4, depth=2), TensorData(torch.rand(16, 1, 16, 16, generator=g)), None,
        TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"), task="reconstruction",
        out=tmp_path / "ae", checkpoint_meta=dict(model_name="conv_ae", model_args=[1],
                                                  model_options={"width": 4, "depth": 2}))
    config = json.loads((tmp_path / "ae" / "config.json").read_text())
    config["finished"] = False
    (tmp_path / "ae" / "config.json").write_text(json.dumps(config))
    return tmp_path / "ae"


@pytest.fixture
def interrupted_ae(_ae, tmp_path):
    import shutil

    return shutil.copytree(_ae, tmp_path / "ae")


def test_info_says_where_a_training_state_resumes(interrupted_ae):
    from oceandl.describe import describe

    assert describe(interrupted_ae)["resumable"] == "a training state after epoch 1 (--resume goes on from it)"


@pytest.mark.parametrize("name, damage, says", [
    ("training_state.safetensors", lambda b: b[: len(b) // 2], "corrupt or truncated"),
    ("training_state.safetensors", lambda b: b"\x00" * 8 + b[8:], "corrupt or truncated"),
    ("training_state.json", lambda b: b[:-3], "corrupt or truncated"),
    ("training_state.safetensors", None, "missing beside training_state.json"),
])
def test_info_refuses_a_corrupt_training_state(interrupted_ae, name, damage, says):
    """A truncated training_state.safetensors was described as "a training state after epoch 1
    (--resume goes on from it)", and --resume then failed: info refuses it in one line, exit 2."""
    from oceandl.errors import CheckpointError
    from oceandl.training.checkpoint import load_training_state

    path = interrupted_ae / name
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError):  # what --resume says of it: info agrees
        load_training_state(interrupted_ae)
    res = CliRunner().invoke(cli, ["info", str(interrupted_ae)])
    assert_cli_error(res, 2, f"{name}: {says}", "--resume refuses this checkpoint (its weights are whole)")
    assert len(res.output.strip().splitlines()) == 1


# ------------------------------------------------------------ 3. one wording for a failed netCDF write
@pytest.mark.parametrize("exc", [RuntimeError("NetCDF: HDF error"), OSError(5, "Input/output error")],
                         ids=["hdf", "eio"])
def test_a_write_failure_reads_the_same_in_memory_and_chunked(sst_file, tmp_path, monkeypatch, exc):
    """In memory "f.nc: cannot write netCDF (...)", with --chunks "f.nc: cannot write it (...)": one
    wording, the output and the cause, whichever writer failed."""
    import os

    from fakes import cli_climatology, make_raise, set_free_disk

    from oceandl.interp import chunked

    set_free_disk(monkeypatch, 1 << 30)
    lines = []
    for target, chunks in (((chunked.xr.Dataset, "to_netcdf"), []), ((chunked._Writer, "_commit"),
                                                                      ["--chunks", "time=2"])):
        out = tmp_path / "o" / "f.nc"
        out.parent.mkdir(exist_ok=True)
        with monkeypatch.context() as m:
            make_raise(m, target, exc)
            line = assert_cli_error(cli_climatology(sst_file, out, *chunks), 1)
        assert not os.listdir(out.parent)
        lines.append(line)
    assert lines[0] == lines[1] == f"Error: {out}: cannot write netCDF ({type(exc).__name__}: {exc})", lines


# ------------------------------------------------------------ 4. time unlimited in a file written from Python
def test_a_fill_written_from_python_has_an_unlimited_time(tmp_path):
    """``result.to_netcdf()`` wrote time fixed-size, where the CLI's file has it unlimited (ncrcat
    appends along it); a slice without time still writes."""
    import warnings

    import netCDF4

    from oceandl.interp import interpolate

    ds = synthetic_sst(seed=0, n_time=6, ny=8, nx=8)
    res = interpolate(ds["sst"], method="climatology", return_dataset=True)
    assert "time" in res.encoding["unlimited_dims"]
    res.to_netcdf(tmp_path / "r.nc")
    with netCDF4.Dataset(tmp_path / "r.nc") as nc:
        assert nc.dimensions["time"].isunlimited() and len(nc.dimensions["time"]) == 6
        assert not nc.dimensions["lat"].isunlimited()
    with warnings.catch_warnings():  # xarray's note that time is gone, as for any file opened with one
        warnings.simplefilter("ignore", UserWarning)
        res.isel(time=0).to_netcdf(tmp_path / "one.nc")
    with netCDF4.Dataset(tmp_path / "one.nc") as nc:
        assert "time" not in nc.dimensions and nc.variables["sst"].shape == (8, 8)


# ------------------------------------------------------------ 5. each file's units test whatever time is named
@pytest.mark.parametrize("how, dim", [("memory", "t"), ("chunks", "t"), ("chunks", "time"), ("eof", "t")])
def test_one_kelvin_file_is_named_when_time_is_renamed(tmp_path, how, dim):
    """A series with one kelvin file said degC, its time dim renamed 't' from Python: each file's test
    looked for a dim named 'time' and was skipped (the kelvin day filled as 288 degC). A DataArray
    given to interpolate_chunked lost its files (to_dataset drops the encoding), whatever its time's name."""
    import oceandl
    from oceandl.interp.chunked import interpolate_chunked
    from oceandl.interp.eof import eof
    from oceandl.io import open_field
    from test_audit119 import _series

    folder = _series(tmp_path / "s", n=6, kelvin_file=3)
    with open_field(folder) as da:
        renamed = da.rename(time=dim) if dim != "time" else da
        assert len(renamed.encoding["file_spans"]) == 6
        with pytest.raises(InputError, match=r"file .*d003\.nc: its units say 'degC' but its values look like kelvin"):
            if how == "memory":
                oceandl.interpolate(renamed, method="climatology")
            elif how == "chunks":
                interpolate_chunked(renamed, tmp_path / "o.nc", method="climatology", chunks={dim: 2})
            else:
                eof(renamed)
    assert not (tmp_path / "o.nc").exists()
