"""An output never replaces a file the run reads, even with ``--overwrite``: the field's files, the
``--fit-on`` file, and now the files of ``--aux FILE:VAR``, ``--fit-aux FILE:VAR`` and ``--mask
FILE:VAR``. ``interpolate m.nc --aux mw.nc:sst_mw -o mw.nc --overwrite`` replaced the covariate's
file with the fill (exit 0), in memory and under ``--chunks``; so did ``-o FOLDER/`` holding a
covariate file named as an input day file."""
from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    ds = synthetic_sst(n_time=6, ny=16, nx=16, seed=0, microwave=True)
    ds[["sst", "land"]].to_netcdf(root / "ir.nc")
    ds[["sst_mw", "land"]].to_netcdf(root / "mw.nc")
    days = root / "days"
    days.mkdir()
    for i in range(6):
        ds[["sst"]].isel(time=[i]).to_netcdf(days / f"sst_{i}.nc")
    return root


@pytest.mark.parametrize("extra", [[], ["--chunks", "time=3"]])
@pytest.mark.parametrize("option", ["--aux mw.nc:sst_mw", "--mask mw.nc:land"])
def test_an_output_onto_a_covariate_or_mask_file_is_refused(files, option, extra):
    flag, entry = option.split()
    before = _md5(files / "mw.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(files / "ir.nc"), "--var", "sst", "--method", "dineof",
                                   flag, str(files / entry), *extra, "--quiet", "--overwrite",
                                   "-o", str(files / "mw.nc")])
    assert_cli_error(res, 2, "mw.nc", "replace the input")
    assert _md5(files / "mw.nc") == before


@pytest.mark.parametrize("extra", [[], ["--chunks", "time=3"]])
def test_a_folder_output_never_replaces_a_covariate_file_named_as_a_day(files, tmp_path, extra):
    out = tmp_path / "out"
    out.mkdir()
    cov = out / "sst_2.nc"  # the covariate's file, named as the third day's
    cov.write_bytes((files / "mw.nc").read_bytes())
    before = _md5(cov)
    res = CliRunner().invoke(cli, ["interpolate", str(files / "days"), "--var", "sst", "--method", "climatology",
                                   "--mask", f"{cov}:land", *extra, "--quiet", "--overwrite", "-o", f"{out}/"])
    assert_cli_error(res, 2, "sst_2.nc")
    assert _md5(cov) == before
    assert sorted(p.name for p in out.iterdir()) == ["sst_2.nc"]
