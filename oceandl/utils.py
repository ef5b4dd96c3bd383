"""Small shared helpers: seeding, devices, atomic outputs, provenance."""
from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

if TYPE_CHECKING:
    import numpy as np
    import torch

from .errors import InputError, OceanDLError

__all__ = [
    "seed_everything",
    "torch_rng_scope",
    "seed_torch",
    "resolve_device",
    "native_bf16",
    "bf16_autocast",
    "resolve_precision",
    "fused_optimizer_kwargs",
    "decay_groups",
    "keep_freed_memory",
    "atomic_path",
    "atomic_paths",
    "clean_stale_parts",
    "check_output_path",
    "provenance",
    "package_version",
    "software_versions",
    "git_commit",
    "git_dirty",
    "data_root",
    "write_json",
]


#: the one wording of the learning-rate rule (:func:`valid_lr`), in every module that takes one
LR_RULE = "must be a finite number > 0"


def valid_lr(lr) -> bool:
    """Whether ``lr`` is a learning rate: a real number (not a bool), finite and > 0.

    The classifier's training and the neural interpolators checked it apart, with two rules and
    three wordings (nan: "must be a number >= 0" in one, "a finite number > 0" in the other; the
    string '0.1' a bare TypeError in TrainConfig, True accepted there as 1.0).
    """
    import numbers  # numpy's ints and floats are registered as Real; numpy itself is not imported here

    return isinstance(lr, numbers.Real) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator seeded with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _cuda_index(device) -> int | None:
    """The GPU index of a CUDA ``device`` (the current one for plain ``"cuda"``), None for others."""
    import torch

    dev = torch.device(device if device is not None else "cpu")
    if dev.type != "cuda":
        return None
    return dev.index if dev.index is not None else torch.cuda.current_device()


@contextlib.contextmanager
def torch_rng_scope(device=None) -> Iterator[None]:
    """Run a block on a private copy of torch's random state: the CPU generator's and, for a
    CUDA ``device``, that GPU's; the caller's states are put back after it.

    A seeded fit (weights init, dropout, data order) used to reset the global generator: a
    notebook's next ``torch.rand`` then depended on which oceandl calls came before.
    """
    import torch

    idx = _cuda_index(device)
    with torch.random.fork_rng(devices=[] if idx is None else [idx]):
        yield


def seed_torch(seed: int, device=None) -> None:
    """Seed torch's CPU generator and, for a CUDA ``device``, that GPU's generator.

    Unlike ``torch.manual_seed`` it leaves the other GPUs' generators alone (and queues no seed
    for a CUDA that is not initialised), so within :func:`torch_rng_scope` nothing leaks.
    """
    import torch

    torch.default_generator.manual_seed(seed)
    idx = _cuda_index(device)
    if idx is not None:
        with torch.cuda.device(idx):
            torch.cuda.manual_seed(seed)


def resolve_device(device: "str | torch.device | None" = "auto"):
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a :class:`torch.device`) into a :class:`torch.device`.

    Raises
    ------
    InputError
        If CUDA is asked for and not available, or ``cuda:N`` names a GPU this machine lacks.
    """
    import torch

    # str(): a torch.device, the PyTorch idiom, failed as a bare AttributeError (no .lower())
    name = str(device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"--device {device}: not a device name (use auto, cpu or cuda)") from exc
    # else the first tensor moved there failed, after the data was read, with torch's multi-line
    # "CUDA error: invalid device ordinal"
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise InputError(f"--device {device}: this machine has {n} GPU(s) (cuda:0 to cuda:{n - 1}; or cuda)")
    return dev


@functools.lru_cache(maxsize=None)  # asked at every training step; the answer never changes
def native_bf16(device) -> bool:
    """Whether ``device`` computes in bfloat16 natively, so that bf16 autocast pays.

    CUDA: compute capability 8.0 or above (Ampere and newer) of that GPU; ROCm: every GPU torch
    supports. CPU: AVX512-BF16 or AMX instructions (measured here on an AVX512-BF16 CPU, 2 cores:
    a U-Net training step 1.75x faster, inference 2.2x; without them bf16 is emulated and was 7x
    slower).
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        if torch.version.hip:
            return bool(torch.cuda.is_bf16_supported())
        # not torch.cuda.is_bf16_supported(): since torch 2.3 it is also True where bf16 is only
        # emulated (V100, T4, sm < 80), which would train those GPUs in slow bf16; and it asks the
        # current GPU, not this one
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, p, lambda: False)()) for p in probes)
    return False


def bf16_autocast(device, enabled: bool = True):
    """``torch.autocast`` to bfloat16 on ``device``'s type when ``enabled``, else a no-op context."""
    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def fused_optimizer_kwargs(params, enabled: bool = True) -> dict:
    """``{"fused": True}`` for a torch SGD/Adam/AdamW over ``params`` where it can run fused, else ``{}``.

    The fused step updates every parameter in one kernel instead of a handful of element-wise
    passes per tensor. AdamW step on a 2-core CPU: smp U-Net (14.3 M parameters) 14.5 -> 4.3 ms,
    U-Net (1.9 M) 2.6 -> 0.65 ms, against a 40-60 ms training step. It needs floating-point
    parameters on the CPU or a CUDA device (the ones torch's fused kernels cover).
    """
    params = list(params)
    ok = enabled and params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return {"fused": True} if ok else {}


def decay_groups(params, weight_decay: float, decay_biases: bool = False) -> list[dict]:
    """Optimizer parameter groups: ``weight_decay`` on the weights (``ndim >= 2``), none on biases
    and normalisation scales/shifts (1-D) unless ``decay_biases``.

    Decaying a bias or a batch-norm scale towards zero only pulls a layer's outputs to zero mean
    and unit scale, not its complexity down (the rule of nanoGPT and timm). One group when
    nothing is exempted (the layout of optimizer states saved before the split).
    """
    params = list(params)
    if not weight_decay or decay_biases:
        return [{"params": params, "weight_decay": weight_decay}]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def resolve_precision(precision: str, device) -> str:
    """``"auto" | "fp32" | "bf16"`` -> ``"fp32"`` or ``"bf16"`` on ``device``: auto is bf16 where it
    is native (:func:`native_bf16`)."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_USER_HEAP_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_")


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or ``None`` where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(need: int, what: str, advice: str) -> None:
    """Refuse, before any work, a request whose arrays alone exceed this machine's memory.

    Raises
    ------
    InputError
        When ``need`` bytes are more than the physical memory (the run would fail or swap for
        hours, then die with an out-of-memory error that names nothing the user asked for).
    """
    total = physical_memory()
    if total is not None and need > total:
        raise InputError(f"{what}: needs about {need / 2**30:.1f} GiB of memory, over this machine's "
                         f"{total / 2**30:.1f} GiB: {advice}")


def keep_freed_memory(device="cpu") -> bool:
    """Let the C heap keep the memory that freed tensors give back, for the next step to reuse.

    A CPU training step or inference batch frees and re-allocates the same large activations
    (12 MB for the course CNN's first block at batch 256, bf16) every time. By default glibc
    serves those from ``mmap`` or trims them off the heap once freed, so every step starts on
    pages the kernel must fault in and zero again. This sets the mmap threshold to its 32 MB cap,
    the trim threshold to 1 GiB and the top pad to 64 MB (what jemalloc/tcmalloc, which PyTorch's
    CPU tuning guide advises to preload, do by design). Measured on a 2-core CPU
    (``oceandl benchmark perf``, ``heap_*`` cases): the page faults of a training step or an
    inference pass go to about none (from 2,000-5,000 per CNN step), tiled U-Net inference runs
    1.1-1.6x faster and a CNN training epoch 1.1-1.5x (glibc's default trims the heap at its own
    discretion, so its side varies from process to process). The cost: up to 1 GiB of freed
    memory stays with the process, reused by its next tensors rather than returned to the system.

    It is process-wide and cannot be undone, so it does nothing when the user chose otherwise:
    ``OCEANDL_KEEP_FREED_MEMORY=0``, their own ``MALLOC_*_`` or ``GLIBC_TUNABLES`` malloc settings,
    or another allocator in ``LD_PRELOAD``; and nothing off glibc (macOS, Windows, musl). dask's
    nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back between
    tasks), so chunked gap filling on a dask cluster keeps dask's choice.
    Training and inference call it with their device (:func:`oceandl.training.fit`, ``predict``,
    the neural interpolators); only the CPU's tensors live on the C heap, so for any other device
    it does nothing.

    Returns
    -------
    bool
        True when the setting is in force for this process.
    """
    import torch

    return torch.device(device).type == "cpu" and _keep_freed_memory()


@functools.lru_cache(maxsize=None)  # process-wide and not undoable: set once, asked at every fit/predict
def _keep_freed_memory() -> bool:
    if os.environ.get("OCEANDL_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(k in os.environ for k in _USER_HEAP_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if any(a in os.environ.get("LD_PRELOAD", "") for a in ("jemalloc", "tcmalloc", "mimalloc")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success; the mmap threshold first, as glibc caps it at 32 MB on 64-bit
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20) and mallopt(_M_TRIM_THRESHOLD, 1 << 30)
                and mallopt(_M_TOP_PAD, 64 << 20))


def check_output_path(path: str | os.PathLike, overwrite: bool = False, inputs=(), *, kind: str | None = None,
                      replaceable: Callable[[Path], bool] | None = None, what: str = "output",
                      parents: bool = False) -> Path:
    """Refuse to replace an existing output unless ``overwrite``; check its folder exists.

    ``inputs``: paths the command reads; an output that is one of them (same file, by any
    name) is refused even with ``overwrite``, which would replace the data with the result.

    ``kind``: what the command writes, ``"file"`` or ``"folder"``. With ``overwrite``, a file
    output never replaces a folder, and a folder output (a checkpoint, synthetic images) never
    replaces a file, the current folder (or one holding it), or a non-empty folder that
    ``replaceable`` does not recognise as an earlier ``what``: ``-o data --overwrite`` used to
    delete a folder of data and put the result in its place.

    ``parents``: missing folders above ``path`` are allowed (the caller creates them, as
    :func:`~oceandl.pipelines.run_pipeline` does for ``runs/NAME``) when the nearest existing one is
    a writable folder.
    """
    path = Path(path)
    if not str(path).strip() or str(path) == ".":
        # `-o ""` is Path("."): with --overwrite it tried to swap the current folder out
        raise InputError(f"{str(path)!r}: not a usable output path; name the {what} to write")
    for src in inputs:
        try:
            same = src is not None and os.path.samefile(path, src)
        except OSError:  # either one missing: not the same file
            same = False
        if same:
            named = "" if str(src) == str(path) else f" ({src})"
            raise InputError(f"{path}: is the input file{named}; write the output to another path "
                             "(--overwrite would replace the input with it)")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise InputError(f"{path}: already exists (use --overwrite to replace it)")
    if path.exists() and kind is not None:
        is_dir = path.is_dir() and not path.is_symlink()
        if kind == "file" and is_dir:
            raise InputError(f"{path}: is a folder; --overwrite replaces a file with the {what}, never a folder; "
                             "choose another -o")
        if kind == "folder":
            if not is_dir:
                raise InputError(f"{path}: is a file; --overwrite replaces a folder with the {what}, never a file; "
                                 "choose another -o")
            if Path.cwd().resolve().is_relative_to(path.resolve()):
                raise InputError(f"{path}: holds the current folder; choose another -o")
            if any(path.iterdir()) and not (replaceable is not None and replaceable(path)):
                raise InputError(f"{path}: not an earlier {what}, so --overwrite does not replace it (that "
                                 "would delete what it holds); choose another -o or remove it yourself")
    parent = path.parent if str(path.parent) else Path(".")
    if parents:
        while not (parent.exists() or parent.is_symlink()) and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        raise InputError(f"{path}: folder {parent} does not exist")
    if not parent.is_dir():  # else NotADirectoryError (exit 1) at write time, after the work
        raise InputError(f"{path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):  # else PermissionError (exit 1) naming a .part file, after the work
        raise InputError(f"{path}: folder {parent} is not writable")
    return path


def _tmp_tag() -> str:
    """``host-pid``: which process owns a temporary name (stale ones are cleaned by that host)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", platform.node() or "host")[:40]
    return f"{host}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is someone else's (or unknown): leave its files alone
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def clean_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by killed writers of this host; return them.

    :func:`atomic_path` names its temporaries ``.<name>.<host>-<pid>-<random>.part`` (and
    ``.old`` for the previous folder while it is swapped out). Only entries whose host is this
    machine and whose process is gone are removed, so a writer still running (here or on
    another node of a shared file system) keeps its files.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    host = _tmp_tag().rsplit("-", 1)[0]
    return _remove_dead(parent, rf"^\.{re.escape(path.name)}\.{re.escape(host)}-(\d+)-[^.]*\.(part|old)$")


def _remove_dead(folder: Path, pattern: str) -> list[Path]:
    """Remove the entries of ``folder`` whose name matches ``pattern`` (its group 1: the writer's
    pid, on this host) and whose writer is gone; return them."""
    pat = re.compile(pattern)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pat.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    return removed


def clean_stale_series(folder: str | os.PathLike, prefix: str = ".oceandl-series.") -> list[Path]:
    """Remove, from ``folder``, the hidden series files (``<prefix><host>-<pid>-<random>.nc``) and
    their temporaries (``.<that name>.<host>-<pid>-<random>.part``) that killed writers of this host
    left; return them. A writer still running (here or on another host) keeps its files."""
    host = _tmp_tag().rsplit("-", 1)[0]
    return _remove_dead(Path(folder), rf"^\.?{re.escape(prefix)}{re.escape(host)}-(\d+)-")


def _renameat2(a: Path, b: Path, flags: int) -> int | None:
    """Linux ``renameat2(a, b, flags)``: 0 on success, else its errno; None where there is no
    renameat2 (macOS, musl, Windows)."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    return 0 if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flags) == 0 else ctypes.get_errno()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    return _renameat2(a, b, 2) == 0  # RENAME_EXCHANGE


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` (a file or a folder) to ``dst`` unless ``dst`` exists: FileExistsError then,
    and ``src`` is left where it was.

    ``os.replace`` replaces a file, and ``os.rename`` replaces an empty folder on POSIX: the check
    of ``dst`` made when a run started cannot cover another run that writes it meanwhile. Linux's
    ``renameat2(RENAME_NOREPLACE)`` tests and renames in one step; where it is missing (or the
    file system refuses the flag), a file is hard-linked (which never replaces) and a folder's name
    is taken with ``mkdir`` (which never replaces either) before the rename onto that empty folder.
    """
    err = _renameat2(src, dst, 1)  # RENAME_NOREPLACE
    if err == 0:
        return
    if err == errno.EEXIST:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    if err not in (None, errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        raise OSError(err, os.strerror(err), str(src))
    if src.is_dir() and not src.is_symlink():
        os.mkdir(dst)  # FileExistsError if taken
        try:
            os.rename(src, dst)
        except OSError:
            os.rmdir(dst)
            raise
        return
    try:
        os.link(src, dst, follow_symlinks=False)  # FileExistsError if taken
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: the small race of a test, then a rename
        if dst.exists() or dst.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


#: free bytes below which a folder's disk is taken as full when writing there fails
_FULL_DISK = 1 << 20

#: the errnos of a write that found no room: no space left, or the user's disk quota reached
_NO_ROOM = (errno.ENOSPC, getattr(errno, "EDQUOT", 122))

#: a RuntimeError that says this (lower case) is a write's failure whatever raised it: torch.save's
#: "PytorchStreamWriter failed writing file ...: file write failed"
_WRITE_WORDS = ("file write failed", "failed writing")

#: a RuntimeError that says this (lower case) is a write that found no room (the errno's text)
_NO_ROOM_WORDS = ("no space left on device", "disk quota exceeded")


#: netCDF-C's messages (nc_strerror, lower case) of a write refused for what it was given (a name,
#: an attribute or value netCDF cannot store), not for the disk: bad input, exit 2
_NETCDF_INPUT_WORDS = ("name contains illegal characters", "string match to name in use",
                       "not a valid data type", "attempt to convert between text & numbers",
                       "numeric conversion not representable", "nc_max_name exceeded", "bad chunk sizes")

#: the errors a netCDF write raises; :func:`write_error` says each as the input's or the write's
WRITE_ERRORS = (OSError, RuntimeError, ValueError, TypeError, OverflowError)


def write_error(path: str | os.PathLike, exc: BaseException, what: str = "cannot write netCDF") -> OceanDLError:
    """The one-line error of a failed write of ``path`` (``"{path}: {what} ({exc})"``), by its cause:
    the one rule of the in-memory (:func:`oceandl.io.write_netcdf`) and chunked (:func:`writing`) writes.

    Refused for the data or attributes given (xarray's ValueError/TypeError: an attribute netCDF cannot
    store, a '/' in a name, complex or mixed object data; netCDF-C's "Name contains illegal characters"
    and the like, :data:`_NETCDF_INPUT_WORDS`): an :class:`InputError` (exit 2), the user's to fix.
    An I/O failure (an OSError: EIO, a permission, a full disk, a quota; netCDF/HDF5's other errors,
    "NetCDF: HDF error"): an :class:`OceanDLError` (exit 1), marked ``write_failure`` so that
    :func:`atomic_path` says a full disk when it is one. In-memory HDF errors and EIO were exit 2 (bad
    input) until audit 124, the same with ``--chunks`` exit 1."""
    from .errors import one_line

    text = str(exc).lower()
    to_input = isinstance(exc, (ValueError, TypeError, OverflowError)) or (
        isinstance(exc, RuntimeError) and any(w in text for w in _NETCDF_INPUT_WORDS))
    err = (InputError if to_input else OceanDLError)(f"{path}: {what} ({one_line(exc)})")
    err.write_failure = not to_input
    return err


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Say that an error in the block is writing ``path``'s failure: one of :data:`WRITE_ERRORS`
    (netCDF/HDF5's "NetCDF: HDF error" names no file) is raised again as one line naming ``path``
    (:func:`write_error`: exit 2 for what netCDF cannot store, 1 for an I/O failure, marked as a
    write's for :func:`_is_write_failure`).

    Only the output's own calls go in it (the chunked writer's netCDF calls): the same "NetCDF: HDF
    error" from reading a corrupt input, inside the same atomic block, is no write and never said to
    be the disk's."""
    try:
        yield
    except WRITE_ERRORS as exc:
        if isinstance(exc, OceanDLError) or _out_of_memory_text(exc):
            raise
        raise write_error(path, exc) from exc  # the in-memory write's words: one wording for both


def _out_of_memory_text(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from (its cause, else its unsuppressed context)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _no_room(exc: BaseException) -> str | None:
    """"quota" or "full" when ``exc`` (or an error it was raised from) is a write that found no room:
    errno EDQUOT / ENOSPC (or their text in a RuntimeError); None otherwise."""
    for e in _chain(exc):
        text = str(e).lower()
        if (isinstance(e, OSError) and e.errno == _NO_ROOM[1]) or (
                isinstance(e, RuntimeError) and "disk quota exceeded" in text):
            return "quota"
        if (isinstance(e, OSError) and e.errno == _NO_ROOM[0]) or (
                isinstance(e, RuntimeError) and "no space left on device" in text):
            return "full"
    return None


def _is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a write's failure, which a nearly full disk
    explains: one found no room (:func:`_no_room`), one raised by :func:`writing` or by
    :func:`oceandl.io.write_netcdf` (marked ``write_failure``), or a RuntimeError saying it wrote
    (:data:`_WRITE_WORDS`). Not an input's error found inside an atomic block (an InputError of its
    own, a path not found), nor netCDF's "NetCDF: HDF error" or a PermissionError of a read: a
    corrupt input read lazily inside the chunked write said so, and an unreadable file, whenever the
    disk had under 1 MiB free."""
    if _no_room(exc):
        return True
    for e in _chain(exc):
        if getattr(e, "write_failure", False):
            return True
        if isinstance(e, RuntimeError) and any(w in str(e).lower() for w in _WRITE_WORDS):
            return True
    return False


def _say_full_disk(exc: BaseException, path: Path, folder: Path) -> None:
    """Raise ``exc`` saying that the disk of ``folder`` is full, or the user's quota there reached, when
    it is (a write to ``path`` failed): netCDF's HDF5 reports no room as "RuntimeError: NetCDF: HDF error"
    (or "Permission denied"), naming neither the file nor the cause. Raised as an :class:`OceanDLError`
    (exit 1), never an :class:`InputError`: a full disk or a quota is no fault of the input.

    Said for an errno ENOSPC / EDQUOT whatever the free space reported (a quota leaves the disk's room;
    no inodes left, too), and for another write's failure (:func:`_is_write_failure`) while under
    :data:`_FULL_DISK` bytes are free. Returns (the caller re-raises ``exc``) otherwise: a bad input
    found inside the atomic block (the chunked fill checks its units there, and reads its input)
    stays the error it is (exit 2 for an InputError), whatever the disk."""
    kind = _no_room(exc)
    if kind is None and not _is_write_failure(exc):
        return
    if any(w in str(exc) for w in ("is full (", "(it is full)", "disk quota on ")):
        return  # said by an atomic_path inside this one
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if kind is None and (free is None or free >= _FULL_DISK):
        return  # room: the failure is something else, said as it is
    if kind == "quota":
        note = f"your disk quota on {folder} is exceeded; nothing was written (free some of it, or write elsewhere)"
    elif free is None or free >= _FULL_DISK:  # ENOSPC with room reported: no inodes left, or reserved blocks
        note = f"no space left on the disk of {folder} (it is full); nothing was written"
    else:
        note = f"the disk of {folder} is full ({free:,} bytes free); nothing was written"
    if isinstance(exc, OceanDLError):
        # an OceanDLError (exit 1) whatever the writer raised: write_netcdf's failures are InputErrors
        # (exit 2, a bad value or path), but a full disk is no fault of the input
        raise OceanDLError(f"{str(exc).rstrip('.')}; {note}") from exc
    from .errors import one_line

    raise OceanDLError(f"{path}: cannot write it ({one_line(exc)}); {note}") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary is ``.<name>.<host>-<pid>-<random>.part`` in the target folder (same file
    system, so the final rename is atomic). An exception in the block removes it and leaves any
    existing ``path`` untouched. A kill (SIGKILL, node failure) mid-write also leaves ``path``
    untouched, but the ``.part`` stays behind; the next ``atomic_path`` on the same target
    removes such leftovers of dead processes of this host (:func:`clean_stale_parts`).

    Without ``overwrite``, the final move never replaces anything: a ``path`` that appeared while
    the block ran (another run writing the same output) is kept and :class:`InputError` raised,
    the temporary removed (:func:`_rename_noreplace`). With it, files replace files with
    ``os.replace``, and a folder is swapped in with one atomic
    ``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere the old folder is first renamed to
    ``.<name>.<host>-<pid>-<random>.old`` (so a kill between the two renames loses nothing).
    """
    path = check_output_path(path, overwrite)
    parent = path.parent if str(path.parent) else Path(".")
    clean_stale_parts(path)
    stem = f".{path.name}.{_tmp_tag()}-"
    fd, tmp = tempfile.mkstemp(prefix=stem, suffix=".part", dir=parent)
    os.close(fd)
    os.unlink(tmp)  # the writer creates it (file or folder)
    tmp = Path(tmp)
    try:
        try:
            yield tmp
        except (OSError, RuntimeError, OceanDLError) as exc:
            _say_full_disk(exc, path, parent)
            raise
        if not (tmp.exists() or tmp.is_symlink()):
            raise OceanDLError(f"{path}: nothing was written")
        if not overwrite:
            # `path` was checked when the block began; another run (same -o, no --overwrite either)
            # may have written it since: its output is kept, never replaced (or deleted) by this one
            try:
                _rename_noreplace(tmp, path)
            except FileExistsError:
                raise InputError(f"{path}: already exists: written by another run while this one ran; it is "
                                 "left as it was and this output is discarded (use --overwrite to replace it)") from None
            return
        old_is_dir = path.is_dir() and not path.is_symlink()
        if old_is_dir or (tmp.is_dir() and path.exists()):
            if not _exchange(tmp, path):
                old = tmp.with_name(tmp.name[: -len(".part")] + ".old")
                os.replace(path, old)
                os.replace(tmp, path)
                tmp = old
            # tmp now holds the previous output; the finally clause removes it
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike], overwrite: bool = False) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several files written together (a file per day): yield a temporary
    path beside each; move them all onto their targets only if the block succeeds.

    Every target is checked before the block (none may exist without ``overwrite``) and again
    before the first move: a failure in the block, or a target another run wrote meanwhile, leaves
    every target as it was and removes the temporaries. The moves themselves are renames in one
    folder, so a kill can interrupt them only between two renames.
    """
    paths = [check_output_path(p, overwrite) for p in paths]
    tmps = []
    try:
        for path in paths:
            clean_stale_parts(path)
            parent = path.parent if str(path.parent) else Path(".")
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_tmp_tag()}-", suffix=".part", dir=parent)
            os.close(fd)
            os.unlink(tmp)  # the writer creates it
            tmps.append(Path(tmp))
        try:
            yield list(tmps)
        except (OSError, RuntimeError, OceanDLError) as exc:
            _say_full_disk(exc, paths[0], paths[0].parent if str(paths[0].parent) else Path("."))
            raise
        for tmp, path in zip(tmps, paths):
            if not (tmp.exists() or tmp.is_symlink()):
                raise OceanDLError(f"{path}: nothing was written")
            if not overwrite and (path.exists() or path.is_symlink()):
                raise InputError(f"{path}: already exists: written by another run while this one ran; every "
                                 "output of this one is discarded (use --overwrite to replace them)")
        for tmp, path in zip(tmps, paths):
            if overwrite:
                os.replace(tmp, path)
            else:
                try:
                    _rename_noreplace(tmp, path)
                except FileExistsError:
                    raise InputError(f"{path}: already exists: written by another run while this one ran; it "
                                     "is left as it was (use --overwrite to replace it)") from None
    finally:
        for tmp in tmps:
            if tmp.exists() or tmp.is_symlink():
                _remove(tmp)


def _git(args: list[str], start: str | os.PathLike | None) -> str | None:
    """Output of ``git <args>`` run in ``start`` (default: this package's folder); None on failure."""
    where = Path(start) if start else Path(__file__).resolve().parent
    if not start and _run_git(["ls-files", "--error-unmatch", Path(__file__).name], where) is None:
        # An installed oceandl (site-packages of a virtualenv inside some project's repository) is
        # not a checkout, but git found the enclosing repository and its commit and dirty flag were
        # recorded as oceandl's. Only a repository that tracks this very file is oceandl's source.
        return None
    return _run_git(args, where)


def _run_git(args: list[str], where: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(start: str | os.PathLike | None = None) -> str | None:
    """The git commit of the oceandl source tree (``None`` outside a checkout)."""
    out = _git(["rev-parse", "HEAD"], start)
    return out.strip() or None if out is not None else None


def git_dirty(start: str | os.PathLike | None = None) -> bool | None:
    """Whether tracked files of the checkout differ from its commit (``None`` outside a checkout)."""
    out = _git(["status", "--porcelain", "--untracked-files=no"], start)
    return bool(out.strip()) if out is not None else None


def package_version(dist: str) -> str | None:
    """Version of the distribution ``dist`` (``"numpy"``, ``"segmentation-models-pytorch"``), without
    importing it; ``None`` when it is not installed.

    Parameters
    ----------
    dist : str
        The distribution's name, as pip knows it.

    Returns
    -------
    str or None
        The ``__version__`` of its module when that is already imported, else its installed metadata's.

    Notes
    -----
    An imported module's own version wins: torch's carries its build (this torch is 2.14.1 in its
    wheel's metadata but runs as 2.14.1+cu130; the local tag says which kernels computed), and the
    oceandl that runs may be a source tree beside another installed one.
    """
    import sys
    from importlib import metadata

    ver = getattr(sys.modules.get(dist.replace("-", "_")), "__version__", None)
    if ver:
        return str(ver)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def software_versions(*libraries: str) -> str:
    """The software that computed a result, in one line for a file's ``oceandl_software`` attribute:
    ``"oceandl 0.1.0; numpy 2.4.6; xarray 2026.9.0; torch 2.14.1+cu130"``.

    Parameters
    ----------
    *libraries : str
        Distributions whose code computed the result beside oceandl, numpy and xarray (always
        listed): ``"torch"`` for a network or a torch SVD, ``"torchvision"``, ``"segmentation-models-pytorch"``.
        Only those named are listed (a numpy-only fill does not say torch, nor imports it).

    Returns
    -------
    str
        ``"<name> <version>"`` pairs joined by ``"; "`` (``unknown`` for one not installed).
    """
    names = dict.fromkeys(("oceandl", "numpy", "xarray", *libraries))  # ordered, once each
    return "; ".join(f"{n} {package_version(n) or 'unknown'}" for n in names)


def provenance() -> dict:
    """Versions of oceandl and its main dependencies, the platform and the git commit."""
    # imported for torch's build, not its wheel's metadata (see package_version)
    import torch  # noqa: F401

    versions = {pkg: package_version(pkg) for pkg in
                ("oceandl", "torch", "torchvision", "numpy", "xarray", "segmentation-models-pytorch")}
    return {
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
    }


def data_root() -> Path | None:
    """Folder of real reference data: ``$OCEANDL_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("OCEANDL_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    cand = here.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def _strict_json(o):
    """``o`` with NaN and infinities as ``None`` (JSON null), NumPy scalars and arrays as Python ones."""
    import numpy as np  # here, not at the top: the CLI imports this module to start (45 ms of its 136)

    if isinstance(o, np.ndarray):
        o = o.tolist()
    elif isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _strict_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict_json(v) for v in o]
    return o


def write_json(obj, path: str | os.PathLike) -> None:
    """Write JSON atomically: NumPy values converted, NaN and infinities written as ``null``.

    Python's ``json`` writes a bare ``NaN``, which is not JSON: ``jq``, JavaScript and strict
    parsers refuse the whole file (a benchmark's empty bin or undefined score made its
    results.json unreadable to them).
    """

    import numpy as np

    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o)}")

    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(_strict_json(obj), indent=2, default=default, allow_nan=False))
    os.replace(tmp, path)
