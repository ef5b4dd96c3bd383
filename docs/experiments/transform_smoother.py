"""DINEOF transform: each new day alone against the Kalman smoother across the days
(``transform_smoother``), and sigma scaled as the fit's against refitted on the new days
(``transform_calibration``).

The synthetic SST cube (400 days x 48 x 48, seeds 5 and 6, cloud covers 50 % and 80 %): DINEOF
(``harmonics=2``, ``error_map=True``) is fitted on the first 365 days and fills the last 35 without
fitting on them; 5 of those 35 days are made fully clouded (all NaN), as happens to small regions in
daily L3 products. RMSE against the cloud-free truth (degC) on the fully clouded days and on the other
gaps; the share of all gap errors within one sigma (0.68 for a calibrated Gaussian), with the fit's
scale and with the one fitted on the new days.

Run: ``python docs/experiments/transform_smoother.py`` (about 4 min on 2 cores).
"""
from __future__ import annotations

import warnings

import numpy as np

from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import DINEOF
from oceandl.io import open_field

warnings.simplefilter("ignore")  # the small cube's CV warnings
N_FIT, BLANK = 365, [5, 12, 13, 24, 30]

print("| cover | seed | clouded days: alone | smoothed | other gaps: alone | smoothed | within 1 sigma: fit's scale | refitted |")
print("|---|---|---|---|---|---|---|---|")
for cover in (0.5, 0.8):
    for seed in (5, 6):
        ds = synthetic_sst(n_time=N_FIT + 35, ny=48, nx=48, cloud_cover=cover, seed=seed)
        da = open_field(ds, "sst")
        truth = open_field(ds.assign(sst=ds["sst_true"]), "sst").values[N_FIT:]
        model = DINEOF(seed=seed, harmonics=2, error_map=True).fit(da.isel(time=slice(0, N_FIT)))
        new = da.isel(time=slice(N_FIT, None)).copy()
        values = new.values.copy()
        values[BLANK] = np.nan
        new.values = values
        blank = np.zeros(len(values), bool)
        blank[BLANK] = True
        row = {}
        for smooth, cal in ((False, False), (True, False), (True, True)):
            # the same fit, filled each way
            model.options.update(transform_smoother=smooth, transform_calibration=cal)
            out = model.transform(new)
            err = out["sst"].values - truth
            gaps = np.isnan(values) & np.isfinite(err)  # pixels never seen in the fitted year stay unfilled
            sig = out["sigma"].values
            on_blank, other = gaps & blank[:, None, None], gaps & ~blank[:, None, None]
            row[smooth, cal] = (np.sqrt(np.mean(err[on_blank] ** 2)), np.sqrt(np.mean(err[other] ** 2)),
                                np.mean(np.abs(err[gaps]) <= sig[gaps]))
        a, s, c = row[False, False], row[True, False], row[True, True]
        print(f"| {cover:.0%} | {seed} | {a[0]:.3f} | {s[0]:.3f} | {a[1]:.3f} | {s[1]:.3f} | {s[2]:.2f} | {c[2]:.2f} |",
              flush=True)
