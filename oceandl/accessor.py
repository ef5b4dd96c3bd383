"""The ``.oceandl`` accessor of xarray objects: ``da.oceandl.interpolate()``, ``da.oceandl.eof()``,
``da.oceandl.classify()``, and the same on a Dataset, which picks its variable as the commands'
``--var`` does."""
from __future__ import annotations

import xarray as xr

__all__ = ["OceanDLAccessor", "OceanDLDatasetAccessor"]


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
        """EOF analysis; see :func:`oceandl.interp.eof.eof` (``weights``, ``center``, ``solver``, ``seed``)."""
        from oceandl.interp.eof import eof

        return eof(self._obj, n_modes=n_modes, **kwargs)

    def classify(self, model, **kwargs):
        """Classify a stack of images, (sample, y, x) or (sample, channel, y, x), with the checkpoint
        folder ``model``; see :func:`oceandl.classify` (same keywords). Returns its predictions
        Dataset (``predicted``, ``label``, ``confidence``, ``probability``...) along the sample dim."""
        from oceandl.classification import classify

        return classify(self._obj, model, **kwargs)


@xr.register_dataset_accessor("oceandl")
class OceanDLDatasetAccessor:
    """oceandl methods on a Dataset (an opened file); holds nothing but the Dataset.

    ``var`` names the field; without it the field is found as ``oceandl interpolate`` finds it
    without ``--var`` (:func:`oceandl.io.find_variable`: a ``sea_surface_temperature``
    standard name, then the only 3-D variable that is not a flag or an ancillary variable, with a
    warning naming the others when there is a choice). The results are those of the variable's
    own accessor, ``ds[var].oceandl``: the file's other variables are not touched.
    """

    def __init__(self, obj: xr.Dataset):
        self._obj = obj

    def _field(self, var: str | None, min_quality: int | None = None) -> xr.DataArray:
        from oceandl.io import _quality_masked, find_variable

        name = find_variable(self._obj, var, label="Dataset")
        da = self._obj[name]
        return da if min_quality is None else _quality_masked(self._obj, da, min_quality, f"Dataset: variable {name!r}")

    def interpolate(self, method: str = "dineof", *, var: str | None = None, min_quality: int | None = None,
                    **kwargs):
        """Fill the gaps of variable ``var``; see :func:`oceandl.interp.interpolate` (same keywords).

        ``min_quality`` (GHRSST L2P/L3, as ``oceandl interpolate --min-quality``): values whose
        ``quality_level`` is below it are gaps (4: the acceptable and best retrievals).
        ``fit_on`` may be a Dataset too: its variable ``var`` (found as in this one, with the same
        ``min_quality``) is the field fitted, as ``oceandl interpolate --fit-on`` reads its file.
        ``aux`` may name variables of this Dataset (a name or a list of names), as ``--aux`` does;
        ``"NAME=VAR"`` (or ``{NAME: "VAR"}``) gives its VAR as the covariate NAME (a saved model's
        or fit's, named otherwise in this Dataset);
        ``mask`` too (a land-sea mask, e.g. ``mask="land"``; see :func:`oceandl.interp.interpolate`),
        as ``--mask`` does.

        Raises
        ------
        InputError
            ``var`` absent (close names suggested), or no field found / several without ``var``;
            ``min_quality`` without a ``quality_level`` variable on the field's dims; an ``aux``
            name absent.
        """
        if isinstance(kwargs.get("mask"), str):
            from oceandl.io import find_variable

            kwargs["mask"] = self._obj[find_variable(self._obj, kwargs["mask"], label="Dataset")]
        if isinstance(kwargs.get("fit_on"), xr.Dataset):
            kwargs["fit_on"] = kwargs["fit_on"].oceandl._field(var, min_quality)
        aux = kwargs.get("aux")
        names = [aux] if isinstance(aux, str) else aux
        if isinstance(names, dict) and any(isinstance(a, str) for a in names.values()):
            # {NAME: "VAR"}: the covariate a model knows as NAME, this Dataset's VAR (named otherwise here)
            names = [f"{k}={a}" if isinstance(a, str) else a.rename(k) for k, a in names.items()]
        if isinstance(names, (list, tuple)) and any(isinstance(a, str) for a in names):
            from oceandl.io import aux_mapping, find_variable

            def read(entry: str):
                # as --aux reads them: found by name (close names suggested), the field's quality mask not applied;
                # NAME=VAR: VAR given as NAME (a saved model's covariate, named otherwise in this Dataset)
                key, name = aux_mapping(entry)
                a = self._obj[find_variable(self._obj, name, label="Dataset")]
                return a if key is None else a.rename(key)

            # names beside DataArrays too (a name among them was "an auxiliary variable has no name")
            kwargs["aux"] = [read(a) if isinstance(a, str) else a for a in names]
        return self._field(var, min_quality).oceandl.interpolate(method, **kwargs)

    def eof(self, n_modes: int = 10, *, var: str | None = None, **kwargs):
        """EOF analysis of variable ``var`` (found as by :meth:`interpolate`); see :func:`oceandl.interp.eof.eof`."""
        return self._field(var).oceandl.eof(n_modes, **kwargs)

    def classify(self, model, *, var: str = "image", **kwargs):
        """Classify the image stack ``var`` (sample, [channel,] y, x), as ``oceandl classify STACK.nc
        --var`` does; see :func:`oceandl.classify` (same keywords). The Dataset's 1-D variables along
        the sample dim (each image's time, position) are kept in the predictions."""
        from oceandl.classification import classify
        from oceandl.datasets.images import NetCDFImageDataset

        return classify(NetCDFImageDataset(self._obj, var=var, label_var=None), model, **kwargs)
