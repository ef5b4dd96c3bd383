"""Synthetic cloud masks and DINCAE/DINEOF-style withholding of valid pixels for cross-validation.

Clouds are thresholded smooth random fields: white noise filtered in Fourier space to a red
spectrum (coherent blobs with ragged edges), evolved day to day by an AR(1) process so a cloud
system lasts a few days, and cut per day at a quantile so each day has a chosen cover.
"""
from __future__ import annotations

import math

import numpy as np

from oceandl.errors import InputError
from oceandl.interp.withhold import withhold_by_cloud_transfer  # noqa: F401 - re-exported: its home is the core

__all__ = ["cloud_masks", "withhold_by_cloud_transfer", "spectral_noise_filter"]


def spectral_noise_filter(
    ny: int, nx: int, scale: float, slope: float = 4.0, dy: float = 1.0, dx: float = 1.0
) -> np.ndarray:
    """Amplitude filter, shape ``(ny, nx // 2 + 1)``, for ``np.fft.rfft2`` of white noise.

    The filtered field has a 2-D power spectrum ``(1 + (2 pi k scale)^2)^(-slope / 2)``: flat at
    scales longer than ``scale`` and a power law ``k^-slope`` below it (a 1-D, along-track
    spectrum ``k^-(slope - 1)``). ``scale`` is in the units of the grid spacings ``dy``, ``dx``
    (pixels by default). The filter is normalised so the filtered field has unit variance.
    """
    ky = np.fft.fftfreq(ny, d=dy)[:, None]
    kx = np.fft.rfftfreq(nx, d=dx)[None, :]
    k2 = kx**2 + ky**2
    power = (1.0 + (2.0 * np.pi) ** 2 * k2 * scale**2) ** (-slope / 2.0)
    power[0, 0] = 0.0  # no mean: each day's field is centred
    # Parseval over the half spectrum: the rfft columns 1..nx/2-1 stand for two columns each.
    weight = np.full(kx.shape, 2.0)
    weight[0, 0] = 1.0
    if nx % 2 == 0:
        weight[0, -1] = 1.0
    var = (power * weight).sum() / (ny * nx)
    return np.sqrt(power / max(var, 1e-300))


def _daily_covers(n_time: int, cover: float, rng: np.random.Generator, sd: float = 0.5) -> np.ndarray:
    """Day-to-day cover fractions around ``cover``, with mean ``cover`` (shape ``(n_time,)``).

    An AR(1) series in logit space (cloudy spells last a few days), shifted by bisection so the
    mean of the daily covers equals ``cover``.
    """
    rho = math.exp(-1.0 / 4.0)
    e = np.empty(n_time)
    e[0] = rng.standard_normal() * sd
    for t in range(1, n_time):
        e[t] = rho * e[t - 1] + math.sqrt(1 - rho**2) * sd * rng.standard_normal()
    e -= e.mean()

    def covers(shift: float) -> np.ndarray:
        logit = math.log(cover / (1.0 - cover)) + shift + e
        return 1.0 / (1.0 + np.exp(-logit))

    lo, hi = -20.0, 20.0
    for _ in range(60):  # mean cover is increasing in the shift
        mid = 0.5 * (lo + hi)
        if covers(mid).mean() < cover:
            lo = mid
        else:
            hi = mid
    return covers(0.5 * (lo + hi))


def cloud_masks(
    n_time: int,
    ny: int,
    nx: int,
    cover: float = 0.5,
    seed: int = 0,
    persistence_days: float = 3.0,
    scale: float = 12.0,
) -> np.ndarray:
    """Spatially coherent, persistent synthetic cloud masks.

    Parameters
    ----------
    n_time, ny, nx : int
        Shape of the output ``(time, y, x)``; ``y`` index increases northward.
    cover : float
        Mean cloud cover over all days and pixels, in ``(0, 1)`` (realistic: 0.2 to 0.9). Each
        day's cover varies around it; the mean of the daily covers equals ``cover``.
    seed : int
        Seed; the same arguments give the same masks.
    persistence_days : float
        e-folding time, in days, of the mask's autocorrelation at a fixed pixel (0 = no memory).
    scale : float
        Correlation length of the cloud systems, in pixels (about 200 km / grid spacing).

    Returns
    -------
    numpy.ndarray of bool, shape ``(n_time, ny, nx)``
        True where a pixel is under cloud.
    """
    if not 0.0 < cover < 1.0:
        raise InputError(f"cloud cover {cover!r}: must be between 0 and 1 (exclusive)")
    if min(n_time, ny, nx) < 1:
        raise InputError(f"cloud_masks shape ({n_time}, {ny}, {nx}): every size must be >= 1")
    if persistence_days < 0 or scale <= 0:
        raise InputError(
            f"cloud_masks persistence_days={persistence_days}, scale={scale}: must be >= 0 and > 0"
        )
    rng = np.random.default_rng(seed)
    filt = spectral_noise_filter(ny, nx, scale, slope=4.0)
    # The mask of a thresholded Gaussian field has correlation (2/pi) arcsin(rho) (median
    # threshold); pick rho so the mask itself decorrelates with e-folding time persistence_days.
    target = math.exp(-1.0 / persistence_days) if persistence_days > 0 else 0.0
    rho = math.sin(0.5 * math.pi * target)
    innov = math.sqrt(1.0 - rho**2)
    covers = _daily_covers(n_time, cover, rng)
    # A weak poleward increase of cloudiness (a feature of mid-latitude climatologies).
    trend = 0.3 * np.linspace(-1.0, 1.0, ny)[:, None]

    out = np.empty((n_time, ny, nx), dtype=bool)
    field = None
    for t in range(n_time):
        noise = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((ny, nx))) * filt, s=(ny, nx))
        field = noise if field is None else rho * field + innov * noise
        day = field + trend
        # Per-day threshold at the quantile that gives this day's cover.
        thr = np.quantile(day, 1.0 - covers[t])
        out[t] = day > thr
    return out
