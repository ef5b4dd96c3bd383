"""Withholding observed pixels for validation by cloud-mask transfer (DINEOF/DINCAE cross-validation).

In the core, not in :mod:`oceandl.datasets.clouds` (which re-exports it), so that
:func:`oceandl.interp.interpolate` and ``oceandl interpolate`` draw the withheld pixels with the
same code: the same field and seed give the same mask from Python and from the shell.
"""
from __future__ import annotations

import math
from collections.abc import MutableMapping

import numpy as np
import xarray as xr

from oceandl.errors import InputError, warn

__all__ = ["check_withhold", "cloud_transfer_days", "withhold_by_cloud_transfer", "withhold_for_validation",
           "withhold_attrs"]


def _as_valid(valid) -> tuple[np.ndarray, xr.DataArray | None, tuple | None]:
    """Bool ``(time, y, x)`` array from ``valid``; the DataArray and its dim order if given one."""
    template = order = None
    if isinstance(valid, xr.DataArray):
        template = valid
        order = valid.dims
        if "time" in valid.dims:
            valid = valid.transpose("time", ...)
        valid = valid.values
    arr = np.asarray(valid)
    if arr.ndim != 3:
        raise InputError(f"valid mask: has {arr.ndim} dims; expected 3 (time, y, x)")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                f"valid mask: dtype {arr.dtype}; expected booleans (e.g. np.isfinite(sst))"
            )
        arr = arr != 0
    return arr, template, order


def withhold_by_cloud_transfer(valid, fraction: float = 0.1, seed: int = 0, *, at_most: bool = False):
    """Pixels to withhold for validation by transferring real cloud patterns to clean days.

    As in DINEOF/DINCAE cross-validation: take the days with the most valid pixels first; on each,
    impose the cloud (invalid ocean) pattern of another day drawn at random, and withhold the valid
    pixels that fall under it; stop once at least ``fraction`` of all valid pixels are withheld.
    The withheld pixels therefore have the size and shape of real gaps. Days with no valid pixel
    (outages) lend no pattern: theirs would withhold a whole day.

    Parameters
    ----------
    valid : numpy.ndarray or xarray.DataArray of bool, shape ``(time, y, x)``
        True where a value is observed. Pixels never valid (land) are never withheld.
    fraction : float
        Share of the valid pixels to withhold, in ``[0, 1)``.
    seed : int
        Seed of the choice of donor days.
    at_most : bool
        When the gaps are too few for the transfer to reach ``fraction`` (a nearly clear field),
        return what it reached instead of raising.

    Returns
    -------
    numpy.ndarray or xarray.DataArray of bool, shape ``(time, y, x)``
        True where a valid pixel is withheld (a subset of ``valid``); a DataArray with the
        input's dims and coords when given one.

    Raises
    ------
    InputError
        For a bad ``valid`` or ``fraction``; with ``at_most=False``, when ``fraction`` cannot be
        reached.
    """
    arr, template, order = _as_valid(valid)
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"withholding fraction {fraction!r}: must be in [0, 1)")
    n_time = arr.shape[0]
    ocean = arr.any(axis=0)  # pixels never valid are land (or never seen): never withheld
    total = int(arr.sum())
    target = math.ceil(fraction * total)
    withheld = np.zeros_like(arr)
    if target > 0:
        if (n_time < 2 or not (~arr & ocean).any()) and not at_most:
            raise InputError(
                "valid mask: no cloud pattern to transfer (needs >= 2 days and some gaps over ocean)"
            )
        taken, done = cloud_transfer_days(arr.__getitem__, arr.reshape(n_time, -1).sum(axis=1), ocean, target, seed)
        for d, w in taken.items():
            withheld[d] = w
        if done < target and not at_most:
            raise InputError(
                f"valid mask: cannot withhold {fraction:.0%} of valid pixels by cloud transfer "
                f"(reached {done / total:.0%})"
            )
    return _labelled(withheld, template, order, fraction)


def cloud_transfer_days(day, counts: np.ndarray, ocean: np.ndarray, target: int, seed: int,
                        withheld: MutableMapping[int, np.ndarray] | None = None
                        ) -> tuple[MutableMapping[int, np.ndarray], int]:
    """The draws of :func:`withhold_by_cloud_transfer`, one day at a time: for a series read in
    blocks, whose days are not all in memory at once (``interpolate --chunks``'s calibration).

    Parameters
    ----------
    day : callable
        ``day(i)``: the bool ``(y, x)`` valid mask of day ``i`` (0 <= i < ``len(counts)``).
    counts : int ndarray (time,)
        The valid pixels of each day.
    ocean : bool ndarray (y, x)
        The pixels valid on some day (the others are never withheld nor lend a gap).
    target : int
        Withhold at least this many valid pixels, when the gaps allow.
    seed : int
        Seed of the choice of donor days.
    withheld : mapping of int to bool ndarray (y, x), optional
        Where to keep the pixels withheld by day (default: a new dict), empty: one that keeps them
        out of memory (packed bits in a file) for a long series of large days.

    Returns
    -------
    withheld : mapping of int to bool ndarray (y, x)
        The pixels withheld on each day that has some.
    done : int
        Their number (below ``target`` when the gaps are too few).
    """
    rng = np.random.default_rng(seed)
    cleanest = np.argsort(-np.asarray(counts), kind="stable")
    # a day with no observation (a satellite outage) is no cloud pattern: lent, it withheld a
    # whole clean day, which the output then held as the method's reconstruction
    seen = np.flatnonzero(np.asarray(counts) > 0)
    withheld = {} if withheld is None else withheld
    done = 0
    # Later passes stack a second donor's clouds on the same days, for large fractions.
    for _ in range(20):
        for d in cleanest:
            pool = seen[seen != d]  # any observed day but d (all days but d: as before, draw for draw)
            if pool.size == 0:
                continue
            donor = int(pool[rng.integers(pool.size)])
            new = day(int(d)) & ~day(donor) & ocean  # the donor's gaps over the ocean
            d = int(d)
            if d in withheld:
                before = withheld[d]
                new &= ~before
                if new.any():
                    withheld[d] = before | new
            elif new.any():
                withheld[d] = new
            done += int(new.sum())
            if done >= target:
                return withheld, done
    return withheld, done


def _labelled(withheld: np.ndarray, template: xr.DataArray | None, order: tuple | None, fraction: float):
    """``withheld`` as the caller gave ``valid``: an array, or a DataArray of its dims and coords."""
    if template is None:
        return withheld
    dims = ("time",) + tuple(d for d in template.dims if d != "time") if "time" in order else order
    out = xr.DataArray(withheld, dims=dims, coords=template.coords, name="withheld")
    out.attrs["long_name"] = "valid pixels withheld for validation (cloud transfer)"
    out.attrs["fraction"] = float(fraction)
    return out.transpose(*order)


def check_withhold(fraction) -> None:
    """Raise :class:`InputError` unless ``fraction`` is a number in [0, 0.9) (a share to withhold)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 <= fraction < 0.9:
        raise InputError(f"withhold {fraction!r}: must be a fraction in [0, 0.9)")


def withhold_for_validation(valid: np.ndarray, fraction: float, seed: int, where: str,
                            log=None) -> np.ndarray | None:
    """The pixels ``oceandl interpolate --withhold fraction`` hides from the method, or None.

    Parameters
    ----------
    valid : bool ndarray (time, lat, lon)
        True where observed. Only the time order matters: the transfer is pixel by pixel, so a
        field with its latitudes reversed or its dims transposed gets the same mask, reordered.
    fraction : float
        Share of the valid pixels to withhold, in [0, 0.9); 0 withholds none.
    seed : int
        Seed of the choice of donor days (the fill's ``seed``).
    where : str
        Names the input in the warning and log line.
    log : callable, optional
        Gets the one-line summary of what was withheld.

    Returns
    -------
    bool ndarray (time, lat, lon) or None
        None when nothing is withheld: ``fraction`` 0, a single time step (the caller says so,
        after a checkpoint's fill), or a field with no gap over the ocean to copy (warned).

    Raises
    ------
    InputError
        If ``fraction`` is outside [0, 0.9).
    """
    check_withhold(fraction)
    if fraction == 0 or valid.shape[0] < 2:
        return None
    if not (~valid & valid.any(axis=0)).any():
        # nothing to copy: a complete field is filled without a validation score. A warning
        # (`warning: ...` on the command line), as docs/robustness.md says: the score asked for is not there
        warn(f"{where}: no gaps over the ocean to copy onto other days; no pixels withheld for validation")
        return None
    # a nearly clear field has too few gaps to lend: the default --withhold 0.1 failed on it with
    # "valid mask: cannot withhold 10% ... (reached 8%)", naming no file, while a clear one is warned about
    withheld = withhold_by_cloud_transfer(valid, fraction=fraction, seed=seed, at_most=True)
    reached = withheld.sum() / valid.sum()
    if withheld.sum() < math.ceil(fraction * valid.sum()):
        warn(f"{where}: its gaps are too few to withhold {fraction:.0%} of the valid pixels by cloud-mask "
             f"transfer; {reached:.1%} withheld for validation")
    if not withheld.any():
        return None
    if log is not None:
        log(f"withheld {withheld.sum():,} of {valid.sum():,} valid pixels "
            f"({withheld.sum() / valid.sum():.1%}) by cloud-mask transfer for validation")
    return withheld


def withhold_attrs(withheld: np.ndarray, valid: np.ndarray, fraction: float, seed: int) -> dict:
    """The attributes that say how the pixels scored by ``val_*`` were chosen, written by
    ``oceandl interpolate --withhold`` and :func:`oceandl.interpolate` (``withhold=``) alike.

    Only the scores were written: how many pixels were hidden, by which draw, was in no file (the
    command line of ``history`` does not hold the default ``--withhold 0.1``), and a result of
    ``interpolate(withhold=...)`` said nothing of it.

    Parameters
    ----------
    withheld, valid : bool ndarray (time, lat, lon)
        The pixels withheld (from :func:`withhold_for_validation`) and those it drew from.
    fraction : float
        The share asked for; seed : int, the draw's.

    Returns
    -------
    dict
        ``val_withhold`` (the share asked for), ``val_withheld_fraction`` (the share withheld: more
        where whole cloud patterns overshoot, less where the gaps are too few),
        ``val_withhold_method`` (``"cloud-mask transfer"``) and ``val_withhold_seed``.
    """
    n = int(np.count_nonzero(valid))
    return {"val_withhold": float(fraction),
            "val_withheld_fraction": float(np.count_nonzero(withheld) / n) if n else 0.0,
            "val_withhold_method": "cloud-mask transfer", "val_withhold_seed": int(seed)}
