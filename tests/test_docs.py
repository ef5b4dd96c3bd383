"""Docstrings against signatures, over the public API (every name in the ``__all__`` of the public modules).

- every name listed in an ``__all__`` exists;
- every public function, class and public method defined in oceandl has a docstring;
- every name in a numpydoc ``Parameters`` section (``name : type``, ``a, b : type``, ``*args``,
  ``**kwargs``, or a bare ``name``) is a parameter of the signature it documents: a function's own, a
  class's ``__init__`` (or a dataclass's generated one);
- a class with ``option_defaults`` (the interpolation methods) documents each option in an ``Options``
  section (its own or a base class's), no other name, and a ``default X`` quoted there is the default.

Parameters that the docstring leaves out are not flagged: many docstrings describe only the options that
need words. A renamed or removed parameter that is still described is what misleads a reader.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re

import pytest

MODULES = ["oceandl", "oceandl.io", "oceandl.interp", "oceandl.models", "oceandl.training", "oceandl.metrics",
           "oceandl.datasets", "oceandl.utils", "oceandl.pipelines"]

_SECTION = re.compile(r"^([ \t]*)([A-Z][^\n]*)\n\1-{3,}[ \t]*$", re.M)
_NAME = re.compile(r"^\*{0,2}[A-Za-z_][A-Za-z0-9_]*$")


def section_entries(doc: str | None, sections=("Parameters", "Other Parameters")) -> list[tuple[str, str]]:
    """(name, type text) of each entry of the numpydoc sections ``sections`` of ``doc``.

    An entry is a line at the section's indent: ``names : type`` or a bare ``names``; ``names`` may group
    several (``seed, device``), each comes back with the same type text. Anything else at the entry indent
    (a type wrapped onto a second line, say) comes back as written so that the caller reports it: numpydoc
    renderers read it as a parameter too.
    """
    if not doc:
        return []
    doc = inspect.cleandoc(doc)
    heads = list(_SECTION.finditer(doc))
    entries: list[tuple[str, str]] = []
    for i, m in enumerate(heads):
        if m.group(2).strip() not in sections:
            continue
        end = heads[i + 1].start() if i + 1 < len(heads) else len(doc)
        body = doc[m.end():end].split("\n")
        indent = len(m.group(1))
        for line in body:
            if not line.strip():
                continue
            lead = len(line) - len(line.lstrip())
            if lead < indent:  # text after the section at a lower indent: the section is over
                break
            if lead > indent:  # description
                continue
            head, _, kind = line.strip().partition(" : ")
            entries += [(n.strip(), kind.strip()) for n in head.rstrip(":").split(",")]
    return entries


def parameter_names(doc: str | None) -> list[str]:
    """Names described in the numpydoc ``Parameters`` sections of ``doc``."""
    return [n for n, _ in section_entries(doc)]


def _signature_names(obj) -> tuple[set[str], bool, bool] | None:
    """(parameter names, has *args, has **kwargs) of a callable, or None when it has no signature."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    names = set(sig.parameters)
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            names.add("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.add("**" + p.name)
    return names, var_pos, var_kw


def check_parameters(where: str, doc: str | None, target) -> list[str]:
    """Problems of the Parameters section of ``doc`` read against the signature of ``target``."""
    described = parameter_names(doc)
    if not described:
        return []
    sig = _signature_names(target)
    if sig is None:
        return []
    names, var_pos, var_kw = sig
    problems = []
    for n in described:
        if not _NAME.match(n):
            problems.append(f"{where}: Parameters entry {n!r} is not a parameter name (a wrapped type line?)")
            continue
        bare = n.lstrip("*")
        if n in names or bare in names:
            continue
        # `*args` / `**kwargs` described under another name than the signature's own
        if (n.startswith("**") and var_kw) or (n.startswith("*") and not n.startswith("**") and var_pos):
            continue
        problems.append(f"{where}: documents parameter {n!r}, not in the signature {sorted(names)}")
    return problems


def check_options(where: str, cls) -> list[str]:
    """Problems of the ``Options`` sections of an Interpolator class (its own and its bases') against
    ``cls.option_defaults``: every option documented, no other name, and a quoted ``default X`` equal to the
    default."""
    defaults = cls.option_defaults
    entries = [e for c in cls.__mro__ for e in section_entries(c.__doc__, ("Options",))]
    problems = []
    for name, kind in entries:
        if name not in defaults:
            problems.append(f"{where}: Options documents {name!r}, not an option (options: {sorted(defaults)})")
            continue
        m = re.search(r"default (\S+?)(?:,|\s\(|$)", kind)
        if m:
            try:
                quoted = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError):
                problems.append(f"{where}: option {name}: cannot read the default in {kind!r}")
                continue
            if quoted != defaults[name] or isinstance(quoted, bool) != isinstance(defaults[name], bool):
                problems.append(f"{where}: option {name}: documented default {quoted!r}, actual {defaults[name]!r}")
    missing = sorted(set(defaults) - {n for n, _ in entries})
    if missing:
        problems.append(f"{where}: options not documented in an Options section: {missing}")
    return problems


def _defined_here(obj) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod == "oceandl" or mod.startswith("oceandl.")


def _public_submodules() -> list[str]:
    """The non-underscore modules inside the packages of MODULES (``oceandl.interp.dineof``, ...): their
    ``__all__`` is public API too (documented paths such as ``oceandl.interp.chunked.interpolate_chunked``)."""
    import pkgutil

    out = []
    for pkg in MODULES:
        mod = importlib.import_module(pkg)
        for info in pkgutil.iter_modules(getattr(mod, "__path__", [])):
            if not info.name.startswith("_"):
                out.append(f"{pkg}.{info.name}")
    return out


def _public_objects():
    """(module name, name, object) for every name of every ``__all__``: MODULES, the modules listed in those
    ``__all__``, and the public submodules of MODULES' packages that define one."""
    todo, seen = list(MODULES), set()
    todo += [m for m in _public_submodules() if hasattr(importlib.import_module(m), "__all__")]
    while todo:
        modname = todo.pop(0)
        if modname in seen:
            continue
        seen.add(modname)
        mod = importlib.import_module(modname)
        assert hasattr(mod, "__all__"), f"{modname} has no __all__"
        for name in mod.__all__:
            obj = getattr(mod, name, _MISSING)
            if inspect.ismodule(obj) and obj.__name__.startswith("oceandl.") and hasattr(obj, "__all__"):
                todo.append(obj.__name__)
            yield modname, name, obj


_MISSING = object()


def _audit() -> list[str]:
    problems: list[str] = []
    done: set[int] = set()
    for modname, name, obj in _public_objects():
        where = f"{modname}.{name}"
        if obj is _MISSING:
            problems.append(f"{where}: listed in __all__ but not defined")
            continue
        if id(obj) in done:
            continue
        done.add(id(obj))
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            if not _defined_here(obj):
                continue
            if not (obj.__doc__ or "").strip():
                problems.append(f"{where}: class without a docstring")
            # the class docstring documents __init__
            problems += check_parameters(where, obj.__doc__, obj)
            if isinstance(getattr(obj, "option_defaults", None), dict):
                problems += check_options(where, obj)
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if isinstance(func, property):
                    func = func.fget
                if not inspect.isfunction(func):
                    continue
                mwhere = f"{where}.{attr}"
                if attr != "__init__" and not (func.__doc__ or "").strip() and not _inherits_doc(obj, attr):
                    problems.append(f"{mwhere}: public method without a docstring")
                problems += check_parameters(mwhere, func.__doc__, getattr(obj, attr) if attr != "__init__" else func)
        elif callable(obj) and (inspect.isfunction(obj) or _defined_here(obj)):
            if inspect.isfunction(obj) and not _defined_here(obj):
                continue
            if not (getattr(obj, "__doc__", None) or "").strip():
                problems.append(f"{where}: function without a docstring")
            problems += check_parameters(where, obj.__doc__, obj)
    return problems


def _inherits_doc(cls, attr: str) -> bool:
    """An override documented by the base class it overrides (help() shows the base's text)."""
    return any((getattr(getattr(base, attr, None), "__doc__", None) or "").strip() for base in cls.__mro__[1:])


def test_public_docstrings_match_signatures():
    problems = _audit()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc, names", [
    ("""Do.

    Parameters
    ----------
    a : int
        A.
    lat, lon, time : str
        Names.
    *args
        More.
    **options
        Keywords.

    Returns
    -------
    x : int
    """, ["a", "lat", "lon", "time", "*args", "**options"]),
    ("No sections.", []),
])
def test_parameter_parser(doc, names):
    assert parameter_names(doc) == names


def test_checker_flags_a_stale_name():
    def f(a, *, b=1):
        """F.

        Parameters
        ----------
        a : int
        c : int
            Renamed to b.
        """

    assert check_parameters("f", f.__doc__, f) == ["f: documents parameter 'c', not in the signature ['a', 'b']"]


def test_checker_flags_a_wrong_option_default():
    class Method:
        """M.

        Options
        -------
        n_modes : int, default 5
        tol : float, default 1e-3 (relative)
        gone : bool
        """

        option_defaults = {"n_modes": 4, "tol": 1e-3, "center": True}

    assert check_options("M", Method) == [
        "M: option n_modes: documented default 5, actual 4",
        "M: Options documents 'gone', not an option (options: ['center', 'n_modes', 'tol'])",
        "M: options not documented in an Options section: ['center']",
    ]


def _commands(group, path=()):
    import click

    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


def test_every_cli_option_has_help():
    """Each option of each command says what it does in --help (arguments are named in the usage line)."""
    import click

    from oceandl.cli.main import cli

    missing = [f"oceandl {name} {'/'.join(p.opts)}" for name, cmd in _commands(cli) for p in cmd.params
               if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, "options without a help text: " + ", ".join(missing)


def test_cli_training_defaults_quoted_in_help():
    """--epochs/--batch-size/--lr default to None and say in their help what None stands for: for
    ``interpolate`` and ``train interpolator`` the numbers quoted are the neural methods' option defaults."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli
    from oceandl.interp.neural import NeuralInterpolator, SMPUnetInterpolator

    o = NeuralInterpolator.option_defaults
    for cmd in (["interpolate"], ["train", "interpolator"]):
        text = " ".join(CliRunner().invoke(cli, [*cmd, "--help"], terminal_width=1000).output.split())
        assert f"{NeuralInterpolator.default_steps} optimiser steps (smp_unet {SMPUnetInterpolator.default_steps};" \
            in text
        assert f"default: {o['batch_size']} patches" in text
        assert float(re.search(r"Learning rate \(.*?default: ([0-9.e+-]+)\)", text).group(1)) == o["lr"]


# ----------------------------------------------------------------------------------- the docs' command lines
DOC_FILES = ("README.md", "docs/benchmarks.md", "docs/distributed.md", "docs/robustness.md")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")  # NAME, FILE: a pattern, not a command to run


def doc_command_lines(text: str, help_text: bool = False) -> list[str]:
    """The ``oceandl ...`` command lines of a markdown text (code blocks and inline code) or of a help
    text's examples: ``\\``-continued lines joined, a ``# comment`` dropped."""
    text = re.sub(r"\\\n\s*", " ", text)
    blocks = []  # code-block lines: a command may follow a launcher (torchrun ... --no-python oceandl ...)
    for m in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S):
        blocks += m.group(1).splitlines()
    rest = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    # inline code: only a span that is a command (not an error message that names oceandl)
    spans = [a or b for a, b in re.findall(r"``(.+?)``|`([^`]+)`", rest.replace("\n", " "))]
    if help_text:  # a --help text: its example lines
        blocks, spans = [], [s.strip() for s in text.splitlines()]
    found = [m.group(1) for s in blocks for m in re.finditer(r"(?:^|\s)oceandl (\S.*)", s)]
    found += [s[len("oceandl "):] for s in spans if s.startswith("oceandl ")]
    lines = []
    for line in found:
        line = line.split(" #")[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def check_command_line(line: str) -> str | None:
    """Why ``oceandl LINE`` would be refused before it runs (unknown command or option, bad value, a
    ``--set`` key that the method or benchmark does not have), or None. A trailing option without its
    value (``oceandl eof --solver`` in prose) and lines with placeholders (``NAME``) pass."""
    import shlex

    import click

    from oceandl.cli.main import _kv, cli

    args = shlex.split(line)
    if any(_PLACEHOLDER.match(a) for a in args):
        return None
    # --device cuda is refused on a machine without CUDA: the line is still right
    args = ["cpu" if a == "cuda" and i and args[i - 1] == "--device" else a for i, a in enumerate(args)]
    cmd, path = cli, []
    while isinstance(cmd, click.Group) and args and args[0] in cmd.commands:
        cmd = cmd.commands[args[0]]
        path.append(args.pop(0))
    if isinstance(cmd, click.Group):
        return f"oceandl {' '.join(path + args[:1])}: no such command"
    # under a context of the group, as the CLI parses it: without one, click (8.2+) caches the
    # command's help option as '--help' alone, and a later `oceandl CMD -h` in the same process fails
    parent = click.Context(cli, info_name="oceandl", **cli.context_settings)
    try:
        ctx = cmd.make_context(" ".join(path), list(args), parent=parent)
    except click.exceptions.Exit:
        return None
    except click.UsageError as exc:
        if "requires an argument" in str(exc) and args and args[-1].startswith("-"):
            return None
        return str(exc)
    sets = ctx.params.get("options") or ()
    if not sets or path[0] == "train" and path[1] == "classifier":  # model options: the model's own
        return None
    try:
        if path[0] == "benchmark":
            from oceandl.pipelines import apply_overrides, get_pipeline

            apply_overrides(get_pipeline(ctx.params["name"]).config_cls(), list(sets))
        else:
            from oceandl.interp import get_method

            get_method(ctx.params["method"])(**_kv(sets))
    except Exception as exc:  # noqa: BLE001 (the reason is what the test reports)
        return f"--set: {exc}"
    return None


def _help_texts():
    import click

    from oceandl.cli.main import cli

    yield "oceandl --help", cli.help or ""
    for name, cmd in _commands(cli):
        yield f"oceandl {name} --help", cmd.help or ""
    for name, group in cli.commands.items():
        if isinstance(group, click.Group):
            yield f"oceandl {name} --help", group.help or ""


def test_doc_command_lines_are_accepted():
    """Every ``oceandl ...`` command line of README.md, docs/*.md and the commands' --help examples is
    one the CLI accepts: the command and options exist, values are of the right kind, and each
    ``--set key=value`` is an option of the method (interpolate, train interpolator) or a config value
    of the benchmark."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = [(f, (root / f).read_text(), False) for f in DOC_FILES]
    sources += [(where, text, True) for where, text in _help_texts()]
    problems, n = [], 0
    for where, text, is_help in sources:
        for line in doc_command_lines(text, is_help):
            n += 1
            why = check_command_line(line)
            if why:
                problems.append(f"{where}: oceandl {line}: {why}")
    assert n > 40, f"only {n} command lines found: the extraction broke"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("line, refused", [
    ("interpolate sst.nc --method dineof --set max_modes=30 -o f.nc", False),
    ("interpolate sst.nc --method dineof --set n_mode=3 -o f.nc", True),
    ("interpolate sst.nc --methd unet -o f.nc", True),
    ("benchmark perf --device cuda --set repeats=5 -o runs/p", False),
    ("benchmark perf --set repeat=5 -o runs/p", True),
    ("benchmark NAME --config RUN/run.json -o NEW", False),
    ("eof --solver", False),
    ("train classifer --demo", True),
])
def test_command_line_checker(line, refused):
    assert (check_command_line(line) is not None) is refused


def test_doc_references_exist():
    """What README.md and docs/*.md name in the code exists: ``oceandl.x.y`` objects, the repository's
    files (``tests/test_faults.py``, ``pipelines/scaling.py``, ``.ci/gpu-check``), relative links,
    ``module.function`` references to oceandl's modules (``utils.keep_freed_memory``) and the test
    functions named (``test_kill_between_checkpoint_and_state``)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    tests_text = "\n".join(p.read_text() for p in (root / "tests").glob("test_*.py"))
    modules = {p.stem: p for d in ("oceandl", "oceandl/interp", "oceandl/training", "oceandl/models",
                                   "oceandl/metrics", "datasets", "pipelines", "cli") for p in (root / d).glob("*.py")}
    problems = []
    for f in DOC_FILES:
        text = (root / f).read_text()
        for name in sorted(set(re.findall(r"(?<![\w/.])oceandl(?:\.[A-Za-z_]\w*)+", text))):
            if not _resolves(name):
                problems.append(f"{f}: {name} does not exist")
        for path in sorted(set(re.findall(r"(?<![\w/.-])((?:tests|pipelines|datasets|cli|oceandl|docs|\.ci)/[\w/.-]*\w)",
                                          text))):
            if not (root / path).exists():
                problems.append(f"{f}: {path} does not exist")
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            if not (root / f).parent.joinpath(link).exists():
                problems.append(f"{f}: link to {link}, which does not exist")
        for mod, attr in sorted(set(re.findall(r"`(\w+)\.(_?[a-z]\w*)`", text))):
            if mod in modules and not re.search(rf"^(?:def|class) {attr}\b|^{attr}\s*[:=]",
                                                modules[mod].read_text(), re.M):
                problems.append(f"{f}: {mod}.{attr} is not defined in {modules[mod].relative_to(root)}")
        for test in sorted(set(re.findall(r"\b(test_\w+)\b", text))):
            if (root / "tests" / f"{test}.py").exists() or not test.islower():
                continue
            if f"def {test}(" not in tests_text and not re.match(r"test_(accuracy|macro_f1|log_loss|ece|"
                                                                  r"explained_variance)$", test):
                problems.append(f"{f}: test {test} does not exist")
    assert not problems, "\n".join(problems)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_doc_set_options_exist():
    """Each ``--set key=value`` the docs quote in prose (``--set precision=fp32``, ``--set svd=subspace``,
    outside a full command line) names an option that exists: of an interpolation method (and its value
    is one the method takes), a benchmark's config, or a registered model (``train classifier``)."""
    from pathlib import Path

    from oceandl.cli.main import _kv
    from oceandl.interp import METHODS
    from oceandl.models import MODELS, model_options
    from oceandl.pipelines import PIPELINES, get_pipeline

    root = Path(__file__).resolve().parent.parent
    config_keys = {f for p in PIPELINES for f in vars(get_pipeline(p).config_cls())}
    model_keys = {k for m in MODELS for k in model_options(m)}
    problems, n = [], 0
    for f in DOC_FILES:
        for key, value in re.findall(r"--set ([a-z_]+)=([^`\s)]*)", (root / f).read_text()):
            n += 1
            takers = [m for m, cls in METHODS.items() if key in cls.option_defaults]
            if not takers and key not in config_keys | model_keys:
                problems.append(f"{f}: --set {key}=...: no method, benchmark or model has option {key!r}")
            elif takers and key not in config_keys and re.fullmatch(r"[\w.+-]+", value) and value != "k":
                errors = []
                for m in takers:
                    try:
                        METHODS[m](**_kv([f"{key}={value}"]))
                        break
                    except Exception as exc:  # noqa: BLE001 (reported)
                        # a value that another option goes with (checkpoint=, filter_iter= with temporal_filter)
                        if " needs " in str(exc) or " has no effect with" in str(exc):
                            break
                        errors.append(f"{m}: {exc}")
                else:
                    problems.append(f"{f}: --set {key}={value}: refused ({'; '.join(errors)})")
    assert n > 20, f"only {n} --set spans found: the extraction broke"
    assert not problems, "\n".join(problems)
