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

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oceandl.errors import InputError
from oceandl.training import TensorData
from oceandl.training.classifier import prepare_tensors, subsample_per_class
from oceandl.utils import seed_everything

from .runner import Pipeline, RunContext
from .sar import COLUMNS, run_benchmark, shrink_for_fast

__all__ = ["PlanktonConfig", "PIPELINE", "run", "load_plankton"]


@dataclass(frozen=True)
class PlanktonConfig:
    """Plankton benchmark settings (``--set key=value`` overrides any of them).

    ``data``: a folder of class folders (default: synthetic morphotypes, ``n_per_class`` per class
    of about ``size`` pixels). ``max_per_class``: with ``data``, use at most that many images per
    class (seeded pick; 0 = all); classes with fewer than 3 images are left out (noted).
    ``width``: first-stage channels of the CNN/ResNet/VGG. ``weights``: a local ImageNet weights
    file for ``resnet18``. ``degrees``: range of the small-rotation augmentation.
    """

    data: str | None = None
    max_per_class: int = 0
    seed: int = 0
    fast: bool = False
    models: tuple[str, ...] = ("cnn", "resnet")
    n_per_class: int = 150
    size: int = 64
    width: int = 16
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    normalize: str = "per_image"
    fit: str = "pad"
    augment: tuple[str, ...] = ("flip", "rot90", "rotate")
    degrees: float = 45.0
    class_weights: str = "none"
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    tta: bool = False
    weights: str | None = None


def load_plankton(cfg: PlanktonConfig, ctx: RunContext, workdir: Path) -> TensorData:
    """The images as grey tensors (N, 1, size, size) in [0, 1] with labels and class names."""
    from oceandl.datasets.images import ImageFolderDataset
    from oceandl.datasets.synthetic_images import make_plankton_images

    if cfg.data:
        ds = ImageFolderDataset(cfg.data, size=cfg.size, channels=1, fit=cfg.fit, on_error="skip")
        idx = subsample_per_class(ds.targets, cfg.max_per_class, cfg.seed)
        counts = np.bincount(ds.targets[idx], minlength=len(ds.classes))
        shown = ", ".join(f"{c} {n}" for c, n in list(zip(ds.classes, counts))[:20])
        more = f" and {len(ds.classes) - 20} more classes" if len(ds.classes) > 20 else ""
        ctx.note(f"plankton images from {ds.root}: {len(idx)} of {len(ds)} used "
                 f"({'all' if not cfg.max_per_class else f'at most {cfg.max_per_class} per class'}), "
                 f"grey, fitted into {cfg.size}x{cfg.size} ({cfg.fit}); per class {shown}{more}")
        if ds.skipped:
            ctx.note(f"{len(ds.skipped)} unreadable image(s) skipped, e.g. {ds.skipped[0]}")
    else:
        root = make_plankton_images(workdir / "plankton", n_per_class=cfg.n_per_class, size=cfg.size,
                                    seed=cfg.seed)
        ds = ImageFolderDataset(root, size=cfg.size, channels=1, fit=cfg.fit)
        idx = np.arange(len(ds))
        ctx.note(f"synthetic plankton morphotypes (seed {cfg.seed}): {len(ds.classes)} classes x "
                 f"{cfg.n_per_class} grey PNGs of about {cfg.size} px (jittered shapes), written as class "
                 f"folders and read back, fitted into {cfg.size}x{cfg.size} ({cfg.fit})")
    return prepare_tensors(ds, None, progress=ctx.progress, indices=idx)


def run(cfg: PlanktonConfig, ctx: RunContext) -> dict:
    """Run the plankton benchmark; returns ``{model: metrics}``."""
    cfg = shrink_for_fast(cfg)
    if cfg.size < 16:
        raise InputError(f"size={cfg.size}: must be >= 16 pixels")
    if cfg.n_per_class < 3:
        raise InputError(f"n_per_class={cfg.n_per_class}: at least 3 are needed (train, validation, test)")
    if not cfg.models:
        raise InputError("models: give at least one classifier name")
    seed_everything(cfg.seed)
    if cfg.fast:
        ctx.note(f"--fast smoke run: n_per_class {cfg.n_per_class}, size {cfg.size}, epochs {cfg.epochs}, "
                 f"batch {cfg.batch_size}, width {cfg.width}" + (f", max_per_class {cfg.max_per_class}" if cfg.data else ""))
    with tempfile.TemporaryDirectory(prefix="oceandl-plankton-") as tmp:
        data = load_plankton(cfg, ctx, Path(tmp))
    return run_benchmark(data, cfg, ctx, {"normalize": cfg.normalize})


PIPELINE = Pipeline(
    name="plankton", config_cls=PlanktonConfig, run=run, columns=COLUMNS,
    description="Plankton morphotypes: the course CNN against a ResNet on one seeded split "
                "(synthetic stand-in images unless data= points to real class folders).",
)
