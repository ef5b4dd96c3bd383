"""Post-hoc sigma calibration of the neural gap fillers (``calibrate``) on the demo cube.

The ``oceandl interpolate --demo`` cube (90 x 64 x 64, 60 % cloud, seed s) is filled with ``nll=True``
at the default 600 steps, 10 % of the observations withheld for scoring (cloud-mask transfer, as
the CLI's ``--withhold 0.1``), once with ``calibrate=False`` and once with ``calibrate=True`` (5 % of
the remaining observations held out of training to fit the scale). For the calibrated run the
coverage is given for the network's own sigma (``sigma / calibration_scale``) and the calibrated one.

Run: ``python docs/experiments/sigma_calibration.py [--seeds 0 1] [--models resae unet] [--steps 600]``
(on a 2-core CPU, several minutes per fill).
"""
import argparse
import time
import warnings

import numpy as np

import oceandl
from oceandl.datasets.sst import synthetic_sst
from oceandl.pipelines.interpolate import DEMO_SIZE


def coverage(ds, scale: float = 1.0) -> tuple[float, float]:
    """Fraction of withheld errors within 1 sigma and rms(err/sigma) (sigma divided by ``scale``)."""
    name = [v for v in ds.data_vars if v not in ("sigma", "missing_flag")][0]
    held = ds["missing_flag"].values == 2
    err = ds[name].values[held] - ds.attrs["_truth"][held]
    z = err / (ds["sigma"].values[held] / scale)
    return float(np.mean(np.abs(z) <= 1)), float(np.sqrt(np.mean(z ** 2)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--models", nargs="+", default=["resae", "unet"])
    p.add_argument("--steps", type=int, default=None)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    print("| model | seed | within 1 sigma: uncalibrated run | calibrated run, own sigma | calibrated | "
          "rms(err/sigma): uncalibrated | calibrated | scale | val_rmse: uncalibrated | calibrated | change | "
          "seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model in a.models:
        for seed in a.seeds:
            da = synthetic_sst(seed=seed, **DEMO_SIZE)["sst"]
            res = {}
            for cal in (False, True):
                t0 = time.perf_counter()
                ds = oceandl.interpolate(da, method=model, withhold=0.1, seed=seed, nll=True, calibrate=cal,
                                         steps=a.steps, return_dataset=True, device="cpu")
                ds.attrs["_truth"] = da.values  # the withheld pixels' observations
                name = [v for v in ds.data_vars if v not in ("sigma", "missing_flag")][0]
                res[cal] = (ds, float(ds[name].attrs["val_rmse"]), float(ds["sigma"].attrs["calibration_scale"]),
                            time.perf_counter() - t0)
            (d0, r0, _, sec0), (d1, r1, s1, sec1) = res[False], res[True]
            c0, z0 = coverage(d0)
            cown, _ = coverage(d1, s1)
            c1, z1 = coverage(d1)
            print(f"| {model} | {seed} | {c0:.3f} | {cown:.3f} | {c1:.3f} | {z0:.2f} | {z1:.2f} | {s1:.3f} | "
                  f"{r0:.4f} | {r1:.4f} | {100 * (r1 / r0 - 1):+.1f} % | "
                  f"{sec0:.0f}, {sec1:.0f} |", flush=True)


if __name__ == "__main__":
    main()
