"""The command line, in-process (CliRunner) and once through the installed console script."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.errors import InputError


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def sst_file(tmp_path_factory):
    from oceandl.datasets.sst import synthetic_sst

    path = tmp_path_factory.mktemp("sst") / "cube.nc"
    synthetic_sst(n_time=20, ny=24, nx=28, cloud_cover=0.5, seed=3).to_netcdf(path)
    return path


def test_help_lists_every_command(runner):
    res = runner.invoke(cli, ["--help"])
    assert res.exit_code == 0
    for cmd in ("benchmark", "classify", "eof", "interpolate", "models", "synth", "train"):
        assert f"  {cmd} " in res.output
    for cmd in ("interpolate", "classify", "benchmark", "synth", "eof", "train interpolator", "train classifier"):
        sub = runner.invoke(cli, [*cmd.split(), "--help"])
        assert sub.exit_code == 0 and "Example" in sub.output and "--output" in sub.output
    # the groups and the commands that write nothing have examples too ('oceandl train --help' had none)
    for cmd in ("models", "train"):
        sub = runner.invoke(cli, [*cmd.split(), "--help"])
        assert sub.exit_code == 0 and "Example" in sub.output, cmd


def test_models_prints_parameter_counts(runner):
    res = runner.invoke(cli, ["models", "--size", "28"])
    assert res.exit_code == 0
    lines = {l.split()[0]: l.split() for l in res.output.splitlines()[1:]}
    assert lines["mlp"][2] == "535,818"  # 784*512+512 + 512*256+256 + 256*10+10
    assert lines["cnn"][1] == "classification" and lines["unet"][1] == "reconstruction"


def test_models_says_which_backbones_cannot_take_the_size(runner):
    """At --size 28 alexnet, vgg16 and inception_v3 were listed like the others, with a count,
    though each fails on 28 px images (they need 63, 32 and 75 px)."""
    res = runner.invoke(cli, ["models", "--size", "28"])
    assert res.exit_code == 0, res.output
    rows = {l.split()[0]: l for l in res.output.splitlines()[1:]}
    assert rows["alexnet"].endswith("(needs 63 px or more)") and rows["vgg16"].endswith("(needs 32 px or more)")
    assert rows["inception_v3"].endswith("(needs 75 px or more)")
    assert not any("needs" in rows[n] for n in ("resnet18", "cnn", "mlp", "unet"))
    res = runner.invoke(cli, ["models", "--size", "75"])
    assert "needs" not in res.output


def test_models_counts_without_allocating_the_weights(runner, monkeypatch):
    """`oceandl models` built every model with real, randomly initialised weights only to count them
    (vgg16 134 M, alexnet 57 M: 1.2 GB peak and 11 s): it builds them on torch's meta device, with
    the same counts."""
    import oceandl.models as models

    allocated = []  # (model class, parameters with storage)
    count = models.count_parameters

    def spy(model, trainable_only=False):
        allocated.append((type(model).__name__, sum(p.numel() for p in model.parameters() if p.device.type != "meta")))
        return count(model, trainable_only)

    monkeypatch.setattr(models, "count_parameters", spy)
    res = runner.invoke(cli, ["models", "--size", "64", "--in-channels", "2", "--num-classes", "3"])
    assert res.exit_code == 0, res.output
    assert len(allocated) == len(models.MODELS)
    # all on meta but smp_unet's first convolution, which smp re-makes for 2 bands with torch.Tensor(...)
    assert sum(n for _, n in allocated) == 64 * 2 * 7 * 7, allocated
    lines = {l.split()[0]: l.split()[2] for l in res.output.splitlines()[1:]}
    assert len(lines) == len(models.MODELS) and not any(v == "n/a" for v in lines.values()), lines
    for name in ("mlp", "vgg", "resnet18", "alexnet", "unet", "smp_unet"):  # the counts of real models
        opts = {"input_size": 64} if "input_size" in models.model_options(name) else {}
        args = (2, 3) if models.MODELS[name].task == "classification" else (2,)
        assert lines[name] == f"{count(models.get_model(name, *args, **opts)):,}", name
    assert lines["mlp"] == f"{2 * 64 * 64 * 512 + 512 + 512 * 256 + 256 + 256 * 3 + 3:,}"


def test_models_builds_for_real_a_model_that_needs_values(runner, monkeypatch):
    """A constructor that reads a value (``.item()``) cannot run on the meta device: that model is
    built as before, and counted."""
    import torch

    import oceandl.models as models

    class NeedsValues(torch.nn.Module):
        task = "classification"

        def __init__(self, in_channels: int = 1, num_classes: int = 10):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(in_channels, num_classes))
            self.total = int(self.w.sum().item())  # 'Tensor.item() cannot be called on meta tensors'

    monkeypatch.setitem(models.MODELS, "needs_values", NeedsValues)
    res = runner.invoke(cli, ["models", "--in-channels", "2", "--num-classes", "3"])
    assert res.exit_code == 0, res.output
    assert [l.split() for l in res.output.splitlines() if l.startswith("needs_values")] == [
        ["needs_values", "classification", "6"]]


def test_interpolate_file_to_file(runner, sst_file, tmp_path):
    out = tmp_path / "filled.nc"
    res = runner.invoke(cli, ["interpolate", str(sst_file), "--var", "sst", "--method", "dineof", "--set", "max_modes=5",
                              "--quiet", "-o", str(out), "--figure", str(tmp_path / "f.png")])
    assert res.exit_code == 0, res.output
    assert "withheld pixels: rmse" in res.output
    ds = xr.open_dataset(out)
    src = xr.open_dataset(sst_file)
    assert ds["sst"].dims == ("time", "lat", "lon")
    assert set(np.unique(ds["missing_flag"].values)) == {0, 1, 2}
    land = src["land"].values.astype(bool)
    seen = np.isfinite(src["sst"].values).any(axis=0)  # pixels never observed are left missing, like land
    assert np.isnan(ds["sst"].values[:, land]).all()
    assert np.isfinite(ds["sst"].values[:, seen]).all() and seen.sum() > 0.8 * (~land).sum()
    obs = (ds["missing_flag"].values == 0) & seen[None]
    assert np.allclose(ds["sst"].values[obs], src["sst"].values[obs])
    assert ds["sst"].attrs["method"] == "dineof" and ds["sst"].attrs["val_rmse"] > 0
    assert (tmp_path / "f.png").stat().st_size > 1000
    # refuses to overwrite, and leaves the file as it was
    before = out.read_bytes()
    res2 = runner.invoke(cli, ["interpolate", str(sst_file), "--method", "climatology", "-o", str(out)])
    assert res2.exit_code == 2 and "already exists" in res2.output and out.read_bytes() == before
    res3 = runner.invoke(cli, ["interpolate", str(sst_file), "--method", "climatology", "-o", str(out), "--overwrite",
                               "--quiet", "--complevel", "0"])
    assert res3.exit_code == 0 and xr.open_dataset(out)["sst"].attrs["method"] == "climatology"
    import netCDF4

    with netCDF4.Dataset(out) as nc:
        assert nc["sst"].filters()["zlib"] is False  # --complevel 0: uncompressed
    res4 = runner.invoke(cli, ["interpolate", str(sst_file), "--method", "climatology", "-o", str(out), "--overwrite",
                               "--complevel", "10"])
    assert res4.exit_code == 2 and "complevel" in res4.output


def test_interpolate_bad_inputs_are_one_line_exit_2(runner, sst_file, tmp_path):
    cases = [
        (["interpolate", str(sst_file), "--var", "sts", "-o", str(tmp_path / "a.nc")], "sts"),
        (["interpolate", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "b.nc")], "missing.nc"),
        (["interpolate", str(sst_file), "--method", "kriging", "-o", str(tmp_path / "c.nc")], "kriging"),
        (["interpolate", str(sst_file), "--set", "bogus=1", "-o", str(tmp_path / "d.nc")], "bogus"),
        (["interpolate", str(sst_file), "-o", str(tmp_path / "e.txt")], ".nc"),
        # the figure is checked before the fill: a bad format failed after the netCDF was written (exit 1)
        (["interpolate", str(sst_file), "--method", "climatology", "--figure", str(tmp_path / "f.xyz"),
          "-o", str(tmp_path / "f.nc")], "xyz"),
        (["interpolate", str(sst_file), "--method", "climatology", "--figure", str(tmp_path / "old.png"),
          "-o", str(tmp_path / "g.nc")], "already exists"),
        # said "unknown option 'checkpoint'", an option the user never typed
        (["interpolate", str(sst_file), "--method", "dineof", "--model", str(tmp_path / "m"),
          "-o", str(tmp_path / "h.nc")], "--model: method 'dineof' fits the file itself"),
    ]
    (tmp_path / "old.png").write_bytes(b"a figure of mine")
    for args, word in cases:
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        err = res.output.strip().splitlines()
        assert err[-1].startswith("Error:") and word in err[-1], res.output
        assert "Traceback" not in res.output
        assert "withheld" not in res.output  # options are checked before the field is read and withheld
    assert not list(tmp_path.glob("*.nc")) and not list(tmp_path.glob(".*part"))
    assert (tmp_path / "old.png").read_bytes() == b"a figure of mine"  # not replaced without --overwrite


def test_interpolate_seasonal_climatology(runner, tmp_path):
    """`--set harmonics=2` fits the seasonal cycle, as the API does; on a file without dates it is
    refused in one line (exit 2), and an out-of-range value too, before anything is written."""
    from oceandl.interp import interpolate
    from oceandl.io import open_field

    rng = np.random.default_rng(0)
    t = np.arange(730)
    v = 18 + 4 * np.cos(2 * np.pi * (t - 230) / 365.25)[:, None, None] + rng.standard_normal((730, 4, 5)) * 0.2
    v[rng.random(v.shape) < 0.6] = np.nan
    coords = {"time": np.datetime64("2018-01-01") + t.astype("timedelta64[D]"), "lat": [40.0, 41, 42, 43],
              "lon": [1.0, 2, 3, 4, 5]}
    xr.Dataset({"sst": (("time", "lat", "lon"), v, {"units": "degC"})}, coords=coords).to_netcdf(tmp_path / "two.nc")
    out = tmp_path / "clim.nc"
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "two.nc"), "--method", "climatology", "--set",
                              "harmonics=2", "--withhold", "0", "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as ds:
        assert ds["sst"].attrs["harmonics"] == 2 and json.loads(ds["sst"].attrs["options"])["harmonics"] == 2
        ref = interpolate(open_field(tmp_path / "two.nc"), "climatology", harmonics=2)
        np.testing.assert_allclose(ds["sst"].values, ref.values, rtol=1e-6)
        gap = np.isnan(v)
        truth = np.broadcast_to(18 + 4 * np.cos(2 * np.pi * (t - 230) / 365.25)[:, None, None], v.shape)
        assert np.sqrt(np.mean((ds["sst"].values[gap] - truth[gap]) ** 2)) < 0.1  # the time mean is ~2.8 off
    xr.Dataset({"sst": (("time", "lat", "lon"), v)}, coords={**coords, "time": t}).to_netcdf(tmp_path / "undated.nc")
    for args, word in ((["undated.nc", "harmonics=2"], "harmonics=2 needs the day of year"),
                       (["two.nc", "harmonics=9"], "--set harmonics must be 'auto' or an integer from 0 to 6")):
        res = runner.invoke(cli, ["interpolate", str(tmp_path / args[0]), "--method", "climatology", "--set", args[1],
                                  "-o", str(tmp_path / "x.nc")])
        assert res.exit_code == 2 and word in res.output.strip().splitlines()[-1], res.output
        assert "Traceback" not in res.output and not (tmp_path / "x.nc").exists()


def test_interpolate_writes_withheld_pixels_as_observed_and_refits_on_request(runner, sst_file, tmp_path):
    """The 10 % of the observations withheld to score the fill (flag 2) were written as the method's
    estimates: the product lost them (climatology on this file: up to several degC off at the
    withheld pixels). They are written as observed now; --refit fits again on every observation
    and keeps the scores of the first fit."""
    src = xr.open_dataset(sst_file)
    base = ["interpolate", str(sst_file), "--var", "sst", "--method", "climatology", "--quiet", "--seed", "1"]
    res = runner.invoke(cli, [*base, "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    a = xr.open_dataset(tmp_path / "a.nc")
    held = a["missing_flag"].values == 2
    assert held.sum() > 50
    np.testing.assert_allclose(a["sst"].values[held], src["sst"].values[held], rtol=1e-6)
    assert "observed values kept as given (missing_flag 0; 2: withheld from the fit to score it)" in a["sst"].comment
    n_gaps = int((a["missing_flag"].values == 1).sum())
    assert f"filled {n_gaps:,} pixels" in res.output  # the withheld ones are not 'filled'
    res = runner.invoke(cli, [*base, "--refit", "-o", str(tmp_path / "b.nc")])
    assert res.exit_code == 0, res.output
    b = xr.open_dataset(tmp_path / "b.nc")
    assert not (b["missing_flag"].values == 2).any()  # every observation was fitted
    np.testing.assert_allclose(b["sst"].values[held], src["sst"].values[held], rtol=1e-6)
    assert b["sst"].attrs["val_rmse"] == pytest.approx(a["sst"].attrs["val_rmse"])
    gaps = a["missing_flag"].values == 1
    assert np.abs(b["sst"].values[gaps] - a["sst"].values[gaps]).max() > 1e-4  # a fit on more data
    # --set keep_observed=false asks for the reconstruction everywhere: the withheld pixels keep it too
    res = runner.invoke(cli, [*base, "--set", "keep_observed=false", "-o", str(tmp_path / "r.nc")])
    assert res.exit_code == 0, res.output
    r = xr.open_dataset(tmp_path / "r.nc")
    assert np.abs(r["sst"].values[held] - src["sst"].values[held]).max() > 0.1
    for extra, word in ((["--withhold", "0"], "--refit: needs pixels withheld"),
                        (["--chunks", "time=-1,lat=8,lon=8"], "--refit: not available with --chunks")):
        res = runner.invoke(cli, [*base, "--refit", *extra, "-o", str(tmp_path / "c.nc")])
        assert res.exit_code == 2 and word in res.output.strip().splitlines()[-1], res.output
        assert not (tmp_path / "c.nc").exists()


@pytest.mark.parametrize("method", ["climatology", "dineof"])
def test_interpolate_from_python_with_withhold_gives_the_clis_file(runner, sst_file, tmp_path, method):
    """`oceandl interpolate` withholds 10 % of the valid pixels by default; oceandl.interpolate withheld
    none and had no way to draw the CLI's mask, so on this file the Python fill differed from the
    file's by up to 4.1 degC (climatology) at the 216 withheld pixels and carried no val_* scores.
    withhold=0.1 with the same seed now draws the same pixels and gives the same field and scores."""
    import oceandl

    out = tmp_path / f"{method}.nc"
    res = runner.invoke(cli, ["interpolate", str(sst_file), "--method", method, "--seed", "3", "--device", "cpu",
                              "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(sst_file) as src, xr.open_dataset(out) as cli_ds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dineof's small cross-validation set, said by both
            py = oceandl.interpolate(src["sst"], method, withhold=0.1, seed=3, device="cpu", return_dataset=True)
        assert (py["missing_flag"] == 2).sum() > 0
        xr.testing.assert_equal(cli_ds["missing_flag"], py["missing_flag"])
        held = py["missing_flag"] == 2
        xr.testing.assert_allclose(cli_ds["sst"].where(~held), py["sst"].where(~held))
        # at the withheld pixels the file holds the observations, Python the values that were scored
        np.testing.assert_allclose(cli_ds["sst"].values[held.values], src["sst"].values[held.values], rtol=1e-6)
        assert np.abs(py["sst"].values[held.values] - src["sst"].values[held.values]).max() > 0.1
        scores = {k: v for k, v in cli_ds["sst"].attrs.items() if k.startswith("val_")}
        assert scores and scores == pytest.approx({k: py["sst"].attrs[k] for k in scores})
        # the default stays a fill on every observation; both ways of withholding at once are refused
        assert not (oceandl.interpolate(src["sst"], "climatology", return_dataset=True)["missing_flag"] == 2).any()
        for kw, word in (({"withhold": 0.9}, "withhold 0.9: must be a fraction in [0, 0.9)"),
                         ({"withhold": 0.1, "withheld": np.zeros(src["sst"].shape, bool)}, "not both")):
            with pytest.raises(InputError, match=re.escape(word)):
                oceandl.interpolate(src["sst"], "climatology", **kw)


def test_interpolate_a_depth_level_from_python_as_from_the_cli(runner, sst_file, tmp_path):
    """A (time, depth=1, lat, lon) field: the CLI drops the level and fills it; oceandl.interpolate
    refused it ('expected 3 dims (time, lat, lon), got 4 dims'). It now fills it as the CLI does and
    gives it back with the input's dims, the depth its coordinate again."""
    import oceandl

    with xr.open_dataset(sst_file) as src:
        src[["sst"]].expand_dims(depth=[5.0], axis=1).to_netcdf(tmp_path / "level.nc")
    out = tmp_path / "filled.nc"
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "level.nc"), "--method", "climatology", "--seed", "3",
                              "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "level.nc") as src, xr.open_dataset(out) as cli_ds:
        py = oceandl.interpolate(src["sst"], "climatology", withhold=0.1, seed=3, return_dataset=True)
        assert py["sst"].dims == py["missing_flag"].dims == ("time", "depth", "lat", "lon")
        held = py["missing_flag"] == 2  # the file holds the observations there, Python the scored values
        assert held.any()
        for v in ("sst", "missing_flag", "sigma"):
            xr.testing.assert_allclose(cli_ds[v].expand_dims("depth", axis=1).where(~held), py[v].where(~held))
        # the DataArray, and through the accessor in another dim order: the input's dims come back
        da = src["sst"].transpose("lat", "depth", "time", "lon").oceandl.interpolate("climatology")
        assert da.dims == ("lat", "depth", "time", "lon") and float(da["depth"][0]) == 5.0
        xr.testing.assert_allclose(da, oceandl.interpolate(src["sst"].isel(depth=0), "climatology")
                                   .expand_dims("depth", axis=1).transpose(*da.dims))


@pytest.mark.parametrize("failing", ["netcdf", "figure"])
def test_interpolate_failure_leaves_neither_output(runner, sst_file, tmp_path, monkeypatch, failing):
    """The netCDF and the figure are written together: when either fails (a full disk, say),
    neither is left behind, and an existing figure (with --overwrite) is not replaced."""
    import oceandl.io
    import oceandl.plotting

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(*((oceandl.io, "write_netcdf", fail) if failing == "netcdf" else
                          (oceandl.plotting, "plot_fields", fail)))
    fig = tmp_path / "day.png"
    fig.write_bytes(b"an older figure")
    res = runner.invoke(cli, ["interpolate", str(sst_file), "--method", "climatology", "--figure", str(fig),
                              "--overwrite", "--quiet", "-o", str(tmp_path / "filled.nc")])
    assert res.exit_code == 1 and "No space left" in res.output.strip().splitlines()[-1], res.output
    assert not (tmp_path / "filled.nc").exists() and fig.read_bytes() == b"an older figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.png"]  # no temporaries either


def test_closed_pipe_stops_quietly():
    """`oceandl models | head`: the reader is gone before oceandl writes; no 'Error: BrokenPipeError'."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "import sys; from oceandl.cli.main import main; sys.exit(main())",
                          "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the interpreter has started: every write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 1 and err == "", err


def test_usage_errors_exit_2(runner, tmp_path):
    assert runner.invoke(cli, ["interpolate", "--demo"]).exit_code == 2  # no -o
    assert runner.invoke(cli, ["interpolate", "--demo", "x.nc", "-o", "y.nc"]).exit_code == 2
    assert runner.invoke(cli, ["nonsense"]).exit_code == 2
    res = runner.invoke(cli, ["benchmark", "mnist", "-o", str(tmp_path / "r"), "--set", "epochz=3"])
    assert res.exit_code == 2 and "epochz" in res.output


@pytest.mark.parametrize("argv, says", [
    (["--bogus"], "No such option '--bogus'. (see 'oceandl --help')"),
    (["nosuchcmd"], "No such command 'nosuchcmd'. (see 'oceandl --help')"),
    (["benchmark", "nope"], "'nope' is not one of 'mnist'"),
    (["interpolate", "--bogus", "x"], "(see 'oceandl interpolate --help')"),
    (["train", "classifier", "--epochs", "abc", "--demo", "-o", "x"], "'abc' is not a valid integer"),
    (["train", "classifier", "--epoch", "3"], "Did you mean"),
    (["interpolate", "--demo"], "-o/--output is required"),
])
def test_usage_errors_are_one_line(argv, says):
    """click printed usage errors on four lines (usage, hint, blank, error); the CLI's errors are one line."""
    res = CliRunner().invoke(cli, argv, prog_name="oceandl")
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], res.stderr
    assert "Usage:" not in res.output


def test_no_arguments_still_prints_the_help():
    res = CliRunner().invoke(cli, [], prog_name="oceandl")
    assert "Usage: oceandl" in res.output and "interpolate" in res.output


def test_synth_and_eof(runner, tmp_path):
    out = tmp_path / "s.nc"
    res = runner.invoke(cli, ["synth", "sst", "--n", "12", "--size", "16", "-o", str(out), "--seed", "4"])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert ds["sst"].shape == (12, 16, 16)
    # the file says how to make it again (it had no history): the command line, with its UTC time
    made = ds.attrs["history"]
    assert made.endswith(f": oceandl synth sst --n 12 --size 16 -o {out} --seed 4") and "\n" not in made
    res = runner.invoke(cli, ["eof", str(out), "--var", "sst_true", "-n", "3", "-o", str(tmp_path / "e.nc")])
    assert res.exit_code == 0, res.output
    e = xr.open_dataset(tmp_path / "e.nc")
    assert e["eofs"].dims == ("mode", "lat", "lon") and e.sizes["mode"] == 3
    vf = e["variance_fraction"].values
    assert np.all(np.diff(vf) <= 1e-12) and 0 < vf.sum() <= 1
    assert e.attrs["solver"] == "full"  # auto, on a small field (provenance: global, not on each variable)
    # global provenance: the input, the options, a history line, the total variance; mean and weights
    assert e.attrs["source"] == str(out) and e.attrs["variable"] == "sst_true" and e.attrs["method"] == "eof"
    assert "oceandl eof" in e.attrs["history"].splitlines()[0] and e.attrs["total_variance"] > 0
    assert e.attrs["history"].splitlines()[1:] == [made]
    assert e["mean"].dims == ("lat", "lon") and e["weights"].dims == ("lat", "lon")
    np.testing.assert_allclose(e["eigenvalues"].values / e.attrs["total_variance"], vf, rtol=1e-12)
    # the forms one plots and correlates, in the file: maps in the field's units per standard
    # deviation of each mode (and correlations), unit-variance PCs; covariance = anomaly x PC / (n-1)
    z = e["standardized_pcs"].values
    assert e["standardized_pcs"].dims == ("time", "mode") and e["standardized_pcs"].attrs["units"] == "1"
    np.testing.assert_allclose(z.var(0, ddof=1), 1.0, rtol=1e-5)
    with xr.open_dataset(out) as src:
        anom = (src["sst_true"] - src["sst_true"].mean("time")).values
        assert e["eofs_covariance"].attrs["units"] == src["sst_true"].attrs["units"]
    cov = np.einsum("tk,tyx->kyx", z, anom) / (anom.shape[0] - 1)
    np.testing.assert_allclose(e["eofs_covariance"].values, cov, atol=2e-4 * np.nanmax(np.abs(cov)))
    np.testing.assert_allclose(e["eofs_correlation"].values, cov / anom.std(0, ddof=1), atol=1e-4)
    res = runner.invoke(cli, ["eof", str(out), "--var", "sst_true", "-n", "3", "--solver", "randomized", "--seed", "5",
                              "-o", str(tmp_path / "r.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "r.nc") as r:
        assert r.attrs["solver"] == "randomized" and '"seed": 5' in r.attrs["options"]
        np.testing.assert_allclose(r["variance_fraction"].values, vf, rtol=1e-9)
        np.testing.assert_allclose(r["eofs"].values, e["eofs"].values, atol=1e-9)  # same signs too
    res = runner.invoke(cli, ["eof", str(out), "--solver", "lanczos", "-o", str(tmp_path / "x.nc")])
    assert res.exit_code == 2 and "lanczos" in res.output and not (tmp_path / "x.nc").exists()


def test_eof_demo(runner, tmp_path):
    """eof had no --demo (the convention where a built-in default can serve): it runs on the demo
    SST cube's gap-free field, and takes either INPUT or --demo."""
    out = tmp_path / "e.nc"
    res = runner.invoke(cli, ["eof", "--demo", "-n", "4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as e:
        assert e.attrs["variable"] == "sst_true" and e.attrs["source"].startswith("--demo")
        assert e.sizes["mode"] == 4 and e["eofs"].dims == ("mode", "lat", "lon")
        from oceandl.datasets.sst import synthetic_sst
        from oceandl.pipelines.interpolate import DEMO_SIZE

        ocean = np.isfinite(synthetic_sst(seed=0, **DEMO_SIZE)["sst_true"].values).all(axis=0)
        # every ocean pixel of the clear field is analysed (the cloudy one would leave most out)
        np.testing.assert_array_equal(np.isfinite(e["eofs"].values[0]), ocean)
        vf = e["variance_fraction"].values
        assert np.all(np.diff(vf) <= 1e-12) and 0 < vf.sum() <= 1
    for args in (["eof", "-o", str(tmp_path / "x.nc")], ["eof", str(out), "--demo", "-o", str(tmp_path / "x.nc")]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2 and "give either INPUT.nc or --demo" in res.output
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("n", ["0", "-3"])
def test_eof_modes_below_one_are_a_usage_error(runner, tmp_path, monkeypatch, n):
    """`eof --demo -n 0` made the demo cube (1.1 s), then failed in the analysis's words, naming the
    input instead of the flag ('--demo (synthetic SST cube): eof: n_modes must be a positive integer')."""
    import oceandl.datasets.sst as sst

    monkeypatch.setattr(sst, "synthetic_sst", lambda *a, **kw: pytest.fail("the demo cube was made first"))
    res = runner.invoke(cli, ["eof", "--demo", "-n", n, "-o", str(tmp_path / "e.nc")])
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 2 and "'-n' / '--n-modes'" in last, res.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, flag", [(["sst", "--n", "0", "--size", "8"], "--n"),
                                        (["sst", "--n", "3", "--size", "0"], "--size"),
                                        (["sar", "--n", "0", "--size", "16"], "--n"),
                                        (["sar", "--n", "1", "--size", "8"], "--size"),
                                        (["plankton", "--n", "1", "--size", "15"], "--size"),
                                        (["sst", "--n", "3", "--size", "8", "--cloud-cover", "1.5"], "--cloud-cover")])
def test_synth_zero_sizes_are_refused(runner, tmp_path, args, flag):
    # 0 was taken as "not given": --n 0 wrote a 365-day cube, --size 0 a 128 x 128 grid; the
    # messages named the Python arguments (cloud_cover, synthetic_sst shape) instead of the flags
    out = tmp_path / "out"
    res = runner.invoke(cli, ["synth", *args, "-o", str(out)])
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 2 and last.startswith("Error:") and f"'{flag}'" in last, res.output
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["sst", "--n", "100000", "--size", "100000"], ["sst", "--n", "3650", "--size", "60000"],
                                  ["sar", "--n", "1", "--size", "100000"], ["plankton", "--n", "1", "--size", "100000"]])
def test_synth_beyond_memory_is_refused_before_work(runner, tmp_path, args):
    """`synth sst --n 100000 --size 100000` ended in `Error: out of memory (try a smaller --batch-size
    or tile)`, exit 1, naming an option synth does not have (a request just above the memory ran for
    hours first); it is refused at once, exit 2, with the memory it needs."""
    out = tmp_path / ("out.nc" if args[0] == "sst" else "out")  # sst: a netCDF file, refused under another name
    res = runner.invoke(cli, ["synth", *args, "-o", str(out)])
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 2 and last.startswith("Error:") and "GiB of memory" in last, res.output
    assert "--batch-size" not in last and not list(tmp_path.iterdir())


@pytest.mark.parametrize("cmd", [["interpolate", "--method", "unet"], ["train", "interpolator"]])
@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--batch-size", "0"), ("--lr", "0"),
                                         ("--set", "steps=0"), ("--set", "epochs=0")])
def test_training_flags_out_of_range_are_usage_errors(runner, sst_file, tmp_path, cmd, flag, value):
    """`interpolate --method unet --epochs 0` and `train interpolator --epochs 0` trained 0 steps and
    wrote a randomly initialised network (exit 0; `train_steps` 0), where `train classifier`
    refused it: every training command now refuses it as a usage error, before any work. So do
    `--set steps=0` and `--set epochs=0` (the library keeps 0: a network built, not trained)."""
    out = tmp_path / ("o.nc" if cmd[0] == "interpolate" else "ckpt")
    res = runner.invoke(cli, [*cmd, str(sst_file), "--var", "sst", flag, value, "--quiet", "-o", str(out)])
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 2 and last.startswith("Error:") and f"'{flag}'" in last, res.output
    assert flag != "--set" or value in last, res.output
    assert not list(tmp_path.iterdir())


def test_negative_seed_is_refused(runner, tmp_path):
    # NumPy refused it deep in the run: "ValueError: expected non-negative integer", exit 1
    from oceandl.errors import InputError
    from oceandl.pipelines.runner import apply_overrides
    from oceandl.pipelines.sst import SSTConfig

    res = runner.invoke(cli, ["synth", "sst", "--n", "3", "--size", "8", "--seed", "-1", "-o", str(tmp_path / "s.nc")])
    assert res.exit_code == 2 and "--seed" in res.output.strip().splitlines()[-1], res.output
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "--set", "seed=-5", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "seed=-5" in res.output.strip().splitlines()[-1], res.output
    assert not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="seed"):
        apply_overrides(SSTConfig(), {"seed": -1})


def test_fast_flag_and_set_fast_conflict(runner, tmp_path):
    # --fast silently replaced --set fast=..., an invalid value ('maybe') included, and ran
    for value in ("maybe", "false"):
        res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "--set", f"fast={value}", "--set",
                                  "methods=climatology", "-o", str(tmp_path / "r")])
        assert res.exit_code == 2 and "--fast" in res.output.strip().splitlines()[-1], res.output
    assert not list(tmp_path.iterdir())


def test_benchmark_data_options_are_checked_by_name(runner, tmp_path, monkeypatch):
    """`--data-root` / `--data` given to a benchmark without them said "--set data_root: unknown
    config key" (an option never typed), and `mnist --download` without --data-root downloaded
    nothing, then said "--download fetches them": it downloads into $OCEANDL_DATA now."""
    for argv, says in ((["sst", "--data-root", str(tmp_path)], "--data-root: benchmark sst does not take it (mnist only)"),
                       (["scaling", "--data", str(tmp_path)], "--data: benchmark scaling does not take it (sar and plankton only)"),
                       (["mnist", "--data", str(tmp_path)], "--data: benchmark mnist does not take it (sar and plankton only)"),
                       (["sar", "--download"], "--download: benchmark sar does not take it (mnist only)")):
        res = runner.invoke(cli, ["benchmark", *argv, "--fast", "--quiet", "-o", str(tmp_path / "r")])
        assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == f"Error: {says}", res.output
    import oceandl.datasets.mnist as mnist

    got = []

    def fake_download(root):  # no network in the tests: record where it would go, then stop the run
        got.append(root)
        raise InputError("offline")

    monkeypatch.setattr(mnist, "download_mnist", fake_download)
    monkeypatch.setenv("OCEANDL_DATA", str(tmp_path / "data"))
    res = runner.invoke(cli, ["benchmark", "mnist", "--download", "--fast", "--quiet", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and got == [(tmp_path / "data").resolve()], res.output
    assert not (tmp_path / "r").exists()


def test_seed_flag_and_set_seed_conflict(runner, tmp_path):
    # `--seed 1 --set seed=2` ran seed 2 and recorded it, the --seed typed silently dropped
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "--seed", "1", "--set", "seed=2", "--set",
                              "methods=climatology", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == \
        "Error: --seed and --set seed=...: give one of them", res.output
    assert not list(tmp_path.iterdir())


def test_fast_with_a_full_runs_record_is_refused(runner, tmp_path):
    """`--fast --config FULL_RUN/results.json` shrank nothing (every recorded value counts as set):
    it ran the 365 x 128 x 128 cube with the smoke run's method options, recorded as fast."""
    import dataclasses

    from oceandl.pipelines.sst import SSTConfig

    record = tmp_path / "results.json"
    record.write_text(json.dumps({"pipeline": "sst", "results": {}, "config": dataclasses.asdict(SSTConfig())}))
    for extra in (["--fast"], ["--set", "fast=true"]):
        res = runner.invoke(cli, ["benchmark", "sst", "--config", str(record), *extra, "--quiet", "-o",
                                  str(tmp_path / "r")])
        last = res.output.strip().splitlines()[-1]
        assert res.exit_code == 2 and "record of a full run" in last and "drop --fast" in last, res.output
    assert not (tmp_path / "r").exists()
    # a fast run's record with --fast, and a full one without, are still fed back (sizes as recorded)
    small = json.loads(json.dumps(dataclasses.asdict(SSTConfig(fast=True, n_time=6, size=8, cloud_covers=(0.5,),
                                                                methods=("climatology",)))))
    record.write_text(json.dumps({"pipeline": "sst", "results": {}, "config": small}))
    res = runner.invoke(cli, ["benchmark", "sst", "--config", str(record), "--fast", "--quiet", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0 and json.loads((tmp_path / "r" / "run.json").read_text())["config"] == small, res.output


def test_benchmark_config_file_seed_is_kept(runner, tmp_path):
    """--seed's default 0 went in as an override even when not given: a --config file's seed was
    silently replaced by 0 (run.json said seed 0, and its scores were seed 0's)."""
    toml = tmp_path / "c.toml"
    toml.write_text('seed = 3\nfast = true\nn_time = 4\nsize = 8\nmethods = ["climatology"]\ncloud_covers = [0.5]\n')
    out = tmp_path / "r"
    res = runner.invoke(cli, ["benchmark", "sst", "--config", str(toml), "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["config"]["seed"] == 3 and "--seed 3" in run["command"]
    assert run["config"]["methods"] == ["climatology"] and run["config"]["cloud_covers"] == [0.5]
    res = runner.invoke(cli, ["benchmark", "sst", "--config", str(toml), "--seed", "0", "--quiet", "-o",
                              str(tmp_path / "r0")])  # an explicit --seed still wins
    assert res.exit_code == 0 and json.loads((tmp_path / "r0" / "run.json").read_text())["seed"] == 0, res.output


def test_benchmark_config_takes_a_run_folder(runner, tmp_path):
    """`--config RUN` (the run folder, as the docs name it) failed as "cannot read TOML config
    ([Errno 21] Is a directory)"; it reads the folder's results.json now, and a folder without one is
    one line (exit 2) naming what to give."""
    toml = tmp_path / "c.toml"
    toml.write_text('seed = 3\nfast = true\nn_time = 4\nsize = 8\nmethods = ["climatology"]\ncloud_covers = [0.5]\n')
    res = runner.invoke(cli, ["benchmark", "sst", "--config", str(toml), "--quiet", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["benchmark", "sst", "--config", str(tmp_path / "r"), "--quiet", "-o", str(tmp_path / "again")])
    assert res.exit_code == 0, res.output
    first, again = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("r", "again"))
    assert again["config"] == first["config"] and again["seed"] == 3
    assert again["results"]["climatology@0.5"]["val_rmse"] == first["results"]["climatology@0.5"]["val_rmse"]
    (tmp_path / "empty").mkdir()
    res = runner.invoke(cli, ["benchmark", "sst", "--config", str(tmp_path / "empty"), "--quiet", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "a folder without results.json" in res.output.strip().splitlines()[-1], res.output
    assert not (tmp_path / "x").exists()


def test_benchmark_config_file_values_are_type_checked(runner, tmp_path):
    """TOML values were taken unchecked: size = "abc" ended in a TypeError deep in the run (exit 1),
    fast = "yes" ran and was recorded as the string "yes". Now the same checks as --set (exit 2)."""
    toml = tmp_path / "c.toml"
    for line, key in (('size = "abc"', "size"), ("n_time = 2.5", "n_time"), ('fast = "maybe"', "fast"),
                      ('cloud_covers = [0.3, "a"]', "cloud_covers"), ("seed = 1.5", "seed")):
        toml.write_text(line + "\n")
        res = runner.invoke(cli, ["benchmark", "sst", "--config", str(toml), "--quiet", "-o", str(tmp_path / "bad")])
        last = res.output.strip().splitlines()[-1]
        assert res.exit_code == 2 and key in last and "c.toml" in last and "Traceback" not in res.output, res.output
    assert not (tmp_path / "bad").exists()


def test_benchmark_mnist_fast(runner, mnist_root, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(cli, ["benchmark", "mnist", "--data-root", str(mnist_root), "--fast", "--quiet", "-o", str(out),
                              "--set", "models=mlp,linear_ae"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"mlp", "linear_ae", "pca_16"}
    assert 0.5 < results["mlp"]["test_accuracy"] <= 1.0
    assert results["pca_16"]["test_explained_variance"] > results["linear_ae"]["test_explained_variance"] - 0.05
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and run["config"]["fast"] is True and "torch" in run["versions"]
    md = (out / "results.md").read_text()
    assert "| mlp |" in md and "8000 / 2000 split" in md
    assert "SST about the per-pixel mean of the training images" in md  # the metric's definition
    assert (out / "curves_mlp.png").exists() and (out / "pca_vs_ae.png").exists()


def test_console_script_runs():
    exe = shutil.which("oceandl")
    if exe is None:
        pytest.skip("the oceandl console script is not on PATH (package not installed)")
    out = subprocess.run([exe, "interpolate", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--method" in out.stdout
    bad = subprocess.run([exe, "interpolate", "/nonexistent.nc", "-o", "/tmp/never.nc"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "nonexistent.nc" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_mnist_benchmark_reaches_course_targets(runner, mnist_root, tmp_path):
    """The full MNIST pipeline on the real test set: CNN >= 98.5 %, MLP >= 96 % on the 2,000 held out."""
    out = tmp_path / "run"
    res = runner.invoke(cli, ["benchmark", "mnist", "--data-root", str(mnist_root), "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())["results"]
    assert r["cnn"]["test_accuracy"] >= 0.985
    assert r["mlp"]["test_accuracy"] >= 0.96
    # the linear AE spans the PCA subspace: same explained variance, small mean principal angle (the
    # largest angle is ill-conditioned where eigenvalues 15 and 16 are close)
    assert abs(r["linear_ae"]["test_explained_variance"] - r["pca_16"]["test_explained_variance"]) < 0.01
    assert r["linear_ae"]["mean_principal_angle_deg"] < 5


def test_benchmark_overrides_parsed_values_coerced():
    """--set values the CLI already parsed (numbers, lists) go through the config's types: a single
    value for a tuple field is a 1-tuple, a wrong type is a clean input error."""
    from oceandl.errors import InputError
    from oceandl.pipelines.runner import apply_overrides
    from oceandl.pipelines.sst import SSTConfig

    cfg = apply_overrides(SSTConfig(), {"cloud_covers": 0.5, "methods": ("climatology", "unet"),
                                        "method_options": "unet.steps=3", "n_time": 30, "fast": True, "seed": 4})
    assert cfg.cloud_covers == (0.5,) and cfg.methods == ("climatology", "unet")
    assert cfg.method_options == ("unet.steps=3",) and cfg.n_time == 30 and cfg.fast is True and cfg.seed == 4
    assert apply_overrides(SSTConfig(), {"cloud_covers": (0.3, 0.6)}).cloud_covers == (0.3, 0.6)
    with pytest.raises(InputError, match="n_time"):
        apply_overrides(SSTConfig(), {"n_time": 2.5})
    # an optional field's "none" is None (it was the string 'none': str was tried before None)
    from oceandl.pipelines.sar import SARConfig

    assert apply_overrides(SARConfig(weights="w.safetensors"), ["weights=none"]).weights is None
    assert apply_overrides(SARConfig(), {"data": "null"}).data is None
    assert apply_overrides(SARConfig(), ["data=some/folder"]).data == "some/folder"
    with pytest.raises(InputError, match="cloud_covers"):
        apply_overrides(SSTConfig(), {"cloud_covers": "lots"})


def test_train_interpolator_init_fine_tunes_a_checkpoint(runner, sst_file, tmp_path):
    """`train interpolator --init CKPT` trains on from CKPT's network and says so; the new folder
    records the starting weights; a network option against the checkpoint's is refused (exit 2)."""
    small = ["--var", "sst", "--batch-size", "4", "--quiet", "--set", "patch=16"]
    first = tmp_path / "first"
    res = runner.invoke(cli, ["train", "interpolator", str(sst_file), *small, "--set", "steps=2",
                              "--set", "model_options={\"width\": 8, \"depth\": 2}", "-o", str(first)])
    assert res.exit_code == 0, res.output
    tuned = tmp_path / "tuned"
    res = runner.invoke(cli, ["train", "interpolator", str(sst_file), *small, "--set", "steps=3",
                              "--init", str(first), "-o", str(tuned)])
    assert res.exit_code == 0, res.output
    assert f"3 steps from {first} on {sst_file}" in res.output
    training = json.loads((tuned / "config.json").read_text())["training"]
    assert training["init"]["checkpoint"] == str(first) and len(training["init"]["sha256"]) == 64
    assert json.loads((tuned / "config.json").read_text())["model_options"]["width"] == 8  # the checkpoint's network
    for args, words in [(["--set", "nll=true"], "differs from init checkpoint"),
                        (["--method", "resae"], "not 'resae'"),
                        (["--set", f"init={first}"], "--init or --set init"),
                        (["--set", f"checkpoint={first}"], "give it as --init")]:
        res = runner.invoke(cli, ["train", "interpolator", str(sst_file), *small, "--init", str(first), *args,
                                  "-o", str(tmp_path / "bad")])
        assert res.exit_code == 2 and words in res.output.strip().splitlines()[-1], (args, res.output)
    assert not (tmp_path / "bad").exists()


def test_train_interpolator_then_fill_another_file_with_it(runner, sst_file, tmp_path):
    """`train interpolator -o CKPT` writes what `interpolate --model CKPT` takes back: the second
    run trains nothing and fills a file the network never saw, as the in-memory one would."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.interp import get_method

    ckpt = tmp_path / "unet_ckpt"
    small = ["--set", "steps=4", "--set", "model_options={\"width\": 8, \"depth\": 2}", "--set", "patch=16"]
    res = runner.invoke(cli, ["train", "interpolator", str(sst_file), "--var", "sst", "--batch-size", "4",
                              "--quiet", *small, "-o", str(ckpt)])
    assert res.exit_code == 0, res.output
    assert "4 steps" in res.output and f"--model {ckpt}" in res.output
    saved = json.loads((ckpt / "config.json").read_text())
    assert saved["task"] == "interpolation" and saved["interpolator"]["method"] == "unet"
    # how it was trained, enough to train it again: the options, seed, steps, input and its grid
    tr = saved["training"]
    assert tr["options"]["steps"] == 4 and tr["options"]["patch"] == 16 and tr["options"]["batch_size"] == 4
    assert tr["seed"] == 0 and tr["train_steps"] == 4 and tr["source"] == str(sst_file) and tr["variable"] == "sst"
    assert tr["sizes"] == {"time": 20, "lat": 24, "lon": 28} and tr["final_train_loss"] > 0
    assert saved["provenance"]["versions"]["torch"]
    other = tmp_path / "other.nc"
    synthetic_sst(n_time=12, ny=24, nx=28, cloud_cover=0.5, seed=9).to_netcdf(other)
    out = tmp_path / "filled.nc"
    res = runner.invoke(cli, ["interpolate", str(other), "--method", "unet", "--model", str(ckpt), "--withhold", "0",
                              "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(other) as src, xr.open_dataset(out) as got:
        again = get_method("unet")(seed=0, device="cpu", checkpoint=str(ckpt)).fit(src["sst"])
        assert again.steps_ == 0  # loaded, not trained
        np.testing.assert_allclose(got["sst"].values, again.reconstruct()["sst"].values, atol=1e-5)
        assert got["sst"].attrs["normalisation"] == "training"  # the checkpoint's grid: its statistics
        src.isel(time=slice(4, 5)).to_netcdf(tmp_path / "day.nc")
        src.isel(lat=slice(0, None, 2)).to_netcdf(tmp_path / "part.nc")  # every other row: another grid
    # a single day (the file's own statistics need two) is filled with the training statistics
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "day.nc"), "--method", "unet", "--model", str(ckpt),
                              "-o", str(tmp_path / "day_filled.nc")])
    assert res.exit_code == 0, res.output
    assert "one time step, no other day's clouds to copy: no pixels withheld" in res.output  # --withhold 0.1
    with xr.open_dataset(tmp_path / "day_filled.nc") as got:
        assert got.sizes["time"] == 1 and got["sst"].attrs["normalisation"] == "training"
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "part.nc"), "--method", "unet", "--model", str(ckpt),
                              "--set", "normalisation=training", "--quiet", "-o", str(tmp_path / "p.nc")])
    assert res.exit_code == 2 and not (tmp_path / "p.nc").exists(), res.output
    assert "trained on a 24 x 28 grid, this input is 12 x 28" in res.output.strip().splitlines()[-1]
    # a training flag with --model is refused, not ignored; the output is not written
    res = runner.invoke(cli, ["interpolate", str(other), "--method", "unet", "--model", str(ckpt), "--epochs", "5",
                              "--quiet", "-o", str(tmp_path / "f.nc")])
    assert res.exit_code == 2 and "--epochs 5 has no effect with checkpoint" in res.output, res.output
    assert not (tmp_path / "f.nc").exists()
    # refuses an existing folder (and leaves it as it was), a training flag of a fitted method, a bad option, a start checkpoint
    before = (ckpt / "weights.safetensors").read_bytes()
    cases = [(["-o", str(ckpt)], "already exists"),
             # a classical fit is saved too (tests/test_fitted.py), but takes no training flags
             (["--method", "dineof", "--epochs", "3", "-o", str(tmp_path / "a")], "unknown option 'epochs'"),
             (["--set", "bogus=1", "-o", str(tmp_path / "b")], "bogus"),
             (["--set", f"checkpoint={ckpt}", "-o", str(tmp_path / "c")], "checkpoint")]
    for args, words in cases:
        res = runner.invoke(cli, ["train", "interpolator", str(sst_file), "--quiet", *args])
        assert res.exit_code == 2 and words in res.output.strip().splitlines()[-1], (args, res.output)
    res = runner.invoke(cli, ["train", "interpolator", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "d")])
    assert res.exit_code == 2 and "missing.nc" in res.output
    assert runner.invoke(cli, ["train", "interpolator", "-o", str(tmp_path / "e")]).exit_code == 2  # no input
    assert (ckpt / "weights.safetensors").read_bytes() == before
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_set_takes_json_for_dicts_and_lists(runner, tmp_path):
    from oceandl.cli.main import _kv

    assert _kv(('model_options={"width": 8, "depth": 2}', "tile=64", "cube=4,8,8")) == {
        "model_options": {"width": 8, "depth": 2}, "tile": 64, "cube": (4, 8, 8)}
    assert _kv(("decoder_channels=[32, 16]",)) == {"decoder_channels": [32, 16]}
    res = runner.invoke(cli, ["interpolate", "--demo", "--method", "unet", "--set", "model_options={width: 8}",
                              "-o", str(tmp_path / "x.nc")])
    assert res.exit_code == 2 and "JSON" in res.output.strip().splitlines()[-1] and "Traceback" not in res.output
    assert not (tmp_path / "x.nc").exists()


def _documented_commands() -> list[tuple[str, str]]:
    """Every ``oceandl ...`` line in the commands' --help examples and in the code blocks of the
    README and docs/ (continuation lines joined, comments, pipes and redirections cut off)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts: list[tuple[str, str]] = []

    def walk(cmd, path):
        texts.append((f"--help of {' '.join(path)}", cmd.help or ""))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(cli, ("oceandl",))
    for md in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", md.read_text(), flags=re.S)
        texts.append((md.name, "\n".join(blocks)))
    found = []
    for where, text in texts:
        for line in re.sub(r"\\\n\s*", " ", text).splitlines():
            for part in re.split(r"&&|;", line.split(" #")[0]):  # `mkdir -p runs && oceandl ...`
                part = part.strip().removeprefix("$ ")
                if part.startswith("oceandl "):
                    found.append((where, re.split(r"\s(?:\||>)", part)[0]))
    return found


def test_every_documented_command_line_parses(runner, monkeypatch):
    """The examples in --help, the README and docs/ name options and values that exist: each is
    parsed by the real CLI (commands replaced by no-ops, so nothing runs). A renamed flag or a
    dropped choice fails here instead of in a user's shell."""
    import shlex

    from oceandl.cli.main import _kv
    from oceandl.errors import InputError
    from oceandl.interp import get_method

    ran = []

    def patch(cmd):
        if cmd.callback is not None:
            monkeypatch.setattr(cmd, "callback", lambda *a, **kw: ran.append((cmd.name, kw)))
        for sub in getattr(cmd, "commands", {}).values():
            patch(sub)

    patch(cli)
    # --device cuda is checked against the machine at parse time; the docs show GPU runs
    monkeypatch.setattr("oceandl.utils.resolve_device", lambda value: value)
    bad, documented = [], _documented_commands()
    assert len(documented) >= 30  # the extraction itself still finds the examples
    for where, line in documented:
        args = shlex.split(line)[1:]
        ran.clear()
        res = runner.invoke(cli, args)
        if res.exit_code != 0 or (not ran and "--help" not in args and "--version" not in args):
            bad.append(f"{where}: {line}\n    -> {res.output.strip().splitlines()[-1:]}")
            continue
        kw = ran[-1][1] if ran else {}
        if "method" in kw and "options" in kw:  # --set values too: the method's own check
            opts = {**_kv(kw["options"]), **{k: kw[k] for k in ("epochs", "batch_size", "lr") if kw.get(k)}}
            try:
                get_method(kw["method"])(**opts)
            except InputError as e:
                bad.append(f"{where}: {line}\n    -> {e}")
    assert not bad, "\n".join(bad)


def test_sigterm_mid_benchmark_leaves_nothing_behind(tmp_path):
    """SIGTERM killed a benchmark at once and left its hidden '.run.<host>-<pid>-*.part' folder (with
    some figures) beside the target; now it ends as 'Error: terminated' (exit 143) and removes it."""
    import signal
    import subprocess
    import sys
    import time

    code = "import sys; from oceandl.cli.main import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "benchmark", "sst", "--fast", "--quiet", "--set",
                             "cloud_covers=0.3,0.5,0.7,0.9", "-o", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not list(tmp_path.glob(".run.*.part")):  # the run has started writing
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Error: terminated" in err
    assert list(tmp_path.iterdir()) == []


def test_benchmark_makes_the_runs_folder_of_its_documented_examples(runner, tmp_path, monkeypatch):
    """Every benchmark example (--help, README, docs) writes `-o runs/NAME`, which failed in a fresh
    folder: 'Error: runs/sst: folder runs does not exist'. The folders above the run folder are made
    once the settings are checked, and a failed run removes those it made."""
    from oceandl.pipelines import get_pipeline

    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "--set", "methods=climatology",
                              "-o", "runs/sst"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "sst" / "results.json").is_file()
    # bad settings: refused before anything is made
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "--set", "methods=nonesuch", "-o", "new/a/sst"])
    assert res.exit_code == 2 and not (tmp_path / "new").exists()
    # a run that fails midway leaves neither the run folder nor the folders made for it
    import dataclasses
    import importlib

    def boom(cfg, ctx):
        raise RuntimeError("disk on fire")

    module = importlib.import_module(get_pipeline("sst").run.__module__)
    monkeypatch.setattr(module, "PIPELINE", dataclasses.replace(module.PIPELINE, run=boom))
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "-o", "new/a/sst"])
    assert res.exit_code == 1 and "disk on fire" in res.output and not (tmp_path / "new").exists()
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "-o", "runs/b/sst"])
    assert res.exit_code == 1 and sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sst"]
    # a file on the way is still refused before the work
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(cli, ["benchmark", "sst", "--fast", "--quiet", "-o", "afile/b/sst"])
    assert res.exit_code == 2 and "afile is a file, not a folder" in res.output


def test_overwrite_never_replaces_other_things(runner, sst_file, tmp_path, monkeypatch):
    """`-o data --overwrite` deleted a folder of the user's data (train classifier, train
    interpolator, synth sar/plankton put their output in its place; eof and synth sst a netCDF
    file); `-o "" --overwrite` tried to swap the current folder out (exit 1). --overwrite now
    replaces only an earlier output of the same kind: a file a file, a checkpoint a checkpoint."""
    import torch

    from oceandl.errors import InputError
    from oceandl.io import write_netcdf
    from oceandl.training import save_checkpoint

    data = tmp_path / "data"
    data.mkdir()
    (data / "thesis.txt").write_text("precious")
    (tmp_path / "stack.nc").mkdir()  # a folder that looks like a file output
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "classifier", "--data", str(data), "-o", "data"], "not an earlier checkpoint"),
        (["train", "interpolator", str(sst_file), "--set", "steps=1", "-o", "data"], "not an earlier checkpoint"),
        (["synth", "sar", "--n", "1", "--size", "16", "-o", "data"], "not an earlier synthetic sar"),
        (["synth", "plankton", "--n", "1", "--size", "16", "-o", "data"], "not an earlier synthetic plankton"),
        (["synth", "sst", "--n", "3", "--size", "8", "-o", "data"], "must end in .nc"),  # refused before any look
        (["eof", str(sst_file), "-o", "stack.nc"], "is a folder"),
        (["interpolate", str(sst_file), "--method", "climatology", "-o", "stack.nc"], "is a folder"),
        (["classify", "--model", "data", str(data), "-o", "stack.nc"], "is a folder"),
        (["synth", "sar", "--n", "1", "--size", "16", "-o", str(sst_file)], "is a file"),
        (["synth", "sst", "--n", "3", "--size", "8", "-o", ""], "--output"),
        (["train", "classifier", "--demo", "-o", "."], "--output"),
    ]
    for args, words in cases:
        res = runner.invoke(cli, [*args, "--overwrite", "--quiet"] if args[0] not in ("synth", "eof") else
                            [*args, "--overwrite"])
        assert res.exit_code == 2 and words in res.output.strip().splitlines()[-1], (args, res.output)
    with pytest.MonkeyPatch.context() as m:  # a folder output never replaces the folder the user is in
        m.chdir(data)
        res = runner.invoke(cli, ["synth", "sar", "--n", "1", "--size", "16", "-o", str(data), "--overwrite"])
        assert res.exit_code == 2 and "holds the current folder" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "stack.nc"]
    assert [p.name for p in data.iterdir()] == ["thesis.txt"] and not any((tmp_path / "stack.nc").iterdir())
    # the library refuses too
    with pytest.raises(InputError, match="not an earlier checkpoint"):
        save_checkpoint(data, torch.nn.Linear(2, 2), model_name="x", model_options={}, task="classification",
                        overwrite=True)
    with pytest.raises(InputError, match="is a folder"):
        write_netcdf(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "stack.nc", overwrite=True)
    # an earlier output of the same kind (or an empty folder) is still replaced
    for out in ("sar", "sar", "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        res = runner.invoke(cli, ["synth", "sar", "--n", "1", "--size", "16", "-o", out, "--overwrite"])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "sar" / "metadata.csv").is_file() and (tmp_path / "empty" / "metadata.csv").is_file()


def test_log_file_gets_lines_not_progress_bars_and_quiet_keeps_results(sst_file, tmp_path):
    """`oceandl ... 2> log` (a batch job, a pipe): tqdm's carriage-return redraws piled up on one
    line of the log, and an error then began mid-line after them. Bars are now drawn on a terminal
    only. --quiet silenced the bars alone: the progress messages ('withheld ...', 'checkpoint
    written to ...') still printed; now only results (stdout), warnings and errors remain."""
    import sys

    code = "import sys; from oceandl.cli.main import main; sys.exit(main())"
    base = [sys.executable, "-c", code, "interpolate", str(sst_file), "--var", "sst", "--method", "dineof",
            "--set", "max_modes=3"]
    for quiet, name in ((False, "a.nc"), (True, "b.nc")):
        with open(tmp_path / "log", "w") as log:
            res = subprocess.run([*base, *(["--quiet"] if quiet else []), "-o", str(tmp_path / name)],
                                 stdout=subprocess.PIPE, stderr=log, text=True, timeout=300)
        err = (tmp_path / "log").read_text()
        assert res.returncode == 0, err
        assert "\r" not in err and "it/s" not in err, err
        assert "withheld pixels: rmse" in res.stdout and f"-> {tmp_path / name}" in res.stdout
        assert ("withheld " in err) is not quiet, err
    from oceandl.datasets.synthetic_images import make_sar_vignettes

    tree = make_sar_vignettes(tmp_path / "sar", n_per_class=3, size=16, seed=0)
    bad = subprocess.run([sys.executable, "-c", code, "train", "classifier", "--data", str(tree), "--augment", "bogus",
                          "-o", str(tmp_path / "ckpt")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: --augment bogus: unknown augmentation"), bad.stderr


def test_synth_and_eof_take_quiet(runner, tmp_path):
    """Every command that writes takes --quiet: `synth` printed its 'sst written to ...' line with no
    way to silence it, and `oceandl synth ... --quiet` in a script was 'No such option' (exit 2)."""
    res = runner.invoke(cli, ["synth", "sst", "--n", "3", "--size", "8", "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0 and res.stderr == "sst written to " + str(tmp_path / "a.nc") + "\n", res.output
    res = runner.invoke(cli, ["synth", "sst", "--n", "3", "--size", "8", "--quiet", "-o", str(tmp_path / "b.nc")])
    assert res.exit_code == 0 and res.stderr == "" and (tmp_path / "b.nc").is_file(), res.output
    res = runner.invoke(cli, ["eof", "--demo", "-n", "2", "--quiet", "-o", str(tmp_path / "e.nc")])
    assert res.exit_code == 0 and res.stdout.startswith("variance fractions: ") and res.stderr == "", res.output


def test_unwritable_output_folder_and_bad_model_sizes_are_usage_errors(runner, tmp_path, monkeypatch):
    """An output folder the user cannot write into failed after the work with 'PermissionError: ...
    .<name>.<host>-<pid>-<random>.part' (exit 1); it is now refused first, naming the folder (exit 2).
    `oceandl models --size 0` (or -5, or --num-classes 0) printed parameter counts of impossible models."""
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real(p, mode, **kw))
    res = runner.invoke(cli, ["synth", "sst", "--n", "3", "--size", "8", "-o", str(locked / "s.nc")])
    assert res.exit_code == 2 and "is not writable" in res.output.strip().splitlines()[-1], res.output
    assert not any(locked.iterdir())
    for args in (["--size", "0"], ["--size", "-5"], ["--num-classes", "0"], ["--in-channels", "0"]):
        res = runner.invoke(cli, ["models", *args])
        assert res.exit_code == 2 and "parameters" not in res.output, (args, res.output)


# heavy top-level packages whose import a command that does not use them should not pay for
_HEAVY = ("torch", "torchvision", "segmentation_models_pytorch", "timm", "matplotlib", "rasterio", "PIL", "xarray",
          "pandas", "netCDF4", "dask", "distributed", "scipy", "tqdm", "safetensors", "numpy")


def _imported_by(*argv: str, code: str | None = None, cwd=None) -> set[str]:
    """The heavy packages a fresh interpreter has imported after running ``oceandl ARGV`` (or ``code``)."""
    import sys

    run = code if code is not None else ("import sys; from oceandl.cli.main import main; sys.argv[0] = 'oceandl'; "
                                         f"code = main({list(argv)!r})")
    probe = (f"{run}\nimport sys; print('imported:', *sorted({{m.split('.')[0] for m in sys.modules}} & {set(_HEAVY)!r}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.splitlines()[-1].split()
    assert last[0] == "imported:", out.stdout[-2000:]
    return set(last[1:])


def test_classical_gap_filling_and_cloud_masks_do_not_import_torch(sst_file, tmp_path):
    """`oceandl.datasets` imported every reader at once: cloud masks (and with them `interpolate
    --method climatology|eof`, which withholds pixels by cloud-mask transfer) loaded torch and
    torchvision, seconds on a cold start, for NumPy work."""
    heavy = _imported_by(code="from oceandl.datasets import cloud_masks, withhold_by_cloud_transfer")
    assert not heavy & {"torch", "torchvision", "PIL", "tqdm"}, heavy
    for method in ("climatology", "eof"):
        heavy = _imported_by("interpolate", str(sst_file), "--method", method, "-o", str(tmp_path / f"{method}.nc"))
        assert (tmp_path / f"{method}.nc").exists()
        assert not heavy & {"torch", "torchvision", "PIL", "tqdm"}, (method, heavy)
    # the lazy names are the same objects as the modules' own, and the whole public list resolves
    import oceandl.datasets as datasets
    from oceandl.datasets import images, synthetic_images

    assert datasets.read_image is images.read_image and datasets.sar_arrays is synthetic_images.sar_arrays
    assert all(getattr(datasets, name) is not None for name in datasets.__all__)
    assert set(datasets.__all__) <= set(dir(datasets))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        datasets.nope


def test_help_and_completion_import_no_heavy_package():
    """`oceandl --help` (and shell completion, which runs the command at each TAB) imported xarray
    and pandas through the accessor's registration (0.7 s of 0.9 s), then NumPy through
    oceandl.utils (45 ms of 136). No command's --help imports any of them now, torch least of all."""
    import importlib.util
    import os

    # without wrapt (optional) the accessor is registered at import: xarray comes, with pandas and numpy
    allowed = set() if importlib.util.find_spec("wrapt") else {"xarray", "pandas", "numpy"}
    for argv in ([], ["--version"], ["models"], ["train"], ["train", "classifier"], ["train", "interpolator"],
                 ["classify"], ["interpolate"], ["eof"], ["synth"], ["benchmark"]):
        heavy = _imported_by(*argv, "--help") if argv != ["--version"] else _imported_by(*argv)
        assert not heavy - allowed, (argv, heavy)
    # bash completion of a command and of the benchmark names
    env = dict(os.environ, _OCEANDL_COMPLETE="bash_complete", COMP_WORDS="oceandl benchmark ", COMP_CWORD="2")
    import sys

    probe = ("import sys, atexit; atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules} & "
             f"{set(_HEAVY)!r}))); from oceandl.cli.main import main; sys.argv[0] = 'oceandl'; main()")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert "plain,sst" in out.stdout.splitlines(), out
    assert not set(ast.literal_eval(out.stdout.splitlines()[-1])) - allowed, out


@pytest.mark.parametrize("module, argv, pip", [
    ("rasterio", ["synth", "sar", "--n", "1", "--size", "16"], "pip install rasterio"),
    ("PIL", ["synth", "plankton", "--n", "1", "--size", "16"], "pip install pillow"),
    ("segmentation_models_pytorch", ["interpolate", "SST", "--method", "smp_unet", "--set", "steps=1"],
     "pip install segmentation-models-pytorch"),
])
def test_missing_package_is_one_line_naming_what_to_install(runner, sst_file, tmp_path, monkeypatch, module, argv,
                                                            pip):
    """A dependency imported where it is used and not installed said 'ModuleNotFoundError: No module
    named ... (set OCEANDL_DEBUG=1 for the traceback)', as for a bug, and not what to install
    (Pillow is imported as PIL)."""
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # what `import` does for a package not installed
    monkeypatch.delenv("OCEANDL_DEBUG", raising=False)
    out = tmp_path / ("out.nc" if argv[0] == "interpolate" else "out")
    res = runner.invoke(cli, [str(sst_file) if a == "SST" else a for a in argv] + ["-o", str(out)])
    assert res.exit_code == 1 and not out.exists()
    lines = res.output.strip().splitlines()
    assert lines[-1] == f"Error: this needs the Python package {pip.split()[-1]!r}, which is not installed " \
                        f"(import {module}): {pip}", lines
    assert "OCEANDL_DEBUG" not in res.output


# ---------------------------------------------------------------- netCDF outputs other ocean tools read
@pytest.fixture(scope="module")
def l4_outputs(tmp_path_factory):
    """A GHRSST-like L4 file (packed int16 kelvin, int32 seconds since 1981) and what `interpolate`
    (in memory and --chunks) and `eof` write from it."""
    from fakes import write_l4_sst

    folder = tmp_path_factory.mktemp("l4")
    src = folder / "l4.nc"
    write_l4_sst(src)
    runner = CliRunner()
    argvs = {"memory": ["interpolate", str(src), "--method", "climatology", "--quiet"],
             "chunks": ["interpolate", str(src), "--method", "climatology", "--chunks", "time=-1,lat=8,lon=10",
                        "--quiet"],
             "eof": ["eof", str(src), "-n", "2"]}
    outs = {"input": src}
    for key, argv in argvs.items():
        outs[key] = folder / f"{key}.nc"
        res = runner.invoke(cli, [*argv, "-o", str(outs[key])])
        assert res.exit_code == 0, res.output
    return outs


@pytest.mark.parametrize("kind", ["memory", "chunks", "eof"])
def test_outputs_have_no_fill_value_on_coordinates(l4_outputs, kind):
    """CF 5: coordinate variables hold no missing values; xarray gave every float lat/lon of the
    outputs a _FillValue = NaN (the input's had none)."""
    import netCDF4

    with netCDF4.Dataset(l4_outputs[kind]) as nc:
        for name in ("lat", "lon", "time"):
            assert "_FillValue" not in nc[name].ncattrs(), (kind, name)
        assert nc["lat"].dtype == np.float32 and nc["lat"].units == "degrees_north"


def _outputs_of(src, tmp_path):
    """``(argv, output)`` of interpolate (in memory and ``--chunks``) and eof run on ``src``."""
    runner = CliRunner()
    for i, argv in enumerate((["interpolate", "--method", "climatology"],
                              ["interpolate", "--method", "climatology", "--chunks", "lat=8"], ["eof", "-n", "2"])):
        out = tmp_path / f"out{i}.nc"
        res = runner.invoke(cli, [argv[0], str(src), *argv[1:], "--quiet", "-o", str(out)])
        assert res.exit_code == 0, res.output
        yield argv, out


def test_no_fill_value_on_the_coordinates_of_an_input_written_by_xarray(sst_file, tmp_path):
    """xarray writes float lat/lon with _FillValue = NaN; the outputs of such a file kept it on
    their lat/lon (CF 5: coordinate variables hold no missing values; CDO reads a gappy axis)."""
    import netCDF4

    src = tmp_path / "xr.nc"
    with xr.open_dataset(sst_file) as ds:
        ds[["sst"]].to_netcdf(src)  # xarray's defaults
    with netCDF4.Dataset(src) as nc:
        assert "_FillValue" in nc["lat"].ncattrs()
    for argv, out in _outputs_of(src, tmp_path):
        with netCDF4.Dataset(out) as nc:
            assert [n for n in ("lat", "lon", "time") if "_FillValue" in nc[n].ncattrs()] == [], argv


@pytest.mark.parametrize("kind", ["memory", "chunks", "eof"])
def test_outputs_keep_the_inputs_global_attributes_and_history(l4_outputs, kind):
    """The outputs had none of the input file's global attributes (title, institution, summary, its
    history) and no Conventions (interpolate), then dropped its ACDD-1.3 from Conventions: NCO/CDO
    keep them, with the command line in front of the history."""
    import re

    import netCDF4

    from fakes import L4_GLOBAL_ATTRS

    with netCDF4.Dataset(l4_outputs[kind]) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    assert attrs["institution"] == L4_GLOBAL_ATTRS["institution"] and attrs["summary"] == L4_GLOBAL_ATTRS["summary"]
    assert attrs["title"] == (L4_GLOBAL_ATTRS["title"] if kind != "eof" else "EOF analysis of analysed_sst")
    # the input's ACDD-1.3 stays declared beside the CF version written (it said CF-1.8 alone)
    assert attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    first, *rest = attrs["history"].splitlines()
    assert rest == [L4_GLOBAL_ATTRS["history"]]
    command = "eof" if kind == "eof" else "interpolate"
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ: oceandl {command} \S+l4\.nc .*-o \S+{kind}\.nc", first)
    assert (kind == "chunks") == ("--chunks time=-1,lat=8,lon=10" in first)


@pytest.mark.parametrize("again", [["interpolate", "--method", "climatology"],
                                   ["interpolate", "--method", "climatology", "--chunks", "lat=8"], ["eof", "-n", "2"]])
def test_an_earlier_runs_attributes_are_not_carried_onto_the_next(l4_outputs, tmp_path, again):
    """An oceandl output fed back kept the earlier run's attributes beside the new ones: a climatology
    fill of an EOF-filled file said method climatology, n_modes 5 and the EOF fill's val_rmse (in the
    file's attributes, and n_modes on the variable); `oceandl eof` of it the same. Only the input's
    own attributes (title, institution...) are carried."""
    import netCDF4

    runner = CliRunner()
    first, out = tmp_path / "eof_filled.nc", tmp_path / "again.nc"
    res = runner.invoke(cli, ["interpolate", str(l4_outputs["input"]), "--method", "eof", "--quiet", "-o", str(first)])
    assert res.exit_code == 0, res.output
    with netCDF4.Dataset(first) as nc:
        assert {"n_modes", "val_rmse"} <= set(nc.ncattrs()) and "n_modes" in nc["analysed_sst"].ncattrs()
    res = runner.invoke(cli, [again[0], str(first), *again[1:], "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with netCDF4.Dataset(out) as nc:
        assert nc.getncattr("method") == ("eof" if again[0] == "eof" else "climatology")
        assert not {k for k in nc.ncattrs() if k.startswith("val_")} and "institution" in nc.ncattrs()
        assert "em_iter" not in nc.getncattr("options")
        if again[0] == "interpolate":
            assert "n_modes" not in nc.ncattrs()
            assert not {"n_modes", "val_rmse", "val_n"} & set(nc["analysed_sst"].ncattrs())
        else:
            assert nc.getncattr("n_modes") == 2


def test_no_attribute_names_a_variable_the_output_lacks(tmp_path):
    """The input's time_bnds/lat_bnds (CF 7.1) and crs (5.6) are not written, yet the outputs kept
    'bounds: time_bnds', 'bounds: lat_bnds' and 'grid_mapping: crs' naming them: CF checkers report
    each as an error, and tools that follow them (CDO, xarray decode_coords='all') fail or warn."""
    import netCDF4

    from fakes import write_l4_sst

    src = tmp_path / "l4b.nc"
    write_l4_sst(src)
    with netCDF4.Dataset(src, "r+") as nc:
        nc.createDimension("nv", 2)
        for name, dim in (("time_bnds", "time"), ("lat_bnds", "lat")):
            b = nc.createVariable(name, nc[dim].dtype, (dim, "nv"))
            b[:] = np.stack([nc[dim][:], nc[dim][:]], axis=1)
            nc[dim].bounds = name
        crs = nc.createVariable("crs", "i4")
        crs.grid_mapping_name = "latitude_longitude"
        nc["analysed_sst"].grid_mapping = "crs"
        nc["analysed_sst"].cell_methods = "time: mean"
    for argv, out in _outputs_of(src, tmp_path):
        with netCDF4.Dataset(out) as nc:
            refs = {(n, k): nc[n].getncattr(k) for n in nc.variables for k in ("bounds", "grid_mapping")
                    if k in nc[n].ncattrs()}
            assert refs == {}, argv
            if argv[0] == "interpolate":  # what names nothing is kept
                assert nc["analysed_sst"].cell_methods == "time: mean"


def test_eof_of_a_packed_int16_file_is_written_in_float32(l4_outputs):
    """`oceandl eof` of a packed int16 (float32 once decoded) field wrote float64 EOFs, PCs and maps."""
    import netCDF4

    with netCDF4.Dataset(l4_outputs["eof"]) as nc:
        assert [nc[n].dtype for n in ("eofs", "pcs", "mean", "weights")] == [np.float32] * 4


@pytest.mark.parametrize("kind", ["memory", "chunks"])
def test_filled_l4_field_keeps_its_cf_attributes_and_says_what_it_is(l4_outputs, kind):
    """The filled analysed_sst keeps units/standard_name/long_name, says in `comment` that its gaps
    are a reconstruction (the --chunks output did not) and names its flag (ancillary_variables);
    its sigma is its standard_error."""
    import netCDF4

    with netCDF4.Dataset(l4_outputs[kind]) as nc:
        v = nc["analysed_sst"]
        assert (v.units, v.standard_name, v.long_name) == ("kelvin", "sea_surface_foundation_temperature",
                                                           "analysed sea surface temperature")
        assert v.dtype == np.float32 and np.isnan(v._FillValue)
        assert v.comment.startswith("gaps (missing_flag 1) filled by the oceandl climatology method")
        assert v.ancillary_variables.split() == ["missing_flag", "sigma"]
        assert nc["sigma"].units == "kelvin" and nc["missing_flag"].flag_meanings.split()[1] == "originally_missing"
        # CF Appendix C: the field's uncertainty, by its standard name's modifier (sigma had no standard_name)
        assert nc["sigma"].standard_name == "sea_surface_foundation_temperature standard_error"


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=-1,lat=8,lon=10"]])
def test_min_quality_masks_ghrsst_quality_levels(runner, tmp_path, chunks):
    """GHRSST L3: retrievals of quality_level 2 (cloud edges, 3 K too cold here) were fitted as
    observations and kept in the output; `--min-quality 4` makes them gaps, filled (l3q.nc of
    24 x 28 px, 15 % of the observations contaminated, DINEOF: RMSE at the true gaps 0.747 K,
    bias -0.465 K, before; 0.096 K and 0.006 K with --min-quality 4)."""
    import netCDF4

    from fakes import write_l4_sst

    src = tmp_path / "l3.nc"
    write_l4_sst(src)
    rng = np.random.default_rng(1)
    with netCDF4.Dataset(src, "r+") as nc:
        v = nc["analysed_sst"]
        clean = v[:]
        bad = ~np.ma.getmaskarray(clean) & (rng.random(clean.shape) < 0.15)
        v[:] = np.ma.where(bad, clean - 3.0, clean)
        q = nc.createVariable("quality_level", "i1", ("time", "lat", "lon"), fill_value=np.int8(-128))
        q.setncatts({"flag_values": np.arange(6, dtype="i1"), "flag_meanings": "no_data bad_data worst_quality "
                     "low_quality acceptable_quality best_quality"})
        q[:] = np.where(np.ma.getmaskarray(clean), 0, np.where(bad, 2, 5)).astype("i1")
    clean = clean.filled(np.nan)
    for flag, want in (([], "kept"), (["--min-quality", "4"], "filled")):
        out = tmp_path / f"{want}.nc"
        res = runner.invoke(cli, ["interpolate", str(src), "--method", "climatology", "--quiet", *chunks, *flag,
                                  "-o", str(out)])
        assert res.exit_code == 0, res.output
        with xr.open_dataset(out) as ds:
            err = ds["analysed_sst"].values[bad] - clean[bad]
            gap = ds["missing_flag"].values[bad]
        if want == "kept":
            assert np.all(gap != 1) and np.mean(err[gap == 0]) < -2.9  # 2: withheld, the method's value
        else:
            assert np.all(gap == 1) and abs(np.mean(err)) < 0.5, np.mean(err)
    if not chunks:  # `train interpolator` too: the contaminated values no longer pull the stored means down
        from safetensors.numpy import load_file

        means = []
        for flag in ([], ["--min-quality", "4"]):
            ckpt = tmp_path / f"ckpt{len(flag)}"
            res = runner.invoke(cli, ["train", "interpolator", str(src), "--set", "steps=1", "--set", "patch=8",
                                      "--device", "cpu", "--quiet", *flag, "-o", str(ckpt)])
            assert res.exit_code == 0, res.output
            means.append(np.nanmean(load_file(ckpt / "normalisation.safetensors")["mean"]))
        assert means[1] - means[0] > 0.3, means  # 15 % of the values 3 K too cold: 0.45 K
    # no quality_level, or --demo: one line, exit 2, nothing written
    write_l4_sst(tmp_path / "l4.nc")
    for argv, says in ((["interpolate", str(tmp_path / "l4.nc"), *chunks], "needs a 'quality_level' variable beside it"),
                       (["interpolate", "--demo"], "--demo has none"),
                       (["train", "interpolator", "--demo"], "--demo has none")):
        res = runner.invoke(cli, [*argv, "--min-quality", "4", "--quiet", "-o", str(tmp_path / "x.nc")])
        assert res.exit_code == 2 and says in res.output.strip().splitlines()[-1], res.output
        assert not (tmp_path / "x.nc").exists() and not list(tmp_path.glob(".*part"))


def test_min_quality_from_python(tmp_path):
    """The Dataset accessor and open_field take min_quality as the CLI takes --min-quality."""
    from fakes import write_l4_sst
    from oceandl.io import open_field

    write_l4_sst(tmp_path / "l4.nc")
    with xr.open_dataset(tmp_path / "l4.nc") as ds:
        ds = ds.assign(quality_level=xr.where(ds["analysed_sst"].isnull(), 0, 5).astype("i1"))
        ds["quality_level"][:, 5, 6] = 3  # one pixel of low quality on every day
        assert np.isnan(open_field(ds, "analysed_sst", min_quality=4).sel(lat=ds.lat[5], lon=ds.lon[6])).all()
        filled = ds.oceandl.interpolate(method="climatology", var="analysed_sst", min_quality=4)
        assert np.isnan(filled[:, 5, 6]).all()  # never observed at quality >= 4: land to the fill
        assert np.isfinite(ds.oceandl.interpolate(method="climatology", var="analysed_sst")[:, 5, 6]).all()
        with pytest.raises(InputError, match="min_quality must be an integer"):
            open_field(ds, "analysed_sst", min_quality="4")
