"""Building blocks shared by the classifiers and the reconstruction models."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNAct", "BasicBlock", "conv3x3"]


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding and no bias (a batch norm follows)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class ConvBNAct(nn.Sequential):
    """Conv 3x3 -> BatchNorm -> ReLU; ``batch_norm=False`` gives conv (with bias) -> ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, batch_norm: bool = True):
        if batch_norm:
            super().__init__(conv3x3(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        else:
            super().__init__(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True))


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
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))
