"""One generic test over the whole model registry, plus the models' specific contracts."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from oceandl.errors import InputError, MissingResourceError
from oceandl.models import MODELS, count_parameters, get_model, model_options, model_task

HEAVY = {"vgg16", "alexnet", "inception_v3"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_forward_backward(name):
    ctor = MODELS[name]
    c, h, w = ctor.example_shape
    torch.manual_seed(0)
    if model_task(name) == "classification":
        model = get_model(name, c, 7)
        expect = (2, 7)
    else:
        model = get_model(name, c)
        expect = (2, c, h, w)
    x = torch.randn(2, c, h, w)
    out = model(x)
    assert tuple(out.shape) == expect
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert count_parameters(model) > 0


def test_unknown_model_and_option_errors():
    with pytest.raises(InputError, match="unknown model 'nope'.*valid names: .*cnn"):
        get_model("nope", 1, 10)
    with pytest.raises(InputError, match="has no option 'depthh'"):
        get_model("vgg", 1, 10, depthh=3)


@pytest.mark.parametrize("args, word", [(("1", 10), "in_channels"), ((1, 0), "num_classes"),
                                        ((1, 2.5), "num_classes"), ((1, 10, 3), "3 positional")])
def test_bad_positional_arguments_are_input_errors(args, word):
    """A text channel count failed deep in torch as a bare TypeError; 0 classes built a model with
    no outputs (a warning only)."""
    with pytest.raises(InputError, match=word):
        get_model("cnn", *args)
    assert get_model("cnn", np.int64(1), 3) is not None  # numbers read from JSON or NumPy are fine


@pytest.mark.parametrize("name, options, word", [
    ("vgg", {"depth": 9}, "depth=9: vgg depth must be one of"),
    ("conv_ae", {"latent": 8}, "latent=8: ConvAE.latent=k. needs input_size"),
    ("cnn", {"channels": "abc"}, "channels='abc'"),
])
def test_option_values_a_model_cannot_take_are_input_errors(name, options, word):
    """A bad option value came out of the constructor (or deep in torch) as a bare ValueError or
    TypeError: exit 1 on the command line, a message naming neither the model nor the option."""
    with pytest.raises(InputError, match=f"model {name!r} cannot be built with {word}"):
        get_model(name, 1, 10, **options)


@pytest.mark.parametrize("name, options, words", [
    ("dense_ae", {"latent": 0}, "latent=0: must be an integer >= 1"),
    ("linear_ae", {"latent": 0}, "latent=0: must be an integer >= 1"),
    ("dense_ae", {"hidden": (64, 0)}, r"hidden=\(64, 0\): must be integers >= 1"),
    ("dense_ae", {"input_size": (28, 0)}, r"input_size=\(28, 0\): must be integers >= 1"),
    ("dense_ae", {"noise_std": -0.1}, "noise_std=-0.1: must be a finite number >= 0"),
    ("conv_ae", {"noise_std": float("nan")}, "noise_std=nan: must be a finite number >= 0"),
    ("conv_ae", {"width": 0}, "width=0: must be an integer >= 1"),
    ("conv_ae", {"latent_channels": 0}, "latent_channels=0: must be an integer >= 1"),
    ("conv_ae", {"latent": -3, "input_size": 28}, "latent=-3: must be an integer >= 1"),
    ("conv_ae", {"depth": -1}, "depth=-1: must be an integer >= 0"),
])
def test_autoencoder_sizes_below_one_are_input_errors(name, options, words):
    """latent=0 built an auto-encoder with an empty code (its output one constant image for every
    input); width=0 or latent_channels=0 one that failed at its first image with torch's bare
    RuntimeError, latent=-3 a bare RuntimeError at construction; a negative or NaN noise_std
    trained a plain auto-encoder where a denoising one was asked for, without a word."""
    with pytest.raises(InputError, match=words):
        get_model(name, 1, **options)
    # the smallest sizes still build and run
    x = torch.rand(2, 1, 8, 8)
    assert get_model("dense_ae", 1, input_size=8, latent=1, hidden=(1,))(x).shape == x.shape
    assert get_model("conv_ae", 1, width=1, latent_channels=1, depth=0)(x).shape == x.shape


def test_course_mlp_is_784_512_256_10():
    m = get_model("mlp", 1, 10)
    linears = [l for l in m.modules() if isinstance(l, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(784, 512), (512, 256), (256, 10)]
    drops = [l.p for l in m.modules() if isinstance(l, torch.nn.Dropout)]
    assert drops == [0.2, 0.2]
    assert count_parameters(m) == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10


@pytest.mark.parametrize("size", [28, 64, 100])
def test_vgg_resnet_cnn_work_on_28_and_larger(size):
    for name in ("vgg", "resnet", "cnn"):
        m = get_model(name, 1, 10, **({"input_size": size} if name == "vgg" else {}))
        assert m(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_linear_ae_has_no_activation():
    m = get_model("linear_ae", 1, latent=8)
    kinds = {type(l).__name__ for l in m.modules()}
    assert not kinds & {"ReLU", "Sigmoid", "Tanh"}
    x = torch.randn(3, 1, 28, 28)
    # linearity: f(a x + b y) - f(0) = a (f(x) - f(0)) + b (f(y) - f(0))
    f0 = m(torch.zeros_like(x))
    lhs = m(2 * x + 3 * x.flip(0)) - f0
    rhs = 2 * (m(x) - f0) + 3 * (m(x.flip(0)) - f0)
    assert torch.allclose(lhs, rhs, atol=1e-4)


@pytest.mark.parametrize("options, size", [({}, 17), ({"depth": 3}, 28), ({"depth": 2}, (30, 22)),
                                           ({"latent": 5, "input_size": 30}, 30)])
def test_conv_ae_gives_back_the_input_size(options, size):
    """conv_ae on sizes that are not multiples of 2**depth gave another shape (17 -> 20; MNIST's 28
    at depth 3 -> 32), against the registry's (N, out_channels, H, W), and fit's loss then failed on
    the shapes; with a bottleneck (latent=k) on such an input_size, encode failed (code shape H // 4
    where the stride-2 stages give ceil(H / 4)). It now pads and crops back like the U-Net."""
    from oceandl.training import TensorData, TrainConfig, fit

    h, w = (size, size) if isinstance(size, int) else size
    model = get_model("conv_ae", 2, output="linear", **options)  # randn targets: a linear output
    x = torch.randn(3, 2, h, w)
    assert tuple(model(x).shape) == (3, 2, h, w)
    res = fit(model, TensorData(x), None, TrainConfig(epochs=1, batch_size=3, device="cpu", progress=False),
              task="reconstruction")
    assert np.isfinite(res.history[0]["train_loss"])


def test_denoising_option_only_in_training():
    m = get_model("dense_ae", 1, noise_std=0.5)
    x = torch.rand(4, 1, 28, 28)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    b = m(x)
    assert not torch.equal(a, b)


def test_transfer_first_conv_and_freeze():
    m = get_model("resnet18", 1, 5, freeze="backbone")
    assert m.net.conv1.in_channels == 1
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"net.fc.weight", "net.fc.bias"}
    m2 = get_model("resnet18", 1, 5, freeze="all_but_last")
    t2 = {n.split(".")[1] for n, p in m2.named_parameters() if p.requires_grad}
    assert t2 == {"layer4", "fc"}
    m3 = get_model("vgg16", 1, 5, freeze="none")
    assert all(p.requires_grad for p in m3.parameters())


@pytest.mark.parametrize("freeze", ["backbone", "all_but_last"])
def test_frozen_backbone_comes_out_of_training_unchanged(freeze):
    """freeze= stopped the gradient but not batch norm's running statistics: one epoch of
    freeze=backbone changed 60 tensors of the resnet18 backbone (running means and variances).
    Frozen batch norms now stay in eval mode; the trainable part still trains and keeps them in
    training mode."""
    from oceandl.training import TensorData, TrainConfig, fit

    torch.manual_seed(0)
    m = get_model("resnet18", 1, 2, freeze=freeze)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x, y = torch.randn(8, 1, 32, 32), torch.arange(8) % 2
    m.train()
    assert m.net.bn1.training is False and m.net.layer4[0].bn1.training is (freeze == "all_but_last")
    res = fit(m, TensorData(x, y, ["a", "b"]), None, TrainConfig(epochs=1, batch_size=4, device="cpu",
                                                                  progress=False))
    after = {k: v.cpu() for k, v in res.model.state_dict().items()}
    trained = ("net.fc",) + (("net.layer4",) if freeze == "all_but_last" else ())
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith(trained))
    assert not torch.equal(before["net.fc.weight"], after["net.fc.weight"])
    if freeze == "all_but_last":
        assert not torch.equal(before["net.layer4.0.bn1.running_mean"], after["net.layer4.0.bn1.running_mean"])
    assert not res.model.training and not res.model.net.bn1.training  # eval() still reaches everything


def test_transfer_missing_weights_says_where_and_which_url(tmp_path, monkeypatch):
    # the message said to call torchvision's resnet18(weights='IMAGENET1K_V1'), which downloads from
    # where it runs: no help on an offline compute node, and no word of the file's URL
    import torch.hub

    url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    with pytest.raises(MissingResourceError, match=rf"^weights=.*missing.pth: no such file .*{url}"):
        get_model("resnet18", 1, 5, weights=tmp_path / "missing.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cache = tmp_path / "th" / "hub" / "checkpoints"
    with pytest.raises(MissingResourceError) as err:
        get_model("resnet18", 1, 5, pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and f"not found at {cache / 'resnet18-f37072fd.pth'}: download {url} to that folder" in msg
    assert "$TORCH_HOME" in msg and "--set weights=PATH" in msg
    # the file where the message says: found there
    import torchvision

    cache.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cache / "resnet18-f37072fd.pth")
    assert get_model("resnet18", 1, 5, pretrained=True).net.conv1.in_channels == 1


def test_transfer_loads_local_weights_and_adapts_conv(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    m = get_model("resnet18", 1, 3, weights=str(path))
    # the 1-channel filter is the mean of the RGB filters times 3 / in_channels: the sum
    assert torch.allclose(m.net.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(m.net.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    # the same weights through safetensors
    from safetensors.torch import save_file

    save_file(ref.state_dict(), str(tmp_path / "r.safetensors"))
    m2 = get_model("resnet18", 1, 3, weights=str(tmp_path / "r.safetensors"))
    assert torch.equal(m2.net.conv1.weight, m.net.conv1.weight)


def test_transfer_weights_of_another_head_load_and_other_shapes_are_one_error(tmp_path):
    """The ImageNet head is replaced: weights whose head scores 5 classes (fine-tuned before) failed
    as torch's bare RuntimeError 'Error(s) in loading state_dict' (exit 1), as did a first conv
    made grey before; the head is now left out, and any other shape is one CheckpointError."""
    import torchvision

    from oceandl.errors import CheckpointError

    for backbone in ("resnet18", "alexnet"):
        ref = getattr(torchvision.models, backbone)(weights=None, num_classes=5)
        torch.save(ref.state_dict(), tmp_path / f"{backbone}.pth")
        m = get_model(backbone, 1, 3, weights=str(tmp_path / f"{backbone}.pth"))
        body = {k: v for k, v in ref.state_dict().items() if not k.startswith(("fc.", "classifier.6."))}
        loaded = m.net.state_dict()
        first = "conv1.weight" if backbone == "resnet18" else "features.0.weight"
        assert torch.allclose(loaded[first], body.pop(first).sum(1, keepdim=True))
        assert all(torch.equal(loaded[k], v) for k, v in body.items())
    grey = torchvision.models.resnet18(weights=None)
    grey.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(grey.state_dict(), tmp_path / "grey.pth")
    with pytest.raises(CheckpointError, match=r"grey.pth: weights do not fit torchvision resnet18: conv1.weight "
                                              r"is \(64, 1, 7, 7\), torchvision's \(64, 3, 7, 7\);"):
        get_model("resnet18", 1, 3, weights=str(tmp_path / "grey.pth"))


def test_transfer_corrupt_safetensors_weights_are_a_checkpoint_error(tmp_path):
    # a truncated .safetensors raised safetensors' own SafetensorError (exit 1, "set OCEANDL_DEBUG")
    import torchvision
    from safetensors.torch import save_file

    from oceandl.errors import CheckpointError

    good = tmp_path / "r.safetensors"
    save_file(torchvision.models.resnet18(weights=None).state_dict(), str(good))
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable weights file"):
        get_model("resnet18", 1, 3, weights=str(bad))


def test_transfer_pth_that_is_no_state_dict_is_one_clear_error(tmp_path):
    """A whole model saved with torch.save(model) was refused with torch's own text (several lines,
    terminal escapes) advising weights_only=False, i.e. running the file's code; a list of tensors
    was a bare AttributeError ('list' object has no attribute 'items', exit 1); a training
    checkpoint {'state_dict': ...} 'did not fit'. Each is now one CheckpointError saying what to save."""
    import torchvision

    from oceandl.errors import CheckpointError

    net = torchvision.models.resnet18(weights=None)
    torch.save(net, tmp_path / "whole.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    (tmp_path / "page.pth").write_text("<html>not found</html>")
    cases = {"whole": r"holds pickled Python objects \(torchvision.models.resnet.ResNet; .*save its state_dict",
             "list": r"not a state dict of tensors \(a list\)",
             "wrapped": r"not a state dict of tensors \(a dict with keys \['state_dict', 'epoch'\]\)",
             "page": r"not a readable weights file \(not a torch .pth file\)$"}
    for name, match in cases.items():
        with pytest.raises(CheckpointError, match=match) as err:
            get_model("resnet18", 1, 3, weights=str(tmp_path / f"{name}.pth"))
        assert "\n" not in str(err.value) and "\x1b" not in str(err.value) and "weights_only" not in str(err.value)


def test_fine_tuned_checkpoint_loads_without_the_imagenet_file(tmp_path, monkeypatch):
    # the checkpoint kept weights=PATH / pretrained=True and loading rebuilt the backbone from them:
    # on a machine without that file (or torchvision's cache) classify failed with 'not found'
    import torchvision

    from oceandl.training import load_checkpoint, save_checkpoint

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    for opts in ({"weights": str(path), "freeze": "backbone"}, {"pretrained": True}):
        monkeypatch.setattr("oceandl.models.transfer.pretrained_weights_path", lambda backbone: path)
        m = get_model("resnet18", 1, 3, **opts)
        ck = save_checkpoint(tmp_path / f"ck{len(opts)}", m, model_name="resnet18", model_options=opts,
                             model_args=[1, 3], task="classification", classes=["a", "b", "c"])
        monkeypatch.setattr("oceandl.models.transfer.pretrained_weights_path", lambda backbone: tmp_path / "no")
        path.rename(tmp_path / "moved.pth")
        loaded, cfg = load_checkpoint(ck, expect_task="classification")
        assert cfg["model_options"] == opts  # still recorded
        for k, v in m.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
        (tmp_path / "moved.pth").rename(path)


def test_model_options_lists_keywords():
    opts = model_options("vgg")
    assert opts["depth"] == 11 and "batch_norm" in opts
    assert "backbone" not in model_options("resnet18")


# -------------------------------------------------------------- the CPU speed paths of the blocks
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_one_minus_p_scaled_and_routes_the_gradient(dtype):
    from oceandl.models.blocks import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(400, 1000, dtype=dtype, requires_grad=True)
    y = drop(x)
    kept = y != 0
    # 400,000 Bernoulli(0.7) draws: standard error 7e-4, so 0.005 is 7 standard errors
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    # the native kernel's scale, rounded once in the input's dtype
    assert torch.equal(y[kept], torch.full((int(kept.sum()),), 1 / 0.7, dtype=dtype))
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad, 2 * y)
    # a seeded draw is reproducible
    torch.manual_seed(0)
    assert torch.equal(drop(x.detach()), y.detach())


def test_dropout_edge_cases_match_nn_dropout():
    from oceandl.models.blocks import Dropout

    x = torch.randn(64, 32)
    for p in (0.0, 1.0):
        assert torch.equal(Dropout(p)(x), torch.nn.Dropout(p)(x))
    assert torch.equal(Dropout(0.5).eval()(x), x)
    z = x.clone()
    out = Dropout(0.5, inplace=True)(z)
    assert out.data_ptr() == z.data_ptr() and set(torch.unique(out / x.where(x != 0, 1)).tolist()) <= {0.0, 2.0}
    # same parameters and state as nn.Dropout, so checkpoints and repr are unchanged
    assert isinstance(Dropout(0.2), torch.nn.Dropout) and not list(Dropout(0.2).parameters())


def test_grad_like_input_gives_a_channels_last_gradient_of_the_same_values():
    from oceandl.models.blocks import grad_like_input

    torch.manual_seed(0)
    x = torch.randn(8, 16, 7, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(16 * 16)
    seen = {}

    def run(hook):
        x.grad = None
        p = torch.nn.functional.adaptive_avg_pool2d(x, 4)
        p = grad_like_input(p) if hook else p
        p.register_hook(lambda g: seen.__setitem__(hook, g))  # runs after grad_like_input's hook
        (p.flatten(1) @ w).sum().backward()
        return x.grad.clone()

    plain, hooked = run(False), run(True)
    assert seen[False].is_contiguous() and not seen[False].is_contiguous(memory_format=torch.channels_last)
    assert seen[True].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(hooked, plain, rtol=0, atol=1e-6)
    # nothing to do for NCHW, 2-D or no-grad tensors: no hook is registered
    for t in (torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True),
              torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)):
        assert grad_like_input(t) is t and not t._backward_hooks


def test_autoencoder_output_is_checked_against_the_data():
    """output='tanh' (or 'Sigmoid') silently built a linear output; a sigmoid output trained on
    standardised fields (mean 0, std 1) could never go below 0: outputs in [0.32, 1), explained
    variance -0.15. The word is checked, and fit refuses a sigmoid on targets outside [0, 1]."""
    from oceandl.training import TensorData, TrainConfig, fit

    for name in ("dense_ae", "conv_ae"):
        with pytest.raises(InputError, match="output='tanh': must be one of sigmoid, linear"):
            get_model(name, 1, output="tanh")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=g)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False)
    with pytest.raises(InputError, match=r"sigmoid output .* range over \[-1.*output='linear'"):
        fit(get_model("conv_ae", 1, width=4), TensorData((x - 0.5) * 3), None, cfg, task="reconstruction")
    for model, data in ((get_model("conv_ae", 1, width=4), x), (get_model("conv_ae", 1, width=4, output="linear"),
                                                               (x - 0.5) * 3)):
        res = fit(model, TensorData(data), None, cfg, task="reconstruction")
        assert np.isfinite(res.history[0]["train_loss"])


@pytest.mark.parametrize("name", ["dense_ae", "linear_ae"])
def test_dense_autoencoders_name_the_input_size_they_were_built_for(name):
    """27 x 31 images through a dense AE built for 28 x 28 failed as torch's bare RuntimeError
    'mat1 and mat2 shapes cannot be multiplied (4x837 and 784x256)' (exit 1)."""
    from oceandl.training import TensorData, TrainConfig, fit

    x = torch.rand(8, 1, 27, 31)
    with pytest.raises(InputError, match=r"built for images of \(1, 28, 28\).*got \(1, 27, 31\).*input_size"):
        fit(get_model(name, 1), TensorData(x), None, TrainConfig(epochs=1, batch_size=4, device="cpu",
                                                                  progress=False), task="reconstruction")
    m = get_model(name, 1, input_size=(27, 31))
    assert m(x).shape == (8, 1, 27, 31) and m.encode(x).shape[0] == 8


@pytest.mark.parametrize("name, shape, words", [
    ("cnn", (1, 1, 3, 5), r"CourseCNN pools 2 times by 2: images need sides of 4 px or more, got \(3, 5\)"),
    ("vgg", (1, 1, 5, 7), r"VGGNet pools 3 times by 2: images need sides of 8 px or more, got \(5, 7\)"),
    ("mlp", (2, 1, 27, 31), r"MLP was built for images of \(1, 28, 28\) .*got \(1, 27, 31\): build it with input_size"),
])
def test_images_a_classifier_cannot_take_are_an_input_error(name, shape, words):
    """Too small for the poolings, or another size than a dense model was built for: torch's
    'Calculated output size: (32x0x0)' or 'mat1 and mat2 shapes cannot be multiplied' before."""
    from oceandl.errors import InputError

    model = get_model(name, 1, 10).eval()
    with pytest.raises(InputError, match=words):
        model(torch.zeros(shape))
    ok = {"cnn": (1, 1, 4, 4), "vgg": (1, 1, 8, 8), "mlp": (2, 1, 28, 28)}[name]
    assert model(torch.zeros(ok)).shape == (ok[0], 10)


@pytest.mark.parametrize("name, need", [("alexnet", 63), ("inception_v3", 75)])
def test_images_too_small_for_a_backbone_are_an_input_error(name, need):
    """alexnet on 32 px or inception_v3 on 64 px (the plankton and SAR sizes) failed with torch's
    bare RuntimeError 'Output size is too small' / 'Kernel size can't be greater than actual input
    size' from inside the backbone; the side each needs is the one the train command names."""
    model = get_model(name, 1, 3).eval()
    with torch.no_grad():
        with pytest.raises(InputError, match=rf"{name} needs images of {need} px or more a side, got \({need - 1}, 200\)"):
            model(torch.zeros(1, 1, need - 1, 200))
        assert model(torch.zeros(1, 1, need, need)).shape == (1, 3)
    # resnet18 pools adaptively: 28 px MNIST digits (or smaller) go through it
    with torch.no_grad():
        assert get_model("resnet18", 1, 3).eval()(torch.zeros(1, 1, 5, 28)).shape == (1, 3)


@pytest.mark.parametrize("name, options", [("cnn", {}), ("cnn", {"batch_norm": False}), ("vgg", {"depth": 13})])
def test_pool_before_relu_is_the_relu_then_pool_network(name, options):
    """The classifiers pool before their last ReLU of a stage (a quarter of the ReLU work): the
    parameter names are those of the conv-BN-ReLU-pool layout (old checkpoints load) and the
    output and gradients are that layout's."""
    torch.manual_seed(0)
    m = get_model(name, 1, 10, **options).train()
    keys = list(m.state_dict())
    # the old layout: every ConvBNAct ends with its ReLU, then a bare max-pool
    old = []
    for layer in m.features:
        if isinstance(layer, torch.nn.Sequential) and isinstance(layer[0], torch.nn.MaxPool2d):
            old.append(torch.nn.MaxPool2d(2))
        elif isinstance(layer[-1], torch.nn.ReLU):
            old.append(layer)
        else:
            old.append(torch.nn.Sequential(*layer, torch.nn.ReLU()))
    assert sum(isinstance(l, torch.nn.MaxPool2d) for l in old) >= 2
    ref = copy.deepcopy(m)
    ref.features = torch.nn.Sequential(*copy.deepcopy(old))
    assert list(ref.state_dict()) == keys
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(1)
    out = m(x)
    torch.manual_seed(1)  # the same dropout masks
    expected = ref(x)
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    for (k, p), q in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=k)


@pytest.mark.parametrize("stride,size", [(2, 32), (2, 7), (3, 10), (1, 9)])
def test_pointwise_conv_is_the_strided_1x1_conv(stride, size):
    """Same outputs, input and weight gradients and state-dict keys as nn.Conv2d(k=1, stride)."""
    from oceandl.models.blocks import PointwiseConv

    torch.manual_seed(0)
    ref = torch.nn.Conv2d(8, 16, 1, stride=stride, bias=False)
    ours = PointwiseConv(8, 16, stride)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight"]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 8, size, size, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, ours = ref.double(), ours.double()
    ya, yb = ref(xa), ours(xb)
    assert ya.shape == yb.shape == (3, 16, -(-size // stride), -(-size // stride))
    torch.testing.assert_close(yb, ya)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


@pytest.mark.parametrize("precision,isa", [("bf16", "AVX512_CORE_BF16"), ("fp32", None)])
def test_resnet_block_trains_channels_last_on_avx512(tmp_path, precision, isa):
    """BasicBlock(8, 16, stride=2), channels-last, odd batch, 2 threads, on oneDNN's AVX512 kernels.

    With nn.Conv2d(8, 16, 1, stride=2) as its shortcut this run aborted ("double free or
    corruption", or a segfault) within 300 steps under oneDNN 3.12 (PyTorch 2.14), in bf16 on the
    AVX512-BF16 kernels (the CI machine's; ONEDNN_MAX_CPU_ISA picks them on a CPU that also has
    AMX) and in fp32 on any AVX512 CPU: the --fast SAR benchmark crashed the test suite.
    """
    import os
    import subprocess
    import sys

    need = "avx512_bf16" if precision == "bf16" else "avx512f"
    if need not in _cpu_flags():
        pytest.skip(f"replays a oneDNN kernel that needs {need} (Linux)")
    autocast = "torch.autocast('cpu', dtype=torch.bfloat16)" if precision == "bf16" else "contextlib.nullcontext()"
    script = tmp_path / "replay.py"
    script.write_text(
        "import contextlib\n"
        "import torch\n"
        "from oceandl.models.blocks import BasicBlock\n"
        "torch.manual_seed(0)\n"
        "torch.set_num_threads(2)\n"
        "blk = BasicBlock(8, 16, stride=2).to(memory_format=torch.channels_last)\n"
        "for _ in range(600):\n"
        "    x = torch.randn(11, 8, 32, 32).contiguous(memory_format=torch.channels_last)\n"
        f"    with {autocast}:\n"
        "        y = blk(x)\n"
        "    y.float().square().mean().backward()\n"
        "    blk.zero_grad(set_to_none=True)\n"
        "print('trained', flush=True)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "trained" in proc.stdout, (proc.returncode, proc.stderr[-500:])
