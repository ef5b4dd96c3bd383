"""Adversarial audit of the newest gap-filling features (kelvin against degC fits, covariates of a
fit, per-file outputs): each test failed before its fix."""
from __future__ import annotations

import numpy as np
import pytest

from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import get_method


@pytest.fixture(scope="module")
def cube():
    return synthetic_sst(n_time=20, ny=16, nx=16, seed=0, microwave=True)


def _in_kelvin(da, units):
    k = da + 273.15
    k.attrs = dict(da.attrs)
    if units is None:
        k.attrs.pop("units", None)
    else:
        k.attrs["units"] = units
    return k.rename(da.name)


@pytest.mark.parametrize("spelling", ["degK", "deg_K", "degree_K", "degrees_K", "degreeK", "°K"])
def test_udunits_spellings_of_kelvin_fill_as_kelvin(cube, spelling):
    # UDUNITS/CF spell kelvin 'degK' too: it was refused as "other units (convert it first)"
    sst = cube["sst"]
    fit = get_method("eof")(device="cpu").fit(sst.isel(time=slice(0, 15)))
    new = sst.isel(time=slice(15, 20))
    a = fit.transform(new)
    with pytest.warns(UserWarning, match="the fit's means converted"):
        b = fit.transform(_in_kelvin(new, spelling))
    assert b["sst"].attrs["units"] == spelling
    np.testing.assert_allclose(b["sst"].values - 273.15, a["sst"].values, atol=2e-4, equal_nan=True)


def test_dineof_fit_refuses_a_kelvin_covariate_without_units(cube):
    # a covariate in kelvin without units was normalised as degC anomalies of 273: the fill came out
    # some 90 degC off (withheld RMSE 93.6 on the 24 x 24 synthetic cube), without a word
    from oceandl.interp.dineof import DINEOF

    past, new = cube.isel(time=slice(0, 15)), cube.isel(time=slice(15, 20))
    fit = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=past["sst_mw"])
    a = fit.transform(new["sst"], aux={"sst_mw": new["sst_mw"]})
    with pytest.raises(InputError, match=r"aux 'sst_mw'.*fitted scales.*other units\?"):
        fit.transform(new["sst"], aux={"sst_mw": _in_kelvin(new["sst_mw"], None)})
    # said: converted, the same fill
    b = fit.transform(new["sst"], aux={"sst_mw": _in_kelvin(new["sst_mw"], "degK")})
    np.testing.assert_allclose(b["sst"].values, a["sst"].values, atol=1e-4, equal_nan=True)
    # and the reverse: a fit of the covariate in kelvin (no units) takes a degC one (no units) no more
    back = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=_in_kelvin(past["sst_mw"], None))
    nounits = new["sst_mw"].copy()
    nounits.attrs.pop("units", None)
    with pytest.raises(InputError, match="aux 'sst_mw'"):
        back.transform(new["sst"], aux={"sst_mw": nounits})


@pytest.mark.parametrize("lazy", [False, True])
def test_a_global_covariate_wraps_round_the_dateline(lazy):
    # ERA5-like 0.25 degree covariate on 0..359.75 beside a global 0.05 degree field on
    # -179.975..179.975: the field's columns past 179.875 lay between the covariate's last column
    # (179.75) and its first (-180 = 180), and were left missing (2 columns of NaN at the dateline)
    import xarray as xr

    from oceandl.io import to_field_grid

    lat = np.arange(-0.975, 1, 0.05)
    lon_f = np.round(np.arange(-179.975, 180, 0.05), 3)
    field = xr.DataArray(np.zeros((2, lat.size, lon_f.size), np.float32), dims=("time", "lat", "lon"), name="sst",
                         coords={"time": np.array(["2020-01-01", "2020-01-02"], "datetime64[ns]"), "lat": lat,
                                 "lon": lon_f})
    lat_c, lon_c = np.arange(-1.0, 1.01, 0.25), np.arange(0, 360, 0.25)
    wave = 10 * np.sin(np.deg2rad(lon_c))
    cov = xr.DataArray(np.broadcast_to(wave, (2, lat_c.size, lon_c.size)).astype(np.float32), name="u10",
                       dims=("time", "lat", "lon"), coords={"time": field["time"].values, "lat": lat_c, "lon": lon_c})
    out, done = to_field_grid(cov, field, chunks={"time": -1, "lat": 20, "lon": 1000} if lazy else None)
    values = np.asarray(out.values)
    assert np.isfinite(values).all(), lon_f[np.isnan(values).any(axis=(0, 1))]
    # linear between 179.75 and 180 (the covariate's 0), as anywhere else between two of its columns
    want = np.interp(lon_f % 360, np.append(lon_c, 360.0), np.append(wave, wave[0]))
    np.testing.assert_allclose(values[0, 5], want, atol=1e-5)
    assert done == ["its 9 x 1440 grid interpolated (linear) to the field's 40 x 7200"]


_EXTENTS = {"geospatial_lat_min": -90.0, "geospatial_lat_max": 90.0, "geospatial_lon_min": -180.0,
            "geospatial_lon_max": 180.0, "southernmost_latitude": -90.0, "northernmost_latitude": 90.0,
            "westernmost_longitude": -180.0, "easternmost_longitude": 180.0,
            "geospatial_bounds": "POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))",
            "time_coverage_start": "20200101T000000Z", "time_coverage_end": "20200106T235959Z",
            "time_coverage_duration": "P6D"}


def _global_file(path):
    import xarray as xr

    rng = np.random.default_rng(0)
    lat, lon = np.arange(-7.5, 8, 1.0), np.arange(-179.5, 180, 1.0)
    sst = 20 + rng.standard_normal((6, lat.size, lon.size)).astype(np.float32)
    sst[:, ::3, ::4] = np.nan
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), sst, {"units": "degC"})},
                    coords={"time": np.arange("2020-01-01", "2020-01-07", dtype="datetime64[D]").astype("datetime64[ns]"),
                            "lat": ("lat", lat, {"units": "degrees_north"}),
                            "lon": ("lon", lon, {"units": "degrees_east"})}, attrs=dict(_EXTENTS))
    ds.to_netcdf(path)


@pytest.mark.parametrize("bbox, lon_min, lon_max", [("-20,-3,10,4", -20.0, 10.0), ("170,-3,-170,4", 170.0, -170.0)])
def test_a_box_and_period_of_a_file_say_their_own_extent_and_time_coverage(tmp_path, bbox, lon_min, lon_max):
    # --bbox of a global file kept its geospatial_lat_min -90... and --dates its whole time coverage
    import xarray as xr
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    _global_file(tmp_path / "g.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "g.nc"), "--method", "climatology", f"--bbox={bbox}",
                                   "--dates", "2020-01-02:2020-01-04", "--withhold", "0", "--quiet",
                                   "-o", str(tmp_path / "o.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "o.nc") as ds:
        a = ds.attrs
        assert ds.sizes["lat"] == 7 and ds.sizes["time"] == 3
    # the cells of the box (centres -2.5..3.5, half a degree each side)
    assert (a["geospatial_lat_min"], a["geospatial_lat_max"]) == (-3.0, 4.0)
    assert (a["southernmost_latitude"], a["northernmost_latitude"]) == (-3.0, 4.0)
    assert (a["geospatial_lon_min"], a["geospatial_lon_max"]) == (lon_min, lon_max)
    assert (a["westernmost_longitude"], a["easternmost_longitude"]) == (lon_min, lon_max)
    # the whole file's polygon and its days 1 and 5-6 are no longer what the file holds
    for k in ("geospatial_bounds", "time_coverage_start", "time_coverage_end", "time_coverage_duration"):
        assert k not in a, k


def test_dates_of_a_series_say_the_kept_files_coverage(tmp_path):
    # a folder of daily L3 files filled --dates 2020-01-02:2020-01-04 said the series' 01 to 06
    import xarray as xr
    from click.testing import CliRunner
    from fakes import write_l3_days

    from oceandl.cli.main import cli

    write_l3_days(tmp_path / "days", nt=6, ny=8, nx=10)
    (tmp_path / "multi").mkdir()
    write_l3_days(tmp_path / "spare", nt=6, ny=8, nx=10, whole=tmp_path / "multi" / "six_days.nc")
    run = CliRunner().invoke
    common = ["--method", "climatology", "--dates", "2020-01-02:2020-01-04", "--withhold", "0", "--quiet"]
    res = run(cli, ["interpolate", str(tmp_path / "days"), *common, "-o", str(tmp_path / "one.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "one.nc") as ds:
        assert ds.sizes["time"] == 3
        assert (ds.attrs["time_coverage_start"], ds.attrs["time_coverage_end"]) == ("2020-01-02T00:00:00Z",
                                                                                    "2020-01-04T23:59:59Z")
    # a file per input file, of part of a six-day file: its coverage of six days is not written
    res = run(cli, ["interpolate", str(tmp_path / "multi"), *common, "-o", str(tmp_path / "out") + "/"])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "out" / "six_days.nc") as ds:
        assert ds.sizes["time"] == 3
        for k in ("time_coverage_start", "time_coverage_end", "time_coverage_duration"):
            assert k not in ds.attrs, k
        assert ds.attrs["title"] == "Test L3 SST"


def test_a_days_covariate_for_another_day_is_refused_saying_why(cube):
    # a covariate file of 2020-01-18 beside the field's 2020-01-16 was refused as "static (a (lat, lon)
    # map, the same every day)": the user had given a daily covariate, for the wrong day
    from oceandl.interp.dineof import DINEOF

    past = cube.isel(time=slice(0, 15))
    fit = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=past["sst_mw"])
    day = cube["sst"].isel(time=[15])
    wrong = cube["sst_mw"].isel(time=[17])
    with pytest.raises(InputError, match=r"is static .*more than a day from the field's one.*on the field's days"):
        fit.transform(day, aux={"sst_mw": wrong})
    out = fit.transform(day, aux={"sst_mw": cube["sst_mw"].isel(time=[15])})  # its own day: taken
    assert np.isfinite(out["sst"].values).sum() > np.isfinite(day.values).sum()


def test_a_network_with_a_file_covariate_by_set_checkpoint_and_without_it(tmp_path):
    # a network trained with --aux depth.nc:depth, filling a file without depth: "give a file that
    # has it" alone, where the depth is in its own file and --aux FILE:VAR gives it
    import xarray as xr
    from click.testing import CliRunner
    from fakes import assert_cli_error

    from oceandl.cli.main import cli

    cube = synthetic_sst(n_time=3, ny=16, nx=16, seed=0)
    cube[["sst"]].to_netcdf(tmp_path / "sst.nc")
    depth = xr.DataArray(np.linspace(10, 3000, 256, dtype=np.float32).reshape(16, 16), dims=("lat", "lon"),
                         coords={"lat": cube["lat"], "lon": cube["lon"]}, name="depth", attrs={"units": "m"})
    depth.to_dataset().to_netcdf(tmp_path / "depth.nc")
    run = CliRunner().invoke
    res = run(cli, ["train", "interpolator", str(tmp_path / "sst.nc"), "--method", "unet", "--aux",
                    f"{tmp_path / 'depth.nc'}:depth", "--set", "steps=1", "--set", "patch=16", "--set",
                    'model_options={"width": 8, "depth": 2}', "--batch-size", "4", "--device", "cpu", "--quiet",
                    "-o", str(tmp_path / "net")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["interpolate", str(tmp_path / "sst.nc"), "--model", str(tmp_path / "net"), "--device", "cpu",
                    "--quiet", "-o", str(tmp_path / "out.nc")])
    assert_cli_error(res, 2, "'depth' not found", "or --aux FILE:VAR")
    assert not (tmp_path / "out.nc").exists()
    # --set checkpoint=NET (the option --model sets) takes the network's method too, as --set init= does
    # for train interpolator; it was refused by the default dineof ("unknown option 'checkpoint'")
    aux = ["--aux", f"{tmp_path / 'depth.nc'}:depth", "--device", "cpu", "--quiet"]
    res = run(cli, ["interpolate", str(tmp_path / "sst.nc"), "--set", f"checkpoint={tmp_path / 'net'}", *aux,
                    "-o", str(tmp_path / "out.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "out.nc") as ds:
        assert ds.attrs["method"] == "unet" and np.isfinite(ds["sst"].values).sum() > 0
    res = run(cli, ["interpolate", str(tmp_path / "sst.nc"), "--set", f"checkpoint={tmp_path / 'net'}", "--model",
                    str(tmp_path / "net"), *aux, "-o", str(tmp_path / "twice.nc")])
    assert_cli_error(res, 2, "--model or --set checkpoint")


def test_integer_extents_of_a_cut_are_written_unrounded():
    # geospatial_lat_min = -90 stored as an integer: the box's edge 30.25 was not to be cut to 30
    from oceandl.io import _cut_attrs

    whole = {"time": None, "lat": np.arange(-89.75, 90, 0.5), "lon": np.arange(0.25, 360, 0.5)}
    cut = {"time": None, "lat": np.arange(30.5, 32, 0.5), "lon": np.arange(10.25, 12, 0.5)}
    out = _cut_attrs({"geospatial_lat_min": -90, "geospatial_lat_max": np.float32(90), "geospatial_lon_min": 0,
                      "title": "t"}, whole, cut)
    assert out == {"geospatial_lat_min": 30.25, "geospatial_lat_max": np.float32(31.75), "geospatial_lon_min": 10.0,
                   "title": "t"}
    assert isinstance(out["geospatial_lat_max"], np.float32)


def test_info_of_a_saved_fit_says_its_units(cube, tmp_path):
    # `oceandl info FIT` said nothing of the units fitted in, which --fit-on now converts kelvin and degC by
    from oceandl.describe import describe

    sst = cube["sst"].isel(time=slice(0, 15))
    get_method("climatology")(device="cpu").fit(_in_kelvin(sst, "kelvin")).save(tmp_path / "fitK")
    assert describe(tmp_path / "fitK")["units"] == "kelvin (fills a field in kelvin or degC, in the field's units)"
    odd = sst.copy()
    odd.attrs["units"] = "degree_Fahrenheit"
    get_method("climatology")(device="cpu").fit(odd).save(tmp_path / "fitF")
    assert describe(tmp_path / "fitF")["units"] == "degree_Fahrenheit"


def test_one_step_is_static_in_model_calendars_too():
    # a (one-step) bathymetry dated 1990 beside one day of a noleap model run was taken as that day's
    # covariate, then refused as on none of the field's days; datetime64 dates were already a map
    import cftime

    from oceandl.io import one_step_is_static

    def noleap(*ymd):
        return np.array([cftime.DatetimeNoLeap(*ymd)], dtype=object)

    day = noleap(2020, 2, 5)
    assert one_step_is_static(noleap(1990, 1, 1), day, 1)
    assert one_step_is_static(np.array(["1990-01-01"], "datetime64[ns]"), day, 1)
    assert not one_step_is_static(noleap(2020, 2, 5), day, 1)  # the field's day: a covariate of it
    assert not one_step_is_static(np.array(["2020-02-05T12"], "datetime64[ns]"), day, 1)
    assert one_step_is_static(np.array(["1990-01-01"], "datetime64[ns]"), np.array(["2020-02-05"], "datetime64[ns]"), 1)
    assert not one_step_is_static(None, day, 1) and one_step_is_static(None, None, 3)


def test_one_file_into_a_folder_says_one_file(tmp_path, cube):
    import xarray as xr
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    cube[["sst"]].isel(time=slice(0, 6)).to_netcdf(tmp_path / "a.nc")
    run = CliRunner().invoke
    res = run(cli, ["interpolate", str(tmp_path / "a.nc"), "--method", "climatology", "-o", f"{tmp_path / 'out'}/"])
    assert res.exit_code == 0, res.output
    assert "out/ (1 file)" in res.stdout, res.stdout  # was "(1 files)"
    res = run(cli, ["interpolate", str(tmp_path / "a.nc"), "--method", "climatology", "-o", str(tmp_path / "b.nc")])
    with xr.open_dataset(tmp_path / "out" / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        np.testing.assert_array_equal(a["sst"].values, b["sst"].values)


def test_a_fit_of_a_box_filling_a_larger_file_names_the_box(cube):
    # a fit of a box (train interpolator --bbox) filling the next global file: "regrid it first", where
    # the field only needed cutting to the fit's box, which the message did not give
    import re

    import xarray as xr

    from oceandl.io import open_field

    sst = cube["sst"]
    fit = get_method("climatology")(device="cpu").fit(sst.isel(time=slice(0, 15), lat=slice(4, 12), lon=slice(2, 10)))
    new = sst.isel(time=slice(15, 20))
    with pytest.raises(InputError, match=r"the fit's is a box .*cut the field to it first \(oceandl interpolate "
                                         r"--bbox=") as err:
        fit.transform(new)
    assert "regrid" not in str(err.value)
    w, s, e, n = (float(v) for v in re.search(r"--bbox=([^)]+)\)", str(err.value)).group(1).split(","))
    box = open_field(xr.Dataset({"sst": new}), "sst", bbox=(w, s, e, n))  # the box it names: the fit's grid
    np.testing.assert_allclose(box["lat"].values, sst["lat"].values[4:12])
    np.testing.assert_allclose(box["lon"].values, sst["lon"].values[2:10])
    # a field on another grid of as many points is still told to regrid
    with pytest.raises(InputError, match=r"not the fitted field's.*regrid it first"):
        fit.transform(new.isel(lat=slice(0, 8), lon=slice(0, 8)))
