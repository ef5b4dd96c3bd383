"""SAR (TenGeoP-SARwv) and plankton benchmark pipelines: run folders, metrics, figures, real layouts."""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image

from oceandl.errors import InputError
from oceandl.pipelines import get_pipeline, run_pipeline
from oceandl.utils import git_commit

METRICS = ("test_accuracy", "test_macro_accuracy", "test_macro_f1", "test_top2_accuracy", "test_log_loss",
           "test_ece", "params", "train_seconds", "train_samples_per_s", "device")  # + top-3 with > 3 classes
# a small, quickly trained setting for the learnable trees below
SMALL = {"models": ("cnn",), "size": 32, "width": 8, "epochs": 6, "batch_size": 8, "lr": 3e-3}


def _pattern(kind: str, rng: np.random.Generator, n: int = 32) -> np.ndarray:
    """Clearly different textures: stripes, checkerboard, one bright blob (random phase/position)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    if kind == "stripes":
        f = np.sin(2 * np.pi * xx / 8 + rng.uniform(0, 2 * np.pi))
    elif kind == "checks":
        f = np.sign(np.sin(2 * np.pi * xx / 8 + rng.uniform(0, 6))) * np.sign(np.sin(2 * np.pi * yy / 8 + rng.uniform(0, 6)))
    else:
        cy, cx = rng.uniform(8, n - 8, 2)
        f = 4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 12) - 0.5
    return f.astype(np.float32)


@pytest.fixture
def learnable_tengeop(tmp_path):
    """A TenGeoP-SARwv archive tree (GeoTIFF/<letter>/*.tiff, linear float32) with 3 easy classes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "TenGeoP-SARwv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not georeferenced
        for letter, kind in zip("FGH", ("stripes", "checks", "blob")):
            (root / "GeoTIFF" / letter).mkdir(parents=True)
            for i in range(16):
                sigma0 = 0.05 * 10 ** (0.3 * _pattern(kind, rng)) * rng.gamma(8, 1 / 8, (32, 32))
                with rasterio.open(root / "GeoTIFF" / letter / f"s1a-wv1-{letter}{i:03d}.tiff", "w", driver="GTiff",
                                   count=1, dtype="float32", height=32, width=32) as dst:
                    dst.write(sigma0.astype(np.float32), 1)
    return root


@pytest.fixture
def learnable_plankton(tmp_path):
    """Class folders of grey PNGs of jittered sizes: stripes, checks and blobs as 'organisms'."""
    rng = np.random.default_rng(1)
    root = tmp_path / "plankton"
    for kind in ("stripes", "checks", "blob"):
        (root / kind).mkdir(parents=True)
        for i in range(16):
            n = int(rng.integers(28, 40))
            img = np.clip(128 + 40 * _pattern(kind, rng, n) + rng.normal(0, 8, (n, n)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / kind / f"{kind}_{i:03d}.png")
    return root


def _check_run_folder(folder, results, models, seed=0):
    on_disk = json.loads((folder / "results.json").read_text())["results"]
    assert set(on_disk) == set(models) == set(results)
    for name in models:
        row = on_disk[name]
        assert all(k in row for k in METRICS), sorted(set(METRICS) - set(row))
        for k in ("test_accuracy", "test_macro_accuracy", "test_macro_f1", "test_top2_accuracy", "test_ece"):
            assert 0.0 <= row[k] <= 1.0, (name, k, row[k])
        assert row["test_top2_accuracy"] >= row["test_accuracy"]
        if "test_top3_accuracy" in row:  # only with more than 3 classes
            assert 1.0 >= row["test_top3_accuracy"] >= row["test_top2_accuracy"]
        assert row["test_log_loss"] > 0 and row["params"] > 1000 and row["device"] == "cpu"
        for fig in ("confusion", "confusion_normalized", "reliability", "curves"):
            assert (folder / f"{fig}_{name}.png").stat().st_size > 1000
    assert (folder / "samples.png").is_file()
    run = json.loads((folder / "run.json").read_text())
    assert run["seed"] == seed and run["config"]["seed"] == seed
    assert run["git_commit"] == git_commit()
    if run["git_commit"] is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", run["git_commit"])
    md = (folder / "results.md").read_text()
    assert "| name | test_accuracy |" in md and all(f"| {m} |" in md for m in models)
    assert "## Resolved config" in md
    return on_disk


@pytest.mark.parametrize("name, classes", [("sar", 10), ("plankton", 6)])
def test_fast_synthetic_run_writes_a_complete_run_folder(tmp_path, name, classes):
    pipe = get_pipeline(name)
    out, results = run_pipeline(pipe, tmp_path / "run", overrides={"fast": True, "seed": 3}, device="cpu",
                                progress=False, log=lambda s: None)
    on_disk = _check_run_folder(out, results, ("cnn", "resnet"), seed=3)
    assert all("test_top3_accuracy" in r for r in on_disk.values())
    # the split is the same for both models and counts every synthetic image (20 per class when fast)
    sizes = {(r["n_train"], r["n_val"], r["n_test"]) for r in on_disk.values()}
    assert len(sizes) == 1 and sum(sizes.pop()) == 20 * classes
    run = json.loads((out / "run.json").read_text())
    assert any("synthetic" in n for n in run["notes"]) and any("--fast" in n for n in run["notes"])
    assert not list(tmp_path.glob(".run.*"))  # no temporary folder left beside the run
    # per-class scores: in results.json, and per_class.md worst F1 first, every class once per model
    md = (out / "per_class.md").read_text().splitlines()
    for model, r in on_disk.items():
        per = r["per_class"]
        assert len(per) == classes and sum(m["support"] for m in per.values()) == r["n_test"]
        start = md.index(f"## {model}") + 4  # a blank line, the header and its rule
        rows = [line.split(" | ") for line in md[start:start + classes]]
        f1 = [float(cells[-1].rstrip(" |")) for cells in rows]
        assert f1 == sorted(f1) and {cells[0].lstrip("| ") for cells in rows} == set(per)
        worst = min(per.items(), key=lambda kv: (kv[1]["f1"], kv[1]["support"], kv[0]))
        assert rows[0][0].lstrip("| ") == worst[0] and abs(f1[0] - worst[1]["f1"]) < 5e-4


def test_sar_real_layout_through_the_cli_learns_above_chance(tmp_path, learnable_tengeop):
    from oceandl.cli.main import cli

    args = ["benchmark", "sar", "--data", str(learnable_tengeop), "-o", str(tmp_path / "run"), "--device", "cpu",
            "--quiet", "--seed", "0"] + [x for k, v in SMALL.items()
                                         for x in ("--set", f"{k}={','.join(v) if isinstance(v, tuple) else v}")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    folder = tmp_path / "run"
    results = _check_run_folder(folder, json.loads((folder / "results.json").read_text())["results"], ("cnn",))
    # 3 classes present out of TenGeoP's ten: the absent ones are left out, chance is 1/3
    assert results["cnn"]["test_accuracy"] >= 0.66
    notes = json.loads((folder / "run.json").read_text())["notes"]
    assert any("TenGeoP-SARwv vignettes from" in n and "GeoTIFF" in n for n in notes)
    assert any("left out" in n for n in notes)


def test_plankton_real_layout_learns_above_chance(tmp_path, learnable_plankton):
    out, results = run_pipeline(get_pipeline("plankton"), tmp_path / "run",
                                # 10 epochs: on the split keyed on the paths (31/6/8 images; 30/5/10 since the
                                # pick hashes apart from the split) 6 epochs
                                # reached 0.375 at seed 0 (1.0 at 10; 0.75-1.0 at 6 for seeds 1-5)
                                overrides={**SMALL, "data": str(learnable_plankton), "max_per_class": 15,
                                           "epochs": 10},
                                device="cpu", progress=False, log=lambda s: None)
    _check_run_folder(out, results, ("cnn",))
    r = results["cnn"]
    assert r["n_train"] + r["n_val"] + r["n_test"] == 45  # max_per_class of the 16 per class
    assert r["test_accuracy"] >= 0.66  # chance 1/3


def test_run_recorded_with_relative_paths_reruns_from_another_folder(tmp_path, learnable_plankton, monkeypatch):
    """``--data ../plankton -o runs/x`` was recorded as typed: ``--config results.json`` (and the
    re-run command) from any other folder failed ("../plankton: no such folder", exit 2). The
    paths are recorded absolute now, -o in the re-run command too."""
    import shlex

    from oceandl.cli.main import cli

    (tmp_path / "proj").mkdir()
    other = tmp_path / "a" / "b" / "c"
    other.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "proj")
    sets = ["--set", "models=cnn", "--set", "size=16", "--set", "epochs=1", "--set", "width=4"]
    res = CliRunner().invoke(cli, ["benchmark", "plankton", "--fast", "--data", "../plankton", *sets,
                                   "--device", "cpu", "--quiet", "-o", "runs/x"])
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "proj" / "runs" / "x" / "results.json").read_text())
    assert first["config"]["data"] == str(learnable_plankton.resolve())
    args = shlex.split(first["command"])
    assert args[args.index("-o") + 1] == str((tmp_path / "proj" / "runs" / "x").resolve())
    monkeypatch.chdir(other)
    res = CliRunner().invoke(cli, ["benchmark", "plankton", "--config", "../../../proj/runs/x/results.json",
                                   "--quiet", "-o", "y"])
    assert res.exit_code == 0, res.output
    again = json.loads((other / "y" / "results.json").read_text())
    assert again["config"] == first["config"]
    timings = get_pipeline("plankton").timings
    strip = lambda r: {k: {m: v for m, v in row.items() if m not in timings} for k, row in r.items()}  # noqa: E731
    assert strip(again["results"]) == strip(first["results"])
    # the re-run command, pasted here: it runs (to another -o, as the recorded one exists)
    args[args.index("-o") + 1] = "z"
    res = CliRunner().invoke(cli, args[1:] + ["--quiet"])
    assert res.exit_code == 0, res.output
    assert strip(json.loads((other / "z" / "results.json").read_text())["results"]) == strip(first["results"])


def test_bad_data_folder_is_one_input_error_and_leaves_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="TenGeoP"):
        run_pipeline(get_pipeline("sar"), tmp_path / "run", overrides={"data": str(tmp_path / "empty")},
                     device="cpu", progress=False, log=lambda s: None)
    with pytest.raises(InputError, match="size"):
        run_pipeline(get_pipeline("plankton"), tmp_path / "run", overrides={"size": 8}, device="cpu",
                     progress=False, log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("name, key, value, match", [
    ("mnist", "models", (), "at least one"), ("mnist", "models", ("mlp", "mlp"), "repeated"),
    ("mnist", "latent", 0, "latent"), ("sar", "width", 0, "width"), ("sar", "models", ("cnn", "cnn"), "repeated"),
    ("plankton", "max_per_class", -3, "max_per_class"), ("sar", "noise", -1.0, "noise"),
    ("sar", "weights", "resnet18.pth", "none of models=cnn,resnet takes ImageNet weights")])
def test_settings_that_run_nothing_or_fail_late_are_input_errors(tmp_path, name, key, value, match):
    """MNIST with no model wrote an empty table (exit 0) and latent=0 ended in a bare ValueError;
    width=0 ended in a torch RuntimeError (exit 1); a repeated model kept one row; negative
    max_per_class or noise ran as if valid. Each is now one InputError, before any data is read."""
    with pytest.raises(InputError, match=match):
        run_pipeline(get_pipeline(name), tmp_path / "run", overrides={"fast": True, key: value,
                     **({"data_root": str(tmp_path / "no_mnist")} if name == "mnist" else {})},
                     device="cpu", progress=False, log=lambda s: None)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("split", [(0.8, 0.0, 0.2), (0.7, 0.2, 0.2), (0.8, 0.2)])
def test_a_split_that_cannot_run_is_refused_before_the_images_are_read(tmp_path, learnable_plankton, monkeypatch,
                                                                       split):
    """`--set split=0.8,0,0.2` (or fractions not summing to 1, or two of them) was refused by
    train_classifier, once every image of data= had been read."""
    import oceandl.pipelines.plankton as plankton

    def no(*a, **kw):
        raise AssertionError("the images were read before the split was checked")

    monkeypatch.setattr(plankton, "load_plankton", no)
    with pytest.raises(InputError, match=r"split=.*: three fractions \(training, validation, test\), each above 0"):
        run_pipeline(get_pipeline("plankton"), tmp_path / "run",
                     overrides={"fast": True, "data": str(learnable_plankton), "split": split},
                     device="cpu", progress=False, log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_backbone_without_weights_says_it_is_from_scratch_and_where_weights_go(tmp_path):
    """A resnet18 row with no weights= is trained from scratch: the run notes say so and name the
    file torchvision's ImageNet weights go to (the row read like a fine-tuned one, with no word)."""
    from oceandl.models.transfer import pretrained_weights_path

    out, results = run_pipeline(get_pipeline("sar"), tmp_path / "run", overrides={
        "fast": True, "models": ("resnet18",), "epochs": 1}, device="cpu", progress=False, log=lambda s: None)
    notes = json.loads((out / "run.json").read_text())["notes"]
    said = [n for n in notes if n.startswith("resnet18:")]
    assert len(said) == 1 and "from scratch" in said[0] and str(pretrained_weights_path("resnet18")) in said[0]
    assert said[0] in (out / "results.md").read_text()


def test_imbalanced_folder_notes_the_majority_class_baseline(tmp_path):
    """With 20 / 5 / 5 images the test split holds 6 / 1 / 2: always answering the largest class
    scores 0.667, which the note gives beside the stated chance of 0.333 (1/K alone before)."""
    rng = np.random.default_rng(2)
    root = tmp_path / "plankton"
    for kind, n in (("stripes", 20), ("checks", 5), ("blob", 5)):
        (root / kind).mkdir(parents=True)
        for i in range(n):
            img = np.clip(128 + 40 * _pattern(kind, rng) + rng.normal(0, 8, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / kind / f"{kind}_{i:03d}.png")
    out, results = run_pipeline(get_pipeline("plankton"), tmp_path / "run",
                                overrides={**SMALL, "data": str(root), "epochs": 1}, device="cpu",
                                progress=False, log=lambda s: None)
    # the split is keyed on the file paths (part sizes binomial around 70/15/15): its test part here
    from oceandl.training import split_indices

    keys = sorted(f"{p.parent.name}/{p.name}" for p in root.rglob("*.png"))
    labels = np.array([("blob", "checks", "stripes").index(k.split("/")[0]) for k in keys])
    test = split_indices(len(keys), (0.7, 0.15, 0.15), seed=0, stratify=labels, keys=keys)[2]
    counts = np.bincount(labels[test], minlength=3)
    assert counts.tolist() == [2, 1, 6] and results["cnn"]["n_test"] == 9
    note = next(n for n in json.loads((out / "run.json").read_text())["notes"] if "chance accuracy" in n)
    assert "chance accuracy 0.333" in note and "largest class (stripes) scores 0.667" in note, note
    assert note.startswith("split keyed on the file paths (seed 0; per class, part sizes vary around 0.7/0.15/0.15")
    assert "9 test images (per class blob 2, checks 1, stripes 6)" in note, note


def test_unreadable_or_added_files_barely_change_the_pick_or_split_and_are_recorded(tmp_path):
    """Benchmark runs on a real folder (3 classes of 12, a rare one of 2, max_per_class 10): the
    rare class's removal dropped the files' keys (split by order again), the per-class pick was a
    shuffle of positions, and a file failing to decode was not recorded, one failing the header
    check only as 'e.g. <first>'. Now a file added or unreadable changes the pick by itself and at
    most the one it displaces, the split by at most one image of its own class, and every file left
    out is listed with its reason."""
    from oceandl.pipelines.imagebench import UNREADABLE, _drop_rare
    from oceandl.pipelines.plankton import PlanktonConfig, load_plankton
    from oceandl.pipelines.runner import RunContext
    from oceandl.training import split_indices
    from test_materialize import _corrupt_pixels

    rng = np.random.default_rng(3)
    root = tmp_path / "plankton"
    for kind, n in (("stripes", 12), ("checks", 12), ("blob", 12), ("rare", 2)):
        (root / kind).mkdir(parents=True)
        for i in range(n):
            img = np.clip(128 + 40 * _pattern("blob", rng) + rng.normal(0, 8, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / kind / f"{kind}_{i:03d}.png")
    cfg = PlanktonConfig(data=str(root), max_per_class=10, size=32)

    def parts(name):
        (tmp_path / name).mkdir()
        ctx = RunContext(tmp_path / name, "cpu", progress=False, log=lambda s: None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = _drop_rare(load_plankton(cfg, ctx, tmp_path), ctx)
        assert data.keys is not None and len(data.keys) == len(data)
        split = split_indices(len(data), cfg.split, seed=cfg.seed, stratify=data.targets, keys=data.keys)
        return [{data.keys[i] for i in p} for p in split], ctx

    before, _ = parts("before")
    (root / "checks" / "checks_000.png").write_bytes(b"\x89PNG\r\n")  # fails the header check
    _corrupt_pixels(root / "blob" / "blob_003.png")  # fails to decode
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "stripes" / "stripes_100.png")  # a new file
    after, ctx = parts("after")
    gone = {"checks/checks_000.png", "blob/blob_003.png"}
    # 10 of each class picked; checks_000 failed the header check before the pick (its class still
    # gives 10), blob_003 was picked and failed to decode (its class gives 9)
    assert sum(map(len, before)) == 30 and sum(map(len, after)) == 29
    part_before = {k: i for i, p in enumerate(before) for k in p}
    part_after = {k: i for i, p in enumerate(after) for k in p}
    # the pick: the two files left out, one each class's extra image took the place of (checks_010
    # for checks_000; stripes_100 displaced stripes_003): nothing else
    assert part_before.keys() - part_after.keys() == gone | {"stripes/stripes_003.png"}
    assert part_after.keys() - part_before.keys() == {"checks/checks_010.png", "stripes/stripes_100.png"}
    # the split: only where a class of 10 had a part filled by the nearest image (its hashes left it
    # empty), which a file of that class coming or going can undo; one image at most per such class.
    # None here (22/3/5 of 30; before the pick hashed apart from the split, which kept the 10 of
    # each class of the split's smallest hashes, 23/4/3 with checks_001 and stripes_003 moved)
    moved = {k for k in part_before.keys() & part_after.keys() if part_before[k] != part_after[k]}
    assert moved == set()
    assert [len(p) for p in before] == [22, 3, 5]
    assert sum(len(p & gone) for p in before) == 2  # both had been picked
    bad = json.loads((tmp_path / "after" / UNREADABLE).read_text())
    assert sorted(bad) == [str(root / "blob" / "blob_003.png"), str(root / "checks" / "checks_000.png")]
    assert all(bad.values())
    assert any("2 unreadable image(s) left out (1 at the header check, 1 when decoded)" in n for n in ctx.notes)


def test_per_class_table_and_legend_state_the_zero_division_rule():
    """A class never predicted was listed with precision 0.000 and F1 0.000 in per_class.md, and
    counted so in the macro means of results.md, with nothing saying that 0/0 was taken as 0: a
    reader could not tell it from a class predicted and always wrong."""
    from oceandl.metrics import classification_metrics
    from oceandl.pipelines.imagebench import LEGEND, per_class_markdown

    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.full((6, 3), 0.1)
    p[np.arange(6), [0, 0, 1, 0, 1, 1]] = 0.8  # class 2 never predicted
    m = classification_metrics(y, p, ["a", "b", "c"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.0, "support": 2}
    md = per_class_markdown({"cnn": {"per_class": m["per_class"]}})
    assert "| c | 2 | 0.000 | 0.000 | 0.000 |" in md
    assert "never predicted has precision 0 (0/0 counted as 0" in md
    assert "a class never predicted counts as precision 0 and F1 0 in the macro means (0/0 as 0" in LEGEND
