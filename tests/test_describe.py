"""`oceandl info PATH` (:func:`oceandl.describe.describe`): what a checkpoint folder, a saved fit or a
netCDF file holds, from headers alone; each fact checked against the file it describes."""
from __future__ import annotations

import json
import warnings
from importlib import metadata

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import assert_cli_error
from test_faults import _tree
from test_interp_resume import _interrupt, _opts
from test_neural_interp import _cube

from oceandl.cli.main import cli
from oceandl.describe import _num, describe
from oceandl.interp import METHODS, interpolate
from oceandl.models import count_parameters, get_model
from oceandl.training import TensorData, TrainConfig, fit


def _config(folder) -> dict:
    return json.loads((folder / "config.json").read_text())


@pytest.fixture(scope="module")
def cube():
    return _cube(12, 24, 24, 0.4, seed=0)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    out = root / "ck"
    res = CliRunner().invoke(cli, ["train", "classifier", "--data", str(_tree(root / "data")), "--model", "cnn",
                                   "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_a_finished_classifier(classifier):
    facts, cfg = describe(classifier), _config(classifier)
    assert facts["kind"] == "classifier checkpoint" and facts["model"] == "cnn"
    assert facts["classes"] == "3 (a, b, c)" and facts["input channels"] == 1
    assert facts["training"] == "2 of 2 epochs" and facts["best epoch"] == cfg["best_epoch"]
    assert facts["test metrics"].startswith(f"accuracy {_num(cfg['metrics']['accuracy'])}, macro_f1 ")
    assert facts["split (train, val, test)"] == ", ".join(map(str, cfg["split_sizes"]))
    n = count_parameters(get_model("cnn", *cfg["model_args"], **cfg["model_options"]))
    assert facts["parameters"] == f"{n:,}"
    assert "resumable" not in facts  # finished: its state is not one to go on from
    assert f"torch {torch.__version__}" in facts["written with"]
    if cfg["provenance"].get("git_commit"):
        assert facts["git commit"].startswith(cfg["provenance"]["git_commit"][:12])


def test_the_command_prints_the_facts_and_json(classifier):
    res = CliRunner().invoke(cli, ["info", str(classifier)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split(None, 1) == ["path:", str(classifier)]
    assert any(line.startswith("classes:") and line.endswith("3 (a, b, c)") for line in lines)
    res = CliRunner().invoke(cli, ["info", str(classifier / "config.json"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == describe(classifier)


def test_a_classifier_stopped_inside_an_epoch(tmp_path):
    """Ctrl-C in epoch 2's second batch: the facts say the run is unfinished and where --resume
    goes on (after epoch 2's first batch)."""
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.rand(64, 1, 16, 16, generator=g), torch.arange(64) % 2)
    model = get_model("cnn", 1, 2, channels=(4, 8), hidden=8)
    calls = []

    def ctrl_c(module, args):
        calls.append(module.training)  # the engine's probes of the output size run in eval mode
        if calls.count(True) == 6:  # 4 batches an epoch: epoch 2, batch 2
            raise KeyboardInterrupt

    model.register_forward_pre_hook(ctrl_c)
    meta = dict(model_name="cnn", model_args=[1, 2], model_options={"channels": [4, 8], "hidden": 8})
    with pytest.raises(KeyboardInterrupt, match="epoch 2 of 2, batch 1 of 4, is saved"):
        fit(model, data, None, TrainConfig(epochs=2, batch_size=16, progress=False, device="cpu"),
            out=tmp_path / "ck", checkpoint_meta=meta)
    facts = describe(tmp_path / "ck")
    assert facts["training"] == "1 of 2 epochs (unfinished: stopped before the end)"
    assert facts["resumable"] == "a training state after epoch 2, batch 1 (--resume goes on from it)"
    # a checkpoint written before the `finished` key: told by its epochs (fewer done, no early stopping)
    config = _config(tmp_path / "ck")
    del config["finished"]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    assert describe(tmp_path / "ck")["training"] == "1 of 2 epochs (unfinished: stopped before the end)"
    config["training"]["early_stopping"] = 3  # it may have stopped early on purpose: not said
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    assert describe(tmp_path / "ck")["training"] == "1 of 2 epochs"


def test_an_auto_encoder(tmp_path):
    """A reconstruction checkpoint (trained by the engine): its kind, model and parameters, no classes."""
    g = torch.Generator().manual_seed(0)
    model = get_model("conv_ae", 1, width=4, depth=2)
    fit(model, TensorData(torch.rand(32, 1, 16, 16, generator=g)), None,
        TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"), task="reconstruction",
        out=tmp_path / "ae", checkpoint_meta=dict(model_name="conv_ae", model_args=[1],
                                                  model_options={"width": 4, "depth": 2}))
    facts = describe(tmp_path / "ae")
    assert facts["kind"] == "auto-encoder checkpoint" and facts["model"] == "conv_ae(width=4, depth=2)"
    assert facts["parameters"] == f"{count_parameters(model):,}" and "classes" not in facts
    assert facts["training"] == "1 of 1 epochs" and "resumable" not in facts


def test_an_interrupted_neural_gap_filler(cube, tmp_path):
    _interrupt(METHODS["unet"], cube, tmp_path / "run", 3, **_opts())
    facts, training = describe(tmp_path / "run"), _config(tmp_path / "run")["training"]
    assert facts["kind"] == "neural gap filler checkpoint" and facts["method"] == "unet"
    assert facts["training"] == "3 of 6 steps (unfinished: stopped before the end)"
    assert facts["resumable"] == "a training state at step 3 of 6 (--resume goes on from it)"
    assert facts["trained on"] == "variable 'sst', time 12 x lat 24 x lon 24"
    losses = training["loss_history"]
    assert facts["loss"] == f"{_num(losses[0])} -> {_num(losses[-1])} (first and last step)"
    assert facts["days of the year seen"].endswith(f"({len(training['days_of_year'])} days)")


def test_a_saved_dineof_fit(cube, tmp_path):
    fitted = METHODS["dineof"](n_modes=2, seed=0).fit(cube)
    fitted.save(tmp_path / "fit")
    facts = describe(tmp_path / "fit")
    assert facts["method"] == "dineof" and facts["kind"].startswith("fitted gap filler")
    assert facts["grid"] == "lat 24 x lon 24" and "n_modes=2" in facts["fit"]
    assert facts["fitted on"].startswith("variable 'sst', 12 steps")
    assert "parameters" not in facts and "resumable" not in facts


def test_netcdf_files(cube, tmp_path):
    ds = interpolate(cube, "climatology", return_dataset=True, withhold=0.1, seed=0)
    ds.to_netcdf(tmp_path / "filled.nc")
    facts = describe(tmp_path / "filled.nc")
    assert facts["kind"] == "netCDF written by oceandl" and facts["method"] == "climatology"
    assert facts["dimensions"] == "time 12, lat 24, lon 24"
    assert facts["validation (withheld pixels)"].startswith(f"rmse {_num(ds['sst'].attrs['val_rmse'])}, ")
    assert f"numpy {metadata.version('numpy')}" in facts["oceandl software"]
    plain = cube.to_dataset()
    plain["sst"].encoding["_FillValue"], plain["sst"].attrs["missing_value"] = -1.0, -2.0  # two fill values
    plain.to_netcdf(tmp_path / "plain.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray's decoding warning is not about the header: not shown
        facts = describe(tmp_path / "plain.nc")
    assert facts["kind"] == "netCDF file" and facts["variables"] == "sst(time, lat, lon)" and "method" not in facts


def test_a_benchmark_run_folder(tmp_path):
    """A run folder (results.json with the runner's keys, results.md beside it): the benchmark,
    its rows, seed, device, the re-run command and the commit."""
    from oceandl.pipelines.runner import RESULTS_KEYS

    res = dict.fromkeys(RESULTS_KEYS)
    res.update(pipeline="sst", results={"dineof@0.3": {"rmse": 0.4}, "eof@0.3": {"rmse": 0.5}}, seed=3, device="cpu",
               command="oceandl benchmark sst --seed 3 -o /runs/sst", seconds=12.345, git_commit="0123456789abcdef0",
               git_dirty=False, versions={"oceandl": "0.1.0", "torch": None})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(res))
    (tmp_path / "run" / "results.md").write_text("| table |")
    for path in (tmp_path / "run", tmp_path / "run" / "results.json"):
        facts = describe(path)
        assert facts["kind"] == "benchmark run (sst)" and facts["rows"] == "2: dineof@0.3, eof@0.3"
        assert facts["seed"] == 3 and facts["seconds"] == "12.35" and facts["table"].endswith("results.md")
        assert facts["run it again"] == res["command"] and facts["git commit"] == "0123456789ab"
        assert facts["written with"] == "oceandl 0.1.0"  # a library not there is not listed
    (tmp_path / "run" / "results.json").write_text(json.dumps({"rows": []}))
    assert_cli_error(CliRunner().invoke(cli, ["info", str(tmp_path / "run")]), 2, "not the results of an oceandl benchmark")


def test_bad_paths_are_one_line_errors(classifier, tmp_path):
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / "broken.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    (tmp_path / "bad" / "weights.safetensors").write_bytes(b"")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text("{}")
    for path, says in ((tmp_path / "nothing", "no such file or folder"),
                       (tmp_path / "notes.txt", "neither a checkpoint folder nor a netCDF file"),
                       (tmp_path / "broken.nc", "not a readable netCDF file, truncated or corrupt"),
                       (tmp_path / "empty", "an empty folder; info describes a checkpoint folder"),
                       (tmp_path / "bad", "corrupt JSON"),
                       (tmp_path / "noweights", "not an oceandl checkpoint (weights.safetensors is missing)")):
        assert_cli_error(CliRunner().invoke(cli, ["info", str(path)]), 2, str(path.name), says)
    assert np.all([p.exists() for p in (tmp_path / "notes.txt", tmp_path / "bad" / "config.json")])


def test_an_edited_config_of_other_types_is_a_one_line_error(classifier, tmp_path):
    """A config.json whose values have other types than oceandl writes ("training": "fast", a
    loss "a") stopped `info` with a bare AttributeError or TypeError (exit 1): now one line naming
    the file (exit 2), as the checkpoint reader's own refusals."""
    import shutil

    for key, value in (("training", "fast"), ("metrics", [1]), ("provenance", {"versions": ["torch"]})):
        folder = tmp_path / key
        shutil.copytree(classifier, folder)
        config = _config(folder)
        config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
        assert_cli_error(CliRunner().invoke(cli, ["info", str(folder)]), 2, str(folder / "config.json"),
                         "a value of an unexpected type")


def test_netcdf_facts_of_another_tool_and_of_groups(tmp_path):
    """A file oceandl did not write showed its variables' ``method`` attribute as the fill's method
    and a global ``val_*`` as validation scores of withheld pixels; a netCDF-4 file whose data are
    in groups said it had no dimensions nor variables (xarray opens the root group alone)."""
    import xarray as xr

    ds = xr.Dataset({"v": ("t", np.arange(2.0), {"method": "linear"})}, attrs={"val_id": "abc", "method": "x"})
    ds.to_netcdf(tmp_path / "other.nc")
    facts = describe(tmp_path / "other.nc")
    assert facts["kind"] == "netCDF file" and "method" not in facts and "validation (withheld pixels)" not in facts
    xr.Dataset().to_netcdf(tmp_path / "grouped.nc")
    ds.to_netcdf(tmp_path / "grouped.nc", group="obs", mode="a")
    facts = describe(tmp_path / "grouped.nc")
    assert facts["variables"] == "" and facts["groups"] == "/obs (v)"
    assert "groups" not in describe(tmp_path / "other.nc")


def test_info_on_data_says_what_var_bbox_and_dates_would_work_with(tmp_path):
    """A data file, a folder of daily files and a quoted pattern: the field, its time span and step,
    the grid's extent and the --bbox of the whole grid (headers and coordinates only)."""
    from fakes import write_l3_days

    write_l3_days(tmp_path / "days", nt=6, ny=16, nx=20, whole=tmp_path / "whole.nc")
    one = describe(tmp_path / "whole.nc")
    assert one["kind"] == "netCDF file"
    assert one["field (--var)"].startswith("sea_surface_temperature (kelvin)")
    assert one["time (--dates)"] == "2020-01-01 to 2020-01-06, 6 steps, daily"
    assert one["lat"] == "40 to 47.5, 16 points, step 0.5"
    assert one["whole grid (--bbox)"] == "--bbox=-10,40,-0.5,47.5"
    for source in (tmp_path / "days", str(tmp_path / "days" / "2020010*.nc")):
        many = describe(source)
        assert many["kind"] == "6 netCDF files read as one series"
        assert many["files"] == "20200101-L3.nc ... 20200106-L3.nc"
        assert {k: many[k] for k in ("field (--var)", "time (--dates)", "lat", "lon", "whole grid (--bbox)")} == \
            {k: one[k] for k in ("field (--var)", "time (--dates)", "lat", "lon", "whole grid (--bbox)")}
    (tmp_path / "days" / "20200103-L3.nc").write_bytes(b"not netCDF")  # the series fails as the commands would
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "days")], prog_name="oceandl")
    assert_cli_error(res, 2, "20200103-L3.nc", "not a readable netCDF file")
