"""Model registry: one name -> constructor table and one signature per task.

Classifiers: ``(in_channels, num_classes, **options)`` -> logits (N, num_classes).
Auto-encoders and reconstruction models: ``(in_channels, out_channels=in_channels, **options)``
-> (N, out_channels, H, W). A new model is tested by registering it here (tests/test_models.py
runs over the whole table).
"""
from __future__ import annotations

import functools
import inspect

import numpy as np
from torch import nn

from ..errors import InputError, OceanDLError, one_line
from .autoencoders import ConvAE, DenseAE, LinearAE
from .blocks import BasicBlock, ConvBNAct, PoolAct
from .classifiers import MLP, CourseCNN, ResNet, VGGNet
from .reconstruction import ResAE, SMPUnet, UNet
from .transfer import BACKBONES, TransferClassifier

__all__ = [
    "MODELS", "get_model", "model_task", "count_parameters", "model_options",
    "MLP", "CourseCNN", "VGGNet", "ResNet", "TransferClassifier", "DenseAE", "LinearAE", "ConvAE",
    "BasicBlock", "ConvBNAct", "PoolAct",
]


def _transfer(backbone: str):
    f = functools.partial(TransferClassifier, backbone=backbone)
    f.task = "classification"  # type: ignore[attr-defined]
    f.example_shape = (1, 80, 80) if backbone == "inception_v3" else (1, 64, 64)  # type: ignore[attr-defined]
    f.__doc__ = f"{backbone} from torchvision, fine-tuned (see TransferClassifier)."
    f.init_options = TransferClassifier.init_options  # type: ignore[attr-defined]
    return f


MODELS: dict = {
    # classifiers
    "mlp": MLP,
    "cnn": CourseCNN,
    "vgg": VGGNet,
    "resnet": ResNet,
    **{name: _transfer(name) for name in BACKBONES},
    # auto-encoders
    "dense_ae": DenseAE,
    "linear_ae": LinearAE,
    "conv_ae": ConvAE,
    # reconstruction (gap filling)
    "unet": UNet,
    "resae": ResAE,
    "smp_unet": SMPUnet,
}


def model_task(name: str) -> str:
    """``"classification"`` or ``"reconstruction"`` for a registered model name."""
    return _lookup(name).task


def _lookup(name: str):
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}") from None


def model_options(name: str) -> dict:
    """The keyword options a registered model accepts, with their defaults."""
    ctor = _lookup(name)
    target = ctor.func if isinstance(ctor, functools.partial) else ctor
    sig = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    fixed = ctor.keywords if isinstance(ctor, functools.partial) else {}
    return {k: p.default for k, p in sig.parameters.items()
            if p.kind is p.KEYWORD_ONLY and k not in fixed}


def get_model(name: str, *args, **options) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    *args
        ``(in_channels, num_classes)`` for classifiers, ``(in_channels, out_channels)`` for the others.
    **options
        Model-specific keyword options (see :func:`model_options`).

    Raises
    ------
    InputError
        Unknown name or option, more than two positional arguments, or one that is not a
        positive integer, or option values the model cannot be built with.
    """
    ctor = _lookup(name)
    # a text or zero channel count failed deep in torch (bare TypeError) or built a model with no outputs
    if len(args) > 2:
        raise InputError(f"model {name!r}: expected (in_channels, num_classes or out_channels), got {len(args)} "
                         "positional arguments")
    for what, v in zip(("in_channels", "num_classes / out_channels"), args):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"model {name!r}: {what} must be a positive integer, got {v!r}")
    valid = model_options(name)
    bad = [k for k in options if k not in valid]
    if bad:
        raise InputError(f"model {name!r} has no option {bad[0]!r}; options: {', '.join(valid) or 'none'}")
    try:
        return ctor(*args, **options)
    except OceanDLError:  # already says what is wrong (an InputError is also a ValueError)
        raise
    except (ValueError, TypeError) as exc:
        # a bad option value (vgg depth=9, channels='abc') came out of the constructor or deep in
        # torch as a bare ValueError/TypeError: exit 1 and a message naming neither model nor option
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "default options"
        raise InputError(f"model {name!r} cannot be built with {shown}: {one_line(exc, with_type=False)}") from exc


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
