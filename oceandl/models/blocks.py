"""Building blocks shared by the classifiers and the reconstruction models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBNAct", "PoolAct", "BasicBlock", "PointwiseConv", "Dropout", "conv3x3", "grad_like_input"]


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding and no bias (a batch norm follows)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` whose CPU mask is drawn with ``torch.rand`` (same law, same parameters).

    On the CPU, ``bernoulli_`` draws one element at a time (7-8 ns each here, 4x ``torch.rand``),
    so dropout on a (256, 1024) batch cost 3 ms of a 60 ms CNN step. The kept fraction is
    ``P(U >= p) = 1 - p`` either way, and the masking is the native kernel's (the same rounding,
    the same autograd). Other devices, ``inplace=True`` and eval mode keep :class:`nn.Dropout`'s
    path. Seeded runs stay reproducible (the same generator) but draw other masks than it does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p in (0, 1) or self.inplace or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand(x.shape) >= self.p
        # the native kernel's masking (x * mask * scale, one rounding in x's dtype), with its autograd
        return torch.ops.aten.native_dropout_backward(x, keep, 1 / (1 - self.p))


def _to_channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


def grad_like_input(x: torch.Tensor) -> torch.Tensor:
    """Return ``x``, its gradient to arrive in ``x``'s channels-last layout.

    A flattening head hands back a (N, C, H, W) gradient in NCHW order; when ``x`` is
    channels-last, the layer that made ``x`` (e.g. adaptive pooling) then runs a mixed-layout
    backward kernel, 6x slower on the CPU for the course CNN's (256, 64, 7, 7) -> 4x4 pooling.
    """
    if x.requires_grad and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        x.register_hook(_to_channels_last)
    return x


class ConvBNAct(nn.Sequential):
    """Conv 3x3 -> BatchNorm -> ReLU; ``batch_norm=False`` gives conv (with bias) -> ReLU.

    ``act=False`` leaves the ReLU out (a :class:`PoolAct` that follows applies it); the
    parameters keep their names either way.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, batch_norm: bool = True, act: bool = True):
        layers: list[nn.Module] = ([conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)] if batch_norm
                                   else [nn.Conv2d(cin, cout, 3, stride, 1)])
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if act else []))


class PoolAct(nn.Sequential):
    """2x2 max-pooling -> ReLU: the same values and gradients as ReLU -> max-pooling.

    ReLU is monotonic, so it commutes with the max; after the pool it runs on a quarter of the
    values. Element-wise passes are memory-bound on the CPU: this made the course CNN's bf16
    training step 4 % faster (median of 6 paired runs, batch 256). No parameters, so
    checkpoints of the ReLU -> pool layout load unchanged (ties in a pooling window may route
    a gradient to another of the tied inputs).
    """

    def __init__(self):
        super().__init__(nn.MaxPool2d(2), nn.ReLU(inplace=True))


class PointwiseConv(nn.Conv2d):
    """A bias-free 1 x 1 convolution with a stride, computed as a subsample then a stride-1 conv.

    Input (N, cin, H, W) -> output (N, cout, ceil(H/stride), ceil(W/stride)): the same numbers,
    parameters and state-dict keys as ``nn.Conv2d(cin, cout, 1, stride=stride, bias=False)``.

    Why: the strided form trips a heap-corruption bug of oneDNN 3.12 (PyTorch 2.14) in the
    backward pass of a channels-last strided 1 x 1 conv with fewer than 16 input channels, an odd
    batch (the last, partial batch of an epoch) and 2+ threads: in fp32 on AVX512 CPUs, in bf16 on
    AVX512-BF16 CPUs without AMX. ``double free or corruption`` aborts, or segfaults, came within
    300 steps of ``BasicBlock(8, 16, stride=2)`` (the ``--fast`` SAR benchmark's ResNet). A stride-1
    1 x 1 conv did not crash; ``tests/test_models.py`` replays the case (docs/robustness.md).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if s != (1, 1):
            x = x[..., :: s[0], :: s[1]]
        return F.conv2d(x, self.weight)


class BasicBlock(nn.Module):
    """The ResNet basic block (He et al. 2016): two 3x3 convs and an identity (or 1x1) shortcut.

    Input (N, cin, H, W) -> output (N, cout, H/stride, W/stride).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(PointwiseConv(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))
