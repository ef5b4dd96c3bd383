"""Audit of ``interpolate --fit-on FIT --chunks time=N`` (a fit applied by time blocks): the cases a
user filling years of daily files with a decade's fit meets, compared with the in-memory fill."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from fakes import torch_threads

from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import DINEOF, EOFInterpolator, interpolate, interpolate_chunked, load_fitted
from oceandl.io import open_field

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning")]


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """past.nc (24 days) and new.nc (the next 12) of a 16 x 16 synthetic cube; an eof and a DINEOF
    (error map) fit of the past, saved."""
    root = tmp_path_factory.mktemp("audit106")
    ds = synthetic_sst(seed=3, n_time=36, ny=16, nx=16)
    ds.isel(time=slice(0, 24)).to_netcdf(root / "past.nc")
    ds.isel(time=slice(24, None)).to_netcdf(root / "new.nc")
    past = open_field(root / "past.nc", "sst")
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")  # the small cube's calibration warnings
        EOFInterpolator(n_modes=3).fit(past).save(root / "eof")
        DINEOF(n_modes=3, error_map=True, seed=0).fit(past).save(root / "dineof")
    return root


@pytest.mark.parametrize("method", ["eof", "dineof"])
def test_an_input_already_cut_to_a_box_of_the_fit_streams_as_in_memory(fits, tmp_path, method):
    """A file on a box of the fit's grid (cut before, no bbox): in memory the fit is cut to it (warned);
    by time blocks it raised AttributeError: 'outside_' (each block's cut copy never reached the stream).
    Now the fit is cut once, warned once, and the file is the in-memory fill."""
    box = xr.open_dataset(fits / "new.nc").isel(lat=slice(3, 11), lon=slice(5, 14))
    box.to_netcdf(tmp_path / "box.nc")
    kw = {"transform_calibration": False} if method == "dineof" else {}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        interpolate_chunked(tmp_path / "box.nc", tmp_path / "c.nc", method, var="sst", fit_on=fits / method,
                            chunks={"time": 5}, **kw)
    cuts = [w for w in said if "is a block of the fit's 16 x 16" in str(w.message)]
    assert len(cuts) == 1, [str(w.message) for w in said]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interpolate(open_field(tmp_path / "box.nc", "sst"), method, fit_on=fits / method, return_dataset=True,
                          **kw)
    with xr.open_dataset(tmp_path / "c.nc") as out:
        assert out["sst"].shape == (12, 8, 9)
        assert np.array_equal(out["missing_flag"].values, mem["missing_flag"].values)
        assert int((out["missing_flag"].values == 1).sum()) > 50
        np.testing.assert_allclose(out["sst"].values, mem["sst"].values, rtol=0, atol=1e-5)
        if method == "dineof":
            np.testing.assert_allclose(out["sigma"].values, mem["sigma"].values, rtol=1e-5, atol=1e-6)


def test_streamed_sigma_fallback_says_why_as_in_memory(fits, tmp_path):
    """Blocks of 1 day had no other day's clouds to paste: nothing was hidden and sigma kept the fit's
    scale. Now the clouds are the whole series' (audit110): 1-day blocks, a day without observation (a
    satellite outage) among them, give the in-memory sigma and attrs. A field of one day has nothing to
    paste: the fit's scale, said as in memory."""
    # 40 new days on the fit's grid, after its period (its 12 days hide fewer than 200 observations)
    ds = synthetic_sst(seed=4, n_time=40, ny=16, nx=16).assign_coords(
        time=np.arange("2021-01-01", "2021-02-10", dtype="datetime64[D]").astype("datetime64[ns]"))
    ds["sst"][4] = np.nan  # a day with no observation: a block with nothing to hide
    ds.to_netcdf(tmp_path / "new.nc")
    ds.isel(time=slice(0, 1)).to_netcdf(tmp_path / "one.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("new", "one"):
            interpolate_chunked(tmp_path / f"{name}.nc", tmp_path / f"c_{name}.nc", "dineof", var="sst",
                                fit_on=fits / "dineof", chunks={"time": 1})
        mem = {name: interpolate(open_field(tmp_path / f"{name}.nc", "sst"), "dineof", fit_on=fits / "dineof",
                                 return_dataset=True) for name in ("new", "one")}
        fit = load_fitted(fits / "dineof")
    for name in ("new", "one"):
        with xr.open_dataset(tmp_path / f"c_{name}.nc") as out:
            ours, theirs = out["sigma"].attrs, mem[name]["sigma"].attrs
            assert ours["transform_sigma_calibration"] == theirs["transform_sigma_calibration"]
            assert ours["transform_sigma_scale"] == pytest.approx(theirs["transform_sigma_scale"], rel=1e-12)
            np.testing.assert_allclose(out["sigma"].values, mem[name]["sigma"].values, rtol=1e-5)
    assert mem["new"]["sigma"].attrs["transform_sigma_calibration"].startswith("x")  # calibrated
    said = mem["one"]["sigma"].attrs["transform_sigma_calibration"]
    assert said.startswith("the fit's cv_sigma_scale x") and "0 observations of this field could be hidden" in said
    assert mem["one"]["sigma"].attrs["transform_sigma_scale"] == pytest.approx(float(fit.cv_sigma_scale_))


def test_info_says_the_fit_the_blocks_and_sigma_scale_of_a_streamed_fill(fits, tmp_path):
    """`oceandl info` on the file of `interpolate --fit-on FIT --chunks time=5` said the method and its
    options only: not the fit applied (fitted_on), nor the blocks (chunked), nor how sigma was scaled."""
    from oceandl.describe import describe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpolate_chunked(fits / "new.nc", tmp_path / "c.nc", "dineof", var="sst", fit_on=fits / "dineof",
                            chunks={"time": 5})
    facts = describe(tmp_path / "c.nc")
    assert facts["method"] == "dineof"
    assert facts["fitted on"].startswith("variable 'sst', 24 steps") and "(saved in " in facts["fitted on"], facts
    assert facts["chunked"] == "3 blocks of time 5 x lat 16 x lon 16: a fit applied by time blocks over the whole grid"
    with xr.open_dataset(tmp_path / "c.nc") as out:
        assert facts["sigma"] == out["sigma"].attrs["transform_sigma_calibration"]
    assert "hidden by cloud-mask transfer" in facts["sigma"], facts["sigma"]


def test_keep_observed_false_with_a_fit_made_is_refused_not_ignored(fits, tmp_path):
    """interpolate(..., fit_on=FIT, keep_observed=False) is refused in memory (an option of the fit);
    interpolate_chunked(..., fit_on=FIT, keep_observed=False) wrote the observations as given anyway
    (the file equal to the one with keep_observed=True). Now refused the same way, nothing written."""
    from oceandl.errors import InputError

    new = open_field(fits / "new.nc", "sst")
    with pytest.raises(InputError) as mem:
        interpolate(new, "eof", fit_on=fits / "eof", keep_observed=False)
    with pytest.raises(InputError) as chunked:
        interpolate_chunked(fits / "new.nc", tmp_path / "c.nc", "eof", var="sst", fit_on=fits / "eof",
                            chunks={"time": 5}, keep_observed=False)
    assert str(chunked.value) == str(mem.value)
    assert "(got keep_observed)" in str(chunked.value)
    assert not (tmp_path / "c.nc").exists()


def test_kelvin_input_with_a_degc_fit_is_warned_once_by_time_blocks(fits, tmp_path):
    """A kelvin series (GHRSST L3) filled with a degC fit: the fit's means are converted (the fill in
    kelvin, equal to the in-memory one). In memory that is one warning; by time blocks it was one per
    block and per pass (6 for 3 blocks with DINEOF's smoother), without the file's name. Now one, named."""
    ds = xr.open_dataset(fits / "new.nc")
    k = ds[["sst"]].copy()
    k["sst"] = (ds["sst"] + 273.15).assign_attrs({**ds["sst"].attrs, "units": "kelvin"})
    k.to_netcdf(tmp_path / "new_K.nc")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        interpolate_chunked(tmp_path / "new_K.nc", tmp_path / "c.nc", "dineof", var="sst", fit_on=fits / "dineof",
                            chunks={"time": 5}, transform_calibration=False)
    units = [str(w.message) for w in said if "the fit's means converted to 'kelvin'" in str(w.message)]
    assert units == [f"{tmp_path / 'new_K.nc'}: variable 'sst': in 'kelvin', the field fitted in "
                     "'degree_Celsius': the fit's means converted to 'kelvin', the fill in them"], units
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interpolate(open_field(tmp_path / "new_K.nc", "sst"), "dineof", fit_on=fits / "dineof",
                          return_dataset=True, transform_calibration=False)
    with xr.open_dataset(tmp_path / "c.nc") as out:
        np.testing.assert_allclose(out["sst"].values, mem["sst"].values, rtol=0, atol=1e-4)
        assert float(np.nanmin(out["sst"].values)) > 250  # the fill is in kelvin
        assert np.array_equal(out["missing_flag"].values, mem["missing_flag"].values)


def test_streamed_calibration_hides_its_fraction_of_the_observations_not_a_paste_per_block(fits, tmp_path):
    """Sigma's calibration by time blocks hides 8 % of the observations by cloud-mask transfer, as in
    memory (the attrs say so). A paste hides a donor day's clouds at once, a quarter of a 2-day block:
    every block overshot, and blocks of 2 days hid 3-4 times the 8 % (32 % on GHRSST-like days at
    quality >= 4). Then each block hid 8 % of the observations read so far (its own days' clouds only);
    now the whole series' transfer, once: the in-memory hidden set, at most one paste over the 8 %."""
    import re

    # 40 new days on the fit's grid, after its period, clouded as L3 days at quality >= 4
    new = synthetic_sst(seed=4, n_time=40, ny=16, nx=16, cloud_cover=0.7)
    new.assign_coords(time=np.arange("2021-01-01", "2021-02-10", dtype="datetime64[D]").astype("datetime64[ns]")
                      ).to_netcdf(tmp_path / "new.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpolate_chunked(tmp_path / "new.nc", tmp_path / "c.nc", "dineof", var="sst", fit_on=fits / "dineof",
                            chunks={"time": 2})
        mem = interpolate(open_field(tmp_path / "new.nc", "sst"), "dineof", fit_on=fits / "dineof",
                          return_dataset=True)
    fit = load_fitted(fits / "dineof")
    obs = np.isfinite(open_field(tmp_path / "new.nc", "sst").values) & fit.ocean_[None]
    day = int(obs.sum(axis=(1, 2)).max())  # one paste hides at most a day's observations
    with xr.open_dataset(tmp_path / "c.nc") as out:
        said = out["sigma"].attrs["transform_sigma_calibration"]
    held = int(re.search(r"of its (\d+) observations hidden", said).group(1))
    assert "(8%; the fill rerun" in said and said == mem["sigma"].attrs["transform_sigma_calibration"], said
    assert np.ceil(0.08 * obs.sum()) <= held <= np.ceil(0.08 * obs.sum()) + day, (held, int(obs.sum()), day)


def test_the_cli_last_line_names_a_field_fitted_on_as_such(fits, tmp_path):
    """`interpolate new.nc --fit-on past.nc --chunks time=12` fits on past.nc in memory: its last line said
    "fit past.nc applied in 1 blocks of 12 days", as for a saved fit. Now "a fit on past.nc applied in
    1 block of 12 days"; a saved fit keeps "fit FOLDER applied in 3 blocks of 5 days"."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli

    runner = CliRunner()
    args = ["interpolate", str(fits / "new.nc"), "--var", "sst", "--method", "eof", "--quiet"]
    res = runner.invoke(cli, args + ["--fit-on", str(fits / "past.nc"), "--set", "n_modes=3", "--chunks", "time=12",
                                     "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    assert f"eof: a fit on {fits / 'past.nc'} applied in 1 block of 12 days over the whole grid" in res.output
    res = runner.invoke(cli, args + ["--fit-on", str(fits / "eof"), "--chunks", "time=5", "-o", str(tmp_path / "b.nc")])
    assert res.exit_code == 0, res.output
    assert f"eof: fit {fits / 'eof'} applied in 3 blocks of 5 days over the whole grid" in res.output
