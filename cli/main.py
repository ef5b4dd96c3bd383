"""``oceandl``: classify ocean images and fill gappy SST fields from the shell.

Conventions (every command that writes): ``-o/--output`` for what it writes, ``--overwrite`` to replace
it, ``--seed``, ``--quiet``; ``--device auto|cpu|cuda`` where torch runs (not ``eof``, ``synth``); ``--demo`` where a
built-in default can serve. Exit codes: 0 success, 2 bad usage or bad input, 1 other failures, 130
interrupted, 143 terminated; errors are one line on stderr.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import click

from oceandl import __version__
from oceandl.errors import InputError, OceanDLError
from oceandl.pipelines.runner import PIPELINES

__all__ = ["cli", "main"]


class _Failure(click.ClickException):
    """A one-line error with the exit code of the oceandl error behind it."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that cleanups run as for Ctrl-C."""


def _on_sigterm(signum, frame):
    import signal

    # A scheduler signals the whole process group: DataLoader workers die of it too, and torch's
    # SIGCHLD handler then raised from wherever this process was while it saved its state and shut
    # them down ("DataLoader worker (pid N) is killed by signal: Terminated", a traceback printed
    # beside the error line). The process is stopping: a worker's end is no longer news.
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    raise _Terminated()


_QUIET_HELP = "No progress bars or progress messages (results, warnings and errors still print)."


def _stopped(word: str, exc: KeyboardInterrupt) -> str:
    """'interrupted', with what the training left to go on from (its message) when it says."""
    return f"{word}: {str(exc).splitlines()[0]}" if str(exc).strip() else word


@contextlib.contextmanager
def _resume_hint(*drop: str) -> Iterator[None]:
    """A training command stopped (Ctrl-C, SIGTERM) with its state saved: say how to go on.
    ``drop``: options of the command that --resume does not go with (``--overwrite``, ``--init``:
    `train interpolator` refuses them with it)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if getattr(exc, "resumable", False):
            without = f", without {' and '.join(drop)}" if drop else ""
            exc.args = (f"{exc} (go on with the same command and --resume{without})",)
        raise


class _Usage(click.UsageError):
    """click's usage error on one line: click printed the usage and a hint before it (4 lines)."""

    def __init__(self, exc: click.UsageError):
        super().__init__(exc.format_message(), exc.ctx)
        self.exit_code = exc.exit_code

    def show(self, file=None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{where}", file=file, err=file is None)


def _one_line(exc: click.UsageError) -> click.UsageError:
    # 'oceandl' alone prints the help (NoArgsIsHelpError): that is what it is for
    return exc if isinstance(exc, (_Usage, click.exceptions.NoArgsIsHelpError)) else _Usage(exc)


class OceandlGroup(click.Group):
    """Turns oceandl's exceptions (and unexpected ones) into one-line errors with the right code."""

    def parse_args(self, ctx, args):
        import shlex

        # the command line, for the history attribute of the netCDF files written (NCO/CDO record theirs)
        ctx.meta["oceandl.command"] = shlex.join(["oceandl", *args])
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # 'oceandl --bogus'
            raise _one_line(exc) from None

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                # warnings (skipped files, dropped classes, resized images) as one line each
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except click.UsageError as exc:  # a command's own: 'oceandl interpolate --bogus'
            raise _one_line(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OceanDLError as exc:
            raise _Failure(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code) from None
        except _Terminated as exc:
            raise _Failure(_stopped("terminated", exc), 143) from None
        except KeyboardInterrupt as exc:
            raise _Failure(_stopped("interrupted", exc), 130) from None
        except BrokenPipeError:
            # the reader went away (`oceandl models | head`): stop quietly, as other Unix tools do;
            # stdout to /dev/null so that flushing it at exit does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except MemoryError:
            raise _Failure("out of memory (try a smaller --batch-size or tile)", 1) from None
        except ModuleNotFoundError as exc:
            if os.environ.get("OCEANDL_DEBUG") or not exc.name:
                raise
            raise _Failure(_missing_package(exc.name), 1) from None
        except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked
            if os.environ.get("OCEANDL_DEBUG"):
                raise
            # torch reports its allocators' failures as RuntimeError (torch.OutOfMemoryError on
            # CUDA), not MemoryError: "RuntimeError: [enforce fail at alloc_cpu.cpp:127] ..."
            oom = _out_of_memory(exc) if isinstance(exc, RuntimeError) else None
            if oom is not None:
                raise _Failure(oom, 1) from None
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise _Failure(f"{type(exc).__name__}: {msg} (set OCEANDL_DEBUG=1 for the traceback)", 1) from None


def _out_of_memory(exc: BaseException) -> str | None:
    """The one-line error for torch's out-of-memory ``RuntimeError`` (CPU or CUDA), with the size
    asked for; ``None`` for any other error."""
    import re

    text = str(exc)
    cpu = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", text)
    if cpu is None and not (type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text):
        return None
    cuda = re.search(r"Tried to allocate ([\d.]+ [KMGT]?i?B)", text)
    asked = (f" ({int(cpu.group(1)) / 2**30:.1f} GiB asked for at once)" if cpu
             else f" ({cuda.group(1)} asked for at once)" if cuda else "")
    if cpu is not None:
        return f"out of memory{asked}: try a smaller --batch-size or --size (or tile)"
    return f"out of GPU memory{asked}: try a smaller --batch-size or --size (or tile), or --device cpu"


# import names whose pip package is named otherwise (beyond '_' for '-', which pip takes either way)
_PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn"}


def _missing_package(module: str) -> str:
    """The one-line error for a package imported where it is used but not installed: said as
    'ModuleNotFoundError: No module named ... (set OCEANDL_DEBUG=1 for the traceback)', as if
    oceandl had a bug, and without what to install (Pillow is imported as PIL)."""
    top = module.split(".")[0]
    pip = _PIP_NAMES.get(top, top.replace("_", "-"))
    return (f"this needs the Python package {pip!r}, which is not installed (import {top}): pip install {pip}"
            if top == module else f"module {module!r} not found: the installed {pip!r} is incomplete or of "
            f"another version; pip install --force-reinstall {pip}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message).strip().splitlines()
    click.echo(f"warning: {text[0] if text else category.__name__}", err=True)


def _check_device(ctx, param, value):
    """Refuse an unavailable device before any work (reading data, making --demo data)."""
    if value and value != "auto" and not ctx.resilient_parsing:
        from oceandl.utils import resolve_device

        resolve_device(value)
    return value


def _check_output_option(ctx, param, value):
    """`-o ""` (click makes it '.') or `-o .` names the current folder, never an output.

    Returns a Path; whether the text ended in a slash (``-o filled/``: a folder, which Path forgets)
    is kept in ``ctx.meta["oceandl.output_folder"]``."""
    if value is not None and value.strip() in ("", "."):
        raise click.BadParameter("empty, or the current folder; name the file or folder to write", ctx, param)
    if value is None:
        return None
    ctx.meta["oceandl.output_folder"] = value.endswith(("/", os.sep))
    return Path(value)


def common(f=None, *, output: str | None = "output file", seed: bool = True, device: bool = True):
    """Add the shared options: -o/--output, --overwrite, --seed, --device."""

    def deco(fn):
        if device:
            fn = click.option("--device", default="auto", show_default=True, callback=_check_device,
                              type=click.Choice(["auto", "cpu", "cuda"]), help="Where to compute.")(fn)
        if seed:
            # NumPy refuses negative seeds with a bare ValueError (exit 1) deep in the run
            # and torch's above 2**64 - 1 with a bare "Overflow when unpacking long long" (exit 1)
            fn = click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0, max=2**64 - 1),
                              help="Random seed (>= 0).")(fn)
        if output:
            fn = click.option("--overwrite", is_flag=True, help="Replace an existing output.")(fn)
            fn = click.option("-o", "--output", type=click.Path(), callback=_check_output_option,
                              help=f"Write the {output} here.")(fn)
        return fn

    return deco(f) if f else deco


_NEURAL_DEFAULTS = {
    "epochs": "neural methods: passes over every (day, patch) position; default: a step count instead, 600 "
              "optimiser steps (smp_unet 400; --set steps=N)",
    "batch_size": "neural methods; default: 8 patches",
    "lr": "neural methods, AdamW, cosine-decayed; default: 2e-3",
}


def training_options(fn=None, *, defaults: dict | None = None):
    """--epochs, --batch-size, --lr; ``defaults`` says in each help text what None stands for."""
    defaults = defaults or _NEURAL_DEFAULTS

    def deco(fn):
        # ranges here, the same for every training command: `interpolate`/`train interpolator --epochs 0`
        # trained nothing and wrote a randomly initialised network (exit 0), where `train classifier` refused it
        for opt in reversed([
            click.option("--epochs", type=click.IntRange(min=1), default=None,
                         help=f"Training epochs ({defaults['epochs']})."),
            click.option("--batch-size", type=click.IntRange(min=1), default=None,
                         help=f"Mini-batch size ({defaults['batch_size']})."),
            click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                         help=f"Learning rate ({defaults['lr']})."),
        ]):
            fn = opt(fn)
        return fn

    return deco(fn) if fn else deco


def _kv(values: tuple[str, ...], what: str = "--set") -> dict:
    """Parse key=value pairs; values become int/float/bool/tuple where they look like one."""
    out = {}
    for item in values:
        if "=" not in item:
            raise InputError(f"{what} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = _auto(v.strip())
    return out


def _auto(v: str):
    if v[:1] in ("{", "["):  # JSON for dicts and lists: --set 'model_options={"width": 8}'
        try:
            return json.loads(v)
        except ValueError:
            raise InputError(f"--set value {v!r}: not valid JSON (keys and strings in double quotes)") from None
    if "," in v:
        return tuple(_auto(p) for p in v.split(",") if p)
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def _inputs(paths: tuple[Path, ...]):
    """INPUT as the library takes it: None, one path, or a tuple of several (a file per day, as the
    shell expands ``l3s/*.nc``; a folder or a quoted pattern is one path, expanded by the reader)."""
    return None if not paths else paths[0] if len(paths) == 1 else tuple(paths)


def _method_options(input_path, demo: bool, options, epochs, batch_size, lr) -> dict:
    """An interpolation method's options from ``--set`` and the training flags (INPUT or --demo).

    ``--set steps=0`` / ``epochs=0`` are usage errors here, as ``--epochs 0`` is: the library
    allows 0 (a network built without training, for tests), a command line never wants it."""
    if demo == (input_path is not None):
        raise click.UsageError("give either INPUT.nc or --demo")
    opts = _kv(options)
    for k in ("steps", "epochs"):
        v = opts.get(k)
        # the library allows 0 on purpose (a network built, not trained); from the command line it
        # wrote an untrained network with exit 0, as --epochs 0 did before --epochs was ranged
        if isinstance(v, int) and not isinstance(v, bool) and v == 0:
            raise click.BadParameter(f"{k}=0 trains nothing (the output would be an untrained network): give "
                                     f"{k} >= 1, or leave it out for the method's default", param_hint="'--set'")
    for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if v is not None:
            opts[k] = v
    return opts


def _typed_method_options(options: tuple[str, ...], flags: dict) -> dict[str, tuple[str, str]]:
    """Each method option the command line gave, keyed by the option's name: its name and itself as
    typed, ``{'n_modes': ('--set n-modes', '--set n-modes=0'), 'epochs': ('--epochs', '--epochs 3')}``
    (a flag wins over ``--set``, as in :func:`_method_options`)."""
    typed = {}
    for item in options:
        if "=" in item:
            k = item.split("=", 1)[0].strip()
            typed[k.replace("-", "_")] = (f"--set {k}", f"--set {item}")
    for k, v in flags.items():
        if v is not None:
            flag = "--" + k.replace("_", "-")
            typed[k] = (flag, f"{flag} {v}")
    return typed


def _method_errors_as_typed(fn):
    """`train interpolator` and `interpolate`: the methods' errors about their options in the words of the
    command line. "method 'eof': option n_modes must be an integer >= 1, got 0" -> "method 'eof': --set
    n_modes must be ...", "option epochs=3 and steps=10 are both set" -> "--epochs 3 and --set steps=10
    are both set", "unknown option 'lr'" prefixed with "--lr 0.1: ". The library's own messages (Python
    callers) keep the field names; an option the command line did not give (a checkpoint's) is left so."""
    import functools
    import re

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        typed = _typed_method_options(kwargs.get("options") or (), {k: kwargs.get(k) for k in
                                                                    ("epochs", "batch_size", "lr")})
        parsed = {}
        with contextlib.suppress(InputError):
            parsed = _kv(kwargs.get("options") or ())

        def named(key: str, rest: str) -> tuple[str, str] | None:
            """Option ``key`` as typed, and the message's ``rest`` after it (less the library's
            ``=repr`` of the value, which the typed option shows); None: not one the command line gave."""
            if key not in typed:
                return None
            name, whole = typed[key]
            if not rest.startswith("="):  # "option harmonics must be ...": the option's name
                return name, rest
            value = parsed.get(key) if name.startswith("--set ") else kwargs.get(key)
            rep = f"={value!r}"
            return (whole, rest[len(rep):]) if rest.startswith(rep) else None

        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            msg = str(exc)
            new = msg
            m = re.search(r"(method '[^']*': )option (\w+)(?=[ =])", msg)
            u = re.search(r"method '[^']*': unknown option '(\w+)'", msg)
            if m and (got := named(m.group(2), msg[m.end():])) is not None:
                shown, rest = got
                # "option epochs=3 and steps=10 are both set": the second named as typed too
                both = re.match(r" and (\w+)(?==)", rest)
                if both and (g2 := named(both.group(1), rest[both.end():])) is not None:
                    rest = f" and {g2[0]}{g2[1]}"
                if shown.startswith("--set ") and rest.startswith(" must be"):
                    # "must be ..., or None for ...": None is Python's; --set spells it none
                    rest = re.sub(r"\bNone\b", "none", rest)
                new = msg[:m.start()] + m.group(1) + shown + rest
            elif u and u.group(1) in typed:
                new = f"{typed[u.group(1)][1]}: {msg}"
            if new == msg:
                raise
            raise InputError(new) from None

    return wrapper


def _command_line() -> str | None:
    """The command line being run (``oceandl interpolate sst.nc -o filled.nc``), for ``history``."""
    return click.get_current_context().meta.get("oceandl.command")


def _need_output(output: Path | None, what: str) -> Path:
    if output is None:
        raise click.UsageError(f"-o/--output is required: where to write the {what}")
    return output


def _netcdf_output(output: Path, what: str, folder: str | None = None) -> None:
    """Refuse an output name that does not end in .nc/.nc4, before any work: ``eof -o x.txt`` wrote
    netCDF under a .txt name (``classify -o p.txt`` refused it). ``folder``: how a folder is named
    where the command also writes one (said in the message)."""
    from oceandl.io import NETCDF_SUFFIXES

    if output.suffix.lower() not in NETCDF_SUFFIXES:
        raise InputError(f"{output}: the {what} must end in .nc" + (f", or {folder}" if folder else ""))


def _echo(msg: str) -> None:
    """A progress message on stderr; none with --quiet (results go to stdout, warnings always print)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("quiet"):
        return
    click.echo(msg, err=True)


def _progress(quiet: bool) -> bool:
    """Progress bars only on a terminal: in a log file, a pipe or a batch job's output tqdm's
    carriage-return redraws piled up on one line (an error then began mid-line after them)."""
    return not quiet and sys.stderr.isatty()


@click.group(cls=OceandlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="oceandl")
def cli():
    """oceandl: deep learning for ocean remote sensing.

    \b
    Examples:
      oceandl interpolate --demo -o demo.nc          # fill a synthetic cloudy SST cube
      oceandl interpolate sst.nc --var sst --method dineof -o filled.nc
      oceandl train classifier --demo -o sar_model   # train on synthetic SAR vignettes
      oceandl classify --model sar_model vignettes/ -o predictions.csv
      oceandl benchmark mnist --data-root ../shared/data -o runs/mnist
    """


# ----------------------------------------------------------------------------------------- models
@cli.command()
@click.option("--in-channels", type=click.IntRange(min=1), default=1, show_default=True, help="Input channels.")
@click.option("--size", type=click.IntRange(min=1), default=28, show_default=True,
              help="Input height and width (parameters of size-dependent models).")
@click.option("--num-classes", type=click.IntRange(min=1), default=10, show_default=True, help="Classes of the classifiers.")
def models(in_channels, size, num_classes):
    """List every registered model with its task and parameter count.

    \b
    Example:
      oceandl models --in-channels 1 --size 28 --num-classes 10
    """
    from oceandl.models import MODELS, model_options
    from oceandl.models.transfer import BACKBONES

    click.echo(f"{'name':<14} {'task':<15} {'parameters':>12}  (input {in_channels}x{size}x{size})")
    for name, ctor in MODELS.items():
        task = ctor.task
        opts = {"input_size": size} if "input_size" in model_options(name) else {}
        args = (in_channels, num_classes) if task == "classification" else (in_channels,)
        try:
            n = f"{_parameter_count(name, args, opts):,}"
        except Exception as exc:  # noqa: BLE001
            n = f"n/a ({exc})"
        # the backbones' counts do not depend on the size, but alexnet cannot run on 28 px: say so
        need = BACKBONES[name][2] if name in BACKBONES else 0
        click.echo(f"{name:<14} {task:<15} {n:>12}" + (f"  (needs {need} px or more)" if size < need else ""))


def _parameter_count(name: str, args: tuple, opts: dict) -> int:
    """The parameter count of model ``name``, built on torch's meta device.

    Meta tensors have shapes but no storage: the table's 244 M weights (vgg16 alone 134 M) were
    allocated and randomly initialised only to be counted (3 s of `oceandl models`, 0.4 GB of its peak memory).
    """
    import torch

    from oceandl.models import count_parameters, get_model

    try:
        with torch.device("meta"):
            return count_parameters(get_model(name, *args, **opts))
    except Exception:  # noqa: BLE001 - a constructor that needs real values: built as before, same count or error
        return count_parameters(get_model(name, *args, **opts))


# ------------------------------------------------------------------------------------------- info
@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object (for scripts).")
def info(path, as_json):
    """Say what a checkpoint folder, a saved fit, a benchmark run folder, a netCDF file or a folder of
    images holds.

    A checkpoint: its model and parameters, classes, how far its training went (and whether
    --resume can go on), its test metrics or loss, the data it was trained on, and the versions
    and git commit it was written with. A netCDF file: its dimensions and variables and, for an
    output of interpolate, eof or classify, the method, options, validation scores and software;
    for data, the field --var would pick, its time span (--dates), grid extent and step and the
    --bbox of the whole grid; a folder or quoted pattern of daily files, the same of the series.
    A run folder: the benchmark, its rows and the command that runs it again. A folder of class
    folders (synth sar/plankton, TenGeoP-SARwv) or a netCDF image stack: its classes, the images
    of each and their size. An MNIST folder: the images and labels of each split (IDX headers).
    Only headers are read: no weights, no data.

    \b
    Examples:
      oceandl info sar_model
      oceandl info unet_sst
      oceandl info filled.nc --json
      oceandl info l3s_2020/                # a folder of daily files: time span, grid, --bbox
      oceandl info runs/sst
      oceandl info sar_vignettes/           # class folders: classes, images per class, sizes
    """
    from oceandl.describe import describe

    facts = describe(path)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    width = max(map(len, facts))
    for key, value in facts.items():
        click.echo(f"{key + ':':<{width + 1}} {value}")


# ------------------------------------------------------------------------------------------ train
@cli.group(cls=OceandlGroup)
def train():
    """Train a model and write a checkpoint folder (what --model takes back).

    \b
    Examples:
      oceandl train classifier --demo -o sar_model
      oceandl classify --model sar_model vignettes/ -o predictions.csv
      oceandl train interpolator --demo -o demo_unet
      oceandl train interpolator sst_2021.nc --method unet --init unet_sst --epochs 5 -o unet_sst_2021
      oceandl train interpolator sst_2015-2024.nc --method dineof --set harmonics=2 -o dineof_decade
      oceandl interpolate today.nc --fit-on dineof_decade -o today_filled.nc
    """


_MIN_QUALITY_HELP = ("GHRSST L2P/L3: values whose quality_level (0-5) is below this are missing (4 keeps the "
                     "acceptable and best retrievals, as GDS 2.0 advises).")


def _check_min_quality(demo: bool, min_quality) -> None:
    if demo and min_quality is not None:  # the synthetic cube has no quality_level: it would be ignored
        raise click.UsageError("--min-quality reads the quality_level of an INPUT file; --demo has none")


def _parse_cut(ctx, param, value):
    """--bbox W,S,E,N / --dates START:END, parsed and checked (exit 2 with the reason)."""
    if value is None:
        return None
    from oceandl.io import parse_bbox, parse_dates

    try:
        return parse_bbox(value) if param.name == "bbox" else parse_dates(value)
    except InputError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1]) from None


def subset_options(f):
    """--bbox and --dates: the region and period of INPUT that is read (the rest never is)."""
    f = click.option("--dates", callback=_parse_cut, metavar="START:END",
                     help="Only the time steps from START to END (ISO dates, inclusive to the end of their precision; "
                          "either side may be left open), or in one period: 2020-01-01:2020-03-31, 2020-06:, :2021, "
                          "2020-02 (February).")(f)
    return click.option("--bbox", callback=_parse_cut, metavar="W,S,E,N",
                        help="Only the grid points inside this box, in degrees (either longitude convention; W > E "
                             "crosses the dateline): a region of a global product, e.g. --bbox=-10,40,0,48 (with '=' "
                             "when W is negative).")(f)


_AUX_HELP = ("Auxiliary variable (repeat for several): VAR of the same file, or FILE:VAR of another: a covariate the "
             "method takes beside the field (a passive-microwave SST that sees through clouds, the wind): input "
             "channels of a network, more columns of DINEOF's matrix (multivariate DINEOF); neural methods and "
             "dineof. On another grid or at other times it is put on the field's (nearest day, linear "
             "interpolation, a finer grid block-averaged first; said). With --model, --init or --resume: default, "
             "those it was trained with. With --fit-on (dineof): a multivariate fit on another period fills INPUT "
             "with INPUT's covariates (read from the --fit-on file too for its fit; a saved fit's by default, "
             "`train interpolator --aux` saves them). --demo has sst_mw. With interpolate --chunks: read block by block with "
             "the field's halo and normalised with the whole cube's statistics (a --model's: its training ones); "
             "FILE:VAR on another grid or other days is put on the field's lazily, each block reading its "
             "window of it. A (lat, lon) VAR (bathymetry) is a static "
             "covariate: an input channel the same every day, normalised by its global mean and std (kept in "
             "the checkpoint); neural methods only. A --model's or saved fit's covariates are matched by name: "
             "one a new file names otherwise is given as NAME=VAR or NAME=FILE:VAR (e.g. --aux "
             "sst_mw=mw_2020.nc:analysed_sst: the sst_mw the model was trained with, read from analysed_sst; "
             "never guessed, even one for one), also with --fit-aux, --chunks and train interpolator.")


_MASK_HELP = ("Land-sea mask: VAR of the same file or FILE:VAR of another, (lat, lon) on the field's grid (matched "
              "by coordinate, either longitude convention; a larger grid is cut to it), e.g. --mask land or "
              "--mask lsm.nc:lsm. 1/True = ocean; a CF flag variable is read by its flag_meanings (land, lake, "
              "river = land), a land fraction named land/lsm (or standard_name land_area_fraction) is ocean below "
              "0.5. Observations on its land are dropped (missing_flag 3); ocean pixels never observed (cloudy all "
              "period) are filled by the neural methods, left missing by climatology, eof, dineof (warned, "
              "missing_flag 4). Without it, never observed = land. Kept in a checkpoint (train interpolator), "
              "which applies it to a file on its grid (with --chunks too: each block drops its land observations, the "
              "global statistics are computed without them).")


@train.command("interpolator")
@click.argument("input_path", nargs=-1, type=click.Path(path_type=Path))
@click.option("--var", default=None, help="Variable to learn from (default: found from CF attributes).")
@click.option("--aux", "aux", multiple=True, help=_AUX_HELP)
@click.option("--mask", "mask", default=None, metavar="VAR|FILE:VAR", help=_MASK_HELP)
@click.option("--method", default="unet", show_default=True, help="A neural method (convae, unet, resae, smp_unet), or climatology, eof, dineof: fitted and saved for `interpolate --fit-on`.")
@click.option("--set", "options", multiple=True, help="Method option key=value (e.g. --set steps=2000, --set nll=true).")
@click.option("--demo", is_flag=True, help="Train on the built-in synthetic cloudy SST cube.")
@click.option("--min-quality", type=click.IntRange(0, 5), default=None, help=_MIN_QUALITY_HELP)
@click.option("--init", "init", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder to start from (its method is the default --method): fine-tune its network "
                   "on INPUT instead of training a new one.")
@click.option("--resume", is_flag=True, help="Go on from the training state an interrupted run left in the -o "
              "folder (give the same INPUT, options and --seed; neural methods). The result is the checkpoint the "
              "run would have written uninterrupted.")
@subset_options
@training_options
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)
@common(output="checkpoint folder")
@_method_errors_as_typed
def train_interpolator_cmd(input_path, var, method, options, demo, epochs, batch_size, lr, quiet, output, overwrite,
                           seed, device, min_quality=None, init=None, resume=False, aux=(), bbox=None, dates=None,
                           mask=None):
    """Train a neural gap filler (or fit a climatology, eof or dineof) on a (time, lat, lon) cube and
    write its checkpoint.

    The network learns from every observation of the cube (self-supervised: clouds of other days
    are laid over clear pixels); `oceandl interpolate --model` then fills other files with it,
    without training again. A climatology, eof or dineof is fitted and saved the same way (its
    modes, cycle and pixel means); `oceandl interpolate --fit-on FOLDER` fills other files on its
    grid with it, without fitting again.

    While a network trains, the -o folder holds its resumable state (every tenth of the steps by
    default, --set checkpoint_every=N steps): a killed run goes on with the same command plus
    --resume, to the checkpoint it would have written uninterrupted; Ctrl-C or SIGTERM saves the
    last whole step first. `interpolate --model` warns about such an unfinished folder.

    \b
    Examples:
      oceandl train interpolator sst_2019.nc --var sst --method unet --epochs 20 -o unet_sst
      oceandl train interpolator sst_2019.nc --var sst --method unet --epochs 20 -o unet_sst --resume
      oceandl interpolate sst_2020.nc --method unet --model unet_sst -o filled_2020.nc
      oceandl train interpolator --demo -o demo_unet
      oceandl train interpolator sst_2021.nc --method unet --init unet_sst --epochs 5 -o unet_sst_2021
      oceandl train interpolator sst_2015-2024.nc --method dineof --set harmonics=2 -o dineof_decade
      oceandl interpolate today.nc --fit-on dineof_decade -o today_filled.nc
      oceandl train interpolator sst_mw_2019.nc --var sst --aux sst_mw -o unet_mw   # microwave SST as input
      oceandl train interpolator sst_2019.nc --var sst --mask land -o unet_sst   # land-sea mask, kept
    """
    from oceandl.pipelines.interpolate import train_interpolator

    output = _need_output(output, "checkpoint folder")
    input_path = _inputs(input_path)
    _check_min_quality(demo, min_quality)
    opts = _method_options(input_path, demo, options, epochs, batch_size, lr)
    if init is not None:
        if "init" in opts:
            raise click.UsageError("give the starting checkpoint once: --init or --set init=..., not both")
        opts["init"] = str(init)
    start = opts.get("init") or (output if resume else None)
    if start is not None:
        method = _checkpoint_method_unless_given(method, start)
    drop = [name for name, given in (("--overwrite", overwrite), ("--init", "init" in opts)) if given]
    with _resume_hint(*drop):
        text = train_interpolator(input_path, output, var=var, method=method, options=opts, seed=seed, device=device,
                                  overwrite=overwrite, demo=demo, progress=_progress(quiet), log=_echo,
                                  min_quality=min_quality, resume=resume, aux=aux, bbox=bbox, dates=dates,
                                  mask=mask)
    click.echo(text)


def _checkpoint_task(path) -> str | None:
    """The ``task`` of checkpoint folder ``path``'s ``config.json``, or None if it has none or is unreadable."""
    try:
        task = json.loads((Path(path) / "config.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return task if isinstance(task, str) else None


def _checkpoint_method_unless_given(method: str, path) -> str:
    """The method a network checkpoint ``path`` (``--model``, ``--init``, ``--resume``'s output) was
    trained for when ``--method`` was left at its default, as ``--fit-on`` takes a saved fit's; a
    ``--method`` given is kept (a checkpoint of another is then refused by the loader, naming both)."""
    from oceandl.interp import METHODS
    from oceandl.interp.fitted import checkpoint_method

    src = click.get_current_context().get_parameter_source("method")
    trained = checkpoint_method(path)
    return trained if trained in METHODS and (src is None or src.name == "DEFAULT") else method


def _network_of(start: Path, what: str, **given):
    """The network and preprocessing options of `train classifier` taken from checkpoint ``start``
    (``--init``'s, or the folder of a run started with it): those left at their defaults become its
    own, those given must be its own (refused in one line naming each that is not).

    Returns model name, model options, size, fit, intensity, normalize."""
    from oceandl.training.classifier import INIT_FREE_OPTIONS, init_checkpoint_config

    ctx = click.get_current_context()
    config = init_checkpoint_config(start, what)
    pre = config.get("preprocessing") or {}
    from oceandl.models import MODELS

    dropped = set(getattr(MODELS.get(config["model"]), "init_options", ()))  # its weights replace ImageNet's
    theirs_opts = {k: v for k, v in (config.get("model_options") or {}).items() if k not in dropped}
    size = pre.get("size")
    theirs = {"model_name": config["model"], "size": size, "fit": pre.get("fit", "stretch"),
              "intensity": pre.get("intensity", "linear"), "normalize": pre.get("normalize", "none")}

    def given_(name):
        src = ctx.get_parameter_source(name)
        return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")

    bad = []
    for name, value in theirs.items():
        mine = given["size"] and [given["size"]] * 2 if name == "size" else given[name]
        if given_(name) and mine != value:
            flag = "--model" if name == "model_name" else f"--{name}"
            bad.append(f"{flag} {given[name]} (it has {value if name != 'size' else ' x '.join(map(str, value))})")
    channels = given["channels"]
    if channels and int(channels) != int(config["model_args"][0]):
        bad.append(f"--channels {channels} (it takes {config['model_args'][0]})")
    opts = dict(theirs_opts)
    for k, v in given["options"].items():
        if k in INIT_FREE_OPTIONS:
            opts[k] = v
        elif theirs_opts.get(k, object()) != v:
            bad.append(f"--set {k}={v} (it has {k}={theirs_opts.get(k)!r})" if k in theirs_opts
                       else f"--set {k}={v} (it has none)")
    if bad:
        raise InputError(f"{what} {start}: fine-tuning trains its network as it was built: drop "
                         + ", ".join(bad))
    return config["model"], opts, (tuple(size) if size else None), theirs["fit"], theirs["intensity"], \
        theirs["normalize"]


def _open_labelled(data: Path, size, channels, on_error, class_folders: str = "top", fit: str = "stretch"):
    from oceandl.datasets.images import ImageFolderDataset, open_image_dataset
    from oceandl.datasets.mnist import MNISTDataset, find_mnist_files

    if class_folders == "leaf":  # a taxonomy tree: only a folder of class folders has one
        if not data.is_dir():
            raise InputError(f"--class-folders leaf: {data} is not a folder of class folders")
        return ImageFolderDataset(data, size=size, channels=channels, on_error=on_error, class_folders="leaf",
                                  fit=fit)
    if data.is_dir():
        splits = []
        for split in ("train", "test"):
            try:
                find_mnist_files(data, split)
                splits.append(split)
            except InputError:
                pass
        if splits:
            from oceandl.datasets.mnist import load_mnist
            from oceandl.errors import warn

            # the training split when present; a corrupt file is an error, never a silent fallback
            x, y = load_mnist(data, splits[0])
            # the test accuracy printed is on a part of this one file: read as MNIST's, it was the
            # score on 15 % of the training file (the official test file unused), or of a model
            # trained on most of the official test set
            if splits == ["train", "test"]:
                warn(f"{data}: MNIST's training file only, split into training, validation and test by --split; "
                     "the official test file is not used, so the test accuracy is not MNIST's "
                     "(`oceandl benchmark mnist` tests on it)")
            elif splits == ["test"]:
                warn(f"{data}: only MNIST's test file, split into training, validation and test by --split: the "
                     "model trains on most of the official test set, so its test accuracy does not compare with "
                     "MNIST's")
            return MNISTDataset(x, y)
        return open_image_dataset(data, size=size, channels=channels, on_error=on_error, fit=fit)
    return open_image_dataset(data)


def _split_option(split: str) -> tuple[float, ...]:
    """``--split`` as three fractions, its errors naming the option (the library's said "split (0.5, 0.5)")."""
    from oceandl.training.classifier import split_fractions_ok

    example = "train,val,test, e.g. 0.8,0.1,0.1"
    try:
        fractions = tuple(float(s) for s in split.split(","))
    except ValueError:
        raise InputError(f"--split {split}: expected three numbers {example}") from None
    if len(fractions) != 3:
        raise InputError(f"--split {split}: expected three fractions {example}")
    if not split_fractions_ok(fractions):
        raise InputError(f"--split {split}: the three fractions (train,val,test) must each be above 0 and sum "
                         "to 1, e.g. 0.8,0.1,0.1")
    return fractions


#: TrainConfig's fields that are `train classifier` options: its errors say the option, not the field
_TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "grad_clip", "warmup_epochs", "label_smoothing",
                 "l1", "l2", "early_stopping", "num_workers")


@contextlib.contextmanager
def _as_options(augment: str | None = None) -> Iterator[None]:
    """The library's errors about settings in the words of the command line: "label_smoothing must be
    within [0, 1]" -> "--label-smoothing must be ...", "unknown augmentation 'x'" -> "--augment x: ..."."""
    import re

    try:
        yield
    except InputError as exc:
        msg = str(exc)
        m = re.match(r"([a-z0-9_]+)(?=[ =])", msg)
        if m and m.group(1) in _TRAIN_FIELDS:
            msg = "--" + m.group(1).replace("_", "-") + msg[m.end():]
        msg = re.sub(r"scheduler='(\w+)'", r"--scheduler \1", msg)
        msg = msg.replace("below epochs (", "below --epochs (")
        if augment is not None and msg.startswith("unknown augmentation"):
            msg = f"--augment {augment}: {msg}"
        elif re.match(r"model '[^']*' has no option", msg):
            msg = f"--set: {msg}"
        if msg == str(exc):
            raise
        raise InputError(msg) from None


@train.command("classifier")
@click.option("--data", type=click.Path(path_type=Path), help="Class folders (TenGeoP-SARwv, plankton), a netCDF stack, or an MNIST folder.")
@click.option("--demo", is_flag=True, help="Train on synthetic SAR vignettes made on the fly.")
@click.option("--model", "model_name", default="cnn", show_default=True, help="Registry name (see `oceandl models`).")
@training_options(defaults={"epochs": "default: 10; 12 with --demo", "batch_size": "default: 64; 16 with --demo",
                            "lr": "default: 1e-3"})
@click.option("--split", default="0.7,0.15,0.15", show_default=True, help="Train,validation,test fractions.")
@click.option("--size", type=int, default=None, help="Resize images to SIZE x SIZE (default: their own size; mixed sizes are resized to the most common one, with a warning).")
@click.option("--fit", type=click.Choice(["stretch", "crop", "pad"]), default="stretch", show_default=True, help="How an image of another shape reaches the size: stretch (resize), crop (resize to cover, centre-crop) or pad (resize to fit, keeping its aspect ratio, pad with the border mean: plankton, whose shape tells the class). Recorded in the checkpoint; classify fits images the same way.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Convert images to 1 or 3 channels.")
@click.option("--intensity", type=click.Choice(["linear", "db"]), default="linear", show_default=True, help="SAR: linear, or db: 10 log10 of linear intensities (sigma0; images already in dB, mostly negative, are refused: use linear for them; --demo: db).")
@click.option("--normalize", type=click.Choice(["per_image", "none"]), default="per_image", show_default=True, help="per_image: zero mean, unit std per image and channel; none: values as read (recorded in the checkpoint, applied again by classify).")
@click.option("--augment", default="", help="Comma list of batch augmentations: flip,rot90,rotate,translate,scale,noise,speckle (speckle: linear intensities only, --intensity linear --normalize none; default: none; flip,rot90 with --demo).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default="adamw", show_default=True, help="Optimizer.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="The optimizer's weight decay, on the weights only: not on biases or normalisation layers (0: none).")
@click.option("--grad-clip", type=float, default=0.0, show_default=True, help="Clip the global norm of the gradients to this before each step (0: no clipping).")
@click.option("--warmup-epochs", type=float, default=0.0, show_default=True, help="Ramp the learning rate up linearly over these epochs (fractions allowed), then run --scheduler over the rest (0: no warm-up; not with onecycle or plateau).")
@click.option("--scheduler", type=click.Choice(["cosine", "step", "plateau", "onecycle", "none"]), default="cosine", show_default=True, help="Learning-rate schedule: cosine (down to 0 at the last step), step (x0.1 after each third of the steps), onecycle (up, then down: as the SAR and plankton benchmarks train), plateau (x0.3 after 3 epochs without a lower validation loss) or none (constant).")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True, help="Label smoothing of the training loss, in [0, 1] (the validation loss, which picks the best epoch, is the plain cross-entropy).")
@click.option("--class-weights", type=click.Choice(["none", "balanced", "sqrt"]), default="none", show_default=True, help="Weigh rare classes up in the loss: balanced: N/(K n_c), as scikit-learn (a class of 4 images among 300-image ones weighs 75x them); sqrt: 1/sqrt(n_c), milder (8.7x).")
@click.option("--l1", type=float, default=0.0, show_default=True, help="L1 penalty on the weights (0: none).")
@click.option("--l2", type=float, default=0.0, show_default=True, help="L2 penalty on the weights (0: none).")
@click.option("--early-stopping", type=int, default=0, show_default=True, help="Stop after N epochs without validation improvement (0: never).")
@click.option("--set", "options", multiple=True, help="Model option key=value (e.g. --set freeze=backbone).")
@click.option("--init", "init", type=click.Path(path_type=Path), default=None,
              help="Classifier checkpoint folder (train classifier -o) to fine-tune on --data instead of training a "
                   "new network. Its network and preprocessing are taken: --model, --set options (but freeze), --size, "
                   "--fit, --intensity and --normalize default to its own, another is refused; the images must have "
                   "its channels (--channels converts them). Same classes (any order): every weight is loaded; other "
                   "classes: its backbone, with a new head (said). Not with --resume.")
@click.option("--resume", is_flag=True, help="Go on from the training state in the -o folder.")
@click.option("--on-error", type=click.Choice(["skip", "raise"]), default="skip", show_default=True, help="Unreadable images (at the header check, or failing to decode when read): skip (warned about, listed in the checkpoint's config.json) or fail.")
@click.option("--class-folders", type=click.Choice(["top", "leaf"]), default="top", show_default=True, help="top: each folder of --data is a class, sub-folders included (<class>/<year>/); leaf: each folder holding images is a class named by its path less year/date folders (a taxonomy tree, e.g. Protista/Diatoms/Chaetoceros; WHOI-Plankton <year>/<class>/ of several years, one class per taxon).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True, help="bf16 autocast; auto: where the device computes bf16 natively (Ampere+ GPU, AVX512-BF16/AMX CPU); bf16 on an older GPU trains in fp32, with a warning.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True, help="Channels-last memory layout (faster convolutions on CPUs and tensor cores).")
@click.option("--fused-optimizer/--no-fused-optimizer", default=True, show_default=True, help="The optimizer's step as one fused kernel (CPU, CUDA).")
@click.option("--num-workers", type=click.IntRange(min=0), default=None, help="Processes that read the images (default: one per core when reading takes over a second; 0: this process).")
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)
@common(output="checkpoint folder")
def train_classifier_cmd(data, demo, model_name, epochs, batch_size, lr, split, size, fit, channels, intensity, normalize,
                         augment, optimizer, weight_decay, grad_clip, warmup_epochs, scheduler, label_smoothing,
                         class_weights, l1, l2,
                         early_stopping, options, resume, on_error, class_folders, precision, channels_last, fused_optimizer, num_workers, quiet, output, overwrite, seed,
                         device, init=None):
    """Train a classifier on labelled images; test it once on a held-out split.

    \b
    Examples:
      oceandl train classifier --data TenGeoP-SARwv/GeoTIFF --model resnet --size 128 \\
          --intensity db --augment flip,rot90 --epochs 20 -o sar_resnet
      oceandl train classifier --demo -o demo_model
      oceandl train classifier --data vignettes_2026 --init sar_resnet --epochs 5 -o sar_resnet_2026
    """
    import tempfile

    from oceandl.training import TrainConfig
    from oceandl.training.classifier import check_settings, train_classifier

    output = _need_output(output, "checkpoint folder")
    if not resume:
        from oceandl.training.checkpoint import is_checkpoint_folder
        from oceandl.utils import check_output_path

        check_output_path(output, overwrite, kind="folder", replaceable=is_checkpoint_folder,
                          what="checkpoint")
    if demo == (data is not None):
        raise click.UsageError("give either --data DIR or --demo")
    from oceandl.preprocess import MAX_SIZE

    if isinstance(size, int) and not 1 <= size <= MAX_SIZE:  # a tuple: --init's, checked when read
        # named as the option here (the spec check says size=...); --size 100000 ran out of memory
        # (37.3 GiB, exit 1) in the image reader
        raise InputError(f"--size {size}: use 1 to {MAX_SIZE} pixels a side")
    if demo:
        intensity = "db"
        # 280 training vignettes: at batch 64, 6 epochs were 30 steps and near chance (13-22 % on
        # 10 classes); batch 16 for 12 epochs is 216 steps, 62-68 % in about 10 s on 2 cores
        epochs = 12 if epochs is None else epochs
        batch_size = 16 if batch_size is None else batch_size
        augment = augment or "flip,rot90"
    model_opts = _kv(options)
    start = init
    if start is None and resume and (output / "config.json").is_file():
        from oceandl.training.checkpoint import read_config

        # a run started with --init goes on without it: its network is the one recorded in its folder
        start = output if isinstance(read_config(output).get("init"), dict) else None
    if start is not None:
        if init is not None and resume:
            raise InputError(f"--resume with --init: the run goes on from the weights saved in {output} (the init "
                             "checkpoint it was started from is recorded there): drop --init")
        model_name, model_opts, size, fit, intensity, normalize = _network_of(
            start, "--init" if init is not None else "the run in", model_name=model_name, options=model_opts,
            size=size, fit=fit, intensity=intensity, normalize=normalize, channels=channels)
    fractions = _split_option(split)
    # `is None`, not `or`: an explicit 0 is refused by TrainConfig (it was silently the default)
    with _as_options():
        cfg = TrainConfig(epochs=10 if epochs is None else epochs, batch_size=64 if batch_size is None else batch_size,
                          lr=1e-3 if lr is None else lr, seed=seed, device=device,
                          optimizer=optimizer, weight_decay=weight_decay, class_weights=class_weights, l1=l1, l2=l2,
                          early_stopping=early_stopping, grad_clip=grad_clip, warmup_epochs=warmup_epochs,
                          scheduler=scheduler, label_smoothing=label_smoothing,
                          augment=tuple(a for a in augment.split(",") if a), num_workers=num_workers,
                          amp=precision != "fp32", amp_cpu={"auto": None, "bf16": True, "fp32": False}[precision],
                          channels_last=channels_last, fused=fused_optimizer,
                          progress=_progress(quiet))
    # --size and --channels in the spec too: a netCDF stack or MNIST folder is read as stored (only the
    # image-folder readers take them), so they were silently ignored there; after a folder reader
    # they are already met and change nothing
    spec = {"intensity": intensity, "normalize": normalize, **({"size": size} if size is not None else {}),
            **({"channels": int(channels)} if channels else {}), **({"fit": fit} if fit != "stretch" else {})}
    # every setting checked before the data is made or read (TrainConfig above: the numbers)
    with _as_options(augment=augment):
        check_settings(model_name, cfg, split=fractions, preprocessing=spec, model_options=model_opts)
    if demo:
        import shutil

        from oceandl.datasets.synthetic_images import make_sar_vignettes

        tmp = tempfile.mkdtemp(prefix="oceandl-demo-")
        # the vignettes are read once; remove them however the command ends
        click.get_current_context().call_on_close(lambda: shutil.rmtree(tmp, ignore_errors=True))
        _echo(f"--demo: writing synthetic SAR vignettes (TenGeoP layout) to {tmp}")
        data = make_sar_vignettes(Path(tmp) / "sar", n_per_class=40, size=48, seed=seed)
    if not data.exists():
        raise InputError(f"{data}: no such file or folder")
    dataset = _open_labelled(data, size, int(channels) if channels else None, on_error, class_folders, fit)
    root = getattr(dataset, "root", None)  # the folder of class folders (not an MNIST folder's or a stack's)
    if not demo and root is not None and output.resolve().is_relative_to(Path(root).resolve()):
        # the checkpoint's figures (confusion.png, curves.png, ...) were read by the next run on
        # --data as the images of one more class, named after the checkpoint folder
        raise InputError(f"{output}: inside the class folders of --data ({root}), where the next run would "
                         "read the checkpoint's figures as images of a class; write it outside them")
    drop = [name for name, given in (("--overwrite", overwrite), ("--init", init is not None)) if given]
    with _resume_hint(*drop):
        res = train_classifier(dataset, model_name, output, cfg, split=fractions, resume=resume,
                               overwrite=overwrite, preprocessing=spec, model_options=model_opts, figures=output,
                               on_error=on_error, init=init)
    t = res["test"]
    bad = len(res["unreadable_images"])
    _echo(f"{model_name}: {res['params']:,} parameters, best epoch {res['best_epoch']}, "
          f"split {res['split_sizes']}" + (f", {bad} unreadable image(s) left out (listed in "
                                           f"{output / 'config.json'})" if bad else ""))
    click.echo(f"test accuracy {t['accuracy']:.4f}  macro F1 {t['macro_f1']:.4f}  weighted F1 {t['weighted_f1']:.4f}  "
               f"log-loss {t['log_loss']:.4f}  ECE {t['ece']:.4f}")
    _echo(f"checkpoint written to {output} (use --model {output})")


# --------------------------------------------------------------------------------------- classify
@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="Checkpoint folder from `oceandl train classifier`.")
@click.option("--min-confidence", type=float, default=0.0, show_default=True, help="Below it, the label is 'unassigned'.")
@click.option("--tta", is_flag=True, help="Test-time augmentation (flips and 90-degree rotations; non-square images: flips and 180 degrees).")
@click.option("--var", default="image", show_default=True, help="Image variable of a netCDF stack.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per forward pass (default: on the CPU as many as keep the model's largest activation under 8 MB, at most 256; on a GPU 256).")
@click.option("--demo", is_flag=True, help="Train a small model on synthetic vignettes and classify a held-out set.")
@click.option("--on-error", type=click.Choice(["skip", "raise"]), default="skip", show_default=True, help="Unreadable images (corrupt, truncated, no finite pixel): skip: their rows have an empty prediction and the reason in the error column (exit 2 if none is readable); raise: fail.")
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)
@common(output="predictions (.csv or .nc)")
def classify(inputs, model_path, min_confidence, tta, var, batch_size, demo, on_error, quiet, output, overwrite, seed,
             device):
    """Classify images (folders, files, quoted patterns or a netCDF stack) with a trained checkpoint.

    Writes one row per image: the predicted class, its probability, every class's probability
    (p_<class>) and, for TenGeoP-SARwv vignettes with a metadata table beside them, their latitude,
    longitude and time; a netCDF stack's rows keep its sample coordinate and the variables along it
    (each image's time, position). Images below --min-confidence are 'unassigned'; an image that
    cannot be read has its row too, with an empty prediction and the reason in 'error'. Images in
    folders named as the model's classes (the tree it was trained on, TenGeoP letter folders, a
    class folder given alone) have their 'true_class', and the accuracy over them is printed; a
    folder named otherwise, or above the one given, is no label. A netCDF stack's 'label' variable
    gives its images' 'true_class' (its class names from the label's 'classes' or flag_meanings
    attributes or the file's 'classes', else the labels are positions in the model's classes). A CSV is plain (pandas and
    spreadsheets read it as it is); its provenance, what a .nc output holds in its attributes (the
    model's absolute path and weights' SHA-256, its classes, the command, oceandl's version,
    --min-confidence, --tta, the date), is written with it in OUTPUT.json: both or neither, and
    --overwrite replaces both. A text cell beginning with =, +, -, @, a tab or a carriage return
    (a class or file name, not a number) gets a ' in front, so that a spreadsheet shows it as text
    instead of running it as a formula (the .nc and the JSON keep it as it is).

    \b
    Examples:
      oceandl classify --model sar_model vignettes/*.tiff -o predictions.csv
      oceandl classify --model sar_model 'GeoTIFF/*/*.tiff' -o all.csv   # quoted: too many for the shell
      oceandl classify --model sar_model stack.nc --var image --min-confidence 0.6 -o predictions.nc
      oceandl classify --demo -o demo_predictions.csv
    """
    from oceandl.utils import check_output_path

    output = _need_output(output, "predictions")
    if output.suffix.lower() not in (".csv", ".nc"):
        raise InputError(f"{output}: the output must end in .csv or .nc")
    # inputs: `-o stack.nc --overwrite` on the stack classified replaced the images with the predictions
    check_output_path(output, overwrite, inputs, kind="file", what="predictions file")
    if output.suffix.lower() == ".csv":  # its provenance beside it, written with it: both or neither
        check_output_path(_sidecar(output), overwrite, inputs, kind="file", what="predictions' provenance file")
    from oceandl.classification import classify as run_classify
    from oceandl.classification import open_images

    if not 0 <= min_confidence <= 1:
        raise InputError(f"--min-confidence {min_confidence}: must be within [0, 1]")
    if demo and (model_path is not None or inputs):  # they were ignored: the demo trains and classifies its own
        raise click.UsageError("--demo trains a model on synthetic vignettes and classifies held-out ones: "
                               "drop --model and the inputs")
    tmp = None
    try:
        if demo:
            model_path, inputs, tmp = _classify_demo(seed, device, quiet)
        if model_path is None:
            raise click.UsageError("--model CHECKPOINT is required (or --demo)")
        if not inputs:
            raise click.UsageError("give the images to classify: folders, files or a .nc stack")
        src = click.get_current_context().get_parameter_source("var")
        stack = len(inputs) == 1 and Path(inputs[0]).suffix.lower() in (".nc", ".nc4")
        if not stack and src is not None and src.name != "DEFAULT":  # it was ignored: image files have no variables
            raise InputError(f"--var {var}: names the image variable of a netCDF stack; these inputs are image "
                             "files (drop --var)")
        # the images as the library opens a path given to oceandl.classify (a wrong --model fails
        # first); opened here for a stack's attributes (its history)
        data = open_images(list(inputs), model_path, var=var if stack else None, on_error=on_error)
        ds = run_classify(data, model_path, batch_size=batch_size, device=device, min_confidence=min_confidence,
                          tta=tta, progress=_progress(quiet), on_error=on_error)
        if tmp is not None:  # the demo's model is deleted below with its folder: not a path to look for
            ds.attrs["model"] = "--demo: a small CNN trained on synthetic SAR vignettes (not kept)"
        if tmp is not None and "path" in ds:
            # the demo's folder is deleted below: its absolute paths named files that no longer exist
            ds["path"] = ds["path"].copy(data=[str(Path(p).relative_to(tmp)) for p in ds["path"].values])
            ds["path"].attrs["comment"] = "relative to the --demo folder of synthetic vignettes, deleted after the run"
        if output.suffix.lower() == ".nc":
            from oceandl.interp.base import append_history
            from oceandl.io import conventions

            # a netCDF like the others oceandl writes: CF, with the command in front of a stack's history
            stack = getattr(data, "attrs", {})
            ds.attrs["Conventions"] = conventions(stack.get("Conventions"))
            ds.attrs["history"] = append_history(stack.get("history") or None, "classify", command=_command_line())
        _write_predictions(ds, output, overwrite, model=ds.attrs["model"])  # absolute (classify's), or the demo's
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    counts = ds["predicted"].to_series().value_counts()
    failed = int(counts.pop("")) if "" in counts else 0
    _echo(f"{ds['predicted'].size - failed} images classified: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + (f"; {failed} unreadable (see the error column)" if failed else ""))
    if "true_class" in ds:
        _echo_accuracy(ds)
    _echo(f"predictions written to {output}")


def _echo_accuracy(ds) -> None:
    """The accuracy of the predictions of the images whose folder names their class (a result, on
    stdout): over the labelled images that could be read; 'unassigned' ones count as wrong."""
    from oceandl.classification import UNASSIGNED

    true, pred = ds["true_class"].values, ds["predicted"].values
    scored = (true != "") & (ds["error"].values == "")
    n, right = int(scored.sum()), int((pred == true)[scored].sum())
    if not n:
        click.echo(f"accuracy: none of the {int((true != '').sum())} labelled images could be read")
        return
    unassigned = int((pred[scored] == UNASSIGNED).sum())
    # a stack's labels are its label variable's, not folders'
    how = ("those in folders named as the model's classes" if "path" in ds
           else "by the stack's label variable, of the model's classes")
    click.echo(f"accuracy {right / n:.4f}: {right} of {n} labelled images ({how}, readable) right"
               + (f"; {unassigned} unassigned, counted wrong" if unassigned else ""))


def _classify_demo(seed, device, quiet, n_per_class: int = 40, size: int = 48, epochs: int = 16):
    """Train a narrow CNN on synthetic TenGeoP vignettes (seconds on a CPU) in a temporary folder;
    return the checkpoint, the held-out vignettes (with their metadata table) and the folder.

    40 per class for 16 epochs: test accuracy 0.65-0.70 over seeds 0-2 in 7.5 s on 2 cores when
    chosen (30 for 10 epochs gave 0.22-0.38 in 6.2 s); measured again at commit 0f624c5 (audit 102):
    0.789, 0.507, 0.623 for seeds 0, 1, 2, 12 s each (a test split of about 60 images)."""
    import shutil
    import tempfile

    from oceandl.datasets.images import open_image_dataset
    from oceandl.datasets.synthetic_images import make_sar_vignettes
    from oceandl.training import TrainConfig
    from oceandl.training.classifier import train_classifier

    tmp = Path(tempfile.mkdtemp(prefix="oceandl-demo-"))
    _echo(f"--demo: training a small CNN on synthetic SAR vignettes in {tmp}")
    try:
        train_dir = make_sar_vignettes(tmp / "train", n_per_class=n_per_class, size=size, seed=seed)
        test_dir = make_sar_vignettes(tmp / "heldout", n_per_class=3, size=size, seed=seed + 1)
        cfg = TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, seed=seed, device=device, augment=("flip", "rot90"),
                          scheduler="onecycle", progress=_progress(quiet))
        res = train_classifier(open_image_dataset(train_dir), "cnn", tmp / "model", cfg,
                               preprocessing={"intensity": "db", "normalize": "per_image"},
                               model_options={"channels": (16, 32), "hidden": 64})
    except BaseException as exc:
        # the caller deletes the folder once it has it: stopped here, it was left in /tmp, and the
        # error line named the training state kept in it
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            exc.args = ()
        raise
    _echo(f"--demo: model test accuracy {res['test']['accuracy']:.3f} (chance 0.1); classifying {test_dir}")
    return tmp / "model", (test_dir,), tmp


def _cf_time(ds):
    """``ds`` with a metadata table's ``time`` strings as datetime64 (UTC), so that the netCDF holds
    a CF time that xarray and CF tools decode; unchanged when any of them is not ISO 8601."""
    if "time" not in ds.data_vars or ds["time"].dtype.kind not in "US":
        return ds
    import pandas as pd

    try:
        t = pd.to_datetime(pd.Series(ds["time"].values).replace("", None), utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return ds  # the table's own format, kept as written
    return ds.assign(time=(ds["time"].dims, t.dt.tz_localize(None).to_numpy(),
                           {"standard_name": "time", "long_name": "acquisition time (UTC), from the metadata table"}))


def _sidecar(output: Path) -> Path:
    """Where a CSV of predictions has its provenance: ``<output>.json`` beside it."""
    return output.with_name(output.name + ".json")


def _csv_provenance(ds, output: Path, model: str) -> dict:
    """What the .nc output's attributes say, for its CSV: a CSV has no place for them (comment
    lines would break pandas' and spreadsheets' reading), so they go in ``<output>.json``."""
    from datetime import datetime, timezone

    attrs = ds.attrs
    return {"predictions": output.name, "model": model,
            **{k: attrs[k] for k in ("model_sha256", "architecture", "model_git_commit") if k in attrs},
            "classes": [str(c) for c in ds["class"].values], "min_confidence": float(attrs["min_confidence"]),
            "tta": bool(attrs["tta"]), "command": _command_line(), "oceandl_version": attrs.get("oceandl_version"),
            "oceandl_software": attrs.get("oceandl_software"),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


#: the first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _no_formula(value):
    """A text cell that a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``-2+3+cmd|...``,
    ``@SUM(...)``), with a ``'`` in front, which spreadsheets show as text (OWASP's advice); a
    number written as text (``-1.5``, ``+3``) and anything else unchanged."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if value[0] in "+-":
        try:
            float(value)
            return value  # a spreadsheet reads it as the number it is: nothing runs
        except ValueError:
            pass
    return "'" + value


def _write_predictions(ds, output: Path, overwrite: bool, model: str | None = None) -> None:
    """``ds`` to ``output``: a netCDF file, or a CSV (one row per image, ``p_<class>`` columns) and its
    provenance ``<output>.json`` (:func:`_csv_provenance`), written together: both or neither.
    ``model``: the checkpoint as the JSON names it (an absolute path)."""
    from oceandl.utils import atomic_path, atomic_paths

    if output.suffix.lower() == ".nc":
        with atomic_path(output, overwrite=overwrite) as tmp:
            # the metadata's time was written as text ('2016-04-10T06:30:59Z'): no time axis to
            # match the vignettes with other data; the CSV keeps the table's text
            _cf_time(ds).to_netcdf(tmp)
        return
    df = ds[[v for v in ds.data_vars if v != "probabilities"]].to_dataframe()
    # class names (a checkpoint's config), file names and a metadata table's text come from others:
    # a class '=HYPERLINK(...)' was a live formula in Excel or LibreOffice. Text columns only: the
    # numbers are written as they are (the .nc and the JSON keep every text unchanged)
    from pandas.api.types import is_object_dtype, is_string_dtype

    for c in df.columns:
        if is_string_dtype(df[c]) or is_object_dtype(df[c]):
            df[c] = df[c].map(_no_formula)
    if is_string_dtype(df.index) or is_object_dtype(df.index):
        df.index = df.index.map(_no_formula)
    for c in ds["class"].values:
        df[f"p_{c}"] = ds["probabilities"].sel({"class": c}).values
    with atomic_paths([output, _sidecar(output)], overwrite=overwrite) as (tmp, tmp_json):
        df.to_csv(tmp, float_format="%.5f")
        prov = _csv_provenance(ds, output, model or str(ds.attrs.get("model")))
        tmp_json.write_text(json.dumps(prov, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------ interpolate
@cli.command()
@click.argument("input_path", nargs=-1, type=click.Path(path_type=Path))
@click.option("--var", default=None, help="Variable to fill (default: found from CF attributes).")
@click.option("--aux", "aux", multiple=True, help=_AUX_HELP)
@click.option("--mask", "mask", default=None, metavar="VAR|FILE:VAR", help=_MASK_HELP)
@click.option("--method", default="dineof", show_default=True, help="climatology, eof, dineof, convae, unet, resae, smp_unet.")
@click.option("--withhold", type=float, default=0.1, show_default=True, help="Fraction of valid pixels withheld (cloud-mask transfer) to measure skill; 0 = none. They are written as observed, flagged 2; the fraction, seed and draw are recorded (val_withhold* attributes). Not with --chunks (none withheld, no val_* scores).")
@click.option("--refit", is_flag=True, help="After scoring on the withheld pixels, fit again on every observation and write that fill (as DINEOF does; twice the time).")
@click.option("--set", "options", multiple=True, help="Method option key=value (e.g. --set n_modes=8, --set epochs=20).")
@click.option("--model", "checkpoint", type=click.Path(path_type=Path), help="A trained interpolation checkpoint (neural methods; its method is the default --method): fills without training, so --epochs, --lr, --batch-size and training --set options (steps, patch, ...) are refused. A file on its grid is normalised with its training statistics (a single day is enough); --set normalisation=input uses the file's own.")
@click.option("--fit-on", type=click.Path(path_type=Path), help="Fit the method (climatology, eof, dineof) on this file, an earlier period on INPUT's grid, and fill INPUT with what it learned, without fitting on INPUT (a decade's modes filling today's image); or a folder `train interpolator` saved such a fit in (its method is the default --method), which with --bbox fills a block of its grid, the fit cut to it (its covariates too). Dineof with --aux: the joint modes of the field and the covariates, fitted on the file's own covariates (or --fit-aux's), are solved each day on INPUT's observed pixels and INPUT's covariates (a saved fit's covariates are read from INPUT by default). With --chunks: INPUT larger than memory, streamed by time blocks (a file to fit on is read whole).")
@click.option("--fit-aux", "fit_aux", multiple=True, metavar="VAR|FILE:VAR", help="With --fit-on FILE and --aux: where each covariate is read for the fitted period, one per --aux in its order: VAR of the --fit-on file or FILE:VAR of another (e.g. --aux mw_today.nc:sst_mw --fit-aux mw_decade.nc:sst_mw). Default: each --aux itself (VAR of the --fit-on file; FILE:VAR the same file, which must then cover both periods). With --chunks too (read whole, as the --fit-on file). One with values on fewer than 75% of the fitted days is warned of: the fill with it can be worse than without it.")
@click.option("--figure", type=click.Path(path_type=Path), help="Also save a PNG of one day (--demo: OUTPUT with .png by default).")
@click.option("--demo", is_flag=True, help="Run on the built-in synthetic cloudy SST cube.")
@click.option("--chunks", default=None, help="Larger than memory: block by block on dask, e.g. time=100,lat=256,lon=256 (-1: whole axis). Takes --aux (and a --model's covariates) as in memory, FILE:VAR of another grid or other days put on the field's block by block. With --fit-on: INPUT streamed by time blocks of whole days over the whole grid (lat/lon chunks are not used: said), the in-memory fill's values and sigma (nothing withheld). Not --withhold, --refit, --figure, --demo.")
@click.option("--halo", default=None, help="With --chunks: halo per axis, e.g. lat=32,lon=32 (default: the method's).")
@click.option("--complevel", type=click.IntRange(0, 9), default=4, show_default=True, help="zlib level of the output's data variables (0: uncompressed: written several times faster, about 1.5x larger).")
@click.option("--min-quality", type=click.IntRange(0, 5), default=None, help=_MIN_QUALITY_HELP)
@subset_options
@training_options
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)
@common(output="filled netCDF (a folder, FOLDER/ or one that exists: a file per input file, named as it, with its "
               "days)")
@_method_errors_as_typed
def interpolate(input_path, var, method, withhold, refit, options, checkpoint, fit_on, figure, demo, epochs, batch_size,
                lr, quiet, output, overwrite, seed, device, chunks=None, halo=None, complevel=4, min_quality=None,
                aux=(), bbox=None, dates=None, mask=None, fit_aux=()):
    """Fill the gaps (clouds) of a (time, lat, lon) field.

    Writes the filled variable, its sigma when the method gives one, a flag of originally missing
    (1) and withheld (2) pixels and the validation metrics on the withheld pixels (in the
    attributes). Every observation, withheld ones included, is written as given.

    \b
    Examples:
      oceandl interpolate --demo -o demo.nc
      oceandl interpolate sst.nc --var analysed_sst --method unet --epochs 30 -o filled.nc
      oceandl interpolate sst.nc --method dineof --set max_modes=30 -o filled.nc
      oceandl interpolate sst.nc --method climatology --set harmonics=3 -o clim.nc
      oceandl interpolate l3s_2020/ --min-quality 4 -o filled_2020.nc   # a file per day (or 'l3s/2020*.nc')
      oceandl interpolate l3s_2020/ -o l4_2020/   # and back: a file per input file, named as it
      oceandl interpolate big.nc --method dineof --chunks time=-1,lat=128,lon=128 -o filled.nc
      oceandl interpolate today.nc --method dineof --fit-on 2015-2024.nc -o today_filled.nc
      oceandl interpolate today.nc --method dineof --fit-on 2015-2024.nc --aux mw_today.nc:sst_mw --fit-aux mw_2015-2024.nc:sst_mw -o today_filled.nc
      oceandl train interpolator sst_2015-2024.nc --method dineof -o dineof_decade
      oceandl interpolate today.nc --fit-on dineof_decade -o today_filled.nc
      oceandl interpolate l3s_2025/ --fit-on dineof_decade --chunks time=30 -o l4_2025/   # larger than memory
      oceandl interpolate sst.nc --var sst --method unet --aux sst_mw -o filled.nc   # microwave SST as input
      oceandl interpolate big.nc --method unet --model unet_mw --chunks time=64,lat=256,lon=256 -o filled.nc
      oceandl interpolate sst.nc --method unet --mask land -o filled.nc   # fills ocean cloudy every day
      oceandl interpolate sst.nc --method dineof --mask lsm_era5.nc:lsm -o filled.nc
    """
    from oceandl.io import names_folder
    from oceandl.pipelines.interpolate import run_interpolation

    output = _need_output(output, "filled netCDF")
    # -o FOLDER/ (or an existing folder): a file per input file, named as it (a folder of daily L3 files in,
    # a folder of daily filled files out)
    per_file = bool(click.get_current_context().meta.get("oceandl.output_folder")) or names_folder(output)
    if not per_file:
        _netcdf_output(output, "filled netCDF", folder="name a folder with a trailing slash (FOLDER/) for a file per input file")
    input_path = _inputs(input_path)
    opts = _method_options(input_path, demo, options, epochs, batch_size, lr)
    if checkpoint is not None and "checkpoint" in opts:  # --model's would replace it without a word
        raise click.UsageError("give the checkpoint once: --model or --set checkpoint=..., not both")
    if "checkpoint" in opts:  # as --set init= does for train interpolator: the network's method by default
        method = _checkpoint_method_unless_given(method, opts["checkpoint"])
    if checkpoint is not None:
        from oceandl.interp import METHODS, get_method
        from oceandl.interp.fitted import saved_method

        fitted = saved_method(checkpoint)
        if fitted is not None:  # else refused for the method, or for the checkpoint's task, never named a fit
            raise InputError(f"--model {checkpoint}: a saved {fitted} fit, not a network's checkpoint; fill with "
                             f"--fit-on {checkpoint}")
        method = _checkpoint_method_unless_given(method, checkpoint)
        if "checkpoint" not in get_method(method).option_defaults:  # else: "unknown option 'checkpoint'"
            neural = ", ".join(m for m, c in METHODS.items() if "checkpoint" in c.option_defaults)
            task = _checkpoint_task(checkpoint)
            if task not in (None, "interpolation"):
                # a classifier's folder left --method at dineof, which was then said to take no checkpoint
                raise InputError(f"--model {checkpoint}: a checkpoint of task {task!r}, not a gap filler's network "
                                 f"(train one with `oceandl train interpolator`; a classifier's is for `oceandl "
                                 f"classify --model {checkpoint}`)")
            raise InputError(f"--model: method {method!r} fits the file itself and takes no checkpoint "
                             f"(--model is for the neural methods: {neural})")
        opts["checkpoint"] = str(checkpoint)
    _check_min_quality(demo, min_quality)
    if fit_on is not None:
        from oceandl.interp.fitted import fitted_folder, saved_method

        fit_on = fitted_folder(fit_on) or fit_on  # a saved fit's config.json names its folder
    if fit_on is not None and Path(fit_on).is_dir():
        src = click.get_current_context().get_parameter_source("method")
        saved = saved_method(fit_on)
        if saved is not None and (src is None or src.name == "DEFAULT"):
            method = saved  # the saved fit's method, unless --method says another (then refused)
    if fit_aux and fit_on is None:  # read by the fit on --fit-on FILE (in memory, --chunks too)
        raise InputError("--fit-aux: the covariates of the fitted period, only with --fit-on FILE")
    if fit_on is not None and checkpoint is not None:
        raise InputError("--fit-on: not with --model (it fills with a fit of climatology, eof or dineof, not a "
                         "network)")
    if halo is not None and fit_on is not None:  # whole days over the whole grid: no block has a halo
        raise InputError("--halo: not with --fit-on (a fit is applied by time blocks of whole days over the whole "
                         "grid, without halos)")
    if halo is not None and not chunks:  # it was ignored: the in-memory fill has no blocks
        raise InputError("--halo: only with --chunks (the halo read beyond each block); the fill in memory has no "
                         "blocks")
    if chunks:  # larger than memory: oceandl.interp.chunked (docs/distributed.md)
        if demo or figure is not None:
            raise click.UsageError("--chunks reads an INPUT file; it does not take --demo or --figure")
        src = click.get_current_context().get_parameter_source("withhold")
        if withhold > 0 and src is not None and src.name != "DEFAULT":
            raise InputError("--withhold: not available with --chunks (withholding needs the whole cube in memory)")
        if refit:
            raise InputError("--refit: not available with --chunks (nothing is withheld there to refit without)")
        from oceandl.interp import get_method
        from oceandl.interp.chunked import interpolate_chunked
        from oceandl.pipelines.interpolate import _resolve_aux

        from oceandl.io import describe_source
        from oceandl.pipelines.interpolate import _naming

        if aux:  # refused for a method that takes none as in memory; without --aux, a --model's own (said there)
            _resolve_aux(aux, get_method(method), opts, _echo)
        if per_file and fit_on is not None:  # said in the options' words, as in memory
            from oceandl.interp.fitted import refuse_fit_folder_output

            refuse_fit_folder_output(output, fit_on, "--fit-on")
        if fit_aux:  # refused as in memory (run_interpolation), in the options' words
            from oceandl.interp.chunked import _is_fit_folder

            if _is_fit_folder(fit_on):
                raise InputError("--fit-aux: the covariates of the fitted period, only with --fit-on FILE (a fit on "
                                 f"another file's days); the fit saved in {fit_on} was made with its own")
            if len(fit_aux) != len(aux):
                raise InputError(f"--fit-aux {' '.join(fit_aux)}: one per --aux, in its order (--aux "
                                 f"{' '.join(aux) or 'not given'})")
        # --fit-on: the fit (saved, or made on that file in memory) applied by time blocks over the whole grid
        from oceandl.interp.base import fit_aux_words
        from oceandl.pipelines.interpolate import cli_fit_aux_words

        # a covariate on part of the fitted days is warned of in the options' words, as in memory
        words = cli_fit_aux_words(aux, fit_aux, fit_on, input_path) if fit_on is not None else {}
        with (_naming(describe_source(input_path), fit_on) if fit_on is not None else contextlib.nullcontext()), \
                fit_aux_words(words):
            res = interpolate_chunked(input_path, output, method, var=var, chunks=chunks, halo=halo, seed=seed,
                                      device=device, overwrite=overwrite, progress=_progress(quiet),
                                      complevel=complevel, log=_echo, command=_command_line(),
                                      min_quality=min_quality, aux=list(aux) or None, bbox=bbox, dates=dates,
                                      mask=mask, per_file=per_file, fit_on=fit_on,
                                      fit_aux=list(fit_aux) or None, **opts)
        if fit_on is None:
            plan = f"{res.n_blocks} blocks of {res.chunks}, halo {res.halo}"
        else:  # a saved fit by its folder; a field's, fitted here on it ("fit past.nc" read as a saved one)
            from oceandl.interp.chunked import _is_fit_folder

            days = res.chunks["time"]
            plan = (f"{'fit' if _is_fit_folder(fit_on) else 'a fit on'} {fit_on} applied in {res.n_blocks} "
                    f"block{'s' * (res.n_blocks != 1)} of {days} day{'s' * (days != 1)} over the whole grid")
        click.echo(f"{method}: {plan}: {res.mpx_per_s:.2f} Mpx/s -> {output}{'/' if per_file else ''}")
        return
    if demo and figure is None:
        figure = output.with_suffix(".png")
    if refit and (withhold == 0 or checkpoint is not None):
        # nothing withheld (or a trained model, which fits nothing): a refit would be the same fill again
        raise InputError("--refit: needs pixels withheld (--withhold > 0) and a method that fits the file "
                         "(not --model)")
    summary = run_interpolation(input_path, output, var=var, method=method, withhold=withhold, refit=refit,
                                options=opts, seed=seed, device=device, overwrite=overwrite, figure=figure, demo=demo,
                                progress=_progress(quiet), complevel=complevel, log=_echo, command=_command_line(),
                                min_quality=min_quality, fit_on=fit_on, aux=aux, bbox=bbox, dates=dates,
                                mask=mask, per_file=per_file, fit_aux=fit_aux)
    click.echo(summary)


# -------------------------------------------------------------------------------------------- eof
@cli.command()
@click.argument("input_path", nargs=-1, type=click.Path(path_type=Path))
@click.option("--var", default=None, help="Variable (default: found from CF attributes; --demo: sst_true).")
@click.option("--demo", is_flag=True, help="Analyse the built-in synthetic SST cube (its gap-free field).")
# a range: -n 0 was refused by the analysis, after the field was read or the --demo cube made
@click.option("-n", "--n-modes", type=click.IntRange(min=1), default=10, show_default=True, help="Number of modes.")
@click.option("--weights", type=click.Choice(["coslat", "none"]), default="coslat", show_default=True, help="Area weights: sqrt(cos(latitude)) per pixel, or none.")
@click.option("--solver", type=click.Choice(["auto", "full", "randomized"]), default="auto", show_default=True,
              help="SVD: full, randomized (truncated; large fields), or auto (randomized when the field is large "
                   "and few modes are kept).")
@click.option("--rotate", type=click.IntRange(min=0), default=0, show_default=True,
              help="Varimax-rotate the leading N modes (0: no rotation); the file then holds the N rotated modes.")
@subset_options
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)  # nothing to silence yet: taken as by every writer
@common(output="EOF netCDF", device=False)
def eof(input_path, var, demo, n_modes, weights, solver, rotate, quiet, output, overwrite, seed, bbox=None,
        dates=None):
    """EOF analysis of a (time, lat, lon) field: EOFs, PCs, eigenvalues, variance fractions.

    \b
    Examples:
      oceandl eof sst_anom.nc --var sst -n 5 -o eofs.nc
      oceandl eof sst_daily_10y.nc -n 20 --solver randomized -o eofs.nc
      oceandl eof --demo -n 5 -o demo_eofs.nc
      oceandl eof sst_anom.nc -n 10 --rotate 4 -o rotated.nc   # varimax of the 4 leading modes
    """
    from oceandl.interp import eof as run_eof
    from oceandl.io import describe_source, file_attrs, open_field, source_grid, source_paths, to_source_grid, write_netcdf

    output = _need_output(output, "EOF netCDF")
    _netcdf_output(output, "EOF netCDF")
    input_path = _inputs(input_path)
    if rotate == 1 or rotate > n_modes:  # refused before the field is read
        raise click.UsageError(f"--rotate {rotate}: needs 2 <= N <= --n-modes ({n_modes}), or 0 for none")
    # --demo, as interpolate and train have it: the one command that reads a field had no built-in one
    if demo == (input_path is not None):
        raise click.UsageError("give either INPUT.nc or --demo")
    from oceandl.utils import check_output_path

    check_output_path(output, overwrite, inputs=() if demo else source_paths(input_path), kind="file",
                      what="EOF netCDF")
    from oceandl.pipelines.interpolate import DEMO_SIZE, _naming

    if demo:
        from oceandl.datasets.sst import synthetic_sst

        # the clear-sky truth: EOFs need every pixel at every time (the cloudy 'sst' would leave most out)
        da = open_field(synthetic_sst(seed=seed, **DEMO_SIZE), var or "sst_true", label="--demo", bbox=bbox,
                        dates=dates)
        input_path = "--demo (synthetic SST cube)"
    else:
        da = open_field(input_path, var, bbox=bbox, dates=dates)
        input_path = describe_source(input_path)
    with _naming(str(input_path)):  # the analysis names the variable only: 'Error: variable 'sst': ...' said no file
        res = run_eof(da, n_modes=n_modes, weights=None if weights == "none" else weights, solver=solver, seed=seed)
        if rotate:
            res = res.rotate(min(rotate, res.n_modes))  # fewer modes than asked were warned about
    ds = to_source_grid(res.to_dataset(), source_grid(da))  # EOFs on the input's grid and dim names
    ds.attrs["source"] = str(input_path)
    # the input file's global attributes (institution, references...), history with this command in front
    ds.attrs = file_attrs(da, ds.attrs, command=_command_line())
    write_netcdf(ds, output, overwrite=overwrite)
    vf = res.variance_fraction.values
    click.echo("variance fractions: " + ", ".join(f"{v:.3f}" for v in vf[:10]))


# -------------------------------------------------------------------------------------- benchmark
@cli.command()
@click.argument("name", type=click.Choice(list(PIPELINES)))
@click.option("--data-root", type=click.Path(path_type=Path), help="MNIST: folder with the IDX files (default $OCEANDL_DATA or ../shared/data).")
@click.option("--data", type=click.Path(path_type=Path), help="SAR/plankton: run on a real data set folder instead of the synthetic one.")
@click.option("--fast", is_flag=True, help="A seconds-long smoke run.")
@click.option("--config", "toml_path", type=click.Path(path_type=Path),
              help="TOML file of config values, or a run folder (its results.json), or a run's results.json or run.json (its resolved config).")
@click.option("--set", "options", multiple=True, help="Config override key=value.")
@click.option("--download", is_flag=True, help="MNIST: fetch the data through torchvision first, into --data-root (default $OCEANDL_DATA or ../shared/data; needs network).")
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)
@common(output="run folder")
def benchmark(name, data_root, data, fast, toml_path, options, download, quiet, output, overwrite, seed, device):
    """Run a reproducible benchmark and write its run folder (results.json, results.md, run.json, figures).

    \b
    Examples:
      oceandl benchmark mnist --data-root ../shared/data -o runs/mnist
      oceandl benchmark sst -o runs/sst
      oceandl benchmark sar --data TenGeoP-SARwv/GeoTIFF -o runs/sar_real
      oceandl benchmark perf --device cpu -o runs/perf_cpu
      oceandl benchmark scaling -o runs/scaling   # 1 process against torchrun
    """
    from oceandl.pipelines import get_pipeline, run_pipeline

    output = _need_output(output, "run folder")
    from oceandl.utils import check_output_path

    check_output_path(output, overwrite, parents=True)  # -o runs/NAME: run_pipeline makes runs/
    pipe = get_pipeline(name)
    # --seed's default (0) went in as an override even when not given, so a --config file's seed
    # was silently replaced by 0 (and a run.json's config did not reproduce its run): only an
    # explicit --seed overrides now; without one the config's (TOML or the class default 0) stands.
    given = click.get_current_context().get_parameter_source("seed") != click.core.ParameterSource.DEFAULT
    overrides = _kv(options)
    if given:
        if "seed" in overrides:  # else --set seed= silently replaced --seed (the run and its record said 2)
            raise InputError("--seed and --set seed=...: give one of them")
        overrides["seed"] = seed
    if fast:
        if "fast" in overrides:  # else --fast silently replaced it, even an invalid one
            raise InputError("--fast and --set fast=...: give one of them")
        overrides["fast"] = True
    # --data-root / --data / --download given to a benchmark without them were refused as "--set data:
    # unknown config key" (an option the user never typed), and `mnist --download` without --data-root
    # downloaded nothing, then said "--download fetches them": they are checked here, by their names
    import dataclasses

    keys = {f.name for f in dataclasses.fields(pipe.config_cls)}
    for flag, given_, key, who in (("--data-root", data_root is not None, "data_root", "mnist"),
                                   ("--download", download, "data_root", "mnist"),
                                   ("--data", data is not None, "data", "sar and plankton")):
        if given_ and key not in keys:
            raise InputError(f"{flag}: benchmark {name} does not take it ({who} only)")
    if download:
        from oceandl.datasets.mnist import download_mnist
        from oceandl.pipelines.mnist import mnist_root

        target = mnist_root(data_root)  # --data-root, else $OCEANDL_DATA or ../shared/data
        if target is None:
            raise InputError("--download: give --data-root DIR (or set OCEANDL_DATA) to say where to put MNIST")
        download_mnist(target)
    if data_root is not None:
        overrides["data_root"] = str(data_root)
    if data is not None:
        overrides["data"] = str(data)
    out, results = run_pipeline(pipe, output, overrides=overrides, toml_path=toml_path, overwrite=overwrite,
                                device=device, progress=_progress(quiet), log=_echo)
    click.echo((out / "results.md").read_text().split("\n\n")[2])
    _echo(f"run folder: {out}")


# ------------------------------------------------------------------------------------------ synth
@cli.command()
@click.argument("kind", type=click.Choice(["sst", "sar", "plankton"]))
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Time steps (sst; default 365) or images per class (sar, plankton; default 20).")
@click.option("--size", type=click.IntRange(min=4), default=None, help="Grid side (sst; default 128) or image side (sar, plankton: default 64, at least 16; plankton images are drawn at 0.75-1.35 times it).")
@click.option("--cloud-cover", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="sst: mean cloud cover, in (0, 1).")
@click.option("--microwave", is_flag=True, help="sst: also write sst_mw, a synthetic passive-microwave SST: coarse, noisier, gaps near land, in swaths and rain; a covariate for `--aux`.")
@click.option("--daily", is_flag=True, help="sst: a folder with a file per day (sst_YYYYMMDD.nc), as L3 products come, "
              "instead of one file; what `interpolate FOLDER` reads as one series.")
@click.option("--quiet", is_flag=True, help=_QUIET_HELP)
@common(output="synthetic data (.nc for sst, a folder for images)", device=False)
def synth(kind, n, size, cloud_cover, microwave, quiet, output, overwrite, seed, daily=False):
    """Write a synthetic data set (deterministic from --seed) in the real formats.

    \b
    Examples:
      oceandl synth sst --n 365 --size 128 --cloud-cover 0.6 -o sst.nc
      oceandl synth sst --microwave -o sst.nc   # with sst_mw, a passive-microwave covariate
      oceandl synth sst --daily --n 90 -o sst_days   # a file per day
      oceandl synth sar --n 100 -o sar_vignettes
    """
    from oceandl.utils import atomic_path, check_output_path

    output = _need_output(output, "synthetic data")
    if kind != "sst" and size is not None and size < 16:  # else "size=8: must be >= 16", the Python name
        raise click.BadParameter(f"{size}: {kind} images need at least 16 pixels", param_hint="'--size'")
    if kind != "sst" and microwave:  # a flag that changed nothing would let a script believe it had sst_mw
        raise click.BadParameter(f"{kind}: only synth sst writes a microwave field", param_hint="'--microwave'")
    if kind != "sst" and daily:
        raise click.BadParameter(f"{kind}: only synth sst writes daily files", param_hint="'--daily'")
    if kind == "sst" and daily:
        check_output_path(output, overwrite, kind="folder", replaceable=_is_synth_folder("sst-daily"),
                          what="folder of daily synthetic SST files")
    elif kind == "sst":
        _netcdf_output(output, "synthetic SST file", folder="use --daily for a folder of daily files")
        check_output_path(output, overwrite, kind="file", what="netCDF file")
    else:
        check_output_path(output, overwrite, kind="folder", replaceable=_is_synth_folder(kind),
                          what=f"synthetic {kind} image set")
    if kind == "sst":
        from oceandl.datasets.sst import synthetic_sst
        from oceandl.io import write_netcdf

        # `is None`, not `or`: an explicit --n 0 or --size 0 is refused, not replaced by the default
        n_time, grid = 365 if n is None else n, 128 if size is None else size
        ds = synthetic_sst(n_time=n_time, ny=grid, nx=grid, cloud_cover=cloud_cover, seed=seed, microwave=microwave)
        from oceandl.interp.base import append_history

        # how to make the file again, as every other netCDF oceandl writes says how it was made
        ds.attrs["history"] = append_history(None, "synth sst", command=_command_line())
        if daily:  # a file per day, named by its date: a folder of L3-like files
            with atomic_path(output, overwrite=overwrite) as tmp:
                tmp.mkdir()
                days = [str(t)[:10].replace("-", "") for t in ds["time"].values]
                from tqdm.auto import tqdm

                for i, day in enumerate(tqdm(days, desc="days", unit="file", disable=not _progress(quiet))):
                    one = ds.isel(time=[i])
                    # each file says the day it covers, as L3 products' ACDD attributes do
                    one.attrs.update(time_coverage_start=f"{day}T000000Z", time_coverage_end=f"{day}T235959Z")
                    write_netcdf(one, tmp / f"sst_{day}.nc")
        else:
            write_netcdf(ds, output, overwrite=overwrite)
    else:
        from oceandl.datasets import synthetic_images as si

        make = si.make_sar_vignettes if kind == "sar" else si.make_plankton_images
        with atomic_path(output, overwrite=overwrite) as tmp:
            make(tmp, n_per_class=20 if n is None else n, size=64 if size is None else size, seed=seed)
    _echo(f"{kind} written to {output}")


def _is_synth_folder(kind: str):
    """Recognise a folder `oceandl synth KIND` wrote: only its class folders (and metadata.csv)."""

    def check(path: Path) -> bool:
        from oceandl.datasets import synthetic_images as si
        from oceandl.datasets.images import TENGEOP_CLASSES

        if kind == "sst-daily":
            return all(p.name.startswith("sst_") and p.suffix == ".nc" for p in path.iterdir())
        names = set(TENGEOP_CLASSES) | {"metadata.csv"} if kind == "sar" else set(si.PLANKTON_CLASSES)
        return all(p.name in names for p in path.iterdir())

    return check


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    import signal
    import threading

    # SIGTERM (a scheduler's time limit, `timeout`, `kill`) killed the process at once: a benchmark
    # left its hidden .part run folder behind. As an exception, temporaries are removed as for Ctrl-C.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(args=argv, prog_name="oceandl", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    dist = sys.modules.get("oceandl.training.distributed")  # imported only by training commands
    if dist is not None and dist.current() is not None:
        dist.destroy(sync=code == 0)  # on failure a peer may be stuck in a collective: do not wait
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
