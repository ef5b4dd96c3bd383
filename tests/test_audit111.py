"""Audit 111: units that lie (a degC field holding kelvin, and the reverse) refused in one line;
``train interpolator --init`` recorded by its absolute path; a fitted period's covariate that covers
part of its days warned of."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst


@pytest.fixture(scope="module")
def sst_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sst") / "cube.nc"
    synthetic_sst(n_time=12, ny=16, nx=16, cloud_cover=0.5, seed=3).to_netcdf(path)
    return path


def test_train_interpolator_init_given_relative_is_recorded_absolute(sst_file, tmp_path, monkeypatch):
    """`--init first` was recorded as given in training.init.checkpoint and training.options.init:
    read from another folder, the checkpoint named a folder relative to wherever the run had been."""
    runner = CliRunner()
    small = [str(sst_file), "--var", "sst", "--batch-size", "4", "--quiet", "--device", "cpu", "--set", "patch=16",
             "--set", "steps=1"]
    first = tmp_path / "first"
    res = runner.invoke(cli, ["train", "interpolator", *small, "--set", "model_options={\"width\": 4, \"depth\": 1}",
                              "-o", str(first)])
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["train", "interpolator", *small, "--init", "first", "-o", "tuned"])
    assert res.exit_code == 0, res.output
    assert "1 steps from first on" in res.output  # the summary names it as given
    training = json.loads((tmp_path / "tuned" / "config.json").read_text())["training"]
    assert training["init"]["checkpoint"] == str(first.resolve()) and training["init"]["checkpoint"].startswith("/")
    assert training["options"]["init"] == str(first.resolve())
