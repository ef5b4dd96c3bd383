"""Data-parallel training under torchrun (gloo, CPU): sharding, and 2 processes against 1."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from oceandl.errors import InputError
from oceandl.training import distributed as dd


@pytest.fixture
def fake_rank(monkeypatch):
    """Pretend to be rank r of w (no process group: only the sharding helpers read it)."""

    def set_ctx(rank: int, world: int):
        monkeypatch.setattr(dd, "_CTX", dd.DistContext(rank, world, rank, "gloo", torch.device("cpu")))

    yield set_ctx


def test_shards_of_a_global_batch_are_the_single_process_batch(fake_rank):
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    world, global_batch = 2, 8
    shards = []
    for r in range(world):
        fake_rank(r, world)
        shards.append(dd.shard(order))
        assert dd.local_batch_size(global_batch) == 4
    assert [len(s) for s in shards] == [12, 12]  # padded to a multiple of the world size
    padded = torch.cat([order, order[:1]])
    for k in range(3):  # global batch k = the per-rank batches k of all ranks
        got = torch.cat([s[4 * k:4 * k + 4] for s in shards])
        assert sorted(got.tolist()) == sorted(padded[8 * k:8 * k + 8].tolist())
    fake_rank(1, 2)
    assert dd.shard(order, pad=False).tolist() == order[1::2].tolist()  # evaluation: no duplicates
    with pytest.raises(InputError, match="global batch"):
        dd.local_batch_size(1)


def test_plain_run_is_untouched(monkeypatch):
    for v in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(v, raising=False)
    assert dd.env_world() is None and dd.init_distributed("cpu") is None
    order = torch.arange(5)
    assert dd.shard(order) is order and dd.all_reduce_sum(1.5, 2) == (1.5, 2) and dd.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert dd.env_world() == (1, 2, 1) and not dd.is_main_process()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(InputError, match="RANK"):
        dd.env_world()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(InputError, match="MASTER_ADDR"):
        dd.init_distributed("cpu")


# Runs the CLI with an audit hook that records every file this process opens for writing,
# creates, renames or removes under the output folder (Python-level I/O: open, os.replace...).
_WRAPPER = textwrap.dedent("""
    import json, os, sys
    out, log = os.path.realpath(sys.argv[1]), sys.argv[2]
    seen = []
    W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def hook(event, args):
        paths = []
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in mode for c in "wax+") or flags & W:
                paths = [args[0]]
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        for p in paths:
            if os.path.realpath(os.fsdecode(p)).startswith(out):
                seen.append(os.path.basename(os.fsdecode(p)))
    sys.addaudithook(hook)
    from oceandl.cli.main import main
    code = main(sys.argv[3:])
    with open(log + "." + os.environ.get("RANK", "single"), "w") as fh:
        json.dump(seen, fh)
    sys.exit(code)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_and_only_rank0_writes(tmp_path):
    """torchrun --nproc_per_node 2 (gloo) against one process, same command and global batch.

    A CNN without batch norm and dropout: DDP's averaged gradient over two equal shards of a
    global batch is the single-process gradient, so the runs differ only by float summation
    order. Tolerance: logged losses within 1e-5 relative, weights within 1e-4 absolute after
    2 epochs of AdamW (measured ~1e-6).
    """
    from oceandl.datasets.synthetic_images import make_sar_vignettes

    data = make_sar_vignettes(tmp_path / "sar", n_per_class=6, size=24, seed=0, metadata=False)
    wrapper = tmp_path / "wrap.py"
    wrapper.write_text(_WRAPPER)
    args = ["train", "classifier", "--data", str(data), "--model", "cnn", "--set", "batch_norm=false",
            "--set", "dropout=0", "--set", "channels=4,8", "--epochs", "2", "--batch-size", "8", "--lr", "3e-3",
            "--quiet", "--device", "cpu", "--seed", "3", "--precision", "fp32"]  # bf16 would round the comparison
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OCEANDL_DEBUG": "1"}
    for v in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(v, None)
    one, two = tmp_path / "one", tmp_path / "two"
    from oceandl.cli.main import main

    torch.set_num_threads(1)  # the same thread count as each torchrun worker
    try:
        assert main([*args, "-o", str(one)]) == 0
    finally:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(wrapper), str(two), str(tmp_path / "w2"), *args, "-o", str(two)]
    multi = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]

    # only rank 0 wrote under the output folder; rank 1 wrote nothing there
    w0 = json.loads((tmp_path / "w2.0").read_text())
    w1 = json.loads((tmp_path / "w2.1").read_text())
    assert w1 == []
    assert any("config.json" in p for p in w0) and any("log.csv" in p for p in w0)
    names = {p.name for p in two.iterdir()}
    assert names == {p.name for p in one.iterdir()}
    assert {"weights.safetensors", "config.json", "log.csv", "curves.png"} <= names
    assert not [n for n in names if n.endswith((".part", ".old"))]

    from safetensors.torch import load_file

    a, b = load_file(one / "weights.safetensors"), load_file(two / "weights.safetensors")
    assert set(a) == set(b) and not any(k.startswith("module.") for k in b)  # the unwrapped module's keys
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-4, diff
    log1 = np.genfromtxt(one / "log.csv", delimiter=",", names=True)
    log2 = np.genfromtxt(two / "log.csv", delimiter=",", names=True)
    for col in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
        np.testing.assert_allclose(log2[col], log1[col], rtol=1e-5, atol=1e-7, err_msg=col)
    cfg1, cfg2 = (json.loads((p / "config.json").read_text()) for p in (one, two))
    assert cfg2["best_epoch"] == cfg1["best_epoch"]
    assert cfg2["metrics"]["accuracy"] == pytest.approx(cfg1["metrics"]["accuracy"], abs=1e-6)


_TINY_VAL = textwrap.dedent("""
    import json, os, sys, torch
    from torch import nn
    from oceandl.training.engine import TensorData, TrainConfig, fit
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 1, 6, 6, generator=g), torch.zeros(9, dtype=torch.long)
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", progress=False, amp=False)
    rows = {}
    for task, net in (("reconstruction", nn.Conv2d(1, 1, 3, padding=1)),
                      ("classification", nn.Sequential(nn.Flatten(), nn.Linear(36, 2)))):
        res = fit(net, TensorData(x[1:], y[1:]), TensorData(x[:1], 1 - y[:1]), cfg, task=task)
        rows[task] = sorted(k for k in res.history[0] if k.startswith("val_"))
    with open(sys.argv[1] + "." + os.environ["RANK"], "w") as fh:
        json.dump(rows, fh)
""")


def test_validation_set_smaller_than_the_processes(tmp_path):
    """One validation sample, two processes: rank 1 has no validation batch. It failed with
    UnboundLocalError (the accuracy was decided from its own last output), and rank 0 with
    'Connection closed by peer'. Now both log the same validation columns."""
    script = tmp_path / "tiny_val.py"
    script.write_text(_TINY_VAL)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script), str(tmp_path / "cols")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    cols = [json.loads((tmp_path / f"cols.{r}").read_text()) for r in (0, 1)]
    assert cols[0] == cols[1] == {"reconstruction": ["val_loss"], "classification": ["val_accuracy", "val_loss"]}


_FAILING_RANK = textwrap.dedent("""
    from oceandl.training import distributed as dd
    ctx = dd.init_distributed("cpu")
    if ctx.rank == 1:
        raise RuntimeError("rank 1 fails before the collective")
    dd.all_reduce_sum(1.0)  # rank 0 waits here for a peer that will never come
""")


def test_a_failing_rank_does_not_hang_its_peer(tmp_path):
    """Ranks meet at a barrier before leaving a clean run (gloo tore down one rank while its peer
    still was, ~1 run in 35). After an unhandled exception a rank must not wait there: its peer
    is stuck in a collective, and both would hang for the 30-min collective timeout."""
    script = tmp_path / "fail_rank.py"
    script.write_text(_FAILING_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=50)  # the exit barrier waits 60 s
    assert run.returncode == 1 and "rank 1 fails before the collective" in run.stderr


def test_destroy_waits_for_peers_only_on_a_clean_exit(fake_rank, monkeypatch):
    import torch.distributed as dist

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "monitored_barrier", lambda timeout: calls.append(("barrier", timeout.total_seconds())))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    for sync, expected in ((True, [("barrier", dd._EXIT_SYNC_S), "destroy"]), (False, ["destroy"])):
        fake_rank(0, 2)
        calls.clear()
        dd.destroy(sync=sync)
        assert calls == expected and dd.current() is None
    fake_rank(1, 2)
    calls.clear()
    monkeypatch.setattr(dist, "monitored_barrier", lambda timeout: (_ for _ in ()).throw(RuntimeError("peer gone")))
    dd.destroy()  # a peer already gone: the group is still destroyed
    assert calls == ["destroy"] and dd.current() is None
    monkeypatch.setattr("sys.last_value", RuntimeError("unhandled"), raising=False)
    fake_rank(0, 2)
    calls.clear()
    dd._destroy_at_exit()
    assert calls == ["destroy"]
