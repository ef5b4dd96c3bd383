"""Checkpoints: ``weights.safetensors`` + ``config.json`` in one folder, loaded without unpickling.

The folder given to ``-o`` is what ``--model`` takes back. ``config.json`` holds the model name and
options, the task, class names, preprocessing, metrics and versions; a resumable training state
(model, optimizer, scheduler, best model, epoch, history; no RNG state: the engine re-seeds from
``(seed, epoch)``) lives beside it in ``training_state.safetensors`` + ``.json``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, InputError, OceanDLError, one_line
from ..utils import atomic_path, check_output_path, provenance, resolve_device

__all__ = ["save_checkpoint", "load_checkpoint", "read_config", "weights_sha256", "save_training_state", "is_checkpoint_folder",
           "load_training_state", "flatten_state", "unflatten_state", "with_optional_state", "FORMAT"]

FORMAT = "oceandl-checkpoint/1"
WEIGHTS, CONFIG, STATE = "weights.safetensors", "config.json", "training_state"
_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin"}
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # protocol-2+ pickle, torch zip archive
#: deepest nesting of lists/objects accepted in config.json (oceandl writes 4 or 5 levels)
MAX_JSON_DEPTH = 64
#: a model rebuilt from config.json may hold this many times the values of the weights file (plus
#: ``_SPARE_VALUES``: buffers that older checkpoints lack) before it is refused unbuilt
_SIZE_FACTOR, _SPARE_VALUES = 2, 1_000_000


def is_checkpoint_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding an oceandl checkpoint's ``config.json`` (what
    ``--overwrite`` may replace with a new checkpoint)."""
    return (Path(path) / CONFIG).is_file()


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, model_name: str, model_options: dict,
                    task: str, model_args: list | tuple = (), classes: list[str] | None = None, preprocessing: dict | None = None,
                    metrics: dict | None = None, extra: dict | None = None, overwrite: bool = False,
                    training_state: tuple[dict, dict] | None = None,
                    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write a checkpoint folder atomically.

    Parameters
    ----------
    path : folder to create (replaced only when ``overwrite``).
    model : the module; its ``state_dict`` goes to safetensors.
    model_name, model_args, model_options : registry name, positional arguments
        (``(in_channels, num_classes)`` or ``(in_channels, out_channels)``) and options it was built with.
    task : ``"classification"`` or ``"reconstruction"`` (or ``"interpolation"``).
    classes, preprocessing, metrics, extra : JSON-able metadata.
    training_state : optional ``(tensors, meta)`` from :func:`flatten_state` for ``--resume``.
    extra_tensors : optional ``{file name: {key: tensor}}``: more safetensors files in the folder
        (an interpolation checkpoint's normalisation statistics), written in the same atomic step.
    """
    from safetensors import SafetensorError

    config = {
        "format": FORMAT, "model": model_name, "model_args": list(model_args), "model_options": model_options, "task": task,
        "classes": classes, "preprocessing": preprocessing or {}, "metrics": metrics or {},
        **(extra or {}), "provenance": provenance(),
    }
    json.dumps(config)  # fail before touching the disk if something is not JSON-able
    # overwrite replaces an earlier checkpoint, never a folder of other things (or a file)
    check_output_path(path, overwrite, kind="folder", replaceable=is_checkpoint_folder, what="checkpoint")
    existed = Path(path).exists()
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.mkdir()
            state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            _save_tensors(state, tmp / WEIGHTS)
            (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=str))
            if training_state is not None:
                tensors, meta = training_state
                _save_tensors(tensors, tmp / f"{STATE}.safetensors")
                (tmp / f"{STATE}.json").write_text(json.dumps(meta))
            for name, tensors in (extra_tensors or {}).items():
                _save_tensors({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp / name)
    except (OSError, SafetensorError) as exc:
        # a full disk or a read-only folder: safetensors said "SafetensorError: Error while
        # serializing: I/O error: ..." without the folder, and the CLI added a traceback hint
        kept = "the previous checkpoint there is unchanged" if existed else "nothing was written"
        raise InputError(f"{path}: cannot write the checkpoint ({one_line(exc, with_type=False)}); {kept}") from exc
    except OceanDLError as exc:
        # a full disk or quota, said by atomic_path (exit 1, whatever room the disk reports): and that a
        # training run's previous state is still whole, to resume from
        if not existed or isinstance(exc, InputError):
            raise
        raise OceanDLError(f"{str(exc).rstrip('.')}; the previous checkpoint there is unchanged") from exc
    return Path(path)


def _save_tensors(tensors: dict, path: Path) -> None:
    """``safetensors`` file with the permissions of any other new file (the umask's).

    safetensors creates its files 0600: on a shared cluster the weights were unreadable to the
    group, next to a readable config.json.
    """
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask sets it, and
    another thread creating a file in between would get the wrong mode)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _is_pickle(path: Path) -> bool:
    """A pickle (protocol 2+) or torch zip archive, told from safetensors (8-byte size, then '{')."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") or head[:4] == b"PK\x03\x04"


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of checkpoint folder ``path``'s weights file: which weights made an output.

    Read by blocks of 1 MiB (a ResNet's 100 MB weights are not held at once). Raises
    :class:`CheckpointError` as :func:`read_config` does for a folder that is not a checkpoint.
    """
    import hashlib

    digest = hashlib.sha256()
    with open(_check_folder(path) / WEIGHTS, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_file():
        if path.suffix in _PICKLE_SUFFIXES or _is_pickle(path):
            raise CheckpointError(
                f"{path}: refused, this is a pickle-based file (loading it could run arbitrary code); "
                "oceandl checkpoints are folders with weights.safetensors + config.json")
        if path.name == CONFIG or path.name == WEIGHTS:
            path = path.parent
        else:
            raise CheckpointError(f"{path}: not an oceandl checkpoint (expected a folder with {WEIGHTS} and {CONFIG})")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            pickles = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix in _PICKLE_SUFFIXES)
            if pickles:
                raise CheckpointError(
                    f"{path}: not an oceandl checkpoint ({name} is missing); {pickles[0]} is pickle-based and "
                    "refused (loading it could run arbitrary code): convert it to weights.safetensors + config.json")
            raise CheckpointError(f"{path}: not an oceandl checkpoint ({name} is missing)")
    if _is_pickle(path / WEIGHTS):
        raise CheckpointError(f"{path / WEIGHTS}: refused, this is a pickle-based file under a safetensors name "
                              "(loading it could run arbitrary code)")
    return path


def read_config(path: str | os.PathLike) -> dict:
    """The JSON metadata of a checkpoint folder (validated)."""
    path = _check_folder(path)
    try:
        config = json.loads((path / CONFIG).read_text())
    except RecursionError:
        # json's decoder recurses once per level: "[" * 100000 was a bare RecursionError (exit 1)
        raise CheckpointError(f"{path / CONFIG}: JSON nested deeper than {MAX_JSON_DEPTH} levels, refused") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError; an integer of over 4300 digits
        raise CheckpointError(f"{path / CONFIG}: corrupt JSON ({exc})") from None
    depth = _json_depth(config)
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(f"{path / CONFIG}: JSON nested {depth} levels deep, over the {MAX_JSON_DEPTH} "
                              "accepted, refused")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, str) and fmt.startswith("oceandl-checkpoint/") and fmt != FORMAT:
        raise CheckpointError(f"{path / CONFIG}: checkpoint format {fmt!r}, this oceandl reads {FORMAT!r} "
                              "(upgrade oceandl)")
    if fmt != FORMAT or "model" not in config:
        raise CheckpointError(f"{path / CONFIG}: not an oceandl checkpoint config (format {FORMAT!r} expected)")
    # an edited or foreign config.json: a wrong type failed later as a bare TypeError/ValueError
    # (dict("abc"), an unhashable model name) instead of naming the file and the key
    for key, kinds, what in _CONFIG_TYPES:
        if key in config and not isinstance(config[key], kinds):
            raise CheckpointError(f"{path / CONFIG}: {key} must be {what}, got {type(config[key]).__name__} "
                                  f"{config[key]!r:.60}")
    if config.get("preprocessing"):
        from ..preprocess import check_spec

        # an edited spec (size "x" or 0) failed in the image reader as a bare ValueError/RuntimeError
        # (exit 1), and the other refusals ("fit='x': ...") did not name the checkpoint
        try:
            check_spec(config["preprocessing"])
        except InputError as exc:
            raise CheckpointError(f"{path / CONFIG}: preprocessing {exc}") from None
    return config


def _json_depth(obj: Any) -> int:
    """Nesting depth of parsed JSON (a scalar 0, ``[1]`` 1), counted without recursion."""
    depth, stack = 0, [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            depth = max(depth, d + 1)
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return depth


#: (key, types, in words) of the config.json entries that loading a checkpoint relies on
_CONFIG_TYPES = (("model", str, "a registry name (string)"), ("model_args", list, "a list"),
                 ("model_options", dict, "an object of options"), ("task", str, "a string"),
                 ("classes", (list, type(None)), "a list of names or null"),
                 ("preprocessing", (dict, type(None)), "an object or null"))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    expect_task: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model from its registry name and options and load its weights.

    Parameters
    ----------
    path : the checkpoint folder (or its ``config.json`` / ``weights.safetensors``), str or path.
    device : ``"cpu"``, ``"auto"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`.
    expect_task : refuse a checkpoint of another task (``"classification"``, ...).

    Returns
    -------
    model : nn.Module in eval mode on ``device``.
    config : dict, the checkpoint's metadata.

    Raises
    ------
    CheckpointError
        Missing or corrupt files, a pickle, a task other than ``expect_task``, weights that do not
        fit the declared architecture (the message names the first mismatching tensor: its name,
        shape or kind of dtype), a tensor with NaN or Inf values, or ``model_options`` that build a
        model far larger than the weights file (refused before the model is allocated).
    InputError
        A device that is not a device name, or CUDA on a machine without it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..models import MODELS, get_model

    # "auto" was a bare RuntimeError from torch, "cuda" without CUDA one from the driver, after the read
    device = resolve_device(str(device) if isinstance(device, torch.device) else device)
    folder = _check_folder(path)
    config = read_config(folder)
    if expect_task and config.get("task") != expect_task:
        raise CheckpointError(f"{path}: a checkpoint of task {config.get('task')!r}, but task {expect_task!r} "
                              "is needed")
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS}: corrupt weights ({exc})") from None
    args = config.get("model_args", [])
    options = dict(config.get("model_options", {}))
    # Options that only pick the initial weights (a fine-tuned backbone's pretrained=True or
    # weights=PATH) are not needed to rebuild it: the ImageNet file was read again, so a checkpoint
    # could not be used on a machine without it ("pretrained weights for resnet18 not found").
    for key in getattr(MODELS.get(config["model"]), "init_options", ()):
        options.pop(key, None)
    def build():
        try:
            return get_model(config["model"], *args, **options)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: cannot rebuild model {config['model']!r} ({one_line(exc, with_type=False)})"
                                  ) from None

    # Built first on the meta device (shapes and dtypes, no memory): an edited config.json with
    # hidden=10**7 allocated 5.7 GB for 20 s before the shape check refused it, and channels of
    # 10**7 asked for 3.6 PB. A model that cannot be built there is built for real.
    try:
        with torch.device("meta"):
            skeleton = get_model(config["model"], *args, **options)
    except Exception:  # noqa: BLE001 - reported by build() below, with the real build's error
        skeleton = build()
    own = skeleton.state_dict()
    _check_weights(path, folder, config, state, own, getattr(skeleton, "optional_state", ()))
    del skeleton, own
    model = build()
    model.load_state_dict(with_optional_state(model, state))
    return model.to(device).eval(), config


def _kind(dtype: torch.dtype) -> str:
    """``"floating point"``, ``"complex"``, ``"bool"`` or ``"integer"``: what load_state_dict
    would cast between without a word."""
    if dtype.is_floating_point:
        return "floating point"
    if dtype.is_complex:
        return "complex"
    return "bool" if dtype == torch.bool else "integer"


def _check_weights(path, folder: Path, config: dict, state: dict[str, torch.Tensor], own: dict,
                   optional=()) -> None:
    """Refuse weights that ``load_state_dict`` would not load as they are.

    Parameters
    ----------
    path : the checkpoint as given (for the messages).
    folder : the checkpoint folder.
    config : its config.json.
    state : the tensors of its weights file.
    own : the rebuilt model's state dict (meta tensors: only names, shapes and dtypes are used).
    optional : names of ``own`` a weights file may lack (see :func:`with_optional_state`).
    """
    name = config["model"]
    own_values = sum(v.numel() for v in own.values())
    file_values = sum(v.numel() for v in state.values())
    if own_values > _SIZE_FACTOR * file_values + _SPARE_VALUES:
        options = ", ".join(f"{k}={v!r}" for k, v in config.get("model_options", {}).items()) or "default options"
        raise CheckpointError(f"{folder / CONFIG}: model {name!r} with {options:.120} has {own_values:,} values, "
                              f"far more than the {file_values:,} of {WEIGHTS}; refused before building it")
    for k, v in state.items():
        if k not in own:
            raise CheckpointError(f"{path}: weights do not fit model {name!r} (unexpected tensor {k})")
        if own[k].shape != v.shape:
            raise CheckpointError(f"{path}: weights do not fit model {name!r} "
                                  f"({k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)})")
        if _kind(own[k].dtype) != _kind(v.dtype):
            # load_state_dict copies with a cast: an int32 or bool tensor became whole-number weights
            raise CheckpointError(f"{folder / WEIGHTS}: tensor {k} is {str(v.dtype).removeprefix('torch.')}, the "
                                  f"model expects {_kind(own[k].dtype)} ({str(own[k].dtype).removeprefix('torch.')})")
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()):
            # NaN weights made every prediction NaN, and the top class index 0, without a word
            bad = int((~torch.isfinite(v)).sum())
            raise CheckpointError(f"{folder / WEIGHTS}: tensor {k} has {bad} NaN/Inf value(s) of {v.numel()} "
                                  "(a diverged or corrupted training)")
    missing = [k for k in own if k not in state and k not in optional]
    if missing:
        raise CheckpointError(f"{path}: weights do not fit model {name!r} (missing tensor {missing[0]})")


def with_optional_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the tensors of ``model.optional_state`` it lacks taken from the model itself.

    Those are tensors added to a model after checkpoints of it were written (linear_ae's ``mean``):
    an earlier checkpoint failed to load ("missing tensor mean"), while the model's own value
    (a mean of 0: no centring) is what it was trained with.
    """
    own = model.state_dict()
    extra = {k: own[k] for k in getattr(model, "optional_state", ()) if k in own and k not in state}
    return {**state, **extra} if extra else state


def flatten_state(obj: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (optimizer/scheduler state dicts, RNG states) into tensors and JSON.

    Tensors go to a flat ``{key: tensor}`` dict (for safetensors); the structure with tensor
    placeholders ``{"__tensor__": key}`` is JSON-able.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(o, key):
        if isinstance(o, torch.Tensor):
            tensors[key] = o.detach().contiguous().cpu()
            return {"__tensor__": key}
        if isinstance(o, dict):
            return {"__dict__": [[walk(k, f"{key}.k{i}"), walk(v, f"{key}.{i}")] for i, (k, v) in enumerate(o.items())]}
        if isinstance(o, (list, tuple)):
            return {"__list__" if isinstance(o, list) else "__tuple__": [walk(v, f"{key}.{i}") for i, v in enumerate(o)]}
        if hasattr(o, "item") and hasattr(o, "dtype"):  # numpy scalar
            return o.item()
        return o

    return tensors, walk(obj, prefix or "s")


def unflatten_state(tensors: dict[str, torch.Tensor], meta: Any) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(meta, dict):
        if "__tensor__" in meta:
            return tensors[meta["__tensor__"]]
        if "__dict__" in meta:
            return {unflatten_state(tensors, k): unflatten_state(tensors, v) for k, v in meta["__dict__"]}
        if "__list__" in meta:
            return [unflatten_state(tensors, v) for v in meta["__list__"]]
        if "__tuple__" in meta:
            return tuple(unflatten_state(tensors, v) for v in meta["__tuple__"])
    return meta


def save_training_state(folder: str | os.PathLike, state: dict) -> None:
    """Write (or replace) the resumable training state inside an existing checkpoint folder."""
    folder = Path(folder)
    tensors, meta = flatten_state(state)
    tmp = folder / f".{STATE}.part"
    tmp.mkdir(exist_ok=True)
    _save_tensors(tensors, tmp / f"{STATE}.safetensors")
    (tmp / f"{STATE}.json").write_text(json.dumps(meta))
    for name in (f"{STATE}.safetensors", f"{STATE}.json"):
        os.replace(tmp / name, folder / name)
    shutil.rmtree(tmp, ignore_errors=True)


def load_training_state(folder: str | os.PathLike) -> dict | None:
    """The resumable training state of a checkpoint folder, or ``None`` when it has none."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / f"{STATE}.json").is_file():
        return None
    try:
        meta = json.loads((folder / f"{STATE}.json").read_text())
        tensors = load_file(str(folder / f"{STATE}.safetensors"))
        # a JSON that parses but is not the state's structure (edited, or another file's) was a bare
        # TypeError/KeyError traceback out of unflatten_state: a corrupt state like the rest
        state = unflatten_state(tensors, meta)
        if not isinstance(state, dict):
            raise TypeError(f"a JSON {type(state).__name__}, not the state's object")
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{folder}: corrupt training state ({one_line(exc)})") from None
    return state
