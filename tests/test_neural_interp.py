"""Neural gap filling: reconstruction models (U-Net, ResAE, smp U-Net) and the neural interpolators."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from oceandl.errors import CheckpointError, InputError
from oceandl.interp import METHODS
from oceandl.interp.neural import NeuralInterpolator, blend_window, tile_starts
from oceandl.models import get_model

NEURAL = ["convae", "unet", "resae", "smp_unet"]
# Small networks so a few steps run in well under a second on 2 cores.
TINY = {
    "convae": {"width": 8, "depth": 2, "latent_channels": 8},
    "unet": {"width": 8, "depth": 2},
    "resae": {"width": 8, "depth": 2},
    "smp_unet": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
}


def _cube(n_time: int, ny: int, nx: int, cover: float, seed: int, smooth: bool = False) -> xr.DataArray:
    """Gappy (time, lat, lon) field with a land corner: moving large-scale waves + noise, blob clouds."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time)[:, None, None]
    y = np.linspace(0, 1, ny)[None, :, None]
    x = np.linspace(0, 1, nx)[None, None, :]
    field = 20 + 4 * y + np.sin(2 * np.pi * (x + 0.03 * t)) * np.cos(np.pi * y) \
        + 0.8 * np.cos(2 * np.pi * (y - 0.02 * t) + 1.0) * np.sin(np.pi * x)
    if not smooth:
        field = field + 0.3 * rng.standard_normal(field.shape)
    # Clouds: random discs, a few per day (spatially coherent gaps as in real data).
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    cloud = np.zeros(field.shape, bool)
    for k in range(n_time):
        while cloud[k].mean() < cover * rng.uniform(0.5, 1.5):
            cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(3, max(ny, nx) / 4)
            cloud[k] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    land = (yy < ny // 5) & (xx < nx // 4)
    values = np.where(cloud | land[None], np.nan, field).astype(np.float32)
    da = xr.DataArray(values, dims=("time", "lat", "lon"), name="sst",
                      coords={"time": pd.date_range("2021-03-01", periods=n_time),
                              "lat": np.linspace(30, 40, ny), "lon": np.linspace(-60, -50, nx)})
    return da


def _withhold(da: xr.DataArray, fraction: float, seed: int) -> np.ndarray:
    """Withhold observed pixels under the clouds of other days (cloud transfer)."""
    obs = np.isfinite(da.values)
    rng = np.random.default_rng(seed)
    held = np.zeros_like(obs)
    ocean = obs.any(0)
    for k in rng.permutation(len(obs)):
        donor = (k + rng.integers(1, len(obs))) % len(obs)
        held[k] |= obs[k] & ~obs[donor] & ocean
        if held.sum() >= fraction * obs.sum():
            break
    return held


@pytest.fixture(scope="module")
def tiny():
    return _cube(16, 32, 32, 0.4, seed=0)


def _fit(name, da, withheld=None, seed=0, **options):
    opts = {"steps": 4, "batch_size": 4, "patch": 32, "model_options": TINY[name], **options}
    return METHODS[name](seed=seed, device="cpu", **opts).fit(da, withheld=withheld)


def test_diverged_training_is_an_error_not_a_nan_fill(tiny):
    """A learning rate that blows the loss up is reported with the step, instead of filling the gaps
    with NaN and reporting success; and the base class refuses any method's non-finite ocean values."""
    from oceandl.errors import OceanDLError
    from oceandl.interp import Climatology

    with pytest.raises(OceanDLError, match=r"method 'unet': training diverged: the loss is not finite from step \d+ of 12"):
        _fit("unet", tiny, steps=12, lr=1e9)
    assert _fit("unet", tiny, steps=12).reconstruct()["sst"].notnull().sum() > 0  # the control trains

    m = Climatology().fit(tiny)
    m._reconstruct = lambda: (np.full(tiny.shape, np.nan), None)  # what a diverged fit hands back
    with pytest.raises(OceanDLError, match="method 'climatology' produced .* non-finite values over the ocean"):
        m.reconstruct()


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", ["unet", "resae", "smp_unet"])
def test_models_keep_odd_shapes_and_backprop(name):
    torch.manual_seed(0)
    opts = {"smp_unet": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}}.get(name, {"width": 8})
    model = get_model(name, 5, 2, **opts)
    assert model.task == "reconstruction"
    x = torch.randn(2, 5, 30, 44, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 2, 30, 44)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_resae_without_skip_and_unet_bilinear():
    for model in (get_model("resae", 3, 1, width=8, skip=False), get_model("unet", 3, width=8, bilinear=True)):
        assert model(torch.randn(1, 3, 17, 23)).shape[-2:] == (17, 23)


def test_model_bad_options():
    with pytest.raises(InputError, match="depth"):
        get_model("unet", 3, depth=0)
    with pytest.raises(InputError, match="encoder_name"):
        get_model("smp_unet", 3, encoder_name="no_such_encoder")


# ----------------------------------------------------------------------------- tiling helpers
def test_tile_starts_and_window():
    assert tile_starts(30, 64, 16) == [0]
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:]))  # every pair shares >= 8 pixels
    w = blend_window(32, 8)
    assert w.min() > 0 and w[8:24].min() == 1.0 and np.allclose(w, w[::-1])
    assert np.all(np.diff(w[:8]) > 0)


# ----------------------------------------------------------------------------- interpolators
@pytest.mark.parametrize("name", NEURAL)
def test_methods_fill_a_tiny_cube(name, tiny):
    assert issubclass(METHODS[name], NeuralInterpolator)
    ds = _fit(name, tiny).reconstruct()
    out = ds["sst"]
    assert out.dims == tiny.dims and out.shape == tiny.shape
    land = np.isnan(tiny.values).all(0)
    assert land.any() and np.isnan(out.values[:, land]).all()
    assert np.isfinite(out.values[:, ~land]).all()
    observed = np.isfinite(tiny.values)
    np.testing.assert_array_equal(out.values[observed], tiny.values[observed])
    assert ds.attrs["method"] == name and ds.attrs["train_steps"] == 4
    assert "sigma" not in ds


def test_training_beats_climatology_on_withheld():
    da = _cube(48, 32, 32, 0.4, seed=1, smooth=True)
    held = _withhold(da, 0.1, seed=2)
    clim = METHODS["climatology"]().fit(da, withheld=held)
    clim.reconstruct()
    # 60 steps of a tiny U-Net: measured ratio 0.26 (seed 0)
    unet = METHODS["unet"](seed=0, device="cpu", steps=60, batch_size=8, patch=32, lr=5e-3,
                           model_options={"width": 8, "depth": 2}).fit(da, withheld=held)
    unet.reconstruct()
    assert held.sum() > 500
    assert unet.val_metrics_["rmse"] < 0.5 * clim.val_metrics_["rmse"]
    assert unet.loss_history_[-1] < unet.loss_history_[0]


def test_nll_gives_positive_sigma(tiny):
    held = _withhold(tiny, 0.1, seed=3)
    model = _fit("resae", tiny, withheld=held, nll=True, steps=10)
    assert model.gives_sigma and not METHODS["resae"]().gives_sigma
    ds = model.reconstruct()
    sigma = ds["sigma"].values
    land = np.isnan(tiny.values).all(0)
    assert np.isnan(sigma[:, land]).all()
    assert np.isfinite(sigma[:, ~land]).all() and (sigma[:, ~land] > 0).all()
    assert "val_frac_within_1sigma" in ds.attrs
    # observed pixels keep the observation while sigma is the network's own there: said, not left to guess
    assert "missing_flag 0" in ds["sigma"].attrs["comment"] and "observation" in ds["sigma"].attrs["comment"]


def test_tiled_inference_matches_untiled(tiny):
    model = _fit("unet", tiny, steps=3, tile=None)
    whole = model.reconstruct()["sst"].values
    model.options["tile"], model.options["overlap"] = 32, 8  # one tile covering the grid
    np.testing.assert_allclose(model.reconstruct()["sst"].values, whole, rtol=0, atol=1e-5)
    model.options["tile"], model.options["overlap"], model.options["infer_batch"] = 16, 8, 3
    tiled = model.reconstruct()["sst"].values
    gap = np.isnan(tiny.values) & ~np.isnan(whole)
    diff = np.abs(tiled[gap] - whole[gap])
    assert diff.max() > 0  # tiles really were used
    # Overlapping Hann-blended tiles: close to the whole-grid pass relative to the filled signal.
    assert np.sqrt(np.mean(diff**2)) < 0.15 * np.std(whole[gap])


def test_same_seed_same_result_on_cpu(tiny):
    a = _fit("unet", tiny, seed=5, steps=3).reconstruct()["sst"].values
    b = _fit("unet", tiny, seed=5, steps=3).reconstruct()["sst"].values
    c = _fit("unet", tiny, seed=6, steps=3).reconstruct()["sst"].values
    np.testing.assert_array_equal(a, b)
    gap = np.isnan(tiny.values) & ~np.isnan(a)
    assert np.abs(a[gap] - c[gap]).max() > 1e-4


def test_fit_leaves_the_global_torch_rng_alone(tiny):
    """The seeded fit (weights init, training) runs on a private copy of torch's random state: the
    caller's global generator was reset to the seed, so a notebook's next draw depended on it."""
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    a = _fit("unet", tiny, seed=5, steps=2).reconstruct()["sst"].values
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(999)  # whatever the global state, the same seed gives the same fill
    np.testing.assert_array_equal(_fit("unet", tiny, seed=5, steps=2).reconstruct()["sst"].values, a)


def test_neighbours_and_channels(tiny):
    model = _fit("resae", tiny, neighbours=2, steps=1)
    # (data, mask) x 5 days + lat/lon + cos/sin of the day of year
    assert model._in_channels == 2 * 5 + 2 + 2
    no_dates = tiny.drop_vars("time")
    model = _fit("resae", no_dates, neighbours=0, latlon=False, steps=1)
    assert model._in_channels == 2


def test_training_batch_is_the_mask_transfer_of_each_patch(tiny):
    """The batch cut by tensor gathers equals, patch by patch, the mask transfer written out in numpy."""
    model = _fit("unet", tiny, neighbours=1, steps=1, visible_weight=0.25)
    src = model._sources()
    obs, xp, n = model._mp, model._xp, 1
    t, donor = np.array([0, 7, 15]), np.array([3, 0, 8])  # day 0 and day 15 reach the padded ends
    i, j, ph, pw = np.array([0, 5, 16]), np.array([16, 2, 0]), 16, 12
    inp, target, weight = (a.numpy() for a in model._train_batch(src, t, donor, i, j, ph, pw))
    assert inp.shape == (3, model._in_channels, ph, pw) and target.shape == weight.shape == (3, ph, pw)
    for b in range(3):
        ys, xs = slice(i[b], i[b] + ph), slice(j[b], j[b] + pw)
        seen, donor_seen = obs[t[b] + n, ys, xs], obs[donor[b] + n, ys, xs]
        keep = seen & donor_seen
        np.testing.assert_array_equal(target[b], xp[t[b] + n, ys, xs])
        np.testing.assert_array_equal(inp[b, 0], np.where(keep, xp[t[b] + n, ys, xs], 0))  # hidden: zeroed
        np.testing.assert_array_equal(inp[b, 1], keep)
        for c, day in ((2, t[b] - 1), (4, t[b] + 1)):  # neighbours untouched (zeros beyond the series)
            np.testing.assert_array_equal(inp[b, c], xp[day + n, ys, xs])
            np.testing.assert_array_equal(inp[b, c + 1], obs[day + n, ys, xs])
        np.testing.assert_array_equal(weight[b], np.where(keep, 0.25, np.where(seen, 1.0, 0.0)).astype(np.float32))
        np.testing.assert_array_equal(inp[b, 6:8], model._pos[:, ys, xs])  # positions of this patch
        np.testing.assert_allclose(inp[b, 8:10], model._season[t[b]][:, None, None] * np.ones((1, ph, pw)))
    assert (weight == 1).any() and (weight == 0.25).any()  # the donors hid something and left something


def test_checkpoint_roundtrip(tiny, tmp_path):
    model = _fit("convae", tiny, nll=True, steps=3)
    first = model.reconstruct()
    path = model.save(tmp_path / "ckpt")
    with pytest.raises(InputError, match="exists"):
        model.save(path)
    again = METHODS["convae"](device="cpu", checkpoint=str(path)).fit(tiny).reconstruct()
    np.testing.assert_allclose(again["sst"].values, first["sst"].values, atol=1e-5)
    np.testing.assert_allclose(again["sigma"].values, first["sigma"].values, rtol=1e-5)
    assert again.attrs["train_steps"] == 0
    with pytest.raises(CheckpointError, match="convae"):
        METHODS["unet"](device="cpu", checkpoint=str(path))  # at construction: the JSON says so


def test_a_fill_from_a_checkpoint_names_its_weights_and_training(tiny, tmp_path):
    """The output said which folder (a path, which can be retrained in place), train_steps 0 and
    this run's default training options (patch 64, steps None), not the network that filled it:
    it now carries the SHA-256 of the weights file and the checkpoint's training record."""
    import hashlib
    import json

    path = _fit("unet", tiny, steps=3, patch=16).save(tmp_path / "ckpt")
    sha = hashlib.sha256((path / "weights.safetensors").read_bytes()).hexdigest()
    out = METHODS["unet"](device="cpu", checkpoint=str(path)).fit(tiny).reconstruct()
    attrs = out["sst"].attrs
    assert attrs["checkpoint"] == str(path) and attrs["checkpoint_sha256"] == sha
    assert out.attrs["checkpoint_sha256"] == sha
    training = json.loads(attrs["checkpoint_training"])
    assert training["train_steps"] == 3 and training["options"]["patch"] == 16 and training["seed"] == 0
    assert training["variable"] == "sst" and training["sizes"] == {"time": 16, "lat": 32, "lon": 32}
    # retrained into the same folder: the same path, other weights, another hash
    _fit("unet", tiny, steps=3, patch=16, seed=1).save(path, overwrite=True)
    again = METHODS["unet"](device="cpu", checkpoint=str(path)).fit(tiny).reconstruct()["sst"].attrs
    assert again["checkpoint"] == str(path) and again["checkpoint_sha256"] != sha
    # a network trained in this run names no checkpoint
    assert not any(k.startswith("checkpoint") for k in _fit("unet", tiny).reconstruct()["sst"].attrs)


def test_options_a_checkpoint_cannot_honour_are_refused(tiny, tmp_path):
    """With checkpoint= the training options (epochs, lr, ...) and input options other than the
    checkpoint's were ignored without a word, and steps with epochs let epochs win silently."""
    path = _fit("unet", tiny, steps=2, neighbours=0, model_options={"width": 8, "depth": 2}).save(tmp_path / "c")
    for opts, words in [({"epochs": 3}, "epochs=3 has no effect with checkpoint"),
                        ({"lr": 1e-2}, "lr=0.01 has no effect"),
                        ({"model_options": {"width": 16}}, "model_options"),
                        ({"neighbours": 1}, "neighbours=1 differs from checkpoint .* neighbours=0")]:
        with pytest.raises(InputError, match=words):
            METHODS["unet"](device="cpu", checkpoint=str(path), **opts)
    # what the checkpoint says, or what inference reads, is accepted
    again = METHODS["unet"](device="cpu", checkpoint=str(path), neighbours=0, tile=16, overlap=4).fit(tiny)
    assert again.steps_ == 0 and again._cfg["neighbours"] == 0 and np.isfinite(again.reconstruct()["sst"]).any()
    with pytest.raises(InputError, match=r"epochs=2 and steps=5 are both set: give one"):
        METHODS["unet"](steps=5, epochs=2)


def test_a_fill_outside_the_checkpoints_season_is_warned_about(tiny, tmp_path):
    """A network trained on one season filled another without a word (January-March on April: a
    bias of -0.4 to -0.96 degC): the checkpoint now records the days of the year it was trained
    on, and a fill more than 7 days from all of them is warned about, with the count and the first date."""
    import json
    import warnings

    path = _fit("unet", tiny, steps=2, patch=16).save(tmp_path / "c")  # 2021-03-01 .. 03-16: days 60-75
    assert json.loads((path / "config.json").read_text())["training"]["days_of_year"] == list(range(60, 76))
    june = tiny.assign_coords(time=pd.date_range("2022-05-25", periods=16))  # days 145-160
    with pytest.warns(UserWarning, match=r"trained on days 60-75 of the year; 16 of this input's 16 time steps "
                                         r"\(the first 2022-05-25\) are more than 7 days from them"):
        METHODS["unet"](device="cpu", checkpoint=str(path)).fit(june)
    edge = tiny.assign_coords(time=pd.date_range("2022-03-20", periods=16))  # days 79-94: 79-82 within 7
    with pytest.warns(UserWarning, match=r"12 of this input's 16 time steps \(the first 2022-03-24\)"):
        METHODS["unet"](device="cpu", checkpoint=str(path)).fit(edge)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # another year, the same season: no warning
        METHODS["unet"](device="cpu", checkpoint=str(path)).fit(tiny.assign_coords(time=pd.date_range("2023-03-01",
                                                                                                     periods=16)))


def test_init_fine_tunes_a_checkpoint_network(tiny, tmp_path):
    """``init=`` trains on from a checkpoint's network (fine-tuning on another period or region):
    with no steps it is the checkpoint's network exactly; with steps its loss starts where the
    checkpoint's training ended, not where a new network's starts; the output and the new
    checkpoint name the starting weights by hash; options that would change the network are refused."""
    import hashlib
    import json

    path = _fit("unet", tiny, steps=6, patch=16).save(tmp_path / "c")
    sha = hashlib.sha256((path / "weights.safetensors").read_bytes()).hexdigest()
    other = _cube(12, 32, 32, 0.5, seed=3)
    zero = METHODS["unet"](device="cpu", init=str(path), steps=0).fit(other).reconstruct()
    loaded = METHODS["unet"](device="cpu", checkpoint=str(path), normalisation="input").fit(other).reconstruct()
    np.testing.assert_allclose(zero["sst"].values, loaded["sst"].values, atol=1e-5)
    tuned = _fit("unet", other, seed=1, init=str(path), model_options=None)
    fresh = _fit("unet", other, seed=1)  # the same batches (same seed), a new network

    def flat(model):
        return torch.cat([p.detach().float().flatten() for p in model.parameters()])

    start = flat(METHODS["unet"](device="cpu", checkpoint=str(path)).fit(other).model_)
    moved, apart = (flat(tuned.model_) - start).norm(), (flat(fresh.model_) - start).norm()
    assert tuned.steps_ == 4 and 0 < moved < 0.2 * apart, (moved, apart)  # trained on, near where it started
    attrs = tuned.reconstruct()["sst"].attrs
    assert attrs["init_checkpoint"] == str(path) and attrs["init_checkpoint_sha256"] == sha
    assert "checkpoint" not in attrs and attrs["train_steps"] == 4
    saved = json.loads((tuned.save(tmp_path / "tuned") / "config.json").read_text())["training"]
    assert saved["init"] == {"checkpoint": str(path), "sha256": sha} and saved["train_steps"] == 4
    for opts, words in [({"checkpoint": str(path)}, "init=.* and checkpoint=.* are both set"),
                        ({"nll": True}, "nll=True differs from init checkpoint"),
                        ({"model_options": {"width": 16}}, "cannot change the network of init checkpoint")]:
        with pytest.raises(InputError, match=words):
            METHODS["unet"](device="cpu", init=str(path), **opts)
    with pytest.raises(CheckpointError, match="not 'resae'"):
        METHODS["resae"](device="cpu", init=str(path))


@pytest.mark.parametrize("options, word", [
    ({"neighbours": -1}, "neighbours"), ({"patch": 0}, "patch"), ({"tile": 16, "overlap": 16}, "overlap"),
    ({"model_options": {"nope": 1}}, "model_options"), ({"nll": "yes"}, "nll"), ({"lr": 0}, "lr"),
    ({"bogus": 1}, "bogus"), ({"precision": "fp16"}, "precision"), ({"channels_last": "yes"}, "channels_last"),
    ({"fused": 1}, "fused"),
])
def test_bad_options_raise_input_error(options, word):
    with pytest.raises(InputError, match=word):
        METHODS["unet"](**options)


def test_precision_and_layout_switches(tiny, monkeypatch):
    """bf16 autocast, channels_last and the fused AdamW step change the arithmetic, not the method:
    the same training from the same seed fills the gaps alike; "auto" follows the hardware; attrs
    say what ran."""
    import oceandl.utils

    gap = np.isnan(tiny.values) & ~np.isnan(tiny.values).all(0)
    runs = {}
    for prec, cl, fused in (("fp32", False, True), ("fp32", True, True), ("bf16", False, True), ("bf16", True, True),
                            ("fp32", False, False)):
        model = _fit("unet", tiny, steps=4, precision=prec, channels_last=cl, fused=fused)
        assert model.options["fused"] is fused
        ds = model.reconstruct()
        assert ds.attrs["precision"] == prec and model.precision_ == prec
        if cl:
            w = next(p for p in model.model_.parameters() if p.ndim == 4)
            assert w.is_contiguous(memory_format=torch.channels_last)
        runs[prec, cl, fused] = (ds["sst"].values[gap], np.array(model.loss_history_))
    ref, ref_loss = runs["fp32", False, True]
    spread = np.std(ref)
    for key, (got, loss) in runs.items():
        assert np.isfinite(got).all()
        tol = 1e-3 if key[0] == "fp32" else 0.05  # bf16 keeps 8 bits of mantissa
        np.testing.assert_allclose(loss, ref_loss, rtol=tol * 10)
        assert np.sqrt(np.mean((got - ref) ** 2)) < tol * spread, key
    for native in (True, False):
        monkeypatch.setattr(oceandl.utils, "native_bf16", lambda device, n=native: n)
        assert _fit("unet", tiny, steps=1).precision_ == ("bf16" if native else "fp32")


def test_channels_last_checkpoint_roundtrip(tiny, tmp_path):
    model = _fit("unet", tiny, steps=3, channels_last=True, precision="fp32")
    first = model.reconstruct()["sst"].values
    path = model.save(tmp_path / "ckpt")
    for cl in (True, False):  # the weights are stored contiguous; either layout reads them
        again = METHODS["unet"](device="cpu", checkpoint=str(path), channels_last=cl, precision="fp32")
        np.testing.assert_allclose(again.fit(tiny).reconstruct()["sst"].values, first, atol=1e-5)


def test_seasonal_channels_turn_once_a_year_on_a_360_day_calendar(tiny):
    """On a cftime 360_day calendar the day of year was divided by 365.25: day 360 stopped 5 days
    short of a turn and day 1 jumped 6 days on. Now each day advances the season by 1/360 of a turn."""
    times = xr.date_range("2001-12-25", periods=len(tiny.time), calendar="360_day", use_cftime=True)
    model = _fit("unet", tiny.assign_coords(time=times), steps=0)
    angle = np.arctan2(model._season[:, 1], model._season[:, 0])
    step = np.mod(np.diff(angle), 2 * np.pi)  # crosses the new year after day 6
    np.testing.assert_allclose(step, 2 * np.pi / 360, rtol=1e-4)
    standard = _fit("unet", tiny, steps=0)._season  # other calendars keep the 365.25-day year
    doy = tiny.time.dt.dayofyear.values
    np.testing.assert_allclose(standard[:, 0], np.cos(2 * np.pi * doy / 365.25), atol=1e-6)


@pytest.mark.parametrize("name", NEURAL)
def test_batch_of_one_pixel_at_the_deepest_stage_is_an_input_error(name, tiny):
    """batch_size=1 with patches that shrink to 1 x 1 at the deepest stage failed in the first step
    with torch's 'Expected more than 1 value per channel' ValueError (exit 1, not a bad-input line)."""
    with pytest.raises(InputError, match=f"method '{name}': batch_size=1 with training patches of 4 x 4 px"):
        _fit(name, tiny, batch_size=1, patch=4)
    assert _fit(name, tiny, batch_size=2, patch=4, steps=1).steps_ == 1  # two values per channel: trains


def test_neighbours_need_the_days_in_time_order(tiny):
    """A DataArray with its days shuffled (or reversed) was filled from the wrong days' data as
    'neighbours', without a word; now that is an InputError, and neighbours=0 still fills it."""
    shuffled = tiny.isel(time=np.r_[1, 0, 2:len(tiny.time)])
    with pytest.raises(InputError, match=r"method 'unet': time is not increasing \(step 1: 2021-03-02 .*sortby"):
        _fit("unet", shuffled, steps=1)
    with pytest.raises(InputError, match="not increasing"):
        _fit("unet", tiny.isel(time=slice(None, None, -1)), steps=1)
    assert _fit("unet", shuffled, steps=1, neighbours=0).steps_ == 1
    assert _fit("unet", tiny.drop_vars("time"), steps=1).steps_ == 1  # no coordinate: the array's order


def test_irregular_time_steps_are_warned_about(tiny):
    """With a day missing from the series (a file not delivered), the 'neighbour' of the day
    before the hole is two days away; that was silent. A regular series warns nothing."""
    import warnings

    holed = tiny.isel(time=np.r_[0:3, 5:len(tiny.time)])
    with pytest.warns(UserWarning, match=r"time steps are irregular \(1 day to 3 days\); the neighbours=1 channels"):
        _fit("unet", holed, steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit("unet", tiny, steps=1)
        _fit("unet", holed, steps=1, neighbours=0)  # no neighbour channels: nothing to warn about


def test_a_checkpoint_of_another_quantity_is_warned_about(tiny, tmp_path):
    """An SST network given a chlorophyll field filled it without a word. Each file is normalised by
    its own mean and scale, so kelvin vs degree_Celsius is the same fill (no warning); another CF
    standard_name is warned about, naming both."""
    import warnings

    sst = tiny.assign_attrs(standard_name="sea_surface_temperature", units="degree_Celsius")
    path = _fit("unet", sst, steps=3).save(tmp_path / "ckpt")
    ref = METHODS["unet"](device="cpu", checkpoint=str(path), precision="fp32").fit(sst).reconstruct()["sst"].values
    kelvin = (sst + 273.15).assign_attrs(standard_name="sea_surface_temperature", units="K")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = METHODS["unet"](device="cpu", checkpoint=str(path), precision="fp32").fit(kelvin).reconstruct()
    np.testing.assert_allclose(got["sst"].values - 273.15, ref, atol=2e-3)
    chl = sst.rename("chlor_a").assign_attrs(standard_name="mass_concentration_of_chlorophyll_a_in_sea_water",
                                             units="mg m-3")
    with pytest.warns(UserWarning, match="trained on 'sea_surface_temperature'.*'mass_concentration_of_chloro"):
        METHODS["unet"](device="cpu", checkpoint=str(path)).fit(chl)


def test_a_checkpoint_normalises_a_short_window_as_it_was_trained(tiny, tmp_path):
    """Each file was normalised by its own per-pixel mean: a 7-day window of a year a U-Net was
    trained on was filled with RMSE 2.70 against 1.45 for the same days filled inside the year's
    file, 52 % of its gaps stayed NaN (pixels cloudy all week were taken for land) and a single
    day was refused (synthetic SST 365 x 48 x 48, 9 windows). The checkpoint now stores its
    training statistics and fills any input on its grid with them: a window's days are filled
    exactly as inside the whole file (neighbours=0: no edge days), every ocean pixel included."""
    path = _fit("unet", tiny, steps=3, neighbours=0).save(tmp_path / "ckpt")
    assert (path / "normalisation.safetensors").is_file()
    opts = dict(device="cpu", checkpoint=str(path), tile=None, precision="fp32")
    whole = METHODS["unet"](**opts).fit(tiny).reconstruct()["sst"]
    assert whole.attrs["normalisation"] == "training"
    ocean = np.isfinite(tiny.values).any(0)
    for sl in (slice(5, 6), slice(3, 6)):
        window = tiny.isel(time=sl)
        got = METHODS["unet"](**opts).fit(window).reconstruct()["sst"]
        assert got.attrs["normalisation"] == "training"
        np.testing.assert_allclose(got.values, whole.isel(time=sl).values, atol=1e-5)
        assert np.isfinite(got.values[:, ocean]).all() and np.isnan(got.values[:, ~ocean]).all()
        assert (~np.isfinite(window.values).any(0) & ocean).any()  # pixels this window never observes
    # the input's own statistics: what it was, on request (and a single day cannot have them)
    own = METHODS["unet"](**opts, normalisation="input").fit(tiny.isel(time=slice(3, 6))).reconstruct()["sst"]
    assert own.attrs["normalisation"] == "input"
    assert np.abs(own.values - whole.isel(time=slice(3, 6)).values)[np.isfinite(own.values)].max() > 1e-3
    with pytest.raises(InputError, match="at least 2 time steps"):
        METHODS["unet"](**opts, normalisation="input").fit(tiny.isel(time=slice(5, 6)))
    # saved again after a fill, the checkpoint keeps its training statistics, not the window's
    again = METHODS["unet"](**opts).fit(tiny.isel(time=slice(3, 6))).save(tmp_path / "again")
    from oceandl.interp.neural import read_training_stats

    a, b = read_training_stats(path), read_training_stats(again)
    np.testing.assert_array_equal(a["mean"], b["mean"])
    assert a["scale"] == b["scale"] and a["global_mean"] == b["global_mean"]
    np.testing.assert_array_equal(a["coords"]["lat"], tiny["lat"].values)


def test_training_statistics_are_used_only_where_they_fit(tiny, tmp_path):
    """Another grid, other units (said, or only seen in the values), or a checkpoint saved before
    the statistics were kept: ``auto`` falls back to the input's own statistics, ``training``
    refuses with the reason, and a single day that needs them says why they could not be used."""
    import json

    sst = tiny.assign_attrs(units="degree_Celsius")
    path = _fit("unet", sst, steps=2, neighbours=0).save(tmp_path / "ckpt")
    opts = dict(device="cpu", checkpoint=str(path), tile=None)
    cases = {
        # every other row (a block of the training grid, rows 0-23, is filled with its statistics cut to it)
        "grid": (sst.isel(lat=slice(0, None, 2)), r"trained on a 32 x 32 grid, this input is 16 x 32"),
        "coords": (sst.assign_coords(lat=sst["lat"] + 0.5), r"another grid \(lat differs by up to 0.5\)"),
        "units": ((sst * 1.8 + 32).assign_attrs(units="degree_Fahrenheit"),
                  r"trained in units 'degree_Celsius', this input is in 'degree_Fahrenheit'"),
        "values": ((sst + 273.15).drop_attrs(), r"scales away from this input's \(mean difference \+273.1 per pixel"),
    }
    for key, (da, words) in cases.items():
        assert METHODS["unet"](**opts).fit(da).reconstruct()["sst"].attrs["normalisation"] == "input", key
        with pytest.raises(InputError, match=words):
            METHODS["unet"](**opts, normalisation="training").fit(da)
        with pytest.raises(InputError, match="single time step can be filled only with the checkpoint's"):
            METHODS["unet"](**opts).fit(da.isel(time=slice(0, 1)))
    # a day observed only in the warm north of a strong gradient (40 degrees across the grid, 50 scales) is
    # the same quantity: compared per pixel, not by its mean over whatever the clouds left
    north = np.linspace(0, 40, sst.sizes["lat"])[None, :, None]
    steep = sst + north
    steep_model = _fit("unet", steep, steps=1, neighbours=0)
    steep_path = steep_model.save(tmp_path / "steep")
    day = steep.isel(time=slice(0, 1)).where(steep["lat"] > 38)
    assert abs(float(day.mean()) - float(steep.mean())) > 10 * steep_model.scale_
    got = METHODS["unet"](device="cpu", checkpoint=str(steep_path), tile=None).fit(day).reconstruct()["sst"]
    assert got.attrs["normalisation"] == "training"
    # 'degC' is 'degree_Celsius': the same unit, so the statistics are used
    same = sst.assign_attrs(units="degC").isel(time=slice(0, 1))
    assert METHODS["unet"](**opts).fit(same).reconstruct()["sst"].attrs["normalisation"] == "training"
    # an older checkpoint: no statistics file
    (path / "normalisation.safetensors").unlink()
    cfg = json.loads((path / "config.json").read_text())
    del cfg["interpolator"]["normalisation"]
    (path / "config.json").write_text(json.dumps(cfg))
    assert METHODS["unet"](**opts).fit(sst).reconstruct()["sst"].attrs["normalisation"] == "input"
    with pytest.raises(InputError, match="stores no normalisation statistics"):
        METHODS["unet"](**opts, normalisation="training").fit(sst)
    with pytest.raises(InputError, match="normalisation='training' needs a checkpoint"):
        METHODS["unet"](normalisation="training")
    with pytest.raises(InputError, match="normalisation='pixel' must be 'auto', 'training' or 'input'"):
        METHODS["unet"](normalisation="pixel")


def test_a_degc_checkpoint_normalises_a_kelvin_file_with_its_training_statistics(tiny, tmp_path):
    """A degC network given the same grid in kelvin (GHRSST L3/L4) fell back to the file's own
    statistics: a single day was refused ('trained in units ...') and a window's pixels cloudy all
    window stayed NaN. The statistics are shifted by 273.15 (the scale is the same): the kelvin
    fill is the degC one plus 273.15, every ocean pixel filled, and the reverse too."""
    opts = dict(device="cpu", tile=None, precision="fp32")
    for trained, given, offset in (("degree_Celsius", "K", 273.15), ("kelvin", "degC", -273.15)):
        sst = (tiny if offset > 0 else tiny + 273.15).assign_attrs(units=trained)
        path = _fit("unet", sst, steps=2, neighbours=0).save(tmp_path / trained)
        other = (sst + offset).assign_attrs(units=given)
        ocean = np.isfinite(sst.values).any(0)
        for sl in (slice(5, 6), slice(3, 6)):
            ref = METHODS["unet"](**opts, checkpoint=str(path)).fit(sst.isel(time=sl)).reconstruct()["sst"]
            got = METHODS["unet"](**opts, checkpoint=str(path)).fit(other.isel(time=sl)).reconstruct()["sst"]
            assert got.attrs["normalisation"] == "training" and got.attrs["units"] == given
            np.testing.assert_allclose(got.values - offset, ref.values, atol=1e-3)
            assert np.isfinite(got.values[:, ocean]).all()
        assert (~np.isfinite(other.isel(time=slice(3, 6)).values).any(0) & ocean).any()  # never seen in the window
        # saved again, the statistics are in the units it filled, and say so
        again = METHODS["unet"](**opts, checkpoint=str(path)).fit(other.isel(time=slice(3, 6))).save(tmp_path / "again")
        from oceandl.interp.neural import read_training_stats

        a, b = read_training_stats(path), read_training_stats(again)
        assert b["units"] == given and b["scale"] == a["scale"]
        np.testing.assert_allclose(b["mean"] - offset, a["mean"], atol=1e-9)
        shutil.rmtree(tmp_path / "again")


def test_corrupt_training_statistics_are_a_checkpoint_error(tiny, tmp_path):
    path = _fit("unet", tiny, steps=2).save(tmp_path / "ckpt")
    (path / "normalisation.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{nope")
    with pytest.raises(CheckpointError, match="normalisation.safetensors: corrupt normalisation statistics"):
        METHODS["unet"](device="cpu", checkpoint=str(path)).fit(tiny)


def test_gap_filling_training_does_not_decay_biases_or_norm_layers(tiny, monkeypatch):
    """The interpolators' AdamW decayed every parameter, biases and batch-norm scales too, unlike
    the classifier engine: the same rule now (oceandl.utils.decay_groups)."""
    seen = []

    class Recording(torch.optim.AdamW):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            seen.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    m = _fit("unet", tiny, steps=1, weight_decay=0.05)
    (opt,) = seen
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    params = list(m.model_.parameters())
    assert len(decay) == len(params)
    assert {decay[id(p)] for p in params if p.ndim > 1} == {0.05}
    assert {decay[id(p)] for p in params if p.ndim <= 1} == {0.0}
    assert any(p.ndim <= 1 for p in params)


def _grid_variants(da: xr.DataArray) -> dict[str, xr.DataArray]:
    """One field stored four ways: as given (lat ascending, lon -5..5), lat descending, lon 0..360
    (sorted: 0..5 then 355..360, the west half last) and transposed (time, lon, lat)."""
    asc = da.assign_coords(lon=np.linspace(-5, 5, da.sizes["lon"]))
    return {"asc": asc, "desc": asc.isel(lat=slice(None, None, -1)),
            "lon360": asc.assign_coords(lon=asc["lon"] % 360).sortby("lon"),
            "transposed": asc.transpose("time", "lon", "lat")}


def _on_clean_grid(da: xr.DataArray) -> np.ndarray:
    da = da.transpose("time", "lat", "lon")
    return da.assign_coords(lon=(da["lon"] + 180) % 360 - 180).sortby("lat").sortby("lon").values


def test_the_fill_does_not_depend_on_how_the_file_stores_its_grid(tiny, tmp_path):
    """Trained from Python on a file with latitudes descending, the network saw its position channels
    mirrored and other patches, and its checkpoint's statistics (saved in the file's order) were taken
    for another grid by the CLI and --chunks (which sort the grid): the same file was filled 0.66 degC
    apart from scratch and 0.72 degC apart with one checkpoint (U-Net, 20 steps, synthetic SST
    30 x 32 x 32), and a short window was normalised by its own statistics. Longitudes 0..360 were
    another grid too. Everything now runs on the clean grid, as open_field gives it."""
    from oceandl.interp.chunked import interpolate_chunked

    variants = _grid_variants(tiny)
    opts = {"steps": 3, "precision": "fp32", "tile": None, "neighbours": 0}  # no edge days: a window is its days
    fills = {k: _on_clean_grid(_fit("unet", v, **opts).reconstruct()["sst"]) for k, v in variants.items()}
    for k, got in fills.items():
        np.testing.assert_allclose(got, fills["asc"], atol=1e-5, err_msg=k)
    window = slice(3, 6)  # a short window: normalised with the checkpoint's statistics or not at all alike
    for trained in ("desc", "lon360"):
        path = _fit("unet", variants[trained], **opts).save(tmp_path / trained)
        ref = None
        for k, v in variants.items():
            out = METHODS["unet"](device="cpu", checkpoint=str(path), precision="fp32", tile=None) \
                .fit(v.isel(time=window)).reconstruct()["sst"]
            assert out.attrs["normalisation"] == "training", (trained, k)
            ref = _on_clean_grid(out) if ref is None else ref
            np.testing.assert_allclose(_on_clean_grid(out), ref, atol=1e-5, err_msg=f"{trained} {k}")
        np.testing.assert_allclose(ref, fills["asc"][window], atol=1e-5)  # the same network, retrained
        res = interpolate_chunked(variants["desc"].isel(time=window), tmp_path / f"{trained}.nc", "unet",
                                  chunks="time=-1,lat=16,lon=16", checkpoint=str(path), precision="fp32")
        with xr.open_dataset(res.path) as ds:
            np.testing.assert_allclose(_on_clean_grid(ds["sst"]), ref, atol=1e-5)


# ------------------------------------------------------------------ sigma calibration (calibrate)
@pytest.mark.parametrize("options, words", [
    ({"calibrate": True}, "needs nll=True"), ({"calibrate": "yes", "nll": True}, "calibrate"),
    ({"nll": True, "calibration_fraction": 0}, "calibration_fraction"),
    ({"nll": True, "calibration_fraction": 0.5}, "calibration_fraction"),
    ({"nll": True, "calibration_fraction": True}, "calibration_fraction"),
])
def test_calibration_options_are_checked(options, words):
    with pytest.raises(InputError, match=words):
        METHODS["unet"](**options)
    METHODS["unet"](calibrate=False)  # explicit off without nll is fine
    METHODS["unet"](nll=True, calibrate=True, calibration_fraction=0.2)


@pytest.fixture(scope="module")
def calibrated():
    """An nll U-Net made overconfident (its sigma shrunk 2.5x, as a network that fits its own pixels
    gives at the default 600 steps on the demo cube; too slow for a test), then calibrated."""
    da = _cube(24, 32, 32, 0.5, seed=4)
    held = _withhold(da, 0.15, seed=5)
    own = NeuralInterpolator._predict_tiles
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(NeuralInterpolator, "_predict_tiles", lambda self: (lambda m, s: (m, s / 2.5))(*own(self)))
        model = _fit("unet", da, withheld=held, seed=1, nll=True, steps=40, tile=None, lr=5e-3)
        return da, held, model, model.reconstruct()


def _z(ds, da, held, scale=1.0):
    err = ds["sst"].values[held] - da.values[held]
    return err / (ds["sigma"].values[held] / scale)


def test_calibration_improves_the_coverage_of_an_overconfident_sigma(calibrated):
    da, held, model, ds = calibrated
    scale = ds["sigma"].attrs["calibration_scale"]
    assert scale == model.sigma_calibration_ > 1.0
    assert "held out of training" in ds["sigma"].attrs["calibration"]
    assert json.loads(ds.attrs["options"])["calibrate"] is None  # the default, recorded (on with nll)
    # training and the calibration never saw the scored pixels, and the fill took every observation
    assert model.calibration_info_["n_used"] >= 200
    assert model._mp[model._cfg["neighbours"]:][:len(da)].sum() == model.obs_.sum()
    z_raw, z_cal = _z(ds, da, held, scale), _z(ds, da, held)
    within_raw, within_cal = np.mean(np.abs(z_raw) <= 1), np.mean(np.abs(z_cal) <= 1)
    assert within_raw < 0.60  # overconfident: a Gaussian gives 0.683
    assert abs(within_cal - 0.683) < abs(within_raw - 0.683) - 0.05
    assert abs(np.sqrt(np.mean(z_cal ** 2)) - 1) < abs(np.sqrt(np.mean(z_raw ** 2)) - 1)


def test_the_calibration_scale_is_saved_and_applied_on_load(calibrated, tmp_path):
    da, _, model, ds = calibrated
    scale = ds["sigma"].attrs["calibration_scale"]
    path = model.save(tmp_path / "cal")
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["interpolator"]["sigma_calibration"] == pytest.approx(scale)
    loaded = METHODS["unet"](device="cpu", checkpoint=str(path), tile=None).fit(da).reconstruct()
    # the same scale on the same network (unshrunk here): the network's sigma times the recorded scale
    assert loaded["sigma"].attrs["calibration_scale"] == pytest.approx(scale)
    assert "from checkpoint" in loaded["sigma"].attrs["calibration"]
    # an old checkpoint (no key): the same network's sigma, uncalibrated (scale 1)
    cfg["interpolator"].pop("sigma_calibration")
    cfg["interpolator"].pop("sigma_calibration_text", None)
    (path / "config.json").write_text(json.dumps(cfg))
    old = METHODS["unet"](device="cpu", checkpoint=str(path), tile=None).fit(da).reconstruct()
    assert old["sigma"].attrs["calibration_scale"] == 1.0 and "without a sigma calibration" in \
        old["sigma"].attrs["calibration"]
    ocean = np.isfinite(old["sigma"].values)
    np.testing.assert_allclose(loaded["sigma"].values[ocean], scale * old["sigma"].values[ocean], rtol=1e-5)
    np.testing.assert_array_equal(loaded["sst"].values, old["sst"].values)
    # training options are refused with a checkpoint, as the others are
    with pytest.raises(InputError, match="calibrate"):
        METHODS["unet"](checkpoint=str(path), calibrate=False)


def test_calibrate_false_leaves_sigma_as_the_network_gives_it(tiny):
    model = _fit("resae", tiny, nll=True, steps=3, calibrate=False)
    ds = model.reconstruct()
    assert ds["sigma"].attrs["calibration_scale"] == 1.0
    assert ds["sigma"].attrs["calibration"] == "none (calibrate=False)"
    assert model._mp.sum() == np.isfinite(tiny.values).sum()  # nothing held out of training


def test_too_few_held_out_pixels_leave_sigma_uncalibrated_with_a_warning():
    da = _cube(6, 16, 16, 0.4, seed=2)
    with pytest.warns(UserWarning, match="sigma is not calibrated"):
        model = _fit("unet", da, nll=True, steps=2, patch=16, calibration_fraction=0.05)
    assert model.sigma_calibration_ == 1.0
    assert model.reconstruct()["sigma"].attrs["calibration_scale"] == 1.0
