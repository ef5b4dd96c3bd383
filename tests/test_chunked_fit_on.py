"""A fit (saved by ``train interpolator``, or made on another file) applied to a series streamed by
time blocks: ``oceandl interpolate NEW --fit-on FIT --chunks time=N`` and
``interpolate_chunked(..., fit_on=FIT)``.

Each block is whole days over the whole grid, filled by the fit's ``transform``; DINEOF's smoother
couples the days, so its amplitudes are smoothed over the whole series first (a pass of k x k
numbers per step). The file equals the in-memory ``--fit-on`` fill of the same days (nothing
withheld; DINEOF's sigma with the fit's calibration scale, ``transform_calibration=false`` in
memory) to float precision. Bad input is refused in one line before anything is written."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error, torch_threads

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import DINEOF, Climatology, interpolate, interpolate_chunked, load_fitted
from oceandl.io import open_field

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning")]


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """past.nc (40 days) and new.nc (the next 20, with a covariate sst_mw) of a 16 x 20 synthetic cube;
    DINEOF (error map) and the climatology fitted on the past and saved, and a DINEOF with sst_mw."""
    root = tmp_path_factory.mktemp("chunked_fit_on")
    ds = synthetic_sst(seed=1, n_time=60, ny=16, nx=20, microwave=True)
    ds.isel(time=slice(0, 40)).to_netcdf(root / "past.nc")
    ds.isel(time=slice(40, None)).to_netcdf(root / "new.nc")
    ds.isel(time=slice(40, None)).drop_vars("sst_mw").to_netcdf(root / "new_no_mw.nc")
    ds[["sst_mw"]].rename(sst_mw="mw").to_netcdf(root / "mw_all.nc")  # another file's covariate, both periods
    past = open_field(root / "past.nc", "sst")
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")  # the small cube's calibration warnings
        DINEOF(n_modes=3, error_map=True, seed=0).fit(past).save(root / "dineof")
        Climatology(harmonics=0).fit(past).save(root / "climatology")
        mw = open_field(root / "past.nc", "sst_mw")
        DINEOF(n_modes=3, seed=0).fit(past, aux={"sst_mw": mw}).save(root / "dineof_mw")
    return root


def _same(chunked: xr.Dataset, mem: xr.Dataset, sigma: bool) -> None:
    assert np.array_equal(chunked["missing_flag"].values, mem["missing_flag"].values)
    a, b = chunked["sst"].values, mem["sst"].values
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert int((chunked["missing_flag"].values == 1).sum()) > 100  # gaps were filled, not only observations copied
    assert ("sigma" in chunked) == sigma == ("sigma" in mem)
    if sigma:
        np.testing.assert_allclose(chunked["sigma"].values, mem["sigma"].values, rtol=1e-5, atol=1e-6)


def test_saved_dineof_fit_streamed_equals_in_memory(cube, tmp_path):
    """A saved DINEOF fit (error map) applied by blocks of 6 days: the in-memory transform's field, flags
    and sigma (its calibration on the new field off in both); its smoother ran over the whole series
    (the blocks' edges are not independent days). Without the smoother: each day alone, as in memory."""
    new = open_field(cube / "new.nc", "sst")
    said = []
    fit = cube / "dineof"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interpolate_chunked(cube / "new.nc", tmp_path / "c.nc", "dineof", var="sst", fit_on=fit,
                                  chunks={"time": 6}, log=said.append, transform_calibration=False)
        mem = interpolate(new, "dineof", fit_on=fit, return_dataset=True, transform_calibration=False)
        # each day alone (no smoother): what blocks filled independently would give at best; it differs
        alone = interpolate(new, "dineof", fit_on=fit, return_dataset=True, transform_calibration=False,
                            transform_smoother=False)
        interpolate_chunked(cube / "new.nc", tmp_path / "alone.nc", "dineof", var="sst", fit_on=fit,
                            chunks={"time": 6}, transform_smoother=False, transform_calibration=False)
    assert res.n_blocks == 4 and res.shape == (20, 16, 20)
    assert any("smoothed over the whole series" in s for s in said), said
    with xr.open_dataset(tmp_path / "c.nc") as out, xr.open_dataset(tmp_path / "alone.nc") as out_alone:
        _same(out, mem, sigma=True)
        _same(out_alone, alone, sigma=True)
        assert np.nanmax(np.abs(out["sst"].values - alone["sst"].values)) > 1e-3
        assert out["sst"].attrs["method"] == "dineof" and "fitted_on" in out["sst"].attrs
        assert "fit" in out["sst"].attrs["chunked"]


def test_streamed_sigma_calibrated_on_the_new_field(cube, tmp_path):
    """DINEOF's sigma calibrated on the new field (transform_calibration, the default) under chunks: the
    observations the in-memory transform hides (the whole series' clouds pasted on its cleanest days), found
    once the first pass has read them, filled again from the series' amplitudes without them, the scale
    fitted on all at the end. Any blocks give the in-memory sigma and its attrs (blocks of 5 days pasted
    only their own days' clouds: x3.28 against x3.90 here), not the fit's scale."""
    new = open_field(cube / "new.nc", "sst")
    fit = cube / "dineof"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interpolate(new, "dineof", fit_on=fit, return_dataset=True)
        for t in (-1, 5):
            interpolate_chunked(cube / "new.nc", tmp_path / f"c{t}.nc", "dineof", var="sst", fit_on=fit,
                                chunks={"time": t})
    fit_scale = float(load_fitted(fit).cv_sigma_scale_)
    theirs = mem["sigma"].attrs["transform_sigma_scale"]
    assert "transform_sigma_calibration_points" in mem["sigma"].attrs and abs(theirs / fit_scale - 1) > 0.2
    for t in (-1, 5):
        with xr.open_dataset(tmp_path / f"c{t}.nc") as out:
            _same(out, mem, sigma=True)
            assert out["sigma"].attrs["transform_sigma_scale"] == pytest.approx(theirs, rel=1e-12)
            for key in ("transform_sigma_calibration", "transform_sigma_calibration_points"):
                assert out["sigma"].attrs[key] == mem["sigma"].attrs[key]


def test_fit_on_file_climatology_cli_streamed_with_mask(cube, tmp_path):
    """`--fit-on past.nc --chunks time=7 --mask` (the climatology fitted in memory on the other file, the
    target streamed) writes the in-memory `--fit-on --withhold 0` file: field, flags 0-4, sigma."""
    mask = xr.open_dataset(cube / "new.nc")["sst"].isel(time=0).notnull() | True
    mask[:3, :4] = False  # a corner of land
    mask.astype("i1").rename("sea").to_dataset().to_netcdf(tmp_path / "sea.nc")
    runner = CliRunner()
    args = ["interpolate", str(cube / "new.nc"), "--var", "sst", "--method", "climatology", "--fit-on", str(cube / "past.nc"),
            "--mask", f"{tmp_path / 'sea.nc'}:sea", "--quiet"]
    r = runner.invoke(cli, [*args, "--chunks", "time=7", "-o", str(tmp_path / "c.nc")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, [*args, "--withhold", "0", "-o", str(tmp_path / "m.nc")])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(tmp_path / "c.nc") as c, xr.open_dataset(tmp_path / "m.nc") as m:
        _same(c, m, sigma=True)
        assert int((c["missing_flag"].values == 3).sum()) > 0  # observations on the mask's land dropped


def test_saved_multivariate_fit_streamed_and_per_file(cube, tmp_path):
    """A saved DINEOF fit with a covariate reads it from the input block by block (its own name, by
    default), and -o FOLDER/ gives the same days split back into the input's file."""
    new = open_field(cube / "new.nc", "sst")
    mw = open_field(cube / "new.nc", "sst_mw")
    r = CliRunner().invoke(cli, ["interpolate", str(cube / "new.nc"), "--var", "sst", "--fit-on", str(cube / "dineof_mw"),
                                 "--chunks", "time=8", "--quiet", "-o", str(tmp_path / "out") + "/"])
    assert r.exit_code == 0, r.output
    mem = interpolate(new, "dineof", fit_on=cube / "dineof_mw", aux={"sst_mw": mw}, return_dataset=True)
    with xr.open_dataset(tmp_path / "out" / "new.nc") as c:
        _same(c, mem, sigma=False)


def test_fit_on_file_multivariate_dineof_cli_streamed(cube, tmp_path):
    """`--fit-on past.nc --aux mw_all.nc:mw --chunks`: the joint modes fitted in memory on the past and
    its days of the covariate, the new days streamed with theirs: the in-memory file."""
    args = ["interpolate", str(cube / "new.nc"), "--var", "sst", "--method", "dineof", "--set", "n_modes=3",
            "--aux", f"{cube / 'mw_all.nc'}:mw", "--fit-on", str(cube / "past.nc"), "--quiet"]
    runner = CliRunner()
    r = runner.invoke(cli, [*args, "--chunks", "time=6", "-o", str(tmp_path / "c.nc")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, [*args, "--withhold", "0", "-o", str(tmp_path / "m.nc")])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(tmp_path / "c.nc") as c, xr.open_dataset(tmp_path / "m.nc") as m:
        _same(c, m, sigma=False)
        assert c["sst"].attrs["aux_variables"] == "mw"


def test_bad_inputs_refused_before_writing(cube, tmp_path):
    """Another grid, a covariate the fit needs missing from the input, --halo, --withhold, --mask or fit
    options with a saved fit: one line, exit 2, nothing written."""
    other = synthetic_sst(seed=1, n_time=10, ny=12, nx=20)
    other.to_netcdf(tmp_path / "other.nc")
    runner = CliRunner()
    out = tmp_path / "c.nc"
    cases = [
        ([str(tmp_path / "other.nc"), "--fit-on", str(cube / "dineof")], "not points of the fit's grid"),
        ([str(cube / "new_no_mw.nc"), "--fit-on", str(cube / "dineof_mw")], "sst_mw"),
        ([str(cube / "new.nc"), "--fit-on", str(cube / "climatology"), "--halo", "lat=2"], "halo"),
        ([str(cube / "new.nc"), "--fit-on", str(cube / "climatology"), "--withhold", "0.1"], "--withhold"),
        ([str(cube / "new.nc"), "--fit-on", str(cube / "climatology"), "--mask", "land"], "a fit already made"),
        ([str(cube / "new.nc"), "--fit-on", str(cube / "climatology"), "--set", "harmonics=2"], "takes no options"),
    ]
    for args, part in cases:
        r = runner.invoke(cli, ["interpolate", *args, "--var", "sst", "--chunks", "time=5", "--quiet", "-o", str(out)])
        assert_cli_error(r, 2, part)
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.suffix == ".part"]
