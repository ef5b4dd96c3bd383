"""Filling a later period with a fit on an earlier one (``Interpolator.transform``), on real SST.

The NDJFM SST anomalies shipped with ``eofs`` (50 winters, 18 x 30 pixels of the Pacific) under
blob clouds (Gaussian-smoothed noise thresholded to ``cover`` of each frame; seeds 0, 1, 2). Each
method is fitted on the first 35 winters (cloudy) and fills the last 15 with ``transform``; the RMSE
against the cloud-free anomalies at the gaps of those 15, for:

- the climatology fitted on the 35 winters (its time mean: the anomalies' baseline);
- ``eof`` (5 modes) and DINEOF (default options) fitted on the 35 winters;
- DINEOF fitted on the 15 winters themselves (NaN where a pixel is never seen in them: land to it);
- DINEOF fitted on all 50 (the in-sample reference).

With ``error_map=True``: the fraction of the 15 winters' gap errors within 1 sigma and rms(err /
sigma); and the fitted field through ``transform`` against its own fill (sigma's median ratio, RMSE).

Run: ``python docs/experiments/transform_real_sst.py`` (about a minute; needs ``eofs`` and scipy).
"""
import warnings

import numpy as np
import xarray as xr
from eofs.examples import example_data_path
from scipy.ndimage import gaussian_filter

from oceandl.interp import DINEOF, Climatology, EOFInterpolator

warnings.simplefilter("ignore")
da = xr.open_dataset(example_data_path("sst_ndjfm_anom.nc"))["sst"].load()
nt, ny, nx = da.shape
N_FIT = 35


def clouds(seed, cover):
    f = gaussian_filter(np.random.default_rng(seed).standard_normal((nt, ny, nx)), (0, 3, 3))
    return f > np.quantile(f, 1 - cover, axis=(1, 2), keepdims=True)


for cover in (0.3, 0.5, 0.7, 0.8):
    for seed in (0, 1, 2):
        c = clouds(seed, cover)
        gappy = da.where(~c)
        fit, new = gappy.isel(time=slice(0, N_FIT)), gappy.isel(time=slice(N_FIT, None))
        truth = da.isel(time=slice(N_FIT, None)).values
        gap = c[N_FIT:] & np.isfinite(truth)

        def rmse(ds):
            f = ds[list(ds.data_vars)[0]].values
            return float(np.sqrt(np.mean((f[gap] - truth[gap]) ** 2)))

        m = DINEOF(seed=seed, error_map=True).fit(fit)
        tr = m.transform(new)
        z = ((tr["sst"].values - truth) / tr["sigma"].values)[gap]
        rec, self_tr = m.reconstruct(), m.transform(fit)
        t_fit = da.isel(time=slice(0, N_FIT)).values
        g_fit = c[:N_FIT] & np.isfinite(t_fit)
        r_rec = np.sqrt(np.mean((rec["sst"].values - t_fit)[g_fit] ** 2))
        r_self = np.sqrt(np.mean((self_tr["sst"].values - t_fit)[g_fit] ** 2))
        row = [
            f"cover {cover} seed {seed}",
            f"climatology {rmse(Climatology().fit(fit).transform(new)):.3f}",
            f"eof5 {rmse(EOFInterpolator(n_modes=5).fit(fit).transform(new)):.3f}",
            f"dineof (k={m.n_modes_}) {rmse(tr):.3f}",
            f"dineof on the 15 {rmse(DINEOF(seed=seed).fit(new).reconstruct()):.3f}",
            f"dineof on all 50 {rmse(DINEOF(seed=seed).fit(gappy).reconstruct().isel(time=slice(N_FIT, None))):.3f}",
            f"within 1 sigma {np.mean(np.abs(z) < 1):.2f}, rms(z) {np.sqrt(np.mean(z ** 2)):.2f}",
            f"fitted period: sigma ratio {np.median(self_tr['sigma'].values[g_fit] / rec['sigma'].values[g_fit]):.2f}, "
            f"rmse {r_self:.3f} vs {r_rec:.3f}",
        ]
        print(" | ".join(row), flush=True)
