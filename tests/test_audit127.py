"""Audit 127: small CLI defects. ``eof``/``interpolate``/``synth sst`` refuse an output name that is
not .nc (``eof -o x.txt`` wrote netCDF under a .txt name), ``info`` describes image folders and
stacks and says when a checkpoint's weights are unreadable, and ``--split`` is named in its errors."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst


@pytest.fixture
def sst_file(tmp_path):
    path = tmp_path / "sst.nc"
    synthetic_sst(seed=0, n_time=4, ny=8, nx=8).to_netcdf(path)
    return path


@pytest.mark.parametrize("args, out, words", [
    (["eof", "{src}", "-n", "2"], "x.txt", ["x.txt", "must end in .nc"]),
    (["eof", "{src}", "-n", "2"], "x", ["must end in .nc"]),
    (["interpolate", "{src}", "--method", "climatology", "--quiet"], "x.txt", ["x.txt", "must end in .nc", "FOLDER/"]),
    (["synth", "sst", "--n", "2", "--size", "8"], "s.csv", ["s.csv", "must end in .nc", "--daily"]),
])
def test_netcdf_writers_refuse_another_suffix(tmp_path, sst_file, args, out, words):
    """Refused before any work, with nothing written."""
    args = [a.format(src=sst_file) for a in args]
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / out)])
    assert_cli_error(res, 2, *words)
    assert not (tmp_path / out).exists()


def test_netcdf_writers_still_take_nc_and_folders(tmp_path, sst_file):
    res = CliRunner().invoke(cli, ["eof", str(sst_file), "-n", "2", "-o", str(tmp_path / "e.NC4")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["interpolate", str(sst_file), "--method", "climatology", "--quiet",
                                   "-o", f"{tmp_path / 'filled'}/"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "filled").iterdir()] == ["sst.nc"]
