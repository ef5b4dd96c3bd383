"""Multivariate DINEOF: the synthetic SST filled alone and with the passive-microwave SST as a
covariate (``aux``), at several ``aux_weight``.

The synthetic SST cube (90 days x 64 x 64, 60 % cloud, seeds 0-2, ``microwave=True``): ``sst`` is
filled by DINEOF (default options) alone, then with ``aux=sst_mw`` (a coarse microwave SST, 0.5 degC
RMS from the truth, missing near land, between swaths and in rain: it sees under most clouds) at
``aux_weight`` 0.5, 1, 2 and 4. RMSE in degC against the cloud-free truth on the cloud gaps (every
pixel missing from ``sst`` that it observes on some day: one never observed is land to DINEOF), and on
those the covariate sees (``mw``) or not (``no mw``); the microwave SST's own RMSE on the gaps it sees
for reference; the mode count and threshold the CV chose; the SVD iterations of the whole fit
(``n_iter_total``) and the wall time (torch's default threads, on a shared machine: indicative).

``year``: a year of it instead (365 x 40 x 40, 60 % cloud, ``harmonics=2``), alone and with the
covariate at ``aux_weight`` 1; its seasonal cycle is kept in its block (removing it too, as an earlier
version of this method did, gave 1.022 / 1.029 on seeds 0 / 1, against 1.018 / 1.008 kept).

Run: ``python docs/experiments/dineof_aux.py [SEEDS] [WEIGHTS]`` (defaults 0,1,2 and 0.5,1,2,4; about
2 minutes on 2 idle cores), ``python docs/experiments/dineof_aux.py year [SEEDS]`` (default 0,1).
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import interpolate

warnings.simplefilter("ignore")
YEAR = len(sys.argv) > 1 and sys.argv[1] == "year"
args = sys.argv[2:] if YEAR else sys.argv[1:]
SEEDS = [int(s) for s in args[0].split(",")] if args else ([0, 1] if YEAR else [0, 1, 2])
WEIGHTS = [1.0] if YEAR else [float(w) for w in args[1].split(",")] if len(args) > 1 else [0.5, 1.0, 2.0, 4.0]
SIZE = dict(n_time=365, ny=40, nx=40) if YEAR else dict(n_time=90, ny=64, nx=64)
OPTIONS = {"harmonics": 2} if YEAR else {}

print("| seed | aux | aux_weight | gap RMSE | mw | no mw | n_modes | shrink | iterations | seconds |")
print("|---|---|---|---|---|---|---|---|---|---|")
for seed in SEEDS:
    ds = synthetic_sst(**SIZE, cloud_cover=0.6, seed=seed, microwave=True)
    truth = ds["sst_true"].values
    gaps = np.isnan(ds["sst"].values) & np.isfinite(truth) & np.isfinite(ds["sst"].values).any(axis=0)
    mw = np.isfinite(ds["sst_mw"].values)
    own = np.sqrt(np.mean((ds["sst_mw"].values - truth)[gaps & mw] ** 2))
    print(f"| {seed} | sst_mw itself | | | {own:.3f} | | | | | |", flush=True)
    for weight in (None, *WEIGHTS):
        kw = {} if weight is None else {"aux": ds["sst_mw"], "aux_weight": weight}
        t0 = time.perf_counter()
        out = interpolate(ds["sst"], "dineof", seed=seed, **OPTIONS, **kw)
        seconds = time.perf_counter() - t0
        err = out.values - truth
        rmse = [np.sqrt(np.mean(err[m] ** 2)) for m in (gaps, gaps & mw, gaps & ~mw)]
        print(f"| {seed} | {'none' if weight is None else 'sst_mw'} | {'' if weight is None else f'{weight:g}'} | "
              f"{rmse[0]:.3f} | {rmse[1]:.3f} | {rmse[2]:.3f} | {out.attrs['n_modes']} | {out.attrs['shrink']:g} | "
              f"{out.attrs['n_iter_total']} | {seconds:.0f} |", flush=True)
