"""Audit 97: a file per input file, static covariates and a saved fit's box, broken as an ocean
scientist would (each test failed before its fix)."""
from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import write_l3_days

from oceandl.cli.main import cli

VAR = "sea_surface_temperature"


def _run(*argv):
    return CliRunner().invoke(cli, [str(a) for a in argv], prog_name="oceandl")


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit97")
    write_l3_days(root / "days", nt=6, ny=10, nx=12)
    return root / "days"


def test_each_output_file_has_its_own_inputs_attributes(days, tmp_path):
    """A series of L3 files from two satellites: each filled file says its own input's platform (and
    carries a comment only its input has); it said the first file's platform on every day."""
    names = sorted(p.name for p in days.iterdir())
    src = tmp_path / "days"
    src.mkdir()
    for k, name in enumerate(names):
        with xr.open_dataset(days / name, mask_and_scale=False) as ds:
            ds = ds.load()
        ds.attrs["platform"] = ["NOAA-20", "S-NPP"][k % 2]
        if k == 1:
            ds.attrs["comment"] = "sensor anomaly"
        ds.to_netcdf(src / name)
    out = tmp_path / "out"
    res = _run("interpolate", src, "--var", VAR, "--method", "climatology", "--quiet", "-o", f"{out}/")
    assert res.exit_code == 0, res.output
    for k, name in enumerate(names):
        with netCDF4.Dataset(out / name) as nc:
            attrs = {a: nc.getncattr(a) for a in nc.ncattrs()}
        assert attrs["platform"] == ["NOAA-20", "S-NPP"][k % 2], (name, attrs["platform"])
        assert ("comment" in attrs) == (k == 1)
        assert attrs["title"] == "Test L3 SST" and attrs["method"] == "climatology"
