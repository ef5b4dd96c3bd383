"""EOF analysis (parity with the eofs package, exact reconstruction, land) and the 'eof' gap-filling method."""
from __future__ import annotations


import numpy as np
import pytest
import xarray as xr

from oceandl.errors import InputError
from oceandl.interp import interpolate
from oceandl.interp.eof import EOF, eof

from fakes import seasonal_anomaly_cube


@pytest.fixture(scope="module")
def example_sst():
    pytest.importorskip("eofs", reason="the eofs package (reference implementation) is not installed")
    from eofs.examples import example_data_path

    try:
        path = example_data_path("sst_ndjfm_anom.nc")
    except Exception as exc:  # the example data are an optional part of the package
        pytest.skip(f"eofs example data not available: {exc}")
    with xr.open_dataset(path) as ds:
        return ds["sst"].load()


@pytest.fixture(scope="module")
def field():
    """Complete (time, lat, lon) field with land: 5 random modes + mean."""
    rng = np.random.default_rng(0)
    nt, ny, nx = 30, 12, 15
    data = 15 + rng.normal(size=(nt, 5)) @ rng.normal(size=(5, ny * nx)) + 0.1 * rng.normal(size=(nt, ny * nx))
    data = data.reshape(nt, ny, nx)
    data[:, :3, :4] = np.nan
    return xr.DataArray(data, dims=("time", "lat", "lon"), name="sst",
                        coords={"time": np.arange(nt), "lat": np.linspace(-60, 60, ny), "lon": np.arange(nx) * 2.0},
                        attrs={"units": "degC"})  # values near 15: degC (in "K" they are refused)


def _align_signs(ref, ours, axis_sum):
    sign = np.sign(np.nansum(ref * ours, axis=axis_sum))
    assert (sign != 0).all()
    return sign


def test_parity_with_eofs_package(example_sst):
    from eofs.xarray import Eof

    sst = example_sst
    coslat = np.cos(np.deg2rad(sst["latitude"].values.astype(np.float64))).clip(0.0, 1.0)
    solver = Eof(sst, weights=np.sqrt(coslat)[..., None])
    k = 8
    ref_eofs = solver.eofs(neofs=k).values  # eofscaling=0: unscaled, weights not removed
    ref_pcs = solver.pcs(npcs=k).values  # pcscaling=0: unscaled
    ours = eof(sst, n_modes=k, weights="coslat")
    assert ours.eofs.dims == ("mode", "latitude", "longitude") and ours.pcs.dims == ("time", "mode")
    sign = _align_signs(ref_eofs, ours.eofs.values, (1, 2))
    np.testing.assert_array_equal(np.isnan(ours.eofs.values), np.isnan(ref_eofs))  # land where eofs has it
    np.testing.assert_allclose(sign[:, None, None] * ours.eofs.values, ref_eofs, atol=1e-6)
    np.testing.assert_allclose(sign * ours.pcs.values, ref_pcs, atol=1e-6)
    np.testing.assert_allclose(ours.variance_fraction.values, solver.varianceFraction(neigs=k).values, atol=1e-6)
    np.testing.assert_allclose(ours.eigenvalues.values, solver.eigenvalues(neigs=k).values, rtol=1e-6)
    # North et al. typical errors, as eofs' northTest (11.64, 3.07, 1.69, 1.52... for these 50 winters)
    np.testing.assert_allclose(ours.eigenvalue_errors.values, solver.northTest(neigs=k).values, rtol=1e-6)
    np.testing.assert_allclose(ours.eigenvalue_errors.values / ours.total_variance,
                               solver.northTest(neigs=k, vfscaled=True).values, rtol=1e-6)
    assert ours.eigenvalue_errors.values[0] == pytest.approx(11.6387, rel=1e-4)
    assert ours.total_variance == pytest.approx(float(solver.totalAnomalyVariance()), rel=1e-9)
    # unit-variance PCs and the EOFs as covariance / correlation maps, as eofs scales them
    np.testing.assert_allclose(sign * ours.standardized_pcs().values, solver.pcs(npcs=k, pcscaling=1).values,
                               atol=1e-6)
    for kind, ref in (("covariance", solver.eofsAsCovariance(neofs=k)),
                      ("correlation", solver.eofsAsCorrelation(neofs=k))):
        got = ours.eofs_as(kind)
        assert got.dims == ours.eofs.dims
        np.testing.assert_array_equal(np.isnan(got.values), np.isnan(ref.values))
        np.testing.assert_allclose(sign[:, None, None] * got.values, ref.values, atol=1e-6)
    # eofs reconstructs anomalies (no mean added back).
    np.testing.assert_allclose((ours.reconstruct(3) - ours.mean).values, solver.reconstructedField(3).values,
                               atol=1e-6)
    np.testing.assert_array_equal(ours.eofs["latitude"].values, sst["latitude"].values)
    np.testing.assert_array_equal(ours.pcs["time"].values, sst["time"].values)


def test_reconstruct_all_modes_is_exact_and_keeps_land(field):
    res = eof(field, n_modes=100)
    assert res.n_modes == 29  # min(n_time - 1, n_ocean): the centred field's rank; still exact
    rec = res.reconstruct()
    assert rec.dims == field.dims and rec.name == "sst" and rec.attrs["units"] == "degC"
    np.testing.assert_array_equal(np.isnan(rec.values), np.isnan(field.values))
    np.testing.assert_allclose(rec.values, field.values, atol=1e-10)
    assert np.isnan(res.eofs.values[:, :3, :4]).all() and np.isnan(res.mean.values[:3, :4]).all()
    # Fewer modes: a worse but close fit (5 real modes + small noise).
    err5 = float(np.sqrt(((res.reconstruct(5) - field) ** 2).mean()))
    assert 0.05 < err5 < 0.12


def test_variance_bookkeeping(field):
    res = eof(field, n_modes=29)  # the centred field's rank (30 time steps less the mean)
    vf = res.variance_fraction.values
    assert vf.sum() == pytest.approx(1.0, abs=1e-12)
    assert (np.diff(vf) <= 0).all()
    assert vf[:5].sum() > 0.99
    # Eigenvalues are the PC variances; PCs are orthogonal, EOFs orthonormal over the ocean.
    np.testing.assert_allclose(res.pcs.var("time", ddof=1).values, res.eigenvalues.values, rtol=1e-9,
                               atol=1e-12 * float(res.eigenvalues[0]))
    E = res.eofs.values.reshape(29, -1)
    E = E[:, np.isfinite(E[0])]
    np.testing.assert_allclose(E[:10] @ E[:10].T, np.eye(10), atol=1e-10)
    P = res.pcs.values[:, :10]
    off = P.T @ P - np.diag(np.diag(P.T @ P))
    assert np.abs(off).max() < 1e-8 * np.abs(P).max() ** 2
    few = eof(field, n_modes=3)
    np.testing.assert_allclose(few.variance_fraction.values, vf[:3])  # fraction of the total, not of 3 modes


def test_repr_names_the_field_and_each_modes_share(field):
    """A notebook showed 'EOF(n_modes=3, variance explained=0.998)': not which field, nor the
    modes' shares, the first thing one reads off an EOF analysis."""
    res = eof(field, n_modes=3)
    vf = res.variance_fraction.values
    assert repr(res) == (f"<oceandl EOF of 'sst' (time: 30, lat: 12, lon: 15): 3 modes, variance fraction "
                         f"{vf[0]:.3g}, {vf[1]:.3g}, {vf[2]:.3g} (sum {vf.sum():.3f}), solver full>")
    many = repr(eof(field.rename(None), n_modes=10))
    assert many.startswith("<oceandl EOF of a field (time: 30,") and ", ..." in many and len(many) < 200


def test_weights_project_and_provenance(field):
    plain = eof(field, n_modes=4, weights=None)
    coslat = eof(field, n_modes=4)
    assert not np.allclose(plain.eigenvalues.values, coslat.eigenvalues.values)
    explicit = eof(field, n_modes=4, weights=np.sqrt(np.cos(np.deg2rad(field["lat"].values))))
    np.testing.assert_allclose(explicit.eigenvalues.values, coslat.eigenvalues.values)
    np.testing.assert_allclose(coslat.project(field).values, coslat.pcs.values, atol=1e-9)
    for da in (coslat.eofs, coslat.pcs, coslat.variance_fraction):
        assert da.attrs["method"] == "eof" and "oceandl_version" in da.attrs
    uncentred = eof(field, n_modes=2, center=False)
    assert float(np.abs(uncentred.mean).max()) == 0.0
    # The mean (15) becomes the first mode.
    assert uncentred.variance_fraction.values[0] > 0.9 > 2 * coslat.variance_fraction.values[0]


def test_weights_dataarray_matched_by_coordinate(field):
    """Weights as a DataArray on latitudes ascending, for a field stored with them descending, were
    put in sorted order by broadcast_like and labelled with the field's latitudes: each row got its
    mirror's weight (other EOFs, no error). Weights on part of the grid failed as 'not finite'."""
    w = np.sqrt(np.cos(np.deg2rad(field["lat"])))
    ref = eof(field, n_modes=3)
    flipped = field.isel(lat=slice(None, None, -1))
    got = eof(flipped, n_modes=3, weights=w)
    np.testing.assert_allclose(got.weights.values, np.sqrt(np.cos(np.deg2rad(flipped["lat"].values)))[:, None]
                               * np.ones(field.sizes["lon"]))
    np.testing.assert_allclose(got.eigenvalues.values, ref.eigenvalues.values, rtol=1e-10)
    np.testing.assert_allclose(got.eofs.sel(lat=field["lat"]).values, ref.eofs.values, atol=1e-10)
    with pytest.raises(InputError, match="weights has 5 values along 'lat', the field 12"):
        eof(field, weights=w.isel(lat=slice(0, 5)))
    with pytest.raises(InputError, match="weights' coordinate 'lat' differs"):
        eof(field, weights=w.assign_coords(lat=w["lat"] + 1.0))


def test_coslat_from_a_latitude_coordinate_on_y(field):
    """On dims (time, y, x) the area weights came from a coordinate named 'y' or failed ('needs a
    coordinate 'y''), though the latitudes were there as lat(y) or nav_lat(y, x)."""
    ref = eof(field, n_modes=3)
    grid = field.rename(lat="y", lon="x").drop_vars(["y", "x"])
    lat = field["lat"].values
    for coords in ({"lat": ("y", lat)}, {"nav_lat": (("y", "x"), np.repeat(lat[:, None], field.sizes["lon"], 1))},
                   {"y": ("y", np.arange(lat.size) * 1e5), "latitude": ("y", lat, {"units": "degrees_north"})}):
        got = eof(grid.assign_coords(coords), n_modes=3)
        np.testing.assert_allclose(got.eigenvalues.values, ref.eigenvalues.values, rtol=1e-10)
    with pytest.raises(InputError, match="needs a coordinate 'y'.*or pass weights=None"):
        eof(grid, n_modes=3)
    assert np.isfinite(eof(grid, n_modes=3, weights=None).eigenvalues.values).all()


def test_dask_and_transposed_input(field):
    pytest.importorskip("dask")
    ref = eof(field, n_modes=3)
    lazy = eof(field.chunk({"time": 10}).transpose("lon", "lat", "time"), n_modes=3)
    np.testing.assert_allclose(lazy.eigenvalues.values, ref.eigenvalues.values, rtol=1e-10)
    assert lazy.eofs.dims == ("mode", "lat", "lon")


def test_partial_gaps_are_dropped_with_a_warning(field):
    gappy = field.copy()
    gappy[3, 8, 10] = np.nan
    with pytest.warns(UserWarning, match="1 pixels"):
        res = eof(gappy, n_modes=3)
    assert np.isnan(res.eofs.values[:, 8, 10]).all()
    assert np.isnan(res.reconstruct().values[:, 8, 10]).all()


def test_bad_input(field):
    with pytest.raises(InputError, match="3 dims"):
        eof(field.isel(time=0))
    with pytest.raises(InputError, match="no pixel"):
        eof(xr.full_like(field, np.nan))
    with pytest.raises(InputError, match="no variance"):
        eof(xr.full_like(field, 2.0))
    with pytest.raises(InputError, match="coordinate 'lat'"):
        eof(field.drop_vars("lat"))
    with pytest.raises(InputError, match="weights"):
        eof(field, weights="area")
    with pytest.raises(InputError, match=r"weights has dims \('depth',\)"):  # was xarray's bare ValueError
        eof(field, weights=xr.DataArray(np.ones(4), dims="depth"))
    with pytest.raises(InputError, match="n_modes"):
        eof(field, n_modes=0)
    with pytest.raises(InputError, match="solver must be one of auto, full, randomized, got 'arpack'"):
        eof(field, solver="arpack")
    with pytest.raises(InputError, match="seed"):
        eof(field, seed=1.5)
    res = eof(field, n_modes=3)
    with pytest.raises(InputError, match="k"):
        res.reconstruct(4)
    with pytest.raises(InputError, match="grid"):
        res.project(field.isel(lat=slice(0, 5)))
    assert isinstance(res, EOF)


@pytest.fixture(scope="module")
def long_field():
    """600 days of the synthetic SST truth on a 32 x 32 grid with land: a seasonal cycle and eddies,
    so the spectrum has a dominant mode then closely spaced ones (eigenvalues 1.2 % and 1.0 %)."""
    from oceandl.datasets.sst import synthetic_sst

    return synthetic_sst(n_time=600, ny=32, nx=32, seed=0)["sst_true"]


def test_randomized_solver_matches_full(long_field):
    """The randomized SVD gives the full SVD's modes (auto picks it for a 600 x ~900 matrix and 10
    modes), the same signs, reproducible from its seed, without touching the global torch RNG."""
    import torch

    state = torch.get_rng_state()
    full = eof(long_field, n_modes=10, solver="full")
    auto = eof(long_field, n_modes=10)
    assert torch.equal(state, torch.get_rng_state())
    assert (full.solver, auto.solver) == ("full", "randomized") and auto.eofs.attrs["solver"] == "randomized"
    assert eof(long_field, n_modes=61).solver == "full"  # over a tenth of the smaller side: randomized no longer pays
    # measured over seeds 0-2: eigenvalues within 3e-12 (relative), EOFs within 3e-7 (values up to
    # 0.22), PCs within 1.5e-7 of their largest
    np.testing.assert_allclose(auto.eigenvalues.values, full.eigenvalues.values, rtol=1e-9)
    np.testing.assert_allclose(auto.variance_fraction.values, full.variance_fraction.values, rtol=1e-9)
    assert auto.total_variance == pytest.approx(full.total_variance, rel=1e-12)
    np.testing.assert_allclose(auto.eofs.values, full.eofs.values, atol=3e-6)
    np.testing.assert_allclose(auto.pcs.values, full.pcs.values, atol=2e-6 * float(np.abs(full.pcs).max()))
    # the sign convention: each EOF's largest-magnitude value is positive, whatever the solver
    for res in (full, auto):
        E = np.nan_to_num(res.eofs.values.reshape(10, -1))
        assert (E[np.arange(10), np.abs(E).argmax(axis=1)] > 0).all()
    again = eof(long_field, n_modes=10, seed=0)
    np.testing.assert_array_equal(again.eofs.values, auto.eofs.values)
    other = eof(long_field, n_modes=10, seed=1)
    assert not np.array_equal(other.eofs.values, auto.eofs.values)
    np.testing.assert_allclose(other.eofs.values, full.eofs.values, atol=3e-6)


# ----------------------------------------------------------------------------- gap filling by EOF projection
def test_eof_method_fills_gaps_better_than_climatology(field):
    rng = np.random.default_rng(1)
    gaps = rng.random(field.shape) < 0.4
    gappy = field.where(~gaps)
    truth_gaps = gaps & np.isfinite(field.values)
    clim = interpolate(gappy, "climatology").values
    rmse_clim = np.sqrt(np.mean((clim[truth_gaps] - field.values[truth_gaps]) ** 2))
    zero = interpolate(gappy, "eof", em_iter=0).values
    rmse_zero = np.sqrt(np.mean((zero[truth_gaps] - field.values[truth_gaps]) ** 2))
    assert rmse_zero < 0.6 * rmse_clim
    # EM iterations (the default) sharpen the EOFs that the zero-filled gaps blurred.
    out = interpolate(gappy, "eof", return_dataset=True)
    assert out.attrs["n_modes"] == 5
    filled = out["sst"].values
    rmse = np.sqrt(np.mean((filled[truth_gaps] - field.values[truth_gaps]) ** 2))
    assert rmse < 0.2 * rmse_clim and rmse < 0.5 * rmse_zero


def test_eof_method_removes_the_seasonal_cycle_first():
    """Seasonal harmonics + a rank-2 anomaly, 75 % cloud (95 % in January): the gappy EOFs of the
    anomalies from each pixel's cycle (the default on two years of dates) fill the gaps 0.54 degC
    off the truth, those of the anomalies from the time mean 2.24 (measured, seed 0)."""
    gappy, truth = seasonal_anomaly_cube()
    gap = gappy.isnull().values & truth.notnull().values

    def rmse(da):
        return float(np.sqrt(np.mean((da.values[gap] - truth.values[gap]) ** 2)))

    auto, mean = interpolate(gappy, "eof", harmonics="auto"), interpolate(gappy, "eof")  # 0 is the default
    assert auto.attrs["harmonics"] == 2 and auto.attrs["harmonics_fallback_pixels"] == 2
    assert mean.attrs["harmonics"] == 0
    assert rmse(auto) < 0.7 and rmse(auto) < 0.35 * rmse(mean), (rmse(auto), rmse(mean))
    with pytest.raises(InputError, match="method 'eof': option harmonics must be 'auto' or an integer from 0 to 6"):
        interpolate(gappy, "eof", harmonics=9)


def test_project_matches_pixels_by_coordinate(field):
    """A field with latitudes descending is projected pixel for pixel onto the same EOFs (it was
    projected by position onto the mirrored ones: other pseudo-PCs, no error); another grid of the
    same shape is refused."""
    full = field.fillna(15.0)  # no land: the mirrored field has no gap to give the mistake away
    res = eof(full, n_modes=3)
    flipped = full.isel(lat=slice(None, None, -1))
    np.testing.assert_allclose(res.project(flipped).values, res.pcs.values, atol=1e-9)
    np.testing.assert_allclose(res.project(flipped.astype(np.float32).assign_coords(
        lat=flipped["lat"].astype(np.float32))).values, res.pcs.values, rtol=1e-5, atol=1e-4)
    with pytest.raises(InputError, match="coordinate 'lon' differs"):
        res.project(full.assign_coords(lon=full["lon"] + 1.0))


def test_fewer_modes_than_asked_are_warned_about(field):
    """eof -n 1000 kept min(time, pixels) modes without a word."""
    short = field.isel(time=slice(0, 6))
    with pytest.warns(UserWarning, match=r"n_modes=50, but 6 time steps \(less 1: the mean is removed\) x \d+ "
                      r"complete pixels give at most 5"):
        res = eof(short, n_modes=50)
    assert res.eofs.sizes["mode"] == 5


def test_the_written_mean_says_its_units(field, tmp_path):
    """`oceandl eof` writes the removed time mean in the field's units, but the variable had no
    units (nor long_name): kelvin or degC could not be told from the file. It now has the input's."""
    from oceandl.cli.main import main

    src = tmp_path / "sst.nc"
    field.to_dataset().to_netcdf(src)
    out = tmp_path / "eofs.nc"
    assert main(["eof", str(src), "-n", "2", "-o", str(out)]) == 0
    with xr.open_dataset(out) as e:
        assert e["mean"].attrs["units"] == "degC" and "mean" in e["mean"].attrs["long_name"]
        np.testing.assert_allclose(e["mean"].values, field.mean("time", skipna=False).values)
    bare = field.copy()
    bare.attrs = {}
    assert "units" not in eof(bare, n_modes=2).mean.attrs


def test_written_variables_say_what_they_are_and_provenance_is_global(field, tmp_path):
    """The written `weights` and `mode` had no long_name nor units, and each of the 6 variables
    repeated all the provenance (version, method, options, solver) that the global attributes hold.
    Now every variable has a long_name (and units), the provenance is global only; the DataArrays of
    the result keep it (each, written alone, says where it came from)."""
    from oceandl.cli.main import main

    src = tmp_path / "sst.nc"
    field.to_dataset().to_netcdf(src)
    out = tmp_path / "eofs.nc"
    assert main(["eof", str(src), "-n", "2", "-o", str(out)]) == 0
    res = eof(field, n_modes=2)
    with xr.open_dataset(out) as e:
        assert e.attrs["method"] == "eof" and e.attrs["solver"] == "full" and "oceandl_version" in e.attrs
        np.testing.assert_allclose(e["eigenvalue_errors"].values, e["eigenvalues"].values * np.sqrt(2 / 30))
        for name in ("eofs", "pcs", "eigenvalues", "eigenvalue_errors", "variance_fraction", "mean", "weights",
                     "mode"):
            assert e[name].attrs.get("long_name"), name
            assert not set(res.attrs) & set(e[name].attrs), name  # no provenance repeated
        units = {n: e[n].attrs.get("units") for n in ("weights", "mode", "eofs", "variance_fraction", "pcs", "mean")}
        assert units == {"weights": "1", "mode": "1", "eofs": "1", "variance_fraction": "1", "pcs": "degC", "mean": "degC"}
        assert "cosine of latitude" in e["weights"].attrs["long_name"]
    for da in (res.eofs, res.pcs, res.weights, res.mean):
        assert da.attrs["method"] == "eof" and da.attrs["solver"] == "full"
    assert res.project(field)["mode"].attrs["long_name"].startswith("EOF mode number")
    assert "unweighted" in eof(field, n_modes=2, weights=None).weights.attrs["long_name"]


def test_to_dataset_writes_coordinates_without_fill_value(field, tmp_path):
    """CF 5: coordinates hold no missing values; `res.to_dataset().to_netcdf()` gave the float
    lat/lon a _FillValue = NaN (xarray's default)."""
    import netCDF4

    path = tmp_path / "eofs.nc"
    field.oceandl.eof(n_modes=2).to_dataset().to_netcdf(path)
    with netCDF4.Dataset(path) as nc:
        assert "_FillValue" not in nc["lat"].ncattrs() and "_FillValue" not in nc["lon"].ncattrs()


def test_float32_input_gives_float32_eofs_and_file(field, tmp_path):
    """A float32 (or packed int16) field gave float64 EOFs, PCs, mean and weights: the written EOF
    file was twice the size it needed. They are now in the input's precision (computed in float64),
    the eigenvalues and variance fractions stay float64."""
    import netCDF4

    f32 = field.astype(np.float32)
    res = f32.oceandl.eof(n_modes=3)
    ref = field.oceandl.eof(n_modes=3)
    for name in ("eofs", "pcs", "mean", "weights"):
        assert getattr(res, name).dtype == np.float32, name
        assert getattr(ref, name).dtype == np.float64, name
    assert res.reconstruct(2).dtype == np.float32 and res.eigenvalues.dtype == np.float64
    np.testing.assert_allclose(res.eofs.values, ref.eofs.values, atol=1e-5)
    path = tmp_path / "e.nc"
    res.to_dataset().to_netcdf(path)
    with netCDF4.Dataset(path) as nc:
        assert {n: nc[n].dtype for n in ("eofs", "pcs", "mean", "weights", "variance_fraction")} == {
            "eofs": np.float32, "pcs": np.float32, "mean": np.float32, "weights": np.float32,
            "variance_fraction": np.float64}


def test_standardized_pcs_and_eofs_as_covariance_and_correlation(field):
    """The maps plotted from an EOF analysis (the field regressed on each unit-variance PC, in its
    units; or correlated with it) and the unit-variance PCs had to be computed by hand: the EOFs
    are unit-norm weighted patterns, the PCs in the field's units times sqrt(n) pixels."""
    res = eof(field, n_modes=3)
    z = res.standardized_pcs()
    assert z.dims == ("time", "mode") and z.attrs["units"] == "1"
    np.testing.assert_allclose(z.var("time", ddof=1).values, 1.0, rtol=1e-10)
    anom = (field - field.mean("time")).values
    cov = np.einsum("tk,tyx->kyx", z.values - z.values.mean(0), anom) / (field.sizes["time"] - 1)
    got = res.eofs_as("covariance")
    assert got.attrs["units"] == "degC" and got.name == "eofs_covariance"
    np.testing.assert_allclose(got.values, cov, atol=1e-10)  # NaN on land in both
    corr = res.eofs_as("correlation")
    assert corr.attrs["units"] == "1"
    np.testing.assert_allclose(corr.values, cov / anom.std(0, ddof=1), atol=1e-10)
    assert np.nanmax(np.abs(corr.values)) <= 1 + 1e-12 and np.nanmax(corr.values[0]) > 0.9
    # the sum over all modes of the squared correlations is 1 at each pixel (all the variance)
    every = eof(field, n_modes=30).eofs_as("correlation")
    np.testing.assert_allclose((every**2).sum("mode").values[3:, 4:], 1.0, rtol=1e-9)
    flat = field.copy()
    flat[:, 5, 5] = 15.0  # a pixel that does not vary has no correlation
    assert np.isnan(eof(flat, n_modes=2).eofs_as("correlation").values[:, 5, 5]).all()
    with pytest.raises(InputError, match="eofs_as\\(kind\\) must be 'covariance' or 'correlation', got 'cov'"):
        res.eofs_as("cov")
    with pytest.raises(InputError, match="center=False"):
        eof(field, n_modes=2, center=False).eofs_as()
    # written with the analysis (`oceandl eof`'s file); not for an uncentred one, which has no anomalies
    ds = res.to_dataset()
    for name, da in (("eofs_covariance", got), ("eofs_correlation", corr), ("standardized_pcs", z)):
        np.testing.assert_array_equal(ds[name].values, da.values)
        assert ds[name].attrs["long_name"] == da.attrs["long_name"] and "options" not in ds[name].attrs
    assert not {"eofs_covariance", "standardized_pcs"} & set(eof(field, n_modes=2, center=False).to_dataset())


def test_cli_coslat_refuses_a_file_without_latitudes(field, tmp_path):
    """A file on (time, y, x) without latitudes was read with lat = 0, 1, 2... (the row index, labelled
    degrees_north) and weighted by sqrt(cos(row index in degrees)), exit 0; it is refused now, while
    2-D nav_lat on projected y/x in metres gives the weights of the latitudes."""
    from oceandl.cli.main import main
    from oceandl.io import open_field

    ref = eof(field, n_modes=3)
    grid = field.rename(lat="y", lon="x")
    bare = tmp_path / "bare.nc"
    grid.drop_vars(["y", "x"]).to_dataset().to_netcdf(bare)
    out = tmp_path / "e.nc"
    code = main(["eof", str(bare), "-n", "3", "-o", str(out)])
    assert code == 2 and not out.exists()
    with pytest.raises(InputError, match="no latitude coordinate along 'y'.*--weights none"):
        eof(open_field(bare))
    assert main(["eof", str(bare), "-n", "3", "--weights", "none", "-o", str(out)]) == 0
    with xr.open_dataset(out) as e:
        assert (e["weights"].values == 1).all()
    nav = tmp_path / "nav.nc"
    lat2d = np.repeat(field["lat"].values[:, None], field.sizes["lon"], 1)
    grid.assign_coords(y=("y", np.arange(field.sizes["lat"]) * 1e5, {"units": "m"}),
                       x=("x", np.arange(field.sizes["lon"]) * 1e5, {"units": "m"}),
                       nav_lat=(("y", "x"), lat2d, {"units": "degrees_north"}),
                       nav_lon=(("y", "x"), np.repeat(field["lon"].values[None], field.sizes["lat"], 0),
                                {"units": "degrees_east"})).to_dataset().to_netcdf(nav)
    out2 = tmp_path / "e2.nc"
    assert main(["eof", str(nav), "-n", "3", "-o", str(out2)]) == 0
    with xr.open_dataset(out2) as e:
        np.testing.assert_allclose(e["eigenvalues"].values, ref.eigenvalues.values, rtol=1e-10)


def test_project_one_map(field):
    """Projecting one map (today's anomaly; eofs' projectField takes it) was refused as 'expected 3
    dims (time, lat, lon)'; it now gives the (mode,) pseudo-PCs, its time kept as a scalar."""
    res = eof(field, n_modes=3)
    day = field.isel(time=7)
    got = res.project(day)
    assert got.dims == ("mode",) and got["time"].item() == 7
    assert got.attrs["units"] == "degC" and got.attrs["long_name"].startswith("pseudo principal components")
    assert got.attrs["method"] == "eof"
    np.testing.assert_allclose(got.values, res.pcs.isel(time=7).values, atol=1e-9)
    np.testing.assert_allclose(res.project(day.drop_vars("time").transpose("lon", "lat")).values, got.values)
    with pytest.raises(InputError, match="2-D field needs the analysis' spatial dims"):
        res.project(field.isel(lat=0))
    # in the analysis' precision, as its pcs (float64 for a float32 field before)
    res32 = eof(field.astype(np.float32), n_modes=3)
    assert res32.project(field.astype(np.float32)).dtype == res32.pcs.dtype == np.float32
    assert got.dtype == res.pcs.dtype


def test_weights_may_be_nan_on_land(field, example_sst):
    """Weights that are NaN over land (an area or mask field; eofs takes them) were refused as 'weights
    must be finite and non-negative'; they are taken now, and refused where the field has values."""
    from eofs.xarray import Eof

    sst = example_sst
    w = np.sqrt(np.cos(np.deg2rad(sst["latitude"]))).broadcast_like(sst.isel(time=0, drop=True))
    w = w.where(sst.isel(time=0, drop=True).notnull())
    got = eof(sst, n_modes=3, weights=w)
    np.testing.assert_allclose(got.eigenvalues.values, Eof(sst, weights=w.values).eigenvalues(neigs=3).values,
                               rtol=1e-6)  # 58.19, 15.35, 8.47
    np.testing.assert_allclose(got.eigenvalues.values, eof(sst, n_modes=3).eigenvalues.values, rtol=1e-6)
    w2 = np.ones(field.shape[1:])
    w2[5, 5] = np.nan  # an ocean pixel
    with pytest.raises(InputError, match=r"weights are missing \(NaN\) at 1 pixels where variable 'sst' has values"):
        eof(field, weights=w2)
    with pytest.raises(InputError, match="finite and non-negative"):
        eof(field, weights=-w2)


@pytest.mark.parametrize("units, expected", [("K", "K2"), ("degree_Celsius", "K2"), ("degrees_C", "K2"),
                                             ("kelvin", "K2"), ("m", "m2"), ("1", "1"), ("m s-1", None), (None, None)])
def test_eigenvalues_are_in_the_squared_units_of_the_field(field, units, expected):
    """The eigenvalues (and their North errors) are variances, in the field's units squared: they
    had no units attribute, so a reader could not tell degC**2 from a fraction. A temperature's
    variance is K2 (UDUNITS cannot raise degree_Celsius, an offset unit, to a power); a compound
    unit is left without rather than written wrongly."""
    # values near 15 are refused in kelvin (check_units_values): the same field in kelvin, same variances
    f = field + 273.15 if units in ("K", "kelvin") else field.copy()
    f.attrs = {} if units is None else {"units": units}
    res = eof(f, n_modes=2)
    for da in (res.eigenvalues, res.eigenvalue_errors, res.to_dataset()["eigenvalues"]):
        assert da.attrs.get("units") == expected, da.name
    assert res.pcs.attrs.get("units") == units  # the PCs keep the field's


# ------------------------------------------------------------------------------------------------
# Varimax rotation
# ------------------------------------------------------------------------------------------------


def test_varimax_matches_scikit_learn_on_real_sst(example_sst):
    """The rotated loadings equal scikit-learn's varimax (FactorAnalysis' rotation) of the same
    loadings, on the eofs package's real SST anomalies."""
    fa = pytest.importorskip("sklearn.decomposition._factor_analysis", reason="scikit-learn is not installed")
    if not hasattr(fa, "_ortho_rotation"):
        pytest.skip("this scikit-learn has no _ortho_rotation")
    res = eof(example_sst, n_modes=6)
    rot = res.rotate(4, tol=1e-12)
    L = res._E[:4].T * np.sqrt(res.eigenvalues.values[:4])
    ref = fa._ortho_rotation(L, method="varimax", tol=1e-12, max_iter=1000).T  # (pixels, modes)
    var = (ref**2).sum(axis=0)
    order = np.argsort(-var)
    np.testing.assert_allclose(rot.eigenvalues.values, var[order], rtol=1e-5)
    patterns = (ref[:, order] / np.sqrt(var[order])).T
    np.testing.assert_allclose(np.abs((patterns * rot._E).sum(axis=1)), 1.0, atol=1e-6)
    # the rotation moved the modes: the first rotated pattern is not the first EOF
    assert abs((rot._E[0] * res._E[0]).sum()) < 0.999


def test_varimax_keeps_the_field_and_uncorrelated_pcs(field):
    res = eof(field, n_modes=5)
    rot = res.rotate(3)
    assert rot.n_modes == 3 and rot.eofs.sizes["mode"] == 3 and res.n_modes == 5  # the original is untouched
    np.testing.assert_allclose(rot.reconstruct().values, res.reconstruct(3).values, atol=1e-10)
    np.testing.assert_allclose(rot.eigenvalues.sum(), res.eigenvalues[:3].sum(), rtol=1e-12)
    assert (np.diff(rot.eigenvalues.values) <= 0).all()
    corr = np.corrcoef(rot.pcs.values.T)
    np.testing.assert_allclose(corr, np.eye(3), atol=1e-10)
    R = rot.rotation_matrix.values
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.nansum(rot.eofs.values**2, axis=(1, 2)), 1.0, rtol=1e-6)
    # standardized rotated PCs = unrotated standardized PCs times the rotation
    np.testing.assert_allclose(rot.standardized_pcs().values, res.standardized_pcs().values[:, :3] @ R.T,
                               atol=1e-8)
    np.testing.assert_allclose(rot.project(field).values, rot.pcs.values, atol=1e-8)
    assert rot.eigenvalue_errors is None and "varimax" in rot.attrs["rotation"] and "varimax" in repr(rot)
    ds = rot.to_dataset()
    assert "rotation_matrix" in ds and "eigenvalue_errors" not in ds and "Rotated" not in res.to_dataset().attrs["title"]
    assert "varimax" in ds.attrs["history"] and ds.attrs["title"].startswith("Rotated")
    assert "rotation" not in res.mean.attrs  # the unrotated analysis' arrays are not changed


def test_varimax_separates_two_blobs_that_eofs_mix():
    """Two independent patterns of equal variance on separate blobs: the EOFs are their sum and
    difference (each half on both blobs); the rotated modes are the blobs."""
    rng = np.random.default_rng(1)
    nt, ny, nx = 200, 20, 30
    y, x = np.mgrid[:ny, :nx]
    blob_a = np.exp(-((y - 10) ** 2 + (x - 7) ** 2) / 10.0)
    blob_b = np.exp(-((y - 10) ** 2 + (x - 22) ** 2) / 10.0)
    a, b = rng.normal(size=(2, nt))
    a = (a - a.mean()) / a.std()
    b = b - b.mean()
    b = b - a * (a @ b) / (a @ a) + 0.3 * a  # correlated 0.3 with equal variance: EOFs are a +- b
    b /= b.std()
    data = a[:, None, None] * blob_a + b[:, None, None] * blob_b + 0.01 * rng.normal(size=(nt, ny, nx))
    da = xr.DataArray(data, dims=("time", "lat", "lon"), coords={"lat": np.linspace(-5, 5, ny)})
    res = eof(da, n_modes=2, weights=None)
    rot = res.rotate(2)
    on_a = blob_a.ravel() > 0.05

    def share_on_one_blob(patterns):
        p = patterns.reshape(2, -1) ** 2
        return np.maximum(p[:, on_a].sum(1), p[:, ~on_a].sum(1)) / p.sum(1)

    assert share_on_one_blob(res.eofs.values).max() < 0.75     # each EOF is on both blobs
    assert share_on_one_blob(rot.eofs.values).min() > 0.95     # each rotated mode on one


def test_rotate_refuses_bad_arguments(field):
    res = eof(field, n_modes=3)
    for bad in (1, 4, 2.0, True):
        with pytest.raises(InputError, match="rotate\\(n_modes\\)"):
            res.rotate(bad)
    with pytest.raises(InputError, match="rotated already"):
        res.rotate(2).rotate(2)
    with pytest.raises(InputError, match="max_iter"):
        res.rotate(2, max_iter=0)


def test_cli_eof_rotate(field, tmp_path):
    from oceandl.cli.main import main

    path = tmp_path / "f.nc"
    field.to_dataset().to_netcdf(path)
    out = tmp_path / "r.nc"
    assert main(["eof", str(path), "-n", "4", "--rotate", "3", "-o", str(out)]) == 0
    ref = eof(field, n_modes=4).rotate(3)
    with xr.open_dataset(out) as e:
        assert e.sizes["mode"] == 3 and "rotation_matrix" in e
        np.testing.assert_allclose(e["eigenvalues"].values, ref.eigenvalues.values, rtol=1e-10)
    bad = tmp_path / "bad.nc"
    assert main(["eof", str(path), "-n", "4", "--rotate", "5", "-o", str(bad)]) == 2 and not bad.exists()


def test_a_depth_level_is_analysed_as_interpolate_and_the_cli_read_it(field):
    """A (time, depth=1, lat, lon) field: eof() refused it ('expected 3 dims (time, lat, lon), got 4
    dims') where interpolate() and `oceandl eof` (open_field) drop the level. It is now analysed as the
    (time, lat, lon) field, the depth a scalar coordinate of the results, and project() takes it too."""
    level = field.expand_dims(depth=[5.0], axis=1)
    ref, res = eof(field, n_modes=3), level.oceandl.eof(3)
    assert res.eofs.dims == ("mode", "lat", "lon") and float(res.eofs["depth"]) == 5.0
    np.testing.assert_allclose(res.eofs.values, ref.eofs.values, equal_nan=True)
    np.testing.assert_allclose(res.pcs.values, ref.pcs.values)
    np.testing.assert_allclose(res.project(level.transpose("lon", "depth", "lat", "time")).values, ref.pcs.values,
                               rtol=1e-8, atol=1e-8)
    with pytest.raises(InputError, match="expected 3 dims"):  # a real 4th dim is still refused
        eof(field.expand_dims(depth=[5.0, 10.0], axis=1))
