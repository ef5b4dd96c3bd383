"""A covariate named otherwise than at training or fit time is given by name: ``--aux NAME=VAR`` /
``--aux NAME=FILE:VAR`` (the covariate the model knows as NAME, read from VAR), ``aux={NAME: da}``
from Python (and ``aux={NAME: "FILE:VAR"}`` to :func:`interpolate_chunked`); a refusal says the
mapping to type. Next year's microwave file calls ``sst_mw`` ``analysed_sst``."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError
from oceandl.interp import DINEOF

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

COMMON = ["--var", "sst", "--device", "cpu", "--withhold", "0", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-mode DINEOF fit with ``sst_mw`` on days 1-30 (saved), and days 31-40: ``today.nc`` with
    ``sst_mw``, ``renamed.nc`` the same with it as ``analysed_sst``, ``mw.nc`` that alone."""
    d = tmp_path_factory.mktemp("a126")
    ds = synthetic_sst(n_time=40, ny=16, nx=16, microwave=True, seed=0)
    ds.isel(time=slice(0, 30)).to_netcdf(d / "past.nc")
    new = ds.isel(time=slice(30, 40))
    new.to_netcdf(d / "today.nc")
    new.rename({"sst_mw": "analysed_sst"}).to_netcdf(d / "renamed.nc")
    new[["sst_mw"]].rename({"sst_mw": "analysed_sst"}).to_netcdf(d / "mw.nc")
    res = CliRunner().invoke(cli, ["train", "interpolator", str(d / "past.nc"), "--var", "sst", "--method", "dineof",
                                   "--aux", "sst_mw", "--set", "n_modes=2", "--device", "cpu", "--quiet",
                                   "-o", str(d / "fit")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["interpolate", str(d / "today.nc"), *COMMON, "--fit-on", str(d / "fit"),
                                   "-o", str(d / "ref.nc")])
    assert res.exit_code == 0, res.output
    return d


def _same(a, b) -> None:
    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        np.testing.assert_allclose(x["sst"].values, y["sst"].values, atol=1e-5)
        assert y["sst"].attrs["aux_variables"] == "sst_mw"


def test_entry_parsing():
    from oceandl.io import aux_key, aux_mapping

    assert aux_mapping("sst_mw=analysed_sst") == ("sst_mw", "analysed_sst")
    assert aux_mapping("sst_mw=mw_2020.nc:analysed_sst") == ("sst_mw", "mw_2020.nc:analysed_sst")
    assert aux_mapping("mw.nc:sst_mw") == (None, "mw.nc:sst_mw")
    assert aux_mapping("dir/a=b.nc:v") == (None, "dir/a=b.nc:v")  # a path, not a name
    assert aux_key("sst_mw=analysed_sst", None) == "sst_mw" and aux_key("analysed_sst", None) == "analysed_sst"


def test_saved_fit_takes_the_covariate_under_its_new_name(files, tmp_path):
    run = CliRunner().invoke
    fit = ["--fit-on", str(files / "fit")]
    # named otherwise: refused, the mapping to type said
    res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *fit, "--aux", "analysed_sst",
                    "-o", str(tmp_path / "x.nc")])
    assert_cli_error(res, 2, "was fitted with sst_mw", "--aux sst_mw=analysed_sst")
    assert not (tmp_path / "x.nc").exists()
    # no --aux: the fit's sst_mw looked for by name, not found, and how to name it said (by blocks too)
    for extra, said in (([], "named otherwise: --aux sst_mw=VAR"), (["--chunks", "time=4"], "aux sst_mw=VAR")):
        res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *fit, *extra, "-o", str(tmp_path / "x.nc")])
        assert_cli_error(res, 2, "variable 'sst_mw' not found", said)
    # mapped: the same fill as the file naming it sst_mw, in memory and by blocks
    for name, extra in (("a.nc", ["--aux", "sst_mw=analysed_sst"]),
                        ("b.nc", ["--aux", "sst_mw=analysed_sst", "--chunks", "time=4"]),
                        ("c.nc", ["--aux", f"sst_mw={files / 'mw.nc'}:analysed_sst"]),
                        ("d.nc", ["--aux", f"sst_mw={files / 'mw.nc'}:analysed_sst", "--chunks", "time=4"])):
        res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *fit, *extra, "-o", str(tmp_path / name)])
        assert res.exit_code == 0, (extra, res.output)
        _same(files / "ref.nc", tmp_path / name)


def test_fit_on_file_with_fit_aux_under_new_name(files, tmp_path):
    """--fit-on FILE: the fitted period's sst_mw, today's analysed_sst given as sst_mw."""
    run = CliRunner().invoke
    base = ["--method", "dineof", "--set", "n_modes=2", "--fit-on", str(files / "past.nc")]
    res = run(cli, ["interpolate", str(files / "today.nc"), *COMMON, *base, "--aux", "sst_mw",
                    "-o", str(tmp_path / "ref.nc")])
    assert res.exit_code == 0, res.output
    for name, extra in (("a.nc", []), ("b.nc", ["--chunks", "time=4"])):
        res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *base, "--aux", "sst_mw=analysed_sst",
                        "--fit-aux", "sst_mw", *extra, "-o", str(tmp_path / name)])
        assert res.exit_code == 0, (extra, res.output)
        _same(tmp_path / "ref.nc", tmp_path / name)


def test_python_refusal_names_the_mapping_and_dict_works(files):
    fit = DINEOF(device="cpu", n_modes=2).fit(xr.open_dataset(files / "past.nc")["sst"],
                                               aux=xr.open_dataset(files / "past.nc")["sst_mw"])
    new = xr.open_dataset(files / "renamed.nc")
    with pytest.raises(InputError, match=r"--aux sst_mw=analysed_sst .*aux=\{'sst_mw': da\}"):
        fit.transform(new["sst"], aux=new["analysed_sst"])
    got = fit.transform(new["sst"], aux={"sst_mw": new["analysed_sst"]})
    ref = fit.transform(new["sst"], aux=new["analysed_sst"].rename("sst_mw"))
    np.testing.assert_allclose(got["sst"].values, ref["sst"].values)


def test_chunked_dict_key_names_a_file_entry(files, tmp_path):
    """interpolate_chunked(aux={"sst_mw": "FILE:VAR"}): the key is the name (was the VAR's)."""
    from oceandl.interp.chunked import interpolate_chunked

    out = tmp_path / "e.nc"
    interpolate_chunked(str(files / "renamed.nc"), out, "dineof", chunks={"time": 4}, var="sst", fit_on=str(files / "fit"),
                        aux={"sst_mw": f"{files / 'mw.nc'}:analysed_sst"}, device="cpu", progress=False)
    _same(files / "ref.nc", out)


def test_unet_model_takes_the_covariate_under_its_new_name(files, tmp_path):
    """--model: a U-Net trained with sst_mw (3 steps), given analysed_sst as sst_mw; refused unmapped."""
    run = CliRunner().invoke
    ck = tmp_path / "ck"
    res = run(cli, ["train", "interpolator", str(files / "past.nc"), "--var", "sst", "--aux", "sst_mw", "--set",
                    "steps=3", "--set", "patch=16", "--device", "cpu", "--quiet", "-o", str(ck)])
    assert res.exit_code == 0, res.output
    model = ["--method", "unet", "--model", str(ck)]
    res = run(cli, ["interpolate", str(files / "today.nc"), *COMMON, *model, "-o", str(tmp_path / "ref.nc")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *model, "--aux", "analysed_sst",
                    "-o", str(tmp_path / "x.nc")])
    assert_cli_error(res, 2, "was trained with auxiliary variables 'sst_mw'", "--aux sst_mw=analysed_sst")
    res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *model, "--aux", "sst_mw=analysed_sst",
                    "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    _same(tmp_path / "ref.nc", tmp_path / "a.nc")
    res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *model, "--aux", "analysed_sst",
                    "--chunks", "time=5", "-o", str(tmp_path / "y.nc")])
    assert_cli_error(res, 2, "was trained with auxiliary variables 'sst_mw'", "--aux sst_mw=analysed_sst")
    for name, entry in (("b.nc", "sst_mw=analysed_sst"), ("c.nc", f"sst_mw={files / 'mw.nc'}:analysed_sst")):
        res = run(cli, ["interpolate", str(files / "renamed.nc"), *COMMON, *model, "--aux", entry,
                        "--chunks", "time=5", "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        with xr.open_dataset(tmp_path / name) as out:
            assert out["sst"].attrs["aux_variables"] == "sst_mw"


def test_accessor_maps_a_dataset_variable_to_the_fit_name(files):
    """ds.oceandl.interpolate(aux="sst_mw=analysed_sst") or aux={"sst_mw": "analysed_sst"}: the fit's
    sst_mw read from this Dataset's analysed_sst (was: variable 'sst_mw=analysed_sst' not found)."""
    import oceandl  # noqa: F401 - registers the accessor
    from oceandl.interp import interpolate, load_fitted

    fit = load_fitted(files / "fit")
    today, new = xr.open_dataset(files / "today.nc"), xr.open_dataset(files / "renamed.nc")
    ref = interpolate(today["sst"], "dineof", fit_on=fit, aux=today["sst_mw"], device="cpu")
    for aux in ("sst_mw=analysed_sst", {"sst_mw": "analysed_sst"}):
        got = new.oceandl.interpolate("dineof", var="sst", fit_on=fit, aux=aux, device="cpu")
        np.testing.assert_allclose(got.values, ref.values, atol=1e-5)
    with pytest.raises(InputError, match="sst_mw=analysed_sst"):
        new.oceandl.interpolate("dineof", var="sst", fit_on=fit, aux="analysed_sst", device="cpu")
