"""The fitted period's covariates under ``--chunks``: ``interpolate NEW --fit-on PAST --aux A --fit-aux B
--chunks time=N`` and ``interpolate_chunked(..., fit_on=, fit_aux=)``.

As in memory (tests/test_fit_box_aux.py): DINEOF's joint modes are fitted on PAST with B's
covariate, NEW is streamed by time blocks with A's; the file is the in-memory fill's (nothing
withheld, sigma's calibration off in memory as the blocks' is their own)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import DINEOF, interpolate
from oceandl.interp.chunked import interpolate_chunked
from oceandl.io import open_field

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*the field fitted never observed:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*cross-validation:UserWarning")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """sst_past.nc (30 days) and sst_new.nc (10) of a 16 x 16 cube, their covariate in mw_past.nc
    (named 'mw' there) and mw_new.nc; a saved DINEOF fit with the covariate."""
    root = tmp_path_factory.mktemp("chunked_fit_aux")
    ds = synthetic_sst(seed=1, n_time=40, ny=16, nx=16, microwave=True)
    past, new = ds.isel(time=slice(0, 30)), ds.isel(time=slice(30, None))
    past[["sst"]].to_netcdf(root / "sst_past.nc")
    new[["sst"]].to_netcdf(root / "sst_new.nc")
    past[["sst_mw"]].rename(sst_mw="mw").to_netcdf(root / "mw_past.nc")
    new[["sst_mw"]].to_netcdf(root / "mw_new.nc")
    DINEOF(n_modes=2, seed=0, max_iter=20).fit(open_field(root / "sst_past.nc", "sst"),
                                              aux={"sst_mw": open_field(root / "mw_past.nc", "mw")}).save(root / "fit")
    return root


def _run(root, out, *extra, opts=("--set", "n_modes=3")):
    return CliRunner().invoke(cli, ["interpolate", str(root / "sst_new.nc"), "--var", "sst", "--method", "dineof",
                                    *opts, "--device", "cpu", "--quiet", *map(str, extra), "-o", str(out)])


def test_fit_aux_with_chunks_is_the_in_memory_fill(files, tmp_path):
    root = files
    both = ["--fit-on", root / "sst_past.nc", "--aux", f"{root / 'mw_new.nc'}:sst_mw",
            "--fit-aux", f"{root / 'mw_past.nc'}:mw"]
    res = _run(root, tmp_path / "mem.nc", *both, "--withhold", "0", "--set", "transform_calibration=false")
    assert res.exit_code == 0, res.output
    res = _run(root, tmp_path / "chunked.nc", *both, "--chunks", "time=4")
    assert res.exit_code == 0, res.output
    # the covariate changes the fill: without it, another field
    res = _run(root, tmp_path / "plain.nc", "--fit-on", root / "sst_past.nc", "--chunks", "time=4")
    assert res.exit_code == 0, res.output
    with (xr.open_dataset(tmp_path / "mem.nc") as mem, xr.open_dataset(tmp_path / "chunked.nc") as got,
          xr.open_dataset(tmp_path / "plain.nc") as plain):
        assert got["sst"].attrs["aux_variables"] == "sst_mw"
        np.testing.assert_array_equal(got["missing_flag"].values, mem["missing_flag"].values)
        assert int((got["missing_flag"].values == 1).sum()) > 1000
        np.testing.assert_array_equal(np.isnan(got["sst"].values), np.isnan(mem["sst"].values))
        np.testing.assert_allclose(got["sst"].values, mem["sst"].values, rtol=0, atol=1e-5)
        assert np.nanmax(np.abs(plain["sst"].values - mem["sst"].values)) > 0.05


def test_fit_aux_dataarrays_through_the_api(files, tmp_path):
    """fit_aux as interpolate(fit_aux=) takes it: DataArrays named as aux's, on the fitted grid."""
    root = files
    past, new = open_field(root / "sst_past.nc", "sst"), open_field(root / "sst_new.nc", "sst")
    mw_past = open_field(root / "mw_past.nc", "mw").rename("sst_mw")
    mw_new = open_field(root / "mw_new.nc", "sst_mw")
    mem = interpolate(new, "dineof", fit_on=past, aux=mw_new, fit_aux=mw_past, n_modes=3, seed=0, device="cpu",
                      transform_calibration=False, return_dataset=True)
    interpolate_chunked(root / "sst_new.nc", tmp_path / "c.nc", "dineof", var="sst", fit_on=root / "sst_past.nc",
                        aux=[f"{root / 'mw_new.nc'}:sst_mw"], fit_aux={"sst_mw": mw_past}, chunks={"time": 3},
                        n_modes=3, seed=0, device="cpu")
    with xr.open_dataset(tmp_path / "c.nc") as got:
        np.testing.assert_allclose(got["sst"].values, mem["sst"].values, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(got["missing_flag"].values, mem["missing_flag"].values)


def test_fit_aux_refusals_with_chunks_are_one_line(files, tmp_path):
    root = files
    never = tmp_path / "never.nc"
    mw_new, mw_past = f"{root / 'mw_new.nc'}:sst_mw", f"{root / 'mw_past.nc'}:mw"
    cases = [
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new, "--fit-aux", mw_past, "--fit-aux", mw_past],
         ["--fit-aux", "one per --aux, in its order"]),
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new, "--fit-aux", f"{root / 'nofile.nc'}:mw"],
         ["--fit-aux", "no such file"]),
        (["--fit-on", root / "sst_past.nc", "--aux", mw_new, "--fit-aux", f"{root / 'mw_past.nc'}:nope"],
         ["nope"]),
        (["--aux", mw_new, "--fit-aux", mw_past], ["--fit-aux: the covariates of the fitted period, only with "
                                                   "--fit-on FILE"]),
        (["--fit-on", root / "fit", "--fit-aux", mw_past], [f"the fit saved in {root / 'fit'} was made with its own"]),
    ]
    for extra, parts in cases:
        res = _run(root, never, *extra, "--chunks", "time=4")
        assert_cli_error(res, 2, *parts)
        assert not never.exists()
    with pytest.raises(InputError, match=r"^fit_aux: only with fit_on"):
        interpolate_chunked(root / "sst_new.nc", never, "dineof", var="sst", aux=[mw_new], fit_aux=[mw_past])
    with pytest.raises(InputError, match="a fit already made has its own"):
        interpolate_chunked(root / "sst_new.nc", never, "dineof", var="sst", fit_on=root / "fit", fit_aux=[mw_past])
    assert not never.exists()


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=4"]])
def test_a_folder_output_never_replaces_the_fit_on_file_or_fills_the_fits_folder(files, tmp_path, chunks):
    """-o FOLDER/ writes a file per input file named as it: the --fit-on file of that name in that
    folder is the input file (refused even with --overwrite, as in memory it was and under --chunks
    it was replaced); a saved fit's folder is not where the filled files go (`-o FIT` for `-o x.nc`)."""
    import shutil

    root = files
    (tmp_path / "old").mkdir()
    fitted = tmp_path / "old" / "sst_new.nc"  # another period under INPUT's name
    shutil.copy(root / "sst_past.nc", fitted)
    before = fitted.read_bytes()
    res = _run(root, f"{tmp_path / 'old'}/", "--fit-on", fitted, "--overwrite", "--withhold", "0", *chunks)
    assert_cli_error(res, 2, f"{fitted}: is the input file")
    assert fitted.read_bytes() == before and sorted(p.name for p in (tmp_path / "old").iterdir()) == ["sst_new.nc"]
    fit = tmp_path / "fit"
    shutil.copytree(root / "fit", fit)
    res = _run(root, fit, "--fit-on", fit, "--aux", f"{root / 'mw_new.nc'}:sst_mw", "--withhold", "0", *chunks,
               opts=())
    assert_cli_error(res, 2, f"{fit}: is the folder of the fit applied (--fit-on {fit})")
    assert sorted(p.name for p in fit.iterdir()) == ["config.json", "weights.safetensors"]
    if chunks:  # the Python API as well
        with pytest.raises(InputError, match=r"is the folder of the fit applied \(fit_on "):
            interpolate_chunked(root / "sst_new.nc", fit, "dineof", var="sst", fit_on=fit, chunks={"time": 4},
                                aux=[f"{root / 'mw_new.nc'}:sst_mw"])
        with pytest.raises(InputError, match="is the input file"):
            interpolate_chunked(root / "sst_new.nc", f"{tmp_path / 'old'}/", "dineof", var="sst", fit_on=fitted,
                                chunks={"time": 4}, overwrite=True, n_modes=2)
        assert fitted.read_bytes() == before and sorted(p.name for p in fit.iterdir()) == ["config.json",
                                                                                          "weights.safetensors"]
