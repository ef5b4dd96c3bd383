"""A fitted climatology / eof / DINEOF saved to a checkpoint folder and loaded back to fill other periods."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from oceandl.cli.main import cli
from oceandl.errors import CheckpointError, InputError
from oceandl.interp import DINEOF, Climatology, EOFInterpolator, interpolate, load_fitted

from fakes import assert_cli_error, seasonal_anomaly_cube

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FITS = {
    "climatology": lambda: Climatology(harmonics=2),
    "eof": lambda: EOFInterpolator(n_modes=3, harmonics=2),
    "dineof": lambda: DINEOF(harmonics=2, n_modes=3, error_map=True, seed=0),
}


@pytest.fixture(scope="module")
def periods():
    gappy, truth = seasonal_anomaly_cube(nt=560, seed=3)
    return gappy[:500], gappy[500:]


@pytest.fixture(scope="module")
def saved(periods, tmp_path_factory):
    past, _ = periods
    d = tmp_path_factory.mktemp("fits")
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small cube's calibration warnings
        for name, make in FITS.items():
            models[name] = make().fit(past)
            models[name].save(d / name)
    return d, models


@pytest.mark.parametrize("name", sorted(FITS))
def test_a_saved_fit_fills_as_the_fit_in_memory(periods, saved, name):
    _, new = periods
    d, models = saved
    loaded = load_fitted(d / name)
    assert type(loaded) is type(models[name]) and loaded.options == models[name].options
    a, b = models[name].transform(new), loaded.transform(new)
    for v in a.data_vars:
        np.testing.assert_array_equal(b[v].values, a[v].values)
    assert b["sst"].attrs["fitted_on"] == a["sst"].attrs["fitted_on"] + f" (saved in {d / name})"
    for k in ("method", "options", "harmonics") + (("n_modes",) if name != "climatology" else ()):
        assert b["sst"].attrs[k] == a["sst"].attrs[k], k
    if "sigma" in a:
        assert b["sigma"].attrs == a["sigma"].attrs
    with pytest.raises(InputError, match="loaded from .*transform\\(\\)"):
        loaded.reconstruct()
    # the Python one-call form, from the folder
    c = interpolate(new, name, fit_on=d / name)
    np.testing.assert_array_equal(c.values, a["sst"].values)


def test_a_loaded_fit_fitted_again_is_an_ordinary_fit(periods, saved):
    past, new = periods
    d, _ = saved
    m = load_fitted(d / "eof")
    m.fit(past[:400])
    ref = EOFInterpolator(n_modes=3, harmonics=2).fit(past[:400])
    np.testing.assert_array_equal(m.reconstruct()["sst"].values, ref.reconstruct()["sst"].values)
    assert "saved in" not in m.transform(new)["sst"].attrs["fitted_on"]


def _edit(src, dst, config=None, arrays=None):
    """A copy of the saved fit ``src`` at ``dst`` with config.json and tensors edited."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(src, dst)
    if config is not None:
        cfg = json.loads((dst / "config.json").read_text())
        config(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    if arrays is not None:
        t = load_file(str(dst / "weights.safetensors"))
        arrays(t)
        save_file(t, str(dst / "weights.safetensors"))
    return dst


@pytest.mark.parametrize("edit, words", [
    (dict(config=lambda c: c["fitted"]["state"].update(k=99)), "'V' has shape \\(172, 3\\), \\(172, 99\\) expected"),
    (dict(config=lambda c: c["fitted"]["state"].update(k=9999)), "k 9999 is not"),
    (dict(config=lambda c: c["fitted"]["state"].pop("label")), "state does not fit .*'label'"),
    (dict(config=lambda c: c["fitted"].update(scale=-1.0)), "scale -1.0"),
    (dict(config=lambda c: c["interpolator"].update(method="unet")), "'unet' is not one"),
    (dict(config=lambda c: c["interpolator"]["options"].update(n_modes=0)), "n_modes"),
    (dict(config=lambda c: c.update(task="classification")), "not a fitted climatology"),
    (dict(config=lambda c: c["fitted"].update(shape=[3, 4])), "has shape"),
    (dict(arrays=lambda t: t.__setitem__("V", t["V"] * np.nan)), "'V' holds NaN"),
    (dict(arrays=lambda t: t.pop("Q")), "no 'Q'"),
    (dict(arrays=lambda t: t.__setitem__("r_oi", -t["r_oi"])), "must be positive"),
    (dict(arrays=lambda t: t.__setitem__("phi", t["phi"] + 1)), "phi .* must be in \\[0, 1\\)"),
    (dict(config=lambda c: c["fitted"]["state"].update(time_step=[-1, "seconds"])), "time_step \\[-1, 'seconds'\\]"),
    (dict(config=lambda c: c["fitted"]["state"].update(time_step=[86400, "days"])), "time_step .* is not"),
    (dict(arrays=lambda t: t.__setitem__("mean", np.nan_to_num(t["mean"]).astype(np.int64))), "'mean' is int64"),
])
def test_edited_or_damaged_fits_are_refused_naming_the_folder(saved, tmp_path, edit, words):
    d, _ = saved
    bad = _edit(d / "dineof", tmp_path / "bad", **edit)
    with pytest.raises(CheckpointError, match=words) as err:
        load_fitted(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_pickle_and_network_folders_are_refused(saved, tmp_path):
    d, _ = saved
    trunc = _edit(d / "eof", tmp_path / "trunc")
    (trunc / "weights.safetensors").write_bytes((trunc / "weights.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_fitted(trunc)
    import pickle

    (tmp_path / "fit.pkl").write_bytes(pickle.dumps({"E": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_fitted(tmp_path / "fit.pkl")
    with pytest.raises(CheckpointError, match="not found"):
        load_fitted(tmp_path / "nothing")


def test_save_refusals(periods, saved, tmp_path):
    past, _ = periods
    with pytest.raises(InputError, match="call fit\\(\\) before save"):
        DINEOF().save(tmp_path / "x")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("keep me")
    m = Climatology(harmonics=0).fit(past[:50])
    with pytest.raises(InputError, match="already exists"):
        m.save(tmp_path / "data")
    with pytest.raises(InputError, match="not an earlier checkpoint"):
        m.save(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "mine.txt").read_text() == "keep me"
    d, _ = saved
    with pytest.raises(InputError, match="fit_on: a fitted 'eof', not the method 'dineof'"):
        interpolate(past, "dineof", fit_on=d / "eof")
    with pytest.raises(InputError, match="takes no options"):
        interpolate(past, "eof", fit_on=d / "eof", n_modes=4)
    with pytest.raises(InputError, match="takes no options \\(got transform_smoother\\)"):
        interpolate(past, "eof", fit_on=d / "eof", transform_smoother=False)


def _cli_fit(periods, tmp_path, out: str, *args):
    """past.nc and new.nc written in ``tmp_path``, and ``train interpolator past.nc *args -o out`` run."""
    past, new = periods
    past.to_netcdf(tmp_path / "past.nc")
    new.to_netcdf(tmp_path / "new.nc")
    res = CliRunner().invoke(cli, ["train", "interpolator", str(tmp_path / "past.nc"), *args, "--quiet",
                                   "-o", str(tmp_path / out)])
    assert res.exit_code == 0, res.output
    return res


def test_cli_train_then_fill_with_the_saved_fit(periods, tmp_path):
    past, new = periods
    runner = CliRunner()
    res = _cli_fit(periods, tmp_path, "decade", "--method", "dineof", "--set", "harmonics=2", "--set", "n_modes=3")
    assert "dineof (3 modes): fitted on" in res.output and "--fit-on" in res.output
    # --method left out: the saved fit's
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "new.nc"), "--fit-on", str(tmp_path / "decade"),
                              "--withhold", "0", "--quiet", "-o", str(tmp_path / "out.nc")])
    assert res.exit_code == 0, res.output
    ref = DINEOF(harmonics=2, n_modes=3).fit(past).transform(new)
    with xr.open_dataset(tmp_path / "out.nc") as ds:
        np.testing.assert_allclose(ds["sst"].values, ref["sst"].values, rtol=0, atol=1e-5)
        assert ds["sst"].attrs["method"] == "dineof" and "saved in" in ds["sst"].attrs["fitted_on"]
    for args, parts in [
        (["--method", "eof"], [f"--fit-on {tmp_path / 'decade'}: a fitted 'dineof', not the method 'eof'"]),
        (["--set", "n_modes=4"], [f"--fit-on {tmp_path / 'decade'}: a fitted method takes no options but "
                                  "transform_smoother, transform_calibration (got n_modes)"]),
        (["--set", "transform_smoother=maybe"], ["transform_smoother must be True or False"]),
    ]:
        res = runner.invoke(cli, ["interpolate", str(tmp_path / "new.nc"), "--fit-on", str(tmp_path / "decade"),
                                  *args, "--quiet", "-o", str(tmp_path / "no.nc")])
        assert_cli_error(res, 2, *parts)
    # the transform's own option is taken with a saved fit: each new day alone
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "new.nc"), "--fit-on", str(tmp_path / "decade"),
                              "--set", "transform_smoother=false", "--withhold", "0", "--quiet",
                              "-o", str(tmp_path / "alone.nc")])
    assert res.exit_code == 0, res.output
    alone = DINEOF(harmonics=2, n_modes=3, transform_smoother=False).fit(past).transform(new)
    with xr.open_dataset(tmp_path / "alone.nc") as ds:
        np.testing.assert_allclose(ds["sst"].values, alone["sst"].values, rtol=0, atol=1e-5)
        assert np.nanmax(np.abs(ds["sst"].values - ref["sst"].values)[np.isnan(new.values)]) > 0.01
    (tmp_path / "empty").mkdir()
    res = runner.invoke(cli, ["interpolate", str(tmp_path / "new.nc"), "--fit-on", str(tmp_path / "empty"),
                              "--quiet", "-o", str(tmp_path / "no.nc")])
    assert_cli_error(res, 2, "empty", "not an oceandl checkpoint")
    res = runner.invoke(cli, ["train", "interpolator", str(tmp_path / "past.nc"), "--method", "eof", "--epochs", "3",
                              "-o", str(tmp_path / "e")])
    assert_cli_error(res, 2, "epochs")
    assert not (tmp_path / "no.nc").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("name", sorted(FITS))
def test_a_loaded_fit_saved_again_round_trips(periods, saved, tmp_path, name):
    # save() of a loaded fit read attributes only a fit in memory has (AttributeError)
    _, new = periods
    d, models = saved
    loaded = load_fitted(d / name)
    loaded.save(tmp_path / "again")
    again = load_fitted(tmp_path / "again")
    a, b = models[name].transform(new[:20]), again.transform(new[:20])
    for v in a.data_vars:
        np.testing.assert_array_equal(b[v].values, a[v].values)
    for k in set(a["sst"].attrs) - {"fitted_on", "history"}:
        assert str(b["sst"].attrs[k]) == str(a["sst"].attrs[k]), k
    if "sigma" in a:
        assert b["sigma"].attrs == a["sigma"].attrs
    # what it was fitted on, once, and where it was last saved (not a chain of folders)
    assert b["sst"].attrs["fitted_on"] == a["sst"].attrs["fitted_on"] + f" (saved in {tmp_path / 'again'})"


def test_save_gives_torch_writable_arrays(periods, tmp_path, monkeypatch):
    # the grid's coordinates (read-only pandas index values) went to torch.from_numpy as they were:
    # every save printed PyTorch's "The given NumPy array is not writable ... undefined behavior"
    import torch

    past, _ = periods
    real, read_only = torch.from_numpy, []

    def from_numpy(a):
        if not a.flags.writeable:
            read_only.append(a.shape)
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", from_numpy)
    Climatology(harmonics=0).fit(past[:50]).save(tmp_path / "c")
    assert read_only == []
    from safetensors.numpy import load_file

    assert "coord_lat" in load_file(str(tmp_path / "c" / "weights.safetensors"))


@pytest.mark.parametrize("name, edit, words", [
    # "false" is a true string: the fill kept the observations the file said not to
    ("eof", dict(config=lambda c: c["interpolator"].update(keep_observed="false")), "keep_observed 'false' is not"),
    ("climatology", dict(config=lambda c: c["interpolator"].update(keep_observed=0)), "keep_observed 0 is not"),
    # a negative error std was written to the output's sigma as it was
    ("climatology", dict(arrays=lambda t: t.__setitem__("sigma", -t["sigma"])), "sigma .*negative"),
])
def test_edited_fits_other_methods_are_refused(saved, tmp_path, name, edit, words):
    d, _ = saved
    bad = _edit(d / name, tmp_path / "bad", **edit)
    with pytest.raises(CheckpointError, match=words) as err:
        load_fitted(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def _bfloat16(path, key):
    """The saved fit at ``path`` with tensor ``key`` in bfloat16 (a type NumPy has not)."""
    import torch
    from safetensors.torch import load_file, save_file

    t = load_file(str(path / "weights.safetensors"))
    t[key] = t[key].to(torch.bfloat16)
    save_file(t, str(path / "weights.safetensors"))


@pytest.mark.parametrize("name, key", [("climatology", "sigma"), ("eof", "E"), ("dineof", "V")])
def test_arrays_of_lower_precision_are_refused(saved, tmp_path, name, key):
    # save() writes float64: a float16 array (rounded to 3 digits) filled otherwise, silently, and a
    # bfloat16 one (which NumPy cannot read) was a TypeError traceback
    d, _ = saved
    bad = _edit(d / name, tmp_path / "half", arrays=lambda t: t.__setitem__(key, t[key].astype(np.float16)))
    with pytest.raises(CheckpointError, match=f"'{key}' is float16, float64 expected"):
        load_fitted(bad)
    bf = _edit(d / name, tmp_path / "bf")
    _bfloat16(bf, key)
    with pytest.raises(CheckpointError, match="weights.safetensors: corrupt or unreadable .*bfloat16") as err:
        load_fitted(bf)
    assert "\n" not in str(err.value)


def test_save_source_may_be_a_path(periods, tmp_path):
    # a pathlib.Path source (what the caller read the field from) was a JSON TypeError traceback
    from pathlib import Path

    past, _ = periods
    Climatology(harmonics=0).fit(past[:50]).save(tmp_path / "c", source=Path("sst_2015-2024.nc"))
    assert json.loads((tmp_path / "c" / "config.json").read_text())["fitted"]["source"] == "sst_2015-2024.nc"


def test_help_shows_the_saved_fit():
    # `interpolate --help` showed --fit-on with a file only, and `train interpolator --help` began
    # "Train a neural gap filler", though it fits and saves the climatology, eof and dineof too
    runner = CliRunner()
    text = runner.invoke(cli, ["interpolate", "--help"]).output
    assert "oceandl train interpolator sst_2015-2024.nc --method dineof -o dineof_decade" in text
    assert "oceandl interpolate today.nc --fit-on dineof_decade -o today_filled.nc" in text
    text = runner.invoke(cli, ["train", "interpolator", "--help"]).output
    assert "or fit a climatology, eof or dineof" in " ".join(text.split())


def test_cli_model_given_a_saved_fit_points_to_fit_on(periods, saved, tmp_path):
    # `--model FOLDER` of a saved dineof said "method 'dineof' fits the file itself and takes no
    # checkpoint" (or, with --method unet, "task 'interpolation' is needed"): never that FOLDER is a fit
    _, new = periods
    d, _ = saved
    new.to_netcdf(tmp_path / "new.nc")
    for method in ([], ["--method", "dineof"], ["--method", "unet"]):
        res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "new.nc"), "--model", str(d / "dineof"), *method,
                                       "--quiet", "-o", str(tmp_path / "out.nc")])
        assert_cli_error(res, 2, f"--model {d / 'dineof'}: a saved dineof fit, not a network's checkpoint",
                         f"--fit-on {d / 'dineof'}")
    assert not (tmp_path / "out.nc").exists()


def test_a_damaged_saved_fit_is_said_before_input_is_read_and_edited_attrs_keep_the_provenance(saved, periods,
                                                                                               tmp_path):
    d, _ = saved
    _, new = periods
    bad = _edit(d / "eof", tmp_path / "bad", arrays=lambda t: t.pop("E"))
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "missing.nc"), "--fit-on", str(bad), "--quiet",
                                   "-o", str(tmp_path / "o.nc")])
    assert_cli_error(res, 2, str(bad), "no 'E'")  # the folder first, not the missing INPUT
    res = CliRunner().invoke(cli, ["interpolate", str(tmp_path / "missing.nc"), "--fit-on", str(d / "eof"),
                                   "--method", "dineof", "--quiet", "-o", str(tmp_path / "o.nc")])
    assert_cli_error(res, 2, "a fitted 'eof', not the method 'dineof'")
    edited = _edit(d / "eof", tmp_path / "edited",
                   config=lambda c: c["fitted"]["fit_attrs"].update(method="kriging", n_modes=3))
    out = load_fitted(edited).transform(new)["sst"]
    assert out.attrs["method"] == "eof" and "gaps filled with method eof" in out.attrs["history"]


def test_a_loaded_fit_saved_again_keeps_its_source_and_config_json_names_the_folder(periods, tmp_path):
    runner = CliRunner()
    _cli_fit(periods, tmp_path, "fit", "--method", "eof", "--set", "n_modes=3")
    load_fitted(tmp_path / "fit").save(tmp_path / "again")
    cfg = json.loads((tmp_path / "again" / "config.json").read_text())
    assert cfg["fitted"]["source"] == str(tmp_path / "past.nc")
    # the folder's config.json given for the folder: the same fill, not "not a readable netCDF file"
    outs = []
    for fit in (tmp_path / "fit", tmp_path / "fit" / "config.json"):
        out = tmp_path / f"o{len(outs)}.nc"
        res = runner.invoke(cli, ["interpolate", str(tmp_path / "new.nc"), "--fit-on", str(fit), "--withhold", "0",
                                  "--quiet", "-o", str(out)])
        assert res.exit_code == 0, res.output
        with xr.open_dataset(out) as ds:
            outs.append(ds["sst"].values)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("device, words", [("bogus", "not a device name"), ("cuda:99", "cuda")])
def test_load_refuses_a_device_it_cannot_use_before_reading(saved, device, words):
    # a bogus device was accepted and failed only at the first transform
    with pytest.raises(InputError, match=words):
        load_fitted(saved[0] / "dineof", device=device)
    assert load_fitted(saved[0] / "dineof", device="cpu").device == "cpu"


def test_a_fit_saved_before_the_smoother_fills_each_step_alone(periods, saved, tmp_path):
    # fits saved before transform_smoother have no phi and no time_step: they fill as they did then
    d, models = saved
    _, new = periods
    old = _edit(d / "dineof", tmp_path / "old", arrays=lambda t: t.pop("phi"),
                config=lambda c: c["fitted"]["state"].pop("time_step"))
    alone = models["dineof"]
    alone.options["transform_smoother"] = False  # the same fit, each step alone
    try:
        got, want = load_fitted(old).transform(new), alone.transform(new)
    finally:
        alone.options["transform_smoother"] = True
    np.testing.assert_array_equal(got["sst"].values, want["sst"].values)
    np.testing.assert_array_equal(got["sigma"].values, want["sigma"].values)
    # and the saved fit of now smooths: not the same fill
    assert not np.array_equal(load_fitted(d / "dineof").transform(new)["sst"].values, want["sst"].values)


def test_a_fit_saved_before_the_smoother_saves_again(periods, saved, tmp_path):
    # its phi is None once loaded: save() read phi.numpy() (AttributeError)
    d, _ = saved
    _, new = periods
    old = load_fitted(_edit(d / "dineof", tmp_path / "old", arrays=lambda t: t.pop("phi"),
                            config=lambda c: c["fitted"]["state"].pop("time_step")))
    old.save(tmp_path / "again")
    again = load_fitted(tmp_path / "again")
    assert again._modes["phi"] is None
    a, b = old.transform(new[:20]), again.transform(new[:20])
    for v in a.data_vars:
        np.testing.assert_array_equal(b[v].values, a[v].values)


def test_fit_on_a_fitted_model_with_the_smoother_off_leaves_the_model_as_it_was(periods, saved):
    _, models = saved
    _, new = periods
    m = models["dineof"]
    off = interpolate(new, "dineof", fit_on=m, transform_smoother=False, return_dataset=True)
    assert m.options["transform_smoother"] is True  # a copy took the option
    on = interpolate(new, "dineof", fit_on=m, return_dataset=True)
    gap = np.isnan(new.values)
    assert np.nanmax(np.abs(off["sst"].values - on["sst"].values)[gap]) > 0.01
    np.testing.assert_array_equal(on["sst"].values, m.transform(new)["sst"].values)
