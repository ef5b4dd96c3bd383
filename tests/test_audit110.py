"""Audit of sigma (DINEOF's error map) of ``interpolate --fit-on FIT --chunks time=N``: its calibration on
the new field hid observations under clouds pasted within each block (each block its own days' clouds),
so the scale depended on the blocks (4-10 % off in blocks of 5-10 of 40 synthetic days, never calibrated
in 1-day blocks); now the in-memory hidden set, found from the whole series' observed pixels kept by the
first pass, and one scale. And the test of a field without units (kelvin against a degC fit), made per
block without the file's name, now once on the whole series, named."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import saved_dineof_fit

from oceandl.cli.main import cli
from oceandl.errors import InputError
from oceandl.interp import interpolate, interpolate_chunked
from oceandl.io import open_field

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning")]


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    """past.nc (24 days) and new.nc (the next 40) of a 16 x 16 synthetic cube; a 3-mode DINEOF with its
    error map fitted on the past and saved."""
    return saved_dineof_fit(tmp_path_factory.mktemp("audit110"), 64)


@pytest.mark.parametrize("days, smoother", [(1, True), (7, True), (7, False)])
def test_streamed_sigma_is_the_in_memory_one_whatever_the_blocks(fit, tmp_path, days, smoother):
    """Blocks of 7 of 40 days gave a scale 4-10 % off the in-memory one (their own days' clouds pasted on
    their own cleanest days); 1-day blocks kept the fit's scale (no other day to paste). Now the file's
    sigma and its attrs are the in-memory ones, with the smoother (the run without the hidden observations
    smoothed over the whole series) and without; nothing is left beside the output."""
    opts = {} if smoother else {"transform_smoother": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interpolate(open_field(fit / "new.nc", "sst"), "dineof", fit_on=fit / "dineof", return_dataset=True,
                          **opts)
        interpolate_chunked(fit / "new.nc", tmp_path / "c.nc", "dineof", var="sst", fit_on=fit / "dineof",
                            chunks={"time": days}, **opts)
    theirs = mem["sigma"].attrs
    assert theirs["transform_sigma_calibration"].startswith("x")  # calibrated on this field, not the fit's scale
    with xr.open_dataset(tmp_path / "c.nc") as out:
        ours = out["sigma"].attrs
        assert ours["transform_sigma_scale"] == pytest.approx(theirs["transform_sigma_scale"], rel=1e-12)
        for key in ("transform_sigma_calibration", "transform_sigma_calibration_points"):
            assert ours[key] == theirs[key]
        np.testing.assert_allclose(out["sigma"].values, mem["sigma"].values, rtol=1e-6)
        np.testing.assert_allclose(out["sst"].values, mem["sst"].values, rtol=0, atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["c.nc"]  # the observed pixels' bits were in an unlinked file


def test_cloud_transfer_by_day_is_the_whole_cube_transfer_draw_for_draw():
    """cloud_transfer_days (days read one at a time, the withheld pixels kept in a mapping given) hides the
    pixels withhold_by_cloud_transfer hides on the whole cube: same cleanest days, same donors, same seed."""
    from oceandl.interp.withhold import cloud_transfer_days, withhold_by_cloud_transfer

    rng = np.random.default_rng(0)
    for seed in range(20):
        valid = rng.random((int(rng.integers(2, 25)), 6, 7)) < rng.uniform(0.2, 0.9)
        valid[int(rng.integers(valid.shape[0]))] = False  # an outage: lends no cloud
        for fraction in (0.08, 0.5):
            whole = withhold_by_cloud_transfer(valid, fraction=fraction, seed=seed, at_most=True)
            kept: dict = {}
            taken, done = cloud_transfer_days(valid.__getitem__, valid.sum(axis=(1, 2)), valid.any(axis=0),
                                              int(np.ceil(fraction * valid.sum())), seed, withheld=kept)
            by_day = np.zeros_like(valid)
            for t, w in taken.items():
                by_day[t] = w
            assert taken is kept and done == int(whole.sum())
            assert np.array_equal(by_day, whole), (seed, fraction)


@pytest.fixture()
def offset(fit, tmp_path):
    """new.nc without units: in kelvin (K.nc), and with its first 5 days 15 fitted scales off (first.nc)."""
    from oceandl.interp import load_fitted

    ds = xr.open_dataset(fit / "new.nc")
    attrs = {k: v for k, v in ds["sst"].attrs.items() if k != "units"}
    kelvin, first = ds["sst"] + 273.15, ds["sst"].copy()
    first[:5] += 15 * float(load_fitted(fit / "dineof").scale_)
    for name, da in (("K", kelvin), ("first", first)):
        da.attrs = attrs  # no units (assign_attrs would keep the old ones)
        da.to_dataset(name="sst").to_netcdf(tmp_path / f"{name}.nc")
    return tmp_path


def test_a_kelvin_field_without_units_is_refused_once_named_as_in_memory(fit, offset):
    """A field without units in kelvin against a degC fit, by time blocks: refused by the first block
    alone, with that block's mean ("+273" here) and without the file's name (interpolate_chunked). Now the
    whole series' mean once its first pass is read: the in-memory line (`interpolate` without --chunks),
    the file named; nothing written."""
    runner = CliRunner()
    lines = []
    for chunks in ([], ["--chunks", "time=5"]):
        res = runner.invoke(cli, ["interpolate", str(offset / "K.nc"), "--var", "sst", "--fit-on",
                                  str(fit / "dineof"), "--withhold", "0", "--quiet", "-o",
                                  str(offset / f"out{len(chunks)}.nc"), *chunks])
        assert res.exit_code == 2, res.output
        lines.append(res.output.strip().splitlines()[-1])
    assert lines[0] == lines[1], lines
    assert lines[1].startswith(f"Error: {offset / 'K.nc'}: variable 'sst': its observations are +27")
    assert "fitted scales: other units?" in lines[1]
    with pytest.raises(InputError) as exc, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpolate_chunked(offset / "K.nc", offset / "c.nc", "dineof", var="sst", fit_on=fit / "dineof",
                            chunks={"time": 5}, transform_smoother=False)  # the first pass writes: nothing kept
    assert str(exc.value) == lines[0][len("Error: "):]
    assert not (offset / "c.nc").exists() and not (offset / "out2.nc").exists()


def test_the_units_test_is_the_whole_series_not_a_block(fit, offset):
    """Its first 5 days 15 fitted scales off, the series 2 on average: filled in memory, while by 5-day
    blocks the first block alone was refused as in other units. Now filled by blocks as in memory."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interpolate(open_field(offset / "first.nc", "sst"), "dineof", fit_on=fit / "dineof",
                          return_dataset=True, transform_calibration=False)
        interpolate_chunked(offset / "first.nc", offset / "c.nc", "dineof", var="sst", fit_on=fit / "dineof",
                            chunks={"time": 5}, transform_calibration=False)
    with xr.open_dataset(offset / "c.nc") as out:
        np.testing.assert_allclose(out["sst"].values, mem["sst"].values, rtol=0, atol=1e-4)
