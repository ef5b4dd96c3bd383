"""Sample transforms: ``dict -> dict`` callables acting on ``sample["image"]`` (float32 ``(C, H, W)``).

Other keys (label, path, index, ...) pass through untouched. Random transforms draw from torch's
global RNG, so ``torch.manual_seed`` (or :func:`oceandl.utils.seed_everything`) makes a run
reproducible, and DataLoader workers each get their own stream (torch seeds every worker from the
loader's base seed). Geometric operations are torchvision.transforms.v2 functional ops.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from oceandl.errors import InputError

__all__ = [
    "Compose",
    "ToDecibel",
    "PerImageNormalize",
    "Resize",
    "RandomFlip",
    "RandomRot90",
    "RandomRotation",
    "RandomCrop",
    "RandomResizedCrop",
    "SpeckleNoise",
    "GaussianNoise",
    "RandomAffine",
]


def _size2(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"{name}: size {size} must be a positive int or (H, W)")
    return size  # type: ignore[return-value]


def _uniform(low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(()).item())


def _with_image(sample: dict, image: torch.Tensor) -> dict:
    # Shallow copy: never mutate the caller's dict (datasets may cache samples).
    out = dict(sample)
    out["image"] = image
    return out


def _fill_value(image: torch.Tensor, fill: float | None) -> list[float]:
    # None -> the per-channel mean, so rotated/shifted corners do not add a dark frame.
    if fill is None:
        return image.mean(dim=(-2, -1)).tolist()
    return [float(fill)] * image.shape[0]


class Compose:
    """Apply transforms in order: ``Compose([ToDecibel(), PerImageNormalize()])(sample)``."""

    def __init__(self, transforms: Sequence[Callable[[dict], dict]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToDecibel:
    """Linear intensity to decibels: ``10 log10(max(x, eps))`` (SAR sigma0 to dB)."""

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = float(eps)

    def __call__(self, sample: dict) -> dict:
        return _with_image(sample, 10.0 * torch.log10(sample["image"].clamp_min(self.eps)))

    def __repr__(self) -> str:
        return f"ToDecibel(eps={self.eps})"


class PerImageNormalize:
    """Zero mean, unit standard deviation per image (over all channels, or per channel).

    A constant image becomes all zeros (its std is floored at ``eps``).
    """

    def __init__(self, per_channel: bool = False, eps: float = 1e-6) -> None:
        self.per_channel = per_channel
        self.eps = float(eps)

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        dims = (-2, -1) if self.per_channel else tuple(range(x.ndim))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False).clamp_min(self.eps)
        return _with_image(sample, (x - mean) / std)

    def __repr__(self) -> str:
        return f"PerImageNormalize(per_channel={self.per_channel})"


class Resize:
    """Resize to ``size`` (int or ``(H, W)``), bilinear with antialiasing."""

    def __init__(self, size: int | Sequence[int], antialias: bool = True) -> None:
        self.size = _size2(size, "Resize")
        self.antialias = antialias

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        if tuple(x.shape[-2:]) == self.size:
            return sample
        return _with_image(sample, F.resize(x, list(self.size), antialias=self.antialias))

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomFlip:
    """Flip left-right and/or up-down, each with probability ``p``."""

    def __init__(self, p: float = 0.5, horizontal: bool = True, vertical: bool = True) -> None:
        self.p, self.horizontal, self.vertical = float(p), horizontal, vertical

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        if self.horizontal and torch.rand(()).item() < self.p:
            x = F.horizontal_flip(x)
        if self.vertical and torch.rand(()).item() < self.p:
            x = F.vertical_flip(x)
        return _with_image(sample, x)


class RandomRot90:
    """Rotate by k * 90 degrees, k uniform in 0..3 (exact, no interpolation; needs H == W to keep shape)."""

    def __call__(self, sample: dict) -> dict:
        k = int(torch.randint(0, 4, ()).item())
        return _with_image(sample, torch.rot90(sample["image"], k, dims=(-2, -1)))


class RandomRotation:
    """Rotate by an angle uniform in ``[-degrees, degrees]`` (bilinear, same size).

    ``fill=None`` fills the uncovered corners with the image mean (per channel).
    """

    def __init__(self, degrees: float, fill: float | None = None) -> None:
        self.degrees, self.fill = float(degrees), fill

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        angle = _uniform(-self.degrees, self.degrees)
        out = F.rotate(x, angle, interpolation=InterpolationMode.BILINEAR, fill=_fill_value(x, self.fill))
        return _with_image(sample, out)


class RandomCrop:
    """Crop a random ``size`` window (the image must be at least that large)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size2(size, "RandomCrop")

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        h, w = x.shape[-2:]
        th, tw = self.size
        if h < th or w < tw:
            raise InputError(f"RandomCrop: image {h}x{w} is smaller than the crop {th}x{tw}")
        top = int(torch.randint(0, h - th + 1, ()).item())
        left = int(torch.randint(0, w - tw + 1, ()).item())
        return _with_image(sample, F.crop(x, top, left, th, tw))


class RandomResizedCrop:
    """Crop a random area fraction ``scale`` with aspect ratio in ``ratio``, resize to ``size``.

    Same sampling as torchvision's RandomResizedCrop (10 tries, then a centre crop), drawn from
    torch's global RNG.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        self.size = _size2(size, "RandomResizedCrop")
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def _params(self, h: int, w: int) -> tuple[int, int, int, int]:
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(*self.scale)
            aspect = math.exp(_uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, ()).item())
                left = int(torch.randint(0, w - cw + 1, ()).item())
                return top, left, ch, cw
        side = min(h, w)
        return (h - side) // 2, (w - side) // 2, side, side

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        top, left, ch, cw = self._params(*x.shape[-2:])
        return _with_image(sample, F.resized_crop(x, top, left, ch, cw, list(self.size), antialias=True))


class SpeckleNoise:
    """Multiplicative speckle: ``x * g``, ``g ~ Gamma(L, 1/L)`` (mean 1, variance 1/L).

    Apply to *linear* intensities (before :class:`ToDecibel`). ``looks`` is the number of looks L
    (a float, or a ``(low, high)`` range drawn uniformly per sample).
    """

    def __init__(self, looks: float | tuple[float, float] = 4.0) -> None:
        lo, hi = (looks, looks) if isinstance(looks, (int, float)) else looks
        if lo <= 0 or hi < lo:
            raise InputError(f"SpeckleNoise: looks {looks} must be positive")
        self.looks = (float(lo), float(hi))

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        L = _uniform(*self.looks)
        # Gamma(shape=L, rate=L): mean 1, variance 1/L; sampled from the global torch generator.
        L_t = torch.tensor(L, dtype=x.dtype)
        g = torch.distributions.Gamma(L_t, L_t).sample(x.shape)
        return _with_image(sample, x * g)


class GaussianNoise:
    """Additive zero-mean Gaussian noise of standard deviation ``std``."""

    def __init__(self, std: float = 0.1) -> None:
        self.std = float(std)

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        return _with_image(sample, x + self.std * torch.randn_like(x))


class RandomAffine:
    """Random rotation, translation and scaling (MNIST-style augmentation), same output size.

    Parameters
    ----------
    degrees
        Rotation uniform in ``[-degrees, degrees]``.
    translate
        ``(fx, fy)``: shift uniform in ``[-fx W, fx W]`` and ``[-fy H, fy H]`` pixels.
    scale
        ``(low, high)`` zoom factor range.
    fill
        Value of uncovered pixels (0 suits MNIST's black background; ``None`` = image mean).
    """

    def __init__(
        self,
        degrees: float = 0.0,
        translate: tuple[float, float] | None = None,
        scale: tuple[float, float] | None = None,
        fill: float | None = 0.0,
    ) -> None:
        self.degrees, self.translate, self.scale, self.fill = float(degrees), translate, scale, fill

    def __call__(self, sample: dict) -> dict:
        x = sample["image"]
        h, w = x.shape[-2:]
        angle = _uniform(-self.degrees, self.degrees) if self.degrees else 0.0
        tx = ty = 0
        if self.translate is not None:
            tx = int(round(_uniform(-self.translate[0] * w, self.translate[0] * w)))
            ty = int(round(_uniform(-self.translate[1] * h, self.translate[1] * h)))
        s = _uniform(*self.scale) if self.scale is not None else 1.0
        out = F.affine(
            x,
            angle=angle,
            translate=[tx, ty],
            scale=s,
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
            fill=_fill_value(x, self.fill),
        )
        return _with_image(sample, out)
