"""Speed benchmark: the oceandl engine against the course's loop and the raw model step, in one run.

Every case runs in this process, interleaved with the others and repeated (``repeats``); the
median throughput is reported, so a machine shared with other jobs slows all cases alike and the
ratios stay meaningful. Cases:

* ``matmul_peak``: GFLOP/s of a large fp32 matmul on the device, the arithmetic ceiling. Every
  MNIST case also reports ``gflops`` (samples/s x the training FLOPs per sample, counted by
  ``torch.utils.flop_counter``) and ``fraction_of_peak``; a ``_course`` case reports
  ``ceiling_ratio`` = peak / its GFLOP/s, the most any fp32 loop could gain over it here.
* ``mnist_<model>_course``: a faithful re-implementation of the course's loop on MNIST-shaped
  synthetic data: a torchvision-style dataset that turns each uint8 array into a PIL image and
  then a tensor (``ToTensor`` + ``Normalize``), a ``DataLoader`` of single items with batch 20,
  SGD, ``loss.item()`` and the accuracy count every step.
* ``mnist_<model>_raw``: the bare step (forward, loss, backward, optimiser step) over pre-made
  device tensors at the engine's batch size and with its optimiser (fused where torch has it):
  the ceiling of any training loop.
* ``mnist_<model>_engine``: :func:`oceandl.training.fit` with the same model, optimiser, batch
  size and epochs (fp32), timed around the whole call (data loading included); then its switches
  (``_bf16`` autocast, ``_channels_last``, ``_compile`` with its compile time reported apart,
  ``_cuda_graphs`` on CUDA only), each compared with the fp32 engine.
* ``interp_<method>_train`` against ``interp_<method>_raw``: the neural interpolator's training
  loop (random patches, mask transfer) with its default switches (``precision="auto"``: bf16
  where native; ``channels_last``) against the raw step of the same network at the same batch,
  patch size, precision and layout; its setup (normalisation, building the network) is reported
  apart. ``interp_<method>_train_plain``: the same training in fp32 and the default layout;
  ``interp_<method>_train_unfused``: with AdamW's per-tensor step instead of the fused one; each
  compared with the default (a ratio under 1 is what the switch gains).
* ``interp_infer_model`` (Mpx/s of model compute on pre-made tiles, as inference runs it) and
  ``interp_infer_model_plain`` (fp32, default layout), ``interp_infer_tiled`` (the
  interpolator's tiled, blended inference over the cube) and ``interp_end_to_end`` (netCDF in,
  trained checkpoint, netCDF out; ``_uncompressed``: the output written with ``complevel=0``).
* ``tiled_memory_<G>``: tiled inference of a (time, G, G) cube at two grid sizes, each in a fresh
  subprocess: the peak memory added by inference, less the output arrays (``working_host_mb``),
  does not grow with G; ``untiled_memory_<G>`` runs the largest grid in one pass for contrast.
* ``read_files_inprocess`` and ``read_files_workers``: reading a folder of GeoTIFF vignettes
  (TenGeoP-SARwv layout) into tensors, as ``train classifier`` and ``classify`` do, in this
  process against the automatic choice of worker processes (``workers`` says how many it took);
  ``stream_train_inprocess`` and ``stream_train_workers``: one epoch of a small CNN streamed from
  those files (the engine's path for data sets over ``max_materialize_mb``), likewise.
* ``heap_<work>_returned`` and ``heap_<work>_kept`` (CPU): the engine's CNN training epoch
  (``cnn_train``) and the interpolator's tiled inference (``infer``), each in a fresh subprocess,
  with the C heap returning freed memory to the system (``OCEANDL_KEEP_FREED_MEMORY=0``, glibc's
  default) against keeping it (:func:`oceandl.utils.keep_freed_memory`, the default): what the
  page faults of re-allocated activations cost. The setting is process-wide, so every other case
  runs with it in force (as the library sets it on the CPU), the course loop included.
* ``dineof_cpu`` (and ``dineof_cuda`` on CUDA): DINEOF with a fixed number of modes on a cube;
  on CUDA the GPU/CPU speed ratio and the largest difference of the results.
  ``dineof_cpu_subspace``: the same with ``svd="subspace"`` against the default, with the largest
  difference of the fills (``max_abs_diff_vs_auto``).
* ``eof_full`` and ``eof_randomized``: :func:`oceandl.eof` of a complete synthetic cube with
  LAPACK's full SVD against the randomized truncated one (``solver="auto"`` on large fields), with
  the largest relative difference of the eigenvalues and absolute difference of the EOFs.

``results.json`` (under ``results``) maps each case to ``throughput`` (median), ``unit``, ``reference``, ``ratio``
(median over the passes of throughput / the reference's in the same pass), ``ratio_to_raw`` (engine
cases), ``peak_host_mb`` (the process's peak resident memory during the case), ``peak_device_mb``
(CUDA: the process's peak allocated GPU memory; for the cases run in a subprocess, ``tiled_memory_*``,
that process's), ``device``, the torch and numpy versions, the torch threads and case-specific extras.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from oceandl.errors import InputError
from oceandl.utils import bf16_autocast, decay_groups, fused_optimizer_kwargs, keep_freed_memory, native_bf16

from .runner import Pipeline, RunContext, resolve_fast

__all__ = ["PerfConfig", "PIPELINE", "run", "course_loop", "raw_step_loop", "peak_rss_mb", "reset_peak_rss", "PeakRSS"]


@dataclass(frozen=True)
class PerfConfig:
    """Sizes and switches of the speed benchmark (``--set key=value`` overrides any of them).

    ``fast=True`` shrinks everything to a seconds-long smoke run (tiny models, no torch.compile).
    """

    seed: int = 0
    fast: bool = False
    repeats: int = 3                      # timed passes per case (median reported)
    threads: int = 0                      # torch intra-op threads; 0 = the machine's default
    # MNIST-shaped classification
    classifiers: tuple[str, ...] = ("mlp", "cnn")
    n_samples: int = 2048                 # images per timed pass
    epochs: int = 1
    batch_size: int = 256                 # engine and raw step
    course_batch_size: int = 20
    lr: float = 0.01
    # engine switches, each a measured case
    bf16: bool = True
    channels_last: bool = True
    compile: bool = True
    cuda_graphs: bool = True              # CUDA only (torch.compile mode="reduce-overhead")
    matmul_size: int = 2048               # the fp32 matmul that measures the machine's arithmetic ceiling
    # neural interpolation
    interp_methods: tuple[str, ...] = ("unet", "smp_unet")
    interp_steps: int = 16                # training steps per pass (8 left the train/raw ratio to noise)
    interp_batch: int = 16
    patch: int = 64
    cube: tuple[int, ...] = (32, 128, 128)  # (time, lat, lon) of the interpolation cube
    tile: int = 128
    overlap: int = 32
    infer_batch: int = 8
    memory_grids: tuple[int, ...] = (128, 512)  # 16x the pixels; the largest also runs untiled
    memory_time: int = 8
    # reading image files (0 files: no such case)
    read_files: int = 2000
    read_size: int = 128
    # DINEOF
    dineof_cube: tuple[int, ...] = (365, 64, 64)
    dineof_modes: int = 8
    dineof_subspace: bool = True          # also time svd="subspace" on the CPU (dineof_cpu_subspace)
    dineof_max_iter: int = 0              # iterations per mode; 0 = the method's default (to convergence).
    # A fixed count makes both devices do the same arithmetic, so the GPU/CPU ratio of a large cube
    # (the 3650 x 256 x 256) is measurable without running the CPU to convergence.
    # EOF analysis: the randomized truncated SVD against the full one (0 time steps: no such case)
    eof_cube: tuple[int, ...] = (730, 96, 96)
    eof_modes: int = 10
    # the C heap's setting (oceandl.utils.keep_freed_memory) against glibc's default: heap_* cases,
    # each side in a fresh process (seconds apiece; glibc only)
    heap: bool = True


_FAST = {
    "n_samples": 200, "batch_size": 50, "repeats": 1, "compile": False, "interp_steps": 2, "interp_batch": 4,
    "patch": 32, "cube": (6, 40, 40), "tile": 32, "overlap": 8, "infer_batch": 4, "memory_grids": (32, 64),
    "memory_time": 3, "dineof_cube": (24, 16, 16), "dineof_modes": 3, "interp_methods": ("unet",),
    "matmul_size": 256, "read_files": 200, "read_size": 32, "eof_cube": (60, 24, 24), "eof_modes": 3,
}
# what a case measures (time, speed, memory) or picks from a measurement (workers): everything else
# in a row (units, references, losses, differences between methods) is reproduced by the config
_TIMINGS = ("throughput", "runs", "ratio", "ratio_to_raw", "gflops", "fraction_of_peak", "ceiling_ratio",
            "ceiling_ratio_bf16", "compile_seconds", "fit_seconds", "setup_seconds", "seconds", "ms_per_iteration",
            "peak_host_mb", "peak_device_mb", "added_host_mb", "working_host_mb", "inference_device_mb",
            "page_faults", "workers")
_FAST_MODELS = {"mlp": {"hidden": (64,)}, "cnn": {"channels": (8, 16), "hidden": 32},
                "unet": {"width": 8, "depth": 2}, "resae": {"width": 8, "depth": 2},
                "convae": {"width": 8, "depth": 2, "latent_channels": 8},
                "smp_unet": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}}


# ----------------------------------------------------------------------------------- measurement
def reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (Linux ``clear_refs``).

    Returns True only when the reset took effect: some sandboxes accept the write to
    ``/proc/self/clear_refs`` and ignore it, so the high-water mark is checked afterwards.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    hwm, rss = _status_mb("VmHWM:"), _status_mb("VmRSS:")
    return hwm == hwm and rss == rss and hwm - rss < 2.0  # NaN-safe: unknown means not reset


def _status_mb(key: str) -> float:
    """One ``/proc/self/status`` memory line in MiB; NaN where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (since the last effective :func:`reset_peak_rss`)."""
    hwm = _status_mb("VmHWM:")
    if hwm == hwm:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _rss_mb() -> float:
    return _status_mb("VmRSS:")


class PeakRSS:
    """Peak resident memory (MiB) of this process inside a ``with`` block.

    Uses the kernel's high-water mark when it can be reset; otherwise a daemon thread samples
    ``VmRSS`` every ``interval`` seconds (``exact`` is then False: spikes shorter than the
    interval can be missed, which the report says).

    Examples
    --------
    >>> with PeakRSS() as m:
    ...     a = np.ones(2**20)
    >>> m.peak >= m.base
    True
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.base = self.peak = float("nan")
        self.exact = False
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakRSS":
        self.base = _rss_mb()
        self.exact = reset_peak_rss()
        self.peak = self.base
        if not self.exact:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            rss = _rss_mb()
            if rss == rss:
                self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        if self.exact:
            self.peak = peak_rss_mb()
        else:
            assert self._stop is not None and self._thread is not None
            self._stop.set()
            self._thread.join()
            rss = _rss_mb()
            if rss == rss:
                self.peak = max(self.peak, rss)

    @property
    def added(self) -> float:
        """Peak minus the resident memory at entry, MiB (>= 0)."""
        return max(self.peak - self.base, 0.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Case:
    """One timed case: its runs (throughputs), peak memory and extras."""

    def __init__(self, name: str, unit: str, reference: str | None, fn: Callable[[], dict], once: bool = False):
        self.name, self.unit, self.reference, self.fn, self.once = name, unit, reference, fn, once
        self.runs: list[float] = []
        self.peak_host, self.peak_dev = 0.0, 0.0
        self.extra: dict = {}


def _measure(case: _Case, device: torch.device) -> None:
    """Run ``case.fn`` once; it returns ``{"throughput": ..., **extras}``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRSS() as mem:
        out = case.fn()
        _sync(device)
    case.runs.append(float(out.pop("throughput")))
    # a case run in a subprocess reports that process's peaks (this one's are only what it holds)
    case.peak_host = max(case.peak_host, float(out.pop("peak_host_mb", None) or mem.peak))
    dev_peak = out.pop("peak_device_mb", None)
    if device.type == "cuda":
        case.peak_dev = max(case.peak_dev, float(dev_peak) if dev_peak is not None
                            else torch.cuda.max_memory_allocated(device) / 2**20)
    for k, v in out.items():  # extras: keep every run's value, reported as the median
        case.extra.setdefault(k, []).append(v)


# ------------------------------------------------------------------------------- MNIST: the loops
class _CourseMNIST(torch.utils.data.Dataset):
    """The course's data path: uint8 arrays -> PIL image -> ToTensor -> Normalize, one item at a time
    (what ``torchvision.datasets.MNIST(transform=...)`` does in ``__getitem__``)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        from torchvision import transforms

        self.data, self.targets = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.data[i], mode="L")
        return self.transform(img), int(self.targets[i])


def course_loop(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                batch_size: int = 20, lr: float = 0.01, epochs: int = 1) -> float:
    """The course's training loop; returns samples/s.

    Parameters
    ----------
    model : a classifier of (N, 1, 28, 28) images.
    images : uint8 (N, 28, 28); labels : int (N,).
    """
    loader = torch.utils.data.DataLoader(_CourseMNIST(images, labels), batch_size=batch_size, shuffle=True)
    model = model.to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        running_loss, correct, total = 0.0, 0, 0
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = criterion(output, target)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * data.size(0)
            _, pred = torch.max(output, 1)
            correct += (pred == target).sum().item()
            total += target.size(0)
    _sync(device)
    return epochs * len(images) / (time.perf_counter() - t0)


def raw_step_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  optimizer: torch.optim.Optimizer, loss_fn: Callable, epochs: int = 1,
                  amp: bool = False) -> float:
    """The bare step over pre-made device tensors ``x`` (N, ...) and ``y`` (N, ...); returns samples/s.

    ``amp``: True for a bf16 autocast forward pass (the loss in float32).
    """
    model.train()
    _sync(x.device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(x), batch_size):
            with bf16_autocast(x.device, amp):
                out = model(x[i:i + batch_size])
            loss = loss_fn(out.float(), y[i:i + batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(x.device)
    return epochs * len(x) / (time.perf_counter() - t0)


def train_flops_per_sample(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Floating-point operations of one training step (forward + backward) per sample.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, the
    arithmetic that bounds a step; element-wise layers are memory-bound and not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


def _matmul_case(cfg: PerfConfig, device: torch.device, dtype: torch.dtype = torch.float32) -> _Case:
    """``matmul_peak``: GFLOP/s of a large fp32 matmul, the ceiling of any fp32 training loop here
    (``matmul_peak_bf16``: the same in bf16, where the device has it natively)."""
    n = cfg.matmul_size
    g = torch.Generator().manual_seed(cfg.seed)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)

    def peak():
        a @ b  # warm-up: thread pool and kernel selection
        _sync(device)
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < 0.5:
            a @ b
            reps += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return {"throughput": 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9}

    return _Case("matmul_peak" if dtype == torch.float32 else "matmul_peak_bf16", "GFLOP/s", None, peak)


def _mnist_cases(cfg: PerfConfig, device: torch.device, ctx: RunContext, flops: dict[str, float]) -> list[_Case]:
    """The MNIST cases; fills ``flops`` with each classifier's training FLOPs per sample."""
    from oceandl.models import get_model
    from oceandl.training import TensorData, TrainConfig, fit

    rng = np.random.default_rng(cfg.seed)
    images = rng.integers(0, 256, (cfg.n_samples, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, cfg.n_samples)
    x_cpu = ((torch.from_numpy(images).float() / 255 - 0.1307) / 0.3081)[:, None]
    y_cpu = torch.from_numpy(labels)
    x_dev, y_dev = x_cpu.to(device), y_cpu.to(device)
    data = TensorData(x_cpu, y_cpu)
    cuda = device.type == "cuda"
    cases: list[_Case] = []

    def model_of(name):
        torch.manual_seed(cfg.seed)
        return get_model(name, 1, 10, **(_FAST_MODELS.get(name, {}) if cfg.fast else {}))

    for name in cfg.classifiers:
        base = f"mnist_{name}"
        n = min(cfg.batch_size, cfg.n_samples)
        flops[base] = train_flops_per_sample(model_of(name).to(device), x_dev[:n], y_dev[:n])

        def course(name=name):
            return {"throughput": course_loop(model_of(name), images, labels, device, cfg.course_batch_size,
                                              cfg.lr, cfg.epochs)}

        def raw(name=name):
            m = model_of(name).to(device)
            opt = torch.optim.SGD(m.parameters(), lr=cfg.lr, momentum=0.9, **fused_optimizer_kwargs(m.parameters()))
            return {"throughput": raw_step_loop(m, x_dev, y_dev, cfg.batch_size, opt, F.cross_entropy, cfg.epochs)}

        def engine(name=name, **switch):
            # the plain engine (fp32, default layout); the switches are cases of their own
            tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer="sgd",
                             momentum=0.9, scheduler="none", amp=False, channels_last=False, seed=cfg.seed,
                             device=str(device), progress=False).update(**switch)
            m = model_of(name)
            t0 = time.perf_counter()
            res = fit(m, data, None, tc)
            _sync(device)
            return {"throughput": cfg.epochs * cfg.n_samples / (time.perf_counter() - t0),
                    "final_train_loss": res.history[-1]["train_loss"]}

        def engine_compiled(name=name, mode="default"):
            # three epochs: the first compiles, the last is the steady state
            tc = TrainConfig(epochs=3, batch_size=cfg.batch_size, lr=cfg.lr, optimizer="sgd", momentum=0.9,
                             scheduler="none", amp=False, channels_last=False, seed=cfg.seed, device=str(device),
                             progress=False, compile=mode)
            import torch._dynamo
            import torch._inductor.config

            torch._dynamo.reset()
            with torch._inductor.config.patch(force_disable_caches=True):  # a cold compile, as a first run sees
                res = fit(model_of(name), data, None, tc)
            first, last = res.history[0]["seconds"], res.history[-1]["seconds"]
            return {"throughput": cfg.n_samples / last, "compile_seconds": max(first - last, 0.0)}

        cases += [
            _Case(f"{base}_course", "samples/s", None, course),
            _Case(f"{base}_raw", "samples/s", f"{base}_course", raw),
            _Case(f"{base}_engine", "samples/s", f"{base}_course", engine),
        ]
        # on CUDA the engine trains in bf16 only where it is native (amp_cpu forces the CPU alone)
        if cfg.bf16 and (not cuda or native_bf16(device)):
            cases.append(_Case(f"{base}_engine_bf16", "samples/s", f"{base}_engine",
                               lambda e=engine: e(amp=True, amp_cpu=True)))
        if cfg.channels_last and name != "mlp":
            cases.append(_Case(f"{base}_engine_channels_last", "samples/s", f"{base}_engine",
                               lambda e=engine: e(channels_last=True)))
        if cfg.bf16 and cfg.channels_last and name != "mlp" and native_bf16(device):
            # the engine's fastest eager switches together, against the course loop (the target's ratio)
            cases.append(_Case(f"{base}_engine_bf16_channels_last", "samples/s", f"{base}_course",
                               lambda e=engine: e(amp=True, amp_cpu=True, channels_last=True)))
        if cfg.compile:
            cases.append(_Case(f"{base}_engine_compile", "samples/s", f"{base}_engine", engine_compiled, once=True))
        if cfg.cuda_graphs and cuda:
            cases.append(_Case(f"{base}_engine_cuda_graphs", "samples/s", f"{base}_engine",
                               lambda e=engine_compiled: e(mode="reduce-overhead"), once=True))
    if cfg.compile:
        ctx.note("torch.compile cases run once (not per pass), cold (caches off): their speed is that of the third "
                 "epoch; compile_seconds is the extra time of the first")
    if cfg.cuda_graphs and not cuda:
        ctx.note("CUDA graphs: not measured (no CUDA device)")
    return cases


# ------------------------------------------------------------------------- neural interpolation
def _gappy_cube(shape: tuple[int, int, int], seed: int):
    """A cheap gappy SST-like cube (time, lat, lon) DataArray: drifting waves, blob clouds, a land corner.

    (Speed does not depend on realism; :func:`oceandl.datasets.sst.synthetic_sst` is much slower
    to make at large sizes.)
    """
    import pandas as pd
    import xarray as xr

    t, ny, nx = shape
    rng = np.random.default_rng(seed)
    tt = np.arange(t, dtype=np.float32)[:, None, None]
    yy = np.linspace(0, 1, ny, dtype=np.float32)[None, :, None]
    xx = np.linspace(0, 1, nx, dtype=np.float32)[None, None, :]
    field = (20 - 6 * yy + np.sin(2 * np.pi * (3 * xx + 0.02 * tt)) * np.cos(3 * np.pi * yy)
             + 0.1 * rng.standard_normal((t, ny, nx), dtype=np.float32))
    # clouds: coarse random fields upsampled to blobs of ~8 pixels, about half of the ocean covered
    coarse = rng.standard_normal((t, -(-ny // 8) + 1, -(-nx // 8) + 1)).astype(np.float32)
    cloud = np.repeat(np.repeat(coarse, 8, 1), 8, 2)[:, :ny, :nx] > 0
    land = (yy[0] < 0.2) & (xx[0] < 0.25)
    field[cloud | land[None]] = np.nan
    return xr.DataArray(field, dims=("time", "lat", "lon"), name="sst",
                        coords={"time": pd.date_range("2020-01-01", periods=t), "lat": np.linspace(25, 45, ny),
                                "lon": np.linspace(-70, -50, nx)})


def _interp_options(cfg: PerfConfig, method: str, steps: int) -> dict:
    opts = {"steps": steps, "batch_size": cfg.interp_batch, "patch": cfg.patch, "tile": cfg.tile,
            "overlap": cfg.overlap, "infer_batch": cfg.infer_batch}
    if cfg.fast and method in _FAST_MODELS:
        opts["model_options"] = dict(_FAST_MODELS[method])
    return opts


def _interp_cases(cfg: PerfConfig, device: torch.device, workdir: Path) -> tuple[list[_Case], Callable[[], Path]]:
    from oceandl.interp import get_method
    from oceandl.models import get_model

    da = _gappy_cube(tuple(cfg.cube), cfg.seed)
    t, ny, nx = da.shape
    cases: list[_Case] = []
    fitted: dict = {}
    for method in cfg.interp_methods:
        cls = get_method(method)
        if not hasattr(cls, "model_name"):
            raise InputError(f"interp_methods: {method!r} is not a neural interpolation method")

        def train(method=method, cls=cls, **switch):
            opts = {**_interp_options(cfg, method, cfg.interp_steps), **switch}
            interp = cls(seed=cfg.seed, device=str(device), **opts)
            t0 = time.perf_counter()
            interp.fit(da)
            _sync(device)
            fit_s = time.perf_counter() - t0
            if not switch:
                fitted[method] = interp
            # the training loop's own time: setup (normalisation, building the network) is a fixed
            # cost that a real run (hundreds of steps) amortises; it is reported apart
            return {"throughput": cfg.interp_steps * cfg.interp_batch / interp.train_seconds_,
                    "fit_seconds": fit_s, "setup_seconds": fit_s - interp.train_seconds_,
                    "precision": interp.precision_, "channels_last": bool(interp.options["channels_last"]),
                    "fused": bool(interp.options["fused"])}

        def raw(method=method, cls=cls):
            interp = fitted.get(method)
            if interp is None:  # the raw case needs the channel count and options of a fitted one
                train(method, cls)
                interp = fitted[method]
            # the same network, precision and memory layout as the interpolator's training
            torch.manual_seed(cfg.seed)
            net = get_model(interp.model_name, interp._in_channels, 1, **interp._model_opts).to(device)
            p = min(cfg.patch, ny, nx)
            n = cfg.interp_steps * cfg.interp_batch
            gen = torch.Generator().manual_seed(cfg.seed)
            x = torch.randn(n, interp._in_channels, p, p, generator=gen).to(device)
            y = torch.randn(n, 1, p, p, generator=gen).to(device)
            if interp.options["channels_last"]:
                net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            # the interpolator's optimiser: the same step, so the ratio is the training loop's own cost
            opt = torch.optim.AdamW(decay_groups(net.parameters(), interp.options["weight_decay"]),
                                    lr=interp.options["lr"],
                                    **fused_optimizer_kwargs(net.parameters(), interp.options["fused"]))
            return {"throughput": raw_step_loop(net, x, y, cfg.interp_batch, opt, F.mse_loss,
                                                amp=interp.precision_ == "bf16"),
                    "precision": interp.precision_}

        cases += [_Case(f"interp_{method}_train", "samples/s", f"interp_{method}_raw", train),
                  _Case(f"interp_{method}_raw", "samples/s", None, raw),
                  _Case(f"interp_{method}_train_plain", "samples/s", f"interp_{method}_train",
                        lambda t=train: t(precision="fp32", channels_last=False)),
                  _Case(f"interp_{method}_train_unfused", "samples/s", f"interp_{method}_train",
                        lambda t=train: t(fused=False))]

    method = cfg.interp_methods[0]
    ckpt, nc_in = workdir / "perf_ckpt", workdir / "perf_in.nc"
    da.to_dataset(name="sst").to_netcdf(nc_in)

    def checkpoint() -> Path:
        """The first method's trained network as a checkpoint folder (written once)."""
        if not ckpt.exists():
            fitted[method].save(ckpt)
        return ckpt

    def infer_model(plain: bool = False):
        """Forward passes of the trained network on tiles, as inference runs them (the
        interpolator's precision and memory layout; ``plain``: fp32 in the default layout)."""
        interp = fitted[method]
        if plain:
            import copy

            interp = copy.copy(interp)  # the same network, other switches
            interp.options = {**interp.options, "channels_last": False}
            interp.model_ = copy.deepcopy(interp.model_).to(memory_format=torch.contiguous_format)
            interp.precision_ = "fp32"
        interp.model_.eval()
        x = torch.randn(cfg.infer_batch, interp._in_channels, cfg.tile, cfg.tile).to(device)
        n = max(3, cfg.repeats)
        with torch.inference_mode():
            interp._forward(x)  # warm-up (first-call kernel selection)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(n):
                interp._forward(x)
            _sync(device)
        return {"throughput": n * x.shape[0] * cfg.tile**2 / 1e6 / (time.perf_counter() - t0),
                "precision": interp.precision_}

    def infer_tiled():
        interp = fitted[method]
        t0 = time.perf_counter()
        interp._predict()
        _sync(device)
        return {"throughput": t * ny * nx / 1e6 / (time.perf_counter() - t0)}

    def end_to_end(complevel: int = 4):
        from oceandl.pipelines.interpolate import run_interpolation

        out = workdir / "perf_out.nc"
        opts = {k: v for k, v in _interp_options(cfg, method, 0).items() if k in ("tile", "overlap", "infer_batch")}
        t0 = time.perf_counter()
        run_interpolation(nc_in, out, var="sst", method=method, withhold=0.0, options={"checkpoint": str(checkpoint()),
                          **opts}, seed=cfg.seed, device=str(device), overwrite=True, progress=False,
                          complevel=complevel, log=lambda s: None)
        return {"throughput": t * ny * nx / 1e6 / (time.perf_counter() - t0)}

    cases += [_Case("interp_infer_model", "Mpx/s", None, infer_model),
              _Case("interp_infer_model_plain", "Mpx/s", "interp_infer_model", lambda: infer_model(plain=True)),
              _Case("interp_infer_tiled", "Mpx/s", "interp_infer_model", infer_tiled),
              _Case("interp_end_to_end", "Mpx/s", "interp_infer_model", end_to_end),
              _Case("interp_end_to_end_uncompressed", "Mpx/s", "interp_end_to_end",
                    lambda: end_to_end(complevel=0))]
    return cases, checkpoint


# ------------------------------------------------------------------------- tiled inference memory
def _release_freed_memory() -> None:
    """Hand memory freed by Python and the C allocator back to the OS (glibc ``malloc_trim``).

    Without it, the measured pass reuses heap pages that the warm-up pass left behind, in amounts
    that depend on fragmentation, and the added peak it shows is noisy (20-70 MB for the same
    work); after it, the pass's working memory is counted in full every time.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measure is then an upper bound less tight
        pass


def _memory_probe(args: dict) -> dict:
    """Run in a fresh process: tiled inference of a (time, G, G) cube from a checkpoint.

    Returns the peak memory the inference adds (host; and device on CUDA) and the size of the
    arrays that must grow with the grid (the blended accumulator and the result).
    """
    from oceandl.interp import get_method

    torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    t, g = args["time"], args["grid"]
    da = _gappy_cube((t, g, g), args["seed"])
    interp = get_method(args["method"])(seed=args["seed"], device=args["device"], checkpoint=args["checkpoint"],
                                        tile=args["tile"], overlap=args["overlap"], infer_batch=args["infer_batch"])
    interp.fit(da)
    interp._predict()  # warm-up: kernel and thread-pool caches are not part of the grid's cost
    _release_freed_memory()  # ...but what the warm-up freed must not be reused unseen by the measured pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        dev0 = torch.cuda.memory_allocated(device)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        interp._predict()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    added = mem.added
    n_out = 2 if interp.gives_sigma else 1
    grid_arrays = (t * n_out + 1) * g * g * 4 / 2**20  # float32 accumulator (becomes the result), weight sum
    res = {"seconds": seconds, "mpx": t * g * g / 1e6, "added_host_mb": added, "grid_arrays_mb": grid_arrays,
           "working_host_mb": max(added - grid_arrays, 0.0), "peak_host_mb": mem.peak,
           "peak_exact": mem.exact}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        res["added_device_mb"], res["peak_device_mb"] = (peak - dev0) / 2**20, peak / 2**20
    return res


def _in_subprocess(probe: str, args: dict, env: dict[str, str], what: str) -> dict:
    """Run ``probe(args)`` (a function of this module) in a fresh Python process; return its result."""
    code = (f"import json, sys; from oceandl.pipelines.perf import {probe}; "
            f"print('RESULT ' + json.dumps({probe}(json.loads(sys.argv[1]))))")
    env = {**os.environ, "OMP_NUM_THREADS": str(args["threads"]), **env}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env)
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"{what} failed: {proc.stderr.strip()[-400:]}")
    return json.loads(line[0][len("RESULT "):])


def _memory_cases(cfg: PerfConfig, device: torch.device, checkpoint: Callable[[], Path]) -> list[_Case]:
    """``tiled_memory_<G>`` for each grid, and ``untiled_memory_<G>`` (the whole grid in one pass)
    for the largest, the contrast that shows what tiling saves."""
    cases = []
    grids = list(cfg.memory_grids)
    for g, tile in [(g, cfg.tile) for g in grids] + [(max(grids), None)]:
        def probe(g=g, tile=tile):
            args = {"threads": torch.get_num_threads(), "device": str(device), "time": cfg.memory_time, "grid": g,
                    "seed": cfg.seed, "method": cfg.interp_methods[0], "checkpoint": str(checkpoint()),
                    "tile": tile, "overlap": cfg.overlap if tile else 0, "infer_batch": cfg.infer_batch}
            # glibc's dynamic mmap threshold would keep freed tile-sized buffers on the heap, a
            # retention that grows with the number of tiles up to its 32 MB cap; a fixed threshold
            # returns them, so the probe measures what inference holds, not the allocator's habits
            # (a MALLOC_ setting of the user's own also turns keep_freed_memory off)
            r = _in_subprocess("_memory_probe", args, {"MALLOC_MMAP_THRESHOLD_": "65536"}, f"memory probe at grid {g}")
            out = {"throughput": r["mpx"] / r["seconds"], "grid": f"{cfg.memory_time}x{g}x{g}",
                   "added_host_mb": r["added_host_mb"], "grid_arrays_mb": r["grid_arrays_mb"],
                   "working_host_mb": r["working_host_mb"], "peak_host_mb": r["peak_host_mb"],
                   "memory_sampled": not r.get("peak_exact", True)}
            if "peak_device_mb" in r:  # the probe's peak; this process's is its own data, the same at every grid
                out["inference_device_mb"], out["peak_device_mb"] = r["added_device_mb"], r["peak_device_mb"]
            return out

        if tile is None:
            cases.append(_Case(f"untiled_memory_{g}", "Mpx/s", f"tiled_memory_{g}", probe))
        else:
            cases.append(_Case(f"tiled_memory_{g}", "Mpx/s", f"tiled_memory_{grids[0]}" if g != grids[0] else None,
                               probe))
    return cases


# ------------------------------------------------------------------------- the C heap (CPU)
def _heap_probe(args: dict) -> dict:
    """Run in a fresh process (``OCEANDL_KEEP_FREED_MEMORY`` set by the caller): one warm-up and
    one timed pass of CNN training through the engine (``cnn_train``, samples/s of the second
    epoch) or of tiled inference from a checkpoint (``infer``, Mpx/s of the second pass)."""
    import resource

    from oceandl.utils import keep_freed_memory

    torch.set_num_threads(args["threads"])
    if args["work"] == "cnn_train":
        from oceandl.models import get_model
        from oceandl.training import TensorData, TrainConfig, fit

        gen = torch.Generator().manual_seed(args["seed"])
        n = args["n_samples"]
        data = TensorData(torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen))
        torch.manual_seed(args["seed"])
        model = get_model("cnn", 1, 10, **args["model_options"])
        tc = TrainConfig(epochs=1, batch_size=args["batch_size"], optimizer="sgd", momentum=0.9, scheduler="none",
                         seed=args["seed"], device="cpu", progress=False)
        fit(model, data, None, tc)  # warm-up: kernel caches, thread pool
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        hist = fit(model, data, None, tc).history
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        work, seconds = n, hist[-1]["seconds"]
    else:
        from oceandl.interp import get_method

        t, g = args["cube"][0], args["cube"][1:]
        interp = get_method(args["method"])(seed=args["seed"], device="cpu", checkpoint=args["checkpoint"],
                                            tile=args["tile"], overlap=args["overlap"], infer_batch=args["infer_batch"])
        interp.fit(_gappy_cube(tuple(args["cube"]), args["seed"]))
        interp._predict()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        interp._predict()
        seconds = time.perf_counter() - t0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        work = t * g[0] * g[1] / 1e6
    return {"throughput": work / seconds, "kept": keep_freed_memory(), "page_faults": faults}


def _heap_cases(cfg: PerfConfig, checkpoint: Callable[[], Path] | None) -> list[_Case]:
    """``heap_<work>_returned`` / ``heap_<work>_kept``: each in a fresh subprocess, the C heap
    returning freed memory to the system (glibc's default) or keeping it (the library's default)."""
    cases = []
    works = ["cnn_train"] + (["infer"] if checkpoint is not None else [])
    for work in works:
        for kept in (False, True):
            def probe(work=work, kept=kept):
                args = {"threads": torch.get_num_threads(), "work": work, "seed": cfg.seed,
                        "n_samples": cfg.n_samples, "batch_size": cfg.batch_size,
                        "model_options": _FAST_MODELS["cnn"] if cfg.fast else {}}
                if work == "infer":
                    args.update(method=cfg.interp_methods[0], checkpoint=str(checkpoint()), cube=list(cfg.cube),
                                tile=cfg.tile, overlap=cfg.overlap, infer_batch=cfg.infer_batch)
                return _in_subprocess("_heap_probe", args, {"OCEANDL_KEEP_FREED_MEMORY": "1" if kept else "0"},
                                      f"heap probe {work}")

            name = f"heap_{work}_{'kept' if kept else 'returned'}"
            ref = f"heap_{work}_returned" if kept else None
            cases.append(_Case(name, "samples/s" if work == "cnn_train" else "Mpx/s", ref, probe))
    return cases


# ---------------------------------------------------------------------------------- reading files
def _read_cases(cfg: PerfConfig, device: torch.device, workdir: Path) -> list[_Case]:
    """Reading ``read_files`` GeoTIFF vignettes into tensors: in this process, then with the
    automatic worker count (the same code path as ``train classifier`` and ``classify``)."""
    from oceandl.datasets import open_image_dataset
    from oceandl.datasets.synthetic_images import make_sar_vignettes
    from oceandl.training import materialize

    root = make_sar_vignettes(workdir / "vignettes", n_per_class=max(cfg.read_files // 10, 1), size=cfg.read_size,
                              seed=cfg.seed, metadata=False)
    ds = open_image_dataset(root)

    def read(workers: int | None):
        stats: dict = {}
        t0 = time.perf_counter()
        x, _ = materialize(ds, num_workers=workers, stats=stats)
        return {"throughput": len(x) / (time.perf_counter() - t0), "workers": stats["workers"], "files": len(x)}

    def stream(workers: int | None):
        from oceandl.models import get_model
        from oceandl.training import TrainConfig, fit, streaming_workers

        tc = TrainConfig(epochs=1, batch_size=cfg.batch_size, optimizer="sgd", scheduler="none", amp=False,
                         seed=cfg.seed, device=str(device), progress=False, max_materialize_mb=0, num_workers=workers)
        torch.manual_seed(cfg.seed)
        net = get_model("cnn", 1, 10, channels=(8, 16), hidden=32)
        t0 = time.perf_counter()
        fit(net, ds, None, tc)
        _sync(device)
        return {"throughput": len(ds) / (time.perf_counter() - t0), "files": len(ds),
                "workers": streaming_workers(device, workers)}

    return [_Case("read_files_inprocess", "samples/s", None, lambda: read(0)),
            _Case("read_files_workers", "samples/s", "read_files_inprocess", lambda: read(None)),
            _Case("stream_train_inprocess", "samples/s", None, lambda: stream(0)),
            _Case("stream_train_workers", "samples/s", "stream_train_inprocess", lambda: stream(None))]


# ----------------------------------------------------------------------------------------- DINEOF
def _dineof_cases(cfg: PerfConfig, device: torch.device) -> list[_Case]:
    from oceandl.interp import DINEOF

    da = _gappy_cube(tuple(cfg.dineof_cube), cfg.seed + 1)
    mpx = da.size / 1e6
    filled: dict = {}

    def run_on(dev: torch.device, key: str, svd: str = "auto"):
        # tol out of reach: every mode runs exactly max_iter iterations on both devices
        opts = {"max_iter": cfg.dineof_max_iter, "tol": 1e-30} if cfg.dineof_max_iter else {}
        m = DINEOF(seed=cfg.seed, device=str(dev), n_modes=cfg.dineof_modes, svd=svd, **opts)
        _sync(dev)
        t0 = time.perf_counter()
        m.fit(da)
        _sync(dev)
        s = time.perf_counter() - t0
        filled[key] = m._filled
        out = {"throughput": mpx / s, "seconds": s, "n_iter_total": m.n_iter_total_,
               "ms_per_iteration": 1e3 * s / max(m.n_iter_total_, 1)}
        if svd == "subspace" and "cpu" in filled:
            out["max_abs_diff_vs_auto"] = float(np.nanmax(np.abs(m._filled - filled["cpu"])))
        return out

    cases = [_Case("dineof_cpu", "Mpx/s", None, lambda: run_on(torch.device("cpu"), "cpu"))]
    if cfg.dineof_subspace:  # one warm-started subspace step per iteration instead of the Gram eigendecomposition
        cases.append(_Case("dineof_cpu_subspace", "Mpx/s", "dineof_cpu",
                           lambda: run_on(torch.device("cpu"), "cpu_subspace", "subspace")))
    if device.type == "cuda":
        def gpu():
            r = run_on(device, "cuda")
            if "cpu" in filled:
                r["max_abs_diff_vs_cpu"] = float(np.nanmax(np.abs(filled["cuda"] - filled["cpu"])))
            return r

        cases.append(_Case("dineof_cuda", "Mpx/s", "dineof_cpu", gpu))
    return cases


def _eof_cases(cfg: PerfConfig) -> list[_Case]:
    """``eof_full`` (LAPACK's SVD of the whole matrix) and ``eof_randomized`` (the truncated
    randomized SVD that ``solver="auto"`` picks for large fields) on a complete synthetic cube,
    with the largest differences of the eigenvalues (relative) and of the EOFs."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.interp.eof import eof

    nt, ny, nx = cfg.eof_cube
    da = synthetic_sst(n_time=nt, ny=ny, nx=nx, seed=cfg.seed)["sst_true"]
    mpx = da.size / 1e6
    done: dict = {}

    def run_with(solver: str):
        t0 = time.perf_counter()
        res = eof(da, n_modes=cfg.eof_modes, solver=solver, seed=cfg.seed)
        s = time.perf_counter() - t0
        done[solver] = res
        out = {"throughput": mpx / s, "seconds": s, "n_modes": res.n_modes}
        if solver == "randomized" and "full" in done:
            ref = done["full"]
            out["max_eigenvalue_rel_diff"] = float(np.max(np.abs(res.eigenvalues.values / ref.eigenvalues.values - 1)))
            out["max_eof_abs_diff"] = float(np.nanmax(np.abs(res.eofs.values - ref.eofs.values)))
        return out

    return [_Case("eof_full", "Mpx/s", None, lambda: run_with("full")),
            _Case("eof_randomized", "Mpx/s", "eof_full", lambda: run_with("randomized"))]


# ------------------------------------------------------------------------------------------ run
def _environment(device: torch.device) -> dict:
    import platform

    env = {"torch": torch.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
           "interop_threads": torch.get_num_interop_threads(), "cpu": platform.processor() or platform.machine(),
           "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        env["cpu"] = names[0] if names else env["cpu"]
        env["cpu_cores"] = os.cpu_count()
    except OSError:
        pass
    return env


def run(cfg: PerfConfig, ctx: RunContext) -> dict:
    """Time every case (interleaved, ``repeats`` times) and return ``{case: metrics}``."""
    cfg = resolve_fast(cfg, _FAST)  # smaller sizes, except where the user set a value of their own
    if cfg.repeats < 1 or cfg.n_samples < 1 or cfg.batch_size < 1:
        raise InputError("repeats, n_samples and batch_size must be >= 1")
    if len(cfg.cube) != 3 or len(cfg.dineof_cube) != 3 or len(cfg.eof_cube) != 3:
        raise InputError("cube, dineof_cube and eof_cube need 3 sizes (time, lat, lon)")
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, ctx)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: PerfConfig, ctx: RunContext) -> dict:
    device = torch.device(ctx.device)
    env = _environment(device)
    # process-wide, so set before any case: all of them (the course loop too) run with it, as the
    # library runs on the CPU; the heap_ cases measure what it changes, each in a fresh process
    env["heap_kept"] = keep_freed_memory(device)
    if env["heap_kept"]:
        ctx.note("C heap keeps freed memory (oceandl.utils.keep_freed_memory) in every case; heap_*_returned "
                 "measures glibc's default in a fresh process")
    ctx.note(f"device {env['device_name']}, CPU {env.get('cpu')} ({env['cpu_capability']}), torch {env['torch']}, "
             f"numpy {env['numpy']}, {env['threads']} torch threads; median of {cfg.repeats} interleaved passes")
    with tempfile.TemporaryDirectory(prefix="oceandl_perf_") as tmp:
        workdir = Path(tmp)
        flops: dict[str, float] = {}
        cases = [_matmul_case(cfg, device)]
        if cfg.bf16 and native_bf16(device):
            cases.append(_matmul_case(cfg, device, torch.bfloat16))
        cases += _mnist_cases(cfg, device, ctx, flops)
        interp, checkpoint = _interp_cases(cfg, device, workdir) if cfg.interp_methods else ([], None)
        cases += interp + (_read_cases(cfg, device, workdir) if cfg.read_files else []) + _dineof_cases(cfg, device)
        cases += _eof_cases(cfg) if cfg.eof_cube[0] else []
        if env["heap_kept"] and cfg.heap:
            cases += _heap_cases(cfg, checkpoint)
        for r in range(cfg.repeats):
            for case in cases:
                if case.once and r:  # torch.compile cases: compiling again per pass would dominate the run
                    continue
                ctx.log(f"[{r + 1}/{cfg.repeats}] {case.name}")
                _measure(case, device)
                # as it comes: results.json is written only at the end, so a run stopped by a time limit
                # (the GPU script's steps) still leaves what it measured in its log
                ctx.log(f"    {case.runs[-1]:.4g} {case.unit}")
        if checkpoint is not None and cfg.memory_grids:
            mem = _memory_cases(cfg, device, checkpoint)
            for case in mem:  # one subprocess each: their peak memories are independent
                ctx.log(f"{case.name}")
                _measure(case, device)
                ctx.log(f"    {case.runs[-1]:.4g} {case.unit}")
            cases += mem
    results = _table(cases, device, env)
    _roofline(results, flops, ctx)
    _log_table(results, ctx)
    return results


def _roofline(results: dict, flops: dict[str, float], ctx: RunContext) -> None:
    """Achieved GFLOP/s of every MNIST case, as a fraction of the measured matmul peak.

    ``ceiling_ratio`` of a ``_course`` case is peak / its GFLOP/s: no loop doing the same fp32
    arithmetic on this machine can beat the course loop by more than that; ``ceiling_ratio_bf16``
    the same against the bf16 matmul peak, where there is one.
    """
    peak = results.get("matmul_peak", {}).get("throughput")
    peak_bf16 = results.get("matmul_peak_bf16", {}).get("throughput")
    for name, row in results.items():
        base = next((b for b in flops if name.startswith(b + "_")), None)
        if base is None or row["unit"] != "samples/s":
            continue
        row["train_mflop_per_sample"] = flops[base] / 1e6
        row["gflops"] = row["throughput"] * flops[base] / 1e9
        if peak:
            row["fraction_of_peak"] = row["gflops"] / peak
        if name == base + "_course" and peak:
            row["ceiling_ratio"] = peak / row["gflops"]
            ctx.note(f"{base}: {flops[base] / 1e6:.1f} MFLOP per training sample; the course loop runs at "
                     f"{row['gflops']:.1f} GFLOP/s = {row['fraction_of_peak']:.0%} of the measured fp32 matmul "
                     f"peak ({peak:.0f} GFLOP/s), so no fp32 loop can beat it by more than "
                     f"{row['ceiling_ratio']:.1f}x here")
            if peak_bf16:
                row["ceiling_ratio_bf16"] = peak_bf16 / row["gflops"]
                ctx.note(f"{base}: against the bf16 matmul peak ({peak_bf16:.0f} GFLOP/s) the ceiling is "
                         f"{row['ceiling_ratio_bf16']:.1f}x")


def _table(cases: list[_Case], device: torch.device, env: dict) -> dict:
    med = {c.name: statistics.median(c.runs) for c in cases if c.runs}
    runs = {c.name: c.runs for c in cases if c.runs}

    def ratio(a: str, b: str) -> float | None:
        """Median of the per-pass ratios (the two cases ran minutes apart at most: a shared machine's
        load changes slower than that), or the ratio of medians when the passes do not pair up."""
        if b not in med:
            return None
        if len(runs[a]) == len(runs[b]):
            return statistics.median(x / y for x, y in zip(runs[a], runs[b]))
        return med[a] / med[b]

    out: dict[str, dict] = {}
    for c in cases:
        if not c.runs:
            continue
        row = {"throughput": med[c.name], "unit": c.unit, "reference": c.reference,
               "ratio": ratio(c.name, c.reference),
               "peak_host_mb": round(c.peak_host, 1), "device": env["device_name"], "runs": c.runs}
        if device.type == "cuda":
            row["peak_device_mb"] = round(c.peak_dev, 1)
        raw = c.name.replace("_engine", "_raw").split("_raw")[0] + "_raw" if "_engine" in c.name else None
        if raw in med:
            row["ratio_to_raw"] = ratio(c.name, raw)
        for k, vals in c.extra.items():
            row[k] = statistics.median(vals) if all(isinstance(v, (int, float)) for v in vals) else vals[-1]
        row.update({k: env[k] for k in ("torch", "numpy", "threads", "cpu")})
        out[c.name] = row
    return out


def _log_table(results: dict, ctx: RunContext) -> None:
    for name, r in results.items():
        ratio = f"  x{r['ratio']:.2f} vs {r['reference']}" if r.get("ratio") is not None else ""
        raw = f"  ({r['ratio_to_raw']:.0%} of raw)" if r.get("ratio_to_raw") is not None else ""
        ctx.log(f"{name:<36} {r['throughput']:>10.4g} {r['unit']}{ratio}{raw}")


PIPELINE = Pipeline(
    name="perf", config_cls=PerfConfig, run=run, fast=_FAST, timings=_TIMINGS,
    legend="throughput: the median over the passes, in unit; reference: the case ratio is taken against; ratio: "
           "median over the passes of throughput / the reference's in the same pass; ratio_to_raw: against the "
           "bare model step (engine cases); gflops: training GFLOP/s; fraction_of_peak: gflops / matmul_peak's; "
           "ceiling_ratio, ceiling_ratio_bf16: that peak (fp32, bf16) / the course loop's GFLOP/s; compile_seconds: "
           "torch.compile's compile time (s); working_host_mb: host memory added by tiled inference less its "
           "outputs (MiB); workers: reader processes used; precision: the float format trained in; page_faults: "
           "minor page faults of the case; peak_host_mb, peak_device_mb: the process's peak resident host and "
           "CUDA memory during the case (MiB; that of the subprocess for the cases run in one); device: where it ran. The module docstring of "
           "oceandl.pipelines.perf describes each case.",
    columns=("throughput", "unit", "reference", "ratio", "ratio_to_raw", "gflops", "fraction_of_peak",
             "ceiling_ratio", "ceiling_ratio_bf16", "compile_seconds", "working_host_mb", "workers", "precision",
             "page_faults",
             "peak_host_mb", "peak_device_mb", "device"),
    description="Speed: the oceandl engine against the course loop and the raw model step, neural "
                "interpolation training and inference, tiled-inference memory, reading image files and DINEOF, "
                "in one run "
                "(medians of interleaved passes; ratio = median per-pass throughput / the reference's).",
)
