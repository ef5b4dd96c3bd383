"""``--chunks --aux FILE:VAR`` of another product: on other days and another grid, put on the field's
lazily (:func:`oceandl.io.to_field_grid` with ``chunks``), each block reading only its window.

The covariate a block sees must be the one the in-memory fill sees (``_read_aux``: the nearest day,
a finer grid block-averaged, linear interpolation), its statistics those of the regridded cube, and
the covariate never read whole."""
from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import CountedArray, assert_cli_error
from test_aux import _scene
from test_neural_interp import TINY

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.interp import get_method
from oceandl.interp.chunked import _open_aux, interpolate_chunked, open_lazy
from oceandl.io import open_field, to_field_grid
from oceandl.pipelines.interpolate import _read_aux

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*cross-validation:UserWarning")]

NET = {"tile": 16, "overlap": 4, "device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The field ``sst`` (12 days x 24 x 28) in f.nc; its covariate as another product would give
    it: coarse.nc on a 2x coarser grid at 06:00 in 0..360 longitudes, one day missing; fine.nc on
    a 3x finer grid (block-averaged first); and a U-Net trained with the covariate put on the
    field's grid in memory."""
    folder = tmp_path_factory.mktemp("chunked_aux_regrid")
    da, aux, _ = _scene(n_time=12, ny=24, nx=28)
    da.to_dataset().to_netcdf(folder / "f.nc")
    coarse = aux.coarsen(lat=2, lon=2, boundary="trim").mean().drop_isel(time=7)
    coarse = coarse.assign_coords(time=coarse.time + np.timedelta64(6, "h"), lon=coarse.lon % 360)
    coarse.to_dataset(name="sst_mw").to_netcdf(folder / "coarse.nc")
    fine = aux.interp(lat=np.linspace(float(aux.lat[0]), float(aux.lat[-1]), 72),
                      lon=np.linspace(float(aux.lon[0]), float(aux.lon[-1]), 84))
    fine.to_dataset(name="sst_mw").to_netcdf(folder / "fine.nc")
    field = open_field(folder / "f.nc", "sst")
    on = _read_aux(folder / "f.nc", [f"{folder / 'coarse.nc'}:sst_mw"], field, "", log=lambda _m: None)["sst_mw"]
    get_method("unet")(steps=3, patch=16, batch_size=4, model_options=TINY["unet"], seasonal=False,
                       device="cpu").fit(field, aux=on).save(folder / "ck")
    return folder, field


@pytest.mark.parametrize("product", ["coarse", "fine"])
@pytest.mark.parametrize("cut", [{}, {"bbox": (-58.0, 32.0, -52.5, 38.5), "dates": ("2020-01-03", "2020-01-10")}])
def test_the_blocks_covariate_is_the_in_memory_one(scene, product, cut):
    """The lazy covariate on the field's grid (chunks of 5 days x 10 x 7) has the values
    ``_read_aux`` gives in memory (measured: equal, 4e-15 after a block average whose dask
    sums add in another order), with --bbox/--dates too (both read with two points to spare)."""
    folder, _ = scene
    path, entry = folder / "f.nc", f"{folder / f'{product}.nc'}:sst_mw"
    field = open_field(path, "sst", **cut)
    said: list[str] = []
    ref = _read_aux(path, [entry], field, "", log=said.append, cut={"bbox": None, "dates": None, **cut})["sst_mw"]
    lazy_field = open_lazy(path, "sst", {"time": 5, "lat": 10, "lon": 7}, **cut)
    told: list[str] = []
    (name, got, _, static), = _open_aux([entry], path, lazy_field, {"time": 5, "lat": 10, "lon": 7}, "",
                                        log=told.append, **cut)
    assert (name, static) == ("sst_mw", False) and told == said and len(said) == 1
    assert got.data.chunks[1][0] == 10 and got.data.chunks[2][0] == 7
    np.testing.assert_array_equal(np.isnan(got.values), np.isnan(ref.values))
    np.testing.assert_allclose(got.values, ref.values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.time.values, field.time.values)


def test_chunked_fill_with_another_products_covariate_is_the_in_memory_one(scene, tmp_path):
    """The same checkpoint with FILE:VAR on a coarser grid and other times, in memory (the
    covariate put on the field's grid whole) and in blocks of 5 days over the grid: equal to
    float32 rounding, with the checkpoint's statistics and with the whole cube's (``input``: the
    dask sums of the regridded covariate; of the covariate's own grid they would differ)."""
    folder, field = scene
    entry = f"{folder / 'coarse.nc'}:sst_mw"
    on = _read_aux(folder / "f.nc", [entry], field, "", log=lambda _m: None)["sst_mw"]
    said: list[str] = []
    for normalisation in ("auto", "input"):
        opts = {**NET, "checkpoint": str(folder / "ck"), "normalisation": normalisation}
        ref = get_method("unet")(**opts).fit(field, aux=on).reconstruct()["sst"].values
        out = tmp_path / f"{normalisation}.nc"
        interpolate_chunked(folder / "f.nc", out, "unet", var="sst", aux=[entry], chunks="time=5,lat=-1,lon=-1",
                            log=said.append, **opts)
        with xr.open_dataset(out) as ds:
            got = ds["sst"].values
            assert ds["sst"].attrs["aux_variables"] == "sst_mw"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got, ref, atol=2e-5)
    assert f"--aux {entry}: times matched to the field's 12 (nearest within half its step; 1 without one); its " \
           "12 x 14 grid interpolated (linear) to the field's 24 x 28" in said


def test_a_regridded_covariate_is_never_read_whole():
    """Nothing is read to build it; a block (its core and halo) reads only the covariate's chunks
    around its window; all blocks together read it about once per pass (no chunk of the result
    reads the whole grid, as xarray's own interp on dask would). Counted chunk reads."""
    import dask.array as dsa

    from oceandl.datasets.sst import synthetic_sst

    ds = synthetic_sst(n_time=8, ny=128, nx=128, seed=0, microwave=True)
    field, mw = open_field(ds, "sst"), open_field(ds, "sst_mw")
    coarse = mw.coarsen(lat=2, lon=2, boundary="trim").mean()  # 64 x 64, cells of 2 x 2 of the field's
    counted = CountedArray(coarse.values)
    cov = coarse.copy(data=dsa.from_array(counted, chunks=(4, 8, 8)))
    on, done = to_field_grid(cov, field, chunks={"time": 4, "lat": 16, "lon": 16})
    assert counted.read == 0 and done == ["its 64 x 64 grid interpolated (linear) to the field's 128 x 128"]
    # a block of core 16 x 16 and halo 4 (4 days) touches 3 x 3 chunks of the result, each of which reads
    # its window of 12 x 12 coarse points (the bracketing ones, 2 to spare each side): measured 5440
    # values, 33 % of these days' 64 x 64 (the whole grid: 100 %, with xarray's interp on dask)
    block = on.data[0:4, 44:68, 44:68].compute(scheduler="synchronous")
    assert np.isfinite(block).any()
    assert 0 < counted.read <= 4 * 3 * 3 * 12 * 12 * 1.1, counted.read
    counted.read = 0
    whole = on.data.compute(scheduler="synchronous")
    assert counted.read / counted.a.size < 1.5  # once, and the windows' margins where they cross chunks
    np.testing.assert_array_equal(whole, to_field_grid(coarse, field)[0].values)
    # days matched (at noon) and longitudes put in the field's convention (0..360 sorted): lazily too
    shifted = coarse.assign_coords(time=coarse.time + np.timedelta64(12, "h"), lon=coarse.lon % 360).sortby("lon")
    counted = CountedArray(shifted.values)
    on, done = to_field_grid(shifted.copy(data=dsa.from_array(counted, chunks=(4, 8, 8))), field,
                             chunks={"time": 4, "lat": 16, "lon": 16})
    assert counted.read == 0 and done[0] == "times matched to the field's 8 (nearest within half its step)"
    np.testing.assert_array_equal(on.values, to_field_grid(shifted, field)[0].values)
    assert counted.read == counted.a.size


def test_what_cannot_be_put_on_the_fields_grid_is_one_line_and_no_output(scene, tmp_path):
    folder, field = scene
    cov = open_field(folder / "coarse.nc", "sst_mw")
    cov.assign_coords(lat=cov.lat + 60).to_dataset(name="mw").to_netcdf(tmp_path / "north.nc")
    cov.assign_coords(time=cov.time + np.timedelta64(100, "D")).to_dataset(name="mw").to_netcdf(tmp_path / "later.nc")
    out = tmp_path / "o.nc"
    for name, said in (("north", "no value on the field's grid (latitudes 30 to 40"),
                       ("later", "none of its time steps is within half a step of the field's")):
        with pytest.raises(InputError, match=re.escape(said)) as exc:
            interpolate_chunked(folder / "f.nc", out, "dineof", var="sst", aux=[f"{tmp_path / name}.nc:mw"],
                                chunks="lat=12", n_modes=2)
        assert "\n" not in str(exc.value) and not out.exists()
        res = CliRunner().invoke(cli, ["interpolate", str(folder / "f.nc"), "--var", "sst", "--method", "dineof",
                                       "--aux", f"{tmp_path / name}.nc:mw", "--chunks", "lat=12", "--quiet",
                                       "-o", str(out)])
        assert_cli_error(res, 2, said.split(" (")[0], f"--aux {tmp_path / name}.nc:mw")
        assert not out.exists()


def test_cli_chunks_aux_from_another_grid(scene, tmp_path):
    """``--chunks --aux FILE:VAR`` on another grid and times: said on stderr as in memory, filled,
    named VAR in the output."""
    folder, _ = scene
    entry = f"{folder / 'fine.nc'}:sst_mw"
    res = CliRunner().invoke(cli, ["interpolate", str(folder / "f.nc"), "--var", "sst", "--method", "dineof",
                                   "--aux", entry, "--set", "n_modes=2", "--chunks", "lat=12,lon=14", "-o",
                                   str(tmp_path / "d.nc")])
    assert res.exit_code == 0, res.output
    assert f"--aux {entry}: its 72 x 84 grid block-averaged (lat x 3, lon x 3) and interpolated (linear) to the " \
           "field's 24 x 28" in res.stderr
    with xr.open_dataset(tmp_path / "d.nc") as out:
        assert out["sst"].attrs["aux_variables"] == "sst_mw"
        assert np.isfinite(out["sst"].values).any()
