"""The gappy-SST benchmark (``oceandl benchmark sst``): structure and consistency of its results."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from oceandl.errors import InputError
from oceandl.pipelines import get_pipeline, run_pipeline
from oceandl.pipelines.sst import COVER_BINS, parse_method_options, truth_rmse_by_day_cover

METHODS = ("climatology", "eof", "dineof", "unet")


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sst") / "run"
    folder, results = run_pipeline(get_pipeline("sst"), out,
                                   overrides={"fast": True, "seed": 2, "cloud_covers": (0.3, 0.7), "methods": METHODS},
                                   device="cpu", progress=False, log=lambda s: None)
    return folder, results


def test_fast_run_rows_metrics_and_files(fast_run):
    folder, results = fast_run
    on_disk = json.loads((folder / "results.json").read_text())["results"]
    assert set(on_disk) == {f"{m}@{c:g}" for m in METHODS for c in (0.3, 0.7)}
    for name, row in on_disk.items():
        assert row["method"] == name.split("@")[0] and row["cloud_cover"] == float(name.split("@")[1])
        assert math.isfinite(row["val_rmse"]) and row["val_rmse"] > 0 and row["val_n"] > 0
        assert math.isfinite(row["truth_rmse"]) and row["truth_rmse"] > 0
        # the day bins partition the days, and the all-gaps RMSE lies within the range of the bins'
        n_days = [row[f"n_days_{int(lo * 100)}_{int(hi * 100)}"] for lo, hi in COVER_BINS]
        assert sum(n_days) == 24
        bins = [row[f"truth_rmse_days_{int(lo * 100)}_{int(hi * 100)}"] for lo, hi in COVER_BINS]
        present = [b for b, n in zip(bins, n_days) if n]
        assert all(math.isfinite(b) for b in present)
        assert min(present) - 1e-9 <= row["truth_rmse"] <= max(present) + 1e-9
    # the same withheld pixels for every method at one cover
    for c in (0.3, 0.7):
        assert len({on_disk[f"{m}@{c:g}"]["val_n"] for m in METHODS}) == 1
    # more cloud, more gap days in the high bins
    hi = lambda c: on_disk[f"climatology@{c:g}"]["n_days_80_95"] + on_disk[f"climatology@{c:g}"]["n_days_95_100"]
    assert hi(0.7) > hi(0.3)
    assert on_disk["dineof@0.3"]["n_modes"] >= 1
    md = (folder / "results.md").read_text()
    assert "truth_rmse_days_95_100" in md and "DINEOF held-out RMSE" in md
    # the errors' unit is stated (it was not), and the table holds results.json's numbers at 4 digits
    assert "- units: val_rmse, val_mae, val_bias and truth_rmse* in degree_Celsius" in md
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for ln in lines[1:]:
        cells = dict(zip(header, (c.strip() for c in ln.strip("|").split("|"))))
        row = on_disk[cells["name"]]
        for col in ("val_rmse", "val_bias", "truth_rmse"):
            assert cells[col] == f"{row[col]:.4g}"
    assert (folder / "fields_cover30.png").stat().st_size > 1000
    assert (folder / "fields_cover70.png").stat().st_size > 1000


def test_truth_rmse_by_day_cover_by_hand():
    truth = np.zeros((4, 2, 5))
    truth[:, 0, 0] = np.nan  # land: 9 ocean pixels a day
    filled = np.ones_like(truth)
    gaps = np.zeros(truth.shape, bool)
    gaps[0, 1, :2] = True         # day 0: 2/9 gaps -> bin 0-50
    gaps[1, 1, :] = True          # day 1: 5/9 -> 50-80
    gaps[1, 0, 1:] = True         # day 1 now 9/9 -> 95-100
    gaps[2, 1, :] = True
    gaps[2, 0, 1:3] = True        # day 2: 7/9 = 0.78 -> 50-80
    filled[2] = 3.0               # errors of 3 on day 2
    out = truth_rmse_by_day_cover(filled, truth, gaps)
    assert out["n_days_0_50"] == 2 and out["n_days_50_80"] == 1 and out["n_days_80_95"] == 0
    assert out["n_days_95_100"] == 1  # day 3 has no gaps: bin 0-50 with no scored pixel
    assert out["truth_rmse_days_0_50"] == pytest.approx(1.0)
    assert out["truth_rmse_days_50_80"] == pytest.approx(3.0)
    assert math.isnan(out["truth_rmse_days_80_95"])
    assert out["truth_rmse_days_95_100"] == pytest.approx(1.0)


def test_method_options_parsed_and_checked():
    opts = parse_method_options(("unet.steps=40", "dineof.max_modes=7", "unet.nll=true"), ("dineof", "unet"))
    assert opts == {"dineof": {"max_modes": 7}, "unet": {"steps": 40, "nll": True}}
    with pytest.raises(InputError, match="not among the methods"):
        parse_method_options(("resae.steps=3",), ("unet",))
    with pytest.raises(InputError, match="method.key=value"):
        parse_method_options(("steps=3",), ("unet",))


def test_labelled_entries_score_the_time_mean_against_the_seasonal_climatology(tmp_path):
    """``NAME:LABEL`` runs one method twice with other options: on 400 days the seasonal climatology
    (the default, 2 harmonics) beats the time mean (``harmonics=0``) on the same withheld pixels."""
    overrides = {"fast": True, "n_time": 400, "size": 16, "cloud_covers": (0.5,),
                 "methods": ("climatology:mean", "climatology"), "method_options": ("climatology:mean.harmonics=0",)}
    folder, res = run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides=overrides, device="cpu",
                               progress=False, log=lambda s: None)
    mean, seasonal = res["climatology:mean@0.5"], res["climatology@0.5"]
    assert mean["method"] == "climatology:mean" and mean["options"] == {"harmonics": 0}
    assert (mean["harmonics"], seasonal["harmonics"]) == (0, 2) and mean["val_n"] == seasonal["val_n"]
    assert seasonal["val_rmse"] < 0.6 * mean["val_rmse"] and seasonal["truth_rmse"] < 0.6 * mean["truth_rmse"]
    assert "| climatology:mean@0.5 |" in (folder / "results.md").read_text()
    for bad, word in (("climatology:", "NAME:LABEL"), ("a:b:c", "NAME:LABEL"), ("climatology:x.y", "NAME:LABEL"),
                      ("nonesuch:x", "unknown interpolation method 'nonesuch'")):
        with pytest.raises(InputError, match=word):
            run_pipeline(get_pipeline("sst"), tmp_path / bad.replace(":", "_"), overrides={**TINY, "methods": (bad,)},
                         device="cpu", progress=False, log=lambda s: None)


@pytest.mark.parametrize("key", ["methods", "cloud_covers"])
def test_empty_methods_or_cloud_covers_are_refused(tmp_path, key):
    # `--set methods=` ran nothing and wrote a run folder with an empty table (exit 0)
    out = tmp_path / "run"
    with pytest.raises(InputError, match=key):
        run_pipeline(get_pipeline("sst"), out, overrides={"fast": True, key: ()}, device="cpu", progress=False,
                     log=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_fast_run_records_the_config_that_ran(fast_run, tmp_path):
    """A --fast run records its smoke-run sizes as the resolved config (they are what ran), and a
    value the user set survives --fast, even one equal to the default."""
    from oceandl.pipelines import resolve_fast
    from oceandl.pipelines.sst import FAST, SSTConfig

    folder, _ = fast_run
    run = json.loads((folder / "run.json").read_text())
    assert run["config"]["n_time"] == 24 and run["config"]["size"] == 32  # not the defaults 365 x 128
    assert '"n_time": 24' in (folder / "results.md").read_text()
    notes = []
    folder2, res = run_pipeline(get_pipeline("sst"), tmp_path / "run",
                                overrides={"fast": True, "n_time": 30, "size": 128, "methods": ("climatology",),
                                           "cloud_covers": (0.5,)}, device="cpu", progress=False, log=notes.append)
    config = json.loads((folder2 / "run.json").read_text())["config"]
    assert (config["n_time"], config["size"]) == (30, 128)  # 128 is the default, but given
    assert any("30 days x 128 x 128" in n for n in notes)
    assert sum(res["climatology@0.5"][f"n_days_{int(lo * 100)}_{int(hi * 100)}"] for lo, hi in COVER_BINS) == 30
    # called directly (no runner), a value that differs from the default is the user's; resolving is idempotent
    cfg = resolve_fast(SSTConfig(fast=True, n_time=40), FAST)
    assert (cfg.n_time, cfg.size) == (40, 32) and resolve_fast(cfg, FAST) == cfg
    assert resolve_fast(SSTConfig(n_time=40), FAST) == SSTConfig(n_time=40)  # not fast: unchanged


TINY = {"fast": True, "methods": ("climatology", "eof"), "cloud_covers": (0.5,)}


def _scores(folder):
    """results.json without the timings (the only fields that differ between identical runs)."""
    rows = json.loads((folder / "results.json").read_text())["results"]
    return {name: {k: v for k, v in row.items() if k != "seconds"} for name, row in rows.items()}


def test_recorded_command_runs_the_same_benchmark_again(tmp_path):
    """run.json and results.md record the command that runs the benchmark again and the start date;
    that command, run as is (-o aside), reproduces the resolved config and every score. Before, no
    command (nor date) was recorded, only the config."""
    import shlex

    from oceandl.cli.main import main

    first, _ = run_pipeline(get_pipeline("sst"), tmp_path / "first", overrides={**TINY, "seed": 1, "size": 128,
                            "n_time": 20}, device="cpu", progress=False, log=lambda s: None)
    run = json.loads((first / "run.json").read_text())
    assert run["started"][:2] == "20" and f"- started: {run['started']}" in (first / "results.md").read_text()
    assert f"- re-run: `{run['command']}`" in (first / "results.md").read_text()
    args = shlex.split(run["command"])
    assert args[:3] == ["oceandl", "benchmark", "sst"] and args[-2:] == ["-o", str(first)]
    # size=128 is the default but was set: the command keeps it against --fast's 32
    assert "size=128" in args and "n_time=20" in args
    again = tmp_path / "again"
    assert main([*args[1:-1], str(again), "--quiet"]) == 0
    assert json.loads((again / "run.json").read_text())["config"] == run["config"]
    assert _scores(again) == _scores(first)


def test_run_folder_records_the_thread_count(tmp_path):
    """The torch thread count changes the scores (float summation order: a neural method's val_rmse
    in its 4th digit between 1 and 2 threads) but was recorded nowhere in the run folder."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        folder, _ = run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides={**TINY, "methods": ("climatology",)},
                                 device="cpu", progress=False, log=lambda s: None)
    finally:
        torch.set_num_threads(before)
    assert json.loads((folder / "run.json").read_text())["torch_threads"] == 1
    assert "- device: cpu, torch threads: 1" in (folder / "results.md").read_text()


def test_run_json_fed_back_with_config_reproduces_the_run(tmp_path):
    """The run folder holds its resolved config only as JSON (run.json), and --config read TOML only:
    `--config run.json` was refused, so the recorded config could not be fed back. It is read now
    (its "config"), reproduces the config and every score, and a run.json of another benchmark is
    refused. Every pipeline's config survives the round trip through run.json."""
    import dataclasses

    from oceandl.cli.main import main
    from oceandl.pipelines import PIPELINES
    from oceandl.pipelines.runner import _changes
    from oceandl.utils import write_json

    first, _ = run_pipeline(get_pipeline("sst"), tmp_path / "first", overrides={**TINY, "seed": 3, "n_time": 20},
                            device="cpu", progress=False, log=lambda s: None)
    again = tmp_path / "again"
    assert main(["benchmark", "sst", "--config", str(first / "run.json"), "--quiet", "-o", str(again)]) == 0
    assert json.loads((again / "run.json").read_text())["config"] == json.loads((first / "run.json").read_text())["config"]
    assert _scores(again) == _scores(first)
    with pytest.raises(InputError, match="a run of benchmark 'sst', not 'sar'"):
        run_pipeline(get_pipeline("sar"), tmp_path / "sar", toml_path=first / "run.json", device="cpu",
                     progress=False, log=lambda s: None)
    assert not (tmp_path / "sar").exists()
    for name in PIPELINES:
        pipe = get_pipeline(name)
        cfg = pipe.config_cls()
        write_json({"pipeline": name, "config": dataclasses.asdict(cfg)}, tmp_path / f"{name}.json")
        assert dataclasses.replace(cfg, **_changes(cfg, None, tmp_path / f"{name}.json", name)) == cfg, name


def test_results_json_says_what_ran_and_is_fed_back(tmp_path):
    """results.json held the rows alone: the numbers carried neither config, seed, versions nor
    commit, and `--config results.json` failed (exit 2, "unknown config key 'climatology@0.5'").
    It holds the rows under "results" beside run.json's provenance now, and runs its config again."""
    from oceandl.cli.main import main
    from oceandl.pipelines.runner import RESULTS_KEYS

    first, rows = run_pipeline(get_pipeline("sst"), tmp_path / "first", overrides={**TINY, "seed": 4, "n_time": 20},
                               device="cpu", progress=False, log=lambda s: None)
    doc = json.loads((first / "results.json").read_text())
    run = json.loads((first / "run.json").read_text())
    assert tuple(doc) == RESULTS_KEYS and doc == {**run, "results": doc["results"]}
    assert doc["pipeline"] == "sst" and doc["seed"] == 4 and doc["config"]["n_time"] == 20
    assert set(doc["results"]) == set(rows) == {"climatology@0.5", "eof@0.5"}
    again = tmp_path / "again"
    assert main(["benchmark", "sst", "--config", str(first / "results.json"), "--quiet", "-o", str(again)]) == 0
    assert json.loads((again / "results.json").read_text())["config"] == doc["config"]
    assert _scores(again) == _scores(first)


def test_overwrite_replaces_only_a_run_folder(tmp_path):
    """--overwrite replaced whatever -o named: a folder of someone's files was deleted and a file
    became a run folder. Now only a previous run folder (or an empty folder) is replaced; anything
    else is an InputError that leaves it as it was."""
    pipe = get_pipeline("sst")
    kw = dict(overrides=TINY, device="cpu", progress=False, log=lambda s: None, overwrite=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not a run folder"):
        run_pipeline(pipe, mine, **kw)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    with pytest.raises(InputError, match="is a file"):
        run_pipeline(pipe, a_file, **kw)
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]
    run_folder, _ = run_pipeline(pipe, tmp_path / "run", **kw)  # new, then replaced: both fine
    run_pipeline(pipe, run_folder, **kw)
    assert (run_folder / "results.json").is_file()


@pytest.mark.parametrize("key, value, match", [("withhold", 0.0, "withhold"), ("methods", ("eof", "eof"), "repeated"),
                                               ("cloud_covers", (0.5, 0.5), "repeated")])
def test_settings_that_score_nothing_or_overwrite_rows_are_refused(tmp_path, key, value, match):
    # withhold=0 wrote a table of NaN val_* (exit 0); a repeated method or cover ran twice and kept one row
    with pytest.raises(InputError, match=match):
        run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides={**TINY, key: value}, device="cpu",
                     progress=False, log=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_truth_rmse_counts_the_pixels_it_scores(tmp_path):
    """truth_rmse leaves out the gap pixels a method cannot fill (never observed in the cube: 'land'
    to it); the rows now say how many were scored of how many gaps, and a note says so, and the
    RMSE recomputed from the field equals the reported one."""
    from fakes import synthetic_case

    from oceandl.interp import interpolate

    notes = []
    _, res = run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides={**TINY, "cloud_covers": (0.85,),
                          "methods": ("climatology",)}, device="cpu", progress=False, log=notes.append)
    row = res["climatology@0.85"]
    da, truth, valid, withheld, gaps = synthetic_case(24, 32, 0.85)
    filled = interpolate(da, "climatology", withheld=withheld, seed=0, device="cpu", progress=False).values
    scored = gaps & np.isfinite(filled)
    assert row["gap_n"] == gaps.sum() and row["truth_n"] == scored.sum() < row["gap_n"]  # 85 %: many never seen
    assert row["truth_rmse"] == pytest.approx(np.sqrt(np.mean((filled[scored] - truth[scored]) ** 2)), rel=1e-5)
    assert row["val_rmse"] == pytest.approx(np.sqrt(np.mean((filled[withheld] - da.values[withheld]) ** 2)), rel=1e-5)
    assert any(f"climatology {row['gap_n'] - row['truth_n']} of {row['gap_n']}" in n for n in notes)


@pytest.mark.parametrize("refit", [False, True])
def test_demo_truth_scores_only_the_gaps_of_the_field_written(tmp_path, monkeypatch, refit):
    """After refit=True the withheld pixels are observations to the written field (kept as given,
    error 0 against the noise-free demo truth), yet they stayed in the 'all gaps vs synthetic truth'
    score: on the demo cube the refitted climatology reported 1.323 over 206,873 pixels instead of
    1.369 over its 193,353 gaps. Without a refit the withheld pixels are written as observed too
    (their flag, 2, says the fill did not use them): the score is over the same gaps either way."""
    import xarray as xr

    from oceandl.datasets.clouds import withhold_by_cloud_transfer
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.pipelines import interpolate as job

    size = {"n_time": 12, "ny": 16, "nx": 16, "cloud_cover": 0.5}
    monkeypatch.setattr(job, "DEMO_SIZE", size)
    out = tmp_path / "f.nc"
    job.run_interpolation(None, out, method="climatology", demo=True, refit=refit, withhold=0.3, device="cpu",
                          progress=False, log=lambda *a: None)
    ds = synthetic_sst(seed=0, **size)
    truth = ds["sst_true"].values.astype(np.float64)
    valid = np.isfinite(ds["sst"].values)
    withheld = withhold_by_cloud_transfer(valid, fraction=0.3, seed=0)
    gaps = ~valid & np.isfinite(truth)
    with xr.open_dataset(out) as res:
        filled = res["sst"].values.astype(np.float64)
        gaps &= np.isfinite(filled)  # pixels never observed are land to the methods: left unfilled
        assert res.attrs["truth_n"] == int(gaps.sum()) > 0
        assert res.attrs["truth_rmse"] == pytest.approx(np.sqrt(np.mean((filled - truth)[gaps] ** 2)), rel=1e-6)
        assert (res["missing_flag"].values == 2).sum() == (0 if refit else withheld.sum())
        np.testing.assert_allclose(filled[withheld], ds["sst"].values[withheld], rtol=1e-6)


def test_transfer_rows_fill_the_last_days_with_a_fit_on_the_days_before(tmp_path):
    from fakes import synthetic_case

    from oceandl.interp import Climatology

    notes = []
    _, res = run_pipeline(get_pipeline("sst"), tmp_path / "run",
                          overrides={**TINY, "cloud_covers": (0.3,), "methods": ("climatology", "eof", "unet"),
                                     "transfer_days": 6}, device="cpu", progress=False, log=notes.append)
    # the methods that transform have a transfer row; a network fills another field through its checkpoint
    assert {k for k in res if ">transfer" in k} == {"climatology>transfer@0.3", "eof>transfer@0.3"}
    row = res["climatology>transfer@0.3"]
    assert row["fitted_days"] == 18 and row["transfer_days"] == 6 and row["method"] == "climatology>transfer"
    # recomputed by hand: a climatology fitted on the first 18 days, its cycle on the last 6
    da, truth, valid, withheld, gaps = synthetic_case(24, 32, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # observations where the 18 days saw none: kept, warned
        fill = Climatology(harmonics=0).fit(da[:18]).transform(da[18:], withheld=withheld[18:])["sst"].values
    whole = res["climatology@0.3"]
    g = gaps[18:] & np.isfinite(fill)
    assert row["truth_n"] == g.sum() > 0
    assert row["truth_rmse"] == pytest.approx(np.sqrt(np.mean((fill[g] - truth[18:][g]) ** 2)), rel=1e-5)
    assert row["val_n"] == withheld[18:].sum()
    assert np.isfinite(row["whole_cube_truth_rmse"]) and "whole_cube_truth_rmse" not in whole
    assert any("climatology fitted on the first 18 days fills the last 6" in n for n in notes)


@pytest.mark.parametrize("value", [1, 22, -1, True])
def test_transfer_days_out_of_range_are_refused(tmp_path, value):
    with pytest.raises(InputError, match="transfer_days"):
        run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides={**TINY, "transfer_days": value}, device="cpu",
                     progress=False, log=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_aux_rows_score_a_method_with_the_microwave_covariate(tmp_path):
    """``method_options=unet:mw.aux=sst_mw`` gives that row the cube's synthetic microwave SST: the
    same withheld pixels are scored, the row records its covariate, and the fill differs from the
    U-Net's without it; a method without covariates or another name is refused before any run."""
    overrides = {"fast": True, "n_time": 16, "size": 24, "cloud_covers": (0.6,), "methods": ("unet", "unet:mw"),
                 "method_options": ("unet:mw.aux=sst_mw",)}
    folder, res = run_pipeline(get_pipeline("sst"), tmp_path / "run", overrides=overrides, device="cpu",
                               progress=False, log=lambda s: None)
    plain, mw = res["unet@0.6"], res["unet:mw@0.6"]
    assert mw["aux"] == "sst_mw" and "aux" not in plain and mw["options"] == plain["options"]
    assert mw["val_n"] == plain["val_n"] > 0 and mw["val_rmse"] != plain["val_rmse"]
    for bad, word in ((("climatology:mw", "climatology:mw.aux=sst_mw"), "takes no auxiliary variables"),
                      (("unet:mw", "unet:mw.aux=wind"), "is sst_mw, not 'wind'")):
        with pytest.raises(InputError, match=word):
            run_pipeline(get_pipeline("sst"), tmp_path / "bad", overrides={**overrides, "methods": (bad[0],),
                         "method_options": (bad[1],)}, device="cpu", progress=False, log=lambda s: None)
        assert not (tmp_path / "bad").exists()
