"""Faults: atomic outputs (a failed or killed write leaves the old output intact), resume after
SIGKILL (bit-identical to an uninterrupted run), determinism (same seed, same outputs on CPU)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from oceandl.cli.main import cli
from oceandl.errors import InputError, OceanDLError

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".old")))


def digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sorted(path.rglob("*"))
                                       if p.is_file())).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def child_env() -> dict:
    """Environment of a child run: the same thread count as this process, so float sums agree."""
    n = str(torch.get_num_threads())
    return {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "PYTHONHASHSEED": "0"}


def sigkill_when(proc: subprocess.Popen, ready, timeout: float, why):
    """SIGKILL ``proc`` as soon as ``ready()`` is truthy (polled every 5 ms); returns that value.

    Fails with ``why()`` if the process ends first or ``timeout`` seconds pass; never leaves it running.
    """
    try:
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline and proc.poll() is None:
            value = ready()
            if value:
                break
            time.sleep(0.005)
        assert value and proc.poll() is None, why()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
        return value
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def field() -> xr.Dataset:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), (15 + rng.standard_normal((6, 4, 5))).astype("f4"))},
        coords={"time": np.arange(6.0), "lat": np.linspace(30, 33, 4), "lon": np.linspace(-60, -56, 5)},
    )


# ------------------------------------------------------------------------------------------------
# Atomic outputs, in-process failures
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "ctrl-c"])
def test_write_netcdf_failure_keeps_old_file(tmp_path, field, monkeypatch, error):
    from oceandl.io import write_netcdf

    out = tmp_path / "out.nc"
    write_netcdf(field, out)
    before = digest(out)

    def broken(self, path, *a, **k):
        Path(path).write_bytes(b"CDF\x01 half a file")  # a partial file, then the failure
        raise error

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    # an OSError is an I/O failure, exit 1 (an InputError, exit 2, until audit 124)
    with pytest.raises(OceanDLError if isinstance(error, OSError) else KeyboardInterrupt) as info:
        write_netcdf(field * 2, out, overwrite=True)
    if isinstance(error, OSError):
        assert str(out) in str(info.value) and "cannot write netCDF" in str(info.value)
    assert digest(out) == before
    assert leftovers(tmp_path) == []


def test_cli_write_failure_keeps_old_output(tmp_path, field, monkeypatch):
    src, out = tmp_path / "in.nc", tmp_path / "filled.nc"
    field.to_netcdf(src)
    out.write_bytes(b"previous result")
    real = xr.Dataset.to_netcdf

    def broken(self, path, *a, **k):
        if str(path).endswith(".part"):
            Path(path).write_bytes(b"partial")
            raise OSError(28, "No space left on device")
        return real(self, path, *a, **k)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    res = invoke("interpolate", src, "--method", "climatology", "-o", out, "--overwrite", "--quiet")
    assert res.exit_code == 1, res.output  # a full disk: no bad input (exit 2 until audit 116)
    assert "cannot write netCDF" in res.stderr and "No space left on device" in res.stderr
    assert out.read_bytes() == b"previous result" and leftovers(tmp_path) == []


def _save(path, seed=0, overwrite=False):
    from oceandl.models import get_model
    from oceandl.training.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    return save_checkpoint(path, get_model("cnn", 1, 3), model_name="cnn", model_args=[1, 3], model_options={},
                           task="classification", classes=["a", "b", "c"], overwrite=overwrite)


def test_checkpoint_failure_keeps_old_folder(tmp_path, monkeypatch):
    import safetensors.torch

    ckpt = _save(tmp_path / "ckpt")
    before = digest(ckpt)

    def broken(tensors, filename, *a, **k):
        Path(filename).write_bytes(b"\x00" * 100)
        raise RuntimeError("I/O error")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(RuntimeError):
        _save(tmp_path / "ckpt", seed=1, overwrite=True)
    assert digest(ckpt) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_folder_replaced_whole(tmp_path, monkeypatch, exchange):
    """Overwriting a folder swaps in the new one whole: no stale file of the old one survives."""
    import oceandl.utils as utils

    if not exchange:
        monkeypatch.setattr(utils, "_exchange", lambda a, b: False)
    ckpt = _save(tmp_path / "ckpt")
    (ckpt / "stale.txt").write_text("from the old run")
    _save(tmp_path / "ckpt", seed=1, overwrite=True)
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "weights.safetensors"]
    assert leftovers(tmp_path) == []
    w = load_file(ckpt / "weights.safetensors")
    torch.manual_seed(1)
    from oceandl.models import get_model

    ref = get_model("cnn", 1, 3).state_dict()
    assert all(torch.equal(w[k], ref[k]) for k in ref)


def test_existing_output_never_replaced_without_overwrite(tmp_path, field):
    from oceandl.io import write_netcdf
    from oceandl.utils import atomic_path

    out = tmp_path / "out.nc"
    out.write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists"):
        write_netcdf(field, out)
    with pytest.raises(InputError, match="already exists"):
        with atomic_path(out):
            pass
    with pytest.raises(InputError, match="already exists"):
        _save(tmp_path / "out.nc")
    assert out.read_bytes() == b"keep me" and leftovers(tmp_path) == []


@pytest.mark.parametrize("noreplace", [True, False], ids=["renameat2", "link-mkdir"])
@pytest.mark.parametrize("kind", ["file", "empty folder", "folder"])
def test_output_written_meanwhile_never_replaced(tmp_path, monkeypatch, noreplace, kind):
    """Two runs on the same -o without --overwrite both pass the check at their start: the later
    one's final move replaced the earlier one's complete output (a folder was even swapped out and
    deleted). It now refuses, keeps the other output as it was and removes its own temporary."""
    import oceandl.utils as utils

    if not noreplace:  # no renameat2 (macOS, musl) or a file system without RENAME_NOREPLACE
        monkeypatch.setattr(utils, "_renameat2", lambda a, b, flags: None)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="written by another run while this one ran"):
        with utils.atomic_path(out) as tmp:
            if kind == "file":
                tmp.write_text("this run")
                out.write_text("the other run")  # the other run finishes first
            else:
                tmp.mkdir()
                (tmp / "results.json").write_text("this run")
                out.mkdir()
                if kind == "folder":
                    (out / "results.json").write_text("the other run")
    if kind == "file":
        assert out.read_text() == "the other run"
    else:
        assert [p.read_text() for p in out.iterdir()] == ([] if kind == "empty folder" else ["the other run"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # nothing there at the end: written as before
    with utils.atomic_path(tmp_path / "new") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "new").read_text() == "x" and leftovers(tmp_path) == []


def test_cli_output_written_meanwhile(tmp_path, monkeypatch):
    """The command line: exit 2, one line, the other run's folder untouched."""
    from oceandl.datasets import synthetic_images as si

    out = tmp_path / "sar"
    real = si.make_sar_vignettes

    def and_another_run(folder, **kw):
        real(folder, **kw)
        real(out, **kw)  # `oceandl synth sar -o sar` started at the same time finishes first

    monkeypatch.setattr(si, "make_sar_vignettes", and_another_run)
    res = invoke("synth", "sar", "--n", 1, "--size", 16, "-o", out)
    assert res.exit_code == 2, res.output
    assert "written by another run" in res.output and "Traceback" not in res.output
    assert len(list(out.rglob("*.*"))) > 0 and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Atomic outputs, SIGKILL mid-write
# ------------------------------------------------------------------------------------------------
def test_sigkill_while_writing_netcdf(tmp_path, field):
    """A writer killed mid-write leaves the old file intact; its ``.part`` stays until the next write
    of the same target removes it (the writer's process is gone)."""
    from oceandl.io import write_netcdf

    out = tmp_path / "big.nc"
    write_netcdf(field, out)
    before = digest(out)
    script = textwrap.dedent(f"""
        import numpy as np, xarray as xr
        from oceandl.io import write_netcdf
        rng = np.random.default_rng(0)
        ds = xr.Dataset({{"sst": (("time", "lat", "lon"), rng.random((60, 400, 400), dtype="f4"))}})
        print("writing", flush=True)
        write_netcdf(ds, {str(out)!r}, overwrite=True)
        print("done", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=child_env(), cwd=ROOT)
    assert proc.stdout.readline().strip() == b"writing"
    part = sigkill_when(proc, lambda: [p for p in tmp_path.glob(".big.nc.*.part") if p.stat().st_size > 0], 120,
                        lambda: "the writer finished (or failed) before it could be killed mid-write")
    assert digest(out) == before  # the old file, byte for byte
    assert leftovers(tmp_path) == [part[0].name]  # the killed writer's temporary
    with xr.open_dataset(out) as back:
        np.testing.assert_array_equal(back.sst.values, field.sst.values)
    write_netcdf(field * 2, out, overwrite=True)  # the next write cleans it up
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Resume after SIGKILL, determinism of training
# ------------------------------------------------------------------------------------------------
EPOCHS = 4


def _tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for k, c in enumerate(("a", "b", "c")):
        (root / c).mkdir(parents=True)
        for i in range(8):
            img = np.clip(rng.normal(60 + 60 * k, 30, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / c / f"{i}.png")
    return root


def _train_args(data: Path, out: Path, seed: int = 0) -> list[str]:
    return ["train", "classifier", "--data", str(data), "--model", "cnn", "-o", str(out), "--epochs", str(EPOCHS),
            "--seed", str(seed), "--device", "cpu", "--quiet", "--batch-size", "8", "--augment", "flip"]


def _state_epoch(folder: Path) -> int | None:
    try:
        meta = json.loads((folder / "training_state.json").read_text())
    except (OSError, ValueError):
        return None
    return dict((k, v) for k, v in meta["__dict__"]).get("epoch")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def _assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, training state and metrics (timings aside)."""
    for name in ("weights.safetensors", "training_state.safetensors"):
        ta, tb = _tensors(a / name), _tensors(b / name)
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f"{name}: {k} differs"
    ca, cb = (json.loads((p / "config.json").read_text()) for p in (a, b))
    assert ca["metrics"] == cb["metrics"] and ca["best_epoch"] == cb["best_epoch"]
    ha, hb = (_history(p) for p in (a, b))
    assert ha == hb and len(ha) == EPOCHS


def _history(folder: Path) -> list[dict]:
    import csv

    with open(folder / "log.csv") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module", autouse=True)
def no_curves():
    """Figures (curves each epoch, confusion and reliability at the end: most of a tiny run's time)
    are not what is tested here."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("plot_history", "plot_confusion", "plot_reliability"):
            mp.setattr(f"oceandl.plotting.{name}", lambda *a, **k: None)
        yield


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, no_curves) -> tuple[Path, Path]:
    """The tiny image tree and an uninterrupted 4-epoch run on it (in-process)."""
    root = tmp_path_factory.mktemp("train")
    data = _tree(root / "data")
    res = invoke(*_train_args(data, root / "ref"))
    assert res.exit_code == 0, res.output
    return data, root / "ref"


def test_resume_after_sigkill_is_bit_identical(tmp_path, uninterrupted):
    data, ref = uninterrupted
    out = tmp_path / "ckpt"
    # The child sleeps instead of drawing each epoch's curves, so that the kill, sent as soon as
    # epoch 2's state is on disk, lands between epochs whatever the machine's load (kills inside
    # the checkpoint write are test_kill_between_checkpoint_and_state below).
    script = textwrap.dedent("""
        import sys, time
        import oceandl.plotting as plotting
        plotting.plot_history = lambda *a, **k: time.sleep(1.0)
        plotting.plot_confusion = plotting.plot_reliability = lambda *a, **k: None
        from oceandl.cli.main import main
        sys.exit(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, *_train_args(data, out)], env=child_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_when(proc, lambda: (_state_epoch(out) or 0) >= 2, 300,
                 lambda: f"the run ended before it was killed: {proc.stderr.read().decode()[-500:]}")
    killed_at = _state_epoch(out)
    assert 2 <= killed_at < EPOCHS

    res = invoke(*_train_args(data, out), "--resume")
    assert res.exit_code == 0, res.output
    assert _state_epoch(out) == EPOCHS
    _assert_same_run(ref, out)


def test_sigterm_to_the_job_with_reading_workers(tmp_path, uninterrupted):
    """A batch scheduler's SIGTERM goes to the whole process group, DataLoader workers included: the
    main process saves the run inside its epoch and ends with its one line (exit 143, no traceback
    from the dying workers); --resume then ends as the uninterrupted run."""
    data, ref = uninterrupted
    out = tmp_path / "ckpt"
    # streamed through 2 reading workers (not materialised); the signal goes to the process group in
    # epoch 2's second batch, while the workers are reading the next ones
    script = textwrap.dedent("""
        import dataclasses, os, signal, sys
        import torch
        import oceandl.training.engine as engine
        real = engine._Batches.__init__
        def streamed(self, dataset, batch_size, device, cfg, *a, **k):
            real(self, dataset, batch_size, device, dataclasses.replace(cfg, max_materialize_mb=0), *a, **k)
        engine._Batches.__init__ = streamed
        steps = []
        def stepped(opt, args, kwargs):
            steps.append(1)
        def forward(module, args):
            if len(steps) == 3 and module.training:  # epoch 2, batch 2 (2 batches an epoch)
                steps.append(1)
                os.killpg(os.getpgid(0), signal.SIGTERM)
        from torch.optim.optimizer import register_optimizer_step_post_hook
        register_optimizer_step_post_hook(stepped)
        torch.nn.modules.module.register_module_forward_pre_hook(forward)
        from oceandl.cli.main import main
        sys.exit(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, *_train_args(data, out), "--num-workers", "2"],
                            env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own process group, as a scheduler's job
    try:
        code = proc.wait(300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read().decode()
    assert code == 143 and "Traceback" not in err and "killed by signal" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("Error: terminated: the training state of epoch 2 of 4, batch 1 "), err
    res = invoke(*_train_args(data, out), "--resume")
    assert res.exit_code == 0, res.output
    _assert_same_run(ref, out)


def test_sigterm_handler_stops_watching_the_reading_workers():
    """The CLI's SIGTERM handler takes torch's SIGCHLD handler off before it raises: the workers,
    signalled with the rest of the job, die while the main process saves its state, and torch's
    handler raised 'DataLoader worker (pid N) is killed by signal: Terminated' from inside that save
    (measured on 6 runs of a streamed 600-image training killed by group: 2 printed a traceback, 1
    exited 1 with no state saved; with the handler taken off, 12 of 12 ended with the one line)."""
    from torch.utils.data._utils import signal_handling

    from oceandl.cli.main import _on_sigterm, _Terminated

    before = signal.getsignal(signal.SIGCHLD)
    try:
        signal_handling._set_SIGCHLD_handler()  # what a DataLoader with workers installs
        assert signal.getsignal(signal.SIGCHLD) not in (signal.SIG_DFL, None)
        with pytest.raises(_Terminated):
            _on_sigterm(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGCHLD, before if before is not None else signal.SIG_DFL)
        signal_handling._SIGCHLD_handler_set = False


def test_resume_needs_a_state(tmp_path, uninterrupted):
    data, _ = uninterrupted
    res = invoke(*_train_args(data, tmp_path / "nothing"), "--resume")
    assert res.exit_code == 2 and "nothing to resume" in res.stderr


def test_training_is_deterministic(tmp_path, uninterrupted):
    data, ref = uninterrupted
    res = invoke(*_train_args(data, tmp_path / "again"))
    assert res.exit_code == 0, res.output
    _assert_same_run(ref, tmp_path / "again")
    res = invoke(*_train_args(data, tmp_path / "seed1", seed=1))
    assert res.exit_code == 0, res.output
    wa, wb = _tensors(ref / "weights.safetensors"), _tensors(tmp_path / "seed1" / "weights.safetensors")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)  # the seed matters


class _Killed(BaseException):
    """Stands for SIGKILL inside the process (nothing after it runs)."""


def test_kill_between_checkpoint_and_state(tmp_path, monkeypatch):
    from oceandl.models import get_model
    from oceandl.training import TrainConfig, engine
    from oceandl.training.engine import TensorData, fit

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 8, 8, generator=g), torch.arange(24) % 3
    train, val = TensorData(x[:18], y[:18]), TensorData(x[18:], y[18:])
    cfg = TrainConfig(epochs=3, batch_size=8, seed=0, device="cpu", progress=False)
    meta = {"model_name": "mlp", "model_args": [1, 3], "model_options": {"input_size": [8, 8]}}

    def net():
        torch.manual_seed(0)
        return get_model("mlp", 1, 3, input_size=[8, 8])

    ref = fit(net(), train, val, cfg, out=tmp_path / "ref", checkpoint_meta=meta)
    real, calls = engine.save_checkpoint, []

    def dies_after_second(*a, **k):
        out = real(*a, **k)
        calls.append(1)
        if len(calls) == 2:
            raise _Killed  # the process dies right after epoch 2's checkpoint folder is in place
        return out

    monkeypatch.setattr(engine, "save_checkpoint", dies_after_second)
    with pytest.raises(_Killed):
        fit(net(), train, val, cfg, out=tmp_path / "ckpt", checkpoint_meta=meta)
    monkeypatch.setattr(engine, "save_checkpoint", real)
    res = fit(net(), train, val, cfg, out=tmp_path / "ckpt", checkpoint_meta=meta, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(ref.model.state_dict().values(), res.model.state_dict().values()))


# ------------------------------------------------------------------------------------------------
# Determinism of interpolation
# ------------------------------------------------------------------------------------------------
def test_dineof_cli_is_deterministic(tmp_path):
    from oceandl.datasets.sst import synthetic_sst

    src = tmp_path / "sst.nc"
    synthetic_sst(n_time=12, ny=10, nx=12, cloud_cover=0.4, seed=3).to_netcdf(src)
    outs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        outs[name] = tmp_path / f"{name}.nc"
        res = invoke("interpolate", src, "--method", "dineof", "--set", "max_modes=3", "--seed", seed,
                     "--device", "cpu", "-o", outs[name], "--quiet")
        assert res.exit_code == 0, res.output
    with xr.open_dataset(outs["a"]) as a, xr.open_dataset(outs["b"]) as b, xr.open_dataset(outs["c"]) as c:
        assert set(a.data_vars) == set(b.data_vars)
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values)
        skip = {"history", "seconds"}
        assert {k: v for k, v in a.sst.attrs.items() if k not in skip} == \
               {k: v for k, v in b.sst.attrs.items() if k not in skip}
        # another seed withholds other pixels: the seed is really used
        assert not np.array_equal(a.missing_flag.values, c.missing_flag.values)
