"""Neural gap filling (DINCAE-style), trained self-supervised on the gappy cube itself.

Each time step ``t`` is filled by a fully convolutional network whose input channels are

* the normalised anomaly times the observation mask, and the mask, for day ``t`` and (with
  ``neighbours=n``) for days ``t-n .. t+n`` (zeros beyond the ends of the series);
* the grid position: row and column scaled to [-1, 1] (``latlon=True``), counted on the grid as
  :func:`oceandl.io.open_field` gives it (latitude ascending, longitudes in one convention), whatever
  the order the input stores it in: Python, the CLI and ``--chunks`` fill one file alike;
* the season: cos and sin of the day of year (``seasonal=True`` and the time coordinate is a date);
* auxiliary variables given to ``fit(da, aux=...)`` (covariates on the same days and grid: a
  passive-microwave SST that sees through clouds, the wind, chlorophyll), as in DINCAE 2: each
  normalised by its mean and std and 0 where missing, and its mask, for the same days as the field.

The output is the anomaly (1 channel) or, with ``nll=True``, a mean and a log-variance trained
with the Gaussian negative log-likelihood (Barth et al. 2020), which gives an error ``sigma``.

Normalisation: the anomaly is taken from a per-pixel mean and divided by one global scale. A
network trained here uses the input's own; a checkpoint stores those of its training data
(``normalisation.safetensors``) and, with ``normalisation="auto"`` (the default), fills any
input on the same grid with them: a short window (even a single day) is then normalised as the
network was trained, and pixels it never observes are filled too (kelvin against degC: shifted by
273.15); a block of the training grid (a box of it) takes them cut to its pixels, with the
training grid's positions there. On another grid, or with ``normalisation="input"``, each input is
normalised by its own statistics.

Training (no clean truth needed): at each step a batch of (day, patch) samples is drawn and the
cloud mask of another random day is laid over each day's observations (mask transfer); the loss is
taken on the observed pixels that this hid (plus ``visible_weight`` times the loss on the pixels
still visible). Pixels withheld by the caller are never seen. The cube goes to the network's device
once (when it fits in half the free memory) and patches are cut there by tensor gathers, so the GPU
is not fed by a per-step host loop. Inference runs over overlapping
tiles blended with Hann weights, so any grid size works and the memory of one forward pass does not
grow with the grid.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from oceandl.errors import CheckpointError, InputError, OceanDLError, one_line, warn
from oceandl.units import _UNIT_ALIASES, _unit, kelvin_offset  # noqa: F401  (imported from here by the other modules)
from oceandl.utils import LR_RULE, valid_lr

from .base import (SIGMA_CLIP, SIGMA_MIN_POINTS, Interpolator, aux_anomaly, _clean_grid, calibration_z, clean_axes, step_text,
                   aux_naming_hint, refuse_undated, static_stats, time_steps, unordered_step)

if TYPE_CHECKING:  # torch is imported on first use: `import oceandl.interp` stays light
    import torch
    from torch import nn

__all__ = ["NeuralInterpolator", "ConvAEInterpolator", "UNetInterpolator", "ResAEInterpolator",
           "SMPUnetInterpolator", "tile_starts", "blend_window", "hann_ramp", "read_training_stats",
           "fitting_training_stats", "check_box_grid"]

_LOGVAR_RANGE = (-12.0, 6.0)  # clamp of the predicted log-variance (normalised units) for stability


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start indices of tiles of length ``min(tile, n)`` covering ``range(n)`` with >= ``overlap`` shared."""
    if n <= tile:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, n - tile, step))
    return starts + [n - tile]


def hann_ramp(n: int) -> np.ndarray:
    """sin^2 weights (n,) rising from ~0 to ~1 at half-pixel offsets (never exactly 0 or 1)."""
    return np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2


def blend_window(n: int, overlap: int) -> np.ndarray:
    """1-D blending weights (n,): a Hann (sin^2) ramp over ``overlap`` pixels at each end, 1 inside.

    The ramp never reaches 0 (half-pixel offset) so a grid edge covered by one tile keeps a weight.
    """
    w = np.ones(n, dtype=np.float64)
    r = min(overlap, n // 2)
    if r > 0:
        ramp = hann_ramp(r)
        w[:r] = ramp
        w[n - r:] = np.minimum(w[n - r:], ramp[::-1])
    return w


def _same_path(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same place (resolved; neither needs to exist)."""
    from pathlib import Path

    return Path(a).resolve() == Path(b).resolve()


# Options a checkpoint fixes (its inputs) and options only training reads: with checkpoint= the
# first must agree with it and the second must not be given.
_FROM_CHECKPOINT = ("neighbours", "nll", "seasonal", "latlon")
STATS = "normalisation.safetensors"  # a checkpoint's training statistics (per-pixel mean, grid coordinates)
AUX_MEAN = "aux_mean."  # + name: an auxiliary variable's per-pixel mean in STATS
SEA = "land_sea_mask"  # in STATS: the land-sea mask (1 = ocean) the network was trained with, if any
# the temperature units' spellings and their parser live in oceandl.units (light: plotting reads them too)
_SHIFT_LIMIT = 10.0  # an input whose mean is further than this many scales from the training mean is another unit
_TRAINING_ONLY = ("patch", "steps", "epochs", "batch_size", "lr", "weight_decay", "visible_weight",
                  "model_options", "fused", "calibrate", "calibration_fraction", "checkpoint_every", "save_to",
                  "resume")
#: options that say where a run writes its states and goes on from, not how it trains: a resumed run may
#: give them otherwise (the init checkpoint it started from is read from its folder, not given again)
_FREE_ON_RESUME = ("resume", "save_to", "checkpoint_every", "init")
#: checkpoint_every=None: a training state every tenth of the steps, and at least this often (seconds)
_STATE_SECONDS = 600.0


class _TrainingStopped(Exception):
    """Raised by the test hook ``_stop_after_step``: training ended there as a killed run would,
    its state saved."""


class _GivesSigma:
    """``gives_sigma`` per instance (``nll`` option, or the checkpoint's); False on the class (default)."""

    def __get__(self, obj, objtype=None) -> bool:
        if obj is None:
            return False
        cfg = getattr(obj, "_cfg", None) or obj.options
        return bool(cfg["nll"])


def _unfinished(folder) -> bool:
    """Whether checkpoint ``folder`` holds an unfinished run (``training.finished`` false)."""
    from oceandl.training.checkpoint import read_config

    try:
        training = read_config(folder).get("training")
    except (OceanDLError, OSError, ValueError):
        return False
    return isinstance(training, dict) and training.get("finished") is False


class NeuralInterpolator(Interpolator):
    """Base class of the neural gap-filling methods (see the module docstring).

    Options
    -------
    neighbours : int
        Days on each side given as extra input channels (0: the day alone).
    nll : bool
        Predict mean and log-variance with a Gaussian NLL loss; the output then has ``sigma``.
    seasonal, latlon : bool
        Add day-of-year cos/sin (only when the time coordinate holds dates) and position channels.
    patch : int
        Side of the random training patches (the whole grid when smaller).
    steps, epochs : int or None
        Optimiser steps; ``epochs`` instead counts passes over all (day, patch) positions (give
        one, not both). Default (both None): the class's ``default_steps``.
    batch_size, lr, weight_decay : training batch, AdamW learning rate (cosine-decayed) and decay
        (on the weights; biases and normalisation layers are not decayed).
    visible_weight : float
        Weight of the loss on pixels still visible to the network (the hidden ones weigh 1).
    tile, overlap : int
        Inference tile side (None: the whole grid in one pass) and overlap between tiles. Tiles
        change the field where the network's view is cut, most along tile borders: for a U-Net
        (width 8, depth 3, 150 steps) on 30 days of a 64 x 64 synthetic cube, the gap RMSE against
        the truth was 1.3721 degC untiled, 1.3723 with tile=32, overlap=8 (largest change of a gap
        pixel 0.16 degC; 0.05 with tile=48, overlap=16) and 1.3783 with tile=8, overlap=2 (0.94).
    infer_batch : int
        Time steps per forward pass at inference.
    model_options : dict or None
        Options of the network (see ``oceandl.models.model_options(model_name)``), over the
        class's ``default_model_options``.
    checkpoint : str or None
        A folder written by :meth:`save`: load that network instead of training one (its
        ``neighbours``, ``nll``, ``seasonal``, ``latlon`` and model options are used: giving one of
        them with another value, or a training option such as ``epochs`` or ``lr``, is an error).
    precision : "auto", "fp32" or "bf16"
        Arithmetic of the network's forward pass (training and inference; weights, optimiser and
        loss stay float32). ``"auto"``: bf16 autocast where the device computes bf16 natively
        (:func:`oceandl.utils.native_bf16`: Ampere+ GPUs, CPUs with AVX512-BF16 or AMX), else fp32.
    channels_last : bool
        Channels-last (NHWC) memory layout, the one oneDNN and tensor cores prefer. Measured on a
        2-core CPU, U-Net (width 16): training 1.27x and inference 1.67x faster in fp32; with bf16,
        2.26x and 3.9x against fp32 in the default layout.
    fused : bool
        AdamW's step as one fused kernel where torch has it (CPU, CUDA):
        :func:`oceandl.utils.fused_optimizer_kwargs`; the same arithmetic to float rounding.
    normalisation : "auto", "training" or "input"
        With ``checkpoint``: the per-pixel mean and scale to normalise the input with. ``"training"``:
        the checkpoint's (its training data's; the input must be on the same grid, in the same
        units or in kelvin against degC, converted; a single time step is then enough, and pixels the input never observes are filled);
        ``"input"``: the input's own; ``"auto"``: the checkpoint's when it has them and they fit
        the input, else the input's. Without a checkpoint the input's are always used. The
        output's ``normalisation`` attribute says which.
    init : str or None
        A folder written by :meth:`save` to start training from (fine-tuning): its weights, model
        options and inputs (``neighbours``, ``nll``, ``seasonal``, ``latlon``) are taken, then the
        network is trained on this input with the training options given here, normalised by the
        input's own statistics. The output's ``init_checkpoint`` and ``init_checkpoint_sha256``
        attributes (and the saved checkpoint's ``training.init`` and ``training.options.init``) name
        the starting weights, by their absolute path.
    calibrate : bool or None
        Post-hoc calibration of ``sigma`` on held-out observations (None, the default: on when
        ``nll`` is; True without ``nll`` is an error). Before training, ``calibration_fraction`` of
        the observations (never the withheld ones) are hidden from the network by cloud-mask
        transfer (seeded by ``seed``); after training they are predicted, still hidden, and sigma is
        multiplied by the rms of their ``err / sigma`` (outliers beyond 5 robust stds,
        1.4826 x median ``|err / sigma|``, left out; with fewer than 200 such pixels the scale is 1,
        warned). The fill itself takes every observation as input. The scale is saved in the
        checkpoint (``interpolator.sigma_calibration``) and applied when it is loaded; ``sigma``'s
        ``calibration_scale`` and ``calibration`` attributes say what was applied. Sigma learnt on
        the pixels the network fits is overconfident: on the demo cube (600 steps) 41-48 % of
        withheld errors fell within 1 sigma (a Gaussian: 68 %); docs/benchmarks.md measures the
        calibration.
    calibration_fraction : float
        Share of the observations held out for ``calibrate``, in (0, 0.5); default 0.05.
    save_to : str or None
        The checkpoint folder this training writes (what :meth:`save` is then given): its resumable
        state is saved there every ``checkpoint_every`` steps and after the last one, as a
        checkpoint marked unfinished (``training.finished`` false; weights, optimiser, scheduler,
        step, losses so far and the random states), each write atomic (a kill mid-write leaves the
        previous state). The folder must not exist yet; ``save(save_to)`` replaces the unfinished
        checkpoint with the finished one (no training state kept).
    checkpoint_every : int or None
        Steps between two saved training states (with ``save_to`` or ``resume``). None (the
        default): every tenth of the steps, and at least every 10 minutes of training.
    resume : str or None
        The folder of an interrupted run (``save_to``) to go on from: its network, optimiser,
        scheduler and random states are loaded and training goes on from the step it saved, giving
        the weights the run would have had uninterrupted (bit-identical on the CPU); the states and
        :meth:`save`'s checkpoint go to the same folder. The options (but ``checkpoint_every``),
        the seed and the input must be those it was started with; a run started with ``init``
        keeps its record (do not give ``init`` again). The held-out pixels of ``calibrate`` are
        drawn from the seed, so the same ones are held out and sigma is calibrated at the end as
        usual. A finished checkpoint has nothing to resume (refused).
    """

    model_name: ClassVar[str] = ""
    libraries: ClassVar[tuple[str, ...]] = ("torch",)  # the network computes the fill
    takes_aux: ClassVar[bool] = True  # covariates are more input channels
    fills_unseen: ClassVar[bool] = True  # a pixel never observed is filled from its neighbours (with a mask)
    #: a pixel seen once is centred on its neighbours' means, not the global mean (gap RMSE at such pixels,
    #: unet 100 steps, synthetic_sst(24, 12, 12, cloud 0.8, seed 1): 3.2 -> 0.75 degC; all gaps 1.9 -> 1.23)
    _rare_neighbours: ClassVar[bool] = True
    default_model_options: ClassVar[dict[str, Any]] = {}
    default_steps: ClassVar[int] = 600
    multiple: ClassVar[int] = 1  # the network needs H, W divisible by this (padded here)
    option_defaults: ClassVar[dict[str, Any]] = {
        "neighbours": 1, "nll": False, "seasonal": True, "latlon": True,
        "patch": 64, "steps": None, "epochs": None, "batch_size": 8, "lr": 2e-3, "weight_decay": 1e-4,
        "visible_weight": 0.1, "tile": 128, "overlap": 32, "infer_batch": 8,
        "model_options": None, "checkpoint": None, "precision": "auto", "channels_last": True,
        "fused": True, "normalisation": "auto", "init": None, "calibrate": None, "calibration_fraction": 0.05,
        "save_to": None, "checkpoint_every": None, "resume": None,
    }
    #: test hook: end training after this step (its state saved), as a run killed there would
    _stop_after_step: int | None = None
    #: the auxiliary variables' statistics and values (:meth:`_setup_aux`); none until a fit sets them
    _aux_stats: list = []
    _aux_means: list = []
    _aux_inputs: list = []
    #: name -> (per-pixel mean (lat, lon) in the covariate's units, {name, units, scale, global_mean}):
    #: the covariates normalised with these (the whole cube's, set by interpolate_chunked) in _setup_aux
    _given_aux: dict | None = None
    #: replace an existing checkpoint at ``save_to`` (``train interpolator --overwrite``); else it is refused
    _save_to_overwrite: bool = False

    # ------------------------------------------------------------------ options
    _no_transform: ClassVar[str] = ("a network fills another field through its checkpoint: save() it, then fit the new "
                                     "field with checkpoint=PATH (oceandl interpolate --model)")

    def _check_options(self) -> None:
        o = self.options

        def need(key: str, ok: bool, what: str) -> None:
            if not ok:
                raise InputError(f"method {self.name!r}: option {key}={o[key]!r} {what}")

        def is_int(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        need("neighbours", is_int(o["neighbours"]) and 0 <= o["neighbours"] <= 10, "must be an integer in 0..10")
        for key in ("patch", "batch_size", "infer_batch"):
            need(key, is_int(o[key]) and o[key] >= 1, "must be a positive integer")
        for key in ("steps", "epochs"):
            need(key, o[key] is None or (is_int(o[key]) and o[key] >= 0), "must be an integer >= 0, or None for the method's default")
        need("tile", o["tile"] is None or (is_int(o["tile"]) and o["tile"] >= 8), "must be an integer >= 8, or None for the whole grid in one pass")
        need("overlap", is_int(o["overlap"]) and o["overlap"] >= 0
             and (o["tile"] is None or o["overlap"] < o["tile"]), "must be an integer in [0, tile)")
        for key in ("weight_decay", "visible_weight"):
            need(key, isinstance(o[key], (int, float)) and not isinstance(o[key], bool) and o[key] >= 0,
                 "must be a number >= 0")
        # inf passed: the steps ran on NaN weights, then "training diverged" (exit 1); nan was "a number
        # >= 0": one rule and one wording with the classifier's TrainConfig
        need("lr", valid_lr(o["lr"]), LR_RULE)
        need("model_options", o["model_options"] is None or isinstance(o["model_options"], dict), "must be a dict")
        for key in ("nll", "seasonal", "latlon", "channels_last", "fused"):
            need(key, isinstance(o[key], (bool, np.bool_)), "must be True or False")
        need("calibrate", o["calibrate"] is None or isinstance(o["calibrate"], (bool, np.bool_)),
             "must be True or False, or None for on when nll is")
        frac = o["calibration_fraction"]
        need("calibration_fraction", isinstance(frac, (int, float, np.integer, np.floating))
             and not isinstance(frac, (bool, np.bool_)) and 0 < frac < 0.5, "must be a number in (0, 0.5)")
        need("precision", o["precision"] in ("auto", "fp32", "bf16"), "must be 'auto', 'fp32' or 'bf16'")
        need("normalisation", o["normalisation"] in ("auto", "training", "input"),
             "must be 'auto', 'training' or 'input'")
        need("normalisation", o["normalisation"] != "training" or o["checkpoint"] is not None,
             "needs a checkpoint (a network trained here is normalised with its input's statistics)")
        if o["model_options"]:
            from oceandl.models import model_options

            valid = model_options(self.model_name)
            bad = [k for k in o["model_options"] if k not in valid]
            need("model_options", not bad, f"has unknown key {bad[:1]}; valid: {', '.join(valid)}")
        # both were accepted and epochs silently won
        need("epochs", o["steps"] is None or o["epochs"] is None,
             f"and steps={o['steps']!r} are both set: give one (steps counts optimiser steps, epochs passes "
             "over every (day, patch) position)")
        need("init", o["init"] is None or o["checkpoint"] is None,
             f"and checkpoint={o['checkpoint']!r} are both set: give one (checkpoint fills with a trained "
             "network as it is, init trains further from it)")
        need("checkpoint_every", o["checkpoint_every"] is None or (is_int(o["checkpoint_every"])
                                                                 and o["checkpoint_every"] >= 1),
             "must be a positive integer (steps), or None for every tenth of the steps")
        for key, none in (("save_to", "to save no training state"), ("resume", "for a run from the start")):
            need(key, o[key] is None or (isinstance(o[key], (str, os.PathLike)) and str(o[key]).strip() != ""),
                 f"must be a folder path, or None {none}")
        if o["resume"] is not None:
            for key in ("checkpoint", "init"):
                need(key, o[key] is None, f"cannot be given with resume={str(o['resume'])!r}: the run goes on from "
                     "the weights saved in its folder (the init checkpoint it started from is recorded there)")
            need("save_to", o["save_to"] is None or _same_path(o["save_to"], o["resume"]),
                 f"differs from resume={str(o['resume'])!r}: a resumed run writes to the folder it goes on from")
            meta = self._check_resume()
        start, what = (o["checkpoint"], "checkpoint") if o["init"] is None else (o["init"], "init checkpoint")
        if start is not None:
            # the JSON alone, before any input is read: a wrong checkpoint fails first, not after the fill's set-up
            meta = self._checkpoint_meta(start)
            if o["checkpoint"] is not None:
                # options a loaded network cannot honour were ignored without a word (--model with --epochs)
                for key in sorted(self._given_options & set(_TRAINING_ONLY)):
                    need(key, False, f"has no effect with checkpoint {start} (the network is loaded, not "
                                     "trained): drop it, or train without a checkpoint")
            else:  # init: trained on, but the network is the checkpoint's
                need("model_options", "model_options" not in self._given_options or not o["model_options"],
                     f"cannot change the network of init checkpoint {start}: drop it")
            for key in sorted(self._given_options & set(_FROM_CHECKPOINT)):
                need(key, key not in meta or bool(o[key] == meta[key]),
                     f"differs from {what} {start}, trained with {key}={meta.get(key)!r} "
                     "(the network keeps the inputs it was trained with): drop it")
        nll = (meta["nll"] if (start is not None and o["init"] is not None) or o["resume"] is not None
               else o["nll"])
        need("calibrate", not (o["calibrate"] is True or o["calibrate"] is np.True_) or nll,
             "needs nll=True (it calibrates the error sigma that only an nll network gives)")

    def _checkpoint_meta(self, path) -> dict:
        """The ``interpolator`` metadata of checkpoint ``path``; a :class:`CheckpointError` unless it
        is an interpolation checkpoint of this method."""
        from oceandl.training.checkpoint import CONFIG, _check_folder, read_config

        config = read_config(path)
        if config.get("task") == "interpolation-fitted":  # a saved climatology/eof/dineof: no network to load
            method = (config.get("interpolator") or {}).get("method")
            raise CheckpointError(f"{path}: a saved {method} fit, not a network's checkpoint: it fills other files "
                                  f"with --fit-on {path} (fit_on= in Python); a network is trained with `oceandl "
                                  "train interpolator --method unet` (or convae, resae, smp_unet)")
        if config.get("task") != "interpolation":
            raise CheckpointError(f"{path}: a checkpoint of task {config.get('task')!r}, but task 'interpolation' "
                                  "is needed (train one with `oceandl train interpolator`)")
        meta = config.get("interpolator") or {}
        if meta.get("method") != self.name:
            raise CheckpointError(f"{path}: a checkpoint of method {meta.get('method')!r}, not {self.name!r}")
        # an edited config.json (neighbours "2" or -3, a missing key, seasonal "no") failed later as a bare
        # TypeError/ValueError/KeyError (exit 1), or a string flag was taken as true: name the file and key
        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        checks = {"neighbours": (lambda v: is_int(v) and 0 <= v <= 10, "an integer in 0..10"),
                  "in_channels": (lambda v: is_int(v) and v >= 1, "a positive integer"),
                  **{k: (lambda v: isinstance(v, bool), "true or false") for k in ("nll", "seasonal", "latlon")}}
        for key, (ok, what) in checks.items():
            if key not in meta or not ok(meta[key]):
                got = f"got {meta[key]!r:.60}" if key in meta else "missing"
                raise CheckpointError(f"{_check_folder(path) / CONFIG}: interpolator.{key} must be {what}, {got}")
        aux = meta.get("aux", [])

        def aux_ok(st) -> bool:
            num = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))  # noqa: E731
            return (isinstance(st, dict) and isinstance(st.get("name"), str) and st["name"] != ""
                    and num(st.get("global_mean")) and num(st.get("scale")) and st["scale"] > 0
                    and (st.get("units") is None or isinstance(st.get("units"), str))
                    and isinstance(st.get("static", False), bool))

        if not isinstance(aux, list) or not all(aux_ok(st) for st in aux) \
                or len({st["name"] for st in aux}) != len(aux):
            raise CheckpointError(f"{_check_folder(path) / CONFIG}: interpolator.aux must be a list of "
                                  f"{{name, units, scale, global_mean[, static]}} with distinct names, got {aux!r:.60}")
        cal = meta.get("sigma_calibration", 1.0)  # absent: saved before calibration (scale 1)
        if not isinstance(cal, (int, float)) or isinstance(cal, bool) or not math.isfinite(cal) or cal <= 0:
            raise CheckpointError(f"{_check_folder(path) / CONFIG}: interpolator.sigma_calibration must be a "
                                  f"finite number > 0, got {cal!r:.60}")
        return meta

    def _check_resume(self) -> dict:
        """The ``interpolator`` metadata of the interrupted run in folder ``resume``; an
        :class:`InputError` when there is nothing to resume there or it was started otherwise.

        Read before any input: the options and the seed are compared here (like the classifier
        engine's ``_check_same_run``), the input when it is read (:meth:`_resume_network`)."""
        from pathlib import Path

        from oceandl.training.checkpoint import CONFIG, STATE, read_config

        from .base import _json_default

        folder = Path(self.options["resume"])
        if not folder.is_dir():
            raise InputError(f"{folder}: nothing to resume ({'not a folder' if folder.exists() else 'no such folder'}"
                             "); start the run without resume")
        if not (folder / CONFIG).is_file():
            raise InputError(f"{folder}: nothing to resume (no {CONFIG}: not the folder of an interrupted training run)")
        meta = self._checkpoint_meta(folder)  # an interpolation checkpoint of this method
        training = read_config(folder).get("training")
        training = training if isinstance(training, dict) else {}
        if training.get("finished") is not False:  # saved by save(), or before runs could be resumed
            steps = training.get("train_steps")
            raise InputError(f"{folder}: a finished checkpoint{f' ({steps} steps)' if steps is not None else ''}, "
                             f"nothing to resume: fill with it (--model {folder}, checkpoint=), fine-tune it "
                             "(--init), or train again with --overwrite")
        if not all((folder / f"{STATE}{ext}").is_file() for ext in (".json", ".safetensors")):
            raise InputError(f"{folder}: nothing to resume (no training state in that folder)")
        saved = training.get("options") if isinstance(training.get("options"), dict) else {}
        new = json.loads(json.dumps(self.options, default=_json_default))  # tuples as lists, as saved
        pairs = [("seed", self.seed, training.get("seed"))]
        pairs += [(k, v, saved[k]) for k, v in new.items() if k not in _FREE_ON_RESUME and k in saved]
        for key, value, before in pairs:
            if value != before:
                raise InputError(f"{folder}: resumed with {key}={value!r}, but the run in that folder was started "
                                 f"with {key}={before!r} (resume with the same options, or start over with "
                                 "--overwrite)")
        return meta

    gives_sigma = _GivesSigma()  # type: ignore[assignment]
    #: warn about irregular time steps; off on the blocks of interpolate_chunked, which warns once for the cube
    _warn_time_steps: bool = True

    # ------------------------------------------------------------------ normalisation
    def _given_normalisation(self, da, values: np.ndarray, label: str) -> tuple[np.ndarray, float, float] | None:
        """The checkpoint's training statistics when ``normalisation`` asks for them and they fit
        ``da`` (same grid, same units), else None (the input's own). Sets ``normalisation_``."""
        o = self.options
        self.normalisation_ = "input"
        self._training_stats = None
        self._checkpoint_sea = None
        self._box_pos = None  # a box of the training grid: the position channels' values there (da's order)
        if getattr(self, "_given_stats", None) is not None:  # checked on the whole grid (chunked filling)
            self.normalisation_ = "training"
            return self._given_stats
        if o["checkpoint"] is None or o["normalisation"] == "input":
            return None
        observed = np.isfinite(values)
        stats, problem = fitting_training_stats(o["checkpoint"], da, observed.sum(axis=0),
                                                values.sum(axis=0, where=observed, dtype=np.float64))
        if problem is None:
            self._training_stats = stats
            self._box_pos = stats.get("pos")
            self.normalisation_ = "training"
            if stats.get("sea") is not None:  # applied by fit() when no mask is given (same grid: the stats fit)
                self._checkpoint_sea = (stats["sea"], f"the mask checkpoint {o['checkpoint']} was trained with")
            return stats["mean"], stats["global_mean"], stats["scale"]
        if o["normalisation"] == "training":
            raise InputError(f"{label}: normalisation='training': checkpoint {o['checkpoint']} {problem}")
        if da.sizes[da.dims[0]] < 2:  # the input's own statistics need 2 time steps: say why they were needed
            raise InputError(f"{label}: a single time step can be filled only with the checkpoint's training "
                             f"statistics, but checkpoint {o['checkpoint']} {problem}")
        return None

    # ------------------------------------------------------------------ inputs
    def _setup_inputs(self, x: np.ndarray, obs: np.ndarray) -> None:
        """Pad the cube in time and prepare the static/seasonal channels."""
        n = self._cfg["neighbours"]
        t, h, w = x.shape
        if n or self._cfg["seasonal"]:
            what = " and ".join(k for k, on in ((f"the neighbours={n} channels", n),
                                               ("the seasonal channels", self._cfg["seasonal"])) if on)
            refuse_undated(self.da_, f"method {self.name!r}", what)
        if n:
            self._check_time_order()
        self._xp = np.zeros((t + 2 * n, h, w), np.float32)
        self._mp = np.zeros((t + 2 * n, h, w), bool)
        self._xp[n:n + t] = x
        self._mp[n:n + t] = obs
        self._ap = self._amp = None
        if self._aux_stats:  # (time, variable, lat, lon): a day's variables are gathered together
            a = len(self._aux_stats)
            self._ap = np.zeros((t + 2 * n, a, h, w), np.float32)
            self._amp = np.zeros((t + 2 * n, a, h, w), bool)
            for k, (values, st) in enumerate(zip(self._aux_inputs, self._aux_stats)):  # noqa: B007
                seen = np.isfinite(values)
                self._amp[n:n + t, k] = seen
                np.subtract(values, self._aux_means[k], out=self._ap[n:n + t, k], where=seen)
                self._ap[n:n + t, k] /= np.float32(st["scale"])
        # Centre first, then the neighbours outward.
        self._offsets = np.array([0] + [s * k for k in range(1, n + 1) for s in (-1, 1)], dtype=np.int64)
        yy, xx = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32),
                             indexing="ij")
        box = getattr(self, "_box_pos", None)
        if box is not None and (box[0].size, box[1].size) == (h, w):
            # a box of the checkpoint's training grid: the positions that grid gives its pixels (clean order)
            yy, xx = np.meshgrid(box[0][self._iy], box[1][self._ix], indexing="ij")
        self._pos = np.stack([yy, xx]) if self._cfg["latlon"] else np.zeros((0, h, w), np.float32)
        doy = self._day_of_year()
        if self._cfg["seasonal"] and doy is None and "trained_seasonal" in self._cfg:
            raise InputError(f"method {self.name!r}: checkpoint {self.options['checkpoint']} was trained with "
                             "seasonal channels but the input's time coordinate holds no dates")
        self._season = (np.stack([np.cos(2 * np.pi * doy / 365.25), np.sin(2 * np.pi * doy / 365.25)], 1)
                        .astype(np.float32) if self._cfg["seasonal"] and doy is not None else None)
        self._cfg["seasonal"] = self._season is not None

    def _check_time_order(self) -> None:
        """Refuse a time coordinate that does not increase: the neighbour channels of day ``t`` are
        the array's steps ``t-n .. t+n``, which are its neighbouring days only in time order."""
        tdim = self.da_.dims[0]
        i = unordered_step(self.da_)
        if i is not None:
            # a shuffled or reversed series was filled from the wrong days' data, without a word
            idx = self.da_.indexes[tdim]
            raise InputError(f"method {self.name!r}: {tdim} is not increasing (step {i}: {idx[i - 1]} then "
                             f"{idx[i]}); the neighbours={self._cfg['neighbours']} channels need the days in "
                             f"order: sort them (da.sortby({str(tdim)!r})) or set neighbours=0")
        steps = time_steps(self.da_) if self._warn_time_steps else None
        if steps is not None and steps.max() > 1.5 * steps.min():
            # a missing day (a file not delivered) makes a 'neighbour' two days away, silently
            warn(f"method {self.name!r}: {tdim} steps are irregular ({step_text(steps.min())} to "
                          f"{step_text(steps.max())}); the neighbours={self._cfg['neighbours']} channels are the "
                          "previous and next steps, not days (reindex to a regular series to fill missing days "
                          "as gaps)", UserWarning)

    def _day_of_year(self) -> np.ndarray | None:
        """Day of year (time,) from the input's time coordinate, or None if it holds no dates.

        On a 360-day calendar (cftime ``360_day``) the days are stretched to a 365.25-day year,
        so that the seasonal channels make one full turn a year, as on every other calendar.
        """
        tdim = self.da_.dims[0]
        if tdim not in self.da_.coords:
            return None
        try:
            doy = np.asarray(self.da_[tdim].dt.dayofyear.values, dtype=np.float64)
        except (TypeError, AttributeError):
            return None
        # day 360 sat 5 days short of a turn, then day 1 jumped 6 days on: the season the network
        # was told slipped by up to 5 days through the year (and the checkpoint moved with it)
        if getattr(self.da_[tdim].dt, "calendar", None) == "360_day":
            doy *= 365.25 / 360.0
        return doy

    def _n_inputs(self) -> int:
        return (2 * (1 + 2 * self._cfg["neighbours"]) * (1 + len(self._aux_stats)) + 2 * self._cfg["latlon"]
                + 2 * self._cfg["seasonal"])

    # ------------------------------------------------------------------ auxiliary variables
    def _setup_aux(self, saved: list[dict] | None, what: str | None, start) -> None:
        """The auxiliary variables' order and normalisation (``_aux_stats``: name, units, scale,
        global_mean; ``_aux_means``: per-pixel means) and their values (``_aux_inputs``), all in
        the clean orientation and in channel order.

        Each variable is normalised as the field is (DINCAE removes each input's temporal mean
        too): minus its per-pixel temporal mean (its global mean where a pixel has fewer than 2
        values), over one global scale, so that a covariate's anomaly lines up with the field's.
        The statistics follow the field's ``normalisation``: the checkpoint's training statistics
        when the field is normalised with them (a short window, a single day), else the input's own.

        ``saved``: the variables of the network loaded (``checkpoint``, ``init``, ``resume``;
        ``what`` names it, ``start`` its folder), or None for a network trained here: a loaded
        network takes the variables it was trained with, by name.
        """
        statics = getattr(self, "aux_static_", None) or [False] * len(self.aux_names_)
        given = dict(zip(self.aux_names_, zip(self.aux_, self.aux_units_)))
        given_static = dict(zip(self.aux_names_, statics))
        if saved is not None:
            names = [st["name"] for st in saved]
            missing = [k for k in names if k not in given]
            extra = [k for k in given if k not in names]
            if missing or extra:
                had = f"auxiliary variables {', '.join(map(repr, names))}" if names else "no auxiliary variable"
                # both said: one covariate for another (--aux sst_true for sst_mw) was told only to give the
                # missing one, then on the next try to drop the other
                fix = " and ".join(([f"give {', '.join(map(repr, missing))} as aux (--aux)"] if missing else [])
                                   + ([f"drop {', '.join(map(repr, extra))}"] if extra else []))
                raise InputError(f"method {self.name!r}: {what} {start} was trained with {had}; {fix}"
                                 f"{aux_naming_hint(missing, extra)}")
        else:
            names = list(given)
        training = getattr(self, "_training_stats", None) if getattr(self, "normalisation_", None) == "training" else None
        theirs_means = (training or {}).get("aux_mean") or {}
        # the whole cube's (interpolate_chunked: the region fitted here is a part of it, already checked)
        whole = getattr(self, "_given_aux", None) or {}
        self._aux_stats, self._aux_means, self._aux_inputs = [], [], []
        for i, name in enumerate(names):
            values, units = given[name]
            values = self._clean(values)
            static = self._aux_is_static(name, values, given_static[name], None if saved is None else saved[i],
                                         what, start)
            if static and name not in whole:
                st, mean, values = self._static_aux_stats(name, values, units,
                                                          None if saved is None else saved[i], what, start)
            elif name in whole:
                mean, st = whole[name]
                mean = self._clean(np.asarray(mean)[None])[0].astype(np.float32)
                st = dict(st)
            elif training is not None and name in theirs_means:
                st = dict(saved[i])
                a, b = _unit(st.get("units")), _unit(units)
                offset = kelvin_offset(b, a)
                if offset is not None:  # as the field is: a kelvin file (GHRSST, AMSR2) for a degC network
                    values = values + np.float32(offset)
                elif a is not None and b is not None and a != b:
                    raise InputError(f"method {self.name!r}: aux {name!r} is in {units!r}, {what} {start} was "
                                     f"trained with it in {st['units']!r} (convert it first)")
                mean = self._clean(np.asarray(theirs_means[name])[None])[0].astype(np.float32)
                # as the field's statistics are checked (_stats_mismatch): a covariate in kelvin without
                # units (or said wrongly) went in some 240 training scales off, and the fill with it
                seen = np.isfinite(values)
                shift = float(np.mean(values[seen] - mean[np.nonzero(seen)[1:]], dtype=np.float64))
                if abs(shift) > _SHIFT_LIMIT * st["scale"]:
                    raise InputError(f"method {self.name!r}: aux {name!r}: values {abs(shift) / st['scale']:.0f} "
                                     f"training scales away from those {what} {start} was trained with (mean "
                                     f"difference {shift:+.4g} per pixel: other units?)")
            else:
                _, mean, scale, gmean = aux_anomaly(values)  # the anomaly itself is made in _setup_inputs
                if not scale > 0:
                    # constant in time at every pixel (a depth, a distance to the coast broadcast over the days):
                    # minus its per-pixel mean it was a channel of zeros, taken and saved without a word
                    raise InputError(f"method {self.name!r}: aux {name!r} does not change in time at any pixel: "
                                     "minus its per-pixel mean (as each covariate is normalised) it is 0 everywhere; "
                                     "give a static covariate as a (lat, lon) variable (a static channel)")
                st = {"name": name, "units": units, "scale": scale, "global_mean": gmean}
            self._aux_stats.append(st)
            self._aux_means.append(mean)
            self._aux_inputs.append(values)

    def _aux_is_static(self, name: str, values: np.ndarray, static: bool, saved: dict | None, what, start) -> bool:
        """Whether covariate ``name`` is taken as static: given as a (lat, lon) map, or (a network
        trained with it static) the same on every day given (a single day's fill). Refused when
        the loaded network took it the other way."""
        was = None if saved is None else bool(saved.get("static", False))
        if was and not static and values.shape[0] > 1:
            same = (values == values[:1]) | (np.isnan(values) & np.isnan(values[:1]))
            if not same.all():
                raise InputError(f"method {self.name!r}: aux {name!r} changes in time, {what} {start} was trained "
                                 "with it static (a (lat, lon) map): give that map")
        if was is None:
            return static
        if not was and static:
            raise InputError(f"method {self.name!r}: aux {name!r} is static (a (lat, lon) map), {what} {start} was "
                             "trained with it changing in time: give it on the field's days")
        return was

    def _static_aux_stats(self, name: str, values: np.ndarray, units, saved: dict | None, what,
                          start) -> tuple[dict, np.ndarray, np.ndarray]:
        """A static covariate's statistics, its 'per-pixel mean' and its values (clean orientation).

        Its per-pixel temporal mean would be the map itself and its anomaly 0: it is normalised
        over the map instead, minus its global mean over its global standard deviation (the
        'per-pixel mean' returned is that global mean everywhere, so it is saved and cut like the
        others' means). A network loaded from a checkpoint applies its training values, whatever
        region or period it fills: the network learnt what a depth of 3000 m means, not a
        depth relative to the region filled.
        """
        if saved is not None:
            st = dict(saved)
            a, b = _unit(st.get("units")), _unit(units)
            offset = kelvin_offset(b, a)
            if offset is not None:
                values = values + np.float32(offset)
            elif a is not None and b is not None and a != b:
                raise InputError(f"method {self.name!r}: aux {name!r} is in {units!r}, {what} {start} was "
                                 f"trained with it in {st['units']!r} (convert it first)")
            seen = values[0][np.isfinite(values[0])]
            if not seen.size:
                raise InputError(f"method {self.name!r}: aux {name!r}: all values are NaN")
            shift = float(np.mean(seen, dtype=np.float64)) - st["global_mean"]
            if abs(shift) > _SHIFT_LIMIT * st["scale"]:
                raise InputError(f"method {self.name!r}: aux {name!r}: values {abs(shift) / st['scale']:.0f} "
                                 f"training scales away from those {what} {start} was trained with (mean "
                                 f"difference {shift:+.4g}: other units?)")
        else:
            gmean, scale = static_stats(values[0])
            if not scale > 0:  # read_aux refuses a constant one; said here for a caller that skipped it
                raise InputError(f"method {self.name!r}: aux {name!r} is static and the same everywhere: "
                                 "it tells the network nothing")
            st = {"name": name, "units": units, "scale": scale, "global_mean": gmean, "static": True}
        mean = np.full(values.shape[1:], st["global_mean"], np.float32)
        return st, mean, values

    # ------------------------------------------------------------------ patches, cut where the data lives
    def _sources(self) -> tuple:
        """The padded cube (float32), its mask (bool), positions, season and day offsets as tensors.

        They go to the network's device once when they fit in half its free memory, and every
        training batch and inference tile is then a gather there: no per-step host work and no
        transfer. Otherwise they stay on the host (``from_numpy``: no copy) and each batch is
        copied over.
        """
        import torch

        dev = self._device
        size = sum(a.nbytes for a in (self._xp, self._mp, self._ap, self._amp) if a is not None)
        if dev.type == "cuda" and size > torch.cuda.mem_get_info(dev)[0] // 2:
            dev = torch.device("cpu")

        def tensor(a):
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(dev)

        return (tensor(self._xp), tensor(self._mp), tensor(self._pos), tensor(self._season),
                torch.as_tensor(self._offsets, device=dev), tensor(self._ap), tensor(self._amp))

    @staticmethod
    def _assemble(data, mask, pos, season, aux=None, aux_mask=None) -> "torch.Tensor":
        """Network input (B, C, h, w) from days' data and masks (B, K, h, w), positions (B, P, h, w),
        season (B, 2) or None, and the auxiliary variables' data and masks (B, K, A, h, w) or None:
        [data_0, mask_0, data_1, mask_1, ..., aux, positions, season], the aux as [day 0: variable 0's
        data, its mask, variable 1's..., day 1: ...]."""
        import torch

        b, k, h, w = data.shape
        chans = [torch.stack([data, mask], 2).reshape(b, 2 * k, h, w)]
        if aux is not None:
            chans.append(torch.stack([aux, aux_mask], 3).reshape(b, 2 * aux.shape[1] * aux.shape[2], h, w))
        chans.append(pos)
        if season is not None:
            chans.append(season[:, :, None, None].expand(b, 2, h, w))
        return torch.cat(chans, 1)

    def _train_batch(self, src: tuple, t: np.ndarray, donor: np.ndarray, i: np.ndarray, j: np.ndarray,
                     ph: int, pw: int) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """A training batch: patches (ph, pw) at corners (i, j) of days t (B,), each with the
        cloud mask of day ``donor`` laid over its observations (mask transfer).

        Returns the input (B, C, ph, pw), the target (B, ph, pw) (the day's own data) and the loss
        weights (B, ph, pw): 1 where the donor hid an observation, ``visible_weight`` where one is
        still visible, 0 in the gaps; all on the network's device.
        """
        import torch

        xp, mp, pos, season, offsets, ap, amp = src
        dev, n = xp.device, self._cfg["neighbours"]

        def patches(a):  # a view (..., H - ph + 1, W - pw + 1, ph, pw): [..., i, j] is the patch at (i, j)
            return a.unfold(-2, ph, 1).unfold(-2, pw, 1)

        xu, mu = patches(xp), patches(mp)
        i, j = torch.as_tensor(i, device=dev)[:, None], torch.as_tensor(j, device=dev)[:, None]  # (B, 1)
        t = torch.as_tensor(t, device=dev)
        days = t[:, None] + offsets + n  # (B, K) into the padded cube
        data = xu[days, i, j]  # (B, K, ph, pw): whole patches copied (4x faster than per-pixel indices)
        mask = mu[days, i, j].to(data.dtype)
        target, seen = data[:, 0].clone(), mask[:, 0].clone()
        keep = seen * mu[torch.as_tensor(donor, device=dev) + n, i[:, 0], j[:, 0]].to(data.dtype)
        mask[:, 0] = keep
        data[:, 0] *= keep
        aux = aux_mask = None
        if ap is not None:  # the days' variables at the same patches: (B, K, A, ph, pw)
            aux = patches(ap)[days, :, i, j]
            aux_mask = patches(amp)[days, :, i, j].to(data.dtype)
        inp = self._assemble(data, mask, patches(pos)[:, i[:, 0], j[:, 0]].transpose(0, 1),
                             None if season is None else season[t], aux, aux_mask)
        weight = seen - keep + self.options["visible_weight"] * keep  # keep is a subset of seen
        return tuple(a.to(self._device, non_blocking=True) for a in (inp, target, weight))  # type: ignore[return-value]

    def _tile_inputs(self, src: tuple, times: slice, ys: slice, xs: slice) -> "torch.Tensor":
        """Network input (B, C, h, w) for the days ``times`` over the window ``(ys, xs)``."""
        import torch

        xp, mp, pos, season, offsets, ap, amp = src
        days = torch.arange(times.start, times.stop, device=xp.device)[:, None] + offsets + self._cfg["neighbours"]
        data = xp[:, ys, xs][days]  # the window's view, then the days: only the tile is gathered
        mask = mp[:, ys, xs][days].to(data.dtype)
        aux = None if ap is None else ap[..., ys, xs][days]
        aux_mask = None if amp is None else amp[..., ys, xs][days].to(data.dtype)
        inp = self._assemble(data, mask, pos[:, ys, xs][None].expand(len(days), -1, -1, -1),
                             None if season is None else season[times], aux, aux_mask)
        return inp.to(self._device, non_blocking=True)

    def _forward(self, inp: "torch.Tensor") -> "torch.Tensor":
        """Run the network on (B, C, h, w) inputs; pads to ``multiple`` and crops back."""
        import torch

        from oceandl.models.reconstruction import pad_to_multiple
        from oceandl.utils import bf16_autocast

        xt, (h, w) = pad_to_multiple(inp, self.multiple)
        if self.options["channels_last"]:
            xt = xt.contiguous(memory_format=torch.channels_last)
        with bf16_autocast(self._device, self.precision_ == "bf16"):
            out = self.model_(xt)[..., :h, :w]
        out = out.float()  # the loss, the blending and the variance in float32
        if self._cfg["nll"]:
            out = torch.cat([out[:, :1], out[:, 1:2].clamp(*_LOGVAR_RANGE)], 1)
        return out

    def _prepare_model(self) -> None:
        """Resolve the precision and put the network in the chosen memory layout."""
        import torch

        from oceandl.utils import keep_freed_memory, resolve_precision

        keep_freed_memory(self._device)  # tiles and patches re-allocate the same activations every batch
        self.precision_ = resolve_precision(self.options["precision"], self._device)
        if self.options["channels_last"]:
            self.model_ = self.model_.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ fit
    def _build_model(self, in_channels: int) -> "nn.Module":
        from oceandl.models import get_model

        return get_model(self.model_name, in_channels, 2 if self._cfg["nll"] else 1, **self._model_opts)

    def _fit(self, x: np.ndarray, obs: np.ndarray, ocean: np.ndarray) -> None:
        from oceandl.utils import seed_torch, torch_rng_scope

        self._device = self.torch_device
        # seeded on a private copy of torch's random state: the caller's global generator is left as it was
        with torch_rng_scope(self._device):
            seed_torch(self.seed, self._device)
            self._fit_seeded(x, obs)

    def _fit_seeded(self, x: np.ndarray, obs: np.ndarray) -> None:
        o = self.options
        # trained and filled on the grid as open_field gives it (latitude ascending, longitudes in one
        # convention): on a file with latitudes descending the position channels were mirrored and the
        # patches drawn elsewhere, so Python, the CLI and --chunks (which sort the grid) filled one file
        # differently (0.66 degC apart from scratch; 0.72 with the same checkpoint)
        self._iy, self._ix = clean_axes(self.da_)
        x, obs = self._clean(x), self._clean(obs)
        self._cfg = {k: o[k] for k in _FROM_CHECKPOINT}
        self._model_opts = {**self.default_model_options, **(o["model_options"] or {})}
        rng = np.random.default_rng(self.seed)
        self._resume_state = None
        self._state_folder, self._state_written = self._training_folder(), False
        if self._state_folder is not None:
            # what the run was trained on: a resume on another file (or other withheld pixels) is refused
            # the covariates in the clean orientation too, as x: by the file's order a run started in Python on
            # a file with latitudes descending was refused on --resume by the CLI (which sorts the grid)
            aux = [self._clean(a) for _, a in sorted(zip(self.aux_names_, self.aux_))]
            self._data_sha256 = _data_digest(x, obs, aux)
        # checkpoint: its network fills as it is; init: its network is trained on (fine-tuning)
        start, what = (o["checkpoint"], "checkpoint") if o["init"] is None else (o["init"], "init checkpoint")
        if o["resume"] is not None:
            start, what = o["resume"], "the run in"
            self._resume_state = self._resume_network(o["resume"])
            self._state_written = True  # the folder holds this run: save() replaces it, even with no step left
            self._setup_inputs(x, obs)
            if self._in_channels != self._n_inputs():
                raise InputError(f"method {self.name!r}: {what} {start} expects "
                                 f"{self._in_channels} input channels, this input gives {self._n_inputs()}")
        elif start is not None:
            training = self._load(start)
            self._check_quantity(start, training)
            self._setup_aux(self._checkpoint_meta(start).get("aux", []), what, start)
            self._setup_inputs(x, obs)
            if self._in_channels != self._n_inputs():
                raise InputError(f"method {self.name!r}: {what} {start} expects "
                                 f"{self._in_channels} input channels, this input gives {self._n_inputs()}")
        else:
            self._setup_aux(None, None, None)
            self._setup_inputs(x, obs)
            self._in_channels = self._n_inputs()
            self.model_ = self._build_model(self._in_channels).to(self._device)
        if o["checkpoint"] is not None:
            self._check_season(start, training)
            self._prepare_model()
            self.steps_ = 0
            return
        if o["init"] is not None:  # the attrs name the starting weights, not a network loaded as it is
            self.checkpoint_attrs_ = {f"init_{k}": v for k, v in self.checkpoint_attrs_.items()}
            # absolute: `--init ../unet_2019` named, in the checkpoint, a folder relative to wherever the run was
            self.checkpoint_attrs_["init_checkpoint"] = _absolute(o["init"])
        self._prepare_model()
        # a network trained here: the init checkpoint's calibration was for its weights, not these
        self.sigma_calibration_, self.calibration_text_, self.calibration_info_ = 1.0, "none (calibrate=False)", None
        held = self._calibration_mask(obs) if self._calibrating() else None
        if held is None:
            self.steps_ = self._train(obs, rng)
            return
        fit_obs = obs & ~held
        fit_x = np.where(held, np.float32(0), x)
        self._setup_inputs(fit_x, fit_obs)  # the held-out pixels are no input, no target
        self.steps_ = self._train(fit_obs, rng)
        with self._trained_state_kept():
            self._calibrate(x, held)  # predicted with them still hidden
            self._setup_inputs(x, obs)  # the fill takes every observation

    @contextlib.contextmanager
    def _trained_state_kept(self):
        """Ctrl-C or SIGTERM once every step is trained (the calibration, the final write): the
        folder holds the state of the last step, and ``--resume`` finishes the run from it without
        training again; the interruption says so (it said a bare 'interrupted')."""
        try:
            yield
        except KeyboardInterrupt as exc:
            folder = getattr(self, "_state_folder", None)
            if (folder is not None and getattr(self, "_state_written", False) and not str(exc)
                    and _unfinished(folder)):  # cut after save() replaced it: a finished network, nothing to resume
                exc.args = (f"the training state of step {self.steps_} of {self.steps_} stands in {folder} "
                            "(every step trained)",)
                exc.resumable = True
            raise

    def _training_folder(self):
        """The folder training states are written to (``resume`` or ``save_to``), or None; a
        ``save_to`` that exists is refused here, before any training (unless ``_save_to_overwrite``)."""
        from pathlib import Path

        o = self.options
        if o["checkpoint"] is not None:
            return None
        if o["resume"] is not None:
            return Path(o["resume"])
        if o["save_to"] is None:
            return None
        from oceandl.training.checkpoint import is_checkpoint_folder
        from oceandl.utils import check_output_path

        return check_output_path(o["save_to"], self._save_to_overwrite, kind="folder",
                                 replaceable=is_checkpoint_folder, what="checkpoint")

    def _resume_network(self, folder) -> dict:
        """Rebuild the network of the interrupted run in ``folder`` with its saved weights, after
        checking that this input is the one it was trained on; returns its training state."""
        from pathlib import Path

        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from oceandl.training.checkpoint import WEIGHTS, load_training_state, read_config

        config = read_config(folder)
        meta, training = config["interpolator"], config.get("training") or {}
        sizes = {str(k): int(v) for k, v in self.da_.sizes.items()}
        if training.get("variable") != str(self.da_.name) or training.get("sizes") != sizes:
            raise InputError(f"{folder}: resumed on variable {str(self.da_.name)!r} {sizes}, but the run in that "
                             f"folder was started on variable {training.get('variable')!r} {training.get('sizes')} "
                             "(resume with the same input)")
        # the covariates by name first: without them the digest below differs, which said "other values"
        self._setup_aux(meta.get("aux", []), "the run in", folder)
        if training.get("data_sha256") != self._data_sha256:
            raise InputError(f"{folder}: resumed on other values than the run in that folder was started on (same "
                             "variable and sizes: another file, period or withheld pixels?); resume with the same input")
        folder = Path(folder)
        state = load_training_state(folder)
        self._cfg = {k: meta[k] for k in _FROM_CHECKPOINT}
        self._model_opts = dict(config.get("model_options") or {})
        self._in_channels = int(meta["in_channels"])
        self.model_ = self._build_model(self._in_channels).to(self._device)
        try:
            weights = load_file(str(folder / WEIGHTS))
            self.model_.load_state_dict(weights)
            for key in ("optimizer", "scheduler", "step", "steps", "losses", "rng", "torch_rng"):
                if key not in state:
                    raise KeyError(f"no {key!r}")
        except (OSError, SafetensorError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{folder}: corrupt training state ({one_line(exc)})") from None
        init = training.get("init")  # the weights the run was started from, kept in its record
        self.checkpoint_attrs_ = ({"init_checkpoint": init.get("checkpoint"), "init_checkpoint_sha256": init.get("sha256")}
                                  if isinstance(init, dict) else {})
        return state

    def _calibrating(self) -> bool:
        cal = self.options["calibrate"]
        return bool(self._cfg["nll"]) if cal is None else bool(cal)

    def _calibration_mask(self, obs: np.ndarray) -> np.ndarray | None:
        """Observed pixels (of ``obs``: never the withheld ones) held out from training for
        :meth:`_calibrate`, by cloud-mask transfer; None (warned) when the field lends no gaps."""
        from .withhold import withhold_by_cloud_transfer

        frac = float(self.options["calibration_fraction"])
        if obs.shape[0] < 2 or not (~obs & obs.any(axis=0)).any():
            warn(f"method {self.name!r}: no gaps to copy for the sigma calibration; sigma is not calibrated",
                 UserWarning)
            self.calibration_text_ = "none (no gaps to copy onto other days)"
            return None
        # its own stream (not the withholding's, drawn with `seed` too, nor training's)
        seed = int(np.random.SeedSequence([self.seed, 0xCA1]).generate_state(1)[0])
        held = withhold_by_cloud_transfer(obs, fraction=frac, seed=seed, at_most=True)
        keep = obs & ~held
        if not held.any() or np.count_nonzero(keep.any(axis=(1, 2))) < 2:
            warn(f"method {self.name!r}: no pixels could be held out for the sigma calibration; sigma is not "
                 "calibrated", UserWarning)
            self.calibration_text_ = "none (no pixels could be held out)"
            return None
        return held

    def _calibrate(self, x: np.ndarray, held: np.ndarray) -> None:
        """Set ``sigma_calibration_``: the rms of ``err / sigma`` on the held-out pixels ``held``
        (predicted while hidden), outliers beyond :data:`SIGMA_CLIP` robust stds left out."""
        mean, sigma = self._predict()
        z = (x[held] - mean[held]) / sigma[held]
        kept = calibration_z(z)
        z = z[np.isfinite(z)].astype(np.float64)
        frac = float(self.options["calibration_fraction"])
        share = float(held.sum() / max(int(self.obs_.sum()), 1))
        info = {"n_held_out": int(held.sum()), "n_used": int(kept.size), "fraction": frac,
                "held_out_share": float(share)}
        if kept.size < SIGMA_MIN_POINTS:
            warn(f"method {self.name!r}: {kept.size} held-out pixels for the sigma calibration (fewer than "
                 f"{SIGMA_MIN_POINTS}); sigma is not calibrated (raise calibration_fraction)", UserWarning)
            self.calibration_text_ = (f"none ({kept.size} held-out pixels, fewer than {SIGMA_MIN_POINTS}; "
                                      f"calibration_fraction {frac:g})")
            self.calibration_info_ = {**info, "scale": 1.0}
            return
        scale = float(np.sqrt(np.mean(kept ** 2)))
        self.sigma_calibration_ = scale
        self.calibration_info_ = {**info, "scale": scale,
                                  "within_1sigma_before": float(np.mean(np.abs(z) <= 1.0)),
                                  "within_1sigma_after": float(np.mean(np.abs(z) <= scale))}
        self.calibration_text_ = (f"x{scale:.4g}: rms(err/sigma) on {kept.size} of {int(held.sum())} "
                                  f"observations held out of training ({share:.1%}; calibration_fraction "
                                  f"{frac:g}; {z.size - kept.size} beyond {SIGMA_CLIP:g} robust stds left "
                                  "out)")

    def _check_quantity(self, path, training: dict) -> None:
        """Warn when the checkpoint was trained on another quantity (CF ``standard_name``) than the input.

        An SST network given a chlorophyll field filled it without a word. Units are compared where
        the checkpoint's statistics are used (``normalisation``); a file normalised by its own mean
        and scale gives the same fill in kelvin and in degree_Celsius. ``training``: the checkpoint's
        ``training`` record (:meth:`_load`)."""
        theirs, ours = training.get("standard_name"), self.da_.attrs.get("standard_name")
        if theirs and ours and str(theirs) != str(ours):
            warn(f"method {self.name!r}: checkpoint {path} was trained on {theirs!r} (variable "
                          f"{training.get('variable')!r}), this input is {ours!r} (variable {str(self.da_.name)!r}): "
                          "the network fills it as if it were the same quantity", UserWarning)

    def _check_season(self, path, training: dict, days: int = 7) -> None:
        """Warn when input time steps lie more than ``days`` days of the year away from every day the
        checkpoint was trained on (its ``training.days_of_year``; a checkpoint trained on a year or
        more covers them all).

        A network trained on January-March filled April without a word, biased by -0.4 to -0.96
        degC: its seasonal channels and its training statistics know only the season it saw.
        ``training``: the checkpoint's ``training`` record (:meth:`_load`)."""
        trained = training.get("days_of_year")
        doy = self._day_of_year()
        if not isinstance(trained, list) or not trained or doy is None:
            return
        seen = np.asarray(trained, dtype=np.float64)
        gap = np.abs(doy[:, None] - seen[None, :])
        gap = np.minimum(gap, 365.25 - gap).min(axis=1)  # around the year: Dec 31 is next to Jan 1
        far = np.flatnonzero(gap > days)
        if far.size:
            tdim = self.da_.dims[0]
            first = str(self.da_[tdim].values[far[0]])[:10]
            warn(f"method {self.name!r}: checkpoint {path} was trained on days {_day_ranges(seen)} of the year; "
                 f"{far.size} of this input's {doy.size} time steps (the first {first}) are more than {days} days "
                 "from them: the network has not seen that season and its fill there can be biased (train on a "
                 "full year, or fine-tune with init=)", UserWarning)

    def _n_steps(self, shape: tuple[int, int, int]) -> int:
        o = self.options
        if o["epochs"] is not None:
            t, h, w = shape
            per_epoch = t * math.ceil(h / o["patch"]) * math.ceil(w / o["patch"])
            return int(o["epochs"]) * math.ceil(per_epoch / o["batch_size"])
        return self.default_steps if o["steps"] is None else int(o["steps"])

    def _total_stride(self) -> int:
        """Down-sampling factor of the network's deepest stage (2**depth, 2**encoder_depth)."""
        o = self._model_opts
        if "encoder_depth" in o:
            return 2 ** int(o["encoder_depth"])
        return 2 ** int(o["depth"]) if "depth" in o else max(self.multiple, 1)

    def _train(self, obs: np.ndarray, rng: np.random.Generator) -> int:
        """Self-supervised training by mask transfer; returns the number of steps taken."""
        import torch

        o, nll = self.options, self._cfg["nll"]
        t_all, h, w = obs.shape
        steps, bs, ph, pw = self._n_steps(obs.shape), o["batch_size"], min(o["patch"], h), min(o["patch"], w)
        days = np.flatnonzero(obs.any(axis=(1, 2)))  # days with something to hide
        s = self._total_stride()
        if bs * math.ceil(ph / s) * math.ceil(pw / s) < 2:
            # batch norm at the deepest stage then sees one value per channel: torch's ValueError
            # came out of the first step instead of a line saying which option to change
            raise InputError(f"method {self.name!r}: batch_size={bs} with training patches of {ph} x {pw} px "
                             f"leaves one value per channel at the network's deepest stage (1/{s} of the "
                             "patch), where batch norm needs two or more: use batch_size >= 2 or a larger patch")
        from oceandl.training.engine import _KeptBuffers
        from oceandl.utils import decay_groups, fused_optimizer_kwargs

        params = list(self.model_.parameters())
        # no decay on biases and norm layers, as in the classifier engine (utils.decay_groups)
        opt = torch.optim.AdamW(decay_groups(params, o["weight_decay"]), lr=o["lr"],
                                **fused_optimizer_kwargs(params, o["fused"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=0.02 * o["lr"])
        run = {"start": 0, "before": [], "seconds": 0.0, "resumed_at": []}  # what earlier calls did
        if self._resume_state is not None:
            run = self._restore(self._resume_state, opt, sched, rng, steps)
        self._run = run
        self.model_.train()
        src = self._sources()
        losses = []
        folder, (every, by_clock) = self._state_folder, self._state_every(steps)
        t0 = last = time.perf_counter()
        # Ctrl-C or SIGTERM (a scheduler's time limit) saves the run so far: `pending` holds the random
        # states at the start of the step in progress, so that a state saved mid-step replays it, and
        # `kept` the buffers (batch norm's running statistics) as the step began
        pending, updating, saved = None, False, run["start"]
        kept = _KeptBuffers(self.model_, folder is not None)
        try:
            for step in self._progress(range(run["start"], steps), "training", total=steps - run["start"]):
                if folder is not None:
                    # the buffers first: cut between the two, `pending` is still None and the unmoved
                    # buffers are kept as they are (noted after, the last step's were put back)
                    kept.note()
                    pending = self._rng_states(rng)
                # the draws are tiny and host-side (one seeded stream); the cutting is a gather in `src`
                t = rng.choice(days, bs)
                donor = (t + rng.integers(1, t_all, bs)) % t_all  # any other day
                i, j = rng.integers(0, h - ph + 1, bs), rng.integers(0, w - pw + 1, bs)
                inp, target, weight = self._train_batch(src, t, donor, i, j, ph, pw)
                out = self._forward(inp)
                err2 = (out[:, 0] - target) ** 2
                pix = 0.5 * (out[:, 1] + err2 * torch.exp(-out[:, 1])) if nll else err2
                loss = (weight * pix).sum() / weight.sum().clamp_min(1.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                updating = True  # from here to the end of the step the weights are half-updated
                opt.step()
                sched.step()
                losses.append(loss.detach())  # no float() here: it would wait for the GPU at every step
                updating, pending = False, None
                done, stop = step + 1, self._stop_after_step
                if folder is not None and (done == steps or done == stop or done % every == 0
                                           or (by_clock and time.perf_counter() - last > _STATE_SECONDS)):
                    history = run["before"] + torch.stack(losses).tolist()
                    self._check_finite(history, steps)  # a diverged state is not saved over a good one
                    self._save_state(folder, opt, sched, rng, done, steps, history,
                                     run["seconds"] + time.perf_counter() - t0)
                    last, saved = time.perf_counter(), done
                if stop is not None and done >= stop:
                    raise _TrainingStopped(f"stopped after step {done} (_stop_after_step)")
        except KeyboardInterrupt as exc:
            if folder is not None:
                if pending is not None and not updating:
                    kept.restore()  # the weights' step: that before the step in progress
                history = run["before"] + [float(v) for v in losses]
                at = {"done": run["start"] + len(losses), "steps": steps, "saved": saved, "updating": updating}
                text, exc.resumable = self._save_interrupted(folder, opt, sched, rng, pending, at, history,
                                                             run["seconds"] + time.perf_counter() - t0)
                exc.args = (text,)
            raise
        self.loss_history_: list[float] = run["before"] + (torch.stack(losses).tolist() if losses else [])
        self.train_seconds_ = run["seconds"] + time.perf_counter() - t0  # the training loop alone (benchmarks)
        self._check_finite(self.loss_history_, steps)
        self.model_.eval()
        return steps

    def _check_finite(self, history: list[float], steps: int) -> None:
        """Refuse a training whose loss ``history`` is not finite: else the gaps were filled with NaN
        and the run reported success."""
        bad = [i for i, v in enumerate(history) if not math.isfinite(v)]
        if bad:
            raise OceanDLError(f"method {self.name!r}: training diverged: the loss is not finite from step "
                               f"{bad[0] + 1} of {steps} (lower lr, now {self.options['lr']:g}, or set "
                               "precision=fp32)")

    def _state_every(self, steps: int) -> tuple[int, bool]:
        """Steps between saved training states, and whether the clock adds states between them
        (``checkpoint_every=None``: a tenth of the steps, and every :data:`_STATE_SECONDS`)."""
        every = self.options["checkpoint_every"]
        if every is not None:
            return int(every), False
        return max(1, math.ceil(steps / 10)), True

    def _restore(self, state: dict, opt, sched, rng: np.random.Generator, steps: int) -> dict:
        """Load a saved training state into the optimiser, scheduler and random generators; returns
        the run so far (``start`` step, losses ``before``, ``seconds``, ``resumed_at``)."""

        from oceandl.training.engine import _set_rng_states, _state_like_params

        folder = self.options["resume"]
        try:  # the numbers too: an edited state's {"steps": null} was a bare TypeError traceback
            saved_steps, start = int(state["steps"]), int(state["step"])
            run = {"start": start, "before": [float(v) for v in state["losses"]],
                   "seconds": float(state.get("seconds", 0.0)),
                   "resumed_at": [*map(int, state.get("resumed_at", [])), start]}
            if not 0 <= start <= saved_steps or len(run["before"]) != start:
                raise ValueError(f"step {start} of {saved_steps} with {len(run['before'])} losses")
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{folder}: corrupt training state ({one_line(exc)})") from None
        if saved_steps != steps:
            raise InputError(f"{folder}: the run in that folder trains {saved_steps} steps, this one "
                             f"{steps} (resume with the same options and input)")
        try:
            opt.load_state_dict(state["optimizer"])
            _state_like_params(opt)  # the fused step pairs elements by memory position
            sched.load_state_dict(state["scheduler"])
            rng.bit_generator.state = state["rng"]
            _set_rng_states(state, self._device)  # dropout and other draws of the forward pass
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{folder}: corrupt training state ({one_line(exc)})") from None
        return run

    def _rng_states(self, rng: np.random.Generator) -> dict:
        """The random states a training step draws from: the batches' (numpy), dropout's (torch)."""
        from oceandl.training.engine import _rng_states

        return {"rng": rng.bit_generator.state, **_rng_states(self._device)}

    def _save_interrupted(self, folder, opt, sched, rng: np.random.Generator, pending: dict | None, at: dict,
                          history: list[float], seconds: float) -> tuple[str, bool]:
        """Save the run at an interruption (Ctrl-C, SIGTERM); returns the line that says what is saved
        and whether the folder holds a state to resume from.

        ``pending``: the random states at the start of the step in progress (None between steps).
        ``at``: ``done`` (steps done), ``steps``, ``saved`` (the step of the state in ``folder``, 0 for
        none) and ``updating``: the interruption came while the weights were updated, so that they are
        neither those of one step nor of the next, and the saved state stands."""
        done, steps, saved = at["done"], at["steps"], at["saved"]
        kept = (f"the training state of step {saved} of {steps} stands in {folder}" if saved
                else f"no training state was saved in {folder} yet")
        if at["updating"]:
            return f"interrupted while updating the weights: {kept}", bool(saved)
        if done <= saved:
            return kept, bool(saved)
        if not all(math.isfinite(v) for v in history):  # a diverged state is not saved over a good one
            return f"the loss is not finite: {kept}", bool(saved)
        try:
            self._save_state(folder, opt, sched, rng, done, steps, history, seconds, rngs=pending)
        except OceanDLError as exc:  # the write failed: the previous state is left as it was
            return f"{one_line(exc)}; {kept}", bool(saved)
        return f"the training state of step {done} of {steps} is saved in {folder}", True

    def _save_state(self, folder, opt, sched, rng: np.random.Generator, done: int, steps: int,
                    history: list[float], seconds: float, rngs: dict | None = None) -> None:
        """Write the checkpoint folder of the run so far, marked unfinished, with the state that
        resumes it (one atomic folder write: a kill mid-write leaves the previous one). ``rngs``:
        the random states to record (:meth:`_rng_states`), by default the current ones."""
        from oceandl.training.checkpoint import flatten_state

        state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": done, "steps": steps,
                 "losses": history, **(rngs or self._rng_states(rng)),
                 "seconds": seconds, "resumed_at": self._run["resumed_at"]}
        # the first write replaces a folder only when it is the resumed run's (or --overwrite)
        overwrite = self._state_written or self._save_to_overwrite
        self._write_checkpoint(folder, overwrite=overwrite, source=None, progress=(done, steps, history),
                               training_state=flatten_state(state))
        self._state_written = True

    # ------------------------------------------------------------------ reconstruct
    def _predict(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Tiled inference: (time, lat, lon) mean and, with ``nll``, sigma (normalised units)."""
        import torch

        with torch.inference_mode():
            mean, sigma = self._predict_tiles()
        scale = getattr(self, "sigma_calibration_", 1.0)
        if sigma is not None and scale != 1.0:  # the post-hoc calibration (calibrate, or the checkpoint's)
            sigma *= np.float32(scale)
        return mean, sigma

    def _predict_tiles(self) -> tuple[np.ndarray, np.ndarray | None]:
        o = self.options
        t_all, h, w = self._xp.shape[0] - 2 * self._cfg["neighbours"], *self._xp.shape[1:]
        th, tw = (h, w) if o["tile"] is None else (min(o["tile"], h), min(o["tile"], w))
        ov = o["overlap"]
        self.model_.eval()
        n_out = 2 if self._cfg["nll"] else 1
        # float32 accumulator, divided in place into the result: the only arrays of the grid's size
        # (a few weighted terms per pixel lose nothing in float32; float64 tripled the footprint)
        acc = np.zeros((n_out, t_all, h, w), np.float32)
        wsum = np.zeros((h, w), np.float32)
        win = np.outer(blend_window(th, ov), blend_window(tw, ov)).astype(np.float32)
        tiles = [(i, j) for i in tile_starts(h, th, ov) for j in tile_starts(w, tw, ov)]
        src = self._sources()
        batches = [slice(s, min(s + o["infer_batch"], t_all)) for s in range(0, t_all, o["infer_batch"])]
        for i, j in self._progress(tiles, "inference", total=len(tiles)):
            ys, xs = slice(i, i + th), slice(j, j + tw)
            wsum[ys, xs] += win
            for times in batches:
                # slices, not index arrays: the += below then adds in place, with no copy of the block
                out = self._forward(self._tile_inputs(src, times, ys, xs)).float().cpu().numpy()
                if self._cfg["nll"]:
                    out[:, 1] = np.exp(out[:, 1])  # blend variances, not log-variances
                acc[:, times, ys, xs] += win * out.transpose(1, 0, 2, 3)
        acc /= wsum
        if self._cfg["nll"]:
            np.sqrt(acc[1], out=acc[1])
        return acc[0], (acc[1] if self._cfg["nll"] else None)

    def _clean(self, a: np.ndarray) -> np.ndarray:
        """(time, lat, lon) ``a`` in the input's order -> in the clean orientation (:func:`clean_axes`)."""
        iy, ix = self._iy, self._ix
        if np.array_equal(iy, np.arange(iy.size)) and np.array_equal(ix, np.arange(ix.size)):
            return a
        return a[:, iy[:, None], ix[None, :]]

    def _unclean(self, a: np.ndarray | None) -> np.ndarray | None:
        """The inverse of :meth:`_clean`: back to the input's order."""
        if a is None or a is self._clean(a):
            return a
        out = np.empty_like(a)
        out[:, self._iy[:, None], self._ix[None, :]] = a
        return out

    def _reconstruct(self) -> tuple[np.ndarray, np.ndarray | None]:
        mean, sigma = self._predict()
        return self._unclean(mean), self._unclean(sigma)

    def _sigma_attrs(self) -> dict[str, Any]:
        """``calibration_scale`` and ``calibration`` of the ``sigma`` output (see ``calibrate``)."""
        return {"calibration_scale": float(getattr(self, "sigma_calibration_", 1.0)),
                "calibration": str(getattr(self, "calibration_text_", "none"))}

    def _fit_attrs(self) -> dict[str, Any]:
        attrs = {"model": self.model_name, "model_options": self._model_opts, "train_steps": self.steps_,
                 "input_channels": self._in_channels, "seasonal_channels": self._cfg["seasonal"],
                 "precision": self.precision_, "normalisation": getattr(self, "normalisation_", "input")}
        if getattr(self, "loss_history_", None):
            attrs["final_train_loss"] = float(np.mean(self.loss_history_[-20:]))
        if self._aux_stats:
            attrs["aux_variables"] = " ".join(st["name"] for st in self._aux_stats)
        attrs.update(getattr(self, "checkpoint_attrs_", {}))
        return attrs

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, overwrite: bool = False, source: str | None = None):
        """Write the trained network as an oceandl checkpoint folder (reuse with ``checkpoint=path``).

        Its ``config.json`` also says how it was trained (``training``: every option, the seed,
        steps, the loss of every step, precision, the input variable and grid, ``source`` when
        given; ``finished`` true), with the versions and git commit. Returns the path. Raises
        :class:`InputError` before :meth:`fit` or if ``path`` exists and not ``overwrite``; the
        unfinished checkpoint this fit's training wrote (``save_to``, ``resume``) is replaced.
        """
        if not self._fitted:
            raise InputError(f"method {self.name!r}: call fit() before save()")
        own = getattr(self, "_state_written", False) and _same_path(path, self._state_folder)
        return self._write_checkpoint(path, overwrite=overwrite or own, source=source)

    def _write_checkpoint(self, path, *, overwrite: bool, source: str | None, progress: tuple | None = None,
                          training_state: tuple[dict, dict] | None = None):
        """Write the checkpoint folder: the finished network (``progress`` None) or, with
        ``progress=(steps done, steps, losses so far)`` and ``training_state``, the run so far."""
        from oceandl.training.checkpoint import save_checkpoint

        from .base import _json_default

        cfg = {k: self._cfg[k] for k in _FROM_CHECKPOINT}
        # what it takes to train it again: the options alone were not recorded (where the states go is not a
        # training option: a resumed run and an uninterrupted one record the same)
        options = {k: v for k, v in self.options.items() if k not in ("save_to", "resume")}
        init = getattr(self, "checkpoint_attrs_", {})
        if self.options["resume"] is not None:  # the run's own record: it was started with or without init
            options["init"] = init.get("init_checkpoint")
        elif options.get("init") is not None:  # by its absolute path, as training.init records it
            options["init"] = _absolute(options["init"])
        if progress is None:
            fit = self._fit_attrs()
            done, history = self.steps_, getattr(self, "loss_history_", [])
        else:
            done, steps, history = progress
            fit = {"train_steps": steps, "precision": self.precision_,
                   "final_train_loss": float(np.mean(history[-20:]))}
        training = {"options": json.loads(json.dumps(options, default=_json_default)), "seed": self.seed,
                    **{k: fit[k] for k in ("train_steps", "precision", "final_train_loss") if k in fit},
                    # False while training: `interpolate --model` warns, --resume goes on from it
                    "finished": progress is None, "steps_done": done,
                    "variable": str(self.da_.name), "sizes": {str(k): int(v) for k, v in self.da_.sizes.items()},
                    # what the field is: a checkpoint applied to another quantity is warned about
                    **{k: str(self.da_.attrs[k]) for k in ("standard_name", "units") if k in self.da_.attrs}}
        if getattr(self, "_data_sha256", None) is not None:  # what --resume checks the input against
            training["data_sha256"] = self._data_sha256
        if history:
            training["loss_history"] = [float(v) for v in history]
        run = getattr(self, "_run", None)
        if run and run["resumed_at"]:
            training["resumed_at"] = run["resumed_at"]
        if source is not None:
            training["source"] = str(source)
        doy = self._day_of_year() if done else None
        if doy is not None:  # the season the network saw (a fill outside it is warned about)
            training["days_of_year"] = sorted({int(d) for d in np.round(doy)})
        if "init_checkpoint" in init and (self.options["init"] is not None or self.options["resume"] is not None):
            # the weights it was fine-tuned from
            training["init"] = {"checkpoint": str(init["init_checkpoint"]), "sha256": init.get("init_checkpoint_sha256")}
        norm, tensors = self._stats_to_save()
        interp = {"method": self.name, **cfg, "in_channels": self._in_channels, "multiple": self.multiple,
                  "normalisation": norm}
        if self._aux_stats:  # the covariates it takes, in channel order, with their training statistics
            interp["aux"] = [dict(st) for st in self._aux_stats]
        if self._cfg["nll"]:  # applied to sigma when the checkpoint is loaded
            interp["sigma_calibration"] = float(getattr(self, "sigma_calibration_", 1.0))
            interp["sigma_calibration_text"] = (str(getattr(self, "calibration_text_", "none")) if progress is None
                                                else f"none (training unfinished: step {done} of {progress[1]})")
        if getattr(self, "calibration_info_", None):
            training["calibration"] = self.calibration_info_
        extra = {"interpolator": interp, "training": training}
        return save_checkpoint(path, self.model_, model_name=self.model_name, model_options=self._model_opts,
                               model_args=[self._in_channels, 2 if self._cfg["nll"] else 1],
                               task="interpolation", extra=extra, overwrite=overwrite,
                               extra_tensors={STATS: tensors}, training_state=training_state)

    def _stats_to_save(self) -> tuple[dict, dict]:
        """The statistics the network was trained with: JSON metadata and tensors for :data:`STATS`.

        A loaded checkpoint saved again keeps its training statistics (not those of the file it filled)."""
        import torch

        whole = (getattr(self, "_training_stats", None) or {}).get("whole")
        if whole is not None:  # a box of the training grid filled: the checkpoint's whole-grid statistics, as read
            tensors = {"mean": whole["mean"], **whole["coords"],
                       **{f"{AUX_MEAN}{k}": v for k, v in (whole.get("aux_mean") or {}).items()},
                       **({} if whole.get("sea") is None else {SEA: whole["sea"]})}
            meta = {"file": STATS, "scale": float(whole["scale"]), "global_mean": float(whole["global_mean"]),
                    "units": None if whole["units"] is None else str(whole["units"]),
                    "shape": list(np.shape(whole["mean"]))}
            return meta, {k: torch.from_numpy(np.array(v, dtype=np.float64, order="C")) for k, v in tensors.items()}
        if getattr(self, "_training_stats", None) is not None:
            st = self._training_stats
            mean, gmean, scale, units = st["mean"], st["global_mean"], st["scale"], st["units"]
        else:
            mean, gmean, scale = self.mean_, float(np.nanmean(self.mean_)), float(self.scale_)
            units = self.da_.attrs.get("units")
            if self.obs_.any():  # the training observations' own global mean (pixel means weigh pixels equally)
                gmean = float(self.values_[self.obs_].mean(dtype=np.float64))
        # in the clean orientation, as the network was trained (older checkpoints: the file's order)
        mean = self._clean(np.asarray(mean)[None])[0]
        coords = {key: c for key, (_, c) in zip(("lat", "lon"), _clean_grid(self.da_)) if c is not None}
        # copies: arrays read from a safetensors file are read-only, which torch warns about
        # each auxiliary variable's per-pixel mean beside the field's (clean orientation, as used)
        aux = {f"{AUX_MEAN}{st['name']}": m for st, m in zip(self._aux_stats, self._aux_means)}
        # the land-sea mask trained with: a file on this grid is filled with it when none is given
        sea = (self._training_stats.get("sea") if getattr(self, "_training_stats", None) is not None
               else getattr(self, "sea_", None))
        if sea is not None:
            aux[SEA] = self._clean(np.asarray(sea)[None])[0]
        tensors = {k: torch.from_numpy(np.array(v, dtype=np.float64, order="C"))
                   for k, v in {"mean": mean, **coords, **aux}.items()}
        meta = {"file": STATS, "scale": float(scale), "global_mean": float(gmean),
                "units": None if units is None else str(units), "shape": list(np.shape(mean))}
        return meta, tensors

    def _load(self, path) -> dict:
        """Load checkpoint ``path``'s network and inputs; returns its ``training`` record ({} if none)."""
        from oceandl.training.checkpoint import load_checkpoint

        meta = self._checkpoint_meta(path)
        model, config = load_checkpoint(path, device=self._device, expect_task="interpolation")
        self.model_ = model
        self._model_opts = dict(config.get("model_options", {}))
        self._cfg = {k: meta[k] for k in _FROM_CHECKPOINT}
        if self._cfg["seasonal"]:
            self._cfg["trained_seasonal"] = True
        self._in_channels = int(meta["in_channels"])
        self.sigma_calibration_ = float(meta.get("sigma_calibration", 1.0))
        self.calibration_info_ = None
        self.calibration_text_ = (f"from checkpoint {path}: {meta.get('sigma_calibration_text', 'x1')}"
                                  if "sigma_calibration" in meta else
                                  f"none (checkpoint {path} was saved without a sigma calibration)")
        # which weights filled the file: the output said only `checkpoint` (a path, whose folder can be
        # retrained and overwritten), train_steps 0 and this run's default training options (patch 64,
        # steps None), not those that trained the network
        self.checkpoint_attrs_ = _checkpoint_provenance(path, config)
        training = config.get("training")
        training = training if isinstance(training, dict) else {}
        if training.get("finished") is False:
            # the folder an interrupted `train interpolator` keeps for --resume was used as if trained
            warn(f"{path}: its training stopped at step {training.get('steps_done')} of {training.get('train_steps')} "
                 f"(interrupted{'; sigma not calibrated' if self._cfg['nll'] else ''}): these are the weights so far; "
                 "finish it with `oceandl train interpolator` and the same options plus --resume", UserWarning)
        return training


def checkpoint_aux(path) -> list[str]:
    """The auxiliary variables interpolation checkpoint ``path`` was trained with (its
    ``interpolator.aux`` names, in channel order; [] when none or unreadable: loading it says why)."""
    from oceandl.training.checkpoint import read_config

    try:
        aux = (read_config(path).get("interpolator") or {}).get("aux") or []
        return [str(st["name"]) for st in aux]
    except Exception:  # noqa: BLE001 - a bad checkpoint is refused, with its reason, where it is loaded
        return []


def read_training_stats(path) -> dict[str, Any] | None:
    """The normalisation statistics stored in interpolation checkpoint ``path``, or None if it has none.

    Returns
    -------
    dict or None
        ``mean`` float64 (lat, lon), NaN where never observed; ``global_mean``, ``scale`` (floats);
        ``units`` (str or None); ``coords``: ``{"lat": (lat,), "lon": (lon,)}`` float64, those of
        the training grid's 1-D coordinates it had; ``sea``: bool (lat, lon), the land-sea mask it
        was trained with (True = ocean), or None.

    Raises
    ------
    CheckpointError
        If the statistics file or its metadata is corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from oceandl.training.checkpoint import CONFIG, _check_folder, read_config

    folder = _check_folder(path)
    interp = read_config(folder).get("interpolator") or {}
    meta = interp.get("normalisation")
    if meta is None and not (folder / STATS).exists():
        return None
    where = f"{folder / CONFIG}: interpolator.normalisation"
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where} is missing or not an object, but {STATS} is there")
    try:
        tensors = load_file(str(folder / STATS))
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{folder / STATS}: corrupt normalisation statistics ({exc})") from None
    mean = tensors.get("mean")
    if mean is None or mean.ndim != 2:
        raise CheckpointError(f"{folder / STATS}: needs a 2-D 'mean' tensor, got "
                              f"{'none' if mean is None else mean.shape}")
    for key in ("scale", "global_mean"):
        v = meta.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                or (key == "scale" and v <= 0):
            raise CheckpointError(f"{where}.{key} must be a finite number{' > 0' if key == 'scale' else ''}, "
                                  f"got {v!r:.60}")
    coords = {k: tensors[k] for k in ("lat", "lon") if k in tensors}
    for k, c in coords.items():
        if c.shape != (mean.shape[0 if k == "lat" else 1],):
            raise CheckpointError(f"{folder / STATS}: '{k}' has shape {c.shape}, the mean {mean.shape}")
    aux = {k[len(AUX_MEAN):]: v.astype(np.float64) for k, v in tensors.items() if k.startswith(AUX_MEAN)}
    sea = tensors.get(SEA)
    if sea is not None and (sea.shape != mean.shape or not np.isin(sea, (0, 1)).all() or not sea.any()):
        raise CheckpointError(f"{folder / STATS}: '{SEA}' must be 0 and 1 (some 1), of the mean's shape {mean.shape}")
    for k, v in aux.items():
        if v.shape != mean.shape or not np.isfinite(v).all():
            raise CheckpointError(f"{folder / STATS}: '{AUX_MEAN}{k}' must be finite, of the mean's shape {mean.shape}")
    # a covariate without its mean was normalised by the input's own statistics instead, silently (a
    # single day: by its own spatial mean and spread, not what the network was trained on)
    names = [st.get("name") for st in interp.get("aux") or [] if isinstance(st, dict)]
    for name in names:
        if isinstance(name, str) and name not in aux:
            raise CheckpointError(f"{folder / STATS}: no '{AUX_MEAN}{name}' tensor for auxiliary variable {name!r} "
                                  f"of {CONFIG} interpolator.aux (the checkpoint is damaged or edited)")
    return {"mean": mean.astype(np.float64), "global_mean": float(meta["global_mean"]), "scale": float(meta["scale"]),
            "units": meta.get("units"), "coords": coords, "aux_mean": aux,
            "sea": None if sea is None else sea.astype(bool)}


def check_box_grid(checkpoint, options: dict, bbox, da, where: str) -> None:
    """Refuse ``--bbox`` with a checkpoint whose training grid does not hold the box's grid (``da``,
    (time, lat, lon), lazy or not: only its coordinates are read), unless ``normalisation="input"``
    is asked for (an :class:`InputError` naming both grids).

    The network's training statistics are per pixel and its grid-position channels span the
    training grid. A box whose every latitude and longitude is one of the training grid's (to
    1e-4 degree, either longitude convention), consecutive rows and columns of it, is filled with those statistics cut to its pixels
    and the training grid's positions there (:func:`_sub_grid`), as the whole grid's fill fills
    it (but for the network's receptive field at the box's edges). A box of another region or
    resolution (every other point of it included) fell back to the box's own statistics without a word (``normalisation="auto"``),
    positions rescaled to the box, and is refused.
    """
    if bbox is None or checkpoint is None or (options or {}).get("normalisation") == "input":
        return
    stats = read_training_stats(checkpoint)
    if stats is None:
        return
    shape = tuple(int(n) for n in da.shape[1:])
    if _sub_grid(stats, da) is not None or (tuple(stats["mean"].shape) == shape and len(stats["coords"]) < 2):
        return  # part of the training grid (or the grid itself, of a checkpoint without coordinates)
    ny, nx = stats["mean"].shape
    raise InputError(f"{where}--bbox {','.join(f'{b:g}' for b in bbox)}: checkpoint {checkpoint} was trained on a "
                     f"{ny} x {nx} grid, the box is {shape[0]} x {shape[1]} and not part of it; its per-pixel training "
                     "statistics are that grid's (fill the whole grid and cut the output, train on the box with "
                     "`train interpolator --bbox`, or --set normalisation=input to normalise the box by its own)")


def _find_values(ref: np.ndarray, c: np.ndarray, wrap: bool) -> np.ndarray | None:
    """Indices into ``ref`` of each value of ``c`` (to 1e-4; modulo 360 when ``wrap``), or None if one
    is not there (or two are the same)."""
    if wrap:
        ref, c = np.mod(ref, 360.0), np.mod(c, 360.0)
    order = np.argsort(ref, kind="stable")
    s = ref[order]
    j = np.minimum(np.searchsorted(s, c - 1e-4), s.size - 1)
    d = np.abs(s[j] - c)
    if wrap:  # across 0/360: the other end of the sorted values
        j2 = np.where(c > 180.0, 0, s.size - 1)
        d2 = 360.0 - np.abs(s[j2] - c)
        j, d = np.where(d2 < d, j2, j), np.minimum(d, d2)
    if not (s.size and np.all(d <= 1e-4)) or np.unique(j).size != j.size:
        return None
    return order[j]


def _sub_grid(stats: dict, da) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Where ``da``'s grid lies in checkpoint ``stats``' training grid, a block of it: for lat and lon, the training
    grid's index (in the checkpoint's stored order) of each of ``da``'s rows and columns, and the
    position channel's value there (row or column scaled to [-1, 1] over the training grid in its
    clean orientation, as the whole grid's fill gives it), both in ``da``'s grid order. None if
    one of ``da``'s latitudes or longitudes is not among the checkpoint's coordinates (to 1e-4
    degree, either longitude convention), if they are not consecutive rows and columns of it
    (every other point, or across its edge), or if either grid has no such coordinates."""
    from oceandl.io import _lon_convention, in_degrees

    from .base import _clean_grid

    index, pos = [], []
    for k, ((iy, c), key) in enumerate(zip(_clean_grid(da), ("lat", "lon"))):
        ref = stats["coords"].get(key)
        if ref is None or c is None:
            return None
        ref = np.asarray(ref, dtype=np.float64)
        wrap = k == 1 and in_degrees(da[da.dims[2]].attrs)
        found = _find_values(ref, c, wrap)
        if found is None:
            return None
        # the training grid's clean orientation (its own longitude convention): its position channel's order
        rank = np.empty(ref.size, np.int64)
        rank[np.argsort(_lon_convention(ref) if wrap else ref, kind="stable")] = np.arange(ref.size)
        if np.any(np.diff(rank[found]) != 1):
            # every other point (another resolution), or across the training grid's edge: the network sees
            # other neighbours there than on the training grid
            return None
        at, p = np.empty(c.size, np.int64), np.empty(c.size, np.float32)
        at[iy] = found
        p[iy] = np.linspace(-1, 1, ref.size, dtype=np.float32)[rank[found]]
        index.append(at)
        pos.append(p)
    return index, pos


def fitting_training_stats(path, da, count: np.ndarray, total: np.ndarray) -> tuple[dict | None, str | None]:
    """Checkpoint ``path``'s training statistics and why they do not fit ``da``, or None if they do.

    Parameters
    ----------
    path : an interpolation checkpoint folder.
    da : xarray.DataArray (time, lat, lon), only its grid and ``units`` are read.
    count, total : (lat, lon) observations per pixel and their sum (float64): the input's values,
        read once by the caller (in memory, or the statistics pass of a lazy cube).

    Returns
    -------
    (stats, problem) : :func:`read_training_stats`'s dict (None for a checkpoint without
        statistics), in ``da``'s units when one is kelvin and the other degC, and the reason they
        do not fit (None when they do); when they fit, ``mean`` and ``coords`` are in ``da``'s
        grid order (latitudes descending, longitudes 0..360: the checkpoint's are matched by value).
    """
    stats = read_training_stats(path)
    if stats is None:
        return None, "stores no normalisation statistics (saved by oceandl before they were kept)"
    stats = _in_units_of(stats, da)
    return _stats_mismatch(stats, da, count, total)


def _in_units_of(stats: dict, da) -> dict:
    """``stats`` converted to ``da``'s units when they are kelvin and the checkpoint's degC or the
    reverse (an offset: the scale is the same), else as they are.

    A degC network given a kelvin file (GHRSST L4 and L3 are in kelvin) fell back to the file's own
    statistics: a single day was refused and pixels cloudy all window were left unfilled."""
    theirs, ours = _unit(stats["units"]), _unit(da.attrs.get("units"))
    offset = kelvin_offset(theirs, ours)
    if offset is None:
        return stats
    return {**stats, "mean": stats["mean"] + offset, "global_mean": stats["global_mean"] + offset,
            "units": str(da.attrs["units"])}


def _stats_mismatch(stats: dict, da, count: np.ndarray, total: np.ndarray) -> tuple[dict, str | None]:
    """``stats`` in ``da``'s grid order and why they do not fit ``da`` with per-pixel ``count`` and
    ``total`` (None when they do).

    Both grids are compared in the clean orientation (:func:`~oceandl.interp.base.clean_axes`): a
    checkpoint trained on a file with latitudes descending (or longitudes 0..360) was taken for
    another grid on the same file read by the CLI or ``--chunks`` (sorted), and the input's own
    statistics were used. The value check is per pixel (the mean of value minus training mean over
    the observations), so that a day observed only in the warm south of a basin is not taken for
    another unit."""
    shape = tuple(stats["mean"].shape)
    grid = tuple(da.shape[1:])
    if shape != grid:
        cut = _sub_grid(stats, da)
        if cut is None:
            return stats, f"was trained on a {shape[0]} x {shape[1]} grid, this input is {grid[0]} x {grid[1]}"
        # a box of the training grid: its pixels' statistics, and the training grid's positions there
        (rows, cols), pos = cut
        at = np.ix_(rows, cols)
        stats = {**stats, "mean": stats["mean"][at], "pos": tuple(pos), "whole": stats,
                 "coords": {key: np.asarray(stats["coords"][key], np.float64)[i] for key, i in (("lat", rows), ("lon", cols))},
                 "sea": None if stats.get("sea") is None else stats["sea"][at],
                 "aux_mean": {k: v[at] for k, v in (stats.get("aux_mean") or {}).items()}}
        return _units_mismatch(stats, da, count, total)
    from oceandl.io import _lon_convention, in_degrees

    ours_clean = _clean_grid(da)
    orders, coords = [], {}
    for k, key in enumerate(("lat", "lon")):
        (iy, c), ref = ours_clean[k], stats["coords"].get(key)
        if ref is None:
            orders.append(np.arange(shape[k]))
            continue
        wrap = k == 1 and c is not None and in_degrees(da[da.dims[2]].attrs)
        if wrap:  # the checkpoint's longitudes in the convention of ours (0..360 against -180..180)
            ref = _lon_convention(ref)
        order = np.argsort(ref, kind="stable")  # saved clean since; older checkpoints: the file's order
        orders.append(order)
        coords[key] = np.empty_like(ref)
        coords[key][iy] = ref[order]
        if c is None:
            continue  # nothing to compare: the grid's size has to do
        diff = np.abs(c - ref[order])
        if wrap:
            diff = np.minimum(diff, np.abs(diff - 360.0))
        if not float(diff.max()) <= 1e-4:  # about 10 m: the same grid written by another tool
            return stats, f"was trained on another grid ({da.dims[1 + k]} differs by up to {float(diff.max()):.4g})"
    def to_ours(a):
        out = np.empty_like(a)
        out[np.ix_(ours_clean[0][0], ours_clean[1][0])] = a[np.ix_(*orders)]
        return out

    stats = {**stats, "mean": to_ours(stats["mean"]), "coords": coords,
             "sea": None if stats.get("sea") is None else to_ours(stats["sea"]),
             "aux_mean": {k: to_ours(v) for k, v in (stats.get("aux_mean") or {}).items()}}
    return _units_mismatch(stats, da, count, total)


def _units_mismatch(stats: dict, da, count: np.ndarray, total: np.ndarray) -> tuple[dict, str | None]:
    """``stats`` (on ``da``'s grid) and why their units or values do not fit ``da``'s (None when they do)."""
    theirs, ours = _unit(stats["units"]), _unit(da.attrs.get("units"))
    if theirs is not None and ours is not None and theirs != ours:
        return stats, f"was trained in units {stats['units']!r}, this input is in {da.attrs['units']!r}"
    both = (count > 0) & np.isfinite(stats["mean"])
    if both.any():  # units not said (or said wrongly): kelvin against degC is hundreds of scales away
        shift = float((total[both] - count[both] * stats["mean"][both]).sum() / count[both].sum())
        if abs(shift) > _SHIFT_LIMIT * stats["scale"]:
            return stats, (f"was trained on values {abs(shift) / stats['scale']:.0f} training scales away from this "
                    f"input's (mean difference {shift:+.4g} per pixel: other units?)")
    return stats, None


def _data_digest(x: np.ndarray, obs: np.ndarray, aux: list[np.ndarray] = ()) -> str:
    """SHA-256 of a training input (normalised values and observation mask, and the auxiliary
    variables' values and masks, in the clean orientation), in blocks of days."""
    import hashlib

    digest = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    for k in range(0, x.shape[0], 64):
        digest.update(np.ascontiguousarray(x[k:k + 64]).tobytes())
        digest.update(np.packbits(obs[k:k + 64]).tobytes())
    for a in aux:  # none: the digest of a run without them, as before
        for k in range(0, a.shape[0], 64):
            # values 0 where missing and the mask, as the field's: NaN bit patterns differ between readers
            seen = np.isfinite(a[k:k + 64])
            digest.update(np.where(seen, a[k:k + 64], np.float32(0)).tobytes())
            digest.update(np.packbits(seen).tobytes())
    return digest.hexdigest()


def _day_ranges(days: np.ndarray) -> str:
    """``"1-90, 300-365"``: sorted days of the year as ranges."""
    d = np.unique(np.round(days).astype(int))
    breaks = np.flatnonzero(np.diff(d) > 1)
    starts, ends = np.r_[d[0], d[breaks + 1]], np.r_[d[breaks], d[-1]]
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def _absolute(path) -> str:
    """``path`` (a checkpoint folder, its config.json or weights file) as its absolute resolved path:
    what a checkpoint records of the one it started from, readable from any folder."""
    from pathlib import Path

    return str(Path(path).expanduser().resolve())


def _checkpoint_provenance(path, config: dict) -> dict[str, Any]:
    """Output attrs naming a loaded checkpoint: its path, the SHA-256 of its weights file and its
    ``training`` record (JSON: options, seed, steps, final loss, input variable and grid, source)."""
    from oceandl.training.checkpoint import weights_sha256

    attrs: dict[str, Any] = {"checkpoint": str(path), "checkpoint_sha256": weights_sha256(path)}
    if isinstance(config.get("training"), dict):
        attrs["checkpoint_training"] = json.dumps(config["training"], sort_keys=True)
    if isinstance(config.get("provenance"), dict) and config["provenance"].get("git_commit"):
        attrs["checkpoint_git_commit"] = str(config["provenance"]["git_commit"])
    return attrs


class ConvAEInterpolator(NeuralInterpolator):
    """Convolutional auto-encoder (``conv_ae``, linear output, no skips) as a gap filler."""

    name = "convae"
    model_name = "conv_ae"
    default_model_options = {"width": 16, "depth": 3, "latent_channels": 32, "output": "linear"}
    multiple = 8  # 2**depth of the default; _fit updates it for other depths

    def _build_model(self, in_channels: int) -> "nn.Module":
        self.multiple = 2 ** int(self._model_opts.get("depth", 2))
        return super()._build_model(in_channels)

    def _load(self, path) -> dict:
        training = super()._load(path)
        self.multiple = 2 ** int(self._model_opts.get("depth", 2))
        return training


class UNetInterpolator(NeuralInterpolator):
    """U-Net (``unet``) gap filler."""

    name = "unet"
    model_name = "unet"
    default_model_options = {"width": 16, "depth": 3}


class ResAEInterpolator(NeuralInterpolator):
    """Residual auto-encoder with additive skips (``resae``, DINCAE-like) gap filler."""

    name = "resae"
    model_name = "resae"
    default_model_options = {"width": 16, "depth": 3, "skip": True}


class SMPUnetInterpolator(NeuralInterpolator):
    """segmentation_models_pytorch U-Net (``smp_unet``, random-init ResNet-18 encoder) gap filler."""

    name = "smp_unet"
    model_name = "smp_unet"
    libraries = ("torch", "segmentation-models-pytorch")  # smp's code builds the network
    default_model_options = {"encoder_name": "resnet18", "encoder_depth": 4, "decoder_channels": [128, 64, 32, 16]}
    default_steps = 400  # ~3x the cost per step of the 16-wide U-Net
