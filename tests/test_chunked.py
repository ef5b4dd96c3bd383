"""Chunked gap filling of cubes larger than memory (dask), against the in-memory path."""
from __future__ import annotations

import json
import re
import tracemalloc
import warnings

import numpy as np
import pytest
import xarray as xr
from fakes import CountedArray

from oceandl.errors import InputError
from oceandl.interp import get_method, interpolate
from oceandl.interp.chunked import interpolate_chunked, parse_chunks, plan_blocks
from oceandl.io import open_field, write_netcdf

distributed = pytest.importorskip("distributed", reason="dask.distributed runs the LocalCluster test")


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """A seeded gappy SST cube with land (48 days x 40 x 48) as netCDF, and its cloud-free truth."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=48, ny=40, nx=48, cloud_cover=0.5, seed=1)
    path = tmp_path_factory.mktemp("chunked") / "sst.nc"
    write_netcdf(ds[["sst"]], path, encoding={"sst": {"chunksizes": (1, 40, 48)}})
    return path, ds["sst_true"].values


@pytest.fixture
def cluster():
    """2 in-process workers whose memory limit is below the cube's size (monitoring off: the test
    process holds the workers, its RSS is not theirs; the bound is checked with tracemalloc)."""
    import dask

    cfg = {"distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False,
           "distributed.worker.memory.spill": False, "distributed.worker.memory.target": False}
    with dask.config.set(cfg), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, memory_limit="250kB",
                                      dashboard_address=None) as lc, distributed.Client(lc) as client:
            yield client




def test_plan_partitions_the_cube_and_clips_halos():
    blocks = plan_blocks((10, 9, 7), {"time": 4, "lat": 5, "lon": -1}, {"lat": 2, "time": 1})
    assert len(blocks) == 3 * 2 * 1
    cover = np.zeros((10, 9, 7), int)
    for b in blocks:
        cover[b.core] += 1
        for c, e, n in zip(b.core, b.ext, (10, 9, 7)):
            assert 0 <= e.start <= c.start and c.stop <= e.stop <= n
    assert (cover == 1).all()
    assert blocks[1].ext[1] == slice(3, 9) and blocks[0].ext[0] == slice(0, 5)
    assert parse_chunks("time=100, lat=256,lon=all") == {"time": 100, "lat": 256, "lon": -1}
    assert parse_chunks(16, "--halo") == parse_chunks("16", "--halo") == {"lat": 16, "lon": 16}
    for bad in ("depth=3", "lat=x", "lat=0", "lat"):
        with pytest.raises(InputError, match="--chunks"):
            parse_chunks(bad)
    assert parse_chunks("lat=0,time=2", "--halo") == {"lat": 0, "time": 2}
    # a halo of -1 or 'all' ran the blocks with none (seams), reported as halo -1
    for bad in ("lat=-1", "lon=all", "-1", -1):
        with pytest.raises(InputError, match=r"--halo: (lat|lon)=-1 must be an integer >= 0"):
            parse_chunks(bad, "--halo")


def test_bad_input_is_one_line(cube, tmp_path):
    path, _ = cube
    with pytest.raises(InputError, match="file not found"):
        interpolate_chunked(tmp_path / "nope.nc", tmp_path / "o.nc", "climatology")
    with pytest.raises(InputError, match="unknown option"):
        interpolate_chunked(path, tmp_path / "o.nc", "dineof", bogus=1)
    with pytest.raises(InputError, match="netCDF"):
        interpolate_chunked(path, tmp_path / "o.zarr", "climatology")
    with pytest.raises(InputError, match="complevel"):
        interpolate_chunked(path, tmp_path / "o.nc", "climatology", complevel=12)
    assert not (tmp_path / "o.nc").exists()


def test_bad_file_content_is_named_by_the_file(cube, tmp_path):
    # the file is opened lazily here and handed to open_field as a Dataset: its checks said
    # 'Dataset: variable ...', naming no file
    path, _ = cube
    with xr.open_dataset(path) as ds:
        bad = ds.load()
    bad = bad.assign_coords(time=bad.time.values[[0, 0, *range(2, bad.sizes["time"])]])
    src = write_netcdf(bad, tmp_path / "dup_times.nc")
    with pytest.raises(InputError) as e:
        interpolate_chunked(src, tmp_path / "o.nc", "climatology")
    msg = str(e.value)
    assert msg.startswith(f"{src}: variable 'sst': time has duplicate values"), msg
    # one time step: 'variable 'sst': needs at least 2 time steps' named no file
    one = write_netcdf(bad.isel(time=[0]), tmp_path / "one_day.nc")
    with pytest.raises(InputError, match=rf"^{re.escape(str(one))}: variable 'sst': needs at least 2 time steps"):
        interpolate_chunked(one, tmp_path / "o.nc", "climatology")
    assert not (tmp_path / "o.nc").exists()


def test_complevel_zero_writes_the_same_values_uncompressed(cube, tmp_path):
    import netCDF4

    path, _ = cube
    outs = {lvl: tmp_path / f"c{lvl}.nc" for lvl in (0, 4)}
    for lvl, out in outs.items():
        res = interpolate_chunked(path, out, "climatology", chunks="time=-1,lat=32,lon=32", complevel=lvl)
        # the repr (a notebook's display) leaves out the file's provenance: options JSON and history made it 800 chars
        assert "history" not in repr(res) and "n_blocks=" in repr(res) and res.attrs["method"] == "climatology"
        with netCDF4.Dataset(out) as nc:
            assert all(nc[v].filters()["zlib"] is (lvl > 0) for v in ("sst", "missing_flag"))
    with xr.open_dataset(outs[0]) as a, xr.open_dataset(outs[4]) as b:
        xr.testing.assert_equal(a, b)


def test_scalar_coordinate_named_like_an_output_variable(tmp_path):
    """A (time, sigma=1, lat, lon) level: its scalar 'sigma' coordinate and the error-std variable
    'sigma' failed as netCDF's 'String match to name in use' (exit 1 from the CLI)."""
    from oceandl.datasets.sst import synthetic_sst

    src = tmp_path / "level.nc"
    synthetic_sst(n_time=8, ny=8, nx=10, seed=0)[["sst"]].expand_dims(sigma=[-0.5], axis=1).to_netcdf(src)
    with pytest.warns(UserWarning, match="'sigma' named like output variables; kept as 'sigma_coord'"):
        interpolate_chunked(src, tmp_path / "out.nc", "climatology", chunks="time=4")
    with xr.open_dataset(tmp_path / "out.nc") as ds:
        assert float(ds["sigma_coord"]) == -0.5 and ds["sigma"].dims == ("time", "lat", "lon")
        assert np.isfinite(ds["sigma"].values).any()


def test_cluster_climatology_exact_dineof_close_and_memory_bounded(cube, cluster, tmp_path, one_torch_thread):
    """On a LocalCluster whose workers' limit (250 kB) is below the cube (369 kB as float32).

    Tolerances: climatology exact (filled field and flags bit-identical; sigma to 1e-6 relative,
    the in-memory method rounds its anomalies to float32). DINEOF per-region fits: the gap RMSE
    against the truth within 15% of the in-memory path's, observed pixels and land identical.
    Memory: the blocks in flight hold less than the limit, and the data held by the workers
    (sampled) stays below it. A released result leaves the worker asynchronously, so for a moment
    the workers can hold one result set more than the window: with two blocks in flight the data
    held peaked at 215 kB, over the 200 kB limit this test had, in about one run in eight.
    """
    from distributed.diagnostics import MemorySampler

    path, truth = cube
    da = open_field(path, "sst")
    nbytes, limit = da.size * 4, 250_000
    assert nbytes > limit
    ref = interpolate(da, "climatology", return_dataset=True)
    ms = MemorySampler()
    with ms.sample("chunked", measure="managed", interval=0.01):
        res = interpolate_chunked(path, tmp_path / "clim.nc", "climatology", chunks="time=16,lat=20,lon=24",
                                  max_in_flight=2)
    held = ms.to_pandas()["chunked"]
    assert len(held) > 1 and held.max() < limit, held.max()
    assert res.n_blocks == 3 * 2 * 2 and res.max_block_bytes == 16 * 20 * 24 * 4
    assert res.max_block_bytes * res.max_in_flight < limit
    with xr.open_dataset(tmp_path / "clim.nc") as out:
        np.testing.assert_array_equal(out["sst"].values, ref["sst"].values)
        np.testing.assert_array_equal(out["missing_flag"].values, ref["missing_flag"].values)
        np.testing.assert_allclose(out["sigma"].values, ref["sigma"].values, rtol=1e-6)
        assert out["sigma"].attrs["comment"] == ref["sigma"].attrs["comment"]  # sigma at observed pixels, said
        assert out.attrs["method"] == "climatology" and "chunked" in out.attrs
        assert out["sst"].encoding["chunksizes"] == (1, 20, 24)

    mem = interpolate(da, "dineof", n_modes=3).values
    res = interpolate_chunked(path, tmp_path / "dineof.nc", "dineof", chunks="lat=20,lon=24", halo=6, n_modes=3)
    assert res.n_blocks == 4 and res.halo == {"time": 0, "lat": 6, "lon": 6} and res.fallback_blocks == 0
    with xr.open_dataset(tmp_path / "dineof.nc") as out:
        got = out["sst"].values
    obs = np.isfinite(da.values)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(mem))
    np.testing.assert_array_equal(got[obs], da.values[obs])
    gap = ~obs & np.isfinite(mem) & np.isfinite(truth)

    def rmse(a):
        return float(np.sqrt(np.mean((a[gap] - truth[gap]) ** 2)))

    assert rmse(got) < 1.15 * rmse(mem), (rmse(got), rmse(mem))
    assert rmse(got) < 0.5 * float(np.std(truth[gap]))  # and it is a fill, not noise


def test_seasonal_climatology_chunked_equals_in_memory(tmp_path):
    """The harmonic fit's normal equations are dask sums over time: blocks of 64 days x 5 x 6 px give
    the in-memory seasonal climatology (the same fallback pixels) to float32 rounding."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=400, ny=12, nx=14, cloud_cover=0.5, seed=1)
    write_netcdf(ds[["sst"]], tmp_path / "sst.nc")
    da = open_field(tmp_path / "sst.nc", "sst")
    ref = interpolate(da, "climatology", return_dataset=True)  # auto: 400 dated days are 2 harmonics
    assert ref["sst"].attrs["harmonics"] == 2 and ref["sst"].attrs["harmonics_fallback_pixels"] > 0
    # the cycle is shrunk toward the neighbours' (not each pixel's own fit): the fold sums agree too
    from oceandl.interp.climatology import fit_harmonics

    model = get_method("climatology")().fit(da)
    assert model.shrinkage_["shrunk"]
    x = np.where(model.obs_, (model.values_ - model.mean_) / model.scale_, 0.0)
    own = fit_harmonics(x, model.obs_, model.ocean_, model._design)[0]
    assert np.abs(own - model._coef).max() > 0.1
    interpolate_chunked(tmp_path / "sst.nc", tmp_path / "out.nc", "climatology", chunks="time=64,lat=5,lon=6")
    with xr.open_dataset(tmp_path / "out.nc") as out:
        for key in ("harmonics", "harmonics_fallback_pixels"):
            assert out["sst"].attrs[key] == ref["sst"].attrs[key]
        np.testing.assert_array_equal(np.isnan(out["sst"].values), np.isnan(ref["sst"].values))
        np.testing.assert_allclose(out["sst"].values, ref["sst"].values, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(out["sigma"].values, ref["sigma"].values, rtol=1e-5)
        np.testing.assert_array_equal(out["missing_flag"].values, ref["missing_flag"].values)
    mean = interpolate(da, "climatology", harmonics=0).values
    gap = np.isnan(da.values) & np.isfinite(ds["sst_true"].values)
    truth = ds["sst_true"].values
    rmse = lambda a: float(np.sqrt(np.mean((a[gap] - truth[gap]) ** 2)))  # noqa: E731
    assert rmse(ref["sst"].values) < 0.6 * rmse(mean), (rmse(ref["sst"].values), rmse(mean))
    # harmonics on a file without dates: refused up front, naming the file
    write_netcdf(ds[["sst"]].assign_coords(time=np.arange(400)), tmp_path / "undated.nc")
    with pytest.raises(InputError, match=r"undated.nc: variable 'sst': harmonics=1 needs the day of year"):
        interpolate_chunked(tmp_path / "undated.nc", tmp_path / "x.nc", "climatology", harmonics=1)
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("method", ["dineof", "eof"])
def test_seasonal_cycle_of_dineof_blocks_is_the_global_one(tmp_path, method):
    """DINEOF/EOF blocks fit their modes to anomalies from the whole record's per-pixel seasonal
    cycle (dask sums, as the chunked climatology): one block over the cube is the in-memory fill
    (measured 3e-5 degC apart), and a block of 60 days (40-day core) that cannot be fitted (one
    observed day) takes the seasonal climatology, which a block's own fit of 60 days could not give
    (its gaps in February 1.69 degC off the truth, the time mean's 4.40)."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=400, ny=12, nx=14, cloud_cover=0.5, seed=1)
    write_netcdf(ds[["sst"]], tmp_path / "sst.nc")
    da = open_field(tmp_path / "sst.nc", "sst")
    opts = {"n_modes": 3, "harmonics": "auto"} if method == "dineof" else {"harmonics": "auto"}
    # DINEOF in float64, the same iterations on both sides: in float32, inputs 1e-7 apart (float32 in
    # memory, float64 sums here) ended 1.5e-3 degC apart after 100 iterations; in float64 60
    # iterations end 1.9e-6 apart, as 500 do (2.4e-6; 500 took 3x the test's time)
    tight = {"dtype": "float64", "tol": 1e-5, "max_iter": 60} if method == "dineof" else {}
    model = get_method(method)(seed=0, device="cpu", **opts, **tight).fit(da)
    ref = model.reconstruct()
    assert ref["sst"].attrs["harmonics"] == 2 and ref["sst"].attrs["harmonics_fallback_pixels"] == 1
    # the cycle removed is shrunk toward the neighbours', the same from the dask sums (float64) as in memory
    from oceandl.interp.chunked import _global_harmonics, _global_stats, open_lazy
    from oceandl.interp.climatology import harmonic_design, harmonic_folds, resolve_harmonics

    assert model.seasonal_.shrinkage["shrunk"]
    lazy = open_lazy(tmp_path / "sst.nc", "sst", {"time": 64, "lat": 5, "lon": 6})
    k, frac = resolve_harmonics("auto", lazy["time"])
    design = harmonic_design(frac, k)
    coef = _global_harmonics(_global_stats(lazy, True, design, harmonic_folds(frac, k)), design)[0]
    np.testing.assert_allclose(coef[:, model.ocean_].T, model.seasonal_.coef * model.scale_, rtol=1e-5, atol=1e-6)
    interpolate_chunked(tmp_path / "sst.nc", tmp_path / "one.nc", method, chunks="lat=12,lon=14", seed=0,
                        device="cpu", **opts, **tight)
    with xr.open_dataset(tmp_path / "one.nc") as out:
        for key in ("harmonics", "harmonics_fallback_pixels"):
            assert out["sst"].attrs[key] == ref["sst"].attrs[key]
        np.testing.assert_allclose(out["sst"].values, ref["sst"].values, atol=1e-4)
    # days 30-90 (block 1's read: core 40-80, halo 10; February, the coldest) cloudy but day 60: it falls back
    cloudy = ds[["sst"]].copy(deep=True)
    days = np.r_[30:60, 61:90]
    cloudy["sst"][days] = np.nan
    write_netcdf(cloudy, tmp_path / "cloudy.nc")
    with pytest.warns(UserWarning, match="1 of 10 blocks could not be fitted"):
        res = interpolate_chunked(tmp_path / "cloudy.nc", tmp_path / "t.nc", method, chunks="time=40,lat=12,lon=14",
                                  device="cpu", **opts)
    assert res.fallback_blocks == 1
    clim = interpolate(open_field(tmp_path / "cloudy.nc", "sst"), "climatology").values
    with xr.open_dataset(tmp_path / "t.nc") as out:
        assert out["sst"].attrs["harmonics"] == 2
        got = out["sst"].values
    np.testing.assert_allclose(got[40:70], clim[40:70], atol=1e-4)  # block 2 blends into 70-80
    gap = np.isnan(cloudy["sst"].values[40:70]) & np.isfinite(ds["sst_true"].values[40:70])
    truth = ds["sst_true"].values[40:70][gap]
    v = cloudy["sst"].values
    mean_fill = np.broadcast_to(np.nansum(v, axis=0) / np.maximum(np.isfinite(v).sum(axis=0), 1), gap.shape)[gap]
    rmse = lambda a: float(np.sqrt(np.mean((a - truth) ** 2)))  # noqa: E731
    assert rmse(got[40:70][gap]) < 0.6 * rmse(mean_fill), (rmse(got[40:70][gap]), rmse(mean_fill))


@pytest.mark.parametrize("method", ["dineof", "eof"])
def test_chunked_default_harmonics_is_the_in_memory_one(tmp_path, method):
    """Without ``harmonics``, DINEOF and eof under ``--chunks`` take anomalies from the time mean
    (harmonics=0), as they do in memory: the chunked path defaulted to "auto" and fitted a seasonal
    cycle on a year of dates (a 360_day year, 10 x 11 px blocks: values 11.96..35.70 degC from
    inputs in 22.5..27.1, RMSE 0.33 at the gaps against 0.0055 with harmonics=0)."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=370, ny=8, nx=10, cloud_cover=0.5, seed=1)
    write_netcdf(ds[["sst"]], tmp_path / "sst.nc")
    opts = {"n_modes": 2} if method == "dineof" else {}
    ref = interpolate(open_field(tmp_path / "sst.nc", "sst"), method, **opts)
    assert ref.attrs["harmonics"] == 0
    interpolate_chunked(tmp_path / "sst.nc", tmp_path / "c.nc", method, chunks="lat=8,lon=10", seed=0,
                        device="cpu", **opts)
    with xr.open_dataset(tmp_path / "c.nc") as out:
        assert out["sst"].attrs["harmonics"] == 0
        assert "harmonics_fallback_pixels" not in out["sst"].attrs
        np.testing.assert_allclose(out["sst"].values, ref.values, atol=1e-3)


def test_time_chunked_eof_blocks_take_anomalies_from_the_record_mean(tmp_path):
    """With harmonics=0 (the default) each block fitted its modes about its own time chunk's mean
    (and, at a pixel seen once in the chunk, the block's spatial mean), where the docs promise the
    whole record's: 15-day chunks of a 60 x 32 x 32 cube filled the gaps with RMSE 2.56 degC against
    the truth (in memory: 1.44); about the record's mean, 1.43."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=60, ny=32, nx=32, cloud_cover=0.5, seed=1)
    write_netcdf(ds[["sst"]], tmp_path / "sst.nc")
    da = open_field(tmp_path / "sst.nc", "sst")
    truth = ds["sst_true"].values
    gap = np.isnan(da.values) & np.isfinite(da.values).any(axis=0)
    rmse = lambda a: float(np.sqrt(np.mean((a[gap] - truth[gap]) ** 2)))  # noqa: E731
    ref = rmse(interpolate(da, "eof").values)
    interpolate_chunked(tmp_path / "sst.nc", tmp_path / "c.nc", "eof", chunks="time=15,lat=-1,lon=-1")
    with xr.open_dataset(tmp_path / "c.nc") as out:
        got = rmse(out["sst"].values)
    assert got < 1.3 * ref, (got, ref)


@pytest.mark.parametrize("method, chunks, passes", [("climatology", "time=12,lat=20,lon=-1", 3.0),
                                                    ("dineof", "time=-1,lat=20,lon=-1", 2.25)])
def test_the_cube_is_read_once_per_statistics_pass_and_once_for_the_blocks(tmp_path, method, chunks, passes):
    """A lazy cube is read by the statistics passes and the blocks only: the check of its values
    (all missing, constant) was a pass of its own, run again when the blocks reopened the input
    with finer chunks (climatology 4 cubes read; DINEOF 4.25, whose blocks read 1.25 with their
    5-row halos). Counted on a dask array whose every chunk read is recorded."""
    import dask.array as dsa
    from oceandl.datasets.sst import synthetic_sst

    field = synthetic_sst(n_time=24, ny=40, nx=44, cloud_cover=0.5, seed=1)["sst"].load()

    src = CountedArray(field.values)
    lazy = field.copy(data=dsa.from_array(src, chunks=(12, 5, 44)))
    interpolate_chunked(lazy, tmp_path / "o.nc", method, chunks=chunks, **({"n_modes": 2} if method == "dineof" else {}))
    assert (tmp_path / "o.nc").exists()
    assert src.read / field.size == pytest.approx(passes), src.read / field.size


@pytest.mark.slow
def test_numpy_peak_of_a_large_cube_stays_below_half_of_it(cube, tmp_path):
    """tracemalloc peak of the chunked path on a 35 MiB cube < half of it (measured ~14 MiB,
    dominated by dask's statistics pass); the in-memory path's peak exceeds the cube (~355 MiB)."""
    path, _ = cube
    with xr.open_dataset(path) as ds:
        big = ds.load()
    v = np.tile(big["sst"].values, (4, 5, 5))  # (192, 200, 240)
    big = xr.Dataset({"sst": (("time", "lat", "lon"), v)},
                     coords={"time": np.arange(192), "lat": np.linspace(20, 40, 200),
                             "lon": np.linspace(-60, -30, 240)})
    write_netcdf(big, tmp_path / "big.nc", encoding={"sst": {"chunksizes": (1, 200, 240)}})
    tracemalloc.start()
    try:
        interpolate_chunked(tmp_path / "big.nc", tmp_path / "out.nc", "climatology", chunks="time=32,lat=40,lon=48",
                            max_in_flight=2)
        _, peak_chunked = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        interpolate(open_field(tmp_path / "big.nc"), "climatology")
        _, peak_mem = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_chunked < v.nbytes / 2 < v.nbytes < peak_mem, (peak_chunked, peak_mem, v.nbytes)


def test_neural_blocks_match_in_memory_inference(cube, tmp_path, one_torch_thread):
    """One trained U-Net; chunked inference (time chunks with the neighbour-day halo, spatial blocks
    blended over the overlap) vs the in-memory tiled inference with the same checkpoint.
    Tolerance: gap RMS difference < 1% and max difference < 10% of the field's std (measured
    ~0.2% and ~2%)."""
    from oceandl.interp import get_method

    path, _ = cube
    da = open_field(path, "sst")
    opts = dict(tile=24, overlap=6, device="cpu")
    net = get_method("unet")(steps=8, patch=24, model_options={"width": 8, "depth": 2}, **opts).fit(da)
    net.save(tmp_path / "unet")
    ref = get_method("unet")(checkpoint=str(tmp_path / "unet"), **opts).fit(da).reconstruct()["sst"].values
    res = interpolate_chunked(path, tmp_path / "unet.nc", "unet", chunks="time=24,lat=20,lon=24",
                              checkpoint=str(tmp_path / "unet"), **opts)
    assert res.halo == {"time": 1, "lat": 6, "lon": 6}
    with xr.open_dataset(tmp_path / "unet.nc") as out:
        got = out["sst"].values
        # the loaded network is named by its weights' hash, as in memory
        import hashlib
        sha = hashlib.sha256((tmp_path / "unet" / "weights.safetensors").read_bytes()).hexdigest()
        assert out["sst"].attrs["checkpoint_sha256"] == sha == out.attrs["checkpoint_sha256"]
        assert out["sst"].attrs["normalisation"] == "training"  # the checkpoint's grid: its statistics
    gap = np.isnan(da.values) & np.isfinite(ref)
    d = np.abs(got - ref)[gap]
    std = float(np.std(ref[gap]))
    assert np.sqrt(np.mean(d ** 2)) < 0.01 * std and d.max() < 0.1 * std, (np.sqrt(np.mean(d ** 2)), d.max(), std)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


def test_a_single_day_is_filled_with_the_checkpoint_statistics(cube, tmp_path, one_torch_thread):
    """A one-day file was refused ('needs at least 2 time steps'); with a checkpoint of its grid
    it is normalised with the training statistics, block by block exactly as in memory, and its
    pixels under cloud all day are filled (the in-memory path took them for land)."""
    from oceandl.interp import get_method

    path, _ = cube
    da = open_field(path, "sst")
    net = get_method("unet")(steps=4, patch=24, neighbours=0, model_options={"width": 8, "depth": 2}, device="cpu")
    net.fit(da).save(tmp_path / "unet")
    day = da.isel(time=slice(7, 8))
    write_netcdf(day.to_dataset(), tmp_path / "day.nc")
    opts = dict(tile=None, device="cpu", precision="fp32", checkpoint=str(tmp_path / "unet"))
    ref = get_method("unet")(**opts).fit(day).reconstruct()["sst"].values
    interpolate_chunked(tmp_path / "day.nc", tmp_path / "out.nc", "unet", chunks="time=1,lat=20,lon=24",
                        halo="lat=8,lon=8", **opts)
    with xr.open_dataset(tmp_path / "out.nc") as out:
        got = out["sst"].values
        assert out["sst"].attrs["normalisation"] == "training"
    ocean = np.isfinite(da.values).any(0)
    assert (~np.isfinite(day.values[0]) & ocean).sum() > 100  # cloudy pixels of the day: filled below
    assert np.isfinite(got[:, ocean]).all() and np.isnan(got[:, ~ocean]).all()
    # blocks of 20 x 24 with an 8 px halo against one pass over the grid: the U-Net's receptive field
    # is wider than the halo, so close (measured 1.8e-4 of the field's spread), not bit for bit
    assert np.nanmax(np.abs(got - ref)) < 5e-3 * np.nanstd(ref)
    with pytest.raises(InputError, match="at least 2 time steps"):
        interpolate_chunked(tmp_path / "day.nc", tmp_path / "out2.nc", "unet", chunks="time=1",
                            **{**opts, "normalisation": "input"})
    assert not (tmp_path / "out2.nc").exists()


@pytest.mark.parametrize("gap", ["land_north", "cloudy_start"])
def test_neural_default_region_is_one_with_observations(tmp_path, gap, one_torch_thread):
    """The default training region (first time chunk of the central block) on land or under
    clouds failed as "variable 'sst': all values are NaN" (with a checkpoint too: the network is
    loaded on that region)."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=6, ny=16, nx=16, cloud_cover=0.3, seed=0)[["sst"]].load()
    if gap == "land_north":
        ds["sst"][:, 8:] = np.nan  # the central block of lat chunks of 8 starts at row 8
    else:
        ds["sst"][:3] = np.nan  # the first time chunk: no observation
    path = tmp_path / "sst.nc"
    write_netcdf(ds, path)
    opts = dict(steps=1, patch=8, tile=8, overlap=2, model_options={"width": 4, "depth": 1}, device="cpu")
    interpolate_chunked(path, tmp_path / "out.nc", "unet", chunks="time=3,lat=8,lon=-1", **opts)
    with xr.open_dataset(tmp_path / "out.nc") as out:
        ocean = np.isfinite(ds["sst"].values).any(axis=0)
        assert np.isfinite(out["sst"].values[:, ocean]).all()
    # a region given without observations is named in the error
    with pytest.raises(InputError, match="region time 0:3, lat 8:16"):
        interpolate_chunked(path, tmp_path / "x.nc", "unet", chunks="time=3,lat=8,lon=-1", **opts,
                            train_region={"time": slice(0, 3), "lat": slice(8, 16), "lon": slice(0, 16)})
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("method", ["dineof", "eof"])
def test_an_all_land_block_is_not_a_failed_fit(tmp_path, method):
    """A block of land only (a continent: no pixel observed in the record) was counted as a block
    that 'could not be fitted (too few observations) and took the climatology': warned about and
    in chunked_fallback_blocks (1 of 4 here; on a global cube, every continental block)."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=20, ny=32, nx=32, cloud_cover=0.4, seed=1)[["sst"]].load()
    ds["sst"][:, :21, :21] = np.nan  # block (0, 0) and its 4 px halo
    write_netcdf(ds, tmp_path / "sst.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        res = interpolate_chunked(tmp_path / "sst.nc", tmp_path / "o.nc", method, chunks="time=-1,lat=16,lon=16",
                                  **({"n_modes": 2} if method == "dineof" else {}))
    assert res.fallback_blocks == 0
    with xr.open_dataset(tmp_path / "o.nc") as out:
        assert out.attrs["chunked_fallback_blocks"] == 0
        assert np.isnan(out["sst"].values[:, :21, :21]).all() and (out["missing_flag"].values[:, :21, :21] == 0).all()
        ocean = np.isfinite(ds["sst"].values).any(axis=0)
        assert np.isfinite(out["sst"].values[:, ocean]).all() and ocean.sum() > 400


def test_options_attribute_records_every_option_as_in_memory(cube, tmp_path):
    """The file's ``options`` held only the options given ({"keep_observed": true, "n_modes": 3,
    "seed": 0} for eof), where the in-memory fill records every option with its value."""
    path, _ = cube
    ref = interpolate(open_field(path, "sst"), "eof", n_modes=3)
    interpolate_chunked(path, tmp_path / "o.nc", "eof", chunks="lat=20,lon=24", n_modes=3)
    with xr.open_dataset(tmp_path / "o.nc") as out:
        assert json.loads(out["sst"].attrs["options"]) == json.loads(ref.attrs["options"])
        assert json.loads(out.attrs["options"])["ridge"] == 0.01


def test_irregular_time_steps_are_warned_about_once(tmp_path, one_torch_thread):
    """A missing day in the series was warned about by every block that read it (8 identical
    warnings from the 16 blocks here, 18 on the command line for 36 blocks of a 20-day cube); the
    in-memory fill warns once."""
    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=13, ny=16, nx=16, cloud_cover=0.3, seed=0)[["sst"]].load()
    write_netcdf(ds.isel(time=[i for i in range(13) if i != 6]), tmp_path / "sst.nc")
    opts = dict(steps=1, patch=8, tile=8, overlap=2, model_options={"width": 4, "depth": 1}, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpolate_chunked(tmp_path / "sst.nc", tmp_path / "out.nc", "unet", chunks="time=3,lat=8,lon=8", **opts)
    irregular = [str(w.message) for w in caught if "irregular" in str(w.message)]
    assert len(irregular) == 1, irregular
    assert "1 day to 2 days" in irregular[0]


def test_progress_shows_the_region_training(tmp_path, capsys, one_torch_thread):
    """progress=True (the command line on a terminal) drew the blocks' bar only: the network's
    training on the region, minutes on a real cube, went by without a bar, as in memory it has."""
    from oceandl.datasets.sst import synthetic_sst

    write_netcdf(synthetic_sst(n_time=6, ny=16, nx=16, cloud_cover=0.3, seed=0)[["sst"]], tmp_path / "sst.nc")
    opts = dict(steps=3, patch=8, tile=8, overlap=2, model_options={"width": 4, "depth": 1}, device="cpu")
    interpolate_chunked(tmp_path / "sst.nc", tmp_path / "out.nc", "unet", chunks="time=3,lat=8,lon=8", progress=True,
                        **opts)
    err = capsys.readouterr().err
    assert "unet: training" in err and "unet: blocks" in err
    assert "unet: inference" not in err  # the blocks' own tiles draw no bar of their own


def test_cli_chunks_passes_through(cube, tmp_path, capsys):
    from oceandl.cli.main import main

    path, _ = cube
    out = tmp_path / "cli.nc"
    assert main(["interpolate", str(path), "--method", "climatology", "--chunks", "time=16,lat=20,lon=24",
                 "--quiet", "-o", str(out)]) == 0
    assert "12 blocks" in capsys.readouterr().out
    with xr.open_dataset(out) as ds:
        assert json.loads(ds.attrs["chunked"])["chunks"] == {"time": 16, "lat": 20, "lon": 24}
        assert int(ds["missing_flag"].sum()) > 0 and np.isfinite(ds["sst"].values).any()
    bad = ["interpolate", str(path), "--chunks", "lat=20", "--withhold", "0.2", "-o", str(tmp_path / "x.nc")]
    assert main(bad) == 2
    assert "--withhold" in capsys.readouterr().err
    # --halo without --chunks was accepted and ignored (exit 0, the in-memory fill)
    no_chunks = tmp_path / "halo.nc"
    assert main(["interpolate", str(path), "--method", "climatology", "--halo", "lat=2", "--quiet",
                 "-o", str(no_chunks)]) == 2
    assert "--halo: only with --chunks" in capsys.readouterr().err and not no_chunks.exists()


def test_source_grid_pass_is_written_by_the_client_not_the_workers(cube, cluster, tmp_path):
    """Latitude descending: the output is rewritten on the input's grid in one more pass. Under a
    distributed Client that pass ran on the workers (store tasks writing the file under a
    cluster-wide lock, reopening it for each chunk: 21 s against 1 s threaded). It now runs in the
    client process, as the blocks' writes do; the result is the in-memory one on the input's grid."""
    from dask.utils import key_split
    from distributed import get_task_stream

    from oceandl.io import source_grid, to_source_grid

    path, _ = cube
    with xr.open_dataset(path) as ds:
        flipped = ds.load().isel(lat=slice(None, None, -1))
    src = write_netcdf(flipped, tmp_path / "desc.nc")
    da = open_field(src, "sst")
    ref = to_source_grid(interpolate(da, "climatology", return_dataset=True), source_grid(da))
    with get_task_stream(cluster) as ts:
        interpolate_chunked(src, tmp_path / "dist.nc", "climatology", chunks="time=16,lat=20,lon=24",
                            max_in_flight=2)
    prefixes = {key_split(t["key"]) for t in ts.data}
    assert "run_block" in prefixes and not [p for p in prefixes if "store" in p], prefixes
    with xr.open_dataset(tmp_path / "dist.nc") as out:
        np.testing.assert_array_equal(out["lat"].values, flipped["lat"].values)
        for name in ("sst", "missing_flag"):
            np.testing.assert_array_equal(out[name].values, ref[name].values)


def test_a_clean_grid_keeps_the_files_coordinates(tmp_path):
    """A GHRSST-like file already on the clean grid (time, lat, lon ascending, -180..180) gets no
    rewrite pass; its blocks' file was made from open_field's coordinates, so --chunks wrote a time in
    'seconds since 1981-01-01' as 'days since <first day>' and float32 lat/lon as float64 (with an
    added axis attribute), where the in-memory path keeps the file's. Both now keep them."""
    from oceandl.cli.main import main

    rng = np.random.default_rng(0)
    sst = 290.0 + rng.standard_normal((8, 12, 16))
    sst[rng.random(sst.shape) < 0.3] = np.nan
    ds = xr.Dataset({"analysed_sst": (("time", "lat", "lon"), sst, {"units": "kelvin"})},
                    coords={"time": np.datetime64("2020-01-01") + np.arange(8).astype("timedelta64[D]"),
                            "lat": ("lat", np.linspace(30, 40, 12, dtype=np.float32), {"units": "degrees_north"}),
                            "lon": ("lon", np.linspace(-20, -8, 16, dtype=np.float32), {"units": "degrees_east"})})
    src = tmp_path / "l4.nc"
    ds.to_netcdf(src, encoding={"analysed_sst": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15,
                                                 "_FillValue": -32768},
                                "time": {"units": "seconds since 1981-01-01 00:00:00", "dtype": "int32"}})
    outs = {}
    for tag, extra in (("memory", []), ("chunks", ["--chunks", "time=-1,lat=6,lon=8"])):
        outs[tag] = tmp_path / f"{tag}.nc"
        assert main(["interpolate", str(src), "--method", "climatology", "--withhold", "0", "--quiet", *extra,
                     "-o", str(outs[tag])]) == 0
    with xr.open_dataset(src) as inp:
        for tag, path in outs.items():
            with xr.open_dataset(path) as out:
                for c in ("time", "lat", "lon"):
                    xr.testing.assert_identical(out[c].variable, inp[c].variable)
                assert out["time"].encoding["units"] == "seconds since 1981-01-01", tag
                seen = np.isfinite(inp["analysed_sst"].values)
                # int16 packing holds no more than float32 does: the fill is float32 (audit120), each
                # observation its float64 decoding rounded once
                assert out["analysed_sst"].dtype == np.float32, tag
                np.testing.assert_array_equal(out["analysed_sst"].values[seen],
                                              inp["analysed_sst"].values[seen].astype(np.float32))


def test_the_files_warnings_are_given_once(tmp_path):
    """With halos the file is opened a second time with finer chunks, and each warning about it
    ('using variable ...') came twice."""
    from oceandl.datasets.sst import synthetic_sst

    src = tmp_path / "sst.nc"
    synthetic_sst(n_time=6, ny=12, nx=12, seed=0).to_netcdf(src)
    with pytest.warns(UserWarning) as record:
        interpolate_chunked(src, tmp_path / "out.nc", "dineof", chunks="lat=8,lon=8", max_modes=2)
    using = [str(w.message) for w in record if "using variable" in str(w.message)]
    assert len(using) == 1, using


def test_blocks_too_small_for_dineofs_cross_validation_are_warned_about(tmp_path):
    """Each block cross-validates its own mode count: 12 x 12 px cores (3 px halo) of a 16-day cube
    held 1-2 CV squares each, their choice was noise and gap errors reached 21 degC where the
    in-memory fit had 8 (synthetic SST 16 x 24 x 24, seed 1), without a word."""
    from oceandl.datasets.sst import synthetic_sst

    src = tmp_path / "sst.nc"
    synthetic_sst(n_time=16, ny=24, nx=24, seed=1)[["sst"]].to_netcdf(src)
    with pytest.warns(UserWarning, match=r"4 of 4 blocks chose their number of modes on fewer than 10 "
                                         r"cross-validation squares .* blocks of \(16, 15, 15\)"):
        interpolate_chunked(src, tmp_path / "out.nc", "dineof", chunks="lat=12,lon=12", max_modes=3)
    with xr.open_dataset(tmp_path / "out.nc") as out:
        assert out.attrs["chunked_small_cv_blocks"] == 4
