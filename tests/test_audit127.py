"""Audit 127: small CLI defects. ``eof``/``interpolate``/``synth sst`` refuse an output name that is
not .nc (``eof -o x.txt`` wrote netCDF under a .txt name), ``info`` describes image folders and
stacks and says when a checkpoint's weights are unreadable, and ``--split`` is named in its errors."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from fakes import assert_cli_error

from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst


@pytest.fixture
def sst_file(tmp_path):
    path = tmp_path / "sst.nc"
    synthetic_sst(seed=0, n_time=4, ny=8, nx=8).to_netcdf(path)
    return path


@pytest.mark.parametrize("args, out, words", [
    (["eof", "{src}", "-n", "2"], "x.txt", ["x.txt", "must end in .nc"]),
    (["eof", "{src}", "-n", "2"], "x", ["must end in .nc"]),
    (["interpolate", "{src}", "--method", "climatology", "--quiet"], "x.txt", ["x.txt", "must end in .nc", "FOLDER/"]),
    (["synth", "sst", "--n", "2", "--size", "8"], "s.csv", ["s.csv", "must end in .nc", "--daily"]),
])
def test_netcdf_writers_refuse_another_suffix(tmp_path, sst_file, args, out, words):
    """Refused before any work, with nothing written."""
    args = [a.format(src=sst_file) for a in args]
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / out)])
    assert_cli_error(res, 2, *words)
    assert not (tmp_path / out).exists()


def test_netcdf_writers_still_take_nc_and_folders(tmp_path, sst_file):
    res = CliRunner().invoke(cli, ["eof", str(sst_file), "-n", "2", "-o", str(tmp_path / "e.NC4")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["interpolate", str(sst_file), "--method", "climatology", "--quiet",
                                   "-o", f"{tmp_path / 'filled'}/"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "filled").iterdir()] == ["sst.nc"]


@pytest.mark.parametrize("args, says", [
    (["--split", "0.5,0.5"], "--split 0.5,0.5: expected three fractions train,val,test, e.g. 0.8,0.1,0.1"),
    (["--split", "0.5,0.6,0.1"], "--split 0.5,0.6,0.1: the three fractions (train,val,test) must each be above 0"),
    (["--split", "a,b,c"], "--split a,b,c: expected three numbers"),
    (["--label-smoothing", "2"], "--label-smoothing must be within [0, 1]"),
    (["--early-stopping", "-1"], "--early-stopping must be >= 0"),
    (["--epochs", "2", "--warmup-epochs", "3"], "--warmup-epochs must be >= 0 and below --epochs (2)"),
    (["--warmup-epochs", "1", "--scheduler", "onecycle"], "--warmup-epochs with --scheduler onecycle"),
    (["--augment", "flip,bogus"], "--augment flip,bogus: unknown augmentation 'bogus'"),
    (["--set", "bogus=1"], "--set: model 'cnn' has no option 'bogus'"),
])
def test_train_classifier_errors_name_the_option(tmp_path, args, says):
    """`--split 0.5,0.5` said "split (0.5, 0.5): expected three fractions", TrainConfig's errors its
    field names (label_smoothing, warmup_epochs): the option given is named, before any data is read."""
    res = CliRunner().invoke(cli, ["train", "classifier", "--data", str(tmp_path / "missing"), *args,
                                   "-o", str(tmp_path / "m")])
    assert_cli_error(res, 2, says)


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory):
    """A classifier checkpoint folder without training (save_checkpoint of a tiny cnn)."""
    from oceandl.models import get_model
    from oceandl.training.checkpoint import save_checkpoint

    model = get_model("cnn", 1, 2, channels=(4,), hidden=4)
    folder = tmp_path_factory.mktemp("a127") / "ck"
    save_checkpoint(folder, model, model_name="cnn", model_options={"channels": [4], "hidden": 4}, task="classification",
                    model_args=[1, 2], classes=["a", "b"])
    return folder


@pytest.mark.parametrize("damage, says", [
    (lambda b: b[:-10], "incomplete metadata"),  # truncated: an interrupted copy
    (lambda b: b"\xff" * 8 + b[8:], "header too large"),
    (lambda b: b[:8] + b"{not json" + b[17:], ""),
])
def test_info_refuses_unreadable_weights(tmp_path, classifier_checkpoint, damage, says):
    """`info` read a checkpoint with a truncated or corrupt weights.safetensors as a normal one (its
    parameters counted from the header), while classify refused it: it now refuses it as it does a
    missing one (exit 2), from the header and the file size alone."""
    import shutil

    from oceandl.describe import describe
    from oceandl.errors import CheckpointError

    good = describe(classifier_checkpoint)
    assert good["kind"] == "classifier checkpoint" and "parameters" in good
    folder = tmp_path / "ck"
    shutil.copytree(classifier_checkpoint, folder)
    weights = folder / "weights.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    for target in (folder, weights):
        res = CliRunner().invoke(cli, ["info", str(target)])
        assert_cli_error(res, 2, "weights.safetensors: corrupt or truncated", says, "classify, --model, --init")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        describe(folder)


def test_info_describes_image_folders(tmp_path):
    """`info` on a folder `synth sar` / `synth plankton` wrote said "not an oceandl checkpoint folder
    (no config.json in it)": it now says its classes, images per class and sizes (headers only)."""
    from oceandl.datasets.synthetic_images import make_plankton_images, make_sar_vignettes
    from oceandl.describe import describe

    sar = make_sar_vignettes(tmp_path / "sar", n_per_class=2, size=16, seed=0)
    facts = describe(sar)
    assert facts["kind"].startswith("TenGeoP-SARwv image folder")
    assert facts["classes"].startswith("10 (F Pure Ocean Waves: 2, G Wind Streaks: 2,")
    assert facts["images"] == "20" and facts["image size (headers of 10)"] == "16 x 16, 1 band"
    assert facts["metadata"].endswith("metadata.csv") and f"train classifier --data {sar}" in facts["use with"]
    pk = make_plankton_images(tmp_path / "pk", n_per_class=2, size=16, seed=0)
    res = CliRunner().invoke(cli, ["info", str(pk)])
    assert res.exit_code == 0, res.output
    assert "classes:" in res.output and "copepod: 2" in res.output and "mixed, " in res.output
    facts = describe(pk / "copepod")  # one class folder: images to classify
    assert facts["kind"] == "image folder, without class folders (unlabelled)" and facts["images"] == "2"
    assert facts["use with"] == f"classify --model CHECKPOINT {pk / 'copepod'}"


def test_info_describes_a_netcdf_image_stack(tmp_path):
    """A stack (sample, y, x) was described as an SST field: time '0.0 to 5.0', lat and lon of pixel indices."""
    import numpy as np
    import xarray as xr

    from oceandl.describe import describe

    img = np.zeros((5, 12, 10), np.float32)
    path = tmp_path / "stack.nc"
    xr.Dataset({"image": (("sample", "y", "x"), img),
                "label": (("sample",), np.array([0, 1, 1, 2, 1]), {"classes": "ship ice wave"})}).to_netcdf(path)
    facts = describe(path)
    assert facts["kind"] == "netCDF image stack" and facts["images (--var image)"] == "5 of 12 x 10"
    assert facts["classes"] == "3 (ship: 1, ice: 3, wave: 1)"
    assert "time (--dates)" not in facts and "lat" not in facts
    xr.Dataset({"image": (("sample", "y", "x"), img)}).to_netcdf(tmp_path / "u.nc")
    facts = describe(tmp_path / "u.nc")
    assert facts["labels (label)"] == "none (unlabelled)" and facts["use with"].startswith("classify ")
