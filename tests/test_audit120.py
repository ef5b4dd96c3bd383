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

from oceandl.cli.main import cli


# ------------------------------------------------------------ A. classify a labelled stack
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained 3-class classifier of 16 x 16 grey images (its predictions are not what is tested)."""
    from oceandl.models import get_model
    from oceandl.training import save_checkpoint

    opts = {"channels": [4, 8], "hidden": 8}
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", get_model("cnn", 1, 3, **opts), model_name="cnn",
                           model_options=opts, model_args=[1, 3], task="classification",
                           classes=["calm", "eddy", "front"],
                           preprocessing={"size": [16, 16], "channels": 1, "intensity": "linear",
                                          "normalize": "per_image"})


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
