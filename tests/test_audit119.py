"""Audit 119: the units plausibility check reads every common spelling of Celsius and kelvin ("C",
"deg C", "degrees C"...), refuses degrees Fahrenheit with the conversion to make, tests each file of a
many-file series on its own (one kelvin file labelled degC among degC files), catches a polar degC field
said to be kelvin when its standard_name says a temperature, and runs in ``EOF.project`` too."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error

import oceandl
from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp.base import check_units_values, pixel_means
from oceandl.interp.eof import eof
from oceandl.interp.neural import _unit
from oceandl.io import open_field


def _check(name, values, units, **attrs):
    da = xr.DataArray(np.asarray(values, np.float32), dims=("time", "lat", "lon"), name=name,
                      attrs={"units": units, **attrs})
    check_units_values("f.nc: variable", da, units, pixel_means(da.values))


def _series(folder, n=6, kelvin_file=None, units="degC"):
    """``n`` one-day files of a synthetic SST in degC (8 x 8), file ``kelvin_file`` in kelvin, all
    labelled ``units``."""
    folder.mkdir(exist_ok=True)
    ds = synthetic_sst(seed=3, n_time=n, ny=8, nx=8)
    for i in range(n):
        d = ds.isel(time=[i])
        v = d.sst.values + (273.15 if i == kelvin_file else 0.0)
        xr.Dataset({"sst": (d.sst.dims, v.astype("f4"), {"units": units})}, coords=d.coords).to_netcdf(
            folder / f"d{i:03d}.nc")
    return folder


# ------------------------------------------------------------ 1. spellings of Celsius, kelvin, Fahrenheit
@pytest.mark.parametrize("units", ["C", "c", "deg C", "degrees C", "degree C", "deg. C", "Celsius", "degrees_Celsius",
                                   "°C", "° C", "℃", "degrees Centigrade", "degree_celcius"])
def test_common_celsius_spellings_are_degc(units):
    """A bare "C" (coulomb in udunits; Celsius in SST files) and "degrees C" were not read as degC: a
    kelvin field said "C" was not refused, and a series of "C" and "K" files was not told apart."""
    assert _unit(units) == "degC"
    with pytest.raises(InputError, match=r"values look like kelvin \(median 290"):
        _check("sst", 290 + np.zeros((3, 2, 2)), units)


@pytest.mark.parametrize("units", ["K", "kelvin", "degrees K", "deg K", "°K"])
def test_kelvin_spellings_are_k(units):
    assert _unit(units) == "K"


@pytest.mark.parametrize("units", ["m s-1", "1", "degrees_north", "psu"])
def test_other_units_are_left_as_they_are(units):
    assert _unit(units) == units


@pytest.mark.parametrize("units", ["degF", "F", "deg F", "degrees_Fahrenheit", "fahrenheit", "°F"])
def test_fahrenheit_is_read_and_kelvin_said_fahrenheit_refused(units):
    """degF was an unknown spelling: kelvin values said degF (288 "degF") went through. A field in degF
    is filled in degF (the fill is linear in any unit); above 150 degF (hotter than any sea or air) it
    is kelvin."""
    assert _unit(units) == "degF"
    _check("sst", 68 + np.zeros((3, 2, 2)), units)
    _check("sst", 28.5 + np.zeros((3, 2, 2)), units, standard_name="sea_surface_temperature")
    with pytest.raises(InputError, match=r"f\.nc: variable: its units say .* but its values look like kelvin "
                                         r"\(median 288, above 150\).*units,sst,o,c,K"):
        _check("sst", 288 + np.zeros((3, 2, 2)), units)


@pytest.mark.parametrize("method", ["eof", "climatology"])
def test_fahrenheit_fills_in_fahrenheit_from_the_cli_and_python(tmp_path, method):
    """From the CLI and Python: a degF field is filled, in degF, as the same field in degC converted
    (the fill is linear); kelvin values said degF: exit 2, one line naming the file, nothing written."""
    ds = synthetic_sst(seed=3, n_time=8, ny=8, nx=8)
    c, f, bad = tmp_path / "c.nc", tmp_path / "f.nc", tmp_path / "bad.nc"
    for path, v, u in ((c, ds.sst.values, "degC"), (f, ds.sst.values * 1.8 + 32, "degF"),
                       (bad, ds.sst.values + 273.15, "degF")):
        xr.Dataset({"sst": (ds.sst.dims, v.astype("f8"), {"units": u})}, coords=ds.coords).to_netcdf(path)
    outs = {}
    for path in (c, f):
        outs[path] = tmp_path / f"o_{path.stem}.nc"
        res = CliRunner().invoke(cli, ["interpolate", str(path), "--method", method, "-o", str(outs[path]),
                                       "--quiet"])
        assert res.exit_code == 0, res.output
    with xr.open_dataset(outs[c]) as oc, xr.open_dataset(outs[f]) as of:
        assert of["sst"].attrs["units"] == "degF"
        np.testing.assert_allclose(of["sst"].values, oc["sst"].values * 1.8 + 32, atol=1e-3, equal_nan=True)
    with open_field(f) as da_f, open_field(c) as da_c:
        filled_f, filled_c = oceandl.interpolate(da_f, method), oceandl.interpolate(da_c, method)
    assert filled_f.attrs["units"] == "degF"
    np.testing.assert_allclose(filled_f.values, filled_c.values * 1.8 + 32, atol=1e-3, equal_nan=True)
    out = tmp_path / "o_bad.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(bad), "--method", method, "-o", str(out), "--quiet"])
    assert_cli_error(res, 2, str(bad), "units say 'degF'", "look like kelvin (median 2", "above 150")
    assert not out.exists()


def test_a_series_of_degf_and_degc_files_is_refused(tmp_path):
    folder = _series(tmp_path / "s", n=4)
    with xr.open_dataset(folder / "d002.nc") as f:
        ds = f.load()
    ds.sst.values = ds.sst.values * 1.8 + 32
    ds.sst.attrs["units"] = "degF"
    ds.to_netcdf(folder / "d002.nc")
    with pytest.raises(InputError, match=r"variable 'sst' is in different units in its files: 'degC' .*'degF'"):
        open_field(folder)


def test_a_kelvin_field_said_c_is_refused_from_the_cli(tmp_path):
    ds = synthetic_sst(seed=3, n_time=8, ny=8, nx=8)
    path = tmp_path / "c.nc"
    xr.Dataset({"sst": (ds.sst.dims, (ds.sst.values + 273.15).astype("f4"), {"units": "C"})},
               coords=ds.coords).to_netcdf(path)
    out = tmp_path / "o.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(path), "-o", str(out), "--quiet"])
    assert_cli_error(res, 2, str(path), "units say 'C'", "look like kelvin", "ncatted -a units,sst,o,c,K")
    assert not out.exists()


def test_a_series_of_c_and_k_files_is_refused(tmp_path):
    """"C" and "K" were two different unknown spellings, not degC against kelvin."""
    folder = _series(tmp_path / "s", n=4, kelvin_file=2, units="C")
    ds = xr.open_dataset(folder / "d002.nc")
    ds.sst.attrs["units"] = "K"
    ds.load().to_netcdf(folder / "d002b.nc")
    ds.close()
    (folder / "d002.nc").unlink()
    with pytest.raises(InputError, match=r"variable 'sst' is in different units in its files: 'C'"):
        open_field(folder)


# ------------------------------------------------------------ 2. each file of a series tested on its own
@pytest.mark.parametrize("extra", [[], ["--chunks", "time=2"], ["--method", "eof"], ["--method", "eof", "--chunks",
                                                                                      "time=2"]],
                         ids=["memory", "chunks", "eof", "eof-chunks"])
def test_one_kelvin_file_said_degc_in_a_series_is_named(tmp_path, extra):
    """Five degC files and one in kelvin, all "degC": the series' median (15 degC) passed, and the
    kelvin day was filled as 288 degC. Now refused, the file named, exit 2, nothing written."""
    folder = _series(tmp_path / "s", n=6, kelvin_file=3)
    out = tmp_path / "o.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(folder), "-o", str(out), "--quiet", *extra])
    line = assert_cli_error(res, 2, str(folder / "d003.nc"), "units say 'degC'", "look like kelvin (median 2",
                            f"ncatted -a units,sst,o,c,K {folder / 'd003.nc'}")
    assert "d000" not in line
    assert not out.exists()


def test_one_kelvin_file_in_a_series_is_named_by_eof_and_fit_on(tmp_path):
    folder = _series(tmp_path / "s", n=6, kelvin_file=4)
    good = _series(tmp_path / "g", n=6)
    out = tmp_path / "e.nc"
    res = CliRunner().invoke(cli, ["eof", str(folder), "-o", str(out)])
    assert_cli_error(res, 2, str(folder / "d004.nc"), "look like kelvin")
    assert not out.exists()
    for extra in ([], ["--chunks", "time=2"]):
        res = CliRunner().invoke(cli, ["interpolate", str(folder), "--method", "eof", "--fit-on", str(good),
                                       "-o", str(out), "--quiet", *extra])
        assert_cli_error(res, 2, str(folder / "d004.nc"), "look like kelvin")
        assert not out.exists()
    with open_field(folder) as da, pytest.raises(InputError, match=r"file .*d004\.nc: its units say 'degC'"):
        oceandl.interpolate(da)


def test_a_good_series_fills(tmp_path):
    folder = _series(tmp_path / "s", n=6)
    out = tmp_path / "o.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(folder), "-o", str(out), "--quiet", "--chunks", "time=2"])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out) as f:
        assert 5 < float(np.nanmedian(f["sst"].values)) < 35


# ------------------------------------------------------------ 3. a polar degC field said kelvin
def _polar(name="sst", **attrs):
    rng = np.random.default_rng(0)
    v = rng.uniform(-1.8, 4.0, (6, 4, 4))
    return name, v, attrs


def test_a_polar_degc_field_said_kelvin_is_refused_by_its_standard_name():
    """-1.8 to 4 "K": below the 5 K floor, taken as a departure and filled as kelvin. Its standard_name
    sea_surface_temperature says a temperature, in kelvin above 271."""
    name, v, _ = _polar()
    with pytest.raises(InputError, match=r"units say 'K' but its values look like degC \(median 1\.\d+, below 100, "
                                         r"while its standard_name 'sea_surface_temperature' is a temperature"):
        _check(name, v, "K", standard_name="sea_surface_temperature")
    with pytest.raises(InputError, match="sea_water_temperature"):
        _check("temp", v, "kelvin", standard_name="sea_water_temperature")


@pytest.mark.parametrize("name, attrs", [("sst", {}),  # no standard_name: a departure's values, not refused
                                         ("sst_anomaly", {"standard_name": "sea_surface_temperature"}),
                                         ("ssta", {"standard_name": "sea_surface_temperature"}),
                                         ("sst", {"standard_name": "sea_surface_temperature_anomaly"}),
                                         ("sst_sd", {"standard_name": "sea_surface_temperature standard_error"}),
                                         ("sst", {"standard_name": "sea_surface_temperature",
                                                  "long_name": "SST departure from climatology"})])
def test_departures_with_small_kelvin_values_stay_accepted(name, attrs):
    _, v, _ = _polar()
    _check(name, v - 1.0, "K", **attrs)


def test_a_real_kelvin_polar_field_is_accepted():
    _, v, _ = _polar()
    _check("sst", v + 273.15, "K", standard_name="sea_surface_temperature")


# ------------------------------------------------------------ 4. EOF.project
def test_eof_project_refuses_kelvin_said_degc_and_converts_kelvin():
    """project() did not test units: 288 "degC" was projected as 288 degC (pseudo-PCs hundreds of
    standard deviations off); a field in kelvin on a degC analysis was too."""
    ds = synthetic_sst(seed=3, n_time=12, ny=8, nx=8)
    f = ds.sst.where(np.isfinite(ds.sst), 15.0)
    f.attrs["units"] = "degC"
    e = eof(f, n_modes=2)
    p0 = e.project(f).values
    bad = f + 273.15
    bad.attrs["units"] = "degC"
    with pytest.raises(InputError, match=r"eof\.project: variable 'sst': its units say 'degC' but its values look "
                                         r"like kelvin \(median 28\d"):
        e.project(bad)
    k = f + 273.15
    k.attrs["units"] = "K"
    np.testing.assert_allclose(e.project(k).values, p0, atol=1e-3 * np.abs(p0).max())
    f_ = f * 1.8 + 32
    f_.attrs["units"] = "degF"  # another unit than the analysis': projected as degC before
    with pytest.raises(InputError, match=r"eof\.project: the field is in units 'degF', the analysis in 'degC'.*"
                                         r"convert it first"):
        e.project(f_)


def test_one_kelvin_file_of_a_covariate_series_is_named(tmp_path):
    """--aux FOLDER:VAR, a covariate series with one kelvin file said degC: tested per file too."""
    field = _series(tmp_path / "g", n=6)
    cov = _series(tmp_path / "c", n=6, kelvin_file=3)
    out = tmp_path / "o.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(field), "--method", "dineof", "--aux", f"{cov}:sst",
                                   "-o", str(out), "--quiet"])
    assert_cli_error(res, 2, "--aux", str(cov / "d003.nc"), "look like kelvin")
    assert not out.exists()


def test_one_degc_file_said_kelvin_in_a_kelvin_series_is_named(tmp_path):
    """The reverse: five kelvin files and one in degC, all "K" (series median 288 K): refused, the file
    named. A series of kelvin anomaly files (values near 0 "K") stays accepted."""
    folder = tmp_path / "s"
    folder.mkdir()
    ds = synthetic_sst(seed=3, n_time=6, ny=8, nx=8)
    for i in range(6):
        d = ds.isel(time=[i])
        v = d.sst.values + (0.0 if i == 2 else 273.15)
        xr.Dataset({"sst": (d.sst.dims, v.astype("f4"), {"units": "K"})}, coords=d.coords).to_netcdf(
            folder / f"d{i:03d}.nc")
    with open_field(folder) as da, pytest.raises(InputError, match=r"file .*d002\.nc: its units say 'K' but its "
                                                                      r"values look like degC \(median 1\d\."):
        oceandl.interpolate(da, "climatology")
    anom = tmp_path / "a"
    anom.mkdir()
    for i in range(6):
        d = ds.isel(time=[i])
        v = d.sst.values - np.nanmean(ds.sst.values)
        xr.Dataset({"sst": (d.sst.dims, v.astype("f4"), {"units": "K"})}, coords=d.coords).to_netcdf(
            anom / f"d{i:03d}.nc")
    with open_field(anom) as da:
        assert np.isfinite(oceandl.interpolate(da, "climatology").values).any()
