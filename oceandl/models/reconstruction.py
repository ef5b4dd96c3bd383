"""Fully convolutional reconstruction models for gap filling: U-Net, residual auto-encoder, smp U-Net.

All take ``(in_channels, out_channels=in_channels, **options)`` and map (N, in_channels, H, W) to
(N, out_channels, H, W) with a linear output (anomalies, log-variances). Any H, W works: the input is
zero-padded (bottom/right) to the multiple of the network's total stride and the output cropped back,
so a zero-padded border reads as "not observed" when the channels are DINCAE-style data x mask pairs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .blocks import BasicBlock, ConvBNAct

__all__ = ["UNet", "ResAE", "SMPUnet", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (N, C, H, W) at the bottom/right so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for cropping back.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def _check_common(in_channels: int, out_channels: int | None, depth: int, width: int) -> int:
    out_channels = out_channels or in_channels
    if in_channels < 1 or out_channels < 1:
        raise InputError(f"in_channels={in_channels}, out_channels={out_channels}: must be >= 1")
    if not 1 <= depth <= 7:
        raise InputError(f"depth={depth}: must be between 1 and 7")
    if width < 1:
        raise InputError(f"width={width}: must be >= 1")
    return out_channels


class _DoubleConv(nn.Sequential):
    """(Conv 3x3 -> BN -> ReLU) x 2, the U-Net stage."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBNAct(cin, cout), ConvBNAct(cout, cout))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with batch norm and a linear output.

    ``depth`` max-pool stages down (channels ``width * 2**i``, capped at ``width * 2**max_power``),
    a bottleneck, and ``depth`` stages up (transposed conv, or bilinear upsampling + 1x1 conv when
    ``bilinear=True``) concatenated with the encoder's skip features.

    Input (N, in_channels, H, W) -> output (N, out_channels, H, W) for any H, W (padded internally
    to a multiple of ``2**depth``, cropped back).
    """

    task = "reconstruction"
    example_shape = (3, 30, 44)

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 32,
                 depth: int = 3, bilinear: bool = False, dropout: float = 0.0):
        super().__init__()
        out_channels = _check_common(in_channels, out_channels, depth, width)
        self.depth = depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans[:-1]:
            self.down.append(_DoubleConv(cin, c))
            cin = c
        self.bottleneck = nn.Sequential(_DoubleConv(cin, chans[-1]), nn.Dropout2d(dropout))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        cin = chans[-1]
        for c in reversed(chans[:-1]):
            if bilinear:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                             nn.Conv2d(cin, c, 1)))
            else:
                self.up.append(nn.ConvTranspose2d(cin, c, 2, stride=2))
            self.dec.append(_DoubleConv(2 * c, c))
            cin = c
        self.head = nn.Conv2d(cin, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :h, :w]


class ResAE(nn.Module):
    """Residual convolutional auto-encoder (DINCAE-like), fully convolutional.

    Encoder: a 3x3 stem then ``depth`` stages of ``BasicBlock(stride=2)`` (+ ``blocks - 1`` more
    blocks); decoder: transposed-conv upsampling and ``BasicBlock``s, with the encoder features of the
    same resolution *added* (DINCAE 2 style) when ``skip=True``. ``skip=False`` gives a plain
    bottleneck auto-encoder.

    Input (N, in_channels, H, W) -> output (N, out_channels, H, W) for any H, W (padded internally
    to a multiple of ``2**depth``, cropped back).
    """

    task = "reconstruction"
    example_shape = (3, 30, 44)

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 32,
                 depth: int = 3, blocks: int = 1, skip: bool = True, max_width: int = 256):
        super().__init__()
        out_channels = _check_common(in_channels, out_channels, depth, width)
        if blocks < 1:
            raise InputError(f"blocks={blocks}: must be >= 1")
        self.depth, self.skip = depth, skip
        chans = [min(width * 2**i, max(max_width, width)) for i in range(depth + 1)]
        self.stem = ConvBNAct(in_channels, chans[0])
        self.enc = nn.ModuleList(
            nn.Sequential(BasicBlock(chans[i], chans[i + 1], stride=2),
                          *[BasicBlock(chans[i + 1], chans[i + 1]) for _ in range(blocks - 1)])
            for i in range(depth)
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.dec = nn.ModuleList(
            nn.Sequential(*[BasicBlock(chans[i], chans[i]) for _ in range(blocks)])
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        x = self.stem(x)
        feats = [x]
        for stage in self.enc:
            x = stage(x)
            feats.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(feats[:-1])):
            x = up(x)
            if self.skip:
                x = x + skip
            x = dec(x)
        return self.head(x)[..., :h, :w]


class SMPUnet(nn.Module):
    """``segmentation_models_pytorch.Unet`` with a randomly initialised encoder (never downloads).

    Input (N, in_channels, H, W) -> output (N, out_channels, H, W) for any H, W (padded internally
    to a multiple of ``2**encoder_depth``, cropped back). ``decoder_channels`` defaults to smp's
    ``(256, 128, 64, 32, 16)`` truncated to ``encoder_depth`` stages.
    """

    task = "reconstruction"
    example_shape = (3, 64, 64)

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, encoder_name: str = "resnet18",
                 encoder_depth: int = 5, decoder_channels: tuple[int, ...] | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        out_channels = _check_common(in_channels, out_channels, 1, 1)
        if not 3 <= encoder_depth <= 5:
            raise InputError(f"encoder_depth={encoder_depth}: must be 3, 4 or 5")
        decoder_channels = tuple(decoder_channels or (256, 128, 64, 32, 16)[-encoder_depth:])
        if len(decoder_channels) != encoder_depth:
            raise InputError(f"decoder_channels={decoder_channels}: needs {encoder_depth} entries (encoder_depth)")
        self.multiple = 2**encoder_depth
        try:
            self.net = smp.Unet(encoder_name=encoder_name, encoder_depth=encoder_depth, encoder_weights=None,
                                in_channels=in_channels, classes=out_channels, decoder_channels=decoder_channels)
        except KeyError as exc:
            raise InputError(f"encoder_name={encoder_name!r}: not an encoder of segmentation_models_pytorch "
                             f"(e.g. resnet18, resnet34, efficientnet-b0)") from exc
        enc = self.net.encoder
        if type(enc).__name__ == "ResNetEncoder":
            # A shallow ResNet encoder never runs its deeper stages: drop their unused weights.
            for k in range(encoder_depth, 5):
                if isinstance(getattr(enc, f"layer{k}", None), nn.Module):
                    delattr(enc, f"layer{k}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.multiple)
        return self.net(x)[..., :h, :w]
