"""One conformance test of every registered benchmark's run folder (a new pipeline is covered as soon as
it is in ``PIPELINES``), in the style of segmentation-models-pytorch's tests parametrised over its
registry: ``oceandl benchmark NAME --fast`` writes results.json (the same top-level keys everywhere,
the resolved config, seed, versions, git commit), results.md (a table holding results.json's
numbers, the figures it shows present), and ``--config results.json --overwrite`` runs the same
config again into the same folder, with the same numbers except the timings the pipeline declares.

Pipeline-specific numbers stay in each pipeline's own test file.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
import torch
from fakes import torch_threads

from oceandl.pipelines import PIPELINES, get_pipeline
from oceandl.pipelines.runner import RESULTS_KEYS

# the smallest sizes that still run every part of a pipeline's --fast run (a pipeline not listed runs
# its plain --fast); the whole module stays near a minute on one core
SMALL: dict[str, tuple[str, ...]] = {
    "sst": ("n_time=12", "size=16", "cloud_covers=0.5", "methods=climatology,dineof,unet",
            "method_options=unet.steps=2"),
    "sar": ("models=cnn", "n_per_class=6", "size=16", "epochs=1", "width=4"),
    "plankton": ("models=cnn", "n_per_class=6", "size=16", "epochs=1", "width=4"),
    "mnist": ("models=mlp,linear_ae",),
    "scaling": ("layouts=1x1", "n_per_class=4", "size=16", "batch_size=8"),
    "perf": ("classifiers=mlp", "interp_methods=", "read_files=0", "eof_cube=0,0,0", "bf16=false",
             "channels_last=false", "dineof_cube=8,8,8", "dineof_subspace=false", "memory_grids=",
             "n_samples=50", "matmul_size=64", "heap=false"),
}
SEED = 1


def _benchmark(args: list[str]) -> int:
    from oceandl.cli.main import main

    return main(["benchmark", *args, "--quiet", "--device", "cpu"])


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def runs(request, tmp_path_factory):
    """(name, first results.json, first folder's files, folder after the re-run from results.json)."""
    name = request.param
    pipe = get_pipeline(name)
    # one torch thread: on these tiny sizes OpenMP synchronisation dominates (DINEOF 0.1 s on one
    # thread, 32 s on two of a busy 2-core machine); the runs record the count (torch_threads)
    # perf: heap=false (SMALL): its C heap cases start Python processes, seconds apiece; they have a
    # test of their own (an environment setting was no switch: the setting is read once per process)
    with torch_threads(1):
        from oceandl.utils import data_root

        root = data_root()
        if name == "mnist" and (root is None or not any((root / "mnist").glob("t10k-images-idx3-ubyte*"))):
            pytest.skip("mnist: real MNIST not found (no synthetic stand-in): set OCEANDL_DATA to a folder with "
                        "mnist/t10k-*-ubyte.gz (../shared/data beside the checkout is used when present)")
        out = tmp_path_factory.mktemp(name) / "run"
        sets = [x for s in SMALL.get(name, ()) for x in ("--set", s)]
        assert _benchmark([name, "--fast", "--seed", str(SEED), *sets, "-o", str(out)]) == 0
        first = json.loads((out / "results.json").read_text())
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        # fed back, into the same folder: --overwrite replaces a run folder
        assert _benchmark([name, "--config", str(out / "results.json"), "--overwrite", "-o", str(out)]) == 0
    return name, pipe, first, files, out


def test_files_and_top_level_schema(runs):
    name, pipe, doc, files, out = runs
    assert {"results.json", "results.md", "run.json"} <= set(files)
    assert not [p.name for p in out.parent.iterdir() if p.name != "run"]  # no temporary left beside it
    assert tuple(doc) == RESULTS_KEYS, name
    assert doc["pipeline"] == name and doc["results"] and all(isinstance(r, dict) and r for r in doc["results"].values())
    assert doc == {**json.loads(files["run.json"]), "results": doc["results"]}
    assert isinstance(doc["seconds"], float) and doc["seconds"] > 0 and doc["started"][:2] == "20"
    assert doc["command"].startswith(f"oceandl benchmark {name} --fast --seed {SEED} ")


def test_config_seed_versions_and_git(runs):
    name, pipe, doc, files, out = runs
    config = doc["config"]
    assert list(config) == [f.name for f in dataclasses.fields(pipe.config_cls)]
    assert config["seed"] == doc["seed"] == SEED and config["fast"] is True
    for item in SMALL.get(name, ()):  # every --set value is the one recorded
        key, value = item.split("=", 1)
        recorded = config[key]
        text = ",".join(map(str, recorded)) if isinstance(recorded, list) else str(recorded).lower()
        assert text == value, (key, recorded)
    # a --fast run records the smoke-run values it ran with, except those given with --set
    given = {s.split("=", 1)[0] for s in SMALL.get(name, ())}
    for key, value in pipe.fast.items():
        if key not in given:
            assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    versions = doc["versions"]
    assert versions["torch"] == torch.__version__ and versions["oceandl"] == metadata.version("oceandl")
    assert versions["numpy"] == metadata.version("numpy") and versions["xarray"] == metadata.version("xarray")
    assert doc["python"] == platform.python_version() and doc["torch_threads"] == 1
    assert doc["device"] == "cpu"
    import oceandl.utils

    git = shutil.which("git")
    where = Path(oceandl.utils.__file__).parent
    head = subprocess.run([git, "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True) if git else None
    if head is None or head.returncode:
        assert doc["git_commit"] is None and doc["git_dirty"] is None
    else:
        assert doc["git_commit"] == head.stdout.strip() and isinstance(doc["git_dirty"], bool)
        # the flag is the tree's state when the run started; tests do not edit tracked files meanwhile
        status = subprocess.run([git, "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True).stdout
        assert doc["git_dirty"] is bool(status.strip())


def _table(md: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first Markdown table of ``md``, checked for well-formedness."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| name |"))
    table = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        table.append(ln)
    split = lambda ln: [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]  # noqa: E731
    header = split(table[0])
    assert re.fullmatch(r"\|(---\|){%d}" % len(header), table[1]), table[1]
    rows = [split(ln) for ln in table[2:]]
    assert all(len(r) == len(header) for r in rows), [r for r in rows if len(r) != len(header)]
    return header, rows


def test_markdown_table_holds_the_json_numbers(runs):
    name, pipe, doc, files, out = runs
    md = files["results.md"].decode()
    header, rows = _table(md)
    results = doc["results"]
    assert header[0] == "name" and set(header[1:]) <= set(pipe.columns)
    assert [r[0].replace("\\|", "|") for r in rows] == list(results)
    shown = 0
    for r in rows:
        row = results[r[0].replace("\\|", "|")]
        for col, cell in zip(header[1:], r[1:]):
            value = row.get(col)
            if cell == "":
                assert value is None, (name, r[0], col)
            elif isinstance(value, bool) or isinstance(value, str):
                assert cell.replace("\\|", "|") == str(value), (name, r[0], col)
            elif value is None:  # NaN and infinities are null in results.json
                assert cell in ("nan", "inf", "-inf"), (name, r[0], col, cell)
            else:
                assert float(cell) == pytest.approx(value, rel=5e-4, abs=0), (name, r[0], col, cell, value)
                shown += 1
    assert shown
    # provenance and config, as in results.json
    assert f"- re-run: `{doc['command']}`" in md and f"- seed: {doc['seed']}" in md
    assert f"- git commit: {doc['git_commit']}" in md
    block = md.split("## Resolved config", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(block) == doc["config"]


def test_every_column_and_the_rounding_are_explained(runs):
    """results.md showed val_std_ratio, test_ece, truth_rmse_days_80_95 ("nan") and the rest with no
    word of what they are, nor that the table is rounded (4 digits) against results.json."""
    name, pipe, doc, files, out = runs
    md = files["results.md"].decode()
    header, _ = _table(md)
    legend = next((ln for ln in md.splitlines() if ln.startswith("Columns: ")), "")
    assert legend, name
    for col in header[1:]:
        col = re.sub(r"_\d+_\d+$", "_LO_HI", col)  # truth_rmse_days_80_95: one entry for the bins
        head, _, rest = col.partition("_")
        named = re.search(rf"\b{re.escape(col)}\b", legend) or (
            f"{head}_*" in legend and re.search(rf"\b{re.escape(rest)}\b", legend))  # val_*: rmse, ...
        assert named, (name, col)
    assert "rounded to 4 significant digits; results.json holds them in full" in md


def test_figures_shown_exist(runs):
    name, pipe, doc, files, out = runs
    md = files["results.md"].decode()
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(shown) == len(set(shown))
    assert set(shown) == {f for f in files if f.endswith((".png", ".svg", ".pdf"))}, name
    for f in shown:
        assert files[f][:4] == b"\x89PNG" and len(files[f]) > 1000, f


def _without(results: dict, timings) -> dict:
    return {k: {m: v for m, v in row.items() if m not in timings} for k, row in results.items()}


def test_config_results_json_reruns_the_same_numbers(runs):
    name, pipe, doc, files, out = runs
    again = json.loads((out / "results.json").read_text())
    assert again["config"] == doc["config"] and again["seed"] == doc["seed"]
    assert list(again["results"]) == list(doc["results"])
    assert _without(again["results"], pipe.timings) == _without(doc["results"], pipe.timings), name


def test_a_pipe_in_a_label_or_value_stays_in_its_cell():
    """A ``|`` in a row label (``methods=climatology:time|mean``) split its cell: the row had 16
    cells under 15 headers, every number one column to the right of its name."""
    from oceandl.pipelines import markdown_table

    md = markdown_table({"climatology:time|mean@0.5": {"val_rmse": 3.442, "device": "cpu|gpu"},
                         "eof@0.5": {"val_rmse": 1.5}}, ("val_rmse", "device"))
    header, rows = _table(md)
    assert header == ["name", "val_rmse", "device"]
    assert rows == [["climatology:time\\|mean@0.5", "3.442", "cpu\\|gpu"], ["eof@0.5", "1.5", ""]]


def test_a_run_fed_back_with_another_thread_count_is_warned_about(tmp_path):
    """The thread count orders the float sums (a neural method's val_rmse moved in its 4th digit,
    1 against 2 threads): a `--config results.json` re-run on another count gave other numbers
    without a word, which reads as a failure to reproduce; now a warning names both counts."""
    import warnings

    from oceandl.pipelines.runner import _read_run_json

    path = tmp_path / "results.json"
    with torch_threads(1):
        for threads, warned in ((1, False), (2, True), (None, False)):
            path.write_text(json.dumps({"pipeline": "sst", "config": {"seed": 3}, "torch_threads": threads}))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert _read_run_json(path, "sst") == ({"seed": 3}, True)
            msgs = [str(w.message) for w in caught]
            assert bool(msgs) == warned, (threads, msgs)
    with torch_threads(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path.write_text(json.dumps({"pipeline": "sst", "config": {}, "torch_threads": 2}))
        _read_run_json(path, "sst")
    assert [str(w.message) for w in caught] == [
        f"{path}: that run used 2 torch threads, this one 1: its scores can differ in the last digits "
        "(OMP_NUM_THREADS=2 repeats it exactly)"]
