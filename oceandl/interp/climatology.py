"""Climatology: every gap takes the temporal mean of the observations at its pixel (the baseline)."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Interpolator

__all__ = ["Climatology"]


class Climatology(Interpolator):
    """Fill each gap with the per-pixel temporal mean of the observed values.

    The mean is the one the base class removes (pixels with fewer than 2 observations take the
    global mean), so the filled anomaly is 0. ``sigma`` is the per-pixel temporal standard
    deviation of the observations (ddof=1; the global std where a pixel has fewer than 2): the
    expected error of predicting the mean.
    """

    name: ClassVar[str] = "climatology"
    gives_sigma: ClassVar[bool] = True
    option_defaults: ClassVar[dict] = {}

    def _fit(self, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray) -> None:
        count = obs.sum(axis=0)
        sq = np.einsum("tij,tij->ij", x.astype(np.float64), x.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(sq / (count - 1))
        # x is scaled to unit global std, so 1 is the global fallback.
        self._sigma = np.where(count >= 2, std, 1.0).astype(np.float32)
        self._shape = x.shape

    def _reconstruct(self) -> tuple[np.ndarray, np.ndarray | None]:
        filled = np.zeros(self._shape, dtype=np.float32)
        sigma = np.broadcast_to(self._sigma, self._shape).copy()
        return filled, sigma
