"""Reading a data set once into tensors (``materialize``), in this process or in worker processes,
and the engine's streaming path with workers: same tensors, same errors, same training."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from oceandl.datasets.images import ImageFolderDataset
from oceandl.errors import InputError
from oceandl.training import TensorData, TrainConfig, fit, materialize, reading_workers
from oceandl.training import engine


@pytest.fixture
def folder(tmp_path):
    """Three classes of 20 grey 16x16 PNGs (60 files), with the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {}
    for c in "abc":
        (tmp_path / c).mkdir()
        for i in range(20):
            arr = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / c / f"{i:02d}.png")
            arrays[(c, f"{i:02d}")] = arr
    return tmp_path, arrays


class Shapes(Dataset):
    """In-memory samples whose shape changes at ``odd`` (label = index)."""

    def __init__(self, n: int, odd: int | None = None):
        self.n, self.odd = n, odd

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        side = 5 if i == self.odd else 4
        return {"image": torch.full((1, side, side), float(i)), "label": i}


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_read_the_same_tensors_in_order(folder, workers):
    root, arrays = folder
    ds = ImageFolderDataset(root)
    order = np.random.default_rng(1).permutation(len(ds))[:50]  # a split: a subset, shuffled
    x, y = materialize(ds, order, num_workers=workers)
    assert x.shape == (50, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
    for j, i in enumerate(order):
        ref = ds[int(i)]
        assert torch.equal(x[j], ref["image"]) and int(y[j]) == int(ref["label"])
    # and the pixels are the files' (the reader scales 8-bit images to [0, 1])
    p = ds.files[int(order[0])]
    np.testing.assert_allclose(x[0, 0].numpy(), arrays[(p.parent.name, p.stem)] / 255.0, atol=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_broken_after_opening_gives_the_readers_one_line_error(folder, workers):
    root, _ = folder
    ds = ImageFolderDataset(root)
    bad = ds.files[37]
    bad.write_bytes(bad.read_bytes()[:40])  # header intact, pixels gone: found only when read
    with pytest.raises(InputError) as err:
        materialize(ds, num_workers=workers)
    msg = str(err.value)
    assert bad.name in msg and "\n" not in msg and "Traceback" not in msg


@pytest.mark.parametrize("workers", [0, 2])
def test_different_shapes_are_named(workers):
    with pytest.raises(InputError, match=r"different shapes \[\(1, 4, 4\), \(1, 5, 5\)\]"):
        materialize(Shapes(80, odd=50), num_workers=workers)


def test_empty_selection_and_bad_worker_counts():
    with pytest.raises(InputError, match="no samples"):
        materialize(Shapes(5), [])
    with pytest.raises(InputError, match="num_workers"):
        materialize(Shapes(20), num_workers=-1)
    with pytest.raises(InputError, match="num_workers"):
        TrainConfig(num_workers=-2)


def test_tensor_data_is_indexed_not_read():
    x, y = torch.randn(6, 1, 3, 3), torch.arange(6)
    xs, ys = materialize(TensorData(x, y), [4, 1])
    assert torch.equal(xs, x[[4, 1]]) and torch.equal(ys, y[[4, 1]])


def test_tensor_data_in_full_is_not_copied():
    """All of a TensorData is its own tensors: the engine's batches of a training split held a
    second copy of it (and evaluation a second copy of the test split)."""
    x, y = torch.randn(6, 1, 3, 3), torch.arange(6)
    xs, ys = materialize(TensorData(x, y))
    assert xs.data_ptr() == x.data_ptr() and ys.data_ptr() == y.data_ptr()
    batches = engine._Batches(TensorData(x, y), 4, torch.device("cpu"), TrainConfig(progress=False),
                              shuffle=False, desc="")
    assert batches.x.data_ptr() == x.data_ptr()
    got = list(batches.epoch(torch.Generator().manual_seed(0)))
    assert torch.equal(torch.cat([b[0] for b in got]), x) and torch.equal(torch.cat([b[1] for b in got]), y)


def test_automatic_worker_count(monkeypatch):
    monkeypatch.setattr(engine, "_cores_per_rank", lambda: 4)
    assert reading_workers(1e-4, 5000) == 0      # 0.5 s in this process: workers would cost more
    assert reading_workers(1e-3, 5000) == 4      # 5 s: one worker per core
    assert reading_workers(1e-3, 5000, num_workers=3) == 3
    monkeypatch.setattr(engine, "_cores_per_rank", lambda: 64)
    assert reading_workers(1e-2, 5000) == 8      # capped
    monkeypatch.setattr(engine, "_cores_per_rank", lambda: 1)
    assert reading_workers(1.0, 5000) == 0       # one core: nothing to gain


def test_slow_reader_goes_to_workers_with_the_same_result(monkeypatch):
    """A reader slow enough that the automatic choice starts workers; the result does not change."""
    class Slow(Shapes):
        def __getitem__(self, i):
            import time

            time.sleep(0.01)
            return super().__getitem__(i)

    monkeypatch.setattr(engine, "_cores_per_rank", lambda: 2)
    stats = {}
    x, y = materialize(Slow(120), stats=stats)
    assert stats["workers"] == 2 and stats["per_sample_s"] >= 0.01
    assert torch.equal(y, torch.arange(120)) and torch.equal(x[:, 0, 0, 0], torch.arange(120.0))
    stats.clear()
    materialize(Shapes(120), stats=stats)  # in memory: read here
    assert stats["workers"] == 0


def test_streamed_training_with_workers_matches_in_process(folder):
    """Above max_materialize_mb the engine streams through a DataLoader: with worker processes
    the data order and the training are those of the in-process loader."""
    root, _ = folder
    ds = ImageFolderDataset(root)
    histories = []
    for workers in (0, 2):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
        cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", scheduler="none", device="cpu",
                          max_materialize_mb=0, num_workers=workers, progress=False, amp=False)
        res = fit(net, ds, None, cfg)
        histories.append([(h["train_loss"], h["train_accuracy"]) for h in res.history])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-6)
    assert histories[0][1][0] != histories[0][0][0]  # it trained


def _corrupt_pixels(path):
    """A file that passes the readers' header check and fails to decode: a PNG whose IDAT deflate
    stream is garbled under a valid CRC, or a JPEG cut at 70 % of its bytes."""
    import struct
    import zlib

    b = bytearray(path.read_bytes())
    if path.suffix == ".jpg":
        path.write_bytes(bytes(b[:int(len(b) * 0.7)]))
        return path
    i = b.find(b"IDAT")
    n = struct.unpack(">I", b[i - 4:i])[0]
    b[i + 6:i + 4 + n] = bytes(v ^ 0x5A for v in b[i + 6:i + 4 + n])  # the zlib header kept
    b[i + 4 + n:i + 8 + n] = struct.pack(">I", zlib.crc32(bytes(b[i:i + 4 + n])))
    path.write_bytes(bytes(b))
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_files_failing_to_decode_are_left_out_under_skip(folder, workers):
    """A file that passes the header check and fails to decode stopped the whole read (and training
    run); with on_error="skip" it is left out, named in one warning, and the same files are left out
    whether workers read or not."""
    root, _ = folder
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "a" / "03.jpg", quality=95)
    ds = ImageFolderDataset(root)
    bad = [ds.files.index(_corrupt_pixels(root / "a" / "03.jpg")), ds.files.index(_corrupt_pixels(root / "b" / "05.png")),
           ds.files.index(_corrupt_pixels(root / "c" / "19.png"))]
    assert ds.skipped == [] and len(ds) == 61  # the header check passes them
    stats = {}
    with pytest.warns(UserWarning, match=r"left out 3 image\(s\) .*03\.jpg: cannot read image.*05\.png.*19\.png"):
        x, y = materialize(ds, num_workers=workers, on_error="skip", stats=stats)
    assert sorted(stats["failed"]) == sorted(bad) and len(x) == len(y) == 58
    good = [i for i in range(61) if i not in bad]
    assert torch.equal(y, torch.as_tensor(ds.targets[good]))
    assert torch.equal(x[-1], ds[good[-1]]["image"]) and torch.equal(x[0], ds[0]["image"])
    with pytest.raises(InputError, match=r"03\.jpg: cannot read image"):
        materialize(ds, num_workers=workers, on_error="raise")
    with pytest.raises(InputError, match=r"no readable samples: 3 unreadable"):
        materialize(ds, bad, num_workers=workers, on_error="skip")


@pytest.mark.parametrize("stream", [False, True])
def test_fit_follows_the_datasets_on_error_for_files_failing_to_decode(folder, stream):
    """In memory and streamed (workers), training goes on without the bad file under the reader's
    on_error="skip" (the default), named once; on_error="raise" stops at it."""
    root, _ = folder
    bad = _corrupt_pixels(root / "a" / "00.png")  # the first sample: it sizes the run, too
    cfg = TrainConfig(epochs=2, batch_size=16, device="cpu", num_workers=2 if stream else 0, progress=False,
                      max_materialize_mb=0 if stream else 4096, amp=False)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
    with pytest.warns(UserWarning, match=r"left out 1 image\(s\).*00\.png") as rec:
        res = fit(net, ImageFolderDataset(root), None, cfg)
    assert len(res.history) == 2 and sum("left out" in str(w.message) for w in rec) == 1  # once, not per epoch
    with pytest.raises(InputError, match=r"00\.png: cannot read image"):
        fit(net, ImageFolderDataset(root, on_error="raise"), None, cfg)
    assert bad.exists()


def test_left_out_warning_names_the_callers_line(folder):
    """'left out N image(s)' had stacklevel=3: from materialize and fit it named
    oceandl/training/engine.py, not the user's line. It names this file now, in memory and streamed."""
    root, _ = folder
    _corrupt_pixels(root / "a" / "00.png")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
    for stream in (False, True):
        cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", num_workers=0, progress=False,
                          max_materialize_mb=0 if stream else 4096, amp=False)
        for call in (lambda: materialize(ImageFolderDataset(root), num_workers=0, on_error="skip"),
                     lambda: fit(net, ImageFolderDataset(root), None, cfg)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                call()
            hits = [w for w in caught if "left out 1 image(s)" in str(w.message)]
            assert len(hits) == 1 and (hits[0].filename, hits[0].category) == (__file__, UserWarning), \
                [(w.filename, str(w.message)[:40]) for w in caught]


def test_streamed_file_broken_after_opening_gives_one_line_error(folder):
    root, _ = folder
    ds = ImageFolderDataset(root, on_error="raise")
    ds.files[5].write_bytes(ds.files[5].read_bytes()[:40])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", max_materialize_mb=0, num_workers=2, progress=False)
    with pytest.raises(InputError) as err:
        fit(net, ds, None, cfg)
    assert ds.files[5].name in str(err.value) and "\n" not in str(err.value)


def test_streaming_workers_by_default_on_cuda_only(folder, monkeypatch):
    """On the CPU, workers would take cores from the training's threads; on CUDA they feed the GPU."""
    monkeypatch.setattr(engine, "_cores_per_rank", lambda: 4)
    ds = ImageFolderDataset(folder[0])
    cfg = TrainConfig(max_materialize_mb=0, progress=False)
    for device, workers in (("cpu", 0), ("cuda", 3)):
        b = engine._Batches(ds, 16, torch.device(device), cfg, shuffle=True, desc="")
        assert b.x is None and b.workers == workers  # streamed; nothing moved to the device yet
    assert engine._Batches(ds, 16, torch.device("cuda"), cfg.update(num_workers=1), True, "").workers == 1


def test_cli_num_workers_and_precision(tmp_path):
    import json

    from click.testing import CliRunner

    from oceandl.cli.main import cli

    rng = np.random.default_rng(2)
    root = tmp_path / "tree"
    for c in "abc":
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / c / f"{i}.png")
    run = lambda *a: CliRunner().invoke(cli, ["train", "classifier", "--data", str(root), "--epochs", "1",  # noqa: E731
                                               "--device", "cpu", "--quiet", *map(str, a)])
    res = run("--num-workers", "2", "--precision", "fp32", "--no-channels-last", "--no-fused-optimizer",
              "-o", tmp_path / "m")
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["training"]["num_workers"] == 2 and saved["precision"] == "fp32"
    assert saved["training"]["channels_last"] is False and saved["training"]["fused"] is False  # on by default
    assert run("--precision", "fp16", "-o", tmp_path / "m1").exit_code == 2
    res = run("--num-workers", "-1", "-o", tmp_path / "m2")
    assert res.exit_code == 2 and not (tmp_path / "m2").exists()
