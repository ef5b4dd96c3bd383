"""Small shared helpers: seeding, devices, atomic outputs, provenance."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError

__all__ = [
    "seed_everything",
    "resolve_device",
    "atomic_path",
    "check_output_path",
    "provenance",
    "git_commit",
    "data_root",
    "write_json",
]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator seeded with ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def resolve_device(device: str | None = "auto"):
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a :class:`torch.device`.

    Raises
    ------
    InputError
        If CUDA is asked for and not available.
    """
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"--device {device}: not a device name (use auto, cpu or cuda)") from exc


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse to replace an existing output unless ``overwrite``; check its folder exists."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path}: already exists (use --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{path}: folder {parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A failure (or a kill) mid-write leaves any existing ``path`` untouched and no partial file.
    Works for files and folders (the temporary name is a fresh name in the same folder, so the
    final rename is atomic on POSIX file systems).
    """
    path = check_output_path(path, overwrite)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    os.close(fd)
    os.unlink(tmp)  # the writer creates it (file or folder)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            import shutil

            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def git_commit(start: str | os.PathLike | None = None) -> str | None:
    """The git commit of the oceandl source tree (``None`` outside a checkout)."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict:
    """Versions of oceandl and its main dependencies, the platform and the git commit."""
    from importlib import metadata

    versions = {}
    for pkg in ("oceandl", "torch", "torchvision", "numpy", "xarray", "segmentation-models-pytorch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }


def data_root() -> Path | None:
    """Folder of real reference data: ``$OCEANDL_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("OCEANDL_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    cand = here.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def write_json(obj, path: str | os.PathLike) -> None:
    """Write JSON with numpy scalars converted, atomically."""

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
    tmp.write_text(json.dumps(obj, indent=2, default=default))
    os.replace(tmp, path)
