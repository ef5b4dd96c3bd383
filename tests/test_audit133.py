"""A new user's classification journey (audit133): a checkpoint given to the wrong command, MNIST
folders given to `classify`, and what each refusal says."""
from __future__ import annotations

from click.testing import CliRunner
from fakes import assert_cli_error, small_field, tiny_classifier

from oceandl.cli.main import cli


def test_interpolate_with_a_classifier_checkpoint_names_its_task(tmp_path):
    # without --method, the default dineof said it "fits the file itself and takes no checkpoint"
    # (true, and not what was wrong: the folder was a classifier's)
    tiny_classifier(tmp_path / "clf")
    small_field().to_dataset(name="sst").to_netcdf(tmp_path / "s.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "s.nc"), "--model", str(tmp_path / "clf"),
                                   "-o", str(tmp_path / "y.nc")])
    assert_cli_error(res, 2, "'classification'", "train interpolator", "classify --model")
    assert not (tmp_path / "y.nc").exists()
