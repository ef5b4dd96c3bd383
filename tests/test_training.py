"""Training engine, checkpoints and classification metrics."""
from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from oceandl.errors import CheckpointError, InputError, OceanDLError
from oceandl.metrics import classification_metrics
from oceandl.models import get_model
from oceandl.training import (TensorData, TrainConfig, evaluate_classifier, fit, load_checkpoint, predict,
                              save_checkpoint, split_indices)
from oceandl.training.checkpoint import flatten_state, unflatten_state

FAST = dict(batch_size=32, progress=False, device="cpu")


def _sets(digits):
    x, y = digits
    tr, va = split_indices(len(x), (0.75, 0.25), seed=0, stratify=y.numpy())
    return TensorData(x[tr], y[tr]), TensorData(x[va], y[va])


def test_split_keyed_on_file_paths_does_not_move_when_files_come_or_go():
    """Drawn by a seeded shuffle of each class, one file added to a class moved others between
    the parts (up to 6 of 30 images over seeds 0-9). Keyed on the paths, an image's part is a
    function of its path and the seed only; a small class whose hash left a part empty still gets
    one image in every part; large classes follow the fractions on average."""
    keys = [f"{c}/{c}{i:02d}.png" for c in "abc" for i in range(10)]
    y = np.repeat(np.arange(3), 10)
    added = sorted(keys + ["b/b99.png"])
    y2 = np.array(["abc".index(k[0]) for k in added])
    named = lambda ks, parts: [{ks[i] for i in p} for p in parts]  # noqa: E731
    moved_by_order, moved_by_path = [], []
    for seed in range(10):
        before = named(keys, split_indices(30, (0.7, 0.15, 0.15), seed=seed, stratify=y, keys=keys))
        after = named(added, split_indices(31, (0.7, 0.15, 0.15), seed=seed, stratify=y2, keys=added))
        moved = [k for p, q in zip(before, after) for k in p - q]
        assert all(k.startswith("b/") for k in moved)  # never an image of another class
        moved_by_path.append(len(moved))
        shuffled = [named(k, split_indices(len(k), (0.7, 0.15, 0.15), seed=seed, stratify=t))
                    for k, t in ((keys, y), (added, y2))]
        moved_by_order.append(sum(len(p - q) for p, q in zip(shuffled[0], shuffled[1])))
    assert max(moved_by_order) == 6
    # seed 6: class b's 10 hashes left a part empty, filled by the image nearest its band, which
    # b99's own hash then filled instead: the one move of a class of 10 (a 300-image one never needs it)
    assert moved_by_path == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert named(keys, split_indices(30, (0.7, 0.15, 0.15), seed=0, stratify=y, keys=keys))[1:] == [
        {"a/a09.png", "b/b01.png", "c/c09.png"},
        {"a/a08.png", "b/b05.png", "b/b08.png", "c/c02.png", "c/c04.png", "c/c07.png"}]
    y = np.repeat(np.arange(3), [3000, 300, 3])
    parts = split_indices(len(y), (0.7, 0.15, 0.15), seed=0, stratify=y, keys=[f"{i}.png" for i in range(len(y))])
    assert [np.bincount(y[p], minlength=3).tolist() for p in parts] == [[2133, 213, 1], [398, 48, 1], [469, 39, 1]]
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert [len(p) for p in split_indices(3, (0.8, 0.2, 0.0), keys=list("abc"))][2] == 0  # a zero fraction stays empty
    with pytest.raises(InputError, match="2 keys for 3 items"):
        split_indices(3, (0.8, 0.1, 0.1), keys=["a", "b"])


def test_images_picked_per_class_split_by_the_fractions():
    """The benchmarks' max_per_class pick kept each class's images of the smallest hash of
    (seed, path), the hash the keyed split puts below 0.7 into training: 20 kept of 200 per class
    split 90/5/5 over 5 classes (one validation and one test image a class) instead of about
    70/15/15. The pick now hashes apart from the split; it stays keyed on the paths."""
    from oceandl.training.classifier import subsample_per_class

    y = np.repeat(np.arange(5), 200)
    keys = [f"c{c}/img_{i:05d}.png" for i, c in enumerate(y)]
    idx = subsample_per_class(y, 20, seed=0, keys=keys)
    assert np.bincount(y[idx]).tolist() == [20] * 5
    parts = split_indices(len(idx), (0.7, 0.15, 0.15), seed=0, stratify=y[idx], keys=[keys[i] for i in idx])
    assert [len(p) for p in parts] == [65, 14, 21]  # 90/5/5 before
    # the pick of a file does not depend on the other files: one more file changes it by at most one
    more = subsample_per_class(np.append(y, 0), 20, seed=0, keys=keys + ["c0/new.png"])
    assert len(set(idx.tolist()) - set(more.tolist())) <= 1

def test_split_is_seeded_stratified_and_disjoint():
    y = np.repeat(np.arange(3), [50, 30, 20])
    a = split_indices(100, (0.6, 0.2, 0.2), seed=1, stratify=y)
    b = split_indices(100, (0.6, 0.2, 0.2), seed=1, stratify=y)
    c = split_indices(100, (0.6, 0.2, 0.2), seed=2, stratify=y)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert np.bincount(y[a[2]]).tolist() == [10, 6, 4]
    with pytest.raises(InputError, match="sum to 1"):
        split_indices(10, (0.5, 0.2))


def test_small_classes_get_an_image_in_every_part():
    """With the minimum 3 images a class, 70/15/15 rounded to 2/1/0: no test image, and training
    stopped at 'leaves an empty part' after the check that had let 3 through. Parts the rounding
    does not empty are unchanged (the same split as before for every larger class)."""
    for n in (3, 4, 5, 6):
        y = np.repeat(np.arange(4), n)
        parts = split_indices(len(y), (0.7, 0.15, 0.15), seed=0, stratify=y)
        assert all(np.bincount(y[p], minlength=4).min() >= 1 for p in parts), n
        assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert [len(p) for p in split_indices(3, (0.7, 0.15, 0.15))] == [1, 1, 1]
    assert [len(p) for p in split_indices(3, (0.8, 0.2, 0.0))] == [2, 1, 0]  # a zero fraction stays empty
    assert [len(p) for p in split_indices(2, (0.7, 0.15, 0.15))] == [1, 1, 0]  # too few to give each one
    rng = np.random.default_rng(0)
    for n in range(7, 200):  # the rounding rule itself is unchanged
        fr = rng.dirichlet([4, 1, 1])
        cuts = np.round(np.cumsum(fr)[:-1] * n).astype(int)
        sizes = np.diff(cuts, prepend=0, append=n)
        if (sizes > 0).all():
            assert [len(p) for p in split_indices(n, fr / fr.sum())] == sizes.tolist()


def test_fit_learns_and_keeps_best_on_validation(digits, tmp_path):
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=4, lr=3e-3, augment=("translate", "noise"), **FAST)
    meta = dict(model_name="cnn", model_args=[1, 4], model_options={"channels": [8, 16]}, classes=list("abcd"))
    res = fit(get_model("cnn", 1, 4, channels=(8, 16)), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta)
    assert len(res.history) == 4
    vals = [h["val_loss"] for h in res.history]
    assert res.best_epoch == int(np.argmin(vals)) + 1
    assert evaluate_classifier(res.model, val)["accuracy"] > 0.9
    files = {p.name for p in (tmp_path / "ck").iterdir()}
    assert {"weights.safetensors", "config.json", "log.csv", "curves.png", "training_state.json"} <= files
    model, cfg_json = load_checkpoint(tmp_path / "ck")
    assert cfg_json["classes"] == list("abcd") and cfg_json["best_epoch"] == res.best_epoch
    x = val.x[:8]
    assert torch.allclose(model(x), res.model.cpu()(x), atol=1e-5)


def test_without_validation_the_lowest_training_loss_is_kept(digits):
    """fit's docstring said it kept the last epoch without a validation set; it keeps (and early
    stopping watches) the epoch of the lowest training loss. The docstring now says so."""
    x, y = digits
    torch.manual_seed(1)
    res = fit(get_model("mlp", 1, 4, hidden=(16,)), TensorData(x, y), None,
              TrainConfig(epochs=5, lr=0.3, scheduler="none", seed=1, **FAST))  # best: epoch 4 here
    losses = [h["train_loss"] for h in res.history]
    assert res.best_epoch == int(np.argmin(losses)) + 1 and res.best_val == min(losses)
    assert "lowest training loss" in " ".join(fit.__doc__.split())


def test_existing_output_is_refused_without_overwrite(digits, tmp_path):
    train, val = _sets(digits)
    (tmp_path / "ck").mkdir()
    with pytest.raises(InputError, match="already exists"):
        fit(get_model("mlp", 1, 4), train, val, TrainConfig(epochs=1, **FAST), out=tmp_path / "ck")


def test_resume_is_bit_identical(digits, tmp_path):
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=4, lr=2e-3, augment=("rotate",), **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    torch.manual_seed(0)
    full = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    torch.manual_seed(0)
    fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, stop_after_epoch=2)
    # resume with the full config: epochs 3 and 4 continue from the saved state
    torch.manual_seed(123)  # a different global state must not matter
    resumed = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_ctrl_c_says_which_epoch_a_resume_goes_on_from(digits, tmp_path):
    """Ctrl-C (or SIGTERM) between epochs (after epoch 3's batches and validation, before its save):
    the state of epoch 2 is in the folder, the exception says so (the CLI prints it), and the resume
    ends as the uninterrupted run; after epoch 1's batches nothing is saved."""
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=4, lr=2e-3, **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})

    def ctrl_c_in(epoch):
        def log(line):
            if line.startswith(f"epoch={epoch} "):
                raise KeyboardInterrupt
        return log

    torch.manual_seed(0)
    full = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    torch.manual_seed(0)  # the same initial weights
    with pytest.raises(KeyboardInterrupt) as info:
        fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, log=ctrl_c_in(3))
    assert str(info.value) == f"the training state of epoch 2 of 4 stands in {tmp_path / 'b'}"
    assert info.value.resumable is True
    resumed = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()))
    with pytest.raises(KeyboardInterrupt) as info:
        fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "c", checkpoint_meta=meta, log=ctrl_c_in(1))
    assert str(info.value) == f"no training state was saved in {tmp_path / 'c'} yet"
    assert info.value.resumable is False and not (tmp_path / "c").exists()


def _ctrl_c_in_call(model, k: int, error: type[BaseException] = KeyboardInterrupt):
    """``model`` whose ``k``-th training forward pass runs (dropout drawn, batch norm's running
    statistics moved), then raises ``error``: Ctrl-C inside a batch (another error: a crash that
    saves nothing, as a SIGKILL)."""
    forward, calls = model.forward, [0]

    def interrupted(x):
        out = forward(x)
        if model.training:
            calls[0] += 1
            if calls[0] == k:
                raise error
        return out

    model.forward = interrupted
    return model


def _same_run(a, b) -> None:
    """Two fits' histories (but their clock) and final weights are equal."""
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in b.history] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
    assert b.best_epoch == a.best_epoch
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k


#: a small CNN with batch norm and dropout (the interruption tests), and what its checkpoint records
_SMALL_META = dict(model_name="cnn", model_args=[1, 4], model_options={"channels": [4, 8], "hidden": 16})


def _small_cnn():
    torch.manual_seed(0)  # the same initial weights for every run compared
    return get_model("cnn", 1, 4, channels=(4, 8), hidden=16)


@pytest.mark.parametrize("with_val, scheduler, streamed", [(True, "cosine", False), (False, "cosine", False),
                                                           (True, "plateau", False), (True, "cosine", True)])
def test_ctrl_c_inside_an_epoch_saves_its_batches_done(digits, tmp_path, with_val, scheduler, streamed):
    """Ctrl-C (or SIGTERM) in a batch's forward pass used to lose the whole epoch (an hour of
    Sentinel-1 on a laptop). The batches done are saved (weights, optimizer, schedule, the epoch's
    sums and random states, batch norm's statistics as before the cut batch); a resume skips them
    unread and ends as the uninterrupted run, bit for bit (dropout, batch norm, augmentation), also
    when interrupted again; with or without validation, a per-epoch (plateau) schedule, streamed."""
    from oceandl.training.checkpoint import load_training_state, read_config

    train, val = _sets(digits)
    val = val if with_val else None
    cfg = TrainConfig(epochs=3, lr=2e-3, scheduler=scheduler, augment=("flip", "noise"),
                      max_materialize_mb=0 if streamed else 4096, **FAST)
    meta, net = _SMALL_META, _small_cnn

    full = fit(net(), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt) as info:  # 6 batches an epoch: the 9th is epoch 2's third
        fit(_ctrl_c_in_call(net(), 9), train, val, cfg, out=out, checkpoint_meta=meta)
    assert str(info.value) == f"the training state of epoch 2 of 3, batch 2 of 6, is saved in {out}"
    assert info.value.resumable is True
    saved = read_config(out)
    assert saved["epochs_done"] == 1 and saved["finished"] is False  # classify warns
    assert load_training_state(out)["batches_done"] == 2
    with pytest.raises(KeyboardInterrupt) as info:  # resumed, cut again in the same epoch
        fit(_ctrl_c_in_call(net(), 2), train, val, cfg, out=out, checkpoint_meta=meta, resume=True)
    assert str(info.value) == f"the training state of epoch 2 of 3, batch 3 of 6, is saved in {out}"
    resumed = fit(net(), train, val, cfg, out=out, checkpoint_meta=meta, resume=True)
    _same_run(full, resumed)
    a, b = load_training_state(tmp_path / "a"), load_training_state(out)
    assert "batches_done" not in b and read_config(out)["finished"] is True
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # the last epoch's weights too


def test_ctrl_c_in_the_first_epoch_saves_it(digits, tmp_path):
    """Cut in epoch 1, the batches done are saved (no whole epoch yet: the weights so far are the
    checkpoint's, epochs_done 0), and the resume ends as the uninterrupted run."""
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=2, lr=2e-3, augment=("flip",), **FAST)
    meta, net = _SMALL_META, _small_cnn

    full = fit(net(), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    with pytest.raises(KeyboardInterrupt) as info:
        fit(_ctrl_c_in_call(net(), 5), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta)
    assert str(info.value) == f"the training state of epoch 1 of 2, batch 4 of 6, is saved in {tmp_path / 'b'}"
    assert load_checkpoint(tmp_path / "b")[1]["epochs_done"] == 0
    _same_run(full, fit(net(), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, resume=True))
    with pytest.raises(KeyboardInterrupt) as info:  # in the first batch: nothing of the epoch to keep
        fit(_ctrl_c_in_call(net(), 1), train, val, cfg, out=tmp_path / "c", checkpoint_meta=meta)
    assert str(info.value) == f"no training state was saved in {tmp_path / 'c'} yet"
    assert info.value.resumable is False and not (tmp_path / "c").exists()


def test_a_long_epoch_is_saved_by_the_clock(digits, tmp_path, monkeypatch):
    """MID_EPOCH_STATE_SECONDS: a long epoch's batches done are saved as it goes, so a run killed
    without warning (SIGKILL, the OOM killer: no Ctrl-C handler runs) resumes from the last of them
    and ends as the uninterrupted run. With 0 s, every batch: killed in epoch 2's third batch, the
    folder holds epoch 2's second; a Ctrl-C then cut during a weight update names that state."""
    import oceandl.training.engine as engine
    from oceandl.training.checkpoint import load_training_state

    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, lr=2e-3, augment=("flip",), **FAST)
    full = fit(_small_cnn(), train, val, cfg, out=tmp_path / "a", checkpoint_meta=_SMALL_META)
    monkeypatch.setattr(engine, "MID_EPOCH_STATE_SECONDS", 0.0)
    out = tmp_path / "b"
    with pytest.raises(RuntimeError):  # 6 batches an epoch: epoch 2, batch 3
        fit(_ctrl_c_in_call(_small_cnn(), 9, RuntimeError), train, val, cfg, out=out, checkpoint_meta=_SMALL_META)
    state = load_training_state(out)
    assert (state["epoch"], state["batches_done"]) == (1, 2)
    _same_run(full, fit(_small_cnn(), train, val, cfg, out=out, checkpoint_meta=_SMALL_META, resume=True))
    real_step = torch.optim.AdamW.step
    steps = []

    def step(self, *a, **k):  # Ctrl-C inside the 9th update (epoch 2, batch 3)
        out_ = real_step(self, *a, **k)
        steps.append(1)
        if len(steps) == 9:
            raise KeyboardInterrupt
        return out_

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(KeyboardInterrupt) as info:
        fit(_small_cnn(), train, val, cfg, out=tmp_path / "c", checkpoint_meta=_SMALL_META)
    assert str(info.value) == ("interrupted while updating the weights: the training state of epoch 2 of 3, batch 2 "
                               f"of 6, stands in {tmp_path / 'c'}")
    assert info.value.resumable is True


def test_a_state_saved_by_the_clock_is_named_at_an_interruption_between_epochs(digits, tmp_path, monkeypatch):
    """Every batch of epoch 1 saved by the clock, then Ctrl-C after its batches and before its whole
    save is written (its log line): the folder holds epoch 1's last batch, but the line said 'no
    training state was saved' and no --resume. So for a run resumed from such a state and cut there
    again (the resumed process has not saved yet). The resume still ends as the uninterrupted run."""
    import oceandl.training.engine as engine
    from oceandl.training.checkpoint import load_training_state

    train, val = _sets(digits)
    cfg = TrainConfig(epochs=2, lr=2e-3, augment=("flip",), **FAST)
    full = fit(_small_cnn(), train, val, cfg, out=tmp_path / "a", checkpoint_meta=_SMALL_META)

    def ctrl_c(line):
        raise KeyboardInterrupt

    out = tmp_path / "b"
    monkeypatch.setattr(engine, "MID_EPOCH_STATE_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt) as info:
        fit(_small_cnn(), train, val, cfg, out=out, checkpoint_meta=_SMALL_META, log=ctrl_c)
    assert str(info.value) == f"the training state of epoch 1 of 2, batch 6 of 6, stands in {out}"
    assert info.value.resumable is True
    assert (load_training_state(out)["epoch"], load_training_state(out)["batches_done"]) == (0, 6)
    monkeypatch.setattr(engine, "MID_EPOCH_STATE_SECONDS", 600.0)
    with pytest.raises(KeyboardInterrupt) as info:
        fit(_small_cnn(), train, val, cfg, out=out, checkpoint_meta=_SMALL_META, resume=True, log=ctrl_c)
    assert str(info.value) == f"the training state of epoch 1 of 2, batch 6 of 6, stands in {out}"
    assert info.value.resumable is True
    _same_run(full, fit(_small_cnn(), train, val, cfg, out=out, checkpoint_meta=_SMALL_META, resume=True))


def test_a_diverged_epoch_is_not_saved_by_the_clock(digits, tmp_path, monkeypatch):
    """A loss gone NaN inside an epoch: the clock's save wrote that state over the good one (which
    a Ctrl-C refuses to do, and the 'training diverged' error says the folder holds the epoch before)."""
    import oceandl.training.engine as engine
    from oceandl.training.checkpoint import load_training_state

    train, val = _sets(digits)
    cfg = TrainConfig(epochs=2, lr=2e-3, **FAST)
    real = engine._loss_fn
    calls = []

    def loss_fn(*a, **k):
        f = real(*a, **k)

        def g(out_t, x, y):
            calls.append(1)
            loss = f(out_t, x, y)
            return loss * float("nan") if len(calls) == 9 else loss  # epoch 2, batch 3
        return g

    monkeypatch.setattr(engine, "_loss_fn", loss_fn)
    monkeypatch.setattr(engine, "MID_EPOCH_STATE_SECONDS", 0.0)
    out = tmp_path / "b"
    with pytest.raises(OceanDLError, match="training diverged"):
        fit(_small_cnn(), train, None, cfg, out=out, checkpoint_meta=_SMALL_META)
    state = load_training_state(out)
    assert (state["epoch"], state["batches_done"]) == (1, 2)
    assert math.isfinite(state["running"]["tot"])


def test_ctrl_c_in_a_run_over_another_unfinished_one_saves_its_own_epoch(digits, tmp_path, monkeypatch):
    """fit(overwrite=True) over the folder of another interrupted run (epochs_done 2, unfinished),
    cut in its own first epoch: the state saved was numbered with the old run's epoch (2), with the
    new run's weights and no history, and a resume went on in epoch 3. An interruption right after
    the new run writes an epoch's checkpoint still names that epoch."""
    import oceandl.training.engine as engine
    from oceandl.training.checkpoint import load_training_state, read_config

    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, lr=2e-3, augment=("flip",), **FAST)
    meta, net = _SMALL_META, _small_cnn

    full = fit(net(), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):  # the old run: cut in epoch 3
        fit(_ctrl_c_in_call(net(), 14), train, val, cfg, out=out, checkpoint_meta=meta)
    assert read_config(out)["epochs_done"] == 2
    with pytest.raises(KeyboardInterrupt) as info:
        fit(_ctrl_c_in_call(net(), 3), train, val, cfg, out=out, checkpoint_meta=meta, overwrite=True)
    assert str(info.value) == f"the training state of epoch 1 of 3, batch 2 of 6, is saved in {out}"
    assert load_training_state(out)["epoch"] == 0 and read_config(out)["epochs_done"] == 0
    _same_run(full, fit(net(), train, val, cfg, out=out, checkpoint_meta=meta, resume=True))

    real = engine._save_epoch

    def cut_after(*a, **k):  # Ctrl-C once epoch 1's checkpoint is written, before the loop records it
        real(*a, **k)
        if k.get("mid") is None:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_save_epoch", cut_after)
    with pytest.raises(KeyboardInterrupt) as info:
        fit(net(), train, val, cfg, out=tmp_path / "c", checkpoint_meta=meta)
    assert str(info.value) == f"the training state of epoch 1 of 3 stands in {tmp_path / 'c'}"


def test_ctrl_c_while_the_weights_are_updated_leaves_the_last_whole_epoch(digits, tmp_path, monkeypatch):
    """Cut inside the optimizer step the weights are neither those of one batch nor of the next:
    nothing is saved, the last whole epoch stands and the resume from it is the uninterrupted run."""
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, lr=2e-3, **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    torch.manual_seed(0)
    full = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    real, calls = torch.optim.AdamW.step, [0]

    def step(self, *a, **k):
        out = real(self, *a, **k)
        calls[0] += 1
        if calls[0] == 9:  # epoch 2's third batch, its weights updated, its schedule and sums not
            raise KeyboardInterrupt
        return out

    with monkeypatch.context() as m:
        m.setattr(torch.optim.AdamW, "step", step)
        torch.manual_seed(0)
        with pytest.raises(KeyboardInterrupt) as info:
            fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta)
    assert str(info.value) == ("interrupted while updating the weights: the training state of epoch 1 of 3 stands "
                               f"in {tmp_path / 'b'}")
    assert info.value.resumable is True
    _same_run(full, fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta,
                        resume=True))


def test_fit_leaves_the_global_torch_rng_alone(digits):
    """fit seeds its run (dropout, augmentation) on a private copy of torch's random state; it
    used to leave the global generator reset to the seed of its last epoch."""
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=2, augment=("noise",), **FAST)
    torch.manual_seed(7)
    model = get_model("cnn", 1, 4, channels=(8, 16))
    expected = torch.rand(3)
    torch.manual_seed(7)
    model = get_model("cnn", 1, 4, channels=(8, 16))
    first = fit(model, train, val, cfg).history
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(7)
    again = fit(get_model("cnn", 1, 4, channels=(8, 16)), train, val, cfg).history
    assert [h["train_loss"] for h in again] == [h["train_loss"] for h in first]


def test_resume_with_other_settings_is_refused(digits, tmp_path):
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta, stop_after_epoch=1)
    before = (tmp_path / "ck" / "training_state.safetensors").read_bytes()
    # another model failed as a bare RuntimeError (state dict); other epochs or batch size went on
    # with the saved cosine schedule of the old length (its learning rate climbing again)
    other = dict(meta, model_name="cnn", model_options={"channels": [4], "hidden": 8})
    cases = [(get_model("cnn", 1, 4, channels=[4], hidden=8), cfg, other, "model='cnn'"),
             (get_model("mlp", 1, 4), cfg.update(epochs=5), meta, "epochs=5"),
             (get_model("mlp", 1, 4), cfg.update(batch_size=8), meta, "batch_size=8")]
    for net, c, m, words in cases:
        with pytest.raises(InputError, match=f"--resume with {words}, but the run in that folder was started"):
            fit(net, train, val, c, out=tmp_path / "ck", checkpoint_meta=m, resume=True)
    assert (tmp_path / "ck" / "training_state.safetensors").read_bytes() == before
    # what does not change the numbers may change
    res = fit(get_model("mlp", 1, 4), train, val, cfg.update(num_workers=0, device="auto"), out=tmp_path / "ck",
              checkpoint_meta=meta, resume=True)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]


def test_resume_refusal_says_what_an_internal_setting_is(digits, tmp_path):
    # "--resume with model_args=[1, 5]" (a class folder added) and "amp=False" (--precision
    # fp32) named fields no option has
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta, stop_after_epoch=1)
    with pytest.raises(InputError, match=r"--resume with model_args=\[1, 5\] \(image channels, classes: the data's "
                                         r"classes changed\?\), but the run .* model_args=\[1, 4\]"):
        fit(get_model("mlp", 1, 5), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=dict(meta, model_args=[1, 5]),
            resume=True)
    with pytest.raises(InputError, match=r"--resume with amp=False \(--precision\), but the run"):
        fit(get_model("mlp", 1, 4), train, val, cfg.update(amp=False), out=tmp_path / "ck", checkpoint_meta=meta,
            resume=True)


def test_resuming_a_run_saved_before_the_decay_exemption(digits, tmp_path):
    """A run saved before decay_biases existed decayed every parameter (one parameter group): it
    resumes with decay_biases=True; with the new default it is refused by name (its optimizer
    state did not even load: one group saved, two built). Without decay the setting is moot."""
    train, val = _sets(digits)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    for wd in (0.1, 0.0):
        cfg = TrainConfig(epochs=2, weight_decay=wd, decay_biases=True, **FAST)
        out = tmp_path / f"wd{wd}"
        fit(get_model("mlp", 1, 4), train, val, cfg, out=out, checkpoint_meta=meta, stop_after_epoch=1)
        conf = json.loads((out / "config.json").read_text())
        del conf["training"]["decay_biases"]  # as an older version wrote it
        (out / "config.json").write_text(json.dumps(conf))
        if wd:
            with pytest.raises(InputError, match="--resume with decay_biases=False, but the run in that folder "
                                                 "was started with decay_biases=True"):
                fit(get_model("mlp", 1, 4), train, val, cfg.update(decay_biases=False), out=out,
                    checkpoint_meta=meta, resume=True)
        res = fit(get_model("mlp", 1, 4), train, val, cfg.update(decay_biases=bool(wd)), out=out,
                  checkpoint_meta=meta, resume=True)
        assert [h["epoch"] for h in res.history] == [1, 2]


def test_gradient_clipping_caps_the_step(digits):
    """grad_clip caps the global gradient norm: one full-batch SGD step at lr 1 moves the weights
    by exactly the cap (norm of the change), where the unclipped step is far longer."""
    x, y = digits
    step = {}
    for clip in (0.0, 0.05):
        net = get_model("mlp", 1, 4, hidden=(16,), dropout=0.0)
        before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
        cfg = TrainConfig(epochs=1, batch_size=len(x), lr=1.0, optimizer="sgd", momentum=0.0, scheduler="none",
                          grad_clip=clip, amp=False, progress=False, device="cpu")
        res = fit(net, TensorData(x, y), None, cfg)
        step[clip] = float((torch.cat([p.detach().flatten() for p in res.model.parameters()]) - before).norm())
    assert step[0.0] > 0.5
    assert step[0.05] == pytest.approx(0.05, rel=1e-4)


def test_warmup_then_the_schedule_and_resume_is_bit_identical(digits, tmp_path):
    """warmup_epochs ramps the rate linearly (lr/(W+1) ... lr over W steps), then the cosine runs
    over the steps left; a run stopped inside the warm-up and resumed (with grad_clip on) is the
    uninterrupted run bit for bit, and the checkpoint records both settings."""
    from oceandl.training.engine import _make_optimizer

    opt, sched = _make_optimizer(torch.nn.Linear(2, 2), TrainConfig(epochs=2, lr=1.0, warmup_epochs=0.4), 5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    cosine = [0.5 * (1 + np.cos(np.pi * k / 8)) for k in range(8)]
    np.testing.assert_allclose(lrs, [1 / 3, 2 / 3] + cosine, rtol=1e-12)

    train, val = _sets(digits)  # 180 training images: 6 steps an epoch
    cfg = TrainConfig(epochs=3, lr=3e-3, warmup_epochs=1.5, grad_clip=0.5, **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    torch.manual_seed(0)
    full = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "a", checkpoint_meta=meta)
    # 9 warm-up steps, then a cosine over 9: epoch 3 begins 3 steps into it
    np.testing.assert_allclose([h["lr"] for h in full.history], [3e-3 / 10, 3e-3 * 7 / 10, 3e-3 * 0.75], rtol=1e-9)
    torch.manual_seed(0)
    fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, stop_after_epoch=1)
    resumed = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "b", checkpoint_meta=meta, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    training = json.loads((tmp_path / "b" / "config.json").read_text())["training"]
    assert training["warmup_epochs"] == 1.5 and training["grad_clip"] == 0.5
    with pytest.raises(InputError, match="--resume with warmup_epochs=0.0, but the run in that folder was started "
                                         "with warmup_epochs=1.5"):
        fit(get_model("mlp", 1, 4), train, val, cfg.update(warmup_epochs=0.0), out=tmp_path / "b",
            checkpoint_meta=meta, resume=True)


@pytest.mark.parametrize("options, words", [
    (dict(grad_clip=-1.0), "grad_clip must be a finite number >= 0"),
    (dict(grad_clip=float("nan")), "grad_clip must be a finite number >= 0"),
    (dict(warmup_epochs=-1.0), r"warmup_epochs must be >= 0 and below epochs \(10\)"),
    (dict(warmup_epochs=10), r"warmup_epochs must be >= 0 and below epochs \(10\)"),
    (dict(warmup_epochs=1, scheduler="onecycle"), "onecycle has a warm-up of its own"),
    (dict(warmup_epochs=1, scheduler="plateau"), "plateau does not compose with a warm-up")])
def test_clipping_and_warmup_settings_are_checked_up_front(options, words):
    with pytest.raises(InputError, match=words):
        TrainConfig(**options)


def test_l1_l2_penalties_shrink_weights(digits):
    train, val = _sets(digits)
    norms = {}
    for l2 in (0.0, 0.1):
        torch.manual_seed(0)
        r = fit(get_model("mlp", 1, 4, hidden=(32,)), train, None, TrainConfig(epochs=5, lr=3e-3, l2=l2, **FAST))
        norms[l2] = sum(float(p.detach().pow(2).sum()) for p in r.model.parameters() if p.ndim > 1)
    assert norms[0.1] < 0.5 * norms[0.0]
    torch.manual_seed(0)
    r = fit(get_model("mlp", 1, 4, hidden=(32,)), train, None, TrainConfig(epochs=5, lr=3e-3, l1=1e-3, **FAST))
    w = r.model.net[1].weight.detach().abs()
    assert float((w < 1e-3).float().mean()) > 0.2  # L1 drives many weights towards zero


def test_reconstruction_task_trains_autoencoder(digits):
    x, _ = digits
    data = TensorData(x)
    with torch.no_grad():
        before = float(torch.mean((get_model("dense_ae", 1, latent=8)(x) - x) ** 2))
    torch.manual_seed(0)
    r = fit(get_model("dense_ae", 1, latent=8), data, None, TrainConfig(epochs=8, lr=3e-3, **FAST),
            task="reconstruction")
    with torch.no_grad():
        after = float(torch.mean((r.model(x) - x) ** 2))
    assert after < 0.5 * before


def test_early_stopping_stops(digits):
    train, val = _sets(digits)
    r = fit(get_model("mlp", 1, 4), train, val,
            TrainConfig(epochs=30, lr=0.5, optimizer="sgd", early_stopping=2, scheduler="none", **FAST))
    assert len(r.history) < 30


def test_bad_config_is_input_error():
    with pytest.raises(InputError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(InputError, match="unknown training option"):
        TrainConfig().update(nope=1)
    with pytest.raises(InputError, match="unknown augmentation"):
        from oceandl.training import BatchAugment

        BatchAugment(("warp",))


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0, -1e-3, "0.1", True, None])
def test_one_learning_rate_rule_and_wording_everywhere(lr):
    """The classifier's TrainConfig and the neural interpolators checked lr apart: nan was "must be a
    number >= 0" for the interpolators and inf "a finite number > 0"; TrainConfig took True (1.0) and
    failed on '0.1' or None as a bare TypeError. One rule now, one wording: a finite number > 0."""
    from oceandl.interp import get_method

    with pytest.raises(InputError, match=r"^lr must be a finite number > 0, got "):
        TrainConfig(lr=lr)
    with pytest.raises(InputError, match=rf"^method 'unet': option lr={re.escape(repr(lr))} must be a finite "
                                         r"number > 0$"):
        get_method("unet")(lr=lr)
    assert TrainConfig(lr=np.float32(1e-3)).lr == np.float32(1e-3) and get_method("unet")(lr=1).options["lr"] == 1


@pytest.mark.parametrize("option", ["early_stopping", "l1", "l2"])
def test_negative_patience_and_penalties_are_refused(option):
    # early_stopping=-1 used to stop every run after epoch 1; a negative penalty rewards big weights
    with pytest.raises(InputError, match=f"{option} must be >= 0"):
        TrainConfig(**{option: -1})


def test_diverged_training_stops_with_the_epoch_named(tmp_path):
    """A learning rate that blows the loss up stops the run (exit 1 on the command line), instead of
    training on NaN and saving a model whose predictions are argmax(NaN), i.e. class 0."""
    from oceandl.errors import OceanDLError

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    cfg = TrainConfig(epochs=3, lr=1e12, batch_size=16, optimizer="sgd", scheduler="none", progress=False, device="cpu")
    torch.manual_seed(0)
    with pytest.raises(OceanDLError, match="training diverged: (train|val)_loss is not finite in epoch") as info:
        fit(get_model("mlp", 1, 3, hidden=(16,), input_size=8), TensorData(x[:48], y[:48]),
            TensorData(x[48:], y[48:]), cfg, out=tmp_path / "m")
    assert not isinstance(info.value, InputError) and "1e+12" in str(info.value)
    ok = fit(get_model("mlp", 1, 3, hidden=(16,), input_size=8), TensorData(x[:48], y[:48]),
             TensorData(x[48:], y[48:]), cfg.update(lr=1e-2))  # the control: a sane rate trains
    assert all(np.isfinite(r["val_loss"]) for r in ok.history)


def _low_rank_images(rng, n, basis, offset):
    """n images (N, 1, 8, 8) near a 4-dimensional subspace of 64 dims, about a mean ``offset``."""
    z = rng.normal(size=(n, 4)) * np.array([5.0, 4.0, 3.0, 2.0])
    return z @ basis.T + 0.1 * rng.normal(size=(n, 64)) + offset


def test_linear_ae_centres_itself_and_spans_pca_subspace(tmp_path):
    """The linear AE = PCA equivalence holds on centred data, which the pipeline used to centre
    outside the model: a user's linear_ae trained by fit on the images themselves spent a code unit
    on the mean (largest principal angle 77.5 degrees, explained variance on new images 0.874
    against PCA's 0.989), and a checkpoint did not carry the mean. The model now owns the mean:
    fit sets it, encode subtracts it, decode adds it back, and it is saved with the weights."""
    from oceandl.pipelines.mnist import principal_angles

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 4)))[0]
    offset = 1.5 + rng.normal(size=64)
    data, new = _low_rank_images(rng, 600, basis, offset), _low_rank_images(rng, 200, basis, offset)
    mean = data.mean(0)
    vt = np.linalg.svd(data - mean, full_matrices=False)[2][:4]
    pca_rec = mean + (new - mean) @ vt.T @ vt
    sst = np.sum((new - mean) ** 2)
    pca_ev = 1 - np.sum((pca_rec - new) ** 2) / sst  # 0.989
    x, x_new = (torch.tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8) for a in (data, new))
    cfg = TrainConfig(epochs=40, lr=1e-2, batch_size=64, progress=False, device="cpu")
    fitted = {}
    for centre in (True, False):
        torch.manual_seed(0)
        model = fit(get_model("linear_ae", 1, input_size=8, latent=4, centre=centre), TensorData(x), None, cfg,
                    task="reconstruction").model
        ang = principal_angles(model.decoder[0].weight.detach().double().numpy(), vt.T)
        with torch.no_grad():
            rec = model(x_new).reshape(200, 64).double().numpy()
        fitted[centre] = (model, ang.max(), 1 - np.sum((rec - new) ** 2) / sst)
    model, angle, ev = fitted[True]
    np.testing.assert_allclose(model.mean.numpy().ravel(), mean, atol=1e-5)
    assert angle < 2.0  # 0.80 degrees
    assert abs(ev - pca_ev) < 0.002  # 0.9884 against 0.9891, on images the model never saw
    # the control, trained on the same uncentred images: the test can fail
    assert fitted[False][1] > 45 and fitted[False][2] < pca_ev - 0.05  # 77.5 degrees, 0.874
    # the mean travels in the checkpoint: the reloaded model gives the same reconstructions
    save_checkpoint(tmp_path / "lin", model, model_name="linear_ae", model_args=[1],
                    model_options={"input_size": 8, "latent": 4}, task="reconstruction")
    loaded, _ = load_checkpoint(tmp_path / "lin")
    assert torch.equal(loaded.mean, model.mean)
    with torch.no_grad():
        assert torch.equal(loaded(x_new), model(x_new))
    # a random subspace is far from PCA's
    assert principal_angles(rng.normal(size=(64, 4)), vt.T).max() > 45


def test_fit_mean_leaves_gaps_out_and_refuses_what_it_cannot_centre():
    model = get_model("linear_ae", 1, input_size=4, latent=2)
    assert torch.equal(model.mean, torch.zeros(1, 4, 4))  # no centring until fitted
    x = torch.arange(3 * 16, dtype=torch.float32).reshape(3, 1, 4, 4)
    x[0, 0, 0, 0] = float("nan")  # a gap: left out of that pixel's mean
    x[:, 0, 3, 3] = float("nan")  # a pixel with no value: mean 0
    assert model.fit_mean(x) is model
    assert float(model.mean[0, 0, 0]) == 24.0  # (16 + 32) / 2
    assert float(model.mean[0, 1, 1]) == 21.0 and float(model.mean[0, 3, 3]) == 0.0
    # batches give the mean of all their images
    model.fit_mean(iter([x[:1], x[1:]]))
    assert float(model.mean[0, 0, 0]) == 24.0 and float(model.mean[0, 1, 1]) == 21.0
    # encode subtracts it, decode adds it back
    with torch.no_grad():
        y = torch.rand(2, 1, 4, 4)
        z = model.encode(y)
        assert torch.allclose(z, model.encoder(y - model.mean))
        assert torch.allclose(model.decode(z) - model.mean, model.decoder(z).view(2, 1, 4, 4))
    with pytest.raises(InputError, match=r"LinearAE was built for images of \(1, 4, 4\) .*got \(1, 5, 5\)"):
        model.fit_mean(torch.zeros(3, 1, 5, 5))
    with pytest.raises(InputError, match="fit_mean: no images"):
        model.fit_mean(torch.zeros(0, 1, 4, 4))
    with pytest.raises(InputError, match="centre=False: it has no mean to fit"):
        get_model("dense_ae", 1, input_size=4).fit_mean(x)
    assert "mean" not in get_model("dense_ae", 1, input_size=4).state_dict()  # uncentred: state unchanged
    with pytest.raises(InputError, match="centre=True needs output='linear'"):
        get_model("dense_ae", 1, input_size=4, centre=True)
    with pytest.raises(InputError, match="centre=True needs out_channels == in_channels"):
        get_model("linear_ae", 1, 2, input_size=4)
    dense = get_model("dense_ae", 1, input_size=4, latent=2, output="linear", centre=True).fit_mean(x)
    assert float(dense.mean[0, 1, 1]) == 21.0


def test_a_centred_autoencoder_is_fed_its_gaps_as_its_mean():
    """Gaps (NaN) were fed to every reconstruction model as 0, the mean of normalised data: to a
    linear_ae that centres itself on SST in degC that is an anomaly of -20 degC at each gap, and the
    model learnt to ignore its input (RMSE on the gaps of new fields 0.495, on the observed pixels
    0.510, where the time mean gives 0.489). Fed as the model's mean: 0.097 and 0.080."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 4)))[0]
    offset = 20 + 2 * rng.normal(size=64)
    z = rng.normal(size=(800, 4)) * np.array([3.0, 2.0, 1.5, 1.0])
    truth = z @ basis.T + 0.05 * rng.normal(size=(800, 64)) + offset
    gap = rng.random(truth.shape) < 0.2
    x = torch.tensor(np.where(gap, np.nan, truth), dtype=torch.float32).reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    model = fit(get_model("linear_ae", 1, input_size=8, latent=4), TensorData(x[:600]), TensorData(x[600:]),
                TrainConfig(epochs=40, lr=1e-2, batch_size=64, progress=False, device="cpu"),
                task="reconstruction").model
    rec = predict(model, x[600:], device="cpu").reshape(200, 64)
    err, g = rec - truth[600:], gap[600:]
    time_mean = np.sqrt(np.mean((model.mean.numpy().reshape(64) - truth[600:])[g] ** 2))  # 0.489
    assert np.sqrt(np.mean(err[g] ** 2)) < 0.3 * time_mean  # 0.097
    assert np.sqrt(np.mean(err[~g] ** 2)) < 0.15  # 0.080


def test_linear_ae_checkpoint_written_before_the_mean_loads_uncentred(tmp_path):
    """A linear_ae checkpoint written before the model owned its mean has no `mean` tensor: loading
    it failed ("missing tensor mean"); it loads with the mean of 0 it was trained with."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = get_model("linear_ae", 1, input_size=8, latent=3)
    save_checkpoint(tmp_path / "old", model, model_name="linear_ae", model_args=[1],
                    model_options={"input_size": 8, "latent": 3}, task="reconstruction")
    weights = tmp_path / "old" / "weights.safetensors"
    state = load_file(str(weights))
    del state["mean"]
    save_file(state, str(weights))
    loaded, _ = load_checkpoint(tmp_path / "old")
    assert torch.equal(loaded.mean, torch.zeros(1, 8, 8))
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # a tensor the model does not make optional is still required
    del state["decoder.0.bias"]
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="missing tensor decoder.0.bias"):
        load_checkpoint(tmp_path / "old")


@pytest.mark.parametrize("name, options, code", [
    ("dense_ae", {"latent": 6, "hidden": [32]}, (6,)),
    ("dense_ae", {"latent": 6, "hidden": [32], "output": "linear", "centre": True}, (6,)),
    ("linear_ae", {"latent": 6}, (6,)),
    ("conv_ae", {"width": 4}, (8, 3, 3)),
    ("conv_ae", {"width": 4, "latent": 6, "input_size": 12}, (6,)),
])
def test_autoencoders_train_on_batches_of_one_and_round_trip_a_checkpoint(tmp_path, name, options, code):
    """encode / decode give the documented shapes; a batch of one trains (batch norm in conv_ae
    over a 3 x 3 map); the reloaded checkpoint gives the same reconstructions, bit for bit in the
    same memory layout (fit leaves a network channels-last, a loaded one is contiguous)."""
    torch.manual_seed(0)
    x = torch.rand(5, 1, 12, 12)
    opts = {"input_size": 12, **options} if name != "conv_ae" else options
    model = get_model(name, 1, **opts)
    z = model.train().encode(x[:1])
    assert tuple(z.shape) == (1, *code) and tuple(model.decode(z).shape) == (1, 1, 12, 12)
    res = fit(model, TensorData(x), TensorData(x[:2]), TrainConfig(epochs=2, batch_size=1, progress=False,
                                                                    device="cpu"), task="reconstruction")
    assert all(np.isfinite(r["train_loss"]) for r in res.history)
    model = res.model
    save_checkpoint(tmp_path / "ae", model, model_name=name, model_args=[1], model_options=opts,
                    task="reconstruction")
    loaded, _ = load_checkpoint(tmp_path / "ae")
    loaded = loaded.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)) and float(model(x).std()) > 0
    if getattr(model, "mean", None) is not None:  # the training images' mean, saved and loaded
        assert torch.allclose(loaded.mean, x.mean(0), atol=1e-6)


def test_checkpoint_refuses_pickles_and_mismatches(tmp_path):
    torch.save({"a": torch.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "model.pt")
    (tmp_path / "renamed").write_bytes((tmp_path / "model.pt").read_bytes())
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "renamed")
    m = get_model("cnn", 1, 10, channels=(8, 16))
    save_checkpoint(tmp_path / "ck", m, model_name="cnn", model_args=[1, 10], model_options={"channels": [8, 16]},
                    task="classification")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model_args"] = [1, 5]  # a checkpoint claiming another number of classes
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit model 'cnn'.*head.*shape"):
        load_checkpoint(tmp_path / "ck")
    cfg["model"], cfg["model_args"] = "resnet", [1, 10]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="cannot rebuild model 'resnet'.*no option 'channels'"):
        load_checkpoint(tmp_path / "ck")
    cfg["model_options"] = {}  # another architecture: the tensors do not match
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit model 'resnet'"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(InputError, match="already exists"):
        save_checkpoint(tmp_path / "ck", m, model_name="cnn", model_options={}, task="classification")


def test_load_checkpoint_resolves_the_device(tmp_path, monkeypatch):
    """device='auto' (as everywhere else) loads; 'cuda' without CUDA is one InputError. They were
    torch's bare RuntimeErrors ('Expected one of cpu, cuda, ...', 'Found no NVIDIA driver')."""
    save_checkpoint(tmp_path / "ck", get_model("mlp", 1, 4), model_name="mlp", model_options={},
                    model_args=[1, 4], task="classification")
    model, _ = load_checkpoint(str(tmp_path / "ck"), device="auto")
    assert next(model.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_checkpoint(tmp_path / "ck", device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA is not available"):
        load_checkpoint(tmp_path / "ck", device="cuda")
    with pytest.raises(InputError, match="not a device name"):
        load_checkpoint(tmp_path / "ck", device="gpu")


def test_a_torch_device_is_taken_where_a_device_name_is(tmp_path):
    """device=torch.device(...), the PyTorch idiom, failed in fit, predict and every interpolator as a
    bare AttributeError ('torch.device' object has no attribute 'lower'); in TrainConfig it then
    broke the checkpoint's config.json (not JSON serialisable). Only load_checkpoint took one."""
    from oceandl.interp import interpolate
    from oceandl.utils import resolve_device

    from fakes import lowrank_cube

    cpu = torch.device("cpu")
    assert resolve_device(cpu) == cpu
    model = get_model("mlp", 1, 2, input_size=4, hidden=(4,))
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1] * 3)
    res = fit(model, TensorData(x, y), None, TrainConfig(epochs=1, device=cpu, progress=False), out=tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["training"]["device"] == "cpu"
    assert predict(res.model, x, device=cpu).shape == (6, 2)
    gappy, _ = lowrank_cube(10, 8, 8, rank=2, seed=0)
    named = np.asarray(interpolate(gappy, "dineof", device="cpu", n_modes=2))
    np.testing.assert_array_equal(np.asarray(interpolate(gappy, "dineof", device=cpu, n_modes=2)), named)


def test_checkpoint_task_check(tmp_path):
    m = get_model("conv_ae", 1)
    save_checkpoint(tmp_path / "ae", m, model_name="conv_ae", model_args=[1], model_options={}, task="reconstruction")
    with pytest.raises(CheckpointError, match="task 'reconstruction'.*task 'classification'"):
        load_checkpoint(tmp_path / "ae", expect_task="classification")


def test_flatten_state_roundtrip():
    opt = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    opt.zero_grad()
    state = {"opt": opt.state_dict(), "rng": torch.get_rng_state(), "t": (1, 2.5, "x"), "n": None}
    tensors, meta = flatten_state(state)
    back = unflatten_state(tensors, json.loads(json.dumps(meta)))
    assert torch.equal(back["rng"], state["rng"]) and back["t"] == (1, 2.5, "x") and back["n"] is None
    assert back["opt"]["param_groups"][0]["lr"] == opt.state_dict()["param_groups"][0]["lr"]


def test_predict_tta_rotation_invariant_model_is_unchanged():
    class Mean(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)

    x = torch.rand(5, 1, 8, 8)
    assert np.allclose(predict(Mean(), x, device="cpu"), predict(Mean(), x, device="cpu", tta=True), atol=1e-6)


def test_predict_takes_numpy_images_and_refuses_bad_arguments():
    """A NumPy batch is classified like the same tensor (it failed as a bare IndexError, read as a
    dataset); a bad batch size or data type is one InputError."""
    torch.manual_seed(0)
    model = get_model("cnn", 1, 3, channels=(4, 8))
    x = torch.randn(5, 1, 16, 16)
    ref = predict(model, x, device="cpu")
    np.testing.assert_allclose(predict(model, x.numpy(), device="cpu"), ref, atol=1e-6)
    np.testing.assert_allclose(predict(model, x.numpy().astype(np.float64), device="cpu"), ref, atol=1e-6)
    with pytest.raises(InputError, match="batch_size=0"):
        predict(model, x, batch_size=0, device="cpu")
    with pytest.raises(InputError, match="cannot classify a int"):
        predict(model, 3, device="cpu")


def test_predict_of_a_reloaded_autoencoder_gives_its_reconstruction(tmp_path):
    """predict ran every model's output through a softmax over dim 1: a 1-channel auto-encoder's
    reconstruction came back as 1.0 at every pixel. A reconstruction model now gives its output
    (N, C, H, W); with tta the views are turned back before averaging."""
    from oceandl.training import evaluate_classifier

    torch.manual_seed(0)
    m = get_model("conv_ae", 1, width=4, output="linear")
    save_checkpoint(tmp_path / "ae", m, model_name="conv_ae", model_args=[1], model_options={"width": 4,
                    "output": "linear"}, task="reconstruction")
    loaded, _ = load_checkpoint(tmp_path / "ae", expect_task="reconstruction")
    x = torch.rand(5, 1, 12, 12)
    with torch.no_grad():
        ref = m.eval()(x).numpy()
    rec = predict(loaded, x, batch_size=2, device="cpu")
    assert rec.shape == (5, 1, 12, 12) and np.std(rec) > 0
    np.testing.assert_allclose(rec, ref, atol=1e-5)

    class Shift(torch.nn.Module):  # not equivariant: each view's output must be turned back
        task = "reconstruction"

        def forward(self, v):
            return 2 * v + 1

    for shape in ((5, 1, 6, 6), (5, 2, 4, 6)):
        x = torch.rand(*shape)
        np.testing.assert_allclose(predict(Shift(), x, device="cpu", tta=True), 2 * x.numpy() + 1, atol=1e-6)
    with pytest.raises(InputError, match="reconstruction model, not a classifier"):
        evaluate_classifier(loaded, TensorData(x[:, :1], torch.zeros(5, dtype=torch.long)), device="cpu")


def test_predict_tta_keeps_the_shape_of_non_square_images():
    # 90-degree turns of 4 x 6 images gave 6 x 4 views: an mlp (fixed input size) read scrambled pixels
    shapes = []

    class Record(torch.nn.Module):
        def forward(self, x):
            shapes.append(tuple(x.shape[-2:]))
            return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)

    x = torch.rand(3, 1, 4, 6)
    p = predict(Record(), x, batch_size=3, device="cpu", tta=True)  # a given size: no sizing pass
    assert set(shapes) == {(4, 6)} and len(shapes) == 4 and p.shape == (3, 2)
    shapes.clear()
    predict(Record(), torch.rand(3, 1, 5, 5), batch_size=3, device="cpu", tta=True)
    assert len(shapes) == 8  # square: all 8 flips/rotations


def test_cpu_inference_batch_keeps_the_largest_activation_small():
    """predict's default was 512 images per pass on the CPU: the course CNN's first activation at
    128 x 128 is 2 MB an image, a 1 GB tensor mapped fresh from the kernel at every batch (2.4x
    slower than batch 4). The CPU default now keeps it under 8 MB; other devices keep 512/256."""
    from oceandl.training import inference_batch_size

    torch.manual_seed(0)
    model = get_model("cnn", 1, 3)  # 32 channels at full resolution: 128 bytes a pixel
    assert [inference_batch_size(model, (1, s, s), "cpu") for s in (32, 64, 128, 256, 512)] == [64, 16, 4, 1, 1]
    assert inference_batch_size(model, (1, 128, 128), "cpu", default=2) == 2  # never above the default
    assert inference_batch_size(model, (1, 128, 128), torch.device("cuda")) == 256  # no CUDA needed to answer
    assert model.training  # the sizing pass leaves the model's mode alone

    # batch norm with running statistics of its own, in eval mode: each image's answer is its own
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    sizes = []
    model.features[0].register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    x = torch.randn(10, 1, 128, 128)
    auto = predict(model, x, device="cpu")
    assert sizes == [1, 4, 4, 2]  # the one-image sizing pass, then batches of 4
    whole = predict(model, x, batch_size=10, device="cpu")
    np.testing.assert_allclose(auto, whole, rtol=0, atol=1e-6)
    assert (auto.argmax(1) == whole.argmax(1)).all()


def test_predict_feeds_a_channels_last_network_channels_last_images():
    """fit leaves a network in channels-last layout; predict gave it NCHW images, so each
    convolution reordered its input first. The answer is the same to float rounding."""
    torch.manual_seed(0)
    model = get_model("cnn", 3, 4, channels=(8, 16)).eval()
    seen = []
    model.features[0].register_forward_pre_hook(
        lambda m, i: seen.append(i[0].is_contiguous(memory_format=torch.channels_last) and not i[0].is_contiguous()))
    x = torch.randn(6, 3, 16, 16)
    ref = predict(model, x, batch_size=3, device="cpu")
    assert seen == [False, False]  # a contiguous network is left as it is
    seen.clear()
    model = model.to(memory_format=torch.channels_last)
    np.testing.assert_allclose(predict(model, x, batch_size=3, device="cpu"), ref, rtol=0, atol=1e-6)
    assert seen == [True, True]


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_metrics_match_sklearn(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n, c = 300, 5
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[y] * rng.random((n, 1))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, p)
    pred = p.argmax(1)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))
    assert m["macro_precision"] == pytest.approx(sk.precision_score(y, pred, average="macro", zero_division=0))
    assert m["macro_recall"] == pytest.approx(sk.recall_score(y, pred, average="macro", zero_division=0))
    assert m["macro_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert m["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=list(range(c))))
    assert m["top2_accuracy"] == pytest.approx(sk.top_k_accuracy_score(y, p, k=2, labels=list(range(c))))
    assert np.array_equal(np.array(m["confusion_matrix"]), sk.confusion_matrix(y, pred, labels=list(range(c))))
    per = sk.precision_recall_fscore_support(y, pred, labels=list(range(c)), zero_division=0)
    for i in range(c):
        pc = m["per_class"][str(i)]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx(
            (per[0][i], per[1][i], per[2][i], per[3][i]))


def test_per_class_scores_of_absent_classes_follow_sklearn_zero_division_0():
    """Pins the documented 0/0 convention: class 2 is never predicted (precision 0), class 3 is not
    in y_true (recall 0, support 0), class 4 is neither; rows of the matrix are the true classes."""
    sk = pytest.importorskip("sklearn.metrics")
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 3])
    p = np.full((5, 5), 0.05)
    p[np.arange(5), pred] = 0.8
    m = classification_metrics(y, p)
    per = sk.precision_recall_fscore_support(y, pred, labels=list(range(5)), zero_division=0)
    for i in range(5):
        pc = m["per_class"][str(i)]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx(
            (per[0][i], per[1][i], per[2][i], per[3][i]))
    assert m["per_class"]["2"]["precision"] == 0 and m["per_class"]["3"]["recall"] == 0
    assert m["confusion_matrix"][2] == [0, 0, 0, 1, 0]  # true 2, predicted 3
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))  # over 0..3


def test_top_k_accuracy_breaks_ties_as_argmax_does():
    """np.argpartition ordered tied classes arbitrarily: a row with four classes tied at 0.25,
    whose true class 4 argmax picks (accuracy 1.0), scored top-2 accuracy 0.0 and top-3 1.0."""
    from oceandl.metrics import top_k_accuracy

    p = np.zeros((1, 10))
    p[0, [4, 6, 7, 9]] = 0.25
    assert classification_metrics([4], p)["accuracy"] == 1.0
    assert [top_k_accuracy([4], p, k) for k in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert [top_k_accuracy([7], p, k) for k in (1, 2, 3)] == [0.0, 0.0, 1.0]  # 4, 6, then 7
    # on random tied rows: top-1 is the accuracy and no score drops as k grows
    rng = np.random.default_rng(1)
    p = rng.integers(0, 3, (200, 10)).astype(float) + np.eye(10)[0] * 1e-9
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, 10, 200)
    scores = [top_k_accuracy(y, p, k) for k in range(1, 11)]
    assert scores[0] == classification_metrics(y, p)["accuracy"]
    assert all(a <= b for a, b in zip(scores, scores[1:])) and scores[-1] == 1.0


def test_top_k_and_ece_refuse_counts_below_one():
    """k=-1 sliced every class but the last (top-k accuracy 0.667 here), k=0 scored 0.0, and
    n_bins=0 failed as NumPy's bare ValueError."""
    from oceandl.metrics import expected_calibration_error, top_k_accuracy

    p, y = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]]), [0, 0, 1]
    for k in (0, -1, 1.5, True):
        with pytest.raises(InputError, match=r"k=.*: must be a positive integer"):
            top_k_accuracy(y, p, k)
    with pytest.raises(InputError, match="k=0"):
        classification_metrics(y, p, top_k=(0,))
    for n in (0, -1, 2.5):
        with pytest.raises(InputError, match=r"n_bins=.*: must be a positive integer"):
            expected_calibration_error(y, p, n_bins=n)
    assert top_k_accuracy(y, p, np.int64(1)) == pytest.approx(2 / 3)
    assert expected_calibration_error(y, p, n_bins=1)[0] == pytest.approx(abs(2 / 3 - 0.7))


def test_macro_scores_leave_out_classes_absent_from_the_test_set():
    """A class neither in y_true nor predicted counted as F1 = precision = recall = 0 in the macro
    means: 3 classes of a 10-class model, every image right, gave macro-F1 0.3. sklearn's macro
    average (and oceandl's own macro_accuracy) leaves such classes out; a predicted class that is
    not in y_true still counts, as in sklearn."""
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.full((6, 10), 0.01)
    p[np.arange(6), y] = 0.91
    m = classification_metrics(y, p)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["macro_precision"] == 1.0 and m["macro_recall"] == 1.0
    assert m["macro_accuracy"] == 1.0
    p[5] = 0.01
    p[5, 7] = 0.91  # one image of class 2 predicted as 7, a class with no test image
    m = classification_metrics(y, p)
    pred = p.argmax(1)
    sk = pytest.importorskip("sklearn.metrics")
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))
    assert m["macro_precision"] == pytest.approx(sk.precision_score(y, pred, average="macro", zero_division=0))
    assert m["macro_recall"] == pytest.approx(sk.recall_score(y, pred, average="macro", zero_division=0))
    assert m["macro_f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)


def test_classification_metrics_refuse_labels_outside_the_classes():
    """An out-of-range label used to be miscounted silently: a prediction 2 of 2 classes landed in
    the next row of the confusion matrix, and log_loss read the label -1 as the last class."""
    from oceandl.metrics import confusion_matrix, log_loss, top_k_accuracy

    p = np.array([[0.6, 0.4], [0.3, 0.7]])
    with pytest.raises(InputError, match="y_pred: labels must be .* integers in 0..1"):
        confusion_matrix([0, 0], [1, 2], 2)
    with pytest.raises(InputError, match=r"y_true: .*got \[0, -1\]"):
        log_loss([0, -1], p)
    with pytest.raises(InputError, match="y_true"):
        top_k_accuracy([0, 2], p, 1)
    with pytest.raises(InputError, match="y_true"):
        classification_metrics([0, 2], p)
    with pytest.raises(InputError, match="y_true"):
        classification_metrics([0.0, 0.5], p)
    with pytest.raises(InputError, match="3 labels but probs has 2 rows"):
        classification_metrics([0, 1, 1], p)
    with pytest.raises(InputError, match="1 class names for 2 columns"):
        classification_metrics([0, 1], p, classes=["a"])
    assert classification_metrics(np.array([1.0, 1.0]), p)["accuracy"] == 0.5  # integral floats are labels


def test_metrics_refuse_non_finite_probabilities_and_empty_sets():
    """A NaN row argmaxed to class 0 and was scored as a prediction (a diverged model read as a
    guess), and an empty test set reported macro scores of 0 as if measured."""
    from oceandl.metrics import log_loss

    p = np.array([[0.6, 0.4], [np.nan, np.nan], [0.2, 0.8]])
    with pytest.raises(InputError, match=r"probs: 1 of 3 rows hold NaN .*row 1"):
        classification_metrics([0, 0, 1], p)
    with pytest.raises(InputError, match="NaN or infinite"):
        log_loss([0, 1], np.array([[np.inf, 0.0], [0.5, 0.5]]))
    with pytest.raises(InputError, match="no samples to score"):
        classification_metrics(np.zeros(0, int), np.zeros((0, 3)), classes=["a", "b", "c"])
    assert classification_metrics([0, 1, 1], np.nan_to_num(p, nan=0.5))["accuracy"] == pytest.approx(2 / 3)


def test_metrics_refuse_scores_that_are_not_probabilities():
    """Logits were scored as probabilities: log_loss clipped them to [1e-15, 1] and renormalised
    (0.2027 for these logits, whose softmax gives 0.1809), and the ECE read a logit of 2 as a
    confidence (0.75). Rows must be distributions, as sklearn's log_loss requires."""
    from oceandl.metrics import expected_calibration_error, log_loss, top_k_accuracy

    y = [0, 1]
    logits = np.array([[2.0, -1.0], [0.5, 1.5]])
    for f in (log_loss, expected_calibration_error, classification_metrics):
        with pytest.raises(InputError, match=r"probs: 2 of 2 rows are not class probabilities.*row 0 .*softmax"):
            f(y, logits)
    with pytest.raises(InputError, match=r"1 of 2 rows .*row 1 holds \[0.3, 0.3\], sum 0.6"):
        top_k_accuracy(y, np.array([[0.7, 0.3], [0.3, 0.3]]), 1)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert log_loss(y, p) == pytest.approx(-np.mean(np.log([p[0, 0], p[1, 1]])))  # 0.1809
    # float32 softmax outputs, and probabilities stored to 3 decimals, are accepted
    rounded = np.round(np.full((2, 7), 1 / 7), 3)  # rows sum to 1.001
    assert classification_metrics(y, rounded)["n"] == 2
    assert log_loss(y, p.astype(np.float32)) == pytest.approx(0.1809, abs=1e-4)


def test_ece_perfectly_calibrated_and_overconfident():
    from oceandl.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    n = 20000
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.random(n) < conf  # calibrated by construction
    y = np.where(correct, 0, 1)
    p = np.stack([conf, 1 - conf], 1)
    assert expected_calibration_error(y, p)[0] < 0.02
    over = np.stack([np.full(n, 0.99), np.full(n, 0.01)], 1)
    y2 = (rng.random(n) < 0.3).astype(int)  # right 70 % of the time at 99 % confidence
    assert expected_calibration_error(y2, over)[0] == pytest.approx(0.29, abs=0.02)


def test_balanced_class_weights_learn_the_rare_class(digits):
    x, y = digits
    keep = (y != 3) | (torch.arange(len(y)) % 5 == 3)  # class 3 becomes rare (12 of 192)
    x, y = x[keep], y[keep]
    data = TensorData(x, y, list("abcd"))
    recall = {}
    for cw in ("none", "balanced"):
        torch.manual_seed(0)
        r = fit(get_model("mlp", 1, 4, hidden=(16,)), data, None,
                TrainConfig(epochs=4, lr=1e-2, class_weights=cw, **FAST))
        pred = predict(r.model, x, device="cpu").argmax(1)
        recall[cw] = float((pred[y.numpy() == 3] == 3).mean())
    assert recall["balanced"] >= recall["none"]
    assert recall["balanced"] > 0.5


def test_weighted_validation_loss_does_not_depend_on_the_batching():
    """With class_weights='balanced' the validation loss is the weighted mean over the whole set,
    sum(w_y * l) / sum(w_y). Batch means were weighed by batch size, so on a class-sorted validation
    set larger than one batch (256) the weights cancelled: 5 % off here, and the best epoch and the
    plateau schedule followed that other number."""
    g = torch.Generator().manual_seed(0)
    yv = torch.repeat_interleave(torch.tensor([0, 1]), torch.tensor([250, 50]))  # sorted, as splits are
    yt = torch.repeat_interleave(torch.tensor([0, 1]), torch.tensor([40, 8]))
    xv, xt = torch.randn(300, 1, 4, 4, generator=g), torch.randn(48, 1, 4, 4, generator=g)
    cfg = TrainConfig(epochs=1, class_weights="balanced", label_smoothing=0.1, amp=False, **FAST)
    res = fit(get_model("mlp", 1, 2, input_size=4, hidden=(8,)), TensorData(xt, yt, ["a", "b"]),
              TensorData(xv, yv, ["a", "b"]), cfg)
    w = torch.tensor(48 / (2 * np.array([40.0, 8.0])), dtype=torch.float32)
    with torch.no_grad():  # without the label smoothing, which is the training's only
        expected = float(torch.nn.functional.cross_entropy(res.model.cpu()(xv), yv, weight=w))
    assert res.history[0]["val_loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("mode, ratio", [("balanced", 5.0), ("sqrt", np.sqrt(5.0))])
def test_class_weights_balanced_or_sqrt(mode, ratio):
    """'balanced' weighs each class N / (K n_c), as scikit-learn: a class of 20 images among 30,000 weighs
    ~70x the mean, the instability plankton practice avoids with 1 / sqrt(n_c) weights ('sqrt', new:
    on a 6-class synthetic plankton set of 300..4 images, balanced accuracy 0.64 against 0.60 balanced
    and 0.61 unweighted, macro-F1 0.57 / 0.58 / 0.50, 5 seeds). The validation loss is the mean of
    the weighted cross-entropy with those weights (scaled to a mean weight of 1 per training image)."""
    g = torch.Generator().manual_seed(0)
    yt = torch.repeat_interleave(torch.tensor([0, 1]), torch.tensor([40, 8]))
    xt, xv = torch.randn(48, 1, 4, 4, generator=g), torch.randn(30, 1, 4, 4, generator=g)
    yv = torch.arange(30) % 2
    cfg = TrainConfig(epochs=1, class_weights=mode, amp=False, **FAST)
    res = fit(get_model("mlp", 1, 2, input_size=4, hidden=(8,)), TensorData(xt, yt, ["a", "b"]),
              TensorData(xv, yv, ["a", "b"]), cfg)
    w = torch.tensor([1.0, ratio], dtype=torch.float32)  # the loss's weighted mean: only the ratio counts
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(res.model.cpu()(xv), yv, weight=w))
    assert res.history[0]["val_loss"] == pytest.approx(expected, rel=1e-5)
    from oceandl.training.engine import _class_weights

    np.testing.assert_allclose(_class_weights(np.array([40, 8]), "balanced"), 48 / (2 * np.array([40, 8])))
    sq = _class_weights(np.array([40, 8]), "sqrt")
    assert sq[1] / sq[0] == pytest.approx(np.sqrt(5)) and (sq * [40, 8]).sum() == pytest.approx(48)
    with pytest.raises(InputError, match="class_weights='inverse'"):
        TrainConfig(class_weights="inverse")


def test_validation_loss_is_the_log_loss_whatever_the_label_smoothing(digits):
    """The validation loss was the label-smoothed cross-entropy: at smoothing 0.2 a model of
    log-loss 0.20 on the validation set was logged (and picked, and early-stopped) at 0.61, and
    runs with other smoothing could not be compared. It is the plain cross-entropy now."""
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, lr=3e-3, label_smoothing=0.2, amp=False, **FAST)
    res = fit(get_model("mlp", 1, 4, hidden=(16,)), train, val, cfg)
    assert res.best_epoch == 3
    with torch.no_grad():
        out = res.model.cpu()(val.x)
    plain = float(torch.nn.functional.cross_entropy(out, val.y))
    smoothed = float(torch.nn.functional.cross_entropy(out, val.y, label_smoothing=0.2))
    assert res.history[-1]["val_loss"] == pytest.approx(plain, rel=1e-5)
    assert smoothed > plain + 0.1


def test_balanced_class_weights_on_a_dataset_without_targets(digits):
    """class_weights='balanced' read train.targets: a torch Subset (or any dataset of dicts, as fit
    documents) failed as a bare AttributeError. The labels read with the images are used; the
    weights are those of the same images as a TensorData."""
    from torch.utils.data import Subset

    x, y = digits
    keep = np.flatnonzero((y.numpy() != 3) | (np.arange(len(y)) % 5 == 3))
    cfg = TrainConfig(epochs=1, lr=1e-2, class_weights="balanced", **FAST)
    torch.manual_seed(0)
    a = fit(get_model("mlp", 1, 4, hidden=(16,)), Subset(TensorData(x, y), keep), None, cfg)
    torch.manual_seed(0)
    b = fit(get_model("mlp", 1, 4, hidden=(16,)), TensorData(x[keep], y[keep]), None, cfg)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]


@pytest.mark.parametrize("labels, class_weights, words", [
    (torch.arange(40) % 5, "none", r"training label 4 outside the model's 4 classes \(0 to 3\)"),
    (torch.full((40,), -1), "none", "training label -1 outside the model's 4 classes .*-1 marks an unlabelled"),
    (torch.arange(40) % 3, "balanced", "class_weights='balanced': no training image of class 3 "
                                       r"\(the model scores 4 classes\)")])
def test_labels_the_loss_cannot_take_are_refused_before_training(labels, class_weights, words):
    """fit (the Python API) failed at the first step, after reading the data, with torch's bare
    'IndexError: Target 4 is out of bounds', or, with balanced weights and a class absent from the
    training labels, 'RuntimeError: weight tensor should be defined either for all 4 classes'."""
    x = torch.randn(40, 1, 8, 8)
    for train, val in ((TensorData(x, labels), None), (TensorData(x, torch.arange(40) % 4), TensorData(x, labels))):
        if class_weights == "balanced" and val is not None:
            continue  # the weights come from the training labels alone
        part = "training" if val is None else "validation"
        with pytest.raises(InputError, match=words.replace("training", part)):
            fit(get_model("mlp", 1, 4, input_size=8, hidden=(8,)), train, val,
                TrainConfig(epochs=1, class_weights=class_weights, **FAST))


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((7, 0), False), ((8, 0), True), ((9, 0), True)])
def test_native_bf16_on_cuda_is_ampere_and_newer(monkeypatch, capability, native):
    """A T4 or V100 (sm < 80) only emulates bf16: torch.cuda.is_bf16_supported() says True there
    (torch >= 2.3), which made precision "auto" train and infer such a GPU in slow bf16."""
    import oceandl.utils
    from oceandl.training import training_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation counted, as torch does
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    oceandl.utils.native_bf16.cache_clear()
    try:
        assert oceandl.utils.native_bf16(torch.device("cuda")) is native
        assert oceandl.utils.resolve_precision("auto", torch.device("cuda")) == ("bf16" if native else "fp32")
        assert training_precision(torch.device("cuda"), TrainConfig()) == ("bf16" if native else "fp32")
    finally:
        oceandl.utils.native_bf16.cache_clear()  # the real machine's answers again


def test_training_precision_follows_the_hardware(digits, monkeypatch, tmp_path):
    """amp: bf16 autocast where the device computes bf16 natively; amp_cpu forces the CPU either
    way; a GPU without bf16 trains in fp32 (fp16 would need loss scaling). The checkpoint says
    which ran, and a bf16 run learns like an fp32 one."""
    import oceandl.utils
    from oceandl.training import engine, training_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(oceandl.utils, "native_bf16", lambda device, n=native: n)
        auto = "bf16" if native else "fp32"
        assert training_precision(cpu, TrainConfig()) == auto
        assert training_precision(cuda, TrainConfig()) == auto
        assert training_precision(cpu, TrainConfig(amp=False)) == "fp32"
        assert training_precision(cpu, TrainConfig(amp_cpu=True)) == "bf16"
        assert training_precision(cpu, TrainConfig(amp_cpu=False)) == "fp32"
        assert training_precision(cuda, TrainConfig(amp_cpu=False)) == auto  # amp_cpu is the CPU's
        # --precision bf16 (amp_cpu=True) on a GPU without native bf16 trains in fp32: said so, once
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            engine._warn_unmet_bf16(cuda, TrainConfig(amp_cpu=True))
            engine._warn_unmet_bf16(cuda, TrainConfig())  # auto asked for nothing
            engine._warn_unmet_bf16(cpu, TrainConfig(amp_cpu=True))  # forced on the CPU: it is bf16
        assert [str(w.message)[:30] for w in caught] == ([] if native else ["bf16 was asked for, but cuda h"])
    monkeypatch.undo()
    losses = {}
    for amp_cpu in (False, True):
        torch.manual_seed(0)
        model = get_model("cnn", 1, 10, channels=(8, 16), hidden=32)
        cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, device="cpu", amp_cpu=amp_cpu, progress=False)
        out = tmp_path / f"bf16_{amp_cpu}"
        res = fit(model, *_sets(digits), cfg, out=out)
        assert json.loads((out / "config.json").read_text())["precision"] == ("bf16" if amp_cpu else "fp32")
        losses[amp_cpu] = [h["train_loss"] for h in res.history]
    # bf16 and fp32 runs drift apart by chance: 0.1-2.4 % over 12 seeded dropout-mask sequences
    np.testing.assert_allclose(losses[True], losses[False], rtol=0.04)
    assert losses[True][1] < losses[True][0]


def test_fused_optimizer_where_torch_has_it_and_the_same_steps(digits):
    """The engine steps with torch's fused SGD/Adam/AdamW (one kernel for all parameters) unless
    ``fused=False``; the trajectory is the per-tensor one to float rounding."""
    from oceandl.training.engine import _make_optimizer
    from oceandl.utils import fused_optimizer_kwargs

    model = get_model("mlp", 1, 4, hidden=(16,))
    for name in ("sgd", "adam", "adamw"):
        opt, _ = _make_optimizer(model, TrainConfig(optimizer=name), 10)
        assert opt.defaults["fused"] is True, name
        opt, _ = _make_optimizer(model, TrainConfig(optimizer=name, fused=False), 10)
        assert not opt.defaults["fused"], name
    assert fused_optimizer_kwargs([torch.zeros(2, dtype=torch.int64)]) == {}  # not floating point
    assert fused_optimizer_kwargs([]) == {} and fused_optimizer_kwargs(model.parameters(), enabled=False) == {}
    losses = {}
    for fused in (True, False):
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cpu", amp=False, fused=fused, progress=False)
        res = fit(get_model("cnn", 1, 10, channels=(8, 16), hidden=32), *_sets(digits), cfg)
        losses[fused] = [h["train_loss"] for h in res.history]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


def test_weight_decay_spares_biases_and_normalisation_layers():
    """weight_decay went to every parameter: with AdamW at lr 0.1, decay 0.1, a bias of 1 (or a
    batch-norm scale) fell to 0.99 in one step of zero gradient. Only weights (ndim >= 2) decay now,
    as the l1/l2 penalties do; decay_biases=True restores the decay of everything."""
    from oceandl.training.engine import _make_optimizer

    model = get_model("cnn", 1, 4, channels=(8, 16))
    params = list(model.parameters())
    assert any(p.ndim == 1 for p in params) and any(p.ndim == 4 for p in params)
    for name in ("sgd", "adam", "adamw"):
        opt, _ = _make_optimizer(model, TrainConfig(optimizer=name, weight_decay=0.1), 10)
        decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
        assert len(decay) == len(params), name
        assert [decay[id(p)] for p in params] == [0.1 if p.ndim > 1 else 0.0 for p in params], name
        opt, _ = _make_optimizer(model, TrainConfig(optimizer=name, weight_decay=0.1, decay_biases=True), 10)
        assert [g["weight_decay"] for g in opt.param_groups] == [0.1], name
    # one AdamW step of zero gradient: decay alone moves a parameter, by lr * decay
    for decay_biases, bias_after in ((False, 1.0), (True, 0.99)):
        opt, _ = _make_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.1, decay_biases=decay_biases,
                                                    fused=False), 10)
        with torch.no_grad():
            for p in params:
                p.fill_(1.0)
                p.grad = torch.zeros_like(p)
        opt.step()
        bn_scale, conv = model.features[0][1].weight, model.features[0][0].weight
        assert model.head[-1].bias[0].item() == pytest.approx(bias_after, abs=1e-7)
        assert bn_scale[0].item() == pytest.approx(bias_after, abs=1e-7)
        assert conv[0, 0, 0, 0].item() == pytest.approx(0.99, abs=1e-7)


@pytest.mark.parametrize("fused", [True, False])
def test_resumed_optimizer_state_takes_the_parameters_layout(fused):
    """Saved state is contiguous; a channels-last parameter's resumed step must equal the
    uninterrupted one exactly (torch's fused AdamW pairs elements by memory position: with the
    layouts mixed it was off by 0.04 after one step)."""
    from oceandl.training.checkpoint import flatten_state, unflatten_state
    from oceandl.training.engine import _state_like_params

    torch.manual_seed(0)
    cl = torch.channels_last
    p = torch.randn(4, 3, 2, 2).contiguous(memory_format=cl).requires_grad_()
    grads = [torch.randn(4, 3, 2, 2).contiguous(memory_format=cl) for _ in range(2)]
    opt = torch.optim.AdamW([p], lr=0.1, fused=fused)
    p.grad = grads[0]
    opt.step()
    tensors, meta = flatten_state(opt.state_dict())
    saved = unflatten_state({k: v.clone() for k, v in tensors.items()}, meta)  # as read back from disk
    q = p.detach().clone().contiguous(memory_format=cl).requires_grad_()
    resumed = torch.optim.AdamW([q], lr=0.1, fused=fused)
    resumed.load_state_dict(saved)
    assert not resumed.state[q]["exp_avg"].is_contiguous(memory_format=cl)  # what the fix is for
    _state_like_params(resumed)
    assert resumed.state[q]["exp_avg"].stride() == q.stride()
    p.grad, q.grad = grads[1], grads[1].clone()
    opt.step()
    resumed.step()
    assert torch.equal(p, q)


def test_freezing_random_weights_is_warned_about(digits):
    """freeze=backbone without pretrained weights froze random features and trained the head
    alone, silently: a run that reads like fine-tuning and is not."""
    from oceandl.training.classifier import train_classifier

    x, y = digits
    data = TensorData(x[:60], y[:60], ["a", "b", "c", "d"])
    cfg = TrainConfig(epochs=1, batch_size=32, device="cpu", progress=False)
    with pytest.warns(UserWarning, match=r"freeze='backbone' without pretrained weights .* freezes random weights"):
        res = train_classifier(data, "resnet18", None, cfg, model_options={"freeze": "backbone"})
    trainable = [n for n, p in res["model"].named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("net.fc") for n in trainable)
    # an invalid freeze is the model's own one-line error, without the warning about random weights first
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="freeze='head': use none, backbone or all_but_last"):
            train_classifier(data, "resnet18", None, cfg, model_options={"freeze": "head"})


def test_imagenet_weights_on_unnormalised_pixels_are_warned_about(digits, tmp_path):
    """Pretrained weights with normalize='none' fed ImageNet filters and batch-norm statistics the
    pixels as read (dB near -20), without a word; per_image (the default) standardises them."""
    import warnings

    import torchvision

    from oceandl.training.classifier import train_classifier

    path = tmp_path / "r.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    x, y = digits
    data = TensorData(x[:60], y[:60], ["a", "b", "c", "d"])
    cfg = TrainConfig(epochs=1, batch_size=32, device="cpu", progress=False)
    opts = {"weights": str(path), "freeze": "backbone"}
    with pytest.warns(UserWarning, match=r"ImageNet weights expect standardised inputs .*normalize='none'"):
        train_classifier(data, "resnet18", None, cfg, model_options=opts,
                         preprocessing={"intensity": "db", "normalize": "none"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_classifier(data, "resnet18", None, cfg, model_options=opts, preprocessing={"normalize": "per_image"})


def test_images_too_small_for_the_model_are_an_input_error(digits, tmp_path):
    """alexnet on 28 px images (it needs 63) failed at the first training step as torch's bare
    RuntimeError ('Output size is too small', exit 1), after the data was read; now an InputError
    naming the model, the image size and the size to resize to, before any training or output."""
    from oceandl.training.classifier import train_classifier

    x, y = digits
    data = TensorData(x[:40], y[:40], ["a", "b", "c", "d"])
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", progress=False)
    with pytest.raises(InputError) as err:
        train_classifier(data, "alexnet", tmp_path / "ck", cfg)
    # the size and the remedy once each (the wrapper repeated the model's own words)
    assert str(err.value) == ("model 'alexnet': alexnet needs images of 63 px or more a side, got (28, 28); "
                              "--size (or size= in the reader) resizes the images")
    assert not (tmp_path / "ck").exists()
    with pytest.raises(InputError) as err:
        train_classifier(TensorData(x[:40, :, :3, :3], y[:40], list("abcd")), "cnn", None, cfg)
    msg = str(err.value)
    assert msg.startswith("model 'cnn': CourseCNN pools 2 times by 2: images need sides of 4 px or more, got (3, 3)")
    assert msg.count("(3, 3)") == 1 and msg.count("3 x 3") == 0 and msg.endswith("resizes the images")


def test_resuming_an_early_stopped_run_trains_no_more(digits, tmp_path):
    """A run that stopped early is finished: --resume went on training past the stop (the loop
    started at the next epoch, patience already spent) and replaced its checkpoint."""
    train, val = _sets(digits)
    cfg = TrainConfig(epochs=30, lr=0.5, optimizer="sgd", early_stopping=2, scheduler="none", **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    torch.manual_seed(0)
    full = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta)
    assert len(full.history) < 30
    before = (tmp_path / "ck" / "training_state.safetensors").read_bytes()
    resumed = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta, resume=True)
    assert [h["epoch"] for h in resumed.history] == [h["epoch"] for h in full.history]
    assert resumed.best_epoch == full.best_epoch
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert (tmp_path / "ck" / "training_state.safetensors").read_bytes() == before


def test_checkpoint_config_of_wrong_types_is_named(tmp_path):
    """An edited config.json with a key of the wrong type failed as a bare ValueError/TypeError
    (dict('abc'), an unhashable model name); a newer format read as 'not an oceandl checkpoint'."""
    m = get_model("cnn", 1, 4, channels=(4, 8), hidden=8)
    save_checkpoint(tmp_path / "ck", m, model_name="cnn", model_args=[1, 4],
                    model_options={"channels": [4, 8], "hidden": 8}, task="classification")
    good = json.loads((tmp_path / "ck" / "config.json").read_text())
    cases = [({"model_options": "abc"}, "model_options must be an object"),
             ({"model_options": None}, "model_options must be an object"),
             ({"model": ["cnn"]}, "model must be a registry name"),
             ({"model_args": 3}, "model_args must be a list"),
             ({"classes": 4}, "classes must be a list of names or null"),
             ({"format": "oceandl-checkpoint/2"}, "checkpoint format 'oceandl-checkpoint/2', this oceandl reads")]
    for change, words in cases:
        (tmp_path / "ck" / "config.json").write_text(json.dumps({**good, **change}))
        with pytest.raises(CheckpointError, match=f"config.json: {words}"):
            load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text(json.dumps({**good, "from_the_future": {"a": 1}}))
    assert load_checkpoint(tmp_path / "ck")[1]["from_the_future"] == {"a": 1}  # unknown keys are kept


def test_full_disk_while_training_is_one_line_and_resumable(digits, tmp_path, monkeypatch):
    """A full disk at a checkpoint write was safetensors' 'SafetensorError: Error while
    serializing: I/O error: ...', without the folder; the previous epoch's checkpoint is kept."""
    import safetensors.torch
    from safetensors import SafetensorError

    train, val = _sets(digits)
    cfg = TrainConfig(epochs=3, **FAST)
    meta = dict(model_name="mlp", model_args=[1, 4], model_options={})
    real, calls = safetensors.torch.save_file, []

    def full_disk(tensors, filename, *a, **k):
        calls.append(filename)
        if len(calls) > 2:  # epoch 1 (weights and state) fits, epoch 2 does not
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, filename, *a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(InputError, match=r"ck: cannot write the checkpoint \(.*No space left on device.*\); "
                                         "the previous checkpoint there is unchanged"):
        fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temporary left behind
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    res = fit(get_model("mlp", 1, 4), train, val, cfg, out=tmp_path / "ck", checkpoint_meta=meta, resume=True)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(safetensors.torch, "save_file", read_only)
    with pytest.raises(InputError, match=r"new: cannot write the checkpoint \(.*Permission denied\); nothing was"):
        save_checkpoint(tmp_path / "new", get_model("mlp", 1, 4), model_name="mlp", model_options={},
                        task="classification")


def test_rot90_augments_non_square_images_by_half_turns():
    """rot90 left non-square images as they were (a quarter turn changes their shape), silently:
    they now turn by 0 or 180 degrees, as predict's TTA does; square images by any quarter turn."""
    from oceandl.training import BatchAugment

    aug = BatchAugment(("rot90",))
    x = torch.arange(64 * 2 * 3, dtype=torch.float32).reshape(64, 1, 2, 3) + 100 * torch.arange(64).view(64, 1, 1, 1)
    torch.manual_seed(0)
    out = aug(x)
    assert out.shape == x.shape
    turned = [bool(torch.equal(o, torch.rot90(s, 2, (-2, -1)))) for o, s in zip(out, x)]
    same = [bool(torch.equal(o, s)) for o, s in zip(out, x)]
    assert all(t or s for t, s in zip(turned, same)) and 10 < sum(turned) < 54
    sq = torch.randn(64, 1, 3, 3)
    torch.manual_seed(0)
    out = aug(sq)
    turns = {next(k for k in range(4) if torch.equal(o, torch.rot90(s, k, (-2, -1)))) for o, s in zip(out, sq)}
    assert turns == {0, 1, 2, 3}


def test_history_logs_the_learning_rate_each_epoch_trained_at(digits):
    """The lr in the history (log.csv, curves) was read after the epoch's steps: the next epoch's
    rate (a step schedule logged 1e-4 for an epoch run at 1e-3, a cosine 0 for its last epoch)."""
    train, val = _sets(digits)  # 180 training images: 6 steps an epoch, the step schedule's period
    res = fit(get_model("mlp", 1, 4), train, val, TrainConfig(epochs=3, lr=1e-3, scheduler="step", **FAST))
    np.testing.assert_allclose([h["lr"] for h in res.history], [1e-3, 1e-4, 1e-5], rtol=1e-9)
    res = fit(get_model("mlp", 1, 4), train, val, TrainConfig(epochs=2, lr=1e-3, scheduler="cosine", **FAST))
    np.testing.assert_allclose([h["lr"] for h in res.history], [1e-3, 5e-4], rtol=1e-9)


@pytest.mark.parametrize("option, value, words", [("label_smoothing", 1.5, r"within \[0, 1\]"),
                                                  ("label_smoothing", -0.1, r"within \[0, 1\]"),
                                                  ("weight_decay", -0.1, ">= 0"), ("momentum", -1.0, ">= 0")])
def test_optimizer_and_loss_settings_are_checked_up_front(option, value, words):
    """torch refused these only once the run began (label smoothing at the first step, after the
    data was read), as a bare RuntimeError/ValueError."""
    with pytest.raises(InputError, match=f"{option} must be {words}, got {value}"):
        TrainConfig(**{option: value})
    TrainConfig(**{option: 0.0})


def test_checkpoint_files_are_readable_like_other_new_files(digits, tmp_path):
    """safetensors wrote the weights (and the resumable state) 0600: on a shared cluster the
    group could read config.json but not the weights. They follow the umask now."""
    import os
    import stat

    x, y = digits
    model = get_model("mlp", 1, 4, input_size=28, hidden=(8,))
    old = os.umask(0o022)
    try:
        fit(model, TensorData(x[:32], y[:32]), None, TrainConfig(epochs=1, batch_size=16, device="cpu",
                                                                 progress=False), out=tmp_path / "ckpt")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ckpt").iterdir()}
    assert modes and all(m == 0o644 for m in modes.values()), {k: oct(v) for k, v in modes.items()}
    assert "weights.safetensors" in modes


def test_denoising_target_is_the_clean_image(digits):
    """With augment noise on a reconstruction, the noise went on the target too: an auto-encoder
    learnt to reproduce it. An identity network now scores the noise's variance, not 0; the
    geometric augmentations still move input and target together (flip: loss 0)."""
    from torch import nn

    class Identity(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x + 0 * self.w

    x, y = digits
    data = TensorData(x[:64], y[:64])
    base = dict(epochs=1, batch_size=32, device="cpu", progress=False, amp=False, channels_last=False)
    noisy = fit(Identity(), data, None, TrainConfig(augment=("noise",), noise=0.5, **base), task="reconstruction")
    assert noisy.history[0]["train_loss"] == pytest.approx(0.25, rel=0.05)
    flipped = fit(Identity(), data, None, TrainConfig(augment=("flip",), **base), task="reconstruction")
    assert flipped.history[0]["train_loss"] == 0.0


def test_speckle_augmentation_only_on_linear_unnormalised_intensities(digits, tmp_path):
    """'speckle' multiplies the batch by gamma noise, on the preprocessed tensors: with dB or per-image
    normalisation (the CLI default) it multiplied zero-mean values, rescaling each image's contrast
    about its mean, which is no speckle. Refused there before any image is read or written; on linear
    intensities (normalize none) it trains as before."""
    from oceandl.training.classifier import train_classifier

    x, y = digits
    data = TensorData(x[:40].clamp_min(0) + 0.01, y[:40], ["a", "b", "c", "d"])
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", progress=False, augment=("speckle",))
    for spec in ({"intensity": "db", "normalize": "none"}, {"intensity": "linear", "normalize": "per_image"},
                 {"intensity": "db", "normalize": "per_image"}):
        with pytest.raises(InputError, match=r"'speckle' multiplies linear intensities.*or 'noise'"):
            train_classifier(data, "cnn", tmp_path / "ck", cfg, preprocessing=spec)
        assert not (tmp_path / "ck").exists()
    res = train_classifier(data, "cnn", None, cfg, preprocessing={"intensity": "linear", "normalize": "none"})
    assert len(res["history"]) == 1


def test_last_training_batch_of_one_is_left_out_not_a_batch_norm_crash():
    """65 images in batches of 64 reach a U-Net's 1 x 1 bottleneck with one sample: torch's bare
    "Expected more than 1 value per channel when training" (exit 1). The lone sample is now left
    out of that epoch (another one each epoch); a batch size of one is a one-line InputError."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(65, 1, 8, 8, generator=g)
    cfg = TrainConfig(epochs=2, batch_size=64, progress=False, device="cpu")
    torch.manual_seed(0)
    res = fit(get_model("unet", 1, width=4, depth=3), TensorData(x), None, cfg, task="reconstruction")
    assert [np.isfinite(r["train_loss"]) for r in res.history] == [True, True]
    from oceandl.training.engine import _Batches

    b = _Batches(TensorData(x), 64, torch.device("cpu"), cfg, shuffle=True, desc="")
    sizes = [[len(xb) for xb, _ in b.epoch(torch.Generator().manual_seed(e))] for e in (1, 2)]
    assert sizes == [[64], [64]] and len(b) == 1
    b66 = _Batches(TensorData(torch.cat([x, x[:1]])), 64, torch.device("cpu"), cfg, shuffle=True, desc="")
    assert [len(xb) for xb, _ in b66.epoch(torch.Generator().manual_seed(0))] == [64, 2]
    val = _Batches(TensorData(x), 64, torch.device("cpu"), cfg, shuffle=False, desc="")
    assert sum(len(xb) for xb, _ in val.epoch(torch.Generator())) == 65  # evaluation sees every sample
    with pytest.raises(InputError, match="training batch of 1 image.*batch_size >= 2"):
        fit(get_model("unet", 1, width=4, depth=3), TensorData(x[:4]), None, cfg.update(batch_size=1),
            task="reconstruction")


def test_reconstruction_loss_is_taken_on_the_observed_pixels_of_gappy_images():
    """An auto-encoder trained on fields with NaN gaps stopped at once with "training diverged:
    train_loss is not finite in epoch 1 (lower the learning rate ...)". The loss is now the MSE over
    the finite pixels, the gaps are fed as 0, and a complete image's loss is unchanged."""
    from oceandl.training.engine import _masked_mse

    g = torch.Generator().manual_seed(0)
    out, x = torch.randn(4, 1, 6, 6, generator=g), torch.randn(4, 1, 6, 6, generator=g)
    assert torch.allclose(_masked_mse(out, x), torch.nn.functional.mse_loss(out, x))
    gappy = x.clone()
    gappy[:, :, 1:4, 2:5] = float("nan")
    ok = torch.isfinite(gappy)
    assert torch.allclose(_masked_mse(out, gappy), ((out - x)[ok] ** 2).mean())
    out.requires_grad_()
    _masked_mse(out, gappy).backward()
    assert torch.isfinite(out.grad).all() and float(out.grad[~ok].abs().sum()) == 0

    fields = torch.rand(32, 1, 12, 12, generator=g)
    fields[::2, :, 3:8, 4:9] = float("nan")
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, progress=False, device="cpu")
    torch.manual_seed(0)
    res = fit(get_model("conv_ae", 1, width=4, output="linear"), TensorData(fields[:24]), TensorData(fields[24:]),
              cfg, task="reconstruction")
    assert all(np.isfinite([r["train_loss"], r["val_loss"]]).all() for r in res.history)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    rec = predict(res.model, fields[24:], device="cpu")
    assert np.isfinite(rec).all()


def test_training_warnings_name_the_callers_line(digits):
    """train_classifier's warnings had stacklevel=2: through compare_classifiers they named
    oceandl/training/classifier.py, not the user's line. They name this file now, either way."""
    import warnings

    from oceandl.training.classifier import compare_classifiers, train_classifier

    x, y = digits
    keep = np.concatenate([np.flatnonzero(y.numpy() == 0)[:2], np.flatnonzero(y.numpy() == 1),
                           np.flatnonzero(y.numpy() == 3)])
    data = TensorData(x[keep], y[keep], ["a", "b", "c", "d"])
    cfg = TrainConfig(epochs=1, batch_size=32, device="cpu", progress=False)
    for call in (lambda: train_classifier(data, "mlp", None, cfg), lambda: compare_classifiers(data, ["mlp"], cfg, log=None)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        hits = [w for w in caught if "no images of class(es) c" in str(w.message) or "fewer than 3" in str(w.message)]
        assert len(hits) == 2, [str(w.message) for w in caught]
        assert {(w.filename, w.category) for w in hits} == {(__file__, UserWarning)}, [w.filename for w in hits]


def test_classes_too_small_to_split_are_left_out_and_recorded(digits, tmp_path):
    """A class of 1 or 2 images (the rarest taxa of a plankton archive) failed the whole run
    ("class 'taxon_000' has 2 images: at least 3 are needed"), one class per attempt; now such
    classes are left out of the model with one warning naming them all, and recorded."""
    from oceandl.training.classifier import train_classifier

    x, y = digits
    keep = np.concatenate([np.flatnonzero(y.numpy() == 0)[:2], np.flatnonzero(y.numpy() == 1),
                           np.flatnonzero(y.numpy() == 2)[:1], np.flatnonzero(y.numpy() == 3)])
    data = TensorData(x[keep], y[keep], ["tiny a", "b", "Ceratium à cornes", "d"])
    cfg = TrainConfig(epochs=1, batch_size=32, device="cpu", progress=False)
    with pytest.warns(UserWarning, match=r"2 class\(es\) with fewer than 3 images .* left out of the model: "
                                         r"tiny a \(2\), Ceratium à cornes \(1\)"):
        res = train_classifier(data, "cnn", tmp_path / "ck", cfg)
    n = int((y == 1).sum() + (y == 3).sum())
    assert sum(res["split_sizes"]) == n
    assert res["test"]["classes"] == ["b", "d"]
    cfg_json = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg_json["classes"] == ["b", "d"] and cfg_json["model_args"][1] == 2
    assert cfg_json["left_out_classes"] == {"tiny a": 2, "Ceratium à cornes": 1}
    # a single class left that can be split: an error, not a one-class model
    with pytest.raises(InputError, match=r"only one class \('b'\) with 3 images or more"), pytest.warns(UserWarning):
        train_classifier(TensorData(x[keep[:-int((y == 3).sum())]], y[keep[:-int((y == 3).sum())]],
                                    ["tiny a", "b", "Ceratium à cornes", "d"]), "cnn", None, cfg)


def test_images_failing_to_decode_are_left_out_without_moving_others_between_splits(tmp_path):
    """A JPEG truncated at 70 % of its bytes and a PNG with a corrupt IDAT chunk pass the header check
    and failed to decode when read: the whole training run stopped. Now (on_error="skip", the default)
    they are left out, named and recorded, and every other image keeps the part it had with the
    files readable: the split is drawn over all files, the bad ones then taken out of theirs."""
    from PIL import Image

    from oceandl.datasets.images import ImageFolderDataset
    from oceandl.training.classifier import train_classifier
    from test_materialize import _corrupt_pixels

    rng = np.random.default_rng(0)
    for c, cls in enumerate("abc"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(10):
            arr = (rng.random((16, 16)) * 60 + 80 * c).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "tree" / cls / f"{i:02d}.{'jpg' if i == 3 else 'png'}", quality=95)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False, seed=3)
    parts_of = lambda ds, res: [{ds.files[i].name + ds.files[i].parent.name for i in p}  # noqa: E731
                                for p in res["split_indices"]]
    good = ImageFolderDataset(tmp_path / "tree")
    before = parts_of(good, train_classifier(good, "mlp", None, cfg))
    bad = [_corrupt_pixels(tmp_path / "tree" / "a" / "03.jpg"), _corrupt_pixels(tmp_path / "tree" / "b" / "05.png")]
    ds = ImageFolderDataset(tmp_path / "tree")
    assert len(ds) == 30 and not ds.skipped
    with pytest.raises(InputError, match=r"03\.jpg: cannot read image"):
        train_classifier(ds, "mlp", None, cfg, on_error="raise")
    with pytest.warns(UserWarning, match=r"left out 2 image\(s\).*03\.jpg.*05\.png"):
        res = train_classifier(ds, "mlp", tmp_path / "ck", cfg)
    after = parts_of(ds, res)
    names = {"03.jpga", "05.pngb"}
    assert after == [p - names for p in before] and sum(res["split_sizes"]) == 28
    # drawn over the readable images only, the same seed moved others between the parts
    readable = np.setdiff1d(np.arange(30), [ds.files.index(p) for p in bad])
    naive = split_indices(28, (0.7, 0.15, 0.15), seed=3, stratify=ds.targets[readable])
    assert [{ds.files[i].name + ds.files[i].parent.name for i in readable[q]} for q in naive] != after
    saved = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert sorted(saved["unreadable_images"]) == sorted(map(str, bad))
    assert "truncated" in saved["unreadable_images"][str(bad[0])]
    assert res["unreadable_images"] == saved["unreadable_images"]


def test_unreadable_or_added_files_move_no_other_image_between_splits(tmp_path):
    """30 PNGs in 3 classes, seed 0. The split was drawn over the readable files' order: an
    existing file that turned unreadable at the header check (a truncated copy) moved 4 of the 29
    others between training, validation and test, and an added file (readable or failing to
    decode) others still. Keyed on the files' paths, every other image keeps its part, and the
    unreadable file is recorded with its reason."""
    from PIL import Image

    from oceandl.datasets.images import ImageFolderDataset
    from oceandl.training.classifier import train_classifier
    from test_materialize import _corrupt_pixels

    rng = np.random.default_rng(0)
    root = tmp_path / "tree"
    for c in "abc":
        (root / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(root / c / f"{c}{i:02d}.png")
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False, seed=0)

    def parts(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = ImageFolderDataset(root)
            res = train_classifier(ds, "mlp", None, cfg, **kw)
        return [{ds.keys[i] for i in p} for p in res["split_indices"]], res

    before, _ = parts()
    assert before[1:] == [{"a/a09.png", "b/b01.png", "c/c09.png"},
                          {"a/a08.png", "b/b05.png", "b/b08.png", "c/c02.png", "c/c04.png", "c/c07.png"}]
    assert len(before[0]) == 21
    good = (root / "b" / "b03.png").read_bytes()
    (root / "b" / "b03.png").write_bytes(good[:40])  # fails the header check: truncated
    after, res = parts()
    assert after == [p - {"b/b03.png"} for p in before]
    assert list(res["unreadable_images"]) == [str(root / "b" / "b03.png")]
    (root / "b" / "b03.png").write_bytes(good)
    (root / "a" / "a99.png").write_bytes(b"not an image")  # a new file failing the header check
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "c" / "c99.png")  # and a good one
    _corrupt_pixels(Path(shutil.copy(root / "b" / "b00.png", root / "b" / "b99.png")))  # one failing to decode
    after, res = parts()
    assert [p - {"c/c99.png"} for p in after] == before
    assert sorted(res["unreadable_images"]) == [str(root / "a" / "a99.png"), str(root / "b" / "b99.png")]


def test_weighted_f1_beside_macro_f1_on_imbalanced_classes():
    """Only macro F1 was reported: on 100+ long-tailed plankton classes a reader needs both (macro
    weighs a class of 2 test images as one of 2000). weighted_f1 is sklearn's average='weighted'."""
    y = np.array([0] * 90 + [1] * 8 + [2] * 2)
    pred = y.copy()
    pred[:5] = 1  # 5 of the large class taken for class 1
    pred[98:] = 0  # the rare class never recognised
    p = np.full((100, 3), 0.05)
    p[np.arange(100), pred] = 0.9
    m = classification_metrics(y, p)
    sk = pytest.importorskip("sklearn.metrics")
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted", zero_division=0))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(0.9254, abs=1e-4) and m["macro_f1"] == pytest.approx(0.5741, abs=1e-4)
    from oceandl.pipelines.imagebench import COLUMNS
    from oceandl.training.classifier import _REPORTED

    assert "weighted_f1" in _REPORTED and "test_weighted_f1" in COLUMNS


def _strided_pointwise_net(cls=torch.nn.Conv2d):
    from oceandl.models.blocks import PointwiseConv

    conv = PointwiseConv(8, 16, 2) if cls is PointwiseConv else torch.nn.Conv2d(8, 16, 1, stride=2, bias=False)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), conv, torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("kind", ["conv2d", "pointwise", "contiguous"])
def test_a_strided_1x1_conv_oneDNN_corrupts_on_is_warned_about(kind):
    """oneDNN 3.12 corrupts the heap in the channels-last backward of a strided 1x1 conv of 2-15
    input channels on AVX512 CPUs (docs/robustness.md): a model of one's own with one is warned about;
    PointwiseConv, or channels_last=False, is not."""
    from fakes import torch_threads

    from oceandl.models.blocks import PointwiseConv
    from oceandl.training.engine import _onednn_version

    if "AVX512" not in torch.backends.cpu.get_cpu_capability() or (_onednn_version() or (0, 0)) > (3, 12):
        pytest.skip("warned about only on AVX512 CPUs with oneDNN 3.12 or older")
    x, y = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    net = _strided_pointwise_net(PointwiseConv if kind == "pointwise" else torch.nn.Conv2d)
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False, device="cpu", channels_last=kind != "contiguous",
                      amp=False)  # batches of 4: an even batch, which the bug spares
    with torch_threads(2), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(net, TensorData(x, y), None, cfg)
    said = [str(w.message) for w in caught if "strided 1x1 convolution" in str(w.message)]
    if kind == "conv2d":
        assert len(said) == 1 and "layer 1:" in said[0] and "8 input channels" in said[0], said
        assert "PointwiseConv" in said[0] and "--no-channels-last" in said[0]
    else:
        assert said == []
