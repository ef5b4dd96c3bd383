"""Data-parallel training under ``torchrun`` (DistributedDataParallel), with the same command line.

``torchrun --nproc_per_node N --no-python oceandl train classifier ...`` starts N copies of the
command; torchrun gives each one ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. :func:`~oceandl.training.engine.fit` calls :func:`init_distributed`, which
does nothing in a plain run (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) and otherwise:

* joins the process group (``gloo`` on CPU, ``nccl`` on CUDA with the ``LOCAL_RANK`` GPU);
* the engine wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`
  (:func:`wrap_model`; batch norm becomes SyncBatchNorm on CUDA) and keeps the unwrapped
  module for evaluation and checkpoints, so saved weights have no ``module.`` prefix;
* each epoch's seeded permutation (identical on every rank) is cut into strided shards, padded to
  equal length, as :class:`~torch.utils.data.DistributedSampler` with ``set_epoch`` does
  (:func:`shard`);
* ``batch_size`` is the *global* batch: each rank takes ``batch_size // world_size``
  (:func:`local_batch_size`). DDP averages the gradients of equal-sized shards of one global
  batch, so one step equals a single-process step on that batch (exactly, apart from float
  summation order, for models without batch norm or dropout);
* loss and accuracy sums are all-reduced (:func:`all_reduce_sum`), so logs, the best epoch and
  early stopping are identical on every rank;
* checkpoints, logs and figures are written by rank 0 only (:func:`is_main_process`), the others
  wait at a :func:`barrier`;
* the process group is destroyed at exit (:func:`destroy`, registered with :mod:`atexit`), after
  the ranks meet at a barrier on a clean exit (gloo).
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import datetime as _dt
import math
import os
import sys
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..errors import InputError, warn

__all__ = ["DistContext", "env_world", "init_distributed", "current", "is_main_process", "barrier",
           "all_reduce_sum", "shard", "local_batch_size", "wrap_model", "broadcast_buffers", "rank_seed",
           "destroy", "distributed"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a distributed run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes, rank on this node (the GPU index on CUDA).
    backend : str
        ``"gloo"`` or ``"nccl"``.
    device : torch.device
        ``cpu`` or ``cuda:LOCAL_RANK``.
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files."""
        return self.rank == 0


_CTX: DistContext | None = None
_ATEXIT = False
_EXIT_SYNC_S = 60.0  # how long a rank waits for its peers when leaving


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"environment variable {name}={raw!r}: expected an integer (set by torchrun)") from None


def env_world() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from the torchrun environment, or None for a plain run.

    A run is distributed when ``WORLD_SIZE`` is set and above 1.

    Raises
    ------
    InputError
        If the variables are not integers or inconsistent (rank outside ``[0, world_size)``).
    """
    world = _env_int("WORLD_SIZE")
    if world is None or world <= 1:
        return None
    rank = _env_int("RANK")
    local = _env_int("LOCAL_RANK")
    rank = 0 if rank is None else rank
    local = rank if local is None else local
    if not 0 <= rank < world or local < 0:
        raise InputError(f"RANK={rank}, LOCAL_RANK={local}, WORLD_SIZE={world}: inconsistent torchrun environment")
    return rank, world, local


def init_distributed(device: str | None = "auto", timeout_s: float = 1800.0) -> DistContext | None:
    """Join the process group when launched by torchrun; None in a plain run.

    Idempotent: later calls return the same context. The backend is ``nccl`` when ``device``
    resolves to CUDA (each process takes GPU ``LOCAL_RANK``), else ``gloo``.

    Parameters
    ----------
    device : ``"auto"``, ``"cpu"`` or ``"cuda"`` (a ``cuda:N`` index is replaced by ``LOCAL_RANK``).
    timeout_s : collective timeout (rank 0 writing a checkpoint while the others wait counts).

    Raises
    ------
    InputError
        Inconsistent environment, ``MASTER_ADDR``/``MASTER_PORT`` missing, or fewer GPUs than
        processes on this node.
    """
    global _CTX, _ATEXIT
    import torch.distributed as dist

    if _CTX is not None and dist.is_available() and dist.is_initialized():
        return _CTX
    env = env_world()
    if env is None:
        return None
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, world, local = env
    name = (device or "auto").lower()
    cuda = torch.cuda.is_available() if name == "auto" else name.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
        if local >= torch.cuda.device_count():
            raise InputError(f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} GPU(s): "
                             "use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local)  # so that "cuda" means this rank's GPU everywhere
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
        if missing:
            raise InputError(f"WORLD_SIZE={world} but {' and '.join(missing)} not set: launch with torchrun")
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=_dt.timedelta(seconds=timeout_s), **kwargs)
    _CTX = DistContext(rank, world, local, backend, dev)
    if not _ATEXIT:
        atexit.register(_destroy_at_exit)
        _ATEXIT = True
    return _CTX


def current() -> DistContext | None:
    """The context of :func:`init_distributed`, or None (plain run, or not initialised yet)."""
    return _CTX


def is_main_process() -> bool:
    """True on rank 0 or in a plain run (reads ``RANK`` when no group is initialised)."""
    if _CTX is not None:
        return _CTX.is_main
    env = env_world()
    return env is None or env[0] == 0


def barrier() -> None:
    """Wait for every rank (no-op in a plain run)."""
    if _CTX is not None:
        import torch.distributed as dist

        if _CTX.backend == "nccl":
            dist.barrier(device_ids=[_CTX.local_rank])
        else:
            dist.barrier()


def all_reduce_sum(*values: float) -> tuple[float, ...]:
    """Sum each value over the ranks (float64); the values themselves in a plain run."""
    if _CTX is None:
        return tuple(values)
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_CTX.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return tuple(t.tolist())


def shard(order: torch.Tensor, pad: bool = True) -> torch.Tensor:
    """This rank's share of an index order that is identical on every rank.

    Like :class:`~torch.utils.data.DistributedSampler`: with ``pad`` the order is extended by its
    own head to a multiple of the world size (every rank then makes the same number of steps,
    which DDP needs), and rank ``r`` takes ``order[r::world_size]``. Consecutive per-rank
    batches of ``b`` samples then together hold exactly the global batch
    ``order[k*b*W:(k+1)*b*W]``. Without ``pad`` (evaluation) shares differ by at most one.
    """
    if _CTX is None:
        return order
    w = _CTX.world_size
    if pad and len(order) % w:
        extra = w - len(order) % w
        order = torch.cat([order, order.repeat(math.ceil(extra / max(len(order), 1)))[:extra]])
    return order[_CTX.rank::w]


def local_batch_size(batch_size: int) -> int:
    """Per-rank batch for a global ``batch_size`` (``batch_size // world_size``).

    Raises
    ------
    InputError
        If the global batch is smaller than the number of processes.
    """
    if _CTX is None:
        return batch_size
    w = _CTX.world_size
    if batch_size < w:
        raise InputError(f"--batch-size {batch_size} is the global batch: it must be >= the {w} processes")
    if batch_size % w:
        warn(f"--batch-size {batch_size} is not a multiple of the {w} processes: "
             f"each takes {batch_size // w} (global batch {batch_size // w * w})")
    return batch_size // w


def wrap_model(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(module, trainer)``: the module to evaluate and save, and the one to train with.

    In a plain run both are ``model``. Distributed, ``trainer`` is DistributedDataParallel around
    ``module`` (on CUDA, batch norm layers first become SyncBatchNorm so that batch statistics
    are those of the global batch; SyncBatchNorm has no CPU kernel, so on CPU/gloo each rank
    normalises with its own shard's statistics). Call it after the model is on the device and
    before building the optimiser.
    """
    if _CTX is None:
        return model, model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if _CTX.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, DDP(model, device_ids=[_CTX.local_rank], output_device=_CTX.local_rank)
    return model, DDP(model)


@torch.no_grad()
def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, before evaluation.

    DDP syncs buffers at the start of each training forward; after the last step each rank holds
    its own update, which would make the validation scores differ between ranks.
    """
    if _CTX is None:
        return
    import torch.distributed as dist

    for b in model.buffers():
        dist.broadcast(b, src=0)


def rank_seed(seed: int) -> int:
    """``seed`` on rank 0 (and in a plain run), a distinct seed on other ranks.

    For the random draws that must differ between ranks (dropout masks, augmentation), while the
    data order stays common to all ranks.
    """
    return seed if _CTX is None else seed + 7_919 * _CTX.rank


def destroy(sync: bool = True) -> None:
    """Leave and destroy the process group (no-op when none); registered at exit.

    Parameters
    ----------
    sync : wait for the other ranks first (gloo: at most ``_EXIT_SYNC_S`` seconds). Pass False
        on an error path, where a peer may be blocked in a collective that will never complete.
    """
    global _CTX
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            # DDP's reducer keeps the gloo group and its threads alive until the process ends
            # (torch 2.x; destroy_process_group does not stop them). A rank that exited while
            # its peer was still tearing down aborted that peer ('terminate called without an
            # active exception', ~1 run in 35 on 2 CPU cores): leave together. gloo's monitored
            # barrier has a timeout, so a peer that failed costs seconds, not a hang.
            gc.collect()
            if sync and _CTX is not None and _CTX.backend == "gloo":
                try:
                    dist.monitored_barrier(timeout=_dt.timedelta(seconds=_EXIT_SYNC_S))
                except Exception:  # a peer failed or already left: release this rank anyway
                    pass
            dist.destroy_process_group()
    finally:
        _CTX = None


def _destroy_at_exit() -> None:
    # an unhandled exception (sys.last_value) means the peers may be stuck: do not wait for them
    destroy(sync=getattr(sys, "last_value", None) is None)


@contextlib.contextmanager
def distributed(device: str | None = "auto") -> Iterator[DistContext | None]:
    """``with distributed() as ctx:`` for scripts: init from the torchrun environment, destroy after."""
    ctx = init_distributed(device)
    ok = False
    try:
        yield ctx
        ok = True
    finally:
        if ctx is not None:
            destroy(sync=ok)
