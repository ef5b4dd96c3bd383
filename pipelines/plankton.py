"""Plankton benchmark: morphotype classification with the course CNN and a ResNet.

The data are either a real folder of class folders (``data=PATH``: WHOI-Plankton year folder,
ZooScanNet, Kaggle NDSB ``train/``; grey or colour, any size) or, by default, synthetic grey
images of six morphotypes written as PNGs in that layout into a temporary folder (deterministic
from ``seed``) and read back through the same reader. Images of any shape are fitted into
``size`` x ``size`` keeping their aspect ratio (padded with the border mean), since the shape of an
organism is what tells its class. Each model is trained on the same seeded, stratified split with
per-image normalisation, flips, 90-degree rotations and small rotations, and tested once.

Default size: 6 classes x 150 images of about 64 x 64 pixels, 12 epochs, 16-channel first stages,
a few minutes on a 2-core CPU. ``fast=True`` is a seconds-long smoke run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oceandl.training import TensorData
from oceandl.training.classifier import subsample_per_class

from .imagebench import FAST, COLUMNS, LEGEND, TIMINGS, ImageBenchConfig, read_images, run_image_benchmark
from .runner import Pipeline, RunContext

__all__ = ["PlanktonConfig", "PIPELINE", "run", "load_plankton"]


@dataclass(frozen=True)
class PlanktonConfig(ImageBenchConfig):
    """Plankton benchmark settings (``--set key=value``); the shared fields are :class:`ImageBenchConfig`'s.

    ``data``: a folder of class folders (WHOI-Plankton, ZooScanNet, Kaggle NDSB layouts).
    ``fit``: how images of any shape go into ``size`` x ``size`` (``pad`` keeps the aspect ratio).
    """

    n_per_class: int = 150
    fit: str = "pad"
    augment: tuple[str, ...] = ("flip", "rot90", "rotate")
    degrees: float = 45.0


def load_plankton(cfg: PlanktonConfig, ctx: RunContext, workdir: Path) -> TensorData:
    """The images as grey tensors (N, 1, size, size) in [0, 1] with labels and class names."""
    from oceandl.datasets.images import ImageFolderDataset
    from oceandl.datasets.synthetic_images import make_plankton_images

    if cfg.data:
        ctx.found_data(cfg.data)
        ds = ImageFolderDataset(cfg.data, size=cfg.size, channels=1, fit=cfg.fit, on_error="skip")
        idx = subsample_per_class(ds.targets, cfg.max_per_class, cfg.seed, keys=ds.keys)
        counts = np.bincount(ds.targets[idx], minlength=len(ds.classes))
        shown = ", ".join(f"{c} {n}" for c, n in list(zip(ds.classes, counts))[:20])
        more = f" and {len(ds.classes) - 20} more classes" if len(ds.classes) > 20 else ""
        ctx.note(f"plankton images from {ds.root}: {len(idx)} of {len(ds)} used "
                 f"({'all' if not cfg.max_per_class else f'at most {cfg.max_per_class} per class'}), "
                 f"grey, fitted into {cfg.size}x{cfg.size} ({cfg.fit}); per class {shown}{more}")
    else:
        root = make_plankton_images(workdir / "plankton", n_per_class=cfg.n_per_class, size=cfg.size,
                                    seed=cfg.seed)
        ds = ImageFolderDataset(root, size=cfg.size, channels=1, fit=cfg.fit)
        idx = np.arange(len(ds))
        ctx.note(f"synthetic plankton morphotypes (seed {cfg.seed}): {len(ds.classes)} classes x "
                 f"{cfg.n_per_class} grey PNGs of about {cfg.size} px (jittered shapes), written as class "
                 f"folders and read back, fitted into {cfg.size}x{cfg.size} ({cfg.fit})")
    return read_images(ds, idx, ctx, "image")


def run(cfg: PlanktonConfig, ctx: RunContext) -> dict:
    """Run the plankton benchmark; returns ``{model: metrics}``."""
    return run_image_benchmark(cfg, ctx, load_plankton, {"normalize": cfg.normalize}, "plankton")


PIPELINE = Pipeline(
    name="plankton", fast=FAST, config_cls=PlanktonConfig, run=run, columns=COLUMNS, timings=TIMINGS, legend=LEGEND,
    description="Plankton morphotypes: the course CNN against a ResNet on one seeded split "
                "(synthetic stand-in images unless data= points to real class folders).",
)
