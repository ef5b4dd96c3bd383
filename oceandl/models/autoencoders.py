"""The course's auto-encoders: dense, linear (no activations; spans the PCA subspace) and convolutional.

Auto-encoders take ``(in_channels, out_channels=in_channels, **options)`` and map
(N, in_channels, H, W) to a reconstruction (N, out_channels, H, W); ``encode`` gives the code.
``noise_std > 0`` makes them denoising: Gaussian noise is added to the input in training mode only.
``centre=True`` (the linear AE's default) makes a dense auto-encoder own the per-pixel mean of its
training images (a ``mean`` buffer, saved in the checkpoint): ``encode`` subtracts it, ``decode``
adds it back, and :func:`~oceandl.training.fit` sets it from the training images.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .blocks import ConvBNAct
from .reconstruction import pad_to_multiple

__all__ = ["DenseAE", "LinearAE", "ConvAE"]

OUTPUTS = ("sigmoid", "linear")


def _check_output(output: str) -> str:
    # any other word ("tanh", "Sigmoid") silently gave a linear output
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: must be one of {', '.join(OUTPUTS)}")
    return output


def _check_sizes(noise_std: float, **sizes) -> None:
    """Refuse a size below 1 or a noise level that is not a finite number >= 0 (:class:`InputError`).

    latent=0 built a model with an empty code (its output a constant), width=0 or latent_channels=0
    one that failed at its first image with torch's bare "expected weight to be at least 1 at
    dimension 0", latent=-3 a bare RuntimeError "negative dimension"; a negative or NaN noise_std
    silently trained a plain (not denoising) auto-encoder.
    """
    for name, value in sizes.items():
        many = isinstance(value, (tuple, list))
        for v in (value if many else [value]):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{name}={value!r}: must be {'integers' if many else 'an integer'} >= 1")
    if not (noise_std >= 0 and np.isfinite(noise_std)):
        raise InputError(f"noise_std={noise_std!r}: must be a finite number >= 0 (0: no noise)")


class _AEBase(nn.Module):
    task = "reconstruction"
    noise_std: float = 0.0

    def _corrupt(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise_std > 0:
            return x + self.noise_std * torch.randn_like(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(self._corrupt(x)))


class DenseAE(_AEBase):
    """Dense auto-encoder: flatten -> hidden layers (ReLU) -> latent -> mirrored decoder.

    ``output="sigmoid"`` suits images in [0, 1]; ``"linear"`` suits anomalies and normalised data
    (:func:`~oceandl.training.fit` refuses to train a sigmoid output on targets outside [0, 1]).

    ``centre=True`` (needs ``output="linear"`` and ``out_channels == in_channels``) gives the model
    a ``mean`` buffer (C, H, W), saved with its weights: :meth:`encode` subtracts it and
    :meth:`decode` adds it back, so the network works on anomalies while its input and output stay
    the images themselves (in the units of the data). :func:`~oceandl.training.fit` sets it from
    the training images at the start of a run (replacing any earlier mean, as a refit of PCA
    would); :meth:`fit_mean` sets it for a model trained otherwise. Until then it is 0 (no centring).
    """

    example_shape = (1, 28, 28)
    # a checkpoint written before the mean existed lacks it: the zero mean it was trained with stands in
    optional_state = ("mean",)

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, input_size=28,
                 hidden: Sequence[int] = (256,), latent: int = 32, output: str = "sigmoid",
                 noise_std: float = 0.0, activation: bool = True, centre: bool = False):
        super().__init__()
        self.output = _check_output(output)
        out_channels = out_channels or in_channels
        if centre and output != "linear":
            # the mean added back after a sigmoid leaves [0, 1] and undoes what the sigmoid bounds
            raise ValueError(f"centre=True needs output='linear' (got {output!r}): the mean is added back "
                             "to the decoder's output")
        if centre and out_channels != in_channels:
            raise ValueError(f"centre=True needs out_channels == in_channels (got {out_channels} and {in_channels}): "
                             "the input's mean is added back to the output")
        h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        _check_sizes(noise_std, input_size=input_size, hidden=hidden, latent=latent)
        self.out_shape = (out_channels, h, w)
        self.in_shape = (in_channels, h, w)
        self.noise_std = noise_std
        act = (lambda: nn.ReLU(inplace=True)) if activation else nn.Identity
        dims = [in_channels * h * w, *hidden, latent]
        enc: list[nn.Module] = [nn.Flatten()]
        for i in range(len(dims) - 1):
            enc.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                enc.append(act())
        dec_dims = [latent, *reversed(hidden), out_channels * h * w]
        dec: list[nn.Module] = []
        for i in range(len(dec_dims) - 1):
            dec.append(nn.Linear(dec_dims[i], dec_dims[i + 1]))
            if i < len(dec_dims) - 2:
                dec.append(act())
        if output == "sigmoid":
            dec.append(nn.Sigmoid())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.centre = bool(centre)
        # a buffer: in the state dict (the checkpoint's safetensors), moved with .to(device);
        # None (not in the state dict) without centring
        self.register_buffer("mean", torch.zeros(self.in_shape) if centre else None)

    def _check_shape(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            # else torch's bare "mat1 and mat2 shapes cannot be multiplied (4x837 and 784x256)"
            raise InputError(f"{type(self).__name__} was built for images of {self.in_shape} (channels, H, W), "
                             f"got {tuple(x.shape[1:])}: build it with input_size=(H, W) of the data")

    @torch.no_grad()
    def fit_mean(self, x: torch.Tensor | np.ndarray | Iterable[torch.Tensor]) -> "DenseAE":
        """Set :attr:`mean` to the per-pixel mean of images ``x`` (N, C, H, W), or of an iterable of
        such batches; NaN pixels (gaps) are left out of the mean, and a pixel with no finite value
        gets 0. Summed in float64. Returns the model.

        Raises
        ------
        InputError
            A model built without ``centre=True``, no images, or images of another shape than
            ``(in_channels, *input_size)``.
        """
        if self.mean is None:
            raise InputError(f"{type(self).__name__} was built with centre=False: it has no mean to fit "
                             "(build it with centre=True)")
        total = count = None
        n = 0
        for b in ([x] if isinstance(x, (torch.Tensor, np.ndarray)) else x):
            b = torch.as_tensor(b)
            self._check_shape(b)
            b = b.to(self.mean.device, torch.float64)
            ok = torch.isfinite(b)
            s, c = torch.where(ok, b, 0.0).sum(0), ok.sum(0)
            total, count = (s, c) if total is None else (total + s, count + c)
            n += len(b)
        if not n:
            raise InputError("fit_mean: no images")
        self.mean.copy_(total / count.clamp_min(1))
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, latent); with ``centre=True`` the mean is subtracted first.

        Raises
        ------
        InputError
            Images of another shape than ``(in_channels, *input_size)``.
        """
        self._check_shape(x)
        return self.encoder(x if self.mean is None else x - self.mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N, C_out, H, W); with ``centre=True`` the mean is added back."""
        out = self.decoder(z).view(z.shape[0], *self.out_shape)
        return out if self.mean is None else out + self.mean


class LinearAE(DenseAE):
    """Linear auto-encoder: one linear encoder and decoder, no activation.

    Trained with a squared loss on centred data, its decoder spans the leading ``latent``-dimensional
    PCA subspace (Baldi & Hornik 1989); oceandl's tests check the principal angles. It centres
    itself (``centre=True``, the default): :func:`~oceandl.training.fit` stores the training images'
    per-pixel mean in the model, which ``encode`` subtracts and ``decode`` adds back, so the model
    takes and gives images as PCA(k) does (mean + projection of the anomaly), also on new images and
    after a checkpoint round trip. Trained uncentred (``centre=False``), a code unit is spent on the
    mean direction: on 1,200 MNIST images (30 epochs) the mean principal angle to PCA(16) was 19.6
    degrees (6.6 centred) and the explained variance on 400 new images 0.548 (0.579; PCA's 0.582).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, input_size=28,
                 latent: int = 16, noise_std: float = 0.0, centre: bool = True):
        super().__init__(in_channels, out_channels, input_size=input_size, hidden=(), latent=latent,
                         output="linear", noise_std=noise_std, activation=False, centre=centre)


class ConvAE(_AEBase):
    """Fully convolutional auto-encoder: ``depth`` stride-2 stages down, transposed convs up.

    (N, in_channels, H, W) -> (N, out_channels, H, W) for any H, W: the input is zero-padded
    (bottom/right) to a multiple of ``2**depth`` and the output cropped back, as the reconstruction
    models do. The code is (N, latent_channels, ceil(H/2**depth), ceil(W/2**depth)). With
    ``latent=k`` (and ``input_size``) a dense bottleneck makes the code a k-vector, so the
    model compares with PCA(k) at the same code size. ``output="sigmoid"`` (the default) suits
    images in [0, 1], ``"linear"`` anomalies and normalised data.
    """

    example_shape = (1, 28, 28)

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 32, depth: int = 2,
                 latent_channels: int = 8, output: str = "sigmoid", noise_std: float = 0.0,
                 latent: int | None = None, input_size=None):
        super().__init__()
        self.output = _check_output(output)
        out_channels = out_channels or in_channels
        _check_sizes(noise_std, width=width, latent_channels=latent_channels, **({"latent": latent} if latent is not None else {}))
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
            raise InputError(f"depth={depth!r}: must be an integer >= 0")
        self.noise_std = noise_std
        self.multiple = 2**depth
        enc: list[nn.Module] = []
        cin = in_channels
        for i in range(depth):
            cout = width * 2**i
            enc += [ConvBNAct(cin, cout), ConvBNAct(cout, cout, stride=2)]
            cin = cout
        enc.append(nn.Conv2d(cin, latent_channels, 1))
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, cin, 1), nn.ReLU(inplace=True)]
        for i in reversed(range(depth)):
            cout = width * 2 ** max(i - 1, 0)
            dec += [nn.ConvTranspose2d(cin, cout, 2, stride=2), nn.ReLU(inplace=True), ConvBNAct(cout, cout)]
            cin = cout
        dec.append(nn.Conv2d(cin, out_channels, 3, padding=1))
        if output == "sigmoid":
            dec.append(nn.Sigmoid())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.bottleneck = None
        if latent is not None:
            if input_size is None:
                raise ValueError("ConvAE(latent=k) needs input_size=(H, W)")
            h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            # ceil: the stride-2 stages of a padded input (h // 2**depth did not fit the encoder's output)
            self.code_shape = (latent_channels, -(-h // 2**depth), -(-w // 2**depth))
            n = latent_channels * self.code_shape[1] * self.code_shape[2]
            self.bottleneck = nn.ModuleDict({"down": nn.Linear(n, latent), "up": nn.Linear(latent, n)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # H, W not multiples of 2**depth (17 x 17, or 28 x 28 at depth 3) came back 20 x 20 / 32 x 32:
        # not the registry's (N, out_channels, H, W), and fit's loss failed on the shapes
        h, w = x.shape[-2:]
        return self.decode(self.encode(self._corrupt(x)))[..., :h, :w]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> code (N, latent_channels, h, w), or (N, latent) with a bottleneck; H, W are
        zero-padded to multiples of ``2**depth``."""
        z = self.encoder(pad_to_multiple(x, self.multiple)[0])
        return self.bottleneck["down"](z.flatten(1)) if self.bottleneck is not None else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Code from :meth:`encode` -> (N, C_out, h * 2**depth, w * 2**depth)."""
        if self.bottleneck is not None:
            z = torch.relu(self.bottleneck["up"](z)).view(z.shape[0], *self.code_shape)
        return self.decoder(z)
