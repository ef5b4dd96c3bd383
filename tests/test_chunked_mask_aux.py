"""A covariate and a land-sea mask together, in memory and block by block (``--aux --mask --chunks``).

The rule, both ways: the mask drops the *field's* observations on its land; a covariate's
normalisation (its per-pixel mean and global scale, :func:`~oceandl.interp.base.aux_anomaly`) is
taken over every pixel it has values at, the mask's land included. The covariate here has values
on the land far from any SST (40-69 degC), so a fill that left them out of its statistics gives
another field (measured 33.9 degC off for DINEOF); the files are equal instead."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import get_method
from oceandl.interp.base import aux_anomaly
from oceandl.interp.chunked import _global_stats, open_lazy
from oceandl.io import open_field

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*never observed:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*cross-validation:UserWarning")]

NT = 30


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """m.nc: ``sst`` (30 days x 16 x 16; a pixel seen once left unseen, where memory and blocks
    take another global mean), ``sst_mw`` (with values 40 + day on the land) and ``land``; a U-Net
    checkpoint trained on it with both."""
    root = tmp_path_factory.mktemp("chunked_mask_aux")
    ds = synthetic_sst(seed=1, n_time=NT, ny=16, nx=16, microwave=True)
    land = ds["land"].values.astype(bool)
    v = ds["sst"].values.copy()
    v[:, np.isfinite(v).sum(axis=0) == 1] = np.nan
    mw = ds["sst_mw"].values.copy()
    mw[:, land] = 40.0 + np.arange(NT, dtype=np.float32)[:, None]
    ds = ds.assign(sst=(ds["sst"].dims, v, ds["sst"].attrs), sst_mw=(ds["sst_mw"].dims, mw, ds["sst_mw"].attrs))
    assert land.sum() > 20
    ds[["sst", "sst_mw", "land"]].to_netcdf(root / "m.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_method("unet")(steps=2, patch=16, batch_size=4, model_options={"width": 8, "depth": 2}, seasonal=False,
                           device="cpu", seed=0).fit(open_field(root / "m.nc", "sst"),
                                                     aux=open_field(root / "m.nc", "sst_mw"),
                                                     mask=ds["land"]).save(root / "ck")
    return root


@pytest.mark.parametrize("method, args, chunks", [
    ("unet", ["--model", "CK", "--device", "cpu", "--set", "precision=fp32"], "time=10"),
    # the cube's own statistics for the network's input: the covariate's per-pixel means and scale
    ("unet", ["--model", "CK", "--device", "cpu", "--set", "precision=fp32", "--set", "normalisation=input"],
     "time=10"),
    ("dineof", ["--set", "n_modes=3", "--set", "tol=1e-6", "--set", "max_iter=500", "--set", "dtype=float64",
                "--seed", "0"], "time=-1"),
])
def test_covariate_with_a_mask_block_by_block_is_the_in_memory_fill(scene, tmp_path, method, args, chunks):
    args = [a.replace("CK", str(scene / "ck")) for a in args]
    common = ["interpolate", str(scene / "m.nc"), "--var", "sst", "--method", method, "--aux", "sst_mw",
              "--mask", "land", *args, "--quiet"]
    run = CliRunner().invoke
    res = run(cli, [*common, "--withhold", "0", "-o", str(tmp_path / "mem.nc")])
    assert res.exit_code == 0, res.output
    res = run(cli, [*common, "--chunks", chunks, "-o", str(tmp_path / "chunked.nc")])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "mem.nc") as mem, xr.open_dataset(tmp_path / "chunked.nc") as got:
        assert got["sst"].attrs["aux_variables"] == "sst_mw" and "land_sea_mask" in got["sst"].attrs
        np.testing.assert_array_equal(got["missing_flag"].values, mem["missing_flag"].values)
        assert int((got["missing_flag"].values == 1).sum()) > 1000  # gaps filled
        np.testing.assert_array_equal(np.isnan(got["sst"].values), np.isnan(mem["sst"].values))
        np.testing.assert_allclose(got["sst"].values, mem["sst"].values, rtol=0, atol=2e-5)


def test_covariate_statistics_take_the_masks_land_both_ways(scene):
    """Without a checkpoint too: the in-memory network's covariate statistics (its own fit) and the
    statistics pass of the blocks are aux_anomaly's over every pixel, the land's 40-69 degC in."""
    path = scene / "m.nc"
    mw = open_field(path, "sst_mw")
    sea = xr.open_dataset(path)["land"].values == 0
    _, mean, scale, gmean = aux_anomaly(mw.values)
    _, _, scale_sea, _ = aux_anomaly(np.where(sea, mw.values, np.nan))
    assert abs(scale - scale_sea) > 0.1 * scale  # the land weighs: leaving it out is another scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = get_method("unet")(steps=1, patch=16, batch_size=2, model_options={"width": 8, "depth": 2},
                                 seasonal=False, device="cpu", seed=0).fit(open_field(path, "sst"), aux=mw,
                                                                           mask=xr.open_dataset(path)["land"])
    st = net._aux_stats[0]
    assert st["scale"] == pytest.approx(scale, rel=1e-6) and st["global_mean"] == pytest.approx(gmean, rel=1e-9)
    lazy = open_lazy(path, "sst", {"time": 10})
    cov = open_lazy(path, "sst_mw", {"time": 10}).rename("sst_mw")
    stats = _global_stats(lazy, True, aux=[("sst_mw", cov, "degC", False)], sea=sea)
    assert stats.land_obs == 0 and stats.aux[0].scale == pytest.approx(scale, rel=1e-6)
    assert stats.aux[0].global_mean == pytest.approx(gmean, rel=1e-9)
    np.testing.assert_allclose(stats.aux[0].mean, mean, rtol=1e-6)
