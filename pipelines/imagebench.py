"""What the image-classification benchmarks (SAR, plankton) share: config fields, checks, the run.

A benchmark defines its config as a subclass of :class:`ImageBenchConfig` (its own defaults and
fields) and a loader ``(cfg, ctx, workdir) -> TensorData``; :func:`run_image_benchmark` does the
rest: fast-mode shrinking, checks, seeding, loading in a temporary folder, training and testing
every model on one seeded split (:func:`run_benchmark`).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from oceandl.errors import InputError
from oceandl.training import TensorData, TrainConfig
from oceandl.training.classifier import compare_classifiers, split_fractions_ok
from oceandl.utils import seed_everything

from .runner import PATH, RunContext, resolve_fast

__all__ = ["ImageBenchConfig", "COLUMNS", "LEGEND", "TIMINGS", "FAST", "PRETRAINABLE", "run_image_benchmark", "run_benchmark", "classifier_options",
           "shrink_for_fast", "per_class_markdown", "PER_CLASS", "read_images", "UNREADABLE"]


@dataclass(frozen=True)
class ImageBenchConfig:
    """Fields every image benchmark has (``--set key=value`` overrides any of them).

    ``data``: a folder in the benchmark's real layout (default: synthetic stand-ins, ``n_per_class``
    per class of ``size`` pixels). ``max_per_class``: with ``data``, use at most that many images per
    class (seeded pick; 0 = all); classes with fewer than 3 images are left out (noted).
    ``width``: first-stage channels of the CNN/ResNet/VGG (the course CNN uses 32; 16 keeps the
    default run to minutes on a CPU). ``weights``: a local ImageNet weights file for ``resnet18``
    (none: trained from scratch). ``noise``: std of the additive-noise augmentation (normalised
    units); ``degrees``: range of the free-rotation augmentation.
    """

    data: str | None = field(default=None, metadata=PATH)
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
    normalize: str = "per_image"
    augment: tuple[str, ...] = ("flip", "rot90")
    noise: float = 0.05
    degrees: float = 10.0
    class_weights: str = "none"
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    tta: bool = False
    weights: str | None = field(default=None, metadata=PATH)


C = TypeVar("C", bound=ImageBenchConfig)


FAST = {"n_per_class": 20, "size": 32, "epochs": 6, "batch_size": 16, "width": 8, "max_per_class": 20}


def shrink_for_fast(cfg: C) -> C:
    """The seconds-long smoke-run version of a SAR or plankton config (``fast=True``): the values
    of :data:`FAST`, except those set by the user (see :func:`~oceandl.pipelines.resolve_fast`)."""
    return resolve_fast(cfg, FAST)


#: registry classifiers that take ImageNet weights (``weights=``); without them they train from scratch
PRETRAINABLE = ("resnet18", "vgg16", "alexnet", "inception_v3")


def classifier_options(name: str, width: int, weights: str | None = None) -> dict:
    """Registry options of the benchmark's classifiers for a first-stage ``width``."""
    if name == "cnn":
        return {"channels": (width, 2 * width), "hidden": 4 * width}
    if name == "resnet":
        return {"blocks": (1, 1, 1), "width": width}
    if name == "vgg":
        return {"width": width}
    if name in PRETRAINABLE:
        return {"weights": weights} if weights else {}
    return {}


def check_config(cfg: ImageBenchConfig) -> None:
    """Refuse sizes no split or model can work with (:class:`InputError`)."""
    if cfg.size < 16:
        raise InputError(f"size={cfg.size}: must be >= 16 pixels")
    if cfg.n_per_class < 3:
        raise InputError(f"n_per_class={cfg.n_per_class}: at least 3 are needed (train, validation, test)")
    if not cfg.models:
        raise InputError("models: give at least one classifier name")
    if len(set(cfg.models)) < len(cfg.models):  # rows are keyed by name: one run was lost
        raise InputError(f"models={','.join(cfg.models)}: a name is repeated")
    # width=0 failed in torch (RuntimeError, exit 1); negative values ran as if valid
    if cfg.width < 1:
        raise InputError(f"width={cfg.width}: must be >= 1 channel")
    if cfg.max_per_class < 0:
        raise InputError(f"max_per_class={cfg.max_per_class}: must be >= 0 (0 = all)")
    if cfg.noise < 0 or cfg.degrees < 0:
        raise InputError(f"noise={cfg.noise}, degrees={cfg.degrees}: must be >= 0")
    # else refused by train_classifier only once every image of data= was read
    if not split_fractions_ok(cfg.split):
        raise InputError(f"split={','.join(f'{f:g}' for f in cfg.split)}: three fractions (training, validation, "
                         "test), each above 0, summing to 1")
    # weights= with only the course CNN / ResNet was ignored without a word (exit 0, no fine-tuning)
    if cfg.weights and not set(cfg.models) & set(PRETRAINABLE):
        raise InputError(f"weights={cfg.weights}: none of models={','.join(cfg.models)} takes ImageNet "
                         f"weights (only {', '.join(PRETRAINABLE)} do)")


def run_image_benchmark(cfg: ImageBenchConfig, ctx: RunContext, load: Callable[..., TensorData],
                        preprocessing: dict, prefix: str) -> dict:
    """Shrink (``fast``), check, seed, ``load(cfg, ctx, workdir)`` in a temporary folder, then
    :func:`run_benchmark`; returns ``{model: metrics}``."""
    cfg = shrink_for_fast(cfg)
    check_config(cfg)
    seed_everything(cfg.seed)
    if cfg.fast:
        ctx.note(f"--fast smoke run: n_per_class {cfg.n_per_class}, size {cfg.size}, epochs {cfg.epochs}, "
                 f"batch {cfg.batch_size}, width {cfg.width}" + (f", max_per_class {cfg.max_per_class}" if cfg.data else ""))
    with tempfile.TemporaryDirectory(prefix=f"oceandl-{prefix}-") as tmp:
        data = load(cfg, ctx, Path(tmp))
    return run_benchmark(data, cfg, ctx, preprocessing)


#: the run folder's list of the images left out as unreadable (path -> reason)
UNREADABLE = "unreadable_images.json"


def read_images(ds, indices, ctx: RunContext, what: str = "image") -> TensorData:
    """Read the images ``indices`` of an image reader ``ds`` (files that fail to decode are left
    out, as those that failed its header check were) and record every file left out, with the
    reason, in the run folder's :data:`UNREADABLE` (one note gives their count): a note naming one
    of them was all a run kept of which files its numbers lack."""
    import json

    from oceandl.training.classifier import _unreadable, prepare_tensors

    stats: dict = {}
    data = prepare_tensors(ds, None, progress=ctx.progress, indices=indices, stats=stats)
    bad = _unreadable(ds, stats.get("failed", {}))
    if bad:
        (ctx.folder / UNREADABLE).write_text(json.dumps(bad, indent=2))
        ctx.note(f"{len(bad)} unreadable {what}(s) left out ({len(ds.skipped)} at the header check, "
                 f"{len(bad) - len(ds.skipped)} when decoded), e.g. {next(iter(bad))}: all, with the reasons, "
                 f"in {UNREADABLE}")
    return data


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
    # the files' keys go along: without them the split fell back to the order of the images
    keys = None if data.keys is None else [data.keys[i] for i in sel.tolist()]
    return TensorData(data.x[sel], y, [data.classes[i] for i in keep], keys=keys)


def run_benchmark(data: TensorData, cfg: ImageBenchConfig, ctx: RunContext, preprocessing: dict) -> dict:
    """Train and test every model of ``cfg.models`` on ``data``; figures into the run folder.

    Shared by the SAR and plankton benchmarks (their configs derive from :class:`ImageBenchConfig`).
    """
    from oceandl.plotting import plot_image_grid
    from oceandl.preprocess import preprocess_batch

    data = _drop_rare(data, ctx)
    # one example per class, as the models see it (after the preprocessing)
    first = [int(np.flatnonzero(data.targets == c)[0]) for c in range(len(data.classes))]
    shown = preprocess_batch(data.x[first], preprocessing)[:, 0].numpy()
    plot_image_grid([shown], ["one per class"], ctx.folder / "samples.png", titles=data.classes)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       scheduler="onecycle", class_weights=cfg.class_weights, augment=tuple(cfg.augment),
                       noise=cfg.noise, degrees=cfg.degrees, seed=cfg.seed,
                       device=ctx.device, progress=ctx.progress)
    opts = {m: classifier_options(m, cfg.width, cfg.weights) for m in cfg.models}
    if not cfg.weights:
        # a resnet18 row trained from scratch read like the fine-tuning one; say so, and where the
        # ImageNet file goes (nothing is downloaded)
        from oceandl.models.transfer import pretrained_weights_path

        for m in (m for m in cfg.models if m in PRETRAINABLE):
            ctx.note(f"{m}: no weights= given, so trained from scratch (not fine-tuned); to fine-tune, put "
                     f"torchvision's ImageNet file at {pretrained_weights_path(m)} (or anywhere) and pass "
                     f"--set weights=PATH")
    results = compare_classifiers(data, cfg.models, tcfg, split=tuple(cfg.split), preprocessing=preprocessing,
                                  model_options=opts, figures=ctx.folder, tta=cfg.tta, log=ctx.log)
    (ctx.folder / PER_CLASS).write_text(per_class_markdown(results))
    ctx.note(f"per-class test scores of each model: {PER_CLASS} (worst F1 first) and results.json (per_class)")
    some = next(iter(results.values()))
    # on imbalanced real folders 1/K is not the bar: always answering the largest class of the test
    # split scores its share (7 of 10 images of one class: 0.700 against a stated chance of 0.500)
    from oceandl.training import split_indices

    test_idx = split_indices(len(data), tuple(cfg.split), seed=cfg.seed, stratify=data.targets, keys=data.keys)[2]
    test_counts = np.bincount(data.targets[test_idx], minlength=len(data.classes))
    majority = test_counts.max() / max(test_counts.sum(), 1)
    chance = f"chance accuracy {1 / len(data.classes):.3f}"
    if majority > 1 / len(data.classes) + 5e-4:
        chance += (f", always answering the largest class ({data.classes[int(test_counts.argmax())]}) "
                   f"scores {majority:.3f} accuracy, macro accuracy {1 / len(data.classes):.3f}")
    # keyed on the paths, each image's part is drawn from a hash of (seed, path): stable as files
    # come and go, but a class's part sizes vary around the fractions, so "stratified" overstated it
    how = (f"split keyed on the file paths (seed {cfg.seed}; per class, part sizes vary around "
           f"{'/'.join(f'{f:g}' for f in cfg.split)}, at least one image in each)" if data.keys is not None
           else f"seeded stratified split (seed {cfg.seed})")
    per_class = ", ".join(f"{c} {n}" for c, n in list(zip(data.classes, test_counts))[:20])
    ctx.note(f"{how}: {some['n_train']} train / {some['n_val']} validation / "
             f"{some['n_test']} test images (per class {per_class}{', ...' if len(data.classes) > 20 else ''}), "
             f"{len(data.classes)} classes ({chance}); the best epoch on validation is tested once")
    ctx.note(f"preprocessing {preprocessing}; augmentation {', '.join(cfg.augment) or 'none'}; "
             f"{cfg.epochs} epochs, AdamW lr {cfg.lr} one-cycle, batch {cfg.batch_size}, width {cfg.width}"
             + (", test-time augmentation (8 flips/rotations)" if cfg.tta else ""))
    return results


PER_CLASS = "per_class.md"


def per_class_markdown(results: dict[str, dict]) -> str:
    """Markdown tables, one per model, of its per-class test scores, worst F1 first (then the
    smaller class first): with a hundred plankton classes the classes that fail are the news."""
    lines = ["# Per-class test scores", "",
             # a paper quotes these: say what a 0/0 is (sklearn's zero_division=0, as the metrics compute it)
             "A class never predicted has precision 0 (0/0 counted as 0, as scikit-learn's zero_division=0), "
             "hence F1 0; every class has test images, so recall is always defined.", ""]
    for name, row in results.items():
        per = row.get("per_class") or {}
        lines += [f"## {name}", "", "| class | support | precision | recall | f1 |", "|---|---|---|---|---|"]
        for c, m in sorted(per.items(), key=lambda kv: (kv[1]["f1"], kv[1]["support"], kv[0])):
            lines.append(f"| {c} | {m['support']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")
        lines.append("")
    return "\n".join(lines)


#: the row metrics of a classifier's training that measure time (see Pipeline.timings)
TIMINGS = ("train_seconds", "train_samples_per_s")

#: results.md's explanation of COLUMNS (Pipeline.legend of the SAR and plankton benchmarks)
LEGEND = ("test_*: on the test split, tested once at the best validation epoch (fractions in [0, 1]): accuracy, "
          "macro_accuracy (recall averaged over the classes, the balanced accuracy), macro_f1 and weighted_f1 "
          "(F1 averaged over the classes, plain and by support), top2_accuracy and top3_accuracy (the true class among the 2 or "
          "3 most probable), log_loss (mean negative log-likelihood, nats), ece (expected calibration error, 15 "
          "confidence bins); a class never predicted counts as precision 0 and F1 0 in the macro means (0/0 as 0, "
          "scikit-learn's zero_division=0); params: trainable parameters; epochs: epochs run; best_epoch: the one tested; "
          "train_seconds: training wall time (s); train_samples_per_s: training images per second; device: where "
          "it ran.")

COLUMNS = ("test_accuracy", "test_macro_accuracy", "test_macro_f1", "test_weighted_f1", "test_top2_accuracy",
           "test_top3_accuracy", "test_log_loss", "test_ece", "params", "epochs", "best_epoch", "train_seconds", "train_samples_per_s",
           "device")
