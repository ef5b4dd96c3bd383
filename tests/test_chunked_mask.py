"""A land-sea mask in the block-by-block fill (``interpolate_chunked(..., mask=)``, ``--chunks --mask``).

As in memory (tests/test_mask.py, the same synthetic cube): the observations on the mask's land
are dropped from the global statistics and from every block (NaN, ``missing_flag`` 3), ocean
pixels never observed are filled by the networks and left NaN with one warning by climatology,
eof and dineof (``missing_flag`` 4), and the output says ``land_sea_mask``."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error
from test_mask import BOX, _cube
from test_neural_interp import TINY

from oceandl.cli.main import cli
from oceandl.interp import get_method, interpolate
from oceandl.interp.chunked import interpolate_chunked
from oceandl.io import open_field

pytestmark = pytest.mark.filterwarnings("ignore:.*cross-validation:UserWarning")

NET = {"tile": 16, "overlap": 4, "device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The file (``sst`` and its ``land`` flags), the field as open_field reads it, the land pixels
    with spurious observations (ys, xs)."""
    ds, land_px = _cube()
    folder = tmp_path_factory.mktemp("chunked_mask")
    ds[["sst", "land"]].to_netcdf(folder / "sst.nc")
    return folder / "sst.nc", open_field(folder / "sst.nc", "sst"), ds, land_px


def _never_observed_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "never observed" in str(w.message)]


@pytest.mark.parametrize("mask", ["land", "dataarray"])
def test_chunked_climatology_with_a_mask_is_the_in_memory_one(scene, tmp_path, mask):
    """The global statistics without the land observations (dask sums), each block's land dropped:
    the in-memory climatology with the mask, to float32 rounding, the same flags 0-4 and one warning."""
    path, da, ds, (ys, xs) = scene
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = interpolate(da, "climatology", mask=ds["land"], return_dataset=True)
    mem = _never_observed_warnings(caught)
    assert len(mem) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpolate_chunked(path, tmp_path / "out.nc", "climatology", var="sst", chunks="time=16,lat=10,lon=12",
                            mask=ds["land"] if mask == "dataarray" else mask)
    said = _never_observed_warnings(caught)
    assert len(said) == 1 and said[0].endswith(mem[0].split("variable 'sst': ")[-1])  # the same words, the file named
    with xr.open_dataset(tmp_path / "out.nc") as out:
        flag = out["missing_flag"].values
        np.testing.assert_array_equal(flag, ref["missing_flag"].values)
        np.testing.assert_array_equal(np.isnan(out["sst"].values), np.isnan(ref["sst"].values))
        np.testing.assert_allclose(out["sst"].values, ref["sst"].values, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(out["sigma"].values, ref["sigma"].values, rtol=1e-5)
        assert (flag[::3, ys, xs] == 3).all() and (flag[:, BOX[0], BOX[1]] == 4).all()
        assert list(out["missing_flag"].attrs["flag_values"]) == [0, 1, 2, 3, 4]
        assert out["missing_flag"].attrs["flag_meanings"] == ref["missing_flag"].attrs["flag_meanings"]
        assert out["sst"].attrs["land_sea_mask"].endswith(ref["sst"].attrs["land_sea_mask"].split("; ")[-1])
        assert out["sst"].attrs["comment"].startswith(ref["sst"].attrs["comment"][:60])
        assert "missing_flag 3" in out["sst"].attrs["comment"]
        if mask == "land":
            assert out["sst"].attrs["land_sea_mask"].startswith("--mask land: land where flag_values mean land")


def test_dineof_blocks_with_a_mask_leave_never_observed_ocean_missing(scene, tmp_path):
    path, _, ds, (ys, xs) = scene
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpolate_chunked(path, tmp_path / "out.nc", "dineof", var="sst", chunks="time=-1,lat=16,lon=16",
                            mask="land", max_modes=5)
    unseen = ~np.isfinite(ds["sst"].values).any(axis=0) & (ds["land"].values == 0)
    said = _never_observed_warnings(caught)
    assert len(said) == 1 and f"{int(unseen.sum())} ocean pixels" in said[0] and "'dineof'" in said[0]
    with xr.open_dataset(tmp_path / "out.nc") as out:
        v, flag = out["sst"].values, out["missing_flag"].values
    assert (flag[:, unseen] == 4).all() and np.isnan(v[:, unseen]).all()
    assert (flag[::3, ys, xs] == 3).all() and np.isnan(v[:, ys, xs]).all()
    assert int((flag == 3).sum()) == len(ys) * len(range(0, 40, 3))
    sea_seen = (ds["land"].values == 0) & ~unseen
    assert np.isfinite(v[:, sea_seen]).all() and (flag[:, ds["land"].values == 1] <= 3).all()


@pytest.mark.usefixtures("one_torch_thread")
def test_chunked_neural_fill_applies_the_checkpoints_mask(scene, tmp_path):
    """A checkpoint trained with a mask, no mask given: in memory its mask is applied (training
    statistics, the same grid); block by block too, to float32 rounding over whole-grid blocks."""
    path, da, ds, (ys, xs) = scene
    get_method("unet")(steps=3, patch=16, batch_size=4, model_options=TINY["unet"], seasonal=False,
                       device="cpu").fit(da, mask=ds["land"]).save(tmp_path / "ck")
    opts = {**NET, "checkpoint": str(tmp_path / "ck")}
    ref = get_method("unet")(**opts).fit(da).reconstruct()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpolate_chunked(path, tmp_path / "t.nc", "unet", var="sst", chunks="time=15,lat=-1,lon=-1", **opts)
    assert not [w for w in caught if "land-sea mask" in str(w.message) or "never observed" in str(w.message)]
    with xr.open_dataset(tmp_path / "t.nc") as out:
        got, flag = out["sst"].values, out["missing_flag"].values
        assert out["sst"].attrs["normalisation"] == "training"
        assert out["sst"].attrs["land_sea_mask"] == ref["sst"].attrs["land_sea_mask"]
        assert "checkpoint" in out["sst"].attrs["land_sea_mask"]
    np.testing.assert_array_equal(flag, ref["missing_flag"].values)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref["sst"].values))
    np.testing.assert_allclose(got, ref["sst"].values, atol=2e-5)
    assert (flag[::3, ys, xs] == 3).all() and np.isnan(got[:, ys, xs]).all()
    assert np.isfinite(got[:, BOX[0], BOX[1]]).all() and (flag[:, BOX[0], BOX[1]] == 1).all()
    # a mask given wins over the checkpoint's, as in memory
    ref2 = get_method("unet")(**opts).fit(da, mask=ds["land"]).reconstruct()
    interpolate_chunked(path, tmp_path / "m.nc", "unet", var="sst", chunks="time=15,lat=-1,lon=-1", mask="land",
                        **opts)
    with xr.open_dataset(tmp_path / "m.nc") as out:
        np.testing.assert_allclose(out["sst"].values, ref2["sst"].values, atol=2e-5)
        np.testing.assert_array_equal(out["missing_flag"].values, ref2["missing_flag"].values)


def test_cli_chunks_with_a_mask(scene, tmp_path):
    path, _, _, (ys, xs) = scene
    out = tmp_path / "filled.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(path), "--method", "climatology", "--mask", "land",
                                   "--chunks", "time=16,lat=10,lon=12", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    interpolate_chunked(path, tmp_path / "api.nc", "climatology", var="sst", chunks="time=16,lat=10,lon=12",
                        mask="land")
    with xr.open_dataset(out) as r, xr.open_dataset(tmp_path / "api.nc") as a:
        np.testing.assert_array_equal(r["sst"].values, a["sst"].values)
        np.testing.assert_array_equal(r["missing_flag"].values, a["missing_flag"].values)
        assert (r["missing_flag"].values[::3, ys, xs] == 3).all()
        assert r["sst"].attrs["land_sea_mask"] == a["sst"].attrs["land_sea_mask"]


@pytest.mark.parametrize("args, parts", [
    (["--mask", "lands"], ["--mask lands", "'lands' not found"]),
    (["--mask", "sst"], ["--mask sst", "the variable being filled"]),
    (["--mask", "NOFILE.nc:lsm"], ["--mask ", "nofile.nc:lsm: no such file"]),
])
def test_cli_chunks_mask_refusals_are_one_line(scene, tmp_path, args, parts):
    path = scene[0]
    out = tmp_path / "refused.nc"
    args = [a.replace("NOFILE", str(tmp_path / "nofile")) for a in args]
    res = CliRunner().invoke(cli, ["interpolate", str(path), "--method", "climatology", *args,
                                   "--chunks", "time=16,lat=10,lon=12", "-o", str(out), "--quiet"])
    assert_cli_error(res, 2, *parts)
    assert not out.exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_a_network_trained_on_the_region_fills_the_masks_ocean(scene, tmp_path):
    """No checkpoint: the network is trained on the region (its land's observations dropped) and
    normalised with the cube's statistics without them; every ocean pixel of the mask is filled."""
    path, _, ds, (ys, xs) = scene
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpolate_chunked(path, tmp_path / "t.nc", "unet", var="sst", chunks="time=20,lat=-1,lon=-1", mask="land",
                            steps=3, patch=16, batch_size=4, model_options=TINY["unet"], seasonal=False, **NET)
    assert not _never_observed_warnings(caught)
    sea = ds["land"].values == 0
    with xr.open_dataset(tmp_path / "t.nc") as out:
        got, flag = out["sst"].values, out["missing_flag"].values
    assert np.isfinite(got[:, sea]).all() and np.isnan(got[:, ~sea]).all()
    assert (flag[::3, ys, xs] == 3).all() and not (flag == 4).any()
