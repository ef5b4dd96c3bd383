"""oceandl.io: open_field on the shapes real netCDF files come in, its errors, atomic writes."""
from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oceandl.errors import InputError, OceanDLError
from oceandl.io import DIMS, find_variable, normalize_longitude, open_field, write_netcdf

NT, NY, NX = 5, 6, 8


@pytest.fixture
def values() -> np.ndarray:
    rng = np.random.default_rng(0)
    v = (15.0 + rng.standard_normal((NT, NY, NX))).astype(np.float32)
    v[1, 2, 3] = np.nan
    return v


def _coords():
    return (
        pd.date_range("2021-03-01", periods=NT, freq="D"),
        np.linspace(30.0, 35.0, NY),
        np.linspace(-60.0, -53.0, NX),
    )


def _dataset(values, name="sst", **attrs) -> xr.Dataset:
    time, lat, lon = _coords()
    return xr.Dataset(
        {name: (("time", "lat", "lon"), values, {"units": "degree_Celsius", **attrs})},
        coords={"time": time, "lat": lat, "lon": lon},
    )


def _raw_nc(path: Path, values: np.ndarray, dims=("time", "lat", "lon"), dtype="f4", fill=None, **var_attrs):
    """A netCDF file written with netCDF4 directly (no xarray encoding in the way)."""
    time, lat, lon = _coords()
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in zip(dims, values.shape):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t[:] = "days since 2021-03-01", np.arange(NT)
        la = nc.createVariable("lat", "f8", ("lat",))
        la.units, la[:] = "degrees_north", lat
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo.units, lo[:] = "degrees_east", lon
        v = nc.createVariable("sst", dtype, dims, fill_value=fill)
        v.set_auto_maskandscale(False)
        for k, a in var_attrs.items():
            v.setncattr(k, a)
        v[:] = values
    return path


def _assert_message(exc_info, *parts):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for p in parts:
        assert str(p) in msg, msg


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def test_roundtrip_through_write_netcdf(tmp_path, values):
    ds = _dataset(values, long_name="sea surface temperature")
    path = write_netcdf(ds, tmp_path / "a.nc")
    assert path == tmp_path / "a.nc"
    with xr.open_dataset(path) as back:
        assert back.sst.encoding["zlib"] is True  # float variables compressed
    da = open_field(path)
    assert da.dims == ("time", "lat", "lon") and da.name == "sst"
    assert da.dtype == np.float32
    np.testing.assert_array_equal(da.values, values)
    assert da.attrs["long_name"] == "sea surface temperature"
    np.testing.assert_array_equal(da.time.values, _coords()[0].values)
    assert da.lat.attrs["units"] == "degrees_north" and da.lon.attrs["axis"] == "X"


def test_lat_lon_as_data_variables(tmp_path, values):
    time, lat, lon = _coords()
    ds = xr.Dataset(
        {"sst": (("time", "y", "x"), values), "lat": ("y", lat), "lon": ("x", lon)},
        coords={"time": time},
    )
    path = write_netcdf(ds, tmp_path / "datavars.nc")
    with xr.open_dataset(path) as check:
        assert "lat" in check.data_vars  # the case under test
    da = open_field(path)
    np.testing.assert_allclose(da.lat.values, lat)
    np.testing.assert_allclose(da.lon.values, lon)
    np.testing.assert_array_equal(da.values, values)


def test_longitudes_0_360_become_minus180_180_sorted(tmp_path, values):
    ds = _dataset(values).assign_coords(lon=np.arange(NX) * 45.0)  # 0, 45, ..., 315
    da = open_field(write_netcdf(ds, tmp_path / "lon360.nc"))
    np.testing.assert_allclose(da.lon.values, [-135, -90, -45, 0, 45, 90, 135, 180])
    # The column at 315 E now sits at -45.
    np.testing.assert_array_equal(da.sel(lon=-45.0).values, values[:, :, 7])
    np.testing.assert_array_equal(da.sel(lon=180.0).values, values[:, :, 4])


@pytest.mark.parametrize("stored", ["0..360", "-180..180"])
def test_grid_across_the_dateline_stays_in_one_piece(tmp_path, values, stored):
    # a Pacific box 170E..200E: as -180..180 sorted, its eastern half came first, away from its
    # western half (a seam in the middle of the array for U-Net convolutions and --chunks blocks)
    east = np.linspace(170.0, 200.0, NX)
    lon = east if stored == "0..360" else np.where(east > 180.0, east - 360.0, east)
    da = open_field(write_netcdf(_dataset(values).assign_coords(lon=lon), tmp_path / "pacific.nc"))
    np.testing.assert_allclose(da.lon.values, east)
    np.testing.assert_array_equal(da.values, values)  # columns in their order, none moved
    # a grid that does not cross it keeps the -180..180 convention
    atlantic = _dataset(values).assign_coords(lon=np.linspace(290.0, 300.0, NX))
    np.testing.assert_allclose(open_field(atlantic).lon.values, np.linspace(-70.0, -60.0, NX))


def test_normalize_longitude_drops_duplicate_meridian(values):
    da = _dataset(values).sst.assign_coords(lon=np.linspace(0.0, 360.0, NX))
    out = normalize_longitude(da)
    assert out.sizes["lon"] == NX - 1 and np.all(np.diff(out.lon) > 0)
    assert out.lon.min() >= -180 and out.lon.max() <= 180


def test_fill_values_without_nan_are_masked(tmp_path, values):
    raw = np.nan_to_num(values, nan=-999.0)
    raw[0, 0, 0] = -999.0
    path = _raw_nc(tmp_path / "fill.nc", raw, fill=-999.0)
    da = open_field(path)
    assert np.isnan(da.values[0, 0, 0]) and np.isnan(da.values[1, 2, 3])
    assert np.isnan(da.values).sum() == 2 and (da.values != -999.0).all()
    # missing_value (no _FillValue) too
    path = _raw_nc(tmp_path / "missing.nc", raw, missing_value=np.float32(-999.0))
    assert np.isnan(open_field(path).values).sum() == 2


def test_fill_value_left_as_attribute_in_memory(values):
    raw = np.nan_to_num(values, nan=-999.0)
    da = _dataset(raw).sst
    da.attrs["_FillValue"] = -999.0
    out = open_field(da)
    assert np.isnan(out.values).sum() == 1 and np.isnan(out.values[1, 2, 3])
    assert "_FillValue" not in out.attrs


def test_int16_with_scale_factor_and_offset(tmp_path, values):
    packed = np.round((values - 20.0) / 0.01)
    packed = np.where(np.isnan(packed), -32768, packed).astype(np.int16)
    path = _raw_nc(
        tmp_path / "packed.nc", packed, dtype="i2", fill=np.int16(-32768),
        scale_factor=np.float32(0.01), add_offset=np.float32(20.0),
    )
    da = open_field(path)
    assert np.issubdtype(da.dtype, np.floating)
    np.testing.assert_allclose(da.values, values, atol=0.006, equal_nan=True)
    # The same packed data handed over in memory, undecoded, is decoded too.
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        assert raw.sst.dtype == np.int16
        np.testing.assert_allclose(open_field(raw.load()).values, values, atol=0.006, equal_nan=True)


@pytest.mark.parametrize("bounds", [{"valid_min": np.int16(-1000), "valid_max": np.int16(1000)},
                                    {"valid_range": np.array([-1000, 1000], np.int16)}])
def test_packed_valid_range_masks_and_is_not_carried_on(tmp_path, values, bounds):
    # GHRSST-style: int16 in kelvin, the valid range in packed units (CF 8.1): a stored value beyond
    # it is missing. It was read as data (313.15 K here), and the packed-unit bounds were copied
    # onto the float output, where readers that apply them would judge the filled values by them.
    kelvin = values + 273.15
    packed = np.round((kelvin - 293.15) / 0.01)
    packed = np.where(np.isnan(packed), -32768, packed).astype(np.int16)
    packed[0, 0, 0] = 2000  # 313.15 K: beyond valid_max
    path = _raw_nc(tmp_path / "ghrsst.nc", packed, dtype="i2", fill=np.int16(-32768), units="kelvin",
                   scale_factor=np.float32(0.01), add_offset=np.float32(293.15), **bounds)
    expected = kelvin.copy()
    expected[0, 0, 0] = np.nan
    da = open_field(path)
    np.testing.assert_allclose(da.values, expected, atol=0.006)  # NaN in the same places
    assert not set(da.attrs) & {"valid_min", "valid_max", "valid_range", "_FillValue"}
    assert da.attrs["units"] == "kelvin"
    with xr.open_dataset(path, mask_and_scale=False) as raw:  # undecoded, in memory: the same
        np.testing.assert_allclose(open_field(raw.load()).values, expected, atol=0.006)
    out = write_netcdf(da, tmp_path / "back.nc")  # what interpolate writes reads back the same
    np.testing.assert_array_equal(open_field(out).values, da.values)


def test_transposed_dims(tmp_path, values):
    path = _raw_nc(tmp_path / "transposed.nc", values.transpose(2, 1, 0), dims=("lon", "lat", "time"))
    da = open_field(path)
    assert da.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(da.values, values)


def test_other_names_and_descending_latitude(tmp_path, values):
    time, lat, lon = _coords()
    ds = xr.Dataset(
        {"temp": (("t", "latitude", "longitude"), values[:, ::-1])},
        coords={"t": time, "latitude": lat[::-1], "longitude": lon},
    )
    da = open_field(write_netcdf(ds, tmp_path / "names.nc"))
    assert da.dims == ("time", "lat", "lon") and da.name == "temp"
    np.testing.assert_allclose(da.lat.values, lat)  # sorted ascending
    np.testing.assert_array_equal(da.values, values)


def test_cf_only_detection(tmp_path, values):
    time, lat, lon = _coords()
    ds = xr.Dataset(
        {
            "noise": (("a", "b", "c"), values * 0 + np.arange(NX)),
            "foo": (("a", "b", "c"), values, {"standard_name": "sea_surface_foundation_temperature"}),
        },
        coords={
            "a": ("a", time, {"axis": "T"}),
            "b": ("b", lat, {"standard_name": "latitude"}),
            "c": ("c", lon, {"units": "degrees_east"}),
        },
    )
    da = open_field(write_netcdf(ds, tmp_path / "cf.nc"))
    assert da.name == "foo" and da.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(da.values, values)
    np.testing.assert_allclose(da.lon.values, lon)
    assert find_variable(ds) == "foo"


def test_nemo_style_2d_coordinates(values):
    time, lat, lon = _coords()
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    ds = xr.Dataset(
        {"sst": (("time_counter", "y", "x"), values)},
        coords={"time_counter": time, "nav_lat": (("y", "x"), lat2), "nav_lon": (("y", "x"), lon2)},
    )
    da = open_field(ds)
    np.testing.assert_allclose(da.lat.values, lat)
    np.testing.assert_allclose(da.lon.values, lon)
    np.testing.assert_array_equal(da.values, values)
    curvilinear = ds.assign_coords(nav_lat=(("y", "x"), lat2 + 0.1 * lon2))
    with pytest.raises(InputError, match="curvilinear") as e:
        open_field(curvilinear)
    _assert_message(e, "'sst'")


def test_explicit_coordinate_names_and_singleton_level(values):
    time, lat, lon = _coords()
    da = xr.DataArray(
        values[:, None], dims=("when", "depth", "row", "col"),
        coords={"when": time, "depth": [0.5], "row": lat, "col": lon}, name="x",
    )
    out = open_field(da, time="when", lat="row", lon="col")
    assert out.dims == ("time", "lat", "lon") and out.name == "x"
    np.testing.assert_array_equal(out.values, values)


def test_single_depth_level_file_found_without_var(tmp_path, values):
    # a model output with one depth level, no CF standard_name: the variable is found, not refused as "no 3-D"
    ds = _dataset(values, name="temp")
    ds["temp"] = ds.temp.expand_dims(depth=[0.5], axis=1)
    path = write_netcdf(ds, tmp_path / "level.nc")
    assert find_variable(ds) == "temp"
    out = open_field(path)
    assert out.dims == ("time", "lat", "lon") and out.name == "temp"
    np.testing.assert_array_equal(out.values, values)


def test_synthetic_dataset_picks_observed_sst(values):
    ds = _dataset(values, standard_name="sea_surface_temperature")
    ds["sst_true"] = ds.sst.fillna(0.0).assign_attrs(standard_name="sea_surface_temperature")
    # the choice among several fields is said, with how to take the other one
    with pytest.warns(UserWarning, match=r"using variable 'sst' \(a common SST name\); other 3-D variables: "
                                         r"sst_true \(choose with var= / --var\)"):
        assert open_field(ds).name == "sst"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice, or a single field, is not warned about
        assert open_field(ds, "sst_true").name == "sst_true"
        assert open_field(ds[["sst"]]).name == "sst"
    ds["err"] = ds.sst.assign_attrs(standard_name="")
    with pytest.warns(UserWarning, match=r"using variable 'sst' \(its standard_name is sea_surface_temperature\); "
                                         r"other 3-D variables: err"):
        assert open_field(ds.drop_vars("sst_true")).name == "sst"


def test_dask_input_stays_lazy(values):
    da = _dataset(values).sst.chunk({"time": 2})
    out = open_field(da.transpose("lon", "lat", "time"))
    assert out.chunks is not None
    np.testing.assert_array_equal(out.values, values)


def test_scalar_coordinates_stay_with_the_field(tmp_path, values):
    """A DataArray's scalar coordinates (depth=5.0, the sensor) were dropped by open_field, so the
    chunked fill of a DataArray lost what the in-memory fill keeps; a file's scalar coordinate too."""
    da = _dataset(values).sst.assign_coords(depth=5.0, sensor="MODIS")
    out = open_field(da.chunk({"time": 2}))
    assert float(out["depth"]) == 5.0 and str(out["sensor"].values) == "MODIS" and out.dims == ("time", "lat", "lon")
    path = tmp_path / "scalar.nc"
    da.to_dataset().to_netcdf(path)
    assert float(open_field(path)["depth"]) == 5.0
    from oceandl.interp.chunked import interpolate_chunked

    interpolate_chunked(da, tmp_path / "filled.nc", "climatology", chunks="time=3")
    with xr.open_dataset(tmp_path / "filled.nc") as filled:
        assert float(filled["depth"]) == 5.0 and str(filled["sensor"].values) == "MODIS"


# ------------------------------------------------------------------------------------------------
# Reading: errors
# ------------------------------------------------------------------------------------------------


def test_missing_empty_text_and_truncated_files(tmp_path, values):
    with pytest.raises(InputError, match="not found") as e:
        open_field(tmp_path / "nope.nc")
    _assert_message(e, tmp_path / "nope.nc")
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as e:
        open_field(empty)
    _assert_message(e, empty)
    for name in ("notes.txt", "fake.nc"):
        text = tmp_path / name
        text.write_text("time,lat,lon,sst\n1,2,3,4\n")
        with pytest.raises(InputError, match="not a readable netCDF") as e:
            open_field(text)
        _assert_message(e, text)
    good = write_netcdf(_dataset(values), tmp_path / "whole.nc")
    cut = tmp_path / "cut.nc"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        open_field(cut)
    _assert_message(e, cut)


def test_netcdf3_truncated_fails_on_read(tmp_path, values):
    good = tmp_path / "classic.nc"
    _dataset(values).to_netcdf(good, format="NETCDF3_CLASSIC")
    np.testing.assert_array_equal(open_field(good).values, values)
    cut = tmp_path / "classic_cut.nc"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) - 400])
    with pytest.raises(InputError) as e:
        open_field(cut)
    _assert_message(e, cut)
    pytest.importorskip("scipy")
    assert "not a readable netCDF" in str(e.value)  # the sizes are checked, not read as fill


@pytest.mark.filterwarnings("ignore:Unable to decode time axis")  # a corrupted time unit
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_any_truncation_or_corruption_is_an_input_error(tmp_path, fmt):
    """Fuzz: cut or corrupt a valid file anywhere; only InputError may come out."""
    rng = np.random.default_rng(1)
    good = tmp_path / "good.nc"
    _dataset(rng.standard_normal((NT, NY, NX)).astype("f4")).to_netcdf(good, format=fmt)
    data = good.read_bytes()
    path = tmp_path / "bad.nc"
    for cut, flip in zip(rng.integers(1, len(data), 25), rng.integers(0, len(data), 25)):
        for blob in (data[:cut], data[:flip] + bytes([data[flip] ^ 0xFF]) + data[flip + 1 :]):
            path.write_bytes(blob)
            try:
                open_field(path)
            except InputError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)


def test_misspelled_variable_suggests_close_names(tmp_path, values):
    path = write_netcdf(_dataset(values), tmp_path / "a.nc")
    with pytest.raises(InputError) as e:
        open_field(path, "SST_obs")
    _assert_message(e, path, "'SST_obs'", "did you mean 'sst'")
    with pytest.raises(InputError) as e:
        open_field(path, "chlorophyll")
    _assert_message(e, path, "'chlorophyll' not found", "variables: sst")


def test_variables_only_in_groups_are_named(tmp_path, values):
    # a netCDF-4 file with its data in a group: only the root is read, and the message was
    # 'no 3-D (time, lat, lon) variable (variables: none)'
    path = tmp_path / "grouped.nc"
    _dataset(values).to_netcdf(path, group="L3/data")
    with pytest.raises(InputError) as e:
        open_field(path)
    _assert_message(e, path, "no variables in the root group", "/L3/data", "group=")
    from oceandl.interp.chunked import open_lazy

    with pytest.raises(InputError) as e:
        open_lazy(path)
    _assert_message(e, path, "/L3/data")


def test_two_dimensional_and_no_3d_variable(tmp_path, values):
    time, lat, lon = _coords()
    ds = xr.Dataset({"mask": (("lat", "lon"), values[0])}, coords={"lat": lat, "lon": lon})
    path = write_netcdf(ds, tmp_path / "flat.nc")
    with pytest.raises(InputError) as e:
        open_field(path, "mask")
    _assert_message(e, path, "'mask'", "2 dims")
    with pytest.raises(InputError) as e:
        open_field(path)
    _assert_message(e, path, "no 3-D", "mask (lat, lon)")


def test_four_dims_is_refused(values):
    four = xr.DataArray(np.stack([values, values], axis=1), dims=("time", "depth", "lat", "lon"), name="t4")
    with pytest.raises(InputError) as e:
        open_field(four)
    _assert_message(e, "'t4'", "4 dims")


@pytest.mark.parametrize(
    "days, problem",
    [([0, 1, 3, 2, 4], "not increasing"), ([0, 1, 1, 2, 3], "duplicate")],
)
def test_bad_time_axis(tmp_path, values, days, problem):
    ds = _dataset(values).assign_coords(time=pd.Timestamp("2021-03-01") + pd.to_timedelta(days, "D"))
    path = write_netcdf(ds, tmp_path / "time.nc")
    with pytest.raises(InputError) as e:
        open_field(path)
    _assert_message(e, path, "'sst'", problem)


def test_all_nan_and_constant_fields(tmp_path, values):
    nan = write_netcdf(_dataset(np.full_like(values, np.nan)), tmp_path / "nan.nc")
    with pytest.raises(InputError) as e:
        open_field(nan)
    _assert_message(e, nan, "'sst'", "all values are missing")
    const = np.full_like(values, 7.5)
    const[0, 0, 0] = np.nan
    path = write_netcdf(_dataset(const), tmp_path / "const.nc")
    with pytest.raises(InputError) as e:
        open_field(path)
    _assert_message(e, path, "'sst'", "constant", "7.5")
    # Lazy input is checked too.
    with pytest.raises(InputError, match="all values are missing"):
        open_field(_dataset(np.full_like(values, np.nan)).sst.chunk({"time": 1}))


@pytest.mark.parametrize("role", ["lat", "lon", "time"])
def test_missing_coordinate_values_are_refused(tmp_path, values, role):
    # a NaN latitude was sorted to the end: its row of data moved to the other edge of the grid
    path = _raw_nc(tmp_path / "nan_coord.nc", values)
    with netCDF4.Dataset(path, "a") as nc:
        nc[role][2] = np.nan
    with pytest.raises(InputError) as e:
        open_field(path)
    _assert_message(e, path, "'sst'", role, "missing", "NaT at step 2" if role == "time" else "index 2")


def test_2d_coordinates_with_fill_values_over_land(values):
    # nav_lat/nav_lon with fill values (NaN once decoded) over land: a regular grid, not a curvilinear one
    time, lat, lon = _coords()
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    lat2[:2, :3] = lon2[:2, :3] = np.nan  # a land corner
    ds = xr.Dataset({"sst": (("time_counter", "y", "x"), values)},
                    coords={"time_counter": time, "nav_lat": (("y", "x"), lat2), "nav_lon": (("y", "x"), lon2)})
    da = open_field(ds)
    np.testing.assert_allclose(da.lat.values, lat)
    np.testing.assert_allclose(da.lon.values, lon)
    ds["nav_lon"][:, 0] = np.nan  # no longitude at all: refused, not placed
    with pytest.raises(InputError, match="lon coordinate has .* missing"):
        open_field(ds)


@pytest.mark.parametrize("dim, attrs, what", [("mode", {}, "EOF mode"), ("depth", {}, "vertical"),
                                              ("level_no", {"positive": "down"}, "vertical")])
def test_leftover_dim_that_is_not_time_is_refused(values, dim, attrs, what):
    # the one dim left over was taken as time whatever it was: `interpolate --var eofs` on an
    # `oceandl eof` output filled its modes as days, with exit 0
    _, lat, lon = _coords()
    da = xr.DataArray(values, dims=(dim, "lat", "lon"), name="eofs",
                      coords={dim: (dim, np.arange(1.0, NT + 1), attrs), "lat": lat, "lon": lon})
    with pytest.raises(InputError) as e:
        open_field(da)
    _assert_message(e, "'eofs'", f"dim '{dim}'", what, "not time", f"time='{dim}'")
    # named as time by the caller, it is read as time; any other name is still taken as time
    assert open_field(da, time=dim).sizes["time"] == NT
    day = da.rename({dim: "day"}).assign_coords(day=np.arange(1.0, NT + 1))
    assert open_field(day).sizes["time"] == NT


def test_unrecognisable_dims(values):
    """Dims neither named nor coordinated as time, lat, lon take those roles in their order, as
    interpolate() reads an array (they were refused here): silently for xarray's dim_0, dim_1, dim_2
    (a bare array, (time, lat, lon) as documented), with a warning naming the reading otherwise."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        da = open_field(xr.DataArray(values, name="blob"))
    assert da.dims == ("time", "lat", "lon") and da.encoding["source_grid"].dims == {
        "time": "dim_0", "lat": "dim_1", "lon": "dim_2"}
    np.testing.assert_array_equal(da.values, values)
    with pytest.warns(UserWarning, match=r"'blob': dims read by position: a as time, b as lat, c as lon; rename"):
        da = open_field(xr.DataArray(values, name="blob", dims=("a", "b", "c")))
    np.testing.assert_array_equal(da.values, values)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def test_existing_file_is_kept_without_overwrite(tmp_path, values):
    path = tmp_path / "out.nc"
    path.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists") as e:
        write_netcdf(_dataset(values), path)
    _assert_message(e, path)
    assert path.read_bytes() == b"precious"
    write_netcdf(_dataset(values), path, overwrite=True)
    np.testing.assert_array_equal(open_field(path).values, values)


@pytest.mark.parametrize("existing", [False, True])
def test_failure_mid_write_leaves_no_partial_file(tmp_path, values, monkeypatch, existing):
    path = tmp_path / "out.nc"
    if existing:
        path.write_bytes(b"old")

    def broken(self, target, *args, **kwargs):
        Path(target).write_bytes(b"CDF\x01 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    # an I/O failure, exit 1 (an InputError, exit 2, until audit 124)
    with pytest.raises(OceanDLError, match="disk full") as e:
        write_netcdf(_dataset(values), path, overwrite=True)
    assert not isinstance(e.value, InputError)
    _assert_message(e, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.nc"] if existing else [])
    if existing:
        assert path.read_bytes() == b"old"


def test_write_dataarray_attrs_and_encoding(tmp_path, values):
    da = _dataset(values).sst.assign_attrs(options={"rank": 3}, fitted=True, note=None)
    path = write_netcdf(da, tmp_path / "da.nc", encoding={"sst": {"complevel": 9}})
    with xr.open_dataset(path) as back:
        assert back.sst.encoding["complevel"] == 9 and back.sst.encoding["zlib"] is True
        assert back.sst.attrs["fitted"] == 1
        assert back.sst.attrs["options"] == '{"rank": 3}'
        assert "note" not in back.sst.attrs
    assert da.attrs["fitted"] is True  # the caller's object is untouched
    with pytest.raises(InputError, match="folder"):
        write_netcdf(da, tmp_path / "missing_dir" / "x.nc")


def test_complevel_zero_writes_uncompressed_floats_with_the_same_values(tmp_path, values):
    import netCDF4

    ds = _dataset(values)
    plain = write_netcdf(ds, tmp_path / "c0.nc", complevel=0)
    packed = write_netcdf(ds, tmp_path / "c4.nc")
    with netCDF4.Dataset(plain) as a, netCDF4.Dataset(packed) as b:
        assert a["sst"].filters()["zlib"] is False
        assert b["sst"].filters()["zlib"] is True and b["sst"].filters()["complevel"] == 4
    # the int8 flag of a filled field too: it was left uncompressed, 1 byte a pixel
    flagged = ds.assign(missing_flag=ds["sst"].isnull().astype(np.int8))
    with netCDF4.Dataset(write_netcdf(flagged, tmp_path / "f4.nc")) as b:
        assert b["missing_flag"].filters()["zlib"] is True and b["missing_flag"].filters()["complevel"] == 4
    with netCDF4.Dataset(write_netcdf(flagged, tmp_path / "f0.nc", complevel=0)) as a:
        assert a["missing_flag"].filters()["zlib"] is False
    with xr.open_dataset(plain) as a, xr.open_dataset(packed) as b:
        xr.testing.assert_identical(a, b)
    for bad in (10, -1, 2.5, True, "4"):
        with pytest.raises(InputError, match="complevel"):
            write_netcdf(ds, tmp_path / "bad.nc", complevel=bad)
    assert not (tmp_path / "bad.nc").exists()


def test_time_cubes_are_chunked_one_day_per_chunk(tmp_path):
    """write_netcdf left the chunks to netCDF-C, which cut a fixed-size (64, 256, 256) cube into
    (32, 128, 128) chunks: reading one day (ncview, Panoply, a daily analysis) decompressed 32 days.
    A compressed variable with a time axis (by name, or axis T) and 2 others is now chunked 1 along
    time and whole fields up to 4 MiB; the rest is left as it was."""
    import netCDF4

    from oceandl.io import day_chunks

    cube = np.zeros((64, 256, 256), dtype=np.float32)
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), cube), "flat": (("lat", "lon"), cube[0]),
                     "moved": (("lon", "lat", "t"), cube.T)},
                    coords={"t": ("t", np.arange(64), {"axis": "T"})})
    path = write_netcdf(ds, tmp_path / "cube.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc["sst"].chunking() == [1, 256, 256]
        assert nc["moved"].chunking() == [256, 256, 1]
        assert nc["flat"].chunking() != [1, 256, 256]
    with netCDF4.Dataset(write_netcdf(ds, tmp_path / "c0.nc", complevel=0)) as nc:
        # uncompressed: one day per chunk too (a record dim has no contiguous storage), the layout a
        # contiguous cube had
        assert nc["sst"].chunking() == [1, 256, 256] and nc["sst"].filters()["zlib"] is False
    # a global 1/24 degree day is 149 MB: cut in 4 MiB or smaller pieces, along the longest axis first
    big = xr.Dataset({"sst": (("time", "lat", "lon"), np.broadcast_to(np.float32(0), (2, 4320, 8640)))})
    assert day_chunks(big, "sst") == (1, 540, 1080)


@pytest.fixture
def product(tmp_path) -> Path:
    """A file laid out like many products: (time, depth=1, latitude, longitude), latitude descending
    in float32, longitudes 0..360 for a box across the Greenwich meridian (stored 0..30 then 330..360)."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=12, ny=24, nx=32, seed=1, lon_range=(-24.0, 24.0))
    ds = ds[["sst"]].expand_dims(depth=[0.5], axis=1).isel(lat=slice(None, None, -1))
    ds = ds.rename(lat="latitude", lon="longitude")
    ds = ds.assign_coords(longitude=np.mod(ds.longitude.values, 360.0)).sortby("longitude")
    ds = ds.assign_coords(latitude=ds.latitude.astype(np.float32))
    ds["latitude"].attrs = {"units": "degrees_north", "long_name": "latitude (as the product says)"}
    path = tmp_path / "product.nc"
    ds.to_netcdf(path)
    return path


def _fill_in_memory_and_chunked(path: Path, tmp_path: Path) -> dict[str, Path]:
    """``oceandl interpolate --method climatology`` of ``path``, in memory and with ``--chunks``."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    outs = {}
    for tag, extra in (("memory", []), ("chunks", ["--chunks", "time=-1,lat=8,lon=16"])):
        outs[tag] = tmp_path / f"{tag}.nc"
        res = CliRunner().invoke(cli, ["interpolate", str(path), "--method", "climatology", "--withhold", "0",
                                       "--quiet", *extra, "-o", str(outs[tag])])
        assert res.exit_code == 0, res.output
    return outs


def test_time_is_the_unlimited_record_dimension_of_every_output(product, tmp_path):
    """The input's unlimited time (the record dimension of daily products) came out fixed-size from
    interpolate (in memory and --chunks), eof and synth, so ncrcat could not append outputs. Now time
    is unlimited in all of them (a day can be appended), with the chunks they had: one day per chunk
    for the fields, PCs whole (netCDF-C's default on a record dim would be one row per chunk)."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    unlimited = tmp_path / "unlimited.nc"
    with xr.open_dataset(product) as ds:
        ds.load().to_netcdf(unlimited, unlimited_dims=["time"])
    outs = {**_fill_in_memory_and_chunked(unlimited, tmp_path), "eof": tmp_path / "eof.nc",
            "synth": tmp_path / "synth.nc"}
    runner = CliRunner()
    assert runner.invoke(cli, ["eof", str(unlimited), "-n", "2", "-o", str(outs["eof"])]).exit_code == 0
    res = runner.invoke(cli, ["synth", "sst", "--n", "5", "--size", "16", "--quiet", "-o", str(outs["synth"])])
    assert res.exit_code == 0, res.output
    chunks = {"memory": [1, 24, 32], "chunks": [1, 8, 16], "synth": [1, 16, 16]}  # --chunks: its blocks
    for tag, path in outs.items():
        with netCDF4.Dataset(path, "a") as nc:
            assert nc.dimensions["time"].isunlimited(), tag
            n = len(nc.dimensions["time"])
            if tag == "eof":
                assert nc["pcs"].chunking() == [n, 2]
                continue
            v = nc["sst"]
            assert v.filters()["zlib"] is True and v.filters()["complevel"] == 4, tag
            assert v.chunking() == chunks[tag], tag
            v[n] = np.zeros(v.shape[1:], v.dtype)  # ncrcat-like: a day appended along the record dim
            assert len(nc.dimensions["time"]) == n + 1


def test_results_are_written_on_the_input_grid(product, tmp_path):
    """Files were written on oceandl's clean grid (dims lat/lon, latitude ascending, longitudes in
    -180..180, the depth level gone): `filled - observed` in xarray broadcast to 6-D or aligned
    on half the longitudes. Now the input's dims, order, coordinates and depth come back, in
    memory, with --chunks (the same file) and for eof; the methods still see the clean grid."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli
    from oceandl.io import source_grid, to_source_grid

    inp = xr.open_dataset(product)
    obs = inp["sst"].isel(depth=0)
    da = open_field(product)  # the clean grid, for the methods
    assert da.dims == DIMS and da.indexes["lat"].is_monotonic_increasing and float(da.coords["depth"]) == 0.5
    assert da.lon.min() < 0 and da.indexes["lon"].is_monotonic_increasing
    back = to_source_grid(da.to_dataset(), source_grid(da))
    xr.testing.assert_equal(back["sst"].drop_vars("depth"), obs.drop_vars("depth"))
    assert back["latitude"].dtype == np.float32 and back["latitude"].attrs == inp["latitude"].attrs

    runner = CliRunner()
    outs = _fill_in_memory_and_chunked(product, tmp_path)
    for tag, path in outs.items():
        with xr.open_dataset(path) as out:
            assert out["sst"].dims == ("time", "latitude", "longitude"), tag
            for c in ("latitude", "longitude", "time"):
                xr.testing.assert_identical(out[c].variable, inp[c].variable)
            assert float(out["depth"]) == 0.5 and set(out["missing_flag"].dims) == set(out["sst"].dims)
            diff = out["sst"] - obs
            assert diff.dims == ("time", "latitude", "longitude")
            seen = np.isfinite(obs.values)
            np.testing.assert_array_equal(diff.values[seen], 0.0)  # observed pixels kept, where they were
            ocean = seen.any(axis=0)
            assert np.isfinite(out["sst"].values[:, ocean]).all() and np.isnan(out["sst"].values[:, ~ocean]).all()
    with xr.open_dataset(outs["memory"]) as a, xr.open_dataset(outs["chunks"]) as b:
        np.testing.assert_array_equal(a["sst"].values, b["sst"].values)
        np.testing.assert_array_equal(a["missing_flag"].values, b["missing_flag"].values)

    eofs = tmp_path / "eofs.nc"
    res = runner.invoke(cli, ["eof", outs["memory"].as_posix(), "-n", "2", "-o", str(eofs)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(eofs) as e:
        assert e["eofs"].dims == ("mode", "latitude", "longitude")
        np.testing.assert_array_equal(e["longitude"].values, inp["longitude"].values)


def test_results_keep_the_files_dim_order(product, tmp_path):
    """A file stored (longitude, latitude, depth, time), as some MATLAB/Fortran-written products are:
    results came back (time, latitude, longitude), so a tool reading by position (MATLAB's ncread)
    saw another layout than its input's. Now the file's order comes back, in memory, with --chunks
    (the netCDF variable's dims and chunks too) and for eof."""
    import netCDF4
    from click.testing import CliRunner

    from oceandl.cli.main import cli
    from oceandl.io import source_grid, to_source_grid

    inp = xr.open_dataset(product).transpose("longitude", "latitude", "depth", "time")
    path = tmp_path / "lonlat.nc"
    inp.to_netcdf(path)
    obs = inp["sst"].isel(depth=0)
    da = open_field(path)
    assert da.dims == DIMS and source_grid(da).order == ("lon", "lat", "time") and not source_grid(da).is_clean
    back = to_source_grid(da, source_grid(da))
    assert back.dims == ("longitude", "latitude", "time")
    xr.testing.assert_equal(back.drop_vars("depth"), obs.drop_vars("depth"))
    runner = CliRunner()
    outs = _fill_in_memory_and_chunked(path, tmp_path)
    for tag, out_path in outs.items():
        with netCDF4.Dataset(out_path) as nc:
            for n in ("sst", "missing_flag"):
                assert nc[n].dimensions == ("longitude", "latitude", "time"), (tag, n)
            if tag == "chunks":
                assert nc["sst"].chunking() == [16, 8, 1]  # a day's block of 8 rows x 16 columns, transposed
        with xr.open_dataset(out_path) as out:
            seen = np.isfinite(obs.values)
            np.testing.assert_array_equal(out["sst"].values[seen], obs.values[seen])
            assert np.isfinite(out["sst"].values[seen.any(axis=-1)]).all()
    with xr.open_dataset(outs["memory"]) as a, xr.open_dataset(outs["chunks"]) as b:
        np.testing.assert_array_equal(a["sst"].values, b["sst"].values)
        np.testing.assert_array_equal(a["missing_flag"].values, b["missing_flag"].values)
    eofs = tmp_path / "eofs.nc"
    res = runner.invoke(cli, ["eof", str(path), "-n", "2", "-o", str(eofs)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(eofs) as e:
        assert e["eofs"].dims == ("mode", "longitude", "latitude")


def test_2d_coordinates_come_back_on_the_result(values):
    """A NEMO-style field (time_counter, y, x) with nav_lat/nav_lon: the result has its dims and
    2-D coordinates back, latitude rows in the file's (descending) order."""
    from oceandl.io import source_grid, to_source_grid

    time, lat, lon = _coords()
    lat2, lon2 = np.meshgrid(lat[::-1], lon, indexing="ij")
    ds = xr.Dataset({"sst": (("time_counter", "y", "x"), values)},
                    coords={"time_counter": time, "nav_lat": (("y", "x"), lat2), "nav_lon": (("y", "x"), lon2)})
    da = open_field(ds)
    np.testing.assert_array_equal(da.values, values[:, ::-1])
    back = to_source_grid(da.to_dataset(name="sst"), source_grid(da))
    assert back["sst"].dims == ("time_counter", "y", "x") and set(back.coords) == {"time_counter", "nav_lat", "nav_lon"}
    np.testing.assert_array_equal(back["sst"].values, values)
    np.testing.assert_array_equal(back["nav_lat"].values, lat2)


def test_to_source_grid_takes_the_dataarray_interpolate_returns(product):
    """to_source_grid says it works on a DataArray, and oceandl.interpolate returns one; on a
    renamed grid (latitude/longitude) it raised AttributeError ('DataArray' has no 'variables')."""
    import oceandl
    from oceandl.io import source_grid, to_source_grid

    inp = xr.open_dataset(product)
    obs = inp["sst"].isel(depth=0)
    da = open_field(product)
    filled = oceandl.interpolate(da, "climatology")
    assert isinstance(filled, xr.DataArray)
    back = to_source_grid(filled, source_grid(da))
    assert back.dims == ("time", "latitude", "longitude")
    for c in ("latitude", "longitude", "time"):
        xr.testing.assert_identical(back[c].variable, inp[c].variable)
    seen = np.isfinite(obs.values)
    np.testing.assert_array_equal((back - obs).values[seen], 0.0)  # observed pixels, where they were


def test_time_units_xarray_cannot_decode_are_read_as_numbers(values, tmp_path):
    """'months since 2000-01-01' (monthly products) on a standard calendar: xarray cannot decode it,
    and the file was refused as 'not a readable netCDF file, truncated or corrupt', with --chunks
    too; from Python, open_dataset(decode_times=False), as xarray advises, then failed in
    open_field's CF decoding. The time is now read as its numbers (a warning says so for a file)
    and written back as the same numbers and units."""
    from oceandl.cli.main import main

    _, lat, lon = _coords()
    path = tmp_path / "monthly.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for d, n in (("time", NT), ("lat", NY), ("lon", NX)):
            nc.createDimension(d, n)
        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({"units": "months since 2000-01-01", "calendar": "standard"})
        t[:] = np.arange(NT)
        nc.createVariable("lat", "f8", ("lat",))[:] = lat
        nc.createVariable("lon", "f8", ("lon",))[:] = lon
        v = nc.createVariable("sst", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999.0))
        v.units = "degree_Celsius"
        v[:] = np.where(np.isnan(values), -999.0, values)
    with pytest.warns(UserWarning, match="months since 2000-01-01.*plain numbers"):
        da = open_field(path)
    np.testing.assert_array_equal(da["time"].values, np.arange(NT))
    np.testing.assert_array_equal(da.values, values)
    with xr.open_dataset(path, decode_times=False) as ds:
        np.testing.assert_array_equal(open_field(ds)["time"].values, np.arange(NT))
    for tag, extra in (("memory", []), ("chunks", ["--chunks", "time=-1,lat=3,lon=4"])):
        out = tmp_path / f"{tag}.nc"
        assert main(["interpolate", str(path), "--method", "climatology", "--withhold", "0", "--quiet", *extra,
                     "-o", str(out)]) == 0, tag
        with netCDF4.Dataset(out) as nc:
            assert nc["time"].units == "months since 2000-01-01", tag
            np.testing.assert_array_equal(nc["time"][:], np.arange(NT))
            got = np.asarray(nc["sst"][:], dtype=np.float64)
            seen = np.isfinite(values)
            np.testing.assert_array_equal(got[seen], values[seen])
            assert np.isfinite(got).all()


def test_flags_and_ancillary_variables_are_not_fields(values, tmp_path):
    """oceandl's own output (temp, missing_flag, sigma) could not be read back without --var:
    'several 3-D variables (temp, missing_flag, sigma)'; a GHRSST mask (flag_values) drew a warning.
    CF flag variables and the ancillary variables a field names are no longer candidates, and the
    written field names its flag and sigma (ancillary_variables), in memory and with --chunks."""
    import warnings

    from oceandl.cli.main import main

    ds = _dataset(values, name="temp")
    ds["mask"] = (("time", "lat", "lon"), np.ones(values.shape, np.int8), {"flag_values": np.int8(1),
                                                                          "flag_meanings": "water"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert find_variable(ds) == "temp"
    ds["err"] = ds["temp"] * 0 + 0.1
    with pytest.raises(InputError, match="several 3-D variables"):
        find_variable(ds)
    ds["temp"].attrs["ancillary_variables"] = "err mask"
    assert find_variable(ds) == "temp"
    only_flag = ds[["mask"]]
    assert find_variable(only_flag) == "mask"  # nothing else: still found (and refused later as it may be)

    src = tmp_path / "temp.nc"
    _dataset(values, name="temp").to_netcdf(src)
    for tag, extra in (("memory", []), ("chunks", ["--chunks", "lat=3"])):
        out = tmp_path / f"{tag}.nc"
        assert main(["interpolate", str(src), "--method", "climatology", "--withhold", "0", "--quiet", *extra,
                     "-o", str(out)]) == 0
        with xr.open_dataset(out) as res:
            assert set(res.data_vars) == {"temp", "missing_flag", "sigma"}
            assert res["temp"].attrs["ancillary_variables"] == "missing_flag sigma"
        assert main(["eof", str(out), "-n", "2", "-o", str(tmp_path / f"eof_{tag}.nc")]) == 0, tag


def test_a_projected_grid_in_km_is_not_wrapped_as_longitudes(tmp_path):
    """A projected grid's x in km (0, 10, ... 490) was wrapped as longitudes: 370..490 became
    10..130, duplicates, and were dropped (50 columns -> 36), the others reordered; the output,
    put back on the file's grid, held other columns' values at the observed pixels (exit 0). Its
    x and y were labelled degrees_east/north. Now they keep their own units and order, in memory
    and with --chunks, and coslat weighting refuses them."""
    import oceandl

    rng = np.random.default_rng(0)
    nt, ny, nx = 12, 20, 50
    v = (15 + np.cumsum(rng.standard_normal((nt, ny, nx)), axis=2) / 5).astype(np.float32)
    v[rng.random(v.shape) < 0.3] = np.nan
    proj = {"units": "km", "standard_name": "projection_x_coordinate", "axis": "X"}
    ds = xr.Dataset({"sst": (("time", "y", "x"), v, {"units": "degC"})},
                    coords={"time": pd.date_range("2021-01-01", periods=nt),
                            "y": ("y", np.arange(ny) * 10.0, {**proj, "standard_name": "projection_y_coordinate",
                                                              "axis": "Y"}),
                            "x": ("x", np.arange(nx) * 10.0, proj)})
    path = tmp_path / "proj.nc"
    ds.to_netcdf(path)
    da = open_field(path, "sst")
    assert da.shape == (nt, ny, nx)
    np.testing.assert_array_equal(da["lon"].values, np.arange(nx) * 10.0)
    np.testing.assert_array_equal(da.values, v)  # nothing moved
    assert da["lon"].attrs["units"] == "km" and da["lat"].attrs["standard_name"] == "projection_y_coordinate"
    seen = np.isfinite(v)
    for tag, out in _fill_in_memory_and_chunked(path, tmp_path).items():
        with xr.open_dataset(out) as got:
            assert got["sst"].shape == v.shape, tag
            np.testing.assert_array_equal(got["sst"].values[seen], v[seen])  # the observations, where they were
            assert got["x"].attrs["units"] == "km"
    for field in (da, da * 1.0):  # with the grid record, and after arithmetic without it
        with pytest.raises(InputError, match="weights='coslat' needs"):
            oceandl.eof(field.fillna(15.0), n_modes=2)
    # a file without coordinates: its row and column indices are labelled as such, not as degrees
    bare = tmp_path / "bare.nc"
    xr.Dataset({"sst": (("time", "y", "x"), v)}, coords={"time": ds["time"]}).to_netcdf(bare)
    idx = open_field(bare, "sst")
    assert idx["lat"].attrs == {"long_name": "lat index (the file has no coordinate along 'y')", "units": "1",
                                "axis": "Y"}
    with pytest.raises(InputError, match="weights='coslat' needs a coordinate 'lat'"):
        oceandl.eof(idx.fillna(15.0) * 1.0, n_modes=2)  # cos(row index) weighted it silently
