"""The command-line conventions, checked on every command at once.

In the style of segmentation-models-pytorch's one generic test parametrised over the registry: the
commands are found by walking the click group, so a new command is checked without being named
here. Each convention applies to every leaf command but those of :data:`EXCEPTIONS`, each with its
reason. Only cheap checks (help text, usage errors, output refusal): no command does real work.
"""
from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from oceandl.cli.main import cli


def _leaves(cmd: click.Command = cli, path: tuple[str, ...] = ()):
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


def _groups(cmd: click.Command = cli, path: tuple[str, ...] = ()):
    if isinstance(cmd, click.Group):
        yield path, cmd
        for name, sub in sorted(cmd.commands.items()):
            yield from _groups(sub, (*path, name))


LEAVES = dict(_leaves())
IDS = [" ".join(p) for p in LEAVES]

#: conventions a command does not follow, and why
EXCEPTIONS: dict[str, dict[str, str]] = {
    "models": {
        "writes": "lists the registry on stdout: writes no file, so no -o/--overwrite/--seed/--quiet",
        "device": "counts parameters on torch's meta device: nothing is computed",
    },
    "info": {
        "writes": "prints what a file holds on stdout: writes no file, so no -o/--overwrite/--seed/--quiet",
        "device": "reads JSON and file headers: nothing is computed",
        "demo": "describes the user's own file: there is no built-in one worth describing",
    },
    "eof": {"device": "a NumPy/SciPy SVD on the CPU; torch is not used"},
    "synth": {"device": "NumPy generators on the CPU; torch is not used"},
    "benchmark": {
        "demo": "runs on its built-in synthetic data unless --data/--data-root name a real set",
        "training": "each pipeline trains several models with its own settings: --set/--config change them",
    },
}

#: commands that train a network: those of the `train` group, and those that take any training flag
TRAINING_FLAGS = ("--epochs", "--batch-size", "--lr")


def _applies(name: str, convention: str) -> bool:
    return convention not in EXCEPTIONS.get(name, {})


def _option(cmd: click.Command, flag: str) -> click.Parameter | None:
    return next((p for p in cmd.params if flag in p.opts or flag in p.secondary_opts), None)


def _writes(name: str) -> bool:
    return _applies(name, "writes")


def _trains(path: tuple[str, ...], cmd: click.Command) -> bool:
    return path[0] == "train" or any(_option(cmd, f) is not None for f in ("--epochs", "--lr"))


def _reads_input(cmd: click.Command) -> bool:
    """Takes a path to read: a Path argument, or --data."""
    return any(isinstance(p, click.Argument) and isinstance(p.type, click.Path) for p in cmd.params) or \
        _option(cmd, "--data") is not None


def _minimal_args(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    """The command with what it needs to get past parsing but -o: a required choice argument's first
    choice, and --demo where it has one (no command does any work before checking -o)."""
    args = list(path)
    for p in cmd.params:
        if isinstance(p, click.Argument) and p.required and isinstance(p.type, click.Choice):
            args.append(p.type.choices[0])
    if _option(cmd, "--demo") is not None:
        args.append("--demo")
    return args


def _one_line_error(res, *words: str) -> str:
    """Exit 2, one 'Error:' line on stderr naming ``words`` and nothing on stdout; the line."""
    lines = res.stderr.splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and res.stdout == "", res.output
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_the_walk_finds_every_command():
    """The walk itself (a broken one would check nothing): the commands of the README's tour."""
    assert {"benchmark", "classify", "eof", "interpolate", "models", "synth", "train classifier",
            "train interpolator"} <= set(IDS)
    assert set(EXCEPTIONS) <= set(IDS)  # no stale exception


@pytest.mark.parametrize("path", [p for p, _ in _groups()], ids=lambda p: " ".join(p) or "oceandl")
def test_groups_have_help_with_examples(path):
    res = CliRunner().invoke(cli, [*path, "--help"])
    assert res.exit_code == 0 and "Example" in res.output, res.output


@pytest.mark.parametrize("path", LEAVES, ids=IDS)
def test_help_has_an_example_of_the_command(path):
    for flag in ("--help", "-h"):
        res = CliRunner().invoke(cli, [*path, flag])
        assert res.exit_code == 0 and "Example" in res.output, (flag, res.output)
        assert re.search(rf"^\s+oceandl {re.escape(' '.join(path))}\b", res.output, flags=re.M), res.output


@pytest.mark.parametrize("path", LEAVES, ids=IDS)
def test_shared_options(path):
    """-o/--output, --overwrite, --seed >= 0 and --quiet on every command that writes; --device
    auto|cpu|cuda; --demo where the command reads an input; training flags on training commands."""
    name, cmd = " ".join(path), LEAVES[path]
    if _writes(name):
        out = _option(cmd, "--output")
        assert out is not None and set(out.opts) == {"-o", "--output"} and isinstance(out.type, click.Path)
        for flag in ("--overwrite", "--quiet"):
            opt = _option(cmd, flag)
            assert opt is not None and opt.is_flag, flag
        seed = _option(cmd, "--seed")
        assert seed is not None and isinstance(seed.type, click.IntRange) and seed.type.min == 0
    else:
        assert _option(cmd, "--output") is None and _option(cmd, "--overwrite") is None
    device = _option(cmd, "--device")
    if _applies(name, "device"):
        assert device is not None and list(device.type.choices) == ["auto", "cpu", "cuda"]
        assert device.default == "auto"
    else:
        assert device is None, f"{name} takes --device: remove its exception"
    if _reads_input(cmd) and _applies(name, "demo"):
        assert _option(cmd, "--demo") is not None, f"{name} reads an input but has no --demo"
    if _trains(path, cmd) and _applies(name, "training"):
        for flag in TRAINING_FLAGS:
            opt = _option(cmd, flag)
            assert opt is not None, f"{name} trains but has no {flag}"
            assert isinstance(opt.type, (click.IntRange, click.FloatRange)) and opt.type.min == 0 + (flag != "--lr")
        if path[0] == "train":  # the checkpoint -o writes is what --model takes back
            assert "checkpoint folder" in _option(cmd, "--output").help


def test_checkpoints_written_by_train_are_what_model_takes_back():
    """Each `train X` example's `-o NAME` is given back as `--model NAME` in an example."""
    helps = "\n".join(g.help or "" for _, g in _groups()) + "\n".join(c.help or "" for c in LEAVES.values())
    for path in (p for p in LEAVES if p[0] == "train"):
        names = re.findall(rf"oceandl {' '.join(path)} .*?-o (\S+)", helps)
        assert any(re.search(rf"--model {re.escape(n)}\b", helps) for n in names), (path, names)
        users = {m for m in LEAVES.values() if isinstance(getattr(_option(m, "--model"), "type", None), click.Path)}
        assert users, "no command takes a checkpoint back with --model"


@pytest.mark.parametrize("path", LEAVES, ids=IDS)
def test_bad_usage_is_one_line_exit_2(path, tmp_path, monkeypatch):
    """An unknown option, --device tpu, --seed -1, a training flag at 0: one line, exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    line = _one_line_error(runner.invoke(cli, [*path, "--no-such-option"], prog_name="oceandl"),
                           "--no-such-option")
    assert line.endswith(f"(see 'oceandl {' '.join(path)} --help')"), line
    cmd = LEAVES[path]
    if _option(cmd, "--device") is not None:
        _one_line_error(runner.invoke(cli, [*_minimal_args(path, cmd), "--device", "tpu", "-o", "x"]), "'--device'")
    if _option(cmd, "--seed") is not None:
        _one_line_error(runner.invoke(cli, [*_minimal_args(path, cmd), "--seed", "-1", "-o", "x"]), "'--seed'")
    for flag in TRAINING_FLAGS:
        if _option(cmd, flag) is not None and _trains(path, cmd):
            _one_line_error(runner.invoke(cli, [*_minimal_args(path, cmd), flag, "0", "-o", "x"]), f"'{flag}'")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", [p for p in LEAVES if _writes(" ".join(p))], ids=lambda p: " ".join(p))
def test_output_is_required_and_an_existing_one_refused_before_any_work(path, tmp_path, monkeypatch):
    """No -o: a usage error. An existing -o without --overwrite: refused before any work (one line
    on stderr, no progress message before it, nothing written or changed)."""
    monkeypatch.chdir(tmp_path)
    cmd, runner = LEAVES[path], CliRunner()
    args = _minimal_args(path, cmd)
    _one_line_error(runner.invoke(cli, args), "-o/--output is required")
    refused = []
    for existing in ("out.nc", "out.csv", "outdir"):  # a file or folder, named as one of its outputs is
        if existing == "outdir":
            (tmp_path / existing).mkdir()
            (tmp_path / existing / "keep.txt").write_text("mine")
        else:
            (tmp_path / existing).write_text("mine")
        before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
        line = _one_line_error(runner.invoke(cli, [*args, "-o", existing]), existing)
        if "already exists" in line:  # else a name this command never writes ('must end in .csv or .nc')
            assert "--overwrite" in line, line
            refused.append(existing)
        assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
        assert (tmp_path / existing / "keep.txt" if existing == "outdir" else tmp_path / existing).read_text() == "mine"
    assert refused, "no existing output was refused as existing"
