"""A new user's classification journey (audit133): a checkpoint given to the wrong command, MNIST
folders given to `classify`, and what each refusal says."""
from __future__ import annotations

from click.testing import CliRunner
from fakes import assert_cli_error, small_field, tiny_classifier

from oceandl.cli.main import cli


def test_interpolate_with_a_classifier_checkpoint_names_its_task(tmp_path):
    # without --method, the default dineof said it "fits the file itself and takes no checkpoint"
    # (true, and not what was wrong: the folder was a classifier's)
    tiny_classifier(tmp_path / "clf")
    small_field().to_dataset(name="sst").to_netcdf(tmp_path / "s.nc")
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "s.nc"), "--model", str(tmp_path / "clf"),
                                   "-o", str(tmp_path / "y.nc")])
    assert_cli_error(res, 2, "'classification'", "train interpolator", "classify --model")
    assert not (tmp_path / "y.nc").exists()


def _write_mnist(folder, split: str = "train", n: int = 12):
    """Tiny IDX files of ``split`` (random 28 x 28 digits, labels 0-9) in ``folder``."""
    import struct

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    stem = "train" if split == "train" else "t10k"
    x = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    (folder / f"{stem}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + x.tobytes())
    (folder / f"{stem}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n)
                                                      + (np.arange(n) % 10).astype(np.uint8).tobytes())


def test_classify_an_mnist_folder_says_what_it_is(tmp_path):
    # the folder `train classifier --data` reads as MNIST was "no image files found" to classify
    _write_mnist(tmp_path / "mn")
    tiny_classifier(tmp_path / "clf")
    res = CliRunner().invoke(cli, ["classify", "--model", str(tmp_path / "clf"), str(tmp_path / "mn"),
                                   "-o", str(tmp_path / "p.csv")])
    assert_cli_error(res, 2, "MNIST IDX", "load_mnist(", "'train'")
    assert not (tmp_path / "p.csv").exists()
    (tmp_path / "empty").mkdir()  # a folder of nothing keeps its message
    res = CliRunner().invoke(cli, ["classify", "--model", str(tmp_path / "clf"), str(tmp_path / "empty"),
                                   "-o", str(tmp_path / "p.csv")])
    assert_cli_error(res, 2, "no image files found")


def test_info_of_a_classifier_says_what_it_was_trained_on(tmp_path):
    # `info --help`: "the data it was trained on"; a classifier's config holds its images and the
    # hash of their paths ('data'), which info did not show (an interpolator's did, 'trained on')
    from fakes import edit_checkpoint_config

    tiny_classifier(tmp_path / "clf")
    edit_checkpoint_config(tmp_path / "clf", tmp_path / "clf2", data={"images": 60, "files_sha256": "28ea9828da475d17"})
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "clf2")])
    assert res.exit_code == 0, res.output
    assert "trained on:" in res.output and "60 images (sha256 of its files' paths: 28ea9828da475d17)" in res.output
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "clf")])  # none recorded: no line
    assert res.exit_code == 0 and "trained on" not in res.output, res.output
