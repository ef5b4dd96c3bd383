"""Audit 117: the units plausibility check refuses no kelvin spread or uncertainty (``sst_sd``, ``ssta``,
an NEdT) as degC; a bad input found inside an atomic write block on a nearly full disk stays bad input
(exit 2), not "the disk is full"."""
from __future__ import annotations

import os
from collections import namedtuple

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl import utils
from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError, OceanDLError
from oceandl.interp.base import check_units_values, pixel_means

_usage = namedtuple("usage", "total used free")


def _written(exc):
    """``exc`` as the chunked writer raises it: through utils.writing, marked as a write's failure."""
    try:
        with utils.writing("f.nc"):
            raise exc
    except OceanDLError as err:
        return err


def _check(name, values, units, **attrs):
    da = xr.DataArray(np.asarray(values, np.float32), dims=("time", "lat", "lon"), name=name,
                      attrs={"units": units, **attrs})
    check_units_values("f.nc: variable", da, units, pixel_means(da.values))


# ------------------------------------------------------------ 1. kelvin departures are not refused as degC
@pytest.mark.parametrize("name, level", [("sst_sd", 0.4), ("ssta", 0.2), ("sst_spread", 0.4), ("sigma", 0.4),
                                         ("nedt", 0.1), ("sst_rmsd", 0.5), ("diurnal_amplitude", 1.5),
                                         ("cool_skin", -0.2), ("band1", 0.3), ("sst_annual_range", 9.0)])
def test_a_kelvin_spread_or_anomaly_is_not_refused_as_degc(name, level):
    """GHRSST-style uncertainties and spreads in kelvin (0.1 to 2 K) whose names lacked the departure
    words (sd, ssta, spread, sigma, NEdT...) were refused: "its units say 'K' but its values look like
    degC (median 0.4, below 100)". Below 5 K any name is a departure; above it, the names said."""
    rng = np.random.default_rng(0)
    _check(name, level + 0.05 * rng.standard_normal((4, 3, 3)), "K")


@pytest.mark.parametrize("units", ["K", "kelvin", "Kelvin", "degrees K"])
def test_a_degc_field_said_kelvin_is_still_refused(units):
    """The check still catches what it was made for: 15 "K" (degC values), 290 "degC" (kelvin values)."""
    rng = np.random.default_rng(1)
    with pytest.raises(InputError, match=r"its units say .* but its values look like degC \(median 15"):
        _check("sst", 15 + 0.1 * rng.standard_normal((4, 3, 3)), units)
    with pytest.raises(InputError, match=r"values look like kelvin \(median 290"):
        _check("sst", 290 + 0.1 * rng.standard_normal((4, 3, 3)), "degree_Celsius")


def test_a_packed_ghrsst_field_with_a_kelvin_sd_covariate_fills(tmp_path):
    """An int16-packed analysed_sst in kelvin (most of it under sea ice, 271.35 K) with a covariate
    sst_sd in K (0.4): refused as degC before, in memory and with --chunks; now filled, exit 0."""
    ds = synthetic_sst(seed=3, n_time=12, ny=8, nx=8)
    k = ds.sst.values + 273.15
    k[:, :6] = np.where(np.isfinite(k[:, :6]), 271.35, np.nan)
    sd = (0.4 + 0.05 * np.random.default_rng(2).random(k.shape)).astype("f4")
    xr.Dataset({"analysed_sst": (ds.sst.dims, k.astype("f4"), {"units": "kelvin"}),
                "sst_sd": (ds.sst.dims, sd, {"units": "K"})}, coords=ds.coords).to_netcdf(
        tmp_path / "g.nc", encoding={"analysed_sst": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15,
                                                      "_FillValue": np.int16(-32768)}})
    for extra in ([], ["--chunks", "time=4"]):
        out = tmp_path / f"o{len(extra)}.nc"
        res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "g.nc"), "--var", "analysed_sst", "--method",
                                       "dineof", "--aux", "sst_sd", "--quiet", *extra, "-o", str(out)])
        assert res.exit_code == 0, res.output
        with xr.open_dataset(out) as f:
            assert 260 < float(np.nanmedian(f["analysed_sst"].values)) < 310


# ------------------------------------------------------------ 2. bad input on a nearly full disk stays bad input
def test_an_input_error_in_an_atomic_block_on_a_full_disk_is_not_the_disk(tmp_path, monkeypatch):
    """_say_full_disk relabelled every OceanDLError raised inside atomic_path(s) while under 1 MiB was
    free: a missing variable or units that lie, found while writing (the chunked fill checks its units
    there), became "...; the disk of DIR is full (0 bytes free)", exit 1. Only a write's failure (an
    OSError, netCDF's RuntimeError, or an error raised from one) is said to be the disk's now."""
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: _usage(1 << 30, 1 << 30, 0))
    for exc in (InputError("f.nc: no variable 'sst'"), FileNotFoundError(2, "No such file", "aux.nc"),
                RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), OceanDLError("fit diverged")):
        for ctx in (utils.atomic_path(tmp_path / "f.nc"), utils.atomic_paths([tmp_path / "a.nc", tmp_path / "b.nc"])):
            with pytest.raises(type(exc)) as got:
                with ctx:
                    raise exc
            assert got.value is exc and "is full" not in str(got.value)
    # a write's failure is still said: ENOSPC, netCDF's RuntimeError raised by the writer (utils.writing; a bare
    # one may be a corrupt input's read, audit 121), and write_netcdf's InputError raised from either
    for cause in (_written(RuntimeError("NetCDF: HDF error")), OSError(28, "No space left on device")):
        wrapped = InputError("f.nc: cannot write netCDF")
        wrapped.__cause__ = cause
        wrapped.write_failure = True
        for exc in (cause, wrapped):
            with pytest.raises(OceanDLError, match=r"the disk of .* is full \(0 bytes free\)") as got:
                with utils.atomic_path(tmp_path / "f.nc"):
                    raise exc
            assert not isinstance(got.value, InputError)
    assert os.listdir(tmp_path) == []


def test_chunked_units_refusal_on_a_full_disk_is_exit_2(tmp_path, monkeypatch):
    """`interpolate --fit-on FIT --chunks` of a field whose units say degC over kelvin values, on a disk
    with 0 bytes free: exit 1, "...; the disk of DIR is full" (its units check runs in the write block);
    now exit 2 with the units message alone, and nothing written."""
    ds = synthetic_sst(seed=5, n_time=10, ny=8, nx=8)
    ds.to_netcdf(tmp_path / "c.nc")
    ds["sst"] = ds.sst + 273.15  # kelvin values, its units still degree_Celsius
    ds.to_netcdf(tmp_path / "k.nc")
    res = CliRunner().invoke(cli, ["train", "interpolator", str(tmp_path / "c.nc"), "--var", "sst", "--method",
                                   "climatology", "--quiet", "-o", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: _usage(1 << 30, 1 << 30, 0))
    out = tmp_path / "out"
    out.mkdir()
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "k.nc"), "--var", "sst", "--fit-on",
                                   str(tmp_path / "fit"), "--chunks", "time=5", "--quiet", "--withhold", "0",
                                   "-o", str(out / "f.nc")])
    line = assert_cli_error(res, 2, "its units say 'degree_Celsius' but its values look like kelvin (median 2")
    assert "is full" not in line, line
    assert os.listdir(out) == []


# ------------------------------------------------------------ 3. a folder of files in different units
@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]], ids=["memory", "chunks"])
def test_files_in_different_units_are_refused(tmp_path, chunks):
    """Five 5-day files, the last in kelvin (and said so): put together as they were, under the first
    file's degC, and filled without a word (fill median 21.7 from 15 degC and 288 K). Now refused, naming
    the files and their units; 'Celsius' beside 'degree_Celsius' is one unit and is filled."""
    ds = synthetic_sst(seed=5, n_time=25, ny=8, nx=8)
    for sub, last in (("k", ("K", 273.15)), ("c", ("Celsius", 0.0))):
        (tmp_path / sub).mkdir()
        for i in range(5):
            part = ds.isel(time=slice(5 * i, 5 * i + 5))
            if i == 4:
                part = part.assign(sst=(part.sst + last[1]).assign_attrs(units=last[0]))
            part.to_netcdf(tmp_path / sub / f"d{i}.nc")
    args = ["interpolate", "--var", "sst", "--method", "climatology", "--quiet", "--withhold", "0", *chunks]
    res = CliRunner().invoke(cli, [args[0], str(tmp_path / "k"), *args[1:], "-o", str(tmp_path / "o.nc")])
    assert_cli_error(res, 2, "variable 'sst' is in different units in its files: 'degree_Celsius' (",
                     f"'K' ({tmp_path / 'k' / 'd4.nc'})")
    assert not (tmp_path / "o.nc").exists()
    res = CliRunner().invoke(cli, [args[0], str(tmp_path / "c"), *args[1:], "-o", str(tmp_path / "o.nc")])
    assert res.exit_code == 0, res.output
    # a variable that is no temperature, spelled 'm s-1' in some files and 'm/s' in others (a product's
    # versions): not told apart, and not a reason to refuse the series
    (tmp_path / "w").mkdir()
    for i in range(5):
        part = ds[["sst"]].isel(time=slice(5 * i, 5 * i + 5))
        wind = (part.sst * 0 + 7.0).assign_attrs(units="m/s" if i == 4 else "m s-1")
        part.assign(wind=wind).to_netcdf(tmp_path / "w" / f"d{i}.nc")
    res = CliRunner().invoke(cli, [args[0], str(tmp_path / "w"), *args[1:], "-o", str(tmp_path / "w.nc")])
    assert res.exit_code == 0, res.output
