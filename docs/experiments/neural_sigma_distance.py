"""Calibration of the neural sigma by distance to the nearest observation (``calibrate``).

The synthetic SST cube (``synthetic_sst``, days x px x px, cloud covers and seeds given) is filled
with ``nll=True, calibrate=True``; at every cloud gap the error against the truth (``sst_true``) is
binned by the distance (px, Euclidean) to the nearest pixel observed that day, and per bin the share
of |err| <= sigma (Gaussian: 0.683) and rms(err / sigma) (1) are printed, for the network's own
sigma ("raw": sigma divided by the calibration), and the calibrated one; and, per bin, the
calibration's own held-out points (observations hidden by cloud-mask transfer, their distance to
the nearest observation left in the training input): the points a per-distance scale would be
fitted on.

Run: ``python docs/experiments/neural_sigma_distance.py [--models unet resae] [--covers 0.5 0.8]
[--seeds 0 1] [--size 90 64 64] [--steps 600]`` (2-core CPU: about 20-40 s a fill).
"""
import argparse
import time
import warnings

import numpy as np
from scipy.ndimage import distance_transform_edt

import oceandl
from oceandl.datasets.sst import synthetic_sst
from oceandl.interp.neural import NeuralInterpolator

BINS = ((1, 2), (3, 5), (6, 10), (11, np.inf))


def gap_distance(obs: np.ndarray) -> np.ndarray:
    """(time, lat, lon) distance in px from each pixel to the nearest pixel observed that day (inf: none)."""
    out = np.full(obs.shape, np.inf)
    for t in range(obs.shape[0]):
        if obs[t].any():
            out[t] = distance_transform_edt(~obs[t])
    return out


HELD: dict = {}  # the calibration's held-out points of the last fill: z (calibrated) and distance


def _spy(calibrate):
    """Wrap ``NeuralInterpolator._calibrate`` to record its held-out points' z and distance to the
    nearest observation left in the training input that day."""
    def wrapped(self, x, held):
        calibrate(self, x, held)
        mean, sigma = self._predict()  # the inputs without the held-out points, the scale just fitted
        n, t = self._cfg["neighbours"], x.shape[0]
        HELD["z"] = ((x[held] - mean[held]) / sigma[held]).astype(np.float64)
        HELD["d"] = gap_distance(self._mp[n:n + t])[held]
    return wrapped


NeuralInterpolator._calibrate = _spy(NeuralInterpolator._calibrate)


def held_bins() -> list[str]:
    """Per bin: 'n, within 1 sigma, rms(z)' of the calibration's held-out points (calibrated sigma)."""
    out = []
    for lo, hi in BINS:
        sel = (HELD["d"] >= lo - 0.5) & (HELD["d"] < hi + 0.5) & np.isfinite(HELD["z"])
        z = HELD["z"][sel]
        out.append(f"{sel.sum()}, {np.mean(np.abs(z) <= 1):.3f}, {np.sqrt(np.mean(z ** 2)):.2f}" if sel.any()
                   else "0")
    z = HELD["z"][np.isfinite(HELD["z"])]
    return out + [f"{z.size}, {np.mean(np.abs(z) <= 1):.3f}, {np.sqrt(np.mean(z ** 2)):.2f}"]


def table(err, sigma, raw, dist) -> list[tuple]:
    """Per bin: (label, n, within-1-sigma raw, calibrated, rms(z) raw, calibrated)."""
    rows = []
    for lo, hi in BINS:
        sel = (dist >= lo - 0.5) & (dist < hi + 0.5)
        z, zr = err[sel] / sigma[sel], err[sel] / raw[sel]
        rows.append((f"{lo}-{hi:g}" if np.isfinite(hi) else f">{lo - 1}", int(sel.sum()),
                     float(np.mean(np.abs(zr) <= 1)), float(np.mean(np.abs(z) <= 1)),
                     float(np.sqrt(np.mean(zr ** 2))), float(np.sqrt(np.mean(z ** 2)))))
    z = err / sigma
    rows.append(("all", err.size, float(np.mean(np.abs(err / raw) <= 1)), float(np.mean(np.abs(z) <= 1)),
                 float(np.sqrt(np.mean((err / raw) ** 2))), float(np.sqrt(np.mean(z ** 2)))))
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["unet"])
    p.add_argument("--covers", type=float, nargs="+", default=[0.5, 0.8])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--size", type=int, nargs=3, default=[90, 64, 64])
    p.add_argument("--steps", type=int, default=None)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    print("| model | cover | seed | bin (px) | n | within 1 sigma: raw | calibrated | rms(err/sigma): raw | "
          "calibrated | held-out points: n, within 1 sigma, rms | scale | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model in a.models:
        for cover in a.covers:
            for seed in a.seeds:
                ds0 = synthetic_sst(n_time=a.size[0], ny=a.size[1], nx=a.size[2], cloud_cover=cover, seed=seed)
                da, truth = ds0["sst"], ds0["sst_true"].values
                t0 = time.perf_counter()
                ds = oceandl.interpolate(da, method=model, seed=seed, nll=True, calibrate=True, steps=a.steps,
                                         return_dataset=True, device="cpu")
                sec = time.perf_counter() - t0
                obs = np.isfinite(da.values)
                sig = ds["sigma"]
                # cloud gaps the fill reached (a pixel never observed is left NaN)
                gap = ~obs & np.isfinite(truth) & np.isfinite(ds["sst"].values) & np.isfinite(sig.values)
                scale_map = np.asarray(sig.attrs.get("_scale_map", sig.attrs["calibration_scale"]))
                calibrated = sig.values[gap]
                dist = gap_distance(obs)[gap]
                raw = calibrated / (scale_map[gap] if scale_map.ndim else scale_map)
                err = ds["sst"].values[gap] - truth[gap]
                for row, ho in zip(table(err, calibrated, raw, dist), held_bins()):
                    print(f"| {model} | {cover:g} | {seed} | {row[0]} | {row[1]} | {row[2]:.3f} | {row[3]:.3f} | "
                          f"{row[4]:.2f} | {row[5]:.2f} | {ho} | {sig.attrs['calibration_scale']:.3f} | {sec:.0f} |",
                          flush=True)


if __name__ == "__main__":
    main()
