"""Audit 102: the classification side as a first-time user meets it (train classifier, classify, info)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.datasets.synthetic_images import make_sar_vignettes

from fakes import assert_cli_error


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sar_tree(tmp_path_factory):
    """A small TenGeoP-SARwv layout: <F..O>/*.tiff + metadata.csv."""
    return make_sar_vignettes(tmp_path_factory.mktemp("a102") / "GeoTIFF", n_per_class=3, size=16, seed=0)


@pytest.fixture(scope="module")
def sar_model(sar_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "sar"
    res = invoke("train", "classifier", "--data", sar_tree, "--epochs", 1, "--device", "cpu", "--quiet",
                 "--set", "channels=4,8", "--set", "hidden=8", "-o", out)
    assert res.exit_code == 0, res.output
    return out


def test_classify_takes_a_quoted_pattern(sar_tree, sar_model, tmp_path):
    """`classify 'GeoTIFF/*/*.tiff'` (quoted: TenGeoP-SARwv's 37,553 vignettes pass the shell's
    argument limit) reads the files it matches, as `interpolate 'l3s/2020*.nc'` does; it was
    'no such file or folder'. Files of other types a pattern matches (metadata.csv) are not images
    to classify; a pattern matching no image is one error line."""
    res = invoke("classify", "--model", sar_model, f"{sar_tree}/*", "-o", tmp_path / "all.csv", "--quiet")
    assert res.exit_code == 0, res.output
    every = pd.read_csv(tmp_path / "all.csv")
    assert len(every) == 30 and every["error"].isna().all()  # 10 classes x 3; metadata.csv left out
    res = invoke("classify", "--model", sar_model, f"{sar_tree}/[FG]/*.tiff", "-o", tmp_path / "fg.csv", "--quiet")
    assert res.exit_code == 0, res.output
    fg = pd.read_csv(tmp_path / "fg.csv")
    assert len(fg) == 6 and {p.split("/")[-2] for p in fg["path"]} == {"F", "G"}
    # the same rows, probabilities and positions as when the folder is given
    merged = fg.merge(every, on="path", suffixes=("", "_all"))
    assert len(merged) == 6
    assert (merged["probability"] == merged["probability_all"]).all()
    assert (merged["latitude"] == merged["latitude_all"]).all()
    res = invoke("classify", "--model", sar_model, f"{sar_tree}/*.png", "-o", tmp_path / "none.csv")
    assert_cli_error(res, 2, "*.png", "no image file matches")
    res = invoke("classify", "--model", sar_model, f"{sar_tree}/*.csv", "-o", tmp_path / "none.csv")
    assert_cli_error(res, 2, "*.csv", "no image file matches")
    assert not (tmp_path / "none.csv").exists()


@pytest.mark.parametrize("n", [2, 3, 12])
def test_confusion_figure_holds_long_class_names(tmp_path, monkeypatch, n):
    """A taxonomy tree's classes (`--class-folders leaf`: 'Protista/Diatoms/Chaetoceros sp') are
    long names: at 3 classes the figure was 2.65 x 2.3 inches whatever the names, so matplotlib's
    tight layout gave up ('warning: Tight layout not applied') and the names were cut at the
    figure's edges ('ros sp', '/dino'). Every name, the axis labels and the title now lie inside
    the figure, with no warning, and the cells keep their size; so does the title of a 2-class
    matrix, which ran off its right edge ('test accuracy 0.719 (cou')."""
    import warnings

    import numpy as np
    from matplotlib.figure import Figure

    from oceandl import plotting

    figures = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figures.append(self), save(self, *a, **k))[1])
    names = [f"Protista/Diatoms/Chaetoceros sp{i}" if i % 2 else f"Metazoa/Arthropoda/copepod {i}" for i in range(n)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 'Tight layout not applied' was a UserWarning
        plotting.plot_confusion(np.eye(n) * 3 + 1, names, tmp_path / "cm.png", normalize=n == 2,
                                title="cnn: test accuracy 0.719 (counts)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures[-1]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # as saved: labels placed by the draw
    r = canvas.get_renderer()
    box = fig.bbox
    ax = fig.axes[0]
    texts = ax.get_xticklabels() + ax.get_yticklabels() + [ax.xaxis.label, ax.yaxis.label, ax.title,
                                                           fig.axes[1].yaxis.label]  # the colour bar's
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    for t in texts:
        e = t.get_window_extent(r)
        assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, \
            (t.get_text(), e, box)
    # the matrix is not squeezed to make room: each cell at least 0.25 inch
    cell = ax.get_window_extent(r).width / n / fig.dpi
    assert cell >= 0.25, cell


def test_info_says_what_the_model_was_not_trained_on(sar_tree, tmp_path):
    """A class of 1 or 2 images is left out of the model and an unreadable image out of the data
    (both listed in config.json), but `oceandl info` said neither: a user reading '9 classes' could
    not tell that Iceberg was never learnt. It now names the classes left out, with their images,
    and counts the unreadable images."""
    import shutil

    data = tmp_path / "GeoTIFF"
    shutil.copytree(sar_tree, data)
    for extra in sorted((data / "L").glob("*.tiff"))[1:]:  # Iceberg: one vignette left
        extra.unlink()
    (data / "F" / "broken.tiff").write_bytes(b"II*\x00garbage")
    out = tmp_path / "m"
    res = invoke("train", "classifier", "--data", data, "--epochs", 1, "--device", "cpu", "--quiet",
                 "--set", "channels=4,8", "--set", "hidden=8", "-o", out)
    assert res.exit_code == 0, res.output
    res = invoke("info", out)
    assert res.exit_code == 0, res.output
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines()}
    assert lines["classes"].startswith("9 (") and "Iceberg" not in lines["classes"]
    assert lines["left out classes"] == "Iceberg (1 image): too few for training, validation and test"
    assert lines["unreadable images"] == "1, left out (listed in config.json: unreadable_images)"
    facts = json.loads(invoke("info", out, "--json").stdout)
    assert facts["left out classes"].startswith("Iceberg (1 image)")


def test_training_on_a_flat_folder_says_what_to_do_in_the_shell(sar_tree, tmp_path):
    """`train classifier --data` on a folder of images without class folders told a shell user to
    'use ImageFilesDataset for unlabelled images', a Python class; it now says how to lay out the
    classes, and that unlabelled images go to `oceandl classify`."""
    import shutil

    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((sar_tree / "F").glob("*.tiff")):
        shutil.copy(f, flat)
    res = invoke("train", "classifier", "--data", flat, "--epochs", 1, "-o", tmp_path / "m")
    line = assert_cli_error(res, 2, "images lie directly in it", "a sub-folder per class", "oceandl classify")
    assert "ImageFilesDataset" not in line.split("oceandl classify")[0]
    assert not (tmp_path / "m").exists()


def _geotiffs(root, db: bool, n: int = 4, noise_removed: bool = False):
    """Two classes of 16 x 16 float32 GeoTIFF vignettes: linear sigma0, or the same in dB (as SNAP
    exports it); ``noise_removed``: linear with a few slightly negative pixels, as thermal-noise
    subtraction leaves them."""
    import warnings

    import numpy as np
    import rasterio

    rng = np.random.default_rng(0)
    for c, k in (("A", 1.0), ("B", 3.0)):
        (root / c).mkdir(parents=True)
        for i in range(n):
            lin = rng.gamma(k, 0.01, (16, 16))
            if c == "A":
                lin[:8] *= 5
            if noise_removed:
                lin[0, :3] = -1e-4
            a = (10 * np.log10(lin) if db else lin).astype(np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # not georeferenced
                with rasterio.open(root / c / f"{i}.tif", "w", driver="GTiff", width=16, height=16, count=1,
                                   dtype="float32") as dst:
                    dst.write(a[None])
    return root


def test_intensity_db_refuses_images_already_in_db(tmp_path):
    """`--intensity db` takes 10 log10 of linear intensities, floored at 1e-6. Vignettes already in
    dB (sigma0 of -35 to 0 dB, as SNAP exports them) were floored whole to -60 dB: every image the
    same, the model at chance (log-loss ln 2 = 0.6933 on 2 classes) and every prediction the same
    class and probability (B, 0.50757), with no word. Training and classify now refuse them (one
    line, exit 2, no output); linear images with a few negative pixels (thermal-noise subtraction)
    are still taken."""
    import numpy as np

    from oceandl.errors import InputError
    from oceandl.preprocess import preprocess_batch

    lin = _geotiffs(tmp_path / "lin", db=False, noise_removed=True)
    db = _geotiffs(tmp_path / "db", db=True)
    opts = ("--epochs", 1, "--device", "cpu", "--quiet", "--set", "channels=4,8", "--set", "hidden=8",
            "--intensity", "db")
    res = invoke("train", "classifier", "--data", db, *opts, "-o", tmp_path / "m_db")
    assert_cli_error(res, 2, "intensity=db", "8 of 8", "median -", "already in dB", "--intensity linear")
    assert not (tmp_path / "m_db").exists()
    res = invoke("train", "classifier", "--data", lin, *opts, "-o", tmp_path / "m")
    assert res.exit_code == 0, res.output
    res = invoke("classify", "--model", tmp_path / "m", db, "-o", tmp_path / "p.csv")
    assert_cli_error(res, 2, "intensity=db", "already in dB")
    assert not (tmp_path / "p.csv").exists()
    res = invoke("classify", "--model", tmp_path / "m", lin, "-o", tmp_path / "p.csv", "--quiet")
    assert res.exit_code == 0 and len(pd.read_csv(tmp_path / "p.csv")) == 8
    # the rule itself: a few negative pixels pass, an image mostly negative does not
    x = np.full((2, 1, 4, 4), 0.01, np.float32)
    x[0, 0, 0, :2] = -1e-4
    out = preprocess_batch(x, {"intensity": "db"})
    assert float(out[0, 0, 1, 1]) == pytest.approx(-20.0, abs=1e-4)
    x[1] = -20.0
    with pytest.raises(InputError, match="1 of 2 image"):
        preprocess_batch(x, {"intensity": "db"})


def test_resume_on_other_images_is_refused(sar_tree, tmp_path):
    """`--resume` checked the options, seed and classes, not the images: resumed with another
    --data of the same ten classes (another archive, a typo'd path), the run went on and finished
    (exit 0), trained and tested on images it never started with. The checkpoint now records how
    many images it read and a hash of their paths below --data; a resume on others is one line
    (exit 2) and leaves the folder as it was, and the same data still resumes."""
    import shutil

    other = make_sar_vignettes(tmp_path / "other", n_per_class=3, size=16, seed=1)
    opts = ("--epochs", 1, "--device", "cpu", "--quiet", "--set", "channels=4,8", "--set", "hidden=8")
    out = tmp_path / "m"
    res = invoke("train", "classifier", "--data", sar_tree, *opts, "-o", out)
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["images"] == 30 and len(cfg["data"]["files_sha256"]) == 16
    before = (out / "weights.safetensors").read_bytes()
    res = invoke("train", "classifier", "--data", other, *opts, "-o", out, "--resume")
    assert_cli_error(res, 2, "--resume with data=", "another --data", "started with data=")
    assert (out / "weights.safetensors").read_bytes() == before
    # a file gone from the archive: other images too
    fewer = tmp_path / "fewer"
    shutil.copytree(sar_tree, fewer)
    next((fewer / "G").glob("*.tiff")).unlink()
    assert_cli_error(invoke("train", "classifier", "--data", fewer, *opts, "-o", out, "--resume"), 2,
                     "--resume with data=")
    # the same images, from another place: the paths below --data are what count
    moved = tmp_path / "moved"
    shutil.copytree(sar_tree, moved)
    res = invoke("train", "classifier", "--data", moved, *opts, "-o", out, "--resume")
    assert res.exit_code == 0, res.output


def test_info_of_a_checkpoints_weights_file_is_the_checkpoint(sar_model):
    """`classify --model sar/weights.safetensors` runs the checkpoint, but `info` of the same path
    was 'neither a checkpoint folder nor a netCDF file' (exit 2): it now describes the checkpoint,
    as for its config.json."""
    folder = json.loads(invoke("info", sar_model, "--json").stdout)
    for name in ("weights.safetensors", "config.json"):
        res = invoke("info", sar_model / name, "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout) == folder


def test_unreadable_images_of_one_name_are_told_apart(tmp_path):
    """'skipped 2 unreadable image(s): bad.png (...), bad.png (...)' (a bad.png in two class folders,
    or a WHOI year layout) did not say which files: names shared by several are now given with
    their folder (A/bad.png, B/bad.png), in training's warning and in classify's; unique names
    stay short."""
    import warnings

    from oceandl.datasets.images import _display_names

    data = _geotiffs(tmp_path / "data", db=False)
    for c in ("A", "B"):
        (data / c / "bad.tif").write_bytes(b"II*\x00junk")
    (data / "B" / "odd.tif").write_bytes(b"II*\x00junk")
    out = tmp_path / "m"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = invoke("train", "classifier", "--data", data, "--epochs", 1, "--device", "cpu", "--quiet",
                     "--set", "channels=4,8", "--set", "hidden=8", "-o", out)
    assert res.exit_code == 0, res.output
    said = " ".join([res.stderr] + [str(w.message) for w in caught])
    assert "skipped 3 unreadable image(s): A/bad.tif (" in said and ", B/bad.tif (" in said, said
    assert ", odd.tif (" in said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = invoke("classify", "--model", out, data, "-o", tmp_path / "p.csv", "--quiet")
    assert res.exit_code == 0, res.output
    said = " ".join([res.stderr] + [str(w.message) for w in caught])
    assert "3 of 11 image(s) unreadable" in said and "A/bad.tif (" in said and "B/bad.tif (" in said, said
    names = _display_names(["x/2006/Chaetoceros/a.png", "x/2007/Chaetoceros/a.png", "x/2007/Dino/b.png"])
    assert list(names.values()) == ["2006/Chaetoceros/a.png", "2007/Chaetoceros/a.png", "b.png"]


def test_train_classifier_lists_the_classifiers(tmp_path):
    """A wrong `--model` listed every registered network, the gap fillers' (unet, conv_ae, smp_unet)
    among them, and `--model unet` then said only 'is not a classifier': both now list the
    classifiers alone, before any image is read."""
    from oceandl.models import MODELS, model_task

    wanted = ", ".join(sorted(k for k in MODELS if model_task(k) == "classification"))
    assert "cnn" in wanted and "unet" not in wanted.split(", ")
    for name, says in (("resnt", "unknown model 'resnt'"), ("unet", "model 'unet' is not a classifier")):
        res = invoke("train", "classifier", "--data", tmp_path / "absent", "--model", name, "-o", tmp_path / "m")
        line = assert_cli_error(res, 2, says, f"classifiers: {wanted}")
        assert "conv_ae" not in line
