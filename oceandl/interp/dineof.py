"""DINEOF: Data Interpolating Empirical Orthogonal Functions.

Beckers & Rixen (2003), Alvera-Azcarate et al. (2005): the gaps of the anomaly matrix
(time, ocean pixels) start at 0 and are repeatedly replaced by its rank-k truncated SVD until they
stop changing. The number of modes k is chosen by cross-validation on a set of observed points
hidden from the fit; the optional temporal filter of Alvera-Azcarate et al. (2009) smooths the
temporal covariance before the modes are extracted.

Auxiliary variables (``aux``, covariates such as a passive-microwave SST) make it the multivariate
DINEOF of Alvera-Azcarate et al. (2007): each normalised covariate is more columns of the matrix.

Shrinkage (``shrink``): the classic algorithm fits each pixel's mode loadings to that pixel's own
observations only, so pixels under persistent cloud, seen on a few days, get loadings that fit
those days exactly and extrapolate wildly to the others; a validation on withheld clear-sky
pixels does not see it (those pixels are, by construction, often observed). Soft-thresholding the
singular values (the fixed point is then the nuclear-norm-penalised completion of Mazumder,
Hastie & Tibshirani 2010, "Soft-Impute") damps what few observations support. The default
``shrink="auto"`` lets cross-validation choose between the classic rank path and a threshold path
at ``max_modes`` modes. Measured on the synthetic SST (120 x 64 x 64, 60 % cloud, seed 1): the
RMSE against the truth on all gaps 1.49 (classic) -> 1.28 (auto, which took the threshold path),
on the withheld pixels 1.11 -> 0.99; on a clean rank-3 cube CV keeps the classic path.
"""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import threading
from collections.abc import MutableMapping
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from oceandl.errors import InputError, warn
from oceandl.utils import seed_torch, torch_rng_scope

from .base import (SIGMA_CLIP, SIGMA_MIN_POINTS, Interpolator, _label, aux_anomaly, calibration_scale, calibration_z,
                   refuse_undated, time_steps, unordered_step)
from .base import clean_axes as _clean_axes
from .climatology import check_harmonics, seasonal_cycle

__all__ = ["DINEOF", "cv_points"]

# Up to this many time steps (or pixels) the modes come from the eigendecomposition of the small
# covariance matrix (exact, and much faster than a LAPACK SVD of the data); beyond, randomised SVD.
_GRAM_MAX = 4096
# DINEOF's iterations on a matrix whose Gram product (min(nt, n)^2 max(nt, n) multiply-adds) is at most
# this many run on one torch thread: each iteration is then a few small products and a small eigh
# (40 x 576: 1 ms on one thread), and an OpenMP team of two on a busy 2-core machine waited for its
# descheduled second thread in every parallel region: 6-50 ms per 40 x 40 eigh against 0.7, the
# in-memory fill of synthetic_sst(40, 24, 24, cloud 0.7) took 30-60 s against 2 (its 1181
# iterations, which --chunks blocks ran on dask threads, one OpenMP thread each, in about 1 s)
_ONE_THREAD_MAX = 2**25
# The thresholds (fractions of the leading singular value) that shrink="auto" tries, strongest first.
_SHRINK_PATH = (0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005)
# Fewer CV squares than this: the CV error of each k is that of a few cloud-sized patches on a few
# days, and the mode count (and threshold) it picks is noise (16 x 24 x 24 synthetic SST: 3 squares,
# 1 to 15 modes by seed, truth RMSE 1.2 to 2.0; 12 x 12 px --chunks blocks: 1-2 squares each).
_MIN_CV_SQUARES = 10
# The options of the cross-validation that chooses the number of modes: without effect when n_modes is set.
_CV_OPTIONS = ("max_modes", "cv_fraction", "cv_radius", "cv_shape", "patience")
# error_map: the per-pixel residual variance is shrunk toward the global one with the weight of this
# many observations (a pixel seen on a few days has a residual near 0 there: its loadings fit them)
_RESID_PRIOR_OBS = 10
# error_map: entries of the (pixels, k * k) mode-product block computed at once
_ERRMAP_BLOCK = 2**22
# the error model's passes over the cube: values per block of steps (or pixels), 8 MB in float64
_CUBE_BLOCK = 2**20
# error_map: the share of the observations hidden by cloud-mask transfer, after the fill, to calibrate
# sigma on (the fill is rerun at the chosen rank without them); fewer such points than
# base.SIGMA_MIN_POINTS: the square-CV calibration (1 with n_modes fixed), warned; |err / sigma| beyond
# base.SIGMA_CLIP robust stds are left out of the fit (base.calibration_z)
_SIGMA_FRACTION = 0.08
_SIGMA_SEED_TAG = 0x51C3A  # the held-out set's own random stream: default_rng([seed, this])
ERROR_MAP_TEXT = ("DINEOF error map (after Beckers et al. 2006): cv_sigma_scale * sqrt(the optimal-interpolation "
                  "error variance of the retained modes' amplitudes given the time step's observed pixels + that "
                  "of the pixel's mode loadings given its observed time steps + the residual variance of the "
                  "truncated fit at the pixel's observations)")
_CLOUD_CAL_TEXT = (" (cv_sigma_scale fitted after the fill so that rms(error / sigma) = 1 on {points} observed pixels "
                   "hidden by cloud-mask transfer ({fraction:.0%} of the observations, real cloud shapes pasted on "
                   "other days; the fill rerun at the chosen rank without them, the error model of that run; "
                   "{dropped} beyond {clip:g} robust stds left out); the fill itself is the one without error_map")


class _ErrorMapFlag:
    """``gives_sigma`` per instance (the ``error_map`` option); False on the class (the default)."""

    def __get__(self, obj, objtype=None) -> bool:
        return False if obj is None else bool(obj.options.get("error_map", False))


def cv_points(obs: np.ndarray, fraction: float, radius: int, rng: np.random.Generator) -> np.ndarray:
    """Spatially clustered cross-validation points among the observations.

    Squares of side ``2 * radius + 1`` pixels, centred on random observed pixels of random time
    steps, are hidden (only their observed pixels) until ``fraction`` of the observations are
    taken. Clustered points test the filling of cloud-like gaps, which isolated points would not.

    Parameters
    ----------
    obs : bool ndarray (time, lat, lon)
    fraction : float in (0, 1)
    radius : int >= 0 (0 gives scattered single points)
    rng : numpy Generator

    Returns
    -------
    bool ndarray (time, lat, lon), a subset of ``obs``
    """
    return _cv_points(obs, fraction, radius, rng)[0]


def _cv_points(obs: np.ndarray, fraction: float, radius: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """:func:`cv_points` and the number of squares (points with ``radius=0``) that hold them."""
    cv = np.zeros_like(obs)
    idx = np.flatnonzero(obs)
    target = max(1, int(round(fraction * idx.size)))
    if radius == 0:
        cv.flat[rng.choice(idx, size=min(target, idx.size), replace=False)] = True
        return cv, int(min(target, idx.size))
    _, ny, nx = obs.shape
    taken = squares = 0
    for flat in rng.permutation(idx):
        t, i, j = np.unravel_index(flat, obs.shape)
        sl = (t, slice(max(i - radius, 0), min(i + radius + 1, ny)), slice(max(j - radius, 0), min(j + radius + 1, nx)))
        new = obs[sl] & ~cv[sl]
        cv[sl] |= new
        taken += int(new.sum())
        squares += bool(new.any())
        if taken >= target:
            break
    return cv, squares


def _cv_clouds(obs: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, int] | None:
    """A cross-validation set of real cloud shapes, as DINEOF's ``dineof_cvp`` makes it: the cloud
    patterns of random other days pasted onto the cleanest ones
    (:func:`~oceandl.interp.withhold.withhold_by_cloud_transfer`), and the number of separate
    cloud patches (4-connected, per day) holding it; None when there is no cloud pattern to paste."""
    from scipy import ndimage

    from .withhold import withhold_by_cloud_transfer

    if obs.shape[0] < 2 or not (~obs & obs.any(axis=0)).any():
        return None
    cv = withhold_by_cloud_transfer(obs, fraction=fraction, seed=int(rng.integers(2**31)))
    return cv, int(sum(ndimage.label(day)[1] for day in cv if day.any()))


@contextlib.contextmanager
def _one_thread_if_small(A):
    """One torch intra-op thread while the body runs, when ``A`` (time, n) is a small CPU matrix
    (see ``_ONE_THREAD_MAX``) and this is the main thread: ``torch.set_num_threads`` is
    process-wide, so two threads setting and restoring it could leave it at 1 (dask's worker
    threads, where chunked blocks are filled, already ran their small products on one thread)."""
    import torch

    nt, n = A.shape
    before = torch.get_num_threads()
    if (A.device.type != "cpu" or before <= 1 or min(nt, n) ** 2 * max(nt, n) > _ONE_THREAD_MAX
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _time_order(da) -> np.ndarray:
    """Indices that sort the (time, lat, lon) DataArray ``da``'s time steps by their coordinate
    (``arange`` without a coordinate, or with values that do not compare)."""
    n = da.sizes[da.dims[0]]
    idx = da.indexes.get(da.dims[0])
    if idx is None or unordered_step(da) is None:
        return np.arange(n)
    try:
        return np.argsort(np.asarray(idx.values), kind="stable")
    except TypeError:
        return np.arange(n)


def _check_time_steps(da) -> None:
    """Refuse a time coordinate that does not increase, and warn when the steps are uneven (days
    dropped, several passes a day): the temporal filter treats consecutive steps as equally
    spaced days, so it smooths across a gap as if the days were adjacent (Alvera-Azcarate et al.
    2009 assume a regular series), and across unrelated days when they are out of order.

    Raises
    ------
    InputError
        If the time coordinate is shuffled, reversed or repeated.
    """
    refuse_undated(da, "method 'dineof'", "temporal_filter")  # sorting would not help: NaT stays out of order
    i = unordered_step(da)
    if i is not None:
        # shuffled days were smoothed with each other, unsaid: gap RMSE 0.63 against 0.059 sorted
        tdim = da.dims[0]
        idx = da.indexes[tdim]
        raise InputError(f"method 'dineof': {tdim} is not increasing (step {i}: {idx[i - 1]} then {idx[i]}); "
                         f"temporal_filter smooths consecutive steps: sort them (da.sortby({str(tdim)!r})) "
                         "or leave temporal_filter unset")
    steps = time_steps(da)
    if steps is None:
        return
    ratio = np.asarray(steps / steps.min(), dtype=np.float64)  # timedelta / timedelta: a number
    if ratio.max() > 1.5:
        n_odd = int(np.count_nonzero(~np.isclose(ratio, np.median(ratio), rtol=0.1)))
        warn(f"temporal_filter: the time steps are uneven ({n_odd} of {steps.size} differ from the "
                      f"median by over 10 %, the longest {ratio.max():.3g}x the shortest); the "
                      "filter treats consecutive steps as equally spaced (insert the missing days as "
                      "all-NaN steps to keep them apart)")


def _warn_empty_steps(da, obs: np.ndarray, label: str) -> None:
    """Warn about time steps with no observation left to fit: no data set the temporal modes'
    amplitudes there, so without the temporal filter DINEOF fills them with little more than each
    pixel's mean (or seasonal cycle; exactly it with ``center=False``), unsaid (an all-NaN day of a
    24-day 16 x 18 rank-2 cube: RMSE 0.70 there against the truth, 0.30 with temporal_filter=0.01
    and 0.20 with filter_iter=3 too, which carry the neighbouring days' amplitudes over it)."""
    empty = np.flatnonzero(~obs.any(axis=(1, 2)))
    if empty.size == 0:
        return
    tdim = da.dims[0]
    idx = da.indexes.get(tdim)
    first = idx[empty[0]] if idx is not None else f"step {empty[0]}"
    warn(f"{label}: {empty.size} time step(s) with no observation (the first: {first}); no data sets "
         "the modes' amplitudes there, so they get little more than each pixel's mean (or seasonal cycle): set "
         "temporal_filter (e.g. --set temporal_filter=0.01) to fill them from the neighbouring steps")


def _laplacian_filter(nt: int, alpha: float, n_apply: int):
    """(I + alpha L)^n_apply with L the second difference in time (reflecting ends), (nt, nt)."""
    L = np.zeros((nt, nt))
    i = np.arange(nt)
    L[i, i] = -2.0
    L[i[1:], i[:-1]] = 1.0
    L[i[:-1], i[1:]] = 1.0
    L[0, 0] = L[-1, -1] = -1.0  # no flux through the ends
    F = np.eye(nt) + alpha * L
    return np.linalg.matrix_power(F, n_apply)


def _amplitude_information(m, V, r_oi):
    """Each step's ``G_t = V^T diag(m_t / r_oi) V``, (time, k, k): what its observed pixels tell of
    its amplitudes; ``m`` (time, n) float mask, ``V`` (n, k)."""
    import torch

    nt, (n, k) = m.shape[0], V.shape
    # (nt, n) @ (n, k*k), by blocks of pixels
    step = max(1, _ERRMAP_BLOCK // (k * k))
    G = torch.zeros(nt, k * k, dtype=torch.float64, device=m.device)
    for i in range(0, n, step):
        Vb = V[i:i + step]
        W = (Vb[:, :, None] * Vb[:, None, :]).reshape(-1, k * k)
        G += m[:, i:i + step] @ (W / r_oi[i:i + step, None])
    return G.reshape(nt, k, k)


def _amplitude_cov(m, V, r_oi, lam):
    """The OI analysis covariance of each step's amplitudes, (time, k * k) symmetrised:
    ``P_t = (diag(1 / lam) + V^T diag(m_t / r_oi) V)^-1``; ``m`` (time, n) float mask, ``V`` (n, k)."""
    import torch

    nt, k = m.shape[0], V.shape[1]
    P = torch.linalg.inv(_amplitude_information(m, V, r_oi) + torch.diag(1 / lam)).reshape(nt, k * k)
    return (P + P.reshape(nt, k, k).transpose(1, 2).reshape(nt, k * k)) / 2


def _time_positions(da) -> tuple[np.ndarray, str] | None:
    """The time coordinate of ``da`` (its first dim) as float positions, and their kind: seconds
    since 1970-01-01 in the dates' calendar (``"seconds:<calendar>"``, datetime64 or cftime), or
    the coordinate's own numbers (``"number"``); None without a coordinate, with values that are
    neither (labels) or with NaT."""
    idx = da.indexes.get(da.dims[0])
    if idx is None or len(idx) == 0:
        return None
    vals = np.asarray(idx.values)
    if np.issubdtype(vals.dtype, np.number) and not np.issubdtype(vals.dtype, np.bool_):
        out = vals.astype(np.float64), "number"
    elif np.issubdtype(vals.dtype, np.datetime64) or vals.dtype == object:
        try:  # xarray's CF encoding: datetime64 and cftime dates alike
            num, _, cal = xr.coding.times.encode_cf_datetime(vals, units="seconds since 1970-01-01")
        except (TypeError, ValueError, AttributeError, OverflowError):
            return None
        cal = "standard" if cal in ("standard", "gregorian", "proleptic_gregorian") else str(cal)
        out = np.asarray(num, dtype=np.float64), f"seconds:{cal}"
    else:
        return None
    return out if np.isfinite(out[0]).all() else None


def _fitted_step(pos: tuple[np.ndarray, str] | None) -> tuple[float, str] | None:
    """The fit's typical time step (the median of its positive steps, in time order) and its kind, or
    None; ``pos``: the fitted field's :func:`_time_positions`."""
    if pos is None or pos[0].size < 3:
        return None
    d = np.diff(np.sort(pos[0]))  # in time order: a fit on reversed steps had no step (None), shuffled ones a wrong one
    d = d[d > 0]
    return (float(np.median(d)), pos[1]) if d.size and np.isfinite(d).all() else None


def _lag1(amp: np.ndarray, pos: np.ndarray | None, step: float | None) -> np.ndarray:
    """Each column's lag-1 correlation over the pairs of consecutive steps one fitted ``step`` apart
    (within 10 %; all consecutive pairs without positions), in [0, 0.99]; 0 with fewer than 2 pairs.
    ``amp`` (time, k)."""
    pair = np.ones(max(amp.shape[0] - 1, 0), dtype=bool)
    if pos is not None and step is not None:
        pair = np.isclose(np.diff(pos), step, rtol=0.1)
    if pair.sum() < 2:
        return np.zeros(amp.shape[1])
    a, b = amp[:-1][pair], amp[1:][pair]
    rho = (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0)).clip(min=1e-300)
    # a negative lag-1 correlation is no persistence to borrow; 0.99 keeps the process noise positive
    return np.clip(np.nan_to_num(rho), 0.0, 0.99)


def _aux_block(a: np.ndarray, mean, div: float, cols: np.ndarray, weight: float,
               dtype) -> tuple[np.ndarray, np.ndarray]:
    """A covariate's block of the state matrix: ``(a - mean) / div * weight`` at its ``cols`` pixels
    ((time, m) ``dtype``, 0 where missing) and where it is observed ((time, m) bool). ``a`` (time,
    lat, lon), NaN where missing; ``mean`` (lat, lon) or a number; the fit and :meth:`DINEOF.transform`
    share it, so that a new period's covariate is normalised with the fit's statistics."""
    seen = np.isfinite(a)
    anom = np.zeros(a.shape, np.float32)
    np.subtract(a, mean, out=anom, where=seen, casting="same_kind")  # in float64, stored as float32
    anom /= np.float32(div)
    block, m = anom[:, cols], seen[:, cols]
    del anom
    return (block * np.float32(weight)).astype(dtype, copy=False), m


def _smoothed_amplitudes(G, b, lam, f):
    """Kalman filter and Rauch-Tung-Striebel smoother of the mode amplitudes over the steps.

    ``G`` (time, k, k) each step's ``V^T diag(m_t / r) V``, ``b`` (time, k) its ``V^T diag(m_t / r)
    x_t``, ``lam`` (k,) the amplitudes' stationary variance, ``f`` (time, k) the AR(1) factor from
    the step before (row 0 unused; 0: no memory, which gives each step's own optimal interpolation).
    Returns the smoothed amplitudes (time, k) and their covariances (time, k * k), float64."""
    import torch

    nt, k = b.shape
    af, Pf = torch.empty(nt, k, dtype=torch.float64), torch.empty(nt, k, k, dtype=torch.float64)
    ap, Pp = torch.zeros(nt, k, dtype=torch.float64), torch.empty(nt, k, k, dtype=torch.float64)
    Pp[0] = torch.diag(lam)
    for t in range(nt):
        if t:
            ap[t] = f[t] * af[t - 1]
            Pp[t] = f[t][:, None] * Pf[t - 1] * f[t][None, :] + torch.diag(lam * (1 - f[t] ** 2))
        # information form: P = (Pp^-1 + G)^-1, a = P (Pp^-1 ap + b); k x k, whatever the pixel count
        Li = torch.cholesky_inverse(torch.linalg.cholesky(Pp[t]))
        P = torch.linalg.inv(Li + G[t])
        Pf[t] = (P + P.T) / 2
        af[t] = Pf[t] @ (Li @ ap[t] + b[t])
    a, P = af.clone(), Pf.clone()
    for t in range(nt - 2, -1, -1):
        if not bool((f[t + 1] > 0).any()):
            continue  # no memory across this step: the filter's estimate is the smoothed one
        C = torch.linalg.solve(Pp[t + 1], (Pf[t] * f[t + 1][None, :]).T).T  # Pf Phi^T Pp^-1
        a[t] = af[t] + C @ (a[t + 1] - ap[t + 1])
        Pt = Pf[t] + C @ (P[t + 1] - Pp[t + 1]) @ C.T
        P[t] = (Pt + Pt.T) / 2
    return a, P.reshape(nt, k * k)


def _inflation_factor(stats: dict) -> float:
    """How many neighbouring observations one independent one is worth: the residual of the
    truncated fit is correlated in space (it is the unresolved small scales), so the OI must not
    count each observed pixel as independent. With ``rho`` the lag-1 correlation of the residual
    between observed neighbours along each grid axis (an AR(1) per axis; ``stats[axis]``: the sums
    of a*b, a*a, b*b over the pairs and their count, ``DINEOF._inflation_sums``), the factor is
    ``(1 + rho_y) / (1 - rho_y) * (1 + rho_x) / (1 - rho_x)``, in [1, 100]; an axis with fewer
    than 10 pairs counts 1."""
    import torch

    factor = 1.0
    for ab, aa, bb, pairs in stats.values():
        if float(pairs) < 10:
            continue
        rho = float(ab / torch.sqrt(aa * bb).clamp(min=1e-300))
        rho = min(max(rho, 0.0), 0.98)
        factor *= (1 + rho) / (1 - rho)
    return float(min(factor, 100.0))


def _error_variance(P, V, r, U, Q):
    """The error variance (time, n): the amplitudes' ``v_p^T P_t v_p``, the pixel's unresolved
    ``r_p`` and the loadings' ``u_t^T Q_p u_t`` (``U`` (time, k) the temporal modes, ``Q(i, j)`` the
    loadings' covariances of pixels i to j), by blocks of pixels."""
    import torch

    nt, (n, k) = P.shape[0], V.shape
    step = max(1, _ERRMAP_BLOCK // (k * k))
    WU = (U[:, :, None] * U[:, None, :]).reshape(nt, k * k)
    var = torch.empty(nt, n, dtype=torch.float64, device=P.device)
    for i in range(0, n, step):
        Vb = V[i:i + step]
        W = (Vb[:, :, None] * Vb[:, None, :]).reshape(-1, k * k)
        var[:, i:i + step] = (P @ W.T).clamp_(min=0) + r[i:i + step] + (WU @ Q(i, i + step).T).clamp_(min=0)
    return var


class DINEOF(Interpolator):
    """Iterative truncated-SVD gap filling with the number of modes chosen by cross-validation.

    Algorithm (on the normalised anomaly matrix X, time x ocean pixels):

    0. With ``harmonics`` (default 0: none), each pixel's seasonal cycle (its mean plus annual
       harmonics, the climatology's fit: :func:`~oceandl.interp.climatology.seasonal_cycle`) is
       fitted on its observations and subtracted; the steps below reconstruct the anomalies from
       it, and the cycle is added back to the result (Alvera-Azcarate et al. 2005 remove the
       climatology first).
    1. Hide ``cv_fraction`` of the observed points as a CV set (clustered in squares of radius
       ``cv_radius``, see :func:`cv_points`; or other days' clouds, ``cv_shape="clouds"``).
    2. Gaps (and CV points) start at 0. For k = 1, 2, ...: repeat {rank-k SVD of X; gaps <- the
       reconstruction} until the relative change of the gap values (L2) is below ``tol`` or
       ``max_iter`` iterations; record the CV RMSE (in the input's units). Each k starts from the
       k-1 solution. Stop after ``patience`` modes without improvement, or at ``max_modes``.
       With ``shrink="auto"``, then the threshold path: at k = ``max_modes``, the singular values
       lowered by lambda times the leading one (floored at 0), for lambda = 0.2, 0.1, 0.05, 0.03,
       0.02, 0.01, 0.005 in turn (warm starts; stop after 2 without improvement); the threshold
       path wins unless the classic rank's CV error is lower by more than one standard error (the
       paired difference per time step): the classic fit, unconstrained where data are thin, filled
       -22 to 44 degC on 16 of 93 synthetic cubes (44 x 40 x 40, 50-90 % cloud) while its CV error
       was within 2-5 % of the threshold's.
    3. Put the CV points back and iterate to convergence with the best k (and lambda), from its CV
       solution. At the observed points the output (with ``keep_observed=False``) is the fit.

    With ``n_modes`` set, steps 1 and 3 are skipped and k grows from 1 to ``n_modes``.

    Auxiliary variables (``fit(da, aux=...)``: covariates on the field's days and grid, a
    passive-microwave SST that sees under the clouds) make it the multivariate DINEOF of
    Alvera-Azcarate et al. (2007): each covariate, normalised as the neural methods normalise
    theirs (minus its per-pixel temporal mean, its global mean where a pixel has fewer than 2
    values, over one global rms scale; its seasonal cycle kept, whatever ``harmonics`` removes from
    the field: removing it too was no better) and multiplied by ``aux_weight``, is a block of
    columns of X beside the field's (its pixels ever valid; its own gaps are more gaps to iterate
    on). The modes are fitted to all the blocks together, so a day's amplitudes are set by the
    covariates' observations as well as the field's; the output is the field's block, the
    covariates' are discarded. The CV points (and ``error_map``'s calibration points) are drawn
    among the field's observations only: the covariates are inputs, never scored. With
    ``error_map``, sigma is the field's (the covariates' observations inform each step's
    amplitudes; each block has its own residual variance and spatial correlation). A fit with
    covariates keeps their normalisation (per-pixel mean, scale, weight, names, units) and its
    modes span their columns: :meth:`transform` of another period takes that period's covariates
    (``aux=``, the fit's names), each day's amplitudes solved on its observed field pixels and its
    covariates' values; :meth:`save` keeps them and :meth:`cut` cuts them to a box with the field's. Fit on days 1-60 of the
    synthetic 90 x 32 x 32 cube, fill 61-90 (tests/test_dineof_fit_aux.py): gap RMSE 1.321 -> 1.255
    with ``sst_mw``; the 60 days' modes hardly span the new days (the truth's own projection on
    them: 1.28 on day 71, 0.73 on a fitted day), which bounds what the covariate can bring.
    Measured (docs/experiments/dineof_aux.py; synthetic SST 90 x 64 x 64, 60 % cloud, seeds 0 / 1
    / 2, ``sst_mw``: 0.5 degC RMS, 40 % missing), RMSE against the truth on the cloud gaps:
    1.259 / 1.362 / 1.242 alone, 1.217 / 1.312 / 1.201 with ``aux_weight=1``, 1.194 / 1.296 /
    1.179 with 2 (0.5: 1.227 / 1.328 / 1.227; 4: 1.188 / 1.289 / 1.197); the CV took
    ``max_modes`` (20) in each; the fit 2.6 -> 5.8 s (seed 0, 2 cores). A year of it (365 x 40 x
    40, ``harmonics=2``, seeds 0 / 1): 1.145 / 1.119 -> 1.018 / 1.008. The rank-k modes cannot
    carry a day's small scales into the field, whatever the covariate knows of them: with the
    truth itself as the covariate the 90-day gap RMSE was 1.18 (1.26 without). Where whole days
    are clouded (their amplitudes unknown to the field alone) the covariate takes the error there
    from ~1 degC to the noise (tests/test_dineof_aux.py). A covariate of no information costs at
    weight 1 (pure noise, rank-4 test cube: 0.061 -> 0.171; 0.063 at 0.05): ``aux_weight`` is
    the user's, not chosen by CV.

    With ``temporal_filter=alpha`` (Alvera-Azcarate et al. 2009) the temporal modes are the
    leading eigenvectors of the filtered temporal covariance ``F X X^T F^T``,
    ``F = (I + alpha L)^filter_iter`` (L: second difference in time, equally spaced steps
    assumed, with a warning when the time coordinate says otherwise; 0 < alpha <= 0.25 keeps the
    explicit filter stable); as in DINEOF, each mode of the reconstruction is ``u s v^T`` with
    ``s`` the mode's filtered singular value and ``v`` the projection of X on it, normalised
    (the projection scaled by ``s / |X^T u|``, which damps the modes the filter smooths most).
    On the synthetic SST (60 x 32 x 32, 60 % cloud, seeds 0-2, filter 0.01) this fills better than
    the bare projection this method used before (truth RMSE on the gaps 1.76 -> 1.61, 1.68 -> 1.47
    with ``filter_iter=3``); on a noiseless low-rank field under a strong filter it damps the
    signal a little (rank-2 test cube, ``temporal_filter=0.25, filter_iter=3``: 0.06 -> 0.11).

    Differences from the DINEOF program (Fortran, aida-alvera/DINEOF), deliberate:

    * Cross-validation set: squares of ``2 cv_radius + 1`` px by default, ``cv_fraction`` (3 %)
      of the observations; DINEOF draws random points (1 % of the matrix + 40, at most 3 %), or
      takes cloud patterns pasted from other days onto the cleanest ones (its ``dineof_cvp``
      script; here ``cv_shape="clouds"``).
      Measured, truth RMSE on the gaps, synthetic SST (5 seeds), squares / pasted clouds: 60 x 32
      x 32 at 60 % cloud, default 1.41 / 1.47, ``shrink=0`` 2.30 / 2.10; 100 x 32 x 32 at 40 %,
      default 1.02 / 1.02, ``shrink=0`` 1.84 / 1.49: clouds choose the classic rank better, not the
      default's threshold.
    * Convergence: the L2 change of the gap values over their L2 norm below ``tol``; DINEOF's is
      the RMS change over the data's standard deviation (truth RMSE on the gaps within 0.001 of
      each other, synthetic SST 60 x 32 x 32, 3 seeds, either ``shrink``). ``max_iter`` is 100
      (DINEOF's example file: 300); fits stopped by it are counted (``cv_unconverged_``,
      ``converged_``). The mode count stops after
      ``patience`` modes without a lower CV error; DINEOF after three successive increases.
    * Anomalies from each pixel's time mean of the observations (and re-centred at every
      iteration, ``center``); DINEOF removes one mean of the whole matrix.
    * Temporal filter: ``filter_iter`` defaults to 1 (DINEOF's example file: ``numit = 3``), and
      the steps are taken as equally spaced, where DINEOF's filter reads their spacing from its
      time file.
    * Error map (``error_map=True``, after Beckers et al. 2006): the error variance of a pixel at
      a time step is the optimal-interpolation (OI) analysis variance of the k retained modes'
      amplitudes given that step's observed pixels (prior: each amplitude's variance s_i^2 / nt;
      observation noise: the residual variance r of the truncated fit at the observations),
      projected on the pixel's loadings, ``v_p^T (diag(nt / s^2) + V_o^T V_o / r)^-1 v_p`` (one
      k x k solve per step), plus the pixel's own unresolved variance ``r_p`` (r at that pixel,
      shrunk toward the global one); sigma is its square root times one global factor,
      ``cv_sigma_scale``, fitted after the fill (which is therefore the one without the error
      map, bit for bit) on 8 % of the observations hidden by cloud-mask transfer
      (:func:`~oceandl.interp.withhold.withhold_by_cloud_transfer`, seeded from ``seed``): the
      fill rerun at the chosen rank and threshold without them, the model of that run, the scale
      rms(error / sigma) on them (|error / sigma| beyond 5 robust stds left out). The CV squares
      are easier to fill than real clouds: fitted on them the scale was 1.3-1.4x too small (demo
      cube: rms(error / sigma) on withheld clouds 1.27-1.43 -> 1.01-1.07, against the truth under
      the clouds 1.76-1.87 -> 1.26-1.48). Under 200 such points: the scale fitted on the CV
      points, or 1 (not calibrated) with ``n_modes`` fixed, warned; the sigma attrs say which
      (``sigma_calibration``, ``sigma_calibration_points``, ``sigma_calibration_fraction``).
      DINEOF's own error map has no such calibration. Measured: docs/benchmarks.md. No outlier
      detection.
    * Nothing is dropped for too little data: a pixel never observed is land (left NaN), one
      observed once is filled, a time step with no observation is filled with a warning. DINEOF
      itself drops only the never-observed pixels; its users often remove the images above
      95 % cloud first. Six days cut to 1 % cover in a 60 x 32 x 32 synthetic SST, truth RMSE on
      them kept / removed: 1.66 / 1.26, 1.18 / 1.25, 1.21 / 1.23 (seeds 0-2; on seed 0 the CV
      chose the classic rank with them kept): no consistent gain from removing them.
    * ``shrink="auto"`` (Soft-Impute, above) is not in DINEOF; ``shrink=0`` is its classic fit.

    Options
    -------
    max_modes : int, default 20
    n_modes : int or None, default None (choose by CV)
        Fixed: no cross-validation runs, so ``max_modes``, ``cv_fraction``, ``cv_radius`` and
        ``patience`` are refused with it (they would have no effect).
    tol : float, default 1e-3
    max_iter : int, default 100
    cv_fraction : float, default 0.03
    cv_radius : int, default 4 (9 x 9 pixel clusters: cloud-sized CV gaps; 3 x 3 squares picked too many modes on the synthetic SST, held-out RMSE 1.19 vs 0.99)
        The default is lowered on grids under 18 pixels a side, so that a square's side is at most
        half the grid's smaller side (radius 2 on 12 x 12, 0 on 4 x 5); a value given is used as is.
    cv_shape : "squares" or "clouds", default "squares"
        ``"clouds"``: the CV set is made as DINEOF's ``dineof_cvp`` makes it, the cloud patterns of
        random other days pasted onto the cleanest days
        (:func:`~oceandl.interp.withhold.withhold_by_cloud_transfer`, ``cv_fraction`` of the
        observations; ``cv_radius`` is then refused); squares where there is no cloud to paste
        (warned). It chooses the classic rank (``shrink=0``) better, not the default's threshold
        (see the differences above).
    patience : int, default 3
    temporal_filter : float or None, default None
        Filter strength alpha; the steps must be in time order (a time coordinate that does not
        increase is refused) and are treated as equally spaced (uneven steps are warned about).
    filter_iter : int, default 1
        Applications of the filter (DINEOF's ``numit``); refused without ``temporal_filter``.
    dtype : "float32" or "float64", default "float32"
    svd : "auto", "gram", "full", "lowrank" or "subspace", default "auto"
        How the leading modes are computed: ``"gram"`` eigendecomposes the small covariance
        matrix (time x time, or pixel x pixel if fewer pixels), exact and fastest for moderate
        sizes; ``"full"`` is ``torch.linalg.svd``; ``"lowrank"`` is ``torch.svd_lowrank``
        (randomised, seeded); ``"subspace"`` carries the leading vectors from one iteration to
        the next and refines them with one subspace-iteration step each (k + 5 columns), which
        costs a few thin products instead of a time x time covariance: the same fixed point (on
        the tests' cubes within 2e-5 of ``"gram"``, same CV choices), cheaper on long series.
        ``"auto"``: gram when the smaller side is at most 4096, else lowrank.
    shrink : "auto" or float in [0, 1), default "auto"
        Soft threshold on the singular values, as a fraction of the leading one. ``0`` is the
        classic DINEOF (Beckers & Rixen 2003); a number applies that threshold with k chosen by
        CV; ``"auto"`` chooses by CV between the classic rank path and the threshold path (about
        twice the work; with ``n_modes`` set, ``"auto"`` means 0).
    center : bool, default True
        Remove the column (pixel) means of the filled matrix before each SVD and add them back:
        the temporal means of the observations alone are biased by the gaps, which otherwise
        costs one extra mode.
    harmonics : "auto" or int, 0 to 6, default 0
        The seasonal cycle removed before the modes are fitted and added back after, per pixel:
        mean + ``a_j cos(2 pi j f) + b_j sin(2 pi j f)``, j = 1..k (``f`` the fraction of the
        year), least squares on the pixel's fitting observations (never the withheld ones), with
        the climatology's fallback to fewer harmonics where a pixel's observed days do not span
        the year (see :class:`~oceandl.interp.climatology.Climatology`). ``0``: anomalies from the
        time mean alone, the modes then spend themselves on the seasonal cycle (classic DINEOF
        input when the climatology was not removed beforehand). ``"auto"``: 2 (annual and
        semi-annual) when the time coordinate holds dates covering at least a year, else 0 (a
        shorter record cannot tell a seasonal cycle from a trend). Measured (``oceandl benchmark
        sst``, 730 days x 64 x 64): see docs/benchmarks.md. Each pixel's own fit is noisy where it
        has few clear days (cycle error 0.2 degC at 30 % cloud, 1.4 at 80 %, one year of the
        synthetic cube), and the modes cannot correct it (the anomalies left at a pixel's observed
        days are orthogonal to its harmonics), so the cycle removed is each pixel's fit shrunk
        toward its neighbours' by its own uncertainty
        (:func:`~oceandl.interp.climatology.shrink_harmonics`, as the climatology's): cycle error
        0.25 / 0.29 / 0.41 degC at 30 / 60 / 80 % cloud, and against the truth at the gaps
        ``harmonics=2`` beats 0 at every cover (docs/experiments/seasonal_dineof.py). The CV
        points are part of the seasonal fit, as of the pixel means; the CV error compares mode
        counts, all of which share that fit.
    error_map : bool, default False
        Also return ``sigma``, the expected error std (see the differences above); costs one more
        fill at the chosen rank (on the observations less the calibration's), one more SVD and a
        few (pixels x k^2) products, twice, and holds a few cube-sized float64 arrays while it runs. With ``temporal_filter`` the error model's modes are the
        unfiltered SVD's of the filled matrix.
    transform_smoother : bool, default True
        :meth:`transform` only: the new steps' mode amplitudes go through a Kalman smoother across
        the steps (each mode an AR(1) series whose lag-1 correlation is that of the fitted
        amplitudes, per fitted time step, raised to the power of the new steps' spacing), so that a
        clouded day borrows from the days around it, as the fit's own days do through the SVD.
        ``False``: each step alone (the optimal interpolation of its own observations). Without
        a time correlation in the fit (yearly steps, fewer than 3 steps) both are the same.
    transform_calibration : bool, default True
        :meth:`transform` with ``error_map`` only: sigma's scale is fitted on the new field's own
        observations (8 % of them hidden by cloud-mask transfer, the fill rerun without them), as
        the fit's is on the field fitted; ``False`` (or too few such observations: a single step)
        keeps the fit's ``cv_sigma_scale_``, which is off where the modes describe the new period
        less well than the fitted one. Filled by time blocks (:func:`~oceandl.interp.chunked.interpolate_chunked`
        with ``fit_on``), the same observations are hidden (:meth:`stream_held`, from the observed
        pixels of the whole series kept as bits by its first pass), the same scale fitted once
        (:meth:`stream_scale`): the in-memory sigma, whatever the blocks.
    aux_weight : float > 0, default 1.0
        With auxiliary variables (``aux``) only (refused without): each covariate's normalised
        block is multiplied by it (1: as much weight as the field's, unit rms each), to
        down-weight a noisy covariate (< 1) or lean on a good one (> 1). Output attr
        ``aux_variables``: the covariates' names.

    Attributes (after fit)
    ----------------------
    n_modes_ : int, n_iter_ : int (iterations of the final fit), converged_ : bool,
    cv_curve_ : list of (k, cv_rmse) (empty with fixed ``n_modes``), cv_rmse_ : float or None,
    cv_radius_ : int (the CV squares' radius used; only when CV ran; None with cloud shapes),
    cv_shape_ : "squares" or "clouds" (the CV set's shape; only when CV ran),
    cv_squares_ : int (the squares, points with radius 0, or cloud patches holding the CV set; under
    10 a warning says the mode count is uncertain),
    cv_unconverged_ : int (CV-stage fits, of ``len(cv_curve_) + len(shrink_curve_)``, stopped by
    ``max_iter`` before ``tol``; ``converged_`` is the final fit's),
    shrink_ : float (the threshold used; 0 = classic), shrink_curve_ : list of (lambda, cv_rmse),
    seasonal_ : :class:`~oceandl.interp.climatology.SeasonalCycle` (``harmonics``, ``levels``:
    the harmonics each pixel fitted). Output attrs ``harmonics`` (k) and, for k > 0,
    ``harmonics_fallback_pixels`` (ocean pixels that fitted fewer than k).
    cv_sigma_scale_ : float (with ``error_map``: the calibration factor, on cloud-shaped held-out points;
    on the CV points, or 1.0 with ``n_modes`` fixed, when they are too few).
    """

    name: ClassVar[str] = "dineof"
    takes_aux: ClassVar[bool] = True  # multivariate DINEOF: covariates are more columns of the state matrix
    # a static (lat, lon) covariate's columns have no temporal anomaly: nothing for the modes to use
    takes_static_aux: ClassVar[bool] = False
    #: interpolate_chunked's blocks: name -> (per-pixel mean (lat, lon), scale) of the whole cube, and
    #: the cube's field scale they go with (None: each covariate's own statistics, :func:`aux_anomaly`)
    _aux_norm: dict | None = None
    _aux_field_scale: float = 1.0
    libraries: ClassVar[tuple[str, ...]] = ("torch",)  # its SVDs and iterations run in torch
    _rare_neighbours: ClassVar[bool] = True  # a pixel seen once: centred on its neighbours' means
    _warn_small_cv: ClassVar[bool] = True  # interpolate_chunked sums the blocks' up in one warning
    _warn_empty_steps: ClassVar[bool] = True  # off in interpolate_chunked's blocks (one per block)
    #: interpolate_chunked with ``fit_on``, streaming transform() by time blocks (smoother or sigma's calibration
    #: on): None, or a dict: ``mode`` "collect" (each block's steps' information and projections gathered in
    #: ``G``, ``b``, the fill left 0), then "apply" (the whole series' smoothed amplitudes ``a``, ``P``, each
    #: block reading its ``days``: their indices in the series), then "calibrate" (the steps with hidden
    #: observations read again, their error / sigma gathered in ``z``); with ``calibrate``, the first pass
    #: (``first``) keeps every step's observed pixels (:meth:`_stream_keep`) for :meth:`stream_held`
    _stream: dict | None = None
    gives_sigma = _ErrorMapFlag()  # type: ignore[assignment]
    option_defaults: ClassVar[dict[str, Any]] = {
        "max_modes": 20,
        "n_modes": None,
        "tol": 1e-3,
        "max_iter": 100,
        "cv_fraction": 0.03,
        "cv_radius": 4,
        "cv_shape": "squares",
        "patience": 3,
        "temporal_filter": None,
        "filter_iter": 1,
        "dtype": "float32",
        "svd": "auto",
        "center": True,
        "shrink": "auto",
        # 0, the classic DINEOF input (each pixel's own seasonal fit lost against the truth at 60-85 %
        # cloud; the shrunk fit that replaced it beats 0 at 30-80 %, docs/benchmarks.md, but the
        # default stays what the benchmarks measured)
        "harmonics": 0,
        "error_map": False,
        "transform_smoother": True,
        "transform_calibration": True,
        "aux_weight": 1.0,
    }

    def _check_options(self) -> None:
        o = self.options

        def integer(key, low, allow_none=False):
            v = o[key]
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise InputError(f"method 'dineof': option {key} must be an integer >= {low}, got {v!r}")

        def number(key, low, high, allow_none=False):
            v = o[key]
            if v is None and allow_none:
                return
            # numbers.Real: a NumPy float32 (from an array of values to sweep) was refused as 'not a number'
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (low < v <= high):
                raise InputError(f"method 'dineof': option {key} must be a number in ({low}, {high}], got {v!r}")
            o[key] = float(v)

        integer("max_modes", 1)
        integer("n_modes", 1, allow_none=True)
        integer("max_iter", 1)
        integer("cv_radius", 0)
        integer("patience", 1)
        integer("filter_iter", 1)
        number("tol", 0.0, math.inf)
        number("cv_fraction", 0.0, 0.5)
        number("temporal_filter", 0.0, 0.25, allow_none=True)
        v = o["shrink"]
        if isinstance(v, str) and v == "auto":
            pass
        elif isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v < 1.0:
            raise InputError(f"method 'dineof': option shrink must be 'auto' or a number in [0, 1), got {v!r}")
        else:
            o["shrink"] = float(v)
        if o["dtype"] not in ("float32", "float64"):
            raise InputError(f"method 'dineof': option dtype must be 'float32' or 'float64', got {o['dtype']!r}")
        if o["svd"] not in ("auto", "gram", "full", "lowrank", "subspace"):
            raise InputError(f"method 'dineof': option svd must be 'auto', 'gram', 'full', 'lowrank' or "
                             f"'subspace', got {o['svd']!r}")
        if not isinstance(o["center"], (bool, np.bool_)):
            raise InputError(f"method 'dineof': option center must be True or False, got {o['center']!r}")
        if not isinstance(o["error_map"], (bool, np.bool_)):
            raise InputError(f"method 'dineof': option error_map must be True or False, got {o['error_map']!r}")
        o["error_map"] = bool(o["error_map"])
        if not isinstance(o["transform_smoother"], (bool, np.bool_)):
            raise InputError("method 'dineof': option transform_smoother must be True or False, got "
                             f"{o['transform_smoother']!r}")
        o["transform_smoother"] = bool(o["transform_smoother"])
        if not isinstance(o["transform_calibration"], (bool, np.bool_)):
            raise InputError("method 'dineof': option transform_calibration must be True or False, got "
                             f"{o['transform_calibration']!r}")
        o["transform_calibration"] = bool(o["transform_calibration"])
        v = o["aux_weight"]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (0.0 < v < math.inf):
            raise InputError(f"method 'dineof': option aux_weight must be a finite number > 0, got {v!r}")
        o["aux_weight"] = float(v)
        if o["cv_shape"] not in ("squares", "clouds"):
            raise InputError(f"method 'dineof': option cv_shape must be 'squares' or 'clouds', got {o['cv_shape']!r}")
        check_harmonics(self.name, o["harmonics"])
        # options that act only with another were accepted and ignored without a word: filter_iter
        # (DINEOF's numit) without temporal_filter, the cross-validation's options with n_modes fixed
        given = self._given_options
        if "filter_iter" in given and o["temporal_filter"] is None:
            raise InputError("method 'dineof': option filter_iter has no effect without temporal_filter (the "
                             "filter's strength, e.g. 0.01): set temporal_filter too, or drop filter_iter")
        if "cv_radius" in given and o["cv_shape"] == "clouds":
            raise InputError("method 'dineof': option cv_radius has no effect with cv_shape='clouds' (the CV "
                             "gaps are other days' clouds, not squares); drop one of them")
        if o["n_modes"] is not None:
            for key in _CV_OPTIONS:
                if key in given:
                    raise InputError(f"method 'dineof': option {key} has no effect with n_modes={o['n_modes']} "
                                     "(the number of modes is fixed: no cross-validation runs); drop one of them")

    # ------------------------------------------------------------------ maths
    def _lowrank(self, A, k: int, out=None, work=None):
        """Rank-k reconstruction of A (time, n), column means removed first when ``center``.

        Without a temporal filter this is the truncated SVD; with it, the projection of A on the
        leading eigenvectors of the filtered temporal covariance ``F A A^T F^T``, each mode scaled
        by its filtered singular value over its unfiltered one (DINEOF's). ``out`` (the
        result) and ``work`` (the centred A): tensors like A to write into, so that an iteration
        allocates no cube-sized tensor (above glibc's 32 MB mmap cap, every allocation is pages
        the kernel faults in and zeroes again).
        """
        import torch

        def mm(x, y):  # the reconstruction, into ``out`` when given
            return x @ y if out is None else torch.matmul(x, y, out=out)

        mean = A.mean(dim=0, keepdim=True) if self.options["center"] else None
        if mean is not None:
            A = A - mean if work is None else torch.sub(A, mean, out=work)
        method = self.options["svd"]
        if method == "auto":
            method = "gram" if min(A.shape) <= _GRAM_MAX else "lowrank"
        if self._F is not None and method != "full":
            method = "gram_time"
        if method == "gram" and A.shape[0] > A.shape[1]:
            # Fewer pixels than time steps: the (n, n) spatial covariance is the small one.
            w, V = torch.linalg.eigh(A.T @ A)  # ascending eigenvalues
            V = V[:, -k:]
            R = mm(A @ V * self._shrunk(w[-k:].clamp(min=0).sqrt()), V.T)
        elif method == "gram":
            w, U = torch.linalg.eigh(A @ A.T)
            U = U[:, -k:]
            R = mm(U * self._shrunk(w[-k:].clamp(min=0).sqrt()), U.T @ A)
        elif self._F is not None:  # "gram_time", or "full" with the filter
            B = self._F @ A
            if method == "full":
                U, S, _ = torch.linalg.svd(B, full_matrices=False)
                U, S = U[:, :k], S[:k]
            else:
                w, U = torch.linalg.eigh(B @ B.T)
                U, S = U[:, -k:], w[-k:].clamp(min=0).sqrt()
            P = U.T @ A  # the temporal modes' spatial patterns, unfiltered: (k, n)
            # As DINEOF (ssvd_lancz.F): each mode is u s v^T with s the filtered singular value and
            # u = A v / |A v|, i.e. the projection scaled by s / |A v|, which damps the modes the
            # filter smooths most. The bare projection (factor 1) filled worse: truth RMSE on the
            # gaps 2.46 -> 1.82 on the synthetic SST (60 x 32 x 32, 60 % cloud, temporal_filter=0.01,
            # filter_iter=3, shrink=0, seed 0).
            scale = S / torch.linalg.vector_norm(P, dim=1).clamp(min=torch.finfo(P.dtype).tiny)
            R = mm(U * (scale * self._shrunk(S)), P)
        elif method == "full":
            U, S, Vh = torch.linalg.svd(A, full_matrices=False)
            R = mm(U[:, :k] * (S[:k] * self._shrunk(S[:k])), Vh[:k])
        elif method == "subspace":
            U, S, Vh = self._subspace(A, k)
            R = mm(U * (S * self._shrunk(S)), Vh)
        else:
            U, S, V = torch.svd_lowrank(A, q=min(k + 10, *A.shape), niter=4)
            R = mm(U[:, :k] * (S[:k] * self._shrunk(S[:k])), V[:, :k].T)
        return R if mean is None else R.add_(mean)  # R is a fresh tensor (or ``out``) on every path

    def _subspace(self, A, k: int):
        """Leading k singular triplets of A (time, n), ``U (time, k), S (k,), Vh (k, n)``, by one
        step of subspace iteration from the previous call's leading left singular vectors
        (``self._basis``), then Rayleigh-Ritz.

        DINEOF changes A a little per iteration, so last iteration's vectors are nearly right:
        one step (three products with k + 5 columns) replaces a full Gram eigendecomposition, and
        the basis converges with the gap values. A cold or widened basis (first call, one more
        mode) gets four steps from random columns, as ``torch.svd_lowrank`` does.
        """
        import torch

        q = min(k + 5, *A.shape)
        Q = self._basis  # None at the start of each fit (_fit resets it)
        if Q is not None and Q.shape[1] >= q:
            Q, steps = Q[:, :q], 1
        else:
            fresh = torch.randn(A.shape[0], q - (0 if Q is None else Q.shape[1]), dtype=A.dtype, device=A.device)
            Q, steps = (fresh if Q is None else torch.cat([Q, fresh], dim=1)), 4
        for _ in range(steps):
            Q = torch.linalg.qr(A @ (A.T @ Q)).Q
        Ub, S, Vh = torch.linalg.svd(Q.T @ A, full_matrices=False)  # (q, n): small
        U = Q @ Ub
        self._basis = U
        return U[:, :k], S[:k], Vh[:k]

    def _shrunk(self, s):
        """Soft-threshold factors ``max(1 - shrink * max(s) / s, 0)`` of singular values ``s``
        (any order): ``s * factor`` is ``s`` lowered by ``shrink`` times the leading one."""
        import torch

        lam = self._lam
        if not lam:
            return torch.ones_like(s)
        return torch.clamp(1 - lam * s.max() / torch.clamp(s, min=torch.finfo(s.dtype).tiny), min=0)

    def _iterate(self, filled, mask, k: int):
        """Gaps of ``filled`` (where ``~mask``) <- rank-k reconstruction, until converged."""
        # In place (``filled`` is updated; callers pass a tensor of their own): the cube-sized
        # tensors alive at once are the data, ``filled``, R and one work tensor, where a functional
        # update held seven; R and work are allocated once per call, not per iteration.
        # masked_fill is element-wise, no boolean gather.
        if bool(mask.all()):
            return filled, 0, True
        with _one_thread_if_small(filled):  # small products: thread hand-offs cost more than they save
            return self._iterations(filled, mask, k)

    def _iterations(self, filled, mask, k: int):
        """:meth:`_iterate`'s loop."""
        import torch

        tol, max_iter = self.options["tol"], self.options["max_iter"]
        R, work = torch.empty_like(filled), torch.empty_like(filled)  # reused by every iteration
        for it in range(1, max_iter + 1):
            R = self._lowrank(filled, k, out=R, work=work)
            size = torch.linalg.vector_norm(work.copy_(R).masked_fill_(mask, 0))  # of the new gap values
            step = R.sub_(filled).masked_fill_(mask, 0)  # change of the gap values; 0 at the observations
            filled.add_(step)
            change = torch.linalg.vector_norm(step) / torch.clamp(size, min=1e-12)
            del step  # R (``step`` is R) and work are written over by the next iteration
            if float(change) < tol:
                return filled, it, True
        return filled, max_iter, False

    # ------------------------------------------------------------------ covariates (multivariate DINEOF)
    def _aux_matrix(self, dtype) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """The covariates' blocks of the state matrix: each one's values (time, m) ``dtype``, its
        mask (time, m) bool and its pixels (lat, lon) bool (the m columns: where it is ever valid).

        Each covariate is normalised as the neural methods normalise theirs (``_setup_aux``): minus
        its per-pixel temporal mean (its global mean where a pixel has fewer than 2 values), over
        one global rms scale, so that its anomaly weighs as much as the field's (unit rms; Alvera-
        Azcarate et al. 2007 divide each variable by its std), then times ``aux_weight``. Its
        seasonal cycle stays, whatever ``harmonics`` removes from the field: removed too, the fill
        was no better (synthetic SST, 365 x 40 x 40, 60 % cloud, ``sst_mw``, harmonics=2, seeds 0 /
        1: gap RMSE 1.022 / 1.029 removed, 1.018 / 1.008 kept) and worse on a seasonal rank-2
        test cube (0.15 against 0.11).
        """
        w = self.options["aux_weight"]
        values, masks, pixels, means, divs = [], [], [], [], []
        whole = self._aux_norm
        for name, a in zip(self.aux_names_, self.aux_):
            seen = np.isfinite(a)
            cols = seen.any(axis=0)  # a pixel the covariate never sees is no column of its block
            if whole is None:
                anom, mean, scale, _ = aux_anomaly(a)
                div = scale if scale > 0 else 1.0  # constant at every pixel: all 0, unscaled
                block, m = (anom[:, cols] * np.float32(w)).astype(dtype, copy=False), seen[:, cols]
                del anom
            else:
                # a block of interpolate_chunked: the whole cube's per-pixel mean and scale, the scale
                # times this block's field scale over the cube's (its field is normalised by the
                # block's own): the block's state matrix is the in-memory one's, times one factor
                mean, scale = whole[name]
                div = scale * self.scale_ / self._aux_field_scale
                block, m = _aux_block(a, mean, div, cols, w, dtype)
            values.append(block)
            masks.append(m)
            pixels.append(cols)
            means.append(np.broadcast_to(np.asarray(mean, np.float32), cols.shape))
            divs.append(float(div))
        # what transform() normalises a new period's covariates with (the fit's statistics, not theirs)
        self._aux_stats = {"names": list(self.aux_names_), "units": list(getattr(self, "aux_units_", None)
                                                                       or [None] * len(self.aux_names_)),
                           "mean": means, "scale": divs, "cols": pixels, "weight": float(w)}
        return values, masks, pixels

    def _blocks_of(self, n: int) -> list[tuple[int, int, np.ndarray]]:
        """The blocks of columns (start, stop, their pixels (lat, lon)) of an n-column state matrix:
        the field's, then each covariate's, as the fit made them; the field's alone otherwise (a
        fit without covariates, the fitted modes of :meth:`transform`)."""
        blocks = getattr(self, "_blocks", None)
        return blocks if blocks and blocks[-1][1] == n else [(0, n, self.ocean_)]

    def _widen(self, T):
        """A (time, nf) bool tensor of the field's columns, False on the covariates' (CV points, the
        calibration's held-out points: drawn among the field's observations, never a covariate's)."""
        import torch

        extra = self._blocks[-1][1] - T.shape[1]
        return T if not extra else torch.cat([T, T.new_zeros(T.shape[0], extra)], dim=1)

    def _field(self, T):
        """The field's columns of a state-matrix-wide tensor (the inverse of :meth:`_widen`)."""
        return T[:, :self._blocks[0][1]]

    def _transform_aux(self, aux, da, dims, label, to_fit) -> dict[str, Any]:
        """The new field's covariates as the fit's blocks of columns: ``{"aux": (values (time, m)
        float64, observed (time, m) bool)}``, each covariate normalised with the fit's per-pixel mean,
        scale and ``aux_weight`` (not its own: the fit's modes hold the fit's anomalies); ``{}`` for a
        fit without covariates and no ``aux``. Refused: ``aux`` missing for a fit with covariates,
        given to one without, names that are not the fit's, static maps, other units."""
        from .base import aux_naming_hint, read_aux, refuse_static_aux
        from .neural import _SHIFT_LIMIT, _unit, kelvin_offset

        st = getattr(self, "_aux_stats", None) if getattr(self, "aux_names_", None) else None
        names = [] if st is None else st["names"]
        if aux is None:
            if names:
                raise InputError(f"{label}: method 'dineof': the fit was made with auxiliary variables "
                                 f"({', '.join(names)}); give them on this field's days and grid (aux=)")
            return {}
        if not names:
            raise InputError(f"{label}: method 'dineof': the fit takes no auxiliary variables (it was made without "
                             "aux); drop aux, or fit with it")
        # a time block of interpolate_chunked: a covariate all NaN (or constant) there is no error
        got, values, units, static = read_aux(aux, da, dims, label, check_values=not self._time_block)
        missing, extra = [n for n in names if n not in got], [n for n in got if n not in names]
        if missing or extra:
            said = "; ".join(t for t in (f"missing: {', '.join(missing)}" if missing else "",
                                         f"not the fit's: {', '.join(map(str, extra))}" if extra else "") if t)
            raise InputError(f"{label}: aux: the fit's auxiliary variables are {', '.join(names)} ({said})"
                             f"{aux_naming_hint(missing, extra)}")
        refuse_static_aux(self.name, [n for n, s_ in zip(got, static) if s_], label)
        blocks, masks = [], []
        for i, name in enumerate(names):
            j = got.index(name)
            theirs, ours = _unit(st["units"][i]), _unit(units[j])
            # a kelvin covariate (AMSR2, GHRSST) for a fit of it in degC, or the reverse: converted, as the
            # networks convert theirs; other units said are refused
            offset = kelvin_offset(ours, theirs) or 0.0
            if theirs is not None and ours is not None and theirs != ours and not offset:
                raise InputError(f"{label}: aux {name!r} is in units {units[j]!r}, the fit's in {st['units'][i]!r} "
                                 "(convert it first)")
            v = values[j] + np.float32(offset) if offset else values[j]
            b, m = _aux_block(to_fit(v), st["mean"][i], st["scale"][i], st["cols"][i], st["weight"],
                              np.float64)
            # units not said on one side, as transform() tests the field: a kelvin covariate is hundreds
            # of fitted scales off a degC fit's means, and was taken as anomalies of 273
            shift = float(b[m].mean()) / st["weight"] if m.any() and (theirs is None or ours is None) else 0.0
            if abs(shift) > _SHIFT_LIMIT:
                raise InputError(f"{label}: aux {name!r}: its values are {shift * st['scale'][i]:+.4g} from the "
                                 f"fit's pixel means of it on average ({abs(shift):.0f} fitted scales: other units?); "
                                 "give it in the units it was fitted in")
            blocks.append(b)
            masks.append(m)
        return {"aux": (np.concatenate(blocks, axis=1), np.concatenate(masks, axis=1))}

    def transform(self, da, withheld=None, aux=None):
        return super().transform(da, withheld=withheld, aux=aux)

    transform.__doc__ = Interpolator.transform.__doc__

    def _fit(self, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray) -> None:
        import torch

        device = self.torch_device
        dtype = torch.float64 if self.options["dtype"] == "float64" else torch.float32
        rng = np.random.default_rng(self.seed)
        nt = x.shape[0]
        self._modes = None  # transform()'s error model of the previous fit (_fitted_modes)
        self._aux_stats = None  # the covariates' normalisation (_aux_matrix), for transform()
        # The seasonal cycle leaves first (fitted on the fitting observations only: the withheld
        # pixels are not in ``obs``), so that the modes describe anomalies from it
        self._label = _label(self.da_)
        self.seasonal_ = seasonal_cycle(self.options["harmonics"], self.da_, x, obs, ocean, self._label,
                                      mean=np.nan_to_num(self.mean_ / self.scale_))  # shrunk to the neighbours'
        season = self.seasonal_.matrix(np.float64 if self.options["dtype"] == "float64" else np.float32)
        xm, om = self._to_matrix(x), self._to_matrix(obs)
        if season is not None:
            xm = np.where(om, xm - season, np.float32(0))
        # multivariate DINEOF: the covariates' blocks of columns beside the field's (the field first:
        # its columns are [:nf] everywhere below, the CV and sigma-calibration points among them only)
        nf = xm.shape[1]
        self._blocks: list[tuple[int, int, np.ndarray]] = [(0, nf, ocean)]
        seen = obs
        if self.aux_names_:
            av, am, cols = self._aux_matrix(xm.dtype)
            for c, a in zip(cols, av):
                self._blocks.append((self._blocks[-1][1], self._blocks[-1][1] + a.shape[1], c))
            xm, om = np.concatenate([xm, *av], axis=1), np.concatenate([om, *am], axis=1)
            # a step a covariate sees is not empty: its observations set the amplitudes there
            seen = obs | np.logical_or.reduce([np.isfinite(a) for a in self.aux_])
            del av, am
        elif "aux_weight" in self._given_options:
            raise InputError("method 'dineof': option aux_weight has no effect without auxiliary variables (aux): "
                             "give aux, or drop aux_weight")
        X = torch.from_numpy(xm).to(device=device, dtype=dtype)
        del xm
        M = torch.from_numpy(om).to(device)
        del om
        n = X.shape[1]
        kmax = max(1, min(self.options["max_modes"], min(nt, n) - 1))
        F = self.options["temporal_filter"]
        if F is not None:
            _check_time_steps(self.da_)
        elif self._warn_empty_steps:
            _warn_empty_steps(self.da_, seen, self._label)
        self._F = None if F is None else torch.as_tensor(
            _laplacian_filter(nt, F, self.options["filter_iter"]), dtype=dtype, device=device)

        auto = self.options["shrink"] == "auto"
        self._lam = 0.0 if auto else float(self.options["shrink"])
        self._basis = None  # svd="subspace": the leading vectors carried from one iteration to the next
        self.shrink_curve_: list[tuple[float, float]] = []
        # Randomised SVD draws from torch's global generator: seed it in a private copy of the state
        # (torch.manual_seed would also re-seed every other GPU's generator, outside the copy)
        # error_map: the observed pixels sigma is calibrated on, drawn now from their own stream (the
        # CV set's and torch's draws, hence the fill, are those without error_map)
        HO = None
        if self.options["error_map"]:
            held = self._sigma_points(obs)
            HO = None if held is None else self._widen(torch.from_numpy(self._to_matrix(held)).to(device))
        with torch_rng_scope(device):
            seed_torch(self.seed, device)
            if self.options["n_modes"] is not None:
                self._fit_fixed(X, M, min(self.options["n_modes"], min(nt, n)), HO)
            else:
                radius = self.options["cv_radius"]
                if "cv_radius" not in self._given_options:
                    # 9 x 9 squares on a small grid hide most or all of a frame: its CV points are
                    # then predicted from the pixel means whatever k is, and the CV curve chooses
                    # noise (k = 1 on 4 x 5 pixels, truth RMSE 0.66 against 0.24 with radius 0)
                    radius = min(radius, max((min(obs.shape[1:]) // 2 - 1) // 2, 0))
                self.cv_radius_ = radius
                # Drawn on the clean grid (latitude ascending, longitude in one convention), then
                # put back: drawn on the grid as given, the same field with latitudes descending
                # (or longitudes 0..360) got another CV set, and another mode count than the CLI
                # (open_field sorts the grid) gave (15 -> 3 modes, truth RMSE 1.05 -> 2.36).
                # and in time order: drawn on the steps as given, shuffled or reversed dates (which only
                # `oceandl interpolate` refuses) got another CV set and another fill than sorted ones
                it = _time_order(self.da_)
                clouds = (_cv_clouds(obs[it], self.options["cv_fraction"], rng)
                          if self.options["cv_shape"] == "clouds" else None)
                if clouds is not None:
                    cv = np.empty_like(obs)
                    cv[it], self.cv_squares_ = clouds
                    self.cv_radius_, self.cv_shape_ = None, "clouds"
                    what = "cloud patches"
                else:
                    if self.options["cv_shape"] == "clouds":
                        warn(f"{self._label}: no cloud pattern to paste (a single step, or no gap over the ocean); "
                             f"the cross-validation set is squares of radius {radius}", UserWarning)
                    iy, ix = _clean_axes(self.da_)
                    cv = np.empty_like(obs)
                    cv[it[:, None, None], iy[None, :, None], ix[None, None, :]], self.cv_squares_ = _cv_points(
                        obs[it][:, iy][:, :, ix], self.options["cv_fraction"], radius, rng)
                    side, self.cv_shape_ = 2 * radius + 1, "squares"
                    what = f"squares of {side} x {side} px" if radius else "points"
                if self.cv_squares_ < _MIN_CV_SQUARES and self._warn_small_cv:
                    warn(
                        f"method 'dineof': the cross-validation set is {self.cv_squares_} "
                        f"{what} ({int(cv.sum())} "
                        f"observations on {int(cv.any(axis=(1, 2)).sum())} of {nt} time steps), too few to choose "
                        f"the number of modes reliably; it is uncertain (use a longer or larger field)",
                        UserWarning)
                self._fit_cv(X, M, self._widen(torch.from_numpy(self._to_matrix(cv)).to(device)), kmax, auto, HO)
        self._F = self._basis = None
        self.shrink_ = self._lam
        self._aux_filled = self._aux_mask = None
        if self.aux_names_:
            # the covariates' blocks (their observations put back) are kept: the joint modes that
            # transform() projects a new period's field and covariates on are fitted on them too
            self._aux_filled = torch.where(M[:, nf:], X[:, nf:], self._filled_m[:, nf:]).to("cpu").numpy()
            self._aux_mask = M[:, nf:].to("cpu").numpy()
        filled = self._filled_m[:, :nf].to("cpu").numpy()  # the output is the field's block
        del self._filled_m
        self._sigma = None
        if self.options["error_map"]:  # (time, nf): _error_var computes the field's columns only
            self._sigma = self._from_matrix(self._sigma_m.to("cpu").numpy().astype(np.float32), fill=np.nan)
            del self._sigma_m
        if season is not None:
            filled = filled + season  # the cycle back: the output is the field's, not its anomaly's
        self._filled = self._from_matrix(filled.astype(np.float32, copy=False))

    def _fit_fixed(self, X, M, k: int, HO=None) -> None:
        filled = self._fill_at_rank(X, M, k, ramp=True)
        it, conv, total = self._last_fill
        self.cv_curve_: list[tuple[int, float]] = []
        self.cv_rmse_ = None
        self.n_modes_, self.n_iter_, self.converged_, self.n_iter_total_ = k, it, conv, total
        self._filled_m = self._final(filled, M, k)
        if self.options["error_map"]:  # no CV points to fall back on: the factor is 1
            self._sigma_m = self._calibrated(self._error_var(filled, M, k).sqrt_(), X, M, HO, k)

    def _calibrated(self, sigma, X, M, HO, k: int, fallback=None):
        """``sigma`` (the uncalibrated error std, changed in place) times ``cv_sigma_scale_``: fitted
        on the cloud-shaped held-out points ``HO`` (:meth:`_calibrate_on_clouds`); with too few,
        ``fallback()`` gives ``(scale, calibration)``, else the scale is 1 (not calibrated)."""
        if not self._calibrate_on_clouds(X, M, HO, k):
            self.cv_sigma_scale_, self._sigma_calibration = fallback() if fallback is not None else (1.0, None)
        return sigma.mul_(self.cv_sigma_scale_)

    def _fill_at_rank(self, X, mask, k: int, ramp: bool, desc: str = "modes"):
        """The DINEOF fill of X at its observations ``mask``, at rank k from zero gaps: with ``ramp``,
        ranks 1 to k in turn, each from the previous one's fill (as the fixed-rank fit and the CV
        sweep do); else rank k at once (the threshold path: its soft-thresholded fixed point is
        unique). ``self._last_fill``: the last rank's iterations, convergence, and all iterations.
        ``desc``: the progress bar's label."""
        filled, total = X * mask, 0
        for kk in self._progress(range(1 if ramp else k, k + 1), desc):
            filled, it, conv = self._iterate(filled, mask, kk)
            total += it
        self._last_fill = (it, conv, total)
        return filled

    def _sigma_points(self, obs: np.ndarray, da=None, fraction: float = _SIGMA_FRACTION) -> np.ndarray | None:
        """The observations (a bool cube, subset of ``obs``) hidden to calibrate sigma on: cloud patterns
        of random other days pasted on the cleanest ones, ``fraction`` (default ``_SIGMA_FRACTION``) of
        the observations, in time order (of ``da``, default the field fitted), seeded from ``seed``;
        None where there is no cloud pattern to paste."""
        from .withhold import withhold_by_cloud_transfer

        it = _time_order(self.da_ if da is None else da)
        o = obs[it]
        if o.shape[0] < 2 or not (~o & o.any(axis=0)).any():
            return None
        seed = int(np.random.default_rng([self.seed, _SIGMA_SEED_TAG]).integers(2**31))
        held = np.empty_like(obs)
        held[it] = withhold_by_cloud_transfer(o, fraction=fraction, seed=seed, at_most=True)
        return held

    def _calibrate_on_clouds(self, X, M, HO, k: int) -> bool:
        """``cv_sigma_scale_`` fitted on the cloud-shaped held-out points ``HO`` (a subset of ``M``):
        the fill rerun at rank k (and the same threshold) with them hidden, the error model of that
        run, the scale rms(err / sigma) on them, |err / sigma| beyond ``SIGMA_CLIP`` robust stds
        left out (:func:`~oceandl.interp.base.calibration_z`). False (and a warning) with fewer than
        ``SIGMA_MIN_POINTS`` points: the caller
        keeps its fallback. Runs after the fill: the fill does not depend on it."""
        n_held = 0 if HO is None else int(HO.sum())
        z = None
        if n_held >= SIGMA_MIN_POINTS:
            fit = M & ~HO
            self._basis = None  # svd="subspace": start this run afresh
            # its own label: a second "modes" bar after the fill's read as the fill starting over
            filled = self._fill_at_rank(X, fit, k, ramp=self.options["n_modes"] is not None or not self._lam,
                                        desc="error map calibration, modes")
            var = self._error_var(filled, fit, k)[self._field(HO)]
            z = calibration_z(((filled[HO] - X[HO]).double() / var.sqrt().clamp(min=1e-150)).cpu().numpy())
            del filled, var, fit
        if z is None or z.size < SIGMA_MIN_POINTS:
            fallback = "none (1)" if self.options["n_modes"] is not None else "on the cross-validation squares"
            warn(f"{getattr(self, '_label', 'dineof')}: {0 if z is None else z.size} cloud-shaped held-out points "
                 f"to calibrate sigma on (fewer than {SIGMA_MIN_POINTS}); the calibration is {fallback}",
                 UserWarning)
            return False
        total = int(M.sum())
        self.cv_sigma_scale_ = float(np.sqrt(np.mean(z ** 2)))
        self._sigma_calibration = {"method": "cloud_transfer", "points": int(z.size), "dropped": n_held - int(z.size),
                                   "fraction": n_held / max(total, 1)}
        return True

    def _fit_cv(self, X, M, CV, kmax: int, auto: bool = False, HO=None) -> None:
        import torch

        fit_mask = M & ~CV
        xcv = X[CV]

        def cv_rmse(filled) -> float:
            return float(torch.sqrt(torch.mean((filled[CV] - xcv) ** 2))) * self.scale_

        filled = X * fit_mask
        curve: list[tuple[int, float]] = []
        best_err, best_k, best, best_conv = math.inf, 1, None, True
        total = 0
        unconverged = 0  # CV-stage fits stopped by max_iter: their CV errors are of unfinished fits
        for k in self._progress(range(1, kmax + 1), "modes"):
            filled, it, conv = self._iterate(filled, fit_mask, k)
            total += it
            unconverged += not conv
            err = cv_rmse(filled)
            curve.append((k, err))
            if err < best_err:
                best_err, best_k, best, best_conv = err, k, filled.clone(), conv
            elif k - best_k >= self.options["patience"]:
                break
        if best is None:  # CV error not finite (no usable CV point): keep the last fit
            best_k, best = k, filled
        best_lam = self._lam
        if auto:
            # The threshold path at the largest rank, from a strong threshold down (warm starts).
            rank_best, path_best = best, None
            filled, path_err, path_i = X * fit_mask, math.inf, 0
            for i, lam in enumerate(self._progress(_SHRINK_PATH, "shrink")):
                self._lam = lam
                filled, it, conv = self._iterate(filled, fit_mask, kmax)
                total += it
                unconverged += not conv
                err = cv_rmse(filled)
                self.shrink_curve_.append((lam, err))
                if err < best_err:
                    best_err, best_k, best, best_lam = err, kmax, filled.clone(), lam
                if err < path_err:
                    path_err, path_i, path_best, path_lam = err, i, filled.clone(), lam
                elif i - path_i >= 2:
                    break
            if best_lam == 0 and path_best is not None and (
                    not best_conv or not self._rank_clearly_better(rank_best, path_best, X, CV)):
                # one-standard-error rule: the threshold (the regularised fit) unless the rank
                # beats it by more than the CV's noise. A rank fit that max_iter stopped is no
                # candidate: its gaps were still drifting, which the CV squares (on observations)
                # do not see (synthetic_sst(24, 12, 12, cloud 0.8, seed 1): rank 1 unconverged, CV
                # 0.496 against the threshold's 0.537, gaps filled up to 33.9 degC, gap RMSE 2.46;
                # the threshold's 1.31)
                best_err, best_k, best, best_lam = path_err, kmax, path_best, path_lam
            del rank_best, path_best
        self._lam = best_lam
        # Final fit: the CV points rejoin the observations; start from the best CV solution.
        filled = torch.where(M, X, best)
        filled, it, conv = self._iterate(filled, M, best_k)
        self.cv_curve_ = curve
        self.cv_rmse_ = best_err
        self.cv_unconverged_ = unconverged
        self.n_modes_, self.n_iter_, self.converged_ = best_k, it, conv
        self.n_iter_total_ = total + it
        self._filled_m = self._final(filled, M, best_k)
        if self.options["error_map"]:  # after the fill, which is then the one without error_map
            sigma = self._error_var(filled, M, best_k).sqrt_()
            del filled

            def on_cv_points():  # the error model of the CV fit (CV points hidden), at its CV points
                var = self._error_var(best, fit_mask, best_k)[self._field(CV)]
                z2 = ((best[CV] - xcv).double() ** 2 / var.clamp(min=torch.finfo(var.dtype).tiny))
                c2 = float(z2.mean()) if z2.numel() else math.nan
                if not (math.isfinite(c2) and c2 > 0):
                    return 1.0, None
                return math.sqrt(c2), {"method": "cv_squares", "points": int(z2.numel())}

            self._sigma_m = self._calibrated(sigma, X, M, HO, best_k, fallback=on_cv_points)

    @staticmethod
    def _rank_clearly_better(rank, path, X, CV) -> bool:
        """Whether the classic rank fit's CV error beats the threshold path's by more than one standard
        error (Hastie, Tibshirani & Friedman, The Elements of Statistical Learning, 7.10: choose the
        most regularised model within one standard error of the best).

        The classic fit leaves the loadings of thinly observed pixels and the amplitudes of thinly
        observed days unconstrained; the CV squares, centred on observations, rarely fall there, so
        its CV error barely differs from the threshold's while its gaps go wild (synthetic SST 44 x 40
        x 40, seeds 0-30: classic chosen on 16 of 93 cubes at 50-90 % cloud, all filled beyond the
        observed range, up to -22 and 44 degC where the truth was 4-25, gap RMSE 2.1-2.9 against
        1.0-1.7 on the others). The paired difference of squared CV errors is averaged per time
        step (the squares of a step are one cloud-sized sample), its standard error across steps.
        """
        import torch

        diff = (rank[CV] - X[CV]) ** 2 - (path[CV] - X[CV]) ** 2
        step = torch.nonzero(CV)[:, 0]
        steps, inv = torch.unique(step, return_inverse=True)
        if steps.numel() < 2:
            return bool(diff.mean() < 0)
        per = torch.zeros(steps.numel(), dtype=diff.dtype, device=diff.device).index_add_(0, inv, diff)
        per = per / torch.bincount(inv, minlength=steps.numel()).to(diff.dtype)
        return bool(per.mean() + per.std() / math.sqrt(steps.numel()) < 0)

    def _final(self, filled, M, k: int):
        """Converged gap values, and the rank-k reconstruction at the observed points.

        (The base puts the observed values back unless ``keep_observed=False``.)
        """
        import torch

        return torch.where(M, self._lowrank(filled, k), filled)

    def _error_var(self, filled, mask, k: int):
        """The error variance (time, n) of the rank-k fill ``filled`` whose observed points are
        ``mask``, uncalibrated, in the normalised units, float64 (Beckers et al. 2006's OI analogy).

        The leading k modes of the (centred) filled matrix ``A = U S V^T``; ``r_p``: the residual
        variance of the rank-k fit at pixel p's observations, shrunk toward the global one with the
        weight of ``_RESID_PRIOR_OBS`` observations. Three terms:

        * amplitudes (Beckers et al. 2006): a time step's amplitudes (k) have the prior variance
          ``s_i^2 / nt`` (``Lam``) and are seen at the step's observed pixels through ``V`` with
          noise ``r_p`` times the inflation of :func:`_inflation_factor` (the residual is
          correlated in space: neighbouring pixels are not independent observations); the OI
          analysis covariance ``P_t = (Lam^-1 + V^T diag(m_t / (f r)) V)^-1`` (one k x k inverse per
          step) gives ``v_p^T P_t v_p`` (large on a clouded day);
        * loadings, the same with time and space swapped: a pixel's loadings have the prior
          variance ``s_i^2 / n`` and are seen at its observed steps through ``U``,
          ``Q_p = (diag(n / s^2) + U^T diag(m_p / r_p) U)^-1``, giving ``u_t^T Q_p u_t`` (large at a
          pixel rarely seen: its loadings fit a few days);
        * ``r_p``, the pixel's own unresolved variance (what k modes do not hold).
        """
        em = self._error_model(filled, mask, k, dual=True)
        # with covariates their observations inform each step's amplitudes too (P_t over all the
        # columns), but the variance is the field's, its first nf columns (Q(i, j) is per column)
        P = _amplitude_cov(mask.double(), em["V"], em["r_oi"], em["lam"])
        nf = self._blocks_of(filled.shape[1])[0][1]
        # the dual term: each pixel's loadings b_p (k), prior variance s_i^2 / n, seen at its
        # observed steps through the temporal modes u_t = A v / s: Q_p = (diag(n / s^2) +
        # U^T diag(m_p / r_p) U)^-1, variance u_t^T Q_p u_t (large where a pixel is rarely seen)
        Q = em["Q"]
        return _error_variance(P, em["V"][:nf], em["r"][:nf], em["U"], lambda i, j: Q(i, min(j, nf)))

    def _error_model(self, filled, mask, k: int, dual: bool = False) -> dict[str, Any]:
        """The pieces of the error model of the rank-k fill ``filled`` (torch, (time, n)) whose
        observed points are ``mask``, float64 (see :meth:`_error_var`): ``mu`` (n,) the column means
        removed (0 without ``center``), ``V`` (n, k) the spatial modes, ``s2`` (k,) their squared
        singular values, ``lam`` (k,) the amplitudes' prior variance, ``r`` (n,) each pixel's
        residual variance, ``r_oi`` (n,) it inflated for the residual's spatial correlation, ``k``
        (the modes kept), and with ``dual`` ``U`` (time, k) the temporal modes and ``Q(i, j)`` the
        loadings' covariances (j - i, k * k) of pixels i to j.

        Computed by blocks of rows (steps) or columns (pixels) of about ``_CUBE_BLOCK`` values,
        ``filled`` never copied whole (but for the randomised SVD of a cube over ``_GRAM_MAX`` on
        both sides): the float64 copies of the cube (centred, residual, mask) made the first
        transform of a 1000 x 96 x 96 fit peak at 7x the cube's float64 size."""
        import torch

        nt, n = filled.shape
        k = max(1, min(k, nt - 1 if self.options["center"] else nt, n))
        rows, cols = max(1, _CUBE_BLOCK // n), max(1, _CUBE_BLOCK // nt)
        f64 = dict(dtype=torch.float64, device=filled.device)
        mu = torch.zeros(1, n, **f64)
        if self.options["center"]:
            for i in range(0, nt, rows):
                mu += filled[i:i + rows].double().sum(dim=0, keepdim=True)
            mu /= nt

        def centred_rows(i):
            return filled[i:i + rows].double() - mu

        def centred_cols(j):
            return filled[:, j:j + cols].double() - mu[:, j:j + cols]

        if min(nt, n) <= _GRAM_MAX:
            if nt <= n:
                G = torch.zeros(nt, nt, **f64)
                for j in range(0, n, cols):
                    C = centred_cols(j)
                    G += C @ C.T
                w, U = torch.linalg.eigh(G)
                s2, U = w[-k:].clamp(min=0), U[:, -k:]
                V = torch.empty(n, k, **f64)
                for j in range(0, n, cols):
                    V[j:j + cols] = centred_cols(j).T @ U
                V /= s2.sqrt().clamp(min=1e-300)
            else:
                G = torch.zeros(n, n, **f64)
                for i in range(0, nt, rows):
                    R = centred_rows(i)
                    G += R.T @ R
                w, V = torch.linalg.eigh(G)
                s2, V = w[-k:].clamp(min=0), V[:, -k:]
            del G
        else:
            _, S, V = torch.svd_lowrank(filled.double() - mu, q=min(k + 10, nt, n), niter=4)
            s2, V = S[:k] ** 2, V[:, :k]
        keep = s2 > 1e-10 * s2.max().clamp(min=1e-300)  # modes of a (numerically) lower rank: none
        if not bool(keep.all()):
            s2, V = s2[keep], V[:, keep]
            k = max(int(keep.sum()), 1)
            if not bool(keep.any()):
                s2, V = s2.new_ones(1) * 1e-300, V.new_zeros(n, 1)
        # the rank-k fit's residual at the observations, and its correlation between neighbours;
        # per block of columns (the field's, each covariate's): each has its own residual level and
        # spatial correlation (a coarse microwave SST's residual is smoother than the field's)
        blocks = self._blocks_of(n)
        sq, count, stats = torch.zeros(n, **f64), torch.zeros(n, **f64), [{} for _ in blocks]
        for i in range(0, nt, rows):
            R = centred_rows(i)
            m = mask[i:i + rows]
            res = ((R @ V) @ V.T).sub_(R).mul_(m)
            del R
            sq += (res ** 2).sum(dim=0)
            count += m.sum(dim=0)
            for (a, b, grid), st in zip(blocks, stats):
                self._inflation_sums(res[:, a:b], m[:, a:b], st, grid)
            del res
        r, r_oi = torch.empty(n, **f64), torch.empty(n, **f64)
        for (a, b, _), st in zip(blocks, stats):
            r_glob = float(sq[a:b].sum() / count[a:b].sum().clamp(min=1))
            r_glob = max(r_glob, 1e-12)
            r[a:b] = (sq[a:b] + _RESID_PRIOR_OBS * r_glob) / (count[a:b] + _RESID_PRIOR_OBS)
            r_oi[a:b] = r[a:b] * _inflation_factor(st)
        out: dict[str, Any] = {"mu": mu[0], "V": V, "s2": s2, "r": r, "r_oi": r_oi, "k": k,
                               "lam": (s2 / nt).clamp(min=1e-12 * max(float(s2.max()), 1e-300))}
        if dual:
            U = torch.empty(nt, k, **f64)  # the temporal modes, for the loadings' term
            for i in range(0, nt, rows):
                U[i:i + rows] = centred_rows(i) @ V
            U /= s2.sqrt().clamp(min=1e-300)
            WU = (U[:, :, None] * U[:, None, :]).reshape(nt, k * k)
            mu_l = (s2 / n).clamp(min=1e-12 * max(float(s2.max()), 1e-300))

            def Q(i, j):  # the bool mask kept, not its float64 copy (8x the size, for transform's cache)
                Gp = (mask[:, i:j].double().T @ WU) / r[i:j, None]
                return torch.linalg.inv(Gp.reshape(-1, k, k) + torch.diag(1 / mu_l)).reshape(-1, k * k)

            out.update(U=U, Q=Q)
        return out

    can_transform: ClassVar[bool] = True
    transform_options: ClassVar[tuple[str, ...]] = ("transform_smoother", "transform_calibration")

    def _transform(self, x: np.ndarray, obs: np.ndarray, da, aux=None):
        """Each new step's amplitudes of the fitted spatial modes: the optimal interpolation of the
        error model (:meth:`_error_var`) given the step's observations, ``a_t = P_t V^T diag(m_t / r)
        x_t`` with ``P_t = (diag(nt / s^2) + V^T diag(m_t / r) V)^-1``; with ``error_map``, sigma
        from ``P_t`` (and the loadings' and unresolved terms) times a calibration scale.

        With ``transform_smoother`` (default) the amplitudes are an AR(1) series per mode instead of
        independent steps (:meth:`_transition`): the Kalman filter and smoother over the steps give
        ``a_t`` and ``P_t`` from every step's observations, so a fully clouded day gets its
        neighbours' amplitudes instead of 0 (the fitted mean).

        The scale (``transform_calibration``, default): fitted on the new field itself, as the fit's
        was on its own, so that rms(error / sigma) = 1 on ``_SIGMA_FRACTION`` of its observations
        hidden by cloud-mask transfer (the fill rerun without them); the fit's ``cv_sigma_scale_``
        with fewer than ``SIGMA_MIN_POINTS`` such points. The fit's scale alone is off on a period
        the modes describe less well than the fitted one. Measured: docs/benchmarks.md. Returns
        the fill, sigma and the sigma attrs saying which scale was used."""
        self.seasonal_.check_dates(da, _label(da))
        em = self._fitted_modes()
        pos = _time_positions(da)
        if self._time_block:  # a time block of interpolate_chunked: the whole series' amplitudes are _stream's
            return self._block_transform(x, obs, da, em, pos, aux)
        if self.options["transform_smoother"] and pos is not None and (np.diff(pos[0]) < 0).any():
            # smoothed in time order, returned in the caller's
            order = np.argsort(pos[0], kind="stable")
            back = np.argsort(order)
            filled, sigma, attrs = self._transform(x[order], obs[order], da.isel({da.dims[0]: order}),
                                                   None if aux is None else (aux[0][order], aux[1][order]))
            return filled[back], None if sigma is None else sigma[back], attrs
        f = self._transition(da, em, pos)
        filled, var = self._amplitude_fill(x, obs, da, em, f, aux)
        if var is None:
            return filled, None, {}
        scale = float(self.cv_sigma_scale_)
        attrs = {"transform_sigma_scale": scale,
                 "transform_sigma_calibration": f"the fit's cv_sigma_scale x{scale:.4g} (transform_calibration=False)"}
        if self.options["transform_calibration"]:
            scale, attrs = self._transform_scale(x, obs, da, em, f, pos, aux)
        sigma = var.sqrt_().mul_(scale)
        return filled, self._from_matrix(sigma.numpy().astype(np.float32), fill=np.nan), attrs

    def _block_transform(self, x: np.ndarray, obs: np.ndarray, da, em: dict, pos, aux=None):
        """:meth:`_transform` of a time block of interpolate_chunked (``_stream``, see there): the fill from
        the whole series' (smoothed) amplitudes; with ``error_map``, sigma unscaled when the stream
        calibrates it (``calibrate``: the series' observations hidden as :meth:`_transform_scale` hides
        them, by :meth:`stream_held` once the first pass has kept them, their error / sigma gathered by a
        pass over the days of the hidden ones, the scale fitted on all once: :meth:`stream_scale`), else
        scaled by the fit's ``cv_sigma_scale_``."""
        stream = self._stream or {}
        days = stream.get("days")
        if stream.get("calibrate"):
            if stream.get("first"):  # the first pass over the series: its observations kept for the transfer
                self._stream_keep(obs, days)
            if stream["mode"] == "calibrate":  # the days of hidden observations: their fill without them
                held = self._stream_hidden(days, obs.shape)
                f_h, var_h = self._amplitude_fill(x, obs & ~held, da, em, None, aux, which="held")
                sd = self._from_matrix(var_h.sqrt_().numpy(), fill=np.nan)
                stream["z"].append(np.asarray(((f_h - x) / sd)[held], np.float64))
                return np.zeros(x.shape, np.float32), None, {}
            if stream.get("smooth") and stream.get("pasted") is not None:
                # the smoother of the run without them: these days' information less their hidden observations
                sel = np.flatnonzero(stream["pasted"][days])
                if sel.size:
                    held = self._stream_hidden(days[sel], (sel.size,) + obs.shape[1:])
                    G, b = self._information(x[sel], obs[sel] & ~held, da.isel({da.dims[0]: sel}), em,
                                             None if aux is None else (aux[0][sel], aux[1][sel]))
                    at = _torch_index(days[sel])
                    stream["Gheld"][at], stream["bheld"][at] = G, b
        filled, var = self._amplitude_fill(x, obs, da, em, None, aux)
        if var is None:
            return filled, None, {}
        if stream.get("calibrate"):
            return filled, self._from_matrix(var.sqrt_().numpy().astype(np.float32), fill=np.nan), {}
        scale = float(self.cv_sigma_scale_)
        return filled, self._from_matrix(var.sqrt_().mul_(scale).numpy().astype(np.float32), fill=np.nan), {
            "transform_sigma_scale": scale,
            "transform_sigma_calibration": f"the fit's cv_sigma_scale x{scale:.4g} (transform_calibration=False)"}

    def _stream_keep(self, obs: np.ndarray, days: np.ndarray) -> None:
        """Keep the observed pixels ``obs`` (steps, lat, lon) of the series' steps ``days`` in ``_stream``:
        packed bits (``bits[t, 0]``) in a file-backed array (``_stream["open_bits"](steps, bytes)``, or in
        memory), each step's count and the pixels ever observed: what :meth:`stream_held` reads."""
        stream = self._stream
        flat = obs.reshape(obs.shape[0], -1)
        if stream.get("bits") is None:
            n, nbytes = stream["n_steps"], (flat.shape[1] + 7) // 8
            opener = stream.get("open_bits")
            stream["bits"] = opener((n, 2, nbytes)) if opener is not None else np.zeros((n, 2, nbytes), np.uint8)
            stream["counts"] = np.zeros(n, np.int64)
            stream["ocean"] = np.zeros(obs.shape[1:], bool)
            stream["pixels"] = obs.shape[1:]
        stream["bits"][days, 0] = np.packbits(flat, axis=1)
        stream["counts"][days] = flat.sum(axis=1)
        stream["ocean"] |= obs.any(axis=0)

    def _stream_day(self, t: int, which: int = 0) -> np.ndarray:
        """Step ``t``'s observed (``which`` 0) or hidden (1) pixels kept in ``_stream``, bool (lat, lon)."""
        shape = self._stream["pixels"]
        bits = np.unpackbits(np.asarray(self._stream["bits"][t, which]), count=int(np.prod(shape)))
        return bits.view(bool).reshape(shape)

    def _stream_hidden(self, days: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The hidden observations of the series' steps ``days``, bool ``shape`` (steps, lat, lon)."""
        pasted = self._stream["pasted"]
        held = np.zeros(shape, bool)
        for i, t in enumerate(days):
            if pasted[t]:
                held[i] = self._stream_day(int(t), 1)
        return held

    def stream_held(self, da) -> np.ndarray:
        """The observations a field filled by time blocks (interpolate_chunked, ``calibrate``) hides to
        calibrate sigma on, from those its first pass kept (:meth:`_stream_keep`): as
        :meth:`_transform_scale` hides the whole field's (:meth:`_sigma_points`: the same cleanest days,
        the same donors drawn from the whole series, the same seed; none on the fitted period's steps).
        Sets ``_stream``'s ``pasted`` (a bool per step), ``n_held`` and ``inside``, and the hidden bits
        (``bits[t, 1]``); returns the indices of the steps with hidden observations. ``da``: the lazy field
        (its time coordinate, which orders the transfer as in memory)."""
        from .withhold import cloud_transfer_days

        stream = self._stream
        n = da.sizes[da.dims[0]]
        stream["pasted"], stream["n_held"] = np.zeros(n, bool), 0
        stream["inside"] = np.zeros(n, bool)
        counts, ocean = stream.get("counts"), stream.get("ocean")
        # as _sigma_points: no transfer with one step or no cloud over the ocean
        if counts is None or n < 2 or int(counts.sum()) >= n * int(ocean.sum()):
            return np.zeros(0, np.int64)
        it = _time_order(da)
        seed = int(np.random.default_rng([self.seed, _SIGMA_SEED_TAG]).integers(2**31))
        target = math.ceil(_SIGMA_FRACTION * int(counts.sum()))
        taken, _ = cloud_transfer_days(lambda p: self._stream_day(int(it[p])), counts[it], ocean, target, seed,
                                       withheld=_HiddenRows(self, it))
        pos, span = _time_positions(da), self._fitted_modes().get("span")
        if pos is not None and span is not None and pos[1] == span[2]:  # not the fitted days, as in memory
            stream["inside"] = (pos[0] >= span[0]) & (pos[0] <= span[1])
        for p in taken:
            t = int(it[p])
            if not stream["inside"][t]:
                stream["pasted"][t] = True
                stream["n_held"] += int(taken.count(p))
        return np.flatnonzero(stream["pasted"])

    def stream_scale(self) -> tuple[float, dict[str, Any]]:
        """The sigma scale of a field filled by time blocks with ``calibrate`` (interpolate_chunked),
        from the z of the hidden observations (:meth:`stream_held`), and the sigma attrs that say so, as
        :meth:`_transform_scale` says them; the fit's scale with too few."""
        stream = self._stream
        n_held = int(stream["n_held"])
        kept = None
        if n_held >= SIGMA_MIN_POINTS:  # z kept out of memory (interpolate_chunked's file: 8 % of the series' observations)
            z = stream["z"]
            kept = calibration_scale(z.chunks if hasattr(z, "chunks") else lambda: iter(z))
        return _scale_and_attrs(kept, n_held, stream["inside"], float(self.cv_sigma_scale_))

    def _information(self, x: np.ndarray, obs: np.ndarray, da, em: dict, aux=None):
        """Each step's information ``V^T diag(m_t / r) V`` (time, k * k) and projection (time, k) of
        :meth:`_amplitude_fill` from the observations ``obs``: what the smoother reads."""
        Xc, m, _, _ = self._centred(x, obs, da, em, aux)
        return _amplitude_information(m, em["V"], em["r_oi"]), (Xc / em["r_oi"]) @ em["V"]

    def _centred(self, x: np.ndarray, obs: np.ndarray, da, em: dict, aux=None):
        """The state matrix's rows of the steps of ``x`` at their observations ``obs``, less the fitted
        mean (and cycle), zero elsewhere (time, columns) float64 torch; the mask (time, columns); the
        cycle (None without); the field's columns."""
        import torch

        X = torch.from_numpy(self._to_matrix(x)).double()
        m = torch.from_numpy(self._to_matrix(obs)).double()
        nf = X.shape[1]
        season = self.seasonal_.at(da, _label(da), np.float64)
        if season is not None:
            X = X - torch.from_numpy(season)
        if aux is not None:
            # multivariate: the covariates' observations of the day are more rows of its least squares
            # (the optimal interpolation of its amplitudes); the output is the field's columns
            X = torch.cat([X, torch.from_numpy(aux[0]).double()], dim=1)
            m = torch.cat([m, torch.from_numpy(aux[1]).double()], dim=1)
        if X.shape[1] != em["V"].shape[0]:
            raise AssertionError(f"{X.shape[1]} columns against the fit's {em['V'].shape[0]}")
        return (X - em["mu"]) * m, m, season, nf

    def _amplitude_fill(self, x: np.ndarray, obs: np.ndarray, da, em: dict, f, aux=None, which: str = ""):
        """The fill (time, lat, lon) float32 of :meth:`_transform` from the observations ``obs``, and
        with ``error_map`` its uncalibrated error variance (time, n_ocean) float64 torch (else None);
        ``f``: :meth:`_transition`'s AR(1) factors (None: each step alone); ``aux``: the covariates'
        columns (values, observed), (time, m) each, of a multivariate fit (:meth:`_transform_aux`)."""
        import torch

        V, r, r_oi, lam, k, mu = em["V"], em["r"], em["r_oi"], em["lam"], em["k"], em["mu"]
        Xc, m, season, nf = self._centred(x, obs, da, em, aux)
        stream = self._stream if self._time_block and (self._stream or {}).get("smooth") else None
        if stream is not None and stream["mode"] == "collect":  # the smoother runs once all blocks are read
            stream["G" + which].append(_amplitude_information(m, V, r_oi))
            stream["b" + which].append((Xc / r_oi) @ V)
            return np.zeros(x.shape, np.float32), None
        if stream is not None:
            at = _torch_index(stream["days"])
            a, P = stream["a" + which][at], stream["P" + which][at]
        elif f is None:
            P = _amplitude_cov(m, V, r_oi, lam)
            a = (P.reshape(-1, k, k) @ ((Xc / r_oi) @ V)[:, :, None])[..., 0]  # (time, k)
        else:
            a, P = _smoothed_amplitudes(_amplitude_information(m, V, r_oi), (Xc / r_oi) @ V, lam, f)
        V, r, mu = V[:nf], r[:nf], mu[:nf]
        recon = mu + a @ V.T
        if season is not None:
            recon = recon + torch.from_numpy(season)
        filled = self._from_matrix(recon.numpy().astype(np.float32))
        if not self.options["error_map"]:
            return filled, None
        # the new steps' temporal modes (amplitudes over the singular values): the loadings' term
        u = a / em["s2"].sqrt().clamp(min=1e-300)
        Q = em["Q"]
        return filled, _error_variance(P, V, r, u, lambda i, j: Q(i, min(j, nf)))

    def _transform_scale(self, x: np.ndarray, obs: np.ndarray, da, em: dict, f, pos,
                         aux=None) -> tuple[float, dict[str, Any]]:
        """The sigma scale of :meth:`_transform` fitted on the new field's own cloud-shaped held-out
        observations, and the sigma attrs that say so; the fit's scale with too few of them. ``f``,
        ``pos``: the field's AR(1) factors and :func:`_time_positions`, as :meth:`_transform` has them."""
        fit_scale = float(self.cv_sigma_scale_)
        held = self._sigma_points(obs, da)
        span = em.get("span")
        inside = np.zeros(obs.shape[0], dtype=bool)
        if held is not None and pos is not None and span is not None and pos[1] == span[2]:
            # steps of the fitted period: their observations were the fit's, so held out there they
            # were still seen by its modes (on the fitted field, a scale 3-6x too small)
            inside = (pos[0] >= span[0]) & (pos[0] <= span[1])
            held[inside] = False
        n_held, kept = 0 if held is None else int(held.sum()), None
        if n_held >= SIGMA_MIN_POINTS:
            filled, var = self._amplitude_fill(x, obs & ~held, da, em, f, aux)
            sd = self._from_matrix(var.sqrt_().numpy(), fill=np.nan)
            z = calibration_z(((filled - x) / sd)[held])
            kept = (z.size, float(np.sqrt(np.mean(z ** 2))) if z.size else float("nan"))
        return _scale_and_attrs(kept, n_held, inside, fit_scale)

    def _transition(self, da, em: dict, pos):
        """The AR(1) factor of each new step's amplitudes from the step before, (time, k) float64
        torch (:func:`_smoothed_amplitudes`), or None when the steps are filled each alone (option
        ``transform_smoother`` off, no persistence fitted, a single step).

        The fitted lag-1 correlation ``phi`` is per fitted time step; a new step ``d`` after the one
        before gets ``phi ** (d / step)``, so a day missing from the new series counts as two steps
        of decay. New steps out of time order are smoothed in time order (repeats: the same state).
        Dates in another calendar than the fit's compare by their durations. Without a comparable
        time coordinate (none, or numbers against dates) consecutive new steps are taken one fitted
        step apart. ``em``: :meth:`_fitted_modes`; ``pos``: the new field's :func:`_time_positions`."""
        import torch

        phi = em.get("phi")
        nt = da.sizes[da.dims[0]]
        if not self.options["transform_smoother"] or phi is None or nt < 2 or not bool((phi > 0).any()):
            return None
        e = np.ones(nt)
        step = em.get("step")
        # durations compare across calendars (a day is 86400 s in each): a fit on noleap dates took new
        # standard dates 2 days apart as one step (phi, not phi ** 2); only their absolute positions differ
        if pos is not None and step is not None and pos[1].split(":")[0] == step[1].split(":")[0]:
            e = np.diff(pos[0], prepend=pos[0][0]) / step[0]
            if (e[1:] < 0).any():  # out of order: _transform sorts the steps first
                raise AssertionError("time steps must be sorted before smoothing")
        f = phi.numpy()[None, :] ** e[:, None]
        f[0] = 0.0
        return torch.from_numpy(f)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        em = self._fitted_modes()
        # phi is None in a fit saved before the smoother (loaded, saved again): saved without it, as it was
        arrays = {key: em[key].numpy() for key in ("mu", "V", "s2", "r", "r_oi", "lam", "phi") if em[key] is not None}
        if self.options["error_map"]:  # the loadings' covariances, by blocks of pixels as the fill reads them
            n, k = int(self.ocean_.sum()), arrays["V"].shape[1]  # the field's pixels: sigma is the field's
            step = max(1, _ERRMAP_BLOCK // (k * k))
            arrays["Q"] = np.concatenate([em["Q"](i, min(i + step, n)).numpy() for i in range(0, n, step)])
        season, meta = self.seasonal_.state()
        aux = None
        st = getattr(self, "_aux_stats", None) if getattr(self, "aux_names_", None) else None
        if st is not None:  # multivariate: mu, V, r, r_oi hold the covariates' columns after the field's
            arrays["aux_mean"] = np.stack([np.asarray(m, np.float64) for m in st["mean"]])
            arrays["aux_cols"] = np.stack(st["cols"]).astype(np.uint8)
            aux = {"names": [str(n) for n in st["names"]], "units": list(st["units"]),
                   "scale": [float(v) for v in st["scale"]], "weight": float(st["weight"])}
        return ({**arrays, **season},
                {**meta, "k": int(em["k"]), "n_modes": int(self.n_modes_), "label": self._label,
                 "cv_sigma_scale": float(getattr(self, "cv_sigma_scale_", 1.0)),
                 "time_step": None if em["step"] is None else list(em["step"]),
                 "time_span": None if em["span"] is None else list(em["span"]),
                 **({} if aux is None else {"aux": aux})})

    def _restore_aux(self, aux, n_ocean: int, array) -> int:
        """Set the covariates' statistics saved by :meth:`_state` (``meta["aux"]``; None: a fit
        without them, or saved before they could be) and return the state matrix's column count."""
        self._aux_stats, self._blocks = None, None
        if aux is None:
            return n_ocean
        names, units, scale, weight = aux["names"], aux["units"], aux["scale"], aux["weight"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)
                and len(set(names)) == len(names)):
            raise ValueError(f"aux names {names!r} are not distinct names")
        if not (isinstance(units, list) and len(units) == len(names)
                and all(u is None or isinstance(u, str) for u in units)):
            raise ValueError(f"aux units {units!r} are not one unit (or null) per covariate")
        for v in (*scale, weight) if isinstance(scale, list) and len(scale) == len(names) else (None,):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"aux scale {scale!r} or weight {weight!r} is not a positive number per covariate")
        shape = (len(names), *self.ocean_.shape)
        means = array("aux_mean", shape).astype(np.float32)
        cols = array("aux_cols", shape, kind="u").astype(bool)
        if not cols.any(axis=(1, 2)).all():
            raise ValueError("a covariate's columns (aux_cols) are empty")
        self._aux_stats = {"names": list(names), "units": list(units), "mean": list(means),
                           "scale": [float(v) for v in scale], "cols": list(cols), "weight": float(weight)}
        self.aux_names_, self.aux_units_ = list(names), list(units)
        blocks = [(0, n_ocean, self.ocean_)]
        for c in cols:
            blocks.append((blocks[-1][1], blocks[-1][1] + int(c.sum()), c))
        self._blocks = blocks
        return blocks[-1][1]

    def _restore(self, arrays, meta, n_ocean, array) -> None:
        import torch

        from .climatology import SeasonalCycle

        k, scale = meta["k"], meta["cv_sigma_scale"]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_ocean:
            raise ValueError(f"k {k!r} is not a number of modes from 1 to the {n_ocean} ocean pixels")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"cv_sigma_scale {scale!r} is not a positive number")
        # a multivariate fit's modes span the covariates' columns too; fits saved before: none
        n = self._restore_aux(meta.get("aux"), n_ocean, array)
        em: dict[str, Any] = {key: torch.from_numpy(array(key, shape)) for key, shape in (
            ("mu", (n,)), ("V", (n, k)), ("s2", (k,)), ("r", (n,)), ("r_oi", (n,)), ("lam", (k,)))}
        if not (bool((em["r_oi"] > 0).all()) and bool((em["lam"] > 0).all()) and bool((em["s2"] >= 0).all())):
            raise ValueError("variances r_oi, lam must be positive and s2 not negative")
        em["k"] = k
        # fits saved before the smoother have no phi: each new step alone, as they were filled then
        em["phi"] = torch.from_numpy(array("phi", (k,))) if "phi" in arrays else None
        if em["phi"] is not None and not bool(((em["phi"] >= 0) & (em["phi"] < 1)).all()):
            raise ValueError("phi (the amplitudes' lag-1 correlations) must be in [0, 1)")
        step = meta.get("time_step")
        if step is not None and not (isinstance(step, list) and len(step) == 2 and isinstance(step[1], str)
                                     and (step[1] == "number" or step[1].startswith("seconds:"))
                                     and isinstance(step[0], (int, float)) and not isinstance(step[0], bool)
                                     and np.isfinite(step[0]) and step[0] > 0):
            raise ValueError(f"time_step {step!r} is not [a positive number, 'seconds:<calendar>' or 'number']")
        em["step"] = None if step is None else (float(step[0]), str(step[1]))
        span = meta.get("time_span")
        if span is not None and not (isinstance(span, list) and len(span) == 3 and isinstance(span[2], str)
                                     and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             and np.isfinite(v) for v in span[:2]) and span[0] <= span[1]):
            raise ValueError(f"time_span {span!r} is not [first, last, kind]")
        em["span"] = None if span is None else (float(span[0]), float(span[1]), str(span[2]))
        if self.options["error_map"]:
            Q = torch.from_numpy(array("Q", (n_ocean, k * k)))
            em["Q"] = lambda i, j: Q[i:j]
        self._modes = em
        self.n_modes_, self._label, self.cv_sigma_scale_ = int(meta["n_modes"]), str(meta["label"]), float(scale)
        self.seasonal_ = SeasonalCycle.saved(meta, arrays, n_ocean, self.ocean_, array)

    def _cut_state(self, new, sel: np.ndarray, iy: np.ndarray, ix: np.ndarray, label: str) -> None:
        import torch

        em = dict(self._fitted_modes())
        nf = int(self.ocean_.sum())
        blocks = [(0, sel.size, new.ocean_)]
        st = getattr(self, "_aux_stats", None) if getattr(self, "aux_names_", None) else None
        if st is not None:
            # multivariate: each covariate's columns in the box too (its pixels in the box's C order, as
            # the field's), after the field's; its per-pixel mean and its pixels cut, its scale kept
            start, cut_st = nf, {**st, "mean": [], "cols": []}
            for mean, cols in zip(st["mean"], st["cols"]):
                pix = np.full(cols.shape, -1, np.int64)
                pix[cols] = np.arange(start, start + int(cols.sum()))
                box = pix[np.ix_(iy, ix)]
                sel = np.concatenate([sel, box[box >= 0]])  # the state matrix's columns in the box
                cut_st["mean"].append(np.asarray(mean)[np.ix_(iy, ix)])
                cut_st["cols"].append(cols[np.ix_(iy, ix)])
                blocks.append((blocks[-1][1], blocks[-1][1] + int((box >= 0).sum()), cut_st["cols"][-1]))
                start += int(cols.sum())
            new._aux_stats = cut_st
        at, sel = torch.from_numpy(sel), sel[:blocks[0][1]]  # sel: the field's columns from here on
        for key in ("mu", "V", "r", "r_oi"):  # per pixel; s2, lam, phi (per mode) and the time step are kept
            em[key] = em[key][at].clone()
        if self.options["error_map"]:  # the loadings' covariances of the box's pixels, by blocks as they are read
            n, k = nf, self._fitted_modes()["V"].shape[1]  # sigma is the field's: its columns only
            step = max(1, _ERRMAP_BLOCK // (k * k))
            order = np.sort(sel)
            Q = self._fitted_modes()["Q"]
            parts = [Q(i, i + step)[torch.from_numpy(order[(order >= i) & (order < i + step)] - i)]
                     for i in range(0, n, step) if ((order >= i) & (order < i + step)).any()]
            Qc = torch.cat(parts)[torch.from_numpy(np.searchsorted(order, sel))].clone()
            em["Q"] = lambda i, j: Qc[i:j]
        new._modes = em
        new._blocks = blocks if st is not None else None
        new.seasonal_ = self.seasonal_.cut(sel, iy, ix)

    def _fitted_modes(self) -> dict[str, Any]:
        """:meth:`_error_model` of the fitted fill (the cycle removed), computed once, on the CPU."""
        if getattr(self, "_modes", None) is None:
            import torch

            M = self._to_matrix(self.obs_)
            # the fit's fill with its observations put back (normalised, the cycle removed): the error
            # model reads the residual of ``_final``'s rank-k values at the observations from it.
            # One float64 cube, written in place (the cube-sized copies of before peaked at 7x its size)
            A = self._to_matrix(self._filled).astype(np.float64)
            vals = self._to_matrix(self.values_)
            A[M] = (vals[M] - np.broadcast_to(self.mean_[self.ocean_], M.shape)[M]) / self.scale_
            del vals
            season = self.seasonal_.matrix(np.float64)
            if season is not None:
                A -= season
                del season
            if getattr(self, "_aux_filled", None) is not None:
                # multivariate: the modes of the whole state matrix, the covariates' columns after the
                # field's (as the fit's _blocks say), so that transform() reads a day's amplitudes off both
                A = np.concatenate([A, self._aux_filled.astype(np.float64)], axis=1)
                M = np.concatenate([M, self._aux_mask], axis=1)
            filled = torch.from_numpy(A)
            em = self._error_model(filled, torch.from_numpy(M), self.n_modes_, dual=bool(self.options["error_map"]))
            # the persistence of each mode's amplitudes from one fitted step to the next (transform's smoother)
            pos = _time_positions(self.da_)
            step = _fitted_step(pos)
            amp = (filled @ em["V"] - em["mu"] @ em["V"]).numpy()
            order = np.arange(amp.shape[0]) if pos is None else np.argsort(pos[0], kind="stable")
            # consecutive in time, not in the field's order: fitted on shuffled days phi was 0 (no smoothing)
            em["phi"] = torch.from_numpy(_lag1(amp[order], None if pos is None else pos[0][order],
                                               None if step is None else step[0]))
            em["step"] = step
            # the fitted period: transform's sigma is not calibrated on its steps (their observations were the fit's)
            em["span"] = None if pos is None else (float(pos[0].min()), float(pos[0].max()), pos[1])
            self._modes = em
        return self._modes

    def _inflation_sums(self, res, mask, stats: dict, pixels: np.ndarray | None = None) -> None:
        """Add the products of the residual ``res`` (steps, n) between observed neighbours along
        each grid axis (``mask`` (steps, n), bool) to ``stats`` (:func:`_inflation_factor`);
        ``pixels`` (lat, lon) bool: where the n columns lie on the grid (default ``ocean_``)."""
        import torch

        pixels = self.ocean_ if pixels is None else pixels
        grid = torch.zeros((res.shape[0],) + pixels.shape, dtype=res.dtype, device=res.device)
        ok = torch.zeros(grid.shape, dtype=torch.bool, device=res.device)
        oc = torch.from_numpy(pixels).to(res.device)
        grid[:, oc] = res
        ok[:, oc] = mask
        for ax in (1, 2):
            if grid.shape[ax] < 2:
                continue
            a, b = grid.narrow(ax, 0, grid.shape[ax] - 1), grid.narrow(ax, 1, grid.shape[ax] - 1)
            both = ok.narrow(ax, 0, grid.shape[ax] - 1) & ok.narrow(ax, 1, grid.shape[ax] - 1)
            a, b = a[both], b[both]
            sums = torch.stack([(a * b).sum(), (a * a).sum(), (b * b).sum(), both.sum().double()])
            stats[ax] = stats[ax] + sums if ax in stats else sums

    def _reconstruct(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self._filled, self._sigma

    def _sigma_attrs(self) -> dict[str, Any]:
        """``cv_sigma_scale`` (the calibration factor) and what the error map is."""
        cal = self._sigma_calibration
        attrs: dict[str, Any] = {"cv_sigma_scale": float(self.cv_sigma_scale_)}
        if cal is None:
            how = " (1: not calibrated, too few cloud-shaped held-out points and no cross-validation points)"
            attrs["sigma_calibration"] = "none"
        elif cal["method"] == "cloud_transfer":
            how = _CLOUD_CAL_TEXT.format(points=cal["points"], fraction=cal["fraction"], dropped=cal["dropped"],
                                         clip=SIGMA_CLIP)
            attrs.update(sigma_calibration="cloud_transfer", sigma_calibration_points=cal["points"],
                         sigma_calibration_fraction=round(float(cal["fraction"]), 4))
        else:
            how = (f" (fitted so that rms(CV error / sigma) = 1 on the {cal['points']} cross-validation points: too "
                   "few cloud-shaped held-out points)")
            attrs.update(sigma_calibration="cv_squares", sigma_calibration_points=cal["points"])
        attrs["error_model"] = ERROR_MAP_TEXT + how
        return attrs

    def _fit_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "n_modes": self.n_modes_,
            "n_iter": self.n_iter_,
            "n_iter_total": self.n_iter_total_,
            "converged": bool(self.converged_),
        }
        attrs["shrink"] = float(self.shrink_)
        if getattr(self, "aux_names_", None):  # as the neural methods write it
            attrs["aux_variables"] = " ".join(self.aux_names_)
        attrs.update(self.seasonal_.attrs(self._label))
        if self.cv_curve_:
            attrs["cv_shape"] = self.cv_shape_
            if self.cv_radius_ is not None:
                attrs["cv_radius"] = self.cv_radius_
            attrs["cv_squares"] = self.cv_squares_
            attrs["cv_unconverged"] = self.cv_unconverged_
            attrs["cv_curve"] = json.dumps([[k, round(e, 8)] for k, e in self.cv_curve_])
            attrs["cv_rmse"] = self.cv_rmse_
        if self.shrink_curve_:
            attrs["shrink_curve"] = json.dumps([[lam, round(e, 8)] for lam, e in self.shrink_curve_])
        return attrs


class _HiddenRows(MutableMapping):
    """The observations :meth:`DINEOF.stream_held` hides, by position in time order, kept as packed bits
    in the stream's ``bits[t, 1]`` (a file) instead of a (lat, lon) array per step in memory."""

    def __init__(self, model, order: np.ndarray):
        self._model, self._order, self._counts = model, order, {}

    def __getitem__(self, p: int) -> np.ndarray:
        if p not in self._counts:
            raise KeyError(p)
        return self._model._stream_day(int(self._order[p]), 1)

    def __setitem__(self, p: int, w: np.ndarray) -> None:
        self._model._stream["bits"][int(self._order[p]), 1] = np.packbits(w.ravel())
        self._counts[p] = int(w.sum())

    def __delitem__(self, p: int) -> None:
        raise NotImplementedError

    def __iter__(self):
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def count(self, p: int) -> int:
        """The hidden pixels of position ``p``."""
        return self._counts[p]


def _torch_index(steps) -> Any:
    """Steps (an int array) as a torch index."""
    import torch

    return torch.as_tensor(np.asarray(steps, dtype=np.int64))


def _scale_and_attrs(kept: tuple[int, float] | None, n_held: int, inside: np.ndarray,
                     fit_scale: float) -> tuple[float, dict]:
    """The sigma scale of :meth:`DINEOF.transform` and the attrs that say it: fitted on a new field's
    hidden observations (``kept``: the number of their error / sigma within the clip, of ``n_held``
    hidden, and its rms; None when too few were hidden to fill again), else the fit's ``fit_scale``
    and why; ``inside``: the field's steps in the fitted period (bool per step), which hide nothing."""
    if kept is not None and kept[0] >= SIGMA_MIN_POINTS:
        n_kept, scale = kept
        return scale, {
            "transform_sigma_scale": scale, "transform_sigma_calibration_points": int(n_kept),
            "transform_sigma_calibration": (
                f"x{scale:.4g} fitted on this field: rms(error / sigma) = 1 on {n_kept} of its {n_held} "
                f"observations hidden by cloud-mask transfer ({_SIGMA_FRACTION:.0%}; the fill rerun without "
                f"them; {n_held - n_kept} beyond {SIGMA_CLIP:g} robust stds left out); the fit's cv_sigma_scale "
                f"x{fit_scale:.4g} is not used")}
    if kept is not None:  # enough hidden, too few left within the clip: "250 ... (fewer than 200)" was said
        why = (f"{kept[0]} of the {n_held} observations of this field hidden by cloud-mask transfer are within "
               f"{SIGMA_CLIP:g} robust stds (fewer than {SIGMA_MIN_POINTS})")
    else:
        why = (f"{n_held} observations of this field could be hidden by cloud-mask transfer (fewer than "
               f"{SIGMA_MIN_POINTS}; one step, or no cloud to paste)")
    if inside.all():
        why = "this field's steps lie in the fitted period (the fit saw their observations)"
    elif inside.any():
        why += f" outside the fitted period ({int(inside.sum())} of its {inside.size} steps lie in it)"
    return fit_scale, {"transform_sigma_scale": fit_scale,
                       "transform_sigma_calibration": f"the fit's cv_sigma_scale x{fit_scale:.4g}: {why}"}
