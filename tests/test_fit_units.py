"""A fit in degC fills a field (or takes a covariate) in kelvin, and the reverse: GHRSST L3 and
AMSR2 come in kelvin, a decade's fit is often made on a degC product. The fit's pixel means are
put in the field's units (its scale, cycle and modes are of normalised anomalies, the same in both)
and the fill is in the field's units, with a warning; other units said are refused in one line.
``transform()`` refused kelvin against degC with "convert it first"."""
from __future__ import annotations

import numpy as np
import pytest

from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import get_method


def _kelvin(da):
    k = da + 273.15
    k.attrs = dict(da.attrs, units="K")
    return k.rename(da.name)


@pytest.fixture(scope="module")
def cube():
    return synthetic_sst(n_time=20, ny=16, nx=16, seed=0, microwave=True)


@pytest.mark.parametrize("method", ["climatology", "eof", "dineof"])
def test_a_degc_fit_fills_a_kelvin_field_in_kelvin(cube, method):
    sst = cube["sst"]
    fit = get_method(method)(device="cpu").fit(sst.isel(time=slice(0, 15)))
    new = sst.isel(time=slice(15, 20))
    a = fit.transform(new)
    with pytest.warns(UserWarning, match="the fit's means converted to 'K'"):
        b = fit.transform(_kelvin(new))
    assert b["sst"].attrs["units"] == "K"
    # float32 near 290: one unit in the last place is 3e-5
    np.testing.assert_allclose(b["sst"].values - 273.15, a["sst"].values, atol=2e-4, equal_nan=True)
    np.testing.assert_array_equal(b["missing_flag"].values, a["missing_flag"].values)
    assert np.isfinite(b["sst"].values).sum() > 0.9 * np.isfinite(a["sst"].values).sum() > 0
    # and the reverse: a fit of the kelvin field fills the degC one in degC
    back = get_method(method)(device="cpu").fit(_kelvin(sst.isel(time=slice(0, 15))))
    with pytest.warns(UserWarning, match="converted to 'degree_Celsius'"):
        c = back.transform(new)
    np.testing.assert_allclose(c["sst"].values, a["sst"].values, atol=2e-3, equal_nan=True)
    with pytest.raises(InputError, match="in units 'degree_Fahrenheit'.*convert it first"):
        fit.transform(new.assign_attrs(units="degree_Fahrenheit"))


def test_dineof_fit_with_a_degc_covariate_takes_it_in_kelvin(cube):
    from oceandl.interp.dineof import DINEOF

    past, new = cube.isel(time=slice(0, 15)), cube.isel(time=slice(15, 20))
    fit = DINEOF(device="cpu", n_modes=4).fit(past["sst"], aux=past["sst_mw"])
    a = fit.transform(new["sst"], aux={"sst_mw": new["sst_mw"]})
    b = fit.transform(new["sst"], aux={"sst_mw": _kelvin(new["sst_mw"])})
    np.testing.assert_allclose(b["sst"].values, a["sst"].values, atol=1e-4, equal_nan=True)
    # the covariate matters here: without the conversion its anomaly of 273 would move the fill
    plain = DINEOF(device="cpu", n_modes=4).fit(past["sst"]).transform(new["sst"])
    gaps = np.isnan(new["sst"].values) & np.isfinite(a["sst"].values)
    assert np.nanmax(np.abs(plain["sst"].values - a["sst"].values)[gaps]) > 1e-2
