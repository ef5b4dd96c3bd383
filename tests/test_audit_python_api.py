"""Audit of the Python API on xarray objects as a notebook user calls it (audit103)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from oceandl.interp import interpolate


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_climatology_of_an_exact_seasonal_cycle_is_not_a_linalg_error(calendar):
    """A field that a cycle of one harmonic fits to rounding (a synthetic or model SST on a cftime
    calendar, its year exactly the cycle's period) crashed the shrinkage of the harmonics with a
    bare ``LinAlgError: Singular matrix``: its residual variance was 0. It is filled exactly now."""
    pytest.importorskip("cftime")
    rng = np.random.default_rng(1)
    time = xr.date_range("2001-01-01", periods=2 * 365, freq="D", calendar=calendar, use_cftime=True)
    days = 360 if calendar == "360_day" else 365
    frac = np.array([t.dayofyr - 1 for t in time]) / days
    amp = rng.uniform(1, 3, (6, 7))
    truth = 20 + amp[None] * np.cos(2 * np.pi * frac)[:, None, None]
    gap = rng.random(truth.shape) < 0.5
    da = xr.DataArray(np.where(gap, np.nan, truth), dims=("time", "lat", "lon"), name="sst",
                      coords={"time": time, "lat": np.arange(6.0), "lon": np.arange(7.0)})
    out = interpolate(da, "climatology", harmonics=1)
    assert out.attrs["harmonics"] == 1
    assert float(np.abs(out.values[gap] - truth[gap]).max()) < 1e-6  # measured 2e-7


def _global_field(seed=0):
    rng = np.random.default_rng(seed)
    lon, lat = np.arange(0, 360, 30.0), np.arange(-60, 61, 30.0)
    f = xr.DataArray(rng.standard_normal((10, lat.size, lon.size)), dims=("time", "lat", "lon"), name="sst",
                     coords={"lat": ("lat", lat, {"units": "degrees_north"}),
                             "lon": ("lon", lon, {"units": "degrees_east"})})
    return f, f.assign_coords(lon=("lon", (lon + 180) % 360 - 180, f.lon.attrs)).sortby("lon")


def test_eof_weights_and_project_take_the_other_longitude_convention():
    """Area weights read from a grid file in 0..360 for a field open_field put in -180..180 (and a
    map projected from a product in the other convention) were refused: "the weights' coordinate
    'lon' differs from the field's". They are matched by value, as a mask or a covariate is."""
    from oceandl.interp.eof import eof

    f360, f180 = _global_field()
    w = np.cos(np.deg2rad(f360.lat)) * xr.DataArray(np.linspace(1, 2, 12), dims="lon", coords={"lon": f360.lon})
    ref = eof(f360, 3, weights=w)
    got = eof(f180, 3, weights=w)
    np.testing.assert_allclose(got.eigenvalues.values, ref.eigenvalues.values, rtol=1e-12)  # 14.53, ...
    # pixel by pixel: the first EOF at lon -150 is the reference's at 210
    np.testing.assert_allclose(got.eofs.sel(lon=-150.0).values, ref.eofs.sel(lon=210.0).values, atol=1e-12)
    np.testing.assert_allclose(ref.project(f180).values, ref.pcs.values, atol=1e-10)
    np.testing.assert_allclose(got.project(f360.isel(time=4)).values, got.pcs.isel(time=4).values, atol=1e-10)


def _gappy(nt=24, ny=8, nx=9, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(nt)
    truth = (15 + np.sin(2 * np.pi * t / 12)[:, None, None] * np.linspace(1, 2, nx)[None, None]
             + np.linspace(0, 3, ny)[None, :, None] + 0.05 * rng.standard_normal((nt, ny, nx)))
    gap = rng.random(truth.shape) < 0.3
    return xr.DataArray(np.where(gap, np.nan, truth), dims=("time", "lat", "lon"), name="sst",
                        coords={"time": np.datetime64("2020-01-01") + t.astype("timedelta64[D]"),
                                "lat": np.linspace(30, 40, ny), "lon": np.linspace(-20, -4, nx)},
                        attrs={"units": "degC"})


@pytest.mark.parametrize("method", ["dineof", "eof", "climatology"])
def test_fit_and_transform_take_a_depth_level_and_one_days_map(method):
    """README's ``DINEOF().fit(past["sst"])`` / ``.transform(new["sst"])`` refused a (time, depth=1,
    lat, lon) variable ('expected 3 dims') that interpolate() and eof() read, and one day's map
    (``new.sel(time=day)``, "today's image") had to be expanded by hand; interpolate(day, fit_on=...)
    gives the map back as a map, its time a scalar coordinate."""
    from oceandl.interp import get_method

    da = _gappy()
    past, new = da.isel(time=slice(0, 16)), da.isel(time=slice(16, None))
    opts = {"n_modes": 2} if method == "dineof" else {}
    ref_model = get_method(method)(**opts).fit(past)
    ref = ref_model.transform(new)["sst"]
    model = get_method(method)(**opts).fit(past.expand_dims(depth=[0.5], axis=1))
    np.testing.assert_allclose(model.reconstruct()["sst"].values, ref_model.reconstruct()["sst"].values, atol=1e-6)
    got = model.transform(new.expand_dims(depth=[0.5], axis=1))["sst"]
    assert got.dims == ("time", "lat", "lon") and float(got["depth"]) == 0.5  # kept as a scalar coordinate
    np.testing.assert_allclose(got.values, ref.values, atol=1e-6)
    day = new.isel(time=3)  # a 2-D map with its date as a scalar coordinate
    one = ref_model.transform(day)["sst"]
    assert one.dims == ("time", "lat", "lon") and one["time"].values[0] == day["time"].values
    expect = ref_model.transform(new.isel(time=[3]))["sst"]
    np.testing.assert_allclose(one.values, expect.values, atol=1e-6)
    filled = interpolate(day, method, fit_on=past, **opts)
    assert filled.dims == ("lat", "lon") and filled["time"].values == day["time"].values
    np.testing.assert_allclose(filled.values, expect.values[0], atol=1e-6)
    assert np.isfinite(filled.values).all() and filled.attrs["method"] == method


def test_eof_of_a_field_with_a_missing_day_names_the_day_and_the_remedy():
    """One all-NaN day (a satellite outage) makes every pixel 'missing at some times'; eof() said
    only "no pixel is observed at every time step". It names the day and how to drop it, and the
    analysis without it runs."""
    from oceandl.errors import InputError
    from oceandl.interp.eof import eof

    da = _gappy().fillna(15.0)
    da[5] = np.nan
    with pytest.warns(UserWarning, match="missing at some times only"), \
            pytest.raises(InputError, match=r"1 time step\(s\) have no value at all \(the first: 2020-01-06 "
                                            r"00:00:00\); drop them \(da.dropna\('time', how='all'\) in Python\)"):
        eof(da, 2)
    assert eof(da.dropna("time", how="all"), 2).pcs.sizes["time"] == 23


def test_withheld_mask_in_the_other_longitude_convention_is_matched_by_value():
    """A withheld mask (a cloud mask from another product) with longitudes in -180..180 for a field
    in 0..360 across the dateline was refused, with advice to pass .values: position by position,
    which for the sorted mask withholds pixels 180 degrees of columns away. Matched by value now."""
    da = _gappy().assign_coords(lon=("lon", np.linspace(170, 186, 9), {"units": "degrees_east"}))
    held = xr.zeros_like(da, dtype=bool)
    held[:, 3, 3] = held[:, 4, 7] = True  # lon 176 and 184 (-176)
    ref = interpolate(da, "climatology", withheld=held)
    other = held.assign_coords(lon=("lon", (da.lon.values + 180) % 360 - 180, da.lon.attrs))
    for w in (other, other.sortby("lon")):
        got = interpolate(da, "climatology", withheld=w)
        assert got.attrs["val_n"] == ref.attrs["val_n"] == int((held & da.notnull()).sum())
        assert got.attrs["val_rmse"] == ref.attrs["val_rmse"]


@pytest.fixture(scope="module")
def eofs_sst():
    pytest.importorskip("eofs", reason="the eofs package (reference implementation) is not installed")
    from eofs.examples import example_data_path

    try:
        path = example_data_path("sst_ndjfm_anom.nc")
    except Exception as exc:  # the example data are an optional part of the package
        pytest.skip(f"eofs example data not available: {exc}")
    return path


@pytest.mark.parametrize("case", ["unweighted", "descending-lat", "lon-180", "dask", "uncentred", "float32"])
def test_eof_matches_eofs_on_its_real_sst_as_files_come(eofs_sst, case):
    """Beyond test_eof's parity (coslat weights on the file as shipped): the same analysis as
    eofs.xarray.Eof with no weights, on the file with latitudes descending, longitudes in
    -180..180 (the Pacific grid then splits at the dateline), dask-backed, uncentred, in float32;
    variance fractions, PCs and EOFs (up to sign, in the input's grid order), the covariance maps,
    and projections (eofs' projectField of the centred field)."""
    from eofs.xarray import Eof

    from oceandl.interp.eof import eof

    with xr.open_dataset(eofs_sst, chunks={"time": 7} if case == "dask" else None) as ds:
        sst = ds["sst"]
        if case != "dask":
            sst = sst.load()
    if case == "descending-lat":
        sst = sst.isel(latitude=slice(None, None, -1))
    elif case == "lon-180":
        sst = sst.assign_coords(longitude=("longitude", (sst.longitude.values + 180) % 360 - 180,
                                           sst.longitude.attrs))
    elif case == "float32":
        sst = sst.astype(np.float32)
    ref_in = sst.load().astype(np.float64)
    coslat = np.sqrt(np.cos(np.deg2rad(ref_in.latitude.values.astype(np.float64))))[:, None]
    k = 5
    weights = None if case == "unweighted" else "coslat"
    ref = Eof(ref_in, weights=None if weights is None else coslat, center=case != "uncentred")
    ours = eof(sst, n_modes=k, weights=weights, center=case != "uncentred")
    tol = 1e-5 if case == "float32" else 1e-9
    ref_e = ref.eofs(neofs=k).values
    assert ours.eofs.dims == ("mode", "latitude", "longitude")
    np.testing.assert_array_equal(ours.eofs["latitude"].values, sst["latitude"].values)
    np.testing.assert_array_equal(ours.eofs["longitude"].values, sst["longitude"].values)
    sign = np.sign(np.nansum(ref_e * ours.eofs.values, axis=(1, 2)))
    np.testing.assert_array_equal(np.isnan(ours.eofs.values), np.isnan(ref_e))
    np.testing.assert_allclose(ours.variance_fraction.values, ref.varianceFraction(neigs=k).values, atol=tol)
    np.testing.assert_allclose(sign[:, None, None] * ours.eofs.values, ref_e, atol=tol)
    np.testing.assert_allclose(sign * ours.pcs.values, ref.pcs(npcs=k).values, atol=1e3 * tol)
    if case != "uncentred":  # eofs_as() refuses an analysis of raw values, by design
        np.testing.assert_allclose(sign[:, None, None] * ours.eofs_as("covariance").values,
                                   ref.eofsAsCovariance(neofs=k).values, atol=100 * tol)
        # eofs projects the field as given; oceandl removes the analysis mean first
        proj = ref.projectField(ref_in - ref_in.mean("time"), neofs=k).values
        np.testing.assert_allclose(sign * ours.project(sst).values, proj, atol=1e3 * tol)
    # the first mode's share, as eofs gives it: 49.0 % with coslat weights, 46.0 % unweighted, 43.8 % uncentred
    expected = {"unweighted": 0.46010, "uncentred": 0.43777}.get(case, 0.48986)
    assert ours.variance_fraction.values[0] == pytest.approx(expected, abs=1e-5)


def test_a_step_without_a_date_is_refused_where_a_seasonal_cycle_needs_it():
    """A time fill value decoded as NaT (a file's broken step) reached the harmonic design matrix:
    a bare ``LinAlgError: Eigenvalues did not converge`` from the fit. It is an InputError naming
    the step and the remedy, in fit and transform; a fit that needs no dates still runs."""
    from oceandl.errors import InputError
    from oceandl.interp import Climatology, DINEOF

    rng = np.random.default_rng(0)
    time = xr.date_range("2001-01-01", periods=400, freq="D").values.copy()
    da = xr.DataArray(15 + np.sin(np.arange(400) / 58.0)[:, None, None] + 0.1 * rng.standard_normal((400, 4, 5)),
                      dims=("time", "lat", "lon"), coords={"time": time}, name="sst")
    broken = da.copy()
    broken["time"] = np.where(np.arange(400) == 7, np.datetime64("NaT"), time)
    msg = r"1 time step\(s\) have no date \(NaT; the first: step 7\).*da.isel\(time=da.time.notnull\(\)\)"
    for kw in ({}, {"harmonics": 1}):  # auto: 400 days span a year, so it fits 2 harmonics
        with pytest.raises(InputError, match=msg):
            interpolate(broken, "climatology", **kw)
    with pytest.raises(InputError, match=msg):
        DINEOF(harmonics=1, n_modes=1).fit(broken)
    for model in (Climatology(harmonics=1), DINEOF(harmonics=1, n_modes=1)):
        model.fit(da)
        with pytest.raises(InputError, match=msg):
            model.transform(broken)
    assert interpolate(broken, "climatology", harmonics=0).attrs["harmonics"] == 0
    ok = interpolate(broken.isel(time=broken.time.notnull()), "climatology")
    assert ok.attrs["harmonics"] == 2 and ok.sizes["time"] == 399


def test_neural_and_dineof_time_channels_refuse_a_step_without_a_date():
    """With a NaT step the neural methods advised "sort them (da.sortby('time'))", which leaves NaT
    out of order, and with neighbours=0 their seasonal channels went NaN: "training diverged ...
    (lower lr)". DINEOF's temporal_filter gave the same sorting advice. Each now names the step
    and how to drop it; without time channels the network still trains."""
    from oceandl.errors import InputError

    da = _gappy()
    da["time"] = np.where(np.arange(da.sizes["time"]) == 5, np.datetime64("NaT"), da["time"].values)
    msg = r"1 time step\(s\) have no date \(NaT; the first: step 5\), which {} cannot do without; drop them"
    for kw, need in (({}, "the neighbours=1 channels and the seasonal channels"),
                     ({"neighbours": 0}, "the seasonal channels")):
        with pytest.raises(InputError, match=msg.format(need)):
            interpolate(da, "convae", epochs=1, **kw)
    with pytest.raises(InputError, match=msg.format("temporal_filter")):
        interpolate(da, "dineof", n_modes=2, temporal_filter=0.01)
    out = interpolate(da, "convae", epochs=1, neighbours=0, seasonal=False, seed=0)
    assert np.isfinite(out.values).all()


def test_unpacked_floats_with_packing_attrs_are_warned_of():
    """Values unpacked already (netCDF4-python scales by default) with the variable's attrs copied
    beside them were unpacked a second time, silently: 288 K filled as 276 K. CF unpacking is
    still applied (float packing is legal), with a warning naming the attrs; whole-number packed
    values are decoded without one."""
    rng = np.random.default_rng(0)
    kelvin = 288 + rng.standard_normal((12, 4, 5))
    kelvin[rng.random(kelvin.shape) < 0.3] = np.nan
    attrs = {"scale_factor": 0.01, "add_offset": 273.15, "_FillValue": -32768, "units": "kelvin"}
    unpacked = xr.DataArray(kelvin, dims=("time", "lat", "lon"), name="sst", attrs=attrs)
    with pytest.warns(UserWarning, match=r"variable 'sst': holds floats with fractions .* drop those attrs first"):
        out = interpolate(unpacked, "climatology")
    seen = np.isfinite(kelvin)
    np.testing.assert_allclose(out.values[seen], 0.01 * kelvin[seen] + 273.15)  # as CF says
    packed = unpacked.copy(data=np.where(np.isnan(kelvin), -32768, np.round((kelvin - 273.15) / 0.01)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = interpolate(packed, "climatology")
    np.testing.assert_allclose(out.values[seen], kelvin[seen], atol=0.0051)


def test_transform_of_a_box_of_the_fitted_grid_cuts_the_fit():
    """A region of the fitted grid given to transform() (or interpolate(fit_on=model)) was told
    "regrid it first", though it is on the fitted grid and cut() fills it as it is (what
    `oceandl interpolate --fit-on FOLDER --bbox` does). It is now cut to it (warned: audit101);
    another grid is still refused."""
    from oceandl.errors import InputError
    from oceandl.interp import DINEOF

    da = _gappy()
    past, new = da.isel(time=slice(0, 16)), da.isel(time=slice(16, None))
    model = DINEOF(n_modes=2).fit(past)
    box = new.isel(lat=slice(2, 6), lon=slice(3, 9))
    filled = interpolate(box, "dineof", fit_on=model.cut(box))
    assert filled.shape == box.shape and np.isfinite(filled.values).all()
    np.testing.assert_allclose(filled.values[box.notnull().values], box.values[box.notnull().values])
    for call in (lambda: model.transform(box)["sst"], lambda: interpolate(box, "dineof", fit_on=model)):
        with pytest.warns(UserWarning, match="block of the fit's 8 x"):
            np.testing.assert_allclose(call().values, filled.values, rtol=0, atol=1e-5)
    other = new.assign_coords(lat=new.lat + 100.0).isel(lat=slice(2, 6))  # not on the grid
    with pytest.raises(InputError, match="fit's grid"):
        model.transform(other)


def test_a_files_dataset_is_read_as_its_field_not_refused_with_a_bounds_variable(eofs_sst):
    """oceandl.eof(ds) / interpolate(ds) on a file's Dataset (its sst beside bounds_time,
    bounds_latitude...) were refused "pass one DataArray, e.g. ds['bounds_time']": the suggestion
    was a bounds variable. The field is found as ds.oceandl.eof() finds it; a Dataset with no
    clear field is still refused, naming var=."""
    import oceandl
    from oceandl.errors import InputError

    with xr.open_dataset(eofs_sst) as ds:
        ds = ds.load()
    got = oceandl.eof(ds, 3)
    np.testing.assert_allclose(got.eigenvalues.values, ds.oceandl.eof(3).eigenvalues.values, rtol=1e-12)
    np.testing.assert_allclose(got.eigenvalues.values, oceandl.eof(ds["sst"], 3).eigenvalues.values, rtol=1e-12)
    filled = oceandl.interpolate(ds, "climatology", harmonics=0)
    assert filled.name == "sst" and filled.dims == ds["sst"].dims
    two = xr.Dataset({"a": ds["sst"], "b": ds["sst"] * 2})
    with pytest.raises(InputError, match=r"a Dataset with variables \['a', 'b'\]; pass one DataArray \(ds\['name'\]\), "
                                         r"or name it: ds.oceandl.interpolate\(var=...\)"):
        oceandl.interpolate(two, "climatology")


def test_an_aux_dataset_from_a_file_leaves_its_cell_bounds_out():
    """aux=ds, a covariate file as opened (its wind beside time_bnds(time, nv), lat_bnds...), was
    refused: "aux 'time_bnds' has dims ('time', 'nv')". Cell bounds are no covariates: they are
    left out, and the fill equals the one with the covariate alone; bounds only are refused."""
    from oceandl.errors import InputError

    da = _gappy()
    rng = np.random.default_rng(3)
    wind = xr.DataArray(rng.standard_normal(da.shape), dims=da.dims, coords=da.coords, name="wind")
    lat = da["lat"].assign_attrs(bounds="lat_bnds")
    aux = xr.Dataset({"wind": wind, "time_bnds": (("time", "nv"), np.zeros((da.sizes["time"], 2))),
                      "lat_bnds": (("lat", "bnds2"), np.zeros((da.sizes["lat"], 2)))}).assign_coords(lat=lat)
    got = interpolate(da, "dineof", aux=aux, n_modes=2)
    ref = interpolate(da, "dineof", aux=wind, n_modes=2)
    np.testing.assert_array_equal(got.values, ref.values)
    with pytest.raises(InputError, match=r"aux is a Dataset of cell bounds only \(time_bnds, lat_bnds\)"):
        interpolate(da, "dineof", aux=aux.drop_vars("wind"), n_modes=2)


def test_the_eof_method_warns_of_a_day_without_observation_as_dineof_does():
    """An all-NaN day (a satellite outage) was "filled" by method eof with each pixel's mean
    (no observation sets the modes' amplitudes), flagged as filled, without a word; DINEOF warns
    of it. The eof method now does too, naming the day."""
    da = _gappy()
    da[5] = np.nan
    with pytest.warns(UserWarning, match=r"variable 'sst': 1 time step\(s\) with no observation \(the first: "
                                         r"2020-01-06 00:00:00\); .* the modes' mean state"):
        out = interpolate(da, "eof", return_dataset=True)
    day = out["sst"].isel(time=5).values
    assert (out["missing_flag"].isel(time=5).values == 1).all()
    # no amplitude: the modes' centre (the EM's mean state, within 0.30 of the observations' mean here),
    # while the days around it swing by +-0.5..1 (the cycle of _gappy)
    np.testing.assert_allclose(day, da.mean("time").values, atol=0.35)
    assert float(np.abs(out["sst"].isel(time=3).values - da.mean("time").values).mean()) > 0.5
