"""CUDA paths against the CPU: run where a GPU is present (``pytest -m gpu``), skipped elsewhere.

Every test compares what CUDA gives with what the same call gives on the CPU, so a device-specific
bug (a tensor left on the wrong device, a dtype that autocast changed, a graph captured over a
changing shape) shows as a failure, not as a slower benchmark.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from oceandl.interp import DINEOF, get_method
from oceandl.models import get_model
from oceandl.training import TensorData, TrainConfig, fit
from oceandl.utils import native_bf16

from fakes import lowrank_cube

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")]


def _digits(n=512, seed=0):
    """Two separable classes of 1x28x28 images: a bright left half or a bright right half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    x[y == 0, :, :, :14] += 1.0
    x[y == 1, :, :, 14:] += 1.0
    return TensorData(x, y)


@pytest.fixture
def exact_fp32(monkeypatch):
    """cuDNN convolutions in true fp32: PyTorch lets them use TF32 by default (10-bit mantissa), which
    would make a CPU/GPU comparison of fp32 training test TF32's rounding, not the device paths."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def _train(device, **switch):
    # the plain engine (fp32, NCHW): each switch is then compared with it. No dropout: its masks
    # come from each device's own generator, so a CPU/GPU comparison would test the two streams
    torch.manual_seed(0)
    model = get_model("cnn", 1, 2, channels=(8, 16), hidden=32, dropout=0.0)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, optimizer="sgd", scheduler="none", amp=False,
                      channels_last=False, seed=0, device=device, progress=False).update(**switch)
    return fit(model, _digits(), None, cfg)


def test_engine_cuda_fp32_matches_cpu(exact_fp32):
    cpu, gpu = _train("cpu"), _train("cuda")
    assert next(gpu.model.parameters()).device.type == "cuda"
    for a, b in zip(cpu.history, gpu.history):  # cuDNN picks other kernels: equal to float tolerance
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)


@pytest.mark.parametrize("switch", [{"amp": True}, {"channels_last": True}, {"compile": "reduce-overhead"}])
def test_engine_cuda_switches_train(switch):
    if switch.get("amp") and not native_bf16("cuda"):
        pytest.skip("no native bf16 on this GPU (the engine trains it in fp32; see training_precision)")
    ref, res = _train("cuda"), _train("cuda", **switch)
    assert res.history[-1]["train_accuracy"] > 0.95  # the task is separable: every switch must learn it
    assert res.history[-1]["train_loss"] == pytest.approx(ref.history[-1]["train_loss"], rel=0.2, abs=0.02)


def test_dineof_cuda_matches_cpu():
    # as many modes as the cube's rank: a 4th mode of a rank-3 cube is noise, its eigenvector barely
    # determined, and two correct float32 solvers' fills differed by 3.4e-3 (gram against full, CPU)
    gappy, _ = lowrank_cube(60, 24, 32, rank=3, seed=0)
    cpu = DINEOF(seed=0, device="cpu", n_modes=3).fit(gappy).reconstruct()["sst"].values
    gpu = DINEOF(seed=0, device="cuda", n_modes=3).fit(gappy).reconstruct()["sst"].values
    np.testing.assert_array_equal(np.isnan(cpu), np.isnan(gpu))
    assert np.nanmax(np.abs(cpu - gpu)) < 1e-3  # degrees; float32 on both


def test_neural_interpolation_cuda_cuts_patches_on_the_device(exact_fp32):
    gappy, _ = lowrank_cube(16, 32, 32, rank=3, seed=1, dates=True, dtype=np.float32)
    # fp32 on both: with precision="auto" each device would run bf16 where native, in other kernels
    opts = {"steps": 3, "batch_size": 4, "patch": 16, "tile": 16, "overlap": 4, "infer_batch": 4,
            "precision": "fp32", "model_options": {"width": 8, "depth": 2}}
    cpu = get_method("unet")(seed=0, device="cpu", **opts).fit(gappy)
    gpu = get_method("unet")(seed=0, device="cuda", **opts).fit(gappy)
    src = gpu._sources()
    assert src[0].device.type == "cuda" and src[1].dtype == torch.bool  # the cube moved once
    np.testing.assert_allclose(gpu.loss_history_, cpu.loss_history_, rtol=1e-3)
    a, b = cpu.reconstruct()["sst"].values, gpu.reconstruct()["sst"].values
    assert np.nanmax(np.abs(a - b)) < 1e-2


def test_neural_interpolation_with_aux_on_cuda_matches_cpu(exact_fp32):
    """A covariate (its own gaps included) goes to the device with the cube: training losses and the
    fill match the CPU's to float tolerance, as without covariates."""
    gappy, truth = lowrank_cube(16, 32, 32, rank=3, seed=1, dates=True, dtype=np.float32)
    rng = np.random.default_rng(2)
    cov = (truth + 0.2 * rng.standard_normal(truth.shape)).where(rng.random(truth.shape) > 0.2).rename("cov")
    opts = {"steps": 3, "batch_size": 4, "patch": 16, "tile": 16, "overlap": 4, "infer_batch": 4,
            "precision": "fp32", "model_options": {"width": 8, "depth": 2}}
    cpu = get_method("unet")(seed=0, device="cpu", **opts).fit(gappy, aux=cov)
    gpu = get_method("unet")(seed=0, device="cuda", **opts).fit(gappy, aux=cov)
    src = gpu._sources()
    assert src[5].device.type == "cuda" and src[6].dtype == torch.bool  # the covariate moved with the cube
    np.testing.assert_allclose(gpu.loss_history_, cpu.loss_history_, rtol=1e-3)
    a, b = cpu.reconstruct()["sst"].values, gpu.reconstruct()["sst"].values
    assert np.nanmax(np.abs(a - b)) < 1e-2


def test_perf_fast_on_cuda(tmp_path):
    from oceandl.pipelines import get_pipeline, run_pipeline

    _, res = run_pipeline(get_pipeline("perf"), tmp_path / "run", overrides={"fast": True, "seed": 0},
                          device="cuda", progress=False, log=lambda s: None)
    assert {"dineof_cuda", "mnist_cnn_engine_cuda_graphs"} <= set(res)
    assert res["dineof_cuda"]["max_abs_diff_vs_cpu"] < 1e-2
    assert all(r["peak_device_mb"] >= 0 and r["device"] != "cpu" for r in res.values())


def test_neural_resume_on_cuda_goes_on_as_uninterrupted(tmp_path, exact_fp32):
    """A CUDA run cut by Ctrl-C in step 3's forward pass (its CUDA random state saved with the rest)
    and resumed ends as the uninterrupted CUDA run: the same loss history, weights to float
    tolerance (cuDNN may pick other kernels, so not bit for bit)."""
    gappy, _ = lowrank_cube(16, 32, 32, rank=3, seed=1, dates=True, dtype=np.float32)
    opts = {"steps": 6, "batch_size": 4, "patch": 16, "precision": "fp32", "checkpoint_every": 100,
            "model_options": {"width": 8, "depth": 2, "dropout": 0.2}}
    cls = get_method("unet")
    whole = cls(seed=0, device="cuda", **opts).fit(gappy)
    net, calls = cls(seed=0, device="cuda", save_to=str(tmp_path / "run"), **opts), []
    real = net._forward

    def forward(x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(x)

    net._forward = forward
    with pytest.raises(KeyboardInterrupt, match="step 2 of 6 is saved"):
        net.fit(gappy)
    resumed = cls(seed=0, device="cuda", resume=str(tmp_path / "run"), **opts).fit(gappy)
    np.testing.assert_allclose(resumed.loss_history_, whole.loss_history_, rtol=1e-4)
    for (k, a), b in zip(whole.model_.state_dict().items(), resumed.model_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_classifier_mid_epoch_resume_on_cuda(tmp_path, exact_fp32):
    """The same for the classifier engine, cut inside epoch 2 (dropout draws from the CUDA generator)."""
    meta = dict(model_name="cnn", model_args=[1, 2], model_options={"channels": [8, 16], "hidden": 32})
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, optimizer="sgd", scheduler="none", amp=False,
                      channels_last=False, seed=0, device="cuda", progress=False)

    def model():
        torch.manual_seed(0)
        return get_model("cnn", 1, 2, channels=(8, 16), hidden=32, dropout=0.3)

    whole = fit(model(), _digits(), None, cfg)
    cut, calls = model(), []

    def ctrl_c(module, args):
        calls.append(module.training)
        if calls.count(True) == 11:  # 8 batches an epoch: epoch 2, batch 3
            raise KeyboardInterrupt

    hook = cut.register_forward_pre_hook(ctrl_c)
    with pytest.raises(KeyboardInterrupt, match="epoch 2 of 3, batch 2 of 8, is saved"):
        fit(cut, _digits(), None, cfg, out=tmp_path / "ck", checkpoint_meta=meta)
    hook.remove()
    resumed = fit(model(), _digits(), None, cfg, out=tmp_path / "ck", checkpoint_meta=meta, resume=True)
    for a, b in zip(whole.history, resumed.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
