"""The ``.oceandl`` accessor of xarray DataArrays: ``da.oceandl.interpolate()``, ``da.oceandl.eof()``."""
from __future__ import annotations

import xarray as xr

__all__ = ["OceanDLAccessor"]


@xr.register_dataarray_accessor("oceandl")
class OceanDLAccessor:
    """oceandl methods on a (time, lat, lon) DataArray; holds nothing but the DataArray."""

    def __init__(self, obj: xr.DataArray):
        self._obj = obj

    def interpolate(self, method: str = "dineof", **kwargs):
        """Fill the gaps; see :func:`oceandl.interp.interpolate` (same keywords)."""
        from oceandl.interp import interpolate

        return interpolate(self._obj, method, **kwargs)

    def eof(self, n_modes: int = 10, **kwargs):
        """EOF analysis; see :func:`oceandl.interp.eof.eof` (``weights``, ``center``)."""
        from oceandl.interp.eof import eof

        return eof(self._obj, n_modes=n_modes, **kwargs)
