"""Short windows filled from a checkpoint: its training statistics against each window's own.

A U-Net is trained on a synthetic year (365 x 48 x 48, seed 3, 400 steps) and saved; windows of
1 to 90 days are then filled from the checkpoint with ``normalisation="input"`` (each window's own
per-pixel mean and scale) and ``"training"`` (the checkpoint's), and scored on their gaps against
the cloud-free truth, beside the same days filled inside the whole year's file.

Run: ``python docs/experiments/checkpoint_windows.py [FOLDER]`` (about 2 minutes on 2 cores).
"""
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

import oceandl
from oceandl.datasets.sst import synthetic_sst
from oceandl.interp import get_method


def main(folder: Path) -> None:
    warnings.simplefilter("ignore")
    ds = synthetic_sst(n_time=365, ny=48, nx=48, seed=3)
    truth, obs = ds["sst_true"], ds["sst"]
    ckpt = folder / "unet_year"
    get_method("unet")(seed=0, steps=400, patch=48, tile=None).fit(obs).save(ckpt, overwrite=True)

    def fill(da, normalisation):
        return oceandl.interpolate(da, method="unet", checkpoint=str(ckpt), tile=None, normalisation=normalisation)

    def score(filled, sl):
        gap = np.isnan(obs.isel(time=sl).values) & np.isfinite(truth.isel(time=sl).values)
        d = (np.asarray(filled) - truth.isel(time=sl).values)[gap]
        return np.sqrt(np.nanmean(d ** 2)), np.nanmean(d), np.isnan(d).mean()

    year = fill(obs, "training")
    print("| window | windows | year's file: RMSE, bias | own statistics: RMSE, bias, unfilled | "
          "training statistics: RMSE, bias, unfilled |")
    print("|---|---|---|---|---|")
    for w in (1, 2, 7, 30, 90):
        rows = []
        for start in range(20, 365 - w, 40):
            sl = slice(start, start + w)
            da = obs.isel(time=sl)
            own = score(fill(da, "input"), sl) if w > 1 else (np.nan, np.nan, 1.0)  # one day has no own mean
            rows.append([score(year.isel(time=sl).values, sl), own, score(fill(da, "training"), sl)])
        e = np.nanmean(np.array(rows), axis=0)
        print(f"| {w} d | {len(rows)} | {e[0, 0]:.3f}, {e[0, 1]:+.3f} | {e[1, 0]:.3f}, {e[1, 1]:+.3f}, "
              f"{e[1, 2]:.0%} | {e[2, 0]:.3f}, {e[2, 1]:+.3f}, {e[2, 2]:.0%} |")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
