"""The course's classifiers: MLP, CNN, a VGG-style and a ResNet-style family.

Every classifier takes ``(in_channels, num_classes, **options)`` and maps images
(N, in_channels, H, W) to logits (N, num_classes).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import InputError
from .blocks import BasicBlock, ConvBNAct, Dropout, PoolAct, grad_like_input

__all__ = ["MLP", "CourseCNN", "VGGNet", "ResNet"]


def _check_min_size(model: nn.Module, x: torch.Tensor, pools: int, option: str) -> None:
    """Refuse images too small for ``pools`` 2x2 max-poolings (each needs a side of 2 or more):
    torch said only "Given input size: (32x1x1). Calculated output size: (32x0x0)"."""
    need = 2**pools
    if x.ndim == 4 and min(x.shape[-2:]) < need:
        raise InputError(f"{type(model).__name__} pools {pools} times by 2: images need sides of {need} px or more, "
                         f"got {tuple(x.shape[-2:])} (resize them, or build it with fewer {option})")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


class MLP(nn.Module):
    """The course's multilayer perceptron: flatten -> 512 -> 256 -> classes, ReLU, dropout 0.2.

    Parameters
    ----------
    in_channels, num_classes : int
    input_size : int or (H, W)
        Image size the first dense layer is built for (28 for MNIST).
    hidden : sequence of int
        Hidden layer widths (default ``(512, 256)``).
    dropout : float
        Dropout after each hidden layer.
    """

    task = "classification"
    example_shape = (1, 28, 28)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, input_size=28,
                 hidden: Sequence[int] = (512, 256), dropout: float = 0.2):
        super().__init__()
        h, w = _pair(input_size)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * h * w
        for n in hidden:
            layers += [nn.Linear(width, n), nn.ReLU(inplace=True), Dropout(dropout)]
            width = n
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        self.in_shape = (in_channels, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.in_shape:
            # else torch's bare "mat1 and mat2 shapes cannot be multiplied (2x837 and 784x512)"
            raise InputError(f"MLP was built for images of {self.in_shape} (channels, H, W), got "
                             f"{tuple(x.shape[1:])}: build it with input_size=(H, W) of the data")
        return self.net(x)


class CourseCNN(nn.Module):
    """The course's CNN: two conv blocks (conv-conv-pool) and a dense head.

    (N, C, H, W) -> (N, num_classes). Batch norm and the head width are options; the
    dense head sees a fixed 4x4 map (adaptive pooling), so any input size >= 8 works.
    """

    task = "classification"
    example_shape = (1, 28, 28)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, channels: Sequence[int] = (32, 64),
                 hidden: int = 128, dropout: float = 0.3, batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for c in channels:
            layers += [ConvBNAct(cin, c, batch_norm=batch_norm), ConvBNAct(c, c, batch_norm=batch_norm, act=False),
                       PoolAct()]
            cin = c
        self.features = nn.Sequential(*layers)
        self.n_pools = len(channels)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Sequential(nn.Flatten(), Dropout(dropout), nn.Linear(cin * 16, hidden),
                                  nn.ReLU(inplace=True), Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_min_size(self, x, self.n_pools, "channels (one entry per pooling block)")
        return self.head(grad_like_input(self.pool(self.features(x))))


_VGG_CFGS = {
    # widths per stage, convs per stage (VGG-11/13/16 patterns, narrowed by `width`)
    8: (1, 1, 2, 2, 2),
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
}


class VGGNet(nn.Module):
    """VGG-style family (Simonyan & Zisserman 2015): stages of 3x3 convs and max-pooling.

    Parameters
    ----------
    depth : {8, 11, 13, 16}
        Conv layout (VGG-11/13/16). 8 builds the same network as 11 (the number of stages is
        ``stages`` / ``input_size``, not ``depth``); it is kept so that configs naming it still load.
    width : int
        Channels of the first stage (doubles each stage, capped at 8x).
    stages : int or None
        Number of pooling stages; default: as many as the input allows (3 for 28x28, 5 for >= 64).
    batch_norm : bool
    input_size : int or (H, W)
        Used only to choose ``stages`` when not given.
    dropout : float
        Dropout before the final dense layer.

    Notes
    -----
    Global average pooling before the classifier makes it work on 28x28 and larger inputs.
    """

    task = "classification"
    example_shape = (1, 32, 32)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, depth: int = 11, width: int = 32,
                 stages: int | None = None, batch_norm: bool = True, input_size=28, dropout: float = 0.3):
        super().__init__()
        if depth not in _VGG_CFGS:
            raise ValueError(f"vgg depth must be one of {sorted(_VGG_CFGS)}, got {depth}")
        reps = _VGG_CFGS[depth]
        if stages is None:
            stages = 3 if min(_pair(input_size)) < 64 else 5
        layers: list[nn.Module] = []
        cin = in_channels
        for i, r in enumerate(reps[:stages]):
            cout = width * min(2**i, 8)
            for j in range(r):
                layers.append(ConvBNAct(cin, cout, batch_norm=batch_norm, act=j < r - 1))
                cin = cout
            layers.append(PoolAct())
        self.features = nn.Sequential(*layers)
        self.n_pools = len(reps[:stages])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), Dropout(dropout),
                                  nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_min_size(self, x, self.n_pools, "stages")
        return self.head(self.features(x))


class ResNet(nn.Module):
    """ResNet-style family (He et al. 2016) of basic residual blocks.

    Parameters
    ----------
    blocks : sequence of int
        Basic blocks per stage (``(2, 2, 2)``: a ResNet-14; ``(2, 2, 2, 2)`` with ``width=64``: ResNet-18).
    width : int
        Channels of the first stage; each later stage doubles them and halves the resolution.
    """

    task = "classification"
    example_shape = (1, 32, 32)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, blocks: Sequence[int] = (2, 2, 2),
                 width: int = 32, dropout: float = 0.0):
        super().__init__()
        self.stem = ConvBNAct(in_channels, width)
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(cin, cout, stride=2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), Dropout(dropout),
                                  nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
