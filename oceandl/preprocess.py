"""Image preprocessing shared by training and prediction, described by a JSON-able spec.

The spec is stored in every classifier checkpoint, so ``oceandl classify`` applies exactly what
training applied: ``{"size": [H, W], "channels": C, "intensity": "linear" | "db",
"normalize": "per_image" | "none"}``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = ["DEFAULT_PREPROCESSING", "preprocess_batch", "check_spec"]

DEFAULT_PREPROCESSING = {"size": None, "channels": None, "intensity": "linear", "normalize": "none"}


def check_spec(spec: dict | None) -> dict:
    """Fill defaults and validate a preprocessing spec."""
    out = {**DEFAULT_PREPROCESSING, **(spec or {})}
    size = out["size"]
    if size is not None:
        # an int (as the readers and `--size` take) failed as a bare TypeError in preprocess_batch
        size = [size, size] if isinstance(size, (int, np.integer)) else list(size)
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in size):
            raise InputError(f"size={out['size']!r}: use a positive int or [H, W]")
        out["size"] = [int(s) for s in size]
    if out["intensity"] not in ("linear", "db"):
        raise InputError(f"intensity={out['intensity']!r}: use linear or db")
    if out["normalize"] not in ("per_image", "none"):
        raise InputError(f"normalize={out['normalize']!r}: use per_image or none")
    return out


def preprocess_batch(x: torch.Tensor, spec: dict | None) -> torch.Tensor:
    """Apply ``spec`` to images (N, C, H, W) (or (N, H, W)) and return float32 (N, C', H', W').

    Channels are converted as the image readers do (RGB to grey: 0.299 R + 0.587 G + 0.114 B; two
    bands to one: the first; one to three: repeated; more than three to three: the first three).
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
        # The image readers' rule (datasets.images._convert_channels), so that arrays and the files a
        # model is trained on or `oceandl classify` reads give the same tensor: RGB to grey was the
        # plain mean here and the 0.299/0.587/0.114 luminance in the readers, 2 bands the mean of
        # both here and band 1 there.
        if ch == 1:
            if x.shape[1] >= 3:
                w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype)
                x = torch.einsum("c,nchw->nhw", w, x[:, :3])[:, None]
            else:
                x = x[:, :1]
        elif ch == 3 and x.shape[1] == 1:
            x = x.expand(-1, ch, -1, -1)
        elif ch == 3 and x.shape[1] > 3:
            x = x[:, :3]
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
