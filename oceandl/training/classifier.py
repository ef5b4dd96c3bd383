"""Train and evaluate a classifier on any labelled image dataset, end to end (the nine steps)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError, warn
from ..models import count_parameters, get_model, model_task
from ..models import model_options as model_option_names
from ..preprocess import check_spec, preprocess_batch
from ..utils import seed_torch, torch_rng_scope
from .augment import BatchAugment
from .engine import (TensorData, TrainConfig, dataset_on_error, evaluate_classifier, fit, key_uniforms, materialize,
                     split_indices)

__all__ = ["train_classifier", "check_settings", "prepare_tensors", "compare_classifiers", "subsample_per_class",
           "split_fractions_ok", "init_checkpoint_config", "INIT_FREE_OPTIONS"]

#: model options a fine-tuned network may take other than its init checkpoint's: they choose what
#: is trained, not the network's shape (the ImageNet weights options are dropped: the checkpoint's
#: weights replace them)
INIT_FREE_OPTIONS = ("freeze",)


def init_checkpoint_config(path, what: str = "init") -> dict:
    """The config of classifier checkpoint ``path`` to fine-tune from (``init``), validated.

    Parameters
    ----------
    path : str or path
        The checkpoint folder (``oceandl train classifier -o``).
    what : str
        How the messages name it (``"--init"`` on the command line).

    Returns
    -------
    dict
        Its ``config.json``, read without loading the weights.

    Raises
    ------
    CheckpointError
        ``path`` is not a checkpoint (missing, corrupt, a pickle) or not a classifier's (a gap
        filler's network, a saved climatology / eof / dineof fit, an auto-encoder); the message
        begins with ``what`` (the option's name).
    """
    from ..errors import CheckpointError
    from .checkpoint import read_config

    try:
        config = read_config(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{what} {exc}") from None
    task = config.get("task")
    if task != "classification":
        kind = {"interpolation": "a gap filler's network (train interpolator)",
                "interpolation-fitted": "a saved gap-filling fit (train interpolator --method climatology/eof/dineof)",
                "reconstruction": "an auto-encoder"}.get(task, f"a checkpoint of task {task!r}")
        raise CheckpointError(f"{what} {path}: {kind}, not a classifier checkpoint (train classifier -o)")
    if not config.get("classes") or not config.get("model_args"):
        raise CheckpointError(f"{what} {path}: a classifier checkpoint without its classes or input channels "
                              "(config.json edited?)")
    return config


def _architecture(model: str, options: dict) -> dict:
    """``options`` less those that do not change the network's weights' shapes."""
    from ..models import MODELS

    free = set(INIT_FREE_OPTIONS) | set(getattr(MODELS.get(model), "init_options", ()))
    return {k: v for k, v in options.items() if k not in free}


def _head_keys(model: str, in_channels: int, n_classes: int, options: dict) -> dict[str, int]:
    """The weights of ``model``'s classifier head: name -> the dimension along the classes, found as
    those whose shape follows the number of classes (built on the meta device: no memory)."""
    def shapes(n):
        try:
            with torch.device("meta"):
                return {k: v.shape for k, v in get_model(model, in_channels, n, **options).state_dict().items()}
        except Exception:  # noqa: BLE001 - a model that cannot be built there is built for real
            return {k: v.shape for k, v in get_model(model, in_channels, n, **options).state_dict().items()}

    a, b = shapes(n_classes), shapes(n_classes + 1)
    out = {}
    for k, sa in a.items():
        if sa != b.get(k):
            dims = [d for d, (x, y) in enumerate(zip(sa, b[k])) if x != y]
            out[k] = dims[0]
    return out


def _start_from(net: torch.nn.Module, init, model: str, options: dict, classes: list[str]) -> dict:
    """Load init checkpoint ``init`` into ``net`` (built for ``classes``): every weight when its classes
    are these (by name, any order: the head's rows reordered), else the backbone only (the head kept
    as initialised, said). Returns the record kept in the checkpoint (``init``)."""
    from .checkpoint import load_checkpoint, weights_sha256, with_optional_state

    old, config = load_checkpoint(init, expect_task="classification")
    theirs = old.state_dict()
    old_classes = [str(c) for c in config["classes"]]
    free = {k: v for k, v in options.items() if k in INIT_FREE_OPTIONS}
    head = _head_keys(model, int(config["model_args"][0]), len(old_classes),
                      {**_architecture(model, dict(config.get("model_options") or {})), **free})
    same = sorted(old_classes) == sorted(map(str, classes))
    state = net.state_dict()
    for k, v in theirs.items():
        if k not in state:
            continue
        if k not in head:
            state[k] = v
        elif same:  # row i of the new head is the old head's row of class i
            order = torch.tensor([old_classes.index(str(c)) for c in classes])
            state[k] = v.index_select(head[k], order)
    net.load_state_dict(with_optional_state(net, state))
    # absolute: `--init ../sar_resnet` named, in the checkpoint, a folder relative to wherever the run was
    record = {"checkpoint": str(Path(init).resolve()), "sha256": weights_sha256(init), "classes": old_classes,
              "head": "loaded" if same else "re-initialised"}
    if not same:
        new = [c for c in classes if c not in old_classes]
        dropped = [c for c in old_classes if c not in classes]
        warn(f"init {init}: other classes (new: {', '.join(map(str, new)) or 'none'}; dropped: "
             f"{', '.join(dropped) or 'none'}): its backbone is loaded, the classifier head re-initialised for "
             f"{len(classes)} classes")
    return record



def prepare_tensors(dataset: Dataset, preprocessing: dict | None, progress: bool = False,
                    indices: Sequence[int] | None = None, num_workers: int | None = None,
                    on_error: str | None = None, stats: dict | None = None) -> TensorData:
    """Read a dataset once (only ``indices`` when given; in parallel worker processes when that
    pays, see :func:`~oceandl.training.materialize`), apply the preprocessing spec (``None``: keep
    the pixels as read), return a :class:`TensorData` with the dataset's ``classes``.

    ``on_error`` (``None``: the dataset's own, else ``"raise"``) and ``stats`` are
    :func:`~oceandl.training.materialize`'s: with ``"skip"`` a file that passed the header check
    and fails to decode is left out, with a warning, and listed in ``stats["failed"]``.

    The dataset's ``keys`` (an image reader's file paths below its folder) go with the images
    read, so that the split made of them is keyed on the files (see :func:`split_indices`)."""
    on_error = dataset_on_error(dataset) if on_error is None else on_error
    stats = {} if stats is None else stats
    x, y = materialize(dataset, indices, progress=progress, desc="reading images", num_workers=num_workers,
                       on_error=on_error, stats=stats)
    keys = getattr(dataset, "keys", None)
    if keys is not None and not callable(keys):
        read = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
        failed = stats.get("failed", {})
        keys = [keys[int(i)] for i in read if int(i) not in failed]
    else:
        keys = None
    return TensorData(preprocess_batch(x, preprocessing), y, getattr(dataset, "classes", None), keys=keys)


def subsample_per_class(targets: Sequence[int], max_per_class: int, seed: int = 0,
                        keys: Sequence[str] | None = None) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_class`` samples of each label (seeded pick; 0 = all).

    ``keys`` (e.g. a reader's file paths below its folder): each class keeps its samples of the
    smallest hash of ``(seed, "pick", key)`` (:func:`~oceandl.training.engine.key_uniforms`), so a
    file added to the folder or unreadable changes the pick by at most itself and the one it
    displaces; picked by a shuffle of the positions, it changed which images of its class were
    kept. The hash is not the keyed split's (:func:`~oceandl.training.split_indices`), so the
    images kept fall into training, validation and test by the split's fractions."""
    targets = np.asarray(targets)
    if max_per_class <= 0:
        return np.arange(len(targets))
    if keys is not None:
        # not the split's hash of (seed, key): the images of the smallest split hashes all fall in
        # its training band (below 0.7), so 20 kept of 200 per class split 18/1/1, not 14/3/3
        u = key_uniforms([f"pick\0{k}" for k in keys], seed)
        keep = [g[np.argsort(u[g], kind="stable")[:max_per_class]]
                for g in (np.flatnonzero(targets == c) for c in np.unique(targets))]
        return np.sort(np.concatenate(keep))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(targets == c))[:max_per_class] for c in np.unique(targets)]
    return np.sort(np.concatenate(keep))


def split_fractions_ok(split: Sequence[float]) -> bool:
    """Whether ``split`` is three finite fractions (training, validation, test), each above 0,
    summing to 1: what :func:`train_classifier` can split a data set by."""
    fr = np.asarray(split, dtype=float)
    return bool(fr.shape == (3,) and np.isfinite(fr).all() and (fr > 0).all() and np.isclose(fr.sum(), 1.0))


def check_settings(model: str, config: TrainConfig = TrainConfig(), *, split: Sequence[float] = (0.7, 0.15, 0.15),
                   preprocessing: dict | None = None, model_options: dict | None = None) -> None:
    """Refuse settings :func:`train_classifier` cannot run with, before any image is read.

    The model name and options, the split, the preprocessing spec and the augmentation names:
    `train classifier --augment bogus` (or `--set bogus=1`) was refused only after the whole data
    set was read (3.3 s for 400 vignettes, minutes for a real archive).

    Raises
    ------
    InputError
        Naming the first setting that cannot be used.
    """
    from ..models import MODELS

    classifiers = ", ".join(sorted(k for k in MODELS if model_task(k) == "classification"))
    if model not in MODELS:  # the registry's list named the gap fillers' networks (unet, conv_ae...) too
        raise InputError(f"unknown model {model!r}; classifiers: {classifiers}")
    if model_task(model) != "classification":
        raise InputError(f"model {model!r} is not a classifier; classifiers: {classifiers}")
    bad = [k for k in (model_options or {}) if k not in model_option_names(model)]
    if bad:  # get_model's own words; it runs once the images are read
        raise InputError(f"model {model!r} has no option {bad[0]!r}; options: "
                         f"{', '.join(model_option_names(model)) or 'none'}")
    if len(split) != 3:  # two fractions failed as a bare ValueError (unpacking), four as "an empty part"
        raise InputError(f"split {tuple(split)}: expected three fractions (train, validation, test)")
    # else refused only once every image was read (a zero part as "leaves an empty part")
    if not split_fractions_ok(split):
        raise InputError(f"split {tuple(split)}: the training, validation and test fractions must each be "
                         "above 0 and sum to 1")
    BatchAugment(tuple(config.augment))  # the names: else checked when the first batch was drawn
    spec_in = check_spec(preprocessing)
    if "speckle" in config.augment and (spec_in["intensity"], spec_in["normalize"]) != ("linear", "none"):
        # the augmentation runs on the preprocessed tensors: gamma speckle multiplied zero-mean dB (or
        # normalised) values, which rescales the contrast about the image mean: no speckle at all
        raise InputError(f"augmentation 'speckle' multiplies linear intensities, but the images are preprocessed "
                         f"(intensity={spec_in['intensity']}, normalize={spec_in['normalize']}): use intensity "
                         f"linear with normalize none, or 'noise' (additive, as speckle is in dB)")


def train_classifier(dataset: Dataset, model: str, out: str | Path | None, config: TrainConfig = TrainConfig(),
                     *, split: Sequence[float] = (0.7, 0.15, 0.15), preprocessing: dict | None = None,
                     model_options: dict | None = None, classes: Sequence[str] | None = None,
                     resume: bool = False, overwrite: bool = False, figures: str | Path | None = None,
                     figure_tag: str = "", tta: bool = False, log=None, on_error: str | None = None,
                     init: str | Path | None = None) -> dict:
    """Split ``dataset`` (seeded, stratified), train ``model`` with the best weights on validation,
    test once, and write the checkpoint folder ``out`` (metrics and preprocessing in its config).

    The split of a dataset of files (the image readers, and :class:`TensorData` with ``keys``) is
    keyed on each file's path below the data folder and the seed (:func:`split_indices` with
    ``keys``): a file is in the same part whatever other files are added to the folder, removed,
    or left out as unreadable, so runs on successive versions of an archive are comparable; the
    part sizes follow the fractions on average, not exactly. Other datasets are split by a seeded
    shuffle of each class; there an image that fails to decode keeps its place in the split (it
    is then taken out of its part). The checkpoint records which (``split_by``: ``path`` or
    ``order``), and ``resume`` refuses a run split the other way.

    Classes with fewer than 3 images (one each for training, validation and test) are left out of
    the model, with a warning: those without any (TenGeoP keeps all ten on a subset) and those of
    1 or 2 images (the rarest taxa of a plankton archive), which are named with their counts and
    recorded in the checkpoint's ``config.json`` (``left_out_classes``: name -> images), as are
    those whose images are all unreadable (with 0: a class folder of corrupt files is no absent
    class). At least 2 classes must remain.

    ``on_error`` (``None``: the dataset's own, ``"skip"`` for the image readers; ``"raise"`` for
    a dataset without one): an image that passed the reader's header check but fails to decode
    (a truncated JPEG, a PNG with a corrupt IDAT chunk) is left out with one warning naming it
    (``"skip"``) or stops the run (``"raise"``). The files left
    out, at the header check or when decoded, are listed with their reasons in the checkpoint's
    ``config.json`` (``unreadable_images``: path -> reason) and in the result.

    ``figures``: a folder for the test confusion matrices (counts and row-normalised), the reliability
    diagram and the training curves, named ``confusion[_TAG].png``, ``confusion_normalized[_TAG].png``,
    ``reliability[_TAG].png`` and ``curves[_TAG].png`` with ``figure_tag``.

    ``init``: a classifier checkpoint folder to fine-tune (``oceandl train classifier -o``). Its
    network is trained on: ``model``, ``model_options`` (but ``freeze``) and ``preprocessing``
    must be its own (refused otherwise, naming the first that differs), and so must the images'
    channels. Of the same classes (by name, any order) every weight is loaded, the head's rows in
    the new class order; of other classes the backbone is loaded and the head initialised for them
    (a warning names the classes new and dropped). The checkpoint records it (``init``: its absolute path,
    weights' sha256, its classes, ``head`` loaded or re-initialised). Not with ``resume`` (the run
    goes on from its own saved weights and keeps its record).

    Returns
    -------
    dict with ``test`` (the classification metrics), ``history``, ``params``, ``seconds``,
    ``samples_per_s``, ``split_sizes``, ``split_indices`` (the dataset indices of the training,
    validation and test images), ``unreadable_images`` and ``model`` (the trained module).
    """
    check_settings(model, config, split=split, preprocessing=preprocessing, model_options=model_options)
    from .distributed import is_main_process

    start = None  # the init checkpoint's config, checked before any image is read
    if init is not None:
        if resume:
            raise InputError(f"--resume with --init: the run goes on from the weights saved in {out} (the init "
                             "checkpoint it was started from is recorded there): drop --init")
        start = init_checkpoint_config(init)
        _check_init(init, start, model, model_options or {}, preprocessing or {})
        # what is not given is the checkpoint's (its channels are the images' own: checked once read)
        preprocessing = {**{k: v for k, v in (start.get("preprocessing") or {}).items() if k != "channels"},
                         **(preprocessing or {})}
    if out is not None and overwrite and not resume and Path(out).exists() and is_main_process():
        return _replacing(out, figures, lambda stage, figs: train_classifier(
            dataset, model, stage, config, split=split, preprocessing=preprocessing, model_options=model_options,
            classes=classes, figures=figs, figure_tag=figure_tag, tta=tta, log=log, on_error=on_error, init=init))
    classes = list(classes or getattr(dataset, "classes", None) or [])
    read: dict = {}
    data = prepare_tensors(dataset, preprocessing, progress=config.progress, num_workers=config.num_workers,
                           on_error=on_error, stats=read)
    # the split is drawn over every image the dataset lists, the ones that failed to decode too (by
    # the labels it knows without decoding), and those are then taken out of their parts: drawn
    # over the readable ones only, one bad file moved other images between training and test
    failed = read.get("failed", {})
    rows = np.arange(len(data))  # each slot of the split: its row of `data`, -1 for a failed image
    slot_y = data.targets
    # files (an image reader's): the split is keyed on each file's path below the folder, so a file
    # added, removed or unreadable, at the header check or when decoded, moves no other one; drawn
    # over the readable files' order it did (an existing file turned unreadable at the header check
    # moved 4 of 29 others, a new file up to 13 of 30)
    slot_keys = data.keys
    known = getattr(dataset, "targets", None)
    if failed and slot_keys is None and known is not None and len(known) == len(data) + len(failed):
        rows = np.full(len(known), -1)
        rows[np.setdiff1d(np.arange(len(known)), list(failed))] = np.arange(len(data))
        slot_y = np.asarray(known, dtype=np.int64).copy()
        slot_y[rows >= 0] = data.targets
    row_index = np.setdiff1d(np.arange(len(data) + len(failed)), list(failed))  # each row's dataset index
    unreadable = _unreadable(dataset, failed)
    if not classes:
        classes = [str(i) for i in range(int(data.y.max()) + 1)]
    counts = np.bincount(data.targets, minlength=len(classes))
    left_out: dict[str, int] = {}
    if len(counts) == len(classes) and (counts < 3).any():
        # TenGeoP (and a fixed class list) keep absent classes so labels mean the same on every
        # subset, but nothing can be learnt of them: a subset of the ten failed as "class 'Rain Cells'
        # has 0 images: at least 3 are needed". A class of 1 or 2 images (WHOI-Plankton has many)
        # cannot be split into training, validation and test either: the whole run failed on the
        # first such class, one class per attempt. The model is trained on the classes that can
        # be split, as the plankton and SAR benchmarks do; those left out are named and recorded.
        present = np.flatnonzero(counts >= 3)
        # a class folder whose files are all unreadable was 'no images', as a class without a folder
        # (TenGeoP's ten on a subset), and was not among the left-out classes of the checkpoint
        unread = np.bincount([lab for lab in _unreadable_labels(dataset, failed) if 0 <= lab < len(classes)],
                             minlength=len(classes))
        absent = [c for c, n, u in zip(classes, counts, unread) if n == 0 and not u]
        if absent:
            warn(f"no images of class(es) {', '.join(map(str, absent))}: the model is trained on the "
                 f"classes present")
        lost = {str(c): int(u) for c, n, u in zip(classes, counts, unread) if n == 0 and u}
        if lost:
            warn(f"{len(lost)} class(es) whose images are all unreadable left out of the model: "
                 + ", ".join(f"{c} ({u} unreadable)" for c, u in lost.items()))
        dropped = {str(c): int(n) for c, n in zip(classes, counts) if 0 < n < 3}
        # recorded, in class order: 0 readable images for those all unreadable
        left_out = {str(c): int(n) for c, n in zip(classes, counts) if str(c) in dropped or str(c) in lost}
        if dropped:
            warn(f"{len(dropped)} class(es) with fewer than 3 images (one each for training, validation "
                 f"and test) left out of the model: " + ", ".join(f"{c} ({n})" for c, n in dropped.items()))
        relabel = np.full(len(classes), -1, dtype=np.int64)
        relabel[present] = np.arange(len(present))
        classes = [classes[i] for i in present]
        keep = relabel[data.targets] >= 0
        if keep.all():
            data = TensorData(data.x, torch.from_numpy(relabel[data.targets]), classes)
        else:
            kept = torch.from_numpy(np.flatnonzero(keep))
            data = TensorData(data.x[kept], torch.from_numpy(relabel[data.targets[keep]]), classes)
        counts = counts[present]
        # the slots of the split follow: the left-out classes' images go, the rows are renumbered
        new_row = np.full(len(keep), -1)
        new_row[keep] = np.arange(int(keep.sum()))
        in_slot = relabel[slot_y] >= 0
        rows = np.where(rows >= 0, new_row[np.maximum(rows, 0)], -1)[in_slot]
        slot_y = relabel[slot_y[in_slot]]
        if slot_keys is not None:
            slot_keys = [k for k, s in zip(slot_keys, in_slot) if s]
        row_index = row_index[keep]
    if len(classes) < 2:
        # one class trained a model that always answers it (test accuracy 1.0, log-loss 0)
        if not classes:
            raise InputError("no class has the 3 images needed to split it into training, validation and test")
        raise InputError(f"only one class ({classes[0]!r}) with 3 images or more: a classifier needs at least 2 "
                         "classes")
    parts = [r[r >= 0] for r in (rows[p] for p in split_indices(len(rows), split, seed=config.seed,
                                                                 stratify=slot_y, keys=slot_keys))]
    if any(len(p) == 0 for p in parts):
        raise InputError(f"split {tuple(split)} of {len(data)} images leaves an empty part")
    train, val, test = (TensorData(data.x[p], data.y[p], classes) for p in parts)
    # which images the run is on, for --resume to check: resumed with another --data (same classes,
    # options and seed) it went on, silently, training and testing on images the run never started with
    import hashlib

    used = sorted(k for k, r in zip(slot_keys, rows) if r >= 0) if slot_keys is not None else None
    digest = hashlib.sha256("\n".join(used).encode() if used is not None else data.y.numpy().tobytes())
    data_id = {"images": int(len(data)),
               ("files_sha256" if used is not None else "labels_sha256"): digest.hexdigest()[:16]}
    # the reader's fit (crop, pad) too: classify stretched images of a model trained on padded ones
    fitted = getattr(dataset, "fit", None)
    spec = check_spec({**(preprocessing or {}), **({"fit": fitted} if fitted in ("crop", "pad") else {}),
                       "size": list(data.x.shape[-2:]), "channels": int(data.x.shape[1])})
    opts = dict(model_options or {})
    # a valid freeze only: an invalid one (freeze='head') is the model's own error, without this warning first
    pretrained = opts.get("pretrained") or opts.get("weights") or init is not None
    if opts.get("freeze", "none") in ("backbone", "all_but_last") and not pretrained:
        # frozen random features: only the head learns, which reads like fine-tuning and is not
        warn(f"model {model!r}: freeze={opts['freeze']!r} without pretrained weights (pretrained=true, "
             "weights=PATH or --init) freezes random weights; only the unfrozen layers learn")
    if (opts.get("pretrained") or opts.get("weights")) and spec["normalize"] == "none":
        # ImageNet filters (first conv summed for grey) and batch-norm statistics expect standardised
        # pixels: linear sigma0 near 0.01 or dB near -20 reach them far off that scale, and a frozen
        # backbone cannot adapt its statistics
        warn(f"model {model!r}: ImageNet weights expect standardised inputs (about zero mean, unit "
             f"variance), but normalize='none' gives them the pixels as read (intensity "
             f"{spec['intensity']}); use normalize per_image (--normalize per_image)")
    if model in ("mlp",) and "input_size" not in opts:
        opts["input_size"] = list(data.x.shape[-2:])
    with torch_rng_scope():  # the initial weights follow --seed; the caller's global generator is left alone
        seed_torch(config.seed)
        net = get_model(model, int(data.x.shape[1]), len(classes), **opts)
    if start is not None:
        if int(start["model_args"][0]) != int(data.x.shape[1]):
            raise InputError(f"init {init}: its network takes {start['model_args'][0]}-channel images, these are "
                             f"{int(data.x.shape[1])}-channel: convert them (--channels {start['model_args'][0]}), or "
                             "fine-tune a checkpoint trained on such images")
        started = _start_from(net, init, model, opts, classes)
    elif resume and out is not None and (Path(out) / "config.json").is_file():
        from .checkpoint import read_config

        started = read_config(out).get("init")  # a run started from a checkpoint keeps its record
    else:
        started = None
    _check_takes_images(net, model, data.x[:1])
    # the split fractions too: with the seed they give the test set (a --resume with another split
    # silently mixed earlier training images into it)
    meta = {"model_name": model, "model_args": [int(data.x.shape[1]), len(classes)], "model_options": opts,
            "classes": classes, "preprocessing": spec,
            "extra": {"split": [float(f) for f in split], "split_by": "path" if slot_keys is not None else "order",
                      "data": data_id, **({"left_out_classes": left_out} if left_out else {}),
                      **({"init": started} if started else {})}}
    res = fit(net, train, val, config, task="classification", out=out, checkpoint_meta=meta, resume=resume,
              overwrite=overwrite, log=log)
    # on the device the model trained on: under torchrun that is each rank's own GPU (LOCAL_RANK),
    # where --device cuda:0 would have put every rank's evaluation on GPU 0
    where = next(res.model.parameters(), torch.empty(0)).device
    test_metrics = evaluate_classifier(res.model, test, classes, device=str(where), tta=tta)
    from .distributed import is_main_process

    if out is not None and is_main_process():  # under torchrun, rank 0 writes
        # record the test metrics in the checkpoint's config (the weights are already the best ones)
        from .checkpoint import read_config, CONFIG

        cfg = read_config(out)
        cfg["metrics"] = {k: v for k, v in test_metrics.items() if k not in ("reliability",)}
        cfg["split_sizes"] = [len(p) for p in parts]
        if unreadable:
            cfg["unreadable_images"] = unreadable
        import json

        tmp = Path(out) / f".{CONFIG}.part"
        tmp.write_text(json.dumps(cfg, indent=2, default=str))
        tmp.replace(Path(out) / CONFIG)
    if figures is not None and is_main_process():
        from ..plotting import plot_confusion, plot_history, plot_reliability

        fig = Path(figures)
        tag = f"_{figure_tag}" if figure_tag else ""
        title = f"{figure_tag or model}: test accuracy {test_metrics['accuracy']:.3f}"
        cm = np.array(test_metrics["confusion_matrix"])
        plot_confusion(cm, classes, fig / f"confusion{tag}.png", title=title + " (counts)")
        plot_confusion(cm, classes, fig / f"confusion_normalized{tag}.png", normalize=True,
                       title=title + " (row-normalised)")
        plot_reliability(test_metrics["reliability"], fig / f"reliability{tag}.png", test_metrics["ece"])
        plot_history(res.history, fig / f"curves{tag}.png")
    return {"test": test_metrics, "history": res.history, "params": count_parameters(res.model),
            "seconds": res.seconds, "samples_per_s": res.samples_per_s, "best_epoch": res.best_epoch,
            "split_sizes": [len(p) for p in parts], "split_indices": [row_index[p] for p in parts],
            "unreadable_images": unreadable, "model": res.model, "config": asdict(config)}


def _check_init(init, config: dict, model: str, options: dict, preprocessing: dict) -> None:
    """Refuse a network or preprocessing other than init checkpoint ``init``'s (``config``)."""
    if model != config["model"]:
        raise InputError(f"init {init}: a {config['model']!r} network, not {model!r}: fine-tuning trains its own "
                         "network (drop the model, or train a new one without init)")
    mine, theirs = _architecture(model, options), _architecture(model, dict(config.get("model_options") or {}))
    for k in sorted(set(mine) | set(theirs)):
        if mine.get(k) != theirs.get(k):
            raise InputError(f"init {init}: model option {k}={mine.get(k)!r}, but its network was built with "
                             f"{k}={theirs.get(k)!r}: fine-tuning cannot change the network")
    spec, saved = check_spec(preprocessing), check_spec(config.get("preprocessing") or {})
    for k in ("intensity", "normalize", "fit", "size"):
        if k in preprocessing and spec.get(k, "stretch") != saved.get(k, "stretch"):
            raise InputError(f"init {init}: preprocessing {k}={spec.get(k, 'stretch')!r}, but it was trained with "
                             f"{k}={saved.get(k, 'stretch')!r}: give its own (or leave it out)")


def _unreadable_labels(dataset: Dataset, failed: dict[int, str]) -> list[int]:
    """The labels of the files left out as unreadable: at the header check (``skip_labels``) and
    when decoded (``failed``: dataset indices, labelled by its ``targets``)."""
    labels = [int(v) for v in (getattr(dataset, "skip_labels", None) or {}).values()]
    known = getattr(dataset, "targets", None)
    if known is not None:
        labels += [int(known[i]) for i in failed if 0 <= i < len(known)]
    return labels


def _unreadable(dataset: Dataset, failed: dict[int, str]) -> dict[str, str]:
    """Path -> reason of the files left out as unreadable: at the dataset's header check
    (``skip_reasons``) and when decoded (``failed``: dataset index -> the reader's message)."""
    out = {str(k): str(v) for k, v in (getattr(dataset, "skip_reasons", None) or {}).items()}
    files = getattr(dataset, "files", None)
    for i, msg in failed.items():
        name = str(files[i]) if files is not None and i < len(files) else f"sample {i}"
        reason = msg[len(name) + 2:] if msg.startswith(f"{name}: ") else msg
        out[name] = reason
    return out


def _replacing(out: str | Path, figures, run) -> dict:
    """``run(stage, figures)`` into a folder beside the checkpoint ``out``, swapped in once it is done.

    ``--overwrite`` of an earlier checkpoint replaced it with the new run's first epoch, and the
    metrics and figures only at the end: a run that then failed (or was interrupted) left a
    half-trained checkpoint without test metrics where a finished one had been. Now a failure
    leaves the earlier checkpoint as it was (and nothing to resume: the run starts again).
    """
    import re

    from ..errors import OceanDLError
    from ..utils import atomic_path, check_output_path
    from .checkpoint import is_checkpoint_folder

    # never a folder of other things: refused before the work, as save_checkpoint would after it
    check_output_path(out, True, kind="folder", replaceable=is_checkpoint_folder, what="checkpoint")
    stage = None
    try:
        with atomic_path(out, overwrite=True) as stage:
            same = figures is not None and Path(figures).resolve() == Path(out).resolve()
            return run(stage, stage if same else figures)
    except OceanDLError as exc:
        if stage is None or str(stage) not in str(exc):
            raise
        # the staging folder is gone: say what became of the checkpoint instead
        msg = re.sub(rf"; {re.escape(str(stage))} holds epoch \d+", "", str(exc)).replace(str(stage), str(out))
        raise type(exc)(f"{msg}; {out} is unchanged") from exc
    except KeyboardInterrupt as exc:
        if stage is not None and hasattr(exc, "resumable"):  # the state it names went with the staging folder
            exc.args, exc.resumable = (f"{out} is unchanged (the new run is discarded)",), False
        raise


def _check_takes_images(net: torch.nn.Module, name: str, x: torch.Tensor) -> None:
    """One image through ``net`` (eval mode: no dropout draw, no batch-norm update) before training.

    Images too small for the network (alexnet needs 63 px, inception_v3 75, vgg16 32: 'train
    classifier --demo --model alexnet' on 48 px) failed at the first training step, after the
    data was read, as torch's bare RuntimeError ('Output size is too small', exit 1).
    """
    from ..errors import one_line
    from ..models.transfer import BACKBONES

    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(x.float())
    except InputError as exc:  # the models that check their input say why, with the size and the remedy
        raise InputError(f"model {name!r}: {one_line(exc, with_type=False)}; --size (or size= in the reader) "
                         "resizes the images") from None
    except RuntimeError as exc:
        least = f" to at least {BACKBONES[name][2]} px" if name in BACKBONES else ""
        raise InputError(f"model {name!r} cannot take images of {' x '.join(map(str, x.shape[1:]))} "
                         f"(channels x height x width): {one_line(exc, with_type=False)}; resize them{least} "
                         "(--size, or size= in the reader)") from None
    finally:
        net.train(was_training)


#: metric keys of :func:`classification_metrics` reported per model by :func:`compare_classifiers`.
_REPORTED = ("accuracy", "macro_accuracy", "macro_f1", "weighted_f1", "top2_accuracy", "top3_accuracy", "log_loss", "ece")


def compare_classifiers(data: TensorData, models: Sequence[str], config: TrainConfig = TrainConfig(), *,
                        split: Sequence[float] = (0.7, 0.15, 0.15), preprocessing: dict | None = None,
                        model_options: dict[str, dict] | None = None, figures: str | Path | None = None,
                        tta: bool = False, log=print) -> dict[str, dict]:
    """Train and test several registry classifiers on the same seeded split of ``data``.

    Parameters
    ----------
    data : raw images (N, C, H, W) and labels (N,) with ``classes``; read once by the caller, the
        ``preprocessing`` spec is applied here (as a checkpoint would apply it).
    models : registry names.
    config : training settings shared by every model (same seed, hence the same split).
    model_options : per model name, its registry options.
    figures : folder for each model's ``confusion_NAME.png``, ``confusion_normalized_NAME.png``,
        ``reliability_NAME.png`` and ``curves_NAME.png``.

    Returns
    -------
    ``{name: row}`` with ``test_<metric>`` for accuracy, macro accuracy, macro and weighted F1, top-2/3 accuracy,
    log-loss and ECE, then ``params``, ``epochs``, ``best_epoch``, ``train_seconds``,
    ``train_samples_per_s``, ``n_train``/``n_val``/``n_test``, ``device`` and ``per_class``
    (``{class: {precision, recall, f1, accuracy, support}}`` on the test split).
    """
    from ..utils import resolve_device

    device = str(resolve_device(config.device))
    results: dict[str, dict] = {}
    for name in models:
        opts = dict((model_options or {}).get(name, {}))
        res = train_classifier(data, name, None, config, split=split, preprocessing=preprocessing,
                               model_options=opts, figures=figures, figure_tag=name, tta=tta, log=log)
        t = res["test"]
        row = {f"test_{k}": t[k] for k in _REPORTED if k in t}
        row.update({"params": res["params"], "epochs": len(res["history"]), "best_epoch": res["best_epoch"],
                    "train_seconds": round(res["seconds"], 2), "train_samples_per_s": round(res["samples_per_s"], 1),
                    **dict(zip(("n_train", "n_val", "n_test"), res["split_sizes"])), "device": device})
        if log:
            log(f"{name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items()))
        row["per_class"] = t["per_class"]  # after the log line: 100 classes do not belong on one line
        results[name] = row
    return results
