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
