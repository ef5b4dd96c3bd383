"""What a file oceandl wrote holds (``oceandl info PATH``): a checkpoint folder (classifier,
auto-encoder, neural gap filler, a fitted climatology / eof / DINEOF), a benchmark's run folder, a
netCDF file (an image stack among them), or a folder of images (class folders).

Read from the JSON metadata, the safetensors headers and the netCDF header alone: no weights and
no data are loaded, so a 100 MB checkpoint or a decade of SST is described in a fraction of a
second. Loading never unpickles (the checkpoint reader refuses pickles).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from oceandl.errors import CheckpointError, InputError, one_line

__all__ = ["describe"]

#: the metrics of a classifier's test split worth a line, in that order
_METRICS = ("accuracy", "macro_f1", "top2_accuracy", "log_loss", "ece", "n")


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What ``path`` holds, as an ordered dict of labelled facts (what ``oceandl info`` prints).

    Parameters
    ----------
    path : str or path
        A checkpoint folder (or its ``config.json`` or weights file) written by ``oceandl train``, a fit saved by
        ``train interpolator --method climatology|eof|dineof``, the run folder of an ``oceandl
        benchmark`` (or its ``results.json``), a netCDF file (an output of ``oceandl
        interpolate`` / ``eof`` / ``classify`` / ``synth``, or any other), a folder of daily files,
        a folder of images or an MNIST folder (the IDX files).

    Returns
    -------
    dict
        ``path``, ``kind`` and the facts of that kind: for a checkpoint its model, parameters,
        training (epochs or steps done, finished, precision), test metrics or loss, the data it was
        trained on, whether it holds a state ``--resume`` goes on from, and the versions and git
        commit it was written with; for a run folder the benchmark, its rows, seed, device, time,
        the command that runs it again and the git commit; for a netCDF file its dimensions,
        variables and, when oceandl wrote it, the method, options, validation scores and software;
        for data, the field ``--var`` would pick, its time span, grid extent and step and the
        ``--bbox`` of the whole grid (a folder or glob pattern of daily files: the same, of the series).

    Raises
    ------
    InputError
        ``path`` does not exist, is none of these (an empty folder: said, with what is described),
        or is neither a checkpoint folder nor a netCDF file.
    CheckpointError
        A checkpoint folder whose ``config.json`` or ``weights.safetensors`` is missing, corrupt or
        truncated (the safetensors header is checked against the file's size; no tensor is read).
    """
    p = Path(path)
    from oceandl.io import is_pattern

    if not p.exists() and is_pattern(p):
        return _series(str(p))  # a quoted pattern of daily files
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir() and not (p / "config.json").is_file() and not (p / "results.json").is_file() \
            and any(f.suffix.lower() in (".nc", ".nc4") for f in p.iterdir()):
        return _series(p)  # a folder of daily files
    if p.name == "results.json" or (p.is_dir() and (p / "results.json").is_file()
                                    and not (p / "config.json").is_file()):
        return _run(p.parent if p.name == "results.json" else p)
    if p.is_dir() and not (p / "config.json").is_file() and not (p / "weights.safetensors").is_file():
        images = _image_folder(p)  # a folder of class folders (synth sar/plankton, TenGeoP, WHOI)
        if images is not None:
            return images
        mnist = _mnist_folder(p)
        if mnist is not None:
            return mnist
        if not any((p / name).is_file() for name in _CHECKPOINT_FILES):
            # "not an oceandl checkpoint folder (no config.json in it)" was said of an empty folder too
            entries = sorted(e.name for e in p.iterdir() if not e.name.startswith("."))
            held = ("an empty folder" if not entries else
                    f"holds nothing info knows ({len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: "
                    + ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "") + ")")
            raise InputError(f"{p}: {held}; info describes {_KNOWN}")
    # a file of a checkpoint folder (tab completion stops in it) is that checkpoint, as `classify
    # --model` takes it: its weights file was "neither a checkpoint folder nor a netCDF file"
    if p.is_dir() or p.name == "config.json" or (p.name in ("weights.safetensors", "training_state.safetensors",
                                                              "training_state.json")
                                                 and (p.parent / "config.json").is_file()):
        return _checkpoint(p if p.is_dir() else p.parent)
    return _netcdf(p)


#: what `info` describes, said where a folder holds none of it
_KNOWN = ("a checkpoint folder, a saved fit, a benchmark run folder, a netCDF field or image stack, a folder of "
          "daily netCDF files, a folder of class images or an MNIST folder (IDX files)")
#: the files of a checkpoint folder besides config.json: a folder with one of them is a checkpoint missing it
_CHECKPOINT_FILES = ("weights.safetensors", "training_state.safetensors", "training_state.json",
                     "normalisation.safetensors")


# ------------------------------------------------------------------------------------------ mnist
def _idx_shape(path: Path) -> tuple[int, ...]:
    """The shape an IDX file's header declares (gzip or raw): its first bytes only, no data."""
    import gzip
    import struct

    with path.open("rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else path.open("rb")) as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08:
            raise ValueError("not an unsigned-byte IDX header")
        dims = f.read(4 * head[3])
        if len(dims) < 4 * head[3]:
            raise ValueError("truncated IDX header")
    return struct.unpack(f">{head[3]}I", dims)


def _mnist_folder(folder: Path) -> dict[str, Any] | None:
    """An MNIST folder (the IDX files, as ``benchmark mnist --data-root`` and ``train classifier
    --data`` read them): images and labels per split from the IDX headers, or None when it holds no
    split. Only the headers are read (a gzip file's first bytes)."""
    from oceandl.datasets.mnist import find_mnist_files
    from oceandl.errors import MissingResourceError

    out: dict[str, Any] = {"path": str(folder), "kind": "MNIST folder (IDX files)"}
    for split in ("train", "test"):
        try:
            images, labels = find_mnist_files(folder, split)
        except MissingResourceError:
            continue
        try:
            shape, n_labels = _idx_shape(images), _idx_shape(labels)[0]
        except (OSError, EOFError, ValueError) as exc:
            out[split] = f"unreadable header ({one_line(exc)}): {images.name}, {labels.name}"
            continue
        size = " x ".join(map(str, shape[1:]))
        out[split] = f"{shape[0]:,} images of {size}, {n_labels:,} labels ({images.relative_to(folder)})" + (
            "" if n_labels == shape[0] else "; the counts differ: the split is refused when read")
    if len(out) == 2:
        return None
    out["use with"] = f"benchmark mnist --data-root {folder}; train classifier --data {folder}"
    return out


# ------------------------------------------------------------------------------------ checkpoints
def _checkpoint(folder: Path) -> dict[str, Any]:
    from oceandl.training.checkpoint import read_config

    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: not an oceandl checkpoint folder (no config.json in it)")
    config = read_config(folder)  # validated: a pickle, a corrupt JSON, another format are one line
    if not isinstance(config, dict):
        raise CheckpointError(f"{folder / 'config.json'}: not a JSON object")
    task = config.get("task")
    out: dict[str, Any] = {"path": str(folder)}
    kinds = {"interpolation-fitted": _fitted, "interpolation": _neural, "classification": _trained,
             "reconstruction": _trained}
    if task not in kinds:
        raise CheckpointError(f"{folder}: a checkpoint of unknown task {task!r}")
    try:
        out.update(kinds[task](config))
        provenance = _provenance(config.get("provenance"))
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        # an edited value of another type ("training": "fast", a loss "a") was a bare AttributeError, exit 1
        raise CheckpointError(f"{folder / 'config.json'}: a value of an unexpected type ({one_line(exc)})") from None
    params = _parameters(folder / "weights.safetensors")
    if params is not None and task != "interpolation-fitted":
        out["parameters"] = f"{params:,}"
    # a truncated or corrupt tensor file (an interrupted copy) read as a normal checkpoint here, while
    # classify, --model and --init refused it: refused as a missing one is (read_config), exit 2
    for name in ("weights.safetensors", "normalisation.safetensors"):
        why = _tensor_file_problem(folder / name) if (folder / name).is_file() else None
        if why:
            raise CheckpointError(f"{folder / name}: corrupt or truncated ({why}); classify, --model, --init and "
                                  "--fit-on refuse this checkpoint: copy it again or retrain")
    # a truncated training state read as a checkpoint to resume ("--resume goes on from it"), and
    # --resume then said "corrupt training state": the same header-and-size check, and one line
    state_problem = _state_problem(folder)
    if state_problem:
        raise CheckpointError(state_problem)
    mask = _stored_mask(folder, task) if task.startswith("interpolation") else None
    if mask:
        out["land-sea mask"] = mask
    state = _resume_state(folder)
    if state and _unfinished(config):  # a finished run's state is not one to go on from
        out["resumable"] = state
    out.update(provenance)
    return out


def _unfinished(config: dict) -> bool:
    """Whether the training that wrote ``config`` stopped before its end (Ctrl-C, a kill).

    Classifier checkpoints written before the ``finished`` key (1 December 2026) say it by their
    epochs: fewer done than asked, without early stopping (which may end a run early on purpose)."""
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    if config.get("finished") is False or training.get("finished") is False:
        return True
    if "finished" in config or "finished" in training:
        return False
    done, epochs = config.get("epochs_done"), training.get("epochs")
    return (isinstance(done, int) and isinstance(epochs, int) and done < epochs
            and not training.get("early_stopping"))


def _model(config: dict) -> str:
    opts = config.get("model_options") or {}
    shown = ", ".join(f"{k}={v}" for k, v in opts.items())
    return f"{config.get('model')}({shown})" if shown else str(config.get("model"))


def _trained(config: dict) -> dict[str, Any]:
    """A classifier's (or an auto-encoder's) facts."""
    task = config.get("task")
    out: dict[str, Any] = {"kind": "classifier checkpoint" if task == "classification" else "auto-encoder checkpoint",
                           "model": _model(config)}
    args = config.get("model_args") or []
    if args:
        out["input channels"] = args[0]
    classes = config.get("classes") or []
    if classes:
        out["classes"] = f"{len(classes)} (" + ", ".join(map(str, classes)) + ")"
    pre = config.get("preprocessing") or {}
    if pre:
        out["preprocessing"] = ", ".join(f"{k}={v}" for k, v in pre.items())
    training = config.get("training") or {}
    epochs = training.get("epochs")
    done = config.get("epochs_done")
    if done is not None:
        out["training"] = (f"{done} of {epochs} epochs" if epochs is not None else f"{done} epochs") + \
            (" (unfinished: stopped before the end)" if _unfinished(config) else "")
    if config.get("best_epoch") is not None:
        out["best epoch"] = config["best_epoch"]
    if config.get("precision"):
        out["precision"] = config["precision"]
    if training:
        out["optimiser"] = (f"{training.get('optimizer')} lr={training.get('lr')} batch_size={training.get('batch_size')} "
                            f"scheduler={training.get('scheduler')} seed={training.get('seed')}")
    data = config.get("data")
    if isinstance(data, dict) and isinstance(data.get("images"), int):
        # the help promised "the data it was trained on"; a classifier's said nothing of it
        digest = data.get("files_sha256") or data.get("labels_sha256")
        kind = "its files' paths" if data.get("files_sha256") else "its labels"
        out["trained on"] = f"{data['images']} images" + (f" (sha256 of {kind}: {digest})" if digest else "")
    if config.get("split_sizes"):
        out["split (train, val, test)"] = ", ".join(map(str, config["split_sizes"]))
    # what the model never saw: a class left out reads, in the class list, as one that never existed
    left = config.get("left_out_classes") or {}
    if isinstance(left, dict) and left:
        def images(n) -> str:  # 0: every image of the class was unreadable
            return "no readable image" if n == 0 else f"{n} image{'' if n == 1 else 's'}"

        out["left out classes"] = ", ".join(f"{k} ({images(v)})" for k, v in left.items()) + \
            ": too few for training, validation and test"
    bad = config.get("unreadable_images") or {}
    if isinstance(bad, dict) and bad:
        out["unreadable images"] = f"{len(bad)}, left out (listed in config.json: unreadable_images)"
    init = config.get("init")
    if isinstance(init, dict) and init.get("checkpoint"):  # fine-tuned (train classifier --init)
        out["fine-tuned from"] = str(init["checkpoint"]) + (
            ": every weight" if init.get("head") == "loaded" else
            ": its backbone, the head new for other classes" if init.get("head") == "re-initialised" else "")
    metrics = config.get("metrics") or {}
    shown = [f"{k} {_num(metrics[k])}" for k in _METRICS if isinstance(metrics.get(k), (int, float))]
    if shown:
        out["test metrics"] = ", ".join(shown)
    return out


def _neural(config: dict) -> dict[str, Any]:
    """A neural gap filler's facts (``oceandl train interpolator --method unet|resae|...``)."""
    interp = config.get("interpolator") or {}
    training = config.get("training") or {}
    out: dict[str, Any] = {"kind": "neural gap filler checkpoint", "method": interp.get("method"),
                           "model": _model(config)}
    field = training.get("variable")
    if field is not None:
        units = f" ({training['units']})" if training.get("units") else ""
        sizes = training.get("sizes") or {}
        grid = " x ".join(f"{k} {v}" for k, v in sizes.items())
        out["trained on"] = f"variable {field!r}{units}, {grid}" + \
            (f", from {training['source']}" if training.get("source") else "")
    aux = interp.get("aux") or []
    if isinstance(aux, list) and aux:  # covariates the network takes: --model needs them in the file
        out["auxiliary variables"] = ", ".join(
            str(st.get("name")) + (f" ({', '.join(filter(None, (st.get('units'), 'static' if st.get('static') else '')))})"
                                   if st.get("units") or st.get("static") else "")
            for st in aux if isinstance(st, dict))
    steps, done = training.get("train_steps"), training.get("steps_done")
    if done is not None:
        out["training"] = f"{done} of {steps} steps" + ("" if training.get("finished", True)
                                                        else " (unfinished: stopped before the end)")
    losses = training.get("loss_history") or []
    if losses:
        k = max(1, len(losses) // 10)  # the first and last tenth: one step's loss is noisy
        first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
        out["loss"] = f"{_num(first)} -> {_num(last)} " + \
            ("(first and last step)" if k == 1 else f"(mean of the first and last {k} steps)")
    if training.get("precision"):
        out["precision"] = training["precision"]
    if interp.get("nll"):
        out["sigma"] = f"predicted (nll), calibration x{_num(interp.get('sigma_calibration', 1.0))}: " \
            f"{interp.get('sigma_calibration_text', 'none')}"
    days = training.get("days_of_year") or []
    if days:
        from oceandl.interp.neural import _day_ranges

        out["days of the year seen"] = f"{_day_ranges(np.asarray(days, dtype=float))} ({len(set(days))} days)"
    init = training.get("init")
    if isinstance(init, dict) and init.get("checkpoint"):
        out["fine-tuned from"] = str(init["checkpoint"])
    return out


def _fitted(config: dict) -> dict[str, Any]:
    """A saved climatology / eof / DINEOF fit's facts."""
    interp = config.get("interpolator") or {}
    fitted = config.get("fitted") or {}
    out: dict[str, Any] = {"kind": "fitted gap filler (fill other files on its grid with --fit-on)",
                           "method": interp.get("method")}
    if fitted.get("fitted_on"):
        out["fitted on"] = str(fitted["fitted_on"]) + (f", from {fitted['source']}" if fitted.get("source") else "")
    # the fit's units, as a network's 'trained on' says them: it fills a field in kelvin or degC in that
    # field's own (the means shifted) and refuses others, so which it was fitted in is worth a line
    units = (fitted.get("attrs") or {}).get("units") if isinstance(fitted.get("attrs"), dict) else None
    if isinstance(units, str) and units:
        from oceandl.interp.neural import _unit

        out["units"] = units + (" (fills a field in kelvin or degC, in the field's units)"
                                if _unit(units) in ("K", "degC") else "")
    shape = fitted.get("shape")
    if isinstance(shape, list) and shape:
        dims = (fitted.get("dims") or [])[1:]
        out["grid"] = " x ".join(f"{d} {n}" for d, n in zip(dims, shape)) if len(dims) == len(shape) else \
            " x ".join(map(str, shape))
    options = interp.get("options") or {}
    if options:
        out["options"] = ", ".join(f"{k}={v}" for k, v in options.items())
    attrs = fitted.get("fit_attrs") or {}
    shown = {k: attrs[k] for k in ("n_modes", "harmonics", "converged", "n_iter_total", "shrink") if k in attrs}
    if shown:
        out["fit"] = ", ".join(f"{k}={v}" for k, v in shown.items())
    # a multivariate DINEOF's covariates: --fit-on reads them from INPUT by these names
    aux = (fitted.get("state") or {}).get("aux") if isinstance(fitted.get("state"), dict) else None
    names = aux.get("names") if isinstance(aux, dict) else None
    if isinstance(names, list) and names:
        units = aux.get("units") if isinstance(aux.get("units"), list) else []
        said = [f"{n} ({u})" if isinstance(u, str) and u else str(n) for n, u in zip(names, units + [None] * len(names))]
        weight = aux.get("weight")
        out["auxiliary variables"] = ", ".join(said) + (f"; aux_weight {weight:g}" if isinstance(weight, (int, float))
                                                       else "") + " (read from INPUT by --fit-on)"
    return out


#: buffers a state dict holds beside the parameters (batch norm's statistics): not parameters
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _header(path: Path) -> dict | None:
    """The header of a safetensors file (tensor names, dtypes, shapes), no tensor read; None if unreadable."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 100 << 20:
                return None
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _tensor_file_problem(path: Path) -> str | None:
    """Why the safetensors file ``path`` cannot be loaded (truncated, corrupt), or None.

    ``safe_open`` parses the header and checks it against the file's size (the tensors' offsets
    end where the file does): no tensor is read, nothing is unpickled."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            fh.keys()
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, and a header of bad JSON
        return one_line(exc, limit=100, with_type=False)
    return None


def _stored_mask(folder: Path, task: str) -> str | None:
    """Whether a gap filler's checkpoint holds the land-sea mask it was trained with (``--mask``), and its grid."""
    path, key = (folder / "normalisation.safetensors", "land_sea_mask") if task == "interpolation" \
        else (folder / "weights.safetensors", "sea")
    entry = (_header(path) or {}).get(key)
    if not isinstance(entry, dict):
        return None
    shape = " x ".join(str(n) for n in entry.get("shape", [])[-2:])
    return f"stored ({shape}): applied to files on its grid when no --mask is given"


def _parameters(path: Path) -> int | None:
    """The parameters in a weights file, from its safetensors header (no tensor is read): the
    values of its tensors, batch norm's running statistics left out, as ``oceandl models`` counts."""
    header = _header(path)
    if header is None:
        return None
    total = 0
    for key, entry in header.items():
        if key == "__metadata__" or not isinstance(entry, dict) or key.rsplit(".", 1)[-1] in _BUFFERS:
            continue
        count = 1
        for d in entry.get("shape") or []:
            count *= int(d)
        total += count
    return total


def _state_problem(folder: Path) -> str | None:
    """Why the training state in ``folder`` (``training_state.safetensors`` + ``.json``) cannot be
    resumed from (a truncated or corrupt file, one of the pair missing), or None: none there or whole.
    Headers and the file size only, as for the weights: no tensor is read."""
    tensors, meta = folder / "training_state.safetensors", folder / "training_state.json"
    if not tensors.is_file() and not meta.is_file():
        return None
    # the weights beside are not the state's: classify, --model and --init still read them
    refused = "--resume refuses this checkpoint (its weights are whole): copy it again, or train again without --resume"
    if not tensors.is_file() or not meta.is_file():
        gone, there = (tensors, meta) if meta.is_file() else (meta, tensors)
        return f"{gone}: missing beside {there.name}; {refused}"
    why = _tensor_file_problem(tensors)
    if why:
        return f"{tensors}: corrupt or truncated ({why}); {refused}"
    try:
        json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        return f"{meta}: corrupt or truncated ({one_line(exc, limit=100, with_type=False)}); {refused}"
    return None


def _resume_state(folder: Path) -> str | None:
    """Where the training state in ``folder`` goes on from (its JSON part alone), or None."""
    meta = folder / "training_state.json"
    if not meta.is_file():
        return None
    try:
        top = json.loads(meta.read_text())
        state = dict(top["__dict__"]) if isinstance(top, dict) and "__dict__" in top else {}
    except (OSError, ValueError, TypeError, KeyError):
        return "a training state (unreadable)"
    if "steps" in state:  # a neural gap filler's
        return f"a training state at step {state.get('step')} of {state.get('steps')} (--resume goes on from it)"
    if "epoch" in state:
        where = f"epoch {state['epoch']}"
        if state.get("batches_done") is not None:
            where = f"epoch {state['epoch'] + 1}, batch {state['batches_done']}"
        return f"a training state after {where} (--resume goes on from it)"
    return "a training state"


def _provenance(prov: Any) -> dict[str, Any]:
    if not isinstance(prov, dict):
        return {}
    out: dict[str, Any] = {}
    versions = prov.get("versions") or {}  # not a dict: an edited file, refused by the caller
    known = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    if known:  # none known: no empty line
        out["written with"] = known
    if prov.get("git_commit"):
        out["git commit"] = str(prov["git_commit"])[:12] + (" (with uncommitted changes)" if prov.get("git_dirty") else "")
    return out


# ---------------------------------------------------------------------------------- image folders
#: at most this many images have their header read for the sizes (one per class first)
_SIZE_SAMPLE = 20


def _image_folder(folder: Path) -> dict[str, Any] | None:
    """A folder of images (class folders, as ``train classifier --data`` reads them, or images
    to ``classify``): its classes, the images in each and the sizes of a sample (headers only),
    or None when it holds no image. "not an oceandl checkpoint folder" was said of them."""
    from oceandl.datasets.images import (TENGEOP_CLASSES, _class_root, _images_in, _is_image, _probe, _Unreadable,
                                         _tengeop_root, tengeop_letter)

    tengeop = _tengeop_root(folder)
    root = tengeop or _class_root(folder)
    subs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    files = {d.name: _images_in(d) for d in subs}
    files = {k: v for k, v in files.items() if v}
    loose = sorted(p for p in root.iterdir() if _is_image(p))
    if not files and not loose:
        return None
    out: dict[str, Any] = {"path": str(folder)}
    if files:
        out["kind"] = ("TenGeoP-SARwv image folder" if tengeop else "image folder") + \
            f": a folder per class{'' if root == folder else f' (in {root.relative_to(folder)})'}"

        def named(name: str) -> str:
            letter = tengeop_letter(name) if tengeop else None
            return f"{name} {TENGEOP_CLASSES[letter]}" if letter and letter == name else name

        shown = [f"{named(k)}: {len(v)}" for k, v in files.items()]
        out["classes"] = f"{len(files)} (" + ", ".join(shown[:30]) + (", ..." if len(shown) > 30 else "") + ")"
        out["images"] = str(sum(map(len, files.values()))) + (
            f" (and {len(loose)} beside the class folders, not read by train classifier)" if loose else "")
        out["use with"] = f"train classifier --data {folder}; classify --model CHECKPOINT {folder}"
    else:
        out["kind"] = "image folder, without class folders (unlabelled)"
        out["images"] = str(len(loose))
        out["use with"] = f"classify --model CHECKPOINT {folder}"
    if (root / "metadata.csv").is_file():
        out["metadata"] = str(root / "metadata.csv")
    # one image of each class first, then more of the first ones: headers only (_probe without full)
    sample = [v[0] for v in files.values()][:_SIZE_SAMPLE] + loose[:max(0, _SIZE_SAMPLE - len(files))]
    shapes, bad = [], 0
    for path in sample:
        try:
            shapes.append(_probe(path, full=False)[:3])  # (bands, height, width)
        except _Unreadable:
            bad += 1
    if shapes or bad:
        bands = "/".join(str(b) for b in sorted({b for b, _, _ in shapes}))
        bands = f", {bands} band{'' if bands == '1' else 's'}" if bands else ""
        distinct = sorted({(h, w) for _, h, w in shapes})
        if len(distinct) <= 3:
            said = ", ".join(f"{h} x {w}" for h, w in distinct) + bands
        else:  # plankton: every image its own size
            hs, ws = [h for _, h, _ in shapes], [w for _, _, w in shapes]
            said = f"mixed, {min(hs)} to {max(hs)} x {min(ws)} to {max(ws)}{bands} (--size resizes them)"
        out[f"image size (headers of {len(sample)})"] = (said or "none readable") + (f"; {bad} unreadable" if bad else "")
    out["use with"] = out.pop("use with")  # last: what to do with it
    return out


# ------------------------------------------------------------------------------------ run folders
def _run(folder: Path) -> dict[str, Any]:
    """A benchmark run folder's facts (``results.json``; the table itself is ``results.md``)."""
    try:
        res = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{folder / 'results.json'}: unreadable ({one_line(exc, limit=100)})") from None
    if not isinstance(res, dict) or "pipeline" not in res:
        raise InputError(f"{folder / 'results.json'}: not the results of an oceandl benchmark (no 'pipeline')")
    rows = res.get("results") if isinstance(res.get("results"), dict) else {}
    out: dict[str, Any] = {"path": str(folder), "kind": f"benchmark run ({res['pipeline']})"}
    if rows:
        out["rows"] = f"{len(rows)}: " + ", ".join(map(str, list(rows)[:12])) + (", ..." if len(rows) > 12 else "")
    for key, label in (("seed", "seed"), ("device", "device"), ("started", "started"), ("data_found", "data")):
        if res.get(key) is not None:
            out[label] = res[key]
    if isinstance(res.get("seconds"), (int, float)):
        out["seconds"] = _num(res["seconds"])
    if (folder / "results.md").is_file():
        out["table"] = str(folder / "results.md")
    if res.get("command"):
        out["run it again"] = str(res["command"])
    out.update(_provenance(res))
    return out


# ---------------------------------------------------------------------------------------- netCDF
def _netcdf(path: Path) -> dict[str, Any]:
    import xarray as xr

    try:
        # decode_times off: an undecodable calendar must not stop a description; lazily, no data read.
        # xarray's decoding warnings (several fill values...) are about reading the data, not done here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_dataset(path, decode_times=False)
    except Exception as exc:  # noqa: BLE001 - netCDF4/h5netcdf/xarray raise many types for a bad file
        if path.suffix.lower() not in (".nc", ".nc4", ".cdf", ".h5", ".hdf5"):
            raise InputError(f"{path}: neither a checkpoint folder nor a netCDF file") from None
        # the same words as `oceandl eof`/`interpolate` give for the file: info said "did not find a
        # match in any of xarray's currently installed IO backends ['netcdf4', 'scipy']. Con..."
        from oceandl.io import _has_hdf5_signature

        with open(path, "rb") as fh:
            head = fh.read(8)
        if not (head[:4] in (b"CDF\x01", b"CDF\x02", b"CDF\x05") or _has_hdf5_signature(path, head)):
            raise InputError(f"{path}: not a readable netCDF file (no netCDF-3 or netCDF-4/HDF5 signature; "
                             f"it starts with {head[:8]!r})") from None
        raise InputError(f"{path}: not a readable netCDF file, truncated or corrupt "
                         f"({one_line(exc, limit=100)})") from None
    with ds:
        attrs = dict(ds.attrs)
        out: dict[str, Any] = {"path": str(path)}
        ours = "oceandl_version" in attrs or any("oceandl_version" in v.attrs for v in ds.data_vars.values())
        out["kind"] = "netCDF written by oceandl" if ours else "netCDF file"
        out["dimensions"] = ", ".join(f"{k} {v}" for k, v in ds.sizes.items())
        out["variables"] = ", ".join(f"{k}{tuple(v.dims)}".replace("'", "").replace(",)", ")")
                                     for k, v in ds.data_vars.items())
        groups = _groups(path)
        if groups:  # xarray opens the root group alone: its dimensions and variables are not all
            out["groups"] = ", ".join(groups)
        # the fill's own attributes are on its variable (and mostly on the file too); another
        # tool's "method" or "val_*" attributes are not an oceandl run's
        main = next((v for v in ds.data_vars.values() if "method" in v.attrs), None) if ours else None
        where = {**attrs, **(dict(main.attrs) if main is not None else {})} if ours else {}
        # the weights it came from (interpolate --model, classify) beside the method and software
        for key in ("method", "options", "checkpoint", "checkpoint_sha256", "model", "model_sha256", "architecture",
                    "oceandl_version", "oceandl_software"):
            if key in where:
                out[key.replace("_", " ")] = str(where[key])
        # a fit applied (--fit-on) and the blocks of a --chunks fill: what filled it, beside the method
        if str(where.get("fitted_on", "")).strip():
            out["fitted on"] = str(where["fitted_on"])
        if "chunked" in where:
            out["chunked"] = _chunked_text(where["chunked"])
        calibration = ds["sigma"].attrs.get("transform_sigma_calibration") if "sigma" in ds and ours else None
        if calibration:
            out["sigma"] = str(calibration)
        # the covariates the network took (neither in options nor, with --model, on the command line)
        if str(where.get("aux_variables", "")).strip():
            out["auxiliary variables"] = ", ".join(str(where["aux_variables"]).split())
        scores = {k[4:]: where[k] for k in where if k.startswith("val_")}
        if scores:
            out["validation (withheld pixels)"] = ", ".join(f"{k} {_num(v)}" for k, v in scores.items())
        history = str(attrs.get("history", "")).strip()
        if history:
            out["history (newest)"] = history.splitlines()[0]
        stack = _image_stack(ds, path) if not ours else {}
        out.update(stack)
    if stack:  # (sample, y, x) read as (time, lat, lon) gave a time span and grid of pixel indices
        return out
    if not ours or "method" not in out:  # a data file: what --var, --bbox and --dates would work with
        out.update(_field_facts(path))
    return out


def _image_stack(ds, path: Path) -> dict[str, Any]:
    """A netCDF stack of images, as ``train classifier --data`` and ``classify`` read it (variable
    ``image``, (sample, [channel,] y, x), labels in ``label``): the images, their size and the
    images of each class (the label vector alone is read); empty for any other file."""
    da = ds.data_vars.get("image")
    if da is None or da.ndim not in (3, 4):
        return {}
    from oceandl.datasets.images import NetCDFImageDataset
    from oceandl.io import _COORD_NAMES

    if str(da.dims[0]).lower() in _COORD_NAMES["time"]:  # a (time, y, x) field named image: no stack
        return {}
    n, (h, w) = da.shape[0], da.shape[-2:]
    channels = f", {da.shape[1]} channels" if da.ndim == 4 else ""
    out: dict[str, Any] = {"kind": "netCDF image stack", "images (--var image)": f"{n} of {h} x {w}{channels}"}
    if "label" in ds.variables:
        try:
            targets, classes = NetCDFImageDataset._labels(ds, da, "label", str(path), n)
        except InputError as exc:
            out["labels (label)"] = f"unusable: {str(exc).removeprefix(f'{path}: ')}"
            out["use with"] = f"classify --model CHECKPOINT {path} (train classifier refuses these labels)"
        else:
            counts = np.bincount(targets, minlength=len(classes))
            out["classes"] = f"{len(classes)} (" + ", ".join(f"{c}: {k}" for c, k in zip(classes, counts)) + ")"
            out["use with"] = f"train classifier --data {path}; classify --model CHECKPOINT {path}"
    else:
        out["labels (label)"] = "none (unlabelled)"
        out["use with"] = f"classify --model CHECKPOINT {path}"
    return out


def _chunked_text(plan: Any) -> str:
    """The ``chunked`` attribute of an ``interpolate --chunks`` output in words: its blocks, their
    size and halo, and the strategy (as written when it is not the JSON expected)."""
    try:
        p = json.loads(str(plan))
        # sorted keys in the file: time first, as the blocks are cut
        size = " x ".join(f"{ax} {n}" for ax, n in sorted(p["chunks"].items(), key=lambda kv: kv[0] != "time"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return str(plan)
    text = f"{p.get('blocks', '?')} blocks of {size}"
    halo = {ax: n for ax, n in (p.get("halo") or {}).items() if n}
    if halo:
        text += " (halo " + ", ".join(f"{ax} {n}" for ax, n in halo.items()) + ")"
    return text + (f": {p['strategy']}" if p.get("strategy") else "")


def _series(source) -> dict[str, Any]:
    """A folder or pattern of files read as one series (a file per day): their number and the field's facts."""
    from oceandl.io import describe_source, input_files

    files = input_files(source)
    out: dict[str, Any] = {"path": str(source), "kind": f"{len(files)} netCDF files read as one series"}
    out["files"] = f"{files[0].name} ... {files[-1].name}" if len(files) > 1 else files[0].name
    first = _netcdf(files[0])
    run = {}
    if first["kind"] == "netCDF written by oceandl" and "method" in first:
        # a fill written as a file per input file (interpolate -o FOLDER/): each holds the run's method,
        # options and scores (of the whole series); said once, from the first file
        out["kind"] = f"{len(files)} netCDF files written by oceandl (a file per input file), read as one series"
        skip = {"path", "kind", "dimensions", "variables", "groups"}
        run = {k: v for k, v in first.items() if k not in skip and not k.startswith(("field", "time", "lat", "lon",
                                                                                        "whole grid"))}
        runs: dict[tuple, list[str]] = {}
        for f in files:  # (files of an earlier run left beside a later one's: the first's method was said for all)
            runs.setdefault(_run_key(f), []).append(f.name)
        if len(runs) > 1:
            out["kind"] += f"; from {len(runs)} different runs (method {', '.join(dict.fromkeys(k[0] for k in runs))})"
            out["runs"] = "; ".join(f"{len(names)} file{'s' if len(names) > 1 else ''} ({names[0]}"
                                    f"{' ...' if len(names) > 1 else ''}): {key[0]}, {key[2]}"
                                    for key, names in runs.items())
            run = {"method, options, scores": "of the first file's run (see runs)", **run}
    facts = _field_facts(files, label=describe_source(source, files), strict=True)
    return {**out, **run, **facts}


def _run_key(path) -> tuple:
    """What identifies the oceandl run that wrote a file: its method, options and newest history line."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            attrs = {k: nc.getncattr(k) for k in ("method", "options", "history") if k in nc.ncattrs()}
    except OSError:
        return (None, None, None)
    return (str(attrs.get("method")), str(attrs.get("options")), str(attrs.get("history", "")).split("\n")[0])


def _field_facts(source, label: str | None = None, strict: bool = False) -> dict[str, Any]:
    """The field ``open_field`` would read from ``source`` (headers and coordinates only): its name,
    time span, grid extent and step, and the ``--bbox`` of the whole grid. Empty when there is no
    such field (``strict``: the reason is raised, as the commands would say it)."""
    from oceandl.io import open_field, open_files

    try:
        with warnings.catch_warnings():  # 'using variable X': said below as the field
            warnings.simplefilter("ignore")
            if isinstance(source, list) and len(source) > 1:
                ds = open_files(source, label=label)
            else:
                import xarray as xr

                ds = xr.open_dataset(source[0] if isinstance(source, list) else source, chunks={})
            with ds:
                da = open_field(ds, label=label or str(source), check_values=False)  # lazy: no data read
    except InputError:
        if strict:
            raise
        return {}
    except Exception:  # noqa: BLE001 - an undecodable file: the headers above are what can be said
        if strict:
            raise
        return {}
    out: dict[str, Any] = {"field (--var)": f"{da.name} ({da.attrs.get('units', 'no units')})"}
    t = da["time"].values
    if t.size:
        from oceandl.io import _when

        step = ""
        if t.size > 1 and np.issubdtype(t.dtype, np.datetime64):
            dt = np.median(np.diff(t)) / np.timedelta64(1, "h")
            step = ", daily" if dt == 24 else f", every {dt:g} h" if dt < 24 else f", every {dt / 24:g} days"
        out["time (--dates)"] = f"{_when(t[0])} to {_when(t[-1])}, {t.size} steps{step}"
    for role in ("lat", "lon"):
        v = np.asarray(da[role].values, dtype=float)
        step = f", step {np.median(np.diff(v)):.4g}" if v.size > 1 else ""
        out[role] = f"{v.min():.4g} to {v.max():.4g}, {v.size} points{step}"
    if da["lat"].attrs.get("units") == "degrees_north":
        lon, lat = da["lon"].values, da["lat"].values
        out["whole grid (--bbox)"] = f"--bbox={lon.min():.6g},{lat.min():.6g},{lon.max():.6g},{lat.max():.6g}"
    return out


def _groups(path: Path) -> list[str]:
    """The groups of a netCDF-4 file below its root, with their variables (headers alone)."""
    import xarray as xr

    try:
        with warnings.catch_warnings():  # decoding warnings again (see _netcdf)
            warnings.simplefilter("ignore")
            tree = xr.open_groups(path, decode_times=False)
    except Exception:  # noqa: BLE001 - netCDF-3, or an engine without groups: the root is all
        return []
    try:
        return [f"{name} ({', '.join(map(str, ds.data_vars)) or 'no variables'})"
                for name, ds in tree.items() if name != "/"]
    finally:
        for ds in tree.values():
            ds.close()


# ------------------------------------------------------------------------------------------ text
def _num(v: Any) -> str:
    """A number for a line: 4 significant digits, integers as they are."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else f"{f:.4g}"

