"""Audit of the auxiliary variables (covariates) of the neural gap fillers: what a demanding user
did that the first tests (test_aux.py) did not, each failing before its fix.

- an edited checkpoint without a covariate's per-pixel mean was used with the input's own
  statistics (a single day: its own spatial mean), without a word;
- a covariate in other units with no units attribute (kelvin against the degC it was trained in)
  was fed to the network 240 training scales off, without a word (the field is checked so);
- the data digest of a resumable run took the covariates in the file's latitude order: a run
  started in Python on a file with latitudes descending was refused on --resume by the CLI
  (which sorts the grid) as "other values"; the field alone was not;
- a covariate in 0..360 longitudes for a field in -180..180 was refused, and the message told to
  pass .values, which lines columns up by position: across Greenwich, 180 degrees off;
- `oceandl info` on a filled file did not say which covariates the fill took;
- --chunks with --set checkpoint=/init= of a network with covariates said "give it as aux
  (--aux)", which --chunks refused (interpolate_chunked in Python likewise, per block); --chunks
  now takes them (tests/test_chunked_aux.py);
- `interpolate --model` on a file without the checkpoint's covariate said only "variable
  'sst_mw' not found; did you mean 'sst'?" (with --quiet, nothing said why it was looked for);
- the sst benchmark ran its first methods before refusing aux=sst_mw+sst_mw;
- a name beside DataArrays in ds.oceandl.interpolate(aux=[...]) was "a variable with no name";
- another covariate than the checkpoint's was told to give the missing one, then to drop the other;
- a covariate constant in time at every pixel (the depth) went in as a channel of zeros;
- --set aux=NAME (the benchmark's spelling) was "unknown option" without pointing at --aux."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error
from test_aux import _scene
from test_interp_resume import _same_weights
from test_neural_interp import TINY

from oceandl.cli.main import cli
from oceandl.errors import CheckpointError, InputError
from oceandl.interp import interpolate
from oceandl.interp.neural import UNetInterpolator

OPTS = {"steps": 3, "batch_size": 4, "patch": 16, "model_options": TINY["unet"], "seasonal": False, "device": "cpu"}
DAY = {"time": slice(4, 5)}


@pytest.fixture(scope="module")
def scene():
    return _scene(n_time=10, ny=16, nx=20)


@pytest.fixture(scope="module")
def ck(scene, tmp_path_factory):
    """A network trained with the covariate sst_mw, and a file holding the field and it."""
    da, aux, _ = scene
    folder = tmp_path_factory.mktemp("ck")
    UNetInterpolator(seed=0, **OPTS).fit(da, aux=aux).save(folder / "ck")
    xr.Dataset({"sst": da, "sst_mw": aux}).to_netcdf(folder / "f.nc")
    return folder / "ck"


def test_a_missing_aux_mean_tensor_is_a_checkpoint_error(scene, ck, tmp_path):
    import shutil

    from safetensors.numpy import load_file, save_file

    da, aux, _ = scene
    shutil.copytree(ck, tmp_path / "ck")
    stats = tmp_path / "ck" / "normalisation.safetensors"
    tensors = dict(load_file(str(stats)))
    del tensors["aux_mean.sst_mw"]
    save_file(tensors, str(stats))
    with pytest.raises(CheckpointError, match=r"normalisation.safetensors: no 'aux_mean.sst_mw' tensor"):
        UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck")).fit(da.isel(DAY), aux=aux.isel(DAY))
    # the input's own statistics (normalisation=input) do not read them: still filled
    out = UNetInterpolator(device="cpu", checkpoint=str(tmp_path / "ck"), normalisation="input").fit(
        da, aux=aux).reconstruct()["sst"]
    assert out.attrs["normalisation"] == "input"


def test_a_covariate_in_other_units_without_saying_so_is_refused(scene, ck):
    da, aux, _ = scene
    kelvin = aux.isel(DAY) + 273.15
    kelvin.attrs = {}  # no units said
    with pytest.raises(InputError, match=r"aux 'sst_mw': .* training scales away .*other units\?"):
        UNetInterpolator(device="cpu", checkpoint=str(ck)).fit(da.isel(DAY), aux=kelvin)
    # the same day in the units it was trained in is taken, without units too
    same = aux.isel(DAY).copy()
    same.attrs = {}
    out = UNetInterpolator(device="cpu", checkpoint=str(ck)).fit(da.isel(DAY), aux=same).reconstruct()["sst"]
    assert out.attrs["normalisation"] == "training" and out.attrs["aux_variables"] == "sst_mw"


def test_a_run_started_on_a_descending_grid_resumes_on_the_sorted_one(scene, tmp_path):
    """The CLI sorts the file's grid; Python takes it as stored: the same run either way."""
    da, aux, _ = scene
    desc = {"lat": slice(None, None, -1)}
    opts = {**OPTS, "steps": 4, "checkpoint_every": 2}
    whole = UNetInterpolator(seed=0, save_to=str(tmp_path / "whole"), **opts).fit(da.isel(desc), aux=aux.isel(desc))
    whole.save(tmp_path / "whole")
    net = UNetInterpolator(seed=0, save_to=str(tmp_path / "cut"), **opts)
    net._stop_after_step = 2
    with pytest.raises(Exception, match="stop"):
        net.fit(da.isel(desc), aux=aux.isel(desc))
    resumed = UNetInterpolator(seed=0, resume=str(tmp_path / "cut"), **opts).fit(da, aux=aux)  # ascending
    resumed.save(tmp_path / "cut")
    assert _same_weights(tmp_path / "whole", tmp_path / "cut")


def test_a_covariate_in_the_other_longitude_convention_is_matched_by_position_on_earth(scene):
    da, aux, _ = scene
    opts = {**OPTS, "steps": 1}
    lon = np.arange(-10.0, 10.0)  # across Greenwich: 0..360 sorted puts 0..9 first, then 350..359
    field, cov = da.assign_coords(lon=lon), aux.assign_coords(lon=lon)
    ref = interpolate(field, "unet", seed=0, aux=cov, **opts).values
    east = cov.assign_coords(lon=np.mod(lon, 360.0)).sortby("lon")
    assert float(east.lon[0]) == 0.0
    np.testing.assert_array_equal(interpolate(field, "unet", seed=0, aux=east, **opts).values, ref)
    # and the reverse: a field in 0..360, a covariate in -180..180
    out = interpolate(field.assign_coords(lon=np.mod(lon, 360.0)).sortby("lon"), "unet", seed=0, aux=cov, **opts)
    np.testing.assert_array_equal(out.assign_coords(lon=np.where(out.lon > 180, out.lon - 360, out.lon)).sortby("lon")
                                  .values, ref)
    # a grid that is not the field's is still refused
    with pytest.raises(InputError, match="other 'lon' coordinates"):
        interpolate(field, "unet", seed=0, aux=cov.assign_coords(lon=lon + 0.5), **opts)


def test_info_on_a_filled_file_names_its_covariates(scene, tmp_path):
    from oceandl.describe import describe

    da, aux, _ = scene
    interpolate(da, "unet", seed=0, aux=aux, return_dataset=True, **{**OPTS, "steps": 1}).to_netcdf(tmp_path / "f.nc")
    assert describe(tmp_path / "f.nc")["auxiliary variables"] == "sst_mw"
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "f.nc"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["auxiliary variables"] == "sst_mw"
    interpolate(da, "unet", seed=0, return_dataset=True, **{**OPTS, "steps": 1}).to_netcdf(tmp_path / "plain.nc")
    assert "auxiliary variables" not in describe(tmp_path / "plain.nc")


@pytest.mark.parametrize("key", ["checkpoint", "init"])
def test_chunks_takes_a_networks_covariates_however_it_is_given(ck, tmp_path, key):
    """--chunks with --set checkpoint=/init= of a network with covariates: refused before (the
    blocks took the field alone); now its covariates are read from the file by name, said, and
    recorded, as in memory."""
    from oceandl.interp.chunked import interpolate_chunked

    f = ck.parent / "f.nc"
    train = ["--set", "steps=1", "--set", "patch=16", "--set", "batch_size=2"] if key == "init" else []
    res = CliRunner().invoke(cli, ["interpolate", str(f), "--var", "sst", "--method", "unet", "--set",
                                   f"{key}={ck}", *train, "--chunks", "time=-1,lat=16,lon=16", "--device", "cpu",
                                   "-o", str(tmp_path / "out.nc")])
    assert res.exit_code == 0, res.output
    assert f"auxiliary variables of {ck}: sst_mw" in res.output
    with xr.open_dataset(tmp_path / "out.nc") as out:
        assert out["sst"].attrs["aux_variables"] == "sst_mw" == out.attrs["aux_variables"]
    # a file without the covariate: one line saying why it was looked for, no output
    da = xr.open_dataset(f)["sst"].load()
    da.to_dataset().to_netcdf(tmp_path / "plain.nc")
    with pytest.raises(InputError, match=f"variable 'sst_mw' not found.*{key} {re.escape(str(ck))} was trained "
                                         "with it as an auxiliary variable"):
        interpolate_chunked(tmp_path / "plain.nc", tmp_path / "o2.nc", "unet", var="sst", device="cpu",
                            progress=False, **{key: str(ck)})
    assert not (tmp_path / "o2.nc").exists()


def test_model_on_a_file_without_its_covariate_says_why_it_was_looked_for(scene, ck, tmp_path):
    da, _, _ = scene
    xr.Dataset({"sst": da}).to_netcdf(tmp_path / "plain.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "plain.nc"), "--var", "sst", "--method", "unet",
                                   "--model", str(ck), "--device", "cpu", "--quiet", "-o", str(tmp_path / "o.nc")])
    assert_cli_error(res, 2, "variable 'sst_mw' not found", f"--model {ck} was trained with it as an auxiliary "
                     "variable")
    assert not (tmp_path / "o.nc").exists()


def test_the_benchmark_refuses_a_covariate_given_twice_before_any_run(tmp_path):
    from oceandl.pipelines import get_pipeline, run_pipeline

    said = []
    overrides = {"fast": True, "n_time": 16, "size": 24, "cloud_covers": (0.6,), "methods": ("climatology", "unet:mw"),
                 "method_options": ("unet:mw.aux=sst_mw+sst_mw",)}
    with pytest.raises(InputError, match=r"unet:mw.aux=sst_mw\+sst_mw: sst_mw given twice"):
        run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides=overrides, device="cpu", progress=False,
                     log=said.append)
    assert not any("cloud cover" in s for s in said), said
    assert not (tmp_path / "run").exists()


def test_a_name_among_the_covariates_is_read_or_said_to_be_a_name(scene):
    """ds.oceandl.interpolate(aux=["sst_mw", wind]) reads the name as it reads a list of names; a
    name given to a DataArray's fill is said to be one (it was "an auxiliary variable has no name")."""
    da, aux, _ = scene
    wind = (aux * 0 + np.random.default_rng(1).standard_normal(aux.shape)).rename("wind")
    ds = xr.Dataset({"sst": da, "sst_mw": aux})
    opts = {**OPTS, "steps": 1}
    mixed = ds.oceandl.interpolate("unet", var="sst", aux=["sst_mw", wind], **opts)
    given = interpolate(da, "unet", aux=[aux, wind], **opts)
    assert mixed.attrs["aux_variables"] == "sst_mw wind"
    np.testing.assert_array_equal(mixed.values, given.values)
    with pytest.raises(InputError, match=r"aux 'sst_mw' is a name, not a DataArray"):
        interpolate(da, "unet", aux=["sst_mw", wind], **opts)


def test_another_covariate_than_the_checkpoints_is_said_both_ways(scene, ck):
    da, aux, _ = scene
    other = aux.rename("sst_ir")
    with pytest.raises(InputError, match=r"trained with auxiliary variables 'sst_mw'; give 'sst_mw' as aux \(--aux\) "
                                         r"and drop 'sst_ir'"):
        UNetInterpolator(device="cpu", checkpoint=str(ck)).fit(da, aux=other)


def test_a_covariate_constant_in_time_is_refused_not_taken_as_zeros(scene):
    """Each covariate goes in minus its per-pixel temporal mean: a static field (the depth) broadcast
    over the days was a channel of zeros, trained on and saved without a word."""
    da, aux, _ = scene
    rng = np.random.default_rng(0)
    depth = xr.DataArray(np.broadcast_to(rng.uniform(100, 5000, (1,) + aux.shape[1:]), aux.shape).astype(np.float32),
                         dims=aux.dims, coords=aux.coords, name="depth")
    for static in (depth, depth.where(rng.random(depth.shape) > 0.3)):  # with gaps too
        with pytest.raises(InputError, match="aux 'depth' does not change in time at any pixel"):
            UNetInterpolator(seed=0, **OPTS).fit(da, aux=static)
    # one pixel that changes is a covariate (it is scaled by that change)
    moving = depth.copy(data=depth.values.copy())
    moving.values[3, 5, 5] += 10.0
    assert UNetInterpolator(seed=0, **{**OPTS, "steps": 1}).fit(da, aux=moving)._aux_stats[0]["scale"] > 0


def test_aux_as_a_method_option_points_at_the_way_to_give_it(ck):
    with pytest.raises(InputError, match=r"unknown option 'aux' .*; auxiliary variables are given to fit\(da, aux="):
        UNetInterpolator(aux="sst_mw")
    res = CliRunner().invoke(cli, ["interpolate", str(ck.parent / "f.nc"), "--var", "sst", "--method", "unet",
                                   "--set", "aux=sst_mw", "--quiet", "-o", str(ck.parent / "never.nc")])
    assert_cli_error(res, 2, "unknown option 'aux'", "or --aux")
    assert not (ck.parent / "never.nc").exists()
