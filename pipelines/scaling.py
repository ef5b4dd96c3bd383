"""Data-parallel scaling: the same ``oceandl train classifier`` command as 1 process and under torchrun.

Each layout ``PxT`` runs P processes of T intra-op threads (``OMP_NUM_THREADS=T``; P > 1 through
``python -m torch.distributed.run --nproc_per_node P``, gloo on CPU, NCCL on CUDA) on the same
synthetic SAR vignettes (written once in the TenGeoP layout), the same model, seed and *global*
batch. Throughput is the training set size over the median epoch time, leaving out the first epoch
(warm-up); process start and data loading are not in it. ``ratio`` is against the first layout.
The rows also carry the first epoch's training loss: data parallelism must not change it beyond
float summation order.

Default: 10 classes x 300 vignettes of 32 x 32, the course CNN at 16/32 channels (no batch norm or
dropout, so that 2 processes compute the single-process gradient), 3 epochs, global batch 128,
layouts 1x1, 1x2 and 2x1 (a 2-core machine). ``fast=True`` is a seconds-long smoke run.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oceandl.errors import InputError, OceanDLError

from .runner import Pipeline, RunContext, resolve_fast

__all__ = ["ScalingConfig", "PIPELINE", "run", "parse_layout"]

# torch.distributed.run starts this file; it calls the CLI exactly as the console script does.
_LAUNCHER = "import sys\nfrom oceandl.cli.main import main\nsys.exit(main())\n"


@dataclass(frozen=True)
class ScalingConfig:
    """Scaling benchmark settings (``--set key=value``)."""

    seed: int = 0
    fast: bool = False
    layouts: tuple[str, ...] = ("1x1", "1x2", "2x1")
    n_per_class: int = 300
    size: int = 32
    epochs: int = 3
    batch_size: int = 128
    channels: tuple[int, ...] = (16, 32)
    timeout: int = 1800  # seconds per layout


FAST = {"n_per_class": 12, "size": 24, "epochs": 2, "batch_size": 16, "channels": (4, 8)}  # the smoke run


def parse_layout(text: str) -> tuple[int, int]:
    """``"2x1"`` -> (2 processes, 1 thread each)."""
    try:
        p, t = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise InputError(f"layout {text!r}: expected PROCESSESxTHREADS, e.g. 2x1") from None
    if p < 1 or t < 1:
        raise InputError(f"layout {text!r}: processes and threads must be >= 1")
    return p, t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(layout: str, data: Path, out: Path, launcher: Path, cfg: ScalingConfig, device: str) -> dict:
    procs, threads = parse_layout(layout)
    args = ["train", "classifier", "--data", str(data), "--model", "cnn", "--set", "batch_norm=false",
            "--set", "dropout=0", "--set", "channels=" + ",".join(map(str, cfg.channels)), "--epochs", str(cfg.epochs),
            "--batch-size", str(cfg.batch_size), "--lr", "3e-3", "--quiet", "--device", device,
            "--seed", str(cfg.seed), "--precision", "fp32", "-o", str(out)]  # fp32: losses comparable to 1e-5
    if procs == 1:
        cmd = [sys.executable, str(launcher), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(launcher), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=cfg.timeout)
    except subprocess.TimeoutExpired:
        raise OceanDLError(f"scaling: layout {layout} ran past {cfg.timeout} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise OceanDLError(f"scaling: layout {layout} failed (exit {proc.returncode}): {tail[0]}")
    with open(out / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    n_train = json.loads((out / "config.json").read_text())["split_sizes"][0]
    seconds = [float(r["seconds"]) for r in rows]
    steady = seconds[1:] or seconds  # the first epoch warms up allocators and thread pools
    return {"processes": procs, "threads": threads, "throughput": n_train / statistics.median(steady),
            "unit": "samples/s", "epoch_seconds": seconds, "n_train": n_train,
            "first_epoch_train_loss": float(rows[0]["train_loss"]),
            "final_val_accuracy": float(rows[-1].get("val_accuracy", "nan"))}


def run(cfg: ScalingConfig, ctx: RunContext) -> dict:
    """Run every layout; returns ``{layout: metrics}``."""
    from oceandl.datasets.synthetic_images import make_sar_vignettes

    cfg = resolve_fast(cfg, FAST)
    if not cfg.layouts:
        raise InputError("layouts: give at least one, e.g. 1x1,2x1")
    layouts = [f"{p}x{t}" for p, t in map(parse_layout, cfg.layouts)]
    if cfg.epochs < 2:
        raise InputError(f"epochs={cfg.epochs}: at least 2 (the first is a warm-up, left out of the timing)")
    # every layout, not only the largest: 8 among 4 and 3 processes made the 3-process run's global batch 6
    if any(cfg.batch_size % parse_layout(x)[0] for x in layouts):
        raise InputError(f"batch_size={cfg.batch_size}: must divide among the processes of every layout")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="oceandl-scaling-") as tmp:
        work = Path(tmp)
        data = make_sar_vignettes(work / "sar", n_per_class=cfg.n_per_class, size=cfg.size, seed=cfg.seed,
                                  metadata=False)
        launcher = work / "launch.py"
        launcher.write_text(_LAUNCHER)
        ctx.note(f"synthetic SAR vignettes: 10 classes x {cfg.n_per_class} of {cfg.size}x{cfg.size}; CNN "
                 f"{cfg.channels} without batch norm or dropout; global batch {cfg.batch_size}; {cfg.epochs} epochs, "
                 f"the first left out of the timing; device {ctx.device}")
        for layout in layouts:
            ctx.log(f"layout {layout} (processes x threads)")
            row = _train(layout, data, work / f"run_{layout}", launcher, cfg, ctx.device)
            row["reference"] = layouts[0] if layout != layouts[0] else None
            row["ratio"] = row["throughput"] / results[layouts[0]]["throughput"] if row["reference"] else None
            results[layout] = row
            ctx.log(f"  {row['throughput']:.0f} samples/s, first-epoch loss {row['first_epoch_train_loss']:.6f}")
    ref = results[layouts[0]]["first_epoch_train_loss"]
    for layout, row in results.items():
        row["loss_rel_diff"] = abs(row["first_epoch_train_loss"] - ref) / abs(ref)
    ctx.note("ratio: throughput / the first layout's; loss_rel_diff: first-epoch training loss against the first "
             "layout's (data parallelism changes only the float summation order)")
    return results


PIPELINE = Pipeline(
    name="scaling", config_cls=ScalingConfig, run=run, fast=FAST, timings=("throughput", "epoch_seconds", "ratio"),
    legend="name: PROCESSESxTHREADS, the processes and the threads of each; throughput: training samples per second over the timed epochs, in unit; "
           "reference: the layout ratio is taken against; ratio, loss_rel_diff: see below; "
           "first_epoch_train_loss: mean training loss of the first epoch; final_val_accuracy: validation "
           "accuracy after the last epoch (fraction).",
    columns=("processes", "threads", "throughput", "unit", "reference", "ratio", "first_epoch_train_loss",
             "loss_rel_diff", "final_val_accuracy"),
    description="Data-parallel training: one oceandl train command as 1 process and under torchrun, "
                "at several processes x threads layouts on the same data, model, seed and global batch.",
)
