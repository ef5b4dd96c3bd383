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

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from oceandl.errors import InputError
from oceandl.training import TensorData, TrainConfig
from oceandl.training.classifier import compare_classifiers, prepare_tensors, subsample_per_class
from oceandl.utils import seed_everything

from .runner import Pipeline, RunContext

__all__ = ["SARConfig", "PIPELINE", "COLUMNS", "run", "load_sar", "run_benchmark", "classifier_options",
           "shrink_for_fast"]


@dataclass(frozen=True)
class SARConfig:
    """SAR benchmark settings (``--set key=value`` overrides any of them).

    ``data``: a TenGeoP-SARwv folder (default: synthetic vignettes, ``n_per_class`` per class of
    ``size`` pixels, written in the archive layout). ``max_per_class``: with ``data``, use at most
    that many vignettes per class (seeded pick; 0 = all). ``width``: first-stage channels of the
    CNN/ResNet/VGG (the course CNN uses 32; 16 keeps the default run to minutes on a CPU).
    ``weights``: a local ImageNet weights file for ``resnet18`` (none: trained from scratch).
    ``intensity``: ``db`` for linear sigma0 files; ``linear`` for files already scaled to grey levels.
    ``noise``: std of the additive noise augmentation, in units of the normalised dB image.
    """

    data: str | None = None
    max_per_class: int = 0
    seed: int = 0
    fast: bool = False
    models: tuple[str, ...] = ("cnn", "resnet")
    n_per_class: int = 100
    size: int = 64
    width: int = 16
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    intensity: str = "db"
    normalize: str = "per_image"
    # speckle is multiplicative on linear intensity, i.e. additive in dB: Gaussian noise on the
    # normalised dB image ("noise") is the speckle-like perturbation here
    augment: tuple[str, ...] = ("flip", "rot90", "noise")
    noise: float = 0.1
    class_weights: str = "none"
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    tta: bool = False
    weights: str | None = None


def shrink_for_fast(cfg):
    """The seconds-long smoke-run version of a SAR or plankton config (``fast=True``)."""
    if not cfg.fast:
        return cfg
    return replace(cfg, n_per_class=min(cfg.n_per_class, 20), size=min(cfg.size, 32), epochs=min(cfg.epochs, 6),
                   batch_size=min(cfg.batch_size, 16), width=min(cfg.width, 8),
                   max_per_class=min(cfg.max_per_class or 20, 20))


def classifier_options(name: str, width: int, weights: str | None = None) -> dict:
    """Registry options of the benchmark's classifiers for a first-stage ``width``."""
    if name == "cnn":
        return {"channels": (width, 2 * width), "hidden": 4 * width}
    if name == "resnet":
        return {"blocks": (1, 1, 1), "width": width}
    if name == "vgg":
        return {"width": width}
    if name in ("resnet18", "vgg16", "alexnet", "inception_v3"):
        return {"weights": weights} if weights else {}
    return {}


def _check(cfg: SARConfig) -> None:
    if cfg.size < 16:
        raise InputError(f"size={cfg.size}: must be >= 16 pixels")
    if cfg.n_per_class < 3:
        raise InputError(f"n_per_class={cfg.n_per_class}: at least 3 are needed (train, validation, test)")
    if not cfg.models:
        raise InputError("models: give at least one classifier name")


def load_sar(cfg: SARConfig, ctx: RunContext, workdir: Path) -> TensorData:
    """The vignettes as raw linear-intensity tensors (N, 1, size, size) with labels and class names."""
    from oceandl.datasets.images import TenGeoPDataset
    from oceandl.datasets.synthetic_images import make_sar_vignettes

    if cfg.data:
        ds = TenGeoPDataset(cfg.data, size=cfg.size, channels=1, on_error="skip")
        idx = subsample_per_class(ds.targets, cfg.max_per_class, cfg.seed)
        counts = np.bincount(ds.targets[idx], minlength=len(ds.classes))
        ctx.note(f"TenGeoP-SARwv vignettes from {ds.root}: {len(idx)} of {len(ds)} used "
                 f"({'all' if not cfg.max_per_class else f'at most {cfg.max_per_class} per class'}), "
                 f"resized to {cfg.size}x{cfg.size}; per class " + ", ".join(
                     f"{c} {n}" for c, n in zip(ds.codes, counts)))
        if ds.skipped:
            ctx.note(f"{len(ds.skipped)} unreadable vignette(s) skipped, e.g. {ds.skipped[0]}")
    else:
        root = make_sar_vignettes(workdir / "TenGeoP-SARwv" / "GeoTIFF", n_per_class=cfg.n_per_class,
                                  size=cfg.size, seed=cfg.seed)
        ds = TenGeoPDataset(root.parent, size=cfg.size, channels=1)
        idx = np.arange(len(ds))
        ctx.note(f"synthetic TenGeoP-SARwv stand-ins (seed {cfg.seed}): 10 classes x {cfg.n_per_class} vignettes "
                 f"of {cfg.size}x{cfg.size} px, linear-intensity GeoTIFFs written in the archive layout "
                 f"and read back")
    return prepare_tensors(ds, None, progress=ctx.progress, indices=idx)


def _drop_rare(data: TensorData, ctx: RunContext, minimum: int = 3) -> TensorData:
    """Keep classes with at least ``minimum`` samples (relabelled 0..K-1), so a split is possible."""
    counts = np.bincount(data.targets, minlength=len(data.classes))
    keep = np.flatnonzero(counts >= minimum)
    if len(keep) == len(counts):
        return data
    if len(keep) < 2:
        raise InputError(f"fewer than two classes have {minimum} images or more: nothing to classify")
    ctx.note(f"classes with fewer than {minimum} images left out: " +
             ", ".join(data.classes[i] for i in np.flatnonzero(counts < minimum)))
    import torch

    new = np.full(len(counts), -1)
    new[keep] = np.arange(len(keep))
    sel = torch.from_numpy(np.flatnonzero(np.isin(data.targets, keep)))
    y = torch.from_numpy(new[data.targets[sel.numpy()]])
    return TensorData(data.x[sel], y, [data.classes[i] for i in keep])


def run_benchmark(data: TensorData, cfg, ctx: RunContext, preprocessing: dict) -> dict:
    """Train and test every model of ``cfg.models`` on ``data``; figures into the run folder.

    Shared by the SAR and plankton benchmarks (their configs have the same training fields).
    """
    from oceandl.plotting import plot_image_grid
    from oceandl.preprocess import preprocess_batch

    data = _drop_rare(data, ctx)
    # one example per class, as the models see it (after the preprocessing)
    first = [int(np.flatnonzero(data.targets == c)[0]) for c in range(len(data.classes))]
    shown = preprocess_batch(data.x[first], preprocessing)[:, 0].numpy()
    plot_image_grid([shown], ["one per class"], ctx.folder / "samples.png")
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       scheduler="onecycle", class_weights=cfg.class_weights, augment=tuple(cfg.augment),
                       noise=getattr(cfg, "noise", 0.05), degrees=getattr(cfg, "degrees", 10.0), seed=cfg.seed,
                       device=ctx.device, progress=ctx.progress)
    opts = {m: classifier_options(m, cfg.width, cfg.weights) for m in cfg.models}
    results = compare_classifiers(data, cfg.models, tcfg, split=tuple(cfg.split), preprocessing=preprocessing,
                                  model_options=opts, figures=ctx.folder, tta=cfg.tta, log=ctx.log)
    some = next(iter(results.values()))
    ctx.note(f"seeded stratified split (seed {cfg.seed}): {some['n_train']} train / {some['n_val']} validation / "
             f"{some['n_test']} test images, {len(data.classes)} classes (chance accuracy "
             f"{1 / len(data.classes):.3f}); the best epoch on validation is tested once")
    ctx.note(f"preprocessing {preprocessing}; augmentation {', '.join(cfg.augment) or 'none'}; "
             f"{cfg.epochs} epochs, AdamW lr {cfg.lr} one-cycle, batch {cfg.batch_size}, width {cfg.width}"
             + (", test-time augmentation (8 flips/rotations)" if cfg.tta else ""))
    return results


def run(cfg: SARConfig, ctx: RunContext) -> dict:
    """Run the SAR benchmark; returns ``{model: metrics}`` (see :func:`compare_classifiers`)."""
    cfg = shrink_for_fast(cfg)
    _check(cfg)
    seed_everything(cfg.seed)
    if cfg.fast:
        ctx.note(f"--fast smoke run: n_per_class {cfg.n_per_class}, size {cfg.size}, epochs {cfg.epochs}, "
                 f"batch {cfg.batch_size}, width {cfg.width}" + (f", max_per_class {cfg.max_per_class}" if cfg.data else ""))
    with tempfile.TemporaryDirectory(prefix="oceandl-sar-") as tmp:
        data = load_sar(cfg, ctx, Path(tmp))
    return run_benchmark(data, cfg, ctx, {"intensity": cfg.intensity, "normalize": cfg.normalize})


COLUMNS = ("test_accuracy", "test_macro_accuracy", "test_macro_f1", "test_top2_accuracy", "test_top3_accuracy",
           "test_log_loss", "test_ece", "params", "epochs", "best_epoch", "train_seconds", "train_samples_per_s",
           "device")

PIPELINE = Pipeline(
    name="sar", config_cls=SARConfig, run=run, columns=COLUMNS,
    description="TenGeoP-SARwv wave-mode classes (10): the course CNN against a ResNet on one seeded split "
                "(synthetic stand-in vignettes unless data= points to the real GeoTIFF tree).",
)
