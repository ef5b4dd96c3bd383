"""The training engine: the course's nine steps in one loop.

1 data -> 2 seeded train/val/test split -> 3 preprocessing (in the dataset) -> 4 model from the
registry -> 5 loss, optimiser, penalties -> 6 training with augmentation -> 7 best model kept on
validation, early stopping -> 8 the test set touched once -> 9 checkpoint, log and curves.
Small data sets are read once (by worker processes when that pays) into tensors on the device and
batched there; larger ones stream through a DataLoader, with workers and pinned memory on CUDA.
"""
from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import CheckpointError, InputError, OceanDLError, one_line, warn
from ..utils import (LR_RULE, bf16_autocast, decay_groups, fused_optimizer_kwargs, keep_freed_memory,
                     resolve_device, resolve_precision, seed_torch, torch_rng_scope, valid_lr)
from . import distributed as _dist
from .augment import BatchAugment
from .checkpoint import flatten_state, load_training_state, save_checkpoint, with_optional_state

__all__ = ["TrainConfig", "TrainResult", "fit", "predict", "split_indices", "materialize", "read_batches", "TensorData",
           "evaluate_classifier", "inference_batch_size", "reading_workers", "streaming_workers",
           "training_precision"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (written beside its results).

    ``l1``/``l2`` are explicit penalty terms ``l1 * sum|w| + l2 * sum w**2`` on the weights (the
    course's regularised objective), distinct from the optimiser's decoupled ``weight_decay``.
    Both act on the weights only (parameters of two or more dimensions): biases and the scales
    and shifts of normalisation layers are not decayed (as in nanoGPT or timm), since shrinking
    them towards zero only pulls a layer's outputs to zero mean and unit scale; ``decay_biases=True``
    gives ``weight_decay`` to every parameter.
    ``grad_clip`` caps the global norm of the gradients before each step (0: off). ``warmup_epochs``
    (fractions allowed) ramps the learning rate linearly from ``lr / (W + 1)`` to ``lr`` over the
    first ``W`` steps of those epochs, then ``scheduler`` runs over the steps left (a cosine ends at
    0 on the last step as without warm-up); ``onecycle`` has a warm-up of its own and ``plateau``
    does not compose with one (torch's SequentialLR refuses it): both refuse ``warmup_epochs``.
    ``label_smoothing`` smooths the training loss only: the validation loss (which picks the best
    epoch and drives early stopping and the plateau schedule) is the plain cross-entropy, with the
    class weights, so runs with other smoothing are compared on the same number.
    ``augment`` names batch augmentations (see :class:`~oceandl.training.augment.BatchAugment`).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adamw"          # sgd | adam | adamw
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay_biases: bool = False        # weight_decay on 1-D parameters (biases, norm layers) too
    l1: float = 0.0
    l2: float = 0.0
    scheduler: str = "cosine"         # none | cosine | step | plateau | onecycle
    early_stopping: int = 0           # patience in epochs; 0 = off
    grad_clip: float = 0.0            # max global gradient norm; 0 = off
    warmup_epochs: float = 0.0        # linear learning-rate warm-up before the scheduler; 0 = none
    label_smoothing: float = 0.0
    class_weights: str = "none"       # none | balanced (N / (K n_c)) | sqrt (1 / sqrt(n_c)): see _class_weights
    augment: tuple[str, ...] = ()
    translate: float = 0.1
    degrees: float = 10.0
    scale: float = 0.1
    noise: float = 0.05
    amp: bool = True                  # bf16 autocast where the device has bf16 (see training_precision)
    amp_cpu: bool | None = None       # with amp, bf16 on the CPU; None: where it is native (utils.native_bf16)
    channels_last: bool = True       # NHWC: faster convolutions (oneDNN, tensor cores); 1.34x on the course CNN, CPU
    compile: str = "none"             # none | default | reduce-overhead (CUDA graphs) | max-autotune
    fused: bool = True                # one fused kernel per optimizer step where torch has it (utils.fused_optimizer_kwargs)
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda | cuda:N (a torch.device is taken as its name)
    # DataLoader worker processes: for the one-time read of a data set that fits in memory (None:
    # when reading in-process would take over a second) and for streaming one that does not
    # (None: on CUDA one per core but the one that drives the GPU; on the CPU none)
    num_workers: int | None = None
    max_materialize_mb: int = 4096
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.device, torch.device):  # as a name: it goes into the checkpoint's config.json
            object.__setattr__(self, "device", str(self.device))
        checks = {
            "optimizer": (self.optimizer, ("sgd", "adam", "adamw")),
            "scheduler": (self.scheduler, ("none", "cosine", "step", "plateau", "onecycle")),
            "class_weights": (self.class_weights, ("none", "balanced", "sqrt")),
            "compile": (self.compile, ("none", "default", "reduce-overhead", "max-autotune")),
        }
        for name, (val, ok) in checks.items():
            if val not in ok:
                raise InputError(f"{name}={val!r}: use one of {', '.join(ok)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        # inf passed (nan did not): an epoch was trained on NaN weights, then "training diverged" (exit 1);
        # the interpolators' rule and words (utils.valid_lr)
        if not valid_lr(self.lr):
            raise InputError(f"lr {LR_RULE}, got {self.lr!r}")
        # a negative patience stopped every run after its first epoch; a negative penalty rewards
        # large weights (the loss runs to -inf)
        for name in ("early_stopping", "l1", "l2"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        # else torch refused them only when the run began (label smoothing at the first step, after
        # the data was read) as a bare RuntimeError/ValueError
        for name in ("weight_decay", "momentum"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.grad_clip >= 0 and self.grad_clip != float("inf")):
            raise InputError(f"grad_clip must be a finite number >= 0 (0: off), got {self.grad_clip}")
        if self.warmup_epochs and not 0 <= self.warmup_epochs < self.epochs:  # nan too
            raise InputError(f"warmup_epochs must be >= 0 and below epochs ({self.epochs}), got {self.warmup_epochs}")
        if self.warmup_epochs and self.scheduler in ("onecycle", "plateau"):
            why = "has a warm-up of its own" if self.scheduler == "onecycle" else "does not compose with a warm-up"
            raise InputError(f"warmup_epochs with scheduler={self.scheduler!r}: {self.scheduler} {why} "
                             "(use cosine, step or none)")
        if not 0 <= self.label_smoothing <= 1:
            raise InputError(f"label_smoothing must be within [0, 1], got {self.label_smoothing}")
        if self.num_workers is not None and (isinstance(self.num_workers, bool) or self.num_workers < 0):
            raise InputError(f"num_workers must be >= 0 (or None: automatic), got {self.num_workers}")

    def update(self, **kw) -> "TrainConfig":
        """A copy with some fields replaced (unknown names are an error)."""
        names = {f.name for f in fields(self)}
        bad = [k for k in kw if k not in names]
        if bad:
            raise InputError(f"unknown training option {bad[0]!r}")
        return replace(self, **kw)


@dataclass
class TrainResult:
    """What :func:`fit` returns: the best model (loaded), its epoch and the per-epoch log."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = math.inf
    seconds: float = 0.0
    samples_per_s: float = 0.0


class TensorData(Dataset):
    """Images (N, C, H, W) float32 and targets (N,) as a map-style dataset of dicts.

    ``keys``: optional, one string per image naming where it came from (the path of its file below
    the data folder): the classifier's split is then keyed on them (see :func:`split_indices`)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None, classes: Sequence[str] | None = None,
                 keys: Sequence[str] | None = None):
        self.x = x
        self.y = y if y is not None else torch.full((len(x),), -1, dtype=torch.long)
        self.targets = self.y.numpy() if self.y.device.type == "cpu" else self.y.cpu().numpy()
        self.classes = list(classes) if classes is not None else None
        if keys is not None and len(keys) != len(x):
            raise InputError(f"TensorData: {len(keys)} keys for {len(x)} images")
        self.keys = list(keys) if keys is not None else None

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i], "label": self.y[i]}


class _Failed:
    """An exception raised while reading a sample in a DataLoader worker, carried back as a value:
    raised there, it would come back as a multi-line traceback instead of the reader's one line.
    ``index``: the dataset index of the sample (to skip and name it, ``on_error="skip"``)."""

    def __init__(self, exc: BaseException, index: int = -1):
        self.kind, self.message, self.input_error = type(exc).__name__, str(exc), isinstance(exc, InputError)
        self.index = int(index)

    def reraise(self):
        if self.input_error:
            raise InputError(self.message)
        raise RuntimeError(f"reading a sample failed: {self.kind}: {self.message}")


class _Reads(Dataset):
    """``dataset[indices[j]]`` as ``(image float32, label int)``, or a :class:`_Failed`."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int):
        try:
            return _read_sample(self.dataset, self.indices[j])
        except Exception as exc:  # noqa: BLE001 - carried to the main process and raised there
            return _Failed(exc, self.indices[j])


def _read_sample(dataset: Dataset, i) -> tuple[torch.Tensor, int]:
    s = dataset[int(i)]
    return torch.as_tensor(s["image"], dtype=torch.float32), int(s.get("label", -1))


def _stack(items: list):
    """Collate (in the worker, when there are workers): ``(images, labels)`` stacked, so one tensor
    per batch crosses to the main process, not one per sample (each tensor sent is a shared-memory
    segment and a file descriptor: per sample, that cost more than decoding a small image). Items
    that cannot be stacked (a failure, another shape) come back as they are: see :func:`_collated`."""
    if any(isinstance(it, _Failed) for it in items) or len({tuple(x.shape) for x, _ in items}) > 1:
        return items
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)


def _collated(batch, failed: dict[int, str] | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A batch from :func:`_stack` as ``(images, labels)``, or the error that kept it from stacking.

    ``failed`` (``on_error="skip"``): the samples whose reader raised an InputError (a file that
    passed the header check and fails to decode) are left out of the batch and recorded in it
    (dataset index -> the reader's one-line message); ``None`` when none of the batch is left.
    Any other failure is raised.
    """
    if isinstance(batch, tuple):
        return batch
    for item in batch:
        if isinstance(item, _Failed) and not (failed is not None and item.input_error):
            item.reraise()
    if failed is not None:
        for item in batch:
            if isinstance(item, _Failed):
                failed[item.index] = item.message
        batch = [item for item in batch if not isinstance(item, _Failed)]
        if not batch:
            return None
        batch = _stack(batch)
        if isinstance(batch, tuple):
            return batch
    raise _different_shapes({tuple(x.shape) for x, _ in batch})


def _check_on_error(on_error: str) -> None:
    if on_error not in ("skip", "raise"):
        raise InputError(f"on_error={on_error!r}: use 'skip' or 'raise'")


def dataset_on_error(dataset: Dataset) -> str:
    """What to do with a sample that fails to read: the dataset's own ``on_error`` (the image
    readers': ``"skip"`` by default), else ``"raise"`` (a dataset without one never promised to skip)."""
    policy = getattr(dataset, "on_error", None)
    return policy if policy in ("skip", "raise") else "raise"


def warn_unreadable(failed: dict[int, str], where: str = "") -> None:
    """One warning naming the samples that failed to read and were left out (at most 10 shown)."""
    if not failed:
        return

    msgs = [failed[i] for i in sorted(failed)]
    shown = "; ".join(msgs[:10]) + (f"; and {len(msgs) - 10} more" if len(msgs) > 10 else "")
    warn(f"{where}left out {len(msgs)} image(s) that passed the header check but cannot be read: {shown}")


def _different_shapes(shapes: set) -> InputError:
    return InputError(f"images of different shapes {sorted(shapes)[:3]}: resize them (size option)")


def reading_workers(per_sample_s: float, remaining: int, num_workers: int | None = None) -> int:
    """DataLoader worker processes for reading ``remaining`` samples that take ``per_sample_s`` each.

    ``num_workers`` None is automatic: none when reading in this process would take under a second
    (in-memory data: starting workers would cost more than it saves), else one per CPU core (this
    process only waits), at most 8, the cores shared among the ranks of a torchrun job.
    """
    if num_workers is not None:
        if num_workers < 0:
            raise InputError(f"num_workers must be >= 0 (or None: automatic), got {num_workers}")
        return num_workers
    cores = _cores_per_rank()
    if cores < 2 or per_sample_s * remaining < 1.0:
        return 0
    return min(cores, 8)


def streaming_workers(device: torch.device, num_workers: int | None = None) -> int:
    """DataLoader workers for a data set streamed while training on ``device``.

    ``num_workers`` None is automatic. On CUDA, one per core but the one that drives the GPU (at
    most 8): they read the next batches while it trains. On the CPU none: workers would take cores
    from the training's threads (measured on 2 cores, a CNN on 3000 GeoTIFFs streamed at 608
    samples/s with one worker, 750 without).
    """
    if num_workers is not None:
        return reading_workers(0.0, 0, num_workers)  # the same check of a number given
    return min(_cores_per_rank() - 1, 8) if torch.device(device).type == "cuda" else 0


def _cores_per_rank() -> int:
    """CPU cores this process may use, shared among the ranks of a torchrun job."""
    ctx = _dist.current()
    world = ctx.world_size if ctx is not None else 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(cores // world, 1)


def materialize(dataset: Dataset, indices: Sequence[int] | None = None, progress: bool = False,
                desc: str = "loading", num_workers: int | None = None,
                stats: dict | None = None, on_error: str = "raise") -> tuple[torch.Tensor, torch.Tensor]:
    """Read every sample once into two tensors: images (N, C, H, W) float32, labels (N,) int64.

    Parameters
    ----------
    dataset : a dataset of ``{"image": (C, H, W), "label": int}`` dicts (``label`` optional: -1).
    indices : the samples to read (default: all), in this order. All of a :class:`TensorData`
        is its own tensors, not a copy.
    num_workers : DataLoader worker processes that read (decode) samples in parallel; ``None``
        decides from the time the first samples took (see :func:`reading_workers`). The result
        is the same whatever the number: samples come back in order into one preallocated tensor
        (no list of per-sample tensors beside it: peak memory is the result plus a few batches).
    stats : a dict to receive ``workers`` (the number used) and ``per_sample_s`` (the time one
        sample took in this process, which the automatic choice is made from), and ``failed``
        (dataset index -> the reader's message) of the samples left out by ``on_error="skip"``.
    on_error : ``"raise"``: a sample whose reader raises an InputError (a file that passed the
        header check and fails to decode) is that error; ``"skip"``: it is left out of the result,
        which holds the other samples in order, with one warning naming them all. The same
        samples are left out with workers or without.

    Raises
    ------
    InputError
        Empty selection, images of different shapes, the reader's own error for a bad sample
        (its one-line message, also when a worker read it), or, skipping, no readable sample.
    """
    if isinstance(dataset, TensorData):
        if indices is None:
            # its own tensors, not a copy: an index of every sample copied the whole set, so
            # training on tensors held each split twice (4000 128 x 128 images, 250 MB: the peak of
            # train_classifier was 910 MB above the data, 450 MB without the copies)
            return dataset.x, dataset.y
        idx = torch.as_tensor(np.asarray(indices))
        return dataset.x[idx], dataset.y[idx]
    from tqdm.auto import tqdm

    indices = list(range(len(dataset)) if indices is None else indices)
    if not indices:
        raise InputError("no samples to load (empty split)")
    bar = tqdm(total=len(indices), desc=desc, disable=not progress, leave=False)
    x = y = None
    j = 0
    for imgs, labels in read_batches(dataset, indices, num_workers=num_workers, stats=stats, on_error=on_error):
        if x is None:
            x = torch.empty((len(indices), *imgs.shape[1:]), dtype=torch.float32)
            y = torch.empty(len(indices), dtype=torch.long)
        x[j:j + len(imgs)], y[j:j + len(imgs)] = imgs, labels
        j += len(imgs)
        bar.update(len(imgs))
    bar.close()
    if j < len(indices):  # samples left out (on_error="skip")
        x, y = x[:j], y[:j]
    return x, y


def read_batches(dataset: Dataset, indices: Sequence[int] | None = None, num_workers: int | None = None,
                 stats: dict | None = None, on_error: str = "raise"):
    """Samples of ``dataset`` as batches ``(images (B, C, H, W) float32, labels (B,) int64)``, in
    the order of ``indices`` (default: all), read as :func:`materialize` reads them (worker
    processes when that pays); what :func:`materialize` collects, for a caller that uses each
    batch and lets it go (``classify`` on a folder: its memory no longer grows with the folder).

    The first batch holds the first samples (at most 9), read in this process to time them;
    the others at most 32 each. ``num_workers``, ``stats``, ``on_error`` and the errors are
    :func:`materialize`'s (skipped samples are left out of the batches, which may then be smaller).
    """
    _check_on_error(on_error)
    indices = list(range(len(dataset)) if indices is None else indices)
    if not indices:
        raise InputError("no samples to load (empty split)")
    failed: dict[int, str] | None = {} if on_error == "skip" else None

    def read(i):
        if failed is None:
            return _read_sample(dataset, i)
        try:
            return _read_sample(dataset, i)
        except InputError as exc:  # as a worker carries it back: both paths leave out the same samples
            return _Failed(exc, i)

    # the first samples in this process: the shape of the result, and the time a sample takes
    head = [read(indices[0])]  # the first read also pays one-off costs (imports, caches)
    t0 = time.perf_counter()
    head += [read(i) for i in indices[1:min(9, len(indices))]]
    per_sample = (time.perf_counter() - t0) / max(len(head) - 1, 1)
    shape = None
    rest = indices[len(head):]
    workers = reading_workers(per_sample, len(rest), num_workers) if rest else 0
    if stats is not None:
        stats.update(workers=workers, per_sample_s=per_sample)
    if workers:
        batches = DataLoader(_Reads(dataset, rest), batch_size=32, num_workers=workers, collate_fn=_stack)
    else:
        batches = (_stack([read(i) for i in rest[k:k + 32]]) for k in range(0, len(rest), 32))
    for batch in itertools.chain([_stack(head)], batches):
        got = _collated(batch, failed)
        if got is None:  # every sample of the batch left out
            continue
        imgs, labels = got
        shape = shape or tuple(imgs.shape[1:])
        if tuple(imgs.shape[1:]) != shape:
            raise _different_shapes({shape, tuple(imgs.shape[1:])})
        yield imgs, labels
    if failed is not None:
        if stats is not None:
            stats["failed"] = dict(sorted(failed.items()))
        if shape is None:  # nothing was readable
            msgs = [failed[i] for i in sorted(failed)]
            raise InputError(f"no readable samples: {len(msgs)} unreadable: {'; '.join(msgs[:3])}"
                             f"{'; ...' if len(msgs) > 3 else ''}")
        warn_unreadable(failed)


def key_uniforms(keys: Sequence[str], seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per key from a hash of ``(seed, key)`` (BLAKE2b): the same key and seed give
    the same number on every machine, whatever other keys there are (Python's ``hash`` is salted)."""
    import hashlib

    return np.array([int.from_bytes(hashlib.blake2b(f"{int(seed)}\0{k}".encode(), digest_size=8).digest(), "big")
                     for k in keys], dtype=np.float64) / 2.0**64


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  stratify: np.ndarray | None = None, keys: Sequence[str] | None = None) -> list[np.ndarray]:
    """Seeded split of ``range(n)`` into parts of the given fractions (stratified by label if given).

    Without ``keys`` each class is shuffled (seeded) and cut at the fractions: exact proportions,
    but which part an item lands in depends on every other item of its class, so one file added
    to (or dropped from) a folder moved other images between training and test (up to 13 of 30).

    ``keys`` (one string per item, e.g. the file's path below the data folder) key the split on a
    hash of ``(seed, key)`` instead (:func:`key_uniforms`), as a split stable across data-set
    updates is usually made (TensorFlow Datasets, scikit-learn's guide to hash-based test sets): an
    item's number in [0, 1) against the cumulative fractions gives its part, whatever the other
    items are, so files added, removed or unreadable never move another one. Each class's part
    sizes then follow the fractions on average (binomially), not exactly. A class that has at least
    one item per positive fraction but whose numbers leave a part empty (3 images at 70/15/15 often
    do) gives it the item of its largest part nearest that part's band: only such a small class's
    items can move when one of its own files comes or goes.
    """
    fr = np.asarray(fractions, float)
    if (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
        raise InputError(f"split fractions {tuple(fractions)} must be >= 0 and sum to 1")
    if keys is not None:
        return _keyed_split(n, fr, seed, stratify, keys)
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if stratify is None else [np.flatnonzero(stratify == c) for c in np.unique(stratify)]
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for g in groups:
        g = rng.permutation(g)
        cuts = np.round(np.cumsum(fr)[:-1] * len(g)).astype(int)
        sizes = np.diff(cuts, prepend=0, append=len(g))
        # rounding can leave a part with a positive fraction empty (3 images at 70/15/15 went 2/1/0,
        # so a class with the minimum 3 had no test image): give it one from the largest part
        if len(g) >= np.count_nonzero(fr):
            for i in np.flatnonzero((fr > 0) & (sizes == 0)):
                sizes[np.argmax(sizes)] -= 1
                sizes[i] += 1
        cuts = np.cumsum(sizes)[:-1]
        for p, chunk in zip(parts, np.split(g, cuts)):
            p.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _keyed_split(n: int, fr: np.ndarray, seed: int, stratify: np.ndarray | None,
                 keys: Sequence[str]) -> list[np.ndarray]:
    """:func:`split_indices` by a hash of each key (see there)."""
    if len(keys) != n:
        raise InputError(f"split: {len(keys)} keys for {n} items")
    u = key_uniforms(keys, seed)
    edges = np.cumsum(fr)
    lo, hi = np.concatenate([[0.0], edges[:-1]]), edges
    part = np.minimum(np.searchsorted(edges[:-1], u, side="right"), len(fr) - 1)
    # a zero fraction's band is empty: searchsorted never lands in it
    labels = np.zeros(n, dtype=np.int64) if stratify is None else np.asarray(stratify)
    for c in np.unique(labels):
        g = np.flatnonzero(labels == c)
        if len(g) < np.count_nonzero(fr):
            continue
        for i in np.flatnonzero(fr > 0):
            if (part[g] == i).any():
                continue
            sizes = np.bincount(part[g], minlength=len(fr))
            donor = g[part[g] == int(np.argmax(sizes))]
            gap = np.maximum(lo[i] - u[donor], u[donor] - hi[i])  # distance to the band [lo, hi)
            part[donor[int(np.argmin(gap))]] = i
    return [np.flatnonzero(part == i) for i in range(len(fr))]


def _penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | float:
    if not (l1 or l2):
        return 0.0
    ws = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]  # weights, not biases/norms
    out = 0.0
    if l1:
        out = out + l1 * sum(w.abs().sum() for w in ws)
    if l2:
        out = out + l2 * sum(w.pow(2).sum() for w in ws)
    return out


def _state_like_params(opt: torch.optim.Optimizer) -> None:
    """Give each optimizer state tensor its parameter's memory layout (after a resume).

    The state is saved contiguous (safetensors keeps no strides), while a channels-last model's
    parameters are not. Torch's fused steps pair elements by memory position, so a mixed layout
    updates the wrong elements (torch 2.14, AdamW: off by 0.04 after one step). The per-tensor
    steps stay right, but they round alike only in the same layout.
    """
    for p, st in opt.state.items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def _make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    params = [p for p in model.parameters() if p.requires_grad]
    fused = fused_optimizer_kwargs(params, cfg.fused)
    # weight decay on the weights only, not on biases and norm layers unless cfg.decay_biases
    groups = decay_groups(params, cfg.weight_decay, cfg.decay_biases)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, **fused)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=cfg.lr, **fused)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr, **fused)
    total = cfg.epochs * steps_per_epoch
    # the warm-up's steps (at least one, and one short of all: the schedule after it gets a step)
    warm = min(max(round(cfg.warmup_epochs * steps_per_epoch), 1), total - 1) if cfg.warmup_epochs else 0
    after = total - warm  # the steps the scheduler runs over
    lrs = torch.optim.lr_scheduler
    sched = {
        "none": None,
        "cosine": lambda: lrs.CosineAnnealingLR(opt, T_max=after),
        "step": lambda: lrs.StepLR(opt, step_size=max(1, after // 3), gamma=0.1),
        "onecycle": lambda: lrs.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total),
        "plateau": lambda: lrs.ReduceLROnPlateau(opt, factor=0.3, patience=2),
    }[cfg.scheduler]
    sched = sched() if sched else None
    if warm:
        ramp = lrs.LinearLR(opt, start_factor=1 / (warm + 1), end_factor=1.0, total_iters=warm)
        sched = ramp if sched is None else lrs.SequentialLR(opt, [ramp, sched], milestones=[warm])
    return opt, sched


class _Batches:
    """Batches of (x, y) on the device: from materialised tensors when they fit, else a DataLoader."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, cfg: TrainConfig,
                 shuffle: bool, desc: str):
        # under torchrun batch_size is the global batch: each rank takes its share (distributed.py)
        self.batch_size, self.device, self.shuffle = _dist.local_batch_size(batch_size), device, shuffle
        self.n = len(dataset)
        # a sample that fails to read (a file that passed the header check and fails to decode)
        # stopped the whole run; under the dataset's on_error="skip" (the image readers' default)
        # it is left out, named in one warning, and `failed` lists it
        self.on_error = dataset_on_error(dataset)
        self.failed: dict[int, str] = {}
        self.at = -1  # the index of the batch `epoch` yielded last
        first = _first_image(dataset, self.on_error)
        mb = self.n * torch.as_tensor(first).numel() * 4 / 2**20
        self.x = self.y = None
        if mb <= cfg.max_materialize_mb:
            stats: dict = {}
            x, y = materialize(dataset, progress=cfg.progress and self.n > 5000, desc=desc,
                               num_workers=cfg.num_workers, on_error=self.on_error, stats=stats)
            self.failed = stats.get("failed", {})
            self.x, self.y = x.to(device), y.to(device)
            self.n = len(self.x)
        else:
            self.dataset, self.cfg = dataset, cfg
            self.workers = streaming_workers(device, cfg.num_workers)

    def _trim(self, order: torch.Tensor) -> torch.Tensor:
        """A training epoch without a last batch of one sample.

        Batch norm cannot normalise one sample over a 1 x 1 map (a U-Net's or smp's bottleneck on
        small images): 65 images in batches of 64 failed with torch's bare "Expected more than 1
        value per channel when training". The order is reshuffled every epoch, so the sample left
        out is another one each time (each is left out of an epoch with probability 1 / n).
        """
        if self.shuffle and len(order) > 1 and len(order) % self.batch_size == 1:
            return order[:-1]
        return order

    def __len__(self) -> int:
        return math.ceil(len(self._trim(_dist.shard(torch.arange(self.n), pad=self.shuffle))) / self.batch_size)

    def epoch(self, generator: torch.Generator, start: int = 0):
        """The epoch's batches ``(x, y)`` in the order drawn from ``generator``, from batch ``start``
        on (a resume inside the epoch: the batches before are not read). ``self.at``: the index in
        the epoch of the batch yielded last (a batch whose samples all failed to read is not yielded)."""
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        order = self._trim(_dist.shard(order, pad=self.shuffle))  # this rank's share (all of it alone)
        if self.x is not None:
            order = order.to(self.device)
            for self.at, i in enumerate(range(start * self.batch_size, len(order), self.batch_size), start):
                idx = order[i:i + self.batch_size]
                yield self.x[idx], self.y[idx]
            return
        # the generator also seeds the workers: a sample's random transform depends on (seed, epoch).
        # From batch `start` on, the batches go to other workers than in a whole epoch: a dataset
        # that draws at random in its workers then draws otherwise (in-process, num_workers=0, not)
        loader = DataLoader(_Reads(self.dataset, order[start * self.batch_size:].tolist()), batch_size=self.batch_size,
                            collate_fn=_stack, num_workers=self.workers, pin_memory=self.device.type == "cuda",
                            generator=generator)
        failed: dict[int, str] | None = {} if self.on_error == "skip" else None
        for self.at, b in enumerate(loader, start):
            got = _collated(b, failed)
            if got is None:
                continue
            x, y = got
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        # the same files fail every epoch: named once, in the first epoch that read them
        new = {i: m for i, m in (failed or {}).items() if i not in self.failed}
        self.failed.update(new)
        warn_unreadable(new)


def _first_image(dataset: Dataset, on_error: str = "raise") -> torch.Tensor:
    """The image of the first sample that can be read (the first sample's, or its error, with
    ``on_error="raise"``): its shape sizes the run."""
    for i in range(len(dataset)):
        try:
            return torch.as_tensor(dataset[i]["image"])
        except InputError:
            if on_error == "raise" or i == len(dataset) - 1:
                raise
    raise InputError("no samples to load (empty data set)")


@torch.no_grad()
def _num_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """The number of classes ``model`` scores: its output width for one image ``x`` (1, C, H, W),
    in eval mode (no dropout draw, no batch-norm update: the run is unchanged)."""
    was_training = model.training
    try:
        return int(model.eval()(x).shape[1])
    finally:
        model.train(was_training)


def _check_labels(labels, n_classes: int, part: str) -> None:
    """Refuse labels the loss cannot take (``None``: not known before training, left to it)."""
    if labels is None or not len(labels):
        return
    labels = np.asarray(labels)
    lo, hi = int(labels.min()), int(labels.max())
    # else cross_entropy failed at the first step, after the data was read: "IndexError: Target 4
    # is out of bounds" (an unlabelled sample, -1, likewise)
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise InputError(f"{part} label {bad} outside the model's {n_classes} classes (0 to {n_classes - 1})"
                         + ("; -1 marks an unlabelled image" if bad == -1 else ""))


def _masked_mse(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite pixels of the target ``x`` (all of them: ``F.mse_loss``).

    A gappy field (NaN under clouds) made the loss NaN and stopped the run as "training diverged
    ... lower the learning rate". No ``.all()`` test here: it would wait for the GPU at every step.
    """
    ok = torch.isfinite(x)
    d = (out - torch.where(ok, x, 0.0)) * ok
    return d.pow(2).sum() / ok.sum().clamp_min(1)


def _fill_gaps(x: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
    """A reconstruction model's input with its NaN pixels set to 0 (the mean of normalised data),
    or to the model's own per-pixel mean where it has one (an auto-encoder built with ``centre=True``):
    filled with 0, the gaps of a linear_ae on SST in degC were anomalies of -20 degC."""
    mean = getattr(model, "mean", None)
    if isinstance(mean, torch.Tensor) and mean.shape == x.shape[1:]:
        return torch.where(torch.isfinite(x), x, mean)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _loss_fn(task: str, weights: torch.Tensor | None, label_smoothing: float = 0.0) -> Callable:
    if task == "classification":
        return lambda out, x, y: F.cross_entropy(out, y, weight=weights, label_smoothing=label_smoothing)
    return lambda out, x, y: _masked_mse(out, x)


def training_precision(device: torch.device, cfg: TrainConfig) -> str:
    """``"bf16"`` (autocast) or ``"fp32"``: what ``cfg.amp``/``cfg.amp_cpu`` give on ``device``.

    bf16 where the device computes it natively (:func:`oceandl.utils.native_bf16`); ``amp_cpu=True``
    forces it on any CPU. A GPU without bf16 trains in fp32: fp16 autocast would need loss scaling
    to keep small gradients from underflowing.
    """
    if not cfg.amp:
        return "fp32"
    if device.type == "cpu" and cfg.amp_cpu is not None:
        return "bf16" if cfg.amp_cpu else "fp32"
    return resolve_precision("auto", device)


def _warn_unmet_bf16(device: torch.device, cfg: TrainConfig) -> None:
    """Warn when bf16 was asked for (``amp_cpu=True``: ``--precision bf16``) on a GPU that trains in fp32."""
    if cfg.amp and cfg.amp_cpu and device.type != "cpu" and training_precision(device, cfg) == "fp32":
        # `train classifier --precision bf16` on a T4/V100 trained in fp32 without a word
        warn(f"bf16 was asked for, but {device} has no native bf16 (a GPU of compute capability below 8.0): "
             "training in fp32 (emulated bf16 would be slower)")


@functools.lru_cache(maxsize=None)  # the build does not change in a process; show() formats the whole config
def _onednn_version() -> tuple[int, ...] | None:
    """The oneDNN version torch was built with (from ``torch.__config__.show()``), or None."""
    import re

    m = re.search(r"(?:MKL-DNN|oneDNN) v(\d+)\.(\d+)", torch.__config__.show())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _warn_strided_pointwise(model: nn.Module, device: torch.device, cfg: TrainConfig) -> None:
    """Warn about a layer that meets oneDNN 3.12's heap-corruption bug (docs/robustness.md).

    The backward pass of a channels-last ``nn.Conv2d`` with a 1 x 1 kernel, a stride and 2 to 15
    input channels corrupted the C heap on AVX512 CPUs with 2+ threads (an abort or segfault
    within a few hundred steps of odd batches). The registry's ResNet block avoids it
    (:class:`~oceandl.models.blocks.PointwiseConv`); a model of one's own is only warned about.
    """
    if device.type != "cpu" or not cfg.channels_last or torch.get_num_threads() < 2:
        return
    if "AVX512" not in torch.backends.cpu.get_cpu_capability() or (_onednn_version() or (0, 0)) > (3, 12):
        return
    bad = [(name, m.in_channels) for name, m in model.named_modules()
           if type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.stride != (1, 1) and 1 < m.in_channels < 16]
    if bad:
        name, cin = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        warn(f"layer {name or type(model).__name__}{more}: a strided 1x1 convolution of {cin} input channels "
             "trained channels-last on this AVX512 CPU can corrupt memory and crash in oneDNN 3.12's backward "
             "pass (docs/robustness.md): build it as oceandl.models.blocks.PointwiseConv, or train with "
             "channels_last=False (--no-channels-last)")


def _autocast(device: torch.device, cfg: TrainConfig):
    return bf16_autocast(device, training_precision(device, cfg) == "bf16")


@torch.no_grad()
def _run_eval(model, batches: _Batches, loss_fn, device, cfg, classification: bool,
              weights: torch.Tensor | None = None) -> dict:
    model.eval()
    tot, correct, n, den = 0.0, 0, 0, 0.0
    g = torch.Generator().manual_seed(0)
    for x, y in batches.epoch(g):
        with _autocast(device, cfg):
            out = model(x if classification else _fill_gaps(x, model))
        # a class-weighted mean is sum(w_y * l) / sum(w_y): each batch's mean weighs by its sum of
        # weights, not its size. By size, the validation loss depended on the batching (batches of
        # the class-sorted validation set hold one class each, which cancels the weights: 0.825 for
        # 600 images at batch 256, 0.789 in one batch), and so did the best epoch and the plateau
        b = float(weights[y].sum()) if classification and weights is not None else float(len(x))
        tot += float(loss_fn(out.float(), x, y)) * b
        den += b
        if classification:
            correct += int((out.argmax(1) == y).sum())
        n += len(x)
    tot, correct, n, den = _dist.all_reduce_sum(tot, correct, n, den)
    correct, n = int(correct), int(n)
    res = {"loss": tot / den if den > 0 else 0.0}
    # from the task, not this rank's outputs: under torchrun a validation set smaller than the
    # number of processes leaves a rank without a batch
    if classification and n:
        res["accuracy"] = correct / max(n, 1)
    return res


def _class_weights(counts: np.ndarray, mode: str) -> np.ndarray:
    """Loss weight of each class from its training images ``counts``.

    ``"balanced"``: ``N / (K * n_c)``, as scikit-learn's ``class_weight="balanced"``: every class
    weighs as much in the loss (a class of 4 images among 300-image ones weighs 75x those).
    ``"sqrt"``: proportional to ``1 / sqrt(n_c)``, scaled so the mean weight per image is 1 (the
    same 4 images weigh 8.7x), a milder balance common for plankton. On a synthetic plankton set of
    6 classes with 300, 150, 60, 25, 10 and 4 training images (balanced test set of 40 per class,
    5 seeds, course CNN) the macro-F1 / balanced accuracy were 0.50 / 0.61 unweighted, 0.58 / 0.60
    balanced (the most varying: 0.50-0.64 / 0.55-0.65; the larger classes lose recall) and
    0.57 / 0.64 sqrt (0.48-0.60 / 0.60-0.66).
    """
    counts = np.asarray(counts, np.float64)
    w = 1 / (np.sqrt(counts) if mode == "sqrt" else counts)
    return w * counts.sum() / (w * counts).sum()  # balanced: exactly N / (K * n_c)


#: a long epoch's batches done are saved at least this often (seconds): Ctrl-C and SIGTERM save them
#: when they come, but a SIGKILL, the OOM killer or a lost node saves nothing, and an epoch of
#: Sentinel-1 vignettes on a laptop CPU takes an hour
MID_EPOCH_STATE_SECONDS = 600.0


def _rng_states(device: torch.device) -> dict:
    """torch's random states a training batch draws from (dropout, augmentation): the CPU
    generator's and, on CUDA, the device's (the classifier's and the gap filler's states alike)."""
    states = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def _set_rng_states(states: dict, device: torch.device) -> None:
    """Put back :func:`_rng_states` (``cuda_rng`` None or absent: a state saved on the CPU, whose
    CUDA draws are then seeded, not the same)."""
    torch.set_rng_state(states["torch_rng"])
    if device.type == "cuda" and states.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(states["cuda_rng"], device)


class _KeptBuffers:
    """A model's buffers (batch norm's running statistics) noted before each step, put back when the
    step is cut: its forward pass has already moved them, and the state saved replays it whole.
    Empty (nothing copied) when ``on`` is false."""

    def __init__(self, model: nn.Module, on: bool):
        self.live = list(model.buffers()) if on else []
        self.kept = [b.detach().clone() for b in self.live]

    def note(self) -> None:
        if self.live:
            torch._foreach_copy_(self.kept, self.live)  # one call, not one copy per layer

    def restore(self) -> None:
        if self.live:
            torch._foreach_copy_(self.live, self.kept)


class _EpochSoFar:
    """Where the epoch in progress stands, for the state an interruption (Ctrl-C, SIGTERM) saves
    and a resume goes on from as if uninterrupted.

    The random states and the buffers (batch norm's running statistics) are snapshotted before each
    batch: an interruption inside a batch has drawn from the one and moved the other, and the state
    saved replays that batch whole. ``updating`` holds from the optimizer step to the end of the
    batch, while the weights are neither those of one batch nor of the next: nothing is saved then.
    ``on=False`` (no output folder; torch distributed, whose ranks each hold a share of the epoch):
    only the last whole epoch is ever saved.
    """

    def __init__(self, model: nn.Module, device: torch.device, on: bool):
        self.on, self.device = on, device
        self.buffers = _KeptBuffers(model, on)
        self.epoch: int | None = None  # the epoch a save goes on in; None between epochs (not saved)
        self.done, self.updating, self.lr, self.t0, self.rngs = 0, False, 0.0, 0.0, {}
        # the clock of the last state written (whole epoch or not), and the (epoch, batch) of the
        # last mid-epoch one: `out` then exists, and holds that state
        self.last, self.mid_at = time.perf_counter(), None

    def due(self) -> bool:
        """Whether the batches done are to be saved now (:data:`MID_EPOCH_STATE_SECONDS`)."""
        return (self.epoch is not None and self.done > 0
                and time.perf_counter() - self.last > MID_EPOCH_STATE_SECONDS)

    def saved(self) -> None:
        """A state was written: the whole epoch's (between epochs) or the batches done."""
        self.last = time.perf_counter()
        if self.epoch is not None:
            self.mid_at = (self.epoch, self.done)

    def begin(self, epoch: int, done: int, lr: float, t0: float) -> None:
        """The batches of ``epoch`` begin at batch ``done``; ``lr`` and ``t0`` go into its log row."""
        self.batch_done(done)
        self.lr, self.t0 = lr, t0
        self.epoch = epoch if self.on else None  # last: an interruption before saves nothing of the epoch

    def batch_done(self, done: int) -> None:
        """``done`` batches of the epoch are trained (their step taken, their loss summed)."""
        if self.on:
            self.rngs = _rng_states(self.device)
            self.buffers.note()
        self.done, self.updating = done, False

    def end(self) -> None:
        """The epoch's batches and validation are done: from here its whole-epoch save stands in."""
        self.epoch = None

    def state(self, tot: float, correct: int, n: int) -> dict:
        """The mid-epoch part of the training state (the model's buffers put back as they were
        before the batch in progress): batches done, the epoch's sums, log row and random states."""
        self.buffers.restore()
        return {"batches_done": self.done, "running": {"tot": float(tot), "correct": int(correct), "n": int(n)},
                "lr": self.lr, "seconds": time.perf_counter() - self.t0, **self.rngs}


def _in_epoch(state: dict, out, n_batches: int, distributed: bool) -> dict | None:
    """The mid-epoch part of a resumed ``state`` (see :meth:`_EpochSoFar.state`), checked; ``None``
    for a state saved after a whole epoch."""
    if state.get("batches_done") is None:
        return None
    if distributed:  # each rank would skip its share of another order
        raise InputError(f"{out}: the training state was saved inside an epoch, which resumes in one process only "
                         "(not under torchrun)")
    try:
        run = state["running"]
        mid = {"done": int(state["batches_done"]), "tot": float(run["tot"]), "correct": int(run["correct"]),
               "n": int(run["n"]), "lr": float(state["lr"]), "seconds": float(state.get("seconds", 0.0)),
               "torch_rng": state["torch_rng"], "cuda_rng": state.get("cuda_rng")}
        if not 0 < mid["done"] <= n_batches:
            raise ValueError(f"batch {mid['done']} of {n_batches}")
        torch.Generator().set_state(mid["torch_rng"])  # a state torch takes
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{out}: corrupt training state ({one_line(exc)})") from None
    return mid


def _go_on_in_epoch(mid: dict, device: torch.device) -> tuple[int, tuple, float, float]:
    """Put back the random states of a mid-epoch state; returns the batches done, the epoch's sums
    ``(tot, correct, n)``, its learning rate and its start on the clock (the seconds before counted)."""
    _set_rng_states(mid, device)
    return mid["done"], (mid["tot"], mid["correct"], mid["n"]), mid["lr"], time.perf_counter() - mid["seconds"]


def _epochs_in(out, saved: int, writing: int) -> int:
    """The last whole epoch whose resumable state is in ``out``: ``saved``, or ``writing`` (the
    epoch whose checkpoint was being written) when the interruption came after that checkpoint was
    written and before the loop could record it."""
    from .checkpoint import read_config

    if writing <= saved:  # no write in progress: `out` may hold another run's state (fit(overwrite=True))
        return saved
    try:
        config = read_config(out)
    except (OceanDLError, OSError):  # no checkpoint yet
        return saved
    # a finished checkpoint keeps no state to resume from
    return writing if config.get("epochs_done") == writing and config.get("finished") is False else saved


def _interrupted(out, cfg: TrainConfig, saved: int, so_far: _EpochSoFar, n_batches: int, sums: tuple,
                 save: Callable[[dict], None]) -> tuple[str, bool]:
    """Save the epoch so far at an interruption, if it can be resumed from; returns the line that
    says what ``out`` holds and whether it holds a state to resume from.

    ``saved``: the last whole epoch saved (0: none); ``sums``: the epoch's ``(tot, correct, n)``;
    ``save(mid)`` writes the state of epoch ``saved`` with the mid-epoch part ``mid``.
    """
    # the periodic save of the epoch after `saved` stands in `out` until that epoch's whole save is
    # written: inside the epoch and between its batches and that write (validation, the write itself)
    mid = so_far.mid_at if so_far.mid_at is not None and so_far.mid_at[0] == saved + 1 else None
    if mid is not None:  # the periodic save of this epoch's batches (MID_EPOCH_STATE_SECONDS)
        kept = f"the training state of epoch {mid[0]} of {cfg.epochs}, batch {mid[1]} of {n_batches}, stands in {out}"
    else:
        kept = (f"the training state of epoch {saved} of {cfg.epochs} stands in {out}" if saved
                else f"no training state was saved in {out} yet")
    there = bool(saved) or mid is not None
    if so_far.epoch is None:  # between epochs: the last whole one stands (or the next one's batches saved)
        return kept, there
    if so_far.updating:
        return f"interrupted while updating the weights: {kept}", there
    if so_far.done == 0:  # nothing of this epoch to keep
        return kept, there
    if not math.isfinite(float(sums[0])):  # a diverged state is not saved over a good one
        return f"the loss is not finite: {kept}", there
    try:
        save(so_far.state(*sums))
    except OceanDLError as exc:  # the write failed (a full disk): the previous state is left as it was
        return f"{one_line(exc)}; {kept}", there
    return (f"the training state of epoch {so_far.epoch} of {cfg.epochs}, batch {so_far.done} of {n_batches}, "
            f"is saved in {out}"), True


def fit(model: nn.Module, train: Dataset, val: Dataset | None, config: TrainConfig = TrainConfig(), *,
        task: str = "classification", out: str | Path | None = None, checkpoint_meta: dict | None = None,
        resume: bool = False, overwrite: bool = False, log: Callable[[str], None] | None = None,
        stop_after_epoch: int | None = None) -> TrainResult:
    """Train ``model`` and keep the best weights on ``val`` (without it: the epoch of the lowest
    training loss, which early stopping then also watches).

    Parameters
    ----------
    model : a registry model.
    train, val : datasets of ``{"image": (C, H, W), "label": int}`` dicts.
    config : :class:`TrainConfig`.
    task : ``"classification"`` (cross-entropy on labels) or ``"reconstruction"`` (MSE on the image).
        A reconstruction's loss is taken on the finite pixels of the image only: gaps (NaN) are
        fed to the model as 0, the mean of normalised data, and do not count in the loss.
        An auto-encoder built with ``centre=True`` (``linear_ae`` by default) gets its ``mean`` set
        from the training images (their per-pixel mean, gaps left out) before the first epoch, and
        its gaps are fed as that mean (an anomaly of 0) instead of 0.
    out : checkpoint folder; written after each epoch (best weights, ``config.json``, ``log.csv``,
        ``curves.png`` and the resumable state), so a killed run can go on with ``resume=True``.
    checkpoint_meta : ``save_checkpoint`` keywords (model_name, model_args, model_options, classes, ...).
    resume : continue from the training state in ``out``.
    stop_after_epoch : end this call after that epoch, as an interrupted run would (the state in
        ``out`` then resumes it).

    Returns
    -------
    TrainResult with the best model loaded.

    Notes
    -----
    The run is seeded from ``config.seed`` on a private copy of torch's random state: the global
    generator is the same after the call as before it. A training epoch that would end on a batch
    of one sample leaves that sample out (another one each epoch, as the order is reshuffled):
    batch norm cannot train on one sample over a 1 x 1 map.

    A KeyboardInterrupt (Ctrl-C; the CLI raises one for SIGTERM) inside an epoch saves the batches of
    it done so far in ``out`` (the weights, optimizer and schedule after them, the epoch's sums and
    the random states before the batch cut): ``resume=True`` skips them unread and ends as the
    uninterrupted run, bit for bit on the CPU. The exception's message says what ``out`` holds and
    its ``resumable`` whether it holds a state to go on from. Cut in a weight update, or under torch
    distributed, the last whole epoch stands. A streamed data set (over ``max_materialize_mb``) whose
    reader draws at random in DataLoader workers draws otherwise after such a resume (its batches
    go to other workers); read in-process (``num_workers=0``) it draws the same.
    """
    cfg = config
    dctx = _dist.init_distributed(cfg.device)  # None unless launched by torchrun with WORLD_SIZE > 1
    device = dctx.device if dctx is not None else resolve_device(cfg.device)
    # the run's seeds (dropout, augmentation) go to a private copy of torch's random state: the
    # caller's global generator is left as it was
    with torch_rng_scope(device):
        return _fit(model, train, val, cfg, dctx, device, task=task, out=out, checkpoint_meta=checkpoint_meta,
                    resume=resume, overwrite=overwrite, log=log, stop_after_epoch=stop_after_epoch)


def _fit(model: nn.Module, train: Dataset, val: Dataset | None, cfg: TrainConfig, dctx, device: torch.device, *,
         task: str, out: str | Path | None, checkpoint_meta: dict | None, resume: bool, overwrite: bool,
         log: Callable[[str], None] | None, stop_after_epoch: int | None) -> TrainResult:
    """:func:`fit` within its private random state."""
    seed_torch(cfg.seed, device)
    _warn_unmet_bf16(device, cfg)
    _warn_strided_pointwise(model, device, cfg)
    keep_freed_memory(device)  # every step re-allocates the same activations: keep them off the page-fault path
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, net = _dist.wrap_model(model)  # net: DDP for the training steps; model: evaluated and saved
    if cfg.compile != "none":  # compiled on the first step; shares its parameters with `model`
        net = torch.compile(net, mode=cfg.compile)
    train_b = _Batches(train, cfg.batch_size, device, cfg, shuffle=True, desc="loading train")
    val_b = _Batches(val, max(cfg.batch_size, 256), device, cfg, shuffle=False, desc="loading val") if val else None
    if task != "classification" and getattr(model, "output", None) == "sigmoid" and train_b.x is not None:
        # a sigmoid cannot reach a target outside [0, 1]: a conv_ae on standardised fields
        # (mean 0, std 1) trained to outputs in [0.32, 1) and an explained variance of -0.15
        lo, hi = (float(v) for v in torch.aminmax(torch.where(torch.isfinite(train_b.x), train_b.x, 0.5)))
        if lo < 0 or hi > 1:
            raise InputError(f"{type(model).__name__} has a sigmoid output (values in [0, 1]) but the training images "
                             f"range over [{lo:.4g}, {hi:.4g}]: build it with output='linear' (anomalies, "
                             "normalised data), or scale the images to [0, 1]")
    if task != "classification" and getattr(model, "centre", False) and hasattr(model, "fit_mean") and not resume:
        # an auto-encoder that centres itself (linear_ae) owns the training images' mean: centred
        # outside the model, its reconstructions of new images lacked the mean and a checkpoint did
        # not carry it (a resumed run has it in its saved state)
        model.fit_mean(train_b.x if train_b.x is not None
                       else (x for x, _ in read_batches(train, num_workers=cfg.num_workers,
                                                        on_error=train_b.on_error)))
    weights = None
    # the labels read with the images: a dataset without a `targets` attribute (a torch Subset,
    # any dataset of dicts, as documented) failed as a bare AttributeError
    labels = train_b.y.cpu().numpy() if train_b.y is not None else getattr(train, "targets", None)
    if task == "classification":
        n_classes = _num_outputs(model, train_b.x[:1] if train_b.x is not None else
                                 _first_image(train, train_b.on_error).float()[None].to(device))
        for part, ys in (("training", labels), ("validation", val_b.y.cpu().numpy() if val_b and val_b.y is not None
                                                 else None)):
            _check_labels(ys, n_classes, part)
    if task == "classification" and cfg.class_weights != "none":
        if labels is None:
            raise InputError(f"class_weights={cfg.class_weights!r} needs the training labels: this data set is streamed "
                             "(larger than max_materialize_mb) and has no `targets` attribute listing them")
        labels = np.asarray(labels)
        counts = np.bincount(labels, minlength=n_classes)
        if not counts.all():
            # a weight for no image: the loss refused the shorter weight vector (a bare RuntimeError),
            # or with the class named in `classes` it weighed that class's validation images n/K each
            raise InputError(f"class_weights={cfg.class_weights!r}: no training image of class {int(np.argmin(counts))} "
                             f"(the model scores {n_classes} classes): each class needs one to be weighed")
        weights = torch.tensor(_class_weights(counts, cfg.class_weights), dtype=torch.float32, device=device)
    loss_fn = _loss_fn(task, weights, cfg.label_smoothing)
    # validated on the plain cross-entropy: label smoothing regularises the training only. With it,
    # the validation loss of a model was not its log-loss (0.61 for a model of log-loss 0.20 at
    # smoothing 0.2), runs with other smoothing could not be compared, and the best epoch was
    # picked on a loss that penalises confident right answers
    val_loss_fn = _loss_fn(task, weights)
    opt, sched = _make_optimizer(model, cfg, len(train_b))
    trained = [p for g in opt.param_groups for p in g["params"]]
    aug = BatchAugment(tuple(cfg.augment), cfg.translate, cfg.degrees, cfg.scale, cfg.noise)
    result = TrainResult(model=model)
    start_epoch, bad_epochs = 1, 0
    best_state = mid = None  # mid: where in its epoch a state saved at an interruption goes on
    if resume:
        state = load_training_state(out) if out and Path(out).exists() else None
        if state is None:
            raise InputError(f"{out}: nothing to resume (no training state in that folder)")
        _check_same_run(out, model, cfg, checkpoint_meta or {})
        model.load_state_dict(with_optional_state(model, state["model"]))
        opt.load_state_dict(state["optimizer"])
        _state_like_params(opt)
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        result.history, result.best_epoch, result.best_val = state["history"], state["best_epoch"], state["best_val"]
        best_state, bad_epochs = state["best_model"], state["bad_epochs"]
        if best_state is not None:
            best_state = with_optional_state(model, best_state)
        start_epoch = state["epoch"] + 1
        mid = _in_epoch(state, out, len(train_b), dctx is not None)
        if cfg.early_stopping and bad_epochs >= cfg.early_stopping:
            # the run had stopped early: going on trained epochs an uninterrupted run never did
            # (and replaced its checkpoint with them)
            start_epoch = cfg.epochs + 1
    elif out is not None and Path(out).exists() and not overwrite:
        raise InputError(f"{out}: already exists (use --overwrite to replace it, or --resume to go on)")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    seen = 0
    bar = tqdm(range(start_epoch, cfg.epochs + 1), desc="training",
               disable=not cfg.progress or not _dist.is_main_process(),
               initial=start_epoch - 1, total=cfg.epochs)
    # the epoch whose resumable state is in `out` (0: none): what an interruption leaves to go on from
    saved = start_epoch - 1 if out is not None else 0
    writing = saved  # the epoch whose checkpoint is being written (`out` holds it or `saved`'s)
    # an interruption inside an epoch saves the batches done (one process only: a rank's share is not resumed)
    so_far = _EpochSoFar(model, device, on=out is not None and dctx is None)
    tot, correct, n = 0.0, 0, 0

    def save_mid(at: dict) -> None:
        """Write the state of the last whole epoch with the batches done of the next (``at``)."""
        _save_epoch(out, model, best_state, opt, sched, result, saved, bad_epochs, cfg, task, checkpoint_meta or {},
                    overwrite=overwrite or resume or saved > 0 or so_far.mid_at is not None, finished=False, mid=at)

    try:
        for epoch in bar:
            # per-epoch seeding: the data order, dropout and augmentation of epoch e depend only on
            # (seed, e), so a resumed run replays exactly what an uninterrupted one would have done
            # (mod 2**64, torch's seed range: a --seed above ~1.8e14 overflowed it, "ValueError: Overflow when
            # unpacking long long", exit 1; seeds below are unchanged, so are their runs)
            epoch_seed = (cfg.seed * 100_003 + epoch) % 2**64
            seed_torch(epoch_seed, device)
            gen = torch.Generator().manual_seed(epoch_seed)
            if dctx is not None:  # dropout/augmentation draws differ per rank; the data order (gen) does not
                seed_torch(_dist.rank_seed(epoch_seed) % 2**64, device)
            model.train()
            start, tot, correct, n = 0, 0.0, 0, 0
            # the rate this epoch trained at: read after it, it was the next epoch's (a step schedule
            # logged 1e-4 for an epoch run at 1e-3, a cosine 0 for its last one)
            lr = opt.param_groups[0]["lr"]
            te = time.perf_counter()
            if mid is not None:  # resumed inside this epoch: its batches done are skipped, not read
                start, (tot, correct, n), lr, te = _go_on_in_epoch(mid, device)
                so_far.mid_at = (epoch, start)  # `out` holds this state till a newer one is written
                seen, mid = -n, None  # samples/s counts this call's samples only
            so_far.begin(epoch, start, lr, te)
            for x, y in train_b.epoch(gen, start):
                # the target of a reconstruction follows the geometric augmentations; noise and speckle
                # go on the input only (on both, the auto-encoder learnt to reproduce the noise)
                x = aug.geometric(x)
                inp = aug.corrupt(x)
                if task != "classification":
                    inp = _fill_gaps(inp, model)
                if cfg.channels_last:
                    inp = inp.contiguous(memory_format=torch.channels_last)
                with _autocast(device, cfg):
                    try:
                        out_t = net(inp)
                    except ValueError as exc:
                        if "more than 1 value per channel" not in str(exc):
                            raise
                        # one sample left for batch norm over a 1 x 1 map (batch_size=1, or one image)
                        raise InputError(f"a training batch of {len(x)} image of {tuple(x.shape[-2:])} pixels: "
                                         "batch norm needs more than one value per channel (use batch_size >= 2 "
                                         "and more than one training image, or larger images)") from None
                    loss = loss_fn(out_t.float(), x, y)
                total = loss + _penalty(model, cfg.l1, cfg.l2)
                opt.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip:
                    # the gradients as they are: bf16 autocast needs no loss scaling (no GradScaler to
                    # unscale first); under DDP they are all-reduced already, the same norm on every rank
                    torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
                so_far.updating = True  # till batch_done the weights are half-updated: not saved
                opt.step()
                if sched is not None and cfg.scheduler != "plateau":
                    sched.step()
                # summed on the device: a float()/int() here would wait for the GPU at every step
                tot += loss.detach() * len(x)
                if task == "classification":
                    correct += (out_t.argmax(1) == y).sum()
                n += len(x)
                so_far.batch_done(train_b.at + 1)
                if so_far.due():  # a long epoch: its batches done, every MID_EPOCH_STATE_SECONDS
                    at = so_far.state(tot, correct, n)
                    if math.isfinite(at["running"]["tot"]):  # a diverged state is not saved over a good one
                        save_mid(at)
                        so_far.saved()
                    else:
                        so_far.last = time.perf_counter()  # not again at every batch (a wait for the GPU each)
            tot, correct = float(tot), int(correct)
            tot, correct, n = _dist.all_reduce_sum(tot, correct, n)  # identical logs and choices on all ranks
            correct, n = int(correct), int(n)
            seen += n
            row = {"epoch": epoch, "train_loss": tot / n, "lr": lr,
                   "seconds": time.perf_counter() - te}
            if task == "classification":
                row["train_accuracy"] = correct / n
            if val_b is not None:
                _dist.broadcast_buffers(model)
                ev = _run_eval(model, val_b, val_loss_fn, device, cfg, task == "classification", weights)
                row.update({f"val_{k}": v for k, v in ev.items()})
            so_far.end()
            bad = [k for k in ("train_loss", "val_loss") if k in row and not math.isfinite(row[k])]
            if bad:
                # else the later epochs trained on NaN and the "best" model's predictions were argmax(NaN)
                kept = f"; {out} holds epoch {epoch - 1}" if out is not None and epoch > 1 else ""
                raise OceanDLError(f"training diverged: {bad[0]} is not finite in epoch {epoch} (lower the learning "
                                   f"rate, now {cfg.lr:g}, or train in fp32){kept}")
            result.history.append(row)
            score = row.get("val_loss", row["train_loss"])
            if sched is not None and cfg.scheduler == "plateau":
                sched.step(score)
            if score < result.best_val:
                result.best_val, result.best_epoch, bad_epochs = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k.startswith(("train_", "val_"))})
            if log and _dist.is_main_process():
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            stop = cfg.early_stopping and bad_epochs >= cfg.early_stopping
            if out is not None and _dist.is_main_process():
                writing = epoch
                _save_epoch(out, model, best_state, opt, sched, result, epoch, bad_epochs, cfg, task,
                            checkpoint_meta or {}, overwrite=overwrite or resume or epoch > 1 or so_far.mid_at is not None,
                            finished=bool(stop) or epoch >= cfg.epochs)
                so_far.saved()
                # recorded before the log and the figure (seconds): an interruption while they are
                # written has this epoch's state in `out`, and says so
                saved = epoch
                _write_epoch_log(out, result.history, epoch)
            _dist.barrier()  # the other ranks wait for rank 0's checkpoint
            if stop or (stop_after_epoch is not None and epoch >= stop_after_epoch):
                break
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: save the epoch so far, say what a --resume goes on from
        if out is not None and _dist.is_main_process():
            saved = _epochs_in(out, saved, writing)
            text, exc.resumable = _interrupted(out, cfg, saved, so_far, len(train_b), (tot, correct, n), save_mid)
            exc.args = (text,)
        raise
    result.seconds = time.perf_counter() - t0
    result.samples_per_s = seen / max(result.seconds, 1e-9)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


#: settings a resumed run may change: they do not change its numbers
_FREE_ON_RESUME = ("progress", "num_workers", "device", "max_materialize_mb", "compile")
#: settings added to TrainConfig later, with the value a run saved before (whose config lacks
#: them) trained with: a resume is compared with that value
_ADDED_SINCE = {"decay_biases": True, "grad_clip": 0.0, "warmup_epochs": 0.0}
#: the same for the checkpoint's other settings: how the split was drawn
_META_ADDED_SINCE = {"split_by": "order"}


def _check_same_run(out: str | Path, model: nn.Module, cfg: TrainConfig, meta: dict) -> None:
    """Refuse to resume the run in ``out`` with other settings than those it was started with.

    The saved weights, optimizer, scheduler and data order only continue that run: another model
    failed as a bare state-dict error (exit 1), and other epochs or batch size silently bent the
    saved learning-rate schedule (a cosine over the old length, climbing again past its end).
    """
    from .checkpoint import read_config

    saved = read_config(out)
    meta = dict(meta)
    new = {"model": meta.pop("model_name", type(model).__name__.lower()), **(meta.pop("extra", None) or {}), **meta}
    new["training"] = {k: v for k, v in asdict(cfg).items() if k not in _FREE_ON_RESUME}
    new = json.loads(json.dumps(new, default=str))  # tuples as lists, as the saved config has them
    old_training = saved.get("training") or {}
    pairs = [(k, v, saved[k]) for k, v in new.items() if k != "training" and k in saved]
    # a run started before the split was keyed on file paths drew it by order: resumed with the
    # keyed one, its earlier training images would be mixed into the test set
    pairs += [(k, new[k], v) for k, v in _META_ADDED_SINCE.items() if k in new and k not in saved]
    pairs += [(k, v, old_training[k]) for k, v in new["training"].items() if k in old_training]
    if old_training:
        added = dict(_ADDED_SINCE)
        if not cfg.weight_decay:  # without decay, what it applies to does not matter
            added.pop("decay_biases")
        pairs += [(k, new["training"][k], v) for k, v in added.items() if k not in old_training]
    for key, value, before in pairs:
        if value != before:
            said = _RESUME_SAYS.get(key, "")
            raise InputError(f"{out}: --resume with {key}={value!r}{said}, but the run in that folder was started "
                             f"with {key}={before!r} (resume with the same options, or start over with --overwrite)")


#: what a setting the resume check names is, where its name is not the option's: "model_args=[1, 6]"
#: was a changed number of classes (a class folder added), "amp=False" was --precision fp32
_RESUME_SAYS = {"model_args": " (image channels, classes: the data's classes changed?)",
                "amp": " (--precision)", "amp_cpu": " (--precision)", "fused": " (--[no-]fused-optimizer)",
                "channels_last": " (--[no-]channels-last)",
                "data": " (the images read, by their paths below --data: another --data, or files added, removed "
                        "or unreadable since)"}


def _save_epoch(out, model, best_state, opt, sched, result: TrainResult, epoch, bad_epochs, cfg, task, meta,
                overwrite, finished: bool = True, mid: dict | None = None):
    """Write the checkpoint of ``epoch`` (the best weights so far) with the state that resumes the run.

    ``mid``: saved at an interruption inside epoch ``epoch + 1``, the model's weights are those of
    the batches done, and ``mid`` says where in that epoch it stands (:meth:`_EpochSoFar.state`);
    ``epochs_done`` stays ``epoch``. The log and curves are :func:`_write_epoch_log`'s, of the
    whole epochs.
    """
    out = Path(out)
    live = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    meta = dict(meta)
    meta.setdefault("model_name", type(model).__name__.lower())
    meta.setdefault("model_options", {})
    extra = dict(meta.pop("extra", {}) or {})
    extra.update({"training": asdict(cfg), "precision": training_precision(next(model.parameters()).device, cfg),
                  "best_epoch": result.best_epoch, "epochs_done": epoch,
                  # False in the checkpoint an interrupted run leaves for --resume: classify warns
                  "finished": finished})
    # the resumable state goes into the same atomic folder write: a kill can never leave a
    # checkpoint without the state that resumes it
    state = flatten_state({
        "model": live, "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None,
        "history": result.history, "best_epoch": result.best_epoch, "best_val": result.best_val,
        "best_model": best_state, "bad_epochs": bad_epochs, "epoch": epoch, **(mid or {}),
    })
    save_checkpoint(out, model, task=task, overwrite=overwrite, extra=extra, training_state=state, **meta)
    model.load_state_dict(live)


def _write_epoch_log(out, history: list[dict], epoch: int) -> None:
    """``log.csv`` and ``curves.png`` of the whole epochs in ``out`` (after :func:`_save_epoch`)."""
    out = Path(out)
    try:
        with open(out / "log.csv", "w", newline="") as fh:
            keys = list(dict.fromkeys(k for h in history for k in h))
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
    except OSError as exc:  # a full disk: one line, as for the checkpoint itself
        raise InputError(f"{out / 'log.csv'}: cannot write ({exc.strerror or exc}); the checkpoint of epoch "
                         f"{epoch} is written") from exc
    try:
        from ..plotting import plot_history

        plot_history(history, out / "curves.png")
    except Exception:  # noqa: BLE001 - a figure must never kill a training run
        pass


#: bytes the largest activation of one CPU inference batch is kept under by :func:`inference_batch_size`
CPU_ACTIVATION_BUDGET = 8 << 20


def _largest_activation(model: nn.Module, image_shape: Sequence[int], device: torch.device) -> int:
    """Bytes of the largest tensor (input or any module's output) of ``model`` on one image."""
    largest = [0]

    def size(t) -> int:
        if isinstance(t, torch.Tensor):
            return t.numel() * t.element_size()
        if isinstance(t, (tuple, list)):
            return max((size(v) for v in t), default=0)
        if isinstance(t, dict):
            return max((size(v) for v in t.values()), default=0)
        return 0

    hooks = [m.register_forward_hook(lambda m, i, o: largest.__setitem__(0, max(largest[0], size(o))))
             for m in model.modules()]
    x = torch.zeros((1, *image_shape), device=device)
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return max(largest[0], size(x))


@torch.no_grad()
def inference_batch_size(model: nn.Module, image_shape: Sequence[int], device: str | torch.device = "auto",
                         default: int = 256) -> int:
    """The images per forward pass of :func:`predict` when none is given.

    On the CPU, as many as keep the model's largest activation (measured by one forward pass of
    one image of ``image_shape`` (C, H, W)) under :data:`CPU_ACTIVATION_BUDGET` (8 MB), between 1
    and ``default``; on other devices ``default``. A CPU tensor above glibc's mmap threshold (32 MB
    at most, also with :func:`~oceandl.utils.keep_freed_memory`) is fresh memory from the kernel,
    faulted in and zeroed at every batch, and one that outgrows the caches is read back from RAM:
    on one thread, batches of 64-128 classified 128 x 128 images 2.4x (course CNN) and 2.2-3.0x
    (ResNet) slower than batches of 4, and 256 x 256 images 1.8-2.6x slower than one at a time.
    The choice for those models: 16, 4 and 1 images of 64, 128 and 256 px.
    Batch norm in eval mode uses its running statistics, so an image's prediction does not depend
    on the batch size beyond float rounding.
    """
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if dev.type != "cpu":
        return int(default)
    per_image = _largest_activation(model, image_shape, dev)
    return int(max(1, min(int(default), CPU_ACTIVATION_BUDGET // max(per_image, 1))))


@torch.no_grad()
def predict(model: nn.Module, data: Dataset | torch.Tensor | np.ndarray, batch_size: int | None = None,
            device: str = "auto", tta: bool = False, progress: bool = False) -> np.ndarray:
    """Class probabilities (N, num_classes) for images (N, C, H, W) (a tensor or NumPy array) or a
    dataset of dicts; for a reconstruction model (``model.task == "reconstruction"``: the
    auto-encoders, U-Net, ...) its output (N, C_out, H, W), e.g. the reconstructed images
    (NaN input pixels are fed as 0, or as the model's mean where it has one, as :func:`fit` does).

    ``batch_size``: images per forward pass; ``None`` chooses it by :func:`inference_batch_size`
    (on the CPU by the size of the model's activations, at most 512; on a GPU 512).

    ``tta=True`` averages the probabilities over the 8 flips/90-degree rotations of square images;
    non-square images get the 4 views that keep their shape (identity, flips, 180-degree rotation).
    A reconstruction is turned back to the input's orientation before the views are averaged.

    Raises
    ------
    InputError
        ``batch_size`` not a positive integer, or ``data`` of another type.
    """
    from tqdm.auto import tqdm

    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise InputError(f"batch_size={batch_size!r}: must be a positive integer or None")
    dev = resolve_device(device)
    keep_freed_memory(dev)
    if isinstance(data, np.ndarray):  # was read as a dataset: a bare IndexError from materialize
        if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
            raise InputError(f"predict: images of dtype {data.dtype}; expected numbers (N, C, H, W)")
        data = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    elif not isinstance(data, torch.Tensor) and not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise InputError(f"predict: cannot classify a {type(data).__name__}; pass images (N, C, H, W) or a dataset")
    x = data if isinstance(data, torch.Tensor) else materialize(data)[0]
    model = model.to(dev).eval()
    # an auto-encoder's output went through the softmax over its channels: a 1-channel
    # reconstruction came back as ones everywhere
    reconstruct = getattr(model, "task", "classification") == "reconstruction"
    if batch_size is None:
        batch_size = inference_batch_size(model, x.shape[1:], dev, default=512) if len(x) else 1
    # a network in channels-last layout (as fit leaves it) gets its images in that layout too
    nhwc = x.ndim == 4 and any(p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last)
                               and not p.is_contiguous() for p in model.parameters())
    outs = []
    for i in tqdm(range(0, len(x), batch_size), desc="reconstructing" if reconstruct else "classifying",
                  disable=not progress, leave=False):
        xb = x[i:i + batch_size].to(dev).float()
        if reconstruct:  # gaps are fed as in training (0, or the model's mean)
            xb = _fill_gaps(xb, model)
        views = [(False, 0)]
        if tta:
            # a 90-degree turn of an H x W image is W x H: a fixed-size model (mlp) read it as
            # scrambled pixels, so non-square images keep to the shape-preserving views
            turns = range(4) if xb.shape[-2] == xb.shape[-1] else (0, 2)
            views = [(flip, k) for flip in (False, True) for k in turns]
        p = 0
        for flip, k in views:
            view = torch.rot90(xb.flip(-1) if flip else xb, k, (-2, -1))  # a copy, NCHW, also for k = 0
            out = model(view.contiguous(memory_format=torch.channels_last) if nhwc else view).float()
            if reconstruct:  # back to the input's orientation
                out = torch.rot90(out, -k, (-2, -1))
                p = p + (out.flip(-1) if flip else out)
            else:
                p = p + torch.softmax(out, dim=1)
        outs.append((p / len(views)).cpu())
    if not outs:
        return np.zeros((0, 0))
    return torch.cat(outs).numpy()


def evaluate_classifier(model: nn.Module, data: Dataset, classes: Sequence[str] | None = None,
                        batch_size: int | None = None, device: str = "auto", tta: bool = False) -> dict:
    """Test-set metrics (see :func:`oceandl.metrics.classification_metrics`) of a classifier."""
    from ..metrics import classification_metrics

    if getattr(model, "task", "classification") == "reconstruction":
        raise InputError(f"evaluate_classifier: {type(model).__name__} is a reconstruction model, not a classifier")
    x, y = materialize(data)
    probs = predict(model, x, batch_size=batch_size, device=device, tta=tta)
    return classification_metrics(y.numpy(), probs, classes or getattr(data, "classes", None))
