"""Checkpoints that are refused before any memory or image is spent on them, and images that do not
fit the checkpoint: integer/bool or NaN/Inf weights, a config.json whose ``model_options`` build a
giant model or that nests too deep, an absurd preprocessing size, a band count the model was not
trained on. Each through ``oceandl classify`` (exit 2, one line, no output) and through the Python
API. ``docs/robustness.md`` lists the same cases.
"""
from __future__ import annotations

import resource
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from fakes import assert_cli_error, edit_checkpoint_config
from PIL import Image
from safetensors.torch import load_file, save_file

from oceandl.cli.main import cli
from oceandl.errors import CheckpointError, InputError

OPTIONS = {"channels": [8, 8], "hidden": 16}
#: values in the weights file of the small CNN below (1 band, 3 classes): 4,043 parameters and
#: running statistics, 4 num_batches_tracked
FILE_VALUES = "4,047"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def make_checkpoint(path: Path, bands: int = 1, **spec) -> tuple[Path, torch.nn.Module]:
    from oceandl.models import get_model
    from oceandl.preprocess import check_spec
    from oceandl.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = get_model("cnn", bands, 3, **OPTIONS)
    save_checkpoint(path, net, model_name="cnn", model_args=[bands, 3], model_options=OPTIONS,
                    task="classification", classes=["a", "b", "c"],
                    preprocessing=check_spec({"size": [16, 16], "normalize": "per_image", **spec}))
    return path, net.eval()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "good")[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = {}
    for name, shape in (("grey", (16, 16)), ("rgb", (16, 16, 3))):
        out[name] = folder / f"{name}.png"
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(out[name])
    return out


def edit_weights(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    state = load_file(str(dst / "weights.safetensors"))
    change(state)
    save_file(state, str(dst / "weights.safetensors"))
    return dst


def refused_everywhere(ckpt: Path, image: Path, tmp_path: Path, *parts) -> str:
    """``classify`` exits 2 with one line holding ``parts`` and writes nothing; ``load_checkpoint``
    and ``oceandl.classify`` raise a one-line CheckpointError holding them. Returns the CLI line."""
    from oceandl.classification import classify
    from oceandl.training.checkpoint import load_checkpoint

    out = tmp_path / "predictions.csv"
    line = assert_cli_error(invoke("classify", "--model", ckpt, image, "-o", out, "--device", "cpu", "--quiet"),
                            2, *parts)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith((".part", ".old"))]
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt, expect_task="classification")
    assert "\n" not in str(info.value) and all(str(p) in str(info.value) for p in parts), str(info.value)
    with pytest.raises(CheckpointError):
        classify(torch.rand(2, 1, 16, 16), ckpt, device="cpu")
    return line


# ------------------------------------------------------------------------------------------------
# 1. Tensors of another dtype kind, NaN/Inf values
# ------------------------------------------------------------------------------------------------
def _set(key, fn):
    return lambda state: state.__setitem__(key, fn(state[key]))


def _poke(key, value):
    def change(state):
        state[key].view(-1)[1] = value
    return change


WEIGHT_CASES = {
    # load_state_dict cast these silently: whole-number weights, and exit 0
    "int32-weight": (_set("head.5.weight", lambda t: t.to(torch.int32)),
                     ["tensor head.5.weight is int32", "expects floating point (float32)"]),
    "bool-weight": (_set("head.5.weight", lambda t: torch.ones_like(t, dtype=torch.bool)),
                    ["tensor head.5.weight is bool", "expects floating point"]),
    "float-counter": (_set("features.0.1.num_batches_tracked", lambda t: t.to(torch.float32)),
                      ["tensor features.0.1.num_batches_tracked is float32", "expects integer (int64)"]),
    # every probability NaN (and the top class 0), exit 0
    "nan-weight": (_poke("head.5.weight", float("nan")), ["tensor head.5.weight has 1 NaN/Inf value(s) of 48"]),
    "inf-running-var": (_poke("features.1.1.running_var", float("inf")),
                        ["tensor features.1.1.running_var has 1 NaN/Inf value(s) of 8"]),
    "neg-inf-bias": (_set("head.2.bias", lambda t: torch.full_like(t, -float("inf"))),
                     ["tensor head.2.bias has 16 NaN/Inf value(s) of 16"]),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_bad_weight_values(tmp_path, good, images, case):
    change, parts = WEIGHT_CASES[case]
    ckpt = edit_weights(good, tmp_path / "bad", change)
    refused_everywhere(ckpt, images["grey"], tmp_path, ckpt / "weights.safetensors", *parts)


def test_good_checkpoint_loads_its_weights(tmp_path, images):
    """The control: the model rebuilt after the meta-device check holds the saved weights (the same
    logits as the network saved), and classify gives probabilities summing to 1."""
    from oceandl.training.checkpoint import load_checkpoint

    ckpt, net = make_checkpoint(tmp_path / "ck")
    model, _ = load_checkpoint(ckpt)
    x = torch.rand(3, 1, 16, 16)
    assert all(p.device.type == "cpu" for p in model.state_dict().values())
    torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)
    out = tmp_path / "p.csv"
    res = invoke("classify", "--model", ckpt, images["grey"], "-o", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.output
    p = pd.read_csv(out)[["p_a", "p_b", "p_c"]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)


def test_optional_tensor_still_optional(tmp_path):
    """A linear_ae checkpoint written before its ``mean`` buffer existed still loads (the meta-device
    check leaves the model's optional tensors out of 'missing'), with a zero mean."""
    from oceandl.models import get_model
    from oceandl.training.checkpoint import load_checkpoint, save_checkpoint

    net = get_model("linear_ae", 1, input_size=8, latent=3)
    ckpt = save_checkpoint(tmp_path / "ae", net, model_name="linear_ae", model_args=[1],
                           model_options={"input_size": 8, "latent": 3}, task="reconstruction")
    state = load_file(str(ckpt / "weights.safetensors"))
    del state["mean"]
    save_file(state, str(ckpt / "weights.safetensors"))
    model, _ = load_checkpoint(ckpt)
    assert torch.count_nonzero(model.mean) == 0 and model.mean.shape == net.mean.shape
    torch.testing.assert_close(model.state_dict()["encoder.1.weight"], net.state_dict()["encoder.1.weight"],
                               rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------
# 2. model_options building a giant model; config.json nested too deep
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, values", [
    # was 5.7 GB allocated for 20 s before the shape check refused it
    ({"channels": [8, 8], "hidden": 10**7}, "1,320,001,935"),
    # was an allocation of 3.6 PB, refused by the allocator ("cannot rebuild model")
    ({"channels": [10**7, 8], "hidden": 16}, "900,000,890,002,759"),
])
def test_giant_model_options_not_built(tmp_path, good, images, options, values):
    ckpt = edit_checkpoint_config(good, tmp_path / "giant", model_options=options)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    refused_everywhere(ckpt, images["grey"], tmp_path, ckpt / "config.json", f"has {values} values",
                       f"the {FILE_VALUES} of weights.safetensors", "refused before building it")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 512 * 1024, f"peak memory grew by {grown / 1024:.0f} MiB"


def test_slightly_other_options_name_the_tensor(tmp_path, good, images):
    """Options within reach of the weights (hidden 32 for 16) are built and name the first tensor."""
    ckpt = edit_checkpoint_config(good, tmp_path / "wider", model_options={"channels": [8, 8], "hidden": 32})
    refused_everywhere(ckpt, images["grey"], tmp_path, "weights do not fit model 'cnn'",
                       "head.2.bias has shape (16,), the model expects (32,)")


def _nested(depth: int):
    """A value that makes config.json ``depth`` levels deep inside its top-level object."""
    x = 1
    for _ in range(depth - 2):  # the top-level object and "metrics" are two
        x = [x]
    return {"deep": x}


@pytest.mark.parametrize("depth", [65, 70])
def test_deep_json_refused(tmp_path, good, images, depth):
    ckpt = edit_checkpoint_config(good, tmp_path / "deep", metrics=_nested(depth))
    refused_everywhere(ckpt, images["grey"], tmp_path, ckpt / "config.json",
                       f"JSON nested {depth} levels deep, over the 64 accepted")


def test_very_deep_json_refused(tmp_path, good, images):
    """Deep enough for json's recursion limit: was 'RecursionError: maximum recursion depth
    exceeded while decoding a JSON array' (exit 1)."""
    ckpt = shutil.copytree(good, tmp_path / "deeper")
    (ckpt / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    refused_everywhere(ckpt, images["grey"], tmp_path, ckpt / "config.json", "JSON nested deeper than 64 levels")


def test_json_depth_64_accepted(tmp_path, good):
    from oceandl.training.checkpoint import _json_depth, read_config

    ckpt = edit_checkpoint_config(good, tmp_path / "d64", metrics=_nested(64))
    cfg = read_config(ckpt)
    assert _json_depth(cfg) == 64 and cfg["model_options"] == OPTIONS


# ------------------------------------------------------------------------------------------------
# 3. Absurd image sizes
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [[100000, 100000], [16, 16385], 20000])
def test_checkpoint_size_over_max(tmp_path, good, images, size):
    """Was an out-of-memory exit 1 (37.3 GiB asked for) in the image reader."""
    ckpt = edit_checkpoint_config(good, tmp_path / "big", preprocessing={"size": size, "normalize": "per_image"})
    line = refused_everywhere(ckpt, images["grey"], tmp_path, ckpt / "config.json",
                              f"preprocessing size={size!r}: at most 16384 pixels a side")
    assert "memory" not in line


def test_max_size_itself_is_accepted():
    from oceandl.preprocess import MAX_SIZE, check_spec

    assert MAX_SIZE == 16384
    assert check_spec({"size": MAX_SIZE})["size"] == [16384, 16384]
    assert check_spec({"size": [1, MAX_SIZE]})["size"] == [1, 16384]
    with pytest.raises(InputError, match=r"size=16385: at most 16384 pixels a side"):
        check_spec({"size": MAX_SIZE + 1})


@pytest.mark.parametrize("size, parts", [("100000", ["--size 100000: use 1 to 16384 pixels a side"]),
                                         ("0", ["--size 0: use 1 to 16384 pixels a side"])])
def test_train_size_option_over_max(tmp_path, images, size, parts):
    """train classifier --size 100000 ran out of memory (37.3 GiB, exit 1) reading the images."""
    tree = tmp_path / "tree"
    for c in "ab":
        (tree / c).mkdir(parents=True)
        shutil.copy(images["grey"], tree / c / "0.png")
    out = tmp_path / "model"
    res = invoke("train", "classifier", "--data", tree, "--size", size, "--epochs", "1", "-o", out,
                 "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, *parts)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# 4. Images of another band count than the checkpoint's
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bands, image, parts", [
    (1, "rgb", ["the images have 3 band(s)", "trained on 1-band images", "or train with --channels 1"]),
    (3, "grey", ["the images have 1 band(s)", "trained on 3-band images", "or train with --channels 3"]),
    (4, "rgb", ["the images have 3 band(s)", "trained on 4-band images (give 4-band images)"]),
])
def test_band_mismatch(tmp_path, images, bands, image, parts):
    """Was torch's 'RuntimeError: Given groups=1, weight of size [8, 1, 3, 3], expected input[1, 3,
    16, 16] to have 1 channels, but got 3 channels instead' (exit 1)."""
    from oceandl.classification import classify

    ckpt, _ = make_checkpoint(tmp_path / f"b{bands}", bands=bands)
    out = tmp_path / "p.csv"
    res = invoke("classify", "--model", ckpt, images[image], "-o", out, "--device", "cpu", "--quiet")
    assert_cli_error(res, 2, str(ckpt), *parts)
    assert not out.exists()
    other = 1 if image == "grey" else 3
    with pytest.raises(InputError) as info:
        classify(torch.rand(2, other, 16, 16), ckpt, device="cpu")
    assert "\n" not in str(info.value) and all(p in str(info.value) for p in parts), str(info.value)


@pytest.mark.parametrize("bands, image", [(1, "grey"), (3, "rgb")])
def test_matching_bands_classify(tmp_path, images, bands, image):
    """The control: the same checkpoints given images of their band count."""
    ckpt, _ = make_checkpoint(tmp_path / f"b{bands}", bands=bands)
    out = tmp_path / "p.csv"
    res = invoke("classify", "--model", ckpt, images[image], "-o", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert len(df) == 1 and df["predicted"].iloc[0] in ("a", "b", "c")


def test_channels_spec_converts_instead(tmp_path, images):
    """A checkpoint trained with --channels 1 converts RGB images (luminance): no band refusal."""
    ckpt, _ = make_checkpoint(tmp_path / "c1", bands=1, channels=1)
    out = tmp_path / "p.csv"
    res = invoke("classify", "--model", ckpt, images["rgb"], "-o", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out)) == 1
