"""Static (lat, lon) covariates of the neural gap fillers: ``fit(da, aux={"depth": map})``,
``oceandl interpolate|train interpolator --aux depth`` with ``depth(lat, lon)``.

A bathymetry is an input channel, the same every day, normalised with its global mean and
standard deviation (its per-pixel temporal mean would be the map itself, its anomaly 0), saved
in the checkpoint as static and applied from there; DINEOF refuses it with why; every misuse is
one line naming the variable, exit code 2, no output."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error
from test_neural_interp import TINY

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.interp import interpolate
from oceandl.interp import METHODS
from oceandl.interp.neural import UNetInterpolator

OPTS = {"steps": 3, "batch_size": 4, "patch": 16, "model_options": TINY["unet"], "seasonal": False}
_DIMS = ("time", "lat", "lon")


def _scene(n_time=20, n=32, seed=0):
    """(cloudy field, depth (lat, lon) with NaN on a 3 x 3 'land' corner): the field is a smooth
    moving pattern, the depth random."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time)[:, None, None]
    y = np.linspace(0, 1, n)[None, :, None]
    x = np.linspace(0, 1, n)[None, None, :]
    truth = 20 + 3 * y + np.sin(2 * np.pi * (x + 0.05 * t)) + np.zeros((n_time, 1, 1))
    cloud = rng.random(truth.shape) < 0.5
    coords = {"time": np.datetime64("2020-01-01") + np.arange(n_time).astype("timedelta64[D]"),
              "lat": np.linspace(30, 40, n), "lon": np.linspace(-60, -50, n)}
    da = xr.DataArray(np.where(cloud, np.nan, truth).astype(np.float32), dims=_DIMS, coords=coords, name="sst",
                      attrs={"units": "degC"})
    depth = rng.uniform(0, 4000, (n, n)).astype(np.float32)
    depth[:3, :3] = np.nan
    dep = xr.DataArray(depth, dims=_DIMS[1:], coords={k: coords[k] for k in _DIMS[1:]}, name="depth",
                       attrs={"units": "m"})
    return da, dep


@pytest.fixture(scope="module")
def scene():
    return _scene()


def test_static_channel_is_the_normalised_map_on_every_day(scene):
    """The channel is (depth - global mean) / global std on every day, 0 with mask 0 on NaN (land);
    the statistics are the map's, saved as static; a (time=1, lat, lon) one is the same."""
    da, dep = scene
    m = UNetInterpolator(seed=0, device="cpu", **OPTS).fit(da, aux={"depth": dep})
    st = m._aux_stats[0]
    v = dep.values.astype(np.float64)
    assert st["static"] is True and st["units"] == "m"
    assert st["global_mean"] == pytest.approx(np.nanmean(v), rel=1e-9)
    assert st["scale"] == pytest.approx(np.nanstd(v), rel=1e-9)
    n = m._cfg["neighbours"]
    want = np.where(np.isfinite(v), (v - np.nanmean(v)) / np.nanstd(v), 0.0)
    chan, seen = m._ap[n:n + da.sizes["time"], 0], m._amp[n:n + da.sizes["time"], 0]
    assert np.abs(chan - want[None]).max() < 1e-5
    assert np.array_equal(seen, np.broadcast_to(np.isfinite(v), seen.shape))
    assert m.reconstruct()["sst"].attrs["aux_variables"] == "depth"
    one = UNetInterpolator(seed=0, device="cpu", **OPTS).fit(
        da, aux={"depth": dep.expand_dims(time=da["time"].values[:1])})
    assert one._aux_stats == m._aux_stats and np.array_equal(one._ap, m._ap)


def test_static_refusals_are_one_line(scene):
    da, dep = scene
    net = UNetInterpolator(seed=0, device="cpu", **OPTS)
    cases = [
        ({"depth": dep * 0 + 7}, "aux 'depth': all values are equal"),
        ({"depth": dep.rename({"lat": "depth_level"})}, "aux 'depth' has dims ('depth_level', 'lon')"),
        ({"depth": dep.values[:, :20]}, "aux 'depth' has shape (32, 20), the field's grid (32, 32)"),
        # a map broadcast over the days by hand: 0 minus its per-pixel mean; give it as (lat, lon)
        ({"depth": dep.expand_dims(time=da["time"].values).fillna(1.0)}, "give a static covariate as a (lat, lon)"),
    ]
    for aux, said in cases:
        with pytest.raises(InputError) as err:
            net.fit(da, aux=aux)
        assert said in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError) as err:
        METHODS["dineof"](seed=0).fit(da, aux={"depth": dep})
    msg = str(err.value)
    assert "aux 'depth' is static" in msg and "adds nothing to multivariate DINEOF" in msg and "unet" in msg


def test_checkpoint_round_trip_fills_as_in_memory(scene, tmp_path):
    """Saved, then loaded on the same file: the same fill (statistics from the checkpoint); on a
    region of the grid (a box) the static statistics are the training ones, not the region's; a
    depth changing in time for a network trained with a static one is refused."""
    da, dep = scene
    net = UNetInterpolator(seed=0, device="cpu", **OPTS).fit(da, aux={"depth": dep})
    net.save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())["interpolator"]["aux"]
    assert meta == [{"name": "depth", "units": "m", "scale": net._aux_stats[0]["scale"],
                     "global_mean": net._aux_stats[0]["global_mean"], "static": True}]
    a = net.reconstruct()["sst"].values
    again = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da, aux={"depth": dep})
    b = again.reconstruct()["sst"].values
    assert np.nanmax(np.abs(a - b)) < 1e-4
    box = {"lat": slice(0, 16), "lon": slice(8, 32)}
    part = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da.isel(box), aux={"depth": dep.isel(box)})
    assert part._aux_stats[0] == net._aux_stats[0]
    moving = dep.expand_dims(time=da["time"].values) + xr.DataArray(np.arange(da.sizes["time"], dtype=np.float32),
                                                                     dims="time")
    with pytest.raises(InputError, match="aux 'depth' changes in time, checkpoint .* was trained with it static"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da, aux={"depth": moving})


@pytest.fixture(scope="module")
def static_file(tmp_path_factory, scene):
    da, dep = scene
    folder = tmp_path_factory.mktemp("static")
    ds = xr.Dataset({"sst": da, "depth": dep, "flat": dep * 0 + 5, "depth_t": dep.transpose("lon", "lat"),
                     "levels": dep.expand_dims(level=[0.0, 10.0, 20.0]),
                     "section": xr.DataArray(np.ones((3, 32), np.float32), dims=("level2", "lat"))})
    ds.to_netcdf(folder / "f.nc")
    # another product: every other row and column (a 2x coarser grid), as bathy
    dep.isel(lat=slice(None, None, 2), lon=slice(None, None, 2)).rename("bathy").to_dataset().to_netcdf(
        folder / "coarse.nc")
    return folder / "f.nc", folder / "coarse.nc"


def test_cli_static_aux_train_model_bbox_chunks(static_file, tmp_path):
    """`train interpolator --aux depth`, `info` says static, `interpolate --model` reads depth again
    (same fill as the in-memory one of the same network), --bbox cuts it, --chunks fills the same."""
    f, coarse = static_file
    run = CliRunner().invoke
    ck = tmp_path / "ck"
    res = run(cli, ["train", "interpolator", str(f), "--var", "sst", "--aux", "depth", "--set", "steps=3",
                    "--set", "patch=16", "--device", "cpu", "--quiet", "-o", str(ck)])
    assert res.exit_code == 0, res.output
    res = run(cli, ["info", str(ck)])
    assert res.exit_code == 0 and "auxiliary variables:   depth (m, static)" in res.output
    fill = ["interpolate", str(f), "--var", "sst", "--method", "unet", "--model", str(ck), "--device", "cpu",
            "--withhold", "0", "--quiet"]
    assert run(cli, [*fill, "-o", str(tmp_path / "a.nc")]).exit_code == 0
    assert run(cli, [*fill, "--chunks", "time=-1,lat=16,lon=16", "-o", str(tmp_path / "c.nc")]).exit_code == 0
    res = run(cli, [*fill, "--bbox=-58,32,-52,38", "-o", str(tmp_path / "b.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "c.nc") as c, \
            xr.open_dataset(tmp_path / "b.nc") as b:
        assert a["sst"].attrs["aux_variables"] == "depth"
        assert float(np.abs(a["sst"] - c["sst"]).max()) < 1e-4
        assert b.sizes["lat"] < a.sizes["lat"] and np.isfinite(b["sst"].values).all()
    # the map of another product's grid, regridded (said), transposed (lon, lat) dims read by name
    for aux, said in ((f"{coarse}:bathy", "interpolated (linear) to the field's 32 x 32"), ("depth_t", "")):
        res = run(cli, ["interpolate", str(f), "--var", "sst", "--method", "unet", "--aux", aux, "--set", "steps=2",
                        "--set", "patch=16", "--device", "cpu", "--withhold", "0", "-o", str(tmp_path / "x.nc"),
                        "--overwrite"])
        assert res.exit_code == 0, res.output
        assert said in res.output


def test_cli_static_refusals(static_file, tmp_path):
    f, _ = static_file
    run = CliRunner().invoke
    unet = ["--method", "unet", "--set", "steps=1", "--set", "patch=16", "--device", "cpu"]
    refusals = [
        (["--method", "dineof", "--aux", "depth"], "aux 'depth' is static"),
        (["--method", "dineof", "--aux", "depth", "--chunks", "time=-1,lat=16,lon=16"], "aux 'depth' is static"),
        ([*unet, "--aux", "flat"], "variable 'flat': constant field"),
        ([*unet, "--aux", "levels"], "variable 'levels': dim 'level' is a vertical axis"),
        ([*unet, "--aux", "section"], "variable 'section': has 2 dims (level2, lat), not recognised as (lat, lon)"),
    ]
    out = tmp_path / "refused.nc"
    for extra, said in refusals:
        res = run(cli, ["interpolate", str(f), "--var", "sst", *extra, "--quiet", "-o", str(out)])
        assert_cli_error(res, 2, said)
        assert not out.exists()


def test_interpolate_function_takes_a_static_map(scene):
    """oceandl.interpolate(..., aux=) passes it through (the Python entry point)."""
    da, dep = scene
    ds = interpolate(da, method="unet", aux={"depth": dep}, seed=0, device="cpu", return_dataset=True, **OPTS)
    assert ds["sst"].attrs["aux_variables"] == "depth"


def test_a_map_dated_once_is_static_beside_one_day_from_python_as_from_a_file():
    """One rule for a covariate of one time step: from a file (``io.is_static_map``) a bathymetry
    dated 1990-01-01 beside one day's field was static, but the same map passed from Python as
    ``aux=`` was refused ("other 'time' coordinates"); both now call ``io.one_step_is_static``.
    Dated the field's own day, it is that day's covariate on both paths."""
    from oceandl.interp.base import aux_arrays
    from oceandl.io import is_static_map

    field, depth = _scene(n_time=1)
    dated = depth.expand_dims(time=np.array(["1990-01-01"], "datetime64[ns]"))
    (name, arr, _, static), = aux_arrays({"depth": dated}, field, _DIMS, "fill")
    assert static and is_static_map(dated, field)
    assert arr.shape == field.shape
    np.testing.assert_array_equal(arr.values[0], depth.values.astype("f4"))
    same_day = dated.assign_coords(time=field.time.values)
    assert not aux_arrays({"depth": same_day}, field, _DIMS, "fill")[0][3]
    assert not is_static_map(same_day, field)
