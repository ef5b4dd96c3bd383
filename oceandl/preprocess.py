"""Image preprocessing shared by training and prediction, described by a JSON-able spec.

The spec is stored in every classifier checkpoint, so ``oceandl classify`` applies exactly what
training applied: ``{"size": [H, W], "channels": C, "intensity": "linear" | "db",
"normalize": "per_image" | "none"}``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = ["DEFAULT_PREPROCESSING", "preprocess_batch", "check_spec"]

DEFAULT_PREPROCESSING = {"size": None, "channels": None, "intensity": "linear", "normalize": "none"}


def check_spec(spec: dict | None) -> dict:
    """Fill defaults and validate a preprocessing spec."""
    out = {**DEFAULT_PREPROCESSING, **(spec or {})}
    if out["intensity"] not in ("linear", "db"):
        raise InputError(f"intensity={out['intensity']!r}: use linear or db")
    if out["normalize"] not in ("per_image", "none"):
        raise InputError(f"normalize={out['normalize']!r}: use per_image or none")
    return out


def preprocess_batch(x: torch.Tensor, spec: dict | None) -> torch.Tensor:
    """Apply ``spec`` to images (N, C, H, W) (or (N, H, W)) and return float32 (N, C', H', W').

    ``db``: 10 log10 of the linear intensity (SAR sigma0; floored at 1e-6 so speckle zeros stay
    finite); ``per_image``: zero mean, unit standard deviation per image and channel.
    """
    spec = check_spec(spec)
    x = torch.as_tensor(x).float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise InputError(f"images of shape {tuple(x.shape)}: expected (N, H, W) or (N, C, H, W)")
    ch = spec["channels"]
    if ch and x.shape[1] != ch:
        if ch == 1:
            x = x.mean(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, ch, -1, -1)
        else:
            raise InputError(f"images have {x.shape[1]} channels, the model expects {ch}")
    if spec["size"] and tuple(x.shape[-2:]) != tuple(spec["size"]):
        x = F.interpolate(x, size=tuple(spec["size"]), mode="bilinear", align_corners=False, antialias=True)
    if spec["intensity"] == "db":
        x = 10 * torch.log10(x.clamp_min(1e-6))
    if spec["normalize"] == "per_image":
        mean = x.mean((-2, -1), keepdim=True)
        std = x.std((-2, -1), keepdim=True).clamp_min(1e-6)
        x = (x - mean) / std
    return x.contiguous()
