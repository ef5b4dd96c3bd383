"""Adversarial audit of the newest gap-filling features (kelvin against degC fits, covariates of a
fit, per-file outputs): each test failed before its fix."""
from __future__ import annotations

import numpy as np
import pytest

from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import get_method


@pytest.fixture(scope="module")
def cube():
    return synthetic_sst(n_time=20, ny=16, nx=16, seed=0, microwave=True)


def _in_kelvin(da, units):
    k = da + 273.15
    k.attrs = dict(da.attrs)
    if units is None:
        k.attrs.pop("units", None)
    else:
        k.attrs["units"] = units
    return k.rename(da.name)


@pytest.mark.parametrize("spelling", ["degK", "deg_K", "degree_K", "degrees_K", "degreeK", "°K"])
def test_udunits_spellings_of_kelvin_fill_as_kelvin(cube, spelling):
    # UDUNITS/CF spell kelvin 'degK' too: it was refused as "other units (convert it first)"
    sst = cube["sst"]
    fit = get_method("eof")(device="cpu").fit(sst.isel(time=slice(0, 15)))
    new = sst.isel(time=slice(15, 20))
    a = fit.transform(new)
    with pytest.warns(UserWarning, match="the fit's means converted"):
        b = fit.transform(_in_kelvin(new, spelling))
    assert b["sst"].attrs["units"] == spelling
    np.testing.assert_allclose(b["sst"].values - 273.15, a["sst"].values, atol=2e-4, equal_nan=True)


def test_dineof_fit_refuses_a_kelvin_covariate_without_units(cube):
    # a covariate in kelvin without units was normalised as degC anomalies of 273: the fill came out
    # some 90 degC off (withheld RMSE 93.6 on the 24 x 24 synthetic cube), without a word
    from oceandl.interp.dineof import DINEOF

    past, new = cube.isel(time=slice(0, 15)), cube.isel(time=slice(15, 20))
    fit = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=past["sst_mw"])
    a = fit.transform(new["sst"], aux={"sst_mw": new["sst_mw"]})
    with pytest.raises(InputError, match=r"aux 'sst_mw'.*fitted scales.*other units\?"):
        fit.transform(new["sst"], aux={"sst_mw": _in_kelvin(new["sst_mw"], None)})
    # said: converted, the same fill
    b = fit.transform(new["sst"], aux={"sst_mw": _in_kelvin(new["sst_mw"], "degK")})
    np.testing.assert_allclose(b["sst"].values, a["sst"].values, atol=1e-4, equal_nan=True)
    # and the reverse: a fit of the covariate in kelvin (no units) takes a degC one (no units) no more
    back = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=_in_kelvin(past["sst_mw"], None))
    nounits = new["sst_mw"].copy()
    nounits.attrs.pop("units", None)
    with pytest.raises(InputError, match="aux 'sst_mw'"):
        back.transform(new["sst"], aux={"sst_mw": nounits})


@pytest.mark.parametrize("lazy", [False, True])
def test_a_global_covariate_wraps_round_the_dateline(lazy):
    # ERA5-like 0.25 degree covariate on 0..359.75 beside a global 0.05 degree field on
    # -179.975..179.975: the field's columns past 179.875 lay between the covariate's last column
    # (179.75) and its first (-180 = 180), and were left missing (2 columns of NaN at the dateline)
    import xarray as xr

    from oceandl.io import to_field_grid

    lat = np.arange(-0.975, 1, 0.05)
    lon_f = np.round(np.arange(-179.975, 180, 0.05), 3)
    field = xr.DataArray(np.zeros((2, lat.size, lon_f.size), np.float32), dims=("time", "lat", "lon"), name="sst",
                         coords={"time": np.array(["2020-01-01", "2020-01-02"], "datetime64[ns]"), "lat": lat,
                                 "lon": lon_f})
    lat_c, lon_c = np.arange(-1.0, 1.01, 0.25), np.arange(0, 360, 0.25)
    wave = 10 * np.sin(np.deg2rad(lon_c))
    cov = xr.DataArray(np.broadcast_to(wave, (2, lat_c.size, lon_c.size)).astype(np.float32), name="u10",
                       dims=("time", "lat", "lon"), coords={"time": field["time"].values, "lat": lat_c, "lon": lon_c})
    out, done = to_field_grid(cov, field, chunks={"time": -1, "lat": 20, "lon": 1000} if lazy else None)
    values = np.asarray(out.values)
    assert np.isfinite(values).all(), lon_f[np.isnan(values).any(axis=(0, 1))]
    # linear between 179.75 and 180 (the covariate's 0), as anywhere else between two of its columns
    want = np.interp(lon_f % 360, np.append(lon_c, 360.0), np.append(wave, wave[0]))
    np.testing.assert_allclose(values[0, 5], want, atol=1e-5)
    assert done == ["its 9 x 1440 grid interpolated (linear) to the field's 40 x 7200"]
