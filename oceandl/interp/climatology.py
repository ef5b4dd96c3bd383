"""Climatology, the baseline: every gap takes its pixel's seasonal cycle (or its temporal mean).

With ``harmonics=k`` each ocean pixel is fitted, by least squares on its observed days, with

    mean + sum_j a_j cos(2 pi j f) + b_j sin(2 pi j f),   j = 1..k

where ``f`` is the fraction of the year at each time step (day of year, time of day included,
over the length of that year in the time coordinate's calendar: 365 or 366 days, 360 on a
``360_day`` calendar, as the neural methods' seasonal inputs). The fit is vectorised: the
per-pixel normal equations ``X^T X`` and ``X^T y`` are sums over time (accumulated in time
chunks here, dask reductions in :func:`~oceandl.interp.chunked.interpolate_chunked`), then one
batched solve. The functions below are shared by both paths, so they fit the same model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from oceandl.errors import InputError, warn

from .base import Interpolator

__all__ = ["Climatology", "year_fraction", "resolve_harmonics", "harmonic_design", "harmonic_fit", "harmonic_attrs",
           "check_harmonics", "fit_harmonics", "seasonal_cycle", "SeasonalCycle", "MAX_HARMONICS", "MIN_OBS_PER_PARAM",
           "MAX_COND", "harmonic_folds", "harmonic_normal_equations", "shrink_harmonics", "harmonic_rss"]

#: more harmonics than this (periods under 2 months) describe weather, not a seasonal cycle
MAX_HARMONICS = 6
#: a pixel fits j harmonics (2j + 1 parameters) only with at least this many observations per parameter
MIN_OBS_PER_PARAM = 3
#: ... and where the condition number of its normalised normal matrix is at most this. Observed days
#: spread evenly through the year give 1; one unobserved stretch of the year gives 10 at about 5
#: months for the annual harmonic alone, 3 months with the semi-annual, 2 months with 3 harmonics:
#: about half the shortest period, beyond which that harmonic is an extrapolation across the gap.
MAX_COND = 10.0
#: ``harmonics="auto"`` fits this many where the time coordinate spans a year (annual + semi-annual)
AUTO_HARMONICS = 2
#: :func:`shrink_harmonics` estimates its prior from neighbour pairs of well-observed pixels; with
#: fewer than this it keeps each pixel's own fit (a prior from a handful of pairs is noise)
MIN_SHRINK_PAIRS = 20
#: residual variance, over the observations', below which the harmonic fits are exact to rounding
#: (the residual sums of squares, ``y'y - c'X'y``, cancel to 0 there): :func:`shrink_harmonics`'s floor
_EXACT_FIT = 1e-10


def year_fraction(time: xr.DataArray) -> np.ndarray | None:
    """Fraction of the year (time,) in [0, 1) of a time coordinate, or None if it holds no dates.

    Day of year (and time of day) over the length of that year in the coordinate's calendar:
    365 or 366 days (``standard``, ``noleap``, ``all_leap``...), 360 on a ``360_day`` calendar, so
    that every calendar's year makes exactly one turn (on 360_day this is what the neural methods'
    ``doy * 365.25 / 360`` gives).
    """
    try:
        dt = time.dt
        doy = np.asarray(dt.dayofyear.values, dtype=np.float64)
        seconds = (np.asarray(dt.hour.values, dtype=np.float64) * 3600 + np.asarray(dt.minute.values) * 60
                   + np.asarray(dt.second.values))
        length = np.asarray(dt.days_in_year.values, dtype=np.float64)
    except (TypeError, AttributeError, ValueError):
        return None
    return (doy - 1.0 + seconds / 86400.0) / length


def _span_days(time: xr.DataArray) -> float:
    """Days covered by a dated time coordinate: last minus first, plus one median step."""
    t = np.asarray(time.values)
    if len(t) < 2:
        return 0.0
    steps = np.diff(t)
    span = t[-1] - t[0] + sorted(steps)[len(steps) // 2]
    try:
        return float(span / np.timedelta64(1, "D"))
    except TypeError:
        return span.total_seconds() / 86400.0  # cftime: datetime.timedelta


def resolve_harmonics(option, time: xr.DataArray | None, label: str = "input") -> tuple[int, np.ndarray | None]:
    """The number of harmonics to fit and the year fraction of each time step.

    ``option`` is ``"auto"`` or an integer >= 0. ``"auto"`` fits :data:`AUTO_HARMONICS` where the
    time coordinate holds dates covering at least a year (365 days, 360 on a 360_day calendar):
    a shorter record cannot tell a seasonal cycle from a trend, and gets the time mean (0).

    Raises
    ------
    InputError
        If harmonics are asked for (an integer > 0) and the time coordinate holds no dates.
    """
    frac = year_fraction(time) if time is not None else None
    if option == "auto":
        if frac is None:
            return 0, None
        year = 360.0 if getattr(time.dt, "calendar", None) == "360_day" else 365.0
        dated = time[np.isfinite(frac)] if np.isnan(frac).any() else time
        if _span_days(dated) < year:
            return 0, None
        _check_dated(frac, time, AUTO_HARMONICS, label)
        return AUTO_HARMONICS, frac
    k = int(option)
    if k > 0 and frac is None:
        what = "no time coordinate" if time is None else f"time coordinate of dtype {time.dtype}, not dates"
        raise InputError(f"{label}: harmonics={k} needs the day of year of each step, but it has {what} "
                         "(decode the times, or use harmonics=0)")
    if k > 0:
        _check_dated(frac, time, k, label)
    return k, (frac if k > 0 else None)


def _check_dated(frac: np.ndarray, time: xr.DataArray, k: int, label: str) -> None:
    """Refuse steps without a date (NaT: a fill value in the file's time) where a cycle is fitted or
    evaluated: their NaN year fraction reached the design matrix, a bare LinAlgError ("Eigenvalues
    did not converge") from the fit, NaN from a fill."""
    bad = np.flatnonzero(np.isnan(frac))
    if bad.size:
        tdim = time.dims[0]
        raise InputError(f"{label}: {bad.size} time step(s) have no date (NaT; the first: step {bad[0]}), and the "
                         f"seasonal cycle of {k} harmonic(s) needs the day of year of each; drop them "
                         f"(da.isel({tdim}=da.{tdim}.notnull())) or use harmonics=0")


def harmonic_design(frac: np.ndarray, k: int) -> np.ndarray:
    """The (time, 2k + 1) design matrix: 1, then sqrt(2) cos(2 pi j f), sqrt(2) sin(2 pi j f) for j = 1..k.

    The sqrt(2) makes the columns' mean squares 1 over a year, so that observations spread evenly
    through the year give a normal matrix ``count * I`` (condition number 1)."""
    cols = [np.ones_like(frac, dtype=np.float64)]
    for j in range(1, k + 1):
        arg = 2 * np.pi * j * np.asarray(frac, dtype=np.float64)
        cols += [np.sqrt(2) * np.cos(arg), np.sqrt(2) * np.sin(arg)]
    return np.stack(cols, axis=1)


def harmonic_fit(gram: np.ndarray, rhs: np.ndarray, yy: np.ndarray, count: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve each pixel's normal equations with as many harmonics as its observations determine.

    Parameters
    ----------
    gram : (n, p, p) per-pixel ``X^T X`` over its observed steps (``p = 2k + 1``, columns of
        :func:`harmonic_design`).
    rhs : (n, p) per-pixel ``X^T y``; ``y`` is the observation minus the pixel's mean.
    yy : (n,) per-pixel ``y^T y``.
    count : (n,) observations per pixel.
    k : harmonics asked for.

    Returns
    -------
    coef : (n, p) float64, zero beyond each pixel's own number of harmonics (and for pixels with none).
    level : (n,) int, the harmonics fitted: the largest ``j <= k`` with at least
        :data:`MIN_OBS_PER_PARAM` observations per parameter and the condition number of
        ``X^T X / count`` (its leading 2j + 1 rows and columns) at most :data:`MAX_COND`; 0 falls
        back to the mean.
    rss : (n,) residual sum of squares about the fit (``yy`` where ``level`` is 0).
    """
    n, p = rhs.shape
    count = np.asarray(count, dtype=np.float64)
    level = np.zeros(n, dtype=np.int64)
    coef = np.zeros((n, p))
    for j in range(1, k + 1):
        q = 2 * j + 1
        cand = np.flatnonzero((level == j - 1) & (count >= MIN_OBS_PER_PARAM * q))
        if not cand.size:
            break
        # leading principal blocks: their condition number never exceeds the whole one's, so the
        # levels are nested and one pass upward finds each pixel's largest well-determined j
        eig = np.linalg.eigvalsh(gram[cand, :q, :q] / count[cand, None, None])
        ok = eig[:, 0] * MAX_COND >= eig[:, -1]
        level[cand[ok]] = j
    rss = np.asarray(yy, dtype=np.float64).copy()
    for j in range(1, k + 1):
        sel = np.flatnonzero(level == j)
        if not sel.size:
            continue
        q = 2 * j + 1
        c = np.linalg.solve(gram[sel, :q, :q], rhs[sel, :q, None])[..., 0]
        coef[sel, :q] = c
        # at the least-squares solution, |y - Xc|^2 = y'y - c'X'y; rounding can make it a hair negative
        rss[sel] = np.maximum(rss[sel] - np.einsum("np,np->n", c, rhs[sel, :q]), 0.0)
    return coef, level, rss


def harmonic_rss(gram: np.ndarray, rhs: np.ndarray, yy: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """(n,) residual sum of squares ``|y - X c|^2 = y'y - 2 c'X'y + c'X'X c`` of any coefficients
    ``coef`` (n, p) from the normal equations (floored at 0 against rounding)."""
    return np.maximum(yy - 2 * np.einsum("np,np->n", coef, rhs) + np.einsum("np,npq,nq->n", coef, gram, coef), 0.0)


def harmonic_sigma(rss: np.ndarray, count: np.ndarray, level: np.ndarray, fallback: float) -> np.ndarray:
    """Residual std about each pixel's fit, ddof = its number of parameters (1 for the mean);
    ``fallback`` where a pixel has too few observations for one (fewer than 2)."""
    dof = np.asarray(count, dtype=np.float64) - (2 * level + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dof >= 1, np.sqrt(rss / dof), fallback)


def harmonic_attrs(k: int, levels: np.ndarray, label: str) -> dict[str, Any]:
    """The fit's output attributes: ``harmonics`` (k) and, for k > 0, ``harmonics_fallback_pixels``
    (ocean pixels, ``levels >= 0``, that fitted fewer than k). Warns when none fitted any."""
    attrs: dict[str, Any] = {"harmonics": int(k)}
    if k:
        sea = levels[levels >= 0]
        attrs["harmonics_fallback_pixels"] = int((sea < k).sum())
        if sea.size and not sea.any():
            warn(f"{label}: harmonics={k}: no pixel's observations span the year well enough to fit a "
                          f"seasonal cycle (see the climatology's fallback rule); every gap took its pixel's "
                          "time mean", UserWarning)
    return attrs


def check_harmonics(method: str, value) -> None:
    """Refuse a ``harmonics`` option other than ``"auto"`` or an integer from 0 to :data:`MAX_HARMONICS`.

    Raises
    ------
    InputError
        Naming ``method`` and the value.
    """
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                            or not 0 <= value <= MAX_HARMONICS):
        raise InputError(f"method {method!r}: option harmonics must be 'auto' or an integer from 0 to "
                         f"{MAX_HARMONICS}, got {value!r}")


def harmonic_folds(frac: np.ndarray, k: int) -> np.ndarray:
    """Bool (time,): the steps of fold A, alternate stretches of the year (B is the rest).

    The year is cut into ``max(12, 4k)`` equal stretches (months for k <= 3; a quarter of the
    shortest period beyond) and the even ones form fold A, so that each fold samples every
    season and can fit the k harmonics on its own. :func:`shrink_harmonics` uses the two folds'
    separate fits to measure how noisy a pixel's fit really is.
    """
    n = max(12, 4 * k)
    return (np.floor(np.asarray(frac, dtype=np.float64) * n).astype(np.int64) % 2) == 0


def harmonic_normal_equations(x: np.ndarray, obs: np.ndarray, ocean: np.ndarray, design: np.ndarray,
                              fold: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Each ocean pixel's normal equations over its observed steps, in memory (time chunks).

    Returns ``gram`` (n, p, p) ``X^T X``, ``rhs`` (n, p) ``X^T y``, ``yy`` (n,) and ``count``
    (n,), for the ocean pixels in C order; with a ``fold`` (time,) bool, also ``gram`` and ``rhs``
    over the fold's steps alone (the dask reductions of the ``--chunks`` path sum the same).
    """
    p = design.shape[1]
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), p * p)
    n_t = x.shape[0]
    xf, of, sea = x.reshape(n_t, -1), obs.reshape(n_t, -1), ocean.ravel()
    n = int(sea.sum())
    gram, rhs, yy = np.zeros((n, p * p)), np.zeros((n, p)), np.zeros(n)
    gram_a, rhs_a = np.zeros((n, p * p)), np.zeros((n, p))
    step = max(1, 2**21 // max(n, 1))  # time chunks: no cube-sized float64 temporaries
    for i in range(0, n_t, step):
        w = of[i:i + step][:, sea].astype(np.float64)
        y = np.where(w > 0, xf[i:i + step][:, sea].astype(np.float64), 0.0)  # the observed values only
        gram += w.T @ outer[i:i + step]
        rhs += y.T @ design[i:i + step]
        yy += np.einsum("tn,tn->n", y, y)
        if fold is not None:
            f = fold[i:i + step, None]
            gram_a += w.T @ (outer[i:i + step] * f)
            rhs_a += y.T @ (design[i:i + step] * f)
    count = of[:, sea].sum(axis=0)
    out = (gram.reshape(n, p, p), rhs, yy, count)
    return out if fold is None else out + (gram_a.reshape(n, p, p), rhs_a)


def fit_harmonics(x: np.ndarray, obs: np.ndarray, ocean: np.ndarray, design: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each ocean pixel's harmonic fit (:func:`harmonic_fit`) to its observations, in memory.

    Parameters
    ----------
    x : (time, lat, lon) anomalies about the pixels' means, any value where ``obs`` is False.
    obs : bool (time, lat, lon), the observations to fit (withheld pixels excluded by the caller).
    ocean : bool (lat, lon).
    design : (time, 2k + 1) from :func:`harmonic_design`.

    Returns
    -------
    coef, level, rss : as :func:`harmonic_fit`, for the ocean pixels in C order.
    count : (n,) observations per ocean pixel.
    """
    k = (design.shape[1] - 1) // 2
    gram, rhs, yy, count = harmonic_normal_equations(x, obs, ocean, design)
    coef, level, rss = harmonic_fit(gram, rhs, yy, count, k)
    return coef, level, rss, count


def _grid_laplacian(ocean: np.ndarray):
    """The graph Laplacian (n, n, scipy CSR) of the ocean pixels (C order) joined to their 4
    neighbours, and the pairs (i, j) of neighbours. Flipping an axis gives the same graph."""
    import scipy.sparse as sp

    idx = np.full(ocean.shape, -1)
    n = int(ocean.sum())
    idx[ocean] = np.arange(n)
    a = np.concatenate([idx[1:, :].ravel(), idx[:, 1:].ravel()])
    b = np.concatenate([idx[:-1, :].ravel(), idx[:, :-1].ravel()])
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    w = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    w = (w + w.T).tocsr()
    return sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w, a, b


def _neighbours_harmonics(coef: np.ndarray, level: np.ndarray, gram: np.ndarray, rhs: np.ndarray,
                          count: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """``coef`` with each observed pixel that determines no harmonic (``level`` 0) given its
    neighbours' harmonics: the mean own-fit harmonics of the pixels that determine some, in the
    smallest square window of 3, 5, 9, ... px holding one (:func:`~oceandl.interp.base.rare_centre`'s
    rule, in the arrays' order, as :func:`_grid_laplacian`'s), and its level refitted to its own
    observations given them. Where :func:`shrink_harmonics` cannot estimate its prior, a pixel seen
    once got a flat cycle at its centre (gap RMSE there 3.37 degC on a year of 12 x 12 at 90 % cloud,
    /tmp/audit131_measure.py's thinning; 1.73 with this)."""
    from .base import rare_centre

    todo = (level == 0) & (np.asarray(count) > 0)
    if not todo.any() or not (level > 0).any():
        return coef
    out = coef.copy()
    pseudo = np.zeros(ocean.shape, dtype=np.int64)
    pseudo[ocean] = np.where(level > 0, 2, 0)  # rare_centre's "well observed": 2 observations or more
    where = np.zeros(ocean.shape, dtype=bool)
    where[ocean] = todo
    grid = np.zeros(ocean.shape)
    for j in range(1, coef.shape[1]):
        grid[ocean] = coef[:, j]
        out[todo, j] = rare_centre(grid, pseudo, where)[ocean][todo]
    sel = np.flatnonzero(todo)
    # the level (about the pixel's mean) refitted to its own observations given the harmonics
    out[sel, 0] = (rhs[sel, 0] - np.einsum("nq,nq->n", gram[sel, 0, 1:], out[sel, 1:])) / gram[sel, 0, 0]
    return out


def shrink_harmonics(gram: np.ndarray, rhs: np.ndarray, yy: np.ndarray, count: np.ndarray,
                     gram_a: np.ndarray, rhs_a: np.ndarray, mean: np.ndarray, ocean: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Each pixel's seasonal cycle shrunk toward its neighbours' by its own fit's uncertainty.

    Empirical Bayes with a spatial smoothness prior. Each pixel's absolute coefficients
    ``beta_i`` (mean + harmonics, columns of :func:`harmonic_design`) have the likelihood of its
    observations, ``|y_i - X_i beta_i|^2 / (c s2_i)`` (``s2_i`` the residual variance about its
    own fit, ``c`` how much more the fit really varies than white noise says: eddies with weeks
    of memory and clustered cloudy spells), and the prior ``exp(-sum over 4-neighbour pairs
    (beta_i - beta_j)^T T (beta_i - beta_j) / 2)``, ``T = diag(tau_q)``. The posterior mode
    solves the sparse system ``(blockdiag(X_i^T X_i / (c s2_i)) + L (x) T) beta = X^T y / (c s2)``
    (L the grid's Laplacian): each pixel's estimate is
    ``(X_i^T X_i / (c s2_i) + d_i T)^-1 (X_i^T y_i / (c s2_i) + d_i T m_i)`` with ``m_i`` the mean
    of its ``d_i`` neighbours', so a well-observed pixel keeps its own fit and one seen on few
    (or clustered) days takes its neighbours', at a distance set by its uncertainty, not a pixel
    scale. A pixel without ocean neighbours keeps its own fit (where its observations do not
    determine one, the well-observed pixels' mean harmonics). The level (the constant) is then
    refitted to each pixel's own observations given its shrunk harmonics, so that the anomalies
    left have mean 0 over its observed days, as after its own fit.

    The hyperparameters come from the data. The observations are split into two folds of
    alternate stretches of the year (:func:`harmonic_folds`) and each well-observed pixel (k
    harmonics determined by all its observations and by each fold's, :func:`harmonic_fit`'s
    rule) fitted on each: half their difference is noise alone, with the fit's own error
    structure (its spatial correlation between neighbours included). ``c`` is its mean
    ``h^T V_h^-1 h / p`` (``V_h`` the folds' least-squares covariance); ``tau_q`` is
    ``1 / (2 v_q)``, ``v_q`` the mean square of the neighbour differences of the coefficients
    less that of the noise (the 2: the variance of a neighbour difference of a 2-D first-order
    random field). With fewer than :data:`MIN_SHRINK_PAIRS` neighbour pairs of well-observed
    pixels (k harmonics determined on each fold: at least ``3 (2k + 1)`` observations a fold,
    spread through the year), the first ``k - 1`` harmonics are shrunk so, and 0 beyond them at
    every pixel (``info["harmonics"]``), and so on down to one; with too few pairs for even one,
    nothing is shrunk: each pixel keeps its own fit, and one that determines no harmonic (a pixel seen
    once) takes its neighbours' (:func:`_neighbours_harmonics`), its level refitted to its observations.

    Parameters
    ----------
    gram, rhs, yy, count : as :func:`harmonic_fit` (``rhs`` and ``yy`` about ``mean``), for the
        ocean pixels in C order.
    gram_a, rhs_a : the same sums over the fold-A steps alone.
    mean : (n,) the pixels' means (in the units of ``rhs``), which the anomalies are about.
    ocean : bool (lat, lon), the grid of the pixels.
    k : harmonics.

    Returns
    -------
    coef : (n, p) about ``mean``, as :func:`harmonic_fit`'s.
    level : (n,) :func:`harmonic_fit`'s (the harmonics a pixel's own observations determine).
    info : ``shrunk`` (bool), ``noise_factor`` (c), ``prior_std`` (sqrt(1 / tau_q), the
        coefficients' units), ``pairs`` (neighbour pairs used), ``harmonics`` (where shrunk: the
        harmonics shrunk, k or fewer; ``coef`` is 0 beyond them).
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    n, p = rhs.shape
    count = np.asarray(count, dtype=np.float64)
    coef, level, rss = harmonic_fit(gram, rhs, yy, count, k)
    info: dict[str, Any] = {"shrunk": False, "noise_factor": None, "prior_std": None, "pairs": 0}
    dof = count - (2 * level + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(dof >= 1, rss / dof, np.nan)
    if not np.isfinite(s2).any():
        return coef, level, info
    med = float(np.nanmedian(s2))
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = float(np.nanmedian(np.where(count > 0, yy / count, np.nan)))
    # a cycle that fits the observations to rounding (a synthetic or model field on a cftime calendar)
    # left residual variances of exactly 0 (y'y - c'X'y cancels): the folds' covariance was singular,
    # a bare LinAlgError; the rounding level is their floor
    floor = max(1e-6 * med, _EXACT_FIT * spread, np.finfo(np.float64).tiny)
    s2 = np.maximum(np.where(np.isfinite(s2), s2, med), floor)  # few observations: a typical pixel's
    shift = np.asarray(mean, dtype=np.float64)
    own = coef.copy()
    own[:, 0] += shift
    rhs_abs = rhs + gram[:, :, 0] * shift[:, None]  # the normal equations of the absolute values
    gram_b, rhs_b = gram - gram_a, rhs_abs - (rhs_a + gram_a[:, :, 0] * shift[:, None])
    rhs_a0, rhs_a = rhs_a, rhs_a + gram_a[:, :, 0] * shift[:, None]  # rhs_a0: about mean, for fewer harmonics
    count_a = gram_a[:, 0, 0]
    good = level == k
    fold_coef = []
    for g, r, c in ((gram_a, rhs_a, count_a), (gram_b, rhs_b, count - count_a)):
        # only the levels matter here: a pixel must fit k harmonics on each fold
        lev = harmonic_fit(g, r, np.zeros(n), c, k)[1]
        good &= lev == k
        fold_coef.append((g, r))
    lap, ia, ib = _grid_laplacian(ocean)
    pair = good[ia] & good[ib]
    if pair.sum() < MIN_SHRINK_PAIRS:
        if k > 1:
            # too few pixels determine all k harmonics on each fold (3 (2k + 1) observations a fold, the
            # year covered): shrink the first k - 1 (or fewer) instead. Each pixel's own fit left a pixel
            # seen once flat at its centre: gap RMSE there 3.0 with k = 3, 1.5 with k = 2 shrunk
            # (/tmp/audit131_measure.py, a year of 12 x 12, 10 % of the pixels cut to one observation)
            q = 2 * k - 1
            low, _, low_info = shrink_harmonics(gram[:, :q, :q], rhs[:, :q], yy, count, gram_a[:, :q, :q],
                                                rhs_a0[:, :q], mean, ocean, k - 1)
            if low_info["shrunk"]:
                out = np.zeros((n, p))
                out[:, :q] = low
                return out, level, low_info
        # none shrunk: each pixel's own fit, its neighbours' harmonics where it determines none
        return _neighbours_harmonics(coef, level, gram, rhs, count, ocean), level, info
    sel = np.flatnonzero(good)
    (ga, ra), (gb, rb) = (( g[sel], r[sel]) for g, r in fold_coef)
    half = (np.linalg.solve(ga, ra[..., None]) - np.linalg.solve(gb, rb[..., None]))[..., 0] / 2
    v_half = s2[sel, None, None] * (np.linalg.inv(ga) + np.linalg.inv(gb)) / 4
    noise_factor = float(np.mean(np.einsum("np,npq,nq->n", half, np.linalg.inv(v_half), half)) / p)
    noise_factor = max(noise_factor, 1.0)  # no less noisy than white noise
    # the noise of the whole record's fit is the folds' scaled by the ratio of their variances
    v_all = s2[sel, None] * np.diagonal(np.linalg.inv(gram[sel]), axis1=1, axis2=2)
    ratio = v_all / np.diagonal(v_half, axis1=1, axis2=2)
    h = np.zeros((n, p))
    h[sel] = half
    rt = np.zeros((n, p))
    rt[sel] = ratio
    a, b = ia[pair], ib[pair]
    d2 = np.mean((own[a] - own[b]) ** 2, axis=0)
    noise2 = np.mean((h[a] - h[b]) ** 2 * (rt[a] + rt[b]) / 2, axis=0)
    var = np.maximum(d2 - noise2, 1e-2 * d2)  # noise-dominated differences: strong, not infinite, smoothing
    var = np.maximum(var, 1e-12 * max(float(d2.max()), 1e-300))
    tau = 1.0 / (2.0 * var)
    # the posterior mode; a faint pull (1e-8 of a neighbour's) to the well-observed pixels' mean
    # coefficients keeps it unique where a patch of pixels has no determined fit at all
    eps = 1e-8
    prior_mean = own[good].mean(axis=0)
    w = 1.0 / (noise_factor * s2)
    blocks = gram * w[:, None, None]
    Q = (sp.block_diag(list(blocks), format="csr") + sp.kron(lap, sp.diags(tau), format="csr")
         + sp.kron(sp.identity(n), sp.diags(eps * tau), format="csr"))
    rhs_post = (rhs_abs * w[:, None]).ravel() + np.tile(eps * tau * prior_mean, n)
    # conjugate gradients with each pixel's own block (data + its neighbours' pull) as preconditioner
    deg = lap.diagonal()
    inv = np.linalg.inv(blocks + (deg + eps)[:, None, None] * np.diag(tau)[None])
    prec = spla.LinearOperator(Q.shape, matvec=lambda v: np.einsum("npq,nq->np", inv, v.reshape(n, p)).ravel())
    x0 = (np.einsum("npq,nq->np", inv, rhs_post.reshape(n, p))).ravel()
    beta, status = spla.cg(Q, rhs_post, x0=x0, M=prec, rtol=1e-10, atol=0.0, maxiter=100 * n)
    if status != 0:  # not converged (never seen): the direct solve
        beta = spla.spsolve(Q.tocsc(), rhs_post)
    beta = beta.reshape(n, p)
    # the level refitted to the pixel's own observations given the shrunk harmonics: the anomalies
    # left have mean 0 over its observed days, as after its own least-squares fit, so that the
    # methods that fit modes to them (in memory, or per block with --chunks, which removes a
    # block's pixel means first) start from the same anomalies
    beta[:, 0] = (rhs_abs[:, 0] - np.einsum("nq,nq->n", gram[:, 0, 1:], beta[:, 1:])) / gram[:, 0, 0]
    beta[:, 0] -= shift
    info.update(shrunk=True, noise_factor=noise_factor, prior_std=np.sqrt(1.0 / tau), pairs=int(pair.sum()),
                harmonics=k)
    return beta, level, info


@dataclass
class SeasonalCycle:
    """A per-pixel seasonal cycle fitted on the observations (in the units of the anomalies fitted).

    ``harmonics``: k (0: none); ``design`` (time, 2k + 1) and ``coef`` (n_ocean, 2k + 1), None for
    k = 0; ``levels`` (lat, lon) the harmonics each pixel's own observations determine, -1 on
    land; ``shrinkage``: :func:`shrink_harmonics`'s ``info`` where the fit was shrunk."""

    harmonics: int
    design: np.ndarray | None
    coef: np.ndarray | None
    levels: np.ndarray
    shrinkage: dict[str, Any] = field(default_factory=dict)

    def matrix(self, dtype=np.float32) -> np.ndarray | None:
        """The cycle at every step and ocean pixel, (time, n_ocean), or None for k = 0."""
        return None if self.design is None else (self.design @ self.coef.T).astype(dtype)

    def attrs(self, label: str) -> dict[str, Any]:
        """``harmonics`` (and ``harmonics_fallback_pixels``), see :func:`harmonic_attrs`."""
        return harmonic_attrs(self.harmonics, self.levels, label)

    @classmethod
    def saved(cls, meta: dict, arrays: dict, n_ocean: int, ocean: np.ndarray, array) -> "SeasonalCycle":
        """The cycle :meth:`state` saved (``array``: the loader's checked reader; ValueError on a bad meta)."""
        k = meta["harmonics"]
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_HARMONICS:
            raise ValueError(f"harmonics {k!r} is not an integer from 0 to {MAX_HARMONICS}")
        coef = array("season_coef", (n_ocean, 2 * k + 1)) if k else None
        return cls(k, None, coef, np.where(ocean, k, -1))

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON to save the cycle (:meth:`saved` reads them back)."""
        return ({"season_coef": np.asarray(self.coef, np.float64)} if self.harmonics else {},
                {"harmonics": int(self.harmonics)})

    def cut(self, sel: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> "SeasonalCycle":
        """The cycle of the ocean pixels ``sel`` (indices into ``coef``'s rows) of the box of rows ``iy`` and
        columns ``ix`` of the grid (:meth:`Interpolator.cut`), for :meth:`at` (the fitted steps' design is dropped)."""
        return SeasonalCycle(self.harmonics, None, None if self.coef is None else self.coef[sel],
                             self.levels[np.ix_(iy, ix)], dict(self.shrinkage))

    def check_dates(self, da: xr.DataArray, label: str) -> None:
        """Refuse ``da``'s steps without a date (NaT) before a fill splits or reorders the steps (a
        part's step numbers are not the caller's)."""
        tdim = da.dims[0]
        frac = year_fraction(da[tdim]) if self.harmonics and tdim in da.coords else None
        if frac is not None:
            _check_dated(frac, da[tdim], self.harmonics, label)

    def at(self, da: xr.DataArray, label: str, dtype=np.float32) -> np.ndarray | None:
        """The cycle at the dates of another field ``da`` (time first), (time, n_ocean), or None for k = 0."""
        return cycle_at(self.harmonics, self.coef, da, label, dtype)


def cycle_at(k: int, coef: np.ndarray | None, da: xr.DataArray, label: str, dtype=np.float32) -> np.ndarray | None:
    """A fitted cycle (``coef``: (n_ocean, 2k + 1)) at the dates of ``da`` (time first): (time, n_ocean),
    or None for k = 0.

    Raises
    ------
    InputError
        If ``da``'s time coordinate holds no dates.
    """
    if not k:
        return None
    tdim = da.dims[0]
    frac = year_fraction(da[tdim]) if tdim in da.coords else None
    if frac is None:
        raise InputError(f"{label}: the fit removed a seasonal cycle of {k} harmonic(s), which needs the day of year "
                         f"of each step to fill, but its {tdim!r} coordinate holds no dates (decode the times)")
    _check_dated(frac, da[tdim], k, label)
    return (harmonic_design(frac, k) @ coef.T).astype(dtype)


def seasonal_cycle(option, da: xr.DataArray, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray,
                   label: str, mean: np.ndarray | None = None) -> SeasonalCycle:
    """The seasonal cycle the ``harmonics`` option asks for, fitted on ``obs`` of the anomalies ``x``.

    ``da`` is the (time, lat, lon) input, whose time coordinate dates the steps (see
    :func:`resolve_harmonics`). Shared by the climatology and the EOF methods (DINEOF, ``eof``),
    which fit their modes to what is left. With the pixels' ``mean`` (lat, lon, in the units of
    ``x``, which are anomalies about it) each pixel's fit is shrunk toward its neighbours' by its
    own uncertainty (:func:`shrink_harmonics`, what DINEOF and ``eof`` do); without, each pixel's
    own least-squares fit (:func:`harmonic_fit`).

    Raises
    ------
    InputError
        If harmonics are asked for on a time coordinate without dates.
    """
    tdim = da.dims[0]
    time = da[tdim] if tdim in da.coords else None
    k, frac = resolve_harmonics(option, time, label)
    if k == 0:
        return SeasonalCycle(0, None, None, np.where(ocean, 0, -1))
    design = harmonic_design(frac, k)
    info: dict[str, Any] = {}
    if mean is None:
        coef, level, _, _ = fit_harmonics(x, obs, ocean, design)
    else:
        gram, rhs, yy, count, gram_a, rhs_a = harmonic_normal_equations(x, obs, ocean, design,
                                                                        harmonic_folds(frac, k))
        coef, level, info = shrink_harmonics(gram, rhs, yy, count, gram_a, rhs_a, np.asarray(mean)[ocean],
                                             ocean, k)
    levels = np.full(ocean.shape, -1)
    levels[ocean] = level
    return SeasonalCycle(k, design, coef, levels, info)


class Climatology(Interpolator):
    """Fill each gap with its pixel's seasonal cycle, or its temporal mean.

    Options
    -------
    harmonics : "auto" or int, 0 to :data:`MAX_HARMONICS`, default "auto"
        Annual harmonics fitted per pixel (mean + a_j cos(2 pi j f) + b_j sin(2 pi j f), ``f``
        the fraction of the year, see :func:`year_fraction`). 0: the time mean. ``"auto"`` (the
        default): 2 (annual and semi-annual) where the time coordinate holds dates covering at
        least a year, else 0. A time mean ignores the seasonal cycle and on a multi-year cube is
        a straw man, several degrees off in winter and summer: an oceanographer's climatology is
        seasonal. A record shorter than a year cannot separate a seasonal cycle from a trend.

    Notes
    -----
    Each pixel's fit is shrunk toward its neighbours' by its own uncertainty
    (:func:`shrink_harmonics`, empirical Bayes with a spatial smoothness prior whose strength, and
    the fits' real noise, are estimated from the data): a pixel seen on many days keeps its own
    least-squares cycle, one seen on few or clustered days takes mostly its neighbours', with
    its level refitted to its own observations. Measured (docs/experiments/seasonal_dineof.py,
    a year of 48 x 48 synthetic SST, RMSE against the truth at the gaps, h=2): 1.139 -> 1.108
    degC at 30 % cloud, 1.230 -> 1.139 at 60 %, 1.853 -> 1.194 at 80 %. Without neighbour pairs
    enough to estimate the prior for k harmonics (fewer than :data:`MIN_SHRINK_PAIRS` between pixels
    that determine them on each of two folds of the year) the first k - 1 are shrunk (or fewer, 0
    beyond them, ``shrinkage_["harmonics"]``): each pixel's own fit left a pixel seen once flat at its
    centre, 3.0 degC off at the gaps with ``harmonics=3`` on a year of 12 x 12 at 60 % cloud (1.5
    with the 2 shrunk, tests/test_audit131.py); with too few pairs for one, each pixel keeps its own
    fit, and one that determines no harmonic takes its neighbours' (3.37 -> 1.77 degC at the pixels
    seen once, 90 % cloud). That fit (and the ``levels_``) takes the largest number
    of harmonics ``j <= k`` its observations determine: at least :data:`MIN_OBS_PER_PARAM` (3)
    observations per parameter (2j + 1) and observed days spread through the year well enough that
    the condition number of its normalised normal matrix is at most :data:`MAX_COND` (10; evenly
    spread days give 1, and one unobserved stretch of about half the shortest period reaches 10).
    Fewer (down to the time mean) otherwise; the ``harmonics_fallback_pixels`` attribute counts
    the ocean pixels that got fewer than ``k`` on their own (with the shrinkage these take their
    neighbours' harmonics).
    The mean is the one the base class removes (pixels with fewer than 2 observations take their
    neighbours' means, :func:`~oceandl.interp.base.rare_centre`; the global mean put a pixel seen once
    6.3 degC off at the gaps of ``synthetic_sst(24, 12, 12, cloud 0.8, seed 1)``, 1.05 with them).
    With harmonics such a pixel's cycle is its neighbours' (shrunk fits) about a level refitted to its
    one observation; where the shrinkage cannot be estimated (``shrinkage_["shrunk"]`` False), the
    mean own-fit harmonics of the nearest pixels that determine some (the smallest square window
    holding one, :func:`~oceandl.interp.base.rare_centre`'s rule); flat, at that centre, where no
    pixel determines a harmonic. ``sigma`` is the per-pixel standard deviation of the observations about the
    fit, ddof the number of parameters (1 for the mean; the global std where a pixel has fewer
    than 2 observations): the expected error of the fill. Attributes after ``fit``:
    ``harmonics_`` (k), ``levels_`` (lat, lon) the harmonics each pixel's own observations
    determine (-1 on land), ``shrinkage_`` (:func:`shrink_harmonics`'s ``info``; {} for k = 0),
    ``coefficients_`` (2k + 1, lat, lon) in the data's units: mean, a_1, b_1, a_2, b_2, ...
    """

    name: ClassVar[str] = "climatology"
    gives_sigma: ClassVar[bool] = True
    option_defaults: ClassVar[dict] = {"harmonics": "auto"}
    _rare_neighbours: ClassVar[bool] = True  # a pixel seen once: centred on its neighbours' means

    def _check_options(self) -> None:
        check_harmonics(self.name, self.options["harmonics"])

    def _fit(self, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray) -> None:
        tdim = self.da_.dims[0]
        time = self.da_[tdim] if tdim in self.da_.coords else None
        name = getattr(self.da_, "name", None)
        label = f"variable {name!r}" if name is not None else "input"
        self.harmonics_, frac = resolve_harmonics(self.options["harmonics"], time, label)
        self._label = label
        self._shape = x.shape
        count = obs.sum(axis=0)
        if self.harmonics_ == 0:
            sq = np.einsum("tij,tij->ij", x.astype(np.float64), x.astype(np.float64))
            with np.errstate(invalid="ignore", divide="ignore"):
                std = np.sqrt(sq / (count - 1))
            # x is scaled to unit global std, so 1 is the global fallback.
            self._sigma = np.where(count >= 2, std, 1.0).astype(np.float32)
            self._design = None
            self.levels_ = np.where(ocean, 0, -1)
            self.shrinkage_ = {}
            return
        k = self.harmonics_
        design = harmonic_design(frac, k)
        gram, rhs, yy, n_obs, gram_a, rhs_a = harmonic_normal_equations(x, obs, ocean, design, harmonic_folds(frac, k))
        # shrunk toward the neighbours' fits (x is about mean_, in units of scale_)
        coef, level, self.shrinkage_ = shrink_harmonics(gram, rhs, yy, n_obs, gram_a, rhs_a,
                                                        np.nan_to_num(self.mean_ / self.scale_)[ocean], ocean, k)
        rss = harmonic_rss(gram, rhs, yy, coef)
        sigma = np.ones(ocean.shape)
        sigma[ocean] = harmonic_sigma(rss, n_obs, level, 1.0)  # 1: the global std
        self._sigma = sigma.astype(np.float32)
        self._design, self._coef = design, coef
        self.levels_ = np.full(ocean.shape, -1)
        self.levels_[ocean] = level

    def _reconstruct(self) -> tuple[np.ndarray, np.ndarray | None]:
        sigma = np.broadcast_to(self._sigma, self._shape).copy()
        if self._design is None:
            return np.zeros(self._shape, dtype=np.float32), sigma
        return self._from_matrix((self._design @ self._coef.T).astype(np.float32)), sigma

    can_transform: ClassVar[bool] = True

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"sigma": np.asarray(self._sigma, np.float64)}
        if self._design is not None:
            arrays["season_coef"] = np.asarray(self._coef, np.float64)
        return arrays, {"harmonics": int(self.harmonics_), "label": self._label}

    def _restore(self, arrays, meta, n_ocean, array) -> None:
        cycle = SeasonalCycle.saved(meta, arrays, n_ocean, self.ocean_, array)
        self.harmonics_, self._label = cycle.harmonics, str(meta["label"])
        sigma = array("sigma", self.ocean_.shape)
        if (sigma < 0).any():  # an error std: written to the output's sigma as it is
            raise ValueError("sigma holds negative values")
        self._sigma = sigma.astype(np.float32)
        self._coef = cycle.coef
        self._design = None if cycle.coef is None else np.empty((0, cycle.coef.shape[1]))

    def _transform(self, x: np.ndarray, obs: np.ndarray, da: xr.DataArray) -> tuple[np.ndarray, np.ndarray | None]:
        # the fitted cycle (or mean) at the new dates; the new observations change nothing
        sigma = np.broadcast_to(self._sigma, x.shape).copy()
        cycle = cycle_at(self.harmonics_, self._coef if self._design is not None else None, da, self._label)
        return (np.zeros(x.shape, np.float32) if cycle is None else self._from_matrix(cycle)), sigma

    def _cut_state(self, new, sel: np.ndarray, iy: np.ndarray, ix: np.ndarray, label: str) -> None:
        new._sigma = self._sigma[np.ix_(iy, ix)]
        if self._design is not None:
            new._coef = self._coef[sel]
            new._design = np.empty((0, self._coef.shape[1]))  # a cycle to give at new dates (no fitted steps)
        if getattr(self, "levels_", None) is not None:
            new.levels_ = self.levels_[np.ix_(iy, ix)]

    @property
    def coefficients_(self) -> np.ndarray:
        """(2k + 1, lat, lon) fitted coefficients in the data's units: the mean, then a_j, b_j of
        ``a_j cos(2 pi j f) + b_j sin(2 pi j f)``; 0 beyond a pixel's own harmonics, NaN on land."""
        k = self.harmonics_
        out = np.full((2 * k + 1,) + self.ocean_.shape, np.nan)
        out[:, self.ocean_] = 0.0
        if k:
            c = self._coef.T * self.scale_
            c[1:] *= np.sqrt(2)  # the design's sqrt(2) columns
            out[:, self.ocean_] = c
        out[0] += self.mean_
        return out

    def _fit_attrs(self) -> dict[str, Any]:
        return harmonic_attrs(self.harmonics_, self.levels_, self._label)
