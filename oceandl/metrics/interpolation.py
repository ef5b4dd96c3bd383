"""Scores of a gap-filled field against a reference (withheld pixels or the true field)."""
from __future__ import annotations

import numpy as np

from oceandl.errors import InputError

__all__ = ["interp_metrics"]


def match_axis(ia, ir) -> np.ndarray | None:
    """Positions in index ``ia`` of each value of index ``ir`` (numbers within 1e-3 of the spacing:
    float32 and float64 copies of one grid match), or None when they do not hold the same values."""
    if len(ia) != len(ir):
        return None
    if ia.equals(ir):
        return np.arange(len(ia))
    pos = ia.get_indexer(ir) if ia.is_unique else np.full(len(ir), -1)
    numeric = np.issubdtype(ia.dtype, np.number) and np.issubdtype(ir.dtype, np.number)
    if (ia.is_unique and (pos < 0).any() and numeric and len(ia) > 1
            and (ia.is_monotonic_increasing or ia.is_monotonic_decreasing)):
        tol = 1e-3 * float(np.min(np.abs(np.diff(np.asarray(ia, np.float64)))))
        pos = ia.get_indexer(ir, method="nearest", tolerance=tol)
    return pos if (pos >= 0).all() and len(np.unique(pos)) == len(pos) else None


def _reorder_like(a, ref, name: str = "truth", where: str = "interp_metrics", other: str = "pred"):
    """``a`` with each dim whose coordinate holds ``ref``'s values in another order put in ``ref``'s order.

    Raises InputError when a dim of the same length has other coordinate values in ``a`` than in
    ``ref`` (another grid or other times): positions would be compared that are not the same pixels.
    The message reads ``"{where}: {name} and {other} have other ... coordinates"``.
    """
    # Positions used to be compared whatever the coordinates said: a truth stored with latitudes
    # descending (as many L3 files are) against oceandl's output (sorted ascending) scored each
    # pixel against its mirror image.
    for d in ref.dims:
        if d not in a.indexes or d not in ref.indexes:
            continue
        ia, ir = a.indexes[d], ref.indexes[d]
        if len(ia) != len(ir):
            continue  # the shape check names both shapes
        pos = match_axis(ia, ir)
        if pos is not None:
            a = a.isel({d: pos}) if not ia.equals(ir) else a
            continue
        # A shifted or other grid was scored position by position, silently (a field against its
        # neighbour one row up gave a near-perfect score).
        try:
            i = int(np.argmax(np.asarray(ia) != np.asarray(ir)))
        except TypeError:  # e.g. datetimes against numbers
            i = 0
        raise InputError(f"{where}: {name} and {other} have other {d!r} coordinates ({other} has {d}={ir[i]} "
                         f"where {name} has {ia[i]}); pass .values to compare position by position")
    return a


def _values(a, ref=None, name: str = "truth") -> np.ndarray:
    """NumPy values of ``a``; a DataArray is first transposed to the dims of ``ref`` and put in the
    order of its coordinates when both are labelled (InputError when those coordinates differ)."""
    import xarray as xr

    if isinstance(a, xr.DataArray):
        if isinstance(ref, xr.DataArray) and set(a.dims) == set(ref.dims):
            if a.dims != ref.dims:
                a = a.transpose(*ref.dims)
            a = _reorder_like(a, ref, name)
        return np.asarray(a.values)
    return np.asarray(a)


def interp_metrics(pred, truth, mask=None, sigma=None) -> dict:
    """Error statistics of ``pred`` against ``truth`` over the pixels of ``mask``.

    Parameters
    ----------
    pred, truth : array-like or xarray.DataArray, same shape (any dims, e.g. (time, lat, lon))
        Prediction and reference. Labelled inputs are aligned by dimension name, and along a dimension
        whose coordinate holds the same values in another order (e.g. latitudes descending in one
        and ascending in the other), by coordinate; other coordinate values (another grid, other
        times) are an error.
    mask : bool (or 0/1) array-like, same shape, optional
        Pixels to score (e.g. the withheld pixels). Default: every pixel. Pixels where ``pred``,
        ``truth`` (or ``sigma``) is not finite are always left out. Other values (NaN, 2) are an
        error, not read as True.
    sigma : array-like, same shape, optional
        Predicted error standard deviation (>= 0; NaN where there is none); adds the calibration
        fractions.

    Returns
    -------
    dict
        ``rmse``, ``mae``, ``bias`` (mean of pred - truth), ``corr`` (Pearson), ``std_ratio``
        (std(pred) / std(truth); below 1 means the prediction is over-smoothed), ``n`` (pixels
        scored) and, with ``sigma``, ``frac_within_1sigma``, ``frac_within_2sigma``,
        ``frac_within_3sigma`` (fractions of |pred - truth| <= k sigma; a calibrated Gaussian error
        gives about 0.683, 0.954, 0.997). Statistics are NaN when ``n`` is 0; ``corr`` is NaN when
        pred or truth is constant over the pixels scored, ``std_ratio`` when truth is.

    Raises
    ------
    InputError
        If the shapes differ, ``mask`` holds values other than 0/1, ``sigma`` negative values, or
        labelled inputs have other coordinates along a dim.
    """
    p = _values(pred).astype(np.float64, copy=False)
    t = _values(truth, ref=pred).astype(np.float64, copy=False)
    if p.shape != t.shape:
        raise InputError(f"interp_metrics: pred has shape {p.shape} but truth has shape {t.shape}")
    valid = np.isfinite(p) & np.isfinite(t)
    if mask is not None:
        m = _values(mask, ref=pred, name="mask")
        if m.shape != p.shape:
            raise InputError(f"interp_metrics: mask has shape {m.shape} but pred has shape {p.shape}")
        # astype(bool) read NaN (a flag variable's _FillValue, decoded by xarray) and any non-zero
        # value as "score this pixel": a mask [1, NaN, 0, NaN] scored 3 pixels instead of 1
        if m.dtype != bool:
            odd = ~np.isin(m, (0, 1)) if np.issubdtype(m.dtype, np.number) else np.ones(m.shape, bool)
            if odd.any():
                raise InputError(f"interp_metrics: mask must be boolean (True = scored) or 0/1; it holds "
                                 f"{m[odd].ravel()[0].item()!r} at {int(odd.sum())} pixel(s) (a fill value? "
                                 f".fillna(0) leaves those pixels out)")
        valid &= m.astype(bool)
    s = None
    if sigma is not None:
        s = _values(sigma, ref=pred, name="sigma").astype(np.float64, copy=False)
        if s.shape != p.shape:
            raise InputError(f"interp_metrics: sigma has shape {s.shape} but pred has shape {p.shape}")
        # a negative std (a variance minus something, a sign error) counted as a miss at every k:
        # sigma [1, -1, 1, 1] against errors of at most 0.5 gave within 1, 2 and 3 sigma 0.75
        neg = s < 0  # NaN compares False
        if neg.any():
            raise InputError(f"interp_metrics: sigma is a standard deviation but holds {int(neg.sum())} negative "
                             f"value(s) (min {float(s[neg].min()):.4g})")
        valid &= np.isfinite(s)

    n = int(valid.sum())
    out: dict = {"rmse": np.nan, "mae": np.nan, "bias": np.nan, "corr": np.nan, "std_ratio": np.nan, "n": n}
    if sigma is not None:
        out.update({f"frac_within_{k}sigma": np.nan for k in (1, 2, 3)})
    if n == 0:
        return out
    pv, tv = p[valid], t[valid]
    err = pv - tv
    sp, st = pv.std(), tv.std()
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    out["mae"] = float(np.mean(np.abs(err)))
    out["bias"] = float(err.mean())
    # Correlation and std ratio are undefined for a constant reference; leave them NaN then.
    # Constant means all values equal: the std of a constant 0.1 or 271.35 is ~1e-17, not 0, in
    # floating point, which gave corr 0.0 and a std_ratio of 1e17.
    p_const, t_const = pv.min() == pv.max(), tv.min() == tv.max()
    if not (p_const or t_const):
        out["corr"] = float(np.corrcoef(pv, tv)[0, 1])
    if not t_const:
        out["std_ratio"] = 0.0 if p_const else float(sp / st)
    if s is not None:
        aerr, sv = np.abs(err), s[valid]
        for k in (1, 2, 3):
            out[f"frac_within_{k}sigma"] = float(np.mean(aerr <= k * sv))
    return out
