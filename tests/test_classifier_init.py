"""`oceandl train classifier --init CKPT`: fine-tune one of your own classifier checkpoints."""
from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from click.testing import CliRunner
from fakes import assert_one_line_error, torch_threads

from oceandl.cli.main import cli
from oceandl.datasets.images import TENGEOP_CLASSES, open_image_dataset
from oceandl.datasets.synthetic_images import make_sar_vignettes
from oceandl.models import get_model
from oceandl.training import TrainConfig
from oceandl.training.checkpoint import load_checkpoint, weights_sha256
from oceandl.training.classifier import _start_from, train_classifier

#: the tiny network of the tests (the fine-tuned runs take it from the checkpoint, never given again)
SMALL = {"channels": [8, 16], "hidden": 16}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def config(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "lr": 1e-3, "seed": 0, "progress": False, "amp": False,
                          "device": "cpu", **kw})


@pytest.fixture(scope="module")
def sar3(tmp_path_factory):
    """Three classes of synthetic SAR vignettes (`synth sar --n 12 --size 32`, classes F, K, N)."""
    root = tmp_path_factory.mktemp("sar")
    make_sar_vignettes(root / "all", n_per_class=12, size=32, seed=0)
    for c in ("F", "K", "N"):
        shutil.copytree(root / "all" / c, root / "three" / c)
    return root / "three"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny matrices: on a busy machine two threads' synchronisation made an epoch 1.8 s, one 0.02 s
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def base(sar3, tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "base"
    train_classifier(open_image_dataset(sar3), "cnn", out, config(epochs=12, lr=1e-2),
                     preprocessing={"normalize": "per_image"}, model_options=SMALL)
    return out


def test_same_classes_starts_from_the_checkpoint(sar3, base, tmp_path):
    # the same images, split and seed: a fresh network's first epoch is near chance on 3 classes
    # (validation loss 1.147, ln 3 = 1.099), the fine-tuned one's starts where the checkpoint ended
    # (0.434; training loss 0.333 against 1.07)
    fresh = train_classifier(open_image_dataset(sar3), "cnn", None, config(), preprocessing={"normalize": "per_image"},
                             model_options=SMALL)
    res = invoke("train", "classifier", "--data", sar3, "--init", base, "--epochs", 1, "--batch-size", 8,
                 "--precision", "fp32", "--device", "cpu", "--quiet", "-o", tmp_path / "tuned")
    assert res.exit_code == 0, res.output
    tuned_cfg = json.loads((tmp_path / "tuned" / "config.json").read_text())
    import pandas as pd

    first = pd.read_csv(tmp_path / "tuned" / "log.csv").iloc[0]
    ratios = [first[k] / fresh["history"][0][k] for k in ("val_loss", "train_loss")]
    assert max(ratios) < 0.6, ratios
    # the network and preprocessing are the checkpoint's, not the command's defaults (cnn's own widths)
    assert tuned_cfg["model"] == "cnn" and tuned_cfg["model_options"] == SMALL
    assert tuned_cfg["preprocessing"]["normalize"] == "per_image"
    assert tuned_cfg["init"]["checkpoint"] == str(base.resolve())
    assert tuned_cfg["init"]["sha256"] == weights_sha256(base)
    assert tuned_cfg["init"]["head"] == "loaded"
    # --resume goes on without --init: the network and the record are the run's own
    res = invoke("train", "classifier", "--data", sar3, "--epochs", 1, "--batch-size", 8, "--precision", "fp32",
                 "--device", "cpu", "--quiet", "--resume", "-o", tmp_path / "tuned")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init"] == tuned_cfg["init"]
    info = invoke("info", tmp_path / "tuned")
    assert "fine-tuned from:" in info.output and str(base) in info.output, info.output


def test_reordered_classes_reorder_the_head_rows(base):
    old, cfg = load_checkpoint(base)
    classes = list(reversed(cfg["classes"]))
    torch.manual_seed(5)
    net = get_model("cnn", 1, 3, **SMALL)
    record = _start_from(net, base, "cnn", SMALL, classes)
    assert record["head"] == "loaded"
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        # the same network, its outputs in the new class order
        assert torch.allclose(net.eval()(x), old.eval()(x).flip(1), atol=1e-6)


@pytest.mark.parametrize("classes", [["Wind Streaks", "Pure Ocean Waves"],
                                     [TENGEOP_CLASSES["F"], TENGEOP_CLASSES["K"], TENGEOP_CLASSES["N"], "Iceberg"]],
                         ids=["subset", "superset"])
def test_other_classes_keep_the_backbone_and_renew_the_head(base, classes):
    old, cfg = load_checkpoint(base)
    n = len(classes)
    torch.manual_seed(5)
    net = get_model("cnn", 1, n, **SMALL)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.warns(UserWarning) as rec:
        record = _start_from(net, base, "cnn", SMALL, classes)
    msg = str(rec[0].message)
    new = [c for c in classes if c not in cfg["classes"]]
    dropped = [c for c in cfg["classes"] if c not in classes]
    assert f"new: {', '.join(new) or 'none'}" in msg and f"dropped: {', '.join(dropped) or 'none'}" in msg, msg
    assert record["head"] == "re-initialised"
    theirs, mine = old.state_dict(), net.state_dict()
    head = [k for k, v in mine.items() if v.shape != theirs[k].shape]
    assert head  # the last layer's weight and bias
    for k, v in mine.items():
        if k in head:
            assert torch.equal(v, before[k]), k  # as initialised for the new classes
        else:
            assert torch.equal(v, theirs[k]), k  # the checkpoint's backbone


def test_refusals_write_nothing(sar3, base, tmp_path):
    out = tmp_path / "tuned"
    # a gap filler's network, a saved fit: other checkpoints
    for task, words in (("interpolation", "gap filler's network"), ("interpolation-fitted", "saved gap-filling fit")):
        other = tmp_path / task
        shutil.copytree(base, other)
        cfg = json.loads((other / "config.json").read_text())
        cfg["task"] = task
        (other / "config.json").write_text(json.dumps(cfg))
        assert_one_line_error(invoke("train", "classifier", "--data", sar3, "--init", other, "-o", out),
                       "--init", words, "not a classifier checkpoint")
    # corrupt weights: refused once read, nothing written
    bad = tmp_path / "corrupt"
    shutil.copytree(base, bad)
    (bad / "weights.safetensors").write_bytes((bad / "weights.safetensors").read_bytes()[:200])
    assert_one_line_error(invoke("train", "classifier", "--data", sar3, "--init", bad, "--epochs", 1, "--quiet",
                          "--device", "cpu", "-o", out), "corrupt")
    # the network or preprocessing changed: each named
    assert_one_line_error(invoke("train", "classifier", "--data", sar3, "--init", base, "--model", "resnet", "--size", 48,
                          "--set", "hidden=32", "-o", out), "--model resnet", "--size 48", "--set hidden=32 (it has hidden=16)")
    assert_one_line_error(invoke("train", "classifier", "--data", sar3, "--init", base, "--channels", 3, "-o", out),
                   "--channels 3 (it takes 1)")
    assert_one_line_error(invoke("train", "classifier", "--data", sar3, "--init", base, "--resume", "-o", out),
                   "--resume with --init")
    assert not out.exists()
    # images of other channels (a 3-band stack), through the Python API
    from oceandl.training.engine import TensorData

    data = TensorData(torch.randn(12, 3, 32, 32), torch.arange(12) % 3, ["a", "b", "c"])
    with pytest.raises(Exception, match="1-channel images, these are 3-channel"):
        train_classifier(data, "cnn", out, config(), model_options=SMALL, init=base)
    assert not out.exists()


def test_other_classes_through_the_command(sar3, base, tmp_path):
    # two of its classes and a new one (G): the head is new, said on one line, recorded, and `info` says it
    data = tmp_path / "data"
    make_sar_vignettes(tmp_path / "all", n_per_class=6, size=32, seed=1)
    for c, src in (("F", sar3), ("K", sar3), ("G", tmp_path / "all")):
        shutil.copytree(src / c, data / c)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the command prints each as a line, whatever filter pytest runs under
        res = invoke("train", "classifier", "--data", data, "--init", base, "--epochs", 1, "--batch-size", 8,
                     "--precision", "fp32", "--device", "cpu", "--quiet", "-o", tmp_path / "tuned")
    assert res.exit_code == 0, res.output
    said = [ln for ln in res.output.splitlines() if "other classes" in ln]
    assert said == [f"warning: init {base}: other classes (new: {TENGEOP_CLASSES['G']}; dropped: "
                    f"{TENGEOP_CLASSES['N']}): its backbone is loaded, the classifier head re-initialised for 3 "
                    "classes"], said
    cfg = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert cfg["init"]["head"] == "re-initialised" and cfg["init"]["sha256"] == weights_sha256(base)
    assert "its backbone, the head new for other classes" in invoke("info", tmp_path / "tuned").output


def test_init_given_relative_is_recorded_absolute(sar3, base, tmp_path, monkeypatch):
    """`--init ../base` was recorded as given: read from another folder (`info`, a colleague's
    copy), the checkpoint named a folder relative to wherever the run had been."""
    monkeypatch.chdir(base.parent)
    res = invoke("train", "classifier", "--data", sar3, "--init", base.name, "--epochs", 1, "--batch-size", 8,
                 "--precision", "fp32", "--device", "cpu", "--quiet", "-o", tmp_path / "tuned")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert cfg["init"]["checkpoint"] == str(base.resolve()) and cfg["init"]["checkpoint"].startswith("/")
    facts = json.loads(invoke("info", tmp_path / "tuned", "--json").stdout)
    assert facts["fine-tuned from"].startswith(f"{base.resolve()}: every weight")


def test_interrupted_fine_tuning_resumes_without_init(sar3, base, tmp_path, monkeypatch):
    import oceandl.training.engine as engine
    from safetensors.torch import load_file

    args = ("train", "classifier", "--data", sar3, "--epochs", 2, "--batch-size", 8, "--precision", "fp32",
            "--device", "cpu", "--quiet")
    whole = invoke(*args, "--init", base, "-o", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    real, calls = engine._save_epoch, []

    def ctrl_c_at_the_second_epoch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(engine, "_save_epoch", ctrl_c_at_the_second_epoch)
    res = invoke(*args, "--init", base, "-o", tmp_path / "tuned")
    assert res.exit_code == 130 and "--resume, without --init" in res.output, res.output
    monkeypatch.setattr(engine, "_save_epoch", real)
    res = invoke(*args, "--resume", "-o", tmp_path / "tuned")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert cfg["epochs_done"] == 2 and cfg["init"]["sha256"] == weights_sha256(base)
    a, b = (load_file(str(tmp_path / f / "weights.safetensors")) for f in ("whole", "tuned"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the checkpoint the run would have written uninterrupted
