"""Batch-level data augmentation on tensors (N, C, H, W), on whichever device the batch lives.

Augmenting whole batches on the device keeps the data path out of the way of the model step
(per-sample PIL transforms are what makes the course loop slow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["BatchAugment", "AUGMENTATIONS"]

AUGMENTATIONS = ("translate", "rotate", "scale", "flip", "rot90", "noise", "speckle")


@dataclass(frozen=True)
class BatchAugment:
    """Random augmentations applied per sample to a batch.

    Parameters
    ----------
    names : subset of :data:`AUGMENTATIONS`. ``rot90`` turns square images by a random multiple of
        90 degrees, others by 0 or 180 degrees.
    translate : max shift as a fraction of the image size.
    degrees : max rotation angle.
    scale : max relative zoom (zoom in [1 - scale, 1 + scale]).
    noise : std of additive Gaussian noise (in normalised units).
    looks : equivalent number of looks of the multiplicative gamma speckle.
    """

    names: tuple[str, ...] = ()
    translate: float = 0.1
    degrees: float = 10.0
    scale: float = 0.1
    noise: float = 0.05
    looks: float = 4.0

    def __post_init__(self):
        bad = [n for n in self.names if n not in AUGMENTATIONS]
        if bad:
            from ..errors import InputError

            raise InputError(f"unknown augmentation {bad[0]!r}; valid: {', '.join(AUGMENTATIONS)}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` (N, C, H, W) with the global torch RNG (seeded per epoch by the engine):
        :meth:`geometric`, then :meth:`corrupt`."""
        return self.corrupt(self.geometric(x))

    def geometric(self, x: torch.Tensor) -> torch.Tensor:
        """The geometric augmentations (translate, rotate, scale, flip, rot90) of ``x`` (N, C, H, W):
        what an auto-encoder's target follows too."""
        if not self.names:
            return x
        n, dev = x.shape[0], x.device
        names = set(self.names)
        if names & {"translate", "rotate", "scale"}:
            rand = lambda: torch.rand(n, device=dev) * 2 - 1  # noqa: E731
            ang = rand() * math.radians(self.degrees) if "rotate" in names else torch.zeros(n, device=dev)
            zoom = 1 + rand() * self.scale if "scale" in names else torch.ones(n, device=dev)
            tx = rand() * 2 * self.translate if "translate" in names else torch.zeros(n, device=dev)
            ty = rand() * 2 * self.translate if "translate" in names else torch.zeros(n, device=dev)
            cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
            theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if "flip" in names:
            fh = torch.rand(n, 1, 1, 1, device=dev) < 0.5
            fv = torch.rand(n, 1, 1, 1, device=dev) < 0.5
            x = torch.where(fh, x.flip(-1), x)
            x = torch.where(fv, x.flip(-2), x)
        if "rot90" in names:
            # a quarter turn of an H x W image is W x H: non-square images turn by 0 or 180 degrees
            # (the shape-keeping turns, as in predict's TTA), where they were left unaugmented
            square = x.shape[-1] == x.shape[-2]
            k = torch.randint(0, 4, (n,), device=dev) if square else 2 * torch.randint(0, 2, (n,), device=dev)
            out = x.clone()
            for r in range(1, 4):
                sel = k == r
                if sel.any():
                    out[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
            x = out
        return x

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The corruptions (speckle, noise) of ``x`` (N, C, H, W): on the input only; an
        auto-encoder learns to remove them, not to reproduce them."""
        names = set(self.names)
        if not names & {"speckle", "noise"}:
            return x
        dev = x.device
        if "speckle" in names:
            gamma = torch.distributions.Gamma(torch.tensor(self.looks, device=dev), torch.tensor(self.looks, device=dev))
            x = x * gamma.sample(x.shape)
        if "noise" in names:
            x = x + self.noise * torch.randn_like(x)
        return x
