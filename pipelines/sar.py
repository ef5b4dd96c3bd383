"""SAR wave-mode benchmark: TenGeoP-SARwv classes (Wang et al. 2019) with the course CNN and a ResNet.

The data are either a real TenGeoP-SARwv GeoTIFF tree (``data=PATH``: ``GeoTIFF/<F..O>/*.tiff`` or
its parent) or, by default, synthetic vignettes written in that same layout into a temporary folder
(deterministic from ``seed``) and read back through the same reader. The images are read once;
each model is trained on the same seeded, stratified train/validation/test split, with the
preprocessing a checkpoint would store (dB, then per-image normalisation), flips, 90-degree
rotations and speckle-like noise, and tested once on the held-out part.

Default size: 10 classes x 100 vignettes of 64 x 64 pixels, 12 epochs, 16-channel first stages,
a few minutes on a 2-core CPU. ``fast=True`` is a seconds-long smoke run (at most 20 vignettes of
32 x 32 per class, 6 epochs, batches of 16, 8-channel models).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oceandl.training import TensorData
from oceandl.training.classifier import subsample_per_class

from .imagebench import (FAST, COLUMNS, LEGEND, TIMINGS, ImageBenchConfig, classifier_options, read_images, run_benchmark,
                         run_image_benchmark, shrink_for_fast)
from .runner import Pipeline, RunContext

# run_benchmark, classifier_options and shrink_for_fast live in .imagebench; re-exported for callers of this module
__all__ = ["SARConfig", "PIPELINE", "COLUMNS", "run", "load_sar", "run_benchmark", "classifier_options",
           "shrink_for_fast"]


@dataclass(frozen=True)
class SARConfig(ImageBenchConfig):
    """SAR benchmark settings (``--set key=value``); the shared fields are :class:`ImageBenchConfig`'s.

    ``data``: a TenGeoP-SARwv folder (default: synthetic vignettes written in the archive layout).
    ``intensity``: ``db`` for linear sigma0 files; ``linear`` for files already scaled to grey levels.
    ``noise``: std of the additive noise augmentation, in units of the normalised dB image.
    """

    n_per_class: int = 100
    intensity: str = "db"
    # speckle is multiplicative on linear intensity, i.e. additive in dB: Gaussian noise on the
    # normalised dB image ("noise") is the speckle-like perturbation here
    augment: tuple[str, ...] = ("flip", "rot90", "noise")
    noise: float = 0.1


def load_sar(cfg: SARConfig, ctx: RunContext, workdir: Path) -> TensorData:
    """The vignettes as raw linear-intensity tensors (N, 1, size, size) with labels and class names."""
    from oceandl.datasets.images import TenGeoPDataset
    from oceandl.datasets.synthetic_images import make_sar_vignettes

    if cfg.data:
        ctx.found_data(cfg.data)
        ds = TenGeoPDataset(cfg.data, size=cfg.size, channels=1, on_error="skip")
        idx = subsample_per_class(ds.targets, cfg.max_per_class, cfg.seed, keys=ds.keys)
        counts = np.bincount(ds.targets[idx], minlength=len(ds.classes))
        ctx.note(f"TenGeoP-SARwv vignettes from {ds.root}: {len(idx)} of {len(ds)} used "
                 f"({'all' if not cfg.max_per_class else f'at most {cfg.max_per_class} per class'}), "
                 f"resized to {cfg.size}x{cfg.size}; per class " + ", ".join(
                     f"{c} {n}" for c, n in zip(ds.codes, counts)))
    else:
        root = make_sar_vignettes(workdir / "TenGeoP-SARwv" / "GeoTIFF", n_per_class=cfg.n_per_class,
                                  size=cfg.size, seed=cfg.seed)
        ds = TenGeoPDataset(root.parent, size=cfg.size, channels=1)
        idx = np.arange(len(ds))
        ctx.note(f"synthetic TenGeoP-SARwv stand-ins (seed {cfg.seed}): 10 classes x {cfg.n_per_class} vignettes "
                 f"of {cfg.size}x{cfg.size} px, linear-intensity GeoTIFFs written in the archive layout "
                 f"and read back")
    return read_images(ds, idx, ctx, "vignette")


def run(cfg: SARConfig, ctx: RunContext) -> dict:
    """Run the SAR benchmark; returns ``{model: metrics}`` (see :func:`compare_classifiers`)."""
    return run_image_benchmark(cfg, ctx, load_sar, {"intensity": cfg.intensity, "normalize": cfg.normalize}, "sar")


PIPELINE = Pipeline(
    name="sar", fast=FAST, config_cls=SARConfig, run=run, columns=COLUMNS, timings=TIMINGS, legend=LEGEND,
    description="TenGeoP-SARwv wave-mode classes (10): the course CNN against a ResNet on one seeded split "
                "(synthetic stand-in vignettes unless data= points to the real GeoTIFF tree).",
)
