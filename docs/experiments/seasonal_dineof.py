"""DINEOF (and the climatology) with the per-pixel seasonal cycle removed first (``harmonics``),
against the truth, at 30, 60 and 80 % cloud; and why the seasonal version loses at high cover.

The synthetic SST cube (48 x 48, daily, seed 0; 10 % of the valid pixels withheld by cloud-mask
transfer, as ``oceandl benchmark sst``) is filled by the climatology and DINEOF with
``harmonics`` 0, 1, 2 and ``auto`` (2 on a year of dates; not run twice). RMSE in degC against the
cloud-free truth on every gap (clouds + withheld), and on the withheld pixels alone (``val``).

Diagnostics, outside the package: ``cycle_err`` is the RMS (over all ocean pixels and days) of the
difference between the per-pixel harmonic fit (2 harmonics) on the fitting observations and the
same fit on the truth over every day ("oracle" cycle); ``dineof[oracle]`` is DINEOF (harmonics=0)
on the anomalies from the oracle cycle, added back; ``dineof[smooth2]`` the same from the fitted
cycle smoothed in space (Gaussian, sigma 2 px, normalised over the ocean).

Since DINEOF and ``eof`` shrink each pixel's fit toward its neighbours'
(:func:`~oceandl.interp.climatology.shrink_harmonics`), the ``cycle_err`` of the DINEOF h=2 row is
that of the shrunk cycle it removed; the climatology's h=2 row keeps the per-pixel fit's.

Run: ``OMP_NUM_THREADS=1 python docs/experiments/seasonal_dineof.py [N_DAYS] [COVERS] [ROWS]``
(defaults 365, 0.3,0.6,0.8 and every row; about 15 minutes on one core). ``ROWS``: a comma list of
methods (``dineof``, ``climatology``, ``dineof[oracle]``, ``dineof[smooth2]``) or ``method:h``
(``dineof:2``) to run only those.
"""
import sys
import time
import warnings

import numpy as np
from scipy.ndimage import gaussian_filter

from oceandl.datasets.clouds import withhold_by_cloud_transfer
from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import get_method, interpolate
from oceandl.interp.climatology import fit_harmonics, harmonic_design, resolve_harmonics, year_fraction
from oceandl.io import open_field


def harmonic_cycle(values, mask, design):
    """Each pixel's harmonic fit (its mean plus :func:`fit_harmonics`, with the climatology's
    fallback to fewer harmonics) to ``values`` where ``mask``."""
    count = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    ocean = count > 0
    coef = fit_harmonics(values - mean, mask, ocean, design)[0]
    cycle = np.broadcast_to(mean, values.shape).copy()
    cycle[:, ocean] += design @ coef.T
    return cycle


def shrunk_cycle(model) -> np.ndarray:
    """The seasonal cycle a fitted DINEOF removed (shrunk toward the neighbours'), degC, land 0."""
    s = model.seasonal_
    cycle = np.broadcast_to(np.nan_to_num(model.mean_), model.values_.shape).copy()
    cycle[:, model.ocean_] += (s.design @ s.coef.T) * model.scale_
    return cycle


def main(n_time: int, covers: list[float], only: list[str] | None = None) -> None:
    warnings.simplefilter("ignore")

    def wanted(method, h):
        return only is None or f"{method}:{h}" in only or method in only

    print("| cover | method | harmonics | truth_rmse | val_rmse | n_modes | cycle_err | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for cover in covers:
        ds = synthetic_sst(n_time=n_time, ny=48, nx=48, cloud_cover=cover, seed=0)
        da = open_field(ds, "sst")
        truth = open_field(ds.assign(sst=ds["sst_true"]), "sst").values
        v = da.values
        valid, sea = np.isfinite(v), np.isfinite(truth)
        held = withhold_by_cloud_transfer(valid, fraction=0.1, seed=0)
        # pixels no fitting observation ever sees are left NaN by every method (land, to them): on a
        # short record some sea pixels are, and the truth RMSE came out NaN
        gaps = (~valid | held) & sea & (valid & ~held).any(axis=0)
        auto = resolve_harmonics("auto", da["time"])[0]
        design = harmonic_design(year_fraction(da["time"]), 2)
        oracle = harmonic_cycle(np.where(sea, truth, 0.0), sea, design)
        fitted = harmonic_cycle(np.nan_to_num(v), valid & ~held, design)
        ocean = sea.any(axis=0).astype(np.float64)
        smooth = np.where(ocean > 0, gaussian_filter(np.where(ocean > 0, fitted, 0.0), (0, 2, 2))
                          / np.maximum(gaussian_filter(ocean, 2), 1e-6), 0.0)

        def err(a, b, m):
            return float(np.sqrt(np.mean((a - b)[m] ** 2)))

        def row(method, harmonics, filled, attrs, seconds, cycle=None):
            print(f"| {cover:g} | {method} | {harmonics} | {err(filled, truth, gaps):.4f} | {err(filled, v, held):.4f} "
                  f"| {attrs.get('n_modes', '')} | {'' if cycle is None else f'{err(cycle, oracle, sea):.3f}'} "
                  f"| {seconds:.0f} |", flush=True)

        for method in ("climatology", "dineof"):
            for h in (0, 1, 2, "auto"):
                if h == "auto":
                    print(f"| {cover:g} | {method} | auto | (= {auto}) | | | | |")
                    continue
                if not wanted(method, h):
                    continue
                t0 = time.perf_counter()
                model = get_method(method)(seed=0, device="cpu", harmonics=h).fit(da, withheld=held)
                out = model.reconstruct()
                cycle = None
                if h == 2:  # the per-pixel fit (climatology), the shrunk one (DINEOF), in degC
                    cycle = fitted if method == "climatology" else shrunk_cycle(model)
                row(method, h, out["sst"].values, out["sst"].attrs, time.perf_counter() - t0, cycle)
        for name, cycle in (("oracle", oracle), ("smooth2", smooth)):
            if not wanted(f"dineof[{name}]", 0):
                continue
            t0 = time.perf_counter()
            out = interpolate(da - cycle, "dineof", withheld=held, return_dataset=True, seed=0, device="cpu")
            row(f"dineof[{name}]", 0, out["sst"].values + cycle, out["sst"].attrs, time.perf_counter() - t0, cycle)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 365,
         [float(c) for c in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0.3, 0.6, 0.8],
         sys.argv[3].split(",") if len(sys.argv) > 3 else None)
