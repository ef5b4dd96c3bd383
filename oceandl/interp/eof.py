"""EOF (PCA) analysis of a complete field, and gap filling by projection on EOFs.

:func:`eof` / :class:`EOF` follow the conventions of the ``eofs`` package (Dawson 2016): the data
are centred in time, multiplied by area weights (``sqrt(cos(lat))`` for ``weights="coslat"``),
land columns (NaN) are dropped; with the SVD ``A = U S V^T`` of the weighted anomaly
(time, space), the EOFs are the rows of ``V^T`` (still weighted, unit norm), the PCs ``U S``
(unscaled), the eigenvalues ``S^2 / (n_time - 1)``.

:class:`EOFInterpolator` (method ``"eof"``) fills gaps with the gappy-EOF projection of
Everson & Sirovich (1995): EOFs of the zero-filled anomaly, then for each time step the
amplitudes that best fit its observed pixels (ridge-regularised least squares), optionally
repeated (EM: refill, recompute the EOFs, re-project).
"""
from __future__ import annotations

import json
import numbers
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from oceandl.errors import InputError, warn
from oceandl.utils import software_versions

from .base import (_MIN_PIXEL_OBS, Interpolator, _input_attrs, _label, _lon_like, _squeeze_levels, append_history,
                   as_dataarray, canonical_dims, check_units_field, oceandl_version)
from .climatology import check_harmonics, seasonal_cycle

#: a box that sees a combination of the modes at under this fraction of its share of the grid is warned of (cut())
_CUT_SEEN = 0.1

__all__ = ["EOF", "eof", "EOFInterpolator"]


def _is_latitude(name, c) -> bool:
    """Whether coordinate ``c`` is named or labelled (units, standard_name) as a latitude."""
    units = str(c.attrs.get("units", "")).lower()
    if c.attrs.get("standard_name") == "latitude" or units.startswith("degree") and units.endswith(("north", "_n")):
        return True
    from oceandl.io import in_degrees

    # labelled as something else (a projection's y in km, a row index of units "1"): not by its name
    return in_degrees(c.attrs) and str(name).lower() in ("lat", "latitude", "nav_lat", "lats")


def _latitude_coord(da: xr.DataArray, lat, lon) -> str | None:
    """The coordinate holding latitudes in degrees on the grid: the ``lat`` dim's own, or one
    along ``lat`` (and ``lon``) named or labelled as a latitude (``lat(y)``, ``nav_lat(y, x)``)."""
    from oceandl.io import source_grid

    grid = source_grid(da)
    if grid is not None:
        # read by open_field, whose 'lat' is the file's latitudes, or the row index 0, 1, 2... of a
        # file without any (labelled degrees_north all the same): cos(row index) weighted it silently
        ydim, xdim = grid.dims["lat"], grid.dims["lon"]
        if not any(ydim in c.dims and set(c.dims) <= {ydim, xdim} and _is_latitude(n, c)
                   for n, c in grid.coords.items()):
            raise InputError(f"eof: weights='coslat' needs latitudes in degrees, but the file has no latitude "
                             f"coordinate along {ydim!r} (a lat/latitude/nav_lat variable, or units degrees_north); "
                             "add one, or pass weights=None (oceandl eof --weights none)")
    if lat in da.coords and str(lat).lower() not in ("y", "j", "nj", "row") and _is_latitude(lat, da[lat]):
        return lat
    for name, c in da.coords.items():
        if name == lat or lat not in c.dims or not set(c.dims) <= {lat, lon}:
            continue
        if _is_latitude(name, c):
            return str(name)
    from oceandl.io import in_degrees

    # an unlabelled coordinate is taken for latitudes (checked within +-90 below); one labelled in
    # other units (a projection's km, a row index's "1") is not
    return lat if lat in da.coords and in_degrees(da[lat].attrs) else None


def _weights(da: xr.DataArray, dims, weights) -> np.ndarray:
    """Area weights of shape (lat, lon) (ones when ``weights`` is None)."""
    _, lat, lon = dims
    shape = (da.sizes[lat], da.sizes[lon])
    if weights is None:
        return np.ones(shape)
    if isinstance(weights, str):
        if weights != "coslat":
            raise InputError(f"eof: weights must be 'coslat', None or an array, got {weights!r}")
        name = _latitude_coord(da, lat, lon)
        if name is None:
            raise InputError(f"eof: weights='coslat' needs a coordinate {lat!r} (latitude in degrees), or "
                             f"a latitude coordinate along {lat!r} (units degrees_north); or pass weights=None "
                             "(oceandl eof --weights none)")
        latv = da[name].broadcast_like(da.isel({dims[0]: 0}, drop=True)).transpose(lat, lon).values
        latv = np.asarray(latv, dtype=np.float64)
        if np.nanmax(np.abs(latv)) > 90:
            raise InputError(f"eof: coordinate {name!r} has values beyond +-90; it is not a latitude in degrees")
        # a latitude missing over land (2-D nav_lat fill values) weighs 0: those pixels are land anyway
        return np.sqrt(np.clip(np.cos(np.deg2rad(np.nan_to_num(latv, nan=90.0))), 0.0, None))
    if isinstance(weights, xr.DataArray):
        if not set(weights.dims) <= {lat, lon}:  # else a bare ValueError from xarray's transpose
            raise InputError(f"eof: weights has dims {tuple(weights.dims)}; expected a subset of ({lat!r}, {lon!r})")
        from oceandl.metrics.interpolation import match_axis

        # matched by coordinate, then broadcast by position: broadcast_like's outer join put weights
        # with latitudes ascending on a field with them descending in sorted order, while the
        # result labelled them with the field's (each row weighted with its mirror's weight), and
        # weights on part of the grid became NaN ("must be finite")
        if lon in weights.dims:  # area weights from a grid file in 0..360 for a field in -180..180 were refused
            weights = _lon_like(weights, da, lon)
        for d in weights.dims:
            if weights.sizes[d] != da.sizes[d]:
                raise InputError(f"eof: weights has {weights.sizes[d]} values along {d!r}, the field {da.sizes[d]}")
            if d in weights.indexes and d in da.indexes:
                pos = match_axis(weights.indexes[d], da.indexes[d])
                if pos is None:
                    raise InputError(f"eof: the weights' coordinate {d!r} differs from the field's")
                weights = weights.isel({d: pos})
        w = weights.variable.set_dims({lat: shape[0], lon: shape[1]}).transpose(lat, lon).values
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 1 and w.shape[0] == shape[0]:
            w = w[:, None]
        try:
            w = np.broadcast_to(w, shape)
        except ValueError:
            raise InputError(f"eof: weights of shape {np.shape(weights)} do not fit the grid {shape}") from None
    w = np.asarray(w, dtype=np.float64)
    # NaN is allowed where the field is land (area or mask weights are often NaN there; eofs takes
    # them): EOF checks that none falls on an analysed pixel
    if np.isinf(w).any() or (w < 0).any():
        raise InputError("eof: weights must be finite and non-negative")
    return w.copy()


_SOLVERS = ("auto", "full", "randomized")
_RANDOMIZED_MIN_SIDE = 500  # below it a full SVD takes well under a second


def _solver_for(shape: tuple[int, int], k: int, solver: str) -> str:
    """``"full"`` or ``"randomized"``: ``auto`` takes the randomized one for a large matrix of
    which few modes are kept (min side over 500 and k at most a tenth of it), as scikit-learn's
    and xeofs' ``auto`` do; there it is faster, the more so the longer the series (2.3x at 730
    x 96^2, 6.5-9.4x at 3650 x 128^2 on 2 cores), and agrees with the full SVD to about 1e-7."""
    if solver not in _SOLVERS:
        raise InputError(f"eof: solver must be one of {', '.join(_SOLVERS)}, got {solver!r}")
    if solver != "auto":
        return solver
    side = min(shape)
    return "randomized" if side > _RANDOMIZED_MIN_SIDE and k <= side // 10 else "full"


def _truncated_svd(A: np.ndarray, k: int, solver: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading ``k`` singular triplets of A (time, n): U (time, k), S (k,), Vt (k, n), float64.

    ``"randomized"`` is :func:`torch.svd_lowrank` (Halko et al. 2011) with ``3k + 10`` columns
    and 10 subspace iterations, its random start drawn from ``seed`` (the global torch generator
    is left as it was). On 730 days of the synthetic SST (96 x 96, 10 modes, eigenvalues 1.2 %,
    1.0 %, 0.7 %... of the first), 2k + 10 columns and 7 iterations left the EOFs 6e-5 from the
    full SVD's; these settings leave 2e-7 (eigenvalues 1e-11) for a few percent more time.
    Signs: each EOF's largest-magnitude value is positive (an SVD's sign is arbitrary; fixing it
    makes results reproducible across solvers, sizes and library versions).
    """
    if solver == "randomized":
        import torch

        q = min(3 * k + 10, *A.shape)
        from oceandl.utils import seed_torch, torch_rng_scope

        with torch_rng_scope():  # seeded without touching the caller's generators (CPU or GPU)
            seed_torch(seed)
            U, S, V = torch.svd_lowrank(torch.from_numpy(A), q=q, niter=10)
        U, S, Vt = U[:, :k].numpy(), S[:k].numpy(), V[:, :k].T.numpy()
    else:
        U, S, Vt = np.linalg.svd(A, full_matrices=False)
        U, S, Vt = U[:, :k], S[:k], Vt[:k]
    flip = np.sign(Vt[np.arange(len(Vt)), np.abs(Vt).argmax(axis=1)])
    flip[flip == 0] = 1
    return U * flip, S, Vt * flip[:, None]


def _squared_units(units) -> dict[str, str]:
    """``{"units": ...}`` of a variance of a field in ``units`` (UDUNITS syntax), or ``{}`` when
    that cannot be written simply.

    The eigenvalues had no units: a reader could not tell degC² from a fraction. A temperature's
    variance is in K2 whatever the scale it was read in (degree_Celsius cannot be raised to a
    power in UDUNITS: it has an offset); a one-word unit gets the power 2 (``m`` -> ``m2``); a
    compound unit is left out rather than written wrongly.
    """
    import re

    from .neural import _unit

    u = _unit(units)
    if u in ("degC", "K"):
        return {"units": "K2"}
    if u == "degF":  # (degF)2 has no UDUNITS spelling either (an offset); degree_R2 is not widely read
        return {}
    if u == "1":
        return {"units": "1"}
    if u is not None and re.fullmatch(r"[A-Za-z]+", u):
        return {"units": f"{u}2"}
    return {}


def _is_int(v) -> bool:
    """An int (numpy ints too), not a bool: ``True`` is no mode count."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _varimax(L: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, int, bool]:
    """Orthogonal rotation maximising the varimax criterion of the loadings ``L`` (n, k).

    Kaiser's (1958) criterion, the variance of the squared loadings summed over the columns, by the
    SVD iteration of ten Berge (1984) as in Hannachi et al. (2007, their appendix): each step takes
    the rotation from the SVD of the criterion's gradient ``L^T (Lr^3 - Lr diag(sum Lr^2) / n)``.

    Returns
    -------
    R : ndarray (k, k)
        Orthogonal: ``L @ R`` are the rotated loadings.
    iterations : int
    converged : bool
        Whether the criterion's relative increase fell below ``tol`` within ``max_iter`` steps.
    """
    n, k = L.shape
    R = np.eye(k)
    crit = 0.0
    for it in range(1, max_iter + 1):
        Lr = L @ R
        u, sv, vt = np.linalg.svd(L.T @ (Lr**3 - Lr * ((Lr**2).sum(axis=0) / n)))
        R = u @ vt
        new = float(sv.sum())
        if crit > 0 and new <= crit * (1 + tol):
            return R, it, True
        crit = new
    return R, max_iter, False


class EOF:
    """EOF analysis of a (time, lat, lon) field; see :func:`eof`.

    Attributes
    ----------
    eofs : DataArray (mode, lat, lon)
        Spatial patterns, weighted, unit norm over the ocean; NaN on land. Like ``pcs``, ``mean``,
        ``weights`` and :meth:`reconstruct`, in the input's float precision (float32 for a float32
        or packed integer field; computed in float64); ``eigenvalues`` and ``variance_fraction``
        are float64.
    pcs : DataArray (time, mode)
        Principal components (unscaled: ``U S``).
    eigenvalues : DataArray (mode,)
        Variance of each PC, ``S^2 / (n_time - 1)``.
    variance_fraction : DataArray (mode,)
        Eigenvalue over the total variance (all modes, not only the ones kept).
    eigenvalue_errors : DataArray (mode,)
        North et al. (1982) typical error of each eigenvalue, ``eigenvalue * sqrt(2 / n_time)``
        (the ``eofs`` package's ``northTest``; ``n_time`` counts the time steps as independent,
        so with autocorrelated steps the true error is larger). A mode whose eigenvalue is
        within this error of a neighbour's is not separated from it (its pattern can mix with
        the neighbour's); over ``total_variance`` it is the variance fraction's error.
    mean : DataArray (lat, lon)
        Time mean removed (zeros if ``center=False``).
    weights : DataArray (lat, lon)
        Weights applied to the data.
    total_variance : float
        Sum of all eigenvalues (the squared norm of the weighted anomaly over ``n_time - 1``).
    solver : str
        ``"full"`` or ``"randomized"``: the SVD used (see :func:`eof`).
    """

    def __init__(self, da: xr.DataArray, n_modes: int = 10, weights="coslat", center: bool = True,
                 solver: str = "auto", seed: int = 0):
        # a (time, depth=1, lat, lon) level was refused ('expected 3 dims') where interpolate() and
        # `oceandl eof` (open_field) drop it: analysed as (time, lat, lon), the depth a scalar coordinate
        da, _ = _squeeze_levels(as_dataarray(da, "eof"))
        dims = canonical_dims(da, say=True)
        label = f"variable {da.name!r}" if da.name is not None else "input"
        if not _is_int(n_modes) or n_modes < 1:
            raise InputError(f"eof: n_modes must be a positive integer, got {n_modes!r}")
        _solver_for((1, 1), 1, solver)  # a bad solver name fails before the data are read
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"eof: seed must be an integer, got {seed!r}")
        da = da.transpose(*dims)
        nt = da.sizes[dims[0]]
        if nt < 2:
            raise InputError(f"{label}: EOF analysis needs at least 2 time steps, got {nt}")
        values = np.asarray(da.values, dtype=np.float64)
        if np.isinf(values).any():
            raise InputError(f"{label}: contains infinite values")
        # kelvin said to be degC (or the reverse), refused as interpolate() and every fill refuse it: the
        # analysis does not go through Interpolator.fit, and its 'units' (squared) went on into the EOFs
        check_units_field(label, da, values)  # and each file of a series (one kelvin file among degC ones)
        w = _weights(da, dims, weights)

        nan = np.isnan(values)
        land = nan.all(axis=0)
        partial = nan.any(axis=0) & ~land
        if partial.any():
            warn(
                f"eof: {int(partial.sum())} pixels of {label} are missing at some times only; they are left out "
                "like land (fill the gaps first, e.g. with oceandl.interp.interpolate)")
        ocean = ~(land | partial)
        unweighted = np.isnan(w) & ~land
        if unweighted.any():
            raise InputError(f"eof: weights are missing (NaN) at {int(unweighted.sum())} pixels where {label} has "
                             "values; NaN weights are taken on land only")
        if not ocean.any():
            # one missing day (a satellite outage: an all-NaN step) made every pixel partial, and the
            # message did not say which step, nor what to do
            empty = np.flatnonzero(nan.all(axis=(1, 2)))
            hint = " (fill the gaps first: oceandl interpolate, or oceandl.interpolate in Python)"
            if empty.size:
                idx = da.indexes.get(dims[0])
                first = idx[empty[0]] if idx is not None else f"index {empty[0]}"
                hint = (f": {empty.size} time step(s) have no value at all (the first: {first}); drop them "
                        f"(da.dropna({str(dims[0])!r}, how='all') in Python) or fill the gaps first")
            raise InputError(f"{label}: no pixel is observed at every time step; nothing to analyse{hint}")

        # centred and weighted in place: a 10-year daily 256 x 256 cube is 1.9 GB in float64, and
        # each temporary would be another
        A = values[:, ocean]  # a copy (boolean index)
        del values, nan
        mean = A.mean(axis=0) if center else np.zeros(A.shape[1])
        A -= mean
        # each pixel's anomaly variance, for eofs_as("correlation") (a pass, no cube-sized temporary)
        self._var_flat = np.einsum("ij,ij->j", A, A) / (nt - 1)
        A *= w[ocean]
        if not np.any(A):
            raise InputError(f"{label}: the (centred, weighted) field is zero everywhere; no variance to analyse")
        # removing the time mean takes one degree of freedom: a centred field of n_time steps has
        # rank n_time - 1 at most, and a mode past it was a null mode (eigenvalue ~1e-29) whose
        # standardized PC, pcs / sqrt(~0), was a constant 0.99 written as if it were an index
        rank = nt - 1 if center else nt
        k = int(min(n_modes, rank, A.shape[1]))
        if k < n_modes:  # the result had fewer modes than asked, without a word
            steps = f"{nt} time steps{' (less 1: the mean is removed)' if center else ''}"
            warn(f"{label}: n_modes={n_modes}, but {steps} x {A.shape[1]} complete "
                          f"pixels give at most {k}; keeping {k}", UserWarning)
        solver_used = _solver_for(A.shape, k, solver)
        U, S, Vt = _truncated_svd(A, k, solver_used, seed)
        # the total variance from the data, not from all eigenvalues: a truncated SVD has only k
        total = float(np.einsum("ij,ij->", A, A)) / (nt - 1)
        eig = S**2 / (nt - 1)

        self.n_modes = k
        self.rotation_matrix: xr.DataArray | None = None  # set by rotate()
        self.center = bool(center)
        self.total_variance = total
        self.solver = solver_used
        self._dims = dims
        self._ocean = ocean
        self._w = w
        self._mean_flat = mean
        self._E = Vt  # (k, n_ocean)
        self._P = U * S  # (time, k)
        self._name = da.name
        self._sizes = dict(da.sizes)  # (time, lat, lon) order, for the repr

        tdim, ydim, xdim = dims
        # the mode coordinate says what it counts (it had no long_name, nor units)
        mode = xr.Variable("mode", np.arange(1, k + 1),
                           {"long_name": "EOF mode number (1: the mode of largest variance)", "units": "1"})
        space_coords = {c: v for c, v in da.coords.items() if tdim not in v.dims}
        time_coords = {c: v for c, v in da.coords.items() if set(v.dims) <= {tdim}}
        prov = {
            "oceandl_version": oceandl_version(),
            # torch only when its randomized SVD computed the modes
            "oceandl_software": software_versions(*(("torch",) if solver_used == "randomized" else ())),
            "method": "eof",
            "options": json.dumps({"n_modes": int(n_modes), "center": bool(center),
                                   "weights": weights if isinstance(weights, str) or weights is None else "array",
                                   "solver": solver, "seed": int(seed)}),
            "solver": solver_used,
        }
        self.attrs = prov
        self._input_attrs = _input_attrs(da.attrs)  # less an earlier oceandl run's provenance

        # computed in float64, given in the input's float precision (float32 for a float32 or packed
        # int16 field, as the filled fields are): float64 EOFs, PCs and maps doubled the written file
        from oceandl.io import output_dtype

        self._dtype = output_dtype(da)
        eofs = np.full((k,) + ocean.shape, np.nan, dtype=self._dtype)
        eofs[:, ocean] = self._E
        self.eofs = xr.DataArray(eofs, dims=("mode", ydim, xdim), coords={"mode": mode, **space_coords},
                                 name="eofs", attrs={**prov, "long_name": "empirical orthogonal functions "
                                                                          "(unit-norm spatial patterns)", "units": "1"})
        self.pcs = xr.DataArray(self._P.astype(self._dtype), dims=(tdim, "mode"), coords={"mode": mode, **time_coords},
                                name="pcs", attrs={**prov, "long_name": "principal components (unscaled)",
                                                   # weighted anomalies on unit-norm patterns: the field's units
                                                   **({"units": da.attrs["units"]} if "units" in da.attrs else {})})
        squared = _squared_units(da.attrs.get("units"))
        self.eigenvalues = xr.DataArray(eig, dims="mode", coords={"mode": mode}, name="eigenvalues",
                                        attrs={**prov, "long_name": "eigenvalues (variance of each PC)", **squared})
        # North's rule of thumb: sampling error of an eigenvalue from n_time samples
        self.eigenvalue_errors = xr.DataArray(eig * np.sqrt(2.0 / nt), dims="mode", coords={"mode": mode},
                                              name="eigenvalue_errors",
                                              attrs={**prov, "long_name": "typical error of each eigenvalue "
                                                     "(North et al. 1982: eigenvalue * sqrt(2 / n_time))", **squared})
        self.variance_fraction = xr.DataArray(eig / total, dims="mode", coords={"mode": mode},
                                              name="variance_fraction",
                                              attrs={**prov, "long_name": "fraction of the total variance",
                                                     "units": "1"})
        meanmap = np.full(ocean.shape, np.nan, dtype=self._dtype)
        meanmap[ocean] = mean
        # the mean is in the field's units: without them a written EOF file did not say (kelvin or degC?)
        mattrs = {"long_name": (f"time mean of {da.name if da.name is not None else 'the field'}, removed before "
                                "the analysis" if center else "zero (center=False: no mean removed)"),
                  **({"units": da.attrs["units"]} if "units" in da.attrs else {})}
        self.mean = xr.DataArray(meanmap, dims=(ydim, xdim), coords=space_coords, name="mean",
                                 attrs={**prov, **mattrs})
        kind = ("square root of the cosine of latitude" if isinstance(weights, str) else
                 "1: unweighted" if weights is None else "given by the caller")
        self.weights = xr.DataArray(w.astype(self._dtype), dims=(ydim, xdim), coords=space_coords, name="weights",
                                    attrs={**prov, "long_name": f"weight of each pixel in the analysis ({kind})",
                                           "units": "1"})
        self._compress()

    #: the results written to netCDF: each DataArray's ``encoding`` is write_netcdf's (:meth:`_compress`)
    _RESULTS = ("eofs", "pcs", "eigenvalues", "eigenvalue_errors", "variance_fraction", "mean", "weights",
                "rotation_matrix")

    def _compress(self) -> None:
        """Give the results (``eofs``, ``pcs``...) the netCDF encoding ``oceandl eof`` writes them with (zlib
        level 4; PCs chunked along time, :func:`oceandl.io.with_compression_encoding`), so that
        ``res.eofs.to_netcdf(path)`` from Python is compressed as the CLI's file is; it was written
        uncompressed (:meth:`to_dataset` sets it on its variables too)."""
        for name in self._RESULTS:
            da = getattr(self, name, None)
            if da is not None:
                _compressed(da, name)

    def __repr__(self) -> str:
        # what a notebook shows of `res`: the field, its grid and each mode's share, on one line
        # (it was 'EOF(n_modes=3, variance explained=0.782)': no field, no per-mode fractions)
        vf = self.variance_fraction.values
        shown = ", ".join(f"{v:.3g}" for v in vf[:6]) + (", ..." if len(vf) > 6 else "")
        grid = ", ".join(f"{d}: {n}" for d, n in self._sizes.items())
        what = repr(str(self._name)) if self._name is not None else "a field"
        return (f"<oceandl EOF of {what} ({grid}): {self.n_modes} mode{'s' * (self.n_modes != 1)}, variance "
                f"fraction {shown} (sum {vf.sum():.3f}), solver {self.solver}"
                f"{', varimax-rotated' if self.rotation_matrix is not None else ''}>")

    def to_dataset(self) -> xr.Dataset:
        """The analysis as one Dataset, for writing to netCDF.

        Returns
        -------
        Dataset
            ``eofs`` (mode, lat, lon), ``pcs`` (time, mode), ``eigenvalues``,
            ``eigenvalue_errors``, ``variance_fraction`` (mode,), ``mean`` and ``weights`` (lat, lon),
            and for an analysis of anomalies (``center=True``) the forms one plots and correlates:
            ``eofs_covariance`` and ``eofs_correlation`` (mode, lat, lon; :meth:`eofs_as`) and
            ``standardized_pcs`` (time, mode; :meth:`standardized_pcs`); global attrs: the
            provenance (version, options, solver), the total variance, the analysed variable and a
            ``history`` line put in front of the input's (newest first, as NCO and CDO write it).
            The variables carry their ``long_name`` (and ``units``) only: the provenance is
            global, once, not repeated on each variable (the DataArrays ``res.eofs``, ``res.pcs``
            ... keep it in their ``attrs``, each written alone says where it came from).
        """
        rotated = self.rotation_matrix is not None
        what = f"EOF analysis {self.attrs['options']}" + (f", varimax rotation {self.attrs['rotation']}" if rotated else "")
        attrs = {**self.attrs, "title": f"{'Rotated ' if rotated else ''}EOF analysis of {self._name or 'a field'}",
                 "variable": str(self._name), "total_variance": self.total_variance, "n_modes": self.n_modes,
                 "history": append_history(self._input_attrs.get("history"), what), "Conventions": "CF-1.8"}
        from oceandl.io import no_coordinate_fill, with_compression_encoding

        # the provenance once, in the global attrs: each of the 6 variables repeated all of it
        variables = {}
        parts = [("eofs", self.eofs), ("pcs", self.pcs), ("eigenvalues", self.eigenvalues),
                 ("eigenvalue_errors", self.eigenvalue_errors), ("variance_fraction", self.variance_fraction),
                 ("mean", self.mean), ("weights", self.weights), ("rotation_matrix", self.rotation_matrix)]
        parts = [(name, da) for name, da in parts if da is not None]  # a rotated analysis has no North errors
        if self.center:
            # the weighted unit-norm EOFs alone are not in the field's units: a file from `oceandl eof`
            # gave no map a scientist plots (degC per standard deviation of the mode) nor unit-variance indices
            parts += [("eofs_covariance", self.eofs_as("covariance")), ("eofs_correlation", self.eofs_as("correlation")),
                      ("standardized_pcs", self.standardized_pcs())]
        for name, da in parts:
            da = da.copy(deep=False)
            da.attrs = {k: v for k, v in da.attrs.items() if k not in self.attrs}
            variables[name] = da
        # written with to_netcdf, lat/lon got a NaN _FillValue (CF: coordinates have none); compressed (zlib 4,
        # PCs chunked along time) as `oceandl eof` writes them: ds.to_netcdf() wrote them uncompressed
        return with_compression_encoding(no_coordinate_fill(xr.Dataset(variables, attrs=attrs)))

    def standardized_pcs(self) -> xr.DataArray:
        """PCs scaled to unit variance (``pcs / sqrt(eigenvalues)``; the ``eofs`` package's
        ``pcs(pcscaling=1)``), the dimensionless indices one correlates or regresses on.

        Returns
        -------
        DataArray (time, mode)
            NaN for a mode of zero variance.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            P = self._P / np.sqrt(self.eigenvalues.values)
        out = self.pcs.copy(data=P.astype(self._dtype))
        out.name = "standardized_pcs"
        out.attrs = {**self.attrs, "long_name": "principal components scaled to unit variance", "units": "1"}
        return out

    def eofs_as(self, kind: str = "covariance") -> xr.DataArray:
        """The EOFs as maps in the field's terms: covariance or correlation of each pixel's
        (unweighted) anomaly with each standardized PC (the ``eofs`` package's
        ``eofsAsCovariance()`` and ``eofsAsCorrelation()``).

        Parameters
        ----------
        kind : "covariance" or "correlation"
            ``"covariance"``: in the field's units, the anomaly regressed on the unit-variance PC
            (the pattern of one standard deviation of the mode, ``sqrt(eigenvalue) * eof /
            weights``); ``"correlation"``: that over each pixel's standard deviation, in [-1, 1].

        Returns
        -------
        DataArray (mode, lat, lon)
            NaN on land, where a weight is 0 and (correlation) where a pixel does not vary.

        Raises
        ------
        InputError
            For another ``kind``, or an analysis made with ``center=False`` (the PCs of an
            uncentred field are not anomalies).
        """
        if kind not in ("covariance", "correlation"):
            raise InputError(f"eof: eofs_as(kind) must be 'covariance' or 'correlation', got {kind!r}")
        if not self.center:
            raise InputError("eof: eofs_as() needs an analysis of anomalies (center=True); this one was made "
                             "with center=False")
        w = self._w[self._ocean]
        # cov(anomaly, P_k / sqrt(eig_k)) = sqrt(eig_k) E_k / w, from U^T A = S V^T: exact, no data kept
        with np.errstate(divide="ignore", invalid="ignore"):
            maps = np.sqrt(self.eigenvalues.values)[:, None] * self._E / w
            if kind == "correlation":
                maps = maps / np.sqrt(self._var_flat)
        maps[:, w == 0] = np.nan
        maps[~np.isfinite(maps)] = np.nan  # a pixel that does not vary has no correlation
        full = np.full(self.eofs.shape, np.nan, dtype=self._dtype)
        full[:, self._ocean] = maps
        out = self.eofs.copy(data=full)
        out.name = f"eofs_{kind}"
        units = ({"units": "1"} if kind == "correlation" else
                 {"units": self._input_attrs["units"]} if "units" in self._input_attrs else {})
        out.attrs = {**self.attrs, "long_name": f"{kind} of {self._name or 'the field'} with each standardized "
                                                "principal component", **units}
        return out

    def rotate(self, n_modes: int | None = None, max_iter: int = 500, tol: float = 1e-8) -> "EOF":
        """Varimax rotation of the leading modes (Kaiser 1958; Richman 1986; Hannachi et al. 2007).

        EOFs are orthogonal by construction, so their patterns mix physically distinct modes of
        close variance (North et al. 1982); a rotation of the leading ``n_modes`` loadings towards
        "simple structure" (each pattern large on few pixels, near zero elsewhere) separates them.
        The loadings rotated are the EOFs scaled by the square root of their eigenvalues, so the
        rotated PCs stay uncorrelated (the rotated patterns are no longer orthogonal), and the
        rotated modes span the same space: ``reconstruct()`` gives the same field.

        Parameters
        ----------
        n_modes : int, optional
            Leading modes to rotate (default: all kept). Rotating many noisy modes spreads the
            variance; the literature rotates the few that the North test separates from the rest.
        max_iter, tol : int, float
            Iteration limit and relative increase of the varimax criterion that stops it.

        Returns
        -------
        EOF
            A new analysis of ``n_modes`` modes, ordered by their variance: ``eofs`` (unit norm,
            largest-magnitude value positive), ``pcs`` (``pcs @ eofs`` as before rotation),
            ``eigenvalues`` (variance of each rotated PC), ``variance_fraction``,
            ``rotation_matrix`` (mode, mode_unrotated); ``eigenvalue_errors`` is None (North's
            rule is for the eigenvalues of a covariance, not rotated variances). ``attrs["rotation"]``
            records the method and its iterations; ``project()`` gives least-squares amplitudes on
            the rotated patterns, ``eofs_as()`` and ``standardized_pcs()`` work as before.

        Raises
        ------
        InputError
            For ``n_modes`` outside ``2 .. n_modes kept``, a mode of zero variance, or an analysis
            rotated already.
        """
        import copy

        if self.rotation_matrix is not None:
            raise InputError("eof: rotate() on an analysis rotated already; rotate the unrotated one")
        k = self.n_modes if n_modes is None else n_modes
        if not _is_int(k) or not 2 <= k <= self.n_modes:
            raise InputError(f"eof: rotate(n_modes) needs 2 <= n_modes <= {self.n_modes} (the modes kept), got {k!r}")
        if not _is_int(max_iter) or max_iter < 1:
            raise InputError(f"eof: rotate(max_iter) must be a positive integer, got {max_iter!r}")
        if not tol > 0:
            raise InputError(f"eof: rotate(tol) must be positive, got {tol!r}")
        lam = self.eigenvalues.values[:k]
        if not (lam > 0).all():
            raise InputError(f"eof: cannot rotate mode {int(np.argmin(lam > 0)) + 1}: it has zero variance")
        L = self._E[:k].T * np.sqrt(lam)  # (n_ocean, k) loadings
        R, iterations, converged = _varimax(L, int(max_iter), float(tol))
        if not converged:
            warn(f"eof: the varimax rotation did not converge in {max_iter} iterations; pass a larger max_iter")
        Lr = L @ R
        s = np.sqrt((Lr**2).sum(axis=0))
        order = np.argsort(-s, kind="stable")
        R, Lr, s = R[:, order], Lr[:, order], s[order]
        E = (Lr / s).T
        flip = np.sign(E[np.arange(k), np.abs(E).argmax(axis=1)])  # as the unrotated: largest value positive
        flip[flip == 0] = 1
        E, R = E * flip[:, None], R * flip
        # standardized PCs Z = P / sqrt(lam) times R stay orthogonal with unit variance; times s they
        # are the amplitudes of the unit-norm rotated patterns: Z R s E = Z L^T, the same field
        P = (self._P[:, :k] / np.sqrt(lam)) @ R * s
        var = s**2

        out = copy.copy(self)
        out.n_modes, out._E, out._P = k, E, P
        out.attrs = {**self.attrs, "rotation": json.dumps({"method": "varimax", "n_modes": int(k),
                                                           "iterations": iterations, "converged": converged})}
        mode = xr.Variable("mode", np.arange(1, k + 1),
                           {"long_name": "rotated EOF mode number (1: the mode of largest variance)", "units": "1"})
        full = np.full((k,) + self._ocean.shape, np.nan, dtype=self._dtype)
        full[:, self._ocean] = E
        sub = {"mode": mode}
        out.eofs = self.eofs.isel(mode=slice(0, k)).copy(data=full).assign_coords(sub)
        out.eofs.attrs = {**out.attrs, "long_name": "varimax-rotated empirical orthogonal functions (unit-norm "
                                                    "spatial patterns, not orthogonal)", "units": "1"}
        out.pcs = self.pcs.isel(mode=slice(0, k)).copy(data=P.astype(self._dtype)).assign_coords(sub)
        out.pcs.attrs = {**out.attrs, "long_name": "rotated principal components (unscaled, uncorrelated)",
                         **({"units": self.pcs.attrs["units"]} if "units" in self.pcs.attrs else {})}
        out.eigenvalues = xr.DataArray(var, dims="mode", coords=sub, name="eigenvalues",
                                       attrs={**out.attrs, "long_name": "variance of each rotated PC",
                                              **_squared_units(self._input_attrs.get("units"))})
        out.variance_fraction = xr.DataArray(var / self.total_variance, dims="mode", coords=sub,
                                             name="variance_fraction",
                                             attrs={**out.attrs, "long_name": "fraction of the total variance",
                                                    "units": "1"})
        out.eigenvalue_errors = None
        out.rotation_matrix = xr.DataArray(
            R.T, dims=("mode", "mode_unrotated"), coords={**sub, "mode_unrotated": np.arange(1, k + 1)},
            name="rotation_matrix", attrs={**out.attrs, "units": "1", "long_name": "orthogonal rotation: row i holds "
                                           "the unrotated standardized PCs' weights in rotated PC i"})
        out.mean, out.weights = (da.copy(deep=False).assign_attrs(rotation=out.attrs["rotation"])
                                 for da in (self.mean, self.weights))
        out._compress()  # the rotated ones are new arrays (fewer modes): their chunks and compression anew
        return out

    def reconstruct(self, k: int | None = None) -> xr.DataArray:
        """Field rebuilt from the first ``k`` modes (all kept modes by default).

        Returns
        -------
        DataArray (time, lat, lon)
            ``(PCs[:, :k] @ EOFs[:k]) / weights + mean``, NaN on land and where a weight is 0.
        """
        if k is None:
            k = self.n_modes
        if not _is_int(k) or not 1 <= k <= self.n_modes:
            raise InputError(f"eof: reconstruct(k) needs 1 <= k <= {self.n_modes}, got {k!r}")
        w = self._w[self._ocean]
        with np.errstate(divide="ignore", invalid="ignore"):
            flat = (self._P[:, :k] @ self._E[:k]) / w + self._mean_flat
        flat[:, w == 0] = np.nan
        out = np.full((self._P.shape[0],) + self._ocean.shape, np.nan, dtype=self._dtype)  # the input's precision
        out[:, self._ocean] = flat
        coords = {c: v for c, v in self.pcs.coords.items() if c != "mode"}
        coords.update({c: v for c, v in self.eofs.coords.items() if c != "mode"})
        # compressed as the other results (_compress): to_netcdf of the rebuilt field was written uncompressed
        return _compressed(xr.DataArray(out, dims=self._dims, coords=coords, name=self._name,
                                        attrs={**self._input_attrs, **self.attrs, "n_modes_used": int(k)}))

    def project(self, da: xr.DataArray) -> xr.DataArray:
        """Pseudo-PCs of another field on these EOFs.

        Parameters
        ----------
        da : DataArray (time, lat, lon) or one map (lat, lon), on the same grid, complete over this
            analysis' ocean
            Dims in any order; along a spatial dim whose coordinate holds the analysis' values in
            another order (latitudes descending), pixels are matched by coordinate.

        Returns
        -------
        DataArray (time, mode), or (mode,) for one map
            ``((da - mean) * weights) @ EOFs^T``; equals :attr:`pcs` for the analysed field.

        Raises
        ------
        InputError
            For another grid (shape or coordinate values), missing values over the analysed ocean, or
            values that contradict the field's temperature units (:func:`~oceandl.interp.base.check_units_values`).
            A field in kelvin on an analysis in degC (or the reverse) is converted to the analysis' units.
        """
        from oceandl.metrics.interpolation import match_axis

        da, _ = _squeeze_levels(as_dataarray(da, "eof.project"))  # a depth=1 level, as the analysis drops it
        if da.ndim == 2:  # one map (today's anomaly, as eofs' projectField takes): a series of one
            tdim = self._dims[0]
            if tdim in da.dims:
                raise InputError(f"eof.project: a 2-D field needs the analysis' spatial dims {self._dims[1:]}, "
                                 f"got {tuple(da.dims)}")
            one = self.project(da.expand_dims(tdim)).isel({tdim: 0})
            one.encoding = {}  # the series' chunks (1, modes) do not fit one map's (modes,): its own
            return _compressed(one)
        dims = canonical_dims(da, say=True)
        da = da.transpose(*dims)
        if da.shape[1:] != self._ocean.shape:
            raise InputError(f"eof.project: grid {da.shape[1:]} differs from the analysis grid {self._ocean.shape}")
        # matched by coordinate, not position: a field with latitudes descending (as many L3 files
        # store them) was projected pixel by pixel onto the mirrored EOFs, a silent wrong answer
        if dims[2] == self._dims[2]:  # longitudes in the other convention (0..360 / -180..180) matched by value
            da = _lon_like(da, self.eofs, dims[2])
        for d, ref in zip(dims[1:], self._dims[1:]):
            if d in da.indexes and ref in self.eofs.indexes:
                pos = match_axis(da.indexes[d], self.eofs.indexes[ref])
                if pos is None:
                    raise InputError(f"eof.project: coordinate {d!r} differs from the analysis grid's {ref!r}")
                da = da.isel({d: pos})
        values = np.asarray(da.values, dtype=np.float64)
        # kelvin said to be degC (or the reverse) refused as the analysis refuses it (project did not test
        # them: 288 "degC" was projected as 288 degC, its pseudo-PCs off by hundreds of standard deviations)
        check_units_field(f"eof.project: variable {da.name!r}" if da.name is not None else "eof.project", da, values)
        X = values[:, self._ocean]
        if not np.isfinite(X).all():
            raise InputError("eof.project: the field has missing values over the analysed ocean pixels")
        from oceandl.units import _unit, kelvin_offset

        # a field in kelvin projected on an analysis in degC (or the reverse) is put in the analysis' units
        # first, as Interpolator.transform puts a fit's means in the field's: its anomaly is the same in both
        theirs, ours = _unit(self._input_attrs.get("units")), _unit(da.attrs.get("units"))
        offset = kelvin_offset(ours, theirs) or 0.0
        if theirs is not None and ours is not None and theirs != ours and not offset:  # degF on degC, m on cm...
            raise InputError(f"eof.project: the field is in units {da.attrs['units']!r}, the analysis in "
                             f"{self._input_attrs['units']!r}; its anomaly from the analysis mean is taken in the "
                             "analysis' units (convert it first)")
        X = X + offset
        # computed in float64, given in the analysis' float precision, as its pcs (float64 for float32 before)
        P = ((X - self._mean_flat) * self._w[self._ocean]) @ self._E.T
        if self.rotation_matrix is not None:  # rotated patterns are not orthogonal: least-squares amplitudes
            P = np.linalg.solve(self._E @ self._E.T, P.T).T
        P = P.astype(self._dtype)
        coords = {c: v for c, v in da.coords.items() if set(v.dims) <= {dims[0]}}
        return _compressed(xr.DataArray(
            P, dims=(dims[0], "mode"), coords={"mode": self.pcs["mode"].variable, **coords}, name="pseudo_pcs",
            # what they are, as every other result says (they had the provenance only)
            attrs={**self.attrs, "long_name": "pseudo principal components (the field's anomaly from the analysis "
                   "mean, projected on the EOFs)",
                   **({"units": self.pcs.attrs["units"]} if "units" in self.pcs.attrs else {})}))


def _compressed(da: xr.DataArray, name: str | None = None) -> xr.DataArray:
    """``da`` with the netCDF encoding ``oceandl eof`` writes its results with (zlib level 4, chunks:
    :func:`oceandl.io.with_compression_encoding`), so that ``da.to_netcdf(path)`` from Python is
    compressed. In place; returned for chaining."""
    from oceandl.io import with_compression_encoding

    name = name or (str(da.name) if da.name is not None else "field")
    da.encoding = dict(with_compression_encoding(da.to_dataset(name=name))[name].encoding)
    return da


def eof(da: xr.DataArray, n_modes: int = 10, weights="coslat", center: bool = True, solver: str = "auto",
        seed: int = 0) -> EOF:
    """EOF analysis of a (time, lat, lon) field with NaN-masked land.

    Parameters
    ----------
    da : DataArray (time, lat, lon), dims found by name, NumPy or dask backed (computed into memory)
        Complete field (NaN only on land; pixels missing at some times are left out with a warning).
        Size-1 dims that are none of these (the depth of ``(time, depth=1, lat, lon)``) are
        dropped, as ``oceandl eof`` reads a file; their coordinate stays on the results as a scalar.
    n_modes : int
        Number of modes kept (at most min(n_time - 1, n_ocean) with ``center=True``: removing the
        mean takes one degree of freedom; min(n_time, n_ocean) without).
    weights : "coslat", None, or array (lat,) / (lat, lon) / DataArray
        Multiplies the data before the SVD; ``"coslat"`` is ``sqrt(cos(lat))`` (area weighting of
        the covariance), as in the ``eofs`` package. Non-negative; NaN only where the field is land.
    center : bool
        Remove the time mean first.
    solver : "auto", "full" or "randomized"
        ``"full"``: LAPACK's SVD of the whole (time, ocean pixels) matrix; ``"randomized"``: a
        randomised truncated SVD of the ``n_modes`` wanted (seconds instead of minutes for years
        of daily fields); ``"auto"``: randomized when the smaller side of the matrix exceeds 500
        and ``n_modes`` is at most a tenth of it, else full. The solver used is in ``attrs``.
        Each EOF's sign is fixed (its largest-magnitude value positive) whatever the solver.
    seed : int
        Random start of the randomized solver.

    Returns
    -------
    EOF
        With ``eofs`` (mode, lat, lon), ``pcs`` (time, mode), ``eigenvalues`` (and their North et
        al. typical errors ``eigenvalue_errors``), ``variance_fraction``, ``reconstruct(k)``, ``project(da)``,
        ``standardized_pcs()`` and ``eofs_as("covariance" | "correlation")``; provenance in ``attrs``.

    Raises
    ------
    InputError
        For a non 3-D field, fewer than 2 time steps, no complete pixel, bad weights, or values that
        contradict the field's temperature units (kelvin said to be degC, or the reverse:
        :func:`~oceandl.interp.base.check_units_values`).
    """
    return EOF(da, n_modes=n_modes, weights=weights, center=center, solver=solver, seed=seed)


def _gappy_amplitudes(E: np.ndarray, X: np.ndarray, M: np.ndarray, ridge: float, n: int | None = None) -> np.ndarray:
    """Per time step, the amplitudes (time, k) of the modes ``E`` (k, n) fitting ``X`` (time, n) at
    its observed points ``M``: ``(E_o E_o^T + ridge * (n_o / n) I) a_t = E_o x_o``; ``n`` (default
    X's columns): the pixels the modes are orthonormal over (a fit cut to a box: its whole grid's)."""
    G = np.einsum("kn,tn,jn->tkj", E, M.astype(np.float64), E, optimize=True)  # E_o E_o^T per step
    b = np.where(M, X, 0.0) @ E.T  # E_o x_o
    G += (ridge * M.sum(axis=1) / (X.shape[1] if n is None else n) + 1e-12)[:, None, None] * np.eye(E.shape[0])
    return np.linalg.solve(G, b[..., None])[..., 0]


def _leading_eofs(A: np.ndarray, k: int) -> np.ndarray:
    """Leading k right singular vectors of A (time, n) as rows (k, n), from the smaller Gram matrix.

    Much faster than an SVD of A when one side is small; modes of (numerically) zero variance
    are left out, so fewer than k rows may come back.
    """
    if A.shape[0] <= A.shape[1]:
        w, U = np.linalg.eigh(A @ A.T)  # ascending
        w, U = w[::-1][:k], U[:, ::-1][:, :k]
        keep = w > 1e-12 * max(w[0], 1e-300)
        return (U[:, keep].T @ A) / np.sqrt(w[keep])[:, None]
    w, V = np.linalg.eigh(A.T @ A)
    w, V = w[::-1][:k], V[:, ::-1][:, :k]
    keep = w > 1e-12 * max(w[0], 1e-300)
    return V[:, keep].T


def warn_no_repeat(label: str, n_obs: int) -> None:
    """Warn that no pixel of a field is observed twice: method 'eof' then fits its modes to one value per
    pixel, which says nothing of how a pixel varies in time, and its fill left the observed range by far
    (-120 to 171 degC from observations of 4.5 to 25; DINEOF's cross-validation kept it in range)."""
    warn(f"{label}: no pixel is observed at {_MIN_PIXEL_OBS} time steps or more ({n_obs} observations, one per "
         "pixel): method 'eof' has no pixel's variation in time to fit its modes to, and its fill may leave the "
         "observed range far; use method 'dineof' or 'climatology', or a longer record", UserWarning)


class EOFInterpolator(Interpolator):
    """Gap filling by projection on EOFs (gappy EOF; Everson & Sirovich 1995).

    1. EOFs of the normalised anomaly with the gaps set to 0 (its SVD; the leading patterns
       survive the zeros, their amplitudes are damped).
    2. For each time step t with observed pixels o, the amplitudes ``a_t`` solve
       ``(E_o E_o^T + ridge * (n_o / n) I) a_t = E_o x_o`` (least squares on the observed pixels;
       the ridge, relative to the observed fraction, damps modes the observations do not
       constrain); the gaps are ``a_t E``. A time step with no observation gets anomaly 0.
    3. EM (``em_iter`` times): replace the gaps by the projection, re-centre the filled matrix on
       its column means, recompute the EOFs, re-project. ``em_iter=0`` is the classic one-pass
       gappy EOF.

    With ``harmonics`` (default 0: none) each pixel's seasonal cycle is fitted on its
    observations and removed first, and added back to the result, as DINEOF does (see
    :class:`~oceandl.interp.dineof.DINEOF`): the EOFs are those of the anomalies from it.

    Options
    -------
    n_modes : int, default 5
    ridge : float >= 0, default 0.01
    em_iter : int >= 0, default 10
    harmonics : "auto" or int, 0 to 6, default 0
        As DINEOF's: the per-pixel seasonal cycle (mean + k annual harmonics, the climatology's
        fit on the fitting observations, shrunk toward the neighbours' by its uncertainty)
        removed before the EOFs; 0 keeps the time mean only;
        ``"auto"`` is 2 when the dates cover a year, else 0. Output attrs ``harmonics`` (and
        ``harmonics_fallback_pixels``).
    """

    name: ClassVar[str] = "eof"
    option_defaults: ClassVar[dict[str, Any]] = {"n_modes": 5, "ridge": 0.01, "em_iter": 10, "harmonics": 0}
    _rare_neighbours: ClassVar[bool] = True  # a pixel seen once: centred on its neighbours' means
    _warn_empty_steps: ClassVar[bool] = True  # off in interpolate_chunked's blocks (one per block)
    _warn_no_repeat: ClassVar[bool] = True  # off in interpolate_chunked's blocks (said once for the cube)

    def _check_options(self) -> None:
        o = self.options
        for key in ("n_modes", "em_iter"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if key == "n_modes" else 0):
                raise InputError(f"method 'eof': option {key} must be an integer >= {1 if key == 'n_modes' else 0}, "
                                 f"got {v!r}")
        # numbers.Real: a NumPy float32 was refused as 'not a number'; True was taken as ridge 1
        if isinstance(o["ridge"], bool) or not isinstance(o["ridge"], numbers.Real) or not np.isfinite(o["ridge"]) \
                or o["ridge"] < 0:
            raise InputError(f"method 'eof': option ridge must be a number >= 0, got {o['ridge']!r}")
        o["ridge"] = float(o["ridge"])
        check_harmonics(self.name, o["harmonics"])

    def _fit(self, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray) -> None:
        X = self._to_matrix(x).astype(np.float64)  # (time, n), 0 at gaps
        M = self._to_matrix(obs)
        # the seasonal cycle out first (fitted on the fitting observations only), back at the end
        self._label = _label(self.da_)
        self.seasonal_ = seasonal_cycle(self.options["harmonics"], self.da_, x, obs, ocean, self._label,
                                      mean=np.nan_to_num(self.mean_ / self.scale_))  # shrunk to the neighbours'
        season = self.seasonal_.matrix(np.float64)
        if season is not None:
            X = np.where(M, X - season, 0.0)
        if self._warn_no_repeat and not (obs.sum(axis=0) >= _MIN_PIXEL_OBS).any():
            warn_no_repeat(self._label, int(obs.sum()))
        empty = np.flatnonzero(~M.any(axis=1))
        if empty.size and self._warn_empty_steps:
            # an all-NaN day was "filled" with the pixel means (amplitudes 0), unsaid, where DINEOF warns
            idx = self.da_.indexes.get(self.da_.dims[0])
            first = idx[empty[0]] if idx is not None else f"step {empty[0]}"
            warn(f"{self._label}: {empty.size} time step(s) with no observation (the first: {first}); no data sets "
                 "the modes' amplitudes there, so they get the modes' mean state (or seasonal cycle), not a fill")
        k = int(min(self.options["n_modes"], *X.shape))
        filled = X
        for _ in self._progress(range(self.options["em_iter"] + 1), "EM"):
            # Re-centre on the filled matrix: the base's mean of the observations alone is biased
            # where gaps are not random in time (zero for the first pass).
            mu = filled.mean(axis=0)
            E = _leading_eofs(filled - mu, k)  # (k, n), orthonormal rows
            recon = mu + _gappy_amplitudes(E, X - mu, M, self.options["ridge"]) @ E
            filled = np.where(M, X, recon)
        self.n_modes_ = int(E.shape[0])
        self._E, self._mu = E, mu  # the last pass's modes and centre: transform() projects on them
        if season is not None:
            recon = recon + season
        self._filled = self._from_matrix(recon.astype(np.float32))

    def _reconstruct(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self._filled, None

    can_transform: ClassVar[bool] = True

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self.seasonal_.state()
        return ({"E": np.asarray(self._E, np.float64), "mu": np.asarray(self._mu, np.float64), **arrays},
                {**meta, "n_modes": int(self.n_modes_), "label": self._label})

    def _restore(self, arrays, meta, n_ocean, array) -> None:
        from .climatology import SeasonalCycle

        k = meta["n_modes"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"n_modes {k!r} is not a positive integer")
        self._E, self._mu = array("E", (k, n_ocean)), array("mu", (n_ocean,))
        self.n_modes_, self._label = k, str(meta["label"])
        self.seasonal_ = SeasonalCycle.saved(meta, arrays, n_ocean, self.ocean_, array)

    def _transform(self, x: np.ndarray, obs: np.ndarray, da: xr.DataArray) -> tuple[np.ndarray, np.ndarray | None]:
        # the fit's last projection, on the new steps: the same modes, centre and ridge
        X = self._to_matrix(x).astype(np.float64)
        M = self._to_matrix(obs)
        season = self.seasonal_.at(da, _label(da), np.float64)
        if season is not None:
            X = np.where(M, X - season, 0.0)
        E, mu = self._E, self._mu
        # cut to a box, the ridge stays relative to the whole grid's pixels: the box's fill is the whole
        # grid's of a step observed in the box only
        recon = mu + _gappy_amplitudes(E, X - mu, M, self.options["ridge"], getattr(self, "_ridge_n", None)) @ E
        if season is not None:
            recon = recon + season
        return self._from_matrix(recon.astype(np.float32)), None

    def _cut_state(self, new, sel: np.ndarray, iy: np.ndarray, ix: np.ndarray, label: str) -> None:
        # The cut modes are not orthonormal: a combination of them the box hardly sees (a box far smaller
        # than the modes' scale: they look alike over it) has its amplitude solved from little signal,
        # with a ridge of 1 % of the observed share, and the noise it amplifies fills the gaps. q: each
        # combination's energy in the box over its even share of the grid (1: as much as anywhere)
        n, k = self._E.shape[1], self._E.shape[0]
        s = np.linalg.svd(self._E[:, sel], compute_uv=False)
        q = np.concatenate([s ** 2 * n / sel.size, np.zeros(max(k - s.size, 0))])
        weak = int((q < _CUT_SEEN).sum())
        if weak:
            why = (f"fewer than the fit's {k} modes" if sel.size < k else
                   f"the modes' condition number there {s.max() / max(s.min(), 1e-300):.3g}")
            warn(f"{label}: the box's {sel.size} ocean pixels see {weak} of the {k} combinations of the eof fit's modes "
                 f"at under {_CUT_SEEN:.0%} of their share of its grid ({why}): their amplitudes are poorly "
                 "determined from the box and its fill may be far from the whole grid's (fill the whole grid and cut "
                 "the output, use a larger box, or fewer modes)", UserWarning)
        new._E, new._mu = self._E[:, sel], self._mu[sel]
        new._ridge_n = getattr(self, "_ridge_n", None) or self._E.shape[1]
        new.seasonal_ = self.seasonal_.cut(sel, iy, ix)
        new._filled = None

    def _fit_attrs(self) -> dict[str, Any]:
        return {"n_modes": self.n_modes_, **self.seasonal_.attrs(self._label)}
