"""A fit of a whole grid filling a box of it (``--fit-on FOLDER --bbox``, ``Interpolator.cut``).

The synthetic cube of ``oceandl synth sst --n 120 --size 48`` (seed 0): the climatology, ``eof``
(5 modes) and DINEOF (5 modes) fitted on days 1-90 fill days 91-120 on the whole 48 x 48 grid and
on centred boxes of 24, 12, 6 and 3 pixels a side (each fit cut to the box). Printed per box: the
box fill against the whole grid's fill at the box's gaps (rms, max), the box fill against the whole
grid's fill of the same days with every observation outside the box hidden (0: the same least
squares), the RMSE of both against the cloud-free truth, and the singular values of the cut modes.

Run: ``python docs/experiments/fit_box.py`` (about a minute on 2 busy cores).
"""
import warnings

import numpy as np

from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import DINEOF, Climatology, EOFInterpolator
from oceandl.io import open_field


def main() -> None:
    warnings.simplefilter("ignore")
    ds = synthetic_sst(n_time=120, ny=48, nx=48, seed=0)
    da, truth = open_field(ds, "sst"), open_field(ds, "sst_true").values[90:]
    past, new = da[:90], da[90:]
    fits = {"climatology": Climatology(harmonics=0), "eof": EOFInterpolator(n_modes=5),
            "dineof": DINEOF(n_modes=5, error_map=True)}
    boxes = {"24x24": (slice(12, 36), slice(10, 34)), "12x12": (slice(18, 30), slice(18, 30)),
             "6x6": (slice(20, 26), slice(20, 26)), "3x3": (slice(22, 25), slice(22, 25))}
    for name, m in fits.items():
        m.fit(past)
        whole = m.transform(new)["sst"].values
        for b, (ys, xs) in boxes.items():
            box = new.isel(lat=ys, lon=xs)
            cut = m.cut(box)
            f = cut.transform(box)["sst"].values
            gap = np.isnan(box.values) & np.isfinite(f)
            d = (f - whole[:, ys, xs])[gap]
            hidden = np.full(new.shape, np.nan, np.float32)
            hidden[:, ys, xs] = new.values[:, ys, xs]
            alone = m.transform(new.copy(data=hidden))["sst"].values[:, ys, xs]
            tr = truth[:, ys, xs][gap]
            rw, rb = (float(np.sqrt(np.mean((v[gap] - tr) ** 2))) for v in (whole[:, ys, xs], f))
            modes = cut._E if name == "eof" else cut._modes["V"].numpy().T if name == "dineof" else None
            sv = "" if modes is None else " singular values " + " ".join(
                f"{s:.3g}" for s in np.linalg.svd(modes, compute_uv=False))
            print(f"{name:12s} {b:6s} gaps {int(gap.sum()):6d}  from the whole fill: rms {np.sqrt(np.mean(d ** 2)):.4f} "
                  f"max {np.abs(d).max():.4f}; from the fill observed in the box only: max "
                  f"{np.nanmax(np.abs(alone - f)):.1e}; truth RMSE whole {rw:.3f} box {rb:.3f}{sv}", flush=True)


if __name__ == "__main__":
    main()
