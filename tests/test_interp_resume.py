"""`oceandl train interpolator --resume` (``resume=`` in Python): a neural gap filler's training
state saved while it trains, resumed to the same weights as an uninterrupted run (bit-identical on
the CPU), each refusal one line with exit 2 and nothing overwritten, and an interrupted folder
warned about by `interpolate --model`."""
from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import assert_cli_error
from safetensors.torch import load_file
from test_neural_interp import TINY, _cube

from oceandl.cli.main import cli
from oceandl.errors import InputError, OceanDLError
from oceandl.interp import METHODS
from oceandl.interp.neural import NeuralInterpolator, _TrainingStopped
from oceandl.training.checkpoint import load_training_state

STATE = ("training_state.json", "training_state.safetensors")


@pytest.fixture(scope="module")
def cube():
    return _cube(12, 24, 24, 0.4, seed=0)


def _opts(name="unet", **extra):
    return {"steps": 6, "batch_size": 4, "patch": 16, "model_options": TINY[name], "checkpoint_every": 2, **extra}


def _interrupt(cls, da, folder, stop, **opts):
    """Train into ``folder`` and stop after step ``stop``, as a run killed there would."""
    net = cls(seed=0, device="cpu", save_to=str(folder), **opts)
    net._stop_after_step = stop
    with pytest.raises(_TrainingStopped):
        net.fit(da)


def _training(folder) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())["training"]


def _same_weights(a, b) -> bool:
    wa, wb = load_file(str(Path(a) / "weights.safetensors")), load_file(str(Path(b) / "weights.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())} if Path(folder).exists() else {}


def test_resumed_run_gives_the_uninterrupted_weights(cube, tmp_path):
    """Stopped after step 3 of 6 and resumed, a U-Net with nll (and the sigma calibration's held-out
    pixels) and dropout (torch's random state) ends with the uninterrupted run's weights, losses and
    calibration, bit for bit."""
    cls, opts = METHODS["unet"], _opts(nll=True, model_options={**TINY["unet"], "dropout": 0.3})
    whole = cls(seed=0, device="cpu", save_to=str(tmp_path / "whole"), **opts).fit(cube)
    whole.save(tmp_path / "whole")
    _interrupt(cls, cube, tmp_path / "cut", 3, **opts)
    cut = _training(tmp_path / "cut")
    assert cut["finished"] is False and cut["steps_done"] == 3 and cut["train_steps"] == 6
    assert len(cut["loss_history"]) == 3 and all((tmp_path / "cut" / f).is_file() for f in STATE)
    resumed = cls(seed=0, device="cpu", resume=str(tmp_path / "cut"), **opts).fit(cube)
    resumed.save(tmp_path / "cut")  # replaces the unfinished folder this fit wrote
    a, b = whole.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _same_weights(tmp_path / "whole", tmp_path / "cut")
    ta, tb = _training(tmp_path / "whole"), _training(tmp_path / "cut")
    assert ta["loss_history"] == tb["loss_history"] == whole.loss_history_ and len(ta["loss_history"]) == 6
    assert tb["finished"] is True and tb["resumed_at"] == [3] and "resumed_at" not in ta
    assert tb["options"] == ta["options"] and tb["calibration"] == ta["calibration"]
    assert resumed.sigma_calibration_ == whole.sigma_calibration_ != 1.0
    # the finished checkpoint keeps no training state: nothing to resume in it
    assert not any((tmp_path / "cut" / f).exists() for f in STATE)
    np.testing.assert_array_equal(resumed.reconstruct()["sst"].values, whole.reconstruct()["sst"].values)


def test_a_run_killed_after_its_last_step_is_finished_by_resume(cube, tmp_path):
    """Killed between its last state and the checkpoint: the resume trains no step, saves the
    finished checkpoint, and has the uninterrupted weights and losses."""
    cls, opts = METHODS["convae"], _opts("convae")
    whole = cls(seed=0, device="cpu", **opts).fit(cube)
    _interrupt(cls, cube, tmp_path / "cut", 6, **opts)
    assert _training(tmp_path / "cut")["finished"] is False
    resumed = cls(seed=0, device="cpu", resume=str(tmp_path / "cut"), **opts).fit(cube)
    resumed.save(tmp_path / "cut")
    assert _training(tmp_path / "cut")["finished"] is True and resumed.loss_history_ == whole.loss_history_
    a, b = whole.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_state_write_leaves_the_previous_state(cube, tmp_path, monkeypatch):
    """A state write that fails part-way (a kill, a full disk) leaves the previous state whole:
    the run resumes from it to the same weights."""
    import oceandl.training.checkpoint as ck

    cls, opts = METHODS["convae"], _opts("convae")
    whole = cls(seed=0, device="cpu", **opts).fit(cube)
    real, calls = ck._save_tensors, []

    def failing(tensors, path):
        calls.append(path.name)
        if calls.count("training_state.safetensors") == 2:  # the second state (step 4), mid-write
            raise OSError(28, "No space left on device")
        real(tensors, path)

    monkeypatch.setattr(ck, "_save_tensors", failing)
    # a full disk is no bad input: exit 1 (OceanDLError, not InputError), saying the state is still whole
    with pytest.raises(OceanDLError, match="no space left on the disk.*the previous checkpoint there is unchanged") as got:
        cls(seed=0, device="cpu", save_to=str(tmp_path / "run"), **opts).fit(cube)
    assert not isinstance(got.value, InputError)
    monkeypatch.setattr(ck, "_save_tensors", real)
    assert _training(tmp_path / "run")["steps_done"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    resumed = cls(seed=0, device="cpu", resume=str(tmp_path / "run"), **opts).fit(cube)
    a, b = whole.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _interrupted_fit(net, da, where: str, at: int, signal=KeyboardInterrupt) -> KeyboardInterrupt:
    """Fit ``net`` and press Ctrl-C (``signal``) in step ``at`` (1-based): in its forward pass
    (``where="forward"``), while its weights are updated (``"update"``: after AdamW's step, before
    the scheduler's), or before it begins (``"between"``). Returns the exception raised."""
    calls = {"n": 0}

    def hit():
        calls["n"] += 1
        if calls["n"] == at:
            raise signal()

    mp = pytest.MonkeyPatch()
    if where == "forward":
        real = net._forward

        def forward(x):
            out = real(x)  # batch norm's running statistics have moved: the state must not keep that
            hit()
            return out

        mp.setattr(net, "_forward", forward)
    elif where == "update":
        real_step = torch.optim.AdamW.step

        def step(self, *a, **k):
            out = real_step(self, *a, **k)
            hit()
            return out

        mp.setattr(torch.optim.AdamW, "step", step)
    else:
        real_progress = net._progress

        def progress(it, *a, **k):
            for i in real_progress(it, *a, **k):
                hit()
                yield i

        mp.setattr(net, "_progress", progress)
    try:
        with pytest.raises(signal) as info:
            net.fit(da)
    finally:
        mp.undo()
    return info.value


@pytest.mark.parametrize("where, at, state_step, said", [
    ("forward", 4, 3, "the training state of step 3 of 6 is saved in"),
    ("between", 4, 3, "the training state of step 3 of 6 is saved in"),
    ("between", 5, 4, "the training state of step 4 of 6 stands in"),  # saved already (every 2 steps)
    ("update", 5, 4, "interrupted while updating the weights: the training state of step 4 of 6 stands in"),
    ("forward", 1, None, "no training state was saved in"),
])
def test_ctrl_c_saves_the_run_so_far(cube, tmp_path, where, at, state_step, said):
    """Ctrl-C (or SIGTERM) mid-training saves the state of the last whole step, and the resume ends
    with the uninterrupted weights, bit for bit: a step cut in its forward pass (batch norm's
    statistics already moved, dropout drawn) is replayed whole. Cut while the weights are updated,
    the last saved state stands (every 2 steps here)."""
    cls = METHODS["unet"]
    opts = _opts(nll=True, model_options={**TINY["unet"], "dropout": 0.3})
    whole = cls(seed=0, device="cpu", **opts).fit(cube)
    folder = tmp_path / "run"
    exc = _interrupted_fit(cls(seed=0, device="cpu", save_to=str(folder), **opts), cube, where, at)
    assert said in str(exc) and str(folder) in str(exc)
    assert exc.resumable is (state_step is not None)
    if state_step is None:
        assert not folder.exists()
        return
    assert _training(folder)["steps_done"] == state_step and not _training(folder)["finished"]
    resumed = cls(seed=0, device="cpu", resume=str(folder), **opts).fit(cube)
    assert resumed.loss_history_ == whole.loss_history_
    a, b = whole.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_as_a_step_begins_keeps_that_steps_statistics(cube, tmp_path, monkeypatch):
    """Ctrl-C as step 4 began, after its random states were noted and before batch norm's running
    statistics were: the state saved put back step 3's statistics (those noted as step 3 began)
    with step 4's random states, and the resume ended on other weights than the uninterrupted run."""
    cls = METHODS["unet"]
    opts = _opts(nll=True, model_options={**TINY["unet"], "dropout": 0.3})
    whole = cls(seed=0, device="cpu", **opts).fit(cube)
    real, calls = torch._foreach_copy_, [0]

    def copy(dst, src):
        calls[0] += 1
        if calls[0] == 4:  # the snapshot of step 4 (one per step, the handler's put-back after it)
            raise KeyboardInterrupt
        return real(dst, src)

    folder = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(torch, "_foreach_copy_", copy)
        with pytest.raises(KeyboardInterrupt) as info:
            cls(seed=0, device="cpu", save_to=str(folder), **opts).fit(cube)
    assert "the training state of step 3 of 6 is saved in" in str(info.value)
    resumed = cls(seed=0, device="cpu", resume=str(folder), **opts).fit(cube)
    assert resumed.loss_history_ == whole.loss_history_
    a, b = whole.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_after_the_last_step_says_resume_finishes_the_run(cube, tmp_path, monkeypatch):
    """Cut in the sigma calibration, once every step is trained: the line said a bare 'interrupted';
    it now names the state of the last step, and the resume finishes the run without training
    again (the uninterrupted weights and calibration)."""
    cls, opts = METHODS["unet"], _opts(nll=True)
    whole = cls(seed=0, device="cpu", **opts).fit(cube)
    net = cls(seed=0, device="cpu", save_to=str(tmp_path / "run"), **opts)

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(net, "_calibrate", ctrl_c)
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(cube)
    assert str(info.value) == f"the training state of step 6 of 6 stands in {tmp_path / 'run'} (every step trained)"
    assert info.value.resumable is True and _training(tmp_path / "run")["steps_done"] == 6
    resumed = cls(seed=0, device="cpu", resume=str(tmp_path / "run"), **opts).fit(cube)
    assert resumed.loss_history_ == whole.loss_history_ and resumed.sigma_calibration_ == whole.sigma_calibration_
    a, b = whole.model_.state_dict(), resumed.model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_state_interval():
    """checkpoint_every=None: a tenth of the steps (and the clock); a number: exactly that."""
    assert METHODS["unet"]()._state_every(600) == (60, True)
    assert METHODS["unet"]()._state_every(3) == (1, True)
    assert METHODS["unet"](checkpoint_every=7)._state_every(600) == (7, False)
    with pytest.raises(InputError, match=r"checkpoint_every=0 must be a positive integer \(steps\), or None"):
        METHODS["unet"](checkpoint_every=0)


def test_python_refusals(cube, tmp_path):
    """resume= with init=/checkpoint=/another save_to, on nothing, on a finished checkpoint, with
    other options or another input: one line each, the folder untouched."""
    cls, opts = METHODS["convae"], _opts("convae")
    _interrupt(cls, cube, tmp_path / "cut", 2, **opts)
    cls(seed=0, device="cpu", save_to=str(tmp_path / "done"), **opts).fit(cube).save(tmp_path / "done")
    before = _snapshot(tmp_path / "cut")
    (tmp_path / "empty").mkdir()
    cut = str(tmp_path / "cut")
    cases = [({"resume": cut, "init": str(tmp_path / "done")}, "init="),
             ({"resume": cut, "save_to": str(tmp_path / "x")}, "save_to="),
             ({"resume": str(tmp_path / "nowhere")}, "nothing to resume (no such folder)"),
             ({"resume": str(tmp_path / "empty")}, "nothing to resume (no config.json"),
             ({"resume": str(tmp_path / "done")}, "a finished checkpoint (6 steps), nothing to resume"),
             ({"resume": cut, "steps": 8}, "resumed with steps=8, but the run in that folder was started with steps=6"),
             ({"resume": cut, "lr": 1e-3}, "started with lr=0.002"),
             ({"resume": cut, "seed": 1}, "started with seed=0")]
    for extra, words in cases:
        kw = {**opts, "seed": 0, **extra}
        with pytest.raises(InputError) as err:
            cls(device="cpu", **kw)
        assert words in str(err.value) and "\n" not in str(err.value), (extra, str(err.value))
    with pytest.raises(InputError, match="not 'unet'"):  # another method's run
        METHODS["unet"](device="cpu", resume=cut, **_opts())
    with pytest.raises(InputError, match="resumed on variable 'sst'"):  # another grid
        cls(seed=0, device="cpu", resume=cut, **opts).fit(_cube(12, 24, 28, 0.4, seed=0))
    with pytest.raises(InputError, match="other values"):  # the same grid, other values
        cls(seed=0, device="cpu", resume=cut, **opts).fit(_cube(12, 24, 24, 0.4, seed=1))
    with pytest.raises(InputError, match="already exists"):  # save_to is a new folder, checked before training
        cls(seed=0, device="cpu", save_to=cut, **opts).fit(cube)
    assert _snapshot(tmp_path / "cut") == before


def _edit_state(folder, key, value):
    """Set the top-level ``key`` of the training state's JSON in ``folder`` to ``value``."""
    path = Path(folder) / "training_state.json"
    meta = json.loads(path.read_text())
    meta["__dict__"] = [[k, value if k == key else v] for k, v in meta["__dict__"]]
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit", [
    lambda d: (d / "training_state.json").write_text('{"__dict__": null}'),
    lambda d: (d / "training_state.json").write_text("[1, 2]"),
    lambda d: (d / "training_state.json").write_text('{"__dict__": [[{"__tensor__": "nowhere"}, 1]]}'),
    lambda d: _edit_state(d, "steps", None),
    lambda d: _edit_state(d, "step", "two"),
    lambda d: _edit_state(d, "step", 9),
    lambda d: _edit_state(d, "losses", None),
    lambda d: (d / "training_state.safetensors").write_bytes((d / "training_state.safetensors").read_bytes()[:100]),
])
def test_an_edited_or_damaged_training_state_is_a_one_line_checkpoint_error(cube, tmp_path, edit):
    # a state JSON that parses but is not the state (or its numbers not numbers) was a bare
    # TypeError/KeyError/ValueError traceback (exit 1 at the CLI)
    from oceandl.errors import CheckpointError

    cls, opts = METHODS["convae"], _opts("convae")
    _interrupt(cls, cube, tmp_path / "cut", 2, **opts)
    edit(tmp_path / "cut")
    before = _snapshot(tmp_path / "cut")
    with pytest.raises(CheckpointError, match="cut: corrupt training state") as err:
        cls(seed=0, device="cpu", resume=str(tmp_path / "cut"), **opts).fit(cube)
    assert "\n" not in str(err.value)
    assert _snapshot(tmp_path / "cut") == before


def test_interrupted_folder_is_warned_about_when_used(cube, tmp_path):
    """checkpoint= (interpolate --model) and init= of an interrupted run's folder fill or train with
    a warning naming the step it stopped at, not as a trained network without a word."""
    cls, opts = METHODS["convae"], _opts("convae")
    _interrupt(cls, cube, tmp_path / "cut", 2, **opts)
    with pytest.warns(UserWarning, match=r"training stopped at step 2 of 6 \(interrupted\).*--resume"):
        cls(device="cpu", checkpoint=str(tmp_path / "cut")).fit(cube)
    with pytest.warns(UserWarning, match="training stopped at step 2 of 6"):
        cls(device="cpu", init=str(tmp_path / "cut"), steps=1, batch_size=4, patch=16).fit(cube)
    cls(seed=0, device="cpu", save_to=str(tmp_path / "done"), **opts).fit(cube).save(tmp_path / "done")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finished checkpoint: no warning
        cls(device="cpu", checkpoint=str(tmp_path / "done")).fit(cube)


# ------------------------------------------------------------------------------------------ CLI
SMALL = ["--var", "sst", "--batch-size", "4", "--quiet", "--set", "patch=16", "--set", "steps=4",
         "--set", 'model_options={"width": 8, "depth": 2}', "--set", "checkpoint_every=1"]


@pytest.fixture(scope="module")
def sst_file(tmp_path_factory):
    from oceandl.datasets.sst import synthetic_sst

    path = tmp_path_factory.mktemp("sst") / "cube.nc"
    synthetic_sst(n_time=12, ny=24, nx=24, cloud_cover=0.5, seed=3).to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def runs(sst_file, tmp_path_factory):
    """An uninterrupted run's checkpoint and one killed after step 2 (of 4), through the CLI."""
    base = tmp_path_factory.mktemp("runs")
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "interpolator", str(sst_file), *SMALL, "-o", str(base / "whole")])
    assert res.exit_code == 0, res.output
    mp = pytest.MonkeyPatch()
    mp.setattr(NeuralInterpolator, "_stop_after_step", 2)
    try:
        res = runner.invoke(cli, ["train", "interpolator", str(sst_file), *SMALL, "-o", str(base / "cut")])
    finally:
        mp.undo()
    assert res.exit_code != 0 and _training(base / "cut")["steps_done"] == 2, res.output
    return base


def test_cli_resume_gives_the_uninterrupted_checkpoint(runs, sst_file, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(runs / "cut", folder)
    res = CliRunner().invoke(cli, ["train", "interpolator", str(sst_file), *SMALL, "-o", str(folder), "--resume"])
    assert res.exit_code == 0, res.output
    assert "4 steps (resumed at step 2)" in res.output and f"--model {folder}" in res.output
    # the training time of both calls: the killed one's (in its state) and this one's
    before = load_training_state(runs / "cut")["seconds"]
    total = float(re.search(r"\(([\d.]+) s of training over the 2 calls\)", res.output).group(1))
    assert total >= round(before, 1)
    assert _same_weights(runs / "whole", folder)
    ta, tb = _training(runs / "whole"), _training(folder)
    assert ta["loss_history"] == tb["loss_history"] and len(ta["loss_history"]) == 4
    assert tb["finished"] is True and tb["source"] == str(sst_file)
    assert (folder / "normalisation.safetensors").read_bytes() == (runs / "whole" / "normalisation.safetensors").read_bytes()


def test_sigterm_saves_the_run_and_the_cli_says_how_to_go_on(runs, sst_file, tmp_path):
    """A real SIGTERM (a batch scheduler's time limit) in step 3's forward pass of a CLI run: exit
    143, one line saying which step is saved and how to go on; `--resume` then writes the
    uninterrupted run's checkpoint."""
    import subprocess
    import sys
    import textwrap

    from test_faults import ROOT, child_env

    folder = tmp_path / "run"
    script = textwrap.dedent("""
        import os, signal, sys
        from oceandl.interp.neural import NeuralInterpolator
        real, calls = NeuralInterpolator._forward, []
        def forward(self, x):
            out = real(self, x)
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return out
        NeuralInterpolator._forward = forward
        from oceandl.cli.main import main
        sys.exit(main())
    """)
    # checkpoint_every=100: no state is written before the signal, the one saved is the interruption's
    args = ["train", "interpolator", str(sst_file), *SMALL, "--set", "checkpoint_every=100", "-o", str(folder)]
    proc = subprocess.run([sys.executable, "-c", script, *args], env=child_env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"Error: terminated: the training state of step 2 of 4 is saved "
                                                    f"in {folder} (go on with the same command and --resume)")
    assert _training(folder)["steps_done"] == 2
    res = CliRunner().invoke(cli, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert _same_weights(runs / "whole", folder)
    assert _training(folder)["loss_history"] == _training(runs / "whole")["loss_history"]


@pytest.mark.parametrize("extra", ["--overwrite", "--init"])
def test_the_resume_hint_leaves_out_what_resume_refuses(runs, sst_file, tmp_path, monkeypatch, extra):
    """Ctrl-C in a run started with --overwrite or --init said "go on with the same command and
    --resume", which `train interpolator` then refused ("give one of them", "drop --init"). The
    hint names what to leave out, and the command so changed goes on."""
    small = SMALL if extra == "--overwrite" else SMALL[:-4] + SMALL[-2:]  # the network is the init's
    args = ["train", "interpolator", str(sst_file), *small, "-o", str(tmp_path / "run")]
    given = ["--overwrite"] if extra == "--overwrite" else ["--init", str(runs / "whole")]
    real, calls = NeuralInterpolator._forward, []

    def forward(self, x):
        out = real(self, x)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return out

    with monkeypatch.context() as m:
        m.setattr(NeuralInterpolator, "_forward", forward)
        res = CliRunner().invoke(cli, [*args, *given])
    assert res.exit_code == 130, res.output
    assert res.output.strip().splitlines()[-1].endswith(f"(go on with the same command and --resume, without {extra})")
    res = CliRunner().invoke(cli, [*args, "--resume"])
    assert res.exit_code == 0, res.output


def test_cli_refusals_say_why_and_write_nothing(runs, sst_file, tmp_path):
    from oceandl.datasets.sst import synthetic_sst

    other = tmp_path / "other.nc"
    synthetic_sst(n_time=12, ny=24, nx=24, cloud_cover=0.5, seed=4).to_netcdf(other)
    (tmp_path / "empty").mkdir()
    cut, whole = runs / "cut", runs / "whole"
    before = {f: _snapshot(f) for f in (cut, whole)}
    train = ["train", "interpolator"]
    cases = [
        ([str(sst_file), *SMALL, "-o", str(tmp_path / "nowhere")], str(tmp_path / "nowhere"), "nothing to resume"),
        ([str(sst_file), *SMALL, "-o", str(tmp_path / "empty")], "nothing to resume (no config.json"),
        ([str(sst_file), *SMALL, "-o", str(whole)], str(whole), "a finished checkpoint (4 steps), nothing to resume"),
        ([str(sst_file), *SMALL, "--set", "steps=5", "-o", str(cut)], str(cut), "resumed with steps=5",
         "started with steps=4"),
        ([str(sst_file), *SMALL, "--batch-size", "2", "-o", str(cut)], "batch_size=2", "batch_size=4"),
        ([str(sst_file), *SMALL, "--lr", "0.01", "-o", str(cut)], "lr=0.01", "lr=0.002"),
        ([str(sst_file), *SMALL, "--set", "nll=true", "-o", str(cut)], "nll=True", "nll=False"),
        ([str(sst_file), *SMALL, "--seed", "1", "-o", str(cut)], "seed=1", "seed=0"),
        ([str(sst_file), *SMALL, "--method", "resae", "-o", str(cut)], "not 'resae'"),
        ([str(other), *SMALL, "-o", str(cut)], str(cut), "other values"),
        ([str(sst_file), *SMALL, "--overwrite", "-o", str(cut)], "--overwrite starts it over"),
        ([str(sst_file), *SMALL, "--init", str(whole), "-o", str(cut)], "drop --init"),
        ([str(sst_file), "--var", "sst", "--method", "dineof", "-o", str(cut)], "no training to resume"),
        ([str(sst_file), *SMALL, "--set", f"resume={cut}", "-o", str(tmp_path / "n")], "with --resume"),
    ]
    for args, *words in cases:
        res = CliRunner().invoke(cli, [*train, *args, "--resume"])
        assert_cli_error(res, 2, *words)
    assert {f: _snapshot(f) for f in (cut, whole)} == before
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "n").exists()
    assert not any((tmp_path / "empty").iterdir())


def test_interpolate_model_warns_about_an_interrupted_folder(runs, sst_file, tmp_path):
    """`interpolate --model` of a killed run's folder fills with the weights so far and says so."""
    out = tmp_path / "filled.nc"
    res = CliRunner().invoke(cli, ["interpolate", str(sst_file), "--method", "unet", "--model", str(runs / "cut"),
                                   "--withhold", "0", "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "training stopped at step 2 of 4 (interrupted)" in res.stderr and out.exists()
    res = CliRunner().invoke(cli, ["interpolate", str(sst_file), "--method", "unet", "--model", str(runs / "whole"),
                                   "--withhold", "0", "--quiet", "-o", str(tmp_path / "f2.nc")])
    assert res.exit_code == 0 and "interrupted" not in res.stderr, res.output


@pytest.mark.parametrize("written", [False, True])
def test_ctrl_c_in_the_final_write_names_a_state_only_while_there_is_one(sst_file, tmp_path, monkeypatch, written):
    """Ctrl-C in `train interpolator`'s final write: before the finished checkpoint replaced the last
    step's state, the line names that state and --resume finishes the run; once it has (cut as the
    old folder is removed, as save() returns), the line said so too, and --resume was refused
    ('a finished checkpoint, nothing to resume')."""
    out = tmp_path / "run"
    args = ["train", "interpolator", str(sst_file), *SMALL, "-o", str(out)]
    real = NeuralInterpolator.save

    def save(self, *a, **k):
        if written:
            real(self, *a, **k)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(NeuralInterpolator, "save", save)
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 130, res.output
    last = res.output.strip().splitlines()[-1]
    if written:
        assert "--resume" not in last and "stands" not in last and _training(out)["finished"] is True
    else:
        assert last == (f"Error: interrupted: the training state of step 4 of 4 stands in {out} (every step trained) "
                        "(go on with the same command and --resume)"), last
        res = CliRunner().invoke(cli, [*args, "--resume"])
        assert res.exit_code == 0, res.output
        assert _training(out)["finished"] is True
