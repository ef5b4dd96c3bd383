"""A network checkpoint names its method: ``--model``, ``--init`` and ``--resume`` take it when
``--method`` is left at its default (as ``--fit-on`` takes a saved fit's), and ``--method`` given
as another is refused naming both.

``interpolate sst.nc --model resae_sst`` was refused with "method 'dineof' fits the file itself and
takes no checkpoint" (the command's default method), and ``train interpolator --init resae_sst``
with "a checkpoint of method 'resae', not 'unet'"."""
from __future__ import annotations

import numpy as np
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst

SMALL = ["--set", "steps=2", "--set", "patch=16", "--set", 'model_options={"width": 8, "depth": 2}', "--batch-size", "4",
         "--device", "cpu", "--quiet"]


def test_model_and_init_take_the_checkpoints_method(tmp_path):
    src = tmp_path / "sst.nc"
    synthetic_sst(n_time=12, ny=16, nx=16, seed=0).to_netcdf(src)
    run = CliRunner().invoke
    res = run(cli, ["train", "interpolator", str(src), "--var", "sst", "--method", "resae", *SMALL,
                    "-o", str(tmp_path / "resae")])
    assert res.exit_code == 0, res.output
    # --model alone: the checkpoint's resae, the same fill as with --method resae
    fills = []
    for extra, out in (([], "a.nc"), (["--method", "resae"], "b.nc")):
        res = run(cli, ["interpolate", str(src), "--var", "sst", "--model", str(tmp_path / "resae"), *extra,
                        "--device", "cpu", "--quiet", "-o", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        with xr.open_dataset(tmp_path / out) as ds:
            assert ds.attrs["method"] == "resae"
            fills.append(ds["sst"].values)
    np.testing.assert_array_equal(fills[0], fills[1])
    assert np.isfinite(fills[0]).sum() > 0
    # --method another: refused naming both, nothing written
    res = run(cli, ["interpolate", str(src), "--var", "sst", "--model", str(tmp_path / "resae"), "--method", "unet",
                    "--device", "cpu", "--quiet", "-o", str(tmp_path / "c.nc")])
    assert_cli_error(res, 2, "'resae'", "'unet'")
    assert not (tmp_path / "c.nc").exists()
    # --init alone fine-tunes the resae (the default unet was refused)
    res = run(cli, ["train", "interpolator", str(src), "--var", "sst", "--init", str(tmp_path / "resae"),
                    *SMALL[:4], *SMALL[6:], "-o", str(tmp_path / "tuned")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["info", str(tmp_path / "tuned"), "--json"])
    assert res.exit_code == 0 and '"resae"' in res.output


def test_resume_takes_the_interrupted_runs_method(tmp_path, monkeypatch):
    from oceandl.interp.neural import NeuralInterpolator

    src = tmp_path / "sst.nc"
    synthetic_sst(n_time=12, ny=16, nx=16, seed=0).to_netcdf(src)
    run = CliRunner().invoke
    args = ["train", "interpolator", str(src), "--var", "sst", "--set", "steps=4", "--set", "checkpoint_every=1",
            *SMALL[2:], "-o", str(tmp_path / "cut")]
    with monkeypatch.context() as mp:
        mp.setattr(NeuralInterpolator, "_stop_after_step", 2)
        assert run(cli, [*args, "--method", "resae"]).exit_code != 0
    res = run(cli, [*args, "--resume"])  # no --method: the default unet was refused against the run's resae
    assert res.exit_code == 0, res.output
    assert "resae" in res.output and "resumed at step 2" in res.output


def test_init_from_a_saved_fit_says_it_is_a_fit_not_a_network(tmp_path):
    """``train interpolator --init FIT`` (a saved dineof fit) was told "a checkpoint of task
    'interpolation-fitted' ... (train one with `oceandl train interpolator`)", though FIT was made by that
    command: it now says FIT is a saved fit, what fills with it (--fit-on) and what trains a network."""
    src = tmp_path / "sst.nc"
    synthetic_sst(n_time=12, ny=16, nx=16, seed=0).to_netcdf(src)
    run = CliRunner().invoke
    res = run(cli, ["train", "interpolator", str(src), "--var", "sst", "--method", "dineof", "--quiet",
                    "-o", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["train", "interpolator", str(src), "--var", "sst", "--init", str(tmp_path / "fit"), *SMALL[:4],
                    *SMALL[6:], "-o", str(tmp_path / "net")])
    assert_cli_error(res, 2, "a saved dineof fit, not a network's checkpoint", f"--fit-on {tmp_path / 'fit'}")
    assert not (tmp_path / "net").exists()
