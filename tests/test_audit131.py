"""Audit of the seasonal fit of rarely seen pixels (audit131): with more harmonics than enough pixels
determine on each of :func:`~oceandl.interp.climatology.shrink_harmonics`'s folds, nothing was shrunk, and a
pixel seen once (or a few times) got a flat cycle at its centre. The first harmonics that can be are now
shrunk (0 beyond them), in memory and in the chunked statistics alike."""
from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
import xarray as xr
from fakes import rmse

from oceandl.interp import Climatology, interpolate


@cache
def _thinned(cloud: float, seed: int):
    """A year of 12 x 12 with 10 % of the ocean pixels seen more than 5 times cut to one observation and 10 %
    to 2-5 (at random); returns ``(ds, da, once, gaps, truth)`` (``once``: the gaps at pixels seen once)."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.io import open_field

    ds = synthetic_sst(n_time=365, ny=12, nx=12, cloud_cover=cloud, seed=seed)
    da = open_field(ds, "sst")
    rng = np.random.default_rng(seed)
    v = da.values.copy()
    seen = np.isfinite(v)
    pix = np.flatnonzero(seen.sum(0) > 5)
    rng.shuffle(pix)
    m = len(pix) // 10
    for j, p in enumerate(pix[:2 * m]):
        iy, ix = np.unravel_index(p, v.shape[1:])
        t = np.flatnonzero(seen[:, iy, ix])
        keep = 1 if j < m else int(rng.integers(2, 6))
        v[rng.choice(t, len(t) - keep, replace=False), iy, ix] = np.nan
    da = da.copy(data=v)
    ds = ds.assign(sst=da)
    truth = ds["sst_true"].values
    seen = np.isfinite(v)
    n = seen.sum(0)
    gaps = ~seen & np.isfinite(truth) & (n > 0)[None]
    return ds, da, gaps & (n == 1)[None], gaps, truth


@pytest.mark.parametrize("h", [2, 3])
def test_more_harmonics_than_the_folds_determine_shrink_the_first_ones(h):
    """cloud 0.75, seed 2: 102 neighbour pairs determine one harmonic on each fold, none two. Before:
    harmonics=2 and 3 shrank nothing; gap RMSE at the pixels seen once 3.45 degC, all gaps 2.24 (1.39
    with harmonics=1). Now the annual harmonic is shrunk, the fill harmonics=1's."""
    _, da, once, gaps, truth = _thinned(0.75, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Climatology(harmonics=h).fit(da)
        one = Climatology(harmonics=1).fit(da)
    assert m.shrinkage_["shrunk"] and m.shrinkage_["harmonics"] == 1 and m.shrinkage_["pairs"] == 102
    got = m.reconstruct()["sst"].values
    assert rmse(got[once], truth[once]) < 2.2
    assert rmse(got[gaps], truth[gaps]) < 1.45
    np.testing.assert_allclose(got, one.reconstruct()["sst"].values, atol=1e-4, equal_nan=True)
    # the coefficients beyond the harmonics shrunk are 0 at every pixel, the levels each pixel's own
    assert np.all(m.coefficients_[3:][:, m.ocean_] == 0)
    assert m.levels_.max() == h


def test_one_chunked_block_is_the_in_memory_fill_with_fewer_harmonics_shrunk(tmp_path):
    """cloud 0.6, seed 1, harmonics=3: two harmonics shrunk (65 pairs), none before: gap RMSE at the
    pixels seen once 3.01 -> 1.53 degC (all gaps 2.02 -> 1.27), in memory and in one chunked block alike."""
    from oceandl.interp.chunked import interpolate_chunked
    from oceandl.io import write_netcdf

    ds, da, once, gaps, truth = _thinned(0.6, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = interpolate(da, "climatology", harmonics=3).values
    assert rmse(ref[once], truth[once]) < 1.7
    assert rmse(ref[gaps], truth[gaps]) < 1.4
    src = tmp_path / "sst.nc"
    write_netcdf(ds[["sst"]], src)
    interpolate_chunked(src, tmp_path / "b.nc", "climatology", chunks="time=-1,lat=-1,lon=-1", progress=False,
                        harmonics=3)
    with xr.open_dataset(tmp_path / "b.nc") as b:
        got = b["sst"].values
    # the normal equations are dask sums: the in-memory fill to float32 rounding (as test_chunked's)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)
    assert rmse(got[once], truth[once]) < 1.7



def test_without_shrinkage_a_pixel_seen_once_takes_its_neighbours_harmonics(tmp_path):
    """cloud 0.9, seed 4: too few neighbour pairs determine even one harmonic on each fold, nothing is
    shrunk; 68 of 121 pixels determine one on their own. A pixel seen once took a flat cycle at its
    centre (gap RMSE there 3.37 degC, all gaps 2.60); now its neighbours' harmonics: 1.73 (1.58), in
    memory and in one chunked block alike."""
    from oceandl.interp.chunked import interpolate_chunked
    from oceandl.io import write_netcdf

    ds, da, once, gaps, truth = _thinned(0.9, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Climatology(harmonics=1).fit(da)
    assert not m.shrinkage_["shrunk"] and (m.levels_ == 1).sum() == 68
    ref = m.reconstruct()["sst"].values
    assert rmse(ref[once], truth[once]) < 1.9
    assert rmse(ref[gaps], truth[gaps]) < 1.7
    # a pixel seen once: its harmonics are those of well-observed pixels, its level its one observation
    px = once.any(axis=0)
    coef = m.coefficients_
    assert np.all(np.abs(coef[1][px]) > 0)
    src = tmp_path / "sst.nc"
    write_netcdf(ds[["sst"]], src)
    interpolate_chunked(src, tmp_path / "b.nc", "climatology", chunks="time=-1,lat=-1,lon=-1", progress=False,
                        harmonics=1)
    with xr.open_dataset(tmp_path / "b.nc") as b:
        np.testing.assert_allclose(b["sst"].values, ref, rtol=1e-6, atol=1e-5)
