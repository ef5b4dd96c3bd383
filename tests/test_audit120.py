"""Audit 120: a labelled netCDF stack's own labels as classify's true_class, and its unreadable
images named by file and index; Python fills' results compressed as the CLI writes them; int16
input with a float64 scale_factor filled as float32."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import tiny_classifier

from oceandl.cli.main import cli


# ------------------------------------------------------------ A. classify a labelled stack
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_classifier(tmp_path_factory.mktemp("ck") / "tiny")


def _stack(path, labels, label_attrs=None, attrs=None, empty=()):
    img = np.random.default_rng(0).random((len(labels), 16, 16)).astype(np.float32)
    img[list(empty)] = np.nan
    xr.Dataset({"image": (("obs", "y", "x"), img),
                "label": ("obs", np.asarray(labels), label_attrs or {})},
               attrs=attrs or {}).to_netcdf(path)
    return path


def _classify_cli(path, model, out):
    return CliRunner().invoke(cli, ["classify", str(path), "--model", str(model), "--device", "cpu", "--quiet",
                                    "-o", str(out)])


@pytest.mark.usefixtures("one_torch_thread")
def test_classify_a_labelled_stack_uses_its_labels_as_true_class(tiny_model, tmp_path):
    """`classify stack.nc` of a stack with a `label` variable (as the readers take it) gave no true_class
    and no accuracy: the stack's labels were dropped. Its class names (the label's `classes`) now give
    true_class, by name (the stack's order need not be the model's), and the accuracy is printed."""
    labels = [0, 1, 2, 1, 0]
    path = _stack(tmp_path / "s.nc", labels, {"classes": "front eddy calm"})  # another order than the model's
    res = _classify_cli(path, tiny_model, tmp_path / "p.csv")
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(tmp_path / "p.csv")
    want = ["front", "eddy", "calm", "eddy", "front"]
    assert rows["true_class"].tolist() == want
    right = int((rows["predicted"] == rows["true_class"]).sum())
    assert f"accuracy {right / 5:.4f}: {right} of 5 labelled images (by the stack's label variable" in res.stdout
    # from Python: the same
    import oceandl

    got = oceandl.classify(path, tiny_model, device="cpu")
    assert got["true_class"].values.tolist() == want
    assert got["predicted"].values.tolist() == rows["predicted"].tolist()


@pytest.mark.usefixtures("one_torch_thread")
def test_a_stack_without_class_names_reads_its_labels_as_the_models_classes(tiny_model, tmp_path):
    """Integer labels with no names: positions in the model's classes (as training numbers them)."""
    import oceandl

    path = _stack(tmp_path / "s.nc", np.array([2, 0, 1], np.int8))
    got = oceandl.classify(path, tiny_model, device="cpu")
    assert got["true_class"].values.tolist() == ["front", "calm", "eddy"]
    # a label beyond the model's classes: no true_class, and a warning saying why
    path = _stack(tmp_path / "t.nc", [0, 3, 1])
    with pytest.warns(UserWarning, match=r"t\.nc: label value 3 but model .* has 3 classes"):
        got = oceandl.classify(path, tiny_model, device="cpu")
    assert "true_class" not in got and got["predicted"].size == 3


@pytest.mark.usefixtures("one_torch_thread")
def test_a_stacks_labels_not_of_the_models_classes_are_warned_about(tiny_model, tmp_path):
    import oceandl

    # some names unknown to the model: their true_class is empty and not scored
    path = _stack(tmp_path / "s.nc", [0, 1, 2], attrs={"classes": ["calm", "ice", "front"]})
    with pytest.warns(UserWarning, match=r"s\.nc: 1 image\(s\) labelled ice, not a class of model"):
        got = oceandl.classify(path, tiny_model, device="cpu")
    assert got["true_class"].values.tolist() == ["calm", "", "front"]
    # none known: no true_class, no accuracy (CLI), a warning; the images are still classified
    path = _stack(tmp_path / "t.nc", ["ice", "land", "ice"])
    res = _classify_cli(path, tiny_model, tmp_path / "p.csv")
    assert res.exit_code == 0, res.output
    assert "name class(es) ice, land, none of model" in res.stderr and "accuracy" not in res.stdout
    assert "true_class" not in pd.read_csv(tmp_path / "p.csv")
    # labels that cannot be read (negative): a warning, classified unlabelled
    path = _stack(tmp_path / "u.nc", [0, -1, 1])
    res = _classify_cli(path, tiny_model, tmp_path / "q.csv")
    assert res.exit_code == 0 and "label 'label' has negative value -1" in res.stderr, res.output
    assert len(pd.read_csv(tmp_path / "q.csv")) == 3


@pytest.mark.usefixtures("one_torch_thread")
def test_a_stacks_unreadable_image_is_named_by_file_and_index(tiny_model, tmp_path):
    """The error column of a stack's all-NaN image said 'image[2] has no finite pixel (...)': the
    reader's own words, naming no file. It now says 's.nc[2]: no finite pixel (all NaN/inf)'."""
    import oceandl

    path = _stack(tmp_path / "s.nc", [0, 1, 2, 0], empty=[2])
    res = _classify_cli(path, tiny_model, tmp_path / "p.csv")
    assert res.exit_code == 0, res.output
    err = pd.read_csv(tmp_path / "p.csv")["error"].fillna("").tolist()
    assert err == ["", "", "s.nc[2]: no finite pixel (all NaN/inf)", ""]
    assert "obs=2 (s.nc[2]: no finite pixel (all NaN/inf))" in res.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = oceandl.classify(path, tiny_model, device="cpu")
    assert got["error"].values.tolist() == err


# ------------------------------------------------------------ B. a fill from Python is written compressed
def _field(nt=8, ny=12, nx=14, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    lat, lon = np.linspace(10, 12, ny), np.linspace(20, 23, nx)
    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    f = 15 + np.sin(np.arange(nt) / 3)[:, None, None] + 0.5 * np.cos(yy)[None] + 0.3 * np.sin(xx)[None]
    f = f + 0.05 * rng.standard_normal(f.shape)
    f[rng.random(f.shape) < 0.3] = np.nan
    return xr.DataArray(f.astype(dtype), dims=("time", "lat", "lon"), name="sst", attrs={"units": "degC"},
                        coords={"time": pd.date_range("2020-01-01", periods=nt), "lat": lat, "lon": lon})


@pytest.mark.parametrize("method", ["climatology", "eof", "dineof"])
def test_a_fill_from_python_is_written_as_the_cli_writes_it(method, tmp_path):
    """`oceandl.interpolate(...)` returned a Dataset whose to_netcdf() wrote every variable
    uncompressed, where `oceandl interpolate` writes zlib 4, one day per chunk. Its variables'
    encoding now says so: the same compression and chunks, from Python and from the CLI."""
    import netCDF4

    import oceandl

    da = _field()
    opts = {"n_modes": 2, "max_iter": 10} if method == "dineof" else {}  # no cross-validation: fast
    ds = oceandl.interpolate(da, method, return_dataset=True, **opts)
    for name in ds.data_vars:
        assert ds[name].encoding["zlib"] is True and ds[name].encoding["complevel"] == 4, name
        assert ds[name].encoding["chunksizes"] == (1, 12, 14), name
    ds.to_netcdf(tmp_path / "py.nc")
    shown = () if method == "dineof" else ("da.nc", "acc.nc")  # the same code for every method; dineof is slow
    if shown:
        oceandl.interpolate(da, method, **opts).to_netcdf(tmp_path / "da.nc")  # the DataArray too
        da.oceandl.interpolate(method, **opts).to_netcdf(tmp_path / "acc.nc")  # and the accessor's
    da.to_dataset().to_netcdf(tmp_path / "in.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "in.nc"), "-o", str(tmp_path / "cli.nc"),
                                   "--method", method, "--withhold", "0", "--quiet",
                                   *[a for k, v in opts.items() for a in ("--set", f"{k}={v}")]])
    assert res.exit_code == 0, res.output
    with netCDF4.Dataset(tmp_path / "py.nc") as py, netCDF4.Dataset(tmp_path / "cli.nc") as cl:
        assert set(py.variables) >= {"sst", "missing_flag"}
        for name in ("sst", "missing_flag", *(("sigma",) if "sigma" in ds else ())):
            for f in (py, cl):
                assert f[name].filters()["zlib"] and f[name].filters()["complevel"] == 4, name
                assert f[name].chunking() == [1, 12, 14], name
    for f in shown:
        with netCDF4.Dataset(tmp_path / f) as nc:
            assert nc["sst"].filters()["complevel"] == 4 and nc["sst"].chunking() == [1, 12, 14], f
    # a result cut to a smaller grid keeps its compression and drops the day chunks that no longer fit
    ds.isel(lat=slice(0, 5)).to_netcdf(tmp_path / "cut.nc")
    with netCDF4.Dataset(tmp_path / "cut.nc") as nc:
        assert nc["sst"].filters()["complevel"] == 4 and nc["sst"].shape == (8, 5, 14)


def test_the_cli_still_writes_its_own_complevel(tmp_path):
    """The encoding set on the result does not override --complevel 0 (the CLI's encoding replaces it)."""
    import netCDF4

    _field().to_dataset().to_netcdf(tmp_path / "in.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "in.nc"), "-o", str(tmp_path / "o.nc"),
                                   "--method", "climatology", "--complevel", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    with netCDF4.Dataset(tmp_path / "o.nc") as nc:
        assert not nc["sst"].filters()["zlib"] and not nc["missing_flag"].filters()["zlib"]


# ------------------------------------------------------------ C. int16 with a float64 scale_factor
@pytest.fixture()
def packed64(tmp_path):
    path = tmp_path / "packed.nc"
    _field(dtype=np.float64).to_dataset().to_netcdf(path, encoding={"sst": {
        "dtype": "int16", "scale_factor": np.float64(0.01), "add_offset": np.float64(15.0),
        "_FillValue": np.int16(-32768)}})
    return path


def test_int16_with_a_float64_scale_factor_is_filled_as_float32_from_python(packed64):
    """xarray decodes an int16 with a float64 scale_factor to float64, and the fill was float64:
    twice the bytes of the float32 its 16 bits fit in. It is now float32, as the same int16 packed
    with a float32 scale_factor is."""
    import oceandl

    with xr.open_dataset(packed64) as ds:
        da = ds["sst"].load()
    assert da.dtype == np.float64 and da.encoding["dtype"] == np.int16  # as xarray reads it
    ds = oceandl.interpolate(da, "climatology", return_dataset=True)
    assert ds["sst"].dtype == np.float32 and ds["sigma"].dtype == np.float32
    obs = np.isfinite(da.values)
    np.testing.assert_allclose(ds["sst"].values[obs], da.values[obs], rtol=1e-6)
    assert oceandl.interpolate(da, "dineof", n_modes=2, max_iter=10).dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pixels missing at some times: left out by the EOF analysis
        assert oceandl.eof(da, n_modes=2).eofs.dtype == np.float32


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=4"]], ids=["memory", "chunks"])
def test_int16_with_a_float64_scale_factor_is_written_float32_by_the_cli(packed64, tmp_path, chunks):
    import netCDF4

    res = CliRunner().invoke(cli, ["interpolate", str(packed64), "-o", str(tmp_path / "o.nc"), "--method",
                                   "climatology", "--withhold", "0", "--quiet", *chunks])
    assert res.exit_code == 0, res.output
    with netCDF4.Dataset(tmp_path / "o.nc") as nc, xr.open_dataset(packed64) as src:
        assert nc["sst"].dtype == np.float32 and nc["sigma"].dtype == np.float32
        got, want = np.ma.filled(nc["sst"][:], np.nan), src["sst"].values
        obs = np.isfinite(want)
        np.testing.assert_allclose(got[obs], want[obs], rtol=1e-6)
