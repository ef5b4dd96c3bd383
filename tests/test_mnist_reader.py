"""MNIST IDX reader: exact round trips in both layouts, validation errors, the real test set."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from oceandl.datasets.mnist import (
    MNISTDataset,
    find_mnist_files,
    load_mnist,
    read_idx,
)
from oceandl.errors import InputError, MissingResourceError


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_split(folder, images, labels, split="test", gz=True):
    stems = {"test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
             "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}[split]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, arr, magic in zip(stems, (images, labels), (2051, 2049)):
        data = idx_bytes(arr, magic)
        path = folder / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths


@pytest.fixture
def idx_digits():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 9, 9, 5], dtype=np.uint8)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_round_trip_layouts(tmp_path, idx_digits, gz, layout):
    images, labels = idx_digits
    folder = tmp_path / layout if layout else tmp_path
    write_split(folder, images, labels, "test", gz=gz)
    x, y = load_mnist(tmp_path, "test")
    assert x.dtype == np.uint8 and x.shape == (7, 28, 28)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_train_split_and_missing_other_split(tmp_path, idx_digits):
    images, labels = idx_digits
    write_split(tmp_path, images[:3], labels[:3], "train", gz=False)
    x, y = load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(y, labels[:3])
    with pytest.raises(MissingResourceError) as err:
        load_mnist(tmp_path, "test")
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "--download" in msg
    assert "\n" not in msg


def test_missing_is_input_error(tmp_path):
    with pytest.raises(InputError):
        find_mnist_files(tmp_path / "nowhere", "test")
    with pytest.raises(InputError, match="split"):
        find_mnist_files(tmp_path, "validation")


def test_bad_magic_names_file(tmp_path, idx_digits):
    images, labels = idx_digits
    img, lbl = write_split(tmp_path, images, labels, gz=False)
    # Swap the files' roles: images where labels are expected.
    lbl.write_bytes(idx_bytes(labels, 2051))
    with pytest.raises(InputError, match=r"t10k-labels-idx1-ubyte: bad IDX magic number 2051 \(expected 2049\)"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_names_file(tmp_path, idx_digits, gz):
    images, labels = idx_digits
    img, _ = write_split(tmp_path, images, labels, gz=False)
    data = idx_bytes(images, 2051)[:-100]
    if gz:
        img.unlink()
        img = img.with_name(img.name + ".gz")
        img.write_bytes(gzip.compress(data))
    else:
        img.write_bytes(data)
    with pytest.raises(InputError, match=rf"{img.name}: truncated IDX data"):
        load_mnist(tmp_path)


def test_truncated_gzip_stream(tmp_path, idx_digits):
    images, labels = idx_digits
    img, _ = write_split(tmp_path, images, labels, gz=True)
    img.write_bytes(img.read_bytes()[:200])
    with pytest.raises(InputError, match=rf"{img.name}: corrupt or truncated gzip"):
        load_mnist(tmp_path)


def test_count_mismatch_and_header_checks(tmp_path, idx_digits):
    images, labels = idx_digits
    write_split(tmp_path, images, labels[:5], gz=False)
    with pytest.raises(InputError, match="7 images but t10k-labels-idx1-ubyte has 5 labels"):
        load_mnist(tmp_path)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08")
    with pytest.raises(InputError, match="short: truncated IDX file"):
        read_idx(short)
    trailing = tmp_path / "trailing"
    trailing.write_bytes(idx_bytes(labels, 2049) + b"\x00\x00")
    with pytest.raises(InputError, match="2 unexpected bytes"):
        read_idx(trailing, 2049)
    write_split(tmp_path / "none", images[:0], labels[:0], gz=False)  # a valid header, no image
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte: holds 0 images"):
        load_mnist(tmp_path / "none")


def test_dataset_samples(idx_digits):
    images, labels = idx_digits
    ds = MNISTDataset(images, labels.astype(np.int64))
    assert len(ds) == 7 and ds.classes == [str(i) for i in range(10)]
    s = ds[4]
    assert s["image"].dtype == torch.float32 and s["image"].shape == (1, 28, 28)
    assert s["label"].dtype == torch.int64 and s["label"].ndim == 0 and int(s["label"]) == 9
    np.testing.assert_allclose(s["image"][0].numpy(), images[4] / 255.0, rtol=1e-6)
    # A transform that writes in place must not corrupt the stored data.
    ds.transform = lambda d: {**d, "image": d["image"].mul_(0)}
    assert ds[4]["image"].sum() == 0
    ds.transform = None
    assert ds[4]["image"].sum() > 0
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 1, 28, 28) and batch["label"].tolist() == [0, 1, 2]


def test_dataset_from_root(tmp_path, idx_digits):
    images, labels = idx_digits
    write_split(tmp_path / "MNIST" / "raw", images, labels)
    ds = MNISTDataset.from_root(tmp_path, "test")
    np.testing.assert_array_equal(ds.targets, labels)


def test_real_mnist_test_set(mnist_root):
    root = mnist_root  # skips with the reason when the real files are absent
    x, y = load_mnist(root, "test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    counts = np.bincount(y, minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert counts.sum() == 10000
    assert x.min() == 0 and x.max() == 255
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test idx_digits
    ds = MNISTDataset(x, y)
    assert float(ds[0]["image"].max()) == 1.0 and int(ds[0]["label"]) == 7


def test_test_set_only_split_is_stratified_seeded_disjoint(tmp_path):
    """With only the t10k files, the benchmark's 80 / 20 split keeps every digit's share (it was not
    stratified: seed 0 on the real set gave 175 fours of 196 expected in the 2,000 test images)."""
    from oceandl.pipelines.mnist import load_mnist_splits

    rng = np.random.default_rng(3)
    n = 1000
    labels = rng.permutation(np.repeat(np.arange(10), 100)).astype(np.uint8)
    images = np.zeros((n, 28, 28), np.uint8)
    images.reshape(n, -1)[:, :2] = np.stack([np.arange(n) // 256, np.arange(n) % 256], 1)  # image id
    write_split(tmp_path / "mnist", images, labels, "test")
    xtr, ytr, xte, yte, note = load_mnist_splits(tmp_path, seed=0, log=lambda *a: None)
    assert len(xtr) == 800 and len(xte) == 200 and "stratified" in note and "8000" not in note
    assert np.bincount(yte.numpy(), minlength=10).tolist() == [20] * 10
    assert np.bincount(ytr.numpy(), minlength=10).tolist() == [80] * 10
    ids = lambda x: set((np.rint(x[:, 0, 0, :2].numpy() * 255) @ [256, 1]).astype(int).tolist())  # noqa: E731
    assert not ids(xtr) & ids(xte) and len(ids(xtr) | ids(xte)) == n
    again = load_mnist_splits(tmp_path, seed=0, log=lambda *a: None)
    assert torch.equal(again[2], xte) and not torch.equal(load_mnist_splits(tmp_path, seed=1, log=lambda *a: None)[2], xte)


def test_benchmark_row_does_not_depend_on_the_models_before_it(tmp_path):
    """A model's row is the same run alone or after others (its initial weights were drawn from the
    shared generator: the --fast CNN scored 0.16 alone, 0.1425 after the MLP)."""
    from oceandl.pipelines.mnist import MNISTConfig, run
    from oceandl.pipelines.runner import RunContext

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30).astype(np.uint8)
    images = (rng.random((300, 28, 28)) < 0.1 + 0.05 * labels[:, None, None]).astype(np.uint8) * 255
    write_split(tmp_path / "mnist", images, labels, "test")
    rows = {}
    for models in (("cnn",), ("mlp", "cnn")):
        folder = tmp_path / "_".join(models)
        folder.mkdir()
        cfg = MNISTConfig(data_root=str(tmp_path), fast=True, models=models)
        rows[models] = run(cfg, RunContext(folder, "cpu", progress=False, log=lambda *a: None))["cnn"]
    for k in ("test_accuracy", "test_log_loss", "test_macro_f1"):
        assert rows[("cnn",)][k] == rows[("mlp", "cnn")][k], k


def test_run_records_where_the_data_were_found(tmp_path, monkeypatch):
    """Found through $OCEANDL_DATA (or ../shared/data), the run recorded ``data_root: null`` and a
    note with the variable's relative text: where the data came from was not recorded. It is now
    ``data_found`` (resolved), beside the config, which keeps null: its --config re-run on another
    machine finds the data where they are there."""
    import json
    import shutil

    from oceandl.pipelines import get_pipeline, run_pipeline

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20).astype(np.uint8)
    images = (rng.random((200, 28, 28)) < 0.1 + 0.05 * labels[:, None, None]).astype(np.uint8) * 255
    write_split(tmp_path / "data" / "mnist", images, labels, "test")
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.setenv("OCEANDL_DATA", "../data")
    quiet = dict(device="cpu", progress=False, log=lambda *a: None)
    out, _ = run_pipeline(get_pipeline("mnist"), "run", overrides={"fast": True, "models": ("mlp",)}, **quiet)
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["data_root"] is None
    assert doc["data_found"] == str((tmp_path / "data").resolve())
    assert f"- data: {doc['data_found']}" in (out / "results.md").read_text()
    # "another machine": the data elsewhere, the same --config
    shutil.move(tmp_path / "data", tmp_path / "elsewhere")
    monkeypatch.setenv("OCEANDL_DATA", str(tmp_path / "elsewhere"))
    again, _ = run_pipeline(get_pipeline("mnist"), "again", toml_path=str(out / "results.json"), **quiet)
    redo = json.loads((again / "results.json").read_text())
    assert redo["config"] == doc["config"] and redo["data_found"] == str((tmp_path / "elsewhere").resolve())
    assert redo["results"]["mlp"]["test_accuracy"] == doc["results"]["mlp"]["test_accuracy"]
    # given with --data-root: in the config (absolute) and found there
    given, _ = run_pipeline(get_pipeline("mnist"), "given", overrides={"fast": True, "models": ("mlp",),
                                                                     "data_root": "../elsewhere"}, **quiet)
    doc = json.loads((given / "results.json").read_text())
    assert doc["config"]["data_root"] == doc["data_found"] == str((tmp_path / "elsewhere").resolve())
    # synthetic data: null
    from oceandl.pipelines.runner import RunContext

    assert RunContext(tmp_path, "cpu").data_found is None
