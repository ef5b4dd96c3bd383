"""Image preprocessing shared by training and prediction, described by a JSON-able spec.

The spec is stored in every classifier checkpoint, so ``oceandl classify`` applies exactly what
training applied: ``{"size": [H, W], "channels": C, "intensity": "linear" | "db",
"normalize": "per_image" | "none"}``, and ``"fit": "crop" | "pad"`` when the images were brought to
that size so (absent: ``"stretch"``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = ["DEFAULT_PREPROCESSING", "MAX_SIZE", "preprocess_batch", "check_spec", "convert_channels", "pixels_to_float",
           "fit_size"]

DEFAULT_PREPROCESSING = {"size": None, "channels": None, "intensity": "linear", "normalize": "none"}

#: the largest image side (pixels) a spec may ask for: 16384 x 16384 float32 is 1 GiB per band and
#: image, past any classifier's input; an edited size of 100000 ran out of memory (37.3 GiB) in the
#: reader instead of being refused
MAX_SIZE = 16384


def check_spec(spec: dict | None) -> dict:
    """Fill defaults and validate a preprocessing spec.

    Parameters
    ----------
    spec : dict or None
        ``size`` (int or ``[H, W]``, each side 1 to :data:`MAX_SIZE`), ``channels``, ``intensity``,
        ``normalize`` and ``fit``; missing keys take :data:`DEFAULT_PREPROCESSING`.

    Returns
    -------
    dict
        The spec with every key, ``size`` as ``[H, W]`` or ``None``.

    Raises
    ------
    InputError
        A value of the wrong type or out of range, naming the key.
    """
    out = {**DEFAULT_PREPROCESSING, **(spec or {})}
    size = out["size"]
    if size is not None:
        # an int (as the readers and `--size` take) failed as a bare TypeError in preprocess_batch
        size = [size, size] if isinstance(size, (int, np.integer)) else list(size)
        # True was taken as a side of 1 pixel
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
                                     for s in size):
            raise InputError(f"size={out['size']!r}: use a positive int or [H, W]")
        if max(size) > MAX_SIZE:
            # refused before any image is read (else an out-of-memory exit 1 in the reader)
            raise InputError(f"size={out['size']!r}: at most {MAX_SIZE} pixels a side")
        out["size"] = [int(s) for s in size]
    ch = out["channels"]
    if ch is not None and (isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or ch < 1):
        # else "images: cannot convert 1 bands to x" (a string), or a bare error for 0 or -1
        raise InputError(f"channels={ch!r}: use a positive int (1 or 3 to convert) or None")
    if out["intensity"] not in ("linear", "db"):
        raise InputError(f"intensity={out['intensity']!r}: use linear or db")
    if out["normalize"] not in ("per_image", "none"):
        raise InputError(f"normalize={out['normalize']!r}: use per_image or none")
    # how images of another shape reach `size` (the readers' fit=); absent: stretch, as before it was kept
    if out.get("fit", "stretch") not in ("stretch", "crop", "pad"):
        raise InputError(f"fit={out['fit']!r}: use stretch, crop or pad")
    return out


def pixels_to_float(arr: np.ndarray) -> np.ndarray:
    """float32 pixels by the image readers' rule: unsigned integers (uint8 from PIL, uint16
    GeoTIFFs) to [0, 1] by their type's maximum, booleans to 0/1, complex (SAR SLC: CInt16,
    CFloat32) to the detected intensity |z|^2, everything else as stored."""
    if np.iscomplexobj(arr):
        # the cast kept the real part (with a ComplexWarning): a signed amplitude, not an
        # intensity, so a Sentinel-1 SLC pixel 3+4j became 3 (not 25) and half of them were
        # negative, i.e. the -60 dB floor after --intensity db
        return (arr.real.astype(np.float32) ** 2 + arr.imag.astype(np.float32) ** 2)
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32, copy=False)


def convert_channels(x: torch.Tensor, channels: int, what: str) -> torch.Tensor:
    """Images (N, C, H, W) with ``channels`` bands: RGB to grey by luminance (0.299 R + 0.587 G +
    0.114 B), two bands to one by the first, one to three repeated, more than three to three by the
    first three.

    The one rule of the image readers and of :func:`preprocess_batch`, so that arrays and the files
    a model is trained on or ``oceandl classify`` reads give the same tensor (RGB to grey was the
    plain mean here and luminance in the readers). ``what`` names the images in the error.
    """
    c = x.shape[1]
    if c == channels:
        return x
    if channels == 1:
        if c >= 3:
            # on the images' device: classify() of RGB images held on a GPU failed with torch's
            # "Expected all tensors to be on the same device"
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
            return torch.einsum("c,nchw->nhw", w, x[:, :3])[:, None]
        return x[:, :1]
    if channels == 3 and c == 1:
        return x.expand(-1, 3, -1, -1)
    if channels == 3 and c > 3:
        return x[:, :3]
    raise InputError(f"{what}: cannot convert {c} bands to {channels}")


def preprocess_batch(x: torch.Tensor, spec: dict | None) -> torch.Tensor:
    """Apply ``spec`` to images (N, C, H, W) (or (N, H, W)) and return float32 (N, C', H', W').

    Channels are converted as the image readers do (RGB to grey: 0.299 R + 0.587 G + 0.114 B; two
    bands to one: the first; one to three: repeated; more than three to three: the first three).
    ``db``: 10 log10 of the linear intensity (SAR sigma0; floored at 1e-6 so speckle zeros stay
    finite; images whose median is negative, in dB already, are an InputError); ``per_image``:
    zero mean, unit standard deviation per image and channel.
    """
    spec = check_spec(spec)
    x = torch.as_tensor(x).float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise InputError(f"images of shape {tuple(x.shape)}: expected (N, H, W) or (N, C, H, W)")
    if spec["channels"]:
        x = convert_channels(x, spec["channels"], "images")
    if spec["size"] and tuple(x.shape[-2:]) != tuple(spec["size"]):
        if spec.get("fit", "stretch") != "stretch":
            # a model trained on padded (or cropped) images was given them stretched
            x = torch.stack([fit_size(xi, tuple(spec["size"]), spec["fit"]) for xi in x])
        else:
            x = F.interpolate(x, size=tuple(spec["size"]), mode="bilinear", align_corners=False, antialias=True)
    if spec["intensity"] == "db":
        _check_linear(x)
        x = 10 * torch.log10(x.clamp_min(1e-6))
    if spec["normalize"] == "per_image":
        mean = x.mean((-2, -1), keepdim=True)
        std = x.std((-2, -1), keepdim=True).clamp_min(1e-6)
        x = (x - mean) / std
    return x.contiguous()


def _check_linear(x: torch.Tensor) -> None:
    """Refuse images (N, C, H, W) that are mostly negative, before ``intensity=db`` takes their log.

    Linear intensities (sigma0) are >= 0 but for a few pixels that thermal-noise subtraction
    leaves slightly negative, which the 1e-6 floor takes; an image whose median is negative is in
    dB already (a SNAP export: -35 to 0 dB). Floored whole to -60 dB, every such image was the same
    constant: a model trained on them was at chance, and classify gave each the same prediction.
    """
    if not len(x):
        return
    med = x.flatten(1).median(dim=1).values
    bad = med < 0
    if bad.any():
        raise InputError(
            f"intensity=db takes linear intensities (sigma0 >= 0), but {int(bad.sum())} of {len(x)} image(s) are "
            f"mostly negative (median {float(med[bad].min()):.3g}): already in dB? Train on them with "
            "--intensity linear (intensity='linear'); a model trained with --intensity db needs them linear "
            "(10**(dB/10))")


def fit_size(x: torch.Tensor, size: tuple[int, int], fit: str) -> torch.Tensor:
    """Resize ``(C, H, W)`` to ``size``: ``stretch``, ``crop`` (cover, centre-crop) or ``pad`` (fit, pad).

    The image readers' rule (their ``fit=``), also applied by :func:`preprocess_batch` to arrays.
    """
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    if fit == "stretch":
        return TF.resize(x, [th, tw], antialias=True)
    if fit == "crop":
        s = max(th / h, tw / w)
        nh, nw = max(th, round(h * s)), max(tw, round(w * s))
        x = TF.resize(x, [nh, nw], antialias=True)
        return TF.center_crop(x, [th, tw])
    # pad: keep the aspect ratio, fill the margins with the border mean (the background).
    s = min(th / h, tw / w)
    nh, nw = min(th, max(1, round(h * s))), min(tw, max(1, round(w * s)))
    x = TF.resize(x, [nh, nw], antialias=True)
    border = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], dim=1).mean(dim=1)
    out = border[:, None, None].expand(x.shape[0], th, tw).clone()
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[:, top : top + nh, left : left + nw] = x
    return out
